#include "serve/guardian/events.h"

#include "sdk/db.h"

#include <stdio.h>

#define PRUNE_EVERY 100

int gd_events_init(sqlite3 *db, sdk_err *err)
{
	return sdk_db_exec(
		db,
		"CREATE TABLE IF NOT EXISTS guardian_events ("
		" id INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL, kernel TEXT NOT NULL,"
		" from_state TEXT NOT NULL, to_state TEXT NOT NULL, reason TEXT NOT NULL);"
		"CREATE INDEX IF NOT EXISTS guardian_events_ts ON guardian_events(ts_ms);",
		err);
}

int gd_events_add(sqlite3 *db, int64_t ts_ms, const char *kernel, const char *from,
		  const char *to, const char *reason)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "INSERT INTO guardian_events (ts_ms, kernel, from_state, to_state, reason)"
			       " VALUES (?, ?, ?, ?, ?)",
			       -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(st, 1, ts_ms);
	sqlite3_bind_text(st, 2, kernel, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, from, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, to, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, reason, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
	sqlite3_finalize(st);
	int64_t id = sqlite3_last_insert_rowid(db);
	if (rc == 0 && id % PRUNE_EVERY == 0) {
		char sql[128];
		snprintf(sql, sizeof sql, "DELETE FROM guardian_events WHERE id <= %lld",
			 (long long)(id - GD_EVENTS_KEEP));
		sqlite3_exec(db, sql, NULL, NULL, NULL);
	}
	return rc;
}

json_t *gd_events_list(sqlite3 *db, int64_t since_ms, const char *kernel, unsigned limit)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "SELECT id, ts_ms, kernel, from_state, to_state, reason"
			       " FROM guardian_events WHERE ts_ms >= ?1 AND (?2 IS NULL OR kernel = ?2)"
			       " ORDER BY id LIMIT ?3",
			       -1, &st, NULL) != SQLITE_OK)
		return NULL;
	sqlite3_bind_int64(st, 1, since_ms);
	if (kernel)
		sqlite3_bind_text(st, 2, kernel, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, (int)limit);
	json_t *out = json_array();
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_array_append_new(
			out, json_pack("{s:I, s:I, s:s, s:s, s:s, s:s}", "id",
				       (json_int_t)sqlite3_column_int64(st, 0), "ts_ms",
				       (json_int_t)sqlite3_column_int64(st, 1), "kernel",
				       (const char *)sqlite3_column_text(st, 2), "from",
				       (const char *)sqlite3_column_text(st, 3), "to",
				       (const char *)sqlite3_column_text(st, 4), "reason",
				       (const char *)sqlite3_column_text(st, 5)));
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		json_decref(out);
		return NULL;
	}
	return out;
}
