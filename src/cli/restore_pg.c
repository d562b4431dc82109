#include "cli/restore_pg.h"

#include "kernels/registry.h"
#include "serve/backup/pg_dump.h"
#include "serve/store/pg.h"
#include "serve/store/pg_schema.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The relations of the database's own schemas that a clean drops: tables,
 * views, and sequences no column owns (those go with their table). Tables
 * first; IF EXISTS and CASCADE because a drop takes its dependents. */
#define RELATIONS_SQL                                                                              \
	"SELECT format('DROP %s IF EXISTS %I.%I CASCADE', CASE c.relkind WHEN 'v' THEN 'VIEW' "    \
	"WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE' " \
	"ELSE 'TABLE' END, n.nspname, c.relname) "                                                 \
	"FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "                           \
	"WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND NOT c.relispartition "              \
	"AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%' "                   \
	"AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass "        \
	"AND d.objid = c.oid AND d.deptype IN ('a', 'i')) "                                        \
	"ORDER BY CASE c.relkind WHEN 'r' THEN 0 WHEN 'p' THEN 0 WHEN 'S' THEN 2 ELSE 1 END, 1"

static void fail(restore_pg *p, const char *what, const char *fmt, const char *a, const char *b)
{
	char detail[1024];
	snprintf(detail, sizeof detail, fmt, a, b);
	p->check(p->ctx, what, false, detail);
}

static const char *database_of(const restore_pg *p)
{
	const char *d = json_string_value(json_object_get(p->info, "database"));
	return d ? d : "?";
}

/* A connection of a one-connection pool (pg.h) to the configured
 * database: NULL after a failed check. */
static PGconn *connect_db(restore_pg *p, store_pg **pool)
{
	sdk_err e = { { 0 } };
	*pool = store_pg_open(&p->cfg->store, &e);
	PGconn *c = *pool ? store_pg_acquire(*pool, &e) : NULL;
	if (!c) {
		fail(p, "postgresql connect", "%s%s", e.msg, "");
		store_pg_close(*pool);
		*pool = NULL;
	}
	return c;
}

static void disconnect(store_pg *pool, PGconn *c)
{
	if (c)
		store_pg_release(pool, c);
	store_pg_close(pool);
}

/* The statements that drop every relation of the database's own schemas. */
static PGresult *relations(PGconn *c)
{
	PGresult *r = store_pq->PQexec(c, RELATIONS_SQL);
	if (r && store_pq->PQresultStatus(r) == PGRES_TUPLES_OK)
		return r;
	if (r)
		store_pq->PQclear(r);
	return NULL;
}

int restore_pg_prepare(restore_pg *p, const json_t *manifest, bool dump_listed)
{
	p->info = json_object_get(manifest, "postgresql");
	p->present = dump_listed;
	if (!dump_listed && !p->info)
		return 0;
	json_t *sv = json_object_get(p->info, "schema_version");
	if (!dump_listed || !json_is_object(p->info) || !json_is_integer(sv) ||
	    !json_is_object(json_object_get(p->info, "tables"))) {
		fail(p, "postgresql manifest", "%s%s",
		     "the manifest's PostgreSQL dump and its facts (schema version, tables) do "
		     "not go together: not an archive Grace wrote",
		     "");
		return -1;
	}
	char n1[24], n2[24], what[64];
	snprintf(n1, sizeof n1, "%lld", (long long)json_integer_value(sv));
	snprintf(n2, sizeof n2, "%d", STORE_PG_VERSION);
	snprintf(what, sizeof what, "schema postgresql %s", database_of(p));
	if (json_integer_value(sv) > STORE_PG_VERSION) {
		fail(p, what,
		     "the dump's PostgreSQL schema is at version %s, newer than this Grace's %s: "
		     "restore it with the Grace that made it",
		     n1, n2);
		return -1;
	}
	if (json_integer_value(sv) < STORE_PG_VERSION) {
		char detail[160];
		snprintf(detail, sizeof detail,
			 "version %s, older than this Grace's %s: migrated by the first grace serve "
			 "that starts on the restored database",
			 n1, n2);
		p->check(p->ctx, what, true, detail);
	}
	if (p->skip)
		return 0;
	p->cfg = calloc(1, sizeof *p->cfg);
	grace_config_overrides ov = { p->config, NULL, NULL };
	sdk_err err;
	if (!p->cfg || grace_config_read(p->cfg, kernel_registry_all(), kernel_registry_count(), &ov,
					 &err) < 0) {
		fail(p, "postgresql configuration", "%s%s", p->cfg ? err.msg : "out of memory", "");
		return -1;
	}
	if (p->cfg->store.engine != GRACE_STORE_POSTGRESQL) {
		char detail[PATH_MAX + 512];
		snprintf(detail, sizeof detail,
			 "the archive holds a PostgreSQL dump (database %s, schema %s) and the "
			 "configuration (%s) names no PostgreSQL: give --config FILE whose [store] "
			 "has engine = postgresql, or --no-postgresql to restore the files only",
			 database_of(p), n1, p->cfg->path[0] ? p->cfg->path : "built-in defaults");
		p->check(p->ctx, "postgresql configured", false, detail);
		return -1;
	}
	store_pg *pool = NULL;
	PGconn *c = connect_db(p, &pool);
	if (!c)
		return -1;
	PGresult *r = relations(c);
	int rc = 0;
	if (!r) {
		fail(p, "postgresql target", "cannot list the database's tables: %s%s",
		     store_pq->PQerrorMessage(c), "");
		rc = -1;
	} else if (store_pq->PQntuples(r) > 0 && !p->force) {
		char n[24];
		snprintf(n, sizeof n, "%d", store_pq->PQntuples(r));
		fail(p, "postgresql target",
		     "the configured database holds %s relations: restore into an empty database, "
		     "or --force drops them first (%s)",
		     n, p->cfg->store.postgresql_url);
		rc = -1;
	}
	if (r)
		store_pq->PQclear(r);
	disconnect(pool, c);
	return rc;
}

/* --force: every relation dropped, in one transaction. */
static int clean(restore_pg *p, PGconn *c)
{
	PGresult *r = relations(c);
	if (!r) {
		fail(p, "postgresql clean", "cannot list the database's tables: %s%s",
		     store_pq->PQerrorMessage(c), "");
		return -1;
	}
	int n = store_pq->PQntuples(r), rc = 0;
	sdk_err e = { { 0 } };
	rc = store_pg_run(c, "BEGIN", 0, NULL, NULL, &e);
	for (int i = 0; i < n && !rc; i++)
		rc = store_pg_run(c, store_pq->PQgetvalue(r, i, 0), 0, NULL, NULL, &e);
	if (!rc)
		rc = store_pg_run(c, "COMMIT", 0, NULL, NULL, &e);
	else
		store_pg_run(c, "ROLLBACK", 0, NULL, NULL, NULL);
	store_pq->PQclear(r);
	if (rc) {
		fail(p, "postgresql clean", "%s (nothing dropped)%s", e.msg, "");
		return -1;
	}
	char detail[128];
	snprintf(detail, sizeof detail, "%d relations dropped (--force)", n);
	p->check(p->ctx, "postgresql clean", true, detail);
	return 0;
}

/* The restored database against the manifest: its schema version row, and
 * every table's row count, no table more or less. */
static int verify(restore_pg *p, PGconn *c)
{
	char what[64], detail[1024];
	snprintf(what, sizeof what, "postgresql schema version");
	sdk_err e = { { 0 } };
	int st = 0;
	PGresult *r = store_pg_exec(c, "SELECT version FROM grace_schema WHERE store = 'grace'", 0,
				    NULL, &st, &e);
	long long want = (long long)json_integer_value(json_object_get(p->info, "schema_version"));
	long long got = r && store_pq->PQntuples(r) == 1 ? store_pg_get_i64(r, 0, 0) : -1;
	if (r)
		store_pq->PQclear(r);
	if (got != want) {
		if (got < 0)
			snprintf(detail, sizeof detail, "no grace_schema row after pg_restore%s%s",
				 e.msg[0] ? ": " : "", e.msg);
		else
			snprintf(detail, sizeof detail,
				 "grace_schema says %lld, the manifest %lld", got, want);
		p->check(p->ctx, what, false, detail);
		return -1;
	}
	snprintf(detail, sizeof detail, "%lld, as in the manifest", got);
	p->check(p->ctx, what, true, detail);

	/* The counts in one snapshot, as the dump's were. */
	store_pg_run(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL, NULL, NULL);
	json_t *now = bk_pg_counts(store_pq, c, &e);
	store_pg_run(c, "ROLLBACK", 0, NULL, NULL, NULL);
	if (!now) {
		fail(p, "postgresql rows", "cannot count the restored tables: %s%s", e.msg, "");
		return -1;
	}
	const json_t *then = json_object_get(p->info, "tables");
	const char *name;
	json_t *v;
	long long rows = 0;
	int rc = 0;
	json_object_foreach((json_t *)then, name, v) {
		json_t *n = json_object_get(now, name);
		if (!n || json_integer_value(n) != json_integer_value(v)) {
			if (n)
				snprintf(detail, sizeof detail, "table %s has %lld rows, the manifest %lld",
					 name, (long long)json_integer_value(n),
					 (long long)json_integer_value(v));
			else
				snprintf(detail, sizeof detail,
					 "table %s is missing (the manifest: %lld rows)", name,
					 (long long)json_integer_value(v));
			rc = -1;
			break;
		}
		rows += json_integer_value(v);
	}
	if (!rc)
		json_object_foreach(now, name, v)
			if (!json_object_get(then, name)) {
				snprintf(detail, sizeof detail,
					 "table %s is in the database and not in the manifest", name);
				rc = -1;
				break;
			}
	if (!rc)
		snprintf(detail, sizeof detail,
			 "%zu tables, %lld rows: every count the manifest recorded at the dump",
			 json_object_size(then), rows);
	p->check(p->ctx, "postgresql rows", rc == 0, detail);
	json_decref(now);
	return rc;
}

int restore_pg_load(restore_pg *p, const char *dump_path)
{
	if (!p->present)
		return 0;
	sdk_err e = { { 0 } };
	if (p->skip) {
		const char *argv[] = { "pg_restore", "--list", dump_path, NULL };
		grace_store_cfg none = { 0 };
		if (bk_pg_tool(&none, argv, -1, BK_PG_TIMEOUT_S, &e) < 0) {
			fail(p, "postgresql dump", "%s%s", e.msg, "");
			return -1;
		}
		char detail[256];
		snprintf(detail, sizeof detail,
			 "read whole by pg_restore --list; not restored (--no-postgresql): database "
			 "%s stays as it is",
			 database_of(p));
		p->check(p->ctx, "postgresql dump", true, detail);
		return 0;
	}
	store_pg *pool = NULL;
	PGconn *c = connect_db(p, &pool);
	if (!c)
		return -1;
	int rc = p->force ? clean(p, c) : 0;
	if (!rc) {
		/* One transaction: a failure leaves the database as it was
		 * (empty, or just cleaned). Objects owned by whoever connects,
		 * which may be another role than the one that made the dump. */
		const char *argv[] = { "pg_restore",	"--no-password", "--single-transaction",
				       "--exit-on-error", "--no-owner",	  "--no-privileges",
				       "--dbname",	p->cfg->store.postgresql_url, dump_path,
				       NULL };
		if (bk_pg_tool(&p->cfg->store, argv, -1, BK_PG_TIMEOUT_S, &e) < 0) {
			fail(p, "postgresql pg_restore", "%s (rolled back: the database holds nothing of it)%s",
			     e.msg, "");
			rc = -1;
		} else {
			char detail[256];
			snprintf(detail, sizeof detail,
				 "database %s restored into the configured one by pg_restore",
				 database_of(p));
			p->check(p->ctx, "postgresql pg_restore", true, detail);
		}
	}
	if (!rc)
		rc = verify(p, c);
	disconnect(pool, c);
	return rc;
}

void restore_pg_free(restore_pg *p)
{
	free(p->cfg);
	p->cfg = NULL;
}
