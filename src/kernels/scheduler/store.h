/* The scheduler's SQLite file: jobs, and runs (one per slot that came due,
 * plus manual triggers). Exactly once per slot rests here: a slot's run
 * row (UNIQUE per job and slot) and the job's next slot are written in the
 * same transaction, before anything acts on them; a restart finds every
 * slot either decided (a row) or still ahead (the job's next slot). */
#ifndef GRACE_SCHEDULER_STORE_H
#define GRACE_SCHEDULER_STORE_H

#include "kernels/layer.h"

#include "kernels/scheduler/plan.h"
#include "kernels/scheduler/spec.h"
#include "sdk/err.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdint.h>

#define SCH_ID_LEN 18 /* "j_" + 16 hex */
#define SCH_OWNER_MAX 80
#define SCH_MISSED_ROWS_MAX 100 /* missed slots recorded one by one per catch-up; the rest counted */
#define SCH_PAGE_MAX 1000

typedef struct sch_job {
	char id[SCH_ID_LEN + 1];
	char owner[SCH_OWNER_MAX + 1];
	sch_role role;
	sch_spec spec; /* its target is owned: free with sch_job_free */
	int64_t anchor_ms;    /* @every's anchor: when the job was made (or resumed) */
	int64_t next_slot_ms; /* SCH_NO_SLOT when it never fires again */
	int64_t next_due_ms;  /* the next slot plus its jitter */
	int64_t created_ms, updated_ms;
	int64_t missed_total;
} sch_job;

/* Run states. Open: pending (decided, not yet acted on), running (sent to
 * its target). Closed: the rest. */
#define SCH_RUN_PENDING "pending"
#define SCH_RUN_RUNNING "running"
#define SCH_RUN_SUCCEEDED "succeeded"
#define SCH_RUN_FAILED "failed"
#define SCH_RUN_DENIED "denied"
#define SCH_RUN_SKIPPED "skipped"         /* overlap: forbid */
#define SCH_RUN_MISSED "missed"           /* the missed-run policy did not run it */
#define SCH_RUN_INTERRUPTED "interrupted" /* sent when the scheduler died; outcome unknown */
#define SCH_RUN_CANCELLED "cancelled"     /* overlap: replace, or the job was deleted */

/* An open run, with what acting on it needs from its job. */
typedef struct sch_open_run {
	int64_t id;
	char job_id[SCH_ID_LEN + 1];
	int64_t slot_ms; /* INT64_MIN for a manual run */
	sch_trigger trigger;
	bool running;     /* sent already (a restart found it so) */
	char target_ref[64]; /* the executor's job id, once known */
	int64_t due_ms;
} sch_open_run;

int sch_store_init(sqlite3 *db, sdk_err *err);

void sch_job_free(sch_job *j);
/* The job as the API shows it (without next fire times). */
json_t *sch_job_json(const sch_job *j);

/* SDK_ECONFLICT when the owner has a job by that name already. */
int sch_job_insert(sqlite3 *db, const sch_job *j, sdk_err *err);
/* SDK_ENOTFOUND when there is none. The spec's cron is parsed again. */
int sch_job_get(sqlite3 *db, const char *id, sch_job *out, sdk_err *err);
/* Deletes the job; its open runs become cancelled. */
int sch_job_delete(sqlite3 *db, const char *id, int64_t now_ms, sdk_err *err);
/* Deletes every job of `owner` (a deleted user's), their open runs
 * cancelled; how many in *deleted. */
int sch_jobs_delete_owner(sqlite3 *db, const char *owner, int64_t now_ms, int64_t *deleted,
			  sdk_err *err);
/* A page of jobs (owner NULL: everyone's) after id `cursor` ("" first). */
int sch_job_list(sqlite3 *db, const char *owner, const char *cursor, unsigned limit,
		 json_t **out, sdk_err *err);
int sch_job_count(sqlite3 *db, const char *owner, int64_t *out, sdk_err *err);
int sch_job_set_paused(sqlite3 *db, const char *id, bool paused, int64_t anchor_ms,
		       int64_t next_slot_ms, int64_t next_due_ms, int64_t now_ms, sdk_err *err);

/* Ids of unpaused jobs due by now (next_due_ms <= now), earliest first. */
int sch_due_jobs(sqlite3 *db, int64_t now_ms, unsigned max, char (*ids)[SCH_ID_LEN + 1],
		 size_t *n, sdk_err *err);
/* The earliest next_due_ms of an unpaused job; INT64_MAX when none. */
int64_t sch_next_due(sqlite3 *db);

/* Records a plan in one transaction: a pending run for each slot to run, a
 * missed run for the latest SCH_MISSED_ROWS_MAX others, and the job's new
 * next slot. A slot recorded before (a repeated plan) is left as it was. */
int sch_commit_plan(sqlite3 *db, const sch_job *j, const sch_plan *p, int64_t now_ms,
		    sdk_err *err);
/* A manual run, pending; its id in *run_id. */
int sch_run_insert_manual(sqlite3 *db, const char *job_id, int64_t now_ms, int64_t *run_id,
			  sdk_err *err);
/* Moves an open run on (a closed run never changes: a replaced run's
 * late answer is ignored): started_ms / finished_ms when >= 0; target_ref
 * and detail (a JSON object, borrowed) when not NULL. */
int sch_run_update(sqlite3 *db, int64_t run_id, const char *state, int64_t started_ms,
		   int64_t finished_ms, const char *target_ref, json_t *detail, sdk_err *err);
/* Open runs (pending or running), oldest due first, at most `max`, with
 * ids above `after_id`. */
int sch_runs_open(sqlite3 *db, int64_t after_id, unsigned max, sch_open_run *out, size_t *n,
		  sdk_err *err);
/* Other open runs of a job: their count, and the first one's id and target_ref. */
int sch_runs_active(sqlite3 *db, const char *job_id, int64_t except_run, int64_t *count,
		    int64_t *first_id, char target_ref[64], sdk_err *err);
/* A page of a job's runs, newest first, below id `cursor` (0: from the newest). */
int sch_runs_list(sqlite3 *db, const char *job_id, int64_t cursor, unsigned limit, json_t **out,
		  sdk_err *err);
/* Keeps at most `keep` closed runs per job (the newest). */
int sch_runs_prune(sqlite3 *db, const char *job_id, unsigned keep, sdk_err *err);

#endif
