/* PostgreSQL through libpq: a small pool of connections to the database
 * [store] postgresql_url names, with the password read from
 * [store] password_file (never from the configuration itself) at every
 * connection, so a rotated password needs no restart. Each connection has
 * statement_timeout set, so no statement holds its caller longer. */
#ifndef GRACE_STORE_PG_H
#define GRACE_STORE_PG_H

#include "serve/layer.h"

#include "sdk/config.h"
#include "sdk/err.h"

#include "serve/store/pq_dl.h"

typedef struct store_pg store_pg;

/* The password [store] password_file holds (its first line, blanks
 * trimmed) into out, "" when no file is configured: for a child (pg_dump,
 * pg_restore) that gets it in its environment, never on a command line.
 * The caller wipes it (sodium_memzero). */
#define STORE_PG_PASSWORD_MAX 1024
int store_pg_password(const grace_store_cfg *cfg, char *out, size_t len, sdk_err *err);

/* Opens the pool and its first connection: NULL with the reason. The
 * configuration must outlive the pool. */
store_pg *store_pg_open(const grace_store_cfg *cfg, sdk_err *err);
void store_pg_close(store_pg *p);

/* A connection of the pool for one caller (connected, opened again if it
 * had broken): give it back with store_pg_release. NULL with the reason
 * (SDK_EBUSY: every connection in use; SDK_EIO: PostgreSQL unreachable,
 * logged once per attempt, and attempts at most every second). */
PGconn *store_pg_acquire(store_pg *p, sdk_err *err);
void store_pg_release(store_pg *p, PGconn *c);

/* One statement with text parameters (NULL for SQL NULL). Returns its
 * result, owned by the caller (PQclear), when it succeeded; NULL and a
 * negative sdk_status in *status otherwise, the reason in `err` (may be
 * NULL): SDK_ECONFLICT (a unique or foreign key), SDK_ETIMEOUT
 * (statement_timeout), SDK_EFULL (disk full), SDK_EIO. */
PGresult *store_pg_exec(PGconn *c, const char *sql, int n, const char *const *params,
			int *status, sdk_err *err);
/* The same for a statement whose rows are not wanted: 0 with the number
 * of rows it touched in *changed (may be NULL), or a negative sdk_status. */
int store_pg_run(PGconn *c, const char *sql, int n, const char *const *params, long *changed,
		 sdk_err *err);
/* The sdk_status of a failed statement's result (as store_pg_exec maps
 * it); SDK_EIO for NULL. */
int store_pg_status(const PGresult *r);

/* Decimal text of v in buf (21 bytes). */
const char *store_pg_i64(char buf[21], int64_t v);
/* A column as an integer (0 when NULL). */
int64_t store_pg_get_i64(const PGresult *r, int row, int col);

#endif
