/* A standing consumer of the bus (bus_group.h). */
#include "sdk/bus_group.h"

#include "sdk/call.h"
#include "sdk/clock.h"
#include "sdk/config.h"
#include "sdk/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RETRY_MS 2000
#define ACK_TIMEOUT_MS 10000
#define CALL_SLACK_MS 5000 /* past the long poll's wait before the call gives up */

static void poll_bus(sdk_bus_group *g);
static void acknowledge(sdk_bus_group *g, json_t *receipts);

int sdk_bus_group_init(sdk_bus_group *g, sdk_kernel *k, const char *group, const char *subject,
		       const char *from, int max, int wait_ms, sdk_bus_group_fn fn, void *arg)
{
	memset(g, 0, sizeof *g);
	char subj[256];
	if (max < 1 || max > 1000 || wait_ms < 0 || !group || !*group || !fn ||
	    sdk_uri_encode(subject, subj, sizeof subj) < 0)
		return SDK_EINVAL;
	int n = snprintf(g->poll_path, sizeof g->poll_path,
			 "/groups/%s/poll?subject=%s&max=%d&wait_ms=%d%s%s", group, subj, max, wait_ms,
			 from ? "&from=" : "", from ? from : "");
	int m = snprintf(g->ack_path, sizeof g->ack_path, "/groups/%s/ack", group);
	if (n < 0 || (size_t)n >= sizeof g->poll_path || m < 0 || (size_t)m >= sizeof g->ack_path)
		return SDK_EINVAL;
	g->k = k;
	g->wait_ms = wait_ms;
	g->fn = fn;
	g->arg = arg;
	return 0;
}

static void failed(sdk_bus_group *g)
{
	g->busy = false;
	g->retry_ms = sdk_wall_ms() + RETRY_MS;
}

static void on_acked(int status, const char *body, size_t len, double ms, const char *error,
		     void *arg)
{
	(void)body, (void)len, (void)ms, (void)error;
	sdk_bus_group *g = arg;
	g->busy = false;
	if (g->draining)
		return;
	/* Not acknowledged: those messages come again; they are idempotent
	 * for every consumer, which must hold anyway (at-least-once). */
	if (status != 200)
		failed(g);
	else
		poll_bus(g);
}

static void on_polled(int status, const char *body, size_t len, double ms, const char *error,
		      void *arg)
{
	(void)ms, (void)error;
	sdk_bus_group *g = arg;
	g->busy = false;
	if (g->draining)
		return;
	json_t *doc = status == 200 && body ? json_loadb(body, len, 0, NULL) : NULL;
	json_t *msgs = json_object_get(doc, "messages");
	if (!json_is_array(msgs) || (g->begin && g->begin(g->arg) < 0)) {
		json_decref(doc);
		failed(g);
		return;
	}
	int64_t now = sdk_wall_ms();
	json_t *receipts = json_array();
	size_t i;
	json_t *msg;
	json_array_foreach(msgs, i, msg) {
		json_t *ts = json_object_get(msg, "timestamp");
		g->received++;
		if (g->fn(json_string_value(json_object_get(msg, "subject")),
			  json_object_get(msg, "payload"),
			  json_is_integer(ts) ? json_integer_value(ts) : now, g->arg) < 0) {
			g->refused++;
			continue;
		}
		json_t *r = json_object_get(msg, "receipt");
		if (r && receipts)
			json_array_append(receipts, r);
	}
	json_decref(doc);
	if (g->draining && !g->end) { /* fn may have begun the drain */
		json_decref(receipts);
		return;
	}
	if (g->end) { /* the kernel finishes the batch, then settles it */
		g->held = receipts;
		g->busy = true;
		g->end(g->arg);
		return;
	}
	acknowledge(g, receipts);
}

/* Acknowledges `receipts` (taken), then polls again. */
static void acknowledge(sdk_bus_group *g, json_t *receipts)
{
	if (!json_array_size(receipts)) {
		json_decref(receipts);
		poll_bus(g);
		return;
	}
	json_t *ack = json_pack("{s:o}", "receipts", receipts);
	char *text = ack ? json_dumps(ack, JSON_COMPACT) : NULL;
	json_decref(ack);
	g->busy = text && sdk_call(g->k->caller, "message_bus", "POST", g->ack_path, text,
				   strlen(text), NULL, ACK_TIMEOUT_MS, on_acked, g) == 0;
	if (!g->busy)
		failed(g);
	free(text);
}

static void poll_bus(sdk_bus_group *g)
{
	g->busy = sdk_call(g->k->caller, "message_bus", "GET", g->poll_path, NULL, 0, NULL,
			   (unsigned)g->wait_ms + CALL_SLACK_MS, on_polled, g) == 0;
	if (!g->busy)
		failed(g);
}

void sdk_bus_group_tick(sdk_bus_group *g, int64_t now_ms)
{
	if (!g->k || g->draining || g->busy || now_ms < g->retry_ms ||
	    !grace_config_kernel(g->k->cfg, "message_bus"))
		return;
	poll_bus(g);
}

void sdk_bus_group_drain(sdk_bus_group *g)
{
	g->draining = true;
}

void sdk_bus_group_defer(sdk_bus_group *g, sdk_bus_group_begin_fn begin, sdk_bus_group_end_fn end)
{
	g->begin = begin;
	g->end = end;
}

void sdk_bus_group_settle(sdk_bus_group *g, bool ok)
{
	json_t *receipts = g->held;
	g->held = NULL;
	g->busy = false;
	if (g->draining || !ok) {
		json_decref(receipts);
		if (!g->draining)
			failed(g);
		return;
	}
	acknowledge(g, receipts);
}
