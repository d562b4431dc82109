/* Parsers of the two text exposition formats a scrape may answer in: the
 * Prometheus text format 0.0.4 (timestamps in integer milliseconds,
 * whitespace of any length, empty lines) and OpenMetrics 1.0 text (single
 * spaces, float timestamps in seconds, exemplars, a final "# EOF"). Both
 * follow Prometheus 2.42's lexers (model/textparse), so what Prometheus
 * refuses is refused here too. Pure: no I/O, no allocation but the
 * caller's scratch buffer. */
#ifndef GRACE_METRICS_EXPO_H
#define GRACE_METRICS_EXPO_H

#include "kernels/layer.h"

#include "kernels/metrics/labels.h"
#include "sdk/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum expo_format { EXPO_TEXT, EXPO_OPENMETRICS };

typedef struct expo_sample {
	const char *name;      /* NUL-terminated; borrowed for the callback */
	const lbl_pair *labels; /* without __name__; borrowed */
	size_t n_labels;
	double value;
	bool has_ts;
	int64_t ts_ms;
} expo_sample;

/* Called for every "# TYPE" line: the family and its type. May be NULL. */
typedef void (*expo_type_fn)(void *arg, const char *family, const char *type);
/* Called for every sample; a negative return stops the parse with it. */
typedef int (*expo_sample_fn)(void *arg, const expo_sample *s);

/* The format a Content-Type names (OpenMetrics or, otherwise, text). */
enum expo_format expo_format_of(const char *content_type);

/* Parses `buf` (len bytes, need not be NUL-terminated). Returns 0, the
 * callback's negative return, or SDK_EINVAL with "line N: why" in err. */
int expo_parse(const char *buf, size_t len, enum expo_format fmt, expo_sample_fn on_sample,
	       expo_type_fn on_type, void *arg, sdk_err *err);

/* Go's strconv.ParseFloat on [s, s+n): decimal, hex, Inf, NaN, with an
 * optional sign; false when it is not a number. */
bool expo_parse_float(const char *s, size_t n, double *out);

#endif
