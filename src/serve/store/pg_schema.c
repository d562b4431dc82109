#include "serve/store/pg_schema.h"

#include "sdk/clock.h"
#include "sdk/log.h"
#include "serve/store/pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* steps[N] goes from version N to N+1. Each runs inside the migration's
 * one transaction: never CREATE INDEX CONCURRENTLY or the like. */
static const struct {
	const char *sql;
	const char *what;
} steps[STORE_PG_VERSION] = {
	{ "CREATE TABLE users ("
	  " name text PRIMARY KEY, password_hash text NOT NULL,"
	  " role text NOT NULL CHECK (role IN ('user', 'admin')),"
	  " created_ms bigint NOT NULL, password_changed_ms bigint NOT NULL);"
	  "CREATE TABLE sessions ("
	  " token_hash text PRIMARY KEY,"
	  " username text NOT NULL REFERENCES users(name) ON DELETE CASCADE,"
	  " created_ms bigint NOT NULL, last_ms bigint NOT NULL, expires_ms bigint NOT NULL);"
	  "CREATE INDEX sessions_user ON sessions(username);"
	  "CREATE INDEX sessions_expires ON sessions(expires_ms);"
	  "CREATE TABLE login_failures ("
	  " username text PRIMARY KEY REFERENCES users(name) ON DELETE CASCADE,"
	  " failures bigint NOT NULL, since_ms bigint NOT NULL);"
	  "CREATE TABLE api_tokens ("
	  " id text PRIMARY KEY, token_hash text NOT NULL UNIQUE,"
	  " owner text NOT NULL REFERENCES users(name) ON DELETE CASCADE,"
	  " name text NOT NULL, scopes text NOT NULL, created_ms bigint NOT NULL,"
	  " expires_ms bigint, last_used_ms bigint, revoked_ms bigint);"
	  "CREATE INDEX api_tokens_owner ON api_tokens(owner);",
	  "users, sessions, login failures and API tokens" },
	/* The memory tables (src/serve/memory/pg_int.h): one row per table,
	 * the read-only grants; each table's rows get a relation of their
	 * own, mem_rows_ID, when the table is made. Owners and grantees are
	 * names, not references to users: a user's tables go with the user
	 * through the memory service's purge, as with SQLite. The identity
	 * never hands out an id twice: ids name relations. */
	{ "CREATE TABLE mem_tables ("
	  " id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
	  " owner text NOT NULL, name text NOT NULL,"
	  " description text NOT NULL DEFAULT '', columns text NOT NULL DEFAULT '[]',"
	  " created_ms bigint NOT NULL,"
	  " n_rows bigint NOT NULL DEFAULT 0, bytes bigint NOT NULL DEFAULT 0,"
	  " UNIQUE (owner, name));"
	  "CREATE TABLE mem_shares ("
	  " table_id bigint NOT NULL REFERENCES mem_tables(id) ON DELETE CASCADE,"
	  " username text NOT NULL, created_ms bigint NOT NULL,"
	  " PRIMARY KEY (table_id, username));"
	  "CREATE INDEX mem_shares_by_user ON mem_shares(username, table_id);",
	  "memory tables and their shares" },
};

/* A multi-statement text (no parameters): 0 or a negative sdk_status. */
static int exec_text(PGconn *c, const char *sql, sdk_err *err)
{
	PGresult *r = store_pq->PQexec(c, sql);
	ExecStatusType s = r ? store_pq->PQresultStatus(r) : PGRES_FATAL_ERROR;
	int rc = 0;
	if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
		const char *why = r ? store_pq->PQresultErrorMessage(r) : store_pq->PQerrorMessage(c);
		rc = sdk_fail(err, SDK_EIO, "PostgreSQL: %.*s", (int)strcspn(why, "\n"), why);
	}
	store_pq->PQclear(r);
	return rc;
}

static int migrate_locked(PGconn *c, int *from, sdk_err *err)
{
	char key[21];
	const char *lock[] = { store_pg_i64(key, STORE_PG_LOCK_KEY) };
	int rc = store_pg_run(c, "SELECT pg_advisory_xact_lock($1::bigint)", 1, lock, NULL, err);
	if (rc < 0)
		return rc;
	rc = exec_text(c,
		       "CREATE TABLE IF NOT EXISTS grace_schema ("
		       " store text PRIMARY KEY, version integer NOT NULL,"
		       " updated_ms bigint NOT NULL)",
		       err);
	if (rc < 0)
		return rc;
	int status;
	PGresult *r = store_pg_exec(c, "SELECT version FROM grace_schema WHERE store = 'grace'", 0,
				    NULL, &status, err);
	if (!r)
		return status;
	int version = store_pq->PQntuples(r) ? (int)store_pg_get_i64(r, 0, 0) : 0;
	store_pq->PQclear(r);
	if (from)
		*from = version;
	if (version > STORE_PG_VERSION)
		return sdk_fail(err, SDK_EIO,
				"the PostgreSQL schema is at version %d, newer than this Grace "
				"knows (%d): run the newer Grace, or restore the database from "
				"before the upgrade (docs/upgrades.md)",
				version, STORE_PG_VERSION);
	for (int v = version; v < STORE_PG_VERSION; v++) {
		if ((rc = exec_text(c, steps[v].sql, err)) < 0)
			return rc;
		sdk_info("store: PostgreSQL schema %d -> %d: %s", v, v + 1, steps[v].what);
	}
	if (version == STORE_PG_VERSION)
		return 0;
	char ver[21], now[21];
	const char *p[] = { store_pg_i64(ver, STORE_PG_VERSION),
			    store_pg_i64(now, (int64_t)sdk_wall_ms()) };
	return store_pg_run(c,
			    "INSERT INTO grace_schema (store, version, updated_ms) VALUES"
			    " ('grace', $1::integer, $2::bigint) ON CONFLICT (store) DO UPDATE"
			    " SET version = excluded.version, updated_ms = excluded.updated_ms",
			    2, p, NULL, err);
}

int store_pg_migrate(PGconn *c, int *from, sdk_err *err)
{
	int rc = exec_text(c, "BEGIN", err);
	if (rc < 0)
		return rc;
	rc = migrate_locked(c, from, err);
	sdk_err ignored;
	if (rc < 0) {
		exec_text(c, "ROLLBACK", &ignored);
		return rc;
	}
	return exec_text(c, "COMMIT", err);
}
