/* Trust scores in SQLite (evidence.h). Every update reads the subject's
 * weights, decays them to the outcome's time and adds it (score.c), in
 * one transaction with the outcome's count. */
#include "kernels/trust/evidence.h"

#include "kernels/trust/score.h"
#include "sdk/db.h"

#include <stdio.h>
#include <string.h>

int tr_subject_valid(const char *kind, const char *name)
{
	if (!kind || !name || (strcmp(kind, "kernel") && strcmp(kind, "user")))
		return 0;
	size_t n = strlen(name);
	if (n == 0 || n > TR_SUBJECT_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)name[i] < 0x21 || (unsigned char)name[i] == 0x7f)
			return 0;
	return 1;
}

static int step_done(sqlite3 *db, sqlite3_stmt *st, const char *what, sdk_err *err)
{
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : sdk_db_fail(db, err, what);
	sqlite3_finalize(st);
	return rc;
}

/* Makes room for one more subject: the one updated longest ago goes, with
 * its evidence (a flood of failed logins under made-up names is bounded). */
static int evict(sqlite3 *db, sdk_err *err)
{
	int64_t n;
	int rc = sdk_db_count(db, "SELECT count(*) FROM trust_scores", NULL, &n, "counting scores",
			      err);
	if (rc < 0 || n < TR_SUBJECTS_MAX)
		return rc;
	sqlite3_stmt *st;
	if ((rc = sdk_db_prepare(db,
				 "DELETE FROM trust_evidence WHERE (kind, name) IN (SELECT kind, name"
				 " FROM trust_scores ORDER BY at_ms LIMIT 1)",
				 &st, err)) < 0 ||
	    (rc = step_done(db, st, "evicting evidence", err)) < 0)
		return rc;
	if ((rc = sdk_db_prepare(db,
				 "DELETE FROM trust_scores WHERE rowid IN (SELECT rowid FROM"
				 " trust_scores ORDER BY at_ms LIMIT 1)",
				 &st, err)) < 0)
		return rc;
	return step_done(db, st, "evicting a score", err);
}

static int add_locked(sqlite3 *db, const char *kind, const char *name, const char *outcome,
		      int good, int64_t t_ms, int64_t half_life_ms, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
				"SELECT alpha, beta, at_ms FROM trust_scores WHERE kind = ? AND name = ?",
				&st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	tr_score s = { .at_ms = t_ms };
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW)
		s = (tr_score){ sqlite3_column_double(st, 0), sqlite3_column_double(st, 1),
				sqlite3_column_int64(st, 2) };
	sqlite3_finalize(st);
	if (step != SQLITE_ROW && step != SQLITE_DONE)
		return sdk_db_fail(db, err, "reading a score");
	if (step == SQLITE_DONE && (rc = evict(db, err)) < 0)
		return rc;
	tr_score_add(&s, good, 1.0, t_ms, half_life_ms);
	if ((rc = sdk_db_prepare(db,
				 "INSERT INTO trust_scores(kind, name, alpha, beta, at_ms)"
				 " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(kind, name) DO UPDATE SET"
				 " alpha = ?3, beta = ?4, at_ms = ?5",
				 &st, err)) < 0)
		return rc;
	sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_double(st, 3, s.alpha);
	sqlite3_bind_double(st, 4, s.beta);
	sqlite3_bind_int64(st, 5, s.at_ms);
	if ((rc = step_done(db, st, "writing a score", err)) < 0)
		return rc;
	if ((rc = sdk_db_prepare(db,
				 "INSERT INTO trust_evidence(kind, name, outcome, good, count, last_ms)"
				 " VALUES (?1, ?2, ?3, ?4, 1, ?5) ON CONFLICT(kind, name, outcome)"
				 " DO UPDATE SET count = count + 1, last_ms = max(last_ms, ?5)",
				 &st, err)) < 0)
		return rc;
	sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, outcome, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, good ? 1 : 0);
	sqlite3_bind_int64(st, 5, t_ms);
	return step_done(db, st, "counting evidence", err);
}

int tr_evidence_add(sqlite3 *db, const char *kind, const char *name, const char *outcome,
		    int good, int64_t t_ms, int64_t now_ms, int64_t half_life_ms, sdk_err *err)
{
	if (!tr_subject_valid(kind, name) || !outcome || !*outcome ||
	    strlen(outcome) > TR_OUTCOME_MAX)
		return sdk_fail(err, SDK_EINVAL, "not a subject or an outcome");
	if (t_ms > now_ms || t_ms <= 0)
		t_ms = now_ms;
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL))
		return sdk_db_fail(db, err, "starting an update");
	int rc = add_locked(db, kind, name, outcome, good, t_ms, half_life_ms, err);
	if (rc == 0 && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL))
		rc = sdk_db_fail(db, err, "committing an update");
	if (rc < 0)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

/* The evidence of one subject as {OUTCOME:{"good","count","last_ms"}}. */
static int evidence_of(sqlite3 *db, const char *kind, const char *name, json_t **out,
		       sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
				"SELECT outcome, good, count, last_ms FROM trust_evidence"
				" WHERE kind = ? AND name = ? ORDER BY outcome",
				&st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	json_t *ev = json_object();
	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW)
		json_object_set_new(ev, sdk_db_text(st, 0),
				    json_pack("{s:b, s:I, s:I}", "good", sqlite3_column_int(st, 1),
					      "count", (json_int_t)sqlite3_column_int64(st, 2),
					      "last_ms", (json_int_t)sqlite3_column_int64(st, 3)));
	sqlite3_finalize(st);
	if (step != SQLITE_DONE) {
		json_decref(ev);
		return sdk_db_fail(db, err, "reading evidence");
	}
	*out = ev;
	return 0;
}

int tr_scores_json(sqlite3 *db, const char *kind, const char *name, int64_t now_ms,
		   int64_t half_life_ms, size_t limit, json_t **out, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
				"SELECT kind, name, alpha, beta, at_ms FROM trust_scores"
				" WHERE (?1 IS NULL OR kind = ?1) AND (?2 IS NULL OR name = ?2)"
				" ORDER BY kind, name LIMIT ?3",
				&st, err);
	if (rc < 0)
		return rc;
	if (kind)
		sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
	if (name)
		sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)limit);
	json_t *list = json_array();
	int step;
	while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
		tr_score s = { sqlite3_column_double(st, 2), sqlite3_column_double(st, 3),
			       sqlite3_column_int64(st, 4) };
		int64_t updated = s.at_ms;
		s = tr_score_at(&s, now_ms, half_life_ms);
		json_t *ev = NULL;
		rc = evidence_of(db, sdk_db_text(st, 0), sdk_db_text(st, 1), &ev, err);
		if (rc == 0)
			json_array_append_new(
				list, json_pack("{s:s, s:s, s:f, s:i, s:f, s:f, s:I, s:o}", "kind",
						sdk_db_text(st, 0), "name", sdk_db_text(st, 1), "score",
						tr_score_value(&s), "percent", tr_score_percent(&s),
						"alpha", s.alpha, "beta", s.beta, "updated_ms",
						(json_int_t)updated, "evidence", ev));
	}
	if (rc == 0 && step != SQLITE_DONE)
		rc = sdk_db_fail(db, err, "reading scores");
	sqlite3_finalize(st);
	if (rc == 0 && name && json_array_size(list) == 0)
		rc = sdk_fail(err, SDK_ENOTFOUND, "no evidence about %s %s yet", kind, name);
	if (rc < 0) {
		json_decref(list);
		return rc;
	}
	*out = json_pack("{s:o}", "scores", list);
	return 0;
}

int tr_live_set(sqlite3 *db, const char *name, int ready, int64_t t_ms, sdk_err *err)
{
	if (!tr_subject_valid("kernel", name))
		return sdk_fail(err, SDK_EINVAL, "not a kernel's name");
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
				"INSERT INTO trust_live(name, ready, since_ms, good_ms)"
				" VALUES (?1, ?2, ?3, ?3) ON CONFLICT(name) DO UPDATE SET"
				" ready = ?2, since_ms = ?3, good_ms = ?3",
				&st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, ready ? 1 : 0);
	sqlite3_bind_int64(st, 3, t_ms);
	return step_done(db, st, "recording a kernel's state", err);
}

int tr_live_tick(sqlite3 *db, int64_t now_ms, int64_t period_ms, int64_t half_life_ms,
		 sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
				"SELECT name, good_ms FROM trust_live WHERE ready = 1"
				" AND good_ms <= ?1 - ?2 ORDER BY name LIMIT 256",
				&st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, now_ms);
	sqlite3_bind_int64(st, 2, period_ms);
	char names[256][TR_SUBJECT_NAME_MAX + 1];
	int64_t at[256];
	size_t n = 0;
	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW && n < 256) {
		snprintf(names[n], sizeof names[n], "%s", sdk_db_text(st, 0));
		at[n++] = sqlite3_column_int64(st, 1) + period_ms;
	}
	sqlite3_finalize(st);
	if (step != SQLITE_DONE && step != SQLITE_ROW)
		return sdk_db_fail(db, err, "reading kernels' states");
	for (size_t i = 0; i < n && rc == 0; i++) {
		rc = tr_evidence_add(db, "kernel", names[i], "healthy_period", 1, at[i], now_ms,
				     half_life_ms, err);
		if (rc < 0)
			break;
		if ((rc = sdk_db_prepare(db, "UPDATE trust_live SET good_ms = ? WHERE name = ?",
					 &st, err)) < 0)
			break;
		sqlite3_bind_int64(st, 1, at[i]);
		sqlite3_bind_text(st, 2, names[i], -1, SQLITE_STATIC);
		rc = step_done(db, st, "recording a good period", err);
	}
	return rc;
}
