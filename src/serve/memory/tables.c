/* The SQLite engine's tables (engine.h's steps): who may reach which
 * (resolve), a new table's SQL objects, show, list, drop, and the counts
 * the quotas read. */
#include "serve/memory/store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FTS_AUTOMERGE 8 /* FTS5's default is 4 */

#define TINFO_COLS "t.id, t.owner, t.name, t.columns"

static int tinfo_read(sqlite3_stmt *st, mem_tinfo *t, sdk_err *e)
{
	mem_table_row r = { .id = sqlite3_column_int64(st, 0),
			    .owner = (const char *)sqlite3_column_text(st, 1),
			    .name = (const char *)sqlite3_column_text(st, 2),
			    .columns = (const char *)sqlite3_column_text(st, 3) };
	return mem_tinfo_fill(t, &r, e);
}

int mem_lite_resolve(void *conn, const char *user, const char *owner, const char *name,
		     bool write, mem_tinfo *t, sdk_err *e)
{
	mem_conn *c = conn;
	const char *own;
	int rc = mem_resolve_start(user, owner, name, t, &own, e);
	if (rc < 0)
		return rc;
	bool other = rc;
	sqlite3_stmt *st;
	rc = mem_prep(c,
		      other ? "SELECT " TINFO_COLS " FROM mem_tables t JOIN mem_shares s"
			      " ON s.table_id = t.id AND s.user = ?3"
			      " WHERE t.owner = ?1 AND t.name = ?2"
			    : "SELECT " TINFO_COLS " FROM mem_tables t"
			      " WHERE t.owner = ?1 AND t.name = ?2",
		      &st, e);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, own, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	if (other)
		sqlite3_bind_text(st, 3, user, -1, SQLITE_STATIC);
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW)
		rc = tinfo_read(st, t, e);
	else
		rc = step == SQLITE_DONE ? 1 : mem_db_fail(c->db, e, "find table");
	sqlite3_finalize(st);
	return mem_resolve_end(rc, t, name, own, other, write, e);
}

#define TABLE_COLS \
	"t.id, t.owner, t.name, t.description, t.columns, t.created_ms, t.n_rows, t.bytes"

/* One table as shown to `user`; with_shares adds who it is shared with. */
static int table_json(mem_conn *c, sqlite3_stmt *st, const char *user, bool with_shares,
		      json_t **out, sdk_err *e)
{
	mem_table_row r = {
		.id = sqlite3_column_int64(st, 0),
		.owner = (const char *)sqlite3_column_text(st, 1),
		.name = (const char *)sqlite3_column_text(st, 2),
		.description = (const char *)sqlite3_column_text(st, 3),
		.columns = (const char *)sqlite3_column_text(st, 4),
		.created_ms = sqlite3_column_int64(st, 5),
		.rows = sqlite3_column_int64(st, 6),
		.bytes = sqlite3_column_int64(st, 7),
	};
	return mem_table_render(&mem_lite_engine, c, &r, user, with_shares, out, e);
}

int mem_lite_table_show(void *conn, int64_t id, const char *user, json_t **out, sdk_err *e)
{
	mem_conn *c = conn;
	sqlite3_stmt *st;
	int rc = mem_prep(c, "SELECT " TABLE_COLS " FROM mem_tables t WHERE t.id = ?", &st, e);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW)
		rc = table_json(c, st, user, true, out, e);
	else if (step == SQLITE_DONE)
		rc = sdk_fail(e, SDK_ENOTFOUND, "no such table");
	else
		rc = mem_db_fail(c->db, e, "read table");
	sqlite3_finalize(st);
	return rc;
}

int mem_lite_table_list(void *conn, const char *user, json_t *tables, sdk_err *e)
{
	mem_conn *c = conn;
	static const char *const queries[] = {
		"SELECT " TABLE_COLS " FROM mem_tables t WHERE t.owner = ? ORDER BY t.name",
		"SELECT " TABLE_COLS " FROM mem_shares s JOIN mem_tables t ON t.id = s.table_id"
		" WHERE s.user = ? ORDER BY t.owner, t.name",
	};
	int rc = 0;
	for (size_t q = 0; rc == 0 && q < 2; q++) {
		sqlite3_stmt *st;
		if ((rc = mem_prep(c, queries[q], &st, e)) < 0)
			break;
		sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
		int step = SQLITE_DONE;
		while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
			json_t *t = NULL;
			if ((rc = table_json(c, st, user, false, &t, e)) == 0 &&
			    json_array_append_new(tables, t) < 0)
				rc = mem_oom(e);
		}
		if (rc == 0 && step != SQLITE_DONE)
			rc = mem_db_fail(c->db, e, "list tables");
		sqlite3_finalize(st);
	}
	return rc;
}

/* The SQL objects of table `id`: names are mr_ID / mf_ID, the column names
 * inside JSON path literals passed mem_column_name_valid. */
static void table_ddl(int64_t id, const mem_columns *cols, sdk_buf *sql)
{
	long long t = (long long)id;
	bool fts = mem_columns_has_text(cols);
	sdk_buf_printf(sql,
		       "CREATE TABLE mr_%lld (id INTEGER PRIMARY KEY AUTOINCREMENT,"
		       " data TEXT NOT NULL, created_ms INTEGER NOT NULL,"
		       " updated_ms INTEGER NOT NULL",
		       t);
	if (fts) {
		/* The text columns' values, one per line: what FTS5 indexes. */
		sdk_buf_str(sql, ", fulltext TEXT GENERATED ALWAYS AS (");
		bool first = true;
		for (size_t i = 0; i < cols->n; i++) {
			if (cols->c[i].type != MEM_T_TEXT)
				continue;
			sdk_buf_printf(sql, "%scoalesce(json_extract(data,'$.%s'),'')",
				       first ? "" : " || char(10) || ", cols->c[i].name);
			first = false;
		}
		sdk_buf_str(sql, ") VIRTUAL");
	}
	sdk_buf_str(sql, ");");
	for (size_t i = 0; i < cols->n; i++)
		if (cols->c[i].indexed)
			sdk_buf_printf(
				sql,
				"CREATE INDEX mr_%lld_c%zu ON mr_%lld (json_extract(data,'$.%s'));",
				t, i, t, cols->c[i].name);
	if (!fts)
		return;
	sdk_buf_printf(sql,
		       "CREATE VIRTUAL TABLE mf_%lld USING fts5(fulltext, content='mr_%lld',"
		       " content_rowid='id', tokenize='porter unicode61 remove_diacritics 2');"
		       /* Merge index segments less eagerly: faster batch inserts. */
		       "INSERT INTO mf_%lld (mf_%lld, rank) VALUES ('automerge', %d);"
		       "CREATE TRIGGER mr_%lld_ai AFTER INSERT ON mr_%lld BEGIN"
		       " INSERT INTO mf_%lld (rowid, fulltext) VALUES (new.id, new.fulltext); END;"
		       "CREATE TRIGGER mr_%lld_ad AFTER DELETE ON mr_%lld BEGIN"
		       " INSERT INTO mf_%lld (mf_%lld, rowid, fulltext)"
		       " VALUES ('delete', old.id, old.fulltext); END;"
		       "CREATE TRIGGER mr_%lld_au AFTER UPDATE OF data ON mr_%lld BEGIN"
		       " INSERT INTO mf_%lld (mf_%lld, rowid, fulltext)"
		       " VALUES ('delete', old.id, old.fulltext);"
		       " INSERT INTO mf_%lld (rowid, fulltext) VALUES (new.id, new.fulltext); END;",
		       t, t, t, t, FTS_AUTOMERGE, t, t, t, t, t, t, t, t, t, t, t, t);
}

/* One integer from a statement with one text parameter (NULL: none). */
static int count_of(mem_conn *c, const char *sql, const char *text, int64_t *n, sdk_err *e)
{
	sqlite3_stmt *st;
	int rc = mem_prep(c, sql, &st, e);
	if (rc < 0)
		return rc;
	if (text)
		sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW)
		*n = sqlite3_column_int64(st, 0);
	else
		rc = step == SQLITE_DONE ? 1 : mem_db_fail(c->db, e, "count");
	sqlite3_finalize(st);
	return rc;
}

int mem_lite_tables_owned(void *c, const char *user, int64_t *n, sdk_err *e)
{
	return count_of(c, "SELECT count(*) FROM mem_tables WHERE owner = ?", user, n, e);
}

int mem_lite_table_add(void *conn, const char *user, const char *name, const char *desc,
		       const char *columns, const mem_columns *cols, int64_t now_ms, int64_t *id,
		       sdk_err *e)
{
	mem_conn *c = conn;
	sqlite3_stmt *st;
	int rc = mem_prep(c, "INSERT INTO mem_tables (owner, name, description, columns,"
			     " created_ms) VALUES (?, ?, ?, ?, ?)", &st, e);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, desc, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, columns, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, now_ms);
	int step = sqlite3_step(st);
	sqlite3_finalize(st);
	if ((step & 0xff) == SQLITE_CONSTRAINT)
		return SDK_ECONFLICT; /* the caller says why */
	if (step != SQLITE_DONE)
		return mem_db_fail(c->db, e, "create table");
	*id = sqlite3_last_insert_rowid(c->db);
	sdk_buf ddl = { 0 };
	table_ddl(*id, cols, &ddl);
	if (ddl.oom)
		rc = mem_oom(e);
	else if (sqlite3_exec(c->db, ddl.p, NULL, NULL, NULL) != SQLITE_OK)
		rc = mem_db_fail(c->db, e, "create table");
	sdk_buf_free(&ddl);
	return rc;
}

int mem_lite_table_drop(void *conn, int64_t id, sdk_err *e)
{
	mem_conn *c = conn;
	sdk_buf sql = { 0 };
	long long t = (long long)id;
	sdk_buf_printf(&sql,
		       "DROP TABLE IF EXISTS mf_%lld; DROP TABLE IF EXISTS mr_%lld;"
		       " DELETE FROM mem_tables WHERE id = %lld;",
		       t, t, t);
	int rc = sql.oom ? mem_oom(e) : 0;
	if (rc == 0 && sqlite3_exec(c->db, sql.p, NULL, NULL, NULL) != SQLITE_OK)
		rc = mem_db_fail(c->db, e, "delete table");
	sdk_buf_free(&sql);
	return rc;
}

int mem_lite_table_first(void *c, const char *user, int64_t *id, sdk_err *e)
{
	int rc = count_of(c, "SELECT id FROM mem_tables WHERE owner = ? ORDER BY id LIMIT 1", user,
			  id, e);
	return rc < 0 ? rc : rc == 0; /* count_of: 1 when there was no row */
}

int mem_lite_usage(void *conn, const mem_tinfo *t, int64_t *table_rows, int64_t *user_rows,
		   int64_t *user_bytes, sdk_err *e)
{
	mem_conn *c = conn;
	sqlite3_stmt *st;
	int rc = mem_prep(c, "SELECT (SELECT n_rows FROM mem_tables WHERE id = ?1),"
			     " coalesce(sum(n_rows), 0), coalesce(sum(bytes), 0)"
			     " FROM mem_tables WHERE owner = ?2", &st, e);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, t->id);
	sqlite3_bind_text(st, 2, t->owner, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		*table_rows = sqlite3_column_int64(st, 0);
		*user_rows = sqlite3_column_int64(st, 1);
		*user_bytes = sqlite3_column_int64(st, 2);
	} else {
		rc = mem_db_fail(c->db, e, "count rows");
	}
	sqlite3_finalize(st);
	return rc;
}

int mem_lite_counts_add(void *conn, int64_t table_id, int64_t rows, int64_t bytes, sdk_err *e)
{
	mem_conn *c = conn;
	sqlite3_stmt *st;
	int rc = mem_prep(c, "UPDATE mem_tables SET n_rows = n_rows + ?, bytes = bytes + ?"
			     " WHERE id = ?", &st, e);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, rows);
	sqlite3_bind_int64(st, 2, bytes);
	sqlite3_bind_int64(st, 3, table_id);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = mem_db_fail(c->db, e, "update counts");
	sqlite3_finalize(st);
	return rc;
}
