/* The librarian's top-k against its references, on a generated corpus
 * (Zipf words, tags), in one in-memory database:
 *
 *   1. pruned == exhaustive over the block index: the same ids in the same
 *      order and the same scores, bit for bit, for thousands of random
 *      queries of one to three words (AND, OR, with exclusions and tags),
 *      counting lowered so that block-max pruning runs on a small corpus;
 *   2. the block index == FTS5's bm25() (what the librarian ranked by
 *      before): the same ids in the same order, scores within 1e-9
 *      relative (the same formula; FTS5 sums its doubles in one order,
 *      we in the same one, so in practice they are equal);
 *   3. deletes and re-ingests keep the index equal to its text (the deep
 *      check), and pruning still equals exhaustive afterwards;
 *   4. the snippets made without FTS5 (lib_snippet) == FTS5's snippet(),
 *      byte for byte, on documents made to hit its corners (sentences,
 *      short bodies, stemmed and accented forms, repeated words, long
 *      tokens), for every matching document of random plain-word queries,
 *      and through lib_search's page; the answer's text (written without
 *      jansson) == jansson's compact dump of what it says;
 *   5. lib_tok_run (ASCII words cut here, their stems remembered) == FTS5's
 *      porter unicode61 tokenizer called directly, token for token, on
 *      random text of ASCII and other letters, marks and separators;
 *      lib_tok_run_some (the snippets') == lib_tok_run but for the
 *      tokens it only places, whose stems are never wanted;
 *   6. lib_g17 (the answer's numbers) == snprintf("%.17g") on 600,000
 *      doubles (random bits, scores, exact ties, near powers of ten).
 *
 * Documents are written one at a time, as POST /documents writes them:
 * into the index's pending table (index.h). Five sixths are merged into
 * the blocks before the rest are written, so every comparison runs over
 * blocks and pending documents at once; the last tests merge the rest
 * and compare again.
 *
 * Under GRACE_SANITIZED=1 the corpus and the number of queries are
 * smaller (ASan is ~10x slower), never skipped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "kernels/librarian/g17.h"
#include "kernels/librarian/index.h"
#include "kernels/librarian/search.h"
#include "kernels/librarian/store.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VOCAB 400
#define TAGS 6

struct fx {
	sqlite3 *db;
	lib_tok *tok;
	lib_sq_cache *pc; /* the pruned searches': it must follow every change */
	char vocab[VOCAB][12];
	double cum[VOCAB];
	uint64_t rng;
	unsigned docs, queries;
};

static uint64_t next(struct fx *f)
{
	f->rng ^= f->rng << 13;
	f->rng ^= f->rng >> 7;
	f->rng ^= f->rng << 17;
	return f->rng;
}

static unsigned below(struct fx *f, unsigned n) { return (unsigned)(next(f) % n); }

static const char *zipf(struct fx *f)
{
	double x = (double)(next(f) % 1000000) / 1e6 * f->cum[VOCAB - 1];
	unsigned lo = 0, hi = VOCAB - 1;
	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;
		if (f->cum[mid] < x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return f->vocab[lo];
}

static void words(struct fx *f, char *out, size_t cap, unsigned n)
{
	size_t o = 0;
	for (unsigned i = 0; i < n; i++)
		o += (size_t)snprintf(out + o, cap - o, "%s%s", i ? " " : "", zipf(f));
}

static void put_doc(struct fx *f)
{
	char title[200], body[4000];
	words(f, title, sizeof title, 2 + below(f, 5));
	words(f, body, sizeof body, 20 + below(f, 150));
	json_t *tags = json_array();
	unsigned nt = below(f, 3);
	for (unsigned i = 0; i < nt; i++)
		json_array_append_new(tags, json_sprintf("tag%u", below(f, TAGS)));
	sdk_err e;
	int64_t id;
	int rc = lib_doc_put(f->db, title, body, tags, NULL, &id, &e);
	if (rc)
		fail_msg("put: %s", e.msg);
	json_decref(tags);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	const char *san = getenv("GRACE_SANITIZED");
	bool small = san && *san && strcmp(san, "0");
	f->docs = small ? 500 : 1200;
	f->queries = small ? 200 : 600;
	f->rng = 0x9e3779b97f4a7c15ull;
	const char *cons = "bcdfghklmnprstvz", *vows = "aeiou";
	double acc = 0;
	for (unsigned i = 0; i < VOCAB; i++) {
		/* distinct by construction: the index in base 16 of syllables */
		unsigned v = i, o = 0;
		do {
			f->vocab[i][o++] = cons[v % 16];
			f->vocab[i][o++] = vows[(v / 16 + i) % 5];
			v /= 16;
		} while (v);
		f->vocab[i][o++] = 'x';
		f->vocab[i][o] = '\0';
		acc += 1.0 / (i + 1);
		f->cum[i] = acc;
	}
	assert_int_equal(sqlite3_open(":memory:", &f->db), SQLITE_OK);
	sdk_err e;
	assert_int_equal(lib_store_init(f->db, &e), 0);
	assert_int_equal(lib_tok_new(f->db, &f->tok, &e), 0);
	assert_non_null(f->pc = lib_sq_cache_new());
	assert_int_equal(sqlite3_exec(f->db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
	for (unsigned i = 0; i < f->docs; i++) {
		if (i == f->docs * 5 / 6) {
			int64_t merged;
			assert_int_equal(sqlite3_exec(f->db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
			assert_int_equal(lib_ix_merge_all(f->db, NULL, &merged, &e), 0);
			assert_int_equal(merged, i);
			assert_int_equal(sqlite3_exec(f->db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
		}
		put_doc(f);
	}
	assert_int_equal(sqlite3_exec(f->db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	lib_tok_free(f->tok);
	lib_sq_cache_free(f->pc);
	sqlite3_close(f->db);
	free(f);
	return 0;
}

/* A random query: its text for FTS5 and its parsed form. */
struct q {
	char fts[512];
	char tags[64]; /* JSON array or "" */
	lib_sq sq;
};

static void make_query(struct fx *f, struct q *q)
{
	const char *pos[3], *excl[1], *tag[1];
	char tagbuf[16];
	unsigned n = 1 + below(f, 3), nx = below(f, 4) == 0, nt = below(f, 4) == 0;
	bool or_mode = n > 1 && below(f, 2);
	const char *part[5];
	unsigned np = 0;
	for (unsigned i = 0; i < n; i++) {
		/* mostly common words, so that lists are long and pruning bites */
		pos[i] = below(f, 3) ? f->vocab[below(f, 12)] : zipf(f);
		if (i && or_mode)
			part[np++] = "OR";
		part[np++] = pos[i];
	}
	excl[0] = f->vocab[below(f, 30)];
	snprintf(tagbuf, sizeof tagbuf, "tag%u", below(f, TAGS));
	tag[0] = tagbuf;
	size_t o = (size_t)snprintf(q->fts, sizeof q->fts, "(");
	for (unsigned i = 0; i < np; i++)
		o += (size_t)snprintf(q->fts + o, sizeof q->fts - o, "%s%s", i ? " " : "", part[i]);
	o += (size_t)snprintf(q->fts + o, sizeof q->fts - o, ")");
	if (nx)
		snprintf(q->fts + o, sizeof q->fts - o, " NOT %s", excl[0]);
	q->tags[0] = '\0';
	if (nt)
		snprintf(q->tags, sizeof q->tags, "[\"%s\"]", tagbuf);
	sdk_err e;
	assert_int_equal(lib_sq_parse(f->tok, part, np, excl, nx, tag, nt, &q->sq, &e), 1);
}

static void fts_top(struct fx *f, const struct q *q, unsigned k, lib_ranked *r)
{
	sqlite3_stmt *st;
	memset(r, 0, sizeof *r);
	assert_int_equal(sqlite3_prepare_v2(f->db,
		"SELECT rowid, -bm25(documents_fts, 10.0, 1.0, 5.0) FROM documents_fts"
		" WHERE documents_fts MATCH ?1 AND (?2 IS NULL OR rowid IN"
		" (SELECT doc_id FROM document_tags WHERE tag IN (SELECT value FROM json_each(?2))))"
		" ORDER BY bm25(documents_fts, 10.0, 1.0, 5.0), rowid LIMIT ?3", -1, &st, NULL),
		SQLITE_OK);
	sqlite3_bind_text(st, 1, q->fts, -1, SQLITE_STATIC);
	if (q->tags[0])
		sqlite3_bind_text(st, 2, q->tags, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, (int)k);
	while (sqlite3_step(st) == SQLITE_ROW) {
		r->hit[r->n].doc = sqlite3_column_int64(st, 0);
		r->hit[r->n].score = sqlite3_column_double(st, 1);
		r->n++;
	}
	sqlite3_finalize(st);
}

static void same(const lib_ranked *a, const lib_ranked *b, double tol, const char *what,
		 const char *query)
{
	if (a->n != b->n)
		fail_msg("%s: %u hits vs %u for %s", what, a->n, b->n, query);
	for (unsigned i = 0; i < a->n; i++) {
		double x = a->hit[i].score, y = b->hit[i].score;
		if (a->hit[i].doc != b->hit[i].doc || fabs(x - y) > tol * fabs(y))
			fail_msg("%s: hit %u is %lld (%.17g) vs %lld (%.17g) for %s", what, i,
				 (long long)a->hit[i].doc, x, (long long)b->hit[i].doc, y, query);
	}
}

static void compare_all(struct fx *f, bool with_fts)
{
	uint64_t scored = 0, exhaustive_scored = 0;
	sdk_err e;
	lib_ranked *pr = malloc(sizeof *pr), *ex = malloc(sizeof *ex), *ft = malloc(sizeof *ft);
	for (unsigned i = 0; i < f->queries; i++) {
		struct q q;
		make_query(f, &q);
		unsigned k = i % 5 == 0 ? 1 + below(f, 100) : 10;
		/* count_max 50: pruning starts early on a corpus this small */
		/* pruned with the cache, exhaustive reading the pending set anew */
		assert_int_equal(lib_sq_rank_cached(f->db, f->pc, &q.sq, k, 50, false, pr, &e), 0);
		assert_int_equal(lib_sq_rank(f->db, &q.sq, k, 50, true, ex, &e), 0);
		same(pr, ex, 0.0, "pruned vs exhaustive", q.fts);
		scored += pr->scored;
		exhaustive_scored += ex->scored;
		if (with_fts) {
			fts_top(f, &q, k, ft);
			same(ex, ft, 1e-9, "index vs fts5", q.fts);
		}
		lib_sq_clear(&q.sq);
	}
	/* Pruning ran: less work than scoring every match (how much less is
	 * the bench's to say, on a corpus a hundred times this one). */
	print_message("scored %llu of %llu (%.0f%%)\n", (unsigned long long)scored,
		      (unsigned long long)exhaustive_scored, 100.0 * scored / exhaustive_scored);
	assert_true(scored < exhaustive_scored);
	free(pr);
	free(ex);
	free(ft);
}

static void test_topk_equals_references(void **state)
{
	compare_all(*state, true);
}

static void test_counts(void **state)
{
	struct fx *f = *state;
	const char *one[] = { f->vocab[0] };
	lib_sq sq;
	sdk_err e;
	lib_ranked r;
	assert_int_equal(lib_sq_parse(f->tok, one, 1, NULL, 0, NULL, 0, &sq, &e), 1);
	/* Exact under the cap; "at least" at it. */
	assert_int_equal(lib_sq_rank(f->db, &sq, 10, 0, false, &r, &e), 0);
	assert_true(r.total_exact);
	sqlite3_stmt *st;
	sqlite3_prepare_v2(f->db, "SELECT count(*) FROM documents_fts WHERE documents_fts MATCH ?1",
			   -1, &st, NULL);
	sqlite3_bind_text(st, 1, f->vocab[0], -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(r.total, sqlite3_column_int64(st, 0));
	sqlite3_finalize(st);
	assert_int_equal(lib_sq_rank(f->db, &sq, 10, 50, false, &r, &e), 0);
	assert_false(r.total_exact);
	assert_int_equal(r.total, 50);
	lib_sq_clear(&sq);
	/* Shapes the index leaves to FTS5. */
	const char *phrase[] = { "\"a b\"" }, *pre[] = { "ab*" }, *mixed[] = { "a", "OR", "b", "c" };
	assert_int_equal(lib_sq_parse(f->tok, phrase, 1, NULL, 0, NULL, 0, &sq, &e), 0);
	lib_sq_clear(&sq);
	assert_int_equal(lib_sq_parse(f->tok, pre, 1, NULL, 0, NULL, 0, &sq, &e), 0);
	lib_sq_clear(&sq);
	assert_int_equal(lib_sq_parse(f->tok, mixed, 4, NULL, 0, NULL, 0, &sq, &e), 0);
	lib_sq_clear(&sq);
}

static void test_after_deletes_and_updates(void **state)
{
	struct fx *f = *state;
	sdk_err e;
	assert_int_equal(sqlite3_exec(f->db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
	for (int64_t id = 3; id <= (int64_t)f->docs; id += 7)
		assert_int_equal(lib_doc_delete(f->db, id, &e), 0);
	/* Re-ingests by source: the second replaces the first in place. */
	for (unsigned i = 0; i < 50; i++) {
		char src[32];
		snprintf(src, sizeof src, "file://%u", i);
		int64_t a, b;
		assert_int_equal(lib_doc_upsert(f->db, NULL, NULL, f->vocab[i], f->vocab[i + 1], "[]", src,
						10, &a, &e), 0);
		assert_int_equal(lib_doc_upsert(f->db, NULL, NULL, f->vocab[i + 2], f->vocab[0], "[\"tag1\"]",
						src, 10, &b, &e), 0);
		assert_int_equal(a, b);
	}
	for (unsigned i = 0; i < f->docs / 10; i++)
		put_doc(f);
	assert_int_equal(sqlite3_exec(f->db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	json_t *report = NULL;
	int rc = lib_ix_check_deep(f->db, f->tok, 2000, &report, &e);
	if (rc)
		fail_msg("deep check: %s", e.msg);
	json_decref(report);
	compare_all(f, true);
}

/* What is pending merges into the blocks (updated and new documents,
 * some with ids inside the blocks' ranges) and ranks the same after. */
static void test_merge_keeps_rankings(void **state)
{
	struct fx *f = *state;
	sdk_err e;
	int64_t pending = 0, merged = 0;
	sqlite3_stmt *s;
	assert_int_equal(sqlite3_prepare_v2(f->db, "SELECT count(*) FROM ix_pending", -1, &s, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	pending = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	assert_true(pending > 100);
	enum { N = 200 };
	lib_ranked *before = malloc(N * sizeof *before), *after = malloc(sizeof *after);
	uint64_t rng = f->rng;
	for (unsigned i = 0; i < N; i++) {
		struct q q;
		make_query(f, &q);
		assert_int_equal(lib_sq_rank_cached(f->db, f->pc, &q.sq, 10, 50, false, &before[i], &e),
				 0);
		lib_sq_clear(&q.sq);
	}
	assert_int_equal(lib_ix_merge_all(f->db, NULL, &merged, &e), 0);
	assert_int_equal(merged, pending);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int64(s, 0), 0);
	sqlite3_finalize(s);
	/* The same queries again: the same hits, scores and totals, bit for
	 * bit (N, df and avgdl counted the pending documents already). */
	f->rng = rng;
	for (unsigned i = 0; i < N; i++) {
		struct q q;
		make_query(f, &q);
		assert_int_equal(lib_sq_rank_cached(f->db, f->pc, &q.sq, 10, 50, false, after, &e), 0);
		same(after, &before[i], 0.0, "after the merge vs before", q.fts);
		assert_int_equal(after->total, before[i].total);
		lib_sq_clear(&q.sq);
	}
	free(before);
	free(after);
	json_t *report = NULL;
	if (lib_ix_check_deep(f->db, f->tok, 2000, &report, &e))
		fail_msg("deep check: %s", e.msg);
	json_decref(report);
	compare_all(f, true);
	/* Merged documents replaced one at a time: out of their blocks, pending
	 * under their old ids (inside the blocks' ranges), merged back. */
	for (unsigned i = 0; i < 20; i++) {
		char src[32];
		snprintf(src, sizeof src, "file://%u", i);
		int64_t id;
		assert_int_equal(lib_doc_upsert(f->db, NULL, NULL, f->vocab[i + 3], f->vocab[1], "[]",
						src, 10, &id, &e), 0);
	}
	if (lib_ix_check_deep(f->db, f->tok, 2000, &report, &e))
		fail_msg("deep check with replaced documents pending: %s", e.msg);
	json_decref(report);
	compare_all(f, true);
	assert_int_equal(lib_ix_merge_all(f->db, NULL, &merged, &e), 0);
	assert_int_equal(merged, 20);
	if (lib_ix_check_deep(f->db, f->tok, 2000, &report, &e))
		fail_msg("deep check after merging them back: %s", e.msg);
	json_decref(report);
	compare_all(f, true);
}

/* A damaged index is found by the check at start, never served. */
static void test_check_finds_damage(void **state)
{
	struct fx *f = *state;
	sdk_err e;
	assert_int_equal(lib_ix_check_quick(f->db, &e), 0);
	assert_int_equal(sqlite3_exec(f->db, "UPDATE ix_terms SET df = df + 1 WHERE term ="
				      " (SELECT term FROM ix_terms LIMIT 1)", NULL, NULL, NULL),
			 SQLITE_OK);
	assert_int_equal(lib_ix_check_quick(f->db, &e), SDK_ECORRUPT);
	assert_non_null(strstr(e.msg, "counts"));
	assert_int_equal(sqlite3_exec(f->db, "UPDATE ix_terms SET df = df - 1 WHERE term ="
				      " (SELECT term FROM ix_terms LIMIT 1)", NULL, NULL, NULL),
			 SQLITE_OK);
	assert_int_equal(lib_ix_check_quick(f->db, &e), 0);
	/* A pending row whose document is gone. */
	assert_int_equal(sqlite3_exec(f->db, "INSERT INTO ix_pending (doc, terms) VALUES"
				      " (999999, x'0000')", NULL, NULL, NULL),
			 SQLITE_OK);
	assert_int_equal(lib_ix_check_quick(f->db, &e), SDK_ECORRUPT);
	assert_non_null(strstr(e.msg, "pending"));
}

/* ---- 4. snippets */

/* Forms that stem or fold together, and words that never match. */
static const char *const snip_words[] = {
	"run", "running", "Runs", "RUN", "connect", "connection", "connected", "café",
	"CAFÉ", "Cafe", "naïve", "über", "2024", "alpha", "beta", "gamma", "delta",
	"the", "a", "zeppelin", "Zeppelins", "hangar", "envelope", "patch",
};
#define SNIP_NWORDS (sizeof snip_words / sizeof *snip_words)
/* What goes between words: white space of every kind, sentence ends and
 * other punctuation (FTS5 starts a sentence after '.' or ':' and space). */
static const char *const snip_seps[] = {
	" ", " ", " ", " ", "  ", "\n", "\t", ". ", ": ", ".", ",", " - ", "... ", "!\n", "\r\n",
	" : ", ".\n\n", "'", " (", ") ", " \"", "\\", "\x01", "/", "\x7f", "\x1e",
};
/* Tags jansson stores escaped (quotes, backslashes, control characters)
 * and ones it does not. */
static const char *const snip_tags[] = { "plain", "café", "a\"b", "back\\slash", "t\x1b", "x/y" };
#define SNIP_NTAGS (sizeof snip_tags / sizeof *snip_tags)
#define SNIP_NSEPS (sizeof snip_seps / sizeof *snip_seps)

static void snip_body(struct fx *f, char *out, size_t cap)
{
	/* mostly short (under 16 tokens: no window to choose), some long */
	unsigned n = below(f, 4) ? below(f, 24) : 16 + below(f, 120);
	size_t o = 0;
	if (below(f, 4) == 0)
		o += (size_t)snprintf(out + o, cap - o, "%s", snip_seps[below(f, SNIP_NSEPS)]);
	for (unsigned i = 0; i < n && o + 300 < cap; i++) {
		if (i)
			o += (size_t)snprintf(out + o, cap - o, "%s", snip_seps[below(f, SNIP_NSEPS)]);
		if (below(f, 60) == 0) { /* a token past LIB_TERM_MAX */
			memset(out + o, 'q', 200);
			o += 200;
			out[o] = '\0';
		} else {
			o += (size_t)snprintf(out + o, cap - o, "%s",
					      below(f, 3) ? snip_words[below(f, SNIP_NWORDS)]
							  : zipf(f));
		}
	}
	if (below(f, 4) == 0)
		o += (size_t)snprintf(out + o, cap - o, "%s", snip_seps[below(f, SNIP_NSEPS)]);
}

static char *fts_snippet(sqlite3_stmt *st)
{
	const char *s = (const char *)sqlite3_column_text(st, 1);
	return strdup(s ? s : "(null)");
}

static void test_snippets_equal_fts5(void **state)
{
	struct fx *f = *state, g = *f;
	sdk_err e;
	g.rng = 0x5eed5eed12345ull;
	assert_int_equal(sqlite3_open(":memory:", &g.db), SQLITE_OK);
	assert_int_equal(lib_store_init(g.db, &e), 0);
	assert_int_equal(lib_tok_new(g.db, &g.tok, &e), 0);
	unsigned ndocs = f->docs / 2, nq = f->queries;
	char *body = malloc(40000);
	assert_int_equal(sqlite3_exec(g.db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
	for (unsigned i = 0; i < ndocs; i++) {
		snip_body(&g, body, 40000);
		int64_t id;
		json_t *tags = json_array();
		for (unsigned t = below(&g, 3); t; t--)
			json_array_append_new(tags, json_string(snip_tags[below(&g, SNIP_NTAGS)]));
		if (lib_doc_put(g.db, snip_words[below(&g, SNIP_NWORDS)], body, tags, NULL, &id, &e))
			fail_msg("put: %s", e.msg);
		json_decref(tags);
	}
	assert_int_equal(sqlite3_exec(g.db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(g.db,
		"SELECT rowid, snippet(documents_fts, 1, '<mark>', '</mark>', '\xe2\x80\xa6', 16),"
		" (SELECT body FROM documents WHERE id = documents_fts.rowid)"
		" FROM documents_fts WHERE documents_fts MATCH ?1", -1, &st, NULL), SQLITE_OK);
	unsigned compared = 0, windows = 0;
	for (unsigned qi = 0; qi < nq; qi++) {
		const char *part[5];
		unsigned n = 1 + below(&g, 3), np = 0;
		bool or_mode = n > 1 && below(&g, 2);
		char match[256];
		size_t o = 0;
		const char *prev = NULL;
		for (unsigned i = 0; i < n; i++) {
			if (i && or_mode)
				part[np++] = "OR";
			/* repeated words are phrases of their own to FTS5 */
			const char *w = prev && below(&g, 5) == 0 ? prev
					: below(&g, 4)		   ? snip_words[below(&g, SNIP_NWORDS)]
								   : zipf(&g);
			part[np++] = prev = w;
		}
		for (unsigned i = 0; i < np; i++)
			o += (size_t)snprintf(match + o, sizeof match - o, "%s%s", i ? " " : "",
					      part[i]);
		lib_sq sq;
		if (lib_sq_parse(g.tok, part, np, NULL, 0, NULL, 0, &sq, &e) != 1)
			fail_msg("not a plain-word query: %s", match);
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, match, -1, SQLITE_STATIC);
		while (sqlite3_step(st) == SQLITE_ROW) {
			char *want = fts_snippet(st);
			const char *b = (const char *)sqlite3_column_text(st, 2);
			size_t len;
			char *got = lib_snippet(g.tok, &sq, b, (size_t)sqlite3_column_bytes(st, 2), &len);
			assert_non_null(got);
			assert_int_equal(len, strlen(got));
			if (strcmp(got, want))
				fail_msg("snippet of %lld for [%s]:\n fts5: [%s]\n ours: [%s]\n body: [%s]",
					 (long long)sqlite3_column_int64(st, 0), match, want, got, b);
			windows += !strncmp(want, "\xe2\x80\xa6", 3);
			compared++;
			free(got);
			free(want);
		}
		lib_sq_clear(&sq);
	}
	sqlite3_finalize(st);
	/* Through the page: a search's snippets are FTS5's too, and its text
	 * is what jansson would have written. */
	static const char *const fts_only[] = { "\"run connect\"", "conn*", "title:zeppelin" };
	unsigned texts = 0;
	for (unsigned qi = 0; qi < 60; qi++) {
		const char *w = qi % 6 == 5 ? fts_only[qi / 6 % 3] : snip_words[below(&g, SNIP_NWORDS)];
		sdk_buf t;
		assert_int_equal(lib_search_cached(g.db, g.tok, NULL, w, NULL, 100, &t, &e), 0);
		assert_int_equal(lib_search_end(&t, 0.000012345 * qi), 0);
		json_error_t je;
		json_t *out = json_loadb(t.p, t.len, 0, &je);
		if (!out)
			fail_msg("not JSON (%s): %s", je.text, t.p);
		char *again = json_dumps(out, JSON_COMPACT);
		assert_string_equal(t.p, again);
		free(again);
		sdk_buf_free(&t);
		texts++;
		if (qi % 6 == 5) {
			assert_string_equal(json_string_value(json_object_get(out, "plan")), "fts5");
			json_decref(out);
			continue;
		}
		assert_string_equal(json_string_value(json_object_get(out, "plan")), "index");
		json_t *hit;
		size_t i;
		json_array_foreach(json_object_get(out, "results"), i, hit) {
			assert_int_equal(sqlite3_prepare_v2(g.db,
				"SELECT rowid, snippet(documents_fts, 1, '<mark>', '</mark>',"
				" '\xe2\x80\xa6', 16) FROM documents_fts WHERE documents_fts MATCH ?1"
				" AND rowid = ?2", -1, &st, NULL), SQLITE_OK);
			sqlite3_bind_text(st, 1, w, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 2, json_integer_value(json_object_get(hit, "id")));
			assert_int_equal(sqlite3_step(st), SQLITE_ROW);
			char *want = fts_snippet(st);
			assert_string_equal(json_string_value(json_object_get(hit, "snippet")), want);
			free(want);
			sqlite3_finalize(st);
			compared++;
		}
		json_decref(out);
	}
	assert_int_equal(texts, 60);
	print_message("%u snippets compared (%u of a window past the body's start)\n", compared,
		      windows);
	assert_true(compared > nq);
	assert_true(windows > 0);
	free(body);
	lib_tok_free(g.tok);
	sqlite3_close(g.db);
}

/* ---- 5. tokens */

struct toks {
	char buf[1 << 18]; /* every token of a text of at most 16 kB, printed */
	size_t n;
	int count;
};

static int on_tok(void *arg, const char *t, int len, int start, int end)
{
	struct toks *k = arg;
	k->n += (size_t)snprintf(k->buf + k->n, sizeof k->buf - k->n, "%.*s@%d-%d ", len, t, start,
				 end);
	k->count++;
	return 0;
}

static int on_fts5_tok(void *arg, int flags, const char *t, int len, int start, int end)
{
	assert_false(flags & FTS5_TOKEN_COLOCATED);
	return on_tok(arg, t, len, start, end);
}

/* lib_tok_run_some's tokens, checked one by one against lib_tok_run's
 * (all: its on_tok text, read as we go). */
struct some {
	unsigned char want[256];
	const char *all;
	int count, nulls;
};

static int on_some_tok(void *arg, const char *t, int len, int start, int end)
{
	struct some *k = arg;
	const char *at = strchr(k->all, '@'); /* "stem@start-end " */
	assert_non_null(at);
	int s0, e0, n = 0;
	assert_int_equal(sscanf(at, "@%d-%d %n", &s0, &e0, &n), 2);
	assert_int_equal(start, s0);
	assert_int_equal(end, e0);
	size_t slen = (size_t)(at - k->all);
	if (!t) {
		assert_int_equal(len, 0);
		assert_true(slen > 0);
		assert_false(k->want[(unsigned char)k->all[0]]); /* never a wanted stem */
		k->nulls++;
	} else {
		assert_int_equal((size_t)len, slen);
		assert_memory_equal(t, k->all, slen);
	}
	k->all = at + n;
	k->count++;
	return 0;
}

/* lib_tok_places's wanted tokens, checked against lib_tok_run's text
 * (struct some's all, read as the indexes come). */
struct places {
	struct some *k;
	const lib_tok_span *spans;
	int next; /* the next token not yet checked */
};

static int on_place_stem(void *arg, const char *t, int len, int index)
{
	struct places *pl = arg;
	/* the tokens between the last one reported and this one are not wanted */
	for (; pl->next <= index; pl->next++) {
		const char *at = strchr(pl->k->all, '@');
		assert_non_null(at);
		int s0, e0, n = 0;
		assert_int_equal(sscanf(at, "@%d-%d %n", &s0, &e0, &n), 2);
		assert_int_equal(pl->spans[pl->next].start, s0);
		assert_int_equal(pl->spans[pl->next].end, e0);
		unsigned char f = (unsigned char)pl->k->all[0];
		if (pl->next == index) {
			assert_true(pl->k->want[f]);
			assert_int_equal((size_t)len, (size_t)(at - pl->k->all));
			assert_memory_equal(t, pl->k->all, (size_t)len);
		} else {
			assert_false(pl->k->want[f]); /* a wanted one is never passed over */
		}
		pl->k->all = at + n;
	}
	return 0;
}

/* lib_tok_places on text: the places of lib_tok_run's tokens (all), and
 * the stems of exactly the wanted ones; not placed only for a text past
 * ASCII. */
static void check_places(lib_tok *tok, const char *text, size_t len, const unsigned char want[256],
			 const char *all, int count, unsigned *done)
{
	/* room for every token (one in two bytes at most), so that spans
	 * does not move while the callback reads it */
	static lib_tok_span *spans;
	static size_t cap;
	if (cap < len / 2 + 1) {
		free(spans);
		cap = len / 2 + 1;
		spans = malloc((size_t)cap * sizeof *spans);
		assert_non_null(spans);
	}
	int n = -1;
	struct some k = { .all = all };
	memcpy(k.want, want, sizeof k.want);
	struct places pl = { .k = &k, .spans = spans };
	bool placed;
	int rc = lib_tok_places(tok, text, (int)len, want, &spans, &cap, &n, &placed, on_place_stem,
				&pl);
	assert_ptr_equal(pl.spans, spans);
	assert_int_equal(rc, 0);
	bool ascii = true;
	for (size_t i = 0; i < len; i++)
		ascii = ascii && !((unsigned char)text[i] & 0x80);
	assert_int_equal(placed, ascii);
	if (!ascii)
		return;
	assert_int_equal(n, count);
	pl.spans = spans;
	for (; pl.next < n; pl.next++) { /* the rest: places only, none wanted */
		const char *at = strchr(k.all, '@');
		int s0, e0, m = 0;
		assert_int_equal(sscanf(at, "@%d-%d %n", &s0, &e0, &m), 2);
		assert_int_equal(spans[pl.next].start, s0);
		assert_int_equal(spans[pl.next].end, e0);
		assert_false(want[(unsigned char)k.all[0]]);
		k.all = at + m;
	}
	assert_int_equal(*k.all, '\0');
	(*done)++;
}

static void test_tokens_equal_fts5(void **state)
{
	struct fx *f = *state, g = *f;
	g.rng = 0x70c3e5ull;
	/* FTS5's tokenizer, reached as tok.c reaches it, but called as it is */
	fts5_api *api = NULL;
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(f->db, "SELECT fts5(?1)", -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_pointer(st, 1, &api, "fts5_api_ptr", NULL);
	sqlite3_step(st);
	sqlite3_finalize(st);
	assert_non_null(api);
	fts5_tokenizer ref;
	Fts5Tokenizer *rt;
	void *ud;
	const char *args[] = { "unicode61" };
	assert_int_equal(api->xFindTokenizer(api, "porter", &ud, &ref), SQLITE_OK);
	assert_int_equal(ref.xCreate(ud, args, 1, &rt), SQLITE_OK);
	static const char *const parts[] = {
		"Running", "runs", "CONNECTIONS", "generalizations", "hoping", "a", "I", "x1",
		"2024", "007", "café", "CAFÉ", "naïve", "Über", "straße", "e\xcc\x81t\xc3\xa9",
		"\xe2\x80\x9cquoted\xe2\x80\x9d", ("em\xe2\x80\x94" "dash"), "nb\xc2\xa0sp", "日本語",
		"ﬁne", "İstanbul", "_under_score", "it's", "o'clock", "1.5", "e-mail", "a/b",
	};
	static const char *const seps[] = { " ", "  ", "\n", "\t", ".", ", ", "-", "\x01", "\x7f",
					    "\xc2\xa0", "\xe2\x80\x94", "", "\"", "\\" };
	struct toks *a = malloc(sizeof *a), *b = malloc(sizeof *b);
	static char text[16384];
	unsigned texts = f->queries * 4, some_nulls = 0, some_stems = 0, places = 0;
	for (unsigned it = 0; it < texts; it++) {
		size_t o = 0;
		/* a text in four starts past a filler, so that its words cross
		 * the tokenizer's windows of 1,024 bytes (tok.c) */
		if (below(&g, 4) == 0) {
			unsigned n = 900 + below(&g, 300);
			for (unsigned i = 0; i < n; i++)
				text[o++] = below(&g, 5) ? 'a' + (char)below(&g, 26) : ' ';
		}
		for (unsigned w = below(&g, 40); w && o < sizeof text - 4096; w--) {
			const char *p = below(&g, 3) ? parts[below(&g, sizeof parts / sizeof *parts)]
						     : zipf(&g);
			if (below(&g, 50) == 0) { /* past STEM_KEY_MAX and LIB_TERM_MAX */
				unsigned n = 60 + below(&g, 100);
				memset(text + o, below(&g, 2) ? 'Q' : 'q', n);
				o += n;
			} else if (below(&g, 100) == 0) { /* one token over windows, maybe not ASCII */
				unsigned n = 1000 + below(&g, 2000);
				memset(text + o, 'w', n);
				if (below(&g, 2))
					memcpy(text + o + below(&g, n - 2), "\xc3\xa9", 2);
				o += n;
			} else {
				o += (size_t)snprintf(text + o, sizeof text - o, "%s", p);
			}
			o += (size_t)snprintf(text + o, sizeof text - o, "%s",
					      seps[below(&g, sizeof seps / sizeof *seps)]);
		}
		a->n = b->n = 0;
		a->count = b->count = 0;
		a->buf[0] = b->buf[0] = '\0';
		assert_int_equal(lib_tok_run(f->tok, LIB_TOK_DOC, text, (int)o, on_tok, a), 0);
		assert_int_equal(ref.xTokenize(rt, b, FTS5_TOKENIZE_DOCUMENT, text, (int)o,
					       on_fts5_tok), SQLITE_OK);
		if (strcmp(a->buf, b->buf))
			fail_msg("tokens of [%.*s]:\n ours: %s\n fts5: %s", (int)o, text, a->buf,
				 b->buf);
		/* lib_tok_run_some: the same tokens in the same places, each
		 * with its stem when that stem's first byte is wanted (an
		 * unwanted one may come as NULL), never NULL otherwise */
		struct some sm = { .all = a->buf };
		for (unsigned c = 0; c < 256; c++)
			sm.want[c] = below(&g, 8) == 0;
		assert_int_equal(lib_tok_run_some(f->tok, text, (int)o, sm.want, on_some_tok, &sm), 0);
		assert_int_equal(sm.count, a->count);
		assert_int_equal(sm.all, a->buf + strlen(a->buf));
		some_nulls += sm.nulls;
		some_stems += sm.count - sm.nulls;
		check_places(f->tok, text, o, sm.want, a->buf, a->count, &places);
		/* and the same text made ASCII, so that most texts are */
		for (size_t i = 0; i < o; i++)
			if ((unsigned char)text[i] & 0x80)
				text[i] = "x.: 9Z-"[below(&g, 7)];
		a->n = 0;
		a->count = 0;
		a->buf[0] = '\0';
		assert_int_equal(lib_tok_run(f->tok, LIB_TOK_DOC, text, (int)o, on_tok, a), 0);
		check_places(f->tok, text, o, sm.want, a->buf, a->count, &places);
	}
	print_message("lib_tok_run_some: %u tokens placed only, %u stemmed; lib_tok_places: %u"
		      " ASCII texts\n", some_nulls, some_stems, places);
	assert_true(some_nulls > 0 && some_stems > 0 && places > texts);
	ref.xDelete(rt);
	free(a);
	free(b);
}

/* ---- 6. numbers: lib_g17 == snprintf("%.17g") wherever it answers */

static void g17_same(double v, unsigned *done)
{
	char got[40], want[40];
	int n = lib_g17(v, got);
	snprintf(want, sizeof want, "%.17g", v);
	if (!n)
		return;
	if (strcmp(got, want) || n != (int)strlen(want))
		fail_msg("%%.17g of %a: printf [%s], lib_g17 [%s]", v, want, got);
	(*done)++;
}

static void test_g17_equals_printf(void **state)
{
	struct fx *f = *state, g = *f;
	g.rng = 0x917ull;
	unsigned done = 0, n = f->queries * 1000; /* 600,000; 200,000 sanitized */
	for (unsigned i = 0; i < n; i++) {
		uint64_t r = next(&g);
		double v;
		switch (i % 5) {
		case 0: /* any bits: most outside the fast path */
			memcpy(&v, &r, sizeof v);
			break;
		case 1: /* scores and milliseconds: 1e-5 to 1e3 */
			v = (double)(r >> 11) / (double)(1ull << 53) * pow(10, (double)below(&g, 9) - 5);
			break;
		case 2: /* exact ties and short binary fractions: n / 2^j */
			v = ldexp((double)(r >> (11 + below(&g, 40))), -(int)below(&g, 60));
			break;
		case 3: /* near powers of ten, from 1e-6 to 1e18 */
			v = nextafter(pow(10, (double)below(&g, 25) - 6),
				      below(&g, 2) ? INFINITY : 0) * (below(&g, 2) ? 1 : -1);
			break;
		default: /* integers and decimals as people write them */
			v = (double)(r % 100000000) / pow(10, (double)below(&g, 12));
		}
		g17_same(v, &done);
	}
	g17_same(1234567890123456.75, &done); /* a tie: to even, ...8 */
	g17_same(1234567890123456.25, &done); /* a tie: to even, ...2 */
	g17_same(0.1, &done);
	g17_same(-2.5, &done);
	g17_same(99999999999999999.0, &done);
	g17_same(0.0001, &done);
	print_message("lib_g17: %u numbers equal to printf's\n", done);
	assert_true(done > n / 2);
}

int main(void)
{
	/* One corpus for all, in this order: the last two change it. */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_topk_equals_references),
		cmocka_unit_test(test_counts),
		cmocka_unit_test(test_snippets_equal_fts5),
		cmocka_unit_test(test_tokens_equal_fts5),
		cmocka_unit_test(test_g17_equals_printf),
		cmocka_unit_test(test_after_deletes_and_updates),
		cmocka_unit_test(test_merge_keeps_rankings),
		cmocka_unit_test(test_check_finds_damage),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
