/* The state_machine kernel's storage (DATA_DIR/state_machine.db): machine
 * definitions by name and version, instances with their snapshot and
 * optimistic version, the history of each instance's transitions, and
 * delayed events (timers) that survive a restart. Every change of an
 * instance is one transaction: snapshot, history row and timers together,
 * so a kill -9 leaves either all of an event or none of it. */
#ifndef GRACE_SM_STORE_H
#define GRACE_SM_STORE_H

#include "kernels/layer.h"

#include "sdk/err.h"
#include "sdk/migrate.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdint.h>

#define SM_NAME_MAX 128     /* bytes of a machine's name, an instance id */
#define SM_PAGE_MAX 1000    /* rows in one listing */
#define SM_SCHEMA_VERSION 2 /* docs/upgrades.md; sm_migrations has this many steps */

extern const sdk_mig_step sm_migrations[SM_SCHEMA_VERSION];

typedef struct sm_instance {
	char id[SM_NAME_MAX + 1];
	char machine[SM_NAME_MAX + 1];
	char owner[65]; /* a user name (SDK_CALLER_NAME_MAX), "" for a kernel */
	char owner_role[8];   /* "admin", "user" or "kernel": who its events act as */
	char owner_kernel[65]; /* the kernel that started it ("" for a user's) */
	int64_t machine_version;
	int64_t version;
	json_t *snapshot; /* owned */
	int64_t created_ms, updated_ms;
} sm_instance;

int sm_store_init(sqlite3 *db, sdk_err *err);

/* A new version of `name` (1 for a new name): *version gets it.
 * SDK_EDENIED when the name belongs to another owner (and `admin` is
 * false). */
int sm_machine_put(sqlite3 *db, const char *name, const char *config_text, const char *owner,
		   int admin, int64_t now_ms, int64_t *version, sdk_err *err);
/* The config of `name` at `version` (0: the latest): *config (new
 * reference), *version_out. SDK_ENOTFOUND. */
int sm_machine_get(sqlite3 *db, const char *name, int64_t version, json_t **config,
		   int64_t *version_out, json_t **meta, sdk_err *err);
/* [{name, latest_version, owner, created_ms}], by name after `after`. */
int sm_machine_list(sqlite3 *db, const char *after, unsigned limit, json_t **out, sdk_err *err);

int sm_instance_insert(sqlite3 *db, const sm_instance *in, const char *value_json, sdk_err *err);
/* SDK_ENOTFOUND. */
int sm_instance_get(sqlite3 *db, const char *id, sm_instance *out, sdk_err *err);
void sm_instance_clear(sm_instance *in);
/* [{id, machine, machine_version, version, status, owner, created_ms,
 * updated_ms}] of `owner` (NULL: everybody's), of `machine` (NULL: any),
 * by id after `after`. */
int sm_instance_list(sqlite3 *db, const char *owner, const char *machine, const char *after,
		     unsigned limit, json_t **out, sdk_err *err);
/* Instances of `owner`: a count >= 0, or a negative status. */
int sm_instance_count(sqlite3 *db, const char *owner, sdk_err *err);
int sm_instance_delete(sqlite3 *db, const char *id, sdk_err *err);
/* A deleted user's instances go, with their history and delayed events,
 * in one transaction; how many in *deleted. */
int sm_owner_purge(sqlite3 *db, const char *owner, int64_t *deleted, sdk_err *err);

/* One transition of instance `id` from `version` to version + 1, in one
 * transaction: the snapshot, a history row {event, value, status, source,
 * denied (NULL: none; else policy refused the event and the snapshot is
 * the one before)},
 * the timer effects (schedule/cancel: an array of the engine's effects;
 * `done` drops every timer), the oldest history rows past `history_keep`
 * dropped, and, when `timer_seq` > 0, the deletion of
 * the timer that delivered the event. SDK_ECONFLICT when the version moved. */
int sm_instance_step(sqlite3 *db, const char *id, int64_t version, json_t *snapshot,
		     const char *status, json_t *event, json_t *value, const char *source,
		     json_t *effects, int64_t timer_seq, const char *denied, unsigned history_keep,
		     int64_t now_ms, sdk_err *err);
/* The history, oldest first, seq after `after`. */
int sm_history(sqlite3 *db, const char *id, int64_t after, unsigned limit, json_t **out,
	       sdk_err *err);

/* Schedules the initial effects of a new instance (one transaction with
 * the insert: see sm_instance_insert's caller). */
int sm_timers_apply(sqlite3 *db, const char *id, json_t *effects, int64_t now_ms, sdk_err *err);
/* The earliest timer: 1 with its fields, 0 when none. *event: new ref. */
int sm_timer_next(sqlite3 *db, int64_t *seq, char *instance, size_t ilen, json_t **event,
		  int64_t *due_ms, sdk_err *err);
int sm_timer_drop(sqlite3 *db, int64_t seq, sdk_err *err);
int sm_timer_count(sqlite3 *db, const char *id, sdk_err *err);

int sm_begin(sqlite3 *db, sdk_err *err);
int sm_commit(sqlite3 *db, sdk_err *err);
void sm_rollback(sqlite3 *db);

#endif
