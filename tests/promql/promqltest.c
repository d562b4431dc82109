/* A runner for Prometheus's promqltest files (promql/testdata/NAME.test
 * in 2.42, promql/promqltest/testdata/NAME.test later): `load`, `clear`,
 * `eval[_fail|_ordered] instant at T EXPR` with its expected series, and
 * the newer `eval range from A to B step S EXPR` and `expect ...` lines.
 * Series go into the metrics kernel's real store (a fresh SQLite file per
 * `clear`), queries through its PromQL engine. Like Prometheus 2.42's
 * runner, an instant evaluation is checked again as the middle step of a
 * range query around it.
 *
 *   promqltest [-v] [-q] FILE...
 *
 * Prints, per file, how many evaluations passed, failed, and were not
 * supported (native histograms, functions and directives Grace lacks),
 * each failure with its line; exits 1 when any failed. */
#include "kernels/metrics/promql/ast.h"
#include "kernels/metrics/promql/eval.h"
#include "kernels/metrics/tsdb.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define LINE_MAX_LEN 65536
#define VALUES_MAX 100000

static bool verbose, quiet;
/* --emit: print each file back with Grace's results under every eval
 * that has no expectation yet (to write new cases; check them with
 * check_promtool.py before keeping them). */
static bool emit;

typedef struct seqval {
	bool omitted, stale;
	double v;
} seqval;

typedef struct series_desc {
	lbl_set *ls;
	seqval *v;
	size_t n;
} series_desc;

static void sd_free(series_desc *s)
{
	lbl_unref(s->ls);
	free(s->v);
}

static const char *skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* A Go-quoted string at p ("..." or '...'); its unescaped value in out. */
static const char *quoted(const char *p, char *out, size_t len)
{
	char q = *p++;
	size_t o = 0;
	while (*p && *p != q) {
		char c = *p++;
		if (c == '\\') {
			c = *p++;
			switch (c) {
			case 'n': c = '\n'; break;
			case 't': c = '\t'; break;
			case 'r': c = '\r'; break;
			case '\\': case '"': case '\'': break;
			case 'x': {
				unsigned v = 0;
				for (int i = 0; i < 2 && isxdigit((unsigned char)*p); i++, p++)
					v = v * 16 + (unsigned)(isdigit((unsigned char)*p) ? *p - '0' : tolower(*p) - 'a' + 10);
				c = (char)v;
				break;
			}
			case 'u': {
				unsigned v = 0;
				for (int i = 0; i < 4 && isxdigit((unsigned char)*p); i++, p++)
					v = v * 16 + (unsigned)(isdigit((unsigned char)*p) ? *p - '0' : tolower(*p) - 'a' + 10);
				if (v < 0x80) {
					c = (char)v;
				} else if (v < 0x800) {
					if (o + 1 < len)
						out[o++] = (char)(0xc0 | (v >> 6));
					c = (char)(0x80 | (v & 0x3f));
				} else {
					if (o + 2 < len) {
						out[o++] = (char)(0xe0 | (v >> 12));
						out[o++] = (char)(0x80 | ((v >> 6) & 0x3f));
					}
					c = (char)(0x80 | (v & 0x3f));
				}
				break;
			}
			default: break;
			}
		}
		if (o + 1 < len)
			out[o++] = c;
	}
	out[o] = '\0';
	return *p == q ? p + 1 : NULL;
}

static bool parse_num(const char *s, size_t n, double *out)
{
	char tmp[64];
	if (n == 0 || n >= sizeof tmp)
		return false;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	const char *b = tmp + (tmp[0] == '+' || tmp[0] == '-');
	if (!strcasecmp(b, "inf")) {
		*out = tmp[0] == '-' ? -INFINITY : INFINITY;
		return true;
	}
	if (!strcasecmp(b, "nan")) {
		*out = NAN;
		return true;
	}
	char *end;
	*out = strtod(tmp, &end);
	return *end == '\0';
}

static size_t num_len(const char *p)
{
	const char *q = p;
	if (*q == '+' || *q == '-')
		q++;
	if (!strncasecmp(q, "inf", 3))
		return (size_t)(q + 3 - p);
	if (!strncasecmp(q, "nan", 3))
		return (size_t)(q + 3 - p);
	while (isdigit((unsigned char)*q) || *q == '.')
		q++;
	if ((*q == 'e' || *q == 'E') && (isdigit((unsigned char)q[1]) || ((q[1] == '-' || q[1] == '+') && isdigit((unsigned char)q[2])))) {
		q += 2;
		while (isdigit((unsigned char)*q))
			q++;
	}
	return (size_t)(q - p);
}

static int push_val(series_desc *s, size_t *cap, seqval v)
{
	if (s->n >= VALUES_MAX)
		return -1;
	if (s->n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		s->v = realloc(s->v, *cap * sizeof *s->v);
	}
	s->v[s->n++] = v;
	return 0;
}

/* One value item of a sequence: _, _xN, stale, a, axN, a+bxN, a-bxN. */
static int value_item(const char *tok, size_t tl, series_desc *s, size_t *cap)
{
	char t[128];
	if (tl >= sizeof t)
		return -1;
	memcpy(t, tok, tl);
	t[tl] = '\0';
	if (!strcmp(t, "_"))
		return push_val(s, cap, (seqval){ .omitted = true });
	if (!strncmp(t, "_x", 2)) {
		long n = strtol(t + 2, NULL, 10);
		for (long i = 0; i < n; i++)
			if (push_val(s, cap, (seqval){ .omitted = true }) < 0)
				return -1;
		return 0;
	}
	if (!strcmp(t, "stale"))
		return push_val(s, cap, (seqval){ .stale = true });
	if (strstr(t, "{{"))
		return -2; /* a native histogram */
	size_t al = num_len(t);
	double a, b = 0;
	if (!parse_num(t, al, &a))
		return -1;
	const char *p = t + al;
	if (!*p)
		return push_val(s, cap, (seqval){ .v = a });
	if (*p == '+' || *p == '-') {
		size_t bl = num_len(p);
		if (!parse_num(p, bl, &b))
			return -1;
		p += bl;
	}
	if (*p != 'x')
		return -1;
	char *end;
	long n = strtol(p + 1, &end, 10);
	if (*end || n < 0)
		return -1;
	for (long i = 0; i <= n; i++) {
		if (push_val(s, cap, (seqval){ .v = a }) < 0)
			return -1;
		a += b;
	}
	return 0;
}

/* "name{a="b"} v v v" (the name or the braces may be missing). Returns
 * 0, -1 on a syntax error, -2 for what this runner does not support. */
static int series_line(const char *line, series_desc *out)
{
	memset(out, 0, sizeof *out);
	const char *p = skip_ws(line);
	lbl_pair pairs[LBL_PAIRS_MAX + 1];
	static char strs[LBL_PAIRS_MAX + 1][2][LBL_VALUE_MAX];
	size_t np = 0;
	const char *q = p;
	while (isalnum((unsigned char)*q) || *q == '_' || *q == ':')
		q++;
	if (q > p) {
		snprintf(strs[np][1], sizeof strs[np][1], "%.*s", (int)(q - p), p);
		pairs[np++] = (lbl_pair){ LBL_METRIC_NAME, strs[0][1] };
	}
	p = skip_ws(q);
	if (*p == '{') {
		p = skip_ws(p + 1);
		while (*p && *p != '}') {
			q = p;
			while (isalnum((unsigned char)*q) || *q == '_')
				q++;
			if (q == p || np >= LBL_PAIRS_MAX)
				return -1;
			snprintf(strs[np][0], sizeof strs[np][0], "%.*s", (int)(q - p), p);
			p = skip_ws(q);
			if (*p != '=')
				return -1;
			p = skip_ws(p + 1);
			if (*p != '"' && *p != '\'')
				return -1;
			p = quoted(p, strs[np][1], sizeof strs[np][1]);
			if (!p)
				return -1;
			pairs[np] = (lbl_pair){ strs[np][0], strs[np][1] };
			np++;
			p = skip_ws(p);
			if (*p == ',')
				p = skip_ws(p + 1);
		}
		if (*p != '}')
			return -1;
		p++;
	}
	bool dup;
	out->ls = lbl_new(pairs, np, &dup);
	if (!out->ls)
		return -1;
	size_t cap = 0;
	for (;;) {
		p = skip_ws(p);
		if (!*p || *p == '#')
			break;
		q = p;
		if (!strncmp(p, "{{", 2)) {
			sd_free(out);
			return -2;
		}
		while (*q && *q != ' ' && *q != '\t')
			q++;
		int rc = value_item(p, (size_t)(q - p), out, &cap);
		if (rc) {
			sd_free(out);
			return rc;
		}
		p = q;
	}
	return 0;
}

/* ---- the file */

typedef struct counts {
	unsigned pass, fail, unsupported;
} counts;

typedef struct run {
	const char *file;
	char dir[64];
	tsdb *db;
	unsigned gen;
	bool load_unsupported;
	counts c;
} run;

static void report(run *r, unsigned line, const char *kind, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void report(run *r, unsigned line, const char *kind, const char *fmt, ...)
{
	if (quiet || (!verbose && !strcmp(kind, "unsupported")))
		return;
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "%s:%u: %s: ", r->file, line, kind);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
}

static int store_reset(run *r)
{
	if (r->db)
		tsdb_close(r->db);
	char name[32];
	snprintf(name, sizeof name, "t%u", r->gen++);
	tsdb_opts o = { .chunk_samples = 120 };
	sdk_err e;
	r->db = tsdb_open(r->dir, name, &o, &e);
	if (!r->db) {
		fprintf(stderr, "cannot open a store in %s: %s\n", r->dir, e.msg);
		return -1;
	}
	r->load_unsupported = false;
	return 0;
}

static bool almost_equal(double a, double b)
{
	const double eps = 0.000001, min_normal = 2.2250738585072014e-308;
	if (isnan(a) && isnan(b))
		return true;
	if (a == b)
		return true;
	double diff = fabs(a - b);
	if (a == 0 || b == 0 || diff < min_normal)
		return diff < eps * min_normal;
	return diff / (fabs(a) + fabs(b)) < eps;
}

typedef struct expectation {
	series_desc *s;
	size_t n, cap;
	bool scalar;
	double scalar_v;
	bool have_string;
	char string[1024];
	bool fail, ordered, unsupported;
	char why[200];
} expectation;

static void exp_free(expectation *x)
{
	for (size_t i = 0; i < x->n; i++)
		sd_free(&x->s[i]);
	free(x->s);
}

static bool parse_dur(const char *s, size_t n, int64_t *ms)
{
	if (n == 0)
		return false;
	bool neg = s[0] == '-';
	if (neg) {
		s++, n--;
	}
	if (!pq_parse_duration(s, n, ms))
		return false;
	if (neg)
		*ms = -*ms;
	return true;
}

static void fmt_labels(const lbl_set *ls, char *b, size_t n) { lbl_format(ls, b, n); }

/* Compares an instant vector (points at one time). */
static bool compare_vector(const pq_matrix *m, const expectation *x, bool ordered, char *why,
			   size_t wl)
{
	bool *seen = calloc(x->n + 1, sizeof *seen);
	bool ok = true;
	char lb[512];
	for (size_t i = 0; i < m->n && ok; i++) {
		size_t j;
		for (j = 0; j < x->n; j++)
			if (lbl_eq(m->s[i].ls, x->s[j].ls))
				break;
		fmt_labels(m->s[i].ls, lb, sizeof lb);
		if (j == x->n) {
			snprintf(why, wl, "unexpected metric %s in result", lb);
			ok = false;
			break;
		}
		if (ordered && j != i) {
			snprintf(why, wl, "expected metric %s at position %zu but was at %zu", lb, j + 1, i + 1);
			ok = false;
			break;
		}
		double want = x->s[j].n ? x->s[j].v[0].v : NAN;
		if (!x->s[j].n || !almost_equal(want, m->s[i].p[0].v)) {
			snprintf(why, wl, "expected %.17g for %s but got %.17g", want, lb, m->s[i].p[0].v);
			ok = false;
		}
		seen[j] = true;
	}
	for (size_t j = 0; j < x->n && ok; j++)
		if (!seen[j]) {
			fmt_labels(x->s[j].ls, lb, sizeof lb);
			snprintf(why, wl, "expected metric %s not found", lb);
			ok = false;
		}
	free(seen);
	return ok;
}

/* Compares a matrix with expected sequences over start..end by step. */
static bool compare_matrix(const pq_matrix *m, const expectation *x, int64_t start, int64_t end,
			   int64_t step, char *why, size_t wl)
{
	char lb[512];
	for (size_t i = 0; i < m->n; i++) {
		size_t j;
		for (j = 0; j < x->n; j++)
			if (lbl_eq(m->s[i].ls, x->s[j].ls))
				break;
		fmt_labels(m->s[i].ls, lb, sizeof lb);
		if (j == x->n) {
			snprintf(why, wl, "unexpected series %s in result", lb);
			return false;
		}
		size_t k = 0, step_i = 0;
		for (int64_t t = start; t <= end; t += step, step_i++) {
			const seqval *sv = step_i < x->s[j].n ? &x->s[j].v[step_i] : NULL;
			bool want = sv && !sv->omitted;
			bool have = k < m->s[i].n && m->s[i].p[k].t == t;
			if (want != have) {
				snprintf(why, wl, "series %s at %lld: %s", lb, (long long)t,
					 want ? "missing a point" : "an unexpected point");
				return false;
			}
			if (have) {
				if (!almost_equal(sv->v, m->s[i].p[k].v)) {
					snprintf(why, wl, "series %s at %lld: expected %.17g, got %.17g", lb,
						 (long long)t, sv->v, m->s[i].p[k].v);
					return false;
				}
				k++;
			}
		}
	}
	for (size_t j = 0; j < x->n; j++) {
		bool found = false;
		for (size_t i = 0; i < m->n && !found; i++)
			found = lbl_eq(m->s[i].ls, x->s[j].ls);
		bool any = false;
		for (size_t k = 0; k < x->s[j].n; k++)
			any |= !x->s[j].v[k].omitted;
		if (!found && any) {
			fmt_labels(x->s[j].ls, lb, sizeof lb);
			snprintf(why, wl, "expected series %s not found", lb);
			return false;
		}
	}
	return true;
}

static int series_cmp_emit(const void *a, const void *b)
{
	return lbl_cmp(((const pq_series *)a)->ls, ((const pq_series *)b)->ls);
}

static void mat_sort_for_emit(pq_matrix *m)
{
	qsort(m->s, m->n, sizeof *m->s, series_cmp_emit);
}

static int query(run *r, const char *expr, int64_t start, int64_t end, int64_t step,
		 pq_result *res, sdk_err *e)
{
	pq_expr *x;
	int rc = pq_parse(expr, &x, e);
	if (rc)
		return rc;
	pq_opts o = { .db = r->db, .start = start, .end = end, .step = step,
		      .max_samples = 50000000 };
	pq_opts_defaults(&o);
	rc = pq_eval(x, &o, res, e);
	pq_expr_free(x);
	return rc;
}

static void print_value(double v)
{
	char b[400];
	pq_format_value(v, b, sizeof b);
	printf("%s", b);
}

static void print_labels(const lbl_set *ls)
{
	const char *name = lbl_get(ls, LBL_METRIC_NAME);
	if (name)
		printf("%s", name);
	printf("{");
	bool first = true;
	for (uint32_t i = 0; i < ls->n; i++) {
		if (!strcmp(ls->p[i].name, LBL_METRIC_NAME))
			continue;
		printf("%s%s=\"", first ? "" : ", ", ls->p[i].name);
		for (const char *c = ls->p[i].value; *c; c++) {
			if (*c == '"' || *c == '\\')
				putchar('\\');
			if (*c == '\n') {
				printf("\\n");
				continue;
			}
			putchar(*c);
		}
		printf("\"");
		first = false;
	}
	printf("}");
}

/* Prints Grace's answer as expectation lines (--emit). */
static void emit_result(run *r, const char *expr, int64_t t, bool ordered)
{
	pq_result res;
	sdk_err e;
	if (query(r, expr, t, t, 0, &res, &e)) {
		printf("\t# error: %s\n", e.msg);
		return;
	}
	if (res.type == PQ_SCALAR) {
		printf("\t");
		print_value(res.m.s[0].p[0].v);
		printf("\n");
	} else if (res.type == PQ_VECTOR) {
		if (!ordered)
			mat_sort_for_emit(&res.m);
		for (size_t i = 0; i < res.m.n; i++) {
			printf("\t");
			print_labels(res.m.s[i].ls);
			printf(" ");
			print_value(res.m.s[i].p[0].v);
			printf("\n");
		}
	} else {
		printf("\t# result of type %d\n", res.type);
	}
	pq_result_free(&res);
}

static void eval_cmd(run *r, unsigned line, bool range, int64_t start, int64_t end, int64_t step,
		     const char *expr, expectation *x)
{
	if (emit)
		return;
	if (x->unsupported || r->load_unsupported) {
		r->c.unsupported++;
		report(r, line, "unsupported", "%s (%s)", expr,
		       x->unsupported ? x->why : "its data uses native histograms");
		return;
	}
	pq_result res;
	sdk_err e = { "" };
	int rc = query(r, expr, start, end, range ? step : 0, &res, &e);
	if (x->fail) {
		if (rc == 0) {
			pq_result_free(&res);
			r->c.fail++;
			report(r, line, "FAIL", "%s: expected an error, got none", expr);
			return;
		}
		r->c.pass++;
		return;
	}
	if (rc) {
		/* Unknown functions are Prometheus features Grace lacks. */
		if (strstr(e.msg, "unknown function") || strstr(e.msg, "unexpected character") ||
		    strstr(e.msg, "bad number or duration")) {
			r->c.unsupported++;
			report(r, line, "unsupported", "%s: %s", expr, e.msg);
			return;
		}
		r->c.fail++;
		report(r, line, "FAIL", "%s: %s", expr, e.msg);
		return;
	}
	char why[600] = "";
	bool ok = true;
	if (x->have_string) {
		ok = res.type == PQ_STRING && !strcmp(res.str, x->string);
		if (!ok)
			snprintf(why, sizeof why, "expected string \"%.500s\"", x->string);
	} else if (range) {
		ok = compare_matrix(&res.m, x, start, end, step, why, sizeof why);
	} else if (res.type == PQ_SCALAR) {
		ok = x->scalar && res.m.n && almost_equal(x->scalar_v, res.m.s[0].p[0].v);
		if (!ok)
			snprintf(why, sizeof why, "expected scalar %.17g, got %.17g", x->scalar_v,
				 res.m.n ? res.m.s[0].p[0].v : NAN);
	} else if (res.type == PQ_MATRIX) {
		ok = false;
		snprintf(why, sizeof why, "received range result on instant evaluation");
	} else if (x->scalar) {
		ok = false;
		snprintf(why, sizeof why, "expected a scalar, got a vector");
	} else {
		ok = compare_vector(&res.m, x, x->ordered, why, sizeof why);
	}
	pq_result_free(&res);
	/* The same query as the middle step of a range query (instant
	 * evaluations of instant vectors and scalars only). */
	if (ok && !range && !x->have_string && !x->ordered) {
		pq_expr *px;
		if (pq_parse(expr, &px, &e) == 0) {
			const pq_node *root = pq_expr_root(px);
			if (root->type == PQ_VECTOR || root->type == PQ_SCALAR) {
				pq_result rr;
				rc = query(r, expr, start - 60000, start + 60000, 60000, &rr, &e);
				if (rc) {
					ok = false;
					snprintf(why, sizeof why, "range mode: %s", e.msg);
				} else {
					pq_matrix mid = { 0 };
					mid.s = calloc(rr.m.n + 1, sizeof *mid.s);
					for (size_t i = 0; i < rr.m.n; i++)
						for (size_t k = 0; k < rr.m.s[i].n; k++)
							if (rr.m.s[i].p[k].t == start) {
								mid.s[mid.n].ls = rr.m.s[i].ls;
								mid.s[mid.n].p = &rr.m.s[i].p[k];
								mid.s[mid.n].n = 1;
								mid.n++;
							}
					if (root->type == PQ_SCALAR) {
						ok = mid.n == 1 && almost_equal(x->scalar_v, mid.s[0].p[0].v);
						if (!ok)
							snprintf(why, sizeof why, "range mode: expected scalar %.17g",
								 x->scalar_v);
					} else {
						ok = compare_vector(&mid, x, false, why, sizeof why);
						if (!ok) {
							char t[sizeof why];
							memcpy(t, why, sizeof t);
							if (snprintf(why, sizeof why, "range mode: %s", t) >=
							    (int)sizeof why)
								why[sizeof why - 1] = '\0';
						}
					}
					free(mid.s);
					pq_result_free(&rr);
				}
			}
			pq_expr_free(px);
		}
	}
	if (ok) {
		r->c.pass++;
	} else {
		r->c.fail++;
		report(r, line, "FAIL", "%s: %s", expr, why);
	}
}

/* A load block: a series given twice keeps its last definition, as in
 * Prometheus's loader (a map by labels). */
static int load_cmd(run *r, char **lines, size_t n, size_t *i, int64_t gap)
{
	series_desc *all = NULL;
	size_t na = 0, cap = 0;
	for ((*i)++; *i < n && lines[*i][0]; (*i)++) {
		series_desc s;
		int rc = series_line(lines[*i], &s);
		if (rc == -2) {
			r->load_unsupported = true;
			continue;
		}
		if (rc) {
			fprintf(stderr, "%s:%zu: bad series line: %s\n", r->file, *i + 1, lines[*i]);
			for (size_t k = 0; k < na; k++)
				sd_free(&all[k]);
			free(all);
			return -1;
		}
		size_t k;
		for (k = 0; k < na; k++)
			if (lbl_eq(all[k].ls, s.ls))
				break;
		if (k < na) {
			sd_free(&all[k]);
			all[k] = s;
			continue;
		}
		if (na == cap) {
			cap = cap ? cap * 2 : 16;
			all = realloc(all, cap * sizeof *all);
		}
		all[na++] = s;
	}
	for (size_t k = 0; k < na; k++) {
		int64_t t = 0;
		for (size_t j = 0; j < all[k].n; j++, t += gap)
			if (!all[k].v[j].omitted)
				tsdb_append(r->db, all[k].ls, t,
					    all[k].v[j].stale ? tsdb_stale_nan() : all[k].v[j].v);
		sd_free(&all[k]);
	}
	free(all);
	(*i)--;
	return 0;
}

/* eval lines, old and new. */
static int eval_line(run *r, char **lines, size_t n, size_t *i)
{
	const char *l = lines[*i];
	unsigned lineno = (unsigned)*i + 1;
	expectation x = { 0 };
	const char *p = l + 4;
	if (*p == '_') {
		if (!strncmp(p, "_fail", 5))
			x.fail = true, p += 5;
		else if (!strncmp(p, "_ordered", 8))
			x.ordered = true, p += 8;
		else if (!strncmp(p, "_warn", 5) || !strncmp(p, "_info", 5))
			p += 5; /* warnings and infos are not Grace's: the result still counts */
		else
			return -1;
	}
	p = skip_ws(p);
	bool range = false;
	int64_t start = 0, end = 0, step = 0;
	const char *expr;
	if (!strncmp(p, "instant", 7)) {
		p = skip_ws(p + 7);
		if (!strncmp(p, "at ", 3)) {
			p = skip_ws(p + 3);
			const char *q = p;
			while (*q && *q != ' ' && *q != '\t')
				q++;
			if (!parse_dur(p, (size_t)(q - p), &start))
				return -1;
			p = skip_ws(q);
		}
		end = start;
	} else if (!strncmp(p, "range from ", 11)) {
		range = true;
		p = skip_ws(p + 11);
		char a[32], b[32], c[32];
		int used = 0;
		if (sscanf(p, "%31s to %31s step %31s %n", a, b, c, &used) != 3 ||
		    !parse_dur(a, strlen(a), &start) || !parse_dur(b, strlen(b), &end) ||
		    !parse_dur(c, strlen(c), &step) || step <= 0)
			return -1;
		p += used;
	} else {
		return -1;
	}
	expr = p;
	if (emit)
		printf("%s\n", l);
	size_t first_exp = *i + 1;
	for ((*i)++; *i < n && lines[*i][0]; (*i)++) {
		const char *el = skip_ws(lines[*i]);
		if (emit)
			printf("\t%s\n", el);
		if (!strncmp(el, "expect ", 7)) {
			const char *d = skip_ws(el + 7);
			if (!strncmp(d, "fail", 4)) {
				x.fail = true;
			} else if (!strncmp(d, "ordered", 7)) {
				x.ordered = true;
			} else if (!strncmp(d, "string", 6)) {
				d = skip_ws(d + 6);
				if (*d == '`') {
					const char *e2 = strchr(d + 1, '`');
					snprintf(x.string, sizeof x.string, "%.*s", e2 ? (int)(e2 - d - 1) : 0, d + 1);
				} else if (!quoted(d, x.string, sizeof x.string)) {
					return -1;
				}
				x.have_string = true;
			} else if (!strncmp(d, "range vector", 12)) {
				x.unsupported = true;
				snprintf(x.why, sizeof x.why, "expect range vector");
			} else if (!strncmp(d, "warn", 4) || !strncmp(d, "no_warn", 7) ||
				   !strncmp(d, "info", 4) || !strncmp(d, "no_info", 7)) {
				/* annotations: Grace gives none; the result is still checked */
			} else {
				x.unsupported = true;
				snprintf(x.why, sizeof x.why, "directive %.40s", d);
			}
			continue;
		}
		double v;
		size_t nl = num_len(el);
		if (nl && nl == strlen(el) && parse_num(el, nl, &v)) {
			x.scalar = true;
			x.scalar_v = v;
			continue;
		}
		series_desc s;
		int rc = series_line(el, &s);
		if (rc == -2) {
			x.unsupported = true;
			snprintf(x.why, sizeof x.why, "native histogram results");
			continue;
		}
		if (rc) {
			x.unsupported = true;
			snprintf(x.why, sizeof x.why, "an expected line this runner cannot read");
			continue;
		}
		if (x.n == x.cap) {
			x.cap = x.cap ? x.cap * 2 : 8;
			x.s = realloc(x.s, x.cap * sizeof *x.s);
		}
		x.s[x.n++] = s;
	}
	if (emit && *i == first_exp && !x.fail && !range)
		emit_result(r, expr, start, x.ordered);
	if (emit)
		printf("\n");
	(*i)--;
	eval_cmd(r, lineno, range, start, end, step, expr, &x);
	exp_free(&x);
	return 0;
}

static int run_file(const char *path, counts *total)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		perror(path);
		return -1;
	}
	size_t cap = 1024, n = 0;
	char **lines = malloc(cap * sizeof *lines);
	char **raw = malloc(cap * sizeof *raw);
	char *buf = malloc(LINE_MAX_LEN);
	while (fgets(buf, LINE_MAX_LEN, f)) {
		size_t len = strlen(buf);
		while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' ||
			       buf[len - 1] == '\t'))
			buf[--len] = '\0';
		const char *s = skip_ws(buf);
		const char *orig = s;
		if (*s == '#')
			s = "";
		if (n == cap) {
			cap *= 2;
			lines = realloc(lines, cap * sizeof *lines);
			raw = realloc(raw, cap * sizeof *raw);
		}
		raw[n] = strdup(orig);
		lines[n++] = strdup(s);
	}
	fclose(f);
	free(buf);
	run r = { .file = path };
	const char *base = strrchr(path, '/');
	r.file = base ? base + 1 : path;
	snprintf(r.dir, sizeof r.dir, "/tmp/promqltest-XXXXXX");
	int rc = 0;
	if (!mkdtemp(r.dir) || store_reset(&r) < 0) {
		rc = -1;
		goto out;
	}
	for (size_t i = 0; i < n && !rc; i++) {
		const char *l = lines[i];
		if (!l[0]) {
			if (emit && raw[i][0] == '#')
				printf("%s\n", raw[i]);
			continue;
		}
		if (emit && strncmp(l, "eval", 4)) {
			printf("%s\n", l);
			if (!strncmp(l, "load", 4)) {
				for (size_t k = i + 1; k < n && lines[k][0]; k++)
					printf("\t%s\n", lines[k]);
				printf("\n");
			} else {
				printf("\n");
			}
		}
		if (!strcmp(l, "clear")) {
			rc = store_reset(&r);
		} else if (!strncmp(l, "load_with_nhcb", 14)) {
			r.load_unsupported = true;
			while (i + 1 < n && lines[i + 1][0])
				i++;
		} else if (!strncmp(l, "load ", 5)) {
			int64_t gap;
			const char *g = skip_ws(l + 5);
			if (!parse_dur(g, strlen(g), &gap)) {
				fprintf(stderr, "%s:%zu: bad load step\n", r.file, i + 1);
				rc = -1;
				break;
			}
			rc = load_cmd(&r, lines, n, &i, gap);
		} else if (!strncmp(l, "eval", 4)) {
			size_t at = i;
			if (eval_line(&r, lines, n, &i) < 0) {
				r.c.unsupported++;
				report(&r, (unsigned)at + 1, "unsupported", "%s", l);
				while (i + 1 < n && lines[i + 1][0])
					i++;
			}
		} else {
			r.c.unsupported++;
			report(&r, (unsigned)i + 1, "unsupported", "command %s", l);
			while (i + 1 < n && lines[i + 1][0])
				i++;
		}
	}
out:
	if (r.db)
		tsdb_close(r.db);
	for (size_t i = 0; i < n; i++) {
		free(lines[i]);
		free(raw[i]);
	}
	free(lines);
	free(raw);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", r.dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", r.dir);
	if (!emit)
		printf("%-28s pass %4u  fail %4u  unsupported %4u\n", r.file, r.c.pass, r.c.fail,
		       r.c.unsupported);
	total->pass += r.c.pass;
	total->fail += r.c.fail;
	total->unsupported += r.c.unsupported;
	return rc;
}

int main(int argc, char **argv)
{
	counts total = { 0 };
	int files = 0, bad = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-v")) {
			verbose = true;
			continue;
		}
		if (!strcmp(argv[i], "--emit")) {
			emit = quiet = true;
			continue;
		}
		if (!strcmp(argv[i], "-q")) {
			quiet = true;
			continue;
		}
		files++;
		if (run_file(argv[i], &total) < 0)
			bad++;
	}
	if (!files) {
		fprintf(stderr, "usage: promqltest [-v] [-q] FILE...\n");
		return 2;
	}
	if (!emit)
		printf("%-28s pass %4u  fail %4u  unsupported %4u\n", "total", total.pass, total.fail,
		       total.unsupported);
	return bad || total.fail ? 1 : 0;
}
