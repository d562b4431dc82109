/* The PostgreSQL engine's pass of a page of rows (engine.h's page_pass):
 * where, order, keyset cursors and the full-text q in PostgreSQL's SQL;
 * the page itself is calls.c's and engine.c's, as with SQLite. */
#include "serve/memory/pg_int.h"

#include "serve/memory/pg_fts.h"
#include "serve/memory/pg_sql.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One keyset pass: appends up to limit+1-got rows to `out`. */
int mem_pg_page_pass(void *c, mem_page *p, int pass, sdk_buf *out, sdk_err *e)
{
	const mem_column *col = p->order->kind == MEM_ORDER_COLUMN
					? mem_columns_find(&p->t->cols, p->order->col)
					: NULL;
	enum mem_type type = col ? col->type : MEM_T_ANY;
	sdk_buf sql = { 0 }, tsq = { 0 };
	mem_pg_params *b = calloc(1, sizeof *b);
	if (!b)
		return mem_oom(e);
	int rc = 0;
	sdk_err err;
	if (p->q && mem_fts_tsquery(p->q, &tsq, &err) < 0)
		rc = mem_bad_fts(err.msg, e);
	sdk_buf_str(&sql, "SELECT r.id, r.data::text, r.created_ms, r.updated_ms");
	mem_pg_key_select(p->order, type, &sql);
	sdk_buf_printf(&sql, " FROM mem_rows_%lld r WHERE ", (long long)p->t->id);
	if (p->q) {
		/* $1, which MEM_PG_RANK_SQL reads too. */
		sdk_buf_str(&sql, "r.fts @@ to_tsquery('simple', ");
		mem_pg_param(&sql, b, tsq.p ? tsq.p : "", tsq.len);
		sdk_buf_str(&sql, ")");
	} else {
		sdk_buf_str(&sql, "true");
	}
	mem_pg_filter_sql(p->filter, &sql, b);
	mem_pg_keyset_sql(p->order, type, p->cursor, pass, &sql, b);
	mem_pg_order_sql(p->order, type, &sql);
	char lim[21];
	store_pg_i64(lim, (int64_t)(p->limit + 1 - p->got));
	sdk_buf_str(&sql, " LIMIT ");
	mem_pg_param(&sql, b, lim, strlen(lim));
	sdk_buf_str(&sql, "::bigint");
	PGresult *r = NULL;
	if (rc == 0 && (sql.oom || b->oom || tsq.oom))
		rc = mem_oom(e);
	else if (rc == 0)
		r = mem_pg_exec(c, "query rows", sql.p, b->n, (const char *const *)b->v, &rc, e);
	int keys = p->order->kind == MEM_ORDER_COLUMN && type == MEM_T_ANY ? 3 : 1;
	for (int i = 0; r && rc == 0 && i < store_pq->PQntuples(r); i++) {
		const char *v[3] = { NULL, NULL, NULL };
		for (int k = 0; k < keys; k++)
			v[k] = mem_pg_val(r, i, 4 + k);
		json_t *key = mem_pg_key_json(p->order, type, v);
		if (!key) {
			rc = mem_oom(e);
			break;
		}
		rc = mem_page_row(p, out, store_pg_get_i64(r, i, 0), mem_pg_val(r, i, 1),
				  mem_pg_len(r, i, 1), store_pg_get_i64(r, i, 2),
				  store_pg_get_i64(r, i, 3), key, e);
		if (rc > 0) {
			rc = 0;
			break;
		}
	}
	store_pq->PQclear(r);
	mem_pg_params_free(b);
	free(b);
	sdk_buf_free(&sql);
	sdk_buf_free(&tsq);
	return rc;
}
