#include "kernels/compliance/store.h"

#include "sdk/db.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Version 2: a waiver's change request in governance and the approvals it
 * had (the evidence), since waivers are approved there. */
const sdk_mig_step cmp_migrations[CMP_SCHEMA_VERSION] = {
	{ .what = "(stamp: an unversioned file has version 1's tables)" },
	{ .sql = "ALTER TABLE cmp_waivers ADD COLUMN change_request INTEGER NULL;"
		 "ALTER TABLE cmp_waivers ADD COLUMN approvals TEXT NULL;",
	  .what = "(cmp_waivers.change_request and approvals: waivers approved in governance)" },
};

int cmp_store_init(sqlite3 *db, sdk_err *err)
{
	static const char *const schema =
		"CREATE TABLE IF NOT EXISTS cmp_profiles(name TEXT PRIMARY KEY,"
		" body TEXT NOT NULL, updated_ms INTEGER NOT NULL);"
		"CREATE TABLE IF NOT EXISTS cmp_scans(id INTEGER PRIMARY KEY AUTOINCREMENT,"
		" uuid TEXT NOT NULL, report_uuid TEXT NOT NULL, profile TEXT NOT NULL,"
		" profile_title TEXT NOT NULL, profile_version TEXT NOT NULL,"
		" trigger TEXT NOT NULL, started_ms INTEGER NOT NULL, ended_ms INTEGER NOT NULL,"
		" summary TEXT NOT NULL, results TEXT NOT NULL, record TEXT NOT NULL,"
		" log_index INTEGER, leaf_hash TEXT);"
		"CREATE INDEX IF NOT EXISTS cmp_scans_profile ON cmp_scans(profile, id);"
		"CREATE TABLE IF NOT EXISTS cmp_waivers(id INTEGER PRIMARY KEY AUTOINCREMENT,"
		" control_id TEXT NOT NULL, reason TEXT NOT NULL, approver TEXT NOT NULL,"
		" requested_by TEXT, created_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL,"
		" change_request INTEGER NULL, approvals TEXT NULL);" /* version 2 */
		"CREATE TABLE IF NOT EXISTS cmp_settings(name TEXT PRIMARY KEY,"
		" value INTEGER NOT NULL);";
	if (sqlite3_exec(db, schema, NULL, NULL, NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, "creating the tables");
	/* One waiver per approved request, however often the executor asks. */
	if (sqlite3_exec(db,
			 "CREATE UNIQUE INDEX IF NOT EXISTS cmp_waivers_change_request"
			 " ON cmp_waivers(change_request)",
			 NULL, NULL, NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, "creating an index");
	return 0;
}

static int step_done(sqlite3 *db, sqlite3_stmt *st, sdk_err *err, const char *what)
{
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return sdk_db_fail(db, err, what);
	return 0;
}

int cmp_profile_put(sqlite3 *db, const char *name, const json_t *body, int64_t now_ms,
		    sdk_err *err)
{
	char *text = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
	sqlite3_stmt *st;
	if (!text)
		return sdk_fail(err, SDK_EIO, "out of memory");
	if (sqlite3_prepare_v2(db,
			       "INSERT INTO cmp_profiles(name, body, updated_ms) VALUES(?1, ?2, ?3)"
			       " ON CONFLICT(name) DO UPDATE SET body = ?2, updated_ms = ?3",
			       -1, &st, NULL) != SQLITE_OK) {
		free(text);
		return sdk_db_fail(db, err, "storing a profile");
	}
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, text, -1, free);
	sqlite3_bind_int64(st, 3, now_ms);
	return step_done(db, st, err, "storing a profile");
}

int cmp_profile_get(sqlite3 *db, const char *name, json_t **out, sdk_err *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "SELECT body, updated_ms FROM cmp_profiles WHERE name = ?1", -1,
			       &st, NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, "reading a profile");
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			return sdk_db_fail(db, err, "reading a profile");
		return sdk_fail(err, SDK_ENOTFOUND, "no profile named %s", name);
	}
	*out = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
	sqlite3_finalize(st);
	if (!*out)
		return sdk_fail(err, SDK_ECORRUPT, "profile %s is not JSON", name);
	return 0;
}

int cmp_profile_list(sqlite3 *db, json_t **out, sdk_err *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "SELECT name, json_extract(body, '$.title'),"
			       " json_array_length(body, '$.controls'), updated_ms"
			       " FROM cmp_profiles ORDER BY name",
			       -1, &st, NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, "listing profiles");
	json_t *a = json_array();
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(a, json_pack("{s:s, s:s, s:I, s:I}", "name",
						   (const char *)sqlite3_column_text(st, 0), "title",
						   (const char *)sqlite3_column_text(st, 1), "controls",
						   (json_int_t)sqlite3_column_int64(st, 2),
						   "updated_ms",
						   (json_int_t)sqlite3_column_int64(st, 3)));
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		json_decref(a);
		return sdk_db_fail(db, err, "listing profiles");
	}
	*out = a;
	return 0;
}

int cmp_profile_delete(sqlite3 *db, const char *name, sdk_err *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "DELETE FROM cmp_profiles WHERE name = ?1", -1, &st, NULL) !=
	    SQLITE_OK)
		return sdk_db_fail(db, err, "deleting a profile");
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int rc = step_done(db, st, err, "deleting a profile");
	if (rc == 0 && sqlite3_changes(db) == 0)
		return sdk_fail(err, SDK_ENOTFOUND, "no profile named %s", name);
	return rc;
}

int cmp_scan_insert(sqlite3 *db, const json_t *scan, const char *record, unsigned keep,
		    int64_t *id, sdk_err *err)
{
	char *results = json_dumps(json_object_get(scan, "results"), JSON_COMPACT);
	char *summary = json_dumps(json_object_get(scan, "summary"), JSON_COMPACT);
	sqlite3_stmt *st = NULL;
	if (!results || !summary ||
	    sqlite3_prepare_v2(db,
			       "INSERT INTO cmp_scans(uuid, report_uuid, profile, profile_title,"
			       " profile_version, trigger, started_ms, ended_ms, summary, results,"
			       " record) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
			       -1, &st, NULL) != SQLITE_OK) {
		free(results);
		free(summary);
		return st || !results || !summary ? sdk_fail(err, SDK_EIO, "out of memory")
						  : sdk_db_fail(db, err, "storing a scan");
	}
	static const char *const texts[] = { "uuid", "report_uuid", "profile", "profile_title",
					     "profile_version", "trigger" };
	for (int i = 0; i < 6; i++) {
		const char *v = json_string_value(json_object_get(scan, texts[i]));
		sqlite3_bind_text(st, i + 1, v ? v : "", -1, SQLITE_STATIC);
	}
	sqlite3_bind_int64(st, 7, json_integer_value(json_object_get(scan, "started_ms")));
	sqlite3_bind_int64(st, 8, json_integer_value(json_object_get(scan, "ended_ms")));
	sqlite3_bind_text(st, 9, summary, -1, free);
	sqlite3_bind_text(st, 10, results, -1, free);
	sqlite3_bind_text(st, 11, record, -1, SQLITE_STATIC);
	int rc = step_done(db, st, err, "storing a scan");
	if (rc < 0)
		return rc;
	*id = sqlite3_last_insert_rowid(db);
	/* Old scans go; ones not yet in the log stay until they are. */
	if (sqlite3_prepare_v2(db,
			       "DELETE FROM cmp_scans WHERE id <= ?1 - ?2 AND log_index IS NOT NULL",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, *id);
		sqlite3_bind_int64(st, 2, keep);
		step_done(db, st, NULL, "pruning scans");
	}
	return 0;
}

int cmp_scan_set_logged(sqlite3 *db, int64_t id, int64_t index, const char *leaf_hash,
			sdk_err *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "UPDATE cmp_scans SET log_index = ?2, leaf_hash = ?3 WHERE id = ?1",
			       -1, &st, NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, "recording a log index");
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, index);
	sqlite3_bind_text(st, 3, leaf_hash, -1, SQLITE_STATIC);
	return step_done(db, st, err, "recording a log index");
}

#define SCAN_COLS                                                                              \
	"id, uuid, report_uuid, profile, profile_title, profile_version, trigger, started_ms," \
	" ended_ms, summary, log_index, leaf_hash, results, record"

static json_t *scan_row(sqlite3_stmt *st, bool full)
{
	json_t *s = json_pack(
		"{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "id",
		(json_int_t)sqlite3_column_int64(st, 0), "uuid",
		(const char *)sqlite3_column_text(st, 1), "report_uuid",
		(const char *)sqlite3_column_text(st, 2), "profile",
		(const char *)sqlite3_column_text(st, 3), "profile_title",
		(const char *)sqlite3_column_text(st, 4), "profile_version",
		(const char *)sqlite3_column_text(st, 5), "trigger",
		(const char *)sqlite3_column_text(st, 6), "started_ms",
		(json_int_t)sqlite3_column_int64(st, 7), "ended_ms",
		(json_int_t)sqlite3_column_int64(st, 8));
	if (!s)
		return NULL;
	json_object_set_new(s, "summary", json_loads((const char *)sqlite3_column_text(st, 9), 0, NULL));
	bool logged = sqlite3_column_type(st, 10) != SQLITE_NULL;
	json_object_set_new(s, "log_index",
			    logged ? json_integer(sqlite3_column_int64(st, 10)) : json_null());
	json_object_set_new(s, "leaf_hash",
			    logged ? json_string((const char *)sqlite3_column_text(st, 11))
				   : json_null());
	if (full) {
		json_object_set_new(s, "results",
				    json_loads((const char *)sqlite3_column_text(st, 12), 0, NULL));
		json_object_set_new(s, "log_record",
				    json_string((const char *)sqlite3_column_text(st, 13)));
	}
	return s;
}

int cmp_scan_get(sqlite3 *db, int64_t id, json_t **out, sdk_err *err)
{
	sqlite3_stmt *st;
	const char *sql = id ? "SELECT " SCAN_COLS " FROM cmp_scans WHERE id = ?1"
			     : "SELECT " SCAN_COLS " FROM cmp_scans ORDER BY id DESC LIMIT 1";
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, "reading a scan");
	if (id)
		sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			return sdk_db_fail(db, err, "reading a scan");
		return id ? sdk_fail(err, SDK_ENOTFOUND, "no scan %lld", (long long)id)
			  : sdk_fail(err, SDK_ENOTFOUND, "no scan yet");
	}
	*out = scan_row(st, true);
	sqlite3_finalize(st);
	return *out ? 0 : sdk_fail(err, SDK_EIO, "out of memory");
}

int cmp_scan_list(sqlite3 *db, unsigned limit, int64_t before_id, json_t **out, sdk_err *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "SELECT " SCAN_COLS " FROM cmp_scans WHERE ?1 = 0 OR id < ?1"
			       " ORDER BY id DESC LIMIT ?2",
			       -1, &st, NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, "listing scans");
	sqlite3_bind_int64(st, 1, before_id);
	sqlite3_bind_int(st, 2, (int)limit);
	json_t *a = json_array();
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(a, scan_row(st, false));
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		json_decref(a);
		return sdk_db_fail(db, err, "listing scans");
	}
	*out = a;
	return 0;
}

int cmp_scan_previous(sqlite3 *db, const char *profile, int64_t before_id, json_t **out,
		      sdk_err *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "SELECT " SCAN_COLS " FROM cmp_scans WHERE profile = ?1"
			       " AND (?2 = 0 OR id < ?2) ORDER BY id DESC LIMIT 1",
			       -1, &st, NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, "reading the previous scan");
	sqlite3_bind_text(st, 1, profile, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, before_id);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			return sdk_db_fail(db, err, "reading the previous scan");
		return sdk_fail(err, SDK_ENOTFOUND, "no earlier scan of %s", profile);
	}
	*out = scan_row(st, true);
	sqlite3_finalize(st);
	return *out ? 0 : sdk_fail(err, SDK_EIO, "out of memory");
}

int cmp_scan_unlogged(sqlite3 *db, int64_t *id, char **record, sdk_err *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "SELECT id, record FROM cmp_scans WHERE log_index IS NULL"
			       " ORDER BY id LIMIT 1",
			       -1, &st, NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, "reading unlogged scans");
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			return sdk_db_fail(db, err, "reading unlogged scans");
		return sdk_fail(err, SDK_ENOTFOUND, "every scan is in the log");
	}
	*id = sqlite3_column_int64(st, 0);
	*record = strdup((const char *)sqlite3_column_text(st, 1));
	sqlite3_finalize(st);
	return *record ? 0 : sdk_fail(err, SDK_EIO, "out of memory");
}

int64_t cmp_scan_last_ms(sqlite3 *db)
{
	sqlite3_stmt *st;
	int64_t v = 0;
	if (sqlite3_prepare_v2(db, "SELECT max(started_ms) FROM cmp_scans WHERE trigger = 'schedule'",
			       -1, &st, NULL) != SQLITE_OK)
		return 0;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

int cmp_waiver_insert(sqlite3 *db, const cmp_waiver_new *w, int64_t *id, sdk_err *err)
{
	char *approvals = w->approvals ? json_dumps(w->approvals, JSON_COMPACT) : NULL;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "INSERT INTO cmp_waivers(control_id, reason, approver, requested_by,"
			       " created_ms, expires_ms, change_request, approvals)"
			       " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
			       -1, &st, NULL) != SQLITE_OK) {
		free(approvals);
		return sdk_db_fail(db, err, "storing a waiver");
	}
	sqlite3_bind_text(st, 1, w->control_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, w->reason, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, w->approver, -1, SQLITE_STATIC);
	if (w->requested_by)
		sqlite3_bind_text(st, 4, w->requested_by, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, w->created_ms);
	sqlite3_bind_int64(st, 6, w->expires_ms);
	if (w->change_request > 0)
		sqlite3_bind_int64(st, 7, w->change_request);
	if (approvals)
		sqlite3_bind_text(st, 8, approvals, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	free(approvals);
	if ((rc & 0xff) == SQLITE_CONSTRAINT)
		return sdk_fail(err, SDK_ECONFLICT, "change request %lld has its waiver already",
				(long long)w->change_request);
	if (rc != SQLITE_DONE)
		return sdk_db_fail(db, err, "storing a waiver");
	*id = sqlite3_last_insert_rowid(db);
	return 0;
}

static json_t *waiver_row(sqlite3_stmt *st)
{
	const char *by = (const char *)sqlite3_column_text(st, 4);
	json_t *w = json_pack("{s:I, s:s, s:s, s:s, s:o, s:I, s:I}", "id",
			      (json_int_t)sqlite3_column_int64(st, 0), "control_id",
			      (const char *)sqlite3_column_text(st, 1), "reason",
			      (const char *)sqlite3_column_text(st, 2), "approver",
			      (const char *)sqlite3_column_text(st, 3), "requested_by",
			      by ? json_string(by) : json_null(), "created_ms",
			      (json_int_t)sqlite3_column_int64(st, 5), "expires_ms",
			      (json_int_t)sqlite3_column_int64(st, 6));
	json_object_set_new(w, "change_request",
			    sqlite3_column_type(st, 7) == SQLITE_NULL
				    ? json_null()
				    : json_integer((json_int_t)sqlite3_column_int64(st, 7)));
	const char *ap = (const char *)sqlite3_column_text(st, 8);
	json_t *approvals = ap ? json_loads(ap, 0, NULL) : NULL;
	json_object_set_new(w, "approvals", approvals ? approvals : json_null());
	return w;
}

#define WAIVER_COLUMNS                                                                      \
	"SELECT id, control_id, reason, approver, requested_by, created_ms, expires_ms,"      \
	" change_request, approvals FROM cmp_waivers"

int cmp_waiver_list(sqlite3 *db, json_t **out, sdk_err *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, WAIVER_COLUMNS " ORDER BY id", -1, &st, NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, "listing waivers");
	json_t *a = json_array();
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(a, waiver_row(st));
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		json_decref(a);
		return sdk_db_fail(db, err, "listing waivers");
	}
	*out = a;
	return 0;
}

int cmp_waiver_of_request(sqlite3 *db, int64_t change_request, json_t **out, sdk_err *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, WAIVER_COLUMNS " WHERE change_request = ?1", -1, &st, NULL) !=
	    SQLITE_OK)
		return sdk_db_fail(db, err, "reading a waiver");
	sqlite3_bind_int64(st, 1, change_request);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*out = waiver_row(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return sdk_fail(err, SDK_ENOTFOUND, "no waiver of change request %lld",
				(long long)change_request);
	return rc == SQLITE_ROW ? 0 : sdk_db_fail(db, err, "reading a waiver");
}

int cmp_waiver_delete(sqlite3 *db, int64_t id, sdk_err *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "DELETE FROM cmp_waivers WHERE id = ?1", -1, &st, NULL) !=
	    SQLITE_OK)
		return sdk_db_fail(db, err, "deleting a waiver");
	sqlite3_bind_int64(st, 1, id);
	int rc = step_done(db, st, err, "deleting a waiver");
	if (rc == 0 && sqlite3_changes(db) == 0)
		return sdk_fail(err, SDK_ENOTFOUND, "no waiver %lld", (long long)id);
	return rc;
}

int64_t cmp_setting_get(sqlite3 *db, const char *name, int64_t def)
{
	sqlite3_stmt *st;
	int64_t v = def;
	if (sqlite3_prepare_v2(db, "SELECT value FROM cmp_settings WHERE name = ?1", -1, &st,
			       NULL) != SQLITE_OK)
		return def;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

int cmp_setting_set(sqlite3 *db, const char *name, int64_t value, sdk_err *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "INSERT INTO cmp_settings(name, value) VALUES(?1, ?2)"
			       " ON CONFLICT(name) DO UPDATE SET value = ?2",
			       -1, &st, NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, "storing a setting");
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, value);
	return step_done(db, st, err, "storing a setting");
}
