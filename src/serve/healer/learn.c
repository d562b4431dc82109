#include "serve/healer/learn.h"

#include "serve/healer/orphans.h"

#include "sdk/clock.h"
#include "sdk/log.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LEARN_KERNEL "learning"
#define DEFAULT_TIMEOUT_MS 300
#define REWARD_TIMEOUT_MS 5000
#define HOUR_MS 3600000ull
#define ARMS_MAX 8

enum fallback { FB_NOT_READY, FB_CANNOT_CALL, FB_NO_ANSWER, FB_REFUSED, FB_NONSENSE, FB_COUNT };
static const char *const fb_names[FB_COUNT] = { "not_ready", "cannot_call", "no_answer",
						"refused", "nonsense" };

struct hl_learn {
	sdk_caller *caller;
	supervisor *sup;
	unsigned timeout_ms;
	unsigned long long asks, answers, fallbacks[FB_COUNT], rewards, incidents;
	struct {
		char name[GRACE_NAME_MAX];
		int64_t at_ms;
	} heals[GRACE_KERNELS_MAX]; /* the last heal of each kernel, since Grace started */
	hl_orphans orphans; /* asks of ended incidents, their calls still out (owned) */
};

struct hl_learn_ask {
	hl_orphan link;   /* first: an orphan is freed through it */
	hl_learn *l;      /* NULL once cancelled */
	hl_learn_cb cb;
	void *arg;
	char arms[ARMS_MAX][64];
	size_t n;
};

hl_learn *hl_learn_new(sdk_caller *caller, supervisor *sup)
{
	hl_learn *l = calloc(1, sizeof *l);
	if (l)
		*l = (hl_learn){ .caller = caller, .sup = sup, .timeout_ms = DEFAULT_TIMEOUT_MS };
	return l;
}

/* After the loop: the asks of ended incidents (orphans.h). */
void hl_learn_free(hl_learn *l)
{
	if (!l)
		return;
	hl_orphans_free(&l->orphans);
	free(l);
}

void hl_learn_set_timeout(hl_learn *l, unsigned ms)
{
	if (l && ms)
		l->timeout_ms = ms;
}

/* The learning kernel when it is configured and enabled; NULL when not
 * (then the healer behaves as it always has, and says nothing of it). */
static sup_kernel *learner_kernel(hl_learn *l)
{
	sup_kernel *k = l ? sup_find(l->sup, LEARN_KERNEL) : NULL;
	return k && k->cfg->enabled ? k : NULL;
}

/* ---- the context's features (docs/learning.md "Context") ---- */

static unsigned restarts_last_hour(const sup_kernel *k)
{
	uint64_t now = (uint64_t)sdk_mono_ms();
	unsigned starts = 0;
	for (unsigned i = 0; i < k->history.n && i < SUP_HISTORY_MAX; i++) {
		uint64_t t = k->history.starts_ms[(k->history.head + SUP_HISTORY_MAX - 1 - i) %
						  SUP_HISTORY_MAX];
		if (now - t > HOUR_MS)
			break;
		starts++;
	}
	return starts > 0 ? starts - 1 : 0;
}

static const char *exit_kind(const char *last)
{
	if (!last[0])
		return "none";
	if (strstr(last, "watchdog"))
		return "watchdog";
	if (!strncmp(last, "cannot", 6))
		return "start_failed";
	const char *e = strstr(last, "exit ");
	if (e)
		return atoi(e + 5) == 0 ? "clean" : "error";
	if (strstr(last, "signal "))
		return "signal";
	return "other";
}

static json_t *since_last_heal(hl_learn *l, const char *kernel)
{
	for (size_t i = 0; i < GRACE_KERNELS_MAX && l->heals[i].name[0]; i++)
		if (!strcmp(l->heals[i].name, kernel)) {
			int64_t s = (sdk_wall_ms() - l->heals[i].at_ms) / 1000;
			return json_integer(s < 0 ? 0 : s);
		}
	return json_null();
}

void hl_learn_heal_ended(hl_learn *l, const char *kernel, int64_t now_ms)
{
	if (!l)
		return;
	size_t i = 0;
	while (i < GRACE_KERNELS_MAX && l->heals[i].name[0] && strcmp(l->heals[i].name, kernel))
		i++;
	if (i == GRACE_KERNELS_MAX)
		return;
	snprintf(l->heals[i].name, sizeof l->heals[i].name, "%s", kernel);
	l->heals[i].at_ms = now_ms;
}

/* ---- asking ---- */

static json_t *fallback_json(hl_learn *l, enum fallback why, const char *detail)
{
	l->fallbacks[why]++;
	return json_pack("{s:b, s:s, s:s}", "asked", why != FB_NOT_READY, "fallback",
			 fb_names[why], "detail", detail);
}

/* The answer is used only when it is whole and sane: a known decision id,
 * an order that is exactly the arms asked about, a probability in (0, 1]. */
static const char *answer_sane(const struct hl_learn_ask *a, json_t *ans)
{
	json_t *id = json_object_get(ans, "decision_id"), *ord = json_object_get(ans, "order");
	json_t *p = json_object_get(ans, "probability");
	if (!json_is_integer(id) || json_integer_value(id) <= 0)
		return "no decision_id";
	if (!json_is_array(ord) || json_array_size(ord) != a->n)
		return "the order is not the playbooks asked about";
	for (size_t i = 0; i < a->n; i++) {
		const char *s = json_string_value(json_array_get(ord, i));
		size_t j = 0;
		while (s && j < a->n && strcmp(a->arms[j], s))
			j++;
		if (!s || j == a->n)
			return "the order names a playbook not asked about";
		for (size_t m = 0; m < i; m++)
			if (!strcmp(s, json_string_value(json_array_get(ord, m))))
				return "the order names a playbook twice";
	}
	if (!json_is_number(p) || !(json_number_value(p) > 0 && json_number_value(p) <= 1))
		return "no probability in (0, 1]";
	return NULL;
}

static void on_decided(int status, const char *body, size_t len, double ms, const char *error,
		       void *arg)
{
	struct hl_learn_ask *a = arg;
	hl_learn *l = a->l;
	if (!l) { /* cancelled: the incident has ended */
		hl_orphan_release(&a->link);
		return;
	}
	json_t *ans = status == 200 && body ? json_loadb(body, len, 0, NULL) : NULL;
	json_t *learning;
	const char *pick = a->arms[0], *bad = NULL;
	int64_t id = 0;
	char detail[192];
	if (status == 0) {
		snprintf(detail, sizeof detail, "%s", error ? error : "no answer");
		learning = fallback_json(l, FB_NO_ANSWER, detail);
	} else if (status != 200) {
		snprintf(detail, sizeof detail, "answered %d", status);
		learning = fallback_json(l, FB_REFUSED, detail);
	} else if ((bad = answer_sane(a, ans))) {
		learning = fallback_json(l, FB_NONSENSE, bad);
	} else {
		l->answers++;
		json_t *ord = json_object_get(ans, "order");
		id = json_integer_value(json_object_get(ans, "decision_id"));
		for (size_t i = 0; i < a->n; i++)
			if (!strcmp(a->arms[i], json_string_value(json_array_get(ord, 0))))
				pick = a->arms[i];
		learning = json_pack("{s:b, s:I, s:O, s:O, s:O, s:O, s:f}", "asked", 1, "decision_id",
				     (json_int_t)id, "order", ord, "probability",
				     json_object_get(ans, "probability"), "policy",
				     json_object_get(ans, "policy"), "version",
				     json_object_get(ans, "version"), "latency_ms", ms);
	}
	json_decref(ans);
	a->cb(pick, learning, id, a->arg);
	json_decref(learning);
	free(a);
}

hl_learn_ask *hl_learn_order(hl_learn *l, const sup_kernel *k, const char *issue,
			     const char *const *arms, size_t n, hl_learn_cb cb, void *arg,
			     json_t **fallback)
{
	*fallback = NULL;
	sup_kernel *lk = learner_kernel(l);
	/* Healing the learning kernel itself never waits on it. */
	if (!lk || n < 2 || lk == k)
		return NULL;
	if (lk->state != SUP_READY) {
		*fallback = fallback_json(l, FB_NOT_READY, sup_state_name(lk->state));
		return NULL;
	}
	struct hl_learn_ask *a = calloc(1, sizeof *a);
	if (!a) {
		*fallback = fallback_json(l, FB_CANNOT_CALL, "out of memory");
		return NULL;
	}
	*a = (struct hl_learn_ask){ .l = l, .cb = cb, .arg = arg };
	json_t *list = json_array();
	for (size_t i = 0; i < n && i < ARMS_MAX; i++) {
		snprintf(a->arms[a->n++], sizeof a->arms[0], "%s", arms[i]);
		json_array_append_new(list, json_string(arms[i]));
	}
	json_t *req = json_pack("{s:s, s:s, s:{s:i, s:s, s:o}, s:o}", "issue", issue, "kernel",
				k->cfg->name, "features", "restarts_last_hour",
				(int)restarts_last_hour(k), "last_exit", exit_kind(k->last_exit),
				"since_last_heal_s", since_last_heal(l, k->cfg->name), "arms", list);
	char *body = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	l->asks++;
	if (!body || sdk_call(l->caller, LEARN_KERNEL, "POST", "/decide", body, strlen(body), NULL,
			      l->timeout_ms, on_decided, a) < 0) {
		free(body);
		free(a);
		*fallback = fallback_json(l, FB_CANNOT_CALL, "the call could not start");
		return NULL;
	}
	free(body);
	return a;
}

/* The ask stays allocated until its call ends (orphans.h). */
void hl_learn_cancel(hl_learn_ask *a)
{
	if (!a || !a->l)
		return;
	hl_orphan_adopt(&a->l->orphans, &a->link);
	a->l = NULL;
}

/* ---- telling ---- */

static void on_told(int status, const char *body, size_t len, double ms, const char *error,
		    void *arg)
{
	(void)body, (void)len, (void)ms, (void)arg;
	if (status < 200 || status >= 300)
		sdk_debug("healer: the learning kernel did not take a report (%d %s)", status,
			  error ? error : "");
}

static void tell(hl_learn *l, const char *path, json_t *msg)
{
	char *body = json_dumps(msg, JSON_COMPACT);
	json_decref(msg);
	if (body)
		sdk_call(l->caller, LEARN_KERNEL, "POST", path, body, strlen(body), NULL,
			 REWARD_TIMEOUT_MS, on_told, NULL);
	free(body);
}

void hl_learn_reward(hl_learn *l, int64_t decision_id, const char *playbook, json_t *incident)
{
	const char *outcome = json_string_value(json_object_get(incident, "outcome"));
	if (!learner_kernel(l) || decision_id <= 0 || !outcome || !strcmp(outcome, "interrupted"))
		return;
	l->rewards++;
	tell(l, "/reward",
	     json_pack("{s:I, s:s, s:i, s:{s:s, s:O, s:O, s:O}}", "decision_id",
		       (json_int_t)decision_id, "arm", playbook, "reward",
		       !strcmp(outcome, "healed") ? 1 : 0, "outcome", "outcome", outcome,
		       "duration_ms", json_object_get(incident, "duration_ms"), "incident_id",
		       json_object_get(incident, "id"), "issue_type",
		       json_object_get(incident, "issue_type")));
}

void hl_learn_incident(hl_learn *l, const char *kernel, const char *issue)
{
	sup_kernel *lk = learner_kernel(l);
	if (!lk || lk->state != SUP_READY)
		return;
	l->incidents++;
	tell(l, "/incidents", json_pack("{s:s, s:s}", "kernel", kernel, "issue", issue));
}

void hl_learn_metrics(hl_learn *l, struct evbuffer *out)
{
	if (!l)
		return;
	evbuffer_add_printf(out,
			    "# HELP grace_healer_learning_asks_total Orders the healer asked the "
			    "learning kernel for.\n"
			    "# TYPE grace_healer_learning_asks_total counter\n"
			    "grace_healer_learning_asks_total %llu\n"
			    "# HELP grace_healer_learning_answers_total Orders it used.\n"
			    "# TYPE grace_healer_learning_answers_total counter\n"
			    "grace_healer_learning_answers_total %llu\n"
			    "# HELP grace_healer_learning_rewards_total Rewards sent.\n"
			    "# TYPE grace_healer_learning_rewards_total counter\n"
			    "grace_healer_learning_rewards_total %llu\n"
			    "# HELP grace_healer_learning_fallbacks_total Heals that used the static "
			    "order because the learning kernel could not help, by reason.\n"
			    "# TYPE grace_healer_learning_fallbacks_total counter\n",
			    l->asks, l->answers, l->rewards);
	for (int i = 0; i < FB_COUNT; i++)
		evbuffer_add_printf(out, "grace_healer_learning_fallbacks_total{reason=\"%s\"} %llu\n",
				    fb_names[i], l->fallbacks[i]);
}
