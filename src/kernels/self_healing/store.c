/* The incidents in SQLite (store.h). */
#include "kernels/self_healing/store.h"

#include "sdk/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sh_store_init(sqlite3 *db, sdk_err *err)
{
	if (sqlite3_exec(db,
			 "CREATE TABLE IF NOT EXISTS incidents ("
			 " id INTEGER PRIMARY KEY, kernel TEXT NOT NULL, family TEXT NOT NULL,"
			 " opened_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
			 " resolved_at INTEGER, title TEXT NOT NULL, kernels TEXT NOT NULL,"
			 " events INTEGER NOT NULL, crashes INTEGER NOT NULL,"
			 " flapping INTEGER NOT NULL, cause TEXT NOT NULL DEFAULT '{}');"
			 "CREATE INDEX IF NOT EXISTS incidents_updated ON incidents(updated_at);"
			 "CREATE INDEX IF NOT EXISTS incidents_open ON incidents(id)"
			 " WHERE resolved_at IS NULL;"
			 "CREATE TABLE IF NOT EXISTS events ("
			 " id INTEGER PRIMARY KEY AUTOINCREMENT, incident INTEGER NOT NULL,"
			 " ts_ms INTEGER NOT NULL, kernel TEXT NOT NULL, kind TEXT NOT NULL,"
			 " subject TEXT NOT NULL, detail TEXT);"
			 "CREATE INDEX IF NOT EXISTS events_incident ON events(incident, id);"
			 "CREATE TABLE IF NOT EXISTS actions ("
			 " id INTEGER PRIMARY KEY AUTOINCREMENT, incident INTEGER,"
			 " kernel TEXT NOT NULL, at_ms INTEGER NOT NULL, step INTEGER NOT NULL,"
			 " playbook TEXT NOT NULL, verdict TEXT NOT NULL, detail TEXT,"
			 " outcome TEXT, verified INTEGER, healer_incident INTEGER,"
			 " finished_ms INTEGER);"
			 "CREATE INDEX IF NOT EXISTS actions_incident ON actions(incident, id);"
			 "CREATE INDEX IF NOT EXISTS actions_kernel ON actions(kernel, id);"
			 /* The ladder's place per kernel and the budget, so a restart
			  * of this kernel neither drops a kernel back to the bottom
			  * nor refills the budget (a heal loop stays bounded). */
			 "CREATE TABLE IF NOT EXISTS ladder ("
			 " kernel TEXT PRIMARY KEY, step INTEGER NOT NULL,"
			 " last_action_ms INTEGER NOT NULL, actions INTEGER NOT NULL,"
			 " holds INTEGER NOT NULL, stopped INTEGER NOT NULL) WITHOUT ROWID;"
			 "CREATE TABLE IF NOT EXISTS budget ("
			 " id INTEGER PRIMARY KEY CHECK (id = 1), tokens REAL NOT NULL,"
			 " last_ms INTEGER NOT NULL, spent INTEGER NOT NULL, refused INTEGER NOT NULL);",
			 NULL, NULL, NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, "creating the schema");
	return 0;
}

int sh_store_max_id(sqlite3 *db, int64_t *out, sdk_err *err)
{
	return sdk_db_count(db, "SELECT coalesce(max(id), 0) FROM incidents", NULL, out,
			    "reading the incidents", err);
}

static json_t *kernels_json(const sh_incident *inc)
{
	json_t *a = json_array();
	for (size_t i = 0; i < inc->n_kernels; i++)
		json_array_append_new(a, json_string(inc->kernels[i]));
	return a;
}

int sh_store_save(sqlite3 *db, const sh_incident *inc, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(
		db,
		"INSERT INTO incidents (id, kernel, family, opened_at, updated_at, resolved_at,"
		" title, kernels, events, crashes, flapping, cause) VALUES (?,?,?,?,?,?,?,?,?,?,?,"
		" json_object('kernel', ?2, 'family', ?3, 'hints', json('[]')))"
		" ON CONFLICT(id) DO UPDATE SET updated_at = excluded.updated_at,"
		" resolved_at = excluded.resolved_at, kernels = excluded.kernels,"
		" events = excluded.events, crashes = excluded.crashes,"
		" flapping = excluded.flapping",
		&st, err);
	if (rc < 0)
		return rc;
	json_t *kj = kernels_json(inc);
	char *kernels = json_dumps(kj, JSON_COMPACT);
	json_decref(kj);
	sqlite3_bind_int64(st, 1, inc->id);
	sqlite3_bind_text(st, 2, inc->kernel, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, sh_family_name(inc->family), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, inc->opened_at);
	sqlite3_bind_int64(st, 5, inc->updated_at);
	if (inc->resolved_at)
		sqlite3_bind_int64(st, 6, inc->resolved_at);
	else
		sqlite3_bind_null(st, 6);
	sqlite3_bind_text(st, 7, inc->title, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, kernels ? kernels : "[]", -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 9, inc->events);
	sqlite3_bind_int64(st, 10, inc->crashes);
	sqlite3_bind_int(st, 11, inc->flapping);
	free(kernels);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : sdk_db_fail(db, err, "saving an incident");
	sqlite3_finalize(st);
	return rc;
}

int sh_store_add_hints(sqlite3 *db, int64_t id, json_t *hints, sdk_err *err)
{
	if (!json_array_size(hints))
		return 0;
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db, "SELECT cause FROM incidents WHERE id = ?", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	json_t *cause = NULL;
	if (sqlite3_step(st) == SQLITE_ROW)
		cause = json_loads(sdk_db_text(st, 0), 0, NULL);
	sqlite3_finalize(st);
	if (!json_is_object(cause)) {
		json_decref(cause);
		return sdk_fail(err, SDK_ENOTFOUND, "no incident %lld", (long long)id);
	}
	json_t *have = json_object_get(cause, "hints");
	if (!json_is_array(have)) {
		have = json_array();
		json_object_set_new(cause, "hints", have);
	}
	size_t i, j;
	json_t *h, *o;
	json_array_foreach(hints, i, h) {
		const char *kind = json_string_value(json_object_get(h, "kind"));
		bool replaced = false;
		json_array_foreach(have, j, o)
			if (kind && !strcmp(kind, json_string_value(json_object_get(o, "kind")) ?: "")) {
				json_array_set(have, j, h);
				replaced = true;
				break;
			}
		if (!replaced && json_array_size(have) < 16)
			json_array_append(have, h);
	}
	char *text = json_dumps(cause, JSON_COMPACT);
	json_decref(cause);
	rc = sdk_db_prepare(db, "UPDATE incidents SET cause = ? WHERE id = ?", &st, err);
	if (rc == 0) {
		sqlite3_bind_text(st, 1, text ? text : "{}", -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 2, id);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 : sdk_db_fail(db, err, "saving hints");
		sqlite3_finalize(st);
	}
	free(text);
	return rc;
}

int sh_store_merge(sqlite3 *db, int64_t from, int64_t into, int64_t now_ms, sdk_err *err)
{
	/* The hints first: read before the cause is rewritten. */
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db, "SELECT json_extract(cause, '$.hints') FROM incidents WHERE id = ?",
				&st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, from);
	json_t *hints = sqlite3_step(st) == SQLITE_ROW ? json_loads(sdk_db_text(st, 0), 0, NULL)
						       : NULL;
	sqlite3_finalize(st);
	/* A savepoint: it nests in the batch's transaction (batch.h). */
	if (sqlite3_exec(db, "SAVEPOINT sh_merge", NULL, NULL, NULL) != SQLITE_OK) {
		json_decref(hints);
		return sdk_db_fail(db, err, "merging an incident");
	}
	static const char *const moves[] = {
		("UPDATE incidents SET resolved_at = ?3, updated_at = ?3,"
		 " cause = json_set(cause, '$.merged_into', ?2) WHERE id = ?1"),
		"UPDATE events SET incident = ?2 WHERE incident = ?1",
		"UPDATE actions SET incident = ?2 WHERE incident = ?1",
	};
	for (size_t i = 0; rc == 0 && i < sizeof moves / sizeof *moves; i++) {
		rc = sdk_db_prepare(db, moves[i], &st, err);
		if (rc < 0)
			break;
		sqlite3_bind_int64(st, 1, from);
		sqlite3_bind_int64(st, 2, into);
		sqlite3_bind_int64(st, 3, now_ms);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 : sdk_db_fail(db, err, "merging an incident");
		sqlite3_finalize(st);
	}
	if (rc == 0 && json_is_array(hints))
		rc = sh_store_add_hints(db, into, hints, err);
	json_decref(hints);
	if (rc == 0 && sqlite3_exec(db, "RELEASE sh_merge", NULL, NULL, NULL) != SQLITE_OK)
		rc = sdk_db_fail(db, err, "merging an incident");
	if (rc < 0) {
		sqlite3_exec(db, "ROLLBACK TO sh_merge", NULL, NULL, NULL);
		sqlite3_exec(db, "RELEASE sh_merge", NULL, NULL, NULL);
	}
	return rc;
}

static void bind_json(sqlite3_stmt *st, int i, json_t *v)
{
	char *t = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	if (t)
		sqlite3_bind_text(st, i, t, -1, free);
	else
		sqlite3_bind_null(st, i);
}

int sh_store_event(sqlite3 *db, int64_t incident, int64_t ts_ms, const char *kernel,
		   const char *kind, const char *subject, json_t *detail, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
				"INSERT INTO events (incident, ts_ms, kernel, kind, subject, detail)"
				" VALUES (?,?,?,?,?,?)",
				&st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, incident);
	sqlite3_bind_int64(st, 2, ts_ms);
	sqlite3_bind_text(st, 3, kernel, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, subject ? subject : "", -1, SQLITE_STATIC);
	bind_json(st, 6, detail);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : sdk_db_fail(db, err, "saving an event");
	sqlite3_finalize(st);
	return rc;
}

int sh_store_action(sqlite3 *db, int64_t incident, const char *kernel, int64_t at_ms, int step,
		    const char *playbook, const char *verdict, json_t *detail, int64_t *id,
		    sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
				"INSERT INTO actions (incident, kernel, at_ms, step, playbook, verdict,"
				" detail) VALUES (?,?,?,?,?,?,?)",
				&st, err);
	if (rc < 0)
		return rc;
	if (incident > 0)
		sqlite3_bind_int64(st, 1, incident);
	else
		sqlite3_bind_null(st, 1);
	sqlite3_bind_text(st, 2, kernel, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, at_ms);
	sqlite3_bind_int(st, 4, step);
	sqlite3_bind_text(st, 5, playbook, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, verdict, -1, SQLITE_STATIC);
	bind_json(st, 7, detail);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : sdk_db_fail(db, err, "saving an action");
	sqlite3_finalize(st);
	if (rc == 0 && id)
		*id = sqlite3_last_insert_rowid(db);
	return rc;
}

int sh_store_action_learning(sqlite3 *db, int64_t id, const char *playbook, json_t *learning,
			     sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
				"UPDATE actions SET playbook = ?, detail = json_set(coalesce(detail,"
				" '{}'), '$.learning', json(?)) WHERE id = ?",
				&st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, playbook, -1, SQLITE_STATIC);
	bind_json(st, 2, learning);
	sqlite3_bind_int64(st, 3, id);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : sdk_db_fail(db, err, "saving a learning decision");
	sqlite3_finalize(st);
	return rc;
}

int sh_store_action_decision(sqlite3 *db, int64_t id, int64_t *decision, char *arm, size_t n,
			     sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
				"SELECT json_extract(detail, '$.learning.decision_id'), playbook"
				" FROM actions WHERE id = ?",
				&st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	*decision = 0;
	if (n)
		arm[0] = 0;
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_INTEGER) {
		*decision = sqlite3_column_int64(st, 0);
		snprintf(arm, n, "%s", sdk_db_text(st, 1));
	}
	rc = step == SQLITE_ROW || step == SQLITE_DONE ? 0
						       : sdk_db_fail(db, err, "reading an action");
	sqlite3_finalize(st);
	return rc;
}

int sh_store_outcome(sqlite3 *db, int64_t id, const char *outcome, bool verified,
		     int64_t healer_incident, int64_t at_ms, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
				"UPDATE actions SET outcome = ?, verified = ?, healer_incident = ?,"
				" finished_ms = ? WHERE id = ? AND outcome IS NULL",
				&st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, outcome, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, verified);
	if (healer_incident > 0)
		sqlite3_bind_int64(st, 3, healer_incident);
	else
		sqlite3_bind_null(st, 3);
	sqlite3_bind_int64(st, 4, at_ms);
	sqlite3_bind_int64(st, 5, id);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : sdk_db_fail(db, err, "saving an outcome");
	sqlite3_finalize(st);
	if (rc == 0 && sqlite3_changes(db) == 0)
		return sdk_fail(err, SDK_ENOTFOUND, "no action %lld waiting for its outcome",
				(long long)id);
	return rc;
}

int sh_store_last_action(sqlite3 *db, const char *kernel, int64_t *id, sdk_err *err)
{
	int rc = sdk_db_count(db,
			      "SELECT coalesce(max(id), 0) FROM actions WHERE kernel = ? AND"
			      " verdict = 'act' AND outcome IS NULL",
			      kernel, id, "reading the actions", err);
	if (rc == 0 && *id == 0)
		return sdk_fail(err, SDK_ENOTFOUND, "no action on %s waiting for its outcome", kernel);
	return rc;
}

#define INCIDENT_COLS                                                                        \
	"id, kernel, family, opened_at, updated_at, resolved_at, title, kernels, events,"    \
	" crashes, flapping, cause"

static json_t *incident_row(sqlite3_stmt *st)
{
	json_t *kernels = json_loads(sdk_db_text(st, 7), 0, NULL);
	json_t *cause = json_loads(sdk_db_text(st, 11), 0, NULL);
	return json_pack("{s:I, s:s, s:s, s:s, s:I, s:I, s:o, s:s, s:o, s:o, s:I, s:I, s:b}", "id",
			 (json_int_t)sqlite3_column_int64(st, 0), "kernel", sdk_db_text(st, 1),
			 "family", sdk_db_text(st, 2), "state",
			 sqlite3_column_type(st, 5) == SQLITE_NULL ? "open" : "resolved",
			 "opened_at", (json_int_t)sqlite3_column_int64(st, 3), "updated_at",
			 (json_int_t)sqlite3_column_int64(st, 4), "resolved_at",
			 sqlite3_column_type(st, 5) == SQLITE_NULL
				 ? json_null()
				 : json_integer(sqlite3_column_int64(st, 5)),
			 "title", sdk_db_text(st, 6), "kernels",
			 json_is_array(kernels) ? kernels : (json_decref(kernels), json_array()),
			 "cause", json_is_object(cause) ? cause : (json_decref(cause), json_object()),
			 "events", (json_int_t)sqlite3_column_int64(st, 8), "crashes",
			 (json_int_t)sqlite3_column_int64(st, 9), "flapping",
			 sqlite3_column_int(st, 10) != 0);
}

int sh_store_open_incidents(sqlite3 *db, void (*fn)(const sh_incident *, void *), void *arg,
			    sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
				"SELECT " INCIDENT_COLS " FROM incidents WHERE resolved_at IS NULL"
				" ORDER BY id LIMIT 128",
				&st, err);
	if (rc < 0)
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		sh_incident inc = { .id = sqlite3_column_int64(st, 0) };
		snprintf(inc.kernel, sizeof inc.kernel, "%s", sdk_db_text(st, 1));
		const char *fam = sdk_db_text(st, 2);
		for (int f = 0; f < SH_FAM_COUNT; f++)
			if (!strcmp(fam, sh_family_name((enum sh_family)f)))
				inc.family = (enum sh_family)f;
		inc.opened_at = sqlite3_column_int64(st, 3);
		inc.updated_at = sqlite3_column_int64(st, 4);
		snprintf(inc.title, sizeof inc.title, "%s", sdk_db_text(st, 6));
		json_t *ks = json_loads(sdk_db_text(st, 7), 0, NULL);
		size_t i;
		json_t *k;
		json_array_foreach(ks, i, k) {
			if (inc.n_kernels < SH_INC_KERNELS_MAX && json_is_string(k))
				snprintf(inc.kernels[inc.n_kernels++], SH_NAME_MAX, "%s",
					 json_string_value(k));
		}
		json_decref(ks);
		inc.events = (unsigned)sqlite3_column_int64(st, 8);
		inc.crashes = (unsigned)sqlite3_column_int64(st, 9);
		inc.flapping = sqlite3_column_int(st, 10) != 0;
		fn(&inc, arg);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : sdk_db_fail(db, err, "reading open incidents");
}

int sh_store_list(sqlite3 *db, const sh_filter *f, json_t **out, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(
		db,
		"SELECT " INCIDENT_COLS " FROM incidents WHERE updated_at >= ?1"
		" AND (?2 IS NULL OR kernel = ?2 OR EXISTS (SELECT 1 FROM json_each(kernels)"
		" WHERE value = ?2))"
		" AND (?3 < 0 OR (?3 = 0 AND resolved_at IS NULL) OR (?3 = 1 AND resolved_at IS NOT NULL))"
		" ORDER BY id DESC LIMIT ?4",
		&st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, f->since_ms);
	if (f->kernel)
		sqlite3_bind_text(st, 2, f->kernel, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 2);
	sqlite3_bind_int(st, 3, f->state);
	sqlite3_bind_int(st, 4, (int)(f->limit && f->limit <= SH_PAGE_MAX ? f->limit : SH_PAGE_MAX));
	json_t *list = json_array();
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(list, incident_row(st));
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		json_decref(list);
		return sdk_db_fail(db, err, "listing incidents");
	}
	*out = json_pack("{s:o}", "incidents", list);
	return 0;
}

static json_t *parse_or_null(const char *text)
{
	json_t *v = text[0] ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
	return v ? v : json_null();
}

static int detail_rows(sqlite3 *db, const char *sql, int64_t id, bool actions, json_t *into,
		       sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db, sql, &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int(st, 2, SH_DETAIL_MAX);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *row;
		if (!actions)
			row = json_pack("{s:I, s:I, s:s, s:s, s:s, s:o}", "id",
					(json_int_t)sqlite3_column_int64(st, 0), "ts_ms",
					(json_int_t)sqlite3_column_int64(st, 1), "kernel",
					sdk_db_text(st, 2), "kind", sdk_db_text(st, 3), "subject",
					sdk_db_text(st, 4), "detail", parse_or_null(sdk_db_text(st, 5)));
		else
			row = json_pack(
				"{s:I, s:s, s:I, s:i, s:s, s:s, s:o, s:o, s:o, s:o, s:o}", "id",
				(json_int_t)sqlite3_column_int64(st, 0), "kernel", sdk_db_text(st, 1),
				"at_ms", (json_int_t)sqlite3_column_int64(st, 2), "step",
				sqlite3_column_int(st, 3), "playbook", sdk_db_text(st, 4), "verdict",
				sdk_db_text(st, 5), "detail", parse_or_null(sdk_db_text(st, 6)),
				"outcome",
				sqlite3_column_type(st, 7) == SQLITE_NULL ? json_null()
									  : json_string(sdk_db_text(st, 7)),
				"verified",
				sqlite3_column_type(st, 8) == SQLITE_NULL
					? json_null()
					: json_boolean(sqlite3_column_int(st, 8)),
				"healer_incident",
				sqlite3_column_type(st, 9) == SQLITE_NULL
					? json_null()
					: json_integer(sqlite3_column_int64(st, 9)),
				"finished_ms",
				sqlite3_column_type(st, 10) == SQLITE_NULL
					? json_null()
					: json_integer(sqlite3_column_int64(st, 10)));
		json_array_append_new(into, row);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : sdk_db_fail(db, err, "reading an incident");
}

int sh_store_get(sqlite3 *db, int64_t id, json_t **out, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db, "SELECT " INCIDENT_COLS " FROM incidents WHERE id = ?", &st,
				err);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	json_t *inc = rc == SQLITE_ROW ? incident_row(st) : NULL;
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return sdk_fail(err, SDK_ENOTFOUND, "no incident %lld", (long long)id);
	if (!inc)
		return sdk_db_fail(db, err, "reading an incident");
	json_t *events = json_array(), *actions = json_array();
	json_object_set_new(inc, "event_list", events);
	json_object_set_new(inc, "actions", actions);
	rc = detail_rows(db,
			 "SELECT id, ts_ms, kernel, kind, subject, coalesce(detail, '') FROM events"
			 " WHERE incident = ? ORDER BY id LIMIT ?",
			 id, false, events, err);
	if (rc == 0)
		rc = detail_rows(db,
				 "SELECT id, kernel, at_ms, step, playbook, verdict,"
				 " coalesce(detail, ''), outcome, verified, healer_incident,"
				 " finished_ms FROM actions WHERE incident = ? ORDER BY id LIMIT ?",
				 id, true, actions, err);
	if (rc < 0) {
		json_decref(inc);
		return rc;
	}
	*out = inc;
	return 0;
}

int sh_store_counts(sqlite3 *db, int64_t *open, int64_t *resolved, sdk_err *err)
{
	int rc = sdk_db_count(db, "SELECT count(*) FROM incidents WHERE resolved_at IS NULL", NULL,
			      open, "counting incidents", err);
	return rc ? rc
		  : sdk_db_count(db, "SELECT count(*) FROM incidents WHERE resolved_at IS NOT NULL",
				 NULL, resolved, "counting incidents", err);
}

int sh_store_ladder_save(sqlite3 *db, const sh_kstate *ks, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
				"INSERT OR REPLACE INTO ladder (kernel, step, last_action_ms, actions,"
				" holds, stopped) VALUES (?, ?, ?, ?, ?, ?)",
				&st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, ks->name, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, ks->step);
	sqlite3_bind_int64(st, 3, ks->last_action_ms);
	sqlite3_bind_int64(st, 4, ks->actions);
	sqlite3_bind_int64(st, 5, ks->holds);
	sqlite3_bind_int(st, 6, ks->stopped);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : sdk_db_fail(db, err, "saving the ladder");
	sqlite3_finalize(st);
	return rc;
}

int sh_store_ladder_load(sqlite3 *db, void (*fn)(const sh_kstate *, void *), void *arg,
			 sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
				"SELECT kernel, step, last_action_ms, actions, holds, stopped FROM ladder",
				&st, err);
	if (rc < 0)
		return rc;
	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		sh_kstate ks = { .step = sqlite3_column_int(st, 1),
				 .last_action_ms = sqlite3_column_int64(st, 2),
				 .actions = (unsigned)sqlite3_column_int64(st, 3),
				 .holds = (unsigned)sqlite3_column_int64(st, 4),
				 .stopped = sqlite3_column_int(st, 5) != 0 };
		snprintf(ks.name, sizeof ks.name, "%s", sdk_db_text(st, 0));
		fn(&ks, arg);
	}
	rc = step == SQLITE_DONE ? 0 : sdk_db_fail(db, err, "reading the ladder");
	sqlite3_finalize(st);
	return rc;
}

int sh_store_budget_save(sqlite3 *db, const sh_budget *b, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
				"INSERT OR REPLACE INTO budget (id, tokens, last_ms, spent, refused)"
				" VALUES (1, ?, ?, ?, ?)",
				&st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_double(st, 1, b->bucket.tokens);
	sqlite3_bind_int64(st, 2, b->bucket.last_ms);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)b->spent);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)b->refused);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : sdk_db_fail(db, err, "saving the budget");
	sqlite3_finalize(st);
	return rc;
}

int sh_store_budget_load(sqlite3 *db, sh_budget *b, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db, "SELECT tokens, last_ms, spent, refused FROM budget WHERE id = 1",
				&st, err);
	if (rc < 0)
		return rc;
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		double t = sqlite3_column_double(st, 0);
		b->bucket.tokens = t < 0 ? 0 : t > b->bucket.capacity ? b->bucket.capacity : t;
		b->bucket.last_ms = sqlite3_column_int64(st, 1);
		b->spent = (unsigned long long)sqlite3_column_int64(st, 2);
		b->refused = (unsigned long long)sqlite3_column_int64(st, 3);
		rc = 1;
	} else {
		rc = step == SQLITE_DONE ? 0 : sdk_db_fail(db, err, "reading the budget");
	}
	sqlite3_finalize(st);
	return rc;
}
