/* Metrics as events ([self_healing] watch.KERNEL = PROMQL;
 * docs/self_healing.md "Metrics as events"): each watch is an instant
 * query to the metrics kernel every watch_interval_ms, through the call
 * path like any call between kernels. A non-empty answer means the
 * condition holds for KERNEL: an event of kind "metric" (an alert of
 * Grace's own: it joins what is open for the kernel, or opens an alert
 * incident). While it holds, the event is repeated every stable_ms / 2, so
 * the incident stays open exactly as long as the condition; an empty
 * answer is quiet, and the incident resolves after stable_ms. A query that
 * fails (metrics down, a bad expression) is counted and says nothing. */
#include "kernels/self_healing/state.h"
#include "kernels/self_healing/worker.h"

#include "sdk/call.h"
#include "sdk/clock.h"
#include "sdk/log.h"

#include <stdio.h>
#include <string.h>

#define WATCH_TIMEOUT_MS 5000
#define WATCH_TARGET_MAX (3 * GRACE_SH_WATCH_MAX + 64)

static void on_answer(int status, const char *body, size_t len, double ms, const char *error,
		      void *arg)
{
	(void)ms;
	struct sh_watch *w = arg; /* in its state: nothing to free, even unanswered */
	sh_state *s = w->s;
	size_t i = (size_t)(w - s->watch);
	const grace_self_healing *cfg = &s->k->cfg->self_healing;
	w->asking = false;
	json_error_t je;
	json_t *doc = status == 200 ? json_loadb(body, len, 0, &je) : NULL;
	json_t *result = json_object_get(json_object_get(doc, "data"), "result");
	const char *st = json_string_value(json_object_get(doc, "status"));
	if (!st || strcmp(st, "success") || !json_is_array(result)) {
		s->watch_failures++;
		sdk_debug("self_healing: watch %s: %d %s", cfg->watches[i].kernel, status,
			  error ? error : "");
		json_decref(doc);
		return;
	}
	bool firing = json_array_size(result) > 0;
	int64_t now = sdk_wall_ms();
	bool tell = firing && (!w->firing || now - w->last_event_ms >= cfg->stable_ms / 2);
	if (firing != w->firing)
		sdk_info("self_healing: watch %s: %s (%s)", cfg->watches[i].kernel,
			 firing ? "holds" : "no longer holds", cfg->watches[i].expr);
	w->firing = firing;
	if (tell) {
		w->last_event_ms = now;
		json_t *detail = json_pack("{s:s, s:O, s:I}", "expr", cfg->watches[i].expr, "sample",
					   json_array_get(result, 0), "series",
					   (json_int_t)json_array_size(result));
		sdk_err e = { "" };
		sh_batch *b = sh_worker_room(s, false) ? sh_batch_new() : NULL;
		if (!b)
			sdk_warn("self_healing: watch %s: the store's queue is full; the event is "
				 "told again while the condition holds", cfg->watches[i].kernel);
		else if (sh_apply(s, b, cfg->watches[i].kernel, SH_EV_METRIC, "metrics.watch",
				  detail, NULL, now, NULL, &e) < 0)
			sdk_warn("self_healing: watch %s: %s", cfg->watches[i].kernel, e.msg);
		sh_write(s, b);
		json_decref(detail);
	}
	json_decref(doc);
}

void sh_watch_tick(sh_state *s, int64_t now_ms)
{
	const grace_self_healing *cfg = &s->k->cfg->self_healing;
	int64_t mono = sdk_mono_ms();
	(void)now_ms;
	for (size_t i = 0; i < cfg->n_watches; i++) {
		struct sh_watch *w = &s->watch[i];
		if (w->asking || mono < w->next_ms)
			continue;
		w->next_ms = mono + cfg->watch_interval_ms;
		char q[3 * GRACE_SH_WATCH_MAX + 1], target[WATCH_TARGET_MAX];
		if (sdk_uri_encode(cfg->watches[i].expr, q, sizeof q) < 0)
			continue;
		snprintf(target, sizeof target, "/api/v1/query?query=%s", q);
		w->s = s;
		s->watch_queries++;
		if (sdk_call(s->k->caller, "metrics", "GET", target, NULL, 0, NULL, WATCH_TIMEOUT_MS,
			     on_answer, w) < 0) {
			s->watch_failures++;
			continue;
		}
		w->asking = true;
	}
}
