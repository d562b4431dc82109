/* What the memory store's files (conn.c, tables.c, rows.c, shares.c) share;
 * not for anyone else: callers use store.h. */
#ifndef GRACE_MEMORY_STORE_INT_H
#define GRACE_MEMORY_STORE_INT_H

#include "serve/layer.h"

#include "serve/memory/store.h"

#include <pthread.h>
#include <sqlite3.h>

#define MEM_DROP_MS_MAX 120000 /* dropping a large table takes longer than a query */

struct mem_store {
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

/* What a request resolved its table to. */
typedef struct mem_tinfo {
	int64_t id;
	char owner[MEM_NAME_MAX + 1];
	char name[MEM_NAME_MAX + 1];
	mem_columns cols;
	bool shared; /* reached through a share, not owned by the caller */
	bool fts;
} mem_tinfo;

/* conn.c: connections and transactions. Waits for a free connection. */
void mem_conn_get(mem_store *s, mem_conn *c);
/* Rolls back what a path left open and gives the connection back. */
void mem_conn_put(mem_conn *c);
int mem_begin(mem_conn *c, bool write, sdk_err *e);
/* Rolls back when the commit fails. */
int mem_commit(mem_conn *c, sdk_err *e);
void mem_rollback(mem_conn *c);
/* 0 and *st, or a status with `e` set. */
int mem_prep(mem_conn *c, const char *sql, sqlite3_stmt **st, sdk_err *e);
/* The status of the connection's last error (sdk_status_of_sqlite), with
 * a reason fit for the client for the statuses a client can act on. */
int mem_db_fail(sqlite3 *db, sdk_err *e, const char *what);
int mem_oom(sdk_err *e);

/* tables.c */
/* Finds the table the caller means, inside the caller's transaction. */
int mem_resolve(mem_conn *c, const char *user, const char *owner, const char *name, bool write,
		mem_tinfo *t, sdk_err *e);

/* shares.c */
/* Who table `table_id` is shared with: 0 and *out, a new array. */
int mem_shares_json(mem_conn *c, int64_t table_id, json_t **out, sdk_err *e);
/* Deletes every share given to `user`. */
int mem_shares_drop_user(mem_conn *c, const char *user, sdk_err *e);

#endif
