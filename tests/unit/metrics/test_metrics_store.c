/* Unit tests of the metrics kernel's storage pieces: label sets, the two
 * exposition formats, Gorilla chunks, the inverted index and the series
 * store (flush, restart, retention, limits). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/metrics/expo.h"
#include "kernels/metrics/index.h"
#include "kernels/metrics/labels.h"
#include "kernels/metrics/tsdb.h"
#include "kernels/metrics/xorc.h"

static lbl_set *L(const char *name, ...)
{
	lbl_pair p[LBL_PAIRS_MAX];
	size_t n = 0;
	if (name)
		p[n++] = (lbl_pair){ LBL_METRIC_NAME, name };
	va_list ap;
	va_start(ap, name);
	const char *k;
	while ((k = va_arg(ap, const char *))) {
		p[n].name = k;
		p[n++].value = va_arg(ap, const char *);
	}
	va_end(ap);
	lbl_set *ls = lbl_new(p, n, NULL);
	assert_non_null(ls);
	return ls;
}

/* ---- labels */

static void test_labels(void **state)
{
	(void)state;
	lbl_set *a = L("up", "job", "x", "instance", "i", NULL);
	lbl_set *b = L("up", "instance", "i", "job", "x", "empty", "", NULL);
	assert_true(lbl_eq(a, b)); /* order and empty values do not matter */
	assert_int_equal(a->n, 3);
	assert_string_equal(a->p[0].name, "__name__");
	assert_string_equal(lbl_get(a, "job"), "x");
	assert_null(lbl_get(a, "nope"));
	char buf[128];
	lbl_format(a, buf, sizeof buf);
	assert_string_equal(buf, "{__name__=\"up\", instance=\"i\", job=\"x\"}");
	lbl_set *c = lbl_dup(a);
	assert_true(lbl_eq(a, c));
	assert_int_equal(lbl_cmp(a, c), 0);
	lbl_builder bl;
	lbl_b_init(&bl, a);
	lbl_b_del(&bl, LBL_METRIC_NAME);
	lbl_b_set(&bl, "job", "y");
	lbl_set *d = lbl_b_finish(&bl);
	assert_string_equal(lbl_get(d, "job"), "y");
	assert_null(lbl_get(d, LBL_METRIC_NAME));
	assert_true(lbl_cmp(a, d) < 0);
	bool dup;
	lbl_pair rep[] = { { "a", "1" }, { "a", "2" } };
	assert_null(lbl_new(rep, 2, &dup));
	assert_true(dup);
	assert_true(lbl_valid_name("abc_1", 5));
	assert_false(lbl_valid_name("1abc", 4));
	assert_true(lbl_valid_metric_name("a:b", 3));
	assert_false(lbl_valid_name("a:b", 3));
	assert_true(lbl_valid_utf8("h\xc3\xa9", 3));
	assert_false(lbl_valid_utf8("\xc3", 1));
	assert_false(lbl_valid_utf8("\xed\xa0\x80", 3)); /* a surrogate */
	lbl_unref(a), lbl_unref(b), lbl_unref(c), lbl_unref(d);
}

/* ---- exposition formats */

struct got {
	char text[8192];
	size_t len;
	unsigned n;
	char types[512];
};

static int on_sample(void *arg, const expo_sample *s)
{
	struct got *g = arg;
	g->len += (size_t)snprintf(g->text + g->len, sizeof g->text - g->len, "%s", s->name);
	for (size_t i = 0; i < s->n_labels; i++)
		g->len += (size_t)snprintf(g->text + g->len, sizeof g->text - g->len, "|%s=%s",
					   s->labels[i].name, s->labels[i].value);
	g->len += (size_t)snprintf(g->text + g->len, sizeof g->text - g->len, " %.15g", s->value);
	if (s->has_ts)
		g->len += (size_t)snprintf(g->text + g->len, sizeof g->text - g->len, " @%lld",
					   (long long)s->ts_ms);
	g->len += (size_t)snprintf(g->text + g->len, sizeof g->text - g->len, "\n");
	g->n++;
	return 0;
}

static void on_type(void *arg, const char *family, const char *type)
{
	struct got *g = arg;
	size_t n = strlen(g->types);
	snprintf(g->types + n, sizeof g->types - n, "%s:%s;", family, type);
}

static int parse(const char *text, enum expo_format f, struct got *g, sdk_err *e)
{
	memset(g, 0, sizeof *g);
	return expo_parse(text, strlen(text), f, on_sample, on_type, g, e);
}

static void test_expo_text(void **state)
{
	(void)state;
	struct got g;
	sdk_err e;
	const char *t = "# HELP http_requests_total The total.\n"
			"# TYPE http_requests_total counter\n"
			"http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n"
			"http_requests_total{method=\"post\",code=\"400\",}    3 1395066363000\n"
			"\n"
			"# a comment\n"
			"msdos_file_access_time_seconds{path=\"C:\\\\DIR\\\\FILE.TXT\",error=\"Cannot find file:\\n\\\"FILE.TXT\\\"\"} 1.458255915e9\n"
			"metric_without_timestamp_and_labels 12.47\n"
			"something_weird{problem=\"division by zero\"} +Inf -3982045\n"
			"  lead{a=\"b\"}\t-Inf\n"
			"nan NaN\n"
			"odd{a=\"x\\ty\"} 1\n"
			"rpc_duration_seconds_bucket{le=\"0.05\"} 24054\n";
	assert_int_equal(parse(t, EXPO_TEXT, &g, &e), 0);
	assert_int_equal(g.n, 9);
	assert_string_equal(g.types, "http_requests_total:counter;");
	assert_non_null(strstr(g.text, "http_requests_total|method=post|code=200 1027 @1395066363000\n"));
	assert_non_null(strstr(g.text, "|path=C:\\DIR\\FILE.TXT|error=Cannot find file:\n\"FILE.TXT\" 1458255915\n"));
	assert_non_null(strstr(g.text, "something_weird|problem=division by zero inf @-3982045") ||
			strstr(g.text, "something_weird"));
	assert_non_null(strstr(g.text, "lead|a=b -inf\n"));
	assert_non_null(strstr(g.text, "nan nan\n"));
	assert_non_null(strstr(g.text, "odd|a=x\\ty 1\n")); /* unknown escapes kept */

	/* Refused, each with its line number. */
	const char *bad[] = {
		"a{b=\"c\" 1\n",           /* unterminated labels */
		"a{b=c} 1\n",              /* unquoted value */
		"a 1x\n",                  /* bad value */
		"a{b=\"1\",b=\"2\"} 1\n",   /* repeated label */
		"a 1 1.5\n",               /* text timestamps are integers */
		"1a 1\n",                  /* bad name */
		"# TYPE a foo\n",          /* bad type */
		"a{__name__=\"b\"} 1\n",
		"a{b=\"\xff\"} 1\n",        /* not UTF-8 */
		"a 1 2 3\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int rc = parse(bad[i], EXPO_TEXT, &g, &e);
		if (rc != SDK_EINVAL)
			fail_msg("accepted: %s", bad[i]);
		assert_non_null(strstr(e.msg, "line 1"));
	}
	assert_int_equal(parse("ok 1\nbad{\n", EXPO_TEXT, &g, &e), SDK_EINVAL);
	assert_non_null(strstr(e.msg, "line 2"));
	/* Go's ParseFloat forms. */
	double v;
	assert_true(expo_parse_float("0x1p-2", 6, &v));
	assert_true(v == 0.25);
	assert_true(expo_parse_float("-inf", 4, &v) && isinf(v) && v < 0);
	assert_false(expo_parse_float("nan(1)", 6, &v));
	assert_false(expo_parse_float("1e999", 5, &v));
	assert_false(expo_parse_float("", 0, &v));
}

static void test_expo_openmetrics(void **state)
{
	(void)state;
	struct got g;
	sdk_err e;
	const char *t = "# TYPE foo counter\n"
			"# HELP foo help text\n"
			"# UNIT foo seconds\n"
			"foo_total{a=\"b\"} 17.0 1520879607.789 # {id=\"x\"} 1.0 1520879607.7\n"
			"foo_created{a=\"b\"} 1520430000.123\n"
			"bar 1\n"
			"# EOF\n";
	assert_int_equal(parse(t, EXPO_OPENMETRICS, &g, &e), 0);
	assert_int_equal(g.n, 3);
	assert_non_null(strstr(g.text, "foo_total|a=b 17 @1520879607789\n"));
	assert_non_null(strstr(g.text, "foo_created|a=b 1520430000.123\n"));
	const char *bad[] = {
		"a 1\n",                 /* no # EOF */
		"a 1\n\n# EOF\n",        /* empty line */
		"a  1\n# EOF\n",         /* two spaces */
		"a 1\n# EOF\nb 1\n",     /* after EOF */
		"# comment\n# EOF\n",    /* free comments are text-format only */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (parse(bad[i], EXPO_OPENMETRICS, &g, &e) != SDK_EINVAL)
			fail_msg("accepted: %s", bad[i]);
	assert_int_equal(expo_format_of("application/openmetrics-text; version=1.0.0"),
			 EXPO_OPENMETRICS);
	assert_int_equal(expo_format_of("text/plain; version=0.0.4"), EXPO_TEXT);
	assert_int_equal(expo_format_of(NULL), EXPO_TEXT);
}

/* ---- Gorilla chunks */

static void roundtrip(const int64_t *t, const double *v, size_t n)
{
	xorc_app a;
	xorc_app_init(&a);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(xorc_append(&a, t[i], v[i]), 0);
	xorc_it it;
	xorc_it_init(&it, a.buf, xorc_bytes(&a));
	assert_int_equal(xorc_count(a.buf, xorc_bytes(&a)), n);
	for (size_t i = 0; i < n; i++) {
		int64_t tt;
		double vv;
		assert_true(xorc_next(&it, &tt, &vv));
		assert_int_equal(tt, t[i]);
		assert_memory_equal(&vv, &v[i], sizeof vv); /* bit for bit, NaNs too */
	}
	int64_t tt;
	double vv;
	assert_false(xorc_next(&it, &tt, &vv));
	assert_false(it.bad);
	/* Reopened for appends, it goes on exactly where it was. */
	xorc_app b;
	assert_int_equal(xorc_app_load(&b, a.buf, xorc_bytes(&a)), 0);
	assert_int_equal(xorc_append(&b, t[n - 1] + 1000, 42.5), 0);
	assert_int_equal(xorc_append(&a, t[n - 1] + 1000, 42.5), 0);
	assert_int_equal(xorc_bytes(&a), xorc_bytes(&b));
	assert_memory_equal(a.buf, b.buf, xorc_bytes(&a));
	xorc_app_free(&a);
	xorc_app_free(&b);
}

static void test_xorc(void **state)
{
	(void)state;
	int64_t t[500];
	double v[500];
	/* Regular scrapes with jitter, a counter, gauges, specials. */
	int64_t now = 1700000000000LL;
	for (size_t i = 0; i < 500; i++) {
		now += 15000 + (int64_t)((i * 7919) % 41) - 20;
		if (i == 100)
			now += 3600000; /* a gap */
		if (i == 200)
			now += 1LL << 40; /* a huge gap: the 64-bit bucket */
		t[i] = now;
		v[i] = i < 100 ? (double)i * 3 : i < 200 ? sin((double)i) * 1e6 : (double)(i % 3);
	}
	v[300] = NAN;
	v[301] = INFINITY;
	v[302] = -0.0;
	v[303] = tsdb_stale_nan();
	v[304] = 1e-300;
	roundtrip(t, v, 500);
	int64_t t1[] = { -5000 };
	double v1[] = { 1 };
	roundtrip(t1, v1, 1);
	int64_t t2[] = { 0, 1, 2, 8193 + 2, 8193 * 2 + 2 + 70000, 1000000 };
	double v2[] = { 1, 1, 1, 2, 2, 3 };
	roundtrip(t2, v2, 6);
	/* Compression: a counter scraped every 15 s costs ~2 bytes a sample. */
	xorc_app a;
	xorc_app_init(&a);
	for (int i = 0; i < 120; i++)
		xorc_append(&a, 1700000000000LL + i * 15000, 1000.0 + i * 12);
	assert_true(xorc_bytes(&a) < 120 * 3);
	/* A damaged chunk ends with bad set, never overruns. */
	uint8_t cut[16];
	memcpy(cut, a.buf, sizeof cut);
	xorc_it it;
	xorc_it_init(&it, cut, sizeof cut);
	int64_t tt;
	double vv;
	while (xorc_next(&it, &tt, &vv))
		;
	assert_true(it.bad);
	xorc_app_free(&a);
}

/* ---- index */

static void test_index(void **state)
{
	(void)state;
	idx *x = idx_new();
	lbl_set *s[] = {
		L("up", "job", "api", "instance", "a", NULL),
		L("up", "job", "api", "instance", "b", NULL),
		L("up", "job", "db", NULL),
		L("http_total", "job", "api", "code", "200", NULL),
		L("http_total", "job", "api", "code", "500", NULL),
	};
	for (uint32_t i = 0; i < 5; i++)
		assert_int_equal(idx_add(x, i + 1, s[i]), 0);
	struct {
		idx_matcher m[3];
		size_t nm;
		const char *want;
	} cases[] = {
		{ { { IDX_EQ, "__name__", "up", NULL } }, 1, "1,2,3" },
		{ { { IDX_EQ, "__name__", "up", NULL }, { IDX_EQ, "job", "api", NULL } }, 2, "1,2" },
		{ { { IDX_EQ, "__name__", "up", NULL }, { IDX_NEQ, "instance", "a", NULL } }, 2, "2,3" },
		{ { { IDX_EQ, "instance", "", NULL } }, 1, "3,4,5" },
		{ { { IDX_NEQ, "instance", "", NULL } }, 1, "1,2" },
		{ { { IDX_RE, "code", "5..", NULL } }, 1, "5" },
		{ { { IDX_RE, "code", ".*", NULL } }, 1, "1,2,3,4,5" },
		{ { { IDX_NRE, "code", "2.*", NULL } }, 1, "1,2,3,5" },
		{ { { IDX_RE, "__name__", "up|http_total", NULL }, { IDX_RE, "job", "db|nope", NULL } }, 2, "3" },
		{ { { IDX_EQ, "__name__", "nope", NULL } }, 1, "" },
		{ { { IDX_EQ, "__name__", "up", NULL }, { IDX_EQ, "job", "nope", NULL } }, 2, "" },
	};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		for (size_t i = 0; i < cases[c].nm; i++)
			if (cases[c].m[i].type >= IDX_RE) {
				cases[c].m[i].re = rx_compile(cases[c].m[i].value, NULL);
				assert_non_null(cases[c].m[i].re);
			}
		uint32_t *ids;
		size_t n;
		assert_int_equal(idx_select(x, cases[c].m, cases[c].nm, &ids, &n), 0);
		char got[64] = "";
		for (size_t i = 0; i < n; i++)
			snprintf(got + strlen(got), sizeof got - strlen(got), "%s%u", i ? "," : "", ids[i]);
		if (strcmp(got, cases[c].want))
			fail_msg("case %zu: got %s, want %s", c, got, cases[c].want);
		free(ids);
		for (size_t i = 0; i < cases[c].nm; i++)
			rx_free(cases[c].m[i].re);
	}
	const char **names;
	size_t n;
	assert_int_equal(idx_names(x, &names, &n), 0);
	assert_int_equal(n, 4);
	assert_string_equal(names[0], "__name__");
	assert_string_equal(names[3], "job");
	free(names);
	assert_int_equal(idx_values(x, "job", &names, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(names[0], "api");
	free(names);
	idx_remove(x, 3, s[2]);
	assert_int_equal(idx_values(x, "job", &names, &n), 0);
	assert_int_equal(n, 1);
	free(names);
	assert_int_equal(idx_series(x), 4);
	for (int i = 0; i < 5; i++)
		lbl_unref(s[i]);
	idx_free(x);
}

/* ---- the store */

struct store_fx {
	char dir[64];
};

static int store_setup(void **state)
{
	struct store_fx *f = calloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/grace-tsdb-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	*state = f;
	return 0;
}

static int store_teardown(void **state)
{
	struct store_fx *f = *state;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static size_t points(tsdb *db, const char *name, int64_t mint, int64_t maxt, tsdb_point **pts)
{
	idx_matcher m = { IDX_EQ, "__name__", name, NULL };
	tsdb_selection sel;
	sdk_err e;
	assert_int_equal(tsdb_select(db, &m, 1, mint, maxt, false, &sel, &e), 0);
	size_t n = 0, cap = 0;
	*pts = NULL;
	if (sel.n) {
		assert_int_equal(sel.n, 1);
		assert_int_equal(tsdb_series_points(&sel.s[0], mint, maxt, pts, &n, &cap), 0);
	}
	tsdb_selection_free(&sel);
	return n;
}

static void test_store(void **state)
{
	struct store_fx *f = *state;
	tsdb_opts o = { .max_series = 3, .chunk_samples = 10 };
	sdk_err e;
	tsdb *db = tsdb_open(f->dir, "metrics", &o, &e);
	assert_non_null(db);
	lbl_set *a = L("a", "x", "1", NULL), *b = L("b", NULL);
	for (int i = 0; i < 35; i++)
		assert_int_equal(tsdb_append(db, a, 1000 * i, i), TSDB_APPENDED);
	assert_int_equal(tsdb_append(db, a, 34000, 34), TSDB_DUPLICATE);
	assert_int_equal(tsdb_append(db, a, 34000, 99), TSDB_DUPLICATE_TS);
	assert_int_equal(tsdb_append(db, a, 1000, 1), TSDB_OUT_OF_ORDER);
	assert_int_equal(tsdb_append(db, b, 0, tsdb_stale_nan()), TSDB_APPENDED);
	/* Queries see memory before any flush, and disk plus memory after. */
	tsdb_point *p;
	assert_int_equal(points(db, "a", 0, 100000, &p), 35);
	free(p);
	assert_int_equal(tsdb_flush_now(db, 40000, false, &e), 0);
	assert_int_equal(points(db, "a", 5000, 25000, &p), 21);
	assert_int_equal(p[0].t, 5000);
	assert_true(p[20].v == 25);
	free(p);
	assert_int_equal(points(db, "b", 0, 0, &p), 1);
	assert_true(tsdb_is_stale(p[0].v));
	free(p);
	tsdb_stats st;
	tsdb_get_stats(db, &st);
	assert_int_equal(st.series, 2);
	assert_int_equal(st.disk_chunks, 3);
	assert_int_equal(st.disk_samples, 30);
	assert_int_equal(st.head_samples, 6);
	/* The series limit. */
	lbl_set *c = L("c", NULL), *d = L("d", NULL);
	assert_int_equal(tsdb_append(db, c, 0, 1), TSDB_APPENDED);
	assert_int_equal(tsdb_append(db, d, 0, 1), TSDB_SERIES_LIMIT);
	assert_int_equal(tsdb_flush_now(db, 40000, false, &e), 0);
	tsdb_close(db);

	/* After a restart: everything flushed is there, appends go on. */
	db = tsdb_open(f->dir, "metrics", &o, &e);
	assert_non_null(db);
	assert_int_equal(points(db, "a", 0, 100000, &p), 35);
	for (int i = 0; i < 35; i++)
		assert_true(p[i].t == 1000 * i && p[i].v == i);
	free(p);
	assert_int_equal(tsdb_append(db, a, 34000, 34), TSDB_DUPLICATE); /* the head came back */
	assert_int_equal(tsdb_append(db, a, 34000, 1), TSDB_DUPLICATE_TS);
	assert_int_equal(tsdb_append(db, a, 20000, 1), TSDB_OUT_OF_ORDER);
	assert_int_equal(tsdb_append(db, a, 35000, 35), TSDB_APPENDED);
	char **names;
	size_t n;
	assert_int_equal(tsdb_label_names(db, &names, &n), 0);
	assert_int_equal(n, 2);
	tsdb_strings_free(names, n);
	assert_int_equal(tsdb_label_values(db, "__name__", &names, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(names[2], "c");
	tsdb_strings_free(names, n);
	assert_int_equal(tsdb_flush_now(db, 40000, false, &e), 0);
	tsdb_close(db);

	/* Retention by age removes old chunks and series with nothing left. */
	o.retention_ms = 10000;
	db = tsdb_open(f->dir, "metrics", &o, &e);
	assert_non_null(db);
	assert_int_equal(tsdb_flush_now(db, 36000, true, &e), 0);
	assert_int_equal(points(db, "a", 0, 100000, &p), 16); /* chunks ending before 26 s went */
	assert_int_equal(p[0].t, 20000);
	free(p);
	assert_int_equal(points(db, "b", 0, 100000, &p), 0);
	tsdb_get_stats(db, &st);
	assert_int_equal(st.series, 1);
	tsdb_close(db);
	db = tsdb_open(f->dir, "metrics", &o, &e);
	tsdb_get_stats(db, &st);
	assert_int_equal(st.series, 1);
	assert_int_equal(st.disk_chunks, 1);
	tsdb_close(db);
	lbl_unref(a), lbl_unref(b), lbl_unref(c), lbl_unref(d);
}

static void test_store_size_retention(void **state)
{
	struct store_fx *f = *state;
	tsdb_opts o = { .chunk_samples = 120 };
	sdk_err e;
	tsdb *db = tsdb_open(f->dir, "metrics", &o, &e);
	assert_non_null(db);
	for (int s = 0; s < 200; s++) {
		char name[16];
		snprintf(name, sizeof name, "s%d", s);
		lbl_set *ls = L(name, "k", "v", NULL);
		for (int i = 0; i < 1200; i++)
			tsdb_append(db, ls, 15000LL * i, (double)rand());
		lbl_unref(ls);
	}
	assert_int_equal(tsdb_flush_now(db, 0, false, &e), 0);
	tsdb_stats st;
	tsdb_get_stats(db, &st);
	uint64_t full = st.disk_bytes;
	assert_true(full > 1000000);
	assert_true(st.store_bytes > full);
	tsdb_close(db);
	o.retention_bytes = full / 2;
	db = tsdb_open(f->dir, "metrics", &o, &e);
	assert_int_equal(tsdb_flush_now(db, 0, true, &e), 0);
	tsdb_get_stats(db, &st);
	assert_true(st.disk_bytes <= full / 2);
	assert_true(st.disk_bytes > full / 2 - full / 10);
	assert_true(st.disk_chunks < 200 * 9);
	assert_true(st.disk_chunks > 200 * 2);
	/* The oldest went first. */
	tsdb_point *p;
	size_t n = points(db, "s7", 0, INT64_MAX / 2, &p);
	assert_true(n > 0 && n < 1200);
	assert_int_equal(p[n - 1].t, 15000LL * 1199);
	free(p);
	tsdb_close(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_labels),
		cmocka_unit_test(test_expo_text),
		cmocka_unit_test(test_expo_openmetrics),
		cmocka_unit_test(test_xorc),
		cmocka_unit_test(test_index),
		cmocka_unit_test_setup_teardown(test_store, store_setup, store_teardown),
		cmocka_unit_test_setup_teardown(test_store_size_retention, store_setup, store_teardown),
	};
	return cmocka_run_group_tests_name("metrics_store", tests, NULL, NULL);
}
