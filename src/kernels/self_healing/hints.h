/* Root-cause hints from what the machine shows (docs/self_healing.md
 * "Root-cause hints"). Pure: the facts are gathered by the caller (the
 * supervisor's last exit, the guardian's reason, the healer's diagnosis,
 * the cgroup's OOM kill count, statvfs of DATA_DIR) and classified here. */
#ifndef GRACE_SELF_HEALING_HINTS_H
#define GRACE_SELF_HEALING_HINTS_H

#include "kernels/layer.h"

#include <jansson.h>
#include <stdint.h>

#define SH_DISK_FULL_PERCENT 2            /* free below this share of the disk */
#define SH_DISK_FULL_BYTES (64ll << 20)  /* or below this many bytes */

typedef struct sh_facts {
	const char *last_exit;      /* the supervisor's: "exit 1", "signal 9 (Killed)", "watchdog ..." */
	const char *guardian_reason;/* the guardian's, on a probe failure */
	const char *issue_type;     /* the healer's diagnosis */
	const char *holder_kind;    /* the healer's diagnosis: port_holder.kind */
	int64_t holder_pid;
	const char *holder_cmdline;
	const char *storage_error;  /* the kernel's storage failure, as /health said */
	int64_t oom_kills;          /* new OOM kills in the cgroup since the last look; -1 unknown */
	int64_t disk_free, disk_total; /* bytes of DATA_DIR's file system; total -1: unknown */
} sh_facts;

/* Appends hints to `out` (an array): {"kind","detail",...}. Kinds:
 * exit_code, signal, oom_kill, watchdog_timeout, port_held, disk_full,
 * database_corrupt, probe_timeout. Returns how many were added. */
size_t sh_hints_classify(const sh_facts *f, json_t *out);

/* SIGKILL etc. from a signal number; "SIG?" when unknown. */
const char *sh_signal_name(int sig);

#endif
