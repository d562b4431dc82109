/* The gateway: forwards API requests to a kernel's current port over a pool
 * of keep-alive connections per kernel, rebuilding each upstream request from
 * parsed fields (never passing raw bytes on). */
#ifndef GRACE_GATEWAY_GATEWAY_H
#define GRACE_GATEWAY_GATEWAY_H

#include "serve/layer.h"

#include "sdk/client.h"
#include "sdk/http.h"
#include "serve/supervisor/supervisor.h"

#include <stdint.h>

#define GW_POOL_MAX 32        /* connections per kernel */
#define GW_PENDING_MAX 1024   /* requests waiting on one kernel before 503 */
#define GW_ATTEMPT_TIMEOUT_MS 10000 /* one try: past it, 504 */
#define GW_DEADLINE_MS 15000        /* no retry starts after this */

typedef struct gateway gateway;

/* `token` (borrowed) is the internal token every kernel call carries. */
gateway *gw_new(struct event_base *base, supervisor *sup, const char *token);
void gw_free(gateway *gw);

/* Forwards `req` to kernel `k` as `path` (the part after the API prefix,
 * starting with '/') with the original query string; answers `req` with the
 * kernel's answer or a 502/503/504 that says why. */
void gw_forward(gateway *gw, sup_kernel *k, sdk_req *req, const char *path);

/* One GET of `path` on 127.0.0.1:port on a fresh connection. `cb` gets the
 * status (0 when there was no answer), the body (borrowed) and the latency. */
typedef sdk_client_cb gw_probe_cb;
int gw_probe(gateway *gw, int port, const char *path, unsigned timeout_ms, gw_probe_cb cb,
	     void *arg);

#endif
