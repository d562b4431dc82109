#include "sdk/http.h"

#include "sdk/framing.h"
#include "sdk/log.h"
#include "sdk/token.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define REQUEST_ID_MAX 64

struct sdk_server {
	struct event_base *base;
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
	sdk_server_opts opts;
	sdk_metrics *metrics;
	const char **labels; /* route patterns, for metrics */
	unsigned inflight;
	struct timespec started, last_request;
	bool draining;
};

struct sdk_req {
	struct evhttp_request *ev;
	sdk_server *srv;
	int route;
	char method[8];
	char path[SDK_PATH_MAX];
	char id[REQUEST_ID_MAX + 1];
	sdk_route_params params;
	struct evkeyvalq query;
	bool query_parsed;
	json_t *json;
	struct timespec start;
	bool streaming, closed;
	char user[64];
	int role;
	sdk_close_fn on_close;
	void *close_arg;
};

static double seconds_since(const struct timespec *t0)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

static const char *reason_phrase(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Content Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return status < 400 ? "OK" : "Error";
	}
}

static const char *method_name(enum evhttp_cmd_type t)
{
	switch (t) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_HEAD: return "HEAD";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_DELETE: return "DELETE";
	case EVHTTP_REQ_OPTIONS: return "OPTIONS";
	case EVHTTP_REQ_PATCH: return "PATCH";
	default: return "OTHER";
	}
}

void sdk_request_id_new(char out[33])
{
	/* Unique, not secret: a random prefix per process and a counter, so a
	 * request costs no system call. */
	static unsigned char prefix[8];
	static unsigned long long counter;
	static bool seeded;
	if (!seeded) {
		if (getrandom(prefix, sizeof prefix, GRND_NONBLOCK) != (ssize_t)sizeof prefix) {
			struct timespec t;
			clock_gettime(CLOCK_REALTIME, &t);
			memcpy(prefix, &t, sizeof prefix);
		}
		seeded = true;
	}
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < sizeof prefix; i++) {
		out[2 * i] = hex[prefix[i] >> 4];
		out[2 * i + 1] = hex[prefix[i] & 15];
	}
	snprintf(out + 16, 17, "%016llx", ++counter);
}

/* A client's id is kept only when it is short and harmless in logs. */
static bool request_id_acceptable(const char *s)
{
	size_t n = 0;
	for (; s[n]; n++) {
		char c = s[n];
		if (n >= REQUEST_ID_MAX ||
		    !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.' || c == ':'))
			return false;
	}
	return n > 0;
}

static void req_free(sdk_req *r)
{
	if (r->query_parsed)
		evhttp_clear_headers(&r->query);
	json_decref(r->json);
	free(r);
}

static void reply_send(sdk_req *r, int status, struct evbuffer *body)
{
	sdk_server *s = r->srv;
	struct evkeyvalq *out = evhttp_request_get_output_headers(r->ev);
	evhttp_add_header(out, "X-Request-Id", r->id);
	if (s->draining && !evhttp_find_header(out, "Connection"))
		evhttp_add_header(out, "Connection", "close");
	if (s->opts.on_reply)
		s->opts.on_reply(r, status, s->opts.ctx);
	evhttp_send_reply(r->ev, status, reason_phrase(status), body);
	double dt = seconds_since(&r->start);
	sdk_metrics_observe(s->metrics, r->route, r->method, status, dt);
	sdk_log(status >= 500 ? SDK_LOG_WARN : SDK_LOG_DEBUG, r->id, "%s %s %d %.3fms",
		r->method, r->path[0] ? r->path : "-", status, dt * 1e3);
	s->inflight--;
	req_free(r);
}

void sdk_req_add_header(sdk_req *r, const char *name, const char *value)
{
	evhttp_add_header(evhttp_request_get_output_headers(r->ev), name, value);
}

void sdk_reply_raw(sdk_req *r, int status, const char *content_type, struct evbuffer *body)
{
	if (content_type)
		sdk_req_add_header(r, "Content-Type", content_type);
	reply_send(r, status, body);
}

void sdk_reply_json(sdk_req *r, int status, json_t *body)
{
	struct evbuffer *buf = evbuffer_new();
	char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	json_decref(body);
	if (!buf || (body && !text)) {
		free(text);
		if (buf)
			evbuffer_free(buf);
		evhttp_send_error(r->ev, 500, NULL);
		r->srv->inflight--;
		req_free(r);
		return;
	}
	if (text) {
		evbuffer_add(buf, text, strlen(text));
		evbuffer_add(buf, "\n", 1);
	}
	free(text);
	sdk_reply_raw(r, status, "application/json", buf);
	evbuffer_free(buf);
}

void sdk_reply_error(sdk_req *r, int status, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	json_t *body = json_pack("{s:{s:s, s:s%, s:s}}", "error", "code", code, "message", msg,
				 strlen(msg), "request_id", r->id);
	if (!body) /* a message quoting invalid UTF-8 from the request */
		body = json_pack("{s:{s:s, s:s, s:s}}", "error", "code", code, "message",
				 "invalid input", "request_id", r->id);
	sdk_reply_json(r, status, body);
}

void sdk_reply_status(sdk_req *r, int status, const sdk_err *err)
{
	if (status == SDK_EBUSY || status == SDK_ETIMEOUT)
		sdk_req_add_header(r, "Retry-After", "1");
	const char *code = sdk_status_code(status);
	sdk_reply_error(r, sdk_status_http(status), code, "%s",
			err && err->msg[0] ? err->msg : code);
}

static void on_stream_conn_close(struct evhttp_connection *conn, void *arg)
{
	(void)conn;
	sdk_req *r = arg;
	if (r->closed)
		return;
	r->closed = true;
	if (r->on_close)
		r->on_close(r, r->close_arg);
}

void sdk_reply_stream_start(sdk_req *r, int status, const char *content_type,
			    sdk_close_fn on_close, void *arg)
{
	if (content_type)
		sdk_req_add_header(r, "Content-Type", content_type);
	sdk_req_add_header(r, "X-Request-Id", r->id);
	sdk_req_add_header(r, "Cache-Control", "no-store");
	if (r->srv->opts.on_reply)
		r->srv->opts.on_reply(r, status, r->srv->opts.ctx);
	r->streaming = true;
	r->on_close = on_close;
	r->close_arg = arg;
	evhttp_connection_set_closecb(evhttp_request_get_connection(r->ev), on_stream_conn_close, r);
	evhttp_send_reply_start(r->ev, status, reason_phrase(status));
	sdk_metrics_observe(r->srv->metrics, r->route, r->method, status, seconds_since(&r->start));
}

void sdk_reply_stream_chunk(sdk_req *r, struct evbuffer *data)
{
	if (!r->closed && evhttp_request_get_connection(r->ev))
		evhttp_send_reply_chunk(r->ev, data);
	else
		evbuffer_drain(data, evbuffer_get_length(data));
}

void sdk_reply_stream_end(sdk_req *r)
{
	/* After a close libevent has detached the request from its (freed)
	 * connection; evhttp_send_reply_end then frees the request alone. */
	struct evhttp_connection *c = evhttp_request_get_connection(r->ev);
	if (c)
		evhttp_connection_set_closecb(c, NULL, NULL);
	evhttp_send_reply_end(r->ev);
	r->srv->inflight--;
	req_free(r);
}

bool sdk_req_closed(const sdk_req *r) { return r->closed; }

const char *sdk_req_method(const sdk_req *r) { return r->method; }
const char *sdk_req_path(const sdk_req *r) { return r->path; }
const char *sdk_req_id(const sdk_req *r) { return r->id; }
void sdk_req_set_user(sdk_req *r, const char *name, int role)
{
	snprintf(r->user, sizeof r->user, "%s", name);
	r->role = role;
}

const char *sdk_req_user(const sdk_req *r, int *role)
{
	if (role)
		*role = r->role;
	return r->user[0] ? r->user : NULL;
}

/* A user name as the main process's auth allows it: 1 to 64 of a-z, 0-9,
 * '_', '.', '-'. Anything else in the header is not a caller. */
static bool caller_name_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > SDK_CALLER_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
		      s[i] == '.' || s[i] == '-'))
			return false;
	return true;
}

const char *sdk_req_caller(const sdk_req *r, const char *token, int *role)
{
	if (role)
		*role = SDK_CALLER_NONE;
	const char *given = sdk_req_header(r, SDK_TOKEN_HEADER);
	const char *name = sdk_req_header(r, SDK_CALLER_HEADER);
	const char *rn = sdk_req_header(r, SDK_CALLER_ROLE_HEADER);
	if (!token || !*token || !given || !sdk_secret_equal(given, token) ||
	    !caller_name_valid(name) || !rn)
		return NULL;
	int k = !strcmp(rn, "admin") ? SDK_CALLER_ADMIN
		: !strcmp(rn, "user") ? SDK_CALLER_USER
				      : SDK_CALLER_NONE;
	if (k == SDK_CALLER_NONE)
		return NULL;
	if (role)
		*role = k;
	return name;
}

bool sdk_secret_equal(const char *a, const char *b)
{
	size_t na = strlen(a), nb = strlen(b);
	volatile unsigned char diff = (unsigned char)(na != nb);
	for (size_t i = 0; i < na; i++)
		diff |= (unsigned char)a[i] ^ (unsigned char)b[i < nb ? i : 0];
	return diff == 0 && nb > 0;
}

const char *sdk_req_peer(sdk_req *r)
{
	char *addr = NULL;
	ev_uint16_t port = 0;
	struct evhttp_connection *c = evhttp_request_get_connection(r->ev);
	if (c)
		evhttp_connection_get_peer(c, &addr, &port);
	return addr ? addr : "";
}
struct evhttp_request *sdk_req_ev(sdk_req *r) { return r->ev; }
sdk_server *sdk_req_server(sdk_req *r) { return r->srv; }

const char *sdk_req_param(const sdk_req *r, const char *name)
{
	return sdk_route_param(&r->params, name);
}

const char *sdk_req_header(const sdk_req *r, const char *name)
{
	return evhttp_find_header(evhttp_request_get_input_headers(r->ev), name);
}

struct evbuffer *sdk_req_body(sdk_req *r)
{
	return evhttp_request_get_input_buffer(r->ev);
}

const char *sdk_req_query_string(const sdk_req *r)
{
	const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(r->ev);
	return u ? evhttp_uri_get_query(u) : NULL;
}

const char *sdk_req_query(sdk_req *r, const char *name)
{
	if (!r->query_parsed) {
		r->query.tqh_first = NULL; /* TAILQ_INIT, which libevent does not export */
		r->query.tqh_last = &r->query.tqh_first;
		const char *q = sdk_req_query_string(r);
		if (q && evhttp_parse_query_str(q, &r->query) < 0)
			evhttp_clear_headers(&r->query);
		r->query_parsed = true;
	}
	return evhttp_find_header(&r->query, name);
}

int sdk_req_query_uint(sdk_req *r, const char *name, unsigned long long min,
		       unsigned long long max, unsigned long long def, unsigned long long *out)
{
	const char *v = sdk_req_query(r, name);
	if (!v) {
		*out = def;
		return 0;
	}
	char *end;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	if (!*v || *v == '-' || *end || errno || n < min || n > max) {
		sdk_reply_error(r, 400, "bad_query", "%s must be an integer from %llu to %llu", name,
				min, max);
		return -1;
	}
	*out = n;
	return 0;
}

json_t *sdk_req_json(sdk_req *r, bool want_object)
{
	if (r->json)
		return r->json;
	struct evbuffer *b = sdk_req_body(r);
	size_t len = evbuffer_get_length(b);
	if (len == 0) {
		sdk_reply_error(r, 400, "bad_json", "a JSON body is required");
		return NULL;
	}
	const char *text = (const char *)evbuffer_pullup(b, -1);
	json_error_t e;
	json_t *j = text ? json_loadb(text, len, JSON_REJECT_DUPLICATES, &e) : NULL;
	if (!j) {
		sdk_reply_error(r, 400, "bad_json", "invalid JSON at line %d column %d: %s", e.line,
				e.column, e.text);
		return NULL;
	}
	if (want_object && !json_is_object(j)) {
		json_decref(j);
		sdk_reply_error(r, 400, "bad_json", "the body must be a JSON object");
		return NULL;
	}
	r->json = j;
	return j;
}

static void set_path(sdk_req *r)
{
	const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(r->ev);
	const char *raw = u ? evhttp_uri_get_path(u) : NULL;
	if (!raw || !*raw)
		raw = "/";
	size_t n = 0;
	char *dec = evhttp_uridecode(raw, 0, &n);
	/* A NUL decoded from %00 would cut the path short in every later check. */
	if (dec && n < sizeof r->path && memchr(dec, '\0', n) == NULL)
		memcpy(r->path, dec, n + 1);
	free(dec);
}

static void on_request(struct evhttp_request *ev, void *arg)
{
	sdk_server *s = arg;
	sdk_req *r = calloc(1, sizeof *r);
	if (!r) {
		evhttp_send_error(ev, 503, NULL);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &r->start);
	s->last_request = r->start;
	r->ev = ev;
	r->srv = s;
	r->route = -1;
	s->inflight++;
	snprintf(r->method, sizeof r->method, "%s", method_name(evhttp_request_get_command(ev)));

	const char *rid = sdk_req_header(r, "X-Request-Id");
	if (rid && request_id_acceptable(rid))
		snprintf(r->id, sizeof r->id, "%s", rid);
	else
		sdk_request_id_new(r->id);

	const char *why = sdk_framing_check(evhttp_request_get_input_headers(ev),
					    s->opts.limits.max_headers);
	if (why) {
		/* The connection cannot be trusted to be in sync any more. */
		sdk_req_add_header(r, "Connection", "close");
		int status = !strcmp(why, "too many header fields") ? 431 : 400;
		sdk_reply_error(r, status, "bad_framing", "%s", why);
		return;
	}
	set_path(r);
	if (!r->path[0]) {
		sdk_reply_error(r, 400, "bad_path", "the path is not valid");
		return;
	}
	const char *method = !strcmp(r->method, "HEAD") ? "GET" : r->method;
	int i = sdk_route_match(s->opts.routes, s->opts.n_routes, sizeof(sdk_route), method,
				r->path, &r->params);
	/* Authorization first: who may not call anything learns nothing. */
	if (s->opts.authorize && !s->opts.authorize(r, i >= 0 ? &s->opts.routes[i] : NULL, s->opts.ctx))
		return;
	if (i == SDK_ROUTE_BAD_METHOD) {
		sdk_reply_error(r, 405, "method_not_allowed", "%s is not allowed on %s", r->method,
				r->path);
		return;
	}
	if (i < 0) {
		sdk_reply_error(r, 404, "not_found", "no route for %s %s", r->method, r->path);
		return;
	}
	r->route = i;
	s->opts.routes[i].handler(r, s->opts.ctx);
}

sdk_server *sdk_server_new(struct event_base *base, const sdk_server_opts *opts)
{
	sdk_server *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->base = base;
	s->opts = *opts;
	clock_gettime(CLOCK_MONOTONIC, &s->started);
	s->last_request = s->started;
	s->labels = calloc(opts->n_routes ? opts->n_routes : 1, sizeof *s->labels);
	s->http = evhttp_new(base);
	if (!s->labels || !s->http)
		goto fail;
	for (size_t i = 0; i < opts->n_routes; i++)
		s->labels[i] = opts->routes[i].pattern.path;
	s->metrics = sdk_metrics_new(s->labels, opts->n_routes);
	if (!s->metrics)
		goto fail;

	const grace_limits *l = &opts->limits;
	evhttp_set_max_headers_size(s->http, (ev_ssize_t)l->max_header_bytes);
	evhttp_set_max_body_size(s->http, (ev_ssize_t)l->max_body_bytes);
	struct timeval tv = { .tv_sec = l->timeout_ms / 1000,
			      .tv_usec = (suseconds_t)(l->timeout_ms % 1000) * 1000 };
	evhttp_set_timeout_tv(s->http, &tv);
	evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
						    EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
						    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
	evhttp_set_default_content_type(s->http, "application/json");
	evhttp_set_gencb(s->http, on_request, s);
	return s;
fail:
	sdk_server_free(s);
	return NULL;
}

int sdk_server_listen(sdk_server *s, int fd)
{
	evutil_make_socket_nonblocking(fd);
	/* Accepted sockets inherit it on Linux: an answer larger than one
	 * segment must not wait for the client's delayed ACK (40 ms). */
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	s->bound = evhttp_accept_socket_with_handle(s->http, fd);
	if (!s->bound) {
		close(fd);
		return -1;
	}
	return 0;
}

double sdk_server_quiet_ms(const sdk_server *s) { return seconds_since(&s->last_request) * 1e3; }

void sdk_server_stop_accepting(sdk_server *s)
{
	s->draining = true;
	if (s->bound) {
		evhttp_del_accept_socket(s->http, s->bound);
		s->bound = NULL;
	}
}

unsigned sdk_server_inflight(const sdk_server *s) { return s->inflight; }

double sdk_server_uptime(const sdk_server *s) { return seconds_since(&s->started); }

void sdk_server_render_metrics(const sdk_server *s, struct evbuffer *out)
{
	sdk_metrics_render(s->metrics, s->opts.component, sdk_server_uptime(s), out);
	if (s->opts.metrics_extra)
		s->opts.metrics_extra(out, s->opts.ctx);
}

void sdk_server_free(sdk_server *s)
{
	if (!s)
		return;
	if (s->http)
		evhttp_free(s->http);
	sdk_metrics_free(s->metrics);
	free(s->labels);
	free(s);
}
