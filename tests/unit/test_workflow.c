/* Unit tests for the workflow kernel's pure parts: the DSL validator
 * (src/kernels/workflow/dsl.c: a bad definition named by its JSON path,
 * durations, YAML's scalars) and the interpreter's state table
 * (src/kernels/workflow/interp.c: each task type's phases, a run blocked
 * on an effect or a timer and resumed from its state as stored, retries
 * with backoff, a fault and the retry of the run from the failed task). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "kernels/workflow/dsl.h"
#include "kernels/workflow/interp.h"

static json_t *def(const char *tasks)
{
	char text[8192];
	snprintf(text, sizeof text,
		 "{\"document\": {\"dsl\": \"1.0.0\", \"namespace\": \"t\", \"name\": \"n\", \"version\": \"1\"},"
		 " \"do\": %s}", tasks);
	json_error_t je;
	json_t *d = json_loads(text, 0, &je);
	if (!d)
		fail_msg("bad test JSON: %s: %s", je.text, text);
	return d;
}

static void expect_invalid(const char *tasks, const char *where)
{
	json_t *d = def(tasks), *programs = NULL;
	unsigned n;
	sdk_err e;
	assert_int_equal(wf_validate(d, 100, &programs, &n, &e), SDK_EINVAL);
	if (!strstr(e.msg, where))
		fail_msg("\"%s\" does not name %s", e.msg, where);
	json_decref(d);
}

static void test_validate(void **state)
{
	(void)state;
	json_t *d = def("[{\"a\": {\"set\": {\"x\": \"${ .y }\", \"z\": 1}}},"
			" {\"b\": {\"for\": {\"each\": \"v\", \"in\": \".xs\"}, \"do\": [{\"c\": {\"set\": \"${ $v }\"}}]}}]");
	json_t *programs;
	unsigned n;
	sdk_err e;
	assert_int_equal(wf_validate(d, 100, &programs, &n, &e), 0);
	assert_int_equal(n, 3);
	assert_int_equal(json_array_size(programs), 3);
	/* the loop's variable is in the scope of its body's program */
	const char *body = json_string_value(json_array_get(json_array_get(programs, 2), 0));
	assert_non_null(strstr(body, "$v"));
	assert_string_equal(json_string_value(json_array_get(json_array_get(programs, 2), 1)), "/do/1/b/do/0/c/set");
	json_decref(programs);
	assert_int_equal(wf_validate(d, 2, &programs, &n, &e), SDK_EINVAL); /* tasks_max */
	json_decref(d);

	expect_invalid("[{\"a\": {\"frob\": 1}}]", "/do/0/a/frob: unknown task type");
	expect_invalid("[{\"a\": {\"set\": {}, \"then\": \"zz\"}}]", "/do/0/a/then");
	expect_invalid("[{\"a\": {\"set\": {}}}, {\"a\": {\"set\": {}}}]", "/do/1");
	expect_invalid("[{\"a\": {\"wait\": \"PT\"}}]", "/do/0/a/wait");
	expect_invalid("[{\"a\": {\"for\": {\"each\": \"1x\", \"in\": \".\"}, \"do\": [{\"b\": {\"set\": {}}}]}}]",
		       "/do/0/a/for/each");
	expect_invalid("[{\"a\": {\"call\": \"grpc\"}}]", "/do/0/a/call");
	expect_invalid("[{\"a\": {\"call\": \"http\", \"with\": {\"method\": \"get\", \"endpoint\": \"https://x/\"}}}]",
		       "/do/0/a/with/endpoint");
	expect_invalid("[{\"a\": {\"try\": [{\"b\": {\"set\": {}}}], \"catch\": {\"retry\": {\"jitter\": "
		       "{\"from\": \"PT2S\", \"to\": \"PT1S\"}}}}}]", "/do/0/a/catch/retry/jitter");
	expect_invalid("[{\"a\": {\"set\": {}, \"timeout\": \"PT1S\"}}]", "/do/0/a/timeout");
	expect_invalid("[]", "/do");

	const char *isos[] = { "PT1M30.5S", "P1DT1H", "5s" };
	int64_t want[] = { 90500, 90000000, -1 };
	for (int i = 0; i < 3; i++) {
		json_t *d = json_string(isos[i]);
		assert_int_equal(wf_duration_ms(d), want[i]);
		json_decref(d);
	}
	json_t *o = json_pack("{s:i, s:i}", "seconds", 2, "milliseconds", 5);
	assert_int_equal(wf_duration_ms(o), 2005);
	json_decref(o);
}

static void test_yaml(void **state)
{
	(void)state;
	sdk_err e;
	const char *y = "a: 1\nb: '1'\nc: true\nd: ~\ne: 1.5\nf:\n  - x\n  - ${ .y }\n";
	json_t *v = wf_yaml_parse(y, strlen(y), &e);
	assert_non_null(v);
	json_t *want = json_loads("{\"a\": 1, \"b\": \"1\", \"c\": true, \"d\": null, \"e\": 1.5,"
				  " \"f\": [\"x\", \"${ .y }\"]}", 0, NULL);
	assert_true(json_equal(v, want));
	json_decref(v);
	json_decref(want);
	assert_null(wf_yaml_parse("a: [1, 2\n", 9, &e));
	assert_non_null(strstr(e.msg, "line"));
}

/* A definition with its programs compiled into cache, and a runtime. */
typedef struct fixture {
	json_t *doc;
	sdk_jq_cache *cache;
	json_t *events;
	wf_rt rt;
	sdk_jq_prog *held[64];
	size_t n;
} fixture;

static void fx_open(fixture *f, const char *tasks)
{
	memset(f, 0, sizeof *f);
	f->doc = def(tasks);
	f->cache = sdk_jq_cache_new(64);
	json_t *programs;
	unsigned n;
	sdk_err e;
	if (wf_validate(f->doc, 1000, &programs, &n, &e) < 0)
		fail_msg("%s", e.msg);
	size_t i;
	json_t *p;
	json_array_foreach(programs, i, p) {
		sdk_jq_prog *c = sdk_jq_compile(json_string_value(json_array_get(p, 0)), &e);
		if (!c)
			fail_msg("%s: %s", json_string_value(json_array_get(p, 1)), e.msg);
		f->held[f->n++] = sdk_jq_cache_adopt(f->cache, c);
	}
	json_decref(programs);
	f->events = json_array();
	f->rt = (wf_rt){ .x = { f->cache }, .doc = f->doc, .events = f->events, .now_ms = 1000,
			 .budget = 1000 };
}

static void fx_close(fixture *f)
{
	for (size_t i = 0; i < f->n; i++)
		sdk_jq_cache_release(f->cache, f->held[i]);
	sdk_jq_cache_free(f->cache);
	json_decref(f->doc);
	json_decref(f->events);
}

/* The state as the store keeps it: through its text and back. */
static json_t *stored(json_t *state)
{
	char *t = json_dumps(state, JSON_COMPACT);
	json_t *s = json_loads(t, 0, NULL);
	free(t);
	json_decref(state);
	return s;
}

static void assert_json(json_t *v, const char *want)
{
	json_t *w = json_loads(want, JSON_DECODE_ANY, NULL);
	if (!json_equal(v, w)) {
		char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		fail_msg("got %s, want %s", t, want);
	}
	json_decref(w);
}

static void test_pure_tasks(void **state)
{
	(void)state;
	fixture f;
	fx_open(&f, "[{\"a\": {\"set\": {\"n\": \"${ .n + 1 }\", \"xs\": [1, 2, 3]}}},"
		    " {\"s\": {\"switch\": [{\"no\": {\"when\": \".n > 5\", \"then\": \"end\"}},"
		    "                    {\"yes\": {\"when\": \".n == 2\", \"then\": \"loop\"}}]}},"
		    " {\"skipped\": {\"set\": {\"never\": 1}}},"
		    " {\"loop\": {\"for\": {\"each\": \"x\", \"in\": \".xs\", \"at\": \"i\"},"
		    "             \"while\": \"$i < 2\","
		    "             \"do\": [{\"add\": {\"set\": {\"n\": \"${ .n + $x }\", \"xs\": \"${ .xs }\"}}}]}},"
		    " {\"f\": {\"fork\": {\"branches\": [{\"l\": {\"set\": \"${ .n }\"}}, {\"r\": {\"set\": \"${ 2 }\"}}]},"
		    "        \"export\": {\"as\": \"{got: .}\"}}},"
		    " {\"out\": {\"set\": \"${ $context.got }\"}}]");
	json_t *in = json_pack("{s:i}", "n", 1), *err = NULL, *res = NULL;
	json_t *st = wf_state_new(&f.rt, in, &err);
	assert_non_null(st);
	assert_int_equal(wf_pump(&f.rt, st, &res), WF_ST_DONE);
	assert_json(res, "[5, 2]"); /* n: 1+1, then x=1 and x=2 (while $i < 2) */
	/* the switch jumped over `skipped` */
	size_t i;
	json_t *e;
	json_array_foreach(f.events, i, e) assert_true(strcmp(json_string_value(json_object_get(e, "pos")) ?: "",
							     "/skipped") != 0);
	json_decref(res);
	json_decref(st);
	json_decref(in);
	fx_close(&f);
}

static void test_effects_and_timers(void **state)
{
	(void)state;
	fixture f;
	fx_open(&f, "[{\"w\": {\"wait\": {\"seconds\": 2}}},"
		    " {\"c\": {\"call\": \"http\", \"with\": {\"method\": \"post\", \"endpoint\": \"grace://audit/events\","
		    "  \"body\": {\"v\": \"${ .v }\"}}, \"output\": {\"as\": \"${ .ok }\"}}}]");
	json_t *in = json_pack("{s:i}", "v", 7), *err = NULL, *res = NULL;
	json_t *st = wf_state_new(&f.rt, in, &err);
	assert_int_equal(wf_pump(&f.rt, st, &res), WF_ST_BLOCKED);
	assert_int_equal(f.rt.next_due, 3000);
	st = stored(st); /* a restart: the timer is in the state */
	f.rt.now_ms = 2999;
	assert_int_equal(wf_pump(&f.rt, st, &res), WF_ST_BLOCKED);
	f.rt.now_ms = 3000;
	assert_int_equal(wf_pump(&f.rt, st, &res), WF_ST_BLOCKED);
	assert_int_equal(f.rt.next_due, 0);
	json_t *pend = json_array();
	wf_pending(st, pend);
	assert_int_equal(json_array_size(pend), 1);
	json_t *eff = json_object_get(json_array_get(pend, 0), "eff");
	assert_json(json_object_get(eff, "body"), "{\"v\": 7}");
	assert_string_equal(json_string_value(json_object_get(eff, "pos")), "/c");
	assert_string_equal(json_string_value(json_object_get(eff, "attempt")), "1");
	json_decref(pend);
	st = stored(st); /* a restart while the call is out: it is still pending */
	assert_int_equal(wf_pump(&f.rt, st, &res), WF_ST_BLOCKED);
	json_t *fr = wf_frame(st, "/c");
	assert_non_null(fr);
	json_object_set_new(fr, "res", json_pack("{s:i, s:{s:b}}", "status", 200, "content", "ok", 1));
	assert_int_equal(wf_pump(&f.rt, st, &res), WF_ST_DONE);
	assert_json(res, "true");
	json_decref(res);
	json_decref(st);
	json_decref(in);
	fx_close(&f);
}

static void test_retry_backoff_and_run_retry(void **state)
{
	(void)state;
	fixture f;
	fx_open(&f, "[{\"t\": {\"try\": [{\"c\": {\"call\": \"http\", \"with\": {\"method\": \"get\","
		    "   \"endpoint\": \"http://127.0.0.1:9/x\"}}}],"
		    "  \"catch\": {\"errors\": {\"with\": {\"type\": \"communication\", \"status\": 503}},"
		    "   \"retry\": {\"delay\": {\"milliseconds\": 100}, \"backoff\": {\"exponential\": {}},"
		    "              \"limit\": {\"attempt\": {\"count\": 2}}}}}}]");
	json_t *in = json_pack("{s:i}", "in", 1), *err = NULL, *res = NULL;
	json_t *st = wf_state_new(&f.rt, in, &err);
	int64_t delays[2] = { 100, 200 };
	for (int a = 0; a < 3; a++) {
		assert_int_equal(wf_pump(&f.rt, st, &res), WF_ST_BLOCKED);
		char pos[32];
		snprintf(pos, sizeof pos, "/t/try%d/c", a + 1);
		json_t *fr = wf_frame(st, pos);
		assert_non_null(fr);
		json_object_set_new(fr, "res", json_pack("{s:i}", "status", 503));
		wf_step s = wf_pump(&f.rt, st, &res);
		if (a == 2) { /* count 2: the third failure is caught, no catch.do: the input goes on */
			assert_int_equal(s, WF_ST_DONE);
			break;
		}
		assert_int_equal(s, WF_ST_BLOCKED);
		assert_int_equal(f.rt.next_due, f.rt.now_ms + delays[a]);
		f.rt.now_ms += delays[a];
		st = stored(st);
	}
	assert_json(res, "{\"in\": 1}");
	json_decref(res);
	json_decref(st);
	json_decref(in);
	fx_close(&f);

	/* an uncaught failure faults the run; the run is retried from the failed
	 * call (what completed before stays): a new attempt, a new key */
	fx_open(&f, "[{\"a\": {\"set\": {\"a\": 1}}},"
		    " {\"c\": {\"call\": \"http\", \"with\": {\"method\": \"get\", \"endpoint\": \"http://localhost:9/\"}}}]");
	in = json_object();
	st = wf_state_new(&f.rt, in, &err);
	assert_int_equal(wf_pump(&f.rt, st, &res), WF_ST_BLOCKED);
	json_object_set_new(wf_frame(st, "/c"), "res", json_pack("{s:i}", "status", 500));
	assert_int_equal(wf_pump(&f.rt, st, &res), WF_ST_FAULT);
	assert_int_equal(json_integer_value(json_object_get(res, "status")), 500);
	assert_string_equal(json_string_value(json_object_get(res, "instance")), "/c");
	json_decref(res);
	st = stored(st);
	assert_int_equal(wf_pump(&f.rt, st, &res), WF_ST_FAULT); /* faulted stays faulted */
	json_decref(res);
	json_array_clear(f.events);
	assert_int_equal(wf_state_retry(st), 0);
	assert_int_equal(wf_pump(&f.rt, st, &res), WF_ST_BLOCKED);
	json_t *fr = wf_frame(st, "/c");
	assert_string_equal(json_string_value(json_object_get(json_object_get(fr, "eff"), "attempt")), "2");
	json_object_set_new(fr, "res", json_pack("{s:i, s:i}", "status", 200, "content", 5));
	assert_int_equal(wf_pump(&f.rt, st, &res), WF_ST_DONE);
	assert_json(res, "5");
	/* the set before it did not run again */
	size_t i;
	json_t *e;
	json_array_foreach(f.events, i, e)
		assert_string_equal(json_string_value(json_object_get(e, "pos")), "/c");
	json_decref(res);
	assert_int_equal(wf_state_retry(st), -1);
	json_decref(st);
	json_decref(in);
	fx_close(&f);
}

static void test_fork_compete_and_raise(void **state)
{
	(void)state;
	fixture f;
	fx_open(&f, "[{\"race\": {\"fork\": {\"compete\": true, \"branches\": ["
		    "  {\"slow\": {\"wait\": \"PT10S\"}}, {\"fast\": {\"set\": \"won\"}}]}}},"
		    " {\"boom\": {\"if\": \". == \\\"won\\\"\", \"raise\": {\"error\": {\"type\": \"https://x/e\","
		    "   \"status\": 409, \"title\": \"${ . }\"}}}}]");
	json_t *in = json_object(), *err = NULL, *res = NULL;
	json_t *st = wf_state_new(&f.rt, in, &err);
	assert_int_equal(wf_pump(&f.rt, st, &res), WF_ST_FAULT);
	assert_json(res, "{\"type\": \"https://x/e\", \"status\": 409, \"title\": \"won\", \"instance\": \"/boom\"}");
	json_decref(res);
	json_decref(st);
	json_decref(in);
	fx_close(&f);
}

static void test_budget_yields(void **state)
{
	(void)state;
	fixture f;
	fx_open(&f, "[{\"l\": {\"for\": {\"in\": \"[range(0; 50)]\"}, \"do\": [{\"s\": {\"set\": \"${ . + 1 }\"}}]}}]");
	json_t *in = json_integer(0), *err = NULL, *res = NULL;
	json_t *st = wf_state_new(&f.rt, in, &err);
	f.rt.budget = 10;
	int turns = 0;
	wf_step s;
	while ((s = wf_pump(&f.rt, st, &res)) == WF_ST_YIELD) {
		turns++;
		f.rt.budget = 10;
		st = stored(st);
	}
	assert_int_equal(s, WF_ST_DONE);
	assert_true(turns >= 4);
	assert_json(res, "50");
	json_decref(res);
	json_decref(st);
	json_decref(in);
	fx_close(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_validate),
		cmocka_unit_test(test_yaml),
		cmocka_unit_test(test_pure_tasks),
		cmocka_unit_test(test_effects_and_timers),
		cmocka_unit_test(test_retry_backoff_and_run_retry),
		cmocka_unit_test(test_fork_compete_and_raise),
		cmocka_unit_test(test_budget_yields),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
