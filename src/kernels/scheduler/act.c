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
#include "sdk/pdp.h"
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
#define WF_START_TIMEOUT_MS 15000
#define WF_POLL_TIMEOUT_MS 10000
#define WF_POLL_MIN_MS 500          /* a run's end is looked for after this, */
#define WF_POLL_MAX_MS 15000        /* doubling up to this (the kernel has no long poll) */
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
	unsigned poll_ms; /* a workflow run's next look */
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

static void wf_poll(sch_act *a);

static void act_poll(sch_act *a)
{
	if (a->s->draining)
		return; /* stays running in the store: a restart waits for it again */
	if (a->job.spec.target_type == SCH_TARGET_WORKFLOW) {
		wf_poll(a);
		return;
	}
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

/* ---- the workflow kernel: a run started as the job's owner, followed to
 * its end (completed: succeeded; faulted or cancelled: failed). */

static void wf_retry_later(sch_act *a)
{
	struct timeval tv = sdk_ms_tv(a->poll_ms);
	a->poll_ms = a->poll_ms * 2 > WF_POLL_MAX_MS ? WF_POLL_MAX_MS : a->poll_ms * 2;
	evtimer_add(a->retry, &tv);
}

static void on_wf_run(int status, const char *body, size_t len, double ms, const char *error,
		      void *arg)
{
	(void)ms;
	sch_act *a = arg;
	json_t *run = status == 200 && body ? json_loadb(body, len, 0, NULL) : NULL;
	const char *st = json_string_value(json_object_get(run, "status"));
	if (st && (!strcmp(st, "completed") || !strcmp(st, "faulted") || !strcmp(st, "cancelled"))) {
		json_t *detail = json_pack("{s:s, s:s}", "run_id", a->run.target_ref, "status", st);
		json_t *out = json_object_get(run, !strcmp(st, "completed") ? "output" : "error");
		char *text = out ? json_dumps(out, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
		if (text && strlen(text) <= DETAIL_BODY_MAX) /* the run has it whole */
			json_object_set(detail, !strcmp(st, "completed") ? "output" : "error", out);
		free(text);
		act_finish(a, !strcmp(st, "completed") ? SCH_RUN_SUCCEEDED : SCH_RUN_FAILED, detail);
		json_decref(run);
		return;
	}
	json_decref(run);
	if (status == 404) {
		act_finish(a, SCH_RUN_FAILED,
			   json_pack("{s:s, s:s}", "run_id", a->run.target_ref, "error",
				     "the workflow kernel has no such run"));
		return;
	}
	if (status != 200 && status != 0)
		sdk_debug("scheduler: workflow answered %d for run %s: %s", status,
			  a->run.target_ref, error ? error : "");
	wf_retry_later(a); /* running or suspended, or no answer (restarting) */
}

static void wf_poll(sch_act *a)
{
	char path[128];
	snprintf(path, sizeof path, "/runs/%s", a->run.target_ref);
	const char *h[8];
	sched_owner_headers(&a->job, NULL, h);
	a->stage = ACT_WAIT;
	if (!a->poll_ms)
		a->poll_ms = WF_POLL_MIN_MS;
	if (sdk_call(a->s->k->caller, "workflow", "GET", path, NULL, 0, h, WF_POLL_TIMEOUT_MS,
		     on_wf_run, a) < 0)
		wf_retry_later(a);
}

static void on_wf_started(int status, const char *body, size_t len, double ms,
			  const char *error, void *arg)
{
	(void)ms;
	sch_act *a = arg;
	json_t *run = (status == 200 || status == 201) && body ? json_loadb(body, len, 0, NULL) : NULL;
	const char *id = json_string_value(json_object_get(run, "id"));
	bool good = id && *id && strlen(id) < sizeof a->run.target_ref;
	for (const char *p = id; good && *p; p++)
		good = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		       (*p >= '0' && *p <= '9') || *p == '-' || *p == '_';
	if (!good) {
		json_decref(run);
		act_finish(a, SCH_RUN_FAILED, answer_json(status, body, len, error));
		return;
	}
	snprintf(a->run.target_ref, sizeof a->run.target_ref, "%s", id);
	json_decref(run);
	sdk_err e;
	if (sch_run_update(a->s->k->db, a->run.id, SCH_RUN_RUNNING, -1, -1, a->run.target_ref,
			   NULL, &e) < 0)
		sdk_warn("scheduler: run %lld: cannot record workflow run %s: %s",
			 (long long)a->run.id, a->run.target_ref, e.msg);
	a->poll_ms = WF_POLL_MIN_MS;
	wf_retry_later(a); /* its end, in a moment */
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
	case SCH_TARGET_WORKFLOW: {
		/* The slot's key goes as Idempotency-Key: a resend after a
		 * restart is answered with the run the first send started. */
		json_t *v = json_object_get(t, "version");
		body = json_pack("{s:O, s:O}", "definition", json_object_get(t, "definition"), "input",
				 json_object_get(t, "input"));
		if (json_is_string(v))
			json_object_set(body, "version", v);
		kernel = "workflow";
		path = "/runs";
		timeout = WF_START_TIMEOUT_MS;
		cb = on_wf_started;
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
 *   workflow  workflow.write   Route:: the gateway pattern of /workflow
 *   route     kernels.VERB     Kernel::"NAME"   (/kernels/NAME/... for admins)
 *
 * A job made by a kernel asks as that kernel calling the target
 * (principal Kernel::"NAME", action "METHOD /path", resource
 * Kernel::"CALLEE"), as calls between kernels are asked. The context
 * says it is a scheduled run: {job, job_name, trigger, slot_ms}. So a
 * job never does what its creator could not do by hand at that moment.
 *
 * The same question is asked when the job is created (trigger "create",
 * slot_ms 0): a job its creator could not fire is refused then (403),
 * which under the default set is the role table's rule (users: bus and
 * workflow targets; admins: any). This asks POST /authorize itself rather
 * than through sdk/pdp.h: the answer's determining policies go in the
 * run's record and the refusal, which a cached decision does not keep. */

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
		case SCH_TARGET_WORKFLOW:
			snprintf(q->action, sizeof q->action, "POST /runs");
			snprintf(q->resource, sizeof q->resource, "workflow");
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
	case SCH_TARGET_WORKFLOW:
		snprintf(q->action, sizeof q->action, "workflow.write");
		snprintf(q->resource_type, sizeof q->resource_type, "Route");
		snprintf(q->resource, sizeof q->resource, "/workflow/*");
		break;
	default:
		snprintf(q->action, sizeof q->action, "executor.write");
		snprintf(q->resource_type, sizeof q->resource_type, "Route");
		snprintf(q->resource, sizeof q->resource, "/executor/*");
	}
}

/* With no policy set to ask: the role table of :8000. Admins and kernels
 * may fire anything; a user may fire bus and workflow targets (the bus and
 * the workflow kernel then apply the user's own limits, since the call
 * carries the user's identity). */
static bool builtin_allows(const sch_job *j)
{
	return j->role != SCH_ROLE_USER || j->spec.target_type == SCH_TARGET_BUS ||
	       j->spec.target_type == SCH_TARGET_WORKFLOW;
}

static void act_decided(void *arg, bool allow, const char *source, const char *reason)
{
	sch_act *a = arg;
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

typedef struct policy_ask {
	const sch_job *job; /* borrowed: outlives the question */
	sched_policy_cb cb;
	void *arg;
} policy_ask;

static void on_policy(int status, const char *body, size_t len, double ms, const char *error,
		      void *arg)
{
	(void)ms;
	policy_ask *p = arg;
	sched_policy_cb cb = p->cb;
	void *cb_arg = p->arg;
	const sch_job *j = p->job;
	free(p);
	if (status == 404) { /* no policy set yet */
		cb(cb_arg, builtin_allows(j), "builtin",
		   "no policy set: the role table (users may fire bus and workflow targets only)");
		return;
	}
	json_t *ans = status == 200 && body ? json_loadb(body, len, 0, NULL) : NULL;
	const char *d = json_string_value(json_object_get(ans, "decision"));
	if (!d || (strcmp(d, "allow") && strcmp(d, "deny"))) {
		char why[200];
		snprintf(why, sizeof why, "the policy kernel could not decide (%d %s): failing closed",
			 status, error ? error : "");
		json_decref(ans);
		cb(cb_arg, false, SCHED_POLICY_UNAVAILABLE, why);
		return;
	}
	bool allow = !strcmp(d, "allow");
	char why[256];
	policy_reason(ans, allow, why, sizeof why);
	json_decref(ans);
	cb(cb_arg, allow, "policy", why);
}

void sched_policy_ask(sched *s, const sch_job *j, const char *trigger, int64_t slot_ms,
		      sched_policy_cb cb, void *arg)
{
	if (!grace_config_kernel(s->k->cfg, "policy")) {
		cb(arg, builtin_allows(j), "builtin",
		   "no policy kernel: the role table (users may fire bus and workflow targets only)");
		return;
	}
	policy_q q;
	policy_question(j, &q);
	json_t *ents = json_array();
	if (j->role != SCH_ROLE_KERNEL) {
		const char *role = sch_role_name(j->role);
		json_array_append_new(ents, sdk_pdp_user_entity(j->owner, role));
	}
	json_t *req = json_pack(
		"{s:{s:s, s:s}, s:{s:s, s:s}, s:{s:s, s:s}, s:{s:s, s:s, s:s, s:I}, s:o}",
		"principal", "type", q.principal_type, "id", q.principal, "action", "type", "Action",
		"id", q.action, "resource", "type", q.resource_type, "id", q.resource, "context",
		"job", j->id, "job_name", j->spec.name, "trigger", trigger, "slot_ms",
		(json_int_t)slot_ms, "entities", ents);
	char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	policy_ask *p = text ? calloc(1, sizeof *p) : NULL;
	if (p)
		*p = (policy_ask){ .job = j, .cb = cb, .arg = arg };
	if (!p || sdk_call(s->k->caller, "policy", "POST", "/authorize", text, strlen(text), NULL,
			   POLICY_TIMEOUT_MS, on_policy, p) < 0) {
		free(p);
		cb(arg, false, SCHED_POLICY_UNAVAILABLE,
		   "the policy kernel cannot be called: failing closed");
	}
	free(text);
}

static void act_policy(sch_act *a)
{
	a->stage = ACT_POLICY;
	sched_policy_ask(a->s, &a->job, sch_trigger_name(a->run.trigger),
			 a->run.slot_ms == INT64_MIN ? 0 : a->run.slot_ms, act_decided, a);
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
	bool wf = j->spec.target_type == SCH_TARGET_WORKFLOW;
	if ((j->spec.target_type == SCH_TARGET_EXECUTOR || wf) && ref[0]) {
		char path[128];
		snprintf(path, sizeof path, wf ? "/runs/%s/cancel" : "/jobs/%s/cancel", ref);
		const char *h[8];
		sched_owner_headers(j, NULL, h);
		sdk_call(s->k->caller, wf ? "workflow" : "executor", "POST", path, "{}", 2, h,
			 EXEC_SUBMIT_TIMEOUT_MS, on_ignored, NULL);
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
		if ((a->job.spec.target_type == SCH_TARGET_EXECUTOR ||
		     a->job.spec.target_type == SCH_TARGET_WORKFLOW) &&
		    run->target_ref[0]) {
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
	if (s->draining || !s->roles_synced) /* a job's role may be stale: wait */
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
