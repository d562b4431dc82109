/* The schema versions of the main process's own databases (grace.db,
 * chat.db, memory.db) and their migrations: the same runner the kernels'
 * databases go through (sdk/migrate.h, docs/upgrades.md). */
#ifndef GRACE_SERVE_SCHEMA_H
#define GRACE_SERVE_SCHEMA_H

#include "serve/layer.h"

#include "sdk/err.h"
#include "sdk/migrate.h"

#include <stddef.h>

/* One of the main process's databases: DATA_DIR/NAME.db at `mig`. */
typedef struct schema_db {
	const char *name;
	const sdk_mig_def *mig;
} schema_db;

/* The main process's databases, in the order they are migrated. */
const schema_db *schema_main_dbs(size_t *n);

/* The version this build writes for DATA_DIR/NAME.db, the main process's
 * or a kernel's; 0 when no version is declared for it (the kernel manages
 * its own, or is unknown). */
int schema_version_of(const char *name);

/* Refuses (the reason in `err`) when any main-process database in
 * `data_dir` is newer than this build, before any is opened for writing:
 * the directory is then left exactly as it was. */
int schema_refuse_newer_main(const char *data_dir, sdk_err *err);

/* schema_refuse_newer_main, then brings every main-process database in
 * `data_dir` to its version, before anything else uses them (a file that
 * cannot be opened is skipped: its module's open reports it). 0, or a negative sdk_status with the reason
 * (a file from a newer Grace, a failed step: sdk_mig_run) in `err`. */
int schema_migrate_main(const char *data_dir, sdk_err *err);

#endif
