/* The librarian's document store: SQLite + FTS5, no HTTP.
 *
 * Every call returns 0 on success or a negative LIB_E* code; on error a
 * human-readable reason is written into `err` (which may be NULL). The store
 * never prints and never aborts on bad input. */
#ifndef GRACE_LIBRARIAN_STORE_H
#define GRACE_LIBRARIAN_STORE_H

#include "kernels/layer.h"

#include "sdk/err.h"
#include <jansson.h>
#include <sqlite3.h>
#include <stdint.h>

enum {
	LIB_OK = 0,
	LIB_EINVAL = -1,   /* bad argument: empty title, malformed query, ... */
	LIB_ENOTFOUND = -2,
	LIB_EDENIED = -3,  /* path outside the library root */
	LIB_EIO = -4,      /* SQLite or file system failure */
};

#define LIB_TITLE_MAX 1024u
#define LIB_BODY_MAX (4u << 20)
#define LIB_TAGS_MAX 32u
#define LIB_TAG_LEN_MAX 64u
#define LIB_SEARCH_LIMIT_MAX 100u
#define LIB_INGEST_FILE_MAX (4u << 20)

typedef sdk_err lib_err;

/* Creates the schema if missing. The caller owns `db` (already opened, WAL). */
int lib_store_init(sqlite3 *db, lib_err *err);

/* `tags` may be NULL (borrowed: a JSON array of strings); `source` may be NULL.
 * On success *id_out is the new document's id. */
int lib_doc_put(sqlite3 *db, const char *title, const char *body, json_t *tags,
		const char *source, int64_t *id_out, lib_err *err);

/* On success *doc_out is a new reference the caller must json_decref:
 * {"id","title","body","tags":[...],"source"|null,"created_at"(unix ms)} */
int lib_doc_get(sqlite3 *db, int64_t id, json_t **doc_out, lib_err *err);

int lib_doc_delete(sqlite3 *db, int64_t id, lib_err *err);

/* Full-text search ranked by BM25 (best first). `tag` may be NULL; limit is
 * 1..LIB_SEARCH_LIMIT_MAX. On success *out is a new reference:
 * {"query","total","results":[{"id","title","score","snippet","tags","source"}]}
 * where snippet marks hits with <mark>…</mark>. A malformed FTS5 query is
 * LIB_EINVAL with the reason in err, never LIB_EIO. */
int lib_search(sqlite3 *db, const char *query, const char *tag, unsigned limit,
	       json_t **out, lib_err *err);

/* Ingests every regular .txt/.md file below `path` (recursively, symlinks not
 * followed). `path` must resolve inside `root` (both resolved with realpath),
 * else LIB_EDENIED. A file already ingested from the same source path is
 * replaced, not duplicated. On success *out is a new reference:
 * {"ingested":N,"skipped":N,"documents":[{"id","source"}...]} */
int lib_ingest(sqlite3 *db, const char *root, const char *path, json_t **out,
	       lib_err *err);

#endif
