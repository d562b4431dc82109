/* The login flow: throttling, the password check on the worker pool, and
 * the new session. It knows nothing of HTTP; api/auth.c turns its result
 * into an answer.
 *
 * Two limits, each exact (no key shares another's state):
 *
 *   - per account: `login_failures_max` failures within `login_window_s`
 *     lock the account until that window closes. A locked account's
 *     attempts are refused, even with the right password (that is what a
 *     lock is), and so are attempts that finish after the lock began (so a
 *     burst of parallel guesses gets no more answers than the limit). The
 *     count of an account that exists lives in grace.db (lockout.h); a name
 *     that is no account is counted the same way in a bounded table of its
 *     own, so a lock does not tell which names exist, and filling that table
 *     touches no account.
 *   - per source (source.h: all of loopback is one): past a few failures
 *     within the window, every attempt from that source waits first, a
 *     delay that doubles and never exceeds AUTH_SOURCE_DELAY_MAX_MS. A
 *     source is slowed, never refused: its failures cannot lock anyone out.
 *     Its table is bounded and evicts no running count; a new source that
 *     finds it full waits the longest delay.
 *
 * A failure's answer is also held back by its account's own delay, so one
 * account's guesses get slower and slower before its lock. */
#ifndef GRACE_AUTH_LOGIN_H
#define GRACE_AUTH_LOGIN_H

#include "serve/layer.h"

#include "serve/auth/users.h"
#include "sdk/err.h"

#include <stdint.h>

#define LOGIN_UNKNOWN_NAMES_MAX 4096 /* names that are no account, with a running count */
/* How long a failure's answer is held back, by its account's count. */
#define LOGIN_FREE_FAILURES 3   /* answered at once */
#define LOGIN_DELAY_BASE_MS 250 /* then 250, 500, 1000 ... */
#define LOGIN_DELAY_MAX_MS 4000

/* The login's own outcome besides the sdk_status ones. */
enum { AUTH_ELOCKED = SDK_E_MODULE }; /* the account is locked: 429 */

typedef struct auth_ctx auth_ctx;

typedef struct auth_login_result {
	/* 0; SDK_EDENIED (wrong name or password); AUTH_ELOCKED; SDK_EBUSY
	 * (the hashing queue is full, or shutting down); SDK_EIO and the like
	 * (storage). */
	int status;
	int64_t retry_after_ms; /* AUTH_ELOCKED: until the lock ends */
	const char *name;       /* as given */
	/* status 0: */
	int role;
	const char *token; /* the session's token (wiped after the callback) */
	int64_t expires_ms;
	sdk_err err;
} auth_login_result;

/* Called once, on the loop, with a result valid only during the call. */
typedef void (*auth_login_cb)(const auth_login_result *r, void *arg);

/* Starts a login of `name` with `password` from `peer` (its address as
 * text). `cb` may run before this returns (a locked account, a full
 * queue). Strings are copied; the password is wiped when done. */
void auth_login_start(auth_ctx *a, const char *name, const char *password, const char *peer,
		      auth_login_cb cb, void *arg);

/* For the other check of an account's password (a user changing their
 * own, with the current one), so it is no way around the lock: the ms the
 * account stays locked (0: not locked), or a negative sdk_status. */
int64_t auth_account_locked_ms(auth_ctx *a, const char *name);
/* A wrong current password: counted against the account like a login's. */
void auth_account_failed(auth_ctx *a, const char *name);

/* At shutdown (from auth_free, after the pool has stopped): answers every
 * login still waiting on a timer. */
void auth_login_close_all(auth_ctx *a);

#endif
