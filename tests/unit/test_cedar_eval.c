/* Unit tests of the Cedar engine below the parser: values, `like`, the
 * extensions' text forms, Cedar's JSON formats, entity sets (duplicates,
 * cycles, closure, a request's entities over a store) and the evaluator
 * and authorizer with Cedar's error semantics. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/policy/authorize.h"
#include "kernels/policy/eval.h"
#include "kernels/policy/ext.h"
#include "kernels/policy/json.h"

static cedar_arena A;

static int setup(void **state)
{
	(void)state;
	cedar_arena_init(&A, 64u << 20);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	cedar_arena_free(&A);
	return 0;
}

static json_t *J(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, JSON_ALLOW_NUL | JSON_DECODE_ANY, &e);
	if (!j)
		fail_msg("bad test JSON (%s): %s", e.text, text);
	return j;
}

static cedar_value V(const char *json)
{
	json_t *j = J(json);
	cedar_value v;
	sdk_err err;
	if (cedar_json_value(&A, j, &v, &err) < 0)
		fail_msg("%s: %s", json, err.msg);
	json_decref(j);
	return v;
}

/* ---- values */

static void test_values(void **state)
{
	(void)state;
	cedar_value s = V("[3, 1, 2, 1, \"a\", true, [1], {\"k\": 1}]");
	assert_int_equal(s.kind, CEDAR_SET);
	assert_int_equal(s.n, 7);
	/* Kinds first: bool, long, string, set, record. */
	assert_int_equal(s.items[0].kind, CEDAR_BOOL);
	assert_int_equal(s.items[1].i, 1);
	assert_int_equal(s.items[3].i, 3);
	cedar_value one = cedar_long(1), seven = cedar_long(7);
	assert_true(cedar_set_contains(&s, &one));
	assert_false(cedar_set_contains(&s, &seven));
	cedar_value a = V("{\"b\": [2, 1], \"a\": {\"x\": \"y\"}}"), b = V("{\"a\": {\"x\": \"y\"}, \"b\": [1, 2, 2]}");
	assert_true(cedar_value_eq(&a, &b));
	assert_non_null(cedar_record_get(&a, "b", 1));
	assert_null(cedar_record_get(&a, "c", 1));
	cedar_value str1 = cedar_string("1", 1);
	assert_false(cedar_value_eq(&one, &str1));
	cedar_value d1 = V("{\"__extn\": {\"fn\": \"decimal\", \"arg\": \"1.0\"}}");
	cedar_value d2 = V("{\"__extn\": {\"fn\": \"decimal\", \"arg\": \"1.0000\"}}");
	assert_true(cedar_value_eq(&d1, &d2));
	cedar_attr dup[2] = { { "k", 1, one }, { "k", 1, seven } };
	cedar_value rec;
	const cedar_attr *which;
	assert_int_equal(cedar_record_of(dup, 2, &rec, &which), -1);
	assert_string_equal(which->key, "k");
	char buf[64];
	cedar_value_format(&s, buf, 16);
	assert_int_equal(strlen(buf), 15);
	assert_string_equal(buf + 12, "...");
	cedar_value e = V("{\"__entity\": {\"type\": \"NS::User\", \"id\": \"a\\\"b\"}}");
	cedar_value_format(&e, buf, sizeof buf);
	assert_string_equal(buf, "NS::User::\"a\\\"b\"");
}

static void test_like(void **state)
{
	(void)state;
	static const struct {
		const char *pattern, *text;
		bool match;
	} cases[] = {
		{ "", "", true },        { "", "a", false },        { "*", "", true },
		{ "a*", "abc", true },   { "a*", "ba", false },      { "*c", "abc", true },
		{ "a*c", "ac", true },   { "a*c", "abcbc", true },   { "a*b*c", "aXbYc", true },
		{ "a*b*c", "acb", false }, { "abc*abc", "abcabc", true }, { "abc*abc", "abcab", false },
		{ "*a*", "bab", true },  { "a\\*c", "a*c", true },   { "a\\*c", "abc", false },
		{ "é*é", "été", true },  { "**", "x", true },        { "x", "x", true },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char text[200];
		snprintf(text, sizeof text, "permit(principal, action, resource) when { \"\" like \"%s\" };",
			 cases[i].pattern);
		cedar_policy_set *ps;
		cedar_parse_error err;
		assert_int_equal(cedar_parse(text, strlen(text), &ps, &err), 0);
		const cedar_expr *like = ps->policies[0].cond;
		if (cedar_like(like->pat, cases[i].text, (uint32_t)strlen(cases[i].text)) != cases[i].match)
			fail_msg("\"%s\" like \"%s\" should be %d", cases[i].text, cases[i].pattern, cases[i].match);
		cedar_policy_set_free(ps);
	}
}

static void test_extension_texts(void **state)
{
	(void)state;
	char buf[64];
	sdk_err err;
	int64_t v;
	assert_int_equal(cedar_decimal_parse("-1.5", 4, &v, &err), 0);
	assert_int_equal(v, -15000);
	cedar_decimal_format(v, buf, sizeof buf);
	assert_string_equal(buf, "-1.5000");
	assert_int_equal(cedar_decimal_parse("-922337203685477.5808", 21, &v, &err), 0);
	cedar_decimal_format(v, buf, sizeof buf);
	assert_string_equal(buf, "-922337203685477.5808");
	assert_int_equal(cedar_decimal_parse("922337203685477.5808", 20, &v, &err), -1);
	assert_int_equal(cedar_decimal_parse("1.23456", 7, &v, &err), -1);
	assert_int_equal(cedar_decimal_parse("1", 1, &v, &err), -1);
	assert_int_equal(cedar_decimal_parse(".5", 2, &v, &err), -1);

	cedar_ipaddr ip;
	static const char *const good[] = { "10.0.0.1", "0.0.0.0/0", "::", "::1", "1::", "fe80::1/64",
					    "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::", "FFFF::/128" };
	static const char *const bad[] = { "010.0.0.1", "10.0.0", "256.0.0.1", "10.0.0.1/33",
					   "10.0.0.1/08", "10.0.0.1/", "1:2:3:4:5:6:7:8::", ":1", "1:",
					   "1:::2", "::ffff:1.2.3.4", "12345::", "fe80::1/129",
					   "1111:2222:3333:4444:5555:6666:7777:8888/128X" };
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		if (cedar_ip_parse(good[i], strlen(good[i]), &ip, &err) < 0)
			fail_msg("%s refused: %s", good[i], err.msg);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (cedar_ip_parse(bad[i], strlen(bad[i]), &ip, &err) == 0)
			fail_msg("%s accepted", bad[i]);
	assert_int_equal(cedar_ip_parse("fe80::1/64", 10, &ip, &err), 0);
	assert_int_equal(ip.v6, 1);
	assert_int_equal(ip.prefix, 64);
	assert_int_equal(ip.addr[0], 0xfe);
	assert_int_equal(ip.addr[15], 1);

	assert_int_equal(cedar_datetime_parse("1970-01-02", 10, &v, &err), 0);
	assert_int_equal(v, 86400000);
	assert_int_equal(cedar_datetime_parse("2024-06-15T14:30:00.250+0200", 28, &v, &err), 0);
	cedar_datetime_format(v, buf, sizeof buf);
	assert_string_equal(buf, "2024-06-15T12:30:00.250Z");
	assert_int_equal(cedar_datetime_parse("0000-01-01", 10, &v, &err), 0);
	cedar_datetime_format(v, buf, sizeof buf);
	assert_string_equal(buf, "0000-01-01T00:00:00.000Z");
	assert_int_equal(cedar_datetime_parse("2023-02-29", 10, &v, &err), -1);
	assert_int_equal(cedar_datetime_parse("2024-06-15T24:00:00Z", 20, &v, &err), -1);
	assert_int_equal(cedar_datetime_parse("2024-06-15T12:00:00", 19, &v, &err), -1);
	assert_int_equal(cedar_datetime_parse("2024-06-15T12:00:00+2400", 24, &v, &err), -1);

	assert_int_equal(cedar_duration_parse("1d2h3m4s5ms", 11, &v, &err), 0);
	assert_int_equal(v, 93784005);
	assert_int_equal(cedar_duration_parse("-1ms", 4, &v, &err), 0);
	assert_int_equal(v, -1);
	assert_int_equal(cedar_duration_parse("-9223372036854775808ms", 22, &v, &err), 0);
	assert_int_equal(v, INT64_MIN);
	assert_int_equal(cedar_duration_parse("9223372036854775808ms", 21, &v, &err), -1);
	assert_int_equal(cedar_duration_parse("1ms1s", 5, &v, &err), -1);
	assert_int_equal(cedar_duration_parse("-", 1, &v, &err), -1);
	assert_int_equal(cedar_duration_parse("", 0, &v, &err), -1);
}

static void test_json_values(void **state)
{
	(void)state;
	sdk_err err;
	cedar_value v;
	static const char *const refused[] = {
		"1.5", "null", "[1, null]", "{\"__expr\": \"1\"}", "{\"__entity\": {\"type\": \"if\", \"id\": \"x\"}}",
		"{\"__extn\": {\"fn\": \"decimal\", \"arg\": \"x\"}}", "{\"__extn\": {\"fn\": \"nope\", \"arg\": \"1\"}}",
	};
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
		json_t *j = J(refused[i]);
		if (cedar_json_value(&A, j, &v, &err) == 0)
			fail_msg("accepted %s", refused[i]);
		json_decref(j);
	}
	/* Escapes only when they are the object's one key and well formed. */
	v = V("{\"__entity\": {\"type\": \"A::B\", \"id\": \"x\"}, \"y\": 1}");
	assert_int_equal(v.kind, CEDAR_RECORD);
	v = V("{\"__extn\": {\"fn\": \"decimal\", \"z\": 1}}");
	assert_int_equal(v.kind, CEDAR_RECORD);
	v = V("{\"__extn\": {\"fn\": \"isIpv4\", \"arg\": {\"__extn\": {\"fn\": \"ip\", \"arg\": \"1.2.3.4\"}}}}");
	assert_int_equal(v.kind, CEDAR_BOOL);
	assert_true(v.b);
	v = V("{\"__extn\": {\"fn\": \"ip\", \"args\": [\"::1\"]}}");
	assert_int_equal(v.kind, CEDAR_IP);
	/* Deep values are refused, not recursed into without end. */
	char deep[400];
	memset(deep, '[', 200);
	memset(deep + 200, ']', 200);
	json_t *j = json_loadb(deep, 400, 0, NULL);
	assert_non_null(j);
	assert_int_equal(cedar_json_value(&A, j, &v, &err), -1);
	json_decref(j);
	/* Back to JSON. */
	v = V("{\"e\": {\"__entity\": {\"type\": \"U\", \"id\": \"a\"}}, \"d\": {\"__extn\": {\"fn\": \"decimal\", \"arg\": \"1.5\"}}, \"s\": [2, 1]}");
	json_t *out = cedar_value_json(&v);
	char *text = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(text, "{\"d\":{\"__extn\":{\"arg\":\"1.5000\",\"fn\":\"decimal\"}},"
				  "\"e\":{\"__entity\":{\"id\":\"a\",\"type\":\"U\"}},\"s\":[1,2]}");
	free(text);
	json_decref(out);
	/* Type names. */
	assert_true(cedar_type_name_valid("A::B_2", 6));
	assert_false(cedar_type_name_valid("A:: B", 5));
	assert_false(cedar_type_name_valid("A::", 3));
	assert_false(cedar_type_name_valid("", 0));
	assert_false(cedar_type_name_valid("1A", 2));
	assert_false(cedar_type_name_valid("A::__cedar", 10));
	/* Uids: objects, the __entity form, and for requests the text form. */
	const cedar_uid *u;
	json_t *t = json_string("NS::User::\"al\\u{69}ce\"");
	assert_int_equal(cedar_json_uid(&A, t, &u, &err), 0);
	assert_string_equal(u->type, "NS::User");
	assert_string_equal(u->id, "alice");
	assert_int_equal(cedar_json_uid_strict(&A, t, &u, &err), -1);
	json_decref(t);
}

/* ---- entities */

static cedar_entities *ents(const char *json, bool closure, sdk_err *err)
{
	json_t *j = J(json);
	cedar_entities *es = NULL;
	int rc = cedar_entities_parse(&A, j, closure, false, &es, err);
	json_decref(j);
	return rc < 0 ? NULL : es;
}

static const cedar_uid *uid(const char *type, const char *id)
{
	return cedar_uid_new(&A, type, (uint32_t)strlen(type), id, (uint32_t)strlen(id));
}

#define E(t, i, parents) "{\"uid\": {\"type\": \"" t "\", \"id\": \"" i "\"}, \"attrs\": {}, \"parents\": [" parents "]}"
#define P(t, i) "{\"type\": \"" t "\", \"id\": \"" i "\"}"

static void test_entity_sets(void **state)
{
	(void)state;
	sdk_err err;
	assert_non_null(
		ents("[" E("U", "a", P("G", "g")) "," E("U", "a", P("G", "g") "," P("G", "g")) "]",
		     true, &err));
	assert_null(ents("[" E("U", "a", P("G", "g")) "," E("U", "a", "") "]", true, &err));
	assert_non_null(strstr(err.msg, "duplicate"));
	assert_null(ents("[" E("U", "a", P("U", "a")) "]", false, &err));
	assert_non_null(strstr(err.msg, "cycle"));
	assert_null(ents("[" E("A", "1", P("A", "2")) "," E("A", "2", P("A", "3")) "," E(
				 "A", "3", P("A", "1")) "]",
			 false, &err));
	assert_null(ents("[{\"uid\": " P("U", "a") ", \"attrs\": {}}]", false, &err));
	assert_non_null(strstr(err.msg, "parents"));
	assert_null(
		ents("[{\"uid\": " P("U", "a") ", \"attrs\": {}, \"parents\": [], \"tags\": null}]",
		     false, &err));
	assert_null(ents("[{\"uid\": " P("A:: B", "a") ", \"attrs\": {}, \"parents\": []}]", false,
			 &err));
	assert_null(ents("{}", false, &err));
	/* The closure: a diamond and a chain. */
	cedar_entities *es = ents(
		"[" E("U", "a", P("G", "x") "," P("G", "y")) "," E("G", "x", P("G", "top")) "," E(
			"G", "y", P("G", "top")) "," E("G", "top", P("G", "root")) "]",
		true, &err);
	assert_non_null(es);
	cedar_view v = { .base = es };
	assert_int_equal(cedar_view_check(&v, &A, &err), 0);
	assert_int_equal(cedar_view_in(&v, &A, uid("U", "a"), uid("G", "root")), 1);
	assert_int_equal(cedar_view_in(&v, &A, uid("U", "a"), uid("U", "a")), 1);
	assert_int_equal(cedar_view_in(&v, &A, uid("U", "ghost"), uid("U", "ghost")), 1);
	assert_int_equal(cedar_view_in(&v, &A, uid("G", "top"), uid("G", "x")), 0);
	assert_int_equal(cedar_entities_get(es, uid("U", "a"))->n_anc, 4);
}

/* A chain makes the kept closure quadratic: past CEDAR_CLOSURE_MAX links
 * it is refused, below it computed. */
static void test_closure_bound(void **state)
{
	(void)state;
	sdk_err err;
	for (int n = 500; n <= 2500; n += 2000) {
		json_t *arr = json_array();
		for (int i = 0; i < n; i++) {
			char id[16], parent[16];
			snprintf(id, sizeof id, "%d", i);
			snprintf(parent, sizeof parent, "%d", i + 1);
			json_array_append_new(arr, json_pack("{s:{s:s, s:s}, s:{}, s:[{s:s, s:s}]}", "uid", "type",
							     "G", "id", id, "attrs", "parents", "type", "G", "id",
							     parent));
		}
		cedar_entities *es;
		int rc = cedar_entities_parse(&A, arr, true, false, &es, &err);
		json_decref(arr);
		if (n == 500) {
			assert_int_equal(rc, 0);
			assert_int_equal(cedar_entities_get(es, uid("G", "0"))->n_anc, 500);
		} else {
			assert_int_equal(rc, -1);
			assert_non_null(strstr(err.msg, "too large"));
		}
	}
}

static void test_views(void **state)
{
	(void)state;
	sdk_err err;
	cedar_entities *store =
		ents("[" E("U", "a", P("G", "g")) "," E("G", "g", P("G", "top")) "]", true, &err);
	assert_non_null(store);
	/* A request entity under stored groups. */
	cedar_view v = { .over = ents("[" E("U", "b", P("G", "g")) "]", false, &err),
			 .base = store };
	assert_int_equal(cedar_view_check(&v, &A, &err), 0);
	assert_false(v.mixed);
	assert_int_equal(cedar_view_in(&v, &A, uid("U", "b"), uid("G", "top")), 1);
	assert_int_equal(cedar_view_in(&v, &A, uid("U", "a"), uid("G", "top")), 1);
	/* A request entity replacing a stored one cuts the stored chain. */
	v = (cedar_view){ .over = ents("[" E("G", "g", "") "]", false, &err), .base = store };
	assert_int_equal(cedar_view_check(&v, &A, &err), 0);
	assert_true(v.mixed);
	assert_int_equal(cedar_view_in(&v, &A, uid("U", "a"), uid("G", "top")), 0);
	assert_int_equal(cedar_view_in(&v, &A, uid("U", "a"), uid("G", "g")), 1);
	/* ... or extends it, through a parent the store only names. */
	v = (cedar_view){ .over = ents("[" E("G", "top", P("G", "sky")) "]", false, &err),
			  .base = store };
	assert_int_equal(cedar_view_check(&v, &A, &err), 0);
	assert_int_equal(cedar_view_in(&v, &A, uid("U", "a"), uid("G", "sky")), 1);
	/* A cycle through both layers is refused. */
	v = (cedar_view){ .over = ents("[" E("G", "top", P("U", "a")) "]", false, &err),
			  .base = store };
	assert_int_equal(cedar_view_check(&v, &A, &err), -1);
	assert_non_null(strstr(err.msg, "cycle"));
}

/* ---- decisions */

typedef struct outcome {
	bool allow;
	char reasons[64], errors[64]; /* policy indexes, "0,2" */
} outcome;

static outcome decide(const char *policies, const char *entities, const char *request)
{
	cedar_policy_set *ps;
	cedar_parse_error perr;
	if (cedar_parse(policies, strlen(policies), &ps, &perr) < 0)
		fail_msg("policies: %u:%u %s", perr.line, perr.column, perr.msg);
	sdk_err err;
	cedar_entities *es = ents(entities, false, &err);
	if (!es)
		fail_msg("entities: %s", err.msg);
	json_t *rq = J(request);
	cedar_request r;
	if (cedar_request_parse(&A, json_object_get(rq, "principal"), json_object_get(rq, "action"),
				json_object_get(rq, "resource"), json_object_get(rq, "context"), &r,
				&err) < 0)
		fail_msg("request: %s", err.msg);
	cedar_view v = { .over = es };
	assert_int_equal(cedar_view_check(&v, &A, &err), 0);
	cedar_response resp;
	assert_int_equal(cedar_authorize(ps, &r, &v, &A, &resp), 0);
	outcome o = { .allow = resp.allow };
	for (uint32_t i = 0; i < resp.n_determining; i++)
		snprintf(o.reasons + strlen(o.reasons), sizeof o.reasons - strlen(o.reasons), "%s%u",
			 i ? "," : "", resp.determining[i]);
	for (uint32_t i = 0; i < resp.n_errors; i++)
		snprintf(o.errors + strlen(o.errors), sizeof o.errors - strlen(o.errors), "%s%u", i ? "," : "",
			 resp.errors[i].policy);
	json_decref(rq);
	cedar_policy_set_free(ps);
	return o;
}

static const char *const ENTS = "[" E("User", "alice", P("Group", "eng")) "," E("Group", "eng", P("Group", "all")) ","
	"{\"uid\": " P("Doc", "d") ", \"attrs\": {\"owner\": {\"__entity\": " P("User", "alice") "}, \"level\": 3,"
	" \"tags\": [\"x\"]}, \"parents\": [], \"tags\": {\"t\": 1}}]";
static const char *const REQ = "{\"principal\": " P("User", "alice") ", \"action\": " P("Action", "view")
	", \"resource\": " P("Doc", "d") ", \"context\": {\"n\": 2, \"ok\": true}}";

/* The condition's result: 1 true, 0 false, -1 error. */
static int eval_cond(const char *cond)
{
	char text[1024];
	snprintf(text, sizeof text, "permit(principal, action, resource) when { %s };", cond);
	outcome o = decide(text, ENTS, REQ);
	return o.errors[0] ? -1 : o.allow;
}

static void test_evaluation(void **state)
{
	(void)state;
	static const struct {
		const char *cond;
		int want;
	} cases[] = {
		{ "false && 1", 0 }, { "true && 1", -1 }, { "true || 1", 1 }, { "false || 1", -1 },
		{ "1 || true", -1 }, { "if 1 then true else false", -1 }, { "if false then 1 else true", 1 },
		{ "[1, true] == [true, 1] && [1, 1] == [1]", 1 }, { "{a: 1, b: 2} == {b: 2, a: 1}", 1 },
		{ "1 == \"1\"", 0 }, { "User::\"a\" == Group::\"a\"", 0 },
		{ "principal in Group::\"all\"", 1 }, { "principal in [Group::\"x\", Group::\"all\"]", 1 },
		{ "principal in [Group::\"x\", 1]", -1 }, { "1 in [principal]", -1 }, { "principal in []", 0 },
		{ "principal in {a: 1}", -1 },
		{ "User::\"ghost\".x == 1", -1 }, { "User::\"ghost\" has x", 0 },
		{ "resource.owner == principal && resource.owner in Group::\"eng\"", 1 },
		{ "resource.missing == 1", -1 }, { "resource has level && resource.level > 2", 1 },
		{ "resource.getTag(\"t\") == 1 && resource.hasTag(\"t\") && !resource.hasTag(\"u\")", 1 },
		{ "resource.getTag(\"u\") == 1", -1 }, { "resource has t", 0 },
		{ "9223372036854775807 + 1 > 0", -1 }, { "-(-9223372036854775807 - 1) > 0", -1 },
		{ "4611686018427387904 * 2 > 0", -1 }, { "9223372036854775806 + 1 == 9223372036854775807", 1 },
		{ "\"a\" < \"b\"", -1 }, { "decimal(\"1.0\") < decimal(\"2.0\")", -1 },
		{ "decimal(\"1.0\").lessThan(decimal(\"2.0\"))", 1 }, { "decimal(\"x\") == decimal(\"1.0\")", -1 },
		{ "ip(\"10.1.2.3\").isInRange(ip(\"10.0.0.0/8\"))", 1 },
		{ "ip(\"1.2.3.4\").isInRange(ip(\"1.0.0.0/8\"), ip(\"2.0.0.0/8\"))", -1 },
		{ "datetime(\"2024-01-02\") > datetime(\"2024-01-01\")", 1 },
		{ "datetime(\"2024-01-02\") > duration(\"1d\")", -1 },
		{ "datetime(\"2024-06-15T12:30:00Z\").toTime() == duration(\"12h30m\")", 1 },
		{ "duration(\"-1d23h\").toDays() == -1", 1 },
		{ "context.n == 2 && context.ok", 1 }, { "context.nope", -1 },
		{ "[].containsAll([]) && ![1].containsAny([]) && [1, 2].containsAll([2])", 1 },
		{ "\"abc\".contains(\"a\")", -1 }, { "1 like \"1\"", -1 }, { "1 is User", -1 },
		{ "principal is User in Group::\"eng\"", 1 }, { "principal has x.y", 0 },
		{ "resource has level.y", -1 }, { "{b: context.n, a: 1} == {a: 1, b: 2}", 1 },
		{ "1", -1 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int got = eval_cond(cases[i].cond);
		if (got != cases[i].want)
			fail_msg("%s: got %d, want %d", cases[i].cond, got, cases[i].want);
	}
}

static void test_decisions(void **state)
{
	(void)state;
	outcome o = decide("permit(principal, action, resource);\n"
			   "forbid(principal, action, resource) when { resource.level > 1 };\n"
			   "permit(principal in Group::\"all\", action, resource);\n"
			   "forbid(principal, action, resource) when { resource.nope };",
			   ENTS, REQ);
	assert_false(o.allow);
	assert_string_equal(o.reasons, "1");
	assert_string_equal(o.errors, "3");
	o = decide("permit(principal, action, resource);\n"
		   "forbid(principal, action, resource) when { resource.nope };\n"
		   "permit(principal == User::\"alice\", action == Action::\"view\", resource is Doc);",
		   ENTS, REQ);
	assert_true(o.allow);
	assert_string_equal(o.reasons, "0,2");
	assert_string_equal(o.errors, "1");
	o = decide("permit(principal, action, resource) when { 1 };", ENTS, REQ);
	assert_false(o.allow);
	assert_string_equal(o.reasons, "");
	assert_string_equal(o.errors, "0");
	o = decide("", ENTS, REQ);
	assert_false(o.allow);
	/* A scope that does not match keeps its condition from running. */
	o = decide("permit(principal == User::\"bob\", action, resource) when { 1 + true == 2 };", ENTS, REQ);
	assert_string_equal(o.errors, "");
}

static void test_arena(void **state)
{
	(void)state;
	cedar_arena a;
	cedar_arena_init(&a, 100000);
	assert_non_null(cedar_arena_alloc(&a, 1000));
	assert_null(cedar_arena_alloc(&a, 200000));
	char *p = cedar_arena_alloc(&a, 10);
	assert_non_null(p);
	assert_int_equal((uintptr_t)p % 8, 0);
	cedar_arena_reset(&a);
	assert_true(a.total > 0);
	assert_non_null(cedar_arena_alloc(&a, 80000));
	cedar_arena_free(&a);
	assert_int_equal(a.total, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_values),     cmocka_unit_test(test_like),
		cmocka_unit_test(test_extension_texts), cmocka_unit_test(test_json_values),
		cmocka_unit_test(test_entity_sets), cmocka_unit_test(test_views),
		cmocka_unit_test(test_closure_bound),
		cmocka_unit_test(test_evaluation), cmocka_unit_test(test_decisions),
		cmocka_unit_test(test_arena),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
