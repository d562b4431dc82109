/* Unit tests for memory table names, column declarations and the row
 * checker (src/memory/columns.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/memory/columns.h"

static mem_columns *cols_new(const char *spec_text)
{
	mem_columns *c = calloc(1, sizeof *c);
	assert_non_null(c);
	json_t *spec = spec_text ? json_loads(spec_text, 0, NULL) : NULL;
	sdk_err err = { "" };
	if (mem_columns_parse(spec, c, &err) < 0)
		fail_msg("%s: %s", spec_text, err.msg);
	json_decref(spec);
	return c;
}

static int parse_fails(const char *spec_text, const char *want)
{
	mem_columns c;
	sdk_err err = { "" };
	json_t *spec = json_loads(spec_text, 0, NULL);
	assert_non_null(spec);
	int rc = mem_columns_parse(spec, &c, &err);
	json_decref(spec);
	if (rc == 0)
		fail_msg("accepted: %s", spec_text);
	if (want && !strstr(err.msg, want))
		fail_msg("%s: error '%s' does not say '%s'", spec_text, err.msg, want);
	return 1;
}

static void test_table_names(void **state)
{
	(void)state;
	static const char *const good[] = { "a", "notes", "my_table_2", "z0" };
	static const char *const bad[] = {
		"",    "A",   "Notes",	       "1a",
		"_a",  "a-b", "a b",	       "x; DROP TABLE",
		"a'",  "a\"", "mem_tables'--", "\xc3\xa9t\xc3\xa9",
		"a.b", "a/b",
	};
	for (size_t i = 0; i < sizeof good / sizeof *good; i++)
		assert_true(mem_table_name_valid(good[i]));
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		if (mem_table_name_valid(bad[i]))
			fail_msg("accepted table name '%s'", bad[i]);
	assert_false(mem_table_name_valid(NULL));
	char name[MEM_NAME_MAX + 2];
	memset(name, 'a', sizeof name);
	name[MEM_NAME_MAX] = '\0';
	assert_true(mem_table_name_valid(name));
	name[MEM_NAME_MAX] = 'a';
	name[MEM_NAME_MAX + 1] = '\0';
	assert_false(mem_table_name_valid(name));
}

static void test_column_names(void **state)
{
	(void)state;
	assert_true(mem_column_name_valid("createdAt"));
	assert_true(mem_column_name_valid("A_1"));
	assert_false(mem_column_name_valid("_id"));
	assert_false(mem_column_name_valid("a.b"));
	assert_false(mem_column_name_valid("a'"));
	assert_false(mem_column_name_valid("a$"));
	assert_false(mem_column_name_valid(""));
}

static void test_parse(void **state)
{
	(void)state;
	mem_columns *c = cols_new("[{\"name\":\"title\",\"type\":\"text\"},"
				  "{\"name\":\"n\",\"type\":\"number\",\"required\":true},"
				  "{\"name\":\"tag\",\"type\":\"string\",\"index\":false},"
				  "{\"name\":\"ok\",\"type\":\"boolean\"},"
				  "{\"name\":\"meta\",\"type\":\"json\"}]");
	assert_int_equal(c->n, 5);
	assert_int_equal(c->c[0].type, MEM_T_TEXT);
	assert_false(c->c[0].indexed);
	assert_true(c->c[1].required);
	assert_true(c->c[1].indexed);
	assert_false(c->c[2].indexed);
	assert_false(c->c[3].indexed); /* booleans: not by default */
	assert_false(c->c[4].indexed);
	assert_true(mem_columns_has_text(c));
	assert_non_null(mem_columns_find(c, "meta"));
	assert_null(mem_columns_find(c, "Meta"));

	/* The declaration round-trips through its JSON form. */
	json_t *j = mem_columns_json(c);
	mem_columns again;
	sdk_err err = { "" };
	assert_int_equal(mem_columns_parse(j, &again, &err), 0);
	assert_memory_equal(&again, c, sizeof again);
	json_decref(j);
	free(c);

	c = cols_new(NULL);
	assert_int_equal(c->n, 0);
	assert_false(mem_columns_has_text(c));
	free(c);
}

static void test_parse_errors(void **state)
{
	(void)state;
	parse_fails("{}", "array");
	parse_fails("[1]", "not an object");
	parse_fails("[{\"name\":\"a\"}]", "type");
	parse_fails("[{\"name\":\"a\",\"type\":\"int\"}]", "type");
	parse_fails("[{\"name\":\"a; DROP TABLE x\",\"type\":\"string\"}]", "name");
	parse_fails("[{\"name\":\"_id\",\"type\":\"string\"}]", "name");
	parse_fails("[{\"name\":\"a\",\"type\":\"string\"},{\"name\":\"a\",\"type\":\"number\"}]",
		    "twice");
	parse_fails("[{\"name\":\"a\",\"type\":\"string\",\"default\":1}]", "unknown key");
	parse_fails("[{\"name\":\"a\",\"type\":\"json\",\"index\":true}]", "cannot be indexed");
	parse_fails("[{\"name\":\"a\",\"type\":\"string\",\"required\":\"yes\"}]", "boolean");

	/* Scalars are indexed by default up to the cap; asking for more fails. */
	char spec[4096];
	size_t n = (size_t)snprintf(spec, sizeof spec, "[");
	for (int i = 0; i < MEM_INDEXED_MAX + 2; i++)
		n += (size_t)snprintf(spec + n, sizeof spec - n,
				      "%s{\"name\":\"c%d\",\"type\":\"number\"}", i ? "," : "", i);
	snprintf(spec + n, sizeof spec - n, "]");
	mem_columns *c = cols_new(spec);
	int indexed = 0;
	for (size_t i = 0; i < c->n; i++)
		indexed += c->c[i].indexed;
	assert_int_equal(indexed, MEM_INDEXED_MAX);
	free(c);
	n = (size_t)snprintf(spec, sizeof spec, "[");
	for (int i = 0; i < MEM_INDEXED_MAX + 1; i++)
		n += (size_t)snprintf(spec + n, sizeof spec - n,
				      "%s{\"name\":\"c%d\",\"type\":\"string\",\"index\":true}",
				      i ? "," : "", i);
	snprintf(spec + n, sizeof spec - n, "]");
	parse_fails(spec, "indexed");

	n = (size_t)snprintf(spec, sizeof spec, "[");
	for (int i = 0; i < MEM_COLUMNS_MAX + 1; i++)
		n += (size_t)snprintf(spec + n, sizeof spec - n,
				      "%s{\"name\":\"c%d\",\"type\":\"json\"}", i ? "," : "", i);
	snprintf(spec + n, sizeof spec - n, "]");
	parse_fails(spec, "at most");
}

static int check(const mem_columns *c, const char *row_text, sdk_err *err)
{
	json_t *row = json_loads(row_text, JSON_DECODE_ANY, NULL);
	assert_non_null(row);
	int rc = mem_row_check(c, row, err);
	json_decref(row);
	return rc;
}

static void test_row_check(void **state)
{
	(void)state;
	sdk_err err = { "" };
	mem_columns *c = cols_new("[{\"name\":\"title\",\"type\":\"text\"},"
				  "{\"name\":\"n\",\"type\":\"number\",\"required\":true},"
				  "{\"name\":\"tag\",\"type\":\"string\"},"
				  "{\"name\":\"ok\",\"type\":\"boolean\"},"
				  "{\"name\":\"meta\",\"type\":\"json\"}]");
	assert_int_equal(check(c, "{\"n\":1}", &err), 0);
	assert_int_equal(check(c,
			       "{\"n\":1.5,\"title\":\"t\",\"tag\":\"x\",\"ok\":false,"
			       "\"meta\":{\"deep\":[1,{\"a\":null}]}}",
			       &err),
			 0);
	assert_int_equal(check(c, "{\"n\":1,\"tag\":null,\"meta\":null}", &err), 0);

	static const struct {
		const char *row, *why;
	} bad[] = {
		{ "[]", "object" },
		{ "\"x\"", "object" },
		{ "{\"n\":1,\"extra\":1}", "unknown column 'extra'" },
		{ "{\"n\":1,\"x; DROP TABLE t\":1}", "unknown column" },
		{ "{\"n\":\"1\"}", "number" },
		{ "{\"n\":true}", "number" },
		{ "{\"n\":1,\"title\":5}", "text" },
		{ "{\"n\":1,\"tag\":[\"a\"]}", "string" },
		{ "{\"n\":1,\"ok\":0}", "boolean" },
		{ "{\"title\":\"no n\"}", "required" },
		{ "{\"n\":null}", "required" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		err.msg[0] = '\0';
		if (check(c, bad[i].row, &err) != -1)
			fail_msg("accepted row %s", bad[i].row);
		if (!strstr(err.msg, bad[i].why))
			fail_msg("row %s: '%s' does not say '%s'", bad[i].row, err.msg, bad[i].why);
	}
	free(c);

	/* Without declared columns: any object, within the depth limit. */
	c = cols_new(NULL);
	assert_int_equal(check(c, "{\"anything\":[1,\"two\",{\"three\":3}],\"$odd key\":1}", &err),
			 0);
	assert_int_equal(check(c, "[1]", &err), -1);
	char deep[512];
	for (int d = MEM_ROW_DEPTH_MAX; d <= MEM_ROW_DEPTH_MAX + 1; d++) {
		size_t n = 0;
		for (int i = 0; i < d; i++)
			n += (size_t)snprintf(deep + n, sizeof deep - n, "{\"a\":");
		n += (size_t)snprintf(deep + n, sizeof deep - n, "1");
		for (int i = 0; i < d; i++)
			n += (size_t)snprintf(deep + n, sizeof deep - n, "}");
		assert_int_equal(check(c, deep, &err), d > MEM_ROW_DEPTH_MAX ? -1 : 0);
	}
	assert_non_null(strstr(err.msg, "nests"));
	free(c);
}

static void test_row_encode(void **state)
{
	(void)state;
	sdk_err err = { "" };
	mem_columns *c = cols_new(NULL);
	size_t len;
	bool too_large;
	json_t *row = json_pack("{s:s, s:i}", "a", "b", "n", 1);
	char *text = mem_row_encode(c, row, &len, &too_large, &err);
	assert_non_null(text);
	assert_string_equal(text, "{\"a\":\"b\",\"n\":1}");
	assert_int_equal(len, strlen(text));
	free(text);
	json_decref(row);

	/* Exactly the limit is accepted; one byte more is too large. */
	size_t fill = MEM_ROW_BYTES_MAX - strlen("{\"a\":\"\"}");
	char *s = malloc(fill + 2);
	memset(s, 'x', fill + 1);
	s[fill] = '\0';
	row = json_pack("{s:s}", "a", s);
	text = mem_row_encode(c, row, &len, &too_large, &err);
	assert_non_null(text);
	assert_int_equal(len, MEM_ROW_BYTES_MAX);
	free(text);
	json_decref(row);
	s[fill] = 'x';
	s[fill + 1] = '\0';
	row = json_pack("{s:s}", "a", s);
	assert_null(mem_row_encode(c, row, &len, &too_large, &err));
	assert_true(too_large);
	json_decref(row);
	free(s);

	row = json_pack("[i]", 1);
	assert_null(mem_row_encode(c, row, &len, &too_large, &err));
	assert_false(too_large);
	json_decref(row);
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_names), cmocka_unit_test(test_column_names),
		cmocka_unit_test(test_parse),	    cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_row_check),   cmocka_unit_test(test_row_encode),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
