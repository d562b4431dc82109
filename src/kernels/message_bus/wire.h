/* How a message looks on the wire: one line of compact JSON,
 *   {"offset":N,"subject":"...","timestamp":MS,"key":"..."|null,
 *    "headers":{...}|null,"payload":ANY}
 * with ,"deliveries":N,"receipt":"OFFSET-N" added for consumer groups.
 * Built by splicing the stored JSON text, never by re-parsing it. */
#ifndef GRACE_MESSAGE_BUS_WIRE_H
#define GRACE_MESSAGE_BUS_WIRE_H

#include "kernels/layer.h"

#include "kernels/message_bus/store.h"

struct evbuffer;

/* `deliveries` 0 leaves out the consumer-group fields. -1 when out of memory. */
int bus_wire_msg(struct evbuffer *out, const bus_msg *m, int deliveries);
/* An SSE event ("id:", "event: message", "data:" and a blank line). */
int bus_wire_event(struct evbuffer *out, const bus_msg *m);
/* A JSON string literal, escaped. */
int bus_wire_string(struct evbuffer *out, const char *s);

/* One counter of /metrics. */
typedef struct bus_counter {
	const char *name, *help;
	uint64_t v;
} bus_counter;
/* What both engines put on /metrics: their counters (Prometheus text, the
 * kernel's label), then the subscribers and waiting polls gauges. */
void bus_wire_metrics(struct evbuffer *out, const char *kernel, const bus_counter *c, size_t n,
		      unsigned subscribers, unsigned waiting_polls);

/* Parses a receipt "OFFSET-N"; -1 when it is not one. */
int bus_receipt_parse(const char *s, int64_t *seq, int *deliveries);

#endif
