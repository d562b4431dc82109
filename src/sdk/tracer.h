/* Grace tracing itself: spans recorded at each hop of a request (the API's
 * handling on :8000, the gateway's forward, a kernel's handler) and sent in
 * batches, as OTLP/JSON, to the telemetry kernel. The exporter never blocks
 * the loop and never fails a request: when its queue is full or the
 * telemetry kernel does not answer, spans are dropped and counted.
 * Propagation is W3C Trace Context (sdk/tracecontext.h): the `traceparent`
 * of the current span goes on every sdk_call, and the gateway's. */
#ifndef GRACE_SDK_TRACER_H
#define GRACE_SDK_TRACER_H

#include "sdk/tracecontext.h"

#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct evbuffer;
typedef struct sdk_caller sdk_caller;
typedef struct sdk_tracer sdk_tracer;
typedef struct sdk_req sdk_req;
typedef struct sdk_route sdk_route;

enum { SDK_SPAN_INTERNAL = 1, SDK_SPAN_SERVER = 2, SDK_SPAN_CLIENT = 3 }; /* OTLP SpanKind */

typedef struct sdk_span {
	sdk_trace_ctx ctx; /* the trace, this span's own id, the flags */
	uint8_t parent[8];
	bool has_parent;
	bool active;    /* started and not ended */
	uint8_t kind;
	int64_t start_ns;
	char name[96];
	char tracestate[SDK_TRACESTATE_MAX];
} sdk_span;

#define SDK_TRACER_QUEUE_MAX 4096 /* spans waiting to be sent; past it they are dropped */
#define SDK_TRACER_BATCH 512      /* spans in one export */

/* `service` names the resource (service.name); spans go to the kernel
 * named "telemetry" through `caller` (borrowed: free the tracer after it). */
sdk_tracer *sdk_tracer_new(struct event_base *base, sdk_caller *caller, const char *service);
void sdk_tracer_free(sdk_tracer *t);

/* Starts `s`: a child of `parent` (its span_id is the parent span), or
 * the root of a new sampled trace when parent is NULL. */
void sdk_span_start(sdk_span *s, const sdk_trace_ctx *parent, int kind, const char *name);
/* The context a child of `s` is made from (and the traceparent sent). */
sdk_trace_ctx sdk_span_context(const sdk_span *s);
/* Ends `s` and queues it (when sampled). Attributes of the HTTP exchange:
 * method, target and request_id may be NULL; status 0: none. */
void sdk_span_end(sdk_tracer *t, sdk_span *s, int status, const char *method, const char *target,
		  const char *request_id);

/* Ends `s` with one string attribute (key and value may be NULL) and its
 * status said outright: for spans that are not an HTTP exchange (a SQLite
 * statement, a failed attempt of the gateway's forward). */
void sdk_span_end_attr(sdk_tracer *t, sdk_span *s, bool error, const char *key, const char *value);

/* SQLite statements become spans (sdk/db.c's statement hook, set by the
 * process's first tracer): those a handler runs on the loop are children
 * of its span, at most SDK_TRACE_CHILDREN_MAX of them per span; those a
 * pool job runs on a worker (sdk/pool.h's trace hooks, set likewise) are
 * children of the span current when the job was submitted, at most
 * SDK_TRACE_CHILDREN_MAX per job, queued when the job finishes on the
 * loop. The rest are counted as dropped. */
#define SDK_TRACE_CHILDREN_MAX 64

/* The span the code running now works for (this thread's), or NULL: a
 * handler's while it runs, so the calls it makes carry its traceparent and
 * the lines it logs its ids. Returns the previous one. */
const sdk_span *sdk_trace_current(void);
const sdk_span *sdk_trace_set_current(const sdk_span *s);

/* Spans sent, and dropped (the queue full, or the telemetry kernel not
 * taking them). */
unsigned long long sdk_tracer_sent(const sdk_tracer *t);
unsigned long long sdk_tracer_dropped(const sdk_tracer *t);
/* Appends the two counters to a /metrics answer (labels: component). */
void sdk_tracer_metrics(const sdk_tracer *t, const char *component, struct evbuffer *out);

/* The HTTP server's hooks (sdk_server_opts.trace_hooks, with the tracer
 * as trace_ctx): a routed request is traced when it carries a valid
 * traceparent, or always when `every_request` (the API on :8000 starts a
 * trace for each request that comes without one). */
void sdk_tracer_set_every_request(sdk_tracer *t, bool every_request);
/* Of the traces this process starts (a request without a valid
 * traceparent), the percentage sampled (recorded, and flagged so
 * downstream); the others are propagated unsampled. 100 by default. A
 * trace that comes with a traceparent keeps its caller's decision. */
void sdk_tracer_set_sample_percent(sdk_tracer *t, unsigned percent);
/* Of those sampled, at most this many a second are recorded (a token
 * bucket of a second's worth, as Jaeger's rate-limiting sampler): under
 * load a percentage records in proportion to the traffic, and storing
 * 1 % of 50,000 requests a second took the CPU the requests needed. The
 * others are propagated unsampled and counted (grace_trace_capped_total).
 * 0 (the default): no cap. */
void sdk_tracer_set_sample_rate_max(sdk_tracer *t, unsigned per_second);
/* What the telemetry kernel takes in one request ([telemetry]
 * request_items_max spans, its max_body_bytes): an export holds at most
 * that (and SDK_TRACER_BATCH), so that an operator's lower limit does not
 * refuse every export of a busy process. 0 leaves a bound as it is. Should
 * an export still get 413 (the limit lowered since, or another node's),
 * the tracer halves its span count and says so in the log. */
void sdk_tracer_set_limits(sdk_tracer *t, unsigned items_max, size_t body_max);
extern const struct sdk_trace_hooks sdk_tracer_http_hooks;

#endif
