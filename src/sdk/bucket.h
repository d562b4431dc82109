/* A token bucket: `capacity` tokens at most, refilled at `per_ms` tokens
 * a millisecond, by the caller's clock (any monotonic milliseconds; a
 * clock that goes back refills nothing). Pure: no clock read, no
 * allocation, so it is tested alone and saved as its three numbers. The
 * healer's hourly budget (self_healing) and the tracer's cap on the
 * traces it records a second use it. */
#ifndef GRACE_SDK_BUCKET_H
#define GRACE_SDK_BUCKET_H

#include <stdbool.h>
#include <stdint.h>

typedef struct sdk_bucket {
	double tokens, capacity, per_ms;
	int64_t last_ms;
} sdk_bucket;

/* Full. */
void sdk_bucket_init(sdk_bucket *b, double capacity, double per_ms, int64_t now_ms);
/* Refills for the time since the last call; the tokens there are now. */
double sdk_bucket_tokens(sdk_bucket *b, int64_t now_ms);
/* Refills, then takes a token if there is one (true). */
bool sdk_bucket_take(sdk_bucket *b, int64_t now_ms);
/* Milliseconds until a token is there (0: now; -1: never, no refill). */
int64_t sdk_bucket_wait_ms(sdk_bucket *b, int64_t now_ms);

#endif
