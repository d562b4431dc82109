#include "sdk/token.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

int sdk_token_path(const grace_config *cfg, char *buf, size_t len)
{
	const char *env = getenv("GRACE_INTERNAL_TOKEN_FILE");
	int n = env && *env ? snprintf(buf, len, "%s", env)
			    : snprintf(buf, len, "%s/%s", cfg->data_dir, SDK_TOKEN_FILE);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int sdk_token_load(const grace_config *cfg, char *out)
{
	char path[PATH_MAX];
	if (sdk_token_path(cfg, path, sizeof path) < 0)
		return -ENAMETOOLONG;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0 || (st.st_mode & 077)) {
		close(fd);
		return -EPERM; /* a token others can read protects nothing */
	}
	ssize_t n = read(fd, out, SDK_TOKEN_LEN);
	close(fd);
	if (n != SDK_TOKEN_LEN)
		return -EINVAL;
	out[SDK_TOKEN_LEN] = '\0';
	for (int i = 0; i < SDK_TOKEN_LEN; i++)
		if (!((out[i] >= '0' && out[i] <= '9') || (out[i] >= 'a' && out[i] <= 'f')))
			return -EINVAL;
	return 0;
}

int sdk_token_create(const grace_config *cfg, char *out)
{
	unsigned char raw[SDK_TOKEN_LEN / 2];
	if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
		return -EIO;
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < sizeof raw; i++) {
		out[2 * i] = hex[raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 15];
	}
	out[SDK_TOKEN_LEN] = '\0';
	char path[PATH_MAX], tmp[PATH_MAX + 8];
	if (sdk_token_path(cfg, path, sizeof path) < 0 ||
	    snprintf(tmp, sizeof tmp, "%s.new", path) >= (int)sizeof tmp)
		return -ENAMETOOLONG;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	fchmod(fd, 0600);
	ssize_t w = write(fd, out, SDK_TOKEN_LEN);
	int e = errno;
	if (w != SDK_TOKEN_LEN || fsync(fd) < 0) {
		close(fd);
		unlink(tmp);
		return w < 0 ? -e : -EIO;
	}
	close(fd);
	if (rename(tmp, path) < 0) {
		e = errno;
		unlink(tmp);
		return -e;
	}
	return 0;
}
