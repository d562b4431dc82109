/* Acting on runs: each open run (pending, or running when a restart found
 * it so) is taken up by the dispatcher, at most active_runs_max at once:
 *
 *   pending  -> overlap check -> running (recorded) -> policy -> target -> closed
 *   running (found at start) -> executor with its job id: wait for it
 *                            -> idempotent target: send again (same key)
 *                            -> otherwise: interrupted (it may have acted)
 *
 * The run is recorded as running before anything is sent, so a restart
 * never sends twice to a target that cannot recognise a resend; targets
 * that can (the executor by the slot's key, or one the job declares
 * idempotent) get the same key again and answer with what they did. */
#include "kernels/scheduler/sched.h"

#include "sdk/clock.h"
#include "sdk/log.h"
#include "sdk/token.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POLICY_TIMEOUT_MS 5000
#define EXEC_SUBMIT_TIMEOUT_MS 15000
#define EXEC_WAIT_MS 20000          /* the executor's long poll */
#define EXEC_POLL_TIMEOUT_MS (EXEC_WAIT_MS + 5000)
#define EXEC_RETRY_MS 1000          /* after the executor did not answer */
#define DISPATCH_BATCH 64
#define DETAIL_BODY_MAX 512 /* bytes of a target's answer kept in a run */

enum act_stage { ACT_POLICY, ACT_SEND, ACT_WAIT };

struct sch_act {
	sched *s;
	sch_act *next, *prev;
	sch_open_run run;
	sch_job job; /* owned */
	char key[96]; /* the slot's idempotency key */
	enum act_stage stage;
	int64_t started_ms;
	struct event *retry;
};

static void act_poll(sch_act *a);

static void act_unlink(sch_act *a)
{
	sched *s = a->s;
	if (a->prev)
		a->prev->next = a->next;
	else
		s->acts = a->next;
	if (a->next)
		a->next->prev = a->prev;
	s->n_acts--;
	if (a->retry)
		event_free(a->retry);
	sch_job_free(&a->job);
	free(a);
}

/* Closes the run with `state` and `detail` (stolen), frees the act. */
static void act_finish(sch_act *a, const char *state, json_t *detail)
{
	sched *s = a->s;
	sdk_err e;
	if (sch_run_update(s->k->db, a->run.id, state, -1, sdk_wall_ms(), NULL, detail, &e) < 0) {
		s->stats.act_errors++;
		sdk_warn("scheduler: run %lld of %s: cannot record %s: %s", (long long)a->run.id,
			 a->run.job_id, state, e.msg);
	}
	if (!strcmp(state, SCH_RUN_SUCCEEDED))
		s->stats.succeeded++;
	else if (!strcmp(state, SCH_RUN_FAILED))
		s->stats.failed++;
	else if (!strcmp(state, SCH_RUN_DENIED))
		s->stats.denied++;
	else if (!strcmp(state, SCH_RUN_SKIPPED))
		s->stats.skipped++;
	else if (!strcmp(state, SCH_RUN_INTERRUPTED))
		s->stats.interrupted++;
	json_decref(detail);
	act_unlink(a);
	sched_dispatch_soon(s);
}

void sched_owner_headers(const sch_job *j, const char *idem_key, const char **out)
{
	size_t n = 0;
	if (j->role != SCH_ROLE_KERNEL) {
		out[n++] = SDK_USER_HEADER;
		out[n++] = j->owner;
		out[n++] = SDK_ROLE_HEADER;
		out[n++] = j->role == SCH_ROLE_ADMIN ? "admin" : "user";
	}
	if (idem_key) {
		out[n++] = "Idempotency-Key";
		out[n++] = idem_key;
	}
	out[n] = NULL;
}

/* A target's answer for the run's detail: its JSON when short, else the
 * start of its text (cut on a character boundary). */
static json_t *answer_json(int status, const char *body, size_t len, const char *error)
{
	json_t *o = json_pack("{s:i}", "status", status);
	if (status == 0) {
		json_object_set_new(o, "error", json_string(error ? error : "no answer"));
		return o;
	}
	json_t *parsed = body && len ? json_loadb(body, len, JSON_DECODE_ANY, NULL) : NULL;
	char *text = parsed ? json_dumps(parsed, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	if (parsed && text && strlen(text) <= DETAIL_BODY_MAX) {
		json_object_set_new(o, "body", parsed);
		free(text);
		return o;
	}
	json_decref(parsed);
	free(text);
	size_t n = len > DETAIL_BODY_MAX ? DETAIL_BODY_MAX : len;
	json_t *t = NULL;
	for (size_t cut = 0; body && !t && cut < 4 && cut <= n; cut++)
		t = json_stringn(body, n - cut); /* NULL when not UTF-8 */
	json_object_set_new(o, "body_text", t ? t : json_string("(not text)"));
	if (len > n)
		json_object_set_new(o, "truncated", json_true());
	return o;
}

static void on_ignored(int status, const char *body, size_t len, double ms, const char *error,
		       void *arg)
{
	(void)status, (void)body, (void)len, (void)ms, (void)error, (void)arg;
}

/* ---- the executor */

static bool exec_state_final(const char *st)
{
	return st && strcmp(st, "queued") && strcmp(st, "running");
}

static void on_exec_job(int status, const char *body, size_t len, double ms, const char *error,
			void *arg)
{
	(void)ms;
	sch_act *a = arg;
	json_t *job = status == 200 && body ? json_loadb(body, len, 0, NULL) : NULL;
	const char *st = json_string_value(json_object_get(job, "state"));
	if (job && exec_state_final(st)) {
		json_t *detail = json_pack("{s:s, s:s, s:O?, s:O?, s:O?, s:O?}", "job_id",
					   a->run.target_ref, "state", st, "exit_code",
					   json_object_get(job, "exit_code"), "signal",
					   json_object_get(job, "signal"), "duration_ms",
					   json_object_get(job, "duration_ms"), "timed_out",
					   json_object_get(job, "timed_out"));
		act_finish(a, !strcmp(st, "succeeded") ? SCH_RUN_SUCCEEDED : SCH_RUN_FAILED, detail);
		json_decref(job);
		return;
	}
	json_decref(job);
	if (status == 404) {
		act_finish(a, SCH_RUN_FAILED,
			   json_pack("{s:s, s:s}", "job_id", a->run.target_ref, "error",
				     "the executor has no such job"));
		return;
	}
	if (status == 200) { /* still queued or running */
		act_poll(a);
		return;
	}
	/* No answer (the executor restarting): ask again shortly. */
	if (status != 0)
		sdk_debug("scheduler: executor answered %d for job %s: %s", status,
			  a->run.target_ref, error ? error : "");
	struct timeval tv = sdk_ms_tv(EXEC_RETRY_MS);
	evtimer_add(a->retry, &tv);
}

static void act_poll(sch_act *a)
{
	if (a->s->draining)
		return; /* stays running in the store: a restart waits for it again */
	char path[160];
	snprintf(path, sizeof path, "/jobs/%s?wait_ms=%d", a->run.target_ref, EXEC_WAIT_MS);
	const char *h[8];
	sched_owner_headers(&a->job, NULL, h);
	a->stage = ACT_WAIT;
	if (sdk_call(a->s->k->caller, "executor", "GET", path, NULL, 0, h, EXEC_POLL_TIMEOUT_MS,
		     on_exec_job, a) < 0) {
		struct timeval tv = sdk_ms_tv(EXEC_RETRY_MS);
		evtimer_add(a->retry, &tv);
	}
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	act_poll(arg);
}

static void on_exec_submitted(int status, const char *body, size_t len, double ms,
			      const char *error, void *arg)
{
	(void)ms;
	sch_act *a = arg;
	json_t *job = (status == 200 || status == 201) && body ? json_loadb(body, len, 0, NULL) : NULL;
	const char *id = json_string_value(json_object_get(job, "id"));
	if (!id || strlen(id) >= sizeof a->run.target_ref) {
		json_decref(job);
		act_finish(a, SCH_RUN_FAILED, answer_json(status, body, len, error));
		return;
	}
	snprintf(a->run.target_ref, sizeof a->run.target_ref, "%s", id);
	json_decref(job);
	sdk_err e;
	if (sch_run_update(a->s->k->db, a->run.id, SCH_RUN_RUNNING, -1, -1, a->run.target_ref,
			   NULL, &e) < 0)
		sdk_warn("scheduler: run %lld: cannot record executor job %s: %s",
			 (long long)a->run.id, a->run.target_ref, e.msg);
	act_poll(a);
}

/* ---- the bus and kernel routes */

static void on_sent(int status, const char *body, size_t len, double ms, const char *error,
		    void *arg)
{
	(void)ms;
	sch_act *a = arg;
	act_finish(a, status >= 200 && status < 300 ? SCH_RUN_SUCCEEDED : SCH_RUN_FAILED,
		   answer_json(status, body, len, error));
}

static void act_send(sch_act *a)
{
	sched *s = a->s;
	const sch_spec *sp = &a->job.spec;
	json_t *t = sp->target;
	const char *h[8];
	sched_owner_headers(&a->job, a->key, h);
	a->stage = ACT_SEND;
	json_t *body = NULL;
	const char *kernel, *method = "POST", *path;
	unsigned timeout = SCH_CALL_TIMEOUT_DEFAULT_MS;
	sdk_call_cb cb = on_sent;
	char slot[32];
	if (a->run.slot_ms == INT64_MIN)
		snprintf(slot, sizeof slot, "manual");
	else
		snprintf(slot, sizeof slot, "%lld", (long long)a->run.slot_ms);
	char run_id[32];
	snprintf(run_id, sizeof run_id, "%lld", (long long)a->run.id);
	switch (sp->target_type) {
	case SCH_TARGET_BUS: {
		json_t *headers = json_object_get(t, "headers");
		headers = json_is_object(headers) ? json_deep_copy(headers) : json_object();
		json_object_set_new(headers, "x-grace-scheduler-job", json_string(a->job.id));
		json_object_set_new(headers, "x-grace-scheduler-run", json_string(run_id));
		json_object_set_new(headers, "x-grace-slot", json_string(slot));
		body = json_pack("{s:O, s:O, s:s, s:o}", "subject", json_object_get(t, "subject"),
				 "payload", json_object_get(t, "payload"), "key", a->key, "headers",
				 headers);
		kernel = "message_bus";
		path = "/publish";
		break;
	}
	case SCH_TARGET_ROUTE: {
		kernel = json_string_value(json_object_get(t, "kernel"));
		method = json_string_value(json_object_get(t, "method"));
		path = json_string_value(json_object_get(t, "path"));
		json_t *b = json_object_get(t, "body");
		body = b && !json_is_null(b) ? json_incref(b) : NULL;
		timeout = (unsigned)json_integer_value(json_object_get(t, "timeout_ms"));
		break;
	}
	case SCH_TARGET_EXECUTOR:
	default:
		body = json_deep_copy(json_object_get(t, "job"));
		json_object_set_new(body, "idempotency_key", json_string(a->key));
		kernel = "executor";
		path = "/jobs";
		timeout = EXEC_SUBMIT_TIMEOUT_MS;
		cb = on_exec_submitted;
		break;
	}
	char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	json_decref(body);
	if (sdk_call(s->k->caller, kernel, method, path, text, text ? strlen(text) : 0, h, timeout,
		     cb, a) < 0) {
		free(text);
		act_finish(a, SCH_RUN_FAILED,
			   json_pack("{s:s}", "error", "the call could not start (no such kernel?)"));
		return;
	}
	free(text);
}

/* ---- policy: the creator's rights each time the job fires
 *
 * The question is the one :8000 asks when the creator makes the same
 * request there now (docs/policy.md): principal User::"OWNER" under
 * Role::"ROLE" (sent as an entity, as :8000 sends it), action
 * FAMILY.VERB of the route the target is, resource as :8000 names it:
 *
 *   bus       bus.write        Route::"/bus/publish"
 *   executor  executor.write   Route:: the gateway pattern of /executor (ending in a star)
 *   route     kernels.VERB     Kernel::"NAME"   (/kernels/NAME/... for admins)
 *
 * A job made by a kernel asks as that kernel calling the target
 * (principal Kernel::"NAME", action "METHOD /path", resource
 * Kernel::"CALLEE"), as calls between kernels are asked. The context
 * says it is a scheduled run: {job, job_name, trigger, slot_ms}. So a
 * job never does what its creator could not do by hand at that moment. */

typedef struct policy_q {
	char principal_type[8];
	char principal[SCH_OWNER_MAX + 1];
	char action[SCH_PATH_MAX + 16];
	char resource_type[8];
	char resource[64];
} policy_q;

static const char *verb_of(const char *method)
{
	if (!method || !strcmp(method, "GET"))
		return "read";
	return !strcmp(method, "DELETE") ? "delete" : "write";
}

static void policy_question(const sch_job *j, policy_q *q)
{
	json_t *t = j->spec.target;
	const char *kernel = json_string_value(json_object_get(t, "kernel"));
	const char *method = json_string_value(json_object_get(t, "method"));
	const char *path = json_string_value(json_object_get(t, "path"));
	if (j->role == SCH_ROLE_KERNEL) {
		snprintf(q->principal_type, sizeof q->principal_type, "Kernel");
		snprintf(q->principal, sizeof q->principal, "%s",
			 strncmp(j->owner, "kernel:", 7) ? j->owner : j->owner + 7);
		snprintf(q->resource_type, sizeof q->resource_type, "Kernel");
		switch (j->spec.target_type) {
		case SCH_TARGET_BUS:
			snprintf(q->action, sizeof q->action, "POST /publish");
			snprintf(q->resource, sizeof q->resource, "message_bus");
			break;
		case SCH_TARGET_ROUTE:
			snprintf(q->action, sizeof q->action, "%s %s", method, path);
			snprintf(q->resource, sizeof q->resource, "%s", kernel);
			break;
		default:
			snprintf(q->action, sizeof q->action, "POST /jobs");
			snprintf(q->resource, sizeof q->resource, "executor");
		}
		return;
	}
	snprintf(q->principal_type, sizeof q->principal_type, "User");
	snprintf(q->principal, sizeof q->principal, "%s", j->owner);
	switch (j->spec.target_type) {
	case SCH_TARGET_BUS:
		snprintf(q->action, sizeof q->action, "bus.write");
		snprintf(q->resource_type, sizeof q->resource_type, "Route");
		snprintf(q->resource, sizeof q->resource, "/bus/publish");
		break;
	case SCH_TARGET_ROUTE:
		snprintf(q->action, sizeof q->action, "kernels.%s", verb_of(method));
		snprintf(q->resource_type, sizeof q->resource_type, "Kernel");
		snprintf(q->resource, sizeof q->resource, "%s", kernel);
		break;
	default:
		snprintf(q->action, sizeof q->action, "executor.write");
		snprintf(q->resource_type, sizeof q->resource_type, "Route");
		snprintf(q->resource, sizeof q->resource, "/executor/*");
	}
}

/* With no policy set to ask: the role table of :8000. Admins and kernels
 * may fire anything; a user may fire bus targets (the bus then applies
 * the user's own limits, since the publish carries the user's identity). */
static bool builtin_allows(const sch_job *j)
{
	return j->role != SCH_ROLE_USER || j->spec.target_type == SCH_TARGET_BUS;
}

static void act_decided(sch_act *a, bool allow, const char *source, const char *reason)
{
	if (!allow) {
		act_finish(a, SCH_RUN_DENIED,
			   json_pack("{s:s, s:s}", "policy", source, "reason",
				     reason ? reason : "not permitted"));
		return;
	}
	act_send(a);
}

/* "permitted by policy a, b" / "forbidden by policy c" / "no policy permits it". */
static void policy_reason(json_t *ans, bool allow, char *out, size_t n)
{
	json_t *ids = json_object_get(json_object_get(ans, "diagnostics"), "reason");
	size_t len = (size_t)snprintf(out, n, "%s", json_array_size(ids)
							  ? (allow ? "permitted by policy " : "forbidden by policy ")
							  : (allow ? "permitted" : "no policy permits it"));
	size_t i;
	json_t *id;
	json_array_foreach(ids, i, id) {
		if (len >= n)
			break;
		len += (size_t)snprintf(out + len, n - len, "%s%s", i ? ", " : "",
					json_string_value(id) ? json_string_value(id) : "?");
	}
}

static void on_policy(int status, const char *body, size_t len, double ms, const char *error,
		      void *arg)
{
	(void)ms;
	sch_act *a = arg;
	if (status == 404) { /* no policy set yet */
		act_decided(a, builtin_allows(&a->job), "builtin",
			    "no policy set: the role table (users may fire bus targets only)");
		return;
	}
	json_t *ans = status == 200 && body ? json_loadb(body, len, 0, NULL) : NULL;
	const char *d = json_string_value(json_object_get(ans, "decision"));
	if (!d || (strcmp(d, "allow") && strcmp(d, "deny"))) {
		char why[200];
		snprintf(why, sizeof why, "the policy kernel could not decide (%d %s): failing closed",
			 status, error ? error : "");
		json_decref(ans);
		act_decided(a, false, "policy", why);
		return;
	}
	bool allow = !strcmp(d, "allow");
	char why[256];
	policy_reason(ans, allow, why, sizeof why);
	json_decref(ans);
	act_decided(a, allow, "policy", why);
}

static void act_policy(sch_act *a)
{
	sched *s = a->s;
	a->stage = ACT_POLICY;
	if (!grace_config_kernel(s->k->cfg, "policy")) {
		act_decided(a, builtin_allows(&a->job), "builtin",
			    "no policy kernel: the role table (users may fire bus targets only)");
		return;
	}
	policy_q q;
	policy_question(&a->job, &q);
	json_t *ents = json_array();
	if (a->job.role != SCH_ROLE_KERNEL) {
		const char *role = sch_role_name(a->job.role);
		json_array_append_new(
			ents, json_pack("{s:{s:s, s:s}, s:{s:s, s:s}, s:[{s:s, s:s}]}", "uid", "type",
					"User", "id", a->job.owner, "attrs", "name", a->job.owner,
					"role", role, "parents", "type", "Role", "id", role));
	}
	json_t *req = json_pack(
		"{s:{s:s, s:s}, s:{s:s, s:s}, s:{s:s, s:s}, s:{s:s, s:s, s:s, s:o}, s:o}",
		"principal", "type", q.principal_type, "id", q.principal, "action", "type", "Action",
		"id", q.action, "resource", "type", q.resource_type, "id", q.resource, "context",
		"job", a->job.id, "job_name", a->job.spec.name, "trigger",
		sch_trigger_name(a->run.trigger), "slot_ms",
		a->run.slot_ms == INT64_MIN ? json_integer(0) : json_integer(a->run.slot_ms),
		"entities", ents);
	char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	if (!text || sdk_call(s->k->caller, "policy", "POST", "/authorize", text, strlen(text), NULL,
			      POLICY_TIMEOUT_MS, on_policy, a) < 0)
		act_decided(a, false, "policy", "the policy kernel cannot be called: failing closed");
	free(text);
}

/* ---- starting an act */

static void cancel_replaced(sched *s, const sch_job *j, int64_t other, const char *ref,
			    int64_t by)
{
	json_t *d = json_pack("{s:s, s:I}", "reason", "replaced by a newer run", "by_run",
			      (json_int_t)by);
	sdk_err e;
	if (sch_run_update(s->k->db, other, SCH_RUN_CANCELLED, -1, sdk_wall_ms(), NULL, d, &e) < 0)
		sdk_warn("scheduler: cannot cancel run %lld: %s", (long long)other, e.msg);
	json_decref(d);
	if (j->spec.target_type == SCH_TARGET_EXECUTOR && ref[0]) {
		char path[128];
		snprintf(path, sizeof path, "/jobs/%s/cancel", ref);
		const char *h[8];
		sched_owner_headers(j, NULL, h);
		sdk_call(s->k->caller, "executor", "POST", path, "{}", 2, h, EXEC_SUBMIT_TIMEOUT_MS,
			 on_ignored, NULL);
	}
}

static void act_start(sched *s, const sch_open_run *run)
{
	sch_act *a = calloc(1, sizeof *a);
	if (!a)
		return;
	a->s = s;
	a->run = *run;
	a->retry = evtimer_new(s->k->base, on_retry, a);
	a->next = s->acts;
	if (s->acts)
		s->acts->prev = a;
	s->acts = a;
	s->n_acts++;
	sdk_err e;
	int rc = sch_job_get(s->k->db, run->job_id, &a->job, &e);
	if (rc < 0 || !a->retry) {
		act_finish(a, SCH_RUN_FAILED, json_pack("{s:s}", "error", rc < 0 ? e.msg : "out of memory"));
		return;
	}
	if (run->slot_ms == INT64_MIN)
		snprintf(a->key, sizeof a->key, "sched:%s:run%lld", a->job.id, (long long)run->id);
	else
		snprintf(a->key, sizeof a->key, "sched:%s:%lld", a->job.id, (long long)run->slot_ms);
	if (run->running) {
		/* A restart found it sent, or about to be. */
		if (a->job.spec.target_type == SCH_TARGET_EXECUTOR && run->target_ref[0]) {
			act_poll(a);
		} else if (a->job.spec.idempotent) {
			act_policy(a);
		} else {
			act_finish(a, SCH_RUN_INTERRUPTED,
				   json_pack("{s:s}", "reason",
					     "the scheduler stopped while this run was being sent; "
					     "the target cannot recognise a resend, so it was not "
					     "sent again (it may or may not have acted)"));
		}
		return;
	}
	int64_t count, first;
	char ref[64];
	if (sch_runs_active(s->k->db, run->job_id, run->id, &count, &first, ref, &e) < 0) {
		act_finish(a, SCH_RUN_FAILED, json_pack("{s:s}", "error", e.msg));
		return;
	}
	if (count > 0 && a->job.spec.overlap == SCH_OVERLAP_FORBID) {
		act_finish(a, SCH_RUN_SKIPPED,
			   json_pack("{s:s, s:I}", "reason", "overlap: forbid, a run is still going",
				     "running_run", (json_int_t)first));
		return;
	}
	if (count > 0 && a->job.spec.overlap == SCH_OVERLAP_REPLACE)
		cancel_replaced(s, &a->job, first, ref, run->id);
	a->started_ms = sdk_wall_ms();
	if (sch_run_update(s->k->db, run->id, SCH_RUN_RUNNING, a->started_ms, -1, NULL, NULL, &e) <
	    0) {
		/* Not recorded as sent: do not send (a restart takes it up). */
		s->stats.act_errors++;
		sdk_warn("scheduler: run %lld: %s", (long long)run->id, e.msg);
		act_unlink(a);
		return;
	}
	s->stats.fired++;
	act_policy(a);
}

/* ---- the dispatcher */

static void on_dispatch(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	sched_dispatch(arg);
}

void sched_dispatch_soon(sched *s)
{
	if (!s->draining && s->dispatch)
		event_active(s->dispatch, EV_TIMEOUT, 0);
}

void sched_dispatch(sched *s)
{
	if (s->draining)
		return;
	sch_open_run runs[DISPATCH_BATCH];
	while (s->n_acts < s->cfg->active_runs_max) {
		size_t n = 0;
		sdk_err e;
		unsigned room = s->cfg->active_runs_max - s->n_acts;
		if (room > DISPATCH_BATCH)
			room = DISPATCH_BATCH;
		if (sch_runs_open(s->k->db, s->dispatched_upto, room, runs, &n, &e) < 0) {
			s->stats.act_errors++;
			sdk_warn("scheduler: cannot read open runs: %s", e.msg);
			return;
		}
		for (size_t i = 0; i < n; i++) {
			s->dispatched_upto = runs[i].id;
			act_start(s, &runs[i]);
		}
		if (n < room)
			return;
	}
}

void sched_acts_free(sched *s)
{
	while (s->acts)
		act_unlink(s->acts);
	if (s->dispatch) {
		event_free(s->dispatch);
		s->dispatch = NULL;
	}
}

struct event *sched_dispatch_event(sched *s)
{
	return event_new(s->k->base, -1, 0, on_dispatch, s);
}
