#include "kernels/librarian/rows.h"

#include "kernels/librarian/arraytab.h"
#include "kernels/librarian/store.h"


#define ROWS_PTR "lib_rows"

enum { C_ID, C_TITLE, C_BODY, C_TAGS, C_SOURCE, C_CREATED, C_OWNER, C_SIZE, C_HASH, C_ROWS };

static void text_or_null(sqlite3_context *ctx, const char *s)
{
	if (s)
		sqlite3_result_text(ctx, s, -1, SQLITE_STATIC);
	else
		sqlite3_result_null(ctx);
}

static void rows_column(sqlite3_context *ctx, const void *rows, size_t at, int col)
{
	const lib_row *r = &((const lib_rows *)rows)->v[at];
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
}

static size_t rows_count(const void *rows) { return ((const lib_rows *)rows)->n; }

static const lib_arraytab rows_table = {
	.decl = "CREATE TABLE x (id, title, body, tags, source, created_at, owner, size, hash,"
		" rows HIDDEN)",
	.ptr = ROWS_PTR,
	.rows_col = C_ROWS,
	.count = rows_count,
	.column = rows_column,
};

int lib_rows_register(sqlite3 *db)
{
	return lib_arraytab_register(db, "lib_rows", &rows_table);
}

int lib_rows_bind(sqlite3_stmt *st, int i, const lib_rows *rows)
{
	return sqlite3_bind_pointer(st, i, (void *)rows, ROWS_PTR, NULL);
}
