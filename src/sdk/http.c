/* Requests and replies: what a handler sees. The connection side (reading,
 * framing, writing, limits) is http_conn.c. */
#include "sdk/http.h"

#include "sdk/clock.h"
#include "sdk/http_internal.h"
#include "sdk/log.h"
#include "sdk/str.h"
#include "sdk/token.h"

#include <errno.h>
#include <event2/buffer.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

static const char *reason_phrase(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 417: return "Expectation Failed";
	case 421: return "Misdirected Request";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	case 507: return "Insufficient Storage";
	default: return status < 400 ? "OK" : "Error";
	}
}

void sdk_request_id_new(char out[33])
{
	/* Unique, not secret: a random prefix per process and a counter, so a
	 * request costs no system call. */
	static char prefix[17];
	static unsigned long long counter;
	static const char hex[] = "0123456789abcdef";
	if (!prefix[0]) {
		unsigned char raw[8];
		if (getrandom(raw, sizeof raw, GRND_NONBLOCK) != (ssize_t)sizeof raw) {
			struct timespec t = sdk_mono_now();
			memcpy(raw, &t, sizeof raw);
		}
		for (size_t i = 0; i < sizeof raw; i++) {
			prefix[2 * i] = hex[raw[i] >> 4];
			prefix[2 * i + 1] = hex[raw[i] & 15];
		}
	}
	memcpy(out, prefix, 16);
	unsigned long long n = ++counter;
	for (int i = 31; i >= 16; i--, n >>= 4)
		out[i] = hex[n & 15];
	out[32] = '\0';
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

/* ---- added response headers ---- */

static int hdr_append(struct hdr_buf *b, const char *name, const char *value)
{
	size_t nl = strlen(name), vl = strlen(value);
	/* A CR or LF in either would split the response. */
	if (strpbrk(name, "\r\n:") || strpbrk(value, "\r\n"))
		return -1;
	size_t need = b->len + nl + vl + 4;
	if (!b->p) {
		b->p = b->inline_;
		b->cap = sizeof b->inline_;
	}
	if (need > b->cap) {
		size_t cap = b->cap * 2 > need ? b->cap * 2 : need;
		char *n = b->p == b->inline_ ? malloc(cap) : realloc(b->p, cap);
		if (!n)
			return -1;
		if (b->p == b->inline_)
			memcpy(n, b->inline_, b->len);
		b->p = n;
		b->cap = cap;
	}
	b->has_type |= !strcasecmp(name, "Content-Type");
	b->has_connection |= !strcasecmp(name, "Connection");
	memcpy(b->p + b->len, name, nl);
	b->p[b->len + nl] = ':';
	b->p[b->len + nl + 1] = ' ';
	memcpy(b->p + b->len + nl + 2, value, vl);
	b->p[b->len + nl + 2 + vl] = '\r';
	b->p[b->len + nl + 3 + vl] = '\n';
	b->len = need;
	return 0;
}

void sdk_req_add_header(sdk_req *r, const char *name, const char *value)
{
	if (hdr_append(&r->hdrs, name, value) < 0)
		sdk_log(SDK_LOG_WARN, r->id, "response header %s dropped (invalid or no memory)",
			name);
}

/* ---- requests ---- */

static int hexdig(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)(c | 0x20);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes %XX in a path; "+" stays itself. -1 on a malformed escape or a
 * decoded NUL (which would cut the path short in every later check). */
static int path_decode(const char *s, size_t n, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '%') {
			out[o++] = s[i];
			continue;
		}
		int hi = i + 2 < n ? hexdig(s[i + 1]) : -1, lo = hi >= 0 ? hexdig(s[i + 2]) : -1;
		if (lo < 0 || (hi | lo) == 0)
			return -1;
		out[o++] = (char)(hi << 4 | lo);
		i += 2;
	}
	out[o] = '\0';
	return 0;
}

sdk_req *req_new(sdk_conn *c, const char *head, size_t len)
{
	sdk_server *s = c->srv;
	sdk_req *r = s->spare;
	if (r) {
		s->spare = r->spare_next;
		s->n_spare--;
	} else if (!(r = malloc(sizeof *r))) {
		return NULL;
	}
	memset(r, 0, offsetof(sdk_req, h));
	r->head = len < sizeof r->head_inline ? r->head_inline : malloc(len + 1);
	if (!r->head) {
		free(r);
		return NULL;
	}
	r->h.n_fields = 0;
	r->h.target = r->h.method = NULL;
	r->h.minor = 1;
	r->params.n = r->params.used = 0;
	memcpy(r->head, head, len);
	r->head[len] = '\0';
	r->conn = c;
	r->srv = c->srv;
	r->route = -1;
	r->start = sdk_mono_now();
	c->srv->last_request = r->start;
	c->srv->inflight++;
	c->refs++;
	sdk_request_id_new(r->id);
	return r;
}

void req_free(sdk_req *r)
{
	sdk_conn *c = r->conn;
	if (r->hdrs.p && r->hdrs.p != r->hdrs.inline_)
		free(r->hdrs.p);
	if (r->body)
		evbuffer_free(r->body);
	json_decref(r->json);
	free(r->path);
	free(r->query_copy);
	if (r->head != r->head_inline)
		free(r->head);
	sdk_server *s = r->srv;
	if (s) {
		s->large_bodies -= r->body_reserved;
		s->inflight--;
		if (s->n_spare < REQ_SPARE_MAX) {
			r->spare_next = s->spare;
			s->spare = r;
			s->n_spare++;
			r = NULL;
		}
	}
	free(r);
	conn_release(c);
}

const char *sdk_req_method(const sdk_req *r) { return r->method; }
const char *sdk_req_path(const sdk_req *r) { return r->path ? r->path : ""; }
const char *sdk_req_id(const sdk_req *r) { return r->id; }
sdk_server *sdk_req_server(sdk_req *r) { return r->srv; }
const char *sdk_req_peer(sdk_req *r) { return r->conn->peer; }
bool sdk_req_closed(const sdk_req *r) { return r->closed; }
bool sdk_reply_started(const sdk_req *r) { return r->started; }

void sdk_req_set_user(sdk_req *r, const char *name, int role)
{
	sdk_strcpy(r->user, sizeof r->user, name);
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
	const char *name = sdk_req_header(r, SDK_USER_HEADER);
	const char *rn = sdk_req_header(r, SDK_ROLE_HEADER);
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

const char *sdk_req_param(const sdk_req *r, const char *name)
{
	return sdk_route_param(&r->params, name);
}

const char *sdk_req_header(const sdk_req *r, const char *name)
{
	return sdk_http_field_get(&r->h, name);
}

const char *sdk_req_host(const sdk_req *r) { return r->h.host; }

bool sdk_req_header_at(const sdk_req *r, size_t i, const char **name, const char **value)
{
	if (i >= r->h.n_fields)
		return false;
	*name = r->h.fields[i].name;
	*value = r->h.fields[i].value;
	return true;
}

size_t sdk_req_body_len(const sdk_req *r) { return r->body ? evbuffer_get_length(r->body) : 0; }

struct evbuffer *sdk_req_body(sdk_req *r)
{
	if (!r->body)
		r->body = evbuffer_new();
	return r->body;
}

const char *sdk_req_query_string(const sdk_req *r)
{
	const char *q = r->h.target ? strchr(r->h.target, '?') : NULL;
	return q ? q + 1 : NULL;
}

/* Decodes a query component in place: %XX and "+" as a space (a
 * malformed escape is kept as it is). */
static void query_decode(char *s)
{
	char *o = s;
	for (char *p = s; *p; p++) {
		int hi, lo;
		if (*p == '+') {
			*o++ = ' ';
		} else if (*p == '%' && (hi = hexdig(p[1])) >= 0 && (lo = hexdig(p[2])) >= 0) {
			*o++ = (char)(hi << 4 | lo);
			p += 2;
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
}

static void query_parse(sdk_req *r)
{
	r->query_parsed = true;
	const char *q = sdk_req_query_string(r);
	if (!q || !*q || !(r->query_copy = strdup(q)))
		return;
	for (char *p = r->query_copy; p && *p && r->n_query < SDK_QUERY_MAX;) {
		char *amp = strchr(p, '&');
		if (amp)
			*amp = '\0';
		char *eq = strchr(p, '=');
		if (eq)
			*eq = '\0';
		query_decode(p);
		if (eq)
			query_decode(eq + 1);
		if (*p) {
			r->query[r->n_query].name = p;
			r->query[r->n_query].value = eq ? eq + 1 : "";
			r->n_query++;
		}
		p = amp ? amp + 1 : NULL;
	}
}

bool sdk_req_query_ok(const sdk_req *r)
{
	const char *q = sdk_req_query_string(r);
	if (!q || !*q)
		return true;
	for (const char *p = q; *p;) {
		const char *e = strchr(p, '&');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		const char *eq = memchr(p, '=', n);
		if (n && (!eq || eq == p))
			return false;
		/* A malformed escape, or %00: a NUL would cut a name or value
		 * short (as path_decode refuses it too). */
		for (size_t i = 0; i < n; i++)
			if (p[i] == '%' && (i + 2 >= n || hexdig(p[i + 1]) < 0 || hexdig(p[i + 2]) < 0 ||
					    (hexdig(p[i + 1]) | hexdig(p[i + 2])) == 0))
				return false;
		p += n + (e != NULL);
	}
	return true;
}

const char *sdk_req_query(sdk_req *r, const char *name)
{
	if (!r->query_parsed)
		query_parse(r);
	for (size_t i = 0; i < r->n_query; i++)
		if (!strcmp(r->query[i].name, name))
			return r->query[i].value;
	return NULL;
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
	size_t len = b ? evbuffer_get_length(b) : 0;
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

/* ---- replies ---- */

static char *fmt_uint(char *p, unsigned long long v)
{
	char tmp[24];
	int n = 0;
	do
		tmp[n++] = (char)('0' + v % 10);
	while ((v /= 10));
	while (n)
		*p++ = tmp[--n];
	return p;
}

static char *put(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}
#define PUT(p, lit) put(p, lit, sizeof lit - 1)

/* Writes the status line and headers into the connection's output.
 * length: the body's length, or < 0 for chunked (or, to an HTTP/1.0
 * client, until the connection closes). */
static void write_head(sdk_req *r, int status, long long length)
{
	sdk_conn *c = r->conn;
	sdk_server *s = r->srv;
	r->status = status;
	if (s->draining || !r->h.keep_alive)
		c->close_after = true;
	if (length < 0 && r->h.minor == 0)
		c->close_after = true; /* no chunked for HTTP/1.0: the close ends it */
	if (r->hdrs.has_connection)
		c->close_after = true; /* a handler asked for "close" */
	char head[512];
	char *p = head;
	p = PUT(p, "HTTP/1.1 ");
	p = fmt_uint(p, (unsigned)status);
	*p++ = ' ';
	const char *reason = reason_phrase(status);
	p = put(p, reason, strlen(reason));
	p = PUT(p, "\r\nDate: ");
	const char *date = conn_date(s);
	p = put(p, date, strlen(date));
	p = PUT(p, "\r\nX-Request-Id: ");
	p = put(p, r->id, strlen(r->id));
	if (!r->hdrs.has_type && status != 204 && status != 304)
		p = PUT(p, "\r\nContent-Type: application/json");
	if (length >= 0) {
		if (status != 204 && status != 304) {
			p = PUT(p, "\r\nContent-Length: ");
			p = fmt_uint(p, (unsigned long long)length);
		}
	} else if (r->h.minor == 1) {
		p = PUT(p, "\r\nTransfer-Encoding: chunked");
		r->chunked = true;
	}
	if (c->close_after && !r->hdrs.has_connection)
		p = PUT(p, "\r\nConnection: close");
	else if (!c->close_after && r->h.minor == 0)
		p = PUT(p, "\r\nConnection: keep-alive");
	p = PUT(p, "\r\n");
	evbuffer_add(c->out, head, (size_t)(p - head));
	if (r->hdrs.len)
		evbuffer_add(c->out, r->hdrs.p, r->hdrs.len);
	evbuffer_add(c->out, "\r\n", 2);
}

static void observe(sdk_req *r, int status)
{
	sdk_server *s = r->srv;
	double dt = sdk_ms_since(&r->start) / 1e3;
	sdk_metrics_observe(s->metrics, r->route, r->method, status, dt);
	sdk_log(status >= 500 ? SDK_LOG_WARN : SDK_LOG_DEBUG, r->id, "%s %s %d %.3fms",
		r->method[0] ? r->method : "-", r->path ? r->path : "-", status, dt * 1e3);
}

/* The one way a request ends: counted, hooked, freed. */
static void finish(sdk_req *r, int status)
{
	r->finished = true;
	if (r->srv) {
		if (!r->started) {
			observe(r, r->closed ? 499 : status);
			if (r->srv->opts.on_reply && r->method[0])
				r->srv->opts.on_reply(r, status, r->srv->opts.ctx);
			if (r->srv->opts.trace_hooks && r->span.active)
				r->srv->opts.trace_hooks->end(r->srv->opts.trace_ctx, r,
							      r->closed ? 499 : status);
		}
		if (!r->closed)
			conn_reply_queued(r->conn);
	}
	req_free(r);
}

void sdk_reply_raw(sdk_req *r, int status, const char *content_type, struct evbuffer *body)
{
	size_t len = body ? evbuffer_get_length(body) : 0;
	if (r->closed || !r->srv) {
		if (body)
			evbuffer_drain(body, len);
		finish(r, status);
		return;
	}
	if (content_type)
		sdk_req_add_header(r, "Content-Type", content_type);
	write_head(r, status, (long long)len);
	if (body) {
		if (r->head_only || status == 204 || status == 304)
			evbuffer_drain(body, len);
		else
			evbuffer_add_buffer(r->conn->out, body);
	}
	finish(r, status);
}

static void reply_text(sdk_req *r, int status, const char *text, size_t len)
{
	if (r->closed || !r->srv) {
		finish(r, status);
		return;
	}
	write_head(r, status, (long long)len);
	if (!r->head_only && status != 204 && status != 304)
		evbuffer_add(r->conn->out, text, len);
	finish(r, status);
}

void sdk_reply_json_text(sdk_req *r, int status, const char *text, size_t len)
{
	reply_text(r, status, text, len);
}

void sdk_reply_json(sdk_req *r, int status, json_t *body)
{
	char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	json_decref(body);
	if (body && !text) {
		static const char oom[] = "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}\n";
		reply_text(r, 500, oom, sizeof oom - 1);
		return;
	}
	if (!text) {
		reply_text(r, status, "", 0);
		return;
	}
	size_t n = strlen(text);
	text[n] = '\0';
	/* One allocation more for the newline is not worth it: send two pieces. */
	if (r->closed || !r->srv) {
		free(text);
		finish(r, status);
		return;
	}
	write_head(r, status, (long long)n + 1);
	if (!r->head_only && status != 204 && status != 304) {
		evbuffer_add(r->conn->out, text, n);
		evbuffer_add(r->conn->out, "\n", 1);
	}
	free(text);
	finish(r, status);
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

void req_refuse(sdk_req *r, int status, const char *code, const char *msg)
{
	conn_close_after(r->conn);
	sdk_req_add_header(r, "Connection", "close");
	sdk_reply_error(r, status, code, "%s", msg);
}

/* ---- streamed replies ---- */

void sdk_reply_begin(sdk_req *r, int status, long long length)
{
	r->started = true;
	r->status = status;
	if (!r->srv)
		return;
	observe(r, status);
	if (r->srv->opts.on_reply && r->method[0])
		r->srv->opts.on_reply(r, status, r->srv->opts.ctx);
	if (r->srv->opts.trace_hooks && r->span.active)
		r->srv->opts.trace_hooks->end(r->srv->opts.trace_ctx, r, status);
	if (r->closed)
		return;
	write_head(r, status, length);
	if (r->head_only)
		r->chunked = false;
	conn_flush(r->conn);
}

void sdk_reply_write(sdk_req *r, struct evbuffer *data)
{
	size_t n = evbuffer_get_length(data);
	if (r->closed || !r->srv || r->head_only || n == 0) {
		evbuffer_drain(data, n);
		return;
	}
	struct evbuffer *out = r->conn->out;
	if (r->chunked) {
		char line[24];
		int k = snprintf(line, sizeof line, "%zx\r\n", n);
		evbuffer_add(out, line, (size_t)k);
		evbuffer_add_buffer(out, data);
		evbuffer_add(out, "\r\n", 2);
	} else {
		evbuffer_add_buffer(out, data);
	}
	conn_flush(r->conn);
}

void sdk_reply_end(sdk_req *r)
{
	if (!r->closed && r->srv && r->chunked && !r->head_only)
		evbuffer_add(r->conn->out, "0\r\n\r\n", 5);
	finish(r, r->status);
}

void sdk_reply_abort(sdk_req *r)
{
	if (!r->closed && r->srv) {
		r->closed = true;
		conn_abort(r->conn);
	}
	finish(r, r->status ? r->status : 502);
}

void sdk_reply_stream_start(sdk_req *r, int status, const char *content_type,
			    sdk_close_fn on_close, void *arg)
{
	if (content_type)
		sdk_req_add_header(r, "Content-Type", content_type);
	sdk_req_add_header(r, "Cache-Control", "no-store");
	r->on_close = on_close;
	r->close_arg = arg;
	sdk_reply_begin(r, status, -1);
}

void sdk_reply_stream_chunk(sdk_req *r, struct evbuffer *data) { sdk_reply_write(r, data); }
void sdk_reply_stream_end(sdk_req *r) { sdk_reply_end(r); }

size_t sdk_reply_backlog(const sdk_req *r)
{
	return r->closed || !r->srv ? 0 : conn_backlog(r->conn);
}

void sdk_reply_on_drain(sdk_req *r, sdk_close_fn fn, void *arg)
{
	r->on_drain = fn;
	r->drain_arg = arg;
}

void sdk_req_on_close(sdk_req *r, sdk_close_fn fn, void *arg)
{
	r->on_close = fn;
	r->close_arg = arg;
}

void req_peer_gone(sdk_req *r)
{
	if (r->closed)
		return;
	r->closed = true;
	if (r->on_close) {
		sdk_close_fn fn = r->on_close;
		r->on_close = NULL;
		fn(r, r->close_arg);
	}
}

void req_drained(sdk_req *r)
{
	if (r->on_drain && !r->closed)
		r->on_drain(r, r->drain_arg);
}

/* ---- dispatch ---- */

/* Whether the target can hold a path (absolute, shorter than
 * SDK_PATH_MAX); *n: the path's length, up to any '?'. */
static bool target_path(const char *t, size_t *n)
{
	const char *q = strchr(t, '?');
	*n = q ? (size_t)(q - t) : strlen(t);
	return t[0] == '/' && *n < SDK_PATH_MAX;
}

/* The route `method` `path` matches (HEAD as GET), or SDK_ROUTE_*. */
static int route_match(const sdk_server *s, const char *method, const char *path,
		       sdk_route_params *params)
{
	if (!strcmp(method, "HEAD"))
		method = "GET";
	return sdk_route_match(s->opts.routes, s->opts.n_routes, sizeof(sdk_route), method, path,
			       params);
}

static void route_run(sdk_req *r);

void req_dispatch(sdk_req *r)
{
	sdk_server *s = r->srv;
	sdk_strcpy(r->method, sizeof r->method, r->h.method);
	const char *rid = sdk_req_header(r, "X-Request-Id");
	if (rid && request_id_acceptable(rid))
		sdk_strcpy(r->id, sizeof r->id, rid);
	r->head_only = !strcmp(r->method, "HEAD");

	const char *t = r->h.target;
	size_t n;
	if (!target_path(t, &n) || !(r->path = malloc(n + 1)) || path_decode(t, n, r->path) < 0) {
		/* The reply hooks read r->path: never leave a half-decoded one. */
		free(r->path);
		r->path = NULL;
		sdk_reply_error(r, 400, "bad_path", "the path is not valid");
		return;
	}
	int i = route_match(s, r->method, r->path, &r->params);
	r->matched = i;
	/* Authorization first: who may not call anything learns nothing. */
	if (s->opts.authorize &&
	    !s->opts.authorize(r, i >= 0 ? &s->opts.routes[i] : NULL, s->opts.ctx))
		return;
	route_run(r);
}

const sdk_route *req_route_early(const sdk_req *r, char *path, bool *ok)
{
	const sdk_server *s = r->srv;
	size_t n;
	*ok = target_path(r->h.target, &n) && path_decode(r->h.target, n, path) == 0;
	if (!*ok)
		return NULL;
	sdk_route_params params; /* (not kept: dispatch matches again) */
	int i = route_match(s, r->h.method, path, &params);
	return i >= 0 ? &s->opts.routes[i] : NULL;
}

void sdk_req_resume(sdk_req *r)
{
	if (r->closed || !r->srv) {
		/* Nobody to answer, or no server left to run a route: end it. */
		sdk_reply_error(r, 503, "gone", "the request ended while it was decided");
		return;
	}
	route_run(r);
}

/* What follows a request's authorization: its route, or the 405 or 404. */
static void route_run(sdk_req *r)
{
	sdk_server *s = r->srv;
	int i = r->matched;
	if (i == SDK_ROUTE_BAD_METHOD) {
		char allow[128];
		sdk_route_allowed(s->opts.routes, s->opts.n_routes, sizeof(sdk_route), r->path, allow,
				  sizeof allow);
		sdk_req_add_header(r, "Allow", allow);
		sdk_reply_error(r, 405, "method_not_allowed", "%s is not allowed on %s", r->method,
				r->path);
		return;
	}
	if (i < 0) {
		sdk_reply_error(r, 404, "not_found", "no route for %s %s", r->method, r->path);
		return;
	}
	r->route = i;
	const sdk_trace_hooks *th = s->opts.trace_hooks;
	void *tctx = s->opts.trace_ctx;
	if (th)
		th->begin(tctx, r, &s->opts.routes[i]);
	/* The handler may answer and free r: the hooks' context is copied. */
	s->opts.routes[i].handler(r, s->opts.ctx);
	if (th)
		th->after(tctx, NULL);
}

struct sdk_span *sdk_req_span(sdk_req *r) { return &r->span; }
