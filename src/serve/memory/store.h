/* The memory store: users' named tables of JSON rows, in DATA_DIR/memory.db
 * (SQLite, the default) or, with [store] engine = postgresql, in the
 * PostgreSQL database every API host of a deployment shares (pg_int.h
 * describes that engine; the behaviour, errors and limits are the same).
 *
 * SQLite schema: `mem_tables` (one row per table: owner, name, declared columns,
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
 * Errors follow sdk/err.h: a call returns 0 (or a count) or a negative
 * sdk_status with the reason in `e` (which may be NULL). A quota reached
 * is SDK_EQUOTA, and its message names the quota and its limit.
 *
 * `user` is the caller. `owner` names another user's table shared with the
 * caller (NULL or the caller's own name: the caller's table). A table the
 * caller may not see is SDK_ENOTFOUND, never a hint that it exists; a write
 * to a table shared read-only is SDK_EDENIED.
 *
 * The code is split by concern: store.c (open: the engine), calls.c (each
 * call, written once over the engine's steps: engine.h), engine.c (the
 * checks, quotas and answers both share); SQLite's steps: conn.c
 * (connections, transactions, the schema), tables.c, rows.c, shares.c,
 * store_int.h; PostgreSQL's: pg_*.c, pg_int.h. */
#ifndef GRACE_MEMORY_STORE_H
#define GRACE_MEMORY_STORE_H

#include "serve/layer.h"

#include "sdk/config.h"
#include "sdk/err.h"
#include "sdk/buf.h"
#include "serve/memory/columns.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define MEM_CONNS_MAX 16
#define MEM_ROWS_PER_TABLE_MAX 1000000
#define MEM_BATCH_MAX 1000        /* rows in one insert */
#define MEM_DESCRIPTION_MAX 1024
#define MEM_SHARES_MAX 100        /* users one table is shared with */
#define MEM_Q_BYTES_MAX 512       /* a full-text query */
#define MEM_LIMIT_MAX 1000        /* rows in one page */
#define MEM_LIMIT_DEFAULT 100
#define MEM_PAGE_BYTES_MAX (8u << 20) /* a page stops early past this */
#define MEM_QUERY_MS_MAX 5000     /* a statement running longer is stopped */

/* Per-user quotas ([memory] in grace.ini). */
typedef struct mem_quota {
	unsigned tables; /* tables a user owns */
	int64_t rows;    /* rows in all of a user's tables */
	int64_t bytes;   /* rows' JSON in all of a user's tables */
} mem_quota;

#define MEM_QUOTA_TABLES_DEFAULT 100
#define MEM_QUOTA_ROWS_DEFAULT 1000000
#define MEM_QUOTA_BYTES_DEFAULT (1024LL * 1024 * 1024)

typedef struct mem_store mem_store;

/* Opens the store with `conns` connections (1 to MEM_CONNS_MAX) and the
 * default quotas: in PostgreSQL when `store` (may be NULL) names engine =
 * postgresql (its schema migrated already: serve/store/store.h), else
 * DATA_DIR/memory.db, created if need be. NULL and the reason in `e`. */
mem_store *mem_store_open(const char *data_dir, const grace_store_cfg *store, unsigned conns,
			  sdk_err *e);
void mem_store_close(mem_store *s);
/* Sets the quotas; before the store is shared between threads. */
void mem_store_set_quota(mem_store *s, const mem_quota *q);

/* *out is a new reference on success. */

/* spec: {"name", "columns"?, "description"?}. */
int mem_table_create(mem_store *s, const char *user, json_t *spec, int64_t now_ms, json_t **out,
		     sdk_err *e);
/* {"tables": [...]}: the caller's tables, then those shared with them. */
int mem_table_list(mem_store *s, const char *user, json_t **out, sdk_err *e);
int mem_table_get(mem_store *s, const char *user, const char *owner, const char *name,
		  json_t **out, sdk_err *e);
int mem_table_delete(mem_store *s, const char *user, const char *owner, const char *name,
		     json_t **out, sdk_err *e);

/* rows: one object or an array of 1 to MEM_BATCH_MAX. {"ids": [...]}. */
int mem_rows_insert(mem_store *s, const char *user, const char *owner, const char *name,
		    json_t *rows, int64_t now_ms, json_t **out, sdk_err *e);

typedef struct mem_query {
	const char *where, *order, *cursor, *q; /* each may be NULL */
	unsigned limit;                         /* 0: MEM_LIMIT_DEFAULT */
} mem_query;

/* Writes {"rows": [...], "count", "next_cursor", ...} as JSON text to `out`. */
int mem_rows_query(mem_store *s, const char *user, const char *owner, const char *name,
		   const mem_query *q, sdk_buf *out, sdk_err *e);
/* Writes one row ({"id", "data", "created_ms", "updated_ms"}) to `out`. */
int mem_row_get(mem_store *s, const char *user, const char *owner, const char *name,
		int64_t id, sdk_buf *out, sdk_err *e);
/* Merges `patch`'s keys into the row (null removes a key), re-checked. */
int mem_row_patch(mem_store *s, const char *user, const char *owner, const char *name,
		  int64_t id, json_t *patch, int64_t now_ms, sdk_buf *out, sdk_err *e);
int mem_row_delete(mem_store *s, const char *user, const char *owner, const char *name,
		   int64_t id, json_t **out, sdk_err *e);

/* Read-only grants on OWNER's table NAME (for an admin: no caller check
 * here). `users` are names already checked to exist. */
int mem_shares_add(mem_store *s, const char *owner, const char *name, json_t *users,
		   int64_t now_ms, json_t **out, sdk_err *e);
int mem_shares_list(mem_store *s, const char *owner, const char *name, json_t **out,
		    sdk_err *e);
int mem_shares_remove(mem_store *s, const char *owner, const char *name, json_t *users,
		      json_t **out, sdk_err *e);

/* Everything of `user`: their tables (with their rows and the shares of
 * them) and the shares of other users' tables given to them. One table
 * per transaction, so a huge user never holds the write lock for long;
 * safe to repeat after a crash. Returns the number of tables dropped. */
int mem_user_purge(mem_store *s, const char *user, sdk_err *e);

#endif
