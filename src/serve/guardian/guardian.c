#include "serve/guardian/guardian.h"
#include "sdk/clock.h"

#include "serve/guardian/events.h"
#include "sdk/log.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct guardian {
	struct event_base *base;
	supervisor *sup;
	gateway *gw;
	sqlite3 *db;
	gd_heal_fn heal;
	void *heal_arg;
	gd_change_fn change;
	void *change_arg;
	gd_kernel kernels[GRACE_KERNELS_MAX];
	size_t n;
};

const char *gd_state_name(enum gd_state st)
{
	static const char *const names[] = { "starting", "ready",      "degraded",
					      "unhealthy", "restarting", "failed",
					      "stopped",  "port_unavailable", "storage_failed",
					      "unreachable" };
	return (size_t)st < sizeof names / sizeof *names ? names[st] : "unknown";
}

enum gd_state gd_state_derive(enum sup_state sup, bool restart_pending, unsigned failures,
			      unsigned threshold, bool storage_failed)
{
	switch (sup) {
	case SUP_STARTING: return GD_STARTING;
	case SUP_READY:
		if (storage_failed)
			return GD_STORAGE_FAILED;
		if (failures >= threshold)
			return GD_UNHEALTHY;
		return failures ? GD_DEGRADED : GD_READY;
	case SUP_RESTARTING: return GD_RESTARTING;
	case SUP_STOPPING: return restart_pending ? GD_RESTARTING : GD_STOPPED;
	case SUP_STOP_THEN_START: return GD_RESTARTING;
	case SUP_STOPPED: return restart_pending ? GD_RESTARTING : GD_STOPPED;
	case SUP_FAILED: return GD_FAILED;
	case SUP_PORT_UNAVAILABLE: return GD_PORT_UNAVAILABLE;
	case SUP_UNREACHABLE: return GD_UNREACHABLE;
	case SUP_STATE_COUNT: break;
	}
	return GD_FAILED;
}

gd_kernel *gd_kernel_of(guardian *g, const sup_kernel *k)
{
	for (size_t i = 0; i < g->n; i++)
		if (g->kernels[i].k == k)
			return &g->kernels[i];
	return NULL;
}

sqlite3 *gd_db(guardian *g) { return g->db; }

bool gd_answer_storage_failed(int status, const char *body, size_t len, sdk_err *why)
{
	if (status != 503 || !body)
		return false;
	json_t *j = json_loadb(body, len, 0, NULL);
	const char *st = json_string_value(json_object_get(j, "status"));
	bool failed = st && !strcmp(st, "storage_failed");
	if (failed) {
		const char *e = json_string_value(json_object_get(json_object_get(j, "storage"),
								  "error"));
		sdk_fail(why, SDK_EIO, "%s", e ? e : "storage failed");
	}
	json_decref(j);
	return failed;
}

/* The trust kernel is failing (probes failing, or being healed): the
 * other kernels' heals wait for it. */
static bool trust_first(guardian *g, const gd_kernel *gk)
{
	for (size_t i = 0; i < g->n; i++) {
		const gd_kernel *t = &g->kernels[i];
		if (t != gk && !strcmp(t->k->cfg->name, "trust"))
			return t->healing || t->state == GD_DEGRADED || t->state == GD_UNHEALTHY;
	}
	return false;
}

static void heal_postponed(guardian *g)
{
	for (size_t i = 0; i < g->n; i++) {
		gd_kernel *gk = &g->kernels[i];
		if (!gk->heal_postponed)
			continue;
		gk->heal_postponed = false;
		if (gk->state == GD_UNHEALTHY && !gk->healing && g->heal) {
			sdk_warn("guardian: %s: the trust kernel's heal is over: healing it now",
				 gk->k->cfg->name);
			g->heal(gk->k, "unhealthy, after the trust kernel's heal", g->heal_arg);
		}
	}
}

static void update(gd_kernel *gk, const char *reason)
{
	sup_kernel *k = gk->k;
	/* A heal stops and starts the kernel: for those watching, it is
	 * restarting, not stopped by an operator. */
	bool restarting = gk->healing;
	enum gd_state st = gd_state_derive(k->state, restarting, gk->failures,
					   k->cfg->health_failures, gk->storage_failed);
	if (st == gk->state)
		return;
	if (st == GD_READY) {
		gk->reheal_backoff_ms = 0; /* healthy again: the next failure starts over */
		if (gk->reheal)
			evtimer_del(gk->reheal);
	}
	enum gd_state old = gk->state;
	gk->state = st;
	gk->since_ms = sdk_wall_ms();
	gd_events_add(gk->g->db, gk->since_ms, k->cfg->name, gd_state_name(old), gd_state_name(st),
		      reason);
	if (gk->g->change)
		gk->g->change(k, gd_state_name(old), gd_state_name(st), reason, gk->g->change_arg);
	bool is_trust = !strcmp(k->cfg->name, "trust");
	if (is_trust && !trust_first(gk->g, NULL))
		heal_postponed(gk->g);
	if ((st == GD_UNHEALTHY || st == GD_STORAGE_FAILED) && sup_kernel_remote(k)) {
		/* Its own node's guardian probes it from beside it and heals it:
		 * two healers acting on one kernel would fight. What is seen from
		 * here is recorded (and a person may still heal it through its
		 * node, POST /healer/heal). */
		sdk_warn("guardian: %s (on node %s) %s as seen from here: its node heals it",
			 k->cfg->name, k->cfg->node, gd_state_name(st));
	} else if (st == GD_UNHEALTHY && !gk->healing && gk->g->heal && !is_trust &&
	    trust_first(gk->g, gk)) {
		sdk_warn("guardian: %s unhealthy after %u failed probes: healed after the trust "
			 "kernel, which is failing too",
			 k->cfg->name, gk->failures);
		gk->heal_postponed = true;
	} else if (st == GD_UNHEALTHY && !gk->healing && gk->g->heal) {
		sdk_warn("guardian: %s unhealthy after %u failed probes: healing", k->cfg->name,
			 gk->failures);
		gk->g->heal(k, reason, gk->g->heal_arg);
	} else if (st == GD_STORAGE_FAILED && !gk->healing && gk->g->heal) {
		/* The healer reports it (an incident naming the file); it does not
		 * restart: a restart cannot repair a file. */
		sdk_error("guardian: %s: storage failed: %s", k->cfg->name, gk->storage_error);
		gk->g->heal(k, reason, gk->g->heal_arg);
	}
}

static void schedule_probe(gd_kernel *gk)
{
	unsigned ms = gk->k->cfg->health_interval_ms;
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
	evtimer_add(gk->timer, &tv);
}

static void on_probe(int status, const char *body, size_t len, double latency_ms,
		     const char *error, void *arg)
{
	gd_kernel *gk = arg;
	gk->probing = false;
	gk->probes++;
	gk->last_probe_ms = sdk_wall_ms();
	gk->last_status = status;
	gk->last_latency_ms = latency_ms;
	char reason[320];
	sdk_err why;
	gk->storage_failed = gd_answer_storage_failed(status, body, len, &why);
	if (gk->storage_failed)
		snprintf(gk->storage_error, sizeof gk->storage_error, "%s", why.msg);
	if (status == 200) {
		gk->last_error[0] = '\0';
		gk->failures = 0;
		snprintf(reason, sizeof reason, "probe ok in %.1f ms", latency_ms);
	} else if (gk->storage_failed) {
		/* It answers, and says what is wrong: not a failed probe. */
		snprintf(gk->last_error, sizeof gk->last_error, "storage failed");
		gk->failures = 0;
		snprintf(reason, sizeof reason, "storage failed: %.250s", gk->storage_error);
	} else {
		snprintf(gk->last_error, sizeof gk->last_error, "%s",
			 error ? error : "health answer was not 200");
		gk->failures++;
		gk->probe_failures++;
		snprintf(reason, sizeof reason, "probe failed (%u in a row): %s", gk->failures,
			 gk->last_error);
	}
	/* A probe that outlived a restart says nothing about the new process. */
	if (gk->k->state == SUP_READY)
		update(gk, reason);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	gd_kernel *gk = arg;
	schedule_probe(gk);
	if (gk->probing || gk->k->state != SUP_READY)
		return;
	gk->probing = true;
	if (gw_probe(gk->g->gw, gk->k->port, "/health", gk->k->cfg->health_timeout_ms, on_probe,
		     gk) < 0)
		gk->probing = false;
}

static void on_reheal(evutil_socket_t fd, short what, void *arg);

guardian *gd_new(struct event_base *base, supervisor *sup, gateway *gw, sqlite3 *db)
{
	guardian *g = calloc(1, sizeof *g);
	if (!g)
		return NULL;
	*g = (guardian){ .base = base, .sup = sup, .gw = gw, .db = db };
	sdk_err err;
	if (gd_events_init(db, &err) < 0) {
		sdk_error("guardian: %s", err.msg);
		free(g);
		return NULL;
	}
	for (size_t i = 0; i < sup_count(sup); i++) {
		gd_kernel *gk = &g->kernels[g->n++];
		gk->g = g;
		gk->k = sup_at(sup, i);
		gk->state = gd_state_derive(gk->k->state, false, 0, 1, false);
		gk->since_ms = sdk_wall_ms();
		gk->timer = evtimer_new(base, on_timer, gk);
		gk->reheal = evtimer_new(base, on_reheal, gk);
		if (!gk->timer || !gk->reheal) {
			gd_free(g);
			return NULL;
		}
	}
	return g;
}

void gd_start(guardian *g)
{
	for (size_t i = 0; i < g->n; i++)
		schedule_probe(&g->kernels[i]);
}

void gd_free(guardian *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->n; i++) {
		if (g->kernels[i].timer)
			event_free(g->kernels[i].timer);
		if (g->kernels[i].reheal)
			event_free(g->kernels[i].reheal);
	}
	/* Probes still in flight are freed by gw_free without calling back. */
	free(g);
}

void gd_set_observer(guardian *g, gd_change_fn fn, void *arg)
{
	g->change = fn;
	g->change_arg = arg;
}

void gd_set_healer(guardian *g, gd_heal_fn heal, void *arg)
{
	g->heal = heal;
	g->heal_arg = arg;
}

void gd_on_sup_change(guardian *g, sup_kernel *k, enum sup_state old)
{
	gd_kernel *gk = gd_kernel_of(g, k);
	if (!gk)
		return;
	if (k->state != SUP_READY) {
		gk->failures = 0; /* a new process starts with a clean slate */
		gk->storage_failed = false;
	}
	char reason[256];
	if (k->state == SUP_RESTARTING || k->state == SUP_FAILED ||
	    (old == SUP_READY && k->state == SUP_STARTING))
		snprintf(reason, sizeof reason, "process %s: %s", sup_state_name(k->state),
			 k->last_exit);
	else
		snprintf(reason, sizeof reason, "process %s", sup_state_name(k->state));
	update(gk, reason);
}

void gd_heal_started(guardian *g, sup_kernel *k)
{
	gd_kernel *gk = gd_kernel_of(g, k);
	if (gk)
		gk->healing = true;
}

void gd_heal_done(guardian *g, sup_kernel *k, unsigned retry_ms)
{
	gd_kernel *gk = gd_kernel_of(g, k);
	if (!gk)
		return;
	gk->healing = false;
	update(gk, "heal finished");
	if (!trust_first(g, NULL))
		heal_postponed(g);
	/* Left unhealthy (the state did not change, so update asked for no
	 * heal): healed again later, never left hung for good. */
	if (gk->state != GD_UNHEALTHY || gk->healing || !retry_ms || !gk->reheal)
		return;
	unsigned ms = retry_ms;
	if (retry_ms == GD_RETRY_BACKOFF) {
		ms = gk->reheal_backoff_ms ? gk->reheal_backoff_ms : GD_REHEAL_FIRST_MS;
		gk->reheal_backoff_ms = ms >= GD_REHEAL_MAX_MS / 2 ? GD_REHEAL_MAX_MS : ms * 2;
	}
	sdk_warn("guardian: %s: still unhealthy after its heal: healing it again in %u ms",
		 k->cfg->name, ms);
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
	evtimer_add(gk->reheal, &tv);
}

static void on_reheal(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	gd_kernel *gk = arg;
	guardian *g = gk->g;
	if (gk->state != GD_UNHEALTHY || gk->healing || !g->heal)
		return;
	if (trust_first(g, gk)) {
		gk->heal_postponed = true;
		return;
	}
	g->heal(gk->k, "still unhealthy after a heal that did not heal it", g->heal_arg);
}

json_t *gd_kernel_json(const gd_kernel *gk)
{
	const sup_kernel *k = gk->k;
	json_t *probe = gk->last_probe_ms
				? json_pack("{s:I, s:i, s:f, s:s*}", "at_ms", (json_int_t)gk->last_probe_ms,
					    "status", gk->last_status, "latency_ms", gk->last_latency_ms,
					    "error", gk->last_error[0] ? gk->last_error : NULL)
				: json_null();
	json_t *storage = gk->storage_failed
				  ? json_pack("{s:b, s:s}", "ok", 0, "error", gk->storage_error)
				  : json_null();
	json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:o, s:i, s:i, s:i, s:i, s:s, s:b, s:i, s:o, s:o}",
			 "name", k->cfg->name, "state", gd_state_name(gk->state), "process_state",
			 sup_state_name(k->state), "since_ms", (json_int_t)gk->since_ms,
			 "last_probe", probe, "consecutive_failures", (int)gk->failures, "probes",
			 (int)gk->probes, "probe_failures", (int)gk->probe_failures, "restarts",
			 (int)k->restarts, "last_exit", k->last_exit, "healing", gk->healing, "port",
			 k->port, "pid", k->pid > 0 ? json_integer(k->pid) : json_null(), "storage",
			 storage);
	if (j)
		sup_kernel_manager_json(k, j);
	return j;
}

json_t *gd_status_json(guardian *g)
{
	json_t *list = json_array();
	size_t healthy = 0;
	for (size_t i = 0; i < g->n; i++) {
		json_array_append_new(list, gd_kernel_json(&g->kernels[i]));
		healthy += g->kernels[i].state == GD_READY;
	}
	return json_pack("{s:s, s:i, s:i, s:o}", "status", healthy == g->n ? "ok" : "degraded",
			 "healthy", (int)healthy, "total", (int)g->n, "kernels", list);
}

json_t *gd_config_json(guardian *g)
{
	json_t *list = json_array();
	for (size_t i = 0; i < g->n; i++) {
		const grace_kernel_cfg *c = g->kernels[i].k->cfg;
		json_array_append_new(
			list, json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:{s:i, s:i, s:i, s:i, s:i}}",
					"name", c->name, "health_interval_ms", (int)c->health_interval_ms,
					"health_timeout_ms", (int)c->health_timeout_ms, "health_failures",
					(int)c->health_failures, "watchdog_ms", (int)c->watchdog_ms,
					"ready_timeout_ms", (int)c->ready_timeout_ms, "restart",
					"burst_max", (int)c->restart.burst_max, "burst_window_ms",
					(int)c->restart.burst_window_ms, "backoff_initial_ms",
					(int)c->restart.backoff_initial_ms, "backoff_max_ms",
					(int)c->restart.backoff_max_ms, "stable_ms",
					(int)c->restart.stable_ms));
	}
	return json_pack("{s:i, s:o}", "events_kept", GD_EVENTS_KEEP, "kernels", list);
}
