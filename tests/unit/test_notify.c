/* Unit tests for the systemd notification protocol (src/sdk/notify.c): the
 * test binds the notification socket itself and reads what was sent. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sdk/notify.h"

static const char *const env_names[] = { "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID" };
#define N_ENV (sizeof env_names / sizeof env_names[0])
static char *saved_env[N_ENV];

static int group_setup(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_ENV; i++) {
		const char *v = getenv(env_names[i]);
		saved_env[i] = v ? strdup(v) : NULL;
		unsetenv(env_names[i]);
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_ENV; i++) {
		if (saved_env[i])
			setenv(env_names[i], saved_env[i], 1);
		else
			unsetenv(env_names[i]);
		free(saved_env[i]);
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_ENV; i++)
		unsetenv(env_names[i]);
	return 0;
}

static void test_addr_path(void **state)
{
	(void)state;
	struct sockaddr_un sun;
	memset(&sun, 0x5A, sizeof sun);
	int len = sdk_notify_addr("/run/grace/notify", &sun);
	/* A path address counts its terminating NUL. */
	assert_int_equal(len, (int)(offsetof(struct sockaddr_un, sun_path) + 17 + 1));
	assert_int_equal(sun.sun_family, AF_UNIX);
	assert_string_equal(sun.sun_path, "/run/grace/notify");

	/* The longest path that fits, with its NUL. */
	char longest[sizeof sun.sun_path];
	memset(longest, 'p', sizeof longest - 1);
	longest[0] = '/';
	longest[sizeof longest - 1] = '\0';
	len = sdk_notify_addr(longest, &sun);
	assert_int_equal(len, (int)sizeof(struct sockaddr_un));
	assert_memory_equal(sun.sun_path, longest, sizeof longest);
}

static void test_addr_abstract(void **state)
{
	(void)state;
	struct sockaddr_un sun;
	memset(&sun, 0x5A, sizeof sun);
	int len = sdk_notify_addr("@grace/notify", &sun);
	/* An abstract address is a NUL then the name, and no terminator. */
	assert_int_equal(len, (int)(offsetof(struct sockaddr_un, sun_path) + 13));
	assert_int_equal(sun.sun_family, AF_UNIX);
	assert_int_equal(sun.sun_path[0], '\0');
	assert_memory_equal(sun.sun_path + 1, "grace/notify", 12);

	/* A long abstract name: '@' and 106 bytes. */
	char name[sizeof sun.sun_path + 2];
	memset(name, 'a', sizeof name - 1);
	name[0] = '@';
	name[sizeof sun.sun_path - 1] = '\0';
	assert_int_equal(sdk_notify_addr(name, &sun),
			 (int)(offsetof(struct sockaddr_un, sun_path) + sizeof sun.sun_path - 1));
	assert_int_equal(sun.sun_path[0], '\0');
	assert_int_equal(sun.sun_path[sizeof sun.sun_path - 2], 'a');
	/* A name longer than sun_path can hold. */
	name[sizeof sun.sun_path - 1] = 'a';
	name[sizeof name - 1] = '\0';
	assert_int_equal(sdk_notify_addr(name, &sun), -1);
}

static void test_addr_invalid(void **state)
{
	(void)state;
	struct sockaddr_un sun;
	static const char *const bad[] = { "", "/", "@", "relative/path", "notify", "x" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (sdk_notify_addr(bad[i], &sun) != -1)
			fail_msg("'%s' accepted", bad[i]);
	/* A path too long for sun_path (with its NUL). */
	char toolong[sizeof sun.sun_path + 1];
	memset(toolong, 'p', sizeof toolong - 1);
	toolong[0] = '/';
	toolong[sizeof toolong - 1] = '\0';
	assert_int_equal(sdk_notify_addr(toolong, &sun), -1);
}

/* Binds a datagram socket to the abstract name "@grace-unit-notify-PID-tag"
 * (built by hand, not with sdk_notify_addr) and sets NOTIFY_SOCKET to it. */
static int bind_abstract(const char *tag)
{
	char name[96];
	snprintf(name, sizeof name, "@grace-unit-notify-%d-%s", (int)getpid(), tag);
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t n = strlen(name);
	memcpy(sun.sun_path + 1, name + 1, n - 1);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun,
			      (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)),
			 0);
	assert_int_equal(setenv("NOTIFY_SOCKET", name, 1), 0);
	return fd;
}

static void expect_datagram(int fd, const char *want)
{
	char buf[512];
	ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
	if (n < 0)
		fail_msg("no datagram: %s", strerror(errno));
	assert_int_equal(n, (ssize_t)strlen(want));
	assert_memory_equal(buf, want, (size_t)n);
}

static void test_notify_abstract(void **state)
{
	(void)state;
	int fd = bind_abstract("a");
	assert_int_equal(sdk_notify("READY=1"), 0);
	assert_int_equal(sdk_notify("STATUS=serving 3 routes\nWATCHDOG=1"), 0);
	expect_datagram(fd, "READY=1");
	expect_datagram(fd, "STATUS=serving 3 routes\nWATCHDOG=1");
	/* Exactly one datagram per call. */
	char c;
	assert_int_equal(recv(fd, &c, 1, MSG_DONTWAIT), -1);
	assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
	close(fd);
}

static void test_notify_path(void **state)
{
	(void)state;
	char dir[] = "/tmp/grace-notify-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[128];
	snprintf(path, sizeof path, "%s/notify", dir);
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	memcpy(sun.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	int brc = bind(fd, (struct sockaddr *)&sun, sizeof sun);
	setenv("NOTIFY_SOCKET", path, 1);
	int rc = brc == 0 ? sdk_notify("STOPPING=1") : -1;
	char buf[64];
	ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
	close(fd);
	unlink(path);
	rmdir(dir);
	assert_int_equal(brc, 0);
	assert_int_equal(rc, 0);
	assert_int_equal(n, 10);
	assert_memory_equal(buf, "STOPPING=1", 10);
}

static void test_notify_unset(void **state)
{
	(void)state;
	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(sdk_notify("READY=1"), 0);
	setenv("NOTIFY_SOCKET", "", 1);
	assert_int_equal(sdk_notify("READY=1"), 0);
}

static void test_notify_errors(void **state)
{
	(void)state;
	setenv("NOTIFY_SOCKET", "not-a-socket-address", 1);
	assert_int_equal(sdk_notify("READY=1"), -EINVAL);
	/* Nobody listening there. */
	char name[96];
	snprintf(name, sizeof name, "@grace-unit-notify-%d-nobody", (int)getpid());
	setenv("NOTIFY_SOCKET", name, 1);
	assert_int_equal(sdk_notify("READY=1"), -ECONNREFUSED);
	setenv("NOTIFY_SOCKET", "/nonexistent-dir/grace/notify", 1);
	assert_int_equal(sdk_notify("READY=1"), -ENOENT);
}

static void test_watchdog_usec(void **state)
{
	(void)state;
	char pid[32];
	snprintf(pid, sizeof pid, "%d", (int)getpid());

	assert_int_equal(sdk_watchdog_usec(), 0);
	setenv("WATCHDOG_USEC", "3000000", 1);
	assert_int_equal(sdk_watchdog_usec(), 3000000);
	setenv("WATCHDOG_USEC", "18446744073709551615", 1);
	assert_true(sdk_watchdog_usec() == UINT64_MAX);

	/* WATCHDOG_PID, when set, must name this process. */
	setenv("WATCHDOG_USEC", "500000", 1);
	setenv("WATCHDOG_PID", pid, 1);
	assert_int_equal(sdk_watchdog_usec(), 500000);
	char other[32];
	snprintf(other, sizeof other, "%d", (int)getpid() + 1);
	setenv("WATCHDOG_PID", other, 1);
	assert_int_equal(sdk_watchdog_usec(), 0);
	setenv("WATCHDOG_PID", "1", 1);
	assert_int_equal(sdk_watchdog_usec(), 0);
	/* An empty WATCHDOG_PID (as the supervisor passes) counts as unset. */
	setenv("WATCHDOG_PID", "", 1);
	assert_int_equal(sdk_watchdog_usec(), 500000);
	unsetenv("WATCHDOG_PID");

	/* Malformed or zero intervals mean none. */
	static const char *const bad[] = { "", "0", "abc", "12abc", "1.5",
					   "99999999999999999999999" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		setenv("WATCHDOG_USEC", bad[i], 1);
		if (sdk_watchdog_usec() != 0)
			fail_msg("WATCHDOG_USEC='%s' gave %llu", bad[i],
				 (unsigned long long)sdk_watchdog_usec());
	}
	/* A good interval for another process is still none. */
	setenv("WATCHDOG_USEC", "1000", 1);
	setenv("WATCHDOG_PID", other, 1);
	assert_int_equal(sdk_watchdog_usec(), 0);
}

static void test_watchdog_usec_negative(void **state)
{
	(void)state;
	/* A negative interval is malformed too, not a huge one. */
	static const char *const bad[] = { "-5", "-1", "-3000000" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		setenv("WATCHDOG_USEC", bad[i], 1);
		if (sdk_watchdog_usec() != 0)
			fail_msg("WATCHDOG_USEC='%s' gave %llu", bad[i],
				 (unsigned long long)sdk_watchdog_usec());
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_teardown(fn, teardown)
		T(test_addr_path),
		T(test_addr_abstract),
		T(test_addr_invalid),
		T(test_notify_abstract),
		T(test_notify_path),
		T(test_notify_unset),
		T(test_notify_errors),
		T(test_watchdog_usec),
		T(test_watchdog_usec_negative),
#undef T
	};
	return cmocka_run_group_tests_name("notify", tests, group_setup, group_teardown);
}
