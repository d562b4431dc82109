/* The librarian's ingests as they run: never on the event loop. A job's
 * walk and each of its chunks (ingest.h) run on a worker thread with a
 * database connection of its own; between chunks the loop answers
 * /health, searches and everything else, and sends WATCHDOG=1. Progress
 * is in the database (GET /ingest/jobs/ID); a restart takes every
 * unfinished job up again where it stopped.
 *
 * POST /ingest answers when the walk is done: a small ingest (at most
 * LIB_SYNC_FILES files and LIB_SYNC_BYTES bytes) when it is finished,
 * 200 with the report and the job, as it always did; a larger one at once,
 * 202 with the job to follow. */
#ifndef GRACE_LIBRARIAN_JOBS_H
#define GRACE_LIBRARIAN_JOBS_H

#include "kernels/layer.h"

#include "kernels/librarian/ingest.h"
#include "sdk/kernel.h"

#define LIB_SYNC_FILES 64
#define LIB_SYNC_BYTES (8 << 20)
#define LIB_CHUNK_BYTES (1 << 20) /* read per chunk, beside its file count: a chunk
				   * holds the write lock ~0.5 s (FTS5 and the block index) */

typedef struct lib_jobs lib_jobs;

/* Opens the writer's connection and starts the worker: nothing read yet,
 * so a standby does it while it waits. NULL and why. */
lib_jobs *lib_jobs_new(sdk_kernel *k, lib_err *err);
/* Takes up the unfinished jobs (once the store is the kernel's). */
int lib_jobs_resume(lib_jobs *j, lib_err *err);
/* SIGTERM: requests waiting for an ingest are answered 202 now. */
void lib_jobs_drain(lib_jobs *j);
/* Waits for the chunk running; the jobs stay in the database. */
void lib_jobs_free(lib_jobs *j);

/* POST /ingest for `who`: answers `req` (now or when the walk is done). */
void lib_jobs_start(lib_jobs *j, sdk_req *req, const lib_actor *who, const char *path);
/* The quota of an owner, from the configuration. */
lib_quota lib_jobs_quota(const lib_jobs *j);

#endif
