/* A small pool of worker threads for blocking work (password hashing) so
 * the event loop never waits on it. Jobs run on a worker; their `done`
 * callback runs back on the loop. The queue is bounded: past it, submit
 * fails and the caller answers 503. */
#ifndef GRACE_AUTH_POOL_H
#define GRACE_AUTH_POOL_H

#include <stddef.h>

struct event_base;
typedef struct wpool wpool;

typedef void (*wpool_work_fn)(void *arg);  /* on a worker thread */
typedef void (*wpool_done_fn)(void *arg);  /* on the loop, after work */

wpool *wpool_new(struct event_base *base, unsigned threads, size_t queue_max);
/* Waits for the running jobs; drops queued ones after calling their done
 * (so owners can free their arguments). */
void wpool_free(wpool *p);
/* 0, or -1 when the queue is full. */
int wpool_submit(wpool *p, wpool_work_fn work, wpool_done_fn done, void *arg);
size_t wpool_pending(const wpool *p);

#endif
