/* The workflow kernel's store (DATA_DIR/workflow.db): definitions by name
 * and version, runs (their live state as one JSON document), and each
 * run's history of events. A step's state and its events are written in
 * one transaction: what a run did is either all there or not at all. */
#ifndef GRACE_WORKFLOW_STORE_H
#define GRACE_WORKFLOW_STORE_H

#include "kernels/layer.h"

#include "sdk/err.h"
#include "sdk/migrate.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#define WFS_SCHEMA_VERSION 2 /* docs/upgrades.md; wfs_migrations has this many steps */
extern const sdk_mig_step wfs_migrations[WFS_SCHEMA_VERSION];

#define WFS_PAGE_MAX 1000

int wfs_init(sqlite3 *db, sdk_err *err);

/* Stores a definition; 1 when the same text was there already, 0 when
 * new. SDK_ECONFLICT: that version holds another text; SDK_EDENIED: the
 * name belongs to another user (admins may add versions to any). */
int wfs_def_put(sqlite3 *db, const char *name, const char *version, const char *text,
		const char *owner, bool admin, int64_t now_ms, sdk_err *err);
/* The definition's text (malloc'd) and version; version NULL: the latest
 * stored. *owner (caller's buffer of 64+1) gets its owner. */
int wfs_def_get(sqlite3 *db, const char *name, const char *version, char **text,
		char version_out[65], char owner[65], sdk_err *err);
/* Definitions (name, version, owner, created_ms), owner NULL: all. */
int wfs_def_list(sqlite3 *db, const char *owner, const char *name, json_t **out, sdk_err *err);

typedef struct wfs_run {
	char id[33], name[65], version[65], owner[65], role[8], status[16];
	json_t *input, *state, *output, *error; /* owned */
	int64_t created_ms, updated_ms, due_ms, events;
} wfs_run;

void wfs_run_clear(wfs_run *r);
/* Both write, in the same transaction as the run, `outbox` (a bus
 * message's body, or NULL) to the outbox; *seq gets its number. */
int wfs_run_insert(sqlite3 *db, const wfs_run *r, const char *idem_key, const json_t *events,
		   const char *outbox, int64_t *seq, sdk_err *err);
/* The run `owner` started with `idem_key` (the caller's Idempotency-Key,
 * stored with the run by wfs_run_insert; SDK_ECONFLICT there when taken):
 * 1 and its id, or 0. */
int wfs_run_by_key(sqlite3 *db, const char *owner, const char *key, char run[33], sdk_err *err);
/* Saves the run's status, state, output, error, due and appends events
 * (r->events counts them). */
int wfs_run_save(sqlite3 *db, wfs_run *r, const json_t *events, const char *outbox, int64_t *seq,
		 sdk_err *err);
/* The outbox, oldest first: [[seq, body], ...] (at most `limit`). */
int wfs_outbox_list(sqlite3 *db, unsigned limit, json_t **out, sdk_err *err);
int wfs_outbox_drop(sqlite3 *db, int64_t seq, sdk_err *err);
int wfs_run_get(sqlite3 *db, const char *id, wfs_run *r, sdk_err *err);
/* Runs matching the filters (any may be NULL/0), newest first. */
int wfs_run_list(sqlite3 *db, const char *owner, const char *status, const char *name,
		 int64_t since_ms, int64_t until_ms, const char *before_id, unsigned limit,
		 json_t **out, sdk_err *err);
/* Ids of runs not finished (running or suspended). */
int wfs_run_active(sqlite3 *db, json_t **ids, sdk_err *err);
/* A deleted user's runs go, with their history and start keys, in one
 * transaction; their definitions lose their owner (only admins see them
 * then). How many runs in *runs. */
int wfs_owner_purge(sqlite3 *db, const char *owner, int64_t *runs, sdk_err *err);
int wfs_history(sqlite3 *db, const char *id, int64_t after, unsigned limit, json_t **out,
		sdk_err *err);

#endif
