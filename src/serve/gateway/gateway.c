#include "serve/gateway/gateway.h"

#include "kernels/registry.h"
#include "sdk/log.h"
#include "sdk/str.h"
#include "sdk/svid.h"
#include "sdk/token.h"
#include "sdk/tracer.h"
#include "sdk/clock.h"
#include "serve/auth/delegation.h"
#include "serve/auth/users.h"

#include <event2/buffer.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Request headers a kernel may see; everything else stays at the edge
 * (the caller's identity headers among them: the gateway sets those). */
static const char *const forwarded_request_headers[] = {
	"Content-Type", "Accept", "Accept-Encoding", "If-None-Match", "If-Match", "Last-Event-ID",
};
/* Response headers a client may see from a kernel. */
static const char *const forwarded_response_headers[] = {
	"Content-Type", "Cache-Control", "ETag", "Location", "Retry-After", "Allow",
};
#define N_FORWARDED_REQUEST (sizeof forwarded_request_headers / sizeof *forwarded_request_headers)
#define FORWARD_HEADERS_MAX (2 * (N_FORWARDED_REQUEST + 10) + 1)

/* The kernels that work for a user after the request and must read what
 * only the main process holds: each gets a delegation of that one read
 * (serve/auth/delegation.h) with the user's forwards. The research
 * kernel's memory source reads the asking user's memory tables. */
static const struct {
	const char *kernel, *scope;
} delegated[] = { { "research", "memory:read" } };
#define DELEGATION_MS (15 * 60 * 1000) /* past the longest investigation */

struct gateway {
	struct event_base *base;
	supervisor *sup;
	sdk_upstream *up; /* the proxied requests' pools */
	sdk_caller *caller; /* probes and the main process's own calls */
	const char *token;
	sdk_tracer *tracer; /* NULL: forwards are not traced */
	const unsigned char *deleg_key; /* auth's, borrowed; NULL: no delegations */
};

/* One proxied request, from the client's request to the end of the
 * kernel's answer. Owned by itself: freed when either side ends it. */
struct forward {
	sdk_req *req;
	const char *kernel; /* its configuration's name, borrowed */
	sdk_ureq *u;
	int status;
	long long length; /* the answer's Content-Length, or -1 */
	bool streaming;   /* the client's answer has begun */
	bool paused;      /* the kernel's read is paused for a slow client */
	gateway *gw;
	sdk_span span;    /* the forward, when the request is traced */
	/* Once the forward is retried: the attempt going on, a child of the
	 * forward (the first is made when the first retry ends it, so an
	 * untried forward costs no span). */
	sdk_span attempt;
	unsigned attempts;
	char method[8], request_id[40], target[160]; /* for the span: req may be gone */
};

/* Every end of a forward comes here: its span ends with the kernel's
 * status (0: it gave none). */
static void fw_free(struct forward *f)
{
	if (f->attempt.active)
		sdk_span_end(f->gw->tracer, &f->attempt, f->status, f->method, f->target,
			     f->request_id);
	if (f->span.active)
		sdk_span_end(f->gw->tracer, &f->span, f->status, f->method, f->target,
			     f->request_id);
	free(f);
}

static void on_head(sdk_ureq *u, const sdk_http_head *h, void *arg)
{
	(void)u;
	struct forward *f = arg;
	for (size_t i = 0; i < sizeof forwarded_response_headers / sizeof *forwarded_response_headers;
	     i++) {
		const char *v = sdk_http_field_get(h, forwarded_response_headers[i]);
		if (v)
			sdk_req_add_header(f->req, forwarded_response_headers[i], v);
	}
	f->status = h->status;
	f->length = h->body == SDK_HTTP_BODY_LENGTH ? (long long)h->content_length
		    : h->body == SDK_HTTP_BODY_NONE   ? 0
						      : -1;
}

static void on_client_drained(sdk_req *req, void *arg)
{
	(void)req;
	struct forward *f = arg;
	if (f->paused) {
		f->paused = false;
		sdk_ureq_pause(f->u, false);
	}
}

static void on_body(sdk_ureq *u, struct evbuffer *data, bool last, void *arg)
{
	struct forward *f = arg;
	sdk_req *req = f->req;
	if (!f->streaming && last) {
		/* The whole answer came at once: one write to the client. */
		sdk_req_on_close(req, NULL, NULL);
		sdk_reply_raw(req, f->status, NULL, data);
		fw_free(f);
		return;
	}
	if (!f->streaming) {
		f->streaming = true;
		sdk_reply_on_drain(req, on_client_drained, f);
		sdk_reply_begin(req, f->status, f->length);
	}
	sdk_reply_write(req, data);
	if (last) {
		sdk_req_on_close(req, NULL, NULL);
		sdk_reply_end(req);
		fw_free(f);
		return;
	}
	if (!f->paused && sdk_reply_backlog(req) > GW_STREAM_BUFFER_MAX) {
		f->paused = true;
		sdk_ureq_pause(u, true);
	}
}

static void on_error(sdk_ureq *u, int err, const char *why, void *arg)
{
	(void)u;
	struct forward *f = arg;
	sdk_req *req = f->req;
	sdk_req_on_close(req, NULL, NULL);
	if (f->streaming) {
		/* Part of the answer is out: only a cut connection can tell the
		 * client it is incomplete. */
		sdk_log(SDK_LOG_WARN, sdk_req_id(req), "upstream stream ended: %s", why);
		sdk_reply_abort(req);
	} else {
		int status = err == SDK_UP_TIMEOUT			     ? 504
			     : err == SDK_UP_UNAVAILABLE || err == SDK_UP_BUSY ? 503
									       : 502;
		const char *code = err == SDK_UP_TIMEOUT       ? "upstream_timeout"
				   : err == SDK_UP_UNAVAILABLE ? "kernel_unavailable"
				   : err == SDK_UP_BUSY	       ? "kernel_busy"
							       : "upstream_failed";
		if (status == 503)
			sdk_req_add_header(req, "Retry-After", "1");
		sdk_reply_error(req, status, code, "%s: %s", f->kernel, why);
	}
	fw_free(f);
}

/* The client left: the kernel must see its request end too. */
static void on_client_gone(sdk_req *req, void *arg)
{
	struct forward *f = arg;
	sdk_ureq_cancel(f->u);
	if (f->streaming)
		sdk_reply_end(req);
	else
		sdk_reply_error(req, 499, "client_closed", "the client went away");
	fw_free(f);
}

static void on_drop(void *arg)
{
	struct forward *f = arg;
	sdk_req_on_close(f->req, NULL, NULL);
	if (f->streaming)
		sdk_reply_abort(f->req);
	else
		sdk_reply_error(f->req, 503, "shutting_down", "Grace is stopping");
	fw_free(f);
}

/* An attempt failed and the upstream tries again: the failed attempt's
 * span ends (an error, with why) and the next one's starts. */
static void on_retry(sdk_ureq *u, int err, void *arg)
{
	(void)u;
	struct forward *f = arg;
	if (!f->span.active)
		return;
	sdk_trace_ctx fc = sdk_span_context(&f->span);
	char name[32];
	if (!f->attempts) {
		/* The first attempt began with the forward. */
		sdk_span_start(&f->attempt, &fc, SDK_SPAN_CLIENT, "attempt 1");
		f->attempt.start_ns = f->span.start_ns;
		f->attempts = 1;
	}
	sdk_span_end_attr(f->gw->tracer, &f->attempt, true, "error.type", sdk_up_error_text(err));
	snprintf(name, sizeof name, "attempt %u", ++f->attempts);
	sdk_span_start(&f->attempt, &fc, SDK_SPAN_CLIENT, name);
}

static const sdk_ureq_cbs forward_cbs = { on_head, on_body, on_error, on_drop };

/* A long poll (a `wait_ms` query on a kernel that declares one) may take
 * the kernel's own longest wait and a margin; anything else has the
 * normal time to start answering. */
static unsigned head_timeout(const sup_kernel *k, sdk_req *req)
{
	const char *w = sdk_req_query(req, "wait_ms");
	if (!w) /* first: the registry's walk by name was 480 instructions a forward */
		return GW_ATTEMPT_TIMEOUT_MS;
	const sdk_kernel_def *def = kernel_registry_find(k->cfg->name);
	if (!def || !def->long_poll_max_ms)
		return GW_ATTEMPT_TIMEOUT_MS;
	unsigned long long ms = strtoull(w, NULL, 10);
	if (ms > def->long_poll_max_ms)
		ms = def->long_poll_max_ms;
	ms += GW_LONG_POLL_MARGIN_MS;
	return ms > GW_ATTEMPT_TIMEOUT_MS ? (unsigned)ms : GW_ATTEMPT_TIMEOUT_MS;
}

/* The decoded path re-encoded (its "/" kept): what reaches the kernel is
 * what was routed on. */
static int encode_target(const char *path, const char *query, char *out, size_t len)
{
	size_t o = 0;
	for (const char *seg = path; *seg;) {
		const char *slash = strchr(seg + 1, '/');
		size_t n = slash ? (size_t)(slash - seg) : strlen(seg);
		char piece[SDK_PATH_MAX];
		if (n >= sizeof piece)
			return -1;
		memcpy(piece, seg + 1, n - 1);
		piece[n - 1] = '\0';
		if (o + 1 >= len)
			return -1;
		out[o++] = '/';
		if (sdk_uri_encode(piece, out + o, len - o) < 0)
			return -1;
		o += strlen(out + o);
		seg += n;
	}
	if (o == 0)
		out[o++] = '/';
	if (o + 1 >= len)
		return -1;
	if (!query) {
		out[o] = '\0';
		return 0;
	}
	out[o++] = '?';
	return sdk_strcpy(out + o, len - o, query) >= len - o ? -1 : 0;
}

/* A forward waiting for the main process's first SVID for its kernel. */
struct svid_wait {
	gateway *gw;
	sdk_req *req;
	char kernel[GRACE_NAME_MAX + 1];
	char path[SDK_PATH_MAX + 1];
};

static void on_svid_wait_gone(sdk_req *req, void *arg)
{
	(void)req;
	struct svid_wait *w = arg;
	sdk_caller_svid_cancel(w->gw->caller, w);
	free(w);
}

static void on_svid_ready(void *arg)
{
	struct svid_wait *w = arg;
	sdk_req_on_close(w->req, NULL, NULL);
	sup_kernel *k = sup_find(w->gw->sup, w->kernel);
	if (k)
		gw_forward(w->gw, k, w->req, w->path);
	else
		sdk_reply_error(w->req, 503, "kernel_unavailable", "kernel %s is gone", w->kernel);
	free(w);
}

/* The main process's SVID for k (NULL: none), or NULL with *waiting when
 * the forward waits for the first one (gw_forward is called again then). */
static const char *forward_svid(gateway *gw, sup_kernel *k, sdk_req *req, const char *path,
				bool *waiting)
{
	const char *svid = NULL;
	*waiting = false;
	if (sdk_caller_svid(gw->caller, k->cfg->name, &svid, NULL, NULL) != SDK_SVID_PENDING)
		return svid;
	struct svid_wait *w = calloc(1, sizeof *w);
	if (!w || strlen(path) >= sizeof w->path) {
		free(w);
		return NULL; /* go without: the kernel decides */
	}
	*w = (struct svid_wait){ .gw = gw, .req = req };
	snprintf(w->kernel, sizeof w->kernel, "%s", k->cfg->name);
	memcpy(w->path, path, strlen(path) + 1);
	if (sdk_caller_svid(gw->caller, k->cfg->name, &svid, on_svid_ready, w) != SDK_SVID_PENDING) {
		free(w);
		return svid;
	}
	sdk_req_on_close(req, on_svid_wait_gone, w);
	*waiting = true;
	return NULL;
}

size_t gw_body_max(const sup_kernel *k, const char *method, const char *path)
{
	size_t max = k->cfg->max_body_bytes;
	const sdk_kernel_def *def = kernel_registry_find(k->cfg->name);
	if (!def || !def->routes)
		return max;
	sdk_route_params params;
	int i = sdk_route_match(def->routes, def->n_routes, sizeof(sdk_route), method, path,
				&params);
	return i >= 0 && def->routes[i].max_body > max ? def->routes[i].max_body : max;
}

void gw_forward(gateway *gw, sup_kernel *k, sdk_req *req, const char *path)
{
	/* Its node does not answer: said at once, not after the relay's wait. */
	if (k->state == SUP_UNREACHABLE) {
		sdk_req_add_header(req, "Retry-After", "1");
		sdk_reply_error(req, 503, "node_unreachable",
				"kernel %s runs on node %s, which does not answer", k->cfg->name,
				k->cfg->node);
		return;
	}
	if (k->state == SUP_FAILED || k->state == SUP_STOPPED || k->state == SUP_PORT_UNAVAILABLE) {
		sdk_req_add_header(req, "Retry-After", "5");
		sdk_reply_error(req, 503, "kernel_unavailable", "kernel %s is %s", k->cfg->name,
				sup_state_name(k->state));
		return;
	}
	/* The kernel would refuse it and close while we still write: say it here. */
	size_t body_len = sdk_req_body_len(req), body_max;
	if (body_len > k->cfg->max_body_bytes &&
	    body_len > (body_max = gw_body_max(k, sdk_req_method(req), path))) {
		sdk_reply_error(req, 413, "body_too_large", "kernel %s takes bodies up to %zu bytes here",
				k->cfg->name, body_max);
		return;
	}
	if (sdk_upstream_queued(gw->up, k->port) >= GW_PENDING_MAX) {
		sdk_req_add_header(req, "Retry-After", "1");
		sdk_reply_error(req, 503, "kernel_busy", "kernel %s has %u requests waiting",
				k->cfg->name, GW_PENDING_MAX);
		return;
	}
	char target[SDK_PATH_MAX * 3 + 2048];
	if (encode_target(path, sdk_req_query_string(req), target, sizeof target) < 0) {
		sdk_reply_error(req, 414, "uri_too_long", "the request URI is too long");
		return;
	}
	bool waiting;
	const char *svid = forward_svid(gw, k, req, path, &waiting);
	if (waiting)
		return;
	const char *h[FORWARD_HEADERS_MAX];
	size_t n = 0;
	for (size_t i = 0; i < N_FORWARDED_REQUEST; i++) {
		const char *v = sdk_req_header(req, forwarded_request_headers[i]);
		if (v) {
			h[n++] = forwarded_request_headers[i];
			h[n++] = v;
		}
	}
	h[n++] = "X-Request-Id";
	h[n++] = sdk_req_id(req);
	h[n++] = SDK_TOKEN_HEADER;
	h[n++] = gw->token;
	h[n++] = SDK_CALLER_HEADER;
	h[n++] = SDK_GATEWAY_CALLER;
	if (svid) {
		h[n++] = SDK_SVID_HEADER;
		h[n++] = svid;
	}
	/* To the trust kernel the main process proves itself instead, as
	 * sdk_call does (an admin's request for an SVID is believed only so). */
	const char *att = sdk_caller_attestation(gw->caller);
	if (*att && !strcmp(k->cfg->name, "trust")) {
		h[n++] = SDK_ATTESTATION_HEADER;
		h[n++] = att;
	}
	int role = 0;
	const char *user = sdk_req_user(req, &role);
	char deleg[AUTH_DELEG_MAX + 1];
	if (user) {
		h[n++] = SDK_USER_HEADER;
		h[n++] = user;
		h[n++] = SDK_ROLE_HEADER;
		h[n++] = role == AUTH_ROLE_ADMIN ? "admin" : "user";
		for (size_t i = 0; gw->deleg_key && i < sizeof delegated / sizeof *delegated; i++)
			if (!strcmp(delegated[i].kernel, k->cfg->name) &&
			    auth_deleg_mint(gw->deleg_key, user, delegated[i].scope,
					    sdk_wall_ms() + DELEGATION_MS, deleg) == 0) {
				h[n++] = SDK_DELEGATION_HEADER;
				h[n++] = deleg;
			}
	}
	struct forward *f = calloc(1, sizeof *f);
	if (!f) {
		sdk_reply_error(req, 503, "out_of_memory", "cannot forward now");
		return;
	}
	f->req = req;
	f->gw = gw;
	f->kernel = k->cfg->name;
	/* A traced request's forward is its child; the kernel's handler is
	 * the forward's. */
	char traceparent[SDK_TRACEPARENT_LEN + 1];
	const sdk_span *parent = sdk_req_span(req);
	if (gw->tracer && parent->active) {
		/* Joined and copied, not printed (five snprintf calls here were a
		 * tenth of a proxied request's instructions), and only for a span
		 * that is recorded: the export alone reads them. The tracestate
		 * goes on with the traceparent either way. */
		sdk_trace_ctx pc = sdk_span_context(parent);
		sdk_span_start(&f->span, &pc, SDK_SPAN_CLIENT, NULL);
		sdk_strcpy(f->span.tracestate, sizeof f->span.tracestate, parent->tracestate);
		if (pc.flags & SDK_TRACE_FLAG_SAMPLED) {
			SDK_STRJOIN(f->span.name, sizeof f->span.name, "forward ", k->cfg->name);
			sdk_strcpy(f->method, sizeof f->method, sdk_req_method(req));
			sdk_strcpy(f->request_id, sizeof f->request_id, sdk_req_id(req));
			sdk_strcpy(f->target, sizeof f->target, path);
		}
		sdk_trace_ctx fc = sdk_span_context(&f->span);
		sdk_traceparent_format(&fc, traceparent);
		h[n++] = "traceparent";
		h[n++] = traceparent;
		if (*f->span.tracestate) {
			h[n++] = "tracestate";
			h[n++] = f->span.tracestate;
		}
	}
	h[n] = NULL;
	const char *body = body_len ? (const char *)evbuffer_pullup(sdk_req_body(req), -1) : NULL;
	sdk_ureq_opts o = { .kernel = k->cfg->name,
			    .method = sdk_req_method(req),
			    .target = target,
			    .headers = h,
			    .body = body,
			    .body_len = body_len,
			    .head_timeout_ms = head_timeout(k, req),
			    .idle_timeout_ms = GW_STREAM_IDLE_MS,
			    .deadline_ms = GW_DEADLINE_MS,
			    .on_retry = on_retry };
	f->u = sdk_upstream_request(gw->up, &o, &forward_cbs, f);
	if (!f->u) {
		free(f);
		sdk_reply_error(req, 502, "upstream_failed", "%s: cannot forward the request",
				k->cfg->name);
		return;
	}
	sdk_req_on_close(req, on_client_gone, f);
}

sdk_caller *gw_caller(gateway *gw) { return gw->caller; }

void gw_set_tracer(gateway *gw, sdk_tracer *t) { gw->tracer = t; }

void gw_set_delegation_key(gateway *gw, const unsigned char *key) { gw->deleg_key = key; }

int gw_probe(gateway *gw, int port, const char *path, unsigned timeout_ms, gw_probe_cb cb,
	     void *arg)
{
	return sdk_call_port(gw->caller, port, "GET", path, NULL, 0, NULL, timeout_ms, cb, arg);
}

gateway *gw_new(struct event_base *base, supervisor *sup, const char *token)
{
	gateway *gw = calloc(1, sizeof *gw);
	if (!gw)
		return NULL;
	gw->base = base;
	gw->sup = sup;
	gw->token = token;
	gw->up = sdk_upstream_new(base, sup_resolve, sup, GW_POOL_MAX, GW_PENDING_MAX);
	gw->caller = sdk_caller_new(base, "grace", token, sup_resolve, sup);
	if (!gw->up || !gw->caller) {
		gw_free(gw);
		return NULL;
	}
	return gw;
}

void gw_free(gateway *gw)
{
	if (!gw)
		return;
	sdk_upstream_free(gw->up);
	sdk_caller_free(gw->caller); /* ends calls and probes in flight without calling back */
	free(gw);
}
