/* Spans and their exporter (tracer.h). */
#include "sdk/tracer.h"

#include "sdk/call.h"
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
	snprintf(r->method, sizeof r->method, "%s", method ? method : "");
	snprintf(r->target, sizeof r->target, "%s", target ? target : "");
	snprintf(r->request_id, sizeof r->request_id, "%s", request_id ? request_id : "");
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
		json_array_append_new(attrs, kv_str("url.path", r->target));
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
	bool error = r->s.kind == SDK_SPAN_SERVER ? r->status >= 500
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
	return t;
}

void sdk_tracer_free(sdk_tracer *t)
{
	if (!t)
		return;
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
