/* A flush's rows as table-valued functions, for the block index's few
 * statements a flush (index.c) instead of a few a word:
 *
 *   lib_term_rows(?)  each word's ix_terms row (term, id, df):
 *     INSERT INTO ix_terms ... SELECT ... FROM lib_term_rows(?1) WHERE 1
 *     ON CONFLICT (term) DO UPDATE SET df = excluded.df, gen = ...
 *   lib_tail_rows(?)  each word's last blocks of the flush (term, last,
 *     n, post, docs, pos, bound): its tail (post 0, an ix_tails row
 *     written whole) and the full blocks before it that the flush made
 *     (an ix_posts row `post` and an ix_blocks row each)
 *
 * Why: a bulk request's flush writes every word it touched (4,500 words
 * for 600 bench documents), and a statement a word spent as much running
 * the statement as writing the row. ?1 is bound by the _bind functions
 * (sqlite3_bind_pointer, as rows.h): the rows are read in place. */
#ifndef GRACE_LIBRARIAN_FLUSHROWS_H
#define GRACE_LIBRARIAN_FLUSHROWS_H

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

/* A deferred block's rows: a term's tail (post 0) or a new block; its
 * blobs are at offsets of the lib_tail_rows' arenas (which may move while
 * rows are added). */
typedef struct lib_tail_row {
	int64_t term, last, n, post;
	size_t docs, docs_len, pos, pos_len, bound, bound_len;
} lib_tail_row;

typedef struct lib_tail_rows {
	const lib_tail_row *v;
	size_t n;
	const uint8_t *docs, *pos, *bound; /* the arenas; borrowed */
} lib_tail_rows;

/* The table-valued functions lib_term_rows(rows) (columns term, id, df)
 * and lib_tail_rows(rows) (term, last, n, post, docs, pos, bound) on this
 * connection. */
int lib_flush_rows_register(sqlite3 *db);
/* Bind `rows` (borrowed until the statement is reset) to parameter i. */
int lib_term_rows_bind(sqlite3_stmt *st, int i, const lib_term_rows *rows);
int lib_tail_rows_bind(sqlite3_stmt *st, int i, const lib_tail_rows *rows);

#endif
