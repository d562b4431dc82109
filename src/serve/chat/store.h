/* Chat sessions and their messages in DATA_DIR/chat.db. Every lookup is by
 * owner as well as id: another user's session does not exist here. */
#ifndef GRACE_CHAT_STORE_H
#define GRACE_CHAT_STORE_H

#include "serve/layer.h"

#include "sdk/err.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

/* Creates the tables when missing. 0, or the status with the reason in `err`. */
int chat_store_init(sqlite3 *db, sdk_err *err);

/* Every function below returns 0 or a negative sdk_status (sdk/err.h)
 * with the reason in `e` (which may be NULL): SDK_ENOTFOUND for a session
 * that is not the owner's, a SQLite failure as sdk_db_fail reports it
 * (SDK_EFULL for a full disk). */

/* A new session of `owner` (title may be NULL): *out, a new reference to
 * its JSON. */
int chat_store_session_new(sqlite3 *db, const char *owner, const char *title, int64_t now_ms,
			   json_t **out, sdk_err *e);
/* How many sessions `owner` has. */
int chat_store_session_count(sqlite3 *db, const char *owner, int64_t *n, sdk_err *e);
/* The newest `limit` sessions of `owner`: *out (an array). */
int chat_store_sessions(sqlite3 *db, const char *owner, unsigned limit, json_t **out,
			sdk_err *e);
/* Session `id` of `owner`: *out. */
int chat_store_session_get(sqlite3 *db, const char *owner, int64_t id, json_t **out, sdk_err *e);
/* Deletes session `id` of `owner` with its messages. */
int chat_store_session_delete(sqlite3 *db, const char *owner, int64_t id, sdk_err *e);

/* The last `limit` messages of a session, oldest first: *out (an array). */
int chat_store_messages(sqlite3 *db, int64_t session, unsigned limit, json_t **out, sdk_err *e);
/* Appends `msg` ({"role","content"} and, for the assistant, "citations",
 * "model", "model_answered", "notice") to a session, and sets its id and
 * created_ms in `msg`. The first user message names an untitled session.
 * SDK_ENOTFOUND: the session is gone. */
int chat_store_message_add(sqlite3 *db, int64_t session, json_t *msg, int64_t now_ms, sdk_err *e);

/* Deletes `owner`'s sessions with their messages (a user's account is
 * gone, or a new account takes the name), at most `max_messages` messages
 * per call so a long history never holds the loop for long. Returns 1 when
 * more is left, 0 when `owner` has nothing left, or a negative sdk_status
 * (sdk/err.h) with the reason in `e`. */
int chat_store_purge_owner(sqlite3 *db, const char *owner, unsigned max_messages, sdk_err *e);

#endif
