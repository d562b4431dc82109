#include "serve/outbox/journal.h"

#include "sdk/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EPOCH_MAX 40

enum stmt {
	ST_INSERT,
	ST_BUMP,
	ST_CLOSE_DUE,
	ST_NEXT_READY,
	ST_CLOSE_PREFIX,
	ST_BATCH,
	ST_DELETE,
	ST_N
};

static const char *const stmt_sql[ST_N] = {
	[ST_INSERT] = "INSERT INTO audit_journal (event, agg, agg_key, ready_ms, count, last_ms)"
		      " VALUES (?1, ?2, ?3, ?4, 1, ?5)",
	[ST_BUMP] = "UPDATE audit_journal SET count = count + 1, last_ms = max(last_ms, ?2)"
		    " WHERE agg_key = ?1",
	[ST_CLOSE_DUE] = "UPDATE audit_journal SET agg_key = NULL"
			 " WHERE agg_key IS NOT NULL AND ready_ms <= ?1",
	[ST_NEXT_READY] = "SELECT min(ready_ms) FROM audit_journal"
			  " WHERE agg_key IS NOT NULL AND ready_ms < ?1",
	[ST_CLOSE_PREFIX] = "UPDATE audit_journal SET agg_key = NULL"
			    " WHERE substr(agg_key, 1, length(?1)) = ?1",
	[ST_BATCH] = "SELECT id, event, agg, count, last_ms FROM audit_journal"
		     " WHERE agg_key IS NULL ORDER BY id LIMIT ?1",
	[ST_DELETE] = "DELETE FROM audit_journal WHERE id = ?1",
};

struct ob_journal {
	sqlite3 *db;
	sqlite3_stmt *st[ST_N];
	char epoch[EPOCH_MAX];
	size_t rows, bytes;
	int64_t next_ready; /* the earliest ready time of an open row (OBJ_NEVER: none) */
	/* The last batch: its rows and their sizes, until obj_batch_done. */
	int64_t batch_ids[OBJ_BATCH_MAX];
	size_t batch_bytes[OBJ_BATCH_MAX];
	size_t batch_n;
};

static int next_ready(ob_journal *j)
{
	sqlite3_stmt *st = j->st[ST_NEXT_READY];
	sqlite3_bind_int64(st, 1, OBJ_NEVER);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		j->next_ready = sqlite3_column_type(st, 0) == SQLITE_NULL
					? OBJ_NEVER
					: sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 0 : sdk_status_of_sqlite(rc);
}

static int fail_db(ob_journal *j, sdk_err *err, const char *what)
{
	return sdk_fail(err, sdk_status_of_sqlite(sqlite3_errcode(j->db)), "audit journal: %s: %s",
			what, sqlite3_errmsg(j->db));
}

ob_journal *obj_open(sqlite3 *db, sdk_err *err)
{
	ob_journal *j = calloc(1, sizeof *j);
	if (!j) {
		sdk_fail(err, SDK_EIO, "out of memory");
		return NULL;
	}
	j->db = db;
	sdk_err why;
	/* agg_key is set while an aggregate is open, and only then: a closed
	 * row can no longer be added to, so a batch never misses a count. */
	if (sdk_db_exec(db,
			"CREATE TABLE IF NOT EXISTS audit_journal ("
			" id INTEGER PRIMARY KEY AUTOINCREMENT, event TEXT NOT NULL,"
			" agg INTEGER NOT NULL DEFAULT 0, agg_key TEXT UNIQUE,"
			" ready_ms INTEGER NOT NULL DEFAULT 0, count INTEGER NOT NULL DEFAULT 1,"
			" last_ms INTEGER NOT NULL DEFAULT 0);"
			"CREATE TABLE IF NOT EXISTS audit_journal_meta ("
			" name TEXT PRIMARY KEY, value TEXT NOT NULL);"
			"INSERT OR IGNORE INTO audit_journal_meta VALUES"
			" ('epoch', lower(hex(randomblob(8))));",
			&why) < 0) {
		sdk_fail(err, SDK_EIO, "audit journal: %s", why.msg);
		obj_close(j);
		return NULL;
	}
	for (int i = 0; i < ST_N; i++)
		if (sqlite3_prepare_v3(db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &j->st[i],
				       NULL) != SQLITE_OK) {
			fail_db(j, err, "prepare");
			obj_close(j);
			return NULL;
		}
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "SELECT (SELECT value FROM audit_journal_meta WHERE name = 'epoch'),"
			       " count(*), total(length(event)) FROM audit_journal",
			       -1, &st, NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW) {
		fail_db(j, err, "read");
		sqlite3_finalize(st);
		obj_close(j);
		return NULL;
	}
	snprintf(j->epoch, sizeof j->epoch, "%s", (const char *)sqlite3_column_text(st, 0));
	j->rows = (size_t)sqlite3_column_int64(st, 1);
	j->bytes = (size_t)sqlite3_column_double(st, 2);
	sqlite3_finalize(st);
	if (next_ready(j) < 0) {
		fail_db(j, err, "read");
		obj_close(j);
		return NULL;
	}
	return j;
}

void obj_close(ob_journal *j)
{
	if (!j)
		return;
	for (int i = 0; i < ST_N; i++)
		sqlite3_finalize(j->st[i]);
	free(j);
}

/* Runs a statement that returns no rows; the number of rows it changed, or
 * a negative status. Resets it either way. */
static int run(ob_journal *j, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE)
		return sdk_status_of_sqlite(rc);
	return sqlite3_changes(j->db);
}

static int insert(ob_journal *j, const json_t *event, const char *key, int64_t ready_ms,
		  int64_t now_ms)
{
	char *text = json_dumps(event, JSON_COMPACT);
	if (!text)
		return SDK_EINVAL;
	size_t len = strlen(text);
	sqlite3_stmt *st = j->st[ST_INSERT];
	sqlite3_bind_text(st, 1, text, (int)len, free);
	sqlite3_bind_int(st, 2, key != NULL);
	if (key)
		sqlite3_bind_text(st, 3, key, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 4, ready_ms);
	sqlite3_bind_int64(st, 5, now_ms);
	int rc = run(j, st);
	if (rc < 0)
		return rc;
	j->rows++;
	j->bytes += len;
	if (key && ready_ms < j->next_ready)
		j->next_ready = ready_ms;
	return 0;
}

int obj_append(ob_journal *j, const json_t *event)
{
	return insert(j, event, NULL, 0, 0);
}

int obj_count(ob_journal *j, const char *key, const json_t *event, int64_t ready_ms,
	      int64_t now_ms, bool may_create)
{
	sqlite3_stmt *st = j->st[ST_BUMP];
	sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, now_ms);
	int rc = run(j, st);
	if (rc != 0)
		return rc < 0 ? rc : 0;
	if (!may_create)
		return SDK_ENOTFOUND;
	rc = insert(j, event, key, ready_ms, now_ms);
	return rc < 0 ? rc : 1;
}

int obj_close_due(ob_journal *j, int64_t now_ms)
{
	if (now_ms < j->next_ready)
		return 0; /* nothing due: no write */
	sqlite3_stmt *st = j->st[ST_CLOSE_DUE];
	sqlite3_bind_int64(st, 1, now_ms);
	int n = run(j, st);
	if (n < 0)
		return n;
	int rc = next_ready(j);
	return rc < 0 ? rc : n;
}

int obj_close_prefix(ob_journal *j, const char *prefix)
{
	sqlite3_stmt *st = j->st[ST_CLOSE_PREFIX];
	sqlite3_bind_text(st, 1, prefix, -1, SQLITE_TRANSIENT);
	return run(j, st);
}

/* The event of a row as it leaves: its uid, and an aggregate's count. */
static json_t *row_event(ob_journal *j, sqlite3_stmt *st)
{
	const char *text = (const char *)sqlite3_column_text(st, 1);
	json_t *ev = text ? json_loads(text, 0, NULL) : NULL;
	if (!json_is_object(ev)) {
		/* Only this module writes the journal: a row it cannot read was
		 * damaged on disk. It goes as what is left of it, never dropped. */
		json_decref(ev);
		ev = json_pack("{s:s, s:s, s:s, s:s, s:{s:s}}", "actor", "grace", "action",
			       "audit.journal", "resource", "audit_journal", "outcome", "damaged",
			       "details", "text", text ? text : "");
		if (!ev)
			return NULL;
	}
	char uid[EPOCH_MAX + 24];
	snprintf(uid, sizeof uid, "%s-%lld", j->epoch, (long long)sqlite3_column_int64(st, 0));
	json_object_set_new(ev, "uid", json_string(uid));
	if (sqlite3_column_int(st, 2)) {
		json_t *d = json_object_get(ev, "details");
		if (!json_is_object(d)) {
			d = json_object();
			json_object_set_new(ev, "details", d);
		}
		json_object_set_new(d, "count", json_integer(sqlite3_column_int64(st, 3)));
		json_object_set_new(d, "last_ms", json_integer(sqlite3_column_int64(st, 4)));
	}
	return ev;
}

int obj_batch(ob_journal *j, size_t max, size_t max_bytes, json_t **out)
{
	j->batch_n = 0;
	*out = json_array();
	if (!*out)
		return SDK_EIO;
	if (max > OBJ_BATCH_MAX)
		max = OBJ_BATCH_MAX;
	sqlite3_stmt *st = j->st[ST_BATCH];
	sqlite3_bind_int64(st, 1, (sqlite3_int64)max);
	size_t total = 2;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *ev = row_event(j, st);
		char *one = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
		size_t len = one ? strlen(one) + 1 : 0;
		free(one);
		if (!len) {
			json_decref(ev);
			rc = SQLITE_NOMEM;
			break;
		}
		if (j->batch_n > 0 && total + len > max_bytes) {
			json_decref(ev);
			rc = SQLITE_DONE;
			break;
		}
		total += len;
		j->batch_ids[j->batch_n] = sqlite3_column_int64(st, 0);
		j->batch_bytes[j->batch_n] = (size_t)sqlite3_column_bytes(st, 1);
		j->batch_n++;
		json_array_append_new(*out, ev);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		j->batch_n = 0;
		json_decref(*out);
		*out = NULL;
		return sdk_status_of_sqlite(rc);
	}
	return (int)j->batch_n;
}

int obj_batch_done(ob_journal *j)
{
	if (j->batch_n == 0)
		return 0;
	if (sqlite3_exec(j->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return sdk_status_of_sqlite(sqlite3_errcode(j->db));
	int rc = 0;
	for (size_t i = 0; i < j->batch_n && rc >= 0; i++) {
		sqlite3_bind_int64(j->st[ST_DELETE], 1, j->batch_ids[i]);
		rc = run(j, j->st[ST_DELETE]);
	}
	if (rc < 0 || sqlite3_exec(j->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		if (rc >= 0)
			rc = sdk_status_of_sqlite(sqlite3_errcode(j->db));
		sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
		return rc;
	}
	for (size_t i = 0; i < j->batch_n; i++) {
		j->rows = j->rows ? j->rows - 1 : 0;
		j->bytes = j->bytes >= j->batch_bytes[i] ? j->bytes - j->batch_bytes[i] : 0;
	}
	int n = (int)j->batch_n;
	j->batch_n = 0;
	return n;
}

size_t obj_rows(const ob_journal *j) { return j->rows; }
size_t obj_bytes(const ob_journal *j) { return j->bytes; }
const char *obj_epoch(const ob_journal *j) { return j->epoch; }
