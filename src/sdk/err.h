/* Grace's one error convention (docs/errors.md says it at length):
 *
 *   - A function that can fail returns 0 (or a count, an index: >= 0) on
 *     success and a negative sdk_status on failure. NULL-returning
 *     constructors say why through an sdk_err. Thin wrappers of system
 *     calls (sdk_listen_tcp, proc_*) return a negative errno instead, the
 *     one other shape.
 *   - The reason, for a human, goes into an sdk_err the caller passes (may
 *     be NULL), written by the module that knows it and passed up
 *     unprinted. Only the edges (the event loop, main) log.
 *   - At the HTTP edge, sdk_reply_status() turns a status and its reason
 *     into the answer: one mapping from status to HTTP code for every
 *     kernel and the main process.
 *
 * A module with failures of its own (crypto's "does not authenticate")
 * numbers them from SDK_E_MODULE down and maps them itself before falling
 * back on sdk_reply_status(). */
#ifndef GRACE_SDK_ERR_H
#define GRACE_SDK_ERR_H

enum sdk_status {
	SDK_OK = 0,
	SDK_EINVAL = -1,    /* bad input: 400 invalid */
	SDK_ENOTFOUND = -2, /* no such thing: 404 not_found */
	SDK_ECONFLICT = -3, /* exists already, or changed meanwhile: 409 conflict */
	SDK_EDENIED = -4,   /* not the caller's to touch: 403 forbidden */
	SDK_ETOOLARGE = -5, /* a size limit: 413 too_large */
	SDK_EQUOTA = -6,    /* the caller's quota is used up: 403 quota_exceeded */
	SDK_EBUSY = -7,     /* locked or queue full, try again: 503 busy */
	SDK_ETIMEOUT = -8,  /* ran past its deadline: 503 timeout */
	SDK_EFULL = -9,     /* the disk is full: 507 storage_full */
	SDK_ECORRUPT = -10, /* the store no longer holds what was written: 500 storage_corrupt */
	SDK_EIO = -11,      /* any other storage or system failure: 500 storage_error */
	SDK_E_MODULE = -100 /* a module's own statuses are numbered from here down */
};

typedef struct sdk_err {
	char msg[256];
} sdk_err;

/* Writes the reason into `err` (which may be NULL) and returns `code`. */
int sdk_fail(sdk_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The status for a SQLite result code: SQLITE_FULL is SDK_EFULL,
 * SQLITE_CORRUPT and SQLITE_NOTADB SDK_ECORRUPT, SQLITE_BUSY and
 * SQLITE_LOCKED SDK_EBUSY, SQLITE_INTERRUPT SDK_ETIMEOUT, SQLITE_TOOBIG
 * SDK_ETOOLARGE, SQLITE_CONSTRAINT SDK_ECONFLICT, anything else SDK_EIO. */
int sdk_status_of_sqlite(int sqlite_rc);

/* The HTTP status and the error code ("not_found") of a status. */
int sdk_status_http(int status);
const char *sdk_status_code(int status);

#endif
