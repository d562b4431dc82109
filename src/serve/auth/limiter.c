#include "serve/auth/limiter.h"

#include "sdk/err.h"

#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define LIMITER_CAPACITY_MAX ((size_t)1 << 20)

void limiter_count_age(limiter_count *c, int64_t now_ms, int64_t window_ms)
{
	if (c->failures && (now_ms < c->since_ms || now_ms - c->since_ms >= window_ms))
		*c = (limiter_count){ 0, 0 };
}

void limiter_count_fail(limiter_count *c, int64_t now_ms, int64_t window_ms)
{
	limiter_count_age(c, now_ms, window_ms);
	if (c->failures == 0)
		c->since_ms = now_ms;
	if (c->failures < UINT_MAX)
		c->failures++;
}

int64_t limiter_count_locked_ms(const limiter_count *c, int64_t now_ms, int64_t window_ms,
				unsigned max)
{
	limiter_count a = *c;
	limiter_count_age(&a, now_ms, window_ms);
	if (a.failures < max)
		return 0;
	int64_t left = a.since_ms + window_ms - now_ms;
	return left < 1 ? 1 : left;
}

int64_t limiter_delay_ms(unsigned failures, unsigned free, int64_t base_ms, int64_t max_ms)
{
	if (failures <= free)
		return 0;
	int64_t d = base_ms;
	for (unsigned i = free + 1; i < failures && d < max_ms; i++)
		d *= 2;
	return d < max_ms ? d : max_ms;
}

/* A slot once used stays used (a probe for a key stops only at a slot never
 * used); a slot whose count is over holds no state and is reused in place. */
struct slot {
	uint64_t hash;
	limiter_count count;
	bool used;
	char key[LIMITER_KEY_MAX + 1];
};

struct limiter {
	size_t mask;
	int64_t window_ms;
	struct slot *slots; /* owned */
};

static uint64_t key_hash(const char *s)
{
	uint64_t h = 14695981039346656037ull; /* FNV-1a: keys are compared exactly */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static bool slot_live(const struct slot *s, int64_t now_ms, int64_t window_ms)
{
	limiter_count c = s->count;
	limiter_count_age(&c, now_ms, window_ms);
	return s->used && c.failures > 0;
}

/* The key's slot, or NULL with *room set to where it would go (NULL when
 * every slot on its way holds a live count). */
static struct slot *slot_find(const limiter *l, const char *key, uint64_t h, int64_t now_ms,
			      struct slot **room)
{
	*room = NULL;
	for (size_t i = 0; i <= l->mask; i++) {
		struct slot *s = &l->slots[(h + i) & l->mask];
		if (!s->used) {
			if (!*room)
				*room = s;
			return NULL;
		}
		if (s->hash == h && !strcmp(s->key, key))
			return s;
		if (!*room && !slot_live(s, now_ms, l->window_ms))
			*room = s;
	}
	return NULL;
}

limiter *limiter_new(size_t capacity, int64_t window_ms)
{
	if (capacity == 0 || capacity > LIMITER_CAPACITY_MAX || window_ms <= 0)
		return NULL;
	size_t n = 1;
	while (n < capacity)
		n *= 2;
	limiter *l = calloc(1, sizeof *l);
	if (!l)
		return NULL;
	l->slots = calloc(n, sizeof *l->slots);
	if (!l->slots) {
		free(l);
		return NULL;
	}
	l->mask = n - 1;
	l->window_ms = window_ms;
	return l;
}

void limiter_free(limiter *l)
{
	if (!l)
		return;
	free(l->slots);
	free(l);
}

int limiter_get(const limiter *l, const char *key, int64_t now_ms, limiter_count *out)
{
	*out = (limiter_count){ 0, 0 };
	if (strlen(key) > LIMITER_KEY_MAX)
		return SDK_EINVAL;
	struct slot *room;
	struct slot *s = slot_find(l, key, key_hash(key), now_ms, &room);
	if (s) {
		*out = s->count;
		limiter_count_age(out, now_ms, l->window_ms);
		return 0;
	}
	return room ? 0 : SDK_EBUSY;
}

int limiter_fail(limiter *l, const char *key, int64_t now_ms, limiter_count *out)
{
	*out = (limiter_count){ 0, 0 };
	size_t n = strlen(key);
	if (n > LIMITER_KEY_MAX)
		return SDK_EINVAL;
	uint64_t h = key_hash(key);
	struct slot *room;
	struct slot *s = slot_find(l, key, h, now_ms, &room);
	if (!s) {
		if (!room)
			return SDK_EBUSY;
		s = room;
		s->used = true;
		s->hash = h;
		s->count = (limiter_count){ 0, 0 };
		memcpy(s->key, key, n + 1);
	}
	limiter_count_fail(&s->count, now_ms, l->window_ms);
	*out = s->count;
	return 0;
}

void limiter_forget(limiter *l, const char *key)
{
	if (strlen(key) > LIMITER_KEY_MAX)
		return;
	struct slot *room;
	struct slot *s = slot_find(l, key, key_hash(key), 0, &room);
	if (s)
		s->count = (limiter_count){ 0, 0 };
}

size_t limiter_live(const limiter *l, int64_t now_ms)
{
	size_t n = 0;
	for (size_t i = 0; i <= l->mask; i++)
		n += slot_live(&l->slots[i], now_ms, l->window_ms);
	return n;
}
