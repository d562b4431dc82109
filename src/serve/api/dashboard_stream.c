/* GET /dashboard/events: the dashboard's live feed. Each feed starts with
 * a snapshot of every kernel, then gets a `kernel` event for each
 * supervisor state change as it happens (pushed by serve.c's observer, so
 * a crash and its restart are both seen, however fast) and for each change
 * of a guardian state (compared once a second: probes change those, not
 * the supervisor). A reader that falls DASH_BACKLOG_MAX behind is cut off:
 * the browser's EventSource reconnects and gets a fresh snapshot, so
 * nothing is queued without bound. */
#include "serve/api/dashboard.h"

#include "sdk/log.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct api_dash;

struct dash_stream {
	struct api_dash *d;
	sdk_req *req;                  /* the open feed; freed by sdk_reply_stream_end */
	int health[GRACE_KERNELS_MAX]; /* the guardian state last sent, by kernel index */
	struct dash_stream *next;
};

struct api_dash {
	api_ctx *api;
	struct event *tick;
	struct dash_stream *head; /* owned */
	size_t n;
	unsigned ticks;
};

static int health_of(api_ctx *api, sup_kernel *k)
{
	gd_kernel *gk = api->gd ? gd_kernel_of(api->gd, k) : NULL;
	return gk ? (int)gk->state : -1;
}

/* A kernel as the dashboard shows it: the API's view, its health and
 * whether it is enabled. A new reference. */
static json_t *kernel_json(api_ctx *api, sup_kernel *k)
{
	json_t *o = api_kernel_view(api, k);
	int h = health_of(api, k);
	if (o) {
		json_object_set_new(o, "health", h >= 0 ? json_string(gd_state_name((enum gd_state)h))
							: json_null());
		json_object_set_new(o, "enabled", json_boolean(k->cfg->enabled));
	}
	return o;
}

static void stream_unlink(struct dash_stream *s)
{
	struct api_dash *d = s->d;
	for (struct dash_stream **p = &d->head; *p; p = &(*p)->next)
		if (*p == s) {
			*p = s->next;
			d->n--;
			break;
		}
	if (!d->head && d->tick)
		event_del(d->tick); /* no feed: no wake-ups */
}

/* Ends a feed that is still open (shutdown, or a reader too far behind). */
static void stream_end(struct dash_stream *s)
{
	stream_unlink(s);
	sdk_req_on_close(s->req, NULL, NULL);
	sdk_reply_stream_end(s->req);
	free(s);
}

/* The browser went away. */
static void on_stream_close(sdk_req *req, void *arg)
{
	struct dash_stream *s = arg;
	stream_unlink(s);
	sdk_reply_stream_end(req);
	free(s);
}

/* Writes `text` to the feed; false when the feed was ended for its
 * backlog (s is then freed). */
static bool stream_write(struct dash_stream *s, const char *text, size_t len)
{
	struct evbuffer *b = evbuffer_new();
	if (b) {
		evbuffer_add(b, text, len);
		sdk_reply_stream_chunk(s->req, b);
		evbuffer_free(b);
	}
	if (sdk_reply_backlog(s->req) > DASH_BACKLOG_MAX) {
		sdk_warn("dashboard: a feed fell %zu bytes behind: ended (the browser reconnects)",
			 sdk_reply_backlog(s->req));
		stream_end(s);
		return false;
	}
	return true;
}

/* One event of `name` with `data` (stolen); false as stream_write. */
static bool stream_send(struct dash_stream *s, const char *name, json_t *data)
{
	char *json = data ? json_dumps(data, JSON_COMPACT) : NULL; /* one line */
	json_decref(data);
	size_t len = json ? strlen(name) + strlen(json) + 32 : 0;
	char *text = json ? malloc(len) : NULL;
	if (!text) {
		/* Out of memory: rather than a feed with a hole, none; the browser
		 * reconnects and starts again from a snapshot. */
		free(json);
		stream_end(s);
		return false;
	}
	int n = snprintf(text, len, "event: %s\ndata: %s\n\n", name, json);
	bool ok = stream_write(s, text, (size_t)n);
	free(text);
	free(json);
	return ok;
}

/* Sends kernel i to the feed and remembers its health there. With a
 * change `c`, the state and pid are the change's: when two changes come
 * before the observer runs, each is still seen as it was. */
static bool send_kernel(struct dash_stream *s, size_t i, const sup_change *c)
{
	api_ctx *api = s->d->api;
	sup_kernel *k = sup_at(api->sup, i);
	json_t *o = kernel_json(api, k);
	if (o && c) {
		json_object_set_new(o, "from", json_string(sup_state_name(c->from)));
		json_object_set_new(o, "state", json_string(sup_state_name(c->to)));
		json_object_set_new(o, "pid", c->pid > 0 ? json_integer(c->pid) : json_null());
		json_object_set_new(o, "at_ms", json_integer(c->at_ms));
		json_object_set_new(o, "cause", json_string(sup_event_name(c->cause)));
	}
	if (i < GRACE_KERNELS_MAX)
		s->health[i] = health_of(api, k);
	return stream_send(s, "kernel", o);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct api_dash *d = arg;
	api_ctx *api = d->api;
	bool ping = ++d->ticks % DASH_PING_TICKS == 0;
	struct dash_stream *next;
	for (struct dash_stream *s = d->head; s; s = next) {
		next = s->next;
		bool alive = true;
		for (size_t i = 0; alive && i < sup_count(api->sup) && i < GRACE_KERNELS_MAX; i++)
			if (health_of(api, sup_at(api->sup, i)) != s->health[i])
				alive = send_kernel(s, i, NULL);
		if (alive && ping)
			stream_write(s, ": ping\n\n", 8);
	}
}

static struct api_dash *dash_get(api_ctx *api)
{
	if (api->dash)
		return api->dash;
	struct api_dash *d = calloc(1, sizeof *d);
	if (!d)
		return NULL;
	d->api = api;
	if (!(d->tick = event_new(api->base, -1, EV_PERSIST, on_tick, d))) {
		free(d);
		return NULL;
	}
	return api->dash = d;
}

void api_dashboard_events(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	/* A feed never ends: opened only for a client that asks for one (an
	 * EventSource always does), not for one that would wait for its end. */
	const char *accept = sdk_req_header(req, "Accept");
	if (!accept || !strcasestr(accept, "text/event-stream")) {
		sdk_reply_error(req, 406, "not_acceptable",
				"this is a Server-Sent Events feed: send Accept: text/event-stream");
		return;
	}
	if (!strcmp(sdk_req_method(req), "HEAD")) { /* the headers, and no feed to wait for */
		sdk_reply_raw(req, 200, "text/event-stream; charset=utf-8", NULL);
		return;
	}
	struct api_dash *d = dash_get(api);
	if (!d) {
		sdk_reply_error(req, 503, "busy", "out of memory");
		return;
	}
	if (d->n >= DASH_STREAMS_MAX) {
		sdk_req_add_header(req, "Retry-After", "5");
		sdk_reply_error(req, 503, "busy", "%d dashboard feeds are open already",
				DASH_STREAMS_MAX);
		return;
	}
	struct dash_stream *s = calloc(1, sizeof *s);
	json_t *all = json_array();
	if (!s || !all) {
		free(s);
		json_decref(all);
		sdk_reply_error(req, 503, "busy", "out of memory");
		return;
	}
	s->d = d;
	s->req = req;
	for (size_t i = 0; i < sup_count(api->sup) && i < GRACE_KERNELS_MAX; i++) {
		sup_kernel *k = sup_at(api->sup, i);
		s->health[i] = health_of(api, k);
		json_array_append_new(all, kernel_json(api, k));
	}
	s->next = d->head;
	d->head = s;
	d->n++;
	if (d->n == 1) {
		struct timeval tv = { DASH_TICK_MS / 1000, (DASH_TICK_MS % 1000) * 1000 };
		event_add(d->tick, &tv);
	}
	/* Behind a proxy that buffers, the events would come in bursts. */
	sdk_req_add_header(req, "X-Accel-Buffering", "no");
	sdk_reply_stream_start(req, 200, "text/event-stream; charset=utf-8", on_stream_close, s);
	/* The reconnection delay, then what the page starts from. */
	if (stream_write(s, "retry: 1000\n\n", 13))
		stream_send(s, "snapshot", json_pack("{s:o}", "kernels", all));
	else
		json_decref(all);
}

void api_dashboard_on_change(api_ctx *api, const sup_change *c)
{
	struct api_dash *d = api->dash;
	if (!d)
		return;
	size_t idx = sup_count(api->sup);
	for (size_t i = 0; i < sup_count(api->sup); i++)
		if (sup_at(api->sup, i) == c->k)
			idx = i;
	if (idx >= sup_count(api->sup))
		return;
	struct dash_stream *next;
	for (struct dash_stream *s = d->head; s; s = next) {
		next = s->next;
		send_kernel(s, idx, c);
	}
}

void api_dashboard_close(api_ctx *api)
{
	struct api_dash *d = api->dash;
	if (!d)
		return;
	while (d->head)
		stream_end(d->head);
	event_free(d->tick);
	free(d);
	api->dash = NULL;
}
