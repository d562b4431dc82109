#include "serve/backup/pg_dump.h"

#include "sdk/proc.h"
#include "sdk/clock.h"
#include "serve/store/pg.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* What of a tool's stderr goes into the error: its first words say why. */
#define STDERR_KEEP 600
#define ENV_MAX 512

/* The child's environment: ours without any PostgreSQL password setting
 * of the caller's, plus [store]'s password. `pw_env` holds the
 * "PGPASSWORD=..." string (wiped by the caller). */
static int child_env(const char **envp, char *pw_env, const char *password)
{
	int n = 0;
	for (char **e = environ; *e && n < ENV_MAX - 3; e++)
		if (strncmp(*e, "PGPASSWORD=", 11) && strncmp(*e, "PGPASSFILE=", 11) &&
		    strncmp(*e, "PGAPPNAME=", 10))
			envp[n++] = *e;
	envp[n++] = "PGAPPNAME=grace-backup";
	if (password[0])
		envp[n++] = pw_env;
	envp[n] = NULL;
	return n;
}

int bk_pg_tool(const grace_store_cfg *cfg, const char *const *argv, int out_fd,
	       unsigned timeout_s, sdk_err *e)
{
	char exe[PATH_MAX];
	if (snprintf(exe, sizeof exe, "%s/%s", BK_PG_BIN, argv[0]) >= (int)sizeof exe)
		return sdk_fail(e, SDK_EINVAL, "%s: path too long", argv[0]);
	if (access(exe, X_OK) < 0)
		return sdk_fail(e, SDK_EIO, "%s is missing: install postgresql-client-15", exe);
	char password[STORE_PG_PASSWORD_MAX + 1];
	if (store_pg_password(cfg, password, sizeof password, e) < 0)
		return SDK_EIO;
	char pw_env[STORE_PG_PASSWORD_MAX + 16];
	snprintf(pw_env, sizeof pw_env, "PGPASSWORD=%s", password);
	const char **envp = calloc(ENV_MAX, sizeof *envp);
	int err_pipe[2] = { -1, -1 };
	int rc = 0;
	if (!envp) {
		rc = sdk_fail(e, SDK_EIO, "out of memory");
		goto wipe;
	}
	child_env(envp, pw_env, password);
	if (pipe2(err_pipe, O_CLOEXEC) < 0) {
		rc = sdk_fail(e, SDK_EIO, "cannot make a pipe: %s", strerror(errno));
		goto wipe;
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (out_fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
	else
		posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
	pid_t pid;
	int sp = proc_spawn(&pid, exe, &fa, false, (char *const *)argv, (char *const *)envp);
	posix_spawn_file_actions_destroy(&fa);
	close(err_pipe[1]);
	if (sp != 0) {
		close(err_pipe[0]);
		rc = sdk_fail(e, SDK_EIO, "cannot run %s: %s", exe, strerror(sp));
		goto wipe;
	}
	char said[STDERR_KEEP + 1];
	size_t have = 0;
	int64_t until = sdk_mono_ms() + (int64_t)timeout_s * 1000;
	bool timed_out = false;
	for (;;) {
		int64_t left = until - sdk_mono_ms();
		if (left <= 0) {
			timed_out = true;
			kill(pid, SIGKILL);
			break;
		}
		struct pollfd p = { .fd = err_pipe[0], .events = POLLIN };
		int pr = poll(&p, 1, (int)(left > 1000 ? 1000 : left));
		if (pr <= 0)
			continue;
		char sink[1024];
		char *to = have < STDERR_KEEP ? said + have : sink;
		size_t room = have < STDERR_KEEP ? STDERR_KEEP - have : sizeof sink;
		ssize_t r = read(err_pipe[0], to, room);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (to != sink)
			have += (size_t)r;
	}
	close(err_pipe[0]);
	said[have] = '\0';
	for (char *c = said; *c; c++)
		if (*c == '\n' || *c == '\r')
			*c = ' ';
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (timed_out)
		rc = sdk_fail(e, SDK_ETIMEOUT, "%s ran past %u s", argv[0], timeout_s);
	else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		rc = sdk_fail(e, SDK_EIO, "%s failed (%s %d): %s", argv[0],
			      WIFEXITED(status) ? "exit" : "signal",
			      WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
			      have ? said : "(it said nothing)");
wipe:
	sodium_memzero(password, sizeof password);
	sodium_memzero(pw_env, sizeof pw_env);
	free(envp);
	return rc;
}

static int pq_fail(const pq_dl *pq, PGconn *c, PGresult *r, const char *what, sdk_err *e)
{
	const char *m = r ? pq->PQresultErrorMessage(r) : pq->PQerrorMessage(c);
	sdk_fail(e, SDK_EIO, "PostgreSQL: %s: %s", what, m && *m ? m : "failed");
	if (e)
		e->msg[strcspn(e->msg, "\n")] = '\0';
	if (r)
		pq->PQclear(r);
	return SDK_EIO;
}

static PGresult *query(const pq_dl *pq, PGconn *c, const char *sql, ExecStatusType want,
		       sdk_err *e)
{
	PGresult *r = pq->PQexec(c, sql);
	if (!r || pq->PQresultStatus(r) != want) {
		pq_fail(pq, c, r, sql, e);
		return NULL;
	}
	return r;
}

json_t *bk_pg_counts(const pq_dl *pq, PGconn *c, sdk_err *e)
{
	/* Each count statement made by format(%I): names are quoted by
	 * PostgreSQL itself, whatever a table is called. */
	PGresult *r = query(pq, c,
			    "SELECT n.nspname || '.' || c.relname, "
			    "format('SELECT count(*) FROM %I.%I', n.nspname, c.relname) "
			    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
			    "WHERE c.relkind IN ('r', 'p') AND n.nspname <> 'information_schema' "
			    "AND n.nspname NOT LIKE 'pg\\_%' ORDER BY 1",
			    PGRES_TUPLES_OK, e);
	if (!r)
		return NULL;
	int n = pq->PQntuples(r);
	if (n > BK_PG_TABLES_MAX) {
		pq->PQclear(r);
		sdk_fail(e, SDK_ETOOLARGE, "PostgreSQL: more than %d tables", BK_PG_TABLES_MAX);
		return NULL;
	}
	json_t *out = json_object();
	for (int i = 0; i < n && out; i++) {
		PGresult *cr = query(pq, c, pq->PQgetvalue(r, i, 1), PGRES_TUPLES_OK, e);
		if (!cr) {
			json_decref(out);
			out = NULL;
			break;
		}
		json_object_set_new(out, pq->PQgetvalue(r, i, 0),
				    json_integer(strtoll(pq->PQgetvalue(cr, 0, 0), NULL, 10)));
		pq->PQclear(cr);
	}
	pq->PQclear(r);
	return out;
}

int bk_pg_dump(const grace_store_cfg *cfg, const char *out_path, json_t **info, sdk_err *e)
{
	*info = NULL;
	/* A pool of its own, one connection: the serving pool's are short
	 * statements on the event loop, and this one holds a transaction open
	 * for the whole dump. */
	store_pg *pool = store_pg_open(cfg, e);
	if (!pool)
		return SDK_EIO;
	const pq_dl *pq = store_pq;
	PGconn *c = store_pg_acquire(pool, e);
	int rc = 0;
	json_t *tables = NULL;
	PGresult *r = NULL;
	char snapshot[128] = "", database[128] = "", server[64] = "";
	int schema = -1;
	if (!c) {
		rc = SDK_EIO;
		goto out;
	}
	/* Counting a large table may pass [store] statement_timeout_ms. */
	if (!(r = query(pq, c,
			"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; "
			"SET LOCAL statement_timeout = 0",
			PGRES_COMMAND_OK, e))) {
		rc = SDK_EIO;
		goto out;
	}
	pq->PQclear(r);
	if (!(r = query(pq, c,
			"SELECT pg_export_snapshot(), current_database(), "
			"current_setting('server_version'), "
			"(SELECT version FROM grace_schema WHERE store = 'grace')",
			PGRES_TUPLES_OK, e))) {
		rc = SDK_EIO;
		goto out;
	}
	snprintf(snapshot, sizeof snapshot, "%s", pq->PQgetvalue(r, 0, 0));
	snprintf(database, sizeof database, "%s", pq->PQgetvalue(r, 0, 1));
	snprintf(server, sizeof server, "%s", pq->PQgetvalue(r, 0, 2));
	if (!pq->PQgetisnull(r, 0, 3))
		schema = atoi(pq->PQgetvalue(r, 0, 3));
	pq->PQclear(r);
	if (schema < 0) {
		rc = sdk_fail(e, SDK_ECORRUPT,
			      "PostgreSQL database %s has no grace_schema row: not Grace's", database);
		goto out;
	}
	if (!(tables = bk_pg_counts(pq, c, e))) {
		rc = SDK_EIO;
		goto out;
	}
	char snap_arg[160];
	snprintf(snap_arg, sizeof snap_arg, "--snapshot=%s", snapshot);
	/* The URL names no password (the configuration refuses one). */
	const char *argv[] = { "pg_dump",  "--format=custom", "--no-password", snap_arg,
			       "--file",   out_path,	      "--dbname",      cfg->postgresql_url,
			       NULL };
	rc = bk_pg_tool(cfg, argv, -1, BK_PG_TIMEOUT_S, e);
	if (!rc)
		chmod(out_path, 0600);
out:
	if (c) {
		/* Read only: ending it changes nothing. */
		PGresult *end = pq->PQexec(c, "ROLLBACK");
		if (end)
			pq->PQclear(end);
		store_pg_release(pool, c);
	}
	store_pg_close(pool);
	if (rc) {
		json_decref(tables);
		unlink(out_path);
		return rc;
	}
	*info = json_pack("{s:s, s:s, s:s, s:i, s:o}", "tool", "pg_dump --format=custom",
			  "database", database, "server_version", server, "schema_version", schema,
			  "tables", tables);
	return 0;
}
