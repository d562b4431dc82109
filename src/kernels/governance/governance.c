/* The governance kernel (8110): change requests before dangerous actions.
 * A gated action is not run but opened here as a request; it runs once
 * its rule is met (N approvals from distinct users holding a role, in
 * all_of/any_of combinations, never counting the requester), unless it is
 * vetoed, withdrawn or expires first. Break-glass runs it at once and
 * opens a mandatory review. The action itself is run by the main process,
 * which asks for due intents (GET /intents) and reports each result under
 * the intent's idempotency key: exactly once across a kill -9 of this
 * kernel (docs/governance.md). Every step is a history row, sent from
 * this kernel's outbox to the audit trail and the bus. */
#include "kernels/governance/fsm.h"
#include "sdk/govrule.h"
#include "kernels/governance/store.h"
#include "kernels/registry.h"
#include "sdk/clock.h"
#include "sdk/govaction.h"
#include "sdk/log.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TICK_MS 200
#define OUTBOX_BATCH 200
#define SINK_TIMEOUT_MS 5000
#define TRIM_EVERY_TICKS 300 /* a minute */
#define INTENTS_MAX 100
#define EXECUTOR_CALLER "grace" /* the main process runs approved actions */

struct gov {
	sdk_kernel *k;
	struct event *tick;
	json_t *rules; /* {action: parsed rule}: every action's, from [governance] */
	bool have_audit, have_bus;
	bool sending_audit, sending_bus;
	int64_t audit_upto, bus_upto; /* the last history id of the batch in flight */
	unsigned ticks;
	unsigned long long opened, steps, sink_failures;
};

/* ---- helpers */

static const char *role_name(int role) { return role == SDK_CALLER_ADMIN ? "admin" : "user"; }

/* The user a request is for; answers 401 and returns false when none. */
static bool who_of(sdk_req *req, struct gov *g, gov_who *who)
{
	int role = SDK_CALLER_NONE;
	const char *user = sdk_req_caller(req, g->k->token, &role);
	if (!user) {
		sdk_reply_error(req, 401, "no_user",
				"a change request is opened and decided by a user (through :8000)");
		return false;
	}
	*who = (gov_who){ .user = user, .role = role_name(role) };
	return true;
}

/* Only the main process (caller "grace", no user) reaches the intents. */
static bool executor_only(sdk_req *req, struct gov *g)
{
	const char *caller = sdk_req_header(req, SDK_CALLER_HEADER);
	int role;
	if (!caller || strcmp(caller, EXECUTOR_CALLER) || sdk_req_caller(req, g->k->token, &role)) {
		sdk_reply_error(req, 403, "forbidden",
				"only the main process runs approved actions");
		return false;
	}
	return true;
}

static int id_param(sdk_req *req, int64_t *id)
{
	const char *s = sdk_req_param(req, "id");
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (!*s || *end || errno || v <= 0) {
		sdk_reply_error(req, 400, "bad_id", "a request id is a positive integer");
		return -1;
	}
	*id = v;
	return 0;
}

/* An optional string field of at most max bytes; answers 400 on a bad one. */
static int opt_string(sdk_req *req, json_t *body, const char *name, size_t max, const char **out)
{
	json_t *v = body ? json_object_get(body, name) : NULL;
	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v) || json_string_length(v) > max) {
		sdk_reply_error(req, 400, "invalid", "%s is a string of at most %zu bytes", name, max);
		return -1;
	}
	*out = json_string_value(v);
	return 0;
}

/* Checks an action's parameters: an object, bounded, with its required
 * strings. 0, or answers 400/413 and returns -1. */
static int params_check(sdk_req *req, const sdk_gov_action *a, json_t *params)
{
	if (!json_is_object(params)) {
		sdk_reply_error(req, 400, "invalid", "params is an object");
		return -1;
	}
	char *s = json_dumps(params, JSON_COMPACT);
	size_t n = s ? strlen(s) : 0;
	free(s);
	if (n > GOV_PARAMS_MAX) {
		sdk_reply_error(req, 413, "too_large", "params is at most %u bytes as JSON",
				GOV_PARAMS_MAX);
		return -1;
	}
	for (int i = 0; i < SDK_GOV_PARAMS_MAX && a->params[i]; i++) {
		json_t *v = json_object_get(params, a->params[i]);
		if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 256) {
			sdk_reply_error(req, 400, "invalid", "%s needs params.%s, a string of 1 to 256 bytes",
					a->name, a->params[i]);
			return -1;
		}
	}
	return 0;
}

static void reply_request(sdk_req *req, struct gov *g, int64_t id, int status)
{
	json_t *r;
	sdk_err e;
	int rc = gov_get(g->k->db, id, true, &r, &e);
	if (rc < 0)
		sdk_reply_status(req, rc, &e);
	else
		sdk_reply_json(req, status, r);
}

/* ---- routes */

/* Who opens a request: a user (through :8000), or a kernel asking for a
 * person's approval of an action it will not take alone (self_healing's
 * stop): "kernel:NAME", its name verified by its SVID where the runtime
 * requires one, and the call allowed by policy (calls.NAME.governance). A
 * kernel never breaks the glass, and no user is ever it, so its own
 * request is decided by people only. */
static bool opener_of(sdk_req *req, struct gov *g, gov_who *who, char *buf, size_t len)
{
	int role = SDK_CALLER_NONE;
	const char *caller = sdk_req_header(req, SDK_CALLER_HEADER);
	if (sdk_req_caller(req, g->k->token, &role) || !caller || !strcmp(caller, "grace") ||
	    !strcmp(caller, SDK_GATEWAY_CALLER) || !*caller ||
	    strspn(caller, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(caller) ||
	    strlen(caller) + 8 > len)
		return who_of(req, g, who);
	snprintf(buf, len, "kernel:%s", caller);
	*who = (gov_who){ .user = buf, .role = "kernel" };
	return true;
}

static void on_open(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	struct gov *g = k->state;
	gov_who who;
	char kernel_who[72];
	if (!opener_of(req, g, &who, kernel_who, sizeof kernel_who))
		return;
	json_t *body = sdk_req_json(req, true);
	if (!body)
		return;
	const char *action, *reason;
	if (opt_string(req, body, "action", 64, &action) < 0 ||
	    opt_string(req, body, "reason", GOV_REASON_MAX, &reason) < 0)
		return;
	const sdk_gov_action *a = sdk_gov_action_find(action);
	if (!a) {
		sdk_reply_error(req, 400, "unknown_action", "action is one of GET /actions' names");
		return;
	}
	json_t *params = json_object_get(body, "params");
	if (params_check(req, a, params) < 0)
		return;
	json_t *bg = json_object_get(body, "break_glass");
	if (bg && !json_is_boolean(bg)) {
		sdk_reply_error(req, 400, "invalid", "break_glass is true or false");
		return;
	}
	bool break_glass = json_is_true(bg);
	if (break_glass && strcmp(who.role, "admin")) {
		sdk_reply_error(req, 403, "forbidden", "only an admin may break the glass");
		return;
	}
	if (break_glass && (!reason || !*reason)) {
		sdk_reply_error(req, 400, "invalid", "break-glass needs a reason");
		return;
	}
	int64_t now = sdk_wall_ms();
	const grace_governance *c = &k->cfg->governance;
	gov_new n = { .action = a->name,
		      .params = params,
		      .rule = json_object_get(g->rules, a->name),
		      .reason = reason,
		      .break_glass = break_glass,
		      .expires_ms = now + (int64_t)c->expiry_s * 1000,
		      .run_at_ms = now };
	int64_t id;
	sdk_err e;
	int rc = gov_open(k->db, &n, &who, now, &id, &e);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	g->opened++;
	reply_request(req, g, id, 201);
}

static void on_list(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	unsigned long long before, limit;
	if (sdk_req_query_uint(req, "before", 0, 1ULL << 62, 0, &before) < 0 ||
	    sdk_req_query_uint(req, "limit", 1, GOV_PAGE_MAX, 50, &limit) < 0)
		return;
	const char *state = sdk_req_query(req, "state");
	if (state && gov_state_parse(state) < 0) {
		sdk_reply_error(req, 400, "invalid", "state '%s' is not a request state", state);
		return;
	}
	json_t *list;
	sdk_err e;
	int rc = gov_list(k->db, state, (int64_t)before, (unsigned)limit, &list, &e);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	size_t n = json_array_size(list);
	json_t *next = n == limit ? json_object_get(json_array_get(list, n - 1), "id") : NULL;
	sdk_reply_json(req, 200, json_pack("{s:o, s:O}", "requests", list, "next_before",
					   next ? next : json_null()));
}

static void on_get(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	int64_t id;
	if (id_param(req, &id) == 0)
		reply_request(req, k->state, id, 200);
}

/* A user's step: approve, veto (deny), change, withdraw, review. */
static void user_step(sdk_req *req, sdk_kernel *k, int ev)
{
	struct gov *g = k->state;
	gov_who who;
	int64_t id;
	if (!who_of(req, g, &who) || id_param(req, &id) < 0)
		return;
	json_t *body = NULL;
	if (ev == GOV_EV_CHANGE || evbuffer_get_length(sdk_req_body(req)) > 0) {
		body = sdk_req_json(req, true);
		if (!body)
			return;
	}
	const char *comment;
	if (opt_string(req, body, "comment", GOV_COMMENT_MAX, &comment) < 0)
		return;
	json_t *params = NULL;
	if (ev == GOV_EV_CHANGE) {
		json_t *cur;
		sdk_err e;
		int rc = gov_get(k->db, id, false, &cur, &e);
		if (rc < 0) {
			sdk_reply_status(req, rc, &e);
			return;
		}
		const sdk_gov_action *a =
			sdk_gov_action_find(json_string_value(json_object_get(cur, "action")));
		json_decref(cur);
		params = json_object_get(body, "params");
		if (!a || params_check(req, a, params) < 0)
			return;
	}
	sdk_err e;
	int rc = gov_step(k->db, id, ev, &who, params, comment, sdk_wall_ms(),
			  k->cfg->governance.run_delay_ms, &e);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	g->steps++;
	reply_request(req, g, id, 200);
}

static void on_approve(sdk_req *req, void *ctx) { user_step(req, ctx, GOV_EV_APPROVE); }
static void on_veto(sdk_req *req, void *ctx) { user_step(req, ctx, GOV_EV_VETO); }
static void on_change(sdk_req *req, void *ctx) { user_step(req, ctx, GOV_EV_CHANGE); }
static void on_withdraw(sdk_req *req, void *ctx) { user_step(req, ctx, GOV_EV_WITHDRAW); }
static void on_review(sdk_req *req, void *ctx) { user_step(req, ctx, GOV_EV_REVIEW); }

static void on_actions(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	struct gov *g = k->state;
	json_t *list = json_array();
	for (size_t i = 0; i < sdk_gov_action_count(); i++) {
		const sdk_gov_action *a = sdk_gov_action_at(i);
		json_t *params = json_array();
		for (int j = 0; j < SDK_GOV_PARAMS_MAX && a->params[j]; j++)
			json_array_append_new(params, json_string(a->params[j]));
		json_array_append_new(
			list, json_pack("{s:s, s:s, s:o, s:b, s:O}", "name", a->name, "summary",
					a->summary, "params", params, "gated",
					a->always || sdk_gov_listed(k->cfg->governance.gate, a->name), "rule",
					json_object_get(g->rules, a->name)));
	}
	sdk_reply_json(req, 200,
		       json_pack("{s:o, s:I}", "actions", list, "expiry_s",
				 (json_int_t)k->cfg->governance.expiry_s));
}

static void on_intents(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	if (!executor_only(req, k->state))
		return;
	json_t *list;
	sdk_err e;
	int rc = gov_intents_due(k->db, sdk_wall_ms(), INTENTS_MAX, &list, &e);
	if (rc < 0)
		sdk_reply_status(req, rc, &e);
	else
		sdk_reply_json(req, 200, json_pack("{s:o}", "intents", list));
}

static bool key_param(sdk_req *req, const char **key)
{
	*key = sdk_req_param(req, "key");
	if (!*key || !**key || strlen(*key) >= GOV_KEY_MAX) {
		sdk_reply_error(req, 400, "bad_key", "an intent key is 1 to %d bytes", GOV_KEY_MAX - 1);
		return false;
	}
	return true;
}

static void on_claim(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	const char *key;
	if (!executor_only(req, k->state) || !key_param(req, &key))
		return;
	sdk_err e;
	int rc = gov_intent_claim(k->db, key, sdk_wall_ms(), &e);
	if (rc < 0)
		sdk_reply_status(req, rc, &e);
	else
		sdk_reply_json(req, 200, json_pack("{s:s, s:b}", "key", key, "claimed", 1));
}

static void on_result(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	const char *key;
	if (!executor_only(req, k->state) || !key_param(req, &key))
		return;
	json_t *body = sdk_req_json(req, true);
	if (!body)
		return;
	json_t *ok = json_object_get(body, "ok");
	json_t *result = json_object_get(body, "result");
	char *s = result ? json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	size_t n = s ? strlen(s) : 0;
	free(s);
	if (!json_is_boolean(ok) || n > GOV_RESULT_MAX) {
		sdk_reply_error(req, 400, "invalid",
				"send {\"ok\": true|false, \"result\": JSON of at most %u bytes}",
				GOV_RESULT_MAX);
		return;
	}
	sdk_err e;
	int rc = gov_intent_result(k->db, key, json_is_true(ok), result, sdk_wall_ms(), &e);
	if (rc < 0)
		sdk_reply_status(req, rc, &e);
	else
		sdk_reply_json(req, 200, json_pack("{s:s, s:b}", "key", key, "already", rc == 1));
}

/* ---- the outbox: every history row to the audit trail and the bus */

static void on_audit_sent(int status, const char *body, size_t len, double ms, const char *error,
			  void *arg)
{
	(void)body, (void)len, (void)ms;
	struct gov *g = arg;
	g->sending_audit = false;
	sdk_err e;
	if (status >= 200 && status < 300) {
		if (gov_outbox_sent(g->k->db, "audit", g->audit_upto, &e) < 0)
			sdk_warn("governance: cannot mark audit events sent: %s", e.msg);
	} else if (g->sink_failures++ % 50 == 0) {
		sdk_warn("governance: the audit trail refused events (%d %s); will retry", status,
			 error ? error : "");
	}
}

static void on_bus_sent(int status, const char *body, size_t len, double ms, const char *error,
			void *arg)
{
	(void)body, (void)len, (void)ms;
	struct gov *g = arg;
	g->sending_bus = false;
	sdk_err e;
	if (status >= 200 && status < 300) {
		if (gov_outbox_sent(g->k->db, "bus", g->bus_upto, &e) < 0)
			sdk_warn("governance: cannot mark bus events sent: %s", e.msg);
	} else if (g->sink_failures++ % 50 == 0) {
		sdk_warn("governance: the bus refused events (%d %s); will retry", status,
			 error ? error : "");
	}
}

static json_t *audit_event(const json_t *h)
{
	char action[64], resource[64], uid[64];
	snprintf(action, sizeof action, "governance.%s", json_string_value(json_object_get(h, "event")));
	snprintf(resource, sizeof resource, "governance/requests/%lld",
		 (long long)json_integer_value(json_object_get(h, "request_id")));
	snprintf(uid, sizeof uid, "governance-%lld",
		 (long long)json_integer_value(json_object_get(h, "id")));
	return json_pack("{s:O, s:s, s:s, s:s, s:s, s:O, s:O}", "actor", json_object_get(h, "actor"),
			 "action", action, "resource", resource, "outcome", "ok", "uid", uid,
			 "ts_ms", json_object_get(h, "at_ms"), "details", h);
}

/* Sends the next batch to one sink; a sink not configured takes all. */
static void send_sink(struct gov *g, bool audit)
{
	const char *sink = audit ? "audit" : "bus";
	json_t *rows;
	sdk_err e;
	if (gov_outbox(g->k->db, sink, OUTBOX_BATCH, &rows, &e) < 0) {
		sdk_warn("governance: %s", e.msg);
		return;
	}
	size_t n = json_array_size(rows);
	if (n == 0) {
		json_decref(rows);
		return;
	}
	int64_t upto = json_integer_value(json_object_get(json_array_get(rows, n - 1), "id"));
	if (!(audit ? g->have_audit : g->have_bus)) {
		gov_outbox_sent(g->k->db, sink, upto, &e);
		json_decref(rows);
		return;
	}
	json_t *batch = json_array();
	size_t i;
	json_t *h;
	json_array_foreach(rows, i, h) {
		if (audit) {
			json_array_append_new(batch, audit_event(h));
		} else {
			char subject[64];
			snprintf(subject, sizeof subject, "governance.%s",
				 json_string_value(json_object_get(h, "event")));
			json_array_append_new(batch, json_pack("{s:s, s:O}", "subject", subject,
							       "payload", h));
		}
	}
	json_decref(rows);
	char *body = json_dumps(batch, JSON_COMPACT);
	json_decref(batch);
	int rc = body ? sdk_call(g->k->caller, audit ? "audit" : "message_bus", "POST",
				 audit ? "/events" : "/publish", body, strlen(body), NULL,
				 SINK_TIMEOUT_MS, audit ? on_audit_sent : on_bus_sent, g)
		      : -1;
	free(body);
	if (rc == 0) {
		if (audit) {
			g->sending_audit = true;
			g->audit_upto = upto;
		} else {
			g->sending_bus = true;
			g->bus_upto = upto;
		}
	}
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct gov *g = arg;
	if (!sdk_kernel_storage_ok(g->k))
		return;
	sdk_err e;
	if (gov_expire_due(g->k->db, sdk_wall_ms(), &e) < 0)
		sdk_warn("governance: cannot expire requests: %s", e.msg);
	if (!g->sending_audit)
		send_sink(g, true);
	if (!g->sending_bus)
		send_sink(g, false);
	if (++g->ticks % TRIM_EVERY_TICKS == 0 &&
	    gov_trim(g->k->db, g->k->cfg->governance.requests_max, &e) < 0)
		sdk_warn("governance: cannot trim requests: %s", e.msg);
}

/* ---- life */

static bool kernel_on(const grace_config *cfg, const char *name)
{
	const grace_kernel_cfg *kc = grace_config_kernel(cfg, name);
	return kc && kc->enabled;
}

static int governance_init(sdk_kernel *k, sdk_err *err)
{
	sdk_err e;
	if (gov_store_init(k->db, &e) < 0) {
		return sdk_fail(err, SDK_EIO, "%s", e.msg);
	}
	struct gov *g = calloc(1, sizeof *g);
	if (!g) {
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	g->k = k;
	k->state = g;
	g->rules = json_object();
	const grace_governance *c = &k->cfg->governance;
	for (size_t i = 0; i < sdk_gov_action_count(); i++) {
		const sdk_gov_action *a = sdk_gov_action_at(i);
		const char *name = a->name, *text = a->rule ? a->rule : c->default_rule;
		for (size_t j = 0; j < c->n_rules; j++)
			if (!strcmp(c->rules[j].action, name))
				text = c->rules[j].rule;
		json_t *r = sdk_gov_rule_parse(text, &e);
		if (!r) {
			sdk_fail(err, SDK_EIO, "[governance] the rule for %s: %s", name, e.msg);
			return SDK_EIO;
		}
		json_object_set_new(g->rules, name, r);
	}
	g->have_audit = kernel_on(k->cfg, "audit");
	g->have_bus = kernel_on(k->cfg, "message_bus");
	g->tick = event_new(k->base, -1, EV_PERSIST, on_tick, g);
	if (!g->tick) {
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	struct timeval tv = { 0, TICK_MS * 1000 };
	event_add(g->tick, &tv);
	return 0;
}

static void governance_close(sdk_kernel *k)
{
	struct gov *g = k->state;
	if (!g)
		return;
	if (g->tick)
		event_free(g->tick);
	json_decref(g->rules);
	free(g);
	k->state = NULL;
}

static void governance_metrics(sdk_kernel *k, struct evbuffer *out)
{
	struct gov *g = k->state;
	json_t *counts;
	if (!g || gov_counts(k->db, &counts, NULL) < 0)
		return;
	const char *state;
	json_t *v;
	json_object_foreach(counts, state, v)
		evbuffer_add_printf(out, "grace_governance_requests{kernel=\"governance\",state=\"%s\"} %lld\n",
				    state, (long long)json_integer_value(v));
	json_decref(counts);
	evbuffer_add_printf(out, "grace_governance_opened_total{kernel=\"governance\"} %llu\n",
			    g->opened);
	evbuffer_add_printf(out, "grace_governance_steps_total{kernel=\"governance\"} %llu\n",
			    g->steps);
}

static const sdk_route governance_routes[] = {
	SDK_ROUTE("GET", "/actions", on_actions),
	SDK_ROUTE("POST", "/requests", on_open),
	SDK_ROUTE("GET", "/requests", on_list),
	SDK_ROUTE("GET", "/requests/:id", on_get),
	SDK_ROUTE("PATCH", "/requests/:id", on_change),
	SDK_ROUTE("POST", "/requests/:id/approve", on_approve),
	SDK_ROUTE("POST", "/requests/:id/deny", on_veto),
	SDK_ROUTE("POST", "/requests/:id/veto", on_veto),
	SDK_ROUTE("POST", "/requests/:id/withdraw", on_withdraw),
	SDK_ROUTE("POST", "/requests/:id/review", on_review),
	SDK_ROUTE("GET", "/intents", on_intents),
	SDK_ROUTE("POST", "/intents/:key/claim", on_claim),
	SDK_ROUTE("POST", "/intents/:key/result", on_result),
};

const sdk_kernel_def governance_kernel = {
	.name = "governance",
	.port = 8110, .tier = "governance",
	.summary = "change requests with approval rules before dangerous actions",
	.complete = true,
	/* Its tables as they are today: a change is a new step in
	 * .migrations and a new fixture directory (docs/upgrades.md). */
	.schema_version = 1,
	.routes = governance_routes,
	.n_routes = sizeof governance_routes / sizeof governance_routes[0],
	.init = governance_init,
	.close = governance_close,
	.metrics = governance_metrics,
};
