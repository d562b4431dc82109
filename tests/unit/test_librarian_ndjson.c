/* The bulk loader's plain-line parser (ndjson.h): whatever it accepts,
 * jansson (JSON_REJECT_DUPLICATES) parses to the same value; what it
 * refuses is left to jansson; the usual bulk line is accepted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "kernels/librarian/ndjson.h"

#include <stdlib.h>
#include <string.h>

/* 1: the plain parser took it (and agrees with jansson), 0: it left it. */
static int same_as_jansson(const char *s, size_t n)
{
	json_t *mine = lib_ndjson_plain(s, n);
	json_error_t je;
	json_t *ref = json_loadb(s, n, JSON_REJECT_DUPLICATES, &je);
	if (mine) {
		assert_non_null(ref);
		assert_true(json_equal(mine, ref));
	}
	int took = mine != NULL;
	json_decref(mine);
	json_decref(ref);
	return took;
}

static int same(const char *s) { return same_as_jansson(s, strlen(s)); }

static void test_usual_lines_are_plain(void **state)
{
	(void)state;
	assert_int_equal(same("{\"title\":\"a b\",\"body\":\"c d e\",\"tags\":[\"x\",\"y\"]}"), 1);
	assert_int_equal(same(" { \"title\" : \"a\" , \"body\" : \"b\" , \"tags\" : [ ] ,"
			      " \"source\" : \"s://1\" } \r"), 1);
	assert_int_equal(same("{}"), 1);
	assert_int_equal(same("{\"title\":\"caf\xc3\xa9 \xe2\x82\xac\",\"body\":\"\"}"), 1);
}

static void test_the_rest_is_left_to_jansson(void **state)
{
	(void)state;
	static const char *const left[] = {
		"{\"title\":\"a\\\"b\",\"body\":\"c\"}", /* an escape */
		"{\"title\":\"a\\u0000\",\"body\":\"c\"}",
		"{\"title\":5,\"body\":\"c\"}",		/* a number */
		"{\"title\":\"a\",\"title\":\"b\"}",	/* a duplicate key */
		"{\"title\":\"a\",}",			/* a trailing comma */
		"{\"title\":\"a\"} x",			/* trailing text */
		"{\"title\":\"a\"",			/* unclosed */
		"[\"a\"]",				/* not an object */
		"{\"tags\":[\"a\",]}",
		"{\"tags\":[\"a\" \"b\"]}",
		"{\"tags\":[[\"a\"]]}",
		"{\"title\":\"\xc0\xaf\"}",		/* overlong UTF-8 */
		"{\"title\":\"\xed\xa0\x80\"}",		/* a surrogate */
		"{\"title\":\"a\tb\"}",			/* a control character */
		"{\"title\":null}",
		"{\"title\" \"a\"}",
		"",
		"   ",
	};
	for (size_t i = 0; i < sizeof left / sizeof *left; i++)
		assert_int_equal(same(left[i]), 0);
	/* A NUL byte inside the line. */
	assert_int_equal(same_as_jansson("{\"title\":\"a\0b\"}", 15), 0);
}

/* Random lines from a small alphabet of JSON pieces: agreement whenever
 * the plain parser accepts. */
static void test_random_agree(void **state)
{
	(void)state;
	static const char *const piece[] = {
		"{", "}", "[", "]", ",", ":", " ", "\"title\"", "\"body\"", "\"tags\"", "\"a b\"",
		"\"\"", "\"x\\ny\"", "1", "null", "\"\xc3\xa9\"", "\"\xff\"", "\n", "\"t",
	};
	unsigned seed = 7, took = 0;
	char line[512];
	for (int round = 0; round < 200000; round++) {
		size_t n = 0;
		unsigned parts = 1 + rand_r(&seed) % 14;
		/* Start most lines as an object of pairs, so that some are valid. */
		n += (size_t)snprintf(line + n, sizeof line - n, "{");
		for (unsigned p = 0; p < parts && n < sizeof line - 32; p++) {
			const char *x = piece[rand_r(&seed) % (sizeof piece / sizeof *piece)];
			if (rand_r(&seed) % 3)
				x = p % 4 == 0 ? "\"title\"" : p % 4 == 1 ? ":" : p % 4 == 2 ? "\"v w\"" : ",";
			n += (size_t)snprintf(line + n, sizeof line - n, "%s", x);
		}
		if (rand_r(&seed) % 2)
			n += (size_t)snprintf(line + n, sizeof line - n, "}");
		took += (unsigned)same_as_jansson(line, n);
	}
	assert_true(took > 1000); /* the plain path was exercised */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_usual_lines_are_plain),
		cmocka_unit_test(test_the_rest_is_left_to_jansson),
		cmocka_unit_test(test_random_agree),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
