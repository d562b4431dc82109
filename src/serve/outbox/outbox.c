#include "serve/outbox/outbox.h"
#include "sdk/clock.h"

#include "sdk/log.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DELIVERY_TIMEOUT_MS 5000

/* One destination: a kernel route that takes a JSON array of items. */
struct lane {
	const char *kernel, *path, *name;
	json_t *queue; /* array, oldest first */
	size_t in_flight; /* items sent in the call now running */
	bool one_by_one;  /* a batch was refused: find the bad item alone */
	unsigned long long delivered, dropped, failures;
	outbox *ob;
};

struct outbox {
	struct event_base *base;
	supervisor *sup;
	sdk_client *client;
	struct event *timer;
	struct lane bus, audit;
};

static void lane_push(struct lane *l, json_t *item)
{
	if (!item)
		return;
	if (json_array_size(l->queue) >= OB_QUEUE_MAX) {
		/* The oldest goes: the newest says most about now. */
		json_array_remove(l->queue, l->in_flight);
		l->dropped++;
	}
	json_array_append_new(l->queue, item);
}

static void on_delivered(int status, const char *body, size_t len, double ms, const char *error,
			 void *arg)
{
	(void)body, (void)len, (void)ms;
	struct lane *l = arg;
	size_t n = l->in_flight;
	l->in_flight = 0;
	if (status >= 200 && status < 300) {
		for (size_t i = 0; i < n; i++)
			json_array_remove(l->queue, 0);
		l->delivered += n;
		l->one_by_one = false;
		return;
	}
	/* Kept for the next try; a 4xx means the kernel will never take them:
	 * but only the one that is bad, so a refused batch is sent again one
	 * event at a time until the bad one is found and dropped alone. */
	l->failures++;
	if (status >= 400 && status < 500) {
		if (n > 1) {
			l->one_by_one = true;
			return;
		}
		json_array_remove(l->queue, 0);
		l->dropped++;
		sdk_warn("outbox: %s refused an event (%d)", l->kernel, status);
	} else if (l->failures % 50 == 1) {
		sdk_debug("outbox: %s not reachable (%s); %zu events wait", l->kernel,
			  error ? error : "error", json_array_size(l->queue));
	}
}

static void lane_flush(struct lane *l)
{
	size_t n = json_array_size(l->queue);
	if (l->in_flight || n == 0)
		return;
	sup_kernel *k = sup_find(l->ob->sup, l->kernel);
	if (!k || k->state != SUP_READY)
		return;
	if (n > OB_BATCH_MAX)
		n = OB_BATCH_MAX;
	if (l->one_by_one)
		n = 1;
	/* A batch is bounded in bytes too: the kernel's body limit would refuse
	 * a larger one, and a refused batch would be retried for ever. */
	json_t *batch = json_array();
	size_t bytes = 2, i;
	for (i = 0; i < n; i++) {
		json_t *item = json_array_get(l->queue, i);
		char *one = json_dumps(item, JSON_COMPACT);
		size_t len = one ? strlen(one) + 1 : 0;
		free(one);
		if (i > 0 && bytes + len > OB_BATCH_BYTES)
			break;
		bytes += len;
		json_array_append(batch, item);
	}
	n = i;
	char *body = json_dumps(batch, JSON_COMPACT);
	json_decref(batch);
	if (!body)
		return;
	if (sdk_client_call(l->ob->client, k->port, "POST", l->path, body, strlen(body), NULL,
			    DELIVERY_TIMEOUT_MS, on_delivered, l) == 0)
		l->in_flight = n;
	free(body);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	outbox *ob = arg;
	lane_flush(&ob->bus);
	lane_flush(&ob->audit);
}

outbox *ob_new(struct event_base *base, supervisor *sup, const char *token)
{
	outbox *ob = calloc(1, sizeof *ob);
	if (!ob)
		return NULL;
	ob->base = base;
	ob->sup = sup;
	ob->client = sdk_client_new(base);
	ob->timer = event_new(base, -1, EV_PERSIST, on_timer, ob);
	ob->bus = (struct lane){ .kernel = "message_bus", .path = "/publish", .name = "bus",
				 .queue = json_array(), .ob = ob };
	ob->audit = (struct lane){ .kernel = "audit", .path = "/events", .name = "audit",
				   .queue = json_array(), .ob = ob };
	if (!ob->client || !ob->timer || !ob->bus.queue || !ob->audit.queue) {
		ob_free(ob);
		return NULL;
	}
	sdk_client_set_token(ob->client, token);
	struct timeval tv = { 0, OB_FLUSH_MS * 1000 };
	event_add(ob->timer, &tv);
	return ob;
}

void ob_free(outbox *ob)
{
	if (!ob)
		return;
	sdk_client_free(ob->client);
	if (ob->timer)
		event_free(ob->timer);
	json_decref(ob->bus.queue);
	json_decref(ob->audit.queue);
	free(ob);
}

void ob_publish(outbox *ob, const char *subject, json_t *payload)
{
	lane_push(&ob->bus, json_pack("{s:s, s:o}", "subject", subject, "payload",
				      payload ? payload : json_null()));
}

/* A field as the audit kernel takes it: non-empty, at most `max` bytes,
 * valid UTF-8 (what a client sent in a path may be none of these). */
static json_t *field(const char *s, size_t max)
{
	if (!s || !*s)
		return json_string("-");
	size_t n = strnlen(s, max);
	json_t *j;
	/* Cutting may split a character: step back until the text is valid. */
	while (n > 0 && !(j = json_stringn(s, n)))
		n--;
	return n > 0 ? j : json_string("(not valid UTF-8)");
}

void ob_audit(outbox *ob, const char *actor, const char *action, const char *resource,
	      const char *outcome, const char *source_ip, json_t *details)
{
	json_t *e = json_pack("{s:o, s:o, s:o, s:o, s:I}", "actor", field(actor, OB_FIELD_MAX),
			      "action", field(action, OB_ACTION_MAX), "resource",
			      field(resource, OB_ACTION_MAX), "outcome", field(outcome, OB_FIELD_MAX),
			      "ts_ms", (json_int_t)sdk_wall_ms());
	if (!e) {
		json_decref(details);
		ob->audit.dropped++;
		return;
	}
	if (details)
		json_object_set(e, "details", details);
	if (source_ip && *source_ip)
		json_object_set_new(e, "source_ip", field(source_ip, 64));
	json_decref(details);
	lane_push(&ob->audit, e);
}

void ob_metrics(const outbox *ob, struct evbuffer *out)
{
	const struct lane *lanes[] = { &ob->bus, &ob->audit };
	evbuffer_add_printf(out, "# HELP grace_outbox_events_total Events for the bus and the audit "
				 "trail, by result.\n"
				 "# TYPE grace_outbox_events_total counter\n");
	for (size_t i = 0; i < 2; i++)
		evbuffer_add_printf(out,
				    "grace_outbox_events_total{destination=\"%s\",result=\"delivered\"} %llu\n"
				    "grace_outbox_events_total{destination=\"%s\",result=\"dropped\"} %llu\n",
				    lanes[i]->name, lanes[i]->delivered, lanes[i]->name, lanes[i]->dropped);
	evbuffer_add_printf(out, "# HELP grace_outbox_queued Events waiting for delivery.\n"
				 "# TYPE grace_outbox_queued gauge\n");
	for (size_t i = 0; i < 2; i++)
		evbuffer_add_printf(out, "grace_outbox_queued{destination=\"%s\"} %zu\n",
				    lanes[i]->name, json_array_size(lanes[i]->queue));
}
