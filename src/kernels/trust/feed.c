/* The trust kernel's evidence from the bus (feed.h). The mapping from
 * what was published to outcomes is one table per subject family below. */
#include "kernels/trust/feed.h"

#include "kernels/trust/evidence.h"
#include "sdk/bus_group.h"
#include "sdk/clock.h"
#include "sdk/config.h"
#include "sdk/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POLL_WAIT_MS 20000
#define POLL_MAX 200

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

static int on_message(const char *subject, json_t *payload, int64_t ts_ms, void *arg)
{
	tr_feed *f = arg;
	const grace_trust *cfg = &f->k->cfg->trust;
	sdk_err e;
	if (tr_feed_apply(f->k->db, subject, payload, ts_ms, sdk_wall_ms(),
			  cfg->score_half_life_s * 1000LL, &e) < 0) {
		/* Not acknowledged: the bus delivers it again (and dead-letters
		 * it after its deliveries), so a full disk loses nothing. */
		sdk_warn("trust: evidence from %s not stored: %s", subject ? subject : "?", e.msg);
		return -1;
	}
	f->used++;
	return 0;
}

int tr_feed_init(tr_feed *f, sdk_kernel *k)
{
	f->k = k;
	return sdk_bus_group_init(&f->group, k, TR_FEED_GROUP, TR_FEED_SUBJECT, NULL, POLL_MAX,
				  POLL_WAIT_MS, on_message, f);
}

void tr_feed_drain(tr_feed *f)
{
	sdk_bus_group_drain(&f->group);
}

void tr_feed_tick(tr_feed *f)
{
	if (f->group.draining)
		return;
	int64_t now = sdk_wall_ms();
	sdk_bus_group_tick(&f->group, now);
	const grace_trust *cfg = &f->k->cfg->trust;
	sdk_err e;
	if (tr_live_tick(f->k->db, now, cfg->score_period_s * 1000LL,
			 cfg->score_half_life_s * 1000LL, &e) < 0)
		sdk_warn("trust: healthy periods not counted: %s", e.msg);
}
