/* The metrics kernel's scrapes, on the event loop: the API (its port from
 * the configuration), every enabled kernel (by name, through the call
 * path, so a kernel that moved is followed: DATA_DIR/ports.json), and the
 * external targets of [metrics] target lines. Each is scraped every
 * scrape_interval_ms at an offset of its own within the interval; its
 * health, last scrape and last error are kept for /api/v1/targets. And,
 * every log_verify_interval_s, the immutable log's /verify as a probe. */
#ifndef GRACE_METRICS_SCRAPE_H
#define GRACE_METRICS_SCRAPE_H

#include "kernels/layer.h"

#include "kernels/metrics/tsdb.h"
#include "sdk/kernel.h"

#include <jansson.h>

typedef struct scr scr;

scr *scr_new(sdk_kernel *k, tsdb *db, sdk_err *err);
/* Stops scraping (drain); in-flight scrapes finish or are dropped. */
void scr_stop(scr *s);
void scr_free(scr *s);

/* /api/v1/targets' data ("state": "active", "dropped" or "any"). */
json_t *scr_targets_json(scr *s, const char *state);
/* /api/v1/metadata's data: family -> [{type, help, unit}] (metric may be
 * NULL for all; limit 0 for no limit). */
json_t *scr_metadata_json(scr *s, const char *metric, size_t limit);
/* The scraper's own series for the kernel's /metrics. */
void scr_metrics(scr *s, struct evbuffer *out, const char *kernel_label);

#endif
