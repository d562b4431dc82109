/* Bulk loading (POST /documents/_bulk): NDJSON, one document a line
 * ({"title","body","tags"?,"source"?}, as POST /documents takes), as
 * OpenSearch's _bulk takes one action a line. No HTTP here.
 *
 * One request is one transaction with one INSERT of its new documents
 * (rows.h: FTS5 writes one segment, not one a document) and one flush of
 * the block index, so a crash (kill -9 included) leaves all of it or
 * none. A bad line (not
 * JSON, a field missing or wrong, over a quota) is reported by its line
 * number and skipped; the good lines are stored. A document loaded again
 * is not stored twice: with a source, it replaces the one of that source
 * (its id kept); without, a document of the same title, body and tags
 * (by hash) is answered "duplicate" with its id. */
#ifndef GRACE_LIBRARIAN_BULK_H
#define GRACE_LIBRARIAN_BULK_H

#include "kernels/layer.h"

#include "kernels/librarian/store.h"

#define LIB_BULK_LINES_MAX 10000u /* lines of one request */
/* The bytes of one request, past the kernel's max_body_bytes (1 MiB) when
 * that is lower: a flush costs about the same whatever a request holds,
 * so larger requests load faster (OpenSearch advises 5-15 MB). Granted
 * only to a caller with the internal token, and through :8000 only to an
 * authenticated user (sdk_route.max_body). */
#define LIB_BULK_BODY_MAX ((size_t)16 << 20)
#define LIB_BULK_ERRORS_MAX 1000u /* bad lines reported one by one; past it, counted */

/* *out: {"took_ms","errors":bool,"created","updated","duplicates","failed",
 * "items":[{"line","status","result"|"error","id"?}]} with items for
 * every line (items past LIB_BULK_ERRORS_MAX failures are counted, not
 * listed). SDK_EINVAL (nothing stored) for an empty body or too many
 * lines; a storage failure is its status with nothing stored. `tails`:
 * the writer's tails cache (index.h), or NULL. */
struct lib_ix_tails;
int lib_bulk_load(sqlite3 *db, struct lib_ix_tails *tails, const char *owner, const lib_quota *quota, const char *body,
		  size_t len, json_t **out, lib_err *err);

#endif
