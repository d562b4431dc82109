/* HTTP/1.1 requests from this process to kernels on loopback: keep-alive
 * connections pooled per port, answers streamed as they arrive with
 * backpressure, exact framing both ways, and the one set of retry rules
 * (used by the gateway, the kernel call path, probes and the CLI).
 *
 * Framing: every request with a body carries Content-Length, whatever its
 * method; an answer is parsed by http_parse.c's strict rules; a connection
 * goes back to its pool only when its answer was framed exactly and nothing
 * followed it, so bytes left over from one exchange never become the next.
 *
 * Retries, before any byte of the answer arrives, while the deadline lasts:
 *   - the request never left: no connection (refused), or the resolver says
 *     the kernel moved: always, after re-resolving;
 *   - the connection was reset with the request unanswered (a kernel that
 *     dies or closes with our request unread resets it): always, once, on
 *     a fresh connection;
 *   - it closed cleanly unanswered (it may have read and acted): only
 *     GET, HEAD and OPTIONS, once, on a fresh connection;
 *   - either again on that retry, to a kernel by name: once more after a
 *     pause, and only if the kernel is then found at another port (it was
 *     moving, and the retry met its old listener closing);
 *   - no answer in time: never (the kernel may still be at it). */
#ifndef GRACE_SDK_UPSTREAM_H
#define GRACE_SDK_UPSTREAM_H

#include "sdk/http_parse.h"

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct evbuffer;

typedef struct sdk_upstream sdk_upstream;
typedef struct sdk_ureq sdk_ureq;

/* Where kernel `name` listens now: its port, or a negative sdk_status
 * (SDK_ENOTFOUND: no such kernel; SDK_EBUSY: not running now). */
typedef int (*sdk_resolve_fn)(const char *name, void *arg);

enum sdk_up_error {
	SDK_UP_UNAVAILABLE = -1, /* the resolver has no running kernel by that name */
	SDK_UP_REFUSED = -2,     /* no connection could be made */
	SDK_UP_RESET = -3,       /* the connection failed before an answer */
	SDK_UP_TIMEOUT = -4,     /* no answer (or no more of it) in time */
	SDK_UP_BAD_ANSWER = -5,  /* an answer that breaks HTTP's framing rules */
	SDK_UP_TRUNCATED = -6,   /* the answer stopped before its end */
	SDK_UP_BUSY = -7,        /* too many requests already wait on that kernel */
	SDK_UP_NOMEM = -8,
};

typedef struct sdk_ureq_opts {
	const char *kernel; /* resolved at each attempt (under 64 bytes); or NULL, then `port` */
	int port;
	const char *method;
	const char *target; /* path and query, encoded as they go on the wire */
	/* NULL-terminated "Name", "value" pairs; copied. */
	const char *const *headers;
	const char *body; /* copied; may be NULL */
	size_t body_len;
	unsigned head_timeout_ms; /* for the answer's head, per attempt */
	unsigned idle_timeout_ms; /* between pieces of the answer's body; 0: head_timeout_ms */
	unsigned deadline_ms;     /* no attempt starts after this; 0: head_timeout_ms */
	bool fresh;               /* a connection of its own, closed afterwards (probes) */
	/* An attempt failed with `err` and another follows (may be NULL;
	 * called with the request's cbs arg): for per-attempt spans. */
	void (*on_retry)(sdk_ureq *u, int err, void *arg);
} sdk_ureq_opts;

/* Exactly one of: on_head, then on_body until `last`; or on_error (at any
 * point, also after on_head: the answer was cut off). After `last` or an
 * error the request is gone. */
typedef struct sdk_ureq_cbs {
	void (*on_head)(sdk_ureq *u, const sdk_http_head *h, void *arg);
	/* Body bytes as they come (drain what you take); `last` once the body
	 * is complete (data may then be empty). */
	void (*on_body)(sdk_ureq *u, struct evbuffer *data, bool last, void *arg);
	void (*on_error)(sdk_ureq *u, int err, const char *why, void *arg);
	/* The upstream is being freed with this request unfinished: free
	 * what `arg` holds, answer nothing (may be NULL). */
	void (*on_drop)(void *arg);
} sdk_ureq_cbs;

/* `pool_max` connections per port at most; `queue_max` requests waiting
 * for one across all ports (past it: SDK_UP_BUSY). */
sdk_upstream *sdk_upstream_new(struct event_base *base, sdk_resolve_fn resolve, void *arg,
			       unsigned pool_max, unsigned queue_max);
/* Ends every request in flight, calling only their on_drop. Never from
 * inside one of its callbacks. */
void sdk_upstream_free(sdk_upstream *up);

/* Starts a request. NULL when it could not start (out of memory, a body or
 * headers over the limits); callbacks run later, never from inside. */
sdk_ureq *sdk_upstream_request(sdk_upstream *up, const sdk_ureq_opts *o, const sdk_ureq_cbs *cbs,
			       void *arg);
/* Stops it: no more callbacks; its connection is closed, so the kernel
 * sees its client go. Safe from inside a callback. */
void sdk_ureq_cancel(sdk_ureq *u);
/* Backpressure: stop or resume reading the answer's body. */
void sdk_ureq_pause(sdk_ureq *u, bool paused);
/* Milliseconds since the request started. */
double sdk_ureq_elapsed_ms(const sdk_ureq *u);
/* Requests waiting for a connection to `port`. */
unsigned sdk_upstream_queued(const sdk_upstream *up, int port);
/* What an error code means, in words (the caller names the peer). */
const char *sdk_up_error_text(int err);

#endif
