/* The store's worker thread (worker.h). */
#include "kernels/self_healing/worker.h"

#include "kernels/self_healing/state.h"
#include "sdk/db.h"
#include "sdk/log.h"
#include "sdk/pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sh_worker_start(sh_state *s, sdk_err *err)
{
	sdk_err e;
	/* The runtime's connection checked the file at open: this one skips it. */
	sdk_db_check check = { .skip = true };
	if (sdk_db_open_checked(s->k->cfg->data_dir, s->k->def->name, &check, &s->wdb, &e) < 0) {
		return sdk_fail(err, SDK_EIO, "the store's worker connection: %s", e.msg);
	}
	s->pool = sdk_pool_new(s->k->base, 1, SH_WORKER_QUEUE_MAX + SH_WORKER_SPARE);
	if (!s->pool) {
		return sdk_fail(err, SDK_EIO, "cannot start the store's worker");
	}
	return 0;
}

void sh_worker_stop(sh_state *s)
{
	s->closing = true;
	sdk_pool_free(s->pool); /* the running job ends; queued ones get their done */
	s->pool = NULL;
	if (s->wdb)
		sqlite3_close(s->wdb);
	s->wdb = NULL;
}

sh_job *sh_job_new(sh_state *s, bool with_batch, void (*done)(sh_job *))
{
	sh_job *j = calloc(1, sizeof *j);
	if (!j)
		return NULL;
	j->s = s;
	j->done = done;
	if (with_batch && !(j->batch = sh_batch_new())) {
		free(j);
		return NULL;
	}
	return j;
}

void sh_job_free(sh_job *j)
{
	sh_batch_free(j->batch);
	json_decref(j->in);
	json_decref(j->out);
	free(j);
}

static void job_work(void *arg)
{
	sh_job *j = arg;
	sqlite3 *db = j->s->wdb;
	j->err.msg[0] = 0;
	j->rc = j->batch ? sh_batch_run(j->batch, db, &j->err) : 0;
	if (j->rc == 0 && j->work)
		j->rc = j->work(j, db, &j->err);
}

static void job_done(void *arg)
{
	sh_job *j = arg;
	sh_state *s = j->s;
	j->closing = s->closing;
	if (j->rc < 0 && j->batch && sh_batch_len(j->batch)) {
		s->store_failures++;
		sdk_warn("self_healing: the store did not take a write: %s", j->err.msg);
	}
	if (j->done)
		j->done(j);
	sh_job_free(j);
}

bool sh_worker_room(const sh_state *s, bool request)
{
	size_t max = request ? SH_WORKER_QUEUE_MAX : SH_WORKER_QUEUE_MAX + SH_WORKER_SPARE;
	return s->pool && !s->closing && sdk_pool_pending(s->pool) < max;
}

int sh_job_submit(sh_job *j, bool request)
{
	sh_state *s = j->s;
	if (!sh_worker_room(s, request) || sdk_pool_submit(s->pool, job_work, job_done, j) < 0) {
		sh_job_free(j);
		return SDK_EBUSY;
	}
	return 0;
}

void sh_reply_busy(sdk_req *req)
{
	sdk_err e;
	sdk_fail(&e, SDK_EBUSY, "the incident store is busy: try again shortly");
	sdk_reply_status(req, SDK_EBUSY, &e);
}

bool sh_job_reply_failed(sh_job *j)
{
	if (j->closing) {
		sdk_req_add_header(j->req, "Retry-After", "5");
		sdk_reply_error(j->req, 503, "stopping", "the self_healing kernel is stopping");
		return true;
	}
	if (j->rc < 0) {
		sdk_reply_status(j->req, j->rc, &j->err);
		return true;
	}
	return false;
}

size_t sh_worker_pending(const sh_state *s)
{
	return s->pool ? sdk_pool_pending(s->pool) : 0;
}
