/* The governance kernel's store (DATA_DIR/governance.db): change requests,
 * their votes per revision, their history (which is also the outbox of
 * audit and bus events: a row is sent until both have it), and the
 * intents: the record, written in the same transaction as the approval
 * that met the rule (or the break-glass that skipped it), that an action
 * is due, with the idempotency key the main process runs it under. */
#ifndef GRACE_KERNELS_GOVERNANCE_STORE_H
#define GRACE_KERNELS_GOVERNANCE_STORE_H

#include "kernels/layer.h"

#include "sdk/err.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#define GOV_REASON_MAX 1024
#define GOV_COMMENT_MAX 1024
#define GOV_PARAMS_MAX (16u << 10) /* a request's parameters, as JSON */
#define GOV_RESULT_MAX (64u << 10) /* an action's result, as JSON */
#define GOV_PAGE_MAX 500
#define GOV_KEY_MAX 64
#define GOV_REVISIONS_MAX 100 /* changes of one request: its history stays bounded */

/* Who acts: a user (with the role the gateway vouched for), or the system
 * (the kernel's timer, the main process's executor). */
typedef struct gov_who {
	const char *user; /* NULL: the system */
	const char *role; /* "admin" or "user" */
} gov_who;

typedef struct gov_new {
	const char *action;
	json_t *params;    /* an object (borrowed) */
	json_t *rule;      /* parsed (borrowed) */
	const char *reason;
	bool break_glass;
	int64_t expires_ms;
	int64_t run_at_ms; /* when a break-glass intent is due */
} gov_new;

int gov_store_init(sqlite3 *db, sdk_err *err);

/* Opens a request for who; *id gets its id. A break-glass request starts
 * in broke_glass with its intent written. */
int gov_open(sqlite3 *db, const gov_new *n, const gov_who *who, int64_t now_ms,
	     int64_t *id, sdk_err *err);

/* The request with its approvals, vetoes, evaluation ("why it waits") and,
 * when `history`, its history: a new reference in *out. */
int gov_get(sqlite3 *db, int64_t id, bool history, json_t **out, sdk_err *err);
/* Requests, newest first, below `before` (0: from the newest), in `state`
 * when not NULL. */
int gov_list(sqlite3 *db, const char *state, int64_t before, unsigned limit, json_t **out,
	     sdk_err *err);

/* A user's step on a request: GOV_EV_APPROVE (which becomes GOV_EV_QUORUM
 * when it meets the rule, writing the intent due at now + run_delay_ms),
 * GOV_EV_VETO, GOV_EV_CHANGE (arg: the new parameters), GOV_EV_WITHDRAW,
 * GOV_EV_REVIEW. `comment` may be NULL. Refused: SDK_EDENIED (not theirs
 * to do), SDK_ECONFLICT (not in this state, voted already). */
int gov_step(sqlite3 *db, int64_t id, int ev, const gov_who *who, json_t *arg,
	     const char *comment, int64_t now_ms, unsigned run_delay_ms, sdk_err *err);

/* Expires the open requests whose time has come; returns how many. */
int gov_expire_due(sqlite3 *db, int64_t now_ms, sdk_err *err);
/* Drops the oldest closed requests past `keep` in all. */
int gov_trim(sqlite3 *db, unsigned keep, sdk_err *err);

/* The intents due and not done: [{key, request_id, action, params,
 * requester, requester_role, break_glass}]. */
int gov_intents_due(sqlite3 *db, int64_t now_ms, unsigned limit, json_t **out, sdk_err *err);
/* The main process starts the intent's action (idempotent). */
int gov_intent_claim(sqlite3 *db, const char *key, int64_t now_ms, sdk_err *err);
/* Attaches the action's result and closes the intent; a second result for
 * the same key changes nothing (returns 1). */
int gov_intent_result(sqlite3 *db, const char *key, bool ok, json_t *result, int64_t now_ms,
		      sdk_err *err);

/* History rows not yet sent to `sink` ("audit" or "bus"), oldest first. */
int gov_outbox(sqlite3 *db, const char *sink, unsigned limit, json_t **out, sdk_err *err);
/* Marks rows up to and including `upto` sent to `sink`; drops rows both have. */
int gov_outbox_sent(sqlite3 *db, const char *sink, int64_t upto, sdk_err *err);

/* Counts per state, for /metrics and /stats: {"open": 3, ...}. */
int gov_counts(sqlite3 *db, json_t **out, sdk_err *err);

#endif
