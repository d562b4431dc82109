/* Unit tests of the alerts kernel's pure pieces: YAML and durations, the
 * templates, fingerprints and matchers, the rule state table (for,
 * keep_firing_for, resolution, resending) and the notifier's dedup stage
 * (group_wait, group_interval, repeat_interval, resolved once, silences,
 * inhibition, a failed delivery retried), with time passed in. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/alerts/alabels.h"
#include "kernels/alerts/notifier.h"
#include "kernels/alerts/rules.h"
#include "kernels/alerts/tmpl.h"
#include "kernels/alerts/yaml.h"
#include "sdk/rfc3339.h"

static void test_durations(void **state)
{
	(void)state;
	int64_t ms;
	assert_true(ay_duration("1h30m", &ms));
	assert_int_equal(ms, 5400000);
	assert_true(ay_duration("250ms", &ms));
	assert_int_equal(ms, 250);
	assert_true(ay_duration("0s", &ms));
	assert_int_equal(ms, 0);
	assert_false(ay_duration("30m1h", &ms)); /* units in order, as model.ParseDuration */
	assert_false(ay_duration("5", &ms));
	assert_false(ay_duration("", &ms));
	sdk_err e;
	const char *doc = "a: [1, 2]\nb: {c: \"x\"}\n";
	json_t *j = ay_parse(doc, strlen(doc), &e);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_array_get(json_object_get(j, "a"), 1)), "2");
	json_decref(j);
	assert_null(ay_parse("a: [", 4, &e));
	assert_non_null(strstr(e.msg, "line"));
}

static char *expand(const char *t, double v)
{
	json_t *l = json_pack("{s:s, s:s}", "job", "api", "instance", "a:1");
	char *out = NULL;
	sdk_err e;
	int rc = tmpl_expand(t, l, v, &out, &e);
	json_decref(l);
	if (rc < 0)
		return strdup(e.msg);
	return out;
}

static void check(const char *t, double v, const char *want)
{
	char *got = expand(t, v);
	assert_string_equal(got, want);
	free(got);
}

static void test_templates(void **state)
{
	(void)state;
	check("{{ $labels.job }} on {{ .Labels.instance }}", 1, "api on a:1");
	check("{{ $value }}", 0.5, "0.5");
	check("{{ $value }}", 1e21, "1e+21");
	check("{{ $value | humanize }}", 1234567, "1.235M");
	check("{{ $value | humanize1024 }}", 2048, "2ki"); /* Prometheus's prefixes: ki, Mi */
	check("{{ $value | humanizePercentage }}", 0.256, "25.6%");
	check("{{ $value | humanizeDuration }}", 3661, "1h 1m 1s");
	check("{{ printf \"%.1f\" $value }}", 2.25, "2.2");
	check("{{ $labels.job | toUpper }}", 0, "API");
	check("a {{- \" b \" -}} c", 0, "a b c");
	check("{{ $labels.nope }}", 0, "");
	sdk_err e;
	assert_int_equal(tmpl_check("{{ range $x }}{{ end }}", &e), SDK_EINVAL);
	assert_int_equal(tmpl_check("{{ $labels.job ", &e), SDK_EINVAL);
}

static void test_matchers_and_fingerprints(void **state)
{
	(void)state;
	al_matcher m;
	sdk_err e;
	json_t *l = json_pack("{s:s, s:s}", "alertname", "X", "job", "db");
	assert_int_equal(al_matcher_parse("job=~\"d.*\"", &m, &e), 0);
	assert_true(al_matcher_matches(&m, l));
	al_matcher_free(&m);
	assert_int_equal(al_matcher_parse("job!=db", &m, &e), 0);
	assert_false(al_matcher_matches(&m, l));
	al_matcher_free(&m);
	assert_int_equal(al_matcher_parse("job=~\"b\"", &m, &e), 0); /* anchored */
	assert_false(al_matcher_matches(&m, l));
	al_matcher_free(&m);
	/* The same set in another order: the same fingerprint. */
	json_t *l2 = json_pack("{s:s, s:s}", "job", "db", "alertname", "X");
	assert_true(al_fingerprint(l) == al_fingerprint(l2));
	json_object_set_new(l2, "job", json_string("web"));
	assert_true(al_fingerprint(l) != al_fingerprint(l2));
	json_decref(l);
	json_decref(l2);
}

/* ---- rules */

static ar_group *load(const char *yaml, size_t *n)
{
	ar_group *g;
	sdk_err e;
	int rc = ar_parse_file("t.yml", yaml, strlen(yaml), 10000, &g, n, &e);
	if (rc)
		fail_msg("%s", e.msg);
	return g;
}

static void eval(ar_rule *r, double v, int64_t ts)
{
	json_t *l = json_pack("{s:s, s:s}", "__name__", "x", "job", "a");
	ar_sample s = { l, v };
	sdk_err e;
	assert_int_equal(ar_eval_alerting(r, isnan(v) ? NULL : &s, isnan(v) ? 0 : 1, ts, 0, &e), 0);
	json_decref(l);
}

static void test_rule_states(void **state)
{
	(void)state;
	size_t n;
	ar_group *g = load("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: x > 1\n"
			   "    for: 2m\n    keep_firing_for: 1m\n    labels: {sev: '{{ $labels.job }}'}\n",
			   &n);
	assert_int_equal(n, 1);
	ar_rule *r = &g->rules[0];
	assert_true(r->alert);
	assert_int_equal(r->for_ms, 120000);
	eval(r, 5, 0);
	assert_int_equal(r->n_alerts, 1);
	assert_int_equal(r->alerts[0]->state, AR_PENDING);
	assert_string_equal(json_string_value(json_object_get(r->alerts[0]->labels, "sev")), "a");
	assert_null(json_object_get(r->alerts[0]->labels, "__name__"));
	assert_false(ar_needs_sending(r->alerts[0], 0, 60000, 10000)); /* pending: not sent */
	eval(r, 5, 60000);
	assert_int_equal(r->alerts[0]->state, AR_PENDING);
	eval(r, 5, 120000);
	assert_int_equal(r->alerts[0]->state, AR_FIRING);
	assert_true(ar_needs_sending(r->alerts[0], 120000, 60000, 10000));
	assert_int_equal(r->alerts[0]->valid_until, 120000 + 4 * 60000);
	assert_false(ar_needs_sending(r->alerts[0], 130000, 60000, 10000)); /* not before resend */
	assert_true(ar_needs_sending(r->alerts[0], 190000, 60000, 10000));
	/* Gone from the result: kept firing for keep_firing_for, then resolved. */
	eval(r, NAN, 200000);
	assert_int_equal(r->alerts[0]->state, AR_FIRING);
	eval(r, NAN, 260000);
	assert_int_equal(r->alerts[0]->state, AR_INACTIVE);
	assert_int_equal(r->alerts[0]->resolved_at, 260000);
	assert_true(ar_needs_sending(r->alerts[0], 260000, 60000, 10000)); /* resolved: at once */
	assert_false(ar_needs_sending(r->alerts[0], 270000, 60000, 10000) &&
		     r->alerts[0]->last_sent_at < 260000);
	/* A pending alert that goes away is forgotten. */
	eval(r, 5, 300000);
	assert_int_equal(r->alerts[0]->state, AR_PENDING);
	eval(r, NAN, 310000);
	assert_int_equal(r->n_alerts, 0);
	ar_groups_free(g, n);

	/* Errors name the group and the rule. */
	ar_group *bad;
	sdk_err e;
	const char *y = "groups:\n- name: g\n  rules:\n  - alert: A\n    for: 1m\n";
	assert_int_equal(ar_parse_file("t.yml", y, strlen(y), 10000, &bad, &n, &e), SDK_EINVAL);
	assert_non_null(strstr(e.msg, "expr"));
}

/* ---- the notifier */

static const char notifier_yaml[] =
	"route:\n  receiver: r\n  group_by: [alertname]\n  group_wait: 10s\n"
	"  group_interval: 1m\n  repeat_interval: 1h\n"
	"receivers:\n- name: r\n  webhook_configs:\n  - url: http://127.0.0.1:9/h\n    send_resolved: true\n"
	"inhibit_rules:\n- source_matchers: [sev=\"crit\"]\n  target_matchers: [sev=\"warn\"]\n  equal: [job]\n";

static size_t flush(ntf *n, int64_t now, bool ok, json_t **last)
{
	nt_out *o;
	size_t k = ntf_flush(n, now, "http://x", &o);
	for (size_t i = 0; i < k; i++) {
		ntf_sent(n, &o[i], ok);
		if (last) {
			json_decref(*last);
			*last = json_incref(o[i].payload);
		}
		ntf_out_free(&o[i]);
	}
	free(o);
	return k;
}

static void put(ntf *n, const char *name, const char *job, const char *sev, int64_t start,
		int64_t end, int64_t now)
{
	json_t *l = json_pack("{s:s, s:s, s:s}", "alertname", name, "job", job, "sev", sev);
	sdk_err e;
	assert_int_equal(ntf_put(n, l, NULL, start, end, "", now, &e), 0);
	json_decref(l);
}

/* The two ways Go writes a time: the webhook's encoding/json drops
 * trailing zeros (Alertmanager sent ".49Z" where Grace once sent ".490Z"),
 * API v2's strfmt keeps three digits; both read back to the same instant. */
static void test_time_styles(void **state)
{
	(void)state;
	static const struct {
		int64_t ms;
		const char *go, *millis;
	} cases[] = {
		{ 1796406534490, "2026-12-04T17:48:54.49Z", "2026-12-04T17:48:54.490Z" },
		{ 1796406534000, "2026-12-04T17:48:54Z", "2026-12-04T17:48:54.000Z" },
		{ 1796406534007, "2026-12-04T17:48:54.007Z", "2026-12-04T17:48:54.007Z" },
		{ 1796406534100, "2026-12-04T17:48:54.1Z", "2026-12-04T17:48:54.100Z" },
		{ 0, "0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		char b[40];
		int64_t back;
		assert_string_equal(sdk_rfc3339_format_ms(cases[i].ms, SDK_RFC3339_GO, b, sizeof b),
				    cases[i].go);
		if (cases[i].ms) {
			assert_true(sdk_rfc3339_parse_ms(b, &back));
			assert_int_equal(back, cases[i].ms);
		}
		assert_string_equal(
			sdk_rfc3339_format_ms(cases[i].ms, SDK_RFC3339_MILLIS, b, sizeof b),
			cases[i].millis);
		if (cases[i].ms) {
			assert_true(sdk_rfc3339_parse_ms(b, &back));
			assert_int_equal(back, cases[i].ms);
		}
	}
}

static void test_notifier(void **state)
{
	(void)state;
	ntf *n = ntf_new();
	sdk_err e;
	assert_int_equal(ntf_configure(n, notifier_yaml, strlen(notifier_yaml), 0, &e), 0);
	int64_t t = 1000000;
	json_t *last = NULL;
	put(n, "A", "db", "warn", t, t + 3600000, t);
	assert_int_equal(flush(n, t + 5000, true, &last), 0);   /* group_wait */
	assert_int_equal(flush(n, t + 10000, true, &last), 1);  /* first notification */
	assert_string_equal(json_string_value(json_object_get(last, "status")), "firing");
	assert_int_equal(flush(n, t + 70000, true, &last), 0);  /* nothing new */
	assert_int_equal(flush(n, t + 1800000, true, &last), 0); /* before repeat_interval */
	/* Ended (its endsAt passed without a refresh): resolved, said once. */
	assert_int_equal(flush(n, t + 3620000, true, &last), 1);
	assert_string_equal(json_string_value(json_object_get(last, "status")), "resolved");
	assert_int_equal(flush(n, t + 3680000, true, &last), 0);
	ntf_free(n);

	/* Repeat, resolve once, a failure retried. */
	n = ntf_new();
	assert_int_equal(ntf_configure(n, notifier_yaml, strlen(notifier_yaml), 0, &e), 0);
	put(n, "B", "db", "warn", t, t + 10 * 3600000, t);
	assert_int_equal(flush(n, t + 10000, true, &last), 1);
	/* group_interval flushes until repeat_interval has passed */
	int sent = 0;
	for (int64_t now = t + 70000; now < t + 3600000 + 10000; now += 60000)
		sent += (int)flush(n, now, true, &last);
	assert_int_equal(sent, 0);
	assert_int_equal(flush(n, t + 3600000 + 70000, true, &last), 1); /* repeated */
	/* resolved: the delivery fails, then is retried with the resolved alert */
	int64_t r = t + 3600000 + 80000;
	put(n, "B", "db", "warn", t, r, r);
	assert_int_equal(flush(n, r + 60000, false, &last), 1);
	assert_int_equal(flush(n, r + 120000, true, &last), 1);
	assert_string_equal(json_string_value(json_object_get(last, "status")), "resolved");
	assert_int_equal(flush(n, r + 180000, true, &last), 0); /* once */
	assert_int_equal(flush(n, r + 240000, true, &last), 0);

	/* Inhibition and silences leave alerts out. */
	int64_t u = r + 1000000;
	put(n, "C", "db", "warn", u, u + 3600000, u);
	put(n, "D", "db", "crit", u, u + 3600000, u);
	nt_silence s = { 0 };
	s.m.m = calloc(1, sizeof *s.m.m);
	assert_int_equal(al_matcher_parse("alertname=D", &s.m.m[0], &e), 0);
	s.m.n = 1;
	s.starts_ms = u;
	s.ends_ms = u + 3600000;
	char id[40];
	assert_int_equal(ntf_silence_set(n, &s, u, id, &e), 0);
	/* C is inhibited by D (same job), D is silenced: nothing to say. */
	assert_int_equal(flush(n, u + 10000, true, &last), 0);
	assert_int_equal(ntf_silence_expire(n, id, u + 20000, &e), 0);
	assert_int_equal(flush(n, u + 80000, true, &last), 1); /* D now; C still inhibited */
	assert_string_equal(json_string_value(json_object_get(json_object_get(last, "groupLabels"),
							      "alertname")), "D");
	/* A silence needs a matcher that does not match the empty string. */
	nt_silence bad = { 0 };
	bad.ends_ms = u + 100000;
	assert_int_equal(ntf_silence_set(n, &bad, u, id, &e), SDK_EINVAL);
	json_decref(last);
	ntf_free(n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_templates),
		cmocka_unit_test(test_matchers_and_fingerprints),
		cmocka_unit_test(test_rule_states),
		cmocka_unit_test(test_time_styles),
		cmocka_unit_test(test_notifier),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
