#include "kernels/librarian/flushrows.h"

#include "kernels/librarian/arraytab.h"

#define TERM_ROWS_PTR "lib_term_rows"
#define TAIL_ROWS_PTR "lib_tail_rows"

enum { C_TERM, C_ID, C_DF, C_TERM_ROWS };
enum { T_TERM, T_LAST, T_N, T_POST, T_DOCS, T_POS, T_BOUND, T_ROWS };

static void term_column(sqlite3_context *ctx, const void *rows, size_t at, int col)
{
	const lib_term_row *r = &((const lib_term_rows *)rows)->v[at];
	switch (col) {
	case C_TERM: sqlite3_result_text(ctx, r->term, (int)r->len, SQLITE_STATIC); break;
	case C_ID: sqlite3_result_int64(ctx, r->id); break;
	case C_DF: sqlite3_result_int64(ctx, r->df); break;
	default: sqlite3_result_null(ctx);
	}
}

static void blob(sqlite3_context *ctx, const uint8_t *arena, size_t off, size_t len)
{
	/* never NULL: an empty blob is still a blob (the columns are NOT NULL) */
	sqlite3_result_blob(ctx, len ? (const void *)(arena + off) : (const void *)"", (int)len,
			    SQLITE_STATIC);
}

static void tail_column(sqlite3_context *ctx, const void *rows, size_t at, int col)
{
	const lib_tail_rows *t = rows;
	const lib_tail_row *r = &t->v[at];
	switch (col) {
	case T_TERM: sqlite3_result_int64(ctx, r->term); break;
	case T_LAST: sqlite3_result_int64(ctx, r->last); break;
	case T_N: sqlite3_result_int64(ctx, r->n); break;
	case T_POST: sqlite3_result_int64(ctx, r->post); break;
	case T_DOCS: blob(ctx, t->docs, r->docs, r->docs_len); break;
	case T_POS: blob(ctx, t->pos, r->pos, r->pos_len); break;
	case T_BOUND: blob(ctx, t->bound, r->bound, r->bound_len); break;
	default: sqlite3_result_null(ctx);
	}
}

static size_t term_count(const void *rows) { return ((const lib_term_rows *)rows)->n; }
static size_t tail_count(const void *rows) { return ((const lib_tail_rows *)rows)->n; }

static const lib_arraytab term_table = {
	.decl = "CREATE TABLE x (term, id, df, rows HIDDEN)",
	.ptr = TERM_ROWS_PTR,
	.rows_col = C_TERM_ROWS,
	.count = term_count,
	.column = term_column,
};

static const lib_arraytab tail_table = {
	.decl = "CREATE TABLE x (term, last, n, post, docs, pos, bound, rows HIDDEN)",
	.ptr = TAIL_ROWS_PTR,
	.rows_col = T_ROWS,
	.count = tail_count,
	.column = tail_column,
};

int lib_flush_rows_register(sqlite3 *db)
{
	int rc = lib_arraytab_register(db, "lib_term_rows", &term_table);
	return rc == SQLITE_OK ? lib_arraytab_register(db, "lib_tail_rows", &tail_table) : rc;
}

int lib_term_rows_bind(sqlite3_stmt *st, int i, const lib_term_rows *rows)
{
	return sqlite3_bind_pointer(st, i, (void *)rows, TERM_ROWS_PTR, NULL);
}

int lib_tail_rows_bind(sqlite3_stmt *st, int i, const lib_tail_rows *rows)
{
	return sqlite3_bind_pointer(st, i, (void *)rows, TAIL_ROWS_PTR, NULL);
}
