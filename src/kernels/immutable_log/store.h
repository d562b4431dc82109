/* The immutable log's storage: entries, every complete aligned subtree hash,
 * and the tree heads it has signed, in SQLite. No HTTP.
 *
 * Every call returns 0 or a negative sdk_status (sdk/err.h) with a reason
 * in `err` (which may be NULL): SDK_EINVAL for an index past the tree or a
 * bad range, SDK_ENOTFOUND, SDK_ECORRUPT when storage no longer holds what
 * the log wrote, and for SQLite's failures the status sdk_status_of_sqlite
 * gives (SDK_EFULL when the disk is full). The store never prints. */
#ifndef GRACE_IMMUTABLE_LOG_STORE_H
#define GRACE_IMMUTABLE_LOG_STORE_H

#include "kernels/layer.h"

#include "sdk/err.h"
#include "sdk/migrate.h"
#include "merkle.h"

#include <jansson.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

/* The store's schema version and its steps (sdk/migrate.h), declared in
 * immutable_log_kernel: a change is a new step and a new fixture directory
 * (docs/upgrades.md). */
#define ILOG_SCHEMA_VERSION 2
extern const sdk_mig_step ilog_migrations[ILOG_SCHEMA_VERSION];

/* How an entry came in: it decides only how GET shows it, never its hash. */
enum ilog_kind { ILOG_KIND_BYTES = 0, ILOG_KIND_JSON = 1 };

#define ILOG_BATCH_MAX 1000u
#define ILOG_PAGE_MAX 1000u
#define ILOG_PAGE_DEFAULT 100u

typedef struct ilog_item {
	const unsigned char *data;
	size_t len;
	enum ilog_kind kind;
} ilog_item;

/* A signed tree head; the signature covers ilog_sth_message(). */
typedef struct ilog_sth {
	uint64_t tree_size;
	uint64_t timestamp_ms;
	ilog_hash root;
	unsigned char signature[crypto_sign_BYTES];
} ilog_sth;

#define ILOG_STH_MESSAGE_BYTES 50

typedef struct ilog_store ilog_store;

/* Creates the schema if missing and loads the frontier. `db` stays the
 * caller's. A log whose stored subtrees cannot rebuild its frontier still
 * opens (so /verify can say what is wrong) but refuses appends. */
int ilog_store_open(sqlite3 *db, ilog_store **out, sdk_err *err);
void ilog_store_close(ilog_store *s);

uint64_t ilog_store_size(const ilog_store *s);
void ilog_store_root(const ilog_store *s, ilog_hash out);
/* NULL, or why appends are refused. */
const char *ilog_store_broken(const ilog_store *s);

/* Appends all of `items` in one transaction, or none. On success
 * *first_index is the index of items[0], and leaf_hashes (n of them, may be
 * NULL) their leaf hashes. */
int ilog_store_append(ilog_store *s, const ilog_item *items, size_t n, int64_t now_ms,
		      uint64_t *first_index, ilog_hash *leaf_hashes, sdk_err *err);

/* {"index","leaf_hash","timestamp","data_b64"} plus "data" for JSON entries;
 * a new reference. */
int ilog_store_entry(ilog_store *s, uint64_t index, json_t **out, sdk_err *err);
/* Entries [start, end) as a JSON array (new reference); requires
 * start <= end <= size and end - start <= ILOG_PAGE_MAX. */
int ilog_store_entries(ilog_store *s, uint64_t start, uint64_t end, json_t **out, sdk_err *err);

/* Proofs and historical roots, for 0 < tree_size <= size. */
int ilog_store_root_at(ilog_store *s, uint64_t tree_size, ilog_hash out, sdk_err *err);
int ilog_store_inclusion(ilog_store *s, uint64_t index, uint64_t tree_size,
			 ilog_hash path[ILOG_PROOF_MAX], size_t *n, sdk_err *err);
int ilog_store_consistency(ilog_store *s, uint64_t first, uint64_t second,
			   ilog_hash proof[ILOG_PROOF_MAX], size_t *n, sdk_err *err);
int ilog_store_leaf_hash(ilog_store *s, uint64_t index, ilog_hash out, sdk_err *err);

/* The serialization a tree head signature covers: RFC 6962 section 3.5's
 * TreeHeadSignature, i.e. version 0 (v1), signature type 1 (tree_hash),
 * timestamp (ms, uint64 big-endian), tree_size (uint64 big-endian), root. */
void ilog_sth_message(const ilog_sth *h, unsigned char out[ILOG_STH_MESSAGE_BYTES]);

/* Tree heads already signed are kept so /verify can check the entries
 * still produce them. */
int ilog_store_sth_save(ilog_store *s, const ilog_sth *h, sdk_err *err);
/* The head with the largest size, SDK_ENOTFOUND when none. */
int ilog_store_sth_latest(ilog_store *s, ilog_sth *out, sdk_err *err);

/* Small named values (the public key the log signs with). */
int ilog_store_meta_get(ilog_store *s, const char *key, unsigned char *out, size_t len,
			sdk_err *err);
int ilog_store_meta_put(ilog_store *s, const char *key, const unsigned char *val, size_t len,
			sdk_err *err);

/* Canonical bytes of a JSON value as stored: compact, keys sorted, UTF-8
 * (see docs/immutable-log.md). A new string for free(), or NULL. */
char *ilog_canonical_json(const json_t *value);

/* ---- Archival (docs/immutable-log.md "Archival").
 *
 * Entries below ilog_store_archived() have been exported to archive files
 * and their bytes removed; every subtree hash (leaf hashes included) is
 * kept, so proofs and roots of every size still work. */
typedef struct ilog_archive_rec {
	uint64_t first, end; /* the entries [first, end) */
	uint64_t tree_size;  /* of the signed head the archive's proofs are against */
	const char *sha256;  /* of the archive file, lower-case hex */
	const char *file;    /* its name under DATA_DIR/archive/ */
} ilog_archive_rec;

uint64_t ilog_store_archived(const ilog_store *s);
uint64_t ilog_store_archive_count(const ilog_store *s);
/* The archive holding entry `index`: {"first","end","sha256","file",
 * "tree_size","archived_at"} (a new reference), or SDK_ENOTFOUND. */
int ilog_store_archive_of(ilog_store *s, uint64_t index, json_t **out, sdk_err *err);
/* The first unarchived index appended at or after t_ms (the size when
 * none): entries are appended in time order, so a binary search. */
int ilog_store_index_at(ilog_store *s, int64_t t_ms, uint64_t *out, sdk_err *err);
/* In one transaction: records `a` in `archives` and in meta
 * (archived_before, archive_sha256, archived_at) and appends `record` (the
 * archival's own entry, at *record_index): from then on the entries are
 * archived (reads answer 410, /verify takes their leaf hashes). Their rows
 * are deleted by ilog_store_sweep, a few at a time, so no transaction
 * holds the loop for the whole range. a->first must be
 * ilog_store_archived() (SDK_ECONFLICT otherwise). */
int ilog_store_remove(ilog_store *s, const ilog_archive_rec *a, const ilog_item *record,
		      int64_t now_ms, uint64_t *record_index, sdk_err *err);
/* Deletes up to max_rows rows of archived entries still in the table (one
 * transaction); *more when some are left. Rows a kill left behind are
 * found at open. */
int ilog_store_sweep(ilog_store *s, unsigned max_rows, bool *more, sdk_err *err);

/* ---- Full verification, in steps, on a connection of its own.
 *
 * It reads one snapshot of the file at `db_path`, recomputes every leaf
 * hash and every stored subtree from the entries, checks each stored tree
 * head (root and Ed25519 signature under `public_key`) and, when the
 * snapshot has `mem_size` entries, that its root is `mem_root` (what the
 * running log would sign). It stops at the first problem. */
typedef struct ilog_verify ilog_verify;

int ilog_verify_begin(const char *db_path,
		      const unsigned char public_key[crypto_sign_PUBLICKEYBYTES],
		      uint64_t mem_size, const ilog_hash mem_root, ilog_verify **out, sdk_err *err);
/* Checks up to `budget` more entries: 1 when finished, 0 when there is
 * more, SDK_EIO when it could not read. */
int ilog_verify_step(ilog_verify *v, unsigned budget, sdk_err *err);
/* {"ok":true,...} or {"ok":false,"first_bad_index":N|null,"reason":...};
 * a new reference. */
json_t *ilog_verify_report(const ilog_verify *v);
void ilog_verify_free(ilog_verify *v);

#endif
