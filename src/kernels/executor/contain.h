/* Which containment a job gets on this machine: a pure choice from what
 * the machine offers (exe_host: cgroups found, who we run as, whether
 * bubblewrap and the seccomp filter are there) and what the job asks for
 * (its limits and sandbox). Unit-tested over every kind of machine; the
 * job's record carries the result (exe_plan_json), so it says what
 * actually applied.
 *
 *   tracking and kill   cgroup v2 (cgroup.kill) > cgroup v1 pids group >
 *                       the job's process group; always also the shim as
 *                       subreaper, so a double fork or setsid escapes none
 *   memory              cgroup v2 memory.max > v1 memory.limit_in_bytes >
 *                       RLIMIT_AS
 *   processes           cgroup v2 pids.max > v1 pids.max > RLIMIT_NPROC
 *                       (per user, and only for a user that is not root)
 *   CPU time            RLIMIT_CPU per process, and the whole tree's from
 *                       the v2 group's cpu.stat when there is one
 *   open files          RLIMIT_NOFILE
 *   user                the jobs user when we are root (else ourselves)
 *   namespaces          bubblewrap, when asked; refused when missing
 *   system calls        the seccomp filter (in bwrap, or before exec) */
#ifndef GRACE_EXECUTOR_CONTAIN_H
#define GRACE_EXECUTOR_CONTAIN_H

#include "kernels/layer.h"

#include "kernels/executor/cgroup.h"
#include "kernels/executor/spec.h"

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#define EXE_USER_MAX 32

typedef struct exe_host {
	exe_cg_host cg;
	bool root;       /* the executor runs as root */
	bool user_found; /* the configured jobs user exists */
	uid_t uid;       /* jobs run as this user ... */
	gid_t gid;
	char user[EXE_USER_MAX]; /* ... by this name */
	char bwrap[PATH_MAX];    /* "" when bubblewrap is not installed */
	bool seccomp;            /* the filter could be built */
	int seccomp_refused;     /* how many system calls it refuses */
} exe_host;

typedef struct exe_plan {
	bool drop;       /* switch to uid/gid before exec */
	uid_t uid;
	gid_t gid;
	bool cg_v2;               /* a v2 group: tracking, kill, CPU of the tree */
	bool v2_memory, v2_pids;  /* limits in it */
	bool v1_memory, v1_pids;  /* v1 groups (the pids one also tracks) */
	bool rl_as, rl_nproc, rl_cpu, rl_nofile;
	bool cpu_watch;           /* the shim watches the tree's CPU time */
	bool bwrap;
	bool seccomp_inproc, seccomp_bwrap;
	char refuse[200];         /* not "": the job cannot run as asked */
} exe_plan;

void exe_plan_select(const exe_host *h, const exe_spec *s, exe_plan *out);
/* What applied, for the job's record. */
json_t *exe_plan_json(const exe_plan *p, const exe_spec *s, const exe_host *h);
/* What this machine offers, for GET /containment. */
json_t *exe_host_json(const exe_host *h);

#endif
