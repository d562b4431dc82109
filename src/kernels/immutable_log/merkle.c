/* RFC 6962 Merkle tree math: hashing, the append frontier, and proofs built
 * from complete aligned subtrees (see merkle.h). */
#include "merkle.h"

#include <sodium.h>
#include <string.h>

static const unsigned char ilog_leaf_prefix = 0x00;
static const unsigned char ilog_node_prefix = 0x01;

void ilog_hash_leaf(const void *entry, size_t len, ilog_hash out)
{
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, &ilog_leaf_prefix, 1);
	crypto_hash_sha256_update(&st, entry, len);
	crypto_hash_sha256_final(&st, out);
}

void ilog_hash_node(const ilog_hash left, const ilog_hash right, ilog_hash out)
{
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, &ilog_node_prefix, 1);
	crypto_hash_sha256_update(&st, left, ILOG_HASH_BYTES);
	crypto_hash_sha256_update(&st, right, ILOG_HASH_BYTES);
	crypto_hash_sha256_final(&st, out);
}

void ilog_hash_empty(ilog_hash out)
{
	crypto_hash_sha256(out, (const unsigned char *)"", 0);
}

void ilog_hash_hex(const ilog_hash h, char out[2 * ILOG_HASH_BYTES + 1])
{
	sodium_bin2hex(out, 2 * ILOG_HASH_BYTES + 1, h, ILOG_HASH_BYTES);
}

/* The RFC's split point k: the largest power of two strictly below n (n >= 2). */
static uint64_t ilog_split(uint64_t n)
{
	return (uint64_t)1 << (63 - __builtin_clzll(n - 1));
}

static int ilog_is_pow2(uint64_t n)
{
	return n && !(n & (n - 1));
}

void ilog_frontier_init(ilog_frontier *f)
{
	memset(f, 0, sizeof *f);
}

int ilog_frontier_push(ilog_frontier *f, const ilog_hash leaf, ilog_emit_fn emit, void *ctx)
{
	if (f->size == UINT64_MAX)
		return -1;
	/* Work on a copy so a refusal from `emit` leaves *f as it was. */
	ilog_hash carry;
	memcpy(carry, leaf, ILOG_HASH_BYTES);
	int rc = emit ? emit(ctx, 0, f->size, carry) : 0;
	if (rc)
		return rc;
	unsigned level = 0;
	/* Like a binary increment: each set low bit is a complete left sibling
	 * that merges with the carry into the next level. */
	while (f->size >> level & 1) {
		ilog_hash up;
		ilog_hash_node(f->h[level], carry, up);
		memcpy(carry, up, ILOG_HASH_BYTES);
		level++;
		rc = emit ? emit(ctx, level, f->size >> level, carry) : 0;
		if (rc)
			return rc;
	}
	memcpy(f->h[level], carry, ILOG_HASH_BYTES);
	f->size++;
	return 0;
}

void ilog_frontier_root(const ilog_frontier *f, ilog_hash out)
{
	if (!f->size) {
		ilog_hash_empty(out);
		return;
	}
	/* Fold from the smallest subtree up: each larger one is a left child. */
	unsigned level = (unsigned)__builtin_ctzll(f->size);
	memcpy(out, f->h[level], ILOG_HASH_BYTES);
	for (level++; level < ILOG_LEVELS_MAX; level++)
		if (f->size >> level & 1)
			ilog_hash_node(f->h[level], out, out);
}

int ilog_frontier_load(ilog_frontier *f, uint64_t size, const ilog_source *src)
{
	ilog_frontier_init(f);
	for (unsigned level = 0; level < ILOG_LEVELS_MAX; level++) {
		if (!(size >> level & 1))
			continue;
		int rc = src->node(src->ctx, level, (size >> level) - 1, f->h[level]);
		if (rc)
			return rc;
	}
	f->size = size;
	return 0;
}

int ilog_range_hash(const ilog_source *src, uint64_t lo, uint64_t hi, ilog_hash out)
{
	if (lo >= hi) {
		ilog_hash_empty(out);
		return 0;
	}
	uint64_t n = hi - lo;
	if (ilog_is_pow2(n) && lo % n == 0)
		return src->node(src->ctx, (unsigned)__builtin_ctzll(n), lo / n, out);
	/* Only the right part recurses: the left part of a range that proofs
	 * ask for is always a complete aligned subtree, so one read. */
	uint64_t k = ilog_split(n);
	ilog_hash left, right;
	int rc = ilog_range_hash(src, lo, lo + k, left);
	if (!rc)
		rc = ilog_range_hash(src, lo + k, hi, right);
	if (!rc)
		ilog_hash_node(left, right, out);
	return rc;
}

/* The RFC defines both proofs top-down with the deepest hash first, so they
 * are collected top-down here and reversed at the end. */
static void ilog_reverse(ilog_hash *h, size_t n)
{
	for (size_t i = 0; i < n / 2; i++) {
		ilog_hash t;
		memcpy(t, h[i], ILOG_HASH_BYTES);
		memcpy(h[i], h[n - 1 - i], ILOG_HASH_BYTES);
		memcpy(h[n - 1 - i], t, ILOG_HASH_BYTES);
	}
}

int ilog_inclusion_proof(const ilog_source *src, uint64_t index, uint64_t size,
			 ilog_hash out[ILOG_PROOF_MAX], size_t *n_out)
{
	if (index >= size)
		return -1;
	size_t n = 0;
	uint64_t lo = 0, hi = size;
	while (hi - lo > 1) {
		uint64_t k = ilog_split(hi - lo);
		int rc;
		if (index < lo + k) {
			rc = ilog_range_hash(src, lo + k, hi, out[n]);
			hi = lo + k;
		} else {
			rc = ilog_range_hash(src, lo, lo + k, out[n]);
			lo += k;
		}
		if (rc)
			return rc;
		n++;
	}
	ilog_reverse(out, n);
	*n_out = n;
	return 0;
}

int ilog_consistency_proof(const ilog_source *src, uint64_t first, uint64_t second,
			   ilog_hash out[ILOG_PROOF_MAX], size_t *n_out)
{
	if (first == 0 || first > second)
		return -1;
	size_t n = 0;
	uint64_t lo = 0, hi = second, m = first;
	int whole = 1; /* the RFC's b: is [lo, hi) still a prefix of the old tree? */
	int rc = 0;
	/* SUBPROOF(m, D[lo:hi], b), unrolled: one branch per level. */
	while (m != hi - lo) {
		uint64_t k = ilog_split(hi - lo);
		if (m <= k) {
			rc = ilog_range_hash(src, lo + k, hi, out[n++]);
			hi = lo + k;
		} else {
			rc = ilog_range_hash(src, lo, lo + k, out[n++]);
			m -= k;
			lo += k;
			whole = 0;
		}
		if (rc)
			return rc;
	}
	if (!whole)
		rc = ilog_range_hash(src, lo, hi, out[n++]);
	if (rc)
		return rc;
	ilog_reverse(out, n);
	*n_out = n;
	return 0;
}

/* RFC 9162 section 2.1.3.2, for archives checked away from the log. */
bool ilog_inclusion_verify(uint64_t index, uint64_t size, const ilog_hash leaf,
			   const ilog_hash *path, size_t n, const ilog_hash root)
{
	if (index >= size)
		return false;
	uint64_t fn = index, sn = size - 1;
	ilog_hash r;
	memcpy(r, leaf, ILOG_HASH_BYTES);
	for (size_t i = 0; i < n; i++) {
		if (sn == 0)
			return false;
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
