/* The store of what several API processes must share: users (and their
 * roles), sessions, API tokens and login failures. Two engines:
 *
 *   - sqlite (the default): grace.db, the main process's own file, as
 *     always (src/serve/auth/ keeps that code as it was);
 *   - postgresql ([store] engine = postgresql): one PostgreSQL database
 *     that every `grace serve` of a deployment names, through libpq
 *     (pg.h), with its own versioned schema (pg_schema.c).
 *
 * The auth functions (users.h, tokens.h, lockout.h) take a grace_store and
 * go to the engine it names; callers do not know which. Every statement is
 * a short primary-key statement run on the caller's thread (the event
 * loop's), bounded by [store] statement_timeout_ms (docs/operations.md
 * says why). The memory tables live in the same database, through
 * connections of their own on the memory workers (serve/memory/pg_int.h). */
#ifndef GRACE_STORE_STORE_H
#define GRACE_STORE_STORE_H

#include "serve/layer.h"

#include "sdk/config.h"
#include "sdk/err.h"

#include <sqlite3.h>
#include <stdbool.h>

typedef struct store_pg store_pg; /* pg.h */

typedef struct grace_store {
	int engine;   /* GRACE_STORE_* */
	sqlite3 *db;  /* grace.db (not owned): the sqlite engine's */
	store_pg *pg; /* owned; NULL with the sqlite engine */
} grace_store;

/* The engine [store] names. With PostgreSQL: connects, and brings the
 * database's schema up to date under an advisory lock (refusing one newer
 * than this binary knows). NULL with the reason in `err`. */
grace_store *store_open(const grace_config *cfg, sqlite3 *db, sdk_err *err);
void store_close(grace_store *s);

/* A store on grace.db only, for the CLI's offline commands. */
static inline grace_store store_sqlite(sqlite3 *db)
{
	return (grace_store){ .engine = GRACE_STORE_SQLITE, .db = db, .pg = NULL };
}

static inline bool store_is_pg(const grace_store *s) { return s->pg != NULL; }

#endif
