/* The node link: how the nodes of one Grace reach each other's kernels,
 * over mutual TLS with the nodes' X.509-SVIDs (tls.h), as a byte relay.
 *
 * On every node, each kernel that runs on ANOTHER node gets a relay: a
 * listener on this host's loopback at the port the kernel would have here.
 * What connects to it (the gateway, a kernel's call path, the guardian's
 * probe: all of them resolve the kernel by name to that port, as for a
 * local one) is carried over one TLS connection to the owning node's link
 * listener, which connects it to the kernel's own loopback port there. So
 * nothing above the link knows where a kernel runs, and the kernels' own
 * HTTP, SVIDs and limits apply end to end.
 *
 * On a link connection the client speaks first, one line:
 *
 *   GRACE-LINK/1 kernel NAME\n   -> "OK\n", then the bytes both ways
 *                                   or "ERR CODE message\n" and the end
 *   GRACE-LINK/1 control\n{JSON}\n -> {JSON}\n and the end (control.h)
 *
 * A relay whose owner cannot be reached answers its client a JSON 503
 * `node_unreachable` (Grace's error shape, with X-Request-Id) and closes. */
#ifndef GRACE_NODE_LINK_H
#define GRACE_NODE_LINK_H

#include "serve/layer.h"

#include "sdk/config.h"
#include "serve/node/tls.h"
#include "sdk/err.h"

#include <jansson.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <stddef.h>

struct event_base;
typedef struct node_link node_link;
typedef struct node_link_ctl node_link_ctl;

#define NODE_LINK_LINE_MAX 256         /* the first line */
#define NODE_LINK_CONTROL_MAX 65536    /* a control request or answer */
#define NODE_LINK_CONNS_MAX 4096       /* link connections open at once, both ways */
#define NODE_LINK_HANDSHAKE_MS 10000   /* TLS and the first line */

typedef struct node_link_opts {
	const grace_config *cfg;
	node_tls *tls; /* borrowed */
	/* Kernel NAME's loopback port on this node now, or a negative sdk
	 * status (SDK_ENOTFOUND: none here; SDK_EBUSY: not running). */
	int (*resolve)(const char *name, void *arg);
	/* A control request from node `peer`: answer it, now or later, with
	 * node_link_ctl_reply. `req` is borrowed for the call. */
	void (*control)(node_link_ctl *c, const char *peer, json_t *req, void *arg);
	void *arg;
} node_link_opts;

node_link *node_link_new(struct event_base *base, const node_link_opts *o);
/* Closes every listener and connection; control calls in flight are
 * told (NULL, "closing") first. */
void node_link_free(node_link *l);

/* Listens on this node's [node.NAME] address. 0, or -1 with why. */
int node_link_listen(node_link *l, sdk_err *err);

/* A relay for kernel `kernel`, run by node `node`, on 127.0.0.1:port.
 * 0, or -1 with why (the port is taken: try again later). */
int node_link_relay(node_link *l, const char *kernel, const char *node, int port, sdk_err *err);
bool node_link_relaying(const node_link *l, const char *kernel);

/* A control request to node `node`; cb gets its answer, or NULL and why
 * (unreachable, refused, timed out), once, from the loop. `req` is
 * borrowed. 0, or -1 when it cannot even start (cb is then not called). */
typedef void (*node_link_cb)(json_t *answer, const char *why, void *arg);
int node_link_call(node_link *l, const char *node, json_t *req, unsigned timeout_ms,
		   node_link_cb cb, void *arg);

/* The answer to a control request (stolen); the connection may be gone. */
void node_link_ctl_reply(node_link_ctl *c, json_t *answer);

/* :8000's TLS door (docs/deployment.md): TLS on `address` with `tls`'s
 * server certificate (no client certificate asked); each connection that
 * completes its handshake is given to `adopt` as one end of a socket pair
 * (with the client's address, for limits and logs) and carried both ways.
 * `tls` is borrowed. 0, or -1 with why. */
typedef void (*node_link_adopt_fn)(int fd, const struct sockaddr *peer, unsigned peer_len,
				   void *arg);
int node_link_front(node_link *l, node_tls *tls, const char *address, node_link_adopt_fn adopt,
		    void *arg, sdk_err *err);

/* Counts, for /health and the tests. */
typedef struct node_link_stats {
	unsigned conns;          /* open now */
	unsigned long accepted;  /* link connections from peers that passed the handshake */
	unsigned long refused;   /* from peers that did not (no or a bad certificate) */
	unsigned long relayed;   /* relay connections carried to an owner */
	unsigned long unreachable; /* relay connections answered 503 node_unreachable */
	unsigned long front;       /* TLS door connections handed to the API */
} node_link_stats;
node_link_stats node_link_get_stats(const node_link *l);

#endif
