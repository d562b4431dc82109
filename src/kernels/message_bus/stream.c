/* GET /subscribe?subject=PATTERN&from=OFFSET|latest|earliest: Server-Sent
 * Events, one event per message:
 *
 *     id: OFFSET
 *     event: message
 *     data: {"offset":...,"subject":...,"payload":...}
 *
 * `from` (default latest: only what is published from now on) gives the
 * first offset wanted; a Last-Event-ID header wins over it and resumes just
 * after that id. A comment line (": heartbeat") goes out every
 * heartbeat_ms (default 15 s) so proxies and clients see a live stream.
 *
 * A subscriber is either live — caught up, so each committed batch is
 * pushed to it from memory — or catching up, read from SQLite a page at a
 * time from a zero-delay timer, so one subscriber replaying a long history
 * never holds the loop. A subscriber whose socket backs up past
 * BUS_SUB_BACKLOG_MAX stops being live and catches up later from SQLite,
 * so a slow reader costs disk reads, not unbounded memory. */
#include "kernels/message_bus/bus.h"

#include "kernels/message_bus/subject.h"
#include "kernels/message_bus/wire.h"
#include "sdk/log.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define BUS_SUBS_MAX 1024u
#define BUS_HEARTBEAT_DEFAULT_MS 15000u
#define BUS_HEARTBEAT_MIN_MS 100u
#define BUS_HEARTBEAT_MAX_MS 300000u
#define BUS_SUB_BACKLOG_MAX (4u << 20) /* unsent bytes before a subscriber falls back */
#define BUS_SUB_BACKLOG_LOW (1u << 20) /* ... and before it is fed again */
#define BUS_PUMP_MATCHES 256u          /* events per catch-up step */
#define BUS_PUMP_BUDGET 4096u          /* rows looked at per catch-up step */
#define BUS_PUMP_RETRY_MS 10           /* a backed-up subscriber is looked at again */
/* The server's read timeout would end an idle stream (the client sends
 * nothing after its request); a stream's liveness is the heartbeat's job. */

struct bus_sub {
	bus *bus;
	sdk_req *req;
	char pattern[BUS_SUBJECT_MAX + 1];
	int64_t next; /* the next offset it wants */
	bool live;
	struct event *pump, *heartbeat;
	LIST_ENTRY(bus_sub) link;
};

/* Bytes written for the subscriber and not yet taken by it. */
static size_t bus_sub_backlog(struct bus_sub *s) { return sdk_reply_backlog(s->req); }

static void bus_sub_free(struct bus_sub *s)
{
	LIST_REMOVE(s, link);
	s->bus->n_subs--;
	if (s->pump)
		event_free(s->pump);
	if (s->heartbeat)
		event_free(s->heartbeat);
	sdk_reply_stream_end(s->req);
	free(s);
}

static void bus_sub_on_close(sdk_req *req, void *arg)
{
	(void)req;
	bus_sub_free(arg);
}

static void bus_sub_schedule(struct bus_sub *s, int ms)
{
	struct timeval tv = { 0, ms * 1000 };
	if (!evtimer_pending(s->pump, NULL))
		evtimer_add(s->pump, &tv);
}

struct bus_sub_out {
	struct evbuffer *buf;
	size_t n;
};

static int bus_sub_write(const bus_msg *m, void *arg)
{
	struct bus_sub_out *o = arg;
	if (bus_wire_event(o->buf, m) < 0)
		return SDK_EIO;
	o->n++;
	return 0;
}

/* One catch-up step: a page of history from SQLite. */
static void bus_sub_pump(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct bus_sub *s = arg;
	bus *b = s->bus;
	if (sdk_req_closed(s->req) || s->live)
		return;
	if (bus_sub_backlog(s) > BUS_SUB_BACKLOG_LOW) {
		bus_sub_schedule(s, BUS_PUMP_RETRY_MS);
		return;
	}
	struct evbuffer *out = evbuffer_new();
	if (!out) {
		bus_sub_schedule(s, BUS_PUMP_RETRY_MS);
		return;
	}
	int64_t next;
	sdk_err e = { "out of memory" };
	struct bus_sub_out o = { out, 0 };
	int rc = bus_store_scan(b->store, s->pattern, s->next, BUS_PUMP_MATCHES, BUS_PUMP_BUDGET,
				bus_sub_write, &o, &next, &e);
	if (rc) {
		sdk_warn("subscriber %s: %s", s->pattern, e.msg);
		evbuffer_free(out);
		bus_sub_schedule(s, BUS_PUMP_RETRY_MS);
		return;
	}
	b->stats.streamed += o.n;
	if (o.n)
		sdk_reply_stream_chunk(s->req, out);
	evbuffer_free(out);
	s->next = next;
	if (s->next >= bus_store_next_seq(b->store))
		s->live = true;
	else
		bus_sub_schedule(s, 0);
}

static void bus_sub_heartbeat(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	bus_wire_heartbeat(((struct bus_sub *)arg)->req);
}

/* The first offset wanted: Last-Event-ID + 1, else `from`. Answers 400 and
 * returns -1 when either is malformed. */
static int bus_sub_start(sdk_req *req, bus *b, int64_t *next)
{
	enum bus_from from;
	int64_t n = 0;
	if (bus_sub_from(req, &from, &n) < 0)
		return -1;
	*next = from == BUS_FROM_SEQ ? n : from == BUS_FROM_EARLIEST ? 0 : bus_store_next_seq(b->store);
	return 0;
}

static void bus_sub_greet(struct bus_sub *s)
{
	struct evbuffer *out = evbuffer_new();
	if (!out)
		return;
	/* The comment makes the headers and a first byte reach the client at
	 * once; retry is the reconnect delay EventSource clients use. */
	evbuffer_add_printf(out, "retry: 1000\n: subscribed to %s from offset %" PRId64 "\n\n",
			    s->pattern, s->next);
	sdk_reply_stream_chunk(s->req, out);
	evbuffer_free(out);
}

void bus_on_subscribe(sdk_req *req, void *ctx)
{
	bus *b = ((sdk_kernel *)ctx)->state;
	const char *pattern = sdk_req_query(req, "subject");
	const char *why = bus_pattern_check(pattern);
	unsigned long long hb;
	int64_t next;
	if (why) {
		sdk_reply_error(req, 400, "bad_subject", "subject %s", pattern ? why : "is required");
		return;
	}
	if (sdk_req_query_uint(req, "heartbeat_ms", BUS_HEARTBEAT_MIN_MS, BUS_HEARTBEAT_MAX_MS,
			       BUS_HEARTBEAT_DEFAULT_MS, &hb) < 0 ||
	    bus_sub_start(req, b, &next) < 0)
		return;
	if (b->draining || b->n_subs >= BUS_SUBS_MAX) {
		sdk_req_add_header(req, "Retry-After", "1");
		sdk_reply_error(req, 503, b->draining ? "draining" : "too_many_subscribers",
				"no new subscriptions now");
		return;
	}
	struct bus_sub *s = calloc(1, sizeof *s);
	if (s) {
		s->pump = evtimer_new(b->k->base, bus_sub_pump, s);
		s->heartbeat = event_new(b->k->base, -1, EV_PERSIST, bus_sub_heartbeat, s);
	}
	if (!s || !s->pump || !s->heartbeat) {
		if (s && s->pump)
			event_free(s->pump);
		if (s && s->heartbeat)
			event_free(s->heartbeat);
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
	sdk_reply_stream_start(req, 200, "text/event-stream", bus_sub_on_close, s);
	bus_sub_greet(s);
	struct timeval tv = { (time_t)(hb / 1000), (suseconds_t)(hb % 1000) * 1000 };
	event_add(s->heartbeat, &tv);
	if (s->next >= bus_store_next_seq(b->store))
		s->live = true;
	else
		bus_sub_schedule(s, 0);
}

void bus_stream_publish(bus *b, const bus_msg *msgs, size_t n)
{
	if (n == 0 || LIST_EMPTY(&b->subs))
		return;
	struct evbuffer *out = evbuffer_new();
	if (!out) {
		bus_stream_kick(b); /* they catch up from SQLite instead */
		return;
	}
	struct bus_sub *s;
	LIST_FOREACH (s, &b->subs, link) {
		if (!s->live)
			continue;
		/* A live subscriber has seen everything before this batch; if not
		 * (appends outside a batch), or if it is backed up, it catches up. */
		if (s->next != msgs[0].seq || bus_sub_backlog(s) > BUS_SUB_BACKLOG_MAX) {
			s->live = false;
			bus_sub_schedule(s, s->next != msgs[0].seq ? 0 : BUS_PUMP_RETRY_MS);
			continue;
		}
		int bad = 0;
		size_t sent = 0;
		for (size_t i = 0; i < n && !bad; i++) {
			if (!bus_pattern_match(s->pattern, msgs[i].subject))
				continue;
			bad = bus_wire_event(out, &msgs[i]) < 0;
			sent++;
		}
		if (bad) {
			evbuffer_drain(out, evbuffer_get_length(out));
			s->live = false;
			bus_sub_schedule(s, BUS_PUMP_RETRY_MS);
			continue;
		}
		if (sent) {
			b->stats.streamed += sent;
			sdk_reply_stream_chunk(s->req, out);
		}
		s->next = msgs[n - 1].seq + 1;
	}
	evbuffer_free(out);
}

void bus_stream_kick(bus *b)
{
	struct bus_sub *s;
	int64_t end = bus_store_next_seq(b->store);
	LIST_FOREACH (s, &b->subs, link) {
		if (s->next < end) {
			s->live = false;
			bus_sub_schedule(s, 0);
		}
	}
}

void bus_stream_end_all(bus *b)
{
	while (!LIST_EMPTY(&b->subs))
		bus_sub_free(LIST_FIRST(&b->subs));
}

int bus_stream_init(bus *b)
{
	LIST_INIT(&b->subs);
	return 0;
}
