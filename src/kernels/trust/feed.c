/* The trust kernel's evidence from the bus (feed.h). The mapping from
 * what was published to outcomes is one table per subject family below. */
#include "kernels/trust/feed.h"

#include "kernels/trust/evidence.h"
#include "sdk/call.h"
#include "sdk/clock.h"
#include "sdk/config.h"
#include "sdk/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POLL_WAIT_MS 20000
#define POLL_MAX 200
#define RETRY_MS 2000

static const char *str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static int in(const char *s, const char *const *list)
{
	for (; s && *list; list++)
		if (!strcmp(s, *list))
			return 1;
	return 0;
}

/* grace.kernel.NAME.state {kernel, from, to, last_exit}: a running
 * process that ended on its own is a crash: from ready or starting to
 * starting (restarted at once, or a standby took over), restarting (after
 * a backoff) or failed. A stop an operator or the healer asked for goes
 * through stopping and is none. Ready starts a healthy period, anything
 * else ends it. */
static int kernel_state(sqlite3 *db, json_t *p, int64_t t, int64_t now, int64_t hl, sdk_err *e)
{
	static const char *const up[] = { "ready", "starting", NULL };
	static const char *const down[] = { "starting", "restarting", "failed", NULL };
	const char *name = str(p, "kernel"), *from = str(p, "from"), *to = str(p, "to");
	if (!tr_subject_valid("kernel", name) || !to)
		return 0;
	int rc = tr_live_set(db, name, !strcmp(to, "ready"), t, e);
	if (rc == 0 && in(from, up) && in(to, down) && strcmp(from, to))
		rc = tr_evidence_add(db, "kernel", name, "crash", 0, t, now, hl, e);
	return rc;
}

/* grace.guardian.NAME.state {kernel, from, to}: probes failing (degraded,
 * unhealthy) is bad and restarts the healthy period. */
static int guardian_state(sqlite3 *db, json_t *p, int64_t t, int64_t now, int64_t hl, sdk_err *e)
{
	static const char *const bad[] = { "degraded", "unhealthy", NULL };
	const char *name = str(p, "kernel"), *to = str(p, "to");
	if (!tr_subject_valid("kernel", name) || !in(to, bad) || in(str(p, "from"), bad))
		return 0;
	int rc = tr_evidence_add(db, "kernel", name, "probe_failed", 0, t, now, hl, e);
	return rc ? rc : tr_live_set(db, name, 0, t, e);
}

/* grace.healer.incident {component, outcome}: a heal that worked (its
 * verification passed) is good, one that failed is bad. */
static int incident(sqlite3 *db, json_t *p, int64_t t, int64_t now, int64_t hl, sdk_err *e)
{
	const char *name = str(p, "component"), *outcome = str(p, "outcome");
	if (!tr_subject_valid("kernel", name) || !outcome)
		return 0;
	if (!strcmp(outcome, "healed"))
		return tr_evidence_add(db, "kernel", name, "heal_healed", 1, t, now, hl, e);
	if (!strcmp(outcome, "failed"))
		return tr_evidence_add(db, "kernel", name, "heal_failed", 0, t, now, hl, e);
	return 0;
}

/* grace.auth.login {user, outcome: ok|failed}. */
static int login(sqlite3 *db, json_t *p, int64_t t, int64_t now, int64_t hl, sdk_err *e)
{
	const char *name = str(p, "user"), *outcome = str(p, "outcome");
	if (!tr_subject_valid("user", name) || !outcome)
		return 0;
	int ok = !strcmp(outcome, "ok");
	if (!ok && strcmp(outcome, "failed"))
		return 0;
	return tr_evidence_add(db, "user", name, ok ? "login_ok" : "login_failed", ok, t, now, hl,
			       e);
}

/* grace.policy.denied {user, action, resource}. */
static int denied(sqlite3 *db, json_t *p, int64_t t, int64_t now, int64_t hl, sdk_err *e)
{
	const char *name = str(p, "user");
	if (!tr_subject_valid("user", name))
		return 0;
	return tr_evidence_add(db, "user", name, "policy_denied", 0, t, now, hl, e);
}

static const struct {
	const char *prefix, *suffix; /* the subject is PREFIX...SUFFIX */
	int (*fn)(sqlite3 *, json_t *, int64_t, int64_t, int64_t, sdk_err *);
} feeds[] = {
	{ "grace.kernel.", ".state", kernel_state },
	{ "grace.guardian.", ".state", guardian_state },
	{ "grace.healer.incident", "", incident },
	{ "grace.auth.login", "", login },
	{ "grace.policy.denied", "", denied },
};

int tr_feed_apply(sqlite3 *db, const char *subject, json_t *payload, int64_t ts_ms,
		  int64_t now_ms, int64_t half_life_ms, sdk_err *err)
{
	if (!subject || !json_is_object(payload))
		return 0;
	size_t n = strlen(subject);
	for (size_t i = 0; i < sizeof feeds / sizeof feeds[0]; i++) {
		size_t p = strlen(feeds[i].prefix), s = strlen(feeds[i].suffix);
		if (n < p + s || strncmp(subject, feeds[i].prefix, p) ||
		    strcmp(subject + n - s, feeds[i].suffix) || (!s && n != p))
			continue;
		json_t *ts = json_object_get(payload, "ts_ms");
		int64_t t = json_is_integer(ts) ? json_integer_value(ts) : ts_ms;
		return feeds[i].fn(db, payload, t, now_ms, half_life_ms, err);
	}
	return 0;
}

/* ---- the consumer group */

static void poll_bus(tr_feed *f);

static void on_acked(int status, const char *body, size_t len, double ms, const char *error,
		     void *arg)
{
	(void)body, (void)len, (void)ms, (void)error;
	tr_feed *f = arg;
	f->polling = false;
	if (status != 200)
		f->retry_ms = sdk_wall_ms() + RETRY_MS;
	else
		poll_bus(f);
}

static void on_polled(int status, const char *body, size_t len, double ms, const char *error,
		      void *arg)
{
	(void)ms, (void)error;
	tr_feed *f = arg;
	f->polling = false;
	if (f->draining)
		return;
	json_t *doc = status == 200 && body ? json_loadb(body, len, 0, NULL) : NULL;
	json_t *msgs = json_object_get(doc, "messages");
	if (!json_is_array(msgs)) {
		json_decref(doc);
		f->retry_ms = sdk_wall_ms() + RETRY_MS;
		return;
	}
	const grace_trust *cfg = &f->k->cfg->trust;
	int64_t hl = cfg->score_half_life_s * 1000LL, now = sdk_wall_ms();
	json_t *receipts = json_array();
	size_t i;
	json_t *m;
	json_array_foreach(msgs, i, m) {
		sdk_err e;
		json_t *ts = json_object_get(m, "timestamp");
		int rc = tr_feed_apply(f->k->db, str(m, "subject"), json_object_get(m, "payload"),
				       json_is_integer(ts) ? json_integer_value(ts) : now, now, hl,
				       &e);
		if (rc < 0) {
			/* Not acknowledged: the bus delivers it again (and dead-letters
			 * it after its deliveries), so a full disk loses nothing. */
			sdk_warn("trust: evidence from %s not stored: %s", str(m, "subject"), e.msg);
			continue;
		}
		f->used++;
		json_t *r = json_object_get(m, "receipt");
		if (r)
			json_array_append(receipts, r);
	}
	json_decref(doc);
	if (!json_array_size(receipts)) {
		json_decref(receipts);
		poll_bus(f);
		return;
	}
	json_t *ack = json_pack("{s:o}", "receipts", receipts);
	char *text = json_dumps(ack, JSON_COMPACT);
	json_decref(ack);
	f->polling = text && sdk_call(f->k->caller, "message_bus", "POST",
				      "/groups/" TR_FEED_GROUP "/ack", text, strlen(text), NULL,
				      10000, on_acked, f) == 0;
	if (!f->polling)
		f->retry_ms = sdk_wall_ms() + RETRY_MS;
	free(text);
}

static void poll_bus(tr_feed *f)
{
	if (f->draining)
		return;
	char path[200];
	snprintf(path, sizeof path,
		 "/groups/" TR_FEED_GROUP "/poll?subject=grace.%%3E&max=%d&wait_ms=%d", POLL_MAX,
		 POLL_WAIT_MS);
	f->polling = sdk_call(f->k->caller, "message_bus", "GET", path, NULL, 0, NULL,
			      POLL_WAIT_MS + 5000, on_polled, f) == 0;
	if (!f->polling)
		f->retry_ms = sdk_wall_ms() + RETRY_MS;
}

void tr_feed_tick(tr_feed *f)
{
	if (f->draining)
		return;
	int64_t now = sdk_wall_ms();
	if (!f->polling && now >= f->retry_ms && grace_config_kernel(f->k->cfg, "message_bus"))
		poll_bus(f);
	const grace_trust *cfg = &f->k->cfg->trust;
	sdk_err e;
	if (tr_live_tick(f->k->db, now, cfg->score_period_s * 1000LL,
			 cfg->score_half_life_s * 1000LL, &e) < 0)
		sdk_warn("trust: healthy periods not counted: %s", e.msg);
}
