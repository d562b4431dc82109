/* The healer asking the self_healing kernel (advise.h). */
#include "serve/healer/advise.h"

#include "serve/healer/orphans.h"

#include "serve/healer/healer.h"
#include "sdk/log.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SH_KERNEL "self_healing"
#define DEFAULT_TIMEOUT_MS 500
#define OUTCOME_TIMEOUT_MS 5000
#define FITS_MAX 8

enum fallback { FB_NOT_READY, FB_CANNOT_CALL, FB_NO_ANSWER, FB_REFUSED, FB_NONSENSE, FB_COUNT };
static const char *const fb_names[FB_COUNT] = { "not_ready", "cannot_call", "no_answer",
						"refused", "nonsense" };

struct hl_advise {
	sdk_caller *caller;
	supervisor *sup;
	unsigned timeout_ms;
	unsigned long long asks, heals, holds, stops, fallbacks[FB_COUNT], outcomes;
	hl_orphans orphans; /* asks of ended incidents, their calls still out (owned) */
};

struct hl_advise_ask {
	hl_orphan link; /* first: an orphan is freed through it */
	hl_advise *a;   /* NULL once cancelled */
	hl_advise_cb cb;
	void *arg;
	char fits[FITS_MAX][64];
	size_t n;
};

hl_advise *hl_advise_new(sdk_caller *caller, supervisor *sup)
{
	hl_advise *a = calloc(1, sizeof *a);
	if (a)
		*a = (hl_advise){ .caller = caller, .sup = sup, .timeout_ms = DEFAULT_TIMEOUT_MS };
	return a;
}

/* After the loop: the asks of ended incidents (orphans.h). */
void hl_advise_free(hl_advise *a)
{
	if (!a)
		return;
	hl_orphans_free(&a->orphans);
	free(a);
}

void hl_advise_set_timeout(hl_advise *a, unsigned ms)
{
	if (a && ms)
		a->timeout_ms = ms;
}

/* The self_healing kernel when it is configured and enabled. */
static sup_kernel *adviser_kernel(hl_advise *a)
{
	sup_kernel *k = a ? sup_find(a->sup, SH_KERNEL) : NULL;
	return k && k->cfg->enabled ? k : NULL;
}

static json_t *fallback_json(hl_advise *a, enum fallback why, const char *detail)
{
	a->fallbacks[why]++;
	return json_pack("{s:b, s:s, s:s}", "asked", why != FB_NOT_READY, "fallback",
			 fb_names[why], "detail", detail);
}

/* Used only when whole and sane: a known decision, an advice id, and for
 * a heal a playbook the healer has. */
static const char *answer_sane(json_t *ans, enum hl_advice *what)
{
	const char *d = json_string_value(json_object_get(ans, "decision"));
	json_t *id = json_object_get(ans, "advice_id");
	if (!json_is_integer(id) || json_integer_value(id) <= 0)
		return "no advice_id";
	if (!d)
		return "no decision";
	if (!strcmp(d, "hold"))
		*what = HL_ADVICE_HOLD;
	else if (!strcmp(d, "stop"))
		*what = HL_ADVICE_STOP;
	else if (!strcmp(d, "heal"))
		*what = HL_ADVICE_HEAL;
	else
		return "an unknown decision";
	const char *pb = json_string_value(json_object_get(ans, "playbook"));
	if (*what == HL_ADVICE_HEAL && (!pb || !hl_playbook_known(pb)))
		return "a playbook the healer does not have";
	return NULL;
}

static void on_advised(int status, const char *body, size_t len, double ms, const char *error,
		       void *arg)
{
	struct hl_advise_ask *q = arg;
	hl_advise *a = q->a;
	if (!a) { /* cancelled: the incident has ended */
		hl_orphan_release(&q->link);
		return;
	}
	json_t *ans = status == 200 && body ? json_loadb(body, len, 0, NULL) : NULL;
	enum hl_advice what = HL_ADVICE_NONE;
	json_t *record;
	const char *bad = NULL, *pb = NULL;
	int64_t id = 0;
	char detail[192];
	if (status == 0) {
		snprintf(detail, sizeof detail, "%s", error ? error : "no answer");
		record = fallback_json(a, FB_NO_ANSWER, detail);
	} else if (status != 200) {
		snprintf(detail, sizeof detail, "answered %d", status);
		record = fallback_json(a, FB_REFUSED, detail);
	} else if ((bad = answer_sane(ans, &what))) {
		what = HL_ADVICE_NONE;
		record = fallback_json(a, FB_NONSENSE, bad);
	} else {
		id = json_integer_value(json_object_get(ans, "advice_id"));
		pb = json_string_value(json_object_get(ans, "playbook"));
		a->heals += what == HL_ADVICE_HEAL;
		a->holds += what == HL_ADVICE_HOLD;
		a->stops += what == HL_ADVICE_STOP;
		record = json_deep_copy(ans);
		json_object_set_new(record, "asked", json_true());
		json_object_set_new(record, "latency_ms", json_real(ms));
	}
	q->cb(what, pb, record, id, q->arg);
	json_decref(record);
	json_decref(ans);
	free(q);
}

hl_advise_ask *hl_advise_ask_for(hl_advise *a, const sup_kernel *k, int64_t healer_incident,
				 const char *issue, const char *const *fits, size_t n,
				 hl_advise_cb cb, void *arg, json_t **fallback)
{
	*fallback = NULL;
	sup_kernel *sk = adviser_kernel(a);
	/* Healing self_healing itself never waits on it. */
	if (!sk || sk == k || n == 0)
		return NULL;
	if (sk->state != SUP_READY) {
		*fallback = fallback_json(a, FB_NOT_READY, sup_state_name(sk->state));
		return NULL;
	}
	struct hl_advise_ask *q = calloc(1, sizeof *q);
	if (!q) {
		*fallback = fallback_json(a, FB_CANNOT_CALL, "out of memory");
		return NULL;
	}
	*q = (struct hl_advise_ask){ .a = a, .cb = cb, .arg = arg };
	json_t *list = json_array();
	for (size_t i = 0; i < n && i < FITS_MAX; i++) {
		snprintf(q->fits[q->n++], sizeof q->fits[0], "%s", fits[i]);
		json_array_append_new(list, json_string(fits[i]));
	}
	json_t *req = json_pack("{s:s, s:s, s:o, s:I}", "kernel", k->cfg->name, "issue", issue,
				"playbooks", list, "healer_incident", (json_int_t)healer_incident);
	char *body = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	a->asks++;
	if (!body || sdk_call(a->caller, SH_KERNEL, "POST", "/advice", body, strlen(body), NULL,
			      a->timeout_ms, on_advised, q) < 0) {
		free(body);
		free(q);
		*fallback = fallback_json(a, FB_CANNOT_CALL, "the call could not start");
		return NULL;
	}
	free(body);
	return q;
}

/* The ask stays allocated until its call ends (orphans.h). */
void hl_advise_cancel(hl_advise_ask *q)
{
	if (!q || !q->a)
		return;
	hl_orphan_adopt(&q->a->orphans, &q->link);
	q->a = NULL;
}

static void on_told(int status, const char *body, size_t len, double ms, const char *error,
		    void *arg)
{
	(void)body, (void)len, (void)ms, (void)arg;
	if (status < 200 || status >= 300)
		sdk_debug("healer: the self_healing kernel did not take an outcome (%d %s)", status,
			  error ? error : "");
}

void hl_advise_outcome(hl_advise *a, int64_t advice_id, json_t *incident)
{
	const char *outcome = json_string_value(json_object_get(incident, "outcome"));
	/* A hold ran nothing: there is no outcome to tell. */
	if (!adviser_kernel(a) || advice_id <= 0 || !outcome || !strcmp(outcome, "held"))
		return;
	json_t *ver = json_object_get(json_object_get(incident, "verification"), "ok");
	json_t *msg = json_pack("{s:I, s:O, s:s, s:b, s:O, s:O, s:O, s:O}", "advice_id",
				(json_int_t)advice_id, "kernel", json_object_get(incident, "component"),
				"outcome", outcome, "verified",
				!strcmp(outcome, "healed") && json_is_true(ver), "healer_incident",
				json_object_get(incident, "id"), "playbook",
				json_object_get(incident, "playbook") ?: json_null(), "duration_ms",
				json_object_get(incident, "duration_ms") ?: json_null(), "issue",
				json_object_get(incident, "issue_type") ?: json_null());
	char *body = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
	json_decref(msg);
	a->outcomes++;
	if (body)
		sdk_call(a->caller, SH_KERNEL, "POST", "/outcomes", body, strlen(body), NULL,
			 OUTCOME_TIMEOUT_MS, on_told, NULL);
	free(body);
}

void hl_advise_metrics(hl_advise *a, struct evbuffer *out)
{
	if (!a)
		return;
	evbuffer_add_printf(out,
			    "# HELP grace_healer_advice_asks_total Heals the healer asked the "
			    "self_healing kernel about.\n"
			    "# TYPE grace_healer_advice_asks_total counter\n"
			    "grace_healer_advice_asks_total %llu\n"
			    "# HELP grace_healer_advice_total Advice followed, by decision.\n"
			    "# TYPE grace_healer_advice_total counter\n"
			    "grace_healer_advice_total{decision=\"heal\"} %llu\n"
			    "grace_healer_advice_total{decision=\"hold\"} %llu\n"
			    "grace_healer_advice_total{decision=\"stop\"} %llu\n"
			    "# HELP grace_healer_advice_fallbacks_total Heals that went on as "
			    "before because self_healing could not advise, by reason.\n"
			    "# TYPE grace_healer_advice_fallbacks_total counter\n",
			    a->asks, a->heals, a->holds, a->stops);
	for (int i = 0; i < FB_COUNT; i++)
		evbuffer_add_printf(out, "grace_healer_advice_fallbacks_total{reason=\"%s\"} %llu\n",
				    fb_names[i], a->fallbacks[i]);
}
