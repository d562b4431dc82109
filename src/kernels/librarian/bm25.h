/* The librarian's ranking: Okapi BM25 exactly as SQLite's FTS5 bm25()
 * computed it for the librarian before schema 3 (bm25(documents_fts, 10.0,
 * 1.0, 5.0)), so a ranking users knew stays the same:
 *
 *   score(D) = sum over the query's phrases p, in query order, of
 *              idf(p) * f(p,D) * (k1 + 1) / (f(p,D) + k1 * (1 - b + b * |D| / avgdl))
 *
 *   f(p,D)  = the instances of p in D, each weighted by its field:
 *             title 10, body 1, tags 5 (the "title boost")
 *   |D|     = D's tokens in all three fields; avgdl = all tokens / documents
 *   idf(p)  = ln((N - n(p) + 0.5) / (n(p) + 0.5)), at least 1e-6, where N is
 *             the documents and n(p) those p matches
 *   k1 = 1.2, b = 0.75
 *
 * Every score (the exhaustive one, the pruned one, a bound) goes through
 * lib_bm25_term with the operations in this order, so equal inputs give
 * equal doubles, bit for bit. Ties are broken by the smaller document id. */
#ifndef GRACE_LIBRARIAN_BM25_H
#define GRACE_LIBRARIAN_BM25_H

#include "kernels/layer.h"

#include <math.h>
#include <stdint.h>

#define LIB_BM25_K1 1.2
#define LIB_BM25_B 0.75
#define LIB_FIELDS 3 /* title, body, tags: the order of lib_blk.tf */
#define LIB_FIELDS_MASK 7u
#define LIB_W_TITLE 10u
#define LIB_W_BODY 1u
#define LIB_W_TAGS 5u
/* A block's or a term's bound is raised by this much, so that rounding in
 * a sum taken in another order can never make a bound fall below a score
 * it covers. */
#define LIB_BOUND_SLACK (1.0 + 1e-9)

static const unsigned lib_field_weight[LIB_FIELDS] = { LIB_W_TITLE, LIB_W_BODY, LIB_W_TAGS };

static inline double lib_idf(int64_t docs, int64_t hits)
{
	double idf = log(((double)(docs - hits) + 0.5) / ((double)hits + 0.5));
	return idf <= 0.0 ? 1e-6 : idf;
}

/* One phrase's part of a score: f its weighted frequency, dl the
 * document's tokens. */
static inline double lib_bm25_term(double idf, double f, double dl, double avgdl)
{
	return idf * ((f * (LIB_BM25_K1 + 1.0)) /
		      (f + LIB_BM25_K1 * (1 - LIB_BM25_B + LIB_BM25_B * dl / avgdl)));
}

/* The weighted frequency of a posting's counts per field, those in `mask`
 * (bit i: field i) only. */
static inline uint32_t lib_weighted(const uint32_t tf[LIB_FIELDS], unsigned mask)
{
	uint32_t f = 0;
	for (unsigned i = 0; i < LIB_FIELDS; i++)
		if (mask & (1u << i))
			f += tf[i] * lib_field_weight[i];
	return f;
}

#endif
