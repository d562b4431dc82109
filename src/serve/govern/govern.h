/* The main process's side of governance (docs/governance.md): the gate,
 * which opens a change request in the governance kernel instead of
 * running a gated action ([governance] gate) and answers 202 with it, and
 * the executor, which runs approved actions exactly once: it asks the
 * governance kernel for due intents, keeps its own record of each intent's
 * idempotency key in grace.db (a key it has seen is never run again), and
 * reports each result back until the kernel has it. */
#ifndef GRACE_SERVE_GOVERN_H
#define GRACE_SERVE_GOVERN_H

#include "serve/layer.h"

#include "serve/api/api.h"

#include <jansson.h>
#include <stdbool.h>

/* The executor, started when the governance kernel is configured (else
 * NULL, and a gated action answers 503: gating fails closed). */
gv *gv_new(api_ctx *api, const char *token);
/* Ends calls in flight without answering them; the record stays. */
void gv_free(gv *g);

/* Called by a gated route before it acts: false when `action` is not
 * gated (the route goes on; params is freed), true when the request has
 * been taken: answered 202 with the change request (or an error) once the
 * governance kernel has it. `params` is stolen. A request may carry
 * X-Grace-Break-Glass: REASON (admins): the action then runs at once and
 * its review is mandatory. */
bool gv_gate(api_ctx *api, sdk_req *req, const char *action, json_t *params);

/* For the gateway's routes to kernels: the gated action a kernel route is
 * (key.rotate, key.delete, policy.set, bus.retention) with its params, or
 * NULL. */
const char *gv_kernel_action(const char *kernel, const char *method, const char *path,
			     json_t **params);
/* gv_gate for a request to `kernel`'s `path` (/kernels/NAME/...): its JSON
 * body, if any, goes into the params as "body". */
bool gv_gate_kernel(api_ctx *api, sdk_req *req, const char *kernel, const char *path);

#endif
