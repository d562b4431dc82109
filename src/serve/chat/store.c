#include "serve/chat/store.h"

#include "sdk/db.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* AUTOINCREMENT: a deleted session's id is never handed out again, so an
 * old link never shows someone a newer conversation. */
static const char chat_schema[] =
	"CREATE TABLE IF NOT EXISTS sessions ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" owner TEXT NOT NULL,"
	" title TEXT,"
	" created_ms INTEGER NOT NULL,"
	" updated_ms INTEGER NOT NULL,"
	" message_count INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX IF NOT EXISTS sessions_owner ON sessions (owner, updated_ms);"
	"CREATE TABLE IF NOT EXISTS messages ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" session_id INTEGER NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,"
	" role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),"
	" content TEXT NOT NULL,"
	" citations TEXT," /* JSON array, assistant messages only */
	" model TEXT,"
	" model_answered INTEGER,"
	" notice TEXT,"
	" created_ms INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS messages_session ON messages (session_id, id);";

#define SESSION_COLUMNS "id, title, created_ms, updated_ms, message_count"

int chat_store_init(sqlite3 *db, sdk_err *err)
{
	return sdk_db_exec(db, chat_schema, err);
}

static json_t *text_or_null(sqlite3_stmt *st, int col)
{
	const unsigned char *s = sqlite3_column_text(st, col);
	return s ? json_string((const char *)s) : json_null();
}

static json_t *session_row(sqlite3_stmt *st)
{
	return json_pack("{s:I, s:o, s:I, s:I, s:I}", "id", (json_int_t)sqlite3_column_int64(st, 0),
			 "title", text_or_null(st, 1), "created_ms",
			 (json_int_t)sqlite3_column_int64(st, 2), "updated_ms",
			 (json_int_t)sqlite3_column_int64(st, 3), "message_count",
			 (json_int_t)sqlite3_column_int64(st, 4));
}

/* A row's JSON could not be made: out of memory. */
static int no_memory(sdk_err *e)
{
	return sdk_fail(e, SDK_EIO, "chat.db: out of memory");
}

int chat_store_session_new(sqlite3 *db, const char *owner, const char *title, int64_t now_ms,
			   json_t **out, sdk_err *e)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
				"INSERT INTO sessions (owner, title, created_ms, updated_ms)"
				" VALUES (?1, ?2, ?3, ?3) RETURNING " SESSION_COLUMNS,
				&st, e);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, title, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now_ms);
	if (sqlite3_step(st) != SQLITE_ROW)
		rc = sdk_db_fail(db, e, "new chat session");
	else if (!(*out = session_row(st)))
		rc = no_memory(e);
	sqlite3_finalize(st);
	return rc;
}

int chat_store_session_count(sqlite3 *db, const char *owner, int64_t *n, sdk_err *e)
{
	return sdk_db_count(db, "SELECT count(*) FROM sessions WHERE owner = ?1", owner, n,
			    "count chat sessions", e);
}

/* Every row of `st` as `row` makes it: 0 and *out (an array), or the
 * status. Finalizes `st`. */
static int rows(sqlite3 *db, sqlite3_stmt *st, json_t *(*row)(sqlite3_stmt *), const char *what,
		json_t **out, sdk_err *e)
{
	json_t *arr = json_array();
	int step = SQLITE_DONE, rc = 0;
	while (arr && (step = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(arr, row(st));
	if (!arr)
		rc = no_memory(e);
	else if (step != SQLITE_DONE)
		rc = sdk_db_fail(db, e, what);
	sqlite3_finalize(st);
	if (rc < 0) {
		json_decref(arr);
		return rc;
	}
	*out = arr;
	return 0;
}

int chat_store_sessions(sqlite3 *db, const char *owner, unsigned limit, json_t **out,
			sdk_err *e)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
				"SELECT " SESSION_COLUMNS " FROM sessions WHERE owner = ?1"
				" ORDER BY updated_ms DESC, id DESC LIMIT ?2",
				&st, e);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, limit);
	return rows(db, st, session_row, "list chat sessions", out, e);
}

static int no_session(sdk_err *e, int64_t id)
{
	return sdk_fail(e, SDK_ENOTFOUND, "no chat session %lld", (long long)id);
}

int chat_store_session_get(sqlite3 *db, const char *owner, int64_t id, json_t **out, sdk_err *e)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(
		db, "SELECT " SESSION_COLUMNS " FROM sessions WHERE id = ?1 AND owner = ?2", &st, e);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
	int step = sqlite3_step(st);
	if (step == SQLITE_DONE)
		rc = no_session(e, id);
	else if (step != SQLITE_ROW)
		rc = sdk_db_fail(db, e, "read the chat session");
	else if (!(*out = session_row(st)))
		rc = no_memory(e);
	sqlite3_finalize(st);
	return rc;
}

int chat_store_session_delete(sqlite3 *db, const char *owner, int64_t id, sdk_err *e)
{
	sqlite3_stmt *st;
	/* The messages go with it: ON DELETE CASCADE (foreign_keys is on). */
	int rc = sdk_db_prepare(db, "DELETE FROM sessions WHERE id = ?1 AND owner = ?2", &st, e);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = sdk_db_fail(db, e, "delete the chat session");
	else if (sqlite3_changes(db) == 0)
		rc = no_session(e, id);
	sqlite3_finalize(st);
	return rc;
}

static json_t *message_row(sqlite3_stmt *st)
{
	const char *role = (const char *)sqlite3_column_text(st, 1);
	json_t *m = json_pack("{s:I, s:s, s:o, s:I}", "id", (json_int_t)sqlite3_column_int64(st, 0),
			      "role", role ? role : "", "content", text_or_null(st, 2), "created_ms",
			      (json_int_t)sqlite3_column_int64(st, 7));
	if (!m || !role || strcmp(role, "assistant"))
		return m;
	const char *cit = (const char *)sqlite3_column_text(st, 3);
	json_t *c = cit ? json_loads(cit, 0, NULL) : NULL;
	json_object_set_new(m, "citations", c ? c : json_array());
	json_object_set_new(m, "model", text_or_null(st, 4));
	json_object_set_new(m, "model_answered", json_boolean(sqlite3_column_int(st, 5)));
	json_object_set_new(m, "notice", text_or_null(st, 6));
	return m;
}

int chat_store_messages(sqlite3 *db, int64_t session, unsigned limit, json_t **out, sdk_err *e)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
				"SELECT * FROM (SELECT id, role, content, citations, model,"
				" model_answered, notice, created_ms FROM messages"
				" WHERE session_id = ?1 ORDER BY id DESC LIMIT ?2) ORDER BY id",
				&st, e);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, session);
	sqlite3_bind_int64(st, 2, limit);
	return rows(db, st, message_row, "read the chat session's messages", out, e);
}

/* A title from the first words of the first question. */
static void title_from(const char *content, char *out, size_t len)
{
	size_t n = 0, cut = 0;
	const char *p = content;
	for (; *p && n + 1 < len; p++) {
		char ch = *p == '\n' || *p == '\r' || *p == '\t' ? ' ' : *p;
		if (ch == ' ' && (n == 0 || out[n - 1] == ' '))
			continue;
		if (ch == ' ')
			cut = n;
		out[n++] = ch;
	}
	if (*p && cut) { /* too long: end at a word */
		n = cut;
	} else if (*p && ((unsigned char)*p & 0xc0) == 0x80) { /* never inside a character */
		while (n && ((unsigned char)out[n - 1] & 0xc0) == 0x80)
			n--;
		if (n)
			n--;
	}
	while (n && out[n - 1] == ' ')
		n--;
	out[n] = '\0';
}

int chat_store_message_add(sqlite3 *db, int64_t session, json_t *msg, int64_t now_ms, sdk_err *e)
{
	const char *role = json_string_value(json_object_get(msg, "role"));
	const char *content = json_string_value(json_object_get(msg, "content"));
	const char *model = json_string_value(json_object_get(msg, "model"));
	const char *notice = json_string_value(json_object_get(msg, "notice"));
	json_t *cits = json_object_get(msg, "citations");
	json_t *answered = json_object_get(msg, "model_answered");
	if (!role || !content)
		return sdk_fail(e, SDK_EINVAL, "a chat message needs a role and a content");
	char *cit_text = cits ? json_dumps(cits, JSON_COMPACT) : NULL;
	if (cits && !cit_text)
		return no_memory(e);
	char title[64];
	title_from(content, title, sizeof title);

	sqlite3_stmt *up = NULL, *ins = NULL;
	int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK
			 ? 0
			 : sdk_db_fail(db, e, "store the chat message");
	if (rc < 0) {
		free(cit_text);
		return rc;
	}
	if ((rc = sdk_db_prepare(db,
				 "UPDATE sessions SET message_count = message_count + 1,"
				 " updated_ms = ?2, title = CASE WHEN title IS NULL AND ?3 = 'user'"
				 " AND ?4 <> '' THEN ?4 ELSE title END WHERE id = ?1",
				 &up, e)) < 0 ||
	    (rc = sdk_db_prepare(db,
				 "INSERT INTO messages (session_id, role, content, citations, model,"
				 " model_answered, notice, created_ms)"
				 " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
				 &ins, e)) < 0)
		goto out;
	sqlite3_bind_int64(up, 1, session);
	sqlite3_bind_int64(up, 2, now_ms);
	sqlite3_bind_text(up, 3, role, -1, SQLITE_STATIC);
	sqlite3_bind_text(up, 4, title, -1, SQLITE_STATIC);
	if (sqlite3_step(up) != SQLITE_DONE) {
		rc = sdk_db_fail(db, e, "store the chat message");
		goto out;
	}
	if (sqlite3_changes(db) == 0) {
		rc = no_session(e, session);
		goto out;
	}
	sqlite3_bind_int64(ins, 1, session);
	sqlite3_bind_text(ins, 2, role, -1, SQLITE_STATIC);
	sqlite3_bind_text(ins, 3, content, -1, SQLITE_STATIC);
	sqlite3_bind_text(ins, 4, cit_text, -1, SQLITE_STATIC);
	sqlite3_bind_text(ins, 5, model, -1, SQLITE_STATIC);
	if (answered)
		sqlite3_bind_int(ins, 6, json_is_true(answered));
	sqlite3_bind_text(ins, 7, notice, -1, SQLITE_STATIC);
	sqlite3_bind_int64(ins, 8, now_ms);
	if (sqlite3_step(ins) != SQLITE_ROW) {
		rc = sdk_db_fail(db, e, "store the chat message");
		goto out;
	}
	json_object_set_new(msg, "id", json_integer(sqlite3_column_int64(ins, 0)));
	json_object_set_new(msg, "created_ms", json_integer(now_ms));
out:
	sqlite3_finalize(up);
	sqlite3_finalize(ins); /* before COMMIT: a statement still running would hold it */
	/* COMMIT can fail too (a full disk at the WAL's write). */
	if (rc == 0 && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		rc = sdk_db_fail(db, e, "store the chat message");
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	free(cit_text);
	return rc;
}

static int purge_fail(sqlite3 *db, sdk_err *e)
{
	int st = sdk_status_of_sqlite(sqlite3_errcode(db));
	sdk_fail(e, st, "chat.db: %s", sqlite3_errmsg(db));
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return st;
}

int chat_store_purge_owner(sqlite3 *db, const char *owner, unsigned max_messages, sdk_err *e)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return purge_fail(db, e);
	if (sqlite3_prepare_v2(db,
			       "DELETE FROM messages WHERE id IN (SELECT m.id FROM sessions s"
			       " JOIN messages m ON m.session_id = s.id WHERE s.owner = ?1 LIMIT ?2)",
			       -1, &st, NULL) != SQLITE_OK)
		return purge_fail(db, e);
	sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, max_messages);
	int step = sqlite3_step(st);
	sqlite3_finalize(st);
	if (step != SQLITE_DONE)
		return purge_fail(db, e);
	bool more = (unsigned)sqlite3_changes(db) >= max_messages;
	if (!more) { /* the sessions go once their messages have */
		if (sqlite3_prepare_v2(db, "DELETE FROM sessions WHERE owner = ?1", -1, &st, NULL) !=
		    SQLITE_OK)
			return purge_fail(db, e);
		sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
		step = sqlite3_step(st);
		sqlite3_finalize(st);
		if (step != SQLITE_DONE)
			return purge_fail(db, e);
	}
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		return purge_fail(db, e);
	return more ? 1 : 0;
}
