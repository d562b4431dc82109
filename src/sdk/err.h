/* The error every store returns beside its code: a reason for a human,
 * written by the module that knows it, passed up unprinted. */
#ifndef GRACE_SDK_ERR_H
#define GRACE_SDK_ERR_H

typedef struct sdk_err {
	char msg[256];
} sdk_err;

/* Writes the reason into `err` (which may be NULL) and returns `code`. */
int sdk_fail(sdk_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
