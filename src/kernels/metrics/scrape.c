#include "kernels/metrics/scrape.h"

#include "kernels/metrics/ingest.h"
#include "sdk/clock.h"
#include "sdk/log.h"
#include "sdk/ports.h"
#include "sdk/rfc3339.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TICK_MS 100
#define METADATA_MAX 20000 /* families whose type is remembered */
#define VERIFY_TIMEOUT_MS (10 * 60 * 1000)
/* What Prometheus 2.42 asks for: OpenMetrics first. */
static const char accept_header[] =
	"application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
	"q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

enum target_kind { TARGET_API, TARGET_KERNEL, TARGET_EXTERNAL };
enum health { HEALTH_UNKNOWN, HEALTH_UP, HEALTH_DOWN };

typedef struct target {
	struct scr *s;
	enum target_kind kind;
	char job[64];
	char instance[64];
	char kernel[GRACE_NAME_MAX];
	char address[64]; /* host:port as configured (a kernel's may have moved) */
	int port;         /* API and external targets */
	char path[96];
	lbl_set *labels;  /* job, instance */
	int64_t offset_ms;
	int64_t next_ms;  /* wall clock */
	bool busy;
	int64_t started_ms;
	struct timespec started_mono;
	enum health health;
	int64_t last_ms;
	double last_duration;
	char last_error[256];
	ing_set prev;
	uint64_t scrapes, failures;
} target;

struct meta {
	struct meta *next;
	char *family;
	char *type;
};

struct scr {
	sdk_kernel *k;
	tsdb *db;
	unsigned interval_ms, timeout_ms, sample_limit;
	target *t;
	size_t n;
	struct event *tick;
	bool stopped;
	struct meta *meta[1024];
	size_t n_meta;
	uint64_t samples, stale_marked, out_of_order, duplicates, refused;
	/* the immutable log's /verify */
	unsigned verify_every_s;
	int64_t verify_next_ms;
	bool verify_busy;
	int verify_ok; /* -1 never ran */
	int64_t verify_last_ms;
	double verify_seconds;
	uint64_t verify_runs, verify_failures;
};

static uint64_t str_hash(const char *s)
{
	lbl_pair p = { s, "x" };
	return lbl_hash_pairs(&p, 1);
}

static void on_type(void *arg, const char *family, const char *type)
{
	scr *s = arg;
	uint64_t h = str_hash(family) % (sizeof s->meta / sizeof s->meta[0]);
	for (struct meta *m = s->meta[h]; m; m = m->next)
		if (!strcmp(m->family, family)) {
			if (strcmp(m->type, type)) {
				char *t = strdup(type);
				if (t) {
					free(m->type);
					m->type = t;
				}
			}
			return;
		}
	if (s->n_meta >= METADATA_MAX)
		return;
	struct meta *m = calloc(1, sizeof *m);
	if (!m || !(m->family = strdup(family)) || !(m->type = strdup(type))) {
		if (m)
			free(m->family);
		free(m);
		return;
	}
	m->next = s->meta[h];
	s->meta[h] = m;
	s->n_meta++;
}

static void scrape_done(target *t, int status, const char *body, size_t len, const char *error)
{
	scr *s = t->s;
	t->busy = false;
	double dur = sdk_ms_since(&t->started_mono) / 1e3;
	ing_result r = { 0 };
	sdk_err e = { "" };
	int rc = -1;
	if (status == 200) {
		rc = ing_scrape(s->db, body, len, ing_sniff(body, len), t->labels, t->started_ms,
				s->sample_limit, &t->prev, on_type, s, &r, &e);
	} else if (status == 0) {
		snprintf(e.msg, sizeof e.msg, "%s", error ? error : "no answer");
	} else {
		snprintf(e.msg, sizeof e.msg, "server returned HTTP status %d", status);
	}
	t->scrapes++;
	t->last_ms = t->started_ms;
	t->last_duration = dur;
	if (rc == 0) {
		t->health = HEALTH_UP;
		t->last_error[0] = '\0';
		if (r.refused)
			snprintf(t->last_error, sizeof t->last_error,
				 "%zu new series refused: the store holds its max_series", r.refused);
	} else {
		t->health = HEALTH_DOWN;
		t->failures++;
		snprintf(t->last_error, sizeof t->last_error, "%s", e.msg);
		s->stale_marked += ing_fail(s->db, &t->prev, t->started_ms);
		memset(&r, 0, sizeof r);
	}
	s->samples += r.appended;
	s->stale_marked += r.stale_marked;
	s->out_of_order += r.out_of_order;
	s->duplicates += r.duplicates;
	s->refused += r.refused;
	ing_report(s->db, t->labels, t->started_ms, rc == 0, dur, &r);
}

static void on_scraped(int status, const char *body, size_t len, double ms, const char *error,
		       void *arg)
{
	(void)ms;
	scrape_done(arg, status, body, len, error);
}

static void scrape_start(target *t, int64_t now_ms)
{
	scr *s = t->s;
	const char *headers[] = { "Accept", accept_header, "X-Prometheus-Scrape-Timeout-Seconds",
				  NULL, NULL };
	char timeout[32];
	snprintf(timeout, sizeof timeout, "%g", s->timeout_ms / 1000.0);
	headers[3] = timeout;
	t->busy = true;
	t->started_ms = now_ms;
	t->started_mono = sdk_mono_now();
	int rc = t->kind == TARGET_KERNEL
			 ? sdk_call(s->k->caller, t->kernel, "GET", t->path, NULL, 0, headers,
				    s->timeout_ms, on_scraped, t)
			 : sdk_call_port(s->k->caller, t->port, "GET", t->path, NULL, 0, headers,
					 s->timeout_ms, on_scraped, t);
	if (rc < 0)
		scrape_done(t, 0, NULL, 0, "cannot start the request");
}

/* ---- the log's /verify */

static void on_verified(int status, const char *body, size_t len, double ms, const char *error,
			void *arg)
{
	(void)error;
	scr *s = arg;
	s->verify_busy = false;
	if (status != 200 || !body)
		return; /* unreachable or busy: no verdict */
	json_t *r = json_loadb(body, len, 0, NULL);
	json_t *ok = json_object_get(r, "ok");
	if (json_is_boolean(ok)) {
		s->verify_ok = json_is_true(ok);
		s->verify_last_ms = sdk_wall_ms();
		s->verify_seconds = ms / 1e3;
		s->verify_runs++;
		if (!s->verify_ok) {
			s->verify_failures++;
			sdk_warn("the immutable log failed its verification: %s",
				 json_string_value(json_object_get(r, "reason"))
					 ? json_string_value(json_object_get(r, "reason"))
					 : "(no reason given)");
		}
	}
	json_decref(r);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	scr *s = arg;
	if (s->stopped)
		return;
	int64_t now = sdk_wall_ms();
	for (size_t i = 0; i < s->n; i++) {
		target *t = &s->t[i];
		if (t->busy || now < t->next_ms)
			continue;
		/* The next slot of this target's phase after now. */
		int64_t base = now - ((now - t->offset_ms) % s->interval_ms);
		t->next_ms = base + s->interval_ms;
		scrape_start(t, now);
	}
	if (s->verify_every_s && !s->verify_busy && now >= s->verify_next_ms) {
		s->verify_next_ms = now + (int64_t)s->verify_every_s * 1000;
		if (sdk_call(s->k->caller, "immutable_log", "GET", "/verify", NULL, 0, NULL,
			     VERIFY_TIMEOUT_MS, on_verified, s) == 0)
			s->verify_busy = true;
	}
}

static int add_target(scr *s, enum target_kind kind, const char *job, const char *instance,
		      const char *kernel, int port, const char *path, const char *address)
{
	target *t = &s->t[s->n];
	memset(t, 0, sizeof *t);
	t->s = s;
	t->kind = kind;
	snprintf(t->job, sizeof t->job, "%s", job);
	snprintf(t->instance, sizeof t->instance, "%s", instance);
	snprintf(t->kernel, sizeof t->kernel, "%s", kernel ? kernel : "");
	snprintf(t->path, sizeof t->path, "%s", path);
	snprintf(t->address, sizeof t->address, "%s", address);
	t->port = port;
	lbl_pair p[] = { { "job", job }, { "instance", instance } };
	t->labels = lbl_new(p, 2, NULL);
	if (!t->labels)
		return -1;
	/* A phase of its own within the interval, as Prometheus spreads its
	 * targets (a hash of the target). */
	t->offset_ms = (int64_t)(lbl_hash_pairs(p, 2) % s->interval_ms);
	s->n++;
	return 0;
}

scr *scr_new(sdk_kernel *k, tsdb *db, sdk_err *err)
{
	const grace_config *cfg = k->cfg;
	const grace_metrics *mc = &cfg->metrics;
	scr *s = calloc(1, sizeof *s);
	if (!s) {
		sdk_fail(err, SDK_EIO, "out of memory");
		return NULL;
	}
	s->k = k;
	s->db = db;
	s->interval_ms = mc->scrape_interval_ms;
	s->timeout_ms = mc->scrape_timeout_ms < mc->scrape_interval_ms ? mc->scrape_timeout_ms
								       : mc->scrape_interval_ms;
	s->sample_limit = mc->sample_limit;
	s->verify_ok = -1;
	s->t = calloc(1 + cfg->n_kernels + mc->n_targets, sizeof *s->t);
	if (!s->t) {
		free(s);
		sdk_fail(err, SDK_EIO, "out of memory");
		return NULL;
	}
	char addr[64];
	int api_port = cfg->api_port + cfg->port_offset;
	snprintf(addr, sizeof addr, "127.0.0.1:%d", api_port);
	int rc = add_target(s, TARGET_API, "grace", "api", NULL, api_port, "/metrics", addr);
	bool have_log = false;
	for (size_t i = 0; i < cfg->n_kernels && !rc; i++) {
		const grace_kernel_cfg *kc = &cfg->kernels[i];
		if (!kc->enabled)
			continue;
		have_log |= !strcmp(kc->name, "immutable_log");
		snprintf(addr, sizeof addr, "127.0.0.1:%d", grace_kernel_port(cfg, kc));
		rc = add_target(s, TARGET_KERNEL, "grace", kc->name, kc->name, 0, "/metrics", addr);
	}
	for (size_t i = 0; i < mc->n_targets && !rc; i++) {
		char job[64], a[64], path[96] = "/metrics";
		if (sscanf(mc->targets[i], "%63s %63s %95s", job, a, path) < 2)
			continue;
		const char *colon = strrchr(a, ':');
		int port = colon ? atoi(colon + 1) : 0;
		rc = add_target(s, TARGET_EXTERNAL, job, a, NULL, port, path, a);
	}
	s->verify_every_s = have_log ? mc->log_verify_interval_s : 0;
	/* The first verification a little after start, not at once. */
	s->verify_next_ms = sdk_wall_ms() + 60000;
	s->tick = event_new(k->base, -1, EV_PERSIST, on_tick, s);
	if (rc || !s->tick) {
		scr_free(s);
		sdk_fail(err, SDK_EIO, "out of memory");
		return NULL;
	}
	struct timeval tv = sdk_ms_tv(TICK_MS);
	event_add(s->tick, &tv);
	return s;
}

void scr_stop(scr *s)
{
	s->stopped = true;
	if (s->tick)
		event_del(s->tick);
}

void scr_free(scr *s)
{
	if (!s)
		return;
	if (s->tick)
		event_free(s->tick);
	for (size_t i = 0; i < s->n; i++) {
		lbl_unref(s->t[i].labels);
		ing_set_free(&s->t[i].prev);
	}
	for (size_t i = 0; i < sizeof s->meta / sizeof s->meta[0]; i++)
		for (struct meta *m = s->meta[i], *nx; m; m = nx) {
			nx = m->next;
			free(m->family);
			free(m->type);
			free(m);
		}
	free(s->t);
	free(s);
}

static const char *health_name(enum health h)
{
	return h == HEALTH_UP ? "up" : h == HEALTH_DOWN ? "down" : "unknown";
}

json_t *scr_targets_json(scr *s, const char *state)
{
	json_t *active = json_array();
	bool want_active = !state || !*state || !strcmp(state, "active") || !strcmp(state, "any");
	char interval[32], timeout[32];
	snprintf(interval, sizeof interval, "%gs", s->interval_ms / 1000.0);
	snprintf(timeout, sizeof timeout, "%gs", s->timeout_ms / 1000.0);
	for (size_t i = 0; want_active && i < s->n; i++) {
		target *t = &s->t[i];
		char url[256], last[48], now_at[64];
		const char *address = t->address;
		/* A kernel is where it listens now, which the healer may have
		 * moved: the address it is scraped at, not its configured one. */
		int port = t->kind == TARGET_KERNEL && s->k->ports
				   ? sdk_ports_resolve(t->kernel, s->k->ports)
				   : -1;
		if (port > 0) {
			snprintf(now_at, sizeof now_at, "127.0.0.1:%d", port);
			address = now_at;
		}
		snprintf(url, sizeof url, "http://%s%s", address, t->path);
		/* Prometheus: Go encoding/json of time.Time; never scraped is
		 * Go's zero time. */
		sdk_rfc3339_format_ms(t->last_ms, SDK_RFC3339_GO, last, sizeof last);
		json_t *labels = json_object();
		for (uint32_t j = 0; j < t->labels->n; j++)
			json_object_set_new(labels, t->labels->p[j].name,
					    json_string(t->labels->p[j].value));
		json_t *o = json_pack(
			"{s:{s:s, s:s, s:s, s:s}, s:o, s:s, s:s, s:s, s:s, s:s, s:f, s:s, s:s, s:s}",
			"discoveredLabels", "__address__", address, "__metrics_path__", t->path,
			"__scheme__", "http", "job", t->job, "labels", labels, "scrapePool", t->job,
			"scrapeUrl", url, "globalUrl", url, "lastError", t->last_error, "lastScrape",
			last, "lastScrapeDuration", t->last_duration, "health", health_name(t->health),
			"scrapeInterval", interval, "scrapeTimeout", timeout);
		if (o)
			json_array_append_new(active, o);
	}
	return json_pack("{s:o, s:[]}", "activeTargets", active, "droppedTargets");
}

json_t *scr_metadata_json(scr *s, const char *metric, size_t limit)
{
	json_t *o = json_object();
	for (size_t i = 0; i < sizeof s->meta / sizeof s->meta[0]; i++)
		for (struct meta *m = s->meta[i]; m; m = m->next) {
			if (metric && *metric && strcmp(metric, m->family))
				continue;
			if (limit && json_object_size(o) >= limit)
				return o;
			json_object_set_new(o, m->family,
					    json_pack("[{s:s, s:s, s:s}]", "type", m->type, "help", "",
						      "unit", ""));
		}
	return o;
}

void scr_metrics(scr *s, struct evbuffer *out, const char *kl)
{
	evbuffer_add_printf(out,
			    "# HELP grace_metrics_scrapes_total Scrapes by target and outcome.\n"
			    "# TYPE grace_metrics_scrapes_total counter\n");
	for (size_t i = 0; i < s->n; i++)
		evbuffer_add_printf(out,
				    "grace_metrics_scrapes_total{kernel=\"%s\",target=\"%s\",result=\"ok\"} %llu\n"
				    "grace_metrics_scrapes_total{kernel=\"%s\",target=\"%s\",result=\"failed\"} %llu\n",
				    kl, s->t[i].instance,
				    (unsigned long long)(s->t[i].scrapes - s->t[i].failures), kl,
				    s->t[i].instance, (unsigned long long)s->t[i].failures);
	evbuffer_add_printf(
		out,
		"# HELP grace_metrics_samples_scraped_total Samples appended from scrapes.\n"
		"# TYPE grace_metrics_samples_scraped_total counter\n"
		"grace_metrics_samples_scraped_total{kernel=\"%s\"} %llu\n"
		"# HELP grace_metrics_samples_rejected_total Scraped samples the store refused.\n"
		"# TYPE grace_metrics_samples_rejected_total counter\n"
		"grace_metrics_samples_rejected_total{kernel=\"%s\",reason=\"out_of_order\"} %llu\n"
		"grace_metrics_samples_rejected_total{kernel=\"%s\",reason=\"duplicate_timestamp\"} %llu\n"
		"grace_metrics_samples_rejected_total{kernel=\"%s\",reason=\"series_limit\"} %llu\n"
		"# HELP grace_metrics_stale_markers_total Staleness markers written.\n"
		"# TYPE grace_metrics_stale_markers_total counter\n"
		"grace_metrics_stale_markers_total{kernel=\"%s\"} %llu\n",
		kl, (unsigned long long)s->samples, kl, (unsigned long long)s->out_of_order, kl,
		(unsigned long long)s->duplicates, kl, (unsigned long long)s->refused, kl,
		(unsigned long long)s->stale_marked);
	if (s->verify_every_s && s->verify_ok >= 0)
		evbuffer_add_printf(
			out,
			"# HELP grace_log_verify_success Whether the immutable log's last /verify passed.\n"
			"# TYPE grace_log_verify_success gauge\n"
			"grace_log_verify_success{kernel=\"%s\"} %d\n"
			"# HELP grace_log_verify_last_timestamp_seconds When the log was last verified.\n"
			"# TYPE grace_log_verify_last_timestamp_seconds gauge\n"
			"grace_log_verify_last_timestamp_seconds{kernel=\"%s\"} %.3f\n"
			"# HELP grace_log_verify_duration_seconds How long the last /verify took.\n"
			"# TYPE grace_log_verify_duration_seconds gauge\n"
			"grace_log_verify_duration_seconds{kernel=\"%s\"} %.3f\n"
			"# HELP grace_log_verify_failures_total Verifications of the log that failed.\n"
			"# TYPE grace_log_verify_failures_total counter\n"
			"grace_log_verify_failures_total{kernel=\"%s\"} %llu\n",
			kl, s->verify_ok, kl, (double)s->verify_last_ms / 1e3, kl, s->verify_seconds, kl,
			(unsigned long long)s->verify_failures);
}
