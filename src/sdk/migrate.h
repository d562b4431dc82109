/* Schema versions and migrations: the one runner every store uses
 * (docs/upgrades.md). A store declares its current version and an ordered
 * table of steps; at open the runner brings an older file up to date, one
 * step per transaction, with a copy of the file kept aside until every
 * step succeeded, and refuses a file written by a newer Grace.
 *
 * The version lives in the file's PRAGMA user_version. Version 0 on a file
 * that already has tables means "unversioned": written before versions
 * existed, same tables as version 1 (its step 0->1 usually only stamps). A
 * file without any table is new and is stamped with the current version
 * straight away; the store's own schema (CREATE ... IF NOT EXISTS) runs
 * after the runner on every open and creates the tables. */
#ifndef GRACE_SDK_MIGRATE_H
#define GRACE_SDK_MIGRATE_H

#include "sdk/err.h"

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>

/* The highest version any store may declare (a sanity bound). */
#define SDK_MIG_VERSION_MAX 1000

/* One step, from version N to N+1: SQL text, or a function, or neither
 * (the step only stamps the new version). Runs inside BEGIN IMMEDIATE ...
 * COMMIT together with the new user_version: no VACUUM, no PRAGMA that
 * cannot run in a transaction. `fn` returns 0 or a negative sdk_status
 * with the reason in `err`. */
typedef struct sdk_mig_step {
	const char *sql;
	int (*fn)(sqlite3 *db, sdk_err *err);
	const char *what; /* one line saying what the step changes; may be NULL */
} sdk_mig_step;

/* A store's declaration: `steps[N]` goes from version N to N+1, so the
 * table holds `version` entries; NULL when every step only stamps. */
typedef struct sdk_mig_def {
	const char *store; /* its name in messages: "message_bus", "grace.db" */
	int version;       /* current, 1..SDK_MIG_VERSION_MAX */
	const sdk_mig_step *steps;
	size_t n_steps; /* entries in steps (must be `version` when steps is set) */
} sdk_mig_def;

/* What a run did, for the log. */
typedef struct sdk_mig_report {
	int from, to;  /* the file's version before and after */
	bool created;  /* a new file, stamped with the current version */
	unsigned steps; /* steps run */
} sdk_mig_report;

/* Reads `db`'s schema version into *out: 0, or a negative sdk_status. */
int sdk_mig_version(sqlite3 *db, int *out, sdk_err *err);

/* Brings the file `db` has open (its "main" database, on disk) to
 * def->version. Returns 0 when it is there (report, if not NULL, says
 * what was done), or a negative sdk_status with the reason in `err`:
 *   - the file is newer than this binary (SDK_EIO): nothing was changed;
 *     the reason names the file, both versions and what to do;
 *   - the copy could not be made (SDK_EIO, SDK_EFULL...): nothing changed;
 *   - a step failed (its status): the file stays at the last version that
 *     succeeded and the copy (PATH.pre-vN, N the version before the first
 *     step) is kept; the reason names the step and the copy;
 *   - SDK_EINVAL: the declaration itself is wrong.
 * Call it before the store's own schema and before any other connection
 * writes to the file. */
int sdk_mig_run(sqlite3 *db, const sdk_mig_def *def, sdk_mig_report *report, sdk_err *err);

/* Refuses (SDK_EIO, the same reason as sdk_mig_run) when the file at
 * `path` has a version above `version`, looking through a read-only
 * connection: a file from a newer Grace is then not touched at all, not
 * even switched to WAL by the regular open. 0 otherwise, also when there
 * is no file or it cannot be read (the regular open reports that). */
int sdk_mig_refuse_if_newer(const char *path, int version, sdk_err *err);

/* The version and the advice in a refusal, for callers that check a file
 * without opening it for writing (restore): the same wording. */
int sdk_mig_refuse_newer(sdk_err *err, const char *path, int file_version, int this_version);

#endif
