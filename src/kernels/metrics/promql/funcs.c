/* PromQL's functions (Prometheus 2.42's promql/functions.go): those over
 * instant vectors and scalars, stepped by range_eval, and the arithmetic
 * of those over range vectors, one window at a time. */
#include "kernels/metrics/promql/eval_int.h"

#include "kernels/metrics/expo.h"
#include "kernels/metrics/rx.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- Kahan sums, as Prometheus keeps them */

static void kahan_inc(double inc, double *sum, double *c)
{
	double t = *sum + inc;
	if (fabs(*sum) >= fabs(inc))
		*c += (*sum - t) + inc;
	else
		*c += (inc - t) + *sum;
	*sum = t;
}

static void linear_regression(const pq_point *p, size_t n, int64_t intercept_t, double *slope,
			      double *intercept)
{
	double sx = 0, cx = 0, sy = 0, cy = 0, sxy = 0, cxy = 0, sx2 = 0, cx2 = 0;
	double init = p[0].v;
	bool const_y = true;
	for (size_t i = 0; i < n; i++) {
		if (const_y && i > 0 && p[i].v != init)
			const_y = false;
		double x = (double)(p[i].t - intercept_t) / 1e3;
		kahan_inc(x, &sx, &cx);
		kahan_inc(p[i].v, &sy, &cy);
		kahan_inc(x * p[i].v, &sxy, &cxy);
		kahan_inc(x * x, &sx2, &cx2);
	}
	if (const_y) {
		if (isinf(init)) {
			*slope = *intercept = NAN;
			return;
		}
		*slope = 0;
		*intercept = init;
		return;
	}
	sx += cx, sy += cy, sxy += cxy, sx2 += cx2;
	double dn = (double)n;
	double cov = sxy - sx * sy / dn;
	double var = sx2 - sx * sx / dn;
	*slope = cov / var;
	*intercept = sy / dn - *slope * sx / dn;
}

static double extrapolated_rate(const pq_point *p, size_t n, int64_t wstart, int64_t wend,
				int64_t range_ms, bool counter, bool is_rate, bool *ok)
{
	*ok = n >= 2;
	if (!*ok)
		return 0;
	double result = p[n - 1].v - p[0].v;
	if (counter) {
		double prev = p[0].v;
		for (size_t i = 1; i < n; i++) {
			if (p[i].v < prev)
				result += prev;
			prev = p[i].v;
		}
	}
	double to_start = (double)(p[0].t - wstart) / 1000;
	double to_end = (double)(wend - p[n - 1].t) / 1000;
	double sampled = (double)(p[n - 1].t - p[0].t) / 1000;
	double avg = sampled / (double)(n - 1);
	if (counter && result > 0 && p[0].v >= 0) {
		double to_zero = sampled * (p[0].v / result);
		if (to_zero < to_start)
			to_start = to_zero;
	}
	double threshold = avg * 1.1;
	double interval = sampled;
	interval += to_start < threshold ? to_start : avg / 2;
	interval += to_end < threshold ? to_end : avg / 2;
	double factor = interval / sampled;
	if (is_rate)
		factor /= (double)range_ms / 1000;
	return result * factor;
}

static double instant_value(const pq_point *p, size_t n, bool is_rate, bool *ok)
{
	*ok = false;
	if (n < 2)
		return 0;
	const pq_point *last = &p[n - 1], *prev = &p[n - 2];
	double v = is_rate && last->v < prev->v ? last->v : last->v - prev->v;
	int64_t dt = last->t - prev->t;
	if (dt == 0)
		return 0;
	if (is_rate)
		v /= (double)dt / 1000;
	*ok = true;
	return v;
}

bool range_func(enum pq_func_id f, const pq_point *p, size_t n, int64_t ts, int64_t range_ms,
		int64_t wstart, int64_t wend, const double *sc, double *out)
{
	bool ok = true;
	switch (f) {
	case PQF_RATE: *out = extrapolated_rate(p, n, wstart, wend, range_ms, true, true, &ok); return ok;
	case PQF_INCREASE: *out = extrapolated_rate(p, n, wstart, wend, range_ms, true, false, &ok); return ok;
	case PQF_DELTA: *out = extrapolated_rate(p, n, wstart, wend, range_ms, false, false, &ok); return ok;
	case PQF_IRATE: *out = instant_value(p, n, true, &ok); return ok;
	case PQF_IDELTA: *out = instant_value(p, n, false, &ok); return ok;
	case PQF_RESETS: {
		double r = 0;
		for (size_t i = 1; i < n; i++)
			r += p[i].v < p[i - 1].v;
		*out = r;
		return true;
	}
	case PQF_CHANGES: {
		double c = 0;
		for (size_t i = 1; i < n; i++)
			c += p[i].v != p[i - 1].v && !(isnan(p[i].v) && isnan(p[i - 1].v));
		*out = c;
		return true;
	}
	case PQF_DERIV: {
		if (n < 2)
			return false;
		double slope, icpt;
		linear_regression(p, n, p[0].t, &slope, &icpt);
		*out = slope;
		return true;
	}
	case PQF_PREDICT_LINEAR: {
		if (n < 2)
			return false;
		double slope, icpt;
		linear_regression(p, n, ts, &slope, &icpt);
		*out = slope * sc[0] + icpt;
		return true;
	}
	case PQF_HOLT_WINTERS: {
		double sf = sc[0], tf = sc[1];
		if (n < 2)
			return false;
		double s0 = 0, s1 = p[0].v, b = p[1].v - p[0].v;
		for (size_t i = 1; i < n; i++) {
			double x = sf * p[i].v;
			/* calcTrendValue(i-1, ...) */
			if (i - 1 != 0)
				b = tf * (s1 - s0) + (1 - tf) * b;
			double y = (1 - sf) * (s1 + b);
			s0 = s1;
			s1 = x + y;
		}
		*out = s1;
		return true;
	}
	case PQF_AVG_OVER_TIME: {
		double mean = 0, c = 0, count = 0;
		for (size_t i = 0; i < n; i++) {
			count++;
			double v = p[i].v;
			if (isinf(mean)) {
				if (isinf(v) && (mean > 0) == (v > 0))
					continue;
				if (!isinf(v) && !isnan(v))
					continue;
			}
			kahan_inc(v / count - mean / count, &mean, &c);
		}
		*out = isinf(mean) ? mean : mean + c;
		return true;
	}
	case PQF_COUNT_OVER_TIME: *out = (double)n; return true;
	case PQF_LAST_OVER_TIME: *out = p[n - 1].v; return true;
	case PQF_PRESENT_OVER_TIME: *out = 1; return true;
	case PQF_MAX_OVER_TIME: {
		double m = p[0].v;
		for (size_t i = 0; i < n; i++)
			if (p[i].v > m || isnan(m))
				m = p[i].v;
		*out = m;
		return true;
	}
	case PQF_MIN_OVER_TIME: {
		double m = p[0].v;
		for (size_t i = 0; i < n; i++)
			if (p[i].v < m || isnan(m))
				m = p[i].v;
		*out = m;
		return true;
	}
	case PQF_SUM_OVER_TIME: {
		double s = 0, c = 0;
		for (size_t i = 0; i < n; i++)
			kahan_inc(p[i].v, &s, &c);
		*out = isinf(s) ? s : s + c;
		return true;
	}
	case PQF_QUANTILE_OVER_TIME: {
		double *v = malloc(n * sizeof *v);
		if (!v)
			return false;
		for (size_t i = 0; i < n; i++)
			v[i] = p[i].v;
		*out = pq_quantile(sc[0], v, n);
		free(v);
		return true;
	}
	case PQF_STDDEV_OVER_TIME:
	case PQF_STDVAR_OVER_TIME: {
		double count = 0, mean = 0, cm = 0, aux = 0, ca = 0;
		for (size_t i = 0; i < n; i++) {
			count++;
			double delta = p[i].v - (mean + cm);
			kahan_inc(delta / count, &mean, &cm);
			kahan_inc(delta * (p[i].v - (mean + cm)), &aux, &ca);
		}
		double var = (aux + ca) / count;
		*out = f == PQF_STDDEV_OVER_TIME ? sqrt(var) : var;
		return true;
	}
	default:
		return false;
	}
}

/* ---- instant-vector functions */

struct fn_ctx {
	const pq_node *call;
	enum pq_func_id id;
	lcache out;     /* per series of the vector argument: result labels */
	rx *re;         /* label_replace */
	const char *s[64]; /* the string arguments, by position */
	size_t nstr;
	lbl_set *absent;
	/* histogram_quantile: per series, its group (labels without le) and
	 * output labels, and its le. */
	lcache hgroup;
	double *le;
	bool *le_ok;
};

/* Go's math.Max and math.Min: NaN wins, +0 beats -0 (C's fmax/fmin
 * ignore a NaN). */
static double go_max(double a, double b)
{
	if (isnan(a) || isnan(b))
		return NAN;
	if (a == 0 && b == 0)
		return signbit(a) ? b : a;
	return a > b ? a : b;
}

static double go_min(double a, double b)
{
	if (isnan(a) || isnan(b))
		return NAN;
	if (a == 0 && b == 0)
		return signbit(a) ? a : b;
	return a < b ? a : b;
}

static double date_part(enum pq_func_id f, double secs)
{
	time_t t = (time_t)(int64_t)secs;
	struct tm tm;
	gmtime_r(&t, &tm);
	switch (f) {
	case PQF_DAY_OF_MONTH: return tm.tm_mday;
	case PQF_DAY_OF_WEEK: return tm.tm_wday;
	case PQF_DAY_OF_YEAR: return tm.tm_yday + 1;
	case PQF_HOUR: return tm.tm_hour;
	case PQF_MINUTE: return tm.tm_min;
	case PQF_MONTH: return tm.tm_mon + 1;
	case PQF_YEAR: return tm.tm_year + 1900;
	case PQF_DAYS_IN_MONTH: {
		static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
		int y = tm.tm_year + 1900;
		bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
		return tm.tm_mon == 1 && leap ? 29 : days[tm.tm_mon];
	}
	default: return NAN;
	}
}

static double simple(enum pq_func_id f, double v, bool *ok)
{
	*ok = true;
	switch (f) {
	case PQF_ABS: return fabs(v);
	case PQF_CEIL: return ceil(v);
	case PQF_FLOOR: return floor(v);
	case PQF_EXP: return exp(v);
	case PQF_SQRT: return sqrt(v);
	case PQF_LN: return log(v);
	case PQF_LOG2: return log2(v);
	case PQF_LOG10: return log10(v);
	case PQF_SIN: return sin(v);
	case PQF_COS: return cos(v);
	case PQF_TAN: return tan(v);
	case PQF_ASIN: return asin(v);
	case PQF_ACOS: return acos(v);
	case PQF_ATAN: return atan(v);
	case PQF_SINH: return sinh(v);
	case PQF_COSH: return cosh(v);
	case PQF_TANH: return tanh(v);
	case PQF_ASINH: return asinh(v);
	case PQF_ACOSH: return acosh(v);
	case PQF_ATANH: return atanh(v);
	case PQF_DEG: return v * 180 / M_PI;
	case PQF_RAD: return v * M_PI / 180;
	case PQF_SGN: return v < 0 ? -1 : v > 0 ? 1 : v;
	default: *ok = false; return v;
	}
}

static lbl_set *dropped(ev *e, struct fn_ctx *c, const smp *s)
{
	lbl_set **slot = &c->out.ls[s->idx];
	if (!*slot && !(*slot = drop_name(s->ls)))
		ev_fail(e, SDK_EIO, "out of memory");
	return *slot;
}

static lbl_set *replaced(ev *e, struct fn_ctx *c, const smp *s)
{
	lbl_set **slot = &c->out.ls[s->idx];
	if (*slot)
		return *slot;
	const char *dst = c->s[1], *repl = c->s[2], *src = c->s[3];
	const char *sv = lbl_get(s->ls, src);
	char res[LBL_VALUE_MAX];
	if (!rx_expand(c->re, sv ? sv : "", repl, res, sizeof res)) {
		*slot = lbl_ref(s->ls);
		return *slot;
	}
	lbl_builder b;
	lbl_b_init(&b, s->ls);
	lbl_b_set(&b, dst, res);
	if (!(*slot = lbl_b_finish(&b)))
		ev_fail(e, SDK_EIO, "out of memory");
	return *slot;
}

static lbl_set *joined(ev *e, struct fn_ctx *c, const smp *s)
{
	lbl_set **slot = &c->out.ls[s->idx];
	if (*slot)
		return *slot;
	const char *dst = c->s[1], *sep = c->s[2];
	char val[LBL_VALUE_MAX];
	size_t o = 0;
	for (size_t i = 3; i < c->nstr; i++) {
		const char *v = lbl_get(s->ls, c->s[i]);
		int w = snprintf(val + o, sizeof val - o, "%s%s", i > 3 ? sep : "", v ? v : "");
		if (w > 0)
			o += (size_t)w < sizeof val - o ? (size_t)w : sizeof val - o - 1;
	}
	lbl_builder b;
	lbl_b_init(&b, s->ls);
	lbl_b_set(&b, dst, val);
	if (!(*slot = lbl_b_finish(&b)))
		ev_fail(e, SDK_EIO, "out of memory");
	return *slot;
}

struct bucket {
	double upper, count;
};

static int bucket_cmp(const void *a, const void *b)
{
	double x = ((const struct bucket *)a)->upper, y = ((const struct bucket *)b)->upper;
	return (x > y) - (x < y);
}

static double bucket_quantile(double q, struct bucket *b, size_t n)
{
	if (isnan(q))
		return NAN;
	if (q < 0)
		return -INFINITY;
	if (q > 1)
		return INFINITY;
	/* Go's sort.Sort is not stable; equal bounds are coalesced anyway. */
	qsort(b, n, sizeof *b, bucket_cmp);
	if (!isinf(b[n - 1].upper) || b[n - 1].upper < 0)
		return NAN;
	size_t k = 0;
	for (size_t i = 1; i < n; i++) {
		if (b[i].upper == b[k].upper)
			b[k].count += b[i].count;
		else
			b[++k] = b[i];
	}
	n = k + 1;
	double max = b[0].count;
	for (size_t i = 1; i < n; i++) {
		if (b[i].count > max)
			max = b[i].count;
		else if (b[i].count < max)
			b[i].count = max;
	}
	if (n < 2)
		return NAN;
	double obs = b[n - 1].count;
	if (obs == 0)
		return NAN;
	double rank = q * obs;
	size_t i = 0;
	while (i < n - 1 && !(b[i].count >= rank))
		i++;
	if (i == n - 1)
		return b[n - 2].upper;
	if (i == 0 && b[0].upper <= 0)
		return b[0].upper;
	double start = 0, end = b[i].upper, count = b[i].count;
	if (i > 0) {
		start = b[i - 1].upper;
		count -= b[i - 1].count;
		rank -= b[i - 1].count;
	}
	return start + (end - start) * (rank / count);
}

static int histogram_quantile(ev *e, struct fn_ctx *c, int64_t ts, double q, vec *v, vec *out)
{
	/* Group the buckets by their labels but le (with __name__). */
	size_t ng = 0;
	struct hg {
		lbl_set *key;
		size_t first; /* a sample of the group, for its labels */
		struct bucket *b;
		size_t nb, cap;
	} *g = calloc(v->n + 1, sizeof *g);
	if (!g)
		return ev_fail(e, SDK_EIO, "out of memory");
	int rc = 0;
	for (size_t i = 0; i < v->n && !rc; i++) {
		smp *s = &v->s[i];
		if (!c->le_ok[s->idx])
			continue;
		lbl_set **slot = &c->hgroup.ls[s->idx];
		if (!*slot) {
			lbl_builder b;
			lbl_b_init(&b, s->ls);
			lbl_b_del(&b, "le");
			if (!(*slot = lbl_b_finish(&b))) {
				rc = ev_fail(e, SDK_EIO, "out of memory");
				break;
			}
		}
		size_t k;
		for (k = 0; k < ng; k++)
			if (lbl_eq(g[k].key, *slot))
				break;
		if (k == ng) {
			g[ng].key = *slot;
			g[ng].first = i;
			ng++;
		}
		if (g[k].nb == g[k].cap) {
			size_t cap = g[k].cap ? g[k].cap * 2 : 16;
			struct bucket *nb = realloc(g[k].b, cap * sizeof *nb);
			if (!nb) {
				rc = ev_fail(e, SDK_EIO, "out of memory");
				break;
			}
			g[k].b = nb;
			g[k].cap = cap;
		}
		g[k].b[g[k].nb++] = (struct bucket){ c->le[s->idx], s->v };
	}
	for (size_t k = 0; k < ng && !rc; k++) {
		lbl_set *ls = drop_name(g[k].key);
		if (!ls)
			rc = ev_fail(e, SDK_EIO, "out of memory");
		else
			rc = vec_push(e, out, ls, bucket_quantile(q, g[k].b, g[k].nb), ts, 0);
	}
	for (size_t k = 0; k < ng; k++)
		free(g[k].b);
	free(g);
	return rc;
}

/* Go's sort order for sort() and sort_desc(), stable. */
static bool sort_before(const smp *a, const smp *b, bool desc)
{
	/* sort():      reverse of (NaN first, then descending)  -> ascending, NaN last
	 * sort_desc(): reverse of (NaN first, then ascending)   -> descending, NaN last */
	if (isnan(a->v))
		return false;
	if (isnan(b->v))
		return true;
	return desc ? a->v > b->v : a->v < b->v;
}

static int step_fn_vec(ev *e, void *arg, int64_t ts, vec *in, vec *out)
{
	struct fn_ctx *c = arg;
	enum pq_func_id f = c->id;
	double tsec = (double)ts / 1000;
	switch (f) {
	case PQF_TIME: return vec_push(e, out, lbl_empty(), tsec, ts, 0);
	case PQF_PI: return vec_push(e, out, lbl_empty(), M_PI, ts, 0);
	case PQF_VECTOR:
		if (!in[0].n)
			return 0;
		return vec_push(e, out, lbl_empty(), in[0].s[0].v, ts, 0);
	case PQF_SCALAR:
		return vec_push(e, out, lbl_empty(), in[0].n == 1 ? in[0].s[0].v : NAN, ts, 0);
	case PQF_ABSENT:
		if (in[0].n)
			return 0;
		return vec_push(e, out, lbl_ref(c->absent), 1, ts, 0);
	case PQF_SORT:
	case PQF_SORT_DESC: {
		vec *v = &in[0];
		for (size_t i = 1; i < v->n; i++) {
			smp x = v->s[i];
			size_t j = i;
			while (j > 0 && sort_before(&x, &v->s[j - 1], f == PQF_SORT_DESC)) {
				v->s[j] = v->s[j - 1];
				j--;
			}
			v->s[j] = x;
		}
		for (size_t i = 0; i < v->n; i++)
			if (vec_push(e, out, lbl_ref(v->s[i].ls), v->s[i].v, ts, v->s[i].idx) < 0)
				return -1;
		return 0;
	}
	case PQF_HISTOGRAM_QUANTILE:
		if (!in[0].n)
			return 0;
		return histogram_quantile(e, c, ts, in[0].s[0].v, &in[1], out);
	case PQF_DAYS_IN_MONTH:
	case PQF_DAY_OF_MONTH:
	case PQF_DAY_OF_WEEK:
	case PQF_DAY_OF_YEAR:
	case PQF_HOUR:
	case PQF_MINUTE:
	case PQF_MONTH:
	case PQF_YEAR:
		if (c->call->call.n == 0)
			return vec_push(e, out, lbl_empty(), date_part(f, floor(tsec)), ts, 0);
		break;
	default:
		break;
	}
	vec *v = &in[0];
	double a1 = 0, a2 = 0;
	if (f == PQF_CLAMP || f == PQF_CLAMP_MAX || f == PQF_CLAMP_MIN ||
	    (f == PQF_ROUND && c->call->call.n == 2)) {
		if (!in[1].n)
			return 0;
		a1 = in[1].s[0].v;
		if (f == PQF_CLAMP) {
			if (!in[2].n)
				return 0;
			a2 = in[2].s[0].v;
			if (a2 < a1)
				return 0;
		}
	}
	for (size_t i = 0; i < v->n; i++) {
		const smp *s = &v->s[i];
		double val = s->v;
		lbl_set *ls;
		bool ok;
		switch (f) {
		case PQF_LABEL_REPLACE: ls = replaced(e, c, s); break;
		case PQF_LABEL_JOIN: ls = joined(e, c, s); break;
		default: ls = dropped(e, c, s); break;
		}
		if (!ls)
			return -1;
		switch (f) {
		case PQF_LABEL_REPLACE:
		case PQF_LABEL_JOIN: break;
		case PQF_CLAMP: val = go_max(a1, go_min(a2, val)); break;
		case PQF_CLAMP_MAX: val = go_min(a1, val); break;
		case PQF_CLAMP_MIN: val = go_max(a1, val); break;
		case PQF_ROUND: {
			double inv = 1.0 / (c->call->call.n == 2 ? a1 : 1.0);
			val = floor(val * inv + 0.5) / inv;
			break;
		}
		case PQF_TIMESTAMP: val = (double)s->t / 1000; break;
		case PQF_DAYS_IN_MONTH:
		case PQF_DAY_OF_MONTH:
		case PQF_DAY_OF_WEEK:
		case PQF_DAY_OF_YEAR:
		case PQF_HOUR:
		case PQF_MINUTE:
		case PQF_MONTH:
		case PQF_YEAR: val = date_part(f, val); break;
		default:
			val = simple(f, val, &ok);
			break;
		}
		if (vec_push(e, out, lbl_ref(ls), val, ts, s->idx) < 0)
			return -1;
	}
	return 0;
}

int eval_vector_func(ev *e, const pq_node *call, pq_matrix *args, pq_matrix *out)
{
	struct fn_ctx c = { .call = call, .id = call->call.f->id };
	pq_matrix ins[8] = { { 0 } };
	size_t nin = 0;
	int rc = 0;
	for (size_t i = 0; i < call->call.n && i < 64; i++) {
		const pq_node *a = call->call.args[i];
		while (a->kind == PQ_PAREN)
			a = a->paren.expr;
		if (call->call.args[i]->type == PQ_STRING) {
			c.s[i] = a->str;
			c.nstr = i + 1;
		} else if (nin < 8) {
			ins[nin++] = args[i];
		}
	}
	size_t n0 = nin ? ins[0].n : 0;
	if (lcache_init(&c.out, n0) < 0)
		return ev_fail(e, SDK_EIO, "out of memory");
	switch (c.id) {
	case PQF_LABEL_REPLACE: {
		if (!(c.re = rx_compile(c.s[4], NULL))) {
			rc = ev_fail(e, PQ_EEXEC, "invalid regular expression in label_replace(): %s", c.s[4]);
			goto out;
		}
		if (!lbl_valid_name(c.s[1], strlen(c.s[1]))) {
			rc = ev_fail(e, PQ_EEXEC, "invalid destination label name in label_replace(): %s",
				     c.s[1]);
			goto out;
		}
		break;
	}
	case PQF_LABEL_JOIN:
		for (size_t i = 3; i < c.nstr; i++)
			if (!lbl_valid_name(c.s[i], strlen(c.s[i]))) {
				rc = ev_fail(e, PQ_EEXEC, "invalid source label name in label_join(): %s", c.s[i]);
				goto out;
			}
		if (!lbl_valid_name(c.s[1], strlen(c.s[1]))) {
			rc = ev_fail(e, PQ_EEXEC, "invalid destination label name in label_join(): %s", c.s[1]);
			goto out;
		}
		break;
	case PQF_ABSENT:
		if (!(c.absent = pq_absent_labels(call->call.args[0]))) {
			rc = ev_fail(e, SDK_EIO, "out of memory");
			goto out;
		}
		break;
	case PQF_HISTOGRAM_QUANTILE: {
		size_t nb = ins[1].n;
		c.le = calloc(nb + 1, sizeof *c.le);
		c.le_ok = calloc(nb + 1, sizeof *c.le_ok);
		if (!c.le || !c.le_ok || lcache_init(&c.hgroup, nb) < 0) {
			rc = ev_fail(e, SDK_EIO, "out of memory");
			goto out;
		}
		for (size_t i = 0; i < nb; i++) {
			const char *le = lbl_get(ins[1].s[i].ls, "le");
			c.le_ok[i] = le && expo_parse_float(le, strlen(le), &c.le[i]);
		}
		break;
	}
	default:
		break;
	}
	if (nin == 0) {
		/* time(), pi(), the date functions without an argument. */
		pq_matrix none = { 0 };
		rc = range_eval(e, &none, 0, step_fn_vec, &c, out);
	} else {
		rc = range_eval(e, ins, nin, step_fn_vec, &c, out);
	}
out:
	lcache_free(&c.out);
	lcache_free(&c.hgroup);
	free(c.le);
	free(c.le_ok);
	rx_free(c.re);
	lbl_unref(c.absent);
	return rc;
}
