/* Request metrics in the Prometheus text exposition format (version 0.0.4):
 * counts by route, method and status, a latency histogram per route, and the
 * process's own facts (RSS, open fds, CPU time, uptime, build). Every series
 * of every Grace process names its process with the one label `kernel`
 * (the main process is kernel="grace"). */
#ifndef GRACE_SDK_METRICS_H
#define GRACE_SDK_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;
typedef struct sdk_metrics sdk_metrics;

/* `routes` are the labels of routes 0..n-1 (borrowed; must outlive the
 * metrics); a request that matched no route is counted as "unmatched". */
sdk_metrics *sdk_metrics_new(const char *const *routes, size_t n);
void sdk_metrics_free(sdk_metrics *m);

/* route < 0 means unmatched. */
void sdk_metrics_observe(sdk_metrics *m, int route, const char *method, int status,
			 double seconds);

/* Appends every metric, labelled kernel="name", to `out`. */
void sdk_metrics_render(const sdk_metrics *m, const char *component, double uptime_s,
			struct evbuffer *out);

/* Escapes a label value as the exposition format requires. Writes at most
 * len bytes including the NUL. */
void sdk_metrics_escape(const char *in, char *out, size_t len);

#endif
