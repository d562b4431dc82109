/* The telemetry kernel (8140): OTLP/HTTP receivers for traces, logs and
 * metrics, in protobuf and JSON (otlp_pb.c, otlp_json.c, otlp_metrics.c);
 * metrics are translated into Prometheus samples and handed to the metrics
 * kernel (POST /write); traces and logs are kept in SQLite with
 * retention by age and by size (store.c), and queries: a trace as a span
 * tree, spans by service, name, duration, status, attribute and time, log
 * records by trace and by time. The decoding and storing of exports, and
 * retention, run on one writer thread (sdk_pool), at SCHED_IDLE unless
 * [telemetry] store_idle = 0; queries on one reader thread with a
 * read-only connection of its own. The loop only reads the body and
 * answers. docs/telemetry.md. */
#include "kernels/telemetry/otlp.h"
#include "kernels/telemetry/otlp_metrics.h"
#include "kernels/telemetry/store.h"

#include "kernels/registry.h"
#include "sdk/clock.h"
#include "sdk/db.h"
#include "sdk/log.h"
#include "sdk/pool.h"

#include <ctype.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RETRY_AFTER_S "1"
#define WRITE_CHUNK_BYTES (256 * 1024) /* one /write to the metrics kernel */
#define WRITE_TIMEOUT_MS 10000
#define DELTA_SERIES_MAX 10000 /* delta series whose running totals are kept */

typedef struct job job;

typedef struct tel {
	sdk_kernel *k;
	sdk_pool *pool;   /* the writer, one thread: the only user of k->db after init */
	sdk_pool *reader; /* the queries, one thread */
	sqlite3 *rdb;     /* the reader's connection (read-only): only its thread uses it */
	bool idle_set;    /* the writer's thread asked for SCHED_IDLE: the writer's */
	struct event *retain_timer;
	bool retaining;
	grace_telemetry cfg;
	otlp_prom_acc *acc; /* delta totals: used on the worker thread only */
	tel_stmts *stmts;   /* the span insert's statements: the worker's too */
	job *sending;	    /* metrics requests waiting for the metrics kernel */
	unsigned long long spans, logs, rejected, refused_busy, refused_caller, bad, retained;
	unsigned long long points, samples;
} tel;

typedef enum { JOB_EXPORT, JOB_TRACE, JOB_SEARCH, JOB_LOGS, JOB_RETAIN } job_kind;

struct job {
	tel *t;
	job *next; /* in t->sending */
	sdk_req *req; /* NULL for retention */
	job_kind kind;
	otlp_signal sig;
	bool pb;
	uint8_t *body; /* the request's, owned */
	size_t len;
	/* answers, filled on the worker */
	int http, code; /* code: google.rpc.Code of an OTLP error */
	char why[OTLP_WHY_MAX + 64];
	size_t stored, rejected;
	char trace_id[33];
	tel_span_filter sf;
	tel_log_filter lf;
	json_t *out;
	int rc;
	sdk_err err;
	unsigned long long deleted;
	/* metrics: the /write bodies, sent one after the other */
	char **chunks;
	size_t n_chunks, next_chunk; /* each a NUL-ended JSON text */
	size_t points, samples, out_of_order, duplicates;
	bool ran; /* the worker ran it (else the pool dropped it: stopping) */
};

static void job_free(job *j)
{
	free(j->body);
	json_decref(j->out);
	for (size_t i = 0; i < j->n_chunks; i++)
		free(j->chunks[i]);
	free(j->chunks);
	free(j);
}

/* ---- OTLP answers ---- */

static void reply_body(sdk_req *req, int http, bool pb, uint8_t *body, size_t len)
{
	struct evbuffer *b = evbuffer_new();
	if (b && body)
		evbuffer_add(b, body, len);
	free(body);
	sdk_reply_raw(req, http, pb ? "application/x-protobuf" : "application/json", b);
	if (b)
		evbuffer_free(b);
}

static void reply_status(sdk_req *req, int http, bool pb, int code, const char *message)
{
	uint8_t *body = NULL;
	size_t len = 0;
	if (http == 429 || http == 503)
		sdk_req_add_header(req, "Retry-After", RETRY_AFTER_S);
	if (otlp_encode_status(pb, code, message, &body, &len) < 0) {
		sdk_reply_error(req, 500, "internal", "out of memory");
		return;
	}
	reply_body(req, http, pb, body, len);
}

/* The request's encoding: 1 protobuf, 0 JSON, -1 neither (by Content-Type,
 * its parameters ignored). */
static int encoding_of(sdk_req *req)
{
	const char *ct = sdk_req_header(req, "Content-Type");
	if (!ct)
		return -1;
	size_t n = strcspn(ct, "; \t");
	if (n == strlen("application/x-protobuf") && !strncasecmp(ct, "application/x-protobuf", n))
		return 1;
	if (n == strlen("application/json") && !strncasecmp(ct, "application/json", n))
		return 0;
	return -1;
}

/* ---- export: decoded, checked and stored on the worker ---- */

static int add_chunk(job *j, struct evbuffer *b)
{
	char **c = realloc(j->chunks, (j->n_chunks + 1) * sizeof *c);
	if (!c)
		return -1;
	j->chunks = c;
	evbuffer_add(b, "]}", 3); /* with its NUL */
	size_t len = evbuffer_get_length(b);
	char *s = malloc(len);
	if (!s)
		return -1;
	evbuffer_remove(b, s, len);
	j->chunks[j->n_chunks++] = s;
	return 0;
}

/* OTLP metrics into /write bodies of at most WRITE_CHUNK_BYTES each (a
 * series of one sample is far smaller). http stays 0: done_export hands
 * them to the metrics kernel. */
static void work_metrics(job *j, json_t *tree)
{
	otlp_prom_out out;
	int rc = otlp_prom_translate(j->t->acc, tree, j->t->cfg.request_items_max, sdk_wall_ms(),
				     &out, &j->err);
	if (rc < 0) {
		snprintf(j->why, sizeof j->why, "%s", j->err.msg);
		j->http = rc == SDK_ETOOLARGE ? 413 : 400, j->code = OTLP_CODE_INVALID_ARGUMENT;
		return;
	}
	j->points = out.points, j->rejected = out.rejected;
	j->samples = json_array_size(out.series);
	if (out.rejected)
		snprintf(j->why, sizeof j->why, "%zu rejected; the first: %s", out.rejected, out.why);
	struct evbuffer *b = evbuffer_new();
	size_t i;
	json_t *series;
	bool ok = b != NULL;
	json_array_foreach(out.series, i, series) {
		if (!ok)
			break;
		char *text = json_dumps(series, JSON_COMPACT);
		if (!text) {
			ok = false;
			break;
		}
		size_t len = evbuffer_get_length(b);
		if (len && len + strlen(text) > WRITE_CHUNK_BYTES)
			ok = add_chunk(j, b) == 0, len = 0;
		if (ok)
			evbuffer_add_printf(b, "%s%s", len ? "," : "{\"series\":[", text);
		free(text);
	}
	if (ok && b && evbuffer_get_length(b))
		ok = add_chunk(j, b) == 0;
	if (b)
		evbuffer_free(b);
	json_decref(out.series);
	if (!ok) {
		j->http = 503, j->code = OTLP_CODE_UNAVAILABLE;
		snprintf(j->why, sizeof j->why, "out of memory");
	}
}

static void work_export(job *j)
{
	json_t *tree = NULL;
	if (j->pb) {
		if (otlp_pb_to_json(j->sig, j->body, j->len, &tree, &j->err) < 0) {
			snprintf(j->why, sizeof j->why, "%s", j->err.msg);
			j->http = 400, j->code = OTLP_CODE_INVALID_ARGUMENT;
			return;
		}
	} else {
		json_error_t je;
		tree = json_loadb((const char *)j->body, j->len, 0, &je);
		if (!tree) {
			snprintf(j->why, sizeof j->why, "the body is not JSON: %s (line %d)", je.text,
				 je.line);
			j->http = 400, j->code = OTLP_CODE_INVALID_ARGUMENT;
			return;
		}
	}
	if (j->sig == OTLP_METRICS) {
		work_metrics(j, tree);
		json_decref(tree);
		return;
	}
	/* The batch's rows are text of their own: the tree can go. */
	otlp_batch b;
	int rc = otlp_json_batch(j->sig, tree, j->t->cfg.request_items_max, &b, &j->err);
	json_decref(tree);
	if (rc < 0) {
		snprintf(j->why, sizeof j->why, "%s", j->err.msg);
		j->http = rc == SDK_ETOOLARGE ? 413 : rc == SDK_EIO ? 503 : 400;
		j->code = rc == SDK_EIO ? OTLP_CODE_UNAVAILABLE : OTLP_CODE_INVALID_ARGUMENT;
		return;
	}
	j->rejected = b.rejected;
	if (b.rejected)
		snprintf(j->why, sizeof j->why, "%zu rejected; the first: %s", b.rejected, b.why);
	j->stored = b.n_rows;
	if (j->stored) {
		rc = j->sig == OTLP_TRACES ? tel_store_spans(j->t->k->db, j->t->stmts, &b, sdk_wall_ms(),
							     &j->err)
					   : tel_store_logs(j->t->k->db, &b, sdk_wall_ms(), &j->err);
		if (rc < 0) {
			/* The transaction rolled back: nothing of it is stored. */
			j->stored = 0;
			j->http = rc == SDK_EBUSY || rc == SDK_ETIMEOUT ? 503 : 500;
			j->code = j->http == 503 ? OTLP_CODE_UNAVAILABLE : OTLP_CODE_INTERNAL;
			snprintf(j->why, sizeof j->why, "not stored: %s", j->err.msg);
		}
	}
	otlp_batch_free(&b);
	if (!j->http)
		j->http = 200;
}

static void done_export(job *j)
{
	tel *t = j->t;
	if (j->http == 200) {
		uint8_t *body;
		size_t len;
		if (j->sig == OTLP_TRACES)
			t->spans += j->stored;
		else if (j->sig == OTLP_LOGS)
			t->logs += j->stored;
		t->rejected += j->rejected;
		if (otlp_encode_success(j->sig, j->pb, j->rejected, j->why, &body, &len) < 0)
			sdk_reply_error(j->req, 500, "internal", "out of memory");
		else
			reply_body(j->req, 200, j->pb, body, len);
	} else {
		t->bad++;
		reply_status(j->req, j->http, j->pb, j->code, j->why);
	}
}

/* ---- metrics: the translated samples handed to the metrics kernel,
 * one /write after the other; the answer waits for the last ---- */

static void sending_remove(job *j)
{
	for (job **p = &j->t->sending; *p; p = &(*p)->next)
		if (*p == j) {
			*p = j->next;
			return;
		}
}

static void metrics_finish(job *j)
{
	sending_remove(j);
	if (!j->http) {
		j->http = 200;
		j->t->points += j->points - j->rejected;
		j->t->samples += j->samples;
		/* Samples the metrics kernel left out (a resend's duplicates,
		 * points older than the series' last) are a warning: the
		 * OTLP partial success with nothing rejected. */
		if (!j->rejected && (j->out_of_order || j->duplicates))
			snprintf(j->why, sizeof j->why,
				 "the metrics kernel kept every series; %zu samples were older than "
				 "their series' last and %zu repeated a stored timestamp",
				 j->out_of_order, j->duplicates);
	}
	done_export(j);
	job_free(j);
}

static void metrics_send(job *j);

static void on_write_answer(int status, const char *body, size_t len, double ms,
			    const char *error, void *arg)
{
	(void)ms;
	job *j = arg;
	json_t *doc = body ? json_loadb(body, len, 0, NULL) : NULL;
	json_t *data = json_object_get(doc, "data");
	/* The Prometheus API's error is a string; Grace's shape (a refusal
	 * before the route ran: 401, 403, 503) is {"error":{"message"}}. */
	json_t *err = json_object_get(doc, "error");
	const char *msg = json_is_object(err) ? json_string_value(json_object_get(err, "message"))
					      : json_string_value(err);
	if (status == 200) {
		j->out_of_order += (size_t)json_integer_value(json_object_get(data, "out_of_order"));
		j->duplicates +=
			(size_t)json_integer_value(json_object_get(data, "duplicate_timestamp"));
		json_decref(doc);
		metrics_send(j);
		return;
	}
	if (status == 422) {
		/* The store is at its series limit: what could go in went
		 * in; the request's points are counted as not all stored. */
		j->http = 200;
		j->rejected = j->points;
		snprintf(j->why, sizeof j->why, "the metrics kernel refused samples: %s",
			 msg ? msg : "over its series limit");
	} else if (status == 0 || status == 429 || status == 503 || status == 504) {
		j->http = status == 429 ? 429 : 503;
		j->code = status == 429 ? OTLP_CODE_RESOURCE_EXHAUSTED : OTLP_CODE_UNAVAILABLE;
		snprintf(j->why, sizeof j->why, "the metrics kernel is not taking samples now (%s)",
			 status ? (msg ? msg : "busy") : (error ? error : "no answer"));
	} else {
		j->http = 500, j->code = OTLP_CODE_INTERNAL;
		snprintf(j->why, sizeof j->why, "the metrics kernel answered %d: %s", status,
			 msg ? msg : "no message");
	}
	json_decref(doc);
	metrics_finish(j);
}

static void metrics_send(job *j)
{
	tel *t = j->t;
	if (j->next_chunk == 0) { /* the first call: listed until answered */
		j->next = t->sending;
		t->sending = j;
	}
	if (j->next_chunk >= j->n_chunks) {
		metrics_finish(j);
		return;
	}
	const char *body = j->chunks[j->next_chunk++];
	if (sdk_call(t->k->caller, "metrics", "POST", "/write", body, strlen(body), NULL,
		     WRITE_TIMEOUT_MS, on_write_answer, j) < 0) {
		j->http = 503, j->code = OTLP_CODE_UNAVAILABLE;
		snprintf(j->why, sizeof j->why, "cannot reach the metrics kernel");
		metrics_finish(j);
	}
}

/* ---- queries ---- */

/* On the reader: its connection, opened at its first query. WAL: it reads
 * the last commit and never waits for the writer. */
static sqlite3 *reader_db(tel *t, sdk_err *err)
{
	if (!t->rdb && (sdk_db_open_checked(t->k->cfg->data_dir, t->k->def->name,
					    &(sdk_db_check){ .skip = true }, &t->rdb, err) < 0 ||
			sdk_db_exec(t->rdb, "PRAGMA query_only = 1", err) < 0)) {
		sqlite3_close(t->rdb);
		t->rdb = NULL;
	}
	return t->rdb;
}

static void work_query(job *j)
{
	sqlite3 *db = reader_db(j->t, &j->err);
	if (!db) {
		j->rc = SDK_EIO;
		return;
	}
	switch (j->kind) {
	case JOB_TRACE:
		j->rc = tel_trace(db, j->trace_id, &j->out, &j->err);
		break;
	case JOB_SEARCH:
		j->rc = tel_search(db, &j->sf, &j->out, &j->err);
		break;
	case JOB_LOGS:
		j->rc = tel_logs(db, &j->lf, &j->out, &j->err);
		break;
	default:
		break;
	}
}

static void done_query(job *j)
{
	if (j->rc < 0) {
		sdk_reply_status(j->req, j->rc, &j->err);
		return;
	}
	json_t *o = j->kind == JOB_TRACE ? json_incref(j->out)
		    : json_pack("{s:O}", j->kind == JOB_SEARCH ? "spans" : "logs", j->out);
	sdk_reply_json(j->req, 200, o);
}

/* ---- retention ---- */

static void work_retain(job *j)
{
	const grace_telemetry *c = &j->t->cfg;
	j->rc = tel_retain(j->t->k->db, sdk_wall_ms(), (int64_t)c->retention_age_s * 1000,
			   c->retention_max_bytes, &j->deleted, &j->err);
}

static void done_retain(job *j)
{
	j->t->retaining = false;
	j->t->retained += j->deleted;
	if (j->rc < 0)
		sdk_warn("telemetry: retention failed: %s", j->err.msg);
}

/* ---- the pool's two ends ---- */

/* The writer's thread at SCHED_IDLE (once, at its first job): it then
 * runs only when a CPU has nothing else to run, and a thread of any other
 * policy that wakes preempts it at once. Storing an export of Grace's own
 * spans takes 2-5 ms of CPU at a time; at the normal policy that ran in
 * the middle of the requests being traced: the gateway's path stalled (no
 * answer for 3 ms or more) 8.8-12.6 times a second as shipped, 5.3-5.9
 * with this, 7.6 with the kernel at nice 19 instead (the scheduler lets a
 * running task finish its slice), nginx's path 2.2-4.0 in most of the
 * same runs (bench/README.md section 5). An unprivileged thread cannot
 * come back from SCHED_IDLE, hence a thread of its own rather than a
 * policy per job. */
static void writer_idle(tel *t)
{
	if (t->idle_set || !t->cfg.store_idle)
		return;
	t->idle_set = true;
	struct sched_param sp = { 0 };
	int rc = pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
	if (rc)
		sdk_warn("telemetry: the store's writer stays at the normal policy: %s",
			 strerror(rc));
}

static void on_work(void *arg)
{
	job *j = arg;
	j->ran = true;
	if (j->kind != JOB_TRACE && j->kind != JOB_SEARCH && j->kind != JOB_LOGS)
		writer_idle(j->t);
	if (j->kind == JOB_EXPORT)
		work_export(j);
	else if (j->kind == JOB_RETAIN)
		work_retain(j);
	else
		work_query(j);
}

static void on_done(void *arg)
{
	job *j = arg;
	if (j->kind == JOB_EXPORT && j->sig == OTLP_METRICS && j->ran && !j->http) {
		metrics_send(j); /* owns j now */
		return;
	}
	if (j->kind == JOB_EXPORT && j->http)
		done_export(j);
	else if (j->kind == JOB_EXPORT)
		reply_status(j->req, 503, j->pb, OTLP_CODE_UNAVAILABLE, "the kernel is stopping");
	else if (j->kind == JOB_RETAIN)
		done_retain(j);
	else
		done_query(j);
	job_free(j);
}

/* Who a write is counted against for fairness: the user the gateway
 * vouches for, else the calling kernel, else the address. */
static const char *caller_of(sdk_req *req)
{
	const char *u = sdk_req_header(req, SDK_USER_HEADER);
	if (u && *u)
		return u;
	u = sdk_req_header(req, SDK_CALLER_HEADER);
	return u && *u ? u : sdk_req_peer(req);
}

static void on_export(sdk_req *req, tel *t, otlp_signal sig)
{
	int enc = encoding_of(req);
	if (enc < 0) {
		reply_status(req, 415, false, OTLP_CODE_INVALID_ARGUMENT,
			     "Content-Type must be application/x-protobuf or application/json");
		return;
	}
	const char *ce = sdk_req_header(req, "Content-Encoding");
	if (ce && *ce && strcasecmp(ce, "identity")) {
		reply_status(req, 415, enc == 1, OTLP_CODE_INVALID_ARGUMENT,
			     "Content-Encoding is not supported: send the body uncompressed");
		return;
	}
	job *j = calloc(1, sizeof *j);
	struct evbuffer *b = sdk_req_body(req);
	size_t len = evbuffer_get_length(b);
	if (j)
		j->body = malloc(len ? len : 1);
	if (!j || !j->body) {
		if (j)
			free(j);
		reply_status(req, 503, enc == 1, OTLP_CODE_UNAVAILABLE, "out of memory");
		return;
	}
	evbuffer_copyout(b, j->body, len);
	j->len = len;
	j->t = t, j->req = req, j->kind = JOB_EXPORT, j->sig = sig, j->pb = enc == 1;
	int rc = sdk_pool_submit_as(t->pool, caller_of(req), on_work, on_done, j);
	if (rc < 0) {
		bool caller = rc == SDK_POOL_ECALLER;
		if (caller)
			t->refused_caller++;
		else
			t->refused_busy++;
		reply_status(req, caller ? 429 : 503, j->pb,
			     caller ? OTLP_CODE_RESOURCE_EXHAUSTED : OTLP_CODE_UNAVAILABLE,
			     caller ? "too many of your requests are waiting to be stored; retry later"
				    : "the store is behind; retry later");
		job_free(j);
	}
}

static void on_traces(sdk_req *req, void *ctx)
{
	on_export(req, ((sdk_kernel *)ctx)->state, OTLP_TRACES);
}

static void on_logs(sdk_req *req, void *ctx)
{
	on_export(req, ((sdk_kernel *)ctx)->state, OTLP_LOGS);
}

/* OTLP metrics: translated on the worker (otlp_metrics.c), then handed
 * to the metrics kernel's POST /write (metrics_send). */
static void on_metrics(sdk_req *req, void *ctx)
{
	on_export(req, ((sdk_kernel *)ctx)->state, OTLP_METRICS);
}

static bool is_hex_id(const char *s, size_t digits)
{
	if (!s || strlen(s) != digits)
		return false;
	for (size_t i = 0; i < digits; i++)
		if (!isxdigit((unsigned char)s[i]))
			return false;
	return true;
}

static void submit_query(sdk_req *req, tel *t, job *j)
{
	j->t = t, j->req = req;
	int rc = sdk_pool_submit(t->reader, on_work, on_done, j);
	if (rc < 0) {
		job_free(j);
		sdk_req_add_header(req, "Retry-After", RETRY_AFTER_S);
		sdk_reply_error(req, 503, "busy", "the store is busy; retry shortly");
	}
}

static job *query_job(sdk_req *req, job_kind kind)
{
	job *j = calloc(1, sizeof *j);
	if (!j)
		sdk_reply_error(req, 503, "busy", "out of memory");
	else
		j->kind = kind;
	return j;
}

static void on_trace(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	const char *id = sdk_req_param(req, "id");
	if (!is_hex_id(id, 32)) {
		sdk_reply_error(req, 400, "bad_id", "a trace id is 32 hex digits");
		return;
	}
	job *j = query_job(req, JOB_TRACE);
	if (!j)
		return;
	for (size_t i = 0; i < 32; i++)
		j->trace_id[i] = (char)tolower((unsigned char)id[i]);
	submit_query(req, k->state, j);
}

static int read_times(sdk_req *req, int64_t *since_ns, int64_t *until_ns, unsigned *limit)
{
	unsigned long long since, until, lim;
	if (sdk_req_query_uint(req, "since", 0, 1ULL << 53, 0, &since) < 0 ||
	    sdk_req_query_uint(req, "until", 0, 1ULL << 53, 0, &until) < 0 ||
	    sdk_req_query_uint(req, "limit", 1, TEL_PAGE_MAX, 100, &lim) < 0)
		return -1;
	/* since/until are milliseconds since the epoch (like the other
	 * kernels' queries); the store keeps nanoseconds. */
	*since_ns = (int64_t)since * 1000000;
	*until_ns = (int64_t)until * 1000000;
	*limit = (unsigned)lim;
	return 0;
}

static void on_search(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	tel_span_filter f = { .status = -1 };
	unsigned long long mind, maxd;
	if (read_times(req, &f.since_ns, &f.until_ns, &f.limit) < 0 ||
	    sdk_req_query_uint(req, "min_duration_ns", 0, 1ULL << 62, 0, &mind) < 0 ||
	    sdk_req_query_uint(req, "max_duration_ns", 0, 1ULL << 62, 0, &maxd) < 0)
		return;
	f.min_duration_ns = (int64_t)mind, f.max_duration_ns = (int64_t)maxd;
	f.service = sdk_req_query(req, "service");
	f.name = sdk_req_query(req, "name");
	const char *st = sdk_req_query(req, "status");
	if (st) {
		static const char *const names[] = { "unset", "ok", "error" };
		for (int i = 0; i < 3; i++)
			if (!strcmp(st, names[i]) || (st[0] == '0' + i && !st[1]))
				f.status = i;
		if (f.status < 0) {
			sdk_reply_error(req, 400, "invalid", "status is unset, ok or error (or 0, 1, 2)");
			return;
		}
	}
	const char *attr = sdk_req_query(req, "attr");
	job *j = NULL;
	if (attr) {
		const char *eq = strchr(attr, '=');
		if (!eq || eq == attr) {
			sdk_reply_error(req, 400, "invalid", "attr is KEY=VALUE");
			return;
		}
		j = query_job(req, JOB_SEARCH);
		if (!j)
			return;
		/* Both halves live in the job's own copy. */
		char *copy = strdup(attr);
		if (!copy) {
			free(j);
			sdk_reply_error(req, 503, "busy", "out of memory");
			return;
		}
		copy[eq - attr] = '\0';
		j->body = (uint8_t *)copy;
		f.attr_key = copy;
		f.attr_value = copy + (eq - attr) + 1;
	} else if (!(j = query_job(req, JOB_SEARCH))) {
		return;
	}
	j->sf = f;
	submit_query(req, k->state, j);
}

static void on_get_logs(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	tel_log_filter f = { 0 };
	if (read_times(req, &f.since_ns, &f.until_ns, &f.limit) < 0)
		return;
	f.trace_id = sdk_req_query(req, "trace_id");
	f.span_id = sdk_req_query(req, "span_id");
	f.service = sdk_req_query(req, "service");
	if ((f.trace_id && !is_hex_id(f.trace_id, 32)) || (f.span_id && !is_hex_id(f.span_id, 16))) {
		sdk_reply_error(req, 400, "bad_id",
				"trace_id is 32 lowercase hex digits, span_id 16");
		return;
	}
	job *j = query_job(req, JOB_LOGS);
	if (!j)
		return;
	j->lf = f;
	submit_query(req, k->state, j);
}

static void on_retain_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	tel *t = arg;
	if (t->retaining)
		return;
	job *j = calloc(1, sizeof *j);
	if (!j)
		return;
	j->t = t, j->kind = JOB_RETAIN;
	if (sdk_pool_submit(t->pool, on_work, on_done, j) < 0) {
		free(j);
		return;
	}
	t->retaining = true;
}

static int telemetry_init(sdk_kernel *k, sdk_err *err)
{
	sdk_err e;
	if (tel_store_init(k->db, &e) < 0) {
		return sdk_fail(err, SDK_EIO, "%s", e.msg);
	}
	/* An export's spans land all over the random-keyed indexes (trace
	 * ids, request ids among the attributes): a commit of 80 spans writes
	 * 100 to 600 pages of WAL, so SQLite's default checkpoint every 1,000
	 * pages copied the same index pages into the file nearly every
	 * commit. With 16,384 (64 MiB of WAL, reused, as the librarian's
	 * writer) a page rewritten by many commits is copied once: 42 kB
	 * written a span became 37 kB, the kernel's CPU a span 106-116 us
	 * became 88-92 (48,000 tracer-shaped spans, JSON). A failure only
	 * leaves the default. */
	sqlite3_exec(k->db, "PRAGMA wal_autocheckpoint = 16384", NULL, NULL, NULL);
	tel *t = calloc(1, sizeof *t);
	if (!t) {
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	k->state = t;
	t->k = k;
	t->cfg = k->cfg->telemetry;
	/* One writer: k->db is used by one thread at a time, and the
	 * requests are stored in the order they came. */
	t->pool = sdk_pool_new(k->base, 1, t->cfg.queue_max);
	t->reader = sdk_pool_new(k->base, 1, t->cfg.queue_max);
	t->retain_timer = event_new(k->base, -1, EV_PERSIST, on_retain_timer, t);
	t->acc = otlp_prom_acc_new(DELTA_SERIES_MAX);
	t->stmts = tel_stmts_new();
	if (!t->pool || !t->reader || !t->retain_timer || !t->acc || !t->stmts) {
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	sdk_pool_set_caller_max(t->pool, t->cfg.caller_requests_max);
	struct timeval tv = { t->cfg.retention_interval_ms / 1000,
			      (t->cfg.retention_interval_ms % 1000) * 1000 };
	event_add(t->retain_timer, &tv);
	on_retain_timer(-1, 0, t);
	return 0;
}

static void telemetry_close(sdk_kernel *k)
{
	tel *t = k->state;
	if (!t)
		return;
	if (t->retain_timer)
		event_free(t->retain_timer);
	if (t->pool)
		sdk_pool_free(t->pool); /* runs every done: the requests are answered */
	if (t->reader)
		sdk_pool_free(t->reader);
	sqlite3_close(t->rdb); /* its thread is gone */
	/* Metrics requests still waiting for the metrics kernel: their
	 * calls end unanswered with the caller (after close). */
	for (job *j = t->sending, *n; j; j = n) {
		n = j->next;
		job_free(j);
	}
	otlp_prom_acc_free(t->acc);
	tel_stmts_free(t->stmts); /* the worker is gone; the connection still open */
	free(t);
	k->state = NULL;
}

static void telemetry_metrics(sdk_kernel *k, struct evbuffer *out)
{
	tel *t = k->state;
	if (!t)
		return;
	evbuffer_add_printf(out,
			    "# HELP grace_telemetry_spans_stored_total Spans stored.\n"
			    "# TYPE grace_telemetry_spans_stored_total counter\n"
			    "grace_telemetry_spans_stored_total{kernel=\"telemetry\"} %llu\n"
			    "# HELP grace_telemetry_logs_stored_total Log records stored.\n"
			    "# TYPE grace_telemetry_logs_stored_total counter\n"
			    "grace_telemetry_logs_stored_total{kernel=\"telemetry\"} %llu\n"
			    "# HELP grace_telemetry_rejected_total Spans and log records left out of a partial success.\n"
			    "# TYPE grace_telemetry_rejected_total counter\n"
			    "grace_telemetry_rejected_total{kernel=\"telemetry\"} %llu\n"
			    "# HELP grace_telemetry_bad_requests_total OTLP requests refused whole (bad input, oversized, store failure).\n"
			    "# TYPE grace_telemetry_bad_requests_total counter\n"
			    "grace_telemetry_bad_requests_total{kernel=\"telemetry\"} %llu\n"
			    "# HELP grace_telemetry_refused_total OTLP requests refused for back-pressure (503 busy, 429 caller).\n"
			    "# TYPE grace_telemetry_refused_total counter\n"
			    "grace_telemetry_refused_total{kernel=\"telemetry\",why=\"busy\"} %llu\n"
			    "grace_telemetry_refused_total{kernel=\"telemetry\",why=\"caller\"} %llu\n"
			    "# HELP grace_telemetry_retention_deleted_total Rows deleted by retention.\n"
			    "# TYPE grace_telemetry_retention_deleted_total counter\n"
			    "grace_telemetry_retention_deleted_total{kernel=\"telemetry\"} %llu\n"
			    "# HELP grace_telemetry_queued_jobs Requests, queries and retention runs waiting for or on the store's threads.\n"
			    "# TYPE grace_telemetry_queued_jobs gauge\n"
			    "grace_telemetry_queued_jobs{kernel=\"telemetry\"} %zu\n",
			    t->spans, t->logs, t->rejected, t->bad, t->refused_busy, t->refused_caller,
			    t->retained, sdk_pool_pending(t->pool) + sdk_pool_pending(t->reader));
}

static const sdk_route telemetry_routes[] = {
	SDK_ROUTE("POST", "/v1/traces", on_traces),
	SDK_ROUTE("POST", "/v1/logs", on_logs),
	SDK_ROUTE("POST", "/v1/metrics", on_metrics),
	SDK_ROUTE("GET", "/traces", on_search),
	SDK_ROUTE("GET", "/traces/:id", on_trace),
	SDK_ROUTE("GET", "/logs", on_get_logs),
};

const sdk_kernel_def telemetry_kernel = {
	.name = "telemetry",
	.port = 8140, .tier = "services",
	.summary = "OTLP traces, logs and metrics in, span trees and searches out",
	.complete = true,
	/* Its tables as they are today: a change is a new step in
	 * .migrations and a new fixture directory (docs/upgrades.md). */
	.schema_version = 1,
	.routes = telemetry_routes,
	.n_routes = sizeof telemetry_routes / sizeof telemetry_routes[0],
	.init = telemetry_init,
	.close = telemetry_close,
	.metrics = telemetry_metrics,
};
