#include "sdk/token.h"

#include "sdk/keyfile.h"

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
	int rc = keyfile_read(path, (unsigned char *)out, SDK_TOKEN_LEN, NULL);
	if (rc == SDK_ENOTFOUND)
		return -ENOENT;
	if (rc < 0)
		return -EPERM; /* unreadable, or others may read it: protects nothing */
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
	explicit_bzero(raw, sizeof raw);
	out[SDK_TOKEN_LEN] = '\0';
	return sdk_token_write(cfg, out);
}

int sdk_token_write(const grace_config *cfg, const char *token)
{
	char path[PATH_MAX];
	if (sdk_token_path(cfg, path, sizeof path) < 0)
		return -ENAMETOOLONG;
	return keyfile_replace(path, (const unsigned char *)token, SDK_TOKEN_LEN, NULL) < 0 ? -EIO
											    : 0;
}
