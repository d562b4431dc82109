#include "kernels/metrics/promql/eval_int.h"

#include "sdk/clock.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK_EVERY 1024

int ev_fail(ev *e, int status, const char *fmt, ...)
{
	if (!e->failed) {
		e->failed = true;
		char msg[256];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, sizeof msg, fmt, ap);
		va_end(ap);
		sdk_fail(e->err, status, "%s", msg);
	}
	return status;
}

int ev_check(ev *e)
{
	if (++e->tick % CHECK_EVERY)
		return 0;
	if (e->o->deadline_ms && sdk_mono_ms() > e->o->deadline_ms)
		return ev_fail(e, SDK_ETIMEOUT, "query timed out in expression evaluation");
	return 0;
}

size_t ev_steps(const ev *e) { return (size_t)((e->end - e->start) / e->step) + 1; }

int vec_push(ev *e, vec *v, lbl_set *ls, double val, int64_t t, uint32_t idx)
{
	if (!ls)
		return ev_fail(e, SDK_EIO, "out of memory");
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 16;
		smp *n = realloc(v->s, cap * sizeof *n);
		if (!n)
			return ev_fail(e, SDK_EIO, "out of memory");
		v->s = n;
		v->cap = cap;
	}
	v->s[v->n++] = (smp){ ls, val, t, idx };
	return 0;
}

void vec_free(vec *v)
{
	free(v->s);
	v->s = NULL;
	v->n = v->cap = 0;
}

int mat_add(ev *e, pq_matrix *m, lbl_set *ls)
{
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 16;
		pq_series *n = realloc(m->s, cap * sizeof *n);
		if (!n)
			return ev_fail(e, SDK_EIO, "out of memory");
		m->s = n;
		m->cap = cap;
	}
	m->s[m->n++] = (pq_series){ .ls = lbl_ref(ls) };
	return 0;
}

int mat_point(ev *e, pq_series *s, int64_t t, double v)
{
	if (*e->samples >= e->o->max_samples)
		return ev_fail(e, PQ_EEXEC, "query processing would load too many samples into memory in "
					    "query execution");
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		pq_point *n = realloc(s->p, cap * sizeof *n);
		if (!n)
			return ev_fail(e, SDK_EIO, "out of memory");
		s->p = n;
		s->cap = cap;
	}
	s->p[s->n++] = (pq_point){ t, v };
	(*e->samples)++;
	return 0;
}

static void series_free(ev *e, pq_series *s)
{
	if (e)
		*e->samples -= s->n;
	lbl_unref(s->ls);
	free(s->p);
}

void mat_free(ev *e, pq_matrix *m)
{
	for (size_t i = 0; i < m->n; i++)
		series_free(e, &m->s[i]);
	free(m->s);
	m->s = NULL;
	m->n = m->cap = 0;
}

static int series_cmp(const void *a, const void *b)
{
	return lbl_cmp(((const pq_series *)a)->ls, ((const pq_series *)b)->ls);
}

int mat_sort(pq_matrix *m)
{
	if (m->n > 1) /* an empty matrix may have no array at all */
		qsort(m->s, m->n, sizeof *m->s, series_cmp);
	return 0;
}

/* Drops series with no points (keeping the order). */
static void mat_compact(ev *e, pq_matrix *m)
{
	size_t k = 0;
	for (size_t i = 0; i < m->n; i++) {
		if (m->s[i].n)
			m->s[k++] = m->s[i];
		else
			series_free(e, &m->s[i]);
	}
	m->n = k;
}

bool mat_has_dup_labels(const pq_matrix *m)
{
	if (m->n < 2)
		return false;
	size_t n = 1;
	while (n < m->n * 2)
		n *= 2;
	const lbl_set **t = calloc(n, sizeof *t);
	if (!t)
		return false;
	bool dup = false;
	for (size_t i = 0; i < m->n && !dup; i++) {
		size_t h = m->s[i].ls->hash & (n - 1);
		while (t[h]) {
			if (lbl_eq(t[h], m->s[i].ls)) {
				dup = true;
				break;
			}
			h = (h + 1) & (n - 1);
		}
		t[h] = m->s[i].ls;
	}
	free(t);
	return dup;
}

static bool vec_has_dup_labels(const vec *v, const lbl_set **tab, size_t n)
{
	memset(tab, 0, n * sizeof *tab);
	for (size_t i = 0; i < v->n; i++) {
		size_t h = v->s[i].ls->hash & (n - 1);
		while (tab[h]) {
			if (lbl_eq(tab[h], v->s[i].ls))
				return true;
			h = (h + 1) & (n - 1);
		}
		tab[h] = v->s[i].ls;
	}
	return false;
}

int outmap_init(outmap *om, pq_matrix *m, size_t hint)
{
	om->m = m;
	om->n_slot = 64;
	while (om->n_slot < hint * 2)
		om->n_slot *= 2;
	om->slot = calloc(om->n_slot, sizeof *om->slot);
	return om->slot ? 0 : -1;
}

void outmap_free(outmap *om)
{
	free(om->slot);
	om->slot = NULL;
}

static void outmap_grow(outmap *om)
{
	size_t n = om->n_slot * 2;
	size_t *s = calloc(n, sizeof *s);
	if (!s)
		return;
	for (size_t i = 0; i < om->m->n; i++) {
		size_t h = om->m->s[i].ls->hash & (n - 1);
		while (s[h])
			h = (h + 1) & (n - 1);
		s[h] = i + 1;
	}
	free(om->slot);
	om->slot = s;
	om->n_slot = n;
}

pq_series *outmap_get(ev *e, outmap *om, lbl_set *ls)
{
	size_t h = ls->hash & (om->n_slot - 1);
	while (om->slot[h]) {
		pq_series *s = &om->m->s[om->slot[h] - 1];
		if (lbl_eq(s->ls, ls))
			return s;
		h = (h + 1) & (om->n_slot - 1);
	}
	if (mat_add(e, om->m, ls) < 0)
		return NULL;
	om->slot[h] = om->m->n;
	pq_series *s = &om->m->s[om->m->n - 1];
	if (om->m->n * 2 > om->n_slot) {
		outmap_grow(om);
		s = &om->m->s[om->m->n - 1];
	}
	return s;
}

lbl_set *drop_name(lbl_set *ls)
{
	if (!lbl_get(ls, LBL_METRIC_NAME))
		return lbl_ref(ls);
	lbl_builder b;
	lbl_b_init(&b, ls);
	lbl_b_del(&b, LBL_METRIC_NAME);
	return lbl_b_finish(&b);
}

int lcache_init(lcache *c, size_t n)
{
	c->n = n;
	c->ls = calloc(n + 1, sizeof *c->ls);
	return c->ls ? 0 : -1;
}

void lcache_free(lcache *c)
{
	for (size_t i = 0; c->ls && i < c->n; i++)
		lbl_unref(c->ls[i]);
	free(c->ls);
	c->ls = NULL;
}

int range_eval(ev *e, pq_matrix *in, size_t nin, step_fn fn, void *ctx, pq_matrix *out)
{
	int rc = 0;
	size_t **cur = calloc(nin + 1, sizeof *cur);
	vec *vin = calloc(nin + 1, sizeof *vin);
	vec vout = { 0 };
	const lbl_set **dup = NULL;
	size_t n_dup = 0;
	outmap om = { 0 };
	size_t biggest = 1;
	if (!cur || !vin)
		goto oom;
	for (size_t i = 0; i < nin; i++) {
		if (!(cur[i] = calloc(in[i].n + 1, sizeof *cur[i])))
			goto oom;
		if (in[i].n > biggest)
			biggest = in[i].n;
	}
	if (outmap_init(&om, out, biggest) < 0)
		goto oom;
	for (int64_t ts = e->start; ts <= e->end && !rc; ts += e->step) {
		if ((rc = ev_check(e)))
			break;
		for (size_t i = 0; i < nin && !rc; i++) {
			vin[i].n = 0;
			for (size_t s = 0; s < in[i].n; s++) {
				pq_series *se = &in[i].s[s];
				size_t *c = &cur[i][s];
				while (*c < se->n && se->p[*c].t < ts)
					(*c)++;
				if (*c < se->n && se->p[*c].t == ts) {
					if ((rc = vec_push(e, &vin[i], se->ls, se->p[*c].v, ts, (uint32_t)s)))
						break;
					(*c)++;
				}
			}
		}
		if (rc)
			break;
		vout.n = 0;
		rc = fn(e, ctx, ts, vin, &vout);
		if (!rc && vout.n > 1) {
			size_t need = 1;
			while (need < vout.n * 2)
				need *= 2;
			if (need > n_dup) {
				free(dup);
				n_dup = need;
				if (!(dup = malloc(n_dup * sizeof *dup))) {
					rc = ev_fail(e, SDK_EIO, "out of memory");
				}
			}
			if (!rc && vec_has_dup_labels(&vout, dup, n_dup))
				rc = ev_fail(e, PQ_EEXEC, "vector cannot contain metrics with the same labelset");
		}
		for (size_t k = 0; k < vout.n && !rc; k++) {
			pq_series *s = outmap_get(e, &om, vout.s[k].ls);
			if (!s || mat_point(e, s, ts, vout.s[k].v) < 0)
				rc = e->failed ? -1 : ev_fail(e, SDK_EIO, "out of memory");
		}
		for (size_t k = 0; k < vout.n; k++)
			lbl_unref(vout.s[k].ls);
	}
	goto done;
oom:
	rc = ev_fail(e, SDK_EIO, "out of memory");
done:
	if (rc && e->err && !e->failed)
		e->failed = true;
	for (size_t i = 0; cur && i < nin; i++)
		free(cur[i]);
	for (size_t i = 0; vin && i < nin; i++)
		vec_free(&vin[i]);
	free(cur);
	free(vin);
	vec_free(&vout);
	free(dup);
	outmap_free(&om);
	return rc ? (e->err && e->failed ? rc : rc) : 0;
}

/* ---- the tree walk */

static int eval(ev *e, const pq_node *n, pq_matrix *out);

static const pq_node *unparen(const pq_node *n)
{
	while (n->kind == PQ_PAREN)
		n = n->paren.expr;
	return n;
}

/* The reference time of a selector at step ts: its @ time, else ts. */
static int64_t at_time(const ev *e, enum pq_at at, int64_t at_ms, int64_t ts)
{
	switch (at) {
	case PQ_AT_TIME: return at_ms;
	case PQ_AT_START: return e->o->start;
	case PQ_AT_END: return e->o->end;
	default: return ts;
	}
}

static int select_series(ev *e, const pq_node *vs, int64_t mint, int64_t maxt,
			 tsdb_selection *sel)
{
	int rc = tsdb_select(e->o->db, vs->vs.m, vs->vs.nm, mint, maxt, false, sel, e->err);
	if (rc < 0) {
		e->failed = true;
		return rc;
	}
	return 0;
}

/* Instant vector selector over the steps; with `want_ts` the values are
 * the samples' timestamps in seconds (timestamp()). */
static int eval_vsel(ev *e, const pq_node *n, bool want_ts, pq_matrix *out)
{
	int64_t off = n->vs.offset, lb = e->o->lookback_ms;
	int64_t lo = at_time(e, n->vs.at, n->vs.at_ms, e->start) - off;
	int64_t hi = at_time(e, n->vs.at, n->vs.at_ms, e->end) - off;
	tsdb_selection sel;
	int rc = select_series(e, n, lo - lb, hi, &sel);
	if (rc)
		return rc;
	tsdb_point *pts = NULL;
	size_t np = 0, cap = 0;
	for (size_t i = 0; i < sel.n && !rc; i++) {
		if ((rc = tsdb_series_points(&sel.s[i], lo - lb, hi, &pts, &np, &cap)) < 0) {
			rc = ev_fail(e, rc, "reading series: damaged chunk");
			break;
		}
		if (!np)
			continue;
		if ((rc = mat_add(e, out, sel.s[i].ls)))
			break;
		pq_series *s = &out->s[out->n - 1];
		size_t k = 0; /* the last point at or before the reference */
		bool found = false;
		for (int64_t ts = e->start; ts <= e->end && !rc; ts += e->step) {
			int64_t ref = at_time(e, n->vs.at, n->vs.at_ms, ts) - off;
			while (k + 1 < np && pts[k + 1].t <= ref)
				k++;
			found = pts[k].t <= ref;
			if (!found || pts[k].t < ref - lb || tsdb_is_stale(pts[k].v))
				continue;
			rc = mat_point(e, s, ts, want_ts ? (double)pts[k].t / 1000.0 : pts[k].v);
			if (!rc)
				rc = ev_check(e);
		}
	}
	free(pts);
	tsdb_selection_free(&sel);
	mat_compact(e, out);
	return rc;
}

/* The raw samples (without stale markers) of every series a range
 * selector or a subquery yields, for the range functions. */
typedef struct raw_series {
	lbl_set *ls;
	pq_point *p;
	size_t n;
} raw_series;

static void raw_free(raw_series *r, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		lbl_unref(r[i].ls);
		free(r[i].p);
	}
	free(r);
}

static int eval_subquery(ev *e, const pq_node *n, pq_matrix *out);

/* Loads a range selector's samples over the window every step needs. */
static int load_msel(ev *e, const pq_node *ms, raw_series **out, size_t *nout)
{
	const pq_node *vs = ms->ms.vs;
	int64_t off = vs->vs.offset;
	int64_t lo = at_time(e, vs->vs.at, vs->vs.at_ms, e->start) - off - ms->ms.range;
	int64_t hi = at_time(e, vs->vs.at, vs->vs.at_ms, e->end) - off;
	tsdb_selection sel;
	int rc = select_series(e, vs, lo, hi, &sel);
	if (rc)
		return rc;
	raw_series *r = calloc(sel.n + 1, sizeof *r);
	if (!r) {
		tsdb_selection_free(&sel);
		return ev_fail(e, SDK_EIO, "out of memory");
	}
	size_t k = 0;
	tsdb_point *pts = NULL;
	size_t np = 0, cap = 0;
	for (size_t i = 0; i < sel.n && !rc; i++) {
		if ((rc = tsdb_series_points(&sel.s[i], lo, hi, &pts, &np, &cap)) < 0) {
			rc = ev_fail(e, rc, "reading series: damaged chunk");
			break;
		}
		size_t live = 0;
		for (size_t j = 0; j < np; j++)
			live += !tsdb_is_stale(pts[j].v);
		if (!live)
			continue;
		r[k].p = malloc(live * sizeof *r[k].p);
		if (!r[k].p) {
			rc = ev_fail(e, SDK_EIO, "out of memory");
			break;
		}
		for (size_t j = 0; j < np; j++)
			if (!tsdb_is_stale(pts[j].v))
				r[k].p[r[k].n++] = (pq_point){ pts[j].t, pts[j].v };
		r[k].ls = lbl_ref(sel.s[i].ls);
		k++;
	}
	free(pts);
	tsdb_selection_free(&sel);
	if (rc) {
		raw_free(r, k);
		return rc;
	}
	*out = r;
	*nout = k;
	return 0;
}

/* A subquery's matrix as raw series (taking its points). */
static int load_subquery(ev *e, const pq_node *sq, raw_series **out, size_t *nout)
{
	pq_matrix m = { 0 };
	int rc = eval_subquery(e, sq, &m);
	if (rc) {
		mat_free(e, &m);
		return rc;
	}
	raw_series *r = calloc(m.n + 1, sizeof *r);
	if (!r) {
		mat_free(e, &m);
		return ev_fail(e, SDK_EIO, "out of memory");
	}
	for (size_t i = 0; i < m.n; i++) {
		r[i].ls = m.s[i].ls;
		r[i].p = m.s[i].p;
		r[i].n = m.s[i].n;
		*e->samples -= m.s[i].n;
	}
	*out = r;
	*nout = m.n;
	free(m.s);
	return 0;
}

static int eval_subquery(ev *e, const pq_node *n, pq_matrix *out)
{
	int64_t off = n->sq.offset, range = n->sq.range;
	int64_t step = n->sq.step ? n->sq.step : e->o->subquery_step_ms;
	if (step <= 0)
		step = PQ_SUBQUERY_STEP_DEFAULT_MS;
	ev sub = *e;
	sub.step = step;
	sub.end = at_time(e, n->sq.at, n->sq.at_ms, e->end) - off;
	int64_t lo = at_time(e, n->sq.at, n->sq.at_ms, e->start) - off - range;
	/* The first multiple of the step at or after lo (Go's division
	 * truncates toward zero, as C's does). */
	sub.start = step * (lo / step);
	if (sub.start < lo)
		sub.start += step;
	if (sub.start > sub.end)
		return 0;
	int rc = eval(&sub, n->sq.expr, out);
	e->tick = sub.tick;
	if (sub.failed)
		e->failed = true;
	return rc;
}

/* A top-level range selector in an instant query: its raw samples. */
static int eval_msel_instant(ev *e, const pq_node *n, pq_matrix *out)
{
	raw_series *r;
	size_t nr;
	int rc = load_msel(e, n, &r, &nr);
	if (rc)
		return rc;
	const pq_node *vs = n->ms.vs;
	int64_t hi = at_time(e, vs->vs.at, vs->vs.at_ms, e->start) - vs->vs.offset;
	int64_t lo = hi - n->ms.range;
	for (size_t i = 0; i < nr && !rc; i++) {
		if ((rc = mat_add(e, out, r[i].ls)))
			break;
		pq_series *s = &out->s[out->n - 1];
		for (size_t j = 0; j < r[i].n && !rc; j++)
			if (r[i].p[j].t >= lo && r[i].p[j].t <= hi)
				rc = mat_point(e, s, r[i].p[j].t, r[i].p[j].v);
	}
	raw_free(r, nr);
	mat_compact(e, out);
	return rc;
}

/* The labels absent() and absent_over_time() give: the equality
 * matchers' names and values, but __name__, a name matched twice, or
 * matched otherwise. */
static lbl_set *absent_labels(const pq_node *arg)
{
	arg = unparen(arg);
	const pq_node *vs = arg->kind == PQ_VSEL ? arg : arg->kind == PQ_MSEL ? arg->ms.vs : NULL;
	lbl_builder b;
	lbl_b_init(&b, NULL);
	if (vs) {
		const char *seen[LBL_PAIRS_MAX + 1];
		size_t ns = 0;
		for (size_t i = 0; i < vs->vs.nm; i++) {
			const idx_matcher *m = &vs->vs.m[i];
			if (!strcmp(m->name, LBL_METRIC_NAME))
				continue;
			bool had = false;
			for (size_t j = 0; j < ns; j++)
				had |= !strcmp(seen[j], m->name);
			if (m->type == IDX_EQ && !had) {
				lbl_b_set(&b, m->name, m->value);
				if (ns < LBL_PAIRS_MAX)
					seen[ns++] = m->name;
			} else {
				lbl_b_del(&b, m->name);
			}
		}
	}
	return lbl_b_finish(&b);
}

lbl_set *pq_absent_labels(const pq_node *arg) { return absent_labels(arg); }

/* A function with a range argument: per series, per step, the window
 * [ref - range, ref] of its samples (Prometheus's special path). */
static int eval_range_call(ev *e, const pq_node *n, size_t mi, pq_matrix *out)
{
	const pq_node *arg = unparen(n->call.args[mi]);
	enum pq_func_id fid = n->call.f->id;
	int rc = 0;
	pq_matrix others[5] = { 0 };
	size_t nothers = n->call.n;
	for (size_t j = 0; j < nothers && !rc; j++)
		if (j != mi)
			rc = eval(e, n->call.args[j], &others[j]);
	raw_series *r = NULL;
	size_t nr = 0;
	int64_t range, off;
	enum pq_at at;
	int64_t at_ms;
	if (arg->kind == PQ_MSEL) {
		range = arg->ms.range;
		off = arg->ms.vs->vs.offset;
		at = arg->ms.vs->vs.at;
		at_ms = arg->ms.vs->vs.at_ms;
		if (!rc)
			rc = load_msel(e, arg, &r, &nr);
	} else {
		range = arg->sq.range;
		off = arg->sq.offset;
		at = arg->sq.at;
		at_ms = arg->sq.at_ms;
		if (!rc)
			rc = load_subquery(e, arg, &r, &nr);
	}
	size_t steps = ev_steps(e);
	bool *covered = NULL;
	if (!rc && fid == PQF_ABSENT_OVER_TIME && !(covered = calloc(steps, sizeof *covered)))
		rc = ev_fail(e, SDK_EIO, "out of memory");
	for (size_t i = 0; i < nr && !rc; i++) {
		lbl_set *ls = fid == PQF_LAST_OVER_TIME ? lbl_ref(r[i].ls) : drop_name(r[i].ls);
		if (!ls) {
			rc = ev_fail(e, SDK_EIO, "out of memory");
			break;
		}
		rc = mat_add(e, out, ls);
		lbl_unref(ls);
		if (rc)
			break;
		pq_series *s = &out->s[out->n - 1];
		size_t lo = 0, hi = 0; /* window [lo, hi) of r[i].p */
		size_t step = 0;
		for (int64_t ts = e->start; ts <= e->end && !rc; ts += e->step, step++) {
			int64_t wend = at_time(e, at, at_ms, ts) - off, wstart = wend - range;
			while (lo < r[i].n && r[i].p[lo].t < wstart)
				lo++;
			if (hi < lo)
				hi = lo;
			while (hi < r[i].n && r[i].p[hi].t <= wend)
				hi++;
			/* @ fixes the window, which may lie before lo moved on. */
			if (at != PQ_AT_NONE) {
				lo = 0;
				while (lo < r[i].n && r[i].p[lo].t < wstart)
					lo++;
				hi = lo;
				while (hi < r[i].n && r[i].p[hi].t <= wend)
					hi++;
			}
			if (hi <= lo)
				continue;
			double sc[4] = { 0 };
			size_t k = 0;
			for (size_t j = 0; j < nothers && k < 4; j++)
				if (j != mi) {
					const pq_series *os = others[j].n ? &others[j].s[0] : NULL;
					sc[k++] = os && step < os->n ? os->p[step].v : NAN;
				}
			double v;
			if (fid == PQF_ABSENT_OVER_TIME) {
				covered[step] = true;
				continue;
			}
			if (range_func(fid, r[i].p + lo, hi - lo, ts, range, wstart, wend, sc, &v))
				rc = mat_point(e, s, ts, v);
			if (!rc)
				rc = ev_check(e);
		}
	}
	if (!rc && fid == PQF_ABSENT_OVER_TIME) {
		mat_free(e, out);
		lbl_set *ls = absent_labels(arg);
		if (!ls || mat_add(e, out, ls) < 0)
			rc = e->failed ? -1 : ev_fail(e, SDK_EIO, "out of memory");
		lbl_unref(ls);
		size_t step = 0;
		for (int64_t ts = e->start; ts <= e->end && !rc; ts += e->step, step++)
			if (!covered[step])
				rc = mat_point(e, &out->s[0], ts, 1);
	}
	free(covered);
	raw_free(r, nr);
	for (size_t j = 0; j < nothers; j++)
		mat_free(e, &others[j]);
	if (rc)
		return rc;
	mat_compact(e, out);
	if (mat_has_dup_labels(out))
		return ev_fail(e, PQ_EEXEC, "vector cannot contain metrics with the same labelset");
	return 0;
}

static int eval_call(ev *e, const pq_node *n, pq_matrix *out)
{
	/* timestamp() of a selector gives its samples' own times. */
	if (n->call.f->id == PQF_TIMESTAMP && unparen(n->call.args[0])->kind == PQ_VSEL) {
		pq_matrix m = { 0 };
		int rc = eval_vsel(e, unparen(n->call.args[0]), true, &m);
		if (!rc)
			for (size_t i = 0; i < m.n && !rc; i++) {
				lbl_set *ls = drop_name(m.s[i].ls);
				if (!ls)
					rc = ev_fail(e, SDK_EIO, "out of memory");
				else {
					lbl_unref(m.s[i].ls);
					m.s[i].ls = ls;
				}
			}
		if (rc) {
			mat_free(e, &m);
			return rc;
		}
		*out = m;
		if (mat_has_dup_labels(out))
			return ev_fail(e, PQ_EEXEC, "vector cannot contain metrics with the same labelset");
		return 0;
	}
	for (size_t i = 0; i < n->call.n; i++) {
		const pq_node *a = unparen(n->call.args[i]);
		if (a->kind == PQ_MSEL || a->kind == PQ_SUBQUERY)
			return eval_range_call(e, n, i, out);
	}
	pq_matrix args[64] = { 0 };
	int rc = 0;
	for (size_t i = 0; i < n->call.n && i < 64 && !rc; i++)
		if (n->call.args[i]->type != PQ_STRING)
			rc = eval(e, n->call.args[i], &args[i]);
	if (!rc)
		rc = eval_vector_func(e, n, args, out);
	for (size_t i = 0; i < n->call.n && i < 64; i++)
		mat_free(e, &args[i]);
	return rc;
}

static int fill_scalar(ev *e, double v, pq_matrix *out)
{
	lbl_set *ls = lbl_empty();
	if (!ls || mat_add(e, out, ls) < 0) {
		lbl_unref(ls);
		return ev_fail(e, SDK_EIO, "out of memory");
	}
	lbl_unref(ls);
	for (int64_t ts = e->start; ts <= e->end; ts += e->step)
		if (mat_point(e, &out->s[0], ts, v) < 0)
			return -1;
	return 0;
}

static int eval(ev *e, const pq_node *n, pq_matrix *out)
{
	int rc = ev_check(e);
	if (rc)
		return rc;
	switch (n->kind) {
	case PQ_NUMBER:
		return fill_scalar(e, n->num, out);
	case PQ_STRING_LIT:
		return ev_fail(e, PQ_EEXEC, "unexpected string");
	case PQ_PAREN:
		return eval(e, n->paren.expr, out);
	case PQ_VSEL:
		return eval_vsel(e, n, false, out);
	case PQ_MSEL:
		if (e->start != e->end)
			return ev_fail(e, PQ_EEXEC, "cannot do range evaluation of matrix selector");
		return eval_msel_instant(e, n, out);
	case PQ_SUBQUERY:
		return eval_subquery(e, n, out);
	case PQ_CALL:
		return eval_call(e, n, out);
	case PQ_UNARY: {
		if ((rc = eval(e, n->un.expr, out)))
			return rc;
		if (!n->un.neg)
			return 0;
		for (size_t i = 0; i < out->n; i++) {
			for (size_t j = 0; j < out->s[i].n; j++)
				out->s[i].p[j].v = -out->s[i].p[j].v;
			if (n->un.expr->type == PQ_VECTOR) {
				lbl_set *ls = drop_name(out->s[i].ls);
				if (!ls)
					return ev_fail(e, SDK_EIO, "out of memory");
				lbl_unref(out->s[i].ls);
				out->s[i].ls = ls;
			}
		}
		if (mat_has_dup_labels(out))
			return ev_fail(e, PQ_EEXEC, "vector cannot contain metrics with the same labelset");
		return 0;
	}
	case PQ_BINARY: {
		pq_matrix l = { 0 }, r = { 0 };
		rc = eval(e, n->bin.lhs, &l);
		if (!rc)
			rc = eval(e, n->bin.rhs, &r);
		if (!rc)
			rc = eval_binary(e, n, &l, &r, out);
		mat_free(e, &l);
		mat_free(e, &r);
		return rc;
	}
	case PQ_AGG: {
		pq_matrix p = { 0 }, in = { 0 };
		const char *str = NULL;
		if (n->agg.param) {
			const pq_node *pn = unparen(n->agg.param);
			if (pn->kind == PQ_STRING_LIT)
				str = pn->str;
			else
				rc = eval(e, n->agg.param, &p);
		}
		if (!rc)
			rc = eval(e, n->agg.expr, &in);
		if (!rc)
			rc = eval_aggregation(e, n, n->agg.param && !str ? &p : NULL, str, &in, out);
		mat_free(e, &p);
		mat_free(e, &in);
		return rc;
	}
	}
	return ev_fail(e, PQ_EEXEC, "unknown expression");
}

void pq_opts_defaults(pq_opts *o)
{
	if (!o->lookback_ms)
		o->lookback_ms = PQ_LOOKBACK_MS_DEFAULT;
	if (!o->max_samples)
		o->max_samples = PQ_MAX_SAMPLES_DEFAULT;
	if (!o->subquery_step_ms)
		o->subquery_step_ms = PQ_SUBQUERY_STEP_DEFAULT_MS;
}

int pq_eval(const pq_expr *x, const pq_opts *o, pq_result *out, sdk_err *err)
{
	memset(out, 0, sizeof *out);
	const pq_node *root = pq_expr_root(x);
	bool range = o->step > 0;
	if (range && root->type != PQ_SCALAR && root->type != PQ_VECTOR)
		return sdk_fail(err, PQ_EBADTYPE,
				"invalid expression type \"%s\" for range query, must be Scalar or instant Vector",
				root->type == PQ_MATRIX ? "range vector" : "string");
	out->t = o->start;
	if (root->type == PQ_STRING) {
		const pq_node *s = unparen(root);
		out->type = PQ_STRING;
		out->str = strdup(s->str);
		return out->str ? 0 : sdk_fail(err, SDK_EIO, "out of memory");
	}
	size_t samples = 0;
	ev e = { .o = o, .start = o->start, .end = range ? o->end : o->start,
		 .step = range ? o->step : 1, .samples = &samples, .err = err };
	pq_matrix m = { 0 };
	int rc = eval(&e, root, &m);
	if (rc) {
		mat_free(NULL, &m);
		if (!e.failed)
			sdk_fail(err, rc, "evaluation failed");
		return rc < 0 ? rc : PQ_EEXEC;
	}
	if (range) {
		out->type = PQ_MATRIX;
		mat_compact(NULL, &m);
		mat_sort(&m);
	} else if (root->type == PQ_VECTOR) {
		out->type = PQ_VECTOR;
		mat_compact(NULL, &m);
		for (size_t i = 0; i < m.n; i++)
			m.s[i].p[0].t = o->start;
	} else if (root->type == PQ_SCALAR) {
		out->type = PQ_SCALAR;
	} else {
		out->type = PQ_MATRIX;
		mat_sort(&m);
	}
	out->m = m;
	return 0;
}

void pq_result_free(pq_result *r)
{
	mat_free(NULL, &r->m);
	free(r->str);
	r->str = NULL;
}

size_t pq_format_value(double v, char *buf, size_t len)
{
	if (isnan(v))
		return (size_t)snprintf(buf, len, "NaN");
	if (isinf(v))
		return (size_t)snprintf(buf, len, v > 0 ? "+Inf" : "-Inf");
	if (v == 0)
		return (size_t)snprintf(buf, len, signbit(v) ? "-0" : "0");
	if (fabs(v) < 9007199254740992.0 && v == (double)(int64_t)v)
		return (size_t)snprintf(buf, len, "%lld", (long long)v);
	/* The shortest of 15, 16, 17 significant digits that reads back. */
	char tmp[40];
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(tmp, sizeof tmp, "%.*e", prec - 1, v);
		if (strtod(tmp, NULL) == v || prec == 17)
			break;
	}
	/* tmp is [-]d.ddde[+-]xx: digits and exponent, written out plainly. */
	const char *p = tmp;
	bool neg = *p == '-';
	if (neg)
		p++;
	char digits[24];
	size_t nd = 0;
	for (; *p && *p != 'e'; p++)
		if (*p != '.')
			digits[nd++] = *p;
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	int exp = atoi(p + 1);
	char out[400];
	size_t o = 0;
	if (neg)
		out[o++] = '-';
	if (exp < 0) {
		out[o++] = '0';
		out[o++] = '.';
		for (int i = -1; i > exp; i--)
			out[o++] = '0';
		for (size_t i = 0; i < nd; i++)
			out[o++] = digits[i];
	} else {
		for (int i = 0; i <= exp || (size_t)i < nd; i++) {
			if (i == exp + 1)
				out[o++] = '.';
			out[o++] = (size_t)i < nd ? digits[i] : '0';
		}
	}
	out[o] = '\0';
	return (size_t)snprintf(buf, len, "%s", out);
}
