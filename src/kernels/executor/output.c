#include "kernels/executor/output.h"

#include "kernels/executor/utf8.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#define HEARTBEAT_MS 15000
#define RETRY_MS 10

typedef struct exe_sub exe_sub;

struct exe_sub {
	exe_out *o;
	sdk_req *req;
	size_t off[2];
	struct event *pump, *heartbeat;
	exe_sub *next, *prev;
};

struct exe_out {
	int refs;
	struct event_base *base;
	uint64_t limit;
	struct out_stream {
		char *buf;
		size_t len, cap;
		uint64_t total;
	} s[2];
	bool done;
	json_t *end;
	exe_sub *subs;
	unsigned n_subs;
};

exe_out *exe_out_new(struct event_base *base, uint64_t limit)
{
	exe_out *o = calloc(1, sizeof *o);
	if (!o)
		return NULL;
	o->refs = 1;
	o->base = base;
	o->limit = limit;
	return o;
}

void exe_out_ref(exe_out *o)
{
	o->refs++;
}

void exe_out_unref(exe_out *o)
{
	if (!o || --o->refs > 0)
		return;
	free(o->s[0].buf);
	free(o->s[1].buf);
	json_decref(o->end);
	free(o);
}

const char *exe_out_data(const exe_out *o, int stream, size_t *len)
{
	*len = o->s[stream].len;
	return o->s[stream].buf ? o->s[stream].buf : "";
}

uint64_t exe_out_total(const exe_out *o, int stream)
{
	return o->s[stream].total;
}

bool exe_out_truncated(const exe_out *o, int stream)
{
	return o->s[stream].total > o->s[stream].len;
}

/* ---- subscribers */

static void sub_free(exe_sub *s)
{
	exe_out *o = s->o;
	if (s->prev)
		s->prev->next = s->next;
	else
		o->subs = s->next;
	if (s->next)
		s->next->prev = s->prev;
	o->n_subs--;
	if (s->pump)
		event_free(s->pump);
	if (s->heartbeat)
		event_free(s->heartbeat);
	sdk_reply_stream_end(s->req);
	free(s);
	exe_out_unref(o);
}

static void sub_event(exe_sub *s, const char *name, json_t *data)
{
	char *text = data ? json_dumps(data, JSON_COMPACT) : NULL;
	struct evbuffer *b = evbuffer_new();
	if (b && text) {
		evbuffer_add_printf(b, "event: %s\ndata: %s\n\n", name, text);
		sdk_reply_stream_chunk(s->req, b);
	}
	if (b)
		evbuffer_free(b);
	free(text);
}

static void sub_pump(exe_sub *s)
{
	exe_out *o = s->o;
	static const char *const names[] = { "stdout", "stderr" };
	while (sdk_reply_backlog(s->req) < EXE_SUB_BACKLOG_MAX) {
		bool sent = false;
		for (int i = 0; i < 2; i++) {
			size_t left = o->s[i].len - s->off[i];
			if (!left)
				continue;
			size_t n = left > EXE_SUB_CHUNK ? EXE_SUB_CHUNK : left;
			/* A character cut by the chunk or by the pipe waits for its end,
			 * unless nothing more will come. */
			bool last = n == left && (o->done || exe_out_truncated(o, i));
			if (!last)
				n = exe_utf8_complete(o->s[i].buf + s->off[i], n);
			if (!n)
				continue;
			json_t *ev = json_pack("{s:I, s:o}", "offset", (json_int_t)s->off[i], "text",
					       exe_utf8_json(o->s[i].buf + s->off[i], n));
			sub_event(s, names[i], ev);
			json_decref(ev);
			s->off[i] += n;
			sent = true;
		}
		if (!sent)
			break;
	}
	bool all = s->off[0] == o->s[0].len && s->off[1] == o->s[1].len;
	if (o->done && all) {
		sub_event(s, "end", o->end);
		sub_free(s);
		return;
	}
	if (!all) { /* backed up: look again shortly */
		struct timeval tv = { 0, RETRY_MS * 1000 };
		if (!evtimer_pending(s->pump, NULL))
			evtimer_add(s->pump, &tv);
	}
}

static void on_pump(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	exe_sub *s = arg;
	if (sdk_req_closed(s->req))
		return; /* its close callback frees it */
	sub_pump(s);
}

static void on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	exe_sub *s = arg;
	struct evbuffer *b = evbuffer_new();
	if (b) {
		evbuffer_add(b, ": heartbeat\n\n", 13);
		sdk_reply_stream_chunk(s->req, b);
		evbuffer_free(b);
	}
}

static void on_sub_close(sdk_req *req, void *arg)
{
	(void)req;
	sub_free(arg);
}

int exe_out_subscribe(exe_out *o, sdk_req *req)
{
	if (o->n_subs >= EXE_SUBS_MAX)
		return SDK_EBUSY;
	exe_sub *s = calloc(1, sizeof *s);
	if (!s)
		return SDK_EBUSY;
	s->o = o;
	s->req = req;
	s->pump = evtimer_new(o->base, on_pump, s);
	s->heartbeat = event_new(o->base, -1, EV_PERSIST, on_heartbeat, s);
	if (!s->pump || !s->heartbeat) {
		if (s->pump)
			event_free(s->pump);
		if (s->heartbeat)
			event_free(s->heartbeat);
		free(s);
		return SDK_EBUSY;
	}
	exe_out_ref(o);
	s->next = o->subs;
	if (o->subs)
		o->subs->prev = s;
	o->subs = s;
	o->n_subs++;
	sdk_req_add_header(req, "X-Accel-Buffering", "no");
	sdk_req_add_header(req, "Cache-Control", "no-cache");
	sdk_reply_stream_start(req, 200, "text/event-stream", on_sub_close, s);
	struct timeval hb = { HEARTBEAT_MS / 1000, 0 };
	event_add(s->heartbeat, &hb);
	sub_pump(s);
	return 0;
}

void exe_out_append(exe_out *o, int stream, const char *data, size_t n)
{
	struct out_stream *s = &o->s[stream];
	s->total += n;
	size_t room = s->len < o->limit ? (size_t)(o->limit - s->len) : 0;
	size_t keep = n < room ? n : room;
	if (keep) {
		if (s->len + keep > s->cap) {
			size_t cap = s->cap ? s->cap : 4096;
			while (cap < s->len + keep)
				cap *= 2;
			if (cap > o->limit)
				cap = (size_t)o->limit;
			char *nb = realloc(s->buf, cap);
			if (!nb)
				return; /* counted, not kept */
			s->buf = nb;
			s->cap = cap;
		}
		memcpy(s->buf + s->len, data, keep);
		s->len += keep;
	}
	for (exe_sub *sub = o->subs, *next; sub; sub = next) {
		next = sub->next;
		sub_pump(sub);
	}
}

void exe_out_finish(exe_out *o, json_t *end)
{
	o->done = true;
	json_decref(o->end);
	o->end = end;
	for (exe_sub *sub = o->subs, *next; sub; sub = next) {
		next = sub->next;
		sub_pump(sub);
	}
}

void exe_out_end_subscribers(exe_out *o)
{
	if (!o)
		return;
	exe_out_ref(o); /* each sub_free drops one */
	while (o->subs)
		sub_free(o->subs);
	exe_out_unref(o);
}
