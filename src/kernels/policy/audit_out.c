/* The policy kernel's changes in the audit trail. Each change writes its
 * audit event to an outbox in policy.db, in the change's own transaction
 * (store.c); this sends them to the audit kernel (POST /events, through
 * the call path) oldest first, in batches, and deletes a batch only once
 * the audit kernel has stored it: a resent event carries the same uid, so
 * the audit kernel keeps it once. While the audit kernel is away, sending
 * is retried with a backoff; events made offline (`grace policy reset`)
 * go at the next start. */
#include "kernels/policy/policy.h"

#include "sdk/clock.h"
#include "sdk/log.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#define AUDIT_BATCH 100              /* events per POST */
#define AUDIT_CALL_TIMEOUT_MS 5000
#define AUDIT_RETRY_MIN_MS 200
#define AUDIT_RETRY_MAX_MS 30000
#define AUDIT_WARN_EVERY 20          /* failed sends between two warnings */

static void arm(pol_kernel *pk, unsigned ms)
{
	struct timeval tv = sdk_ms_tv(ms);
	evtimer_add(pk->audit_timer, &tv);
}

static void send_batch(pol_kernel *pk);

static void on_sent(int status, const char *body, size_t len, double ms, const char *error,
		    void *arg)
{
	(void)body, (void)len, (void)ms;
	/* The call path never calls back once freed, and it is freed after
	 * the kernel's close: `pk` is alive here. */
	pol_kernel *pk = arg;
	pk->audit_sending = false;
	sdk_err e;
	if (status == 201 && pol_store_events_done(pk->store, pk->audit_last, &e) == 0) {
		pk->audit_backoff_ms = 0;
		send_batch(pk); /* the next batch, if any */
		return;
	}
	if (pk->audit_failures++ % AUDIT_WARN_EVERY == 0)
		sdk_warn("policy: cannot deliver audit events (%s); retrying",
			 status ? "the audit kernel refused them" : error ? error : "no answer");
	pk->audit_backoff_ms = pk->audit_backoff_ms ? pk->audit_backoff_ms * 2 : AUDIT_RETRY_MIN_MS;
	if (pk->audit_backoff_ms > AUDIT_RETRY_MAX_MS)
		pk->audit_backoff_ms = AUDIT_RETRY_MAX_MS;
	arm(pk, pk->audit_backoff_ms);
}

static void send_batch(pol_kernel *pk)
{
	if (pk->audit_sending || !pk->audit_timer)
		return;
	json_t *events;
	int64_t last;
	sdk_err e;
	if (pol_store_events(pk->store, AUDIT_BATCH, &events, &last, &e) < 0) {
		sdk_warn("policy: %s", e.msg);
		arm(pk, AUDIT_RETRY_MAX_MS);
		return;
	}
	if (last == 0) {
		json_decref(events);
		return;
	}
	char *body = json_dumps(events, JSON_COMPACT);
	size_t n = json_array_size(events);
	json_decref(events);
	if (n == 0) { /* only rows that were not JSON: drop them */
		free(body);
		pol_store_events_done(pk->store, last, &e);
		return;
	}
	/* Set first: the call path may answer before sdk_call returns. */
	pk->audit_last = last;
	pk->audit_sending = true;
	if (!body || sdk_call(pk->k->caller, "audit", "POST", "/events", body, strlen(body), NULL,
			      AUDIT_CALL_TIMEOUT_MS, on_sent, pk) < 0) {
		pk->audit_sending = false;
		if (pk->audit_failures++ % AUDIT_WARN_EVERY == 0)
			sdk_warn("policy: cannot call the audit kernel; retrying");
		arm(pk, AUDIT_RETRY_MAX_MS);
	}
	free(body);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	send_batch(arg);
}

void pol_audit_kick(pol_kernel *pk)
{
	if (!pk->audit_timer) {
		pk->audit_timer = evtimer_new(pk->k->base, on_timer, pk);
		if (!pk->audit_timer)
			return;
	}
	/* A retry that is due later waits its turn. */
	if (!pk->audit_sending && !evtimer_pending(pk->audit_timer, NULL))
		send_batch(pk);
}

void pol_audit_stop(pol_kernel *pk)
{
	if (pk->audit_timer)
		event_free(pk->audit_timer);
	pk->audit_timer = NULL;
}
