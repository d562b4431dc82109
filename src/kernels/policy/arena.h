/* A bump allocator: everything a parsed policy set, an entity set or one
 * evaluation needs comes from one arena and goes with it, so nothing in the
 * engine frees piecemeal and an evaluation costs no malloc once the arena
 * has grown to fit. A byte budget bounds what bad input can make us hold. */
#ifndef GRACE_POLICY_ARENA_H
#define GRACE_POLICY_ARENA_H

#include "kernels/layer.h"

#include <stddef.h>

#define CEDAR_ARENA_CHUNK 16384

typedef struct cedar_arena_chunk cedar_arena_chunk;

typedef struct cedar_arena {
	cedar_arena_chunk *head; /* newest first */
	char *cur, *end;
	size_t total;  /* bytes held in chunks */
	size_t budget; /* 0: unbounded; else alloc fails past it */
} cedar_arena;

/* budget 0 means unbounded. The arena holds nothing until the first alloc. */
void cedar_arena_init(cedar_arena *a, size_t budget);
/* Frees every chunk. */
void cedar_arena_free(cedar_arena *a);
/* Forgets every allocation but keeps the largest chunk for reuse. */
void cedar_arena_reset(cedar_arena *a);
/* 8-byte aligned, zeroed memory; NULL when out of memory or over budget. */
void *cedar_arena_alloc(cedar_arena *a, size_t n);
/* A copy of n bytes with a NUL after them. */
char *cedar_arena_strndup(cedar_arena *a, const char *s, size_t n);

#endif
