/* The message bus kernel (8100): durable subjects, publish, Server-Sent
 * Events subscriptions, consumer groups, retention.
 *
 * Group commit: POST /publish validates its messages and queues them; the
 * commit runs from a timer, after libevent has handled every request that
 * arrived in the same loop turn (or, with several publishers at work, up to
 * a millisecond later: see bus_commit_schedule), and writes all the queued
 * messages in one fsynced transaction. Only then is any of those publishes
 * answered, and the committed messages are pushed to subscribers and wake
 * the long polls waiting for them. While one commit's fsync blocks the loop,
 * new publishes pile up in the sockets and become the next batch, so the
 * batch grows with the load. */
#include "kernels/message_bus/bus.h"
#include "sdk/clock.h"

#include "kernels/message_bus/engine.h"

#include "kernels/message_bus/subject.h"
#include "kernels/message_bus/wire.h"
#include "kernels/registry.h"
#include "sdk/log.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BUS_PUBLISH_MAX 10000u  /* messages in one POST /publish */
#define BUS_KEY_MAX 1024u       /* bytes */
#define BUS_HEADERS_MAX 64u     /* entries */
#define BUS_HEADER_NAME_MAX 256u
#define BUS_HEADER_VALUE_MAX 4096u
#define BUS_COMMIT_WAIT_US 1000 /* see bus_commit_schedule */
#define BUS_RETENTION_EVERY_MS 1000
#define BUS_RETENTION_BUDGET 10000u /* deletions per transaction */
#define BUS_RETENTION_AGE_MAX (10LL * 365 * 24 * 3600 * 1000)
#define BUS_RETENTION_COUNT_MAX 1000000000000LL

/* One POST /publish waiting for its batch's commit. */
struct bus_pub {
	sdk_req *req;
	size_t first, n; /* its messages in the batch */
	bool array;      /* answered with an array, as it asked with one */
	TAILQ_ENTRY(bus_pub) link;
};

/* The messages of every publish since the last commit. Subjects and keys
 * are borrowed from the requests' JSON, which lives until they are
 * answered; payload and headers texts are the batch's own. */
struct bus_batch {
	bus_msg *msgs;
	char **texts; /* 2 per message: payload, headers (may be NULL) */
	size_t n, cap;
	size_t n_pubs, last_pubs; /* requests queued now, and in the last commit */
	int64_t last_commit_us;   /* how long the last commit took */
	bool due_now;             /* the commit timer is set for this loop turn */
	TAILQ_HEAD(, bus_pub) pubs;
};

int64_t bus_mono_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

/* ----------------------------------------------------------- validation */

/* A JSON string without NUL bytes (which C strings would cut short). */
static const char *bus_json_cstr(json_t *v)
{
	const char *s = json_string_value(v);
	return s && strlen(s) == json_string_length(v) ? s : NULL;
}

static const char *bus_check_headers(json_t *h)
{
	if (!json_is_object(h))
		return "headers must be an object of strings";
	if (json_object_size(h) > BUS_HEADERS_MAX)
		return "more than 64 headers";
	const char *name;
	json_t *v;
	json_object_foreach (h, name, v) {
		if (!*name || strlen(name) > BUS_HEADER_NAME_MAX)
			return "a header name is empty or longer than 256 bytes";
		if (!json_is_string(v))
			return "header values must be strings";
		if (json_string_length(v) > BUS_HEADER_VALUE_MAX)
			return "a header value is longer than 4096 bytes";
	}
	return NULL;
}

/* Checks one message object; NULL when good, else why not (*what names
 * the field the reason is about, or is ""). */
static const char *bus_check_msg(json_t *m, const char **what)
{
	*what = "";
	if (!json_is_object(m))
		return "a message must be an object";
	const char *field;
	json_t *v;
	json_object_foreach (m, field, v)
		if (strcmp(field, "subject") && strcmp(field, "payload") && strcmp(field, "key") &&
		    strcmp(field, "headers"))
			return "unknown field (subject, payload, key and headers are allowed)";
	const char *subject = bus_json_cstr(json_object_get(m, "subject"));
	if (!subject)
		return "subject is required and must be a string";
	const char *why = bus_subject_check(subject);
	if (why) {
		*what = "subject ";
		return why;
	}
	if (bus_subject_reserved(subject))
		return "subjects starting with '$' are reserved for the bus";
	if (!json_object_get(m, "payload"))
		return "payload is required (any JSON value)";
	json_t *key = json_object_get(m, "key");
	if (key && !json_is_null(key) && (!bus_json_cstr(key) || json_string_length(key) > BUS_KEY_MAX))
		return "key must be a string of at most 1024 bytes without NUL";
	json_t *h = json_object_get(m, "headers");
	return h && !json_is_null(h) ? bus_check_headers(h) : NULL;
}

/* Subjects under "grace." carry the platform's own events (kernel states,
 * incidents): only Grace itself and admins publish there, so a user cannot
 * forge them. A request that carries a user role came through the gateway
 * on a user's behalf (the role is believed only beside the internal token,
 * which the kernel checked before this handler ran). */
static bool bus_may_publish(sdk_req *req, const char *subject)
{
	const char *role = sdk_req_header(req, SDK_ROLE_HEADER);
	return !role || !strcmp(role, "admin") || strncmp(subject, "grace.", 6) != 0;
}

/* Answers 400 naming the first bad message (403 for a subject the caller
 * may not publish to); returns -1 then. */
static int bus_check_body(sdk_req *req, json_t *body, size_t *n)
{
	bool array = json_is_array(body);
	*n = array ? json_array_size(body) : 1;
	if (array && (*n == 0 || *n > BUS_PUBLISH_MAX)) {
		sdk_reply_error(req, 400, "invalid", "an array of 1 to %u messages is required",
				BUS_PUBLISH_MAX);
		return -1;
	}
	for (size_t i = 0; i < *n; i++) {
		const char *what, *why = bus_check_msg(array ? json_array_get(body, i) : body, &what);
		if (why && array) {
			sdk_reply_error(req, 400, "invalid", "message %zu: %s%s", i, what, why);
			return -1;
		}
		if (why) {
			sdk_reply_error(req, 400, "invalid", "%s%s", what, why);
			return -1;
		}
		const char *subject = json_string_value(
			json_object_get(array ? json_array_get(body, i) : body, "subject"));
		if (!bus_may_publish(req, subject)) {
			sdk_reply_error(req, 403, "reserved_subject",
					"subjects under grace. are Grace's own; message %zu names %s", i,
					subject);
			return -1;
		}
	}
	return 0;
}

/* Shared with the JetStream engine (engine.h). */
json_t *bus_publish_body(sdk_req *req, size_t *n)
{
	json_t *body = sdk_req_json(req, false);
	if (!body)
		return NULL;
	if (!json_is_object(body) && !json_is_array(body)) {
		sdk_reply_error(req, 400, "invalid", "the body must be a message or an array of them");
		return NULL;
	}
	return bus_check_body(req, body, n) < 0 ? NULL : body;
}

/* ---------------------------------------------------------- group commit */

static void bus_batch_free_texts(struct bus_batch *bt)
{
	for (size_t i = 0; i < 2 * bt->n; i++)
		free(bt->texts[i]);
	bt->n = 0;
}

static int bus_batch_reserve(struct bus_batch *bt, size_t more)
{
	if (bt->n + more <= bt->cap)
		return 0;
	size_t cap = bt->cap ? bt->cap : 256;
	while (cap < bt->n + more)
		cap *= 2;
	bus_msg *m = realloc(bt->msgs, cap * sizeof *m);
	if (!m)
		return -1;
	bt->msgs = m;
	char **t = realloc(bt->texts, 2 * cap * sizeof *t);
	if (!t)
		return -1;
	bt->texts = t;
	bt->cap = cap;
	return 0;
}

/* Adds a checked message; the texts are dumped now, once. */
static int bus_batch_add(struct bus_batch *bt, json_t *m)
{
	json_t *key = json_object_get(m, "key"), *h = json_object_get(m, "headers");
	char *payload = json_dumps(json_object_get(m, "payload"), JSON_COMPACT | JSON_ENCODE_ANY);
	char *headers = h && !json_is_null(h) ? json_dumps(h, JSON_COMPACT | JSON_SORT_KEYS) :
						NULL;
	if (!payload || (h && !json_is_null(h) && !headers)) {
		free(payload);
		free(headers);
		return -1;
	}
	bt->msgs[bt->n] = (bus_msg){ .subject = json_string_value(json_object_get(m, "subject")),
				     .key = json_is_string(key) ? json_string_value(key) : NULL,
				     .headers = headers,
				     .payload = payload };
	bt->texts[2 * bt->n] = payload;
	bt->texts[2 * bt->n + 1] = headers;
	bt->n++;
	return 0;
}

static void bus_reply_published(struct bus_pub *p, const bus_msg *msgs)
{
	struct evbuffer *out = evbuffer_new();
	int bad = !out || (p->array && evbuffer_add(out, "[", 1));
	for (size_t i = 0; !bad && i < p->n; i++) {
		const bus_msg *m = &msgs[p->first + i];
		bad = (i && evbuffer_add(out, ",", 1)) || evbuffer_add(out, "{\"subject\":", 11) ||
		      bus_wire_string(out, m->subject) ||
		      evbuffer_add_printf(out, ",\"offset\":%" PRId64 ",\"timestamp\":%" PRId64 "}",
					  m->seq, m->ts) < 0;
	}
	bad = bad || (p->array && evbuffer_add(out, "]", 1)) || evbuffer_add(out, "\n", 1);
	if (bad)
		sdk_reply_error(p->req, 500, "internal",
				"out of memory (the messages are stored)");
	else
		sdk_reply_raw(p->req, 200, "application/json", out);
	if (out)
		evbuffer_free(out);
}

/* When to commit what is queued. A publisher that is alone (the last
 * commit served one request) is committed at once, in this loop turn. With
 * several at work, the ones just answered are about to send their next
 * publish: waiting until as many requests as the last commit had are
 * queued, or BUS_COMMIT_WAIT_US at most, lets one fsync serve them all
 * instead of the first alone (PostgreSQL's commit_delay/commit_siblings,
 * made adaptive). The wait is only worth it when a commit costs well more
 * than the wait itself: on a disk that syncs fast, commit at once. */
static void bus_commit_schedule(bus *b)
{
	struct bus_batch *bt = b->batch;
	bool now = bt->last_pubs <= 1 || bt->n_pubs >= bt->last_pubs ||
		   bt->last_commit_us < 2 * BUS_COMMIT_WAIT_US || b->draining;
	if (evtimer_pending(b->commit_ev, NULL)) {
		if (!now || bt->due_now)
			return;
		evtimer_del(b->commit_ev);
	}
	struct timeval tv = { 0, now ? 0 : BUS_COMMIT_WAIT_US };
	bt->due_now = now;
	evtimer_add(b->commit_ev, &tv);
}

static void bus_commit(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	bus *b = arg;
	struct bus_batch *bt = b->batch;
	if (bt->n == 0)
		return;
	bt->last_pubs = bt->n_pubs;
	bt->n_pubs = 0;
	sdk_err e = { "" };
	int64_t t0 = bus_mono_us();
	int rc = bus_store_append(b->store, bt->msgs, bt->n, sdk_wall_ms(), &e);
	bt->last_commit_us = bus_mono_us() - t0;
	/* These publishes were let in before the commit: if the file went away
	 * meanwhile, the commit is in a file no restart will read. */
	bool lost = !rc && !sdk_kernel_storage_ok(b->k);
	if (lost) {
		b->stats.commit_failures++;
		sdk_error("commit of %zu messages went to a database file that is gone: "
			  "answered as not stored", bt->n);
	} else if (rc) {
		b->stats.commit_failures++;
		sdk_error("commit of %zu messages failed: %s", bt->n, e.msg);
	} else {
		b->stats.published += bt->n;
		b->stats.batches++;
		if (bt->n > b->stats.batch_max)
			b->stats.batch_max = bt->n;
		/* Before the answers: the subjects are borrowed from the requests. */
		bus_stream_publish(b, bt->msgs, bt->n);
		bus_groups_wake(b, bt->msgs, bt->n);
	}
	struct bus_pub *p;
	while ((p = TAILQ_FIRST(&bt->pubs))) {
		TAILQ_REMOVE(&bt->pubs, p, link);
		if (lost)
			sdk_reply_error(p->req, 503, "storage_failed",
					"not stored: the database file was deleted or replaced");
		else if (rc)
			sdk_reply_status(p->req, rc, &e);
		else
			bus_reply_published(p, bt->msgs);
		free(p);
	}
	bus_batch_free_texts(bt);
}

static void bus_on_publish(sdk_req *req, void *ctx)
{
	bus *b = ((sdk_kernel *)ctx)->state;
	size_t n;
	json_t *body = bus_publish_body(req, &n);
	if (!body)
		return;
	struct bus_batch *bt = b->batch;
	struct bus_pub *p = calloc(1, sizeof *p);
	if (!p || bus_batch_reserve(bt, n) < 0) {
		free(p);
		sdk_reply_error(req, 503, "out_of_memory", "cannot queue the messages now");
		return;
	}
	*p = (struct bus_pub){ .req = req, .first = bt->n, .n = n, .array = json_is_array(body) };
	for (size_t i = 0; i < n; i++) {
		if (bus_batch_add(bt, p->array ? json_array_get(body, i) : body) < 0) {
			while (bt->n > p->first) { /* this request's messages only */
				bt->n--;
				free(bt->texts[2 * bt->n]);
				free(bt->texts[2 * bt->n + 1]);
			}
			free(p);
			sdk_reply_error(req, 503, "out_of_memory", "cannot queue the messages now");
			return;
		}
	}
	TAILQ_INSERT_TAIL(&bt->pubs, p, link);
	bt->n_pubs++;
	bus_commit_schedule(b);
}

/* ------------------------------------------------------ subjects, retention */

static void bus_reply_wrapped(sdk_req *req, const char *name, json_t *arr)
{
	sdk_reply_json(req, 200, json_pack("{s:o}", name, arr));
}

/* Reads an optional pattern query parameter; answers 400 when bad. */
static int bus_query_pattern(sdk_req *req, const char *name, bool required, const char **out)
{
	const char *p = sdk_req_query(req, name);
	*out = p;
	if (!p && !required)
		return 0;
	const char *why = bus_pattern_check(p);
	if (why) {
		sdk_reply_error(req, 400, "bad_subject", "%s %s", name, p ? why : "is required");
		return -1;
	}
	return 0;
}

static void bus_on_subjects(sdk_req *req, void *ctx)
{
	bus *b = ((sdk_kernel *)ctx)->state;
	const char *pattern;
	if (bus_query_pattern(req, "subject", false, &pattern) < 0)
		return;
	json_t *arr;
	sdk_err e;
	int rc = bus_subjects_list(b->store, pattern, &arr, &e);
	if (rc)
		sdk_reply_status(req, rc, &e);
	else
		bus_reply_wrapped(req, "subjects", arr);
}

static void bus_retention_run(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	bus *b = arg;
	size_t deleted = 0;
	bool more = false;
	sdk_err e;
	if (bus_retention_enforce(b->store, sdk_wall_ms(), BUS_RETENTION_BUDGET, &deleted, &more,
				  &e))
		sdk_warn("retention: %s", e.msg);
	b->stats.retention_deleted += deleted;
	/* A full budget means more is due: go on soon, but let requests in. */
	int64_t ms = more ? 1 : BUS_RETENTION_EVERY_MS;
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
	if (!b->draining)
		evtimer_add(b->retention_ev, &tv);
}

/* Reads an optional limit: absent/null is -1; else an integer in [min, max]. */
static int bus_limit(json_t *body, const char *name, long long min, long long max, int64_t *out)
{
	json_t *v = json_object_get(body, name);
	*out = -1;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return -1;
	*out = json_integer_value(v);
	return 0;
}

static void bus_on_retention_set(sdk_req *req, void *ctx)
{
	bus *b = ((sdk_kernel *)ctx)->state;
	json_t *body = sdk_req_json(req, true);
	if (!body)
		return;
	const char *pattern = bus_json_cstr(json_object_get(body, "pattern"));
	const char *why = bus_pattern_check(pattern);
	int64_t count, age;
	if (why) {
		sdk_reply_error(req, 400, "bad_subject", "pattern %s", pattern ? why : "is required");
		return;
	}
	if (bus_limit(body, "max_count", 0, BUS_RETENTION_COUNT_MAX, &count) < 0 ||
	    bus_limit(body, "max_age_ms", 1, BUS_RETENTION_AGE_MAX, &age) < 0 ||
	    (count < 0 && age < 0)) {
		sdk_reply_error(req, 400, "invalid",
				"max_count (an integer >= 0) and/or max_age_ms (an integer >= 1) "
				"is required");
		return;
	}
	sdk_err e;
	int rc = bus_retention_set(b->store, pattern, count, age, sdk_wall_ms(), &e);
	if (rc) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	/* Enforced at once rather than at the next tick. */
	evtimer_del(b->retention_ev);
	struct timeval now = { 0, 0 };
	evtimer_add(b->retention_ev, &now);
	json_t *out = json_pack("{s:s, s:o, s:o}", "pattern", pattern, "max_count",
				count < 0 ? json_null() : json_integer(count), "max_age_ms",
				age < 0 ? json_null() : json_integer(age));
	sdk_reply_json(req, 200, out);
}

static void bus_on_retention_list(sdk_req *req, void *ctx)
{
	bus *b = ((sdk_kernel *)ctx)->state;
	json_t *arr;
	sdk_err e;
	int rc = bus_retention_list(b->store, &arr, &e);
	if (rc)
		sdk_reply_status(req, rc, &e);
	else
		bus_reply_wrapped(req, "rules", arr);
}

static void bus_on_retention_delete(sdk_req *req, void *ctx)
{
	bus *b = ((sdk_kernel *)ctx)->state;
	const char *pattern;
	if (bus_query_pattern(req, "pattern", true, &pattern) < 0)
		return;
	sdk_err e;
	int rc = bus_retention_delete(b->store, pattern, &e);
	if (rc)
		sdk_reply_status(req, rc, &e);
	else
		sdk_reply_json(req, 200, json_pack("{s:s, s:b}", "pattern", pattern, "deleted", 1));
}

/* The embedded engine's messages are in message_bus.db, which a backup
 * copies with the other stores: there is no snapshot to take here. */
static void bus_on_snapshot(sdk_req *req, void *ctx)
{
	(void)ctx;
	sdk_reply_error(req, 409, "not_on_embedded",
			"the embedded bus keeps its messages in message_bus.db, which a backup "
			"copies with the other stores; GET /snapshot is JetStream's");
}

static void bus_on_stats(sdk_req *req, void *ctx)
{
	bus *b = ((sdk_kernel *)ctx)->state;
	const bus_stats *s = &b->stats;
	sdk_reply_json(
		req, 200,
		json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
			  "next_offset", (json_int_t)bus_store_next_seq(b->store), "subscribers",
			  (json_int_t)b->n_subs, "waiting_polls", (json_int_t)b->n_pollers,
			  "published", (json_int_t)s->published, "batches", (json_int_t)s->batches,
			  "batch_max", (json_int_t)s->batch_max, "commit_failures",
			  (json_int_t)s->commit_failures, "streamed", (json_int_t)s->streamed,
			  "polled", (json_int_t)s->polled, "polls_abandoned",
			  (json_int_t)s->polls_abandoned, "acked", (json_int_t)s->acked,
			  "dead_lettered", (json_int_t)s->dead_lettered, "retention_deleted",
			  (json_int_t)s->retention_deleted, "pending_publishes",
			  (json_int_t)b->batch->n));
}

/* ------------------------------------------------------------ the kernel */

/* Streams and long polls are ended one loop turn after SIGTERM, not from
 * the drain hook itself: the SDK stops the loop as soon as no request is
 * unanswered, and answers written in that same turn would never leave the
 * socket buffers. From a timer, the SDK's drain check (every few ms) comes
 * after libevent has written them out. */
static void bus_drain_now(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	bus *b = arg;
	bus_stream_end_all(b);
	bus_groups_answer_all(b);
}

static void bus_drain(sdk_kernel *k)
{
	bus *b = k->state;
	b->draining = true;
	evtimer_del(b->retention_ev);
	struct timeval now = { 0, 0 };
	evtimer_add(b->drain_ev, &now);
}

static void bus_free(bus *b)
{
	if (!b)
		return;
	bus_groups_free(b);
	struct event *evs[] = { b->commit_ev, b->retention_ev, b->drain_ev };
	for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
		if (evs[i])
			event_free(evs[i]);
	if (b->batch) {
		bus_batch_free_texts(b->batch);
		free(b->batch->msgs);
		free(b->batch->texts);
		free(b->batch);
	}
	bus_store_close(b->store);
	free(b);
}

static const bus_engine bus_embedded_engine;

static int bus_embedded_init(sdk_kernel *k, sdk_err *err)
{
	bus *b = calloc(1, sizeof *b);
	sdk_err e = { "out of memory" };
	if (!b) {
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	b->engine = &bus_embedded_engine;
	b->k = k;
	LIST_INIT(&b->subs);
	TAILQ_INIT(&b->pollers);
	b->batch = calloc(1, sizeof *b->batch);
	if (b->batch)
		TAILQ_INIT(&b->batch->pubs);
	b->commit_ev = evtimer_new(k->base, bus_commit, b);
	b->retention_ev = evtimer_new(k->base, bus_retention_run, b);
	b->drain_ev = evtimer_new(k->base, bus_drain_now, b);
	if (!b->batch || !b->commit_ev || !b->retention_ev || !b->drain_ev ||
	    bus_stream_init(b) < 0 ||
	    bus_groups_init(b) < 0 || bus_store_open(k->db, &b->store, &e) < 0) {
		sdk_fail(err, SDK_EIO, "%s", e.msg);
		bus_free(b);
		return SDK_EIO;
	}
	struct timeval tv = { BUS_RETENTION_EVERY_MS / 1000, 0 };
	evtimer_add(b->retention_ev, &tv);
	k->state = b;
	sdk_info("message bus open: next offset %" PRId64, bus_store_next_seq(b->store));
	return 0;
}

static void bus_close(sdk_kernel *k)
{
	bus *b = k->state;
	if (!b)
		return;
	b->draining = true;
	/* The loop may have stopped with a batch queued: store it and answer
	 * (the answers may never leave, but nothing is held or leaked). */
	bus_commit(-1, 0, b);
	bus_stream_end_all(b);
	bus_groups_answer_all(b);
	bus_free(b);
	k->state = NULL;
}

/* The counters of /stats, on /metrics too (the SDK's kernel hook). */
static void bus_metrics(sdk_kernel *k, struct evbuffer *out)
{
	bus *b = k->state;
	const bus_stats *s = &b->stats;
	const char *kl = k->def->name;
	const bus_counter counters[] = {
		{ "grace_bus_published_total", "Messages published (committed).", s->published },
		{ "grace_bus_commit_batches_total", "Group commits.", s->batches },
		{ "grace_bus_commit_failures_total", "Group commits that failed.", s->commit_failures },
		{ "grace_bus_streamed_total", "Messages sent to SSE subscribers.", s->streamed },
		{ "grace_bus_polled_total", "Messages delivered to consumer group polls.", s->polled },
		{ "grace_bus_polls_abandoned_total", "Long polls whose client went away.", s->polls_abandoned },
		{ "grace_bus_acked_total", "Messages acknowledged by consumer groups.", s->acked },
		{ "grace_bus_dead_lettered_total", "Messages moved to a dead letter subject.", s->dead_lettered },
		{ "grace_bus_retention_deleted_total", "Messages removed by retention.", s->retention_deleted },
	};
	bus_wire_metrics(out, kl, counters, sizeof counters / sizeof counters[0], b->n_subs,
			 b->n_pollers);
	evbuffer_add_printf(out,
			    "# HELP grace_bus_pending_publishes Publishes waiting for the next group commit.\n"
			    "# TYPE grace_bus_pending_publishes gauge\n"
			    "grace_bus_pending_publishes{kernel=\"%s\"} %zu\n"
			    "# HELP grace_bus_next_offset The offset the next message will get.\n"
			    "# TYPE grace_bus_next_offset gauge\n"
			    "grace_bus_next_offset{kernel=\"%s\"} %lld\n"
			    "# HELP grace_bus_commit_batch_max The largest group commit so far.\n"
			    "# TYPE grace_bus_commit_batch_max gauge\n"
			    "grace_bus_commit_batch_max{kernel=\"%s\"} %llu\n",
			    kl, (size_t)b->batch->n, kl, (long long)bus_store_next_seq(b->store), kl,
			    (unsigned long long)s->batch_max);
}

static const bus_engine bus_embedded_engine = {
	.name = "embedded",
	.publish = bus_on_publish,
	.subscribe = bus_on_subscribe,
	.subjects = bus_on_subjects,
	.group_list = bus_on_group_list,
	.group_get = bus_on_group_get,
	.group_delete = bus_on_group_delete,
	.poll = bus_on_poll,
	.ack = bus_on_ack,
	.retention_list = bus_on_retention_list,
	.retention_set = bus_on_retention_set,
	.retention_delete = bus_on_retention_delete,
	.stats = bus_on_stats,
	.snapshot = bus_on_snapshot,
	.snapshot_piece = bus_on_snapshot,
	.snapshot_delete = bus_on_snapshot,
	.drain = bus_drain,
	.close = bus_close,
	.metrics = bus_metrics,
};

/* The routes call the engine's handler of the same name (engine.h). */
#define BUS_ROUTE_TO_ENGINE(op)                                                                    \
	static void bus_route_##op(sdk_req *req, void *ctx)                                        \
	{                                                                                          \
		bus_engine_of(ctx)->op(req, ctx);                                                  \
	}
BUS_ROUTE_TO_ENGINE(publish)
BUS_ROUTE_TO_ENGINE(subscribe)
BUS_ROUTE_TO_ENGINE(subjects)
BUS_ROUTE_TO_ENGINE(group_list)
BUS_ROUTE_TO_ENGINE(group_get)
BUS_ROUTE_TO_ENGINE(group_delete)
BUS_ROUTE_TO_ENGINE(poll)
BUS_ROUTE_TO_ENGINE(ack)
BUS_ROUTE_TO_ENGINE(retention_list)
BUS_ROUTE_TO_ENGINE(retention_set)
BUS_ROUTE_TO_ENGINE(retention_delete)
BUS_ROUTE_TO_ENGINE(stats)
BUS_ROUTE_TO_ENGINE(snapshot)
BUS_ROUTE_TO_ENGINE(snapshot_piece)
BUS_ROUTE_TO_ENGINE(snapshot_delete)

static int bus_init(sdk_kernel *k, sdk_err *err)
{
	return k->cfg->message_bus.jetstream ? bus_js_init(k, err) :
					       bus_embedded_init(k, err);
}

static void bus_engine_drain(sdk_kernel *k) { bus_engine_of(k)->drain(k); }

static void bus_engine_close(sdk_kernel *k)
{
	if (k->state)
		bus_engine_of(k)->close(k);
}

static void bus_engine_metrics(sdk_kernel *k, struct evbuffer *out)
{
	bus_engine_of(k)->metrics(k, out);
}

static const sdk_route bus_routes[] = {
	SDK_ROUTE("POST", "/publish", bus_route_publish),
	SDK_ROUTE("GET", "/subscribe", bus_route_subscribe),
	SDK_ROUTE("GET", "/subjects", bus_route_subjects),
	SDK_ROUTE("GET", "/groups", bus_route_group_list),
	SDK_ROUTE("GET", "/groups/:group", bus_route_group_get),
	SDK_ROUTE("DELETE", "/groups/:group", bus_route_group_delete),
	SDK_ROUTE("GET", "/groups/:group/poll", bus_route_poll),
	SDK_ROUTE("POST", "/groups/:group/ack", bus_route_ack),
	SDK_ROUTE("GET", "/retention", bus_route_retention_list),
	SDK_ROUTE("POST", "/retention", bus_route_retention_set),
	SDK_ROUTE("DELETE", "/retention", bus_route_retention_delete),
	SDK_ROUTE("GET", "/stats", bus_route_stats),
	/* grace serve's backup (docs/backup.md "JetStream"). */
	SDK_ROUTE("GET", "/snapshot", bus_route_snapshot),
	SDK_ROUTE("GET", "/snapshot/:id", bus_route_snapshot_piece),
	SDK_ROUTE("DELETE", "/snapshot/:id", bus_route_snapshot_delete),
};

const sdk_kernel_def message_bus_kernel = {
	.name = "message_bus",
	.port = 8100, .tier = "core",
	.summary = "durable topics, publish, subscribe, consumer groups",
	.complete = true,
	.long_poll_max_ms = BUS_WAIT_MAX_MS,
	.schema_version = 1, /* store.c's tables */
	.routes = bus_routes,
	.n_routes = sizeof bus_routes / sizeof bus_routes[0],
	.init = bus_init,
	.drain = bus_engine_drain,
	.close = bus_engine_close,
	.metrics = bus_engine_metrics,
};
