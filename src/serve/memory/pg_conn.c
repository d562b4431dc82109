/* The PostgreSQL engine's connections, transactions and errors. */
#include "serve/memory/pg_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The advisory lock class of a user's memory tables (two int4 keys: a
 * space apart from the single bigint key of the schema's migration). */
#define MEM_PG_LOCK_CLASS 0x6d656d /* "mem" */

#define MEM_PG_STR_(x) #x
#define MEM_PG_STR(x) MEM_PG_STR_(x)

int mem_pg_open(mem_store *s, const grace_store_cfg *cfg, unsigned conns, sdk_err *e)
{
	mem_pg *pg = calloc(1, sizeof *pg);
	if (!pg)
		return mem_oom(e);
	pg->cfg = *cfg;
	/* A connection per worker; every statement bounded as SQLite's are. */
	pg->cfg.pool_size = conns;
	pg->cfg.statement_timeout_ms = MEM_QUERY_MS_MAX;
	pg->free = conns;
	pthread_mutex_init(&pg->mu, NULL);
	pthread_cond_init(&pg->cv, NULL);
	s->pg = pg;
	/* The schema is the store's (serve/store/pg_schema.c): grace serve
	 * migrates it before anything opens the memory tables. */
	if (!(pg->pool = store_pg_open(&pg->cfg, e)))
		return SDK_EIO;
	return 0;
}

void mem_pg_close(mem_pg *pg)
{
	if (!pg)
		return;
	store_pg_close(pg->pool);
	pthread_mutex_destroy(&pg->mu);
	pthread_cond_destroy(&pg->cv);
	free(pg);
}

int mem_pg_get(mem_store *s, void **c, sdk_err *e)
{
	mem_pg *pg = s->pg;
	mem_pgc *conn = malloc(sizeof *conn);
	if (!conn)
		return mem_oom(e);
	pthread_mutex_lock(&pg->mu);
	while (!pg->free)
		pthread_cond_wait(&pg->cv, &pg->mu);
	pg->free--;
	pthread_mutex_unlock(&pg->mu);
	/* PostgreSQL unreachable: a 503 to retry, as for SQLite's locks (the
	 * pool logs why; its message names the server, not for clients). */
	sdk_err why;
	*conn = (mem_pgc){ .pg = pg, .c = store_pg_acquire(pg->pool, &why) };
	if (!conn->c) {
		mem_pg_put(conn);
		return sdk_fail(e, SDK_EBUSY, "the memory database is unreachable; try again");
	}
	*c = conn;
	return 0;
}

void mem_pg_put(void *c)
{
	mem_pgc *conn = c;
	store_pg_release(conn->pg->pool, conn->c); /* rolls back an open transaction */
	pthread_mutex_lock(&conn->pg->mu);
	conn->pg->free++;
	pthread_cond_signal(&conn->pg->cv);
	pthread_mutex_unlock(&conn->pg->mu);
	free(conn);
}

/* The first line of libpq's message. */
static const char *first_line(const char *msg, char *buf, size_t len)
{
	snprintf(buf, len, "%.*s", (int)strcspn(msg, "\n"), msg);
	return buf;
}

PGresult *mem_pg_exec(mem_pgc *c, const char *what, const char *sql, int n,
		      const char *const *params, int *rc, sdk_err *e)
{
	PGresult *r = store_pq->PQexecParams(c->c, sql, n, NULL, params, NULL, NULL, 0);
	ExecStatusType st = r ? store_pq->PQresultStatus(r) : PGRES_FATAL_ERROR;
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
		*rc = 0;
		return r;
	}
	const char *state = r ? store_pq->PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	char why[256];
	first_line(r ? store_pq->PQresultErrorMessage(r) : store_pq->PQerrorMessage(c->c), why,
		   sizeof why);
	if (state && !strcmp(state, "42P01")) /* undefined_table: dropped by another host */
		*rc = sdk_fail(e, SDK_ENOTFOUND, "no such table");
	else if (state && !strcmp(state, "54000")) /* e.g. a value too large for its index */
		*rc = mem_fail_as(SDK_ETOOLARGE, e, what, why);
	else
		*rc = mem_fail_as(store_pg_status(r), e, what, why);
	store_pq->PQclear(r);
	return NULL;
}

int mem_pg_run(mem_pgc *c, const char *what, const char *sql, int n, const char *const *params,
	       sdk_err *e)
{
	int rc;
	PGresult *r = mem_pg_exec(c, what, sql, n, params, &rc, e);
	store_pq->PQclear(r);
	return rc;
}

int mem_pg_script(mem_pgc *c, const char *what, const char *sql, sdk_err *e)
{
	PGresult *r = store_pq->PQexec(c->c, sql);
	ExecStatusType st = r ? store_pq->PQresultStatus(r) : PGRES_FATAL_ERROR;
	int rc = 0;
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		char why[256];
		first_line(r ? store_pq->PQresultErrorMessage(r) : store_pq->PQerrorMessage(c->c),
			   why, sizeof why);
		rc = mem_fail_as(store_pg_status(r), e, what, why);
	}
	store_pq->PQclear(r);
	return rc;
}

int mem_pg_begin(void *c, bool write, bool drop, sdk_err *e)
{
	/* Notices (to_tsquery's "no lexemes", say) would go to stderr. A
	 * transaction that drops tables may wait for readers to finish. */
	char sql[192];
	snprintf(sql, sizeof sql, "%s; SET LOCAL client_min_messages = warning%s",
		 write ? "BEGIN" : "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
		 drop ? "; SET LOCAL statement_timeout = " MEM_PG_STR(MEM_DROP_MS_MAX) : "");
	return mem_pg_script(c, "begin", sql, e);
}

int mem_pg_commit(void *c, sdk_err *e)
{
	return mem_pg_run(c, "commit", "COMMIT", 0, NULL, e);
}

int mem_pg_lock(mem_pgc *c, const char *owner, sdk_err *e)
{
	char cls[21];
	const char *p[] = { store_pg_i64(cls, MEM_PG_LOCK_CLASS), owner };
	return mem_pg_run(c, "lock", "SELECT pg_advisory_xact_lock($1::integer, hashtext($2))", 2,
			  p, e);
}

const char *mem_pg_val(const PGresult *r, int row, int col)
{
	return store_pq->PQgetisnull(r, row, col) ? NULL : store_pq->PQgetvalue(r, row, col);
}

size_t mem_pg_len(const PGresult *r, int row, int col)
{
	const char *v = mem_pg_val(r, row, col);
	return v ? strlen(v) : 0;
}

/* A DROP gives the space back at once. */
void mem_pg_reclaim(void *c) { (void)c; }

const mem_engine mem_pg_engine = MEM_ENGINE_INIT(mem_pg);
