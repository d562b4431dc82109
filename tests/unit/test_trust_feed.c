/* The trust kernel's evidence from the bus (src/kernels/trust/feed.c and
 * evidence.c) on an in-memory database: which published events are which
 * outcomes, and which are none (a stop is no crash), the healthy periods,
 * and the scores read back with their counts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <sqlite3.h>
#include <string.h>

#include "kernels/trust/evidence.h"
#include "kernels/trust/feed.h"

#define T0 1700000000000LL
#define HL 60000

static const char schema[] =
	"CREATE TABLE trust_scores (kind TEXT NOT NULL, name TEXT NOT NULL, alpha REAL NOT NULL,"
	" beta REAL NOT NULL, at_ms INTEGER NOT NULL, PRIMARY KEY (kind, name));"
	"CREATE TABLE trust_evidence (kind TEXT NOT NULL, name TEXT NOT NULL, outcome TEXT NOT NULL,"
	" good INTEGER NOT NULL, count INTEGER NOT NULL, last_ms INTEGER NOT NULL,"
	" PRIMARY KEY (kind, name, outcome));"
	"CREATE TABLE trust_live (name TEXT PRIMARY KEY, ready INTEGER NOT NULL,"
	" since_ms INTEGER NOT NULL, good_ms INTEGER NOT NULL);";

static int setup(void **state)
{
	sqlite3 *db;
	if (sqlite3_open(":memory:", &db) || sqlite3_exec(db, schema, NULL, NULL, NULL))
		return -1;
	*state = db;
	return 0;
}

static int teardown(void **state)
{
	sqlite3_close(*state);
	return 0;
}

static void apply(sqlite3 *db, const char *subject, const char *payload, int64_t t)
{
	json_t *p = json_loads(payload, 0, NULL);
	assert_non_null(p);
	sdk_err e;
	if (tr_feed_apply(db, subject, p, t, t, HL, &e) < 0)
		fail_msg("%s: %s", subject, e.msg);
	json_decref(p);
}

/* The count of one outcome of one subject (0 when none). */
static long long count(sqlite3 *db, const char *kind, const char *name, const char *outcome)
{
	json_t *out;
	sdk_err e;
	if (tr_scores_json(db, kind, name, T0 + 1000000, HL, 1, &out, &e) < 0)
		return 0;
	json_t *c = json_object_get(
		json_object_get(json_object_get(json_array_get(json_object_get(out, "scores"), 0),
						"evidence"),
				outcome),
		"count");
	long long n = json_integer_value(c);
	json_decref(out);
	return n;
}

static void test_kernel_crashes(void **state)
{
	sqlite3 *db = *state;
	const char *s = "grace.kernel.audit.state";
	apply(db, s, "{\"kernel\":\"audit\",\"from\":\"starting\",\"to\":\"ready\"}", T0);
	apply(db, s, "{\"kernel\":\"audit\",\"from\":\"ready\",\"to\":\"restarting\"}", T0 + 1);
	apply(db, s, "{\"kernel\":\"audit\",\"from\":\"restarting\",\"to\":\"starting\"}", T0 + 2);
	apply(db, s, "{\"kernel\":\"audit\",\"from\":\"starting\",\"to\":\"ready\"}", T0 + 3);
	/* A standby took over at once. */
	apply(db, s, "{\"kernel\":\"audit\",\"from\":\"ready\",\"to\":\"starting\"}", T0 + 4);
	apply(db, s, "{\"kernel\":\"audit\",\"from\":\"starting\",\"to\":\"failed\"}", T0 + 5);
	assert_int_equal(count(db, "kernel", "audit", "crash"), 3);
	/* An operator's stop and start: no crash. */
	apply(db, s, "{\"kernel\":\"audit\",\"from\":\"ready\",\"to\":\"stopping\"}", T0 + 6);
	apply(db, s, "{\"kernel\":\"audit\",\"from\":\"stopping\",\"to\":\"stopped\"}", T0 + 7);
	apply(db, s, "{\"kernel\":\"audit\",\"from\":\"stopped\",\"to\":\"starting\"}", T0 + 8);
	apply(db, s, "{\"kernel\":\"audit\",\"from\":\"stopping\",\"to\":\"restarting\"}", T0 + 9);
	assert_int_equal(count(db, "kernel", "audit", "crash"), 3);
}

static void test_other_evidence(void **state)
{
	sqlite3 *db = *state;
	apply(db, "grace.guardian.librarian.state",
	      "{\"kernel\":\"librarian\",\"from\":\"ready\",\"to\":\"degraded\"}", T0);
	/* Still failing: the same episode. */
	apply(db, "grace.guardian.librarian.state",
	      "{\"kernel\":\"librarian\",\"from\":\"degraded\",\"to\":\"unhealthy\"}", T0 + 1);
	apply(db, "grace.healer.incident",
	      "{\"component\":\"librarian\",\"outcome\":\"healed\"}", T0 + 2);
	apply(db, "grace.healer.incident", "{\"component\":\"librarian\",\"outcome\":\"failed\"}",
	      T0 + 3);
	apply(db, "grace.healer.incident", "{\"component\":\"librarian\",\"outcome\":\"running\"}",
	      T0 + 4);
	assert_int_equal(count(db, "kernel", "librarian", "probe_failed"), 1);
	assert_int_equal(count(db, "kernel", "librarian", "heal_healed"), 1);
	assert_int_equal(count(db, "kernel", "librarian", "heal_failed"), 1);
	apply(db, "grace.auth.login", "{\"user\":\"ann\",\"outcome\":\"failed\"}", T0);
	apply(db, "grace.auth.login", "{\"user\":\"ann\",\"outcome\":\"ok\"}", T0 + 1);
	apply(db, "grace.auth.login", "{\"user\":\"ann\",\"outcome\":\"maybe\"}", T0 + 2);
	apply(db, "grace.policy.denied", "{\"user\":\"ann\",\"action\":\"a.read\"}", T0 + 3);
	assert_int_equal(count(db, "user", "ann", "login_failed"), 1);
	assert_int_equal(count(db, "user", "ann", "login_ok"), 1);
	assert_int_equal(count(db, "user", "ann", "policy_denied"), 1);
	/* Not evidence: other subjects, bad names, bad shapes. */
	apply(db, "grace.kernel.audit.statex", "{\"kernel\":\"x\",\"from\":\"ready\",\"to\":\"failed\"}",
	      T0);
	apply(db, "grace.auth.loginx", "{\"user\":\"bob\",\"outcome\":\"failed\"}", T0);
	apply(db, "grace.auth.login", "{\"user\":\"a b\",\"outcome\":\"failed\"}", T0);
	apply(db, "orders.created", "{\"user\":\"bob\"}", T0);
	json_t *out;
	sdk_err e;
	assert_int_equal(tr_scores_json(db, "user", "bob", T0, HL, 1, &out, &e), SDK_ENOTFOUND);
	assert_int_equal(tr_scores_json(db, "kernel", "x", T0, HL, 1, &out, &e), SDK_ENOTFOUND);
}

static void test_healthy_periods(void **state)
{
	sqlite3 *db = *state;
	const char *s = "grace.kernel.crypto.state";
	sdk_err e;
	apply(db, s, "{\"kernel\":\"crypto\",\"from\":\"starting\",\"to\":\"ready\"}", T0);
	assert_int_equal(tr_live_tick(db, T0 + 999, 1000, HL, &e), 0);
	assert_int_equal(count(db, "kernel", "crypto", "healthy_period"), 0);
	assert_int_equal(tr_live_tick(db, T0 + 1000, 1000, HL, &e), 0);
	assert_int_equal(tr_live_tick(db, T0 + 1500, 1000, HL, &e), 0);
	assert_int_equal(count(db, "kernel", "crypto", "healthy_period"), 1);
	/* A failing probe restarts the period; a kernel down earns none. */
	apply(db, "grace.guardian.crypto.state",
	      "{\"kernel\":\"crypto\",\"from\":\"ready\",\"to\":\"degraded\"}", T0 + 1600);
	assert_int_equal(tr_live_tick(db, T0 + 5000, 1000, HL, &e), 0);
	assert_int_equal(count(db, "kernel", "crypto", "healthy_period"), 1);
	apply(db, s, "{\"kernel\":\"crypto\",\"from\":\"starting\",\"to\":\"ready\"}", T0 + 6000);
	assert_int_equal(tr_live_tick(db, T0 + 7000, 1000, HL, &e), 0);
	assert_int_equal(count(db, "kernel", "crypto", "healthy_period"), 2);
	json_t *out;
	assert_int_equal(tr_scores_json(db, "kernel", "crypto", T0 + 7000, HL, 1, &out, &e), 0);
	json_t *one = json_array_get(json_object_get(out, "scores"), 0);
	assert_true(json_integer_value(json_object_get(one, "percent")) > 50);
	json_decref(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_kernel_crashes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_evidence, setup, teardown),
		cmocka_unit_test_setup_teardown(test_healthy_periods, setup, teardown),
	};
	return cmocka_run_group_tests_name("trust_feed", tests, NULL, NULL);
}
