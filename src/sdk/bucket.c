#include "sdk/bucket.h"

void sdk_bucket_init(sdk_bucket *b, double capacity, double per_ms, int64_t now_ms)
{
	*b = (sdk_bucket){ .tokens = capacity, .capacity = capacity, .per_ms = per_ms,
			   .last_ms = now_ms };
}

double sdk_bucket_tokens(sdk_bucket *b, int64_t now_ms)
{
	if (now_ms > b->last_ms) {
		b->tokens += (double)(now_ms - b->last_ms) * b->per_ms;
		if (b->tokens > b->capacity)
			b->tokens = b->capacity;
		b->last_ms = now_ms;
	}
	return b->tokens;
}

bool sdk_bucket_take(sdk_bucket *b, int64_t now_ms)
{
	if (sdk_bucket_tokens(b, now_ms) < 1)
		return false;
	b->tokens -= 1;
	return true;
}

int64_t sdk_bucket_wait_ms(sdk_bucket *b, int64_t now_ms)
{
	double missing = sdk_bucket_tokens(b, now_ms) >= 1 ? 0 : 1 - b->tokens;
	if (missing <= 0)
		return 0;
	return b->per_ms > 0 ? (int64_t)(missing / b->per_ms + 0.999) : -1;
}
