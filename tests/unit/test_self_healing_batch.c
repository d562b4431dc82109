/* Unit tests of the self_healing kernel's write batches
 * (src/kernels/self_healing/batch.c) against its real store (store.c) in
 * an in-memory SQLite database: the ops run in the order they were
 * recorded, in one transaction (a failing op leaves nothing of the
 * batch), the action's id comes back, and a batch that did not fit is
 * refused whole. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "kernels/self_healing/batch.h"
#include "kernels/self_healing/store.h"

static sqlite3 *open_store(void)
{
	sqlite3 *db;
	sdk_err e;
	assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
	assert_int_equal(sh_store_init(db, &e), 0);
	return db;
}

static int64_t count(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int64_t n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

static sh_incident incident(int64_t id, const char *kernel)
{
	sh_incident inc = { .id = id, .family = SH_FAM_AVAILABILITY, .opened_at = 1000,
			    .updated_at = 1000, .n_kernels = 1, .events = 1 };
	snprintf(inc.kernel, sizeof inc.kernel, "%s", kernel);
	snprintf(inc.kernels[0], sizeof inc.kernels[0], "%s", kernel);
	snprintf(inc.title, sizeof inc.title, "%s: test", kernel);
	return inc;
}

static void test_in_order_one_transaction(void **state)
{
	(void)state;
	sqlite3 *db = open_store();
	sh_batch *b = sh_batch_new();
	sh_incident inc = incident(1, "audit");
	json_t *detail = json_pack("{s:s}", "why", "crash");
	json_t *hints = json_pack("[{s:s, s:i}]", "kind", "signal", "signal", 9);
	assert_int_equal(sh_batch_save(b, &inc), 0);
	assert_int_equal(sh_batch_event(b, 1, 1000, "audit", "crash", "grace.kernel.audit.state",
					detail),
			 0);
	/* The batch owns copies: what the loop does to its own after does
	 * not reach the store. */
	json_object_set_new(detail, "why", json_string("changed"));
	assert_int_equal(sh_batch_hints(b, 1, hints), 0);
	json_decref(hints);
	assert_int_equal(sh_batch_action(b, 1, "audit", 1100, 0, "restart_component", "act", NULL),
			 0);
	sh_kstate ks = { .name = "audit", .step = 0, .last_action_ms = 1100, .actions = 1 };
	sh_budget bud = { .bucket = { .tokens = 2.5, .capacity = 3, .per_ms = 3 / 3600000.0, .last_ms = 1100 },
			  .spent = 1 };
	assert_int_equal(sh_batch_ladder(b, &ks), 0);
	assert_int_equal(sh_batch_budget(b, &bud), 0);
	assert_int_equal(sh_batch_len(b), 6);
	assert_int_equal(sh_batch_action_id(b), 0);
	sdk_err e;
	assert_int_equal(sh_batch_run(b, db, &e), 0);
	int64_t action = sh_batch_action_id(b);
	assert_true(action > 0);
	sh_batch_free(b);
	json_decref(detail);

	json_t *got;
	assert_int_equal(sh_store_get(db, 1, &got, &e), 0);
	json_t *ev = json_array_get(json_object_get(got, "event_list"), 0);
	assert_string_equal(json_string_value(json_object_get(json_object_get(ev, "detail"), "why")),
			    "crash");
	json_t *h = json_array_get(json_object_get(json_object_get(got, "cause"), "hints"), 0);
	assert_string_equal(json_string_value(json_object_get(h, "kind")), "signal");
	json_decref(got);
	assert_int_equal(count(db, "SELECT step FROM ladder WHERE kernel = 'audit'"), 0);
	assert_int_equal(count(db, "SELECT spent FROM budget"), 1);

	/* A learning decision after, in a batch of its own: on the action. */
	b = sh_batch_new();
	json_t *learning = json_pack("{s:i}", "decision_id", 42);
	assert_int_equal(sh_batch_learning(b, action, "reset_port", learning), 0);
	json_decref(learning);
	assert_int_equal(sh_batch_run(b, db, &e), 0);
	sh_batch_free(b);
	int64_t decision;
	char arm[32];
	assert_int_equal(sh_store_action_decision(db, action, &decision, arm, sizeof arm, &e), 0);
	assert_int_equal(decision, 42);
	assert_string_equal(arm, "reset_port");
	sqlite3_close(db);
}

static void test_all_or_nothing(void **state)
{
	(void)state;
	sqlite3 *db = open_store();
	sh_batch *b = sh_batch_new();
	sh_incident inc = incident(7, "metrics");
	json_t *hints = json_pack("[{s:s}]", "kind", "disk_full");
	assert_int_equal(sh_batch_save(b, &inc), 0);
	assert_int_equal(sh_batch_event(b, 7, 1000, "metrics", "crash", "s", NULL), 0);
	/* Hints for an incident that is not there: the op fails... */
	assert_int_equal(sh_batch_hints(b, 99, hints), 0);
	json_decref(hints);
	sdk_err e;
	assert_int_equal(sh_batch_run(b, db, &e), SDK_ENOTFOUND);
	assert_int_equal(sh_batch_action_id(b), 0);
	sh_batch_free(b);
	/* ...and nothing of the batch is written. */
	assert_int_equal(count(db, "SELECT count(*) FROM incidents"), 0);
	assert_int_equal(count(db, "SELECT count(*) FROM events"), 0);
	/* The connection is usable after: no transaction left open. */
	assert_true(sqlite3_get_autocommit(db));
	b = sh_batch_new();
	assert_int_equal(sh_batch_save(b, &inc), 0);
	assert_int_equal(sh_batch_run(b, db, &e), 0);
	sh_batch_free(b);
	assert_int_equal(count(db, "SELECT count(*) FROM incidents"), 1);
	sqlite3_close(db);
}

static void test_full_batch_refused_whole(void **state)
{
	(void)state;
	sqlite3 *db = open_store();
	sh_batch *b = sh_batch_new();
	sh_incident inc = incident(3, "audit");
	size_t i = 0;
	while (sh_batch_save(b, &inc) == 0)
		i++;
	assert_int_equal(i, SH_BATCH_OPS_MAX);
	/* Once full, every further append fails too, and the run refuses it. */
	assert_int_equal(sh_batch_budget(b, &(sh_budget){ 0 }), SDK_EBUSY);
	sdk_err e;
	assert_int_equal(sh_batch_run(b, db, &e), SDK_EBUSY);
	sh_batch_free(b);
	assert_int_equal(count(db, "SELECT count(*) FROM incidents"), 0);
	/* An empty batch writes nothing and succeeds. */
	b = sh_batch_new();
	assert_int_equal(sh_batch_run(b, db, &e), 0);
	sh_batch_free(b);
	sqlite3_close(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_in_order_one_transaction),
		cmocka_unit_test(test_all_or_nothing),
		cmocka_unit_test(test_full_batch_refused_whole),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
