#include "serve/chat/chat.h"
#include "sdk/clock.h"

#include "serve/chat/context.h"
#include "sdk/model.h"
#include "serve/chat/recall.h"
#include "serve/chat/store.h"
#include "sdk/call.h"
#include "sdk/db.h"
#include "sdk/log.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SEARCH_QUERY_MAX 1024 /* the librarian's own limit */

struct chat_turn {
	chat *c;
	chat_turn *prev, *next;
	char user[64];
	int64_t session;
	char *question;
	bool stream;
	bool detached; /* the client has gone */
	json_t *history; /* [{"role","content"}], oldest first */
	json_t *sources; /* passages, then memory rows: the citations */
	char lib_problem[192]; /* why the library could not be searched */
	char mem_problem[192]; /* why the memory tables could not be */
	chat_recall_job *recall;
	sdk_model_call *call;
	struct evbuffer *streamed; /* what the model has written so far */
	struct event *next_step;
	chat_turn_cbs cbs;
	void *arg;
};

struct chat {
	struct event_base *base;
	supervisor *sup;
	sqlite3 *db;
	sdk_caller *caller; /* to the librarian, by name */
	sdk_model *model; /* NULL without a [model] */
	chat_recall *recall; /* NULL when memory.db cannot be opened */
	chat_turn *turns;
	unsigned n_turns;
	bool stopping;
	unsigned long long by_model, by_retrieval, librarian_failures;
	unsigned long long model_failures[SDK_MODEL_FAILURE_KINDS]; /* by sdk_model_failure */
};

int chat_status_http(int status)
{
	switch (status) {
	case CHAT_EANSWERING:
	case CHAT_EFULL: return 409;
	case CHAT_ESTOPPING: return 503;
	default: return sdk_status_http(status);
	}
}

const char *chat_status_code(int status)
{
	switch (status) {
	case CHAT_EANSWERING: return "busy";
	case CHAT_EFULL: return "session_full";
	case CHAT_ESTOPPING: return "stopping";
	default: return sdk_status_code(status);
	}
}

static int stopping(sdk_err *e)
{
	return sdk_fail(e, CHAT_ESTOPPING, "Grace is stopping; ask again when it is back");
}

sqlite3 *chat_db(chat *c) { return c->db; }

const char *chat_model_name(const chat *c) { return c->model ? sdk_model_name(c->model) : NULL; }

bool chat_session_busy(const chat *c, int64_t session)
{
	for (const chat_turn *t = c->turns; t; t = t->next)
		if (t->session == session)
			return true;
	return false;
}

static void turn_free(chat_turn *t)
{
	chat *c = t->c;
	if (t->prev)
		t->prev->next = t->next;
	else
		c->turns = t->next;
	if (t->next)
		t->next->prev = t->prev;
	c->n_turns--;
	chat_recall_cancel(t->recall);
	sdk_model_call_cancel(t->call);
	if (t->next_step)
		event_free(t->next_step);
	if (t->streamed)
		evbuffer_free(t->streamed);
	json_decref(t->history);
	json_decref(t->sources);
	free(t->question);
	free(t);
}

static void turn_delta(chat_turn *t, const char *text, size_t len)
{
	if (!t->detached && t->stream && t->cbs.on_delta && len)
		t->cbs.on_delta(text, len, t->arg);
}

/* Stores the answer, hands it to the client and ends the turn. */
static void turn_finish(chat_turn *t, const char *content, bool answered, const char *why)
{
	chat *c = t->c;
	const char *name = chat_model_name(c);
	char notice[512] = "";
	if (!answered)
		snprintf(notice, sizeof notice, "No model answered: %s.", why);
	if (t->lib_problem[0])
		snprintf(notice + strlen(notice), sizeof notice - strlen(notice),
			 "%sThe library could not be searched: %s.", notice[0] ? " " : "",
			 t->lib_problem);
	if (t->mem_problem[0])
		snprintf(notice + strlen(notice), sizeof notice - strlen(notice),
			 "%sYour memory tables could not be searched: %s.", notice[0] ? " " : "",
			 t->mem_problem);
	json_t *msg = json_pack("{s:s, s:s, s:O, s:o, s:b, s:o}", "role", "assistant", "content",
				content, "citations", t->sources, "model",
				name ? json_string(name) : json_null(), "model_answered", answered,
				"notice", notice[0] ? json_string(notice) : json_null());
	sdk_err e = { "" };
	int rc = msg ? chat_store_message_add(c->db, t->session, msg, sdk_wall_ms(), &e)
		     : sdk_fail(&e, SDK_EIO, "out of memory");
	if (rc < 0) {
		json_decref(msg);
		msg = NULL;
	} else {
		json_object_set_new(msg, "session_id", json_integer(t->session));
	}
	if (answered)
		c->by_model++;
	else
		c->by_retrieval++;
	if (!t->detached && t->cbs.on_done)
		t->cbs.on_done(msg, msg ? 0 : rc, msg ? NULL : &e, t->arg);
	else
		json_decref(msg);
	turn_free(t);
}

/* The answer without a model, after what a failing model already wrote. */
static void turn_fallback(chat_turn *t, const char *why, const char *partial, size_t plen)
{
	char *fb = chat_fallback_text(t->sources, why, t->lib_problem[0] ? t->lib_problem : NULL);
	size_t fblen = fb ? strlen(fb) : 0;
	size_t sep = plen ? 2 : 0;
	char *content = fb ? malloc(plen + sep + fblen + 1) : NULL;
	if (!content) {
		free(fb);
		turn_finish(t, "No model answered, and Grace ran out of memory writing the answer "
			       "from the library.", false, why);
		return;
	}
	if (plen) {
		memcpy(content, partial, plen);
		memcpy(content + plen, "\n\n", sep);
	}
	memcpy(content + plen + sep, fb, fblen + 1);
	free(fb);
	/* Streamed a line at a time, as a model would. */
	for (const char *p = content + plen; *p;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) + 1 : strlen(p);
		turn_delta(t, p, n);
		p += n;
	}
	turn_finish(t, content, false, why);
	free(content);
}

/* The model was asked and gave no whole answer: the client of a stream is
 * told before the answer from the sources follows what the model wrote. */
static void turn_model_failed(chat_turn *t, const char *why, const char *partial, size_t plen)
{
	if (!t->detached && t->stream && t->cbs.on_fallback)
		t->cbs.on_fallback(why, plen > 0, t->arg);
	turn_fallback(t, why, partial, plen);
}

static void on_model_delta(const char *text, size_t len, void *arg)
{
	chat_turn *t = arg;
	evbuffer_add(t->streamed, text, len);
	turn_delta(t, text, len);
}

static void on_model_done(const char *text, size_t len, sdk_model_failure failure, const char *error,
			  void *arg)
{
	chat_turn *t = arg;
	t->call = NULL;
	if (failure == SDK_MODEL_OK) {
		turn_finish(t, text, true, NULL);
		return;
	}
	t->c->model_failures[failure]++;
	sdk_warn("chat: session %lld: %s; answering from the library", (long long)t->session, error);
	turn_model_failed(t, error, text, len);
}

/* With every source in: the model, or the answer without one. */
static void turn_answer(chat_turn *t)
{
	chat *c = t->c;
	if (!c->model || c->stopping) {
		turn_fallback(t, c->model ? "Grace is stopping" : "no model is configured", NULL, 0);
		return;
	}
	json_t *prompt = chat_prompt(t->sources, t->history, t->question);
	t->call = prompt ? sdk_model_chat(c->model, prompt, t->stream, on_model_delta, on_model_done, t)
			 : NULL;
	json_decref(prompt);
	if (!t->call)
		turn_fallback(t, "the call to the model could not start", NULL, 0);
}

static void on_recalled(json_t *sources, const char *problem, void *arg)
{
	chat_turn *t = arg;
	t->recall = NULL;
	json_array_extend(t->sources, sources);
	json_decref(sources);
	if (problem)
		snprintf(t->mem_problem, sizeof t->mem_problem, "%s", problem);
	turn_answer(t);
}

/* With the passages in: the memory rows (on recall's worker), then the answer. */
static void turn_recall(chat_turn *t)
{
	chat *c = t->c;
	if (c->recall)
		t->recall = chat_recall_start(c->recall, t->user, t->question, CHAT_MEMORY_ROWS_MAX,
					      json_array_size(t->sources) + 1, on_recalled, t);
	if (!t->recall)
		turn_answer(t);
}

static void on_next_step(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	turn_recall(arg);
}

static void on_search(int status, const char *body, size_t len, double ms, const char *error,
		      void *arg)
{
	(void)ms;
	chat_turn *t = arg;
	json_t *answer = status == 200 ? json_loadb(body, len, 0, NULL) : NULL;
	if (answer) {
		json_decref(t->sources);
		t->sources = chat_passages(answer, CHAT_PASSAGES_MAX, 1);
	} else {
		t->c->librarian_failures++;
		if (status)
			snprintf(t->lib_problem, sizeof t->lib_problem, "the librarian answered %d",
				 status);
		else
			snprintf(t->lib_problem, sizeof t->lib_problem, "the librarian did not answer (%s)",
				 error ? error : "no answer");
	}
	json_decref(answer);
	turn_recall(t);
}

/* Asks the librarian for the best passages; false when it cannot be asked
 * (then lib_problem says why, unless there was nothing to ask). */
static bool turn_search(chat_turn *t)
{
	chat *c = t->c;
	char query[SEARCH_QUERY_MAX];
	if (!chat_search_query(t->question, query, sizeof query))
		return false;
	sup_kernel *k = sup_find(c->sup, "librarian");
	if (!k || k->state != SUP_READY) {
		c->librarian_failures++;
		snprintf(t->lib_problem, sizeof t->lib_problem, "the librarian is %s",
			 k ? sup_state_name(k->state) : "not configured");
		return false;
	}
	char enc[3 * SEARCH_QUERY_MAX];
	char path[4 * SEARCH_QUERY_MAX];
	int n = sdk_uri_encode(query, enc, sizeof enc) == 0
			? snprintf(path, sizeof path, "/search?limit=%u&query=%s", CHAT_PASSAGES_MAX,
				   enc)
			: -1;
	if (n < 0 || (size_t)n >= sizeof path ||
	    sdk_call(c->caller, "librarian", "GET", path, NULL, 0, NULL, CHAT_LIBRARIAN_TIMEOUT_MS,
		     on_search, t) < 0) {
		c->librarian_failures++;
		snprintf(t->lib_problem, sizeof t->lib_problem, "the call to the librarian could not start");
		return false;
	}
	return true;
}

/* The recent turns a reply sees: at most CHAT_HISTORY_BYTES, newest kept. */
static json_t *history_trim(json_t *msgs)
{
	json_t *out = json_array();
	size_t total = 0, i = json_array_size(msgs);
	while (out && i-- > 0) {
		json_t *m = json_array_get(msgs, i);
		size_t n = json_string_length(json_object_get(m, "content"));
		if (total + n > CHAT_HISTORY_BYTES)
			break;
		total += n;
		json_array_insert_new(out, 0,
				      json_pack("{s:O, s:O}", "role", json_object_get(m, "role"),
						"content", json_object_get(m, "content")));
	}
	return out;
}

int chat_turn_start(chat *c, const char *user, int64_t session, const char *question, bool stream,
		    const chat_turn_cbs *cbs, void *arg, chat_turn **out, sdk_err *e)
{
	json_t *s = NULL, *recent = NULL;
	int rc = chat_store_session_get(c->db, user, session, &s, e);
	if (rc < 0)
		return rc;
	json_int_t count = json_integer_value(json_object_get(s, "message_count"));
	json_decref(s);
	if (chat_session_busy(c, session))
		return sdk_fail(e, CHAT_EANSWERING, "an answer is still being written in session %lld",
				(long long)session);
	if (count + 2 > CHAT_MESSAGES_MAX)
		return sdk_fail(e, CHAT_EFULL,
				"session %lld has %d messages, the most one session keeps; start a "
				"new one",
				(long long)session, CHAT_MESSAGES_MAX);
	if (c->stopping)
		return stopping(e);
	if (c->n_turns >= CHAT_TURNS_MAX)
		return sdk_fail(e, SDK_EBUSY, "%d answers are being written; try again shortly",
				CHAT_TURNS_MAX);
	if ((rc = chat_store_messages(c->db, session, CHAT_HISTORY_MESSAGES, &recent, e)) < 0)
		return rc;
	chat_turn *t = calloc(1, sizeof *t);
	if (t) {
		t->question = strdup(question);
		t->history = history_trim(recent);
		t->sources = json_array();
		t->next_step = event_new(c->base, -1, 0, on_next_step, t);
		t->streamed = evbuffer_new();
	}
	json_decref(recent);
	json_t *q = json_pack("{s:s, s:s}", "role", "user", "content", question);
	if (!t || !t->question || !t->history || !t->sources || !t->next_step || !t->streamed || !q) {
		rc = sdk_fail(e, SDK_EBUSY, "out of memory");
		goto fail;
	}
	if ((rc = chat_store_message_add(c->db, session, q, sdk_wall_ms(), e)) < 0)
		goto fail;
	json_decref(q);
	t->c = c;
	snprintf(t->user, sizeof t->user, "%s", user);
	t->session = session;
	t->stream = stream;
	t->cbs = *cbs;
	t->arg = arg;
	t->next = c->turns;
	if (c->turns)
		c->turns->prev = t;
	c->turns = t;
	c->n_turns++;
	if (!turn_search(t)) /* never calls back from here: the loop runs the next step */
		event_active(t->next_step, 0, 0);
	*out = t;
	return 0;
fail:
	json_decref(q);
	if (t) {
		if (t->next_step)
			event_free(t->next_step);
		if (t->streamed)
			evbuffer_free(t->streamed);
		json_decref(t->history);
		json_decref(t->sources);
		free(t->question);
		free(t);
	}
	return rc;
}

void chat_turn_detach(chat_turn *t) { t->detached = true; }

void chat_stop(chat *c)
{
	if (!c || c->stopping)
		return;
	c->stopping = true;
	/* Waiting on a model: answer from the sources now. The others are
	 * gathering their sources and will not ask the model. */
	for (chat_turn *t = c->turns, *next; t; t = next) {
		next = t->next;
		if (!t->call)
			continue;
		sdk_model_call_cancel(t->call);
		t->call = NULL;
		size_t n = evbuffer_get_length(t->streamed);
		turn_model_failed(t, "Grace is stopping",
				  n ? (const char *)evbuffer_pullup(t->streamed, -1) : NULL, n);
	}
}

void chat_metrics(const chat *c, struct evbuffer *out)
{
	evbuffer_add_printf(out,
			    "# HELP grace_chat_answers_total Chat answers, by what wrote them.\n"
			    "# TYPE grace_chat_answers_total counter\n"
			    "grace_chat_answers_total{by=\"model\"} %llu\n"
			    "grace_chat_answers_total{by=\"retrieval\"} %llu\n"
			    "# HELP grace_chat_model_failures_total Model calls that gave no whole "
			    "answer, by why.\n"
			    "# TYPE grace_chat_model_failures_total counter\n",
			    c->by_model, c->by_retrieval);
	for (int f = SDK_MODEL_OK + 1; f < SDK_MODEL_FAILURE_KINDS; f++)
		evbuffer_add_printf(out, "grace_chat_model_failures_total{reason=\"%s\"} %llu\n",
				    sdk_model_failure_label((sdk_model_failure)f), c->model_failures[f]);
	evbuffer_add_printf(out,
			    "# HELP grace_chat_librarian_failures_total Answers written without the library.\n"
			    "# TYPE grace_chat_librarian_failures_total counter\n"
			    "grace_chat_librarian_failures_total %llu\n"
			    "# HELP grace_chat_turns_in_flight Answers being written.\n"
			    "# TYPE grace_chat_turns_in_flight gauge\n"
			    "grace_chat_turns_in_flight %u\n",
			    c->librarian_failures, c->n_turns);
}

/* scheme://host[:port] of a URL, without any user:password@. */
static void url_origin(const char *url, char *out, size_t len)
{
	const char *p = strstr(url, "://");
	const char *host = p ? p + 3 : url;
	size_t n = strcspn(host, "/?#");
	const char *at = memchr(host, '@', n);
	if (at) {
		n -= (size_t)(at + 1 - host);
		host = at + 1;
	}
	snprintf(out, len, "%.*s%.*s", p ? (int)(p + 3 - url) : 0, url, (int)n, host);
}

chat *chat_new(struct event_base *base, const grace_config *cfg, supervisor *sup, const char *token,
	       sdk_err *err)
{
	chat *c = calloc(1, sizeof *c);
	if (!c) {
		sdk_fail(err, SDK_EIO, "out of memory");
		return NULL;
	}
	c->base = base;
	c->sup = sup;
	sdk_err why;
	if (sdk_db_open(cfg->data_dir, "chat", &c->db, &why) < 0 ||
	    chat_store_init(c->db, &why) < 0) {
		sdk_fail(err, SDK_EIO, "chat.db: %s", why.msg);
		chat_free(c);
		return NULL;
	}
	if (!(c->caller = sdk_caller_new(base, "grace", token, sup_resolve, sup))) {
		sdk_fail(err, SDK_EIO, "out of memory");
		chat_free(c);
		return NULL;
	}
	c->recall = chat_recall_open(base, cfg->data_dir, &cfg->store, &why);
	if (!c->recall)
		sdk_warn("chat: answers will not see memory tables: %s", why.msg);
	if (cfg->model.base_url[0]) {
		if (!(c->model = sdk_model_new(base, &cfg->model, err))) {
			chat_free(c);
			return NULL;
		}
		char origin[256];
		url_origin(cfg->model.base_url, origin, sizeof origin);
		sdk_info("chat: answers from model '%s' at %s (timeout %u ms)",
			 cfg->model.model[0] ? cfg->model.model : "(server default)", origin,
			 cfg->model.timeout_ms);
	} else {
		sdk_info("chat: no [model] configured; answers come from the library");
	}
	return c;
}

void chat_free(chat *c)
{
	if (!c)
		return;
	sdk_caller_free(c->caller); /* ends librarian calls without calling back */
	c->caller = NULL;
	while (c->turns) {
		chat_turn *t = c->turns;
		sdk_model_call_cancel(t->call);
		t->call = NULL;
		if (!t->detached && t->cbs.on_done) {
			sdk_err e;
			t->cbs.on_done(NULL, stopping(&e), &e, t->arg);
		}
		turn_free(t);
	}
	chat_recall_close(c->recall); /* after the turns: their lookups are cancelled */
	sdk_model_free(c->model);
	if (c->db)
		sqlite3_close(c->db);
	free(c);
}
