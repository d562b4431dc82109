#include "kernels/policy/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct cedar_arena_chunk {
	cedar_arena_chunk *next;
	size_t size; /* bytes of data[] */
	max_align_t data[];
};

void cedar_arena_init(cedar_arena *a, size_t budget)
{
	*a = (cedar_arena){ .budget = budget };
}

void cedar_arena_free(cedar_arena *a)
{
	cedar_arena_chunk *c = a->head;
	while (c) {
		cedar_arena_chunk *next = c->next;
		free(c);
		c = next;
	}
	a->head = NULL;
	a->cur = a->end = NULL;
	a->total = 0;
}

void cedar_arena_reset(cedar_arena *a)
{
	cedar_arena_chunk *keep = NULL, *c = a->head;
	while (c) {
		cedar_arena_chunk *next = c->next;
		if (!keep || c->size > keep->size) {
			free(keep);
			keep = c;
		} else {
			free(c);
		}
		c = next;
	}
	a->head = keep;
	if (keep) {
		keep->next = NULL;
		a->cur = (char *)keep->data;
		a->end = a->cur + keep->size;
		a->total = keep->size;
	} else {
		a->cur = a->end = NULL;
		a->total = 0;
	}
}

void *cedar_arena_alloc(cedar_arena *a, size_t n)
{
	n = (n + 7) & ~(size_t)7;
	if (n == 0)
		n = 8;
	if ((size_t)(a->end - a->cur) < n || !a->cur) {
		size_t size = n > CEDAR_ARENA_CHUNK / 2 ? n : CEDAR_ARENA_CHUNK;
		/* Grow geometrically so a big evaluation needs few chunks. */
		if (a->total > size && n <= a->total / 2)
			size = a->total / 2 > CEDAR_ARENA_CHUNK * 64 ? CEDAR_ARENA_CHUNK * 64 : a->total / 2;
		if (size < n)
			size = n;
		if (a->budget && a->total + size > a->budget) {
			if (a->total + n > a->budget)
				return NULL;
			size = n;
		}
		cedar_arena_chunk *c = malloc(sizeof *c + size);
		if (!c)
			return NULL;
		c->next = a->head;
		c->size = size;
		a->head = c;
		a->cur = (char *)c->data;
		a->end = a->cur + size;
		a->total += size;
	}
	void *p = a->cur;
	a->cur += n;
	memset(p, 0, n);
	return p;
}

char *cedar_arena_strndup(cedar_arena *a, const char *s, size_t n)
{
	char *p = cedar_arena_alloc(a, n + 1);
	if (!p)
		return NULL;
	if (n)
		memcpy(p, s, n);
	p[n] = 0;
	return p;
}
