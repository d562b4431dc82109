/* Unit tests for the memory filter parser and SQL builder, the order
 * parser and cursors (src/memory/filter.c). What matters most: nothing
 * from a request but a validated column name ever reaches the SQL text;
 * values only ever become bound parameters. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/memory/filter.h"

struct fx {
	mem_columns none; /* a table without declared columns */
	mem_columns cols; /* title text, n number, tag string, ok boolean, meta json */
	mem_filter f;
	sdk_buf sql;
	mem_binds b;
	sdk_err err;
};

static int setup(void **state)
{
	struct fx *x = calloc(1, sizeof *x);
	if (!x)
		return -1;
	json_t *spec = json_loads("[{\"name\":\"title\",\"type\":\"text\"},"
				  "{\"name\":\"n\",\"type\":\"number\"},"
				  "{\"name\":\"tag\",\"type\":\"string\"},"
				  "{\"name\":\"ok\",\"type\":\"boolean\"},"
				  "{\"name\":\"meta\",\"type\":\"json\"}]",
				  0, NULL);
	int rc = mem_columns_parse(spec, &x->cols, &x->err);
	json_decref(spec);
	*state = x;
	return rc;
}

static int teardown(void **state)
{
	struct fx *x = *state;
	mem_filter_clear(&x->f);
	sdk_buf_free(&x->sql);
	free(x);
	return 0;
}

/* Parses `where` and builds its SQL into x->sql / x->b. */
static int build(struct fx *x, const mem_columns *cols, const char *where)
{
	mem_filter_clear(&x->f);
	sdk_buf_reset(&x->sql);
	x->b.n = 0;
	x->err.msg[0] = '\0';
	if (mem_filter_parse(where, cols, &x->f, &x->err) < 0)
		return -1;
	return mem_filter_sql(&x->f, &x->sql, &x->b);
}

static const char *sql(struct fx *x) { return x->sql.p ? x->sql.p : ""; }

static void test_empty(void **state)
{
	struct fx *x = *state;
	assert_int_equal(build(x, &x->cols, NULL), 0);
	assert_int_equal(x->f.n, 0);
	assert_int_equal(build(x, &x->cols, ""), 0);
	assert_int_equal(build(x, &x->cols, "{}"), 0);
	assert_string_equal(sql(x), "");
}

static void test_equality(void **state)
{
	struct fx *x = *state;
	assert_int_equal(build(x, &x->cols, "{\"tag\":\"red\"}"), 0);
	assert_int_equal(x->f.n, 1);
	assert_int_equal(x->f.t[0].op, MEM_OP_EQ);
	assert_string_equal(sql(x), " AND (json_extract(r.data,'$.tag') = ?)");
	assert_int_equal(x->b.n, 1);
	assert_string_equal(json_string_value(x->b.v[0]), "red");

	assert_int_equal(build(x, &x->cols, "{\"n\":3, \"ok\":true}"), 0);
	assert_int_equal(x->f.n, 2);
	assert_string_equal(sql(x), " AND (json_extract(r.data,'$.n') = ?)"
				    " AND (json_extract(r.data,'$.ok') = ?)");
	assert_true(json_is_true(x->b.v[1]));

	assert_int_equal(build(x, &x->cols, "{\"tag\":null}"), 0);
	assert_string_equal(sql(x), " AND (json_extract(r.data,'$.tag') IS NULL)");
	assert_int_equal(x->b.n, 0);
}

static void test_operators(void **state)
{
	struct fx *x = *state;
	assert_int_equal(build(x, &x->cols, "{\"n\":{\"gte\":1,\"lt\":10}}"), 0);
	assert_int_equal(x->f.n, 2);
	assert_string_equal(sql(x), " AND (json_extract(r.data,'$.n') >= ?)"
				    " AND (json_extract(r.data,'$.n') < ?)");
	assert_int_equal(x->b.n, 2);

	assert_int_equal(build(x, &x->cols, "{\"tag\":{\"in\":[\"a\",\"b\",\"c\"]}}"), 0);
	assert_string_equal(sql(x), " AND (json_extract(r.data,'$.tag') IN (?,?,?))");
	assert_int_equal(x->b.n, 3);

	assert_int_equal(build(x, &x->cols, "{\"tag\":{\"ne\":\"a\"}}"), 0);
	assert_string_equal(sql(x), " AND (json_extract(r.data,'$.tag') IS NOT ?)");

	assert_int_equal(build(x, &x->cols, "{\"title\":{\"contains\":\"hel\"}}"), 0);
	assert_string_equal(sql(x), " AND (instr(json_extract(r.data,'$.title'), ?) > 0)");

	assert_int_equal(build(x, &x->cols, "{\"meta\":{\"exists\":true}}"), 0);
	assert_string_equal(sql(x), " AND (json_extract(r.data,'$.meta') IS NOT NULL)");

	assert_int_equal(build(x, &x->cols, "{\"_id\":{\"gt\":5}}"), 0);
	assert_string_equal(sql(x), " AND (r.id > ?)");
	assert_int_equal(json_integer_value(x->b.v[0]), 5);
}

static void test_undeclared(void **state)
{
	struct fx *x = *state;
	/* Without declared columns any identifier goes, and comparisons are
	 * restricted to values of the same JSON kind. */
	assert_int_equal(build(x, &x->none, "{\"Anything_1\":true}"), 0);
	assert_string_equal(sql(x),
			    " AND ((json_extract(r.data,'$.Anything_1') IS ? AND "
			    "coalesce(json_type(r.data,'$.Anything_1') IN ('true','false'), 0)))");
	assert_int_equal(build(x, &x->none, "{\"a\":{\"gt\":2}}"), 0);
	assert_string_equal(sql(x), " AND (json_extract(r.data,'$.a') > ? AND "
				    "json_type(r.data,'$.a') IN ('integer','real'))");
	assert_int_equal(build(x, &x->none, "{\"a\":{\"contains\":\"x\"}}"), 0);
	assert_int_equal(x->b.n, 2);
}

/* Injection-shaped names are refused; injection-shaped values are data. */
static void test_injection(void **state)
{
	struct fx *x = *state;
	static const char *const bad_names[] = {
		"{\"x; DROP TABLE mem_tables\":1}",
		"{\"a') OR 1=1 --\":1}",
		"{\"a.b\":1}",
		"{\"a[0]\":1}",
		"{\"$where\":\"1\"}",
		"{\"\":1}",
		"{\"_rowid_\":1}",
		"{\"1abc\":1}",
	};
	for (size_t i = 0; i < sizeof bad_names / sizeof *bad_names; i++) {
		assert_int_equal(build(x, &x->none, bad_names[i]), -1);
		assert_non_null(strstr(x->err.msg, "not a column name"));
	}
	/* A MongoDB-style operator is an unknown operator. */
	assert_int_equal(build(x, &x->none, "{\"a\":{\"$where\":\"sleep(1)\"}}"), -1);
	assert_non_null(strstr(x->err.msg, "unknown operator"));
	assert_int_equal(build(x, &x->none, "{\"a\":{\"$ne\":null}}"), -1);

	/* A value never reaches the SQL text. */
	const char *evil = "' OR 1=1 --";
	char where[128];
	snprintf(where, sizeof where, "{\"tag\":\"%s\"}", evil);
	assert_int_equal(build(x, &x->cols, where), 0);
	assert_null(strstr(sql(x), "OR 1=1"));
	assert_null(strchr(sql(x) + strlen(" AND (json_extract(r.data,'$.tag')"), '\''));
	assert_string_equal(json_string_value(x->b.v[0]), evil);

	snprintf(where, sizeof where, "{\"a\":{\"in\":[\"%s\", \"); DROP TABLE x; --\"]}}", evil);
	assert_int_equal(build(x, &x->none, where), 0);
	assert_null(strstr(sql(x), "DROP"));
	assert_null(strstr(sql(x), "1=1"));
}

static void test_declared_checks(void **state)
{
	struct fx *x = *state;
	assert_int_equal(build(x, &x->cols, "{\"nope\":1}"), -1);
	assert_non_null(strstr(x->err.msg, "no column 'nope'"));
	assert_int_equal(build(x, &x->cols, "{\"n\":\"3\"}"), -1);
	assert_non_null(strstr(x->err.msg, "numbers"));
	assert_int_equal(build(x, &x->cols, "{\"tag\":3}"), -1);
	assert_int_equal(build(x, &x->cols, "{\"ok\":{\"gt\":true}}"), -1);
	assert_int_equal(build(x, &x->cols, "{\"ok\":1}"), -1);
	assert_int_equal(build(x, &x->cols, "{\"n\":{\"contains\":1}}"), -1);
	assert_int_equal(build(x, &x->cols, "{\"meta\":{\"gt\":1}}"), -1);
	assert_int_equal(build(x, &x->cols, "{\"n\":{\"gt\":null}}"), -1);
	assert_int_equal(build(x, &x->cols, "{\"n\":{\"exists\":1}}"), -1);
	assert_int_equal(build(x, &x->cols, "{\"_id\":\"1\"}"), -1);
	assert_int_equal(build(x, &x->cols, "{\"_id\":1.5}"), -1);
}

static void test_malformed(void **state)
{
	struct fx *x = *state;
	static const char *const bad[] = {
		"[1,2]", "\"a\"", "1", "{", "{\"a\":1,\"a\":2}", "{\"n\":[1,2]}", "{\"n\":{}}",
		"{\"n\":{\"in\":[]}}", "{\"n\":{\"in\":5}}", "{\"n\":{\"in\":[null]}}",
		"{\"meta\":{\"contains\":{\"a\":1}}}", "{\"tag\":{\"in\":[[\"a\"]]}}", "null",
		"{\"n\":1} trailing",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		if (build(x, &x->cols, bad[i]) != -1)
			fail_msg("accepted: %s", bad[i]);
		assert_true(x->err.msg[0] != '\0');
	}
}

static void test_limits(void **state)
{
	struct fx *x = *state;
	char *big = malloc(MEM_WHERE_BYTES_MAX + 64);
	assert_non_null(big);
	/* Too many conditions. */
	size_t n = (size_t)snprintf(big, 64, "{");
	for (int i = 0; i <= MEM_WHERE_TERMS_MAX; i++)
		n += (size_t)snprintf(big + n, 64, "%s\"c%d\":1", i ? "," : "", i);
	snprintf(big + n, 8, "}");
	assert_int_equal(build(x, &x->none, big), -1);
	assert_non_null(strstr(x->err.msg, "conditions"));
	/* Too many values. */
	n = (size_t)snprintf(big, 64, "{\"a\":{\"in\":[");
	for (int i = 0; i <= MEM_WHERE_VALUES_MAX; i++)
		n += (size_t)snprintf(big + n, 16, "%s%d", i ? "," : "", i);
	snprintf(big + n, 8, "]}}");
	assert_int_equal(build(x, &x->none, big), -1);
	assert_non_null(strstr(x->err.msg, "values"));
	/* Too long. */
	memset(big, ' ', MEM_WHERE_BYTES_MAX + 1);
	big[0] = '{';
	big[MEM_WHERE_BYTES_MAX] = '}';
	big[MEM_WHERE_BYTES_MAX + 1] = '\0';
	assert_int_equal(build(x, &x->none, big), -1);
	assert_non_null(strstr(x->err.msg, "bytes"));
	/* A string value too long. */
	n = (size_t)snprintf(big, 64, "{\"a\":\"");
	memset(big + n, 'x', MEM_VALUE_BYTES_MAX + 1);
	snprintf(big + n + MEM_VALUE_BYTES_MAX + 1, 8, "\"}");
	assert_int_equal(build(x, &x->none, big), -1);
	free(big);
}

static void test_order(void **state)
{
	struct fx *x = *state;
	mem_order o;
	mem_sql_names plain = { "r.id", NULL }, fts = { "mf_1.rowid", "mf_1.rank" };
	assert_int_equal(mem_order_parse(NULL, &x->cols, false, &o, &x->err), 0);
	assert_int_equal(o.kind, MEM_ORDER_ID);
	assert_string_equal(o.spec, "_id");
	assert_int_equal(mem_order_parse(NULL, &x->cols, true, &o, &x->err), 0);
	assert_int_equal(o.kind, MEM_ORDER_RANK);
	assert_int_equal(mem_order_parse("-n", &x->cols, false, &o, &x->err), 0);
	assert_true(o.desc);
	assert_string_equal(o.spec, "-n");
	sdk_buf_reset(&x->sql);
	mem_order_sql(&o, &plain, &x->sql);
	assert_string_equal(sql(x), " ORDER BY json_extract(r.data,'$.n') DESC, r.id DESC");
	assert_int_equal(mem_order_parse("-_id", &x->cols, true, &o, &x->err), 0);
	sdk_buf_reset(&x->sql);
	mem_order_sql(&o, &fts, &x->sql);
	assert_string_equal(sql(x), " ORDER BY mf_1.rowid DESC");

	static const char *const bad[] = { "_rank", "-_rank", "nope", "title", "meta",
					   "n; DROP TABLE x", "n DESC", "--n", "-", "" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad - 1; i++)
		if (mem_order_parse(bad[i], &x->cols, false, &o, &x->err) != -1)
			fail_msg("accepted order=%s", bad[i]);
	assert_int_equal(mem_order_parse("Any_Col", &x->none, false, &o, &x->err), 0);
	assert_int_equal(mem_order_parse("a'b", &x->none, false, &o, &x->err), -1);
}

static void test_cursor(void **state)
{
	struct fx *x = *state;
	mem_order o, other;
	mem_cursor c;
	assert_int_equal(mem_order_parse("-tag", &x->cols, false, &o, &x->err), 0);
	assert_int_equal(mem_order_parse("tag", &x->cols, false, &other, &x->err), 0);
	json_t *key = json_string("it's \"quoted\"");
	char *cur = mem_cursor_make(&o, key, 42);
	assert_non_null(cur);
	for (const char *p = cur; *p; p++) /* URL-safe as it is */
		assert_non_null(strchr(
			"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *p));
	assert_int_equal(mem_cursor_parse(cur, &o, &c, &x->err), 0);
	assert_true(c.set);
	assert_true(json_equal(c.key, key));
	assert_int_equal(json_integer_value(c.id), 42);
	assert_int_equal(mem_keyset_passes(&o, &c), 2); /* after a value, descending: then NULLs */

	mem_sql_names names = { "r.id", NULL };
	sdk_buf_reset(&x->sql);
	x->b.n = 0;
	assert_int_equal(mem_keyset_sql(&o, &c, 0, &names, &x->sql, &x->b), 0);
	assert_string_equal(sql(x), " AND json_extract(r.data,'$.tag') <= ? AND "
				    "(json_extract(r.data,'$.tag') < ? OR r.id < ?)");
	assert_int_equal(x->b.n, 3);
	sdk_buf_reset(&x->sql);
	assert_int_equal(mem_keyset_sql(&o, &c, 1, &names, &x->sql, &x->b), 0);
	assert_string_equal(sql(x), " AND json_extract(r.data,'$.tag') IS NULL");
	mem_cursor_clear(&c);

	/* Made for another order. */
	assert_int_equal(mem_cursor_parse(cur, &other, &c, &x->err), -1);
	mem_cursor_clear(&c);
	free(cur);
	json_decref(key);

	/* A NULL key, ascending: the rest of the NULLs, then the values. */
	cur = mem_cursor_make(&other, NULL, 7);
	assert_int_equal(mem_cursor_parse(cur, &other, &c, &x->err), 0);
	assert_true(json_is_null(c.key));
	assert_int_equal(mem_keyset_passes(&other, &c), 2);
	mem_cursor_clear(&c);
	free(cur);

	/* Garbage and forgeries. */
	static const char *const bad[] = { "!!!", "e30", "abc", "eyJvIjoidGFnIn0",
					   "eyJvIjoidGFnIiwiayI6W10sImkiOjF9" /* k: [] */ };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		if (mem_cursor_parse(bad[i], &other, &c, &x->err) != -1)
			fail_msg("accepted cursor %s", bad[i]);
		mem_cursor_clear(&c);
	}
	assert_int_equal(mem_cursor_parse("", &other, &c, &x->err), 0);
	assert_false(c.set);
	assert_int_equal(mem_keyset_passes(&other, &c), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_equality, setup, teardown),
		cmocka_unit_test_setup_teardown(test_operators, setup, teardown),
		cmocka_unit_test_setup_teardown(test_undeclared, setup, teardown),
		cmocka_unit_test_setup_teardown(test_injection, setup, teardown),
		cmocka_unit_test_setup_teardown(test_declared_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cursor, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
