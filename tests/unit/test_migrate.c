/* Unit tests for the migration runner (src/sdk/migrate.c) on real SQLite
 * files, with step tables of their own: a new file is stamped, an
 * unversioned one is stamped then migrated, each step commits with its
 * version, a failing step leaves the last good version and the copy made
 * before the first step, and a file from a newer build is refused with
 * nothing changed. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sdk/db.h"
#include "sdk/migrate.h"

struct fx {
	char dir[64];
	char path[128];
	sqlite3 *db;
	sdk_err err;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/grace-ut-migrate-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof f->path, "%s/store.db", f->dir);
	assert_int_equal(sdk_db_open_checked(f->dir, "store", NULL, &f->db, &f->err), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	sqlite3_close(f->db);
	DIR *d = opendir(f->dir);
	struct dirent *e;
	char p[512];
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof p, "%s/%s", f->dir, e->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(f->dir);
	free(f);
	return 0;
}

static int version_of(struct fx *f)
{
	int v = -1;
	assert_int_equal(sdk_mig_version(f->db, &v, &f->err), 0);
	return v;
}

static int64_t count(struct fx *f, const char *sql)
{
	int64_t n = -1;
	assert_int_equal(sdk_db_count(f->db, sql, NULL, &n, sql, &f->err), 0);
	return n;
}

static void exec(struct fx *f, const char *sql)
{
	assert_int_equal(sqlite3_exec(f->db, sql, NULL, NULL, NULL), SQLITE_OK);
}

static bool exists(struct fx *f, const char *name)
{
	char p[256];
	struct stat st;
	snprintf(p, sizeof p, "%s/%s", f->dir, name);
	return stat(p, &st) == 0;
}

/* Version 1: table t; 2: a column; 3: a row; the function fails when
 * asked to. */
static bool fail_fn;
static int step_fn(sqlite3 *db, sdk_err *err)
{
	if (fail_fn)
		return sdk_fail(err, SDK_EIO, "the step was told to fail");
	return sqlite3_exec(db, "INSERT INTO t (a, b) VALUES (3, 'three')", NULL, NULL, NULL) ==
			       SQLITE_OK
		       ? 0
		       : sdk_db_fail(db, err, "insert");
}

static const sdk_mig_step steps[] = {
	{ .what = "(stamp)" },
	{ .sql = "ALTER TABLE t ADD COLUMN b TEXT", .what = "(column b)" },
	{ .fn = step_fn, .what = "(row 3)" },
};
static const sdk_mig_def def3 = { .store = "store", .version = 3, .steps = steps, .n_steps = 3 };

static void test_new_file_is_stamped_current(void **state)
{
	struct fx *f = *state;
	sdk_mig_report r;
	assert_int_equal(sdk_mig_run(f->db, &def3, &r, &f->err), 0);
	assert_true(r.created);
	assert_int_equal(r.steps, 0);
	assert_int_equal(version_of(f), 3);
	assert_false(exists(f, "store.db.pre-v0"));
	/* Again: nothing to do. */
	assert_int_equal(sdk_mig_run(f->db, &def3, &r, &f->err), 0);
	assert_false(r.created);
	assert_int_equal(r.from, 3);
}

static void test_unversioned_file_runs_every_step(void **state)
{
	struct fx *f = *state;
	exec(f, "CREATE TABLE t (a INTEGER); INSERT INTO t (a) VALUES (1);");
	assert_int_equal(version_of(f), 0);
	fail_fn = false;
	sdk_mig_report r;
	assert_int_equal(sdk_mig_run(f->db, &def3, &r, &f->err), 0);
	assert_int_equal(r.from, 0);
	assert_int_equal(r.to, 3);
	assert_int_equal(r.steps, 3);
	assert_int_equal(version_of(f), 3);
	assert_int_equal(count(f, "SELECT count(*) FROM t"), 2);
	assert_int_equal(count(f, "SELECT count(*) FROM t WHERE b = 'three'"), 1);
	assert_false(exists(f, "store.db.pre-v0"));
	assert_false(exists(f, "store.db.pre-v0.tmp"));
}

static void test_failed_step_keeps_last_version_and_copy(void **state)
{
	struct fx *f = *state;
	exec(f, "CREATE TABLE t (a INTEGER); INSERT INTO t (a) VALUES (1); PRAGMA user_version = 1;");
	fail_fn = true;
	sdk_mig_report r;
	int rc = sdk_mig_run(f->db, &def3, &r, &f->err);
	assert_int_equal(rc, SDK_EIO);
	/* The step 1->2 committed; 2->3 rolled back. */
	assert_int_equal(version_of(f), 2);
	assert_int_equal(r.to, 2);
	assert_int_equal(count(f, "SELECT count(*) FROM pragma_table_info('t') WHERE name = 'b'"),
			 1);
	assert_int_equal(count(f, "SELECT count(*) FROM t"), 1);
	/* The reason names the step and the copy, and the copy is the file as
	 * it was: version 1, no column b. */
	assert_non_null(strstr(f->err.msg, "migration 2->3 (row 3) failed"));
	assert_non_null(strstr(f->err.msg, "the step was told to fail"));
	assert_non_null(strstr(f->err.msg, "store.db.pre-v1"));
	assert_true(exists(f, "store.db.pre-v1"));
	sqlite3 *copy;
	char p[256];
	snprintf(p, sizeof p, "%s/store.db.pre-v1", f->dir);
	assert_int_equal(sqlite3_open_v2(p, &copy, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3 *db = f->db;
	f->db = copy;
	assert_int_equal(version_of(f), 1);
	assert_int_equal(count(f, "SELECT count(*) FROM pragma_table_info('t') WHERE name = 'b'"),
			 0);
	assert_int_equal(count(f, "SELECT count(*) FROM t"), 1);
	f->db = db;
	sqlite3_close(copy);

	/* Fixed: the next run goes on from version 2. */
	fail_fn = false;
	assert_int_equal(sdk_mig_run(f->db, &def3, &r, &f->err), 0);
	assert_int_equal(r.from, 2);
	assert_int_equal(version_of(f), 3);
	assert_false(exists(f, "store.db.pre-v2"));
}

static void test_failed_sql_step_rolls_back(void **state)
{
	struct fx *f = *state;
	static const sdk_mig_step bad[] = {
		{ 0 },
		{ .sql = "CREATE TABLE u (x); INSERT INTO nowhere VALUES (1);" },
	};
	static const sdk_mig_def def = { .store = "s", .version = 2, .steps = bad, .n_steps = 2 };
	exec(f, "CREATE TABLE t (a INTEGER)");
	assert_int_equal(sdk_mig_run(f->db, &def, NULL, &f->err), SDK_EIO);
	assert_int_equal(version_of(f), 1);
	assert_int_equal(count(f, "SELECT count(*) FROM sqlite_master WHERE name = 'u'"), 0);
	assert_non_null(strstr(f->err.msg, "nowhere"));
	assert_true(exists(f, "store.db.pre-v0"));
}

static void test_newer_file_is_refused_unchanged(void **state)
{
	struct fx *f = *state;
	exec(f, "CREATE TABLE t (a INTEGER); PRAGMA user_version = 7;");
	int rc = sdk_mig_run(f->db, &def3, NULL, &f->err);
	assert_int_equal(rc, SDK_EIO);
	assert_int_equal(version_of(f), 7);
	assert_non_null(strstr(f->err.msg, "store.db has schema version 7"));
	assert_non_null(strstr(f->err.msg, "knows up to 3"));
	assert_non_null(strstr(f->err.msg, "written by a newer Grace"));
	assert_false(exists(f, "store.db.pre-v7"));
}

static void test_copy_left_by_a_killed_run_is_removed(void **state)
{
	struct fx *f = *state;
	/* Killed after the last COMMIT, before the copy was removed. */
	exec(f, "CREATE TABLE t (a INTEGER); PRAGMA user_version = 3;");
	char p[256];
	snprintf(p, sizeof p, "%s/store.db.pre-v1", f->dir);
	FILE *c = fopen(p, "w");
	assert_non_null(c);
	fclose(c);
	assert_int_equal(sdk_mig_run(f->db, &def3, NULL, &f->err), 0);
	assert_false(exists(f, "store.db.pre-v1"));
}

static void test_bad_declaration(void **state)
{
	struct fx *f = *state;
	sdk_mig_def d = { .store = "s", .version = 3, .steps = steps, .n_steps = 2 };
	assert_int_equal(sdk_mig_run(f->db, &d, NULL, &f->err), SDK_EINVAL);
	d = (sdk_mig_def){ .store = "s", .version = 0 };
	assert_int_equal(sdk_mig_run(f->db, &d, NULL, &f->err), SDK_EINVAL);
	assert_int_equal(version_of(f), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_new_file_is_stamped_current, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unversioned_file_runs_every_step, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_failed_step_keeps_last_version_and_copy, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_failed_sql_step_rolls_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_file_is_refused_unchanged, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_copy_left_by_a_killed_run_is_removed, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bad_declaration, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
