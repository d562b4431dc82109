/* Unit tests of the governance kernel's pure pieces and store: the rule
 * language and its evaluation (src/sdk/govrule.c), the state
 * table (fsm.c), and the store's steps on an in-memory database (store.c):
 * quorum writes the intent in the same transaction, a change voids
 * approvals, a veto closes, expiry, a result attached once. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "kernels/governance/fsm.h"
#include "sdk/govrule.h"
#include "kernels/governance/store.h"

static json_t *parse_ok(const char *text)
{
	sdk_err e = { "" };
	json_t *r = sdk_gov_rule_parse(text, &e);
	if (!r)
		fail_msg("%s: %s", text, e.msg);
	assert_int_equal(sdk_gov_rule_check(r, &e), 0);
	return r;
}

static void test_rule_parse(void **state)
{
	(void)state;
	json_t *r = parse_ok("2 admin");
	assert_int_equal(json_integer_value(json_object_get(r, "n")), 2);
	assert_string_equal(json_string_value(json_object_get(r, "role")), "admin");
	json_decref(r);
	r = parse_ok(" all_of( 1 admin ,any_of(2 user, 1 admin) ) ");
	char *s = json_dumps(r, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(s, "{\"all_of\":[{\"n\":1,\"role\":\"admin\"},{\"any_of\":[{\"n\":2,"
			       "\"role\":\"user\"},{\"n\":1,\"role\":\"admin\"}]}]}");
	free(s);
	json_decref(r);
	static const char *const bad[] = {
		"", "admin", "0 admin", "33 admin", "2 root", "2", "all_of 1 admin",
		"all_of(1 admin", "all_of()", "any_of(1 admin,)", "1 admin 2 user",
		"all_of(all_of(all_of(all_of(1 admin))))",
		"any_of(1 admin,1 admin,1 admin,1 admin,1 admin,1 admin,1 admin,1 admin,1 admin)",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		sdk_err e = { "" };
		json_t *x = sdk_gov_rule_parse(bad[i], &e);
		if (x)
			fail_msg("'%s' parsed", bad[i]);
		assert_true(e.msg[0] != '\0');
	}
	sdk_err e;
	json_t *j = json_pack("{s:i, s:s}", "n", 0, "role", "admin");
	assert_int_equal(sdk_gov_rule_check(j, &e), SDK_EINVAL);
	json_decref(j);
}

static json_t *votes(const char *spec)
{
	/* "ann:admin bob:user" */
	json_t *a = json_array();
	char buf[256];
	snprintf(buf, sizeof buf, "%s", spec);
	for (char *save, *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
		char *c = strchr(t, ':');
		*c = '\0';
		json_array_append_new(a, json_pack("{s:s, s:s}", "user", t, "role", c + 1));
	}
	return a;
}

static json_t *eval(const char *rule, const char *spec, const char *requester)
{
	json_t *r = parse_ok(rule), *v = votes(spec);
	json_t *out = sdk_gov_rule_eval(r, v, requester);
	json_decref(r);
	json_decref(v);
	assert_non_null(out);
	return out;
}

static bool satisfied(json_t *ev) { return json_is_true(json_object_get(ev, "satisfied")); }

static const char *waiting(json_t *ev, size_t i)
{
	return json_string_value(json_array_get(json_object_get(ev, "waiting_on"), i));
}

static void test_rule_eval(void **state)
{
	(void)state;
	/* The requester never counts; the same user counts once. */
	json_t *ev = eval("2 admin", "ann:admin ann:admin bob:admin", "bob");
	assert_false(satisfied(ev));
	assert_string_equal(waiting(ev, 0), "1 more approval from role admin");
	json_decref(ev);
	ev = eval("2 admin", "ann:admin cid:admin", "bob");
	assert_true(satisfied(ev));
	assert_int_equal(json_array_size(json_object_get(ev, "waiting_on")), 0);
	json_decref(ev);
	/* A user does not hold admin; an admin holds user. */
	ev = eval("2 admin", "uma:user ula:user", NULL);
	assert_false(satisfied(ev));
	assert_string_equal(waiting(ev, 0), "2 more approvals from role admin");
	json_decref(ev);
	ev = eval("2 user", "ann:admin uma:user", NULL);
	assert_true(satisfied(ev));
	json_decref(ev);
	/* all_of needs each; any_of one. */
	ev = eval("all_of(1 admin, any_of(2 user, 1 admin))", "uma:user", "ann");
	assert_false(satisfied(ev));
	assert_string_equal(waiting(ev, 0), "1 more approval from role admin");
	assert_string_equal(waiting(ev, 1), "one of: 1 more approval from role user | 1 more "
					    "approval from role admin");
	json_decref(ev);
	ev = eval("all_of(1 admin, any_of(2 user, 1 admin))", "uma:user ula:user bob:admin", "ann");
	assert_true(satisfied(ev));
	json_t *leaf = json_object_get(ev, "rule");
	leaf = json_array_get(json_object_get(leaf, "all_of"), 0);
	assert_int_equal(json_integer_value(json_object_get(leaf, "have")), 1);
	assert_string_equal(json_string_value(json_array_get(json_object_get(leaf, "approvers"), 0)),
			    "bob");
	json_decref(ev);
	ev = eval("any_of(2 admin, 3 user)", "", NULL);
	assert_false(satisfied(ev));
	assert_string_equal(waiting(ev, 0), "one of: 2 more approvals from role admin | 3 more "
					    "approvals from role user");
	json_decref(ev);
}

static void test_rule_eligible(void **state)
{
	(void)state;
	json_t *r = parse_ok("2 admin");
	assert_true(sdk_gov_rule_eligible(r, "admin"));
	assert_false(sdk_gov_rule_eligible(r, "user"));
	assert_false(sdk_gov_rule_eligible(r, NULL));
	json_decref(r);
	r = parse_ok("any_of(1 admin, 2 user)");
	assert_true(sdk_gov_rule_eligible(r, "user"));
	json_decref(r);
}

static void test_fsm_table(void **state)
{
	(void)state;
	/* Every allowed transition, and nothing else. */
	static const struct {
		int from, ev, to;
	} allowed[] = {
		{ GOV_OPEN, GOV_EV_APPROVE, GOV_OPEN },
		{ GOV_OPEN, GOV_EV_QUORUM, GOV_APPROVED },
		{ GOV_OPEN, GOV_EV_VETO, GOV_DENIED },
		{ GOV_OPEN, GOV_EV_CHANGE, GOV_OPEN },
		{ GOV_OPEN, GOV_EV_WITHDRAW, GOV_WITHDRAWN },
		{ GOV_OPEN, GOV_EV_EXPIRE, GOV_EXPIRED },
		{ GOV_APPROVED, GOV_EV_CLAIM, GOV_RUNNING },
		{ GOV_APPROVED, GOV_EV_SUCCEED, GOV_DONE },
		{ GOV_APPROVED, GOV_EV_FAIL, GOV_FAILED },
		{ GOV_RUNNING, GOV_EV_CLAIM, GOV_RUNNING },
		{ GOV_RUNNING, GOV_EV_SUCCEED, GOV_DONE },
		{ GOV_RUNNING, GOV_EV_FAIL, GOV_FAILED },
		{ GOV_BROKE_GLASS, GOV_EV_CLAIM, GOV_BROKE_GLASS },
		{ GOV_BROKE_GLASS, GOV_EV_SUCCEED, GOV_REVIEW_PENDING },
		{ GOV_BROKE_GLASS, GOV_EV_FAIL, GOV_REVIEW_PENDING },
		{ GOV_REVIEW_PENDING, GOV_EV_REVIEW, GOV_REVIEWED },
	};
	size_t n_allowed = 0;
	for (int s = 0; s < GOV_STATE_COUNT; s++)
		for (int e = 0; e < GOV_EVENT_COUNT; e++) {
			int want = -1;
			for (size_t i = 0; i < sizeof allowed / sizeof *allowed; i++)
				if (allowed[i].from == s && allowed[i].ev == e)
					want = allowed[i].to;
			n_allowed += want >= 0;
			if (gov_fsm_next(s, e) != want)
				fail_msg("%s + %s: %d, want %d", gov_state_name(s), gov_event_name(e),
					 gov_fsm_next(s, e), want);
		}
	assert_int_equal(n_allowed, sizeof allowed / sizeof *allowed);
	assert_int_equal(gov_fsm_next(-1, 0), -1);
	assert_int_equal(gov_fsm_next(0, GOV_EVENT_COUNT), -1);
	/* A veto, an expiry, a withdrawal and a result are final. */
	static const int finals[] = { GOV_DONE, GOV_FAILED, GOV_DENIED, GOV_EXPIRED, GOV_WITHDRAWN,
				      GOV_REVIEWED };
	for (size_t i = 0; i < sizeof finals / sizeof *finals; i++)
		assert_true(gov_state_final(finals[i]));
	assert_false(gov_state_final(GOV_OPEN));
	for (int s = 0; s < GOV_STATE_COUNT; s++)
		assert_int_equal(gov_state_parse(gov_state_name(s)), s);
	assert_int_equal(gov_state_parse("nope"), -1);
}

/* ---- the store */

static sqlite3 *db_new(void)
{
	sqlite3 *db;
	assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
	assert_int_equal(gov_store_init(db, NULL), 0);
	return db;
}

static int64_t open_req(sqlite3 *db, const char *rule_text, bool bg, int64_t now)
{
	json_t *rule = parse_ok(rule_text), *params = json_pack("{s:s}", "kernel", "metrics");
	gov_new n = { .action = "kernel.stop", .params = params, .rule = rule, .reason = "r",
		      .break_glass = bg, .expires_ms = now + 1000, .run_at_ms = now };
	gov_who ann = { "ann", "admin" };
	int64_t id = 0;
	assert_int_equal(gov_open(db, &n, &ann, now, &id, NULL), 0);
	json_decref(rule);
	json_decref(params);
	return id;
}

static const char *state_of(sqlite3 *db, int64_t id, json_t **keep)
{
	json_decref(*keep);
	assert_int_equal(gov_get(db, id, true, keep, NULL), 0);
	return json_string_value(json_object_get(*keep, "state"));
}

static size_t due(sqlite3 *db, int64_t now)
{
	json_t *l;
	assert_int_equal(gov_intents_due(db, now, 100, &l, NULL), 0);
	size_t n = json_array_size(l);
	json_decref(l);
	return n;
}

static void test_store_quorum_writes_intent(void **state)
{
	(void)state;
	sqlite3 *db = db_new();
	json_t *r = NULL;
	int64_t id = open_req(db, "2 admin", false, 1000);
	gov_who ann = { "ann", "admin" }, bob = { "bob", "admin" }, cid = { "cid", "admin" },
		uma = { "uma", "user" };
	sdk_err e;
	assert_int_equal(gov_step(db, id, GOV_EV_APPROVE, &ann, NULL, NULL, 1001, 0, &e),
			 SDK_EDENIED);
	assert_int_equal(gov_step(db, id, GOV_EV_APPROVE, &uma, NULL, NULL, 1001, 0, &e),
			 SDK_EDENIED);
	assert_int_equal(gov_step(db, id, GOV_EV_APPROVE, &bob, NULL, "ok", 1002, 0, &e), 0);
	assert_int_equal(gov_step(db, id, GOV_EV_APPROVE, &bob, NULL, NULL, 1003, 0, &e),
			 SDK_ECONFLICT);
	assert_string_equal(state_of(db, id, &r), "open");
	assert_int_equal(due(db, 5000), 0);
	/* The quorum: approved, and its intent due after the delay. */
	assert_int_equal(gov_step(db, id, GOV_EV_APPROVE, &cid, NULL, NULL, 1004, 500, &e), 0);
	assert_string_equal(state_of(db, id, &r), "approved");
	assert_int_equal(due(db, 1503), 0);
	assert_int_equal(due(db, 1504), 1);
	char key[64];
	snprintf(key, sizeof key, "gov-%lld-r1", (long long)id);
	assert_int_equal(gov_intent_claim(db, key, 1600, &e), 0);
	assert_int_equal(gov_intent_claim(db, key, 1601, &e), 0); /* again after a restart */
	assert_string_equal(state_of(db, id, &r), "running");
	json_t *res = json_pack("{s:s}", "x", "y");
	assert_int_equal(gov_intent_result(db, key, true, res, 1700, &e), 0);
	assert_int_equal(gov_intent_result(db, key, false, res, 1701, &e), 1); /* once */
	json_decref(res);
	assert_string_equal(state_of(db, id, &r), "done");
	assert_true(json_is_true(json_object_get(json_object_get(r, "result"), "ok")));
	assert_int_equal(gov_intent_claim(db, key, 1800, &e), SDK_ECONFLICT);
	assert_int_equal(due(db, 9000), 0);
	assert_int_equal(gov_intent_claim(db, "gov-999-r1", 1800, &e), SDK_ENOTFOUND);
	json_decref(r);
	sqlite3_close(db);
}

static void test_store_change_veto_expire(void **state)
{
	(void)state;
	sqlite3 *db = db_new();
	json_t *r = NULL;
	gov_who ann = { "ann", "admin" }, bob = { "bob", "admin" }, uma = { "uma", "user" };
	sdk_err e;
	int64_t id = open_req(db, "2 admin", false, 1000);
	assert_int_equal(gov_step(db, id, GOV_EV_APPROVE, &bob, NULL, NULL, 1001, 0, &e), 0);
	json_t *p = json_pack("{s:s}", "kernel", "alerts");
	assert_int_equal(gov_step(db, id, GOV_EV_CHANGE, &uma, p, NULL, 1002, 0, &e), SDK_EDENIED);
	assert_int_equal(gov_step(db, id, GOV_EV_CHANGE, &ann, p, NULL, 1002, 0, &e), 0);
	state_of(db, id, &r);
	assert_int_equal(json_array_size(json_object_get(r, "approvals")), 0);
	json_decref(p);
	assert_int_equal(json_integer_value(json_object_get(r, "revision")), 2);
	/* bob may approve the new revision. */
	assert_int_equal(gov_step(db, id, GOV_EV_APPROVE, &bob, NULL, NULL, 1003, 0, &e), 0);
	assert_int_equal(gov_step(db, id, GOV_EV_VETO, &ann, NULL, NULL, 1004, 0, &e), SDK_EDENIED);
	assert_int_equal(gov_step(db, id, GOV_EV_VETO, &bob, NULL, NULL, 1004, 0, &e), SDK_ECONFLICT);
	gov_who cid = { "cid", "admin" };
	assert_int_equal(gov_step(db, id, GOV_EV_VETO, &cid, NULL, "no", 1005, 0, &e), 0);
	assert_string_equal(state_of(db, id, &r), "denied");
	assert_int_equal(gov_step(db, id, GOV_EV_APPROVE, &cid, NULL, NULL, 1006, 0, &e),
			 SDK_ECONFLICT);
	/* Expiry: only open ones, only once due. */
	int64_t id2 = open_req(db, "1 admin", false, 2000);
	assert_int_equal(gov_expire_due(db, 2999, &e), 0);
	assert_int_equal(gov_expire_due(db, 3000, &e), 1);
	assert_string_equal(state_of(db, id2, &r), "expired");
	assert_string_equal(state_of(db, id, &r), "denied");
	assert_int_equal(gov_expire_due(db, 9000, &e), 0);
	/* Break-glass: due at once, a review after the result, never by the requester. */
	int64_t id3 = open_req(db, "1 admin", true, 4000);
	assert_string_equal(state_of(db, id3, &r), "broke_glass");
	assert_int_equal(due(db, 4000), 1);
	char key[64];
	snprintf(key, sizeof key, "gov-%lld-r1", (long long)id3);
	assert_int_equal(gov_intent_result(db, key, true, NULL, 4001, &e), 0);
	assert_string_equal(state_of(db, id3, &r), "review_pending");
	assert_int_equal(gov_step(db, id3, GOV_EV_REVIEW, &ann, NULL, NULL, 4002, 0, &e),
			 SDK_EDENIED);
	assert_int_equal(gov_step(db, id3, GOV_EV_REVIEW, &bob, NULL, "fine", 4003, 0, &e), 0);
	assert_string_equal(state_of(db, id3, &r), "reviewed");
	/* Every step is in the outbox, for both sinks. */
	json_t *ob;
	assert_int_equal(gov_outbox(db, "audit", 1000, &ob, &e), 0);
	size_t n = json_array_size(ob);
	assert_true(n >= 10);
	int64_t last = json_integer_value(json_object_get(json_array_get(ob, n - 1), "id"));
	json_decref(ob);
	assert_int_equal(gov_outbox_sent(db, "audit", last, &e), 0);
	assert_int_equal(gov_outbox(db, "audit", 1000, &ob, &e), 0);
	assert_int_equal(json_array_size(ob), 0);
	json_decref(ob);
	assert_int_equal(gov_outbox(db, "bus", 1000, &ob, &e), 0);
	assert_int_equal(json_array_size(ob), n);
	json_decref(ob);
	/* A request changes a bounded number of times. */
	p = json_pack("{s:s}", "kernel", "alerts");
	int64_t many = open_req(db, "2 admin", false, 5000);
	for (int i = 1; i < GOV_REVISIONS_MAX; i++)
		assert_int_equal(gov_step(db, many, GOV_EV_CHANGE, &ann, p, NULL, 5001, 0, &e), 0);
	assert_int_equal(gov_step(db, many, GOV_EV_CHANGE, &ann, p, NULL, 5001, 0, &e), SDK_EQUOTA);
	json_decref(p);
	json_decref(r);
	sqlite3_close(db);
}

static size_t count(sqlite3 *db, const char *table)
{
	char sql[64];
	snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	size_t n = (size_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

static void test_store_expired_before_the_timer_and_trim(void **state)
{
	(void)state;
	sqlite3 *db = db_new();
	json_t *r = NULL;
	gov_who ann = { "ann", "admin" }, bob = { "bob", "admin" };
	sdk_err e;
	/* Past its time, not yet expired by the timer: an approval finds it expired. */
	int64_t id = open_req(db, "1 admin", false, 1000);
	assert_int_equal(gov_step(db, id, GOV_EV_APPROVE, &bob, NULL, NULL, 2000, 0, &e),
			 SDK_ECONFLICT);
	assert_non_null(strstr(e.msg, "expired"));
	assert_string_equal(state_of(db, id, &r), "expired");
	assert_int_equal(due(db, 9000), 0);
	/* Trim keeps the newest closed ones, and any whose steps are not all sent. */
	for (int i = 0; i < 4; i++) {
		int64_t x = open_req(db, "1 admin", false, 3000);
		assert_int_equal(gov_step(db, x, GOV_EV_WITHDRAW, &ann, NULL, NULL, 3001, 0, &e), 0);
	}
	assert_int_equal(gov_trim(db, 2, &e), 0);
	assert_int_equal(count(db, "requests"), 5); /* nothing sent yet: nothing goes */
	json_t *ob;
	assert_int_equal(gov_outbox(db, "audit", 1000, &ob, &e), 0);
	int64_t last = json_integer_value(json_object_get(json_array_get(ob, json_array_size(ob) - 1), "id"));
	json_decref(ob);
	assert_int_equal(gov_outbox_sent(db, "audit", last, &e), 0);
	assert_int_equal(gov_outbox_sent(db, "bus", last, &e), 0);
	assert_int_equal(gov_trim(db, 2, &e), 0);
	assert_int_equal(count(db, "requests"), 2);
	assert_int_equal(gov_get(db, id, false, &ob, &e), SDK_ENOTFOUND);
	assert_int_equal(count(db, "history"), 4); /* open + withdraw of the two kept */
	json_decref(r);
	sqlite3_close(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rule_parse),
		cmocka_unit_test(test_rule_eval),
		cmocka_unit_test(test_rule_eligible),
		cmocka_unit_test(test_fsm_table),
		cmocka_unit_test(test_store_quorum_writes_intent),
		cmocka_unit_test(test_store_change_veto_expire),
		cmocka_unit_test(test_store_expired_before_the_timer_and_trim),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
