#include "serve/outbox/outbox.h"

#include "sdk/clock.h"
#include "sdk/log.h"
#include "serve/outbox/classify.h"
#include "serve/outbox/journal.h"
#include "serve/outbox/window.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DELIVERY_TIMEOUT_MS 5000
/* The journal's last tenth is kept for the events of requests admitted
 * before it filled and for Grace's own: requests are refused short of it. */
#define JOURNAL_RESERVE_DIV 10
#define OVERFLOW_PREFIX "overflow|"
#define KEY_MAX (OB_FIELD_MAX * 2 + 96)
#define LOST_LOG_EVERY 1000

/* A destination fed from memory: a kernel route that takes a JSON array. */
struct lane {
	const char *kernel, *path, *name;
	json_t *queue; /* array, oldest first */
	size_t max;
	size_t in_flight; /* items sent in the call now running */
	bool one_by_one;  /* a batch was refused: find the bad item alone */
	unsigned long long delivered, dropped, failures;
	outbox *ob;
};

/* Security events, fed from the journal. */
struct sec_lane {
	size_t in_flight;
	bool one_by_one;
	unsigned long long journaled, delivered, overflowed, held, lost, rejected, failures;
};

struct outbox {
	struct event_base *base;
	supervisor *sup;
	sdk_caller *caller; /* to the bus and the audit kernel, by name */
	struct event *timer;
	ob_journal *journal;
	grace_audit cfg;
	size_t soft_rows, soft_bytes; /* requests are refused from here on */
	struct lane bus, noise;
	struct sec_lane sec;
	json_t *held; /* security events the journal could not take, oldest first */
	int journal_err; /* why the journal last failed (an sdk_status), while events are held */
	obw_table windows;
	int64_t login_window; /* the window failed logins are counted in ... */
	size_t login_keys;    /* ... and how many sources and users it counts apart */
	bool overflow_open;   /* overflow aggregates may be open in the journal */
	bool refusing;        /* ob_admit is answering */
	int64_t boot_ms;
	unsigned long long noise_seq, noise_emitted, login_counted, requests_refused;
};

/* -- events */

/* A field as the audit kernel takes it: non-empty, at most `max` bytes,
 * valid UTF-8 (what a client sent may be none of these). */
static json_t *field(const char *s, size_t max)
{
	if (!s || !*s)
		return json_string("-");
	size_t n = strnlen(s, max);
	json_t *j = NULL;
	/* Cutting may split a character: step back until the text is valid. */
	while (n > 0 && !(j = json_stringn(s, n)))
		n--;
	return n > 0 ? j : json_string("(not valid UTF-8)");
}

/* Details the audit kernel takes (it refuses more than 64 KiB): larger
 * ones are replaced by their size. Steals `d`. */
static json_t *bounded_details(json_t *d)
{
	char *text = json_dumps(d, JSON_COMPACT | JSON_ENCODE_ANY);
	size_t n = text ? strlen(text) : 0;
	free(text);
	if (n <= OB_DETAILS_MAX)
		return d;
	json_decref(d);
	return json_pack("{s:b, s:I}", "omitted", 1, "bytes", (json_int_t)n);
}

/* A new event, or NULL (out of memory). Steals `details` (may be NULL). */
static json_t *make_event(const char *actor, const char *action, const char *resource,
			  const char *outcome, const char *source_ip, json_t *details, int64_t ts_ms)
{
	json_t *e = json_pack("{s:o, s:o, s:o, s:o, s:I}", "actor", field(actor, OB_FIELD_MAX),
			      "action", field(action, OB_ACTION_MAX), "resource",
			      field(resource, OB_ACTION_MAX), "outcome", field(outcome, OB_FIELD_MAX),
			      "ts_ms", (json_int_t)ts_ms);
	if (!e) {
		json_decref(details);
		return NULL;
	}
	if (details)
		json_object_set_new(e, "details", bounded_details(details));
	if (source_ip && *source_ip)
		json_object_set_new(e, "source_ip", field(source_ip, 64));
	return e;
}

/* -- the journal's bounds */

static bool journal_full(const outbox *ob)
{
	return obj_rows(ob->journal) >= ob->cfg.journal_max_events ||
	       obj_bytes(ob->journal) >= ob->cfg.journal_max_bytes;
}

static bool journal_admits(const outbox *ob)
{
	return json_array_size(ob->held) == 0 && obj_rows(ob->journal) < ob->soft_rows &&
	       obj_bytes(ob->journal) < ob->soft_bytes;
}

/* -- security events: the journal, or memory while it fails */

static void hold(outbox *ob, json_t *e)
{
	if (!e || json_array_size(ob->held) >= OB_HELD_MAX) {
		/* The journal fails and memory is full: say so, loudly. Requests
		 * are refused meanwhile (ob_admit), so only Grace's own events
		 * and those of requests already admitted come here. */
		if (ob->sec.lost++ % LOST_LOG_EVERY == 0)
			sdk_error("outbox: the audit journal cannot be written and %d events wait in "
				  "memory; %llu lost",
				  OB_HELD_MAX, ob->sec.lost);
		json_decref(e);
		return;
	}
	if (json_array_size(ob->held) == 0)
		sdk_warn("outbox: the audit journal cannot be written; holding events in memory");
	json_array_append_new(ob->held, e);
	ob->sec.held++;
}

/* Journals one event (stolen), after those held, so order is kept. */
static void keep(outbox *ob, json_t *e)
{
	int rc = SDK_EBUSY; /* events are held already: keep their order */
	if (e && json_array_size(ob->held) == 0 && (rc = obj_append(ob->journal, e)) == 0) {
		ob->sec.journaled++;
		json_decref(e);
		return;
	}
	if (json_array_size(ob->held) == 0)
		ob->journal_err = rc;
	hold(ob, e);
}

static void held_retry(outbox *ob)
{
	while (json_array_size(ob->held) > 0) {
		int rc = obj_append(ob->journal, json_array_get(ob->held, 0));
		if (rc < 0) {
			ob->journal_err = rc;
			return;
		}
		json_array_remove(ob->held, 0);
		ob->sec.journaled++;
		if (json_array_size(ob->held) == 0)
			sdk_info("outbox: the audit journal is written again");
	}
}

/* An aggregate that could not be journaled is held as a plain event with
 * the one occurrence it counted. Steals `e`. */
static void hold_one(outbox *ob, json_t *e)
{
	json_t *d = json_object_get(e, "details");
	if (json_is_object(d)) {
		json_object_set_new(d, "count", json_integer(1));
		json_object_set_new(d, "last_ms", json_copy(json_object_get(e, "ts_ms")));
	}
	hold(ob, e);
}

/* While the journal is at its bound, each further event of Grace's own
 * adds to one row per action and resource: the count is kept, the
 * details are not. Rows stay open until the journal has room again. */
static void overflow_count(outbox *ob, const char *actor, const char *action,
			   const char *resource, const char *outcome, int64_t now)
{
	char key[KEY_MAX];
	snprintf(key, sizeof key, OVERFLOW_PREFIX "%s|%s", action, resource);
	json_t *e = make_event(actor, action, resource, "overflow", NULL,
			       json_pack("{s:b, s:b, s:I, s:s}", "aggregate", 1, "overflow", 1,
					 "first_ms", (json_int_t)now, "first_outcome", outcome),
			       now);
	int rc = e ? obj_count(ob->journal, key, e, OBJ_NEVER, now, true) : SDK_EIO;
	if (rc >= 0) {
		ob->sec.overflowed++;
		ob->overflow_open = true;
		json_decref(e);
		return;
	}
	hold_one(ob, e);
}

static json_t *login_event(outbox *ob, const char *user, const char *source, int64_t window,
			   int64_t now, bool others)
{
	json_t *d = json_pack("{s:b, s:I, s:I, s:I}", "aggregate", 1, "window_start_ms",
			      (json_int_t)window, "window_ms", (json_int_t)ob->cfg.window_s * 1000,
			      "first_ms", (json_int_t)now);
	if (d && others)
		json_object_set_new(d, "other_users_and_sources", json_true());
	return make_event(others ? "(others)" : user, "auth.login", "auth", "failed",
			  others ? NULL : source, d, now);
}

/* One failed login, counted in the journal at once: per source and user
 * name and window, the first `windows_max` of them apart and the rest
 * together; beyond the journal's bound, in its overflow row. */
static void count_failed_login(outbox *ob, const char *user, const char *source, int64_t now)
{
	ob->login_counted++;
	int64_t window_ms = (int64_t)ob->cfg.window_s * 1000;
	int64_t w = obw_start(window_ms, now);
	if (w != ob->login_window) {
		ob->login_window = w;
		ob->login_keys = 0;
	}
	bool full = journal_full(ob);
	char key[KEY_MAX];
	/* An address has no '|', so the user name after it cannot be mistaken. */
	snprintf(key, sizeof key, "login|%lld|%s|%s", (long long)w, source ? source : "",
		 user ? user : "");
	json_t *e = login_event(ob, user, source, w, now, false);
	int rc = e ? obj_count(ob->journal, key, e, w + window_ms, now,
			       !full && ob->login_keys < ob->cfg.windows_max)
		   : SDK_EIO;
	if (rc == 1)
		ob->login_keys++;
	if (rc == SDK_ENOTFOUND && !full) {
		json_decref(e);
		snprintf(key, sizeof key, "login|%lld|*", (long long)w);
		e = login_event(ob, NULL, NULL, w, now, true);
		rc = e ? obj_count(ob->journal, key, e, w + window_ms, now, true) : SDK_EIO;
	}
	if (rc == SDK_ENOTFOUND) {
		json_decref(e);
		overflow_count(ob, "(others)", "auth.login", "auth", "failed", now);
		return;
	}
	if (rc < 0) {
		hold_one(ob, e);
		return;
	}
	json_decref(e);
}

void ob_audit(outbox *ob, const char *actor, const char *action, const char *resource,
	      const char *outcome, const char *source_ip, json_t *details)
{
	int64_t now = sdk_wall_ms();
	if (ob_is_failed_login(action, outcome)) {
		json_decref(details);
		count_failed_login(ob, actor, source_ip, now);
		return;
	}
	/* Never folded, even past the journal's bound: the request was admitted
	 * (ob_admit) and may have acted. */
	keep(ob, make_event(actor, action, resource, outcome, source_ip, details, now));
}

void ob_audit_system(outbox *ob, const char *action, const char *resource, const char *outcome,
		     json_t *details)
{
	int64_t now = sdk_wall_ms();
	if (!journal_full(ob)) {
		keep(ob, make_event("grace", action, resource, outcome, NULL, details, now));
		return;
	}
	json_decref(details);
	overflow_count(ob, "grace", action, resource, outcome, now);
}

bool ob_admit(outbox *ob, sdk_req *req)
{
	if (json_array_size(ob->held))
		held_retry(ob); /* the disk may have room again: try before refusing */
	if (journal_admits(ob))
		return true;
	ob->requests_refused++;
	ob->refusing = true;
	if (json_array_size(ob->held) && ob->journal_err == SDK_EFULL) {
		/* The same answer as every store gives on a full disk. */
		sdk_reply_error(req, 507, "storage_full",
				"the disk is full: the audit trail cannot record this request, so "
				"nothing was done");
		ob->refusing = false;
		return false;
	}
	sdk_req_add_header(req, "Retry-After", "5");
	sdk_reply_error(req, 503, "audit_unavailable",
			"the audit trail cannot take the record of this request now (%zu events "
			"wait for the audit kernel); nothing was done, retry later",
			obj_rows(ob->journal) + json_array_size(ob->held));
	ob->refusing = false;
	return false;
}

bool ob_refusing(const outbox *ob) { return ob->refusing; }

/* -- memory lanes: the bus, and noise aggregates */

static void lane_push(struct lane *l, json_t *item)
{
	if (!item) {
		l->dropped++;
		return;
	}
	if (json_array_size(l->queue) >= l->max) {
		/* The oldest goes: the newest says most about now. */
		json_array_remove(l->queue, l->in_flight);
		l->dropped++;
	}
	json_array_append_new(l->queue, item);
}

static void on_delivered(int status, const char *body, size_t len, double ms, const char *error,
			 void *arg)
{
	(void)body, (void)len, (void)ms;
	struct lane *l = arg;
	size_t n = l->in_flight;
	l->in_flight = 0;
	if (status >= 200 && status < 300) {
		for (size_t i = 0; i < n; i++)
			json_array_remove(l->queue, 0);
		l->delivered += n;
		l->one_by_one = false;
		return;
	}
	/* Kept for the next try; a 4xx means the kernel will never take them:
	 * but only the one that is bad, so a refused batch is sent again one
	 * item at a time until the bad one is found and dropped alone. */
	l->failures++;
	if (status >= 400 && status < 500) {
		if (n > 1) {
			l->one_by_one = true;
			return;
		}
		json_array_remove(l->queue, 0);
		l->dropped++;
		sdk_warn("outbox: %s refused an item (%d)", l->kernel, status);
	} else if (l->failures % 50 == 1) {
		sdk_debug("outbox: %s not reachable (%s); %zu items wait", l->kernel,
			  error ? error : "error", json_array_size(l->queue));
	}
}

static sup_kernel *ready_kernel(outbox *ob, const char *name)
{
	sup_kernel *k = sup_find(ob->sup, name);
	return k && k->state == SUP_READY ? k : NULL;
}

static void lane_flush(struct lane *l)
{
	size_t n = json_array_size(l->queue);
	if (l->in_flight || n == 0)
		return;
	sup_kernel *k = ready_kernel(l->ob, l->kernel);
	if (!k)
		return;
	if (n > OB_BATCH_MAX)
		n = OB_BATCH_MAX;
	if (l->one_by_one)
		n = 1;
	/* A batch is bounded in bytes too: the kernel's body limit would refuse
	 * a larger one, and a refused batch would be retried for ever. */
	json_t *batch = json_array();
	size_t bytes = 2, i;
	for (i = 0; i < n; i++) {
		json_t *item = json_array_get(l->queue, i);
		char *one = json_dumps(item, JSON_COMPACT);
		size_t len = one ? strlen(one) + 1 : 0;
		free(one);
		if (i > 0 && bytes + len > OB_BATCH_BYTES)
			break;
		bytes += len;
		json_array_append(batch, item);
	}
	n = i;
	char *body = json_dumps(batch, JSON_COMPACT);
	json_decref(batch);
	if (!body)
		return;
	if (sdk_call(l->ob->caller, k->cfg->name, "POST", l->path, body, strlen(body), NULL,
		     DELIVERY_TIMEOUT_MS, on_delivered, l) == 0)
		l->in_flight = n;
	free(body);
}

void ob_publish(outbox *ob, const char *subject, json_t *payload)
{
	lane_push(&ob->bus, json_pack("{s:s, s:o}", "subject", subject, "payload",
				      payload ? payload : json_null()));
}

/* One closed noise window entry becomes one aggregate event. */
static void emit_noise(const obw_entry *e, int64_t start_ms, int64_t window_ms, void *arg)
{
	outbox *ob = arg;
	bool others = !e->source[0];
	char resource[OBW_SOURCE_MAX + 8], uid[64];
	snprintf(resource, sizeof resource, "source/%s", others ? "others" : e->source);
	json_t *d = json_pack("{s:b, s:s, s:I, s:I, s:I, s:I, s:I, s:s, s:s}", "aggregate", 1,
			      "kind", others ? "*" : e->kind, "count", (json_int_t)e->count,
			      "window_start_ms", (json_int_t)start_ms, "window_ms",
			      (json_int_t)window_ms, "first_ms", (json_int_t)e->first_ms, "last_ms",
			      (json_int_t)e->last_ms, "sample_path", e->sample, "sample_request_id",
			      e->sample_id);
	if (d && others)
		json_object_set_new(d, "other_sources", json_true());
	json_t *ev = make_event("anonymous", "request.refused", resource, "refused",
				others ? NULL : e->source, d, e->first_ms);
	if (ev) {
		/* A resent batch is stored once: the audit kernel knows the uid. */
		snprintf(uid, sizeof uid, "%s-n%lld-%llu", obj_epoch(ob->journal),
			 (long long)ob->boot_ms, ++ob->noise_seq);
		json_object_set_new(ev, "uid", json_string(uid));
	}
	ob->noise_emitted++;
	lane_push(&ob->noise, ev);
}

void ob_noise(outbox *ob, const char *source, const char *method, int status, const char *path,
	      const char *request_id)
{
	char kind[OB_KIND_MAX];
	ob_noise_kind(method, status, kind);
	obw_add(&ob->windows, source, kind, path, request_id, sdk_wall_ms(), emit_noise, ob);
}

/* -- delivery of the journal */

static void on_sec_delivered(int status, const char *body, size_t len, double ms,
			     const char *error, void *arg)
{
	(void)body, (void)len, (void)ms;
	outbox *ob = arg;
	size_t n = ob->sec.in_flight;
	ob->sec.in_flight = 0;
	if (status >= 200 && status < 300) {
		/* Should the delete fail, the batch is sent again: stored once. */
		if (obj_batch_done(ob->journal) < 0) {
			sdk_warn("outbox: cannot remove delivered events from the audit journal");
			return;
		}
		ob->sec.delivered += n;
		ob->sec.one_by_one = false;
		return;
	}
	ob->sec.failures++;
	if (status >= 400 && status < 500) {
		if (n > 1) {
			ob->sec.one_by_one = true;
			return;
		}
		/* Events are made here within the kernel's limits: this is a bug
		 * (or a foreign audit kernel), and keeping the event would stop
		 * every later one. */
		if (obj_batch_done(ob->journal) > 0)
			ob->sec.rejected++;
		sdk_error("outbox: the audit kernel refused a security event (%d)", status);
	} else if (ob->sec.failures % 50 == 1) {
		sdk_debug("outbox: audit not reachable (%s); %zu security events wait",
			  error ? error : "error", obj_rows(ob->journal));
	}
}

static void sec_flush(outbox *ob)
{
	if (ob->sec.in_flight)
		return;
	sup_kernel *k = ready_kernel(ob, "audit");
	if (!k)
		return;
	json_t *batch = NULL;
	int n = obj_batch(ob->journal, ob->sec.one_by_one ? 1 : OB_BATCH_MAX, OB_BATCH_BYTES,
			  &batch);
	char *body = n > 0 ? json_dumps(batch, JSON_COMPACT) : NULL;
	json_decref(batch);
	if (body && sdk_call(ob->caller, k->cfg->name, "POST", "/events", body, strlen(body), NULL,
			     DELIVERY_TIMEOUT_MS, on_sec_delivered, ob) == 0)
		ob->sec.in_flight = (size_t)n;
	free(body);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	outbox *ob = arg;
	int64_t now = sdk_wall_ms();
	obw_close(&ob->windows, now, false, emit_noise, ob);
	held_retry(ob);
	obj_close_due(ob->journal, now);
	if (ob->overflow_open && journal_admits(ob) && obj_close_prefix(ob->journal, OVERFLOW_PREFIX) >= 0)
		ob->overflow_open = false;
	lane_flush(&ob->bus);
	lane_flush(&ob->noise);
	sec_flush(ob);
}

outbox *ob_new(const ob_opts *o, sdk_err *err)
{
	outbox *ob = calloc(1, sizeof *ob);
	if (!ob) {
		sdk_fail(err, SDK_EIO, "out of memory");
		return NULL;
	}
	ob->base = o->base;
	ob->sup = o->sup;
	ob->cfg = *o->audit;
	ob->soft_rows = ob->cfg.journal_max_events - ob->cfg.journal_max_events / JOURNAL_RESERVE_DIV;
	ob->soft_bytes = ob->cfg.journal_max_bytes - ob->cfg.journal_max_bytes / JOURNAL_RESERVE_DIV;
	ob->boot_ms = sdk_wall_ms();
	ob->login_window = INT64_MIN;
	ob->overflow_open = true; /* a previous run may have left some */
	ob->bus = (struct lane){ .kernel = "message_bus", .path = "/publish", .name = "bus",
				 .queue = json_array(), .max = OB_QUEUE_MAX, .ob = ob };
	ob->noise = (struct lane){ .kernel = "audit", .path = "/events", .name = "noise",
				   .queue = json_array(), .max = OB_NOISE_QUEUE_MAX, .ob = ob };
	ob->held = json_array();
	if (!(ob->journal = obj_open(o->db, err))) {
		ob_free(ob);
		return NULL;
	}
	int rc = obw_init(&ob->windows, (int64_t)ob->cfg.window_s * 1000, ob->cfg.windows_max);
	ob->caller = sdk_caller_new(o->base, "grace", o->token, sup_resolve, o->sup);
	ob->timer = event_new(o->base, -1, EV_PERSIST, on_timer, ob);
	if (rc < 0 || !ob->caller || !ob->timer || !ob->bus.queue || !ob->noise.queue || !ob->held) {
		sdk_fail(err, SDK_EIO, "out of memory");
		ob_free(ob);
		return NULL;
	}
	struct timeval tv = { 0, OB_FLUSH_MS * 1000 };
	event_add(ob->timer, &tv);
	return ob;
}

void ob_free(outbox *ob)
{
	if (!ob)
		return;
	sdk_caller_free(ob->caller);
	if (ob->timer)
		event_free(ob->timer);
	/* What is held in memory goes to the journal if it can now. */
	if (ob->journal)
		held_retry(ob);
	if (json_array_size(ob->held))
		sdk_error("outbox: %zu security events could not be journaled and are lost",
			  json_array_size(ob->held));
	obj_close(ob->journal);
	obw_free(&ob->windows);
	json_decref(ob->bus.queue);
	json_decref(ob->noise.queue);
	json_decref(ob->held);
	free(ob);
}

/* -- metrics */

void ob_metrics(const outbox *ob, struct evbuffer *out)
{
	const struct lane *bus = &ob->bus, *noise = &ob->noise;
	const struct sec_lane *sec = &ob->sec;
	size_t audit_queued = obj_rows(ob->journal) + json_array_size(ob->held) +
			      json_array_size(noise->queue);
	evbuffer_add_printf(
		out,
		"# HELP grace_outbox_events_total Events for the bus and the audit trail, by result.\n"
		"# TYPE grace_outbox_events_total counter\n"
		"grace_outbox_events_total{destination=\"bus\",result=\"delivered\"} %llu\n"
		"grace_outbox_events_total{destination=\"bus\",result=\"dropped\"} %llu\n"
		"grace_outbox_events_total{destination=\"audit\",result=\"delivered\"} %llu\n"
		"grace_outbox_events_total{destination=\"audit\",result=\"dropped\"} %llu\n"
		"# HELP grace_outbox_queued Events waiting for delivery.\n"
		"# TYPE grace_outbox_queued gauge\n"
		"grace_outbox_queued{destination=\"bus\"} %zu\n"
		"grace_outbox_queued{destination=\"audit\"} %zu\n",
		bus->delivered, bus->dropped, sec->delivered + noise->delivered,
		sec->rejected + sec->lost + noise->dropped, json_array_size(bus->queue), audit_queued);
	evbuffer_add_printf(
		out,
		"# HELP grace_audit_events_total What became of the audit trail's events, by class "
		"(docs/audit.md).\n"
		"# TYPE grace_audit_events_total counter\n"
		"grace_audit_events_total{class=\"security\",result=\"journaled\"} %llu\n"
		"grace_audit_events_total{class=\"security\",result=\"delivered\"} %llu\n"
		"grace_audit_events_total{class=\"security\",result=\"overflowed\"} %llu\n"
		"grace_audit_events_total{class=\"security\",result=\"held\"} %llu\n"
		"grace_audit_events_total{class=\"security\",result=\"lost\"} %llu\n"
		"grace_audit_events_total{class=\"security\",result=\"rejected\"} %llu\n"
		"grace_audit_events_total{class=\"login_failed\",result=\"counted\"} %llu\n"
		"grace_audit_events_total{class=\"noise\",result=\"counted\"} %llu\n"
		"grace_audit_events_total{class=\"noise\",result=\"folded\"} %llu\n"
		"grace_audit_events_total{class=\"noise\",result=\"aggregated\"} %llu\n"
		"grace_audit_events_total{class=\"noise\",result=\"delivered\"} %llu\n"
		"grace_audit_events_total{class=\"noise\",result=\"dropped\"} %llu\n"
		"# HELP grace_audit_requests_refused_total State-changing requests answered 503 "
		"because their audit event could not be kept.\n"
		"# TYPE grace_audit_requests_refused_total counter\n"
		"grace_audit_requests_refused_total %llu\n"
		"# HELP grace_audit_journal_events Security events in grace.db waiting for the audit "
		"kernel (open aggregates included).\n"
		"# TYPE grace_audit_journal_events gauge\n"
		"grace_audit_journal_events %zu\n"
		"# HELP grace_audit_journal_bytes Bytes of JSON they hold.\n"
		"# TYPE grace_audit_journal_bytes gauge\n"
		"grace_audit_journal_bytes %zu\n"
		"# HELP grace_audit_noise_windows_open Sources and kinds counted apart in the noise "
		"window now open.\n"
		"# TYPE grace_audit_noise_windows_open gauge\n"
		"grace_audit_noise_windows_open %zu\n",
		sec->journaled, sec->delivered, sec->overflowed, sec->held, sec->lost, sec->rejected,
		ob->login_counted, (unsigned long long)ob->windows.counted,
		(unsigned long long)ob->windows.folded, ob->noise_emitted, noise->delivered,
		noise->dropped, ob->requests_refused, obj_rows(ob->journal), obj_bytes(ob->journal),
		obw_open(&ob->windows));
}
