/* Unit tests for /proc readers (src/sdk/proc.c), run against this very
 * process, a zombie child of it, and sockets it opens. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sdk/proc.h"

#define NO_SUCH_PID 2147483647 /* above any pid_max */

static int g_argc;
static char **g_argv;

static void test_rss(void **state)
{
	(void)state;
	uint64_t rss = 0;
	assert_int_equal(proc_rss_bytes(0, &rss), 0);
	assert_true(rss > 0);
	assert_int_equal(rss % (uint64_t)sysconf(_SC_PAGESIZE), 0);

	/* Touching 16 MiB more makes it grow by (nearly) that much. */
	size_t big = 16u << 20;
	char *p = malloc(big);
	assert_non_null(p);
	memset(p, 1, big);
	uint64_t rss2 = 0;
	int rc = proc_rss_bytes(getpid(), &rss2);
	volatile char sink = p[big / 2];
	(void)sink;
	free(p);
	assert_int_equal(rc, 0);
	assert_true(rss2 >= rss + big / 2);

	assert_int_equal(proc_rss_bytes(NO_SUCH_PID, &rss), -ENOENT);
}

/* Counts open descriptors without /proc: every fd that fcntl knows. */
static unsigned count_fds_by_fcntl(void)
{
	struct rlimit rl;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	rlim_t max = rl.rlim_cur < 65536 ? rl.rlim_cur : 65536;
	unsigned n = 0;
	for (rlim_t fd = 0; fd < max; fd++)
		if (fcntl((int)fd, F_GETFD) >= 0)
			n++;
	return n;
}

static void test_open_fds(void **state)
{
	(void)state;
	unsigned before = 0, during = 0, after = 0;
	assert_int_equal(proc_open_fds(0, &before), 0);
	assert_true(before >= 3);
	/* Exactly this process's descriptors: not the one used to count them. */
	assert_int_equal(before, count_fds_by_fcntl());
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	int fd2 = dup(fd);
	assert_true(fd2 >= 0);
	assert_int_equal(proc_open_fds(0, &during), 0);
	close(fd);
	close(fd2);
	assert_int_equal(proc_open_fds(0, &after), 0);
	assert_int_equal(during, before + 2);
	assert_int_equal(after, before);

	assert_int_equal(proc_open_fds(NO_SUCH_PID, &after), -ENOENT);
}

static void test_open_fds_own_pid(void **state)
{
	(void)state;
	/* Naming this process by its pid counts the same descriptors as 0. */
	unsigned by_zero = 0, by_pid = 0;
	assert_int_equal(proc_open_fds(0, &by_zero), 0);
	assert_int_equal(proc_open_fds(getpid(), &by_pid), 0);
	assert_int_equal(by_pid, by_zero);
}

static void test_max_fds(void **state)
{
	(void)state;
	struct rlimit rl;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	uint64_t max = 0;
	assert_int_equal(proc_max_fds(0, &max), 0);
	assert_true(max == (uint64_t)rl.rlim_cur);
	assert_int_equal(proc_max_fds(NO_SUCH_PID, &max), -ESRCH);
}

static void test_cmdline(void **state)
{
	(void)state;
	/* The command line is argv joined by spaces. */
	char want[4096] = "";
	for (int i = 0; i < g_argc; i++) {
		if (i)
			strncat(want, " ", sizeof want - strlen(want) - 1);
		strncat(want, g_argv[i], sizeof want - strlen(want) - 1);
	}
	char buf[4096];
	memset(buf, 'Z', sizeof buf);
	assert_int_equal(proc_cmdline(0, buf, sizeof buf), 0);
	assert_string_equal(buf, want);
	assert_int_equal(proc_cmdline(getpid(), buf, sizeof buf), 0);
	assert_string_equal(buf, want);

	/* Truncated to the buffer, and terminated. */
	memset(buf, 'Z', sizeof buf);
	assert_int_equal(proc_cmdline(0, buf, 5), 0);
	assert_int_equal(strlen(buf), 4);
	assert_memory_equal(buf, want, 4);
	assert_int_equal(buf[5], 'Z');
	assert_int_equal(proc_cmdline(0, buf, 0), -EINVAL);

	assert_int_equal(proc_cmdline(NO_SUCH_PID, buf, sizeof buf), -ENOENT);
}

static void test_cmdline_of_child(void **state)
{
	(void)state;
	/* A process with several arguments: a child that waits on a pipe. */
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(p[0], 0);
		execl("/bin/sh", "/bin/sh", "-c", "read x", "arg one", "two", (char *)NULL);
		_exit(127);
	}
	close(p[0]);
	/* Wait until it has exec'd: its cmdline changes from ours to sh's. */
	char buf[256] = "";
	for (int i = 0; i < 5000; i++) {
		if (proc_cmdline(pid, buf, sizeof buf) == 0 && !strncmp(buf, "/bin/sh", 7))
			break;
		usleep(1000);
	}
	close(p[1]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_string_equal(buf, "/bin/sh -c read x arg one two");
}

static void test_stat_self(void **state)
{
	(void)state;
	char st = 0;
	uint64_t t1 = 0, t2 = 0;
	assert_int_equal(proc_stat(0, &st, &t1), 0);
	assert_true(st == 'R' || st == 'S');
	assert_true(t1 > 0);
	usleep(20000);
	st = 0;
	assert_int_equal(proc_stat(getpid(), &st, &t2), 0);
	assert_true(st == 'R' || st == 'S');
	assert_true(t1 == t2);
	/* Either output may be left out. */
	assert_int_equal(proc_stat(0, NULL, NULL), 0);
	assert_int_equal(proc_stat(0, &st, NULL), 0);
	assert_int_equal(proc_stat(NO_SUCH_PID, &st, &t2), -ENOENT);
}

static void test_stat_zombie_child(void **state)
{
	(void)state;
	uint64_t mine = 0;
	assert_int_equal(proc_stat(0, NULL, &mine), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(0);
	/* Wait for its exit without reaping it: it stays a zombie. */
	siginfo_t si;
	memset(&si, 0, sizeof si);
	assert_int_equal(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
	char st = 0;
	uint64_t start = 0;
	int rc = proc_stat(pid, &st, &start);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	assert_int_equal(rc, 0);
	assert_int_equal(st, 'Z');
	assert_true(start >= mine);
}

static int tcp_socket(int port, int do_listen)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	if (do_listen)
		assert_int_equal(listen(fd, 4), 0);
	return fd;
}

static int port_of(int fd)
{
	struct sockaddr_in a;
	socklen_t len = sizeof a;
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	return ntohs(a.sin_port);
}

static void test_port_holder(void **state)
{
	(void)state;
	int fd = tcp_socket(0, 1);
	int port = port_of(fd);
	assert_true(port > 0);
	pid_t holder = -1;
	int rc = proc_port_holder(port, &holder);
	close(fd);
	assert_int_equal(rc, 0);
	assert_int_equal(holder, getpid());
}

static void test_port_holder_nobody(void **state)
{
	(void)state;
	/* A port this process has bound but does not listen on: nobody else
	 * can listen on 127.0.0.1 there, and a bound socket is not a listener. */
	int fd = tcp_socket(0, 0);
	int port = port_of(fd);
	pid_t holder = 12345;
	int rc = proc_port_holder(port, &holder);
	/* Listening on it now is found; closing it, not any more. */
	assert_int_equal(listen(fd, 4), 0);
	pid_t holder2 = -1;
	int rc2 = proc_port_holder(port, &holder2);
	close(fd);
	pid_t holder3 = -1;
	int rc3 = proc_port_holder(port, &holder3);
	assert_int_equal(rc, -ENOENT);
	assert_int_equal(rc2, 0);
	assert_int_equal(holder2, getpid());
	assert_int_equal(rc3, -ENOENT);
}

static void test_port_holder_ipv6(void **state)
{
	(void)state;
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		fail_msg("this test needs IPv6, which this machine lacks: socket: %s",
			 strerror(errno));
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
		int e = errno;
		close(fd);
		fail_msg("this test needs the IPv6 loopback [::1], which this machine refuses: "
			 "%s", strerror(e));
	}
	assert_int_equal(listen(fd, 4), 0);
	socklen_t len = sizeof a;
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	pid_t holder = -1;
	int rc = proc_port_holder(ntohs(a.sin6_port), &holder);
	close(fd);
	assert_int_equal(rc, 0);
	assert_int_equal(holder, getpid());
}

static void test_listen_info(void **state)
{
	(void)state;
	int fd = tcp_socket(0, 0);
	int port = port_of(fd);
	proc_listen_info li = { 0 };
	/* Bound is not listening. */
	int rc0 = proc_listen_info_get(port, &li);
	assert_int_equal(listen(fd, 7), 0);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	memset(&li, 0xA5, sizeof li);
	int rc1 = proc_listen_info_get(port, &li);
	proc_listen_info li1 = li;

	/* A connection not accepted yet waits in the accept queue. */
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(c >= 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int crc = connect(c, (struct sockaddr *)&a, sizeof a);
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int prc = poll(&pfd, 1, 10000); /* readable: the connection is queued */
	int rc2 = proc_listen_info_get(port, &li);
	close(c);
	close(fd);
	assert_int_equal(rc0, -ENOENT);
	assert_int_equal(rc1, 0);
	assert_true(li1.inode == (unsigned long)st.st_ino);
	assert_int_equal(li1.accept_queue, 0);
	assert_int_equal(crc, 0);
	assert_int_equal(prc, 1);
	assert_int_equal(rc2, 0);
	assert_true(li.inode == (unsigned long)st.st_ino);
	assert_int_equal(li.accept_queue, 1);
}

static void test_listen_info_accept_queue(void **state)
{
	(void)state;
	/* Two connections the listener has not accepted wait in its queue. */
	int fd = tcp_socket(0, 0);
	assert_int_equal(listen(fd, 7), 0);
	int port = port_of(fd);
	int c[2];
	for (int i = 0; i < 2; i++) {
		c[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		assert_int_equal(connect(c[i], (struct sockaddr *)&sin, sizeof sin), 0);
	}
	proc_listen_info li = { 0 };
	int rc = proc_listen_info_get(port, &li);
	for (int i = 0; i < 2; i++)
		close(c[i]);
	close(fd);
	assert_int_equal(rc, 0);
	assert_int_equal(li.accept_queue, 2);
}

static void test_listen_overflows(void **state)
{
	(void)state;
	uint64_t a = UINT64_MAX;
	assert_int_equal(proc_listen_overflows(&a), 0);
	assert_true(a != UINT64_MAX);
}

static void test_socket_holders(void **state)
{
	(void)state;
	int fd = tcp_socket(0, 1);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	unsigned long ino = (unsigned long)st.st_ino;
	pid_t pids[4] = { 0 };
	assert_int_equal(proc_socket_holders(ino, pids, 4), 1);
	assert_int_equal(pids[0], getpid());

	/* A child that inherits the socket holds it too; lowest pid first. */
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		char c;
		close(p[1]);
		ssize_t r = read(p[0], &c, 1); /* until the parent closes p[1] */
		_exit(r < 0);
	}
	close(p[0]);
	memset(pids, 0, sizeof pids);
	size_t n = proc_socket_holders(ino, pids, 4);
	pid_t first = 0;
	size_t n1 = proc_socket_holders(ino, &first, 1);
	close(p[1]);
	int status;
	assert_int_equal(waitpid(child, &status, 0), child);
	close(fd);
	assert_int_equal(n, 2);
	pid_t lo = child < getpid() ? child : getpid(), hi = child < getpid() ? getpid() : child;
	assert_int_equal(pids[0], lo);
	assert_int_equal(pids[1], hi);
	assert_int_equal(n1, 1);
	assert_int_equal(first, lo);

	/* Once closed, nobody holds it. */
	assert_int_equal(proc_socket_holders(ino, pids, 4), 0);
}

int main(int argc, char **argv)
{
	g_argc = argc;
	g_argv = argv;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rss),
		cmocka_unit_test(test_open_fds),
		cmocka_unit_test(test_open_fds_own_pid),
		cmocka_unit_test(test_max_fds),
		cmocka_unit_test(test_cmdline),
		cmocka_unit_test(test_cmdline_of_child),
		cmocka_unit_test(test_stat_self),
		cmocka_unit_test(test_stat_zombie_child),
		cmocka_unit_test(test_port_holder),
		cmocka_unit_test(test_port_holder_nobody),
		cmocka_unit_test(test_port_holder_ipv6),
		cmocka_unit_test(test_listen_info),
		cmocka_unit_test(test_listen_info_accept_queue),
		cmocka_unit_test(test_listen_overflows),
		cmocka_unit_test(test_socket_holders),
	};
	return cmocka_run_group_tests_name("proc", tests, NULL, NULL);
}
