/* The copy of a task's worktree that a test job runs in (docs/
 * coding_agent.md "The tests' copy"). The job's user may write the copy
 * as it likes (build outputs, caches); the kernel never runs git on it
 * and never reads it back: the task's diff comes from the worktree, which
 * stays the kernel's and which no job can write. Blocking: the worker pool
 * only. */
#ifndef GRACE_CODING_AGENT_SCRATCH_H
#define GRACE_CODING_AGENT_SCRATCH_H

#include "kernels/layer.h"

#include "sdk/err.h"

#include <stdbool.h>
#include <sys/types.h>

#define CA_SCRATCH_DIR ".runs" /* WORKTREE_ROOT/.runs/TASK: no task id starts with '.' */
#define CA_SCRATCH_ENTRIES_MAX 200000 /* files, directories and links copied */
#define CA_SCRATCH_DEPTH_MAX 64

/* The jobs user to hand the copy to: when this process is root and
 * `jobs_user` is set (the executor then runs jobs as that user), its uid
 * and gid and true; false otherwise (jobs run as this process's user,
 * which owns the copy already). SDK_ENOTFOUND when the user does not
 * exist. */
int ca_scratch_owner(const char *jobs_user, uid_t *uid, gid_t *gid, bool *handover,
		     sdk_err *err);

/* Copies the tree at `src` into `dst` (made here; it must not exist):
 * regular files (content and permission bits, no set-id bits),
 * directories, symbolic links as links (never followed); `src`'s own
 * top-level `.git` is left out, other kinds of files are skipped. With
 * `handover`, every entry made is given to uid:gid. At most
 * CA_SCRATCH_ENTRIES_MAX entries, CA_SCRATCH_DEPTH_MAX deep. A failure
 * leaves a partial copy for ca_scratch_remove. */
int ca_scratch_copy(const char *src, const char *dst, bool handover, uid_t uid, gid_t gid,
		    sdk_err *err);

/* Removes the tree at `path` (absent: 0), never following a symbolic
 * link and making directories the job locked (mode 000) removable first:
 * what a job left there may be anything. */
int ca_scratch_remove(const char *path, sdk_err *err);

#endif
