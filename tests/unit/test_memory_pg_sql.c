/* Unit tests for the PostgreSQL engine's SQL text of filters, orders and
 * keysets (src/serve/memory/pg_sql.c): values only ever as parameters,
 * declared columns through the typed keys their indexes are built on. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/memory/pg_sql.h"

static mem_columns cols;

static int setup(void **state)
{
	(void)state;
	json_t *spec = json_loads("[{\"name\":\"title\",\"type\":\"text\"},"
				  "{\"name\":\"n\",\"type\":\"number\"},"
				  "{\"name\":\"tag\",\"type\":\"string\"},"
				  "{\"name\":\"ok\",\"type\":\"boolean\"},"
				  "{\"name\":\"meta\",\"type\":\"json\"}]",
				  0, NULL);
	sdk_err err = { "" };
	int rc = mem_columns_parse(spec, &cols, &err);
	json_decref(spec);
	return rc;
}

/* The SQL of `where` on `c` (a new buffer) and its parameters. */
static void where_sql(const mem_columns *c, const char *where, sdk_buf *sql, mem_pg_params *p)
{
	mem_filter f;
	sdk_err err = { "" };
	if (mem_filter_parse(where, c, &f, &err) < 0)
		fail_msg("%s: %s", where, err.msg);
	mem_pg_filter_sql(&f, sql, p);
	assert_false(sql->oom || p->oom);
	mem_filter_clear(&f);
}

static void test_values_are_parameters(void **state)
{
	(void)state;
	mem_columns none = { 0 };
	sdk_buf sql = { 0 };
	mem_pg_params p = { 0 };
	/* A name is refused before any SQL (filter.c), so only values remain. */
	mem_filter f;
	sdk_err err = { "" };
	assert_int_equal(mem_filter_parse("{\"a'); DROP TABLE x; --\":1}", &none, &f, &err), -1);
	mem_filter_clear(&f);
	where_sql(&none, "{\"name\":\"x' OR '1'='1\",\"n\":{\"in\":[\"a'b\",2]}}", &sql, &p);
	assert_null(strstr(sql.p, "OR '1'"));
	assert_null(strstr(sql.p, "a'b"));
	assert_int_equal(p.n, 3);
	assert_string_equal(p.v[0], "\"x' OR '1'='1\""); /* JSON text, for ::jsonb */
	assert_string_equal(p.v[1], "\"a'b\"");
	assert_string_equal(p.v[2], "2");
	assert_non_null(strstr(sql.p, "(r.data->'name') = $1::jsonb"));
	assert_non_null(strstr(sql.p, "(r.data->'n') IN ($2::jsonb, $3::jsonb)"));
	sdk_buf_free(&sql);
	mem_pg_params_free(&p);
}

static void test_typed_keys(void **state)
{
	(void)state;
	sdk_buf sql = { 0 };
	mem_pg_params p = { 0 };
	where_sql(&cols,
		  "{\"n\":{\"gte\":1.5},\"tag\":{\"lt\":\"b\"},\"ok\":true,"
		  "\"title\":{\"contains\":\"dr\"},\"meta\":{\"contains\":1},\"_id\":{\"ne\":3}}",
		  &sql, &p);
	const char *want[] = {
		"(((r.data->>'n')::numeric) >= $1::numeric)",
		"(((r.data->>'tag') COLLATE \"C\") < $2::text)",
		"(((r.data->>'ok')::boolean) = $3::boolean)",
		"(strpos((r.data->>'title'), $4::text) > 0)",
		"jsonb_typeof(r.data->'meta') = 'array' AND (r.data->'meta') @> jsonb_build_array($5::jsonb)",
		"(r.id IS DISTINCT FROM $6::bigint)",
	};
	for (size_t i = 0; i < sizeof want / sizeof *want; i++)
		if (!strstr(sql.p, want[i]))
			fail_msg("no %s in %s", want[i], sql.p);
	assert_string_equal(p.v[1], "b"); /* text: the string's bytes */
	assert_string_equal(p.v[2], "true");
	sdk_buf_free(&sql);
	mem_pg_params_free(&p);
	/* Missing or null: one test, ->> is NULL for both. */
	where_sql(&cols, "{\"tag\":null,\"n\":{\"exists\":true}}", &sql, &p);
	assert_string_equal(sql.p, " AND ((r.data->>'tag') IS NULL) AND ((r.data->>'n') IS NOT NULL)");
	assert_int_equal(p.n, 0);
	sdk_buf_free(&sql);
	mem_pg_params_free(&p);
}

static void test_order_and_keyset(void **state)
{
	(void)state;
	mem_order o;
	sdk_err err = { "" };
	assert_int_equal(mem_order_parse("-n", &cols, false, &o, &err), 0);
	sdk_buf sql = { 0 };
	mem_pg_order_sql(&o, MEM_T_NUMBER, &sql);
	assert_string_equal(sql.p, " ORDER BY ((r.data->>'n')::numeric) DESC NULLS LAST, r.id DESC");
	sdk_buf_free(&sql);
	/* After a value, descending: the rest of the values, then the missing. */
	json_t *key = json_real(2.5);
	char *cur = mem_cursor_make(&o, key, 7);
	json_decref(key);
	mem_cursor c;
	assert_int_equal(mem_cursor_parse(cur, &o, &c, &err), 0);
	free(cur);
	assert_int_equal(mem_keyset_passes(&o, &c), 2);
	mem_pg_params p = { 0 };
	mem_pg_keyset_sql(&o, MEM_T_NUMBER, &c, 0, &sql, &p);
	assert_string_equal(sql.p, " AND ((r.data->>'n')::numeric) <= $1::numeric AND"
				   " (((r.data->>'n')::numeric) < $2::numeric OR r.id < $3::bigint)");
	assert_string_equal(p.v[0], "2.5");
	assert_string_equal(p.v[2], "7");
	sdk_buf_free(&sql);
	mem_pg_params_free(&p);
	mem_pg_keyset_sql(&o, MEM_T_NUMBER, &c, 1, &sql, &p);
	assert_string_equal(sql.p, " AND ((r.data->>'n')::numeric) IS NULL");
	sdk_buf_free(&sql);
	mem_pg_params_free(&p);
	mem_cursor_clear(&c);
	/* An undeclared column's key read back: kind, number, text. */
	mem_columns none = { 0 };
	assert_int_equal(mem_order_parse("x", &none, false, &o, &err), 0);
	const char *num[3] = { "1", "3.25", "" }, *str[3] = { "2", "0", "abc" },
		   *missing[3] = { NULL, "0", "" };
	json_t *k = mem_pg_key_json(&o, MEM_T_ANY, num);
	assert_true(json_is_real(k) && json_real_value(k) == 3.25);
	json_decref(k);
	k = mem_pg_key_json(&o, MEM_T_ANY, str);
	assert_string_equal(json_string_value(k), "abc");
	json_decref(k);
	k = mem_pg_key_json(&o, MEM_T_ANY, missing);
	assert_true(json_is_null(k));
	json_decref(k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_values_are_parameters),
		cmocka_unit_test(test_typed_keys),
		cmocka_unit_test(test_order_and_keyset),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
