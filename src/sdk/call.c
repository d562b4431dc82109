#include "sdk/call.h"
#include "sdk/tracer.h"

#include "sdk/clock.h"
#include "sdk/svid.h"
#include "sdk/token.h"

#include <event2/buffer.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CALL_POOL_MAX 16     /* connections per kernel from one caller */
#define CALL_QUEUE_MAX 4096  /* calls waiting for a connection, in all */
#define CALL_ANSWER_MAX (64u << 20) /* a buffered answer's body */
#define CALL_HEADERS_MAX 16  /* pairs a caller may add */

/* A call held while the first SVID for its callee is fetched (at most
 * that fetch's deadline), with copies of what it sends. */
struct deferred {
	struct deferred *next;
	/* A waiter (sdk_caller_svid) rather than a call: told, not started. */
	void (*ready)(void *arg);
	char *kernel, *method, *target, *body; /* malloc'd */
	size_t len;
	char **headers; /* malloc'd, NULL-ended pairs, each malloc'd */
	unsigned timeout_ms;
	sdk_call_cb cb;
	void *arg;
	bool has_span;
	sdk_span span;
};

struct sdk_caller {
	sdk_upstream *up;
	struct event_base *base;
	char self[64];
	const char *token;
	char attestation[72]; /* "" or the trust kernel's answer at join */
	sdk_svids *svids;     /* NULL: calls carry no SVID (svid.h) */
	struct deferred *deferred, **deferred_tail;
	size_t n_deferred;
};

struct call {
	sdk_call_cb cb;
	void *arg;
	int status;
	struct evbuffer *body;
	/* The span current when the call was made (has_span): current again
	 * while cb runs, so the calls a continuation makes, its SQLite work
	 * and its log lines belong to the same trace. */
	bool has_span;
	sdk_span span;
};

/* cb, with the caller's span current while it runs. */
static void answer(struct call *x, int status, const char *body, size_t len, double ms,
		   const char *error)
{
	const sdk_span *prev = x->has_span ? sdk_trace_set_current(&x->span) : NULL;
	x->cb(status, body, len, ms, error, x->arg);
	if (x->has_span)
		sdk_trace_set_current(prev);
}

static void on_head(sdk_ureq *u, const sdk_http_head *h, void *arg)
{
	(void)u;
	struct call *x = arg;
	x->status = h->status;
}

static void on_body(sdk_ureq *u, struct evbuffer *data, bool last, void *arg)
{
	struct call *x = arg;
	if (evbuffer_get_length(x->body) + evbuffer_get_length(data) > CALL_ANSWER_MAX) {
		evbuffer_drain(data, evbuffer_get_length(data));
		double ms = sdk_ureq_elapsed_ms(u);
		sdk_ureq_cancel(u);
		answer(x, 0, NULL, 0, ms, "the answer is too large");
		evbuffer_free(x->body);
		free(x);
		return;
	}
	evbuffer_add_buffer(x->body, data);
	if (!last)
		return;
	size_t len = evbuffer_get_length(x->body);
	const char *p = len ? (const char *)evbuffer_pullup(x->body, -1) : "";
	answer(x, x->status, p, len, sdk_ureq_elapsed_ms(u), NULL);
	evbuffer_free(x->body);
	free(x);
}

static void on_error(sdk_ureq *u, int err, const char *why, void *arg)
{
	(void)err;
	struct call *x = arg;
	answer(x, 0, NULL, 0, sdk_ureq_elapsed_ms(u), why);
	evbuffer_free(x->body);
	free(x);
}

static void on_drop(void *arg)
{
	struct call *x = arg;
	evbuffer_free(x->body);
	free(x);
}

static const sdk_ureq_cbs call_cbs = { on_head, on_body, on_error, on_drop };

static void deferred_free(struct deferred *d)
{
	free(d->kernel);
	free(d->method);
	free(d->target);
	free(d->body);
	for (size_t i = 0; d->headers && d->headers[i]; i++)
		free(d->headers[i]);
	free(d->headers);
	free(d);
}

static char *dup_or_null(const char *s, size_t len, bool *bad)
{
	if (!s)
		return NULL;
	char *p = malloc(len + 1);
	if (!p) {
		*bad = true;
		return NULL;
	}
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

/* Holds the call until the SVID fetch for its callee ends. -1 when it
 * cannot be held (no memory, too many held). */
static int defer(sdk_caller *c, const char *kernel, const char *method, const char *target,
		 const char *body, size_t len, const char *const *headers, unsigned timeout_ms,
		 sdk_call_cb cb, void *arg)
{
	if (c->n_deferred >= CALL_QUEUE_MAX)
		return -1;
	struct deferred *d = calloc(1, sizeof *d);
	if (!d)
		return -1;
	bool bad = false;
	size_t nh = 0;
	while (headers && headers[nh] && headers[nh + 1])
		nh += 2;
	d->kernel = dup_or_null(kernel, strlen(kernel), &bad);
	d->method = dup_or_null(method, strlen(method), &bad);
	d->target = dup_or_null(target, strlen(target), &bad);
	d->body = dup_or_null(body, body ? len : 0, &bad);
	d->len = body ? len : 0;
	d->headers = calloc(nh + 1, sizeof *d->headers);
	bad |= !d->headers;
	for (size_t i = 0; !bad && i < nh; i++)
		d->headers[i] = dup_or_null(headers[i], strlen(headers[i]), &bad);
	if (bad) {
		deferred_free(d);
		return -1;
	}
	d->timeout_ms = timeout_ms;
	d->cb = cb;
	d->arg = arg;
	const sdk_span *cur = sdk_trace_current();
	if (cur) {
		d->span = *cur;
		d->has_span = true;
	}
	*c->deferred_tail = d;
	c->deferred_tail = &d->next;
	c->n_deferred++;
	return 0;
}

static int start(sdk_caller *c, const char *kernel, int port, const char *method,
		 const char *target, const char *body, size_t len, const char *const *headers,
		 unsigned timeout_ms, sdk_call_cb cb, void *arg, bool may_defer);

/* The SVID fetch for `callee` ended, or the hold on fetches: its held
 * calls go with the SVID, or without one (then the callee decides,
 * docs/trust.md), or wait for the fetch that starts now. */
static void on_svid_ready(const char *callee, void *arg)
{
	sdk_caller *c = arg;
	struct deferred *ready = NULL, **ready_tail = &ready;
	for (struct deferred **p = &c->deferred; *p;) {
		struct deferred *d = *p;
		if (strcmp(d->kernel, callee)) {
			p = &d->next;
			continue;
		}
		*p = d->next;
		if (!*p)
			c->deferred_tail = p;
		c->n_deferred--;
		d->next = NULL;
		*ready_tail = d;
		ready_tail = &d->next;
	}
	while (ready) {
		struct deferred *d = ready;
		ready = d->next;
		if (d->ready) {
			d->ready(d->arg);
			deferred_free(d);
			continue;
		}
		const sdk_span *prev = d->has_span ? sdk_trace_set_current(&d->span) : NULL;
		if (start(c, d->kernel, 0, d->method, d->target, d->body, d->len,
			  (const char *const *)d->headers, d->timeout_ms, d->cb, d->arg, true) < 0)
			d->cb(0, NULL, 0, 0, "the call could not start", d->arg);
		if (d->has_span)
			sdk_trace_set_current(prev);
		deferred_free(d);
	}
}

static int start(sdk_caller *c, const char *kernel, int port, const char *method,
		 const char *target, const char *body, size_t len, const char *const *headers,
		 unsigned timeout_ms, sdk_call_cb cb, void *arg, bool may_defer)
{
	/* The caller's SVID for the callee (every kernel but the trust kernel,
	 * to which the attestation speaks instead). */
	const char *svid = NULL;
	bool main = kernel && !strcmp(kernel, SDK_MAIN_NAME);
	if (c->svids && kernel && strcmp(kernel, "trust") && !main &&
	    sdk_svids_get(c->svids, kernel, sdk_wall_ms(), &svid) == SDK_SVID_PENDING && may_defer)
		return defer(c, kernel, method, target, body, len, headers, timeout_ms, cb, arg);
	const char *h[2 * (CALL_HEADERS_MAX + 7) + 1];
	size_t n = 0;
	h[n++] = SDK_CALLER_HEADER;
	h[n++] = c->self;
	if (c->token && *c->token && !main) {
		h[n++] = SDK_TOKEN_HEADER;
		h[n++] = c->token;
	}
	if (c->attestation[0] && kernel && !strcmp(kernel, "trust")) {
		h[n++] = SDK_ATTESTATION_HEADER;
		h[n++] = c->attestation;
	}
	if (svid) {
		h[n++] = SDK_SVID_HEADER;
		h[n++] = svid;
	}
	/* JSON unless the caller names its own type (a form, for instance). */
	bool own_type = false;
	for (size_t i = 0; headers && headers[i] && headers[i + 1]; i += 2)
		own_type |= !strcasecmp(headers[i], "Content-Type");
	if (body && !own_type) {
		h[n++] = "Content-Type";
		h[n++] = "application/json";
	}
	for (size_t i = 0; headers && headers[i] && headers[i + 1]; i += 2) {
		if (n + 2 >= sizeof h / sizeof *h)
			return -1;
		h[n++] = headers[i];
		h[n++] = headers[i + 1];
	}
	/* The span the caller works for is the parent of the callee's. */
	char traceparent[SDK_TRACEPARENT_LEN + 1];
	const sdk_span *cur = sdk_trace_current();
	if (cur && n + 4 < sizeof h / sizeof *h) {
		sdk_trace_ctx tc = sdk_span_context(cur);
		sdk_traceparent_format(&tc, traceparent);
		h[n++] = "traceparent";
		h[n++] = traceparent;
		if (*cur->tracestate) {
			h[n++] = "tracestate";
			h[n++] = cur->tracestate;
		}
	}
	h[n] = NULL;
	struct call *x = calloc(1, sizeof *x);
	if (!x || !(x->body = evbuffer_new())) {
		free(x);
		return -1;
	}
	x->cb = cb;
	x->arg = arg;
	if (cur) {
		x->span = *cur;
		x->has_span = true;
	}
	sdk_ureq_opts o = { .kernel = kernel, .port = port, .method = method, .target = target,
			    .headers = h, .body = body, .body_len = body ? len : 0,
			    .head_timeout_ms = timeout_ms, .deadline_ms = timeout_ms,
			    .fresh = kernel == NULL };
	if (!sdk_upstream_request(c->up, &o, &call_cbs, x)) {
		evbuffer_free(x->body);
		free(x);
		return -1;
	}
	return 0;
}

int sdk_call(sdk_caller *c, const char *kernel, const char *method, const char *target,
	     const char *body, size_t len, const char *const *headers, unsigned timeout_ms,
	     sdk_call_cb cb, void *arg)
{
	return start(c, kernel, 0, method, target, body, len, headers, timeout_ms, cb, arg, true);
}

int sdk_call_port(sdk_caller *c, int port, const char *method, const char *target,
		  const char *body, size_t len, const char *const *headers, unsigned timeout_ms,
		  sdk_call_cb cb, void *arg)
{
	return start(c, NULL, port, method, target, body, len, headers, timeout_ms, cb, arg, false);
}

/* The identity every caller made from now on carries (sdk_call_identity). */
static struct {
	char attestation[72];
	char domain[SDK_SPIFFE_ID_MAX];
	unsigned ttl_s;
} identity;

void sdk_call_identity(const char *attestation, const char *domain, unsigned ttl_s)
{
	snprintf(identity.attestation, sizeof identity.attestation, "%s",
		 attestation ? attestation : "");
	snprintf(identity.domain, sizeof identity.domain, "%s", domain ? domain : "");
	identity.ttl_s = ttl_s;
}

static int no_names(const char *name, void *arg)
{
	(void)name, (void)arg;
	return -1;
}

sdk_caller *sdk_caller_new(struct event_base *base, const char *self, const char *token,
			   sdk_resolve_fn resolve, void *arg)
{
	sdk_caller *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	snprintf(c->self, sizeof c->self, "%s", self);
	c->token = token;
	c->base = base;
	c->deferred_tail = &c->deferred;
	c->up = sdk_upstream_new(base, resolve ? resolve : no_names, arg, CALL_POOL_MAX,
				 CALL_QUEUE_MAX);
	if (!c->up) {
		free(c);
		return NULL;
	}
	snprintf(c->attestation, sizeof c->attestation, "%s", identity.attestation);
	if (identity.domain[0] && sdk_caller_use_svids(c, identity.domain, identity.ttl_s, false) < 0) {
		sdk_caller_free(c);
		return NULL;
	}
	return c;
}

void sdk_caller_set_attestation(sdk_caller *c, const char *attestation)
{
	snprintf(c->attestation, sizeof c->attestation, "%s", attestation ? attestation : "");
}

const char *sdk_caller_attestation(const sdk_caller *c)
{
	return c->attestation;
}

struct event_base *sdk_caller_base(const sdk_caller *c)
{
	return c->base;
}

int sdk_caller_use_svids(sdk_caller *c, const char *domain, unsigned ttl_s, bool held)
{
	if (c->svids)
		return 0;
	c->svids = sdk_svids_new(c->base, c, domain, ttl_s, held, on_svid_ready, c);
	return c->svids ? 0 : -1;
}

int sdk_caller_svid(sdk_caller *c, const char *kernel, const char **tok, void (*ready)(void *),
		    void *arg)
{
	*tok = NULL;
	if (!c->svids || !strcmp(kernel, "trust"))
		return SDK_SVID_NONE;
	int rc = sdk_svids_get(c->svids, kernel, sdk_wall_ms(), tok);
	if (rc != SDK_SVID_PENDING || !ready)
		return rc;
	struct deferred *d = c->n_deferred < CALL_QUEUE_MAX ? calloc(1, sizeof *d) : NULL;
	bool bad = !d;
	if (d)
		d->kernel = dup_or_null(kernel, strlen(kernel), &bad);
	if (bad) {
		if (d)
			deferred_free(d);
		return SDK_SVID_NONE; /* go without: the callee decides */
	}
	d->ready = ready;
	d->arg = arg;
	*c->deferred_tail = d;
	c->deferred_tail = &d->next;
	c->n_deferred++;
	return SDK_SVID_PENDING;
}

void sdk_caller_svid_cancel(sdk_caller *c, void *arg)
{
	for (struct deferred **p = &c->deferred; *p;) {
		struct deferred *d = *p;
		if (!d->ready || d->arg != arg) {
			p = &d->next;
			continue;
		}
		*p = d->next;
		if (!*p)
			c->deferred_tail = p;
		c->n_deferred--;
		deferred_free(d);
	}
}

void sdk_caller_svids_release(sdk_caller *c)
{
	if (c->svids)
		sdk_svids_release(c->svids);
}

void sdk_caller_free(sdk_caller *c)
{
	if (!c)
		return;
	sdk_upstream_free(c->up); /* on_drop frees each call's state */
	sdk_svids_free(c->svids); /* its fetches were dropped above */
	while (c->deferred) {
		struct deferred *d = c->deferred;
		c->deferred = d->next;
		deferred_free(d);
	}
	free(c);
}

int sdk_uri_encode(const char *in, char *out, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
		bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			     (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.' ||
			     *p == '~';
		if (o + (plain ? 1 : 3) >= len)
			return -1;
		if (plain) {
			out[o++] = (char)*p;
		} else {
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	out[o] = '\0';
	return 0;
}
