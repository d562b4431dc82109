/* Consumer groups on JetStream: the same routes and answers as groups.c.
 *
 * A group is a durable pull consumer of the stream: its name (the group's,
 * with bytes NATS does not allow in a name written ~XX), FilterSubject
 * PREFIX_BUS.PATTERN, AckPolicy explicit, AckWait the group's
 * visibility_ms, MaxDeliver its max_deliveries + 1, replicated as the
 * stream is. A poll fetches from it on the wait pool, in slices of at most
 * BUS_JS_SLICE_MS so a stopping kernel is not held; the messages handed
 * out are kept (as received, with their reply subjects) in the group's
 * table of deliveries until acked, so POST /ack acks exactly the delivery
 * a receipt names (natsMsg_AckSync: answered only once JetStream has it).
 *
 * Dead letters: JetStream stops after MaxDeliver deliveries and only says
 * so in an advisory. Here the (max_deliveries + 1)th delivery, the moment
 * the embedded engine dead-letters ("still unacked when it comes due
 * again"), is not handed out: it is published to $dlq.GROUP.SUBJECT with
 * the same payload, key and headers plus x-dlq-group, x-dlq-subject,
 * x-dlq-offset and x-dlq-deliveries, under a Nats-Msg-Id of its own (so
 * doing it twice stores it once), and then terminated in the group. */
#include "kernels/message_bus/js.h"

#include "kernels/message_bus/bus.h" /* BUS_WAIT_MAX_MS, the kernel's long_poll_max_ms */
#include "kernels/message_bus/subject.h"
#include "kernels/message_bus/wire.h"
#include "sdk/clock.h"
#include "sdk/log.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BUS_JS_POLL_DEFAULT 10u
#define BUS_JS_POLL_MAX 1000u
#define BUS_JS_POLLS_MAX 1024u
#define BUS_JS_GROUPS_MAX 4096u
#define BUS_JS_ACK_MAX 10000u
#define BUS_JS_INFLIGHT_MAX 100000u  /* deliveries a group keeps for acks */
#define BUS_JS_SLICE_MS 250
#define BUS_JS_POLL_NOWAIT_MS 100    /* wait_ms=0: JetStream still has to answer */
#define BUS_JS_MAX_ACK_PENDING 100000
#define BUS_JS_CONSUMER_MAX (3 * BUS_TOKEN_MAX + 1)

struct bus_js_delivery {
	int64_t seq;
	int deliveries;
	natsMsg *msg;
};

/* Lives until the kernel closes (a deleted group is only emptied), so a
 * pool job may keep a pointer to it. */
struct bus_js_group {
	char name[BUS_TOKEN_MAX + 1];
	char consumer[BUS_JS_CONSUMER_MAX];
	/* Under the bus's groups_mu: */
	bool loaded;           /* the consumer exists with these settings */
	char pattern[BUS_SUBJECT_MAX + 1];
	int64_t visibility_ms;
	int max_deliveries;
	int64_t created_ms;
	/* Under fetch_mu: the pull subscription (NULL: not bound, or deleted). */
	pthread_mutex_t fetch_mu;
	natsSubscription *psub;
	/* Under table_mu: deliveries not yet acked. */
	pthread_mutex_t table_mu;
	struct bus_js_delivery *tab;
	size_t n, cap;
	LIST_ENTRY(bus_js_group) link;
};

/* ---------------------------------------------------------------- names */

static bool bus_js_name_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

static void bus_js_consumer_name(const char *group, char *out, size_t len)
{
	size_t k = 0;
	for (const char *p = group; *p && k + 4 < len; p++) {
		if (bus_js_name_ok(*p))
			out[k++] = *p;
		else
			k += (size_t)snprintf(out + k, len - k, "~%02x", (unsigned char)*p);
	}
	out[k] = '\0';
}

/* The group a durable consumer name stands for; -1 when it is not one. */
static int bus_js_group_name(const char *consumer, char *out, size_t len)
{
	size_t k = 0;
	for (const char *p = consumer; *p; p++) {
		if (k + 1 >= len)
			return -1;
		if (*p == '~') {
			unsigned v;
			if (sscanf(p + 1, "%2x", &v) != 1 || !p[1] || !p[2])
				return -1;
			out[k++] = (char)v;
			p += 2;
		} else {
			out[k++] = *p;
		}
	}
	out[k] = '\0';
	return bus_token_check(out) ? -1 : 0;
}

/* ------------------------------------------------------------- registry */

/* Settings read from (or written to) a consumer; groups_mu held. */
static void bus_js_group_set(bus_js *b, struct bus_js_group *g, const jsConsumerInfo *ci)
{
	const jsConsumerConfig *c = ci->Config;
	const char *f = c && c->FilterSubject ? c->FilterSubject : "";
	snprintf(g->pattern, sizeof g->pattern, "%s",
		 strncmp(f, b->prefix, b->prefix_len) ? f : f + b->prefix_len);
	g->visibility_ms = c ? c->AckWait / 1000000 : BUS_VISIBILITY_DEFAULT_MS;
	g->max_deliveries = c && c->MaxDeliver > 1 ? (int)(c->MaxDeliver - 1) : BUS_DELIVERIES_DEFAULT;
	g->created_ms = ci->Created / 1000000;
	g->loaded = true;
}

static void bus_js_group_unbind(bus_js *b, struct bus_js_group *g)
{
	pthread_mutex_lock(&g->fetch_mu);
	if (g->psub) {
		b->N.natsSubscription_Unsubscribe(g->psub);
		b->N.natsSubscription_Destroy(g->psub);
		g->psub = NULL;
	}
	pthread_mutex_unlock(&g->fetch_mu);
	pthread_mutex_lock(&g->table_mu);
	for (size_t i = 0; i < g->n; i++)
		b->N.natsMsg_Destroy(g->tab[i].msg);
	g->n = 0;
	pthread_mutex_unlock(&g->table_mu);
}

typedef struct bus_js_group_want {
	const char *pattern; /* NULL: the group must exist */
	enum bus_from from;
	int64_t from_seq;
	int64_t visibility_ms; /* 0: keep */
	int max_deliveries;    /* 0: keep */
} bus_js_group_want;

/* The group, made or bound as needed (a pool thread). 0, or a negative
 * sdk_status with why: SDK_ENOTFOUND, SDK_ECONFLICT, SDK_EIO (JetStream did
 * not answer), SDK_EQUOTA. */
static int bus_js_group_open(bus_js *b, const char *name, const bus_js_group_want *w,
			     struct bus_js_group **out, sdk_err *why)
{
	struct bus_js_group *g;
	jsConsumerInfo *ci = NULL;
	jsErrCode jerr = 0;
	natsStatus s;
	int rc = 0;
	pthread_mutex_lock(&b->groups_mu);
	LIST_FOREACH (g, &b->groups, link)
		if (!strcmp(g->name, name))
			break;
	if (!g) {
		if (b->n_groups >= BUS_JS_GROUPS_MAX || !(g = calloc(1, sizeof *g))) {
			snprintf(why->msg, sizeof why->msg, "too many groups (%u)", BUS_JS_GROUPS_MAX);
			rc = SDK_EQUOTA;
			goto out;
		}
		snprintf(g->name, sizeof g->name, "%s", name);
		bus_js_consumer_name(name, g->consumer, sizeof g->consumer);
		pthread_mutex_init(&g->fetch_mu, NULL);
		pthread_mutex_init(&g->table_mu, NULL);
		LIST_INSERT_HEAD(&b->groups, g, link);
		b->n_groups++;
	}
	if (!g->loaded) {
		s = b->N.js_GetConsumerInfo(&ci, b->js, b->stream, g->consumer, NULL, &jerr);
		if (s == NATS_OK) {
			bus_js_group_set(b, g, ci);
		} else if (jerr != JSConsumerNotFoundErr) {
			sdk_nats_why(&b->N, s, jerr, why->msg, sizeof why->msg);
			rc = SDK_EIO;
			goto out;
		} else if (!w || !w->pattern) {
			snprintf(why->msg, sizeof why->msg, "no group %s (its first poll names its subject)", name);
			rc = SDK_ENOTFOUND;
			goto out;
		} else {
			char filter[BUS_SUBJECT_MAX + sizeof b->prefix];
			jsConsumerConfig cc;
			bus_js_subject(b, w->pattern, filter, sizeof filter);
			b->N.jsConsumerConfig_Init(&cc);
			cc.Durable = g->consumer;
			cc.FilterSubject = filter;
			cc.AckPolicy = js_AckExplicit;
			cc.AckWait = (w->visibility_ms ? w->visibility_ms : BUS_VISIBILITY_DEFAULT_MS) *
				     1000000LL;
			cc.MaxDeliver = (w->max_deliveries ? w->max_deliveries : BUS_DELIVERIES_DEFAULT) + 1;
			cc.MaxAckPending = BUS_JS_MAX_ACK_PENDING;
			cc.DeliverPolicy = w->from == BUS_FROM_LATEST ? js_DeliverNew :
					   w->from == BUS_FROM_SEQ    ? js_DeliverByStartSequence :
									js_DeliverAll;
			if (w->from == BUS_FROM_SEQ)
				cc.OptStartSeq = (uint64_t)(w->from_seq > 0 ? w->from_seq : 1);
			jerr = 0;
			s = b->N.js_AddConsumer(&ci, b->js, b->stream, &cc, NULL, &jerr);
			if (s != NATS_OK) {
				sdk_nats_why(&b->N, s, jerr, why->msg, sizeof why->msg);
				rc = SDK_EIO;
				goto out;
			}
			bus_js_group_set(b, g, ci);
		}
		if (ci)
			b->N.jsConsumerInfo_Destroy(ci);
		ci = NULL;
	}
	if (w && w->pattern && strcmp(w->pattern, g->pattern) != 0) {
		snprintf(why->msg, sizeof why->msg, "group %s consumes %.80s, not %.80s", name, g->pattern, w->pattern);
		rc = SDK_ECONFLICT;
		goto out;
	}
	if (w && ((w->visibility_ms && w->visibility_ms != g->visibility_ms) ||
		  (w->max_deliveries && w->max_deliveries != g->max_deliveries))) {
		s = b->N.js_GetConsumerInfo(&ci, b->js, b->stream, g->consumer, NULL, &jerr);
		if (s == NATS_OK) {
			jsConsumerConfig cc = *ci->Config;
			if (w->visibility_ms)
				cc.AckWait = w->visibility_ms * 1000000LL;
			if (w->max_deliveries)
				cc.MaxDeliver = w->max_deliveries + 1;
			jsConsumerInfo *ci2 = NULL;
			s = b->N.js_UpdateConsumer(&ci2, b->js, b->stream, &cc, NULL, &jerr);
			if (s == NATS_OK) {
				bus_js_group_set(b, g, ci2);
				b->N.jsConsumerInfo_Destroy(ci2);
			}
		}
		if (s != NATS_OK) {
			sdk_nats_why(&b->N, s, jerr, why->msg, sizeof why->msg);
			rc = SDK_EIO;
			goto out;
		}
	}
	pthread_mutex_lock(&g->fetch_mu);
	if (!g->psub) {
		char filter[BUS_SUBJECT_MAX + sizeof b->prefix];
		jsSubOptions so;
		bus_js_subject(b, g->pattern, filter, sizeof filter);
		b->N.jsSubOptions_Init(&so);
		so.Stream = b->stream;
		so.Consumer = g->consumer;
		jerr = 0;
		s = b->N.js_PullSubscribe(&g->psub, b->js, filter, g->consumer, NULL, &so, &jerr);
		if (s != NATS_OK) {
			g->psub = NULL;
			sdk_nats_why(&b->N, s, jerr, why->msg, sizeof why->msg);
			rc = SDK_EIO;
		}
	}
	pthread_mutex_unlock(&g->fetch_mu);
out:
	if (ci)
		b->N.jsConsumerInfo_Destroy(ci);
	pthread_mutex_unlock(&b->groups_mu);
	*out = rc ? NULL : g;
	return rc;
}

/* ------------------------------------------------------------------ poll */

struct bus_js_poll {
	bus_js *b;
	sdk_req *req;
	char group[BUS_TOKEN_MAX + 1];
	char pattern[BUS_SUBJECT_MAX + 1];
	bus_js_group_want want;
	size_t max;
	int64_t deadline; /* monotonic ms */
	bool ran;
	int rc;
	char why[256];
	struct evbuffer *msgs; /* the messages' JSON, comma-separated */
	size_t n, dead_lettered;
};

/* Keeps a delivery for its ack; replaces an earlier one of the same seq. */
static void bus_js_table_put(bus_js *b, struct bus_js_group *g, int64_t seq, int deliveries,
			     natsMsg *msg)
{
	pthread_mutex_lock(&g->table_mu);
	size_t i;
	for (i = 0; i < g->n && g->tab[i].seq != seq; i++)
		;
	if (i < g->n) {
		b->N.natsMsg_Destroy(g->tab[i].msg);
	} else if (g->n == g->cap) {
		size_t cap = g->cap ? 2 * g->cap : 64;
		struct bus_js_delivery *t =
			cap <= BUS_JS_INFLIGHT_MAX ? realloc(g->tab, cap * sizeof *t) : NULL;
		if (!t) { /* not ackable here: JetStream delivers it again */
			pthread_mutex_unlock(&g->table_mu);
			b->N.natsMsg_Destroy(msg);
			return;
		}
		g->tab = t;
		g->cap = cap;
	}
	if (i == g->n)
		g->n++;
	g->tab[i] = (struct bus_js_delivery){ seq, deliveries, msg };
	pthread_mutex_unlock(&g->table_mu);
}

/* The dead letter of a message delivered once too often; 0 when stored. */
static int bus_js_dead_letter(bus_js *b, struct bus_js_group *g, const bus_msg *m, int deliveries)
{
	char subject[2 * BUS_SUBJECT_MAX + 64], id[256], ts[24], num[24];
	snprintf(subject, sizeof subject, "%s%s.%s.%s", b->prefix, BUS_DLQ_PREFIX, g->name,
		 m->subject);
	json_t *h = m->headers ? json_loads(m->headers, 0, NULL) : json_object();
	if (!json_is_object(h)) {
		json_decref(h);
		h = json_object();
	}
	snprintf(num, sizeof num, "%" PRId64, m->seq);
	json_object_set_new(h, "x-dlq-group", json_string(g->name));
	json_object_set_new(h, "x-dlq-subject", json_string(m->subject));
	json_object_set_new(h, "x-dlq-offset", json_string(num));
	snprintf(num, sizeof num, "%d", deliveries);
	json_object_set_new(h, "x-dlq-deliveries", json_string(num));
	char *headers = json_dumps(h, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(h);
	snprintf(id, sizeof id, "dlq-%s-%" PRId64, g->consumer, m->seq);
	snprintf(ts, sizeof ts, "%" PRId64, sdk_wall_ms());
	natsMsg *dm = NULL;
	jsPubAck *pa = NULL;
	jsErrCode jerr = 0;
	int rc = -1;
	if (headers &&
	    b->N.natsMsg_Create(&dm, subject, NULL, m->payload, (int)strlen(m->payload)) == NATS_OK &&
	    b->N.natsMsgHeader_Set(dm, "Nats-Msg-Id", id) == NATS_OK &&
	    b->N.natsMsgHeader_Set(dm, BUS_JS_HDR_TS, ts) == NATS_OK &&
	    (!m->key || b->N.natsMsgHeader_Set(dm, BUS_JS_HDR_KEY, m->key) == NATS_OK) &&
	    b->N.natsMsgHeader_Set(dm, BUS_JS_HDR_HEADERS, headers) == NATS_OK &&
	    b->N.js_PublishMsg(&pa, b->js, dm, NULL, &jerr) == NATS_OK)
		rc = 0;
	if (pa)
		b->N.jsPubAck_Destroy(pa);
	b->N.natsMsg_Destroy(dm);
	free(headers);
	return rc;
}

/* One fetched message: handed out, dead-lettered or skipped. Takes msg. */
static void bus_js_poll_msg(struct bus_js_poll *p, struct bus_js_group *g, natsMsg *msg)
{
	bus_js *b = p->b;
	bus_msg m;
	uint64_t deliveries = 0;
	if (bus_js_msg_of(b, msg, &m, &deliveries) < 0 || !bus_pattern_match(g->pattern, m.subject)) {
		/* Not the group's (a '$' subject under a leading wildcard). */
		b->N.natsMsg_Term(msg, NULL);
		b->N.natsMsg_Destroy(msg);
		return;
	}
	if (deliveries > (uint64_t)g->max_deliveries) {
		if (bus_js_dead_letter(b, g, &m, (int)deliveries - 1) == 0) {
			b->N.natsMsg_Term(msg, NULL);
			p->dead_lettered++;
		}
		b->N.natsMsg_Destroy(msg); /* not stored: it comes again after AckWait */
		return;
	}
	if ((p->n && evbuffer_add(p->msgs, ",", 1)) || bus_wire_msg(p->msgs, &m, (int)deliveries) < 0) {
		b->N.natsMsg_Destroy(msg);
		return;
	}
	p->n++;
	bus_js_table_put(b, g, m.seq, (int)deliveries, msg);
}

static void bus_js_poll_work(void *arg)
{
	struct bus_js_poll *p = arg;
	bus_js *b = p->b;
	struct bus_js_group *g;
	p->ran = true;
	sdk_err e = { "" };
	p->rc = bus_js_group_open(b, p->group, &p->want, &g, &e);
	snprintf(p->why, sizeof p->why, "%s", e.msg);
	if (p->rc)
		return;
	snprintf(p->pattern, sizeof p->pattern, "%s", g->pattern);
	for (;;) {
		int64_t left = p->deadline - sdk_mono_ms();
		int64_t slice = left > BUS_JS_SLICE_MS ? BUS_JS_SLICE_MS : left;
		if (slice < BUS_JS_POLL_NOWAIT_MS)
			slice = BUS_JS_POLL_NOWAIT_MS;
		natsMsgList list = { 0 };
		jsErrCode jerr = 0;
		natsStatus s = NATS_OK;
		pthread_mutex_lock(&g->fetch_mu);
		if (!g->psub) {
			pthread_mutex_unlock(&g->fetch_mu);
			snprintf(p->why, sizeof p->why, "group %s was deleted", p->group);
			p->rc = SDK_ENOTFOUND;
			return;
		}
		s = b->N.natsSubscription_Fetch(&list, g->psub, (int)(p->max - p->n), slice, &jerr);
		pthread_mutex_unlock(&g->fetch_mu);
		for (int i = 0; i < list.Count; i++) {
			bus_js_poll_msg(p, g, list.Msgs[i]);
			list.Msgs[i] = NULL; /* taken */
		}
		b->N.natsMsgList_Destroy(&list);
		if (p->n > 0 || atomic_load(&b->stop) || sdk_mono_ms() >= p->deadline)
			return;
		if (s != NATS_OK && s != NATS_TIMEOUT) {
			/* JetStream is electing a leader or a node is gone: not a spin. */
			struct timespec t = { 0, 50 * 1000000L };
			nanosleep(&t, NULL);
		}
	}
}

static void bus_js_poll_done(void *arg)
{
	struct bus_js_poll *p = arg;
	bus_js *b = p->b;
	sdk_err e;
	b->n_polls--;
	if (!p->ran) {
		sdk_reply_error(p->req, 503, "draining", "the bus is stopping");
	} else if (p->rc) {
		snprintf(e.msg, sizeof e.msg, "%s", p->why);
		if (p->rc == SDK_EIO) {
			sdk_req_add_header(p->req, "Retry-After", "1");
			sdk_reply_error(p->req, 503, "jetstream_unavailable", "%s", p->why);
		} else {
			sdk_reply_status(p->req, p->rc, &e);
		}
	} else {
		b->stats.polled += p->n;
		b->stats.dead_lettered += p->dead_lettered;
		struct evbuffer *out = evbuffer_new();
		int bad = !out || evbuffer_add(out, "{\"group\":", 9) ||
			  bus_wire_string(out, p->group) || evbuffer_add(out, ",\"messages\":[", 13) ||
			  evbuffer_add_buffer(out, p->msgs) ||
			  evbuffer_add_printf(out, "],\"dead_lettered\":%zu}\n", p->dead_lettered) < 0;
		if (bad)
			sdk_reply_error(p->req, 500, "internal", "out of memory");
		else
			sdk_reply_raw(p->req, 200, "application/json", out);
		if (out)
			evbuffer_free(out);
	}
	evbuffer_free(p->msgs);
	free(p);
}

static int bus_js_poll_from(sdk_req *req, bus_js_group_want *w)
{
	return bus_query_from(req, BUS_FROM_EARLIEST, &w->from, &w->from_seq);
}

void bus_js_on_poll(sdk_req *req, void *ctx)
{
	bus_js *b = ((sdk_kernel *)ctx)->state;
	const char *group = bus_group_param(req);
	unsigned long long max, wait_ms, vis, deliveries;
	const char *pattern = sdk_req_query(req, "subject");
	const char *why = pattern ? bus_pattern_check(pattern) : NULL;
	bus_js_group_want w = { 0 };
	if (!group)
		return;
	if (why) {
		sdk_reply_error(req, 400, "bad_subject", "subject %s", why);
		return;
	}
	if (sdk_req_query_uint(req, "max", 1, BUS_JS_POLL_MAX, BUS_JS_POLL_DEFAULT, &max) < 0 ||
	    sdk_req_query_uint(req, "wait_ms", 0, BUS_WAIT_MAX_MS, 0, &wait_ms) < 0 ||
	    sdk_req_query_uint(req, "visibility_ms", BUS_VISIBILITY_MIN_MS, BUS_VISIBILITY_MAX_MS, 0,
			       &vis) < 0 ||
	    sdk_req_query_uint(req, "max_deliveries", 1, BUS_DELIVERIES_MAX, 0, &deliveries) < 0 ||
	    bus_js_poll_from(req, &w) < 0)
		return;
	if (b->n_polls >= BUS_JS_POLLS_MAX || b->draining) {
		sdk_req_add_header(req, "Retry-After", "1");
		sdk_reply_error(req, 503, b->draining ? "draining" : "busy", "no new polls now");
		return;
	}
	struct bus_js_poll *p = calloc(1, sizeof *p);
	if (p && !(p->msgs = evbuffer_new())) {
		free(p);
		p = NULL;
	}
	if (!p) {
		sdk_reply_error(req, 503, "out_of_memory", "cannot poll now");
		return;
	}
	p->b = b;
	p->req = req;
	snprintf(p->group, sizeof p->group, "%s", group);
	if (pattern) {
		snprintf(p->pattern, sizeof p->pattern, "%s", pattern);
		w.pattern = p->pattern;
	}
	w.visibility_ms = (int64_t)vis;
	w.max_deliveries = (int)deliveries;
	p->want = w;
	p->max = (size_t)max;
	p->deadline = sdk_mono_ms() + (int64_t)wait_ms;
	if (sdk_pool_submit(b->wait_pool, bus_js_poll_work, bus_js_poll_done, p) < 0) {
		evbuffer_free(p->msgs);
		free(p);
		sdk_req_add_header(req, "Retry-After", "1");
		sdk_reply_error(req, 503, "busy", "no new polls now");
		return;
	}
	b->n_polls++;
}

/* ------------------------------------------------------------------- ack */

struct bus_js_ack {
	bus_js *b;
	sdk_req *req;
	json_t *body; /* borrowed from req */
	char group[BUS_TOKEN_MAX + 1];
	int64_t *seqs;
	int *dels;
	bool *acked;
	size_t n, n_acked;
	bool ran, unavailable;
	int rc;
	char why[256];
};

static void bus_js_ack_work(void *arg)
{
	struct bus_js_ack *a = arg;
	bus_js *b = a->b;
	struct bus_js_group *g;
	a->ran = true;
	sdk_err e = { "" };
	a->rc = bus_js_group_open(b, a->group, NULL, &g, &e);
	snprintf(a->why, sizeof a->why, "%s", e.msg);
	if (a->rc)
		return;
	for (size_t i = 0; i < a->n; i++) {
		natsMsg *msg = NULL;
		struct bus_js_delivery d = { 0 };
		pthread_mutex_lock(&g->table_mu);
		for (size_t k = 0; k < g->n; k++) {
			if (g->tab[k].seq != a->seqs[i])
				continue;
			if (!a->dels[i] || a->dels[i] == g->tab[k].deliveries) {
				d = g->tab[k];
				msg = d.msg;
				g->tab[k] = g->tab[--g->n];
			}
			break;
		}
		pthread_mutex_unlock(&g->table_mu);
		if (!msg)
			continue;
		jsErrCode jerr = 0;
		if (b->N.natsMsg_AckSync(msg, NULL, &jerr) == NATS_OK) {
			a->acked[i] = true;
			a->n_acked++;
			b->N.natsMsg_Destroy(msg);
		} else {
			/* Kept: the same ack may be tried again. */
			bus_js_table_put(b, g, d.seq, d.deliveries, msg);
			a->unavailable = true;
		}
	}
}

static void bus_js_ack_done(void *arg)
{
	struct bus_js_ack *a = arg;
	sdk_err e;
	if (!a->ran) {
		sdk_reply_error(a->req, 503, "draining", "the bus is stopping");
	} else if (a->rc == SDK_EIO || (!a->rc && a->unavailable)) {
		sdk_req_add_header(a->req, "Retry-After", "1");
		sdk_reply_error(a->req, 503, "jetstream_unavailable",
				"JetStream did not confirm every ack (%zu done): retry the rest%s%s",
				a->n_acked, a->rc ? ": " : "", a->rc ? a->why : "");
	} else if (a->rc) {
		snprintf(e.msg, sizeof e.msg, "%s", a->why);
		sdk_reply_status(a->req, a->rc, &e);
	} else {
		json_t *offs = json_object_get(a->body, "offsets");
		json_t *recs = json_object_get(a->body, "receipts");
		json_t *missing = json_array(), *stale = json_array(), *v;
		size_t n_offs = json_array_size(offs), i;
		json_array_foreach (offs, i, v)
			if (!a->acked[i])
				json_array_append(missing, v);
		json_array_foreach (recs, i, v)
			if (!a->acked[n_offs + i])
				json_array_append(stale, v);
		a->b->stats.acked += a->n_acked;
		sdk_reply_json(a->req, 200,
			       json_pack("{s:I, s:o, s:o}", "acked", (json_int_t)a->n_acked,
					 "not_found", missing, "stale", stale));
	}
	free(a->seqs);
	free(a->dels);
	free(a->acked);
	free(a);
}

void bus_js_on_ack(sdk_req *req, void *ctx)
{
	bus_js *b = ((sdk_kernel *)ctx)->state;
	const char *group = bus_group_param(req);
	json_t *body = group ? sdk_req_json(req, true) : NULL;
	if (!body)
		return;
	json_t *offs = json_object_get(body, "offsets"), *recs = json_object_get(body, "receipts");
	size_t n = json_array_size(offs) + json_array_size(recs);
	if ((offs && !json_is_array(offs)) || (recs && !json_is_array(recs)) || n == 0 ||
	    n > BUS_JS_ACK_MAX) {
		sdk_reply_error(req, 400, "invalid",
				"offsets and/or receipts: arrays with 1 to %u entries in all",
				BUS_JS_ACK_MAX);
		return;
	}
	struct bus_js_ack *a = calloc(1, sizeof *a);
	if (a) {
		a->seqs = calloc(n, sizeof *a->seqs);
		a->dels = calloc(n, sizeof *a->dels);
		a->acked = calloc(n, sizeof *a->acked);
	}
	if (!a || !a->seqs || !a->dels || !a->acked) {
		if (a) {
			free(a->seqs);
			free(a->dels);
			free(a->acked);
		}
		free(a);
		sdk_reply_error(req, 503, "out_of_memory", "cannot ack now");
		return;
	}
	*a = (struct bus_js_ack){ .b = b, .req = req, .body = body, .seqs = a->seqs,
				  .dels = a->dels, .acked = a->acked, .n = n };
	snprintf(a->group, sizeof a->group, "%s", group);
	size_t i, k = 0;
	json_t *v;
	json_array_foreach (offs, i, v) {
		if (!json_is_integer(v) || json_integer_value(v) < 1) {
			sdk_reply_error(req, 400, "invalid", "offsets[%zu] is not an offset", i);
			goto bad;
		}
		a->seqs[k++] = json_integer_value(v);
	}
	json_array_foreach (recs, i, v) {
		if (bus_receipt_parse(json_string_value(v), &a->seqs[k], &a->dels[k]) < 0) {
			sdk_reply_error(req, 400, "invalid", "receipts[%zu] is not a receipt", i);
			goto bad;
		}
		k++;
	}
	if (sdk_pool_submit(b->short_pool, bus_js_ack_work, bus_js_ack_done, a) == 0)
		return;
	sdk_req_add_header(req, "Retry-After", "1");
	sdk_reply_error(req, 503, "busy", "cannot ack now");
bad:
	free(a->seqs);
	free(a->dels);
	free(a->acked);
	free(a);
}

/* ------------------------------------------------- get, list and delete */

enum bus_js_admin_op { ADMIN_GET, ADMIN_LIST, ADMIN_DELETE };

struct bus_js_admin {
	bus_js *b;
	sdk_req *req;
	enum bus_js_admin_op op;
	char group[BUS_TOKEN_MAX + 1];
	bool ran;
	int rc;
	char why[256];
	json_t *out;
};

static json_t *bus_js_group_json(bus_js *b, const char *name, const jsConsumerInfo *ci,
				 uint64_t last_seq)
{
	const jsConsumerConfig *c = ci->Config;
	const char *f = c && c->FilterSubject ? c->FilterSubject : "";
	return json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "name", name, "subject",
			 strncmp(f, b->prefix, b->prefix_len) ? f : f + b->prefix_len, "cursor",
			 (json_int_t)(ci->Delivered.Stream + 1), "visibility_ms",
			 (json_int_t)(c ? c->AckWait / 1000000 : 0), "max_deliveries",
			 (json_int_t)(c && c->MaxDeliver > 1 ? c->MaxDeliver - 1 : 0), "created_at",
			 (json_int_t)(ci->Created / 1000000), "in_flight",
			 (json_int_t)ci->NumAckPending, "next_offset", (json_int_t)(last_seq + 1));
}

static void bus_js_admin_work(void *arg)
{
	struct bus_js_admin *a = arg;
	bus_js *b = a->b;
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	natsStatus s;
	a->ran = true;
	if (a->op == ADMIN_DELETE) {
		char consumer[BUS_JS_CONSUMER_MAX];
		bus_js_consumer_name(a->group, consumer, sizeof consumer);
		struct bus_js_group *g;
		pthread_mutex_lock(&b->groups_mu);
		LIST_FOREACH (g, &b->groups, link)
			if (!strcmp(g->name, a->group)) {
				g->loaded = false;
				bus_js_group_unbind(b, g);
			}
		s = b->N.js_DeleteConsumer(b->js, b->stream, consumer, NULL, &jerr);
		pthread_mutex_unlock(&b->groups_mu);
		if (s != NATS_OK) {
			a->rc = jerr == JSConsumerNotFoundErr ? SDK_ENOTFOUND : SDK_EIO;
			if (a->rc == SDK_ENOTFOUND)
				snprintf(a->why, sizeof a->why, "no group %s", a->group);
			else
				sdk_nats_why(&b->N, s, jerr, a->why, sizeof a->why);
		}
		return;
	}
	s = b->N.js_GetStreamInfo(&si, b->js, b->stream, NULL, &jerr);
	if (s != NATS_OK) {
		sdk_nats_why(&b->N, s, jerr, a->why, sizeof a->why);
		a->rc = SDK_EIO;
		return;
	}
	uint64_t last = si->State.LastSeq;
	b->N.jsStreamInfo_Destroy(si);
	if (a->op == ADMIN_GET) {
		char consumer[BUS_JS_CONSUMER_MAX];
		jsConsumerInfo *ci = NULL;
		bus_js_consumer_name(a->group, consumer, sizeof consumer);
		s = b->N.js_GetConsumerInfo(&ci, b->js, b->stream, consumer, NULL, &jerr);
		if (s != NATS_OK) {
			a->rc = jerr == JSConsumerNotFoundErr ? SDK_ENOTFOUND : SDK_EIO;
			if (a->rc == SDK_ENOTFOUND)
				snprintf(a->why, sizeof a->why, "no group %s", a->group);
			else
				sdk_nats_why(&b->N, s, jerr, a->why, sizeof a->why);
			return;
		}
		a->out = bus_js_group_json(b, a->group, ci, last);
		b->N.jsConsumerInfo_Destroy(ci);
		return;
	}
	jsConsumerInfoList *list = NULL;
	s = b->N.js_Consumers(&list, b->js, b->stream, NULL, &jerr);
	if (s != NATS_OK && s != NATS_NOT_FOUND) {
		sdk_nats_why(&b->N, s, jerr, a->why, sizeof a->why);
		a->rc = SDK_EIO;
		return;
	}
	json_t *arr = json_array();
	for (int i = 0; list && arr && i < list->Count; i++) {
		const jsConsumerInfo *ci = list->List[i];
		char name[BUS_TOKEN_MAX + 1];
		if (!ci->Config || !ci->Config->Durable ||
		    bus_js_group_name(ci->Name, name, sizeof name) < 0)
			continue;
		json_array_append_new(arr, bus_js_group_json(b, name, ci, last));
	}
	/* By name, as the embedded engine answers. */
	size_t n = json_array_size(arr);
	for (size_t x = 1; x < n; x++)
		for (size_t c = x; c > 0; c--) {
			json_t *p = json_array_get(arr, c - 1), *q = json_array_get(arr, c);
			if (strcmp(json_string_value(json_object_get(p, "name")),
				   json_string_value(json_object_get(q, "name"))) <= 0)
				break;
			json_incref(p);
			json_array_set(arr, c - 1, q);
			json_array_set_new(arr, c, p);
		}
	if (list)
		b->N.jsConsumerInfoList_Destroy(list);
	a->out = arr ? json_pack("{s:o}", "groups", arr) : NULL;
}

static void bus_js_admin_done(void *arg)
{
	struct bus_js_admin *a = arg;
	sdk_err e;
	if (!a->ran) {
		sdk_reply_error(a->req, 503, "draining", "the bus is stopping");
	} else if (a->rc == SDK_EIO) {
		sdk_req_add_header(a->req, "Retry-After", "1");
		sdk_reply_error(a->req, 503, "jetstream_unavailable", "%s", a->why);
	} else if (a->rc) {
		snprintf(e.msg, sizeof e.msg, "%s", a->why);
		sdk_reply_status(a->req, a->rc, &e);
	} else if (a->op == ADMIN_DELETE) {
		sdk_reply_json(a->req, 200, json_pack("{s:s, s:b}", "group", a->group, "deleted", 1));
	} else if (a->out) {
		sdk_reply_json(a->req, 200, a->out);
		a->out = NULL;
	} else {
		sdk_reply_error(a->req, 500, "internal", "out of memory");
	}
	json_decref(a->out);
	free(a);
}

static void bus_js_admin_submit(sdk_req *req, void *ctx, enum bus_js_admin_op op)
{
	bus_js *b = ((sdk_kernel *)ctx)->state;
	const char *group = op == ADMIN_LIST ? "" : bus_group_param(req);
	if (!group)
		return;
	struct bus_js_admin *a = calloc(1, sizeof *a);
	if (a) {
		*a = (struct bus_js_admin){ .b = b, .req = req, .op = op };
		snprintf(a->group, sizeof a->group, "%s", group);
	}
	if (!a || sdk_pool_submit(b->short_pool, bus_js_admin_work, bus_js_admin_done, a) < 0) {
		free(a);
		sdk_req_add_header(req, "Retry-After", "1");
		sdk_reply_error(req, 503, "busy", "too many requests waiting for JetStream");
	}
}

void bus_js_on_group_get(sdk_req *req, void *ctx) { bus_js_admin_submit(req, ctx, ADMIN_GET); }
void bus_js_on_group_list(sdk_req *req, void *ctx) { bus_js_admin_submit(req, ctx, ADMIN_LIST); }
void bus_js_on_group_delete(sdk_req *req, void *ctx)
{
	bus_js_admin_submit(req, ctx, ADMIN_DELETE);
}

void bus_js_groups_free(bus_js *b)
{
	while (!LIST_EMPTY(&b->groups)) {
		struct bus_js_group *g = LIST_FIRST(&b->groups);
		LIST_REMOVE(g, link);
		if (b->N.lib)
			bus_js_group_unbind(b, g);
		free(g->tab);
		pthread_mutex_destroy(&g->fetch_mu);
		pthread_mutex_destroy(&g->table_mu);
		free(g);
	}
	b->n_groups = 0;
}
