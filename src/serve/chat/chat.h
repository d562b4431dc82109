/* Chat: sessions of questions and answers, each answer written from the
 * session's recent turns, the librarian's best passages and matching rows
 * of the user's memory tables — by a model server when one is configured,
 * else (or when it does not answer) from the passages themselves, cited,
 * saying plainly that no model answered. */
#ifndef GRACE_CHAT_CHAT_H
#define GRACE_CHAT_CHAT_H

#include "serve/layer.h"

#include "sdk/config.h"
#include "sdk/err.h"
#include "serve/supervisor/supervisor.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct evbuffer;

#define CHAT_CONTENT_MAX 16384    /* bytes of one question */
#define CHAT_TITLE_MAX 200        /* bytes of a session title */
#define CHAT_SESSIONS_MAX 1000    /* per user */
#define CHAT_MESSAGES_MAX 1000    /* per session, questions and answers */
#define CHAT_TURNS_MAX 64         /* answers being written at once */
#define CHAT_HISTORY_MESSAGES 12  /* recent messages a reply sees ... */
#define CHAT_HISTORY_BYTES 24576  /* ... and at most this much of them */
#define CHAT_PASSAGES_MAX 5       /* librarian passages a reply sees */
#define CHAT_MEMORY_ROWS_MAX 5    /* memory rows a reply sees */
#define CHAT_LIBRARIAN_TIMEOUT_MS 3000

typedef struct chat chat;
typedef struct chat_turn chat_turn;

/* Chat's own statuses (docs/errors.md, "A module's own failures"), beside
 * the shared ones it also returns: SDK_ENOTFOUND (no such session of the
 * user), SDK_EBUSY (too many answers being written: 503 busy), storage
 * failures as sdk_db_fail reports them. chat_status_http/_code map both. */
enum {
	CHAT_EANSWERING = SDK_E_MODULE,    /* 409 busy: an answer is being written in the session */
	CHAT_EFULL = SDK_E_MODULE - 1,     /* 409 session_full */
	CHAT_ESTOPPING = SDK_E_MODULE - 2, /* 503 stopping, Retry-After */
};
/* The HTTP status and error code of a status chat returns (its own and the
 * shared ones): for an answer, and for a stream's `error` event. */
int chat_status_http(int status);
const char *chat_status_code(int status);

typedef struct chat_turn_cbs {
	/* A piece of the answer as it is written (`stream` turns only). */
	void (*on_delta)(const char *text, size_t len, void *arg);
	/* The model was asked and failed (`stream` turns only; may be NULL):
	 * what follows is the answer from the sources. `partial`: the model
	 * had already written some of its answer, and it stops here, cut off. */
	void (*on_fallback)(const char *why, bool partial, void *arg);
	/* Once: the stored assistant message (a new reference the callee
	 * owns), or NULL with the status (chat_status_http maps it) and `e`
	 * saying why there is none. */
	void (*on_done)(json_t *message, int status, const sdk_err *e, void *arg);
} chat_turn_cbs;

/* Opens DATA_DIR/chat.db and, with a [model] section, the model client
 * (libcurl is loaded then and only then). `token` (borrowed) is the
 * internal token for the librarian. NULL with the reason in `err`. */
chat *chat_new(struct event_base *base, const grace_config *cfg, supervisor *sup, const char *token,
	       sdk_err *err);
/* Grace is stopping: answers waiting on the model are answered from their
 * sources at once, and no new question is taken (503). */
void chat_stop(chat *c);
/* Ends every turn in flight (each gets on_done with a 503), then frees. */
void chat_free(chat *c);

sqlite3 *chat_db(chat *c);
/* The configured model's name ("" when it has none), or NULL without a model. */
const char *chat_model_name(const chat *c);
/* True while an answer is being written in `session`. */
bool chat_session_busy(const chat *c, int64_t session);
void chat_metrics(const chat *c, struct evbuffer *out);

/* Starts a turn: checks that `session` is `user`'s and not busy, stores the
 * question, gathers the context and asks for the answer. Callbacks never
 * run before this returns. 0 and *out, or the status (chat_status_http
 * maps it) with the reason in `e`. */
int chat_turn_start(chat *c, const char *user, int64_t session, const char *question, bool stream,
		    const chat_turn_cbs *cbs, void *arg, chat_turn **out, sdk_err *e);
/* The client went away: no more callbacks. The answer is still written
 * and stored, so the session's history stays whole. */
void chat_turn_detach(chat_turn *t);

#endif
