#include "serve/api/api.h"
#include "sdk/clock.h"
#include "sdk/proc.h"

#include "kernels/registry.h"
#include "sdk/metrics.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
	&api_prefixes_family, &api_openapi_family, &api_backup_family,
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
	json_object_set_new(o, "uptime_s",
			    k->pid > 0 ? json_real((double)(sdk_wall_ms() - k->started_ms) / 1e3)
				       : json_null());
	json_object_set_new(o, "command", json_string(k->cfg->command[0] ? k->cfg->command : ""));
	json_object_set_new(o, "standby_pid", k->sb_pid > 0 ? json_integer(k->sb_pid) : json_null());
	uint64_t rss = 0, own = 0;
	json_object_set_new(o, "standby_memory",
			    k->sb_pid > 0 && proc_mem_bytes(k->sb_pid, &rss, &own) == 0
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
	if (api->chat)
		chat_metrics(api->chat, out);
	evbuffer_add_printf(out, "# HELP grace_kernel_up Whether a kernel is ready (1) or not (0).\n"
				 "# TYPE grace_kernel_up gauge\n");
	for (size_t i = 0; i < sup_count(api->sup); i++) {
		const sup_kernel *k = sup_at(api->sup, i);
		evbuffer_add_printf(out, "grace_kernel_up{kernel=\"%s\",state=\"%s\"} %d\n",
				    k->cfg->name, sup_state_name(k->state), k->state == SUP_READY);
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
}
