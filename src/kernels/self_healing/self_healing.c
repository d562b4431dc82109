/* The self_healing kernel (8131): incidents above single playbooks. It
 * follows what the main process publishes (kernel states, the guardian's
 * probes, the healer's runs) and alerts through a consumer group on the
 * bus, correlates them into incidents (correlate.h), advises the healer
 * which step of the escalation ladder to take within a global budget
 * (ladder.h, advice.c), attaches root-cause hints (hints.h) and writes a
 * postmortem per incident (postmortem.h). The store is written and read on
 * a worker thread of its own (worker.h), never on the loop. The guardian
 * and the healer stay
 * the floor: when this kernel is down they heal as they always have.
 * docs/self_healing.md. */
#include "kernels/registry.h"
#include "kernels/self_healing/postmortem.h"
#include "kernels/self_healing/state.h"
#include "kernels/self_healing/store.h"
#include "kernels/self_healing/worker.h"
#include "sdk/call.h"
#include "sdk/clock.h"
#include "sdk/log.h"
#include "sdk/metrics.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TICK_MS 1000
#define AUDIT_TIMEOUT_MS 3000
#define AUDIT_EVENTS_MAX 200
#define AUDIT_MARGIN_MS 60000 /* the audit trail read from this long before the incident */
#define PROOFS_MAX 10         /* inclusion proofs fetched per postmortem, oldest events first */

static const grace_self_healing *conf(sdk_kernel *k) { return &k->cfg->self_healing; }

void sh_write(sh_state *s, sh_batch *b)
{
	if (!b)
		return;
	sh_job *j = sh_batch_len(b) ? sh_job_new(s, false, NULL) : NULL;
	if (!j) {
		if (sh_batch_len(b)) {
			s->store_failures++;
			sdk_warn("self_healing: out of memory: a write is lost");
		}
		sh_batch_free(b);
		return;
	}
	j->batch = b; /* a failure is counted and logged by the worker's done */
	if (sh_job_submit(j, false) < 0) {
		s->store_failures++;
		sdk_warn("self_healing: the store's queue is full: a write is lost");
	}
}

sh_kstate *sh_kstate_of(sh_state *s, const char *kernel, sh_kfacts **facts)
{
	size_t i = 0;
	while (i < s->n_ks && strcmp(s->ks[i].name, kernel))
		i++;
	if (i == s->n_ks) {
		if (s->n_ks == SH_LADDER_KERNELS_MAX || strlen(kernel) >= SH_NAME_MAX)
			return NULL;
		s->ks[i] = (sh_kstate){ .step = -1 };
		snprintf(s->ks[i].name, sizeof s->ks[i].name, "%s", kernel);
		s->facts[i] = (sh_kfacts){ 0 };
		s->n_ks++;
	}
	if (facts)
		*facts = &s->facts[i];
	return &s->ks[i];
}

/* A kernel's place on the ladder as the last run left it. */
static void ladder_restore(const sh_kstate *saved, void *arg)
{
	sh_kstate *ks = sh_kstate_of(arg, saved->name, NULL);
	if (ks)
		*ks = *saved;
}

/* ---- reading */

static int parse_id(sdk_req *req, int64_t *id)
{
	const char *s = sdk_req_param(req, "id");
	char *end;
	errno = 0;
	long long v = strtoll(s ? s : "", &end, 10);
	if (!s || !*s || *end || errno || v <= 0) {
		sdk_reply_error(req, 400, "invalid", "an incident id is a positive integer");
		return -1;
	}
	*id = v;
	return 0;
}

/* A read's answer, back on the loop. */
static void on_read(sh_job *j)
{
	if (!sh_job_reply_failed(j)) {
		sdk_reply_json(j->req, 200, j->out);
		j->out = NULL;
	}
}

static int list_work(sh_job *j, sqlite3 *db, sdk_err *err)
{
	j->filter.kernel = j->kernel[0] ? j->kernel : NULL;
	return sh_store_list(db, &j->filter, &j->out, err);
}

static int get_work(sh_job *j, sqlite3 *db, sdk_err *err)
{
	return sh_store_get(db, j->id, &j->out, err);
}

static void on_list(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	unsigned long long since, limit;
	if (sdk_req_query_uint(req, "since_ms", 0, 1ULL << 53, 0, &since) < 0 ||
	    sdk_req_query_uint(req, "limit", 1, SH_PAGE_MAX, 100, &limit) < 0)
		return;
	const char *state = sdk_req_query(req, "state"), *kernel = sdk_req_query(req, "kernel");
	sh_filter f = { .kernel = kernel && kernel[0] ? kernel : NULL, .state = -1,
			.since_ms = (int64_t)since, .limit = (unsigned)limit };
	if (state && !strcmp(state, "open"))
		f.state = 0;
	else if (state && !strcmp(state, "resolved"))
		f.state = 1;
	else if (state) {
		sdk_reply_error(req, 400, "invalid", "state: open or resolved");
		return;
	}
	if (f.kernel && strlen(f.kernel) >= SH_NAME_MAX) {
		sdk_reply_error(req, 400, "invalid", "kernel: a kernel's name");
		return;
	}
	sh_job *j = sh_job_new(k->state, false, on_read);
	if (!j) {
		sh_reply_busy(req);
		return;
	}
	j->req = req;
	j->filter = f;
	if (f.kernel)
		snprintf(j->kernel, sizeof j->kernel, "%s", f.kernel);
	j->work = list_work;
	if (sh_job_submit(j, true) < 0)
		sh_reply_busy(req);
}

static void on_get(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	int64_t id;
	if (parse_id(req, &id) < 0)
		return;
	sh_job *j = sh_job_new(k->state, false, on_read);
	if (!j) {
		sh_reply_busy(req);
		return;
	}
	j->req = req;
	j->id = id;
	j->work = get_work;
	if (sh_job_submit(j, true) < 0)
		sh_reply_busy(req);
}

/* A postmortem: the incident, then the audit trail of its kernels (one
 * call per kernel, in turn), then the answer. */
struct pm {
	sdk_req *req;
	sdk_kernel *k;
	json_t *incident, *audit;
	size_t next;  /* the kernel asked about next */
	size_t proof; /* then the audit event whose proof is asked next */
	unsigned proofs;
	bool markdown;
	char error[160];
};

static void pm_answer(struct pm *p)
{
	json_t *doc = sh_postmortem_build(p->incident, p->error[0] ? NULL : p->audit,
					  p->error[0] ? p->error : NULL);
	if (!p->markdown) {
		sdk_reply_json(p->req, 200, doc);
	} else {
		char *md = sh_postmortem_markdown(doc);
		json_decref(doc);
		struct evbuffer *b = evbuffer_new();
		if (!md || !b) {
			free(md);
			if (b)
				evbuffer_free(b);
			sdk_reply_error(p->req, 503, "busy", "out of memory");
		} else {
			evbuffer_add(b, md, strlen(md));
			free(md);
			sdk_reply_raw(p->req, 200, "text/markdown; charset=utf-8", b);
			evbuffer_free(b);
		}
	}
	json_decref(p->incident);
	json_decref(p->audit);
	free(p);
}

static void pm_next(struct pm *p);
static void pm_proofs(struct pm *p);

/* An audit event's inclusion proof (the audit kernel asks the immutable
 * log): kept with the event; one that is not there yet is left out. */
static void on_proof(int status, const char *body, size_t len, double ms, const char *error,
		     void *arg)
{
	(void)ms, (void)error;
	struct pm *p = arg;
	json_t *doc = status == 200 && body ? json_loadb(body, len, 0, NULL) : NULL;
	json_t *ev = json_array_get(p->audit, p->proof);
	if (json_is_object(doc) && ev) {
		json_object_set(ev, "sth", json_object_get(doc, "sth"));
		json_object_set(ev, "inclusion", json_object_get(doc, "inclusion"));
	}
	json_decref(doc);
	p->proof++;
	pm_proofs(p);
}

static void pm_proofs(struct pm *p)
{
	while (p->proof < json_array_size(p->audit) && p->proofs < PROOFS_MAX) {
		json_t *ev = json_array_get(p->audit, p->proof);
		json_t *id = json_object_get(ev, "id");
		if (!json_is_integer(json_object_get(ev, "log_index")) || !json_is_integer(id)) {
			p->proof++;
			continue;
		}
		char path[64];
		snprintf(path, sizeof path, "/events/%lld/proof", (long long)json_integer_value(id));
		p->proofs++;
		if (sdk_call(p->k->caller, "audit", "GET", path, NULL, 0, NULL, AUDIT_TIMEOUT_MS,
			     on_proof, p) == 0)
			return;
		p->proof++;
	}
	pm_answer(p);
}

static void on_audit(int status, const char *body, size_t len, double ms, const char *error,
		     void *arg)
{
	(void)ms;
	struct pm *p = arg;
	json_t *doc = status == 200 && body ? json_loadb(body, len, 0, NULL) : NULL;
	json_t *events = json_object_get(doc, "events");
	if (!json_is_array(events)) {
		snprintf(p->error, sizeof p->error, "the audit kernel answered %d%s%s", status,
			 error ? ": " : "", error ? error : "");
		json_decref(doc);
		pm_answer(p);
		return;
	}
	size_t i;
	json_t *ev;
	json_array_foreach(events, i, ev)
		if (json_array_size(p->audit) < AUDIT_EVENTS_MAX)
			json_array_append(p->audit, ev);
	json_decref(doc);
	pm_next(p);
}

static void pm_next(struct pm *p)
{
	json_t *kernels = json_object_get(p->incident, "kernels");
	if (!grace_config_kernel(p->k->cfg, "audit")) {
		snprintf(p->error, sizeof p->error, "the audit kernel is not configured");
		pm_answer(p);
		return;
	}
	if (p->next >= json_array_size(kernels)) {
		pm_proofs(p);
		return;
	}
	const char *name = json_string_value(json_array_get(kernels, p->next++));
	json_t *resolved = json_object_get(p->incident, "resolved_at");
	int64_t from = json_integer_value(json_object_get(p->incident, "opened_at")) - AUDIT_MARGIN_MS;
	int64_t until = json_is_integer(resolved) ? json_integer_value(resolved) : 0;
	char path[256], resource[96], enc[160];
	snprintf(resource, sizeof resource, "kernel/%s", name ? name : "");
	if (sdk_uri_encode(resource, enc, sizeof enc) < 0)
		enc[0] = 0;
	if (until)
		snprintf(path, sizeof path, "/events?resource=%s&since=%lld&until=%lld&limit=%d", enc,
			 (long long)(from > 0 ? from : 0), (long long)until, AUDIT_EVENTS_MAX);
	else
		snprintf(path, sizeof path, "/events?resource=%s&since=%lld&limit=%d", enc,
			 (long long)(from > 0 ? from : 0), AUDIT_EVENTS_MAX);
	if (sdk_call(p->k->caller, "audit", "GET", path, NULL, 0, NULL, AUDIT_TIMEOUT_MS, on_audit,
		     p) < 0) {
		snprintf(p->error, sizeof p->error, "the audit kernel cannot be called");
		pm_answer(p);
	}
}

/* The incident read: then the audit trail, on the loop through the call
 * path. */
static void pm_read(sh_job *j)
{
	if (sh_job_reply_failed(j))
		return;
	struct pm *p = calloc(1, sizeof *p);
	if (!p) {
		sdk_reply_error(j->req, 503, "busy", "out of memory");
		return;
	}
	*p = (struct pm){ .req = j->req, .k = j->s->k, .incident = j->out, .audit = json_array(),
			  .markdown = j->flag };
	j->out = NULL;
	pm_next(p);
}

static void on_postmortem(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	int64_t id;
	if (parse_id(req, &id) < 0)
		return;
	const char *format = sdk_req_query(req, "format");
	if (format && strcmp(format, "json") && strcmp(format, "markdown")) {
		sdk_reply_error(req, 400, "invalid", "format: json or markdown");
		return;
	}
	sh_job *j = sh_job_new(k->state, false, pm_read);
	if (!j) {
		sh_reply_busy(req);
		return;
	}
	j->req = req;
	j->id = id;
	j->flag = format && !strcmp(format, "markdown");
	j->work = get_work;
	if (sh_job_submit(j, true) < 0)
		sh_reply_busy(req);
}

static void on_ladder(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	sh_state *s = k->state;
	json_t *steps = json_array(), *kernels = json_array();
	for (size_t i = 0; i < s->ladder.n; i++)
		json_array_append_new(steps, json_pack("{s:i, s:s, s:I, s:b}", "step", (int)i,
						       "playbook", s->ladder.steps[i].playbook,
						       "cooldown_ms",
						       (json_int_t)s->ladder.steps[i].cooldown_ms,
						       "destructive",
						       !strcmp(s->ladder.steps[i].playbook, SH_STOP)));
	for (size_t i = 0; i < s->n_ks; i++) {
		const sh_kstate *ks = &s->ks[i];
		json_array_append_new(
			kernels,
			json_pack("{s:s, s:i, s:o, s:o, s:I, s:I, s:b}", "kernel", ks->name, "step",
				  ks->step, "playbook",
				  ks->step >= 0 ? json_string(s->ladder.steps[ks->step].playbook)
						: json_null(),
				  "last_action_ms",
				  ks->step >= 0 ? json_integer(ks->last_action_ms) : json_null(),
				  "actions", (json_int_t)ks->actions, "holds", (json_int_t)ks->holds,
				  "stopped", ks->stopped));
	}
	sdk_reply_json(req, 200,
		       json_pack("{s:o, s:o, s:I, s:b}", "steps", steps, "kernels", kernels,
				 "stable_ms", (json_int_t)conf(k)->stable_ms, "approve_destructive",
				 conf(k)->approve_destructive != 0));
}

static void on_budget(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	sh_state *s = k->state;
	int64_t next;
	double tokens = sh_budget_tokens(&s->budget, sdk_wall_ms(), &next);
	sdk_reply_json(req, 200,
		       json_pack("{s:I, s:f, s:I, s:I, s:I}", "per_hour",
				 (json_int_t)conf(k)->budget_per_hour, "tokens", tokens,
				 "next_token_ms", (json_int_t)next, "spent",
				 (json_int_t)s->budget.spent, "refused",
				 (json_int_t)s->budget.refused));
}

/* ---- the tick: incidents that have been stable resolve */

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	sh_state *s = arg;
	sh_incident done[16];
	int64_t now = sdk_wall_ms();
	sh_feed_tick(s, now);
	sh_watch_tick(s, now);
	/* Resolutions wait in memory while the store's queue is full: the
	 * next tick resolves them. */
	sh_batch *b = sh_worker_room(s, false) ? sh_batch_new() : NULL;
	size_t n = b ? sh_corr_tick(&s->corr, now, done, 16) : 0;
	for (size_t i = 0; i < n; i++) {
		sh_batch_save(b, &done[i]);
		s->resolved++;
		sdk_info("self_healing: incident %lld (%s) resolved", (long long)done[i].id,
			 done[i].title);
	}
	sh_write(s, b);
}

static void self_healing_metrics(sdk_kernel *k, struct evbuffer *out)
{
	sh_state *s = k->state;
	if (!s)
		return;
	evbuffer_add_printf(out, "# HELP grace_self_healing_events_total Events correlated, by kind.\n"
				 "# TYPE grace_self_healing_events_total counter\n");
	for (int i = 0; i < SH_EV_COUNT; i++)
		evbuffer_add_printf(out,
				    "grace_self_healing_events_total{kernel=\"self_healing\",kind=\"%s\"} "
				    "%llu\n",
				    sh_ev_kind_name((enum sh_ev_kind)i), s->events[i]);
	evbuffer_add_printf(out, "# HELP grace_self_healing_advice_total Advice given, by verdict.\n"
				 "# TYPE grace_self_healing_advice_total counter\n");
	for (int i = 0; i < SH_VERDICT_COUNT; i++)
		evbuffer_add_printf(out,
				    "grace_self_healing_advice_total{kernel=\"self_healing\",verdict=\"%s\"} "
				    "%llu\n",
				    sh_verdict_name((enum sh_verdict)i), s->advice[i]);
	int64_t tokens_next;
	double tokens = sh_budget_tokens(&s->budget, sdk_wall_ms(), &tokens_next);
#define C(name, help, v)                                                                   \
	evbuffer_add_printf(out,                                                           \
			    "# HELP grace_self_healing_" name " " help "\n"                \
			    "# TYPE grace_self_healing_" name " counter\n"                 \
			    "grace_self_healing_" name "{kernel=\"self_healing\"} %llu\n", \
			    (unsigned long long)(v))
	C("incidents_opened_total", "Incidents opened.", s->opened);
	C("incidents_resolved_total", "Incidents resolved after a stable period.", s->resolved);
	C("folded_total", "Failures of a kernel folded into its dependency's incident.", s->folded);
	C("flapping_total", "Incidents that turned flapping.", s->flapping);
	C("outcomes_total", "Heal outcomes reported by the healer.", s->outcomes);
	C("verified_total", "Heals verified (the kernel answered /health after).", s->verified);
	C("pages_total", "Pages sent to the alerts kernel.", s->pages);
	C("page_failures_total", "Pages the alerts kernel did not take.", s->page_failures);
	C("stop_requests_total", "Governance change requests opened for the ladder's stop.",
	  s->stop_requests);
	C("stop_request_failures_total", "Change requests for a stop that governance did not open.",
	  s->stop_request_failures);
	C("learning_asks_total", "Orders asked of the learning kernel.", s->learning_asks);
	C("learning_fallbacks_total", "Advice given on the healer's order because learning "
				      "could not help.",
	  s->learning_fallbacks);
	C("ignored_total", "Bus messages that were no event of a kernel.", s->ignored);
	C("watch_queries_total", "Watches asked of the metrics kernel.", s->watch_queries);
	C("watch_failures_total", "Watches the metrics kernel did not answer.", s->watch_failures);
	C("store_failures_total", "Writes to the store that failed.", s->store_failures);
#undef C
	evbuffer_add_printf(out,
			    "# HELP grace_self_healing_store_queue Store jobs queued or running on "
			    "the kernel's store worker.\n"
			    "# TYPE grace_self_healing_store_queue gauge\n"
			    "grace_self_healing_store_queue{kernel=\"self_healing\"} %zu\n",
			    sh_worker_pending(s));
	evbuffer_add_printf(out,
			    "# HELP grace_self_healing_budget_tokens Heal actions left in the "
			    "global budget.\n"
			    "# TYPE grace_self_healing_budget_tokens gauge\n"
			    "grace_self_healing_budget_tokens{kernel=\"self_healing\"} %.3f\n",
			    tokens);
}

/* ---- life */

static bool playbook_known(const char *name)
{
	static const char *const known[] = { "restart_component", "clear_port", "rebind_port",
					     "reset_port", "quarantine_store", NULL };
	for (size_t i = 0; known[i]; i++)
		if (!strcmp(name, known[i]))
			return true;
	return false;
}

static void restore(const sh_incident *inc, void *arg)
{
	sh_corr_restore(arg, inc);
}

static int self_healing_init(sdk_kernel *k, sdk_err *err)
{
	sdk_err e;
	if (sh_store_init(k->db, &e) < 0) {
		return sdk_fail(err, SDK_EIO, "%s", e.msg);
	}
	sh_state *s = calloc(1, sizeof *s);
	if (!s) {
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	s->k = k;
	s->oom_seen = -1;
	k->state = s;
	sh_corr_cfg cc = { .flap_window_ms = conf(k)->flap_window_ms,
			   .flap_threshold = conf(k)->flap_threshold,
			   .stable_ms = conf(k)->stable_ms };
	if (sh_deps_parse(conf(k)->dependencies, &cc, &e) < 0 ||
	    sh_ladder_parse(conf(k)->ladder, playbook_known, &s->ladder, &e) < 0) {
		return sdk_fail(err, SDK_EIO, "%s", e.msg);
	}
	int64_t max_id = 0;
	if (sh_store_max_id(k->db, &max_id, &e) < 0) {
		return sdk_fail(err, SDK_EIO, "%s", e.msg);
	}
	sh_corr_init(&s->corr, &cc, max_id + 1);
	if (sh_store_open_incidents(k->db, restore, &s->corr, &e) < 0) {
		return sdk_fail(err, SDK_EIO, "%s", e.msg);
	}
	sh_budget_init(&s->budget, conf(k)->budget_per_hour, sdk_wall_ms());
	if (sh_store_budget_load(k->db, &s->budget, &e) < 0 ||
	    sh_store_ladder_load(k->db, ladder_restore, s, &e) < 0) {
		return sdk_fail(err, SDK_EIO, "%s", e.msg);
	}
	const grace_self_healing *hc = &k->cfg->self_healing;
	for (size_t i = 0; i < hc->n_watches; i++)
		if (!grace_config_kernel(k->cfg, hc->watches[i].kernel)) {
			sdk_fail(err, SDK_EIO, "[self_healing] watch.%s: no such kernel",
				 hc->watches[i].kernel);
			return SDK_EIO;
		}
	if (hc->n_watches && !grace_config_kernel(k->cfg, "metrics"))
		sdk_warn("self_healing: %zu watches but no metrics kernel: they are never true",
			 hc->n_watches);
	if (sh_worker_start(s, &e) < 0) {
		return sdk_fail(err, SDK_EIO, "%s", e.msg);
	}
	s->timer = event_new(k->base, -1, EV_PERSIST, on_tick, s);
	if (!s->timer) {
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	struct timeval tv = { TICK_MS / 1000, (TICK_MS % 1000) * 1000 };
	event_add(s->timer, &tv);
	if (sh_feed_start(s, &e) < 0) {
		return sdk_fail(err, SDK_EIO, "%s", e.msg);
	}
	return 0;
}

static void self_healing_drain(sdk_kernel *k)
{
	if (k->state)
		sh_feed_stop(k->state);
}

static void self_healing_close(sdk_kernel *k)
{
	sh_state *s = k->state;
	if (!s)
		return;
	sh_feed_stop(s);
	if (s->timer)
		event_free(s->timer);
	sh_worker_stop(s); /* queued jobs answer their requests "stopping" */
	sh_stop_requests_free(s); /* their calls end with the runtime's caller, unanswered */
	free(s);
	k->state = NULL;
}

static const sdk_route self_healing_routes[] = {
	SDK_ROUTE("GET", "/incidents", on_list),
	SDK_ROUTE("GET", "/incidents/:id", on_get),
	SDK_ROUTE("GET", "/incidents/:id/postmortem", on_postmortem),
	SDK_ROUTE("GET", "/ladder", on_ladder),
	SDK_ROUTE("GET", "/budget", on_budget),
	SDK_ROUTE("POST", "/advice", sh_on_advice),
	SDK_ROUTE("POST", "/outcomes", sh_on_outcomes),
};

const sdk_kernel_def self_healing_kernel = {
	.name = "self_healing",
	.port = 8131, .tier = "agentic",
	.summary = "incidents from kernel events: correlation, an escalation ladder, a budget, "
		   "postmortems",
	.complete = true,
	.schema_version = 1,
	.routes = self_healing_routes,
	.n_routes = sizeof self_healing_routes / sizeof self_healing_routes[0],
	.init = self_healing_init,
	.drain = self_healing_drain,
	.close = self_healing_close,
	.metrics = self_healing_metrics,
};
