/* Gorilla chunks (Pelkonen et al., VLDB 2015), as Prometheus's XOR chunk
 * encodes them: timestamps as delta-of-delta in buckets of 1, 14, 17, 20
 * or 64 bits, values XORed with the previous one, keeping the previous
 * window of meaningful bits when the new one fits in it. A chunk is a
 * 2-byte big-endian sample count followed by the bit stream; on disk it
 * is exactly that, so a chunk read back needs nothing else to decode. */
#ifndef GRACE_METRICS_XORC_H
#define GRACE_METRICS_XORC_H

#include "kernels/layer.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define XORC_HEADER 2
#define XORC_SAMPLES_MAX 65535

/* An open chunk being appended to. The buffer grows as needed. */
typedef struct xorc_app {
	uint8_t *buf; /* owned; XORC_HEADER + the stream */
	size_t cap;
	size_t bits; /* written bits after the header */
	uint16_t n;
	int64_t t;
	uint64_t t_delta;
	uint64_t v; /* the last value's bits */
	uint8_t leading, trailing;
} xorc_app;

void xorc_app_init(xorc_app *a);
void xorc_app_free(xorc_app *a);
/* Appends; t must be later than the last (the caller checks). 0, or -1
 * when out of memory or full. */
int xorc_append(xorc_app *a, int64_t t, double v);
/* The chunk's bytes (header included) and their number. */
size_t xorc_bytes(const xorc_app *a);
/* Reopens a chunk read back (e.g. a head saved at a checkpoint) for more
 * appends: decodes it to restore the state. Takes a copy. 0 or -1. */
int xorc_app_load(xorc_app *a, const uint8_t *data, size_t len);

typedef struct xorc_it {
	const uint8_t *buf;
	size_t len_bits; /* of the stream */
	size_t pos;
	uint16_t n, i;
	int64_t t;
	uint64_t t_delta;
	uint64_t v;
	uint8_t leading, trailing;
	bool bad;
} xorc_it;

void xorc_it_init(xorc_it *it, const uint8_t *data, size_t len);
/* The next sample; false at the end or on a damaged chunk (it->bad). */
bool xorc_next(xorc_it *it, int64_t *t, double *v);
/* The number of samples a chunk holds (from its header). */
unsigned xorc_count(const uint8_t *data, size_t len);

#endif
