#include "kernels/librarian/bulk.h"

#include "kernels/librarian/index.h"
#include "sdk/clock.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

struct tally {
	int64_t created, updated, duplicates, failed;
	int64_t docs, bytes; /* the owner's, as the batch goes */
};

static void item_bad(json_t *items, struct tally *t, unsigned line, int status, const char *msg)
{
	t->failed++;
	if (t->failed > LIB_BULK_ERRORS_MAX)
		return;
	json_array_append_new(items, json_pack("{s:I, s:i, s:{s:s, s:s}}", "line",
					       (json_int_t)line, "status", status, "error", "code",
					       status == 413 ? "quota" : "invalid", "message", msg));
}

static void item_ok(json_t *items, unsigned line, int status, const char *result, int64_t id)
{
	json_array_append_new(items, json_pack("{s:I, s:i, s:s, s:I}", "line", (json_int_t)line,
					       "status", status, "result", result, "id",
					       (json_int_t)id));
}

static const char sql_hash_find[] = "SELECT id FROM documents WHERE hash = ?1";

static int hash_find(sqlite3 *db, lib_ix *ix, const uint8_t *hash, int64_t *id, lib_err *err)
{
	sqlite3_stmt *st = lib_ix_stmt(ix, sql_hash_find); /* ix's */
	*id = 0;
	if (!st)
		return lib_fail_sql(db, err, "prepare hash");
	sqlite3_bind_blob(st, 1, hash, LIB_HASH_BYTES, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*id = sqlite3_column_int64(st, 0);
	rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SDK_OK : lib_fail_sql(db, err, "read hash");
	sqlite3_reset(st);
	return rc;
}

static const char *opt_str(json_t *o, const char *key, bool *bad)
{
	json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v))
		return NULL;
	if (!json_is_string(v))
		*bad = true;
	return json_string_value(v);
}

/* One line. A negative return is the batch failing (storage, memory);
 * a bad line is an item and 0. */
static int one(sqlite3 *db, lib_ix *ix, const char *owner, const lib_quota *q, const char *s,
	       size_t n, unsigned line, json_t *items, struct tally *t, lib_err *err)
{
	json_error_t je;
	json_t *doc = json_loadb(s, n, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(doc)) {
		char msg[200];
		snprintf(msg, sizeof msg, doc ? "a line must be a JSON object" : "not JSON: %s",
			 je.text);
		json_decref(doc);
		item_bad(items, t, line, 400, msg);
		return SDK_OK;
	}
	bool bad = false;
	const char *title = opt_str(doc, "title", &bad), *body = opt_str(doc, "body", &bad);
	const char *source = opt_str(doc, "source", &bad);
	json_t *tags = json_object_get(doc, "tags");
	char *tags_text = NULL;
	lib_err e;
	int rc = SDK_OK;
	if (bad || !title || !body) {
		item_bad(items, t, line, 400,
			 "title and body are required strings; source is a string");
		goto out;
	}
	if (lib_check_doc(title, body, source, &e) ||
	    lib_tags_text(json_is_null(tags) ? NULL : tags, &tags_text, &e)) {
		item_bad(items, t, line, 400, e.msg);
		goto out;
	}
	int64_t size = (int64_t)strlen(title) + (int64_t)strlen(body), id = 0;
	uint8_t hash[LIB_HASH_BYTES];
	crypto_generichash_state hs;
	crypto_generichash_init(&hs, NULL, 0, sizeof hash);
	crypto_generichash_update(&hs, (const uint8_t *)title, strlen(title) + 1);
	crypto_generichash_update(&hs, (const uint8_t *)body, strlen(body) + 1);
	crypto_generichash_update(&hs, (const uint8_t *)tags_text, strlen(tags_text));
	crypto_generichash_final(&hs, hash, sizeof hash);
	int64_t old = 0;
	if (source)
		rc = lib_doc_id_by_source(db, source, &old, err);
	else
		rc = hash_find(db, ix, hash, &old, err);
	if (rc)
		goto out;
	if (!source && old) {
		t->duplicates++;
		item_ok(items, line, 200, "duplicate", old);
		goto out;
	}
	if (owner && q && ((q->docs && !old && t->docs + 1 > q->docs) ||
			   (q->bytes && t->bytes + size > q->bytes))) {
		item_bad(items, t, line, 413, "over your librarian quota (documents or bytes)");
		goto out;
	}
	rc = lib_doc_write_bulk(db, ix, owner, title, body, tags_text, source, size, hash, &id, &e);
	if (rc == SDK_EINVAL) { /* refused by a constraint: this line only */
		item_bad(items, t, line, 400, e.msg);
		rc = SDK_OK;
		goto out;
	}
	if (rc) {
		*err = e;
		goto out;
	}
	t->docs += !old;
	t->bytes += size;
	if (old)
		t->updated++;
	else
		t->created++;
	item_ok(items, line, old ? 200 : 201, old ? "updated" : "created", id);
out:
	free(tags_text);
	json_decref(doc);
	return rc;
}

int lib_bulk_load(sqlite3 *db, const char *owner, const lib_quota *quota, const char *body,
		  size_t len, json_t **out, lib_err *err)
{
	int64_t t0 = sdk_mono_ms();
	*out = NULL;
	unsigned lines = 0;
	for (size_t i = 0; i < len; i++)
		lines += body[i] == '\n';
	lines += len && body[len - 1] != '\n';
	if (!len || !lines)
		return sdk_fail(err, SDK_EINVAL, "the body is empty: one JSON document a line");
	if (lines > LIB_BULK_LINES_MAX)
		return sdk_fail(err, SDK_EINVAL, "at most %u lines a request", LIB_BULK_LINES_MAX);
	struct tally t = { 0 };
	json_t *items = json_array();
	lib_ix *ix = NULL;
	bool nested;
	int rc = items ? lib_tx_begin(db, &nested, err) : sdk_fail(err, SDK_EIO, "out of memory");
	if (rc) {
		json_decref(items);
		return rc;
	}
	if (owner && quota && (quota->docs || quota->bytes))
		rc = lib_usage(db, owner, &t.docs, &t.bytes, err);
	if (!rc)
		rc = lib_ix_open(db, &ix, err);
	size_t at = 0;
	for (unsigned line = 1; !rc && at < len; line++) {
		const char *nl = memchr(body + at, '\n', len - at);
		size_t end = nl ? (size_t)(nl - body) : len, n = end - at;
		if (n && body[at + n - 1] == '\r')
			n--;
		bool blank = true;
		for (size_t i = 0; blank && i < n; i++)
			blank = strchr(" \t", body[at + i]) != NULL;
		if (!blank)
			rc = one(db, ix, owner, quota, body + at, n, line, items, &t, err);
		at = end + 1;
	}
	if (!rc)
		rc = lib_ix_flush(ix, err);
	lib_ix_close(ix);
	if (rc) {
		lib_tx_rollback(db, nested);
		json_decref(items);
		return rc;
	}
	rc = lib_tx_commit(db, nested, err);
	if (rc) {
		json_decref(items);
		return rc;
	}
	*out = json_pack("{s:I, s:b, s:I, s:I, s:I, s:I, s:o}", "took_ms",
			 (json_int_t)(sdk_mono_ms() - t0), "errors", t.failed > 0, "created",
			 (json_int_t)t.created, "updated", (json_int_t)t.updated, "duplicates",
			 (json_int_t)t.duplicates, "failed", (json_int_t)t.failed, "items", items);
	return *out ? SDK_OK : sdk_fail(err, SDK_EIO, "out of memory");
}
