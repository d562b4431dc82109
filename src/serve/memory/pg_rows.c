/* The PostgreSQL engine's rows (engine.h's steps): insert, one row's
 * read, write and removal. Pages of rows: pg_query.c. */
#include "serve/memory/pg_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_id(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* The ids of the inserted rows in the batch's order: the insert takes
 * them from the identity in the batch's order, ascending. */
static int ids_json(const PGresult *r, json_t *ids, sdk_err *e)
{
	int n = store_pq->PQntuples(r);
	int64_t *v = malloc(((size_t)n + 1) * sizeof *v);
	if (!v)
		return mem_oom(e);
	for (int i = 0; i < n; i++)
		v[i] = store_pg_get_i64(r, i, 0);
	qsort(v, (size_t)n, sizeof *v, cmp_id);
	int rc = 0;
	for (int i = 0; rc == 0 && i < n; i++)
		if (json_array_append_new(ids, json_integer(v[i])) < 0)
			rc = mem_oom(e);
	free(v);
	return rc;
}

int mem_pg_rows_add(void *c, const mem_tinfo *t, char *const *text, const size_t *len, size_t n,
		    int64_t now_ms, json_t *ids, sdk_err *e)
{
	/* One statement for the batch: the rows as one JSON array, their
	 * sizes as an integer[]. */
	sdk_buf arr = { 0 }, sizes = { 0 }, sql = { 0 };
	sdk_buf_str(&arr, "[");
	sdk_buf_str(&sizes, "{");
	for (size_t i = 0; i < n; i++) {
		sdk_buf_str(&arr, i ? "," : "");
		sdk_buf_add(&arr, text[i], len[i]);
		sdk_buf_printf(&sizes, "%s%zu", i ? "," : "", len[i]);
	}
	sdk_buf_str(&arr, "]");
	sdk_buf_str(&sizes, "}");
	sdk_buf_printf(&sql,
		       "INSERT INTO mem_rows_%lld (data, size, created_ms, updated_ms)"
		       " SELECT d.value, z.size, $3::bigint, $3::bigint"
		       " FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS d(value, o)"
		       " JOIN unnest($2::integer[]) WITH ORDINALITY AS z(size, o) USING (o)"
		       " ORDER BY o RETURNING id",
		       (long long)t->id);
	char now[21];
	const char *p[] = { arr.p, sizes.p, store_pg_i64(now, now_ms) };
	int rc = 0;
	PGresult *r = NULL;
	if (arr.oom || sizes.oom || sql.oom)
		rc = mem_oom(e);
	else if ((r = mem_pg_exec(c, "insert rows", sql.p, 3, p, &rc, e)))
		rc = ids_json(r, ids, e);
	store_pq->PQclear(r);
	sdk_buf_free(&arr);
	sdk_buf_free(&sizes);
	sdk_buf_free(&sql);
	return rc;
}

int mem_pg_row_read(void *c, const mem_tinfo *t, int64_t id, mem_row *row, sdk_err *e)
{
	char sql[160], a[21];
	snprintf(sql, sizeof sql,
		 "SELECT id, data::text, size, created_ms, updated_ms FROM mem_rows_%lld"
		 " WHERE id = $1::bigint",
		 (long long)t->id);
	const char *p[] = { store_pg_i64(a, id) };
	int rc;
	PGresult *r = mem_pg_exec(c, "read row", sql, 1, p, &rc, e);
	if (!r)
		return rc;
	if (store_pq->PQntuples(r) == 0) {
		rc = mem_no_row(id, t->name, e);
	} else {
		size_t len = mem_pg_len(r, 0, 1);
		*row = (mem_row){ .id = store_pg_get_i64(r, 0, 0),
				  .size = store_pg_get_i64(r, 0, 2),
				  .created_ms = store_pg_get_i64(r, 0, 3),
				  .updated_ms = store_pg_get_i64(r, 0, 4),
				  .data = malloc(len + 1),
				  .len = len };
		if (row->data)
			memcpy(row->data, mem_pg_val(r, 0, 1), len + 1);
		else
			rc = mem_oom(e);
	}
	store_pq->PQclear(r);
	return rc;
}

int mem_pg_row_write(void *c, const mem_tinfo *t, int64_t id, const char *text, size_t len,
		     int64_t now_ms, sdk_err *e)
{
	char sql[160], a[21], b[21], d[21];
	snprintf(sql, sizeof sql,
		 "UPDATE mem_rows_%lld SET data = $1::jsonb, size = $2::integer,"
		 " updated_ms = $3::bigint WHERE id = $4::bigint",
		 (long long)t->id);
	const char *p[] = { text, store_pg_i64(a, (int64_t)len), store_pg_i64(b, now_ms),
			    store_pg_i64(d, id) };
	return mem_pg_run(c, "update row", sql, 4, p, e);
}

int mem_pg_row_remove(void *c, const mem_tinfo *t, int64_t id, sdk_err *e)
{
	char sql[96], a[21];
	snprintf(sql, sizeof sql, "DELETE FROM mem_rows_%lld WHERE id = $1::bigint",
		 (long long)t->id);
	const char *p[] = { store_pg_i64(a, id) };
	return mem_pg_run(c, "delete row", sql, 1, p, e);
}
