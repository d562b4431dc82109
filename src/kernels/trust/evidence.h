/* Trust scores in SQLite (the tables are made by tr_store_open): per
 * subject (a kernel or a user) the decayed Beta weights (score.h) and,
 * per kind of outcome, how many were seen and when last; and per kernel
 * whether it is up, for the good outcome "a healthy period". No HTTP.
 *
 * Calls return 0 or a negative sdk_status with the reason in err. */
#ifndef GRACE_TRUST_EVIDENCE_H
#define GRACE_TRUST_EVIDENCE_H

#include "kernels/layer.h"

#include "sdk/err.h"
#include <jansson.h>
#include <sqlite3.h>
#include <stdint.h>

#define TR_SUBJECT_NAME_MAX 64 /* a kernel's or a user's name */
#define TR_SUBJECTS_MAX 10000  /* past it the subject updated longest ago goes */
#define TR_OUTCOME_MAX 32

/* Whether `kind` is "kernel" or "user" and `name` 1 to 64 printable bytes. */
int tr_subject_valid(const char *kind, const char *name);

/* One outcome observed at t_ms: good (1) or bad (0), named `outcome`
 * ("crash", "login_failed", ...). now_ms bounds t_ms (a clock ahead of
 * ours does not make evidence from the future). */
int tr_evidence_add(sqlite3 *db, const char *kind, const char *name, const char *outcome,
		    int good, int64_t t_ms, int64_t now_ms, int64_t half_life_ms, sdk_err *err);

/* Scores as they stand at now_ms: {"scores":[{"kind","name","score",
 * "percent","alpha","beta","updated_ms","evidence":{OUTCOME:{"good",
 * "count","last_ms"}}}]}, by kind and name; `kind` and `name` NULL for
 * every one. A named subject with no evidence is SDK_ENOTFOUND. New
 * reference in *out. */
int tr_scores_json(sqlite3 *db, const char *kind, const char *name, int64_t now_ms,
		   int64_t half_life_ms, size_t limit, json_t **out, sdk_err *err);

/* A kernel's process went up (ready) or down at t_ms. */
int tr_live_set(sqlite3 *db, const char *name, int ready, int64_t t_ms, sdk_err *err);
/* Every kernel up for a whole period since its last good period (or since
 * it came up) gets one good outcome "healthy_period". */
int tr_live_tick(sqlite3 *db, int64_t now_ms, int64_t period_ms, int64_t half_life_ms,
		 sdk_err *err);

#endif
