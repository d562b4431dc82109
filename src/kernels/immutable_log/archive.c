/* Writing and checking archive files (see archive.h). Runs on a worker
 * thread with a read-only connection of its own: one snapshot of the file,
 * while the log keeps appending on the loop. */
#include "archive.h"

#include "sdk/db.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ILOG_ARCHIVE_BUSY_MS 5000

void ilog_archive_name(uint64_t first, uint64_t end, char out[ILOG_ARCHIVE_NAME_MAX])
{
	snprintf(out, ILOG_ARCHIVE_NAME_MAX, "immutable_log-%020llu-%020llu.jsonl",
		 (unsigned long long)first, (unsigned long long)end);
}

bool ilog_archive_name_ok(const char *name)
{
	unsigned long long a, b;
	int n = 0;
	if (strlen(name) >= ILOG_ARCHIVE_NAME_MAX ||
	    sscanf(name, "immutable_log-%20llu-%20llu.jsonl%n", &a, &b, &n) != 2 ||
	    (size_t)n != strlen(name))
		return false;
	char want[ILOG_ARCHIVE_NAME_MAX];
	ilog_archive_name(a, b, want);
	return !strcmp(want, name);
}

static void ilog_hex_of(const unsigned char *h, char out[2 * ILOG_HASH_BYTES + 1])
{
	ilog_hash_hex(h, out);
}

static json_t *ilog_hex_j(const unsigned char *h)
{
	char hex[2 * ILOG_HASH_BYTES + 1];
	ilog_hex_of(h, hex);
	return json_string(hex);
}

static json_t *ilog_b64_j(const void *data, size_t len)
{
	size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
	char *buf = malloc(cap);
	if (!buf)
		return NULL;
	sodium_bin2base64(buf, cap, len ? data : (const void *)"", len,
			  sodium_base64_VARIANT_ORIGINAL);
	json_t *j = json_string(buf);
	free(buf);
	return j;
}

/* ---- the writer: hashes everything it writes */

struct ilog_out {
	FILE *f;
	crypto_hash_sha256_state whole;
	uint64_t bytes;
};

static int ilog_out_line(struct ilog_out *o, json_t *line, sdk_err *err)
{
	char *text = json_dumps(line, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(line);
	if (!text)
		return sdk_fail(err, SDK_EIO, "out of memory");
	size_t len = strlen(text);
	text[len] = '\n'; /* json_dumps' NUL becomes the line's end */
	size_t put = fwrite(text, 1, len + 1, o->f);
	if (put == len + 1)
		crypto_hash_sha256_update(&o->whole, (const unsigned char *)text, len + 1);
	free(text);
	o->bytes += put;
	if (put != len + 1)
		return sdk_fail(err, errno == ENOSPC ? SDK_EFULL : SDK_EIO,
				 "writing the archive: %s", strerror(errno));
	return 0;
}

/* ---- subtree hashes, from the worker's own connection */

/* Proofs of consecutive leaves share nearly every node: the last node read
 * at each level is kept, so an archive reads about two per entry instead
 * of a whole path. */
struct ilog_rnodes {
	sqlite3 *db;
	sqlite3_stmt *get;
	sdk_err *err;
	struct {
		bool valid;
		uint64_t index;
		ilog_hash hash;
	} last[ILOG_LEVELS_MAX];
};

static int ilog_rnode(void *ctx, unsigned level, uint64_t index, ilog_hash out)
{
	struct ilog_rnodes *r = ctx;
	if (level < ILOG_LEVELS_MAX && r->last[level].valid && r->last[level].index == index) {
		memcpy(out, r->last[level].hash, ILOG_HASH_BYTES);
		return 0;
	}
	sqlite3_reset(r->get);
	sqlite3_bind_int(r->get, 1, (int)level);
	sqlite3_bind_int64(r->get, 2, (sqlite3_int64)index);
	int rc = sqlite3_step(r->get);
	if (rc == SQLITE_ROW && sqlite3_column_bytes(r->get, 0) == ILOG_HASH_BYTES) {
		memcpy(out, sqlite3_column_blob(r->get, 0), ILOG_HASH_BYTES);
		if (level < ILOG_LEVELS_MAX) {
			r->last[level].valid = true;
			r->last[level].index = index;
			memcpy(r->last[level].hash, out, ILOG_HASH_BYTES);
		}
		return 0;
	}
	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		return sdk_fail(r->err, SDK_ECORRUPT,
				 "the stored hash of leaves [%llu, %llu) is missing or malformed",
				 (unsigned long long)(index << level),
				 (unsigned long long)((index + 1) << level));
	return sdk_db_fail(r->db, r->err, "reading a subtree hash");
}

static json_t *ilog_head_json(const ilog_export *x)
{
	ilog_hash key_id;
	crypto_hash_sha256(key_id, x->public_key, sizeof x->public_key);
	return json_pack("{s:I, s:I, s:o, s:o, s:s, s:o, s:o}", "tree_size",
			 (json_int_t)x->head.tree_size, "timestamp",
			 (json_int_t)x->head.timestamp_ms, "root_hash", ilog_hex_j(x->head.root),
			 "signature", ilog_b64_j(x->head.signature, sizeof x->head.signature),
			 "algorithm", "ed25519", "public_key",
			 ilog_b64_j(x->public_key, sizeof x->public_key), "key_id",
			 ilog_hex_j(key_id));
}

/* One entry line; checks the stored bytes still hash to the kept leaf. */
static int ilog_entry_line(ilog_export *x, struct ilog_out *o, struct ilog_rnodes *r,
			   sqlite3_stmt *st, uint64_t want)
{
	sqlite3_int64 idx = sqlite3_column_int64(st, 0);
	if (idx < 0 || (uint64_t)idx != want)
		return sdk_fail(&x->err, SDK_ECORRUPT, "entry %llu is missing from storage",
				 (unsigned long long)want);
	const void *data = sqlite3_column_blob(st, 1);
	size_t len = (size_t)sqlite3_column_bytes(st, 1);
	ilog_hash leaf, kept;
	ilog_hash_leaf(data ? data : "", len, leaf);
	int rc = ilog_rnode(r, 0, want, kept);
	if (rc)
		return rc;
	if (sodium_memcmp(leaf, kept, ILOG_HASH_BYTES))
		return sdk_fail(&x->err, SDK_ECORRUPT,
				 "entry %llu no longer matches its leaf hash: refusing to archive"
				 " it (run /verify)",
				 (unsigned long long)want);
	ilog_hash path[ILOG_PROOF_MAX];
	size_t n = 0;
	ilog_source src = { .node = ilog_rnode, .ctx = r };
	rc = ilog_inclusion_proof(&src, want, x->head.tree_size, path, &n);
	if (rc)
		return rc;
	json_t *proof = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(proof, ilog_hex_j(path[i]));
	const char *kind = sdk_db_text(st, 2);
	return ilog_out_line(o,
			     json_pack("{s:I, s:s, s:I, s:o, s:o, s:o}", "index", (json_int_t)want,
				       "kind", kind, "timestamp",
				       (json_int_t)sqlite3_column_int64(st, 3), "leaf_hash",
				       ilog_hex_j(leaf), "data_b64", ilog_b64_j(data, len),
				       "audit_path", proof),
			     &x->err);
}

static int ilog_write_body(ilog_export *x, sqlite3 *db, struct ilog_out *o)
{
	struct ilog_rnodes r = { .db = db, .err = &x->err }; /* 3 KiB: a worker's stack */
	sqlite3_stmt *st = NULL;
	int rc = 0;
	if (sqlite3_prepare_v2(db, "SELECT hash FROM nodes WHERE level = ?1 AND idx = ?2", -1,
			       &r.get, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db,
			       "SELECT idx, data, kind, created_at FROM entries"
			       " WHERE idx >= ?1 AND idx < ?2 ORDER BY idx",
			       -1, &st, NULL) != SQLITE_OK) {
		rc = sdk_db_fail(db, &x->err, "preparing the archive's reads");
		goto out;
	}
	rc = ilog_out_line(o,
			   json_pack("{s:s, s:I, s:I, s:I, s:s, s:o}", "format",
				     ILOG_ARCHIVE_FORMAT, "first", (json_int_t)x->first, "end",
				     (json_int_t)x->end, "created_at", (json_int_t)x->now_ms,
				     "hashing", "RFC 6962 (SHA-256)", "tree_head", ilog_head_json(x)),
			   &x->err);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)x->first);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)x->end);
	uint64_t next = x->first;
	while (!rc && next < x->end) {
		int step = sqlite3_step(st);
		if (step == SQLITE_ROW)
			rc = ilog_entry_line(x, o, &r, st, next++);
		else if (step == SQLITE_DONE)
			rc = sdk_fail(&x->err, SDK_ECORRUPT, "entry %llu is missing from storage",
				      (unsigned long long)next);
		else
			rc = sdk_db_fail(db, &x->err, "reading entries");
	}
	if (!rc) {
		/* The manifest covers every byte above it. */
		crypto_hash_sha256_state copy = o->whole;
		ilog_hash content;
		crypto_hash_sha256_final(&copy, content);
		rc = ilog_out_line(o,
				   json_pack("{s:{s:s, s:I, s:I, s:I, s:I, s:I, s:o}}", "manifest",
					     "format", ILOG_ARCHIVE_FORMAT, "first",
					     (json_int_t)x->first, "end", (json_int_t)x->end,
					     "entries", (json_int_t)(x->end - x->first), "tree_size",
					     (json_int_t)x->head.tree_size, "content_bytes",
					     (json_int_t)o->bytes, "content_sha256",
					     ilog_hex_j(content)),
				   &x->err);
	}
out:
	sqlite3_finalize(st);
	sqlite3_finalize(r.get);
	return rc;
}

static int ilog_sync_dir(const char *dir, sdk_err *err)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return sdk_fail(err, SDK_EIO, "syncing %s: %s", dir, strerror(e));
	}
	close(fd);
	return 0;
}

static int ilog_export_write(ilog_export *x)
{
	char path[PATH_MAX + ILOG_ARCHIVE_NAME_MAX + 8], tmp[sizeof path + 8];
	snprintf(path, sizeof path, "%s/%s", x->dir, x->file);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	sqlite3 *db = NULL;
	struct ilog_out o = { 0 };
	crypto_hash_sha256_init(&o.whole);
	int rc = 0;
	if (sqlite3_open_v2(x->db_path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
		    SQLITE_OK ||
	    (sqlite3_busy_timeout(db, ILOG_ARCHIVE_BUSY_MS),
	     sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)) {
		rc = sdk_db_fail(db, &x->err, "opening the log for the archive");
		goto out;
	}
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	o.f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!o.f) {
		rc = sdk_fail(&x->err, errno == ENOSPC ? SDK_EFULL : SDK_EIO, "creating %s: %s",
			      tmp, strerror(errno));
		if (fd >= 0)
			close(fd);
		goto out;
	}
	rc = ilog_write_body(x, db, &o);
	if (!rc && (fflush(o.f) != 0 || fsync(fileno(o.f)) != 0))
		rc = sdk_fail(&x->err, errno == ENOSPC ? SDK_EFULL : SDK_EIO,
			      "writing the archive: %s", strerror(errno));
	if (fclose(o.f) != 0 && !rc)
		rc = sdk_fail(&x->err, SDK_EIO, "writing the archive: %s", strerror(errno));
	if (!rc && rename(tmp, path) != 0)
		rc = sdk_fail(&x->err, SDK_EIO, "renaming the archive: %s", strerror(errno));
	if (!rc)
		rc = ilog_sync_dir(x->dir, &x->err);
	if (rc)
		unlink(tmp);
	if (!rc) {
		ilog_hash whole;
		crypto_hash_sha256_final(&o.whole, whole);
		ilog_hex_of(whole, x->sha256);
		x->bytes = o.bytes;
	}
out:
	if (db)
		sqlite3_close(db);
	return rc;
}

/* The SHA-256 of the file already written for this range. */
static int ilog_export_check(ilog_export *x)
{
	char path[PATH_MAX + ILOG_ARCHIVE_NAME_MAX + 8];
	snprintf(path, sizeof path, "%s/%s", x->dir, x->file);
	FILE *f = fopen(path, "rbe");
	if (!f)
		return sdk_fail(&x->err, errno == ENOENT ? SDK_ENOTFOUND : SDK_EIO,
				 "the archive %s cannot be read: %s", x->file, strerror(errno));
	crypto_hash_sha256_state h;
	crypto_hash_sha256_init(&h);
	unsigned char buf[1 << 16];
	size_t n;
	x->bytes = 0;
	while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
		crypto_hash_sha256_update(&h, buf, n);
		x->bytes += n;
	}
	int bad = ferror(f);
	/* The tree head the file's proofs are against, for the record. */
	rewind(f);
	char *line = NULL;
	size_t cap = 0;
	json_t *header = getline(&line, &cap, f) > 0 ? json_loads(line, 0, NULL) : NULL;
	json_t *size = json_object_get(json_object_get(header, "tree_head"), "tree_size");
	if (json_is_integer(size) && json_integer_value(size) >= (json_int_t)x->end)
		x->head.tree_size = (uint64_t)json_integer_value(size);
	json_decref(header);
	free(line);
	fclose(f);
	if (bad)
		return sdk_fail(&x->err, SDK_EIO, "reading %s", x->file);
	ilog_hash sum;
	crypto_hash_sha256_final(&h, sum);
	ilog_hex_of(sum, x->sha256);
	if (strcmp(x->sha256, x->expect_sha256))
		return sdk_fail(&x->err, SDK_ECONFLICT,
				 "the archive %s on disk has SHA-256 %s, not the %s you named",
				 x->file, x->sha256, x->expect_sha256);
	return 0;
}

void ilog_export_run(ilog_export *x)
{
	if (mkdir(x->dir, 0700) != 0 && errno != EEXIST) {
		x->rc = sdk_fail(&x->err, SDK_EIO, "creating %s: %s", x->dir, strerror(errno));
		return;
	}
	x->rc = x->expect_sha256[0] ? ilog_export_check(x) : ilog_export_write(x);
}
