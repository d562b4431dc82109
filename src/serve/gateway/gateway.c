#include "serve/gateway/gateway.h"
#include "sdk/clock.h"

#include "sdk/client.h"
#include "sdk/log.h"
#include "sdk/token.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* Request headers a kernel may see; everything else stays at the edge. */
static const char *const forwarded_request_headers[] = {
	"Content-Type", "Accept", "Accept-Encoding", "If-None-Match", "If-Match", "Last-Event-ID",
};
/* Response headers a client may see from a kernel. */
static const char *const forwarded_response_headers[] = {
	"Content-Type", "Cache-Control", "ETag", "Location", "Retry-After",
};

struct pool {
	int port; /* the kernel's port now */
	struct evhttp_connection *conns[GW_POOL_MAX];
	int conn_port[GW_POOL_MAX]; /* the port each connection was made for */
	unsigned busy[GW_POOL_MAX];
	size_t n;
	unsigned pending;
};

struct gateway {
	struct event_base *base;
	supervisor *sup;
	struct pool pools[GRACE_KERNELS_MAX];
	sdk_client *client; /* probes */
	const char *token;
};

struct forward {
	gateway *gw;
	sup_kernel *k;
	sdk_req *req;
	struct pool *pool;
	size_t conn;
	enum evhttp_cmd_type method;
	char uri[SDK_PATH_MAX + 1024];
	unsigned attempts;
	struct timespec t0;
	enum evhttp_request_error error;
	bool failed;
};

static void pool_reset(struct pool *p, int port)
{
	for (size_t i = 0; i < p->n; i++)
		evhttp_connection_free(p->conns[i]);
	memset(p->conns, 0, sizeof p->conns);
	memset(p->busy, 0, sizeof p->busy);
	p->n = 0;
	p->port = port;
}

/* The kernel may have moved (rebind_port): new connections go to its port
 * now; a connection made for the old one is replaced when next picked. */
static struct pool *pool_of(gateway *gw, sup_kernel *k)
{
	struct pool *p = &gw->pools[k - sup_at(gw->sup, 0)];
	p->port = k->port;
	return p;
}

static struct evhttp_connection *new_conn(gateway *gw, int port)
{
	struct evhttp_connection *c = evhttp_connection_base_new(gw->base, NULL, "127.0.0.1",
								 (unsigned short)port);
	if (!c)
		return NULL;
	struct timeval tv = { GW_ATTEMPT_TIMEOUT_MS / 1000, (GW_ATTEMPT_TIMEOUT_MS % 1000) * 1000 };
	evhttp_connection_set_timeout_tv(c, &tv);
	return c;
}

/* Whether an idle pooled connection's peer has closed it: a kernel that
 * died leaves EOF (or a reset) waiting on every connection it had. Sending
 * on such a connection would fail after the request was written, when it
 * can no longer be retried safely; found here, it never reaches the wire. */
static bool conn_dead(struct evhttp_connection *c)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(c);
	evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
	if (fd < 0)
		return false; /* not connected: libevent connects afresh */
	char b;
	ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* Picks an idle pooled connection, or opens one, or queues on the least
 * busy. With `fresh`, an idle connection is replaced by a new one: a retry
 * must not land on another connection to the process that just failed. */
static int pool_pick(gateway *gw, struct pool *p, bool fresh, size_t *idx)
{
	size_t best = 0;
	for (size_t i = 0; i < p->n; i++) {
		if (p->busy[i] == 0) {
			if (fresh || p->conn_port[i] != p->port || conn_dead(p->conns[i])) {
				struct evhttp_connection *c = new_conn(gw, p->port);
				if (!c)
					continue;
				evhttp_connection_free(p->conns[i]);
				p->conns[i] = c;
				p->conn_port[i] = p->port;
			}
			*idx = i;
			return 0;
		}
		if (p->busy[i] < p->busy[best])
			best = i;
	}
	if (p->n < GW_POOL_MAX) {
		struct evhttp_connection *c = new_conn(gw, p->port);
		if (c) {
			p->conns[p->n] = c;
			p->conn_port[p->n] = p->port;
			p->busy[p->n] = 0;
			*idx = p->n++;
			return 0;
		}
	}
	if (p->n == 0)
		return -1;
	*idx = best;
	return 0;
}

static bool idempotent(enum evhttp_cmd_type m)
{
	return m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD || m == EVHTTP_REQ_OPTIONS;
}

static const char *error_text(enum evhttp_request_error e)
{
	switch (e) {
	case EVREQ_HTTP_TIMEOUT: return "the kernel did not answer in time";
	case EVREQ_HTTP_EOF: return "the kernel closed the connection before answering";
	case EVREQ_HTTP_INVALID_HEADER: return "the kernel sent an invalid answer";
	case EVREQ_HTTP_BUFFER_ERROR: return "connection to the kernel failed";
	case EVREQ_HTTP_DATA_TOO_LONG: return "the kernel's answer was too large";
	default: return "the kernel did not answer";
	}
}

static int send_attempt(struct forward *f);

static void forward_done(struct forward *f) { free(f); }

static void on_upstream_error(enum evhttp_request_error e, void *arg)
{
	struct forward *f = arg;
	f->error = e;
	f->failed = true;
}

static void reply_upstream(struct forward *f, struct evhttp_request *ureq)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(ureq);
	for (size_t i = 0; i < sizeof forwarded_response_headers / sizeof *forwarded_response_headers;
	     i++) {
		const char *v = evhttp_find_header(in, forwarded_response_headers[i]);
		if (v)
			sdk_req_add_header(f->req, forwarded_response_headers[i], v);
	}
	sdk_reply_raw(f->req, evhttp_request_get_response_code(ureq), NULL,
		      evhttp_request_get_input_buffer(ureq));
}

static void on_upstream(struct evhttp_request *ureq, void *arg)
{
	struct forward *f = arg;
	f->pool->busy[f->conn]--;
	f->pool->pending--;
	int code = ureq ? evhttp_request_get_response_code(ureq) : 0;
	if (code > 0 && !f->failed) {
		reply_upstream(f, ureq);
		forward_done(f);
		return;
	}
	/* A kernel that died with our request in hand: a GET is safe to repeat
	 * on the restarted (or moved) kernel; anything else may have been
	 * applied. A timeout is not retried: the kernel may still be at it. */
	bool timed_out = f->failed && f->error == EVREQ_HTTP_TIMEOUT;
	if (idempotent(f->method) && !timed_out && f->attempts < 2 &&
	    f->k->state != SUP_FAILED && f->k->state != SUP_STOPPED &&
	    sdk_ms_since(&f->t0) < GW_DEADLINE_MS) {
		f->pool = pool_of(f->gw, f->k);
		if (send_attempt(f) == 0)
			return;
	}
	int status = timed_out ? 504 : 502;
	sdk_reply_error(f->req, status, status == 504 ? "upstream_timeout" : "upstream_failed",
			"%s: %s", f->k->cfg->name,
			f->failed ? error_text(f->error) : "the kernel closed the connection before answering");
	forward_done(f);
}

static int send_attempt(struct forward *f)
{
	bool retry = f->attempts++ > 0;
	f->failed = false;
	if (pool_pick(f->gw, f->pool, retry, &f->conn) < 0)
		return -1;
	struct evhttp_request *u = evhttp_request_new(on_upstream, f);
	if (!u)
		return -1;
	evhttp_request_set_error_cb(u, on_upstream_error);
	struct evkeyvalq *in = evhttp_request_get_input_headers(sdk_req_ev(f->req));
	struct evkeyvalq *out = evhttp_request_get_output_headers(u);
	for (size_t i = 0; i < sizeof forwarded_request_headers / sizeof *forwarded_request_headers;
	     i++) {
		const char *v = evhttp_find_header(in, forwarded_request_headers[i]);
		if (v)
			evhttp_add_header(out, forwarded_request_headers[i], v);
	}
	char host[32];
	snprintf(host, sizeof host, "127.0.0.1:%d", f->pool->port);
	evhttp_add_header(out, "Host", host);
	evhttp_add_header(out, "X-Request-Id", sdk_req_id(f->req));
	evhttp_add_header(out, SDK_TOKEN_HEADER, f->gw->token);
	int role; /* who the kernel acts for (sdk_req_caller): never a client's own headers */
	const char *user = sdk_req_user(f->req, &role);
	if (user && evhttp_add_header(out, SDK_CALLER_HEADER, user) == 0)
		evhttp_add_header(out, SDK_CALLER_ROLE_HEADER, role == SDK_CALLER_ADMIN ? "admin" : "user");
	struct evbuffer *body = sdk_req_body(f->req);
	size_t len = evbuffer_get_length(body);
	if (len) {
		/* Copied, not moved: a retry needs the body again. */
		evbuffer_add(evhttp_request_get_output_buffer(u), evbuffer_pullup(body, -1), len);
	}
	if (evhttp_make_request(f->pool->conns[f->conn], u, f->method, f->uri) < 0)
		return -1; /* libevent freed u */
	f->pool->busy[f->conn]++;
	f->pool->pending++;
	return 0;
}

static enum evhttp_cmd_type method_of(const char *m)
{
	static const struct {
		const char *name;
		enum evhttp_cmd_type t;
	} map[] = { { "GET", EVHTTP_REQ_GET },         { "POST", EVHTTP_REQ_POST },
		    { "HEAD", EVHTTP_REQ_HEAD },       { "PUT", EVHTTP_REQ_PUT },
		    { "DELETE", EVHTTP_REQ_DELETE },   { "OPTIONS", EVHTTP_REQ_OPTIONS },
		    { "PATCH", EVHTTP_REQ_PATCH } };
	for (size_t i = 0; i < sizeof map / sizeof *map; i++)
		if (!strcmp(map[i].name, m))
			return map[i].t;
	return EVHTTP_REQ_GET;
}

void gw_forward(gateway *gw, sup_kernel *k, sdk_req *req, const char *path)
{
	if (k->state == SUP_FAILED || k->state == SUP_STOPPED || k->state == SUP_PORT_UNAVAILABLE) {
		sdk_req_add_header(req, "Retry-After", "5");
		sdk_reply_error(req, 503, "kernel_unavailable", "kernel %s is %s", k->cfg->name,
				sup_state_name(k->state));
		return;
	}
	/* The kernel would refuse it and close while we still write: say it here. */
	size_t body = evbuffer_get_length(sdk_req_body(req));
	if (body > k->cfg->max_body_bytes) {
		sdk_req_add_header(req, "Connection", "close");
		sdk_reply_error(req, 413, "body_too_large", "kernel %s takes bodies up to %zu bytes",
				k->cfg->name, k->cfg->max_body_bytes);
		return;
	}
	struct pool *p = pool_of(gw, k);
	if (p->pending >= GW_PENDING_MAX) {
		sdk_req_add_header(req, "Retry-After", "1");
		sdk_reply_error(req, 503, "kernel_busy", "kernel %s has %u requests waiting",
				k->cfg->name, p->pending);
		return;
	}
	struct forward *f = calloc(1, sizeof *f);
	if (!f) {
		sdk_reply_error(req, 503, "out_of_memory", "cannot forward now");
		return;
	}
	*f = (struct forward){ .gw = gw, .k = k, .req = req, .pool = p,
			       .method = method_of(sdk_req_method(req)) };
	clock_gettime(CLOCK_MONOTONIC, &f->t0);
	/* Re-encode the decoded path: what reaches the kernel is what we routed on. */
	char *enc = evhttp_uriencode(path, -1, 0);
	const char *q = sdk_req_query_string(req);
	int n = snprintf(f->uri, sizeof f->uri, "%s%s%s", enc ? enc : "/", q ? "?" : "", q ? q : "");
	free(enc);
	if (n < 0 || (size_t)n >= sizeof f->uri) {
		free(f);
		sdk_reply_error(req, 414, "uri_too_long", "the request URI is too long");
		return;
	}
	/* evhttp_uriencode also encodes '/': put the separators back. */
	for (char *s = f->uri; (s = strstr(s, "%2F")); )
		memmove(s + 1, s + 3, strlen(s + 3) + 1), *s = '/';
	if (send_attempt(f) < 0) {
		sdk_reply_error(req, 502, "upstream_failed", "%s: cannot connect", k->cfg->name);
		free(f);
	}
}

int gw_probe(gateway *gw, int port, const char *path, unsigned timeout_ms, gw_probe_cb cb,
	     void *arg)
{
	return sdk_client_call(gw->client, port, "GET", path, NULL, 0, NULL, timeout_ms, cb, arg);
}

gateway *gw_new(struct event_base *base, supervisor *sup, const char *token)
{
	gateway *gw = calloc(1, sizeof *gw);
	if (!gw)
		return NULL;
	gw->base = base;
	gw->sup = sup;
	gw->token = token;
	gw->client = sdk_client_new(base);
	if (!gw->client) {
		free(gw);
		return NULL;
	}
	sdk_client_set_token(gw->client, token);
	for (size_t i = 0; i < sup_count(sup); i++)
		gw->pools[i].port = sup_at(sup, i)->port;
	return gw;
}

void gw_free(gateway *gw)
{
	if (!gw)
		return;
	for (size_t i = 0; i < GRACE_KERNELS_MAX; i++)
		pool_reset(&gw->pools[i], 0);
	sdk_client_free(gw->client); /* ends probes in flight without calling back */
	free(gw);
}
