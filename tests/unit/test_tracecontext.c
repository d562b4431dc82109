/* Unit tests for W3C Trace Context parsing (src/sdk/tracecontext.c), on
 * the cases of the specification's test suite (w3c/trace-context,
 * test/test.py), written here as our own table. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "sdk/tracecontext.h"

#define N(t) (sizeof(t) / sizeof((t)[0]))
#define TID "12345678901234567890123456789012"
#define PID "1234567890123456"

static void test_traceparent_valid(void **state)
{
	(void)state;
	static const char *const ok[] = {
		"00-" TID "-" PID "-01",
		"00-" TID "-" PID "-00",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		/* OWS around the value */
		" 00-" TID "-" PID "-01", "\t00-" TID "-" PID "-01", "00-" TID "-" PID "-01 ",
		"00-" TID "-" PID "-01\t", "\t 00-" TID "-" PID "-01 \t",
		/* a future version, alone or with more fields after a '-' */
		"cc-" TID "-" PID "-01", "cc-" TID "-" PID "-01-what-the-future-will-be-like",
		"01-" TID "-" PID "-09",
		/* unknown flags are kept, not refused */
		"00-" TID "-" PID "-ff",
	};
	for (size_t i = 0; i < N(ok); i++) {
		sdk_trace_ctx c;
		if (sdk_traceparent_parse(ok[i], &c) != 0)
			fail_msg("refused a valid traceparent: '%s'", ok[i]);
		assert_int_equal(c.trace_id[0], i == 2 ? 0x4b : 0x12);
	}
	sdk_trace_ctx c;
	assert_int_equal(sdk_traceparent_parse("00-" TID "-" PID "-01", &c), 0);
	assert_int_equal(c.trace_id[15], 0x12);
	assert_int_equal(c.span_id[7], 0x56);
	assert_int_equal(c.flags, 1);
	char out[SDK_TRACEPARENT_LEN + 1];
	sdk_traceparent_format(&c, out);
	assert_string_equal(out, "00-" TID "-" PID "-01");
	assert_int_equal(sdk_traceparent_parse("cc-" TID "-" PID "-09-more", &c), 0);
	sdk_traceparent_format(&c, out);
	assert_string_equal(out, "00-" TID "-" PID "-09"); /* we write the version we know */
}

static void test_traceparent_invalid(void **state)
{
	(void)state;
	static const char *const bad[] = {
		NULL, "",
		/* version 00 with anything after it */
		"00-" TID "-" PID "-01.", "00-" TID "-" PID "-01-what-the-future-will-be-like",
		/* a future version followed by something other than '-' */
		"cc-" TID "-" PID "-01.what-the-future-will-be-like",
		/* version ff, illegal characters, too long, too short */
		"ff-" TID "-" PID "-01", ".0-" TID "-" PID "-01", "0.-" TID "-" PID "-01",
		"000-" TID "-" PID "-01", "0000-" TID "-" PID "-01", "0-" TID "-" PID "-01",
		/* trace id: all zero, illegal characters, too long, too short, upper case */
		"00-00000000000000000000000000000000-" PID "-01",
		"00-.2345678901234567890123456789012-" PID "-01",
		"00-1234567890123456789012345678901.-" PID "-01",
		"00-123456789012345678901234567890123-" PID "-01",
		"00-1234567890123456789012345678901-" PID "-01",
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-" PID "-01",
		/* the letters just past 'f' and '9', and bytes that differ from a
		 * digit only in their high or 0x20 bit (the table's edges) */
		"00-4bf92f3577b34da6a3ce929d0e0e473g-" PID "-01",
		"00-4bf92f3577b34da6a3ce929d0e0e473:-" PID "-01",
		"00-4bf92f3577b34da6a3ce929d0e0e473\xb0-" PID "-01",
		"00-4bf92f3577b34da6a3ce929d0e0e473\x10-" PID "-01",
		"00-4bf92f3577b34da6a3ce929d0e0e473`-" PID "-01",
		/* parent id: all zero, illegal characters, too long, too short */
		"00-" TID "-0000000000000000-01", "00-" TID "-.234567890123456-01",
		"00-" TID "-123456789012345.-01", "00-" TID "-12345678901234567-01",
		"00-" TID "-123456789012345-01", "00-" TID "-00F067AA0BA902B7-01",
		/* flags: illegal characters, too long, too short */
		"00-" TID "-" PID "-.0", "00-" TID "-" PID "-0.", "00-" TID "-" PID "-001",
		"00-" TID "-" PID "-1",
		/* wrong delimiters */
		"00_" TID "-" PID "-01", "00-" TID "_" PID "-01", "00-" TID "-" PID "_01",
	};
	for (size_t i = 0; i < N(bad); i++) {
		sdk_trace_ctx c;
		if (sdk_traceparent_parse(bad[i], &c) == 0)
			fail_msg("accepted an invalid traceparent: '%s'", bad[i] ? bad[i] : "(null)");
	}
}

static void test_tracestate(void **state)
{
	(void)state;
	char out[SDK_TRACESTATE_MAX];
	assert_int_equal(sdk_tracestate_parse("foo=1,bar=2", out, sizeof out), 0);
	assert_string_equal(out, "foo=1,bar=2");
	assert_int_equal(sdk_tracestate_parse("foo=1 \t , \t bar=2, \t baz=3", out, sizeof out), 0);
	assert_string_equal(out, "foo=1,bar=2,baz=3");
	assert_int_equal(sdk_tracestate_parse("\t foo=1 \t", out, sizeof out), 0);
	assert_string_equal(out, "foo=1");
	assert_int_equal(sdk_tracestate_parse("", out, sizeof out), 0);
	assert_string_equal(out, "");
	assert_int_equal(sdk_tracestate_parse("foo=1,,bar=2", out, sizeof out), 0);
	assert_string_equal(out, "foo=1,bar=2");
	/* every allowed character, with and without a vendor */
	char key[] = "abcdefghijklmnopqrstuvwxyz0123456789_-*/";
	char value[128], m[512];
	size_t n = 0;
	for (int c = 0x20; c <= 0x7e; c++)
		if (c != ',' && c != '=')
			value[n++] = (char)c;
	value[n] = '\0';
	snprintf(m, sizeof m, "%s=%s", key, value);
	assert_int_equal(sdk_tracestate_parse(m, out, sizeof out), 0);
	assert_string_equal(out, m);
	snprintf(m, sizeof m, "%s@a-z0-9_-*/=%s", key, value);
	assert_int_equal(sdk_tracestate_parse(m, out, sizeof out), 0);
	/* 32 members pass, 33 do not */
	char many[1024] = "";
	for (int i = 0; i < 33; i++) {
		char one[16];
		snprintf(one, sizeof one, "%sk%d=v", i ? "," : "", i);
		strcat(many, one);
		if (i == 31)
			assert_int_equal(sdk_tracestate_parse(many, m, sizeof m), 0);
	}
	assert_int_equal(sdk_tracestate_parse(many, m, sizeof m), -1);
	static const char *const bad[] = {
		"foo=1,foo=1", "foo=1,foo=2",       /* duplicated keys */
		"foo =1", "FOO=1", "foo.bar=1",     /* illegal keys */
		"foo@=1,bar=2", "@foo=1,bar=2", "foo@@bar=1,bar=2", "foo@bar@baz=1,bar=2",
		"foo", "foo=", "=1", "foo=1=2", "foo=a\x01", /* no value, bad values */
	};
	for (size_t i = 0; i < N(bad); i++)
		if (sdk_tracestate_parse(bad[i], out, sizeof out) == 0)
			fail_msg("accepted an invalid tracestate: '%s'", bad[i]);
	/* a value of 256 characters passes, 257 do not */
	char longv[300] = "k=";
	memset(longv + 2, 'v', 256);
	longv[258] = '\0';
	assert_int_equal(sdk_tracestate_parse(longv, m, sizeof m), 0);
	longv[258] = 'v';
	longv[259] = '\0';
	assert_int_equal(sdk_tracestate_parse(longv, m, sizeof m), -1);
}

static void test_random_ids(void **state)
{
	(void)state;
	uint8_t a[16], b[16];
	sdk_trace_random(a, sizeof a);
	sdk_trace_random(b, sizeof b);
	assert_true(sdk_trace_id_valid(a, 16));
	assert_memory_not_equal(a, b, 16);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_traceparent_valid),
		cmocka_unit_test(test_traceparent_invalid),
		cmocka_unit_test(test_tracestate),
		cmocka_unit_test(test_random_ids),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
