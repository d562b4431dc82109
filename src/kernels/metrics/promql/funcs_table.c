/* PromQL's functions: names, argument types and result types, as
 * Prometheus 2.42 declares them (promql/parser/functions.go). */
#include "kernels/metrics/promql/ast.h"

#include <string.h>

#define V PQ_VECTOR
#define S PQ_SCALAR
#define M PQ_MATRIX
#define T PQ_STRING

static const pq_func funcs[] = {
	{ "abs", PQF_ABS, { V }, 1, 0, V },
	{ "absent", PQF_ABSENT, { V }, 1, 0, V },
	{ "absent_over_time", PQF_ABSENT_OVER_TIME, { M }, 1, 0, V },
	{ "acos", PQF_ACOS, { V }, 1, 0, V },
	{ "acosh", PQF_ACOSH, { V }, 1, 0, V },
	{ "asin", PQF_ASIN, { V }, 1, 0, V },
	{ "asinh", PQF_ASINH, { V }, 1, 0, V },
	{ "atan", PQF_ATAN, { V }, 1, 0, V },
	{ "atanh", PQF_ATANH, { V }, 1, 0, V },
	{ "avg_over_time", PQF_AVG_OVER_TIME, { M }, 1, 0, V },
	{ "ceil", PQF_CEIL, { V }, 1, 0, V },
	{ "changes", PQF_CHANGES, { M }, 1, 0, V },
	{ "clamp", PQF_CLAMP, { V, S, S }, 3, 0, V },
	{ "clamp_max", PQF_CLAMP_MAX, { V, S }, 2, 0, V },
	{ "clamp_min", PQF_CLAMP_MIN, { V, S }, 2, 0, V },
	{ "cos", PQF_COS, { V }, 1, 0, V },
	{ "cosh", PQF_COSH, { V }, 1, 0, V },
	{ "count_over_time", PQF_COUNT_OVER_TIME, { M }, 1, 0, V },
	{ "days_in_month", PQF_DAYS_IN_MONTH, { V }, 1, 1, V },
	{ "day_of_month", PQF_DAY_OF_MONTH, { V }, 1, 1, V },
	{ "day_of_week", PQF_DAY_OF_WEEK, { V }, 1, 1, V },
	{ "day_of_year", PQF_DAY_OF_YEAR, { V }, 1, 1, V },
	{ "deg", PQF_DEG, { V }, 1, 0, V },
	{ "delta", PQF_DELTA, { M }, 1, 0, V },
	{ "deriv", PQF_DERIV, { M }, 1, 0, V },
	{ "exp", PQF_EXP, { V }, 1, 0, V },
	{ "floor", PQF_FLOOR, { V }, 1, 0, V },
	{ "histogram_quantile", PQF_HISTOGRAM_QUANTILE, { S, V }, 2, 0, V },
	{ "holt_winters", PQF_HOLT_WINTERS, { M, S, S }, 3, 0, V },
	{ "hour", PQF_HOUR, { V }, 1, 1, V },
	{ "idelta", PQF_IDELTA, { M }, 1, 0, V },
	{ "increase", PQF_INCREASE, { M }, 1, 0, V },
	{ "irate", PQF_IRATE, { M }, 1, 0, V },
	{ "label_replace", PQF_LABEL_REPLACE, { V, T, T, T, T }, 5, 0, V },
	{ "label_join", PQF_LABEL_JOIN, { V, T, T, T }, 4, -1, V },
	{ "last_over_time", PQF_LAST_OVER_TIME, { M }, 1, 0, V },
	{ "ln", PQF_LN, { V }, 1, 0, V },
	{ "log10", PQF_LOG10, { V }, 1, 0, V },
	{ "log2", PQF_LOG2, { V }, 1, 0, V },
	{ "max_over_time", PQF_MAX_OVER_TIME, { M }, 1, 0, V },
	{ "min_over_time", PQF_MIN_OVER_TIME, { M }, 1, 0, V },
	{ "minute", PQF_MINUTE, { V }, 1, 1, V },
	{ "month", PQF_MONTH, { V }, 1, 1, V },
	{ "pi", PQF_PI, { 0 }, 0, 0, S },
	{ "predict_linear", PQF_PREDICT_LINEAR, { M, S }, 2, 0, V },
	{ "present_over_time", PQF_PRESENT_OVER_TIME, { M }, 1, 0, V },
	{ "quantile_over_time", PQF_QUANTILE_OVER_TIME, { S, M }, 2, 0, V },
	{ "rad", PQF_RAD, { V }, 1, 0, V },
	{ "rate", PQF_RATE, { M }, 1, 0, V },
	{ "resets", PQF_RESETS, { M }, 1, 0, V },
	{ "round", PQF_ROUND, { V, S }, 2, 1, V },
	{ "scalar", PQF_SCALAR, { V }, 1, 0, S },
	{ "sgn", PQF_SGN, { V }, 1, 0, V },
	{ "sin", PQF_SIN, { V }, 1, 0, V },
	{ "sinh", PQF_SINH, { V }, 1, 0, V },
	{ "sort", PQF_SORT, { V }, 1, 0, V },
	{ "sort_desc", PQF_SORT_DESC, { V }, 1, 0, V },
	{ "sqrt", PQF_SQRT, { V }, 1, 0, V },
	{ "stddev_over_time", PQF_STDDEV_OVER_TIME, { M }, 1, 0, V },
	{ "stdvar_over_time", PQF_STDVAR_OVER_TIME, { M }, 1, 0, V },
	{ "sum_over_time", PQF_SUM_OVER_TIME, { M }, 1, 0, V },
	{ "tan", PQF_TAN, { V }, 1, 0, V },
	{ "tanh", PQF_TANH, { V }, 1, 0, V },
	{ "time", PQF_TIME, { 0 }, 0, 0, S },
	{ "timestamp", PQF_TIMESTAMP, { V }, 1, 0, V },
	{ "vector", PQF_VECTOR, { S }, 1, 0, V },
	{ "year", PQF_YEAR, { V }, 1, 1, V },
};

const pq_func *pq_func_find(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof funcs / sizeof funcs[0]; i++)
		if (strlen(funcs[i].name) == len && !memcmp(funcs[i].name, name, len))
			return &funcs[i];
	return NULL;
}
