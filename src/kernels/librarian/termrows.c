#include "kernels/librarian/termrows.h"

#include <string.h>

#define TERM_ROWS_PTR "lib_term_rows"

enum { C_TERM, C_ID, C_DF, C_ROWS };

struct cursor {
	sqlite3_vtab_cursor base;
	const lib_term_rows *rows;
	size_t at;
};

static int connect(sqlite3 *db, void *aux, int argc, const char *const *argv, sqlite3_vtab **out,
		   char **err)
{
	(void)aux, (void)argc, (void)argv, (void)err;
	int rc = sqlite3_declare_vtab(db, "CREATE TABLE x (term, id, df, rows HIDDEN)");
	if (rc != SQLITE_OK)
		return rc;
	sqlite3_vtab *v = sqlite3_malloc(sizeof *v);
	if (!v)
		return SQLITE_NOMEM;
	memset(v, 0, sizeof *v);
	*out = v;
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
	(void)v;
	for (int i = 0; i < info->nConstraint; i++) {
		const struct sqlite3_index_constraint *c = &info->aConstraint[i];
		if (c->iColumn != C_ROWS || c->op != SQLITE_INDEX_CONSTRAINT_EQ)
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
	(void)v;
	struct cursor *c = sqlite3_malloc(sizeof *c);
	if (!c)
		return SQLITE_NOMEM;
	memset(c, 0, sizeof *c);
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
	c->rows = argc == 1 ? sqlite3_value_pointer(argv[0], TERM_ROWS_PTR) : NULL;
	c->at = 0;
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
	return !c->rows || c->at >= c->rows->n;
}

static int column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int col)
{
	struct cursor *c = (struct cursor *)cur;
	const lib_term_row *r = &c->rows->v[c->at];
	switch (col) {
	case C_TERM: sqlite3_result_text(ctx, r->term, (int)r->len, SQLITE_STATIC); break;
	case C_ID: sqlite3_result_int64(ctx, r->id); break;
	case C_DF: sqlite3_result_int64(ctx, r->df); break;
	default: sqlite3_result_null(ctx);
	}
	return SQLITE_OK;
}

static int rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *out)
{
	*out = (sqlite3_int64)((struct cursor *)cur)->at + 1;
	return SQLITE_OK;
}

/* Eponymous only (no xCreate), as lib_rows. */
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

int lib_term_rows_register(sqlite3 *db)
{
	return sqlite3_create_module(db, "lib_term_rows", &module, NULL);
}

int lib_term_rows_bind(sqlite3_stmt *st, int i, const lib_term_rows *rows)
{
	return sqlite3_bind_pointer(st, i, (void *)rows, TERM_ROWS_PTR, NULL);
}
