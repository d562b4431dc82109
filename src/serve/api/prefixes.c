/* The gateway's prefixes on :8000: a kernel's own API under a prefix (what
 * follows the prefix is forwarded as the kernel's path), and every kernel's
 * routes under /kernels/NAME for admins. */
#include "serve/api/api.h"
#include "serve/govern/govern.h"
#include "sdk/str.h"

#include <stdio.h>
#include <string.h>

/* Forwards req to `kernel` with `prefix` taken off its path. */
void api_forward_prefix(api_ctx *api, sdk_req *req, const char *kernel, const char *prefix)
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
	api_forward_prefix(ctx, req, "librarian", "/librarian");
}

/* /bus/...: the message bus on a user's own session. */
static void on_gateway_bus(sdk_req *req, void *ctx)
{
	api_forward_prefix(ctx, req, "message_bus", "/bus");
}

/* /state-machine/...: statecharts; a user reaches only their own instances. */
static void on_gateway_state_machine(sdk_req *req, void *ctx)
{
	api_forward_prefix(ctx, req, "state_machine", "/state-machine");
}

/* /workflow/...: workflow definitions and runs; a user reaches only their
 * own (the kernel keeps them apart), admins everything. */
static void on_gateway_workflow(sdk_req *req, void *ctx)
{
	api_forward_prefix(ctx, req, "workflow", "/workflow");
}

/* /prometheus/...: the metrics kernel's Prometheus API, so Grafana or
 * promtool can be pointed at http://HOST:8000/prometheus with a bearer
 * token. */
static void on_gateway_prometheus(sdk_req *req, void *ctx)
{
	api_forward_prefix(ctx, req, "metrics", "/prometheus");
}

/* /alertmanager/...: the alerts kernel's Alertmanager API v2, so amtool
 * and Grafana can be pointed at http://HOST:8000/alertmanager. */
static void on_gateway_alertmanager(sdk_req *req, void *ctx)
{
	api_forward_prefix(ctx, req, "alerts", "/alertmanager");
}

/* /scheduler/...: users may check schedules and keep jobs of their own
 * (the kernel scopes them, and refuses executor targets to non-admins);
 * /executor/...: admins (issue 13: running jobs is admin-only). */
static void on_gateway_scheduler(sdk_req *req, void *ctx)
{
	api_forward_prefix(ctx, req, "scheduler", "/scheduler");
}

static void on_gateway_executor(sdk_req *req, void *ctx)
{
	api_forward_prefix(ctx, req, "executor", "/executor");
}

/* /coding-agent/...: admins (a task runs git and the tests of a
 * repository on this machine; docs/coding_agent.md). */
static void on_gateway_coding_agent(sdk_req *req, void *ctx)
{
	api_forward_prefix(ctx, req, "coding_agent", "/coding-agent");
}

/* /telemetry/...: any signed-in user may send OTLP (issue 16); reading
 * traces and logs back, which hold every user's requests, is for admins. */
static void on_gateway_telemetry(sdk_req *req, void *ctx)
{
	api_forward_prefix(ctx, req, "telemetry", "/telemetry");
}

/* /compliance/...: admins only, reading included: results name the weak
 * spots of this Grace (file modes, settings, who is admin), which is for
 * the people who may fix them. */
static void on_gateway_compliance(sdk_req *req, void *ctx)
{
	api_forward_prefix(ctx, req, "compliance", "/compliance");
}

static void on_gateway_kernel(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	sup_kernel *k = api_kernel_param(api, req);
	if (!k)
		return;
	char path[SDK_PATH_MAX + 1];
	path[0] = '/';
	sdk_strcpy(path + 1, sizeof path - 1, sdk_req_param(req, "*"));
	if (gv_gate_kernel(api, req, k->cfg->name, path))
		return;
	gw_forward(api->gw, k, req, path);
}

/* /trust/...: trust scores (admins; a user reads their own, which the
 * trust kernel checks). Its SVID routes stay under /kernels/trust. */
static void on_gateway_trust(sdk_req *req, void *ctx)
{
	api_forward_prefix(ctx, req, "trust", "/trust");
}

/* /governance/...: change requests; the kernel lets a user approve, deny
 * or veto only where they hold a role the request's rule names. */
static void on_gateway_governance(sdk_req *req, void *ctx)
{
	api_forward_prefix(ctx, req, "governance", "/governance");
}

/* The kernel behind each prefix of the routes below. */
static const api_prefix prefixes[] = {
	{ "/alertmanager", "alerts" },
	{ "/bus", "message_bus" },
	{ "/kernels/:name", NULL },
	{ "/librarian", "librarian" },
	{ "/state-machine", "state_machine" },
	{ "/prometheus", "metrics" },
	{ "/scheduler", "scheduler" },
	{ "/executor", "executor" },
	{ "/coding-agent", "coding_agent" },
	{ "/telemetry", "telemetry" },
	{ "/compliance", "compliance" },
	{ "/workflow", "workflow" },
	{ "/governance", "governance" },
	{ "/trust", "trust" },
};

size_t api_prefix_count(void) { return sizeof prefixes / sizeof prefixes[0]; }
const api_prefix *api_prefix_at(size_t i) { return i < api_prefix_count() ? &prefixes[i] : NULL; }

const api_prefix *api_prefix_of(const char *pattern)
{
	for (size_t i = 0; i < api_prefix_count(); i++) {
		size_t n = strlen(prefixes[i].path);
		if (!strncmp(pattern, prefixes[i].path, n) && pattern[n] == '/')
			return &prefixes[i];
	}
	return NULL;
}

static const sdk_route routes[] = {
	/* The bus for users: subscribe (SSE), publish (not under grace.), its
	 * subjects and consumer groups. Retention and statistics stay with
	 * admins, under /kernels/message_bus. */
	API_USER("GET", "/bus/subscribe", on_gateway_bus),
	API_USER("POST", "/bus/publish", on_gateway_bus),
	API_USER("GET", "/bus/subjects", on_gateway_bus),
	API_USER("GET", "/bus/groups", on_gateway_bus),
	API_USER("GET", "/bus/groups/:group", on_gateway_bus),
	API_USER("GET", "/bus/groups/:group/poll", on_gateway_bus),
	API_USER("POST", "/bus/groups/:group/ack", on_gateway_bus),
	API_ADMIN("DELETE", "/bus/groups/:group", on_gateway_bus),
	/* Alertmanager's API: users read, admins post alerts and silences. */
	API_USER("GET", "/alertmanager/api/v2/status", on_gateway_alertmanager),
	API_USER("GET", "/alertmanager/api/v2/receivers", on_gateway_alertmanager),
	API_USER("GET", "/alertmanager/api/v2/alerts", on_gateway_alertmanager),
	API_ADMIN("POST", "/alertmanager/api/v2/alerts", on_gateway_alertmanager),
	API_USER("GET", "/alertmanager/api/v2/alerts/groups", on_gateway_alertmanager),
	API_USER("GET", "/alertmanager/api/v2/silences", on_gateway_alertmanager),
	API_ADMIN("POST", "/alertmanager/api/v2/silences", on_gateway_alertmanager),
	API_USER("GET", "/alertmanager/api/v2/silence/:id", on_gateway_alertmanager),
	API_ADMIN("DELETE", "/alertmanager/api/v2/silence/:id", on_gateway_alertmanager),
	API_ADMIN(NULL, "/kernels/:name/*", on_gateway_kernel),
	API_ADMIN("GET", "/trust/workloads", on_gateway_trust),
	API_ADMIN("GET", "/trust/scores", on_gateway_trust),
	API_ADMIN("GET", "/trust/scores/kernel/:name", on_gateway_trust),
	API_USER("GET", "/trust/scores/user/:name", on_gateway_trust),
	API_USER(NULL, "/librarian/*", on_gateway_librarian),
	API_USER(NULL, "/state-machine/*", on_gateway_state_machine),
	API_USER(NULL, "/workflow/*", on_gateway_workflow),
	/* The Prometheus API for users (queries by GET or by form); writing
	 * samples stays with admins. */
	API_USER("GET", "/prometheus/api/v1/query", on_gateway_prometheus),
	API_USER("POST", "/prometheus/api/v1/query", on_gateway_prometheus),
	API_USER("GET", "/prometheus/api/v1/query_range", on_gateway_prometheus),
	API_USER("POST", "/prometheus/api/v1/query_range", on_gateway_prometheus),
	API_USER("GET", "/prometheus/api/v1/series", on_gateway_prometheus),
	API_USER("POST", "/prometheus/api/v1/series", on_gateway_prometheus),
	API_USER("GET", "/prometheus/api/v1/labels", on_gateway_prometheus),
	API_USER("POST", "/prometheus/api/v1/labels", on_gateway_prometheus),
	API_USER("GET", "/prometheus/api/v1/label/:name/values", on_gateway_prometheus),
	API_USER("GET", "/prometheus/api/v1/targets", on_gateway_prometheus),
	API_USER("GET", "/prometheus/api/v1/metadata", on_gateway_prometheus),
	API_USER("GET", "/prometheus/api/v1/status/buildinfo", on_gateway_prometheus),
	API_USER("GET", "/prometheus/api/v1/status/tsdb", on_gateway_prometheus),
	API_USER("GET", "/prometheus/api/v1/query_exemplars", on_gateway_prometheus),
	API_USER("POST", "/prometheus/api/v1/query_exemplars", on_gateway_prometheus),
	API_USER("GET", "/prometheus/api/v1/rules", on_gateway_prometheus),
	API_USER("GET", "/prometheus/api/v1/alerts", on_gateway_prometheus),
	API_USER("GET", "/prometheus/federate", on_gateway_prometheus),
	API_ADMIN("POST", "/prometheus/write", on_gateway_prometheus),
	API_USER(NULL, "/scheduler/*", on_gateway_scheduler),
	API_ADMIN(NULL, "/executor/*", on_gateway_executor),
	API_ADMIN(NULL, "/coding-agent/*", on_gateway_coding_agent),
	API_USER("POST", "/telemetry/v1/traces", on_gateway_telemetry),
	API_USER("POST", "/telemetry/v1/logs", on_gateway_telemetry),
	API_USER("POST", "/telemetry/v1/metrics", on_gateway_telemetry),
	API_ADMIN("GET", "/telemetry/traces", on_gateway_telemetry),
	API_ADMIN("GET", "/telemetry/traces/:id", on_gateway_telemetry),
	API_ADMIN("GET", "/telemetry/logs", on_gateway_telemetry),
	API_ADMIN(NULL, "/compliance/*", on_gateway_compliance),
	/* Users open requests and decide them; the intents are the main
	 * process's (the kernel refuses them to anyone else). */
	API_USER("GET", "/governance/actions", on_gateway_governance),
	API_USER("POST", "/governance/requests", on_gateway_governance),
	API_USER("GET", "/governance/requests", on_gateway_governance),
	API_USER("GET", "/governance/requests/:id", on_gateway_governance),
	API_USER("PATCH", "/governance/requests/:id", on_gateway_governance),
	API_USER("POST", "/governance/requests/:id/approve", on_gateway_governance),
	API_USER("POST", "/governance/requests/:id/deny", on_gateway_governance),
	API_USER("POST", "/governance/requests/:id/veto", on_gateway_governance),
	API_USER("POST", "/governance/requests/:id/withdraw", on_gateway_governance),
	API_USER("POST", "/governance/requests/:id/review", on_gateway_governance),
};
const api_family api_prefixes_family = { "prefixes", routes, sizeof routes / sizeof routes[0] };
