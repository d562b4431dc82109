/* Grace on several hosts (docs/deployment.md "Kernels on several hosts"):
 * what `grace serve` does as one node among others. It
 *
 * - keeps the node's X.509-SVID (tls.h): the files an operator put in
 *   DATA_DIR/node (grace node enroll) or, on the trust kernel's own node,
 *   what it asks of the trust kernel; renewed from the trust kernel at half
 *   their life and loaded for new connections without dropping any;
 * - listens on its [node.NAME] address (TLS only) and runs a relay for each
 *   kernel of another node (link.h);
 * - reads every peer's kernels every [grace] node_poll_ms and reports them
 *   to the supervisor (sup_kernel_remote_report); a peer that has not
 *   answered for node_down_ms is unreachable, and so are its kernels;
 * - serves its supervisor's control to the peers: the state of its
 *   kernels; start, stop, restart; and, on the trust kernel's node, vouches
 *   for a peer's main process to the trust kernel (docs/trust.md "Nodes").
 *
 * Nothing here exists without [node.*] sections. */
#ifndef GRACE_NODE_NODES_H
#define GRACE_NODE_NODES_H

#include "serve/layer.h"

#include "sdk/call.h"
#include "sdk/config.h"
#include "serve/supervisor/supervisor.h"
#include "sdk/err.h"

#include <jansson.h>

struct event_base;
typedef struct nodes nodes;

#define NODES_DIR "node" /* in DATA_DIR: the node's certificate, key and bundle */
#define NODES_CALL_MS 5000 /* a control call to a peer, at most */
#define NODES_VOUCH_EVERY_MS 60000 /* a vouch repeated: trust may have been restored */

typedef struct nodes_opts {
	struct event_base *base;
	const grace_config *cfg; /* borrowed, as the rest */
	supervisor *sup;
	sdk_caller *caller; /* the main process's: carries its attestation to trust */
	const char *main_hash; /* SHA-256 (hex) of this main process's attestation */
} nodes_opts;

/* NULL when no nodes are configured (err ""), or with why in err. */
nodes *nodes_new(const nodes_opts *o, sdk_err *err);
void nodes_free(nodes *n);
/* Listens, opens the relays and starts reading the peers. */
void nodes_start(nodes *n);

/* The internal token of every node of this Grace (kernels on one node
 * call kernels on another with it): DATA_DIR/node/internal.token, made on
 * the trust kernel's node (the first node without one) at its first start
 * and copied to the others with their certificate (grace node enroll).
 * Read into `out` (SDK_TOKEN_LEN + 1 bytes) and written where this node's
 * kernels read theirs. 0, or -1 with why in err. */
#define NODES_TOKEN_FILE "internal.token"
int nodes_token(const grace_config *cfg, char *out, sdk_err *err);

/* A sup_opts.remote_act (arg: the nodes). */
int nodes_remote_act(sup_kernel *k, const char *verb, void *arg);

/* {"self","nodes":[{"name","address","self","state","since_ms",
 * "last_error","certificate_expires_at"}],"link":{counts}} for /health. */
json_t *nodes_json(const nodes *n);

#endif
