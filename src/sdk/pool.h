/* A small pool of worker threads for blocking work (password hashing,
 * SQLite queries, file ingestion) so the event loop never waits on it.
 * Jobs run on a worker; their `done` callback runs back on the loop.
 *
 * Two bounds, both checked at submit (on the loop):
 *   - the queue: at most queue_max jobs queued or running in all; past it,
 *     submit fails with SDK_EBUSY (answer 503 and Retry-After);
 *   - per caller: a job may name its caller (a user name, say); with a
 *     caller limit set, a caller with that many jobs queued or running is
 *     refused with SDK_POOL_ECALLER (answer 429 and Retry-After) while
 *     every other caller still gets in. So one caller cannot fill the
 *     queue that everybody shares.
 * And callers take turns: a free worker takes a job of the caller with the
 * fewest jobs running, of those the one served longest ago, so a caller's
 * burst does not keep another's one job waiting behind it. Jobs of one
 * caller (and jobs of no caller) run in the order they came. */
#ifndef GRACE_SDK_POOL_H
#define GRACE_SDK_POOL_H

#include "sdk/err.h"

#include <stddef.h>

struct event_base;
typedef struct sdk_pool sdk_pool;

/* This caller has its limit of jobs queued or running (see above). */
#define SDK_POOL_ECALLER (SDK_E_MODULE)
#define SDK_POOL_CALLER_MAX 64 /* bytes of a caller's name that tell callers apart */

typedef void (*sdk_pool_work_fn)(void *arg);  /* on a worker thread */
typedef void (*sdk_pool_done_fn)(void *arg);  /* on the loop, after work */

sdk_pool *sdk_pool_new(struct event_base *base, unsigned threads, size_t queue_max);
/* Waits for the running jobs; drops queued ones after calling their done
 * (so owners can free their arguments). */
void sdk_pool_free(sdk_pool *p);
/* Names the pool's threads (at most 15 bytes: the kernel's limit), as
 * `top -H`, `perf` and /proc/PID/task/TID/comm show them. On the loop. */
void sdk_pool_name(sdk_pool *p, const char *name);
/* Jobs one caller may have queued or running at once; 0 (the default):
 * no limit but the queue's. */
void sdk_pool_set_caller_max(sdk_pool *p, size_t caller_max);
/* 0, or SDK_EBUSY when the queue is full (or memory is short). */
int sdk_pool_submit(sdk_pool *p, sdk_pool_work_fn work, sdk_pool_done_fn done, void *arg);
/* The same for a job of `caller` (NULL: no caller, only the queue bound):
 * 0, SDK_EBUSY, or SDK_POOL_ECALLER when the caller is at its limit. */
int sdk_pool_submit_as(sdk_pool *p, const char *caller, sdk_pool_work_fn work,
		       sdk_pool_done_fn done, void *arg);
/* Tracing's way into every pool's jobs (sdk/tracer.c sets them, once per
 * process, on the loop): at submit, `capture` takes what the loop's
 * current span is (NULL: nothing to carry, and the job costs nothing
 * more); on the worker, `enter` and `leave` go around the work; on the
 * loop, `resume` comes before the job's done and `finish` after it (with
 * what resume returned), then nothing of it is kept. A job keeps the
 * hooks it was submitted with. NULL: none. */
typedef struct sdk_pool_trace_hooks {
	void *(*capture)(void);
	void (*enter)(void *trace);
	void (*leave)(void *trace);
	const void *(*resume)(void *trace);
	void (*finish)(void *trace, const void *resumed);
} sdk_pool_trace_hooks;
void sdk_pool_set_trace_hooks(const sdk_pool_trace_hooks *hooks);

/* Jobs queued or running, in all and of one caller. */
size_t sdk_pool_pending(const sdk_pool *p);
size_t sdk_pool_caller_pending(const sdk_pool *p, const char *caller);

#endif
