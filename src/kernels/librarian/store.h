/* The librarian's document store: SQLite + FTS5, no HTTP.
 *
 * Errors follow sdk/err.h: every call returns 0 (or a count) on success or
 * a negative sdk_status, with a human-readable reason in `err` (which may
 * be NULL); SQLite failures go through sdk_status_of_sqlite (a full disk
 * is SDK_EFULL). The store never prints and never aborts on bad input.
 *
 * Ownership: a document belongs to the user who created or ingested it
 * (its `owner`), or to nobody when it was made without a caller (by Grace
 * itself, or by the operator holding the internal token) or when its
 * owner was deleted. Everyone reads and searches every document; changing
 * or deleting one is for its owner or an admin (SDK_EDENIED otherwise). */
#ifndef GRACE_LIBRARIAN_STORE_H
#define GRACE_LIBRARIAN_STORE_H

#include "kernels/layer.h"

#include "sdk/buf.h"
#include "sdk/err.h"
#include "sdk/migrate.h"
#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

/* A schema change is a new step in lib_migrations and a new fixture
 * directory (docs/upgrades.md). */
#define LIB_SCHEMA_VERSION 6
extern const sdk_mig_step lib_migrations[LIB_SCHEMA_VERSION];
#define LIB_TITLE_MAX 1024u
#define LIB_BODY_MAX (4u << 20)
#define LIB_TAGS_MAX 32u
#define LIB_TAG_LEN_MAX 64u
#define LIB_SEARCH_LIMIT_MAX 100u
#define LIB_INGEST_FILE_MAX (4u << 20)
#define LIB_OWNER_MAX 64u

typedef sdk_err lib_err;

/* Who acts: the caller the gateway vouches for (sdk_req_caller). */
typedef struct lib_actor {
	const char *name; /* NULL: no caller */
	bool admin;
} lib_actor;

/* Whether `who` may change (replace the text of) a stored document owned
 * by `owner` (NULL: nobody): its owner or an admin; a caller without a
 * name (the kernel's own port) only documents of nobody. The owner stays
 * whoever changes it. NULL when it may, else why not (static text). An
 * ingest of a file and a bulk line with a source both change the stored
 * document of that source. */
const char *lib_may_change(const lib_actor *who, const char *owner);

/* An owner's quota; a zero field is no limit. */
typedef struct lib_quota {
	int64_t docs;
	int64_t bytes; /* titles and bodies */
} lib_quota;

/* Creates the schema if missing (or migrates an older one), checks the
 * block index against the documents, and builds it (again, when the check
 * found it wrong) before returning. The caller owns `db` (already opened,
 * WAL). */
int lib_store_init(sqlite3 *db, lib_err *err);

/* A document with no owner. `tags` may be NULL (borrowed: a JSON array of
 * strings); `source` may be NULL. On success *id_out is the new id. */
int lib_doc_put(sqlite3 *db, const char *title, const char *body, json_t *tags,
		const char *source, int64_t *id_out, lib_err *err);
/* The same, owned by `owner` (NULL: nobody) within `quota` (NULL: none):
 * SDK_EQUOTA, naming the quota and its limit, when it would not fit. */
int lib_doc_put_owned(sqlite3 *db, const char *owner, const lib_quota *quota,
		      const char *title, const char *body, json_t *tags,
		      const char *source, int64_t *id_out, lib_err *err);
/* The same through `single`, an index kept by the caller between single
 * writes on db (lib_ix_open; its statements prepared once), or NULL. The
 * document's postings are staged (index.h): the caller has the writer
 * merge them (lib_workers_staged). */
struct lib_ix;
int lib_doc_put_single(sqlite3 *db, struct lib_ix *single, const char *owner,
		       const lib_quota *quota, const char *title, const char *body, json_t *tags,
		       const char *source, int64_t *id_out, lib_err *err);
/* The same once lib_check_doc passed and lib_tags_text made the tags'
 * text (the handler checks on the loop, the writer writes). */
int lib_doc_put_checked(sqlite3 *db, struct lib_ix *single, const char *owner,
			const lib_quota *quota, const char *title, const char *body,
			const char *tags_text, const char *source, int64_t *id_out, lib_err *err);

/* On success *doc_out is a new reference the caller must json_decref:
 * {"id","title","body","tags":[...],"source"|null,"owner"|null,
 *  "created_at"(unix ms)} */
int lib_doc_get(sqlite3 *db, int64_t id, json_t **doc_out, lib_err *err);

/* Deletes whatever the owner: for the store's own use and tests. */
int lib_doc_delete(sqlite3 *db, int64_t id, lib_err *err);
/* Deletes as `who`: SDK_EDENIED unless `who` owns it or is an admin. */
int lib_doc_delete_as(sqlite3 *db, const lib_actor *who, int64_t id, lib_err *err);

/* What `owner` has: documents and bytes (owner_usage, kept by triggers). */
int lib_usage(sqlite3 *db, const char *owner, int64_t *docs, int64_t *bytes, lib_err *err);
/* SDK_EQUOTA (with the reason) when `owner` cannot take `docs` more
 * documents of `bytes` more bytes. */
int lib_quota_check(sqlite3 *db, const char *owner, const lib_quota *quota, int64_t docs,
		    int64_t bytes, lib_err *err);

/* The owner is gone: their documents stay with no owner, their ingests
 * still queued or running are cancelled, and their past ingests are no
 * longer theirs. *out: {"owner","documents","ingests_cancelled"}. */
int lib_owner_release(sqlite3 *db, const char *owner, int64_t now_ms, json_t **out,
		      lib_err *err);

/* Full-text search ranked by BM25 (best first), find.c: the block index
 * (search.h) for words ANDed or ORed, FTS5 for the rest of its language,
 * both with -exclusions and tag: filters. `tag` may be NULL; limit is
 * 1..LIB_SEARCH_LIMIT_MAX; `tok` NULL: a tokenizer of the call's own.
 * Run it inside a read transaction for one snapshot. On success *out is a
 * new reference:
 * {"query","total","total_relation":"eq"|"gte","plan":"index"|"fts5",
 *  "results":[{"id","title","score","snippet","tags","source","owner"}]}
 * where snippet marks hits with <mark>…</mark> and total stops at 10,000
 * ("gte"). A malformed query is SDK_EINVAL with the reason in err, never
 * a storage error. */
struct lib_tok;
int lib_search(sqlite3 *db, struct lib_tok *tok, const char *query, const char *tag,
	       unsigned limit, json_t **out, lib_err *err);
/* The same answer as JSON text, written on the caller's thread (a
 * worker), with a connection's caches (search.h; NULL: none). The object
 * is left open, for lib_search_end to add "query_ms" and close it; *out
 * is the caller's to sdk_buf_free, even on failure. */
struct lib_sq_cache;
int lib_search_cached(sqlite3 *db, struct lib_tok *tok, struct lib_sq_cache *pc,
		      const char *query, const char *tag, unsigned limit, sdk_buf *out,
		      lib_err *err);
int lib_search_end(sdk_buf *out, double query_ms);
/* The snippet FTS5's snippet(documents_fts, 1, '<mark>', '</mark>', '…',
 * 16) gives `body` for a query of plain words (sq's words, each one
 * stemmed token: FTS5's phrases, in the same order), made without FTS5
 * (find.c). A new string of *outlen bytes, or NULL (no memory). */
struct lib_sq;
char *lib_snippet(struct lib_tok *tok, const struct lib_sq *sq, const char *body, size_t len,
		  size_t *outlen);
/* Builds what the block index lacks (after a migration), in steps. */
int lib_store_build(sqlite3 *db, lib_err *err);

/* One step of FTS5's merging of its segments (it merges nothing inside
 * the writes, LIB_SCHEMA_FTS_MERGE in store.c), in a transaction of its
 * own: about LIB_FTS_MERGE_PAGES pages written, on a level with 4
 * segments or more. *worked: it merged something, and there may be
 * more. On the writer's connection, when no write waits. */
#define LIB_FTS_MERGE_PAGES 1000 /* 4 MB: tens of ms a write may wait behind */
int lib_fts_merge(sqlite3 *db, bool *worked, lib_err *err);
/* For find.c: a column as JSON (NULL on failure). */
json_t *lib_col_string(sqlite3_stmt *st, int col);
json_t *lib_col_tags(sqlite3_stmt *st, int col);

/* For the store's other files (ingest.c): transactions that nest as
 * savepoints inside a caller's, and a SQLite failure as a status. */
int lib_tx_begin(sqlite3 *db, bool *nested, lib_err *err);
void lib_tx_rollback(sqlite3 *db, bool nested);
int lib_tx_commit(sqlite3 *db, bool nested, lib_err *err);
int lib_fail_sql(sqlite3 *db, lib_err *err, const char *what);
bool lib_utf8_valid(const unsigned char *s, size_t n);
/* Upsert by source: a file ingested again keeps its id (and owner). `ix`
 * NULL: the block index is written at once; otherwise collected into the
 * caller's, who flushes it in the same transaction (index.h). */
struct lib_ix;
int lib_doc_upsert(sqlite3 *db, struct lib_ix *ix, const char *owner, const char *title,
		   const char *body, const char *tags, const char *source, int64_t size,
		   int64_t *id_out, lib_err *err);
/* For bulk.c: the checks of a document, its tags as stored (compact JSON,
 * duplicates dropped; *out malloc'd), and the write itself with the
 * caller's index (struct lib_ix, flushed by the caller in the same
 * transaction): an upsert by source when there is one (hash ignored),
 * else an insert carrying `hash` (LIB_HASH_BYTES). */
#define LIB_HASH_BYTES 32
struct lib_ix;
int lib_check_doc(const char *title, const char *body, const char *source, lib_err *err);
int lib_tags_text(json_t *tags, char **out, lib_err *err);
int lib_doc_write_bulk(sqlite3 *db, struct lib_ix *ix, const char *owner, const char *title,
		       const char *body, const char *tags, const char *source, int64_t size,
		       const uint8_t *hash, int64_t *id_out, lib_err *err);
/* The id of the document with this source (0: none). */
int lib_doc_id_by_source(sqlite3 *db, const char *source, int64_t *id, lib_err *err);
/* The document with this source: 1 with its id (id may be NULL), its
 * owner (*owner malloc'd, or NULL for none) and its size, 0 when there is
 * no such document. One lookup in documents_by_source, which holds them
 * all. */
int lib_source_owner(sqlite3 *db, const char *source, int64_t *id, char **owner, int64_t *size,
		     lib_err *err);

#endif
