/* The trust kernel's evidence, read from the bus: what the main process
 * publishes about kernels (state changes, the guardian's probes, the
 * healer's incidents) and users (logins, policy denials), taken through a
 * consumer group ("grace-trust", subject "grace.>") so nothing is lost
 * while the trust kernel is down, and turned into outcomes (evidence.h). */
#ifndef GRACE_TRUST_FEED_H
#define GRACE_TRUST_FEED_H

#include "kernels/layer.h"

#include "sdk/bus_group.h"
#include "sdk/err.h"
#include "sdk/kernel.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#define TR_FEED_GROUP "grace-trust"
#define TR_FEED_SUBJECT "grace.>"

typedef struct tr_feed {
	sdk_kernel *k;
	sdk_bus_group group;
	uint64_t used; /* messages that were evidence */
} tr_feed;

/* One bus message: the outcomes it stands for, stored. Messages that are
 * no evidence are ignored (0). ts_ms: when it was published. */
int tr_feed_apply(sqlite3 *db, const char *subject, json_t *payload, int64_t ts_ms,
		  int64_t now_ms, int64_t half_life_ms, sdk_err *err);
/* Sets the feed up (no allocation). 0, or < 0 (a name does not fit). */
int tr_feed_init(tr_feed *f, sdk_kernel *k);
/* No more calls to the bus. */
void tr_feed_drain(tr_feed *f);
/* Each second: polls the bus when no poll is out and the message_bus
 * kernel is configured, and gives the healthy periods their due. */
void tr_feed_tick(tr_feed *f);

#endif
