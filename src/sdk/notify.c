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

int sdk_notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	if (!path || !*path)
		return 0;
	struct sockaddr_un sun;
	int alen = sdk_notify_addr(path, &sun);
	if (alen < 0)
		return -EINVAL;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int rc = 0;
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sun,
		   (socklen_t)alen) < 0)
		rc = -errno;
	close(fd);
	return rc;
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
