/* PromQL evaluation, with Prometheus 2.42's semantics (promql/engine.go,
 * functions.go): every expression evaluates to a matrix over the query's
 * steps (an instant query is a range query of one step), selectors look
 * back 5 minutes and honour staleness markers, range vectors are closed
 * intervals [t - range, t], subqueries align their steps to multiples of
 * their step, @ and offset move a selector's reference time. Runs on a
 * worker thread; reads the store through tsdb_select. */
#ifndef GRACE_METRICS_PROMQL_EVAL_H
#define GRACE_METRICS_PROMQL_EVAL_H

#include "kernels/layer.h"

#include "kernels/metrics/labels.h"
#include "kernels/metrics/promql/ast.h"
#include "kernels/metrics/tsdb.h"
#include "sdk/err.h"

#include <stddef.h>
#include <stdint.h>

/* Evaluation failed (Prometheus's errorType "execution", HTTP 422). */
#define PQ_EEXEC (SDK_E_MODULE)
/* A range query of a range vector or a string (errorType "bad_data"). */
#define PQ_EBADTYPE (SDK_E_MODULE - 1)

#define PQ_LOOKBACK_MS_DEFAULT (5 * 60 * 1000)
#define PQ_MAX_SAMPLES_DEFAULT 50000000
#define PQ_SUBQUERY_STEP_DEFAULT_MS 60000

typedef struct pq_point {
	int64_t t;
	double v;
} pq_point;

typedef struct pq_series {
	lbl_set *ls; /* a reference */
	pq_point *p;
	size_t n, cap;
} pq_series;

typedef struct pq_matrix {
	pq_series *s;
	size_t n, cap;
} pq_matrix;

typedef struct pq_result {
	enum pq_type type; /* PQ_SCALAR, PQ_VECTOR, PQ_MATRIX or PQ_STRING */
	/* VECTOR: one point per series, in evaluation order (sort() and
	 * topk() order it); SCALAR: one series without labels, one point;
	 * MATRIX: a range query's result, or an instant query of a range
	 * vector, sorted by labels. */
	pq_matrix m;
	char *str;
	int64_t t; /* SCALAR, STRING: the evaluation time */
} pq_result;

typedef struct pq_opts {
	tsdb *db;
	int64_t start, end; /* ms; equal for an instant query */
	int64_t step;       /* ms; 0 for an instant query */
	int64_t lookback_ms;
	size_t max_samples;
	int64_t deadline_ms; /* on sdk_mono_ms's clock; 0: none */
	int64_t subquery_step_ms; /* for subqueries that give none */
} pq_opts;

/* Fills in the defaults of a zeroed pq_opts (lookback, limits). */
void pq_opts_defaults(pq_opts *o);
/* 0, or PQ_EEXEC / PQ_EBADTYPE / SDK_ETIMEOUT / a store's status, with
 * Prometheus's message in err. */
int pq_eval(const pq_expr *e, const pq_opts *o, pq_result *out, sdk_err *err);
void pq_result_free(pq_result *r);

/* Go's strconv.FormatFloat(v, 'f', -1, 64): the shortest decimal that
 * reads back as v, never in exponent form ("+Inf", "-Inf", "NaN"). Writes
 * at most len bytes; returns the length. */
size_t pq_format_value(double v, char *buf, size_t len);

#endif
