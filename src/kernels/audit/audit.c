/* The audit trail kernel (8115): who did what, when, from where. Every
 * event is appended, in batches, to the immutable log, so its history can
 * be proven with an RFC 6962 inclusion proof against a signed tree head. */
#include "kernels/audit/archive.h"
#include "kernels/audit/store.h"
#include "sdk/clock.h"
#include "kernels/registry.h"
#include "sdk/log.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define APPEND_EVERY_MS 200
#define APPEND_BATCH 500
#define APPEND_BATCH_BYTES (512u << 10)
#define EXPORT_PAUSE_MS 1          /* between chunks: the loop serves others */
#define EXPORT_BUFFERED_MAX (256u << 10) /* unsent bytes before we wait */
#define LOG_CALL_TIMEOUT_MS 5000
#define EXPORT_CHUNK 500

struct audit {
	sdk_kernel *k;
	struct event *append_timer;
	bool appending;
	/* [[id, index], ...]: where the log put events whose index could not be
	 * stored yet (a full disk). Stored before anything else is sent: sending
	 * those events again would put them in the log twice. */
	json_t *pending;
	unsigned long long appended, append_failures, index_failures;
	aud_archiver *arch;
};

/* Writes the pending log indexes; true when none are left. */
static bool store_pending(struct audit *a)
{
	if (json_array_size(a->pending) == 0)
		return true;
	sdk_err e;
	if (aud_set_log_indexes(a->k->db, a->pending, &e) < 0) {
		if (a->index_failures++ % 50 == 0)
			sdk_warn("audit: cannot record %zu log indexes (%s); holding further appends",
				 json_array_size(a->pending), e.msg);
		return false;
	}
	a->appended += json_array_size(a->pending);
	json_array_clear(a->pending);
	return true;
}

/* The log answers a batch with its entries in order: a JSON array, or an
 * object holding one under "entries". */
static json_t *log_entries(json_t *answer)
{
	if (json_is_array(answer))
		return answer;
	return json_object_get(answer, "entries");
}

static void on_appended(int status, const char *body, size_t len, double ms, const char *error,
			void *arg)
{
	(void)ms;
	struct audit *a = arg;
	a->appending = false;
	json_t *sent = NULL;
	json_t *answer = body ? json_loadb(body, len, 0, NULL) : NULL;
	json_t *entries = log_entries(answer);
	if (status < 200 || status >= 300 || !json_is_array(entries)) {
		if (a->append_failures++ % 50 == 0)
			sdk_warn("audit: cannot append to the immutable log (%d %s); will retry",
				 status, error ? error : "");
		json_decref(answer);
		return;
	}
	/* The batch that was sent is the oldest unlogged events, in order. */
	sdk_err e;
	if (aud_unlogged(a->k->db, (unsigned)json_array_size(entries), &sent, &e) < 0) {
		sdk_error("audit: the log took %zu events but they cannot be read back (%s): "
			  "they may be appended again", json_array_size(entries), e.msg);
		json_decref(answer);
		return;
	}
	size_t i;
	json_t *en;
	json_array_foreach(entries, i, en) {
		json_t *ev = json_array_get(sent, i);
		json_t *idx = json_object_get(en, "index");
		if (!ev || !json_is_integer(idx))
			break;
		json_array_append_new(a->pending, json_pack("[O, O]", json_object_get(ev, "id"), idx));
	}
	store_pending(a);
	json_decref(sent);
	json_decref(answer);
}

static void on_append_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct audit *a = arg;
	if (a->appending || !store_pending(a))
		return;
	json_t *events = NULL;
	if (aud_unlogged(a->k->db, APPEND_BATCH, &events, NULL) < 0 ||
	    json_array_size(events) == 0) {
		json_decref(events);
		return;
	}
	/* Bounded in bytes as well as count: a batch over the log's body limit
	 * would be refused, and retried unchanged, for ever. An event is at
	 * most ~70 KiB, so one always fits. */
	json_t *batch = json_array();
	size_t i, bytes = 2;
	json_t *ev;
	json_array_foreach(events, i, ev) {
		json_t *entry = json_pack("{s:O}", "data", ev);
		char *one = json_dumps(entry, JSON_COMPACT);
		size_t len = one ? strlen(one) + 1 : 0;
		free(one);
		if (i > 0 && bytes + len > APPEND_BATCH_BYTES) {
			json_decref(entry);
			break;
		}
		bytes += len;
		json_array_append_new(batch, entry);
	}
	char *body = json_dumps(batch, JSON_COMPACT);
	json_decref(batch);
	json_decref(events);
	if (body && sdk_call(a->k->caller, "immutable_log", "POST", "/entries", body, strlen(body),
			     NULL, LOG_CALL_TIMEOUT_MS, on_appended, a) == 0)
		a->appending = true;
	free(body);
}

static void on_post_events(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	json_t *body = sdk_req_json(req, false);
	if (!body)
		return;
	bool single = json_is_object(body);
	json_t *events = single ? json_pack("[O]", body) : json_incref(body);
	if (!json_is_array(events) || json_array_size(events) == 0 ||
	    json_array_size(events) > AUD_BATCH_MAX) {
		json_decref(events);
		sdk_reply_error(req, 400, "invalid", "send an event object or an array of 1 to %d",
				AUD_BATCH_MAX);
		return;
	}
	size_t i;
	json_t *ev;
	json_array_foreach(events, i, ev) {
		const char *why = aud_event_check(ev);
		if (why) {
			json_decref(events);
			sdk_reply_error(req, 400, "invalid", "event %zu: %s", i, why);
			return;
		}
	}
	json_t *ids;
	sdk_err e;
	int rc = aud_insert(k->db, events, sdk_wall_ms(), &ids, &e);
	if (rc < 0) {
		json_decref(events);
		sdk_reply_status(req, rc, &e);
		return;
	}
	json_decref(events);
	sdk_reply_json(req, 201, single ? json_pack("{s:O}", "id", json_array_get(ids, 0))
					: json_pack("{s:O}", "ids", ids));
	json_decref(ids);
}

/* Reads the query filters; answers 400 and returns -1 when one is bad. */
static int read_filter(sdk_req *req, aud_filter *f, unsigned def_limit)
{
	unsigned long long since, until, cursor, limit;
	if (sdk_req_query_uint(req, "since", 0, 1ULL << 53, 0, &since) < 0 ||
	    sdk_req_query_uint(req, "until", 0, 1ULL << 53, 0, &until) < 0 ||
	    sdk_req_query_uint(req, "cursor", 0, 1ULL << 62, 0, &cursor) < 0 ||
	    sdk_req_query_uint(req, "limit", 1, AUD_PAGE_MAX, def_limit, &limit) < 0)
		return -1;
	*f = (aud_filter){ .actor = sdk_req_query(req, "actor"),
			   .action = sdk_req_query(req, "action"),
			   .resource = sdk_req_query(req, "resource"),
			   .since_ms = (int64_t)since,
			   .until_ms = (int64_t)until,
			   .after_id = (int64_t)cursor,
			   .limit = (unsigned)limit };
	return 0;
}

static void on_get_events(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	aud_filter f;
	if (read_filter(req, &f, 100) < 0)
		return;
	json_t *events;
	sdk_err e;
	int rc = aud_query(k->db, &f, &events, &e);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	size_t n = json_array_size(events);
	json_t *next = n == f.limit ? json_object_get(json_array_get(events, n - 1), "id") : NULL;
	json_t *out = json_pack("{s:o, s:O}", "events", events, "next_cursor",
				next ? next : json_null());
	/* A query that reaches back into what was archived says how much of
	 * it is no longer here (docs/audit.md "Archival"). */
	json_t *archived = NULL;
	if (aud_archived(k->db, &archived, &e) == 0 &&
	    json_integer_value(json_object_get(archived, "events")) > 0 &&
	    f.after_id < json_integer_value(json_object_get(archived, "last_id")))
		json_object_set_new(out, "archived", archived);
	else
		json_decref(archived);
	sdk_reply_json(req, 200, out);
}

/* An export in progress: one chunk of JSON lines per loop turn. */
struct export {
	sdk_req *req;
	sqlite3 *db;
	aud_filter f;
	struct event *ev;
	bool closed;
};

/* The next chunk goes after a pause (a timer, not event_active, which
 * libevent would run in the same pass), and only once the client has
 * taken most of what it was sent: a slow reader must not grow our memory. */
static void export_later(struct export *x)
{
	struct timeval tv = { 0, EXPORT_PAUSE_MS * 1000 };
	evtimer_add(x->ev, &tv);
}

static size_t export_unsent(struct export *x) { return sdk_reply_backlog(x->req); }

static void export_step(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct export *x = arg;
	if (!x->closed && export_unsent(x) > EXPORT_BUFFERED_MAX) {
		export_later(x);
		return;
	}
	json_t *rows = NULL;
	sdk_err e;
	/* A failure mid-stream can only end it: the status line has gone. */
	if (!x->closed && aud_query(x->db, &x->f, &rows, &e) < 0)
		sdk_warn("audit: export ended early: %s", e.msg);
	size_t n = json_array_size(rows);
	if (n) {
		struct evbuffer *b = evbuffer_new();
		size_t i;
		json_t *e;
		json_array_foreach(rows, i, e) {
			char *line = json_dumps(e, JSON_COMPACT);
			if (line) {
				evbuffer_add(b, line, strlen(line));
				evbuffer_add(b, "\n", 1);
			}
			free(line);
		}
		x->f.after_id = json_integer_value(json_object_get(json_array_get(rows, n - 1), "id"));
		sdk_reply_stream_chunk(x->req, b);
		evbuffer_free(b);
	}
	json_decref(rows);
	if (n == EXPORT_CHUNK && !x->closed) {
		export_later(x);
		return;
	}
	sdk_reply_stream_end(x->req);
	event_free(x->ev);
	free(x);
}

static void on_export_close(sdk_req *req, void *arg)
{
	(void)req;
	((struct export *)arg)->closed = true;
}

static void on_export(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	struct export *x = calloc(1, sizeof *x);
	if (!x) {
		sdk_reply_error(req, 503, "busy", "out of memory");
		return;
	}
	if (read_filter(req, &x->f, EXPORT_CHUNK) < 0) {
		free(x);
		return;
	}
	x->f.limit = EXPORT_CHUNK;
	x->req = req;
	x->db = k->db;
	x->ev = evtimer_new(k->base, export_step, x);
	if (!x->ev) {
		free(x);
		sdk_reply_error(req, 503, "busy", "out of memory");
		return;
	}
	sdk_reply_stream_start(req, 200, "application/x-ndjson", on_export_close, x);
	export_later(x);
}

/* A proof in progress: the signed tree head first, then the path to it. */
struct proof {
	sdk_req *req;
	struct audit *a;
	json_t *event, *sth;
};

static void proof_fail(struct proof *p, int status, const char *why)
{
	sdk_reply_error(p->req, status, "log_unavailable", "immutable log: %s", why);
	json_decref(p->event);
	json_decref(p->sth);
	free(p);
}

static void on_inclusion(int status, const char *body, size_t len, double ms, const char *error,
			 void *arg)
{
	(void)ms;
	struct proof *p = arg;
	json_t *proof = body ? json_loadb(body, len, 0, NULL) : NULL;
	if (status != 200 || !proof) {
		json_decref(proof);
		proof_fail(p, 502, error ? error : "no inclusion proof");
		return;
	}
	sdk_reply_json(p->req, 200,
		       json_pack("{s:o, s:O, s:o, s:o}", "event", p->event, "log_index",
				 json_object_get(p->event, "log_index"), "sth", p->sth, "inclusion",
				 proof));
	free(p);
}

static void on_sth(int status, const char *body, size_t len, double ms, const char *error,
		   void *arg)
{
	(void)ms;
	struct proof *p = arg;
	p->sth = body ? json_loadb(body, len, 0, NULL) : NULL;
	json_t *size = json_object_get(p->sth, "tree_size");
	if (status != 200 || !json_is_integer(size)) {
		proof_fail(p, 502, error ? error : "no signed tree head");
		return;
	}
	char path[128];
	snprintf(path, sizeof path, "/proof/inclusion?index=%lld&tree_size=%lld",
		 (long long)json_integer_value(json_object_get(p->event, "log_index")),
		 (long long)json_integer_value(size));
	if (sdk_call(p->a->k->caller, "immutable_log", "GET", path, NULL, 0, NULL,
		     LOG_CALL_TIMEOUT_MS, on_inclusion, p) < 0)
		proof_fail(p, 503, "cannot call");
}

static void on_proof(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	struct audit *a = k->state;
	const char *s = sdk_req_param(req, "id");
	char *end;
	errno = 0;
	long long id = strtoll(s, &end, 10);
	if (!*s || *end || errno || id <= 0) {
		sdk_reply_error(req, 400, "bad_id", "an event id is a positive integer");
		return;
	}
	json_t *ev;
	sdk_err e;
	int rc = aud_get(k->db, id, &ev, &e);
	json_t *archived = NULL;
	if (rc == SDK_ENOTFOUND && aud_archived(k->db, &archived, NULL) == 0 &&
	    id <= json_integer_value(json_object_get(archived, "last_id"))) {
		/* Its proof went with it: the archive file holds it. */
		sdk_reply_error(req, 410, "archived",
				"event %lld was archived (events up to %lld; the latest archive is"
				" %s, SHA-256 %s): its proof is in its archive file",
				id, (long long)json_integer_value(json_object_get(archived, "last_id")),
				json_string_value(json_object_get(archived, "last_file")),
				json_string_value(json_object_get(archived, "last_sha256")));
		json_decref(archived);
		return;
	}
	json_decref(archived);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	if (!json_is_integer(json_object_get(ev, "log_index"))) {
		json_decref(ev);
		sdk_req_add_header(req, "Retry-After", "1");
		sdk_reply_error(req, 409, "not_logged_yet",
				"event %lld is not in the immutable log yet; retry shortly", id);
		return;
	}
	struct proof *p = calloc(1, sizeof *p);
	if (!p) {
		json_decref(ev);
		sdk_reply_error(req, 503, "busy", "out of memory");
		return;
	}
	*p = (struct proof){ .req = req, .a = a, .event = ev };
	if (sdk_call(a->k->caller, "immutable_log", "GET", "/sth", NULL, 0, NULL,
		     LOG_CALL_TIMEOUT_MS, on_sth, p) < 0)
		proof_fail(p, 503, "cannot call");
}

static void on_archive(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	struct audit *a = k->state;
	aud_archive_route(req, a->arch);
}

static int audit_init(sdk_kernel *k, sdk_err *err)
{
	sdk_err e;
	if (aud_store_init(k->db, &e) < 0) {
		return sdk_fail(err, SDK_EIO, "%s", e.msg);
	}
	if (!grace_config_kernel(k->cfg, "immutable_log")) {
		return sdk_fail(err, SDK_EIO, "the immutable_log kernel is not configured");
	}
	struct audit *a = calloc(1, sizeof *a);
	if (!a) {
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	a->k = k;
	a->append_timer = event_new(k->base, -1, EV_PERSIST, on_append_timer, a);
	a->pending = json_array();
	k->state = a;
	if (!a->append_timer || !a->pending) {
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	a->arch = aud_archiver_new(k);
	if (!a->arch) {
		return sdk_fail(err, SDK_EIO, "cannot start the archive writer");
	}
	struct timeval tv = { 0, APPEND_EVERY_MS * 1000 };
	event_add(a->append_timer, &tv);
	return 0;
}

static void audit_close(sdk_kernel *k)
{
	struct audit *a = k->state;
	if (!a)
		return;
	if (a->append_timer)
		event_free(a->append_timer);
	if (json_array_size(a->pending))
		sdk_warn("audit: %zu events are in the log but their indexes were not recorded: "
			 "they will be appended again", json_array_size(a->pending));
	json_decref(a->pending);
	aud_archiver_free(a->arch);
	free(a);
	k->state = NULL;
}

static const sdk_route audit_routes[] = {
	SDK_ROUTE("POST", "/events", on_post_events),
	SDK_ROUTE("GET", "/events", on_get_events),
	SDK_ROUTE("GET", "/events/export", on_export),
	SDK_ROUTE("GET", "/events/:id/proof", on_proof),
	SDK_ROUTE("POST", "/archive", on_archive),
};

const sdk_kernel_def audit_kernel = {
	.name = "audit",
	.port = 8115, .tier = "governance",
	.summary = "tamper-evident record of who did what, appended to the immutable log",
	.complete = true,
	/* Its tables as they are today (archives included): a change is a new
	 * step in .migrations and a new fixture directory (docs/upgrades.md). */
	.schema_version = 1,
	.routes = audit_routes,
	.n_routes = sizeof audit_routes / sizeof audit_routes[0],
	.init = audit_init,
	.close = audit_close,
};
