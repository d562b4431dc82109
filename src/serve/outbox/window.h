/* Counting windows for noise: how many requests each (source, kind) made
 * in a window of window_ms, windows aligned on multiples of window_ms. At
 * most `max` keys are counted apart in a window; the requests of any
 * further key are folded into one "other sources" entry, so memory, and
 * the events a window becomes, are bounded whatever the flood. Time is
 * passed in; no I/O. */
#ifndef GRACE_OUTBOX_WINDOW_H
#define GRACE_OUTBOX_WINDOW_H

#include "serve/layer.h"

#include "serve/outbox/classify.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OBW_SOURCE_MAX 64 /* an address, with its NUL */
#define OBW_ID_MAX 72     /* a request id, with its NUL */

typedef struct obw_entry {
	char source[OBW_SOURCE_MAX]; /* "" in the other-sources entry */
	char kind[OB_KIND_MAX];      /* "" in the other-sources entry */
	char sample[OB_SAMPLE_MAX + 1]; /* the first request's path, clipped */
	char sample_id[OBW_ID_MAX];     /* and its request id */
	uint64_t count;
	int64_t first_ms, last_ms;
} obw_entry;

typedef struct obw_table {
	int64_t window_ms;
	size_t max;
	int64_t start_ms; /* of the window being counted; INT64_MIN before the first */
	size_t n;
	obw_entry *entries; /* max of them, owned */
	uint32_t *slots;    /* hash index: entry + 1, 0 when empty; owned */
	size_t nslots;      /* a power of two, at least 2 * max */
	obw_entry other;
	uint64_t counted, folded; /* since init */
} obw_table;

/* Called for each entry of a window as it closes (the other-sources entry,
 * when it counted anything, last). */
typedef void (*obw_emit_fn)(const obw_entry *e, int64_t start_ms, int64_t window_ms, void *arg);

/* 0, or SDK_EINVAL (window_ms or max is 0), SDK_EIO (out of memory). */
int obw_init(obw_table *t, int64_t window_ms, size_t max);
void obw_free(obw_table *t);
/* The start of the window holding now_ms. */
int64_t obw_start(int64_t window_ms, int64_t now_ms);
/* Emits and empties the window being counted when now_ms is past its end
 * (or before its start: the clock went back), or at once with `force`.
 * Returns how many entries were emitted. */
size_t obw_close(obw_table *t, int64_t now_ms, bool force, obw_emit_fn emit, void *arg);
/* Counts one request in the window holding now_ms, closing an older window
 * first. `sample` (a raw path) and `sample_id` are kept only by the request
 * that opens an entry. Returns true when it was folded into "other". */
bool obw_add(obw_table *t, const char *source, const char *kind, const char *sample,
	     const char *sample_id, int64_t now_ms, obw_emit_fn emit, void *arg);
/* Entries counted apart in the window now open. */
size_t obw_open(const obw_table *t);

#endif
