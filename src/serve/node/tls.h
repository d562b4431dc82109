/* TLS contexts made from files: the node link's (mutual TLS 1.3 with the
 * node's X.509-SVID, and the check of the peer's SPIFFE ID) and :8000's
 * TLS door's (a server certificate, no client certificate asked). The
 * node's files live in DATA_DIR/node:
 *
 *   svid.pem    the node's certificate (spiffe://DOMAIN/node/NAME), then its chain
 *   key.pem     its private key (0600)
 *   bundle.pem  the trust domain's CA certificates: whom to believe
 *
 * Rotation without dropping connections: a reload makes a new context for
 * the connections made from then on; those open keep the one they were
 * made with (OpenSSL counts its references). */
#ifndef GRACE_NODE_TLS_H
#define GRACE_NODE_TLS_H

#include "serve/layer.h"

#include "serve/node/tls_dl.h"
#include "sdk/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NODE_TLS_CERT "svid.pem"
#define NODE_TLS_KEY "key.pem"
#define NODE_TLS_BUNDLE "bundle.pem"

typedef struct node_tls node_tls;

/* Nothing is read yet: node_tls_reload does. `bundle` NULL: a server
 * that asks no client for a certificate (the TLS door); else both ends
 * show one that chains to the bundle's CAs. NULL with why in err when the
 * libraries cannot be loaded. Paths and `domain` are copied. */
node_tls *node_tls_new(const char *cert, const char *key, const char *bundle, const char *domain,
		       sdk_err *err);
void node_tls_free(node_tls *t);

/* Reads the files again when any changed since the last reading (or
 * always with `force`). 1: a new context is in use; 0: nothing changed;
 * -1 with why in err: the files are missing or unusable, and the last
 * good context (if any) stays in use. */
int node_tls_reload(node_tls *t, bool force, sdk_err *err);

/* A new connection's SSL on the current context; NULL when there is none. */
SSL *node_tls_ssl(node_tls *t);
const node_tls_dl *node_tls_lib(const node_tls *t);
const char *node_tls_cert_path(const node_tls *t);

/* When the certificate in use expires (wall clock, ms); 0 when none. */
int64_t node_tls_expires_ms(const node_tls *t);

/* The node NAME of a SPIFFE ID spiffe://DOMAIN/node/NAME, the only form a
 * node's certificate may carry. -1 when `id` is anything else. Pure. */
int node_tls_node_of(const char *domain, const char *id, char *name, size_t len);

/* After the handshake: the peer's node name, from the only URI SAN of its
 * verified certificate. -1 with why in err. */
int node_tls_peer(const node_tls *t, SSL *ssl, char *name, size_t len, sdk_err *err);

#endif
