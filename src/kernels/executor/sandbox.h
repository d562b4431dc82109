/* The optional sandbox of a job: bubblewrap's command line (namespaces, a
 * read-only view of the file system, the job's directory writable), and
 * the seccomp filter (libseccomp) that refuses dangerous system calls. */
#ifndef GRACE_EXECUTOR_SANDBOX_H
#define GRACE_EXECUTOR_SANDBOX_H

#include "kernels/layer.h"
#include "sdk/err.h"

#include <linux/filter.h>
#include <stdbool.h>
#include <stddef.h>

#define EXE_SECCOMP_FD 3 /* where bubblewrap finds the filter in the job */
#define EXE_BWRAP_ARGS 40 /* bubblewrap's own arguments at most */

/* The filter, built once: its BPF program in memory (for prctl in the
 * job before exec) and in a sealed memfd (for bubblewrap's --seccomp).
 * The memfd is read from offset 0 by each job: callers pass a dup. */
typedef struct exe_seccomp {
	struct sock_fprog prog; /* prog.filter owned */
	int memfd;              /* owned; -1 when not built */
	int refused;            /* system calls refused */
} exe_seccomp;

/* 0, or SDK_EIO with the reason in `why` (then nothing is owned). */
int exe_seccomp_build(exe_seccomp *out, sdk_err *why);
void exe_seccomp_free(exe_seccomp *s);

/* The path of bwrap when installed (PATH-independent: the usual places). */
bool exe_bwrap_find(char *out, size_t n);

/* bubblewrap's arguments before the job's argv, into args (at least
 * EXE_BWRAP_ARGS slots, strings borrowed from the arguments); returns how
 * many. `seccomp` adds --seccomp EXE_SECCOMP_FD. */
int exe_bwrap_args(const char *bwrap, const char *workdir, bool network, bool readonly_root,
		   bool seccomp, const char **args);

#endif
