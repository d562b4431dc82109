/* The store's worker: one thread with its own connection to
 * DATA_DIR/self_healing.db, so the event loop never waits on the disk.
 * One thread and a FIFO queue: the writes reach the store in the order
 * the loop decided them, and a read sees every write asked before it.
 * Done callbacks run back on the loop in the same order. */
#ifndef GRACE_SELF_HEALING_WORKER_H
#define GRACE_SELF_HEALING_WORKER_H

#include "kernels/layer.h"

#include "kernels/self_healing/batch.h"
#include "kernels/self_healing/store.h"
#include "sdk/http.h"
#include "sdk/err.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

/* Jobs a request may find queued before it is refused (503 busy with
 * Retry-After); the kernel's own jobs (the bus's batch, the tick's
 * resolutions) have SH_WORKER_SPARE more, so a flood of requests does not
 * stop the feed. */
#define SH_WORKER_QUEUE_MAX 64
#define SH_WORKER_SPARE 64

struct sh_state;
typedef struct sh_job sh_job;

struct sh_job {
	struct sh_state *s;
	sh_batch *batch; /* owned: written first, in one transaction; may be NULL */
	/* Then, on the worker, after the batch was written (skipped when it
	 * failed): touches only the job and db. May be NULL. */
	int (*work)(sh_job *j, sqlite3 *db, sdk_err *err);
	/* On the loop, in submission order, with rc and err; the job is freed
	 * after it (with batch, in and out: take what is kept). */
	void (*done)(sh_job *j);
	int rc;
	sdk_err err;
	bool closing;  /* done runs as the kernel closes: answer, start nothing */
	sdk_req *req;  /* the request answered in done, if any */
	void *arg;     /* the caller's, its own to free in done */
	json_t *in, *out;
	sh_filter filter;
	char kernel[SH_NAME_MAX], arm[32], text[40];
	int64_t id, id2, n, decision;
	unsigned decision_gen; /* a kernel's ladder actions when the job was asked */
	bool flag, flag2;
};

int sh_worker_start(struct sh_state *s, sdk_err *err);
/* At close: the running job ends, the queued ones get done with closing
 * set; then the connection closes. */
void sh_worker_stop(struct sh_state *s);
/* A new job (batch created when `with_batch`); NULL when memory is short. */
sh_job *sh_job_new(struct sh_state *s, bool with_batch, void (*done)(sh_job *));
/* A job never submitted (with its batch, in and out). */
void sh_job_free(sh_job *j);
/* Whether a request's job (or, `request` false, one of the kernel's own) would be taken now (checked before the loop
 * changes anything in memory on its behalf: nothing between the check and
 * the submit can fill the queue). */
bool sh_worker_room(const struct sh_state *s, bool request);
/* Queues the job: 0, or SDK_EBUSY (the job freed, its done not called).
 * `request`: bounded by SH_WORKER_QUEUE_MAX, else by the spare too. */
int sh_job_submit(sh_job *j, bool request);
/* The answer to a request that found the queue full: 503 busy,
 * Retry-After. */
void sh_reply_busy(sdk_req *req);
/* A request's job back on the loop that cannot be answered with its
 * result: the kernel closing (503 stopping, Retry-After) or the work
 * failed (its status). True when it answered so. */
bool sh_job_reply_failed(sh_job *j);
/* Jobs queued or running (for /metrics). */
size_t sh_worker_pending(const struct sh_state *s);

#endif
