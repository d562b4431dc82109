/* The table-valued function over an array (arraytab.h). */
#include "kernels/librarian/arraytab.h"

#include <string.h>

struct vtab {
	sqlite3_vtab base;
	const lib_arraytab *t;
};

struct cursor {
	sqlite3_vtab_cursor base;
	const lib_arraytab *t;
	const void *rows;
	size_t at, n;
};

static int connect(sqlite3 *db, void *aux, int argc, const char *const *argv, sqlite3_vtab **out,
		   char **err)
{
	(void)argc, (void)argv, (void)err;
	const lib_arraytab *t = aux;
	int rc = sqlite3_declare_vtab(db, t->decl);
	if (rc != SQLITE_OK)
		return rc;
	struct vtab *v = sqlite3_malloc(sizeof *v);
	if (!v)
		return SQLITE_NOMEM;
	memset(v, 0, sizeof *v);
	v->t = t;
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
	int rows_col = ((struct vtab *)v)->t->rows_col;
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
	c->t = ((struct vtab *)v)->t;
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
	c->rows = argc == 1 ? sqlite3_value_pointer(argv[0], c->t->ptr) : NULL;
	c->at = 0;
	c->n = c->rows ? c->t->count(c->rows) : 0;
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

static int column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int col)
{
	struct cursor *c = (struct cursor *)cur;
	c->t->column(ctx, c->rows, c->at, col);
	return SQLITE_OK;
}

static int rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *out)
{
	*out = (sqlite3_int64)((struct cursor *)cur)->at + 1;
	return SQLITE_OK;
}

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

int lib_arraytab_register(sqlite3 *db, const char *name, const lib_arraytab *t)
{
	return sqlite3_create_module(db, name, &module, (void *)t);
}
