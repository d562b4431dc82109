#include "kernels/librarian/rows.h"

#include "kernels/librarian/store.h"

#include <stdlib.h>
#include <string.h>

#define ROWS_PTR "lib_rows"

enum { C_ID, C_TITLE, C_BODY, C_TAGS, C_SOURCE, C_CREATED, C_OWNER, C_SIZE, C_HASH, C_ROWS };

struct cursor {
	sqlite3_vtab_cursor base;
	const lib_rows *rows;
	size_t at;
};

static int rows_connect(sqlite3 *db, void *aux, int argc, const char *const *argv,
			sqlite3_vtab **out, char **err)
{
	(void)aux, (void)argc, (void)argv, (void)err;
	int rc = sqlite3_declare_vtab(db, "CREATE TABLE x (id, title, body, tags, source,"
					  " created_at, owner, size, hash, rows HIDDEN)");
	if (rc != SQLITE_OK)
		return rc;
	sqlite3_vtab *v = sqlite3_malloc(sizeof *v);
	if (!v)
		return SQLITE_NOMEM;
	memset(v, 0, sizeof *v);
	*out = v;
	return SQLITE_OK;
}

static int rows_disconnect(sqlite3_vtab *v)
{
	sqlite3_free(v);
	return SQLITE_OK;
}

/* The rows argument is required: without it there is nothing to read. */
static int rows_best_index(sqlite3_vtab *v, sqlite3_index_info *info)
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

static int rows_open(sqlite3_vtab *v, sqlite3_vtab_cursor **out)
{
	(void)v;
	struct cursor *c = sqlite3_malloc(sizeof *c);
	if (!c)
		return SQLITE_NOMEM;
	memset(c, 0, sizeof *c);
	*out = &c->base;
	return SQLITE_OK;
}

static int rows_close(sqlite3_vtab_cursor *cur)
{
	sqlite3_free(cur);
	return SQLITE_OK;
}

static int rows_filter(sqlite3_vtab_cursor *cur, int idx, const char *idx_str, int argc,
		       sqlite3_value **argv)
{
	(void)idx, (void)idx_str;
	struct cursor *c = (struct cursor *)cur;
	c->rows = argc == 1 ? sqlite3_value_pointer(argv[0], ROWS_PTR) : NULL;
	c->at = 0;
	return SQLITE_OK;
}

static int rows_next(sqlite3_vtab_cursor *cur)
{
	((struct cursor *)cur)->at++;
	return SQLITE_OK;
}

static int rows_eof(sqlite3_vtab_cursor *cur)
{
	struct cursor *c = (struct cursor *)cur;
	return !c->rows || c->at >= c->rows->n;
}

static void text_or_null(sqlite3_context *ctx, const char *s)
{
	if (s)
		sqlite3_result_text(ctx, s, -1, SQLITE_STATIC);
	else
		sqlite3_result_null(ctx);
}

static int rows_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int col)
{
	struct cursor *c = (struct cursor *)cur;
	const lib_row *r = &c->rows->v[c->at];
	switch (col) {
	case C_ID: sqlite3_result_int64(ctx, r->id); break;
	case C_TITLE: text_or_null(ctx, r->title); break;
	case C_BODY: text_or_null(ctx, r->body); break;
	case C_TAGS: text_or_null(ctx, r->tags); break;
	case C_SOURCE: text_or_null(ctx, r->source); break;
	case C_CREATED: sqlite3_result_int64(ctx, r->created_at); break;
	case C_OWNER: text_or_null(ctx, r->owner); break;
	case C_SIZE: sqlite3_result_int64(ctx, r->size); break;
	case C_HASH:
		if (r->hash)
			sqlite3_result_blob(ctx, r->hash, LIB_HASH_BYTES, SQLITE_STATIC);
		else
			sqlite3_result_null(ctx);
		break;
	default: sqlite3_result_null(ctx);
	}
	return SQLITE_OK;
}

static int rows_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *rowid)
{
	*rowid = (sqlite3_int64)((struct cursor *)cur)->at + 1;
	return SQLITE_OK;
}

/* Eponymous only (no xCreate): it exists as lib_rows(...) and cannot be
 * made a table of the schema. */
static const sqlite3_module rows_module = {
	.xConnect = rows_connect,
	.xBestIndex = rows_best_index,
	.xDisconnect = rows_disconnect,
	.xOpen = rows_open,
	.xClose = rows_close,
	.xFilter = rows_filter,
	.xNext = rows_next,
	.xEof = rows_eof,
	.xColumn = rows_column,
	.xRowid = rows_rowid,
};

int lib_rows_register(sqlite3 *db)
{
	return sqlite3_create_module(db, "lib_rows", &rows_module, NULL);
}

int lib_rows_bind(sqlite3_stmt *st, int i, const lib_rows *rows)
{
	return sqlite3_bind_pointer(st, i, (void *)rows, ROWS_PTR, NULL);
}
