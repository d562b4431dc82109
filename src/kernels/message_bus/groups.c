/* Consumer groups over HTTP: at-least-once delivery with long polls.
 *
 * GET /groups/G/poll?subject=PATTERN&max=N&wait_ms=W answers at once when
 * it has messages (or W is 0), else waits up to W ms (at most 30 s) and
 * answers as soon as a commit brings something it matches, a delivery's
 * visibility timeout runs out, or the time is up (then with none). A
 * waiting poll is not re-run on a clock: commits wake the polls whose
 * pattern they match, and a timer is set for the earliest redelivery.
 *
 * The first poll of a group creates it and must name its subject pattern
 * (and may give from=earliest|latest|OFFSET, default earliest); later
 * polls may leave the subject out, and one naming another pattern gets a
 * 409. visibility_ms and max_deliveries, when given, become the group's
 * settings from that poll on (defaults 30 s and 5).
 *
 * A waiting poll whose client has gone is dropped before it can take
 * anything (checked before every try and swept every second), so messages
 * do not sit out a visibility timeout for a client that gave up. Through
 * the gateway a poll must also fit in its attempt timeout (10 s). */
#include "sdk/clock.h"
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
#include <sys/socket.h>

#define BUS_POLL_DEFAULT 10u
#define BUS_POLL_MAX 1000u
#define BUS_POLL_BUDGET 10000u /* new rows a poll looks at, matching or not */
#define BUS_POLLERS_MAX 4096u
#define BUS_ACK_MAX 10000u
#define BUS_POLL_SWEEP_MS 1000

struct bus_poller {
	bus *bus;
	sdk_req *req;
	const char *group;     /* borrowed from req */
	bus_poll_opts opts;    /* for the tries after the first: no pattern */
	char pattern[BUS_SUBJECT_MAX + 1]; /* the group's, for wake-ups */
	int64_t deadline;      /* monotonic ms */
	size_t dead_lettered;  /* by this poll's earlier tries, reported at the end */
	bool woken;
	struct event *timer;
	TAILQ_ENTRY(bus_poller) link;
};

struct bus_poll_out {
	struct evbuffer *msgs;
	size_t n;
};

static int bus_poll_emit(const bus_msg *m, int deliveries, void *arg)
{
	struct bus_poll_out *po = arg;
	if ((po->n && evbuffer_add(po->msgs, ",", 1)) || bus_wire_msg(po->msgs, m, deliveries) < 0)
		return -1;
	po->n++;
	return 0;
}

static void bus_poll_reply(sdk_req *req, const char *group, struct evbuffer *msgs,
			   size_t dead_lettered)
{
	struct evbuffer *out = evbuffer_new();
	int bad = !out || evbuffer_add(out, "{\"group\":", 9) || bus_wire_string(out, group) ||
		  evbuffer_add(out, ",\"messages\":[", 13) ||
		  (msgs && evbuffer_add_buffer(out, msgs)) ||
		  evbuffer_add_printf(out, "],\"dead_lettered\":%zu}\n", dead_lettered) < 0;
	if (bad)
		sdk_reply_error(req, 500, "internal", "out of memory");
	else
		sdk_reply_raw(req, 200, "application/json", out);
	if (out)
		evbuffer_free(out);
}

/* One poll. Returns true when it answered the request (messages, an error,
 * or nothing when `final`), false when the caller should wait. *dead
 * accumulates the dead letters of every try, for the answer. */
static bool bus_poll_try(bus *b, sdk_req *req, const char *group, const bus_poll_opts *o,
			 bool final, bus_poll_result *res, size_t *dead)
{
	struct bus_poll_out po = { evbuffer_new(), 0 };
	sdk_err e = { "out of memory" };
	int rc = po.msgs ? bus_group_poll(b->store, group, o, sdk_wall_ms(), bus_poll_emit, &po,
					  res, &e) :
			   SDK_EIO;
	if (rc) {
		if (po.msgs)
			evbuffer_free(po.msgs);
		sdk_reply_status(req, rc, &e);
		return true;
	}
	b->stats.polled += res->delivered;
	b->stats.dead_lettered += res->dead_lettered;
	*dead += res->dead_lettered;
	if (res->appended) {
		/* Dead letters are new messages: subscribers and other groups may
		 * want them. */
		bus_stream_kick(b);
		bus_groups_wake(b, NULL, 0);
	}
	bool answer = res->delivered > 0 || final;
	if (answer)
		bus_poll_reply(req, group, po.msgs, *dead);
	evbuffer_free(po.msgs);
	return answer;
}

/* Whether a waiting poll's client has gone (closed or reset). A poll
 * whose client has gone must not take messages: they would sit out a
 * visibility timeout for nobody. libevent does not read from a connection
 * whose request is unanswered, so it never notices; a peek does (the same
 * test the gateway makes of its idle connections). A client that
 * half-closes after its request counts as gone. */
static bool bus_poller_gone(struct bus_poller *p) { return sdk_req_closed(p->req); }

static void bus_sweep_arm(bus *b)
{
	struct timeval tv = { BUS_POLL_SWEEP_MS / 1000, (BUS_POLL_SWEEP_MS % 1000) * 1000 };
	evtimer_add(b->sweep_ev, &tv);
}

static void bus_poller_free(struct bus_poller *p)
{
	TAILQ_REMOVE(&p->bus->pollers, p, link);
	p->bus->n_pollers--;
	event_free(p->timer);
	free(p);
}

/* Sets the poller's timer: its deadline, the group's next redelivery, or
 * at once when the last poll stopped short of the log's end. */
static void bus_poller_arm(struct bus_poller *p, const bus_poll_result *res)
{
	int64_t ms = p->deadline - sdk_mono_ms();
	if (res->next_due_ms > 0) {
		int64_t due = res->next_due_ms - sdk_wall_ms() + 1;
		if (due < ms)
			ms = due;
	}
	if (res->more || ms < 0)
		ms = 0;
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
	evtimer_add(p->timer, &tv);
}

/* Ends a poll whose client has gone: the empty answer only frees it. */
static void bus_poller_drop(struct bus_poller *p)
{
	p->bus->stats.polls_abandoned++;
	bus_poll_reply(p->req, p->group, NULL, p->dead_lettered);
	bus_poller_free(p);
}

static void bus_poller_run(struct bus_poller *p)
{
	bus_poll_result res;
	bool final = sdk_mono_ms() >= p->deadline || p->bus->draining;
	if (bus_poller_gone(p)) {
		bus_poller_drop(p);
		return;
	}
	if (bus_poll_try(p->bus, p->req, p->group, &p->opts, final, &res, &p->dead_lettered)) {
		bus_poller_free(p);
		return;
	}
	snprintf(p->pattern, sizeof p->pattern, "%s", res.pattern);
	bus_poller_arm(p, &res);
}

/* Every BUS_POLL_SWEEP_MS while polls wait: lets go of those whose
 * clients have gone, so they do not hold memory until their deadline. */
static void bus_on_sweep(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	bus *b = arg;
	struct bus_poller *p, *next;
	for (p = TAILQ_FIRST(&b->pollers); p; p = next) {
		next = TAILQ_NEXT(p, link);
		if (bus_poller_gone(p))
			bus_poller_drop(p);
	}
	if (!TAILQ_EMPTY(&b->pollers))
		bus_sweep_arm(b);
}

static void bus_poller_on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	bus_poller_run(arg);
}

static void bus_on_wake(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	bus *b = arg;
	struct bus_poller *p, *next;
	/* A run may answer and free its own poller, never another. */
	for (p = TAILQ_FIRST(&b->pollers); p; p = next) {
		next = TAILQ_NEXT(p, link);
		if (!p->woken)
			continue;
		p->woken = false;
		evtimer_del(p->timer);
		bus_poller_run(p);
	}
}

void bus_groups_wake(bus *b, const bus_msg *msgs, size_t n)
{
	struct bus_poller *p;
	bool any = false;
	TAILQ_FOREACH (p, &b->pollers, link) {
		for (size_t i = 0; !p->woken && i < n; i++)
			p->woken = bus_pattern_match(p->pattern, msgs[i].subject);
		if (!msgs)
			p->woken = true;
		any = any || p->woken;
	}
	if (any && !evtimer_pending(b->wake_ev, NULL)) {
		struct timeval now = { 0, 0 };
		evtimer_add(b->wake_ev, &now);
	}
}

void bus_groups_answer_all(bus *b)
{
	struct bus_poller *p;
	while ((p = TAILQ_FIRST(&b->pollers))) {
		bus_poll_reply(p->req, p->group, NULL, p->dead_lettered);
		bus_poller_free(p);
	}
}

static int bus_poll_from(sdk_req *req, bus_poll_opts *o)
{
	return bus_query_from(req, BUS_FROM_EARLIEST, &o->from, &o->from_seq);
}

/* Fills the poll options from the query; answers 400 and returns -1 when
 * one is bad. */
static int bus_poll_opts_parse(sdk_req *req, bus_poll_opts *o, unsigned long long *wait_ms)
{
	unsigned long long max, vis, deliveries;
	const char *pattern = sdk_req_query(req, "subject");
	const char *why = pattern ? bus_pattern_check(pattern) : NULL;
	if (why) {
		sdk_reply_error(req, 400, "bad_subject", "subject %s", why);
		return -1;
	}
	if (sdk_req_query_uint(req, "max", 1, BUS_POLL_MAX, BUS_POLL_DEFAULT, &max) < 0 ||
	    sdk_req_query_uint(req, "wait_ms", 0, BUS_WAIT_MAX_MS, 0, wait_ms) < 0 ||
	    sdk_req_query_uint(req, "visibility_ms", BUS_VISIBILITY_MIN_MS, BUS_VISIBILITY_MAX_MS, 0,
			       &vis) < 0 ||
	    sdk_req_query_uint(req, "max_deliveries", 1, BUS_DELIVERIES_MAX, 0, &deliveries) < 0 ||
	    bus_poll_from(req, o) < 0)
		return -1;
	o->pattern = pattern;
	o->max = (size_t)max;
	o->budget = BUS_POLL_BUDGET;
	o->visibility_ms = (int64_t)vis;
	o->max_deliveries = (int)deliveries;
	return 0;
}

void bus_on_poll(sdk_req *req, void *ctx)
{
	bus *b = ((sdk_kernel *)ctx)->state;
	const char *group = bus_group_param(req);
	bus_poll_opts o = { 0 };
	unsigned long long wait_ms;
	if (!group || bus_poll_opts_parse(req, &o, &wait_ms) < 0)
		return;
	bool final = wait_ms == 0 || b->draining || b->n_pollers >= BUS_POLLERS_MAX;
	bus_poll_result res;
	size_t dead = 0;
	if (bus_poll_try(b, req, group, &o, final, &res, &dead))
		return;
	struct bus_poller *p = calloc(1, sizeof *p);
	struct event *t = p ? evtimer_new(b->k->base, bus_poller_on_timer, p) : NULL;
	if (!t) {
		free(p);
		bus_poll_reply(req, group, NULL, dead);
		return;
	}
	*p = (struct bus_poller){ .bus = b, .req = req, .group = group, .opts = o,
				  .deadline = sdk_mono_ms() + (int64_t)wait_ms,
				  .dead_lettered = dead, .timer = t };
	snprintf(p->pattern, sizeof p->pattern, "%s", res.pattern);
	/* The first try created the group if need be and applied its settings;
	 * later tries only read it (a group deleted meanwhile gets a 404, not
	 * re-created from the start of the log). */
	p->opts.pattern = NULL;
	TAILQ_INSERT_TAIL(&b->pollers, p, link);
	b->n_pollers++;
	bus_poller_arm(p, &res);
	if (!evtimer_pending(b->sweep_ev, NULL))
		bus_sweep_arm(b);
}

/* Reads {"offsets":[N...], "receipts":["N-D"...]} into seqs/deliveries
 * (0 for a bare offset). Answers 400 and returns -1 when malformed. */
static int bus_ack_parse(sdk_req *req, json_t *body, int64_t **seqs, int **dels, size_t *n)
{
	json_t *offs = json_object_get(body, "offsets"), *recs = json_object_get(body, "receipts");
	if ((offs && !json_is_array(offs)) || (recs && !json_is_array(recs)) ||
	    json_array_size(offs) + json_array_size(recs) == 0 ||
	    json_array_size(offs) + json_array_size(recs) > BUS_ACK_MAX) {
		sdk_reply_error(req, 400, "invalid",
				"offsets and/or receipts: arrays with 1 to %u entries in all",
				BUS_ACK_MAX);
		return -1;
	}
	*n = json_array_size(offs) + json_array_size(recs);
	*seqs = calloc(*n, sizeof **seqs);
	*dels = calloc(*n, sizeof **dels);
	if (!*seqs || !*dels) {
		sdk_reply_error(req, 503, "out_of_memory", "cannot ack now");
		return -1;
	}
	size_t i, k = 0;
	json_t *v;
	json_array_foreach (offs, i, v) {
		if (!json_is_integer(v) || json_integer_value(v) < 1) {
			sdk_reply_error(req, 400, "invalid", "offsets[%zu] is not an offset", i);
			return -1;
		}
		(*seqs)[k++] = json_integer_value(v);
	}
	json_array_foreach (recs, i, v) {
		if (bus_receipt_parse(json_string_value(v), &(*seqs)[k], &(*dels)[k]) < 0) {
			sdk_reply_error(req, 400, "invalid", "receipts[%zu] is not a receipt", i);
			return -1;
		}
		k++;
	}
	return 0;
}

static json_t *bus_ack_report(json_t *body, const bool *acked, size_t *n_acked)
{
	json_t *offs = json_object_get(body, "offsets"), *recs = json_object_get(body, "receipts");
	json_t *missing = json_array(), *stale = json_array();
	size_t n_offs = json_array_size(offs), i;
	json_t *v;
	*n_acked = 0;
	json_array_foreach (offs, i, v) {
		if (acked[i])
			(*n_acked)++;
		else
			json_array_append(missing, v);
	}
	json_array_foreach (recs, i, v) {
		if (acked[n_offs + i])
			(*n_acked)++;
		else
			json_array_append(stale, v);
	}
	return json_pack("{s:I, s:o, s:o}", "acked", (json_int_t)*n_acked, "not_found", missing,
			 "stale", stale);
}

void bus_on_ack(sdk_req *req, void *ctx)
{
	bus *b = ((sdk_kernel *)ctx)->state;
	const char *group = bus_group_param(req);
	json_t *body = group ? sdk_req_json(req, true) : NULL;
	int64_t *seqs = NULL;
	int *dels = NULL;
	bool *acked = NULL;
	size_t n;
	if (!body || bus_ack_parse(req, body, &seqs, &dels, &n) < 0)
		goto out;
	acked = calloc(n, sizeof *acked);
	sdk_err e = { "out of memory" };
	int rc = acked ? bus_group_ack(b->store, group, seqs, dels, n, acked, &e) : SDK_EIO;
	if (rc) {
		sdk_reply_status(req, rc, &e);
		goto out;
	}
	size_t n_acked;
	sdk_reply_json(req, 200, bus_ack_report(body, acked, &n_acked));
	b->stats.acked += n_acked;
out:
	free(seqs);
	free(dels);
	free(acked);
}

void bus_on_group_get(sdk_req *req, void *ctx)
{
	bus *b = ((sdk_kernel *)ctx)->state;
	const char *group = bus_group_param(req);
	json_t *out;
	sdk_err e;
	if (!group)
		return;
	int rc = bus_group_get(b->store, group, &out, &e);
	if (rc)
		sdk_reply_status(req, rc, &e);
	else
		sdk_reply_json(req, 200, out);
}

void bus_on_group_list(sdk_req *req, void *ctx)
{
	bus *b = ((sdk_kernel *)ctx)->state;
	json_t *arr;
	sdk_err e;
	int rc = bus_group_list(b->store, &arr, &e);
	if (rc)
		sdk_reply_status(req, rc, &e);
	else
		sdk_reply_json(req, 200, json_pack("{s:o}", "groups", arr));
}

void bus_on_group_delete(sdk_req *req, void *ctx)
{
	bus *b = ((sdk_kernel *)ctx)->state;
	const char *group = bus_group_param(req);
	sdk_err e;
	if (!group)
		return;
	int rc = bus_group_delete(b->store, group, &e);
	if (rc)
		sdk_reply_status(req, rc, &e);
	else
		sdk_reply_json(req, 200, json_pack("{s:s, s:b}", "group", group, "deleted", 1));
}

int bus_groups_init(bus *b)
{
	TAILQ_INIT(&b->pollers);
	b->wake_ev = evtimer_new(b->k->base, bus_on_wake, b);
	b->sweep_ev = evtimer_new(b->k->base, bus_on_sweep, b);
	return b->wake_ev && b->sweep_ev ? 0 : -1;
}

void bus_groups_free(bus *b)
{
	if (b->wake_ev)
		event_free(b->wake_ev);
	if (b->sweep_ev)
		event_free(b->sweep_ev);
	b->wake_ev = b->sweep_ev = NULL;
}
