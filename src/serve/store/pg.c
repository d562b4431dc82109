#include "serve/store/pg.h"

#include "sdk/clock.h"
#include "sdk/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PASSWORD_MAX 1024
/* After a connection attempt failed, callers fail at once for this long
 * instead of each waiting up to connect_timeout_s on an unreachable host
 * (they run on the event loop). */
#define RETRY_AFTER_MS 1000

struct store_pg {
	const grace_store_cfg *cfg;
	pthread_mutex_t lock;
	unsigned n; /* cfg->pool_size */
	PGconn **conns; /* NULL until first needed */
	bool *busy;
	int64_t down_until_ms; /* monotonic: no attempt before it */
};

/* The password: the file's first line, without surrounding blanks. */
static int read_password(const char *path, char *out, size_t len, sdk_err *err)
{
	if (len < 2)
		return sdk_fail(err, SDK_EINVAL, "no room for the password");
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return sdk_fail(err, SDK_EIO, "[store] password_file %s: %s", path, strerror(errno));
	ssize_t n = read(fd, out, len - 1);
	close(fd);
	if (n < 0)
		return sdk_fail(err, SDK_EIO, "[store] password_file %s: %s", path, strerror(errno));
	out[n] = '\0';
	out[strcspn(out, "\r\n")] = '\0';
	char *p = out;
	while (*p == ' ' || *p == '\t')
		p++;
	size_t k = strlen(p);
	while (k && (p[k - 1] == ' ' || p[k - 1] == '\t'))
		k--;
	memmove(out, p, k);
	out[k] = '\0';
	if (k == 0)
		return sdk_fail(err, SDK_EIO, "[store] password_file %s: empty", path);
	return 0;
}

int store_pg_password(const grace_store_cfg *cfg, char *out, size_t len, sdk_err *err)
{
	out[0] = '\0';
	if (!cfg->password_file[0])
		return 0;
	return read_password(cfg->password_file, out, len < PASSWORD_MAX + 1 ? len : PASSWORD_MAX + 1,
			     err);
}

static PGconn *connect_one(const grace_store_cfg *cfg, sdk_err *err)
{
	char password[PASSWORD_MAX + 1] = "";
	if (cfg->password_file[0] &&
	    read_password(cfg->password_file, password, sizeof password, err) < 0)
		return NULL;
	char timeout[16], options[64];
	snprintf(timeout, sizeof timeout, "%u", cfg->connect_timeout_s);
	snprintf(options, sizeof options, "-c statement_timeout=%u", cfg->statement_timeout_ms);
	/* The URL first, expanded; what follows overrides it. */
	const char *keys[] = { "dbname", "connect_timeout", "options", "application_name",
			       cfg->password_file[0] ? "password" : NULL, NULL };
	const char *vals[] = { cfg->postgresql_url, timeout, options, "grace", password, NULL };
	PGconn *c = store_pq->PQconnectdbParams(keys, vals, 1);
	sodium_memzero(password, sizeof password);
	if (!c || store_pq->PQstatus(c) != CONNECTION_OK) {
		sdk_fail(err, SDK_EIO, "PostgreSQL (%s): %s", cfg->postgresql_url,
			 c ? store_pq->PQerrorMessage(c) : "out of memory");
		if (err)
			err->msg[strcspn(err->msg, "\n")] = '\0';
		store_pq->PQfinish(c);
		return NULL;
	}
	return c;
}

store_pg *store_pg_open(const grace_store_cfg *cfg, sdk_err *err)
{
	sdk_err why;
	if (!pq_dl_load(&why)) {
		sdk_fail(err, SDK_EIO, "[store] engine = postgresql: %s", why.msg);
		return NULL;
	}
	store_pg *p = calloc(1, sizeof *p);
	if (!p) {
		sdk_fail(err, SDK_EIO, "out of memory");
		return NULL;
	}
	p->cfg = cfg;
	p->n = cfg->pool_size ? cfg->pool_size : 1;
	p->conns = calloc(p->n, sizeof *p->conns);
	p->busy = calloc(p->n, sizeof *p->busy);
	pthread_mutex_init(&p->lock, NULL);
	if (!p->conns || !p->busy || !(p->conns[0] = connect_one(cfg, err))) {
		if (!p->conns || !p->busy)
			sdk_fail(err, SDK_EIO, "out of memory");
		store_pg_close(p);
		return NULL;
	}
	return p;
}

void store_pg_close(store_pg *p)
{
	if (!p)
		return;
	for (unsigned i = 0; p->conns && i < p->n; i++)
		if (p->conns[i])
			store_pq->PQfinish(p->conns[i]);
	free(p->conns);
	free(p->busy);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

PGconn *store_pg_acquire(store_pg *p, sdk_err *err)
{
	pthread_mutex_lock(&p->lock);
	unsigned i;
	for (i = 0; i < p->n && p->busy[i]; i++)
		;
	if (i == p->n) {
		pthread_mutex_unlock(&p->lock);
		sdk_fail(err, SDK_EBUSY, "every PostgreSQL connection is in use ([store] pool_size)");
		return NULL;
	}
	p->busy[i] = true;
	PGconn *c = p->conns[i];
	pthread_mutex_unlock(&p->lock);
	/* Connecting happens outside the lock: others may take other slots. */
	if (c && store_pq->PQstatus(c) != CONNECTION_OK) {
		sdk_warn("store: the PostgreSQL connection broke; connecting again");
		store_pq->PQfinish(c);
		c = NULL;
	}
	pthread_mutex_lock(&p->lock);
	int64_t until = p->down_until_ms;
	pthread_mutex_unlock(&p->lock);
	bool wait = !c && sdk_mono_ms() < until;
	if (wait)
		sdk_fail(err, SDK_EIO, "PostgreSQL unreachable; trying again shortly");
	else if (!c && !(c = connect_one(p->cfg, err)))
		sdk_warn("store: %s", err ? err->msg : "cannot connect to PostgreSQL");
	pthread_mutex_lock(&p->lock);
	p->conns[i] = c;
	if (!c) {
		p->busy[i] = false;
		if (!wait)
			p->down_until_ms = sdk_mono_ms() + RETRY_AFTER_MS;
	}
	pthread_mutex_unlock(&p->lock);
	return c;
}

void store_pg_release(store_pg *p, PGconn *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0; i < p->n; i++)
		if (p->conns[i] == c) {
			/* A transaction left open by a failure is ended here. */
			if (store_pq->PQtransactionStatus(c) != PQTRANS_IDLE &&
			    store_pq->PQstatus(c) == CONNECTION_OK)
				store_pq->PQclear(store_pq->PQexec(c, "ROLLBACK"));
			p->busy[i] = false;
		}
	pthread_mutex_unlock(&p->lock);
}

int store_pg_status(const PGresult *r)
{
	const char *state = r ? store_pq->PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	if (!state)
		return SDK_EIO;
	if (!strncmp(state, "23", 2)) /* integrity: unique, foreign key, check */
		return SDK_ECONFLICT;
	if (!strcmp(state, "57014")) /* query_canceled: statement_timeout */
		return SDK_ETIMEOUT;
	if (!strcmp(state, "53100")) /* disk_full */
		return SDK_EFULL;
	if (!strcmp(state, "40001") || !strcmp(state, "40P01") || !strcmp(state, "55P03"))
		return SDK_EBUSY; /* serialization, deadlock, lock not available */
	return SDK_EIO;
}

PGresult *store_pg_exec(PGconn *c, const char *sql, int n, const char *const *params,
			int *status, sdk_err *err)
{
	PGresult *r = store_pq->PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
	ExecStatusType s = r ? store_pq->PQresultStatus(r) : PGRES_FATAL_ERROR;
	if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) {
		*status = 0;
		return r;
	}
	*status = store_pg_status(r);
	const char *why = r ? store_pq->PQresultErrorMessage(r) : store_pq->PQerrorMessage(c);
	sdk_fail(err, *status, "PostgreSQL: %.*s", (int)strcspn(why, "\n"), why);
	store_pq->PQclear(r);
	return NULL;
}

int store_pg_run(PGconn *c, const char *sql, int n, const char *const *params, long *changed,
		 sdk_err *err)
{
	int status;
	PGresult *r = store_pg_exec(c, sql, n, params, &status, err);
	if (!r)
		return status;
	if (changed)
		*changed = strtol(store_pq->PQcmdTuples(r), NULL, 10);
	store_pq->PQclear(r);
	return 0;
}

const char *store_pg_i64(char buf[21], int64_t v)
{
	snprintf(buf, 21, "%" PRId64, v);
	return buf;
}

int64_t store_pg_get_i64(const PGresult *r, int row, int col)
{
	return store_pq->PQgetisnull(r, row, col) ? 0 : strtoll(store_pq->PQgetvalue(r, row, col), NULL, 10);
}
