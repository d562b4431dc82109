#include "kernels/coding_agent/paths.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

bool ca_path_under(const char *root, const char *path)
{
	size_t n = strlen(root);
	if (n == 1 && root[0] == '/')
		return path[0] == '/';
	return !strncmp(root, path, n) && (path[n] == '\0' || path[n] == '/');
}

bool ca_path_has_dotdot(const char *rel)
{
	if (!*rel || *rel == '/')
		return true;
	for (const char *p = rel; *p;) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return true;
		p += n + (e ? 1 : 0);
		if (e && !*p)
			return true; /* a trailing slash */
	}
	return false;
}

int ca_path_repo(const char *root, const char *repo, char out[PATH_MAX], sdk_err *err)
{
	char joined[PATH_MAX];
	if (!*repo || strlen(repo) >= PATH_MAX / 2)
		return sdk_fail(err, SDK_EINVAL, "repo: empty or too long");
	if (strstr(repo, "/../") || !strncmp(repo, "../", 3) || !strcmp(repo, "..") ||
	    (strlen(repo) >= 3 && !strcmp(repo + strlen(repo) - 3, "/..")))
		return sdk_fail(err, SDK_EDENIED, "repo: \"..\" is not allowed in a path");
	if (repo[0] == '/')
		snprintf(joined, sizeof joined, "%s", repo);
	else if (snprintf(joined, sizeof joined, "%s/%s", root, repo) >= (int)sizeof joined)
		return sdk_fail(err, SDK_EINVAL, "repo: too long");
	if (repo[0] == '/' && !ca_path_under(root, repo))
		return sdk_fail(err, SDK_EDENIED, "repo: %.200s is outside the workspace root", repo);
	if (!realpath(joined, out))
		return sdk_fail(err, SDK_ENOTFOUND, "repo: %.200s: %s", repo, strerror(errno));
	if (!ca_path_under(root, out))
		return sdk_fail(err, SDK_EDENIED,
				"repo: %.200s resolves outside the workspace root (a symlink out)", repo);
	struct stat st;
	if (stat(out, &st) < 0 || !S_ISDIR(st.st_mode))
		return sdk_fail(err, SDK_EINVAL, "repo: %.200s is not a directory", repo);
	return 0;
}

int ca_path_edit(const char *wt, const char *rel, char out[PATH_MAX], bool *exists, sdk_err *err)
{
	*exists = false;
	if (ca_path_has_dotdot(rel))
		return sdk_fail(err, SDK_EDENIED,
				"%.200s: a file of an edit is a relative path without \"..\"", rel);
	if (!strcmp(rel, ".git") || !strncmp(rel, ".git/", 5) || strstr(rel, "/.git/"))
		return sdk_fail(err, SDK_EDENIED, "%.200s: an edit never touches .git", rel);
	if (snprintf(out, PATH_MAX, "%s/%s", wt, rel) >= PATH_MAX)
		return sdk_fail(err, SDK_EINVAL, "%.200s: too long", rel);
	struct stat st;
	if (lstat(out, &st) == 0) {
		if (!S_ISREG(st.st_mode))
			return sdk_fail(err, SDK_EDENIED, "%.200s: not a regular file (%s)", rel,
					S_ISLNK(st.st_mode) ? "a symlink" : "a directory or device");
		*exists = true;
	} else if (errno != ENOENT) {
		return sdk_fail(err, SDK_EIO, "%.200s: %s", rel, strerror(errno));
	}
	/* The deepest directory that exists must resolve inside the worktree. */
	char dir[PATH_MAX], real[PATH_MAX];
	snprintf(dir, sizeof dir, "%s", out);
	for (;;) {
		char *slash = strrchr(dir, '/');
		if (!slash || slash == dir)
			return sdk_fail(err, SDK_EDENIED, "%.200s: outside the worktree", rel);
		*slash = '\0';
		if (realpath(dir, real))
			break;
		if (errno != ENOENT)
			return sdk_fail(err, SDK_EIO, "%.200s: %s", rel, strerror(errno));
	}
	if (!ca_path_under(wt, real))
		return sdk_fail(err, SDK_EDENIED, "%.200s: resolves outside the worktree (a symlink out)",
				rel);
	return 0;
}
