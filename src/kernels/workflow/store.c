#include "kernels/workflow/store.h"

#include "sdk/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Version 1 had no idempotency keys for starts. */
const sdk_mig_step wfs_migrations[WFS_SCHEMA_VERSION] = {
	{ .what = "(stamp: an unversioned file has version 1's tables)" },
	{ .sql = "CREATE TABLE IF NOT EXISTS run_keys (owner TEXT NOT NULL, key TEXT NOT NULL,"
		 " run TEXT NOT NULL, PRIMARY KEY (owner, key)) WITHOUT ROWID;",
	  .what = "(run_keys: a start's Idempotency-Key)" },
};

int wfs_init(sqlite3 *db, sdk_err *err)
{
	if (sqlite3_exec(db,
			 "CREATE TABLE IF NOT EXISTS definitions ("
			 " seq INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL,"
			 " version TEXT NOT NULL, doc TEXT NOT NULL, owner TEXT NOT NULL,"
			 " created_ms INTEGER NOT NULL, UNIQUE (name, version));"
			 "CREATE TABLE IF NOT EXISTS runs ("
			 " id TEXT PRIMARY KEY, name TEXT NOT NULL, version TEXT NOT NULL,"
			 " owner TEXT NOT NULL, role TEXT NOT NULL, status TEXT NOT NULL,"
			 " input TEXT NOT NULL, state TEXT NOT NULL, output TEXT, error TEXT,"
			 " created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
			 " due_ms INTEGER NOT NULL, events INTEGER NOT NULL);"
			 "CREATE INDEX IF NOT EXISTS runs_status ON runs(status);"
			 "CREATE INDEX IF NOT EXISTS runs_created ON runs(created_ms, id);"
			 "CREATE TABLE IF NOT EXISTS history ("
			 " run TEXT NOT NULL, seq INTEGER NOT NULL, at_ms INTEGER NOT NULL,"
			 " type TEXT NOT NULL, pos TEXT, name TEXT, data TEXT,"
			 " PRIMARY KEY (run, seq)) WITHOUT ROWID;"
			 "CREATE TABLE IF NOT EXISTS run_keys ("
			 " owner TEXT NOT NULL, key TEXT NOT NULL, run TEXT NOT NULL,"
			 " PRIMARY KEY (owner, key)) WITHOUT ROWID;"
			 "CREATE TABLE IF NOT EXISTS outbox ("
			 " seq INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL);",
			 NULL, NULL, NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, "creating the schema");
	return 0;
}

static int prep(sqlite3 *db, const char *sql, sqlite3_stmt **st, sdk_err *err)
{
	if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, "preparing a query");
	return 0;
}

static int begin(sqlite3 *db, sdk_err *err)
{
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, "starting a transaction");
	return 0;
}

static int commit(sqlite3 *db, int rc, sdk_err *err)
{
	if (rc == 0 && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		rc = sdk_db_fail(db, err, "committing");
	if (rc < 0)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

static const char *col(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);
	return s ? s : "";
}

static json_t *col_json(sqlite3_stmt *st, int i)
{
	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		return NULL;
	return json_loads(col(st, i), JSON_DECODE_ANY, NULL);
}

int wfs_def_put(sqlite3 *db, const char *name, const char *version, const char *text,
		const char *owner, bool admin, int64_t now_ms, sdk_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = begin(db, err);
	if (rc < 0)
		return rc;
	if ((rc = prep(db, "SELECT owner, version, doc FROM definitions WHERE name = ?", &st, err)) < 0)
		return commit(db, rc, err);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int same = 0;
	while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
		if (!admin && strcmp(col(st, 0), owner) != 0)
			rc = sdk_fail(err, SDK_EDENIED, "the definition \"%s\" belongs to another user", name);
		else if (!strcmp(col(st, 1), version))
			same = strcmp(col(st, 2), text) == 0 ? 1 : -1;
	}
	sqlite3_finalize(st);
	if (rc == 0 && same < 0)
		rc = sdk_fail(err, SDK_ECONFLICT,
			      "\"%s\" version \"%s\" is stored with another text: give it a new version",
			      name, version);
	if (rc == 0 && same == 0 &&
	    (rc = prep(db, "INSERT INTO definitions (name, version, doc, owner, created_ms) "
			   "VALUES (?, ?, ?, ?, ?)", &st, err)) == 0) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, version, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, text, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, owner, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, now_ms);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = sdk_db_fail(db, err, "storing a definition");
		sqlite3_finalize(st);
	}
	rc = commit(db, rc, err);
	return rc < 0 ? rc : same;
}

int wfs_def_get(sqlite3 *db, const char *name, const char *version, char **text,
		char version_out[65], char owner[65], sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = prep(db, version ? "SELECT doc, version, owner FROM definitions WHERE name = ? AND version = ?"
				  : "SELECT doc, version, owner FROM definitions WHERE name = ? "
				    "ORDER BY seq DESC LIMIT 1", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if (version)
		sqlite3_bind_text(st, 2, version, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW) {
		*text = strdup(col(st, 0));
		snprintf(version_out, 65, "%s", col(st, 1));
		snprintf(owner, 65, "%s", col(st, 2));
		if (!*text)
			rc = sdk_fail(err, SDK_EBUSY, "out of memory");
	} else if (s == SQLITE_DONE) {
		rc = sdk_fail(err, SDK_ENOTFOUND, "no definition \"%s\"%s%s", name,
			      version ? " version " : "", version ? version : "");
	} else {
		rc = sdk_db_fail(db, err, "reading a definition");
	}
	sqlite3_finalize(st);
	return rc;
}

int wfs_def_list(sqlite3 *db, const char *owner, const char *name, json_t **out, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = prep(db, "SELECT name, version, owner, created_ms FROM definitions "
			  "WHERE (?1 IS NULL OR owner = ?1) AND (?2 IS NULL OR name = ?2) "
			  "ORDER BY name, seq LIMIT 10000", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	json_t *a = json_array();
	int s;
	while ((s = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:I}", "name", col(st, 0), "version",
						   col(st, 1), "owner", col(st, 2), "created_ms",
						   (json_int_t)sqlite3_column_int64(st, 3)));
	if (s != SQLITE_DONE) {
		json_decref(a);
		rc = sdk_db_fail(db, err, "listing definitions");
	} else {
		*out = a;
	}
	sqlite3_finalize(st);
	return rc;
}

void wfs_run_clear(wfs_run *r)
{
	json_decref(r->input);
	json_decref(r->state);
	json_decref(r->output);
	json_decref(r->error);
	r->input = r->state = r->output = r->error = NULL;
}

static int append_events(sqlite3 *db, wfs_run *r, const json_t *events, sdk_err *err)
{
	if (json_array_size(events) == 0)
		return 0;
	sqlite3_stmt *st;
	int rc = prep(db, "INSERT INTO history (run, seq, at_ms, type, pos, name, data) "
			  "VALUES (?, ?, ?, ?, ?, ?, ?)", &st, err);
	size_t i;
	json_t *e;
	json_array_foreach(events, i, e) {
		if (rc < 0)
			break;
		json_t *data = json_object_get(e, "data");
		if (!data) { /* everything but the named fields */
			data = json_deep_copy(e);
			static const char *const drop[] = { "type", "pos", "name", "at_ms" };
			for (size_t d = 0; d < 4; d++)
				json_object_del(data, drop[d]);
		} else {
			json_incref(data);
		}
		char *text = json_object_size(data) ? json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
		json_decref(data);
		sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, ++r->events);
		sqlite3_bind_int64(st, 3, json_integer_value(json_object_get(e, "at_ms")));
		sqlite3_bind_text(st, 4, json_string_value(json_object_get(e, "type")), -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, json_string_value(json_object_get(e, "pos")), -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 6, json_string_value(json_object_get(e, "name")), -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 7, text, -1, SQLITE_TRANSIENT);
		free(text);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = sdk_db_fail(db, err, "appending to a run's history");
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	return rc;
}

static int outbox_add(sqlite3 *db, const char *body, int64_t *seq, sdk_err *err)
{
	if (!body)
		return 0;
	sqlite3_stmt *st;
	int rc = prep(db, "INSERT INTO outbox (body) VALUES (?)", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, body, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = sdk_db_fail(db, err, "queueing a bus event");
	else if (seq)
		*seq = sqlite3_last_insert_rowid(db);
	sqlite3_finalize(st);
	return rc;
}

int wfs_outbox_list(sqlite3 *db, unsigned limit, json_t **out, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = prep(db, "SELECT seq, body FROM outbox ORDER BY seq LIMIT ?", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_int(st, 1, (int)limit);
	json_t *a = json_array();
	int s;
	while ((s = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(a, json_pack("[I, s]", (json_int_t)sqlite3_column_int64(st, 0), col(st, 1)));
	if (s != SQLITE_DONE) {
		json_decref(a);
		rc = sdk_db_fail(db, err, "reading the outbox");
	} else {
		*out = a;
	}
	sqlite3_finalize(st);
	return rc;
}

int wfs_outbox_drop(sqlite3 *db, int64_t seq, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = prep(db, "DELETE FROM outbox WHERE seq = ?", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, seq);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = sdk_db_fail(db, err, "emptying the outbox");
	sqlite3_finalize(st);
	return rc;
}

static void bind_json(sqlite3_stmt *st, int i, const json_t *v)
{
	char *t = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	if (t)
		sqlite3_bind_text(st, i, t, -1, free);
	else
		sqlite3_bind_null(st, i);
}

int wfs_run_by_key(sqlite3 *db, const char *owner, const char *key, char run[33], sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = prep(db, "SELECT run FROM run_keys WHERE owner = ? AND key = ?", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(st, 0);
		snprintf(run, 33, "%s", t ? (const char *)t : "");
		rc = 1;
	} else if (s != SQLITE_DONE) {
		rc = sdk_db_fail(db, err, "reading idempotency keys");
	}
	sqlite3_finalize(st);
	return rc;
}

int wfs_run_insert(sqlite3 *db, const wfs_run *r0, const char *idem_key, const json_t *events,
		   const char *outbox, int64_t *seq, sdk_err *err)
{
	wfs_run *r = (wfs_run *)r0;
	sqlite3_stmt *st;
	int rc = begin(db, err);
	if (rc < 0)
		return rc;
	if (idem_key && (rc = prep(db, "INSERT INTO run_keys (owner, key, run) VALUES (?, ?, ?)",
				   &st, err)) == 0) {
		sqlite3_bind_text(st, 1, r->owner, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, idem_key, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, r->id, -1, SQLITE_STATIC);
		int s = sqlite3_step(st);
		if (s == SQLITE_CONSTRAINT)
			rc = sdk_fail(err, SDK_ECONFLICT, "a run holds this idempotency key");
		else if (s != SQLITE_DONE)
			rc = sdk_db_fail(db, err, "storing an idempotency key");
		sqlite3_finalize(st);
	}
	if (rc < 0)
		return commit(db, rc, err);
	if ((rc = prep(db, "INSERT INTO runs (id, name, version, owner, role, status, input, state, "
			   "output, error, created_ms, updated_ms, due_ms, events) "
			   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)", &st, err)) == 0) {
		sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, r->name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, r->version, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, r->owner, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, r->role, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 6, r->status, -1, SQLITE_STATIC);
		bind_json(st, 7, r->input);
		bind_json(st, 8, r->state ? r->state : json_null());
		bind_json(st, 9, r->output);
		bind_json(st, 10, r->error);
		sqlite3_bind_int64(st, 11, r->created_ms);
		sqlite3_bind_int64(st, 12, r->updated_ms);
		sqlite3_bind_int64(st, 13, r->due_ms);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = sdk_db_fail(db, err, "storing a run");
		sqlite3_finalize(st);
	}
	r->events = 0;
	if (rc == 0)
		rc = append_events(db, r, events, err);
	if (rc == 0 && (rc = prep(db, "UPDATE runs SET events = ? WHERE id = ?", &st, err)) == 0) {
		sqlite3_bind_int64(st, 1, r->events);
		sqlite3_bind_text(st, 2, r->id, -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = sdk_db_fail(db, err, "storing a run");
		sqlite3_finalize(st);
	}
	if (rc == 0)
		rc = outbox_add(db, outbox, seq, err);
	return commit(db, rc, err);
}

int wfs_run_save(sqlite3 *db, wfs_run *r, const json_t *events, const char *outbox, int64_t *seq,
		 sdk_err *err)
{
	int64_t before = r->events;
	int rc = begin(db, err);
	if (rc < 0)
		return rc;
	rc = append_events(db, r, events, err);
	sqlite3_stmt *st;
	if (rc == 0 && (rc = prep(db, "UPDATE runs SET status = ?, state = ?, output = ?, error = ?, "
				      "updated_ms = ?, due_ms = ?, events = ? WHERE id = ?", &st, err)) == 0) {
		sqlite3_bind_text(st, 1, r->status, -1, SQLITE_STATIC);
		bind_json(st, 2, r->state ? r->state : json_null());
		bind_json(st, 3, r->output);
		bind_json(st, 4, r->error);
		sqlite3_bind_int64(st, 5, r->updated_ms);
		sqlite3_bind_int64(st, 6, r->due_ms);
		sqlite3_bind_int64(st, 7, r->events);
		sqlite3_bind_text(st, 8, r->id, -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = sdk_db_fail(db, err, "saving a run");
		sqlite3_finalize(st);
	}
	if (rc == 0)
		rc = outbox_add(db, outbox, seq, err);
	rc = commit(db, rc, err);
	if (rc < 0)
		r->events = before;
	return rc;
}

#define RUN_COLS "id, name, version, owner, role, status, input, state, output, error, " \
		 "created_ms, updated_ms, due_ms, events"

static void read_run(sqlite3_stmt *st, wfs_run *r, bool with_state)
{
	memset(r, 0, sizeof *r);
	snprintf(r->id, sizeof r->id, "%s", col(st, 0));
	snprintf(r->name, sizeof r->name, "%s", col(st, 1));
	snprintf(r->version, sizeof r->version, "%s", col(st, 2));
	snprintf(r->owner, sizeof r->owner, "%s", col(st, 3));
	snprintf(r->role, sizeof r->role, "%s", col(st, 4));
	snprintf(r->status, sizeof r->status, "%s", col(st, 5));
	r->input = col_json(st, 6);
	r->state = with_state ? col_json(st, 7) : NULL;
	r->output = col_json(st, 8);
	r->error = col_json(st, 9);
	r->created_ms = sqlite3_column_int64(st, 10);
	r->updated_ms = sqlite3_column_int64(st, 11);
	r->due_ms = sqlite3_column_int64(st, 12);
	r->events = sqlite3_column_int64(st, 13);
}

int wfs_run_get(sqlite3 *db, const char *id, wfs_run *r, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = prep(db, "SELECT " RUN_COLS " FROM runs WHERE id = ?", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW)
		read_run(st, r, true);
	else if (s == SQLITE_DONE)
		rc = sdk_fail(err, SDK_ENOTFOUND, "no run \"%s\"", id);
	else
		rc = sdk_db_fail(db, err, "reading a run");
	sqlite3_finalize(st);
	return rc;
}

int wfs_run_list(sqlite3 *db, const char *owner, const char *status, const char *name,
		 int64_t since_ms, int64_t until_ms, const char *before_id, unsigned limit,
		 json_t **out, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = prep(db, "SELECT id, name, version, owner, status, created_ms, updated_ms FROM runs "
			  "WHERE (?1 IS NULL OR owner = ?1) AND (?2 IS NULL OR status = ?2) "
			  "AND (?3 IS NULL OR name = ?3) AND created_ms >= ?4 AND created_ms <= ?5 "
			  "AND (?6 IS NULL OR (created_ms, id) < (SELECT created_ms, id FROM runs WHERE id = ?6)) "
			  "ORDER BY created_ms DESC, id DESC LIMIT ?7", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, since_ms);
	sqlite3_bind_int64(st, 5, until_ms ? until_ms : INT64_MAX);
	sqlite3_bind_text(st, 6, before_id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 7, (int)limit);
	json_t *a = json_array();
	int s;
	while ((s = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(a, json_pack("{s:s, s:{s:s, s:s}, s:s, s:s, s:I, s:I}", "id",
						   col(st, 0), "definition", "name", col(st, 1),
						   "version", col(st, 2), "owner", col(st, 3), "status",
						   col(st, 4), "created_ms",
						   (json_int_t)sqlite3_column_int64(st, 5), "updated_ms",
						   (json_int_t)sqlite3_column_int64(st, 6)));
	if (s != SQLITE_DONE) {
		json_decref(a);
		rc = sdk_db_fail(db, err, "listing runs");
	} else {
		*out = a;
	}
	sqlite3_finalize(st);
	return rc;
}

int wfs_run_active(sqlite3 *db, json_t **ids, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = prep(db, "SELECT id FROM runs WHERE status IN ('running', 'suspended') "
			  "ORDER BY created_ms", &st, err);
	if (rc < 0)
		return rc;
	json_t *a = json_array();
	int s;
	while ((s = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(a, json_string(col(st, 0)));
	if (s != SQLITE_DONE) {
		json_decref(a);
		rc = sdk_db_fail(db, err, "listing active runs");
	} else {
		*ids = a;
	}
	sqlite3_finalize(st);
	return rc;
}

int wfs_history(sqlite3 *db, const char *id, int64_t after, unsigned limit, json_t **out,
		sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = prep(db, "SELECT seq, at_ms, type, pos, name, data FROM history "
			  "WHERE run = ? AND seq > ? ORDER BY seq LIMIT ?", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, after);
	sqlite3_bind_int(st, 3, (int)limit);
	json_t *a = json_array();
	int s;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *e = json_pack("{s:I, s:I, s:s}", "seq", (json_int_t)sqlite3_column_int64(st, 0),
				      "at_ms", (json_int_t)sqlite3_column_int64(st, 1), "type", col(st, 2));
		if (sqlite3_column_type(st, 3) != SQLITE_NULL)
			json_object_set_new(e, "pos", json_string(col(st, 3)));
		if (sqlite3_column_type(st, 4) != SQLITE_NULL)
			json_object_set_new(e, "name", json_string(col(st, 4)));
		json_t *d = col_json(st, 5);
		if (json_is_object(d))
			json_object_update(e, d);
		json_decref(d);
		json_array_append_new(a, e);
	}
	if (s != SQLITE_DONE) {
		json_decref(a);
		rc = sdk_db_fail(db, err, "reading a run's history");
	} else {
		*out = a;
	}
	sqlite3_finalize(st);
	return rc;
}

int wfs_owner_purge(sqlite3 *db, const char *owner, int64_t *runs, sdk_err *err)
{
	static const char *const sql[] = {
		"DELETE FROM history WHERE run IN (SELECT id FROM runs WHERE owner = ?1)",
		"DELETE FROM run_keys WHERE owner = ?1",
		"DELETE FROM runs WHERE owner = ?1",
		"UPDATE definitions SET owner = '' WHERE owner = ?1",
	};
	*runs = 0;
	int rc = begin(db, err);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < sizeof sql / sizeof *sql && rc == 0; i++) {
		sqlite3_stmt *st;
		if ((rc = prep(db, sql[i], &st, err)) < 0)
			break;
		sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = sdk_db_fail(db, err, "purging an owner");
		else if (i == 2)
			*runs = sqlite3_changes(db);
		sqlite3_finalize(st);
	}
	return commit(db, rc, err);
}
