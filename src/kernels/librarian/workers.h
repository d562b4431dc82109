/* The librarian's searches and bulk loads, off the event loop.
 *
 * Searches: a pool of worker threads,
 * each search on a read-only connection of its own, in a read
 * transaction (one WAL snapshot: a write committing meanwhile is not half
 * seen, and neither waits for the other). The loop only parses the
 * request and sends the answer, so a slow query never stalls /health or
 * the watchdog. A full queue answers 503 with Retry-After; one user with
 * LIB_WORKERS_CALLER_MAX searches in flight gets 429 while the others
 * still get in (sdk/pool.h).
 *
 * Writes (bulk loads, bulk.h, and every single write of a handler): one
 * writer thread with a connection of its own, one at a time (SQLite has
 * one writer); searches go on, and the loop never waits for the write
 * lock. Bulk requests of one owner that wait for the writer together
 * are written together, in one transaction (lib_bulk_load_group). */
#ifndef GRACE_LIBRARIAN_WORKERS_H
#define GRACE_LIBRARIAN_WORKERS_H

#include "kernels/layer.h"

#include "sdk/err.h"
#include "sdk/kernel.h"

#define LIB_WORKERS_THREADS 2       /* this machine's CPUs: the work is CPU */
#define LIB_WORKERS_QUEUE_MAX 512   /* searches queued or running */
#define LIB_WORKERS_CALLER_MAX 256  /* of one user */
#define LIB_WORKERS_BULK_QUEUE_MAX 16 /* bulk requests queued or running */
/* Bulk requests of one owner waiting together run as one group
 * (lib_bulk_load_group): at most this many behind the first, and at
 * most one request's largest (LIB_BULK_BODY_MAX) in all. */
#define LIB_WORKERS_GROUP_MAX (LIB_WORKERS_BULK_QUEUE_MAX - 1)
#define LIB_WORKERS_WRITE_QUEUE_MAX 512 /* writes of every kind queued or running */
#define LIB_WORKERS_WRITE_CALLER_MAX 64 /* of one user */

typedef struct lib_workers lib_workers;

lib_workers *lib_workers_new(sdk_kernel *k, sdk_err *err);
/* Waits for the searches running; queued ones are answered 503. */
void lib_workers_free(lib_workers *r);

/* Answers `req` with lib_search's result (and "query_ms") when done.
 * Strings are copied. */
void lib_workers_search(lib_workers *r, sdk_req *req, const char *user, const char *query,
			const char *tag, unsigned limit);

/* Answers `req` with lib_bulk_load's report when done. The body is
 * copied; quota NULL: none; admin: the caller is one. Requests of one
 * owner waiting together are written together (lib_bulk_load_group). */
struct lib_quota;
void lib_workers_bulk(lib_workers *w, sdk_req *req, const char *owner, bool admin,
		      const struct lib_quota *quota);

/* A handler's one write (a document written or deleted, an ingest
 * cancelled, an owner released) runs on the writer's thread, with its
 * connection: on the loop's connection it waited there for the write lock
 * whenever a bulk load, a merge or an ingest's chunk held it (up to
 * SQLite's busy timeout), and /health and the watchdog with it. `fn` runs
 * with the writer's connection and `single`, the index its one-document
 * writes go through (lib_ix_open's, statements prepared once; NULL when
 * it could not be opened). The handler's answer is res->out with
 * `ok_status` (res->out's reference is taken), or fn's error. A user's
 * writes run in the order they came; users take turns with each other and
 * with bulk loads (sdk/pool.h). `arg` is arg_free'd on the loop once
 * answered, also when the write never ran (the kernel stopping). */
struct lib_ix;
typedef struct lib_write_res {
	json_t *out;     /* the answer */
	unsigned staged; /* documents it left pending (lib_workers_staged) */
} lib_write_res;
typedef int (*lib_write_fn)(sqlite3 *db, struct lib_ix *single, void *arg, lib_write_res *res,
			    sdk_err *err);
void lib_workers_write(lib_workers *w, sdk_req *req, const char *user, lib_write_fn fn, void *arg,
		       void (*arg_free)(void *arg), int ok_status);

/* A document went into the index's pending table (index.h): past
 * LIB_IX_PENDING_MERGE of them the writer merges them into the blocks at
 * once, otherwise once no write came for LIB_IX_MERGE_IDLE_MS. Also at
 * start (with nothing written yet: what a crash left pending). On the
 * loop. */
void lib_workers_staged(lib_workers *w, unsigned docs);

/* The writer's counters, in /metrics' text format. On the loop. */
struct evbuffer;
void lib_workers_metrics(const lib_workers *w, const char *kernel, struct evbuffer *out);

#endif
