/* The alerts kernel (8142): rule files in Prometheus's format evaluated
 * against the metrics kernel (each group every `interval`, its rules in
 * order, a recording rule's result and the ALERTS series written back
 * before the next rule runs), alerts handed to an Alertmanager-like
 * notifier (notifier.h), heal incidents from the bus made alerts, and
 * deliveries to webhooks, a bus subject or a real Alertmanager.
 * docs/alerts.md is the user's guide. */
#include "kernels/alerts/alerts.h"

#include "kernels/alerts/alabels.h"
#include "kernels/alerts/store.h"
#include "kernels/registry.h"
#include "sdk/clock.h"
#include "sdk/log.h"
#include "sdk/metrics.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <glob.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TICK_MS 100
#define QUERY_TIMEOUT_MS 30000
#define WRITE_TIMEOUT_MS 10000
#define POLL_WAIT_MS 25000
#define GC_EVERY_MS 60000
#define SAVE_EVERY_MS 1000
#define RULE_FILE_BYTES_MAX (1u << 20)
#define INCIDENT_GROUP "grace-alerts"
#define INCIDENT_SUBJECT "grace.healer.incident"

static const char default_notifier[] =
	"route:\n"
	"  receiver: bus\n"
	"  group_by: [alertname]\n"
	"  group_wait: 30s\n"
	"  group_interval: 5m\n"
	"  repeat_interval: 4h\n"
	"receivers:\n"
	"  - name: bus\n"
	"    grace_bus_configs:\n"
	"      - subject: grace.alerts\n";

/* Grace alerts on itself out of the box (docs/alerts.md): kernels down or
 * flapping, scrape targets down, heals failing, the audit outbox dropping
 * events, the immutable log's /verify failing, the data directory's disk
 * filling. Loaded as a file of the configuration (read-only through the
 * API); [alerts] default_rules = false leaves it out. */
#define DEFAULT_RULES_NAME "grace-default.yml"
static const char default_rules[] =
	"groups:\n"
	"  - name: grace\n"
	"    rules:\n"
	"      - alert: GraceKernelDown\n"
	"        expr: grace_kernel_up == 0\n"
	"        for: 1m\n"
	"        labels: {severity: critical}\n"
	"        annotations:\n"
	"          summary: \"Kernel {{ $labels.kernel }} is not ready\"\n"
	"      - alert: GraceKernelFlapping\n"
	"        expr: increase(grace_kernel_restarts_total[15m]) >= 3\n"
	"        labels: {severity: warning}\n"
	"        annotations:\n"
	"          summary: \"Kernel {{ $labels.kernel }} restarted {{ $value | humanize }} times in 15 minutes\"\n"
	"      - alert: GraceTargetDown\n"
	"        expr: up == 0\n"
	"        for: 2m\n"
	"        labels: {severity: warning}\n"
	"        annotations:\n"
	"          summary: \"Scrape target {{ $labels.instance }} is down\"\n"
	"      - alert: GraceHealFailing\n"
	"        expr: increase(grace_heal_incidents_total{outcome=~\"failed|refused\"}[30m]) > 0\n"
	"        labels: {severity: critical}\n"
	"        annotations:\n"
	"          summary: \"Healing {{ $labels.healed_kernel }} {{ $labels.outcome }} in the last 30 minutes\"\n"
	"      - alert: GraceAuditEventsDropped\n"
	"        expr: increase(grace_outbox_events_total{result=\"dropped\"}[10m]) > 0\n"
	"        labels: {severity: critical}\n"
	"        annotations:\n"
	"          summary: \"The outbox dropped {{ $value | humanize }} events for {{ $labels.destination }} in 10 minutes\"\n"
	"      - alert: GraceLogVerifyFailing\n"
	"        expr: grace_log_verify_success == 0\n"
	"        labels: {severity: critical}\n"
	"        annotations:\n"
	"          summary: \"The immutable log's /verify failed\"\n"
	"      - alert: GraceDiskFilling\n"
	"        expr: grace_data_dir_free_bytes / grace_data_dir_size_bytes < 0.10\n"
	"        for: 5m\n"
	"        labels: {severity: warning}\n"
	"        annotations:\n"
	"          summary: \"{{ $value | humanizePercentage }} of the data directory's disk is free\"\n"
	"      - alert: GraceDiskFullSoon\n"
	"        expr: predict_linear(grace_data_dir_free_bytes[1h], 86400) < 0\n"
	"        for: 30m\n"
	"        labels: {severity: critical}\n"
	"        annotations:\n"
	"          summary: \"The data directory's disk fills within a day at this rate\"\n";

/* ---- rule files and their groups */

static void group_free(ar_group *g)
{
	ar_group_clear(g);
	free(g);
}

/* Moves the alert state of rules that stay the same (same file, group,
 * name and expression) from the old groups to the new ones, as
 * Prometheus keeps it across a reload. */
static void carry_state(ar_group **old, size_t n_old, ar_group *nw)
{
	for (size_t i = 0; i < n_old; i++) {
		ar_group *o = old[i];
		if (strcmp(o->file, nw->file) || strcmp(o->name, nw->name))
			continue;
		nw->last_eval_ms = o->last_eval_ms;
		nw->eval_seconds = o->eval_seconds;
		for (size_t r = 0; r < nw->n_rules && r < o->n_rules; r++) {
			ar_rule *a = &nw->rules[r], *b = &o->rules[r];
			if (a->alert != b->alert || strcmp(a->name, b->name) || strcmp(a->expr, b->expr))
				continue;
			a->alerts = b->alerts;
			a->n_alerts = b->n_alerts;
			a->cap_alerts = b->cap_alerts;
			b->alerts = NULL;
			b->n_alerts = b->cap_alerts = 0;
			json_decref(a->written);
			a->written = b->written;
			b->written = json_array();
			snprintf(a->health, sizeof a->health, "%s", b->health);
			snprintf(a->last_error, sizeof a->last_error, "%s", b->last_error);
			a->last_eval_ms = b->last_eval_ms;
			a->eval_seconds = b->eval_seconds;
		}
	}
}

static void retire(ak *a, ar_group *g)
{
	if (!g->busy) {
		group_free(g);
		return;
	}
	ar_group **nr = realloc(a->retired, (a->n_retired + 1) * sizeof *nr);
	if (!nr)
		return; /* leaked rather than freed under an evaluation */
	a->retired = nr;
	a->retired[a->n_retired++] = g;
}

ak_file *ak_file_find(ak *a, const char *name)
{
	for (size_t i = 0; i < a->n_files; i++)
		if (!strcmp(a->files[i].name, name))
			return &a->files[i];
	return NULL;
}

int ak_file_set(ak *a, const char *name, const char *yaml, bool paused, bool from_config,
		sdk_err *err)
{
	ar_group *gs;
	size_t ng;
	int rc = ar_parse_file(name, yaml, strlen(yaml), a->k->cfg->alerts.evaluation_interval_ms,
			       &gs, &ng, err);
	if (rc)
		return rc;
	ak_file *f = ak_file_find(a, name);
	if (!f) {
		ak_file *nf = realloc(a->files, (a->n_files + 1) * sizeof *nf);
		if (!nf) {
			ar_groups_free(gs, ng);
			return sdk_fail(err, SDK_EIO, "out of memory");
		}
		a->files = nf;
		f = &a->files[a->n_files++];
		memset(f, 0, sizeof *f);
		snprintf(f->name, sizeof f->name, "%s", name);
	}
	char *copy = strdup(yaml);
	ar_group **all = realloc(a->groups, (a->n_groups + ng + 1) * sizeof *all);
	if (!copy || !all) {
		free(copy);
		if (all)
			a->groups = all;
		ar_groups_free(gs, ng);
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	a->groups = all;
	free(f->yaml);
	f->yaml = copy;
	f->paused = paused;
	f->from_config = from_config;
	f->n_groups = ng;
	f->error[0] = '\0';
	/* The file's old groups out, its new ones in (with the state of the
	 * rules that did not change). */
	ar_group **old = calloc(a->n_groups + 1, sizeof *old);
	size_t n_old = 0, k = 0;
	for (size_t i = 0; i < a->n_groups; i++) {
		if (!strcmp(a->groups[i]->file, name) && old)
			old[n_old++] = a->groups[i];
		else
			a->groups[k++] = a->groups[i];
	}
	a->n_groups = k;
	for (size_t i = 0; i < ng; i++) {
		ar_group *g = malloc(sizeof *g);
		if (!g)
			continue;
		*g = gs[i];
		g->created_ms = sdk_wall_ms();
		carry_state(old, n_old, g);
		a->groups[a->n_groups++] = g;
	}
	free(gs); /* the groups were moved out */
	for (size_t i = 0; i < n_old; i++)
		retire(a, old[i]);
	free(old);
	return 0;
}

int ak_file_remove(ak *a, const char *name, sdk_err *err)
{
	ak_file *f = ak_file_find(a, name);
	if (!f)
		return sdk_fail(err, SDK_ENOTFOUND, "no rule file named \"%s\"", name);
	size_t k = 0;
	for (size_t i = 0; i < a->n_groups; i++) {
		if (!strcmp(a->groups[i]->file, name))
			retire(a, a->groups[i]);
		else
			a->groups[k++] = a->groups[i];
	}
	a->n_groups = k;
	free(f->yaml);
	*f = a->files[--a->n_files];
	return 0;
}

/* A configured path, relative to the configuration file's directory. */
static void config_relative(const grace_config *cfg, const char *p, char *out, size_t len)
{
	if (p[0] == '/' || !cfg->path[0]) {
		snprintf(out, len, "%s", p);
		return;
	}
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s", cfg->path);
	if (snprintf(out, len, "%s/%s", dirname(dir), p) >= (int)len)
		out[0] = '\0'; /* too long: matches nothing */
}

/* The file's text (malloc'd), or NULL with the reason in `why`. */
static char *read_file(const char *path, size_t max, sdk_err *why)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		sdk_fail(why, SDK_EIO, "cannot open: %s", strerror(errno));
		return NULL;
	}
	char *buf = malloc(max + 1);
	size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
	fclose(f);
	if (!buf || n > max) {
		if (buf)
			sdk_fail(why, SDK_ETOOLARGE, "larger than %zu bytes", max);
		else
			sdk_fail(why, SDK_EIO, "out of memory");
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

static void load_config_files(ak *a)
{
	const grace_config *cfg = a->k->cfg;
	char pattern[PATH_MAX];
	config_relative(cfg, cfg->alerts.rule_files[0] ? cfg->alerts.rule_files : "alerts/*.yml",
			pattern, sizeof pattern);
	glob_t g;
	if (glob(pattern, 0, NULL, &g) != 0)
		return;
	for (size_t i = 0; i < g.gl_pathc; i++) {
		sdk_err why, e;
		char *yaml = read_file(g.gl_pathv[i], RULE_FILE_BYTES_MAX, &why);
		const char *path = g.gl_pathv[i];
		/* The notifier's file may sit beside the rules: not a rule file. */
		if (strstr(path, "notifier")) {
			free(yaml);
			continue;
		}
		if (!yaml || ak_file_set(a, path, yaml, false, true, &e) < 0) {
			sdk_warn("alerts: rule file %s not loaded: %s", path, yaml ? e.msg : why.msg);
			ak_file *nf = realloc(a->files, (a->n_files + 1) * sizeof *nf);
			if (nf) {
				a->files = nf;
				ak_file *f = &a->files[a->n_files++];
				memset(f, 0, sizeof *f);
				snprintf(f->name, sizeof f->name, "%s", path);
				f->from_config = true;
				snprintf(f->error, sizeof f->error, "%s", yaml ? e.msg : why.msg);
			}
		}
		free(yaml);
	}
	globfree(&g);
}

static void load_notifier(ak *a)
{
	sdk_err e;
	char *text = NULL;
	int64_t now = sdk_wall_ms();
	if (as_notifier_get(a->k->db, &text, &e) == 0 && text) {
		if (ntf_configure(a->ntf, text, strlen(text), now, &e) == 0) {
			a->notifier_from_api = true;
			free(text);
			return;
		}
		sdk_warn("alerts: the stored notifier configuration does not load: %s", e.msg);
	}
	free(text);
	const grace_config *cfg = a->k->cfg;
	char path[PATH_MAX];
	sdk_err why;
	config_relative(cfg, cfg->alerts.notifier_file[0] ? cfg->alerts.notifier_file
							  : "alerts/notifier.yml",
			path, sizeof path);
	text = read_file(path, RULE_FILE_BYTES_MAX, &why);
	if (text && ntf_configure(a->ntf, text, strlen(text), now, &e) == 0) {
		free(text);
		return;
	}
	if (text || cfg->alerts.notifier_file[0]) {
		if (snprintf(a->notifier_error, sizeof a->notifier_error, "%s: %s", path,
			     text ? e.msg : why.msg) >= (int)sizeof a->notifier_error)
			a->notifier_error[sizeof a->notifier_error - 1] = '\0'; /* shortened */
		sdk_warn("alerts: notifier configuration %s", a->notifier_error);
	}
	free(text);
	ntf_configure(a->ntf, default_notifier, strlen(default_notifier), now, &e);
}

/* ---- deliveries */

struct delivery {
	ak *a;
	nt_out o;
	struct delivery *prev, *next; /* in a->deliveries */
};

static void delivery_free(struct delivery *d)
{
	if (d->prev)
		d->prev->next = d->next;
	else
		d->a->deliveries = d->next;
	if (d->next)
		d->next->prev = d->prev;
	ntf_out_free(&d->o);
	free(d);
}

static void on_delivered(int status, const char *body, size_t len, double ms, const char *error,
			 void *arg)
{
	(void)body, (void)len, (void)ms;
	struct delivery *d = arg;
	ak *a = d->a;
	bool ok = status >= 200 && status < 300;
	enum nt_kind kind = d->o.to->kind;
	if (ok) {
		a->st.notifications[kind]++;
	} else {
		a->st.notification_failures[kind]++;
		sdk_warn("alerts: notifying %s (%s) failed: %d %s; retried at the group's next flush",
			 d->o.receiver, kind == NT_BUS ? d->o.to->subject : d->o.to->url, status,
			 error ? error : "");
	}
	ntf_sent(a->ntf, &d->o, ok);
	if (ok && kind != NT_ALERTMANAGER) {
		char key[1200];
		ntf_log_key(&d->o, key, sizeof key);
		json_t *entry = ntf_log_json(a->ntf, key);
		sdk_err e;
		if (entry && as_doc_put(a->k->db, "nflog", key, entry, &e) < 0)
			sdk_warn("alerts: cannot save the notification log: %s", e.msg);
		json_decref(entry);
	}
	delivery_free(d);
}

static void deliver(ak *a, nt_out *o)
{
	struct delivery *d = calloc(1, sizeof *d);
	if (!d) {
		ntf_out_free(o);
		return;
	}
	d->a = a;
	d->o = *o;
	d->next = a->deliveries;
	if (d->next)
		d->next->prev = d;
	a->deliveries = d;
	const nt_integration *in = o->to;
	unsigned timeout = a->k->cfg->alerts.notify_timeout_ms;
	char *body = NULL;
	int rc;
	if (in->kind == NT_BUS) {
		json_t *msg = json_pack("{s:s, s:O}", "subject", in->subject, "payload", o->payload);
		body = json_dumps(msg, JSON_COMPACT);
		json_decref(msg);
		rc = body ? sdk_call(a->k->caller, "message_bus", "POST", "/publish", body, strlen(body),
				     NULL, timeout, on_delivered, d)
			  : -1;
	} else {
		body = json_dumps(in->kind == NT_ALERTMANAGER ? o->posted : o->payload, JSON_COMPACT);
		rc = body ? sdk_call_port(a->outside, in->port, "POST", in->path, body, strlen(body),
					  NULL, timeout, on_delivered, d)
			  : -1;
	}
	free(body);
	if (rc < 0)
		on_delivered(0, NULL, 0, 0, "cannot start the request", d);
}

static void flush_notifier(ak *a, int64_t now)
{
	nt_out *outs;
	size_t n = ntf_flush(a->ntf, now, a->external_url, &outs);
	for (size_t i = 0; i < n; i++)
		deliver(a, &outs[i]);
	free(outs);
}

/* ---- evaluation */

typedef struct geval {
	ak *a;
	ar_group *g;
	size_t rule;
	int64_t ts;
	struct timespec t0, rule_t0;
	int failures;
	/* a manual evaluation: the next groups, and whom to tell */
	ar_group **queue;
	size_t n_queue, next;
	void (*done)(void *arg, int failures);
	void *arg;
} geval;

static void eval_rule(geval *ev);

static bool group_live(const ak *a, const ar_group *g)
{
	for (size_t i = 0; i < a->n_groups; i++)
		if (a->groups[i] == g)
			return true;
	return false;
}

static void group_done(geval *ev)
{
	ak *a = ev->a;
	ar_group *g = ev->g;
	g->busy = false;
	g->eval_seconds = sdk_ms_since(&ev->t0) / 1e3;
	g->last_eval_ms = sdk_wall_ms();
	a->st.evaluations++;
	a->st.evaluation_seconds += g->eval_seconds;
	/* A group replaced while it ran goes now. */
	for (size_t i = 0; i < a->n_retired; i++)
		if (a->retired[i] == g) {
			group_free(g);
			a->retired[i] = a->retired[--a->n_retired];
			break;
		}
	if (ev->queue && ev->next < ev->n_queue) {
		ev->g = ev->queue[ev->next++];
		if (group_live(a, ev->g) && !ev->g->busy) {
			ev->g->busy = true;
			ev->rule = 0;
			ev->t0 = sdk_mono_now();
			eval_rule(ev);
			return;
		}
		group_done(ev);
		return;
	}
	/* New alerts may be due at once (group_wait 0). */
	flush_notifier(a, sdk_wall_ms());
	if (ev->done)
		ev->done(ev->arg, ev->failures);
	free(ev->queue);
	free(ev);
}

static void rule_failed(geval *ev, ar_rule *r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void rule_failed(geval *ev, ar_rule *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->last_error, sizeof r->last_error, fmt, ap);
	va_end(ap);
	snprintf(r->health, sizeof r->health, "err");
	ev->failures++;
	ev->a->st.evaluation_failures++;
}

/* Hands the rule's alerts that need it to the notifier. */
static void send_alerts(geval *ev, ar_rule *r)
{
	ak *a = ev->a;
	const grace_alerts *c = &a->k->cfg->alerts;
	char gen[600], q[400];
	if (sdk_uri_encode(r->expr, q, sizeof q) < 0)
		q[0] = '\0';
	snprintf(gen, sizeof gen, "%s/prometheus/api/v1/query?query=%s", a->external_url, q);
	for (size_t i = 0; i < r->n_alerts; i++) {
		ar_alert *al = r->alerts[i];
		if (!ar_needs_sending(al, ev->ts, c->resend_delay_ms, ev->g->interval_ms))
			continue;
		int64_t ends = al->resolved_at ? al->resolved_at : al->valid_until;
		sdk_err e;
		if (ntf_put(a->ntf, al->labels, al->annotations, al->fired_at, ends, gen, sdk_wall_ms(),
			    &e) < 0)
			sdk_warn("alerts: alert %s not taken by the notifier: %s", r->name, e.msg);
	}
}

static void on_written(int status, const char *body, size_t len, double ms, const char *error,
		       void *arg)
{
	(void)ms;
	geval *ev = arg;
	ar_rule *r = &ev->g->rules[ev->rule];
	if (status != 200) {
		char detail[300] = "";
		if (body) {
			json_t *j = json_loadb(body, len, 0, NULL);
			snprintf(detail, sizeof detail, "%s", json_string_value(json_object_get(j, "error"))
								     ? json_string_value(json_object_get(j, "error"))
								     : "");
			json_decref(j);
		}
		sdk_warn("alerts: writing rule %s's series back failed: %d %s %s", r->name, status,
			 error ? error : "", detail);
	}
	ev->rule++;
	eval_rule(ev);
}

/* Writes `series` ([{labels, value}]) at ts, and staleness markers for
 * what the rule wrote last time and not now; then the next rule. */
static void write_back(geval *ev, ar_rule *r, json_t *series)
{
	json_t *body = json_pack("{s:[]}", "series"), *list = json_object_get(body, "series");
	size_t i;
	json_t *s;
	json_t *now_written = json_array();
	json_array_foreach(series, i, s) {
		json_array_append_new(list, json_pack("{s:O, s:[[I, f]]}", "labels",
						      json_object_get(s, "labels"), "samples",
						      (json_int_t)ev->ts,
						      json_real_value(json_object_get(s, "value"))));
		json_array_append(now_written, json_object_get(s, "labels"));
	}
	json_t *old;
	json_array_foreach(r->written, i, old) {
		bool still = false;
		size_t k;
		json_t *nw;
		json_array_foreach(now_written, k, nw)
			if (json_equal(nw, old)) {
				still = true;
				break;
			}
		if (!still)
			json_array_append_new(list, json_pack("{s:O, s:[[I, s]]}", "labels", old, "samples",
							      (json_int_t)ev->ts, "stale"));
	}
	json_decref(r->written);
	r->written = now_written;
	if (json_array_size(list) == 0) {
		json_decref(body);
		ev->rule++;
		eval_rule(ev);
		return;
	}
	char *text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (!text || sdk_call(ev->a->k->caller, "metrics", "POST", "/write", text, strlen(text), NULL,
			      WRITE_TIMEOUT_MS, on_written, ev) < 0)
		on_written(0, NULL, 0, 0, "cannot start the request", ev);
	free(text);
}

/* The query's samples out of Prometheus's answer; a status with the reason
 * in `why` when it holds none. */
static int read_result(const char *body, size_t len, json_t **doc, ar_sample **out, size_t *n,
		       sdk_err *why)
{
	*doc = json_loadb(body, len, 0, NULL);
	json_t *data = json_object_get(*doc, "data");
	const char *type = json_string_value(json_object_get(data, "resultType"));
	json_t *result = json_object_get(data, "result");
	if (!type)
		return sdk_fail(why, SDK_EINVAL, "%s",
				json_string_value(json_object_get(*doc, "error"))
					? json_string_value(json_object_get(*doc, "error"))
					: "the metrics kernel gave no result");
	if (!strcmp(type, "scalar")) {
		*out = calloc(1, sizeof **out);
		if (!*out)
			return sdk_fail(why, SDK_EIO, "out of memory");
		(*out)[0].labels = json_object();
		json_object_set_new(data, "_empty", (*out)[0].labels); /* owned by the doc */
		const char *sv = json_string_value(json_array_get(result, 1));
		(*out)[0].value = sv ? strtod(sv, NULL) : NAN;
		*n = 1;
		return 0;
	}
	if (strcmp(type, "vector"))
		return sdk_fail(why, SDK_EINVAL, "rule result is not a vector or scalar");
	*n = json_array_size(result);
	*out = calloc(*n + 1, sizeof **out);
	if (!*out)
		return sdk_fail(why, SDK_EIO, "out of memory");
	size_t i;
	json_t *r;
	json_array_foreach(result, i, r) {
		(*out)[i].labels = json_object_get(r, "metric");
		const char *v = json_string_value(json_array_get(json_object_get(r, "value"), 1));
		(*out)[i].value = v ? strtod(!strcmp(v, "+Inf") ? "inf" : v, NULL) : NAN;
	}
	return 0;
}

static void on_result(int status, const char *body, size_t len, double ms, const char *error,
		      void *arg)
{
	(void)ms;
	geval *ev = arg;
	ar_rule *r = &ev->g->rules[ev->rule];
	r->last_eval_ms = ev->ts;
	r->eval_seconds = sdk_ms_since(&ev->rule_t0) / 1e3;
	json_t *doc = NULL;
	ar_sample *res = NULL;
	size_t n = 0;
	sdk_err why;
	if (status == 0) {
		rule_failed(ev, r, "the metrics kernel did not answer: %s", error ? error : "");
	} else if (read_result(body, len, &doc, &res, &n, &why) < 0) {
		rule_failed(ev, r, "%s", why.msg);
	} else {
		sdk_err e;
		json_t *series = NULL;
		int rc = r->alert ? ar_eval_alerting(r, res, n, ev->ts, ev->g->limit, &e)
				  : ar_eval_recording(r, res, n, &series, &e);
		if (rc < 0) {
			rule_failed(ev, r, "%s", e.msg);
		} else {
			snprintf(r->health, sizeof r->health, "ok");
			r->last_error[0] = '\0';
			if (r->alert)
				series = ar_alert_series(r);
			free(res);
			json_decref(doc);
			if (r->alert)
				send_alerts(ev, r);
			write_back(ev, r, series);
			json_decref(series);
			return;
		}
	}
	/* A failed rule still resends what it has (Prometheus does). */
	if (r->alert)
		send_alerts(ev, r);
	free(res);
	json_decref(doc);
	ev->rule++;
	eval_rule(ev);
}

static void eval_rule(geval *ev)
{
	ar_group *g = ev->g;
	if (ev->rule >= g->n_rules || ev->a->draining) {
		group_done(ev);
		return;
	}
	ar_rule *r = &g->rules[ev->rule];
	size_t qn = strlen(r->expr) * 3 + 64;
	char *q = malloc(qn), *body = malloc(qn + 64);
	if (!q || !body || sdk_uri_encode(r->expr, q, qn) < 0) {
		free(q);
		free(body);
		rule_failed(ev, r, "out of memory");
		ev->rule++;
		eval_rule(ev);
		return;
	}
	snprintf(body, qn + 64, "query=%s&time=%.3f", q, (double)ev->ts / 1000.0);
	free(q);
	static const char *const headers[] = { "Content-Type", "application/x-www-form-urlencoded",
					       NULL };
	ev->rule_t0 = sdk_mono_now();
	if (sdk_call(ev->a->k->caller, "metrics", "POST", "/api/v1/query", body, strlen(body), headers,
		     QUERY_TIMEOUT_MS, on_result, ev) < 0)
		on_result(0, NULL, 0, 0, "cannot start the request", ev);
	free(body);
}

static void start_group(ak *a, ar_group *g, int64_t ts)
{
	geval *ev = calloc(1, sizeof *ev);
	if (!ev)
		return;
	*ev = (geval){ .a = a, .g = g, .ts = ts, .t0 = sdk_mono_now() };
	g->busy = true;
	eval_rule(ev);
}

int ak_evaluate_now(ak *a, const char *file, int64_t ts, void (*done)(void *arg, int failures),
		    void *arg)
{
	ar_group **q = calloc(a->n_groups + 1, sizeof *q);
	size_t n = 0;
	if (!q)
		return -1;
	for (size_t i = 0; i < a->n_groups; i++) {
		ar_group *g = a->groups[i];
		if (file && strcmp(g->file, file))
			continue;
		if (g->busy) {
			free(q);
			return -1;
		}
		q[n++] = g;
	}
	if (!n) {
		free(q);
		done(arg, 0);
		return 0;
	}
	geval *ev = calloc(1, sizeof *ev);
	if (!ev) {
		free(q);
		return -1;
	}
	*ev = (geval){ .a = a, .g = q[0], .ts = ts, .t0 = sdk_mono_now(), .queue = q, .n_queue = n,
		       .next = 1, .done = done, .arg = arg };
	q[0]->busy = true;
	eval_rule(ev);
	return 0;
}

/* ---- heal incidents from the bus */

static void count_incident(ak *a, const char *kernel, const char *outcome)
{
	for (size_t i = 0; i < a->n_inc; i++)
		if (!strcmp(a->inc[i].kernel, kernel) && !strcmp(a->inc[i].outcome, outcome)) {
			a->inc[i].n++;
			return;
		}
	if (a->n_inc == AK_INCIDENT_KEYS_MAX)
		return;
	ak_incidents *c = &a->inc[a->n_inc++];
	snprintf(c->kernel, sizeof c->kernel, "%s", kernel);
	snprintf(c->outcome, sizeof c->outcome, "%s", outcome);
	c->n = 1;
}

/* A finished heal incident as an alert: firing from its start until
 * incident_alert_s after its end. */
static void incident_alert(ak *a, json_t *inc)
{
	const char *kernel = json_string_value(json_object_get(inc, "component"));
	const char *outcome = json_string_value(json_object_get(inc, "outcome"));
	const char *issue = json_string_value(json_object_get(inc, "issue_type"));
	json_int_t id = json_integer_value(json_object_get(inc, "id"));
	int64_t started = json_integer_value(json_object_get(inc, "started_ms"));
	int64_t finished = json_integer_value(json_object_get(inc, "finished_ms"));
	if (!kernel || !outcome)
		return;
	a->st.incidents++;
	count_incident(a, kernel, outcome);
	int64_t now = sdk_wall_ms();
	if (!finished)
		finished = now;
	int64_t ends = finished + (int64_t)a->k->cfg->alerts.incident_alert_s * 1000;
	if (ends <= now)
		return; /* already over: counted, not announced */
	json_t *labels = json_pack("{s:s, s:s, s:s, s:s, s:s}", "alertname", "GraceHealIncident",
				   "kernel", kernel, "outcome", outcome, "issue", issue ? issue : "unknown",
				   "severity",
				   !strcmp(outcome, "failed") || !strcmp(outcome, "refused") ? "critical"
											     : "warning");
	char summary[256], idtext[32];
	snprintf(summary, sizeof summary, "The healer %s %s (%s)",
		 !strcmp(outcome, "healed") ? "healed" : "could not heal", kernel, issue ? issue : "");
	snprintf(idtext, sizeof idtext, "%lld", (long long)id);
	json_t *ann = json_pack("{s:s, s:s}", "summary", summary, "incident", idtext);
	sdk_err e;
	if (ntf_put(a->ntf, labels, ann, started ? started : now, ends, "", now, &e) < 0)
		sdk_warn("alerts: incident %lld not taken: %s", (long long)id, e.msg);
	else
		a->st.alerts_received++;
	json_decref(labels);
	json_decref(ann);
}

static int on_incident(const char *subject, json_t *payload, int64_t ts_ms, void *arg)
{
	(void)subject, (void)ts_ms;
	incident_alert(arg, payload);
	return 0;
}

/* ---- the loop */

/* The notifier's alerts, when they changed: one small document, so a
 * restart still resolves to a receiver what it was told was firing. */
static void save_alerts(ak *a)
{
	json_t *list = ntf_alerts_dump(a->ntf);
	if (!list)
		return;
	sdk_err e;
	if (as_doc_put(a->k->db, "state", "alerts", list, &e) < 0)
		sdk_warn("alerts: cannot save the notifier's alerts: %s", e.msg);
	json_decref(list);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	ak *a = arg;
	if (a->draining)
		return;
	int64_t now = sdk_wall_ms();
	for (size_t i = 0; i < a->n_groups; i++) {
		ar_group *g = a->groups[i];
		ak_file *f = ak_file_find(a, g->file);
		if (g->busy || (f && f->paused) || now < g->next_ms)
			continue;
		/* Aligned to the interval, as Prometheus's evaluation times are:
		 * the slot this evaluation stands for, then the next one. A new
		 * group waits for its first slot (Prometheus's Group.run), so no
		 * evaluation stands for an instant before the group existed. */
		int64_t slot = now - now % g->interval_ms;
		g->next_ms = slot + g->interval_ms;
		if (!g->last_eval_ms && slot < g->created_ms)
			continue;
		start_group(a, g, slot);
	}
	flush_notifier(a, now);
	if (now >= a->next_save_ms) {
		a->next_save_ms = now + SAVE_EVERY_MS;
		save_alerts(a);
	}
	if (now >= a->next_gc_ms) {
		a->next_gc_ms = now + GC_EVERY_MS;
		ntf_gc(a->ntf, now, AR_RESOLVED_RETENTION_MS);
	}
	sdk_bus_group_tick(&a->incidents, now);
}

void ak_persist_silence(ak *a, const char *id)
{
	const nt_silence *s = ntf_silence_get(a->ntf, id);
	if (!s)
		return;
	json_t *ms = json_array();
	for (size_t i = 0; i < s->m.n; i++)
		json_array_append_new(ms, al_matcher_json(&s->m.m[i]));
	json_t *doc = json_pack("{s:o, s:I, s:I, s:I, s:s, s:s}", "matchers", ms, "startsAt",
				(json_int_t)s->starts_ms, "endsAt", (json_int_t)s->ends_ms, "updatedAt",
				(json_int_t)s->updated_ms, "createdBy", s->created_by, "comment",
				s->comment);
	sdk_err e;
	if (as_doc_put(a->k->db, "silences", id, doc, &e) < 0)
		sdk_warn("alerts: cannot save silence %s: %s", id, e.msg);
	json_decref(doc);
}

static void load_silences_and_log(ak *a)
{
	json_t *docs;
	sdk_err e;
	if (as_docs(a->k->db, "silences", &docs, &e) == 0) {
		const char *id;
		json_t *d;
		json_object_foreach(docs, id, d) {
			nt_silence s = { 0 };
			snprintf(s.id, sizeof s.id, "%s", id);
			json_t *ms = json_object_get(d, "matchers");
			s.m.m = calloc(json_array_size(ms) + 1, sizeof *s.m.m);
			size_t i;
			json_t *m;
			json_array_foreach(ms, i, m)
				if (s.m.m && al_matcher_from_json(m, &s.m.m[s.m.n], &e) == 0)
					s.m.n++;
			s.starts_ms = json_integer_value(json_object_get(d, "startsAt"));
			s.ends_ms = json_integer_value(json_object_get(d, "endsAt"));
			s.updated_ms = json_integer_value(json_object_get(d, "updatedAt"));
			const char *by = json_string_value(json_object_get(d, "createdBy"));
			const char *c = json_string_value(json_object_get(d, "comment"));
			snprintf(s.created_by, sizeof s.created_by, "%s", by ? by : "");
			snprintf(s.comment, sizeof s.comment, "%s", c ? c : "");
			/* Loaded as they were, expired ones too (their ids stay). */
			if (ntf_silence_restore(a->ntf, &s) < 0)
				al_matchers_free(&s.m);
		}
		json_decref(docs);
	}
	if (as_docs(a->k->db, "state", &docs, &e) == 0) {
		ntf_alerts_load(a->ntf, json_object_get(docs, "alerts"), sdk_wall_ms());
		json_decref(docs);
	}
	if (as_docs(a->k->db, "nflog", &docs, &e) == 0) {
		const char *key;
		json_t *d;
		json_object_foreach(docs, key, d)
			ntf_log_load(a->ntf, key, d);
		json_decref(docs);
	}
}

static void ak_free(ak *a)
{
	if (!a)
		return;
	if (a->tick)
		event_free(a->tick);
	for (size_t i = 0; i < a->n_groups; i++)
		group_free(a->groups[i]);
	free(a->groups);
	for (size_t i = 0; i < a->n_retired; i++)
		group_free(a->retired[i]);
	free(a->retired);
	for (size_t i = 0; i < a->n_files; i++)
		free(a->files[i].yaml);
	free(a->files);
	while (a->deliveries)
		delivery_free(a->deliveries);
	ntf_free(a->ntf);
	sdk_caller_free(a->outside);
	free(a);
}

static int ak_init(sdk_kernel *k, sdk_err *err)
{
	sdk_err e = { "out of memory" };
	if (as_init(k->db, &e) < 0) {
		return sdk_fail(err, SDK_EIO, "%s", e.msg);
	}
	ak *a = calloc(1, sizeof *a);
	if (!a || !(a->ntf = ntf_new())) {
		free(a);
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	a->k = k;
	/* From the newest: a heal long past is no alert now. */
	if (sdk_bus_group_init(&a->incidents, k, INCIDENT_GROUP, INCIDENT_SUBJECT, "latest", 100,
			       POLL_WAIT_MS, on_incident, a) < 0) {
		ak_free(a);
		return sdk_fail(err, SDK_EIO, "the incidents' consumer group does not fit");
	}
	a->outside = sdk_caller_new(k->base, k->def->name, NULL, NULL, NULL);
	if (!a->outside) {
		ak_free(a);
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	snprintf(a->external_url, sizeof a->external_url, "http://127.0.0.1:%d",
		 k->cfg->api_port + k->cfg->port_offset);
	load_notifier(a);
	load_silences_and_log(a);
	if (k->cfg->alerts.default_rules && ak_file_set(a, DEFAULT_RULES_NAME, default_rules, false,
							 true, &e) < 0) {
		sdk_fail(err, SDK_EIO, "the default rules do not load: %s", e.msg);
		ak_free(a);
		return SDK_EIO;
	}
	load_config_files(a);
	json_t *files;
	if (as_rule_files(k->db, &files, &e) == 0) {
		size_t i;
		json_t *f;
		json_array_foreach(files, i, f) {
			const char *name = json_string_value(json_object_get(f, "name"));
			if (ak_file_set(a, name, json_string_value(json_object_get(f, "yaml")),
					json_is_true(json_object_get(f, "paused")), false, &e) < 0)
				sdk_warn("alerts: stored rule file %s does not load: %s", name, e.msg);
		}
		json_decref(files);
	}
	a->tick = event_new(k->base, -1, EV_PERSIST, on_tick, a);
	if (!a->tick) {
		ak_free(a);
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	struct timeval tv = sdk_ms_tv(TICK_MS);
	event_add(a->tick, &tv);
	k->state = a;
	sdk_info("alerts: %zu rule groups in %zu files", a->n_groups, a->n_files);
	return 0;
}

static void ak_drain(sdk_kernel *k)
{
	ak *a = k->state;
	if (a) {
		a->draining = true;
		sdk_bus_group_drain(&a->incidents);
		save_alerts(a);
	}
}

static void ak_close(sdk_kernel *k)
{
	ak_free(k->state);
	k->state = NULL;
}

static void ak_metrics(sdk_kernel *k, struct evbuffer *out)
{
	ak *a = k->state;
	const char *kl = k->def->name;
	int64_t now = sdk_wall_ms();
	size_t firing = 0, pending = 0, rules = 0;
	for (size_t i = 0; i < a->n_groups; i++)
		for (size_t r = 0; r < a->groups[i]->n_rules; r++) {
			rules++;
			const ar_rule *ru = &a->groups[i]->rules[r];
			for (size_t j = 0; j < ru->n_alerts; j++) {
				firing += ru->alerts[j]->state == AR_FIRING;
				pending += ru->alerts[j]->state == AR_PENDING;
			}
		}
	size_t active_sil = 0;
	for (size_t i = 0; i < ntf_silence_count(a->ntf); i++)
		active_sil += !strcmp(ntf_silence_state(ntf_silence_at(a->ntf, i), now), "active");
	static const char *const kinds[] = { "webhook", "bus", "alertmanager" };
	evbuffer_add_printf(
		out,
		"# HELP grace_alerts_rules Rules loaded.\n# TYPE grace_alerts_rules gauge\n"
		"grace_alerts_rules{kernel=\"%s\"} %zu\n"
		"# HELP grace_alerts_rule_alerts Alerts of the rules, by state.\n"
		"# TYPE grace_alerts_rule_alerts gauge\n"
		"grace_alerts_rule_alerts{kernel=\"%s\",state=\"firing\"} %zu\n"
		"grace_alerts_rule_alerts{kernel=\"%s\",state=\"pending\"} %zu\n"
		"# HELP grace_alerts_evaluations_total Group evaluations, and rules that failed.\n"
		"# TYPE grace_alerts_evaluations_total counter\n"
		"grace_alerts_evaluations_total{kernel=\"%s\"} %llu\n"
		"# HELP grace_alerts_rule_evaluation_failures_total Rule evaluations that failed.\n"
		"# TYPE grace_alerts_rule_evaluation_failures_total counter\n"
		"grace_alerts_rule_evaluation_failures_total{kernel=\"%s\"} %llu\n"
		"# HELP grace_alerts_evaluation_seconds_total Time spent evaluating groups.\n"
		"# TYPE grace_alerts_evaluation_seconds_total counter\n"
		"grace_alerts_evaluation_seconds_total{kernel=\"%s\"} %.6f\n"
		"# HELP grace_alerts_notifier_alerts Alerts the notifier holds.\n"
		"# TYPE grace_alerts_notifier_alerts gauge\n"
		"grace_alerts_notifier_alerts{kernel=\"%s\"} %zu\n"
		"# HELP grace_alerts_silences_active Silences in force.\n"
		"# TYPE grace_alerts_silences_active gauge\n"
		"grace_alerts_silences_active{kernel=\"%s\"} %zu\n"
		"# HELP grace_alerts_notifications_total Notifications delivered, by integration.\n"
		"# TYPE grace_alerts_notifications_total counter\n",
		kl, rules, kl, firing, kl, pending, kl, (unsigned long long)a->st.evaluations, kl,
		(unsigned long long)a->st.evaluation_failures, kl, a->st.evaluation_seconds, kl,
		ntf_alert_count(a->ntf, now, true), kl, active_sil);
	for (int i = 0; i < 3; i++)
		evbuffer_add_printf(out,
				    "grace_alerts_notifications_total{kernel=\"%s\",integration=\"%s\",result=\"ok\"} %llu\n"
				    "grace_alerts_notifications_total{kernel=\"%s\",integration=\"%s\",result=\"failed\"} %llu\n",
				    kl, kinds[i], (unsigned long long)a->st.notifications[i], kl,
				    kinds[i], (unsigned long long)a->st.notification_failures[i]);
	evbuffer_add_printf(out, "# HELP grace_heal_incidents_total Heal incidents seen on the bus, "
				 "by the kernel healed and the outcome.\n"
				 "# TYPE grace_heal_incidents_total counter\n");
	for (size_t i = 0; i < a->n_inc; i++) {
		char kn[64], oc[48];
		sdk_metrics_escape(a->inc[i].kernel, kn, sizeof kn);
		sdk_metrics_escape(a->inc[i].outcome, oc, sizeof oc);
		evbuffer_add_printf(out,
				    "grace_heal_incidents_total{kernel=\"%s\",healed_kernel=\"%s\",outcome=\"%s\"} %llu\n",
				    kl, kn, oc, (unsigned long long)a->inc[i].n);
	}
}

static const sdk_route ak_routes[] = {
	SDK_ROUTE("GET", "/api/v1/rules", ak_on_rules),
	SDK_ROUTE("GET", "/api/v1/alerts", ak_on_prom_alerts),
	SDK_ROUTE("GET", "/api/v2/status", ak_on_am_status),
	SDK_ROUTE("GET", "/api/v2/receivers", ak_on_am_receivers),
	SDK_ROUTE("GET", "/api/v2/alerts", ak_on_am_alerts_get),
	SDK_ROUTE("POST", "/api/v2/alerts", ak_on_am_alerts_post),
	SDK_ROUTE("GET", "/api/v2/alerts/groups", ak_on_am_groups),
	SDK_ROUTE("GET", "/api/v2/silences", ak_on_am_silences_get),
	SDK_ROUTE("POST", "/api/v2/silences", ak_on_am_silences_post),
	SDK_ROUTE("GET", "/api/v2/silence/:id", ak_on_am_silence_get),
	SDK_ROUTE("DELETE", "/api/v2/silence/:id", ak_on_am_silence_delete),
	SDK_ROUTE("GET", "/rules/files", ak_on_files_list),
	SDK_ROUTE("GET", "/rules/files/:name", ak_on_file_get),
	SDK_ROUTE("PUT", "/rules/files/:name", ak_on_file_put),
	SDK_ROUTE("DELETE", "/rules/files/:name", ak_on_file_delete),
	SDK_ROUTE("POST", "/rules/evaluate", ak_on_evaluate),
	SDK_ROUTE("GET", "/notifier/config", ak_on_notifier_get),
	SDK_ROUTE("PUT", "/notifier/config", ak_on_notifier_put),
};

const sdk_kernel_def alerts_kernel = {
	.name = "alerts",
	.port = 8142,
	.tier = "services",
	.summary = "Prometheus rules over metrics; Alertmanager-style routing, grouping, silences",
	.complete = true,
	/* Its tables as they are today: a change is a new step in
	 * .migrations and a new fixture directory (docs/upgrades.md). */
	.schema_version = 1,
	.routes = ak_routes,
	.n_routes = sizeof ak_routes / sizeof ak_routes[0],
	.init = ak_init,
	.drain = ak_drain,
	.close = ak_close,
	.metrics = ak_metrics,
};
