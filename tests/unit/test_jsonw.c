/* Unit tests for the JSON text writer (src/sdk/jsonw.c): what it writes is
 * valid JSON (jansson reads it back, and refuses invalid UTF-8) holding the
 * same string, with bytes outside valid UTF-8 replaced by U+FFFD. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "sdk/jsonw.h"

/* sdk_jsonw_str(in), read back by jansson. */
static char *round_trip(const char *in)
{
	sdk_buf b = { 0 };
	sdk_jsonw_str(&b, in);
	assert_false(b.oom);
	json_error_t e;
	json_t *j = json_loadb(b.p, b.len, JSON_DECODE_ANY, &e);
	if (!j)
		fail_msg("not JSON for \"%s\": %s", in, e.text);
	char *out = strdup(json_string_value(j));
	json_decref(j);
	sdk_buf_free(&b);
	return out;
}

static void valid_strings_come_back_unchanged(void **state)
{
	(void)state;
	static const char *const in[] = {
		"", "plain", "quote \" and backslash \\", "tab\there, newline\n, CR\r",
		"\x01\x1f\x7f", "caf\xc3\xa9", "\xe2\x82\xac euro", "\xf0\x9f\x98\x80 emoji",
		"/librarian/documents/:id", "\"first and last\\", "\x01", "x\x1fy\x7f\xc3\xa9\"",
	};
	for (size_t i = 0; i < sizeof in / sizeof *in; i++) {
		char *out = round_trip(in[i]);
		assert_string_equal(out, in[i]);
		free(out);
	}
}

static void invalid_utf8_becomes_replacement(void **state)
{
	(void)state;
	static const struct {
		const char *in, *want;
	} cases[] = {
		{ "a\xff" "b", "a\xef\xbf\xbd" "b" },	      /* never a UTF-8 byte */
		{ "\xc3", "\xef\xbf\xbd" },		      /* cut short at the end */
		{ "\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd" }, /* overlong */
		{ "\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" }, /* a surrogate */
		{ "\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" }, /* > U+10FFFF */
		{ "\xe2\x82", "\xef\xbf\xbd\xef\xbf\xbd" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		char *out = round_trip(cases[i].in);
		assert_string_equal(out, cases[i].want);
		free(out);
	}
}

static void integers(void **state)
{
	(void)state;
	sdk_buf b = { 0 };
	sdk_jsonw_int(&b, 0, 0);
	sdk_jsonw_raw(&b, ",");
	sdk_jsonw_int(&b, -42, 0);
	sdk_jsonw_raw(&b, ",");
	sdk_jsonw_int(&b, INT64_MIN, 1);
	sdk_jsonw_raw(&b, ",");
	sdk_jsonw_int(&b, 1796485000123456789, 1);
	static const char want[] = "0,-42,\"-9223372036854775808\",\"1796485000123456789\"";
	assert_int_equal(b.len, sizeof want - 1);
	assert_memory_equal(b.p, want, sizeof want - 1);
	sdk_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(valid_strings_come_back_unchanged),
		cmocka_unit_test(invalid_utf8_becomes_replacement),
		cmocka_unit_test(integers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
