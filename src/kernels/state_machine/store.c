#include "kernels/state_machine/store.h"

#include "sdk/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Version 1 had no record of who an instance acts as (its owner's role,
 * the kernel that started it) nor of denials in the history; its
 * instances were users' (owner "" a kernel's). */
static const char sm_migrate_1[] =
	"ALTER TABLE instances ADD COLUMN owner_role TEXT NOT NULL DEFAULT 'user';"
	"ALTER TABLE instances ADD COLUMN owner_kernel TEXT NOT NULL DEFAULT '';"
	"UPDATE instances SET owner_role = 'kernel' WHERE owner = '';"
	"ALTER TABLE history ADD COLUMN denied TEXT;";

const sdk_mig_step sm_migrations[SM_SCHEMA_VERSION] = {
	{ .what = "(stamp: an unversioned file has version 1's tables)" },
	{ .sql = sm_migrate_1, .what = "(instances' owner_role and owner_kernel, history's denied)" },
};

int sm_store_init(sqlite3 *db, sdk_err *err)
{
	if (sqlite3_exec(db,
			 "CREATE TABLE IF NOT EXISTS machines ("
			 " name TEXT NOT NULL, version INTEGER NOT NULL, config TEXT NOT NULL,"
			 " owner TEXT NOT NULL, created_ms INTEGER NOT NULL,"
			 " PRIMARY KEY (name, version));"
			 "CREATE TABLE IF NOT EXISTS instances ("
			 " id TEXT PRIMARY KEY, machine TEXT NOT NULL, machine_version INTEGER NOT NULL,"
			 " version INTEGER NOT NULL, snapshot TEXT NOT NULL, status TEXT NOT NULL,"
			 " owner TEXT NOT NULL, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
			 " owner_role TEXT NOT NULL DEFAULT 'user', owner_kernel TEXT NOT NULL DEFAULT '');"
			 "CREATE INDEX IF NOT EXISTS instances_owner ON instances(owner, id);"
			 "CREATE TABLE IF NOT EXISTS history ("
			 " instance TEXT NOT NULL, seq INTEGER NOT NULL, event TEXT NOT NULL,"
			 " value TEXT NOT NULL, status TEXT NOT NULL, source TEXT NOT NULL,"
			 " at_ms INTEGER NOT NULL, denied TEXT, PRIMARY KEY (instance, seq));"
			 "CREATE TABLE IF NOT EXISTS timers ("
			 " seq INTEGER PRIMARY KEY AUTOINCREMENT, instance TEXT NOT NULL,"
			 " timer_id TEXT NOT NULL, event TEXT NOT NULL, due_ms INTEGER NOT NULL,"
			 " current INTEGER NOT NULL);"
			 "CREATE INDEX IF NOT EXISTS timers_id ON timers(instance, timer_id);"
			 "CREATE INDEX IF NOT EXISTS timers_due ON timers(due_ms, seq);",
			 NULL, NULL, NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, "creating the schema");
	return 0;
}

int sm_begin(sqlite3 *db, sdk_err *err)
{
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, "starting a transaction");
	return 0;
}

int sm_commit(sqlite3 *db, sdk_err *err)
{
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		int rc = sdk_db_fail(db, err, "committing");
		sm_rollback(db);
		return rc;
	}
	return 0;
}

void sm_rollback(sqlite3 *db)
{
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

static int prep(sqlite3 *db, const char *sql, sqlite3_stmt **st, sdk_err *err)
{
	if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, "preparing a query");
	return 0;
}

/* Steps a statement that returns no rows, then finalizes it. */
static int run(sqlite3 *db, sqlite3_stmt *st, sdk_err *err, const char *what)
{
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return sdk_db_fail(db, err, what);
	return 0;
}

static const char *col(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return t ? (const char *)t : "";
}

static json_t *col_json(sqlite3_stmt *st, int i)
{
	return json_loads(col(st, i), JSON_DECODE_ANY, NULL);
}

int sm_machine_put(sqlite3 *db, const char *name, const char *config_text, const char *owner,
		   int admin, int64_t now_ms, int64_t *version, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sm_begin(db, err);
	if (rc < 0)
		return rc;
	if ((rc = prep(db, "SELECT version, owner FROM machines WHERE name = ? ORDER BY version DESC LIMIT 1",
		       &st, err)) < 0)
		goto bad;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	int64_t v = 1;
	if (s == SQLITE_ROW) {
		v = sqlite3_column_int64(st, 0) + 1;
		if (!admin && strcmp(col(st, 1), owner) != 0) {
			sqlite3_finalize(st);
			rc = sdk_fail(err, SDK_EDENIED, "the machine \"%s\" belongs to another user", name);
			goto bad;
		}
	} else if (s != SQLITE_DONE) {
		sqlite3_finalize(st);
		rc = sdk_db_fail(db, err, "reading machines");
		goto bad;
	}
	sqlite3_finalize(st);
	if ((rc = prep(db, "INSERT INTO machines (name, version, config, owner, created_ms) VALUES (?,?,?,?,?)",
		       &st, err)) < 0)
		goto bad;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, v);
	sqlite3_bind_text(st, 3, config_text, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, owner, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, now_ms);
	if ((rc = run(db, st, err, "storing the machine")) < 0)
		goto bad;
	if ((rc = sm_commit(db, err)) < 0)
		return rc;
	*version = v;
	return 0;
bad:
	sm_rollback(db);
	return rc;
}

int sm_machine_get(sqlite3 *db, const char *name, int64_t version, json_t **config,
		   int64_t *version_out, json_t **meta, sdk_err *err)
{
	*config = NULL;
	if (meta)
		*meta = NULL;
	sqlite3_stmt *st;
	int rc = prep(db, version > 0 ? "SELECT config, version, owner, created_ms FROM machines WHERE name = ? AND version = ?"
				      : "SELECT config, version, owner, created_ms FROM machines WHERE name = ? ORDER BY version DESC LIMIT 1",
		      &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if (version > 0)
		sqlite3_bind_int64(st, 2, version);
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW) {
		*config = col_json(st, 0);
		*version_out = sqlite3_column_int64(st, 1);
		if (meta)
			*meta = json_pack("{s:s, s:I, s:s, s:I}", "name", name, "version",
					  (json_int_t)*version_out, "owner", col(st, 2), "created_ms",
					  (json_int_t)sqlite3_column_int64(st, 3));
		rc = *config ? 0 : sdk_fail(err, SDK_ECORRUPT, "a stored machine is not JSON");
	} else if (s == SQLITE_DONE) {
		rc = version > 0 ? sdk_fail(err, SDK_ENOTFOUND, "no machine \"%s\" version %lld", name,
					    (long long)version)
				 : sdk_fail(err, SDK_ENOTFOUND, "no machine \"%s\"", name);
	} else {
		rc = sdk_db_fail(db, err, "reading machines");
	}
	sqlite3_finalize(st);
	return rc;
}

int sm_machine_list(sqlite3 *db, const char *after, unsigned limit, json_t **out, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = prep(db, "SELECT name, MAX(version), MIN(owner), MIN(created_ms) FROM machines "
			  "WHERE name > ? GROUP BY name ORDER BY name LIMIT ?", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, after ? after : "", -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, (int)limit);
	*out = json_array();
	int s;
	while ((s = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(*out, json_pack("{s:s, s:I, s:s, s:I}", "name", col(st, 0),
						      "latest_version", (json_int_t)sqlite3_column_int64(st, 1),
						      "owner", col(st, 2), "created_ms",
						      (json_int_t)sqlite3_column_int64(st, 3)));
	sqlite3_finalize(st);
	if (s != SQLITE_DONE) {
		json_decref(*out);
		*out = NULL;
		return sdk_db_fail(db, err, "listing machines");
	}
	return 0;
}

int sm_instance_insert(sqlite3 *db, const sm_instance *in, const char *value_json, sdk_err *err)
{
	sqlite3_stmt *st;
	char *snap = json_dumps(in->snapshot, JSON_COMPACT);
	if (!snap)
		return sdk_fail(err, SDK_EBUSY, "out of memory");
	int rc = prep(db, "INSERT INTO instances (id, machine, machine_version, version, snapshot, status,"
			  " owner, created_ms, updated_ms, owner_role, owner_kernel)"
			  " VALUES (?,?,?,?,?,?,?,?,?,?,?)", &st, err);
	if (rc == 0) {
		sqlite3_bind_text(st, 1, in->id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, in->machine, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, in->machine_version);
		sqlite3_bind_int64(st, 4, in->version);
		sqlite3_bind_text(st, 5, snap, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 6, json_string_value(json_object_get(in->snapshot, "status")), -1,
				  SQLITE_STATIC);
		sqlite3_bind_text(st, 7, in->owner, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 8, in->created_ms);
		sqlite3_bind_int64(st, 9, in->updated_ms);
		sqlite3_bind_text(st, 10, in->owner_role, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 11, in->owner_kernel, -1, SQLITE_STATIC);
		int s = sqlite3_step(st);
		sqlite3_finalize(st);
		if (s == SQLITE_CONSTRAINT)
			rc = sdk_fail(err, SDK_ECONFLICT, "an instance \"%s\" exists", in->id);
		else if (s != SQLITE_DONE)
			rc = sdk_db_fail(db, err, "storing the instance");
	}
	if (rc == 0 && (rc = prep(db, "INSERT INTO history (instance, seq, event, value, status, source, at_ms)"
				  " VALUES (?, 1, '{\"type\":\"xstate.init\"}', ?, ?, 'start', ?)", &st, err)) == 0) {
		sqlite3_bind_text(st, 1, in->id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, value_json, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, json_string_value(json_object_get(in->snapshot, "status")), -1,
				  SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, in->created_ms);
		rc = run(db, st, err, "storing the history");
	}
	free(snap);
	return rc;
}

int sm_instance_get(sqlite3 *db, const char *id, sm_instance *out, sdk_err *err)
{
	memset(out, 0, sizeof *out);
	sqlite3_stmt *st;
	int rc = prep(db, "SELECT id, machine, machine_version, version, snapshot, owner, created_ms,"
			  " updated_ms, owner_role, owner_kernel FROM instances WHERE id = ?", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW) {
		snprintf(out->id, sizeof out->id, "%s", col(st, 0));
		snprintf(out->machine, sizeof out->machine, "%s", col(st, 1));
		out->machine_version = sqlite3_column_int64(st, 2);
		out->version = sqlite3_column_int64(st, 3);
		out->snapshot = col_json(st, 4);
		snprintf(out->owner, sizeof out->owner, "%s", col(st, 5));
		out->created_ms = sqlite3_column_int64(st, 6);
		out->updated_ms = sqlite3_column_int64(st, 7);
		snprintf(out->owner_role, sizeof out->owner_role, "%s", col(st, 8));
		snprintf(out->owner_kernel, sizeof out->owner_kernel, "%s", col(st, 9));
		if (!out->snapshot)
			rc = sdk_fail(err, SDK_ECORRUPT, "instance \"%s\": its snapshot is not JSON", id);
	} else if (s == SQLITE_DONE) {
		rc = sdk_fail(err, SDK_ENOTFOUND, "no instance \"%s\"", id);
	} else {
		rc = sdk_db_fail(db, err, "reading instances");
	}
	sqlite3_finalize(st);
	return rc;
}

void sm_instance_clear(sm_instance *in)
{
	json_decref(in->snapshot);
	in->snapshot = NULL;
}

int sm_instance_list(sqlite3 *db, const char *owner, const char *machine, const char *after,
		     unsigned limit, json_t **out, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = prep(db, "SELECT id, machine, machine_version, version, status, owner, created_ms, updated_ms"
			  " FROM instances WHERE id > ? AND (?2 IS NULL OR owner = ?2) AND"
			  " (?3 IS NULL OR machine = ?3) ORDER BY id LIMIT ?4", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, after ? after : "", -1, SQLITE_STATIC);
	if (owner)
		sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
	if (machine)
		sqlite3_bind_text(st, 3, machine, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, (int)limit);
	*out = json_array();
	int s;
	while ((s = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(*out, json_pack("{s:s, s:s, s:I, s:I, s:s, s:s, s:I, s:I}", "id",
						      col(st, 0), "machine", col(st, 1), "machine_version",
						      (json_int_t)sqlite3_column_int64(st, 2), "version",
						      (json_int_t)sqlite3_column_int64(st, 3), "status",
						      col(st, 4), "owner", col(st, 5), "created_ms",
						      (json_int_t)sqlite3_column_int64(st, 6), "updated_ms",
						      (json_int_t)sqlite3_column_int64(st, 7)));
	sqlite3_finalize(st);
	if (s != SQLITE_DONE) {
		json_decref(*out);
		*out = NULL;
		return sdk_db_fail(db, err, "listing instances");
	}
	return 0;
}

static int exec_id(sqlite3 *db, const char *sql, const char *id, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = prep(db, sql, &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	return run(db, st, err, "writing");
}

int sm_instance_count(sqlite3 *db, const char *owner, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = prep(db, "SELECT COUNT(*) FROM instances WHERE owner = ?", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
	rc = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0)
					    : sdk_db_fail(db, err, "counting instances");
	sqlite3_finalize(st);
	return rc;
}

int sm_instance_delete(sqlite3 *db, const char *id, sdk_err *err)
{
	int rc = sm_begin(db, err);
	if (rc < 0)
		return rc;
	if ((rc = exec_id(db, "DELETE FROM instances WHERE id = ?", id, err)) == 0 &&
	    sqlite3_changes(db) == 0)
		rc = sdk_fail(err, SDK_ENOTFOUND, "no instance \"%s\"", id);
	if (rc == 0)
		rc = exec_id(db, "DELETE FROM history WHERE instance = ?", id, err);
	if (rc == 0)
		rc = exec_id(db, "DELETE FROM timers WHERE instance = ?", id, err);
	if (rc < 0) {
		sm_rollback(db);
		return rc;
	}
	return sm_commit(db, err);
}

int sm_owner_purge(sqlite3 *db, const char *owner, int64_t *deleted, sdk_err *err)
{
	static const char *const sql[] = {
		"DELETE FROM history WHERE instance IN"
		" (SELECT id FROM instances WHERE owner = ? AND owner_role IN ('user', 'admin'))",
		"DELETE FROM timers WHERE instance IN"
		" (SELECT id FROM instances WHERE owner = ? AND owner_role IN ('user', 'admin'))",
		"DELETE FROM instances WHERE owner = ? AND owner_role IN ('user', 'admin')",
	};
	*deleted = 0;
	int rc = sm_begin(db, err);
	for (size_t i = 0; i < sizeof sql / sizeof *sql && rc == 0; i++)
		if ((rc = exec_id(db, sql[i], owner, err)) == 0 && i == 2)
			*deleted = sqlite3_changes(db);
	if (rc < 0) {
		sm_rollback(db);
		return rc;
	}
	return sm_commit(db, err);
}

/* The id `tid` of instance `id` names no pending event any more. */
static int forget(sqlite3 *db, const char *id, const char *tid, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = prep(db, "UPDATE timers SET current = 0 WHERE instance = ? AND timer_id = ?", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, tid, -1, SQLITE_STATIC);
	return run(db, st, err, "updating delayed events");
}

int sm_timers_apply(sqlite3 *db, const char *id, json_t *effects, int64_t now_ms, sdk_err *err)
{
	size_t i;
	json_t *e;
	json_array_foreach(effects, i, e) {
		const char *type = json_string_value(json_object_get(e, "type"));
		sqlite3_stmt *st;
		int rc;
		if (!strcmp(type, "cancel")) {
			if ((rc = prep(db, "DELETE FROM timers WHERE instance = ? AND timer_id = ? AND current",
				       &st, err)) < 0)
				return rc;
			sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 2, json_string_value(json_object_get(e, "id")), -1,
					  SQLITE_STATIC);
			if ((rc = run(db, st, err, "cancelling a delayed event")) < 0)
				return rc;
		} else if (!strcmp(type, "schedule")) {
			/* XState's scheduler: an id names its newest pending event;
			 * an older one of that id stays pending, no longer
			 * cancellable. One without an id gets its own ("\x01"
			 * cannot be in a chart's id). */
			const char *tid = json_string_value(json_object_get(e, "id"));
			if (tid && (rc = forget(db, id, tid, err)) < 0)
				return rc;
			char *ev = json_dumps(json_object_get(e, "event"), JSON_COMPACT);
			if (!ev)
				return sdk_fail(err, SDK_EBUSY, "out of memory");
			rc = prep(db, tid ? "INSERT INTO timers (instance, timer_id, event, due_ms, current)"
					    " VALUES (?,?,?,?,1)"
					  : "INSERT INTO timers (instance, timer_id, event, due_ms, current) VALUES"
					    " (?1, '\x01' || (SELECT IFNULL(MAX(seq), 0) + 1 FROM timers), ?3, ?4, 1)",
				  &st, err);
			if (rc < 0) {
				free(ev);
				return rc;
			}
			sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
			if (tid)
				sqlite3_bind_text(st, 2, tid, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 3, ev, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 4, now_ms + json_integer_value(json_object_get(e, "delay")));
			rc = run(db, st, err, "scheduling a delayed event");
			free(ev);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

int sm_instance_step(sqlite3 *db, const char *id, int64_t version, json_t *snapshot,
		     const char *status, json_t *event, json_t *value, const char *source,
		     json_t *effects, int64_t timer_seq, const char *denied, unsigned history_keep,
		     int64_t now_ms, sdk_err *err)
{
	char *snap = json_dumps(snapshot, JSON_COMPACT);
	char *ev = json_dumps(event, JSON_COMPACT);
	char *val = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
	sqlite3_stmt *st;
	int rc = snap && ev && val ? sm_begin(db, err) : sdk_fail(err, SDK_EBUSY, "out of memory");
	if (rc < 0)
		goto out;
	if ((rc = prep(db, "UPDATE instances SET version = version + 1, snapshot = ?, status = ?,"
			   " updated_ms = ? WHERE id = ? AND version = ?", &st, err)) < 0)
		goto bad;
	sqlite3_bind_text(st, 1, snap, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now_ms);
	sqlite3_bind_text(st, 4, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, version);
	if ((rc = run(db, st, err, "updating the instance")) < 0)
		goto bad;
	if (sqlite3_changes(db) == 0) {
		rc = sdk_fail(err, SDK_ECONFLICT, "instance \"%s\" is no longer at version %lld", id,
			      (long long)version);
		goto bad;
	}
	if ((rc = prep(db, "INSERT INTO history (instance, seq, event, value, status, source, at_ms,"
			   " denied) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", &st, err)) < 0)
		goto bad;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, version + 1);
	sqlite3_bind_text(st, 3, ev, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, val, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, status, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, source, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, now_ms);
	if (denied)
		sqlite3_bind_text(st, 8, denied, -1, SQLITE_STATIC);
	if ((rc = run(db, st, err, "storing the history")) < 0)
		goto bad;
	if ((rc = prep(db, "DELETE FROM history WHERE instance = ? AND seq <= ?", &st, err)) < 0)
		goto bad;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, version + 1 - (int64_t)history_keep);
	if ((rc = run(db, st, err, "pruning the history")) < 0)
		goto bad;
	if (timer_seq > 0) {
		/* as XState's scheduler: a fired event clears its id */
		if ((rc = prep(db, "UPDATE timers SET current = 0 WHERE instance = ?1 AND timer_id ="
				   " (SELECT timer_id FROM timers WHERE seq = ?2)", &st, err)) < 0)
			goto bad;
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, timer_seq);
		if ((rc = run(db, st, err, "updating delayed events")) < 0)
			goto bad;
		if ((rc = prep(db, "DELETE FROM timers WHERE seq = ?", &st, err)) < 0)
			goto bad;
		sqlite3_bind_int64(st, 1, timer_seq);
		if ((rc = run(db, st, err, "dropping a fired timer")) < 0)
			goto bad;
	}
	if ((rc = sm_timers_apply(db, id, effects, now_ms, err)) < 0)
		goto bad;
	if (!strcmp(status, "done") &&
	    (rc = exec_id(db, "DELETE FROM timers WHERE instance = ?", id, err)) < 0)
		goto bad;
	rc = sm_commit(db, err);
	goto out;
bad:
	sm_rollback(db);
out:
	free(snap);
	free(ev);
	free(val);
	return rc;
}

int sm_history(sqlite3 *db, const char *id, int64_t after, unsigned limit, json_t **out,
	       sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = prep(db, "SELECT seq, event, value, status, source, at_ms, denied FROM history"
			  " WHERE instance = ? AND seq > ? ORDER BY seq LIMIT ?", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, after);
	sqlite3_bind_int(st, 3, (int)limit);
	*out = json_array();
	int s;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *row = json_pack("{s:I, s:o*, s:o*, s:s, s:s, s:I}", "version",
					(json_int_t)sqlite3_column_int64(st, 0), "event", col_json(st, 1),
					"value", col_json(st, 2), "status", col(st, 3), "source",
					col(st, 4), "at_ms", (json_int_t)sqlite3_column_int64(st, 5));
		if (row && sqlite3_column_type(st, 6) != SQLITE_NULL) /* a denial: nothing changed */
			json_object_set_new(row, "denied", json_string(col(st, 6)));
		json_array_append_new(*out, row);
	}
	sqlite3_finalize(st);
	if (s != SQLITE_DONE) {
		json_decref(*out);
		*out = NULL;
		return sdk_db_fail(db, err, "reading the history");
	}
	return 0;
}

int sm_timer_next(sqlite3 *db, int64_t *seq, char *instance, size_t ilen, json_t **event,
		  int64_t *due_ms, sdk_err *err)
{
	*event = NULL;
	sqlite3_stmt *st;
	int rc = prep(db, "SELECT seq, instance, event, due_ms FROM timers ORDER BY due_ms, seq LIMIT 1",
		      &st, err);
	if (rc < 0)
		return rc;
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW) {
		*seq = sqlite3_column_int64(st, 0);
		snprintf(instance, ilen, "%s", col(st, 1));
		*event = col_json(st, 2);
		*due_ms = sqlite3_column_int64(st, 3);
		rc = 1;
	} else if (s != SQLITE_DONE) {
		rc = sdk_db_fail(db, err, "reading timers");
	}
	sqlite3_finalize(st);
	return rc;
}

int sm_timer_drop(sqlite3 *db, int64_t seq, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = prep(db, "DELETE FROM timers WHERE seq = ?", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, seq);
	return run(db, st, err, "dropping a timer");
}

int sm_timer_count(sqlite3 *db, const char *id, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = prep(db, "SELECT COUNT(*) FROM timers WHERE instance = ?", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : sdk_db_fail(db, err, "counting timers");
	sqlite3_finalize(st);
	return rc;
}
