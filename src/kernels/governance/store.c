#include "kernels/governance/store.h"
#include "kernels/governance/fsm.h"
#include "sdk/govrule.h"
#include "sdk/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS requests ("
	" id INTEGER PRIMARY KEY, action TEXT NOT NULL, params TEXT NOT NULL,"
	" requester TEXT NOT NULL, requester_role TEXT NOT NULL, reason TEXT NOT NULL,"
	" rule TEXT NOT NULL, state TEXT NOT NULL, revision INTEGER NOT NULL,"
	" break_glass INTEGER NOT NULL, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
	" expires_ms INTEGER NOT NULL, result TEXT, review TEXT);"
	"CREATE INDEX IF NOT EXISTS requests_state ON requests(state, expires_ms);"
	"CREATE TABLE IF NOT EXISTS votes ("
	" request_id INTEGER NOT NULL, revision INTEGER NOT NULL, user TEXT NOT NULL,"
	" role TEXT NOT NULL, kind TEXT NOT NULL, comment TEXT, at_ms INTEGER NOT NULL,"
	" PRIMARY KEY (request_id, revision, user));"
	"CREATE TABLE IF NOT EXISTS intents ("
	" key TEXT PRIMARY KEY, request_id INTEGER NOT NULL, due_ms INTEGER NOT NULL,"
	" claimed_ms INTEGER, done_ms INTEGER);"
	"CREATE INDEX IF NOT EXISTS intents_due ON intents(done_ms, due_ms);"
	"CREATE TABLE IF NOT EXISTS history ("
	" id INTEGER PRIMARY KEY, request_id INTEGER NOT NULL, at_ms INTEGER NOT NULL,"
	" actor TEXT NOT NULL, event TEXT NOT NULL, from_state TEXT, to_state TEXT NOT NULL,"
	" detail TEXT, audit_sent INTEGER NOT NULL DEFAULT 0, bus_sent INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX IF NOT EXISTS history_request ON history(request_id, id);"
	"CREATE INDEX IF NOT EXISTS history_audit ON history(audit_sent, id);"
	"CREATE INDEX IF NOT EXISTS history_bus ON history(bus_sent, id);";

int gov_store_init(sqlite3 *db, sdk_err *err)
{
	if (sqlite3_exec(db, schema, NULL, NULL, NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, "creating the governance tables");
	return 0;
}

/* ---- small helpers */

static int prep(sqlite3 *db, const char *sql, sqlite3_stmt **st, sdk_err *err)
{
	if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, "preparing a governance query");
	return 0;
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

/* Binds json as compact text (NULL: SQL NULL). */
static void bind_json(sqlite3_stmt *st, int i, const json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	if (s)
		sqlite3_bind_text(st, i, s, -1, free);
	else
		sqlite3_bind_null(st, i);
}

static json_t *col_json(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);
	json_t *j = s ? json_loads(s, JSON_DECODE_ANY, NULL) : NULL;
	return j ? j : json_null();
}

static json_t *col_str(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);
	return s ? json_string(s) : json_null();
}

static int begin(sqlite3 *db, sdk_err *err)
{
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, "beginning a transaction");
	return 0;
}

static int commit(sqlite3 *db, sdk_err *err)
{
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		int rc = sdk_db_fail(db, err, "committing");
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return rc;
	}
	return 0;
}

static int rollback(sqlite3 *db, int rc)
{
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

/* Runs a statement that returns no row. */
static int step_done(sqlite3 *db, sqlite3_stmt *st, sdk_err *err, const char *what)
{
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return sdk_db_fail(db, err, what);
	return 0;
}

static int history_add(sqlite3 *db, int64_t id, int64_t now, const char *actor, const char *event,
		       const char *from, const char *to, const json_t *detail, sdk_err *err)
{
	sqlite3_stmt *st;
	if (prep(db,
		 "INSERT INTO history (request_id, at_ms, actor, event, from_state, to_state, detail)"
		 " VALUES (?, ?, ?, ?, ?, ?, ?)",
		 &st, err) < 0)
		return SDK_EIO;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, now);
	bind_text(st, 3, actor ? actor : "governance");
	bind_text(st, 4, event);
	bind_text(st, 5, from);
	bind_text(st, 6, to);
	bind_json(st, 7, detail);
	return step_done(db, st, err, "recording history");
}

static int set_state(sqlite3 *db, int64_t id, const char *state, int64_t now, sdk_err *err)
{
	sqlite3_stmt *st;
	if (prep(db, "UPDATE requests SET state = ?, updated_ms = ? WHERE id = ?", &st, err) < 0)
		return SDK_EIO;
	bind_text(st, 1, state);
	sqlite3_bind_int64(st, 2, now);
	sqlite3_bind_int64(st, 3, id);
	return step_done(db, st, err, "changing a request's state");
}

static int intent_add(sqlite3 *db, int64_t id, int revision, int64_t due, sdk_err *err)
{
	char key[GOV_KEY_MAX];
	snprintf(key, sizeof key, "gov-%lld-r%d", (long long)id, revision);
	sqlite3_stmt *st;
	if (prep(db, "INSERT INTO intents (key, request_id, due_ms) VALUES (?, ?, ?)", &st, err) < 0)
		return SDK_EIO;
	bind_text(st, 1, key);
	sqlite3_bind_int64(st, 2, id);
	sqlite3_bind_int64(st, 3, due);
	return step_done(db, st, err, "writing the intent");
}

/* ---- reading */

#define REQ_COLS                                                                            \
	"id, action, params, requester, requester_role, reason, rule, state, revision,"   \
	" break_glass, created_ms, updated_ms, expires_ms, result, review"

static json_t *row_request(sqlite3_stmt *st)
{
	return json_pack("{s:I, s:s, s:o, s:s, s:s, s:s, s:o, s:s, s:i, s:b, s:I, s:I, s:I, s:o,"
			 " s:o}",
			 "id", (json_int_t)sqlite3_column_int64(st, 0), "action",
			 (const char *)sqlite3_column_text(st, 1), "params", col_json(st, 2),
			 "requester", (const char *)sqlite3_column_text(st, 3), "requester_role",
			 (const char *)sqlite3_column_text(st, 4), "reason",
			 (const char *)sqlite3_column_text(st, 5), "rule", col_json(st, 6), "state",
			 (const char *)sqlite3_column_text(st, 7), "revision",
			 sqlite3_column_int(st, 8), "break_glass", sqlite3_column_int(st, 9),
			 "created_ms", (json_int_t)sqlite3_column_int64(st, 10), "updated_ms",
			 (json_int_t)sqlite3_column_int64(st, 11), "expires_ms",
			 (json_int_t)sqlite3_column_int64(st, 12), "result", col_json(st, 13),
			 "review", col_json(st, 14));
}

/* The bare request row: a new reference in *out. */
static int load(sqlite3 *db, int64_t id, json_t **out, sdk_err *err)
{
	sqlite3_stmt *st;
	if (prep(db, "SELECT " REQ_COLS " FROM requests WHERE id = ?", &st, err) < 0)
		return SDK_EIO;
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*out = row_request(st);
		sqlite3_finalize(st);
		return *out ? 0 : sdk_fail(err, SDK_EIO, "out of memory");
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return sdk_fail(err, SDK_ENOTFOUND, "no change request %lld", (long long)id);
	return sdk_db_fail(db, err, "reading a request");
}

/* The votes of a kind at a revision: [{user, role, comment, at_ms}]. */
static int votes(sqlite3 *db, int64_t id, json_int_t revision, const char *kind, json_t **out,
		 sdk_err *err)
{
	sqlite3_stmt *st;
	if (prep(db,
		 "SELECT user, role, comment, at_ms FROM votes WHERE request_id = ? AND revision = ?"
		 " AND kind = ? ORDER BY at_ms, user",
		 &st, err) < 0)
		return SDK_EIO;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, revision);
	bind_text(st, 3, kind);
	json_t *list = json_array();
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(list, json_pack("{s:s, s:s, s:o, s:I}", "user",
						      (const char *)sqlite3_column_text(st, 0),
						      "role", (const char *)sqlite3_column_text(st, 1),
						      "comment", col_str(st, 2), "at_ms",
						      (json_int_t)sqlite3_column_int64(st, 3)));
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		json_decref(list);
		return sdk_db_fail(db, err, "reading votes");
	}
	*out = list;
	return 0;
}

static int history(sqlite3 *db, int64_t id, json_t **out, sdk_err *err)
{
	sqlite3_stmt *st;
	if (prep(db,
		 "SELECT id, at_ms, actor, event, from_state, to_state, detail FROM history"
		 " WHERE request_id = ? ORDER BY id",
		 &st, err) < 0)
		return SDK_EIO;
	sqlite3_bind_int64(st, 1, id);
	json_t *list = json_array();
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(
			list, json_pack("{s:I, s:I, s:s, s:s, s:o, s:s, s:o}", "id",
					(json_int_t)sqlite3_column_int64(st, 0), "at_ms",
					(json_int_t)sqlite3_column_int64(st, 1), "actor",
					(const char *)sqlite3_column_text(st, 2), "event",
					(const char *)sqlite3_column_text(st, 3), "from", col_str(st, 4),
					"to", (const char *)sqlite3_column_text(st, 5), "detail",
					col_json(st, 6)));
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		json_decref(list);
		return sdk_db_fail(db, err, "reading history");
	}
	*out = list;
	return 0;
}

/* Adds approvals, vetoes and the evaluation to a loaded request. */
static int annotate(sqlite3 *db, json_t *r, sdk_err *err)
{
	int64_t id = json_integer_value(json_object_get(r, "id"));
	json_int_t rev = json_integer_value(json_object_get(r, "revision"));
	json_t *ap, *ve;
	if (votes(db, id, rev, "approve", &ap, err) < 0)
		return SDK_EIO;
	if (votes(db, id, rev, "veto", &ve, err) < 0) {
		json_decref(ap);
		return SDK_EIO;
	}
	json_t *ev = sdk_gov_rule_eval(json_object_get(r, "rule"), ap,
				   json_string_value(json_object_get(r, "requester")));
	json_object_set_new(r, "approvals", ap);
	json_object_set_new(r, "vetoes", ve);
	const char *state = json_string_value(json_object_get(r, "state"));
	json_t *waiting = json_array();
	if (!strcmp(state, "open") && ev)
		json_array_extend(waiting, json_object_get(ev, "waiting_on"));
	else if (!strcmp(state, "approved") || !strcmp(state, "broke_glass"))
		json_array_append_new(waiting, json_string("the main process to run the action"));
	else if (!strcmp(state, "running"))
		json_array_append_new(waiting, json_string("the action's result"));
	else if (!strcmp(state, "review_pending"))
		json_array_append_new(waiting,
				      json_string("a review by another user holding a role of the "
						  "rule (POST /requests/ID/review)"));
	json_object_set_new(r, "waiting_on", waiting);
	json_object_set_new(r, "evaluation", ev ? ev : json_null());
	return 0;
}

int gov_get(sqlite3 *db, int64_t id, bool with_history, json_t **out, sdk_err *err)
{
	json_t *r;
	int rc = load(db, id, &r, err);
	if (rc < 0)
		return rc;
	if (annotate(db, r, err) < 0) {
		json_decref(r);
		return SDK_EIO;
	}
	if (with_history) {
		json_t *h = NULL;
		if (history(db, id, &h, err) < 0) {
			json_decref(r);
			return SDK_EIO;
		}
		json_object_set_new(r, "history", h);
	}
	*out = r;
	return 0;
}

int gov_list(sqlite3 *db, const char *state, int64_t before, unsigned limit, json_t **out,
	     sdk_err *err)
{
	sqlite3_stmt *st;
	if (prep(db,
		 "SELECT " REQ_COLS " FROM requests WHERE (?1 IS NULL OR state = ?1)"
		 " AND (?2 = 0 OR id < ?2) ORDER BY id DESC LIMIT ?3",
		 &st, err) < 0)
		return SDK_EIO;
	bind_text(st, 1, state);
	sqlite3_bind_int64(st, 2, before);
	sqlite3_bind_int(st, 3, (int)limit);
	json_t *list = json_array();
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(list, row_request(st));
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		json_decref(list);
		return sdk_db_fail(db, err, "listing requests");
	}
	size_t i;
	json_t *r;
	json_array_foreach(list, i, r) {
		if (annotate(db, r, err) < 0) {
			json_decref(list);
			return SDK_EIO;
		}
	}
	*out = list;
	return 0;
}

/* ---- writing */

int gov_open(sqlite3 *db, const gov_new *n, const gov_who *who, int64_t now, int64_t *id,
	     sdk_err *err)
{
	if (begin(db, err) < 0)
		return SDK_EIO;
	const char *state = gov_state_name(n->break_glass ? GOV_BROKE_GLASS : GOV_OPEN);
	sqlite3_stmt *st;
	if (prep(db,
		 "INSERT INTO requests (action, params, requester, requester_role, reason, rule,"
		 " state, revision, break_glass, created_ms, updated_ms, expires_ms)"
		 " VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?)",
		 &st, err) < 0)
		return rollback(db, SDK_EIO);
	bind_text(st, 1, n->action);
	bind_json(st, 2, n->params);
	bind_text(st, 3, who->user);
	bind_text(st, 4, who->role);
	bind_text(st, 5, n->reason ? n->reason : "");
	bind_json(st, 6, n->rule);
	bind_text(st, 7, state);
	sqlite3_bind_int(st, 8, n->break_glass);
	sqlite3_bind_int64(st, 9, now);
	sqlite3_bind_int64(st, 10, now);
	sqlite3_bind_int64(st, 11, n->expires_ms);
	int rc = step_done(db, st, err, "opening a request");
	if (rc < 0)
		return rollback(db, rc);
	*id = sqlite3_last_insert_rowid(db);
	json_t *detail = json_pack("{s:s, s:O, s:s}", "action", n->action, "params", n->params,
				   "reason", n->reason ? n->reason : "");
	rc = history_add(db, *id, now, who->user, n->break_glass ? "break_glass" : "open", NULL,
			 state, detail, err);
	json_decref(detail);
	if (rc == 0 && n->break_glass)
		rc = intent_add(db, *id, 1, n->run_at_ms, err);
	if (rc < 0)
		return rollback(db, rc);
	return commit(db, err);
}

static bool is_requester(const json_t *r, const gov_who *who)
{
	return who->user && !strcmp(who->user, json_string_value(json_object_get(r, "requester")));
}

/* Checks who may take ev on r; 0 or SDK_EDENIED. */
static int may(const json_t *r, int ev, const gov_who *who, sdk_err *err)
{
	const json_t *rule = json_object_get(r, "rule");
	bool admin = who->role && !strcmp(who->role, "admin");
	switch (ev) {
	case GOV_EV_APPROVE:
	case GOV_EV_VETO:
	case GOV_EV_REVIEW:
		if (is_requester(r, who))
			return sdk_fail(err, SDK_EDENIED,
					"the requester cannot %s their own request",
					ev == GOV_EV_APPROVE  ? "approve"
					: ev == GOV_EV_VETO ? "veto"
							    : "review");
		if (!sdk_gov_rule_eligible(rule, who->role))
			return sdk_fail(err, SDK_EDENIED, "role %s holds no role this rule names",
					who->role ? who->role : "(none)");
		return 0;
	case GOV_EV_CHANGE:
	case GOV_EV_WITHDRAW:
		if (is_requester(r, who) || admin)
			return 0;
		return sdk_fail(err, SDK_EDENIED, "only the requester or an admin may %s it",
				ev == GOV_EV_CHANGE ? "change" : "withdraw");
	default:
		return sdk_fail(err, SDK_EDENIED, "not a user's step");
	}
}

static int vote_add(sqlite3 *db, int64_t id, json_int_t rev, const gov_who *who, const char *kind,
		    const char *comment, int64_t now, sdk_err *err)
{
	sqlite3_stmt *st;
	if (prep(db,
		 "INSERT INTO votes (request_id, revision, user, role, kind, comment, at_ms)"
		 " VALUES (?, ?, ?, ?, ?, ?, ?)",
		 &st, err) < 0)
		return SDK_EIO;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, rev);
	bind_text(st, 3, who->user);
	bind_text(st, 4, who->role);
	bind_text(st, 5, kind);
	bind_text(st, 6, comment);
	sqlite3_bind_int64(st, 7, now);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_CONSTRAINT || (rc & 0xff) == SQLITE_CONSTRAINT)
		return sdk_fail(err, SDK_ECONFLICT, "%s has voted on this revision already",
				who->user);
	if (rc != SQLITE_DONE)
		return sdk_db_fail(db, err, "recording a vote");
	return 0;
}

static int step_locked(sqlite3 *db, json_t *r, int ev, const gov_who *who, json_t *arg,
		       const char *comment, int64_t now, unsigned run_delay_ms, sdk_err *err)
{
	int64_t id = json_integer_value(json_object_get(r, "id"));
	json_int_t rev = json_integer_value(json_object_get(r, "revision"));
	const char *from_name = json_string_value(json_object_get(r, "state"));
	int from = gov_state_parse(from_name);
	int to = gov_fsm_next(from, ev);
	if (to < 0)
		return sdk_fail(err, SDK_ECONFLICT, "cannot %s a request that is %s",
				gov_event_name(ev), from_name);
	int rc = may(r, ev, who, err);
	if (rc < 0)
		return rc;
	json_t *detail = json_object();
	if (comment)
		json_object_set_new(detail, "comment", json_string(comment));
	switch (ev) {
	case GOV_EV_APPROVE:
	case GOV_EV_VETO:
		rc = vote_add(db, id, rev, who, ev == GOV_EV_APPROVE ? "approve" : "veto", comment,
			      now, err);
		break;
	case GOV_EV_CHANGE: {
		sqlite3_stmt *st;
		if (rev >= GOV_REVISIONS_MAX) {
			rc = sdk_fail(err, SDK_EQUOTA, "a request changes at most %d times: open a new one",
				      GOV_REVISIONS_MAX - 1);
			break;
		}
		if ((rc = prep(db, "UPDATE requests SET params = ?, revision = revision + 1 WHERE id = ?",
			       &st, err)) < 0)
			break;
		bind_json(st, 1, arg);
		sqlite3_bind_int64(st, 2, id);
		rc = step_done(db, st, err, "changing a request");
		json_object_set_new(detail, "params", json_incref(arg));
		json_object_set_new(detail, "revision", json_integer(rev + 1));
		json_object_set_new(detail, "approvals_void", json_true());
		break;
	}
	case GOV_EV_REVIEW: {
		sqlite3_stmt *st;
		if ((rc = prep(db, "UPDATE requests SET review = ? WHERE id = ?", &st, err)) < 0)
			break;
		json_t *review = json_pack("{s:s, s:s, s:s?, s:I}", "by", who->user, "role",
					   who->role, "comment", comment, "at_ms", (json_int_t)now);
		bind_json(st, 1, review);
		json_decref(review);
		sqlite3_bind_int64(st, 2, id);
		rc = step_done(db, st, err, "recording the review");
		break;
	}
	default:
		break;
	}
	if (rc == 0 && ev == GOV_EV_APPROVE) {
		/* Does this approval meet the rule? Then it is the quorum. */
		json_t *ap = NULL, *res = NULL;
		rc = votes(db, id, rev, "approve", &ap, err);
		if (rc == 0)
			res = sdk_gov_rule_eval(json_object_get(r, "rule"), ap,
					    json_string_value(json_object_get(r, "requester")));
		if (res && json_is_true(json_object_get(res, "satisfied"))) {
			ev = GOV_EV_QUORUM;
			to = gov_fsm_next(from, ev);
			json_object_set(detail, "approvers", ap);
			rc = intent_add(db, id, (int)rev, now + run_delay_ms, err);
		}
		json_decref(ap);
		json_decref(res);
	}
	if (rc == 0 && to != from)
		rc = set_state(db, id, gov_state_name(to), now, err);
	if (rc == 0)
		rc = history_add(db, id, now, who->user, gov_event_name(ev), from_name,
				 gov_state_name(to), detail, err);
	json_decref(detail);
	return rc;
}

/* An open request past its time expires before anything else happens to
 * it (the timer may not have come round yet): 1 when it did. */
static int expire_if_due(sqlite3 *db, const json_t *r, int64_t now, sdk_err *err)
{
	const char *state = json_string_value(json_object_get(r, "state"));
	if (strcmp(state, gov_state_name(GOV_OPEN)) ||
	    json_integer_value(json_object_get(r, "expires_ms")) > now)
		return 0;
	int64_t id = json_integer_value(json_object_get(r, "id"));
	const char *to = gov_state_name(gov_fsm_next(GOV_OPEN, GOV_EV_EXPIRE));
	int rc = set_state(db, id, to, now, err);
	if (rc == 0)
		rc = history_add(db, id, now, NULL, gov_event_name(GOV_EV_EXPIRE), state, to, NULL,
				 err);
	return rc < 0 ? rc : 1;
}

int gov_step(sqlite3 *db, int64_t id, int ev, const gov_who *who, json_t *arg,
	     const char *comment, int64_t now, unsigned run_delay_ms, sdk_err *err)
{
	if (begin(db, err) < 0)
		return SDK_EIO;
	json_t *r;
	int rc = load(db, id, &r, err);
	if (rc == 0 && (rc = expire_if_due(db, r, now, err)) == 1) {
		json_decref(r);
		rc = commit(db, err);
		return rc < 0 ? rc
			      : sdk_fail(err, SDK_ECONFLICT, "cannot %s a request that is expired",
					 gov_event_name(ev));
	}
	if (rc == 0) {
		rc = step_locked(db, r, ev, who, arg, comment, now, run_delay_ms, err);
		json_decref(r);
	}
	if (rc < 0)
		return rollback(db, rc);
	return commit(db, err);
}

int gov_expire_due(sqlite3 *db, int64_t now, sdk_err *err)
{
	sqlite3_stmt *st;
	if (prep(db, "SELECT id FROM requests WHERE state = 'open' AND expires_ms <= ? LIMIT 100",
		 &st, err) < 0)
		return SDK_EIO;
	sqlite3_bind_int64(st, 1, now);
	int64_t ids[100];
	int n = 0, rc;
	while (n < 100 && (rc = sqlite3_step(st)) == SQLITE_ROW)
		ids[n++] = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (n == 0)
		return 0;
	if (begin(db, err) < 0)
		return SDK_EIO;
	const char *from = gov_state_name(GOV_OPEN);
	const char *to = gov_state_name(gov_fsm_next(GOV_OPEN, GOV_EV_EXPIRE));
	for (int i = 0; i < n; i++) {
		/* Still open: a step may have come between the read and the lock. */
		if ((rc = prep(db, "UPDATE requests SET state = ?, updated_ms = ? WHERE id = ?"
				   " AND state = 'open'", &st, err)) < 0)
			return rollback(db, rc);
		bind_text(st, 1, to);
		sqlite3_bind_int64(st, 2, now);
		sqlite3_bind_int64(st, 3, ids[i]);
		if ((rc = step_done(db, st, err, "expiring a request")) < 0)
			return rollback(db, rc);
		if (sqlite3_changes(db) == 1 &&
		    (rc = history_add(db, ids[i], now, NULL, gov_event_name(GOV_EV_EXPIRE), from, to,
				      NULL, err)) < 0)
			return rollback(db, rc);
	}
	rc = commit(db, err);
	return rc < 0 ? rc : n;
}

int gov_trim(sqlite3 *db, unsigned keep, sdk_err *err)
{
	sqlite3_stmt *st;
	if (prep(db,
		 "SELECT id FROM requests WHERE state IN ('done','failed','denied','expired',"
		 "'withdrawn','reviewed') ORDER BY id DESC LIMIT 1 OFFSET ?",
		 &st, err) < 0)
		return SDK_EIO;
	sqlite3_bind_int(st, 1, (int)keep);
	int rc = sqlite3_step(st);
	int64_t edge = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	if (edge == 0)
		return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : sdk_db_fail(db, err, "trimming");
	/* Closed, old enough, and every step of it sent to both sinks. */
	char sql[1024];
	snprintf(sql, sizeof sql,
		 "BEGIN IMMEDIATE;"
		 "CREATE TEMP TABLE IF NOT EXISTS gov_trim (id INTEGER PRIMARY KEY);"
		 "DELETE FROM gov_trim;"
		 "INSERT INTO gov_trim SELECT id FROM requests WHERE id <= %lld AND state IN"
		 " ('done','failed','denied','expired','withdrawn','reviewed') AND id NOT IN"
		 " (SELECT request_id FROM history WHERE audit_sent = 0 OR bus_sent = 0);"
		 "DELETE FROM votes WHERE request_id IN (SELECT id FROM gov_trim);"
		 "DELETE FROM history WHERE request_id IN (SELECT id FROM gov_trim);"
		 "DELETE FROM intents WHERE request_id IN (SELECT id FROM gov_trim);"
		 "DELETE FROM requests WHERE id IN (SELECT id FROM gov_trim);"
		 "COMMIT;",
		 (long long)edge);
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		rc = sdk_db_fail(db, err, "trimming closed requests");
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return rc;
	}
	return 0;
}

/* ---- intents */

int gov_intents_due(sqlite3 *db, int64_t now, unsigned limit, json_t **out, sdk_err *err)
{
	sqlite3_stmt *st;
	if (prep(db,
		 "SELECT i.key, r.id, r.action, r.params, r.requester, r.requester_role,"
		 " r.break_glass FROM intents i JOIN requests r ON r.id = i.request_id"
		 " WHERE i.done_ms IS NULL AND i.due_ms <= ? ORDER BY i.due_ms LIMIT ?",
		 &st, err) < 0)
		return SDK_EIO;
	sqlite3_bind_int64(st, 1, now);
	sqlite3_bind_int(st, 2, (int)limit);
	json_t *list = json_array();
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(
			list, json_pack("{s:s, s:I, s:s, s:o, s:s, s:s, s:b}", "key",
					(const char *)sqlite3_column_text(st, 0), "request_id",
					(json_int_t)sqlite3_column_int64(st, 1), "action",
					(const char *)sqlite3_column_text(st, 2), "params",
					col_json(st, 3), "requester",
					(const char *)sqlite3_column_text(st, 4), "requester_role",
					(const char *)sqlite3_column_text(st, 5), "break_glass",
					sqlite3_column_int(st, 6)));
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		json_decref(list);
		return sdk_db_fail(db, err, "reading intents");
	}
	*out = list;
	return 0;
}

/* The intent's request id and whether it is done; SDK_ENOTFOUND. */
static int intent_find(sqlite3 *db, const char *key, int64_t *id, bool *done, sdk_err *err)
{
	sqlite3_stmt *st;
	if (prep(db, "SELECT request_id, done_ms IS NOT NULL FROM intents WHERE key = ?", &st,
		 err) < 0)
		return SDK_EIO;
	bind_text(st, 1, key);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*id = sqlite3_column_int64(st, 0);
		*done = sqlite3_column_int(st, 1);
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return sdk_fail(err, SDK_ENOTFOUND, "no intent '%s'", key);
	return rc == SQLITE_ROW ? 0 : sdk_db_fail(db, err, "reading an intent");
}

/* Moves request id by a system event; SDK_ECONFLICT when not allowed. */
static int system_step(sqlite3 *db, int64_t id, int ev, const json_t *detail, int64_t now,
		       sdk_err *err)
{
	json_t *r;
	int rc = load(db, id, &r, err);
	if (rc < 0)
		return rc;
	const char *from_name = json_string_value(json_object_get(r, "state"));
	int from = gov_state_parse(from_name);
	int to = gov_fsm_next(from, ev);
	if (to < 0)
		rc = sdk_fail(err, SDK_ECONFLICT, "cannot %s a request that is %s",
			      gov_event_name(ev), from_name);
	else if (to != from || ev != GOV_EV_CLAIM)
		rc = set_state(db, id, gov_state_name(to), now, err);
	if (rc == 0)
		rc = history_add(db, id, now, NULL, gov_event_name(ev), from_name,
				 gov_state_name(to), detail, err);
	json_decref(r);
	return rc;
}

int gov_intent_claim(sqlite3 *db, const char *key, int64_t now, sdk_err *err)
{
	if (begin(db, err) < 0)
		return SDK_EIO;
	int64_t id;
	bool done;
	int rc = intent_find(db, key, &id, &done, err);
	if (rc == 0 && done)
		rc = sdk_fail(err, SDK_ECONFLICT, "intent '%s' has its result already", key);
	sqlite3_stmt *st;
	if (rc == 0 && (rc = prep(db, "UPDATE intents SET claimed_ms = ? WHERE key = ?", &st, err)) == 0) {
		sqlite3_bind_int64(st, 1, now);
		bind_text(st, 2, key);
		rc = step_done(db, st, err, "claiming an intent");
	}
	if (rc == 0) {
		json_t *d = json_pack("{s:s}", "key", key);
		rc = system_step(db, id, GOV_EV_CLAIM, d, now, err);
		json_decref(d);
	}
	if (rc < 0)
		return rollback(db, rc);
	return commit(db, err);
}

int gov_intent_result(sqlite3 *db, const char *key, bool ok, json_t *result, int64_t now,
		      sdk_err *err)
{
	if (begin(db, err) < 0)
		return SDK_EIO;
	int64_t id;
	bool done;
	int rc = intent_find(db, key, &id, &done, err);
	if (rc == 0 && done) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return 1;
	}
	sqlite3_stmt *st;
	if (rc == 0 && (rc = prep(db, "UPDATE intents SET done_ms = ? WHERE key = ?", &st, err)) == 0) {
		sqlite3_bind_int64(st, 1, now);
		bind_text(st, 2, key);
		rc = step_done(db, st, err, "closing an intent");
	}
	json_t *attached = json_pack("{s:s, s:b, s:O, s:I}", "key", key, "ok", ok, "result",
				     result ? result : json_null(), "at_ms", (json_int_t)now);
	if (rc == 0 && (rc = prep(db, "UPDATE requests SET result = ? WHERE id = ?", &st, err)) == 0) {
		bind_json(st, 1, attached);
		sqlite3_bind_int64(st, 2, id);
		rc = step_done(db, st, err, "attaching the result");
	}
	if (rc == 0)
		rc = system_step(db, id, ok ? GOV_EV_SUCCEED : GOV_EV_FAIL, attached, now, err);
	json_decref(attached);
	if (rc < 0)
		return rollback(db, rc);
	return commit(db, err);
}

/* ---- outbox */

int gov_outbox(sqlite3 *db, const char *sink, unsigned limit, json_t **out, sdk_err *err)
{
	sqlite3_stmt *st;
	const char *sql = !strcmp(sink, "audit")
				  ? "SELECT h.id, h.request_id, h.at_ms, h.actor, h.event, h.from_state,"
				    " h.to_state, h.detail, r.action FROM history h JOIN requests r"
				    " ON r.id = h.request_id WHERE h.audit_sent = 0 ORDER BY h.id LIMIT ?"
				  : "SELECT h.id, h.request_id, h.at_ms, h.actor, h.event, h.from_state,"
				    " h.to_state, h.detail, r.action FROM history h JOIN requests r"
				    " ON r.id = h.request_id WHERE h.bus_sent = 0 ORDER BY h.id LIMIT ?";
	if (prep(db, sql, &st, err) < 0)
		return SDK_EIO;
	sqlite3_bind_int(st, 1, (int)limit);
	json_t *list = json_array();
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(
			list, json_pack("{s:I, s:I, s:I, s:s, s:s, s:o, s:s, s:o, s:s}", "id",
					(json_int_t)sqlite3_column_int64(st, 0), "request_id",
					(json_int_t)sqlite3_column_int64(st, 1), "at_ms",
					(json_int_t)sqlite3_column_int64(st, 2), "actor",
					(const char *)sqlite3_column_text(st, 3), "event",
					(const char *)sqlite3_column_text(st, 4), "from", col_str(st, 5),
					"to", (const char *)sqlite3_column_text(st, 6), "detail",
					col_json(st, 7), "action",
					(const char *)sqlite3_column_text(st, 8)));
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		json_decref(list);
		return sdk_db_fail(db, err, "reading the outbox");
	}
	*out = list;
	return 0;
}

int gov_outbox_sent(sqlite3 *db, const char *sink, int64_t upto, sdk_err *err)
{
	sqlite3_stmt *st;
	const char *sql = !strcmp(sink, "audit")
				  ? "UPDATE history SET audit_sent = 1 WHERE audit_sent = 0 AND id <= ?"
				  : "UPDATE history SET bus_sent = 1 WHERE bus_sent = 0 AND id <= ?";
	if (prep(db, sql, &st, err) < 0)
		return SDK_EIO;
	sqlite3_bind_int64(st, 1, upto);
	return step_done(db, st, err, "marking the outbox");
}

int gov_counts(sqlite3 *db, json_t **out, sdk_err *err)
{
	sqlite3_stmt *st;
	if (prep(db, "SELECT state, count(*) FROM requests GROUP BY state", &st, err) < 0)
		return SDK_EIO;
	json_t *o = json_object();
	for (int s = 0; s < GOV_STATE_COUNT; s++)
		json_object_set_new(o, gov_state_name(s), json_integer(0));
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		json_object_set_new(o, (const char *)sqlite3_column_text(st, 0),
				    json_integer(sqlite3_column_int64(st, 1)));
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		json_decref(o);
		return sdk_db_fail(db, err, "counting requests");
	}
	*out = o;
	return 0;
}
