/* Unit tests of the research kernel's pure pieces
 * (src/kernels/research/{question,redact,rules,synth}.c): the question
 * parser (kernel names and times), the secret redactor, the hypothesis
 * rules and their ranking, and the check of a model's citations. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/research/question.h"
#include "kernels/research/redact.h"
#include "kernels/research/rules.h"
#include "kernels/research/synth.h"

static const char *const names[] = { "audit", "immutable_log", "metrics", "message_bus",
				     "librarian", NULL };
/* 2026-12-04T12:00:00Z */
#define NOW 1796385600000LL
#define MIN (60 * 1000LL)
#define WINDOW (15 * MIN)

static rs_question parse(const char *text)
{
	rs_question q;
	rs_question_parse(text, names, NOW, WINDOW, &q);
	return q;
}

static void test_question_kernel(void **state)
{
	(void)state;
	assert_string_equal(parse("why did audit stop appending?").kernel, "audit");
	assert_string_equal(parse("Why is the Immutable Log down").kernel, "immutable_log");
	assert_string_equal(parse("immutable-log and audit").kernel, "immutable_log");
	assert_string_equal(parse("is message_bus slow").kernel, "message_bus");
	/* Whole words only: "auditor" is not audit; nothing named: "". */
	assert_string_equal(parse("ask the auditor").kernel, "");
	assert_string_equal(parse("what happened?").kernel, "");
}

static void test_question_times(void **state)
{
	(void)state;
	rs_question q = parse("what happened?");
	assert_int_equal(q.time, RS_TIME_NONE);
	assert_int_equal(q.since_ms, NOW - WINDOW);
	assert_int_equal(q.until_ms, NOW);

	/* "at 10:02" today (it is 12:00 UTC) */
	q = parse("why did audit stop appending at 10:02?");
	int64_t t = NOW - 2 * 3600 * 1000LL + 2 * MIN;
	assert_int_equal(q.time, RS_TIME_AT);
	assert_int_equal(q.since_ms, t - RS_AT_BEFORE_MS);
	assert_int_equal(q.until_ms, t + RS_AT_AFTER_MS);
	/* a clock time still to come today is yesterday's */
	q = parse("at 13:30:15");
	t = NOW + 90 * MIN + 15000 - 86400000LL;
	assert_int_equal(q.since_ms, t - RS_AT_BEFORE_MS);
	/* 9:05 works without a leading zero; 10:2 is not a time */
	q = parse("around 9:05");
	assert_int_equal(q.time, RS_TIME_AT);
	assert_int_equal(parse("at 10:2").time, RS_TIME_NONE);
	assert_int_equal(parse("at 25:00").time, RS_TIME_NONE);

	q = parse("errors since 5 minutes");
	assert_int_equal(q.time, RS_TIME_SINCE);
	assert_int_equal(q.since_ms, NOW - 5 * MIN);
	assert_int_equal(q.until_ms, NOW);
	assert_int_equal(parse("in the last 2 hours").since_ms, NOW - 2 * 60 * MIN);
	assert_int_equal(parse("during the last 30s").since_ms, NOW - 30000);
	assert_int_equal(parse("in the past day").since_ms, NOW - 86400000LL);
	assert_int_equal(parse("since an hour").since_ms, NOW - 60 * MIN);
	q = parse("down since 11:15");
	assert_int_equal(q.time, RS_TIME_SINCE);
	assert_int_equal(q.since_ms, NOW - 45 * MIN);

	/* RFC 3339, after "at", "since" or on its own */
	q = parse("what broke at 2026-12-04T10:02:00Z?");
	t = NOW - 2 * 3600 * 1000LL + 2 * MIN;
	assert_int_equal(q.since_ms, t - RS_AT_BEFORE_MS);
	q = parse("since 2026-12-04T11:00:00+01:00.");
	assert_int_equal(q.time, RS_TIME_SINCE);
	assert_int_equal(q.since_ms, NOW - 120 * MIN);
	q = parse("audit 2026-12-04T11:30:00.500Z broke");
	assert_int_equal(q.time, RS_TIME_AT);
	assert_int_equal(q.since_ms, NOW - 30 * MIN + 500 - RS_AT_BEFORE_MS);
	assert_int_equal(parse("at 2026-13-04T11:30:00Z").time, RS_TIME_NONE);
	assert_int_equal(parse(NULL).time, RS_TIME_NONE);
	/* "last" without a duration is not a time */
	assert_int_equal(parse("the last append failed").time, RS_TIME_NONE);
}

static char *red(const char *in, size_t *n)
{
	char *out = rs_redact(in, n);
	assert_non_null(out);
	return out;
}

static void expect_redacted(const char *in, const char *want, size_t count)
{
	size_t n = 99;
	char *out = red(in, &n);
	assert_string_equal(out, want);
	assert_int_equal(n, count);
	free(out);
}

static void test_redact(void **state)
{
	(void)state;
	expect_redacted("nothing to hide here, kernel audit at 10:02", "nothing to hide here, kernel audit at 10:02", 0);
	expect_redacted("Authorization: Bearer abcdefgh12345678", "Authorization: Bearer [REDACTED]", 1);
	expect_redacted("curl -H 'authorization: basic dXNlcjpwYXNzd29yZA=='",
			"curl -H 'authorization: basic [REDACTED]'", 1);
	expect_redacted("password=hunter2 user=bob", "password=[REDACTED] user=bob", 1);
	expect_redacted("{\"api_key\": \"abc 123\", \"n\": 1}", "{\"api_key\": \"[REDACTED]\", \"n\": 1}", 1);
	expect_redacted("db_password: s3cret; next", "db_password: [REDACTED]; next", 1);
	expect_redacted("X-Auth-Token=zzz&x=1", "X-Auth-Token=[REDACTED]&x=1", 1);
	expect_redacted("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2IifQ.c2lnbmF0dXJl here",
			"jwt [REDACTED] here", 1);
	expect_redacted("key sk-test-key-0123456789abc", "key [REDACTED]", 1);
	expect_redacted("aws AKIAIOSFODNN7EXAMPLE1", "aws [REDACTED]", 1);
	expect_redacted("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "[REDACTED]", 1);
	/* key-length runs: 32+ hex digits, 32+ base64 mixing cases and digits */
	expect_redacted("hash 0123456789abcdef0123456789abcdef end", "hash [REDACTED] end", 1);
	expect_redacted("b64 QWxhZGRpbjpvcGVuIHNlc2FtZQ4xMjM0NTY3ODkw!", "b64 [REDACTED]!", 1);
	/* not secrets: short hex, a uuid, long lower-case words, numbers */
	expect_redacted("pid 4242 id deadbeef uuid 123e4567-e89b-12d3-a456-426614174000",
			"pid 4242 id deadbeef uuid 123e4567-e89b-12d3-a456-426614174000", 0);
	expect_redacted("immutable_log_appending_is_failing_since_the_restart",
			"immutable_log_appending_is_failing_since_the_restart", 0);
	expect_redacted("", "", 0);
	/* several in one text */
	expect_redacted("token=a secret=b", "token=[REDACTED] secret=[REDACTED]", 2);

	json_t *v = json_pack("{s:s, s:{s:s, s:[s, i]}, s:{s:s}, s:b}", "note",
			      "password=hunter2 was used", "details", "Authorization",
			      "Bearer abcdefghijkl", "list", "sk-live-aaaaaaaaaaaaaaaa", 5, "secret",
			      "k", "v", "token_valid", 1);
	size_t n = rs_redact_json(v);
	char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
	assert_null(strstr(s, "hunter2"));
	assert_null(strstr(s, "abcdefghijkl"));
	assert_null(strstr(s, "sk-live"));
	assert_string_equal(json_string_value(json_object_get(v, "secret")), RS_REDACTED);
	assert_true(json_is_true(json_object_get(v, "token_valid")));
	assert_int_equal(n, 4);
	free(s);
	json_decref(v);
}

static json_t *ev(const char *id, const char *kernel, const char *s1, const char *s2)
{
	json_t *sig = json_array();
	if (s1)
		json_array_append_new(sig, json_string(s1));
	if (s2)
		json_array_append_new(sig, json_string(s2));
	return json_pack("{s:s, s:s, s:o}", "id", id, "kernel", kernel, "signals", sig);
}

static void test_signals(void **state)
{
	(void)state;
	json_t *s = json_array();
	rs_signals_of_state("ready", "restarting", "signal 9 (Killed)", s);
	char *d = json_dumps(s, JSON_COMPACT);
	assert_string_equal(d, "[\"down\",\"exit_signal\",\"exit_signal_9\"]");
	free(d);
	json_array_clear(s);
	rs_signals_of_state("ready", "restarting", "out of memory (cgroup oom-kill): signal 9 (Killed)", s);
	d = json_dumps(s, JSON_COMPACT);
	assert_string_equal(d, "[\"down\",\"exit_signal\",\"exit_signal_9\",\"oom\"]");
	free(d);
	json_array_clear(s);
	rs_signals_of_state("starting", "ready", "signal 9 (Killed)", s); /* back up: no news */
	assert_int_equal(json_array_size(s), 0);
	rs_signals_of_state("restarting", "starting", "signal 9 (Killed)", s); /* the same exit */
	assert_int_equal(json_array_size(s), 0);
	rs_signals_of_state("ready", "starting", "signal 9 (Killed)", s); /* a standby took over */
	assert_int_equal(json_array_size(s), 3);
	json_array_clear(s);
	assert_int_equal(json_array_size(s), 0);
	rs_signals_of_state("starting", "port_unavailable", "exit 111", s);
	d = json_dumps(s, JSON_COMPACT);
	assert_string_equal(d, "[\"down\",\"port_taken\",\"exit_code\"]");
	free(d);
	json_array_clear(s);
	rs_signals_of_state("ready", "restarting", "watchdog: no ping for 5000 ms: signal 9 (Killed)", s);
	assert_int_equal(json_array_size(s), 4); /* down, exit_signal, exit_signal_9, hung */
	json_array_clear(s);
	json_t *heal = json_pack("{s:s, s:[s, s]}", "playbook", "port", "steps", "restart", "rebind");
	rs_signals_of_heal(heal, s);
	d = json_dumps(s, JSON_COMPACT);
	assert_string_equal(d, "[\"rebind\"]");
	free(d);
	json_decref(heal);
	json_decref(s);
}

static void test_rank_dependency_down(void **state)
{
	(void)state;
	/* The seeded incident: the immutable log killed three times, audit's
	 * appends pending. */
	json_t *e = json_array();
	json_array_append_new(e, ev("E1", "immutable_log", "down", "exit_signal"));
	json_array_append_new(e, ev("E2", "immutable_log", "down", "exit_signal"));
	json_array_append_new(e, ev("E3", "immutable_log", "crash_loop", "down"));
	json_array_append_new(e, ev("E4", "immutable_log", "restarts", NULL));
	json_array_append_new(e, ev("E5", "audit", "unlogged", NULL));
	json_array_append_new(e, ev("E6", "metrics", "down", NULL)); /* not audit's dependency */
	json_object_set_new(json_array_get(e, 1), "signals",
			    json_pack("[s, s, s]", "down", "exit_signal", "exit_signal_9"));
	json_t *h = rs_rank(e, "audit");
	assert_true(json_array_size(h) >= 3);
	json_t *top = json_array_get(h, 0);
	assert_string_equal(json_string_value(json_object_get(top, "id")), "H1");
	assert_string_equal(json_string_value(json_object_get(top, "rule")), "dependency_down");
	assert_string_equal(json_string_value(json_object_get(top, "kernel")), "immutable_log");
	char *ids = json_dumps(json_object_get(top, "evidence"), JSON_COMPACT);
	/* its own evidence and the supporting signals', the audit one included */
	assert_non_null(strstr(ids, "\"E1\""));
	assert_non_null(strstr(ids, "\"E4\""));
	assert_non_null(strstr(ids, "\"E5\""));
	assert_null(strstr(ids, "\"E6\""));
	free(ids);
	/* best first */
	json_int_t last = 1000;
	size_t i;
	json_t *x;
	json_array_foreach(h, i, x) {
		json_int_t s = json_integer_value(json_object_get(x, "score"));
		assert_true(s <= last);
		last = s;
		assert_string_not_equal(json_string_value(json_object_get(x, "kernel")), "metrics");
	}
	json_decref(h);

	/* Asked about the log itself: its own down and kill, no dependency rule. */
	h = rs_rank(e, "immutable_log");
	top = json_array_get(h, 0);
	assert_string_equal(json_string_value(json_object_get(top, "rule")), "crash_loop");
	json_array_foreach(h, i, x)
		assert_string_not_equal(json_string_value(json_object_get(x, "rule")), "dependency_down");
	json_decref(h);
	json_decref(e);
}

static void test_rank_oom_and_port(void **state)
{
	(void)state;
	json_t *e = json_array();
	json_array_append_new(e, ev("E1", "metrics", "exit_signal_9", "oom"));
	json_array_append_new(e, ev("E2", "metrics", "exit_signal", "down"));
	json_t *h = rs_rank(e, NULL);
	assert_string_equal(json_string_value(json_object_get(json_array_get(h, 0), "rule")), "oom");
	json_decref(h);
	json_decref(e);

	/* Without the OOM hint a signal 9 is only a kill. */
	e = json_array();
	json_array_append_new(e, ev("E1", "metrics", "exit_signal_9", "exit_signal"));
	h = rs_rank(e, "metrics");
	assert_string_equal(json_string_value(json_object_get(json_array_get(h, 0), "rule")), "killed");
	json_decref(h);
	json_decref(e);

	e = json_array();
	json_array_append_new(e, ev("E1", "librarian", "port_taken", "down"));
	json_array_append_new(e, ev("E2", "librarian", "rebind", NULL));
	h = rs_rank(e, "librarian");
	json_t *top = json_array_get(h, 0);
	assert_string_equal(json_string_value(json_object_get(top, "rule")), "port_taken");
	assert_int_equal(json_integer_value(json_object_get(top, "score")), 65 + 15);
	json_decref(h);
	json_decref(e);

	/* Nothing: no hypothesis. */
	e = json_array();
	json_array_append_new(e, json_pack("{s:s, s:[]}", "id", "E1", "signals"));
	h = rs_rank(e, NULL);
	assert_int_equal(json_array_size(h), 0);
	json_decref(h);
	json_decref(e);
	assert_true(rs_rule_count() >= 10);
	assert_string_equal(rs_rule_id(0), "dependency_down");
}

static void test_synth_check(void **state)
{
	(void)state;
	json_t *e = json_array();
	json_array_append_new(e, ev("E1", "immutable_log", "down", NULL));
	json_array_append_new(e, ev("E2", "audit", "unlogged", NULL));

	json_t *c = rs_synth_check("The log was down [E1]. Audit could not append [E1][E2].\n"
				   "It will recover.", e);
	assert_int_equal(json_integer_value(json_object_get(c, "kept")), 2);
	assert_int_equal(json_integer_value(json_object_get(c, "dropped")), 1);
	assert_string_equal(json_string_value(json_object_get(c, "text")),
			    "The log was down [E1]. Audit could not append [E1][E2].");
	json_decref(c);

	/* an unknown id drops its claim; citations after the full stop count */
	c = rs_synth_check("The log was down. [E1] The disk is full [E9]. Both [E1, E2].", e);
	assert_int_equal(json_integer_value(json_object_get(c, "kept")), 2);
	assert_int_equal(json_integer_value(json_object_get(c, "dropped")), 1);
	assert_null(strstr(json_string_value(json_object_get(c, "text")), "disk"));
	json_t *cl = json_array_get(json_object_get(c, "claims"), 1);
	assert_int_equal(json_array_size(json_object_get(cl, "cites")), 2);
	json_decref(c);

	/* nothing cited: nothing kept */
	c = rs_synth_check("The log was down. Audit suffered.", e);
	assert_int_equal(json_integer_value(json_object_get(c, "kept")), 0);
	assert_int_equal(json_integer_value(json_object_get(c, "dropped")), 2);
	json_decref(c);
	c = rs_synth_check("Invented [E42].", e);
	assert_int_equal(json_integer_value(json_object_get(c, "kept")), 0);
	json_decref(c);
	c = rs_synth_check("", e);
	assert_int_equal(json_integer_value(json_object_get(c, "kept")), 0);
	json_decref(c);

	/* the prompt lists the evidence and the hypotheses with their ids */
	json_object_set_new(json_array_get(e, 0), "summary", json_string("the log went restarting"));
	json_t *h = rs_rank(e, "audit");
	json_t *m = rs_synth_prompt("why?", e, h);
	assert_int_equal(json_array_size(m), 2);
	const char *user = json_string_value(json_object_get(json_array_get(m, 1), "content"));
	assert_non_null(strstr(user, "[E1]"));
	assert_non_null(strstr(user, "the log went restarting"));
	assert_non_null(strstr(user, "Question: why?"));
	json_decref(m);
	char *f = rs_fallback_text("no model is configured", e, h);
	assert_non_null(strstr(f, "No model wrote this answer (no model is configured)"));
	assert_non_null(strstr(f, "1. immutable_log was down"));
	free(f);
	json_decref(h);
	json_decref(e);
}

static void test_memory_query(void **state)
{
	(void)state;
	char q[512];
	assert_int_equal(rs_memory_query("Why did the audit kernel stop appending at 10:02?", q,
					 sizeof q),
			 4);
	assert_string_equal(q, "\"audit\" OR \"kernel\" OR \"stop\" OR \"appending\"");
	/* Lower-cased, once each; quotes and operators in the question are
	 * only separators. */
	assert_int_equal(rs_memory_query("ZEBRA zebra \"Zebra\" NOT* OR(crossing)", q, sizeof q), 2);
	assert_string_equal(q, "\"zebra\" OR \"crossing\"");
	assert_int_equal(rs_memory_query("why? is it so", q, sizeof q), 0);
	assert_string_equal(q, "");
	assert_int_equal(rs_memory_query(NULL, q, sizeof q), 0);
	/* At most RS_MEMORY_WORDS words, and never past the buffer. */
	assert_int_equal(rs_memory_query("one1 two2 three3 four4 five5 six6 seven7 eight8 nine9",
					 q, sizeof q),
			 RS_MEMORY_WORDS);
	assert_null(strstr(q, "nine9"));
	char small[20];
	int n = rs_memory_query("alpha bravo charlie delta", small, sizeof small);
	assert_int_equal(n, 2);
	assert_string_equal(small, "\"alpha\" OR \"bravo\"");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_question_kernel),
		cmocka_unit_test(test_memory_query),
		cmocka_unit_test(test_question_times),
		cmocka_unit_test(test_redact),
		cmocka_unit_test(test_signals),
		cmocka_unit_test(test_rank_dependency_down),
		cmocka_unit_test(test_rank_oom_and_port),
		cmocka_unit_test(test_synth_check),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
