/* Unit tests for counting failed logins (src/serve/auth/limiter.c), the
 * source of a login (source.c) and the accounts' counts in SQLite
 * (lockout.c), driven by a fake clock: every time is a number the test
 * chooses. Issue 8, finding 4: no key may erase another's count. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "serve/auth/limiter.h"
#include "serve/auth/lockout.h"
#include "serve/auth/source.h"
#include "serve/auth/users.h"
#include "sdk/err.h"

#define WINDOW 900000 /* ms: the shipped login_window_s */
#define T0 1000000    /* far from 0 */

/* -- counts ---------------------------------------------------------- */

static void test_count_window(void **state)
{
	(void)state;
	limiter_count c = { 0, 0 };
	for (int i = 0; i < 10; i++)
		limiter_count_fail(&c, T0 + i * 1000, WINDOW);
	assert_int_equal(c.failures, 10);
	assert_int_equal(c.since_ms, T0);
	/* Locked until the window that opened at the first failure closes. */
	assert_int_equal(limiter_count_locked_ms(&c, T0 + 17000, WINDOW, 10), WINDOW - 17000);
	assert_int_equal(limiter_count_locked_ms(&c, T0 + 17000, WINDOW, 11), 0);
	assert_int_equal(limiter_count_locked_ms(&c, T0 + WINDOW - 1, WINDOW, 10), 1);
	assert_int_equal(limiter_count_locked_ms(&c, T0 + WINDOW, WINDOW, 10), 0);
	/* The next failure after it opens a new window. */
	limiter_count_fail(&c, T0 + WINDOW + 5, WINDOW);
	assert_int_equal(c.failures, 1);
	assert_int_equal(c.since_ms, T0 + WINDOW + 5);
}

static void test_count_clock_set_back(void **state)
{
	(void)state;
	/* A window in the future (the wall clock went back): not a lock that
	 * lasts longer than a window. */
	limiter_count c = { 10, T0 + 5 * WINDOW };
	assert_int_equal(limiter_count_locked_ms(&c, T0, WINDOW, 10), 0);
	limiter_count_fail(&c, T0, WINDOW);
	assert_int_equal(c.failures, 1);
	assert_int_equal(c.since_ms, T0);
}

static void test_delay(void **state)
{
	(void)state;
	static const int64_t want[] = { 0, 0, 0, 0, 250, 500, 1000, 2000, 2000, 2000 };
	for (unsigned n = 0; n < sizeof want / sizeof *want; n++)
		assert_int_equal(limiter_delay_ms(n, 3, 250, 2000), want[n]);
	assert_int_equal(limiter_delay_ms(4000000000u, 3, 250, 2000), 2000);
	assert_int_equal(limiter_delay_ms(5, 3, 250, 300), 300);
}

/* -- the table ------------------------------------------------------- */

static void test_table_exact_keys(void **state)
{
	(void)state;
	limiter *l = limiter_new(4096, WINDOW);
	assert_non_null(l);
	limiter_count c;
	for (int i = 0; i < 10; i++)
		assert_int_equal(limiter_fail(l, "dave", T0 + i, &c), 0);
	assert_int_equal(c.failures, 10);
	/* Thousands of other keys change nothing about dave's count. */
	char key[32];
	for (int i = 0; i < 4000; i++) {
		snprintf(key, sizeof key, "x%d", i);
		assert_int_equal(limiter_fail(l, key, T0 + 100, &c), 0);
		assert_int_equal(c.failures, 1);
	}
	assert_int_equal(limiter_get(l, "dave", T0 + 200, &c), 0);
	assert_int_equal(c.failures, 10);
	assert_int_equal(c.since_ms, T0);
	/* A prefix, a longer key, another case: other keys. */
	assert_int_equal(limiter_get(l, "dav", T0 + 200, &c), 0);
	assert_int_equal(c.failures, 0);
	assert_int_equal(limiter_get(l, "dave2", T0 + 200, &c), 0);
	assert_int_equal(c.failures, 0);
	assert_int_equal(limiter_get(l, "Dave", T0 + 200, &c), 0);
	assert_int_equal(c.failures, 0);
	assert_int_equal(limiter_live(l, T0 + 200), 4001);
	limiter_free(l);
}

static void test_table_full_evicts_nothing(void **state)
{
	(void)state;
	/* Four slots: every key shares every probe sequence. */
	limiter *l = limiter_new(4, WINDOW);
	limiter_count c;
	for (int i = 0; i < 5; i++)
		limiter_fail(l, "victim", T0, &c);
	const char *others[] = { "a", "b", "c" };
	for (int i = 0; i < 3; i++)
		assert_int_equal(limiter_fail(l, others[i], T0 + 1 + i, &c), 0);
	/* Full of running counts: a new key is refused, not given a slot. */
	for (int i = 0; i < 12; i++) {
		char key[8];
		snprintf(key, sizeof key, "n%d", i);
		assert_int_equal(limiter_fail(l, key, T0 + 10, &c), SDK_EBUSY);
		assert_int_equal(c.failures, 0);
		assert_int_equal(limiter_get(l, key, T0 + 10, &c), SDK_EBUSY);
	}
	assert_int_equal(limiter_get(l, "victim", T0 + 10, &c), 0);
	assert_int_equal(c.failures, 5);
	/* A known key still counts. */
	assert_int_equal(limiter_fail(l, "a", T0 + 10, &c), 0);
	assert_int_equal(c.failures, 2);
	/* Once a window has closed, its slot is room again ... */
	assert_int_equal(limiter_fail(l, "late", T0 + WINDOW + 1, &c), 0);
	assert_int_equal(c.failures, 1);
	/* ... and the others, older too, count from zero. */
	assert_int_equal(limiter_get(l, "victim", T0 + WINDOW + 1, &c), 0);
	assert_int_equal(c.failures, 0);
	limiter_free(l);
}

static void test_table_forget_and_reuse(void **state)
{
	(void)state;
	limiter *l = limiter_new(2, WINDOW);
	limiter_count c;
	limiter_fail(l, "a", T0, &c);
	limiter_fail(l, "b", T0, &c);
	assert_int_equal(limiter_fail(l, "c", T0, &c), SDK_EBUSY);
	limiter_forget(l, "a");
	assert_int_equal(limiter_get(l, "a", T0, &c), 0);
	assert_int_equal(c.failures, 0);
	/* "a"'s slot went to "c"; "b" is where it was. */
	assert_int_equal(limiter_fail(l, "c", T0, &c), 0);
	assert_int_equal(limiter_get(l, "b", T0, &c), 0);
	assert_int_equal(c.failures, 1);
	limiter_fail(l, "c", T0, &c);
	assert_int_equal(c.failures, 2);
	assert_int_equal(limiter_fail(l, "a", T0, &c), SDK_EBUSY);
	limiter_free(l);
}

static void test_table_limits(void **state)
{
	(void)state;
	assert_null(limiter_new(0, WINDOW));
	assert_null(limiter_new(4, 0));
	limiter *l = limiter_new(4, WINDOW);
	char key[LIMITER_KEY_MAX + 2];
	memset(key, 'k', sizeof key - 1);
	key[sizeof key - 1] = '\0';
	limiter_count c;
	assert_int_equal(limiter_fail(l, key, T0, &c), SDK_EINVAL);
	assert_int_equal(limiter_get(l, key, T0, &c), SDK_EINVAL);
	key[LIMITER_KEY_MAX] = '\0'; /* the longest allowed */
	assert_int_equal(limiter_fail(l, key, T0, &c), 0);
	assert_int_equal(limiter_get(l, key, T0, &c), 0);
	assert_int_equal(c.failures, 1);
	limiter_free(l);
}

/* -- sources --------------------------------------------------------- */

static void test_source_keys(void **state)
{
	(void)state;
	static const struct {
		const char *peer, *key;
	} cases[] = {
		{ "127.0.0.1", "loopback" },
		{ "127.0.0.2", "loopback" },
		{ "127.255.255.254", "loopback" },
		{ "::1", "loopback" },
		{ "::ffff:127.0.0.1", "loopback" },
		{ "::ffff:127.8.9.10", "loopback" },
		{ "128.0.0.1", "128.0.0.1" },
		{ "10.1.2.3", "10.1.2.3" },
		{ "::ffff:10.1.2.3", "10.1.2.3" },
		{ "2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64" },
		{ "2001:db8:1:2::ffff", "2001:db8:1:2::/64" },
		{ "2001:db8:1:3::1", "2001:db8:1:3::/64" },
		{ "", "local" },
		{ "not an address", "other" },
		{ "127.0.0.1x", "other" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		char key[AUTH_SOURCE_KEY_MAX];
		auth_source_key(cases[i].peer, key);
		if (strcmp(key, cases[i].key))
			fail_msg("%s: %s, not %s", cases[i].peer, key, cases[i].key);
	}
}

static void test_source_delay(void **state)
{
	(void)state;
	limiter *l = limiter_new(2, WINDOW);
	limiter_count c;
	int64_t want[] = { 0, 0, 0, 0, 250, 500, 1000, 2000, 2000, 2000 };
	for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
		assert_int_equal(auth_source_delay_ms(l, "loopback", T0), want[i]);
		limiter_fail(l, "loopback", T0, &c);
	}
	/* A source the full table cannot count waits the longest: slowed,
	 * never refused, and no count evicted for it. */
	limiter_fail(l, "10.0.0.1", T0, &c);
	assert_int_equal(auth_source_delay_ms(l, "10.0.0.2", T0), AUTH_SOURCE_DELAY_MAX_MS);
	assert_int_equal(auth_source_delay_ms(l, "10.0.0.1", T0), 0);
	/* After the window, nothing. */
	assert_int_equal(auth_source_delay_ms(l, "loopback", T0 + WINDOW), 0);
	limiter_free(l);
}

/* -- accounts in SQLite ---------------------------------------------- */

static sqlite3 *db_with(const char *const *users)
{
	sqlite3 *db;
	sdk_err err;
	assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA foreign_keys=ON", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(auth_store_init(db, &err), 0);
	grace_store gs = store_sqlite(db);
	for (; *users; users++)
		assert_int_equal(auth_user_add(&gs, *users, "$argon2id$x", AUTH_ROLE_USER, T0), 0);
	return db;
}

static void test_lockout_store(void **state)
{
	(void)state;
	static const char *const users[] = { "dave", "erin", NULL };
	sqlite3 *db = db_with(users);
	grace_store gs = store_sqlite(db);
	limiter_count c;
	assert_int_equal(auth_lockout_get(&gs, "dave", &c), 0);
	assert_int_equal(c.failures, 0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(auth_lockout_fail(&gs, "dave", T0 + i, WINDOW, &c), 0);
	assert_int_equal(c.failures, 10);
	assert_int_equal(auth_lockout_get(&gs, "dave", &c), 0);
	assert_int_equal(c.failures, 10);
	assert_int_equal(c.since_ms, T0);
	assert_true(limiter_count_locked_ms(&c, T0 + 100, WINDOW, 10) > 0);
	assert_int_equal(auth_lockout_get(&gs, "erin", &c), 0);
	assert_int_equal(c.failures, 0);
	/* A name that is no account gets no row. */
	assert_int_equal(auth_lockout_fail(&gs, "nobody", T0, WINDOW, &c), SDK_ENOTFOUND);
	sqlite3_stmt *st;
	sqlite3_prepare_v2(db, "SELECT count(*) FROM login_failures", -1, &st, NULL);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 1);
	sqlite3_finalize(st);
	/* A new password lifts the lock. */
	assert_int_equal(auth_user_set_password(&gs, "dave", "$argon2id$y", T0 + 200), 0);
	assert_int_equal(auth_lockout_get(&gs, "dave", &c), 0);
	assert_int_equal(c.failures, 0);
	/* The count goes with the user: a new "erin" starts clean. */
	auth_lockout_fail(&gs, "erin", T0, WINDOW, &c);
	assert_int_equal(auth_user_delete(&gs, "erin"), 0);
	assert_int_equal(auth_user_add(&gs, "erin", "$argon2id$z", AUTH_ROLE_USER, T0), 0);
	assert_int_equal(auth_lockout_get(&gs, "erin", &c), 0);
	assert_int_equal(c.failures, 0);
	auth_lockout_fail(&gs, "erin", T0, WINDOW, &c);
	assert_int_equal(auth_lockout_clear(&gs, "erin"), 0);
	assert_int_equal(auth_lockout_get(&gs, "erin", &c), 0);
	assert_int_equal(c.failures, 0);
	sqlite3_close(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_count_window),
		cmocka_unit_test(test_count_clock_set_back),
		cmocka_unit_test(test_delay),
		cmocka_unit_test(test_table_exact_keys),
		cmocka_unit_test(test_table_full_evicts_nothing),
		cmocka_unit_test(test_table_forget_and_reuse),
		cmocka_unit_test(test_table_limits),
		cmocka_unit_test(test_source_keys),
		cmocka_unit_test(test_source_delay),
		cmocka_unit_test(test_lockout_store),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
