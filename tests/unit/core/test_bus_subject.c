/* Unit tests for the message bus's subjects and patterns
 * (src/kernels/message_bus/subject.c): validation and NATS matching. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "kernels/message_bus/subject.h"

#define N(t) (sizeof(t) / sizeof((t)[0]))

static void test_subject_valid(void **state)
{
	(void)state;
	static const char *const ok[] = {
		"a", "grace.kernel.librarian.state", "A-b_c:d", "x.y.z.1.2.3", "$dlq.g.a.b",
		"a/b.c@d", "~!#%&'()+,;=?^`{|}",
	};
	for (size_t i = 0; i < N(ok); i++)
		assert_null(bus_subject_check(ok[i]));
}

static void test_subject_invalid(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"", ".", "a.", ".a", "a..b", "a.*", "*", ">", "a.>", "a b", "a\tb", "a\"b", "a\\b",
		"ab*", "a.b>", "caf\xc3\xa9", "a\x7f",
	};
	for (size_t i = 0; i < N(bad); i++)
		assert_non_null(bus_subject_check(bad[i]));
	assert_non_null(bus_subject_check(NULL));
}

static void test_subject_length(void **state)
{
	(void)state;
	char s[BUS_SUBJECT_MAX + 2];
	memset(s, 'a', sizeof s - 1);
	s[BUS_SUBJECT_MAX] = '\0';
	assert_null(bus_subject_check(s));
	s[BUS_SUBJECT_MAX] = 'a';
	s[BUS_SUBJECT_MAX + 1] = '\0';
	assert_non_null(bus_subject_check(s));
}

static void test_pattern_valid(void **state)
{
	(void)state;
	static const char *const ok[] = {
		"a", "*", ">", "a.*", "a.>", "*.b", "*.*.c", "a.*.>", "$dlq.*.>", "a.b.c",
	};
	for (size_t i = 0; i < N(ok); i++)
		assert_null(bus_pattern_check(ok[i]));
}

static void test_pattern_invalid(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"", "a.", ".a", "a..b", ">.a", "a.>.b", "a*", "*a", "a.b*", ">>", "**", "a.>>",
		"a b", "a.\"",
	};
	for (size_t i = 0; i < N(bad); i++)
		assert_non_null(bus_pattern_check(bad[i]));
	assert_non_null(bus_pattern_check(NULL));
}

static void test_token(void **state)
{
	(void)state;
	assert_null(bus_token_check("workers"));
	assert_null(bus_token_check("w-1_x"));
	assert_non_null(bus_token_check("a.b"));
	assert_non_null(bus_token_check(""));
	assert_non_null(bus_token_check("*"));
	assert_non_null(bus_token_check(">"));
	assert_non_null(bus_token_check(NULL));
	char t[BUS_TOKEN_MAX + 2];
	memset(t, 'g', sizeof t - 1);
	t[BUS_TOKEN_MAX] = '\0';
	assert_null(bus_token_check(t));
	t[BUS_TOKEN_MAX] = 'g';
	t[BUS_TOKEN_MAX + 1] = '\0';
	assert_non_null(bus_token_check(t));
}

struct match_case {
	const char *pattern, *subject;
	bool match;
};

static void test_match(void **state)
{
	(void)state;
	static const struct match_case cases[] = {
		{ "a", "a", true },
		{ "a", "b", false },
		{ "a", "a.b", false },
		{ "a.b", "a", false },
		{ "a.b", "a.b", true },
		{ "a.b", "a.bc", false },
		{ "a.bc", "a.b", false },
		{ "*", "a", true },
		{ "*", "a.b", false },
		{ "a.*", "a.b", true },
		{ "a.*", "a", false },
		{ "a.*", "a.b.c", false },
		{ "*.b", "a.b", true },
		{ "*.b", "a.c", false },
		{ "a.*.c", "a.x.c", true },
		{ "a.*.c", "a.x.d", false },
		{ "a.*.c", "a.c", false },
		/* '>' takes one or more tokens, never zero. */
		{ ">", "a", true },
		{ ">", "a.b.c", true },
		{ "a.>", "a.b", true },
		{ "a.>", "a.b.c.d", true },
		{ "a.>", "a", false },
		{ "a.>", "b.c", false },
		{ "a.*.>", "a.b.c", true },
		{ "a.*.>", "a.b", false },
		{ "*.*", "a.b", true },
		{ "*.*", "a.b.c", false },
		/* '$' subjects: not matched by a leading wildcard, only by name. */
		{ ">", "$dlq.g.a", false },
		{ "*.g.a", "$dlq.g.a", false },
		{ "$dlq.>", "$dlq.g.a", true },
		{ "$dlq.g.*", "$dlq.g.a", true },
		{ "$dlq.*.a", "$dlq.g.a", true },
		{ "a.>", "a.$b", true },
		{ "a.*", "a.$b", true },
	};
	for (size_t i = 0; i < N(cases); i++) {
		bool got = bus_pattern_match(cases[i].pattern, cases[i].subject);
		if (got != cases[i].match)
			fail_msg("%s ~ %s: got %d", cases[i].pattern, cases[i].subject, got);
	}
}

static void test_literal_and_reserved(void **state)
{
	(void)state;
	assert_true(bus_pattern_literal("a.b.c"));
	assert_true(bus_pattern_literal("a"));
	assert_false(bus_pattern_literal("a.*"));
	assert_false(bus_pattern_literal(">"));
	assert_false(bus_pattern_literal("*.b"));
	assert_true(bus_subject_reserved("$dlq.g.a"));
	assert_false(bus_subject_reserved("a.$dlq"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_subject_valid),   cmocka_unit_test(test_subject_invalid),
		cmocka_unit_test(test_subject_length),  cmocka_unit_test(test_pattern_valid),
		cmocka_unit_test(test_pattern_invalid), cmocka_unit_test(test_token),
		cmocka_unit_test(test_match),           cmocka_unit_test(test_literal_and_reserved),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
