#include "serve/memory/store.h"
#include "sdk/clock.h"

#include "serve/memory/filter.h"
#include "sdk/db.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MEM_SCHEMA_VERSION 1
#define MEM_CACHE_KIB 8192 /* page cache per connection */
#define MEM_PROGRESS_OPS 4096 /* VM steps between deadline checks */
#define MEM_DROP_MS_MAX 120000 /* dropping a large table takes longer than a query */
#define FTS_AUTOMERGE 8 /* FTS5's default is 4 */

/* Bump MEM_SCHEMA_VERSION and add a migration when this changes; a
 * database from a newer build is refused rather than half-understood.
 * AUTOINCREMENT: a table id names SQL tables (mr_ID, mf_ID) and row ids
 * are handed to clients, so neither is ever reused. */
static const char mem_schema[] =
	"CREATE TABLE IF NOT EXISTS mem_tables ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  owner TEXT NOT NULL,"
	"  name TEXT NOT NULL,"
	"  description TEXT NOT NULL DEFAULT '',"
	"  columns TEXT NOT NULL DEFAULT '[]',"
	"  created_ms INTEGER NOT NULL,"
	"  n_rows INTEGER NOT NULL DEFAULT 0,"
	"  bytes INTEGER NOT NULL DEFAULT 0,"
	"  UNIQUE (owner, name)"
	");"
	"CREATE TABLE IF NOT EXISTS mem_shares ("
	"  table_id INTEGER NOT NULL REFERENCES mem_tables (id) ON DELETE CASCADE,"
	"  user TEXT NOT NULL,"
	"  created_ms INTEGER NOT NULL,"
	"  PRIMARY KEY (table_id, user)"
	") WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS mem_shares_by_user ON mem_shares (user, table_id);";

struct mem_store {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned n;
	sqlite3 *db[MEM_CONNS_MAX];
	bool busy[MEM_CONNS_MAX];
};

/* What a request resolved its table to. */
struct tinfo {
	int64_t id;
	char owner[MEM_NAME_MAX + 1];
	char name[MEM_NAME_MAX + 1];
	mem_columns cols;
	bool shared; /* reached through a share, not owned by the caller */
	bool fts;
};

/* ------------------------------------------------------------------ */
/* Errors */

static int fail(mem_error *e, enum mem_status st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(mem_error *e, enum mem_status st, const char *fmt, ...)
{
	e->status = st;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
	return -1;
}

static int db_fail(sqlite3 *db, mem_error *e, const char *what)
{
	int rc = sqlite3_errcode(db) & 0xff;
	if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
		return fail(e, MEM_E_BUSY, "the memory database is busy; try again");
	if (rc == SQLITE_INTERRUPT)
		return fail(e, MEM_E_TIMEOUT, "the query ran longer than %d ms", MEM_QUERY_MS_MAX);
	if (rc == SQLITE_FULL)
		return fail(e, MEM_E_LIMIT, "the disk is full");
	return fail(e, MEM_E_IO, "%s: %s", what, sqlite3_errmsg(db));
}

static int oom(mem_error *e) { return fail(e, MEM_E_IO, "out of memory"); }

/* ------------------------------------------------------------------ */
/* Connections */

/* A statement past its deadline is interrupted (SQLITE_INTERRUPT). */
static int on_progress(void *arg)
{
	return sdk_mono_ms() > *(int64_t *)arg;
}

struct conn {
	mem_store *s;
	unsigned i;
	sqlite3 *db;
	int64_t deadline;
};

static void conn_get(mem_store *s, struct conn *c)
{
	pthread_mutex_lock(&s->mu);
	for (;;) {
		for (unsigned i = 0; i < s->n; i++)
			if (!s->busy[i]) {
				s->busy[i] = true;
				pthread_mutex_unlock(&s->mu);
				*c = (struct conn){ .s = s, .i = i, .db = s->db[i] };
				c->deadline = sdk_mono_ms() + MEM_QUERY_MS_MAX;
				sqlite3_progress_handler(c->db, MEM_PROGRESS_OPS, on_progress,
							 &c->deadline);
				return;
			}
		pthread_cond_wait(&s->cv, &s->mu);
	}
}

static void conn_put(struct conn *c)
{
	sqlite3_progress_handler(c->db, 0, NULL, NULL);
	if (!sqlite3_get_autocommit(c->db)) /* a path that forgot: never leak a transaction */
		sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
	pthread_mutex_lock(&c->s->mu);
	c->s->busy[c->i] = false;
	pthread_cond_signal(&c->s->cv);
	pthread_mutex_unlock(&c->s->mu);
}

static int begin(struct conn *c, bool write, mem_error *e)
{
	if (sqlite3_exec(c->db, write ? "BEGIN IMMEDIATE" : "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		return db_fail(c->db, e, "begin");
	return 0;
}

static int commit(struct conn *c, mem_error *e)
{
	if (sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		db_fail(c->db, e, "commit");
		sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return 0;
}

static void rollback(struct conn *c)
{
	if (!sqlite3_get_autocommit(c->db))
		sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
}

static sqlite3_stmt *prep(struct conn *c, const char *sql, mem_error *e)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) {
		db_fail(c->db, e, "prepare");
		return NULL;
	}
	return st;
}

static int open_conn(const char *data_dir, sqlite3 **out, char *err, size_t errlen)
{
	if (sdk_db_open(data_dir, "memory", out, err, errlen) < 0)
		return -1;
	char pragma[64];
	snprintf(pragma, sizeof pragma, "PRAGMA cache_size=-%d;", MEM_CACHE_KIB);
	if (sdk_db_exec(*out, pragma, err, errlen) < 0) {
		sqlite3_close(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

static int schema_init(sqlite3 *db, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int version = -1;
	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (version < 0) {
		snprintf(err, errlen, "cannot read the schema version: %s", sqlite3_errmsg(db));
		return -1;
	}
	if (version > MEM_SCHEMA_VERSION) {
		snprintf(err, errlen, "memory.db has schema %d; this build knows up to %d", version,
			 MEM_SCHEMA_VERSION);
		return -1;
	}
	if (version == MEM_SCHEMA_VERSION)
		return 0;
	/* A new file: let deleted tables give their pages back. auto_vacuum
	 * can only be chosen before the first table exists and, once the file
	 * is in WAL mode, takes a VACUUM (instant on an empty file). */
	char sql[sizeof mem_schema + 128];
	snprintf(sql, sizeof sql,
		 "PRAGMA auto_vacuum=INCREMENTAL; VACUUM; BEGIN IMMEDIATE; %s PRAGMA "
		 "user_version=%d;"
		 " COMMIT;",
		 mem_schema, MEM_SCHEMA_VERSION);
	if (sdk_db_exec(db, sql, err, errlen) < 0) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return 0;
}

mem_store *mem_store_open(const char *data_dir, unsigned conns, char *err, size_t errlen)
{
	if (conns < 1 || conns > MEM_CONNS_MAX) {
		snprintf(err, errlen, "1 to %d connections", MEM_CONNS_MAX);
		return NULL;
	}
	mem_store *s = calloc(1, sizeof *s);
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	for (; s->n < conns; s->n++) {
		if (open_conn(data_dir, &s->db[s->n], err, errlen) < 0)
			goto fail;
		if (s->n == 0 && schema_init(s->db[0], err, errlen) < 0) {
			s->n++;
			goto fail;
		}
	}
	return s;
fail:
	mem_store_close(s);
	return NULL;
}

void mem_store_close(mem_store *s)
{
	if (!s)
		return;
	for (unsigned i = 0; i < s->n; i++)
		sqlite3_close(s->db[i]);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s);
}

/* ------------------------------------------------------------------ */
/* Helpers */

static int bind_json(sqlite3_stmt *st, int i, json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_STRING:
		return sqlite3_bind_text(st, i, json_string_value(v), (int)json_string_length(v),
					 SQLITE_STATIC);
	case JSON_INTEGER: return sqlite3_bind_int64(st, i, json_integer_value(v));
	case JSON_REAL: return sqlite3_bind_double(st, i, json_real_value(v));
	case JSON_TRUE: return sqlite3_bind_int(st, i, 1);
	case JSON_FALSE: return sqlite3_bind_int(st, i, 0);
	default: return sqlite3_bind_null(st, i);
	}
}

/* A column's SQL value as JSON (a new reference), NULL on failure. */
static json_t *value_json(sqlite3_stmt *st, int col)
{
	switch (sqlite3_column_type(st, col)) {
	case SQLITE_INTEGER: return json_integer(sqlite3_column_int64(st, col));
	case SQLITE_FLOAT: return json_real(sqlite3_column_double(st, col));
	case SQLITE_TEXT:
		return json_stringn((const char *)sqlite3_column_text(st, col),
				    (size_t)sqlite3_column_bytes(st, col));
	case SQLITE_NULL: return json_null();
	default: return NULL;
	}
}

static const char *owner_of(const char *user, const char *owner)
{
	return owner && *owner ? owner : user;
}

#define TINFO_COLS "t.id, t.owner, t.name, t.columns"

static int tinfo_read(sqlite3_stmt *st, struct tinfo *t, mem_error *e)
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
		return fail(e, MEM_E_IO, "table %lld: stored columns unreadable", (long long)t->id);
	t->fts = mem_columns_has_text(&t->cols);
	return 0;
}

/* Finds the table the caller means. Inside the caller's transaction. */
static int resolve(struct conn *c, const char *user, const char *owner, const char *name,
		   bool write, struct tinfo *t, mem_error *e)
{
	if (!mem_table_name_valid(name))
		return fail(e, MEM_E_INVALID,
			    "a table name is 1 to %d of a-z, 0-9, '_', starting with a letter",
			    MEM_NAME_MAX);
	memset(t, 0, sizeof *t);
	const char *own = owner_of(user, owner);
	bool other = strcmp(own, user) != 0;
	sqlite3_stmt *st = prep(c,
				other ? "SELECT " TINFO_COLS " FROM mem_tables t JOIN mem_shares s"
					" ON s.table_id = t.id AND s.user = ?3"
					" WHERE t.owner = ?1 AND t.name = ?2"
				      : "SELECT " TINFO_COLS " FROM mem_tables t"
					" WHERE t.owner = ?1 AND t.name = ?2",
				e);
	if (!st)
		return -1;
	sqlite3_bind_text(st, 1, own, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	if (other)
		sqlite3_bind_text(st, 3, user, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	int out = -1;
	if (rc == SQLITE_ROW)
		out = tinfo_read(st, t, e);
	else if (rc == SQLITE_DONE)
		fail(e, MEM_E_NOT_FOUND, other ? "no table '%s' of '%s' is shared with you"
					       : "no table '%s'%.0s",
		     name, own);
	else
		db_fail(c->db, e, "find table");
	sqlite3_finalize(st);
	if (out == 0 && other) {
		t->shared = true;
		if (write)
			return fail(e, MEM_E_READ_ONLY, "table '%s' of '%s' is shared read-only",
				    name, own);
	}
	return out;
}

static json_t *shares_json(struct conn *c, int64_t table_id, mem_error *e)
{
	sqlite3_stmt *st =
		prep(c, "SELECT user FROM mem_shares WHERE table_id = ? ORDER BY user", e);
	if (!st)
		return NULL;
	sqlite3_bind_int64(st, 1, table_id);
	json_t *a = json_array();
	int rc;
	while (a && (rc = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(a, json_string((const char *)sqlite3_column_text(st, 0)));
	if (!a || rc != SQLITE_DONE) {
		a ? db_fail(c->db, e, "read shares") : oom(e);
		json_decref(a);
		a = NULL;
	}
	sqlite3_finalize(st);
	return a;
}

#define TABLE_COLS \
	"t.id, t.owner, t.name, t.description, t.columns, t.created_ms, t.n_rows, t.bytes"

/* One table as shown to `user`; with_shares adds who it is shared with. */
static json_t *table_json(struct conn *c, sqlite3_stmt *st, const char *user, bool with_shares,
			  mem_error *e)
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
	if (!o) {
		oom(e);
		return NULL;
	}
	if (with_shares && !strcmp(owner, user)) {
		json_t *sh = shares_json(c, sqlite3_column_int64(st, 0), e);
		if (!sh) {
			json_decref(o);
			return NULL;
		}
		json_object_set_new(o, "shared_with", sh);
	}
	return o;
}

static json_t *table_json_by_id(struct conn *c, int64_t id, const char *user, mem_error *e)
{
	sqlite3_stmt *st = prep(c, "SELECT " TABLE_COLS " FROM mem_tables t WHERE t.id = ?", e);
	if (!st)
		return NULL;
	sqlite3_bind_int64(st, 1, id);
	json_t *o = NULL;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		o = table_json(c, st, user, true, e);
	else if (rc == SQLITE_DONE)
		fail(e, MEM_E_NOT_FOUND, "no such table");
	else
		db_fail(c->db, e, "read table");
	sqlite3_finalize(st);
	return o;
}

/* ------------------------------------------------------------------ */
/* Tables */

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

json_t *mem_table_create(mem_store *s, const char *user, json_t *spec, int64_t now_ms,
			 mem_error *e)
{
	if (!json_is_object(spec)) {
		fail(e, MEM_E_INVALID, "the body is {\"name\", \"columns\"?, \"description\"?}");
		return NULL;
	}
	const char *key;
	json_t *v;
	json_object_foreach(spec, key, v) {
		if (strcmp(key, "name") && strcmp(key, "columns") && strcmp(key, "description")) {
			fail(e, MEM_E_INVALID, "unknown key '%.32s' (name, columns, description)",
			     key);
			return NULL;
		}
	}
	const char *name = json_string_value(json_object_get(spec, "name"));
	if (!name || !mem_table_name_valid(name) ||
	    strlen(name) != json_string_length(json_object_get(spec, "name"))) {
		fail(e, MEM_E_INVALID, "name: 1 to %d of a-z, 0-9, '_', starting with a letter",
		     MEM_NAME_MAX);
		return NULL;
	}
	json_t *d = json_object_get(spec, "description");
	if (d && !json_is_null(d) &&
	    (!json_is_string(d) || json_string_length(d) > MEM_DESCRIPTION_MAX)) {
		fail(e, MEM_E_INVALID, "description is a string of at most %d bytes",
		     MEM_DESCRIPTION_MAX);
		return NULL;
	}
	const char *desc = json_is_string(d) ? json_string_value(d) : "";
	mem_columns *cols = malloc(sizeof *cols);
	char err[160];
	if (!cols) {
		oom(e);
		return NULL;
	}
	if (mem_columns_parse(json_object_get(spec, "columns"), cols, err, sizeof err) < 0) {
		fail(e, MEM_E_INVALID, "%s", err);
		free(cols);
		return NULL;
	}
	json_t *cj = mem_columns_json(cols);
	char *ctext = cj ? json_dumps(cj, JSON_COMPACT) : NULL;
	json_decref(cj);
	mem_buf ddl = { 0 };
	json_t *out = NULL;
	struct conn c;
	conn_get(s, &c);
	if (!ctext) {
		oom(e);
		goto done;
	}
	if (begin(&c, true, e) < 0)
		goto done;
	sqlite3_stmt *st = prep(&c, "SELECT count(*) FROM mem_tables WHERE owner = ?", e);
	if (!st)
		goto done;
	sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
	int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
	sqlite3_finalize(st);
	if (n < 0) {
		db_fail(c.db, e, "count tables");
		goto done;
	}
	if (n >= MEM_TABLES_PER_USER_MAX) {
		fail(e, MEM_E_LIMIT, "at most %d tables per user", MEM_TABLES_PER_USER_MAX);
		goto done;
	}
	st = prep(&c, "INSERT INTO mem_tables (owner, name, description, columns, created_ms)"
		      " VALUES (?, ?, ?, ?, ?)", e);
	if (!st)
		goto done;
	sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, desc, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, ctext, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, now_ms);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if ((rc & 0xff) == SQLITE_CONSTRAINT) {
		fail(e, MEM_E_EXISTS, "you have a table '%s' already", name);
		goto done;
	}
	if (rc != SQLITE_DONE) {
		db_fail(c.db, e, "create table");
		goto done;
	}
	int64_t id = sqlite3_last_insert_rowid(c.db);
	table_ddl(id, cols, &ddl);
	if (ddl.oom) {
		oom(e);
		goto done;
	}
	if (sqlite3_exec(c.db, ddl.p, NULL, NULL, NULL) != SQLITE_OK) {
		db_fail(c.db, e, "create table");
		goto done;
	}
	out = table_json_by_id(&c, id, user, e);
	if (out && commit(&c, e) < 0) {
		json_decref(out);
		out = NULL;
	}
done:
	rollback(&c);
	conn_put(&c);
	mem_buf_free(&ddl);
	free(ctext);
	free(cols);
	return out;
}

json_t *mem_table_list(mem_store *s, const char *user, mem_error *e)
{
	struct conn c;
	conn_get(s, &c);
	json_t *tables = json_array();
	if (!tables) {
		oom(e);
		goto fail;
	}
	if (begin(&c, false, e) < 0)
		goto fail;
	static const char *const queries[] = {
		"SELECT " TABLE_COLS " FROM mem_tables t WHERE t.owner = ? ORDER BY t.name",
		"SELECT " TABLE_COLS " FROM mem_shares s JOIN mem_tables t ON t.id = s.table_id"
		" WHERE s.user = ? ORDER BY t.owner, t.name",
	};
	for (size_t q = 0; q < 2; q++) {
		sqlite3_stmt *st = prep(&c, queries[q], e);
		if (!st)
			goto fail;
		sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
		int rc;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			json_t *t = table_json(&c, st, user, false, e);
			if (!t || json_array_append_new(tables, t) < 0) {
				sqlite3_finalize(st);
				if (t)
					oom(e);
				goto fail;
			}
		}
		if (rc != SQLITE_DONE)
			db_fail(c.db, e, "list tables");
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			goto fail;
	}
	rollback(&c);
	conn_put(&c);
	return json_pack("{s:o, s:i}", "tables", tables, "count", (int)json_array_size(tables));
fail:
	rollback(&c);
	conn_put(&c);
	json_decref(tables);
	return NULL;
}

json_t *mem_table_get(mem_store *s, const char *user, const char *owner, const char *name,
		      mem_error *e)
{
	struct conn c;
	conn_get(s, &c);
	struct tinfo *t = malloc(sizeof *t);
	json_t *out = NULL;
	if (!t)
		oom(e);
	else if (begin(&c, false, e) == 0 && resolve(&c, user, owner, name, false, t, e) == 0)
		out = table_json_by_id(&c, t->id, user, e);
	rollback(&c);
	conn_put(&c);
	free(t);
	return out;
}

json_t *mem_table_delete(mem_store *s, const char *user, const char *owner, const char *name,
			 mem_error *e)
{
	struct conn c;
	conn_get(s, &c);
	c.deadline = sdk_mono_ms() + MEM_DROP_MS_MAX;
	struct tinfo *t = malloc(sizeof *t);
	json_t *out = NULL;
	mem_buf sql = { 0 };
	if (!t) {
		oom(e);
		goto done;
	}
	if (begin(&c, true, e) < 0 || resolve(&c, user, owner, name, true, t, e) < 0)
		goto done;
	long long id = (long long)t->id;
	mem_buf_printf(&sql,
		       "DROP TABLE IF EXISTS mf_%lld; DROP TABLE IF EXISTS mr_%lld;"
		       " DELETE FROM mem_tables WHERE id = %lld;",
		       id, id, id);
	if (sql.oom) {
		oom(e);
		goto done;
	}
	if (sqlite3_exec(c.db, sql.p, NULL, NULL, NULL) != SQLITE_OK) {
		db_fail(c.db, e, "delete table");
		goto done;
	}
	if (commit(&c, e) < 0)
		goto done;
	/* Give the pages back; a failure here loses nothing. */
	sqlite3_exec(c.db, "PRAGMA incremental_vacuum", NULL, NULL, NULL);
	out = json_pack("{s:s, s:b}", "name", t->name, "deleted", 1);
	if (!out)
		oom(e);
done:
	rollback(&c);
	conn_put(&c);
	mem_buf_free(&sql);
	free(t);
	return out;
}

/* ------------------------------------------------------------------ */
/* Rows */

static int64_t user_bytes(struct conn *c, const char *owner, mem_error *e)
{
	sqlite3_stmt *st =
		prep(c, "SELECT coalesce(sum(bytes), 0) FROM mem_tables WHERE owner = ?", e);
	if (!st)
		return -1;
	sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
	int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
	if (n < 0)
		db_fail(c->db, e, "count bytes");
	sqlite3_finalize(st);
	return n;
}

/* Reads n_rows of table `id`. */
static int64_t table_rows(struct conn *c, int64_t id, mem_error *e)
{
	sqlite3_stmt *st = prep(c, "SELECT n_rows FROM mem_tables WHERE id = ?", e);
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
	if (n < 0)
		db_fail(c->db, e, "count rows");
	sqlite3_finalize(st);
	return n;
}

static int counts_add(struct conn *c, int64_t id, int64_t rows, int64_t bytes, mem_error *e)
{
	sqlite3_stmt *st = prep(c, "UPDATE mem_tables SET n_rows = n_rows + ?, bytes = bytes + ?"
				   " WHERE id = ?", e);
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, rows);
	sqlite3_bind_int64(st, 2, bytes);
	sqlite3_bind_int64(st, 3, id);
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : db_fail(c->db, e, "update counts");
	sqlite3_finalize(st);
	return rc;
}

json_t *mem_rows_insert(mem_store *s, const char *user, const char *owner, const char *name,
			json_t *rows, int64_t now_ms, mem_error *e)
{
	size_t n = json_is_array(rows) ? json_array_size(rows) : 1;
	if (!json_is_array(rows) && !json_is_object(rows)) {
		fail(e, MEM_E_INVALID, "the body is a row (an object) or an array of rows");
		return NULL;
	}
	if (n == 0) {
		fail(e, MEM_E_INVALID, "an empty array of rows");
		return NULL;
	}
	if (n > MEM_BATCH_MAX) {
		fail(e, MEM_E_TOO_LARGE, "at most %d rows at once", MEM_BATCH_MAX);
		return NULL;
	}
	struct conn c;
	conn_get(s, &c);
	struct tinfo *t = malloc(sizeof *t);
	json_t *ids = json_array(), *out = NULL;
	mem_buf sql = { 0 };
	sqlite3_stmt *st = NULL;
	if (!t || !ids) {
		oom(e);
		goto done;
	}
	if (begin(&c, true, e) < 0 || resolve(&c, user, owner, name, true, t, e) < 0)
		goto done;
	int64_t have = table_rows(&c, t->id, e), bytes_before = user_bytes(&c, t->owner, e);
	if (have < 0 || bytes_before < 0)
		goto done;
	if (have + (int64_t)n > MEM_ROWS_PER_TABLE_MAX) {
		fail(e, MEM_E_LIMIT, "a table holds at most %d rows (this one has %lld)",
		     MEM_ROWS_PER_TABLE_MAX, (long long)have);
		goto done;
	}
	mem_buf_printf(&sql, "INSERT INTO mr_%lld (data, created_ms, updated_ms) VALUES (?, ?, ?)",
		       (long long)t->id);
	if (sql.oom) {
		oom(e);
		goto done;
	}
	if (!(st = prep(&c, sql.p, e)))
		goto done;
	int64_t bytes = 0;
	for (size_t i = 0; i < n; i++) {
		json_t *row = json_is_array(rows) ? json_array_get(rows, i) : rows;
		char err[200];
		size_t len;
		bool too_large;
		char *text = mem_row_encode(&t->cols, row, &len, &too_large, err, sizeof err);
		if (!text) {
			if (json_is_array(rows))
				fail(e, too_large ? MEM_E_TOO_LARGE : MEM_E_INVALID,
				     "rows[%zu]: %s", i, err);
			else
				fail(e, too_large ? MEM_E_TOO_LARGE : MEM_E_INVALID, "%s", err);
			goto done;
		}
		sqlite3_bind_text(st, 1, text, (int)len, free);
		sqlite3_bind_int64(st, 2, now_ms);
		sqlite3_bind_int64(st, 3, now_ms);
		if (sqlite3_step(st) != SQLITE_DONE) {
			db_fail(c.db, e, "insert row");
			goto done;
		}
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		bytes += (int64_t)len;
		if (json_array_append_new(ids, json_integer(sqlite3_last_insert_rowid(c.db))) < 0) {
			oom(e);
			goto done;
		}
	}
	if (bytes_before + bytes > MEM_BYTES_PER_USER_MAX) {
		fail(e, MEM_E_LIMIT, "at most %lld bytes of rows per user", MEM_BYTES_PER_USER_MAX);
		goto done;
	}
	if (counts_add(&c, t->id, (int64_t)n, bytes, e) < 0 || commit(&c, e) < 0)
		goto done;
	out = json_pack("{s:O, s:i}", "ids", ids, "count", (int)n);
	if (!out)
		oom(e);
done:
	sqlite3_finalize(st);
	rollback(&c);
	conn_put(&c);
	json_decref(ids);
	mem_buf_free(&sql);
	free(t);
	return out;
}

static void row_text(sqlite3_stmt *st, mem_buf *out)
{
	mem_buf_printf(out, "{\"id\":%lld,\"data\":", (long long)sqlite3_column_int64(st, 0));
	mem_buf_add(out, (const char *)sqlite3_column_text(st, 1),
		    (size_t)sqlite3_column_bytes(st, 1));
	mem_buf_printf(out, ",\"created_ms\":%lld,\"updated_ms\":%lld}",
		       (long long)sqlite3_column_int64(st, 2),
		       (long long)sqlite3_column_int64(st, 3));
}

/* A JSON string literal of `s` (a name that passed validation). */
static void json_str(mem_buf *out, const char *s)
{
	mem_buf_printf(out, "\"%s\"", s);
}

struct page {
	const mem_order *order;
	const mem_cursor *cursor;
	const mem_filter *filter;
	const char *q;
	unsigned limit;
	const struct tinfo *t;
	/* filled as rows are read */
	unsigned got;
	char *next; /* the cursor after the last row shown */
	bool stop;
};

/* One keyset pass: appends up to limit+1-got rows to `out`. */
static int page_pass(struct conn *c, struct page *p, int pass, mem_buf *out, mem_error *e)
{
	mem_buf sql = { 0 };
	mem_binds *b = malloc(sizeof *b);
	long long id = (long long)p->t->id;
	char rank[48], rowid[48];
	snprintf(rank, sizeof rank, "mf_%lld.rank", id);
	snprintf(rowid, sizeof rowid, "mf_%lld.rowid", id);
	mem_sql_names names = { p->q ? rowid : "r.id", p->q ? rank : NULL };
	if (!b)
		return oom(e);
	b->n = 0;
	mem_buf_str(&sql, "SELECT r.id, r.data, r.created_ms, r.updated_ms, ");
	mem_order_key_sql(p->order, &names, &sql);
	if (p->q)
		mem_buf_printf(&sql, " FROM mf_%lld JOIN mr_%lld r ON r.id = mf_%lld.rowid"
				     " WHERE mf_%lld MATCH ?",
			       id, id, id, id);
	else
		mem_buf_printf(&sql, " FROM mr_%lld r WHERE 1", id);
	int rc = -1;
	sqlite3_stmt *st = NULL;
	if (mem_filter_sql(p->filter, &sql, b) < 0 ||
	    mem_keyset_sql(p->order, p->cursor, pass, &names, &sql, b) < 0) {
		fail(e, MEM_E_INVALID, "the filter is too large");
		goto out;
	}
	mem_order_sql(p->order, &names, &sql);
	mem_buf_str(&sql, " LIMIT ?");
	if (sql.oom) {
		oom(e);
		goto out;
	}
	if (!(st = prep(c, sql.p, e)))
		goto out;
	int i = 1;
	if (p->q)
		sqlite3_bind_text(st, i++, p->q, -1, SQLITE_STATIC);
	for (size_t k = 0; k < b->n; k++)
		bind_json(st, i++, b->v[k]);
	sqlite3_bind_int64(st, i, (sqlite3_int64)(p->limit + 1 - p->got));
	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (p->got == p->limit || out->len > MEM_PAGE_BYTES_MAX) {
			p->stop =
				true; /* there is more: p->next already points past the last row */
			break;
		}
		if (p->got)
			mem_buf_str(out, ",");
		row_text(st, out);
		p->got++;
		/* By id, the id alone says where to continue. */
		json_t *key = p->order->kind == MEM_ORDER_ID ? json_null() : value_json(st, 4);
		free(p->next);
		p->next = key ? mem_cursor_make(p->order, key, sqlite3_column_int64(st, 0)) : NULL;
		json_decref(key);
		if (!p->next) {
			oom(e);
			goto out;
		}
	}
	if (step != SQLITE_ROW && step != SQLITE_DONE) {
		const char *msg = sqlite3_errmsg(c->db);
		if (p->q && (step & 0xff) == SQLITE_ERROR)
			fail(e, MEM_E_INVALID, "q is not a valid full-text query: %s", msg);
		else
			db_fail(c->db, e, "query rows");
		goto out;
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	mem_buf_free(&sql);
	free(b);
	return rc;
}

int mem_rows_query(mem_store *s, const char *user, const char *owner, const char *name,
		   const mem_query *q, mem_buf *out, mem_error *e)
{
	unsigned limit = q->limit ? q->limit : MEM_LIMIT_DEFAULT;
	if (limit > MEM_LIMIT_MAX)
		return fail(e, MEM_E_INVALID, "limit is 1 to %d", MEM_LIMIT_MAX);
	const char *fq = q->q && *q->q ? q->q : NULL;
	if (fq && strlen(fq) > MEM_Q_BYTES_MAX)
		return fail(e, MEM_E_INVALID, "q is at most %d bytes", MEM_Q_BYTES_MAX);
	struct conn c;
	conn_get(s, &c);
	struct tinfo *t = malloc(sizeof *t);
	mem_filter *f = calloc(1, sizeof *f);
	mem_cursor cur = { 0 };
	mem_order ord;
	struct page p = { 0 };
	char err[200];
	int rc = -1;
	if (!t || !f) {
		oom(e);
		goto done;
	}
	if (begin(&c, false, e) < 0 || resolve(&c, user, owner, name, false, t, e) < 0)
		goto done;
	if (fq && !t->fts) {
		fail(e, MEM_E_INVALID, "table '%s' has no text columns to search with q", name);
		goto done;
	}
	if (mem_filter_parse(q->where, &t->cols, f, err, sizeof err) < 0 ||
	    mem_order_parse(q->order, &t->cols, fq != NULL, &ord, err, sizeof err) < 0 ||
	    mem_cursor_parse(q->cursor, &ord, &cur, err, sizeof err) < 0) {
		fail(e, MEM_E_INVALID, "%s", err);
		goto done;
	}
	p = (struct page){
		.order = &ord, .cursor = &cur, .filter = f, .q = fq, .limit = limit, .t = t
	};
	mem_buf_str(out, "{\"table\":");
	json_str(out, t->name);
	mem_buf_str(out, ",\"owner\":");
	json_str(out, t->owner);
	mem_buf_printf(out, ",\"shared\":%s,\"order\":", t->shared ? "true" : "false");
	json_str(out, ord.spec);
	mem_buf_str(out, ",\"rows\":[");
	int passes = mem_keyset_passes(&ord, &cur);
	for (int pass = 0; pass < passes && !p.stop && p.got <= limit; pass++)
		if (page_pass(&c, &p, pass, out, e) < 0)
			goto done;
	mem_buf_printf(out, "],\"count\":%u,\"next_cursor\":", p.got);
	if (p.stop && p.next) {
		mem_buf_str(out, "\"");
		mem_buf_str(out, p.next); /* base64url: nothing to escape */
		mem_buf_str(out, "\"}");
	} else {
		mem_buf_str(out, "null}");
	}
	if (out->oom) {
		oom(e);
		goto done;
	}
	rc = 0;
done:
	rollback(&c);
	conn_put(&c);
	free(p.next);
	mem_cursor_clear(&cur);
	if (f)
		mem_filter_clear(f);
	free(f);
	free(t);
	return rc;
}

/* Reads row `id` of table `t` into a statement positioned on it. */
static sqlite3_stmt *row_find(struct conn *c, const struct tinfo *t, int64_t id, mem_error *e)
{
	char sql[160];
	snprintf(sql, sizeof sql, "SELECT r.id, r.data, r.created_ms, r.updated_ms FROM mr_%lld r"
				  " WHERE r.id = ?", (long long)t->id);
	sqlite3_stmt *st = prep(c, sql, e);
	if (!st)
		return NULL;
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		return st;
	if (rc == SQLITE_DONE)
		fail(e, MEM_E_NOT_FOUND, "no row %lld in table '%s'", (long long)id, t->name);
	else
		db_fail(c->db, e, "read row");
	sqlite3_finalize(st);
	return NULL;
}

int mem_row_get(mem_store *s, const char *user, const char *owner, const char *name,
		int64_t id, mem_buf *out, mem_error *e)
{
	struct conn c;
	conn_get(s, &c);
	struct tinfo *t = malloc(sizeof *t);
	int rc = -1;
	sqlite3_stmt *st = NULL;
	if (!t)
		oom(e);
	else if (begin(&c, false, e) == 0 && resolve(&c, user, owner, name, false, t, e) == 0 &&
		 (st = row_find(&c, t, id, e))) {
		row_text(st, out);
		rc = out->oom ? oom(e) : 0;
	}
	sqlite3_finalize(st);
	rollback(&c);
	conn_put(&c);
	free(t);
	return rc;
}

int mem_row_patch(mem_store *s, const char *user, const char *owner, const char *name,
		  int64_t id, json_t *patch, int64_t now_ms, mem_buf *out, mem_error *e)
{
	if (!json_is_object(patch))
		return fail(e, MEM_E_INVALID,
			    "the body is an object of keys to set (null removes)");
	struct conn c;
	conn_get(s, &c);
	struct tinfo *t = malloc(sizeof *t);
	json_t *row = NULL;
	char *text = NULL;
	sqlite3_stmt *st = NULL;
	int rc = -1;
	if (!t) {
		oom(e);
		goto done;
	}
	if (begin(&c, true, e) < 0 || resolve(&c, user, owner, name, true, t, e) < 0 ||
	    !(st = row_find(&c, t, id, e)))
		goto done;
	int64_t old_len = sqlite3_column_bytes(st, 1);
	row = json_loadb((const char *)sqlite3_column_text(st, 1), (size_t)old_len, 0, NULL);
	sqlite3_finalize(st);
	st = NULL;
	if (!json_is_object(row)) {
		fail(e, MEM_E_IO, "row %lld is unreadable", (long long)id);
		goto done;
	}
	const char *key;
	json_t *v;
	json_object_foreach(patch, key, v) {
		if (json_is_null(v))
			json_object_del(row, key);
		else if (json_object_set(row, key, v) < 0) {
			oom(e);
			goto done;
		}
	}
	char err[200];
	size_t len;
	bool too_large;
	if (!(text = mem_row_encode(&t->cols, row, &len, &too_large, err, sizeof err))) {
		fail(e, too_large ? MEM_E_TOO_LARGE : MEM_E_INVALID, "%s", err);
		goto done;
	}
	int64_t before = user_bytes(&c, t->owner, e);
	if (before < 0)
		goto done;
	if ((int64_t)len > old_len && before + (int64_t)len - old_len > MEM_BYTES_PER_USER_MAX) {
		fail(e, MEM_E_LIMIT, "at most %lld bytes of rows per user", MEM_BYTES_PER_USER_MAX);
		goto done;
	}
	char sql[128];
	snprintf(sql, sizeof sql, "UPDATE mr_%lld SET data = ?, updated_ms = ? WHERE id = ?",
		 (long long)t->id);
	if (!(st = prep(&c, sql, e)))
		goto done;
	sqlite3_bind_text(st, 1, text, (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now_ms);
	sqlite3_bind_int64(st, 3, id);
	if (sqlite3_step(st) != SQLITE_DONE) {
		db_fail(c.db, e, "update row");
		goto done;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (counts_add(&c, t->id, 0, (int64_t)len - old_len, e) < 0)
		goto done;
	if (!(st = row_find(&c, t, id, e)))
		goto done;
	row_text(st, out);
	if (out->oom) {
		oom(e);
		goto done;
	}
	sqlite3_finalize(st);
	st = NULL;
	rc = commit(&c, e);
done:
	sqlite3_finalize(st);
	rollback(&c);
	conn_put(&c);
	json_decref(row);
	free(text);
	free(t);
	return rc;
}

json_t *mem_row_delete(mem_store *s, const char *user, const char *owner, const char *name,
		       int64_t id, mem_error *e)
{
	struct conn c;
	conn_get(s, &c);
	struct tinfo *t = malloc(sizeof *t);
	json_t *out = NULL;
	sqlite3_stmt *st = NULL;
	if (!t) {
		oom(e);
		goto done;
	}
	if (begin(&c, true, e) < 0 || resolve(&c, user, owner, name, true, t, e) < 0 ||
	    !(st = row_find(&c, t, id, e)))
		goto done;
	int64_t len = sqlite3_column_bytes(st, 1);
	sqlite3_finalize(st);
	char sql[96];
	snprintf(sql, sizeof sql, "DELETE FROM mr_%lld WHERE id = ?", (long long)t->id);
	if (!(st = prep(&c, sql, e)))
		goto done;
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) != SQLITE_DONE) {
		db_fail(c.db, e, "delete row");
		goto done;
	}
	if (counts_add(&c, t->id, -1, -len, e) < 0 || commit(&c, e) < 0)
		goto done;
	out = json_pack("{s:I, s:b}", "id", (json_int_t)id, "deleted", 1);
	if (!out)
		oom(e);
done:
	sqlite3_finalize(st);
	rollback(&c);
	conn_put(&c);
	free(t);
	return out;
}

/* ------------------------------------------------------------------ */
/* Shares */

static json_t *shares_answer(struct conn *c, const struct tinfo *t, mem_error *e)
{
	json_t *sh = shares_json(c, t->id, e);
	if (!sh)
		return NULL;
	json_t *o = json_pack("{s:s, s:s, s:o}", "owner", t->owner, "table", t->name, "shared_with",
			      sh);
	if (!o)
		oom(e);
	return o;
}

/* The users in `users` (an array of strings, checked by the caller). */
static int shares_change(struct conn *c, const struct tinfo *t, json_t *users, bool add,
			 int64_t now_ms, mem_error *e)
{
	sqlite3_stmt *st =
		prep(c,
		     add ? "INSERT OR IGNORE INTO mem_shares (table_id, user, created_ms)"
			   " VALUES (?, ?, ?)"
			 : "DELETE FROM mem_shares WHERE table_id = ? AND user = ?",
		     e);
	if (!st)
		return -1;
	size_t i;
	json_t *u;
	json_array_foreach(users, i, u) {
		if (!json_is_string(u) || !strcmp(json_string_value(u), t->owner)) {
			sqlite3_finalize(st);
			return fail(e, MEM_E_INVALID, "users[%zu]: a user other than the owner", i);
		}
		sqlite3_bind_int64(st, 1, t->id);
		sqlite3_bind_text(st, 2, json_string_value(u), -1, SQLITE_STATIC);
		if (add)
			sqlite3_bind_int64(st, 3, now_ms);
		if (sqlite3_step(st) != SQLITE_DONE) {
			db_fail(c->db, e, "change shares");
			sqlite3_finalize(st);
			return -1;
		}
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	if (!add)
		return 0;
	st = prep(c, "SELECT count(*) FROM mem_shares WHERE table_id = ?", e);
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, t->id);
	int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
	sqlite3_finalize(st);
	if (n < 0)
		return db_fail(c->db, e, "count shares");
	if (n > MEM_SHARES_MAX)
		return fail(e, MEM_E_LIMIT, "a table is shared with at most %d users",
			    MEM_SHARES_MAX);
	return 0;
}

static json_t *shares_op(mem_store *s, const char *owner, const char *name, json_t *users,
			 int op, int64_t now_ms, mem_error *e)
{
	struct conn c;
	conn_get(s, &c);
	struct tinfo *t = malloc(sizeof *t);
	json_t *out = NULL;
	if (!t) {
		oom(e);
		goto done;
	}
	/* As the owner: the admin acts on the owner's behalf. */
	if (begin(&c, op != 0, e) < 0 || resolve(&c, owner, NULL, name, op != 0, t, e) < 0)
		goto done;
	if (op != 0 && shares_change(&c, t, users, op > 0, now_ms, e) < 0)
		goto done;
	out = shares_answer(&c, t, e);
	if (out && op != 0 && commit(&c, e) < 0) {
		json_decref(out);
		out = NULL;
	}
done:
	rollback(&c);
	conn_put(&c);
	free(t);
	return out;
}

json_t *mem_shares_add(mem_store *s, const char *owner, const char *name, json_t *users,
		       int64_t now_ms, mem_error *e)
{
	return shares_op(s, owner, name, users, 1, now_ms, e);
}

json_t *mem_shares_list(mem_store *s, const char *owner, const char *name, mem_error *e)
{
	return shares_op(s, owner, name, NULL, 0, 0, e);
}

json_t *mem_shares_remove(mem_store *s, const char *owner, const char *name, json_t *users,
			  mem_error *e)
{
	return shares_op(s, owner, name, users, -1, 0, e);
}
