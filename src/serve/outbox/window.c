#include "serve/outbox/window.h"

#include "sdk/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int obw_init(obw_table *t, int64_t window_ms, size_t max)
{
	memset(t, 0, sizeof *t);
	if (window_ms <= 0 || max == 0 || max > UINT32_MAX / 4)
		return SDK_EINVAL;
	t->window_ms = window_ms;
	t->max = max;
	t->start_ms = INT64_MIN;
	t->nslots = 1;
	while (t->nslots < 2 * max)
		t->nslots <<= 1;
	t->entries = calloc(max, sizeof *t->entries);
	t->slots = calloc(t->nslots, sizeof *t->slots);
	if (!t->entries || !t->slots) {
		obw_free(t);
		return SDK_EIO;
	}
	return 0;
}

void obw_free(obw_table *t)
{
	free(t->entries);
	free(t->slots);
	t->entries = NULL;
	t->slots = NULL;
}

int64_t obw_start(int64_t window_ms, int64_t now_ms)
{
	int64_t r = now_ms % window_ms;
	return now_ms - (r < 0 ? r + window_ms : r);
}

size_t obw_close(obw_table *t, int64_t now_ms, bool force, obw_emit_fn emit, void *arg)
{
	if (t->start_ms == INT64_MIN)
		return 0;
	if (!force && now_ms >= t->start_ms && now_ms < t->start_ms + t->window_ms)
		return 0;
	size_t emitted = 0;
	for (size_t i = 0; i < t->n; i++, emitted++)
		emit(&t->entries[i], t->start_ms, t->window_ms, arg);
	if (t->other.count) {
		emit(&t->other, t->start_ms, t->window_ms, arg);
		emitted++;
	}
	t->n = 0;
	memset(t->slots, 0, t->nslots * sizeof *t->slots);
	memset(&t->other, 0, sizeof t->other);
	t->start_ms = INT64_MIN;
	return emitted;
}

/* FNV-1a over source, a separator and kind. */
static uint32_t key_hash(const char *source, const char *kind)
{
	uint32_t h = 2166136261u;
	for (const unsigned char *p = (const unsigned char *)source; *p; p++)
		h = (h ^ *p) * 16777619u;
	h = (h ^ 0xFF) * 16777619u;
	for (const unsigned char *p = (const unsigned char *)kind; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h;
}

static void entry_open(obw_entry *e, const char *source, const char *kind, const char *sample,
		       const char *sample_id, int64_t now_ms)
{
	snprintf(e->source, sizeof e->source, "%s", source);
	snprintf(e->kind, sizeof e->kind, "%s", kind);
	ob_path_clip(sample, OB_SAMPLE_MAX, e->sample);
	snprintf(e->sample_id, sizeof e->sample_id, "%s", sample_id ? sample_id : "");
	e->count = 0;
	e->first_ms = now_ms;
}

bool obw_add(obw_table *t, const char *source, const char *kind, const char *sample,
	     const char *sample_id, int64_t now_ms, obw_emit_fn emit, void *arg)
{
	obw_close(t, now_ms, false, emit, arg);
	if (t->start_ms == INT64_MIN)
		t->start_ms = obw_start(t->window_ms, now_ms);
	t->counted++;
	/* Keys are compared as the entries keep them (cut to their size). */
	char src[OBW_SOURCE_MAX];
	snprintf(src, sizeof src, "%s", source ? source : "");
	size_t mask = t->nslots - 1;
	size_t i = key_hash(src, kind) & mask;
	obw_entry *e = NULL;
	for (; t->slots[i]; i = (i + 1) & mask) {
		obw_entry *c = &t->entries[t->slots[i] - 1];
		if (!strcmp(c->source, src) && !strcmp(c->kind, kind)) {
			e = c;
			break;
		}
	}
	bool folded = false;
	if (!e && t->n < t->max) {
		e = &t->entries[t->n++];
		t->slots[i] = (uint32_t)t->n;
		entry_open(e, src, kind, sample, sample_id, now_ms);
	} else if (!e) {
		e = &t->other;
		folded = true;
		t->folded++;
		if (e->count == 0)
			entry_open(e, "", "", sample, sample_id, now_ms);
	}
	e->count++;
	e->last_ms = now_ms;
	return folded;
}

size_t obw_open(const obw_table *t) { return t->n; }
