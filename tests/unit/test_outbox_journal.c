/* Unit tests for the audit journal (src/serve/outbox/journal.c) on a real
 * SQLite file: events in order until delivered, aggregates open until
 * their time, overflow rows, bounds in bytes, and the epoch kept across
 * reopening. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sdk/db.h"
#include "serve/outbox/journal.h"

struct fx {
	char dir[64];
	sqlite3 *db;
	ob_journal *j;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/grace-ut-journal-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	sdk_err e;
	assert_int_equal(sdk_db_open(f->dir, "grace", &f->db, &e), 0);
	f->j = obj_open(f->db, &e);
	assert_non_null(f->j);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	obj_close(f->j);
	sqlite3_close(f->db);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static json_t *ev(const char *action)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:I}", "actor", "admin", "action", action,
			 "resource", "/r", "outcome", "200", "ts_ms", (json_int_t)1000);
}

static void append(ob_journal *j, const char *action)
{
	json_t *e = ev(action);
	assert_int_equal(obj_append(j, e), 0);
	json_decref(e);
}

static const char *action_at(json_t *batch, size_t i)
{
	return json_string_value(json_object_get(json_array_get(batch, i), "action"));
}

static void test_events_leave_in_order_once_delivered(void **state)
{
	struct fx *f = *state;
	assert_int_equal(obj_rows(f->j), 0);
	append(f->j, "a");
	append(f->j, "b");
	append(f->j, "c");
	assert_int_equal(obj_rows(f->j), 3);
	assert_true(obj_bytes(f->j) > 100);
	json_t *b;
	assert_int_equal(obj_batch(f->j, 2, 1 << 20, &b), 2);
	assert_string_equal(action_at(b, 0), "a");
	assert_string_equal(action_at(b, 1), "b");
	/* Each carries its uid: the epoch and its row. */
	const char *uid = json_string_value(json_object_get(json_array_get(b, 0), "uid"));
	assert_non_null(uid);
	assert_int_equal(strncmp(uid, obj_epoch(f->j), strlen(obj_epoch(f->j))), 0);
	assert_int_equal(strlen(obj_epoch(f->j)), 16);
	json_decref(b);
	/* Not delivered: the same batch again. */
	assert_int_equal(obj_batch(f->j, 2, 1 << 20, &b), 2);
	assert_string_equal(action_at(b, 0), "a");
	json_decref(b);
	assert_int_equal(obj_batch_done(f->j), 2);
	assert_int_equal(obj_rows(f->j), 1);
	assert_int_equal(obj_batch(f->j, 10, 1 << 20, &b), 1);
	assert_string_equal(action_at(b, 0), "c");
	json_decref(b);
	assert_int_equal(obj_batch_done(f->j), 1);
	assert_int_equal(obj_rows(f->j), 0);
	assert_int_equal(obj_bytes(f->j), 0);
	assert_int_equal(obj_batch(f->j, 10, 1 << 20, &b), 0);
	json_decref(b);
	assert_int_equal(obj_batch_done(f->j), 0);
}

static void test_batches_are_bounded_in_bytes(void **state)
{
	struct fx *f = *state;
	char big[5000];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	for (int i = 0; i < 5; i++)
		append(f->j, big);
	json_t *b;
	/* The first always goes, however large. */
	assert_int_equal(obj_batch(f->j, 10, 100, &b), 1);
	json_decref(b);
	assert_int_equal(obj_batch(f->j, 10, 11000, &b), 2);
	json_decref(b);
	assert_int_equal(obj_batch(f->j, 10, 1 << 20, &b), 5);
	json_decref(b);
}

static void test_aggregates_count_until_closed(void **state)
{
	struct fx *f = *state;
	json_t *e = ev("auth.login");
	json_object_set_new(e, "details", json_pack("{s:b}", "aggregate", 1));
	assert_int_equal(obj_count(f->j, "login|k", e, 2000, 1000, true), 1);
	assert_int_equal(obj_count(f->j, "login|k", e, 2000, 1500, true), 0);
	assert_int_equal(obj_count(f->j, "login|k", e, 2000, 1200, false), 0);
	assert_int_equal(obj_count(f->j, "login|other", e, 2000, 1200, false), SDK_ENOTFOUND);
	append(f->j, "after");
	assert_int_equal(obj_rows(f->j), 2);
	/* Open: only the plain event leaves. */
	json_t *b;
	assert_int_equal(obj_close_due(f->j, 1999), 0);
	assert_int_equal(obj_batch(f->j, 10, 1 << 20, &b), 1);
	assert_string_equal(action_at(b, 0), "after");
	json_decref(b);
	assert_int_equal(obj_batch_done(f->j), 1);
	assert_int_equal(obj_close_due(f->j, 2000), 1);
	assert_int_equal(obj_batch(f->j, 10, 1 << 20, &b), 1);
	json_t *d = json_object_get(json_array_get(b, 0), "details");
	assert_int_equal(json_integer_value(json_object_get(d, "count")), 3);
	assert_int_equal(json_integer_value(json_object_get(d, "last_ms")), 1500);
	json_decref(b);
	/* Closed: a further occurrence makes a new row, never adds to a sent one. */
	assert_int_equal(obj_count(f->j, "login|k", e, 3000, 2500, true), 1);
	assert_int_equal(obj_batch_done(f->j), 1);
	assert_int_equal(obj_rows(f->j), 1);
	assert_int_equal(obj_close_due(f->j, 3000), 1);
	assert_int_equal(obj_batch(f->j, 10, 1 << 20, &b), 1);
	d = json_object_get(json_array_get(b, 0), "details");
	assert_int_equal(json_integer_value(json_object_get(d, "count")), 1);
	json_decref(b);
	json_decref(e);
}

static void test_overflow_rows_close_by_prefix(void **state)
{
	struct fx *f = *state;
	json_t *e = ev("kernel.state");
	assert_int_equal(obj_count(f->j, "overflow|kernel.state|kernel/a", e, OBJ_NEVER, 10, true),
			 1);
	assert_int_equal(obj_count(f->j, "overflow|kernel.state|kernel/a", e, OBJ_NEVER, 20, true),
			 0);
	assert_int_equal(obj_count(f->j, "login|x", e, 100, 10, true), 1);
	assert_int_equal(obj_close_due(f->j, INT64_MAX - 1), 1);
	json_t *b;
	assert_int_equal(obj_batch(f->j, 10, 1 << 20, &b), 1);
	json_decref(b);
	assert_int_equal(obj_close_prefix(f->j, "overflow|"), 1);
	assert_int_equal(obj_batch(f->j, 10, 1 << 20, &b), 2);
	json_t *d = json_object_get(json_array_get(b, 0), "details");
	assert_int_equal(json_integer_value(json_object_get(d, "count")), 2);
	json_decref(b);
	json_decref(e);
}

static void test_reopen_keeps_events_and_epoch(void **state)
{
	struct fx *f = *state;
	char epoch[64];
	snprintf(epoch, sizeof epoch, "%s", obj_epoch(f->j));
	append(f->j, "kept");
	json_t *e = ev("auth.login");
	assert_int_equal(obj_count(f->j, "login|k", e, 5000, 1000, true), 1);
	obj_close(f->j);
	sdk_err err;
	f->j = obj_open(f->db, &err);
	assert_non_null(f->j);
	assert_string_equal(obj_epoch(f->j), epoch);
	assert_int_equal(obj_rows(f->j), 2);
	/* The open aggregate is still open, and still counts. */
	assert_int_equal(obj_count(f->j, "login|k", e, 5000, 1100, false), 0);
	assert_int_equal(obj_close_due(f->j, 4999), 0);
	assert_int_equal(obj_close_due(f->j, 5000), 1);
	json_t *b;
	assert_int_equal(obj_batch(f->j, 10, 1 << 20, &b), 2);
	assert_string_equal(action_at(b, 0), "kept");
	json_decref(b);
	json_decref(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_events_leave_in_order_once_delivered, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_batches_are_bounded_in_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_aggregates_count_until_closed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overflow_rows_close_by_prefix, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_keeps_events_and_epoch, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
