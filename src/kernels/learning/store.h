/* The learning kernel's store (DATA_DIR/learning.db): the decision log
 * (every decision with its context, order, the probability of its first
 * arm, the policy and its version, and its reward once told), the Beta
 * posteriors per (context bucket, arm), and the policy's versions (the
 * newest is active; older ones are kept for rollback). */
#ifndef GRACE_KERNELS_LEARNING_STORE_H
#define GRACE_KERNELS_LEARNING_STORE_H

#include "kernels/layer.h"

#include "kernels/learning/bandit.h"
#include "kernels/learning/context.h"
#include "sdk/err.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct lrn_policy_row {
	int64_t version;
	enum lrn_policy policy;
	double epsilon;
} lrn_policy_row;

int lrn_store_init(sqlite3 *db, sdk_err *err);

/* The active policy; when none is stored yet, `initial` becomes version 1. */
int lrn_store_policy(sqlite3 *db, const lrn_policy_row *initial, int64_t now_ms,
		     lrn_policy_row *out, sdk_err *err);
/* Stores a new version (the previous ones are kept). */
int lrn_store_policy_set(sqlite3 *db, enum lrn_policy p, double eps, int64_t now_ms,
			 const char *reason, lrn_policy_row *out, sdk_err *err);
/* The version before the active one becomes active again, as a new version
 * ("rollback to N"); SDK_ECONFLICT when there is none. */
int lrn_store_policy_rollback(sqlite3 *db, int64_t now_ms, lrn_policy_row *out, sdk_err *err);
/* {"active": {...}, "history": [newest first, at most 100]}. */
int lrn_store_policy_json(sqlite3 *db, json_t **out, sdk_err *err);

/* The posteriors of c's arms in c's bucket (the prior where none is stored). */
int lrn_store_posteriors(sqlite3 *db, const lrn_context *c, lrn_arm *out, sdk_err *err);

typedef struct lrn_decision {
	const lrn_context *c;
	const size_t *order; /* indexes into c->arms */
	double probability;
	lrn_policy_row policy;
	int64_t at_ms;
} lrn_decision;

/* Inserts it; *id gets its id. Keeps the newest `keep` decisions. */
int lrn_store_decision(sqlite3 *db, const lrn_decision *d, unsigned keep, int64_t *id,
		       sdk_err *err);
/* The decision as JSON (404 SDK_ENOTFOUND). */
int lrn_store_get(sqlite3 *db, int64_t id, json_t **out, sdk_err *err);
/* Newest first, ids below `before` (0: from the newest), at most limit. */
int lrn_store_list(sqlite3 *db, int64_t before, unsigned limit, json_t **out, sdk_err *err);

/* A reward for decision id's arm: SDK_ENOTFOUND, SDK_ECONFLICT when it has
 * one already or `arm` is not the arm it ran first. `final`: no relapse
 * window to wait for (a reward of 0, or a window of 0). `outcome` is
 * stored as given (borrowed; may be NULL). */
int lrn_store_reward(sqlite3 *db, int64_t id, const char *arm, double reward, json_t *outcome,
		     bool final, int64_t now_ms, sdk_err *err);
/* Provisional rewards older than window_ms become final, each updating its
 * posterior; *n gets how many. */
int lrn_store_finalize(sqlite3 *db, int64_t now_ms, int64_t window_ms, unsigned *n,
		       sdk_err *err);
/* A new incident of `kernel`: its provisional rewards become final with
 * reward 0 (a relapse), each updating its posterior; *n gets how many. */
int lrn_store_relapse(sqlite3 *db, const char *kernel, int64_t now_ms, unsigned *n,
		      sdk_err *err);

/* One rewarded decision, for an offline evaluation (borrowed strings,
 * valid during the callback). */
typedef struct lrn_logged {
	int64_t id;
	const char *issue, *bucket, *arms_json, *chosen;
	double probability, reward;
} lrn_logged;
typedef int (*lrn_logged_fn)(const lrn_logged *l, void *arg);
/* The newest `limit` rewarded decisions (final ones, and provisional ones
 * too when asked); stops early when fn returns non-zero. */
int lrn_store_logged(sqlite3 *db, bool provisional, unsigned limit, lrn_logged_fn fn, void *arg,
		     sdk_err *err);

#endif
