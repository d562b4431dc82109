/* Unit tests for jq expressions (src/sdk/jq.c) and the statechart parser's
 * errors (src/kernels/state_machine/chart.c): what an expression may not
 * reach, errors with their reason, the cache's references, and a bad
 * definition named by its JSON pointer. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "kernels/state_machine/chart.h"
#include "sdk/jq.h"

static json_t *run(const char *text, json_t *in, int *rc, sdk_err *e)
{
	sdk_jq_prog *p = sdk_jq_compile(text, e);
	assert_non_null(p);
	json_t *out = NULL;
	*rc = sdk_jq_eval(p, in, &out, e);
	sdk_jq_prog_free(p);
	return out;
}

static void test_eval(void **state)
{
	(void)state;
	sdk_err e;
	int rc;
	json_t *in = json_pack("{s:{s:i}, s:{s:s}}", "context", "n", 2, "event", "type", "GO");
	json_t *out = run(".context.n + 1", in, &rc, &e);
	assert_int_equal(rc, 1);
	assert_true(json_is_integer(out) && json_integer_value(out) == 3);
	json_decref(out);
	out = run(".context.n / 4", in, &rc, &e);
	assert_true(json_is_real(out) && json_real_value(out) == 0.5);
	json_decref(out);
	/* no output */
	out = run("empty", in, &rc, &e);
	assert_int_equal(rc, 0);
	assert_null(out);
	/* a runtime error, with jq's reason */
	out = run(".event.type + 1", in, &rc, &e);
	assert_int_equal(rc, SDK_EINVAL);
	assert_non_null(strstr(e.msg, "cannot be added"));
	json_decref(in);
}

static void test_no_environment(void **state)
{
	(void)state;
	sdk_err e;
	int rc;
	setenv("GRACE_JQ_SECRET", "s3cret", 1);
	json_t *out = run("env", json_null(), &rc, &e);
	assert_int_equal(rc, 1);
	assert_int_equal(json_object_size(out), 0);
	json_decref(out);
	out = run("$ENV.GRACE_JQ_SECRET", json_null(), &rc, &e);
	assert_true(json_is_null(out));
	json_decref(out);
	/* modules cannot be read from disk */
	assert_null(sdk_jq_compile("import \"x\" as x; .", &e));
	assert_null(sdk_jq_compile("include \"x\"; .", &e));
}

static void test_compile_errors(void **state)
{
	(void)state;
	sdk_err e;
	assert_null(sdk_jq_compile("", &e));
	assert_null(sdk_jq_compile(".a |", &e));
	assert_non_null(strstr(e.msg, "syntax error"));
	assert_null(sdk_jq_compile("nosuchfunction(1)", &e));
	assert_non_null(strstr(e.msg, "nosuchfunction"));
	/* a closing parenthesis cannot escape the wrapper */
	assert_null(sdk_jq_compile(") | env | (", &e));
}

static void test_cache(void **state)
{
	(void)state;
	sdk_err e;
	sdk_jq_cache *c = sdk_jq_cache_new(1);
	sdk_jq_prog *a = sdk_jq_cache_adopt(c, sdk_jq_compile(".a", &e));
	sdk_jq_prog *a2 = sdk_jq_cache_adopt(c, sdk_jq_compile(".a", &e)); /* the same text: the first */
	assert_ptr_equal(a, a2);
	assert_ptr_equal(sdk_jq_cache_get(c, ".a"), a);
	assert_int_equal(sdk_jq_cache_size(c), 1);
	sdk_jq_prog *b = sdk_jq_cache_adopt(c, sdk_jq_compile(".b", &e));
	sdk_jq_cache_release(c, b); /* unused, kept (keep_unused 1) */
	assert_int_equal(sdk_jq_cache_size(c), 2);
	for (int i = 0; i < 3; i++)
		sdk_jq_cache_release(c, a); /* now unused too: the older unused one goes */
	assert_int_equal(sdk_jq_cache_size(c), 1);
	assert_null(sdk_jq_cache_get(c, ".b"));
	sdk_jq_cache_free(c);
}

static void expect_bad(const char *config, const char *where)
{
	json_t *cfg = json_loads(config, 0, NULL);
	assert_non_null(cfg);
	sc_chart *c = NULL;
	sdk_err e;
	assert_int_equal(sc_chart_parse(cfg, &c, &e), SDK_EINVAL);
	assert_null(c);
	if (!strstr(e.msg, where))
		fail_msg("%s: wanted %s in: %s", config, where, e.msg);
	json_decref(cfg);
}

static void test_chart_errors(void **state)
{
	(void)state;
	expect_bad("{\"initial\":\"a\",\"states\":{\"a\":{\"on\":{\"GO\":\"b\"}}}}", "/states/a/on/GO/target");
	expect_bad("{\"initial\":\"a\",\"states\":{\"a\":{\"on\":{\"GO\":{\"cond\":\"x\"}}}}}", "write \"guard\"");
	expect_bad("{\"states\":{\"a\":{}}}", "needs \"initial\"");
	expect_bad("{\"initial\":\"a\",\"states\":{\"a\":{\"after\":{\"soon\":\"a\"}}}}", "/states/a/after/soon");
	expect_bad("{\"initial\":\"a\",\"states\":{\"a\":{\"entry\":[{\"type\":\"assign\"}]}}}", "/states/a/entry/0");
	expect_bad("{\"initial\":\"a\",\"states\":{\"a\":{},\"b\":{\"id\":\"(machine).a\"}}}", "used by another state");
	expect_bad("{\"initial\":\"a\",\"states\":{\"a.b\":{}}}", "no '.'");
	/* a good one parses, and its expressions compile and bind */
	json_t *cfg = json_loads("{\"initial\":\"a\",\"context\":{\"n\":1},\"states\":{\"a\":{\"on\":{\"GO\":"
				 "{\"target\":\"b\",\"guard\":\".context.n > 0\"}}},\"b\":{}}}", 0, NULL);
	sc_chart *c;
	sdk_err e;
	assert_int_equal(sc_chart_parse(cfg, &c, &e), 0);
	sdk_jq_cache *cache = sdk_jq_cache_new(8);
	assert_int_equal(sc_chart_compile(c, cache, &e), 0);
	assert_int_equal(c->n_exprs, 1);
	assert_string_equal(c->exprs[0].path, "/states/a/on/GO/guard");
	sc_chart_free(c);
	sdk_jq_cache_free(cache);
	json_decref(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_eval),
		cmocka_unit_test(test_no_environment),
		cmocka_unit_test(test_compile_errors),
		cmocka_unit_test(test_cache),
		cmocka_unit_test(test_chart_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
