#include "sdk/standby.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HAND_OVER_BYTE 'G'

bool sdk_standby_requested(void)
{
	const char *v = getenv(SDK_STANDBY_ENV);
	return v && !strcmp(v, "1");
}

int sdk_standby_wait(void)
{
	bool standby = sdk_standby_requested();
	unsetenv(SDK_STANDBY_ENV);
	if (!standby)
		return 1;
	/* The first gmtime_r reads /etc/localtime: a fifth of a takeover's CPU
	 * when the first log line after the crash did it. Done here instead. */
	tzset();

	char byte = 0;
	struct iovec iov = { &byte, 1 };
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl,
			     .msg_controllen = sizeof ctl };
	ssize_t n;
	do
		n = recvmsg(SDK_STANDBY_FD, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n == 0)
		return 0;
	if (n < 0)
		return -errno;
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	if (byte != HAND_OVER_BYTE || !c || c->cmsg_level != SOL_SOCKET ||
	    c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int)))
		return -EPROTO;
	int fd;
	memcpy(&fd, CMSG_DATA(c), sizeof fd);
	/* The channel has served: the socket takes its place as fd 3. */
	int rc = dup2(fd, SDK_STANDBY_FD) < 0 ? -errno : 1;
	close(fd);
	return rc;
}

int sdk_standby_hand_over(int channel, int listen_fd)
{
	char byte = HAND_OVER_BYTE;
	struct iovec iov = { &byte, 1 };
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} ctl;
	memset(&ctl, 0, sizeof ctl);
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl,
			     .msg_controllen = sizeof ctl };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &listen_fd, sizeof listen_fd);
	ssize_t n;
	do
		n = sendmsg(channel, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	return n == 1 ? 0 : n < 0 ? -errno : -EIO;
}
