/* A kernel's standing consumer of the message bus: one consumer group on
 * one subject pattern, read by long polls through the call path, so
 * nothing published while the kernel was down is lost. Each message goes
 * to `fn`; the ones it took are acknowledged together, then the next poll
 * goes out. A message `fn` refuses (< 0: it could not be stored, say) is
 * not acknowledged: the bus delivers it again and dead-letters it after
 * its deliveries. A failed poll or acknowledgement is retried after a
 * pause by the next tick.
 *
 * A consumer whose taking ends later (a write on a worker thread) defers
 * the acknowledgement (sdk_bus_group_defer): a poll's messages go to fn
 * only once begin says there is room, and after them the group holds the
 * receipts of those taken until the kernel settles the batch: written,
 * they are acknowledged; not, none is, and they come again.
 *
 * The struct lives in the kernel's state (no allocation): it must outlive
 * a call in flight, which comes back to nothing once draining. */
#ifndef GRACE_SDK_BUS_GROUP_H
#define GRACE_SDK_BUS_GROUP_H

#include "sdk/kernel.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define SDK_BUS_GROUP_PATH_MAX 512

/* One message: its subject, its payload (borrowed), when it was published
 * (the bus's timestamp, or now when it has none). 0: taken; < 0: leave it
 * to be delivered again. */
typedef int (*sdk_bus_group_fn)(const char *subject, json_t *payload, int64_t ts_ms, void *arg);
/* Deferred taking (sdk_bus_group_defer): before a poll's messages, < 0
 * when none can be taken now (they come again after the pause); after
 * them, the batch is the kernel's to finish and settle. */
typedef int (*sdk_bus_group_begin_fn)(void *arg);
typedef void (*sdk_bus_group_end_fn)(void *arg);

typedef struct sdk_bus_group {
	sdk_kernel *k;
	char poll_path[SDK_BUS_GROUP_PATH_MAX];
	char ack_path[SDK_BUS_GROUP_PATH_MAX];
	int wait_ms;
	sdk_bus_group_fn fn;
	sdk_bus_group_begin_fn begin; /* NULL: acknowledged when fn returns */
	sdk_bus_group_end_fn end;
	void *arg;
	json_t *held;      /* a deferred batch's receipts, until it is settled */
	bool busy;         /* a poll or an acknowledgement is out */
	bool draining;     /* no more calls; one in flight ends in nothing */
	int64_t retry_ms;  /* no poll before this (after a failed one) */
	uint64_t received; /* messages handed to fn */
	uint64_t refused;  /* of those, the ones fn refused */
} sdk_bus_group;

/* `from`: where a new group starts ("latest", "earliest"), or NULL for the
 * bus's default. max: messages per poll (1..1000); wait_ms: the long
 * poll's wait. 0, or SDK_EINVAL when a name does not fit. */
int sdk_bus_group_init(sdk_bus_group *g, sdk_kernel *k, const char *group, const char *subject,
		       const char *from, int max, int wait_ms, sdk_bus_group_fn fn, void *arg);
/* From the kernel's timer: polls when nothing is out, the pause after a
 * failure is over and a message_bus kernel is configured. */
void sdk_bus_group_tick(sdk_bus_group *g, int64_t now_ms);
/* From the kernel's drain: no more calls. */
void sdk_bus_group_drain(sdk_bus_group *g);
/* After init: each batch is acknowledged only when the kernel settles it
 * (see above). */
void sdk_bus_group_defer(sdk_bus_group *g, sdk_bus_group_begin_fn begin,
			 sdk_bus_group_end_fn end);
/* The deferred batch is written (ok: its receipts are acknowledged, then
 * the next poll) or not (none is: they come again after the pause). Call
 * it once per end, also while draining (the receipts are let go). */
void sdk_bus_group_settle(sdk_bus_group *g, bool ok);

#endif
