/* Unit tests for the JSON text writer (src/sdk/jsonw.c): what it writes is
 * valid JSON (jansson reads it back, and refuses invalid UTF-8) holding the
 * same string, with bytes outside valid UTF-8 replaced by U+FFFD; and for
 * valid values it is json_dumps(JSON_COMPACT)'s text, byte for byte (on
 * 2,000 random trees and every escape). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
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

/* sdk_jsonw_value against json_dumps(JSON_COMPACT) on one tree; for a
 * string, sdk_jsonw_str (NUL-terminated) too. */
static void same_as_dumps(json_t *v)
{
	char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	sdk_buf got = { 0 };
	assert_int_equal(sdk_jsonw_value(&got, v), 0);
	assert_false(got.oom);
	if (strlen(want) != got.len || memcmp(want, got.p, got.len))
		fail_msg("json_dumps: %s\nours:       %.*s", want, (int)got.len, got.p);
	if (json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v)) {
		sdk_buf_reset(&got);
		sdk_jsonw_str(&got, json_string_value(v));
		assert_int_equal(got.len, strlen(want));
		assert_memory_equal(got.p, want, got.len);
	}
	free(want);
	sdk_buf_free(&got);
	json_decref(v);
}

static const char *const odd_strings[] = {
	"", "plain", "quote \" and \\ backslash", "slash / and </script>", "tab\tnl\ncr\rbs\bff\f",
	"\x01\x02\x1f\x7f", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "\xe2\x80\xa8 line sep",
	"{\"not\":\"json\"}", "\\u0041",
};

/* A random tree of depth <= d, from a small LCG (the same every run). */
static json_t *random_tree(unsigned *seed, int d)
{
	*seed = *seed * 1103515245u + 12345u;
	unsigned r = (*seed >> 16) % (d > 0 ? 9 : 7);
	static const double reals[] = { 0.1, -0.0, 3.0, 1e300, 1.5e-7, 123456789012345678.0,
					-2.5, 1.0 / 3.0 };
	switch (r) {
	case 0: return json_string(odd_strings[*seed % (sizeof odd_strings / sizeof *odd_strings)]);
	case 1: return json_integer((json_int_t)(*seed * 2654435761u) - 1000000000);
	case 2: return json_real(reals[*seed % 8]);
	case 3: return json_true();
	case 4: return json_false();
	case 5: return json_null();
	case 6: return json_integer(*seed % 2 ? INT64_MAX : INT64_MIN);
	case 7: {
		json_t *a = json_array();
		for (unsigned i = 0; i < *seed % 5; i++)
			json_array_append_new(a, random_tree(seed, d - 1));
		return a;
	}
	default: {
		json_t *o = json_object();
		for (unsigned i = 0; i < *seed % 5; i++) {
			char k[64];
			snprintf(k, sizeof k, "%s%u",
				 odd_strings[(*seed >> 3) % (sizeof odd_strings / sizeof *odd_strings)], i);
			json_object_set_new(o, k, random_tree(seed, d - 1));
		}
		return o;
	}
	}
}

static void same_bytes_as_json_dumps(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof odd_strings / sizeof *odd_strings; i++)
		same_as_dumps(json_string(odd_strings[i]));
	/* every control character, and a NUL inside a string */
	char all[40];
	for (int i = 1; i < 0x20; i++)
		all[i - 1] = (char)i;
	all[31] = '\0';
	same_as_dumps(json_string(all));
	same_as_dumps(json_stringn("a\0b", 3));
	json_t *o = json_object();
	json_object_setn_new(o, "k\0ey", 4, json_integer(1));
	same_as_dumps(o);
	static const json_int_t ints[] = { 0, -1, 42, INT64_MAX, INT64_MIN, 1700000000000000000LL };
	for (size_t i = 0; i < sizeof ints / sizeof *ints; i++)
		same_as_dumps(json_integer(ints[i]));
	static const double reals[] = { 0.0, -0.0, 0.1, 1.5, 3.0, 1e300, -1e-300, 5e-324,
					1.7976931348623157e308, 123456789012345678.0, 1.0 / 3.0,
					100.0, 1e21, 1e22 };
	for (size_t i = 0; i < sizeof reals / sizeof *reals; i++)
		same_as_dumps(json_real(reals[i]));
	same_as_dumps(json_object());
	same_as_dumps(json_array());
	same_as_dumps(json_pack("{s:[{}, [], n, b, b], s:{s:{s:[]}}}", "a", 1, 0, "b", "c", "d"));
	unsigned seed = 16;
	for (int i = 0; i < 2000; i++)
		same_as_dumps(random_tree(&seed, 5));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(valid_strings_come_back_unchanged),
		cmocka_unit_test(invalid_utf8_becomes_replacement),
		cmocka_unit_test(integers),
		cmocka_unit_test(same_bytes_as_json_dumps),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
