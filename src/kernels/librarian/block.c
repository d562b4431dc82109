#include "kernels/librarian/block.h"

#include "sdk/err.h"

#include <stdlib.h>
#include <string.h>

bool lib_buf_reserve(lib_buf *b, size_t more)
{
	if (b->cap - b->n >= more)
		return true;
	size_t cap = b->cap ? b->cap : 256;
	while (cap - b->n < more) {
		if (cap > SIZE_MAX / 2)
			return false;
		cap *= 2;
	}
	uint8_t *p = realloc(b->p, cap);
	if (!p)
		return false;
	b->p = p;
	b->cap = cap;
	return true;
}

#define VARINT_MAX 10 /* bytes of a 64-bit varint */

/* v as a varint at p, which has room for VARINT_MAX bytes: its length. */
static size_t put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;
	do {
		uint8_t byte = v & 0x7f;
		v >>= 7;
		p[n++] = byte | (v ? 0x80 : 0);
	} while (v);
	return n;
}

bool lib_buf_varint(lib_buf *b, uint64_t v)
{
	if (!lib_buf_reserve(b, VARINT_MAX))
		return false;
	b->n += put_varint(b->p + b->n, v);
	return true;
}

void lib_buf_free(lib_buf *b)
{
	free(b->p);
	*b = (lib_buf){ 0 };
}

bool lib_varint(const uint8_t *p, size_t n, size_t *i, uint64_t *v)
{
	uint64_t x = 0;
	for (unsigned shift = 0; shift < 64; shift += 7) {
		if (*i >= n)
			return false;
		uint8_t byte = p[(*i)++];
		x |= (uint64_t)(byte & 0x7f) << shift;
		if (!(byte & 0x80)) {
			*v = x;
			return true;
		}
	}
	return false;
}

/* lib_varint with the one- and two-byte cases inline (most of a block's
 * numbers take one; a document's length, 128 to 16,383 tokens, two):
 * decoding blocks is most of ranking a word's postings. */
static inline bool varint(const uint8_t *p, size_t n, size_t *i, uint64_t *v)
{
	if (*i < n && p[*i] < 0x80) {
		*v = p[(*i)++];
		return true;
	}
	if (*i + 1 < n && p[*i + 1] < 0x80) {
		*v = (uint64_t)(p[*i] & 0x7f) | (uint64_t)p[*i + 1] << 7;
		*i += 2;
		return true;
	}
	return lib_varint(p, n, i, v);
}

void lib_blk_clear(lib_blk *b)
{
	b->n = 0;
	b->npos = 0;
	b->has_pos = false;
}

void lib_blk_free(lib_blk *b)
{
	free(b->doc);
	free(b->dl);
	free(b->tf);
	free(b->poff);
	free(b->pos);
	*b = (lib_blk){ 0 };
}

bool lib_blk_reserve(lib_blk *b, uint32_t n)
{
	if (n <= b->cap)
		return true;
	uint32_t cap = b->cap ? b->cap : 16;
	while (cap < n)
		cap *= 2;
	int64_t *doc = realloc(b->doc, cap * sizeof *doc);
	if (doc)
		b->doc = doc;
	uint32_t *dl = realloc(b->dl, cap * sizeof *dl);
	if (dl)
		b->dl = dl;
	uint32_t(*tf)[LIB_FIELDS] = realloc(b->tf, cap * sizeof *tf);
	if (tf)
		b->tf = tf;
	uint32_t *poff = realloc(b->poff, (cap + 1) * sizeof *poff);
	if (poff)
		b->poff = poff;
	if (!doc || !dl || !tf || !poff)
		return false;
	b->cap = cap;
	return true;
}

bool lib_blk_pos_reserve(lib_blk *b, uint32_t npos)
{
	if (npos <= b->pos_cap)
		return true;
	uint32_t cap = b->pos_cap ? b->pos_cap : 256;
	while (cap < npos)
		cap *= 2;
	uint32_t *pos = realloc(b->pos, cap * sizeof *pos);
	if (!pos)
		return false;
	b->pos = pos;
	b->pos_cap = cap;
	return true;
}

static int decode_pos(lib_blk *b, const uint8_t *p, size_t n)
{
	size_t i = 0;
	uint64_t total = 0;
	for (uint32_t k = 0; k < b->n; k++)
		total += (uint64_t)b->tf[k][0] + b->tf[k][1] + b->tf[k][2];
	if (total > LIB_POS_MAX || !lib_blk_pos_reserve(b, (uint32_t)total))
		return SDK_ECORRUPT;
	uint32_t o = 0;
	for (uint32_t k = 0; k < b->n; k++) {
		b->poff[k] = o;
		for (unsigned fld = 0; fld < LIB_FIELDS; fld++) {
			uint64_t at = 0;
			for (uint32_t j = 0; j < b->tf[k][fld]; j++) {
				uint64_t d;
				if (!lib_varint(p, n, &i, &d) || (j && d == 0) || at + d > UINT32_MAX)
					return SDK_ECORRUPT;
				at += d;
				b->pos[o++] = (uint32_t)at;
			}
		}
	}
	b->poff[b->n] = o;
	if (i != n)
		return SDK_ECORRUPT;
	b->npos = o;
	b->has_pos = true;
	return SDK_OK;
}

int lib_blk_decode(lib_blk *b, const uint8_t *docs, size_t docs_len, const uint8_t *pos,
		   size_t pos_len)
{
	size_t i = 0;
	uint64_t doc = 0, v;
	lib_blk_clear(b);
	if (!varint(docs, docs_len, &i, &doc) || doc == 0 || doc > INT64_MAX)
		return SDK_ECORRUPT;
	while (i < docs_len) {
		if (b->n >= LIB_BLK_MAX * 2 || (b->n == b->cap && !lib_blk_reserve(b, b->n + 1)))
			return SDK_ECORRUPT;
		uint32_t k = b->n;
		if (k) {
			if (!varint(docs, docs_len, &i, &v) || v == 0 || v > (uint64_t)INT64_MAX - doc)
				return SDK_ECORRUPT;
			doc += v;
		}
		uint64_t dl, code, tt = 0, tg = 0;
		if (!varint(docs, docs_len, &i, &dl) || !varint(docs, docs_len, &i, &code) ||
		    dl > UINT32_MAX || (code >> 2) > UINT32_MAX)
			return SDK_ECORRUPT;
		if ((code & 2) && (!varint(docs, docs_len, &i, &tt) || tt == 0 || tt > UINT32_MAX))
			return SDK_ECORRUPT;
		if ((code & 1) && (!varint(docs, docs_len, &i, &tg) || tg == 0 || tg > UINT32_MAX))
			return SDK_ECORRUPT;
		b->doc[k] = (int64_t)doc;
		b->dl[k] = (uint32_t)dl;
		b->tf[k][0] = (uint32_t)tt;
		b->tf[k][1] = (uint32_t)(code >> 2);
		b->tf[k][2] = (uint32_t)tg;
		b->n++;
	}
	if (b->n == 0)
		return SDK_ECORRUPT;
	return pos ? decode_pos(b, pos, pos_len) : SDK_OK;
}

void lib_stair_free(lib_stair *s)
{
	free(s->pt);
	*s = (lib_stair){ 0 };
}

/* The staircase of undominated points, f descending (and so dl
 * descending), kept as the points come: a point no kept one dominates (f
 * at least its f, dl at most its dl) goes in at its place, and the kept
 * points it dominates go. The same points, in the same order, as sorting
 * all of them and keeping each whose dl is below every earlier one's, at a
 * fraction of the cost (a qsort of every block was half of encoding it),
 * and whatever order they come in. */
bool lib_stair_add(lib_stair *s, const lib_blk *b, uint32_t from, uint32_t count)
{
	for (uint32_t k = from; k < from + count; k++) {
		uint32_t f = lib_weighted(b->tf[k], 7), dl = b->dl[k];
		if (!f)
			continue;
		uint32_t(*pt)[2] = s->pt, front = s->n, at = 0;
		while (at < front && pt[at][0] > f) /* the kept with a larger f */
			at++;
		if (at && pt[at - 1][1] <= dl)
			continue; /* dominated (the last of them has the smallest dl) */
		if (at < front && pt[at][0] == f && pt[at][1] <= dl)
			continue; /* the same f, no larger dl */
		uint32_t end = at; /* the kept it dominates: f <= its f, dl >= its dl */
		while (end < front && pt[end][1] >= dl)
			end++;
		if (end == at) {
			if (front == s->cap) {
				uint32_t cap = s->cap ? s->cap * 2 : 8;
				uint32_t(*g)[2] = realloc(s->pt, cap * sizeof *g);
				if (!g)
					return false;
				s->pt = pt = g;
				s->cap = cap;
			}
			memmove(&pt[at + 1], &pt[at], (front - at) * sizeof *pt);
			s->n++;
		} else if (end > at + 1) {
			memmove(&pt[at + 1], &pt[end], (front - end) * sizeof *pt);
			s->n -= end - at - 1;
		}
		pt[at][0] = f;
		pt[at][1] = dl;
	}
	return true;
}

static double point_score(uint32_t f, uint32_t dl, double avgdl)
{
	return lib_bm25_term(1.0, (double)f, (double)dl, avgdl);
}

/* The staircase's points merged down to LIB_BOUND_POINTS: two neighbours
 * become (the larger f, the smaller dl), which covers both; the pair
 * whose merge raises the bound least goes. */
bool lib_stair_bound(const lib_stair *s, double avgdl, lib_buf *out)
{
	uint32_t front = s->n;
	uint32_t(*pt)[2] = malloc((front ? front : 1) * sizeof *pt);
	if (!pt)
		return false;
	if (front)
		memcpy(pt, s->pt, front * sizeof *pt);
	if (avgdl <= 0)
		avgdl = 1;
	while (front > LIB_BOUND_POINTS) {
		uint32_t best = 0;
		double best_cost = 0;
		for (uint32_t k = 0; k + 1 < front; k++) {
			double a = point_score(pt[k][0], pt[k][1], avgdl);
			double c = point_score(pt[k + 1][0], pt[k + 1][1], avgdl);
			double merged = point_score(pt[k][0], pt[k + 1][1], avgdl);
			double cost = merged - (a > c ? a : c);
			if (k == 0 || cost < best_cost) {
				best = k;
				best_cost = cost;
			}
		}
		pt[best][1] = pt[best + 1][1];
		memmove(&pt[best + 1], &pt[best + 2], (front - best - 2) * sizeof *pt);
		front--;
	}
	bool ok = lib_buf_varint(out, front);
	for (uint32_t k = 0; ok && k < front; k++)
		ok = lib_buf_varint(out, pt[k][0]) && lib_buf_varint(out, pt[k][1]);
	free(pt);
	return ok;
}

/* The undominated (f, dl) points of the postings, merged down to
 * LIB_BOUND_POINTS (lib_stair_bound). */
static bool encode_bound(const lib_blk *b, uint32_t from, uint32_t count, double avgdl,
			 lib_buf *out)
{
	lib_stair s = { 0 };
	bool ok = lib_stair_add(&s, b, from, count) && lib_stair_bound(&s, avgdl, out);
	lib_stair_free(&s);
	return ok;
}

/* Postings [from, from + count) of b into docs, the first as a delta
 * from `prev` (0: the block's first posting, its document as it is). */
static bool encode_docs(const lib_blk *b, uint32_t from, uint32_t count, int64_t prev,
			lib_buf *docs, lib_buf *pos)
{
	/* Room for every posting's five varints at once: the writes below
	 * need no check each (they were a third of encoding). */
	bool ok = count > 0 && lib_buf_reserve(docs, (size_t)count * 5 * VARINT_MAX);
	for (uint32_t k = from; ok && k < from + count; k++) {
		const uint32_t *tf = b->tf[k];
		uint8_t *d = docs->p + docs->n;
		d += put_varint(d, (uint64_t)(b->doc[k] - (k == from ? prev : b->doc[k - 1])));
		d += put_varint(d, b->dl[k]);
		d += put_varint(d, (uint64_t)tf[1] << 2 | (tf[0] > 0) << 1 | (tf[2] > 0));
		if (tf[0])
			d += put_varint(d, tf[0]);
		if (tf[2])
			d += put_varint(d, tf[2]);
		docs->n = (size_t)(d - docs->p);
		const uint32_t *p = b->has_pos ? b->pos + b->poff[k] : NULL;
		for (unsigned fld = 0; ok && p && fld < LIB_FIELDS; fld++) {
			uint32_t at = 0;
			for (uint32_t j = 0; ok && j < tf[fld]; j++, p++) {
				ok = lib_buf_varint(pos, *p - at);
				at = *p;
			}
		}
	}
	return ok;
}

bool lib_blk_encode(const lib_blk *b, uint32_t from, uint32_t count, double avgdl, lib_buf *docs,
		    lib_buf *pos, lib_buf *bound)
{
	return encode_docs(b, from, count, 0, docs, pos) &&
	       encode_bound(b, from, count, avgdl, bound);
}

bool lib_blk_encode_more(const lib_blk *b, uint32_t from, uint32_t count, int64_t prev,
			 lib_buf *docs)
{
	return !b->has_pos && prev > 0 && encode_docs(b, from, count, prev, docs, NULL);
}

int lib_bound_decode(const uint8_t *p, size_t n, lib_bound *out)
{
	size_t i = 0;
	uint64_t m, f, dl;
	if (!lib_varint(p, n, &i, &m) || m > LIB_BOUND_POINTS)
		return SDK_ECORRUPT;
	out->n = (uint32_t)m;
	for (uint32_t k = 0; k < m; k++) {
		if (!lib_varint(p, n, &i, &f) || !lib_varint(p, n, &i, &dl) || f > UINT32_MAX ||
		    dl > UINT32_MAX)
			return SDK_ECORRUPT;
		out->f[k] = (uint32_t)f;
		out->dl[k] = (uint32_t)dl;
	}
	return i == n ? SDK_OK : SDK_ECORRUPT;
}

double lib_bound_score(const lib_bound *bd, double idf, double avgdl)
{
	double best = 0;
	for (uint32_t k = 0; k < bd->n; k++) {
		double s = lib_bm25_term(idf, (double)bd->f[k], (double)bd->dl[k], avgdl);
		if (s > best)
			best = s;
	}
	return best * LIB_BOUND_SLACK;
}
