#include "sdk/client.h"

#include "sdk/token.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct call {
	sdk_client *c;
	struct call *prev, *next;
	sdk_client_cb cb;
	void *arg;
	struct evhttp_connection *conn;
	struct event *cleanup;
	struct timespec t0;
	enum evhttp_request_error error;
	bool failed;
};

struct sdk_client {
	struct event_base *base;
	struct call *calls;
	const char *token;
};

void sdk_client_set_token(sdk_client *c, const char *token) { c->token = token; }

static const char *error_text(enum evhttp_request_error e)
{
	switch (e) {
	case EVREQ_HTTP_TIMEOUT: return "no answer in time";
	case EVREQ_HTTP_EOF: return "connection closed before an answer";
	case EVREQ_HTTP_INVALID_HEADER: return "invalid answer";
	case EVREQ_HTTP_BUFFER_ERROR: return "connection failed";
	case EVREQ_HTTP_DATA_TOO_LONG: return "answer too large";
	default: return "no answer";
	}
}

static void call_free(struct call *x)
{
	if (x->prev)
		x->prev->next = x->next;
	else
		x->c->calls = x->next;
	if (x->next)
		x->next->prev = x->prev;
	evhttp_connection_free(x->conn);
	event_free(x->cleanup);
	free(x);
}

static void on_cleanup(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	call_free(arg);
}

static void on_error(enum evhttp_request_error e, void *arg)
{
	struct call *x = arg;
	x->failed = true;
	x->error = e;
}

static void on_done(struct evhttp_request *r, void *arg)
{
	struct call *x = arg;
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double ms = (double)(t1.tv_sec - x->t0.tv_sec) * 1e3 +
		    (double)(t1.tv_nsec - x->t0.tv_nsec) / 1e6;
	int code = r && !x->failed ? evhttp_request_get_response_code(r) : 0;
	if (code > 0) {
		struct evbuffer *b = evhttp_request_get_input_buffer(r);
		size_t len = evbuffer_get_length(b);
		x->cb(code, (const char *)evbuffer_pullup(b, -1), len, ms, NULL, x->arg);
	} else {
		x->cb(0, NULL, 0, ms, error_text(x->error), x->arg);
	}
	/* A connection cannot be freed from inside its own callback. */
	event_active(x->cleanup, 0, 0);
}

static enum evhttp_cmd_type method_of(const char *m)
{
	if (!strcmp(m, "POST"))
		return EVHTTP_REQ_POST;
	if (!strcmp(m, "PUT"))
		return EVHTTP_REQ_PUT;
	if (!strcmp(m, "DELETE"))
		return EVHTTP_REQ_DELETE;
	if (!strcmp(m, "PATCH"))
		return EVHTTP_REQ_PATCH;
	if (!strcmp(m, "HEAD"))
		return EVHTTP_REQ_HEAD;
	return EVHTTP_REQ_GET;
}

sdk_client *sdk_client_new(struct event_base *base)
{
	sdk_client *c = calloc(1, sizeof *c);
	if (c)
		c->base = base;
	return c;
}

void sdk_client_free(sdk_client *c)
{
	if (!c)
		return;
	while (c->calls) /* frees their requests without calling back */
		call_free(c->calls);
	free(c);
}

int sdk_client_call(sdk_client *c, int port, const char *method, const char *path,
		    const char *body, size_t len, const char *const *headers,
		    unsigned timeout_ms, sdk_client_cb cb, void *arg)
{
	struct call *x = calloc(1, sizeof *x);
	if (!x)
		return -1;
	x->c = c;
	x->cb = cb;
	x->arg = arg;
	x->conn = evhttp_connection_base_new(c->base, NULL, "127.0.0.1", (unsigned short)port);
	x->cleanup = event_new(c->base, -1, 0, on_cleanup, x);
	struct evhttp_request *r = evhttp_request_new(on_done, x);
	if (!x->conn || !x->cleanup || !r) {
		if (r)
			evhttp_request_free(r);
		if (x->conn)
			evhttp_connection_free(x->conn);
		if (x->cleanup)
			event_free(x->cleanup);
		free(x);
		return -1;
	}
	struct timeval tv = { timeout_ms / 1000, (suseconds_t)(timeout_ms % 1000) * 1000 };
	evhttp_connection_set_timeout_tv(x->conn, &tv);
	evhttp_request_set_error_cb(r, on_error);
	struct evkeyvalq *h = evhttp_request_get_output_headers(r);
	char host[32];
	snprintf(host, sizeof host, "127.0.0.1:%d", port);
	evhttp_add_header(h, "Host", host);
	evhttp_add_header(h, "Connection", "close");
	if (c->token && *c->token)
		evhttp_add_header(h, SDK_TOKEN_HEADER, c->token);
	for (size_t i = 0; headers && headers[i] && headers[i + 1]; i += 2)
		evhttp_add_header(h, headers[i], headers[i + 1]);
	if (body) {
		evhttp_add_header(h, "Content-Type", "application/json");
		evbuffer_add(evhttp_request_get_output_buffer(r), body, len);
	}
	clock_gettime(CLOCK_MONOTONIC, &x->t0);
	if (evhttp_make_request(x->conn, r, method_of(method), path) < 0) {
		evhttp_connection_free(x->conn);
		event_free(x->cleanup);
		free(x);
		return -1;
	}
	x->next = c->calls;
	if (x->next)
		x->next->prev = x;
	c->calls = x;
	return 0;
}
