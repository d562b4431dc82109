/* Spans and their exporter (tracer.h). */
#include "sdk/tracer.h"

#include "sdk/bucket.h"
#include "sdk/clock.h"
#include "sdk/call.h"
#include "sdk/db.h"
#include "sdk/http.h"
#include "sdk/jsonw.h"
#include "sdk/log.h"
#include "sdk/pool.h"
#include "sdk/str.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FLUSH_EVERY_MS 200
#define EXPORT_TIMEOUT_MS 3000
#define TRACER_OUT_KEEP (256 * 1024)

typedef struct rec {
	sdk_span s;
	int64_t end_ns;
	int status;
	char method[8];
	char target[160];
	char request_id[33];
	int error; /* -1: by the HTTP status; else 0 or 1 (sdk_span_end_attr) */
	char akey[32];
	/* A SQLite statement's span: its code when it failed, and how many
	 * statements of its pool job had no span (on the job's last). */
	bool db;
	int db_failed;
	unsigned db_dropped;
} rec;

struct sdk_tracer {
	struct event_base *base;
	sdk_caller *caller;
	char service[64];
	struct event *timer;
	bool every_request;
	unsigned sample_percent;
	unsigned sample_rate_max; /* traces it starts recorded a second; 0: no cap */
	sdk_bucket rate;          /* for sample_rate_max, on the loop */
	bool sending;
	size_t sending_n;
	size_t batch_max; /* spans an export holds (sdk_tracer_set_limits) */
	size_t body_max;  /* bytes an export's body stays under; 0: no bound */
	rec *queue; /* a ring of SDK_TRACER_QUEUE_MAX */
	sdk_buf out; /* the export being written, its memory kept between exports */
	size_t head, n;
	unsigned long long sent, dropped;
	unsigned long long capped; /* traces left unrecorded by sample_rate_max */
};

static _Thread_local const sdk_span *current;
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
	sdk_strcpy(s->name, sizeof s->name, name ? name : "");
	s->active = true;
}

sdk_trace_ctx sdk_span_context(const sdk_span *s) { return s->ctx; }

/* A record for `s` at the queue's end, ended now, with no attributes;
 * NULL (counted as dropped) when the queue is full. */
static rec *queue_rec(sdk_tracer *t, const sdk_span *s)
{
	if (t->n == SDK_TRACER_QUEUE_MAX) {
		t->dropped++;
		return NULL;
	}
	rec *r = &t->queue[(t->head + t->n++) % SDK_TRACER_QUEUE_MAX];
	r->s = *s;
	r->s.active = false;
	r->end_ns = now_ns();
	r->status = 0;
	r->error = -1;
	r->akey[0] = r->method[0] = r->target[0] = r->request_id[0] = '\0';
	r->db = false;
	r->db_failed = 0;
	r->db_dropped = 0;
	return r;
}

void sdk_span_end(sdk_tracer *t, sdk_span *s, int status, const char *method, const char *target,
		  const char *request_id)
{
	if (!s->active)
		return;
	s->active = false;
	if (!t || !(s->ctx.flags & SDK_TRACE_FLAG_SAMPLED))
		return;
	rec *r = queue_rec(t, s);
	if (!r)
		return;
	r->status = status;
	sdk_strcpy(r->method, sizeof r->method, method ? method : "");
	sdk_strcpy(r->target, sizeof r->target, target ? target : "");
	sdk_strcpy(r->request_id, sizeof r->request_id, request_id ? request_id : "");
}

/* A SQLite statement's span, a child of `parent` (sampled), from start_ns
 * to end_ns: named `sqlite SELECT` and so on, kind INTERNAL, with the
 * statement's text; `failed`: the SQLite code it aborted with, or 0. */
static void queue_db_span(sdk_tracer *t, const sdk_span *parent, const char *name,
			  int64_t start_ns, int64_t end_ns, const char *sql, int failed,
			  unsigned dropped)
{
	sdk_span s;
	sdk_trace_ctx pc = sdk_span_context(parent);
	sdk_span_start(&s, &pc, SDK_SPAN_INTERNAL, name);
	s.start_ns = start_ns;
	snprintf(s.tracestate, sizeof s.tracestate, "%s", parent->tracestate);
	rec *r = queue_rec(t, &s);
	if (!r)
		return;
	r->end_ns = end_ns;
	r->error = failed != 0;
	if (sql) {
		snprintf(r->akey, sizeof r->akey, "db.query.text");
		snprintf(r->target, sizeof r->target, "%s", sql);
	}
	r->db = true;
	r->db_failed = failed;
	r->db_dropped = dropped;
}

void sdk_span_end_attr(sdk_tracer *t, sdk_span *s, bool error, const char *key, const char *value)
{
	if (!s->active)
		return;
	s->active = false;
	if (!t || !(s->ctx.flags & SDK_TRACE_FLAG_SAMPLED))
		return;
	rec *r = queue_rec(t, s);
	if (!r)
		return;
	r->error = error;
	if (key && value) {
		snprintf(r->akey, sizeof r->akey, "%s", key);
		snprintf(r->target, sizeof r->target, "%s", value);
	}
}

static void hex(const uint8_t *in, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++)
		out[2 * i] = d[in[i] >> 4], out[2 * i + 1] = d[in[i] & 15];
	out[2 * n] = '\0';
}

/* The export is written as text (sdk/jsonw.h): building it as a jansson
 * tree and dumping it cost 120,000 instructions a span, and at 1 %
 * sampling a tenth of every proxied request's instructions. */
static void kv_str(sdk_buf *o, bool *first, const char *k, const char *v)
{
	sdk_jsonw_raw(o, *first ? "{\"key\":" : ",{\"key\":");
	*first = false;
	sdk_jsonw_str(o, k);
	sdk_jsonw_raw(o, ",\"value\":{\"stringValue\":");
	sdk_jsonw_str(o, v);
	sdk_jsonw_raw(o, "}}");
}

/* OTLP/JSON writes 64-bit integers as strings. */
static void kv_int(sdk_buf *o, bool *first, const char *k, int64_t v)
{
	sdk_jsonw_raw(o, *first ? "{\"key\":" : ",{\"key\":");
	*first = false;
	sdk_jsonw_str(o, k);
	sdk_jsonw_raw(o, ",\"value\":{\"intValue\":");
	sdk_jsonw_int(o, v, 1);
	sdk_jsonw_raw(o, "}}");
}

static void span_json(sdk_buf *o, const rec *r)
{
	char tid[33], sid[17], pid[17];
	hex(r->s.ctx.trace_id, 16, tid);
	hex(r->s.ctx.span_id, 8, sid);
	sdk_jsonw_raw(o, "{\"traceId\":\"");
	sdk_jsonw_raw(o, tid);
	sdk_jsonw_raw(o, "\",\"spanId\":\"");
	sdk_jsonw_raw(o, sid);
	sdk_jsonw_raw(o, "\",\"name\":");
	sdk_jsonw_str(o, r->s.name);
	sdk_jsonw_raw(o, ",\"kind\":");
	sdk_jsonw_int(o, r->s.kind, 0);
	sdk_jsonw_raw(o, ",\"startTimeUnixNano\":");
	sdk_jsonw_int(o, r->s.start_ns, 1);
	sdk_jsonw_raw(o, ",\"endTimeUnixNano\":");
	sdk_jsonw_int(o, r->end_ns, 1);
	sdk_jsonw_raw(o, ",\"attributes\":[");
	bool first = true;
	if (*r->method)
		kv_str(o, &first, "http.request.method", r->method);
	if (*r->target)
		kv_str(o, &first, *r->akey ? r->akey : "url.path", r->target);
	if (r->status)
		kv_int(o, &first, "http.response.status_code", r->status);
	if (*r->request_id)
		kv_str(o, &first, "grace.request_id", r->request_id);
	if (r->db) {
		/* OpenTelemetry's database conventions: the SQLite code (extended)
		 * is the response status and the error's type. */
		kv_str(o, &first, "db.system.name", "sqlite");
		if (r->db_failed) {
			char code[12];
			const char *c = sdk_int_text(r->db_failed, code);
			kv_str(o, &first, "db.response.status_code", c);
			kv_str(o, &first, "error.type", c);
		}
		if (r->db_dropped)
			kv_int(o, &first, "grace.db.statements_dropped", r->db_dropped);
	}
	sdk_jsonw_raw(o, "],\"flags\":");
	sdk_jsonw_int(o, r->s.ctx.flags, 0);
	if (r->s.has_parent) {
		hex(r->s.parent, 8, pid);
		sdk_jsonw_raw(o, ",\"parentSpanId\":\"");
		sdk_jsonw_raw(o, pid);
		sdk_jsonw_raw(o, "\"");
	}
	if (*r->s.tracestate) {
		sdk_jsonw_raw(o, ",\"traceState\":");
		sdk_jsonw_str(o, r->s.tracestate);
	}
	/* A server's 5xx is its error (OpenTelemetry's HTTP conventions); a
	 * client's (the gateway's forward) any status of 400 and up, or none. */
	bool error = r->error >= 0		     ? r->error
		     : r->s.kind == SDK_SPAN_SERVER ? r->status >= 500
						    : r->status >= 400 || r->status == 0;
	if (!error) {
		sdk_jsonw_raw(o, ",\"status\":{}}");
		return;
	}
	sdk_jsonw_raw(o, ",\"status\":{\"code\":2");
	if (r->db_failed) {
		sdk_jsonw_raw(o, ",\"message\":");
		sdk_jsonw_str(o, sqlite3_errstr(r->db_failed));
	}
	sdk_jsonw_raw(o, "}}");
}

static void flush(sdk_tracer *t);

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
	if (status == 413 && t->batch_max > 1) {
		/* The telemetry kernel takes less than we were told: those spans
		 * are lost, the next exports are smaller. */
		t->batch_max = t->sending_n > 1 ? t->sending_n / 2 : 1;
		sdk_warn("tracer %s: the telemetry kernel refused an export of %zu spans as too "
			 "large (413); exports now hold at most %zu", t->service, t->sending_n,
			 t->batch_max);
	}
	t->sending_n = 0;
	/* A full export's worth still waiting goes now, not at the next tick:
	 * with a small request_items_max, one export every 200 ms would cap
	 * a process at a few spans a second and fill its queue. */
	if (status == 200 && t->n >= t->batch_max)
		flush(t);
}

static void flush(sdk_tracer *t)
{
	if (t->sending || t->n == 0)
		return;
	size_t n = t->n < t->batch_max ? t->n : t->batch_max;
	sdk_buf *o = &t->out;
	sdk_buf_reset(o);
	sdk_jsonw_raw(o, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
	bool first = true;
	kv_str(o, &first, "service.name", t->service);
	sdk_jsonw_raw(o, "]},\"scopeSpans\":[{\"scope\":{\"name\":\"grace\",\"version\":\"" GRACE_VERSION
			 "\"},\"spans\":[");
	/* Spans while the body stays under body_max with its closing bytes;
	 * one that alone would pass it is dropped (it could never be sent). */
	static const char tail[] = "]}]}]}";
	size_t taken = 0, sent = 0, skipped = 0;
	while (taken < n) {
		size_t before = o->len;
		if (sent)
			sdk_jsonw_raw(o, ",");
		span_json(o, &t->queue[(t->head + taken) % SDK_TRACER_QUEUE_MAX]);
		if (t->body_max && !o->oom && o->len + sizeof tail > t->body_max) {
			sdk_buf_truncate(o, before);
			if (sent)
				break; /* the next export begins with it */
			skipped++;
		} else {
			sent++;
		}
		taken++;
	}
	sdk_jsonw_raw(o, tail);
	t->head = (t->head + taken) % SDK_TRACER_QUEUE_MAX;
	t->n -= taken;
	t->dropped += skipped;
	n = sent;
	if (!n) {
		sdk_buf_reset(o);
		return;
	}
	/* Sent with no current span: the export is not itself traced. */
	const sdk_span *was = sdk_trace_set_current(NULL);
	if (!o->oom && sdk_call(t->caller, "telemetry", "POST", "/v1/traces", o->p, o->len, NULL,
				EXPORT_TIMEOUT_MS, on_sent, t) == 0) {
		t->sending = true;
		t->sending_n = n;
	} else {
		t->dropped += n;
	}
	sdk_trace_set_current(was);
	/* A burst's export can be large; what a quiet process keeps is not. */
	if (o->oom || o->cap > TRACER_OUT_KEEP)
		sdk_buf_free(o); /* a fresh start after a failed allocation, too */
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	flush(arg);
}

/* A span for each SQLite statement a sampled request's handler runs
 * (sdk/db.c's hook), timed here from its start to its end (SQLite's own
 * profile time has millisecond steps). On the loop, where the handler's
 * span is current, each is queued as it ends; on a pool's worker, where
 * the job carries the span of the handler that submitted it (below), they
 * are collected in the job and queued when it finishes on the loop (the
 * queue is the loop's). An unsampled request's statements cost one test
 * each. Per statement rather than per transaction: a handler runs few,
 * and each shows what it waited on (at most SDK_TRACE_CHILDREN_MAX a span
 * on the loop, and a job on a worker). */
#define STMTS_OPEN 8 /* statements started and not ended, at once */
static _Thread_local struct {
	const void *stmt;
	int64_t start_ns;
} stmts_open[STMTS_OPEN];
static _Thread_local uint8_t stmts_of[8]; /* the span they were started under */

/* A pool job's trace (sdk_pool_trace_hooks): the span current when it
 * was submitted, a copy (the handler's own may be gone by the time the
 * job ends), and the statements its work ran on the worker. The worker
 * writes them, the loop reads them after the pool handed the job back
 * (under its mutex): never both at once. */
struct job_stmt {
	int64_t start_ns, end_ns;
	int failed;
	char name[48];
	char sql[160]; /* as a span's text attribute keeps it */
};
typedef struct trace_job {
	sdk_span span;
	struct job_stmt *stmts;
	unsigned n, cap, dropped;
	const sdk_span *was; /* the worker's current span before the work */
} trace_job;
/* The job whose work runs on this thread, or NULL (the loop; a job with no span). */
static _Thread_local trace_job *collecting;

static void job_stmt_add(trace_job *j, const char *name, int64_t start_ns, int64_t end_ns,
			 const char *sql, int failed)
{
	if (j->n == SDK_TRACE_CHILDREN_MAX) {
		j->dropped++;
		return;
	}
	if (j->n == j->cap) {
		unsigned cap = j->cap ? j->cap * 4 : 4;
		cap = cap > SDK_TRACE_CHILDREN_MAX ? SDK_TRACE_CHILDREN_MAX : cap;
		struct job_stmt *more = realloc(j->stmts, cap * sizeof *more);
		if (!more) {
			j->dropped++;
			return;
		}
		j->stmts = more;
		j->cap = cap;
	}
	struct job_stmt *st = &j->stmts[j->n++];
	st->start_ns = start_ns;
	st->end_ns = end_ns;
	st->failed = failed;
	snprintf(st->name, sizeof st->name, "%s", name);
	snprintf(st->sql, sizeof st->sql, "%s", sql ? sql : "");
}

/* The children made on the loop for the current span, and whose (its span id). */
static _Thread_local uint8_t children_of[8];
static _Thread_local unsigned children;

static void loop_child(const sdk_span *parent, const char *name, int64_t start_ns,
		       const char *sql, int failed)
{
	sdk_tracer *t = process_tracer;
	if (!t)
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
	queue_db_span(t, parent, name, start_ns, now_ns(), sql, failed, 0);
}

static void on_statement(bool end, const void *stmt, const char *sql, int failed)
{
	const sdk_span *cur = current;
	if (!cur || !cur->active || !(cur->ctx.flags & SDK_TRACE_FLAG_SAMPLED))
		return;
	if (collecting && collecting->n == SDK_TRACE_CHILDREN_MAX) {
		/* The job has all the spans it may: the rest are only counted
		 * (a search can run hundreds of statements). */
		collecting->dropped += end;
		return;
	}
	if (memcmp(stmts_of, cur->ctx.span_id, 8)) {
		/* Another handler: what the last one left open is not ours. */
		memset(stmts_open, 0, sizeof stmts_open);
		memcpy(stmts_of, cur->ctx.span_id, 8);
	}
	int slot = -1, free_slot = -1;
	for (int i = 0; i < STMTS_OPEN && slot < 0; i++)
		if (stmts_open[i].stmt == stmt)
			slot = i;
		else if (free_slot < 0 && !stmts_open[i].stmt)
			free_slot = i;
	if (!end) {
		/* Open already: a trigger's program starting inside it (SQLite
		 * traces those with the statement's identity). */
		if (slot < 0 && free_slot >= 0)
			stmts_open[free_slot].stmt = stmt, stmts_open[free_slot].start_ns = now_ns();
		return;
	}
	/* Started before the handler ran (or past STMTS_OPEN): no span. */
	if (slot < 0)
		return;
	stmts_open[slot].stmt = NULL;
	char name[48];
	size_t lead = sql ? strspn(sql, " \t\r\n") : 0;
	snprintf(name, sizeof name, "sqlite %.*s", sql ? (int)strcspn(sql + lead, " \t\r\n(;") : 0,
		 sql ? sql + lead : "");
	if (collecting)
		job_stmt_add(collecting, name, stmts_open[slot].start_ns, now_ns(), sql, failed);
	else
		loop_child(cur, name, stmts_open[slot].start_ns, sql, failed);
}

/* ---- the pool's hooks (sdk/pool.h) ---- */

/* On the loop, at submit: a sampled span current, and a tracer to queue
 * the job's spans on. */
static void *job_capture(void)
{
	const sdk_span *cur = current;
	if (!cur || !process_tracer || !cur->active || !(cur->ctx.flags & SDK_TRACE_FLAG_SAMPLED))
		return NULL;
	trace_job *j = calloc(1, sizeof *j);
	if (!j)
		return NULL; /* not traced, never failed for it */
	j->span = *cur;
	return j;
}

/* On the worker: the job's span is current while its work runs (its log
 * lines carry it too); no statement is open yet. */
static void job_enter(void *arg)
{
	trace_job *j = arg;
	j->was = sdk_trace_set_current(&j->span);
	collecting = j;
	memset(stmts_open, 0, sizeof stmts_open);
	memcpy(stmts_of, j->span.ctx.span_id, 8);
}

static void job_leave(void *arg)
{
	trace_job *j = arg;
	collecting = NULL;
	memset(stmts_open, 0, sizeof stmts_open); /* a statement left open ends in no span */
	sdk_trace_set_current(j->was);
}

/* On the loop, before the job's done: its statements become spans, and
 * its span is current while done runs, so what done does (calls, more
 * jobs, statements, log lines) stays in the trace. */
static const void *job_resume(void *arg)
{
	trace_job *j = arg;
	sdk_tracer *t = process_tracer;
	for (unsigned i = 0; t && i < j->n; i++) {
		const struct job_stmt *st = &j->stmts[i];
		queue_db_span(t, &j->span, st->name, st->start_ns, st->end_ns, st->sql, st->failed,
			      i + 1 == j->n ? j->dropped : 0);
	}
	if (t)
		t->dropped += j->dropped;
	return sdk_trace_set_current(&j->span);
}

static void job_finish(void *arg, const void *resumed)
{
	trace_job *j = arg;
	sdk_trace_set_current(resumed);
	free(j->stmts);
	free(j);
}

static const sdk_pool_trace_hooks pool_hooks = { job_capture, job_enter, job_leave, job_resume,
						 job_finish };

sdk_tracer *sdk_tracer_new(struct event_base *base, sdk_caller *caller, const char *service)
{
	sdk_tracer *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->base = base;
	t->caller = caller;
	snprintf(t->service, sizeof t->service, "%s", service);
	t->sample_percent = 100;
	t->batch_max = SDK_TRACER_BATCH;
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
		sdk_pool_set_trace_hooks(&pool_hooks);
	}
	return t;
}

void sdk_tracer_free(sdk_tracer *t)
{
	if (!t)
		return;
	if (process_tracer == t) {
		sdk_db_set_stmt_hook(NULL);
		sdk_pool_set_trace_hooks(NULL);
		process_tracer = NULL;
	}
	if (t->timer)
		event_free(t->timer);
	free(t->queue);
	sdk_buf_free(&t->out);
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

void sdk_tracer_set_sample_rate_max(sdk_tracer *t, unsigned per_second)
{
	t->sample_rate_max = per_second;
	/* A second's worth at most: a burst after a quiet minute is one
	 * second's cap, not sixty. */
	sdk_bucket_init(&t->rate, per_second, per_second / 1000.0, sdk_mono_ms());
}

void sdk_tracer_set_limits(sdk_tracer *t, unsigned items_max, size_t body_max)
{
	if (items_max)
		t->batch_max = items_max < SDK_TRACER_BATCH ? items_max : SDK_TRACER_BATCH;
	if (body_max)
		t->body_max = body_max;
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
			    "grace_trace_spans_dropped_total{kernel=\"%s\"} %llu\n"
			    "# HELP grace_trace_capped_total Traces started here and left unrecorded: past [telemetry] sample_rate_max a second.\n"
			    "# TYPE grace_trace_capped_total counter\n"
			    "grace_trace_capped_total{kernel=\"%s\"} %llu\n",
			    c, t->sent, c, t->dropped, c, t->capped);
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
	sdk_span_start(s, has ? &parent : NULL, SDK_SPAN_SERVER, NULL);
	if (!has && t->sample_percent < 100) {
		/* The trace id is random: its last bytes decide, as
		 * OpenTelemetry's TraceIdRatioBased sampler does. */
		uint32_t r = (uint32_t)s->ctx.trace_id[12] << 24 | (uint32_t)s->ctx.trace_id[13] << 16 |
			     (uint32_t)s->ctx.trace_id[14] << 8 | s->ctx.trace_id[15];
		if ((uint64_t)r * 100 >= (uint64_t)t->sample_percent << 32)
			s->ctx.flags &= (uint8_t)~SDK_TRACE_FLAG_SAMPLED;
	}
	if (!has && t->sample_rate_max && (s->ctx.flags & SDK_TRACE_FLAG_SAMPLED) &&
	    !sdk_bucket_take(&t->rate, sdk_mono_ms())) {
		s->ctx.flags &= (uint8_t)~SDK_TRACE_FLAG_SAMPLED;
		t->capped++;
	}
	/* Named only when recorded: the name is read by the export alone, and
	 * this runs for every request of a traced process. */
	if (s->ctx.flags & SDK_TRACE_FLAG_SAMPLED)
		SDK_STRJOIN(s->name, sizeof s->name, sdk_req_method(req), " ",
			    route && route->pattern.path ? route->pattern.path : "");
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
