/* The metrics kernel's shared state, for metrics.c (the kernel: store,
 * flushes, its own series) and api.c (the Prometheus HTTP API). */
#ifndef GRACE_METRICS_METRICS_H
#define GRACE_METRICS_METRICS_H

#include "kernels/layer.h"

#include "kernels/metrics/scrape.h"
#include "kernels/metrics/tsdb.h"
#include "sdk/kernel.h"
#include "sdk/pool.h"

#include <stdint.h>

typedef struct mk_stats {
	uint64_t queries, query_failures, query_timeouts, queries_refused;
	double query_seconds;
	uint64_t writes, written_samples;
} mk_stats;

typedef struct mkernel {
	sdk_kernel *k;
	tsdb *db;
	sdk_pool *queries; /* query evaluation, series and label lookups */
	sdk_pool *writer;  /* flushes, one at a time */
	scr *scraper;
	struct event *flush_ev;
	bool flushing, draining;
	int64_t retention_due_ms;
	mk_stats st;
} mkernel;

/* api.c: the routes. */
void mk_on_query(sdk_req *req, void *ctx);
void mk_on_query_range(sdk_req *req, void *ctx);
void mk_on_series(sdk_req *req, void *ctx);
void mk_on_labels(sdk_req *req, void *ctx);
void mk_on_label_values(sdk_req *req, void *ctx);
void mk_on_targets(sdk_req *req, void *ctx);
void mk_on_metadata(sdk_req *req, void *ctx);
void mk_on_buildinfo(sdk_req *req, void *ctx);
void mk_on_tsdb_status(sdk_req *req, void *ctx);
void mk_on_exemplars(sdk_req *req, void *ctx);
void mk_on_federate(sdk_req *req, void *ctx);
void mk_on_rules(sdk_req *req, void *ctx);  /* forwarded to the alerts kernel */
void mk_on_alerts(sdk_req *req, void *ctx);
void mk_on_write(sdk_req *req, void *ctx);

#endif
