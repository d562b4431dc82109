#include "sdk/metrics.h"

#include "sdk/proc.h"

#include <event2/buffer.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const double latency_buckets[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
					  0.05,   0.1,   0.25,   0.5,   1,    2.5, 5, 10 };
#define N_BUCKETS (sizeof latency_buckets / sizeof latency_buckets[0])

struct status_count {
	int route; /* -1 unmatched */
	char method[16]; /* longer methods are cut, and compared cut */
	int status;
	uint64_t count;
};

struct route_hist {
	uint64_t buckets[N_BUCKETS]; /* non-cumulative; summed at render */
	uint64_t count;
	double sum;
};

struct sdk_metrics {
	const char *const *routes;
	size_t n_routes;
	struct route_hist *hist; /* n_routes + 1: the last is "unmatched" */
	struct status_count *counts;
	size_t n_counts, cap_counts;
	time_t started;
};

sdk_metrics *sdk_metrics_new(const char *const *routes, size_t n)
{
	sdk_metrics *m = calloc(1, sizeof *m);
	if (!m)
		return NULL;
	m->hist = calloc(n + 1, sizeof *m->hist);
	if (!m->hist) {
		free(m);
		return NULL;
	}
	m->routes = routes;
	m->n_routes = n;
	m->started = time(NULL);
	return m;
}

void sdk_metrics_free(sdk_metrics *m)
{
	if (!m)
		return;
	free(m->hist);
	free(m->counts);
	free(m);
}

static struct status_count *count_slot(sdk_metrics *m, int route, const char *method,
				       int status)
{
	for (size_t i = 0; i < m->n_counts; i++) {
		struct status_count *c = &m->counts[i];
		if (c->route == route && c->status == status &&
		    !strncmp(c->method, method, sizeof c->method - 1))
			return c;
	}
	if (m->n_counts == m->cap_counts) {
		size_t cap = m->cap_counts ? m->cap_counts * 2 : 16;
		struct status_count *n = realloc(m->counts, cap * sizeof *n);
		if (!n)
			return NULL;
		m->counts = n;
		m->cap_counts = cap;
	}
	struct status_count *c = &m->counts[m->n_counts++];
	*c = (struct status_count){ .route = route, .status = status };
	snprintf(c->method, sizeof c->method, "%s", method);
	return c;
}

void sdk_metrics_observe(sdk_metrics *m, int route, const char *method, int status,
			 double seconds)
{
	if (route < 0 || (size_t)route >= m->n_routes)
		route = -1;
	struct status_count *c = count_slot(m, route, method, status);
	if (c)
		c->count++;
	struct route_hist *h = &m->hist[route < 0 ? m->n_routes : (size_t)route];
	size_t b = 0;
	while (b < N_BUCKETS && seconds > latency_buckets[b])
		b++;
	if (b < N_BUCKETS)
		h->buckets[b]++;
	h->count++;
	h->sum += seconds;
}

void sdk_metrics_escape(const char *in, char *out, size_t len)
{
	size_t o = 0;
	for (; *in && o + 3 < len; in++) {
		if (*in == '\\' || *in == '"') {
			out[o++] = '\\';
			out[o++] = *in;
		} else if (*in == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else {
			out[o++] = *in;
		}
	}
	out[o] = '\0';
}

static const char *route_label(const sdk_metrics *m, int route)
{
	return route < 0 ? "unmatched" : m->routes[route];
}

/* User plus system CPU time of every thread of this process. */
static double cpu_seconds(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) < 0)
		return 0;
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

void sdk_metrics_render(const sdk_metrics *m, const char *component, double uptime_s,
			struct evbuffer *out)
{
	char comp[128], route[512], method[32];
	sdk_metrics_escape(component, comp, sizeof comp);

	evbuffer_add_printf(out, "# HELP grace_http_requests_total HTTP requests answered.\n"
				 "# TYPE grace_http_requests_total counter\n");
	for (size_t i = 0; i < m->n_counts; i++) {
		const struct status_count *c = &m->counts[i];
		sdk_metrics_escape(route_label(m, c->route), route, sizeof route);
		sdk_metrics_escape(c->method, method, sizeof method);
		evbuffer_add_printf(out,
				    "grace_http_requests_total{kernel=\"%s\",route=\"%s\","
				    "method=\"%s\",status=\"%d\"} %llu\n",
				    comp, route, method, c->status, (unsigned long long)c->count);
	}

	evbuffer_add_printf(out,
			    "# HELP grace_http_request_duration_seconds Time to answer a request.\n"
			    "# TYPE grace_http_request_duration_seconds histogram\n");
	for (size_t r = 0; r <= m->n_routes; r++) {
		const struct route_hist *h = &m->hist[r];
		if (h->count == 0)
			continue;
		sdk_metrics_escape(route_label(m, r == m->n_routes ? -1 : (int)r), route,
				   sizeof route);
		uint64_t cum = 0;
		for (size_t b = 0; b < N_BUCKETS; b++) {
			cum += h->buckets[b];
			evbuffer_add_printf(out,
					    "grace_http_request_duration_seconds_bucket{kernel=\"%s\","
					    "route=\"%s\",le=\"%g\"} %llu\n",
					    comp, route, latency_buckets[b], (unsigned long long)cum);
		}
		evbuffer_add_printf(out,
				    "grace_http_request_duration_seconds_bucket{kernel=\"%s\","
				    "route=\"%s\",le=\"+Inf\"} %llu\n"
				    "grace_http_request_duration_seconds_sum{kernel=\"%s\","
				    "route=\"%s\"} %.9f\n"
				    "grace_http_request_duration_seconds_count{kernel=\"%s\","
				    "route=\"%s\"} %llu\n",
				    comp, route, (unsigned long long)h->count, comp, route, h->sum,
				    comp, route, (unsigned long long)h->count);
	}

	uint64_t rss = 0, max_fds = 0;
	unsigned fds = 0;
	proc_rss_bytes(0, &rss);
	proc_open_fds(0, &fds);
	proc_max_fds(0, &max_fds);
	evbuffer_add_printf(out,
			    "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
			    "# TYPE process_resident_memory_bytes gauge\n"
			    "process_resident_memory_bytes{kernel=\"%s\"} %llu\n"
			    "# HELP process_open_fds Number of open file descriptors.\n"
			    "# TYPE process_open_fds gauge\n"
			    "process_open_fds{kernel=\"%s\"} %u\n"
			    "# HELP process_max_fds Maximum number of open file descriptors.\n"
			    "# TYPE process_max_fds gauge\n"
			    "process_max_fds{kernel=\"%s\"} %llu\n"
			    "# HELP process_start_time_seconds Start time since the epoch.\n"
			    "# TYPE process_start_time_seconds gauge\n"
			    "process_start_time_seconds{kernel=\"%s\"} %lld\n"
			    "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
			    "# TYPE process_cpu_seconds_total counter\n"
			    "process_cpu_seconds_total{kernel=\"%s\"} %.6f\n"
			    "# HELP grace_uptime_seconds Seconds since this process started.\n"
			    "# TYPE grace_uptime_seconds gauge\n"
			    "grace_uptime_seconds{kernel=\"%s\"} %.3f\n"
			    "# HELP grace_build_info The Grace version this process runs.\n"
			    "# TYPE grace_build_info gauge\n"
			    "grace_build_info{kernel=\"%s\",version=\"%s\"} 1\n",
			    comp, (unsigned long long)rss, comp, fds, comp,
			    (unsigned long long)max_fds, comp, (long long)m->started, comp, cpu_seconds(),
			    comp, uptime_s, comp, GRACE_VERSION);
}
