/* Attestation of kernel processes (docs/trust.md). The supervisor
 * registers each process it spawns: (kernel, pid, start time, executable,
 * SHA-256 of a one-time join credential it handed that process). The
 * process presents the credential once; it is accepted only from the
 * kernel it was given to, for the pid it was given to, while that very
 * process (same start time, same executable in /proc) lives, and only
 * once. The process then gets an attestation (random, its hash kept) that
 * it sends with later requests: SVIDs of a kernel that has attested go
 * only to the process holding it. No HTTP.
 *
 * Several hosts (docs/trust.md "Nodes: several hosts"): this node's main
 * process vouches for another node's (tr_node_vouch), which then registers
 * the kernels of its node. /proc shows only this host's processes, so a
 * registration from another node is accepted on that node's word: the
 * one-time, same-kernel and same-pid rules hold, the /proc checks are
 * skipped (its supervisor made the process and checked it).
 *
 * Calls return 0 or a negative sdk_status with the reason in err. */
#ifndef GRACE_TRUST_ATTEST_H
#define GRACE_TRUST_ATTEST_H

#include "kernels/layer.h"

#include "sdk/err.h"
#include <jansson.h>
#include <sqlite3.h>
#include <stdint.h>
#include <sys/types.h>

#define TR_JOIN_HEX 64
#define TR_EXE_MAX 4096
#define TR_JOINS_MAX 1024 /* registrations kept; the oldest go first */
/* A used credential is accepted again from the same live process this
 * long after its first use (its first answer lost), not later. */
#define TR_REJOIN_MS 60000

typedef struct tr_proc {
	pid_t pid;
	int64_t start_time; /* clock ticks since boot, /proc/PID/stat field 22 */
	char exe[TR_EXE_MAX];
} tr_proc;

/* The live process `pid` as /proc shows it now; SDK_ENOTFOUND when gone. */
int tr_proc_read(pid_t pid, tr_proc *out, sdk_err *err);

/* The supervisor's registration, made by the main process of node `node`
 * ("" with no nodes configured). */
int tr_join_register(sqlite3 *db, const char *kernel, const char *node, const tr_proc *p,
		     const char *hash_hex, int64_t now_ms, sdk_err *err);
/* A process presents `credential` (hex) as kernel `kernel`, pid `pid`.
 * SDK_ENOTFOUND: no such registration (yet); SDK_ECONFLICT: used already;
 * SDK_EDENIED: another kernel, another pid, or (registered by this node,
 * `local_node`) not the live process it was given to. On success the
 * credential is burnt, the workload recorded, and `attestation`
 * (TR_JOIN_HEX + 1 bytes) is what the process sends from now on.
 * `given` (NULL for a kernel): the SHA-256 (hex) of an attestation the
 * process chose itself, recorded instead of a new one (`attestation` is
 * then ""): the main process's, which it made at start and already sends;
 * accepted with an enrolled credential only. */
int tr_join_accept(sqlite3 *db, const char *kernel, const char *credential, pid_t pid,
		   const char *local_node, int64_t now_ms, const char *given, char *attestation,
		   sdk_err *err);
/* The workload name of the main process ("grace"), which may be enrolled
 * and join like a kernel when no grace serve spawned this trust kernel. */
#define TR_MAIN_WORKLOAD "grace"
/* The attestation hash the main process joined with (out: TR_JOIN_HEX + 1
 * bytes); SDK_ENOTFOUND when it never joined. */
int tr_main_enrolled_hash(sqlite3 *db, char *out, sdk_err *err);
/* A long-lived join credential for kernel `kernel` (its SHA-256, hex), for
 * a kernel no supervisor spawns (systemd's LoadCredential=): one per
 * kernel, replaced by the next. A process presenting it through
 * tr_join_accept is accepted while it runs this trust kernel's own
 * executable; it is not burnt. SDK_ECONFLICT: enrolled for another kernel. */
int tr_enroll(sqlite3 *db, const char *kernel, const char *hash_hex, int64_t now_ms, sdk_err *err);
/* Removes kernel `kernel`'s enrolled credential; SDK_ENOTFOUND when none. */
int tr_unenroll(sqlite3 *db, const char *kernel, sdk_err *err);
/* Whether a request as kernel `kernel` carrying `attestation` (NULL: none)
 * may have an SVID of that kernel: yes when the kernel never attested (it
 * runs without the supervisor, or before its registration arrived), else
 * only from the attested process, alive (on this node, `local_node`; a
 * process of another node: its attestation alone). SDK_EDENIED with the
 * reason. */
int tr_workload_check(sqlite3 *db, const char *kernel, const char *attestation,
		      const char *local_node, sdk_err *err);
/* An SVID issued to the workload until expires_ms (for GET /workloads). */
void tr_workload_svid(sqlite3 *db, const char *kernel, int64_t expires_ms);
/* {"workloads":[{"name","node","pid","exe","attested_at","svid_expires_at"}]},
 * node null with no nodes configured. */
int tr_workloads_json(sqlite3 *db, json_t **out, sdk_err *err);

/* Records that the holder of an attestation hashing to `main_sha256` (64
 * lower-case hex) is node `node`'s main process, replacing that node's
 * previous one. SDK_EINVAL: not such a hash; SDK_ECONFLICT: another node's
 * main holds it. */
int tr_node_vouch(sqlite3 *db, const char *node, const char *main_sha256, int64_t now_ms,
		  sdk_err *err);
/* The node whose vouched main process holds `attestation` (NULL: none),
 * copied to node (len bytes): 0, or SDK_ENOTFOUND when it is nobody's. */
int tr_node_of_main(sqlite3 *db, const char *attestation, char *node, size_t len, sdk_err *err);

#endif
