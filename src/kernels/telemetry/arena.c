/* A request's jansson tree in one block (arena.h). */
#include "kernels/telemetry/arena.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

/* The arena taking this thread's jansson allocations, or NULL. Another
 * thread (the loop's) never sees one: its allocations are malloc's. */
static _Thread_local tel_arena *current;

#define ALIGN 16 /* as malloc's, for any jansson struct */

static void *arena_malloc(size_t n)
{
	tel_arena *a = current;
	if (a && a->p) {
		size_t need = (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
		if (need >= n && a->len <= a->cap && need <= a->cap - a->len) {
			void *p = a->p + a->len;
			a->len += need;
			return p;
		}
	}
	return malloc(n); /* full, or no arena: freed by free() below */
}

/* An arena's block is released whole by tel_arena_end; only what came
 * from malloc is freed one by one. The check is the thread's arena: its
 * values never reach another thread (arena.h). */
static void arena_free(void *p)
{
	tel_arena *a = current;
	if (a && a->p && (uintptr_t)p >= (uintptr_t)a->p &&
	    (uintptr_t)p < (uintptr_t)a->p + a->cap)
		return;
	free(p);
}

void tel_arena_install(void)
{
	json_set_alloc_funcs(arena_malloc, arena_free);
}

void tel_arena_begin(tel_arena *a, size_t cap)
{
	if (!a->p || a->cap < cap) {
		free(a->p);
		a->p = malloc(cap);
		a->cap = a->p ? cap : 0;
	}
	a->len = 0;
	current = a;
}

void tel_arena_end(tel_arena *a)
{
	if (current == a)
		current = NULL;
	a->len = 0;
}

void tel_arena_free(tel_arena *a)
{
	tel_arena_end(a);
	free(a->p);
	a->p = NULL;
	a->cap = 0;
}
