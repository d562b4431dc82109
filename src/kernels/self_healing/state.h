/* The self_healing kernel's state, shared by its files: the correlation,
 * the ladder and budget, per-kernel facts, counters. Owned by
 * self_healing.c's init/close. */
#ifndef GRACE_SELF_HEALING_STATE_H
#define GRACE_SELF_HEALING_STATE_H

#include "kernels/layer.h"

#include "kernels/self_healing/batch.h"
#include "kernels/self_healing/correlate.h"
#include "kernels/self_healing/ladder.h"
#include "sdk/bus_group.h"
#include "sdk/kernel.h"
#include "sdk/err.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#define SH_GROUP "grace-self-healing"
#define SH_EXIT_MAX 128

typedef struct sh_kfacts {
	char last_exit[SH_EXIT_MAX]; /* the supervisor's, from the last crash */
} sh_kfacts;

typedef struct sh_state {
	sdk_kernel *k;
	sh_corr corr;
	sh_ladder ladder;
	sh_budget budget;
	sh_kstate ks[SH_LADDER_KERNELS_MAX];
	sh_kfacts facts[SH_LADDER_KERNELS_MAX];
	size_t n_ks;
	struct event *timer;
	/* The store's worker (worker.h): its thread's connection and pool. */
	sqlite3 *wdb;
	struct sdk_pool *pool;
	bool closing;
	/* The consumer group on the bus (bus.c), its batches acknowledged once
	 * written; the batch being correlated, and when it was polled. */
	sdk_bus_group feed;
	struct sh_job *feed_job;
	int64_t feed_now;
	int64_t oom_seen;            /* the cgroup's oom_kill count last read; -1 unknown */
	unsigned long long events[SH_EV_COUNT], ignored, opened, resolved, folded, flapping,
		advice[SH_VERDICT_COUNT], outcomes, verified, pages, page_failures, learning_asks,
		learning_answers, learning_fallbacks, store_failures, stop_requests,
		stop_request_failures;
	struct stop_request *stop_inflight; /* change requests for a stop, unanswered (advice.c) */
	/* [self_healing] watch.KERNEL (watch.c): one per configured watch */
	struct sh_watch {
		struct sh_state *s;    /* back, for its call's answer */
		int64_t next_ms;       /* monotonic: when it is asked next */
		int64_t last_event_ms; /* wall clock: its last event; 0 none */
		bool asking, firing;
	} watch[GRACE_SH_WATCHES_MAX];
	unsigned long long watch_queries, watch_failures;
} sh_state;

/* The ladder's state and facts of `kernel` (added when new; NULL when the
 * table is full). */
sh_kstate *sh_kstate_of(sh_state *s, const char *kernel, sh_kfacts **facts);

/* An event from the bus (feed.c): subject and payload as published,
 * correlated now, its writes appended to `b`. 0, or a negative sdk_status
 * when it is not taken (not acknowledged: the bus delivers it again). */
int sh_ingest(sh_state *s, sh_batch *b, const char *subject, json_t *payload, int64_t now_ms,
	      sdk_err *err);
/* Applies one event to the correlation and appends what changed to `b`;
 * `detail` borrowed; `hints` (borrowed, may be NULL) go to the incident's
 * cause. */
int sh_apply(sh_state *s, sh_batch *b, const char *kernel, enum sh_ev_kind kind,
	     const char *subject, json_t *detail, json_t *hints, int64_t now_ms,
	     int64_t *incident_id, sdk_err *err);
/* Follows the bus (bus.c): start at init, tick from the timer, stop at
 * drain. */
int sh_feed_start(sh_state *s, sdk_err *err);
void sh_feed_tick(sh_state *s, int64_t now_ms);
void sh_feed_stop(sh_state *s);
/* Asks the metrics kernel each watch that is due (watch.c); from the timer. */
void sh_watch_tick(sh_state *s, int64_t now_ms);

/* POST /advice, POST /outcomes (advice.c). */
void sh_on_advice(sdk_req *req, void *ctx);
void sh_on_outcomes(sdk_req *req, void *ctx);
/* Queues a batch of the kernel's own (no request waits on it): a
 * failure is counted and logged. */
void sh_write(sh_state *s, sh_batch *b);
/* The change requests for a stop still unanswered, freed (at close: the
 * runtime's caller then drops their calls without calling back). */
void sh_stop_requests_free(sh_state *s);

#endif
