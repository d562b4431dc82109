/* Following the bus through the consumer group SH_GROUP (state.h), with
 * the SDK's consumer (sdk/bus_group.h): what is published while this
 * kernel is down waits in the group; a message that cannot be stored is
 * not acknowledged, and comes again. */
#include "kernels/self_healing/state.h"
#include "sdk/clock.h"
#include "sdk/log.h"

#include <stdio.h>

#define SH_SUBJECT "grace.>"
#define POLL_MAX 200
#define POLL_WAIT_MS 20000

static int on_message(const char *subject, json_t *payload, int64_t ts_ms, void *arg)
{
	sh_state *s = arg;
	(void)ts_ms; /* the payload's own ts_ms, else now (feed.c) */
	sdk_err e;
	if (sh_ingest(s, subject, payload, sdk_wall_ms(), &e) < 0) {
		sdk_warn("self_healing: %s not stored: %s", subject ? subject : "?", e.msg);
		return -1;
	}
	return 0;
}

int sh_feed_start(sh_state *s, char *err, size_t errlen)
{
	if (sdk_bus_group_init(&s->group, s->k, SH_GROUP, SH_SUBJECT, NULL, POLL_MAX, POLL_WAIT_MS,
			       on_message, s) < 0) {
		snprintf(err, errlen, "the bus consumer group cannot be named");
		return -1;
	}
	sdk_bus_group_tick(&s->group, sdk_wall_ms());
	return 0;
}

void sh_feed_tick(sh_state *s, int64_t now_ms) { sdk_bus_group_tick(&s->group, now_ms); }

void sh_feed_stop(sh_state *s)
{
	if (s->group.k)
		sdk_bus_group_drain(&s->group);
}
