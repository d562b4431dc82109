/* The templating of alert labels and annotations: the subset of Go's
 * text/template that Prometheus rules use (docs/alerts.md lists it):
 *
 *   {{ $labels.NAME }}  {{ .Labels.NAME }}   a label of the alert ("" when absent)
 *   {{ $value }}        {{ .Value }}         the sample's value, printed as Go's %v
 *   {{ $externalLabels.NAME }}, {{ $externalURL }}   (empty in Grace)
 *   pipelines:  {{ $value | humanize }}, {{ $labels.job | toUpper }}
 *   functions:  humanize, humanize1024, humanizePercentage, humanizeDuration,
 *               printf FORMAT ARGS..., toUpper, toLower, title
 *   literals:   "strings", `raw strings`, numbers; template comments;
 *               {{- and -}} trim the blanks beside them.
 *
 * Anything else (if, range, with, variables of one's own, query) is
 * refused when a rule file is loaded, with the reason. Pure. */
#ifndef GRACE_ALERTS_TMPL_H
#define GRACE_ALERTS_TMPL_H

#include "kernels/layer.h"

#include "sdk/err.h"

#include <jansson.h>
#include <stddef.h>

#define TMPL_OUT_MAX 16384

/* *out: malloc'd. 0, or SDK_EINVAL with the reason ("template: ..."). */
int tmpl_expand(const char *text, const json_t *labels, double value, char **out, sdk_err *err);
/* Whether text would expand (a syntax and name check). */
int tmpl_check(const char *text, sdk_err *err);

/* Go's %v of a float64 (strconv 'g', shortest; exponent form from 1e6 up
 * and below 1e-4) into buf. */
void tmpl_go_float(double v, char *buf, size_t len);

#endif
