/* PromQL's syntax tree, as Prometheus 2.42's parser builds and checks it
 * (promql/parser): a parsed query owns an arena holding every node and
 * string, and the compiled regular expressions of its matchers. */
#ifndef GRACE_METRICS_PROMQL_AST_H
#define GRACE_METRICS_PROMQL_AST_H

#include "kernels/layer.h"

#include "kernels/metrics/index.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PQ_QUERY_MAX 65536   /* bytes of a query */
#define PQ_DEPTH_MAX 200     /* nesting of a query's expressions */

enum pq_type { PQ_NONE, PQ_SCALAR, PQ_VECTOR, PQ_MATRIX, PQ_STRING };

enum pq_kind {
	PQ_NUMBER,
	PQ_STRING_LIT,
	PQ_VSEL,
	PQ_MSEL,
	PQ_SUBQUERY,
	PQ_CALL,
	PQ_AGG,
	PQ_BINARY,
	PQ_UNARY,
	PQ_PAREN,
};

enum pq_op {
	PQ_OP_ADD, PQ_OP_SUB, PQ_OP_MUL, PQ_OP_DIV, PQ_OP_MOD, PQ_OP_POW, PQ_OP_ATAN2,
	PQ_OP_EQL, PQ_OP_NEQ, PQ_OP_GTR, PQ_OP_LSS, PQ_OP_GTE, PQ_OP_LTE,
	PQ_OP_AND, PQ_OP_OR, PQ_OP_UNLESS,
};

enum pq_agg_op {
	PQ_AGG_SUM, PQ_AGG_AVG, PQ_AGG_MIN, PQ_AGG_MAX, PQ_AGG_COUNT, PQ_AGG_GROUP,
	PQ_AGG_STDDEV, PQ_AGG_STDVAR, PQ_AGG_TOPK, PQ_AGG_BOTTOMK, PQ_AGG_QUANTILE,
	PQ_AGG_COUNT_VALUES,
};

enum pq_card { PQ_ONE_TO_ONE, PQ_MANY_TO_ONE, PQ_ONE_TO_MANY, PQ_MANY_TO_MANY };

enum pq_at { PQ_AT_NONE, PQ_AT_TIME, PQ_AT_START, PQ_AT_END };

typedef struct pq_func pq_func;
typedef struct pq_node pq_node;

typedef struct pq_names {
	const char **v;
	size_t n;
} pq_names;

struct pq_node {
	enum pq_kind kind;
	enum pq_type type;
	unsigned pos; /* byte offset of its first character */
	union {
		double num;
		const char *str;
		struct {
			const char *name; /* NULL when only matchers name it */
			idx_matcher *m;
			size_t nm;
			int64_t offset;
			enum pq_at at;
			int64_t at_ms;
		} vs;
		struct {
			pq_node *vs; /* a PQ_VSEL */
			int64_t range;
		} ms;
		struct {
			pq_node *expr;
			int64_t range, step; /* step 0: the default */
			int64_t offset;
			enum pq_at at;
			int64_t at_ms;
		} sq;
		struct {
			const pq_func *f;
			pq_node **args;
			size_t n;
		} call;
		struct {
			enum pq_agg_op op;
			pq_node *expr, *param; /* param may be NULL */
			pq_names grouping;     /* sorted */
			bool without;
		} agg;
		struct {
			enum pq_op op;
			pq_node *lhs, *rhs;
			bool ret_bool;
			bool matching; /* both sides vectors: `card` etc. apply */
			enum pq_card card;
			bool on;
			pq_names labels;  /* on(...) or ignoring(...) */
			pq_names include; /* group_left(...)/group_right(...) */
		} bin;
		struct {
			bool neg;
			pq_node *expr;
		} un;
		struct {
			pq_node *expr;
		} paren;
	};
};

enum pq_func_id {
	PQF_ABS, PQF_ABSENT, PQF_ABSENT_OVER_TIME, PQF_ACOS, PQF_ACOSH, PQF_ASIN, PQF_ASINH,
	PQF_ATAN, PQF_ATANH, PQF_AVG_OVER_TIME, PQF_CEIL, PQF_CHANGES, PQF_CLAMP, PQF_CLAMP_MAX,
	PQF_CLAMP_MIN, PQF_COS, PQF_COSH, PQF_COUNT_OVER_TIME, PQF_DAYS_IN_MONTH, PQF_DAY_OF_MONTH,
	PQF_DAY_OF_WEEK, PQF_DAY_OF_YEAR, PQF_DEG, PQF_DELTA, PQF_DERIV, PQF_EXP, PQF_FLOOR,
	PQF_HISTOGRAM_QUANTILE, PQF_HOLT_WINTERS, PQF_HOUR, PQF_IDELTA, PQF_INCREASE, PQF_IRATE,
	PQF_LABEL_REPLACE, PQF_LABEL_JOIN, PQF_LAST_OVER_TIME, PQF_LN, PQF_LOG10, PQF_LOG2,
	PQF_MAX_OVER_TIME, PQF_MIN_OVER_TIME, PQF_MINUTE, PQF_MONTH, PQF_PI, PQF_PREDICT_LINEAR,
	PQF_PRESENT_OVER_TIME, PQF_QUANTILE_OVER_TIME, PQF_RAD, PQF_RATE, PQF_RESETS, PQF_ROUND,
	PQF_SCALAR, PQF_SGN, PQF_SIN, PQF_SINH, PQF_SORT, PQF_SORT_DESC, PQF_SQRT,
	PQF_STDDEV_OVER_TIME, PQF_STDVAR_OVER_TIME, PQF_SUM_OVER_TIME, PQF_TAN, PQF_TANH,
	PQF_TIME, PQF_TIMESTAMP, PQF_VECTOR, PQF_YEAR,
};

struct pq_func {
	const char *name;
	enum pq_func_id id;
	enum pq_type args[5];
	int nargs;
	int variadic; /* 0: exactly nargs; 1: one optional more; -1: any number more */
	enum pq_type ret;
};

/* NULL when no function has that name. */
const pq_func *pq_func_find(const char *name, size_t len);

/* A parsed, type-checked query. */
typedef struct pq_expr pq_expr;

/* 0 and *out, or SDK_EINVAL with Prometheus's message ("1:5: parse
 * error: ...") in err. */
struct sdk_err;
int pq_parse(const char *query, pq_expr **out, struct sdk_err *err);
void pq_expr_free(pq_expr *e);
pq_node *pq_expr_root(const pq_expr *e);

/* The metric name a selector selects, if one of its matchers says it. */
const char *pq_selector_name(const pq_node *vs);

/* Parses a PromQL duration ("1h30m", "5m", "250ms"); false when bad. */
bool pq_parse_duration(const char *s, size_t n, int64_t *ms);

#endif
