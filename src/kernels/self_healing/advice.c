/* POST /advice and POST /outcomes: the main process's healer asks, before
 * it heals kernel K, which step to take (the ladder's, within the budget),
 * and reports how it went (docs/self_healing.md "The ladder"). At the
 * ladder's bottom, where more than one playbook fits the issue, the
 * learning kernel is asked for the order; the outcome goes back to it as
 * the reward. The stop step pages a person through the alerts kernel. */
#include "kernels/self_healing/state.h"
#include "kernels/self_healing/store.h"
#include "kernels/self_healing/worker.h"
#include "sdk/clock.h"
#include "sdk/json_keys.h"
#include "sdk/log.h"
#include "sdk/rfc3339.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARMS_MAX 8
#define LEARN_TIMEOUT_MIN_MS 20
#define PAGE_TIMEOUT_MS 5000

static const char *str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* ---- paging: Alertmanager's POST /api/v2/alerts on the alerts kernel */

static void on_paged(int status, const char *body, size_t len, double ms, const char *error,
		     void *arg)
{
	(void)body, (void)len, (void)ms;
	sh_state *s = arg;
	if (status >= 200 && status < 300)
		return;
	s->page_failures++;
	sdk_warn("self_healing: the page was not taken by the alerts kernel (%d %s)", status,
		 error ? error : "");
}

static void page(sh_state *s, const char *kernel, int64_t incident, const char *why,
		 int64_t now_ms)
{
	char starts[40], inc[32], summary[256];
	sdk_rfc3339_format_ms(now_ms, SDK_RFC3339_MILLIS, starts, sizeof starts);
	snprintf(inc, sizeof inc, "%lld", (long long)incident);
	snprintf(summary, sizeof summary, "%s: %s; a person decides now (incident %lld)", kernel,
		 why, (long long)incident);
	json_t *alerts = json_pack("[{s:{s:s, s:s, s:s, s:s}, s:{s:s, s:s}, s:s}]", "labels",
				   "alertname", "GraceSelfHealingPage", "kernel", kernel, "severity",
				   "critical", "incident", inc, "annotations", "summary", summary,
				   "runbook", "docs/self_healing.md", "startsAt", starts);
	char *text = json_dumps(alerts, JSON_COMPACT);
	json_decref(alerts);
	s->pages++;
	sdk_warn("self_healing: paging: %s", summary);
	if (!text || sdk_call(s->k->caller, "alerts", "POST", "/api/v2/alerts", text, strlen(text),
			      NULL, PAGE_TIMEOUT_MS, on_paged, s) < 0)
		s->page_failures++;
	free(text);
}

/* ---- the stop a person approves: a governance change request */

struct stop_request {
	sh_state *s;
	char kernel[64];
	int64_t incident;
	int step;
	struct stop_request *next; /* s->stop_inflight: freed at close if unanswered */
};

static void stop_request_unlink(struct stop_request *r)
{
	for (struct stop_request **p = &r->s->stop_inflight; *p; p = &(*p)->next)
		if (*p == r) {
			*p = r->next;
			return;
		}
}

void sh_stop_requests_free(sh_state *s)
{
	while (s->stop_inflight) {
		struct stop_request *r = s->stop_inflight;
		s->stop_inflight = r->next;
		free(r);
	}
}

static void on_stop_requested(int status, const char *body, size_t len, double ms,
			      const char *error, void *arg)
{
	(void)ms;
	struct stop_request *r = arg;
	sh_state *s = r->s;
	stop_request_unlink(r);
	json_t *j = status == 201 ? json_loadb(body, len, 0, NULL) : NULL;
	json_int_t id = json_integer_value(json_object_get(j, "id"));
	if (id > 0) {
		s->stop_requests++;
		sdk_info("self_healing: change request %lld opened to stop %s (incident %lld)",
			 (long long)id, r->kernel, (long long)r->incident);
		json_t *detail = json_pack("{s:I}", "governance_request", id);
		sh_batch *b = sh_batch_new();
		if (!b || sh_batch_action(b, r->incident, r->kernel, sdk_wall_ms(), r->step, SH_STOP,
					  "change_request", detail) < 0)
			sdk_warn("self_healing: cannot record change request %lld: out of memory",
				 (long long)id);
		sh_write(s, b); /* a failure is counted and logged */
		json_decref(detail);
	} else {
		s->stop_request_failures++;
		sdk_warn("self_healing: no change request to stop %s (incident %lld): %s %.*s",
			 r->kernel, (long long)r->incident, status ? "governance answered" : error,
			 status ? (int)(len < 160 ? len : 160) : 0, status && body ? body : "");
	}
	json_decref(j);
	free(r);
}

/* Opens the change request for kernel.stop (governance runs it once a
 * person approves); the page says so. Without a governance kernel, or
 * when it refuses, the page alone asks the person. */
static void request_stop(sh_state *s, const char *kernel, int64_t incident, int step)
{
	if (!grace_config_kernel(s->k->cfg, "governance"))
		return; /* the page alone asks the person */
	struct stop_request *r = calloc(1, sizeof *r);
	char reason[200];
	snprintf(reason, sizeof reason,
		 "self_healing: the escalation ladder reached stop for %s (incident %lld)", kernel,
		 (long long)incident);
	json_t *b = json_pack("{s:s, s:{s:s}, s:s}", "action", "kernel.stop", "params", "kernel",
			      kernel, "reason", reason);
	char *text = b ? json_dumps(b, JSON_COMPACT) : NULL;
	json_decref(b);
	if (r) {
		*r = (struct stop_request){ .s = s, .incident = incident, .step = step };
		snprintf(r->kernel, sizeof r->kernel, "%s", kernel);
	}
	if (!r || !text ||
	    sdk_call(s->k->caller, "governance", "POST", "/requests", text, strlen(text), NULL,
		     PAGE_TIMEOUT_MS, on_stop_requested, r) < 0) {
		free(r);
		s->stop_request_failures++;
	} else {
		r->next = s->stop_inflight;
		s->stop_inflight = r;
	}
	free(text);
}

/* ---- advice */

struct ask {
	sdk_req *req;
	sh_state *s;
	json_t *answer; /* the reply so far, owned */
	int64_t action; /* the stored action, to add the learning decision to */
	char arms[ARMS_MAX][32];
	size_t n;
};

static void finish(struct ask *a, json_t *learning)
{
	if (learning)
		json_object_set(a->answer, "learning", learning);
	sdk_reply_json(a->req, 200, a->answer);
	free(a);
}

/* The learning kernel's order: used only when it is exactly the arms. */
static void on_learned(int status, const char *body, size_t len, double ms, const char *error,
		       void *arg)
{
	struct ask *a = arg;
	sh_state *s = a->s;
	json_t *ans = status == 200 && body ? json_loadb(body, len, 0, NULL) : NULL;
	json_t *ord = json_object_get(ans, "order"), *id = json_object_get(ans, "decision_id");
	bool sane = json_is_array(ord) && json_array_size(ord) == a->n && json_is_integer(id);
	const char *first = sane ? json_string_value(json_array_get(ord, 0)) : NULL;
	size_t i = 0;
	while (first && i < a->n && strcmp(first, a->arms[i]))
		i++;
	json_t *learning;
	if (!first || i == a->n) {
		s->learning_fallbacks++;
		char why[160];
		snprintf(why, sizeof why, "%s", status == 0 ? (error ? error : "no answer")
						  : status != 200 ? "refused"
								  : "nonsense");
		learning = json_pack("{s:b, s:s}", "asked", 1, "fallback", why);
	} else {
		s->learning_answers++;
		json_object_set_new(a->answer, "playbook", json_string(a->arms[i]));
		learning = json_pack("{s:b, s:O, s:O, s:O, s:O, s:f}", "asked", 1, "decision_id", id,
				     "order", ord, "probability", json_object_get(ans, "probability"),
				     "policy", json_object_get(ans, "policy"), "latency_ms", ms);
	}
	/* The decision id is what /outcomes rewards: kept with the action
	 * (written after the action itself: the worker's queue is in order). */
	if (a->action > 0 && json_is_integer(json_object_get(learning, "decision_id"))) {
		sh_batch *b = sh_batch_new();
		if (b)
			sh_batch_learning(b, a->action, str(a->answer, "playbook"), learning);
		sh_write(s, b);
	}
	json_decref(ans);
	finish(a, learning);
	json_decref(learning);
}

/* The learning kernel's context features from what this kernel knows. */
static const char *exit_kind(const char *last)
{
	if (!last || !last[0])
		return "none";
	if (strstr(last, "watchdog"))
		return "watchdog";
	if (!strncmp(last, "cannot", 6))
		return "start_failed";
	const char *e = strstr(last, "exit ");
	if (e)
		return atoi(e + 5) == 0 ? "clean" : "error";
	return strstr(last, "signal ") ? "signal" : "other";
}

static bool ask_learning(struct ask *a, const char *kernel, const char *issue,
			 const char *last_exit, int64_t now)
{
	sh_state *s = a->s;
	if (!grace_config_kernel(s->k->cfg, "learning"))
		return false;
	json_t *arms = json_array();
	for (size_t i = 0; i < a->n; i++)
		json_array_append_new(arms, json_string(a->arms[i]));
	json_t *req = json_pack("{s:s, s:s, s:{s:i, s:s, s:n}, s:o}", "issue", issue, "kernel",
				kernel, "features", "restarts_last_hour",
				(int)sh_corr_crashes_in_window(&s->corr, kernel, now), "last_exit",
				exit_kind(last_exit), "since_last_heal_s", "arms",
				arms);
	char *body = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	unsigned t = s->k->cfg->learning.decide_timeout_ms;
	unsigned cap = s->k->cfg->self_healing.advice_timeout_ms / 2;
	if (t > cap)
		t = cap;
	if (t < LEARN_TIMEOUT_MIN_MS)
		t = LEARN_TIMEOUT_MIN_MS;
	s->learning_asks++;
	bool ok = body && sdk_call(s->k->caller, "learning", "POST", "/decide", body, strlen(body),
				   NULL, t, on_learned, a) == 0;
	free(body);
	if (!ok)
		s->learning_fallbacks++;
	return ok;
}

/* 0, or SDK_EINVAL with what is wrong with the advice asked in `err`. */
static int check_advice(json_t *b, const grace_config *cfg, sdk_err *err)
{
	const char *kernel = str(b, "kernel"), *issue = str(b, "issue");
	json_t *pbs = json_object_get(b, "playbooks"), *hi = json_object_get(b, "healer_incident");
	if (!kernel || !grace_config_kernel(cfg, kernel))
		return sdk_fail(err, SDK_EINVAL, "kernel: the name of a configured kernel");
	if (!issue || !issue[0] || strlen(issue) > 64)
		return sdk_fail(err, SDK_EINVAL, "issue: a string of 1 to 64 bytes");
	if (!json_is_array(pbs) || !json_array_size(pbs) || json_array_size(pbs) > ARMS_MAX)
		return sdk_fail(err, SDK_EINVAL,
				"playbooks: an array of 1 to 8 playbook names (the healer's order)");
	size_t i;
	json_t *p;
	json_array_foreach(pbs, i, p)
		if (!json_is_string(p) || !json_string_length(p) || json_string_length(p) >= 32)
			return sdk_fail(err, SDK_EINVAL, "playbooks: names of 1 to 31 bytes");
	if (hi && !json_is_null(hi) && !json_is_integer(hi))
		return sdk_fail(err, SDK_EINVAL, "healer_incident: an integer");
	return 0;
}

/* The advice's writes are made: its answer, with its action's id (then,
 * at the ladder's bottom, the learning kernel's order). */
static void advice_written(sh_job *j)
{
	sh_state *s = j->s;
	if (sh_job_reply_failed(j))
		return;
	json_t *answer = j->out, *pbs = json_object_get(j->in, "playbooks");
	int64_t action = sh_batch_action_id(j->batch);
	j->out = NULL;
	json_object_set_new(answer, "advice_id", json_integer(action));
	if (j->flag && json_array_size(pbs) > 1) {
		struct ask *a = calloc(1, sizeof *a);
		if (a) {
			*a = (struct ask){ .req = j->req, .s = s, .answer = answer, .action = action };
			size_t i;
			json_t *p;
			json_array_foreach(pbs, i, p)
				if (a->n < ARMS_MAX)
					snprintf(a->arms[a->n++], sizeof a->arms[0], "%s",
						 json_string_value(p));
			if (ask_learning(a, j->kernel, str(j->in, "issue"), str(j->in, "last_exit"),
					 sdk_wall_ms()))
				return;
			free(a);
		}
	}
	sdk_reply_json(j->req, 200, answer);
}

/* The ladder decides now, in memory, in the order the asks come; its
 * writes (the event, the ladder's place, the budget, the action) go to
 * the store's worker and the answer waits for them: a slow disk makes
 * the answer late (the healer, past its advice_timeout_ms, heals on its
 * own) and never the loop. */
void sh_on_advice(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	sh_state *s = k->state;
	static const char *const allowed[] = { "kernel", "issue", "playbooks", "healer_incident",
					       NULL };
	json_t *b = sdk_req_json(req, true);
	if (!b || sdk_req_fields_only(req, b, allowed) < 0)
		return;
	sdk_err why;
	if (check_advice(b, k->cfg, &why) < 0) {
		sdk_reply_error(req, 400, "invalid", "%s", why.msg);
		return;
	}
	/* Before anything changes in memory: a full queue changes nothing. */
	sh_job *j = sh_worker_room(s, true) ? sh_job_new(s, true, advice_written) : NULL;
	if (!j) {
		sh_reply_busy(req);
		return;
	}
	const char *kernel = str(b, "kernel"), *issue = str(b, "issue");
	json_t *pbs = json_object_get(b, "playbooks");
	int64_t now = sdk_wall_ms();
	sdk_err e;
	/* A heal asked for means the kernel is failing: that is an event of its
	 * incident (the bus may bring the guardian's a moment later). */
	int64_t incident = 0;
	json_t *d = json_pack("{s:s, s:O}", "issue", issue, "healer_incident",
			      json_object_get(b, "healer_incident") ?: json_null());
	int rc = sh_apply(s, j->batch, kernel, SH_EV_HEAL_ASKED, "advice", d, NULL, now, &incident,
			  &e);
	json_decref(d);
	sh_kfacts *kf = NULL;
	sh_kstate *ks = rc == 0 ? sh_kstate_of(s, kernel, &kf) : NULL;
	if (rc == 0 && !ks)
		rc = sdk_fail(&e, SDK_EBUSY, "the ladder follows at most %d kernels",
			      SH_LADDER_KERNELS_MAX);
	if (rc < 0) {
		sh_write(s, j->batch); /* what the correlation did is still written */
		j->batch = NULL;
		sh_job_free(j);
		sdk_reply_status(req, rc, &e);
		return;
	}
	sh_advice adv;
	sh_ladder_advise(&s->ladder, ks, &s->budget, k->cfg->self_healing.stable_ms, now, &adv);
	/* A token taken, or a refusal counted. */
	bool budget_changed = adv.verdict == SH_ACT || adv.verdict == SH_HOLD_BUDGET;
	s->advice[adv.verdict]++;
	const char *decision = "heal", *reason = NULL, *playbook = adv.playbook;
	bool is_stop = adv.verdict == SH_ACT && !strcmp(adv.playbook, SH_STOP);
	if (adv.verdict != SH_ACT) {
		decision = "hold";
		reason = adv.verdict == SH_HOLD_COOLDOWN ? "cooldown"
			 : adv.verdict == SH_HOLD_BUDGET ? "budget"
							 : "stopped";
	} else if (is_stop && k->cfg->self_healing.approve_destructive) {
		/* Fails closed: no stop without a person; the person is paged. */
		decision = "hold";
		reason = "approval_required";
		ks->stopped = true;
		page(s, kernel, incident,
		     grace_config_kernel(k->cfg, "governance")
			     ? "the ladder reached stop, which needs a person's approval (a "
			       "governance change request is opened for it)"
			     : "the ladder reached stop, which needs a person's approval",
		     now);
		request_stop(s, kernel, incident, adv.step);
	} else if (is_stop) {
		decision = "stop";
		page(s, kernel, incident, "the ladder reached its last step: the kernel is stopped",
		     now);
	} else if (adv.step == 0) {
		/* The bottom: the healer's own choice for the issue. */
		playbook = json_string_value(json_array_get(pbs, 0));
	}
	sh_batch_ladder(j->batch, ks);
	if (budget_changed)
		sh_batch_budget(j->batch, &s->budget);
	j->out = json_pack("{s:s, s:s, s:i, s:I, s:s, s:o, s:I, s:b, s:f}", "decision", decision,
			   "playbook", playbook, "step", adv.step, "incident_id",
			   (json_int_t)incident, "kernel", kernel, "reason",
			   reason ? json_string(reason) : json_null(), "retry_after_ms",
			   (json_int_t)(adv.verdict == SH_ACT ? 0 : adv.retry_after_ms), "reset",
			   adv.reset, "budget_tokens", sh_budget_tokens(&s->budget, now, NULL));
	json_t *detail = json_pack("{s:s, s:O}", "issue", issue, "playbooks", pbs);
	sh_batch_action(j->batch, incident, kernel, now, adv.step, playbook,
			!strcmp(decision, "hold") ? (reason ? reason : "hold")
			: is_stop		  ? "stop"
						  : "act",
			detail);
	json_decref(detail);
	/* What the answer needs once written; the worker never touches it. */
	j->in = json_pack("{s:O, s:s, s:s}", "playbooks", pbs, "issue", issue, "last_exit",
			  kf ? kf->last_exit : "");
	j->req = req;
	j->flag = !strcmp(decision, "heal") && adv.step == 0;
	snprintf(j->kernel, sizeof j->kernel, "%s", kernel);
	if (!j->out || !j->in) {
		sh_write(s, j->batch); /* the decision stands: it is written */
		j->batch = NULL;
		sh_job_free(j);
		sdk_reply_error(req, 503, "busy", "out of memory");
		return;
	}
	if (sh_job_submit(j, true) < 0) /* room was checked: memory is short */
		sdk_reply_error(req, 503, "busy", "out of memory");
}

/* ---- outcomes */

static void on_rewarded(int status, const char *body, size_t len, double ms, const char *error,
			void *arg)
{
	(void)body, (void)len, (void)ms, (void)arg;
	if (status < 200 || status >= 300)
		sdk_debug("self_healing: the learning kernel did not take a reward (%d %s)", status,
			  error ? error : "");
}

/* The action's learning decision, if it had one: the reward goes back. */
static void reward(sh_state *s, int64_t decision, const char *arm, const char *outcome,
		   bool verified, json_t *body)
{
	if (decision <= 0 || !strcmp(outcome, "interrupted"))
		return;
	json_t *msg = json_pack("{s:I, s:s, s:i, s:{s:s, s:O, s:O, s:O}}", "decision_id",
				(json_int_t)decision, "arm", arm, "reward", verified ? 1 : 0,
				"outcome", "outcome", outcome, "duration_ms",
				json_object_get(body, "duration_ms") ?: json_null(), "incident_id",
				json_object_get(body, "healer_incident") ?: json_null(),
				"issue_type", json_object_get(body, "issue") ?: json_null());
	char *text = json_dumps(msg, JSON_COMPACT);
	json_decref(msg);
	if (text)
		sdk_call(s->k->caller, "learning", "POST", "/reward", text, strlen(text), NULL, 5000,
			 on_rewarded, NULL);
	free(text);
}

/* On the worker: the outcome recorded, then what the loop decides from
 * the store (whether the kernel's latest action has now ended; the
 * learning decision to reward) read in the same turn, after every write
 * asked before it. */
static int outcome_work(sh_job *j, sqlite3 *db, sdk_err *err)
{
	int rc = j->id > 0 ? 0 : sh_store_last_action(db, j->kernel, &j->id, err);
	if (rc == 0)
		rc = sh_store_outcome(db, j->id, j->text, j->flag, j->id2, j->n, err);
	if (rc < 0)
		return rc;
	int64_t latest = 0;
	j->flag2 = sh_store_last_action(db, j->kernel, &latest, NULL) == SDK_ENOTFOUND;
	if (sh_store_action_decision(db, j->id, &j->decision, j->arm, sizeof j->arm, err) < 0)
		j->decision = 0; /* no reward: the outcome itself is stored */
	return 0;
}

static void outcome_written(sh_job *j)
{
	sh_state *s = j->s;
	if (sh_job_reply_failed(j))
		return;
	bool verified = j->flag;
	s->outcomes++;
	s->verified += verified;
	sh_kstate *ks = sh_kstate_of(s, j->kernel, NULL);
	/* A hold did nothing: it neither ends an action nor restarts a
	 * cooldown. An action advised since this outcome came in (ks->actions
	 * moved) is the kernel's latest now, and it has not ended. */
	if (ks && strcmp(j->text, "held") && j->flag2 && ks->actions == (unsigned)j->decision_gen) {
		sh_ladder_done(ks, sdk_wall_ms()); /* the kernel's latest action has ended */
		sh_batch *b = sh_worker_room(s, false) ? sh_batch_new() : NULL;
		if (b)
			sh_batch_ladder(b, ks);
		sh_write(s, b);
	}
	reward(s, j->decision, j->arm, j->text, verified, j->in);
	sdk_reply_json(j->req, 200,
		       json_pack("{s:I, s:s, s:b}", "advice_id", (json_int_t)j->id, "outcome",
				 j->text, "verified", verified));
}

void sh_on_outcomes(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	sh_state *s = k->state;
	static const char *const allowed[] = { "advice_id", "kernel", "outcome", "verified",
					       "healer_incident", "playbook", "duration_ms", "issue",
					       NULL };
	json_t *b = sdk_req_json(req, true);
	if (!b || sdk_req_fields_only(req, b, allowed) < 0)
		return;
	json_t *id = json_object_get(b, "advice_id"), *ver = json_object_get(b, "verified");
	json_t *hi = json_object_get(b, "healer_incident");
	const char *kernel = str(b, "kernel"), *outcome = str(b, "outcome");
	if (!kernel || !grace_config_kernel(k->cfg, kernel) || strlen(kernel) >= SH_NAME_MAX ||
	    !outcome || !outcome[0] || strlen(outcome) > 32 || (id && !json_is_integer(id)) ||
	    (ver && !json_is_boolean(ver)) || (hi && !json_is_null(hi) && !json_is_integer(hi))) {
		sdk_reply_error(req, 400, "invalid",
				"kernel (a configured kernel), outcome (1 to 32 bytes), and optionally "
				"advice_id (an integer), verified (a boolean), healer_incident (an "
				"integer)");
		return;
	}
	sh_job *j = sh_job_new(s, false, outcome_written);
	if (!j || !(j->in = json_deep_copy(b))) {
		if (j)
			sh_job_free(j);
		sh_reply_busy(req);
		return;
	}
	j->req = req;
	j->work = outcome_work;
	j->id = id ? json_integer_value(id) : 0;
	j->id2 = json_is_integer(hi) ? json_integer_value(hi) : 0;
	j->n = sdk_wall_ms();
	/* Verified: the healer calls a run healed only when /health answered
	 * 200 after it (docs/healer.md). */
	j->flag = ver ? json_is_true(ver) : !strcmp(outcome, "healed");
	snprintf(j->kernel, sizeof j->kernel, "%s", kernel);
	snprintf(j->text, sizeof j->text, "%s", outcome);
	sh_kstate *ks = sh_kstate_of(s, kernel, NULL);
	j->decision_gen = ks ? ks->actions : 0;
	if (sh_job_submit(j, true) < 0)
		sh_reply_busy(req);
}
