/* RFC 6962 Merkle tree math, with no storage and no HTTP.
 *
 * Hashes: leaf = SHA-256(0x00 || entry), node = SHA-256(0x01 || left || right),
 * the empty tree's root is SHA-256(""), and a tree of n > 1 leaves splits at
 * the largest power of two smaller than n (RFC 6962 section 2.1).
 *
 * The trees are described by their *complete aligned subtrees*: node
 * (level, index) is the root of leaves [index * 2^level, (index + 1) * 2^level).
 * Such a node never changes once its last leaf is appended, so a store can keep
 * every one of them and compose the hash of any range a proof needs from
 * O(log n) of them, for the current tree or any earlier size. */
#ifndef GRACE_IMMUTABLE_LOG_MERKLE_H
#define GRACE_IMMUTABLE_LOG_MERKLE_H

#include "kernels/layer.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ILOG_HASH_BYTES 32
#define ILOG_LEVELS_MAX 64
/* An inclusion path has at most one hash per level; a consistency proof at
 * most one more. */
#define ILOG_PROOF_MAX (ILOG_LEVELS_MAX + 2)

typedef unsigned char ilog_hash[ILOG_HASH_BYTES];

void ilog_hash_leaf(const void *entry, size_t len, ilog_hash out);
void ilog_hash_node(const ilog_hash left, const ilog_hash right, ilog_hash out);
void ilog_hash_empty(ilog_hash out);

/* The right edge of a tree of `size` leaves: h[l] is valid when bit l of
 * size is set, and is the node covering the 2^l leaves just before the ones
 * of the lower set bits. Enough to append and to compute the root. */
typedef struct ilog_frontier {
	uint64_t size;
	ilog_hash h[ILOG_LEVELS_MAX];
} ilog_frontier;

/* Called for the new leaf (level 0) and for every subtree the leaf
 * completes, lowest level first; a non-zero return stops the push and is
 * returned by it (the frontier is then left unchanged). */
typedef int (*ilog_emit_fn)(void *ctx, unsigned level, uint64_t index, const ilog_hash hash);

void ilog_frontier_init(ilog_frontier *f);
int ilog_frontier_push(ilog_frontier *f, const ilog_hash leaf, ilog_emit_fn emit, void *ctx);
void ilog_frontier_root(const ilog_frontier *f, ilog_hash out);

/* Where proofs read complete aligned subtrees from: fills `out` with node
 * (level, index) and returns 0, or returns non-zero (passed on unchanged). */
typedef int (*ilog_node_fn)(void *ctx, unsigned level, uint64_t index, ilog_hash out);

typedef struct ilog_source {
	ilog_node_fn node;
	void *ctx;
} ilog_source;

/* The frontier of the first `size` leaves, read from `src`. */
int ilog_frontier_load(ilog_frontier *f, uint64_t size, const ilog_source *src);

/* MTH(D[lo:hi]) for 0 <= lo < hi where lo is a multiple of the largest power
 * of two smaller than hi - lo (true of every range RFC 6962 proofs use);
 * O(log(hi - lo)) node reads. lo == hi gives the empty tree's hash. */
int ilog_range_hash(const ilog_source *src, uint64_t lo, uint64_t hi, ilog_hash out);

/* PATH(index, D[0:size]) of RFC 6962 2.1.1, the leaf's sibling first;
 * requires index < size. */
int ilog_inclusion_proof(const ilog_source *src, uint64_t index, uint64_t size,
			 ilog_hash out[ILOG_PROOF_MAX], size_t *n_out);

/* PROOF(first, D[0:second]) of RFC 6962 2.1.2; requires 0 < first <= second.
 * first == second gives the empty proof. */
int ilog_consistency_proof(const ilog_source *src, uint64_t first, uint64_t second,
			   ilog_hash out[ILOG_PROOF_MAX], size_t *n_out);

/* Whether `path` proves `leaf` is entry `index` of the tree of `size`
 * leaves with root `root` (RFC 9162 2.1.3.2): for checking an archive
 * without the log. */
bool ilog_inclusion_verify(uint64_t index, uint64_t size, const ilog_hash leaf,
			   const ilog_hash *path, size_t n, const ilog_hash root);

/* Lower-case hex of a hash into `out` (65 bytes with the NUL). */
void ilog_hash_hex(const ilog_hash h, char out[2 * ILOG_HASH_BYTES + 1]);

#endif
