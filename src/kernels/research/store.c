#include "kernels/research/store.h"

#include "sdk/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS investigations ("
	" id INTEGER PRIMARY KEY, created_ms INTEGER NOT NULL, state TEXT NOT NULL,"
	" question TEXT NOT NULL, kernel TEXT, top TEXT, doc TEXT NOT NULL);";

int rs_store_init(sqlite3 *db, int64_t *max_id, sdk_err *err)
{
	sdk_err why;
	if (sdk_db_exec(db, schema, &why) < 0)
		return sdk_fail(err, SDK_EIO, "research store: %s", why.msg);
	/* Nobody will finish what a previous run was doing. */
	if (sdk_db_exec(db,
			"UPDATE investigations SET state = 'interrupted',"
			" doc = json_set(doc, '$.state', 'interrupted') WHERE state = 'running'",
			&why) < 0)
		return sdk_fail(err, SDK_EIO, "research store: %s", why.msg);
	return sdk_db_count(db, "SELECT coalesce(max(id), 0) FROM investigations", NULL, max_id,
			    "the last investigation", err);
}

int rs_store_put(sqlite3 *db, int64_t id, const json_t *doc, unsigned keep, sdk_err *err)
{
	char *text = json_dumps(doc, JSON_COMPACT);
	if (!text)
		return sdk_fail(err, SDK_EIO, "out of memory");
	const json_t *hyps = json_object_get(doc, "hypotheses");
	const char *top = json_string_value(json_object_get(json_array_get(hyps, 0), "title"));
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
				"INSERT OR REPLACE INTO investigations"
				" (id, created_ms, state, question, kernel, top, doc)"
				" VALUES (?, ?, ?, ?, ?, ?, ?)",
				&st, err);
	if (rc < 0) {
		free(text);
		return rc;
	}
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, json_integer_value(json_object_get(doc, "created_ms")));
	sqlite3_bind_text(st, 3, json_string_value(json_object_get(doc, "state")), -1,
			  SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 4, json_string_value(json_object_get(doc, "question")), -1,
			  SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 5, json_string_value(json_object_get(doc, "kernel")), -1,
			  SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 6, top, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 7, text, -1, free);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : sdk_db_fail(db, err, "storing an investigation");
	sqlite3_finalize(st);
	if (rc < 0)
		return rc;
	if (sdk_db_prepare(db, "DELETE FROM investigations WHERE id <= ? - ?", &st, err) < 0)
		return 0; /* kept: pruning waits for the next one */
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, keep);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = sdk_db_fail(db, err, "pruning investigations");
	sqlite3_finalize(st);
	return rc;
}

int rs_store_get(sqlite3 *db, int64_t id, json_t **doc, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db, "SELECT doc FROM investigations WHERE id = ?", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*doc = json_loads(sdk_db_text(st, 0), 0, NULL);
		rc = *doc ? 0 : sdk_fail(err, SDK_ECORRUPT, "investigation %lld is not JSON", (long long)id);
	} else if (rc == SQLITE_DONE) {
		rc = sdk_fail(err, SDK_ENOTFOUND, "no investigation %lld", (long long)id);
	} else {
		rc = sdk_db_fail(db, err, "reading an investigation");
	}
	sqlite3_finalize(st);
	return rc;
}

int rs_store_list(sqlite3 *db, int64_t before, unsigned limit, json_t **out, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
				"SELECT id, state, question, kernel, created_ms, top FROM investigations"
				" WHERE ?1 = 0 OR id < ?1 ORDER BY id DESC LIMIT ?2",
				&st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, before);
	sqlite3_bind_int64(st, 2, limit);
	json_t *arr = json_array();
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *kernel = (const char *)sqlite3_column_text(st, 3);
		const char *top = (const char *)sqlite3_column_text(st, 5);
		json_array_append_new(
			arr, json_pack("{s:I, s:s, s:s, s:o, s:I, s:o}", "id",
				       (json_int_t)sqlite3_column_int64(st, 0), "state",
				       sdk_db_text(st, 1), "question", sdk_db_text(st, 2), "kernel",
				       kernel ? json_string(kernel) : json_null(), "created_ms",
				       (json_int_t)sqlite3_column_int64(st, 4), "top",
				       top ? json_string(top) : json_null()));
	}
	if (rc != SQLITE_DONE) {
		json_decref(arr);
		rc = sdk_db_fail(db, err, "listing investigations");
	} else {
		*out = arr;
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}
