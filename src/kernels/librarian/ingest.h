/* Ingesting files into the librarian's store, no HTTP, no threads.
 *
 * An ingest is a job in the database (ingest_jobs), its files listed one
 * per row (ingest_files) by a walk of the tree, then taken a few at a time
 * (a chunk: one transaction, bounded in files and bytes), each file's row
 * marked with what became of it in the same transaction as its document.
 * So a crash or a restart loses at most the chunk in flight, which is
 * simply done again: a file already ingested is never ingested twice, and
 * a file ingested again (same source) is updated in place, keeping its id.
 *
 * The walk takes every regular .txt/.md file below a path (recursively,
 * in name order; symlinks never followed) that resolves inside the library
 * root. A file is read only through a path with no symlink in it, so a
 * tree changed between the walk and the chunk cannot lead outside. Files
 * that cannot be taken (empty, not UTF-8, over LIB_INGEST_FILE_MAX,
 * unreadable) are "skipped"; files the ingest may not write (another
 * user's document, a quota reached) "failed"; each with its reason. */
#ifndef GRACE_LIBRARIAN_INGEST_H
#define GRACE_LIBRARIAN_INGEST_H

#include "kernels/layer.h"

#include "kernels/librarian/store.h"

#include <stddef.h>

#define LIB_JOBS_KEPT 1000 /* finished ingests remembered */
#define LIB_JOB_ERRORS_SHOWN 100

/* One file found by a walk. */
typedef struct lib_file {
	char *path;       /* resolved, absolute */
	int64_t size;     /* bytes, as the walk saw it */
	const char *skip; /* why it will not be read (static text), or NULL */
} lib_file;

typedef struct lib_files {
	lib_file *v;
	size_t n, cap;
	int64_t bytes; /* of the files to read */
} lib_files;

void lib_files_free(lib_files *f);

/* `path` resolved (*rpath, malloc'd) when inside `root`; SDK_EDENIED
 * otherwise, the same for a path that does not exist. */
int lib_ingest_resolve(const char *root, const char *path, char **rpath, lib_err *err);
/* Every candidate file below `rpath`. SDK_ETOOLARGE past `max_files`
 * files or `max_bytes` bytes to read (0: no limit). */
int lib_ingest_walk(const char *rpath, size_t max_files, int64_t max_bytes, lib_files *out,
		    lib_err *err);

/* The whole tree below `path` at once, in one transaction (a savepoint
 * inside a caller's), for no owner: *out is {"ingested","skipped",
 * "documents":[{"id","source"}]}. For small trees and tests; the kernel's
 * HTTP ingest runs jobs. */
int lib_ingest(sqlite3 *db, const char *root, const char *path, json_t **out, lib_err *err);

/* Jobs. `who` is who asked (their name becomes the owner of what they
 * ingest); every call below is one transaction of its own. */
int lib_job_create(sqlite3 *db, const lib_actor *who, const char *rpath, int64_t now_ms,
		   int64_t *id, lib_err *err);
/* Ingests of `owner` queued or running. */
int lib_job_active(sqlite3 *db, const char *owner, int64_t *n, lib_err *err);
/* Lists the walked files of a job being scanned and starts it running.
 * SDK_EQUOTA (nothing stored) when the files would not fit the owner's
 * quota. A job cancelled meanwhile stays so. */
int lib_job_scan_store(sqlite3 *db, int64_t id, const lib_files *files, const lib_quota *quota,
		       int64_t now_ms, lib_err *err);
/* Ingests the next files of a running job: at most `max_files`, and no
 * more once `max_bytes` are read. 1 when files are left, 0 when the job is
 * done (or no longer running), or a status (nothing of the chunk kept). */
int lib_job_chunk(sqlite3 *db, int64_t id, unsigned max_files, int64_t max_bytes,
		  const lib_quota *quota, int64_t now_ms, lib_err *err);
/* Ends a job as failed, with `why`. */
int lib_job_fail(sqlite3 *db, int64_t id, const char *why, int64_t now_ms, lib_err *err);
/* Cancels a job queued or running: its owner or an admin (else not found). */
int lib_job_cancel(sqlite3 *db, const lib_actor *who, int64_t id, int64_t now_ms, lib_err *err);
/* A job as `who` may see it (its owner, or an admin; else SDK_ENOTFOUND):
 * {"id","state","path","owner","files":{...},"bytes":{...},"error",
 *  "created_ms","updated_ms","finished_ms","errors":[{"path","state","reason"}]} */
int lib_job_get(sqlite3 *db, const lib_actor *who, int64_t id, json_t **out, lib_err *err);
/* {"jobs":[...]} newest first, without their errors. */
int lib_job_list(sqlite3 *db, const lib_actor *who, unsigned limit, json_t **out, lib_err *err);
/* What a finished job did, as lib_ingest reports it (with "failed"). */
int lib_job_report(sqlite3 *db, int64_t id, json_t **out, lib_err *err);
/* What a restart needs of job `id`: its path (*path, malloc'd), owner
 * (into `owner`, "" for none: *has_owner false), admin flag and state. */
int lib_job_info(sqlite3 *db, int64_t id, char **path, char *owner, size_t len,
		 bool *has_owner, bool *admin, char *state, size_t slen, lib_err *err);
/* The state of job `id` ("scanning", "running", ...) into `state`. */
int lib_job_state(sqlite3 *db, int64_t id, char *state, size_t len, lib_err *err);
/* The jobs a restart must take up again, oldest first: ids (malloc'd). */
int lib_jobs_unfinished(sqlite3 *db, int64_t **ids, size_t *n, lib_err *err);

#endif
