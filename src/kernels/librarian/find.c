/* lib_search (store.h): a query split into what to look for, what to
 * exclude and which tags to require; ranked by the block index when it
 * is words ANDed or ORed (search.h), by FTS5 otherwise; then the page of
 * results with their snippets (for the block index's queries, made here
 * as FTS5's snippet() makes them, lib_snippet).
 *
 * Both rankings are the same BM25 (bm25.h); the test test_librarian_search
 * holds them to it. */
#include "kernels/librarian/g17.h"
#include "kernels/librarian/search.h"
#include "kernels/librarian/store.h"

#include "sdk/buf.h"
#include "sdk/jsonw.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIB_QUERY_MAX 1024u
#define LIB_QUERY_PARTS_MAX 64u /* whitespace-separated parts of a query */
#define LIB_FTS_EXPR_MAX (LIB_QUERY_MAX * 2 + 64)

/* ---- splitting */

struct parts {
	char buf[LIB_QUERY_MAX + 1]; /* the query, cut into NUL-ended parts */
	const char *pos[LIB_QUERY_PARTS_MAX];
	const char *excl[LIB_QUERY_PARTS_MAX];
	const char *tag[LIB_QUERY_PARTS_MAX];
	unsigned npos, nexcl, ntag;
};

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* -word or -"a phrase": what the block index or FTS5's NOT can exclude. */
static bool is_exclusion(const char *s)
{
	if (s[0] != '-' || !s[1])
		return false;
	if (s[1] == '"')
		return s[strlen(s) - 1] == '"' && strlen(s) > 3;
	for (s++; *s; s++)
		if (!((unsigned char)*s >= 0x80 || (*s >= '0' && *s <= '9') ||
		      (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
			return false;
	return true;
}

/* Parts are cut at white space outside double quotes. */
static int split(const char *query, unsigned max_tags, struct parts *p, lib_err *err)
{
	size_t n = strlen(query);
	memcpy(p->buf, query, n + 1);
	p->npos = p->nexcl = p->ntag = 0;
	char *s = p->buf;
	for (;;) {
		while (is_space(*s))
			*s++ = '\0';
		if (!*s)
			break;
		char *start = s;
		bool quoted = false;
		for (; *s && (quoted || !is_space(*s)); s++)
			if (*s == '"')
				quoted = !quoted;
		if (quoted)
			return sdk_fail(err, SDK_EINVAL, "malformed query: unbalanced quotes");
		if (p->npos + p->nexcl + p->ntag == LIB_QUERY_PARTS_MAX)
			return sdk_fail(err, SDK_EINVAL, "query has more than %u parts",
					LIB_QUERY_PARTS_MAX);
		if (*s)
			*s++ = '\0';
		if (!strncmp(start, "tag:", 4)) {
			const char *t = start + 4;
			if (!*t || strnlen(t, LIB_TAG_LEN_MAX + 1) > LIB_TAG_LEN_MAX)
				return sdk_fail(err, SDK_EINVAL,
						"malformed query: tag: needs a tag of 1 to %u bytes",
						LIB_TAG_LEN_MAX);
			if (p->ntag == max_tags)
				return sdk_fail(err, SDK_EINVAL, "query has more than %u tag filters",
						LIB_SQ_TAGS_MAX);
			p->tag[p->ntag++] = t;
		} else if (is_exclusion(start)) {
			p->excl[p->nexcl++] = start + 1;
		} else {
			p->pos[p->npos++] = start;
		}
	}
	if (!p->npos)
		return sdk_fail(err, SDK_EINVAL, p->nexcl || p->ntag
				? "malformed query: it needs a word to look for, not only"
				  " -exclusions and tag: filters"
				: "query must not be empty");
	return SDK_OK;
}

/* ---- FTS5 */

/* FTS5 parses the MATCH expression when the statement first steps and
 * reports syntax errors and unknown column filters as plain SQLITE_ERROR.
 * Every other code from a step (IOERR, CORRUPT, FULL, NOMEM, BUSY) is the
 * database failing, not the caller asking badly. */
static int fail_match(sqlite3 *db, int rc, lib_err *err)
{
	if ((rc & 0xff) == SQLITE_ERROR)
		return sdk_fail(err, SDK_EINVAL, "malformed query: %s", sqlite3_errmsg(db));
	return lib_fail_sql(db, err, "search");
}

/* (the words) NOT (an exclusion) NOT ...: FTS5's own language. */
static int fts_expr(const struct parts *p, char *out, size_t cap, lib_err *err)
{
	size_t n = 0;
	int w = snprintf(out, cap, "(");
	n += (size_t)w;
	for (unsigned i = 0; i < p->npos && n < cap; i++)
		n += (size_t)snprintf(out + n, cap - n, "%s%s", i ? " " : "", p->pos[i]);
	if (n < cap)
		n += (size_t)snprintf(out + n, cap - n, ")");
	for (unsigned i = 0; i < p->nexcl && n < cap; i++)
		n += (size_t)snprintf(out + n, cap - n, " NOT (%s)", p->excl[i]);
	if (n >= cap)
		return sdk_fail(err, SDK_EINVAL, "query too long");
	return SDK_OK;
}

/* The tags as a JSON array text (NULL: none), for the SQL filter. */
static char *tags_json(const struct parts *p)
{
	if (!p->ntag)
		return NULL;
	json_t *a = json_array();
	for (unsigned i = 0; i < p->ntag; i++)
		json_array_append_new(a, json_string(p->tag[i]));
	char *s = json_dumps(a, JSON_COMPACT);
	json_decref(a);
	return s;
}

/* Every tag of ?2 (a JSON array) on the document, or no ?2. */
#define SQL_FILTER \
	" documents_fts MATCH ?1 AND (?2 IS NULL OR documents_fts.rowid IN" \
	" (SELECT doc_id FROM document_tags WHERE tag IN (SELECT value FROM json_each(?2))" \
	"  GROUP BY doc_id HAVING count(*) = json_array_length(?2)))"
#define SQL_BM25 "bm25(documents_fts, 10.0, 1.0, 5.0)"
#define SQL_SNIPPET "snippet(documents_fts, 1, '<mark>', '</mark>', '\xe2\x80\xa6', 16)"
#define LIB_STR_(x) #x
#define LIB_STR(x) LIB_STR_(x)

static const char sql_count[] =
	"SELECT count(*) FROM (SELECT 1 FROM documents_fts WHERE" SQL_FILTER
	" LIMIT " LIB_STR(LIB_TOTAL_EXACT_MAX) ")";
static const char sql_rank[] =
	"SELECT documents_fts.rowid, -" SQL_BM25 " FROM documents_fts WHERE" SQL_FILTER
	" ORDER BY " SQL_BM25 ", documents_fts.rowid LIMIT ?3";

static int fts_rank(sqlite3 *db, const char *expr, const char *tags, unsigned limit,
		    lib_ranked *r, lib_err *err)
{
	sqlite3_stmt *st;
	int rc;
	memset(r, 0, sizeof *r);
	for (int pass = 0; pass < 2; pass++) {
		if (sqlite3_prepare_v2(db, pass ? sql_rank : sql_count, -1, &st, NULL) != SQLITE_OK)
			return lib_fail_sql(db, err, "prepare search");
		sqlite3_bind_text(st, 1, expr, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, tags, -1, SQLITE_STATIC);
		if (pass)
			sqlite3_bind_int(st, 3, (int)limit);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			if (!pass) {
				r->total = sqlite3_column_int64(st, 0);
				r->total_exact = r->total < LIB_TOTAL_EXACT_MAX;
			} else if (r->n < LIB_HITS_MAX) {
				r->hit[r->n].doc = sqlite3_column_int64(st, 0);
				r->hit[r->n].score = sqlite3_column_double(st, 1);
				r->n++;
			}
		}
		rc = rc == SQLITE_DONE ? SDK_OK : fail_match(db, rc, err);
		sqlite3_finalize(st);
		if (rc)
			return rc;
	}
	return SDK_OK;
}

/* ---- snippets
 *
 * FTS5's snippet(documents_fts, 1, '<mark>', '</mark>', '…', 16) costs
 * three quarters of a one-word search (callgrind): each of the page's
 * statements parses the MATCH, seeks the word's doclist for the row, and
 * tokenizes the body twice (sentences, then highlighting). For a query of
 * plain words the same snippet follows from the body alone, tokenized once
 * by the same tokenizer: a word's instances are the tokens that stem to
 * it. What follows is FTS5's algorithm (fts5_aux.c) for that case, where
 * every phrase is one token: each instance proposes the window of 16
 * tokens around it and the sentence it starts in; a window scores 1,000 a
 * phrase it holds and 1 each further instance, a sentence's start 100
 * more (120 the body's); the first best window wins; the hits in it are
 * marked, with '…' where the body goes on. test_librarian_search compares
 * it with snippet() on thousands of documents and queries. */

#define SNIP_TOKENS 16
#define SNIP_OPEN "<mark>"
#define SNIP_CLOSE "</mark>"
#define SNIP_ELLIPSIS "\xe2\x80\xa6"

struct snip_hit {
	int pos;	  /* the token's index */
	uint32_t phrases; /* the query's phrases it is (bit i: term i) */
};

/* One query's snippets: made for a page of bodies, one at a time, its
 * arrays kept from one body to the next (snip_free frees them). */
struct snip {
	const lib_sq *sq;
	size_t wlen[LIB_SQ_WORDS_MAX]; /* sq's words' lengths */
	unsigned char want[256];       /* sq's words' first bytes (lib_tok_run_some) */
	const char *body;
	lib_tok_span *tok; /* every token of the body, in order */
	int ntok;
	size_t cap;
	struct snip_hit *hit; /* the tokens that are a phrase, ascending */
	int nhit;
	size_t hitcap;
	bool nomem;
};

static void snip_init(struct snip *s, const lib_sq *sq)
{
	*s = (struct snip){ .sq = sq };
	for (unsigned i = 0; i < sq->nword && i < LIB_SQ_WORDS_MAX; i++) {
		s->wlen[i] = strlen(sq->word[i]);
		s->want[(unsigned char)sq->word[i][0]] = 1;
	}
}

static void snip_free(struct snip *s)
{
	free(s->tok);
	free(s->hit);
}

/* As FTS5's sentence finder: a token begins a sentence when it is the
 * first, or when white space and then '.' or ':' come before it. */
static bool begins_sentence(const char *body, int pos, int start)
{
	if (pos == 0)
		return true;
	int i = start - 1;
	char c = 0;
	for (; i >= 0; i--) {
		c = body[i];
		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			break;
	}
	return i != start - 1 && (c == '.' || c == ':');
}

/* Token pos, stemmed t: a hit when it is one of the words. */
static int on_snip_stem(void *arg, const char *t, int len, int pos)
{
	struct snip *s = arg;
	uint32_t ph = 0;
	for (unsigned i = 0; i < s->sq->nword; i++)
		if ((size_t)len == s->wlen[i] && !memcmp(t, s->sq->word[i], (size_t)len))
			ph |= 1u << i;
	if (!ph)
		return 0;
	struct snip_hit *h = sdk_grow(s->hit, &s->hitcap, (size_t)s->nhit, sizeof *h, 256);
	if (!h) {
		s->nomem = true;
		return 1;
	}
	s->hit = h;
	s->hit[s->nhit++] = (struct snip_hit){ pos, ph };
	return 0;
}

/* lib_tok_run_some's token (t NULL: none of the words), for a body past
 * ASCII. */
static int on_snip_token(void *arg, const char *t, int len, int start, int end)
{
	struct snip *s = arg;
	int pos = s->ntok;
	lib_tok_span *v = sdk_grow(s->tok, &s->cap, (size_t)pos, sizeof *v, 256);
	if (!v) {
		s->nomem = true;
		return 1;
	}
	s->tok = v;
	s->tok[pos] = (lib_tok_span){ start, end };
	s->ntok++;
	return t ? on_snip_stem(s, t, len, pos) : 0;
}

/* The score of the window of SNIP_TOKENS from token `from`: 1,000 for each
 * phrase in it, 1 for each further instance (so 999 a phrase plus the
 * instances); *adj: where FTS5 centres the window on the instances found. */
static int window_score(const struct snip *s, int from, int *adj)
{
	uint32_t seen = 0;
	int n = 0, first = -1, last = 0;
	for (int k = 0; k < s->nhit; k++) {
		int p = s->hit[k].pos;
		if (p < from || p >= from + SNIP_TOKENS)
			continue;
		uint32_t ph = s->hit[k].phrases;
		seen |= ph;
		n += __builtin_popcount(ph);
		if (first < 0)
			first = p;
		last = p + 1;
	}
	if (adj) {
		int a = first - (SNIP_TOKENS - (last - first)) / 2;
		if (a + SNIP_TOKENS > s->ntok)
			a = s->ntok - SNIP_TOKENS;
		*adj = a < 0 ? 0 : a;
	}
	return 999 * __builtin_popcount(seen) + n;
}

/* The first token of the best window, as FTS5 chooses it. The sentence
 * an instance is in is found here, looking back from the instance to the
 * previous one's (the hits ascend), rather than for every token as the
 * body is cut: only the sentences that hold an instance matter. */
static int best_start(const struct snip *s)
{
	int best = 0, start = 0;
	int sent = 0, seen = -1; /* the last sentence start <= seen, the last instance looked back from */
	for (int k = 0; k < s->nhit; k++) {
		int io = s->hit[k].pos, adj;
		/* FTS5 scores each instance (a token of two phrases twice, the
		 * same window: only strictly better counts, so once is the same) */
		int sc = window_score(s, io, &adj);
		if (sc > best) {
			best = sc;
			start = adj;
		}
		if (s->ntok <= SNIP_TOKENS)
			continue;
		for (int p = io; p > seen; p--)
			if (begins_sentence(s->body, p, s->tok[p].start)) {
				sent = p; /* token 0 always does: found on the first look */
				break;
			}
		seen = io;
		if (sent < io) {
			sc = window_score(s, sent, NULL) + (sent == 0 ? 120 : 100);
			if (sc > best) {
				best = sc;
				start = sent;
			}
		}
	}
	return start;
}

/* A marker into the snippet's text (plain text, escaped later as a whole). */
#define SNIP_PUT(o, lit) sdk_buf_put((o), (lit), sizeof(lit) - 1)

/* FTS5's highlighting of tokens from..from+SNIP_TOKENS-1, each phrase
 * instance (one token) in <mark></mark>, as its highlight callback. */
static void highlight(const struct snip *s, int from, size_t len, sdk_buf *o)
{
	const char *b = s->body;
	int to = from + SNIP_TOKENS - 1;
	int k = 0; /* the next instance: hit[k] */
	while (k < s->nhit && s->hit[k].pos < from)
		k++;
	int off = 0;
	bool open = false;
	if (from > 0)
		SNIP_PUT(o, SNIP_ELLIPSIS);
	for (int pos = from; pos <= to && pos < s->ntok; pos++) {
		int st = s->tok[pos].start, en = s->tok[pos].end;
		int cur = k < s->nhit ? s->hit[k].pos : -1;
		if (from && pos == from)
			off = st;
		if (open && (pos <= cur || cur < 0) && st > off) {
			SNIP_PUT(o, SNIP_CLOSE);
			open = false;
		}
		if (pos == cur && !open) {
			sdk_buf_put(o, b + off, (size_t)(st - off));
			SNIP_PUT(o, SNIP_OPEN);
			off = st;
			open = true;
		}
		if (pos == cur) {
			sdk_buf_put(o, b + off, (size_t)(en - off));
			off = en;
			k++;
		}
		if (pos == to) {
			if (open) {
				SNIP_PUT(o, SNIP_CLOSE);
				open = false;
			}
			sdk_buf_put(o, b + off, (size_t)(en - off));
			off = en;
		}
	}
	if (open)
		SNIP_PUT(o, SNIP_CLOSE);
	if (to >= s->ntok - 1)
		sdk_buf_put(o, b + off, len - (size_t)off);
	else
		SNIP_PUT(o, SNIP_ELLIPSIS);
}

/* Appends body's snippet to o; false when the tokenizer fails or memory
 * runs out. Only the tokens that may be the words are stemmed: the others
 * are only placed, all the window needs of them (lib_tok_places for an
 * ASCII body, else lib_tok_run_some). */
static bool snippet_into(lib_tok *tok, struct snip *s, const char *body, size_t len,
			 sdk_buf *o)
{
	s->body = body;
	s->ntok = s->nhit = 0;
	s->nomem = false;
	if (len > INT_MAX || s->sq->nword > LIB_SQ_WORDS_MAX)
		return false;
	bool ascii;
	int rc = lib_tok_places(tok, body, (int)len, s->want, &s->tok, &s->cap, &s->ntok, &ascii,
				on_snip_stem, s);
	if (!rc && !ascii) {
		s->ntok = s->nhit = 0;
		rc = lib_tok_run_some(tok, body, (int)len, s->want, on_snip_token, s);
	}
	bool ok = !rc && !s->nomem;
	if (ok) {
		highlight(s, best_start(s), len, o);
		sdk_buf_put(o, "", 0);
	}
	return ok && !o->oom;
}

char *lib_snippet(struct lib_tok *tok, const lib_sq *sq, const char *body, size_t len,
		  size_t *outlen)
{
	sdk_buf o = { 0 };
	struct snip s;
	snip_init(&s, sq);
	bool ok = snippet_into(tok, &s, body, len, &o);
	snip_free(&s);
	if (!ok) {
		sdk_buf_free(&o);
		return NULL;
	}
	*outlen = o.len;
	return o.p;
}

/* ---- the answer's text
 *
 * The answer is written here as JSON text, on the worker, rather than
 * built as jansson values for the event loop to dump: building and
 * dumping them were a third of a one-word search once the snippets were
 * made here. The text is what json_dumps(JSON_COMPACT) gave for the same
 * values: the members in the same order, strings escaped and numbers
 * printed as jansson prints them, so a client sees the same bytes. */

/* A JSON string as jansson writes it (sdk/jsonw.h). False: not UTF-8
 * (jansson refused such a string). */
static bool put_json_str(sdk_buf *o, const char *s, size_t n)
{
	if (!lib_utf8_valid((const unsigned char *)s, n))
		return false;
	sdk_jsonw_utf8(o, s, n);
	return true;
}

/* As jansson's real: 17 significant digits, ".0" when it would read as an
 * integer, the exponent without '+' or leading zeros. */
static void put_json_real(sdk_buf *o, double v)
{
	char b[40];
	int n = lib_g17(v, b); /* most: without printf (g17.h) */
	if (!n)
		n = snprintf(b, sizeof b - 3, "%.17g", v);
	if (n < 0 || n >= (int)sizeof b - 3)
		return;
	if (!strchr(b, '.') && !strchr(b, 'e')) {
		memcpy(b + n, ".0", 3);
		n += 2;
	}
	char *e = strchr(b, 'e');
	if (e) {
		char *start = e + 1, *end = start + 1;
		if (*start == '-')
			start++;
		while (*end == '0')
			end++;
		if (end != start) {
			memmove(start, end, (size_t)(b + n - end) + 1);
			n -= (int)(end - start);
		}
	}
	sdk_buf_put(o, b, (size_t)n);
}

/* A text column as a JSON string, or null. */
static bool put_json_col(sdk_buf *o, sqlite3_stmt *st, int col)
{
	if (sqlite3_column_type(st, col) == SQLITE_NULL) {
		sdk_jsonw_raw(o, "null");
		return true;
	}
	const char *s = (const char *)sqlite3_column_text(st, col);
	return s && put_json_str(o, s, (size_t)sqlite3_column_bytes(st, col));
}

/* The tags column, a JSON array text as jansson wrote it (lib_tags_text):
 * as it is when it is plainly ["a","b"] (strings without escapes), which
 * is what dumping it again would give; otherwise read and dumped again. */
static bool put_json_tags(sdk_buf *o, sqlite3_stmt *st, int col)
{
	const char *s = (const char *)sqlite3_column_text(st, col);
	size_t n = (size_t)sqlite3_column_bytes(st, col);
	if (!s)
		return false;
	bool plain = n >= 2 && s[0] == '[' && s[n - 1] == ']';
	for (size_t i = 1; plain && i + 1 < n;) {
		if (s[i] != '"') {
			plain = false;
			break;
		}
		size_t j = i + 1;
		while (j + 1 < n && s[j] != '"' && s[j] != '\\' && (unsigned char)s[j] >= 0x20)
			j++;
		plain = s[j] == '"' && (j + 2 == n || (s[j + 1] == ',' && j + 2 < n - 1));
		i = j + 2;
	}
	if (plain && lib_utf8_valid((const unsigned char *)s, n)) {
		sdk_buf_put(o, s, n);
		return true;
	}
	json_t *tags = lib_col_tags(st, col);
	bool ok = tags && sdk_jsonw_value(o, tags) == 0;
	json_decref(tags);
	return ok;
}

/* ---- the page */

static const char sql_doc[] =
	"SELECT id, title, tags, source, owner, body FROM documents WHERE id = ?1";
static const char sql_snippet[] = "SELECT " SQL_SNIPPET " FROM documents_fts"
				  " WHERE documents_fts MATCH ?1 AND rowid = ?2";

/* One result: {"id","title","score","snippet","tags","source","owner"};
 * snippet NULL: null. False: a value cannot be encoded. */
static bool put_hit(sdk_buf *o, sqlite3_stmt *doc, double score, const sdk_buf *snippet)
{
	sdk_jsonw_raw(o, "{\"id\":");
	sdk_jsonw_int(o, sqlite3_column_int64(doc, 0), 0);
	sdk_jsonw_raw(o, ",\"title\":");
	bool ok = put_json_col(o, doc, 1);
	sdk_jsonw_raw(o, ",\"score\":");
	put_json_real(o, score);
	sdk_jsonw_raw(o, ",\"snippet\":");
	if (!snippet)
		sdk_jsonw_raw(o, "null");
	else
		ok = ok && put_json_str(o, snippet->p ? snippet->p : "", snippet->len);
	sdk_jsonw_raw(o, ",\"tags\":");
	ok = ok && put_json_tags(o, doc, 2);
	sdk_jsonw_raw(o, ",\"source\":");
	ok = ok && put_json_col(o, doc, 3);
	sdk_jsonw_raw(o, ",\"owner\":");
	ok = ok && put_json_col(o, doc, 4);
	sdk_buf_put(o, "}", 1);
	return ok;
}

/* The results array into o. sq: the query's words when it is plain words
 * (the snippets are made here, lib_snippet), else NULL (FTS5's snippet(),
 * whose MATCH is the words alone: a hit has none of the excluded). */
static int page(sqlite3 *db, lib_tok *tok, lib_sq_cache *pc, const lib_sq *sq,
		const lib_ranked *r, const char *match, sdk_buf *o, lib_err *err)
{
	sqlite3_stmt *doc = NULL, *snip = NULL;
	sdk_buf snippet = { 0 };
	struct snip words; /* sq's snippets, the page's bodies one after another */
	snip_init(&words, sq ? sq : &(lib_sq){ 0 });
	int rc = SDK_OK;
	if (!(doc = lib_sq_stmt_take(pc, db, sql_doc)) ||
	    (!sq && sqlite3_prepare_v2(db, sql_snippet, -1, &snip, NULL) != SQLITE_OK)) {
		rc = lib_fail_sql(db, err, "prepare results");
		goto out;
	}
	if (snip)
		sqlite3_bind_text(snip, 1, match, -1, SQLITE_STATIC);
	sdk_buf_put(o, "[", 1);
	unsigned written = 0;
	for (unsigned i = 0; !rc && i < r->n; i++) {
		sqlite3_reset(doc);
		sqlite3_bind_int64(doc, 1, r->hit[i].doc);
		int d = sqlite3_step(doc);
		if (d == SQLITE_DONE)
			continue; /* not in this snapshot: cannot happen inside one */
		if (d != SQLITE_ROW) {
			rc = lib_fail_sql(db, err, "read result");
			break;
		}
		sdk_buf_reset(&snippet);
		bool ok = true, null = false;
		if (sq) {
			const char *body = (const char *)sqlite3_column_text(doc, 5);
			ok = body && snippet_into(tok, &words, body,
						  (size_t)sqlite3_column_bytes(doc, 5), &snippet);
		} else {
			sqlite3_reset(snip);
			sqlite3_bind_int64(snip, 2, r->hit[i].doc);
			int sn = sqlite3_step(snip);
			if (sn != SQLITE_ROW && sn != SQLITE_DONE) {
				rc = fail_match(db, sn, err);
				break;
			}
			/* no row: "" (cannot happen); a NULL: null, as before */
			null = sn == SQLITE_ROW && sqlite3_column_type(snip, 0) == SQLITE_NULL;
			const char *t = sn != SQLITE_ROW ? ""
					: null		 ? NULL
							 : (const char *)sqlite3_column_text(snip, 0);
			ok = null || t != NULL;
			if (t)
				sdk_buf_put(&snippet, t, sn == SQLITE_ROW ? (size_t)sqlite3_column_bytes(snip, 0)
								  : 0);
		}
		if (written++)
			sdk_buf_put(o, ",", 1);
		if (!ok || snippet.oom ||
		    !put_hit(o, doc, r->hit[i].score, null ? NULL : &snippet))
			rc = sdk_fail(err, SDK_EIO, "search result cannot be encoded");
	}
	sdk_buf_put(o, "]", 1);
out:
	lib_sq_stmt_give(pc, doc);
	sqlite3_finalize(snip);
	snip_free(&words);
	sdk_buf_free(&snippet);
	return rc;
}

static int check(const char *query, const char *tag, unsigned limit, lib_err *err)
{
	size_t n = query ? strnlen(query, LIB_QUERY_MAX + 1) : 0;
	if (n > LIB_QUERY_MAX)
		return sdk_fail(err, SDK_EINVAL, "query longer than %u bytes", LIB_QUERY_MAX);
	if (!query || !n)
		return sdk_fail(err, SDK_EINVAL, "query must not be empty");
	if (!lib_utf8_valid((const unsigned char *)query, n))
		return sdk_fail(err, SDK_EINVAL, "query is not valid UTF-8");
	if (tag && !*tag)
		return sdk_fail(err, SDK_EINVAL, "tag must not be empty");
	if (tag && strnlen(tag, LIB_TAG_LEN_MAX + 1) > LIB_TAG_LEN_MAX)
		return sdk_fail(err, SDK_EINVAL, "tag longer than %u bytes", LIB_TAG_LEN_MAX);
	if (limit < 1 || limit > LIB_SEARCH_LIMIT_MAX)
		return sdk_fail(err, SDK_EINVAL, "limit must be 1..%u", LIB_SEARCH_LIMIT_MAX);
	return SDK_OK;
}

int lib_search(sqlite3 *db, struct lib_tok *tok, const char *query, const char *tag,
	       unsigned limit, json_t **out, lib_err *err)
{
	sdk_buf t = { 0 };
	if (out)
		*out = NULL;
	int rc = lib_search_cached(db, tok, NULL, query, tag, limit, &t, err);
	if (!rc) {
		sdk_buf_put(&t, "}", 1);
		json_error_t je;
		*out = t.oom ? NULL : json_loadb(t.p, t.len, JSON_ALLOW_NUL, &je);
		if (!*out)
			rc = sdk_fail(err, SDK_EIO, "search answer cannot be read back");
	}
	sdk_buf_free(&t);
	return rc;
}

int lib_search_end(sdk_buf *t, double query_ms)
{
	sdk_jsonw_raw(t, ",\"query_ms\":");
	put_json_real(t, query_ms);
	sdk_buf_put(t, "}", 1);
	return t->oom ? SDK_EIO : SDK_OK;
}

int lib_search_cached(sqlite3 *db, struct lib_tok *tok, lib_sq_cache *pc, const char *query,
		      const char *tag, unsigned limit, sdk_buf *out, lib_err *err)
{
	if (!db || !out)
		return sdk_fail(err, SDK_EINVAL, "missing argument");
	*out = (sdk_buf){ 0 };
	int rc = check(query, tag, limit, err);
	if (rc)
		return rc;
	struct parts *p = malloc(sizeof *p);
	lib_ranked *r = malloc(sizeof *r);
	lib_tok *own = NULL;
	char *tags = NULL, *expr = malloc(LIB_FTS_EXPR_MAX);
	lib_sq sq = { 0 };
	if (!p || !r || !expr) {
		rc = sdk_fail(err, SDK_EIO, "out of memory");
		goto out;
	}
	rc = split(query, tag ? LIB_SQ_TAGS_MAX - 1 : LIB_SQ_TAGS_MAX, p, err);
	if (!rc && tag)
		p->tag[p->ntag++] = tag;
	if (!rc && !tok && !(rc = lib_tok_new(db, &own, err)))
		tok = own;
	if (!rc)
		rc = fts_expr(p, expr, LIB_FTS_EXPR_MAX, err);
	if (rc)
		goto out;
	int fast = lib_sq_parse(tok, p->pos, p->npos, p->excl, p->nexcl, p->tag, p->ntag, &sq, err);
	const char *plan = "index";
	rc = fast < 0 ? fast
	     : fast   ? lib_sq_rank_cached(db, pc, &sq, limit, 0, false, r, err)
		      : SDK_EBUSY;
	if (rc == SDK_EBUSY) { /* not that shape, or the index is catching up */
		plan = "fts5";
		tags = tags_json(p);
		rc = p->ntag && !tags ? sdk_fail(err, SDK_EIO, "out of memory")
				      : fts_rank(db, expr, tags, limit, r, err);
	}
	if (rc)
		goto out;
	/* The snippet highlights the words; the match is FTS5's (a,b): any. */
	char *match = expr + 1; /* "(words)..." cut after the words */
	size_t mlen = 0;
	for (unsigned i = 0; i < p->npos; i++)
		mlen += strlen(p->pos[i]) + 1;
	match[mlen - 1] = '\0';
	sdk_jsonw_raw(out, "{\"query\":");
	put_json_str(out, query, strlen(query)); /* UTF-8: check() saw to it */
	sdk_jsonw_raw(out, ",\"total\":");
	sdk_jsonw_int(out, r->total, 0);
	sdk_jsonw_raw(out, r->total_exact ? ",\"total_relation\":\"eq\"" : ",\"total_relation\":\"gte\"");
	sdk_jsonw_raw(out, ",\"plan\":\"");
	sdk_jsonw_raw(out, plan);
	sdk_jsonw_raw(out, "\",\"results\":");
	/* Plain words (fast): their snippets are made here, whichever ranked. */
	rc = page(db, tok, pc, fast > 0 ? &sq : NULL, r, match, out, err);
	if (!rc && out->oom)
		rc = sdk_fail(err, SDK_EIO, "out of memory");
out:
	if (rc)
		sdk_buf_free(out);
	lib_sq_clear(&sq);
	lib_tok_free(own);
	free(tags);
	free(expr);
	free(r);
	free(p);
	return rc;
}
