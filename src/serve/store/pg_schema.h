/* The PostgreSQL schema's versions (docs/upgrades.md "PostgreSQL"): like
 * sdk/migrate.h for SQLite files, an ordered table of steps, N to N+1;
 * the version lives in the table grace_schema. At start, in ONE
 * transaction holding an advisory lock (so two API processes starting at
 * once never both migrate: the second waits, then finds the work done):
 * a database newer than this binary is refused, untouched; an older one
 * is brought up to date; a new one gets every step. */
#ifndef GRACE_STORE_PG_SCHEMA_H
#define GRACE_STORE_PG_SCHEMA_H

#include "serve/layer.h"

#include "sdk/err.h"

#include "serve/store/pq_dl.h"

/* The version this binary writes. */
#define STORE_PG_VERSION 2
/* pg_advisory_xact_lock's key: "grace" in ASCII, one number for every
 * Grace that shares the database. */
#define STORE_PG_LOCK_KEY 0x6772616365LL

/* Brings the database up to STORE_PG_VERSION: 0 (with the version found
 * in *from, may be NULL), or a negative sdk_status with the reason: a
 * newer schema (SDK_EIO, naming both versions), or a failed step (rolled
 * back: nothing changed). */
int store_pg_migrate(PGconn *c, int *from, sdk_err *err);

#endif
