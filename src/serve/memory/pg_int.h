/* The memory store's PostgreSQL engine ([store] engine = postgresql): what
 * its files share. pg_conn.c (connections, transactions, errors),
 * pg_tables.c, pg_rows.c, pg_query.c (pages of rows), pg_shares.c,
 * pg_sql.c (the SQL text of filters, orders and keys), pg_fts.c (q).
 *
 * Schema (serve/store/pg_schema.c, version 2): mem_tables and mem_shares
 * as in SQLite, and each table's rows in a PostgreSQL table of their own,
 * mem_rows_ID (id identity, data jsonb, size, created_ms, updated_ms and,
 * with text columns, a generated tsvector `fts` under a GIN index). One
 * relation per table, as SQLite's mr_ID, and not one shared rows table:
 * each table's indexes are on its own declared columns only (a shared
 * table would need partial indexes per table on one ever-growing
 * relation), the planner's statistics are per table, ids come from the
 * table's own identity, and deleting a table is a DROP that gives its
 * space back at once instead of a DELETE of up to a million rows leaving
 * dead tuples to vacuum.
 *
 * Several API hosts share the database: a write locks its table's owner
 * (a transaction-scoped advisory lock) before it reads the counts it
 * checks the quotas against, so two hosts never both pass a quota; a read
 * is one REPEATABLE READ READ ONLY transaction (one snapshot for both
 * keyset passes). Every statement is bounded by statement_timeout (set on
 * each connection by serve/store/pg.c: MEM_QUERY_MS_MAX here, raised for
 * a transaction that drops tables). */
#ifndef GRACE_MEMORY_PG_INT_H
#define GRACE_MEMORY_PG_INT_H

#include "serve/layer.h"

#include "serve/memory/store_int.h"
#include "serve/store/pg.h"

#include <pthread.h>

typedef struct mem_pg {
	grace_store_cfg cfg; /* [store], with this store's pool size and timeout */
	store_pg *pool;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned free; /* connections no call holds: a call waits for one */
} mem_pg;

/* A connection held for one call. */
typedef struct mem_pgc {
	mem_pg *pg;
	PGconn *c;
} mem_pgc;

/* The PostgreSQL engine (its steps: engine.h; each `c` a mem_pgc). */
extern const mem_engine mem_pg_engine;

/* pg_conn.c */
int mem_pg_open(mem_store *s, const grace_store_cfg *cfg, unsigned conns, sdk_err *e);
void mem_pg_close(mem_pg *pg);
/* Serializes the writes to `owner`'s tables, from every host, until the
 * transaction ends. */
int mem_pg_lock(mem_pgc *c, const char *owner, sdk_err *e);
/* One statement with text parameters: its result (PQclear it), or NULL
 * with *rc a status and the reason in `e` (mem_fail_as's messages; a
 * table dropped meanwhile is SDK_ENOTFOUND). */
PGresult *mem_pg_exec(mem_pgc *c, const char *what, const char *sql, int n,
		      const char *const *params, int *rc, sdk_err *e);
/* The same when the rows are not wanted: 0 or a status. */
int mem_pg_run(mem_pgc *c, const char *what, const char *sql, int n, const char *const *params,
	       sdk_err *e);
/* Several statements without parameters (PQexec's simple protocol). */
int mem_pg_script(mem_pgc *c, const char *what, const char *sql, sdk_err *e);
/* A column of a result (NULL when SQL NULL) and its length. */
const char *mem_pg_val(const PGresult *r, int row, int col);
size_t mem_pg_len(const PGresult *r, int row, int col);

MEM_ENGINE_DECLARE(mem_pg);

#endif
