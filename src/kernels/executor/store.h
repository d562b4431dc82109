/* The executor's SQLite file: its instance name (the cgroups and work
 * directories of this executor are named after it, so a restart finds
 * what a previous life left), and the jobs: the spec as accepted, the
 * state, the result, the containment that applied, and the stored output.
 *
 * States: queued -> running -> succeeded | failed | timed_out | cancelled,
 * and lost (the executor died while it ran: its processes were killed). */
#ifndef GRACE_EXECUTOR_STORE_H
#define GRACE_EXECUTOR_STORE_H

#include "kernels/layer.h"

#include "sdk/err.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define EXE_ID_LEN 18      /* "x_" + 16 hex */
#define EXE_INSTANCE_LEN 8 /* hex */
#define EXE_OWNER_MAX 80
#define EXE_PAGE_MAX 1000

typedef struct exe_result {
	const char *state;
	int exit_code;  /* -1: none */
	int signal;     /* 0: none */
	bool timed_out, cancelled, oom_killed, cpu_limit_hit;
	const char *error; /* NULL or a reason */
	json_t *usage;     /* borrowed */
	const char *out, *err; /* stored output (may be NULL) */
	size_t out_len, err_len;
	uint64_t out_total, err_total;
	bool out_truncated, err_truncated;
	int64_t finished_ms;
} exe_result;

int exe_store_init(sqlite3 *db, char instance[EXE_INSTANCE_LEN + 1], sdk_err *err);

/* SDK_ECONFLICT when the key is taken; *seq is the job's place in line. */
int exe_job_insert(sqlite3 *db, const char *id, const char *owner, const char *role,
		   const char *name, const char *spec_json, const char *key, int priority,
		   int64_t now_ms, sdk_err *err);
/* The id and spec of the job holding `key`; SDK_ENOTFOUND when none. */
int exe_job_by_key(sqlite3 *db, const char *key, char id[EXE_ID_LEN + 1], char **spec_json,
		   sdk_err *err);
/* The job as the API shows it (no output bytes). */
int exe_job_get(sqlite3 *db, const char *id, json_t **out, sdk_err *err);
/* Its state ("" when there is no such job). */
int exe_job_state(sqlite3 *db, const char *id, char *state, size_t n, sdk_err *err);
/* *spec_json: malloc'd. */
int exe_job_spec(sqlite3 *db, const char *id, char **spec_json, sdk_err *err);
int exe_job_set_running(sqlite3 *db, const char *id, int64_t started_ms, pid_t shim,
			uint64_t shim_start, json_t *containment, json_t *cgroups,
			const char *workdir, sdk_err *err);
int exe_job_set_pid(sqlite3 *db, const char *id, pid_t pid, uint64_t start_ticks, sdk_err *err);
int exe_job_finish(sqlite3 *db, const char *id, const exe_result *r, sdk_err *err);
/* The next job to start: highest priority, then oldest. SDK_ENOTFOUND when none. */
int exe_job_next_queued(sqlite3 *db, char id[EXE_ID_LEN + 1], sdk_err *err);
int exe_job_count(sqlite3 *db, const char *state, int64_t *out, sdk_err *err);
/* A page, newest first; state NULL: any. */
int exe_job_list(sqlite3 *db, const char *state, int64_t cursor, unsigned limit, json_t **out,
		 sdk_err *err);
/* The stored output of one stream (0 stdout, 1 stderr): malloc'd copy. */
int exe_job_output(sqlite3 *db, const char *id, int stream, char **buf, size_t *len,
		   sdk_err *err);

/* What a running job left for a restart to clean: called per job. */
typedef void (*exe_running_fn)(const char *id, pid_t shim, uint64_t shim_start, pid_t pid,
			       uint64_t pid_start, json_t *cgroups, const char *workdir,
			       void *arg);
int exe_jobs_running(sqlite3 *db, exe_running_fn fn, void *arg, sdk_err *err);
/* Keeps the newest `keep` finished jobs. */
int exe_job_prune(sqlite3 *db, unsigned keep, sdk_err *err);

#endif
