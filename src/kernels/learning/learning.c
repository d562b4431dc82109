/* The learning kernel (8133): a contextual bandit over the healer's
 * playbooks. A caller asks for the order of the playbooks that fit an
 * issue (POST /decide), the decision is logged with the probability of the
 * arm it put first, and the caller reports how that arm did (POST
 * /reward); the reward turns final when no relapse follows within the
 * window. Offline evaluation (POST /evaluate) estimates a candidate
 * policy's value on the log by IPS and SNIPS; the policy is versioned and
 * can be switched and rolled back (POST /policy). docs/learning.md. */
#include "kernels/learning/bandit.h"
#include "kernels/learning/context.h"
#include "kernels/learning/estimate.h"
#include "kernels/learning/store.h"
#include "kernels/registry.h"
#include "sdk/clock.h"
#include "sdk/db.h"
#include "sdk/json_keys.h"
#include "sdk/log.h"
#include "sdk/pool.h"

#include <errno.h>
#include <limits.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define FINALIZE_EVERY_MS 1000
#define OUTCOME_MAX_BYTES 4096
#define LIST_MAX 1000
#define EVAL_QUEUE_MAX 4 /* evaluations waiting for the worker; past it 503 */

struct lrn {
	sdk_kernel *k;
	lrn_rng rng;
	lrn_policy_row initial;
	struct event *timer;
	sdk_pool *pool; /* one worker: evaluations read the log off the loop */
	unsigned long long decisions[LRN_POLICY_COUNT], rewards, finals, relapses, evaluations,
		switches, incidents;
};

static const grace_learning *conf(sdk_kernel *k) { return &k->cfg->learning; }

/* A policy's exploration when none is given: epsilon-greedy's epsilon,
 * Thompson's floor. */
static double default_explore(sdk_kernel *k, enum lrn_policy p)
{
	return p == LRN_EPSILON_GREEDY ? conf(k)->epsilon_percent / 100.0
	       : p == LRN_THOMPSON     ? conf(k)->explore_floor_percent / 100.0
				       : 0.0;
}

/* Finalizes what the window has passed; logs (not answers) a failure: the
 * next request or tick tries again. */
static void finalize(struct lrn *l, int64_t now)
{
	unsigned n = 0;
	sdk_err e;
	if (lrn_store_finalize(l->k->db, now, conf(l->k)->relapse_window_ms, &n, &e) < 0)
		sdk_warn("learning: cannot finalize rewards: %s", e.msg);
	l->finals += n;
}

/* A new incident of `kernel`: earlier heals of it relapsed. */
static int relapse(struct lrn *l, const char *kernel, int64_t now, sdk_err *e)
{
	unsigned n = 0;
	finalize(l, now); /* a reward whose window had passed is not a relapse */
	int rc = lrn_store_relapse(l->k->db, kernel, now, &n, e);
	l->relapses += n;
	l->finals += n;
	return rc;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct lrn *l = arg;
	finalize(l, sdk_wall_ms());
}

static void on_decide(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	struct lrn *l = k->state;
	static const char *const allowed[] = { "issue", "kernel", "features", "arms", NULL };
	json_t *body = sdk_req_json(req, true);
	if (!body || sdk_req_fields_only(req, body, allowed) < 0)
		return;
	lrn_context c;
	sdk_err why;
	if (lrn_context_parse(body, &c, &why) < 0) {
		sdk_reply_error(req, 400, "invalid", "%s", why.msg);
		return;
	}
	int64_t now = sdk_wall_ms();
	sdk_err e;
	lrn_policy_row pol;
	lrn_arm arms[LRN_ARMS_MAX];
	size_t order[LRN_ARMS_MAX];
	int rc = relapse(l, c.kernel, now, &e);
	if (rc == 0)
		rc = lrn_store_policy(k->db, &l->initial, now, &pol, &e);
	if (rc == 0)
		rc = lrn_store_posteriors(k->db, &c, arms, &e);
	if (rc < 0) {
		lrn_context_clear(&c);
		sdk_reply_status(req, rc, &e);
		return;
	}
	double p = lrn_order(pol.policy, arms, c.n_arms, pol.epsilon, &l->rng, order);
	lrn_decision d = { .c = &c, .order = order, .probability = p, .policy = pol, .at_ms = now };
	int64_t id;
	rc = lrn_store_decision(k->db, &d, conf(k)->decisions_max, &id, &e);
	if (rc < 0) {
		lrn_context_clear(&c);
		sdk_reply_status(req, rc, &e);
		return;
	}
	l->decisions[pol.policy]++;
	json_t *ord = json_array(), *post = json_array();
	for (size_t i = 0; i < c.n_arms; i++) {
		json_array_append_new(ord, json_string(c.arms[order[i]]));
		json_array_append_new(post, json_pack("{s:s, s:f, s:f}", "arm", c.arms[i], "alpha",
						      arms[i].alpha, "beta", arms[i].beta));
	}
	sdk_reply_json(req, 200,
		       json_pack("{s:I, s:o, s:s, s:f, s:s, s:I, s:s, s:O, s:o}", "decision_id",
				 (json_int_t)id, "order", ord, "chosen", c.arms[order[0]],
				 "probability", p, "policy", lrn_policy_name(pol.policy), "version",
				 (json_int_t)pol.version, "bucket", c.bucket, "features", c.features,
				 "posteriors", post));
	lrn_context_clear(&c);
}

/* A reward: 0 or 1 (true or false), or a number in [0, 1]. */
static int read_reward(json_t *v, double *out)
{
	if (json_is_boolean(v))
		*out = json_is_true(v) ? 1.0 : 0.0;
	else if (json_is_number(v))
		*out = json_number_value(v);
	else
		return -1;
	return *out >= 0.0 && *out <= 1.0 ? 0 : -1;
}

static void on_reward(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	struct lrn *l = k->state;
	static const char *const allowed[] = { "decision_id", "arm", "reward", "outcome", NULL };
	json_t *body = sdk_req_json(req, true);
	if (!body || sdk_req_fields_only(req, body, allowed) < 0)
		return;
	json_t *id = json_object_get(body, "decision_id"), *outcome = json_object_get(body, "outcome");
	const char *arm = json_string_value(json_object_get(body, "arm"));
	double r;
	if (!json_is_integer(id) || json_integer_value(id) <= 0) {
		sdk_reply_error(req, 400, "invalid", "decision_id: a positive integer");
		return;
	}
	if (!lrn_name_ok(arm)) {
		sdk_reply_error(req, 400, "invalid", "arm: the playbook that ran");
		return;
	}
	if (read_reward(json_object_get(body, "reward"), &r) < 0) {
		sdk_reply_error(req, 400, "invalid", "reward: 0 or 1, true or false, or a number in "
						     "[0, 1]");
		return;
	}
	if (outcome && !json_is_object(outcome)) {
		sdk_reply_error(req, 400, "invalid", "outcome: an object (what happened)");
		return;
	}
	char *dumped = outcome ? json_dumps(outcome, JSON_COMPACT) : NULL;
	size_t olen = dumped ? strlen(dumped) : 0;
	free(dumped);
	if (olen > OUTCOME_MAX_BYTES) {
		sdk_reply_error(req, 413, "too_large", "outcome: at most %d bytes of JSON",
				OUTCOME_MAX_BYTES);
		return;
	}
	/* Healed, but not within the bound: it did not heal in time. */
	json_t *dur = json_object_get(outcome, "duration_ms");
	bool late = json_is_number(dur) && json_number_value(dur) > conf(k)->heal_bound_ms;
	if (late)
		r = 0.0;
	/* Nothing can make a failure worse: only a success waits out the window. */
	bool final = r == 0.0 || conf(k)->relapse_window_ms == 0;
	int64_t now = sdk_wall_ms();
	sdk_err e;
	int rc = lrn_store_reward(k->db, json_integer_value(id), arm, r, outcome, final, now, &e);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	l->rewards++;
	l->finals += final;
	sdk_reply_json(req, 200, json_pack("{s:O, s:s, s:f, s:s, s:b}", "decision_id", id, "arm",
					   arm, "reward", r, "state",
					   final ? "final" : "provisional", "late", late));
}

static void on_incident(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	struct lrn *l = k->state;
	static const char *const allowed[] = { "kernel", "issue", NULL };
	json_t *body = sdk_req_json(req, true);
	if (!body || sdk_req_fields_only(req, body, allowed) < 0)
		return;
	const char *kernel = json_string_value(json_object_get(body, "kernel"));
	json_t *issue = json_object_get(body, "issue");
	if (!lrn_name_ok(kernel) || (issue && !lrn_name_ok(json_string_value(issue)))) {
		sdk_reply_error(req, 400, "invalid", "kernel (and issue, if given): names of 1 to "
						     "%d of [a-z0-9_]", LRN_NAME_MAX);
		return;
	}
	unsigned long long before = l->relapses;
	sdk_err e;
	int rc = relapse(l, kernel, sdk_wall_ms(), &e);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	l->incidents++;
	sdk_reply_json(req, 200, json_pack("{s:s, s:I}", "kernel", kernel, "relapsed",
					   (json_int_t)(l->relapses - before)));
}

static void on_get_decision(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	const char *s = sdk_req_param(req, "id");
	char *end;
	errno = 0;
	long long id = strtoll(s, &end, 10);
	if (!*s || *end || errno || id <= 0) {
		sdk_reply_error(req, 400, "invalid", "a decision id is a positive integer");
		return;
	}
	finalize(k->state, sdk_wall_ms());
	json_t *d;
	sdk_err e;
	int rc = lrn_store_get(k->db, id, &d, &e);
	if (rc < 0)
		sdk_reply_status(req, rc, &e);
	else
		sdk_reply_json(req, 200, d);
}

static void on_list(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	unsigned long long before, limit;
	if (sdk_req_query_uint(req, "before", 0, 1ULL << 62, 0, &before) < 0 ||
	    sdk_req_query_uint(req, "limit", 1, LIST_MAX, 100, &limit) < 0)
		return;
	finalize(k->state, sdk_wall_ms());
	json_t *list;
	sdk_err e;
	int rc = lrn_store_list(k->db, (int64_t)before, (unsigned)limit, &list, &e);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	size_t n = json_array_size(list);
	json_t *next = n == limit ? json_object_get(json_array_get(list, n - 1), "decision_id") : NULL;
	sdk_reply_json(req, 200, json_pack("{s:o, s:O}", "decisions", list, "next_before",
					   next ? next : json_null()));
}

/* ---- offline evaluation ---- */

enum cand { CAND_STATIC, CAND_UNIFORM, CAND_ARM, CAND_TABLE, CAND_THOMPSON, CAND_GREEDY };

/* An evaluation: read and computed on the pool's worker, over a read-only
 * connection of its own (the kernel's is the loop's), answered on the
 * loop. */
struct eval {
	sdk_kernel *k;
	sdk_req *req;
	char path[PATH_MAX]; /* the kernel's database file */
	sqlite3 *db;         /* the worker's connection */
	bool provisional;
	unsigned max;
	json_t *spec;        /* the candidate as asked (a reference) */
	bool ran;
	lrn_estimate est;
	enum cand kind;
	const char *arm;   /* CAND_ARM */
	json_t *choices;   /* CAND_TABLE: {issue: arm} */
	double epsilon;    /* CAND_GREEDY */
	json_t *cache;     /* bucket+arms -> [probabilities], for the posterior policies */
	lrn_sample *s;
	size_t n, cap;
	double logged_sum;
	int rc;
	sdk_err e;
};

/* The candidate's probability of `chosen` among `arms` (static order). */
static double target_p(struct eval *ev, const lrn_logged *l, json_t *arms)
{
	size_t n = json_array_size(arms), at = n;
	const char *first = json_string_value(json_array_get(arms, 0));
	for (size_t i = 0; i < n; i++)
		if (!strcmp(json_string_value(json_array_get(arms, i)), l->chosen))
			at = i;
	if (at == n || !first)
		return 0.0;
	const char *pick = first;
	switch (ev->kind) {
	case CAND_STATIC: break;
	case CAND_UNIFORM: return 1.0 / (double)n;
	case CAND_ARM: pick = ev->arm; break;
	case CAND_TABLE: {
		const char *c = json_string_value(json_object_get(ev->choices, l->issue));
		if (c)
			pick = c;
		break;
	}
	case CAND_THOMPSON:
	case CAND_GREEDY: {
		char key[LRN_BUCKET_MAX + 512];
		snprintf(key, sizeof key, "%s %s", l->bucket, l->arms_json);
		json_t *probs = json_object_get(ev->cache, key);
		if (!probs) {
			lrn_context c = { .n_arms = n > LRN_ARMS_MAX ? LRN_ARMS_MAX : n };
			snprintf(c.bucket, sizeof c.bucket, "%s", l->bucket);
			for (size_t i = 0; i < c.n_arms; i++)
				snprintf(c.arms[i], sizeof c.arms[i], "%s",
					 json_string_value(json_array_get(arms, i)));
			lrn_arm post[LRN_ARMS_MAX];
			double p[LRN_ARMS_MAX];
			if ((ev->rc = lrn_store_posteriors(ev->db, &c, post, &ev->e)) < 0)
				return 0.0;
			lrn_policy_probs(ev->kind == CAND_THOMPSON ? LRN_THOMPSON
								   : LRN_EPSILON_GREEDY,
					 post, c.n_arms, ev->epsilon, p);
			probs = json_array();
			for (size_t i = 0; i < c.n_arms; i++)
				json_array_append_new(probs, json_real(p[i]));
			json_object_set_new(ev->cache, key, probs);
		}
		return json_real_value(json_array_get(probs, at));
	}
	}
	/* A deterministic pick: an arm that does not fit this issue falls back
	 * to the static first, as the healer would. */
	bool fits = false;
	for (size_t i = 0; i < n; i++)
		fits |= !strcmp(json_string_value(json_array_get(arms, i)), pick);
	return !strcmp(fits ? pick : first, l->chosen) ? 1.0 : 0.0;
}

static int on_logged(const lrn_logged *l, void *arg)
{
	struct eval *ev = arg;
	json_t *arms = json_loads(l->arms_json, 0, NULL);
	double tp = target_p(ev, l, arms);
	json_decref(arms);
	if (ev->rc < 0)
		return 1;
	if (ev->n == ev->cap) {
		size_t cap = ev->cap ? ev->cap * 2 : 256;
		lrn_sample *s = realloc(ev->s, cap * sizeof *s);
		if (!s) {
			ev->rc = sdk_fail(&ev->e, SDK_EBUSY, "out of memory");
			return 1;
		}
		ev->s = s;
		ev->cap = cap;
	}
	ev->s[ev->n++] = (lrn_sample){ l->reward, l->probability > 0 ? l->probability : 1e-12, tp };
	ev->logged_sum += l->reward;
	return 0;
}

static json_t *interval_json(double v, double se, double lo, double hi)
{
	return json_pack("{s:f, s:f, s:[f, f]}", "value", v, "se", se, "ci95", lo, hi);
}

/* Reads {"name": ...} into ev; answers 400 and returns -1 when bad. */
static int read_candidate(sdk_req *req, json_t *spec, struct eval *ev)
{
	static const char *const allowed[] = { "name", "arm", "choices", "epsilon", NULL };
	const char *name = json_string_value(json_object_get(spec, "name"));
	if (!json_is_object(spec) || !name) {
		sdk_reply_error(req, 400, "invalid", "policy: {\"name\": static, uniform, arm, table, "
						     "thompson or epsilon_greedy, ...}");
		return -1;
	}
	if (sdk_req_fields_only(req, spec, allowed) < 0)
		return -1;
	static const char *const names[] = { "static", "uniform", "arm", "table", "thompson",
					     "epsilon_greedy" };
	size_t i = 0;
	while (i < sizeof names / sizeof *names && strcmp(names[i], name))
		i++;
	if (i == sizeof names / sizeof *names) {
		sdk_reply_error(req, 400, "invalid", "policy.name: static, uniform, arm, table, "
						     "thompson or epsilon_greedy");
		return -1;
	}
	ev->kind = (enum cand)i;
	if (ev->kind == CAND_ARM) {
		ev->arm = json_string_value(json_object_get(spec, "arm"));
		if (!lrn_name_ok(ev->arm)) {
			sdk_reply_error(req, 400, "invalid", "policy.arm: the playbook it always runs");
			return -1;
		}
	}
	if (ev->kind == CAND_TABLE) {
		ev->choices = json_object_get(spec, "choices");
		const char *key;
		json_t *v;
		bool ok = json_is_object(ev->choices) && json_object_size(ev->choices) > 0;
		json_object_foreach (ev->choices, key, v)
			ok = ok && lrn_name_ok(key) && lrn_name_ok(json_string_value(v));
		if (!ok) {
			sdk_reply_error(req, 400, "invalid", "policy.choices: {issue: playbook}, at least "
							     "one");
			return -1;
		}
	}
	json_t *eps = json_object_get(spec, "epsilon");
	ev->epsilon = default_explore(ev->k, ev->kind == CAND_THOMPSON ? LRN_THOMPSON
								      : LRN_EPSILON_GREEDY);
	if (eps) {
		if ((ev->kind != CAND_GREEDY && ev->kind != CAND_THOMPSON) || !json_is_number(eps) ||
		    json_number_value(eps) < 0 || json_number_value(eps) > 1) {
			sdk_reply_error(req, 400, "invalid", "policy.epsilon: a number in [0, 1], for "
							     "thompson or epsilon_greedy only");
			return -1;
		}
		ev->epsilon = json_number_value(eps);
	}
	return 0;
}

/* On the worker: the log's rewarded decisions, the candidate's weights,
 * the estimates. */
static void eval_work(void *arg)
{
	struct eval *ev = arg;
	ev->ran = true;
	if (sqlite3_open_v2(ev->path, &ev->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
	    SQLITE_OK) {
		ev->rc = sdk_db_fail(ev->db, &ev->e, "opening the log to read");
	} else {
		sqlite3_busy_timeout(ev->db, 5000);
		ev->cache = json_object();
		int rc = lrn_store_logged(ev->db, ev->provisional, ev->max, on_logged, ev, &ev->e);
		if (rc < 0 && ev->rc == 0)
			ev->rc = rc;
		json_decref(ev->cache);
		ev->cache = NULL;
		if (ev->rc == 0 && ev->n > 0)
			lrn_estimate_value(ev->s, ev->n, &ev->est);
	}
	sqlite3_close(ev->db);
	ev->db = NULL;
}

/* On the loop: the answer. */
static void eval_done(void *arg)
{
	struct eval *ev = arg;
	struct lrn *l = ev->k->state;
	sdk_req *req = ev->req;
	if (!ev->ran)
		sdk_reply_error(req, 503, "unavailable", "the learning kernel is stopping");
	else if (ev->rc < 0)
		sdk_reply_status(req, ev->rc, &ev->e);
	else if (ev->n == 0)
		sdk_reply_error(req, 409, "no_data", "no rewarded decisions to evaluate on yet%s",
				ev->provisional ? "" : " (final ones; include_provisional counts "
						       "the others)");
	else {
		const lrn_estimate *est = &ev->est;
		if (l)
			l->evaluations++;
		sdk_reply_json(req, 200,
			       json_pack("{s:O, s:I, s:I, s:o, s:o, s:f, s:f, s:f, s:s}", "policy",
					 ev->spec, "n", (json_int_t)est->n, "matched",
					 (json_int_t)est->matched, "ips",
					 interval_json(est->ips, est->ips_se, est->ips_lo, est->ips_hi),
					 "snips",
					 interval_json(est->snips, est->snips_se, est->snips_lo,
						       est->snips_hi),
					 "sum_weights", est->sum_w, "effective_sample_size", est->ess,
					 "logged_value", ev->logged_sum / (double)ev->n, "interval",
					 "95 % normal approximation (SNIPS: delta method), clipped to "
					 "[0, 1]"));
	}
	json_decref(ev->spec);
	free(ev->s);
	free(ev);
}

static void on_evaluate(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	struct lrn *l = k->state;
	static const char *const allowed[] = { "policy", "include_provisional", "limit", NULL };
	json_t *body = sdk_req_json(req, true);
	if (!body || sdk_req_fields_only(req, body, allowed) < 0)
		return;
	struct eval ev = { .k = k };
	if (read_candidate(req, json_object_get(body, "policy"), &ev) < 0)
		return;
	json_t *prov = json_object_get(body, "include_provisional"),
	       *lim = json_object_get(body, "limit");
	if (prov && !json_is_boolean(prov)) {
		sdk_reply_error(req, 400, "invalid", "include_provisional: a boolean");
		return;
	}
	unsigned max = conf(k)->evaluate_max;
	if (lim && (!json_is_integer(lim) || json_integer_value(lim) < 1 ||
		    json_integer_value(lim) > max)) {
		sdk_reply_error(req, 400, "invalid", "limit: an integer from 1 to %u", max);
		return;
	}
	if (lim)
		max = (unsigned)json_integer_value(lim);
	finalize(l, sdk_wall_ms());
	struct eval *job = malloc(sizeof *job);
	const char *file = sqlite3_db_filename(k->db, "main");
	if (!job || !file || snprintf(ev.path, sizeof ev.path, "%s", file) >= (int)sizeof ev.path) {
		free(job);
		sdk_reply_error(req, 503, "busy", "cannot start an evaluation");
		return;
	}
	ev.req = req;
	ev.provisional = json_is_true(prov);
	ev.max = max;
	ev.spec = json_incref(json_object_get(body, "policy"));
	*job = ev;
	if (sdk_pool_submit(l->pool, eval_work, eval_done, job) < 0) {
		json_decref(job->spec);
		free(job);
		sdk_req_add_header(req, "Retry-After", "1");
		sdk_reply_error(req, 503, "busy", "%d evaluations are waiting already; try again",
				EVAL_QUEUE_MAX);
	}
}

/* ---- the policy ---- */

static void reply_policy(sdk_req *req, sdk_kernel *k, int status)
{
	json_t *p;
	sdk_err e;
	int rc = lrn_store_policy_json(k->db, &p, &e);
	if (rc < 0)
		sdk_reply_status(req, rc, &e);
	else
		sdk_reply_json(req, status, p);
}

static void on_get_policy(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	struct lrn *l = k->state;
	lrn_policy_row cur;
	sdk_err e;
	int rc = lrn_store_policy(k->db, &l->initial, sdk_wall_ms(), &cur, &e);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	reply_policy(req, k, 200);
}

static void on_set_policy(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	struct lrn *l = k->state;
	static const char *const allowed[] = { "policy", "epsilon", "reason", NULL };
	json_t *body = sdk_req_json(req, true);
	if (!body || sdk_req_fields_only(req, body, allowed) < 0)
		return;
	int p = lrn_policy_parse(json_string_value(json_object_get(body, "policy")));
	json_t *eps = json_object_get(body, "epsilon");
	json_t *reason = json_object_get(body, "reason");
	if (p < 0) {
		sdk_reply_error(req, 400, "invalid", "policy: thompson, epsilon_greedy or static");
		return;
	}
	if (eps && (!json_is_number(eps) || json_number_value(eps) < 0 ||
		    json_number_value(eps) > 1 || p == LRN_STATIC)) {
		sdk_reply_error(req, 400, "invalid", "epsilon: a number in [0, 1] (the exploration "
						     "of thompson or epsilon_greedy)");
		return;
	}
	if (reason && (!json_is_string(reason) || json_string_length(reason) > 200)) {
		sdk_reply_error(req, 400, "invalid", "reason: a string of at most 200 bytes");
		return;
	}
	int64_t now = sdk_wall_ms();
	lrn_policy_row cur, out;
	sdk_err e;
	int rc = lrn_store_policy(k->db, &l->initial, now, &cur, &e);
	if (rc == 0)
		rc = lrn_store_policy_set(k->db, (enum lrn_policy)p,
					  eps ? json_number_value(eps)
					      : default_explore(k, (enum lrn_policy)p),
					  now,
					  reason ? json_string_value(reason) : "switched", &out, &e);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	l->switches++;
	sdk_info("learning: policy version %lld: %s (was version %lld, %s)", (long long)out.version,
		 lrn_policy_name(out.policy), (long long)cur.version, lrn_policy_name(cur.policy));
	reply_policy(req, k, 201);
}

static void on_rollback(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	struct lrn *l = k->state;
	if (sdk_req_body_len(req) > 0) {
		json_t *body = sdk_req_json(req, true);
		static const char *const none[] = { NULL };
		if (!body || sdk_req_fields_only(req, body, none) < 0)
			return;
	}
	int64_t now = sdk_wall_ms();
	lrn_policy_row cur, out;
	sdk_err e;
	int rc = lrn_store_policy(k->db, &l->initial, now, &cur, &e);
	if (rc == 0)
		rc = lrn_store_policy_rollback(k->db, now, &out, &e);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	l->switches++;
	sdk_info("learning: policy rolled back: version %lld is %s", (long long)out.version,
		 lrn_policy_name(out.policy));
	reply_policy(req, k, 201);
}

static void learning_metrics(sdk_kernel *k, struct evbuffer *out)
{
	struct lrn *l = k->state;
	if (!l)
		return;
	evbuffer_add_printf(out, "# HELP grace_learning_decisions_total Decisions made, by policy.\n"
				 "# TYPE grace_learning_decisions_total counter\n");
	for (int p = 0; p < LRN_POLICY_COUNT; p++)
		evbuffer_add_printf(out,
				    "grace_learning_decisions_total{kernel=\"learning\",policy=\"%s\"} "
				    "%llu\n",
				    lrn_policy_name((enum lrn_policy)p), l->decisions[p]);
	evbuffer_add_printf(out,
			    "# HELP grace_learning_rewards_total Rewards reported.\n"
			    "# TYPE grace_learning_rewards_total counter\n"
			    "grace_learning_rewards_total{kernel=\"learning\"} %llu\n"
			    "# HELP grace_learning_rewards_final_total Rewards that became final "
			    "(posteriors updated).\n"
			    "# TYPE grace_learning_rewards_final_total counter\n"
			    "grace_learning_rewards_final_total{kernel=\"learning\"} %llu\n"
			    "# HELP grace_learning_relapses_total Provisional rewards made 0 by a new "
			    "incident of the kernel.\n"
			    "# TYPE grace_learning_relapses_total counter\n"
			    "grace_learning_relapses_total{kernel=\"learning\"} %llu\n"
			    "# HELP grace_learning_incidents_total Incidents reported without a decision.\n"
			    "# TYPE grace_learning_incidents_total counter\n"
			    "grace_learning_incidents_total{kernel=\"learning\"} %llu\n"
			    "# HELP grace_learning_evaluations_total Offline evaluations answered.\n"
			    "# TYPE grace_learning_evaluations_total counter\n"
			    "grace_learning_evaluations_total{kernel=\"learning\"} %llu\n"
			    "# HELP grace_learning_policy_switches_total Policy switches and rollbacks.\n"
			    "# TYPE grace_learning_policy_switches_total counter\n"
			    "grace_learning_policy_switches_total{kernel=\"learning\"} %llu\n",
			    l->rewards, l->finals, l->relapses, l->incidents, l->evaluations,
			    l->switches);
}

static int learning_init(sdk_kernel *k, sdk_err *err)
{
	sdk_err e;
	if (lrn_store_init(k->db, &e) < 0) {
		return sdk_fail(err, SDK_EIO, "%s", e.msg);
	}
	struct lrn *l = calloc(1, sizeof *l);
	if (!l) {
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	l->k = k;
	k->state = l;
	uint64_t seed = conf(k)->seed;
	if (!seed && getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed) {
		return sdk_fail(err, SDK_EIO, "getrandom: %s", strerror(errno));
	}
	lrn_rng_seed(&l->rng, seed);
	int p = lrn_policy_parse(conf(k)->policy);
	l->initial.policy = p < 0 ? LRN_THOMPSON : (enum lrn_policy)p;
	l->initial.epsilon = default_explore(k, l->initial.policy);
	lrn_policy_row cur;
	if (lrn_store_policy(k->db, &l->initial, sdk_wall_ms(), &cur, &e) < 0) {
		return sdk_fail(err, SDK_EIO, "%s", e.msg);
	}
	l->timer = event_new(k->base, -1, EV_PERSIST, on_tick, l);
	l->pool = sdk_pool_new(k->base, 1, EVAL_QUEUE_MAX);
	if (!l->timer || !l->pool) {
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	struct timeval tv = { FINALIZE_EVERY_MS / 1000, (FINALIZE_EVERY_MS % 1000) * 1000 };
	event_add(l->timer, &tv);
	return 0;
}

static void learning_close(sdk_kernel *k)
{
	struct lrn *l = k->state;
	if (!l)
		return;
	if (l->timer)
		event_free(l->timer);
	sdk_pool_free(l->pool); /* answers the evaluations still queued */
	free(l);
	k->state = NULL;
}

static const sdk_route learning_routes[] = {
	SDK_ROUTE("POST", "/decide", on_decide),
	SDK_ROUTE("POST", "/reward", on_reward),
	SDK_ROUTE("POST", "/incidents", on_incident),
	SDK_ROUTE("GET", "/decisions", on_list),
	SDK_ROUTE("GET", "/decisions/:id", on_get_decision),
	SDK_ROUTE("POST", "/evaluate", on_evaluate),
	SDK_ROUTE("GET", "/policy", on_get_policy),
	SDK_ROUTE("POST", "/policy", on_set_policy),
	SDK_ROUTE("POST", "/policy/rollback", on_rollback),
};

const sdk_kernel_def learning_kernel = {
	.name = "learning",
	.port = 8133, .tier = "agentic",
	.summary = "a contextual bandit that orders the healer's playbooks, with offline evaluation",
	.complete = true,
	/* Its tables as they are today (store.c): a change is a new step in
	 * .migrations and a new fixture directory (docs/upgrades.md). */
	.schema_version = 1,
	.routes = learning_routes,
	.n_routes = sizeof learning_routes / sizeof learning_routes[0],
	.init = learning_init,
	.close = learning_close,
	.metrics = learning_metrics,
};
