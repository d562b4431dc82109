/* The PostgreSQL part of a backup ([store] engine = postgresql): what
 * lives in the shared database (users, sessions, API tokens, login
 * failures, memory tables) is taken with PostgreSQL's own tool, Debian's
 * pg_dump 15 in custom format (-Fc), and put back with pg_restore
 * (cli/restore_pg.c). docs/backup.md "PostgreSQL".
 *
 * The dump and the row counts the manifest records are one snapshot: a
 * REPEATABLE READ transaction exports it (pg_export_snapshot), counts every
 * table in it, and pg_dump --snapshot reads the same one. The password
 * reaches the tools in their environment (PGPASSWORD), read from
 * [store] password_file at that moment: never on a command line, never in
 * the manifest. Everything here blocks: run it on a worker pool. */
#ifndef GRACE_BACKUP_PG_DUMP_H
#define GRACE_BACKUP_PG_DUMP_H

#include "serve/layer.h"

#include "sdk/config.h"
#include "sdk/err.h"
#include "serve/store/pq_dl.h"

#include <jansson.h>

/* Where Debian's postgresql-client-15 puts its tools (/usr/bin/pg_dump is
 * pg_wrapper, which picks a version by what else is installed). */
#define BK_PG_BIN "/usr/lib/postgresql/15/bin"
/* The dump's name in the archive, and its kind in the manifest. */
#define BK_PG_DUMP_NAME "postgresql/grace.dump"
#define BK_PG_KIND "pg_dump"
/* A dump or a restore that runs longer is killed: a stuck server must not
 * hold a backup (one at a time) for ever. */
#define BK_PG_TIMEOUT_S (6 * 3600)
/* At most this many tables counted: the memory tables make one each. */
#define BK_PG_TABLES_MAX 100000

/* BK_PG_BIN/argv[0] with argv (NULL-terminated), stdin /dev/null, stdout
 * into out_fd (or /dev/null when out_fd < 0), with [store]'s password in
 * its environment. 0 when it exited 0; otherwise a negative sdk_status
 * with the tool's own first words (stderr) in e. Killed past timeout_s. */
int bk_pg_tool(const grace_store_cfg *cfg, const char *const *argv, int out_fd,
	       unsigned timeout_s, sdk_err *e);

/* Every table of the database's own schemas (not pg_catalog,
 * information_schema, pg_toast, temporary ones) with its row count, as
 * {"schema.table": N}, counted in the connection's current transaction.
 * NULL with the reason. */
json_t *bk_pg_counts(const pq_dl *pq, PGconn *c, sdk_err *e);

/* The dump into out_path (created 0600) and what the manifest records of
 * it, in *info (owned by the caller): {"tool", "database",
 * "server_version", "schema_version", "tables": {...}}. */
int bk_pg_dump(const grace_store_cfg *cfg, const char *out_path, json_t **info, sdk_err *e);

#endif
