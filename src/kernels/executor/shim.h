/* The shim: one small process per job, forked by the executor, that owns
 * the job's process tree so that nothing escapes it.
 *
 * It starts a session of its own (a kill of the kernel's process group
 * does not reach it), becomes a child subreaper (every process the job
 * orphans, double-forked daemons and setsid() callers included, becomes
 * its child), forks the job into the job's cgroups with its limits, user,
 * seccomp filter and descriptors, and then watches: the job's deadline
 * (SIGTERM to the whole tree, SIGKILL after the grace period), the tree's
 * CPU time, a cancel from the executor, and the executor itself (its end
 * of the control pipe closing means it died: the tree is killed then).
 * When the job's main process ends, whatever it left is killed, every
 * process is reaped, and the shim reports one record and exits.
 *
 * Between fork and exit the shim uses only async-signal-safe calls (the
 * executor has threads): everything it needs is prepared before the fork
 * in exe_launch, and it allocates nothing. */
#ifndef GRACE_EXECUTOR_SHIM_H
#define GRACE_EXECUTOR_SHIM_H

#include "kernels/layer.h"
#include "sdk/err.h"

#include <linux/filter.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#define EXE_RLIMITS_MAX 6
#define EXE_CG_FILES_MAX 3

typedef struct exe_rlimit {
	int resource;
	struct rlimit lim;
} exe_rlimit;

/* Everything the shim and the job need, ready before the fork. Strings
 * and arrays are the caller's and must live until exe_shim_spawn returns. */
typedef struct exe_launch {
	const char *const *argv; /* argv[0] absolute: the job's program, or bwrap */
	const char *const *envp;
	const char *workdir;
	int stdin_fd;      /* the job's stdin (a memfd or /dev/null) */
	int seccomp_memfd; /* bwrap's filter: reopened at fd 3 in the job; -1: none */
	const char *seccomp_reopen; /* "/proc/self/fd/N" of that memfd */
	const struct sock_fprog *seccomp_prog; /* loaded before exec; NULL: none */
	bool drop; /* become uid/gid (and no supplementary groups) before exec */
	uid_t uid;
	gid_t gid;
	bool no_new_privs;
	exe_rlimit rlimits[EXE_RLIMITS_MAX];
	int n_rlimits;
	const char *cg_join[EXE_CG_FILES_MAX + 1];  /* cgroup.procs files the job joins; NULL-ended */
	const char *cg_procs[EXE_CG_FILES_MAX + 1]; /* cgroup.procs files listing the tree */
	const char *cg_kill;     /* cgroup.kill, or NULL */
	const char *cg_cpu_stat; /* cpu.stat of the job's v2 group, or NULL */
	uint64_t cpu_limit_usec; /* the tree's CPU time limit; 0: none */
	uint64_t timeout_ms, kill_grace_ms;
} exe_launch;

/* The executor's handles on a running shim. */
typedef struct exe_shim {
	pid_t pid;
	int status_fd; /* read: exe_shim_msg records (non-blocking, close-on-exec) */
	int ctl_fd;    /* write: EXE_CTL_CANCEL / EXE_CTL_KILL; closing it kills the job */
	int out_fd, err_fd; /* read: the job's stdout and stderr (non-blocking) */
} exe_shim;

#define EXE_CTL_CANCEL 'C' /* SIGTERM the tree, SIGKILL after the grace period */
#define EXE_CTL_KILL 'K'   /* SIGKILL the tree now */

enum exe_msg_type { EXE_MSG_STARTED = 1, EXE_MSG_EXEC_FAILED = 2, EXE_MSG_EXITED = 3 };

/* Where the job's child failed before exec. */
enum exe_stage {
	EXE_STAGE_CGROUP = 1, EXE_STAGE_RLIMIT, EXE_STAGE_FDS, EXE_STAGE_CHDIR, EXE_STAGE_USER,
	EXE_STAGE_SECCOMP, EXE_STAGE_EXEC, EXE_STAGE_FORK
};
const char *exe_stage_name(int stage);

/* One record, written whole (smaller than PIPE_BUF). */
typedef struct exe_shim_msg {
	int32_t type;
	int32_t pid;         /* STARTED: the job's main process */
	int32_t wait_status; /* EXITED: the main process's, as waitpid gives it */
	int32_t err, stage;  /* EXEC_FAILED: errno and where */
	uint8_t timed_out, cancelled, cpu_exceeded;
	uint8_t last_signal; /* the last signal the shim sent the tree (0: none) */
	uint32_t stragglers; /* processes left when the main one ended (killed) */
	uint32_t leftover;   /* processes that would not die (0 unless stuck in the kernel) */
	int64_t user_usec, sys_usec, maxrss_kb; /* of every process reaped */
	int64_t start_ns, end_ns;               /* CLOCK_MONOTONIC */
} exe_shim_msg;

/* Forks the shim. 0 with *out filled, or SDK_EIO with the reason (the
 * failed system call and its errno's text) in `why`. */
int exe_shim_spawn(const exe_launch *l, exe_shim *out, sdk_err *why);

#endif
