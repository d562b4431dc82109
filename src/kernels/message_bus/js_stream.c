/* GET /subscribe on JetStream: the same Server-Sent Events as the embedded
 * engine (stream.c), the stream sequence as the event id.
 *
 * Each subscriber is an ordered consumer (ephemeral, no acks, redone by
 * the client library on a gap) filtered on PREFIX_BUS.PATTERN and started
 * at the subscriber's next offset. Its messages arrive on a NATS thread,
 * are turned into SSE events there and handed to the loop through the
 * inbox (js.c), tagged with the subscriber's id. The loop writes them out
 * and keeps the subscriber's next offset.
 *
 * The subscription is made again from that offset, on the short pool, when
 * it fails (missed heartbeats after a NATS node went away, a slow consumer
 * error) and when the client falls behind by more than
 * BUS_JS_BACKLOG_MAX: then it is let go and made again once the client has
 * read its backlog down, so a slow reader costs JetStream reads, not memory.
 * A new id each time: events of the old subscription still in the inbox are
 * dropped, never written twice. */
#include "kernels/message_bus/js.h"

#include "kernels/message_bus/subject.h"
#include "kernels/message_bus/wire.h"
#include "sdk/log.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define BUS_JS_SUBS_MAX 1024u
#define BUS_JS_HEARTBEAT_DEFAULT_MS 15000u
#define BUS_JS_HEARTBEAT_MIN_MS 100u
#define BUS_JS_HEARTBEAT_MAX_MS 300000u
#define BUS_JS_BACKLOG_MAX (4u << 20)
#define BUS_JS_BACKLOG_LOW (1u << 20)
#define BUS_JS_RESUB_MS 500         /* a failed or paused subscription is looked at again */
#define BUS_JS_IDLE_HEARTBEAT_NS 1000000000LL /* the ordered consumer's: a dead one is seen in ~3 s */

enum bus_js_sub_state { SUB_OPENING, SUB_LIVE, SUB_PAUSED };

struct bus_js_sub {
	bus_js *bus;
	sdk_req *req;
	uint64_t id;           /* of its current NATS subscription */
	char pattern[BUS_SUBJECT_MAX + 1];
	int64_t next;          /* the next offset it wants; 0: latest, not yet known */
	enum bus_js_sub_state state;
	bool greeted, job;     /* job: a (re)subscription is on the pool */
	bool warned;           /* a failure to subscribe was logged; reset on success */
	natsSubscription *nsub;
	struct event *heartbeat, *retry;
	LIST_ENTRY(bus_js_sub) link;
};

/* A (re)subscription on the short pool. */
struct bus_js_sub_job {
	bus_js *b;
	uint64_t id;
	char pattern[BUS_SUBJECT_MAX + 1];
	int64_t next;          /* 0: latest */
	int64_t start;         /* what it started from */
	natsSubscription *nsub;
	bool ran;
	char why[256];
};

static struct bus_js_sub *bus_js_sub_find(bus_js *b, uint64_t id)
{
	struct bus_js_sub *s;
	LIST_FOREACH (s, &b->subs, link)
		if (s->id == id)
			return s;
	return NULL;
}

struct bus_js_unsub {
	bus_js *b;
	natsSubscription *nsub;
};

static void bus_js_unsub_work(void *arg)
{
	struct bus_js_unsub *u = arg;
	u->b->N.natsSubscription_Unsubscribe(u->nsub);
	u->b->N.natsSubscription_Destroy(u->nsub);
	u->nsub = NULL;
}

static void bus_js_unsub_done(void *arg)
{
	struct bus_js_unsub *u = arg;
	if (u->nsub) /* never ran: the pools are stopping, nothing waits any more */
		bus_js_unsub_work(u);
	free(u);
}

/* Lets a NATS subscription go. Not on the loop: unsubscribing deletes its
 * consumer on the server and waits for the answer, which takes as long as
 * JetStream does (seconds while a node is gone and a leader is elected). */
static void bus_js_unsubscribe(bus_js *b, natsSubscription *nsub)
{
	struct bus_js_unsub *u = calloc(1, sizeof *u);
	if (u)
		*u = (struct bus_js_unsub){ b, nsub };
	if (!u || b->draining || !b->short_pool ||
	    sdk_pool_submit(b->short_pool, bus_js_unsub_work, bus_js_unsub_done, u) < 0) {
		free(u);
		b->N.natsSubscription_Unsubscribe(nsub);
		b->N.natsSubscription_Destroy(nsub);
	}
}

static void bus_js_sub_unsubscribe(bus_js *b, struct bus_js_sub *s)
{
	if (!s->nsub)
		return;
	bus_js_unsubscribe(b, s->nsub);
	s->nsub = NULL;
}

static void bus_js_sub_free(struct bus_js_sub *s)
{
	bus_js *b = s->bus;
	LIST_REMOVE(s, link);
	b->n_subs--;
	bus_js_sub_unsubscribe(b, s);
	event_free(s->heartbeat);
	event_free(s->retry);
	sdk_reply_stream_end(s->req);
	free(s);
}

static void bus_js_sub_on_close(sdk_req *req, void *arg)
{
	(void)req;
	bus_js_sub_free(arg);
}

/* A message of an ordered consumer (a NATS thread): its SSE event to the
 * loop. Messages a leading wildcard must not see ('$' subjects) are not. */
static void bus_js_sub_on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg,
			      void *closure)
{
	(void)nc, (void)sub;
	struct bus_js_closure *c = closure;
	bus_js *b = c->b;
	bus_msg m;
	struct bus_js_item *it = NULL;
	if (bus_js_msg_of(b, msg, &m, NULL) == 0 && bus_pattern_match(c->pattern, m.subject)) {
		it = calloc(1, sizeof *it);
		if (it && !(it->event = evbuffer_new())) {
			free(it);
			it = NULL;
		}
		if (it && bus_wire_event(it->event, &m) < 0) {
			evbuffer_free(it->event);
			free(it);
			it = NULL;
		}
	}
	if (it) {
		it->sub_id = c->sub_id;
		it->seq = m.seq;
		bus_js_inbox_push(b, it);
	}
	b->N.natsMsg_Destroy(msg);
}

void bus_js_stream_failed(bus_js *b, natsSubscription *sub)
{
	struct bus_js_item *it = calloc(1, sizeof *it);
	if (!it)
		return;
	it->nsub = sub;
	bus_js_inbox_push(b, it);
}

static void bus_js_sub_work(void *arg)
{
	struct bus_js_sub_job *j = arg;
	bus_js *b = j->b;
	jsErrCode jerr = 0;
	natsStatus s = NATS_OK;
	j->ran = true;
	j->start = j->next;
	if (j->start == 0) { /* latest: after the stream's last message now */
		jsStreamInfo *si = NULL;
		s = b->N.js_GetStreamInfo(&si, b->js, b->stream, NULL, &jerr);
		if (s != NATS_OK) {
			sdk_nats_why(&b->N, s, jerr, j->why, sizeof j->why);
			return;
		}
		j->start = (int64_t)si->State.LastSeq + 1;
		b->N.jsStreamInfo_Destroy(si);
	}
	char filter[BUS_SUBJECT_MAX + sizeof b->prefix];
	bus_js_subject(b, j->pattern, filter, sizeof filter);
	struct bus_js_closure *c = bus_js_closure_new(b, j->id, j->pattern);
	if (!c) {
		snprintf(j->why, sizeof j->why, "out of memory");
		return;
	}
	jsSubOptions so;
	b->N.jsSubOptions_Init(&so);
	so.Stream = b->stream;
	so.Ordered = true;
	so.Config.DeliverPolicy = js_DeliverByStartSequence;
	so.Config.OptStartSeq = (uint64_t)(j->start > 0 ? j->start : 1);
	so.Config.Heartbeat = BUS_JS_IDLE_HEARTBEAT_NS;
	s = b->N.js_Subscribe(&j->nsub, b->js, filter, bus_js_sub_on_msg, c, NULL, &so, &jerr);
	if (s == NATS_OK)
		s = b->N.natsSubscription_SetOnCompleteCB(j->nsub, bus_js_closure_done, c);
	if (s != NATS_OK) {
		sdk_nats_why(&b->N, s, jerr, j->why, sizeof j->why);
		if (j->nsub) {
			/* The closure is freed at close if no completion comes. */
			b->N.natsSubscription_Unsubscribe(j->nsub);
			b->N.natsSubscription_Destroy(j->nsub);
			j->nsub = NULL;
		} else {
			bus_js_closure_done(c);
		}
	}
}

static void bus_js_sub_greet(struct bus_js_sub *s)
{
	struct evbuffer *out = evbuffer_new();
	if (!out)
		return;
	evbuffer_add_printf(out, "retry: 1000\n: subscribed to %s from offset %" PRId64 "\n\n",
			    s->pattern, s->next);
	sdk_reply_stream_chunk(s->req, out);
	evbuffer_free(out);
	s->greeted = true;
}

static void bus_js_sub_retry_later(struct bus_js_sub *s)
{
	struct timeval tv = { 0, BUS_JS_RESUB_MS * 1000 };
	if (!evtimer_pending(s->retry, NULL))
		evtimer_add(s->retry, &tv);
}

static void bus_js_sub_done(void *arg)
{
	struct bus_js_sub_job *j = arg;
	bus_js *b = j->b;
	struct bus_js_sub *s = bus_js_sub_find(b, j->id);
	if (s)
		s->job = false;
	if (!s || !j->nsub) {
		if (j->nsub) /* its client went meanwhile */
			bus_js_unsubscribe(b, j->nsub);
		if (s && !b->draining) {
			if (j->ran && !s->warned)
				sdk_warn("subscriber %s: %s; trying again every %d ms", s->pattern,
					 j->why, BUS_JS_RESUB_MS);
			s->warned = s->warned || j->ran;
			bus_js_sub_retry_later(s);
		}
		free(j);
		return;
	}
	s->nsub = j->nsub;
	s->state = SUB_LIVE;
	s->warned = false;
	if (s->next == 0)
		s->next = j->start;
	if (!s->greeted)
		bus_js_sub_greet(s);
	free(j);
}

/* Makes the subscriber's NATS subscription (again) from s->next. */
static void bus_js_sub_open(struct bus_js_sub *s)
{
	bus_js *b = s->bus;
	if (s->job || b->draining)
		return;
	bus_js_sub_unsubscribe(b, s);
	s->id = ++b->sub_id_next; /* what the old one still sends is dropped */
	s->state = SUB_OPENING;
	struct bus_js_sub_job *j = calloc(1, sizeof *j);
	if (j) {
		*j = (struct bus_js_sub_job){ .b = b, .id = s->id, .next = s->next };
		snprintf(j->pattern, sizeof j->pattern, "%s", s->pattern);
	}
	if (!j || sdk_pool_submit(b->short_pool, bus_js_sub_work, bus_js_sub_done, j) < 0) {
		free(j);
		bus_js_sub_retry_later(s);
		return;
	}
	s->job = true;
}

static void bus_js_sub_on_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct bus_js_sub *s = arg;
	if (s->state == SUB_PAUSED && sdk_reply_backlog(s->req) > BUS_JS_BACKLOG_LOW) {
		bus_js_sub_retry_later(s);
		return;
	}
	if (s->state != SUB_LIVE)
		bus_js_sub_open(s);
}

void bus_js_stream_item(bus_js *b, struct bus_js_item *it)
{
	struct bus_js_sub *s;
	if (it->seq == 0) { /* a subscription failed */
		LIST_FOREACH (s, &b->subs, link)
			if (s->nsub == it->nsub && s->state == SUB_LIVE) {
				b->stats.resubscribes++;
				bus_js_sub_open(s);
				break;
			}
	} else if ((s = bus_js_sub_find(b, it->sub_id)) && s->state != SUB_PAUSED &&
		   it->seq >= s->next) {
		/* The id is its current subscription's, which may deliver before
		 * bus_js_sub_done has run: still opening counts. */
		if (sdk_reply_backlog(s->req) > BUS_JS_BACKLOG_MAX) {
			/* Let go; made again from s->next once the client has read. */
			bus_js_sub_unsubscribe(b, s);
			s->state = SUB_PAUSED;
			bus_js_sub_retry_later(s);
		} else {
			sdk_reply_stream_chunk(s->req, it->event);
			s->next = it->seq + 1;
			b->stats.streamed++;
		}
	}
	if (it->event)
		evbuffer_free(it->event);
	free(it);
}

static void bus_js_sub_heartbeat(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	bus_wire_heartbeat(((struct bus_js_sub *)arg)->req);
}

/* As stream.c's, on JetStream's sequences (from 1): 0 means latest. */
static int bus_js_sub_start(sdk_req *req, int64_t *next)
{
	enum bus_from from;
	int64_t n = 0;
	if (bus_sub_from(req, &from, &n) < 0)
		return -1;
	*next = from == BUS_FROM_SEQ ? (n > 0 ? n : 1) : from == BUS_FROM_EARLIEST ? 1 : 0;
	return 0;
}

void bus_js_on_subscribe(sdk_req *req, void *ctx)
{
	bus_js *b = ((sdk_kernel *)ctx)->state;
	const char *pattern = sdk_req_query(req, "subject");
	const char *why = bus_pattern_check(pattern);
	unsigned long long hb;
	int64_t next;
	if (why) {
		sdk_reply_error(req, 400, "bad_subject", "subject %s", pattern ? why : "is required");
		return;
	}
	if (sdk_req_query_uint(req, "heartbeat_ms", BUS_JS_HEARTBEAT_MIN_MS, BUS_JS_HEARTBEAT_MAX_MS,
			       BUS_JS_HEARTBEAT_DEFAULT_MS, &hb) < 0 ||
	    bus_js_sub_start(req, &next) < 0)
		return;
	if (b->draining || b->n_subs >= BUS_JS_SUBS_MAX) {
		sdk_req_add_header(req, "Retry-After", "1");
		sdk_reply_error(req, 503, b->draining ? "draining" : "too_many_subscribers",
				"no new subscriptions now");
		return;
	}
	struct bus_js_sub *s = calloc(1, sizeof *s);
	if (s) {
		s->heartbeat = event_new(b->k->base, -1, EV_PERSIST, bus_js_sub_heartbeat, s);
		s->retry = evtimer_new(b->k->base, bus_js_sub_on_retry, s);
	}
	if (!s || !s->heartbeat || !s->retry) {
		if (s && s->heartbeat)
			event_free(s->heartbeat);
		if (s && s->retry)
			event_free(s->retry);
		free(s);
		sdk_reply_error(req, 503, "out_of_memory", "no new subscriptions now");
		return;
	}
	s->bus = b;
	s->req = req;
	snprintf(s->pattern, sizeof s->pattern, "%s", pattern);
	s->next = next;
	LIST_INSERT_HEAD(&b->subs, s, link);
	b->n_subs++;
	sdk_req_add_header(req, "X-Accel-Buffering", "no");
	sdk_reply_stream_start(req, 200, "text/event-stream", bus_js_sub_on_close, s);
	struct timeval tv = { (time_t)(hb / 1000), (suseconds_t)(hb % 1000) * 1000 };
	event_add(s->heartbeat, &tv);
	if (next > 0)
		bus_js_sub_greet(s); /* else once "latest" is known */
	bus_js_sub_open(s);
}

void bus_js_stream_end_all(bus_js *b)
{
	while (!LIST_EMPTY(&b->subs))
		bus_js_sub_free(LIST_FIRST(&b->subs));
}
