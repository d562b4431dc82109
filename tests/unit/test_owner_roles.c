/* Unit tests for the kernels' side of a role change (src/sdk/owner_roles.c)
 * on an in-memory SQLite: a newer version rewrites the owner's items and
 * only theirs, an older one arriving late is ignored (a later change is
 * never undone), the same version twice is applied once, and a failing
 * update leaves nothing changed (one transaction, the version included). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "sdk/owner_roles.h"

static const char *const updates[] = {
	"UPDATE items SET role = ?1 WHERE owner = ?2 AND role IN ('user', 'admin')",
};

static int setup(void **state)
{
	sqlite3 *db;
	assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
				      "CREATE TABLE items (id INTEGER PRIMARY KEY, owner TEXT, role TEXT);"
				      "INSERT INTO items (owner, role) VALUES ('ada', 'admin'), ('ada', 'admin'),"
				      " ('bea', 'admin'), ('ada', 'kernel');",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	*state = db;
	return 0;
}

static int teardown(void **state)
{
	sqlite3_close(*state);
	return 0;
}

static int count(sqlite3 *db, const char *owner, const char *role)
{
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM items WHERE owner = ?1 AND role = ?2",
					    -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, role, -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return n;
}

static int apply(sqlite3 *db, const char *owner, const char *role, int64_t version,
		 const char *const *ups, size_t n, int64_t *items, size_t *applied)
{
	json_t *roles = json_pack("[{s:s, s:s, s:I}]", "owner", owner, "role", role, "version",
				  (json_int_t)version);
	json_t *done = NULL;
	sdk_err e;
	int rc = sdk_owner_roles_apply(db, roles, ups, n, &done, items, &e);
	*applied = json_array_size(done);
	json_decref(done);
	json_decref(roles);
	return rc;
}

static void newer_applies_older_is_ignored(void **state)
{
	sqlite3 *db = *state;
	int64_t items;
	size_t applied;
	assert_int_equal(apply(db, "ada", "user", 5, updates, 1, &items, &applied), 0);
	assert_int_equal(applied, 1);
	assert_int_equal(items, 2);
	assert_int_equal(count(db, "ada", "user"), 2);
	assert_int_equal(count(db, "ada", "kernel"), 1); /* not a user's item */
	assert_int_equal(count(db, "bea", "admin"), 1);  /* not ada's */
	/* An older notice, retried late: the newer role stands. */
	assert_int_equal(apply(db, "ada", "admin", 4, updates, 1, &items, &applied), 0);
	assert_int_equal(applied, 0);
	assert_int_equal(count(db, "ada", "user"), 2);
	/* The same one again: nothing more. */
	assert_int_equal(apply(db, "ada", "admin", 5, updates, 1, &items, &applied), 0);
	assert_int_equal(applied, 0);
	assert_int_equal(count(db, "ada", "admin"), 0);
	/* A later change applies. */
	assert_int_equal(apply(db, "ada", "admin", 9, updates, 1, &items, &applied), 0);
	assert_int_equal(applied, 1);
	assert_int_equal(count(db, "ada", "admin"), 2);
}

static void a_failing_update_changes_nothing(void **state)
{
	sqlite3 *db = *state;
	static const char *const bad[] = {
		"UPDATE items SET role = ?1 WHERE owner = ?2 AND role IN ('user', 'admin')",
		"UPDATE no_such_table SET role = ?1 WHERE owner = ?2",
	};
	int64_t items;
	size_t applied;
	assert_int_not_equal(apply(db, "ada", "user", 3, bad, 2, &items, &applied), 0);
	assert_int_equal(applied, 0);
	assert_int_equal(count(db, "ada", "admin"), 2); /* the first update rolled back */
	/* and its version was not kept: the same notice applies once it can. */
	assert_int_equal(apply(db, "ada", "user", 3, updates, 1, &items, &applied), 0);
	assert_int_equal(applied, 1);
	assert_int_equal(count(db, "ada", "user"), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(newer_applies_older_is_ignored, setup, teardown),
		cmocka_unit_test_setup_teardown(a_failing_update_changes_nothing, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
