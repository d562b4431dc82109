/* The PostgreSQL engine's tables (engine.h's steps): who may reach which
 * (resolve), a new table's relations, show, list, drop, and the counts
 * the quotas read. */
#include "serve/memory/pg_int.h"

#include "serve/memory/pg_sql.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TINFO_COLS "t.id, t.owner, t.name, t.columns"
#define TABLE_COLS \
	"t.id, t.owner, t.name, t.description, t.columns, t.created_ms, t.n_rows, t.bytes"

int mem_pg_resolve(void *conn, const char *user, const char *owner, const char *name,
		   bool write, mem_tinfo *t, sdk_err *e)
{
	mem_pgc *c = conn;
	const char *own;
	int rc = mem_resolve_start(user, owner, name, t, &own, e);
	if (rc < 0)
		return rc;
	bool other = rc;
	/* A write to one's own table: the owner's lock first, so the counts
	 * read next are the ones the write commits against. */
	if (write && !other && (rc = mem_pg_lock(c, own, e)) < 0)
		return rc;
	const char *p[] = { own, name, user };
	PGresult *r = mem_pg_exec(c, "find table",
				  other ? "SELECT " TINFO_COLS " FROM mem_tables t JOIN mem_shares s"
					  " ON s.table_id = t.id AND s.username = $3"
					  " WHERE t.owner = $1 AND t.name = $2"
					: "SELECT " TINFO_COLS " FROM mem_tables t"
					  " WHERE t.owner = $1 AND t.name = $2",
				  other ? 3 : 2, p, &rc, e);
	if (!r)
		return rc;
	rc = 1;
	if (store_pq->PQntuples(r) > 0) {
		mem_table_row row = { .id = store_pg_get_i64(r, 0, 0),
				      .owner = mem_pg_val(r, 0, 1),
				      .name = mem_pg_val(r, 0, 2),
				      .columns = mem_pg_val(r, 0, 3) };
		rc = mem_tinfo_fill(t, &row, e);
	}
	store_pq->PQclear(r);
	return mem_resolve_end(rc, t, name, own, other, write, e);
}

int mem_pg_usage(void *c, const mem_tinfo *t, int64_t *table_rows, int64_t *user_rows,
		 int64_t *user_bytes, sdk_err *e)
{
	char id[21];
	const char *p[] = { store_pg_i64(id, t->id), t->owner };
	int rc;
	PGresult *r = mem_pg_exec(c, "count rows",
				  "SELECT (SELECT n_rows FROM mem_tables WHERE id = $1::bigint),"
				  " coalesce(sum(n_rows), 0), coalesce(sum(bytes), 0)"
				  " FROM mem_tables WHERE owner = $2",
				  2, p, &rc, e);
	if (!r)
		return rc;
	*table_rows = store_pg_get_i64(r, 0, 0);
	*user_rows = store_pg_get_i64(r, 0, 1);
	*user_bytes = store_pg_get_i64(r, 0, 2);
	store_pq->PQclear(r);
	return 0;
}

int mem_pg_counts_add(void *c, int64_t table_id, int64_t rows, int64_t bytes, sdk_err *e)
{
	char a[21], b[21], i[21];
	const char *p[] = { store_pg_i64(a, rows), store_pg_i64(b, bytes),
			    store_pg_i64(i, table_id) };
	return mem_pg_run(c, "update counts",
			  "UPDATE mem_tables SET n_rows = n_rows + $1::bigint,"
			  " bytes = bytes + $2::bigint WHERE id = $3::bigint",
			  3, p, e);
}

/* Row `i` of a TABLE_COLS result as shown to `user`. */
static int table_json(mem_pgc *c, const PGresult *r, int i, const char *user, bool with_shares,
		      json_t **out, sdk_err *e)
{
	mem_table_row row = {
		.id = store_pg_get_i64(r, i, 0),
		.owner = mem_pg_val(r, i, 1),
		.name = mem_pg_val(r, i, 2),
		.description = mem_pg_val(r, i, 3),
		.columns = mem_pg_val(r, i, 4),
		.created_ms = store_pg_get_i64(r, i, 5),
		.rows = store_pg_get_i64(r, i, 6),
		.bytes = store_pg_get_i64(r, i, 7),
	};
	return mem_table_render(&mem_pg_engine, c, &row, user, with_shares, out, e);
}

int mem_pg_table_show(void *c, int64_t id, const char *user, json_t **out, sdk_err *e)
{
	char a[21];
	const char *p[] = { store_pg_i64(a, id) };
	int rc;
	PGresult *r = mem_pg_exec(c, "read table",
				  "SELECT " TABLE_COLS " FROM mem_tables t WHERE t.id = $1::bigint", 1,
				  p, &rc, e);
	if (!r)
		return rc;
	rc = store_pq->PQntuples(r) ? table_json(c, r, 0, user, true, out, e)
				    : sdk_fail(e, SDK_ENOTFOUND, "no such table");
	store_pq->PQclear(r);
	return rc;
}

/* The relations of table `id` (pg_int.h says why one per table): the
 * rows, an index per indexed column on the very key queries compare
 * (pg_sql.h), and with text columns a tsvector of their values joined by
 * newlines ('simple': no stemming, no stop words) under a GIN index. */
static void table_ddl(int64_t id, const mem_columns *cols, sdk_buf *sql)
{
	long long t = (long long)id;
	sdk_buf_printf(sql,
		       "CREATE TABLE mem_rows_%lld (id bigint GENERATED ALWAYS AS IDENTITY"
		       " PRIMARY KEY, data jsonb NOT NULL, size integer NOT NULL,"
		       " created_ms bigint NOT NULL, updated_ms bigint NOT NULL",
		       t);
	bool fts = mem_columns_has_text(cols);
	if (fts) {
		sdk_buf_str(sql, ", fts tsvector GENERATED ALWAYS AS (to_tsvector('simple', ");
		bool first = true;
		for (size_t i = 0; i < cols->n; i++) {
			if (cols->c[i].type != MEM_T_TEXT)
				continue;
			sdk_buf_printf(sql, "%scoalesce(data->>'%s', '')", first ? "" : " || E'\\n' || ",
				       cols->c[i].name);
			first = false;
		}
		sdk_buf_str(sql, ")) STORED");
	}
	sdk_buf_str(sql, ");");
	for (size_t i = 0; i < cols->n; i++) {
		if (!cols->c[i].indexed)
			continue;
		/* NULLS FIRST as the ascending order; read backwards for descending. */
		sdk_buf_printf(sql, "CREATE INDEX mem_rows_%lld_c%zu ON mem_rows_%lld (", t, i, t);
		mem_pg_key_sql(sql, "", cols->c[i].name, cols->c[i].type);
		sdk_buf_str(sql, " NULLS FIRST, id);");
	}
	/* fastupdate off: each write merges into the index itself, as FTS5's
	 * triggers do; with a pending list, fresh rows are read by every
	 * query until a vacuum, and the planner prices the index out. */
	if (fts)
		sdk_buf_printf(sql,
			       "CREATE INDEX mem_rows_%lld_fts ON mem_rows_%lld USING gin (fts)"
			       " WITH (fastupdate = off);",
			       t, t);
}

/* A count, with `owner`'s lock taken first: the steps a write reads its
 * checks from. */
static int locked_int(mem_pgc *c, const char *owner, const char *sql, int64_t *n, sdk_err *e)
{
	int rc = mem_pg_lock(c, owner, e);
	if (rc < 0)
		return rc;
	const char *p[] = { owner };
	PGresult *r = mem_pg_exec(c, "count tables", sql, 1, p, &rc, e);
	if (!r)
		return rc;
	rc = store_pq->PQntuples(r) > 0;
	if (rc)
		*n = store_pg_get_i64(r, 0, 0);
	store_pq->PQclear(r);
	return rc;
}

int mem_pg_tables_owned(void *c, const char *user, int64_t *n, sdk_err *e)
{
	int rc = locked_int(c, user, "SELECT count(*) FROM mem_tables WHERE owner = $1", n, e);
	return rc < 0 ? rc : 0;
}

int mem_pg_table_first(void *c, const char *user, int64_t *id, sdk_err *e)
{
	return locked_int(c, user, "SELECT id FROM mem_tables WHERE owner = $1 ORDER BY id LIMIT 1",
			  id, e);
}

int mem_pg_table_add(void *conn, const char *user, const char *name, const char *desc,
		     const char *columns, const mem_columns *cols, int64_t now_ms, int64_t *id,
		     sdk_err *e)
{
	mem_pgc *c = conn;
	char now[21];
	const char *p[] = { user, name, desc, columns, store_pg_i64(now, now_ms) };
	int rc;
	PGresult *r = mem_pg_exec(c, "create table",
				  "INSERT INTO mem_tables (owner, name, description, columns,"
				  " created_ms) VALUES ($1, $2, $3, $4, $5::bigint) RETURNING id",
				  5, p, &rc, e);
	if (!r)
		return rc;
	*id = store_pg_get_i64(r, 0, 0);
	store_pq->PQclear(r);
	sdk_buf ddl = { 0 };
	table_ddl(*id, cols, &ddl);
	rc = ddl.oom ? mem_oom(e) : mem_pg_script(c, "create table", ddl.p, e);
	sdk_buf_free(&ddl);
	return rc;
}

int mem_pg_table_list(void *conn, const char *user, json_t *tables, sdk_err *e)
{
	mem_pgc *c = conn;
	static const char *const queries[] = {
		"SELECT " TABLE_COLS " FROM mem_tables t WHERE t.owner = $1"
		" ORDER BY t.name COLLATE \"C\"",
		"SELECT " TABLE_COLS " FROM mem_shares s JOIN mem_tables t ON t.id = s.table_id"
		" WHERE s.username = $1 ORDER BY t.owner COLLATE \"C\", t.name COLLATE \"C\"",
	};
	const char *p[] = { user };
	int rc = 0;
	for (size_t q = 0; rc == 0 && q < 2; q++) {
		PGresult *r = mem_pg_exec(c, "list tables", queries[q], 1, p, &rc, e);
		for (int i = 0; r && rc == 0 && i < store_pq->PQntuples(r); i++) {
			json_t *t = NULL;
			if ((rc = table_json(c, r, i, user, false, &t, e)) == 0 &&
			    json_array_append_new(tables, t) < 0)
				rc = mem_oom(e);
		}
		store_pq->PQclear(r);
	}
	return rc;
}

int mem_pg_table_drop(void *c, int64_t id, sdk_err *e)
{
	char sql[64], a[21];
	snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS mem_rows_%lld", (long long)id);
	const char *p[] = { store_pg_i64(a, id) };
	int rc = mem_pg_run(c, "delete table", sql, 0, NULL, e);
	if (rc == 0)
		rc = mem_pg_run(c, "delete table", "DELETE FROM mem_tables WHERE id = $1::bigint", 1,
				p, e);
	return rc;
}
