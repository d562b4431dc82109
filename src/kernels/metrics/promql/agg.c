/* Aggregation operators (Prometheus 2.42's aggregation()): groups by
 * `by`/`without` labels in order of first appearance, Welford for
 * stddev/stdvar, an incremental mean for avg, heaps for topk/bottomk
 * with Go's container/heap moves (so ties fall as they do there). */
#include "kernels/metrics/promql/eval_int.h"

#include "kernels/metrics/promql/eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct group {
	lbl_set *ls; /* the group's labels (borrowed from the cache or owned: see own) */
	bool own;
	double value, mean;
	size_t count;
	smp *heap; /* topk, bottomk, quantile */
	size_t hn, hcap;
} group;

struct agg_ctx {
	const pq_node *n;
	const char *str; /* count_values' label */
	lcache grp;      /* per input series: its group's labels */
	group *g;
	size_t ng, capg;
	size_t *tab; /* group index + 1 by labels */
	size_t ntab;
};

static lbl_set *group_labels(const pq_node *n, const lbl_set *ls)
{
	lbl_builder b;
	lbl_b_init(&b, ls);
	if (n->agg.without) {
		lbl_b_del_all(&b, n->agg.grouping.v, n->agg.grouping.n);
		lbl_b_del(&b, LBL_METRIC_NAME);
	} else {
		lbl_b_keep(&b, n->agg.grouping.v, n->agg.grouping.n);
	}
	return lbl_b_finish(&b);
}

/* Go's vectorByValueHeap.Less: NaN is the least. */
static bool less_min(const smp *a, const smp *b) { return isnan(a->v) || a->v < b->v; }
/* vectorByReverseValueHeap.Less. */
static bool less_max(const smp *a, const smp *b) { return isnan(a->v) || a->v > b->v; }

typedef bool (*less_fn)(const smp *, const smp *);

static void h_swap(smp *h, size_t i, size_t j)
{
	smp t = h[i];
	h[i] = h[j];
	h[j] = t;
}

static void h_up(smp *h, size_t j, less_fn less)
{
	while (j > 0) {
		size_t i = (j - 1) / 2;
		if (!less(&h[j], &h[i]))
			break;
		h_swap(h, i, j);
		j = i;
	}
}

static void h_down(smp *h, size_t i, size_t n, less_fn less)
{
	for (;;) {
		size_t j1 = 2 * i + 1;
		if (j1 >= n)
			break;
		size_t j = j1;
		if (j1 + 1 < n && less(&h[j1 + 1], &h[j1]))
			j = j1 + 1;
		if (!less(&h[j], &h[i]))
			break;
		h_swap(h, i, j);
		i = j;
	}
}

static int h_push(ev *e, group *g, smp s, less_fn less)
{
	if (g->hn == g->hcap) {
		size_t cap = g->hcap ? g->hcap * 2 : 8;
		smp *n = realloc(g->heap, cap * sizeof *n);
		if (!n)
			return ev_fail(e, SDK_EIO, "out of memory");
		g->heap = n;
		g->hcap = cap;
	}
	g->heap[g->hn++] = s;
	if (less)
		h_up(g->heap, g->hn - 1, less);
	return 0;
}

static void h_pop(group *g, less_fn less)
{
	h_swap(g->heap, 0, g->hn - 1);
	h_down(g->heap, 0, g->hn - 1, less);
	g->hn--;
}

/* A stable sort by `less` reversed (Go's sort.Sort(sort.Reverse(h))). */
static void sort_reverse(smp *a, size_t n, less_fn less)
{
	for (size_t i = 1; i < n; i++) {
		smp x = a[i];
		size_t j = i;
		while (j > 0 && less(&a[j - 1], &x)) {
			a[j] = a[j - 1];
			j--;
		}
		a[j] = x;
	}
}

static int dbl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	if (isnan(x))
		return isnan(y) ? 0 : -1;
	if (isnan(y))
		return 1;
	return (x > y) - (x < y);
}

double pq_quantile(double q, double *vals, size_t n)
{
	if (n == 0 || isnan(q))
		return NAN;
	if (q < 0)
		return -INFINITY;
	if (q > 1)
		return INFINITY;
	qsort(vals, n, sizeof *vals, dbl_cmp);
	double rank = q * (double)(n - 1);
	double lower = fmax(0, floor(rank));
	double upper = fmin((double)n - 1, lower + 1);
	double weight = rank - floor(rank);
	return vals[(size_t)lower] * (1 - weight) + vals[(size_t)upper] * weight;
}

static group *find_group(ev *e, struct agg_ctx *c, lbl_set *ls, bool *created)
{
	*created = false;
	if (c->ng * 2 >= c->ntab) {
		size_t n = c->ntab ? c->ntab * 2 : 64;
		size_t *t = calloc(n, sizeof *t);
		if (!t)
			return ev_fail(e, SDK_EIO, "out of memory"), NULL;
		for (size_t i = 0; i < c->ng; i++) {
			size_t h = c->g[i].ls->hash & (n - 1);
			while (t[h])
				h = (h + 1) & (n - 1);
			t[h] = i + 1;
		}
		free(c->tab);
		c->tab = t;
		c->ntab = n;
	}
	size_t h = ls->hash & (c->ntab - 1);
	while (c->tab[h]) {
		group *g = &c->g[c->tab[h] - 1];
		if (lbl_eq(g->ls, ls))
			return g;
		h = (h + 1) & (c->ntab - 1);
	}
	if (c->ng == c->capg) {
		size_t cap = c->capg ? c->capg * 2 : 16;
		group *n = realloc(c->g, cap * sizeof *n);
		if (!n)
			return ev_fail(e, SDK_EIO, "out of memory"), NULL;
		c->g = n;
		c->capg = cap;
	}
	group *g = &c->g[c->ng++];
	memset(g, 0, sizeof *g);
	g->ls = ls;
	c->tab[h] = c->ng;
	*created = true;
	return g;
}

static void reset_groups(struct agg_ctx *c)
{
	for (size_t i = 0; i < c->ng; i++) {
		if (c->g[i].own)
			lbl_unref(c->g[i].ls);
		free(c->g[i].heap);
	}
	c->ng = 0;
	if (c->tab)
		memset(c->tab, 0, c->ntab * sizeof *c->tab);
}

static int step_agg(ev *e, void *arg, int64_t ts, vec *in, vec *out)
{
	struct agg_ctx *c = arg;
	const pq_node *n = c->n;
	enum pq_agg_op op = n->agg.op;
	vec *v = c->str ? &in[0] : &in[1];
	double param = 0;
	int64_t k = 0;
	if (!c->str && n->agg.param) {
		if (!in[0].n)
			return 0;
		param = in[0].s[0].v;
	}
	if (op == PQ_AGG_TOPK || op == PQ_AGG_BOTTOMK) {
		if (!(param >= -9.2233720368547e18 && param <= 9.2233720368547e18))
			return ev_fail(e, PQ_EEXEC, "Scalar value %g overflows int64", param);
		k = (int64_t)param;
		if (k < 1)
			return 0;
	}
	reset_groups(c);
	int rc = 0;
	for (size_t i = 0; i < v->n && !rc; i++) {
		smp *s = &v->s[i];
		lbl_set *gls;
		bool own = false;
		if (op == PQ_AGG_COUNT_VALUES) {
			/* The value becomes a label, then grouping applies. */
			char val[64];
			pq_format_value(s->v, val, sizeof val);
			lbl_builder b;
			lbl_b_init(&b, s->ls);
			lbl_b_set(&b, c->str, val);
			lbl_set *withval = lbl_b_finish(&b);
			if (!withval)
				return ev_fail(e, SDK_EIO, "out of memory");
			if (n->agg.without) {
				gls = group_labels(n, withval);
			} else {
				lbl_builder k2;
				lbl_b_init(&k2, withval);
				const char *keep[LBL_PAIRS_MAX + 1];
				size_t nk = 0;
				for (size_t j = 0; j < n->agg.grouping.n && nk < LBL_PAIRS_MAX; j++)
					keep[nk++] = n->agg.grouping.v[j];
				keep[nk++] = c->str;
				lbl_b_keep(&k2, keep, nk);
				gls = lbl_b_finish(&k2);
			}
			lbl_unref(withval);
			if (!gls)
				return ev_fail(e, SDK_EIO, "out of memory");
			own = true;
		} else {
			lbl_set **slot = &c->grp.ls[s->idx];
			if (!*slot && !(*slot = group_labels(n, s->ls)))
				return ev_fail(e, SDK_EIO, "out of memory");
			gls = *slot;
		}
		bool created;
		group *g = find_group(e, c, gls, &created);
		if (!g) {
			if (own)
				lbl_unref(gls);
			return -1;
		}
		if (!created && own)
			lbl_unref(gls);
		if (created) {
			g->own = own;
			g->value = s->v;
			g->mean = s->v;
			g->count = 1;
			switch (op) {
			case PQ_AGG_STDVAR:
			case PQ_AGG_STDDEV: g->value = 0; break;
			case PQ_AGG_TOPK:
			case PQ_AGG_BOTTOMK:
			case PQ_AGG_QUANTILE: rc = h_push(e, g, *s, NULL); break;
			case PQ_AGG_GROUP: g->value = 1; break;
			default: break;
			}
			continue;
		}
		switch (op) {
		case PQ_AGG_SUM: g->value += s->v; break;
		case PQ_AGG_AVG:
			g->count++;
			if (isinf(g->mean)) {
				if (isinf(s->v) && (g->mean > 0) == (s->v > 0))
					break;
				if (!isinf(s->v) && !isnan(s->v))
					break;
			}
			g->mean += s->v / (double)g->count - g->mean / (double)g->count;
			break;
		case PQ_AGG_GROUP: break;
		case PQ_AGG_MAX:
			if (g->value < s->v || isnan(g->value))
				g->value = s->v;
			break;
		case PQ_AGG_MIN:
			if (g->value > s->v || isnan(g->value))
				g->value = s->v;
			break;
		case PQ_AGG_COUNT:
		case PQ_AGG_COUNT_VALUES: g->count++; break;
		case PQ_AGG_STDVAR:
		case PQ_AGG_STDDEV: {
			g->count++;
			double delta = s->v - g->mean;
			g->mean += delta / (double)g->count;
			g->value += delta * (s->v - g->mean);
			break;
		}
		case PQ_AGG_TOPK:
			if ((int64_t)g->hn < k || g->heap[0].v < s->v || isnan(g->heap[0].v)) {
				if ((int64_t)g->hn == k) {
					if (k == 1) {
						g->heap[0] = *s;
						break;
					}
					h_pop(g, less_min);
				}
				rc = h_push(e, g, *s, less_min);
			}
			break;
		case PQ_AGG_BOTTOMK:
			if ((int64_t)g->hn < k || g->heap[0].v > s->v || isnan(g->heap[0].v)) {
				if ((int64_t)g->hn == k) {
					if (k == 1) {
						g->heap[0] = *s;
						break;
					}
					h_pop(g, less_max);
				}
				rc = h_push(e, g, *s, less_max);
			}
			break;
		case PQ_AGG_QUANTILE: rc = h_push(e, g, *s, NULL); break;
		}
	}
	for (size_t i = 0; i < c->ng && !rc; i++) {
		group *g = &c->g[i];
		double val = g->value;
		switch (op) {
		case PQ_AGG_AVG: val = g->mean; break;
		case PQ_AGG_COUNT:
		case PQ_AGG_COUNT_VALUES: val = (double)g->count; break;
		case PQ_AGG_STDVAR: val = g->value / (double)g->count; break;
		case PQ_AGG_STDDEV: val = sqrt(g->value / (double)g->count); break;
		case PQ_AGG_TOPK:
		case PQ_AGG_BOTTOMK:
			if (g->hn > 1)
				sort_reverse(g->heap, g->hn, op == PQ_AGG_TOPK ? less_min : less_max);
			for (size_t j = 0; j < g->hn && !rc; j++)
				rc = vec_push(e, out, lbl_ref(g->heap[j].ls), g->heap[j].v, ts, g->heap[j].idx);
			continue;
		case PQ_AGG_QUANTILE: {
			double *vals = malloc(g->hn * sizeof *vals);
			if (!vals)
				return ev_fail(e, SDK_EIO, "out of memory");
			for (size_t j = 0; j < g->hn; j++)
				vals[j] = g->heap[j].v;
			val = pq_quantile(param, vals, g->hn);
			free(vals);
			break;
		}
		default: break;
		}
		rc = vec_push(e, out, lbl_ref(g->ls), val, ts, 0);
	}
	return rc;
}

int eval_aggregation(ev *e, const pq_node *n, pq_matrix *param, const char *str_param,
		     pq_matrix *in, pq_matrix *out)
{
	if (n->agg.op == PQ_AGG_COUNT_VALUES && !lbl_valid_name(str_param, strlen(str_param)))
		return ev_fail(e, PQ_EEXEC, "invalid label name \"%s\"", str_param);
	struct agg_ctx c = { .n = n, .str = str_param };
	if (lcache_init(&c.grp, in->n) < 0)
		return ev_fail(e, SDK_EIO, "out of memory");
	int rc;
	if (param) {
		pq_matrix ins[2] = { *param, *in };
		rc = range_eval(e, ins, 2, step_agg, &c, out);
	} else if (str_param) {
		rc = range_eval(e, in, 1, step_agg, &c, out);
	} else {
		pq_matrix ins[2] = { { 0 }, *in };
		/* No parameter: a dummy first input keeps the indexes. */
		rc = range_eval(e, ins, 2, step_agg, &c, out);
	}
	reset_groups(&c);
	free(c.g);
	free(c.tab);
	lcache_free(&c.grp);
	return rc;
}
