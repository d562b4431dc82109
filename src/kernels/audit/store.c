#include "kernels/audit/store.h"

#include "sdk/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Whether `events` has a uid column (databases made before it was added do
 * not): 1, 0, or a negative sdk_status. */
static int has_uid(sqlite3 *db, sdk_err *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_table_info('events') WHERE name = 'uid'",
			       -1, &st, NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, "reading the events table");
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return sdk_db_fail(db, err, "reading the events table");
	return rc == SQLITE_ROW;
}

int aud_store_init(sqlite3 *db, sdk_err *err)
{
	if (sqlite3_exec(db,
			   "CREATE TABLE IF NOT EXISTS events ("
			   " id INTEGER PRIMARY KEY AUTOINCREMENT, ts_ms INTEGER NOT NULL,"
			   " actor TEXT NOT NULL, action TEXT NOT NULL, resource TEXT NOT NULL,"
			   " outcome TEXT NOT NULL, details TEXT, source_ip TEXT, log_index INTEGER);"
			   "CREATE INDEX IF NOT EXISTS events_actor ON events(actor, id);"
			   "CREATE INDEX IF NOT EXISTS events_action ON events(action, id);"
			   "CREATE INDEX IF NOT EXISTS events_resource ON events(resource, id);"
			   "CREATE INDEX IF NOT EXISTS events_ts ON events(ts_ms);"
			   "CREATE INDEX IF NOT EXISTS events_unlogged ON events(id) WHERE log_index IS NULL;"
			   /* Archival (docs/audit.md): events [first_id, last_id] went
			    * to an archive file and left this table. */
			   "CREATE TABLE IF NOT EXISTS archives ("
			   " last_id INTEGER PRIMARY KEY, first_id INTEGER NOT NULL,"
			   " events INTEGER NOT NULL, sha256 TEXT NOT NULL, file TEXT NOT NULL,"
			   " tree_size INTEGER NOT NULL, created_at INTEGER NOT NULL);",
			   NULL, NULL, NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, "creating the schema");
	int uid = has_uid(db, err);
	if (uid < 0)
		return uid;
	if (uid == 0 && sqlite3_exec(db, "ALTER TABLE events ADD COLUMN uid TEXT", NULL, NULL,
				     NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, "adding the uid column");
	/* A sender that resends what it is not sure was stored (the main
	 * process's outbox) names each event: stored once. */
	if (sqlite3_exec(db,
			 "CREATE UNIQUE INDEX IF NOT EXISTS events_uid ON events(uid)"
			 " WHERE uid IS NOT NULL;",
			 NULL, NULL, NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, "indexing uids");
	return 0;
}

static const char *check_string(json_t *ev, const char *key, size_t max, int required)
{
	json_t *v = json_object_get(ev, key);
	if (!v || json_is_null(v))
		return required ? "actor, action, resource and outcome are required strings" : NULL;
	if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > max)
		return required ? "actor, action, resource and outcome are non-empty strings of "
				  "bounded length"
				: "source_ip is a short string";
	return NULL;
}

const char *aud_event_check(json_t *ev)
{
	if (!json_is_object(ev))
		return "an event is a JSON object";
	const char *why;
	if ((why = check_string(ev, "actor", AUD_FIELD_MAX, 1)) ||
	    (why = check_string(ev, "action", AUD_ACTION_MAX, 1)) ||
	    (why = check_string(ev, "resource", AUD_ACTION_MAX, 1)) ||
	    (why = check_string(ev, "outcome", AUD_FIELD_MAX, 1)) ||
	    (why = check_string(ev, "source_ip", 64, 0)))
		return why;
	json_t *uid = json_object_get(ev, "uid");
	if (uid && !(json_is_string(uid) && json_string_length(uid) > 0 &&
		     json_string_length(uid) <= AUD_UID_MAX))
		return "uid is a string of 1 to 64 bytes";
	json_t *ts = json_object_get(ev, "ts_ms");
	if (ts && !(json_is_integer(ts) && json_integer_value(ts) > 0))
		return "ts_ms is a positive integer (unix milliseconds)";
	json_t *d = json_object_get(ev, "details");
	if (d) {
		char *s = json_dumps(d, JSON_COMPACT | JSON_ENCODE_ANY);
		size_t n = s ? strlen(s) : 0;
		free(s);
		if (n > AUD_DETAILS_MAX)
			return "details is larger than 64 KiB";
	}
	return NULL;
}

static void bind_opt(sqlite3_stmt *st, int i, json_t *ev, const char *key)
{
	const char *v = json_string_value(json_object_get(ev, key));
	if (v)
		sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

/* Rolls back what is left of a failed transaction (SQLite may have done it
 * already: SQLITE_FULL, ...) and returns `rc`. */
static int aud_abort(sqlite3 *db, int rc)
{
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

int aud_insert(sqlite3 *db, json_t *events, int64_t now_ms, json_t **ids, sdk_err *err)
{
	sqlite3_stmt *st = NULL, *again = NULL;
	*ids = NULL;
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return aud_abort(db, sdk_db_fail(db, err, "begin"));
	if (sqlite3_prepare_v2(db,
			       "INSERT INTO events (ts_ms, actor, action, resource, outcome, details,"
			       " source_ip, uid) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
			       " ON CONFLICT (uid) WHERE uid IS NOT NULL DO NOTHING",
			       -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT id FROM events WHERE uid = ?", -1, &again, NULL) !=
		    SQLITE_OK) {
		int rc = sdk_db_fail(db, err, "storing events");
		sqlite3_finalize(st);
		return aud_abort(db, rc);
	}
	json_t *out = json_array();
	size_t i;
	json_t *ev;
	int rc = out ? 0 : sdk_fail(err, SDK_EIO, "out of memory");
	json_array_foreach(events, i, ev) {
		if (rc)
			break;
		json_t *ts = json_object_get(ev, "ts_ms");
		sqlite3_bind_int64(st, 1, ts ? json_integer_value(ts) : now_ms);
		bind_opt(st, 2, ev, "actor");
		bind_opt(st, 3, ev, "action");
		bind_opt(st, 4, ev, "resource");
		bind_opt(st, 5, ev, "outcome");
		json_t *d = json_object_get(ev, "details");
		char *ds = d ? json_dumps(d, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
		if (ds)
			sqlite3_bind_text(st, 6, ds, -1, SQLITE_TRANSIENT);
		else
			sqlite3_bind_null(st, 6);
		free(ds);
		bind_opt(st, 7, ev, "source_ip");
		bind_opt(st, 8, ev, "uid");
		if (sqlite3_step(st) != SQLITE_DONE) {
			rc = sdk_db_fail(db, err, "storing events");
			break;
		}
		int64_t id = sqlite3_last_insert_rowid(db);
		if (sqlite3_changes(db) == 0) { /* stored before: its id */
			bind_opt(again, 1, ev, "uid");
			if (sqlite3_step(again) != SQLITE_ROW) {
				rc = sdk_db_fail(db, err, "finding an event stored before");
				break;
			}
			id = sqlite3_column_int64(again, 0);
			sqlite3_reset(again);
		}
		json_array_append_new(out, json_integer(id));
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	sqlite3_finalize(again);
	if (!rc && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		rc = sdk_db_fail(db, err, "committing events");
	if (rc) {
		json_decref(out);
		return aud_abort(db, rc);
	}
	*ids = out;
	return 0;
}

#define EVENT_COLUMNS "id, ts_ms, actor, action, resource, outcome, details, source_ip, log_index"

static json_t *row_event(sqlite3_stmt *st, int with_index)
{
	const char *details = (const char *)sqlite3_column_text(st, 6);
	const char *ip = (const char *)sqlite3_column_text(st, 7);
	json_t *d = details ? json_loads(details, JSON_DECODE_ANY, NULL) : NULL;
	json_t *e = json_pack("{s:I, s:I, s:s, s:s, s:s, s:s, s:o, s:o}", "id",
			      (json_int_t)sqlite3_column_int64(st, 0), "ts_ms",
			      (json_int_t)sqlite3_column_int64(st, 1), "actor",
			      (const char *)sqlite3_column_text(st, 2), "action",
			      (const char *)sqlite3_column_text(st, 3), "resource",
			      (const char *)sqlite3_column_text(st, 4), "outcome",
			      (const char *)sqlite3_column_text(st, 5), "details",
			      d ? d : json_null(), "source_ip", ip ? json_string(ip) : json_null());
	if (e && with_index)
		json_object_set_new(e, "log_index",
				    sqlite3_column_type(st, 8) == SQLITE_NULL
					    ? json_null()
					    : json_integer(sqlite3_column_int64(st, 8)));
	return e;
}

/* Steps `st` to its end, collecting each row as an event into *out. */
static int aud_rows(sqlite3 *db, sqlite3_stmt *st, int with_index, json_t **out, sdk_err *err)
{
	json_t *arr = json_array();
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(arr, row_event(st, with_index));
	if (rc != SQLITE_DONE) {
		rc = sdk_db_fail(db, err, "reading events");
		sqlite3_finalize(st);
		json_decref(arr);
		return rc;
	}
	sqlite3_finalize(st);
	*out = arr;
	return 0;
}

int aud_query(sqlite3 *db, const aud_filter *f, json_t **out, sdk_err *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "SELECT " EVENT_COLUMNS " FROM events WHERE id > ?1"
			       " AND (?2 IS NULL OR actor = ?2) AND (?3 IS NULL OR action = ?3)"
			       " AND (?4 IS NULL OR resource = ?4) AND ts_ms >= ?5"
			       " AND (?6 = 0 OR ts_ms < ?6) ORDER BY id LIMIT ?7",
			       -1, &st, NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, "reading events");
	sqlite3_bind_int64(st, 1, f->after_id);
	if (f->actor)
		sqlite3_bind_text(st, 2, f->actor, -1, SQLITE_STATIC);
	if (f->action)
		sqlite3_bind_text(st, 3, f->action, -1, SQLITE_STATIC);
	if (f->resource)
		sqlite3_bind_text(st, 4, f->resource, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, f->since_ms);
	sqlite3_bind_int64(st, 6, f->until_ms);
	sqlite3_bind_int(st, 7, (int)f->limit);
	return aud_rows(db, st, 1, out, err);
}

int aud_get(sqlite3 *db, int64_t id, json_t **out, sdk_err *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "SELECT " EVENT_COLUMNS " FROM events WHERE id = ?", -1, &st,
			       NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, "reading an event");
	sqlite3_bind_int64(st, 1, id);
	json_t *arr;
	int rc = aud_rows(db, st, 1, &arr, err);
	if (rc)
		return rc;
	*out = json_incref(json_array_get(arr, 0));
	json_decref(arr);
	return *out ? 0 : sdk_fail(err, SDK_ENOTFOUND, "no event %lld", (long long)id);
}

int aud_unlogged(sqlite3 *db, unsigned max, json_t **out, sdk_err *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "SELECT " EVENT_COLUMNS " FROM events WHERE log_index IS NULL"
			       " ORDER BY id LIMIT ?",
			       -1, &st, NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, "reading unlogged events");
	sqlite3_bind_int(st, 1, (int)max);
	return aud_rows(db, st, 0, out, err);
}

int aud_set_log_indexes(sqlite3 *db, json_t *pairs, sdk_err *err)
{
	sqlite3_stmt *st;
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return aud_abort(db, sdk_db_fail(db, err, "begin"));
	if (sqlite3_prepare_v2(db, "UPDATE events SET log_index = ? WHERE id = ?", -1, &st, NULL) !=
	    SQLITE_OK)
		return aud_abort(db, sdk_db_fail(db, err, "recording log indexes"));
	size_t i;
	json_t *p;
	int rc = 0;
	json_array_foreach(pairs, i, p) {
		sqlite3_bind_int64(st, 1, json_integer_value(json_array_get(p, 1)));
		sqlite3_bind_int64(st, 2, json_integer_value(json_array_get(p, 0)));
		if (sqlite3_step(st) != SQLITE_DONE) {
			rc = sdk_db_fail(db, err, "recording log indexes");
			break;
		}
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	if (!rc && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		rc = sdk_db_fail(db, err, "committing log indexes");
	return rc ? aud_abort(db, rc) : 0;
}

/* ---- archival */

int aud_archivable(sqlite3 *db, int64_t before_id, int64_t before_ms, unsigned max,
		   json_t **out, sdk_err *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "SELECT " EVENT_COLUMNS " FROM events WHERE id < ?1"
			       " ORDER BY id LIMIT ?2",
			       -1, &st, NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, "reading events to archive");
	sqlite3_bind_int64(st, 1, before_id);
	sqlite3_bind_int(st, 2, (int)max);
	json_t *all;
	int rc = aud_rows(db, st, 1, &all, err);
	if (rc)
		return rc;
	/* A run of the oldest events: one not yet in the log, or not older
	 * than before_ms (senders may date events), stops it; it and every
	 * later event stay, so what is archived is a range of ids. */
	json_t *arr = json_array();
	size_t i;
	json_t *e;
	json_array_foreach(all, i, e) {
		if (!json_is_integer(json_object_get(e, "log_index")) ||
		    json_integer_value(json_object_get(e, "ts_ms")) >= before_ms)
			break;
		json_array_append(arr, e);
	}
	json_decref(all);
	*out = arr;
	return 0;
}

int aud_archived(sqlite3 *db, json_t **out, sdk_err *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "SELECT count(*), coalesce(sum(events), 0), coalesce(max(last_id), 0),"
			       " (SELECT file FROM archives ORDER BY last_id DESC LIMIT 1),"
			       " (SELECT sha256 FROM archives ORDER BY last_id DESC LIMIT 1)"
			       " FROM archives",
			       -1, &st, NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, "reading archives");
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		rc = sdk_db_fail(db, err, "reading archives");
		sqlite3_finalize(st);
		return rc;
	}
	*out = json_pack("{s:I, s:I, s:I, s:s?, s:s?}", "archives",
			 (json_int_t)sqlite3_column_int64(st, 0), "events",
			 (json_int_t)sqlite3_column_int64(st, 1), "last_id",
			 (json_int_t)sqlite3_column_int64(st, 2), "last_file",
			 (const char *)sqlite3_column_text(st, 3), "last_sha256",
			 (const char *)sqlite3_column_text(st, 4));
	sqlite3_finalize(st);
	return 0;
}

int aud_remove(sqlite3 *db, const aud_archive_rec *a, int64_t now_ms, sdk_err *err)
{
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return aud_abort(db, sdk_db_fail(db, err, "begin"));
	sqlite3_stmt *ins = NULL, *del = NULL;
	int rc = 0;
	if (sqlite3_prepare_v2(db,
			       "INSERT INTO archives (last_id, first_id, events, sha256, file,"
			       " tree_size, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
			       -1, &ins, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db,
			       "DELETE FROM events WHERE id >= ?1 AND id <= ?2"
			       " AND log_index IS NOT NULL",
			       -1, &del, NULL) != SQLITE_OK) {
		rc = sdk_db_fail(db, err, "preparing the removal");
		goto out;
	}
	sqlite3_bind_int64(ins, 1, a->last_id);
	sqlite3_bind_int64(ins, 2, a->first_id);
	sqlite3_bind_int64(ins, 3, a->events);
	sqlite3_bind_text(ins, 4, a->sha256, -1, SQLITE_STATIC);
	sqlite3_bind_text(ins, 5, a->file, -1, SQLITE_STATIC);
	sqlite3_bind_int64(ins, 6, a->tree_size);
	sqlite3_bind_int64(ins, 7, now_ms);
	if (sqlite3_step(ins) != SQLITE_DONE) {
		rc = sdk_db_fail(db, err, "recording the archive");
		goto out;
	}
	sqlite3_bind_int64(del, 1, a->first_id);
	sqlite3_bind_int64(del, 2, a->last_id);
	if (sqlite3_step(del) != SQLITE_DONE) {
		rc = sdk_db_fail(db, err, "removing archived events");
		goto out;
	}
	/* What was archived is exactly what goes: nothing else in between. */
	if (sqlite3_changes(db) != a->events)
		rc = sdk_fail(err, SDK_ECONFLICT, "events [%lld, %lld] changed while being archived",
			      (long long)a->first_id, (long long)a->last_id);
out:
	sqlite3_finalize(ins);
	sqlite3_finalize(del);
	if (!rc && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		rc = sdk_db_fail(db, err, "committing the removal");
	return rc ? aud_abort(db, rc) : 0;
}
