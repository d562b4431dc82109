/* Unit tests for the hot-path string helpers (src/sdk/str.h): each must
 * give what snprintf gives, cut the same way, with the same return. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "sdk/str.h"

static void strjoin_is_snprintf_of_the_pieces(void **state)
{
	(void)state;
	const char *a = "forward ", *b = "librarian", *c = "\x1f";
	for (size_t size = 0; size <= 24; size++) {
		char got[32], want[32];
		memset(got, 'x', sizeof got);
		memset(want, 'x', sizeof want);
		size_t n = SDK_STRJOIN(got, size, a, b, c, "");
		int m = snprintf(want, size, "%s%s%s%s", a, b, c, "");
		assert_int_equal(n, (size_t)m);
		assert_memory_equal(got, want, sizeof got); /* nothing written past size */
	}
	char one[8];
	assert_int_equal(SDK_STRJOIN(one, sizeof one, ""), 0);
	assert_string_equal(one, "");
}

static void strcpy_cuts_like_strlcpy(void **state)
{
	(void)state;
	char d[4];
	assert_int_equal(sdk_strcpy(d, sizeof d, "abcdef"), 6);
	assert_string_equal(d, "abc");
	assert_int_equal(sdk_strcpy(d, sizeof d, "ab"), 2);
	assert_string_equal(d, "ab");
}

static void int_text_is_decimal(void **state)
{
	(void)state;
	const int v[] = { 0, 7, -7, 10, 100, -100, 2147483647, INT_MIN };
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		char buf[12], want[16];
		snprintf(want, sizeof want, "%d", v[i]);
		assert_string_equal(sdk_int_text(v[i], buf), want);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(strjoin_is_snprintf_of_the_pieces),
		cmocka_unit_test(strcpy_cuts_like_strlcpy),
		cmocka_unit_test(int_text_is_decimal),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
