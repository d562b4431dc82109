/* Unit tests for the PostgreSQL engine's translation of FTS5 query syntax
 * into tsquery text (src/serve/memory/pg_fts.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/memory/pg_fts.h"

static void ok(const char *q, const char *want)
{
	sdk_buf out = { 0 };
	sdk_err err = { "" };
	int rc = mem_fts_tsquery(q, &out, &err);
	if (rc != 0 || out.oom || strcmp(out.p, want))
		fail_msg("%s: got %d %s (%s), want %s", q, rc, out.p ? out.p : "(null)", err.msg,
			 want);
	sdk_buf_free(&out);
}

static void bad(const char *q)
{
	sdk_buf out = { 0 };
	sdk_err err = { "" };
	if (mem_fts_tsquery(q, &out, &err) != -1)
		fail_msg("%s: accepted as %s", q, out.p ? out.p : "(null)");
	assert_true(err.msg[0] != '\0');
	sdk_buf_free(&out);
}

static void test_words(void **state)
{
	(void)state;
	ok("bread", "'bread'");
	ok("  bread  ", "'bread'");
	ok("bread oven", "('bread' & 'oven')");
	ok("br*", "'br':*");
	ok("hot*oven", "('hot':* & 'oven')");
	ok("caf\xc3\xa9", "'caf\xc3\xa9'");
	ok("and or not near NEAR", "(((('and' & 'or') & 'not') & 'near') & 'NEAR')");
	ok("ANDx", "'ANDx'");
}

static void test_phrases(void **state)
{
	(void)state;
	ok("\"hot oven\"", "'hot oven'");
	ok("\"hot\" + oven", "'hot' <-> 'oven'");
	ok("\"it's\"", "'it''s'");
	ok("\"a\\\\b\"", "'a\\\\\\\\b'");
	ok("\"say \"\"hi\"\"\"", "'say \"hi\"'");
	ok("\"ov\"*", "'ov':*");
	/* Nothing to index: counts for nothing, as in FTS5. */
	ok("hot \"\"", "'hot'");
	ok("\"\"", "");
	ok("\"!!\" OR x", "'x'");
}

static void test_operators(void **state)
{
	(void)state;
	ok("a AND b", "('a' & 'b')");
	ok("a OR b", "('a' | 'b')");
	ok("a NOT b", "('a' & !'b')");
	ok("a NOT b NOT c", "(('a' & !'b') & !'c')");
	/* NOT over AND over OR; implicit AND joins phrases first. */
	ok("a OR b AND c", "('a' | ('b' & 'c'))");
	ok("a AND b OR c", "(('a' & 'b') | 'c')");
	ok("a b NOT c", "(('a' & 'b') & !'c')");
	ok("a AND b NOT c", "('a' & ('b' & !'c'))");
	ok("hot AND (oven OR x)", "('hot' & ('oven' | 'x'))");
	ok("(a OR b) NOT c", "(('a' | 'b') & !'c')");
	ok("NEAR(a b)", "('a' & 'b')");
	ok("NEAR(a b, 3)", "('a' & 'b')");
	ok("x NEAR(a \"b c\")", "('x' & ('a' & 'b c'))");
}

static void test_errors(void **state)
{
	(void)state;
	const char *bads[] = { "", "   ", "AND", "AND OR", "a AND", "a OR", "NOT a", "(a", "a)",
			       "()", "a (b)", "(a) b", "*", "\"unterminated", "\" OR 1=1",
			       "'; DROP TABLE mem_tables; --", "a.b", "a-b", "a:b", "^a",
			       "{a}:b", "NEAR(", "NEAR()", "NEAR(a, x)", "a & b", "a | b", "!a",
			       "a\\b", "a;b" };
	for (size_t i = 0; i < sizeof bads / sizeof *bads; i++)
		bad(bads[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_words),
		cmocka_unit_test(test_phrases),
		cmocka_unit_test(test_operators),
		cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
