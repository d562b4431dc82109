#include "serve/api/api.h"
#include "serve/api/trust_cache.h"
#include "sdk/clock.h"
#include "sdk/proc.h"

#include "kernels/registry.h"
#include "serve/api/decide.h"
#include "serve/healer/advise.h"
#include "serve/healer/learn.h"
#include "sdk/metrics.h"
#include "sdk/tracer.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

/* GET /metrics: every request's counts and latencies, the kernels'
 * states, the outbox's and chat's counters. */
static void api_metrics(sdk_req *req, void *ctx);

static const sdk_route metrics_routes[] = {
	API_PUBLIC("GET", "/metrics", api_metrics),
};
static const api_family api_metrics_family = { "metrics", metrics_routes,
					       sizeof metrics_routes / sizeof metrics_routes[0] };

/* Every family of :8000's routes, each registered by its own file. Order
 * only matters where patterns overlap (a literal segment before a
 * parameter), and those stay within a family. */
static const api_family *const families[] = {
	&api_health_family, &api_metrics_family, &api_auth_family,   &api_kernel_ports_family,
	&api_guardian_family, &api_healer_family, &api_chat_family,  &api_memory_family,
	&api_prefixes_family, &api_openapi_family, &api_tokens_family, &api_backup_family,
	&api_dashboard_family,
	&api_reload_family,
};

size_t api_family_count(void) { return sizeof families / sizeof families[0]; }
const api_family *api_family_at(size_t i) { return i < api_family_count() ? families[i] : NULL; }

sdk_route *api_routes_build(size_t *n)
{
	size_t total = 0;
	for (size_t i = 0; i < api_family_count(); i++)
		total += families[i]->n_routes;
	sdk_route *r = calloc(total, sizeof *r);
	if (!r)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < api_family_count(); i++) {
		memcpy(r + k, families[i]->routes, families[i]->n_routes * sizeof *r);
		k += families[i]->n_routes;
	}
	*n = total;
	return r;
}


sup_kernel *api_kernel_param(api_ctx *api, sdk_req *req)
{
	const char *name = sdk_req_param(req, "name");
	sup_kernel *k = name ? sup_find(api->sup, name) : NULL;
	if (!k)
		sdk_reply_error(req, 404, "unknown_kernel", "no kernel named '%s'", name ? name : "");
	return k;
}

json_t *api_kernel_json(const sup_kernel *k)
{
	const sdk_kernel_def *def = kernel_registry_find(k->cfg->name);
	json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:i, s:I, s:i, s:s, s:b}", "name", k->cfg->name,
			      "state", sup_state_name(k->state), "tier", k->cfg->tier, "port",
			      k->port, "configured_port", k->cfg->port, "since_ms",
			      (json_int_t)k->since_ms, "restarts", (int)k->restarts, "last_exit",
			      k->last_exit, "complete", def ? def->complete : 0);
	if (!o)
		return NULL;
	json_object_set_new(o, "pid", k->pid > 0 ? json_integer(k->pid) : json_null());
	/* Another node's kernel: its pid is there, its uptime is its node's to tell. */
	bool here = !sup_kernel_remote(k);
	json_object_set_new(o, "uptime_s",
			    k->pid > 0 && here ? json_real((double)(sdk_wall_ms() - k->started_ms) / 1e3)
				       : json_null());
	json_object_set_new(o, "command", json_string(k->cfg->command[0] ? k->cfg->command : ""));
	sup_kernel_manager_json(k, o);
	json_object_set_new(o, "standby_pid", k->sb_pid > 0 ? json_integer(k->sb_pid) : json_null());
	uint64_t rss = 0, own = 0;
	json_object_set_new(o, "standby_memory",
			    k->sb_pid > 0 && here && proc_mem_bytes(k->sb_pid, &rss, &own) == 0
				    ? json_pack("{s:I, s:I}", "rss_bytes", (json_int_t)rss,
						"own_bytes", (json_int_t)own)
				    : json_null());
	if (k->state == SUP_PORT_UNAVAILABLE)
		json_object_set_new(o, "port_holder",
				    json_pack("{s:o, s:s}", "pid",
					      k->holder.pid ? json_integer(k->holder.pid) : json_null(),
					      "cmdline", k->holder.cmdline));
	return o;
}

json_t *api_kernel_view(api_ctx *api, const sup_kernel *k)
{
	json_t *o = api_kernel_json(k);
	/* The trust kernel's score of it, as the main process last read it
	 * for policy (api/trust_cache.h): absent when none is fresh. */
	int pct = o ? tc_percent(api->trust, k->cfg->name, sdk_wall_ms()) : -1;
	if (pct >= 0)
		json_object_set_new(o, "trust_score", json_real(pct / 100.0));
	return o;
}

static void api_metrics(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	struct evbuffer *b = evbuffer_new();
	if (!b) {
		sdk_reply_error(req, 500, "internal", "out of memory");
		return;
	}
	sdk_server_render_metrics(api->server, b);
	sdk_reply_raw(req, 200, "text/plain; version=0.0.4; charset=utf-8", b);
	evbuffer_free(b);
}

void api_metrics_extra(struct evbuffer *out, void *ctx)
{
	api_ctx *api = ctx;
	ob_metrics(api->ob, out);
	api_decide_metrics(api, out);
	hl_learn_metrics(hl_learner(api->hl), out);
	hl_advise_metrics(hl_adviser(api->hl), out);
	if (api->chat)
		chat_metrics(api->chat, out);
	sdk_tracer_metrics(api->tracer, "grace", out);
	/* Up is 0 or 1; the state is a state set of its own (OpenMetrics'
	 * stateset: one series per state, 1 for the current one), so a change
	 * of state does not end one `up` series and begin another. */
	evbuffer_add_printf(out, "# HELP grace_kernel_up Whether a kernel is ready (1) or not (0).\n"
				 "# TYPE grace_kernel_up gauge\n");
	for (size_t i = 0; i < sup_count(api->sup); i++) {
		const sup_kernel *k = sup_at(api->sup, i);
		evbuffer_add_printf(out, "grace_kernel_up{kernel=\"%s\"} %d\n", k->cfg->name,
				    k->state == SUP_READY);
	}
	evbuffer_add_printf(out, "# HELP grace_kernel_state A kernel's supervisor state (1: the current one).\n"
				 "# TYPE grace_kernel_state gauge\n");
	for (size_t i = 0; i < sup_count(api->sup); i++) {
		const sup_kernel *k = sup_at(api->sup, i);
		for (int st = SUP_STARTING; st <= SUP_PORT_UNAVAILABLE; st++)
			evbuffer_add_printf(out, "grace_kernel_state{kernel=\"%s\",state=\"%s\"} %d\n",
					    k->cfg->name, sup_state_name((enum sup_state)st),
					    k->state == (enum sup_state)st);
	}
	evbuffer_add_printf(out, "# HELP grace_kernel_restarts_total Automatic restarts of a kernel.\n"
				 "# TYPE grace_kernel_restarts_total counter\n");
	for (size_t i = 0; i < sup_count(api->sup); i++) {
		const sup_kernel *k = sup_at(api->sup, i);
		evbuffer_add_printf(out, "grace_kernel_restarts_total{kernel=\"%s\"} %u\n",
				    k->cfg->name, k->restarts);
	}
	/* What the standbys cost, never silently (docs/supervisor.md). */
	uint64_t sb_rss[GRACE_KERNELS_MAX] = { 0 }, sb_own[GRACE_KERNELS_MAX] = { 0 };
	for (size_t i = 0; i < sup_count(api->sup) && i < GRACE_KERNELS_MAX; i++) {
		const sup_kernel *k = sup_at(api->sup, i);
		if (k->sb_pid > 0 && proc_mem_bytes(k->sb_pid, &sb_rss[i], &sb_own[i]) < 0)
			sb_rss[i] = sb_own[i] = 0;
	}
	evbuffer_add_printf(out, "# HELP grace_kernel_standby_rss_bytes Resident memory of a kernel's "
				 "waiting standby (0: none).\n"
				 "# TYPE grace_kernel_standby_rss_bytes gauge\n");
	for (size_t i = 0; i < sup_count(api->sup) && i < GRACE_KERNELS_MAX; i++)
		evbuffer_add_printf(out, "grace_kernel_standby_rss_bytes{kernel=\"%s\"} %llu\n",
				    sup_at(api->sup, i)->cfg->name, (unsigned long long)sb_rss[i]);
	evbuffer_add_printf(out, "# HELP grace_kernel_standby_own_bytes The part of a standby's "
				 "resident memory not shared with other processes' binary and "
				 "libraries.\n"
				 "# TYPE grace_kernel_standby_own_bytes gauge\n");
	for (size_t i = 0; i < sup_count(api->sup) && i < GRACE_KERNELS_MAX; i++)
		evbuffer_add_printf(out, "grace_kernel_standby_own_bytes{kernel=\"%s\"} %llu\n",
				    sup_at(api->sup, i)->cfg->name, (unsigned long long)sb_own[i]);
	evbuffer_add_printf(out,
			    "# HELP grace_kernel_watchdog_kills_total Kernels killed for a missed watchdog.\n"
			    "# TYPE grace_kernel_watchdog_kills_total counter\n");
	for (size_t i = 0; i < sup_count(api->sup); i++) {
		const sup_kernel *k = sup_at(api->sup, i);
		evbuffer_add_printf(out, "grace_kernel_watchdog_kills_total{kernel=\"%s\"} %u\n",
				    k->cfg->name, k->watchdog_kills);
	}
	/* The data directory's file system, for the "disk filling" alert
	 * (one statvfs: cheap enough for every scrape). */
	struct statvfs fs;
	if (statvfs(api->cfg->data_dir, &fs) == 0)
		evbuffer_add_printf(out,
				    "# HELP grace_data_dir_free_bytes Bytes free to Grace on the data directory's file system.\n"
				    "# TYPE grace_data_dir_free_bytes gauge\n"
				    "grace_data_dir_free_bytes{kernel=\"grace\"} %llu\n"
				    "# HELP grace_data_dir_size_bytes Size of the data directory's file system.\n"
				    "# TYPE grace_data_dir_size_bytes gauge\n"
				    "grace_data_dir_size_bytes{kernel=\"grace\"} %llu\n",
				    (unsigned long long)fs.f_bavail * fs.f_frsize,
				    (unsigned long long)fs.f_blocks * fs.f_frsize);
}
