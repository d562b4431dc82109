#include "serve/api/api.h"
#include "sdk/clock.h"

#include "kernels/registry.h"
#include "sdk/metrics.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

/* Gateway prefixes: a kernel's own API under a prefix of :8000 (what
 * follows the prefix is forwarded as the kernel's path). */
static void forward_prefix(api_ctx *api, sdk_req *req, const char *kernel, const char *prefix)
{
	sup_kernel *k = sup_find(api->sup, kernel);
	if (!k) {
		sdk_reply_error(req, 404, "unknown_kernel", "no %s kernel is configured", kernel);
		return;
	}
	gw_forward(api->gw, k, req, sdk_req_path(req) + strlen(prefix));
}

static void on_gateway_librarian(sdk_req *req, void *ctx)
{
	forward_prefix(ctx, req, "librarian", "/librarian");
}

/* /bus/...: the message bus on a user's own session. */
static void on_gateway_bus(sdk_req *req, void *ctx)
{
	forward_prefix(ctx, req, "message_bus", "/bus");
}

/* /prometheus/...: the metrics kernel's Prometheus API, so Grafana can be
 * pointed at http://127.0.0.1:8000/prometheus with a bearer token; the
 * rules and alerts of that API are the alerts kernel's. */
static void on_gateway_prometheus(sdk_req *req, void *ctx)
{
	forward_prefix(ctx, req, "metrics", "/prometheus");
}

static void on_gateway_prometheus_alerts(sdk_req *req, void *ctx)
{
	forward_prefix(ctx, req, "alerts", "/prometheus");
}

/* /alertmanager/...: the alerts kernel's Alertmanager API (v2). */
static void on_gateway_alertmanager(sdk_req *req, void *ctx)
{
	forward_prefix(ctx, req, "alerts", "/alertmanager");
}

static void on_gateway_kernel(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	sup_kernel *k = api_kernel_param(api, req);
	if (!k)
		return;
	char path[SDK_PATH_MAX + 1];
	snprintf(path, sizeof path, "/%s", sdk_req_param(req, "*"));
	gw_forward(api->gw, k, req, path);
}

#define PUBLIC(m, p, h) SDK_ROUTE_ACCESS(m, p, h, ACCESS_PUBLIC)
#define USER(m, p, h) SDK_ROUTE_ACCESS(m, p, h, ACCESS_USER)
#define ADMIN(m, p, h) SDK_ROUTE_ACCESS(m, p, h, ACCESS_ADMIN)

const sdk_route api_routes[] = {
	PUBLIC("GET", "/health", api_health),
	PUBLIC("GET", "/metrics", api_metrics),
	PUBLIC("POST", "/auth/login", api_auth_login),
	PUBLIC("POST", "/auth/register", api_auth_register),
	USER("POST", "/auth/logout", api_auth_logout),
	USER("GET", "/auth/me", api_auth_me),
	ADMIN("POST", "/auth/users", api_auth_users_create),
	ADMIN("GET", "/auth/users", api_auth_users_list),
	ADMIN("DELETE", "/auth/users/:name", api_auth_users_delete),
	USER("POST", "/auth/users/:name/password", api_auth_users_password), /* self or admin */
	USER("GET", "/kernel-ports", api_kernel_ports_list),
	USER("GET", "/kernel-ports/health-check", api_kernel_ports_health_check),
	USER("GET", "/kernel-ports/:name", api_kernel_ports_get),
	ADMIN("POST", "/kernel-ports/:name/:action", api_kernel_ports_action),
	USER("GET", "/guardian/status", api_guardian_status),
	USER("GET", "/guardian/events", api_guardian_events),
	USER("GET", "/guardian/config", api_guardian_config),
	ADMIN("POST", "/network-healer/heal", api_healer_heal),
	ADMIN("POST", "/network-healer/diagnose", api_healer_diagnose),
	USER("GET", "/network-healer/playbooks", api_healer_playbooks),
	USER("GET", "/network-healer/incidents", api_healer_incidents),
	USER("GET", "/network-healer/incidents/:id", api_healer_incident),
	USER("GET", "/network-healer/stats", api_healer_stats),
	USER("POST", "/chat/sessions", api_chat_sessions_create),
	USER("GET", "/chat/sessions", api_chat_sessions_list),
	USER("GET", "/chat/sessions/:id", api_chat_session_get),
	USER("DELETE", "/chat/sessions/:id", api_chat_session_delete),
	USER("POST", "/chat/sessions/:id/messages", api_chat_messages_post),
	USER("POST", "/memory/tables", api_memory_tables_create),
	USER("GET", "/memory/tables", api_memory_tables_list),
	USER("GET", "/memory/tables/:table", api_memory_table_get),
	USER("DELETE", "/memory/tables/:table", api_memory_table_delete),
	USER("POST", "/memory/tables/:table/rows", api_memory_rows_insert),
	USER("GET", "/memory/tables/:table/rows", api_memory_rows_query),
	USER("GET", "/memory/tables/:table/rows/:id", api_memory_row_get),
	USER("PATCH", "/memory/tables/:table/rows/:id", api_memory_row_patch),
	USER("DELETE", "/memory/tables/:table/rows/:id", api_memory_row_delete),
	ADMIN("POST", "/memory/tables/:table/shares", api_memory_shares_add),
	ADMIN("GET", "/memory/tables/:table/shares", api_memory_shares_list),
	ADMIN("DELETE", "/memory/tables/:table/shares", api_memory_shares_remove),
	/* The bus for users: subscribe (SSE), publish (not under grace.), its
	 * subjects and consumer groups. Retention and statistics stay with
	 * admins, under /kernels/message_bus. */
	USER("GET", "/bus/subscribe", on_gateway_bus),
	USER("POST", "/bus/publish", on_gateway_bus),
	USER("GET", "/bus/subjects", on_gateway_bus),
	USER("GET", "/bus/groups", on_gateway_bus),
	USER("GET", "/bus/groups/:group", on_gateway_bus),
	USER("GET", "/bus/groups/:group/poll", on_gateway_bus),
	USER("POST", "/bus/groups/:group/ack", on_gateway_bus),
	ADMIN("DELETE", "/bus/groups/:group", on_gateway_bus),
	/* Metrics and alerts: reads for users, changes for admins. */
	USER("GET", "/prometheus/api/v1/rules", on_gateway_prometheus_alerts),
	USER("GET", "/prometheus/api/v1/alerts", on_gateway_prometheus_alerts),
	USER("GET", "/prometheus/api/v1/*", on_gateway_prometheus),
	USER("POST", "/prometheus/api/v1/*", on_gateway_prometheus), /* queries by form */
	USER("GET", "/prometheus/federate", on_gateway_prometheus),
	ADMIN("POST", "/prometheus/write", on_gateway_prometheus),
	USER("GET", "/alertmanager/api/v2/*", on_gateway_alertmanager),
	ADMIN("POST", "/alertmanager/api/v2/*", on_gateway_alertmanager),
	ADMIN("DELETE", "/alertmanager/api/v2/*", on_gateway_alertmanager),
	ADMIN(NULL, "/kernels/:name/*", on_gateway_kernel),
	USER(NULL, "/librarian/*", on_gateway_librarian),
};
const size_t api_n_routes = sizeof api_routes / sizeof api_routes[0];

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
	if (k->state == SUP_PORT_UNAVAILABLE)
		json_object_set_new(o, "port_holder",
				    json_pack("{s:o, s:s}", "pid",
					      k->holder.pid ? json_integer(k->holder.pid) : json_null(),
					      "cmdline", k->holder.cmdline));
	return o;
}

void api_metrics(sdk_req *req, void *ctx)
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
