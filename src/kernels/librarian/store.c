/* The librarian's document store.
 *
 * `documents` is the only table the C code writes. The FTS5 index and the
 * tag index are derived from it by triggers, so every write path (put, the
 * ingest upsert, delete, even a hand-written UPDATE in the sqlite3 shell)
 * keeps them consistent without the code having to remember to. */
#include "sdk/err.h"
#include "sdk/clock.h"
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LIB_SCHEMA_VERSION 1
#define LIB_QUERY_MAX 1024u
#define LIB_SOURCE_MAX PATH_MAX
/* Bounds both the recursion and the number of directory fds held open. */
#define LIB_INGEST_DEPTH_MAX 64

#define LIB_STR_(x) #x
#define LIB_STR(x) LIB_STR_(x)

/* Bump LIB_SCHEMA_VERSION and add a migration step when this changes; a
 * database written by a newer build is refused rather than half-understood.
 *
 * AUTOINCREMENT because ids are handed to clients: a deleted document's id
 * must never come back as a different document.
 *
 * document_tags has no foreign key on purpose: the triggers maintain it, so
 * it stays correct whether or not the connection enables foreign_keys. */
static const char lib_schema[] =
	"CREATE TABLE IF NOT EXISTS documents ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  title TEXT NOT NULL,"
	"  body TEXT NOT NULL,"
	"  tags TEXT NOT NULL DEFAULT '[]' CHECK (json_type(tags) = 'array'),"
	"  source TEXT UNIQUE NULL,"
	"  created_at INTEGER NOT NULL"
	");"
	"CREATE TABLE IF NOT EXISTS document_tags ("
	"  doc_id INTEGER NOT NULL,"
	"  tag TEXT NOT NULL,"
	"  PRIMARY KEY (doc_id, tag)"
	") WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS document_tags_by_tag"
	"  ON document_tags (tag, doc_id);"
	"CREATE VIRTUAL TABLE IF NOT EXISTS documents_fts USING fts5("
	"  title, body, tags,"
	"  content = 'documents', content_rowid = 'id',"
	"  tokenize = 'porter unicode61'"
	");"
	"CREATE TRIGGER IF NOT EXISTS documents_ai AFTER INSERT ON documents BEGIN"
	"  INSERT INTO documents_fts (rowid, title, body, tags)"
	"    VALUES (new.id, new.title, new.body, new.tags);"
	"  INSERT OR IGNORE INTO document_tags (doc_id, tag)"
	"    SELECT new.id, value FROM json_each(new.tags);"
	"END;"
	"CREATE TRIGGER IF NOT EXISTS documents_ad AFTER DELETE ON documents BEGIN"
	"  INSERT INTO documents_fts (documents_fts, rowid, title, body, tags)"
	"    VALUES ('delete', old.id, old.title, old.body, old.tags);"
	"  DELETE FROM document_tags WHERE doc_id = old.id;"
	"END;"
	"CREATE TRIGGER IF NOT EXISTS documents_au AFTER UPDATE ON documents BEGIN"
	"  INSERT INTO documents_fts (documents_fts, rowid, title, body, tags)"
	"    VALUES ('delete', old.id, old.title, old.body, old.tags);"
	"  INSERT INTO documents_fts (rowid, title, body, tags)"
	"    VALUES (new.id, new.title, new.body, new.tags);"
	"  DELETE FROM document_tags WHERE doc_id = old.id;"
	"  INSERT OR IGNORE INTO document_tags (doc_id, tag)"
	"    SELECT new.id, value FROM json_each(new.tags);"
	"END;"
	"PRAGMA user_version = " LIB_STR(LIB_SCHEMA_VERSION) ";";

static const char lib_sql_insert[] =
	"INSERT INTO documents (title, body, tags, source, created_at)"
	" VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id";

/* Re-ingesting a file updates in place rather than delete+insert so the
 * document keeps the id clients may already hold. */
static const char lib_sql_upsert[] =
	"INSERT INTO documents (title, body, tags, source, created_at)"
	" VALUES (?1, ?2, ?3, ?4, ?5)"
	" ON CONFLICT (source) DO UPDATE SET title = excluded.title,"
	" body = excluded.body, tags = excluded.tags,"
	" created_at = excluded.created_at"
	" RETURNING id";

static const char lib_sql_get[] =
	"SELECT id, title, body, tags, source, created_at"
	" FROM documents WHERE id = ?1";

static const char lib_sql_delete[] = "DELETE FROM documents WHERE id = ?1";

/* The count and the page must agree on what matches, so both carry the
 * same MATCH and tag filter with the same parameter numbers. */
#define LIB_SQL_FILTER \
	" documents_fts MATCH ?1 AND (?2 IS NULL OR documents_fts.rowid IN" \
	" (SELECT doc_id FROM document_tags WHERE tag = ?2))"

#define LIB_SQL_BM25 "bm25(documents_fts, 10.0, 1.0, 5.0)"

static const char lib_sql_count[] =
	"SELECT count(*) FROM documents_fts WHERE" LIB_SQL_FILTER;

static const char lib_sql_search[] =
	"SELECT d.id, d.title, -" LIB_SQL_BM25 ","
	" snippet(documents_fts, 1, '<mark>', '</mark>', '\xe2\x80\xa6', 16),"
	" d.tags, d.source"
	" FROM documents_fts JOIN documents AS d ON d.id = documents_fts.rowid"
	" WHERE" LIB_SQL_FILTER
	" ORDER BY " LIB_SQL_BM25 ", d.id LIMIT ?3";

static const char lib_tags_md[] = "[\"ingested\",\"md\"]";
static const char lib_tags_txt[] = "[\"ingested\",\"txt\"]";

struct lib_ingest {
	sqlite3 *db;
	json_t *docs;
	json_int_t ingested;
	json_int_t skipped;
	lib_err *err;
};

static int lib_fail_sql(sqlite3 *db, lib_err *err, const char *what)
{
	return sdk_fail(err, LIB_EIO, "%s: %s", what, sqlite3_errmsg(db));
}

static int lib_oom(lib_err *err)
{
	return sdk_fail(err, LIB_EIO, "out of memory");
}

/* Strict: no overlong forms, surrogates, code points past U+10FFFF or NUL,
 * so the text survives jansson and C string handling unchanged. */
static bool lib_utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0, k, need;
	uint32_t cp, min;

	while (i < n) {
		if (s[i] == 0)
			return false;
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if (s[i] >= 0xc2 && s[i] <= 0xdf) {
			need = 1, cp = s[i] & 0x1f, min = 0x80;
		} else if ((s[i] & 0xf0) == 0xe0) {
			need = 2, cp = s[i] & 0x0f, min = 0x800;
		} else if (s[i] >= 0xf0 && s[i] <= 0xf4) {
			need = 3, cp = s[i] & 0x07, min = 0x10000;
		} else {
			return false;
		}
		if (n - i - 1 < need)
			return false;
		for (k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += need + 1;
	}
	return true;
}

static bool lib_blank(const char *s)
{
	for (; *s; s++)
		if (!strchr(" \t\r\n\v\f", *s))
			return false;
	return true;
}

/* BEGIN IMMEDIATE takes the write lock up front: a WAL read transaction that
 * later upgrades can fail with SQLITE_BUSY_SNAPSHOT, which the busy handler
 * never retries. Inside a caller's transaction a savepoint gives the same
 * all-or-nothing behaviour without committing their work. */
static int lib_tx_begin(sqlite3 *db, bool *nested, lib_err *err)
{
	*nested = !sqlite3_get_autocommit(db);
	if (sqlite3_exec(db, *nested ? "SAVEPOINT lib_tx" : "BEGIN IMMEDIATE",
			 NULL, NULL, NULL) != SQLITE_OK)
		return lib_fail_sql(db, err, "begin transaction");
	return LIB_OK;
}

static void lib_tx_rollback(sqlite3 *db, bool nested)
{
	/* Errors are ignored: SQLite may already have rolled back by itself
	 * (e.g. after SQLITE_FULL), and there is nothing better to do. */
	if (nested)
		sqlite3_exec(db, "ROLLBACK TO lib_tx; RELEASE lib_tx",
			     NULL, NULL, NULL);
	else if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

static int lib_tx_commit(sqlite3 *db, bool nested, lib_err *err)
{
	int rc;

	if (sqlite3_exec(db, nested ? "RELEASE lib_tx" : "COMMIT",
			 NULL, NULL, NULL) == SQLITE_OK)
		return LIB_OK;
	rc = lib_fail_sql(db, err, "commit");
	lib_tx_rollback(db, nested);
	return rc;
}

static int lib_user_version(sqlite3 *db, int *version, lib_err *err)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st,
			       NULL) != SQLITE_OK)
		return lib_fail_sql(db, err, "read schema version");
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*version = sqlite3_column_int(st, 0);
		rc = LIB_OK;
	} else {
		rc = lib_fail_sql(db, err, "read schema version");
	}
	sqlite3_finalize(st);
	return rc;
}

static int lib_schema_create(sqlite3 *db, lib_err *err)
{
	int version = 0, rc;

	rc = lib_user_version(db, &version, err);
	if (rc)
		return rc;
	if (version > LIB_SCHEMA_VERSION)
		return sdk_fail(err, LIB_EIO,
				"schema version %d is newer than supported (%d)",
				version, LIB_SCHEMA_VERSION);
	if (sqlite3_exec(db, lib_schema, NULL, NULL, NULL) != SQLITE_OK)
		return lib_fail_sql(db, err, "create schema");
	return LIB_OK;
}

int lib_store_init(sqlite3 *db, lib_err *err)
{
	bool nested;
	int rc;

	if (!db)
		return sdk_fail(err, LIB_EINVAL, "no database");
	/* The version is read under the write lock so two processes starting
	 * at once cannot both decide to create or migrate. */
	rc = lib_tx_begin(db, &nested, err);
	if (rc)
		return rc;
	rc = lib_schema_create(db, err);
	if (rc) {
		lib_tx_rollback(db, nested);
		return rc;
	}
	return lib_tx_commit(db, nested, err);
}

/* strnlen so an absurdly long input is not scanned to its end. */
static int lib_check_text(const char *what, const char *s, size_t max,
			  lib_err *err)
{
	size_t n;

	if (!s || !*s)
		return sdk_fail(err, LIB_EINVAL, "%s must not be empty", what);
	n = strnlen(s, max + 1);
	if (n > max)
		return sdk_fail(err, LIB_EINVAL, "%s longer than %zu bytes",
				what, max);
	/* Stored text that is not UTF-8 could never be returned as JSON. */
	if (!lib_utf8_valid((const unsigned char *)s, n))
		return sdk_fail(err, LIB_EINVAL, "%s is not valid UTF-8", what);
	return LIB_OK;
}

static int lib_check_doc(const char *title, const char *body,
			 const char *source, lib_err *err)
{
	int rc;

	rc = lib_check_text("title", title, LIB_TITLE_MAX, err);
	if (!rc)
		rc = lib_check_text("body", body, LIB_BODY_MAX, err);
	if (!rc && source)
		rc = lib_check_text("source", source, LIB_SOURCE_MAX, err);
	return rc;
}

static int lib_check_tag(json_t *tag, lib_err *err)
{
	size_t n;

	if (!json_is_string(tag))
		return sdk_fail(err, LIB_EINVAL,
				"tags must be an array of strings");
	n = json_string_length(tag);
	if (n == 0)
		return sdk_fail(err, LIB_EINVAL, "tags must not be empty");
	if (n > LIB_TAG_LEN_MAX)
		return sdk_fail(err, LIB_EINVAL, "tag longer than %u bytes",
				LIB_TAG_LEN_MAX);
	/* jansson accepts "\u0000"; SQLite and C callers would cut there. */
	if (strlen(json_string_value(tag)) != n)
		return sdk_fail(err, LIB_EINVAL, "tag contains a NUL byte");
	return LIB_OK;
}

static bool lib_tags_has(json_t *tags, json_t *tag)
{
	size_t i;
	json_t *t;

	json_array_foreach(tags, i, t)
		if (json_equal(t, tag))
			return true;
	return false;
}

/* Duplicates are dropped so the stored array and document_tags agree. On
 * success *out is compact JSON the caller frees. */
static int lib_tags_text(json_t *tags, char **out, lib_err *err)
{
	json_t *clean, *tag;
	size_t i;
	int rc = LIB_OK;

	if (tags && !json_is_array(tags))
		return sdk_fail(err, LIB_EINVAL,
				"tags must be an array of strings");
	if (json_array_size(tags) > LIB_TAGS_MAX)
		return sdk_fail(err, LIB_EINVAL, "at most %u tags allowed",
				LIB_TAGS_MAX);
	clean = json_array();
	if (!clean)
		return lib_oom(err);
	json_array_foreach(tags, i, tag) {
		rc = lib_check_tag(tag, err);
		if (rc)
			break;
		if (!lib_tags_has(clean, tag) && json_array_append(clean, tag)) {
			rc = lib_oom(err);
			break;
		}
	}
	if (!rc) {
		*out = json_dumps(clean, JSON_COMPACT);
		if (!*out)
			rc = lib_oom(err);
	}
	json_decref(clean);
	return rc;
}

static int lib_fail_write(sqlite3 *db, int rc, lib_err *err)
{
	if (rc == SQLITE_CONSTRAINT_UNIQUE)
		return sdk_fail(err, LIB_EINVAL,
				"a document with this source already exists");
	if ((rc & 0xff) == SQLITE_CONSTRAINT)
		return sdk_fail(err, LIB_EINVAL, "document rejected: %s",
				sqlite3_errmsg(db));
	return lib_fail_sql(db, err, "write document");
}

/* Inputs are already validated; `sql` is lib_sql_insert or lib_sql_upsert. */
static int lib_doc_write(sqlite3 *db, const char *sql, const char *title,
			 const char *body, const char *tags, const char *source,
			 int64_t *id_out, lib_err *err)
{
	sqlite3_stmt *st;
	int64_t id = 0;
	int rc;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return lib_fail_sql(db, err, "prepare write");
	rc = sqlite3_bind_text(st, 1, title, -1, SQLITE_STATIC);
	rc = rc ? rc : sqlite3_bind_text(st, 2, body, -1, SQLITE_STATIC);
	rc = rc ? rc : sqlite3_bind_text(st, 3, tags, -1, SQLITE_STATIC);
	rc = rc ? rc : sqlite3_bind_text(st, 4, source, -1, SQLITE_STATIC);
	rc = rc ? rc : sqlite3_bind_int64(st, 5, sdk_wall_ms());
	if (rc) {
		rc = lib_fail_sql(db, err, "bind document");
		goto out;
	}
	/* RETURNING yields the row first; the write (and, in autocommit mode,
	 * the commit) is only known to have succeeded once the step says DONE. */
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		id = sqlite3_column_int64(st, 0);
		rc = sqlite3_step(st);
	}
	if (rc != SQLITE_DONE) {
		rc = lib_fail_write(db, sqlite3_extended_errcode(db), err);
		goto out;
	}
	if (id_out)
		*id_out = id;
	rc = LIB_OK;
out:
	sqlite3_finalize(st);
	return rc;
}

int lib_doc_put(sqlite3 *db, const char *title, const char *body, json_t *tags,
		const char *source, int64_t *id_out, lib_err *err)
{
	char *tags_text = NULL;
	int rc;

	if (!db)
		return sdk_fail(err, LIB_EINVAL, "no database");
	rc = lib_check_doc(title, body, source, err);
	if (!rc)
		rc = lib_tags_text(tags, &tags_text, err);
	if (!rc)
		rc = lib_doc_write(db, lib_sql_insert, title, body, tags_text,
				   source, id_out, err);
	free(tags_text);
	return rc;
}

static json_t *lib_col_string(sqlite3_stmt *st, int col)
{
	const char *s;

	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return json_null();
	s = (const char *)sqlite3_column_text(st, col);
	if (!s)
		return NULL;
	return json_stringn(s, (size_t)sqlite3_column_bytes(st, col));
}

static json_t *lib_col_tags(sqlite3_stmt *st, int col)
{
	const char *s = (const char *)sqlite3_column_text(st, col);
	json_t *tags;

	if (!s)
		return NULL;
	tags = json_loads(s, 0, NULL);
	if (!json_is_array(tags)) {
		json_decref(tags);
		return NULL;
	}
	return tags;
}

/* json_object_set_new fails (and frees the value) when the value is NULL,
 * so any allocation or decoding failure above surfaces as a nonzero sum. */
static json_t *lib_row_doc(sqlite3_stmt *st)
{
	json_t *doc = json_object();
	int bad = 0;

	bad |= json_object_set_new(doc, "id",
				   json_integer(sqlite3_column_int64(st, 0)));
	bad |= json_object_set_new(doc, "title", lib_col_string(st, 1));
	bad |= json_object_set_new(doc, "body", lib_col_string(st, 2));
	bad |= json_object_set_new(doc, "tags", lib_col_tags(st, 3));
	bad |= json_object_set_new(doc, "source", lib_col_string(st, 4));
	bad |= json_object_set_new(doc, "created_at",
				   json_integer(sqlite3_column_int64(st, 5)));
	if (bad) {
		json_decref(doc);
		return NULL;
	}
	return doc;
}

int lib_doc_get(sqlite3 *db, int64_t id, json_t **doc_out, lib_err *err)
{
	sqlite3_stmt *st;
	json_t *doc = NULL;
	int rc;

	if (!db || !doc_out)
		return sdk_fail(err, LIB_EINVAL, "missing argument");
	*doc_out = NULL;
	if (sqlite3_prepare_v2(db, lib_sql_get, -1, &st, NULL) != SQLITE_OK)
		return lib_fail_sql(db, err, "prepare read");
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		doc = lib_row_doc(st);
		rc = doc ? LIB_OK :
		     sdk_fail(err, LIB_EIO, "document %" PRId64
			      " cannot be encoded", id);
	} else if (rc == SQLITE_DONE) {
		rc = sdk_fail(err, LIB_ENOTFOUND,
			      "document %" PRId64 " not found", id);
	} else {
		rc = lib_fail_sql(db, err, "read document");
	}
	sqlite3_finalize(st);
	*doc_out = doc;
	return rc;
}

int lib_doc_delete(sqlite3 *db, int64_t id, lib_err *err)
{
	sqlite3_stmt *st;
	int rc;

	if (!db)
		return sdk_fail(err, LIB_EINVAL, "no database");
	if (sqlite3_prepare_v2(db, lib_sql_delete, -1, &st, NULL) != SQLITE_OK)
		return lib_fail_sql(db, err, "prepare delete");
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		rc = lib_fail_sql(db, err, "delete document");
	else if (sqlite3_changes(db) == 0)
		rc = sdk_fail(err, LIB_ENOTFOUND,
			      "document %" PRId64 " not found", id);
	else
		rc = LIB_OK;
	sqlite3_finalize(st);
	return rc;
}

static int lib_check_search(const char *query, const char *tag,
			    unsigned limit, lib_err *err)
{
	size_t n;

	/* FTS5 calls a blank query a syntax error; "empty" is the truth. */
	n = query ? strnlen(query, LIB_QUERY_MAX + 1) : 0;
	if (n > LIB_QUERY_MAX)
		return sdk_fail(err, LIB_EINVAL, "query longer than %u bytes",
				LIB_QUERY_MAX);
	if (!query || lib_blank(query))
		return sdk_fail(err, LIB_EINVAL, "query must not be empty");
	if (tag && !*tag)
		return sdk_fail(err, LIB_EINVAL, "tag must not be empty");
	if (tag && strnlen(tag, LIB_TAG_LEN_MAX + 1) > LIB_TAG_LEN_MAX)
		return sdk_fail(err, LIB_EINVAL, "tag longer than %u bytes",
				LIB_TAG_LEN_MAX);
	if (limit < 1 || limit > LIB_SEARCH_LIMIT_MAX)
		return sdk_fail(err, LIB_EINVAL, "limit must be 1..%u",
				LIB_SEARCH_LIMIT_MAX);
	return LIB_OK;
}

/* FTS5 parses the MATCH expression when the statement first steps and
 * reports syntax errors and unknown column filters as plain SQLITE_ERROR.
 * Every other code from a step (IOERR, CORRUPT, FULL, NOMEM, BUSY) is the
 * database failing, not the caller asking badly. */
static int lib_fail_match(sqlite3 *db, int rc, lib_err *err)
{
	if ((rc & 0xff) == SQLITE_ERROR)
		return sdk_fail(err, LIB_EINVAL, "malformed query: %s",
				sqlite3_errmsg(db));
	return lib_fail_sql(db, err, "search");
}

static int lib_bind_match(sqlite3_stmt *st, const char *query,
			  const char *tag)
{
	int rc;

	rc = sqlite3_bind_text(st, 1, query, -1, SQLITE_STATIC);
	return rc ? rc : sqlite3_bind_text(st, 2, tag, -1, SQLITE_STATIC);
}

static int lib_search_count(sqlite3 *db, const char *query, const char *tag,
			    json_int_t *total, lib_err *err)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(db, lib_sql_count, -1, &st, NULL) != SQLITE_OK)
		return lib_fail_sql(db, err, "prepare search");
	if (lib_bind_match(st, query, tag)) {
		rc = lib_fail_sql(db, err, "bind search");
		goto out;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*total = sqlite3_column_int64(st, 0);
		rc = LIB_OK;
	} else {
		rc = lib_fail_match(db, rc, err);
	}
out:
	sqlite3_finalize(st);
	return rc;
}

static json_t *lib_row_hit(sqlite3_stmt *st)
{
	json_t *hit = json_object();
	int bad = 0;

	bad |= json_object_set_new(hit, "id",
				   json_integer(sqlite3_column_int64(st, 0)));
	bad |= json_object_set_new(hit, "title", lib_col_string(st, 1));
	bad |= json_object_set_new(hit, "score",
				   json_real(sqlite3_column_double(st, 2)));
	bad |= json_object_set_new(hit, "snippet", lib_col_string(st, 3));
	bad |= json_object_set_new(hit, "tags", lib_col_tags(st, 4));
	bad |= json_object_set_new(hit, "source", lib_col_string(st, 5));
	if (bad) {
		json_decref(hit);
		return NULL;
	}
	return hit;
}

static int lib_search_rows(sqlite3 *db, const char *query, const char *tag,
			   unsigned limit, json_t *results, lib_err *err)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(db, lib_sql_search, -1, &st, NULL) != SQLITE_OK)
		return lib_fail_sql(db, err, "prepare search");
	if (lib_bind_match(st, query, tag) ||
	    sqlite3_bind_int(st, 3, (int)limit)) {
		rc = lib_fail_sql(db, err, "bind search");
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (json_array_append_new(results, lib_row_hit(st))) {
			rc = sdk_fail(err, LIB_EIO,
				      "search result cannot be encoded");
			goto out;
		}
	}
	rc = rc == SQLITE_DONE ? LIB_OK : lib_fail_match(db, rc, err);
out:
	sqlite3_finalize(st);
	return rc;
}

int lib_search(sqlite3 *db, const char *query, const char *tag, unsigned limit,
	       json_t **out, lib_err *err)
{
	json_t *res, *results;
	json_int_t total = 0;
	int rc;

	if (!db || !out)
		return sdk_fail(err, LIB_EINVAL, "missing argument");
	*out = NULL;
	rc = lib_check_search(query, tag, limit, err);
	if (rc)
		return rc;
	res = json_object();
	if (!res)
		return lib_oom(err);
	if (json_object_set_new(res, "query", json_string(query))) {
		json_decref(res);
		return sdk_fail(err, LIB_EINVAL, "query is not valid UTF-8");
	}
	/* Counting first also surfaces a malformed query before any rows. */
	rc = lib_search_count(db, query, tag, &total, err);
	results = rc ? NULL : json_array();
	if (!rc && !results)
		rc = lib_oom(err);
	if (!rc)
		rc = lib_search_rows(db, query, tag, limit, results, err);
	if (!rc && (json_object_set_new(res, "total", json_integer(total)) ||
		    json_object_set_new(res, "results", json_incref(results))))
		rc = lib_oom(err);
	json_decref(results);
	if (rc) {
		json_decref(res);
		return rc;
	}
	*out = res;
	return LIB_OK;
}

/* The '/' boundary keeps /lib2 from counting as inside /lib. A root that
 * itself ends in '/' can only be "/", which contains everything. */
static bool lib_path_within(const char *root, const char *path)
{
	size_t n = strlen(root);

	if (strncmp(root, path, n) != 0)
		return false;
	return path[n] == '\0' || path[n] == '/' || (n && root[n - 1] == '/');
}

/* Returns "md", "txt" or NULL; the kind doubles as the second tag. */
static const char *lib_ingest_kind(const char *name)
{
	const char *dot = strrchr(name, '.');

	if (!dot)
		return NULL;
	if (strcasecmp(dot, ".md") == 0)
		return "md";
	if (strcasecmp(dot, ".txt") == 0)
		return "txt";
	return NULL;
}

static bool lib_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* Cuts at a character boundary so a truncated title stays valid UTF-8. */
static char *lib_strndup_utf8(const char *s, size_t n, size_t max)
{
	if (n > max) {
		n = max;
		while (n && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	return strndup(s, n);
}

/* First line with visible text, markdown heading marks removed; the file
 * name when the file has no such line. */
static char *lib_ingest_title(const char *body, size_t len, bool md,
			      const char *name)
{
	const char *p = body, *end = body + len, *eol, *s, *e;

	/* Editors on some systems start UTF-8 files with a BOM. */
	if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0)
		p += 3;
	while (p < end) {
		eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			eol = end;
		s = p;
		e = eol;
		while (s < e && (lib_space(*s) || (md && *s == '#')))
			s++;
		while (e > s && lib_space(e[-1]))
			e--;
		if (e > s)
			return lib_strndup_utf8(s, (size_t)(e - s), LIB_TITLE_MAX);
		p = eol + 1;
	}
	return strdup(name);
}

/* Reads one byte beyond the size fstat reported, so a file that grew past
 * the limit while we looked is caught instead of silently truncated. */
static char *lib_read_fd(int fd, const struct stat *st, size_t *len_out)
{
	size_t cap = (size_t)st->st_size + 1, len = 0;
	char *buf = malloc(cap + 1);
	ssize_t n = 0;

	if (!buf)
		return NULL;
	while (len < cap) {
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	if (n < 0 || len > (size_t)st->st_size) {
		free(buf);
		return NULL;
	}
	buf[len] = '\0';
	*len_out = len;
	return buf;
}

static int lib_ingest_note(struct lib_ingest *ctx, int64_t id,
			   const char *source)
{
	json_t *doc = json_object();
	int bad = 0;

	bad |= json_object_set_new(doc, "id", json_integer(id));
	bad |= json_object_set_new(doc, "source", json_string(source));
	if (bad || json_array_append_new(ctx->docs, doc)) {
		if (bad)
			json_decref(doc);
		return lib_oom(ctx->err);
	}
	ctx->ingested++;
	return LIB_OK;
}

/* Only database failures are errors; a file that cannot be taken (too big,
 * unreadable, empty, not UTF-8, swapped for something else mid-walk) is
 * counted as skipped and the walk goes on. */
static int lib_ingest_body(struct lib_ingest *ctx, const char *body,
			   size_t len, const char *path, const char *kind)
{
	const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	bool md = strcmp(kind, "md") == 0;
	int64_t id;
	char *title;
	int rc;

	if (len == 0 || !lib_utf8_valid((const unsigned char *)body, len) ||
	    !lib_utf8_valid((const unsigned char *)path, strlen(path))) {
		ctx->skipped++;
		return LIB_OK;
	}
	title = lib_ingest_title(body, len, md, name);
	if (!title)
		return lib_oom(ctx->err);
	rc = lib_doc_write(ctx->db, lib_sql_upsert, title, body,
			   md ? lib_tags_md : lib_tags_txt, path, &id, ctx->err);
	free(title);
	return rc ? rc : lib_ingest_note(ctx, id, path);
}

static int lib_ingest_file(struct lib_ingest *ctx, int dfd, const char *name,
			   const char *path, const char *kind)
{
	struct stat st;
	size_t len;
	char *body;
	int fd, rc;

	/* O_NONBLOCK: a FIFO swapped in after the stat must not hang us. */
	fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY |
		    O_NONBLOCK);
	if (fd < 0) {
		ctx->skipped++;
		return LIB_OK;
	}
	body = NULL;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    st.st_size <= (off_t)LIB_INGEST_FILE_MAX &&
	    strlen(path) <= LIB_SOURCE_MAX)
		body = lib_read_fd(fd, &st, &len);
	close(fd);
	if (!body) {
		ctx->skipped++;
		return LIB_OK;
	}
	rc = lib_ingest_body(ctx, body, len, path, kind);
	free(body);
	return rc;
}

static char *lib_path_join(const char *dir, const char *name)
{
	size_t n = strlen(dir);
	char *p;

	if (asprintf(&p, "%s%s%s", dir, n && dir[n - 1] == '/' ? "" : "/",
		     name) < 0)
		return NULL;
	return p;
}

static int lib_ingest_dir(struct lib_ingest *ctx, int dfd, const char *dir,
			  int depth);

static int lib_ingest_subdir(struct lib_ingest *ctx, int dfd,
			     const char *name, const char *path, int depth)
{
	int fd, rc;

	/* Unreadable, or replaced by a symlink since the stat: not ours. */
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return LIB_OK;
	rc = lib_ingest_dir(ctx, fd, path, depth);
	close(fd);
	return rc;
}

static int lib_ingest_entry(struct lib_ingest *ctx, int dfd, const char *dir,
			    const char *name, int depth)
{
	const char *kind = NULL;
	struct stat st;
	char *path;
	int rc = LIB_OK;

	/* Never followed: a symlink could lead outside the root. */
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return LIB_OK;
	if (S_ISREG(st.st_mode))
		kind = lib_ingest_kind(name);
	if (!kind && (!S_ISDIR(st.st_mode) || depth >= LIB_INGEST_DEPTH_MAX))
		return LIB_OK;
	path = lib_path_join(dir, name);
	if (!path)
		return lib_oom(ctx->err);
	if (kind)
		rc = lib_ingest_file(ctx, dfd, name, path, kind);
	else
		rc = lib_ingest_subdir(ctx, dfd, name, path, depth + 1);
	free(path);
	return rc;
}

static int lib_dirent_filter(const struct dirent *e)
{
	return strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
}

/* Sorted so ingest order, and thus ids and the report, are reproducible. */
static int lib_ingest_dir(struct lib_ingest *ctx, int dfd, const char *dir,
			  int depth)
{
	struct dirent **names;
	int n, i, rc = LIB_OK;

	n = scandirat(dfd, ".", &names, lib_dirent_filter, alphasort);
	if (n < 0)
		return depth ? LIB_OK :
		       sdk_fail(ctx->err, LIB_EIO, "cannot read directory: %s",
				strerror(errno));
	for (i = 0; i < n; i++) {
		if (!rc)
			rc = lib_ingest_entry(ctx, dfd, dir, names[i]->d_name,
					      depth);
		free(names[i]);
	}
	free(names);
	return rc;
}

/* `path` is already resolved, so it names no symlink itself. */
static int lib_ingest_top(struct lib_ingest *ctx, const char *path)
{
	const char *kind;
	struct stat st;
	int fd, rc;

	if (lstat(path, &st) != 0)
		return sdk_fail(ctx->err, LIB_EIO, "cannot stat path: %s",
				strerror(errno));
	if (S_ISREG(st.st_mode)) {
		kind = lib_ingest_kind(path);
		return kind ? lib_ingest_file(ctx, AT_FDCWD, path, path, kind) :
			      LIB_OK;
	}
	if (!S_ISDIR(st.st_mode))
		return sdk_fail(ctx->err, LIB_EINVAL,
				"path is not a file or directory");
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return sdk_fail(ctx->err, LIB_EIO, "cannot open directory: %s",
				strerror(errno));
	rc = lib_ingest_dir(ctx, fd, path, 0);
	close(fd);
	return rc;
}

/* A path that does not resolve gets the same answer as one outside the
 * root: telling them apart would let a client probe which files exist
 * anywhere on the host. */
static int lib_resolve(const char *root, const char *path, char **rroot,
		       char **rpath, lib_err *err)
{
	*rroot = realpath(root, NULL);
	if (!*rroot)
		return sdk_fail(err, LIB_EIO, "cannot resolve library root: %s",
				strerror(errno));
	*rpath = realpath(path, NULL);
	if (!*rpath && errno == ENOMEM)
		return lib_oom(err);
	if (!*rpath || !lib_path_within(*rroot, *rpath))
		return sdk_fail(err, LIB_EDENIED,
				"path does not resolve inside the library root");
	return LIB_OK;
}

static json_t *lib_ingest_report(struct lib_ingest *ctx)
{
	json_t *res = json_object();
	int bad = 0;

	bad |= json_object_set_new(res, "ingested",
				   json_integer(ctx->ingested));
	bad |= json_object_set_new(res, "skipped", json_integer(ctx->skipped));
	bad |= json_object_set_new(res, "documents", json_incref(ctx->docs));
	if (bad) {
		json_decref(res);
		return NULL;
	}
	return res;
}

/* The report is built before the commit so that running out of memory for
 * it cannot leave an ingest committed but reported as failed. */
static int lib_ingest_tx(struct lib_ingest *ctx, const char *path,
			 json_t **out)
{
	bool nested;
	int rc;

	rc = lib_tx_begin(ctx->db, &nested, ctx->err);
	if (rc)
		return rc;
	rc = lib_ingest_top(ctx, path);
	if (!rc) {
		*out = lib_ingest_report(ctx);
		rc = *out ? LIB_OK : lib_oom(ctx->err);
	}
	if (!rc)
		rc = lib_tx_commit(ctx->db, nested, ctx->err);
	else
		lib_tx_rollback(ctx->db, nested);
	if (rc) {
		json_decref(*out);
		*out = NULL;
	}
	return rc;
}

int lib_ingest(sqlite3 *db, const char *root, const char *path, json_t **out,
	       lib_err *err)
{
	struct lib_ingest ctx = { .db = db, .err = err };
	char *rroot = NULL, *rpath = NULL;
	int rc;

	if (!db || !root || !path || !out)
		return sdk_fail(err, LIB_EINVAL, "missing argument");
	*out = NULL;
	rc = lib_resolve(root, path, &rroot, &rpath, err);
	if (!rc) {
		ctx.docs = json_array();
		rc = ctx.docs ? lib_ingest_tx(&ctx, rpath, out) : lib_oom(err);
	}
	json_decref(ctx.docs);
	free(rroot);
	free(rpath);
	return rc;
}
