/* A flush's words as rows of a table-valued function, for the block
 * index's one write of its words a flush (index.c):
 *
 *   INSERT INTO ix_terms (term, id, df, gen)
 *     SELECT term, id, df, ?2 FROM lib_term_rows(?1) WHERE 1
 *     ON CONFLICT (term) DO UPDATE SET df = excluded.df, gen = excluded.gen
 *
 * Why: a bulk request's flush writes every word it touched (4,500 words
 * for 600 bench documents), and a statement a word spent as much running
 * the statement as writing the row. ?1 is bound by lib_term_rows_bind
 * (sqlite3_bind_pointer, as rows.h): the words are read in place. */
#ifndef GRACE_LIBRARIAN_TERMROWS_H
#define GRACE_LIBRARIAN_TERMROWS_H

#include "kernels/layer.h"

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

/* One word's row; `term` is borrowed and must outlive the statement's run. */
typedef struct lib_term_row {
	const char *term;
	uint32_t len;
	int64_t id, df;
} lib_term_row;

typedef struct lib_term_rows {
	const lib_term_row *v;
	size_t n;
} lib_term_rows;

/* The table-valued function lib_term_rows(rows) on this connection:
 * columns term, id, df. */
int lib_term_rows_register(sqlite3 *db);
/* Binds `rows` (borrowed until the statement is reset) to parameter i. */
int lib_term_rows_bind(sqlite3_stmt *st, int i, const lib_term_rows *rows);

#endif
