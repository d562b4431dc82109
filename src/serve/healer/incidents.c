#include "serve/healer/incidents.h"

#include "sdk/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int hl_incidents_init(sqlite3 *db, sdk_err *err)
{
	return sdk_db_exec(
		db,
		"CREATE TABLE IF NOT EXISTS incidents ("
		" id INTEGER PRIMARY KEY AUTOINCREMENT, started_ms INTEGER NOT NULL,"
		" component TEXT NOT NULL, trigger TEXT NOT NULL, playbook TEXT,"
		" outcome TEXT NOT NULL DEFAULT 'running', duration_ms REAL, body TEXT);"
		"CREATE INDEX IF NOT EXISTS incidents_component ON incidents(component, id);"
		/* A Grace that died mid-heal left these: say so rather than 'running'. */
		"UPDATE incidents SET outcome = 'interrupted' WHERE outcome = 'running';",
		err);
}

int64_t hl_incident_begin(sqlite3 *db, int64_t started_ms, const char *component,
			  const char *trigger)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "INSERT INTO incidents (started_ms, component, trigger) VALUES (?, ?, ?)",
			       -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(st, 1, started_ms);
	sqlite3_bind_text(st, 2, component, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, trigger, -1, SQLITE_STATIC);
	int64_t id = sqlite3_step(st) == SQLITE_DONE ? sqlite3_last_insert_rowid(db) : -1;
	sqlite3_finalize(st);
	if (id > 0 && id % 100 == 0) {
		char sql[96];
		snprintf(sql, sizeof sql, "DELETE FROM incidents WHERE id <= %lld",
			 (long long)(id - HL_INCIDENTS_KEEP));
		sqlite3_exec(db, sql, NULL, NULL, NULL);
	}
	return id;
}

int hl_incident_end(sqlite3 *db, int64_t id, json_t *inc)
{
	char *body = json_dumps(inc, JSON_COMPACT | JSON_REAL_PRECISION(9));
	if (!body)
		return -1;
	sqlite3_stmt *st;
	int rc = -1;
	if (sqlite3_prepare_v2(db,
			       "UPDATE incidents SET playbook = ?, outcome = ?, duration_ms = ?, body = ?"
			       " WHERE id = ?",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, json_string_value(json_object_get(inc, "playbook")), -1,
				  SQLITE_STATIC);
		sqlite3_bind_text(st, 2, json_string_value(json_object_get(inc, "outcome")), -1,
				  SQLITE_STATIC);
		sqlite3_bind_double(st, 3, json_number_value(json_object_get(inc, "duration_ms")));
		sqlite3_bind_text(st, 4, body, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, id);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
		sqlite3_finalize(st);
	}
	free(body);
	return rc;
}

/* A stored row as JSON: the body when finished, a stub while running. */
static json_t *row_json(sqlite3_stmt *st)
{
	const char *body = (const char *)sqlite3_column_text(st, 5);
	json_t *j = body ? json_loads(body, 0, NULL) : NULL;
	if (j)
		return j;
	return json_pack("{s:I, s:I, s:s, s:s, s:s}", "id", (json_int_t)sqlite3_column_int64(st, 0),
			 "started_ms", (json_int_t)sqlite3_column_int64(st, 1), "component",
			 (const char *)sqlite3_column_text(st, 2), "trigger",
			 (const char *)sqlite3_column_text(st, 3), "outcome",
			 (const char *)sqlite3_column_text(st, 4));
}

json_t *hl_incident_get(sqlite3 *db, int64_t id)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "SELECT id, started_ms, component, trigger, outcome, body FROM incidents"
			       " WHERE id = ?",
			       -1, &st, NULL) != SQLITE_OK)
		return NULL;
	sqlite3_bind_int64(st, 1, id);
	json_t *j = sqlite3_step(st) == SQLITE_ROW ? row_json(st) : NULL;
	sqlite3_finalize(st);
	return j;
}

json_t *hl_incident_list(sqlite3 *db, const char *component, const char *outcome,
			 int64_t before_id, unsigned limit)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "SELECT id, started_ms, component, trigger, outcome, body FROM incidents"
			       " WHERE (?1 IS NULL OR component = ?1) AND (?2 IS NULL OR outcome = ?2)"
			       " AND id < ?3 ORDER BY id DESC LIMIT ?4",
			       -1, &st, NULL) != SQLITE_OK)
		return NULL;
	if (component)
		sqlite3_bind_text(st, 1, component, -1, SQLITE_STATIC);
	if (outcome)
		sqlite3_bind_text(st, 2, outcome, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, before_id);
	sqlite3_bind_int(st, 4, (int)limit);
	json_t *out = json_array();
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(out, row_json(st));
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		json_decref(out);
		return NULL;
	}
	return out;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

json_t *hl_incident_stats(sqlite3 *db)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "SELECT playbook, outcome, duration_ms FROM incidents"
			       " WHERE playbook IS NOT NULL ORDER BY playbook",
			       -1, &st, NULL) != SQLITE_OK)
		return NULL;
	json_t *out = json_object();
	char current[64] = "";
	double *durations = NULL;
	size_t n = 0, cap = 0;
	unsigned healed = 0, failed = 0, refused = 0, other = 0;
	int rc;
	for (;;) {
		rc = sqlite3_step(st);
		const char *pb = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
		if (current[0] && (!pb || strcmp(pb, current))) {
			qsort(durations, n, sizeof *durations, cmp_double);
			double median = n % 2 ? durations[n / 2]
					      : (durations[n / 2 - 1] + durations[n / 2]) / 2;
			unsigned decided = healed + failed;
			json_object_set_new(
				out, current,
				json_pack("{s:i, s:i, s:i, s:i, s:i, s:o, s:f}", "runs", (int)n, "healed",
					  healed, "failed", failed, "refused", refused, "other", other,
					  "success_rate",
					  decided ? json_real((double)healed / decided) : json_null(),
					  "median_ms", median));
			n = healed = failed = refused = other = 0;
		}
		if (!pb)
			break;
		snprintf(current, sizeof current, "%s", pb);
		const char *outcome = (const char *)sqlite3_column_text(st, 1);
		healed += !strcmp(outcome, "healed");
		failed += !strcmp(outcome, "failed");
		refused += !strcmp(outcome, "refused");
		other += strcmp(outcome, "healed") && strcmp(outcome, "failed") &&
			 strcmp(outcome, "refused");
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			double *d = realloc(durations, cap * sizeof *d);
			if (!d)
				break;
			durations = d;
		}
		durations[n++] = sqlite3_column_double(st, 2);
	}
	free(durations);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		json_decref(out);
		return NULL;
	}
	return json_pack("{s:o}", "playbooks", out);
}
