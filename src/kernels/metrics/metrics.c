/* The metrics kernel (8141): scrapes the API and every kernel (and the
 * targets the configuration adds), keeps the series in Gorilla chunks in
 * its SQLite file, and answers PromQL through the Prometheus HTTP API
 * (api.c), so Grafana, promtool or any Prometheus client can read it.
 * docs/metrics.md says how to use it and what it measures. */
#include "kernels/metrics/metrics.h"

#include "kernels/registry.h"
#include "sdk/clock.h"
#include "sdk/log.h"
#include "sdk/metrics.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RETENTION_EVERY_MS 60000
#define WRITER_QUEUE 4

struct flush_job {
	mkernel *m;
	tsdb_flush *f;
	bool ran;
};

static void flush_work(void *arg)
{
	struct flush_job *j = arg;
	tsdb_flush_write(j->f);
	j->ran = true;
}

static void flush_done(void *arg)
{
	struct flush_job *j = arg;
	mkernel *m = j->m;
	m->flushing = false;
	if (!j->ran) {
		tsdb_flush_cancel(m->db, j->f);
	} else {
		sdk_err e;
		if (tsdb_flush_done(m->db, j->f, &e) < 0) {
			tsdb_stats st;
			tsdb_get_stats(m->db, &st);
			if (st.flush_failures % 30 == 1)
				sdk_warn("metrics: cannot write the series store (%s); samples stay in "
					 "memory and the next flush tries again", e.msg);
		}
	}
	free(j);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	mkernel *m = arg;
	if (m->flushing)
		return;
	int64_t now = sdk_wall_ms();
	bool retention = now >= m->retention_due_ms;
	tsdb_flush *f = tsdb_flush_prepare(m->db, now, retention);
	if (!f)
		return;
	if (retention)
		m->retention_due_ms = now + RETENTION_EVERY_MS;
	struct flush_job *j = calloc(1, sizeof *j);
	if (!j) {
		tsdb_flush_cancel(m->db, f);
		return;
	}
	*j = (struct flush_job){ .m = m, .f = f };
	if (sdk_pool_submit(m->writer, flush_work, flush_done, j) < 0) {
		tsdb_flush_cancel(m->db, f);
		free(j);
		return;
	}
	m->flushing = true;
}

static void mk_free(mkernel *m)
{
	if (!m)
		return;
	if (m->scraper)
		scr_stop(m->scraper);
	if (m->flush_ev)
		event_free(m->flush_ev);
	/* Running queries finish; queued ones are answered 503. */
	sdk_pool_free(m->queries);
	sdk_pool_free(m->writer);
	scr_free(m->scraper);
	if (m->db) {
		/* The last samples go to disk before the process ends. */
		sdk_err e;
		if (tsdb_flush_now(m->db, sdk_wall_ms(), false, &e) < 0)
			sdk_warn("metrics: the last flush failed: %s", e.msg);
		tsdb_close(m->db);
	}
	free(m);
}

static int mk_init(sdk_kernel *k, sdk_err *err)
{
	const grace_metrics *mc = &k->cfg->metrics;
	mkernel *m = calloc(1, sizeof *m);
	if (!m) {
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	m->k = k;
	tsdb_opts o = { .max_series = mc->max_series,
			.retention_ms = (int64_t)mc->retention_s * 1000,
			.retention_bytes = mc->retention_bytes };
	sdk_err e = { "out of memory" };
	m->db = tsdb_open(k->cfg->data_dir, k->def->name, &o, &e);
	if (!m->db) {
		sdk_fail(err, SDK_EIO, "%s", e.msg);
		mk_free(m);
		return SDK_EIO;
	}
	m->queries = sdk_pool_new(k->base, mc->query_threads, mc->query_queue);
	m->writer = sdk_pool_new(k->base, 1, WRITER_QUEUE);
	m->flush_ev = event_new(k->base, -1, EV_PERSIST, on_flush, m);
	if (!m->queries || !m->writer || !m->flush_ev ||
	    !(m->scraper = scr_new(k, m->db, &e))) {
		sdk_fail(err, SDK_EIO, "%s", e.msg);
		mk_free(m);
		return SDK_EIO;
	}
	m->retention_due_ms = sdk_wall_ms();
	struct timeval tv = sdk_ms_tv(mc->flush_interval_ms);
	event_add(m->flush_ev, &tv);
	k->state = m;
	tsdb_stats st;
	tsdb_get_stats(m->db, &st);
	sdk_info("metrics: %zu series, %llu samples on disk", st.series,
		 (unsigned long long)st.disk_samples);
	return 0;
}

static void mk_drain(sdk_kernel *k)
{
	mkernel *m = k->state;
	if (!m)
		return;
	m->draining = true;
	scr_stop(m->scraper);
}

static void mk_close(sdk_kernel *k)
{
	mk_free(k->state);
	k->state = NULL;
}

static void mk_metrics(sdk_kernel *k, struct evbuffer *out)
{
	mkernel *m = k->state;
	char kl[64];
	sdk_metrics_escape(k->def->name, kl, sizeof kl);
	tsdb_stats st;
	tsdb_get_stats(m->db, &st);
	uint64_t samples = st.disk_samples + st.head_samples, bytes = st.disk_bytes + st.head_bytes;
	evbuffer_add_printf(
		out,
		"# HELP grace_tsdb_series Series in the store.\n"
		"# TYPE grace_tsdb_series gauge\n"
		"grace_tsdb_series{kernel=\"%s\"} %zu\n"
		"# HELP grace_tsdb_series_limit The store's max_series.\n"
		"# TYPE grace_tsdb_series_limit gauge\n"
		"grace_tsdb_series_limit{kernel=\"%s\"} %u\n"
		"# HELP grace_tsdb_samples Samples held, in memory and on disk.\n"
		"# TYPE grace_tsdb_samples gauge\n"
		"grace_tsdb_samples{kernel=\"%s\",where=\"memory\"} %llu\n"
		"grace_tsdb_samples{kernel=\"%s\",where=\"disk\"} %llu\n"
		"# HELP grace_tsdb_chunk_bytes Compressed bytes of the chunks.\n"
		"# TYPE grace_tsdb_chunk_bytes gauge\n"
		"grace_tsdb_chunk_bytes{kernel=\"%s\",where=\"memory\"} %llu\n"
		"grace_tsdb_chunk_bytes{kernel=\"%s\",where=\"disk\"} %llu\n"
		"# HELP grace_tsdb_store_bytes The SQLite pages in use, at the last flush.\n"
		"# TYPE grace_tsdb_store_bytes gauge\n"
		"grace_tsdb_store_bytes{kernel=\"%s\"} %llu\n"
		"# HELP grace_tsdb_bytes_per_sample Compressed bytes per sample.\n"
		"# TYPE grace_tsdb_bytes_per_sample gauge\n"
		"grace_tsdb_bytes_per_sample{kernel=\"%s\"} %.4f\n"
		"# HELP grace_tsdb_samples_appended_total Samples appended.\n"
		"# TYPE grace_tsdb_samples_appended_total counter\n"
		"grace_tsdb_samples_appended_total{kernel=\"%s\"} %llu\n"
		"# HELP grace_tsdb_series_refused_total New series refused at max_series.\n"
		"# TYPE grace_tsdb_series_refused_total counter\n"
		"grace_tsdb_series_refused_total{kernel=\"%s\"} %llu\n"
		"# HELP grace_tsdb_flushes_total Flushes of the store, and those that failed.\n"
		"# TYPE grace_tsdb_flushes_total counter\n"
		"grace_tsdb_flushes_total{kernel=\"%s\",result=\"ok\"} %llu\n"
		"grace_tsdb_flushes_total{kernel=\"%s\",result=\"failed\"} %llu\n"
		"# HELP grace_tsdb_retention_chunks_deleted_total Chunks retention removed.\n"
		"# TYPE grace_tsdb_retention_chunks_deleted_total counter\n"
		"grace_tsdb_retention_chunks_deleted_total{kernel=\"%s\"} %llu\n"
		"# HELP grace_metrics_queries_total PromQL queries answered, and those that failed.\n"
		"# TYPE grace_metrics_queries_total counter\n"
		"grace_metrics_queries_total{kernel=\"%s\",result=\"ok\"} %llu\n"
		"grace_metrics_queries_total{kernel=\"%s\",result=\"failed\"} %llu\n"
		"grace_metrics_queries_total{kernel=\"%s\",result=\"refused\"} %llu\n"
		"# HELP grace_metrics_query_seconds_total Time spent answering PromQL queries.\n"
		"# TYPE grace_metrics_query_seconds_total counter\n"
		"grace_metrics_query_seconds_total{kernel=\"%s\"} %.6f\n",
		kl, st.series, kl, k->cfg->metrics.max_series, kl,
		(unsigned long long)st.head_samples, kl, (unsigned long long)st.disk_samples, kl,
		(unsigned long long)st.head_bytes, kl, (unsigned long long)st.disk_bytes, kl,
		(unsigned long long)st.store_bytes, kl, samples ? (double)bytes / (double)samples : 0.0,
		kl, (unsigned long long)st.appended, kl, (unsigned long long)st.series_refused, kl,
		(unsigned long long)st.flushes, kl, (unsigned long long)st.flush_failures, kl,
		(unsigned long long)st.retention_deleted_chunks, kl,
		(unsigned long long)(m->st.queries - m->st.query_failures), kl,
		(unsigned long long)m->st.query_failures, kl, (unsigned long long)m->st.queries_refused,
		kl, m->st.query_seconds);
	scr_metrics(m->scraper, out, kl);
}

static const sdk_route mk_routes[] = {
	SDK_ROUTE("GET", "/api/v1/query", mk_on_query),
	SDK_ROUTE("POST", "/api/v1/query", mk_on_query),
	SDK_ROUTE("GET", "/api/v1/query_range", mk_on_query_range),
	SDK_ROUTE("POST", "/api/v1/query_range", mk_on_query_range),
	SDK_ROUTE("GET", "/api/v1/series", mk_on_series),
	SDK_ROUTE("POST", "/api/v1/series", mk_on_series),
	SDK_ROUTE("GET", "/api/v1/labels", mk_on_labels),
	SDK_ROUTE("POST", "/api/v1/labels", mk_on_labels),
	SDK_ROUTE("GET", "/api/v1/label/:name/values", mk_on_label_values),
	SDK_ROUTE("GET", "/api/v1/targets", mk_on_targets),
	SDK_ROUTE("GET", "/api/v1/metadata", mk_on_metadata),
	SDK_ROUTE("GET", "/api/v1/status/buildinfo", mk_on_buildinfo),
	SDK_ROUTE("GET", "/api/v1/status/tsdb", mk_on_tsdb_status),
	SDK_ROUTE("GET", "/api/v1/query_exemplars", mk_on_exemplars),
	SDK_ROUTE("POST", "/api/v1/query_exemplars", mk_on_exemplars),
	SDK_ROUTE("GET", "/api/v1/rules", mk_on_rules),
	SDK_ROUTE("GET", "/api/v1/alerts", mk_on_alerts),
	SDK_ROUTE("GET", "/federate", mk_on_federate),
	SDK_ROUTE("POST", "/write", mk_on_write),
};

const sdk_kernel_def metrics_kernel = {
	.name = "metrics",
	.port = 8141,
	.tier = "services",
	.summary = "scrapes every /metrics and keeps series; PromQL and the Prometheus API",
	.complete = true,
	/* Its tables as they are today: a change is a new step in
	 * .migrations and a new fixture directory (docs/upgrades.md). */
	.schema_version = 1,
	.routes = mk_routes,
	.n_routes = sizeof mk_routes / sizeof mk_routes[0],
	.init = mk_init,
	.drain = mk_drain,
	.close = mk_close,
	.metrics = mk_metrics,
};
