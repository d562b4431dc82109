/* The SQLite engine's rows (engine.h's steps): insert, one row's read,
 * write and removal, and a keyset pass of a page. */
#include "serve/memory/store_int.h"

#include "serve/memory/filter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int bind_json(sqlite3_stmt *st, int i, json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_STRING:
		return sqlite3_bind_text(st, i, json_string_value(v), (int)json_string_length(v),
					 SQLITE_STATIC);
	case JSON_INTEGER: return sqlite3_bind_int64(st, i, json_integer_value(v));
	case JSON_REAL: return sqlite3_bind_double(st, i, json_real_value(v));
	case JSON_TRUE: return sqlite3_bind_int(st, i, 1);
	case JSON_FALSE: return sqlite3_bind_int(st, i, 0);
	default: return sqlite3_bind_null(st, i);
	}
}

/* A column's SQL value as JSON (a new reference), NULL on failure. */
static json_t *value_json(sqlite3_stmt *st, int col)
{
	switch (sqlite3_column_type(st, col)) {
	case SQLITE_INTEGER: return json_integer(sqlite3_column_int64(st, col));
	case SQLITE_FLOAT: return json_real(sqlite3_column_double(st, col));
	case SQLITE_TEXT:
		return json_stringn((const char *)sqlite3_column_text(st, col),
				    (size_t)sqlite3_column_bytes(st, col));
	case SQLITE_NULL: return json_null();
	default: return NULL;
	}
}

int mem_lite_rows_add(void *conn, const mem_tinfo *t, char *const *text, const size_t *len,
		      size_t n, int64_t now_ms, json_t *ids, sdk_err *e)
{
	mem_conn *c = conn;
	char sql[128];
	snprintf(sql, sizeof sql, "INSERT INTO mr_%lld (data, created_ms, updated_ms) VALUES (?, ?, ?)",
		 (long long)t->id);
	sqlite3_stmt *st;
	int rc = mem_prep(c, sql, &st, e);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		sqlite3_bind_text(st, 1, text[i], (int)len[i], SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, now_ms);
		sqlite3_bind_int64(st, 3, now_ms);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = mem_db_fail(c->db, e, "insert row");
		else if (json_array_append_new(ids, json_integer(sqlite3_last_insert_rowid(c->db))) < 0)
			rc = mem_oom(e);
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	return rc;
}

int mem_lite_page_pass(void *conn, mem_page *p, int pass, sdk_buf *out, sdk_err *e)
{
	mem_conn *c = conn;
	sdk_buf sql = { 0 };
	mem_binds *b = malloc(sizeof *b);
	long long id = (long long)p->t->id;
	char rank[48], rowid[48];
	snprintf(rank, sizeof rank, "mf_%lld.rank", id);
	snprintf(rowid, sizeof rowid, "mf_%lld.rowid", id);
	mem_sql_names names = { p->q ? rowid : "r.id", p->q ? rank : NULL };
	if (!b)
		return mem_oom(e);
	b->n = 0;
	sdk_buf_str(&sql, "SELECT r.id, r.data, r.created_ms, r.updated_ms, ");
	mem_order_key_sql(p->order, &names, &sql);
	if (p->q)
		sdk_buf_printf(&sql, " FROM mf_%lld JOIN mr_%lld r ON r.id = mf_%lld.rowid"
				     " WHERE mf_%lld MATCH ?",
			       id, id, id, id);
	else
		sdk_buf_printf(&sql, " FROM mr_%lld r WHERE 1", id);
	int rc;
	sqlite3_stmt *st = NULL;
	if (mem_filter_sql(p->filter, &sql, b) < 0 ||
	    mem_keyset_sql(p->order, p->cursor, pass, &names, &sql, b) < 0) {
		rc = sdk_fail(e, SDK_EINVAL, "the filter is too large");
		goto out;
	}
	mem_order_sql(p->order, &names, &sql);
	sdk_buf_str(&sql, " LIMIT ?");
	if (sql.oom) {
		rc = mem_oom(e);
		goto out;
	}
	if ((rc = mem_prep(c, sql.p, &st, e)) < 0)
		goto out;
	int i = 1;
	if (p->q)
		sqlite3_bind_text(st, i++, p->q, -1, SQLITE_STATIC);
	for (size_t k = 0; k < b->n; k++)
		bind_json(st, i++, b->v[k]);
	sqlite3_bind_int64(st, i, (sqlite3_int64)(p->limit + 1 - p->got));
	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *key = p->order->kind == MEM_ORDER_ID ? NULL : value_json(st, 4);
		if (!key && p->order->kind != MEM_ORDER_ID) {
			rc = mem_oom(e);
			goto out;
		}
		rc = mem_page_row(p, out, sqlite3_column_int64(st, 0),
				  (const char *)sqlite3_column_text(st, 1),
				  (size_t)sqlite3_column_bytes(st, 1), sqlite3_column_int64(st, 2),
				  sqlite3_column_int64(st, 3), key, e);
		if (rc < 0)
			goto out;
		if (rc > 0)
			break;
	}
	if (step != SQLITE_ROW && step != SQLITE_DONE) {
		if (p->q && (step & 0xff) == SQLITE_ERROR)
			rc = mem_bad_fts(sqlite3_errmsg(c->db), e);
		else
			rc = mem_db_fail(c->db, e, "query rows");
		goto out;
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	sdk_buf_free(&sql);
	free(b);
	return rc;
}

int mem_lite_row_read(void *conn, const mem_tinfo *t, int64_t id, mem_row *r, sdk_err *e)
{
	mem_conn *c = conn;
	char sql[160];
	snprintf(sql, sizeof sql, "SELECT r.id, r.data, r.created_ms, r.updated_ms FROM mr_%lld r"
				  " WHERE r.id = ?", (long long)t->id);
	sqlite3_stmt *st;
	int rc = mem_prep(c, sql, &st, e);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		const unsigned char *data = sqlite3_column_text(st, 1);
		size_t len = (size_t)sqlite3_column_bytes(st, 1);
		*r = (mem_row){ .id = sqlite3_column_int64(st, 0),
				.created_ms = sqlite3_column_int64(st, 2),
				.updated_ms = sqlite3_column_int64(st, 3),
				.size = (int64_t)len,
				.data = data ? malloc(len + 1) : NULL,
				.len = len };
		if (r->data && data)
			memcpy(r->data, data, len + 1);
		else
			rc = mem_oom(e);
	} else if (step == SQLITE_DONE) {
		rc = mem_no_row(id, t->name, e);
	} else {
		rc = mem_db_fail(c->db, e, "read row");
	}
	sqlite3_finalize(st);
	return rc;
}

int mem_lite_row_write(void *conn, const mem_tinfo *t, int64_t id, const char *text, size_t len,
		       int64_t now_ms, sdk_err *e)
{
	mem_conn *c = conn;
	char sql[128];
	snprintf(sql, sizeof sql, "UPDATE mr_%lld SET data = ?, updated_ms = ? WHERE id = ?",
		 (long long)t->id);
	sqlite3_stmt *st;
	int rc = mem_prep(c, sql, &st, e);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, text, (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now_ms);
	sqlite3_bind_int64(st, 3, id);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = mem_db_fail(c->db, e, "update row");
	sqlite3_finalize(st);
	return rc;
}

int mem_lite_row_remove(void *conn, const mem_tinfo *t, int64_t id, sdk_err *e)
{
	mem_conn *c = conn;
	char sql[96];
	snprintf(sql, sizeof sql, "DELETE FROM mr_%lld WHERE id = ?", (long long)t->id);
	sqlite3_stmt *st;
	int rc = mem_prep(c, sql, &st, e);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = mem_db_fail(c->db, e, "delete row");
	sqlite3_finalize(st);
	return rc;
}
