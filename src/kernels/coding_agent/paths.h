/* Path confinement: every repository a task names, and every file an edit
 * touches, must resolve (after realpath: symlinks followed) inside its
 * root. `..` components, absolute paths elsewhere and symlinks out are
 * refused before anything is read or run. */
#ifndef GRACE_CODING_AGENT_PATHS_H
#define GRACE_CODING_AGENT_PATHS_H

#include "kernels/layer.h"

#include "sdk/err.h"

#include <limits.h>
#include <stdbool.h>

/* Whether `path` (resolved) is `root` or below it; both absolute, no
 * trailing slash but for "/". Pure. */
bool ca_path_under(const char *root, const char *path);

/* Whether `rel` has a "..", an empty or a "." component, or starts with
 * '/'. Pure. */
bool ca_path_has_dotdot(const char *rel);

/* The repository `repo` (relative to `root`, or absolute inside it),
 * resolved into `out`: a directory inside `root` (already resolved).
 * SDK_EINVAL / SDK_EDENIED / SDK_ENOTFOUND with the reason. */
int ca_path_repo(const char *root, const char *repo, char out[PATH_MAX], sdk_err *err);

/* The file `rel` of an edit inside worktree `wt` (resolved): relative, no
 * "..", nothing under .git, not a symlink, its deepest existing directory
 * inside `wt`. *exists says whether the file is there (a regular file). */
int ca_path_edit(const char *wt, const char *rel, char out[PATH_MAX], bool *exists, sdk_err *err);

#endif
