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

/* Lines of one request: a body at LIB_BULK_BODY_MAX of lines of 336 bytes
 * or more (a short document) fits. What a line costs beyond its bytes
 * (its parse, its row, its answer's item) is a few hundred bytes, so
 * this bounds a request's memory at about twice its body. */
#define LIB_BULK_LINES_MAX 50000u
/* The bytes of one request, past the kernel's max_body_bytes (1 MiB) when
 * that is lower: a flush costs about the same whatever a request holds,
 * so larger requests load faster (OpenSearch advises 5-15 MB). Granted
 * only to a caller with the internal token, and through :8000 only to an
 * authenticated user (sdk_route.max_body). */
#define LIB_BULK_BODY_MAX ((size_t)16 << 20)
/* The statement that finds a stored document by its hash (?1): through
 * documents_by_hash8 (store.c), whose expression and condition its WHERE
 * repeats so that the planner uses it (test_librarian_bulk checks the
 * plan). */
extern const char lib_bulk_sql_hash_find[];
#define LIB_BULK_ERRORS_MAX 1000u /* bad lines reported one by one; past it, counted */

/* *out: {"took_ms","errors":bool,"created","updated","duplicates","failed",
 * "items":[{"line","status","result"|"error","id"?}]} with items for
 * every line (items past LIB_BULK_ERRORS_MAX failures are counted, not
 * listed). SDK_EINVAL (nothing stored) for an empty body or too many
 * lines; a storage failure is its status with nothing stored. `tails`:
 * the writer's tails cache (index.h), or NULL. owner and admin: the
 * caller; new documents are owner's, and a line with a source replaces
 * the stored document of that source only if lib_may_change lets it
 * (else that line is 403). */
struct lib_ix_tails;
int lib_bulk_load(sqlite3 *db, struct lib_ix_tails *tails, const char *owner, bool admin,
		  const lib_quota *quota, const char *body, size_t len, json_t **out, lib_err *err);

/* One request of a group (lib_bulk_load_group): what lib_bulk_load
 * takes, and what it gives (out, the caller's, when rc is 0; err
 * otherwise). */
typedef struct lib_bulk_req {
	const char *owner;      /* NULL: none */
	bool admin;             /* the caller is an admin (lib_may_change) */
	const lib_quota *quota; /* NULL: none */
	const char *body;
	size_t len;
	json_t *out;
	int rc;
	lib_err err;
} lib_bulk_req;

/* Requests waiting together, in one transaction: each is run after the
 * ones before it, as lib_bulk_load would run it then (its duplicates
 * found among theirs, its quota counted after theirs), and gets the same
 * report, but the block index is flushed and the WAL written once for
 * all of them. A flush costs about the same whatever it holds (about
 * 4,500 words' rows for a 1 MiB request of bench documents), so four
 * clients' 1 MiB requests cost about what one 4 MiB request does. Should
 * the group fail (storage, or a constraint that needs the careful run),
 * it is rolled back whole and each request runs alone, answered as it
 * would have been. Outside a caller's transaction. Returns the
 * transactions it committed (1 for a group written together). */
unsigned lib_bulk_load_group(sqlite3 *db, struct lib_ix_tails *tails, lib_bulk_req *reqs, size_t n);

#endif
