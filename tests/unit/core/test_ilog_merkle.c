/* Unit tests for the immutable log's RFC 6962 math: the Certificate
 * Transparency test vectors for sizes 1..8, and a reference written straight
 * from the RFC's recursive definitions (MTH, PATH, SUBPROOF) over every
 * tree up to 70 leaves, every leaf and every pair of sizes, with each proof
 * also checked by the verification algorithms of RFC 9162. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/immutable_log/merkle.h"

#define MAX_LEAVES 70

/* The CT test leaves (certificate-transparency merkle_tree_test.cc). */
static const char *const ct_leaves[8] = {
	"", "00", "10", "2021", "3031", "40414243", "5051525354555657",
	"606162636465666768696a6b6c6d6e6f",
};

static const char *const ct_roots[8] = {
	"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
	"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
	"aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
	"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
	"4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
	"76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
	"ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
	"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

/* A tree held in memory: every complete aligned subtree, as a store keeps. */
struct mem_tree {
	size_t n;
	ilog_hash leaves[MAX_LEAVES];
	ilog_hash nodes[ILOG_LEVELS_MAX][MAX_LEAVES];
	unsigned char have[ILOG_LEVELS_MAX][MAX_LEAVES];
	ilog_frontier f;
	unsigned reads;
};

static int mem_emit(void *ctx, unsigned level, uint64_t index, const ilog_hash hash)
{
	struct mem_tree *t = ctx;
	assert_true(index < MAX_LEAVES);
	assert_false(t->have[level][index]); /* each node is produced once */
	memcpy(t->nodes[level][index], hash, ILOG_HASH_BYTES);
	t->have[level][index] = 1;
	return 0;
}

static int mem_node(void *ctx, unsigned level, uint64_t index, ilog_hash out)
{
	struct mem_tree *t = ctx;
	t->reads++;
	if (level >= ILOG_LEVELS_MAX || index >= MAX_LEAVES || !t->have[level][index])
		return -42;
	memcpy(out, t->nodes[level][index], ILOG_HASH_BYTES);
	return 0;
}

static void unhex(const char *hex, unsigned char *out, size_t cap, size_t *len)
{
	assert_int_equal(sodium_hex2bin(out, cap, hex, strlen(hex), NULL, len, NULL), 0);
}

static void hash_from_hex(const char *hex, ilog_hash out)
{
	size_t len;
	unhex(hex, out, ILOG_HASH_BYTES, &len);
	assert_int_equal(len, ILOG_HASH_BYTES);
}

static void mem_push(struct mem_tree *t, const void *entry, size_t len)
{
	ilog_hash_leaf(entry, len, t->leaves[t->n]);
	assert_int_equal(ilog_frontier_push(&t->f, t->leaves[t->n], mem_emit, t), 0);
	t->n++;
}

static struct mem_tree *mem_new(void)
{
	struct mem_tree *t = calloc(1, sizeof *t);
	assert_non_null(t);
	ilog_frontier_init(&t->f);
	return t;
}

static struct mem_tree *mem_ct(size_t n)
{
	struct mem_tree *t = mem_new();
	for (size_t i = 0; i < n; i++) {
		unsigned char buf[16];
		size_t len;
		unhex(ct_leaves[i], buf, sizeof buf, &len);
		mem_push(t, buf, len);
	}
	return t;
}

static struct mem_tree *mem_counting(size_t n)
{
	struct mem_tree *t = mem_new();
	for (size_t i = 0; i < n; i++) {
		char entry[32];
		int len = snprintf(entry, sizeof entry, "entry %zu", i);
		mem_push(t, entry, (size_t)len);
	}
	return t;
}

/* ---- the reference, from RFC 6962 section 2.1 as written */

static size_t ref_split(size_t n)
{
	size_t k = 1;
	while (k * 2 < n)
		k *= 2;
	return k;
}

static void ref_mth(const ilog_hash *d, size_t n, ilog_hash out)
{
	if (n == 0) {
		ilog_hash_empty(out);
	} else if (n == 1) {
		memcpy(out, d[0], ILOG_HASH_BYTES);
	} else {
		size_t k = ref_split(n);
		ilog_hash l, r;
		ref_mth(d, k, l);
		ref_mth(d + k, n - k, r);
		ilog_hash_node(l, r, out);
	}
}

static void ref_path(size_t m, const ilog_hash *d, size_t n, ilog_hash *out, size_t *len)
{
	if (n <= 1)
		return;
	size_t k = ref_split(n);
	if (m < k) {
		ref_path(m, d, k, out, len);
		ref_mth(d + k, n - k, out[(*len)++]);
	} else {
		ref_path(m - k, d + k, n - k, out, len);
		ref_mth(d, k, out[(*len)++]);
	}
}

static void ref_subproof(size_t m, const ilog_hash *d, size_t n, int b, ilog_hash *out,
			 size_t *len)
{
	if (m == n) {
		if (!b)
			ref_mth(d, n, out[(*len)++]);
		return;
	}
	size_t k = ref_split(n);
	if (m <= k) {
		ref_subproof(m, d, k, b, out, len);
		ref_mth(d + k, n - k, out[(*len)++]);
	} else {
		ref_subproof(m - k, d + k, n - k, 0, out, len);
		ref_mth(d, k, out[(*len)++]);
	}
}

/* ---- RFC 9162 verification (2.1.3.2 and 2.1.4.2) */

static int rfc_verify_inclusion(uint64_t index, uint64_t size, const ilog_hash leaf,
				const ilog_hash *path, size_t n, const ilog_hash root)
{
	if (index >= size)
		return 0;
	uint64_t fn = index, sn = size - 1;
	ilog_hash r;
	memcpy(r, leaf, ILOG_HASH_BYTES);
	for (size_t i = 0; i < n; i++) {
		if (sn == 0)
			return 0;
		if ((fn & 1) || fn == sn) {
			ilog_hash_node(path[i], r, r);
			while (!(fn & 1) && fn != 0) {
				fn >>= 1;
				sn >>= 1;
			}
		} else {
			ilog_hash_node(r, path[i], r);
		}
		fn >>= 1;
		sn >>= 1;
	}
	return sn == 0 && !memcmp(r, root, ILOG_HASH_BYTES);
}

static int rfc_verify_consistency(uint64_t first, uint64_t second, const ilog_hash r1,
				  const ilog_hash r2, const ilog_hash *proof, size_t n)
{
	if (first == 0 || first > second)
		return 0;
	if (first == second)
		return n == 0 && !memcmp(r1, r2, ILOG_HASH_BYTES);
	ilog_hash p[ILOG_PROOF_MAX + 1];
	size_t np = 0;
	if (!(first & (first - 1)))
		memcpy(p[np++], r1, ILOG_HASH_BYTES);
	memcpy(p + np, proof, n * sizeof *p);
	np += n;
	if (np == 0)
		return 0;
	uint64_t fn = first - 1, sn = second - 1;
	while (fn & 1) {
		fn >>= 1;
		sn >>= 1;
	}
	ilog_hash fr, sr;
	memcpy(fr, p[0], ILOG_HASH_BYTES);
	memcpy(sr, p[0], ILOG_HASH_BYTES);
	for (size_t i = 1; i < np; i++) {
		if (sn == 0)
			return 0;
		if ((fn & 1) || fn == sn) {
			ilog_hash_node(p[i], fr, fr);
			ilog_hash_node(p[i], sr, sr);
			while (!(fn & 1) && fn != 0) {
				fn >>= 1;
				sn >>= 1;
			}
		} else {
			ilog_hash_node(sr, p[i], sr);
		}
		fn >>= 1;
		sn >>= 1;
	}
	return sn == 0 && !memcmp(fr, r1, ILOG_HASH_BYTES) && !memcmp(sr, r2, ILOG_HASH_BYTES);
}

/* ---- tests */

static void test_hashes(void **state)
{
	(void)state;
	ilog_hash h, want;
	ilog_hash_empty(h);
	hash_from_hex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", want);
	assert_memory_equal(h, want, ILOG_HASH_BYTES);
	/* The leaf of the empty entry is SHA-256(0x00): the CT size-1 root. */
	ilog_hash_leaf("", 0, h);
	hash_from_hex(ct_roots[0], want);
	assert_memory_equal(h, want, ILOG_HASH_BYTES);
	char hex[2 * ILOG_HASH_BYTES + 1];
	ilog_hash_hex(h, hex);
	assert_string_equal(hex, ct_roots[0]);
}

static void test_ct_roots(void **state)
{
	(void)state;
	struct mem_tree *t = mem_ct(8);
	ilog_source src = { mem_node, t };
	for (size_t n = 1; n <= 8; n++) {
		ilog_hash want, got;
		hash_from_hex(ct_roots[n - 1], want);
		assert_int_equal(ilog_range_hash(&src, 0, n, got), 0);
		assert_memory_equal(got, want, ILOG_HASH_BYTES);
		ilog_frontier f;
		assert_int_equal(ilog_frontier_load(&f, n, &src), 0);
		ilog_frontier_root(&f, got);
		assert_memory_equal(got, want, ILOG_HASH_BYTES);
	}
	free(t);
}

static void check_proof(const ilog_hash *got, size_t n, const char *const *want, size_t wn)
{
	assert_int_equal(n, wn);
	for (size_t i = 0; i < n; i++) {
		ilog_hash w;
		hash_from_hex(want[i], w);
		assert_memory_equal(got[i], w, ILOG_HASH_BYTES);
	}
}

static void test_ct_proofs(void **state)
{
	(void)state;
	struct mem_tree *t = mem_ct(8);
	ilog_source src = { mem_node, t };
	ilog_hash p[ILOG_PROOF_MAX];
	size_t n;

	static const char *const incl_0_8[] = {
		"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
		"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
		"6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
	};
	assert_int_equal(ilog_inclusion_proof(&src, 0, 8, p, &n), 0);
	check_proof(p, n, incl_0_8, 3);

	static const char *const incl_5_8[] = {
		"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
		"ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
		"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
	};
	assert_int_equal(ilog_inclusion_proof(&src, 5, 8, p, &n), 0);
	check_proof(p, n, incl_5_8, 3);

	static const char *const incl_2_3[] = {
		"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
	};
	assert_int_equal(ilog_inclusion_proof(&src, 2, 3, p, &n), 0);
	check_proof(p, n, incl_2_3, 1);

	static const char *const incl_1_5[] = {
		"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
		"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
		"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
	};
	assert_int_equal(ilog_inclusion_proof(&src, 1, 5, p, &n), 0);
	check_proof(p, n, incl_1_5, 3);

	assert_int_equal(ilog_inclusion_proof(&src, 0, 1, p, &n), 0);
	assert_int_equal(n, 0);

	static const char *const cons_1_8[] = {
		"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
		"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
		"6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
	};
	assert_int_equal(ilog_consistency_proof(&src, 1, 8, p, &n), 0);
	check_proof(p, n, cons_1_8, 3);

	static const char *const cons_6_8[] = {
		"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
		"ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
		"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
	};
	assert_int_equal(ilog_consistency_proof(&src, 6, 8, p, &n), 0);
	check_proof(p, n, cons_6_8, 3);

	static const char *const cons_2_5[] = {
		"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
		"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
	};
	assert_int_equal(ilog_consistency_proof(&src, 2, 5, p, &n), 0);
	check_proof(p, n, cons_2_5, 2);

	static const char *const cons_3_7[] = {
		"0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
		"07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
		"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
		"837dbb152e9b079010717e84e865da4ebc0fa198a806d59d31bf15accef22d0e",
	};
	assert_int_equal(ilog_consistency_proof(&src, 3, 7, p, &n), 0);
	check_proof(p, n, cons_3_7, 4);

	assert_int_equal(ilog_consistency_proof(&src, 8, 8, p, &n), 0);
	assert_int_equal(n, 0);
	free(t);
}

static void test_against_reference(void **state)
{
	(void)state;
	struct mem_tree *t = mem_counting(MAX_LEAVES);
	ilog_source src = { mem_node, t };
	for (size_t size = 1; size <= MAX_LEAVES; size++) {
		ilog_hash root, want;
		ref_mth(t->leaves, size, want);
		assert_int_equal(ilog_range_hash(&src, 0, size, root), 0);
		assert_memory_equal(root, want, ILOG_HASH_BYTES);
		for (size_t m = 0; m < size; m++) {
			ilog_hash got[ILOG_PROOF_MAX], ref[ILOG_PROOF_MAX];
			size_t n = 0, rn = 0;
			t->reads = 0;
			assert_int_equal(ilog_inclusion_proof(&src, m, size, got, &n), 0);
			ref_path(m, t->leaves, size, ref, &rn);
			assert_int_equal(n, rn);
			assert_memory_equal(got, ref, n * sizeof *got);
			assert_true(rfc_verify_inclusion(m, size, t->leaves[m], got, n, root));
			assert_true(ilog_inclusion_verify(m, size, t->leaves[m], got, n, root));
			if (n > 0) {
				got[n - 1][3] ^= 1;
				assert_false(ilog_inclusion_verify(m, size, t->leaves[m], got, n, root));
				got[n - 1][3] ^= 1;
			}
			/* O(log n) reads: at most a path's worth plus one right edge. */
			assert_true(t->reads <= 2 * 7 + 1);
			if (size > 1)
				assert_false(rfc_verify_inclusion(m, size, t->leaves[(m + 1) % size], got,
								  n, root));
			if (size > 1)
				assert_false(ilog_inclusion_verify(m, size, t->leaves[(m + 1) % size],
								   got, n, root));
		}
		for (size_t first = 1; first <= size; first++) {
			ilog_hash got[ILOG_PROOF_MAX], ref[ILOG_PROOF_MAX], r1;
			size_t n = 0, rn = 0;
			assert_int_equal(ilog_consistency_proof(&src, first, size, got, &n), 0);
			ref_subproof(first, t->leaves, size, 1, ref, &rn);
			assert_int_equal(n, rn);
			assert_memory_equal(got, ref, n * sizeof *got);
			ref_mth(t->leaves, first, r1);
			assert_true(rfc_verify_consistency(first, size, r1, root, got, n));
			if (first < size)
				assert_false(rfc_verify_consistency(first, size, root, root, got, n));
		}
	}
	free(t);
}

struct emitted {
	unsigned level[16];
	uint64_t index[16];
	size_t n;
	int refuse_at; /* refuse the emission with this number (from 0), -1 never */
};

static int record_emit(void *ctx, unsigned level, uint64_t index, const ilog_hash hash)
{
	(void)hash;
	struct emitted *e = ctx;
	if ((int)e->n == e->refuse_at)
		return 7;
	e->level[e->n] = level;
	e->index[e->n] = index;
	e->n++;
	return 0;
}

static void test_frontier_emits_completed_subtrees(void **state)
{
	(void)state;
	ilog_frontier f;
	ilog_frontier_init(&f);
	struct emitted e = { .refuse_at = -1 };
	ilog_hash leaf = { 0 };
	for (int i = 0; i < 4; i++)
		assert_int_equal(ilog_frontier_push(&f, leaf, record_emit, &e), 0);
	/* leaf 0; leaf 1 and [0,2); leaf 2; leaf 3, [2,4) and [0,4). */
	static const unsigned lv[] = { 0, 0, 1, 0, 0, 1, 2 };
	static const uint64_t ix[] = { 0, 1, 0, 2, 3, 1, 0 };
	assert_int_equal(e.n, 7);
	assert_memory_equal(e.level, lv, sizeof lv);
	assert_memory_equal(e.index, ix, sizeof ix);
	assert_int_equal(f.size, 4);
}

static void test_frontier_refusal_changes_nothing(void **state)
{
	(void)state;
	struct mem_tree *t = mem_counting(3);
	ilog_frontier before = t->f;
	struct emitted e = { .refuse_at = 1 }; /* the leaf is fine, [2,4) is refused */
	ilog_hash leaf;
	ilog_hash_leaf("x", 1, leaf);
	assert_int_equal(ilog_frontier_push(&t->f, leaf, record_emit, &e), 7);
	assert_memory_equal(&t->f, &before, sizeof before);
	free(t);
}

static void test_frontier_load_matches_push(void **state)
{
	(void)state;
	struct mem_tree *t = mem_counting(MAX_LEAVES);
	ilog_source src = { mem_node, t };
	ilog_frontier f;
	assert_int_equal(ilog_frontier_load(&f, MAX_LEAVES, &src), 0);
	ilog_hash a, b;
	ilog_frontier_root(&f, a);
	ilog_frontier_root(&t->f, b);
	assert_memory_equal(a, b, ILOG_HASH_BYTES);
	/* And appending to the loaded frontier continues the same tree. */
	ilog_hash leaf;
	ilog_hash_leaf("next", 4, leaf);
	assert_int_equal(ilog_frontier_push(&f, leaf, NULL, NULL), 0);
	ilog_hash all[MAX_LEAVES + 1];
	memcpy(all, t->leaves, sizeof t->leaves);
	memcpy(all[MAX_LEAVES], leaf, ILOG_HASH_BYTES);
	ref_mth(all, MAX_LEAVES + 1, b);
	ilog_frontier_root(&f, a);
	assert_memory_equal(a, b, ILOG_HASH_BYTES);
	free(t);
}

static void test_bad_arguments_and_source_errors(void **state)
{
	(void)state;
	struct mem_tree *t = mem_counting(5);
	ilog_source src = { mem_node, t };
	ilog_hash p[ILOG_PROOF_MAX];
	size_t n;
	assert_int_not_equal(ilog_inclusion_proof(&src, 5, 5, p, &n), 0);
	assert_int_not_equal(ilog_consistency_proof(&src, 0, 5, p, &n), 0);
	assert_int_not_equal(ilog_consistency_proof(&src, 4, 3, p, &n), 0);
	/* A missing subtree is reported with the source's own code. */
	t->have[2][0] = 0;
	assert_int_equal(ilog_inclusion_proof(&src, 4, 5, p, &n), -42);
	assert_int_equal(ilog_consistency_proof(&src, 5, 5, p, &n), 0);
	ilog_frontier f;
	assert_int_equal(ilog_frontier_load(&f, 5, &src), -42);
	ilog_hash h;
	assert_int_equal(ilog_range_hash(&src, 0, 0, h), 0); /* the empty tree reads nothing */
	free(t);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hashes),
		cmocka_unit_test(test_ct_roots),
		cmocka_unit_test(test_ct_proofs),
		cmocka_unit_test(test_against_reference),
		cmocka_unit_test(test_frontier_emits_completed_subtrees),
		cmocka_unit_test(test_frontier_refusal_changes_nothing),
		cmocka_unit_test(test_frontier_load_matches_push),
		cmocka_unit_test(test_bad_arguments_and_source_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
