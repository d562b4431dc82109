/* Unit tests for the standby protocol (src/sdk/standby.c) with real
 * processes: a child waits as a standby; the parent hands it a listening
 * socket, or closes the channel, or the child is no standby at all. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sdk/standby.h"

/* Child exit codes. */
#define GOT_SOCKET 10   /* handed over: fd 3 listens on the port we sent */
#define GOT_EOF 11      /* told to leave */
#define NOT_STANDBY 12  /* not a standby: fd 3 untouched */
#define WRONG 13

static int listener(int *port)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(s, 8), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return s;
}

static int port_of(int fd)
{
	struct sockaddr_in a;
	socklen_t len = sizeof a;
	return getsockname(fd, (struct sockaddr *)&a, &len) == 0 ? ntohs(a.sin_port) : -1;
}

/* Forks a child whose fd 3 is one end of a socketpair (our end returned),
 * with GRACE_STANDBY set or not; it reports through its exit code. */
static pid_t child(bool standby, int want_port, int *ours)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(sv[0]);
		if (dup2(sv[1], SDK_STANDBY_FD) < 0)
			_exit(WRONG);
		if (standby)
			setenv(SDK_STANDBY_ENV, "1", 1);
		else
			unsetenv(SDK_STANDBY_ENV);
		int rc = sdk_standby_wait();
		if (getenv(SDK_STANDBY_ENV))
			_exit(WRONG); /* not passed on to what the kernel starts */
		if (rc == 0)
			_exit(GOT_EOF);
		if (rc != 1)
			_exit(WRONG);
		int listening = 0;
		socklen_t len = sizeof listening;
		if (!standby) {
			/* Still the socketpair end: nothing was read from it. */
			int type = 0;
			len = sizeof type;
			getsockopt(SDK_STANDBY_FD, SOL_SOCKET, SO_TYPE, &type, &len);
			_exit(type == SOCK_SEQPACKET ? NOT_STANDBY : WRONG);
		}
		if (getsockopt(SDK_STANDBY_FD, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 ||
		    !listening || port_of(SDK_STANDBY_FD) != want_port)
			_exit(WRONG);
		_exit(GOT_SOCKET);
	}
	close(sv[1]);
	*ours = sv[0];
	return pid;
}

static int exit_code(pid_t pid)
{
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void test_handed_the_socket(void **state)
{
	(void)state;
	int port, ch;
	int s = listener(&port);
	pid_t pid = child(true, port, &ch);
	assert_int_equal(sdk_standby_hand_over(ch, s), 0);
	assert_int_equal(exit_code(pid), GOT_SOCKET);
	/* Still ours too: the supervisor keeps holding the port. */
	assert_int_equal(port_of(s), port);
	close(ch);
	close(s);
}

static void test_end_of_file_means_leave(void **state)
{
	(void)state;
	int ch;
	pid_t pid = child(true, 0, &ch);
	close(ch);
	assert_int_equal(exit_code(pid), GOT_EOF);
}

static void test_not_a_standby(void **state)
{
	(void)state;
	int ch;
	pid_t pid = child(false, 0, &ch);
	assert_int_equal(exit_code(pid), NOT_STANDBY);
	close(ch);
}

static void test_hand_over_to_the_dead(void **state)
{
	(void)state;
	int port, ch;
	int s = listener(&port);
	pid_t pid = child(true, port, &ch);
	kill(pid, SIGKILL);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(sdk_standby_hand_over(ch, s), -EPIPE);
	close(ch);
	close(s);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_handed_the_socket),
		cmocka_unit_test(test_end_of_file_means_leave),
		cmocka_unit_test(test_not_a_standby),
		cmocka_unit_test(test_hand_over_to_the_dead),
	};
	return cmocka_run_group_tests_name("standby", tests, NULL, NULL);
}
