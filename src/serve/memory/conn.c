/* The SQLite engine's connections, transactions and schema, and its
 * engine.h steps get, put, begin, commit and reclaim. */
#include "serve/memory/store_int.h"

#include "sdk/clock.h"
#include "sdk/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MEM_CACHE_KIB 8192 /* page cache per connection */
#define MEM_PROGRESS_OPS 4096 /* VM steps between deadline checks */

/* A change is a new step in memory_db (serve/schema.c) and a new fixture
 * directory (docs/upgrades.md); a database from a newer build is refused
 * there rather than half-understood.
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

int mem_db_fail(sqlite3 *db, sdk_err *e, const char *what)
{
	return mem_fail_as(sdk_status_of_sqlite(sqlite3_errcode(db)), e, what, sqlite3_errmsg(db));
}

/* A statement past its deadline is interrupted (SQLITE_INTERRUPT). */
static int on_progress(void *arg)
{
	return sdk_mono_ms() > *(int64_t *)arg;
}

static void mem_conn_get(mem_store *s, mem_conn *c)
{
	pthread_mutex_lock(&s->mu);
	for (;;) {
		for (unsigned i = 0; i < s->n; i++)
			if (!s->busy[i]) {
				s->busy[i] = true;
				pthread_mutex_unlock(&s->mu);
				*c = (mem_conn){ .s = s, .i = i, .db = s->db[i] };
				c->deadline = sdk_mono_ms() + MEM_QUERY_MS_MAX;
				sqlite3_progress_handler(c->db, MEM_PROGRESS_OPS, on_progress,
							 &c->deadline);
				return;
			}
		pthread_cond_wait(&s->cv, &s->mu);
	}
}

static void mem_conn_put(mem_conn *c)
{
	sqlite3_progress_handler(c->db, 0, NULL, NULL);
	if (!sqlite3_get_autocommit(c->db)) /* a path that forgot: never leak a transaction */
		sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
	pthread_mutex_lock(&c->s->mu);
	c->s->busy[c->i] = false;
	pthread_cond_signal(&c->s->cv);
	pthread_mutex_unlock(&c->s->mu);
}

static int mem_begin(mem_conn *c, bool write, sdk_err *e)
{
	if (sqlite3_exec(c->db, write ? "BEGIN IMMEDIATE" : "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		return mem_db_fail(c->db, e, "begin");
	return 0;
}

static int mem_commit(mem_conn *c, sdk_err *e)
{
	if (sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		int rc = mem_db_fail(c->db, e, "commit");
		sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
		return rc;
	}
	return 0;
}

int mem_lite_get(mem_store *s, void **c, sdk_err *e)
{
	mem_conn *conn = malloc(sizeof *conn);
	if (!conn)
		return mem_oom(e);
	mem_conn_get(s, conn);
	*c = conn;
	return 0;
}

void mem_lite_put(void *c)
{
	mem_conn_put(c);
	free(c);
}

int mem_lite_begin(void *c, bool write, bool drop, sdk_err *e)
{
	mem_conn *conn = c;
	/* Dropping a large table takes longer than a query. */
	conn->deadline = sdk_mono_ms() + (drop ? MEM_DROP_MS_MAX : MEM_QUERY_MS_MAX);
	return mem_begin(conn, write, e);
}

int mem_lite_commit(void *c, sdk_err *e) { return mem_commit(c, e); }

/* Deleted tables give their pages back; a failure here loses nothing. */
void mem_lite_reclaim(void *c)
{
	sqlite3_exec(((mem_conn *)c)->db, "PRAGMA incremental_vacuum", NULL, NULL, NULL);
}

const mem_engine mem_lite_engine = MEM_ENGINE_INIT(mem_lite);

int mem_prep(mem_conn *c, const char *sql, sqlite3_stmt **st, sdk_err *e)
{
	*st = NULL;
	if (sqlite3_prepare_v2(c->db, sql, -1, st, NULL) != SQLITE_OK)
		return mem_db_fail(c->db, e, "prepare");
	return 0;
}

static int open_conn(const char *data_dir, sqlite3 **out, sdk_err *e)
{
	int rc = sdk_db_open(data_dir, "memory", out, e);
	if (rc < 0)
		return rc;
	char pragma[64];
	snprintf(pragma, sizeof pragma, "PRAGMA cache_size=-%d;", MEM_CACHE_KIB);
	if ((rc = sdk_db_exec(*out, pragma, e)) < 0) {
		sqlite3_close(*out);
		*out = NULL;
		return rc;
	}
	return 0;
}

/* The version is memory_db's in serve/schema.c, checked and migrated
 * there before the store opens; the tables run here on every open. */
static int schema_init(sqlite3 *db, sdk_err *e)
{
	int64_t n = 0;
	int rc = sdk_db_count(db, "SELECT count(*) FROM sqlite_master WHERE name = 'mem_tables'",
			      NULL, &n, "reading the schema", e);
	if (rc < 0)
		return rc;
	char sql[sizeof mem_schema + 128];
	/* A new file: let deleted tables give their pages back. auto_vacuum
	 * can only be chosen before the first table exists and, once the file
	 * is in WAL mode, takes a VACUUM (instant on an empty file). */
	snprintf(sql, sizeof sql, "%s BEGIN IMMEDIATE; %s COMMIT;",
		 n ? "" : "PRAGMA auto_vacuum=INCREMENTAL; VACUUM;", mem_schema);
	if ((rc = sdk_db_exec(db, sql, e)) < 0) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return rc;
	}
	return 0;
}

int mem_lite_open(mem_store *s, const char *data_dir, unsigned conns, sdk_err *e)
{
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	for (; s->n < conns; s->n++) {
		if (open_conn(data_dir, &s->db[s->n], e) < 0)
			return SDK_EIO;
		if (s->n == 0 && schema_init(s->db[0], e) < 0) {
			s->n++;
			return SDK_EIO;
		}
	}
	return 0;
}

void mem_lite_close(mem_store *s)
{
	for (unsigned i = 0; i < s->n; i++)
		sqlite3_close(s->db[i]);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
}
