/* The node link (link.h): relays to the kernels of other nodes, the
 * listener that carries peers' connections to this node's kernels, and
 * control calls both ways. Every connection is a `conn`: one TLS
 * bufferevent (the link side) and, for relayed bytes, one plain one (the
 * loopback side), in the state machine below. */
#include "serve/node/link.h"

#include "sdk/http.h"
#include "sdk/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LINK_PROTO "GRACE-LINK/1"
/* Bytes buffered one way before the sender is paused (back-pressure). */
#define PIPE_HIGH (256 * 1024)

enum conn_kind { K_SERVER, K_RELAY, K_CALL, K_FRONT };

enum conn_state {
	S_HANDSHAKE,   /* TLS handshake (and, for a relay or a call, the connect) */
	S_LINE,        /* server: waiting for the first line */
	S_CONTROL,     /* server: waiting for the control request's line */
	S_ANSWERING,   /* server: the control handler has the request */
	S_LOCAL,       /* server: connecting to the kernel's loopback port */
	S_WAIT_OK,     /* relay: "OK" or "ERR" from the owner */
	S_CALL_WAIT,   /* call: waiting for the answer's line */
	S_PIPE,        /* bytes both ways */
	S_FLUSH,       /* writing what is left, then closed */
};

typedef struct conn conn;
struct conn {
	node_link *l;
	enum conn_kind kind;
	enum conn_state state;
	struct bufferevent *tls;   /* the link side; NULL once closed */
	struct bufferevent *plain; /* loopback: the kernel's, or the relay's client */
	char peer[GRACE_NAME_MAX];   /* the node at the other end */
	char kernel[GRACE_NAME_MAX];
	node_link_ctl *ctl;        /* server: the request being answered */
	node_link_cb cb;           /* call: told once, then NULL */
	void *cb_arg;
	struct sockaddr_storage sa; /* the door: the client's address */
	socklen_t salen;
	conn *prev, *next;
};

struct node_link_ctl {
	conn *c; /* NULL once the connection is gone */
};

typedef struct node_addr {
	char name[GRACE_NAME_MAX];
	struct sockaddr_storage sa;
	socklen_t salen;
	bool resolved;
} node_addr;

typedef struct relay {
	node_link *l;
	char kernel[GRACE_NAME_MAX];
	char node[GRACE_NAME_MAX];
	int port;
	struct evconnlistener *lev;
} relay;

struct node_link {
	struct event_base *base;
	node_link_opts o;
	const node_tls_dl *dl;
	struct evconnlistener *lev; /* peers' connections */
	node_addr nodes[GRACE_NODES_MAX];
	relay relays[GRACE_KERNELS_MAX];
	size_t n_relays;
	conn *conns;
	node_link_stats stats;
	/* :8000's TLS door */
	struct evconnlistener *front_lev;
	node_tls *front_tls;
	node_link_adopt_fn adopt;
	void *adopt_arg;
};

/* ---- addresses ---- */

static int addr_parse(const char *hostport, struct sockaddr_storage *sa, socklen_t *salen,
		      bool passive, sdk_err *err)
{
	char host[GRACE_NODE_ADDR_MAX];
	snprintf(host, sizeof host, "%s", hostport);
	char *colon = strrchr(host, ':');
	if (!colon) {
		return sdk_fail(err, SDK_EINVAL, "%s: expected HOST:PORT", hostport);
	}
	*colon = '\0';
	char *h = host;
	size_t hl = strlen(h);
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') { /* [v6]:port */
		h[hl - 1] = '\0';
		h++;
	}
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0) };
	struct addrinfo *res = NULL;
	/* Once, when grace serve starts (getaddrinfo blocks): a node's
	 * address is an IP or a name that does not move while it runs. */
	int rc = getaddrinfo(h, colon + 1, &hints, &res);
	if (rc != 0 || !res) {
		return sdk_fail(err, SDK_EINVAL, "%s: %s", hostport, gai_strerror(rc));
	}
	memcpy(sa, res->ai_addr, res->ai_addrlen);
	*salen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static node_addr *node_of(node_link *l, const char *name, sdk_err *err)
{
	const grace_node_cfg *n = grace_config_node(l->o.cfg, name);
	if (!n) {
		sdk_fail(err, SDK_ENOTFOUND, "no node %s", name);
		return NULL;
	}
	node_addr *a = &l->nodes[n - l->o.cfg->nodes.at];
	if (!a->resolved) {
		if (addr_parse(n->address, &a->sa, &a->salen, false, err) < 0)
			return NULL;
		snprintf(a->name, sizeof a->name, "%s", name);
		a->resolved = true;
	}
	return a;
}

/* ---- connections ---- */

static conn *conn_new(node_link *l, enum conn_kind kind)
{
	if (l->stats.conns >= NODE_LINK_CONNS_MAX)
		return NULL;
	conn *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->l = l;
	c->kind = kind;
	c->next = l->conns;
	if (l->conns)
		l->conns->prev = c;
	l->conns = c;
	l->stats.conns++;
	return c;
}

static void call_tell(conn *c, json_t *answer, const char *why)
{
	node_link_cb cb = c->cb;
	c->cb = NULL;
	if (cb)
		cb(answer, why, c->cb_arg);
}

static void conn_free(conn *c)
{
	node_link *l = c->l;
	if (c->tls)
		bufferevent_free(c->tls); /* and its SSL and socket */
	if (c->plain)
		bufferevent_free(c->plain);
	if (c->ctl)
		c->ctl->c = NULL;
	if (c->prev)
		c->prev->next = c->next;
	else
		l->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	l->stats.conns--;
	free(c);
}

/* A call or a relay that ended before its answer tells why. */
static void conn_fail(conn *c, const char *why);

static void on_flushed(struct bufferevent *bev, void *arg)
{
	(void)bev;
	conn_free(arg);
}

static void on_flush_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev, (void)what;
	conn_free(arg);
}

/* Writes what is left on `bev` (the other side is dropped), then frees. */
static void conn_flush_close(conn *c, struct bufferevent *bev)
{
	struct bufferevent **other = bev == c->tls ? &c->plain : &c->tls;
	if (*other) {
		bufferevent_free(*other);
		*other = NULL;
	}
	c->state = S_FLUSH;
	bufferevent_disable(bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
		conn_free(c);
		return;
	}
	bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
	bufferevent_setcb(bev, NULL, on_flushed, on_flush_event, c);
	struct timeval tv = { NODE_LINK_HANDSHAKE_MS / 1000, 0 };
	bufferevent_set_timeouts(bev, NULL, &tv);
	bufferevent_enable(bev, EV_WRITE);
}

/* The relay's client gets Grace's error shape, then the end. */
static void relay_answer_503(conn *c, const char *code, const char *message)
{
	node_link *l = c->l;
	if (!strcmp(code, "node_unreachable"))
		l->stats.unreachable++;
	char rid[33];
	sdk_request_id_new(rid);
	json_t *body = json_pack("{s:{s:s,s:s,s:s}}", "error", "code", code, "message", message,
				 "request_id", rid);
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (text && c->plain) {
		evbuffer_add_printf(bufferevent_get_output(c->plain),
				    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
				    "X-Request-Id: %s\r\nRetry-After: 1\r\nConnection: close\r\n"
				    "Content-Length: %zu\r\n\r\n%s",
				    rid, strlen(text), text);
	}
	free(text);
	if (c->plain)
		conn_flush_close(c, c->plain);
	else
		conn_free(c);
}

static void conn_fail(conn *c, const char *why)
{
	if (c->kind == K_CALL) {
		call_tell(c, NULL, why);
		conn_free(c);
	} else if (c->kind == K_RELAY && c->state != S_PIPE) {
		char msg[320];
		snprintf(msg, sizeof msg, "kernel %s runs on node %s, which cannot be reached: %s",
			 c->kernel, c->peer, why);
		relay_answer_503(c, "node_unreachable", msg);
	} else {
		conn_free(c);
	}
}

/* ---- bytes both ways ---- */

static void pipe_read(struct bufferevent *bev, void *arg);
static void pipe_event(struct bufferevent *bev, short what, void *arg);

static void pipe_drained(struct bufferevent *bev, void *arg)
{
	conn *c = arg;
	struct bufferevent *other = bev == c->tls ? c->plain : c->tls;
	/* Below the low mark again: the paused side may send. */
	bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
	if (other)
		bufferevent_enable(other, EV_READ);
}

static void pipe_read(struct bufferevent *bev, void *arg)
{
	conn *c = arg;
	struct bufferevent *other = bev == c->tls ? c->plain : c->tls;
	if (!other) {
		evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
		return;
	}
	struct evbuffer *out = bufferevent_get_output(other);
	evbuffer_add_buffer(out, bufferevent_get_input(bev));
	if (evbuffer_get_length(out) >= PIPE_HIGH) {
		bufferevent_disable(bev, EV_READ);
		bufferevent_setwatermark(other, EV_WRITE, PIPE_HIGH / 2, PIPE_HIGH);
	}
}

static void pipe_event(struct bufferevent *bev, short what, void *arg)
{
	conn *c = arg;
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)))
		return;
	struct bufferevent *other = bev == c->tls ? c->plain : c->tls;
	if (other) {
		/* What this side sent before it ended still goes through. */
		pipe_read(bev, c);
		if (bev == c->tls)
			c->tls = NULL;
		else
			c->plain = NULL;
		bufferevent_free(bev);
		conn_flush_close(c, other);
		return;
	}
	conn_free(c);
}

static void pipe_start(conn *c)
{
	c->state = S_PIPE;
	bufferevent_set_timeouts(c->tls, NULL, NULL);
	bufferevent_setcb(c->tls, pipe_read, pipe_drained, pipe_event, c);
	bufferevent_setcb(c->plain, pipe_read, pipe_drained, pipe_event, c);
	bufferevent_enable(c->tls, EV_READ | EV_WRITE);
	bufferevent_enable(c->plain, EV_READ | EV_WRITE);
	/* Bytes that came with the first line, or while waiting for "OK". */
	if (evbuffer_get_length(bufferevent_get_input(c->tls)))
		pipe_read(c->tls, c);
	if (evbuffer_get_length(bufferevent_get_input(c->plain)))
		pipe_read(c->plain, c);
}

/* ---- the TLS side before the pipe: handshake and lines ---- */

static void tls_read(struct bufferevent *bev, void *arg);
static void tls_event(struct bufferevent *bev, short what, void *arg);

static void tls_why(conn *c, short what, char *why, size_t len)
{
	unsigned long e = c->tls ? c->l->dl->bev_ssl_get_error(c->tls) : 0;
	if (e) {
		char buf[160];
		c->l->dl->err_error_string_n(e, buf, sizeof buf);
		snprintf(why, len, "TLS: %s", buf);
	} else if (what & BEV_EVENT_TIMEOUT) {
		snprintf(why, len, "timed out");
	} else if (what & BEV_EVENT_EOF) {
		snprintf(why, len, "closed by the peer");
	} else {
		int err = EVUTIL_SOCKET_ERROR();
		snprintf(why, len, "%s", err ? strerror(err) : "connection failed");
	}
}

static void front_ready(conn *c);

static bool handshake_done(conn *c)
{
	node_link *l = c->l;
	if (c->kind == K_FRONT) {
		front_ready(c);
		return false; /* nothing more for tls_event to do */
	}
	char name[GRACE_NAME_MAX] = "";
	sdk_err why = { "" };
	SSL *ssl = l->dl->bev_ssl_get_ssl(c->tls);
	if (node_tls_peer(l->o.tls, ssl, name, sizeof name, &why) < 0 ||
	    !grace_config_node(l->o.cfg, name)) {
		if (c->kind == K_SERVER)
			l->stats.refused++;
		if (!why.msg[0] || grace_config_node(l->o.cfg, name) == NULL)
			sdk_fail(&why, SDK_EDENIED, "node %s is not in the configuration", name);
		sdk_warn("node link: %s connection refused: %s",
			 c->kind == K_SERVER ? "a peer's" : c->peer, why.msg);
		conn_fail(c, why.msg);
		return false;
	}
	if (c->kind != K_SERVER && strcmp(name, c->peer)) {
		sdk_fail(&why, SDK_EDENIED, "answered by node %s, not %s", name, c->peer);
		sdk_warn("node link: %s", why.msg);
		conn_fail(c, why.msg);
		return false;
	}
	if (c->kind == K_SERVER) {
		memcpy(c->peer, name, sizeof c->peer);
		l->stats.accepted++;
	}
	return true;
}

static void local_event(struct bufferevent *bev, short what, void *arg);

static void server_line(conn *c, const char *line)
{
	node_link *l = c->l;
	static const char kernel[] = LINK_PROTO " kernel ";
	if (!strcmp(line, LINK_PROTO " control")) {
		c->state = S_CONTROL;
		return;
	}
	if (strncmp(line, kernel, sizeof kernel - 1)) {
		evbuffer_add_printf(bufferevent_get_output(c->tls), "ERR invalid expected %s\n",
				    LINK_PROTO);
		conn_flush_close(c, c->tls);
		return;
	}
	snprintf(c->kernel, sizeof c->kernel, "%s", line + sizeof kernel - 1);
	const grace_kernel_cfg *k = grace_config_kernel(l->o.cfg, c->kernel);
	int port = k && grace_kernel_local(l->o.cfg, k) ? l->o.resolve(k->name, l->o.arg) : -1;
	if (port <= 0) {
		evbuffer_add_printf(bufferevent_get_output(c->tls), "ERR %s kernel %s %s\n",
				    k ? "unavailable" : "not_found", c->kernel,
				    !k ? "is not configured"
				    : !grace_kernel_local(l->o.cfg, k) ? "does not run on this node"
								       : "is not running");
		conn_flush_close(c, c->tls);
		return;
	}
	c->state = S_LOCAL;
	bufferevent_disable(c->tls, EV_READ);
	c->plain = bufferevent_socket_new(l->base, -1, BEV_OPT_CLOSE_ON_FREE);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (!c->plain) {
		conn_free(c);
		return;
	}
	bufferevent_setcb(c->plain, NULL, NULL, local_event, c);
	if (bufferevent_socket_connect(c->plain, (struct sockaddr *)&sin, sizeof sin) < 0) {
		bufferevent_free(c->plain);
		c->plain = NULL;
		evbuffer_add_printf(bufferevent_get_output(c->tls),
				    "ERR unavailable kernel %s does not accept\n", c->kernel);
		conn_flush_close(c, c->tls);
	}
}

static void local_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	conn *c = arg;
	if (what & BEV_EVENT_CONNECTED) {
		evbuffer_add(bufferevent_get_output(c->tls), "OK\n", 3);
		pipe_start(c);
		return;
	}
	bufferevent_free(c->plain);
	c->plain = NULL;
	evbuffer_add_printf(bufferevent_get_output(c->tls),
			    "ERR unavailable kernel %s does not accept\n", c->kernel);
	conn_flush_close(c, c->tls);
}

static void server_control(conn *c, const char *line)
{
	node_link *l = c->l;
	json_error_t je;
	json_t *req = json_loads(line, 0, &je);
	if (!json_is_object(req)) {
		json_decref(req);
		evbuffer_add_printf(bufferevent_get_output(c->tls),
				    "{\"error\":{\"code\":\"invalid\",\"message\":\"a JSON object\"}}\n");
		conn_flush_close(c, c->tls);
		return;
	}
	node_link_ctl *ctl = calloc(1, sizeof *ctl);
	if (!ctl) {
		json_decref(req);
		conn_free(c);
		return;
	}
	ctl->c = c;
	c->ctl = ctl;
	c->state = S_ANSWERING;
	bufferevent_disable(c->tls, EV_READ);
	l->o.control(ctl, c->peer, req, l->o.arg);
	json_decref(req);
}

void node_link_ctl_reply(node_link_ctl *ctl, json_t *answer)
{
	conn *c = ctl->c;
	free(ctl);
	if (!c) {
		json_decref(answer);
		return;
	}
	c->ctl = NULL;
	char *text = answer ? json_dumps(answer, JSON_COMPACT) : NULL;
	json_decref(answer);
	if (text)
		evbuffer_add_printf(bufferevent_get_output(c->tls), "%s\n", text);
	free(text);
	conn_flush_close(c, c->tls);
}

static void tls_read(struct bufferevent *bev, void *arg)
{
	conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	while (c->state == S_LINE || c->state == S_CONTROL || c->state == S_WAIT_OK ||
	       c->state == S_CALL_WAIT) {
		size_t max = c->state == S_LINE || c->state == S_WAIT_OK ? NODE_LINK_LINE_MAX
									   : NODE_LINK_CONTROL_MAX;
		size_t n;
		char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF);
		if (!line) {
			if (evbuffer_get_length(in) > max)
				conn_fail(c, "line too long");
			return;
		}
		if (n > max) {
			free(line);
			conn_fail(c, "line too long");
			return;
		}
		enum conn_state st = c->state;
		if (st == S_LINE) {
			server_line(c, line);
		} else if (st == S_CONTROL) {
			server_control(c, line);
		} else if (st == S_WAIT_OK) {
			if (!strcmp(line, "OK")) {
				c->l->stats.relayed++;
				pipe_start(c);
			} else {
				/* "ERR CODE message": the owner is up, the kernel is not. */
				char msg[320];
				const char *m = strchr(line + (n > 4 ? 4 : n), ' ');
				snprintf(msg, sizeof msg, "kernel %s on node %s: %s", c->kernel, c->peer,
					 m ? m + 1 : line);
				relay_answer_503(c, "unavailable", msg);
			}
		} else {
			json_error_t je;
			json_t *answer = json_loads(line, 0, &je);
			call_tell(c, answer, answer ? NULL : "the answer is not JSON");
			json_decref(answer);
			conn_free(c);
		}
		free(line);
		/* The handlers above may have freed c: nothing more is read
		 * unless it went on to another line-reading state. */
		if (st == S_LINE && c->state == S_CONTROL)
			continue;
		return;
	}
}

static void tls_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	conn *c = arg;
	if (what & BEV_EVENT_CONNECTED) {
		if (!handshake_done(c))
			return;
		if (c->kind == K_SERVER) {
			c->state = S_LINE;
		} else {
			c->state = c->kind == K_RELAY ? S_WAIT_OK : S_CALL_WAIT;
		}
		bufferevent_enable(c->tls, EV_READ | EV_WRITE);
		return;
	}
	char why[200];
	tls_why(c, what, why, sizeof why);
	if ((c->kind == K_SERVER || c->kind == K_FRONT) && c->state == S_HANDSHAKE) {
		/* No certificate, one of another domain, or not TLS at all. */
		c->l->stats.refused++;
		sdk_debug("node link: a connection failed its handshake: %s", why);
	}
	conn_fail(c, why);
}

/* c's TLS side on `fd` (-1: to be connected), made with `tls`'s context:
 * dirty shutdowns allowed (a peer's close is the end either way), the
 * handshake bounded by ms, callbacks the line reader's. 0, or -1 with
 * nothing made (fd untouched). */
static int tls_side(conn *c, node_tls *tls, evutil_socket_t fd, enum bufferevent_ssl_state st,
		    unsigned ms)
{
	node_link *l = c->l;
	SSL *ssl = node_tls_ssl(tls);
	if (!ssl)
		return -1;
	c->tls = l->dl->bev_ssl_socket_new(l->base, fd, ssl, st, BEV_OPT_CLOSE_ON_FREE);
	if (!c->tls) {
		l->dl->ssl_free(ssl);
		return -1;
	}
	l->dl->bev_ssl_allow_dirty_shutdown(c->tls, 1);
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	bufferevent_set_timeouts(c->tls, &tv, &tv);
	bufferevent_setcb(c->tls, tls_read, NULL, tls_event, c);
	return 0;
}

/* ---- the server: peers' connections ---- */

static void on_peer_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
			   int salen, void *arg)
{
	(void)lev, (void)sa, (void)salen;
	node_link *l = arg;
	conn *c = conn_new(l, K_SERVER);
	if (!c || tls_side(c, l->o.tls, fd, BUFFEREVENT_SSL_ACCEPTING, NODE_LINK_HANDSHAKE_MS) < 0) {
		if (c)
			conn_free(c);
		evutil_closesocket(fd);
		return;
	}
	bufferevent_enable(c->tls, EV_READ | EV_WRITE);
}

int node_link_listen(node_link *l, sdk_err *err)
{
	const grace_node_cfg *self = grace_config_node(l->o.cfg, l->o.cfg->nodes.self);
	struct sockaddr_storage sa;
	socklen_t salen;
	if (!self || addr_parse(self->address, &sa, &salen, true, err) < 0)
		return -1;
	l->lev = evconnlistener_new_bind(l->base, on_peer_accept, l,
					 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
						 LEV_OPT_CLOSE_ON_EXEC,
					 128, (struct sockaddr *)&sa, (int)salen);
	if (!l->lev) {
		return sdk_fail(err, SDK_EIO, "cannot listen on %s: %s", self->address,
				strerror(errno));
	}
	return 0;
}

/* ---- the client side: connections to a peer ---- */

/* A TLS connection to node `node` for c (its kind set); 0 or -1. */
static int dial(conn *c, const char *node, sdk_err *err)
{
	node_link *l = c->l;
	node_addr *a = node_of(l, node, err);
	if (!a)
		return -1;
	snprintf(c->peer, sizeof c->peer, "%s", node);
	/* A peer that does not answer is told to the client no later than it
	 * would be marked unreachable. */
	unsigned ms = l->o.cfg->nodes.down_ms < NODE_LINK_HANDSHAKE_MS ? l->o.cfg->nodes.down_ms
								    : NODE_LINK_HANDSHAKE_MS;
	if (tls_side(c, l->o.tls, -1, BUFFEREVENT_SSL_CONNECTING, ms) < 0)
		return sdk_fail(err, SDK_EIO, "%s",
				node_tls_expires_ms(l->o.tls) ? "out of memory"
							      : "this node has no certificate yet");
	if (bufferevent_socket_connect(c->tls, (struct sockaddr *)&a->sa, (int)a->salen) < 0)
		return sdk_fail(err, SDK_EIO, "connect: %s", strerror(errno));
	c->state = S_HANDSHAKE;
	return 0;
}

static void on_relay_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
			    int salen, void *arg)
{
	(void)lev, (void)sa, (void)salen;
	relay *r = arg;
	node_link *l = r->l;
	conn *c = conn_new(l, K_RELAY);
	if (!c) {
		evutil_closesocket(fd);
		return;
	}
	snprintf(c->kernel, sizeof c->kernel, "%s", r->kernel);
	snprintf(c->peer, sizeof c->peer, "%s", r->node);
	c->plain = bufferevent_socket_new(l->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!c->plain) {
		evutil_closesocket(fd);
		conn_free(c);
		return;
	}
	/* The client's bytes wait in its socket until the owner said OK. */
	bufferevent_setcb(c->plain, NULL, NULL, pipe_event, c);
	bufferevent_disable(c->plain, EV_READ);
	sdk_err why;
	if (dial(c, r->node, &why) < 0) {
		conn_fail(c, why.msg);
		return;
	}
	evbuffer_add_printf(bufferevent_get_output(c->tls), LINK_PROTO " kernel %s\n", r->kernel);
}

node_link *node_link_new(struct event_base *base, const node_link_opts *o)
{
	const node_tls_dl *dl = node_tls_dl_load(NULL);
	node_link *l = dl ? calloc(1, sizeof *l) : NULL;
	if (!l)
		return NULL;
	l->base = base;
	l->o = *o;
	l->dl = dl;
	return l;
}

int node_link_relay(node_link *l, const char *kernel, const char *node, int port, sdk_err *err)
{
	relay *r = NULL;
	for (size_t i = 0; i < l->n_relays && !r; i++)
		if (!strcmp(l->relays[i].kernel, kernel))
			r = &l->relays[i];
	if (!r) {
		if (l->n_relays == GRACE_KERNELS_MAX) {
			return sdk_fail(err, SDK_EBUSY, "too many relays");
		}
		r = &l->relays[l->n_relays++];
		r->l = l;
		snprintf(r->kernel, sizeof r->kernel, "%s", kernel);
	}
	snprintf(r->node, sizeof r->node, "%s", node);
	if (r->lev && r->port == port)
		return 0;
	if (r->lev) {
		evconnlistener_free(r->lev);
		r->lev = NULL;
	}
	r->port = port;
	/* Loopback only, as every kernel's own port: the relay is this
	 * host's stand-in for the kernel. */
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	r->lev = evconnlistener_new_bind(l->base, on_relay_accept, r,
					 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
						 LEV_OPT_CLOSE_ON_EXEC,
					 128, (struct sockaddr *)&sin, sizeof sin);
	if (!r->lev) {
		return sdk_fail(err, SDK_EIO, "127.0.0.1:%d: %s", port, strerror(errno));
	}
	return 0;
}

bool node_link_relaying(const node_link *l, const char *kernel)
{
	for (size_t i = 0; i < l->n_relays; i++)
		if (!strcmp(l->relays[i].kernel, kernel))
			return l->relays[i].lev != NULL;
	return false;
}

int node_link_call(node_link *l, const char *node, json_t *req, unsigned timeout_ms,
		   node_link_cb cb, void *arg)
{
	char *text = json_dumps(req, JSON_COMPACT);
	conn *c = text ? conn_new(l, K_CALL) : NULL;
	if (!c) {
		free(text);
		return -1;
	}
	if (dial(c, node, NULL) < 0) {
		free(text);
		conn_free(c);
		return -1;
	}
	c->cb = cb;
	c->cb_arg = arg;
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	bufferevent_set_timeouts(c->tls, &tv, &tv);
	evbuffer_add_printf(bufferevent_get_output(c->tls), LINK_PROTO " control\n%s\n", text);
	free(text);
	return 0;
}

node_link_stats node_link_get_stats(const node_link *l) { return l->stats; }

/* ---- :8000's TLS door ---- */

/* The handshake is done: the API gets one end of a socket pair as a
 * connection from the client's address, and the bytes go both ways. */
static void front_ready(conn *c)
{
	node_link *l = c->l;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
		sdk_warn("TLS door: socketpair: %s", strerror(errno));
		conn_free(c);
		return;
	}
	c->plain = bufferevent_socket_new(l->base, sv[0], BEV_OPT_CLOSE_ON_FREE);
	if (!c->plain) {
		close(sv[0]);
		close(sv[1]);
		conn_free(c);
		return;
	}
	l->stats.front++;
	l->adopt(sv[1], (struct sockaddr *)&c->sa, (unsigned)c->salen, l->adopt_arg);
	pipe_start(c);
}

static void on_front_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
			    int salen, void *arg)
{
	(void)lev;
	node_link *l = arg;
	conn *c = conn_new(l, K_FRONT);
	/* The handshake within the API's own head timeout; then the API's
	 * timeouts apply to what comes through. */
	if (!c || tls_side(c, l->front_tls, fd, BUFFEREVENT_SSL_ACCEPTING,
			   l->o.cfg->limits.head_timeout_ms) < 0) {
		if (c)
			conn_free(c);
		evutil_closesocket(fd);
		return;
	}
	if (salen > 0 && (size_t)salen <= sizeof c->sa) {
		memcpy(&c->sa, sa, (size_t)salen);
		c->salen = (socklen_t)salen;
	}
	bufferevent_enable(c->tls, EV_READ | EV_WRITE);
}

int node_link_front(node_link *l, node_tls *tls, const char *address, node_link_adopt_fn adopt,
		    void *arg, sdk_err *err)
{
	struct sockaddr_storage sa;
	socklen_t salen;
	if (addr_parse(address, &sa, &salen, true, err) < 0)
		return -1;
	l->front_tls = tls;
	l->adopt = adopt;
	l->adopt_arg = arg;
	l->front_lev = evconnlistener_new_bind(l->base, on_front_accept, l,
					       LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
						       LEV_OPT_CLOSE_ON_EXEC,
					       128, (struct sockaddr *)&sa, (int)salen);
	if (!l->front_lev) {
		return sdk_fail(err, SDK_EIO, "cannot listen on %s: %s", address, strerror(errno));
	}
	return 0;
}

void node_link_free(node_link *l)
{
	if (!l)
		return;
	while (l->conns) {
		/* Calls in flight are told, so their owners free what they hold. */
		call_tell(l->conns, NULL, "the node link is closing");
		conn_free(l->conns);
	}
	for (size_t i = 0; i < l->n_relays; i++)
		if (l->relays[i].lev)
			evconnlistener_free(l->relays[i].lev);
	if (l->lev)
		evconnlistener_free(l->lev);
	if (l->front_lev)
		evconnlistener_free(l->front_lev);
	free(l);
}
