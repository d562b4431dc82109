/* The main API on :8000: aggregate health, kernel control and the gateway's
 * prefixes. Handlers get the api_ctx as their ctx. */
#ifndef GRACE_API_API_H
#define GRACE_API_API_H

#include "gateway/gateway.h"
#include "sdk/http.h"
#include "supervisor/supervisor.h"

typedef struct api_ctx {
	const grace_config *cfg;
	struct event_base *base;
	supervisor *sup;
	gateway *gw;
	sdk_server *server;
} api_ctx;

extern const sdk_route api_routes[];
extern const size_t api_n_routes;

/* Process and kernel-state metrics added to the API's /metrics. */
void api_metrics_extra(struct evbuffer *out, void *ctx);

/* A kernel as the API reports it: a new reference. */
json_t *api_kernel_json(const sup_kernel *k);
/* Looks up :name; answers 404 and returns NULL when there is no such kernel. */
sup_kernel *api_kernel_param(api_ctx *api, sdk_req *req);

void api_health(sdk_req *req, void *ctx);
void api_metrics(sdk_req *req, void *ctx);
void api_kernel_ports_list(sdk_req *req, void *ctx);
void api_kernel_ports_get(sdk_req *req, void *ctx);
void api_kernel_ports_health_check(sdk_req *req, void *ctx);
void api_kernel_ports_action(sdk_req *req, void *ctx);

#endif
