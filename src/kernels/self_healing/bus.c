/* Following the bus through the consumer group SH_GROUP (state.h): what
 * is published while this kernel is down waits in the group. The SDK's
 * consumer (sdk/bus_group.h) acknowledges as soon as its callback
 * returns; here a batch is acknowledged only once the store's worker has
 * written it (worker.h), so a message that cannot be stored is not
 * acknowledged and comes again. Poll, correlate (on the loop), write (on
 * the worker), acknowledge, poll: one batch at a time. */
#include "kernels/self_healing/state.h"
#include "kernels/self_healing/worker.h"
#include "sdk/call.h"
#include "sdk/clock.h"
#include "sdk/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SH_SUBJECT "grace.>"
#define POLL_MAX 200
#define POLL_WAIT_MS 20000
#define RETRY_MS 2000
#define ACK_TIMEOUT_MS 10000
#define CALL_SLACK_MS 5000 /* past the long poll's wait before the call gives up */

static void poll_bus(sh_state *s);

static void failed(sh_state *s)
{
	s->feed_busy = false;
	s->feed_retry_ms = sdk_wall_ms() + RETRY_MS;
}

static void on_acked(int status, const char *body, size_t len, double ms, const char *error,
		     void *arg)
{
	(void)body, (void)len, (void)ms, (void)error;
	sh_state *s = arg;
	s->feed_busy = false;
	if (s->feed_draining)
		return;
	/* Not acknowledged: those messages come again (their writes are then
	 * made twice: events are a record, and the incident's counts are
	 * the correlation's, which is at-least-once as the bus is). */
	if (status != 200)
		failed(s);
	else
		poll_bus(s);
}

/* The batch is written (or not): acknowledge what it took. */
static void on_written(sh_job *j)
{
	sh_state *s = j->s;
	s->feed_busy = false;
	if (j->closing || s->feed_draining)
		return;
	if (j->rc < 0) {
		sdk_warn("self_healing: %zu bus messages not stored (they come again): %s",
			 json_array_size(j->in), j->err.msg);
		failed(s);
		return;
	}
	if (!json_array_size(j->in)) {
		poll_bus(s);
		return;
	}
	json_t *ack = json_pack("{s:O}", "receipts", j->in);
	char *text = ack ? json_dumps(ack, JSON_COMPACT) : NULL;
	json_decref(ack);
	s->feed_busy = text && sdk_call(s->k->caller, "message_bus", "POST", s->ack_path, text,
					strlen(text), NULL, ACK_TIMEOUT_MS, on_acked, s) == 0;
	if (!s->feed_busy)
		failed(s);
	free(text);
}

static void on_polled(int status, const char *body, size_t len, double ms, const char *error,
		      void *arg)
{
	(void)ms, (void)error;
	sh_state *s = arg;
	s->feed_busy = false;
	if (s->feed_draining)
		return;
	json_t *doc = status == 200 && body ? json_loadb(body, len, 0, NULL) : NULL;
	json_t *msgs = json_object_get(doc, "messages");
	/* Room first: once correlated in memory, the batch must be written. */
	sh_job *j = json_is_array(msgs) && sh_worker_room(s, false) ? sh_job_new(s, true, on_written)
								     : NULL;
	if (!j || !(j->in = json_array())) {
		if (j)
			sh_job_free(j);
		if (json_is_array(msgs))
			sdk_warn("self_healing: the store's queue is full: the bus's messages come "
				 "again");
		json_decref(doc);
		failed(s);
		return;
	}
	int64_t now = sdk_wall_ms();
	size_t i;
	json_t *msg;
	json_array_foreach(msgs, i, msg) {
		sdk_err e;
		const char *subject = json_string_value(json_object_get(msg, "subject"));
		if (sh_ingest(s, j->batch, subject, json_object_get(msg, "payload"), now, &e) < 0) {
			sdk_warn("self_healing: %s not taken: %s", subject ? subject : "?", e.msg);
			continue;
		}
		json_t *r = json_object_get(msg, "receipt");
		if (r)
			json_array_append(j->in, r);
	}
	json_decref(doc);
	/* The receipts go to the worker and back untouched: a deep copy, so
	 * no reference count is shared with the loop's documents. */
	json_t *receipts = json_deep_copy(j->in);
	json_decref(j->in);
	j->in = receipts;
	if (!receipts) {
		sh_job_free(j);
		failed(s);
		return;
	}
	s->feed_busy = true;
	if (sh_job_submit(j, false) < 0) { /* room was checked: memory is short */
		sdk_warn("self_healing: out of memory: the bus's messages come again");
		failed(s);
	}
}

static void poll_bus(sh_state *s)
{
	s->feed_busy = sdk_call(s->k->caller, "message_bus", "GET", s->poll_path, NULL, 0, NULL,
				POLL_WAIT_MS + CALL_SLACK_MS, on_polled, s) == 0;
	if (!s->feed_busy)
		failed(s);
}

int sh_feed_start(sh_state *s, char *err, size_t errlen)
{
	char subj[64];
	if (sdk_uri_encode(SH_SUBJECT, subj, sizeof subj) < 0) {
		snprintf(err, errlen, "the bus subject cannot be encoded");
		return -1;
	}
	snprintf(s->poll_path, sizeof s->poll_path, "/groups/%s/poll?subject=%s&max=%d&wait_ms=%d",
		 SH_GROUP, subj, POLL_MAX, POLL_WAIT_MS);
	snprintf(s->ack_path, sizeof s->ack_path, "/groups/%s/ack", SH_GROUP);
	sh_feed_tick(s, sdk_wall_ms());
	return 0;
}

void sh_feed_tick(sh_state *s, int64_t now_ms)
{
	if (s->feed_draining || s->feed_busy || now_ms < s->feed_retry_ms ||
	    !grace_config_kernel(s->k->cfg, "message_bus"))
		return;
	poll_bus(s);
}

void sh_feed_stop(sh_state *s)
{
	s->feed_draining = true;
}
