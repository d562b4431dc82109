/* The SQLite engine's shares (engine.h's steps): read-only grants of one
 * user's table to others. */
#include "serve/memory/store_int.h"

#include <stdlib.h>
#include <string.h>

int mem_lite_shares_json(void *conn, int64_t table_id, json_t **out, sdk_err *e)
{
	mem_conn *c = conn;
	sqlite3_stmt *st;
	int rc = mem_prep(c, "SELECT user FROM mem_shares WHERE table_id = ? ORDER BY user", &st, e);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, table_id);
	json_t *a = json_array();
	int step = SQLITE_DONE;
	while (a && (step = sqlite3_step(st)) == SQLITE_ROW)
		if (json_array_append_new(a, json_string((const char *)sqlite3_column_text(st, 0))) < 0)
			break;
	if (!a || step == SQLITE_ROW)
		rc = mem_oom(e);
	else if (step != SQLITE_DONE)
		rc = mem_db_fail(c->db, e, "read shares");
	sqlite3_finalize(st);
	if (rc < 0)
		json_decref(a);
	else
		*out = a;
	return rc;
}

/* A statement on mem_shares run to its end: ?1 is the table id, ?2 the
 * user, ?3 the time (a statement binds those it names). */
static int share_stmt(mem_conn *c, const char *sql, int64_t table_id, const char *user,
		      int64_t now_ms, const char *what, sdk_err *e)
{
	sqlite3_stmt *st;
	int rc = mem_prep(c, sql, &st, e);
	if (rc < 0)
		return rc;
	int n = sqlite3_bind_parameter_count(st);
	if (n >= 1)
		sqlite3_bind_int64(st, 1, table_id);
	if (n >= 2)
		sqlite3_bind_text(st, 2, user, -1, SQLITE_STATIC);
	if (n >= 3)
		sqlite3_bind_int64(st, 3, now_ms);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = mem_db_fail(c->db, e, what);
	sqlite3_finalize(st);
	return rc;
}

int mem_lite_share_set(void *c, int64_t table_id, const char *user, bool add, int64_t now_ms,
		       sdk_err *e)
{
	return share_stmt(c,
			  add ? "INSERT OR IGNORE INTO mem_shares (table_id, user, created_ms)"
				" VALUES (?1, ?2, ?3)"
			      : "DELETE FROM mem_shares WHERE table_id = ?1 AND user = ?2",
			  table_id, user, now_ms, "change shares", e);
}

int mem_lite_shares_drop_user(void *c, const char *user, sdk_err *e)
{
	/* Only ?2: ?1 is bound all the same (the count is the highest index). */
	return share_stmt(c, "DELETE FROM mem_shares WHERE user = ?2", 0, user, 0, "delete shares",
			  e);
}

int mem_lite_shares_count(void *conn, int64_t table_id, int64_t *n, sdk_err *e)
{
	mem_conn *c = conn;
	sqlite3_stmt *st;
	int rc = mem_prep(c, "SELECT count(*) FROM mem_shares WHERE table_id = ?", &st, e);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, table_id);
	if (sqlite3_step(st) == SQLITE_ROW)
		*n = sqlite3_column_int64(st, 0);
	else
		rc = mem_db_fail(c->db, e, "count shares");
	sqlite3_finalize(st);
	return rc;
}
