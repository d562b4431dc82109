#include "serve/api/api.h"
#include "serve/govern/govern.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void api_kernel_ports_list(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	json_t *list = json_array();
	for (size_t i = 0; i < sup_count(api->sup); i++)
		json_array_append_new(list, api_kernel_view(api, sup_at(api->sup, i)));
	sdk_reply_json(req, 200,
		       json_pack("{s:i, s:i, s:o}", "api_port", api->cfg->api_port + api->cfg->port_offset,
				 "port_offset", api->cfg->port_offset, "kernels", list));
}

static void api_kernel_ports_get(sdk_req *req, void *ctx)
{
	sup_kernel *k = api_kernel_param(ctx, req);
	if (k)
		sdk_reply_json(req, 200, api_kernel_view(ctx, k));
}

/* A health check in progress: answered when the last probe returns. */
struct health_check {
	sdk_req *req;
	json_t *results;
	unsigned pending;
	unsigned healthy, total;
};

struct probe_slot {
	struct health_check *hc;
	const sup_kernel *k;
};

static void health_check_finish(struct health_check *hc)
{
	sdk_reply_json(hc->req, 200,
		       json_pack("{s:s, s:i, s:i, s:o}", "status",
				 hc->healthy == hc->total ? "ok" : "degraded", "healthy",
				 (int)hc->healthy, "total", (int)hc->total, "kernels", hc->results));
	free(hc);
}

static void on_probe(int status, const char *body, size_t len, double latency_ms,
		     const char *error, void *arg)
{
	struct probe_slot *slot = arg;
	struct health_check *hc = slot->hc;
	json_t *r = json_pack("{s:b, s:i, s:f, s:s}", "ok", status == 200, "status", status,
			      "latency_ms", latency_ms, "state", sup_state_name(slot->k->state));
	json_t *answer = body ? json_loadb(body, len, 0, NULL) : NULL;
	json_object_set_new(r, "answer", answer ? answer : json_null());
	if (error)
		json_object_set_new(r, "error", json_string(error));
	json_object_set_new(hc->results, slot->k->cfg->name, r);
	hc->healthy += status == 200;
	free(slot);
	if (--hc->pending == 0)
		health_check_finish(hc);
}

/* Probes every kernel's /health at once; one slow kernel delays only its
 * own result, bounded by its health_timeout_ms. */
static void api_kernel_ports_health_check(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	struct health_check *hc = calloc(1, sizeof *hc);
	if (!hc) {
		sdk_reply_error(req, 503, "out_of_memory", "cannot probe now");
		return;
	}
	hc->req = req;
	hc->results = json_object();
	hc->pending = 1; /* held until every probe is sent */
	for (size_t i = 0; i < sup_count(api->sup); i++) {
		const sup_kernel *k = sup_at(api->sup, i);
		if (!k->cfg->enabled)
			continue;
		hc->total++;
		if (k->pid <= 0) {
			json_object_set_new(hc->results, k->cfg->name,
					    json_pack("{s:b, s:i, s:n, s:s, s:n, s:s}", "ok", 0, "status",
						      0, "latency_ms", "state", sup_state_name(k->state),
						      "answer", "error", "no process is running"));
			continue;
		}
		struct probe_slot *slot = malloc(sizeof *slot);
		if (!slot)
			continue;
		*slot = (struct probe_slot){ hc, k };
		hc->pending++;
		if (gw_probe(api->gw, k->port, "/health", k->cfg->health_timeout_ms, on_probe, slot) <
		    0) {
			hc->pending--;
			free(slot);
			json_object_set_new(hc->results, k->cfg->name,
					    json_pack("{s:b, s:s}", "ok", 0, "error", "cannot probe"));
		}
	}
	if (--hc->pending == 0)
		health_check_finish(hc);
}

static void api_kernel_ports_action(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	sup_kernel *k = api_kernel_param(api, req);
	if (!k)
		return;
	const char *action = sdk_req_param(req, "action");
	int rc;
	if (!strcmp(action, "start"))
		rc = sup_kernel_start(k);
	else if (!strcmp(action, "stop")) {
		if (gv_gate(api, req, "kernel.stop", json_pack("{s:s}", "kernel", k->cfg->name)))
			return;
		rc = sup_kernel_stop(k);
	}
	else if (!strcmp(action, "restart"))
		rc = sup_kernel_restart(k);
	else if (!strcmp(action, "reset-port")) {
		/* Through the healer: it stops, moves, starts and verifies. */
		hl_request hr = { .issue = -1, .action = "reset_port", .trigger = "reset-port" };
		api_heal_and_reply(api, req, k, &hr);
		return;
	} else {
		sdk_reply_error(req, 404, "unknown_action",
				"action must be start, stop, restart or reset-port, not '%s'", action);
		return;
	}
	if (rc == -EALREADY) {
		sdk_reply_error(req, 409, "no_change", "kernel %s is already %s", k->cfg->name,
				sup_state_name(k->state));
		return;
	}
	if (rc < 0) {
		sdk_reply_error(req, rc == -EADDRINUSE ? 409 : 503, "cannot", "%s %s: %s", action,
				k->cfg->name, k->last_exit[0] ? k->last_exit : strerror(-rc));
		return;
	}
	json_t *body = api_kernel_json(k);
	json_object_set_new(body, "action", json_string(action));
	sdk_reply_json(req, 202, body);
}

/* Kernels: state, ports, start, stop, restart */
static const sdk_route routes[] = {
	API_USER("GET", "/kernel-ports", api_kernel_ports_list),
	API_USER("GET", "/kernel-ports/health-check", api_kernel_ports_health_check),
	API_USER("GET", "/kernel-ports/:name", api_kernel_ports_get),
	API_ADMIN("POST", "/kernel-ports/:name/:action", api_kernel_ports_action),
};
const api_family api_kernel_ports_family = { "kernel_ports", routes, sizeof routes / sizeof routes[0] };
