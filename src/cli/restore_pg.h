/* `grace restore`'s PostgreSQL part (docs/backup.md "PostgreSQL"): an
 * archive that holds a pg_dump of the shared database ([store] engine =
 * postgresql) is restored with pg_restore into the database the
 * configuration names, and checked there.
 *
 *   - restore_pg_prepare, in step 1 (nothing written yet): the manifest's
 *     facts, this build's schema against the dump's, a configuration that
 *     names PostgreSQL, the database reachable and empty (or --force);
 *   - restore_pg_load, after every local check passed: with --force every
 *     table, view and sequence of the database's own schemas dropped
 *     (one transaction), then pg_restore in one transaction, then the
 *     grace_schema row and every table's row count against the manifest's.
 *
 * --no-postgresql (the scheduled backups' proof, which must not touch the
 * live database) restores the files only: pg_restore --list then reads
 * the dump whole. */
#ifndef GRACE_CLI_RESTORE_PG_H
#define GRACE_CLI_RESTORE_PG_H

#include "serve/layer.h"

#include "sdk/config.h"

#include <jansson.h>
#include <stdbool.h>

/* One check of the restore's report (restore.c's check()): printed on
 * stderr when it failed. */
typedef void (*restore_check_fn)(void *ctx, const char *what, bool ok, const char *detail);

typedef struct restore_pg {
	bool present;         /* the archive holds a dump */
	bool skip;            /* --no-postgresql */
	bool force;           /* --force: a database with tables is cleaned first */
	const char *config;   /* --config, or NULL ($GRACE_CONFIG, etc/grace.ini) */
	const json_t *info;   /* the manifest's "postgresql" (borrowed) */
	grace_config *cfg;    /* owned: loaded by restore_pg_prepare */
	restore_check_fn check;
	void *ctx;
} restore_pg;

/* Step 1. `dump_listed`: the manifest lists a file of kind pg_dump. 0, or
 * -1 after a failed check saying why. */
int restore_pg_prepare(restore_pg *p, const json_t *manifest, bool dump_listed);

/* After the local checks: the dump at `dump_path` restored and checked
 * (or, with skip, read whole). 0, or -1 after a failed check. */
int restore_pg_load(restore_pg *p, const char *dump_path);

void restore_pg_free(restore_pg *p);

#endif
