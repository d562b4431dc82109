#include "sdk/notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int sdk_notify_addr(const char *path, struct sockaddr_un *sun)
{
	size_t len = strlen(path);
	if (len < 2 || len >= sizeof sun->sun_path || (path[0] != '/' && path[0] != '@'))
		return -1;
	memset(sun, 0, sizeof *sun);
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, path, len);
	if (path[0] == '@')
		sun->sun_path[0] = '\0';
	return (int)(offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '/'));
}

/* The socket is opened by the first notification (READY=1, at start, when
 * descriptors are plentiful) and kept: a process out of descriptors must
 * still be able to say WATCHDOG=1, or its supervisor kills it for a hang
 * it does not have. Process-wide, like the log's settings; the address is
 * read again each time, so a changed NOTIFY_SOCKET is followed. */
static int notify_fd = -1;

int sdk_notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	if (!path || !*path)
		return 0;
	struct sockaddr_un sun;
	int alen = sdk_notify_addr(path, &sun);
	if (alen < 0)
		return -EINVAL;
	if (notify_fd < 0 && (notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return -errno;
	if (sendto(notify_fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sun,
		   (socklen_t)alen) < 0)
		return -errno;
	return 0;
}

uint64_t sdk_watchdog_usec(void)
{
	const char *pid = getenv("WATCHDOG_PID");
	if (pid && *pid && strtol(pid, NULL, 10) != (long)getpid())
		return 0;
	const char *usec = getenv("WATCHDOG_USEC");
	if (!usec || *usec < '0' || *usec > '9')
		return 0;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(usec, &end, 10);
	if (errno || *end || v == 0)
		return 0;
	return v;
}
