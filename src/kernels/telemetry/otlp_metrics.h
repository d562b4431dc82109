/* OTLP metrics as Prometheus samples, the way the OpenTelemetry
 * Collector's Prometheus exporters translate them and the specification's
 * "Prometheus and OpenMetrics Compatibility" section says: names with
 * their unit and _total suffixes, attributes as labels, the resource's
 * service.name as job and service.instance.id as instance, histograms as
 * _bucket (cumulative, with le) / _sum / _count, summaries as quantiles /
 * _sum / _count, delta sums and histograms accumulated into cumulative
 * ones. The result is the metrics kernel's /write body. Pure: no event
 * loop; the accumulator is used by one thread at a time. */
#ifndef GRACE_TELEMETRY_OTLP_METRICS_H
#define GRACE_TELEMETRY_OTLP_METRICS_H

#include "kernels/layer.h"

#include "kernels/telemetry/otlp.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* The metrics kernel's label limits (src/kernels/metrics/labels.h): a
 * point whose labels would break them is rejected here, so that /write,
 * which refuses a whole body for one bad series, never sees it. */
#define OTLP_PROM_LABELS_MAX 63 /* plus __name__ */
#define OTLP_PROM_NAME_MAX 256
#define OTLP_PROM_VALUE_MAX 4096

/* Running totals of delta sums and histograms, by series (at most
 * `series_max`; a delta point of a new series past it is rejected). */
typedef struct otlp_prom_acc otlp_prom_acc;

otlp_prom_acc *otlp_prom_acc_new(size_t series_max);
void otlp_prom_acc_free(otlp_prom_acc *acc);
size_t otlp_prom_acc_size(const otlp_prom_acc *acc);

typedef struct otlp_prom_out {
	json_t *series; /* [{"labels":{...},"samples":[[ms, value]]}, ...], owned by the caller */
	size_t points;  /* data points in the request */
	size_t rejected;
	char why[OTLP_WHY_MAX]; /* the first rejection's reason */
} otlp_prom_out;

/* Translates an OTLP/JSON ExportMetricsServiceRequest. 0 and *out, or a
 * status with the reason in `err`: SDK_EINVAL (a shape that is not OTLP)
 * or SDK_ETOOLARGE (more than `points_max` data points, counted first):
 * then out->series is NULL.
 * `now_ms` stands for a point without a time. */
int otlp_prom_translate(otlp_prom_acc *acc, json_t *req, size_t points_max, int64_t now_ms,
			otlp_prom_out *out, sdk_err *err);

/* The Prometheus name of an OTLP metric (out: at most outlen bytes with
 * the NUL; "" when nothing is left of it). `kind`: 'g' gauge, 'c' counter
 * (a monotonic sum), 'u' a non-monotonic sum, 'h' histogram, 's' summary. */
void otlp_prom_name(const char *name, const char *unit, char kind, char *out, size_t outlen);

/* A label name from an attribute key (out as above). */
void otlp_prom_label(const char *key, char *out, size_t outlen);

#endif
