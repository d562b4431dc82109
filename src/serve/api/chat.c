/* /chat: a user's chat sessions and the answers in them. A session belongs
 * to the user who made it; any other user (an admin too) gets a 404, as if
 * it did not exist. An answer comes back whole as JSON, or with ?stream=1
 * as Server-Sent Events: "delta" events as it is written, then one "done"
 * event with the stored message and its citations. While nothing else is
 * sent (the model thinking), an SSE comment goes every [model]
 * heartbeat_ms, so no proxy in front takes the stream for dead. */
#include "serve/api/api.h"
#include "sdk/clock.h"

#include "serve/chat/chat.h"
#include "serve/chat/store.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SESSIONS_LIST_DEFAULT 100

/* What a heartbeat sends: an SSE comment, which clients ignore. */
#define SSE_HEARTBEAT ": waiting\n\n"

/* A message being answered for a client. */
struct pending {
	sdk_req *req;
	chat_turn *turn;
	bool stream;
	/* Streams: a write that finds the client gone calls on_stream_close
	 * before it returns; while `sending`, that only sets `gone`, and the
	 * writer ends the request when its write returns. */
	bool sending, gone;
	struct event *beat; /* fires after heartbeat_ms of silence */
	const struct timeval *beat_tv; /* a common timeout: O(1) to re-arm */
};

/* A status chat returned (its own or a shared one, chat.h), answered in
 * Grace's error shape; a retryable one says when (docs/errors.md). */
static void reply_status(sdk_req *req, int rc, const sdk_err *e)
{
	if (rc == CHAT_ESTOPPING || rc == SDK_EBUSY || rc == SDK_ETIMEOUT)
		sdk_req_add_header(req, "Retry-After", "1");
	const char *code = chat_status_code(rc);
	sdk_reply_error(req, chat_status_http(rc), code, "%s", e && e->msg[0] ? e->msg : code);
}

static void pending_free(struct pending *p)
{
	if (p->beat)
		event_free(p->beat);
	free(p);
}

/* The caller, set by api_authorize for every USER route. */
static const char *caller(sdk_req *req)
{
	const char *user = sdk_req_user(req, NULL);
	if (!user)
		sdk_reply_error(req, 401, "unauthorized", "log in first: POST /auth/login");
	return user;
}

/* The :id of the path; answers 404 and returns -1 when it names no session
 * (a session id is a positive decimal integer). */
static int session_param(sdk_req *req, int64_t *id)
{
	const char *s = sdk_req_param(req, "id");
	int64_t v = 0;
	size_t n = s ? strlen(s) : 0;
	bool ok = n > 0 && n <= 15 && s[0] != '0';
	for (size_t i = 0; ok && i < n; i++) {
		ok = s[i] >= '0' && s[i] <= '9';
		v = v * 10 + (s[i] - '0');
	}
	if (!ok) {
		sdk_reply_error(req, 404, "not_found", "no chat session '%.64s'", s ? s : "");
		return -1;
	}
	*id = v;
	return 0;
}

static void api_chat_sessions_create(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	const char *user = caller(req);
	if (!user)
		return;
	json_t *title = NULL;
	if (evbuffer_get_length(sdk_req_body(req)) > 0) { /* the body is optional */
		json_t *body = sdk_req_json(req, true);
		if (!body)
			return;
		title = json_object_get(body, "title");
		if (json_is_null(title))
			title = NULL;
		if (title && (!json_is_string(title) || json_string_length(title) > CHAT_TITLE_MAX ||
			      strlen(json_string_value(title)) != json_string_length(title))) {
			sdk_reply_error(req, 400, "invalid",
					"title is a string of at most %d bytes, or null", CHAT_TITLE_MAX);
			return;
		}
		if (title && json_string_length(title) == 0)
			title = NULL;
	}
	sqlite3 *db = chat_db(api->chat);
	int64_t n;
	sdk_err e;
	int rc = chat_store_session_count(db, user, &n, &e);
	if (rc < 0) {
		reply_status(req, rc, &e);
		return;
	}
	if (n >= CHAT_SESSIONS_MAX) {
		sdk_reply_error(req, 409, "limit_reached",
				"you have %d chat sessions, the most one user keeps; delete some first",
				CHAT_SESSIONS_MAX);
		return;
	}
	json_t *s;
	if ((rc = chat_store_session_new(db, user, title ? json_string_value(title) : NULL,
					 sdk_wall_ms(), &s, &e)) < 0) {
		reply_status(req, rc, &e);
		return;
	}
	sdk_reply_json(req, 201, s);
}

static void api_chat_sessions_list(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	const char *user = caller(req);
	unsigned long long limit;
	if (!user ||
	    sdk_req_query_uint(req, "limit", 1, CHAT_SESSIONS_MAX, SESSIONS_LIST_DEFAULT, &limit) < 0)
		return;
	json_t *list;
	sdk_err e;
	int rc = chat_store_sessions(chat_db(api->chat), user, (unsigned)limit, &list, &e);
	if (rc < 0) {
		reply_status(req, rc, &e);
		return;
	}
	sdk_reply_json(req, 200, json_pack("{s:o}", "sessions", list));
}

static void api_chat_session_get(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	const char *user = caller(req);
	int64_t id;
	unsigned long long limit;
	if (!user || session_param(req, &id) < 0 ||
	    sdk_req_query_uint(req, "limit", 1, CHAT_MESSAGES_MAX, CHAT_MESSAGES_MAX, &limit) < 0)
		return;
	json_t *s, *msgs;
	sdk_err e;
	int rc = chat_store_session_get(chat_db(api->chat), user, id, &s, &e);
	if (rc < 0) {
		reply_status(req, rc, &e);
		return;
	}
	if ((rc = chat_store_messages(chat_db(api->chat), id, (unsigned)limit, &msgs, &e)) < 0) {
		json_decref(s);
		reply_status(req, rc, &e);
		return;
	}
	json_object_set_new(s, "messages", msgs);
	json_object_set_new(s, "busy", json_boolean(chat_session_busy(api->chat, id)));
	sdk_reply_json(req, 200, s);
}

static void api_chat_session_delete(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	const char *user = caller(req);
	int64_t id;
	if (!user || session_param(req, &id) < 0)
		return;
	json_t *s;
	sdk_err e;
	int rc = chat_store_session_get(chat_db(api->chat), user, id, &s, &e);
	if (rc == 0) {
		json_decref(s);
		/* Its answer would have nowhere to go. */
		if (chat_session_busy(api->chat, id))
			rc = sdk_fail(&e, CHAT_EANSWERING,
				      "an answer is still being written in session %lld; try again "
				      "when it is done",
				      (long long)id);
		else
			rc = chat_store_session_delete(chat_db(api->chat), user, id, &e);
	}
	if (rc < 0)
		reply_status(req, rc, &e);
	else
		sdk_reply_json(req, 200, json_pack("{s:I, s:b}", "id", (json_int_t)id, "deleted", 1));
}

/* ---- answers ---- */

/* The stream ends here: the request is freed, and `p`. */
static void stream_end(struct pending *p)
{
	sdk_reply_stream_end(p->req);
	pending_free(p);
}

/* Sends `b` (drained) on the stream and puts the next heartbeat a whole
 * interval away. False when the client turned out to be gone: then `p`
 * has been freed. */
static bool stream_send(struct pending *p, struct evbuffer *b)
{
	p->sending = true;
	sdk_reply_stream_chunk(p->req, b);
	p->sending = false;
	if (p->gone) {
		stream_end(p);
		return false;
	}
	event_add(p->beat, p->beat_tv);
	return true;
}

/* Sends one event; false when `p` is gone (freed). */
static bool sse_event(struct pending *p, const char *name, json_t *data)
{
	char *text = json_dumps(data, JSON_COMPACT);
	json_decref(data);
	struct evbuffer *b = evbuffer_new();
	bool here = true;
	/* Compact JSON has no newline, so one data line carries it. */
	if (b && text && evbuffer_add_printf(b, "event: %s\ndata: %s\n\n", name, text) > 0)
		here = stream_send(p, b);
	if (b)
		evbuffer_free(b);
	free(text);
	return here;
}

static void on_beat(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct pending *p = arg;
	/* Bytes still queued show the stream is alive once they go; more would
	 * only pile up behind a client that does not read. */
	struct evbuffer *b = sdk_reply_backlog(p->req) == 0 ? evbuffer_new() : NULL;
	if (b && evbuffer_add(b, SSE_HEARTBEAT, sizeof SSE_HEARTBEAT - 1) == 0)
		stream_send(p, b); /* re-arms, unless the client has gone */
	else
		event_add(p->beat, p->beat_tv);
	if (b)
		evbuffer_free(b);
}

static void on_delta(const char *text, size_t len, void *arg)
{
	struct pending *p = arg;
	sse_event(p, "delta", json_pack("{s:s%}", "content", text, len));
}

static void on_fallback(const char *why, bool partial, void *arg)
{
	struct pending *p = arg;
	sse_event(p, "fallback", json_pack("{s:s, s:b}", "reason", why, "partial", partial));
}

static void on_done(json_t *message, int status, const sdk_err *e, void *arg)
{
	struct pending *p = arg;
	if (!p->stream) {
		if (message)
			sdk_reply_json(p->req, 200, message);
		else
			reply_status(p->req, status, e);
		pending_free(p);
		return;
	}
	bool here;
	if (message)
		here = sse_event(p, "done", json_pack("{s:b, s:o}", "done", 1, "message", message));
	else
		here = sse_event(p, "error",
				 json_pack("{s:b, s:{s:s, s:s, s:s}}", "done", 1, "error", "code",
					   chat_status_code(status), "message", e->msg, "request_id",
					   sdk_req_id(p->req)));
	if (here)
		stream_end(p);
}

/* The client of a streamed answer went away: the answer is still written
 * and stored, only no longer sent. */
static void on_stream_close(sdk_req *req, void *arg)
{
	(void)req;
	struct pending *p = arg;
	chat_turn_detach(p->turn);
	p->gone = true;
	if (!p->sending)
		stream_end(p);
}

/* ?stream=1 (or true/yes), or a client that accepts only event streams. */
static int want_stream(sdk_req *req, bool *out)
{
	const char *v = sdk_req_query(req, "stream");
	const char *accept = sdk_req_header(req, "Accept");
	*out = false;
	if (!v) {
		*out = accept && strstr(accept, "text/event-stream") && !strstr(accept, "json");
		return 0;
	}
	if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes"))
		*out = true;
	else if (strcmp(v, "0") && strcmp(v, "false") && strcmp(v, "no") && *v) {
		sdk_reply_error(req, 400, "bad_query", "stream is 1 or 0");
		return -1;
	}
	return 0;
}

static bool blank(const char *s)
{
	for (; *s; s++)
		if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
			return false;
	return true;
}

static void api_chat_messages_post(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	const char *user = caller(req);
	int64_t id;
	bool stream;
	if (!user || session_param(req, &id) < 0 || want_stream(req, &stream) < 0)
		return;
	json_t *body = sdk_req_json(req, true);
	if (!body)
		return;
	json_t *content = json_object_get(body, "content");
	if (!json_is_string(content)) {
		sdk_reply_error(req, 400, "invalid", "content is a required string");
		return;
	}
	const char *text = json_string_value(content);
	if (json_string_length(content) > CHAT_CONTENT_MAX) {
		sdk_reply_error(req, 413, "too_large", "content is longer than %d bytes",
				CHAT_CONTENT_MAX);
		return;
	}
	if (strlen(text) != json_string_length(content) || blank(text)) {
		sdk_reply_error(req, 400, "invalid",
				"content must say something (and hold no NUL character)");
		return;
	}
	struct pending *p = calloc(1, sizeof *p);
	if (!p) {
		sdk_reply_error(req, 503, "busy", "out of memory");
		return;
	}
	p->req = req;
	p->stream = stream;
	if (stream) {
		struct timeval tv = sdk_ms_tv(api->cfg->model.heartbeat_ms);
		p->beat_tv = event_base_init_common_timeout(api->base, &tv);
		p->beat = p->beat_tv ? evtimer_new(api->base, on_beat, p) : NULL;
		if (!p->beat) {
			pending_free(p);
			sdk_req_add_header(req, "Retry-After", "1");
			sdk_reply_error(req, 503, "busy", "out of memory");
			return;
		}
	}
	chat_turn_cbs cbs = { .on_delta = on_delta, .on_fallback = on_fallback, .on_done = on_done };
	sdk_err e;
	int rc = chat_turn_start(api->chat, user, id, text, stream, &cbs, p, &p->turn, &e);
	if (rc < 0) {
		pending_free(p);
		reply_status(req, rc, &e);
		return;
	}
	if (stream) {
		sdk_req_add_header(req, "X-Accel-Buffering", "no"); /* for a proxy in front */
		p->sending = true; /* the head's write may find the client gone */
		sdk_reply_stream_start(req, 200, "text/event-stream; charset=utf-8", on_stream_close, p);
		p->sending = false;
		if (p->gone)
			stream_end(p);
		else
			event_add(p->beat, p->beat_tv);
	}
}

/* Chat sessions and answers */
static const sdk_route routes[] = {
	API_USER("POST", "/chat/sessions", api_chat_sessions_create),
	API_USER("GET", "/chat/sessions", api_chat_sessions_list),
	API_USER("GET", "/chat/sessions/:id", api_chat_session_get),
	API_USER("DELETE", "/chat/sessions/:id", api_chat_session_delete),
	API_USER("POST", "/chat/sessions/:id/messages", api_chat_messages_post),
};
const api_family api_chat_family = { "chat", routes, sizeof routes / sizeof routes[0] };
