/* The librarian's document store.
 *
 * `documents` is the only table the C code writes. The FTS5 index and the
 * tag index are derived from it by triggers, so every write path (put, the
 * ingest upsert, delete, even a hand-written UPDATE in the sqlite3 shell)
 * keeps them consistent without the code having to remember to. */
#include "sdk/err.h"
#include "sdk/clock.h"
#include "sdk/log.h"
#include "sdk/utf8.h"
#include "store.h"
#include "kernels/librarian/index.h"
#include "kernels/librarian/search.h"

#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIB_SOURCE_MAX PATH_MAX


/* Bump LIB_SCHEMA_VERSION and add a migration step when this changes; a
 * database written by a newer build is refused rather than half-understood.
 *
 * AUTOINCREMENT because ids are handed to clients: a deleted document's id
 * must never come back as a different document.
 *
 * document_tags has no foreign key on purpose: the triggers maintain it, so
 * it stays correct whether or not the connection enables foreign_keys.
 *
 * The update trigger fires on title, body and tags only: a change of
 * owner (a user deleted) must not re-index every document they had.
 *
 * size is the bytes of title and body, what an owner's quota counts. The
 * two covering indexes answer "what does this owner have" and "whose is
 * this source" without reading a body: a column after the body is found
 * only by walking the body's overflow pages.
 * ingest_jobs and ingest_files are the ingests (ingest.h): each file of an
 * ingest and what became of it, so a restart resumes where it stopped. */
#define LIB_SCHEMA_DOCUMENTS \
	"CREATE TABLE IF NOT EXISTS documents (" \
	"  id INTEGER PRIMARY KEY AUTOINCREMENT," \
	"  title TEXT NOT NULL," \
	"  body TEXT NOT NULL," \
	"  tags TEXT NOT NULL DEFAULT '[]' CHECK (json_type(tags) = 'array')," \
	"  source TEXT UNIQUE NULL," \
	"  created_at INTEGER NOT NULL," \
	"  owner TEXT NULL," \
	"  size INTEGER NOT NULL DEFAULT 0," \
	"  hash BLOB NULL" \
	");"

#define LIB_SCHEMA_REST \
	"CREATE TABLE IF NOT EXISTS document_tags (" \
	"  doc_id INTEGER NOT NULL," \
	"  tag TEXT NOT NULL," \
	"  PRIMARY KEY (doc_id, tag)" \
	") WITHOUT ROWID;" \
	"CREATE INDEX IF NOT EXISTS document_tags_by_tag" \
	"  ON document_tags (tag, doc_id);" \
	"CREATE INDEX IF NOT EXISTS documents_by_owner ON documents (owner, id, size)" \
	"  WHERE owner IS NOT NULL;" \
	"CREATE INDEX IF NOT EXISTS documents_by_source ON documents (source, owner, size)" \
	"  WHERE source IS NOT NULL;" \
	"CREATE VIRTUAL TABLE IF NOT EXISTS documents_fts USING fts5(" \
	"  title, body, tags," \
	"  content = 'documents', content_rowid = 'id'," \
	"  tokenize = 'porter unicode61'" \
	");" \
	"CREATE TRIGGER IF NOT EXISTS documents_ai AFTER INSERT ON documents BEGIN" \
	"  INSERT INTO documents_fts (rowid, title, body, tags)" \
	"    VALUES (new.id, new.title, new.body, new.tags);" \
	"  INSERT OR IGNORE INTO document_tags (doc_id, tag)" \
	"    SELECT new.id, value FROM json_each(new.tags);" \
	"END;" \
	"CREATE TRIGGER IF NOT EXISTS documents_ad AFTER DELETE ON documents BEGIN" \
	"  INSERT INTO documents_fts (documents_fts, rowid, title, body, tags)" \
	"    VALUES ('delete', old.id, old.title, old.body, old.tags);" \
	"  DELETE FROM document_tags WHERE doc_id = old.id;" \
	"END;" \
	"CREATE TRIGGER IF NOT EXISTS documents_au" \
	"  AFTER UPDATE OF title, body, tags ON documents BEGIN" \
	"  INSERT INTO documents_fts (documents_fts, rowid, title, body, tags)" \
	"    VALUES ('delete', old.id, old.title, old.body, old.tags);" \
	"  INSERT INTO documents_fts (rowid, title, body, tags)" \
	"    VALUES (new.id, new.title, new.body, new.tags);" \
	"  DELETE FROM document_tags WHERE doc_id = old.id;" \
	"  INSERT OR IGNORE INTO document_tags (doc_id, tag)" \
	"    SELECT new.id, value FROM json_each(new.tags);" \
	"END;" \
	"CREATE TABLE IF NOT EXISTS ingest_jobs (" \
	"  id INTEGER PRIMARY KEY AUTOINCREMENT," \
	"  owner TEXT NULL," \
	"  admin INTEGER NOT NULL DEFAULT 0," \
	"  path TEXT NOT NULL," \
	"  state TEXT NOT NULL CHECK (state IN" \
	"    ('scanning', 'running', 'done', 'failed', 'cancelled'))," \
	"  files_total INTEGER NOT NULL DEFAULT 0," \
	"  bytes_total INTEGER NOT NULL DEFAULT 0," \
	"  files_done INTEGER NOT NULL DEFAULT 0," \
	"  bytes_done INTEGER NOT NULL DEFAULT 0," \
	"  ingested INTEGER NOT NULL DEFAULT 0," \
	"  skipped INTEGER NOT NULL DEFAULT 0," \
	"  failed INTEGER NOT NULL DEFAULT 0," \
	"  error TEXT NULL," \
	"  created_ms INTEGER NOT NULL," \
	"  updated_ms INTEGER NOT NULL," \
	"  finished_ms INTEGER NULL" \
	");" \
	"CREATE INDEX IF NOT EXISTS ingest_jobs_by_owner ON ingest_jobs (owner, state);" \
	"CREATE INDEX IF NOT EXISTS ingest_jobs_by_state ON ingest_jobs (state);" \
	"CREATE TABLE IF NOT EXISTS ingest_files (" \
	"  job_id INTEGER NOT NULL REFERENCES ingest_jobs (id) ON DELETE CASCADE," \
	"  seq INTEGER NOT NULL," \
	"  path TEXT NOT NULL," \
	"  size INTEGER NOT NULL," \
	"  state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN" \
	"    ('pending', 'ingested', 'skipped', 'failed'))," \
	"  doc_id INTEGER NULL," \
	"  reason TEXT NULL," \
	"  PRIMARY KEY (job_id, seq)" \
	") WITHOUT ROWID;" \
	"CREATE INDEX IF NOT EXISTS ingest_files_pending ON ingest_files (job_id, state, seq);"

/* What each owner has, for the quota checked at every write: counting
 * their documents was a scan of all of them (documents_by_owner), 11 % of
 * a single write at 2,000 documents and growing with them. Kept by
 * triggers, as FTS5 and the tags are, so that every write path (bulk's
 * INSERT ... SELECT, an ingest's upsert, an owner's release, the sqlite3
 * shell) keeps it right. A row stays at 0 when its owner has nothing. */
#define LIB_SCHEMA_USAGE \
	"CREATE TABLE IF NOT EXISTS owner_usage (" \
	"  owner TEXT PRIMARY KEY," \
	"  docs INTEGER NOT NULL," \
	"  bytes INTEGER NOT NULL" \
	") WITHOUT ROWID;" \
	"CREATE TRIGGER IF NOT EXISTS documents_usage_ai AFTER INSERT ON documents" \
	"  WHEN new.owner IS NOT NULL BEGIN" \
	"  INSERT INTO owner_usage (owner, docs, bytes) VALUES (new.owner, 1, new.size)" \
	"    ON CONFLICT (owner) DO UPDATE SET docs = docs + 1, bytes = bytes + excluded.bytes;" \
	"END;" \
	"CREATE TRIGGER IF NOT EXISTS documents_usage_ad AFTER DELETE ON documents" \
	"  WHEN old.owner IS NOT NULL BEGIN" \
	"  UPDATE owner_usage SET docs = docs - 1, bytes = bytes - old.size" \
	"    WHERE owner = old.owner;" \
	"END;" \
	"CREATE TRIGGER IF NOT EXISTS documents_usage_au AFTER UPDATE OF owner, size ON documents" \
	"  BEGIN" \
	"  UPDATE owner_usage SET docs = docs - 1, bytes = bytes - old.size" \
	"    WHERE old.owner IS NOT NULL AND owner = old.owner;" \
	"  INSERT INTO owner_usage (owner, docs, bytes)" \
	"    SELECT new.owner, 1, new.size WHERE new.owner IS NOT NULL" \
	"    ON CONFLICT (owner) DO UPDATE SET docs = docs + 1, bytes = bytes + excluded.bytes;" \
	"END;"

/* hash: of a bulk-loaded document without a source (bulk.c), so that
 * loading the same one again finds it instead of making a second. Found
 * by its first 8 bytes (then compared whole, bulk.c): a request's hashes
 * land on random pages of the index, and keyed by the 32 bytes it was
 * 2.6 times larger, so a 1 MiB request of 725 documents at 100,000 wrote
 * 602 of its pages (a quarter of its WAL) against 372. Not UNIQUE: the
 * bulk loader, the only writer of hashes, answers a second copy
 * "duplicate" before inserting it. */
#define LIB_SCHEMA_HASH \
	"CREATE INDEX IF NOT EXISTS documents_by_hash8 ON documents (substr(hash, 1, 8))" \
	"  WHERE hash IS NOT NULL;"

/* FTS5 merges its segments in the writer's idle moments (lib_fts_merge),
 * not inside the writes: with its automatic merging (4 segments a level)
 * a 10 MB bulk request's INSERT took 235 ms at the start of a
 * 100,000-document load and 460 ms at its end, 205-240 ms throughout
 * without (docs/librarian.md, "Ingest: where the time goes"), the work
 * Lucene leaves to merges in the background. FTS5's crisis merge still
 * merges a level that reaches 16 segments within the write, so a load
 * that never pauses still bounds what a query reads. Set in FTS5's own
 * configuration (the file's), once. */
#define LIB_SCHEMA_FTS_MERGE \
	"INSERT INTO documents_fts (documents_fts, rank) SELECT 'automerge', 0" \
	"  WHERE NOT EXISTS (SELECT 1 FROM documents_fts_config WHERE k = 'automerge' AND v = 0);"

/* Today's tables (version LIB_SCHEMA_VERSION), run on every open after
 * the migrations (sdk/migrate.h): additions are CREATE ... IF NOT EXISTS. */
static const char lib_schema[] = LIB_SCHEMA_DOCUMENTS LIB_SCHEMA_REST LIB_IX_SCHEMA
	LIB_SCHEMA_HASH LIB_SCHEMA_USAGE LIB_SCHEMA_FTS_MERGE;

/* Version 1 had documents without owner and size, an update trigger on
 * every column, and no ingest tables. */
static const char lib_migrate_1[] =
	"ALTER TABLE documents ADD COLUMN owner TEXT NULL;"
	"ALTER TABLE documents ADD COLUMN size INTEGER NOT NULL DEFAULT 0;"
	"DROP TRIGGER IF EXISTS documents_au;"
	LIB_SCHEMA_REST
	"UPDATE documents SET size = length(CAST(title AS BLOB)) + length(CAST(body AS BLOB));";

/* Version 2 had no block index: its tables are made empty and marked
 * incomplete here (a short step, whatever the corpus), and lib_store_init
 * builds them from the documents after the migration, LIB_BUILD_STEP
 * documents per transaction, before the kernel says READY. */
static const char lib_migrate_2[] =
	"ALTER TABLE documents ADD COLUMN hash BLOB NULL;"
	LIB_IX_SCHEMA
	"INSERT OR IGNORE INTO ix_meta (id, docs, tokens, gen, next_term, complete)"
	" VALUES (1, 0, 0, 1, 1, 0);";

/* Version 3's one-document writes went straight into the blocks; 4's go
 * into ix_pending first (index.h). Nothing to move: an empty table. */
static const char lib_migrate_3[] = LIB_IX_PENDING_SCHEMA;

/* owner_usage counted from the documents: the migration's fill, and the
 * start's recount when it disagrees (lib_usage_recount). */
#define LIB_SQL_USAGE_FILL \
	"INSERT INTO owner_usage (owner, docs, bytes)" \
	" SELECT owner, count(*), sum(size) FROM documents WHERE owner IS NOT NULL GROUP BY owner;"

/* Version 4 counted an owner's documents at each write. */
static const char lib_migrate_4[] = LIB_SCHEMA_USAGE LIB_SQL_USAGE_FILL;

/* Version 5 kept each term's last block among the blocks; 6 keeps the
 * block appends go to in ix_tails (index.h). Nothing to move: a term
 * without a tail row is valid, and its next append makes one. And 5
 * indexed the documents' hash whole (LIB_SCHEMA_HASH), and each owner's
 * documents by their size: a new document's entry went to a random page
 * of its owner's (356 of a 1 MiB request's 2,444 WAL pages, one owner,
 * 95,000 documents); by id, after the owner's last, with the size still
 * there for the usage's recount (an index-only scan). */
#define LIB_SQL_OWNER_INDEX \
	"DROP INDEX IF EXISTS documents_by_owner;" \
	"CREATE INDEX documents_by_owner ON documents (owner, id, size)" \
	"  WHERE owner IS NOT NULL;"
static const char lib_migrate_5[] = LIB_IX_TAILS_SCHEMA "DROP INDEX IF EXISTS documents_by_hash;"
	LIB_SCHEMA_HASH LIB_SQL_OWNER_INDEX;

const sdk_mig_step lib_migrations[LIB_SCHEMA_VERSION] = {
	{ .what = "(stamp: an unversioned file has version 1's tables)" },
	{ .sql = lib_migrate_1, .what = "(documents' owner and size, the ingest tables)" },
	{ .sql = lib_migrate_2,
	  .what = "(documents' hash, the block index's tables, marked to be built)" },
	{ .sql = lib_migrate_3, .what = "(the block index's pending documents)" },
	{ .sql = lib_migrate_4, .what = "(each owner's documents and bytes, counted)" },
	{ .sql = lib_migrate_5,
	  .what = "(the block index's tails; the documents' hash index on 8 bytes, owner index by id)" },
};

static const char lib_sql_insert[] =
	"INSERT INTO documents (title, body, tags, source, created_at, owner, size, hash)"
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id";

/* Re-ingesting a file updates in place rather than delete+insert so the
 * document keeps the id clients may already hold, and its owner. */
static const char lib_sql_upsert[] =
	"INSERT INTO documents (title, body, tags, source, created_at, owner, size, hash)"
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
	" ON CONFLICT (source) DO UPDATE SET title = excluded.title,"
	" body = excluded.body, tags = excluded.tags,"
	" created_at = excluded.created_at, size = excluded.size, hash = excluded.hash"
	" RETURNING id";

static const char lib_sql_get[] =
	"SELECT id, title, body, tags, source, created_at, owner"
	" FROM documents WHERE id = ?1";

static const char lib_sql_delete[] = "DELETE FROM documents WHERE id = ?1";

int lib_fail_sql(sqlite3 *db, lib_err *err, const char *what)
{
	return sdk_fail(err, sdk_status_of_sqlite(sqlite3_errcode(db)), "%s: %s", what,
			sqlite3_errmsg(db));
}

static int lib_oom(lib_err *err)
{
	return sdk_fail(err, SDK_EIO, "out of memory");
}

/* Whether the 8 bytes at s are ASCII and none is NUL: most of a text is,
 * and a word at a time is an eighth of the work (validating was a
 * twentieth of a bulk load). */
static bool ascii8(const unsigned char *s)
{
	uint64_t w;
	memcpy(&w, s, sizeof w);
	const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
	return !(w & highs) && !((w - ones) & ~w & highs);
}

/* Strict (sdk/utf8.h), and no NUL, so the text survives jansson and C
 * string handling unchanged. */
bool lib_utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		if (n - i >= 8 && ascii8(s + i)) {
			i += 8;
			continue;
		}
		size_t k = s[i] ? sdk_utf8_len(s + i, n - i) : 0;
		if (!k)
			return false;
		i += k;
	}
	return true;
}

/* BEGIN IMMEDIATE takes the write lock up front: a WAL read transaction that
 * later upgrades can fail with SQLITE_BUSY_SNAPSHOT, which the busy handler
 * never retries. Inside a caller's transaction a savepoint gives the same
 * all-or-nothing behaviour without committing their work. */
int lib_tx_begin(sqlite3 *db, bool *nested, lib_err *err)
{
	*nested = !sqlite3_get_autocommit(db);
	if (sqlite3_exec(db, *nested ? "SAVEPOINT lib_tx" : "BEGIN IMMEDIATE",
			 NULL, NULL, NULL) != SQLITE_OK)
		return lib_fail_sql(db, err, "begin transaction");
	return SDK_OK;
}

void lib_tx_rollback(sqlite3 *db, bool nested)
{
	/* Errors are ignored: SQLite may already have rolled back by itself
	 * (e.g. after SQLITE_FULL), and there is nothing better to do. */
	if (nested)
		sqlite3_exec(db, "ROLLBACK TO lib_tx; RELEASE lib_tx",
			     NULL, NULL, NULL);
	else if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

int lib_tx_commit(sqlite3 *db, bool nested, lib_err *err)
{
	int rc;

	if (sqlite3_exec(db, nested ? "RELEASE lib_tx" : "COMMIT",
			 NULL, NULL, NULL) == SQLITE_OK)
		return SDK_OK;
	rc = lib_fail_sql(db, err, "commit");
	lib_tx_rollback(db, nested);
	return rc;
}

static bool lib_no_documents(sqlite3 *db)
{
	sqlite3_stmt *st;
	bool none = false;

	if (sqlite3_prepare_v2(db, "SELECT NOT EXISTS (SELECT 1 FROM documents)", -1, &st,
			       NULL) != SQLITE_OK)
		return false;
	if (sqlite3_step(st) == SQLITE_ROW)
		none = sqlite3_column_int(st, 0) != 0;
	sqlite3_finalize(st);
	return none;
}

static int lib_store_indexed(sqlite3 *db, bool *all, lib_err *err);
static int lib_usage_recount(sqlite3 *db, int64_t *wrong, lib_err *err);

/* The block index disagrees with the documents (lib_ix_check_quick's
 * finding in err). It is derived from them, as owner_usage is: emptied
 * here and built again from them by lib_store_build, at this start,
 * before the kernel says ready (a crash in the middle resumes at the next
 * start, searches going to FTS5 until it is complete). Refusing the start
 * instead left the whole library down, restarted until the supervisor
 * gave up, with nothing an operator could run to mend it. Said at error
 * level: it means damage, or a fault of ours. A file damaged below the
 * index is not this: SQLite's quick_check fails the storage before init. */
static int lib_store_reindex(sqlite3 *db, lib_err *err)
{
	sdk_error("librarian: the block index disagrees with the documents (%s);"
		  " emptied, and built again from the documents", err->msg);
	bool nested;
	int rc = lib_tx_begin(db, &nested, err);
	if (rc)
		return rc;
	rc = lib_ix_reset(db, err);
	if (rc) {
		lib_tx_rollback(db, nested);
		return rc;
	}
	return lib_tx_commit(db, nested, err);
}

int lib_store_init(sqlite3 *db, lib_err *err)
{
	bool nested;
	int rc;

	if (!db)
		return sdk_fail(err, SDK_EINVAL, "no database");
	/* The runtime ran it already (librarian_kernel's declaration); run
	 * here too (a no-op then) so the store stands alone. */
	sdk_mig_def def = { .store = "librarian",
			    .version = LIB_SCHEMA_VERSION,
			    .steps = lib_migrations,
			    .n_steps = LIB_SCHEMA_VERSION };
	rc = sdk_mig_run(db, &def, NULL, err);
	if (rc)
		return rc;
	rc = lib_tx_begin(db, &nested, err);
	if (rc)
		return rc;
	if (sqlite3_exec(db, lib_schema, NULL, NULL, NULL) != SQLITE_OK)
		rc = lib_fail_sql(db, err, "create schema");
	/* A file with no documents has a complete (empty) index; one with
	 * documents and no meta row yet (made by the migration step 2->3
	 * otherwise) is built below. */
	if (!rc)
		rc = lib_ix_init(db, lib_no_documents(db), err);
	if (rc) {
		lib_tx_rollback(db, nested);
		return rc;
	}
	rc = lib_tx_commit(db, nested, err);
	if (!rc)
		rc = lib_ix_check_quick(db, err);
	if (rc == SDK_ECORRUPT && !nested)
		rc = lib_store_reindex(db, err);
	int64_t wrong = 0;
	if (!rc && !nested)
		rc = lib_usage_recount(db, &wrong, err);
	if (wrong)
		sdk_warn("librarian: %" PRId64 " owners' counted usage disagreed with their"
			 " documents; counted again (owner_usage)", wrong);
	bool all = false;
	if (!rc && !nested)
		rc = lib_store_indexed(db, &all, err);
	if (!rc && !nested && !all)
		rc = lib_store_build(db, err);
	return rc;
}

int lib_fts_merge(sqlite3 *db, bool *worked, lib_err *err)
{
	/* FTS5 tells whether it merged anything only by the changes it
	 * counts: 2 or more when it did (its documentation). */
	*worked = false;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "INSERT INTO documents_fts (documents_fts, rank) VALUES ('merge', ?)",
			       -1, &st, NULL) != SQLITE_OK)
		return lib_fail_sql(db, err, "merge the full-text index");
	sqlite3_bind_int(st, 1, LIB_FTS_MERGE_PAGES);
	int64_t before = sqlite3_total_changes64(db);
	int rc = sqlite3_step(st) == SQLITE_DONE ? SDK_OK : lib_fail_sql(db, err, "merge the full-text index");
	sqlite3_finalize(st);
	*worked = !rc && sqlite3_total_changes64(db) - before >= 2;
	return rc;
}

/* owner_usage is derived from the documents (the triggers keep it), and
 * quotas are decided on it: at every start it is compared with counting
 * the documents (an index-only scan of documents_by_owner) and, if they
 * disagree (a file changed by hand with the triggers dropped, or damage),
 * counted again from the documents. *wrong: the owners whose row was
 * wrong, missing or extra. */
static const char lib_sql_usage_wrong[] =
	"SELECT count(*) FROM"
	" (SELECT owner, count(*) AS docs, sum(size) AS bytes FROM documents"
	"  WHERE owner IS NOT NULL GROUP BY owner) AS d"
	" FULL JOIN (SELECT owner, docs, bytes FROM owner_usage WHERE docs != 0 OR bytes != 0) AS u"
	" USING (owner) WHERE d.docs IS NOT u.docs OR d.bytes IS NOT u.bytes";

static int lib_usage_recount(sqlite3 *db, int64_t *wrong, lib_err *err)
{
	sqlite3_stmt *st;
	*wrong = 0;
	if (sqlite3_prepare_v2(db, lib_sql_usage_wrong, -1, &st, NULL) != SQLITE_OK)
		return lib_fail_sql(db, err, "check owners' usage");
	int rc = SDK_OK;
	if (sqlite3_step(st) == SQLITE_ROW)
		*wrong = sqlite3_column_int64(st, 0);
	else
		rc = lib_fail_sql(db, err, "check owners' usage");
	sqlite3_finalize(st);
	if (rc || !*wrong)
		return rc;
	bool nested;
	rc = lib_tx_begin(db, &nested, err);
	if (rc)
		return rc;
	if (sqlite3_exec(db, "DELETE FROM owner_usage;" LIB_SQL_USAGE_FILL, NULL, NULL, NULL) !=
	    SQLITE_OK) {
		rc = lib_fail_sql(db, err, "count owners' usage again");
		lib_tx_rollback(db, nested);
		return rc;
	}
	return lib_tx_commit(db, nested, err);
}

/* Whether every stored document is indexed, without reading each: the
 * index is complete and counts as many documents as the store holds
 * (lib_ix_check_quick, run first, found every indexed one stored). The
 * build's scan for unindexed documents is then skipped, at every start. */
static int lib_store_indexed(sqlite3 *db, bool *all, lib_err *err)
{
	lib_ix_meta m;
	int64_t n = -1;
	sqlite3_stmt *st;
	int rc = lib_ix_meta_read(db, &m, err);
	if (rc)
		return rc;
	if (sqlite3_prepare_v2(db, "SELECT count(*) FROM documents", -1, &st, NULL) != SQLITE_OK)
		return lib_fail_sql(db, err, "count documents");
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	else
		rc = lib_fail_sql(db, err, "count documents");
	sqlite3_finalize(st);
	*all = !rc && m.complete && n == m.docs;
	return rc;
}

/* Indexes what the block index lacks, LIB_BUILD_STEP documents per
 * transaction (a crash keeps the steps done). Ends with the index
 * complete. */
#define LIB_BUILD_STEP 2000u
int lib_store_build(sqlite3 *db, lib_err *err)
{
	lib_ix *ix;
	int64_t cursor = 0;
	int rc = lib_ix_open(db, &ix, err);
	while (rc == 1 || rc == 0) {
		rc = lib_ix_build_step(ix, &cursor, LIB_BUILD_STEP, err);
		if (rc == 0)
			break;
	}
	lib_ix_close(ix);
	return rc < 0 ? rc : SDK_OK;
}

/* strnlen so an absurdly long input is not scanned to its end. */
static int lib_check_text(const char *what, const char *s, size_t max,
			  lib_err *err)
{
	size_t n;

	if (!s || !*s)
		return sdk_fail(err, SDK_EINVAL, "%s must not be empty", what);
	n = strnlen(s, max + 1);
	if (n > max)
		return sdk_fail(err, SDK_EINVAL, "%s longer than %zu bytes",
				what, max);
	/* Stored text that is not UTF-8 could never be returned as JSON. */
	if (!lib_utf8_valid((const unsigned char *)s, n))
		return sdk_fail(err, SDK_EINVAL, "%s is not valid UTF-8", what);
	return SDK_OK;
}

int lib_check_doc(const char *title, const char *body,
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
		return sdk_fail(err, SDK_EINVAL,
				"tags must be an array of strings");
	n = json_string_length(tag);
	if (n == 0)
		return sdk_fail(err, SDK_EINVAL, "tags must not be empty");
	if (n > LIB_TAG_LEN_MAX)
		return sdk_fail(err, SDK_EINVAL, "tag longer than %u bytes",
				LIB_TAG_LEN_MAX);
	/* jansson accepts "\u0000"; SQLite and C callers would cut there. */
	if (strlen(json_string_value(tag)) != n)
		return sdk_fail(err, SDK_EINVAL, "tag contains a NUL byte");
	return SDK_OK;
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
int lib_tags_text(json_t *tags, char **out, lib_err *err)
{
	json_t *clean, *tag;
	size_t i;
	int rc = SDK_OK;

	if (tags && !json_is_array(tags))
		return sdk_fail(err, SDK_EINVAL,
				"tags must be an array of strings");
	if (json_array_size(tags) > LIB_TAGS_MAX)
		return sdk_fail(err, SDK_EINVAL, "at most %u tags allowed",
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
		return sdk_fail(err, SDK_EINVAL,
				"a document with this source already exists");
	if ((rc & 0xff) == SQLITE_CONSTRAINT)
		return sdk_fail(err, SDK_EINVAL, "document rejected: %s",
				sqlite3_errmsg(db));
	return lib_fail_sql(db, err, "write document");
}

/* Inputs are already validated; `sql` is lib_sql_insert or lib_sql_upsert.
 * The document and its postings in the block index go in one savepoint:
 * both or neither. `ix` NULL: one document, staged (index.h) before the
 * savepoint ends, through `single` (the caller's, kept between single
 * writes so that its statements are prepared once) or, NULL, an index of
 * the call's own; otherwise the caller's batch (a bulk load), which the
 * caller flushes inside the same transaction. */
static int lib_doc_write(sqlite3 *db, lib_ix *ix, lib_ix *single, const char *sql,
			 const char *title,
			 const char *body, const char *tags, const char *source,
			 const char *owner, int64_t size, const uint8_t *hash,
			 int64_t *id_out, lib_err *err)
{
	sqlite3_stmt *st = NULL;
	lib_ix *own = NULL;
	int64_t id = 0;
	bool nested = false;
	int rc = SDK_OK;

	/* No savepoint under a caller's index: the caller's transaction is
	 * all or nothing, each statement is on its own, and FTS5 writes out
	 * its pending postings at every savepoint (a bulk load ran 10x
	 * slower with one per document). */
	if (!ix && (rc = lib_tx_begin(db, &nested, err)))
		return rc;
	if (!ix && single)
		own = single;
	else if (!ix && (rc = lib_ix_open(db, &own, err)))
		goto out;
	if (!ix)
		ix = own;
	/* An upsert that will update: the old text leaves the index first. */
	if (sql == lib_sql_upsert && source) {
		int64_t old = 0;
		rc = lib_doc_id_by_source(db, source, &old, err);
		if (!rc && old)
			rc = lib_ix_remove(ix, old, err);
		if (rc)
			goto out;
	}
	st = lib_ix_stmt(ix, sql);
	if (!st) {
		rc = lib_fail_sql(db, err, "prepare write");
		goto out;
	}
	rc = sqlite3_bind_text(st, 1, title, -1, SQLITE_STATIC);
	rc = rc ? rc : sqlite3_bind_text(st, 2, body, -1, SQLITE_STATIC);
	rc = rc ? rc : sqlite3_bind_text(st, 3, tags, -1, SQLITE_STATIC);
	rc = rc ? rc : sqlite3_bind_text(st, 4, source, -1, SQLITE_STATIC);
	rc = rc ? rc : sqlite3_bind_int64(st, 5, sdk_wall_ms());
	rc = rc ? rc : sqlite3_bind_text(st, 6, owner, -1, SQLITE_STATIC);
	rc = rc ? rc : sqlite3_bind_int64(st, 7, size);
	if (!rc && hash)
		rc = sqlite3_bind_blob(st, 8, hash, LIB_HASH_BYTES, SQLITE_STATIC);
	if (rc) {
		rc = lib_fail_sql(db, err, "bind document");
		goto out;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		id = sqlite3_column_int64(st, 0);
		rc = sqlite3_step(st);
	}
	if (rc != SQLITE_DONE) {
		rc = lib_fail_write(db, sqlite3_extended_errcode(db), err);
		goto out;
	}
	rc = lib_ix_add(ix, id, title, body, tags, err);
	/* One document: into ix_pending (a few pages), merged into the
	 * blocks later by the writer (index.h). */
	if (!rc && own)
		rc = lib_ix_stage(own, err);
	if (!rc && id_out)
		*id_out = id;
out:
	sqlite3_reset(st); /* ix's: it stays prepared for the next document */
	if (!own)
		return rc;
	if (own != single)
		lib_ix_close(own);
	else if (rc)
		lib_ix_discard(own); /* nothing collected stays for the next write */
	if (rc) {
		lib_tx_rollback(db, nested);
		return rc;
	}
	return lib_tx_commit(db, nested, err);
}

int lib_doc_put(sqlite3 *db, const char *title, const char *body, json_t *tags,
		const char *source, int64_t *id_out, lib_err *err)
{
	return lib_doc_put_owned(db, NULL, NULL, title, body, tags, source, id_out,
				 err);
}

int lib_doc_put_owned(sqlite3 *db, const char *owner, const lib_quota *quota,
		      const char *title, const char *body, json_t *tags,
		      const char *source, int64_t *id_out, lib_err *err)
{
	return lib_doc_put_single(db, NULL, owner, quota, title, body, tags, source, id_out, err);
}

int lib_doc_put_single(sqlite3 *db, lib_ix *single, const char *owner, const lib_quota *quota,
		       const char *title, const char *body, json_t *tags, const char *source,
		       int64_t *id_out, lib_err *err)
{
	char *tags_text = NULL;
	int rc;

	if (!db)
		return sdk_fail(err, SDK_EINVAL, "no database");
	rc = lib_check_doc(title, body, source, err);
	if (!rc)
		rc = lib_tags_text(tags, &tags_text, err);
	if (!rc)
		rc = lib_doc_put_checked(db, single, owner, quota, title, body, tags_text, source,
					 id_out, err);
	free(tags_text);
	return rc;
}

int lib_doc_put_checked(sqlite3 *db, lib_ix *single, const char *owner, const lib_quota *quota,
			const char *title, const char *body, const char *tags_text,
			const char *source, int64_t *id_out, lib_err *err)
{
	bool nested;
	/* The quota is read and the document written under one write lock:
	 * an ingest adding documents meanwhile cannot slip past it. */
	int64_t size = (int64_t)strlen(title) + (int64_t)strlen(body);
	int rc = lib_tx_begin(db, &nested, err);
	if (!rc)
		rc = lib_quota_check(db, owner, quota, 1, size, err);
	if (!rc)
		rc = lib_doc_write(db, NULL, single, lib_sql_insert, title, body, tags_text,
				   source, owner, size, NULL, id_out, err);
	if (!rc)
		rc = lib_tx_commit(db, nested, err);
	else
		lib_tx_rollback(db, nested);
	return rc;
}

int lib_doc_id_by_source(sqlite3 *db, const char *source, int64_t *id, lib_err *err)
{
	sqlite3_stmt *st;
	int rc;

	*id = 0;
	if (sqlite3_prepare_v2(db, "SELECT id FROM documents WHERE source = ?1", -1, &st,
			       NULL) != SQLITE_OK)
		return lib_fail_sql(db, err, "prepare source");
	sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*id = sqlite3_column_int64(st, 0);
	rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SDK_OK : lib_fail_sql(db, err, "read source");
	sqlite3_finalize(st);
	return rc;
}

int lib_doc_upsert(sqlite3 *db, lib_ix *ix, const char *owner, const char *title,
		   const char *body, const char *tags, const char *source, int64_t size,
		   int64_t *id_out, lib_err *err)
{
	return lib_doc_write(db, ix, NULL, lib_sql_upsert, title, body, tags, source, owner,
			     size, NULL, id_out, err);
}

int lib_doc_write_bulk(sqlite3 *db, lib_ix *ix, const char *owner, const char *title,
		       const char *body, const char *tags, const char *source, int64_t size,
		       const uint8_t *hash, int64_t *id_out, lib_err *err)
{
	return lib_doc_write(db, ix, NULL, source ? lib_sql_upsert : lib_sql_insert, title, body, tags,
			     source, owner, size, source ? NULL : hash, id_out, err);
}

json_t *lib_col_string(sqlite3_stmt *st, int col)
{
	const char *s;

	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return json_null();
	s = (const char *)sqlite3_column_text(st, col);
	if (!s)
		return NULL;
	return json_stringn(s, (size_t)sqlite3_column_bytes(st, col));
}

json_t *lib_col_tags(sqlite3_stmt *st, int col)
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
	bad |= json_object_set_new(doc, "owner", lib_col_string(st, 6));
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
		return sdk_fail(err, SDK_EINVAL, "missing argument");
	*doc_out = NULL;
	if (sqlite3_prepare_v2(db, lib_sql_get, -1, &st, NULL) != SQLITE_OK)
		return lib_fail_sql(db, err, "prepare read");
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		doc = lib_row_doc(st);
		rc = doc ? SDK_OK :
		     sdk_fail(err, SDK_EIO, "document %" PRId64
			      " cannot be encoded", id);
	} else if (rc == SQLITE_DONE) {
		rc = sdk_fail(err, SDK_ENOTFOUND,
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

	lib_ix *ix = NULL;
	bool nested;

	if (!db)
		return sdk_fail(err, SDK_EINVAL, "no database");
	rc = lib_tx_begin(db, &nested, err);
	if (rc)
		return rc;
	/* The postings go with the row, in the same transaction. */
	rc = lib_ix_open(db, &ix, err);
	if (!rc)
		rc = lib_ix_remove(ix, id, err);
	lib_ix_close(ix);
	if (rc) {
		lib_tx_rollback(db, nested);
		return rc;
	}
	if (sqlite3_prepare_v2(db, lib_sql_delete, -1, &st, NULL) != SQLITE_OK) {
		rc = lib_fail_sql(db, err, "prepare delete");
		lib_tx_rollback(db, nested);
		return rc;
	}
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		rc = lib_fail_sql(db, err, "delete document");
	else if (sqlite3_changes(db) == 0)
		rc = sdk_fail(err, SDK_ENOTFOUND,
			      "document %" PRId64 " not found", id);
	else
		rc = SDK_OK;
	sqlite3_finalize(st);
	if (rc) {
		lib_tx_rollback(db, nested);
		return rc;
	}
	return lib_tx_commit(db, nested, err);
}

/* The owner of document `id`: 1 and *owner (malloc'd, NULL for none), or
 * SDK_ENOTFOUND. */
static int lib_doc_owner(sqlite3 *db, int64_t id, char **owner, lib_err *err)
{
	sqlite3_stmt *st;
	int rc;

	*owner = NULL;
	if (sqlite3_prepare_v2(db, "SELECT owner FROM documents WHERE id = ?1",
			       -1, &st, NULL) != SQLITE_OK)
		return lib_fail_sql(db, err, "prepare owner");
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const char *o = (const char *)sqlite3_column_text(st, 0);
		rc = 1;
		if (o && !(*owner = strdup(o)))
			rc = lib_oom(err);
	} else if (rc == SQLITE_DONE) {
		rc = sdk_fail(err, SDK_ENOTFOUND, "document %" PRId64 " not found",
			      id);
	} else {
		rc = lib_fail_sql(db, err, "read owner");
	}
	sqlite3_finalize(st);
	return rc;
}

const char *lib_may_change(const lib_actor *who, const char *owner)
{
	if (who->admin && who->name)
		return NULL;
	if (owner)
		return who->name && !strcmp(owner, who->name)
			       ? NULL
			       : "the document of this source belongs to another user";
	return who->name && !who->admin
		       ? "the document of this source has no owner: only an admin may change it"
		       : NULL;
}

int lib_doc_delete_as(sqlite3 *db, const lib_actor *who, int64_t id,
		      lib_err *err)
{
	char *owner = NULL;
	bool nested;
	int rc;

	if (!db || !who)
		return sdk_fail(err, SDK_EINVAL, "missing argument");
	rc = lib_tx_begin(db, &nested, err);
	if (rc)
		return rc;
	rc = lib_doc_owner(db, id, &owner, err);
	if (rc == 1) {
		if (!who->name)
			rc = sdk_fail(err, SDK_EDENIED,
				      "a document is deleted by its owner or an admin,"
				      " through the Grace API");
		else if (!who->admin && !owner)
			rc = sdk_fail(err, SDK_EDENIED,
				      "document %" PRId64 " has no owner: only an admin"
				      " may delete it", id);
		else if (!who->admin && strcmp(owner, who->name))
			rc = sdk_fail(err, SDK_EDENIED,
				      "document %" PRId64 " belongs to '%s': only its"
				      " owner or an admin may delete it", id, owner);
		else
			rc = lib_doc_delete(db, id, err);
	}
	free(owner);
	if (rc)
		lib_tx_rollback(db, nested);
	else
		rc = lib_tx_commit(db, nested, err);
	return rc;
}

int lib_usage(sqlite3 *db, const char *owner, int64_t *docs, int64_t *bytes,
	      lib_err *err)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(db, "SELECT docs, bytes FROM owner_usage WHERE owner = ?1", -1,
			       &st, NULL) != SQLITE_OK)
		return lib_fail_sql(db, err, "prepare usage");
	sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
	*docs = *bytes = 0;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*docs = sqlite3_column_int64(st, 0);
		*bytes = sqlite3_column_int64(st, 1);
	}
	rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SDK_OK : lib_fail_sql(db, err, "read usage");
	sqlite3_finalize(st);
	return rc;
}

int lib_quota_check(sqlite3 *db, const char *owner, const lib_quota *quota,
		    int64_t docs, int64_t bytes, lib_err *err)
{
	int64_t have_docs = 0, have_bytes = 0;
	int rc;

	if (!owner || !quota || (!quota->docs && !quota->bytes))
		return SDK_OK;
	rc = lib_usage(db, owner, &have_docs, &have_bytes, err);
	if (rc)
		return rc;
	if (quota->docs && have_docs + docs > quota->docs)
		return sdk_fail(err, SDK_EQUOTA,
				"librarian quota: at most %" PRId64 " documents per"
				" user (you have %" PRId64 ")", quota->docs,
				have_docs);
	if (quota->bytes && have_bytes + bytes > quota->bytes)
		return sdk_fail(err, SDK_EQUOTA,
				"librarian quota: at most %" PRId64 " bytes of"
				" documents per user (you have %" PRId64 ")",
				quota->bytes, have_bytes);
	return SDK_OK;
}

int lib_source_owner(sqlite3 *db, const char *source, int64_t *id, char **owner,
		     int64_t *size, lib_err *err)
{
	sqlite3_stmt *st;
	int rc;

	*owner = NULL;
	if (sqlite3_prepare_v2(db, "SELECT owner, size, id FROM documents"
			       " WHERE source = ?1", -1, &st, NULL) != SQLITE_OK)
		return lib_fail_sql(db, err, "prepare source");
	sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const char *o = (const char *)sqlite3_column_text(st, 0);
		*size = sqlite3_column_int64(st, 1);
		if (id)
			*id = sqlite3_column_int64(st, 2);
		rc = 1;
		if (o && !(*owner = strdup(o)))
			rc = lib_oom(err);
	} else {
		rc = rc == SQLITE_DONE ? 0 : lib_fail_sql(db, err, "read source");
	}
	sqlite3_finalize(st);
	return rc;
}

static int lib_exec_owner(sqlite3 *db, const char *sql, const char *owner,
			  int64_t now_ms, int64_t *changed, lib_err *err)
{
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return lib_fail_sql(db, err, "prepare release");
	sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
	if (sqlite3_bind_parameter_count(st) >= 2)
		sqlite3_bind_int64(st, 2, now_ms);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return lib_fail_sql(db, err, "release");
	if (changed)
		*changed = sqlite3_changes(db);
	return SDK_OK;
}

int lib_owner_release(sqlite3 *db, const char *owner, int64_t now_ms,
		      json_t **out, lib_err *err)
{
	int64_t docs = 0, jobs = 0;
	bool nested;
	int rc;

	if (!db || !owner || !*owner || !out)
		return sdk_fail(err, SDK_EINVAL, "missing argument");
	rc = lib_tx_begin(db, &nested, err);
	if (rc)
		return rc;
	rc = lib_exec_owner(db, "UPDATE documents SET owner = NULL WHERE owner = ?1",
			    owner, now_ms, &docs, err);
	if (!rc)
		rc = lib_exec_owner(db,
				    "UPDATE ingest_jobs SET state = 'cancelled',"
				    " error = 'its owner was deleted',"
				    " updated_ms = ?2, finished_ms = ?2"
				    " WHERE owner = ?1 AND state IN ('scanning', 'running')",
				    owner, now_ms, &jobs, err);
	/* A new user of the name must not find the old one's ingests. */
	if (!rc)
		rc = lib_exec_owner(db, "UPDATE ingest_jobs SET owner = NULL, admin = 0"
				    " WHERE owner = ?1", owner, now_ms, NULL, err);
	if (!rc)
		rc = lib_tx_commit(db, nested, err);
	else
		lib_tx_rollback(db, nested);
	if (rc)
		return rc;
	*out = json_pack("{s:s, s:I, s:I}", "owner", owner, "documents",
			 (json_int_t)docs, "ingests_cancelled", (json_int_t)jobs);
	return *out ? SDK_OK : lib_oom(err);
}
