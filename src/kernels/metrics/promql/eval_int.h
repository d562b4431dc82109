/* Shared by the evaluator's files: eval.c (the tree walk, selectors,
 * subqueries, range functions), binop.c, agg.c and funcs.c. */
#ifndef GRACE_METRICS_PROMQL_EVAL_INT_H
#define GRACE_METRICS_PROMQL_EVAL_INT_H

#include "kernels/layer.h"

#include "kernels/metrics/promql/eval.h"

#include <stdbool.h>

typedef struct ev {
	const pq_opts *o;
	int64_t start, end, step; /* this (sub)evaluation's steps; step >= 1 */
	size_t *samples;          /* points held by every live matrix */
	sdk_err *err;
	unsigned tick;
	bool failed;
} ev;

/* A sample of a vector at one step: labels borrowed from the input. */
typedef struct smp {
	lbl_set *ls;
	double v;
	int64_t t;
	uint32_t idx; /* the series' index in its input matrix */
} smp;

typedef struct vec {
	smp *s;
	size_t n, cap;
} vec;

int ev_fail(ev *e, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A deadline check every so often; -1 (err set) when past it. */
int ev_check(ev *e);
size_t ev_steps(const ev *e);

int vec_push(ev *e, vec *v, lbl_set *ls, double val, int64_t t, uint32_t idx);
void vec_free(vec *v);

/* Matrices. A series' labels are a reference the matrix holds. */
int mat_add(ev *e, pq_matrix *m, lbl_set *ls);
int mat_point(ev *e, pq_series *s, int64_t t, double v);
void mat_free(ev *e, pq_matrix *m);
int mat_sort(pq_matrix *m);
bool mat_has_dup_labels(const pq_matrix *m);

/* Output matrices by label set (a hash table of series indexes). */
typedef struct outmap {
	size_t *slot; /* series index + 1; 0 empty */
	size_t n_slot;
	pq_matrix *m;
} outmap;

int outmap_init(outmap *om, pq_matrix *m, size_t hint);
void outmap_free(outmap *om);
/* The series for ls in om->m, added (taking a new reference) when new;
 * NULL when out of memory. */
pq_series *outmap_get(ev *e, outmap *om, lbl_set *ls);

/* One step of an operation over vectors: `in` holds each input's samples
 * at `ts`; the function appends its result to `out`, owning references to
 * the label sets it puts there (vec_push_owned). */
typedef int (*step_fn)(ev *e, void *ctx, int64_t ts, vec *in, vec *out);
/* Prometheus's rangeEval: steps every input matrix together, calls fn at
 * each step, and gathers its results into `out` (in order of first
 * appearance; one step keeps the function's order). Fails on a step
 * whose result repeats a label set. */
int range_eval(ev *e, pq_matrix *in, size_t nin, step_fn fn, void *ctx, pq_matrix *out);

/* The labels without __name__ (a new reference). */
lbl_set *drop_name(lbl_set *ls);

/* Per input series, a cache of derived label sets (computed once). */
typedef struct lcache {
	lbl_set **ls;
	size_t n;
} lcache;
int lcache_init(lcache *c, size_t n);
void lcache_free(lcache *c);

/* The labels absent() and absent_over_time() give for their argument. */
lbl_set *pq_absent_labels(const pq_node *arg);

/* binop.c */
int eval_binary(ev *e, const pq_node *n, pq_matrix *lhs, pq_matrix *rhs, pq_matrix *out);
double pq_scalar_binop(enum pq_op op, double a, double b);
bool pq_is_comparison(enum pq_op op);

/* agg.c */
int eval_aggregation(ev *e, const pq_node *n, pq_matrix *param, const char *str_param,
		     pq_matrix *in, pq_matrix *out);
double pq_quantile(double q, double *vals, size_t n);

/* funcs.c: instant-vector functions (arguments as matrices; strings from
 * the nodes), and the range functions' per-window arithmetic. */
int eval_vector_func(ev *e, const pq_node *call, pq_matrix *args, pq_matrix *out);
/* The value of a range function over one window of points (at least
 * one); false when it yields none. `ts` is the evaluation time, range and
 * offset the selector's. */
bool range_func(enum pq_func_id f, const pq_point *p, size_t n, int64_t ts, int64_t range_ms,
		int64_t window_start, int64_t window_end, const double *scalars, double *out);

#endif
