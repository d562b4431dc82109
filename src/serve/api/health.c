#include "serve/api/api.h"

#include <time.h>
#include <unistd.h>

/* Aggregate health: "ok" only when every enabled kernel is ready. The HTTP
 * status stays 200 either way; load balancers read "status". */
static void api_health(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	json_t *kernels = json_object();
	size_t ready = 0, total = 0;
	for (size_t i = 0; i < sup_count(api->sup); i++) {
		const sup_kernel *k = sup_at(api->sup, i);
		if (!k->cfg->enabled)
			continue;
		total++;
		ready += k->state == SUP_READY;
		json_object_set_new(kernels, k->cfg->name, api_kernel_view(api, k));
	}
	json_t *doc = json_pack("{s:s, s:I, s:f, s:s, s:i, s:i, s:o}", "status",
				ready == total ? "ok" : "degraded", "pid", (json_int_t)getpid(),
				"uptime_s", sdk_server_uptime(api->server), "version", GRACE_VERSION,
				"kernels_ready", (int)ready, "kernels_total", (int)total, "kernels",
				kernels);
	/* Several hosts: each node as this one sees it (serve/node/nodes.h). */
	if (doc && api->nodes)
		json_object_set_new(doc, "nodes", nodes_json(api->nodes));
	if (doc && api->door)
		json_object_set_new(doc, "tls", door_json(api->door));
	sdk_reply_json(req, 200, doc);
}

/* Overall health */
static const sdk_route routes[] = {
	API_PUBLIC("GET", "/health", api_health),
};
const api_family api_health_family = { "health", routes, sizeof routes / sizeof routes[0] };
