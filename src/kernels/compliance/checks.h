/* The evaluation of controls: the local checks (files, the configuration,
 * listening sockets, the users table; blocking: run them on the worker
 * pool), evidence with its SHA-256, and the pure rules around results
 * (what counts as a change, how a waiver applies). */
#ifndef GRACE_COMPLIANCE_CHECKS_H
#define GRACE_COMPLIANCE_CHECKS_H

#include "kernels/layer.h"

#include "sdk/config.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define CMP_EVIDENCE_MAX 16384 /* bytes of one evidence's data kept */

/* What a local check may read. */
typedef struct cmp_env {
	const grace_config *cfg;
	const char *data_dir;
	const char *proc_net_dir; /* "/proc/net" (tests point it elsewhere) */
	int64_t now_ms;
} cmp_env;

/* A new result object {"result", "message", "evidence": [{"read",
 * "data", "sha256"}]}. result is pass, fail, not_applicable, error or
 * info. */
json_t *cmp_result_new(const char *result, const char *message);
/* Adds evidence: what was read (a description) and its text; the SHA-256
 * is of all of `data`, kept whole up to CMP_EVIDENCE_MAX bytes. */
void cmp_result_evidence(json_t *result, const char *read, const char *data, size_t len);

/* Runs one local check (a validated profile's check object): a new result. */
json_t *cmp_check_local(const json_t *check, const cmp_env *env);

/* Pure pieces, for the unit tests. */
/* Whether (ops, mem_kib) meets one of OWASP's Argon2id configurations. */
bool cmp_argon2_owasp(unsigned ops, unsigned mem_kib);
/* One line of /proc/net/tcp{,6}: false when it is not a socket line; else
 * its local port, whether it listens and whether its address is loopback. */
bool cmp_proc_net_line(const char *line, bool v6, unsigned *port, bool *listening,
		       bool *loopback);
/* Whether a control's result moved from `prev` (NULL: no earlier scan) to
 * `now` in a way that deserves an event. */
bool cmp_result_changed(const char *prev, const char *now);
/* Whether a result is bad: fail or error (an alert fires). */
bool cmp_result_bad(const char *result);
/* Applies the waivers (an array of {"id", "control_id", "expires_ms", ...})
 * to a result of control `id`: a fail under a waiver not yet expired at
 * now_ms becomes "waived" (the waiver's id and the raw result recorded).
 * An expired waiver changes nothing: the control fails again. */
void cmp_waiver_apply(json_t *result, const char *id, const json_t *waivers, int64_t now_ms);

/* Whether process `pid` is alive and is `grace kernel NAME` (the kernel
 * named); tests pass a fake. */
typedef bool (*cmp_kernel_alive_fn)(int pid, const char *name, void *arg);
/* The per-kernel part of kernel_identity: every enabled kernel of `cfg`
 * has a row in the trust kernel's `workloads` answer ({"workloads":
 * [{"name","pid",...}]}) whose process is alive and is that kernel. True
 * when all do; `msg` says how many, or which do not and why (the first
 * few). A kernel run by systemd attests with the credential an admin
 * enrolled for it (LoadCredential=, docs/trust.md); without one it fails,
 * and the reason says to enroll it. */
bool cmp_identity_verdict(const grace_config *cfg, const json_t *workloads,
			  cmp_kernel_alive_fn alive, void *arg, char *msg, size_t n);
/* The real cmp_kernel_alive_fn: /proc/PID/cmdline. */
bool cmp_kernel_alive(int pid, const char *name, void *arg);

#endif
