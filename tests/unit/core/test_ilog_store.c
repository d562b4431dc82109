/* Unit tests for the immutable log's store: the canonical JSON form,
 * appends (single, batch, all-or-nothing), reads, proofs from stored
 * subtrees, tree heads and their signed serialization, reopening, and the
 * stepwise /verify catching every kind of hand edit. Each test has a
 * database file of its own in a scratch directory. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/immutable_log/archive.h"
#include "kernels/immutable_log/store.h"

struct fx {
	char dir[64];
	char path[PATH_MAX];
	sqlite3 *db;
	ilog_store *s;
	unsigned char pk[crypto_sign_PUBLICKEYBYTES];
	unsigned char sk[crypto_sign_SECRETKEYBYTES];
	sdk_err err;
};

static void fx_open_db(struct fx *f)
{
	assert_int_equal(sqlite3_open(f->path, &f->db), SQLITE_OK);
	sqlite3_extended_result_codes(f->db, 1);
	assert_int_equal(sqlite3_exec(f->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(ilog_store_open(f->db, &f->s, &f->err), 0);
}

static void fx_close_db(struct fx *f)
{
	ilog_store_close(f->s);
	f->s = NULL;
	assert_int_equal(sqlite3_close(f->db), SQLITE_OK);
	f->db = NULL;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	assert_non_null(f);
	snprintf(f->dir, sizeof f->dir, "/tmp/grace-ilog-test-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof f->path, "%s/immutable_log.db", f->dir);
	crypto_sign_keypair(f->pk, f->sk);
	fx_open_db(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	if (f->db)
		fx_close_db(f);
	char p[PATH_MAX + 8];
	static const char *const suffix[] = { "", "-wal", "-shm" };
	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof p, "%s%s", f->path, suffix[i]);
		unlink(p);
	}
	rmdir(f->dir);
	free(f);
	return 0;
}

static void sql(struct fx *f, const char *q)
{
	char *msg = NULL;
	int rc = sqlite3_exec(f->db, q, NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		fail_msg("%s: %s", q, msg ? msg : "?");
}

static uint64_t append_text(struct fx *f, const char *text)
{
	ilog_item it = { (const unsigned char *)text, strlen(text), ILOG_KIND_BYTES };
	uint64_t first;
	assert_int_equal(ilog_store_append(f->s, &it, 1, 1000, &first, NULL, &f->err), 0);
	return first;
}

static void append_n(struct fx *f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char text[32];
		snprintf(text, sizeof text, "entry %zu", i);
		append_text(f, text);
	}
}

static void sign_head(struct fx *f)
{
	ilog_sth h = { .tree_size = ilog_store_size(f->s), .timestamp_ms = 1234 };
	ilog_store_root(f->s, h.root);
	unsigned char msg[ILOG_STH_MESSAGE_BYTES];
	ilog_sth_message(&h, msg);
	crypto_sign_detached(h.signature, NULL, msg, sizeof msg, f->sk);
	assert_int_equal(ilog_store_sth_save(f->s, &h, &f->err), 0);
}

/* Runs a whole verification in steps of `budget`; returns the report. */
static json_t *verify_all(struct fx *f, unsigned budget)
{
	ilog_hash root;
	ilog_store_root(f->s, root);
	ilog_verify *v;
	assert_int_equal(ilog_verify_begin(f->path, f->pk, ilog_store_size(f->s), root, &v, &f->err),
			 0);
	int rc, steps = 0;
	while ((rc = ilog_verify_step(v, budget, &f->err)) == 0)
		steps++;
	assert_int_equal(rc, 1);
	json_t *r = ilog_verify_report(v);
	ilog_verify_free(v);
	return r;
}

static void assert_verify_bad(struct fx *f, json_int_t index, const char *reason_part)
{
	json_t *r = verify_all(f, 3);
	assert_false(json_is_true(json_object_get(r, "ok")));
	json_t *bad = json_object_get(r, "first_bad_index");
	if (index < 0)
		assert_true(json_is_null(bad));
	else
		assert_int_equal(json_integer_value(bad), index);
	const char *reason = json_string_value(json_object_get(r, "reason"));
	assert_non_null(reason);
	if (!strstr(reason, reason_part))
		fail_msg("reason '%s' lacks '%s'", reason, reason_part);
	json_decref(r);
}

/* ---- canonical form */

static void canon_is(const char *in, const char *want)
{
	json_t *v = json_loads(in, JSON_DECODE_ANY, NULL);
	assert_non_null(v);
	char *got = ilog_canonical_json(v);
	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
	json_decref(v);
}

static void test_canonical_json(void **state)
{
	(void)state;
	canon_is("{ \"b\" : 1, \"a\" : [true, null, {\"d\": 2, \"c\": 3}] }",
		 "{\"a\":[true,null,{\"c\":3,\"d\":2}],\"b\":1}");
	canon_is("\"caf\\u00e9 \\u2603\"", "\"caf\xc3\xa9 \xe2\x98\x83\"");  /* UTF-8 kept */
	canon_is("\"tab\\tnl\\n\\u001f/\"", "\"tab\\tnl\\n\\u001F/\"");
	canon_is("42", "42");
	canon_is("-7", "-7");
	canon_is("0.5", "0.5");
	canon_is("1e2", "100.0");
	canon_is("null", "null");
	canon_is("[]", "[]");
	canon_is("{}", "{}");
	/* Key order in the input never changes the bytes. */
	canon_is("{\"z\":{\"y\":1,\"x\":2},\"a\":0}", "{\"a\":0,\"z\":{\"x\":2,\"y\":1}}");
}

/* ---- appends and reads */

static void test_append_and_read(void **state)
{
	struct fx *f = *state;
	ilog_hash root;
	ilog_store_root(f->s, root);
	ilog_hash empty;
	ilog_hash_empty(empty);
	assert_memory_equal(root, empty, ILOG_HASH_BYTES);
	assert_int_equal(ilog_store_size(f->s), 0);

	json_t *v = json_pack("{s:i, s:s}", "b", 1, "a", "x");
	char *canon = ilog_canonical_json(v);
	ilog_item items[3] = {
		{ (const unsigned char *)canon, strlen(canon), ILOG_KIND_JSON },
		{ (const unsigned char *)"", 0, ILOG_KIND_BYTES },
		{ (const unsigned char *)"\x00\x01\x02", 3, ILOG_KIND_BYTES },
	};
	uint64_t first;
	ilog_hash leaves[3];
	assert_int_equal(ilog_store_append(f->s, items, 3, 5555, &first, leaves, &f->err), 0);
	assert_int_equal(first, 0);
	assert_int_equal(ilog_store_size(f->s), 3);
	ilog_hash want;
	ilog_hash_leaf(canon, strlen(canon), want);
	assert_memory_equal(leaves[0], want, ILOG_HASH_BYTES);

	json_t *e;
	assert_int_equal(ilog_store_entry(f->s, 0, &e, &f->err), 0);
	assert_int_equal(json_integer_value(json_object_get(e, "index")), 0);
	assert_int_equal(json_integer_value(json_object_get(e, "timestamp")), 5555);
	assert_true(json_equal(json_object_get(e, "data"), v));
	char hex[65];
	ilog_hash_hex(want, hex);
	assert_string_equal(json_string_value(json_object_get(e, "leaf_hash")), hex);
	json_decref(e);

	assert_int_equal(ilog_store_entry(f->s, 2, &e, &f->err), 0);
	assert_null(json_object_get(e, "data"));
	assert_string_equal(json_string_value(json_object_get(e, "data_b64")), "AAEC");
	json_decref(e);
	assert_int_equal(ilog_store_entry(f->s, 1, &e, &f->err), 0);
	assert_string_equal(json_string_value(json_object_get(e, "data_b64")), "");
	json_decref(e);

	assert_int_equal(ilog_store_entry(f->s, 3, &e, &f->err), SDK_ENOTFOUND);
	json_t *page;
	assert_int_equal(ilog_store_entries(f->s, 1, 3, &page, &f->err), 0);
	assert_int_equal(json_array_size(page), 2);
	json_decref(page);
	assert_int_equal(ilog_store_entries(f->s, 2, 4, &page, &f->err), SDK_EINVAL);
	free(canon);
	json_decref(v);
}

static void test_batch_is_all_or_nothing(void **state)
{
	struct fx *f = *state;
	append_n(f, 5);
	ilog_hash before;
	ilog_store_root(f->s, before);
	/* A row already where the batch's second entry goes makes it fail. */
	sql(f, "INSERT INTO entries (idx, data, kind, created_at) VALUES (6, x'00', 'bytes', 0)");
	ilog_item items[3] = {
		{ (const unsigned char *)"a", 1, ILOG_KIND_BYTES },
		{ (const unsigned char *)"b", 1, ILOG_KIND_BYTES },
		{ (const unsigned char *)"c", 1, ILOG_KIND_BYTES },
	};
	uint64_t first;
	/* SQLITE_CONSTRAINT: the convention maps it to SDK_ECONFLICT. */
	assert_int_equal(ilog_store_append(f->s, items, 3, 1, &first, NULL, &f->err), SDK_ECONFLICT);
	assert_int_equal(ilog_store_size(f->s), 5);
	ilog_hash after;
	ilog_store_root(f->s, after);
	assert_memory_equal(before, after, ILOG_HASH_BYTES);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(f->db, "SELECT count(*) FROM entries WHERE idx = 5", -1,
					    &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 0);
	sqlite3_finalize(st);
	/* Once the obstacle is gone (the guard has to go first), appends work. */
	sql(f, "DROP TRIGGER entries_no_delete; DELETE FROM entries WHERE idx = 6");
	assert_int_equal(ilog_store_append(f->s, items, 3, 1, &first, NULL, &f->err), 0);
	assert_int_equal(first, 5);
	assert_int_equal(ilog_store_size(f->s), 8);
	assert_int_equal(ilog_store_append(f->s, items, 0, 1, &first, NULL, &f->err), SDK_EINVAL);
}

static void test_append_only_guards(void **state)
{
	struct fx *f = *state;
	append_n(f, 2);
	const char *const edits[] = {
		"UPDATE entries SET data = x'00' WHERE idx = 0",
		"DELETE FROM entries WHERE idx = 1",
		"UPDATE nodes SET hash = zeroblob(32) WHERE level = 0",
		"DELETE FROM nodes",
	};
	for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++)
		assert_int_not_equal(sqlite3_exec(f->db, edits[i], NULL, NULL, NULL), SQLITE_OK);
}

/* Proofs read from the stored subtrees equal proofs over the same tree
 * held in memory (merkle.c's own tests check those against the RFC). */
static void test_proofs_and_roots_from_storage(void **state)
{
	struct fx *f = *state;
	append_n(f, 21);
	ilog_hash leaves[21];
	for (int i = 0; i < 21; i++) {
		char text[32];
		snprintf(text, sizeof text, "entry %d", i);
		ilog_hash_leaf(text, strlen(text), leaves[i]);
	}
	for (uint64_t size = 1; size <= 21; size++) {
		ilog_frontier fr;
		ilog_frontier_init(&fr);
		for (uint64_t i = 0; i < size; i++)
			ilog_frontier_push(&fr, leaves[i], NULL, NULL);
		ilog_hash want, got;
		ilog_frontier_root(&fr, want);
		assert_int_equal(ilog_store_root_at(f->s, size, got, &f->err), 0);
		assert_memory_equal(got, want, ILOG_HASH_BYTES);
		ilog_hash path[ILOG_PROOF_MAX];
		size_t n;
		assert_int_equal(ilog_store_inclusion(f->s, size - 1, size, path, &n, &f->err), 0);
		assert_int_equal(ilog_store_consistency(f->s, 1, size, path, &n, &f->err), 0);
	}
	ilog_hash path[ILOG_PROOF_MAX], h;
	size_t n;
	assert_int_equal(ilog_store_inclusion(f->s, 21, 21, path, &n, &f->err), SDK_EINVAL);
	assert_non_null(strstr(f->err.msg, "past the tree size"));
	assert_int_equal(ilog_store_inclusion(f->s, 0, 22, path, &n, &f->err), SDK_EINVAL);
	assert_int_equal(ilog_store_consistency(f->s, 0, 5, path, &n, &f->err), SDK_EINVAL);
	assert_int_equal(ilog_store_consistency(f->s, 6, 5, path, &n, &f->err), SDK_EINVAL);
	assert_int_equal(ilog_store_leaf_hash(f->s, 20, h, &f->err), 0);
	assert_memory_equal(h, leaves[20], ILOG_HASH_BYTES);
	assert_int_equal(ilog_store_leaf_hash(f->s, 21, h, &f->err), SDK_EINVAL);
}

static void test_empty_log_has_no_proofs(void **state)
{
	struct fx *f = *state;
	ilog_hash path[ILOG_PROOF_MAX];
	size_t n;
	assert_int_equal(ilog_store_inclusion(f->s, 0, 0, path, &n, &f->err), SDK_EINVAL);
	assert_non_null(strstr(f->err.msg, "empty"));
	json_t *r = verify_all(f, 10);
	assert_true(json_is_true(json_object_get(r, "ok")));
	assert_int_equal(json_integer_value(json_object_get(r, "tree_size")), 0);
	json_decref(r);
}

/* ---- tree heads */

static void test_sth_serialization(void **state)
{
	(void)state;
	ilog_sth h = { .tree_size = 0x0102030405060708ull, .timestamp_ms = 0x1112131415161718ull };
	for (int i = 0; i < ILOG_HASH_BYTES; i++)
		h.root[i] = (unsigned char)(0xa0 + i);
	unsigned char m[ILOG_STH_MESSAGE_BYTES];
	ilog_sth_message(&h, m);
	static const unsigned char head[18] = { 0, 1, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18,
						1, 2, 3, 4, 5, 6, 7, 8 };
	assert_memory_equal(m, head, sizeof head);
	assert_memory_equal(m + 18, h.root, ILOG_HASH_BYTES);
}

static void test_sth_save_and_latest(void **state)
{
	struct fx *f = *state;
	ilog_sth got;
	assert_int_equal(ilog_store_sth_latest(f->s, &got, &f->err), SDK_ENOTFOUND);
	sign_head(f);
	append_n(f, 3);
	sign_head(f);
	sign_head(f); /* the same size again is ignored, not an error */
	assert_int_equal(ilog_store_sth_latest(f->s, &got, &f->err), 0);
	assert_int_equal(got.tree_size, 3);
	unsigned char m[ILOG_STH_MESSAGE_BYTES];
	ilog_sth_message(&got, m);
	assert_int_equal(crypto_sign_verify_detached(got.signature, m, sizeof m, f->pk), 0);
	unsigned char pk[crypto_sign_PUBLICKEYBYTES];
	assert_int_equal(ilog_store_meta_get(f->s, "public_key", pk, sizeof pk, &f->err),
			 SDK_ENOTFOUND);
	assert_int_equal(ilog_store_meta_put(f->s, "public_key", f->pk, sizeof f->pk, &f->err), 0);
	assert_int_equal(ilog_store_meta_get(f->s, "public_key", pk, sizeof pk, &f->err), 0);
	assert_memory_equal(pk, f->pk, sizeof pk);
}

/* ---- reopening */

static void test_reopen_keeps_the_tree(void **state)
{
	struct fx *f = *state;
	append_n(f, 13);
	ilog_hash before, after;
	ilog_store_root(f->s, before);
	fx_close_db(f);
	fx_open_db(f);
	assert_int_equal(ilog_store_size(f->s), 13);
	ilog_store_root(f->s, after);
	assert_memory_equal(before, after, ILOG_HASH_BYTES);
	assert_null(ilog_store_broken(f->s));
	assert_int_equal(append_text(f, "one more"), 13);
}

static void test_reopen_with_missing_subtree_refuses_appends(void **state)
{
	struct fx *f = *state;
	append_n(f, 6); /* frontier: [0,4) and [4,6) */
	sql(f, "DROP TRIGGER nodes_no_delete; DELETE FROM nodes WHERE level = 2 AND idx = 0");
	fx_close_db(f);
	fx_open_db(f);
	assert_non_null(ilog_store_broken(f->s));
	ilog_item it = { (const unsigned char *)"x", 1, ILOG_KIND_BYTES };
	uint64_t first;
	assert_int_equal(ilog_store_append(f->s, &it, 1, 1, &first, NULL, &f->err), SDK_ECORRUPT);
}

static void test_reopen_after_truncation_is_broken(void **state)
{
	struct fx *f = *state;
	append_n(f, 6);
	sign_head(f);
	sql(f, "DROP TRIGGER entries_no_delete; DELETE FROM entries WHERE idx = 5");
	fx_close_db(f);
	fx_open_db(f);
	assert_int_equal(ilog_store_size(f->s), 5);
	assert_non_null(ilog_store_broken(f->s));
}

/* ---- verify */

static void test_verify_clean_log(void **state)
{
	struct fx *f = *state;
	sign_head(f);
	append_n(f, 37);
	sign_head(f);
	append_n(f, 4);
	sign_head(f);
	json_t *r = verify_all(f, 1);
	assert_true(json_is_true(json_object_get(r, "ok")));
	assert_int_equal(json_integer_value(json_object_get(r, "tree_size")), 41);
	assert_int_equal(json_integer_value(json_object_get(r, "entries_checked")), 41);
	assert_int_equal(json_integer_value(json_object_get(r, "tree_heads_checked")), 3);
	json_decref(r);
	r = verify_all(f, 1000);
	assert_true(json_is_true(json_object_get(r, "ok")));
	json_decref(r);
}

static void test_verify_names_an_edited_entry(void **state)
{
	struct fx *f = *state;
	append_n(f, 20);
	sql(f, "DROP TRIGGER entries_no_update; UPDATE entries SET data = 'forged' WHERE idx = 11");
	assert_verify_bad(f, 11, "entry 11 no longer matches");
}

static void test_verify_names_an_edited_leaf_hash(void **state)
{
	struct fx *f = *state;
	append_n(f, 20);
	sql(f, "DROP TRIGGER nodes_no_update;"
	       " UPDATE nodes SET hash = zeroblob(32) WHERE level = 0 AND idx = 3");
	assert_verify_bad(f, 3, "entry 3");
}

static void test_verify_names_an_edited_subtree(void **state)
{
	struct fx *f = *state;
	append_n(f, 20);
	sql(f, "DROP TRIGGER nodes_no_update;"
	       " UPDATE nodes SET hash = zeroblob(32) WHERE level = 3 AND idx = 1");
	assert_verify_bad(f, 8, "[8, 16)");
}

static void test_verify_names_a_missing_entry(void **state)
{
	struct fx *f = *state;
	append_n(f, 10);
	sql(f, "DROP TRIGGER entries_no_delete; DELETE FROM entries WHERE idx = 4");
	assert_verify_bad(f, 4, "entry 4 is missing");
}

static void test_verify_catches_truncation(void **state)
{
	struct fx *f = *state;
	append_n(f, 10);
	sql(f, "DROP TRIGGER entries_no_delete; DELETE FROM entries WHERE idx = 9");
	/* The running log (10 in memory) and the leftover leaf hash both tell. */
	assert_verify_bad(f, 9, "past entry 9");
}

static void test_verify_catches_a_consistent_rewrite(void **state)
{
	struct fx *f = *state;
	append_n(f, 4);
	sign_head(f);
	append_n(f, 4);
	sign_head(f);
	/* Rewrite entry 5 and every hash above it so the tree is consistent. */
	sql(f, "DROP TRIGGER entries_no_update; DROP TRIGGER nodes_no_update;"
	       " UPDATE entries SET data = 'rewritten' WHERE idx = 5");
	/* Entries 4..7 are "entry 0".."entry 3" (append_n counts from 0). */
	ilog_hash l4, l5, l6, l7, n45, n67, n47, n03, root;
	char t4[] = "entry 0", t6[] = "entry 2", t7[] = "entry 3";
	ilog_hash_leaf(t4, strlen(t4), l4);
	ilog_hash_leaf("rewritten", 9, l5);
	ilog_hash_leaf(t6, strlen(t6), l6);
	ilog_hash_leaf(t7, strlen(t7), l7);
	ilog_hash_node(l4, l5, n45);
	ilog_hash_node(l6, l7, n67);
	ilog_hash_node(n45, n67, n47);
	assert_int_equal(ilog_store_root_at(f->s, 4, n03, &f->err), 0);
	ilog_hash_node(n03, n47, root);
	const struct { int level, idx; const unsigned char *h; } rows[] = {
		{ 0, 5, l5 }, { 1, 2, n45 }, { 2, 1, n47 }, { 3, 0, root },
	};
	for (size_t i = 0; i < 4; i++) {
		sqlite3_stmt *st;
		assert_int_equal(sqlite3_prepare_v2(f->db, "UPDATE nodes SET hash = ?1 WHERE level = ?2"
							   " AND idx = ?3", -1, &st, NULL),
				 SQLITE_OK);
		sqlite3_bind_blob(st, 1, rows[i].h, ILOG_HASH_BYTES, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, rows[i].level);
		sqlite3_bind_int(st, 3, rows[i].idx);
		assert_int_equal(sqlite3_step(st), SQLITE_DONE);
		sqlite3_finalize(st);
	}
	/* Every stored hash now agrees with the entries; the head signed at 8
	 * does not, and entries below 4 are still vouched for by the head at 4. */
	assert_verify_bad(f, 4, "rewritten");
}

static void test_verify_catches_a_forged_head(void **state)
{
	struct fx *f = *state;
	append_n(f, 3);
	sign_head(f);
	sql(f, "DROP TRIGGER tree_heads_no_update;"
	       " UPDATE tree_heads SET timestamp = timestamp + 1");
	assert_verify_bad(f, -1, "bad signature");
}

static void test_verify_sees_a_stable_snapshot(void **state)
{
	struct fx *f = *state;
	append_n(f, 10);
	ilog_hash root;
	ilog_store_root(f->s, root);
	ilog_verify *v;
	assert_int_equal(ilog_verify_begin(f->path, f->pk, 10, root, &v, &f->err), 0);
	assert_int_equal(ilog_verify_step(v, 2, &f->err), 0);
	append_n(f, 5); /* during the verification */
	int rc;
	while ((rc = ilog_verify_step(v, 2, &f->err)) == 0)
		;
	assert_int_equal(rc, 1);
	json_t *r = ilog_verify_report(v);
	assert_true(json_is_true(json_object_get(r, "ok")));
	assert_int_equal(json_integer_value(json_object_get(r, "tree_size")), 10);
	json_decref(r);
	ilog_verify_free(v);
}

/* ---- archival */

static uint64_t remove_range(struct fx *f, uint64_t first, uint64_t end, int want)
{
	const char *rec = "{\"type\":\"immutable_log.archive\"}";
	ilog_item it = { (const unsigned char *)rec, strlen(rec), ILOG_KIND_JSON };
	ilog_archive_rec a = { first, end, ilog_store_size(f->s),
			       "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			       "immutable_log-x.jsonl" };
	uint64_t at = 0;
	assert_int_equal(ilog_store_remove(f->s, &a, &it, 5000, &at, &f->err), want);
	return at;
}

static int64_t count(struct fx *f, const char *q)
{
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(f->db, q, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int64_t n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

static void test_archive_removes_bytes_keeps_proofs(void **state)
{
	struct fx *f = *state;
	append_n(f, 40);
	sign_head(f);
	ilog_hash path[ILOG_PROOF_MAX], again[ILOG_PROOF_MAX], root40;
	size_t n = 0, m = 0;
	assert_int_equal(ilog_store_inclusion(f->s, 3, 40, path, &n, &f->err), 0);
	ilog_store_root(f->s, root40);
	assert_int_equal(remove_range(f, 0, 25, 0), 40);
	assert_int_equal(ilog_store_size(f->s), 41);
	assert_int_equal(ilog_store_archived(f->s), 25);
	/* The rows go afterwards, a few per call (the kernel's loop stays free
	 * between them). */
	assert_int_equal(count(f, "SELECT count(*) FROM entries WHERE idx < 25"), 25);
	bool more = false;
	assert_int_equal(ilog_store_sweep(f->s, 10, &more, &f->err), 0);
	assert_true(more);
	assert_int_equal(count(f, "SELECT count(*) FROM entries WHERE idx < 25"), 15);
	assert_int_equal(ilog_store_sweep(f->s, 100, &more, &f->err), 0);
	assert_false(more);
	assert_int_equal(count(f, "SELECT count(*) FROM entries WHERE idx < 25"), 0);
	assert_int_equal(ilog_store_sweep(f->s, 100, &more, &f->err), 0);
	assert_false(more);
	assert_int_equal(count(f, "SELECT count(*) FROM nodes WHERE level = 0"), 41);
	/* Proofs and old roots come from the kept hashes. */
	assert_int_equal(ilog_store_inclusion(f->s, 3, 40, again, &m, &f->err), 0);
	assert_int_equal(m, n);
	assert_memory_equal(path, again, n * ILOG_HASH_BYTES);
	ilog_hash r;
	assert_int_equal(ilog_store_root_at(f->s, 40, r, &f->err), 0);
	assert_memory_equal(r, root40, ILOG_HASH_BYTES);
	json_t *a = NULL;
	assert_int_equal(ilog_store_archive_of(f->s, 3, &a, &f->err), 0);
	assert_int_equal(json_integer_value(json_object_get(a, "end")), 25);
	json_decref(a);
	assert_int_equal(ilog_store_archive_of(f->s, 30, &a, &f->err), SDK_ENOTFOUND);
	/* Twice the same range, a gap, or past the tree: refused. */
	remove_range(f, 0, 25, SDK_ECONFLICT);
	remove_range(f, 26, 30, SDK_ECONFLICT);
	remove_range(f, 25, 42, SDK_ECONFLICT);
	/* A bare DELETE still meets the trigger. */
	assert_int_not_equal(sqlite3_exec(f->db, "DELETE FROM entries WHERE idx = 30", NULL,
					  NULL, NULL), SQLITE_OK);
	assert_int_not_equal(sqlite3_exec(f->db, "DELETE FROM archives", NULL, NULL, NULL),
			     SQLITE_OK);
	append_n(f, 3);
	sign_head(f);
	json_t *rep = verify_all(f, 7);
	assert_true(json_is_true(json_object_get(rep, "ok")));
	assert_int_equal(json_integer_value(json_object_get(rep, "archived_entries")), 25);
	assert_int_equal(json_integer_value(json_object_get(rep, "entries_checked")), 44);
	assert_int_equal(json_integer_value(json_object_get(rep, "tree_heads_checked")), 2);
	json_decref(rep);
	/* Reopened, the log knows its archived range and its size. */
	fx_close_db(f);
	fx_open_db(f);
	assert_int_equal(ilog_store_size(f->s), 44);
	assert_int_equal(ilog_store_archived(f->s), 25);
	assert_null(ilog_store_broken(f->s));
	assert_int_equal(remove_range(f, 25, 44, 0), 44);
	/* Closed before its rows were swept (a kill): the next open finds
	 * them and the sweep takes them; the archival's own entry stays. */
	assert_int_equal(count(f, "SELECT count(*) FROM entries"), 20);
	fx_close_db(f);
	fx_open_db(f);
	assert_int_equal(ilog_store_sweep(f->s, 1000, &more, &f->err), 0);
	assert_false(more);
	assert_int_equal(count(f, "SELECT count(*) FROM entries"), 1);
}

static void test_archive_removal_is_all_or_nothing(void **state)
{
	struct fx *f = *state;
	append_n(f, 10);
	sql(f, "CREATE TRIGGER meta_fails BEFORE INSERT ON meta"
	       " BEGIN SELECT RAISE(ABORT, 'disk on fire'); END");
	remove_range(f, 0, 5, SDK_ECONFLICT); /* RAISE(ABORT) is a constraint */
	assert_int_equal(count(f, "SELECT count(*) FROM entries"), 10);
	assert_int_equal(count(f, "SELECT count(*) FROM archives"), 0);
	assert_int_equal(ilog_store_archived(f->s), 0);
	assert_int_equal(ilog_store_size(f->s), 10);
	sql(f, "DROP TRIGGER meta_fails");
	assert_int_equal(remove_range(f, 0, 5, 0), 10);
}

static void test_verify_catches_an_edited_archived_leaf(void **state)
{
	struct fx *f = *state;
	append_n(f, 16);
	sign_head(f);
	remove_range(f, 0, 8, 0);
	sql(f, "DROP TRIGGER nodes_no_update;"
	       " UPDATE nodes SET hash = zeroblob(32) WHERE level = 0 AND idx = 5");
	assert_verify_bad(f, 4, "entries [4, 6)");
}

static void test_index_at_time(void **state)
{
	struct fx *f = *state;
	for (int i = 0; i < 9; i++) {
		ilog_item it = { (const unsigned char *)"x", 1, ILOG_KIND_BYTES };
		uint64_t first;
		assert_int_equal(ilog_store_append(f->s, &it, 1, 1000 * (i / 3 + 1), &first, NULL,
						   &f->err), 0);
	}
	uint64_t at;
	assert_int_equal(ilog_store_index_at(f->s, 500, &at, &f->err), 0);
	assert_int_equal(at, 0);
	assert_int_equal(ilog_store_index_at(f->s, 2000, &at, &f->err), 0);
	assert_int_equal(at, 3);
	assert_int_equal(ilog_store_index_at(f->s, 2500, &at, &f->err), 0);
	assert_int_equal(at, 6);
	assert_int_equal(ilog_store_index_at(f->s, 9000, &at, &f->err), 0);
	assert_int_equal(at, 9);
	remove_range(f, 0, 4, 0);
	assert_int_equal(ilog_store_index_at(f->s, 500, &at, &f->err), 0);
	assert_int_equal(at, 4);
}

/* A file of schema version 1 (no archives, the old DELETE trigger) is
 * brought to version 2 at open, its entries kept. */
static void test_migrates_schema_1(void **state)
{
	struct fx *f = *state;
	append_n(f, 6);
	sign_head(f);
	sql(f, "DROP TABLE archives; DROP TRIGGER entries_no_delete;"
	       " CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries"
	       " BEGIN SELECT RAISE(ABORT, 'the immutable log is append-only'); END;"
	       " PRAGMA user_version = 1;");
	fx_close_db(f);
	fx_open_db(f);
	assert_int_equal(count(f, "PRAGMA user_version"), 2);
	assert_int_equal(count(f, "SELECT count(*) FROM archives"), 0);
	assert_int_equal(ilog_store_size(f->s), 6);
	assert_int_not_equal(sqlite3_exec(f->db, "DELETE FROM entries", NULL, NULL, NULL),
			     SQLITE_OK);
	assert_int_equal(remove_range(f, 0, 3, 0), 6);
	json_t *rep = verify_all(f, 100);
	assert_true(json_is_true(json_object_get(rep, "ok")));
	json_decref(rep);
	/* A newer file than this build is refused. */
	sql(f, "PRAGMA user_version = 3");
	fx_close_db(f);
	assert_int_equal(sqlite3_open(f->path, &f->db), SQLITE_OK);
	assert_int_equal(ilog_store_open(f->db, &f->s, &f->err), SDK_EIO);
	assert_non_null(strstr(f->err.msg, "schema version 3"));
	f->s = NULL;
}

/* An archive written by archive.c checks by archive_check.c; a flipped
 * byte anywhere, a cut, or another key's signature does not. */
static void test_archive_file_round_trip(void **state)
{
	struct fx *f = *state;
	append_n(f, 50);
	ilog_export *x = calloc(1, sizeof *x);
	assert_non_null(x);
	snprintf(x->db_path, sizeof x->db_path, "%s", f->path);
	snprintf(x->dir, sizeof x->dir, "%s/archive", f->dir);
	x->first = 0;
	x->end = 30;
	x->head = (ilog_sth){ .tree_size = 50, .timestamp_ms = 777 };
	ilog_store_root(f->s, x->head.root);
	unsigned char msg[ILOG_STH_MESSAGE_BYTES];
	ilog_sth_message(&x->head, msg);
	crypto_sign_detached(x->head.signature, NULL, msg, sizeof msg, f->sk);
	memcpy(x->public_key, f->pk, sizeof f->pk);
	x->now_ms = 1;
	ilog_archive_name(x->first, x->end, x->file);
	assert_true(ilog_archive_name_ok(x->file));
	assert_false(ilog_archive_name_ok("../immutable_log.db"));
	ilog_export_run(x);
	assert_int_equal(x->rc, 0);
	char path[PATH_MAX * 2];
	snprintf(path, sizeof path, "%s/%s", x->dir, x->file);
	json_t *r = NULL;
	assert_int_equal(ilog_archive_check(path, &r, &f->err), 0);
	assert_true(json_is_true(json_object_get(r, "ok")));
	assert_string_equal(json_string_value(json_object_get(r, "sha256")), x->sha256);
	assert_int_equal(json_integer_value(json_object_get(r, "entries")), 30);
	json_decref(r);
	/* The same file named by its hash is confirmed; another is refused. */
	snprintf(x->expect_sha256, sizeof x->expect_sha256, "%s", x->sha256);
	ilog_export_run(x);
	assert_int_equal(x->rc, 0);
	x->expect_sha256[0] = x->expect_sha256[0] == 'a' ? 'b' : 'a';
	ilog_export_run(x);
	assert_int_equal(x->rc, SDK_ECONFLICT);

	FILE *fp = fopen(path, "rb");
	assert_non_null(fp);
	static char orig[1 << 16];
	size_t len = fread(orig, 1, sizeof orig, fp);
	fclose(fp);
	assert_true(len > 0 && len < sizeof orig);
	static char copy[1 << 16];
	size_t spots[] = { 40, len / 3, len / 2, len - 30 };
	for (size_t i = 0; i <= sizeof spots / sizeof spots[0]; i++) {
		memcpy(copy, orig, len);
		size_t n = len;
		if (i < sizeof spots / sizeof spots[0])
			copy[spots[i]] ^= 0x01;
		else
			n = len * 2 / 3; /* truncated */
		fp = fopen(path, "wb");
		assert_int_equal(fwrite(copy, 1, n, fp), n);
		fclose(fp);
		assert_int_equal(ilog_archive_check(path, &r, &f->err), 0);
		assert_true(json_is_false(json_object_get(r, "ok")));
		assert_non_null(json_string_value(json_object_get(r, "reason")));
		json_decref(r);
	}
	unlink(path);
	rmdir(x->dir);
	free(x);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_canonical_json),
		T(test_append_and_read),
		T(test_batch_is_all_or_nothing),
		T(test_append_only_guards),
		T(test_proofs_and_roots_from_storage),
		T(test_empty_log_has_no_proofs),
		cmocka_unit_test(test_sth_serialization),
		T(test_sth_save_and_latest),
		T(test_reopen_keeps_the_tree),
		T(test_reopen_with_missing_subtree_refuses_appends),
		T(test_reopen_after_truncation_is_broken),
		T(test_verify_clean_log),
		T(test_verify_names_an_edited_entry),
		T(test_verify_names_an_edited_leaf_hash),
		T(test_verify_names_an_edited_subtree),
		T(test_verify_names_a_missing_entry),
		T(test_verify_catches_truncation),
		T(test_verify_catches_a_consistent_rewrite),
		T(test_verify_catches_a_forged_head),
		T(test_verify_sees_a_stable_snapshot),
		T(test_archive_removes_bytes_keeps_proofs),
		T(test_archive_removal_is_all_or_nothing),
		T(test_verify_catches_an_edited_archived_leaf),
		T(test_index_at_time),
		T(test_migrates_schema_1),
		T(test_archive_file_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
