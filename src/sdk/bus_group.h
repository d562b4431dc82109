/* A kernel's standing consumer of the message bus: one consumer group on
 * one subject pattern, read by long polls through the call path, so
 * nothing published while the kernel was down is lost. Each message goes
 * to `fn`; the ones it took are acknowledged together, then the next poll
 * goes out. A message `fn` refuses (< 0: it could not be stored, say) is
 * not acknowledged: the bus delivers it again and dead-letters it after
 * its deliveries. A failed poll or acknowledgement is retried after a
 * pause by the next tick.
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

typedef struct sdk_bus_group {
	sdk_kernel *k;
	char poll_path[SDK_BUS_GROUP_PATH_MAX];
	char ack_path[SDK_BUS_GROUP_PATH_MAX];
	int wait_ms;
	sdk_bus_group_fn fn;
	void *arg;
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

#endif
