/* The connection side of the HTTP server: accepting (with a cap per
 * address and in all, and a spare descriptor for EMFILE), reading and
 * framing requests, deadlines, writing replies without waiting when the
 * socket takes them, keep-alive and pipelining, and a lingering close so an
 * error answer is read before the connection goes.
 *
 * System calls are counted: a keep-alive request costs one read and one
 * write, and the write event is only added when a write would block. */
#include "sdk/clock.h"
#include "sdk/http_internal.h"
#include "sdk/listen.h"
#include "sdk/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_CHUNK 16384
#define ACCEPTS_PER_WAKEUP 64
#define BUSY_INPUT_MAX 65536     /* pipelined bytes held while a request runs */
#define ACCEPT_BACKOFF_MS 100    /* after EMFILE: let descriptors come back */
#define SHED_LOG_EVERY_MS 10000  /* "connections shed" at most this often */
#define LINGER_MS 2000           /* after a last answer: read and drop theirs */
#define LINGER_BYTES_MAX 1048576
#define FD_HEADROOM 128          /* descriptors kept for files, databases, upstreams */

static void conn_process(sdk_conn *c);
static void conn_timer_arm(sdk_conn *c);

/* ---- the Date header, once a second ---- */

const char *conn_date(sdk_server *s)
{
	time_t now = time(NULL);
	if (now != s->date_sec) {
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(s->date, sizeof s->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
		s->date_sec = now;
	}
	return s->date;
}

/* ---- connections per address ---- */

static uint32_t addr_hash(const struct in6_addr *a)
{
	uint32_t h = 2166136261u;
	for (int i = 0; i < 16; i++)
		h = (h ^ a->s6_addr[i]) * 16777619u;
	return h;
}

/* Finds the slot of `a` (or where it would go). The table is sized at twice
 * the connection cap, so it never fills. */
static size_t addr_find(sdk_server *s, const struct in6_addr *a)
{
	size_t mask = s->addr_cap - 1;
	for (size_t i = addr_hash(a) & mask;; i = (i + 1) & mask)
		if (!s->addrs[i].count || !memcmp(&s->addrs[i].addr, a, sizeof *a))
			return i;
}

/* Linear probing's deletion: move later entries of the run back. */
static void addr_remove(sdk_server *s, size_t i)
{
	size_t mask = s->addr_cap - 1;
	s->addrs[i].count = 0;
	for (size_t j = (i + 1) & mask; s->addrs[j].count; j = (j + 1) & mask) {
		size_t home = addr_hash(&s->addrs[j].addr) & mask;
		/* Entry j may fill the hole at i only if i lies on its probe path. */
		bool movable = i <= j ? (home <= i || home > j) : (home <= i && home > j);
		if (movable) {
			s->addrs[i] = s->addrs[j];
			s->addrs[j].count = 0;
			i = j;
		}
	}
}

/* ---- timers ---- */

static void conn_timer_arm(sdk_conn *c)
{
	sdk_server *s = c->srv;
	const struct timeval *tv = NULL;
	if (evbuffer_get_length(c->out) && c->state != CONN_LINGER)
		tv = s->tmo_io; /* a write is waiting on the client */
	else
		switch (c->state) {
		case CONN_IDLE: tv = s->tmo_idle; break;
		case CONN_HEAD: return; /* armed once, when the head began */
		case CONN_BODY: tv = s->tmo_io; break;
		case CONN_BUSY: tv = NULL; break;
		case CONN_LINGER: return; /* armed once */
		}
	if (tv)
		event_add(c->tmo, tv);
	else
		event_del(c->tmo);
}

/* ---- closing ---- */

static void conn_unlink(sdk_conn *c)
{
	sdk_server *s = c->srv;
	if (!s)
		return;
	if (c->state == CONN_IDLE)
		TAILQ_REMOVE(&s->idle, c, link);
	else
		TAILQ_REMOVE(&s->busy, c, link);
	size_t i = addr_find(s, &c->addr);
	if (--s->addrs[i].count == 0)
		addr_remove(s, i);
	s->n_conns--;
}

static void conn_free(sdk_conn *c)
{
	event_free(c->rev);
	event_free(c->wev);
	event_free(c->tmo);
	evbuffer_free(c->in);
	evbuffer_free(c->out);
	free(c);
}

/* Closes the socket now; the struct goes with its last reference. A
 * request still running learns that its client has gone. */
static void conn_close(sdk_conn *c)
{
	if (c->fd < 0)
		return;
	conn_unlink(c);
	event_del(c->rev);
	event_del(c->wev);
	event_del(c->tmo);
	close(c->fd);
	c->fd = -1;
	c->reading = false;
	evbuffer_drain(c->out, evbuffer_get_length(c->out));
	sdk_req *r = c->req;
	c->req = NULL;
	if (r && c->state == CONN_BUSY)
		req_peer_gone(r); /* the handler still owns it and will end it */
	else if (r)
		req_free(r); /* never dispatched: nobody else holds it; no longer in flight */
	conn_release(c);
}

void conn_release(sdk_conn *c)
{
	if (--c->refs == 0)
		conn_free(c);
}

static void set_state(sdk_conn *c, enum conn_state st)
{
	sdk_server *s = c->srv;
	if (s && c->fd >= 0 && (c->state == CONN_IDLE) != (st == CONN_IDLE)) {
		if (c->state == CONN_IDLE) {
			TAILQ_REMOVE(&s->idle, c, link);
			TAILQ_INSERT_TAIL(&s->busy, c, link);
		} else {
			TAILQ_REMOVE(&s->busy, c, link);
			TAILQ_INSERT_TAIL(&s->idle, c, link);
		}
	}
	c->state = st;
}

/* Our side is done: shut it, then read and drop what the client still
 * sends for a while, so our last answer is not destroyed by a reset. */
static void conn_linger(sdk_conn *c)
{
	set_state(c, CONN_LINGER);
	shutdown(c->fd, SHUT_WR);
	evbuffer_drain(c->in, evbuffer_get_length(c->in));
	if (!c->reading) {
		event_add(c->rev, NULL);
		c->reading = true;
	}
	event_add(c->tmo, c->srv->tmo_linger);
}

/* ---- writing ---- */

size_t conn_backlog(const sdk_conn *c) { return c->fd < 0 ? 0 : evbuffer_get_length(c->out); }

void conn_close_after(sdk_conn *c) { c->close_after = true; }

void conn_abort(sdk_conn *c) { conn_close(c); }

/* The current answer is fully written: what next. */
static void conn_answered(sdk_conn *c)
{
	if (c->close_after || c->srv->draining) {
		conn_linger(c);
		return;
	}
	set_state(c, CONN_IDLE);
	conn_timer_arm(c);
	if (evbuffer_get_length(c->in) && !c->in_loop)
		conn_process(c); /* a pipelined request is waiting */
}

static void flush(sdk_conn *c);

/* Holds a reference while it writes: what it calls (a drained stream's
 * producer, the next pipelined request) may end the request that held
 * the connection. */
void conn_flush(sdk_conn *c)
{
	if (c->fd < 0)
		return;
	c->refs++;
	flush(c);
	conn_release(c);
}

static void flush(sdk_conn *c)
{
	while (evbuffer_get_length(c->out)) {
		int n = evbuffer_write(c->out, c->fd);
		if (n > 0)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			event_add(c->wev, NULL);
			conn_timer_arm(c);
			return;
		}
		if (n < 0 && errno == EINTR)
			continue;
		conn_close(c); /* EPIPE, ECONNRESET: the client has gone */
		return;
	}
	event_del(c->wev);
	if (c->state == CONN_BUSY && !c->req) {
		conn_answered(c);
	} else if (c->state == CONN_BUSY && c->req) {
		conn_timer_arm(c);
		req_drained(c->req);
	}
}

void conn_reply_queued(sdk_conn *c)
{
	/* The request is ending (req_free follows at once): forget it. */
	c->req = NULL;
	if (c->fd < 0)
		return;
	conn_flush(c);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	sdk_conn *c = arg;
	c->refs++;
	conn_flush(c);
	conn_release(c);
}

/* ---- reading ---- */

/* One read per readiness: reading again only to learn EAGAIN would cost a
 * system call per request; the event loop says when there is more. */
static ssize_t conn_read(sdk_conn *c)
{
	struct evbuffer_iovec v;
	if (evbuffer_reserve_space(c->in, READ_CHUNK, &v, 1) < 1) {
		errno = ENOMEM;
		return -1;
	}
	ssize_t n;
	do
		n = read(c->fd, v.iov_base, v.iov_len);
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		v.iov_len = 0;
		evbuffer_commit_space(c->in, &v, 1);
		return n;
	}
	v.iov_len = (size_t)n;
	evbuffer_commit_space(c->in, &v, 1);
	return n;
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	sdk_conn *c = arg;
	ssize_t n = conn_read(c);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	c->refs++;
	if (c->state == CONN_LINGER) {
		if (n <= 0 || evbuffer_get_length(c->in) > LINGER_BYTES_MAX)
			conn_close(c);
		else
			evbuffer_drain(c->in, evbuffer_get_length(c->in));
	} else if (n <= 0) {
		/* Closed, reset, or half-closed: as nginx does, a client that
		 * shuts its side has gone, and a request it left running is told
		 * (a proxied request or a long poll cancels at once). */
		conn_close(c);
	} else {
		conn_process(c);
	}
	conn_release(c);
}

static void refuse(sdk_conn *c, int status, const char *code, const char *msg)
{
	sdk_req *r = c->req;
	if (!r) {
		r = c->req = req_new(c, "", 0);
		if (!r) {
			conn_close(c);
			return;
		}
	}
	/* It never reached a route: the answer is all it gets. */
	set_state(c, CONN_BUSY);
	evbuffer_drain(c->in, evbuffer_get_length(c->in));
	req_refuse(r, status, code, msg);
}

static const char *refusal_code(int status, const char *why)
{
	switch (status) {
	case 413: return "body_too_large";
	case 414: return "uri_too_long";
	case 417: return "expectation_failed";
	case 501: return "not_implemented";
	case 505: return "http_version_not_supported";
	case 431: return strstr(why, "too many") ? "bad_framing" : "headers_too_large";
	default:
		if (strstr(why, "Host"))
			return "bad_host";
		if (strstr(why, "request line") || strstr(why, "method") || strstr(why, "target") ||
		    strstr(why, "version"))
			return "bad_request";
		return "bad_framing";
	}
}

/* The methods a route table can name; any other token is answered 501. */
static bool method_known(const char *m)
{
	static const char *const known[] = { "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH" };
	for (size_t i = 0; i < sizeof known / sizeof *known; i++)
		if (!strcmp(m, known[i]))
			return true;
	return false;
}

/* 413, naming the limit passed: the route's own, or the server's. */
static void refuse_too_large(sdk_conn *c, bool route, size_t max)
{
	char msg[112];
	snprintf(msg, sizeof msg, "the body is over %s %zu bytes",
		 route ? "this route's" : "this server's", max);
	refuse(c, 413, "body_too_large", msg);
}

/* The body of `r` would pass the server's max_body_bytes: asks, once, the
 * server's body_limit how much it may send (its route and credentials,
 * from the head alone), and reserves what it may hold from the server's
 * budget for such bodies. `want`: the Content-Length, or 0 for a chunked
 * body (its whole allowance is reserved). Returns false after refusing
 * it: 413, or 503 while the budget is spent. */
static bool body_allow(sdk_conn *c, sdk_req *r, uint64_t want)
{
	sdk_server *s = c->srv;
	size_t max = s->opts.limits.max_body_bytes, lim = max;
	if (!r->body_asked && s->opts.body_limit) {
		char path[SDK_PATH_MAX];
		bool ok;
		const sdk_route *route = req_route_early(r, path, &ok);
		if (ok)
			lim = s->opts.body_limit(r, route, r->h.method, path, s->opts.ctx);
	}
	r->body_asked = true;
	if (lim <= max || want > lim) {
		refuse_too_large(c, lim > max, lim > max ? lim : max);
		return false;
	}
	size_t need = want ? (size_t)want : lim;
	if (need > SDK_LARGE_BODIES_MAX - s->large_bodies) {
		sdk_req_add_header(r, "Retry-After", "1");
		refuse(c, 503, "busy", "too many large bodies are being received; try again shortly");
		return false;
	}
	s->large_bodies += need;
	r->body_reserved = need;
	r->body_max = lim;
	return true;
}

/* A complete head is at the front of c->in: make it a request. Returns
 * false when the connection cannot go on (an answer was queued). */
static bool take_head(sdk_conn *c, size_t end)
{
	sdk_server *s = c->srv;
	const char *p = (const char *)evbuffer_pullup(c->in, (ev_ssize_t)end);
	sdk_req *r = p ? req_new(c, p, end) : NULL;
	evbuffer_drain(c->in, end);
	c->scan = 0;
	if (!r) {
		conn_close(c);
		return false;
	}
	c->req = r;
	const char *why = NULL;
	int st = sdk_http_parse_request(r->head, end, s->opts.limits.max_headers, &r->h, &why);
	if (st == 0 && !method_known(r->h.method)) {
		st = 501;
		why = "this method is not implemented";
	}
	if (st) {
		if (r->h.minor != 0)
			r->h.minor = 1;
		refuse(c, st, refusal_code(st, why), why);
		return false;
	}
	if (r->h.body == SDK_HTTP_BODY_LENGTH && r->h.content_length > s->opts.limits.max_body_bytes &&
	    !body_allow(c, r, r->h.content_length))
		return false;
	if (r->h.body == SDK_HTTP_BODY_NONE) {
		set_state(c, CONN_BUSY);
		return true;
	}
	c->body_left = r->h.content_length;
	c->chunk = (sdk_chunked){ 0 };
	r->body = evbuffer_new();
	if (!r->body) {
		conn_close(c);
		return false;
	}
	set_state(c, CONN_BODY);
	if (r->h.expect_continue && evbuffer_get_length(c->in) == 0) {
		evbuffer_add(c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
		conn_flush(c);
	}
	return c->fd >= 0;
}

/* Moves body bytes from c->in to the request. Returns 1 when the body is
 * complete, 0 when more must come, -1 after refusing it. */
static int take_body(sdk_conn *c)
{
	sdk_req *r = c->req;
	if (r->h.body == SDK_HTTP_BODY_LENGTH) {
		size_t avail = evbuffer_get_length(c->in);
		size_t n = avail < c->body_left ? avail : (size_t)c->body_left;
		evbuffer_remove_buffer(c->in, r->body, n);
		c->body_left -= n;
		return c->body_left == 0;
	}
	while (evbuffer_get_length(c->in)) {
		size_t len = evbuffer_get_contiguous_space(c->in);
		const char *in = (const char *)evbuffer_pullup(c->in, (ev_ssize_t)len);
		size_t used, dlen;
		const char *data, *why = NULL;
		int rc = sdk_chunked_step(&c->chunk, in, len, &used, &data, &dlen, &why);
		if (rc == SDK_CHUNKED_BAD) {
			refuse(c, 400, "bad_framing", why);
			return -1;
		}
		if (dlen) {
			size_t have = evbuffer_get_length(r->body) + dlen;
			size_t max = r->body_max ? r->body_max : c->srv->opts.limits.max_body_bytes;
			if (have > max) {
				if (!r->body_asked) /* the first time past the server's limit */
					if (!body_allow(c, r, 0))
						return -1;
				if (have > r->body_max) { /* past what it was allowed */
					refuse_too_large(c, true, r->body_max);
					return -1;
				}
			}
			evbuffer_add(r->body, data, dlen);
		}
		evbuffer_drain(c->in, used);
		if (rc == SDK_CHUNKED_DONE)
			return 1;
	}
	return 0;
}

/* Reads requests out of c->in for as long as there are complete ones and
 * no request is running. */
static void conn_process(sdk_conn *c)
{
	sdk_server *s = c->srv;
	c->in_loop = true;
	while (c->fd >= 0) {
		if (c->state == CONN_IDLE || c->state == CONN_HEAD) {
			size_t len = evbuffer_get_length(c->in);
			if (len == 0)
				break;
			size_t lim = s->opts.limits.max_header_bytes;
			size_t look = len < lim ? len : lim;
			const char *p = (const char *)evbuffer_pullup(c->in, (ev_ssize_t)look);
			size_t end = p ? sdk_http_head_end(p, look, &c->scan) : 0;
			if (!end) {
				if (len >= lim) {
					bool line = p && memchr(p, '\n', look);
					refuse(c, line ? 431 : 414, line ? "headers_too_large" : "uri_too_long",
					       line ? "the request head is over this server's limit"
						    : "the request line is over this server's limit");
					break;
				}
				if (c->state == CONN_IDLE) {
					/* The whole head must come within the deadline. */
					set_state(c, CONN_HEAD);
					event_add(c->tmo, s->tmo_head);
				}
				break;
			}
			if (!take_head(c, end))
				break;
		}
		if (c->state == CONN_BODY) {
			int rc = take_body(c);
			if (rc < 0)
				break;
			if (rc == 0) {
				conn_timer_arm(c);
				break;
			}
			set_state(c, CONN_BUSY);
		}
		if (c->state == CONN_BUSY && c->req && !c->req->finished && !c->req->method[0]) {
			conn_timer_arm(c);
			if (evbuffer_get_length(c->out))
				conn_flush(c); /* a 100 Continue */
			req_dispatch(c->req);
			continue; /* answered at once, or later */
		}
		break;
	}
	c->in_loop = false;
	if (c->fd < 0)
		return;
	/* Reading on while a request runs tells us if its client goes, but
	 * only so many pipelined bytes are held. */
	bool want = !(c->state == CONN_BUSY && evbuffer_get_length(c->in) >= BUSY_INPUT_MAX);
	if (want != c->reading) {
		if (want)
			event_add(c->rev, NULL);
		else
			event_del(c->rev);
		c->reading = want;
	}
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	sdk_conn *c = arg;
	c->refs++;
	switch (c->state) {
	case CONN_HEAD:
	case CONN_BODY:
		refuse(c, 408, "request_timeout",
		       c->state == CONN_HEAD ? "the request head did not arrive in time"
					     : "the request body stopped arriving");
		break;
	default:
		conn_close(c); /* idle, lingering, or a client that stopped reading */
		break;
	}
	conn_release(c);
}

/* ---- accepting ---- */

/* An answer for a connection refused before it was read: best effort, on
 * a socket we close at once. */
static void shed(sdk_server *s, int fd, const char *why)
{
	char buf[4096];
	(void)!read(fd, buf, sizeof buf); /* what came already: a close then sends FIN, not RST */
	char id[33];
	sdk_request_id_new(id);
	char body[256], msg[512];
	int bn = snprintf(body, sizeof body,
			  "{\"error\":{\"code\":\"too_many_connections\",\"message\":\"%s\","
			  "\"request_id\":\"%s\"}}\n",
			  why, id);
	int n = snprintf(msg, sizeof msg,
			 "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
			 "Content-Length: %d\r\nRetry-After: 1\r\nX-Request-Id: %s\r\n"
			 "Connection: close\r\n\r\n%s",
			 bn, id, body);
	(void)!write(fd, msg, (size_t)n);
	close(fd);
	s->shed_total++;
	s->shed_since_log++;
	int64_t now = sdk_mono_ms();
	if (now - s->shed_logged_ms >= SHED_LOG_EVERY_MS) {
		sdk_warn("%llu connection(s) shed in the last %d s (%s); %llu in all",
			 (unsigned long long)s->shed_since_log, SHED_LOG_EVERY_MS / 1000, why,
			 (unsigned long long)s->shed_total);
		s->shed_logged_ms = now;
		s->shed_since_log = 0;
	}
}

static void to_v6(const struct sockaddr_storage *ss, struct in6_addr *a, char *text)
{
	memset(a, 0, sizeof *a);
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
		a->s6_addr[10] = a->s6_addr[11] = 0xff;
		memcpy(&a->s6_addr[12], &in->sin_addr, 4);
		inet_ntop(AF_INET, &in->sin_addr, text, PEER_MAX);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
		*a = in6->sin6_addr;
		inet_ntop(AF_INET6, &in6->sin6_addr, text, PEER_MAX);
	} else {
		snprintf(text, PEER_MAX, "local");
	}
}

static void conn_new(sdk_server *s, int fd, const struct sockaddr_storage *ss)
{
	struct in6_addr a;
	char peer[PEER_MAX];
	to_v6(ss, &a, peer);
	if (s->n_conns >= s->max_conns) {
		/* Full: make room by closing the connection idle the longest
		 * (a client may always lose an idle keep-alive connection). */
		sdk_conn *old = TAILQ_FIRST(&s->idle);
		if (!old) {
			shed(s, fd, "the server is at its connection limit");
			return;
		}
		conn_close(old);
	}
	size_t i = addr_find(s, &a);
	if (s->addrs[i].count >= s->per_addr_max) {
		shed(s, fd, "too many connections from this address");
		return;
	}
	sdk_conn *c = calloc(1, sizeof *c);
	if (!c) {
		close(fd);
		return;
	}
	c->srv = s;
	c->fd = fd;
	c->refs = 1;
	c->in = evbuffer_new();
	c->out = evbuffer_new();
	c->rev = event_new(s->base, fd, EV_READ | EV_PERSIST, on_readable, c);
	c->wev = event_new(s->base, fd, EV_WRITE, on_writable, c);
	c->tmo = evtimer_new(s->base, on_timeout, c);
	if (!c->in || !c->out || !c->rev || !c->wev || !c->tmo) {
		if (c->in)
			evbuffer_free(c->in);
		if (c->out)
			evbuffer_free(c->out);
		if (c->rev)
			event_free(c->rev);
		if (c->wev)
			event_free(c->wev);
		if (c->tmo)
			event_free(c->tmo);
		free(c);
		close(fd);
		return;
	}
	memcpy(c->peer, peer, sizeof peer);
	s->addrs[i].addr = a;
	s->addrs[i].count++;
	c->addr = a;
	s->n_conns++;
	c->state = CONN_IDLE;
	TAILQ_INSERT_TAIL(&s->idle, c, link);
	event_add(c->rev, NULL);
	c->reading = true;
	/* The first request has the head deadline from the start: a client
	 * that connects and says nothing is a slow head. */
	set_state(c, CONN_HEAD);
	event_add(c->tmo, s->tmo_head);
}

void sdk_server_adopt(sdk_server *s, int fd, const struct sockaddr *peer, unsigned peer_len)
{
	struct sockaddr_storage ss = { .ss_family = AF_UNSPEC };
	if (peer && peer_len <= sizeof ss)
		memcpy(&ss, peer, peer_len);
	if (s->draining) {
		close(fd);
		return;
	}
	conn_new(s, fd, &ss);
}

static void on_accept_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	sdk_server *s = arg;
	if (s->lfd >= 0 && !s->draining)
		event_add(s->accept_ev, NULL);
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
	(void)what;
	sdk_server *s = arg;
	for (int k = 0; k < ACCEPTS_PER_WAKEUP; k++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			conn_new(s, fd, &ss);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			/* Out of descriptors: spend the spare one to take the
			 * connection off the queue and tell it, then pause
			 * accepting instead of spinning on a queue we cannot empty. */
			if (s->reserve_fd >= 0) {
				close(s->reserve_fd);
				s->reserve_fd = -1;
				int x = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
				if (x >= 0)
					shed(s, x, "the server is out of file descriptors");
				s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
			} else {
				s->shed_since_log++;
			}
			event_del(s->accept_ev);
			struct timeval tv = sdk_ms_tv(ACCEPT_BACKOFF_MS);
			evtimer_add(s->accept_retry, &tv);
		}
		return; /* EAGAIN, or paused */
	}
}

/* ---- the server ---- */

static unsigned fd_budget(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		return 1u << 20;
	return rl.rlim_cur > FD_HEADROOM * 2 ? (unsigned)(rl.rlim_cur - FD_HEADROOM) : 16;
}

sdk_server *sdk_server_new(struct event_base *base, const sdk_server_opts *opts)
{
	sdk_server *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->base = base;
	s->opts = *opts;
	s->lfd = -1;
	s->reserve_fd = -1;
	s->started = s->last_request = sdk_mono_now();
	TAILQ_INIT(&s->idle);
	TAILQ_INIT(&s->busy);
	const grace_limits *l = &opts->limits;
	unsigned budget = fd_budget();
	s->max_conns = l->max_connections && l->max_connections < budget ? l->max_connections : budget;
	s->per_addr_max = l->max_connections_per_address ? l->max_connections_per_address
							  : s->max_conns;
	for (s->addr_cap = 16; s->addr_cap < 2 * (size_t)s->max_conns; s->addr_cap *= 2)
		;
	s->addrs = calloc(s->addr_cap, sizeof *s->addrs);
	s->labels = calloc(opts->n_routes ? opts->n_routes : 1, sizeof *s->labels);
	s->accept_retry = evtimer_new(base, on_accept_retry, s);
	if (!s->addrs || !s->labels || !s->accept_retry)
		goto fail;
	for (size_t i = 0; i < opts->n_routes; i++)
		s->labels[i] = opts->routes[i].pattern.path;
	s->metrics = sdk_metrics_new(s->labels, opts->n_routes);
	if (!s->metrics)
		goto fail;
	struct timeval head = sdk_ms_tv(l->head_timeout_ms ? l->head_timeout_ms : l->timeout_ms);
	struct timeval io = sdk_ms_tv(l->timeout_ms);
	struct timeval idle = sdk_ms_tv(l->keepalive_ms ? l->keepalive_ms : l->timeout_ms);
	struct timeval linger = sdk_ms_tv(LINGER_MS);
	/* Common timeouts: libevent keeps each as a queue, O(1) to re-arm. */
	s->tmo_head = event_base_init_common_timeout(base, &head);
	s->tmo_io = event_base_init_common_timeout(base, &io);
	s->tmo_idle = event_base_init_common_timeout(base, &idle);
	s->tmo_linger = event_base_init_common_timeout(base, &linger);
	if (!s->tmo_head || !s->tmo_io || !s->tmo_idle || !s->tmo_linger)
		goto fail;
	return s;
fail:
	sdk_server_free(s);
	return NULL;
}

int sdk_server_listen(sdk_server *s, int fd)
{
	evutil_make_socket_nonblocking(fd);
	evutil_make_socket_closeonexec(fd);
	/* Accepted sockets inherit it on Linux: an answer larger than one
	 * segment must not wait for the client's delayed ACK (40 ms). */
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	s->accept_ev = event_new(s->base, fd, EV_READ | EV_PERSIST, on_accept, s);
	if (!s->accept_ev || event_add(s->accept_ev, NULL) < 0) {
		close(fd);
		return -1;
	}
	s->lfd = fd;
	if (s->reserve_fd < 0)
		s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	return 0;
}

double sdk_server_quiet_ms(const sdk_server *s) { return sdk_ms_since(&s->last_request); }

void sdk_server_stop_accepting(sdk_server *s)
{
	s->draining = true;
	if (s->accept_ev)
		event_del(s->accept_ev);
	event_del(s->accept_retry);
	/* The socket is not closed: the supervisor holds it too, and the
	 * connections in its backlog are the next process's. */
	s->lfd = -1;
}

unsigned sdk_server_inflight(const sdk_server *s) { return s->inflight; }

double sdk_server_uptime(const sdk_server *s) { return sdk_ms_since(&s->started) / 1e3; }

void sdk_server_render_metrics(const sdk_server *s, struct evbuffer *out)
{
	sdk_metrics_render(s->metrics, s->opts.component, sdk_server_uptime(s), out);
	evbuffer_add_printf(out,
			    "# HELP grace_http_connections Open HTTP connections.\n"
			    "# TYPE grace_http_connections gauge\n"
			    "grace_http_connections{kernel=\"%s\"} %u\n"
			    "# HELP grace_http_connections_shed_total Connections refused at a limit.\n"
			    "# TYPE grace_http_connections_shed_total counter\n"
			    "grace_http_connections_shed_total{kernel=\"%s\"} %llu\n",
			    s->opts.component, s->n_conns, s->opts.component,
			    (unsigned long long)s->shed_total);
	if (s->opts.metrics_extra)
		s->opts.metrics_extra(out, s->opts.ctx);
}

void sdk_server_free(sdk_server *s)
{
	if (!s)
		return;
	sdk_conn *c;
	while ((c = TAILQ_FIRST(&s->idle)) || (c = TAILQ_FIRST(&s->busy))) {
		if (c->req)
			c->req->srv = NULL; /* a handler still holds it: its reply goes nowhere */
		c->refs++;
		conn_close(c);
		c->srv = NULL;
		conn_release(c);
	}
	while (s->spare) {
		sdk_req *r = s->spare;
		s->spare = r->spare_next;
		free(r);
	}
	if (s->accept_ev)
		event_free(s->accept_ev);
	if (s->accept_retry)
		event_free(s->accept_retry);
	if (s->reserve_fd >= 0)
		close(s->reserve_fd);
	sdk_metrics_free(s->metrics);
	free(s->addrs);
	free(s->labels);
	free(s);
}
