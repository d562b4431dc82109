/* What the SQLite engine's files (conn.c, tables.c, rows.c, shares.c)
 * share, and the store itself; not for anyone else: callers use store.h.
 * engine.h is what both engines share; pg_int.h the PostgreSQL engine. */
#ifndef GRACE_MEMORY_STORE_INT_H
#define GRACE_MEMORY_STORE_INT_H

#include "serve/layer.h"

#include "serve/memory/engine.h"

#include <pthread.h>
#include <sqlite3.h>

struct mem_pg; /* pg_int.h */

/* The engine is chosen at open (store.c): every call goes to its steps
 * (calls.c); `pg` is the PostgreSQL engine's state, the rest SQLite's. */
struct mem_store {
	const mem_engine *eng;
	struct mem_pg *pg;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned n;
	sqlite3 *db[MEM_CONNS_MAX];
	bool busy[MEM_CONNS_MAX];
	mem_quota quota; /* set before the store is shared; read-only after */
};

/* One of the store's connections, held for one call. */
typedef struct mem_conn {
	mem_store *s;
	unsigned i;
	sqlite3 *db;
	int64_t deadline; /* monotonic ms: a statement past it is interrupted */
} mem_conn;

/* conn.c: the SQLite engine's open and close (store.c has allocated and
 * will free `s`), statements and their errors. */
int mem_lite_open(mem_store *s, const char *data_dir, unsigned conns, sdk_err *e);
void mem_lite_close(mem_store *s);
/* 0 and *st, or a status with `e` set. */
int mem_prep(mem_conn *c, const char *sql, sqlite3_stmt **st, sdk_err *e);
/* The status of the connection's last error (sdk_status_of_sqlite), with
 * a reason fit for the client for the statuses a client can act on. */
int mem_db_fail(sqlite3 *db, sdk_err *e, const char *what);

/* The SQLite engine (its steps: engine.h; each `c` a mem_conn). */
extern const mem_engine mem_lite_engine;

MEM_ENGINE_DECLARE(mem_lite);

#endif
