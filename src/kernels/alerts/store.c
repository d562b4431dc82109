#include "kernels/alerts/store.h"

#include "sdk/db.h"

#include <stdlib.h>
#include <string.h>

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS alerts_rule_files("
	"  name TEXT PRIMARY KEY, yaml TEXT NOT NULL, paused INTEGER NOT NULL, updated_ms INTEGER);"
	"CREATE TABLE IF NOT EXISTS alerts_notifier(id INTEGER PRIMARY KEY CHECK (id = 1), yaml TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS alerts_silences(key TEXT PRIMARY KEY, doc TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS alerts_nflog(key TEXT PRIMARY KEY, doc TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS alerts_state(key TEXT PRIMARY KEY, doc TEXT NOT NULL);";

int as_init(sqlite3 *db, sdk_err *err)
{
	sdk_err why;
	if (sdk_db_exec(db, schema, &why) < 0)
		return sdk_fail(err, SDK_EIO, "alerts store: %s", why.msg);
	return 0;
}

int as_rule_files(sqlite3 *db, json_t **out, sdk_err *err)
{
	sqlite3_stmt *st;
	*out = NULL;
	if (sqlite3_prepare_v2(db, "SELECT name, yaml, paused FROM alerts_rule_files ORDER BY name", -1,
			       &st, NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, "reading rule files");
	json_t *a = json_array();
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(a, json_pack("{s:s, s:s, s:b}", "name",
						   (const char *)sqlite3_column_text(st, 0), "yaml",
						   (const char *)sqlite3_column_text(st, 1), "paused",
						   sqlite3_column_int(st, 2)));
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		json_decref(a);
		return sdk_db_fail(db, err, "reading rule files");
	}
	*out = a;
	return 0;
}

static int exec_bind(sqlite3 *db, const char *sql, const char *a, const char *b, int64_t n1,
		     int64_t n2, int nargs, sdk_err *err, const char *what)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, what);
	if (nargs > 0)
		sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
	if (nargs > 1)
		sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
	if (nargs > 2)
		sqlite3_bind_int64(st, 3, n1);
	if (nargs > 3)
		sqlite3_bind_int64(st, 4, n2);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return sdk_db_fail(db, err, what);
	return sqlite3_changes(db);
}

int as_rule_file_put(sqlite3 *db, const char *name, const char *yaml, bool paused, int64_t now_ms,
		     sdk_err *err)
{
	int rc = exec_bind(db, "INSERT OR REPLACE INTO alerts_rule_files(name, yaml, paused, updated_ms) "
			       "VALUES(?,?,?,?)",
			   name, yaml, paused, now_ms, 4, err, "storing a rule file");
	return rc < 0 ? rc : 0;
}

int as_rule_file_delete(sqlite3 *db, const char *name, sdk_err *err)
{
	int rc = exec_bind(db, "DELETE FROM alerts_rule_files WHERE name=?", name, NULL, 0, 0, 1, err,
			   "deleting a rule file");
	if (rc == 0)
		return sdk_fail(err, SDK_ENOTFOUND, "no rule file named \"%s\"", name);
	return rc < 0 ? rc : 0;
}

int as_notifier_get(sqlite3 *db, char **out, sdk_err *err)
{
	*out = NULL;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "SELECT yaml FROM alerts_notifier WHERE id=1", -1, &st, NULL) !=
	    SQLITE_OK)
		return sdk_db_fail(db, err, "reading the notifier configuration");
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*out = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return sdk_db_fail(db, err, "reading the notifier configuration");
	return 0;
}

int as_notifier_put(sqlite3 *db, const char *yaml, sdk_err *err)
{
	int rc = exec_bind(db, "INSERT OR REPLACE INTO alerts_notifier(id, yaml) VALUES(1, ?)", yaml,
			   NULL, 0, 0, 1, err, "storing the notifier configuration");
	return rc < 0 ? rc : 0;
}

static const char *table_name(const char *t)
{
	return !strcmp(t, "silences") ? "alerts_silences"
	       : !strcmp(t, "state")  ? "alerts_state"
				      : "alerts_nflog";
}

int as_doc_put(sqlite3 *db, const char *table, const char *key, const json_t *doc, sdk_err *err)
{
	char sql[128];
	snprintf(sql, sizeof sql, "INSERT OR REPLACE INTO %s(key, doc) VALUES(?, ?)", table_name(table));
	char *text = json_dumps(doc, JSON_COMPACT);
	if (!text)
		return sdk_fail(err, SDK_EIO, "out of memory");
	int rc = exec_bind(db, sql, key, text, 0, 0, 2, err, "storing");
	free(text);
	return rc < 0 ? rc : 0;
}

int as_doc_delete(sqlite3 *db, const char *table, const char *key, sdk_err *err)
{
	char sql[128];
	snprintf(sql, sizeof sql, "DELETE FROM %s WHERE key=?", table_name(table));
	int rc = exec_bind(db, sql, key, NULL, 0, 0, 1, err, "deleting");
	return rc < 0 ? rc : 0;
}

int as_docs(sqlite3 *db, const char *table, json_t **out, sdk_err *err)
{
	char sql[128];
	snprintf(sql, sizeof sql, "SELECT key, doc FROM %s", table_name(table));
	sqlite3_stmt *st;
	*out = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, "reading");
	json_t *o = json_object();
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *d = json_loads((const char *)sqlite3_column_text(st, 1), 0, NULL);
		if (d)
			json_object_set_new(o, (const char *)sqlite3_column_text(st, 0), d);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		json_decref(o);
		return sdk_db_fail(db, err, "reading");
	}
	*out = o;
	return 0;
}
