/* Failed logins of accounts that exist, kept in the store's login_failures
 * table (grace.db, or PostgreSQL: serve/store/store.h): one row per
 * account with a running count, keyed by the account's exact name and
 * dropped with it. So the state that protects an account
 * is bounded by the number of users, no other name can evict it, and a
 * restart does not lift a lock. Times are wall-clock ms (they outlive the
 * process); limiter.h's pure functions do the arithmetic. Each call is one
 * primary-key statement on the loop's own connection (in PostgreSQL, a
 * failure is counted in one short transaction that locks the row, so
 * hosts counting the same account at once lose no failure). */
#ifndef GRACE_AUTH_LOCKOUT_H
#define GRACE_AUTH_LOCKOUT_H

#include "serve/layer.h"

#include "serve/auth/limiter.h"
#include "serve/store/store.h"

#include <sqlite3.h>

/* The account's count as stored (zero when it has none): 0 or a negative
 * sdk_status. */
int auth_lockout_get(grace_store *store, const char *user, limiter_count *out);
/* Records a failure and returns the new count: 0, SDK_ENOTFOUND (no such
 * user any more: nothing stored) or another negative sdk_status. */
int auth_lockout_fail(grace_store *store, const char *user, int64_t now_ms, int64_t window_ms,
		      limiter_count *out);
/* After a successful login or a new password: 0 or a negative sdk_status. */
int auth_lockout_clear(grace_store *store, const char *user);

#endif
