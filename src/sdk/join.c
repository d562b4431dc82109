#include "sdk/join.h"

#include "sdk/log.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int sdk_join_credential(char *out)
{
	const char *dir = getenv("CREDENTIALS_DIRECTORY");
	char path[PATH_MAX], buf[SDK_JOIN_HEX + 4];
	out[0] = '\0';
	if (!dir || !*dir || snprintf(path, sizeof path, "%s/join", dir) >= (int)sizeof path)
		return -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n > 0 ? n : 0] = '\0';
	int rc = -1;
	if (n == SDK_JOIN_HEX && strspn(buf, "0123456789abcdef") == SDK_JOIN_HEX) {
		memcpy(out, buf, SDK_JOIN_HEX + 1);
		rc = 0;
	} else if (n >= 0) {
		sdk_warn("%s: not a join credential (64 lower-case hex digits): not attesting", path);
	}
	explicit_bzero(buf, sizeof buf);
	return rc;
}
