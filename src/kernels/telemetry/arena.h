/* The jansson values of one OTLP request, allocated from one block that
 * is reused request after request. Parsing a request with jansson, and
 * freeing its tree, was mostly malloc and free: about 30,000 instructions
 * of a span's 225,000 (docs/telemetry.md). jansson's own hook
 * (json_set_alloc_funcs) sends its allocations here while a thread has an
 * arena begun, and to malloc otherwise, or when the block is full.
 *
 * The rule that makes it safe: between tel_arena_begin and tel_arena_end,
 * every jansson value the thread makes is freed (json_decref: a no-op for
 * the block's) before tel_arena_end, and none is handed to another thread
 * or kept (the telemetry kernel's export job: parse, check, write the rows
 * as text, decref the tree; never the metrics translation, whose delta
 * totals outlive the request). Memory jansson hands out in that window
 * (json_dumps's text) is the block's too: never free() it there; write
 * into a buffer of one's own (json_dumpb). */
#ifndef GRACE_TELEMETRY_ARENA_H
#define GRACE_TELEMETRY_ARENA_H

#include <stddef.h>

typedef struct tel_arena {
	char *p;
	size_t len, cap;
} tel_arena;

/* Makes jansson allocate through the arenas, process-wide: once, before
 * any thread begins one. Without an arena begun it is malloc and free. */
void tel_arena_install(void);
/* This thread's jansson allocations come from `a` (a block of at least
 * `cap` bytes, kept from an earlier request when big enough). */
void tel_arena_begin(tel_arena *a, size_t cap);
/* They no longer do; the block's contents are forgotten. */
void tel_arena_end(tel_arena *a);
/* Frees the block (after tel_arena_end). */
void tel_arena_free(tel_arena *a);

#endif
