/* The gateway: forwards API requests to a kernel wherever it listens now,
 * over pooled keep-alive connections (sdk/upstream.h), rebuilding each
 * upstream request from parsed fields (never passing raw bytes on), and
 * streaming the answer back as it arrives: chunked bodies, Server-Sent
 * Events and long polls pass through with a bounded buffer per stream (a
 * slow client pauses the read from the kernel) and a client that leaves
 * cancels its upstream request at once. */
#ifndef GRACE_GATEWAY_GATEWAY_H
#define GRACE_GATEWAY_GATEWAY_H

#include "serve/layer.h"

#include "sdk/call.h"
#include "sdk/http.h"
#include "serve/supervisor/supervisor.h"

#include <stdint.h>

#define GW_POOL_MAX 64              /* connections per kernel */
#define GW_PENDING_MAX 1024         /* requests waiting on connections before 503 */
#define GW_ATTEMPT_TIMEOUT_MS 10000 /* for a kernel's answer to start: past it, 504 */
#define GW_DEADLINE_MS 15000        /* no retry starts after this */
#define GW_STREAM_IDLE_MS 60000     /* a streamed answer may pause this long (heartbeats) */
#define GW_LONG_POLL_MARGIN_MS 5000 /* beyond a long poll's own wait */
#define GW_STREAM_BUFFER_MAX (256u * 1024) /* queued for a slow client: then pause the kernel */

typedef struct gateway gateway;

/* `token` (borrowed) is the internal token every kernel call carries. */
gateway *gw_new(struct event_base *base, supervisor *sup, const char *token);
void gw_free(gateway *gw);
/* Traces each forward of a traced request as a client span, its
 * traceparent sent to the kernel (sdk/tracer.h; borrowed, may be NULL). */
struct sdk_tracer;
void gw_set_tracer(gateway *gw, struct sdk_tracer *t);
/* The key delegations are made under (auth's; borrowed, outlives the
 * gateway): forwards to the kernels that read for a user later carry one
 * (gateway.c `delegated`, serve/auth/delegation.h). NULL: none. */
void gw_set_delegation_key(gateway *gw, const unsigned char *key);

/* Forwards `req` to kernel `k` as `path` (the part after the API prefix,
 * starting with '/') with the original query string; answers `req` with the
 * kernel's answer or a 502/503/504 that says why. */
void gw_forward(gateway *gw, sup_kernel *k, sdk_req *req, const char *path);

/* The largest body kernel `k` takes on `method` `path` (its own path): its
 * max_body_bytes, or more where its route says so (sdk_route.max_body). */
size_t gw_body_max(const sup_kernel *k, const char *method, const char *path);

/* The main process's kernel call path: by kernel name, resolved through the
 * supervisor (for chat, the outbox, the healer). Borrowed. */
sdk_caller *gw_caller(gateway *gw);

/* One GET of `path` on 127.0.0.1:port on a fresh connection. `cb` gets the
 * status (0 when there was no answer), the body (borrowed) and the latency. */
typedef sdk_call_cb gw_probe_cb;
int gw_probe(gateway *gw, int port, const char *path, unsigned timeout_ms, gw_probe_cb cb,
	     void *arg);

#endif
