/* Unit tests for the audit trail's archival in its store: only the oldest
 * events already in the immutable log are archivable (one not yet there,
 * or not older than the bound, stops the run), removal takes exactly what
 * was archived or nothing, and what was archived is counted. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/audit/store.h"

static sqlite3 *open_db(void)
{
	sqlite3 *db;
	assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
	sdk_err e;
	assert_int_equal(aud_store_init(db, &e), 0);
	return db;
}

/* n events dated 1000, 2000, ...; the first `logged` get log indexes. */
static void seed(sqlite3 *db, int n, int logged)
{
	json_t *evs = json_array();
	for (int i = 0; i < n; i++)
		json_array_append_new(evs, json_pack("{s:s, s:s, s:s, s:s, s:I}", "actor", "a",
						     "action", "x", "resource", "r", "outcome",
						     "success", "ts_ms", (json_int_t)(1000 * (i + 1))));
	json_t *ids;
	sdk_err e;
	assert_int_equal(aud_insert(db, evs, 1, &ids, &e), 0);
	json_t *pairs = json_array();
	for (int i = 0; i < logged; i++)
		json_array_append_new(pairs, json_pack("[O, i]", json_array_get(ids, (size_t)i),
						       100 + i));
	assert_int_equal(aud_set_log_indexes(db, pairs, &e), 0);
	json_decref(pairs);
	json_decref(ids);
	json_decref(evs);
}

static void test_only_logged_events_are_archivable(void **state)
{
	(void)state;
	sqlite3 *db = open_db();
	seed(db, 10, 6);
	json_t *out;
	sdk_err e;
	assert_int_equal(aud_archivable(db, INT64_MAX, INT64_MAX, 1000, &out, &e), 0);
	assert_int_equal(json_array_size(out), 6);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(out, 5), "log_index")),
			 105);
	json_decref(out);
	/* Bounds by id, by time, and by count. */
	assert_int_equal(aud_archivable(db, 4, INT64_MAX, 1000, &out, &e), 0);
	assert_int_equal(json_array_size(out), 3);
	json_decref(out);
	assert_int_equal(aud_archivable(db, INT64_MAX, 2500, 1000, &out, &e), 0);
	assert_int_equal(json_array_size(out), 2);
	json_decref(out);
	assert_int_equal(aud_archivable(db, INT64_MAX, INT64_MAX, 4, &out, &e), 0);
	assert_int_equal(json_array_size(out), 4);
	json_decref(out);
	sqlite3_close(db);
}

static void test_removal_is_exact(void **state)
{
	(void)state;
	sqlite3 *db = open_db();
	seed(db, 10, 10);
	sdk_err e;
	/* Claims 4 events where 5 are: nothing is removed. */
	aud_archive_rec bad = { 1, 5, 4, 99, "00", "f" };
	assert_int_equal(aud_remove(db, &bad, 7, &e), SDK_ECONFLICT);
	json_t *info;
	assert_int_equal(aud_archived(db, &info, &e), 0);
	assert_int_equal(json_integer_value(json_object_get(info, "events")), 0);
	json_decref(info);
	aud_archive_rec ok = { 1, 5, 5, 99, "ab", "audit-1-5.jsonl" };
	assert_int_equal(aud_remove(db, &ok, 7, &e), 0);
	assert_int_equal(aud_archived(db, &info, &e), 0);
	assert_int_equal(json_integer_value(json_object_get(info, "events")), 5);
	assert_int_equal(json_integer_value(json_object_get(info, "last_id")), 5);
	assert_string_equal(json_string_value(json_object_get(info, "last_file")),
			    "audit-1-5.jsonl");
	json_decref(info);
	json_t *out;
	assert_int_equal(aud_archivable(db, INT64_MAX, INT64_MAX, 1000, &out, &e), 0);
	assert_int_equal(json_array_size(out), 5);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(out, 0), "id")), 6);
	json_decref(out);
	assert_int_equal(aud_get(db, 3, &out, &e), SDK_ENOTFOUND);
	sqlite3_close(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_only_logged_events_are_archivable),
		cmocka_unit_test(test_removal_is_exact),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
