/* One scrape's answer into the store, as Prometheus 2.42's scrape loop
 * does it (scrape/scrape.go): every sample gets the target's labels (a
 * label the target also sets is kept as exported_NAME, honor_labels being
 * false), takes the scrape's time unless it carries its own, and a series
 * the previous scrape had and this one lacks gets a staleness marker. A
 * scrape that fails (unreachable, unparsable, over its sample limit)
 * appends nothing but marks every series of the last good one stale.
 * Pure: no event loop; the store is the only shared state. */
#ifndef GRACE_METRICS_INGEST_H
#define GRACE_METRICS_INGEST_H

#include "kernels/layer.h"

#include "kernels/metrics/expo.h"
#include "kernels/metrics/labels.h"
#include "kernels/metrics/tsdb.h"

#include <stddef.h>
#include <stdint.h>

/* A set of label sets (the series a target's last scrape had). */
typedef struct ing_set {
	lbl_set **slot; /* open addressing by hash; references held */
	size_t n_slot, n;
} ing_set;

void ing_set_free(ing_set *s);

typedef struct ing_result {
	size_t scraped;   /* samples in the answer */
	size_t appended;
	size_t added;     /* series the previous scrape did not have */
	size_t out_of_order, duplicates, refused; /* refused: over the series limit */
	size_t stale_marked;
} ing_result;

/* Appends a scrape's answer at `ts_ms`. `target` holds the labels every
 * sample gets (job, instance). `on_type` (may be NULL) sees every family's
 * type. 0, or SDK_EINVAL (unparsable; the reason in err), SDK_ETOOLARGE
 * (over sample_limit, when non-zero); on failure nothing is appended and
 * `prev` is left for ing_fail. */
int ing_scrape(tsdb *db, const char *body, size_t len, enum expo_format fmt,
	       const lbl_set *target, int64_t ts_ms, unsigned sample_limit, ing_set *prev,
	       expo_type_fn on_type, void *type_arg, ing_result *r, sdk_err *err);

/* A failed scrape: every series of the last good one goes stale at ts. */
size_t ing_fail(tsdb *db, ing_set *prev, int64_t ts_ms);

/* The scrape's own series (up, scrape_duration_seconds,
 * scrape_samples_scraped, scrape_samples_post_metric_relabeling,
 * scrape_series_added) with the target's labels. */
void ing_report(tsdb *db, const lbl_set *target, int64_t ts_ms, bool up, double duration_s,
		const ing_result *r);

/* The format an answer is in: OpenMetrics when its last line is "# EOF"
 * (what we asked for first), else the text format. */
enum expo_format ing_sniff(const char *body, size_t len);

#endif
