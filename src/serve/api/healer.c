#include "serve/api/api.h"
#include "serve/govern/govern.h"

#include "serve/healer/incidents.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void on_incident(json_t *incident, void *arg)
{
	sdk_req *req = arg;
	sdk_reply_json(req, 200, json_incref(incident));
}

void api_heal_and_reply(api_ctx *api, sdk_req *req, sup_kernel *k, const hl_request *hr)
{
	int64_t running = 0;
	int rc = hl_heal(api->hl, k, hr, on_incident, req, &running);
	if (rc == -EBUSY) {
		sdk_reply_error(req, 409, "heal_in_progress",
				"incident %lld is already healing %s", (long long)running, k->cfg->name);
	} else if (rc == -EINVAL) {
		sdk_reply_error(req, 400, "unknown_action", "no playbook named '%s'",
				hr->action ? hr->action : "");
	} else if (rc < 0) {
		sdk_reply_error(req, 503, "cannot_heal", "cannot start a heal now");
	}
}

/* Reads {"component_name"} (and the optional fields of a heal); answers
 * 400/404 and returns NULL when they are wrong. */
static sup_kernel *component_of(api_ctx *api, sdk_req *req, json_t *body)
{
	json_t *name = json_object_get(body, "component_name");
	if (!json_is_string(name)) {
		sdk_reply_error(req, 400, "invalid", "component_name is a required string");
		return NULL;
	}
	sup_kernel *k = sup_find(api->sup, json_string_value(name));
	if (!k)
		sdk_reply_error(req, 404, "unknown_kernel", "no kernel named '%s'",
				json_string_value(name));
	return k;
}

static void api_healer_heal(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	json_t *body = sdk_req_json(req, true);
	if (!body)
		return;
	sup_kernel *k = component_of(api, req, body);
	if (!k)
		return;
	hl_request hr = { .issue = -1, .trigger = "api" };
	json_t *issue = json_object_get(body, "issue_type");
	json_t *action = json_object_get(body, "action");
	json_t *force = json_object_get(body, "force");
	if (issue && !json_is_null(issue)) {
		if (!json_is_string(issue) || (hr.issue = hl_issue_parse(json_string_value(issue))) < 0) {
			/* The list from the healer's own table, so it names every one. */
			char names[512] = "";
			for (int i = 0; i < HL_ISSUE_COUNT; i++)
				snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
					 i ? ", " : "", hl_issue_name((enum hl_issue)i));
			sdk_reply_error(req, 400, "invalid", "issue_type must be one of %s", names);
			return;
		}
	}
	if (action && !json_is_null(action)) {
		if (!json_is_string(action) || !hl_playbook_known(json_string_value(action))) {
			sdk_reply_error(req, 400, "invalid",
					"action must be a playbook from GET /network-healer/playbooks");
			return;
		}
		hr.action = json_string_value(action);
	}
	if (force && !json_is_boolean(force)) {
		sdk_reply_error(req, 400, "invalid", "force must be true or false");
		return;
	}
	hr.force = json_is_true(force);
	if (hr.force && hr.action && !strcmp(hr.action, "clear_port") &&
	    gv_gate(api, req, "port.clear_force", json_pack("{s:s}", "kernel", k->cfg->name)))
		return;
	api_heal_and_reply(api, req, k, &hr);
}

static void api_healer_diagnose(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	json_t *body = sdk_req_json(req, true);
	if (!body)
		return;
	sup_kernel *k = component_of(api, req, body);
	if (!k)
		return;
	hl_request hr = { .issue = -1, .action = "diagnose_network", .trigger = "diagnose" };
	api_heal_and_reply(api, req, k, &hr);
}

static void api_healer_playbooks(sdk_req *req, void *ctx)
{
	(void)ctx;
	sdk_reply_json(req, 200, hl_playbooks_json());
}

static void api_healer_incidents(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	unsigned long long before, limit;
	if (sdk_req_query_uint(req, "before", 1, (1ULL << 62), (1ULL << 62), &before) < 0 ||
	    sdk_req_query_uint(req, "limit", 1, HL_INCIDENTS_PAGE_MAX, 50, &limit) < 0)
		return;
	const char *name = sdk_req_query(req, "component");
	sup_kernel *k = NULL;
	if (name && !(k = sup_find(api->sup, name))) {
		sdk_reply_error(req, 404, "unknown_kernel", "no kernel named '%s'", name);
		return;
	}
	json_t *list = hl_incident_list(hl_db(api->hl), k ? k->cfg->name : NULL,
					sdk_req_query(req, "outcome"), (int64_t)before,
					(unsigned)limit);
	if (!list) {
		sdk_reply_error(req, 500, "storage", "cannot read the incidents");
		return;
	}
	sdk_reply_json(req, 200, json_pack("{s:o}", "incidents", list));
}

static void api_healer_incident(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	const char *s = sdk_req_param(req, "id");
	char *end;
	long long id = strtoll(s, &end, 10);
	if (!*s || *end || id <= 0) {
		sdk_reply_error(req, 400, "bad_id", "an incident id is a positive integer");
		return;
	}
	json_t *inc = hl_incident_get(hl_db(api->hl), id);
	if (!inc)
		sdk_reply_error(req, 404, "not_found", "no incident %lld", id);
	else
		sdk_reply_json(req, 200, inc);
}

static void api_healer_stats(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	json_t *stats = hl_incident_stats(hl_db(api->hl));
	if (!stats)
		sdk_reply_error(req, 500, "storage", "cannot read the incidents");
	else
		sdk_reply_json(req, 200, stats);
}

/* The healer: heals, diagnoses, playbooks, incidents */
static const sdk_route routes[] = {
	API_ADMIN("POST", "/network-healer/heal", api_healer_heal),
	API_ADMIN("POST", "/network-healer/diagnose", api_healer_diagnose),
	API_USER("GET", "/network-healer/playbooks", api_healer_playbooks),
	API_USER("GET", "/network-healer/incidents", api_healer_incidents),
	API_USER("GET", "/network-healer/incidents/:id", api_healer_incident),
	API_USER("GET", "/network-healer/stats", api_healer_stats),
};
const api_family api_healer_family = { "healer", routes, sizeof routes / sizeof routes[0] };
