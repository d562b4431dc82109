/* The gateway's prefixes on :8000: a kernel's own API under a prefix (what
 * follows the prefix is forwarded as the kernel's path), and every kernel's
 * routes under /kernels/NAME for admins. */
#include "serve/api/api.h"
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

static void on_gateway_kernel(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	sup_kernel *k = api_kernel_param(api, req);
	if (!k)
		return;
	char path[SDK_PATH_MAX + 1];
	path[0] = '/';
	sdk_strcpy(path + 1, sizeof path - 1, sdk_req_param(req, "*"));
	gw_forward(api->gw, k, req, path);
}

/* The kernel behind each prefix of the routes below. */
static const api_prefix prefixes[] = {
	{ "/bus", "message_bus" },
	{ "/kernels/:name", NULL },
	{ "/librarian", "librarian" },
	{ "/scheduler", "scheduler" },
	{ "/executor", "executor" },
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
	API_ADMIN(NULL, "/kernels/:name/*", on_gateway_kernel),
	API_USER(NULL, "/librarian/*", on_gateway_librarian),
	API_USER(NULL, "/scheduler/*", on_gateway_scheduler),
	API_ADMIN(NULL, "/executor/*", on_gateway_executor),
};
const api_family api_prefixes_family = { "prefixes", routes, sizeof routes / sizeof routes[0] };
