/* Documents as rows of a table-valued function, for the bulk loader's
 * one INSERT ... SELECT a request (bulk.c).
 *
 * Why: every INSERT into documents fires the FTS5 trigger, and SQLite
 * opens a statement savepoint for a statement with a trigger; FTS5 writes
 * its pending postings out as a new segment at every savepoint. One
 * statement per document made one tiny segment per document (half the
 * CPU of a bulk load, docs/librarian.md). One statement for a request's
 * documents makes one.
 *
 *   INSERT INTO documents (...) SELECT ... FROM lib_rows(?1)
 *
 * with ?1 a lib_rows bound by lib_rows_bind (sqlite3_bind_pointer, as
 * SQLite's carray): the texts are read in place, not copied. The module
 * is registered per connection by lib_rows_register. */
#ifndef GRACE_LIBRARIAN_ROWS_H
#define GRACE_LIBRARIAN_ROWS_H

#include "kernels/layer.h"

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

/* One document row; every pointer is borrowed and must outlive the
 * statement's run. hash: LIB_HASH_BYTES bytes or NULL. */
typedef struct lib_row {
	int64_t id, created_at, size;
	const char *title, *body, *tags, *source, *owner;
	const uint8_t *hash;
} lib_row;

typedef struct lib_rows {
	const lib_row *v;
	size_t n;
} lib_rows;

/* The table-valued function lib_rows(rows) on this connection:
 * columns id, title, body, tags, source, created_at, owner, size, hash. */
int lib_rows_register(sqlite3 *db);
/* Binds `rows` (borrowed until the statement is reset) to parameter i. */
int lib_rows_bind(sqlite3_stmt *st, int i, const lib_rows *rows);

#endif
