/* The memory store's tables: create, list, show, delete, who may reach
 * which (mem_resolve), and a user's purge. */
#include "serve/memory/store_int.h"

#include "sdk/clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FTS_AUTOMERGE 8 /* FTS5's default is 4 */

static const char *owner_of(const char *user, const char *owner)
{
	return owner && *owner ? owner : user;
}

#define TINFO_COLS "t.id, t.owner, t.name, t.columns"

static int tinfo_read(sqlite3_stmt *st, mem_tinfo *t, sdk_err *e)
{
	t->id = sqlite3_column_int64(st, 0);
	snprintf(t->owner, sizeof t->owner, "%s", (const char *)sqlite3_column_text(st, 1));
	snprintf(t->name, sizeof t->name, "%s", (const char *)sqlite3_column_text(st, 2));
	const char *text = (const char *)sqlite3_column_text(st, 3);
	json_t *spec = text ? json_loads(text, 0, NULL) : NULL;
	char err[128];
	int rc = spec ? mem_columns_parse(spec, &t->cols, err, sizeof err) : -1;
	json_decref(spec);
	if (rc < 0)
		return sdk_fail(e, SDK_ECORRUPT, "table %lld: stored columns unreadable",
				(long long)t->id);
	t->fts = mem_columns_has_text(&t->cols);
	return 0;
}

int mem_resolve(mem_conn *c, const char *user, const char *owner, const char *name, bool write,
		mem_tinfo *t, sdk_err *e)
{
	if (!mem_table_name_valid(name))
		return sdk_fail(e, SDK_EINVAL,
				"a table name is 1 to %d of a-z, 0-9, '_', starting with a letter",
				MEM_NAME_MAX);
	memset(t, 0, sizeof *t);
	const char *own = owner_of(user, owner);
	bool other = strcmp(own, user) != 0;
	sqlite3_stmt *st;
	int rc = mem_prep(c,
			  other ? "SELECT " TINFO_COLS " FROM mem_tables t JOIN mem_shares s"
				  " ON s.table_id = t.id AND s.user = ?3"
				  " WHERE t.owner = ?1 AND t.name = ?2"
				: "SELECT " TINFO_COLS " FROM mem_tables t"
				  " WHERE t.owner = ?1 AND t.name = ?2",
			  &st, e);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, own, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	if (other)
		sqlite3_bind_text(st, 3, user, -1, SQLITE_STATIC);
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW)
		rc = tinfo_read(st, t, e);
	else if (step == SQLITE_DONE)
		rc = other ? sdk_fail(e, SDK_ENOTFOUND, "no table '%s' of '%s' is shared with you",
				      name, own)
			   : sdk_fail(e, SDK_ENOTFOUND, "no table '%s'", name);
	else
		rc = mem_db_fail(c->db, e, "find table");
	sqlite3_finalize(st);
	if (rc == 0 && other) {
		t->shared = true;
		if (write)
			return sdk_fail(e, SDK_EDENIED, "table '%s' of '%s' is shared read-only",
					name, own);
	}
	return rc;
}

#define TABLE_COLS \
	"t.id, t.owner, t.name, t.description, t.columns, t.created_ms, t.n_rows, t.bytes"

/* One table as shown to `user`; with_shares adds who it is shared with. */
static int table_json(mem_conn *c, sqlite3_stmt *st, const char *user, bool with_shares,
		      json_t **out, sdk_err *e)
{
	const char *owner = (const char *)sqlite3_column_text(st, 1);
	json_t *cols = json_loads((const char *)sqlite3_column_text(st, 4), 0, NULL);
	bool fts = false;
	size_t i;
	json_t *m;
	json_array_foreach(cols, i, m) {
		const char *type = json_string_value(json_object_get(m, "type"));
		fts |= type && !strcmp(type, "text");
	}
	json_t *o = json_pack(
		"{s:s, s:s, s:s, s:o, s:b, s:I, s:I, s:I, s:b}", "name",
		(const char *)sqlite3_column_text(st, 2), "owner", owner, "description",
		(const char *)sqlite3_column_text(st, 3), "columns", cols ? cols : json_array(),
		"full_text", fts, "rows", (json_int_t)sqlite3_column_int64(st, 6), "bytes",
		(json_int_t)sqlite3_column_int64(st, 7), "created_ms",
		(json_int_t)sqlite3_column_int64(st, 5), "shared", strcmp(owner, user) != 0);
	if (!o)
		return mem_oom(e);
	if (with_shares && !strcmp(owner, user)) {
		json_t *sh;
		int rc = mem_shares_json(c, sqlite3_column_int64(st, 0), &sh, e);
		if (rc < 0) {
			json_decref(o);
			return rc;
		}
		json_object_set_new(o, "shared_with", sh);
	}
	*out = o;
	return 0;
}

static int table_json_by_id(mem_conn *c, int64_t id, const char *user, json_t **out,
			    sdk_err *e)
{
	sqlite3_stmt *st;
	int rc = mem_prep(c, "SELECT " TABLE_COLS " FROM mem_tables t WHERE t.id = ?", &st, e);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW)
		rc = table_json(c, st, user, true, out, e);
	else if (step == SQLITE_DONE)
		rc = sdk_fail(e, SDK_ENOTFOUND, "no such table");
	else
		rc = mem_db_fail(c->db, e, "read table");
	sqlite3_finalize(st);
	return rc;
}

/* The SQL objects of table `id`: names are mr_ID / mf_ID, the column names
 * inside JSON path literals passed mem_column_name_valid. */
static void table_ddl(int64_t id, const mem_columns *cols, mem_buf *sql)
{
	long long t = (long long)id;
	bool fts = mem_columns_has_text(cols);
	mem_buf_printf(sql,
		       "CREATE TABLE mr_%lld (id INTEGER PRIMARY KEY AUTOINCREMENT,"
		       " data TEXT NOT NULL, created_ms INTEGER NOT NULL,"
		       " updated_ms INTEGER NOT NULL",
		       t);
	if (fts) {
		/* The text columns' values, one per line: what FTS5 indexes. */
		mem_buf_str(sql, ", fulltext TEXT GENERATED ALWAYS AS (");
		bool first = true;
		for (size_t i = 0; i < cols->n; i++) {
			if (cols->c[i].type != MEM_T_TEXT)
				continue;
			mem_buf_printf(sql, "%scoalesce(json_extract(data,'$.%s'),'')",
				       first ? "" : " || char(10) || ", cols->c[i].name);
			first = false;
		}
		mem_buf_str(sql, ") VIRTUAL");
	}
	mem_buf_str(sql, ");");
	for (size_t i = 0; i < cols->n; i++)
		if (cols->c[i].indexed)
			mem_buf_printf(
				sql,
				"CREATE INDEX mr_%lld_c%zu ON mr_%lld (json_extract(data,'$.%s'));",
				t, i, t, cols->c[i].name);
	if (!fts)
		return;
	mem_buf_printf(sql,
		       "CREATE VIRTUAL TABLE mf_%lld USING fts5(fulltext, content='mr_%lld',"
		       " content_rowid='id', tokenize='porter unicode61 remove_diacritics 2');"
		       /* Merge index segments less eagerly: faster batch inserts. */
		       "INSERT INTO mf_%lld (mf_%lld, rank) VALUES ('automerge', %d);"
		       "CREATE TRIGGER mr_%lld_ai AFTER INSERT ON mr_%lld BEGIN"
		       " INSERT INTO mf_%lld (rowid, fulltext) VALUES (new.id, new.fulltext); END;"
		       "CREATE TRIGGER mr_%lld_ad AFTER DELETE ON mr_%lld BEGIN"
		       " INSERT INTO mf_%lld (mf_%lld, rowid, fulltext)"
		       " VALUES ('delete', old.id, old.fulltext); END;"
		       "CREATE TRIGGER mr_%lld_au AFTER UPDATE OF data ON mr_%lld BEGIN"
		       " INSERT INTO mf_%lld (mf_%lld, rowid, fulltext)"
		       " VALUES ('delete', old.id, old.fulltext);"
		       " INSERT INTO mf_%lld (rowid, fulltext) VALUES (new.id, new.fulltext); END;",
		       t, t, t, t, FTS_AUTOMERGE, t, t, t, t, t, t, t, t, t, t, t, t);
}

/* The checks of a create that need no database; *desc borrows from spec. */
static int spec_check(json_t *spec, const char **name, const char **desc, sdk_err *e)
{
	if (!json_is_object(spec))
		return sdk_fail(e, SDK_EINVAL, "the body is {\"name\", \"columns\"?, \"description\"?}");
	const char *key;
	json_t *v;
	json_object_foreach(spec, key, v) {
		if (strcmp(key, "name") && strcmp(key, "columns") && strcmp(key, "description"))
			return sdk_fail(e, SDK_EINVAL,
					"unknown key '%.32s' (name, columns, description)", key);
	}
	*name = json_string_value(json_object_get(spec, "name"));
	if (!*name || !mem_table_name_valid(*name) ||
	    strlen(*name) != json_string_length(json_object_get(spec, "name")))
		return sdk_fail(e, SDK_EINVAL,
				"name: 1 to %d of a-z, 0-9, '_', starting with a letter",
				MEM_NAME_MAX);
	json_t *d = json_object_get(spec, "description");
	if (d && !json_is_null(d) &&
	    (!json_is_string(d) || json_string_length(d) > MEM_DESCRIPTION_MAX))
		return sdk_fail(e, SDK_EINVAL, "description is a string of at most %d bytes",
				MEM_DESCRIPTION_MAX);
	*desc = json_is_string(d) ? json_string_value(d) : "";
	return 0;
}

static int tables_owned(mem_conn *c, const char *user, int64_t *n, sdk_err *e)
{
	sqlite3_stmt *st;
	int rc = mem_prep(c, "SELECT count(*) FROM mem_tables WHERE owner = ?", &st, e);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		*n = sqlite3_column_int64(st, 0);
	else
		rc = mem_db_fail(c->db, e, "count tables");
	sqlite3_finalize(st);
	return rc;
}

int mem_table_create(mem_store *s, const char *user, json_t *spec, int64_t now_ms, json_t **out,
		     sdk_err *e)
{
	const char *name = NULL, *desc = "";
	int rc = spec_check(spec, &name, &desc, e);
	if (rc < 0)
		return rc;
	mem_columns *cols = malloc(sizeof *cols);
	char err[160];
	if (!cols)
		return mem_oom(e);
	if (mem_columns_parse(json_object_get(spec, "columns"), cols, err, sizeof err) < 0) {
		free(cols);
		return sdk_fail(e, SDK_EINVAL, "%s", err);
	}
	json_t *cj = mem_columns_json(cols);
	char *ctext = cj ? json_dumps(cj, JSON_COMPACT) : NULL;
	json_decref(cj);
	mem_buf ddl = { 0 };
	mem_conn c;
	mem_conn_get(s, &c);
	sqlite3_stmt *st = NULL;
	int64_t n = 0;
	if (!ctext) {
		rc = mem_oom(e);
		goto done;
	}
	if ((rc = mem_begin(&c, true, e)) < 0 || (rc = tables_owned(&c, user, &n, e)) < 0)
		goto done;
	if (n >= s->quota.tables) {
		rc = sdk_fail(e, SDK_EQUOTA, "memory quota: at most %u tables per user (you have %lld)",
			      s->quota.tables, (long long)n);
		goto done;
	}
	if ((rc = mem_prep(&c, "INSERT INTO mem_tables (owner, name, description, columns,"
			       " created_ms) VALUES (?, ?, ?, ?, ?)", &st, e)) < 0)
		goto done;
	sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, desc, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, ctext, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, now_ms);
	int step = sqlite3_step(st);
	if ((step & 0xff) == SQLITE_CONSTRAINT) {
		rc = sdk_fail(e, SDK_ECONFLICT, "you have a table '%s' already", name);
		goto done;
	}
	if (step != SQLITE_DONE) {
		rc = mem_db_fail(c.db, e, "create table");
		goto done;
	}
	int64_t id = sqlite3_last_insert_rowid(c.db);
	table_ddl(id, cols, &ddl);
	if (ddl.oom) {
		rc = mem_oom(e);
		goto done;
	}
	if (sqlite3_exec(c.db, ddl.p, NULL, NULL, NULL) != SQLITE_OK) {
		rc = mem_db_fail(c.db, e, "create table");
		goto done;
	}
	json_t *o = NULL;
	if ((rc = table_json_by_id(&c, id, user, &o, e)) < 0)
		goto done;
	if ((rc = mem_commit(&c, e)) < 0)
		json_decref(o);
	else
		*out = o;
done:
	sqlite3_finalize(st);
	mem_rollback(&c);
	mem_conn_put(&c);
	mem_buf_free(&ddl);
	free(ctext);
	free(cols);
	return rc;
}

int mem_table_list(mem_store *s, const char *user, json_t **out, sdk_err *e)
{
	mem_conn c;
	mem_conn_get(s, &c);
	json_t *tables = json_array();
	int rc = tables ? mem_begin(&c, false, e) : mem_oom(e);
	static const char *const queries[] = {
		"SELECT " TABLE_COLS " FROM mem_tables t WHERE t.owner = ? ORDER BY t.name",
		"SELECT " TABLE_COLS " FROM mem_shares s JOIN mem_tables t ON t.id = s.table_id"
		" WHERE s.user = ? ORDER BY t.owner, t.name",
	};
	for (size_t q = 0; rc == 0 && q < 2; q++) {
		sqlite3_stmt *st;
		if ((rc = mem_prep(&c, queries[q], &st, e)) < 0)
			break;
		sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
		int step = SQLITE_DONE;
		while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
			json_t *t = NULL;
			if ((rc = table_json(&c, st, user, false, &t, e)) == 0 &&
			    json_array_append_new(tables, t) < 0)
				rc = mem_oom(e);
		}
		if (rc == 0 && step != SQLITE_DONE)
			rc = mem_db_fail(c.db, e, "list tables");
		sqlite3_finalize(st);
	}
	mem_rollback(&c);
	mem_conn_put(&c);
	if (rc == 0 && !(*out = json_pack("{s:O, s:i}", "tables", tables, "count",
					  (int)json_array_size(tables))))
		rc = mem_oom(e);
	json_decref(tables);
	return rc;
}

int mem_table_get(mem_store *s, const char *user, const char *owner, const char *name,
		  json_t **out, sdk_err *e)
{
	mem_conn c;
	mem_conn_get(s, &c);
	mem_tinfo *t = malloc(sizeof *t);
	int rc = !t ? mem_oom(e) : mem_begin(&c, false, e);
	if (rc == 0)
		rc = mem_resolve(&c, user, owner, name, false, t, e);
	if (rc == 0)
		rc = table_json_by_id(&c, t->id, user, out, e);
	mem_rollback(&c);
	mem_conn_put(&c);
	free(t);
	return rc;
}

/* Drops table `id` (rows, index, its shares) in the caller's transaction. */
static int table_drop(mem_conn *c, int64_t id, sdk_err *e)
{
	mem_buf sql = { 0 };
	long long t = (long long)id;
	mem_buf_printf(&sql,
		       "DROP TABLE IF EXISTS mf_%lld; DROP TABLE IF EXISTS mr_%lld;"
		       " DELETE FROM mem_tables WHERE id = %lld;",
		       t, t, t);
	int rc = sql.oom ? mem_oom(e) : 0;
	if (rc == 0 && sqlite3_exec(c->db, sql.p, NULL, NULL, NULL) != SQLITE_OK)
		rc = mem_db_fail(c->db, e, "delete table");
	mem_buf_free(&sql);
	return rc;
}

int mem_table_delete(mem_store *s, const char *user, const char *owner, const char *name,
		     json_t **out, sdk_err *e)
{
	mem_conn c;
	mem_conn_get(s, &c);
	c.deadline = sdk_mono_ms() + MEM_DROP_MS_MAX;
	mem_tinfo *t = malloc(sizeof *t);
	int rc = !t ? mem_oom(e) : mem_begin(&c, true, e);
	if (rc == 0)
		rc = mem_resolve(&c, user, owner, name, true, t, e);
	if (rc == 0)
		rc = table_drop(&c, t->id, e);
	if (rc == 0)
		rc = mem_commit(&c, e);
	if (rc == 0) {
		/* Give the pages back; a failure here loses nothing. */
		sqlite3_exec(c.db, "PRAGMA incremental_vacuum", NULL, NULL, NULL);
		if (!(*out = json_pack("{s:s, s:b}", "name", t->name, "deleted", 1)))
			rc = mem_oom(e);
	}
	mem_rollback(&c);
	mem_conn_put(&c);
	free(t);
	return rc;
}

/* The id of one table `user` owns: 1 and *id, 0 when none is left. */
static int table_of(mem_conn *c, const char *user, int64_t *id, sdk_err *e)
{
	sqlite3_stmt *st;
	int rc = mem_prep(c, "SELECT id FROM mem_tables WHERE owner = ? ORDER BY id LIMIT 1", &st, e);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		*id = sqlite3_column_int64(st, 0);
		rc = 1;
	} else if (step != SQLITE_DONE) {
		rc = mem_db_fail(c->db, e, "find tables");
	}
	sqlite3_finalize(st);
	return rc;
}

int mem_user_purge(mem_store *s, const char *user, sdk_err *e)
{
	mem_conn c;
	mem_conn_get(s, &c);
	int rc, dropped = 0;
	for (;;) {
		int64_t id = 0;
		c.deadline = sdk_mono_ms() + MEM_DROP_MS_MAX;
		if ((rc = mem_begin(&c, true, e)) < 0)
			break;
		if ((rc = table_of(&c, user, &id, e)) <= 0)
			break; /* none left (0), or an error */
		if ((rc = table_drop(&c, id, e)) < 0 || (rc = mem_commit(&c, e)) < 0)
			break;
		dropped++;
	}
	if (rc == 0)
		rc = mem_shares_drop_user(&c, user, e);
	if (rc == 0)
		rc = mem_commit(&c, e);
	mem_rollback(&c);
	if (rc == 0 && dropped)
		sqlite3_exec(c.db, "PRAGMA incremental_vacuum", NULL, NULL, NULL);
	mem_conn_put(&c);
	return rc < 0 ? rc : dropped;
}
