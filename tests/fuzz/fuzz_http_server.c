/* The HTTP server as a client meets it (src/sdk/http_conn.c and http.c):
 * the input is what one client sends on one connection (pipelined
 * requests, bodies, garbage), to a real sdk_server on a Unix socket with a
 * small route table and small limits, on a libevent loop run by hand.
 *
 * Properties (a failure aborts):
 *  - what the server writes back is a sequence of complete HTTP/1.1
 *    responses (after any 100 Continue), framed by their own heads, with
 *    nothing after one that says Connection: close;
 *  - every response has a Date and an X-Request-Id; every error is
 *    Grace's JSON {"error":{"code","message","request_id"}} with that id;
 *    a 405 says Allow;
 *  - one response per request, in order: as many as the requests a
 *    reading of the same bytes with the same parser finds complete, plus
 *    one refusal if the bytes then go wrong (none after a request that is
 *    never answered: the rest waits behind it); the echo route reports each
 *    request's method and its body (length and hash) as that reading
 *    decodes them, across the reads and buffers of the connection;
 *  - the same bytes sent in pieces get the same answers;
 *  - the connection is closed once the client has finished, and no request
 *    is left running (one that never answers, as a long poll, ends when its
 *    client goes; one that answers later, as a proxied one, is answered). */
#include "sdk/http.h"
#include "sdk/http_internal.h"
#include "sdk/http_parse.h"
#include "sdk/log.h"

#include "fuzz.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>
#include <signal.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define HEAD_MAX 2048 /* the server's limits here: small, to be reached */
#define FIELDS_MAX 16
#define BODY_MAX 1024
#define INPUT_MAX 16384
#define REQS_MAX 256
#define ITER_MAX 100000
#define QUIET_TURNS 3 /* turns of the loop without an answer: the server is waiting */

static struct event_base *base;
static sdk_server *srv;
static struct sockaddr_un addr;
static socklen_t addr_len;

static uint64_t fnv(const char *p, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
	return h;
}

/* ---- the routes ---- */

static void on_echo(sdk_req *r, void *ctx)
{
	(void)ctx;
	struct evbuffer *b = sdk_req_body(r);
	size_t n = evbuffer_get_length(b);
	const char *p = n ? (const char *)evbuffer_pullup(b, -1) : "";
	char hash[17];
	snprintf(hash, sizeof hash, "%016llx", (unsigned long long)fnv(p, n));
	sdk_reply_json(r, 200,
		       json_pack("{s:s, s:I, s:s, s:I, s:b}", "method", sdk_req_method(r), "len",
				 (json_int_t)n, "hash", hash, "path_len",
				 (json_int_t)strlen(sdk_req_path(r)), "query_ok", sdk_req_query_ok(r)));
}

static void on_json(sdk_req *r, void *ctx)
{
	(void)ctx;
	json_t *j = sdk_req_json(r, true);
	if (j)
		sdk_reply_json(r, 200, json_pack("{s:I}", "keys", (json_int_t)json_object_size(j)));
}

static void on_stream(sdk_req *r, void *ctx)
{
	(void)ctx;
	sdk_reply_stream_start(r, 200, "text/plain", NULL, NULL);
	struct evbuffer *b = evbuffer_new();
	for (int i = 0; i < 3 && b; i++) {
		evbuffer_add_printf(b, "part %d\n", i);
		sdk_reply_stream_chunk(r, b);
	}
	if (b)
		evbuffer_free(b);
	sdk_reply_stream_end(r);
}

static void on_item(sdk_req *r, void *ctx)
{
	(void)ctx;
	sdk_reply_json(r, 200, json_pack("{s:I}", "id_len", (json_int_t)strlen(sdk_req_param(r, "id"))));
}

/* Answers on the next turn of the loop, as a handler that waits on a
 * worker or an upstream does. */
static void later_answer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	sdk_reply_json(arg, 200, json_pack("{s:b}", "later", 1));
}

static void on_later(sdk_req *r, void *ctx)
{
	(void)ctx;
	static const struct timeval now = { 0, 0 };
	FUZZ_CHECK(event_base_once(base, -1, EV_TIMEOUT, later_answer, r, &now) == 0, "once");
}

/* Never answers: ends only when its client goes (a long poll). */
static void never_gone(sdk_req *r, void *arg)
{
	(void)arg;
	sdk_reply_error(r, 503, "gone", "the client left");
}

static void on_never(sdk_req *r, void *ctx)
{
	(void)ctx;
	sdk_req_on_close(r, never_gone, NULL);
}

static const sdk_route routes[] = {
	SDK_ROUTE("GET", "/later", on_later),
	SDK_ROUTE("GET", "/never", on_never),
	SDK_ROUTE(NULL, "/echo", on_echo),
	SDK_ROUTE("POST", "/json", on_json),
	SDK_ROUTE("GET", "/stream", on_stream),
	SDK_ROUTE("GET", "/items/:id", on_item),
	SDK_ROUTE("DELETE", "/items/:id", on_item),
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	signal(SIGPIPE, SIG_IGN);
	sdk_log_init("fuzz", SDK_LOG_ERROR); /* a 501 is no news here */
	base = event_base_new();
	sdk_server_opts o = {
		.component = "fuzz",
		.routes = routes,
		.n_routes = sizeof routes / sizeof *routes,
		.limits = { .max_header_bytes = HEAD_MAX, .max_headers = FIELDS_MAX,
			    .max_body_bytes = BODY_MAX, .timeout_ms = 60000,
			    .head_timeout_ms = 60000, .keepalive_ms = 60000 },
	};
	srv = base ? sdk_server_new(base, &o) : NULL;
	int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	FUZZ_CHECK(srv && lfd >= 0, "server");
	/* An abstract socket: no file to remove. */
	addr.sun_family = AF_UNIX;
	int n = snprintf(addr.sun_path + 1, sizeof addr.sun_path - 1, "grace-fuzz-%d", (int)getpid());
	addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
	FUZZ_CHECK(bind(lfd, (struct sockaddr *)&addr, addr_len) == 0 && listen(lfd, 16) == 0 &&
			   sdk_server_listen(srv, lfd) == 0,
		   "listen: %s", strerror(errno));
	return 0;
}

/* ---- what the server should make of the bytes ---- */

struct wreq {
	char method[16];
	bool head_only;
	bool never; /* GET (or HEAD) /never */
	size_t body_len;
	uint64_t hash;
};

struct walk {
	struct wreq r[REQS_MAX];
	size_t n;      /* requests dispatched, answered one each */
	bool refused;  /* then one more answer, and the connection closes */
	bool never;    /* then a request that is never answered */
};

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
					    : c >= 'A' && c <= 'F' ? c - 'A' + 10
								   : -1;
}

/* The path the router sees, as path_decode makes it: false when it
 * refuses it (a 400). */
static bool decoded_path(const char *t, char *out, size_t cap)
{
	size_t n = strcspn(t, "?"), o = 0;
	if (t[0] != '/' || n >= cap)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (t[i] != '%') {
			out[o++] = t[i];
			continue;
		}
		int hi = i + 2 < n ? hexval(t[i + 1]) : -1, lo = hi >= 0 ? hexval(t[i + 2]) : -1;
		if (lo < 0 || (hi | lo) == 0)
			return false;
		out[o++] = (char)(hi << 4 | lo);
		i += 2;
	}
	out[o] = '\0';
	return true;
}

static bool method_known(const char *m)
{
	static const char *const known[] = { "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH" };
	for (size_t i = 0; i < sizeof known / sizeof *known; i++)
		if (!strcmp(m, known[i]))
			return true;
	return false;
}

static sdk_http_head wh;

/* Reads the bytes as the connection must: heads within HEAD_MAX, bodies
 * by their framing within BODY_MAX; stops at the first refusal, at a
 * request that closes the connection, or where the bytes run out. */
static void walk(const char *in, size_t n, struct walk *w)
{
	size_t pos = 0;
	w->n = 0;
	w->refused = w->never = false;
	static char body[BODY_MAX + 1];
	while (pos < n && w->n < REQS_MAX) {
		size_t look = n - pos < HEAD_MAX ? n - pos : HEAD_MAX, scan = 0;
		size_t end = sdk_http_head_end(in + pos, look, &scan);
		if (!end) {
			w->refused = n - pos >= HEAD_MAX;
			return;
		}
		char *head = fuzz_copy((const uint8_t *)in + pos, end, 1);
		const char *why;
		int st = sdk_http_parse_request(head, end, FIELDS_MAX, &wh, &why);
		if (st || !method_known(wh.method) ||
		    (wh.body == SDK_HTTP_BODY_LENGTH && wh.content_length > BODY_MAX)) {
			free(head);
			w->refused = true;
			return;
		}
		struct wreq *r = &w->r[w->n];
		snprintf(r->method, sizeof r->method, "%s", wh.method);
		r->head_only = !strcmp(wh.method, "HEAD");
		static char path[SDK_PATH_MAX];
		r->never = (r->head_only || !strcmp(wh.method, "GET")) &&
			   decoded_path(wh.target, path, sizeof path) && !strcmp(path, "/never");
		bool keep = wh.keep_alive;
		enum sdk_http_body framing = wh.body;
		uint64_t cl = wh.content_length;
		free(head);
		pos += end;
		size_t blen = 0;
		if (framing == SDK_HTTP_BODY_LENGTH) {
			if (n - pos < cl)
				return; /* the body never completes */
			memcpy(body, in + pos, (size_t)cl);
			blen = (size_t)cl;
			pos += (size_t)cl;
		} else if (framing == SDK_HTTP_BODY_CHUNKED) {
			sdk_chunked c = { 0 };
			int rc = SDK_CHUNKED_MORE;
			while (pos < n) {
				size_t used, dlen;
				const char *d;
				rc = sdk_chunked_step(&c, in + pos, n - pos, &used, &d, &dlen, &why);
				if (rc == SDK_CHUNKED_BAD) {
					w->refused = true;
					return;
				}
				if (blen + dlen > BODY_MAX) {
					w->refused = true;
					return;
				}
				memcpy(body + blen, d ? d : "", dlen);
				blen += dlen;
				pos += used;
				if (rc == SDK_CHUNKED_DONE)
					break;
			}
			if (rc != SDK_CHUNKED_DONE)
				return;
		}
		r->body_len = blen;
		r->hash = fnv(body, blen);
		if (r->never) {
			w->never = true; /* dispatched, unanswered, and nothing after it read */
			return;
		}
		w->n++;
		if (!keep)
			return;
	}
}

/* ---- what the server wrote ---- */

struct answer {
	int status;
	char code[48];   /* the error's code, or "" */
	char echo[160];  /* the echo's method, length and hash, or "" */
};

static bool json_error_shape(json_t *j, const char *rid, struct answer *a)
{
	json_t *e = json_object_get(j, "error");
	if (!json_is_object(e) || json_object_size(j) != 1 || json_object_size(e) != 3)
		return false;
	const char *code = json_string_value(json_object_get(e, "code"));
	const char *id = json_string_value(json_object_get(e, "request_id"));
	if (!code || !json_is_string(json_object_get(e, "message")) || !id || strcmp(id, rid))
		return false;
	snprintf(a->code, sizeof a->code, "%s", code);
	return true;
}

/* Parses the server's bytes into answers; `w` says which were to HEAD. */
static size_t answers(const char *out, size_t n, const struct walk *w, struct answer *as,
		      size_t max)
{
	size_t pos = 0, k = 0;
	static sdk_http_head h;
	while (pos < n) {
		size_t scan = 0, end = sdk_http_head_end(out + pos, n - pos, &scan);
		FUZZ_CHECK(end, "an unfinished response head at %zu of %zu: %.*s", pos, n,
			   (int)(n - pos < 200 ? n - pos : 200), out + pos);
		char *head = fuzz_copy((const uint8_t *)out + pos, end, 1);
		bool to_head = k < w->n && w->r[k].head_only;
		const char *why = NULL;
		FUZZ_CHECK(sdk_http_parse_response(head, end, 64, to_head, &h, &why) == 0,
			   "a malformed response head (%s): %.*s", why, (int)end, out + pos);
		pos += end;
		if (h.status < 200) {
			FUZZ_CHECK(h.status == 100, "status %d", h.status);
			free(head);
			continue;
		}
		FUZZ_CHECK(k < max, "more answers than requests");
		struct answer *a = &as[k++];
		memset(a, 0, sizeof *a);
		a->status = h.status;
		const char *rid = sdk_http_field_get(&h, "X-Request-Id");
		FUZZ_CHECK(rid && *rid && sdk_http_field_get(&h, "Date"), "no X-Request-Id or Date");
		size_t blen = 0;
		const char *b = out + pos;
		char *decoded = NULL;
		if (h.body == SDK_HTTP_BODY_LENGTH) {
			FUZZ_CHECK(n - pos >= h.content_length, "a body cut short");
			blen = (size_t)h.content_length;
			pos += blen;
		} else if (h.body == SDK_HTTP_BODY_CHUNKED) {
			sdk_chunked c = { 0 };
			decoded = malloc(n - pos + 1);
			int rc = SDK_CHUNKED_MORE;
			while (pos < n && rc == SDK_CHUNKED_MORE) {
				size_t used, dlen;
				const char *d;
				rc = sdk_chunked_step(&c, out + pos, n - pos, &used, &d, &dlen, &why);
				FUZZ_CHECK(rc != SDK_CHUNKED_BAD, "bad chunking from the server: %s", why);
				memcpy(decoded + blen, d ? d : "", dlen);
				blen += dlen;
				pos += used;
			}
			FUZZ_CHECK(rc == SDK_CHUNKED_DONE, "a chunked body cut short");
			b = decoded;
		} else if (h.body == SDK_HTTP_BODY_CLOSE) {
			blen = n - pos;
			pos = n;
		}
		if (h.status >= 400) {
			const char *ct = sdk_http_field_get(&h, "Content-Type");
			FUZZ_CHECK(ct && !strcmp(ct, "application/json"), "an error that is not JSON");
			if (!to_head) {
				json_t *j = json_loadb(b, blen, 0, NULL);
				FUZZ_CHECK(json_error_shape(j, rid, a), "%d: not Grace's error shape: %.*s",
					   h.status, (int)blen, b);
				json_decref(j);
			}
			if (h.status == 405) {
				const char *allow = sdk_http_field_get(&h, "Allow");
				FUZZ_CHECK(allow && *allow, "a 405 without Allow");
			}
		} else if (h.status == 200 && !to_head && blen && b[0] == '{') {
			json_t *j = json_loadb(b, blen, 0, NULL);
			FUZZ_CHECK(j, "a 200 answer that is not JSON: %.*s", (int)blen, b);
			const char *m = json_string_value(json_object_get(j, "method"));
			if (m)
				snprintf(a->echo, sizeof a->echo, "%s %lld %s", m,
					 (long long)json_integer_value(json_object_get(j, "len")),
					 json_string_value(json_object_get(j, "hash")));
			json_decref(j);
		}
		free(decoded);
		free(head);
		if (!h.keep_alive)
			FUZZ_CHECK(pos == n, "%zu bytes after a last answer", n - pos);
	}
	return k;
}

/* ---- one connection ---- */

static char *out;
static size_t out_len, out_cap;

/* Sends in[0..n) in pieces of at most max_piece bytes (0: at once),
 * turning the loop between them; returns what came back. */
static void converse(const char *in, size_t n, uint64_t *rng, size_t max_piece)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
	FUZZ_CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&addr, addr_len) == 0, "connect: %s",
		   strerror(errno));
	out_len = 0;
	size_t sent = 0, quiet = 0;
	bool eof = false, shut = false;
	for (int iter = 0;; iter++) {
		FUZZ_CHECK(iter < ITER_MAX, "the connection neither ends nor moves");
		if (sent < n) {
			size_t piece = max_piece ? fuzz_step(rng, max_piece) : n - sent;
			if (piece > n - sent)
				piece = n - sent;
			ssize_t k = send(fd, in + sent, piece, MSG_NOSIGNAL);
			if (k > 0)
				sent += (size_t)k;
			else if (k < 0 && errno != EAGAIN)
				sent = n; /* the server has closed: the rest is lost */
		}
		/* The client leaves once all is sent and the server has gone
		 * quiet: what it answers later (on the loop's next turns) comes. */
		if (sent == n && !shut && quiet >= QUIET_TURNS) {
			shutdown(fd, SHUT_WR);
			shut = true;
		}
		size_t before = out_len;
		event_base_loop(base, EVLOOP_NONBLOCK);
		for (;;) {
			if (out_cap - out_len < 65536) {
				out_cap = out_cap ? 2 * out_cap : 1 << 20;
				out = realloc(out, out_cap);
				FUZZ_CHECK(out, "out of memory");
			}
			ssize_t k = recv(fd, out + out_len, out_cap - out_len, 0);
			if (k > 0) {
				out_len += (size_t)k;
				continue;
			}
			if (k == 0 || (k < 0 && errno == ECONNRESET))
				eof = true;
			break;
		}
		quiet = out_len == before ? quiet + 1 : 0;
		if (eof && srv->n_conns == 0)
			break;
	}
	close(fd);
	FUZZ_CHECK(srv->inflight == 0, "%u requests left running", srv->inflight);
}

static struct walk w;
static struct answer first[REQS_MAX + 1], again[REQS_MAX + 1];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > INPUT_MAX)
		return 0;
	const char *in = (const char *)data;
	uint64_t rng = fuzz_seed(data, size);
	walk(in, size, &w);
	size_t want = w.n + (w.refused ? 1 : 0);

	converse(in, size, &rng, 0);
	size_t k = answers(out, out_len, &w, first, REQS_MAX + 1);
	FUZZ_CHECK(k == want, "%zu answers to %zu requests%s", k, w.n,
		   w.refused ? " and a refusal" : "");
	for (size_t i = 0; i < w.n; i++) {
		if (!first[i].echo[0])
			continue;
		char expect[160];
		snprintf(expect, sizeof expect, "%s %zu %016llx", w.r[i].method, w.r[i].body_len,
			 (unsigned long long)w.r[i].hash);
		FUZZ_CHECK(!strcmp(first[i].echo, expect), "request %zu echoed as '%s', sent as '%s'",
			   i, first[i].echo, expect);
	}
	if (w.refused)
		FUZZ_CHECK(first[w.n].status >= 400, "the refusal is a %d", first[w.n].status);

	converse(in, size, &rng, 61);
	size_t k2 = answers(out, out_len, &w, again, REQS_MAX + 1);
	FUZZ_CHECK(k2 == k, "in pieces: %zu answers, at once %zu", k2, k);
	for (size_t i = 0; i < k; i++)
		FUZZ_CHECK(first[i].status == again[i].status && !strcmp(first[i].code, again[i].code) &&
				   !strcmp(first[i].echo, again[i].echo),
			   "answer %zu: %d %s %s in pieces, %d %s %s at once", i, again[i].status,
			   again[i].code, again[i].echo, first[i].status, first[i].code, first[i].echo);
	return 0;
}
