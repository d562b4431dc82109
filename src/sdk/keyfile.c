/* Secret files with mode 0600 (see keyfile.h). */
#include "sdk/keyfile.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int keyfile_fail(sdk_err *err, const char *path, const char *why)
{
	return sdk_fail(err, SDK_EIO, "%s: %s", path, why);
}

/* A failed system call: a full disk is SDK_EFULL, as everywhere. */
static int keyfile_fail_errno(sdk_err *err, const char *path, int e)
{
	return sdk_fail(err, e == ENOSPC || e == EDQUOT ? SDK_EFULL : SDK_EIO, "%s: %s", path,
			strerror(e));
}

static int keyfile_read_all(int fd, unsigned char *out, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = read(fd, out + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

static int keyfile_check(int fd, const char *path, size_t len, sdk_err *err)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return keyfile_fail_errno(err, path, errno);
	if (!S_ISREG(st.st_mode))
		return keyfile_fail(err, path, "not a regular file");
	if (st.st_uid != geteuid())
		return keyfile_fail(err, path, "owned by another user");
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		char why[96];
		snprintf(why, sizeof why, "mode %04o lets others read or write it; it must be 0600",
			 (unsigned)(st.st_mode & 07777));
		return keyfile_fail(err, path, why);
	}
	if (st.st_size != (off_t)len) {
		char why[96];
		snprintf(why, sizeof why, "holds %lld bytes, not %zu", (long long)st.st_size, len);
		return keyfile_fail(err, path, why);
	}
	return 0;
}

int keyfile_read(const char *path, unsigned char *out, size_t len, sdk_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			return SDK_ENOTFOUND;
		return keyfile_fail_errno(err, path, errno);
	}
	int rc = keyfile_check(fd, path, len, err);
	if (!rc && keyfile_read_all(fd, out, len) < 0)
		rc = keyfile_fail(err, path, "short read");
	close(fd);
	if (rc)
		explicit_bzero(out, len);
	return rc;
}

static int keyfile_write_all(int fd, const unsigned char *data, size_t len)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = write(fd, data + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		done += (size_t)n;
	}
	return 0;
}

/* The new name must survive a power cut too, so the directory is synced. */
static void keyfile_sync_dir(const char *path)
{
	char copy[PATH_MAX];
	snprintf(copy, sizeof copy, "%s", path);
	int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

static int keyfile_write(const char *path, const unsigned char *data, size_t len, int replace,
			 sdk_err *err)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
		return keyfile_fail(err, path, "path too long");
	unlink(tmp); /* left over from a crash between write and link */
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return keyfile_fail_errno(err, tmp, errno);
	int rc = 0;
	/* fchmod, because the umask could have taken bits off but never adds. */
	if (fchmod(fd, 0600) < 0 || keyfile_write_all(fd, data, len) < 0 || fsync(fd) < 0)
		rc = keyfile_fail_errno(err, tmp, errno);
	if (close(fd) < 0 && !rc)
		rc = keyfile_fail_errno(err, tmp, errno);
	/* link(2) fails when `path` exists: an existing secret is never
	 * replaced, unless asked for, and then rename(2) swaps it whole. */
	if (!rc && (replace ? rename(tmp, path) : link(tmp, path)) < 0)
		rc = keyfile_fail_errno(err, path, errno);
	unlink(tmp);
	if (!rc)
		keyfile_sync_dir(path);
	return rc;
}

int keyfile_create(const char *path, const unsigned char *data, size_t len, sdk_err *err)
{
	return keyfile_write(path, data, len, 0, err);
}

int keyfile_replace(const char *path, const unsigned char *data, size_t len, sdk_err *err)
{
	return keyfile_write(path, data, len, 1, err);
}
