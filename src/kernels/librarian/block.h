/* A block of postings: the unit the index stores, reads and skips.
 *
 * A term's postings (the documents it occurs in, ascending) are cut into
 * blocks of about LIB_BLK_TARGET. Each block is three blobs:
 *
 *   docs   varint first doc, then per posting: the doc's delta from the
 *          previous one (none for the first), its length in tokens, and
 *          varint(tf_body << 2 | (tf_title > 0) << 1 | (tf_tags > 0)),
 *          followed by tf_title and tf_tags when flagged
 *   pos    per posting, per field with tf > 0 (title, body, tags), tf
 *          positions as deltas from the previous one of that field (the
 *          first from 0), when the block has them (has_pos). The index
 *          writes none: phrases and NEAR are FTS5's, which keeps them
 *          already, so the blob is empty (half the writing, and the disk)
 *   bound  a few (f, dl) points, f the weighted frequency: every posting
 *          of the block has f <= and dl >= one of them. BM25 grows with f
 *          and shrinks with dl, so the best of the points bounds every
 *          score in the block whatever idf and avgdl are at query time.
 *
 * All varints are unsigned LEB128. Decoding checks every length: a damaged
 * blob is SDK_ECORRUPT, never a read out of bounds. No SQLite here. */
#ifndef GRACE_LIBRARIAN_BLOCK_H
#define GRACE_LIBRARIAN_BLOCK_H

#include "kernels/layer.h"

#include "kernels/librarian/bm25.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LIB_BLK_TARGET 128 /* postings per block when appending */
#define LIB_BLK_MAX 256    /* a block grown past this by inserts is split */
#define LIB_BOUND_POINTS 4
#define LIB_POS_MAX (1u << 24) /* positions in one block, at most */

/* A growable byte buffer (owns p). */
typedef struct lib_buf {
	uint8_t *p;
	size_t n, cap;
} lib_buf;

bool lib_buf_reserve(lib_buf *b, size_t more);
bool lib_buf_varint(lib_buf *b, uint64_t v);
void lib_buf_free(lib_buf *b);
/* Reads a varint at *i of p[0..n): false when it runs past n or is too long. */
bool lib_varint(const uint8_t *p, size_t n, size_t *i, uint64_t *v);

/* A decoded block (owns its arrays). pos/poff are valid when has_pos. */
typedef struct lib_blk {
	uint32_t n, cap;
	int64_t *doc;
	uint32_t *dl;
	uint32_t (*tf)[LIB_FIELDS];
	bool has_pos;
	uint32_t *poff; /* n + 1 offsets into pos */
	uint32_t *pos;
	uint32_t npos, pos_cap;
} lib_blk;

typedef struct lib_bound {
	uint32_t n;
	uint32_t f[LIB_BOUND_POINTS];
	uint32_t dl[LIB_BOUND_POINTS];
} lib_bound;

void lib_blk_free(lib_blk *b);
void lib_blk_clear(lib_blk *b);
bool lib_blk_reserve(lib_blk *b, uint32_t n);
bool lib_blk_pos_reserve(lib_blk *b, uint32_t npos);

/* Decodes `docs` (and `pos` unless NULL) into b: 0 or SDK_ECORRUPT. */
int lib_blk_decode(lib_blk *b, const uint8_t *docs, size_t docs_len, const uint8_t *pos,
		   size_t pos_len);
/* Postings [from, from + count) of b (which has_pos) into the three blobs
 * (appended to). avgdl picks which points to merge when there are more
 * than LIB_BOUND_POINTS (any positive value gives a valid bound). */
bool lib_blk_encode(const lib_blk *b, uint32_t from, uint32_t count, double avgdl, lib_buf *docs,
		    lib_buf *pos, lib_buf *bound);

/* A block's docs blob grown in place (the index's tails, which keep no
 * positions): postings [from, from + count) of b as they would follow a
 * posting of document `prev` (> 0) in lib_blk_encode's blob, appended
 * to docs. A blob so grown is the bytes lib_blk_encode writes for the
 * whole block. */
bool lib_blk_encode_more(const lib_blk *b, uint32_t from, uint32_t count, int64_t prev,
			 lib_buf *docs);
/* A block's bound in two steps, so that a block that grows (a tail in
 * the writer's cache) keeps its undominated points and adds the new
 * postings' to them: the points of postings [from, from + count) of b
 * added (the same set whatever order they come in), then the bound
 * lib_blk_encode writes for the postings added so far, appended to out. */
typedef struct lib_stair {
	uint32_t (*pt)[2]; /* (f, dl), f descending; owned */
	uint32_t n, cap;
} lib_stair;
bool lib_stair_add(lib_stair *s, const lib_blk *b, uint32_t from, uint32_t count);
bool lib_stair_bound(const lib_stair *s, double avgdl, lib_buf *out);
void lib_stair_free(lib_stair *s);

int lib_bound_decode(const uint8_t *p, size_t n, lib_bound *out);
/* The best BM25 term score any posting under `bd` can have. */
double lib_bound_score(const lib_bound *bd, double idf, double avgdl);

#endif
