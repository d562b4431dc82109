/* The HTTP/1.1 server every kernel and the main API use: Grace's own
 * connection layer over libevent's event loop (http_conn.c) with a strict
 * parser (http_parse.c), every limit explicit (head deadline, body and
 * header sizes, connections per address and in all), framing checked
 * before a handler runs, routing from a table, JSON in and out, one error
 * shape for every answer (those the HTTP layer gives before any route runs
 * included), per-request ids, streamed replies with backpressure, metrics
 * and a drain on shutdown. docs/http.md says why it is not evhttp. */
#ifndef GRACE_SDK_HTTP_H
#define GRACE_SDK_HTTP_H

#include "sdk/config.h"
#include "sdk/err.h"
#include "sdk/metrics.h"
#include "sdk/router.h"

#include <jansson.h>
#include <stdbool.h>

struct event_base;
struct evbuffer;

#define SDK_QUERY_MAX 64 /* query parameters looked at; more are ignored */

typedef struct sdk_server sdk_server;
typedef struct sdk_req sdk_req;

/* A handler answers through sdk_reply_* exactly once, now or later (an
 * asynchronous handler keeps `req` until it replies; the reply frees it). */
typedef void (*sdk_handler_fn)(sdk_req *req, void *ctx);

typedef struct sdk_route {
	sdk_route_pattern pattern; /* first, so the router can walk the table */
	sdk_handler_fn handler;
	unsigned access; /* who may call it: meaning given by the server's authorize */
	/* It only reads the kernel's store: a storage verdict up to 100 ms
	 * old will do (sdk/kernel.c, STORAGE_FRESH_MS). A route that may
	 * write, whatever its method, leaves it false: it checks the file
	 * itself, so nothing is acknowledged into a file that is gone. */
	bool reads_only;
	/* The largest body it takes, when more than the server's
	 * max_body_bytes (0: the server's): granted, before the body is read,
	 * only to a request the server's body_limit lets through. */
	size_t max_body;
} sdk_route;

#define SDK_ROUTE(method, path, handler) { { method, path }, handler, 0, false, 0 }
#define SDK_ROUTE_ACCESS(method, path, handler, access) \
	{ { method, path }, handler, access, false, 0 }
#define SDK_ROUTE_READS(method, path, handler) { { method, path }, handler, 0, true, 0 }
#define SDK_ROUTE_BODY(method, path, handler, max) { { method, path }, handler, 0, false, max }

/* The most the bodies past their server's max_body_bytes may hold at once,
 * in one server: past it such a request is 503 (Retry-After) before its
 * body is read, so large bodies cannot take the process's memory. */
#define SDK_LARGE_BODIES_MAX ((size_t)64 << 20)

/* Tracing (sdk/tracer.h): called with trace_ctx just before a routed
 * request's handler runs, right after it returns, and as its answer is
 * given. */
struct sdk_span;
typedef struct sdk_trace_hooks {
	void (*begin)(void *ctx, sdk_req *req, const sdk_route *route);
	void (*after)(void *ctx, sdk_req *req);
	void (*end)(void *ctx, sdk_req *req, int status);
} sdk_trace_hooks;

typedef struct sdk_server_opts {
	const char *component; /* for logs and metrics labels */
	const sdk_route *routes; /* borrowed; must outlive the server */
	size_t n_routes;
	void *ctx; /* passed to every handler */
	grace_limits limits;
	/* Appends further metrics to a /metrics answer; may be NULL. */
	void (*metrics_extra)(struct evbuffer *out, void *ctx);
	/* Decides whether a routed request may run (route NULL: no route
	 * matched). Returns false after answering it (401, 403, ...), or
	 * false without answering when it decides later (asynchronously): it
	 * then either answers the request or calls sdk_req_resume. NULL:
	 * everything may run. */
	bool (*authorize)(sdk_req *req, const sdk_route *route, void *ctx);
	/* A request whose body would pass limits.max_body_bytes (its
	 * Content-Length, or a chunked body as it comes): the most it may
	 * send, decided from its head alone, before its body is read (route:
	 * the one its decoded `path` matches, or NULL). limits.max_body_bytes
	 * (or less) refuses it 413. Called at most once a request, before
	 * authorize (sdk_req_method and sdk_req_path are not set yet: its
	 * `method` and decoded `path` are given); NULL: no body passes
	 * limits.max_body_bytes. */
	size_t (*body_limit)(sdk_req *req, const sdk_route *route, const char *method,
			     const char *path, void *ctx);
	/* Called as each request is answered (before `req` is freed); may be NULL. */
	void (*on_reply)(sdk_req *req, int status, void *ctx);
	/* Tracing; NULL: none. */
	const sdk_trace_hooks *trace_hooks;
	void *trace_ctx;
} sdk_server_opts;

sdk_server *sdk_server_new(struct event_base *base, const sdk_server_opts *opts);
/* Serves on a listening socket; takes ownership of `fd` (closed on failure). */
int sdk_server_listen(sdk_server *s, int fd);
/* Serves one connection accepted elsewhere (a TLS terminator's end of a
 * socket pair), as if from `peer` (its address: limits, logs). Takes
 * ownership of `fd`, which must be non-blocking. */
struct sockaddr;
void sdk_server_adopt(sdk_server *s, int fd, const struct sockaddr *peer, unsigned peer_len);
/* Stops accepting: new connections wait in the socket's backlog. From then
 * on every answer closes its connection, so no client sends another request
 * on a connection that is about to go. */
void sdk_server_stop_accepting(sdk_server *s);
/* Milliseconds since a request last arrived (or since the server began). */
double sdk_server_quiet_ms(const sdk_server *s);
/* Requests handed to a handler and not yet answered. */
unsigned sdk_server_inflight(const sdk_server *s);
double sdk_server_uptime(const sdk_server *s);
/* Renders the standard /metrics body (with metrics_extra) into `out`. */
void sdk_server_render_metrics(const sdk_server *s, struct evbuffer *out);
void sdk_server_free(sdk_server *s);

/* Runs the route of a request whose authorize decided later and allowed
 * it (see sdk_server_opts.authorize), as if authorize had returned true.
 * A request whose client has gone meanwhile is ended instead. */
void sdk_req_resume(sdk_req *r);

const char *sdk_req_method(const sdk_req *r);
const char *sdk_req_path(const sdk_req *r); /* decoded */
const char *sdk_req_param(const sdk_req *r, const char *name);
const char *sdk_req_query(sdk_req *r, const char *name);
const char *sdk_req_query_string(const sdk_req *r); /* raw, or NULL */
const char *sdk_req_header(const sdk_req *r, const char *name);
/* The host the request names: an absolute-form target's authority, else
 * its Host (RFC 9112 §3.2.2); NULL when it names none (HTTP/1.0). */
const char *sdk_req_host(const sdk_req *r);
const char *sdk_req_id(const sdk_req *r);
/* The request's span (sdk/tracer.h): `active` when it is traced. */
struct sdk_span *sdk_req_span(sdk_req *r);
/* The caller's identity, set by the authorizer: a name (copied, up to 63
 * bytes) and a role number. sdk_req_user is NULL when there is none. */
void sdk_req_set_user(sdk_req *r, const char *name, int role);
const char *sdk_req_user(const sdk_req *r, int *role);
/* The end user a kernel request is made for, as the gateway vouches for
 * it after authenticating them: X-Grace-User (the user name) and
 * X-Grace-Role ("admin" or "user"). Believed only together with the
 * internal token `token` (the kernel's own), which the gateway also adds;
 * the gateway never forwards these headers from a client. Returns the name
 * (borrowed from the request) and *role, or NULL and SDK_CALLER_NONE when
 * the request names no caller, names one badly, or lacks the token. The
 * header names are SDK_USER_HEADER and SDK_ROLE_HEADER (sdk/token.h). */
#define SDK_CALLER_NAME_MAX 64
enum { SDK_CALLER_NONE = 0, SDK_CALLER_USER = 1, SDK_CALLER_ADMIN = 2 };
const char *sdk_req_caller(const sdk_req *r, const char *token, int *role);
/* The client's address ("127.0.0.1"); borrowed. */
const char *sdk_req_peer(sdk_req *r);
/* The body (never NULL: an empty buffer when none came). */
struct evbuffer *sdk_req_body(sdk_req *r);
size_t sdk_req_body_len(const sdk_req *r);
sdk_server *sdk_req_server(sdk_req *r);
/* The request's head field `name` by index (for forwarding them): returns
 * false past the last. Borrowed. */
bool sdk_req_header_at(const sdk_req *r, size_t i, const char **name, const char **value);
/* The body parsed as JSON (borrowed: freed with the request). On failure it
 * has already answered 400 and returns NULL. With `want_object`, anything
 * but a JSON object is refused the same way. */
json_t *sdk_req_json(sdk_req *r, bool want_object);
/* Whether the query string (if any) is well formed: name=value pairs with
 * non-empty names joined by "&", and valid %XX escapes other than %00. */
bool sdk_req_query_ok(const sdk_req *r);
/* Parses an unsigned query parameter in [min, max]. Returns 0 and *out
 * (def when absent), or answers 400 and returns -1. */
int sdk_req_query_uint(sdk_req *r, const char *name, unsigned long long min,
		       unsigned long long max, unsigned long long def, unsigned long long *out);

void sdk_req_add_header(sdk_req *r, const char *name, const char *value);
/* Steals `body`. */
void sdk_reply_json(sdk_req *r, int status, json_t *body);
/* A JSON text made by the caller (a hot path that writes its own). */
void sdk_reply_json_text(sdk_req *r, int status, const char *text, size_t len);
void sdk_reply_error(sdk_req *r, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Answers a failure in Grace's one convention (sdk/err.h): the status's
 * HTTP code and error code, with err's reason (err may be NULL). A busy or
 * timed-out store adds Retry-After. */
void sdk_reply_status(sdk_req *r, int status, const sdk_err *err);
/* Drains `body` (may be NULL) into the reply. */
void sdk_reply_raw(sdk_req *r, int status, const char *content_type, struct evbuffer *body);

/* Streaming replies (Server-Sent Events, long bodies): start sends the
 * status and headers with chunked encoding; each chunk drains `data`; end
 * finishes and frees the request. `on_close` (may be NULL) is called if
 * the client goes away first; the request must then not be used again
 * except through sdk_reply_stream_end, which frees it. */
typedef void (*sdk_close_fn)(sdk_req *req, void *arg);
void sdk_reply_stream_start(sdk_req *r, int status, const char *content_type,
			    sdk_close_fn on_close, void *arg);
void sdk_reply_stream_chunk(sdk_req *r, struct evbuffer *data);
void sdk_reply_stream_end(sdk_req *r);
/* Bytes of a reply queued and not yet taken by the client: a producer
 * pauses past its own bound (backpressure). */
size_t sdk_reply_backlog(const sdk_req *r);
/* Called (on the loop) each time the backlog has been written out; NULL
 * to stop. */
void sdk_reply_on_drain(sdk_req *r, sdk_close_fn fn, void *arg);
/* A reply of known framing, for a proxy: begin sends the status, the
 * headers added so far and Content-Length `length` (or, when length < 0,
 * chunked); write sends body bytes as they come (draining `data`); end
 * finishes and frees the request. */
void sdk_reply_begin(sdk_req *r, int status, long long length);
void sdk_reply_write(sdk_req *r, struct evbuffer *data);
void sdk_reply_end(sdk_req *r);
/* Ends a begun reply as broken: the connection is closed without the
 * body's end, so the client sees it incomplete. Frees the request. */
void sdk_reply_abort(sdk_req *r);
/* Whether sdk_reply_begin/stream_start has run for r. */
bool sdk_reply_started(const sdk_req *r);
/* Calls `fn` once if the client goes before the reply is finished (a long
 * poll, a proxied request); after that the request may only be answered,
 * which frees it, or ended. NULL to stop. */
void sdk_req_on_close(sdk_req *r, sdk_close_fn fn, void *arg);
/* True once the client has gone (closed, reset or timed out). */
bool sdk_req_closed(const sdk_req *r);

/* Compares two strings in time that depends only on their lengths. */
bool sdk_secret_equal(const char *a, const char *b);

/* Fills `out` (33 bytes) with a fresh random request id. */
void sdk_request_id_new(char out[33]);

#endif
