#include "kernels/librarian/tok.h"

#include "kernels/librarian/index.h"
#include "sdk/buf.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* ---- the stems of ASCII words
 *
 * Tokenizing is most of what a search's snippets cost and a sixth of a
 * bulk load, and most of that is stemming the same few thousand words
 * again and again. In ASCII text unicode61's tokens are exactly the runs
 * of letters and digits (every other ASCII byte separates), and porter
 * stems a token alone, whatever surrounds it: so an ASCII token's stem
 * is a function of its bytes. lib_tok_run cuts ASCII runs itself and
 * asks FTS5 for a word's stem the first time only; a stretch between two
 * ASCII separators that holds other bytes goes to FTS5 as it is (it is
 * tokenized alone exactly as in its text: nothing joins across an ASCII
 * separator). test_librarian_search compares the two on random text. */

#define STEM_KEY_MAX 64u          /* longer words go to FTS5 (porter leaves them as they are) */
#define STEM_CACHE_MAX (1u << 14) /* words remembered (a 512 KiB table); past it, it starts again */

struct stem {
	uint32_t hash;
	uint32_t off; /* in arena: the word's bytes, then its stem's */
	uint8_t klen, slen; /* klen 0: a free slot */
};

struct lib_tok {
	fts5_tokenizer api;
	Fts5Tokenizer *tok;
	struct stem *tab; /* STEM_CACHE_MAX * 2 slots, or NULL (no memory: no cache) */
	uint32_t used;
	char *arena;
	size_t an, acap;
};

/* The documented way to reach FTS5's API from C: a pointer handed out
 * through a bound parameter of SELECT fts5(?). */
static fts5_api *fts5_of(sqlite3 *db)
{
	fts5_api *api = NULL;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "SELECT fts5(?1)", -1, &st, NULL) != SQLITE_OK)
		return NULL;
	sqlite3_bind_pointer(st, 1, &api, "fts5_api_ptr", NULL);
	sqlite3_step(st);
	sqlite3_finalize(st);
	return api;
}

int lib_tok_new(sqlite3 *db, lib_tok **out, sdk_err *err)
{
	*out = NULL;
	fts5_api *api = fts5_of(db);
	if (!api || api->iVersion < 2)
		return sdk_fail(err, SDK_EIO, "this SQLite has no FTS5");
	lib_tok *t = calloc(1, sizeof *t);
	if (!t)
		return sdk_fail(err, SDK_EIO, "out of memory");
	void *ud = NULL;
	static const char *args[] = { "unicode61" };
	if (api->xFindTokenizer(api, "porter", &ud, &t->api) != SQLITE_OK ||
	    t->api.xCreate(ud, args, 1, &t->tok) != SQLITE_OK) {
		free(t);
		return sdk_fail(err, SDK_EIO, "cannot make the porter tokenizer");
	}
	*out = t;
	return SDK_OK;
}

void lib_tok_free(lib_tok *t)
{
	if (!t)
		return;
	if (t->tok)
		t->api.xDelete(t->tok);
	free(t->tab);
	free(t->arena);
	free(t);
}

struct run {
	lib_tok_fn fn;
	void *arg;
	int base; /* where the text FTS5 sees starts in the caller's */
	int stopped;
};

static int on_token(void *ctx, int flags, const char *tok, int len, int start, int end)
{
	struct run *r = ctx;
	if (flags & FTS5_TOKEN_COLOCATED)
		return SQLITE_OK; /* porter unicode61 makes none; a synonym takes no position */
	int rc = r->fn(r->arg, tok, len, r->base + start, r->base + end);
	if (rc) {
		r->stopped = rc;
		return SQLITE_DONE; /* anything but OK stops the tokenizer */
	}
	return SQLITE_OK;
}

/* FTS5's tokens of text[0..len), reported at base + their offsets. */
static int run_fts5(lib_tok *t, int flags, const char *text, int len, int base, lib_tok_fn fn,
		    void *arg)
{
	struct run r = { fn, arg, base, 0 };
	int rc = t->api.xTokenize(t->tok, &r, flags, text, len, on_token);
	if (r.stopped)
		return r.stopped;
	return rc == SQLITE_OK ? SDK_OK : SDK_EIO;
}

struct one {
	const char *stem;
	int len, n;
};

static int on_one(void *arg, int flags, const char *tok, int len, int start, int end)
{
	(void)flags, (void)start, (void)end;
	struct one *o = arg;
	o->stem = tok;
	o->len = len;
	return ++o->n > 1 ? SQLITE_DONE : SQLITE_OK;
}

/* The stem of the ASCII word w[0..n) (letters and digits, n <= STEM_KEY_MAX):
 * remembered, or FTS5's, remembered now. NULL: not to be had here (no
 * memory, or FTS5 did not make one token of it): the caller asks FTS5. */
static const char *stem_of(lib_tok *t, const char *w, uint32_t n, uint32_t *slen)
{
	const uint32_t cap = STEM_CACHE_MAX * 2, h = lib_ix_term_hash(w, n);
	if (!t->tab && !(t->tab = calloc(cap, sizeof *t->tab)))
		return NULL;
	uint32_t j = h & (cap - 1);
	for (; t->tab[j].klen; j = (j + 1) & (cap - 1)) {
		struct stem *e = &t->tab[j];
		if (e->hash == h && e->klen == n && !memcmp(t->arena + e->off, w, n)) {
			*slen = e->slen;
			return t->arena + e->off + n;
		}
	}
	struct one o = { 0 };
	if (t->api.xTokenize(t->tok, &o, LIB_TOK_DOC, w, (int)n, on_one) != SQLITE_OK || o.n != 1 ||
	    o.len <= 0 || (uint32_t)o.len > STEM_KEY_MAX)
		return NULL;
	if (t->used == STEM_CACHE_MAX) { /* full: start again */
		memset(t->tab, 0, cap * sizeof *t->tab);
		t->used = 0;
		t->an = 0;
		j = h & (cap - 1);
	}
	size_t need = t->an + n + (size_t)o.len;
	if (need > t->acap) {
		char *a = sdk_grow(t->arena, &t->acap, need - 1, 1, 1u << 16);
		if (!a)
			return NULL;
		t->arena = a;
	}
	struct stem *e = &t->tab[j];
	*e = (struct stem){ h, (uint32_t)t->an, (uint8_t)n, (uint8_t)o.len };
	memcpy(t->arena + t->an, w, n);
	memcpy(t->arena + t->an + n, o.stem, (size_t)o.len);
	t->an += n + (size_t)o.len;
	t->used++;
	*slen = e->slen;
	return t->arena + e->off + n;
}

/* 0: an ASCII separator; 1: an ASCII letter or digit; 2: a byte of a
 * character past ASCII (whatever unicode61 makes of it). */
static const unsigned char byte_class[256] = { /* rows of 32 bytes, from 0x00 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0,
	0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0,
	0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

/* want: NULL, or which first bytes' stems the caller needs (below). */
static int run_doc(lib_tok *t, const char *text, int len, const unsigned char *want,
		   lib_tok_fn fn, void *arg)
{
	const unsigned char *s = (const unsigned char *)text;
	int i = 0;
	for (;;) {
		while (i < len && !byte_class[s[i]])
			i++;
		if (i == len)
			return SDK_OK;
		int start = i;
		unsigned all = 0;
		while (i < len && byte_class[s[i]])
			all |= byte_class[s[i++]];
		uint32_t n = (uint32_t)(i - start), slen = 0;
		/* An ASCII token's stem begins with its first byte folded to
		 * lower case (tok.h): one whose first byte is not wanted
		 * cannot be a wanted stem, and is only counted. */
		if (want && all == 1 &&
		    !want[s[start] >= 'A' && s[start] <= 'Z' ? s[start] | 0x20u : s[start]]) {
			int rc = fn(arg, NULL, 0, start, i);
			if (rc)
				return rc;
			continue;
		}
		const char *stem = all == 1 && n <= STEM_KEY_MAX
				   ? stem_of(t, text + start, n, &slen) : NULL;
		int rc = stem ? fn(arg, stem, (int)slen, start, i)
			      : run_fts5(t, LIB_TOK_DOC, text + start, i - start, start, fn, arg);
		if (rc)
			return rc;
	}
}

int lib_tok_run(lib_tok *t, int flags, const char *text, int len, lib_tok_fn fn, void *arg)
{
	if (flags != LIB_TOK_DOC)
		return run_fts5(t, flags, text, len, 0, fn, arg);
	return run_doc(t, text, len, NULL, fn, arg);
}

int lib_tok_run_some(lib_tok *t, const char *text, int len, const unsigned char want[256],
		     lib_tok_fn fn, void *arg)
{
	return run_doc(t, text, len, want, fn, arg);
}

/* ---- an ASCII text's places, from bitmaps
 *
 * A page's snippets cut ten bodies a search, and cutting them token by
 * token (run_doc, a callback each) was two fifths of a medium word's
 * search. What a snippet needs of most tokens is only where they are. In
 * ASCII text a token is a run of letters and digits, so the places
 * follow from one bit a byte: the text is classified 1,024 bytes at a
 * time (SSE2 compares 16 bytes at once; bytes are classified one by one
 * where there is no SSE2 and for a window's last few), and each 64-bit
 * word's token starts and ends are its bits that differ from the bit
 * before them. A text with any byte past ASCII is left to run_doc. */

#define SCAN_WORDS 16                /* a window's bitmap words */
#define SCAN_BYTES (SCAN_WORDS * 64) /* 1,024 bytes of text a window */

/* Bit i of tok[i / 64]: p[i] is an ASCII letter or digit; of *hi: some
 * p[i] is past ASCII. n <= SCAN_BYTES; the bits past n stay 0. */
static void classify(const unsigned char *p, size_t n, uint64_t tok[SCAN_WORDS], uint64_t *hi)
{
	memset(tok, 0, SCAN_WORDS * sizeof *tok);
	uint64_t h = 0;
	size_t i = 0;
#if defined(__SSE2__)
	const __m128i a1 = _mm_set1_epi8('a' - 1), z1 = _mm_set1_epi8('z' + 1);
	const __m128i d1 = _mm_set1_epi8('0' - 1), n1 = _mm_set1_epi8('9' + 1);
	const __m128i fold = _mm_set1_epi8(0x20);
	for (; i + 16 <= n; i += 16) {
		/* signed compares: a byte past ASCII is negative, so neither
		 * range takes it; its sign bit goes to *hi */
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
		__m128i l = _mm_or_si128(v, fold);
		__m128i letter = _mm_and_si128(_mm_cmpgt_epi8(l, a1), _mm_cmplt_epi8(l, z1));
		__m128i digit = _mm_and_si128(_mm_cmpgt_epi8(v, d1), _mm_cmplt_epi8(v, n1));
		h |= (uint64_t)(unsigned)_mm_movemask_epi8(v);
		uint64_t w = (uint64_t)(unsigned)_mm_movemask_epi8(_mm_or_si128(letter, digit));
		tok[i >> 6] |= w << (i & 63);
	}
#endif
	for (; i < n; i++) { /* run_doc's classes: 1 a letter or digit, 2 past ASCII */
		tok[i >> 6] |= (uint64_t)(byte_class[p[i]] == 1) << (i & 63);
		h |= byte_class[p[i]] >> 1;
	}
	*hi = h;
}

struct one_stem {
	lib_tok_at_fn fn;
	void *arg;
	int index;
};

static int on_long(void *arg, const char *tok, int len, int start, int end)
{
	(void)start, (void)end;
	struct one_stem *o = arg;
	return o->fn(o->arg, tok, len, o->index);
}

/* The token text[start..end) (ASCII letters and digits), index: its stem
 * to fn. */
static int wanted(lib_tok *t, const char *text, int start, int end, int index, lib_tok_at_fn fn,
		  void *arg)
{
	uint32_t n = (uint32_t)(end - start), slen = 0;
	const char *stem = n <= STEM_KEY_MAX ? stem_of(t, text + start, n, &slen) : NULL;
	if (stem)
		return fn(arg, stem, (int)slen, index);
	struct one_stem o = { fn, arg, index };
	return run_fts5(t, LIB_TOK_DOC, text + start, end - start, start, on_long, &o);
}

int lib_tok_places(lib_tok *t, const char *text, int len, const unsigned char want[256],
		   lib_tok_span **spans, size_t *cap, int *n, bool *ascii, lib_tok_at_fn fn,
		   void *arg)
{
	const unsigned char *s = (const unsigned char *)text;
	uint64_t tok[SCAN_WORDS], hi, carry = 0; /* carry: the byte before the word is a token's */
	lib_tok_span *sp = *spans; /* locals, not through the pointers: */
	size_t room = *cap;	   /* the compiler need not reload them */
	int nt = 0, rc = SDK_OK;
	int pend = -1; /* the open token's index when its stem is wanted */
	size_t total = len > 0 ? (size_t)len : 0;
	*ascii = true;
	for (size_t base = 0; base < total && !rc; base += SCAN_BYTES) {
		size_t left = total - base, nb = left < SCAN_BYTES ? left : SCAN_BYTES;
		classify(s + base, nb, tok, &hi);
		if (hi) {
			*ascii = false;
			break;
		}
		for (unsigned w = 0; w < (nb + 63) / 64 && !rc; w++) {
			uint64_t x = tok[w], edges = x ^ ((x << 1) | carry); /* starts and ends */
			carry = x >> 63;
			while (edges) {
				unsigned b = (unsigned)__builtin_ctzll(edges);
				edges &= edges - 1;
				int at = (int)(base + ((size_t)w << 6) + b);
				if (x >> b & 1) { /* a start */
					if ((size_t)nt == room) { /* a call a token would cost */
						lib_tok_span *g = sdk_grow(sp, &room, (size_t)nt,
									   sizeof *g, 256);
						if (!g) {
							rc = SDK_EIO;
							break;
						}
						sp = g;
					}
					sp[nt].start = at;
					unsigned char f = s[at];
					pend = want[f >= 'A' && f <= 'Z' ? f | 0x20u : f] ? nt : -1;
					nt++;
				} else { /* an end: the open token's */
					sp[nt - 1].end = at;
					if (pend >= 0 && (rc = wanted(t, text, sp[pend].start, at, pend,
								      fn, arg)))
						break;
					pend = -1;
				}
			}
		}
	}
	if (!rc && *ascii && carry) { /* the last token runs to the end */
		sp[nt - 1].end = len;
		if (pend >= 0)
			rc = wanted(t, text, sp[pend].start, len, pend, fn, arg);
	}
	*spans = sp;
	*cap = room;
	*n = nt;
	return rc;
}
