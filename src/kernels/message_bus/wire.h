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
struct sdk_req;

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

/* ?from=: earliest, latest or an offset (BUS_FROM_SEQ, *seq), `dflt`
 * when absent. Answers 400 and returns -1 when it is none of them. */
int bus_query_from(struct sdk_req *req, enum bus_from dflt, enum bus_from *from, int64_t *seq);
/* Where an SSE subscription starts: after the Last-Event-ID it resumes
 * from (BUS_FROM_SEQ, that + 1), else ?from= (latest by default). Each
 * engine maps it onto its own offsets. Answers 400 and returns -1 when
 * either is malformed. */
int bus_sub_from(struct sdk_req *req, enum bus_from *from, int64_t *seq);
/* The group name of the path; answers 400 (NULL) when it is not a token. */
const char *bus_group_param(struct sdk_req *req);
/* Sends ": heartbeat" on an SSE stream. */
void bus_wire_heartbeat(struct sdk_req *req);

/* Parses a receipt "OFFSET-N"; -1 when it is not one. */
int bus_receipt_parse(const char *s, int64_t *seq, int *deliveries);

#endif
