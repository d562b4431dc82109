/* Spans and their exporter (tracer.h). */
#include "sdk/tracer.h"

#include "sdk/call.h"
#include "sdk/db.h"
#include "sdk/http.h"
#include "sdk/log.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FLUSH_EVERY_MS 200
#define EXPORT_TIMEOUT_MS 3000

typedef struct rec {
	sdk_span s;
	int64_t end_ns;
	int status;
	char method[8];
	char target[160];
	char request_id[33];
	int error; /* -1: by the HTTP status; else 0 or 1 (sdk_span_end_attr) */
	char akey[32];
} rec;

struct sdk_tracer {
	struct event_base *base;
	sdk_caller *caller;
	char service[64];
	struct event *timer;
	bool every_request;
	unsigned sample_percent;
	bool sending;
	size_t sending_n;
	rec *queue; /* a ring of SDK_TRACER_QUEUE_MAX */
	size_t head, n;
	unsigned long long sent, dropped;
};

static _Thread_local const sdk_span *current;
/* The children made for the current span, and whose (its span id). */
static _Thread_local uint8_t children_of[8];
static _Thread_local unsigned children;
/* This process's tracer (a kernel has one; so has the main process). */
static sdk_tracer *process_tracer;

const sdk_span *sdk_trace_current(void) { return current; }

const sdk_span *sdk_trace_set_current(const sdk_span *s)
{
	const sdk_span *prev = current;
	current = s;
	if (s)
		sdk_log_set_trace(s->ctx.trace_id, s->ctx.span_id);
	else
		sdk_log_set_trace(NULL, NULL);
	return prev;
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void sdk_span_start(sdk_span *s, const sdk_trace_ctx *parent, int kind, const char *name)
{
	memset(s, 0, offsetof(sdk_span, tracestate));
	s->tracestate[0] = '\0';
	if (parent) {
		memcpy(s->ctx.trace_id, parent->trace_id, 16);
		memcpy(s->parent, parent->span_id, 8);
		s->ctx.flags = parent->flags;
		s->has_parent = true;
	} else {
		sdk_trace_random(s->ctx.trace_id, 16);
		s->ctx.flags = SDK_TRACE_FLAG_SAMPLED;
	}
	sdk_trace_random(s->ctx.span_id, 8);
	s->kind = (uint8_t)kind;
	s->start_ns = now_ns();
	snprintf(s->name, sizeof s->name, "%s", name ? name : "");
	s->active = true;
}

sdk_trace_ctx sdk_span_context(const sdk_span *s) { return s->ctx; }

void sdk_trace_child_done(const sdk_span *parent, const char *name, int64_t dur_ns,
			  const char *key, const char *value)
{
	sdk_tracer *t = process_tracer;
	if (!t || !parent || !parent->active || !(parent->ctx.flags & SDK_TRACE_FLAG_SAMPLED))
		return;
	if (memcmp(children_of, parent->ctx.span_id, 8)) {
		memcpy(children_of, parent->ctx.span_id, 8);
		children = 0;
	}
	if (children >= SDK_TRACE_CHILDREN_MAX) {
		t->dropped++;
		return;
	}
	children++;
	sdk_span s;
	sdk_trace_ctx pc = sdk_span_context(parent);
	sdk_span_start(&s, &pc, SDK_SPAN_INTERNAL, name);
	s.start_ns -= dur_ns;
	snprintf(s.tracestate, sizeof s.tracestate, "%s", parent->tracestate);
	sdk_span_end_attr(t, &s, false, key, value);
}

void sdk_span_end(sdk_tracer *t, sdk_span *s, int status, const char *method, const char *target,
		  const char *request_id)
{
	if (!s->active)
		return;
	s->active = false;
	if (!t || !(s->ctx.flags & SDK_TRACE_FLAG_SAMPLED))
		return;
	if (t->n == SDK_TRACER_QUEUE_MAX) {
		t->dropped++;
		return;
	}
	rec *r = &t->queue[(t->head + t->n++) % SDK_TRACER_QUEUE_MAX];
	r->s = *s;
	r->end_ns = now_ns();
	r->status = status;
	r->error = -1;
	r->akey[0] = '\0';
	snprintf(r->method, sizeof r->method, "%s", method ? method : "");
	snprintf(r->target, sizeof r->target, "%s", target ? target : "");
	snprintf(r->request_id, sizeof r->request_id, "%s", request_id ? request_id : "");
}

void sdk_span_end_attr(sdk_tracer *t, sdk_span *s, bool error, const char *key, const char *value)
{
	if (!s->active)
		return;
	sdk_span_end(t, s, 0, NULL, value, NULL);
	if (!t || !(s->ctx.flags & SDK_TRACE_FLAG_SAMPLED) || !t->n)
		return;
	/* The record sdk_span_end just queued (the last one), unless the
	 * queue was full and it was dropped. */
	rec *r = &t->queue[(t->head + t->n - 1) % SDK_TRACER_QUEUE_MAX];
	if (memcmp(r->s.ctx.span_id, s->ctx.span_id, sizeof s->ctx.span_id))
		return;
	r->error = error;
	snprintf(r->akey, sizeof r->akey, "%s", key && value ? key : "");
}

static void hex(const uint8_t *in, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++)
		out[2 * i] = d[in[i] >> 4], out[2 * i + 1] = d[in[i] & 15];
	out[2 * n] = '\0';
}

static json_t *kv_str(const char *k, const char *v)
{
	return json_pack("{s:s, s:{s:s}}", "key", k, "value", "stringValue", v);
}

static json_t *span_json(const rec *r)
{
	char tid[33], sid[17], pid[17], start[24], end[24];
	hex(r->s.ctx.trace_id, 16, tid);
	hex(r->s.ctx.span_id, 8, sid);
	snprintf(start, sizeof start, "%lld", (long long)r->s.start_ns);
	snprintf(end, sizeof end, "%lld", (long long)r->end_ns);
	json_t *attrs = json_array();
	if (*r->method)
		json_array_append_new(attrs, kv_str("http.request.method", r->method));
	if (*r->target)
		json_array_append_new(attrs, kv_str(*r->akey ? r->akey : "url.path", r->target));
	if (r->status) {
		char st[16];
		snprintf(st, sizeof st, "%d", r->status);
		json_array_append_new(attrs, json_pack("{s:s, s:{s:s}}", "key",
						       "http.response.status_code", "value",
						       "intValue", st));
	}
	if (*r->request_id)
		json_array_append_new(attrs, kv_str("grace.request_id", r->request_id));
	json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:o, s:i}", "traceId", tid, "spanId",
			      sid, "name", r->s.name, "kind", r->s.kind, "startTimeUnixNano", start,
			      "endTimeUnixNano", end, "attributes", attrs, "flags",
			      r->s.ctx.flags);
	if (r->s.has_parent) {
		hex(r->s.parent, 8, pid);
		json_object_set_new(o, "parentSpanId", json_string(pid));
	}
	if (*r->s.tracestate)
		json_object_set_new(o, "traceState", json_string(r->s.tracestate));
	/* A server's 5xx is its error (OpenTelemetry's HTTP conventions); a
	 * client's (the gateway's forward) any status of 400 and up, or none. */
	bool error = r->error >= 0		     ? r->error
		     : r->s.kind == SDK_SPAN_SERVER ? r->status >= 500
						    : r->status >= 400 || r->status == 0;
	json_object_set_new(o, "status", error ? json_pack("{s:i}", "code", 2) : json_object());
	return o;
}

static void on_sent(int status, const char *body, size_t len, double ms, const char *error,
		    void *arg)
{
	(void)body, (void)len, (void)ms, (void)error;
	sdk_tracer *t = arg;
	t->sending = false;
	if (status == 200)
		t->sent += t->sending_n;
	else
		t->dropped += t->sending_n;
	t->sending_n = 0;
}

static void flush(sdk_tracer *t)
{
	if (t->sending || t->n == 0)
		return;
	size_t n = t->n < SDK_TRACER_BATCH ? t->n : SDK_TRACER_BATCH;
	json_t *spans = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(spans, span_json(&t->queue[(t->head + i) % SDK_TRACER_QUEUE_MAX]));
	t->head = (t->head + n) % SDK_TRACER_QUEUE_MAX;
	t->n -= n;
	json_t *req = json_pack(
		"{s:[{s:{s:[o]}, s:[{s:{s:s, s:s}, s:o}]}]}", "resourceSpans", "resource",
		"attributes", kv_str("service.name", t->service), "scopeSpans", "scope", "name",
		"grace", "version", GRACE_VERSION, "spans", spans);
	char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	/* Sent with no current span: the export is not itself traced. */
	const sdk_span *was = sdk_trace_set_current(NULL);
	if (body && sdk_call(t->caller, "telemetry", "POST", "/v1/traces", body, strlen(body), NULL,
			     EXPORT_TIMEOUT_MS, on_sent, t) == 0) {
		t->sending = true;
		t->sending_n = n;
	} else {
		t->dropped += n;
	}
	sdk_trace_set_current(was);
	free(body);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	flush(arg);
}

/* A span for each SQLite statement a sampled request's handler runs
 * (sdk/db.c's hook), timed here from its start to its end (SQLite's own
 * profile time has millisecond steps). Only on the thread where the
 * handler's span is current, so work on a pool's threads is not traced,
 * and an unsampled request's statements cost one test each. Per
 * statement rather than per transaction: a handler runs few, and each
 * shows what it waited on (at most SDK_TRACE_CHILDREN_MAX are kept). */
#define STMTS_OPEN 8 /* statements started and not ended, at once */
static _Thread_local struct {
	const void *stmt;
	int64_t start_ns;
} stmts_open[STMTS_OPEN];
static _Thread_local uint8_t stmts_of[8]; /* the span they were started under */

static void on_statement(bool end, const void *stmt, const char *sql)
{
	const sdk_span *cur = current;
	if (!cur || !cur->active || !(cur->ctx.flags & SDK_TRACE_FLAG_SAMPLED))
		return;
	if (memcmp(stmts_of, cur->ctx.span_id, 8)) {
		/* Another handler: what the last one left open is not ours. */
		memset(stmts_open, 0, sizeof stmts_open);
		memcpy(stmts_of, cur->ctx.span_id, 8);
	}
	int slot = -1;
	for (int i = 0; i < STMTS_OPEN; i++)
		if (stmts_open[i].stmt == stmt || (slot < 0 && !end && !stmts_open[i].stmt))
			slot = i;
	if (!end) {
		if (slot >= 0)
			stmts_open[slot].stmt = stmt, stmts_open[slot].start_ns = now_ns();
		return;
	}
	/* Started before the handler ran (or past STMTS_OPEN): no span. */
	if (slot < 0 || stmts_open[slot].stmt != stmt)
		return;
	stmts_open[slot].stmt = NULL;
	char name[48];
	size_t lead = sql ? strspn(sql, " \t\r\n") : 0;
	snprintf(name, sizeof name, "sqlite %.*s", sql ? (int)strcspn(sql + lead, " \t\r\n(;") : 0,
		 sql ? sql + lead : "");
	sdk_trace_child_done(cur, name, now_ns() - stmts_open[slot].start_ns, "db.query.text", sql);
}

sdk_tracer *sdk_tracer_new(struct event_base *base, sdk_caller *caller, const char *service)
{
	sdk_tracer *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->base = base;
	t->caller = caller;
	snprintf(t->service, sizeof t->service, "%s", service);
	t->sample_percent = 100;
	t->queue = calloc(SDK_TRACER_QUEUE_MAX, sizeof *t->queue);
	t->timer = event_new(base, -1, EV_PERSIST, on_timer, t);
	if (!t->queue || !t->timer) {
		sdk_tracer_free(t);
		return NULL;
	}
	struct timeval tv = { 0, FLUSH_EVERY_MS * 1000 };
	event_add(t->timer, &tv);
	if (!process_tracer) {
		process_tracer = t;
		sdk_db_set_stmt_hook(on_statement);
	}
	return t;
}

void sdk_tracer_free(sdk_tracer *t)
{
	if (!t)
		return;
	if (process_tracer == t) {
		sdk_db_set_stmt_hook(NULL);
		process_tracer = NULL;
	}
	if (t->timer)
		event_free(t->timer);
	free(t->queue);
	free(t);
}

void sdk_tracer_set_every_request(sdk_tracer *t, bool every_request)
{
	t->every_request = every_request;
}

void sdk_tracer_set_sample_percent(sdk_tracer *t, unsigned percent)
{
	t->sample_percent = percent > 100 ? 100 : percent;
}

unsigned long long sdk_tracer_sent(const sdk_tracer *t) { return t ? t->sent : 0; }
unsigned long long sdk_tracer_dropped(const sdk_tracer *t) { return t ? t->dropped : 0; }

void sdk_tracer_metrics(const sdk_tracer *t, const char *component, struct evbuffer *out)
{
	if (!t)
		return;
	char c[128];
	sdk_metrics_escape(component, c, sizeof c);
	evbuffer_add_printf(out,
			    "# HELP grace_trace_spans_sent_total Spans of this process sent to the telemetry kernel.\n"
			    "# TYPE grace_trace_spans_sent_total counter\n"
			    "grace_trace_spans_sent_total{kernel=\"%s\"} %llu\n"
			    "# HELP grace_trace_spans_dropped_total Spans dropped: the queue full or the telemetry kernel not taking them.\n"
			    "# TYPE grace_trace_spans_dropped_total counter\n"
			    "grace_trace_spans_dropped_total{kernel=\"%s\"} %llu\n",
			    c, t->sent, c, t->dropped);
}

/* ---- the HTTP server's hooks ---- */

static void http_begin(void *ctx, sdk_req *req, const sdk_route *route)
{
	sdk_tracer *t = ctx;
	sdk_span *s = sdk_req_span(req);
	sdk_trace_ctx parent;
	/* A malformed traceparent starts a new trace (Trace Context, 3.2.2). */
	bool has = sdk_traceparent_parse(sdk_req_header(req, "traceparent"), &parent) == 0;
	if (!has && !t->every_request)
		return;
	char name[96];
	snprintf(name, sizeof name, "%s %s", sdk_req_method(req),
		 route && route->pattern.path ? route->pattern.path : "");
	sdk_span_start(s, has ? &parent : NULL, SDK_SPAN_SERVER, name);
	if (!has && t->sample_percent < 100) {
		/* The trace id is random: its last bytes decide, as
		 * OpenTelemetry's TraceIdRatioBased sampler does. */
		uint32_t r = (uint32_t)s->ctx.trace_id[12] << 24 | (uint32_t)s->ctx.trace_id[13] << 16 |
			     (uint32_t)s->ctx.trace_id[14] << 8 | s->ctx.trace_id[15];
		if ((uint64_t)r * 100 >= (uint64_t)t->sample_percent << 32)
			s->ctx.flags &= (uint8_t)~SDK_TRACE_FLAG_SAMPLED;
	}
	/* tracestate goes on only with the traceparent it came with. */
	if (has &&
	    sdk_tracestate_parse(sdk_req_header(req, "tracestate"), s->tracestate,
				 sizeof s->tracestate) < 0)
		s->tracestate[0] = '\0';
	sdk_trace_set_current(s);
}

static void http_after(void *ctx, sdk_req *req)
{
	(void)ctx, (void)req;
	sdk_trace_set_current(NULL);
}

static void http_end(void *ctx, sdk_req *req, int status)
{
	sdk_span *s = sdk_req_span(req);
	if (s->active)
		sdk_span_end(ctx, s, status, sdk_req_method(req), sdk_req_path(req), sdk_req_id(req));
}

const sdk_trace_hooks sdk_tracer_http_hooks = { http_begin, http_after, http_end };
