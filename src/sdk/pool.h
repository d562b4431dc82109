/* A small pool of worker threads for blocking work (password hashing) so
 * the event loop never waits on it. Jobs run on a worker; their `done`
 * callback runs back on the loop. The queue is bounded: past it, submit
 * fails and the caller answers 503. */
#ifndef GRACE_SDK_POOL_H
#define GRACE_SDK_POOL_H

#include <stddef.h>

struct event_base;
typedef struct sdk_pool sdk_pool;

typedef void (*sdk_pool_work_fn)(void *arg);  /* on a worker thread */
typedef void (*sdk_pool_done_fn)(void *arg);  /* on the loop, after work */

sdk_pool *sdk_pool_new(struct event_base *base, unsigned threads, size_t queue_max);
/* Waits for the running jobs; drops queued ones after calling their done
 * (so owners can free their arguments). */
void sdk_pool_free(sdk_pool *p);
/* 0, or -1 when the queue is full. */
int sdk_pool_submit(sdk_pool *p, sdk_pool_work_fn work, sdk_pool_done_fn done, void *arg);
size_t sdk_pool_pending(const sdk_pool *p);

#endif
