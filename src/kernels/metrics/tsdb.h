/* The series store: Gorilla chunks (xorc.h) in memory and in SQLite.
 *
 * Every series has an open head chunk in memory; at `chunk_samples`
 * samples (or a span of TSDB_CHUNK_SPAN_MS) it is sealed. A flush, run
 * every few seconds on a worker thread, writes in one transaction the new
 * series, the sealed chunks and a copy of every head that changed (a
 * checkpoint: after a crash, only samples since the last flush are lost).
 * Retention by age and by size runs inside the flush. Queries run on
 * worker threads: under the lock they copy what is in memory, then read
 * the chunks on disk through a connection of their own (WAL: readers never
 * wait for the writer). The loop appends and prepares flushes; it never
 * touches SQLite but through a worker.
 *
 * Stale markers (Prometheus's special NaN, TSDB_STALE_NAN) are stored as
 * samples like any other. */
#ifndef GRACE_METRICS_TSDB_H
#define GRACE_METRICS_TSDB_H

#include "kernels/layer.h"

#include "kernels/metrics/index.h"
#include "kernels/metrics/labels.h"
#include "sdk/err.h"

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TSDB_STALE_NAN_BITS 0x7ff0000000000002ULL
#define TSDB_CHUNK_SPAN_MS (2LL * 3600 * 1000) /* a chunk covers at most this */
#define TSDB_CHUNK_SAMPLES_DEFAULT 120

bool tsdb_is_stale(double v);
double tsdb_stale_nan(void);

typedef struct tsdb_opts {
	size_t max_series;        /* past it, new series are refused */
	int64_t retention_ms;     /* 0: keep by age for ever */
	uint64_t retention_bytes; /* 0: no limit on the chunks' compressed bytes */
	unsigned chunk_samples;   /* 0: the default */
} tsdb_opts;

/* What tsdb_append did with a sample. */
enum tsdb_append_result {
	TSDB_APPENDED = 0,
	TSDB_DUPLICATE = 1,     /* same timestamp and value as the last: ignored */
	TSDB_OUT_OF_ORDER = -1, /* older than the series' last sample */
	TSDB_DUPLICATE_TS = -2, /* same timestamp, another value */
	TSDB_SERIES_LIMIT = -3, /* a new series past max_series */
	TSDB_NOMEM = -4,
};

typedef struct tsdb tsdb;

/* Opens the store in DATA_DIR/NAME.db (the kernel's own file), creating
 * its tables, and loads the series and heads. NULL with the reason. */
tsdb *tsdb_open(const char *data_dir, const char *name, const tsdb_opts *o, sdk_err *err);
/* Frees everything (a last flush is the caller's: tsdb_flush_now). */
void tsdb_close(tsdb *db);

/* Appends one sample (any thread; takes the lock). Labels are borrowed. */
int tsdb_append(tsdb *db, const lbl_set *ls, int64_t t, double v);
/* The same for many, under one lock; results[i] as tsdb_append's (may be
 * NULL). Returns the number appended. */
size_t tsdb_append_many(tsdb *db, lbl_set *const *ls, const int64_t *t, const double *v,
			size_t n, int *results);

/* A flush in three steps: prepare (under the lock: what to write), write
 * (a worker: SQLite, no lock), done (under the lock: forget what was
 * written). `now_ms` decides retention. Only one flush at a time:
 * prepare returns NULL while one is running or when nothing is to do. */
typedef struct tsdb_flush tsdb_flush;
tsdb_flush *tsdb_flush_prepare(tsdb *db, int64_t now_ms, bool retention);
void tsdb_flush_write(tsdb_flush *f);
/* 0, or the write's failure (then nothing is lost: the next flush tries
 * again); frees f. */
int tsdb_flush_done(tsdb *db, tsdb_flush *f, sdk_err *err);
/* A prepared flush that will not be written (its worker never ran):
 * everything stays for the next one; frees f. */
void tsdb_flush_cancel(tsdb *db, tsdb_flush *f);
/* prepare + write + done at once (tests, shutdown). */
int tsdb_flush_now(tsdb *db, int64_t now_ms, bool retention, sdk_err *err);

/* ---- queries (any thread) */

typedef struct tsdb_chunk_copy {
	int64_t min_t, max_t;
	uint8_t *data;
	size_t len;
} tsdb_chunk_copy;

typedef struct tsdb_series_copy {
	lbl_set *ls; /* owned (reference 1) */
	tsdb_chunk_copy *c;
	size_t n;
} tsdb_series_copy;

typedef struct tsdb_selection {
	tsdb_series_copy *s; /* sorted by labels */
	size_t n;
} tsdb_selection;

/* The series the matchers select, with their chunks overlapping
 * [mint, maxt]; with `labels_only`, no chunks (series, label names and
 * values APIs): then series with no sample in the range are kept too
 * unless `mint`..`maxt` excludes their whole life. */
int tsdb_select(tsdb *db, const idx_matcher *m, size_t nm, int64_t mint, int64_t maxt,
		bool labels_only, tsdb_selection *out, sdk_err *err);
void tsdb_selection_free(tsdb_selection *s);

/* Decodes a series' samples within [mint, maxt] into *pts (grown as
 * needed; *cap its capacity). Stale markers included. */
typedef struct tsdb_point {
	int64_t t;
	double v;
} tsdb_point;
int tsdb_series_points(const tsdb_series_copy *s, int64_t mint, int64_t maxt,
		       tsdb_point **pts, size_t *n, size_t *cap);

/* Label names and values over every series (sorted; malloc'd copies,
 * freed with tsdb_strings_free). */
int tsdb_label_names(tsdb *db, char ***out, size_t *n);
int tsdb_label_values(tsdb *db, const char *name, char ***out, size_t *n);
void tsdb_strings_free(char **s, size_t n);

typedef struct tsdb_stats {
	size_t series;
	uint64_t head_samples, head_bytes, head_chunks;
	uint64_t disk_samples, disk_bytes, disk_chunks;
	uint64_t store_bytes; /* the SQLite pages in use, at the last flush */
	int64_t min_t, max_t; /* of the samples known in memory and on disk */
	uint64_t appended, out_of_order, duplicate_ts, series_refused;
	uint64_t flushes, flush_failures, retention_deleted_chunks, series_removed;
} tsdb_stats;

void tsdb_get_stats(tsdb *db, tsdb_stats *st);

#endif
