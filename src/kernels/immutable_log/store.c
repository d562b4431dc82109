/* The immutable log's storage (see store.h).
 *
 * `entries` holds each entry's bytes exactly as hashed. `nodes` holds the
 * hash of every complete aligned subtree, level 0 being the leaf hashes: a
 * proof reads O(log n) of them instead of rehashing the log. Both are only
 * ever inserted into, inside one transaction per append, and triggers refuse
 * UPDATE and DELETE so that no code path (nor a careless hand in the sqlite3
 * shell) can rewrite history without first dropping them. Whoever does drop
 * them is caught by /verify. */
#include "sdk/err.h"
#include "store.h"

#include "sdk/db.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


#define ILOG_APPEND_ONLY(table) \
	"CREATE TRIGGER IF NOT EXISTS " table "_no_update BEFORE UPDATE ON " table \
	" BEGIN SELECT RAISE(ABORT, 'the immutable log is append-only'); END;" \
	"CREATE TRIGGER IF NOT EXISTS " table "_no_delete BEFORE DELETE ON " table \
	" BEGIN SELECT RAISE(ABORT, 'the immutable log is append-only'); END;"

/* Archival (docs/immutable-log.md "Archival") is the one way past the
 * triggers: an entry may be deleted only once a row of `archives` covers
 * its index, and that row is written in the same transaction. A bare
 * DELETE (the sqlite3 shell) still hits the trigger. `archives` itself is
 * append-only like the rest. */
#define ILOG_ARCHIVES_TABLE \
	"CREATE TABLE IF NOT EXISTS archives (" \
	"  end_idx INTEGER PRIMARY KEY CHECK (end_idx > 0)," \
	"  first INTEGER NOT NULL CHECK (first >= 0 AND first < end_idx)," \
	"  sha256 TEXT NOT NULL CHECK (length(sha256) = 64)," \
	"  file TEXT NOT NULL," \
	"  tree_size INTEGER NOT NULL," \
	"  created_at INTEGER NOT NULL" \
	");"
#define ILOG_ENTRIES_NO_DELETE \
	"CREATE TRIGGER IF NOT EXISTS entries_no_delete BEFORE DELETE ON entries" \
	" WHEN OLD.idx >= (SELECT coalesce(max(end_idx), 0) FROM archives)" \
	" BEGIN SELECT RAISE(ABORT, 'the immutable log is append-only'); END;"
#define ILOG_NO_UPDATE(table) \
	"CREATE TRIGGER IF NOT EXISTS " table "_no_update BEFORE UPDATE ON " table \
	" BEGIN SELECT RAISE(ABORT, 'the immutable log is append-only'); END;"

static const char ilog_schema[] =
	"CREATE TABLE IF NOT EXISTS entries ("
	"  idx INTEGER PRIMARY KEY CHECK (idx >= 0),"
	"  data BLOB NOT NULL,"
	"  kind TEXT NOT NULL CHECK (kind IN ('bytes', 'json')),"
	"  created_at INTEGER NOT NULL"
	");"
	"CREATE TABLE IF NOT EXISTS nodes ("
	"  level INTEGER NOT NULL CHECK (level BETWEEN 0 AND 63),"
	"  idx INTEGER NOT NULL CHECK (idx >= 0),"
	"  hash BLOB NOT NULL CHECK (length(hash) = 32),"
	"  PRIMARY KEY (level, idx)"
	") WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS tree_heads ("
	"  tree_size INTEGER PRIMARY KEY,"
	"  timestamp INTEGER NOT NULL,"
	"  root BLOB NOT NULL,"
	"  signature BLOB NOT NULL"
	");"
	"CREATE TABLE IF NOT EXISTS meta ("
	"  key TEXT PRIMARY KEY,"
	"  value BLOB NOT NULL"
	");"
	ILOG_ARCHIVES_TABLE
	ILOG_NO_UPDATE("entries")
	ILOG_ENTRIES_NO_DELETE
	ILOG_APPEND_ONLY("nodes")
	ILOG_APPEND_ONLY("tree_heads")
	ILOG_APPEND_ONLY("archives");

/* The steps of sdk/migrate.h, declared in immutable_log_kernel: 1 had
 * entries, nodes, tree_heads and meta; 2 added archives, and the DELETE
 * trigger of entries (made again by the schema above) lets through only
 * entries an archives row covers. */
const sdk_mig_step ilog_migrations[ILOG_SCHEMA_VERSION] = {
	{ .what = "(stamp: an unversioned file has version 1's tables)" },
	{ .sql = "DROP TRIGGER IF EXISTS entries_no_delete;",
	  .what = "(archives; entries deletable only where archived)" },
};

enum ilog_stmt {
	ILOG_SQL_INS_ENTRY,
	ILOG_SQL_INS_NODE,
	ILOG_SQL_GET_NODE,
	ILOG_SQL_GET_ENTRIES,
	ILOG_SQL_SIZE,
	ILOG_SQL_STH_SAVE,
	ILOG_SQL_STH_LATEST,
	ILOG_SQL_META_GET,
	ILOG_SQL_META_PUT,
	ILOG_SQL_ARCHIVED,
	ILOG_SQL_LOWEST,
	ILOG_SQL_ARCHIVE_OF,
	ILOG_SQL_ARCHIVE_INS,
	ILOG_SQL_REMOVE,
	ILOG_SQL_CREATED_AT,
	ILOG_SQL_N
};

static const char *const ilog_sql[ILOG_SQL_N] = {
	[ILOG_SQL_INS_ENTRY] = "INSERT INTO entries (idx, data, kind, created_at)"
			       " VALUES (?1, ?2, ?3, ?4)",
	[ILOG_SQL_INS_NODE] = "INSERT INTO nodes (level, idx, hash) VALUES (?1, ?2, ?3)",
	[ILOG_SQL_GET_NODE] = "SELECT hash FROM nodes WHERE level = ?1 AND idx = ?2",
	[ILOG_SQL_GET_ENTRIES] = "SELECT e.idx, e.data, e.kind, e.created_at, n.hash"
				 " FROM entries AS e LEFT JOIN nodes AS n"
				 " ON n.level = 0 AND n.idx = e.idx"
				 " WHERE e.idx >= ?1 AND e.idx < ?2 ORDER BY e.idx",
	/* Archived entries count: the tree never shrinks. */
	[ILOG_SQL_SIZE] = "SELECT max(coalesce((SELECT max(idx) + 1 FROM entries), 0),"
			  " coalesce((SELECT max(end_idx) FROM archives), 0))",
	[ILOG_SQL_STH_SAVE] = "INSERT OR IGNORE INTO tree_heads (tree_size, timestamp, root,"
			      " signature) VALUES (?1, ?2, ?3, ?4)",
	[ILOG_SQL_STH_LATEST] = "SELECT tree_size, timestamp, root, signature FROM tree_heads"
				" ORDER BY tree_size DESC LIMIT 1",
	[ILOG_SQL_META_GET] = "SELECT value FROM meta WHERE key = ?1",
	[ILOG_SQL_META_PUT] = "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
	[ILOG_SQL_ARCHIVED] = "SELECT coalesce(max(end_idx), 0), count(*) FROM archives",
	[ILOG_SQL_LOWEST] = "SELECT min(idx) FROM entries",
	[ILOG_SQL_ARCHIVE_OF] = "SELECT first, end_idx, sha256, file, tree_size, created_at"
				" FROM archives WHERE first <= ?1 AND end_idx > ?1",
	[ILOG_SQL_ARCHIVE_INS] = "INSERT INTO archives (first, end_idx, sha256, file, tree_size,"
				 " created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[ILOG_SQL_REMOVE] = "DELETE FROM entries WHERE idx >= ?1 AND idx < ?2",
	[ILOG_SQL_CREATED_AT] = "SELECT created_at FROM entries WHERE idx = ?1",
};

struct ilog_store {
	sqlite3 *db;
	sqlite3_stmt *st[ILOG_SQL_N];
	ilog_frontier frontier;
	uint64_t archived_before; /* entries below it are in archive files */
	uint64_t swept_before;    /* rows below it are deleted (<= archived_before) */
	uint64_t n_archives;
	char broken[256];
};

static int ilog_fail_sql(sqlite3 *db, sdk_err *err, const char *what)
{
	return sdk_db_fail(db, err, what);
}

/* A statement ready to bind: reset from its last use. */
static sqlite3_stmt *ilog_stmt(ilog_store *s, enum ilog_stmt which)
{
	sqlite3_stmt *st = s->st[which];
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return st;
}

static int ilog_exec(ilog_store *s, const char *sql, sdk_err *err)
{
	if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return ilog_fail_sql(s->db, err, sql);
	return 0;
}

/* ---- subtree hashes as a proof source */

struct ilog_node_read {
	ilog_store *s;
	sdk_err *err;
};

static int ilog_node_get(void *ctx, unsigned level, uint64_t index, ilog_hash out)
{
	struct ilog_node_read *r = ctx;
	sqlite3_stmt *st = ilog_stmt(r->s, ILOG_SQL_GET_NODE);
	sqlite3_bind_int(st, 1, (int)level);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)index);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_bytes(st, 0) == ILOG_HASH_BYTES) {
		memcpy(out, sqlite3_column_blob(st, 0), ILOG_HASH_BYTES);
		sqlite3_reset(st);
		return 0;
	}
	sqlite3_reset(st);
	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		return sdk_fail(r->err, SDK_ECORRUPT,
				 "the stored hash of leaves [%llu, %llu) is missing or malformed",
				 (unsigned long long)(index << level),
				 (unsigned long long)((index + 1) << level));
	return ilog_fail_sql(r->s->db, r->err, "reading a subtree hash");
}

static ilog_source ilog_source_of(struct ilog_node_read *r)
{
	return (ilog_source){ .node = ilog_node_get, .ctx = r };
}

/* ---- open and close */

/* Brings the file to ILOG_SCHEMA_VERSION (the runtime did already, from the
 * kernel's declaration: a no-op then, so the store stands alone), then
 * makes what is missing of the schema in one transaction. */
static int ilog_schema_migrate(sqlite3 *db, sdk_err *err)
{
	sdk_mig_def def = { .store = "immutable_log",
			    .version = ILOG_SCHEMA_VERSION,
			    .steps = ilog_migrations,
			    .n_steps = ILOG_SCHEMA_VERSION };
	int rc = sdk_mig_run(db, &def, NULL, err);
	if (rc)
		return rc;
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return ilog_fail_sql(db, err, "starting the schema transaction");
	if (sqlite3_exec(db, ilog_schema, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		rc = ilog_fail_sql(db, err, "creating the schema");
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return rc;
	}
	return 0;
}

static int ilog_archived_read(ilog_store *s, sdk_err *err)
{
	sqlite3_stmt *st = ilog_stmt(s, ILOG_SQL_ARCHIVED);
	if (sqlite3_step(st) != SQLITE_ROW) {
		int rc = ilog_fail_sql(s->db, err, "reading archives");
		sqlite3_reset(st);
		return rc;
	}
	sqlite3_int64 end = sqlite3_column_int64(st, 0), n = sqlite3_column_int64(st, 1);
	sqlite3_reset(st);
	s->archived_before = end > 0 ? (uint64_t)end : 0;
	s->n_archives = n > 0 ? (uint64_t)n : 0;
	/* Rows an archival removed logically but a kill left in the table are
	 * deleted by the sweep from the lowest one on. */
	st = ilog_stmt(s, ILOG_SQL_LOWEST);
	int rc = sqlite3_step(st) == SQLITE_ROW ? 0 : ilog_fail_sql(s->db, err, "reading entries");
	sqlite3_int64 low = rc || sqlite3_column_type(st, 0) == SQLITE_NULL
				    ? (sqlite3_int64)s->archived_before
				    : sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	s->swept_before = low > 0 && (uint64_t)low < s->archived_before ? (uint64_t)low
									: s->archived_before;
	return rc;
}

static int ilog_size_read(ilog_store *s, uint64_t *out, sdk_err *err)
{
	sqlite3_stmt *st = ilog_stmt(s, ILOG_SQL_SIZE);
	if (sqlite3_step(st) != SQLITE_ROW) {
		int rc = ilog_fail_sql(s->db, err, "counting entries");
		sqlite3_reset(st);
		return rc;
	}
	sqlite3_int64 n = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	*out = n > 0 ? (uint64_t)n : 0;
	return 0;
}

/* Signs of tampering that are cheap to see at start: a missing subtree, a
 * leaf hash beyond the last entry, a signed head larger than the log. */
static void ilog_check_tail(ilog_store *s, uint64_t size)
{
	sdk_err e;
	struct ilog_node_read r = { s, &e };
	ilog_source src = ilog_source_of(&r);
	if (ilog_frontier_load(&s->frontier, size, &src)) {
		snprintf(s->broken, sizeof s->broken, "%s", e.msg);
		ilog_frontier_init(&s->frontier);
		return;
	}
	ilog_hash h;
	if (ilog_node_get(&r, 0, size, h) == 0) {
		snprintf(s->broken, sizeof s->broken,
			 "a leaf hash exists for index %llu but the entry does not",
			 (unsigned long long)size);
		return;
	}
	ilog_sth sth;
	if (ilog_store_sth_latest(s, &sth, NULL) == 0 && sth.tree_size > size)
		snprintf(s->broken, sizeof s->broken,
			 "a signed tree head covers %llu entries but only %llu are stored",
			 (unsigned long long)sth.tree_size, (unsigned long long)size);
}

int ilog_store_open(sqlite3 *db, ilog_store **out, sdk_err *err)
{
	int rc = ilog_schema_migrate(db, err);
	if (rc)
		return rc;
	ilog_store *s = calloc(1, sizeof *s);
	if (!s)
		return sdk_fail(err, SDK_EIO, "out of memory");
	s->db = db;
	for (int i = 0; i < ILOG_SQL_N; i++) {
		if (sqlite3_prepare_v3(db, ilog_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i],
				       NULL) != SQLITE_OK) {
			rc = ilog_fail_sql(db, err, "preparing a statement");
			ilog_store_close(s);
			return rc;
		}
	}
	uint64_t size = 0;
	rc = ilog_archived_read(s, err);
	if (!rc)
		rc = ilog_size_read(s, &size, err);
	if (rc) {
		ilog_store_close(s);
		return rc;
	}
	ilog_check_tail(s, size);
	*out = s;
	return 0;
}

void ilog_store_close(ilog_store *s)
{
	if (!s)
		return;
	for (int i = 0; i < ILOG_SQL_N; i++)
		sqlite3_finalize(s->st[i]);
	free(s);
}

uint64_t ilog_store_size(const ilog_store *s) { return s->frontier.size; }

void ilog_store_root(const ilog_store *s, ilog_hash out)
{
	ilog_frontier_root(&s->frontier, out);
}

const char *ilog_store_broken(const ilog_store *s)
{
	return s->broken[0] ? s->broken : NULL;
}

/* ---- append */

struct ilog_append {
	ilog_store *s;
	sdk_err *err;
};

static int ilog_emit_node(void *ctx, unsigned level, uint64_t index, const ilog_hash hash)
{
	struct ilog_append *a = ctx;
	sqlite3_stmt *st = ilog_stmt(a->s, ILOG_SQL_INS_NODE);
	sqlite3_bind_int(st, 1, (int)level);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)index);
	sqlite3_bind_blob(st, 3, hash, ILOG_HASH_BYTES, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return ilog_fail_sql(a->s->db, a->err, "storing a subtree hash");
	return 0;
}

static int ilog_insert_entry(ilog_store *s, uint64_t index, const ilog_item *it, int64_t now_ms,
			     sdk_err *err)
{
	sqlite3_stmt *st = ilog_stmt(s, ILOG_SQL_INS_ENTRY);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)index);
	/* A zero-length blob must still be a blob, not NULL. */
	sqlite3_bind_blob64(st, 2, it->len ? (const void *)it->data : "", it->len, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, it->kind == ILOG_KIND_JSON ? "json" : "bytes", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, now_ms);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return ilog_fail_sql(s->db, err, "storing an entry");
	return 0;
}

/* Appends inside the caller's transaction, advancing `next`. */
static int ilog_append_tx(ilog_store *s, ilog_frontier *next, const ilog_item *items, size_t n,
			  int64_t now_ms, ilog_hash *leaf_hashes, sdk_err *err)
{
	struct ilog_append a = { s, err };
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		ilog_hash leaf;
		ilog_hash_leaf(items[i].data, items[i].len, leaf);
		if (leaf_hashes)
			memcpy(leaf_hashes[i], leaf, ILOG_HASH_BYTES);
		rc = ilog_insert_entry(s, next->size, &items[i], now_ms, err);
		if (!rc)
			rc = ilog_frontier_push(next, leaf, ilog_emit_node, &a);
	}
	return rc;
}

int ilog_store_append(ilog_store *s, const ilog_item *items, size_t n, int64_t now_ms,
		      uint64_t *first_index, ilog_hash *leaf_hashes, sdk_err *err)
{
	if (s->broken[0])
		return sdk_fail(err, SDK_ECORRUPT, "appends are refused: %s", s->broken);
	if (n == 0 || n > ILOG_BATCH_MAX)
		return sdk_fail(err, SDK_EINVAL, "a batch holds 1 to %u entries", ILOG_BATCH_MAX);
	int rc = ilog_exec(s, "BEGIN IMMEDIATE", err);
	if (rc)
		return rc;
	/* The frontier changes only once the transaction has committed. */
	ilog_frontier next = s->frontier;
	rc = ilog_append_tx(s, &next, items, n, now_ms, leaf_hashes, err);
	if (!rc)
		rc = ilog_exec(s, "COMMIT", err);
	if (rc) {
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		return rc < 0 ? rc : SDK_EIO;
	}
	*first_index = s->frontier.size;
	s->frontier = next;
	return 0;
}

/* ---- archival */

uint64_t ilog_store_archived(const ilog_store *s) { return s->archived_before; }

uint64_t ilog_store_archive_count(const ilog_store *s) { return s->n_archives; }

int ilog_store_archive_of(ilog_store *s, uint64_t index, json_t **out, sdk_err *err)
{
	sqlite3_stmt *st = ilog_stmt(s, ILOG_SQL_ARCHIVE_OF);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)index);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*out = json_pack("{s:I, s:I, s:s, s:s, s:I, s:I}", "first",
				 (json_int_t)sqlite3_column_int64(st, 0), "end",
				 (json_int_t)sqlite3_column_int64(st, 1), "sha256",
				 sdk_db_text(st, 2), "file", sdk_db_text(st, 3), "tree_size",
				 (json_int_t)sqlite3_column_int64(st, 4), "archived_at",
				 (json_int_t)sqlite3_column_int64(st, 5));
		sqlite3_reset(st);
		return *out ? 0 : sdk_fail(err, SDK_EIO, "out of memory");
	}
	sqlite3_reset(st);
	if (rc == SQLITE_DONE)
		return sdk_fail(err, SDK_ENOTFOUND, "entry %llu is in no archive",
				 (unsigned long long)index);
	return ilog_fail_sql(s->db, err, "reading archives");
}

int ilog_store_index_at(ilog_store *s, int64_t t_ms, uint64_t *out, sdk_err *err)
{
	/* Binary search on the primary key: O(log n) reads, no scan. */
	uint64_t lo = s->archived_before, hi = s->frontier.size;
	sqlite3_stmt *st = ilog_stmt(s, ILOG_SQL_CREATED_AT);
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, (sqlite3_int64)mid);
		int rc = sqlite3_step(st);
		if (rc != SQLITE_ROW) {
			sqlite3_reset(st);
			if (rc == SQLITE_DONE)
				return sdk_fail(err, SDK_ECORRUPT, "entry %llu is missing from storage",
						 (unsigned long long)mid);
			return ilog_fail_sql(s->db, err, "reading an entry's time");
		}
		if (sqlite3_column_int64(st, 0) < t_ms)
			lo = mid + 1;
		else
			hi = mid;
	}
	sqlite3_reset(st);
	*out = lo;
	return 0;
}

/* A test hook: GRACE_TEST_ILOG_REMOVE_STALL=END:MS sleeps MS inside the
 * transaction that removes a range ending at END, so a test can kill the
 * process there. */
static void ilog_remove_stall(uint64_t end)
{
	const char *env = getenv("GRACE_TEST_ILOG_REMOVE_STALL");
	unsigned long long at;
	long ms;
	if (env && sscanf(env, "%llu:%ld", &at, &ms) == 2 && at == end && ms > 0 && ms <= 60000) {
		struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
		nanosleep(&ts, NULL);
	}
}

static int ilog_meta_put_int(ilog_store *s, const char *key, int64_t v, sdk_err *err)
{
	char buf[24];
	int n = snprintf(buf, sizeof buf, "%lld", (long long)v);
	return ilog_store_meta_put(s, key, (const unsigned char *)buf, (size_t)n, err);
}

int ilog_store_remove(ilog_store *s, const ilog_archive_rec *a, const ilog_item *record,
		      int64_t now_ms, uint64_t *record_index, sdk_err *err)
{
	if (s->broken[0])
		return sdk_fail(err, SDK_ECORRUPT, "removal is refused: %s", s->broken);
	if (a->first != s->archived_before || a->end <= a->first || a->end > s->frontier.size)
		return sdk_fail(err, SDK_ECONFLICT,
				 "entries [%llu, %llu) cannot be removed: the next to archive"
				 " start at %llu and the log has %llu",
				 (unsigned long long)a->first, (unsigned long long)a->end,
				 (unsigned long long)s->archived_before,
				 (unsigned long long)s->frontier.size);
	int rc = ilog_exec(s, "BEGIN IMMEDIATE", err);
	if (rc)
		return rc;
	ilog_frontier next = s->frontier;
	sqlite3_stmt *st = ilog_stmt(s, ILOG_SQL_ARCHIVE_INS);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)a->first);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)a->end);
	sqlite3_bind_text(st, 3, a->sha256, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, a->file, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)a->tree_size);
	sqlite3_bind_int64(st, 6, now_ms);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : ilog_fail_sql(s->db, err, "recording the archive");
	sqlite3_reset(st);
	if (!rc)
		rc = ilog_meta_put_int(s, "archived_before", (int64_t)a->end, err);
	if (!rc)
		rc = ilog_store_meta_put(s, "archive_sha256", (const unsigned char *)a->sha256,
					 strlen(a->sha256), err);
	if (!rc)
		rc = ilog_meta_put_int(s, "archived_at", now_ms, err);
	if (!rc)
		rc = ilog_append_tx(s, &next, record, 1, now_ms, NULL, err);
	if (!rc) {
		ilog_remove_stall(a->end);
		rc = ilog_exec(s, "COMMIT", err);
	}
	if (rc) {
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		return rc < 0 ? rc : SDK_EIO;
	}
	*record_index = s->frontier.size;
	s->frontier = next;
	s->archived_before = a->end; /* the sweep goes on from swept_before */
	s->n_archives++;
	return 0;
}

int ilog_store_sweep(ilog_store *s, unsigned max_rows, bool *more, sdk_err *err)
{
	*more = false;
	if (s->broken[0] || s->swept_before >= s->archived_before)
		return 0;
	uint64_t end = s->swept_before + max_rows;
	if (end > s->archived_before)
		end = s->archived_before;
	sqlite3_stmt *st = ilog_stmt(s, ILOG_SQL_REMOVE);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)s->swept_before);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)end);
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : ilog_fail_sql(s->db, err, "removing entries");
	sqlite3_reset(st);
	if (rc)
		return rc;
	s->swept_before = end;
	*more = end < s->archived_before;
	return 0;
}

/* ---- reads */

char *ilog_canonical_json(const json_t *value)
{
	/* Sorted keys and no whitespace make the bytes a function of the value;
	 * UTF-8 is kept as is (only what JSON requires is escaped). */
	return json_dumps(value, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

static json_t *ilog_b64(const void *data, size_t len)
{
	size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
	char *buf = malloc(cap);
	if (!buf)
		return NULL;
	sodium_bin2base64(buf, cap, data, len, sodium_base64_VARIANT_ORIGINAL);
	json_t *j = json_string(buf);
	free(buf);
	return j;
}

static json_t *ilog_hex(const void *hash)
{
	char hex[2 * ILOG_HASH_BYTES + 1];
	ilog_hash_hex(hash, hex);
	return json_string(hex);
}

/* One row of ILOG_SQL_GET_ENTRIES as JSON. */
static json_t *ilog_entry_json(sqlite3_stmt *st)
{
	const void *data = sqlite3_column_blob(st, 1);
	size_t len = (size_t)sqlite3_column_bytes(st, 1);
	const char *kind = (const char *)sqlite3_column_text(st, 2);
	json_t *e = json_object();
	json_object_set_new(e, "index", json_integer(sqlite3_column_int64(st, 0)));
	if (sqlite3_column_bytes(st, 4) == ILOG_HASH_BYTES)
		json_object_set_new(e, "leaf_hash", ilog_hex(sqlite3_column_blob(st, 4)));
	else
		json_object_set_new(e, "leaf_hash", json_null());
	json_object_set_new(e, "timestamp", json_integer(sqlite3_column_int64(st, 3)));
	if (kind && !strcmp(kind, "json")) {
		json_t *v = json_loadb(data ? data : "", len, JSON_DECODE_ANY, NULL);
		if (v)
			json_object_set_new(e, "data", v);
	}
	json_object_set_new(e, "data_b64", ilog_b64(data ? data : "", len));
	return e;
}

int ilog_store_entries(ilog_store *s, uint64_t start, uint64_t end, json_t **out, sdk_err *err)
{
	if (start > end || end > s->frontier.size || end - start > ILOG_PAGE_MAX)
		return sdk_fail(err, SDK_EINVAL, "bad range [%llu, %llu) of a log of %llu",
				 (unsigned long long)start, (unsigned long long)end,
				 (unsigned long long)s->frontier.size);
	sqlite3_stmt *st = ilog_stmt(s, ILOG_SQL_GET_ENTRIES);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)start);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)end);
	json_t *arr = json_array();
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(arr, ilog_entry_json(st));
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		json_decref(arr);
		return ilog_fail_sql(s->db, err, "reading entries");
	}
	*out = arr;
	return 0;
}

int ilog_store_entry(ilog_store *s, uint64_t index, json_t **out, sdk_err *err)
{
	if (index >= s->frontier.size)
		return sdk_fail(err, SDK_ENOTFOUND, "no entry %llu: the log has %llu entries",
				 (unsigned long long)index, (unsigned long long)s->frontier.size);
	json_t *arr;
	int rc = ilog_store_entries(s, index, index + 1, &arr, err);
	if (rc)
		return rc;
	json_t *e = json_array_get(arr, 0);
	if (!e) {
		json_decref(arr);
		return sdk_fail(err, SDK_ECORRUPT, "entry %llu is missing from storage",
				 (unsigned long long)index);
	}
	*out = json_incref(e);
	json_decref(arr);
	return 0;
}

static int ilog_check_size(const ilog_store *s, const char *what, uint64_t tree_size,
			   sdk_err *err)
{
	if (s->frontier.size == 0)
		return sdk_fail(err, SDK_EINVAL, "the log is empty: no tree size has proofs yet");
	if (tree_size == 0 || tree_size > s->frontier.size)
		return sdk_fail(err, SDK_EINVAL, "%s %llu is not a tree size of this log (1 to %llu)",
				 what, (unsigned long long)tree_size,
				 (unsigned long long)s->frontier.size);
	return 0;
}

int ilog_store_root_at(ilog_store *s, uint64_t tree_size, ilog_hash out, sdk_err *err)
{
	if (tree_size == s->frontier.size) {
		ilog_frontier_root(&s->frontier, out);
		return 0;
	}
	int rc = ilog_check_size(s, "tree_size", tree_size, err);
	if (rc)
		return rc;
	struct ilog_node_read r = { s, err };
	ilog_source src = ilog_source_of(&r);
	return ilog_range_hash(&src, 0, tree_size, out);
}

int ilog_store_leaf_hash(ilog_store *s, uint64_t index, ilog_hash out, sdk_err *err)
{
	if (index >= s->frontier.size)
		return sdk_fail(err, SDK_EINVAL, "index %llu is past the tree size %llu",
				 (unsigned long long)index, (unsigned long long)s->frontier.size);
	struct ilog_node_read r = { s, err };
	return ilog_node_get(&r, 0, index, out);
}

int ilog_store_inclusion(ilog_store *s, uint64_t index, uint64_t tree_size,
			 ilog_hash path[ILOG_PROOF_MAX], size_t *n, sdk_err *err)
{
	int rc = ilog_check_size(s, "tree_size", tree_size, err);
	if (rc)
		return rc;
	if (index >= tree_size)
		return sdk_fail(err, SDK_EINVAL, "index %llu is past the tree size %llu",
				 (unsigned long long)index, (unsigned long long)tree_size);
	struct ilog_node_read r = { s, err };
	ilog_source src = ilog_source_of(&r);
	return ilog_inclusion_proof(&src, index, tree_size, path, n);
}

int ilog_store_consistency(ilog_store *s, uint64_t first, uint64_t second,
			   ilog_hash proof[ILOG_PROOF_MAX], size_t *n, sdk_err *err)
{
	int rc = ilog_check_size(s, "second", second, err);
	if (!rc)
		rc = ilog_check_size(s, "first", first, err);
	if (rc)
		return rc;
	if (first > second)
		return sdk_fail(err, SDK_EINVAL, "first (%llu) is larger than second (%llu)",
				 (unsigned long long)first, (unsigned long long)second);
	struct ilog_node_read r = { s, err };
	ilog_source src = ilog_source_of(&r);
	return ilog_consistency_proof(&src, first, second, proof, n);
}

/* ---- tree heads */

static void ilog_put_be64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

void ilog_sth_message(const ilog_sth *h, unsigned char out[ILOG_STH_MESSAGE_BYTES])
{
	out[0] = 0; /* Version v1 */
	out[1] = 1; /* SignatureType tree_hash */
	ilog_put_be64(out + 2, h->timestamp_ms);
	ilog_put_be64(out + 10, h->tree_size);
	memcpy(out + 18, h->root, ILOG_HASH_BYTES);
}

int ilog_store_sth_save(ilog_store *s, const ilog_sth *h, sdk_err *err)
{
	sqlite3_stmt *st = ilog_stmt(s, ILOG_SQL_STH_SAVE);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)h->tree_size);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)h->timestamp_ms);
	sqlite3_bind_blob(st, 3, h->root, ILOG_HASH_BYTES, SQLITE_STATIC);
	sqlite3_bind_blob(st, 4, h->signature, sizeof h->signature, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return ilog_fail_sql(s->db, err, "storing a tree head");
	return 0;
}

int ilog_store_sth_latest(ilog_store *s, ilog_sth *out, sdk_err *err)
{
	sqlite3_stmt *st = ilog_stmt(s, ILOG_SQL_STH_LATEST);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_bytes(st, 2) == ILOG_HASH_BYTES &&
	    sqlite3_column_bytes(st, 3) == crypto_sign_BYTES) {
		out->tree_size = (uint64_t)sqlite3_column_int64(st, 0);
		out->timestamp_ms = (uint64_t)sqlite3_column_int64(st, 1);
		memcpy(out->root, sqlite3_column_blob(st, 2), ILOG_HASH_BYTES);
		memcpy(out->signature, sqlite3_column_blob(st, 3), crypto_sign_BYTES);
		sqlite3_reset(st);
		return 0;
	}
	sqlite3_reset(st);
	if (rc == SQLITE_DONE)
		return sdk_fail(err, SDK_ENOTFOUND, "no tree head has been signed yet");
	if (rc == SQLITE_ROW)
		return sdk_fail(err, SDK_ECORRUPT, "the latest tree head is malformed");
	return ilog_fail_sql(s->db, err, "reading the latest tree head");
}

/* ---- meta */

int ilog_store_meta_get(ilog_store *s, const char *key, unsigned char *out, size_t len,
			sdk_err *err)
{
	sqlite3_stmt *st = ilog_stmt(s, ILOG_SQL_META_GET);
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && (size_t)sqlite3_column_bytes(st, 0) == len) {
		memcpy(out, sqlite3_column_blob(st, 0), len);
		sqlite3_reset(st);
		return 0;
	}
	sqlite3_reset(st);
	if (rc == SQLITE_DONE)
		return sdk_fail(err, SDK_ENOTFOUND, "no %s recorded", key);
	if (rc == SQLITE_ROW)
		return sdk_fail(err, SDK_ECORRUPT, "the recorded %s has the wrong size", key);
	return ilog_fail_sql(s->db, err, "reading meta");
}

int ilog_store_meta_put(ilog_store *s, const char *key, const unsigned char *val, size_t len,
			sdk_err *err)
{
	sqlite3_stmt *st = ilog_stmt(s, ILOG_SQL_META_PUT);
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, val, (int)len, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return ilog_fail_sql(s->db, err, "writing meta");
	return 0;
}
