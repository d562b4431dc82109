#include "kernels/executor/store.h"

#include "sdk/db.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS jobs("
	" seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	" id TEXT NOT NULL UNIQUE,"
	" owner TEXT NOT NULL,"
	" role TEXT NOT NULL,"
	" name TEXT NOT NULL,"
	" spec TEXT NOT NULL,"
	" idem_key TEXT UNIQUE,"
	" priority INTEGER NOT NULL,"
	" state TEXT NOT NULL,"
	" created_ms INTEGER NOT NULL,"
	" started_ms INTEGER,"
	" finished_ms INTEGER,"
	" exit_code INTEGER,"
	" signal INTEGER,"
	" timed_out INTEGER NOT NULL DEFAULT 0,"
	" cancelled INTEGER NOT NULL DEFAULT 0,"
	" oom_killed INTEGER NOT NULL DEFAULT 0,"
	" cpu_limit_hit INTEGER NOT NULL DEFAULT 0,"
	" error TEXT,"
	" usage TEXT,"
	" containment TEXT,"
	" cgroups TEXT,"
	" workdir TEXT,"
	" shim_pid INTEGER, shim_start INTEGER, pid INTEGER, pid_start INTEGER,"
	" stdout BLOB, stderr BLOB,"
	" stdout_total INTEGER NOT NULL DEFAULT 0, stderr_total INTEGER NOT NULL DEFAULT 0,"
	" stdout_truncated INTEGER NOT NULL DEFAULT 0, stderr_truncated INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX IF NOT EXISTS jobs_queue ON jobs(priority DESC, seq) WHERE state = 'queued';"
	"CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, seq);";

int exe_store_init(sqlite3 *db, char instance[EXE_INSTANCE_LEN + 1], sdk_err *err)
{
	if (sdk_db_exec(db, schema, NULL) < 0)
		return sdk_db_fail(db, err, "executor schema");
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db, "SELECT value FROM meta WHERE key = 'instance'", &st, err);
	if (rc < 0)
		return rc;
	if (sqlite3_step(st) == SQLITE_ROW) {
		snprintf(instance, EXE_INSTANCE_LEN + 1, "%s", sdk_db_text(st, 0));
		sqlite3_finalize(st);
		return 0;
	}
	sqlite3_finalize(st);
	unsigned char r[EXE_INSTANCE_LEN / 2];
	randombytes_buf(r, sizeof r);
	for (size_t i = 0; i < sizeof r; i++)
		snprintf(instance + 2 * i, 3, "%02x", r[i]);
	if ((rc = sdk_db_prepare(db, "INSERT INTO meta(key, value) VALUES('instance', ?)", &st, err)) < 0)
		return rc;
	sqlite3_bind_text(st, 1, instance, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = sdk_db_fail(db, err, "instance");
	sqlite3_finalize(st);
	return rc;
}

int exe_job_insert(sqlite3 *db, const char *id, const char *owner, const char *role,
		   const char *name, const char *spec_json, const char *key, int priority,
		   int64_t now_ms, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
			 "INSERT INTO jobs(id, owner, role, name, spec, idem_key, priority, state,"
			 " created_ms) VALUES(?,?,?,?,?,?,?,'queued',?)",
			 &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, role, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, spec_json, -1, SQLITE_STATIC);
	if (key && *key)
		sqlite3_bind_text(st, 6, key, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 7, priority);
	sqlite3_bind_int64(st, 8, now_ms);
	int step = sqlite3_step(st);
	sqlite3_finalize(st);
	if ((step & 0xff) == SQLITE_CONSTRAINT)
		return sdk_fail(err, SDK_ECONFLICT, "idempotency_key: taken by another job");
	if (step != SQLITE_DONE)
		return sdk_db_fail(db, err, "insert job");
	return 0;
}

int exe_job_by_key(sqlite3 *db, const char *key, char id[EXE_ID_LEN + 1], char **spec_json,
		   sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db, "SELECT id, spec FROM jobs WHERE idem_key = ?", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		snprintf(id, EXE_ID_LEN + 1, "%s", sdk_db_text(st, 0));
		*spec_json = strdup(sdk_db_text(st, 1));
		rc = *spec_json ? 0 : sdk_fail(err, SDK_EIO, "out of memory");
	} else {
		rc = step == SQLITE_DONE ? sdk_fail(err, SDK_ENOTFOUND, "no job with that key")
					 : sdk_db_fail(db, err, "job by key");
	}
	sqlite3_finalize(st);
	return rc;
}

#define JOB_COLUMNS                                                                         \
	"id, owner, role, name, spec, idem_key, priority, state, created_ms, started_ms,"    \
	" finished_ms, exit_code, signal, timed_out, cancelled, oom_killed, cpu_limit_hit,"  \
	" error, usage, containment, workdir, length(stdout), length(stderr), stdout_total,"  \
	" stderr_total, stdout_truncated, stderr_truncated, pid, seq"

static json_t *int_or_null(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? json_null()
							  : json_integer(sqlite3_column_int64(st, i));
}

static json_t *json_col(sqlite3_stmt *st, int i)
{
	json_t *v = sqlite3_column_type(st, i) == SQLITE_NULL ? NULL
							      : json_loads(sdk_db_text(st, i), 0, NULL);
	return v ? v : json_null();
}

/* The spec as shown: variables by name only (their values may be secrets). */
static json_t *spec_view(const char *text)
{
	json_t *s = json_loads(text, 0, NULL);
	if (!s)
		return json_null();
	json_t *env = json_object_get(s, "env");
	if (json_is_object(env)) {
		json_t *names = json_array();
		const char *k;
		json_t *v;
		json_object_foreach(env, k, v)
			json_array_append_new(names, json_string(k));
		json_object_set_new(s, "env", names);
	}
	json_t *in = json_object_get(s, "stdin");
	if (json_is_string(in))
		json_object_set_new(s, "stdin", json_pack("{s:I}", "bytes",
							  (json_int_t)json_string_length(in)));
	json_object_del(s, "idempotency_key");
	return s;
}

static json_t *job_from_row(sqlite3_stmt *st)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:i, s:s, s:I, s:I}", "id",
			      sdk_db_text(st, 0), "owner", sdk_db_text(st, 1), "role", sdk_db_text(st, 2),
			      "name", sdk_db_text(st, 3), "spec", spec_view(sdk_db_text(st, 4)),
			      "idempotency_key",
			      sqlite3_column_type(st, 5) == SQLITE_NULL ? json_null()
									: json_string(sdk_db_text(st, 5)),
			      "priority", sqlite3_column_int(st, 6), "state", sdk_db_text(st, 7),
			      "created_ms", (json_int_t)sqlite3_column_int64(st, 8), "seq",
			      (json_int_t)sqlite3_column_int64(st, 28));
	json_object_set_new(o, "started_ms", int_or_null(st, 9));
	json_object_set_new(o, "finished_ms", int_or_null(st, 10));
	json_object_set_new(o, "duration_ms",
			    sqlite3_column_type(st, 9) != SQLITE_NULL &&
					    sqlite3_column_type(st, 10) != SQLITE_NULL
				    ? json_integer(sqlite3_column_int64(st, 10) -
						   sqlite3_column_int64(st, 9))
				    : json_null());
	json_object_set_new(o, "exit_code", int_or_null(st, 11));
	json_object_set_new(o, "signal",
			    sqlite3_column_int(st, 12) ? json_integer(sqlite3_column_int(st, 12))
						       : json_null());
	json_object_set_new(o, "timed_out", json_boolean(sqlite3_column_int(st, 13)));
	json_object_set_new(o, "cancelled", json_boolean(sqlite3_column_int(st, 14)));
	json_object_set_new(o, "oom_killed", json_boolean(sqlite3_column_int(st, 15)));
	json_object_set_new(o, "cpu_limit_hit", json_boolean(sqlite3_column_int(st, 16)));
	json_object_set_new(o, "error", sqlite3_column_type(st, 17) == SQLITE_NULL
						? json_null()
						: json_string(sdk_db_text(st, 17)));
	json_object_set_new(o, "usage", json_col(st, 18));
	json_object_set_new(o, "containment", json_col(st, 19));
	json_object_set_new(o, "workdir", sqlite3_column_type(st, 20) == SQLITE_NULL
						  ? json_null()
						  : json_string(sdk_db_text(st, 20)));
	json_object_set_new(o, "output",
			    json_pack("{s:I, s:I, s:I, s:I, s:b, s:b}", "stdout_bytes",
				      (json_int_t)sqlite3_column_int64(st, 23), "stderr_bytes",
				      (json_int_t)sqlite3_column_int64(st, 24), "stdout_stored",
				      (json_int_t)sqlite3_column_int64(st, 21), "stderr_stored",
				      (json_int_t)sqlite3_column_int64(st, 22), "stdout_truncated",
				      sqlite3_column_int(st, 25), "stderr_truncated",
				      sqlite3_column_int(st, 26)));
	json_object_set_new(o, "pid", int_or_null(st, 27));
	return o;
}

int exe_job_get(sqlite3 *db, const char *id, json_t **out, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db, "SELECT " JOB_COLUMNS " FROM jobs WHERE id = ?", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW)
		*out = job_from_row(st);
	else
		rc = step == SQLITE_DONE ? sdk_fail(err, SDK_ENOTFOUND, "no job %s", id)
					 : sdk_db_fail(db, err, "get job");
	sqlite3_finalize(st);
	return rc;
}

int exe_job_state(sqlite3 *db, const char *id, char *state, size_t n, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db, "SELECT state FROM jobs WHERE id = ?", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int step = sqlite3_step(st);
	state[0] = '\0';
	if (step == SQLITE_ROW)
		snprintf(state, n, "%s", sdk_db_text(st, 0));
	else if (step != SQLITE_DONE)
		rc = sdk_db_fail(db, err, "job state");
	sqlite3_finalize(st);
	return rc;
}

int exe_job_spec(sqlite3 *db, const char *id, char **spec_json, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db, "SELECT spec FROM jobs WHERE id = ?", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		*spec_json = strdup(sdk_db_text(st, 0));
		rc = *spec_json ? 0 : sdk_fail(err, SDK_EIO, "out of memory");
	} else {
		rc = step == SQLITE_DONE ? sdk_fail(err, SDK_ENOTFOUND, "no job %s", id)
					 : sdk_db_fail(db, err, "job spec");
	}
	sqlite3_finalize(st);
	return rc;
}

int exe_job_set_running(sqlite3 *db, const char *id, int64_t started_ms, pid_t shim,
			uint64_t shim_start, json_t *containment, json_t *cgroups,
			const char *workdir, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
			 "UPDATE jobs SET state = 'running', started_ms = ?, shim_pid = ?,"
			 " shim_start = ?, containment = ?, cgroups = ?, workdir = ? WHERE id = ?",
			 &st, err);
	if (rc < 0)
		return rc;
	char *c = json_dumps(containment, JSON_COMPACT), *g = json_dumps(cgroups, JSON_COMPACT);
	sqlite3_bind_int64(st, 1, started_ms);
	sqlite3_bind_int64(st, 2, shim);
	sqlite3_bind_int64(st, 3, (int64_t)shim_start);
	sqlite3_bind_text(st, 4, c ? c : "{}", -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 5, g ? g : "{}", -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 6, workdir, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = sdk_db_fail(db, err, "job running");
	sqlite3_finalize(st);
	free(c);
	free(g);
	return rc;
}

int exe_job_set_pid(sqlite3 *db, const char *id, pid_t pid, uint64_t start_ticks, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db, "UPDATE jobs SET pid = ?, pid_start = ? WHERE id = ?", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, pid);
	sqlite3_bind_int64(st, 2, (int64_t)start_ticks);
	sqlite3_bind_text(st, 3, id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = sdk_db_fail(db, err, "job pid");
	sqlite3_finalize(st);
	return rc;
}

int exe_job_finish(sqlite3 *db, const char *id, const exe_result *r, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
			 "UPDATE jobs SET state = ?, finished_ms = ?, exit_code = ?, signal = ?,"
			 " timed_out = ?, cancelled = ?, oom_killed = ?, cpu_limit_hit = ?, error = ?,"
			 " usage = ?, stdout = ?, stderr = ?, stdout_total = ?, stderr_total = ?,"
			 " stdout_truncated = ?, stderr_truncated = ? WHERE id = ?",
			 &st, err);
	if (rc < 0)
		return rc;
	char *u = r->usage ? json_dumps(r->usage, JSON_COMPACT) : NULL;
	int i = 1;
	sqlite3_bind_text(st, i++, r->state, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, i++, r->finished_ms);
	if (r->exit_code >= 0)
		sqlite3_bind_int(st, i, r->exit_code);
	i++;
	if (r->signal > 0)
		sqlite3_bind_int(st, i, r->signal);
	i++;
	sqlite3_bind_int(st, i++, r->timed_out);
	sqlite3_bind_int(st, i++, r->cancelled);
	sqlite3_bind_int(st, i++, r->oom_killed);
	sqlite3_bind_int(st, i++, r->cpu_limit_hit);
	if (r->error)
		sqlite3_bind_text(st, i, r->error, -1, SQLITE_STATIC);
	i++;
	if (u)
		sqlite3_bind_text(st, i, u, -1, SQLITE_TRANSIENT);
	i++;
	sqlite3_bind_blob(st, i++, r->out ? r->out : "", (int)r->out_len, SQLITE_STATIC);
	sqlite3_bind_blob(st, i++, r->err ? r->err : "", (int)r->err_len, SQLITE_STATIC);
	sqlite3_bind_int64(st, i++, (int64_t)r->out_total);
	sqlite3_bind_int64(st, i++, (int64_t)r->err_total);
	sqlite3_bind_int(st, i++, r->out_truncated);
	sqlite3_bind_int(st, i++, r->err_truncated);
	sqlite3_bind_text(st, i, id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = sdk_db_fail(db, err, "finish job");
	sqlite3_finalize(st);
	free(u);
	return rc;
}

int exe_job_next_queued(sqlite3 *db, char id[EXE_ID_LEN + 1], sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
			 "SELECT id FROM jobs WHERE state = 'queued' ORDER BY priority DESC, seq"
			 " LIMIT 1",
			 &st, err);
	if (rc < 0)
		return rc;
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW)
		snprintf(id, EXE_ID_LEN + 1, "%s", sdk_db_text(st, 0));
	else
		rc = step == SQLITE_DONE ? SDK_ENOTFOUND : sdk_db_fail(db, err, "next job");
	sqlite3_finalize(st);
	return rc;
}

int exe_job_count(sqlite3 *db, const char *state, int64_t *out, sdk_err *err)
{
	return sdk_db_count(db,
			    state ? "SELECT count(*) FROM jobs WHERE state = ?"
				  : "SELECT count(*) FROM jobs",
			    state, out, "count jobs", err);
}

int exe_job_list(sqlite3 *db, const char *state, int64_t cursor, unsigned limit, json_t **out,
		 sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
			 state ? "SELECT " JOB_COLUMNS " FROM jobs WHERE seq < ? AND state = ?"
				 " ORDER BY seq DESC LIMIT ?"
			       : "SELECT " JOB_COLUMNS " FROM jobs WHERE seq < ? ORDER BY seq DESC"
				 " LIMIT ?",
			 &st, err);
	if (rc < 0)
		return rc;
	int i = 1;
	sqlite3_bind_int64(st, i++, cursor > 0 ? cursor : INT64_MAX);
	if (state)
		sqlite3_bind_text(st, i++, state, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, i, (int)limit);
	json_t *arr = json_array();
	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(arr, job_from_row(st));
	sqlite3_finalize(st);
	if (step != SQLITE_DONE) {
		json_decref(arr);
		return sdk_db_fail(db, err, "list jobs");
	}
	*out = arr;
	return 0;
}

int exe_job_output(sqlite3 *db, const char *id, int stream, char **buf, size_t *len,
		   sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db, stream ? "SELECT stderr FROM jobs WHERE id = ?"
				    : "SELECT stdout FROM jobs WHERE id = ?",
			 &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		size_t n = (size_t)sqlite3_column_bytes(st, 0);
		const void *p = sqlite3_column_blob(st, 0);
		*buf = malloc(n ? n : 1);
		if (!*buf) {
			rc = sdk_fail(err, SDK_EIO, "out of memory");
		} else {
			if (n)
				memcpy(*buf, p, n);
			*len = n;
		}
	} else {
		rc = step == SQLITE_DONE ? sdk_fail(err, SDK_ENOTFOUND, "no job %s", id)
					 : sdk_db_fail(db, err, "job output");
	}
	sqlite3_finalize(st);
	return rc;
}

int exe_jobs_running(sqlite3 *db, exe_running_fn fn, void *arg, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
			 "SELECT id, coalesce(shim_pid, 0), coalesce(shim_start, 0), coalesce(pid, 0),"
			 " coalesce(pid_start, 0), cgroups, coalesce(workdir, '') FROM jobs"
			 " WHERE state = 'running'",
			 &st, err);
	if (rc < 0)
		return rc;
	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *cg = json_col(st, 5);
		fn(sdk_db_text(st, 0), (pid_t)sqlite3_column_int64(st, 1),
		   (uint64_t)sqlite3_column_int64(st, 2), (pid_t)sqlite3_column_int64(st, 3),
		   (uint64_t)sqlite3_column_int64(st, 4), cg, sdk_db_text(st, 6), arg);
		json_decref(cg);
	}
	sqlite3_finalize(st);
	return step == SQLITE_DONE ? 0 : sdk_db_fail(db, err, "running jobs");
}

int exe_job_prune(sqlite3 *db, unsigned keep, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
			 "DELETE FROM jobs WHERE state NOT IN ('queued', 'running') AND seq <"
			 " (SELECT seq FROM jobs WHERE state NOT IN ('queued', 'running')"
			 " ORDER BY seq DESC LIMIT 1 OFFSET ?)",
			 &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_int(st, 1, (int)keep);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = sdk_db_fail(db, err, "prune jobs");
	sqlite3_finalize(st);
	return rc;
}
