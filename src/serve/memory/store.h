/* The memory store: users' named tables of JSON rows in DATA_DIR/memory.db.
 *
 * Schema: `mem_tables` (one row per table: owner, name, declared columns,
 * counts) and `mem_shares` (read-only grants). Each table's rows live in a
 * SQLite table of their own, mr_ID (id, data JSON, times), with an
 * expression index per indexed column and, when the table has text
 * columns, an external-content FTS5 index mf_ID over a generated column,
 * kept in step by triggers. Only integer ids and names that passed
 * mem_column_name_valid ever appear in SQL text; every value is bound.
 *
 * Every call is synchronous and may block (it is meant for a worker
 * thread); calls from several threads at once are safe: each takes one of
 * the store's connections for its duration. Reads run in one read
 * transaction, writes in one BEGIN IMMEDIATE transaction: all or nothing.
 *
 * `user` is the caller. `owner` names another user's table shared with the
 * caller (NULL or the caller's own name: the caller's table). A table the
 * caller may not see is MEM_E_NOT_FOUND, never a hint that it exists. */
#ifndef GRACE_MEMORY_STORE_H
#define GRACE_MEMORY_STORE_H

#include "serve/layer.h"

#include "serve/memory/buf.h"
#include "serve/memory/columns.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define MEM_CONNS_MAX 16
#define MEM_TABLES_PER_USER_MAX 100
#define MEM_ROWS_PER_TABLE_MAX 1000000
#define MEM_BYTES_PER_USER_MAX (1024LL * 1024 * 1024) /* rows' JSON, all tables */
#define MEM_BATCH_MAX 1000        /* rows in one insert */
#define MEM_DESCRIPTION_MAX 1024
#define MEM_SHARES_MAX 100        /* users one table is shared with */
#define MEM_Q_BYTES_MAX 512       /* a full-text query */
#define MEM_LIMIT_MAX 1000        /* rows in one page */
#define MEM_LIMIT_DEFAULT 100
#define MEM_PAGE_BYTES_MAX (8u << 20) /* a page stops early past this */
#define MEM_QUERY_MS_MAX 5000     /* a statement running longer is stopped */

enum mem_status {
	MEM_OK = 0,
	MEM_E_INVALID,   /* bad input: 400 */
	MEM_E_NOT_FOUND, /* 404 */
	MEM_E_EXISTS,    /* 409 */
	MEM_E_READ_ONLY, /* a write to a table shared read-only: 403 */
	MEM_E_LIMIT,     /* a quota is reached: 409 */
	MEM_E_TOO_LARGE, /* a row or batch over its limit: 413 */
	MEM_E_BUSY,      /* the database stayed locked: 503 */
	MEM_E_TIMEOUT,   /* a statement ran past MEM_QUERY_MS_MAX: 503 */
	MEM_E_IO,        /* anything else: 500 */
};

typedef struct mem_error {
	enum mem_status status;
	char msg[256];
} mem_error;

typedef struct mem_store mem_store;

/* Opens (creating) DATA_DIR/memory.db with `conns` connections (1 to
 * MEM_CONNS_MAX). NULL and the reason in `err` on failure. */
mem_store *mem_store_open(const char *data_dir, unsigned conns, char *err, size_t errlen);
void mem_store_close(mem_store *s);

/* The answers below are new references (or NULL with `e` set). */

/* spec: {"name", "columns"?, "description"?}. */
json_t *mem_table_create(mem_store *s, const char *user, json_t *spec, int64_t now_ms,
			 mem_error *e);
/* {"tables": [...]}: the caller's tables, then those shared with them. */
json_t *mem_table_list(mem_store *s, const char *user, mem_error *e);
json_t *mem_table_get(mem_store *s, const char *user, const char *owner, const char *name,
		      mem_error *e);
json_t *mem_table_delete(mem_store *s, const char *user, const char *owner, const char *name,
			 mem_error *e);

/* rows: one object or an array of 1 to MEM_BATCH_MAX. {"ids": [...]}. */
json_t *mem_rows_insert(mem_store *s, const char *user, const char *owner, const char *name,
			json_t *rows, int64_t now_ms, mem_error *e);

typedef struct mem_query {
	const char *where, *order, *cursor, *q; /* each may be NULL */
	unsigned limit;                         /* 0: MEM_LIMIT_DEFAULT */
} mem_query;

/* Writes {"rows": [...], "count", "next_cursor", ...} as JSON text to `out`. */
int mem_rows_query(mem_store *s, const char *user, const char *owner, const char *name,
		   const mem_query *q, mem_buf *out, mem_error *e);
/* Writes one row ({"id", "data", "created_ms", "updated_ms"}) to `out`. */
int mem_row_get(mem_store *s, const char *user, const char *owner, const char *name,
		int64_t id, mem_buf *out, mem_error *e);
/* Merges `patch`'s keys into the row (null removes a key), re-checked. */
int mem_row_patch(mem_store *s, const char *user, const char *owner, const char *name,
		  int64_t id, json_t *patch, int64_t now_ms, mem_buf *out, mem_error *e);
json_t *mem_row_delete(mem_store *s, const char *user, const char *owner, const char *name,
		       int64_t id, mem_error *e);

/* Read-only grants on OWNER's table NAME (for an admin: no caller check
 * here). `users` are names already checked to exist. */
json_t *mem_shares_add(mem_store *s, const char *owner, const char *name, json_t *users,
		       int64_t now_ms, mem_error *e);
json_t *mem_shares_list(mem_store *s, const char *owner, const char *name, mem_error *e);
json_t *mem_shares_remove(mem_store *s, const char *owner, const char *name, json_t *users,
			  mem_error *e);

#endif
