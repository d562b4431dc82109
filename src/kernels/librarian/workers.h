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
 * Bulk loads (bulk.h): one writer thread with a connection of its own,
 * one request at a time (SQLite has one writer); searches go on. */
#ifndef GRACE_LIBRARIAN_WORKERS_H
#define GRACE_LIBRARIAN_WORKERS_H

#include "kernels/layer.h"

#include "sdk/err.h"
#include "sdk/kernel.h"

#define LIB_WORKERS_THREADS 2       /* this machine's CPUs: the work is CPU */
#define LIB_WORKERS_QUEUE_MAX 512   /* searches queued or running */
#define LIB_WORKERS_CALLER_MAX 256  /* of one user */
#define LIB_WORKERS_BULK_QUEUE_MAX 16 /* bulk requests queued or running */

typedef struct lib_workers lib_workers;

lib_workers *lib_workers_new(sdk_kernel *k, sdk_err *err);
/* Waits for the searches running; queued ones are answered 503. */
void lib_workers_free(lib_workers *r);

/* Answers `req` with lib_search's result (and "query_ms") when done.
 * Strings are copied. */
void lib_workers_search(lib_workers *r, sdk_req *req, const char *user, const char *query,
			const char *tag, unsigned limit);

/* Answers `req` with lib_bulk_load's report when done. The body is
 * copied; quota NULL: none. */
struct lib_quota;
void lib_workers_bulk(lib_workers *w, sdk_req *req, const char *owner,
		      const struct lib_quota *quota);

/* A document went into the index's pending table (index.h): past
 * LIB_IX_PENDING_MERGE of them the writer merges them into the blocks at
 * once, otherwise once no write came for LIB_IX_MERGE_IDLE_MS. Also at
 * start (with nothing written yet: what a crash left pending). On the
 * loop. */
void lib_workers_staged(lib_workers *w, unsigned docs);

#endif
