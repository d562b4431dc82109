#include "sdk/upstream.h"

#include "sdk/clock.h"
#include "sdk/err.h"
#include "sdk/str.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_CHUNK 16384
#define ANSWER_HEAD_MAX 65536
#define ANSWER_FIELDS_MAX 100
#define REQUEST_HEAD_MAX 16384
#define POOL_IDLE_MS 30000   /* below every kernel's keep-alive, so we close first */
#define RETRY_WAIT_MS 20     /* after a refused connection, before the next try */
#define ATTEMPTS_MAX 2       /* for a reset or a clean close: one retry */
#define INLINE_BYTES 1024    /* a request or an answer head this small needs no allocation */
#define SPARE_MAX 64         /* finished requests kept for reuse */
#define UREQ_KERNEL_MAX 64   /* a kernel's name and its NUL (config names are shorter) */

struct uconn;

enum ustate { U_WAIT, U_SENT, U_BODY };

struct sdk_ureq {
	sdk_upstream *up;
	struct uconn *c;   /* while sent */
	struct pool *pool; /* while waiting for a connection */
	int port;
	/* The request as it goes on the wire, owned: its request line, then
	 * the Host of the attempt's port, then the rest of it. */
	char *msg; /* msg_inline, or owned */
	size_t msg_len, line_len;
	bool idempotent, fresh, head_only;
	unsigned head_timeout_ms, idle_timeout_ms, deadline_ms;
	sdk_ureq_cbs cbs;
	void (*on_retry)(sdk_ureq *u, int err, void *arg);
	void *arg;
	struct timespec t0;
	struct event *timer;
	unsigned resets; /* retries spent on resets and clean closes */
	int moved_from;  /* after a pause, sent again only if the kernel left this port */
	enum ustate state;
	bool retry_wait; /* the timer is a pause before the next attempt */
	char *hbuf;      /* the answer's head: head_inline, or owned */
	sdk_http_head h;
	sdk_chunked ch;
	uint64_t left;
	struct evbuffer *data;
	bool paused, in_cb, gone;
	bool starting;   /* inside sdk_upstream_request: failures wait for the loop */
	int pending_err; /* a failure found while starting */
	const char *pending_why;
	TAILQ_ENTRY(sdk_ureq) qlink; /* in its pool's queue */
	TAILQ_ENTRY(sdk_ureq) alink; /* in up->all, or up->spare */
	char msg_inline[INLINE_BYTES];
	char head_inline[INLINE_BYTES];
	/* The kernel asked for by name, "" for a port. Past the reset above:
	 * set at every request, as a copy it cost a malloc and a free a forward. */
	char kernel[UREQ_KERNEL_MAX];
};

struct uconn {
	struct pool *pool;
	int fd;
	struct event *rev, *wev, *tmo;
	struct evbuffer *in, *out;
	sdk_ureq *u;
	bool connecting, reading, fresh;
	bool idle; /* in pool->idle */
	TAILQ_ENTRY(uconn) link;
};

struct pool {
	sdk_upstream *up;
	int port;
	char host[40]; /* "Host: 127.0.0.1:PORT\r\n", made once */
	int host_len;
	unsigned n_conns;
	TAILQ_HEAD(uconn_list, uconn) idle; /* the most recently used last */
	TAILQ_HEAD(, sdk_ureq) waiting;
	struct pool *next;
};

struct sdk_upstream {
	struct event_base *base;
	sdk_resolve_fn resolve;
	void *arg;
	unsigned pool_max, queue_max, n_queued;
	bool freeing; /* no new sends */
	struct pool *pools;
	TAILQ_HEAD(ureq_list, sdk_ureq) all;
	struct ureq_list spare; /* finished, with their timer and buffer, for reuse */
	unsigned n_spare;
	const struct timeval *tmo_idle;
};

static void attempt(sdk_ureq *u);
static void conn_process(struct uconn *c);
static void pool_next(struct pool *p);

const char *sdk_up_error_text(int err)
{
	switch (err) {
	case SDK_UP_UNAVAILABLE: return "not running";
	case SDK_UP_REFUSED: return "connection refused";
	case SDK_UP_RESET: return "the connection closed before an answer";
	case SDK_UP_TIMEOUT: return "no answer in time";
	case SDK_UP_BAD_ANSWER: return "an invalid answer";
	case SDK_UP_TRUNCATED: return "the answer stopped before its end";
	case SDK_UP_BUSY: return "too many requests waiting";
	default: return "out of memory";
	}
}

double sdk_ureq_elapsed_ms(const sdk_ureq *u) { return sdk_ms_since(&u->t0); }

/* ---- connections ---- */

static void conn_close(struct uconn *c)
{
	struct pool *p = c->pool;
	if (c->idle)
		TAILQ_REMOVE(&p->idle, c, link);
	p->n_conns--;
	event_free(c->rev);
	event_free(c->wev);
	event_free(c->tmo);
	if (c->fd >= 0)
		close(c->fd);
	evbuffer_free(c->in);
	evbuffer_free(c->out);
	free(c);
}

static void conn_flush(struct uconn *c)
{
	while (evbuffer_get_length(c->out)) {
		int n = evbuffer_write(c->out, c->fd);
		if (n > 0)
			continue;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			event_add(c->wev, NULL);
			return;
		}
		/* The read side reports the failure (with the reset's errno). */
		evbuffer_drain(c->out, evbuffer_get_length(c->out));
		return;
	}
}

static void on_conn_readable(evutil_socket_t fd, short what, void *arg);
static void on_conn_writable(evutil_socket_t fd, short what, void *arg);
static void on_conn_idle_timeout(evutil_socket_t fd, short what, void *arg);

static struct uconn *conn_open(struct pool *p, bool fresh, int *err)
{
	struct uconn *c = calloc(1, sizeof *c);
	if (!c) {
		*err = SDK_UP_NOMEM;
		return NULL;
	}
	c->pool = p;
	c->fresh = fresh;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	c->in = evbuffer_new();
	c->out = evbuffer_new();
	struct event_base *base = p->up->base;
	c->rev = event_new(base, c->fd, EV_READ | EV_PERSIST, on_conn_readable, c);
	c->wev = event_new(base, c->fd, EV_WRITE, on_conn_writable, c);
	c->tmo = evtimer_new(base, on_conn_idle_timeout, c);
	p->n_conns++;
	if (c->fd < 0 || !c->in || !c->out || !c->rev || !c->wev || !c->tmo) {
		*err = SDK_UP_NOMEM;
		conn_close(c);
		return NULL;
	}
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)p->port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int rc = connect(c->fd, (struct sockaddr *)&sa, sizeof sa);
	if (rc < 0 && errno != EINPROGRESS) {
		*err = SDK_UP_REFUSED;
		conn_close(c);
		return NULL;
	}
	c->connecting = rc < 0;
	event_add(c->rev, NULL);
	c->reading = true;
	if (c->connecting)
		event_add(c->wev, NULL);
	return c;
}

/* ---- requests ---- */

static void ureq_destroy(sdk_ureq *u)
{
	if (u->timer)
		event_free(u->timer);
	if (u->data)
		evbuffer_free(u->data);
	free(u);
}

static void ureq_free(sdk_ureq *u)
{
	sdk_upstream *up = u->up;
	if (u->pool) {
		TAILQ_REMOVE(&u->pool->waiting, u, qlink);
		up->n_queued--;
	}
	TAILQ_REMOVE(&up->all, u, alink);
	if (u->hbuf != u->head_inline)
		free(u->hbuf);
	if (u->msg != u->msg_inline)
		free(u->msg);
	event_del(u->timer);
	evbuffer_drain(u->data, evbuffer_get_length(u->data));
	if (up->n_spare < SPARE_MAX && !up->freeing) {
		TAILQ_INSERT_HEAD(&up->spare, u, alink);
		up->n_spare++;
		return;
	}
	ureq_destroy(u);
}

/* A request object: a spare one (its timer and buffer kept) or a new one. */
static sdk_ureq *ureq_get(sdk_upstream *up)
{
	sdk_ureq *u = TAILQ_FIRST(&up->spare);
	struct event *timer = NULL;
	struct evbuffer *data = NULL;
	if (u) {
		TAILQ_REMOVE(&up->spare, u, alink);
		up->n_spare--;
		timer = u->timer;
		data = u->data;
	} else if (!(u = malloc(sizeof *u))) {
		return NULL;
	}
	memset(u, 0, offsetof(sdk_ureq, msg_inline));
	u->timer = timer;
	u->data = data;
	return u;
}

/* The request is over (answered or failed): its connection goes back to
 * the pool when it can carry another exchange, else it is closed. */
static void ureq_detach(sdk_ureq *u, bool reusable)
{
	struct uconn *c = u->c;
	u->c = NULL;
	if (!c)
		return;
	c->u = NULL;
	struct pool *p = c->pool;
	if (reusable && !c->fresh && evbuffer_get_length(c->in) == 0 &&
	    evbuffer_get_length(c->out) == 0) {
		if (!c->reading) {
			event_add(c->rev, NULL);
			c->reading = true;
		}
		TAILQ_INSERT_TAIL(&p->idle, c, link);
		c->idle = true;
		event_add(c->tmo, p->up->tmo_idle);
	} else {
		conn_close(c);
	}
	pool_next(p);
}

static void fail(sdk_ureq *u, int err, const char *why)
{
	ureq_detach(u, false);
	if (u->starting) {
		/* No callback from inside sdk_upstream_request: from the loop. */
		u->pending_err = err;
		u->pending_why = why;
		struct timeval now = { 0, 0 };
		event_add(u->timer, &now);
		return;
	}
	if (!u->gone && u->cbs.on_error)
		u->cbs.on_error(u, err, why ? why : sdk_up_error_text(err), u->arg);
	ureq_free(u);
}

static bool past_deadline(const sdk_ureq *u) { return sdk_ms_since(&u->t0) >= u->deadline_ms; }

/* The request did not get through on this connection; `never_sent` when
 * it cannot have been acted on. Retries by the rules in upstream.h. */
static void retry_or_fail(sdk_ureq *u, int err, bool never_sent)
{
	int port = u->c ? u->c->pool->port : 0;
	ureq_detach(u, false);
	u->state = U_WAIT;
	bool may = never_sent || u->idempotent;
	/* Refused by name: the kernel may be moving, so look again; refused
	 * by port: there is nothing else to look up. */
	bool again = !past_deadline(u) && ((err == SDK_UP_REFUSED && u->kernel[0]) ||
					   (u->resets + 1 < ATTEMPTS_MAX && may));
	/* Its one retry spent, a request to a kernel by name may have met the
	 * kernel moving to another port: the retry connected to the old
	 * listener, which closed with it in its backlog. After a pause it is
	 * sent once more only if the kernel is found at another port, so a
	 * request that makes a kernel die is still sent twice at most. */
	bool moving = !again && !past_deadline(u) && err == SDK_UP_RESET && u->kernel[0] && may &&
		      port > 0;
	if (!again && !moving) {
		fail(u, err, NULL);
		return;
	}
	if (u->on_retry && !u->gone)
		u->on_retry(u, err, u->arg);
	if (err == SDK_UP_REFUSED || moving) {
		/* Wait a moment: the kernel may be moving or coming back. */
		u->moved_from = moving ? port : 0;
		u->retry_wait = true;
		struct timeval tv = sdk_ms_tv(RETRY_WAIT_MS);
		event_add(u->timer, &tv);
		return;
	}
	u->resets++;
	u->fresh = true; /* not another pooled connection to the process that failed */
	attempt(u);
}

static void send_on(sdk_ureq *u, struct uconn *c)
{
	u->c = c;
	c->u = u;
	u->state = U_SENT;
	event_del(c->tmo);
	evbuffer_add(c->out, u->msg, u->line_len);
	evbuffer_add(c->out, c->pool->host, (size_t)c->pool->host_len);
	evbuffer_add(c->out, u->msg + u->line_len, u->msg_len - u->line_len);
	if (!c->connecting)
		conn_flush(c);
}

static struct uconn *pool_take_idle(struct pool *p)
{
	struct uconn *c = TAILQ_LAST(&p->idle, uconn_list);
	if (c) {
		TAILQ_REMOVE(&p->idle, c, link);
		c->idle = false;
	}
	return c;
}

static void pool_next(struct pool *p)
{
	while (!p->up->freeing && !TAILQ_EMPTY(&p->waiting)) {
		sdk_ureq *u = TAILQ_FIRST(&p->waiting);
		if (TAILQ_EMPTY(&p->idle) && p->n_conns >= p->up->pool_max)
			return;
		TAILQ_REMOVE(&p->waiting, u, qlink);
		p->up->n_queued--;
		u->pool = NULL;
		struct uconn *c = pool_take_idle(p);
		if (c) {
			send_on(u, c);
			continue;
		}
		int err;
		c = conn_open(p, false, &err);
		if (!c) {
			retry_or_fail(u, err, true);
			continue;
		}
		send_on(u, c);
	}
}

static struct pool *pool_of(sdk_upstream *up, int port)
{
	for (struct pool *p = up->pools; p; p = p->next)
		if (p->port == port)
			return p;
	struct pool *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->up = up;
	p->port = port;
	p->host_len = snprintf(p->host, sizeof p->host, "Host: 127.0.0.1:%d\r\n", port);
	TAILQ_INIT(&p->idle);
	TAILQ_INIT(&p->waiting);
	p->next = up->pools;
	up->pools = p;
	return p;
}

static void attempt(sdk_ureq *u)
{
	sdk_upstream *up = u->up;
	u->retry_wait = false;
	int port = u->port;
	if (u->kernel[0]) {
		port = up->resolve(u->kernel, up->arg);
		if (port <= 0) {
			fail(u, SDK_UP_UNAVAILABLE, NULL);
			return;
		}
		int from = u->moved_from;
		u->moved_from = 0;
		if (from && port == from) { /* it did not move: the reset was its own */
			fail(u, SDK_UP_RESET, NULL);
			return;
		}
	}
	struct pool *p = pool_of(up, port);
	if (!p) {
		fail(u, SDK_UP_NOMEM, NULL);
		return;
	}
	/* The answer's head is due within head_timeout of each attempt. */
	struct timeval tv = sdk_ms_tv(u->head_timeout_ms);
	event_add(u->timer, &tv);
	int err = 0;
	struct uconn *c = NULL;
	if (!u->fresh && (c = pool_take_idle(p))) {
		/* a warm connection */
	} else if (u->fresh || p->n_conns < up->pool_max) {
		c = conn_open(p, u->fresh, &err);
		if (!c) {
			retry_or_fail(u, err, true);
			return;
		}
	} else {
		if (up->n_queued >= up->queue_max) {
			fail(u, SDK_UP_BUSY, NULL);
			return;
		}
		u->pool = p;
		TAILQ_INSERT_TAIL(&p->waiting, u, qlink);
		up->n_queued++;
		return;
	}
	send_on(u, c);
}

static void on_ureq_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	sdk_ureq *u = arg;
	if (u->pending_err) {
		u->starting = false;
		fail(u, u->pending_err, u->pending_why);
		return;
	}
	if (u->retry_wait) {
		attempt(u);
		return;
	}
	/* No answer in time: closing the connection tells the kernel. */
	fail(u, SDK_UP_TIMEOUT, u->state == U_BODY ? "the answer stalled" : NULL);
}

static char *put(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

/* Serializes the request once; every attempt sends the same bytes (with
 * the Host of its own port between the request line and the rest). */
static int build_message(sdk_ureq *u, const sdk_ureq_opts *o)
{
	/* Exact framing for every method: a body always has its length. */
	bool with_length = o->body_len > 0 || !strcmp(o->method, "POST") ||
			   !strcmp(o->method, "PUT") || !strcmp(o->method, "PATCH");
	char length[48] = "";
	if (with_length)
		snprintf(length, sizeof length, "Content-Length: %zu\r\n", o->body_len);
	size_t ml = strlen(o->method), tl = strlen(o->target), ll = strlen(length);
	size_t need = ml + 1 + tl + 11 + ll + 2 + o->body_len;
	for (size_t i = 0; o->headers && o->headers[i] && o->headers[i + 1]; i += 2) {
		const char *name = o->headers[i], *value = o->headers[i + 1];
		if (strpbrk(name, "\r\n:") || strpbrk(value, "\r\n"))
			return -1; /* would split the request */
		need += strlen(name) + 2 + strlen(value) + 2;
	}
	if (need - o->body_len > REQUEST_HEAD_MAX || strpbrk(o->target, " \r\n"))
		return -1;
	u->msg = need <= sizeof u->msg_inline ? u->msg_inline : malloc(need);
	if (!u->msg)
		return -1;
	char *p = put(u->msg, o->method, ml);
	*p++ = ' ';
	p = put(p, o->target, tl);
	p = put(p, " HTTP/1.1\r\n", 11);
	u->line_len = (size_t)(p - u->msg);
	for (size_t i = 0; o->headers && o->headers[i] && o->headers[i + 1]; i += 2) {
		p = put(p, o->headers[i], strlen(o->headers[i]));
		p = put(p, ": ", 2);
		p = put(p, o->headers[i + 1], strlen(o->headers[i + 1]));
		p = put(p, "\r\n", 2);
	}
	p = put(p, length, ll);
	p = put(p, "\r\n", 2);
	if (o->body_len)
		p = put(p, o->body, o->body_len);
	u->msg_len = (size_t)(p - u->msg);
	return 0;
}

sdk_ureq *sdk_upstream_request(sdk_upstream *up, const sdk_ureq_opts *o, const sdk_ureq_cbs *cbs,
			       void *arg)
{
	sdk_ureq *u = ureq_get(up);
	if (!u)
		return NULL;
	u->up = up;
	u->cbs = *cbs;
	u->on_retry = o->on_retry;
	u->arg = arg;
	u->t0 = sdk_mono_now();
	u->port = o->port;
	u->fresh = o->fresh;
	u->head_only = !strcmp(o->method, "HEAD");
	u->idempotent = u->head_only || !strcmp(o->method, "GET") || !strcmp(o->method, "OPTIONS");
	u->head_timeout_ms = o->head_timeout_ms ? o->head_timeout_ms : 10000;
	u->idle_timeout_ms = o->idle_timeout_ms ? o->idle_timeout_ms : u->head_timeout_ms;
	u->deadline_ms = o->deadline_ms ? o->deadline_ms : u->head_timeout_ms;
	if (!u->timer)
		u->timer = evtimer_new(up->base, on_ureq_timer, u);
	if (!u->data)
		u->data = evbuffer_new();
	size_t kn = sdk_strcpy(u->kernel, sizeof u->kernel, o->kernel ? o->kernel : "");
	if (!u->timer || !u->data || kn >= sizeof u->kernel || build_message(u, o) < 0) {
		if (u->msg != u->msg_inline)
			free(u->msg);
		ureq_destroy(u);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&up->all, u, alink);
	u->starting = true;
	attempt(u);
	u->starting = false;
	return u;
}

void sdk_ureq_cancel(sdk_ureq *u)
{
	u->gone = true;
	if (u->in_cb)
		return; /* freed when the callback returns */
	ureq_detach(u, false);
	ureq_free(u);
}

void sdk_ureq_pause(sdk_ureq *u, bool paused)
{
	u->paused = paused;
	struct uconn *c = u->c;
	if (!c)
		return;
	if (paused && c->reading) {
		/* The client is slow, not the kernel: no stall timeout meanwhile. */
		event_del(c->rev);
		event_del(u->timer);
		c->reading = false;
	} else if (!paused && !c->reading) {
		event_add(c->rev, NULL);
		c->reading = true;
		struct timeval tv = sdk_ms_tv(u->idle_timeout_ms);
		event_add(u->timer, &tv);
		if (!u->in_cb && evbuffer_get_length(c->in))
			conn_process(c);
	}
}

unsigned sdk_upstream_queued(const sdk_upstream *up, int port)
{
	unsigned n = 0;
	for (const struct pool *p = up->pools; p; p = p->next)
		if (p->port == port) {
			const sdk_ureq *u;
			TAILQ_FOREACH(u, &p->waiting, qlink)
				n++;
		}
	return n;
}

/* ---- reading the answer ---- */

/* Hands body bytes over; `last` ends the request. Returns false when the
 * request is over (or was cancelled from the callback). */
static bool deliver(sdk_ureq *u, bool last)
{
	if (!last && evbuffer_get_length(u->data) == 0)
		return true;
	u->in_cb = true;
	u->cbs.on_body(u, u->data, last, u->arg);
	u->in_cb = false;
	if (last || u->gone) {
		bool reusable = last && !u->gone && u->h.keep_alive &&
				u->h.body != SDK_HTTP_BODY_CLOSE;
		ureq_detach(u, reusable);
		ureq_free(u);
		return false;
	}
	if (u->idle_timeout_ms) {
		struct timeval tv = sdk_ms_tv(u->idle_timeout_ms);
		event_add(u->timer, &tv);
	}
	return true;
}

/* Parses the head at the front of c->in. Returns 1 when a final head was
 * taken, 0 when more must come, -1 after failing the request. */
static int take_head(sdk_ureq *u, struct uconn *c)
{
	for (;;) {
		size_t len = evbuffer_get_length(c->in);
		size_t look = len < ANSWER_HEAD_MAX ? len : ANSWER_HEAD_MAX;
		const char *p = (const char *)evbuffer_pullup(c->in, (ev_ssize_t)look);
		size_t scan = 0, end = p ? sdk_http_head_end(p, look, &scan) : 0;
		if (!end) {
			if (len >= ANSWER_HEAD_MAX) {
				fail(u, SDK_UP_BAD_ANSWER, "the kernel's answer head is too large");
				return -1;
			}
			return 0;
		}
		if (u->hbuf != u->head_inline)
			free(u->hbuf);
		u->hbuf = end < sizeof u->head_inline ? u->head_inline : malloc(end + 1);
		if (!u->hbuf) {
			fail(u, SDK_UP_NOMEM, NULL);
			return -1;
		}
		memcpy(u->hbuf, p, end);
		u->hbuf[end] = '\0';
		evbuffer_drain(c->in, end);
		const char *why = NULL;
		if (sdk_http_parse_response(u->hbuf, end, ANSWER_FIELDS_MAX, u->head_only, &u->h,
					    &why) < 0) {
			fail(u, SDK_UP_BAD_ANSWER, why);
			return -1;
		}
		if (u->h.status >= 200)
			return 1;
		/* 1xx: informational, the real answer follows. */
	}
}

static void conn_process(struct uconn *c)
{
	sdk_ureq *u = c->u;
	if (u->state == U_SENT) {
		int rc = take_head(u, c);
		if (rc <= 0)
			return;
		u->state = U_BODY;
		u->left = u->h.content_length;
		u->ch = (sdk_chunked){ 0 };
		u->in_cb = true;
		u->cbs.on_head(u, &u->h, u->arg);
		u->in_cb = false;
		if (u->gone) {
			ureq_detach(u, false);
			ureq_free(u);
			return;
		}
		if (u->h.body == SDK_HTTP_BODY_NONE) {
			deliver(u, true);
			return;
		}
	}
	while (!u->paused) {
		size_t avail = evbuffer_get_length(c->in);
		switch (u->h.body) {
		case SDK_HTTP_BODY_LENGTH: {
			size_t n = avail < u->left ? avail : (size_t)u->left;
			evbuffer_remove_buffer(c->in, u->data, n);
			u->left -= n;
			deliver(u, u->left == 0);
			return;
		}
		case SDK_HTTP_BODY_CLOSE:
			evbuffer_add_buffer(u->data, c->in);
			deliver(u, false);
			return;
		case SDK_HTTP_BODY_CHUNKED:
			while (evbuffer_get_length(c->in)) {
				size_t len = evbuffer_get_contiguous_space(c->in);
				const char *in = (const char *)evbuffer_pullup(c->in, (ev_ssize_t)len);
				size_t used, dlen;
				const char *data, *why = NULL;
				int rc = sdk_chunked_step(&u->ch, in, len, &used, &data, &dlen, &why);
				if (rc == SDK_CHUNKED_BAD) {
					fail(u, SDK_UP_BAD_ANSWER, why);
					return;
				}
				if (dlen)
					evbuffer_add(u->data, data, dlen);
				evbuffer_drain(c->in, used);
				if (rc == SDK_CHUNKED_DONE) {
					deliver(u, true);
					return;
				}
			}
			deliver(u, false);
			return;
		default:
			return;
		}
	}
}

static void on_conn_readable(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct uconn *c = arg;
	struct evbuffer_iovec v;
	ssize_t n = -1;
	int saved = ENOMEM;
	if (evbuffer_reserve_space(c->in, READ_CHUNK, &v, 1) >= 1) {
		do
			n = read(fd, v.iov_base, v.iov_len);
		while (n < 0 && errno == EINTR);
		saved = errno;
		v.iov_len = n > 0 ? (size_t)n : 0;
		evbuffer_commit_space(c->in, &v, 1);
	}
	if (n < 0 && (saved == EAGAIN || saved == EWOULDBLOCK))
		return;
	sdk_ureq *u = c->u;
	if (!u) {
		/* An idle connection spoke: the kernel closed it (or sent what
		 * nobody asked for). Either way it can carry nothing more. */
		struct pool *p = c->pool;
		conn_close(c);
		pool_next(p);
		return;
	}
	if (n > 0) {
		conn_process(c);
		return;
	}
	/* EOF or an error with u still waiting. */
	if (u->state == U_SENT && evbuffer_get_length(c->in) == 0) {
		bool reset = n < 0 && (saved == ECONNRESET || saved == EPIPE);
		retry_or_fail(u, SDK_UP_RESET, reset);
		return;
	}
	if (u->state == U_BODY && u->h.body == SDK_HTTP_BODY_CLOSE && n == 0) {
		deliver(u, true); /* the close is its end */
		return;
	}
	fail(u, u->state == U_SENT ? SDK_UP_BAD_ANSWER : SDK_UP_TRUNCATED, NULL);
}

static void on_conn_writable(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct uconn *c = arg;
	if (c->connecting) {
		int err = 0;
		socklen_t sl = sizeof err;
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl);
		c->connecting = false;
		if (err) {
			sdk_ureq *u = c->u;
			if (u)
				retry_or_fail(u, SDK_UP_REFUSED, true);
			else
				conn_close(c);
			return;
		}
	}
	conn_flush(c);
}

static void on_conn_idle_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct uconn *c = arg;
	conn_close(c); /* idle: in the idle list, which conn_close leaves */
}

/* ---- the set of pools ---- */

sdk_upstream *sdk_upstream_new(struct event_base *base, sdk_resolve_fn resolve, void *arg,
			       unsigned pool_max, unsigned queue_max)
{
	sdk_upstream *up = calloc(1, sizeof *up);
	if (!up)
		return NULL;
	up->base = base;
	up->resolve = resolve;
	up->arg = arg;
	up->pool_max = pool_max ? pool_max : 1;
	up->queue_max = queue_max;
	TAILQ_INIT(&up->all);
	TAILQ_INIT(&up->spare);
	struct timeval idle = sdk_ms_tv(POOL_IDLE_MS);
	up->tmo_idle = event_base_init_common_timeout(base, &idle);
	return up;
}

void sdk_upstream_free(sdk_upstream *up)
{
	if (!up)
		return;
	up->freeing = true;
	sdk_ureq *u;
	while ((u = TAILQ_FIRST(&up->all))) {
		if (u->cbs.on_drop)
			u->cbs.on_drop(u->arg);
		u->gone = true;
		ureq_detach(u, false);
		ureq_free(u);
	}
	while ((u = TAILQ_FIRST(&up->spare))) {
		TAILQ_REMOVE(&up->spare, u, alink);
		ureq_destroy(u);
	}
	struct pool *p = up->pools;
	while (p) {
		struct uconn *c;
		while ((c = TAILQ_FIRST(&p->idle)))
			conn_close(c);
		struct pool *next = p->next;
		free(p);
		p = next;
	}
	free(up);
}
