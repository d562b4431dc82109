#include "kernels/research/inv.h"

#include "kernels/research/redact.h"
#include "kernels/research/rules.h"
#include "kernels/research/store.h"
#include "kernels/research/synth.h"
#include "sdk/clock.h"
#include "sdk/log.h"

#include <event2/event.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SUMMARY_MAX 600 /* bytes of one piece of evidence's summary */

static void advance(rs_inv *inv);

/* ---- the document ------------------------------------------------------ */

/* Replaces each byte that is not part of valid UTF-8 with '?': a summary
 * cut at a byte count may end inside a character, and JSON strings must
 * be UTF-8. */
static void utf8_fix(char *s)
{
	unsigned char *p = (unsigned char *)s;
	while (*p) {
		size_t n = *p < 0x80 ? 1 : (*p >> 5) == 6 ? 2 : (*p >> 4) == 14 ? 3 : (*p >> 3) == 30 ? 4 : 0;
		bool ok = n > 0;
		for (size_t i = 1; ok && i < n; i++)
			ok = (p[i] & 0xC0) == 0x80;
		if (!ok) {
			*p++ = '?';
			continue;
		}
		p += n;
	}
}

json_t *rs_evidence_add(rs_inv *inv, const char *source, const char *kernel, int64_t ts_ms,
			const char *summary, json_t *citation, json_t *signals)
{
	if (json_array_size(inv->evidence) >= RS_EVIDENCE_MAX) {
		json_decref(citation);
		json_decref(signals);
		json_object_set_new(inv->doc, "evidence_truncated", json_true());
		return NULL;
	}
	size_t redacted = 0;
	char *clean = rs_redact(summary ? summary : "", &redacted);
	if (clean && strlen(clean) > SUMMARY_MAX)
		strcpy(clean + SUMMARY_MAX - 4, "...");
	if (clean)
		utf8_fix(clean);
	char id[24];
	snprintf(id, sizeof id, "E%zu", json_array_size(inv->evidence) + 1);
	json_t *ev = json_pack("{s:s, s:s, s:o, s:I, s:s, s:o, s:o}", "id", id, "source", source,
			       "kernel", kernel && *kernel ? json_string(kernel) : json_null(),
			       "ts_ms", (json_int_t)ts_ms, "summary", clean ? clean : "",
			       "citation", citation ? citation : json_object(), "signals",
			       signals ? signals : json_array());
	free(clean);
	if (!ev)
		return NULL;
	inv->rk->redactions += redacted;
	json_object_set_new(inv->doc, "redactions",
			    json_integer(json_integer_value(json_object_get(inv->doc, "redactions")) +
					 (json_int_t)redacted));
	json_array_append_new(inv->evidence, ev);
	return ev;
}

void rs_source_note(rs_inv *inv, const char *source, const char *status, const char *detail)
{
	json_t *s = json_object_get(inv->sources, source);
	if (!s) {
		s = json_pack("{s:s, s:i}", "status", status, "calls", 0);
		json_object_set_new(inv->sources, source, s);
	} else {
		const char *was = json_string_value(json_object_get(s, "status"));
		/* ok and unavailable from two calls of one source: partial. */
		if (was && strcmp(was, status) && strcmp(status, "skipped"))
			json_object_set_new(s, "status",
					    json_string(!strcmp(was, "skipped") ? status : "partial"));
	}
	if (strcmp(status, "skipped"))
		json_object_set_new(s, "calls",
				    json_integer(json_integer_value(json_object_get(s, "calls")) + 1));
	if (detail && *detail && !json_object_get(s, "detail")) {
		char *clean = rs_redact(detail, NULL);
		json_object_set_new(s, "detail", json_string(clean ? clean : ""));
		free(clean);
	}
	if (!strcmp(status, "unavailable"))
		inv->rk->unavailable++;
}

bool rs_inv_take_step(rs_inv *inv, const char *source)
{
	if (inv->steps >= inv->steps_max || rs_inv_call_timeout(inv) == 0) {
		json_t *s = json_object_get(inv->sources, source);
		if (!s)
			json_object_set_new(inv->sources, source,
					    json_pack("{s:s, s:i, s:s}", "status", "budget", "calls", 0,
						      "detail", "the budget ran out before this source"));
		if (!json_is_true(json_object_get(inv->doc, "budget_exhausted"))) {
			json_object_set_new(inv->doc, "budget_exhausted", json_true());
			inv->rk->budget_exhausted++;
		}
		return false;
	}
	inv->steps++;
	json_object_set_new(inv->doc, "steps", json_integer(inv->steps));
	return true;
}

unsigned rs_inv_call_timeout(rs_inv *inv)
{
	int64_t left = inv->deadline_mono - sdk_mono_ms();
	if (left <= 0)
		return 0;
	return left < (int64_t)inv->rk->cfg.call_timeout_ms ? (unsigned)left
							   : inv->rk->cfg.call_timeout_ms;
}

/* ---- the answer ---------------------------------------------------------- */

static void answer_without_model(rs_inv *inv, const char *why, const char *reason)
{
	char *text = rs_fallback_text(why, inv->evidence,
				      json_object_get(inv->doc, "hypotheses"));
	char notice[512];
	snprintf(notice, sizeof notice, "No model wrote this answer: %s.", why);
	json_t *answer = json_pack("{s:s, s:s, s:b, s:s}", "text", text ? text : "", "by", "rules",
				   "model_answered", 0, "notice", notice);
	if (reason)
		json_object_set_new(answer, "reason", json_string(reason));
	json_object_set_new(inv->doc, "answer", answer);
	free(text);
	inv->rk->by_rules++;
}

static void on_model_done(const char *text, size_t len, sdk_model_failure failure,
			  const char *error, void *arg)
{
	rs_inv *inv = arg;
	inv->call = NULL;
	rs_kernel *rk = inv->rk;
	if (failure != SDK_MODEL_OK) {
		char why[300];
		snprintf(why, sizeof why, "the model failed (%s): %s", sdk_model_failure_label(failure),
			 error ? error : "");
		rk->model_failures[failure]++;
		answer_without_model(inv, why, sdk_model_failure_label(failure));
	} else {
		char *copy = strndup(text, len);
		char *clean = copy ? rs_redact(copy, NULL) : NULL;
		json_t *checked = rs_synth_check(clean ? clean : "", inv->evidence);
		free(copy);
		free(clean);
		json_int_t dropped = json_integer_value(json_object_get(checked, "dropped"));
		rk->dropped_claims += (unsigned long long)dropped;
		if (json_integer_value(json_object_get(checked, "kept")) == 0) {
			rk->model_failures[RS_FAIL_UNCITED]++;
			answer_without_model(inv,
					     "the model's answer cited no evidence gathered (every "
					     "claim was dropped)",
					     "uncited");
			json_object_set_new(json_object_get(inv->doc, "answer"), "dropped_claims",
					    json_integer(dropped));
		} else {
			rk->by_model++;
			json_object_set_new(
				inv->doc, "answer",
				json_pack("{s:O, s:s, s:b, s:s?, s:O, s:I, s:o}", "text",
					  json_object_get(checked, "text"), "by", "model",
					  "model_answered", 1, "model", sdk_model_name(rk->model),
					  "claims", json_object_get(checked, "claims"),
					  "dropped_claims", dropped, "notice",
					  dropped ? json_string("claims that cited no gathered evidence "
								"were dropped")
						  : json_null()));
		}
		json_decref(checked);
	}
	rs_inv_call_done(inv);
}

static void on_model_delta(const char *text, size_t len, void *arg)
{
	(void)text, (void)len, (void)arg; /* the whole answer is checked at its end */
}

static void synth_start(rs_inv *inv)
{
	rs_kernel *rk = inv->rk;
	if (!rk->model) {
		answer_without_model(inv, "no model is configured", NULL);
		return;
	}
	if (rs_inv_call_timeout(inv) == 0) {
		rk->model_failures[RS_FAIL_BUDGET]++;
		answer_without_model(inv, "the investigation's time ran out before the model was asked",
				     "budget");
		return;
	}
	json_t *prompt = rs_synth_prompt(json_string_value(json_object_get(inv->doc, "question")),
					 inv->evidence, json_object_get(inv->doc, "hypotheses"));
	/* Streamed: a stream that breaks off is told apart from a whole answer
	 * (sdk_model's truncated_stream), and only the whole one is used. */
	inv->pending++; /* first: the model may answer before sdk_model_chat returns */
	sdk_model_call *call = prompt ? sdk_model_chat(rk->model, prompt, true, on_model_delta,
						       on_model_done, inv)
				      : NULL;
	json_decref(prompt);
	if (!call) {
		inv->pending--;
		rk->model_failures[SDK_MODEL_FAIL_UNREACHABLE]++;
		answer_without_model(inv, "the model call could not start", "unreachable");
		return;
	}
	if (inv->pending)
		inv->call = call; /* else it has ended already */
}

/* ---- saving and waiters --------------------------------------------------- */

struct save_job {
	rs_kernel *rk;
	rs_inv *inv; /* NULL for a save nobody waits for */
	int64_t id;
	json_t *doc;
	int rc;
	sdk_err err;
};

static void save_work(void *arg)
{
	struct save_job *j = arg;
	j->rc = rs_store_put(j->rk->k->db, j->id, j->doc, j->rk->cfg.keep, &j->err);
}

static void reply_waiters(rs_inv *inv)
{
	while (inv->waiters) {
		rs_waiter *w = inv->waiters;
		inv->waiters = w->next;
		inv->rk->n_waiters--;
		sdk_req_on_close(w->req, NULL, NULL);
		event_free(w->timer);
		sdk_reply_json(w->req, 200, json_deep_copy(inv->doc));
		free(w);
	}
}

static void inv_free(rs_inv *inv)
{
	rs_kernel *rk = inv->rk;
	for (rs_inv **p = &rk->running; *p; p = &(*p)->next)
		if (*p == inv) {
			*p = inv->next;
			rk->n_running--;
			break;
		}
	reply_waiters(inv);
	if (inv->call)
		sdk_model_call_cancel(inv->call);
	if (inv->deadline_ev)
		event_free(inv->deadline_ev);
	json_decref(inv->doc);
	sodium_memzero(inv->delegation, sizeof inv->delegation);
	free(inv);
}

static void save_done(void *arg)
{
	struct save_job *j = arg;
	if (j->rc < 0)
		sdk_warn("research: investigation %lld not stored: %s", (long long)j->id, j->err.msg);
	if (j->inv) {
		j->inv->phase = RS_DONE;
		inv_free(j->inv);
	}
	json_decref(j->doc);
	free(j);
}

/* Stores a copy of the document; `inv` (may be NULL) ends once stored. */
static bool save(rs_inv *inv, bool final)
{
	struct save_job *j = calloc(1, sizeof *j);
	if (!j)
		return false;
	*j = (struct save_job){ .rk = inv->rk, .inv = final ? inv : NULL, .id = inv->id,
				.doc = json_deep_copy(inv->doc) };
	if (!j->doc || sdk_pool_submit(inv->rk->pool, save_work, save_done, j) < 0) {
		json_decref(j->doc);
		free(j);
		return false;
	}
	return true;
}

static void save_start(rs_inv *inv)
{
	json_object_set_new(inv->doc, "state", json_string("done"));
	json_object_set_new(inv->doc, "finished_ms", json_integer(sdk_wall_ms()));
	json_object_set_new(inv->doc, "elapsed_ms",
			    json_integer(sdk_mono_ms() - inv->started_mono));
	if (save(inv, true)) {
		inv->saving = true;
		inv->pending++;
		return;
	}
	sdk_warn("research: investigation %lld not stored: the pool is full", (long long)inv->id);
}

static void on_waiter_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	rs_waiter *w = arg;
	rs_inv *inv = w->inv;
	for (rs_waiter **p = &inv->waiters; *p; p = &(*p)->next)
		if (*p == w) {
			*p = w->next;
			break;
		}
	inv->rk->n_waiters--;
	sdk_req_on_close(w->req, NULL, NULL);
	event_free(w->timer);
	sdk_reply_json(w->req, 200, json_deep_copy(inv->doc));
	free(w);
}

/* The client went: the request may only be answered now, which frees it. */
static void on_waiter_close(sdk_req *req, void *arg)
{
	(void)req;
	on_waiter_timer(-1, 0, arg);
}

void rs_inv_wait(rs_inv *inv, sdk_req *req, unsigned wait_ms)
{
	rs_waiter *w = calloc(1, sizeof *w);
	struct event *t = w ? evtimer_new(inv->rk->k->base, on_waiter_timer, w) : NULL;
	if (!t) {
		free(w);
		sdk_reply_json(req, 200, json_deep_copy(inv->doc));
		return;
	}
	*w = (rs_waiter){ .req = req, .timer = t, .inv = inv, .next = inv->waiters };
	inv->waiters = w;
	inv->rk->n_waiters++;
	struct timeval tv = { wait_ms / 1000, (wait_ms % 1000) * 1000 };
	evtimer_add(t, &tv);
	sdk_req_on_close(req, on_waiter_close, w);
}

/* ---- phases ----------------------------------------------------------------- */

static void rank(rs_inv *inv)
{
	const char *asked = json_string_value(json_object_get(inv->doc, "kernel"));
	json_object_set_new(inv->doc, "hypotheses", rs_rank(inv->evidence, asked));
}

static const struct {
	rs_phase phase;
	const char *name;
	void (*start)(rs_inv *inv);
	void (*after)(rs_inv *inv); /* once its calls are back */
} phases[] = {
	{ RS_GATHER, "gathering", rs_gather_start, rank },
	{ RS_PROVE, "proving", rs_prove_start, NULL },
	{ RS_SYNTH, "synthesizing", synth_start, NULL },
	{ RS_SAVE, "saving", save_start, NULL },
};

/* Runs phases from inv->phase on until one has calls out or all are done. */
static void advance(rs_inv *inv)
{
	while (inv->phase < RS_DONE) {
		if (inv->rk->closing)
			return;
		size_t i = (size_t)inv->phase;
		json_object_set_new(inv->doc, "phase", json_string(phases[i].name));
		inv->issuing = true;
		phases[i].start(inv);
		inv->issuing = false;
		if (inv->pending)
			return;
		if (phases[i].after)
			phases[i].after(inv);
		inv->phase++;
	}
	/* Done without a save in flight (the pool refused it): end here. */
	if (!inv->saving)
		inv_free(inv);
}

void rs_inv_call_done(rs_inv *inv)
{
	if (inv->pending && --inv->pending)
		return;
	/* A call that failed inside the phase's start: advance() goes on. */
	if (inv->issuing || inv->saving)
		return; /* save_done ends it */
	size_t i = (size_t)inv->phase;
	if (phases[i].after)
		phases[i].after(inv);
	inv->phase++;
	advance(inv);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	rs_inv *inv = arg;
	if (!json_is_true(json_object_get(inv->doc, "budget_exhausted"))) {
		json_object_set_new(inv->doc, "budget_exhausted", json_true());
		inv->rk->budget_exhausted++;
	}
	/* Calls to sources end by their own timeouts, which fit the budget;
	 * the model is the one to stop now. */
	if (inv->call) {
		sdk_model_call_cancel(inv->call);
		inv->call = NULL;
		inv->rk->model_failures[RS_FAIL_BUDGET]++;
		answer_without_model(inv, "the investigation's time ran out before the model answered",
				     "budget");
		rs_inv_call_done(inv);
	}
}

rs_inv *rs_inv_find(rs_kernel *rk, int64_t id)
{
	for (rs_inv *inv = rk->running; inv; inv = inv->next)
		if (inv->id == id)
			return inv;
	return NULL;
}

rs_inv *rs_inv_start(rs_kernel *rk, json_t *doc, const rs_question *q, unsigned steps_max,
		     unsigned time_ms)
{
	rs_inv *inv = calloc(1, sizeof *inv);
	if (!inv) {
		json_decref(doc);
		return NULL;
	}
	inv->rk = rk;
	inv->id = ++rk->last_id;
	inv->q = *q;
	inv->steps_max = steps_max;
	inv->started_mono = sdk_mono_ms();
	inv->deadline_mono = inv->started_mono + time_ms;
	inv->doc = doc;
	json_object_set_new(doc, "id", json_integer(inv->id));
	json_object_set_new(doc, "state", json_string("running"));
	json_object_set_new(doc, "steps", json_integer(0));
	json_object_set_new(doc, "budget_exhausted", json_false());
	json_object_set_new(doc, "redactions", json_integer(0));
	json_object_set_new(doc, "sources", json_object());
	json_object_set_new(doc, "evidence", json_array());
	json_object_set_new(doc, "hypotheses", json_array());
	json_object_set_new(doc, "answer", json_null());
	inv->evidence = json_object_get(doc, "evidence");
	inv->sources = json_object_get(doc, "sources");
	inv->deadline_ev = evtimer_new(rk->k->base, on_deadline, inv);
	if (!inv->deadline_ev) {
		json_decref(doc);
		free(inv);
		return NULL;
	}
	struct timeval tv = { time_ms / 1000, (time_ms % 1000) * 1000 };
	evtimer_add(inv->deadline_ev, &tv);
	inv->next = rk->running;
	rk->running = inv;
	rk->n_running++;
	rk->started++;
	save(inv, false); /* listed as running; best effort */
	/* The first phase runs on the next loop turn: the POST is answered first. */
	return inv;
}

void rs_inv_run(rs_inv *inv) { advance(inv); }

void rs_inv_reply_waiters_all(rs_kernel *rk)
{
	for (rs_inv *inv = rk->running; inv; inv = inv->next)
		reply_waiters(inv);
}

void rs_inv_close_all(rs_kernel *rk)
{
	rk->closing = true;
	while (rk->running) {
		rs_inv *inv = rk->running;
		json_object_set_new(inv->doc, "state", json_string("interrupted"));
		if (inv->call) {
			sdk_model_call_cancel(inv->call);
			inv->call = NULL;
		}
		inv_free(inv);
	}
}
