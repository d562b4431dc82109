/* GET /versions: the versions a decision cache is keyed by, as a long
 * poll. Without `policy_version` and `entities_version` (the versions the
 * caller knows) it answers at once; with them and `wait_ms`, it answers as
 * soon as either moves, or when the wait ends. So one request in flight
 * both tells a caller (the main process, a kernel's call checks) the
 * moment a change makes its cached decisions stale, and proves, by coming
 * back, that the kernel is alive: a caller that hears nothing for longer
 * than its wait knows the kernel hangs. `instance` is new at each start.
 *
 *   GET /versions?policy_set=default&policy_version=3&entities_version=7&wait_ms=1000
 *   {"policy_set":"default","exists":true,"deleted":false,"policy_version":3,
 *    "entities_version":7,"instance":"5f0c..."}
 */
#include "kernels/policy/policy.h"

#include "sdk/clock.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pol_watcher {
	pol_kernel *pk;
	sdk_req *req;
	char set[POL_NAME_MAX + 1];
	int64_t policy_version, entities_version; /* what the caller knows */
	struct event *timer;
	struct pol_watcher *next, **prev;
};

static void versions_of(const pol_kernel *pk, const char *name, int64_t *pv, bool *exists,
			bool *deleted)
{
	const pol_set *set = pol_store_set(pk->store, name);
	*exists = set != NULL;
	*deleted = set && !set->ps && !set->broken;
	*pv = set ? set->version : 0;
}

static json_t *versions_json(const pol_kernel *pk, const char *name)
{
	int64_t pv;
	bool exists, deleted;
	versions_of(pk, name, &pv, &exists, &deleted);
	return json_pack("{s:s, s:b, s:b, s:I, s:I, s:s}", "policy_set", name, "exists", exists,
			 "deleted", deleted, "policy_version", (json_int_t)pv, "entities_version",
			 (json_int_t)pk->store->ents_version, "instance", pk->instance);
}

static bool moved(const struct pol_watcher *w)
{
	int64_t pv;
	bool exists, deleted;
	versions_of(w->pk, w->set, &pv, &exists, &deleted);
	return pv != w->policy_version || w->pk->store->ents_version != w->entities_version;
}

static void watcher_unlink(struct pol_watcher *w)
{
	if (w->next)
		w->next->prev = w->prev;
	*w->prev = w->next;
	w->pk->n_watchers--;
	event_free(w->timer);
}

/* Answers and frees one waiter. */
static void watcher_answer(struct pol_watcher *w)
{
	sdk_req *req = w->req;
	json_t *body = versions_json(w->pk, w->set);
	watcher_unlink(w);
	sdk_req_on_close(req, NULL, NULL);
	free(w);
	sdk_reply_json(req, 200, body);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	watcher_answer(arg);
}

static void on_gone(sdk_req *req, void *arg)
{
	(void)req;
	watcher_answer(arg); /* answering a gone request only frees it */
}

void pol_watch_notify(pol_kernel *pk)
{
	struct pol_watcher *w = pk->watchers;
	while (w) {
		struct pol_watcher *next = w->next;
		if (moved(w))
			watcher_answer(w);
		w = next;
	}
}

void pol_watch_drain(pol_kernel *pk)
{
	pk->draining = true;
	while (pk->watchers)
		watcher_answer(pk->watchers);
}

/* An optional integer query parameter: -1 when absent; answers 400. */
static int query_version(sdk_req *req, const char *name, int64_t *out)
{
	*out = -1;
	if (!sdk_req_query(req, name))
		return 0;
	unsigned long long v;
	if (sdk_req_query_uint(req, name, 0, 1ULL << 62, 0, &v) < 0)
		return -1;
	*out = (int64_t)v;
	return 0;
}

void pol_on_versions(sdk_req *req, void *ctx)
{
	pol_kernel *pk = pol_of(ctx);
	const char *name = sdk_req_query(req, "policy_set");
	if (!name)
		name = POL_DEFAULT_SET;
	if (!pol_name_valid(name)) {
		sdk_reply_error(req, 400, "invalid", "a policy set name is 1 to %d of A-Z a-z 0-9 _ - .",
				POL_NAME_MAX);
		return;
	}
	int64_t pv, ev;
	unsigned long long wait_ms;
	if (query_version(req, "policy_version", &pv) < 0 ||
	    query_version(req, "entities_version", &ev) < 0 ||
	    sdk_req_query_uint(req, "wait_ms", 0, POL_WATCH_MAX_MS, 0, &wait_ms) < 0)
		return;
	struct pol_watcher probe = { .pk = pk, .policy_version = pv, .entities_version = ev };
	snprintf(probe.set, sizeof probe.set, "%s", name);
	if (pv < 0 || ev < 0 || wait_ms == 0 || pk->draining || pk->n_watchers >= POL_WATCHERS_MAX ||
	    moved(&probe)) {
		sdk_reply_json(req, 200, versions_json(pk, name));
		return;
	}
	struct pol_watcher *w = malloc(sizeof *w);
	struct event *t = w ? evtimer_new(pk->k->base, on_timer, w) : NULL;
	if (!t) {
		free(w);
		sdk_reply_json(req, 200, versions_json(pk, name));
		return;
	}
	*w = probe;
	w->req = req;
	w->timer = t;
	w->next = pk->watchers;
	w->prev = &pk->watchers;
	if (pk->watchers)
		pk->watchers->prev = &w->next;
	pk->watchers = w;
	pk->n_watchers++;
	struct timeval tv = sdk_ms_tv((int64_t)wait_ms);
	evtimer_add(t, &tv);
	sdk_req_on_close(req, on_gone, w);
}
