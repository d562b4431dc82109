/* :8000's TLS door (door.h). */
#include "serve/node/door.h"

#include "sdk/clock.h"
#include "sdk/log.h"
#include "serve/node/link.h"
#include "serve/node/nodes.h"
#include "serve/node/tls.h"

#include <event2/event.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DOOR_RELOAD_MS 1000

struct door {
	const grace_config *cfg;
	sdk_server *api;
	node_tls *tls;
	node_link *link;
	struct event *tick;
	char error[256]; /* the last reading's failure; "" when fine */
};

static void reload(door *d, bool first)
{
	sdk_err err = { "" };
	int rc = node_tls_reload(d->tls, false, &err);
	if (rc == 1 && !first)
		sdk_info("TLS door: certificate %s read again", node_tls_cert_path(d->tls));
	if (rc < 0 && strcmp(err.msg, d->error))
		sdk_warn("TLS door: %s%s", err.msg,
			 node_tls_expires_ms(d->tls) ? " (the last good certificate stays in use)"
						     : "");
	snprintf(d->error, sizeof d->error, "%s", rc < 0 ? err.msg : "");
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	reload(arg, false);
}

static void adopt(int fd, const struct sockaddr *peer, unsigned peer_len, void *arg)
{
	door *d = arg;
	sdk_server_adopt(d->api, fd, peer, peer_len);
}

door *door_new(struct event_base *base, const grace_config *cfg, sdk_server *api, sdk_err *err)
{
	err->msg[0] = '\0';
	if (!cfg->tls.address[0])
		return NULL;
	door *d = calloc(1, sizeof *d);
	if (!d) {
		sdk_fail(err, SDK_EIO, "out of memory");
		return NULL;
	}
	d->cfg = cfg;
	d->api = api;
	char cert[PATH_MAX + 32], key[PATH_MAX + 32];
	if (cfg->tls.cert_file[0]) {
		snprintf(cert, sizeof cert, "%s", cfg->tls.cert_file);
		snprintf(key, sizeof key, "%s", cfg->tls.key_file);
	} else { /* the node's own (config.c allows this only with nodes) */
		snprintf(cert, sizeof cert, "%s/%s/%s", cfg->data_dir, NODES_DIR, NODE_TLS_CERT);
		snprintf(key, sizeof key, "%s/%s/%s", cfg->data_dir, NODES_DIR, NODE_TLS_KEY);
	}
	node_link_opts lo = { .cfg = cfg };
	if (!(d->tls = node_tls_new(cert, key, NULL, cfg->trust.domain, err)) ||
	    !(d->link = node_link_new(base, &lo)) ||
	    !(d->tick = event_new(base, -1, EV_PERSIST, on_tick, d))) {
		if (!err->msg[0])
			sdk_fail(err, SDK_EIO, "out of memory");
		door_free(d);
		return NULL;
	}
	reload(d, true);
	if (node_link_front(d->link, d->tls, cfg->tls.address, adopt, d, err) < 0) {
		door_free(d);
		return NULL;
	}
	struct timeval tv = sdk_ms_tv(DOOR_RELOAD_MS);
	event_add(d->tick, &tv);
	sdk_info("TLS door: the API on %s (TLS 1.3)%s", cfg->tls.address,
		 node_tls_expires_ms(d->tls) ? "" : ", waiting for its certificate");
	return d;
}

void door_free(door *d)
{
	if (!d)
		return;
	if (d->tick)
		event_free(d->tick);
	node_link_free(d->link);
	node_tls_free(d->tls);
	free(d);
}

json_t *door_json(const door *d)
{
	int64_t exp = node_tls_expires_ms(d->tls);
	json_t *o = json_pack("{s:s, s:s, s:o, s:I}", "address", d->cfg->tls.address,
			      "certificate", node_tls_cert_path(d->tls), "certificate_expires_at",
			      exp ? json_integer(exp) : json_null(), "connections",
			      (json_int_t)node_link_get_stats(d->link).front);
	if (o && d->error[0])
		json_object_set_new(o, "certificate_error", json_string(d->error));
	return o;
}
