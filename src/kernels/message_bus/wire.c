#include "kernels/message_bus/wire.h"

#include "kernels/message_bus/subject.h"
#include "sdk/http.h"

#include <errno.h>
#include <event2/buffer.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

int bus_wire_string(struct evbuffer *out, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	int rc = evbuffer_add(out, "\"", 1);
	while (!rc && *s) {
		size_t n = strcspn(s, "\"\\\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e"
				      "\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d"
				      "\x1e\x1f");
		if (n)
			rc = evbuffer_add(out, s, n);
		s += n;
		if (rc || !*s)
			break;
		unsigned char c = (unsigned char)*s++;
		char esc[6] = { '\\', (char)c };
		if (c < 0x20) {
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			rc = evbuffer_add(out, esc, 6);
		} else {
			rc = evbuffer_add(out, esc, 2);
		}
	}
	return rc ? -1 : evbuffer_add(out, "\"", 1);
}

int bus_wire_msg(struct evbuffer *out, const bus_msg *m, int deliveries)
{
	int rc = evbuffer_add_printf(out, "{\"offset\":%" PRId64 ",\"subject\":", m->seq) < 0;
	rc = rc || bus_wire_string(out, m->subject);
	rc = rc || evbuffer_add_printf(out, ",\"timestamp\":%" PRId64 ",\"key\":", m->ts) < 0;
	rc = rc || (m->key ? bus_wire_string(out, m->key) : evbuffer_add(out, "null", 4));
	rc = rc || evbuffer_add_printf(out, ",\"headers\":%s,\"payload\":",
				       m->headers ? m->headers : "null") < 0;
	rc = rc || evbuffer_add(out, m->payload, strlen(m->payload));
	if (deliveries > 0)
		rc = rc || evbuffer_add_printf(out, ",\"deliveries\":%d,\"receipt\":\"%" PRId64
						    "-%d\"",
					       deliveries, m->seq, deliveries) < 0;
	return rc || evbuffer_add(out, "}", 1) ? -1 : 0;
}

int bus_wire_event(struct evbuffer *out, const bus_msg *m)
{
	if (evbuffer_add_printf(out, "id: %" PRId64 "\nevent: message\ndata: ", m->seq) < 0 ||
	    bus_wire_msg(out, m, 0) < 0 || evbuffer_add(out, "\n\n", 2))
		return -1;
	return 0;
}

int bus_receipt_parse(const char *s, int64_t *seq, int *deliveries)
{
	char *end;
	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || v <= 0 || *end != '-' || end[1] < '0' || end[1] > '9')
		return -1;
	const char *d = end + 1;
	long n = strtol(d, &end, 10);
	if (errno || *end || n <= 0 || n > BUS_DELIVERIES_MAX)
		return -1;
	*seq = v;
	*deliveries = (int)n;
	return 0;
}

void bus_wire_metrics(struct evbuffer *out, const char *kernel, const bus_counter *c, size_t n,
		      unsigned subscribers, unsigned waiting_polls)
{
	for (size_t i = 0; i < n; i++)
		evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s{kernel=\"%s\"} %llu\n",
				    c[i].name, c[i].help, c[i].name, c[i].name, kernel,
				    (unsigned long long)c[i].v);
	evbuffer_add_printf(out,
			    "# HELP grace_bus_subscribers SSE subscribers connected.\n"
			    "# TYPE grace_bus_subscribers gauge\n"
			    "grace_bus_subscribers{kernel=\"%s\"} %u\n"
			    "# HELP grace_bus_waiting_polls Consumer group polls waiting for messages.\n"
			    "# TYPE grace_bus_waiting_polls gauge\n"
			    "grace_bus_waiting_polls{kernel=\"%s\"} %u\n",
			    kernel, subscribers, kernel, waiting_polls);
}

/* An offset: digits only, no sign, no overflow. */
static int parse_offset(const char *v, int64_t *out)
{
	char *end;
	errno = 0;
	long long n = v && *v >= '0' && *v <= '9' ? strtoll(v, &end, 10) : -1;
	if (n < 0 || errno || *end)
		return -1;
	*out = n;
	return 0;
}

int bus_query_from(struct sdk_req *req, enum bus_from dflt, enum bus_from *from, int64_t *seq)
{
	const char *q = sdk_req_query(req, "from");
	if (!q)
		*from = dflt;
	else if (!strcmp(q, "latest"))
		*from = BUS_FROM_LATEST;
	else if (!strcmp(q, "earliest"))
		*from = BUS_FROM_EARLIEST;
	else if (parse_offset(q, seq) == 0)
		*from = BUS_FROM_SEQ;
	else {
		sdk_reply_error(req, 400, "bad_query",
				"from must be an offset, \"earliest\" or \"latest\"");
		return -1;
	}
	return 0;
}

int bus_sub_from(struct sdk_req *req, enum bus_from *from, int64_t *seq)
{
	const char *last = sdk_req_header(req, "Last-Event-ID");
	if (!last || !*last)
		return bus_query_from(req, BUS_FROM_LATEST, from, seq);
	if (parse_offset(last, seq) < 0 || *seq == INT64_MAX) {
		sdk_reply_error(req, 400, "bad_last_event_id",
				"Last-Event-ID must be an offset this bus sent");
		return -1;
	}
	++*seq;
	*from = BUS_FROM_SEQ;
	return 0;
}

const char *bus_group_param(struct sdk_req *req)
{
	const char *g = sdk_req_param(req, "group");
	const char *why = bus_token_check(g);
	if (why) {
		sdk_reply_error(req, 400, "bad_group", "group name %s", why);
		return NULL;
	}
	return g;
}

void bus_wire_heartbeat(struct sdk_req *req)
{
	struct evbuffer *out = evbuffer_new();
	if (!out)
		return;
	evbuffer_add(out, ": heartbeat\n\n", 13);
	sdk_reply_stream_chunk(req, out);
	evbuffer_free(out);
}
