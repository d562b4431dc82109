/* The self_healing kernel's incidents, their events and the actions taken
 * on them, in SQLite (DATA_DIR/self_healing.db). Every call returns 0 (or
 * an id) or a negative sdk_status with the reason in err. Queries are
 * bounded (SH_PAGE_MAX rows, one incident's SH_DETAIL_MAX events and
 * actions) and indexed. After init, they run only on the kernel's store
 * worker (worker.h), on its own connection, one at a time. */
#ifndef GRACE_SELF_HEALING_STORE_H
#define GRACE_SELF_HEALING_STORE_H

#include "kernels/layer.h"

#include "kernels/self_healing/correlate.h"
#include "kernels/self_healing/ladder.h"
#include "sdk/err.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdint.h>

#define SH_PAGE_MAX 1000
#define SH_DETAIL_MAX 500

typedef struct sh_filter {
	const char *kernel; /* as the cause or a folded kernel; NULL: any */
	int state;          /* -1 any, 0 open, 1 resolved */
	int64_t since_ms;   /* updated at or after */
	unsigned limit;
} sh_filter;

int sh_store_init(sqlite3 *db, sdk_err *err);
/* The largest incident id stored (0 when none). */
int sh_store_max_id(sqlite3 *db, int64_t *out, sdk_err *err);
/* Calls fn for each open incident (to restore the correlation). */
int sh_store_open_incidents(sqlite3 *db, void (*fn)(const sh_incident *, void *), void *arg,
			    sdk_err *err);

/* Writes the incident as it is now (insert or update). */
int sh_store_save(sqlite3 *db, const sh_incident *inc, sdk_err *err);
/* Adds hints to the incident's cause (a kind already there is replaced). */
int sh_store_add_hints(sqlite3 *db, int64_t id, json_t *hints, sdk_err *err);
/* Incident `from` (a dependent's, absorbed by its dependency's `into`;
 * correlate.h) closes at now_ms as merged: its cause says merged_into,
 * its events, actions and hints go to `into`. One transaction. */
int sh_store_merge(sqlite3 *db, int64_t from, int64_t into, int64_t now_ms, sdk_err *err);
/* An event of the incident; `detail` borrowed, may be NULL. */
int sh_store_event(sqlite3 *db, int64_t incident, int64_t ts_ms, const char *kernel,
		   const char *kind, const char *subject, json_t *detail, sdk_err *err);
/* An action the ladder advised: its id in *id. */
int sh_store_action(sqlite3 *db, int64_t incident, const char *kernel, int64_t at_ms, int step,
		    const char *playbook, const char *verdict, json_t *detail, int64_t *id,
		    sdk_err *err);
/* The learning kernel's decision kept with action `id` (and the playbook
 * it chose). */
int sh_store_action_learning(sqlite3 *db, int64_t id, const char *playbook, json_t *learning,
			     sdk_err *err);
/* That decision's id (0 when the action had none) and the playbook. */
int sh_store_action_decision(sqlite3 *db, int64_t id, int64_t *decision, char *arm, size_t n,
			     sdk_err *err);
/* The healer's outcome of action `id`; verified: /health answered after. */
int sh_store_outcome(sqlite3 *db, int64_t id, const char *outcome, bool verified,
		     int64_t healer_incident, int64_t at_ms, sdk_err *err);
/* The kernel's newest action, for an outcome reported without its id. */
int sh_store_last_action(sqlite3 *db, const char *kernel, int64_t *id, sdk_err *err);

/* The ladder's place of a kernel (insert or replace), and all of them
 * back at start (fn per kernel). */
int sh_store_ladder_save(sqlite3 *db, const sh_kstate *ks, sdk_err *err);
int sh_store_ladder_load(sqlite3 *db, void (*fn)(const sh_kstate *, void *), void *arg,
			 sdk_err *err);
/* The remediation budget; load: 1 when one was saved (its tokens capped at
 * b->capacity, which the caller set), 0 when none. */
int sh_store_budget_save(sqlite3 *db, const sh_budget *b, sdk_err *err);
int sh_store_budget_load(sqlite3 *db, sh_budget *b, sdk_err *err);
/* {"incidents":[...]} newest first. */
int sh_store_list(sqlite3 *db, const sh_filter *f, json_t **out, sdk_err *err);
/* The incident with "events" and "actions" arrays; SDK_ENOTFOUND. */
int sh_store_get(sqlite3 *db, int64_t id, json_t **out, sdk_err *err);
/* Counts by state for /metrics. */
int sh_store_counts(sqlite3 *db, int64_t *open, int64_t *resolved, sdk_err *err);

#endif
