#include "kernels/librarian/flushrows.h"

#include <string.h>

#define TERM_ROWS_PTR "lib_term_rows"
#define TAIL_ROWS_PTR "lib_tail_rows"

/* The two tables: their declarations, pointer types and hidden column. */
struct kind {
	const char *decl, *ptr;
	int rows_col;
};

enum { C_TERM, C_ID, C_DF, C_TERM_ROWS };
enum { T_TERM, T_OLD_LAST, T_LAST, T_N, T_POST, T_DOCS, T_POS, T_BOUND, T_ROWS };

static const struct kind term_kind = { "CREATE TABLE x (term, id, df, rows HIDDEN)",
				       TERM_ROWS_PTR, C_TERM_ROWS };
static const struct kind tail_kind = { "CREATE TABLE x (term, old_last, last, n, post, docs,"
				       " pos, bound, rows HIDDEN)",
				       TAIL_ROWS_PTR, T_ROWS };

struct vtab {
	sqlite3_vtab base;
	const struct kind *kind;
};

struct cursor {
	sqlite3_vtab_cursor base;
	const struct kind *kind;
	const void *rows; /* lib_term_rows or lib_tail_rows, by kind */
	size_t at, n;
};

static int connect(sqlite3 *db, void *aux, int argc, const char *const *argv, sqlite3_vtab **out,
		   char **err)
{
	(void)argc, (void)argv, (void)err;
	const struct kind *k = aux;
	int rc = sqlite3_declare_vtab(db, k->decl);
	if (rc != SQLITE_OK)
		return rc;
	struct vtab *v = sqlite3_malloc(sizeof *v);
	if (!v)
		return SQLITE_NOMEM;
	memset(v, 0, sizeof *v);
	v->kind = k;
	*out = &v->base;
	return SQLITE_OK;
}

static int disconnect(sqlite3_vtab *v)
{
	sqlite3_free(v);
	return SQLITE_OK;
}

/* The rows argument is required: without it there is nothing to read. */
static int best_index(sqlite3_vtab *v, sqlite3_index_info *info)
{
	int rows_col = ((struct vtab *)v)->kind->rows_col;
	for (int i = 0; i < info->nConstraint; i++) {
		const struct sqlite3_index_constraint *c = &info->aConstraint[i];
		if (c->iColumn != rows_col || c->op != SQLITE_INDEX_CONSTRAINT_EQ)
			continue;
		if (!c->usable)
			return SQLITE_CONSTRAINT;
		info->aConstraintUsage[i].argvIndex = 1;
		info->aConstraintUsage[i].omit = 1;
		info->estimatedCost = 1000;
		info->estimatedRows = 1000;
		return SQLITE_OK;
	}
	return SQLITE_CONSTRAINT;
}

static int open_cursor(sqlite3_vtab *v, sqlite3_vtab_cursor **out)
{
	struct cursor *c = sqlite3_malloc(sizeof *c);
	if (!c)
		return SQLITE_NOMEM;
	memset(c, 0, sizeof *c);
	c->kind = ((struct vtab *)v)->kind;
	*out = &c->base;
	return SQLITE_OK;
}

static int close_cursor(sqlite3_vtab_cursor *cur)
{
	sqlite3_free(cur);
	return SQLITE_OK;
}

static int filter(sqlite3_vtab_cursor *cur, int idx, const char *idx_str, int argc,
		  sqlite3_value **argv)
{
	(void)idx, (void)idx_str;
	struct cursor *c = (struct cursor *)cur;
	c->rows = argc == 1 ? sqlite3_value_pointer(argv[0], c->kind->ptr) : NULL;
	c->at = 0;
	c->n = !c->rows ? 0
	       : c->kind == &term_kind ? ((const lib_term_rows *)c->rows)->n
				       : ((const lib_tail_rows *)c->rows)->n;
	return SQLITE_OK;
}

static int next(sqlite3_vtab_cursor *cur)
{
	((struct cursor *)cur)->at++;
	return SQLITE_OK;
}

static int eof(sqlite3_vtab_cursor *cur)
{
	struct cursor *c = (struct cursor *)cur;
	return c->at >= c->n;
}

static void blob(sqlite3_context *ctx, const uint8_t *arena, size_t off, size_t len)
{
	/* never NULL: an empty blob is still a blob (the columns are NOT NULL) */
	sqlite3_result_blob(ctx, len ? (const void *)(arena + off) : (const void *)"", (int)len,
			    SQLITE_STATIC);
}

static int column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int col)
{
	struct cursor *c = (struct cursor *)cur;
	if (c->kind == &term_kind) {
		const lib_term_row *r = &((const lib_term_rows *)c->rows)->v[c->at];
		switch (col) {
		case C_TERM: sqlite3_result_text(ctx, r->term, (int)r->len, SQLITE_STATIC); break;
		case C_ID: sqlite3_result_int64(ctx, r->id); break;
		case C_DF: sqlite3_result_int64(ctx, r->df); break;
		default: sqlite3_result_null(ctx);
		}
		return SQLITE_OK;
	}
	const lib_tail_rows *t = c->rows;
	const lib_tail_row *r = &t->v[c->at];
	switch (col) {
	case T_TERM: sqlite3_result_int64(ctx, r->term); break;
	case T_OLD_LAST: sqlite3_result_int64(ctx, r->old_last); break;
	case T_LAST: sqlite3_result_int64(ctx, r->last); break;
	case T_N: sqlite3_result_int64(ctx, r->n); break;
	case T_POST: sqlite3_result_int64(ctx, r->post); break;
	case T_DOCS: blob(ctx, t->docs, r->docs, r->docs_len); break;
	case T_POS: blob(ctx, t->pos, r->pos, r->pos_len); break;
	case T_BOUND: blob(ctx, t->bound, r->bound, r->bound_len); break;
	default: sqlite3_result_null(ctx);
	}
	return SQLITE_OK;
}

static int rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *out)
{
	*out = (sqlite3_int64)((struct cursor *)cur)->at + 1;
	return SQLITE_OK;
}

/* Eponymous only (no xCreate), as lib_rows; one module, two tables by aux. */
static const sqlite3_module module = {
	.xConnect = connect,
	.xBestIndex = best_index,
	.xDisconnect = disconnect,
	.xOpen = open_cursor,
	.xClose = close_cursor,
	.xFilter = filter,
	.xNext = next,
	.xEof = eof,
	.xColumn = column,
	.xRowid = rowid,
};

int lib_flush_rows_register(sqlite3 *db)
{
	int rc = sqlite3_create_module(db, "lib_term_rows", &module, (void *)&term_kind);
	return rc == SQLITE_OK ? sqlite3_create_module(db, "lib_tail_rows", &module,
						       (void *)&tail_kind)
			       : rc;
}

int lib_term_rows_bind(sqlite3_stmt *st, int i, const lib_term_rows *rows)
{
	return sqlite3_bind_pointer(st, i, (void *)rows, TERM_ROWS_PTR, NULL);
}

int lib_tail_rows_bind(sqlite3_stmt *st, int i, const lib_tail_rows *rows)
{
	return sqlite3_bind_pointer(st, i, (void *)rows, TAIL_ROWS_PTR, NULL);
}
