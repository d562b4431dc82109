#include "serve/auth/limiter.h"

#include <stdlib.h>
#include <string.h>

struct slot {
	char key[96];
	unsigned failures;
	uint64_t first_ms;
};

struct limiter {
	unsigned max_failures;
	uint64_t window_ms;
	struct slot slots[LIMITER_SLOTS];
};

static uint32_t hash(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/* The key's slot; a full table reuses the slot whose window is oldest, so
 * the table stays bounded whatever the number of addresses. */
static struct slot *slot_for(limiter *l, const char *key, uint64_t now_ms, int create)
{
	uint32_t h = hash(key);
	struct slot *oldest = NULL;
	for (unsigned i = 0; i < 8; i++) {
		struct slot *s = &l->slots[(h + i) % LIMITER_SLOTS];
		if (!strncmp(s->key, key, sizeof s->key - 1) && s->key[0]) {
			if (now_ms - s->first_ms >= l->window_ms) {
				s->failures = 0;
				s->first_ms = now_ms;
			}
			return s;
		}
		if (!oldest || !s->key[0] || (oldest->key[0] && s->first_ms < oldest->first_ms))
			oldest = s;
	}
	if (!create)
		return NULL;
	memset(oldest, 0, sizeof *oldest);
	strncpy(oldest->key, key, sizeof oldest->key - 1);
	oldest->first_ms = now_ms;
	return oldest;
}

limiter *limiter_new(unsigned max_failures, unsigned window_s)
{
	limiter *l = calloc(1, sizeof *l);
	if (l) {
		l->max_failures = max_failures;
		l->window_ms = (uint64_t)window_s * 1000;
	}
	return l;
}

void limiter_free(limiter *l) { free(l); }

uint64_t limiter_blocked_ms(limiter *l, const char *key, uint64_t now_ms)
{
	struct slot *s = slot_for(l, key, now_ms, 0);
	if (!s || s->failures < l->max_failures)
		return 0;
	return s->first_ms + l->window_ms - now_ms;
}

uint64_t limiter_fail(limiter *l, const char *key, uint64_t now_ms)
{
	struct slot *s = slot_for(l, key, now_ms, 1);
	s->failures++;
	if (s->failures <= LIMITER_FREE_FAILURES)
		return 0;
	uint64_t d = LIMITER_DELAY_BASE_MS;
	for (unsigned i = LIMITER_FREE_FAILURES + 1; i < s->failures && d < LIMITER_DELAY_MAX_MS; i++)
		d *= 2;
	return d < LIMITER_DELAY_MAX_MS ? d : LIMITER_DELAY_MAX_MS;
}

void limiter_reset(limiter *l, const char *key, uint64_t now_ms)
{
	struct slot *s = slot_for(l, key, now_ms, 0);
	if (s)
		s->failures = 0;
}
