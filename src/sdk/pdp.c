#include "sdk/pdp.h"

#include "sdk/clock.h"
#include "sdk/log.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OPEN_BUCKETS 1024 /* the hash of questions waiting or in flight */
#define INSTANCE_MAX 32

struct waiter {
	sdk_pdp_cb cb;
	void *arg;
	struct waiter *next;
	const char *why; /* a deferred "unavailable": why (static) */
};

/* One question, and everyone waiting for its answer. */
struct question {
	uint64_t hash;
	char *key; /* owned */
	size_t len;
	json_t *request, *entities; /* owned */
	struct waiter *waiters;
	struct question *chain; /* in p->open[] */
	struct question *next;  /* in the queue, then in its batch */
};

/* One POST /authorize/batch in flight. Freed by its answer, or by
 * sdk_pdp_free (the call path never calls back after that). */
struct batch {
	sdk_pdp *p;
	struct question *qs; /* in the order of the request's array */
	size_t n;
	uint64_t epoch; /* p->epoch when sent: a later invalidation wins */
	struct batch *next, **prev;
};

struct entry {
	uint64_t hash;
	char *key; /* owned; NULL: empty slot */
	size_t len;
	int64_t pv, ev; /* the versions the decision read */
	uint64_t epoch;
	bool allow;
};

struct sdk_pdp {
	struct event_base *base;
	sdk_caller *caller;
	char set[128];
	unsigned timeout_ms;
	bool (*ready)(void *arg);
	void *ready_arg;

	struct event *flush_ev, *watch_timer;
	bool flush_armed, watch_inflight;
	bool probe_inflight; /* a plain GET /versions beside the long poll */
	bool was_ready; /* the ready hook's last answer */
	bool live;      /* the watch has the current versions */
	bool hung;      /* the last call went unanswered: nothing is asked until one is */
	const char *why;
	int64_t pv, ev;
	char instance[INSTANCE_MAX + 1];
	/* Moves on every invalidation; a cached decision or an answer from
	 * before it is not used. */
	uint64_t epoch;

	struct entry *cache;
	size_t cache_mask;

	struct question *open[OPEN_BUCKETS];
	struct question *queue, **queue_tail;
	size_t n_questions;
	struct batch *batches;
	unsigned n_batches;
	struct waiter *deferred; /* to answer "unavailable" from the loop */

	unsigned long long hits, misses, allowed, denied, unavailable, batches_sent, watch_failures;
};

static uint64_t key_hash(const char *key, size_t len)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)key[i];
		h *= 1099511628211ULL;
	}
	return h;
}

static void invalidate(sdk_pdp *p, const char *why)
{
	p->epoch++;
	p->live = false;
	p->why = why;
}

static void arm_flush(sdk_pdp *p)
{
	if (p->flush_armed)
		return;
	p->flush_armed = true;
	struct timeval now = { 0, 0 };
	evtimer_add(p->flush_ev, &now);
}

/* ---- the watch: GET /versions as a long poll */

static void watch_start(sdk_pdp *p);

static void watch_retry(sdk_pdp *p)
{
	struct timeval tv = sdk_ms_tv(PDP_WATCH_RETRY_MS);
	evtimer_add(p->watch_timer, &tv);
}

/* Takes a GET /versions answer: true when it held the versions. */
static bool versions_heard(sdk_pdp *p, int status, const char *body, size_t len,
			   const char *error)
{
	json_t *j = status == 200 ? json_loadb(body, len, 0, NULL) : NULL;
	json_t *pv = json_object_get(j, "policy_version"), *ev = json_object_get(j, "entities_version");
	const char *inst = json_string_value(json_object_get(j, "instance"));
	if (!json_is_integer(pv) || !json_is_integer(ev) || !inst) {
		json_decref(j);
		if (p->watch_failures++ % 100 == 0)
			sdk_debug("policy decisions: the version watch failed (%s)",
				  status ? "bad answer" : error ? error : "no answer");
		if (status == 0)
			p->hung = true;
		invalidate(p, status == 0 ? "the policy kernel does not answer"
					  : "the policy kernel answers no versions");
		return false;
	}
	if (strcmp(inst, p->instance)) {
		/* Restarted (or first heard of): nothing cached is known good. */
		invalidate(p, NULL);
		snprintf(p->instance, sizeof p->instance, "%s", inst);
	}
	p->pv = json_integer_value(pv);
	p->ev = json_integer_value(ev);
	p->live = true;
	p->hung = false;
	p->why = NULL;
	json_decref(j);
	return true;
}

static void on_watch(int status, const char *body, size_t len, double ms, const char *error,
		     void *arg)
{
	(void)ms;
	sdk_pdp *p = arg;
	p->watch_inflight = false;
	if (versions_heard(p, status, body, len, error))
		watch_start(p);
	else
		watch_retry(p);
}

static void on_probe(int status, const char *body, size_t len, double ms, const char *error,
		     void *arg)
{
	(void)ms;
	sdk_pdp *p = arg;
	p->probe_inflight = false;
	versions_heard(p, status, body, len, error); /* the long poll carries on either way */
}

static void watch_start(sdk_pdp *p)
{
	if (p->watch_inflight || evtimer_pending(p->watch_timer, NULL))
		return;
	char enc[3 * sizeof p->set], target[512];
	if (sdk_uri_encode(p->set, enc, sizeof enc) < 0)
		return;
	if (p->live)
		snprintf(target, sizeof target,
			 "/versions?policy_set=%s&policy_version=%lld&entities_version=%lld&wait_ms=%d",
			 enc, (long long)p->pv, (long long)p->ev, PDP_WATCH_WAIT_MS);
	else
		snprintf(target, sizeof target, "/versions?policy_set=%s", enc);
	p->watch_inflight = true;
	if (sdk_call(p->caller, "policy", "GET", target, NULL, 0, NULL,
		     PDP_WATCH_WAIT_MS + PDP_WATCH_GRACE_MS, on_watch, p) < 0) {
		p->watch_inflight = false;
		invalidate(p, "cannot call the policy kernel");
		watch_retry(p);
	}
}

static void on_watch_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	watch_start(arg);
}

void sdk_pdp_invalidate(sdk_pdp *p)
{
	invalidate(p, NULL);
	if (!p->watch_inflight) {
		watch_start(p);
		return;
	}
	/* The long poll in flight may already hold the new versions and then
	 * wait its full turn: ask for them now beside it. */
	char enc[3 * sizeof p->set], target[512];
	if (p->probe_inflight || sdk_uri_encode(p->set, enc, sizeof enc) < 0)
		return;
	snprintf(target, sizeof target, "/versions?policy_set=%s", enc);
	p->probe_inflight = true;
	if (sdk_call(p->caller, "policy", "GET", target, NULL, 0, NULL, PDP_WATCH_GRACE_MS * 2,
		     on_probe, p) < 0)
		p->probe_inflight = false;
}

bool sdk_pdp_ready(sdk_pdp *p)
{
	bool up = !p->ready || p->ready(p->ready_arg);
	if (!up) {
		if (p->was_ready || p->live)
			invalidate(p, "the policy kernel is not ready");
		p->was_ready = false;
		p->why = "the policy kernel is not ready";
		return false;
	}
	if (!p->was_ready) {
		/* Back (or first asked): a kernel that was down hangs no more
		 * as far as we know; the watch will tell. */
		p->was_ready = true;
		p->hung = false;
		p->why = NULL;
		evtimer_del(p->watch_timer);
	}
	watch_start(p);
	return !p->hung;
}

const char *sdk_pdp_why(const sdk_pdp *p)
{
	return p->why ? p->why : "the policy kernel is not ready";
}

/* ---- the cache */

int sdk_pdp_lookup(sdk_pdp *p, const char *key, size_t len)
{
	if (!sdk_pdp_ready(p))
		return SDK_PDP_UNAVAILABLE;
	if (!p->live)
		return SDK_PDP_MISS;
	uint64_t h = key_hash(key, len);
	const struct entry *e = &p->cache[h & p->cache_mask];
	if (e->key && e->hash == h && e->len == len && e->epoch == p->epoch && e->pv == p->pv &&
	    e->ev == p->ev && !memcmp(e->key, key, len)) {
		p->hits++;
		return e->allow ? SDK_PDP_ALLOW : SDK_PDP_DENY;
	}
	return SDK_PDP_MISS;
}

static void cache_put(sdk_pdp *p, const struct question *q, bool allow, int64_t pv, int64_t ev,
		      uint64_t epoch)
{
	struct entry *e = &p->cache[q->hash & p->cache_mask];
	char *key = malloc(q->len);
	if (!key)
		return;
	memcpy(key, q->key, q->len);
	free(e->key);
	*e = (struct entry){ .hash = q->hash, .key = key, .len = q->len, .pv = pv, .ev = ev,
			     .epoch = epoch, .allow = allow };
}

/* ---- questions */

static struct question **open_slot(sdk_pdp *p, uint64_t h, const char *key, size_t len)
{
	struct question **q = &p->open[h % OPEN_BUCKETS];
	while (*q && !((*q)->hash == h && (*q)->len == len && !memcmp((*q)->key, key, len)))
		q = &(*q)->chain;
	return q;
}

static void question_free(sdk_pdp *p, struct question *q)
{
	struct question **slot = open_slot(p, q->hash, q->key, q->len);
	if (*slot == q)
		*slot = q->chain;
	p->n_questions--;
	json_decref(q->request);
	json_decref(q->entities);
	free(q->key);
	free(q);
}

static void defer_unavailable(sdk_pdp *p, sdk_pdp_cb cb, void *arg, const char *why)
{
	struct waiter *w = malloc(sizeof *w);
	if (!w) {
		/* No memory to wait with: answer now rather than never. */
		cb(SDK_PDP_UNAVAILABLE, "out of memory", arg);
		return;
	}
	*w = (struct waiter){ cb, arg, p->deferred, why };
	p->deferred = w;
	p->unavailable++;
	arm_flush(p);
}

void sdk_pdp_ask(sdk_pdp *p, const char *key, size_t len, json_t *request, json_t *entities,
		 sdk_pdp_cb cb, void *arg)
{
	bool ready = sdk_pdp_ready(p);
	if (!ready || len > PDP_KEY_MAX || p->n_questions >= PDP_QUESTIONS_MAX) {
		json_decref(request);
		json_decref(entities);
		defer_unavailable(p, cb, arg,
				  !ready		     ? sdk_pdp_why(p)
				  : len > PDP_KEY_MAX ? "the question is too long"
						      : "too many decisions waiting");
		return;
	}
	uint64_t h = key_hash(key, len);
	struct question **slot = open_slot(p, h, key, len);
	struct waiter *w = malloc(sizeof *w);
	struct question *q = *slot;
	if (!w) {
		json_decref(request);
		json_decref(entities);
		defer_unavailable(p, cb, arg, "out of memory");
		return;
	}
	*w = (struct waiter){ cb, arg, NULL, NULL };
	p->misses++;
	if (q) { /* asked already, not yet answered: wait for that answer */
		w->next = q->waiters;
		q->waiters = w;
		json_decref(request);
		json_decref(entities);
		return;
	}
	q = calloc(1, sizeof *q);
	char *k = q ? malloc(len ? len : 1) : NULL;
	if (!k || !request) {
		free(q);
		free(w);
		json_decref(request);
		json_decref(entities);
		defer_unavailable(p, cb, arg, "out of memory");
		return;
	}
	memcpy(k, key, len);
	*q = (struct question){ .hash = h, .key = k, .len = len, .request = request,
				.entities = entities, .waiters = w };
	*slot = q;
	p->n_questions++;
	*p->queue_tail = q;
	p->queue_tail = &q->next;
	arm_flush(p);
}

/* Answers every waiter of a list (detached first: a callback may ask). */
static void answer_all(struct waiter *w, int result, const char *why)
{
	while (w) {
		struct waiter *next = w->next;
		w->cb(result, w->why ? w->why : why, w->arg);
		free(w);
		w = next;
	}
}

/* ---- batches */

static void on_batch(int status, const char *body, size_t len, double ms, const char *error,
		     void *arg);

static void uid_key(json_t *entity, char *out, size_t n)
{
	json_t *uid = json_object_get(entity, "uid");
	const char *type = json_string_value(json_object_get(uid, "type"));
	const char *id = json_string_value(json_object_get(uid, "id"));
	snprintf(out, n, "%s\x1f%s", type ? type : "", id ? id : "");
}

/* Whether q's entities agree with those already in the batch (a uid may
 * be given once, identically: the policy kernel refuses anything else). */
static bool entities_fit(json_t *seen, json_t *ents)
{
	size_t i;
	json_t *e;
	char k[512];
	json_array_foreach (ents, i, e) {
		uid_key(e, k, sizeof k);
		json_t *have = json_object_get(seen, k);
		if (have && !json_equal(have, e))
			return false;
	}
	return true;
}

static void send_batch(sdk_pdp *p)
{
	struct batch *b = calloc(1, sizeof *b);
	json_t *requests = json_array(), *entities = json_array(), *seen = json_object();
	if (!b || !requests || !entities || !seen) {
		free(b);
		json_decref(requests);
		json_decref(entities);
		json_decref(seen);
		return;
	}
	struct question **tail = &b->qs, **q = &p->queue;
	while (*q && b->n < PDP_BATCH_MAX) {
		struct question *x = *q;
		if (!entities_fit(seen, x->entities)) {
			q = &x->next; /* the next batch takes it */
			continue;
		}
		size_t i;
		json_t *e;
		char k[512];
		json_array_foreach (x->entities, i, e) {
			uid_key(e, k, sizeof k);
			if (!json_object_get(seen, k)) {
				json_object_set(seen, k, e);
				json_array_append(entities, e);
			}
		}
		json_array_append(requests, x->request);
		*q = x->next;
		if (!*q)
			p->queue_tail = q;
		x->next = NULL;
		*tail = x;
		tail = &x->next;
		b->n++;
	}
	json_t *doc = json_pack("{s:s, s:o, s:o}", "policy_set", p->set, "requests", requests,
				"entities", entities);
	json_decref(seen);
	char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	json_decref(doc);
	b->p = p;
	b->epoch = p->epoch;
	b->next = p->batches;
	b->prev = &p->batches;
	if (p->batches)
		p->batches->prev = &b->next;
	p->batches = b;
	p->n_batches++;
	p->batches_sent++;
	if (!text || sdk_call(p->caller, "policy", "POST", "/authorize/batch", text, strlen(text),
			      NULL, p->timeout_ms, on_batch, b) < 0)
		on_batch(0, NULL, 0, 0, "cannot call the policy kernel", b);
	free(text);
}

static void batch_unlink(struct batch *b)
{
	if (b->next)
		b->next->prev = b->prev;
	*b->prev = b->next;
	b->p->n_batches--;
}

/* Ends a batch: caches what it decided, then answers every waiter. */
static void on_batch(int status, const char *body, size_t len, double ms, const char *error,
		     void *arg)
{
	(void)ms;
	struct batch *b = arg;
	sdk_pdp *p = b->p;
	batch_unlink(b);
	json_t *j = status == 200 && body ? json_loadb(body, len, 0, NULL) : NULL;
	json_t *results = json_object_get(j, "results");
	json_t *pv = json_object_get(j, "policy_version"), *ev = json_object_get(j, "entities_version");
	bool ok = json_is_array(results) && json_array_size(results) == b->n &&
		  json_is_integer(pv) && json_is_integer(ev);
	const char *why = NULL;
	if (!ok) {
		why = status == 0		   ? "the policy kernel did not answer in time"
		      : status == 404	   ? "the policy set does not exist"
		      : status == 500	   ? "the policy set no longer parses"
		      : status == 200	   ? "the policy kernel's answer is not understood"
					   : "the policy kernel refused the question";
		if (status == 0) {
			p->hung = true;
			invalidate(p, why);
		}
		sdk_warn("policy decisions: %zu unanswered: %s (%d%s%s)", b->n, why, status,
			 error ? ", " : "", error ? error : "");
	} else if (b->epoch == p->epoch && p->live) {
		/* Newer versions than the watch has heard of: the cached
		 * decisions of the older ones are stale now. */
		if (json_integer_value(pv) > p->pv)
			p->pv = json_integer_value(pv);
		if (json_integer_value(ev) > p->ev)
			p->ev = json_integer_value(ev);
	}
	struct question *q = b->qs;
	for (size_t i = 0; q; i++) {
		struct question *next = q->next;
		struct waiter *w = q->waiters;
		q->waiters = NULL;
		int result = SDK_PDP_UNAVAILABLE;
		const char *qwhy = why;
		if (ok) {
			const char *d = json_string_value(
				json_object_get(json_array_get(results, i), "decision"));
			if (d && !strcmp(d, "allow"))
				result = SDK_PDP_ALLOW;
			else if (d && !strcmp(d, "deny"))
				result = SDK_PDP_DENY;
			else
				qwhy = "the policy kernel could not read a question";
			if (result != SDK_PDP_UNAVAILABLE && b->epoch == p->epoch)
				cache_put(p, q, result == SDK_PDP_ALLOW, json_integer_value(pv),
					  json_integer_value(ev), b->epoch);
		}
		if (result == SDK_PDP_ALLOW)
			p->allowed++;
		else if (result == SDK_PDP_DENY)
			p->denied++;
		else
			p->unavailable++;
		question_free(p, q);
		answer_all(w, result, qwhy);
		q = next;
	}
	json_decref(j);
	free(b);
	if (p->queue)
		arm_flush(p);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	sdk_pdp *p = arg;
	p->flush_armed = false;
	struct waiter *w = p->deferred;
	p->deferred = NULL;
	answer_all(w, SDK_PDP_UNAVAILABLE, NULL);
	while (p->queue && p->n_batches < PDP_BATCHES_MAX)
		send_batch(p);
}

/* ---- life */

sdk_pdp *sdk_pdp_new(const sdk_pdp_opts *o)
{
	sdk_pdp *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->base = o->base;
	p->caller = o->caller;
	snprintf(p->set, sizeof p->set, "%s", o->policy_set);
	p->timeout_ms = o->timeout_ms;
	p->ready = o->ready;
	p->ready_arg = o->ready_arg;
	p->queue_tail = &p->queue;
	size_t n = 16;
	while (n < o->cache_entries && n < (1u << 24))
		n *= 2;
	p->cache = calloc(n, sizeof *p->cache);
	p->cache_mask = n - 1;
	p->flush_ev = evtimer_new(o->base, on_flush, p);
	p->watch_timer = evtimer_new(o->base, on_watch_timer, p);
	if (!p->cache || !p->flush_ev || !p->watch_timer) {
		sdk_pdp_free(p);
		return NULL;
	}
	return p;
}

void sdk_pdp_free(sdk_pdp *p)
{
	if (!p)
		return;
	/* Batches in flight: the call path is freed after us and never calls
	 * back, so their questions are answered here. */
	while (p->batches) {
		struct batch *b = p->batches;
		batch_unlink(b);
		for (struct question *q = b->qs, *next; q; q = next) {
			next = q->next;
			struct waiter *w = q->waiters;
			question_free(p, q);
			answer_all(w, SDK_PDP_UNAVAILABLE, "shutting down");
		}
		free(b);
	}
	for (struct question *q = p->queue, *next; q; q = next) {
		next = q->next;
		struct waiter *w = q->waiters;
		question_free(p, q);
		answer_all(w, SDK_PDP_UNAVAILABLE, "shutting down");
	}
	struct waiter *w = p->deferred;
	p->deferred = NULL;
	answer_all(w, SDK_PDP_UNAVAILABLE, "shutting down");
	for (size_t i = 0; p->cache && i <= p->cache_mask; i++)
		free(p->cache[i].key);
	free(p->cache);
	if (p->flush_ev)
		event_free(p->flush_ev);
	if (p->watch_timer)
		event_free(p->watch_timer);
	free(p);
}

void sdk_pdp_metrics(const sdk_pdp *p, struct evbuffer *out, const char *prefix)
{
	evbuffer_add_printf(out,
			    "# HELP %s_decisions_total Decisions, by where they came from and what they said.\n"
			    "# TYPE %s_decisions_total counter\n"
			    "%s_decisions_total{source=\"cache\"} %llu\n"
			    "%s_decisions_total{source=\"kernel\",decision=\"allow\"} %llu\n"
			    "%s_decisions_total{source=\"kernel\",decision=\"deny\"} %llu\n"
			    "%s_decisions_total{source=\"none\",decision=\"unavailable\"} %llu\n"
			    "# HELP %s_batches_total POST /authorize/batch calls made.\n"
			    "# TYPE %s_batches_total counter\n%s_batches_total %llu\n"
			    "# HELP %s_ready Whether decisions can be had now.\n"
			    "# TYPE %s_ready gauge\n%s_ready %d\n",
			    prefix, prefix, prefix, p->hits, prefix, p->allowed, prefix, p->denied,
			    prefix, p->unavailable, prefix, prefix, prefix, p->batches_sent, prefix,
			    prefix, prefix, p->was_ready && !p->hung);
}

json_t *sdk_pdp_user_entity(const char *name, const char *role)
{
	return json_pack("{s:{s:s, s:s}, s:{s:s, s:s}, s:[{s:s, s:s}]}", "uid", "type", "User", "id",
			 name, "attrs", "name", name, "role", role, "parents", "type", "Role", "id",
			 role);
}
