/* A read-only table-valued function over an array in memory, handed to a
 * statement through a bound pointer (sqlite3_bind_pointer): eponymous
 * only (no xCreate), so it exists as NAME(?) and cannot be made a table
 * of the schema, and its one argument (its hidden column) is required.
 * lib_rows (rows.h) and the flush's term and tail rows (flushrows.h) are
 * its tables; each says only its columns. */
#ifndef GRACE_LIBRARIAN_ARRAYTAB_H
#define GRACE_LIBRARIAN_ARRAYTAB_H

#include "kernels/layer.h"

#include <sqlite3.h>
#include <stddef.h>

typedef struct lib_arraytab {
	const char *decl; /* "CREATE TABLE x (..., rows HIDDEN)" */
	const char *ptr;  /* the pointer type its argument is bound as */
	int rows_col;     /* the hidden column's index */
	size_t (*count)(const void *rows);
	/* Row `at`'s column `col` as the result (SQLITE_STATIC: the array
	 * outlives the statement's step). */
	void (*column)(sqlite3_context *ctx, const void *rows, size_t at, int col);
} lib_arraytab;

/* Makes `name` available on db; t is borrowed for db's life. */
int lib_arraytab_register(sqlite3 *db, const char *name, const lib_arraytab *t);

#endif
