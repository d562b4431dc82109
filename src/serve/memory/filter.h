/* Row queries of a memory table: the `where` filter, the `order` and the
 * opaque `cursor`, parsed into structures and turned into SQL text that
 * holds only fixed keywords, `?` placeholders and names that passed
 * mem_column_name_valid. Every value from the request is bound.
 *
 * The `where` grammar (docs/memory.md): a JSON object; each key is a column
 * (or "_id", the row id); each value is either a scalar (equality) or an
 * object of operators {"eq","ne","gt","gte","lt","lte","in","contains",
 * "exists"} that must all hold. Keys are ANDed. */
#ifndef GRACE_MEMORY_FILTER_H
#define GRACE_MEMORY_FILTER_H

#include "serve/layer.h"

#include "sdk/buf.h"
#include "serve/memory/columns.h"
#include "sdk/err.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define MEM_WHERE_BYTES_MAX 4096
#define MEM_WHERE_TERMS_MAX 16    /* operators in one filter */
#define MEM_WHERE_VALUES_MAX 256  /* values in one filter, "in" lists included */
#define MEM_VALUE_BYTES_MAX 1024  /* one string value in a filter */
#define MEM_CURSOR_BYTES_MAX 4096 /* the cursor as sent */
#define MEM_BINDS_MAX (2 * MEM_WHERE_VALUES_MAX + 8)

enum mem_op {
	MEM_OP_EQ,
	MEM_OP_NE,
	MEM_OP_GT,
	MEM_OP_GTE,
	MEM_OP_LT,
	MEM_OP_LTE,
	MEM_OP_IN,
	MEM_OP_CONTAINS,
	MEM_OP_EXISTS,
};

typedef struct mem_term {
	char col[MEM_NAME_MAX + 1];
	enum mem_type type; /* the declared type, or MEM_T_ANY */
	bool is_id;         /* "_id": the row id */
	enum mem_op op;
	json_t *value; /* owned */
} mem_term;

typedef struct mem_filter {
	size_t n;
	mem_term t[MEM_WHERE_TERMS_MAX];
} mem_filter;

/* Values to bind, in placeholder order; borrowed from the structures they
 * came from. true/false bind as 1/0, as SQLite's JSON functions give them. */
typedef struct mem_binds {
	size_t n;
	json_t *v[MEM_BINDS_MAX];
} mem_binds;

enum mem_order_kind { MEM_ORDER_ID, MEM_ORDER_COLUMN, MEM_ORDER_RANK };

typedef struct mem_order {
	enum mem_order_kind kind;
	char col[MEM_NAME_MAX + 1];
	bool desc;
	char spec[MEM_NAME_MAX + 3]; /* canonical: "_id", "-age", "_rank" */
} mem_order;

/* The SQL expressions a query reads the row id and FTS5's rank from: with
 * a full-text query the id is the FTS table's rowid, which FTS5 can give
 * in order and seek on, so a page by id does not read every match. */
typedef struct mem_sql_names {
	const char *id;   /* "r.id" or "mf_N.rowid" */
	const char *rank; /* "mf_N.rank", or NULL without a full-text query */
} mem_sql_names;

typedef struct mem_cursor {
	bool set;
	json_t *key; /* owned: the last row's sort value (JSON null for NULL) */
	json_t *id;  /* owned: the last row's id (a JSON integer) */
} mem_cursor;

const char *mem_op_name(enum mem_op op);

/* Parses `where` (NULL or "" is no filter) against the table's columns.
 * 0, or -1 with the reason; `out` needs mem_filter_clear either way. */
int mem_filter_parse(const char *where, const mem_columns *cols, mem_filter *out, sdk_err *err);
void mem_filter_clear(mem_filter *f);
/* Appends " AND (...)" for every term, reading the row's JSON from r.data
 * and its id from r.id. -1 when the binds would not fit (never, within
 * the limits above). */
int mem_filter_sql(const mem_filter *f, sdk_buf *sql, mem_binds *b);

/* Parses `order` ("col", "-col", "_id", "-_id", "_rank"; NULL or "" is
 * "_rank" when there is a full-text query, else "_id"). */
int mem_order_parse(const char *s, const mem_columns *cols, bool have_q, mem_order *out,
		    sdk_err *err);
/* The SQL of the sort key. */
void mem_order_key_sql(const mem_order *o, const mem_sql_names *n, sdk_buf *sql);
/* " ORDER BY key dir, id dir" */
void mem_order_sql(const mem_order *o, const mem_sql_names *n, sdk_buf *sql);

/* Parses a cursor made by mem_cursor_make for the same order; NULL or ""
 * is no cursor. `out` needs mem_cursor_clear either way. */
int mem_cursor_parse(const char *s, const mem_order *o, mem_cursor *out, sdk_err *err);
void mem_cursor_clear(mem_cursor *c);
/* A cursor that continues after the row (key, id): malloc'd, or NULL. */
char *mem_cursor_make(const mem_order *o, json_t *key, int64_t id);

/* Keyset pagination may take two passes, so that each can use an index:
 * NULL sort keys come first in ascending order and last in descending
 * order. Returns how many (1 or 2); mem_keyset_sql appends the condition
 * of pass `pass` (" AND ..."; nothing without a cursor). */
int mem_keyset_passes(const mem_order *o, const mem_cursor *c);
int mem_keyset_sql(const mem_order *o, const mem_cursor *c, int pass, const mem_sql_names *n,
		   sdk_buf *sql, mem_binds *b);

#endif
