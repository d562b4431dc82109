#include "kernels/learning/store.h"

#include "sdk/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS decisions ("
	" id INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL,"
	" issue TEXT NOT NULL, kernel TEXT NOT NULL, bucket TEXT NOT NULL,"
	" features TEXT NOT NULL, arms TEXT NOT NULL, ord TEXT NOT NULL, chosen TEXT NOT NULL,"
	" probability REAL NOT NULL, policy TEXT NOT NULL, version INTEGER NOT NULL,"
	" reward_state TEXT NOT NULL DEFAULT 'none'," /* none, provisional, final */
	" reward REAL, reward_at_ms INTEGER, outcome TEXT,"
	" final_reward REAL, final_at_ms INTEGER, relapsed INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX IF NOT EXISTS decisions_pending ON decisions (reward_state, kernel);"
	"CREATE TABLE IF NOT EXISTS posteriors ("
	" bucket TEXT NOT NULL, arm TEXT NOT NULL, alpha REAL NOT NULL, beta REAL NOT NULL,"
	" n INTEGER NOT NULL, PRIMARY KEY (bucket, arm)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS policies ("
	" version INTEGER PRIMARY KEY, policy TEXT NOT NULL, epsilon REAL NOT NULL,"
	" at_ms INTEGER NOT NULL, reason TEXT NOT NULL);";

int lrn_store_init(sqlite3 *db, sdk_err *err)
{
	sdk_err why;
	if (sdk_db_exec(db, schema, &why) < 0)
		return sdk_fail(err, SDK_EIO, "learning store: %s", why.msg);
	return 0;
}

static int step_done(sqlite3 *db, sqlite3_stmt *st, sdk_err *err, const char *what)
{
	int rc = sqlite3_step(st);
	int out = rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : sdk_db_fail(db, err, what);
	sqlite3_finalize(st);
	return out;
}

static int policy_read(sqlite3 *db, const char *sql, int64_t arg, lrn_policy_row *out,
		       sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db, sql, &st, err);
	if (rc < 0)
		return rc;
	if (arg)
		sqlite3_bind_int64(st, 1, arg);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		out->version = sqlite3_column_int64(st, 0);
		int p = lrn_policy_parse(sdk_db_text(st, 1));
		out->policy = p < 0 ? LRN_STATIC : (enum lrn_policy)p;
		out->epsilon = sqlite3_column_double(st, 2);
		rc = 1;
	} else {
		rc = rc == SQLITE_DONE ? 0 : sdk_db_fail(db, err, "reading the policy");
	}
	sqlite3_finalize(st);
	return rc;
}

int lrn_store_policy_set(sqlite3 *db, enum lrn_policy p, double eps, int64_t now_ms,
			 const char *reason, lrn_policy_row *out, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db, "INSERT INTO policies (policy, epsilon, at_ms, reason) "
				    "VALUES (?, ?, ?, ?)", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, lrn_policy_name(p), -1, SQLITE_STATIC);
	sqlite3_bind_double(st, 2, eps);
	sqlite3_bind_int64(st, 3, now_ms);
	sqlite3_bind_text(st, 4, reason, -1, SQLITE_TRANSIENT);
	if ((rc = step_done(db, st, err, "storing the policy")) < 0)
		return rc;
	*out = (lrn_policy_row){ sqlite3_last_insert_rowid(db), p, eps };
	return 0;
}

#define ACTIVE_SQL "SELECT version, policy, epsilon FROM policies ORDER BY version DESC LIMIT 1"

int lrn_store_policy(sqlite3 *db, const lrn_policy_row *initial, int64_t now_ms,
		     lrn_policy_row *out, sdk_err *err)
{
	int rc = policy_read(db, ACTIVE_SQL, 0, out, err);
	if (rc != 0)
		return rc < 0 ? rc : 0;
	return lrn_store_policy_set(db, initial->policy, initial->epsilon, now_ms, "configuration",
				    out, err);
}

int lrn_store_policy_rollback(sqlite3 *db, int64_t now_ms, lrn_policy_row *out, sdk_err *err)
{
	lrn_policy_row cur, prev;
	int rc = policy_read(db, ACTIVE_SQL, 0, &cur, err);
	if (rc <= 0)
		return rc < 0 ? rc : sdk_fail(err, SDK_ECONFLICT, "no policy to roll back from");
	rc = policy_read(db, "SELECT version, policy, epsilon FROM policies WHERE version < ? "
			     "ORDER BY version DESC LIMIT 1",
			 cur.version, &prev, err);
	if (rc <= 0)
		return rc < 0 ? rc
			      : sdk_fail(err, SDK_ECONFLICT,
					 "version %lld is the first policy: nothing to roll back to",
					 (long long)cur.version);
	char reason[64];
	snprintf(reason, sizeof reason, "rollback to version %lld", (long long)prev.version);
	return lrn_store_policy_set(db, prev.policy, prev.epsilon, now_ms, reason, out, err);
}

int lrn_store_policy_json(sqlite3 *db, json_t **out, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db, "SELECT version, policy, epsilon, at_ms, reason FROM policies "
				    "ORDER BY version DESC LIMIT 100", &st, err);
	if (rc < 0)
		return rc;
	json_t *hist = json_array();
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(hist, json_pack("{s:I, s:s, s:f, s:I, s:s}", "version",
						      (json_int_t)sqlite3_column_int64(st, 0),
						      "policy", sdk_db_text(st, 1), "epsilon",
						      sqlite3_column_double(st, 2), "at_ms",
						      (json_int_t)sqlite3_column_int64(st, 3),
						      "reason", sdk_db_text(st, 4)));
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		json_decref(hist);
		return sdk_db_fail(db, err, "reading the policies");
	}
	json_t *active = json_array_get(hist, 0);
	*out = json_pack("{s:O, s:o}", "active", active ? active : json_null(), "history", hist);
	return 0;
}

int lrn_store_posteriors(sqlite3 *db, const lrn_context *c, lrn_arm *out, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db, "SELECT alpha, beta FROM posteriors WHERE bucket = ? AND arm = ?",
				&st, err);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < c->n_arms; i++) {
		out[i] = LRN_PRIOR;
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, c->bucket, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, c->arms[i], -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			out[i] = (lrn_arm){ sqlite3_column_double(st, 0), sqlite3_column_double(st, 1) };
		else if (rc != SQLITE_DONE) {
			sqlite3_finalize(st);
			return sdk_db_fail(db, err, "reading the posteriors");
		}
	}
	sqlite3_finalize(st);
	return 0;
}

static char *dump(json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return s;
}

int lrn_store_decision(sqlite3 *db, const lrn_decision *d, unsigned keep, int64_t *id,
		       sdk_err *err)
{
	const lrn_context *c = d->c;
	json_t *arms = json_array(), *ord = json_array();
	for (size_t i = 0; i < c->n_arms; i++) {
		json_array_append_new(arms, json_string(c->arms[i]));
		json_array_append_new(ord, json_string(c->arms[d->order[i]]));
	}
	char *arms_s = dump(arms), *ord_s = dump(ord);
	char *feat_s = json_dumps(c->features, JSON_COMPACT | JSON_SORT_KEYS);
	sqlite3_stmt *st = NULL;
	int rc = arms_s && ord_s && feat_s ? 0 : sdk_fail(err, SDK_EIO, "out of memory");
	if (rc == 0)
		rc = sdk_db_prepare(db, "INSERT INTO decisions (at_ms, issue, kernel, bucket, "
					"features, arms, ord, chosen, probability, policy, version) "
					"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", &st, err);
	if (rc == 0) {
		sqlite3_bind_int64(st, 1, d->at_ms);
		sqlite3_bind_text(st, 2, c->issue, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, c->kernel, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, c->bucket, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, feat_s, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 6, arms_s, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 7, ord_s, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 8, c->arms[d->order[0]], -1, SQLITE_STATIC);
		sqlite3_bind_double(st, 9, d->probability);
		sqlite3_bind_text(st, 10, lrn_policy_name(d->policy.policy), -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 11, d->policy.version);
		rc = step_done(db, st, err, "storing the decision");
	}
	free(arms_s);
	free(ord_s);
	free(feat_s);
	if (rc < 0)
		return rc;
	*id = sqlite3_last_insert_rowid(db);
	if (*id > (int64_t)keep) {
		/* The oldest go (by id: they are in time order). */
		if ((rc = sdk_db_prepare(db, "DELETE FROM decisions WHERE id <= ?", &st, err)) < 0)
			return rc;
		sqlite3_bind_int64(st, 1, *id - keep);
		return step_done(db, st, err, "pruning the decisions");
	}
	return 0;
}

#define ROW_COLS                                                                              \
	"id, at_ms, issue, kernel, bucket, features, arms, ord, chosen, probability, policy, " \
	"version, reward_state, reward, reward_at_ms, outcome, final_reward, final_at_ms, "     \
	"relapsed"

static json_t *col_json(sqlite3_stmt *st, int col)
{
	json_t *j = sqlite3_column_type(st, col) == SQLITE_NULL
			    ? NULL
			    : json_loads(sdk_db_text(st, col), 0, NULL);
	return j ? j : json_null();
}

static json_t *col_num(sqlite3_stmt *st, int col, bool real)
{
	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return json_null();
	return real ? json_real(sqlite3_column_double(st, col))
		    : json_integer(sqlite3_column_int64(st, col));
}

static json_t *row_json(sqlite3_stmt *st)
{
	return json_pack("{s:I, s:I, s:s, s:s, s:s, s:o, s:o, s:o, s:s, s:f, s:s, s:I, s:{s:s, s:o, "
			 "s:o, s:o, s:o, s:o, s:b}}",
			 "decision_id", (json_int_t)sqlite3_column_int64(st, 0), "at_ms",
			 (json_int_t)sqlite3_column_int64(st, 1), "issue", sdk_db_text(st, 2),
			 "kernel", sdk_db_text(st, 3), "bucket", sdk_db_text(st, 4), "features",
			 col_json(st, 5), "arms", col_json(st, 6), "order", col_json(st, 7),
			 "chosen", sdk_db_text(st, 8), "probability", sqlite3_column_double(st, 9),
			 "policy", sdk_db_text(st, 10), "version",
			 (json_int_t)sqlite3_column_int64(st, 11), "reward", "state",
			 sdk_db_text(st, 12), "value", col_num(st, 13, true), "at_ms",
			 col_num(st, 14, false), "outcome", col_json(st, 15), "final_value",
			 col_num(st, 16, true), "final_at_ms", col_num(st, 17, false), "relapsed",
			 sqlite3_column_int(st, 18) != 0);
}

int lrn_store_get(sqlite3 *db, int64_t id, json_t **out, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db, "SELECT " ROW_COLS " FROM decisions WHERE id = ?", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*out = row_json(st);
		rc = 0;
	} else {
		rc = rc == SQLITE_DONE
			     ? sdk_fail(err, SDK_ENOTFOUND, "no decision %lld", (long long)id)
			     : sdk_db_fail(db, err, "reading a decision");
	}
	sqlite3_finalize(st);
	return rc;
}

int lrn_store_list(sqlite3 *db, int64_t before, unsigned limit, json_t **out, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db, "SELECT " ROW_COLS " FROM decisions WHERE id < ? "
				    "ORDER BY id DESC LIMIT ?", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, before > 0 ? before : INT64_MAX);
	sqlite3_bind_int(st, 2, (int)limit);
	json_t *list = json_array();
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(list, row_json(st));
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		json_decref(list);
		return sdk_db_fail(db, err, "listing the decisions");
	}
	*out = list;
	return 0;
}

int lrn_store_reward(sqlite3 *db, int64_t id, const char *arm, double reward, json_t *outcome,
		     bool final, int64_t now_ms, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db, "SELECT chosen, reward_state, bucket FROM decisions WHERE id = ?",
				&st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		rc = rc == SQLITE_DONE
			     ? sdk_fail(err, SDK_ENOTFOUND, "no decision %lld", (long long)id)
			     : sdk_db_fail(db, err, "reading a decision");
		sqlite3_finalize(st);
		return rc;
	}
	char chosen[LRN_NAME_MAX + 1], bucket[LRN_BUCKET_MAX];
	snprintf(chosen, sizeof chosen, "%s", sdk_db_text(st, 0));
	snprintf(bucket, sizeof bucket, "%s", sdk_db_text(st, 2));
	bool rewarded = strcmp(sdk_db_text(st, 1), "none") != 0;
	sqlite3_finalize(st);
	if (rewarded)
		return sdk_fail(err, SDK_ECONFLICT, "decision %lld has its reward already",
				(long long)id);
	if (strcmp(chosen, arm))
		return sdk_fail(err, SDK_ECONFLICT,
				"decision %lld put %s first: a reward is for the arm that ran, and "
				"only that one has a logged probability",
				(long long)id, chosen);
	char *out_s = outcome ? json_dumps(outcome, JSON_COMPACT) : NULL;
	if ((rc = sdk_db_exec(db, "BEGIN IMMEDIATE", NULL)) < 0) {
		free(out_s);
		return sdk_db_fail(db, err, "rewarding");
	}
	rc = sdk_db_prepare(db, "UPDATE decisions SET reward_state = ?, reward = ?, "
				"reward_at_ms = ?, outcome = ?, final_reward = ?, final_at_ms = ? "
				"WHERE id = ?", &st, err);
	if (rc == 0) {
		sqlite3_bind_text(st, 1, final ? "final" : "provisional", -1, SQLITE_STATIC);
		sqlite3_bind_double(st, 2, reward);
		sqlite3_bind_int64(st, 3, now_ms);
		if (out_s)
			sqlite3_bind_text(st, 4, out_s, -1, SQLITE_STATIC);
		if (final) {
			sqlite3_bind_double(st, 5, reward);
			sqlite3_bind_int64(st, 6, now_ms);
		}
		sqlite3_bind_int64(st, 7, id);
		rc = step_done(db, st, err, "rewarding");
	}
	if (rc == 0 && final) {
		rc = sdk_db_prepare(db, "INSERT INTO posteriors (bucket, arm, alpha, beta, n) "
					"VALUES (?1, ?2, 1 + ?3, 2 - ?3, 1) ON CONFLICT (bucket, arm) "
					"DO UPDATE SET alpha = alpha + ?3, beta = beta + 1 - ?3, "
					"n = n + 1", &st, err);
		if (rc == 0) {
			sqlite3_bind_text(st, 1, bucket, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 2, chosen, -1, SQLITE_STATIC);
			sqlite3_bind_double(st, 3, reward);
			rc = step_done(db, st, err, "updating a posterior");
		}
	}
	free(out_s);
	if (rc == 0 && sdk_db_exec(db, "COMMIT", NULL) < 0)
		rc = sdk_db_fail(db, err, "rewarding");
	if (rc < 0)
		sdk_db_exec(db, "ROLLBACK", NULL);
	return rc;
}

/* Makes the provisional rewards `sel` picks final (`relapse`: with reward
 * 0), each updating its posterior, in one transaction. */
static int finalize_where(sqlite3 *db, const char *sel, const char *text, int64_t num,
			  bool relapse, int64_t now_ms, unsigned *n, sdk_err *err)
{
	*n = 0;
	if (sdk_db_exec(db, "BEGIN IMMEDIATE", NULL) < 0)
		return sdk_db_fail(db, err, "finalizing rewards");
	sqlite3_stmt *q = NULL, *upd = NULL, *post = NULL;
	int rc = sdk_db_prepare(db, sel, &q, err);
	if (rc == 0)
		rc = sdk_db_prepare(db, "UPDATE decisions SET reward_state = 'final', "
					"final_reward = ?, final_at_ms = ?, relapsed = ? WHERE id = ?",
				    &upd, err);
	if (rc == 0)
		rc = sdk_db_prepare(db, "INSERT INTO posteriors (bucket, arm, alpha, beta, n) "
					"VALUES (?1, ?2, 1 + ?3, 2 - ?3, 1) ON CONFLICT (bucket, arm) "
					"DO UPDATE SET alpha = alpha + ?3, beta = beta + 1 - ?3, "
					"n = n + 1", &post, err);
	if (rc == 0) {
		if (text)
			sqlite3_bind_text(q, 1, text, -1, SQLITE_STATIC);
		else
			sqlite3_bind_int64(q, 1, num);
		int s;
		while (rc == 0 && (s = sqlite3_step(q)) == SQLITE_ROW) {
			double r = relapse ? 0.0 : sqlite3_column_double(q, 3);
			sqlite3_reset(upd);
			sqlite3_bind_double(upd, 1, r);
			sqlite3_bind_int64(upd, 2, now_ms);
			sqlite3_bind_int(upd, 3, relapse && sqlite3_column_double(q, 3) > 0);
			sqlite3_bind_int64(upd, 4, sqlite3_column_int64(q, 0));
			if (sqlite3_step(upd) != SQLITE_DONE) {
				rc = sdk_db_fail(db, err, "finalizing a reward");
				break;
			}
			sqlite3_reset(post);
			sqlite3_bind_text(post, 1, sdk_db_text(q, 1), -1, SQLITE_TRANSIENT);
			sqlite3_bind_text(post, 2, sdk_db_text(q, 2), -1, SQLITE_TRANSIENT);
			sqlite3_bind_double(post, 3, r);
			if (sqlite3_step(post) != SQLITE_DONE) {
				rc = sdk_db_fail(db, err, "updating a posterior");
				break;
			}
			(*n)++;
		}
		if (rc == 0 && s != SQLITE_DONE)
			rc = sdk_db_fail(db, err, "finalizing rewards");
	}
	sqlite3_finalize(q);
	sqlite3_finalize(upd);
	sqlite3_finalize(post);
	if (rc == 0 && sdk_db_exec(db, "COMMIT", NULL) < 0)
		rc = sdk_db_fail(db, err, "finalizing rewards");
	if (rc < 0) {
		sdk_db_exec(db, "ROLLBACK", NULL);
		*n = 0;
	}
	return rc;
}

int lrn_store_finalize(sqlite3 *db, int64_t now_ms, int64_t window_ms, unsigned *n,
		       sdk_err *err)
{
	return finalize_where(db,
			      "SELECT id, bucket, chosen, reward FROM decisions WHERE "
			      "reward_state = 'provisional' AND reward_at_ms <= ?",
			      NULL, now_ms - window_ms, false, now_ms, n, err);
}

int lrn_store_relapse(sqlite3 *db, const char *kernel, int64_t now_ms, unsigned *n,
		      sdk_err *err)
{
	return finalize_where(db,
			      "SELECT id, bucket, chosen, reward FROM decisions WHERE "
			      "reward_state = 'provisional' AND kernel = ?",
			      kernel, 0, true, now_ms, n, err);
}

int lrn_store_logged(sqlite3 *db, bool provisional, unsigned limit, lrn_logged_fn fn, void *arg,
		     sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db, provisional
					    ? "SELECT id, issue, bucket, arms, chosen, probability, "
					      "COALESCE(final_reward, reward) FROM decisions WHERE "
					      "reward_state != 'none' ORDER BY id DESC LIMIT ?"
					    : "SELECT id, issue, bucket, arms, chosen, probability, "
					      "final_reward FROM decisions WHERE reward_state = "
					      "'final' ORDER BY id DESC LIMIT ?",
				&st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_int(st, 1, (int)limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		lrn_logged l = { .id = sqlite3_column_int64(st, 0),
				 .issue = sdk_db_text(st, 1),
				 .bucket = sdk_db_text(st, 2),
				 .arms_json = sdk_db_text(st, 3),
				 .chosen = sdk_db_text(st, 4),
				 .probability = sqlite3_column_double(st, 5),
				 .reward = sqlite3_column_double(st, 6) };
		if (fn(&l, arg))
			break;
	}
	int out = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : sdk_db_fail(db, err, "reading the log");
	sqlite3_finalize(st);
	return out;
}
