/* Cedar's extension functions, as one table: the constructors decimal(),
 * ip(), datetime() and duration(), and the methods on their values. The
 * parser checks a call's name against the table; the arity and the types
 * are checked when it runs, as Cedar does (a wrong call is an evaluation
 * error, not a parse error). */
#ifndef GRACE_POLICY_EXT_H
#define GRACE_POLICY_EXT_H

#include "kernels/layer.h"

#include "kernels/policy/arena.h"
#include "kernels/policy/value.h"
#include "sdk/err.h"

#include <stdbool.h>
#include <stddef.h>

/* Returns 0 with *out, or -1 with the reason in err. */
typedef int (*cedar_ext_fn)(cedar_arena *a, const cedar_value *args, cedar_value *out,
			    sdk_err *err);

typedef struct cedar_ext_def {
	const char *name;
	bool method;    /* called as x.name(...), x being the first argument */
	unsigned arity; /* arguments, the receiver of a method included */
	cedar_ext_fn call;
} cedar_ext_def;

/* The function named `name`, or NULL. */
const cedar_ext_def *cedar_ext_find(const char *name, size_t len);
/* Applies f to n arguments (checking the arity). */
int cedar_ext_call(const cedar_ext_def *f, cedar_arena *a, const cedar_value *args, unsigned n,
		   cedar_value *out, sdk_err *err);

/* The parsers and printers behind the constructors, for the JSON format
 * and for messages. Each returns 0, or -1 with the reason in err. */
int cedar_decimal_parse(const char *s, size_t n, int64_t *out, sdk_err *err);
void cedar_decimal_format(int64_t v, char *buf, size_t cap);
int cedar_ip_parse(const char *s, size_t n, cedar_ipaddr *out, sdk_err *err);
void cedar_ip_format(const cedar_ipaddr *ip, char *buf, size_t cap);
int cedar_datetime_parse(const char *s, size_t n, int64_t *out, sdk_err *err);
void cedar_datetime_format(int64_t ms, char *buf, size_t cap);
int cedar_duration_parse(const char *s, size_t n, int64_t *out, sdk_err *err);
void cedar_duration_format(int64_t ms, char *buf, size_t cap);

/* The per-extension tables, joined by cedar_ext_find. */
extern const cedar_ext_def cedar_ext_decimal[];
extern const cedar_ext_def cedar_ext_ip[];
extern const cedar_ext_def cedar_ext_datetime[];

/* Shared by the extension files: the type error every method gives when a
 * receiver or argument has the wrong type. */
int cedar_ext_type_error(const cedar_value *got, int want_kind, sdk_err *err);

#endif
