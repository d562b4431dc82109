/* The tests' copy of a worktree (scratch.h). Everything is done relative
 * to directory descriptors opened with O_NOFOLLOW, so a link in either
 * tree is never followed. */
#include "kernels/coding_agent/scratch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int ca_scratch_owner(const char *jobs_user, uid_t *uid, gid_t *gid, bool *handover,
		     sdk_err *err)
{
	*handover = false;
	if (geteuid() != 0 || !jobs_user || !jobs_user[0])
		return 0;
	struct passwd pw, *res = NULL;
	char buf[4096];
	int rc = getpwnam_r(jobs_user, &pw, buf, sizeof buf, &res);
	if (rc || !res)
		return sdk_fail(err, SDK_ENOTFOUND,
				"the executor's jobs user %.32s does not exist: no test can run as it",
				jobs_user);
	if (pw.pw_uid == 0)
		return sdk_fail(err, SDK_EINVAL, "the executor's jobs user %.32s is root", jobs_user);
	*uid = pw.pw_uid;
	*gid = pw.pw_gid;
	*handover = true;
	return 0;
}

struct copy {
	bool handover;
	uid_t uid;
	gid_t gid;
	size_t entries;
	sdk_err *err;
};

static int fail_errno(struct copy *c, const char *what, const char *name)
{
	return sdk_fail(c->err, SDK_EIO, "copying the worktree for the tests: %s %.200s: %s", what,
			name, strerror(errno));
}

static int copy_file(struct copy *c, int sfd, int dfd, const char *name, mode_t mode)
{
	int in = openat(sfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (in < 0)
		return fail_errno(c, "reading", name);
	int out = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (out < 0) {
		close(in);
		return fail_errno(c, "making", name);
	}
	char buf[65536];
	int rc = 0;
	for (;;) {
		ssize_t n = read(in, buf, sizeof buf);
		if (n == 0)
			break;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = fail_errno(c, "reading", name);
			break;
		}
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(out, buf + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				rc = fail_errno(c, "writing", name);
				break;
			}
			off += w;
		}
		if (rc)
			break;
	}
	if (!rc && (fchmod(out, mode & 0777) < 0 ||
		    (c->handover && fchown(out, c->uid, c->gid) < 0)))
		rc = fail_errno(c, "handing over", name);
	close(in);
	if (close(out) < 0 && !rc)
		rc = fail_errno(c, "writing", name);
	return rc;
}

static int copy_dir(struct copy *c, int sfd, int dfd, int depth)
{
	if (depth > CA_SCRATCH_DEPTH_MAX)
		return sdk_fail(c->err, SDK_EINVAL,
				"copying the worktree for the tests: deeper than %d directories",
				CA_SCRATCH_DEPTH_MAX);
	int lfd = dup(sfd);
	DIR *d = lfd >= 0 ? fdopendir(lfd) : NULL;
	if (!d) {
		if (lfd >= 0)
			close(lfd);
		return fail_errno(c, "listing", "a directory");
	}
	int rc = 0;
	struct dirent *e;
	while (!rc && (e = readdir(d))) {
		const char *name = e->d_name;
		if (!strcmp(name, ".") || !strcmp(name, "..") || (depth == 0 && !strcmp(name, ".git")))
			continue;
		if (++c->entries > CA_SCRATCH_ENTRIES_MAX) {
			rc = sdk_fail(c->err, SDK_EINVAL,
				      "copying the worktree for the tests: more than %d entries",
				      CA_SCRATCH_ENTRIES_MAX);
			break;
		}
		struct stat st;
		if (fstatat(sfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			rc = fail_errno(c, "reading", name);
			break;
		}
		if (S_ISREG(st.st_mode)) {
			rc = copy_file(c, sfd, dfd, name, st.st_mode);
		} else if (S_ISLNK(st.st_mode)) {
			char target[PATH_MAX];
			ssize_t n = readlinkat(sfd, name, target, sizeof target - 1);
			if (n < 0)
				rc = fail_errno(c, "reading the link", name);
			else {
				target[n] = 0;
				if (symlinkat(target, dfd, name) < 0 ||
				    (c->handover &&
				     fchownat(dfd, name, c->uid, c->gid, AT_SYMLINK_NOFOLLOW) < 0))
					rc = fail_errno(c, "making the link", name);
			}
		} else if (S_ISDIR(st.st_mode)) {
			if (mkdirat(dfd, name, 0700) < 0) {
				rc = fail_errno(c, "making", name);
				break;
			}
			int s2 = openat(sfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			int d2 = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (s2 < 0 || d2 < 0)
				rc = fail_errno(c, "opening", name);
			else
				rc = copy_dir(c, s2, d2, depth + 1);
			if (!rc && (fchmod(d2, (st.st_mode & 0777) | 0700) < 0 ||
				    (c->handover && fchown(d2, c->uid, c->gid) < 0)))
				rc = fail_errno(c, "handing over", name);
			if (s2 >= 0)
				close(s2);
			if (d2 >= 0)
				close(d2);
		}
		/* Sockets, fifos, devices: nothing a test needs from a checkout. */
	}
	closedir(d);
	return rc;
}

int ca_scratch_copy(const char *src, const char *dst, bool handover, uid_t uid, gid_t gid,
		    sdk_err *err)
{
	struct copy c = { .handover = handover, .uid = uid, .gid = gid, .err = err };
	int sfd = open(src, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sfd < 0)
		return fail_errno(&c, "opening", src);
	if (mkdir(dst, 0700) < 0) {
		close(sfd);
		return fail_errno(&c, "making", dst);
	}
	int dfd = open(dst, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int rc = dfd < 0 ? fail_errno(&c, "opening", dst) : copy_dir(&c, sfd, dfd, 0);
	/* The top last: its owner may write it only once it is complete. */
	if (!rc && (fchmod(dfd, 0755) < 0 || (handover && fchown(dfd, uid, gid) < 0)))
		rc = fail_errno(&c, "handing over", dst);
	if (dfd >= 0)
		close(dfd);
	close(sfd);
	return rc;
}

static int remove_at(int dfd, const char *name, int depth, sdk_err *err)
{
	struct stat st;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0
				       : sdk_fail(err, SDK_EIO, "removing %.200s: %s", name,
						  strerror(errno));
	if (S_ISDIR(st.st_mode)) {
		if (depth > 4 * CA_SCRATCH_DEPTH_MAX)
			return sdk_fail(err, SDK_EIO, "removing the tests' copy: too deep");
		int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 && errno == EACCES) {
			/* Locked by the job (same user, no root): open it up; the
			 * fstatat above said it is a directory, not a link. */
			fchmodat(dfd, name, 0700, 0);
			fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		}
		if (fd < 0)
			return sdk_fail(err, SDK_EIO, "removing %.200s: %s", name, strerror(errno));
		fchmod(fd, 0700); /* its entries may be unlinked */
		int lfd = dup(fd);
		DIR *d = lfd >= 0 ? fdopendir(lfd) : NULL;
		if (!d && lfd >= 0)
			close(lfd);
		int rc = d ? 0 : sdk_fail(err, SDK_EIO, "removing %.200s: cannot list it", name);
		struct dirent *e;
		while (!rc && d && (e = readdir(d)))
			if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
				rc = remove_at(fd, e->d_name, depth + 1, err);
		if (d)
			closedir(d);
		close(fd);
		if (rc)
			return rc;
		if (unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
			return sdk_fail(err, SDK_EIO, "removing %.200s: %s", name, strerror(errno));
		return 0;
	}
	if (unlinkat(dfd, name, 0) < 0 && errno != ENOENT)
		return sdk_fail(err, SDK_EIO, "removing %.200s: %s", name, strerror(errno));
	return 0;
}

int ca_scratch_remove(const char *path, sdk_err *err)
{
	char parent[PATH_MAX];
	const char *slash = strrchr(path, '/');
	if (!slash || !slash[1] || (size_t)(slash - path) >= sizeof parent)
		return sdk_fail(err, SDK_EINVAL, "removing the tests' copy: %.200s is no path", path);
	size_t n = (size_t)(slash - path);
	memcpy(parent, path, n);
	parent[n ? n : 1] = 0;
	if (!n)
		parent[0] = '/';
	int dfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return errno == ENOENT ? 0
				       : sdk_fail(err, SDK_EIO, "removing %.200s: %s", path,
						  strerror(errno));
	int rc = remove_at(dfd, slash + 1, 0, err);
	close(dfd);
	return rc;
}
