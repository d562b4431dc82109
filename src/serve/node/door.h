/* :8000's TLS door ([grace] tls_address; docs/deployment.md "The API for
 * other hosts"): the API for clients on other hosts, over TLS 1.3 only.
 * Each connection is decrypted here and handed to the API server as one
 * from the client's address (its limits, lockouts and logs see the real
 * client), so every route, error and header is the API's own. The
 * certificate comes from [grace] tls_cert_file and tls_key_file, read
 * again when either changes (checked every second: new connections get
 * the new one, open ones keep theirs), or, with nodes and no files, is
 * the node's own X.509-SVID from the trust kernel. */
#ifndef GRACE_NODE_DOOR_H
#define GRACE_NODE_DOOR_H

#include "serve/layer.h"

#include "sdk/config.h"
#include "sdk/http.h"
#include "sdk/err.h"

#include <jansson.h>

struct event_base;
typedef struct door door;

/* NULL when no tls_address is configured (err ""), or with why. */
door *door_new(struct event_base *base, const grace_config *cfg, sdk_server *api, sdk_err *err);
void door_free(door *d);
/* {"address","certificate","certificate_expires_at","connections"} */
json_t *door_json(const door *d);

#endif
