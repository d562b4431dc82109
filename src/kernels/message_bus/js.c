/* The message bus on NATS JetStream: the connection, the stream, publish,
 * the inbox and the kernel's hooks (js.h says who runs where).
 *
 * The mapping (docs/message_bus.md, "On NATS JetStream"): one stream,
 * PREFIX_BUS, holds every message; the Grace subject S is the NATS subject
 * PREFIX_BUS.S (Grace's `*` and `>` are NATS's own, so a pattern maps the
 * same way); the offset is the stream sequence. A message's payload is the
 * NATS payload (its JSON text); its key, headers and timestamp ride in NATS
 * headers (Grace-Key, Grace-Headers, Grace-Timestamp).
 *
 * Publish: POST /publish checks its messages as the embedded engine does
 * and queues them; the queue goes out as one batch at a time on the pub
 * pool: every message published asynchronously, then the acks awaited
 * together (JetStream's own pipelining, the group commit of this engine).
 * A message whose ack did not come in time is published again with the
 * same Nats-Msg-Id until publish_timeout_ms, so JetStream's duplicate
 * window stores it once however often it was sent. Only then is the
 * request answered: 200 when JetStream acknowledged every one of its
 * messages, else 503 (retry). */
#include "kernels/message_bus/js.h"

#include "kernels/message_bus/wire.h"
#include "sdk/clock.h"
#include "sdk/log.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define BUS_JS_DUPLICATES_S 120     /* JetStream's duplicate window: retries within it are one */
#define BUS_JS_WAIT_THREADS 16u     /* long polls waiting at once on JetStream */
#define BUS_JS_SHORT_THREADS 4u
#define BUS_JS_QUEUE_MAX 4096u
#define BUS_JS_BATCH_MAX 10000u     /* messages per batch in flight */
#define BUS_JS_RETRY_PAUSE_MS 50    /* between publish retries */
#define BUS_JS_ID_MAX 64
/* JetStream API requests (stream and consumer info, consumer create, acks):
 * short, so a request made while a leader is being elected answers 503
 * soon and the client tries again, rather than holding its connection. */
#define BUS_JS_API_WAIT_MS 2000

static const bus_engine bus_js_engine;

/* ------------------------------------------------------------- helpers */

int bus_js_subject(bus_js *b, const char *grace, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s%s", b->prefix, grace);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

int bus_js_msg_of(bus_js *b, natsMsg *msg, bus_msg *m, uint64_t *deliveries)
{
	const char *subject = b->N.natsMsg_GetSubject(msg);
	if (!subject || strncmp(subject, b->prefix, b->prefix_len) != 0)
		return -1;
	jsMsgMetaData *meta = NULL;
	if (b->N.natsMsg_GetMetaData(&meta, msg) != NATS_OK)
		return -1;
	const char *ts = NULL, *key = NULL, *headers = NULL;
	*m = (bus_msg){ .seq = (int64_t)meta->Sequence.Stream,
			.ts = meta->Timestamp / 1000000,
			.subject = subject + b->prefix_len,
			.payload = b->N.natsMsg_GetData(msg) };
	if (deliveries)
		*deliveries = meta->NumDelivered;
	b->N.jsMsgMetaData_Destroy(meta);
	if (b->N.natsMsgHeader_Get(msg, BUS_JS_HDR_TS, &ts) == NATS_OK && ts)
		m->ts = strtoll(ts, NULL, 10);
	if (b->N.natsMsgHeader_Get(msg, BUS_JS_HDR_KEY, &key) == NATS_OK)
		m->key = key;
	if (b->N.natsMsgHeader_Get(msg, BUS_JS_HDR_HEADERS, &headers) == NATS_OK)
		m->headers = headers;
	if (!m->payload || !*m->payload)
		m->payload = "null";
	return 0;
}

/* --------------------------------------------------------------- inbox */

void bus_js_inbox_push(bus_js *b, struct bus_js_item *it)
{
	pthread_mutex_lock(&b->in_mu);
	bool first = TAILQ_EMPTY(&b->inbox);
	TAILQ_INSERT_TAIL(&b->inbox, it, link);
	pthread_mutex_unlock(&b->in_mu);
	/* One byte per empty-to-busy edge: the loop drains everything it finds. */
	if (first) {
		ssize_t w = write(b->in_pipe[1], "x", 1);
		(void)w; /* a full pipe already wakes the loop */
	}
}

static void bus_js_inbox_run(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	bus_js *b = arg;
	char buf[64];
	while (read(fd, buf, sizeof buf) > 0)
		;
	TAILQ_HEAD(, bus_js_item) items = TAILQ_HEAD_INITIALIZER(items);
	pthread_mutex_lock(&b->in_mu);
	TAILQ_CONCAT(&items, &b->inbox, link);
	pthread_mutex_unlock(&b->in_mu);
	struct bus_js_item *it;
	while ((it = TAILQ_FIRST(&items))) {
		TAILQ_REMOVE(&items, it, link);
		bus_js_stream_item(b, it); /* takes it */
	}
}

struct bus_js_closure *bus_js_closure_new(bus_js *b, uint64_t sub_id, const char *pattern)
{
	struct bus_js_closure *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->b = b;
	c->sub_id = sub_id;
	snprintf(c->pattern, sizeof c->pattern, "%s", pattern);
	pthread_mutex_lock(&b->closures_mu);
	LIST_INSERT_HEAD(&b->closures, c, link);
	pthread_mutex_unlock(&b->closures_mu);
	return c;
}

void bus_js_closure_done(void *closure)
{
	struct bus_js_closure *c = closure;
	bus_js *b = c->b;
	pthread_mutex_lock(&b->closures_mu);
	LIST_REMOVE(c, link);
	pthread_mutex_unlock(&b->closures_mu);
	free(c);
}

/* The connection's asynchronous errors (a NATS thread): a subscription
 * that missed its heartbeats or fell behind is made again by the loop. */
static void bus_js_on_error(natsConnection *nc, natsSubscription *sub, natsStatus err,
			    void *closure)
{
	(void)nc;
	bus_js *b = closure;
	if (sub)
		bus_js_stream_failed(b, sub);
	(void)err;
}

/* ------------------------------------------------------------- publish */

struct bus_js_pub {
	sdk_req *req;
	size_t first, n;
	bool array;
	struct bus_js_pub *next;
};

/* One message of a batch; its texts are the batch's own. */
struct bus_js_out {
	char *subject;  /* the NATS subject */
	char *payload;  /* JSON text */
	char *key, *headers;
	int64_t ts, seq; /* seq: 0 until JetStream acknowledged it */
	uint64_t id;
};

struct bus_js_batch {
	bus_js *b;
	struct bus_js_out *msgs;
	size_t n, cap;
	struct bus_js_pub *pubs, **pubs_tail;
	size_t n_pubs;
	uint64_t id_first; /* Nats-Msg-Id counters id_first .. id_first+n-1 */
	size_t retries;    /* on the pool */
	bool ran;
};

static struct bus_js_batch *bus_js_batch_new(bus_js *b)
{
	struct bus_js_batch *bt = calloc(1, sizeof *bt);
	if (bt) {
		bt->b = b;
		bt->pubs_tail = &bt->pubs;
	}
	return bt;
}

static void bus_js_batch_free(struct bus_js_batch *bt)
{
	if (!bt)
		return;
	for (size_t i = 0; i < bt->n; i++) {
		free(bt->msgs[i].subject);
		free(bt->msgs[i].payload);
		free(bt->msgs[i].key);
		free(bt->msgs[i].headers);
	}
	free(bt->msgs);
	while (bt->pubs) {
		struct bus_js_pub *p = bt->pubs;
		bt->pubs = p->next;
		free(p);
	}
	free(bt);
}

static void bus_js_msg_id(bus_js *b, uint64_t id, char *buf, size_t len)
{
	snprintf(buf, len, "%s-%" PRIu64, b->instance, id);
}

/* The ack handler of asynchronous publishes (a NATS thread): records the
 * sequence of a message of the batch in flight, found by its Nats-Msg-Id.
 * An ack for an earlier batch (it came after that batch gave up waiting
 * and published again) matches no index and is ignored. The message is
 * the handler's to destroy (nats.h, jsPubAckHandler): every one published
 * leaked before (LeakSanitizer, test_bus_jetstream). */
static void bus_js_on_pub_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae,
			      void *closure)
{
	(void)js, (void)pae;
	bus_js *b = closure;
	const char *id = NULL;
	const char *dash = NULL;
	if (pa && b->N.natsMsgHeader_Get(msg, "Nats-Msg-Id", &id) == NATS_OK && id)
		dash = strrchr(id, '-');
	if (dash) {
		uint64_t n = strtoull(dash + 1, NULL, 10);
		pthread_mutex_lock(&b->ack_mu);
		struct bus_js_batch *bt = b->inflight;
		if (bt && n >= bt->id_first && n - bt->id_first < bt->n && pa->Sequence > 0)
			bt->msgs[n - bt->id_first].seq = (int64_t)pa->Sequence;
		pthread_mutex_unlock(&b->ack_mu);
	}
	b->N.natsMsg_Destroy(msg);
}

static natsMsg *bus_js_nats_msg(bus_js *b, const struct bus_js_out *o)
{
	natsMsg *m = NULL;
	char id[BUS_JS_ID_MAX], ts[24];
	bus_js_msg_id(b, o->id, id, sizeof id);
	snprintf(ts, sizeof ts, "%" PRId64, o->ts);
	if (b->N.natsMsg_Create(&m, o->subject, NULL, o->payload, (int)strlen(o->payload)) !=
		    NATS_OK ||
	    b->N.natsMsgHeader_Set(m, "Nats-Msg-Id", id) != NATS_OK ||
	    b->N.natsMsgHeader_Set(m, BUS_JS_HDR_TS, ts) != NATS_OK ||
	    (o->key && b->N.natsMsgHeader_Set(m, BUS_JS_HDR_KEY, o->key) != NATS_OK) ||
	    (o->headers && b->N.natsMsgHeader_Set(m, BUS_JS_HDR_HEADERS, o->headers) != NATS_OK)) {
		b->N.natsMsg_Destroy(m);
		return NULL;
	}
	return m;
}

static int64_t bus_js_seq_of(bus_js *b, struct bus_js_batch *bt, size_t i)
{
	pthread_mutex_lock(&b->ack_mu);
	int64_t s = bt->msgs[i].seq;
	pthread_mutex_unlock(&b->ack_mu);
	return s;
}

/* On the pub pool: publish the batch, wait for its acks, retry the rest. */
static void bus_js_publish_work(void *arg)
{
	struct bus_js_batch *bt = arg;
	bus_js *b = bt->b;
	const int64_t deadline = sdk_mono_ms() + b->cfg->publish_timeout_ms;
	bt->ran = true;
	for (size_t i = 0; i < bt->n; i++) {
		natsMsg *m = bus_js_nats_msg(b, &bt->msgs[i]);
		if (m && b->N.js_PublishMsgAsync(b->js, &m, NULL) != NATS_OK)
			b->N.natsMsg_Destroy(m); /* no-op when the library took it */
	}
	jsPubOptions po;
	b->N.jsPubOptions_Init(&po);
	/* What the publishes took (they stall while the client reconnects)
	 * counts against the same deadline. */
	po.MaxWait = deadline - sdk_mono_ms() > 0 ? deadline - sdk_mono_ms() : 1;
	if (b->N.js_PublishAsyncComplete(b->js, &po) != NATS_OK) {
		/* Take back what is still unacknowledged: it is sent again below. */
		natsMsgList pending = { 0 };
		if (b->N.js_PublishAsyncGetPendingList(&pending, b->js) == NATS_OK)
			b->N.natsMsgList_Destroy(&pending);
	}
	for (size_t i = 0; i < bt->n; i++) {
		/* Not cut short by a drain: the deadline bounds it, and what is
		 * acknowledged then is answered so. */
		while (bus_js_seq_of(b, bt, i) == 0) {
			int64_t left = deadline - sdk_mono_ms();
			if (left <= 0)
				break;
			natsMsg *m = bus_js_nats_msg(b, &bt->msgs[i]);
			jsPubAck *pa = NULL;
			jsErrCode jerr = 0;
			b->N.jsPubOptions_Init(&po);
			po.MaxWait = left < 1000 ? left : 1000;
			bt->retries++;
			if (m && b->N.js_PublishMsg(&pa, b->js, m, &po, &jerr) == NATS_OK && pa) {
				pthread_mutex_lock(&b->ack_mu);
				bt->msgs[i].seq = (int64_t)pa->Sequence;
				pthread_mutex_unlock(&b->ack_mu);
			} else {
				struct timespec t = { 0, BUS_JS_RETRY_PAUSE_MS * 1000000L };
				nanosleep(&t, NULL);
			}
			if (pa)
				b->N.jsPubAck_Destroy(pa);
			b->N.natsMsg_Destroy(m);
		}
	}
}

static void bus_js_reply_published(struct bus_js_batch *bt, struct bus_js_pub *p)
{
	size_t stored = 0;
	for (size_t i = 0; i < p->n; i++)
		stored += bt->msgs[p->first + i].seq > 0;
	if (stored < p->n) {
		sdk_req_add_header(p->req, "Retry-After", "1");
		sdk_reply_error(p->req, 503, "not_acknowledged",
				"JetStream did not acknowledge %zu of the %zu messages within %u ms "
				"(a NATS node or the cluster is down?): retry",
				p->n - stored, p->n, bt->b->cfg->publish_timeout_ms);
		return;
	}
	struct evbuffer *out = evbuffer_new();
	int bad = !out || (p->array && evbuffer_add(out, "[", 1));
	for (size_t i = 0; !bad && i < p->n; i++) {
		const struct bus_js_out *m = &bt->msgs[p->first + i];
		bad = (i && evbuffer_add(out, ",", 1)) || evbuffer_add(out, "{\"subject\":", 11) ||
		      bus_wire_string(out, m->subject + bt->b->prefix_len) ||
		      evbuffer_add_printf(out, ",\"offset\":%" PRId64 ",\"timestamp\":%" PRId64 "}",
					  m->seq, m->ts) < 0;
	}
	bad = bad || (p->array && evbuffer_add(out, "]", 1)) || evbuffer_add(out, "\n", 1);
	if (bad)
		sdk_reply_error(p->req, 500, "internal", "out of memory (the messages are stored)");
	else
		sdk_reply_raw(p->req, 200, "application/json", out);
	if (out)
		evbuffer_free(out);
}

static void bus_js_commit_schedule(bus_js *b)
{
	struct timeval now = { 0, 0 };
	if (!b->inflight && b->queued && b->queued->n && !evtimer_pending(b->commit_ev, NULL))
		evtimer_add(b->commit_ev, &now);
}

static void bus_js_publish_done(void *arg)
{
	struct bus_js_batch *bt = arg;
	bus_js *b = bt->b;
	pthread_mutex_lock(&b->ack_mu);
	if (b->inflight == bt)
		b->inflight = NULL;
	pthread_mutex_unlock(&b->ack_mu);
	size_t stored = 0;
	for (size_t i = 0; i < bt->n; i++)
		stored += bt->msgs[i].seq > 0;
	b->stats.published += stored;
	b->stats.publish_failures += bt->n - stored;
	b->stats.publish_retries += bt->retries;
	b->stats.batches++;
	if (bt->n > b->stats.batch_max)
		b->stats.batch_max = bt->n;
	if (stored < bt->n)
		sdk_warn("jetstream: %zu of %zu messages not acknowledged within %u ms", bt->n - stored,
			 bt->n, b->cfg->publish_timeout_ms);
	for (struct bus_js_pub *p = bt->pubs; p; p = p->next)
		bus_js_reply_published(bt, p);
	bus_js_batch_free(bt);
	bus_js_commit_schedule(b);
}

static void bus_js_commit(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	bus_js *b = arg;
	if (b->inflight || !b->queued || b->queued->n == 0)
		return;
	struct bus_js_batch *bt = b->queued, *next = bus_js_batch_new(b);
	if (!next)
		return; /* tried again on the next publish */
	bt->id_first = b->msg_id_next;
	for (size_t i = 0; i < bt->n; i++)
		bt->msgs[i].id = b->msg_id_next++;
	pthread_mutex_lock(&b->ack_mu);
	b->inflight = bt;
	pthread_mutex_unlock(&b->ack_mu);
	b->queued = next;
	if (sdk_pool_submit(b->pub_pool, bus_js_publish_work, bus_js_publish_done, bt) < 0) {
		pthread_mutex_lock(&b->ack_mu);
		b->inflight = NULL;
		pthread_mutex_unlock(&b->ack_mu);
		bus_js_publish_done(bt); /* answers 503: nothing was acknowledged */
	}
}

static char *bus_js_dump(json_t *v, size_t flags)
{
	return v && !json_is_null(v) ? json_dumps(v, flags) : NULL;
}

static int bus_js_queue_msg(bus_js *b, struct bus_js_batch *bt, json_t *m, int64_t now_ms)
{
	if (bt->n == bt->cap) {
		size_t cap = bt->cap ? 2 * bt->cap : 64;
		struct bus_js_out *msgs = realloc(bt->msgs, cap * sizeof *msgs);
		if (!msgs)
			return -1;
		bt->msgs = msgs;
		bt->cap = cap;
	}
	struct bus_js_out *o = &bt->msgs[bt->n];
	char subject[BUS_SUBJECT_MAX + sizeof b->prefix];
	json_t *key = json_object_get(m, "key");
	*o = (struct bus_js_out){ .ts = now_ms };
	if (bus_js_subject(b, json_string_value(json_object_get(m, "subject")), subject,
			   sizeof subject) == 0)
		o->subject = strdup(subject);
	o->payload = json_dumps(json_object_get(m, "payload"), JSON_COMPACT | JSON_ENCODE_ANY);
	o->key = json_is_string(key) ? strdup(json_string_value(key)) : NULL;
	o->headers = bus_js_dump(json_object_get(m, "headers"), JSON_COMPACT | JSON_SORT_KEYS);
	bt->n++; /* freed with the batch even when incomplete */
	if (!o->subject || !o->payload || (json_is_string(key) && !o->key) ||
	    (json_object_get(m, "headers") && !json_is_null(json_object_get(m, "headers")) &&
	     !o->headers))
		return -1;
	return 0;
}

static void bus_js_on_publish(sdk_req *req, void *ctx)
{
	bus_js *b = ((sdk_kernel *)ctx)->state;
	size_t n;
	json_t *body = bus_publish_body(req, &n);
	if (!body)
		return;
	struct bus_js_batch *bt = b->queued;
	if (bt->n + n > BUS_JS_BATCH_MAX && bt->n) {
		sdk_req_add_header(req, "Retry-After", "1");
		sdk_reply_error(req, 503, "busy", "too many messages waiting for JetStream now");
		return;
	}
	struct bus_js_pub *p = calloc(1, sizeof *p);
	if (!p) {
		sdk_reply_error(req, 503, "out_of_memory", "cannot queue the messages now");
		return;
	}
	*p = (struct bus_js_pub){ .req = req, .first = bt->n, .n = n, .array = json_is_array(body) };
	int64_t now = sdk_wall_ms();
	for (size_t i = 0; i < n; i++) {
		if (bus_js_queue_msg(b, bt, p->array ? json_array_get(body, i) : body, now) < 0) {
			while (bt->n > p->first) { /* this request's messages only */
				struct bus_js_out *o = &bt->msgs[--bt->n];
				free(o->subject);
				free(o->payload);
				free(o->key);
				free(o->headers);
			}
			free(p);
			sdk_reply_error(req, 503, "out_of_memory", "cannot queue the messages now");
			return;
		}
	}
	*bt->pubs_tail = p;
	bt->pubs_tail = &p->next;
	bt->n_pubs++;
	bus_js_commit_schedule(b);
}

/* -------------------------------------- subjects, retention and stats */

struct bus_js_info_job {
	bus_js *b;
	sdk_req *req;
	char pattern[BUS_SUBJECT_MAX + 1];
	bool ran, subjects;
	json_t *out;     /* the answer, or NULL */
	char why[256];
};

static void bus_js_info_work(void *arg)
{
	struct bus_js_info_job *j = arg;
	bus_js *b = j->b;
	jsOptions o;
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	char filter[BUS_SUBJECT_MAX + sizeof b->prefix];
	j->ran = true;
	b->N.jsOptions_Init(&o);
	if (j->subjects) {
		bus_js_subject(b, j->pattern[0] ? j->pattern : ">", filter, sizeof filter);
		o.Stream.Info.SubjectsFilter = filter;
	}
	natsStatus s = b->N.js_GetStreamInfo(&si, b->js, b->stream, &o, &jerr);
	if (s != NATS_OK) {
		sdk_nats_why(&b->N, s, jerr, j->why, sizeof j->why);
		return;
	}
	if (!j->subjects) {
		j->out = json_pack("{s:I, s:I, s:I, s:I}", "next_offset",
				   (json_int_t)(si->State.LastSeq + 1), "first_offset",
				   (json_int_t)si->State.FirstSeq, "messages",
				   (json_int_t)si->State.Msgs, "bytes", (json_int_t)si->State.Bytes);
	} else {
		json_t *arr = json_array();
		jsStreamStateSubjects *subs = si->State.Subjects;
		for (int i = 0; arr && subs && i < subs->Count; i++) {
			const char *subj = subs->List[i].Subject;
			if (strncmp(subj, b->prefix, b->prefix_len) != 0)
				continue;
			subj += b->prefix_len;
			/* Grace's rule for '$' subjects: a leading wildcard does not see them. */
			if (j->pattern[0] && !bus_pattern_match(j->pattern, subj))
				continue;
			json_array_append_new(arr, json_pack("{s:s, s:I, s:n, s:n}", "subject", subj,
							     "count", (json_int_t)subs->List[i].Msgs,
							     "first_offset", "last_offset"));
		}
		/* By subject, as the embedded engine answers. */
		size_t n = json_array_size(arr);
		for (size_t a = 1; a < n; a++)
			for (size_t c = a; c > 0; c--) {
				json_t *x = json_array_get(arr, c - 1), *y = json_array_get(arr, c);
				if (strcmp(json_string_value(json_object_get(x, "subject")),
					   json_string_value(json_object_get(y, "subject"))) <= 0)
					break;
				json_incref(x);
				json_array_set(arr, c - 1, y);
				json_array_set_new(arr, c, x);
			}
		j->out = arr ? json_pack("{s:o}", "subjects", arr) : NULL;
	}
	b->N.jsStreamInfo_Destroy(si);
}

static void bus_js_stats_reply(bus_js *b, sdk_req *req, json_t *stream);

static void bus_js_info_done(void *arg)
{
	struct bus_js_info_job *j = arg;
	if (!j->ran) {
		sdk_reply_error(j->req, 503, "draining", "the bus is stopping");
	} else if (j->subjects) {
		if (j->out)
			sdk_reply_json(j->req, 200, j->out);
		else
			sdk_reply_error(j->req, 503, "jetstream_unavailable", "%s", j->why);
		j->out = NULL;
	} else {
		bus_js_stats_reply(j->b, j->req, j->out);
	}
	json_decref(j->out);
	free(j);
}

static void bus_js_info_submit(bus_js *b, sdk_req *req, bool subjects, const char *pattern)
{
	struct bus_js_info_job *j = calloc(1, sizeof *j);
	if (j) {
		*j = (struct bus_js_info_job){ .b = b, .req = req, .subjects = subjects };
		snprintf(j->pattern, sizeof j->pattern, "%s", pattern ? pattern : "");
	}
	if (!j || sdk_pool_submit(b->short_pool, bus_js_info_work, bus_js_info_done, j) < 0) {
		free(j);
		sdk_req_add_header(req, "Retry-After", "1");
		sdk_reply_error(req, 503, "busy", "too many requests waiting for JetStream");
	}
}

static void bus_js_on_subjects(sdk_req *req, void *ctx)
{
	bus_js *b = ((sdk_kernel *)ctx)->state;
	const char *p = sdk_req_query(req, "subject");
	const char *why = p ? bus_pattern_check(p) : NULL;
	if (why) {
		sdk_reply_error(req, 400, "bad_subject", "subject %s", why);
		return;
	}
	bus_js_info_submit(b, req, true, p);
}

static void bus_js_on_stats(sdk_req *req, void *ctx)
{
	bus_js_info_submit(((sdk_kernel *)ctx)->state, req, false, NULL);
}

static void bus_js_stats_reply(bus_js *b, sdk_req *req, json_t *stream)
{
	const bus_js_stats *s = &b->stats;
	json_t *out = json_pack(
		"{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
		"engine", "jetstream", "stream", b->stream, "subscribers", (json_int_t)b->n_subs,
		"waiting_polls", (json_int_t)b->n_polls, "published", (json_int_t)s->published,
		"batches", (json_int_t)s->batches, "batch_max", (json_int_t)s->batch_max,
		"publish_failures", (json_int_t)s->publish_failures, "publish_retries",
		(json_int_t)s->publish_retries, "streamed", (json_int_t)s->streamed, "resubscribes",
		(json_int_t)s->resubscribes, "polled", (json_int_t)s->polled, "acked",
		(json_int_t)s->acked, "dead_lettered", (json_int_t)s->dead_lettered,
		"pending_publishes", (json_int_t)(b->queued ? b->queued->n : 0));
	if (out && stream) {
		json_object_set(out, "next_offset", json_object_get(stream, "next_offset"));
		json_object_set_new(out, "jetstream", json_incref(stream));
	} else if (out) {
		json_object_set_new(out, "next_offset", json_null());
	}
	sdk_reply_json(req, 200, out);
}

/* Retention on JetStream is the stream's: MaxAge and MaxBytes from
 * [message_bus] max_age_s and max_bytes. Per-pattern rules are the embedded
 * engine's; they are refused here rather than silently not enforced. */
static void bus_js_on_retention_set(sdk_req *req, void *ctx)
{
	(void)ctx;
	sdk_reply_error(req, 501, "not_on_jetstream",
			"retention rules are the embedded engine's; on JetStream the stream's "
			"limits apply ([message_bus] max_age_s, max_bytes)");
}

static void bus_js_on_retention_list(sdk_req *req, void *ctx)
{
	bus_js *b = ((sdk_kernel *)ctx)->state;
	json_t *stream = json_pack("{s:s, s:o, s:o}", "stream", b->stream, "max_age_ms",
				   b->cfg->max_age_s ? json_integer((json_int_t)b->cfg->max_age_s * 1000)
						     : json_null(),
				   "max_bytes",
				   b->cfg->max_bytes ? json_integer((json_int_t)b->cfg->max_bytes)
						     : json_null());
	sdk_reply_json(req, 200, json_pack("{s:[], s:o}", "rules", "jetstream", stream));
}

static void bus_js_on_retention_delete(sdk_req *req, void *ctx)
{
	(void)ctx;
	sdk_reply_error(req, 404, "not_found", "no retention rules on JetStream");
}

/* ------------------------------------------------------------ the kernel */

static void bus_js_drain_now(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	bus_js_stream_end_all(arg);
}

static void bus_js_drain(sdk_kernel *k)
{
	bus_js *b = k->state;
	b->draining = true;
	atomic_store(&b->stop, true); /* long polls answer within a fetch slice */
	struct timeval now = { 0, 0 };
	evtimer_add(b->drain_ev, &now);
}

static void bus_js_free(bus_js *b)
{
	atomic_store(&b->stop, true);
	/* The pools first: their jobs use the connection; every done runs. */
	sdk_pool_free(b->pub_pool);
	sdk_pool_free(b->wait_pool);
	sdk_pool_free(b->short_pool);
	b->pub_pool = b->wait_pool = b->short_pool = NULL; /* what follows runs inline */
	bus_js_held_drop_all(b); /* no piece is being read now */
	b->draining = true;
	bus_js_stream_end_all(b);
	bus_js_groups_free(b);
	if (b->js)
		b->N.jsCtx_Destroy(b->js);
	if (b->nc) {
		b->N.natsConnection_Close(b->nc);
		b->N.natsConnection_Destroy(b->nc);
	}
	sdk_nats_close(&b->N); /* waits for the library's threads */
	while (!LIST_EMPTY(&b->closures)) {
		struct bus_js_closure *c = LIST_FIRST(&b->closures);
		LIST_REMOVE(c, link);
		free(c);
	}
	struct bus_js_item *it;
	while ((it = TAILQ_FIRST(&b->inbox))) {
		TAILQ_REMOVE(&b->inbox, it, link);
		if (it->event)
			evbuffer_free(it->event);
		free(it);
	}
	struct event *evs[] = { b->commit_ev, b->in_ev, b->drain_ev };
	for (size_t i = 0; i < sizeof evs / sizeof *evs; i++)
		if (evs[i])
			event_free(evs[i]);
	for (int i = 0; i < 2; i++)
		if (b->in_pipe[i] >= 0)
			close(b->in_pipe[i]);
	bus_js_batch_free(b->queued);
	pthread_mutex_destroy(&b->ack_mu);
	pthread_mutex_destroy(&b->in_mu);
	pthread_mutex_destroy(&b->closures_mu);
	pthread_mutex_destroy(&b->groups_mu);
	free(b);
}

static void bus_js_close(sdk_kernel *k)
{
	bus_js *b = k->state;
	if (!b)
		return;
	b->draining = true;
	/* What is queued goes out now; its answers may never leave. */
	bus_js_commit(-1, 0, b);
	bus_js_free(b);
	k->state = NULL;
}

static void bus_js_metrics(sdk_kernel *k, struct evbuffer *out)
{
	bus_js *b = k->state;
	const bus_js_stats *s = &b->stats;
	const bus_counter counters[] = {
		{ "grace_bus_published_total", "Messages published (acknowledged by JetStream).", s->published },
		{ "grace_bus_commit_batches_total", "Publish batches sent to JetStream.", s->batches },
		{ "grace_bus_publish_failures_total", "Messages JetStream did not acknowledge in time.", s->publish_failures },
		{ "grace_bus_publish_retries_total", "Messages published again after a missing ack.", s->publish_retries },
		{ "grace_bus_streamed_total", "Messages sent to SSE subscribers.", s->streamed },
		{ "grace_bus_polled_total", "Messages delivered to consumer group polls.", s->polled },
		{ "grace_bus_acked_total", "Messages acknowledged by consumer groups.", s->acked },
		{ "grace_bus_dead_lettered_total", "Messages moved to a dead letter subject.", s->dead_lettered },
	};
	bus_wire_metrics(out, k->def->name, counters, sizeof counters / sizeof counters[0],
			 b->n_subs, b->n_polls);
}

/* Connects and makes (or updates) the stream; blocking, at init only. */
static int bus_js_connect(bus_js *b, sdk_err *err)
{
	const grace_message_bus *c = b->cfg;
	const char *urls[GRACE_BUS_NATS_URLS_MAX];
	natsOptions *o = NULL;
	natsStatus s;
	char why[256];
	for (unsigned i = 0; i < c->n_nats_urls; i++)
		urls[i] = c->nats_urls[i];
	s = b->N.natsOptions_Create(&o);
	if (s == NATS_OK)
		s = b->N.natsOptions_SetServers(o, urls, (int)c->n_nats_urls);
	if (s == NATS_OK)
		s = b->N.natsOptions_SetTimeout(o, c->connect_timeout_ms);
	if (s == NATS_OK)
		s = b->N.natsOptions_SetName(o, "grace message_bus");
	/* Forever, quickly: a node that goes away is replaced by another at once. */
	if (s == NATS_OK)
		s = b->N.natsOptions_SetMaxReconnect(o, -1);
	if (s == NATS_OK)
		s = b->N.natsOptions_SetReconnectWait(o, 100);
	if (s == NATS_OK)
		s = b->N.natsOptions_SetPingInterval(o, 1000);
	if (s == NATS_OK)
		s = b->N.natsOptions_SetMaxPingsOut(o, 2);
	if (s == NATS_OK)
		s = b->N.natsOptions_SetErrorHandler(o, bus_js_on_error, b);
	if (s == NATS_OK)
		s = b->N.natsConnection_Connect(&b->nc, o);
	b->N.natsOptions_Destroy(o);
	if (s != NATS_OK) {
		sdk_fail(err, SDK_EIO, "cannot connect to NATS (%s...): %s", urls[0],
			 sdk_nats_why(&b->N, s, 0, why, sizeof why));
		return SDK_EIO;
	}
	jsOptions jo;
	b->N.jsOptions_Init(&jo);
	jo.Wait = BUS_JS_API_WAIT_MS; /* publishes wait publish_timeout_ms, their own */
	jo.PublishAsync.AckHandler = bus_js_on_pub_ack;
	jo.PublishAsync.AckHandlerClosure = b;
	jo.PublishAsync.MaxPending = BUS_JS_BATCH_MAX;
	s = b->N.natsConnection_JetStream(&b->js, b->nc, &jo);
	if (s != NATS_OK) {
		sdk_fail(err, SDK_EIO, "JetStream: %s", sdk_nats_why(&b->N, s, 0, why, sizeof why));
		return SDK_EIO;
	}
	char subjects[sizeof b->prefix + 2];
	const char *subj_list[1] = { subjects };
	snprintf(subjects, sizeof subjects, "%s>", b->prefix);
	jsStreamConfig sc;
	b->N.jsStreamConfig_Init(&sc);
	sc.Name = b->stream;
	sc.Subjects = subj_list;
	sc.SubjectsLen = 1;
	sc.Storage = js_FileStorage;
	sc.Replicas = c->replicas;
	sc.MaxAge = (int64_t)c->max_age_s * 1000000000LL;
	sc.MaxBytes = c->max_bytes ? (int64_t)c->max_bytes : -1;
	sc.Duplicates = (int64_t)BUS_JS_DUPLICATES_S * 1000000000LL;
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	/* At start the stream may be electing its leader: wait as long as a
	 * publish would. */
	jsOptions so;
	b->N.jsOptions_Init(&so);
	so.Wait = c->publish_timeout_ms;
	s = b->N.js_AddStream(&si, b->js, &sc, &so, &jerr);
	if (s != NATS_OK && jerr == JSStreamNameExistErr) {
		/* It exists with other limits: the configuration wins. */
		jerr = 0;
		s = b->N.js_UpdateStream(&si, b->js, &sc, &so, &jerr);
	}
	if (s != NATS_OK) {
		sdk_fail(err, SDK_EIO, "stream %s: %s", b->stream,
			 sdk_nats_why(&b->N, s, jerr, why, sizeof why));
		return SDK_EIO;
	}
	sdk_info("message bus on JetStream: stream %s (%d replicas), next offset %" PRIu64,
		 b->stream, (int)si->Config->Replicas, si->State.LastSeq + 1);
	b->N.jsStreamInfo_Destroy(si);
	return 0;
}

int bus_js_init(sdk_kernel *k, sdk_err *err)
{
	bus_js *b = calloc(1, sizeof *b);
	if (!b) {
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	b->engine = &bus_js_engine;
	b->k = k;
	b->cfg = &k->cfg->message_bus;
	b->in_pipe[0] = b->in_pipe[1] = -1;
	pthread_mutex_init(&b->ack_mu, NULL);
	pthread_mutex_init(&b->in_mu, NULL);
	pthread_mutex_init(&b->closures_mu, NULL);
	pthread_mutex_init(&b->groups_mu, NULL);
	TAILQ_INIT(&b->inbox);
	LIST_INIT(&b->subs);
	LIST_INIT(&b->closures);
	LIST_INIT(&b->groups);
	LIST_INIT(&b->held);
	snprintf(b->stream, sizeof b->stream, "%s_BUS", b->cfg->stream_prefix);
	snprintf(b->prefix, sizeof b->prefix, "%s.", b->stream);
	b->prefix_len = strlen(b->prefix);
	/* Nats-Msg-Id must not repeat across restarts within the duplicate
	 * window: a random instance id, then a counter. */
	unsigned char rnd[12];
	if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
		sdk_fail(err, SDK_EIO, "getrandom: %s", strerror(errno));
		bus_js_free(b);
		return SDK_EIO;
	}
	for (size_t i = 0; i < sizeof rnd; i++)
		snprintf(b->instance + 2 * i, 3, "%02x", rnd[i]);
	b->queued = bus_js_batch_new(b);
	b->commit_ev = evtimer_new(k->base, bus_js_commit, b);
	b->drain_ev = evtimer_new(k->base, bus_js_drain_now, b);
	if (pipe2(b->in_pipe, O_CLOEXEC | O_NONBLOCK) == 0)
		b->in_ev = event_new(k->base, b->in_pipe[0], EV_READ | EV_PERSIST, bus_js_inbox_run, b);
	b->pub_pool = sdk_pool_new(k->base, 1, BUS_JS_QUEUE_MAX);
	b->wait_pool = sdk_pool_new(k->base, BUS_JS_WAIT_THREADS, BUS_JS_QUEUE_MAX);
	b->short_pool = sdk_pool_new(k->base, BUS_JS_SHORT_THREADS, BUS_JS_QUEUE_MAX);
	if (!b->queued || !b->commit_ev || !b->drain_ev || !b->in_ev || !b->pub_pool ||
	    !b->wait_pool || !b->short_pool) {
		sdk_fail(err, SDK_EIO, "out of memory");
		bus_js_free(b);
		return SDK_EIO;
	}
	event_add(b->in_ev, NULL);
	if (sdk_nats_open(&b->N, err) < 0 || bus_js_connect(b, err) < 0) {
		bus_js_free(b);
		return SDK_EIO;
	}
	k->state = b;
	return 0;
}

static const bus_engine bus_js_engine = {
	.name = "jetstream",
	.publish = bus_js_on_publish,
	.subscribe = bus_js_on_subscribe,
	.subjects = bus_js_on_subjects,
	.group_list = bus_js_on_group_list,
	.group_get = bus_js_on_group_get,
	.group_delete = bus_js_on_group_delete,
	.poll = bus_js_on_poll,
	.ack = bus_js_on_ack,
	.retention_list = bus_js_on_retention_list,
	.retention_set = bus_js_on_retention_set,
	.retention_delete = bus_js_on_retention_delete,
	.stats = bus_js_on_stats,
	.snapshot = bus_js_on_snapshot,
	.snapshot_piece = bus_js_on_snapshot_piece,
	.snapshot_delete = bus_js_on_snapshot_delete,
	.drain = bus_js_drain,
	.close = bus_js_close,
	.metrics = bus_js_metrics,
};
