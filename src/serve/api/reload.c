/* POST /reload, GET /reload (admin): the configuration file read again
 * while Grace serves, as SIGHUP does (serve/reload/reload.h says what it
 * applies and in what order). `grace reload` calls them. */
#include "serve/api/api.h"

#include "serve/reload/reload.h"

#include <stdio.h>

static void on_reload(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	if (!api->rl) {
		sdk_reply_error(req, 503, "unavailable", "reloading could not start with Grace");
		return;
	}
	const char *user = sdk_req_user(req, NULL);
	char who[64];
	snprintf(who, sizeof who, "%s", user ? user : "the API");
	json_t *status = NULL;
	sdk_err err = { "" };
	int rc = rl_reload(api->rl, who, &status, &err);
	if (rc < 0) {
		sdk_reply_status(req, rc, &err);
		return;
	}
	sdk_reply_json(req, 200, status);
}

static void on_reload_status(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	if (!api->rl) {
		sdk_reply_error(req, 503, "unavailable", "reloading could not start with Grace");
		return;
	}
	sdk_reply_json(req, 200, rl_status(api->rl));
}

static const sdk_route routes[] = {
	API_ADMIN("POST", "/reload", on_reload),
	API_ADMIN("GET", "/reload", on_reload_status),
};
const api_family api_reload_family = { "reload", routes, sizeof routes / sizeof routes[0] };
