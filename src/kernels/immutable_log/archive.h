/* Archive files of the immutable log (docs/immutable-log.md "Archival").
 *
 * An archive holds the entries [first, end) so that it verifies on its own:
 * JSON lines, the first a header with the signed tree head the proofs are
 * against (its signature and the log's public key), then one line per
 * entry (its bytes, leaf hash and RFC 6962 inclusion proof), then a
 * manifest line with the count and the SHA-256 of every byte before it.
 * It is written to a temporary name, synced and renamed, so a file under
 * its final name is always whole. Blocking: runs on a worker thread. */
#ifndef GRACE_IMMUTABLE_LOG_ARCHIVE_H
#define GRACE_IMMUTABLE_LOG_ARCHIVE_H

#include "kernels/layer.h"

#include "store.h"

#include <limits.h>

#define ILOG_ARCHIVE_FORMAT "grace-immutable-log-archive/1"
#define ILOG_ARCHIVE_NAME_MAX 96

typedef struct ilog_export {
	/* in */
	char db_path[PATH_MAX];
	char dir[PATH_MAX]; /* DATA_DIR/archive */
	char file[ILOG_ARCHIVE_NAME_MAX];
	uint64_t first, end;
	ilog_sth head; /* tree_size >= end */
	unsigned char public_key[crypto_sign_PUBLICKEYBYTES];
	int64_t now_ms;
	/* Non-empty: write nothing, check that the file already there has this
	 * SHA-256 (the operator confirms the archive they hold). */
	char expect_sha256[2 * ILOG_HASH_BYTES + 1];
	/* out */
	int rc;
	sdk_err err;
	char sha256[2 * ILOG_HASH_BYTES + 1];
	uint64_t bytes;
} ilog_export;

/* The file name of the archive of [first, end). */
void ilog_archive_name(uint64_t first, uint64_t end, char out[ILOG_ARCHIVE_NAME_MAX]);
/* Whether `name` is one ilog_archive_name could give (no path tricks). */
bool ilog_archive_name_ok(const char *name);

/* Writes (or checks) the archive x describes; the outcome in x->rc. */
void ilog_export_run(ilog_export *x);

/* Checks the archive file at `path` with nothing else (archive_check.c):
 * *report is {"file","ok",...} with "reason" when not ok, else "first",
 * "end","entries","tree_size","root_hash","key_id","sha256" (a new
 * reference). 0, or SDK_ENOTFOUND when the file cannot be opened. */
int ilog_archive_check(const char *path, json_t **report, sdk_err *err);

#endif
