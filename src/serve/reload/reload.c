/* The rollout of a reload: reload.h. */
#include "serve/reload/reload.h"

#include "kernels/registry.h"
#include "sdk/clock.h"
#include "sdk/log.h"
#include "sdk/notify.h"
#include "serve/reload/plan.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Past a kernel's own ready and stop timeouts: it is not coming back. */
#define STEP_SLACK_MS 5000

enum rl_state { RL_IDLE, RL_ROLLING, RL_DONE, RL_HALTED };
static const char *const state_names[] = { "idle", "rolling", "done", "halted" };
static const char *const action_names[] = { "keep", "restart", "stop", "start" };

struct reloader {
	struct event_base *base;
	grace_config *cfg;   /* the running one; not ours */
	supervisor *sup;     /* not ours */
	grace_config *boot;  /* owned: as grace serve started, for "later" */
	rl_ini boot_ini;     /* owned: the file as it was at start */
	rl_ini applied_ini;  /* owned: the file as last applied */
	struct event *timer; /* owned: a step's deadline */
	/* the last reload */
	enum rl_state state;
	int64_t started_ms, finished_ms;
	char who[64];
	rl_plan plan;
	size_t queue[GRACE_KERNELS_MAX], n_queue, next; /* kernel indexes */
	bool left;          /* the current kernel has left READY (restart) */
	json_t *done;       /* owned: names finished */
	char error[256];
};

static void on_step_timeout(evutil_socket_t fd, short what, void *arg);

reloader *rl_new(struct event_base *base, grace_config *cfg, supervisor *sup)
{
	reloader *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->base = base;
	r->cfg = cfg;
	r->sup = sup;
	r->boot = malloc(sizeof *r->boot);
	r->done = json_array();
	r->timer = evtimer_new(base, on_step_timeout, r);
	if (!r->boot || !r->done || !r->timer || rl_ini_read(cfg->path, &r->boot_ini, NULL) < 0 ||
	    rl_ini_read(cfg->path, &r->applied_ini, NULL) < 0) {
		rl_free(r);
		return NULL;
	}
	memcpy(r->boot, cfg, sizeof *cfg);
	return r;
}

void rl_free(reloader *r)
{
	if (!r)
		return;
	if (r->timer)
		event_free(r->timer);
	rl_ini_free(&r->boot_ini);
	rl_ini_free(&r->applied_ini);
	json_decref(r->done);
	free(r->boot);
	free(r);
}

json_t *rl_status(const reloader *r)
{
	json_t *acts = json_object();
	for (size_t a = RL_RESTART; a <= RL_START; a++)
		json_object_set_new(acts, action_names[a], json_array());
	for (size_t i = 0; i < r->n_queue; i++) {
		size_t k = r->queue[i];
		json_array_append_new(json_object_get(acts, action_names[r->plan.act[k]]),
				      json_string(r->cfg->kernels[k].name));
	}
	json_t *later = json_array();
	for (size_t i = 0; i < r->plan.n_later; i++)
		json_array_append_new(later, json_string(r->plan.later[i]));
	const char *current = r->state == RL_ROLLING && r->next < r->n_queue
				      ? r->cfg->kernels[r->queue[r->next]].name
				      : NULL;
	json_t *o = json_pack("{s:s, s:O, s:b, s:o, s:I, s:o, s:O}", "state",
			      state_names[r->state], "kernels", acts, "log_level",
			      r->plan.log_level, "at_next_start", later, "more_at_next_start",
			      (json_int_t)r->plan.n_later_more, "current",
			      current ? json_string(current) : json_null(), "done", r->done);
	json_decref(acts);
	if (r->state != RL_IDLE) {
		json_object_set_new(o, "started_at_ms", json_integer(r->started_ms));
		json_object_set_new(o, "by", json_string(r->who));
	}
	if (r->state == RL_DONE || r->state == RL_HALTED)
		json_object_set_new(o, "finished_at_ms", json_integer(r->finished_ms));
	/* Not "error": a success's body never looks like Grace's error shape. */
	if (r->error[0])
		json_object_set_new(o, "reason", json_string(r->error));
	return o;
}

static void finish(reloader *r, enum rl_state st)
{
	r->state = st;
	r->finished_ms = sdk_wall_ms();
	evtimer_del(r->timer);
	if (st == RL_DONE)
		sdk_info("reload: done (%zu kernels acted on)", r->n_queue);
	else
		sdk_warn("reload: halted: %s", r->error);
	sdk_notify("READY=1");
}

/* Acts on the next kernel of the queue, skipping those with nothing to do. */
static void step(reloader *r)
{
	while (r->next < r->n_queue) {
		size_t i = r->queue[r->next];
		sup_kernel *k = sup_find(r->sup, r->cfg->kernels[i].name);
		enum rl_kernel_action a = r->plan.act[i];
		int rc = !k			? -ENOENT
			 : a == RL_RESTART ? sup_kernel_restart(k)
			 : a == RL_STOP	   ? sup_kernel_stop(k)
					   : sup_kernel_start(k);
		if (rc == -EALREADY) {
			json_array_append_new(r->done, json_string(r->cfg->kernels[i].name));
			r->next++;
			continue;
		}
		if (rc < 0) {
			snprintf(r->error, sizeof r->error, "%s %s: %s", action_names[a],
				 r->cfg->kernels[i].name, strerror(-rc));
			finish(r, RL_HALTED);
			return;
		}
		r->left = false;
		const grace_kernel_cfg *kc = &r->cfg->kernels[i];
		uint64_t ms = (uint64_t)kc->stop_timeout_ms + kc->ready_timeout_ms + STEP_SLACK_MS;
		struct timeval tv = sdk_ms_tv(ms);
		evtimer_add(r->timer, &tv);
		sdk_info("reload: %s %s", action_names[a], kc->name);
		return;
	}
	finish(r, RL_DONE);
}

static void on_step_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	reloader *r = arg;
	if (r->state != RL_ROLLING || r->next >= r->n_queue)
		return;
	snprintf(r->error, sizeof r->error, "%s did not come back in time: the rest left as they were",
		 r->cfg->kernels[r->queue[r->next]].name);
	finish(r, RL_HALTED);
}

void rl_on_change(reloader *r, const sup_change *c)
{
	if (!r || r->state != RL_ROLLING || r->next >= r->n_queue)
		return;
	size_t i = r->queue[r->next];
	if (strcmp(c->k->cfg->name, r->cfg->kernels[i].name))
		return;
	enum rl_kernel_action a = r->plan.act[i];
	if (c->to != SUP_READY)
		r->left = true;
	bool arrived = a == RL_STOP ? c->to == SUP_STOPPED
				    : c->to == SUP_READY && (a == RL_START || r->left);
	bool lost = c->to == SUP_FAILED || c->to == SUP_PORT_UNAVAILABLE ||
		    (a != RL_STOP && c->to == SUP_RESTARTING);
	if (lost) {
		snprintf(r->error, sizeof r->error,
			 "%s is %s after its %s: the rest left as they were (see grace status %s)",
			 c->k->cfg->name, sup_state_name(c->to), action_names[a], c->k->cfg->name);
		finish(r, RL_HALTED);
		return;
	}
	if (!arrived)
		return;
	evtimer_del(r->timer);
	json_array_append_new(r->done, json_string(c->k->cfg->name));
	r->next++;
	step(r);
}

/* The kernels' entries the plan acts on take their new settings (the port
 * stays: only a start moves it); kernels read the file themselves when
 * they start. */
static void apply_entries(reloader *r, const grace_config *next)
{
	for (size_t i = 0; i < r->cfg->n_kernels; i++) {
		int j = r->plan.new_index[i];
		if (r->plan.act[i] == RL_KEEP || j < 0)
			continue;
		grace_kernel_cfg *k = &r->cfg->kernels[i];
		int port = k->port;
		*k = next->kernels[j];
		k->port = port;
	}
}

static void apply_log_level(reloader *r, const grace_config *next)
{
	enum sdk_log_level lvl;
	if (sdk_log_level_parse(next->log_level, &lvl) < 0)
		return; /* config.c checked it */
	snprintf(r->cfg->log_level, sizeof r->cfg->log_level, "%s", next->log_level);
	sdk_log_init("grace", lvl);
}

int rl_reload(reloader *r, const char *who, json_t **status, sdk_err *err)
{
	if (r->state == RL_ROLLING)
		return sdk_fail(err, SDK_ECONFLICT,
				"a reload is under way (GET /reload shows it): wait for it");
	/* The new file, loaded as grace serve loaded the first. The data
	 * directory and port offset it runs with are given as at start: only
	 * a start moves them. */
	grace_config *next = malloc(sizeof *next);
	if (!next)
		return sdk_fail(err, SDK_EIO, "out of memory");
	char offset[16];
	sdk_err msg;
	snprintf(offset, sizeof offset, "%d", r->cfg->port_offset);
	grace_config_overrides ov = { r->cfg->path[0] ? r->cfg->path : NULL, r->cfg->data_dir,
				      offset };
	rl_ini ini;
	if (grace_config_read(next, kernel_registry_all(), kernel_registry_count(), &ov, &msg) <
		    0 ||
	    grace_config_check_authorizer(next, &msg) < 0 ||
	    rl_ini_read(r->cfg->path, &ini, &msg) < 0) {
		free(next);
		sdk_warn("reload by %s refused, nothing changed: %s", who, msg.msg);
		return sdk_fail(err, SDK_EINVAL, "%s (nothing changed)", msg.msg);
	}
	/* What to do: against what runs. What waits for a start: against
	 * what grace serve started with, so it stays listed until then. */
	rl_plan boot_plan;
	rl_plan_make(r->cfg, &r->applied_ini, next, &ini, &r->plan);
	rl_plan_make(r->boot, &r->boot_ini, next, &ini, &boot_plan);
	memcpy(r->plan.later, boot_plan.later, sizeof r->plan.later);
	r->plan.n_later = boot_plan.n_later;
	r->plan.n_later_more = boot_plan.n_later_more;

	apply_entries(r, next);
	if (r->plan.log_level)
		apply_log_level(r, next);
	rl_ini_free(&r->applied_ini);
	r->applied_ini = ini;
	free(next);

	/* Stops first (they free what the rest may want), then starts, then
	 * restarts, each in the configuration's order. */
	r->n_queue = r->next = 0;
	static const enum rl_kernel_action order[] = { RL_STOP, RL_START, RL_RESTART };
	for (size_t o = 0; o < sizeof order / sizeof *order; o++)
		for (size_t i = 0; i < r->cfg->n_kernels; i++)
			if (r->plan.act[i] == order[o])
				r->queue[r->n_queue++] = i;
	json_array_clear(r->done);
	r->error[0] = '\0';
	snprintf(r->who, sizeof r->who, "%s", who);
	r->started_ms = sdk_wall_ms();
	r->state = RL_ROLLING;
	sdk_info("reload by %s: %zu to restart, %zu to stop, %zu to start, log_level %s, %zu "
		 "settings wait for the next start",
		 who, r->plan.n_restart, r->plan.n_stop, r->plan.n_start,
		 r->plan.log_level ? "applied" : "unchanged", r->plan.n_later);
	for (size_t i = 0; i < r->plan.n_later; i++)
		sdk_info("reload: %s changed: applied at the next start of grace serve",
			 r->plan.later[i]);
	sdk_notify("RELOADING=1");
	step(r); /* may finish at once */
	*status = rl_status(r);
	return 0;
}
