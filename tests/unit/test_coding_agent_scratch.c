/* Unit tests of the coding_agent kernel's tests' copy
 * (src/kernels/coding_agent/scratch.c): the copy has the worktree's
 * files, directories and links (links as links), its permission bits
 * without set-id, and not its top-level .git; when handed over, every
 * entry is the new owner's; the removal follows no link and gets through
 * a directory a job locked (mode 000). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/coding_agent/scratch.h"

static char base[256];

static void put(const char *rel, const char *text, mode_t mode)
{
	char p[PATH_MAX];
	snprintf(p, sizeof p, "%s/%s", base, rel);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	assert_int_equal(chmod(p, mode), 0);
}

static void dir(const char *rel)
{
	char p[PATH_MAX];
	snprintf(p, sizeof p, "%s/%s", base, rel);
	assert_int_equal(mkdir(p, 0755), 0);
}

static char *path(const char *rel)
{
	static char p[4][PATH_MAX];
	static int i;
	i = (i + 1) % 4;
	snprintf(p[i], sizeof p[i], "%s/%s", base, rel);
	return p[i];
}

static void slurp(const char *rel, char *out, size_t n)
{
	FILE *f = fopen(path(rel), "r");
	assert_non_null(f);
	size_t got = fread(out, 1, n - 1, f);
	out[got] = 0;
	fclose(f);
}

static int setup(void **state)
{
	(void)state;
	snprintf(base, sizeof base, "/tmp/grace-scratch-XXXXXX");
	assert_non_null(mkdtemp(base));
	dir("wt");
	dir("wt/src");
	dir("wt/src/deep");
	put("wt/.git", "gitdir: /somewhere/.git/worktrees/x\n", 0644);
	put("wt/run.sh", "#!/bin/sh\necho hi\n", 04755); /* set-uid: never copied */
	put("wt/src/a.py", "print(1)\n", 0644);
	put("wt/src/deep/b.txt", "b\n", 0600);
	dir("wt/src/.git"); /* a nested .git (a submodule's) is a file of the tree */
	put("wt/src/.git/x", "x\n", 0644);
	assert_int_equal(symlink("../run.sh", path("wt/src/link")), 0);
	assert_int_equal(symlink("/etc", path("wt/out-link")), 0);
	assert_int_equal(mkfifo(path("wt/fifo"), 0600), 0);
	put("outside", "keep me\n", 0644);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	sdk_err e;
	ca_scratch_remove(base, &e);
	return 0;
}

static void test_copy(void **state)
{
	(void)state;
	sdk_err e;
	uid_t uid = 0;
	gid_t gid = 0;
	bool handover = false;
	assert_int_equal(ca_scratch_owner(getuid() == 0 ? "nobody" : "", &uid, &gid, &handover, &e),
			 0);
	assert_int_equal(handover, getuid() == 0);
	assert_int_equal(ca_scratch_copy(path("wt"), path("copy"), handover, uid, gid, &e), 0);
	char buf[256];
	slurp("copy/src/a.py", buf, sizeof buf);
	assert_string_equal(buf, "print(1)\n");
	slurp("copy/src/deep/b.txt", buf, sizeof buf);
	assert_string_equal(buf, "b\n");
	slurp("copy/src/.git/x", buf, sizeof buf);
	assert_string_equal(buf, "x\n");
	struct stat st;
	/* The top-level .git is the kernel's: not in the copy. */
	assert_int_equal(lstat(path("copy/.git"), &st), -1);
	assert_int_equal(lstat(path("copy/run.sh"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	assert_int_equal(lstat(path("copy/src/deep/b.txt"), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* Links stay links, whatever they point at. */
	assert_int_equal(lstat(path("copy/src/link"), &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	ssize_t n = readlink(path("copy/out-link"), buf, sizeof buf - 1);
	assert_true(n > 0);
	buf[n] = 0;
	assert_string_equal(buf, "/etc");
	assert_int_equal(lstat(path("copy/fifo"), &st), -1); /* skipped */
	assert_int_equal(lstat(path("copy"), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0755);
	if (handover) {
		const char *all[] = { "copy", "copy/run.sh", "copy/src", "copy/src/deep/b.txt",
				      "copy/src/link", NULL };
		for (size_t i = 0; all[i]; i++) {
			assert_int_equal(lstat(path(all[i]), &st), 0);
			assert_int_equal(st.st_uid, uid);
			assert_int_equal(st.st_gid, gid);
		}
	}
	/* Made again over an old copy: refused (the caller removes first). */
	assert_int_not_equal(ca_scratch_copy(path("wt"), path("copy"), false, 0, 0, &e), 0);
	assert_int_equal(ca_scratch_remove(path("copy"), &e), 0);
	assert_int_equal(lstat(path("copy"), &st), -1);
}

static void test_remove_follows_no_link(void **state)
{
	(void)state;
	sdk_err e;
	assert_int_equal(ca_scratch_copy(path("wt"), path("copy"), false, 0, 0, &e), 0);
	/* What a job might leave: links to what must survive, a locked
	 * directory with a file in it. */
	assert_int_equal(symlink(path("outside"), path("copy/to-outside")), 0);
	assert_int_equal(symlink(path("wt"), path("copy/src/to-wt")), 0);
	dir("copy/locked");
	put("copy/locked/f", "f\n", 0644);
	assert_int_equal(chmod(path("copy/locked"), 0), 0);
	assert_int_equal(ca_scratch_remove(path("copy"), &e), 0);
	struct stat st;
	assert_int_equal(lstat(path("copy"), &st), -1);
	char buf[64];
	slurp("outside", buf, sizeof buf);
	assert_string_equal(buf, "keep me\n");
	slurp("wt/src/a.py", buf, sizeof buf);
	assert_string_equal(buf, "print(1)\n");
	/* Absent: nothing to do. */
	assert_int_equal(ca_scratch_remove(path("copy"), &e), 0);
	assert_int_not_equal(ca_scratch_remove("noslash", &e), 0);
}

static void test_owner(void **state)
{
	(void)state;
	sdk_err e;
	uid_t uid;
	gid_t gid;
	bool handover = true;
	/* No jobs user named: jobs run as this process's user. */
	assert_int_equal(ca_scratch_owner("", &uid, &gid, &handover, &e), 0);
	assert_false(handover);
	if (geteuid() == 0) {
		assert_int_equal(ca_scratch_owner("no-such-user-grace", &uid, &gid, &handover, &e),
				 SDK_ENOTFOUND);
		assert_int_equal(ca_scratch_owner("root", &uid, &gid, &handover, &e), SDK_EINVAL);
	} else {
		/* Not root: the executor cannot switch users, nothing is handed over. */
		assert_int_equal(ca_scratch_owner("nobody", &uid, &gid, &handover, &e), 0);
		assert_false(handover);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_copy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_follows_no_link, setup, teardown),
		cmocka_unit_test(test_owner),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
