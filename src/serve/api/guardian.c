#include "serve/api/api.h"

#include "serve/guardian/events.h"

static void api_guardian_status(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	sdk_reply_json(req, 200, gd_status_json(api->gd));
}

static void api_guardian_config(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	sdk_reply_json(req, 200, gd_config_json(api->gd));
}

static void api_guardian_events(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	unsigned long long since, limit;
	if (sdk_req_query_uint(req, "since", 0, (1ULL << 53), 0, &since) < 0 ||
	    sdk_req_query_uint(req, "limit", 1, GD_EVENTS_PAGE_MAX, 100, &limit) < 0)
		return;
	const char *name = sdk_req_query(req, "kernel");
	sup_kernel *k = NULL;
	if (name && !(k = sup_find(api->sup, name))) {
		sdk_reply_error(req, 404, "unknown_kernel", "no kernel named '%s'", name);
		return;
	}
	json_t *events = gd_events_list(gd_db(api->gd), (int64_t)since, k ? k->cfg->name : NULL,
					(unsigned)limit);
	if (!events) {
		sdk_reply_error(req, 500, "storage", "cannot read the events");
		return;
	}
	sdk_reply_json(req, 200, json_pack("{s:o}", "events", events));
}

/* The guardian: kernel health states and events */
static const sdk_route routes[] = {
	API_USER("GET", "/guardian/status", api_guardian_status),
	API_USER("GET", "/guardian/events", api_guardian_events),
	API_USER("GET", "/guardian/config", api_guardian_config),
};
const api_family api_guardian_family = { "guardian", routes, sizeof routes / sizeof routes[0] };
