/* The PostgreSQL engine's SQL text for a query's filter, order, sort key
 * and keyset condition: the structures filter.c parsed (mem_filter,
 * mem_order, mem_cursor) written in PostgreSQL's dialect over jsonb. As
 * with SQLite, the text holds only fixed keywords, $N placeholders and
 * names that passed mem_column_name_valid (inside a string literal,
 * data->'name'); every value from the request is a parameter.
 *
 * A row's value of column c is `r.data->'c'` (jsonb; SQL NULL when
 * missing) and, for declared columns, a typed key that the column's index
 * is built on, so equality, ranges and order on it can use the index:
 *   string, text   ((data->>'c') COLLATE "C")   byte order, as SQLite's
 *   number         ((data->>'c')::numeric)
 *   boolean        ((data->>'c')::boolean)
 * ->> gives SQL NULL for a JSON null too: "missing or null" is one test.
 * An undeclared column sorts as SQLite's json_extract values do: nothing
 * first, then numbers (booleans as 0 and 1), then strings (arrays and
 * objects as their JSON text) by bytes; that key is three columns (kind,
 * number, text), compared as a row. */
#ifndef GRACE_MEMORY_PG_SQL_H
#define GRACE_MEMORY_PG_SQL_H

#include "serve/layer.h"

#include "serve/memory/filter.h"

#include <stdbool.h>

#define MEM_PG_PARAMS_MAX (MEM_BINDS_MAX + 8)

/* The parameters' text, in $N order; each malloc'd (NULL: SQL NULL). */
typedef struct mem_pg_params {
	int n;
	char *v[MEM_PG_PARAMS_MAX];
	bool oom; /* an allocation failed or there were too many */
} mem_pg_params;

void mem_pg_params_free(mem_pg_params *p);
/* Appends "$N" for a new parameter holding a copy of text[0..len). */
void mem_pg_param(sdk_buf *sql, mem_pg_params *p, const char *text, size_t len);
/* A JSON scalar as a parameter: its JSON text (for ::jsonb, ::numeric,
 * ::boolean), or with raw a string's bytes (for text). */
void mem_pg_param_json(sdk_buf *sql, mem_pg_params *p, json_t *v, bool raw);

/* The typed key of a declared column (above); `row` is "r." in a query
 * and "" in the index's definition, which must read the same. */
void mem_pg_key_sql(sdk_buf *sql, const char *row, const char *col, enum mem_type type);

/* " AND (...)" for every term. */
void mem_pg_filter_sql(const mem_filter *f, sdk_buf *sql, mem_pg_params *p);

/* The relevance of a row with q (always parameter $1): lower is better,
 * so that _rank sorts ascending as FTS5's rank does. */
#define MEM_PG_RANK_SQL "(-ts_rank(r.fts, to_tsquery('simple', $1)))::float8"

/* The columns the sort key is read from (", k" or ", kind, num, txt");
 * `type` is the order column's declared type (MEM_T_ANY: undeclared). */
void mem_pg_key_select(const mem_order *o, enum mem_type type, sdk_buf *sql);
/* " ORDER BY ...": missing values first ascending, last descending;
 * ties by id. */
void mem_pg_order_sql(const mem_order *o, enum mem_type type, sdk_buf *sql);
/* The keyset condition of pass `pass` (mem_keyset_passes). */
void mem_pg_keyset_sql(const mem_order *o, enum mem_type type, const mem_cursor *c, int pass,
		       sdk_buf *sql, mem_pg_params *p);
/* The sort key of a row read back, from the text of the columns
 * mem_pg_key_select added (v[i] NULL for SQL NULL): a new reference for
 * mem_cursor_make, NULL when out of memory. */
json_t *mem_pg_key_json(const mem_order *o, enum mem_type type, const char *const v[3]);

#endif
