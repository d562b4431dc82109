/* Binary operators: scalar with scalar, vector with scalar, and vector
 * with vector under one-to-one, many-to-one and one-to-many matching, and
 * the set operators (Prometheus 2.42's VectorBinop, VectorAnd/Or/Unless,
 * resultMetric). */
#include "kernels/metrics/promql/eval_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

bool pq_is_comparison(enum pq_op op) { return op >= PQ_OP_EQL && op <= PQ_OP_LTE; }

static bool drops_name(enum pq_op op)
{
	return op == PQ_OP_ADD || op == PQ_OP_SUB || op == PQ_OP_MUL || op == PQ_OP_DIV ||
	       op == PQ_OP_POW || op == PQ_OP_MOD;
}

double pq_scalar_binop(enum pq_op op, double a, double b)
{
	switch (op) {
	case PQ_OP_ADD: return a + b;
	case PQ_OP_SUB: return a - b;
	case PQ_OP_MUL: return a * b;
	case PQ_OP_DIV: return a / b;
	case PQ_OP_POW: return pow(a, b);
	case PQ_OP_MOD: return fmod(a, b);
	case PQ_OP_ATAN2: return atan2(a, b);
	case PQ_OP_EQL: return a == b;
	case PQ_OP_NEQ: return a != b;
	case PQ_OP_GTR: return a > b;
	case PQ_OP_LSS: return a < b;
	case PQ_OP_GTE: return a >= b;
	case PQ_OP_LTE: return a <= b;
	default: return NAN;
	}
}

/* vectorElemBinop: the value and whether a comparison keeps it. */
static double elem_binop(enum pq_op op, double a, double b, bool *keep)
{
	*keep = true;
	if (pq_is_comparison(op)) {
		*keep = pq_scalar_binop(op, a, b) != 0;
		return a;
	}
	return pq_scalar_binop(op, a, b);
}

/* ---- scalar op scalar, vector op scalar */

struct vs_ctx {
	const pq_node *n;
	bool swap;       /* the scalar is on the left */
	bool scalars;    /* both sides scalars */
	lcache out;      /* per vector series: the result's labels */
	pq_matrix *vecm; /* the vector side */
};

static int step_scalar(ev *e, void *arg, int64_t ts, vec *in, vec *out)
{
	(void)ts;
	struct vs_ctx *c = arg;
	const pq_node *n = c->n;
	if (!in[0].n || !in[1].n)
		return 0;
	double v = pq_scalar_binop(n->bin.op, in[0].s[0].v, in[1].s[0].v);
	return vec_push(e, out, lbl_ref(in[0].s[0].ls), v, ts, 0);
}

static int step_vector_scalar(ev *e, void *arg, int64_t ts, vec *in, vec *out)
{
	struct vs_ctx *c = arg;
	const pq_node *n = c->n;
	vec *vv = c->swap ? &in[1] : &in[0], *sv = c->swap ? &in[0] : &in[1];
	if (!sv->n)
		return 0;
	double sc = sv->s[0].v;
	bool ret_bool = n->bin.ret_bool;
	for (size_t i = 0; i < vv->n; i++) {
		double lv = vv->s[i].v, rv = sc;
		if (c->swap) {
			lv = sc;
			rv = vv->s[i].v;
		}
		bool keep;
		double v = elem_binop(n->bin.op, lv, rv, &keep);
		/* A comparison keeps the vector's value, whichever side it is on. */
		if (pq_is_comparison(n->bin.op) && c->swap)
			v = rv;
		if (ret_bool) {
			v = keep ? 1 : 0;
			keep = true;
		}
		if (!keep)
			continue;
		uint32_t idx = vv->s[i].idx;
		lbl_set *ls;
		if (drops_name(n->bin.op) || ret_bool) {
			if (!c->out.ls[idx] && !(c->out.ls[idx] = drop_name(vv->s[i].ls)))
				return ev_fail(e, SDK_EIO, "out of memory");
			ls = c->out.ls[idx];
		} else {
			ls = vv->s[i].ls;
		}
		if (vec_push(e, out, lbl_ref(ls), v, ts, idx) < 0)
			return -1;
	}
	return 0;
}

/* ---- vector op vector */

/* The labels two series are matched on. */
static lbl_set *signature(const lbl_set *ls, const pq_node *n)
{
	lbl_builder b;
	lbl_b_init(&b, ls);
	if (n->bin.on) {
		lbl_b_keep(&b, n->bin.labels.v, n->bin.labels.n);
	} else {
		lbl_b_del_all(&b, n->bin.labels.v, n->bin.labels.n);
		lbl_b_del(&b, LBL_METRIC_NAME);
	}
	return lbl_b_finish(&b);
}

/* A small open-addressing table from a signature to a sample. */
typedef struct sigtab {
	struct sigent {
		const lbl_set *sig;
		size_t k; /* index of the sample + 1 */
		void *extra;
	} *e;
	size_t n;
} sigtab;

static int sigtab_reset(sigtab *t, size_t want)
{
	size_t n = 16;
	while (n < want * 2)
		n *= 2;
	if (n > t->n) {
		free(t->e);
		t->e = calloc(n, sizeof *t->e);
		t->n = t->e ? n : 0;
		return t->e ? 0 : -1;
	}
	memset(t->e, 0, t->n * sizeof *t->e);
	return 0;
}

static struct sigent *sigtab_find(sigtab *t, const lbl_set *sig, bool add)
{
	size_t h = sig->hash & (t->n - 1);
	while (t->e[h].sig) {
		if (lbl_eq(t->e[h].sig, sig))
			return &t->e[h];
		h = (h + 1) & (t->n - 1);
	}
	if (!add)
		return NULL;
	t->e[h].sig = sig;
	return &t->e[h];
}

/* Result labels, cached per (left series, right series). */
typedef struct paircache {
	struct pc {
		uint64_t key; /* (l << 32 | r) + 1 */
		lbl_set *ls;
	} *e;
	size_t n, used;
} paircache;

static lbl_set **paircache_slot(paircache *pc, uint32_t l, uint32_t r)
{
	if (pc->used * 2 >= pc->n) {
		size_t n = pc->n ? pc->n * 2 : 256;
		struct pc *ne = calloc(n, sizeof *ne);
		if (!ne)
			return NULL;
		for (size_t i = 0; i < pc->n; i++)
			if (pc->e[i].key) {
				size_t h = (pc->e[i].key * 0x9e3779b97f4a7c15ULL) >> 20 & (n - 1);
				while (ne[h].key)
					h = (h + 1) & (n - 1);
				ne[h] = pc->e[i];
			}
		free(pc->e);
		pc->e = ne;
		pc->n = n;
	}
	uint64_t key = ((uint64_t)l << 32 | r) + 1;
	size_t h = (key * 0x9e3779b97f4a7c15ULL) >> 20 & (pc->n - 1);
	while (pc->e[h].key && pc->e[h].key != key)
		h = (h + 1) & (pc->n - 1);
	if (!pc->e[h].key) {
		pc->e[h].key = key;
		pc->used++;
	}
	return &pc->e[h].ls;
}

static void paircache_free(paircache *pc)
{
	for (size_t i = 0; i < pc->n; i++)
		lbl_unref(pc->e[i].ls);
	free(pc->e);
}

struct vv_ctx {
	const pq_node *n;
	lcache sig[2]; /* per series of each side */
	sigtab tab;
	sigtab matched;
	paircache pc;
	lcache boolname; /* set operators keep labels; bool drops the name */
};

static lbl_set *result_metric(const pq_node *n, const lbl_set *l, const lbl_set *r)
{
	lbl_builder b;
	lbl_b_init(&b, l);
	if (drops_name(n->bin.op))
		lbl_b_del(&b, LBL_METRIC_NAME);
	if (n->bin.card == PQ_ONE_TO_ONE) {
		if (n->bin.on)
			lbl_b_keep(&b, n->bin.labels.v, n->bin.labels.n);
		else
			lbl_b_del_all(&b, n->bin.labels.v, n->bin.labels.n);
	}
	/* group_x's labels come from the "one" side. */
	for (size_t i = 0; i < n->bin.include.n; i++) {
		const char *v = lbl_get(r, n->bin.include.v[i]);
		lbl_b_set(&b, n->bin.include.v[i], v ? v : "");
	}
	return lbl_b_finish(&b);
}

static int sig_of(ev *e, struct vv_ctx *c, int side, const smp *s, const lbl_set **out)
{
	lbl_set **slot = &c->sig[side].ls[s->idx];
	if (!*slot && !(*slot = signature(s->ls, c->n)))
		return ev_fail(e, SDK_EIO, "out of memory");
	*out = *slot;
	return 0;
}

static int step_set(ev *e, void *arg, int64_t ts, vec *in, vec *out)
{
	struct vv_ctx *c = arg;
	enum pq_op op = c->n->bin.op;
	vec *l = &in[0], *r = &in[1];
	const lbl_set *sig;
	if (op == PQ_OP_AND) {
		if (!l->n || !r->n)
			return 0;
	} else if (op == PQ_OP_OR) {
		if (!l->n || !r->n) {
			vec *only = l->n ? l : r;
			for (size_t i = 0; i < only->n; i++)
				if (vec_push(e, out, lbl_ref(only->s[i].ls), only->s[i].v, ts, only->s[i].idx) < 0)
					return -1;
			return 0;
		}
	} else if (!l->n || !r->n) { /* unless */
		for (size_t i = 0; i < l->n; i++)
			if (vec_push(e, out, lbl_ref(l->s[i].ls), l->s[i].v, ts, l->s[i].idx) < 0)
				return -1;
		return 0;
	}
	vec *index = op == PQ_OP_OR ? l : r;
	int side = op == PQ_OP_OR ? 0 : 1;
	if (sigtab_reset(&c->tab, index->n) < 0)
		return ev_fail(e, SDK_EIO, "out of memory");
	for (size_t i = 0; i < index->n; i++) {
		if (sig_of(e, c, side, &index->s[i], &sig) < 0)
			return -1;
		sigtab_find(&c->tab, sig, true)->k = i + 1;
	}
	if (op == PQ_OP_OR) {
		for (size_t i = 0; i < l->n; i++)
			if (vec_push(e, out, lbl_ref(l->s[i].ls), l->s[i].v, ts, l->s[i].idx) < 0)
				return -1;
		for (size_t i = 0; i < r->n; i++) {
			if (sig_of(e, c, 1, &r->s[i], &sig) < 0)
				return -1;
			if (!sigtab_find(&c->tab, sig, false) &&
			    vec_push(e, out, lbl_ref(r->s[i].ls), r->s[i].v, ts, r->s[i].idx) < 0)
				return -1;
		}
		return 0;
	}
	for (size_t i = 0; i < l->n; i++) {
		if (sig_of(e, c, 0, &l->s[i], &sig) < 0)
			return -1;
		bool found = sigtab_find(&c->tab, sig, false) != NULL;
		if (found == (op == PQ_OP_AND) &&
		    vec_push(e, out, lbl_ref(l->s[i].ls), l->s[i].v, ts, l->s[i].idx) < 0)
			return -1;
	}
	return 0;
}

static void format_labels(const lbl_set *ls, char *buf, size_t len)
{
	lbl_format(ls, buf, len);
}

static int step_vv(ev *e, void *arg, int64_t ts, vec *in, vec *out)
{
	struct vv_ctx *c = arg;
	const pq_node *n = c->n;
	vec *lhs = &in[0], *rhs = &in[1];
	int lside = 0, rside = 1;
	if (!lhs->n || !rhs->n)
		return 0;
	bool swapped = n->bin.card == PQ_ONE_TO_MANY;
	if (swapped) {
		vec *t = lhs;
		lhs = rhs;
		rhs = t;
		lside = 1, rside = 0;
	}
	if (sigtab_reset(&c->tab, rhs->n) < 0 || sigtab_reset(&c->matched, lhs->n) < 0)
		return ev_fail(e, SDK_EIO, "out of memory");
	const lbl_set *sig;
	for (size_t i = 0; i < rhs->n; i++) {
		if (sig_of(e, c, rside, &rhs->s[i], &sig) < 0)
			return -1;
		struct sigent *se = sigtab_find(&c->tab, sig, true);
		if (se->k) {
			char a[256], b[256], m[256];
			format_labels(sig, m, sizeof m);
			format_labels(rhs->s[i].ls, a, sizeof a);
			format_labels(rhs->s[se->k - 1].ls, b, sizeof b);
			return ev_fail(e, PQ_EEXEC,
				       "found duplicate series for the match group %s on the %s hand-side of "
				       "the operation: [%s, %s];many-to-many matching not allowed: matching "
				       "labels must be unique on one side",
				       m, swapped ? "left" : "right", a, b);
		}
		se->k = i + 1;
	}
	for (size_t i = 0; i < lhs->n; i++) {
		if (sig_of(e, c, lside, &lhs->s[i], &sig) < 0)
			return -1;
		struct sigent *se = sigtab_find(&c->tab, sig, false);
		if (!se)
			continue;
		smp *ls = &lhs->s[i], *rs = &rhs->s[se->k - 1];
		double vl = ls->v, vr = rs->v;
		if (swapped) {
			double t = vl;
			vl = vr;
			vr = t;
		}
		bool keep;
		double v = elem_binop(n->bin.op, vl, vr, &keep);
		if (n->bin.ret_bool) {
			v = keep ? 1 : 0;
		} else if (!keep) {
			continue;
		}
		lbl_set **slot = paircache_slot(&c->pc, ls->idx, rs->idx);
		if (!slot)
			return ev_fail(e, SDK_EIO, "out of memory");
		if (!*slot) {
			lbl_set *m = result_metric(n, ls->ls, rs->ls);
			if (m && n->bin.ret_bool) {
				lbl_set *d = drop_name(m);
				lbl_unref(m);
				m = d;
			}
			if (!m)
				return ev_fail(e, SDK_EIO, "out of memory");
			*slot = m;
		}
		lbl_set *metric = *slot;
		struct sigent *me = sigtab_find(&c->matched, sig, true);
		if (n->bin.card == PQ_ONE_TO_ONE) {
			if (me->k)
				return ev_fail(e, PQ_EEXEC, "multiple matches for labels: many-to-one matching "
							    "must be explicit (group_left/group_right)");
			me->k = 1;
		} else {
			/* The results of one match group must differ in their labels:
			 * a chain of metrics kept per signature. */
			lbl_set **seen = me->extra;
			size_t k = me->k;
			for (size_t j = 0; j < k; j++)
				if (lbl_eq(seen[j], metric))
					return ev_fail(e, PQ_EEXEC, "multiple matches for labels: grouping "
								    "labels must ensure unique matches");
			lbl_set **grown = realloc(seen, (k + 1) * sizeof *grown);
			if (!grown)
				return ev_fail(e, SDK_EIO, "out of memory");
			grown[k] = metric;
			me->extra = grown;
			me->k = k + 1;
		}
		if (vec_push(e, out, lbl_ref(metric), v, ts, ls->idx) < 0)
			return -1;
	}
	if (n->bin.card != PQ_ONE_TO_ONE)
		for (size_t i = 0; i < c->matched.n; i++) {
			free(c->matched.e[i].extra);
			c->matched.e[i].extra = NULL;
		}
	return 0;
}

int eval_binary(ev *e, const pq_node *n, pq_matrix *lhs, pq_matrix *rhs, pq_matrix *out)
{
	enum pq_type lt = n->bin.lhs->type, rt = n->bin.rhs->type;
	pq_matrix in[2] = { *lhs, *rhs };
	int rc;
	if (lt == PQ_SCALAR && rt == PQ_SCALAR) {
		struct vs_ctx c = { .n = n, .scalars = true };
		return range_eval(e, in, 2, step_scalar, &c, out);
	}
	if (lt != PQ_VECTOR || rt != PQ_VECTOR) {
		struct vs_ctx c = { .n = n, .swap = lt == PQ_SCALAR };
		c.vecm = c.swap ? rhs : lhs;
		if (lcache_init(&c.out, c.vecm->n) < 0)
			return ev_fail(e, SDK_EIO, "out of memory");
		rc = range_eval(e, in, 2, step_vector_scalar, &c, out);
		lcache_free(&c.out);
		return rc;
	}
	struct vv_ctx c = { .n = n };
	if (lcache_init(&c.sig[0], lhs->n) < 0 || lcache_init(&c.sig[1], rhs->n) < 0) {
		lcache_free(&c.sig[0]);
		return ev_fail(e, SDK_EIO, "out of memory");
	}
	bool set = n->bin.op == PQ_OP_AND || n->bin.op == PQ_OP_OR || n->bin.op == PQ_OP_UNLESS;
	rc = range_eval(e, in, 2, set ? step_set : step_vv, &c, out);
	for (size_t i = 0; i < c.matched.n; i++)
		free(c.matched.e[i].extra);
	free(c.tab.e);
	free(c.matched.e);
	paircache_free(&c.pc);
	lcache_free(&c.sig[0]);
	lcache_free(&c.sig[1]);
	return rc;
}
