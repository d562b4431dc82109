/* Following the bus through the consumer group SH_GROUP (state.h): what
 * is published while this kernel is down waits in the group. The SDK's
 * consumer (sdk/bus_group.h), deferred: a poll's messages are correlated
 * on the loop into one batch, which the store's worker writes (worker.h);
 * only then are they acknowledged, so a message that cannot be stored is
 * not acknowledged and comes again. One batch at a time. */
#include "kernels/self_healing/state.h"
#include "kernels/self_healing/worker.h"
#include "sdk/clock.h"
#include "sdk/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SH_SUBJECT "grace.>"
#define POLL_MAX 200
#define POLL_WAIT_MS 20000

/* The batch is written (or not): its messages acknowledged, or not. */
static void on_written(sh_job *j)
{
	sh_state *s = j->s;
	if (j->rc < 0 && !j->closing)
		sdk_warn("self_healing: bus messages not stored (they come again): %s", j->err.msg);
	sdk_bus_group_settle(&s->feed, !j->closing && j->rc == 0);
}

/* Room first: once correlated in memory, the batch must be written. */
static int feed_begin(void *arg)
{
	sh_state *s = arg;
	if (!sh_worker_room(s, false) || !(s->feed_job = sh_job_new(s, true, on_written))) {
		sdk_warn("self_healing: the store's queue is full: the bus's messages come again");
		return -1;
	}
	s->feed_now = sdk_wall_ms();
	return 0;
}

static int feed_message(const char *subject, json_t *payload, int64_t ts_ms, void *arg)
{
	(void)ts_ms; /* correlated at the time of the poll, as every event here */
	sh_state *s = arg;
	sdk_err e;
	if (sh_ingest(s, s->feed_job->batch, subject, payload, s->feed_now, &e) < 0) {
		sdk_warn("self_healing: %s not taken: %s", subject ? subject : "?", e.msg);
		return -1;
	}
	return 0;
}

static void feed_end(void *arg)
{
	sh_state *s = arg;
	sh_job *j = s->feed_job;
	s->feed_job = NULL;
	if (sh_job_submit(j, false) < 0) { /* room was checked: memory is short */
		sdk_warn("self_healing: out of memory: the bus's messages come again");
		sdk_bus_group_settle(&s->feed, false);
	}
}

int sh_feed_start(sh_state *s, sdk_err *err)
{
	if (sdk_bus_group_init(&s->feed, s->k, SH_GROUP, SH_SUBJECT, NULL, POLL_MAX, POLL_WAIT_MS,
			       feed_message, s) < 0) {
		return sdk_fail(err, SDK_EINVAL, "the bus's consumer group does not fit");
	}
	sdk_bus_group_defer(&s->feed, feed_begin, feed_end);
	sh_feed_tick(s, sdk_wall_ms());
	return 0;
}

void sh_feed_tick(sh_state *s, int64_t now_ms)
{
	sdk_bus_group_tick(&s->feed, now_ms);
}

void sh_feed_stop(sh_state *s)
{
	sdk_bus_group_drain(&s->feed);
}
