#include "kernels/metrics/index.h"

#include <stdlib.h>
#include <string.h>

#define BUCKETS_MIN 1024

typedef struct plist {
	uint32_t *ids;
	size_t n, cap;
} plist;

/* One name=value pair and its series. */
typedef struct posting {
	struct posting *next;      /* in its hash bucket */
	struct posting *next_value; /* the name's other values */
	struct lname *name;
	char *value;
	uint64_t hash;
	plist ids;
} posting;

typedef struct lname {
	struct lname *next;
	char *name;
	uint64_t hash;
	posting *values;
	size_t n_values;
} lname;

struct idx {
	posting **pb;
	size_t n_pb, n_postings;
	lname **nb;
	size_t n_nb, n_names;
	plist all;
};

bool idx_matcher_matches(const idx_matcher *m, const char *v)
{
	switch (m->type) {
	case IDX_EQ:
		return !strcmp(v, m->value);
	case IDX_NEQ:
		return strcmp(v, m->value) != 0;
	case IDX_RE:
		return rx_match(m->re, v);
	case IDX_NRE:
		return !rx_match(m->re, v);
	}
	return false;
}

static uint64_t hash2(const char *a, const char *b)
{
	lbl_pair p = { a, b ? b : "" };
	return lbl_hash_pairs(&p, 1);
}

idx *idx_new(void)
{
	idx *x = calloc(1, sizeof *x);
	if (!x)
		return NULL;
	x->n_pb = BUCKETS_MIN;
	x->n_nb = 64;
	x->pb = calloc(x->n_pb, sizeof *x->pb);
	x->nb = calloc(x->n_nb, sizeof *x->nb);
	if (!x->pb || !x->nb) {
		idx_free(x);
		return NULL;
	}
	return x;
}

void idx_free(idx *x)
{
	if (!x)
		return;
	for (size_t i = 0; x->pb && i < x->n_pb; i++)
		for (posting *p = x->pb[i], *nx; p; p = nx) {
			nx = p->next;
			free(p->value);
			free(p->ids.ids);
			free(p);
		}
	for (size_t i = 0; x->nb && i < x->n_nb; i++)
		for (lname *l = x->nb[i], *nx; l; l = nx) {
			nx = l->next;
			free(l->name);
			free(l);
		}
	free(x->pb);
	free(x->nb);
	free(x->all.ids);
	free(x);
}

size_t idx_series(const idx *x) { return x->all.n; }

static int plist_add(plist *l, uint32_t id)
{
	if (l->n && l->ids[l->n - 1] >= id) {
		/* Not in order (cannot happen with ascending ids): insert. */
		size_t lo = 0, hi = l->n;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			if (l->ids[mid] < id)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo < l->n && l->ids[lo] == id)
			return 0;
		if (l->n == l->cap) {
			size_t cap = l->cap * 2;
			uint32_t *n = realloc(l->ids, cap * sizeof *n);
			if (!n)
				return -1;
			l->ids = n, l->cap = cap;
		}
		memmove(l->ids + lo + 1, l->ids + lo, (l->n - lo) * sizeof *l->ids);
		l->ids[lo] = id;
		l->n++;
		return 0;
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 4;
		uint32_t *n = realloc(l->ids, cap * sizeof *n);
		if (!n)
			return -1;
		l->ids = n, l->cap = cap;
	}
	l->ids[l->n++] = id;
	return 0;
}

static void plist_del(plist *l, uint32_t id)
{
	size_t lo = 0, hi = l->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (l->ids[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < l->n && l->ids[lo] == id) {
		memmove(l->ids + lo, l->ids + lo + 1, (l->n - lo - 1) * sizeof *l->ids);
		l->n--;
	}
}

static lname *name_find(const idx *x, const char *name, uint64_t h)
{
	for (lname *l = x->nb[h % x->n_nb]; l; l = l->next)
		if (l->hash == h && !strcmp(l->name, name))
			return l;
	return NULL;
}

static posting *posting_find(const idx *x, const char *name, const char *value, uint64_t h)
{
	for (posting *p = x->pb[h % x->n_pb]; p; p = p->next)
		if (p->hash == h && !strcmp(p->value, value) && !strcmp(p->name->name, name))
			return p;
	return NULL;
}

static void grow_postings(idx *x)
{
	size_t n = x->n_pb * 2;
	posting **b = calloc(n, sizeof *b);
	if (!b)
		return; /* longer chains, still correct */
	for (size_t i = 0; i < x->n_pb; i++)
		for (posting *p = x->pb[i], *nx; p; p = nx) {
			nx = p->next;
			p->next = b[p->hash % n];
			b[p->hash % n] = p;
		}
	free(x->pb);
	x->pb = b;
	x->n_pb = n;
}

static void grow_names(idx *x)
{
	size_t n = x->n_nb * 2;
	lname **b = calloc(n, sizeof *b);
	if (!b)
		return;
	for (size_t i = 0; i < x->n_nb; i++)
		for (lname *l = x->nb[i], *nx; l; l = nx) {
			nx = l->next;
			l->next = b[l->hash % n];
			b[l->hash % n] = l;
		}
	free(x->nb);
	x->nb = b;
	x->n_nb = n;
}

static posting *posting_get(idx *x, const char *name, const char *value)
{
	uint64_t h = hash2(name, value);
	posting *p = posting_find(x, name, value, h);
	if (p)
		return p;
	uint64_t hn = hash2(name, NULL);
	lname *l = name_find(x, name, hn);
	if (!l) {
		l = calloc(1, sizeof *l);
		if (!l || !(l->name = strdup(name))) {
			free(l);
			return NULL;
		}
		l->hash = hn;
		l->next = x->nb[hn % x->n_nb];
		x->nb[hn % x->n_nb] = l;
		if (++x->n_names > x->n_nb)
			grow_names(x);
	}
	p = calloc(1, sizeof *p);
	if (!p || !(p->value = strdup(value))) {
		free(p);
		return NULL;
	}
	p->hash = h;
	p->name = l;
	p->next = x->pb[h % x->n_pb];
	x->pb[h % x->n_pb] = p;
	p->next_value = l->values;
	l->values = p;
	l->n_values++;
	if (++x->n_postings > x->n_pb)
		grow_postings(x);
	return p;
}

int idx_add(idx *x, uint32_t id, const lbl_set *ls)
{
	for (uint32_t i = 0; i < ls->n; i++) {
		posting *p = posting_get(x, ls->p[i].name, ls->p[i].value);
		if (!p || plist_add(&p->ids, id) < 0)
			return -1;
	}
	return plist_add(&x->all, id);
}

static void posting_drop(idx *x, posting *p)
{
	posting **pp = &x->pb[p->hash % x->n_pb];
	while (*pp != p)
		pp = &(*pp)->next;
	*pp = p->next;
	lname *l = p->name;
	pp = &l->values;
	while (*pp != p)
		pp = &(*pp)->next_value;
	*pp = p->next_value;
	l->n_values--;
	x->n_postings--;
	free(p->value);
	free(p->ids.ids);
	free(p);
	if (l->n_values == 0) {
		lname **lp = &x->nb[l->hash % x->n_nb];
		while (*lp != l)
			lp = &(*lp)->next;
		*lp = l->next;
		x->n_names--;
		free(l->name);
		free(l);
	}
}

void idx_remove(idx *x, uint32_t id, const lbl_set *ls)
{
	for (uint32_t i = 0; i < ls->n; i++) {
		posting *p = posting_find(x, ls->p[i].name, ls->p[i].value,
					  hash2(ls->p[i].name, ls->p[i].value));
		if (!p)
			continue;
		plist_del(&p->ids, id);
		if (p->ids.n == 0)
			posting_drop(x, p);
	}
	plist_del(&x->all, id);
}

/* ---- set algebra on sorted id lists (malloc'd results) */

static int p_copy(const plist *a, plist *out)
{
	out->n = out->cap = a->n;
	out->ids = NULL;
	if (!a->n)
		return 0;
	out->ids = malloc(a->n * sizeof *out->ids);
	if (!out->ids)
		return -1;
	memcpy(out->ids, a->ids, a->n * sizeof *out->ids);
	return 0;
}

/* a := a ∩ b, in place. */
static void p_intersect(plist *a, const plist *b)
{
	size_t i = 0, j = 0, k = 0;
	while (i < a->n && j < b->n) {
		if (a->ids[i] < b->ids[j])
			i++;
		else if (a->ids[i] > b->ids[j])
			j++;
		else {
			a->ids[k++] = a->ids[i];
			i++, j++;
		}
	}
	a->n = k;
}

/* a := a \ b, in place. */
static void p_subtract(plist *a, const plist *b)
{
	size_t i = 0, j = 0, k = 0;
	while (i < a->n) {
		while (j < b->n && b->ids[j] < a->ids[i])
			j++;
		if (j < b->n && b->ids[j] == a->ids[i])
			i++;
		else
			a->ids[k++] = a->ids[i++];
	}
	a->n = k;
}

static int u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

/* The union of the postings of `name` whose value passes `keep(m, value)
 * == want`, sorted and unique. */
static int p_union(const idx *x, const idx_matcher *m, bool want, plist *out)
{
	*out = (plist){ 0 };
	lname *l = name_find(x, m->name, hash2(m->name, NULL));
	if (!l)
		return 0;
	size_t total = 0;
	posting *only = NULL;
	size_t matched = 0;
	for (posting *p = l->values; p; p = p->next_value)
		if (idx_matcher_matches(m, p->value) == want) {
			total += p->ids.n;
			only = p;
			matched++;
		}
	if (matched == 1)
		return p_copy(&only->ids, out);
	if (!total)
		return 0;
	out->ids = malloc(total * sizeof *out->ids);
	if (!out->ids)
		return -1;
	for (posting *p = l->values; p; p = p->next_value)
		if (idx_matcher_matches(m, p->value) == want) {
			memcpy(out->ids + out->n, p->ids.ids, p->ids.n * sizeof *out->ids);
			out->n += p->ids.n;
		}
	/* A series has one value per name: the lists are disjoint. */
	qsort(out->ids, out->n, sizeof *out->ids, u32_cmp);
	out->cap = total;
	return 0;
}

int idx_select(const idx *x, const idx_matcher *m, size_t nm, uint32_t **ids, size_t *n)
{
	*ids = NULL;
	*n = 0;
	plist acc = { 0 };
	bool have = false;
	/* Positive matchers first (they narrow fastest), then the others. */
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < nm; i++) {
			bool empty_ok = idx_matcher_matches(&m[i], "");
			if ((pass == 0) == empty_ok)
				continue;
			if (!have) {
				if (empty_ok && p_copy(&x->all, &acc) < 0)
					return -1;
				have = true;
				if (!empty_ok) {
					if (m[i].type == IDX_EQ) {
						posting *p = posting_find(x, m[i].name, m[i].value,
									  hash2(m[i].name, m[i].value));
						if (p && p_copy(&p->ids, &acc) < 0)
							return -1;
					} else if (p_union(x, &m[i], true, &acc) < 0) {
						return -1;
					}
					continue;
				}
			}
			plist other;
			if (!empty_ok) {
				if (m[i].type == IDX_EQ) {
					posting *p = posting_find(x, m[i].name, m[i].value,
								  hash2(m[i].name, m[i].value));
					if (!p) {
						acc.n = 0;
						continue;
					}
					p_intersect(&acc, &p->ids);
					continue;
				}
				if (p_union(x, &m[i], true, &other) < 0) {
					free(acc.ids);
					return -1;
				}
				p_intersect(&acc, &other);
			} else {
				/* Drop the series whose value the matcher rejects. */
				if (p_union(x, &m[i], false, &other) < 0) {
					free(acc.ids);
					return -1;
				}
				p_subtract(&acc, &other);
			}
			free(other.ids);
		}
	if (!have && p_copy(&x->all, &acc) < 0)
		return -1;
	if (acc.n == 0) {
		free(acc.ids);
		return 0;
	}
	*ids = acc.ids;
	*n = acc.n;
	return 0;
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int idx_names(const idx *x, const char ***names, size_t *n)
{
	*names = NULL;
	*n = 0;
	if (!x->n_names)
		return 0;
	const char **out = malloc(x->n_names * sizeof *out);
	if (!out)
		return -1;
	size_t k = 0;
	for (size_t i = 0; i < x->n_nb; i++)
		for (lname *l = x->nb[i]; l; l = l->next)
			out[k++] = l->name;
	qsort(out, k, sizeof *out, str_cmp);
	*names = out;
	*n = k;
	return 0;
}

int idx_values(const idx *x, const char *name, const char ***values, size_t *n)
{
	*values = NULL;
	*n = 0;
	lname *l = name_find(x, name, hash2(name, NULL));
	if (!l || !l->n_values)
		return 0;
	const char **out = malloc(l->n_values * sizeof *out);
	if (!out)
		return -1;
	size_t k = 0;
	for (posting *p = l->values; p; p = p->next_value)
		out[k++] = p->value;
	qsort(out, k, sizeof *out, str_cmp);
	*values = out;
	*n = k;
	return 0;
}
