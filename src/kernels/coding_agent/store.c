#include "kernels/coding_agent/store.h"

#include "sdk/db.h"

#include <stdlib.h>
#include <string.h>

int ca_store_init(sqlite3 *db, sdk_err *err)
{
	if (sqlite3_exec(db,
			 "CREATE TABLE IF NOT EXISTS tasks ("
			 " seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,"
			 " state TEXT NOT NULL, updated_ms INTEGER NOT NULL, doc TEXT NOT NULL);",
			 NULL, NULL, NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, "creating the schema");
	return 0;
}

int ca_store_put(sqlite3 *db, const json_t *doc, int64_t now_ms, sdk_err *err)
{
	const char *id = json_string_value(json_object_get(doc, "id"));
	const char *state = json_string_value(json_object_get(doc, "state"));
	if (!id || !state)
		return sdk_fail(err, SDK_EINVAL, "a task without id or state");
	char *text = json_dumps(doc, JSON_COMPACT);
	if (!text)
		return sdk_fail(err, SDK_EIO, "out of memory");
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
				"INSERT INTO tasks (id, state, updated_ms, doc) VALUES (?, ?, ?, ?)"
				" ON CONFLICT(id) DO UPDATE SET state = excluded.state,"
				" updated_ms = excluded.updated_ms, doc = excluded.doc",
				&st, err);
	if (rc < 0) {
		free(text);
		return rc;
	}
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now_ms);
	sqlite3_bind_text(st, 4, text, -1, SQLITE_STATIC);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : sdk_db_fail(db, err, "storing a task");
	sqlite3_finalize(st);
	free(text);
	return rc;
}

static json_t *row_doc(sqlite3_stmt *st, int col_doc, int col_seq)
{
	json_t *doc = json_loads(sdk_db_text(st, col_doc), 0, NULL);
	if (doc && col_seq >= 0)
		json_object_set_new(doc, "seq", json_integer(sqlite3_column_int64(st, col_seq)));
	return doc;
}

int ca_store_get(sqlite3 *db, const char *id, json_t **doc, sdk_err *err)
{
	*doc = NULL;
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db, "SELECT doc, seq FROM tasks WHERE id = ?", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW) {
		*doc = row_doc(st, 0, 1);
		rc = *doc ? 0 : sdk_fail(err, SDK_ECORRUPT, "task %s no longer reads", id);
	} else if (s == SQLITE_DONE) {
		rc = sdk_fail(err, SDK_ENOTFOUND, "no task %s", id);
	} else {
		rc = sdk_db_fail(db, err, "reading a task");
	}
	sqlite3_finalize(st);
	return rc;
}

int ca_store_list(sqlite3 *db, int64_t cursor, unsigned limit, json_t **out, sdk_err *err)
{
	*out = NULL;
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
				"SELECT doc, seq FROM tasks WHERE (? = 0 OR seq < ?)"
				" ORDER BY seq DESC LIMIT ?",
				&st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, cursor);
	sqlite3_bind_int64(st, 2, cursor);
	sqlite3_bind_int(st, 3, (int)limit);
	json_t *a = json_array();
	int s;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *d = row_doc(st, 0, 1);
		if (d) {
			/* A list names each task; the whole report is GET /tasks/ID. */
			json_object_del(d, "commands");
			json_object_del(d, "patch");
			json_object_del(d, "turns_log");
			json_array_append_new(a, d);
		}
	}
	if (s != SQLITE_DONE) {
		json_decref(a);
		rc = sdk_db_fail(db, err, "listing tasks");
	} else {
		*out = a;
	}
	sqlite3_finalize(st);
	return rc;
}

int ca_store_delete(sqlite3 *db, const char *id, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db, "DELETE FROM tasks WHERE id = ?", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : sdk_db_fail(db, err, "deleting a task");
	sqlite3_finalize(st);
	if (rc == 0 && sqlite3_changes(db) == 0)
		rc = sdk_fail(err, SDK_ENOTFOUND, "no task %s", id);
	return rc;
}

int ca_store_fail_unfinished(sqlite3 *db, const char *why, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
				"UPDATE tasks SET state = 'failed',"
				" doc = json_set(doc, '$.state', 'failed', '$.error', ?)"
				" WHERE state NOT IN ('done', 'failed')",
				&st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, why, -1, SQLITE_STATIC);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : sdk_db_fail(db, err, "closing unfinished tasks");
	sqlite3_finalize(st);
	return rc;
}

int ca_store_count(sqlite3 *db, int64_t *n, sdk_err *err)
{
	return sdk_db_count(db, "SELECT count(*) FROM tasks", NULL, n, "counting tasks", err);
}
