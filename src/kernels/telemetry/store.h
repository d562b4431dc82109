/* The telemetry kernel's SQLite store: spans (each kept whole as its
 * OTLP/JSON, with the columns searched by beside it and its attributes as
 * key/text rows), log records likewise, and retention by age and by size.
 * Every function blocks: call it from the kernel's worker, never the loop. */
#ifndef GRACE_TELEMETRY_STORE_H
#define GRACE_TELEMETRY_STORE_H

#include "kernels/layer.h"
#include "kernels/telemetry/otlp.h"

#include "sdk/err.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdint.h>

#define TEL_PAGE_MAX 1000
#define TEL_TRACE_SPANS_MAX 10000 /* spans of one trace answered */

typedef struct tel_span_filter {
	const char *service, *name;
	const char *attr_key, *attr_value; /* equality; NULL: none */
	int status;                        /* -1: any */
	int64_t min_duration_ns, max_duration_ns; /* max 0: none */
	int64_t since_ns, until_ns;        /* on the span's start; until 0: none */
	unsigned limit;
} tel_span_filter;

typedef struct tel_log_filter {
	const char *trace_id, *span_id, *service;
	int64_t since_ns, until_ns;
	unsigned limit;
} tel_log_filter;

int tel_store_init(sqlite3 *db, sdk_err *err);
/* The statements tel_store_spans keeps prepared from one batch to the
 * next, for one connection: used by one thread at a time (the kernel's
 * worker), freed before the connection is closed. */
typedef struct tel_stmts tel_stmts;
tel_stmts *tel_stmts_new(void);
void tel_stmts_free(tel_stmts *s);

/* Inserts the rows of otlp_json_batch in one transaction, or none. */
int tel_store_spans(sqlite3 *db, tel_stmts *s, const otlp_batch *b, int64_t now_ms,
		    sdk_err *err);
int tel_store_logs(sqlite3 *db, const otlp_batch *b, int64_t now_ms, sdk_err *err);
/* *out: a new object {"traceId", "spanCount", "roots": [span + "children"]};
 * SDK_ENOTFOUND when no span has that id. */
int tel_trace(sqlite3 *db, const char *trace_id, json_t **out, sdk_err *err);
/* *out: a new array of spans, latest start first. */
int tel_search(sqlite3 *db, const tel_span_filter *f, json_t **out, sdk_err *err);
/* *out: a new array of log records, by time. */
int tel_logs(sqlite3 *db, const tel_log_filter *f, json_t **out, sdk_err *err);
/* Deletes what was received before now - max_age_ms, then the oldest until
 * the store's live pages fit in max_bytes. *deleted: rows deleted. */
int tel_retain(sqlite3 *db, int64_t now_ms, int64_t max_age_ms, size_t max_bytes,
	       unsigned long long *deleted, sdk_err *err);

#endif
