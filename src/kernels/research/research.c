/* The research kernel (8134): investigations with evidence. A question
 * ("why did audit stop appending at 10:02?") becomes calls to the audit
 * trail, the immutable log, metrics, traces and logs, incidents and the
 * librarian, within a budget of steps and time; their answers become
 * cited, redacted evidence; rules rank hypotheses on it; a model, when
 * [model] names one, writes the synthesis from the cited evidence only.
 * Anchors: HolmesGPT, k8sgpt. docs/research.md. */
#include "kernels/registry.h"
#include "kernels/research/inv.h"
#include "kernels/research/redact.h"
#include "kernels/research/store.h"
#include "sdk/clock.h"
#include "sdk/json_keys.h"
#include "sdk/log.h"
#include "sdk/metrics.h"
#include "sdk/rfc3339.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POOL_QUEUE 64

/* A time in a request: unix ms, or an RFC 3339 string. */
static int read_time(json_t *v, const char *name, int64_t *out, sdk_err *why)
{
	if (!v)
		return 0;
	if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) < (1LL << 53)) {
		*out = json_integer_value(v);
		return 1;
	}
	if (json_is_string(v) && sdk_rfc3339_parse_ms(json_string_value(v), out))
		return 1;
	return sdk_fail(why, SDK_EINVAL, "%s: unix milliseconds or an RFC 3339 time", name);
}

static bool kernel_name_ok(const char *name)
{
	return kernel_registry_find(name) != NULL && strlen(name) < RS_NAME_MAX &&
	       !strstr(name, "_kernel");
}

static void on_post(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	rs_kernel *rk = k->state;
	json_t *body = sdk_req_json(req, true); /* the request's */
	if (!body)
		return;
	static const char *const fields[] = { "question", "kernel", "since", "until", "budget", NULL };
	if (sdk_req_fields_only(req, body, fields) < 0)
		return;
	const char *question = json_string_value(json_object_get(body, "question"));
	json_t *kernel = json_object_get(body, "kernel");
	json_t *budget = json_object_get(body, "budget");
	sdk_err why = { "" };
	int64_t since = 0, until = 0;
	int hs = 0, hu = 0;
	if (!question || !*question || strlen(question) > RS_QUESTION_MAX)
		sdk_fail(&why, SDK_EINVAL, "question: a string of 1 to %d bytes", RS_QUESTION_MAX);
	else if (kernel && !json_is_null(kernel) &&
		 (!json_is_string(kernel) || !kernel_name_ok(json_string_value(kernel))))
		sdk_fail(&why, SDK_EINVAL, "kernel: the name of one of Grace's kernels");
	else if ((hs = read_time(json_object_get(body, "since"), "since", &since, &why)) < 0 ||
		 (hu = read_time(json_object_get(body, "until"), "until", &until, &why)) < 0)
		;
	else if (budget && !json_is_object(budget))
		sdk_fail(&why, SDK_EINVAL, "budget: an object {\"steps\", \"time_ms\"}");
	unsigned steps = rk->cfg.steps_default < rk->cfg.steps_max ? rk->cfg.steps_default
								    : rk->cfg.steps_max;
	unsigned time_ms = rk->cfg.time_ms_default < rk->cfg.time_ms_max ? rk->cfg.time_ms_default
									  : rk->cfg.time_ms_max;
	if (!why.msg[0] && budget) {
		static const char *const bf[] = { "steps", "time_ms", NULL };
		const char *unknown = sdk_json_unknown_key(budget, bf);
		json_t *s = json_object_get(budget, "steps"), *t = json_object_get(budget, "time_ms");
		if (unknown)
			sdk_fail(&why, SDK_EINVAL, "budget: unknown field \"%.40s\"", unknown);
		else if (s && (!json_is_integer(s) || json_integer_value(s) < 1 ||
			       json_integer_value(s) > rk->cfg.steps_max))
			sdk_fail(&why, SDK_EINVAL, "budget.steps: 1 to %u", rk->cfg.steps_max);
		else if (t && (!json_is_integer(t) || json_integer_value(t) < 100 ||
			       json_integer_value(t) > rk->cfg.time_ms_max))
			sdk_fail(&why, SDK_EINVAL, "budget.time_ms: 100 to %u",
				 rk->cfg.time_ms_max);
		if (s && !why.msg[0])
			steps = (unsigned)json_integer_value(s);
		if (t && !why.msg[0])
			time_ms = (unsigned)json_integer_value(t);
	}
	if (why.msg[0]) {
		sdk_reply_error(req, 400, "invalid", "%s", why.msg);
		return;
	}
	if (rk->n_running >= rk->cfg.running_max) {
		sdk_req_add_header(req, "Retry-After", "1");
		sdk_reply_error(req, 503, "busy", "%u investigations are running; try again shortly",
				rk->n_running);
		return;
	}
	int64_t now = sdk_wall_ms();
	char *clean = rs_redact(question, NULL);
	rs_question q;
	rs_question_parse(clean ? clean : "", rk->names, now, rk->cfg.window_ms, &q);
	if (json_is_string(kernel))
		snprintf(q.kernel, sizeof q.kernel, "%s", json_string_value(kernel));
	if (hs)
		q.since_ms = since;
	if (hu)
		q.until_ms = until;
	if (q.until_ms <= q.since_ms) {
		free(clean);
		sdk_reply_error(req, 400, "invalid", "until must be after since");
		return;
	}
	const char *user = sdk_req_header(req, SDK_USER_HEADER);
	json_t *doc = json_pack("{s:s, s:o, s:I, s:I, s:I, s:s, s:{s:i, s:i}, s:o}", "question",
				clean ? clean : "", "kernel",
				q.kernel[0] ? json_string(q.kernel) : json_null(), "since_ms",
				(json_int_t)q.since_ms, "until_ms", (json_int_t)q.until_ms,
				"created_ms", (json_int_t)now, "time_from",
				(hs && hu) || ((hs || hu) && q.time == RS_TIME_NONE) ? "request"
				: hs || hu			  ? "request and question"
				: q.time == RS_TIME_AT		  ? "question (at)"
				: q.time == RS_TIME_SINCE	  ? "question (since)"
								  : "default window",
				"budget", "steps", steps, "time_ms", time_ms, "asked_by",
				user ? json_string(user) : json_null());
	free(clean);
	rs_inv *inv = doc ? rs_inv_start(rk, doc, &q, steps, time_ms) : NULL;
	if (!inv) {
		sdk_reply_error(req, 503, "busy", "out of memory");
		return;
	}
	const char *deleg = sdk_req_header(req, SDK_DELEGATION_HEADER);
	if (deleg && strlen(deleg) < sizeof inv->delegation)
		memcpy(inv->delegation, deleg, strlen(deleg) + 1);
	sdk_reply_json(req, 202, json_pack("{s:I, s:s, s:O, s:O, s:O}", "id", (json_int_t)inv->id,
					   "state", "running", "kernel", json_object_get(inv->doc, "kernel"),
					   "since_ms", json_object_get(inv->doc, "since_ms"),
					   "until_ms", json_object_get(inv->doc, "until_ms")));
	rs_inv_run(inv);
}

/* A read of the store on the pool, answered on the loop. */
struct read_job {
	rs_kernel *rk;
	sdk_req *req;
	int64_t id, before;
	unsigned limit;
	json_t *out;
	int rc;
	sdk_err err;
};

static void get_work(void *arg)
{
	struct read_job *j = arg;
	j->rc = rs_store_get(j->rk->k->db, j->id, &j->out, &j->err);
}

static void list_work(void *arg)
{
	struct read_job *j = arg;
	j->rc = rs_store_list(j->rk->k->db, j->before, j->limit, &j->out, &j->err);
}

static void read_done(void *arg)
{
	struct read_job *j = arg;
	if (j->rc < 0) {
		sdk_reply_status(j->req, j->rc, &j->err);
	} else if (j->limit) {
		size_t n = json_array_size(j->out);
		json_t *last = json_object_get(json_array_get(j->out, n - 1), "id");
		sdk_reply_json(j->req, 200,
			       json_pack("{s:o, s:O}", "investigations", j->out, "next_before",
					 n == j->limit && last ? last : json_null()));
		j->out = NULL;
	} else {
		sdk_reply_json(j->req, 200, j->out);
		j->out = NULL;
	}
	json_decref(j->out);
	free(j);
}

static void submit_read(rs_kernel *rk, sdk_req *req, struct read_job *j, sdk_pool_work_fn work)
{
	if (sdk_pool_submit(rk->pool, work, read_done, j) < 0) {
		free(j);
		sdk_req_add_header(req, "Retry-After", "1");
		sdk_reply_error(req, 503, "busy", "the store is busy; try again shortly");
	}
}

static void on_get(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	rs_kernel *rk = k->state;
	const char *s = sdk_req_param(req, "id");
	char *end;
	errno = 0;
	long long id = strtoll(s, &end, 10);
	unsigned long long wait_ms;
	if (!*s || *end || errno || id <= 0) {
		sdk_reply_error(req, 400, "bad_id", "an investigation id is a positive integer");
		return;
	}
	if (sdk_req_query_uint(req, "wait_ms", 0, RS_WAIT_MAX_MS, 0, &wait_ms) < 0)
		return;
	rs_inv *inv = rs_inv_find(rk, id);
	if (inv) {
		if (wait_ms && !rk->closing && !rk->draining)
			rs_inv_wait(inv, req, (unsigned)wait_ms);
		else
			sdk_reply_json(req, 200, json_deep_copy(inv->doc));
		return;
	}
	struct read_job *j = calloc(1, sizeof *j);
	if (!j) {
		sdk_reply_error(req, 503, "busy", "out of memory");
		return;
	}
	*j = (struct read_job){ .rk = rk, .req = req, .id = id };
	submit_read(rk, req, j, get_work);
}

static void on_list(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	rs_kernel *rk = k->state;
	unsigned long long limit, before;
	if (sdk_req_query_uint(req, "limit", 1, RS_LIST_MAX, 20, &limit) < 0 ||
	    sdk_req_query_uint(req, "before", 0, 1ULL << 62, 0, &before) < 0)
		return;
	struct read_job *j = calloc(1, sizeof *j);
	if (!j) {
		sdk_reply_error(req, 503, "busy", "out of memory");
		return;
	}
	*j = (struct read_job){ .rk = rk, .req = req, .before = (int64_t)before,
				.limit = (unsigned)limit };
	submit_read(rk, req, j, list_work);
}

static void research_metrics(sdk_kernel *k, struct evbuffer *out)
{
	rs_kernel *rk = k->state;
	if (!rk)
		return;
	evbuffer_add_printf(out,
			    "# HELP grace_research_investigations_total Investigations started.\n"
			    "# TYPE grace_research_investigations_total counter\n"
			    "grace_research_investigations_total{kernel=\"research\"} %llu\n"
			    "# HELP grace_research_running Investigations running now.\n"
			    "# TYPE grace_research_running gauge\n"
			    "grace_research_running{kernel=\"research\"} %u\n"
			    "# HELP grace_research_long_polls Long polls held now (?wait_ms=).\n"
			    "# TYPE grace_research_long_polls gauge\n"
			    "grace_research_long_polls{kernel=\"research\"} %u\n"
			    "# HELP grace_research_answers_total Answers, by who wrote them.\n"
			    "# TYPE grace_research_answers_total counter\n"
			    "grace_research_answers_total{kernel=\"research\",by=\"model\"} %llu\n"
			    "grace_research_answers_total{kernel=\"research\",by=\"rules\"} %llu\n"
			    "# HELP grace_research_budget_exhausted_total Investigations cut short by "
			    "their budget.\n"
			    "# TYPE grace_research_budget_exhausted_total counter\n"
			    "grace_research_budget_exhausted_total{kernel=\"research\"} %llu\n"
			    "# HELP grace_research_sources_unavailable_total Calls to a source that "
			    "got no usable answer.\n"
			    "# TYPE grace_research_sources_unavailable_total counter\n"
			    "grace_research_sources_unavailable_total{kernel=\"research\"} %llu\n"
			    "# HELP grace_research_redactions_total Secrets redacted from evidence.\n"
			    "# TYPE grace_research_redactions_total counter\n"
			    "grace_research_redactions_total{kernel=\"research\"} %llu\n"
			    "# HELP grace_research_dropped_claims_total Claims of a model's answer "
			    "dropped for citing no gathered evidence.\n"
			    "# TYPE grace_research_dropped_claims_total counter\n"
			    "grace_research_dropped_claims_total{kernel=\"research\"} %llu\n",
			    rk->started, rk->n_running, rk->n_waiters, rk->by_model, rk->by_rules, rk->budget_exhausted,
			    rk->unavailable, rk->redactions, rk->dropped_claims);
	evbuffer_add_printf(out, "# HELP grace_research_model_failures_total Model answers not "
				 "used, by reason.\n"
				 "# TYPE grace_research_model_failures_total counter\n");
	for (int f = SDK_MODEL_FAIL_TIMEOUT; f < RS_FAIL_KINDS; f++) {
		const char *label = f == RS_FAIL_UNCITED ? "uncited"
				    : f == RS_FAIL_BUDGET ? "budget"
							  : sdk_model_failure_label((sdk_model_failure)f);
		evbuffer_add_printf(out,
				    "grace_research_model_failures_total{kernel=\"research\",reason=\"%s\"} %llu\n",
				    label, rk->model_failures[f]);
	}
}

static int research_init(sdk_kernel *k, sdk_err *err)
{
	rs_kernel *rk = calloc(1, sizeof *rk);
	if (!rk) {
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	rk->k = k;
	rk->cfg = k->cfg->research;
	k->state = rk;
	sdk_err e;
	if (rs_store_init(k->db, &rk->last_id, &e) < 0) {
		return sdk_fail(err, SDK_EIO, "%s", e.msg);
	}
	/* The parser's names: every kernel Grace knows. */
	size_t n = kernel_registry_count();
	const char **names = calloc(n + 1, sizeof *names);
	if (!names) {
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	for (size_t i = 0; i < n; i++)
		names[i] = kernel_registry_at(i)->name;
	rk->names = names;
	rk->pool = sdk_pool_new(k->base, 1, POOL_QUEUE);
	if (!rk->pool) {
		return sdk_fail(err, SDK_EIO, "cannot start the worker pool");
	}
	if (k->cfg->model.base_url[0]) {
		rk->model = sdk_model_new(k->base, &k->cfg->model, &e);
		if (!rk->model) {
			return sdk_fail(err, SDK_EIO, "%s", e.msg);
		}
		sdk_info("research: syntheses from model '%s'",
			 k->cfg->model.model[0] ? k->cfg->model.model : "(server default)");
	} else {
		sdk_info("research: no [model] configured; answers are the ranked evidence");
	}
	return 0;
}

static void research_drain(sdk_kernel *k)
{
	rs_kernel *rk = k->state;
	if (!rk)
		return;
	rk->draining = true;
	rs_inv_reply_waiters_all(rk);
}

static void research_close(sdk_kernel *k)
{
	rs_kernel *rk = k->state;
	if (!rk)
		return;
	rk->closing = true;
	/* The pool first: its last saves end their investigations. */
	if (rk->pool)
		sdk_pool_free(rk->pool);
	rk->pool = NULL;
	rs_inv_close_all(rk);
	if (rk->model)
		sdk_model_free(rk->model);
	free((void *)rk->names);
	free(rk);
	k->state = NULL;
}

static const sdk_route research_routes[] = {
	SDK_ROUTE("POST", "/investigations", on_post),
	SDK_ROUTE("GET", "/investigations", on_list),
	SDK_ROUTE("GET", "/investigations/:id", on_get),
};

const sdk_kernel_def research_kernel = {
	.name = "research",
	.port = 8134,
	.tier = "agentic",
	.summary = "investigations: cited evidence, ranked hypotheses, a model's synthesis",
	.complete = true,
	.long_poll_max_ms = RS_WAIT_MAX_MS,
	/* v1 was the placeholder's empty file: the table is made at init. */
	.schema_version = 1,
	.routes = research_routes,
	.n_routes = sizeof research_routes / sizeof research_routes[0],
	.init = research_init,
	.drain = research_drain,
	.close = research_close,
	.metrics = research_metrics,
};
