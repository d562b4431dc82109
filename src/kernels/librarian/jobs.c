#include "kernels/librarian/jobs.h"

#include "sdk/clock.h"
#include "sdk/db.h"
#include "sdk/log.h"
#include "sdk/pool.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIB_JOBS_QUEUE_MAX 1024 /* one walk or chunk per job at a time */
#define LIB_JOBS_RETRY_MS 1000  /* a busy database or full queue: again after */

struct lib_jobs {
	sdk_kernel *k;
	sdk_pool *pool;  /* one worker: ingests take turns, chunk by chunk */
	sqlite3 *wdb;    /* the worker's connection; only the worker uses it */
	lib_quota quota;
	unsigned chunk_files;
	size_t files_max;
	int64_t bytes_max;
	bool closing;
	struct run *runs;
};

enum phase { PHASE_WALK, PHASE_CHUNK };

/* A job this process is running. Filled and read on the loop; the worker
 * writes only the results of the step it runs. */
struct run {
	lib_jobs *j;
	int64_t id;
	char *rpath;
	sdk_req *req; /* waiting for the answer; NULL once answered */
	/* Until its row exists (id 0): who asked (owner owned, NULL for no
	 * caller), and, when they had too many, how many. The row is written
	 * by the worker, like every other write of a job: a write on the
	 * loop's connection would wait there for the worker's chunk. */
	char *owner;
	bool admin;
	int64_t too_many;
	bool wait_end; /* a small ingest: answered when it ends */
	enum phase phase;
	struct event *retry;
	struct run *next;
	/* results of the step just run */
	bool ran;
	int status; /* 0, 1 (more to do) or a negative sdk_status */
	sdk_err err;
	int64_t files_total, bytes_total;
};

static void run_free(struct run *r)
{
	for (struct run **rr = &r->j->runs; *rr; rr = &(*rr)->next)
		if (*rr == r) {
			*rr = r->next;
			break;
		}
	if (r->retry)
		event_free(r->retry);
	free(r->rpath);
	free(r->owner);
	free(r);
}

static void reply_status(sdk_req *req, int status, const sdk_err *e)
{
	if (status == SDK_EIO || status == SDK_ECORRUPT)
		sdk_log(SDK_LOG_WARN, sdk_req_id(req), "ingest: %s", e->msg);
	sdk_reply_status(req, status, e);
}

/* Answers a waiting request with the job (and, when it ended, the report). */
static void answer(struct run *r, int http, bool report)
{
	sdk_kernel *k = r->j->k;
	static const lib_actor all = { .name = NULL, .admin = true };
	json_t *job = NULL, *out = NULL;
	sdk_err e = { "" };
	int rc = lib_job_get(k->db, &all, r->id, &job, &e);
	if (!rc && report)
		rc = lib_job_report(k->db, r->id, &out, &e);
	else if (!rc)
		out = json_object();
	if (!rc && (!out || json_object_set_new(out, "job", job) < 0))
		rc = sdk_fail(&e, SDK_EIO, "out of memory");
	else if (!rc)
		job = NULL;
	if (rc) {
		json_decref(job);
		json_decref(out);
		reply_status(r->req, rc, &e);
	} else {
		sdk_reply_json(r->req, http, out);
	}
	r->req = NULL;
}

/* On the worker. */
static void step_work(void *arg)
{
	struct run *r = arg;
	lib_jobs *j = r->j;
	r->ran = true;
	r->err.msg[0] = '\0';
	if (!r->id) {
		const lib_actor who = { .name = r->owner, .admin = r->admin };
		int64_t active = 0;
		r->status = r->owner ? lib_job_active(j->wdb, r->owner, &active, &r->err) : 0;
		if (r->status)
			return;
		if (r->owner && active >= j->k->cfg->librarian.ingests_per_user) {
			r->too_many = active;
			return;
		}
		r->status = lib_job_create(j->wdb, &who, r->rpath, sdk_wall_ms(), &r->id, &r->err);
		if (r->status)
			return;
	}
	if (r->phase == PHASE_CHUNK) {
		r->status = lib_job_chunk(j->wdb, r->id, j->chunk_files, LIB_CHUNK_BYTES, &j->quota,
					  sdk_wall_ms(), &r->err);
		return;
	}
	lib_files files;
	r->status = lib_ingest_walk(r->rpath, j->files_max, j->bytes_max, &files, &r->err);
	if (r->status == 0) {
		r->files_total = (int64_t)files.n;
		r->bytes_total = files.bytes;
		r->status = lib_job_scan_store(j->wdb, r->id, &files, &j->quota, sdk_wall_ms(),
					       &r->err);
		lib_files_free(&files);
	}
}

static void step_done(void *arg);

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct run *r = arg;
	if (sdk_pool_submit(r->j->pool, step_work, step_done, r) < 0) {
		struct timeval tv = { LIB_JOBS_RETRY_MS / 1000, 0 };
		evtimer_add(r->retry, &tv);
	}
}

/* Queues the run's next step, or tries again a little later. */
static void step_next(struct run *r)
{
	if (r->j->closing)
		return;
	r->ran = false;
	if (sdk_pool_submit(r->j->pool, step_work, step_done, r) == 0)
		return;
	if (!r->retry)
		r->retry = evtimer_new(r->j->k->base, on_retry, r);
	struct timeval tv = { LIB_JOBS_RETRY_MS / 1000, 0 };
	if (r->retry)
		evtimer_add(r->retry, &tv);
}

/* A job's failure, recorded by the worker like its other writes (on the
 * loop's connection it would wait there for the write lock), and only
 * then told to whoever waits: they may read the job at once. */
struct fail {
	lib_jobs *j;
	int64_t id, at_ms;
	sdk_req *req;   /* waiting for the answer, or NULL */
	int status;     /* the job's failure: the answer's */
	sdk_err why;
	int rc;         /* the record's: 1 until it ran */
	sdk_err err;
};

static void fail_work(void *arg)
{
	struct fail *f = arg;
	f->rc = lib_job_fail(f->j->wdb, f->id, f->why.msg, f->at_ms, &f->err);
}

/* Unrun (the kernel stopping) or unrecorded: the job stays unfinished and
 * is taken up again at the next start, as any other. */
static void fail_done(void *arg)
{
	struct fail *f = arg;
	if (f->rc < 0)
		sdk_warn("ingest %lld: cannot record its failure: %s", (long long)f->id, f->err.msg);
	else if (!f->rc)
		sdk_info("ingest %lld failed: %s", (long long)f->id, f->why.msg);
	if (f->req)
		reply_status(f->req, f->status, &f->why);
	free(f);
}

/* The job failed for good: recorded, then told to whoever waits. */
static void run_fail(struct run *r)
{
	struct fail *f = calloc(1, sizeof *f);
	if (!f) {
		sdk_warn("ingest %lld: cannot record its failure: out of memory", (long long)r->id);
		if (r->req)
			reply_status(r->req, r->status, &r->err);
		r->req = NULL;
		run_free(r);
		return;
	}
	*f = (struct fail){ .j = r->j, .id = r->id, .at_ms = sdk_wall_ms(), .req = r->req,
			    .status = r->status, .why = r->err, .rc = 1 };
	r->req = NULL;
	run_free(r);
	if (sdk_pool_submit(f->j->pool, fail_work, fail_done, f) < 0) {
		f->rc = SDK_EBUSY;
		sdk_fail(&f->err, SDK_EBUSY, "the worker's queue is full");
		fail_done(f);
	}
}

/* On the loop, after a step. */
static void step_done(void *arg)
{
	struct run *r = arg;
	if (r->ran && r->too_many) {
		sdk_req_add_header(r->req, "Retry-After", "5");
		sdk_reply_error(r->req, 429, "too_many_requests",
				"you have %lld ingests queued or running, the most one user may;"
				" retry when one finishes", (long long)r->too_many);
		r->req = NULL;
		run_free(r);
		return;
	}
	if (!r->id && (!r->ran || r->j->closing || r->status != SDK_EBUSY)) {
		/* Never written: nothing to resume or to record as failed. */
		if (r->req) {
			sdk_err e = r->err;
			int status = r->ran && r->status < 0 ? r->status : SDK_EBUSY;
			if (status == SDK_EBUSY && !e.msg[0])
				sdk_fail(&e, SDK_EBUSY, "the librarian is stopping; try again");
			reply_status(r->req, status, &e); /* busy: with Retry-After */
			r->req = NULL;
		}
		run_free(r);
		return;
	}
	if (!r->ran || r->j->closing) { /* stopping: the job stays for the next start */
		if (r->req) {
			sdk_req_add_header(r->req, "Retry-After", "5");
			sdk_reply_error(r->req, 503, "stopping",
					"the librarian is stopping; ingest %lld resumes when it is "
					"back", (long long)r->id);
			r->req = NULL;
		}
		run_free(r);
		return;
	}
	if (r->status == SDK_EBUSY) { /* the database stayed locked */
		step_next(r);
		return;
	}
	if (r->status < 0) {
		run_fail(r);
		return;
	}
	if (r->phase == PHASE_WALK) {
		char state[16] = "";
		lib_job_state(r->j->k->db, r->id, state, sizeof state, NULL);
		if (strcmp(state, "running")) { /* cancelled meanwhile */
			if (r->req)
				answer(r, 200, false);
			run_free(r);
			return;
		}
		r->phase = PHASE_CHUNK;
		r->wait_end = r->files_total <= LIB_SYNC_FILES && r->bytes_total <= LIB_SYNC_BYTES;
		if (r->req && !r->wait_end)
			answer(r, 202, false);
		step_next(r);
		return;
	}
	if (r->status == 1) {
		step_next(r);
		return;
	}
	if (r->req)
		answer(r, 200, true);
	run_free(r);
}

static struct run *run_new(lib_jobs *j, int64_t id, char *rpath, enum phase phase)
{
	struct run *r = calloc(1, sizeof *r);
	if (!r) {
		free(rpath);
		return NULL;
	}
	*r = (struct run){ .j = j, .id = id, .rpath = rpath, .phase = phase, .next = j->runs };
	j->runs = r;
	return r;
}

void lib_jobs_start(lib_jobs *j, sdk_req *req, const lib_actor *who, const char *path)
{
	sdk_kernel *k = j->k;
	char *rpath = NULL;
	sdk_err e = { "" };
	int rc = lib_ingest_resolve(k->cfg->library_root, path, &rpath, &e);
	if (rc) {
		reply_status(req, rc, &e);
		return;
	}
	/* The per-user limit, the job's row and its walk: one step of the
	 * worker, which takes the jobs' writes in turn. */
	struct run *r = run_new(j, 0, rpath, PHASE_WALK);
	if (r && who->name && !(r->owner = strdup(who->name))) {
		run_free(r);
		r = NULL;
	}
	if (r)
		r->admin = who->admin;
	if (!r || sdk_pool_submit(j->pool, step_work, step_done, r) < 0) {
		if (r)
			run_free(r);
		sdk_fail(&e, SDK_EBUSY, "too many ingests waiting; try again");
		reply_status(req, SDK_EBUSY, &e);
		return;
	}
	r->req = req;
}

/* The jobs a crash or a stop interrupted, taken up again. */
static int resume(lib_jobs *j, lib_err *err)
{
	int64_t *ids;
	size_t n;
	int rc = lib_jobs_unfinished(j->k->db, &ids, &n, err);
	for (size_t i = 0; !rc && i < n; i++) {
		char owner[LIB_OWNER_MAX + 1], state[16], *path = NULL;
		bool has_owner, admin;
		rc = lib_job_info(j->k->db, ids[i], &path, owner, sizeof owner, &has_owner, &admin,
				  state, sizeof state, err);
		if (rc)
			break;
		struct run *r = run_new(j, ids[i], path,
					strcmp(state, "scanning") ? PHASE_CHUNK : PHASE_WALK);
		if (!r) {
			rc = sdk_fail(err, SDK_EIO, "out of memory");
			break;
		}
		sdk_info("ingest %lld: taken up again (%s)", (long long)ids[i], state);
		step_next(r);
	}
	free(ids);
	return rc;
}

lib_quota lib_jobs_quota(const lib_jobs *j) { return j->quota; }

lib_jobs *lib_jobs_new(sdk_kernel *k, lib_err *err)
{
	lib_jobs *j = calloc(1, sizeof *j);
	sdk_err why;
	if (!j) {
		sdk_fail(err, SDK_EIO, "out of memory");
		return NULL;
	}
	const grace_librarian *c = &k->cfg->librarian;
	j->k = k;
	j->quota = (lib_quota){ .docs = c->documents_per_user,
				.bytes = (int64_t)c->document_bytes_per_user };
	j->chunk_files = c->ingest_chunk_files ? c->ingest_chunk_files : 1;
	j->files_max = c->ingest_files_max;
	j->bytes_max = (int64_t)c->ingest_bytes_max;
	if (sdk_db_open(k->cfg->data_dir, k->def->name, &j->wdb, &why) < 0) {
		sdk_fail(err, SDK_EIO, "%s", why.msg);
		lib_jobs_free(j);
		return NULL;
	}
	j->pool = sdk_pool_new(k->base, 1, LIB_JOBS_QUEUE_MAX);
	if (!j->pool) {
		sdk_fail(err, SDK_EIO, "cannot start the ingest worker");
		lib_jobs_free(j);
		return NULL;
	}
	return j;
}

int lib_jobs_resume(lib_jobs *j, lib_err *err)
{
	return resume(j, err);
}

void lib_jobs_drain(lib_jobs *j)
{
	for (struct run *r = j->runs; r; r = r->next)
		if (r->req && r->phase == PHASE_CHUNK)
			answer(r, 202, false);
}

void lib_jobs_free(lib_jobs *j)
{
	if (!j)
		return;
	j->closing = true;
	sdk_pool_free(j->pool); /* the step running ends; queued ones are answered */
	while (j->runs) { /* runs between steps, or waiting on a retry timer */
		struct run *r = j->runs;
		if (r->req) {
			sdk_req_add_header(r->req, "Retry-After", "5");
			sdk_reply_error(r->req, 503, "stopping",
					"the librarian is stopping; ingest %lld resumes when it is "
					"back", (long long)r->id);
		}
		run_free(r);
	}
	if (j->wdb)
		sqlite3_close(j->wdb);
	free(j);
}
