/* Unit tests for starting kernel processes (src/supervisor/spawn.c): the
 * command splitter, and sup_spawn for real with /bin/sh children. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "serve/supervisor/spawn.h"

/* ---- sup_split_command ---- */

#define ARGV_N 8

static int split(const char *cmd, char *buf, size_t buflen, char **argv, int max)
{
	return sup_split_command(cmd, buf, buflen, argv, max);
}

static void expect_split(const char *cmd, const char *const *want, int n)
{
	char buf[256];
	char *argv[ARGV_N];
	memset(argv, 0x5A, sizeof argv);
	int rc = split(cmd, buf, sizeof buf, argv, ARGV_N);
	if (rc != n)
		fail_msg("'%s': %d arguments, wanted %d", cmd, rc, n);
	for (int i = 0; i < n; i++)
		assert_string_equal(argv[i], want[i]);
	assert_null(argv[n]);
}

static void test_split_plain(void **state)
{
	(void)state;
	expect_split("grace", (const char *const[]){ "grace" }, 1);
	expect_split("grace kernel librarian",
		     (const char *const[]){ "grace", "kernel", "librarian" }, 3);
	expect_split("/usr/bin/env -i A=b prog",
		     (const char *const[]){ "/usr/bin/env", "-i", "A=b", "prog" }, 4);
}

static void test_split_blanks(void **state)
{
	(void)state;
	expect_split("  a   b\t\tc  \t ", (const char *const[]){ "a", "b", "c" }, 3);
	expect_split("\ta", (const char *const[]){ "a" }, 1);
}

static void test_split_quotes(void **state)
{
	(void)state;
	expect_split("sh -c 'exit 3'", (const char *const[]){ "sh", "-c", "exit 3" }, 3);
	expect_split("echo \"a  b\" c", (const char *const[]){ "echo", "a  b", "c" }, 3);
	/* Each quote protects the other kind. */
	expect_split("say \"it's\" 'a \"b\"'",
		     (const char *const[]){ "say", "it's", "a \"b\"" }, 3);
	/* Quoted and unquoted parts join into one argument. */
	expect_split("--name='a b'c\"d e\"", (const char *const[]){ "--name=a bcd e" }, 1);
	/* Empty quotes are an empty argument. */
	expect_split("a '' \"\" b", (const char *const[]){ "a", "", "", "b" }, 4);
	/* Tabs inside quotes are kept. */
	expect_split("'\tx\t'", (const char *const[]){ "\tx\t" }, 1);
}

static void test_split_errors(void **state)
{
	(void)state;
	char buf[256];
	char *argv[ARGV_N];
	assert_int_equal(split("echo 'abc", buf, sizeof buf, argv, ARGV_N), -1);
	assert_int_equal(split("echo \"abc", buf, sizeof buf, argv, ARGV_N), -1);
	assert_int_equal(split("echo 'a\"", buf, sizeof buf, argv, ARGV_N), -1);
	assert_int_equal(split("'", buf, sizeof buf, argv, ARGV_N), -1);
	assert_int_equal(split("", buf, sizeof buf, argv, ARGV_N), -1);
	assert_int_equal(split("   \t  ", buf, sizeof buf, argv, ARGV_N), -1);
}

static void test_split_too_many_args(void **state)
{
	(void)state;
	char buf[256];
	char *argv[4];
	/* max counts the terminating NULL: 3 arguments fit in 4 slots. */
	assert_int_equal(split("a b c", buf, sizeof buf, argv, 4), 3);
	assert_null(argv[3]);
	assert_int_equal(split("a b c d", buf, sizeof buf, argv, 4), -1);
	assert_int_equal(split("a b c d e f g h", buf, sizeof buf, argv, 4), -1);
	/* Trailing blanks are not an argument. */
	assert_int_equal(split("a b c   ", buf, sizeof buf, argv, 4), 3);

	/* The supervisor's own limit. */
	char cmd[4 * SPAWN_ARGS_MAX], big[4 * SPAWN_ARGS_MAX];
	char *av[SPAWN_ARGS_MAX];
	size_t o = 0;
	for (int i = 0; i < SPAWN_ARGS_MAX - 1; i++)
		o += (size_t)sprintf(cmd + o, "%c ", 'a' + i % 26);
	assert_int_equal(split(cmd, big, sizeof big, av, SPAWN_ARGS_MAX), SPAWN_ARGS_MAX - 1);
	sprintf(cmd + o, "z");
	assert_int_equal(split(cmd, big, sizeof big, av, SPAWN_ARGS_MAX), -1);
}

static void test_split_buffer_too_small(void **state)
{
	(void)state;
	char *argv[ARGV_N];
	char buf[64];
	/* "abc def" needs 8 bytes: "abc\0def\0". */
	for (size_t len = 1; len < 8; len++) {
		memset(buf, 'Z', sizeof buf);
		if (split("abc def", buf, len, argv, ARGV_N) != -1)
			fail_msg("fits into %zu bytes", len);
		/* Nothing is written past the given length. */
		for (size_t i = len; i < sizeof buf; i++)
			assert_int_equal(buf[i], 'Z');
	}
	assert_int_equal(split("abc def", buf, 9, argv, ARGV_N), 2);
	assert_int_equal(split("'a b c'", buf, 4, argv, ARGV_N), -1);
	assert_int_equal(split("x", buf, 0, argv, ARGV_N), -1);
}

static void test_split_exact_fit(void **state)
{
	(void)state;
	char *argv[ARGV_N];
	char buf[8];
	/* "abc def" is exactly 8 bytes with its two terminators. */
	assert_int_equal(split("abc def", buf, sizeof buf, argv, ARGV_N), 2);
	assert_string_equal(argv[0], "abc");
	assert_string_equal(argv[1], "def");
	assert_int_equal(split("x", buf, 2, argv, ARGV_N), 1);
	assert_string_equal(argv[0], "x");
}

/* ---- sup_spawn ---- */

static const char *const no_env[] = { NULL };

/* Waits for `pid` and returns its exit status, failing on a signal death. */
static int wait_exit(pid_t pid)
{
	int status;
	pid_t r;
	do
		r = waitpid(pid, &status, 0);
	while (r < 0 && errno == EINTR);
	assert_int_equal(r, pid);
	if (!WIFEXITED(status))
		fail_msg("child %d did not exit normally (status 0x%x)", (int)pid, status);
	return WEXITSTATUS(status);
}

static pid_t spawn_sh(const char *script, const char *const *env, int listen_fd)
{
	const char *argv[] = { "/bin/sh", "-c", script, NULL };
	sup_spawn_opts o = { .argv = argv, .env = env, .listen_fd = listen_fd };
	pid_t pid = sup_spawn(&o, NULL);
	if (pid <= 0)
		fail_msg("sup_spawn: %s", strerror((int)-pid));
	return pid;
}

static void test_spawn_exit_status(void **state)
{
	(void)state;
	pid_t pid = spawn_sh("exit 3", no_env, -1);
	assert_true(pid > 0);
	assert_int_not_equal(pid, getpid());
	assert_int_equal(wait_exit(pid), 3);
	pid = spawn_sh("exit 0", no_env, -1);
	assert_int_equal(wait_exit(pid), 0);
}

static void test_spawn_path_lookup(void **state)
{
	(void)state;
	/* argv[0] without a '/' is looked up in PATH. */
	const char *argv[] = { "sh", "-c", "exit 4", NULL };
	sup_spawn_opts o = { .argv = argv, .env = no_env, .listen_fd = -1 };
	pid_t pid = sup_spawn(&o, NULL);
	assert_true(pid > 0);
	assert_int_equal(wait_exit(pid), 4);
}

static void test_spawn_enoent(void **state)
{
	(void)state;
	const char *a1[] = { "/nonexistent/grace-test-no-such-program", NULL };
	const char *a2[] = { "grace-test-no-such-program-in-path", "x", NULL };
	sup_spawn_opts o = { .argv = a1, .env = no_env, .listen_fd = -1 };
	assert_int_equal(sup_spawn(&o, NULL), -ENOENT);
	o.argv = a2;
	assert_int_equal(sup_spawn(&o, NULL), -ENOENT);
	/* The failed child was reaped by sup_spawn: no child is left. */
	errno = 0;
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

static void test_spawn_not_executable(void **state)
{
	(void)state;
	char path[] = "/tmp/grace-spawn-test-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "#!/bin/sh\nexit 0\n", 17), 17);
	close(fd);
	assert_int_equal(chmod(path, 0600), 0);
	const char *argv[] = { path, NULL };
	sup_spawn_opts o = { .argv = argv, .env = no_env, .listen_fd = -1 };
	pid_t pid = sup_spawn(&o, NULL);
	unlink(path);
	assert_int_equal(pid, -EACCES);
}

static void test_spawn_exec_fd(void **state)
{
	(void)state;
	/* With exec_fd, sup_spawn returns at once and the fd tells the outcome. */
	const char *bad[] = { "/nonexistent/grace-test-no-such-program", NULL };
	sup_spawn_opts o = { .argv = bad, .env = no_env, .listen_fd = -1 };
	int efd = -1;
	pid_t pid = sup_spawn(&o, &efd);
	assert_true(pid > 0);
	assert_true(efd >= 0);
	assert_true(fcntl(efd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(efd, F_GETFD) & FD_CLOEXEC);
	struct pollfd p = { .fd = efd, .events = POLLIN };
	assert_int_equal(poll(&p, 1, 10000), 1);
	assert_int_equal(sup_spawn_exec_result(efd), ENOENT);
	close(efd);
	/* The caller reaps that child, which exits 127. */
	assert_int_equal(wait_exit(pid), 127);

	const char *good[] = { "/bin/sh", "-c", "exit 5", NULL };
	o.argv = good;
	efd = -1;
	pid = sup_spawn(&o, &efd);
	assert_true(pid > 0);
	p.fd = efd;
	assert_int_equal(poll(&p, 1, 10000), 1);
	assert_int_equal(sup_spawn_exec_result(efd), 0);
	close(efd);
	assert_int_equal(wait_exit(pid), 5);
}

static void test_exec_result_states(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	/* Nothing yet. */
	assert_int_equal(sup_spawn_exec_result(p[0]), -EAGAIN);
	/* An errno. */
	int e = EPERM;
	assert_int_equal(write(p[1], &e, sizeof e), (ssize_t)sizeof e);
	assert_int_equal(sup_spawn_exec_result(p[0]), EPERM);
	assert_int_equal(sup_spawn_exec_result(p[0]), -EAGAIN);
	/* EOF: the exec succeeded. */
	close(p[1]);
	assert_int_equal(sup_spawn_exec_result(p[0]), 0);
	close(p[0]);
}

static void test_spawn_listen_fd(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	/* Well away from 3, so it has to be moved there (fd 3 itself is
	 * test_spawn_listen_fd_is_3's case). */
	int high = fcntl(p[0], F_DUPFD_CLOEXEC, 20);
	assert_true(high >= 20);
	close(p[0]);
	p[0] = high;
	struct stat st;
	assert_int_equal(fstat(p[0], &st), 0);
	char want[64], env_want[80];
	snprintf(want, sizeof want, "pipe:[%lu]", (unsigned long)st.st_ino);
	snprintf(env_want, sizeof env_want, "WANT_FD3=%s", want);
	const char *env[] = { env_want, NULL };

	/* fd 3 exists in the child ... */
	pid_t pid = spawn_sh("test -e /proc/self/fd/3", no_env, p[0]);
	assert_int_equal(wait_exit(pid), 0);
	/* ... and is the very pipe that was passed (a close-on-exec fd). */
	pid = spawn_sh("test \"$(readlink /proc/$$/fd/3)\" = \"$WANT_FD3\"", env, p[0]);
	assert_int_equal(wait_exit(pid), 0);
	/* LISTEN_PID names the child itself. */
	pid = spawn_sh("test \"$LISTEN_PID\" = \"$$\"", no_env, p[0]);
	assert_int_equal(wait_exit(pid), 0);
	/* Without a listen_fd there is no LISTEN_PID. */
	pid = spawn_sh("test -z \"${LISTEN_PID+set}\"", no_env, -1);
	assert_int_equal(wait_exit(pid), 0);
	/* A LISTEN_PID of our own is not passed on. */
	setenv("LISTEN_PID", "1", 1);
	pid = spawn_sh("test \"$LISTEN_PID\" = \"$$\"", no_env, p[0]);
	int rc = wait_exit(pid);
	pid = spawn_sh("test -z \"${LISTEN_PID+set}\"", no_env, -1);
	int rc2 = wait_exit(pid);
	unsetenv("LISTEN_PID");
	assert_int_equal(rc, 0);
	assert_int_equal(rc2, 0);
	close(p[0]);
	close(p[1]);
}

/* These tests need fd 3 free in this process (a test runner may have left
 * something there): whatever holds it moves to a close-on-exec descriptor
 * above it for the test, and back after. Returns that descriptor, or -1
 * when fd 3 was free. */
static int fd3_clear(void)
{
	if (fcntl(3, F_GETFD) < 0) {
		assert_int_equal(errno, EBADF);
		return -1;
	}
	int moved = fcntl(3, F_DUPFD_CLOEXEC, 10);
	assert_true(moved >= 10);
	assert_int_equal(close(3), 0);
	return moved;
}

static void fd3_restore(int moved)
{
	if (moved >= 0) {
		assert_int_equal(dup2(moved, 3), 3);
		close(moved);
	}
}

static void test_spawn_listen_fd_is_3(void **state)
{
	(void)state;
	/* A listen_fd that already is fd 3 (close-on-exec) must survive exec. */
	int moved = fd3_clear();
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	int fd3 = p[0] == 3 ? 3 : dup3(p[0], 3, O_CLOEXEC);
	assert_int_equal(fd3, 3);
	struct stat st;
	assert_int_equal(fstat(3, &st), 0);
	char env_want[80];
	snprintf(env_want, sizeof env_want, "WANT_FD3=pipe:[%lu]", (unsigned long)st.st_ino);
	const char *env[] = { env_want, NULL };
	pid_t pid = spawn_sh("test \"$(readlink /proc/$$/fd/3)\" = \"$WANT_FD3\"", env, 3);
	int rc = wait_exit(pid);
	if (p[0] != 3)
		close(p[0]);
	close(3);
	close(p[1]);
	fd3_restore(moved);
	assert_int_equal(rc, 0);
}

static void test_spawn_env(void **state)
{
	(void)state;
	const char *env[] = { "GRACE_TEST_A=alpha", "GRACE_TEST_B=two words", "HOME=/grace-home",
			      NULL };
	const char *home = getenv("HOME");
	char *saved_home = home ? strdup(home) : NULL;
	setenv("GRACE_TEST_INHERITED", "yes", 1);
	setenv("HOME", "/parent-home", 1);
	pid_t pid = spawn_sh("test \"$GRACE_TEST_A\" = alpha && "
			     "test \"$GRACE_TEST_B\" = 'two words' && "
			     "test \"$GRACE_TEST_INHERITED\" = yes && "
			     "test \"$HOME\" = /grace-home && "
			     "test \"$(tr '\\0' '\\n' </proc/$$/environ | grep -c '^HOME=')\" = 1",
			     env, -1);
	int rc = wait_exit(pid);
	unsetenv("GRACE_TEST_INHERITED");
	/* The parent's environment is not changed. */
	int home_kept = !strcmp(getenv("HOME"), "/parent-home");
	if (saved_home)
		setenv("HOME", saved_home, 1);
	else
		unsetenv("HOME");
	free(saved_home);
	assert_int_equal(rc, 0);
	assert_true(home_kept);
	assert_null(getenv("GRACE_TEST_A"));
}

static void test_spawn_process_group(void **state)
{
	(void)state;
	/* The child checks itself: its process group is its pid ... */
	pid_t pid = spawn_sh("test \"$(cut -d' ' -f5 /proc/$$/stat)\" = \"$$\"", no_env, -1);
	assert_int_equal(wait_exit(pid), 0);

	/* ... and the parent sees it so as soon as sup_spawn returns. */
	pid = spawn_sh("exec sleep 30", no_env, -1);
	pid_t pgid = getpgid(pid);
	assert_int_equal(kill(pid, SIGKILL), 0);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(pgid, pid);
	assert_int_not_equal(pgid, getpgrp());
	assert_true(WIFSIGNALED(status));
}

static void test_spawn_stdin_is_dev_null(void **state)
{
	(void)state;
	/* Give this process a pipe as stdin, so the child inherits /dev/null only
	 * if sup_spawn puts it there. */
	int saved = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 10);
	assert_true(saved >= 0);
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(dup2(p[0], STDIN_FILENO), STDIN_FILENO);
	pid_t pid = spawn_sh("test \"$(readlink /proc/$$/fd/0)\" = /dev/null", no_env, -1);
	int rc = wait_exit(pid);
	dup2(saved, STDIN_FILENO);
	close(saved);
	close(p[0]);
	close(p[1]);
	assert_int_equal(rc, 0);
}

static void test_spawn_no_stray_fd3(void **state)
{
	(void)state;
	/* Without a listen_fd the child has no fd 3: nothing of the parent's
	 * (all close-on-exec here) and nothing sup_spawn opened itself. */
	int moved = fd3_clear();
	pid_t pid = spawn_sh("test ! -e /proc/$$/fd/3 || "
			     "{ echo \"fd 3 is $(readlink /proc/$$/fd/3)\" >&2; exit 1; }",
			     no_env, -1);
	int rc = wait_exit(pid);
	fd3_restore(moved);
	assert_int_equal(rc, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split_plain),
		cmocka_unit_test(test_split_blanks),
		cmocka_unit_test(test_split_quotes),
		cmocka_unit_test(test_split_errors),
		cmocka_unit_test(test_split_too_many_args),
		cmocka_unit_test(test_split_buffer_too_small),
		cmocka_unit_test(test_split_exact_fit),
		cmocka_unit_test(test_spawn_exit_status),
		cmocka_unit_test(test_spawn_path_lookup),
		cmocka_unit_test(test_spawn_enoent),
		cmocka_unit_test(test_spawn_not_executable),
		cmocka_unit_test(test_spawn_exec_fd),
		cmocka_unit_test(test_exec_result_states),
		cmocka_unit_test(test_spawn_listen_fd),
		cmocka_unit_test(test_spawn_listen_fd_is_3),
		cmocka_unit_test(test_spawn_env),
		cmocka_unit_test(test_spawn_process_group),
		cmocka_unit_test(test_spawn_stdin_is_dev_null),
		cmocka_unit_test(test_spawn_no_stray_fd3),
	};
	return cmocka_run_group_tests_name("spawn", tests, NULL, NULL);
}
