/* Attestation at spawn (docs/trust.md): the supervisor hands each kernel
 * process it spawns a one-time join credential (32 random bytes, in hex, in
 * the environment variable GRACE_JOIN_CREDENTIAL, which the kernel's
 * runtime wipes and removes before anything else), and registers the
 * process with the trust kernel: its pid, its start time (/proc/PID/stat),
 * its executable (/proc/PID/exe), the kernel's name and the credential's
 * SHA-256. The registration is a call that is never waited for: a spawn
 * never fails, and healing never waits, because trust is down. */
#ifndef GRACE_SUPERVISOR_ATTEST_H
#define GRACE_SUPERVISOR_ATTEST_H

#include "serve/layer.h"

#include "sdk/call.h"
#include "sdk/config.h"

#include <sys/types.h>

#define SUP_JOIN_ENV "GRACE_JOIN_CREDENTIAL"
#define SUP_JOIN_HEX 64 /* 32 bytes */

/* A fresh credential (cred_hex) and its SHA-256 (hash_hex), both
 * SUP_JOIN_HEX + 1 bytes. */
void sup_join_make(char *cred_hex, char *hash_hex);
/* Registers `pid` of kernel `name` with the trust kernel (when there is
 * one), in the background; while the trust kernel does not answer (down
 * or starting) it is tried again with backoff (sup_attest_backoff_ms)
 * until it answers or the process is gone. */
void sup_attest_register(sdk_caller *c, const grace_config *cfg, const char *name, pid_t pid,
			 const char *hash_hex);
/* The trust kernel became ready: every registration waiting out its
 * backoff is sent now. Without this, one that failed while the trust
 * kernel was starting slowly waits up to 5 s more, and its kernel has no
 * identity that long. */
void sup_attest_kick(void);
/* The main process's own attestation where the trust kernel is not its
 * child (a systemd unit: it was given no hash at spawn): with an enrolled
 * credential in $CREDENTIALS_DIRECTORY/join (docs/trust.md), the main
 * process presents it with the SHA-256 of the attestation it already sends
 * (main_hash, hex), in the background, again with backoff while the trust
 * kernel does not answer or does not know the credential yet (an admin
 * enrolls it after the first start), and once more each time the trust
 * kernel becomes ready (sup_attest_kick). Nothing when the trust kernel is
 * this process's child or another node's, or there is no credential. */
void sup_attest_main(sdk_caller *c, const grace_config *cfg, const char *main_hash);
/* The wait before the next try after one of prev_ms (0: the first):
 * 250 ms doubling to 5 s. */
unsigned sup_attest_backoff_ms(unsigned prev_ms);

#endif
