#include "serve/govern/govern.h"

#include "sdk/call.h"
#include "sdk/clock.h"
#include "sdk/db.h"
#include "sdk/govaction.h"
#include "sdk/log.h"
#include "sdk/token.h"
#include "serve/auth/users.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GV_CALL_TIMEOUT_MS 10000
#define GV_ACTION_TIMEOUT_MS 30000
#define GV_REASON_MAX 1024
#define GV_BREAK_GLASS_HEADER "X-Grace-Break-Glass"
#define GV_REASON_HEADER "X-Grace-Reason"

struct gv {
	api_ctx *api;
	sdk_caller *caller;     /* "grace": the governance kernel's intents */
	sdk_caller *as_gateway; /* an approved kernel action, forwarded for its requester */
	sqlite3 *db;            /* grace.db: gov_runs, the record of every key run */
	struct event *poll;
	bool busy;              /* a round of intents is under way */
	json_t *queue;          /* the round's intents still to handle */
	json_t *cur;            /* the intent being handled */
	json_t *role_result;    /* user.role: its result, while the kernels are told */
	unsigned long long runs, reports_failed;
};

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS gov_runs ("
	" key TEXT PRIMARY KEY, request_id INTEGER NOT NULL, action TEXT NOT NULL,"
	" state TEXT NOT NULL, ok INTEGER, result TEXT, started_ms INTEGER NOT NULL,"
	" finished_ms INTEGER)";

/* ---- the gate */

/* arg is the gated request, answered here. */
static void on_gate_answer(int status, const char *body, size_t len, double ms, const char *error,
			   void *arg)
{
	(void)ms;
	sdk_req *req = arg;
	json_t *j = body ? json_loadb(body, len, 0, NULL) : NULL;
	if (status == 201 && json_is_object(j)) {
		char loc[64];
		snprintf(loc, sizeof loc, "/governance/requests/%lld",
			 (long long)json_integer_value(json_object_get(j, "id")));
		sdk_req_add_header(req, "Location", loc);
		sdk_reply_json(req, 202,
			       json_pack("{s:s, s:o}", "status",
					 json_is_true(json_object_get(j, "break_glass"))
						 ? "break_glass"
						 : "pending_approval",
					 "change_request", j));
		return;
	}
	if (status >= 400 && json_is_object(json_object_get(j, "error"))) {
		sdk_reply_json(req, status, j);
		return;
	}
	json_decref(j);
	sdk_reply_error(req, 503, "governance_unavailable",
			"this action needs approval, and the governance kernel cannot take the "
			"request now (%d %s)", status, error ? error : "");
}

/* The break-glass set that heals the policy kernel (docs/policy.md) is
 * never gated: stopping it or clearing its port must not wait on anyone. */
static bool never_gated(const char *action, const json_t *params)
{
	const char *kernel = json_string_value(json_object_get(params, "kernel"));
	return (!strcmp(action, "kernel.stop") || !strcmp(action, "port.clear_force")) && kernel &&
	       !strcmp(kernel, "policy");
}

bool gv_gate(api_ctx *api, sdk_req *req, const char *action, json_t *params)
{
	if (!sdk_gov_listed(api->cfg->governance.gate, action) || never_gated(action, params)) {
		json_decref(params);
		return false;
	}
	if (!api->gov) {
		json_decref(params);
		sdk_reply_error(req, 503, "governance_unavailable",
				"%s is gated ([governance] gate) but no governance kernel runs", action);
		return true;
	}
	int role = 0;
	const char *user = sdk_req_user(req, &role);
	const char *bg = sdk_req_header(req, GV_BREAK_GLASS_HEADER);
	const char *reason = bg ? bg : sdk_req_header(req, GV_REASON_HEADER);
	if (!user || (reason && strlen(reason) > GV_REASON_MAX)) {
		json_decref(params);
		sdk_reply_error(req, user ? 400 : 403, user ? "invalid" : "forbidden",
				user ? "the reason is at most %d bytes"
				     : "a gated action needs a user (%d)",
				GV_REASON_MAX);
		return true;
	}
	json_t *b = json_pack("{s:s, s:o, s:s?, s:b}", "action", action, "params", params,
			      "reason", reason, "break_glass", bg != NULL);
	char *body = b ? json_dumps(b, JSON_COMPACT) : NULL;
	json_decref(b);
	const char *h[] = { SDK_USER_HEADER, user, SDK_ROLE_HEADER,
			    role == AUTH_ROLE_ADMIN ? "admin" : "user", NULL };
	if (!body || sdk_call(api->gov->caller, "governance", "POST", "/requests", body,
			      strlen(body), h, GV_CALL_TIMEOUT_MS, on_gate_answer, req) < 0)
		sdk_reply_error(req, 503, "governance_unavailable", "cannot reach the governance kernel");
	free(body);
	return true;
}

const char *gv_kernel_action(const char *kernel, const char *method, const char *path,
			     json_t **params)
{
	*params = NULL;
	char name[256];
	if (!strcmp(kernel, "crypto") && !strcmp(method, "POST") &&
	    sscanf(path, "/keys/%255[^/]/rotate", name) == 1 &&
	    !strcmp(path + strlen(path) - 7, "/rotate")) {
		*params = json_pack("{s:s}", "name", name);
		return "key.rotate";
	}
	if (!strcmp(kernel, "crypto") && !strcmp(method, "DELETE") &&
	    sscanf(path, "/keys/%255[^/]", name) == 1 && !strchr(path + 6, '/')) {
		*params = json_pack("{s:s}", "name", name);
		return "key.delete";
	}
	if (!strcmp(kernel, "policy") && (!strcmp(method, "PUT") || !strcmp(method, "DELETE")) &&
	    sscanf(path, "/policy-sets/%255[^/]", name) == 1 && !strchr(path + 13, '/')) {
		*params = json_pack("{s:s, s:s}", "name", name, "method", method);
		return "policy.set";
	}
	if (!strcmp(kernel, "message_bus") && !strcmp(path, "/retention") &&
	    (!strcmp(method, "POST") || !strcmp(method, "DELETE"))) {
		*params = json_pack("{s:s}", "method", method);
		return "bus.retention";
	}
	return NULL;
}

bool gv_gate_kernel(api_ctx *api, sdk_req *req, const char *kernel, const char *path)
{
	json_t *params;
	const char *action = gv_kernel_action(kernel, sdk_req_method(req), path, &params);
	if (!action || !sdk_gov_listed(api->cfg->governance.gate, action)) {
		json_decref(params);
		return false;
	}
	if (evbuffer_get_length(sdk_req_body(req))) {
		json_t *body = sdk_req_json(req, false); /* borrowed; NULL: answered 400 */
		if (!body) {
			json_decref(params);
			return true;
		}
		json_object_set(params, "body", body);
	}
	return gv_gate(api, req, action, params);
}

/* ---- the executor's record (grace.db) */

/* The run of `key`: 0 none, 1 started (never finished), 2 done with *ok
 * and *result (new); negative on a storage failure. */
static int run_find(gv *g, const char *key, bool *ok, json_t **result)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(g->db, "SELECT state, ok, result FROM gov_runs WHERE key = ?", -1,
			       &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(st), found = 0;
	if (rc == SQLITE_ROW) {
		found = strcmp((const char *)sqlite3_column_text(st, 0), "done") ? 1 : 2;
		*ok = sqlite3_column_int(st, 1);
		const char *r = (const char *)sqlite3_column_text(st, 2);
		*result = r ? json_loads(r, JSON_DECODE_ANY, NULL) : json_null();
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? found : -1;
}

/* Records that `key` starts: durably, before the action runs. */
static int run_start(gv *g, const json_t *it)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(g->db,
			       "INSERT INTO gov_runs (key, request_id, action, state, started_ms)"
			       " VALUES (?, ?, ?, 'started', ?)",
			       -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(st, 1, json_string_value(json_object_get(it, "key")), -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, json_integer_value(json_object_get(it, "request_id")));
	sqlite3_bind_text(st, 3, json_string_value(json_object_get(it, "action")), -1,
			  SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 4, sdk_wall_ms());
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static int run_finish(gv *g, const char *key, bool ok, const json_t *result)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(g->db,
			       "UPDATE gov_runs SET state = 'done', ok = ?, result = ?, finished_ms = ?"
			       " WHERE key = ?",
			       -1, &st, NULL) != SQLITE_OK)
		return -1;
	char *r = json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY);
	sqlite3_bind_int(st, 1, ok);
	sqlite3_bind_text(st, 2, r ? r : "null", -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 3, sdk_wall_ms());
	sqlite3_bind_text(st, 4, key, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	free(r);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* ---- a round of intents */

static void next_intent(gv *g);

static void on_reported(int status, const char *body, size_t len, double ms, const char *error,
			void *arg)
{
	(void)body, (void)len, (void)ms;
	gv *g = arg;
	if (status != 200 && g->reports_failed++ % 20 == 0)
		sdk_warn("governance: a result was not taken (%d %s); it is sent again", status,
			 error ? error : "");
	next_intent(g);
}

/* Sends the current intent's result (from the record) to the kernel. */
static void report(gv *g, bool ok, json_t *result)
{
	const char *key = json_string_value(json_object_get(g->cur, "key"));
	char path[160], enc[96];
	sdk_uri_encode(key, enc, sizeof enc);
	snprintf(path, sizeof path, "/intents/%s/result", enc);
	json_t *b = json_pack("{s:b, s:O}", "ok", ok, "result", result ? result : json_null());
	char *body = b ? json_dumps(b, JSON_COMPACT) : NULL;
	json_decref(b);
	int rc = body ? sdk_call(g->caller, "governance", "POST", path, body, strlen(body), NULL,
				 GV_CALL_TIMEOUT_MS, on_reported, g)
		      : -1;
	free(body);
	if (rc < 0)
		next_intent(g);
}

/* The action ended: record it, then report it. */
static void finish(gv *g, bool ok, json_t *result /* stolen */)
{
	const char *key = json_string_value(json_object_get(g->cur, "key"));
	g->runs++;
	if (run_finish(g, key, ok, result) < 0)
		sdk_error("governance: the result of %s could not be recorded: %s", key,
			  sqlite3_errmsg(g->db));
	sdk_info("governance: %s ran %s (request %lld, %s)", key, ok ? "ok" : "failed",
		 (long long)json_integer_value(json_object_get(g->cur, "request_id")),
		 json_string_value(json_object_get(g->cur, "action")));
	report(g, ok, result);
	json_decref(result);
}

static void finish_error(gv *g, const char *fmt, const char *what)
{
	char msg[300];
	snprintf(msg, sizeof msg, fmt, what);
	finish(g, false, json_pack("{s:s}", "error", msg));
}

static void on_kernel_answer(int status, const char *body, size_t len, double ms,
			     const char *error, void *arg)
{
	(void)ms;
	gv *g = arg;
	json_t *j = body && len ? json_loadb(body, len, JSON_DECODE_ANY, NULL) : NULL;
	json_t *r = json_pack("{s:i, s:o}", "status", status,
			      "body", j ? j : body && len ? json_stringn(body, len) : json_null());
	if (status == 0)
		json_object_set_new(r, "error", json_string(error ? error : "no answer"));
	finish(g, status >= 200 && status < 300, r);
}

/* Forwards the approved kernel request for its requester. */
static void run_kernel(gv *g, const char *kernel, const char *method, const char *path,
		       const json_t *body)
{
	const json_t *it = g->cur;
	const char *h[] = { SDK_USER_HEADER, json_string_value(json_object_get(it, "requester")),
			    SDK_ROLE_HEADER, "admin", NULL };
	char *b = body && !json_is_null(body) ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY)
					      : NULL;
	if (sdk_call(g->as_gateway, kernel, method, path, b, b ? strlen(b) : 0, h,
		     GV_ACTION_TIMEOUT_MS, on_kernel_answer, g) < 0)
		finish_error(g, "cannot call the %s kernel", kernel);
	free(b);
}

/* An approved waiver: the compliance kernel's executor-only route, called
 * as the main process (caller "grace", no user), with the request's id
 * only: the kernel reads the request, its state and its approvals from the
 * governance kernel itself before it takes the waiver. */
static void run_waiver(gv *g)
{
	char body[64];
	snprintf(body, sizeof body, "{\"request_id\":%lld}",
		 (long long)json_integer_value(json_object_get(g->cur, "request_id")));
	if (sdk_call(g->caller, "compliance", "POST", "/waivers/approved", body, strlen(body), NULL,
		     GV_ACTION_TIMEOUT_MS, on_kernel_answer, g) < 0)
		finish_error(g, "cannot call the %s kernel", "compliance");
}

static void on_healed(json_t *incident, void *arg)
{
	gv *g = arg;
	finish(g, true, json_incref(incident));
}

static void run_user_delete(gv *g, const char *name)
{
	api_ctx *api = g->api;
	int role;
	if (!auth_name_valid(name) || auth_user_get(api->auth->store, name, NULL, &role) < 0)
		return finish_error(g, "no user '%s'", name);
	if (role == AUTH_ROLE_ADMIN && auth_user_count(api->auth->store, AUTH_ROLE_ADMIN) <= 1)
		return finish_error(g, "'%s' is the last admin", name);
	auth_cache_clear(api->auth);
	if (auth_user_delete(api->auth->store, name) < 0)
		return finish_error(g, "cannot delete the user '%s'", name);
	api_user_data_purge(api, name);
	finish(g, true, json_pack("{s:s, s:b}", "name", name, "deleted", 1));
}

/* The kernels that act later as the user were told (pending NULL), or
 * some are still to be: the result says which, so the operator knows
 * (they act for no one at their next start until they are). */
static void on_role_told(void *arg, json_t *pending)
{
	gv *g = arg;
	json_t *result = g->role_result;
	g->role_result = NULL;
	json_object_set_new(result, "kernels_pending", pending ? pending : json_array());
	finish(g, true, result);
}

/* The only way a role changes: an approved request. Sessions carry the
 * role they were checked with: the cache goes, so the next request sees
 * the new one. */
static void run_user_role(gv *g, const char *name, const char *role_s)
{
	api_ctx *api = g->api;
	int role = role_s ? auth_role_parse(role_s) : AUTH_ROLE_NONE, old;
	if (role == AUTH_ROLE_NONE)
		return finish_error(g, "role is 'user' or 'admin', not '%s'", role_s ? role_s : "");
	if (!auth_name_valid(name) || auth_user_get(api->auth->store, name, NULL, &old) < 0)
		return finish_error(g, "no user '%s'", name);
	if (old == AUTH_ROLE_ADMIN && role != AUTH_ROLE_ADMIN &&
	    auth_user_count(api->auth->store, AUTH_ROLE_ADMIN) <= 1)
		return finish_error(g, "'%s' is the last admin", name);
	/* The kernels' notice first (user_roles.h): a crash after the change
	 * must not leave a job, a run or a delayed event acting as before. */
	if (api_user_role_begin(api, name) < 0)
		return finish_error(g, "cannot record the role change of '%s' for the kernels", name);
	if (auth_user_set_role(api->auth->store, name, role) < 0)
		return finish_error(g, "cannot change the role of '%s'", name);
	auth_cache_clear(api->auth);
	g->role_result = json_pack("{s:s, s:s, s:s}", "name", name, "role", auth_role_name(role),
				   "was", auth_role_name(old));
	api_user_role_wait(api, name, on_role_told, g);
}

/* Runs the current intent's action; every path ends in finish(). */
static void execute(gv *g)
{
	const json_t *it = g->cur;
	const char *action = json_string_value(json_object_get(it, "action"));
	const json_t *p = json_object_get(it, "params");
	const char *kname = json_string_value(json_object_get(p, "kernel"));
	const char *name = json_string_value(json_object_get(p, "name"));
	const char *method = json_string_value(json_object_get(p, "method"));
	const json_t *body = json_object_get(p, "body");
	char enc[256 * 3 + 1] = "", path[900];
	if (name && sdk_uri_encode(name, enc, sizeof enc) < 0)
		return finish_error(g, "%s: the name is too long", action);
	if (!strcmp(action, "kernel.stop") || !strcmp(action, "port.clear_force")) {
		sup_kernel *k = kname ? sup_find(g->api->sup, kname) : NULL;
		if (!k)
			return finish_error(g, "no kernel named '%s'", kname ? kname : "");
		if (!strcmp(action, "port.clear_force")) {
			hl_request hr = { .issue = -1, .action = "clear_port", .force = true,
					  .trigger = "governance" };
			int64_t running = 0;
			int rc = hl_heal(g->api->hl, k, &hr, on_healed, g, &running);
			if (rc < 0)
				finish_error(g, "cannot start clear_port: %s",
					     rc == -EBUSY ? "a heal of this kernel is running"
							  : "refused");
			return;
		}
		int rc = sup_kernel_stop(k);
		if (rc < 0 && rc != -EALREADY)
			return finish_error(g, "cannot stop: %s", strerror(-rc));
		json_t *r = api_kernel_json(k);
		json_object_set_new(r, "action", json_string("stop"));
		json_object_set_new(r, "already", json_boolean(rc == -EALREADY));
		return finish(g, true, r);
	}
	if (!strcmp(action, "user.delete"))
		return run_user_delete(g, name);
	if (!strcmp(action, "user.role"))
		return run_user_role(g, name, json_string_value(json_object_get(p, "role")));
	if (!strcmp(action, "key.rotate")) {
		snprintf(path, sizeof path, "/keys/%s/rotate", enc);
		return run_kernel(g, "crypto", "POST", path, body);
	}
	if (!strcmp(action, "key.delete")) {
		snprintf(path, sizeof path, "/keys/%s", enc);
		return run_kernel(g, "crypto", "DELETE", path, body);
	}
	if (!strcmp(action, "policy.set") && method &&
	    (!strcmp(method, "PUT") || !strcmp(method, "DELETE"))) {
		snprintf(path, sizeof path, "/policy-sets/%s", enc);
		return run_kernel(g, "policy", method, path, body);
	}
	if (!strcmp(action, "compliance.waiver"))
		return run_waiver(g);
	if (!strcmp(action, "bus.retention") && method &&
	    (!strcmp(method, "POST") || !strcmp(method, "DELETE")))
		return run_kernel(g, "message_bus", method, "/retention", body);
	finish_error(g, "%s: this version of Grace has no way to run it", action);
}

static void on_claimed(int status, const char *body, size_t len, double ms, const char *error,
		       void *arg)
{
	(void)body, (void)len, (void)ms, (void)error;
	gv *g = arg;
	if (status == 409) { /* it has its result already */
		next_intent(g);
		return;
	}
	if (status != 200) { /* the kernel is away: the whole round waits for the next poll */
		json_array_clear(g->queue);
		next_intent(g);
		return;
	}
	if (run_start(g, g->cur) < 0) {
		/* Without the record there is no exactly-once: do not run. */
		sdk_error("governance: cannot record %s before running it: %s",
			  json_string_value(json_object_get(g->cur, "key")), sqlite3_errmsg(g->db));
		json_array_clear(g->queue);
		next_intent(g);
		return;
	}
	execute(g);
}

static void handle(gv *g)
{
	const char *key = json_string_value(json_object_get(g->cur, "key"));
	bool ok = false;
	json_t *result = NULL;
	int seen = key ? run_find(g, key, &ok, &result) : -1;
	if (seen < 0) {
		sdk_error("governance: cannot read the record of %s", key ? key : "(no key)");
		json_array_clear(g->queue);
		next_intent(g);
		return;
	}
	if (seen == 2) { /* it ran: its result only needs to reach the kernel */
		report(g, ok, result);
		json_decref(result);
		return;
	}
	if (seen == 1) { /* it started and this process stopped: never run it twice */
		json_decref(result);
		finish_error(g, "%s",
			     "interrupted: the main process stopped while the action ran; it is "
			     "not run again (check its effect)");
		return;
	}
	char path[160], enc[96];
	sdk_uri_encode(key, enc, sizeof enc);
	snprintf(path, sizeof path, "/intents/%s/claim", enc);
	if (sdk_call(g->caller, "governance", "POST", path, NULL, 0, NULL, GV_CALL_TIMEOUT_MS,
		     on_claimed, g) < 0) {
		json_array_clear(g->queue);
		next_intent(g);
	}
}

static void next_intent(gv *g)
{
	json_decref(g->cur);
	g->cur = NULL;
	if (json_array_size(g->queue) == 0) {
		g->busy = false;
		return;
	}
	g->cur = json_incref(json_array_get(g->queue, 0));
	json_array_remove(g->queue, 0);
	handle(g);
}

static void on_intents(int status, const char *body, size_t len, double ms, const char *error,
		       void *arg)
{
	(void)ms, (void)error;
	gv *g = arg;
	json_t *j = status == 200 && body ? json_loadb(body, len, 0, NULL) : NULL;
	json_t *list = json_object_get(j, "intents");
	if (json_is_array(list))
		json_array_extend(g->queue, list);
	json_decref(j);
	next_intent(g);
}

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	gv *g = arg;
	if (g->busy)
		return;
	sup_kernel *k = sup_find(g->api->sup, "governance");
	if (!k || k->state != SUP_READY)
		return;
	g->busy = true;
	if (sdk_call(g->caller, "governance", "GET", "/intents", NULL, 0, NULL, GV_CALL_TIMEOUT_MS,
		     on_intents, g) < 0)
		g->busy = false;
}

gv *gv_new(api_ctx *api, const char *token)
{
	const grace_kernel_cfg *kc = grace_config_kernel(api->cfg, "governance");
	if (!kc || !kc->enabled)
		return NULL;
	gv *g = calloc(1, sizeof *g);
	if (!g)
		return NULL;
	g->api = api;
	sdk_err err;
	g->queue = json_array();
	g->caller = sdk_caller_new(api->base, "grace", token, sup_resolve, api->sup);
	g->as_gateway = sdk_caller_new(api->base, SDK_GATEWAY_CALLER, token, sup_resolve, api->sup);
	g->poll = event_new(api->base, -1, EV_PERSIST, on_poll, g);
	if (!g->queue || !g->caller || !g->as_gateway || !g->poll ||
	    sdk_db_open(api->cfg->data_dir, "grace", &g->db, &err) < 0 ||
	    sdk_db_exec(g->db, schema, &err) < 0) {
		sdk_error("governance: cannot start the executor: %s",
			  g->db ? err.msg : "out of memory or grace.db");
		gv_free(g);
		return NULL;
	}
	unsigned ms = api->cfg->governance.poll_ms;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	event_add(g->poll, &tv);
	return g;
}

void gv_free(gv *g)
{
	if (!g)
		return;
	if (g->poll)
		event_free(g->poll);
	sdk_caller_free(g->caller);
	sdk_caller_free(g->as_gateway);
	json_decref(g->queue);
	json_decref(g->cur);
	json_decref(g->role_result);
	if (g->db)
		sqlite3_close(g->db);
	free(g);
}
