#include "sdk/call.h"
#include "sdk/tracer.h"

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

struct sdk_caller {
	sdk_upstream *up;
	char self[64];
	const char *token;
	char attestation[72]; /* "" or the trust kernel's answer at join */
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

static int start(sdk_caller *c, const char *kernel, int port, const char *method,
		 const char *target, const char *body, size_t len, const char *const *headers,
		 unsigned timeout_ms, sdk_call_cb cb, void *arg)
{
	const char *h[2 * (CALL_HEADERS_MAX + 6) + 1];
	size_t n = 0;
	h[n++] = SDK_CALLER_HEADER;
	h[n++] = c->self;
	if (c->token && *c->token) {
		h[n++] = SDK_TOKEN_HEADER;
		h[n++] = c->token;
	}
	if (c->attestation[0] && kernel && !strcmp(kernel, "trust")) {
		h[n++] = SDK_ATTESTATION_HEADER;
		h[n++] = c->attestation;
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
	return start(c, kernel, 0, method, target, body, len, headers, timeout_ms, cb, arg);
}

int sdk_call_port(sdk_caller *c, int port, const char *method, const char *target,
		  const char *body, size_t len, const char *const *headers, unsigned timeout_ms,
		  sdk_call_cb cb, void *arg)
{
	return start(c, NULL, port, method, target, body, len, headers, timeout_ms, cb, arg);
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
	c->up = sdk_upstream_new(base, resolve ? resolve : no_names, arg, CALL_POOL_MAX,
				 CALL_QUEUE_MAX);
	if (!c->up) {
		free(c);
		return NULL;
	}
	return c;
}

void sdk_caller_set_attestation(sdk_caller *c, const char *attestation)
{
	snprintf(c->attestation, sizeof c->attestation, "%s", attestation ? attestation : "");
}

void sdk_caller_free(sdk_caller *c)
{
	if (!c)
		return;
	sdk_upstream_free(c->up); /* on_drop frees each call's state */
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
