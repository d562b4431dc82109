/* Full verification of the immutable log (see store.h).
 *
 * One pass over the entries in index order rebuilds the tree with a
 * frontier; every subtree the rebuild completes is compared with the stored
 * one through one cursor per level (the stored nodes of a level come out in
 * index order, exactly the order the rebuild produces them), and every stored
 * tree head is checked when the rebuild reaches its size. All reads are
 * sequential, so a million entries take one scan, and the work is cut into
 * steps so the kernel's event loop keeps answering in between. */
#include "store.h"

#include "sdk/db.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ILOG_VERIFY_BUSY_MS 2000

struct ilog_verify {
	sqlite3 *db;
	sqlite3_stmt *entries;
	sqlite3_stmt *archived; /* leaf hashes of archived entries */
	sqlite3_stmt *heads;
	sqlite3_stmt *levels[ILOG_LEVELS_MAX];
	unsigned char public_key[crypto_sign_PUBLICKEYBYTES];
	uint64_t mem_size;
	ilog_hash mem_root;
	uint64_t total; /* entries in the snapshot: largest index + 1 */
	uint64_t archived_before; /* entries below: checked by their kept leaf hashes */
	ilog_frontier f;
	ilog_sth head; /* the next stored head, when have_head */
	bool have_head;
	uint64_t heads_checked;
	uint64_t last_good_head; /* entries below this are covered by a matching head */
	bool done, failed;
	bool bad_index_known;
	uint64_t bad_index;
	char reason[320];
	sdk_err *err; /* of the step in progress, for I/O failures */
};

__attribute__((format(printf, 4, 5)))
static void ilog_verify_fail(ilog_verify *v, bool known, uint64_t index, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(v->reason, sizeof v->reason, fmt, ap);
	va_end(ap);
	v->failed = v->done = true;
	v->bad_index_known = known;
	v->bad_index = index;
}

static int ilog_verify_io(ilog_verify *v, sdk_err *err, const char *what)
{
	return sdk_db_fail(v->db, err, what);
}

static int ilog_verify_next_head(ilog_verify *v, sdk_err *err)
{
	int rc = sqlite3_step(v->heads);
	if (rc == SQLITE_DONE) {
		v->have_head = false;
		return 0;
	}
	if (rc != SQLITE_ROW)
		return ilog_verify_io(v, err, "reading tree heads");
	v->have_head = true;
	sqlite3_int64 size = sqlite3_column_int64(v->heads, 0);
	v->head.tree_size = size > 0 ? (uint64_t)size : 0;
	v->head.timestamp_ms = (uint64_t)sqlite3_column_int64(v->heads, 1);
	/* A malformed root or signature simply fails the comparison below. */
	memset(v->head.root, 0, ILOG_HASH_BYTES);
	memset(v->head.signature, 0, sizeof v->head.signature);
	if (sqlite3_column_bytes(v->heads, 2) == ILOG_HASH_BYTES)
		memcpy(v->head.root, sqlite3_column_blob(v->heads, 2), ILOG_HASH_BYTES);
	if (sqlite3_column_bytes(v->heads, 3) == crypto_sign_BYTES)
		memcpy(v->head.signature, sqlite3_column_blob(v->heads, 3), crypto_sign_BYTES);
	return 0;
}

/* Checks every stored head of the size the rebuild has reached. */
static int ilog_verify_heads(ilog_verify *v, sdk_err *err)
{
	while (v->have_head && v->head.tree_size == v->f.size) {
		unsigned char msg[ILOG_STH_MESSAGE_BYTES];
		ilog_sth_message(&v->head, msg);
		if (crypto_sign_verify_detached(v->head.signature, msg, sizeof msg, v->public_key)) {
			ilog_verify_fail(v, false, 0,
					 "the stored tree head of size %llu has a bad signature",
					 (unsigned long long)v->head.tree_size);
			return 0;
		}
		ilog_hash root;
		ilog_frontier_root(&v->f, root);
		if (sodium_memcmp(root, v->head.root, ILOG_HASH_BYTES)) {
			ilog_verify_fail(v, true, v->last_good_head,
					 "entries [%llu, %llu) no longer produce the signed tree head"
					 " of size %llu: the log was rewritten there",
					 (unsigned long long)v->last_good_head,
					 (unsigned long long)v->head.tree_size,
					 (unsigned long long)v->head.tree_size);
			return 0;
		}
		v->heads_checked++;
		v->last_good_head = v->head.tree_size;
		int rc = ilog_verify_next_head(v, err);
		if (rc)
			return rc;
	}
	return 0;
}

static sqlite3_stmt *ilog_verify_level(ilog_verify *v, unsigned level)
{
	if (!v->levels[level]) {
		if (sqlite3_prepare_v2(v->db,
				       "SELECT idx, hash FROM nodes WHERE level = ?1 ORDER BY idx",
				       -1, &v->levels[level], NULL) != SQLITE_OK)
			return NULL;
		sqlite3_bind_int(v->levels[level], 1, (int)level);
	}
	return v->levels[level];
}

/* The rebuild completed node (level, index): the next stored node of that
 * level must be this one, with this hash. */
static int ilog_verify_emit(void *ctx, unsigned level, uint64_t index, const ilog_hash hash)
{
	ilog_verify *v = ctx;
	sqlite3_stmt *st = ilog_verify_level(v, level);
	if (!st)
		return ilog_verify_io(v, v->err, "preparing a node scan");
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return ilog_verify_io(v, v->err, "reading subtree hashes");
	bool present = rc == SQLITE_ROW && (uint64_t)sqlite3_column_int64(st, 0) == index &&
		       sqlite3_column_bytes(st, 1) == ILOG_HASH_BYTES;
	if (present && !sodium_memcmp(sqlite3_column_blob(st, 1), hash, ILOG_HASH_BYTES))
		return 0;
	uint64_t lo = index << level, hi = (index + 1) << level;
	if (level == 0 && present) {
		char want[2 * ILOG_HASH_BYTES + 1], got[2 * ILOG_HASH_BYTES + 1];
		ilog_hash_hex(sqlite3_column_blob(st, 1), want);
		ilog_hash_hex(hash, got);
		ilog_verify_fail(v, true, index,
				 "entry %llu no longer matches its leaf hash: its bytes hash to %s,"
				 " the tree holds %s",
				 (unsigned long long)index, got, want);
	} else if (level == 0) {
		ilog_verify_fail(v, true, index, "the leaf hash of entry %llu is missing",
				 (unsigned long long)index);
	} else if (present) {
		ilog_verify_fail(v, true, lo,
				 "the stored hash of entries [%llu, %llu) does not match them",
				 (unsigned long long)lo, (unsigned long long)hi);
	} else {
		ilog_verify_fail(v, true, lo, "the stored hash of entries [%llu, %llu) is missing",
				 (unsigned long long)lo, (unsigned long long)hi);
	}
	return 1; /* stops the push; the failure is recorded */
}

int ilog_verify_begin(const char *db_path,
		      const unsigned char public_key[crypto_sign_PUBLICKEYBYTES],
		      uint64_t mem_size, const ilog_hash mem_root, ilog_verify **out, sdk_err *err)
{
	ilog_verify *v = calloc(1, sizeof *v);
	if (!v) {
		snprintf(err->msg, sizeof err->msg, "out of memory");
		return SDK_EIO;
	}
	memcpy(v->public_key, public_key, sizeof v->public_key);
	v->mem_size = mem_size;
	memcpy(v->mem_root, mem_root, ILOG_HASH_BYTES);
	ilog_frontier_init(&v->f);
	int rc = SDK_EIO;
	if (sqlite3_open_v2(db_path, &v->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
	    SQLITE_OK) {
		rc = ilog_verify_io(v, err, db_path);
		goto fail;
	}
	sqlite3_busy_timeout(v->db, ILOG_VERIFY_BUSY_MS);
	/* One read transaction: every statement below sees the same snapshot,
	 * whatever is appended while the steps run. */
	sqlite3_stmt *count = NULL;
	if (sqlite3_exec(v->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(v->db,
			       "SELECT coalesce((SELECT max(idx) + 1 FROM entries), 0),"
			       " coalesce((SELECT max(end_idx) FROM archives), 0)",
			       -1, &count, NULL) != SQLITE_OK ||
	    sqlite3_step(count) != SQLITE_ROW) {
		rc = ilog_verify_io(v, err, "starting the snapshot");
		sqlite3_finalize(count);
		goto fail;
	}
	sqlite3_int64 total = sqlite3_column_int64(count, 0);
	sqlite3_int64 archived = sqlite3_column_int64(count, 1);
	v->archived_before = archived > 0 ? (uint64_t)archived : 0;
	v->total = total > 0 ? (uint64_t)total : 0;
	if (v->total < v->archived_before)
		v->total = v->archived_before;
	sqlite3_finalize(count);
	if (sqlite3_prepare_v2(v->db, "SELECT idx, data FROM entries WHERE idx >= ?1 ORDER BY idx",
			       -1, &v->entries, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(v->db,
			       "SELECT idx, hash FROM nodes WHERE level = 0 AND idx < ?1"
			       " ORDER BY idx",
			       -1, &v->archived, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(v->db,
			       "SELECT tree_size, timestamp, root, signature FROM tree_heads"
			       " ORDER BY tree_size",
			       -1, &v->heads, NULL) != SQLITE_OK) {
		rc = ilog_verify_io(v, err, "preparing the scan");
		goto fail;
	}
	sqlite3_bind_int64(v->entries, 1, (sqlite3_int64)v->archived_before);
	sqlite3_bind_int64(v->archived, 1, (sqlite3_int64)v->archived_before);
	rc = ilog_verify_next_head(v, err);
	if (rc)
		goto fail;
	*out = v;
	return 0;
fail:
	ilog_verify_free(v);
	return rc;
}

/* Everything after the last entry: heads past it, leaf hashes past it, and
 * the running log's own idea of the tree. */
static int ilog_verify_finish(ilog_verify *v, sdk_err *err)
{
	v->done = true;
	if (v->have_head) {
		ilog_verify_fail(v, true, v->f.size,
				 "a signed tree head covers %llu entries but only %llu are stored",
				 (unsigned long long)v->head.tree_size,
				 (unsigned long long)v->f.size);
		return 0;
	}
	sqlite3_stmt *leaves = ilog_verify_level(v, 0);
	if (!leaves)
		return ilog_verify_io(v, err, "preparing a node scan");
	int rc = sqlite3_step(leaves);
	if (rc == SQLITE_ROW) {
		ilog_verify_fail(v, true, v->f.size,
				 "leaf hashes exist past entry %llu: entries were removed",
				 (unsigned long long)v->f.size);
		return 0;
	}
	if (rc != SQLITE_DONE)
		return ilog_verify_io(v, err, "reading subtree hashes");
	if (v->mem_size != v->f.size) {
		uint64_t lo = v->mem_size < v->f.size ? v->mem_size : v->f.size;
		ilog_verify_fail(v, true, lo,
				 "storage holds %llu entries but the running log has %llu",
				 (unsigned long long)v->f.size, (unsigned long long)v->mem_size);
		return 0;
	}
	ilog_hash root;
	ilog_frontier_root(&v->f, root);
	if (sodium_memcmp(root, v->mem_root, ILOG_HASH_BYTES))
		ilog_verify_fail(v, false, 0,
				 "the entries produce a root the running log never had: the"
				 " stored tree was rewritten");
	return 0;
}

int ilog_verify_step(ilog_verify *v, unsigned budget, sdk_err *err)
{
	if (v->done)
		return 1;
	v->err = err;
	int rc = ilog_verify_heads(v, err);
	for (unsigned i = 0; !rc && !v->done && i < budget; i++) {
		/* Archived entries have no bytes left: their kept leaf hashes
		 * rebuild every subtree above them, which is checked as usual. */
		bool archived = v->f.size < v->archived_before;
		sqlite3_stmt *cur = archived ? v->archived : v->entries;
		int step = sqlite3_step(cur);
		if (step == SQLITE_DONE && !archived) {
			rc = ilog_verify_finish(v, err);
			break;
		}
		if (step != SQLITE_ROW && step != SQLITE_DONE) {
			rc = ilog_verify_io(v, err, "reading entries");
			break;
		}
		sqlite3_int64 idx = step == SQLITE_ROW ? sqlite3_column_int64(cur, 0) : -1;
		if (idx < 0 || (uint64_t)idx != v->f.size) {
			ilog_verify_fail(v, true, v->f.size,
					 archived ? "the kept leaf hash of archived entry %llu is"
						    " missing"
						  : "entry %llu is missing",
					 (unsigned long long)v->f.size);
			break;
		}
		ilog_hash leaf;
		if (archived) {
			if (sqlite3_column_bytes(cur, 1) != ILOG_HASH_BYTES) {
				ilog_verify_fail(v, true, v->f.size,
						 "the kept leaf hash of archived entry %llu is"
						 " malformed",
						 (unsigned long long)v->f.size);
				break;
			}
			memcpy(leaf, sqlite3_column_blob(cur, 1), ILOG_HASH_BYTES);
		} else {
			const void *data = sqlite3_column_blob(cur, 1);
			size_t len = (size_t)sqlite3_column_bytes(cur, 1);
			ilog_hash_leaf(data ? data : "", len, leaf);
		}
		int push = ilog_frontier_push(&v->f, leaf, ilog_verify_emit, v);
		if (push < 0)
			rc = push;
		else if (!push)
			rc = ilog_verify_heads(v, err);
	}
	v->err = NULL;
	if (rc)
		return rc;
	return v->done ? 1 : 0;
}

json_t *ilog_verify_report(const ilog_verify *v)
{
	json_t *r = json_object();
	json_object_set_new(r, "ok", json_boolean(!v->failed));
	if (v->failed) {
		json_object_set_new(r, "first_bad_index", v->bad_index_known ?
					   json_integer((json_int_t)v->bad_index) : json_null());
		json_object_set_new(r, "reason", json_string(v->reason));
	} else {
		char hex[2 * ILOG_HASH_BYTES + 1];
		ilog_hash root;
		ilog_frontier_root(&v->f, root);
		ilog_hash_hex(root, hex);
		json_object_set_new(r, "root_hash", json_string(hex));
	}
	json_object_set_new(r, "tree_size", json_integer((json_int_t)v->total));
	json_object_set_new(r, "entries_checked", json_integer((json_int_t)v->f.size));
	/* Of those, the archived ones were checked by their kept leaf hashes. */
	json_object_set_new(r, "archived_entries", json_integer((json_int_t)v->archived_before));
	json_object_set_new(r, "tree_heads_checked", json_integer((json_int_t)v->heads_checked));
	return r;
}

void ilog_verify_free(ilog_verify *v)
{
	if (!v)
		return;
	sqlite3_finalize(v->entries);
	sqlite3_finalize(v->archived);
	sqlite3_finalize(v->heads);
	for (unsigned i = 0; i < ILOG_LEVELS_MAX; i++)
		sqlite3_finalize(v->levels[i]);
	if (v->db)
		sqlite3_close(v->db);
	free(v);
}
