/* Ranked search over the librarian's block index (index.h), without FTS5:
 * the queries users type most (words ANDed, or words ORed, with -exclusions
 * and tag filters) ranked exactly as FTS5's bm25() ranks them (bm25.h),
 * without scoring every match:
 *
 *   - one word, no filter: its blocks best bound first, stopping at the
 *     first block whose bound is below the k-th score found (the total is
 *     the word's document count, known without reading a posting);
 *   - otherwise document at a time over all the words' postings (block-max
 *     WAND for OR, block-max skipping for AND): matches are counted exactly
 *     up to LIB_TOTAL_EXACT_MAX; past that, any stretch of documents whose
 *     blocks' bounds sum below the k-th score is skipped without decoding.
 *
 * Ties go to the smaller document id, as FTS5's "ORDER BY bm25, id" did.
 * The caller holds a read transaction: everything comes from one
 * snapshot. No HTTP, no JSON; the connection and tokenizer are borrowed. */
#ifndef GRACE_LIBRARIAN_SEARCH_H
#define GRACE_LIBRARIAN_SEARCH_H

#include "kernels/layer.h"

#include "kernels/librarian/tok.h"
#include "sdk/err.h"

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#define LIB_TOTAL_EXACT_MAX 10000
#define LIB_HITS_MAX 100u    /* k at most (LIB_SEARCH_LIMIT_MAX) */
#define LIB_SQ_WORDS_MAX 16u /* words (and exclusions) of a fast query */
#define LIB_SQ_TAGS_MAX 8u   /* tag filters of a query */

/* A query in the form the block index answers (lib_sq_parse). */
typedef struct lib_sq {
	char *word[LIB_SQ_WORDS_MAX]; /* stemmed terms, in query order (owned) */
	unsigned nword;
	bool or_mode; /* any word instead of every word */
	char *excl[LIB_SQ_WORDS_MAX]; /* terms a hit must not have (owned) */
	unsigned nexcl;
	char *tag[LIB_SQ_TAGS_MAX]; /* tags a hit must have (owned) */
	unsigned ntag;
} lib_sq;

typedef struct lib_hit {
	int64_t doc;
	double score;
} lib_hit;

typedef struct lib_ranked {
	lib_hit hit[LIB_HITS_MAX];
	unsigned n;
	int64_t total;    /* at most LIB_TOTAL_EXACT_MAX */
	bool total_exact; /* false: "at least total" */
	uint64_t scored;  /* documents scored: the work done */
	uint64_t blocks;  /* blocks decoded */
} lib_ranked;

/* words: the user's query (tag: filters and -exclusions already taken
 * out, see store.c); tags borrowed and copied. 1 and *sq filled when the
 * block index can answer it, 0 when only FTS5 can (a phrase, a prefix, a
 * column filter, NEAR, parentheses, a word the tokenizer splits), or a
 * negative status. Free with lib_sq_clear either way. */
int lib_sq_parse(lib_tok *tok, const char *const *pos, unsigned npos, const char *const *excl,
		 unsigned nexcl, const char *const *tags, unsigned ntag, lib_sq *sq, sdk_err *err);
void lib_sq_clear(lib_sq *sq);

/* The top `limit` (1..LIB_HITS_MAX) of sq. count_max: where exact
 * counting stops and pruning may start (0: LIB_TOTAL_EXACT_MAX; the tests
 * lower it to prune on small corpora). exhaustive: score every match, no
 * pruning (the tests' reference). SDK_EBUSY when the index is not
 * complete (a rebuild is catching up). */
int lib_sq_rank(sqlite3 *db, const lib_sq *sq, unsigned limit, int64_t count_max,
		bool exhaustive, lib_ranked *r, sdk_err *err);

/* A search connection's caches, kept between its searches; one
 * connection's, one thread at a time:
 *
 *   - its copy of the index's pending documents (index.h) as term ->
 *     postings, kept while the pending set is the one it was read from
 *     (named by ix_pending's count and largest seq in the search's
 *     snapshot). Read again whole when it changed: a set at most a merge
 *     threshold large, between merges. Past LIB_PEND_CACHE_BYTES the set
 *     is read per search instead (the postings of the query's terms only);
 *   - its statements (the ranking's, the page's, the read transaction's),
 *     prepared once: preparing them was a tenth of a one-word search.
 *
 * Free it before closing its connection (its statements are of it). */
#define LIB_PEND_CACHE_BYTES (64u << 20)
typedef struct lib_sq_cache lib_sq_cache;
lib_sq_cache *lib_sq_cache_new(void);
void lib_sq_cache_free(lib_sq_cache *pc);
/* A statement of `sql` (a literal: it must outlive pc) on db: pc's,
 * prepared the first time, or, with pc NULL, full or that statement in
 * use already, one of its own. NULL when it does not prepare
 * (sqlite3_errmsg(db) says why). Give every one taken back: pc's are
 * reset and unbound, the others finalized. */
sqlite3_stmt *lib_sq_stmt_take(lib_sq_cache *pc, sqlite3 *db, const char *sql);
void lib_sq_stmt_give(lib_sq_cache *pc, sqlite3_stmt *st);
/* lib_sq_rank with a cache (NULL: none, the set read per search). */
int lib_sq_rank_cached(sqlite3 *db, lib_sq_cache *pc, const lib_sq *sq, unsigned limit,
		       int64_t count_max, bool exhaustive, lib_ranked *r, sdk_err *err);

#endif
