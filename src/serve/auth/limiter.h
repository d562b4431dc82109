/* Counting failed logins. Pure: every function takes the time as `now_ms`
 * (any clock, as long as one table or one row keeps to one), so tests drive
 * a fake one.
 *
 * A count is the failures within a window that opens at the first one and
 * lasts `window_ms`; at `max` failures the key is locked until the window
 * closes. The table maps exact keys (no hash slot is ever shared) to counts
 * in bounded memory, and never evicts a count that is still running: when
 * every slot holds one, a new key is refused (SDK_EBUSY) and the caller
 * decides what that means (login.c: the longest delay). */
#ifndef GRACE_AUTH_LIMITER_H
#define GRACE_AUTH_LIMITER_H

#include "serve/layer.h"

#include <stddef.h>
#include <stdint.h>

#define LIMITER_KEY_MAX 80 /* bytes of a key: an address, "loopback", a user name */

typedef struct limiter_count {
	unsigned failures;
	int64_t since_ms; /* when the window opened */
} limiter_count;

/* Forgets a window that has closed, or that opens in the future (a clock
 * set back): either way the failures no longer count. */
void limiter_count_age(limiter_count *c, int64_t now_ms, int64_t window_ms);
/* One more failure, in a new window if the last one has closed. */
void limiter_count_fail(limiter_count *c, int64_t now_ms, int64_t window_ms);
/* 0 when fewer than `max` failures are in the window, else the ms until it
 * closes (at least 1, at most window_ms). */
int64_t limiter_count_locked_ms(const limiter_count *c, int64_t now_ms, int64_t window_ms,
				unsigned max);
/* The delay that goes with the n-th failure: none for the first `free`,
 * then base_ms, doubling, never more than max_ms. */
int64_t limiter_delay_ms(unsigned failures, unsigned free, int64_t base_ms, int64_t max_ms);

typedef struct limiter limiter;

/* A table for up to `capacity` keys (rounded up to a power of two); NULL
 * when out of memory. */
limiter *limiter_new(size_t capacity, int64_t window_ms);
void limiter_free(limiter *l);
/* The key's count now (zero failures when it has none): 0, or SDK_EBUSY
 * when the key has none and there is no room left for it, or SDK_EINVAL
 * for a key longer than LIMITER_KEY_MAX. */
int limiter_get(const limiter *l, const char *key, int64_t now_ms, limiter_count *out);
/* Records a failure and returns the key's count in `out`: 0, SDK_EBUSY
 * (no room: nothing was recorded, nothing evicted) or SDK_EINVAL. */
int limiter_fail(limiter *l, const char *key, int64_t now_ms, limiter_count *out);
/* Drops the key's count (its slot is reused by the next new key). */
void limiter_forget(limiter *l, const char *key);
/* Keys whose count still runs: for tests and metrics. */
size_t limiter_live(const limiter *l, int64_t now_ms);

#endif
