#include "kernels/scheduler/store.h"

#include "sdk/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS jobs("
	" id TEXT PRIMARY KEY,"
	" owner TEXT NOT NULL,"
	" role TEXT NOT NULL,"
	" name TEXT NOT NULL,"
	" schedule TEXT NOT NULL,"
	" timezone TEXT NOT NULL,"
	" target TEXT NOT NULL,"
	" missed TEXT NOT NULL,"
	" missed_max INTEGER NOT NULL,"
	" deadline_ms INTEGER NOT NULL,"
	" overlap TEXT NOT NULL,"
	" jitter_ms INTEGER NOT NULL,"
	" paused INTEGER NOT NULL,"
	" anchor_ms INTEGER NOT NULL,"
	" next_slot_ms INTEGER,"
	" next_due_ms INTEGER,"
	" created_ms INTEGER NOT NULL,"
	" updated_ms INTEGER NOT NULL,"
	" missed_total INTEGER NOT NULL DEFAULT 0,"
	" UNIQUE(owner, name));"
	"CREATE INDEX IF NOT EXISTS jobs_due ON jobs(next_due_ms) WHERE paused = 0;"
	"CREATE TABLE IF NOT EXISTS runs("
	" id INTEGER PRIMARY KEY,"
	" job_id TEXT NOT NULL,"
	" slot_ms INTEGER,"
	" trigger TEXT NOT NULL,"
	" state TEXT NOT NULL,"
	" due_ms INTEGER NOT NULL,"
	" created_ms INTEGER NOT NULL,"
	" started_ms INTEGER,"
	" finished_ms INTEGER,"
	" target_ref TEXT,"
	" detail TEXT,"
	" UNIQUE(job_id, slot_ms));"
	"CREATE INDEX IF NOT EXISTS runs_job ON runs(job_id, id);"
	"CREATE INDEX IF NOT EXISTS runs_open ON runs(state, due_ms) "
	" WHERE state IN ('pending', 'running');";

int sch_store_init(sqlite3 *db, sdk_err *err)
{
	if (sdk_db_exec(db, schema, NULL) < 0)
		return sdk_db_fail(db, err, "scheduler schema");
	return 0;
}

void sch_job_free(sch_job *j)
{
	sch_spec_free(&j->spec);
}

static json_t *ms_or_null(int64_t ms)
{
	return ms == SCH_NO_SLOT ? json_null() : json_integer(ms);
}

json_t *sch_job_json(const sch_job *j)
{
	const sch_spec *s = &j->spec;
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:O, s:{s:s, s:i}, s:s, s:I, s:b, "
			      "s:o, s:o, s:I, s:I, s:I, s:b, s:b}",
			      "id", j->id, "name", s->name, "owner", j->owner, "role",
			      sch_role_name(j->role), "schedule", s->schedule, "timezone",
			      s->timezone, "target", s->target, "missed", "policy",
			      sch_missed_name(s->missed), "max", (int)s->missed_max, "overlap",
			      sch_overlap_name(s->overlap), "jitter_s", (json_int_t)(s->jitter_ms / 1000),
			      "paused", s->paused, "next_slot_ms", ms_or_null(j->next_slot_ms),
			      "next_due_ms", ms_or_null(j->next_due_ms), "created_ms",
			      (json_int_t)j->created_ms, "updated_ms", (json_int_t)j->updated_ms,
			      "missed_total", (json_int_t)j->missed_total, "fixed_hours",
			      !s->cron.every_ms && s->cron.fixed_hour, "idempotent", s->idempotent);
	if (o)
		json_object_set_new(o, "starting_deadline_s",
				    s->deadline_ms < 0 ? json_null()
						       : json_integer(s->deadline_ms / 1000));
	return o;
}

static void bind_ms(sqlite3_stmt *st, int i, int64_t ms)
{
	if (ms == SCH_NO_SLOT)
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_int64(st, i, ms);
}

static int64_t column_ms(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? SCH_NO_SLOT : sqlite3_column_int64(st, i);
}

static const char *column_text(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);
	return s ? s : "";
}

int sch_job_insert(sqlite3 *db, const sch_job *j, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
			 "INSERT INTO jobs(id, owner, role, name, schedule, timezone, target, missed,"
			 " missed_max, deadline_ms, overlap, jitter_ms, paused, anchor_ms,"
			 " next_slot_ms, next_due_ms, created_ms, updated_ms)"
			 " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
			 &st, err);
	if (rc < 0)
		return rc;
	const sch_spec *s = &j->spec;
	char *target = json_dumps(s->target, JSON_COMPACT);
	sqlite3_bind_text(st, 1, j->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, j->owner, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, sch_role_name(j->role), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, s->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, s->schedule, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, s->timezone, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, target ? target : "{}", -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 8, sch_missed_name(s->missed), -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 9, (int)s->missed_max);
	sqlite3_bind_int64(st, 10, s->deadline_ms);
	sqlite3_bind_text(st, 11, sch_overlap_name(s->overlap), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 12, s->jitter_ms);
	sqlite3_bind_int(st, 13, s->paused);
	sqlite3_bind_int64(st, 14, j->anchor_ms);
	bind_ms(st, 15, j->next_slot_ms);
	bind_ms(st, 16, j->next_due_ms);
	sqlite3_bind_int64(st, 17, j->created_ms);
	sqlite3_bind_int64(st, 18, j->updated_ms);
	free(target);
	int step = sqlite3_step(st);
	sqlite3_finalize(st);
	if (step == SQLITE_CONSTRAINT || (step & 0xff) == SQLITE_CONSTRAINT)
		return sdk_fail(err, SDK_ECONFLICT, "name: you have a job named \"%s\" already",
				s->name);
	if (step != SQLITE_DONE)
		return sdk_db_fail(db, err, "insert job");
	return 0;
}

#define JOB_COLUMNS                                                                            \
	"id, owner, role, name, schedule, timezone, target, missed, missed_max, deadline_ms,"  \
	" overlap, jitter_ms, paused, anchor_ms, next_slot_ms, next_due_ms, created_ms,"      \
	" updated_ms, missed_total"

/* A row of JOB_COLUMNS into *j: SDK_ECORRUPT when it no longer parses. */
static int job_from_row(sqlite3_stmt *st, sch_job *j, sdk_err *err)
{
	memset(j, 0, sizeof *j);
	snprintf(j->id, sizeof j->id, "%s", column_text(st, 0));
	snprintf(j->owner, sizeof j->owner, "%s", column_text(st, 1));
	sch_spec *s = &j->spec;
	snprintf(s->name, sizeof s->name, "%s", column_text(st, 3));
	snprintf(s->schedule, sizeof s->schedule, "%s", column_text(st, 4));
	snprintf(s->timezone, sizeof s->timezone, "%s", column_text(st, 5));
	json_error_t je;
	s->target = json_loads(column_text(st, 6), 0, &je);
	const char *type = json_string_value(json_object_get(s->target, "type"));
	bool ok = s->target && sch_role_parse(column_text(st, 2), &j->role) == 0 &&
		  sch_missed_parse(column_text(st, 7), &s->missed) == 0 &&
		  sch_overlap_parse(column_text(st, 10), &s->overlap) == 0 && type &&
		  cron_parse(s->schedule, &s->cron, NULL) == 0;
	if (!ok) {
		sch_spec_free(s);
		return sdk_fail(err, SDK_ECORRUPT, "job %s: stored row no longer reads", j->id);
	}
	s->target_type = !strcmp(type, "executor")   ? SCH_TARGET_EXECUTOR
			 : !strcmp(type, "bus")	     ? SCH_TARGET_BUS
			 : !strcmp(type, "workflow") ? SCH_TARGET_WORKFLOW
						     : SCH_TARGET_ROUTE;
	s->idempotent = s->target_type == SCH_TARGET_EXECUTOR ||
			s->target_type == SCH_TARGET_WORKFLOW ||
			json_is_true(json_object_get(s->target, "idempotent"));
	s->missed_max = (unsigned)sqlite3_column_int(st, 8);
	s->deadline_ms = sqlite3_column_int64(st, 9);
	s->jitter_ms = sqlite3_column_int64(st, 11);
	s->paused = sqlite3_column_int(st, 12) != 0;
	j->anchor_ms = sqlite3_column_int64(st, 13);
	j->next_slot_ms = column_ms(st, 14);
	j->next_due_ms = column_ms(st, 15);
	j->created_ms = sqlite3_column_int64(st, 16);
	j->updated_ms = sqlite3_column_int64(st, 17);
	j->missed_total = sqlite3_column_int64(st, 18);
	return 0;
}

int sch_job_get(sqlite3 *db, const char *id, sch_job *out, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db, "SELECT " JOB_COLUMNS " FROM jobs WHERE id = ?", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW)
		rc = job_from_row(st, out, err);
	else if (step == SQLITE_DONE)
		rc = sdk_fail(err, SDK_ENOTFOUND, "no job %s", id);
	else
		rc = sdk_db_fail(db, err, "get job");
	sqlite3_finalize(st);
	return rc;
}

static int exec_sql(sqlite3 *db, const char *sql, sdk_err *err)
{
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, sql);
	return 0;
}

int sch_job_delete(sqlite3 *db, const char *id, int64_t now_ms, sdk_err *err)
{
	int rc = exec_sql(db, "BEGIN IMMEDIATE", err);
	if (rc < 0)
		return rc;
	sqlite3_stmt *st = NULL;
	if ((rc = sdk_db_prepare(db, "DELETE FROM jobs WHERE id = ?", &st, err)) < 0)
		goto fail;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE) {
		rc = sdk_db_fail(db, err, "delete job");
		goto fail;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (sqlite3_changes(db) == 0) {
		rc = sdk_fail(err, SDK_ENOTFOUND, "no job %s", id);
		goto fail;
	}
	if ((rc = sdk_db_prepare(db,
			  "UPDATE runs SET state = 'cancelled', finished_ms = ?,"
			  " detail = '{\"reason\":\"the job was deleted\"}'"
			  " WHERE job_id = ? AND state IN ('pending', 'running')",
			  &st, err)) < 0)
		goto fail;
	sqlite3_bind_int64(st, 1, now_ms);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE) {
		rc = sdk_db_fail(db, err, "cancel runs");
		goto fail;
	}
	sqlite3_finalize(st);
	return exec_sql(db, "COMMIT", err);
fail:
	sqlite3_finalize(st);
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

int sch_jobs_delete_owner(sqlite3 *db, const char *owner, int64_t now_ms, int64_t *deleted,
			  sdk_err *err)
{
	int rc = exec_sql(db, "BEGIN IMMEDIATE", err);
	if (rc < 0)
		return rc;
	sqlite3_stmt *st = NULL;
	if ((rc = sdk_db_prepare(db,
			  "UPDATE runs SET state = 'cancelled', finished_ms = ?,"
			  " detail = '{\"reason\":\"its owner was deleted\"}'"
			  " WHERE state IN ('pending', 'running')"
			  " AND job_id IN (SELECT id FROM jobs WHERE owner = ?)",
			  &st, err)) < 0)
		goto fail;
	sqlite3_bind_int64(st, 1, now_ms);
	sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE) {
		rc = sdk_db_fail(db, err, "cancel runs");
		goto fail;
	}
	sqlite3_finalize(st);
	st = NULL;
	if ((rc = sdk_db_prepare(db, "DELETE FROM jobs WHERE owner = ?", &st, err)) < 0)
		goto fail;
	sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE) {
		rc = sdk_db_fail(db, err, "delete jobs");
		goto fail;
	}
	*deleted = sqlite3_changes(db);
	sqlite3_finalize(st);
	return exec_sql(db, "COMMIT", err);
fail:
	sqlite3_finalize(st);
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

int sch_job_list(sqlite3 *db, const char *owner, const char *cursor, unsigned limit,
		 json_t **out, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
			 owner ? "SELECT " JOB_COLUMNS " FROM jobs WHERE id > ? AND owner = ?"
				 " ORDER BY id LIMIT ?"
			       : "SELECT " JOB_COLUMNS " FROM jobs WHERE id > ? ORDER BY id LIMIT ?",
			 &st, err);
	if (rc < 0)
		return rc;
	int i = 1;
	sqlite3_bind_text(st, i++, cursor ? cursor : "", -1, SQLITE_STATIC);
	if (owner)
		sqlite3_bind_text(st, i++, owner, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, i, (int)limit);
	json_t *arr = json_array();
	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		sch_job j;
		if (job_from_row(st, &j, NULL) < 0)
			continue; /* shown by GET of its id, which says why */
		json_array_append_new(arr, sch_job_json(&j));
		sch_job_free(&j);
	}
	sqlite3_finalize(st);
	if (step != SQLITE_DONE) {
		json_decref(arr);
		return sdk_db_fail(db, err, "list jobs");
	}
	*out = arr;
	return 0;
}

int sch_job_count(sqlite3 *db, const char *owner, int64_t *out, sdk_err *err)
{
	return sdk_db_count(db,
			    owner ? "SELECT count(*) FROM jobs WHERE owner = ?"
				  : "SELECT count(*) FROM jobs",
			    owner, out, "count jobs", err);
}

int sch_job_set_paused(sqlite3 *db, const char *id, bool paused, int64_t anchor_ms,
		       int64_t next_slot_ms, int64_t next_due_ms, int64_t now_ms, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
			 "UPDATE jobs SET paused = ?, anchor_ms = ?, next_slot_ms = ?, next_due_ms = ?,"
			 " updated_ms = ? WHERE id = ?",
			 &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_int(st, 1, paused);
	sqlite3_bind_int64(st, 2, anchor_ms);
	bind_ms(st, 3, next_slot_ms);
	bind_ms(st, 4, next_due_ms);
	sqlite3_bind_int64(st, 5, now_ms);
	sqlite3_bind_text(st, 6, id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = sdk_db_fail(db, err, "pause job");
	else if (sqlite3_changes(db) == 0)
		rc = sdk_fail(err, SDK_ENOTFOUND, "no job %s", id);
	sqlite3_finalize(st);
	return rc;
}

int sch_due_jobs(sqlite3 *db, int64_t now_ms, unsigned max, char (*ids)[SCH_ID_LEN + 1],
		 size_t *n, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
			 "SELECT id FROM jobs WHERE paused = 0 AND next_due_ms <= ?"
			 " ORDER BY next_due_ms LIMIT ?",
			 &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, now_ms);
	sqlite3_bind_int(st, 2, (int)max);
	*n = 0;
	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW)
		snprintf(ids[(*n)++], SCH_ID_LEN + 1, "%s", column_text(st, 0));
	sqlite3_finalize(st);
	if (step != SQLITE_DONE)
		return sdk_db_fail(db, err, "due jobs");
	return 0;
}

int64_t sch_next_due(sqlite3 *db)
{
	sqlite3_stmt *st;
	int64_t v = INT64_MAX;
	if (sqlite3_prepare_v2(db, "SELECT min(next_due_ms) FROM jobs WHERE paused = 0", -1, &st,
			       NULL) != SQLITE_OK)
		return v;
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

int sch_commit_plan(sqlite3 *db, const sch_job *j, const sch_plan *p, int64_t now_ms,
		    sdk_err *err)
{
	int rc = exec_sql(db, "BEGIN IMMEDIATE", err);
	if (rc < 0)
		return rc;
	sqlite3_stmt *ins = NULL, *upd = NULL;
	if ((rc = sdk_db_prepare(db,
			  "INSERT OR IGNORE INTO runs(job_id, slot_ms, trigger, state, due_ms,"
			  " created_ms, finished_ms) VALUES(?,?,?,?,?,?,?)",
			  &ins, err)) < 0)
		goto fail;
	/* Missed slots recorded one by one: the newest SCH_MISSED_ROWS_MAX. */
	size_t missed = 0, missed_rows = 0;
	for (size_t i = 0; i < p->n; i++)
		missed += !p->slots[i].run;
	for (size_t i = 0; i < p->n; i++) {
		const sch_slot *s = &p->slots[i];
		if (!s->run && missed - missed_rows > SCH_MISSED_ROWS_MAX) {
			missed_rows++; /* counted, not recorded */
			continue;
		}
		sqlite3_reset(ins);
		sqlite3_bind_text(ins, 1, j->id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(ins, 2, s->slot_ms);
		sqlite3_bind_text(ins, 3, sch_trigger_name(s->trigger), -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 4, s->run ? SCH_RUN_PENDING : SCH_RUN_MISSED, -1,
				  SQLITE_STATIC);
		sqlite3_bind_int64(ins, 5, s->due_ms);
		sqlite3_bind_int64(ins, 6, now_ms);
		if (s->run)
			sqlite3_bind_null(ins, 7);
		else
			sqlite3_bind_int64(ins, 7, now_ms);
		if (sqlite3_step(ins) != SQLITE_DONE) {
			rc = sdk_db_fail(db, err, "record slot");
			goto fail;
		}
	}
	int64_t next_due = p->next_slot_ms == SCH_NO_SLOT
				   ? SCH_NO_SLOT
				   : p->next_slot_ms + sch_jitter(j->id, p->next_slot_ms, j->spec.jitter_ms);
	if ((rc = sdk_db_prepare(db,
			  "UPDATE jobs SET next_slot_ms = ?, next_due_ms = ?,"
			  " missed_total = missed_total + ? WHERE id = ?",
			  &upd, err)) < 0)
		goto fail;
	bind_ms(upd, 1, p->next_slot_ms);
	bind_ms(upd, 2, next_due);
	sqlite3_bind_int64(upd, 3, (int64_t)(missed + p->missed_unwalked));
	sqlite3_bind_text(upd, 4, j->id, -1, SQLITE_STATIC);
	if (sqlite3_step(upd) != SQLITE_DONE) {
		rc = sdk_db_fail(db, err, "advance job");
		goto fail;
	}
	sqlite3_finalize(ins);
	sqlite3_finalize(upd);
	return exec_sql(db, "COMMIT", err);
fail:
	sqlite3_finalize(ins);
	sqlite3_finalize(upd);
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

int sch_run_insert_manual(sqlite3 *db, const char *job_id, int64_t now_ms, int64_t *run_id,
			  sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
			 "INSERT INTO runs(job_id, slot_ms, trigger, state, due_ms, created_ms)"
			 " VALUES(?, NULL, 'manual', 'pending', ?, ?)",
			 &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, job_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now_ms);
	sqlite3_bind_int64(st, 3, now_ms);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = sdk_db_fail(db, err, "insert run");
	else
		*run_id = sqlite3_last_insert_rowid(db);
	sqlite3_finalize(st);
	return rc;
}

int sch_run_update(sqlite3 *db, int64_t run_id, const char *state, int64_t started_ms,
		   int64_t finished_ms, const char *target_ref, json_t *detail, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
			 "UPDATE runs SET state = ?, started_ms = coalesce(?, started_ms),"
			 " finished_ms = coalesce(?, finished_ms), target_ref = coalesce(?, target_ref),"
			 " detail = coalesce(?, detail)"
			 " WHERE id = ? AND state IN ('pending', 'running')",
			 &st, err);
	if (rc < 0)
		return rc;
	char *d = detail ? json_dumps(detail, JSON_COMPACT) : NULL;
	sqlite3_bind_text(st, 1, state, -1, SQLITE_STATIC);
	if (started_ms >= 0)
		sqlite3_bind_int64(st, 2, started_ms);
	if (finished_ms >= 0)
		sqlite3_bind_int64(st, 3, finished_ms);
	if (target_ref)
		sqlite3_bind_text(st, 4, target_ref, -1, SQLITE_STATIC);
	if (d)
		sqlite3_bind_text(st, 5, d, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 6, run_id);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = sdk_db_fail(db, err, "update run");
	sqlite3_finalize(st);
	free(d);
	return rc;
}

int sch_runs_open(sqlite3 *db, int64_t after_id, unsigned max, sch_open_run *out, size_t *n,
		  sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
			 "SELECT id, job_id, slot_ms, trigger, state, coalesce(target_ref, ''), due_ms"
			 " FROM runs WHERE state IN ('pending', 'running') AND id > ?"
			 " ORDER BY id LIMIT ?",
			 &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, after_id);
	sqlite3_bind_int(st, 2, (int)max);
	*n = 0;
	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		sch_open_run *r = &out[(*n)++];
		memset(r, 0, sizeof *r);
		r->id = sqlite3_column_int64(st, 0);
		snprintf(r->job_id, sizeof r->job_id, "%s", column_text(st, 1));
		r->slot_ms = sqlite3_column_type(st, 2) == SQLITE_NULL ? INT64_MIN
								       : sqlite3_column_int64(st, 2);
		const char *trig = column_text(st, 3);
		r->trigger = !strcmp(trig, "manual")    ? SCH_TRIGGER_MANUAL
			     : !strcmp(trig, "catchup") ? SCH_TRIGGER_CATCHUP
							: SCH_TRIGGER_SCHEDULE;
		r->running = !strcmp(column_text(st, 4), SCH_RUN_RUNNING);
		snprintf(r->target_ref, sizeof r->target_ref, "%s", column_text(st, 5));
		r->due_ms = sqlite3_column_int64(st, 6);
	}
	sqlite3_finalize(st);
	if (step != SQLITE_DONE)
		return sdk_db_fail(db, err, "open runs");
	return 0;
}

int sch_runs_active(sqlite3 *db, const char *job_id, int64_t except_run, int64_t *count,
		    int64_t *first_id, char target_ref[64], sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
			 "SELECT id, coalesce(target_ref, '') FROM runs WHERE job_id = ? AND id != ?"
			 " AND state = 'running' ORDER BY id",
			 &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, job_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, except_run);
	*count = 0;
	*first_id = 0;
	target_ref[0] = '\0';
	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if ((*count)++ == 0) {
			*first_id = sqlite3_column_int64(st, 0);
			snprintf(target_ref, 64, "%s", column_text(st, 1));
		}
	}
	sqlite3_finalize(st);
	if (step != SQLITE_DONE)
		return sdk_db_fail(db, err, "active runs");
	return 0;
}

int sch_runs_list(sqlite3 *db, const char *job_id, int64_t cursor, unsigned limit, json_t **out,
		  sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
			 "SELECT id, slot_ms, trigger, state, due_ms, created_ms, started_ms,"
			 " finished_ms, target_ref, detail FROM runs WHERE job_id = ? AND id < ?"
			 " ORDER BY id DESC LIMIT ?",
			 &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, job_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, cursor > 0 ? cursor : INT64_MAX);
	sqlite3_bind_int(st, 3, (int)limit);
	json_t *arr = json_array();
	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *o = json_pack("{s:I, s:s, s:o, s:s, s:s, s:I, s:I}", "id",
				      (json_int_t)sqlite3_column_int64(st, 0), "job_id", job_id,
				      "slot_ms",
				      sqlite3_column_type(st, 1) == SQLITE_NULL
					      ? json_null()
					      : json_integer(sqlite3_column_int64(st, 1)),
				      "trigger", column_text(st, 2), "state", column_text(st, 3),
				      "due_ms", (json_int_t)sqlite3_column_int64(st, 4), "created_ms",
				      (json_int_t)sqlite3_column_int64(st, 5));
		int64_t started = column_ms(st, 6), finished = column_ms(st, 7);
		json_object_set_new(o, "started_ms", ms_or_null(started));
		json_object_set_new(o, "finished_ms", ms_or_null(finished));
		json_object_set_new(o, "duration_ms",
				    started != SCH_NO_SLOT && finished != SCH_NO_SLOT
					    ? json_integer(finished - started)
					    : json_null());
		json_object_set_new(o, "target_ref",
				    sqlite3_column_type(st, 8) == SQLITE_NULL
					    ? json_null()
					    : json_string(column_text(st, 8)));
		json_t *detail = sqlite3_column_type(st, 9) == SQLITE_NULL
					 ? NULL
					 : json_loads(column_text(st, 9), 0, NULL);
		json_object_set_new(o, "detail", detail ? detail : json_null());
		json_array_append_new(arr, o);
	}
	sqlite3_finalize(st);
	if (step != SQLITE_DONE) {
		json_decref(arr);
		return sdk_db_fail(db, err, "list runs");
	}
	*out = arr;
	return 0;
}

int sch_runs_prune(sqlite3 *db, const char *job_id, unsigned keep, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
			 "DELETE FROM runs WHERE job_id = ?1 AND state NOT IN ('pending', 'running')"
			 " AND id < (SELECT id FROM runs WHERE job_id = ?1 ORDER BY id DESC"
			 " LIMIT 1 OFFSET ?2)",
			 &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, job_id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, (int)keep);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = sdk_db_fail(db, err, "prune runs");
	sqlite3_finalize(st);
	return rc;
}
