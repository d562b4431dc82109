#include "kernels/metrics/labels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static uint64_t fnv_bytes(uint64_t h, const char *s)
{
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= FNV_PRIME;
	}
	/* 0xff never occurs in UTF-8: a separator no name or value holds. */
	h ^= 0xff;
	h *= FNV_PRIME;
	return h;
}

uint64_t lbl_hash_pairs(const lbl_pair *p, size_t n)
{
	uint64_t h = FNV_OFFSET;
	for (size_t i = 0; i < n; i++) {
		h = fnv_bytes(h, p[i].name);
		h = fnv_bytes(h, p[i].value);
	}
	/* A final mix: FNV's low bits are weak for open addressing. */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

static int pair_cmp(const void *a, const void *b)
{
	return strcmp(((const lbl_pair *)a)->name, ((const lbl_pair *)b)->name);
}

/* Builds the block from pairs already sorted, unique and non-empty. */
static lbl_set *build(const lbl_pair *p, size_t n)
{
	size_t strs = 0;
	for (size_t i = 0; i < n; i++)
		strs += strlen(p[i].name) + strlen(p[i].value) + 2;
	size_t bytes = sizeof(lbl_set) + n * sizeof(lbl_pair) + strs;
	lbl_set *ls = malloc(bytes);
	if (!ls)
		return NULL;
	ls->n = (uint32_t)n;
	ls->refs = 1;
	ls->bytes = bytes;
	char *s = (char *)&ls->p[n];
	for (size_t i = 0; i < n; i++) {
		size_t a = strlen(p[i].name) + 1, b = strlen(p[i].value) + 1;
		memcpy(s, p[i].name, a);
		ls->p[i].name = s;
		s += a;
		memcpy(s, p[i].value, b);
		ls->p[i].value = s;
		s += b;
	}
	ls->hash = lbl_hash_pairs(ls->p, n);
	return ls;
}

lbl_set *lbl_new(const lbl_pair *pairs, size_t n, bool *dup)
{
	if (dup)
		*dup = false;
	if (n > LBL_PAIRS_MAX)
		return NULL;
	lbl_pair tmp[LBL_PAIRS_MAX];
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (pairs[i].value && pairs[i].value[0])
			tmp[k++] = pairs[i];
	qsort(tmp, k, sizeof tmp[0], pair_cmp);
	for (size_t i = 1; i < k; i++)
		if (!strcmp(tmp[i].name, tmp[i - 1].name)) {
			if (dup)
				*dup = true;
			return NULL;
		}
	return build(tmp, k);
}

lbl_set *lbl_empty(void)
{
	return build(NULL, 0);
}

lbl_set *lbl_ref(lbl_set *ls)
{
	if (ls)
		ls->refs++;
	return ls;
}

void lbl_unref(lbl_set *ls)
{
	if (ls && --ls->refs == 0)
		free(ls);
}

lbl_set *lbl_dup(const lbl_set *ls)
{
	lbl_set *c = malloc(ls->bytes);
	if (!c)
		return NULL;
	memcpy(c, ls, ls->bytes);
	c->refs = 1;
	/* The pointers were into the old block: move them to ours. */
	const char *base = (const char *)ls;
	char *nb = (char *)c;
	for (uint32_t i = 0; i < c->n; i++) {
		c->p[i].name = nb + (ls->p[i].name - base);
		c->p[i].value = nb + (ls->p[i].value - base);
	}
	return c;
}

const char *lbl_get(const lbl_set *ls, const char *name)
{
	size_t lo = 0, hi = ls->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(ls->p[mid].name, name);
		if (c == 0)
			return ls->p[mid].value;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

bool lbl_eq(const lbl_set *a, const lbl_set *b)
{
	if (a == b)
		return true;
	if (a->hash != b->hash || a->n != b->n)
		return false;
	for (uint32_t i = 0; i < a->n; i++)
		if (strcmp(a->p[i].name, b->p[i].name) || strcmp(a->p[i].value, b->p[i].value))
			return false;
	return true;
}

int lbl_cmp(const lbl_set *a, const lbl_set *b)
{
	uint32_t n = a->n < b->n ? a->n : b->n;
	for (uint32_t i = 0; i < n; i++) {
		int c = strcmp(a->p[i].name, b->p[i].name);
		if (c)
			return c;
		c = strcmp(a->p[i].value, b->p[i].value);
		if (c)
			return c;
	}
	return (a->n > b->n) - (a->n < b->n);
}

bool lbl_valid_name(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
			  (i > 0 && c >= '0' && c <= '9');
		if (!ok)
			return false;
	}
	return true;
}

bool lbl_valid_metric_name(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
			  (i > 0 && c >= '0' && c <= '9');
		if (!ok)
			return false;
	}
	return true;
}

bool lbl_valid_utf8(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + n;
	while (p < end) {
		unsigned c = *p;
		size_t len;
		unsigned min;
		if (c < 0x80) {
			p++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			len = 2, min = 0x80, c &= 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			len = 3, min = 0x800, c &= 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			len = 4, min = 0x10000, c &= 0x07;
		} else {
			return false;
		}
		if ((size_t)(end - p) < len)
			return false;
		for (size_t i = 1; i < len; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			c = (c << 6) | (p[i] & 0x3f);
		}
		if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
			return false;
		p += len;
	}
	return true;
}

/* Appends to buf while there is room; counts what it would need. */
struct out {
	char *buf;
	size_t len, used;
};

static void put(struct out *o, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++, o->used++)
		if (o->used + 1 < o->len)
			o->buf[o->used] = s[i];
}

static void put_quoted(struct out *o, const char *s)
{
	put(o, "\"", 1);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			put(o, "\\", 1);
		if (*s == '\n')
			put(o, "\\n", 2);
		else
			put(o, s, 1);
	}
	put(o, "\"", 1);
}

size_t lbl_format(const lbl_set *ls, char *buf, size_t len)
{
	struct out o = { buf, len, 0 };
	put(&o, "{", 1);
	for (uint32_t i = 0; i < ls->n; i++) {
		if (i)
			put(&o, ", ", 2);
		put(&o, ls->p[i].name, strlen(ls->p[i].name));
		put(&o, "=", 1);
		put_quoted(&o, ls->p[i].value);
	}
	put(&o, "}", 1);
	if (len)
		buf[o.used < len ? o.used : len - 1] = '\0';
	return o.used;
}

/* ---- builder */

void lbl_b_init(lbl_builder *b, const lbl_set *base)
{
	b->n = 0;
	b->overflow = false;
	if (base)
		for (uint32_t i = 0; i < base->n; i++)
			b->p[b->n++] = base->p[i];
}

void lbl_b_del(lbl_builder *b, const char *name)
{
	for (size_t i = 0; i < b->n; i++)
		if (!strcmp(b->p[i].name, name)) {
			b->p[i] = b->p[--b->n];
			return;
		}
}

void lbl_b_set(lbl_builder *b, const char *name, const char *value)
{
	if (!value || !value[0]) {
		lbl_b_del(b, name);
		return;
	}
	for (size_t i = 0; i < b->n; i++)
		if (!strcmp(b->p[i].name, name)) {
			b->p[i].value = value;
			return;
		}
	if (b->n >= LBL_PAIRS_MAX) {
		b->overflow = true;
		return;
	}
	b->p[b->n++] = (lbl_pair){ name, value };
}

void lbl_b_keep(lbl_builder *b, const char *const *names, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < b->n; i++) {
		bool keep = false;
		for (size_t j = 0; j < n && !keep; j++)
			keep = !strcmp(b->p[i].name, names[j]);
		if (keep)
			b->p[k++] = b->p[i];
	}
	b->n = k;
}

void lbl_b_del_all(lbl_builder *b, const char *const *names, size_t n)
{
	for (size_t j = 0; j < n; j++)
		lbl_b_del(b, names[j]);
}

lbl_set *lbl_b_finish(const lbl_builder *b)
{
	if (b->overflow)
		return NULL;
	lbl_pair tmp[LBL_PAIRS_MAX];
	memcpy(tmp, b->p, b->n * sizeof tmp[0]);
	qsort(tmp, b->n, sizeof tmp[0], pair_cmp);
	return build(tmp, b->n);
}
