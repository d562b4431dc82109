/* Control groups for executor jobs: what this machine offers (cgroup v2,
 * the v1 memory and pids controllers of a hybrid mount, or nothing), and
 * each job's own groups: created with its limits before it starts, read
 * for usage and OOM kills, killed whole, removed after.
 *
 * Detection reads /proc/self/mountinfo and /proc/self/cgroup (parsed by
 * pure functions, unit-tested on other machines' files) and then tries:
 * our groups live under our own cgroup in each hierarchy, in a directory
 * of this executor instance (grace-exec-INSTANCE), and a hierarchy counts
 * only when we can create a group there. Nothing here fails the kernel:
 * what is missing is reported, and containment falls back (contain.h). */
#ifndef GRACE_EXECUTOR_CGROUP_H
#define GRACE_EXECUTOR_CGROUP_H

#include "kernels/layer.h"
#include "sdk/err.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define EXE_CG_PATH_MAX 512

/* The cgroup file systems mounted, from /proc/self/mountinfo. */
typedef struct exe_cg_mounts {
	char v2[EXE_CG_PATH_MAX]; /* mount point of cgroup2, "" when none */
	char v2_root[EXE_CG_PATH_MAX];
	/* v1 mount points (and their roots) of the controllers we use */
	char memory[EXE_CG_PATH_MAX], memory_root[EXE_CG_PATH_MAX];
	char pids[EXE_CG_PATH_MAX], pids_root[EXE_CG_PATH_MAX];
} exe_cg_mounts;

/* This process's groups, from /proc/self/cgroup ("" when not listed). */
typedef struct exe_cg_self {
	char v2[EXE_CG_PATH_MAX];
	char memory[EXE_CG_PATH_MAX];
	char pids[EXE_CG_PATH_MAX];
	bool has_v2;
} exe_cg_self;

void exe_cg_mounts_parse(const char *mountinfo, exe_cg_mounts *out);
void exe_cg_self_parse(const char *proc_cgroup, exe_cg_self *out);
/* Whether `procs` (a cgroup.procs file: one pid a line) lists `self` and
 * no other process: then the executor may leave that group for a leaf of
 * its own, emptying it (see detect_v2). */
bool exe_cg_sole_process(const char *procs, pid_t self);
/* mount + (own path less the mount's root) into out; false when too long
 * or the path is not below the root. */
bool exe_cg_join(const char *mount, const char *root, const char *own, char *out, size_t n);

/* What the machine offers our jobs, found by exe_cg_detect. */
typedef struct exe_cg_host {
	bool v2;        /* groups can be made in the v2 hierarchy */
	bool v2_kill;   /* cgroup.kill (Linux 5.14) */
	bool v2_memory, v2_pids, v2_cpu; /* controllers enabled for our groups */
	bool v1_memory, v1_pids;
	char v2_base[EXE_CG_PATH_MAX]; /* our instance's directories */
	char memory_base[EXE_CG_PATH_MAX];
	char pids_base[EXE_CG_PATH_MAX];
	char notes[512]; /* why something is not used, for the logs and /containment */
} exe_cg_host;

/* Finds and prepares what the machine offers under `instance` (creating
 * the instance's directories). Never fails: *out says what is usable, and
 * `notes` why the rest is not. */
void exe_cg_detect(const char *instance, exe_cg_host *out);

/* One job's groups: what was created and with which limits. */
typedef struct exe_cg_job {
	char v2[EXE_CG_PATH_MAX];     /* "" when none */
	char memory[EXE_CG_PATH_MAX]; /* v1 */
	char pids[EXE_CG_PATH_MAX];   /* v1 */
	bool v2_memory, v2_pids;      /* limits set in the v2 group */
} exe_cg_job;

typedef struct exe_cg_want {
	bool v2, v2_memory, v2_pids, v1_memory, v1_pids; /* from the plan (contain.h) */
	uint64_t memory_bytes, pids;
} exe_cg_want;

/* Creates the job's groups and writes the limits; 0, or SDK_EIO with what
 * failed (and the errno's text) in `why` (the job must not start then: its
 * record would claim a containment it did not get). */
int exe_cg_job_create(const exe_cg_host *h, const char *job_id, const exe_cg_want *w,
		      exe_cg_job *out, sdk_err *why);

/* Usage a job's groups measured (fields left -1 when unknown). */
typedef struct exe_cg_usage {
	int64_t memory_peak_bytes;
	int64_t oom_kills;
	int64_t pids_peak;
	int64_t cpu_usec;
} exe_cg_usage;

void exe_cg_job_usage(const exe_cg_job *j, exe_cg_usage *out);
/* Kills every process in the job's groups (cgroup.kill, else each pid
 * listed, repeatedly); returns how many were still there at the end. */
int exe_cg_job_kill(const exe_cg_job *j);
/* Removes the groups (they must be empty): 0 or -errno. */
int exe_cg_job_remove(const exe_cg_job *j);
/* Removes what previous lives of this instance left (killing any process
 * still in them): the groups of jobs that were lost. Returns how many. */
int exe_cg_sweep(const exe_cg_host *h);
/* Removes the instance directories when empty (at close). */
void exe_cg_host_release(const exe_cg_host *h);

/* Reads a whole small file (a cgroup or /proc file) into buf, NUL-ended:
 * bytes read, or -errno. */
ssize_t exe_read_small(const char *path, char *buf, size_t len);
/* Writes `text` to an existing file: 0 or -errno. */
int exe_write_file(const char *path, const char *text);

#endif
