/* Attestation at spawn: the credential and the registration (attest.h). */
#include "serve/supervisor/attest.h"

#include "sdk/log.h"
#include "sdk/proc.h"

#include <jansson.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void sup_join_make(char *cred_hex, char *hash_hex)
{
	unsigned char cred[SUP_JOIN_HEX / 2], hash[crypto_hash_sha256_BYTES];
	randombytes_buf(cred, sizeof cred);
	sodium_bin2hex(cred_hex, SUP_JOIN_HEX + 1, cred, sizeof cred);
	/* The hash of the hex text: what the kernel presents. */
	crypto_hash_sha256(hash, (const unsigned char *)cred_hex, SUP_JOIN_HEX);
	sodium_bin2hex(hash_hex, SUP_JOIN_HEX + 1, hash, sizeof hash);
	sodium_memzero(cred, sizeof cred);
}

static void on_registered(int status, const char *body, size_t len, double ms,
			  const char *error, void *arg)
{
	(void)ms;
	char *name = arg;
	if (status != 201)
		sdk_warn("kernel %s: not registered with the trust kernel (%s%.*s): it stays "
			 "unattested until its next start",
			 name, error ? error : "", status ? (int)(len > 160 ? 160 : len) : 0,
			 body ? body : "");
	free(name);
}

void sup_attest_register(sdk_caller *c, const grace_config *cfg, const char *name, pid_t pid,
			 const char *hash_hex)
{
	if (!c || !grace_config_kernel(cfg, "trust") || pid <= 0)
		return;
	char state, link[32], exe[PATH_MAX];
	uint64_t start;
	snprintf(link, sizeof link, "/proc/%d/exe", (int)pid);
	ssize_t n = readlink(link, exe, sizeof exe - 1);
	if (proc_stat(pid, &state, &start) < 0 || n <= 0) {
		sdk_warn("kernel %s: pid %d is gone before its registration", name, (int)pid);
		return;
	}
	exe[n] = '\0';
	json_t *j = json_pack("{s:s, s:i, s:I, s:s, s:s}", "kernel", name, "pid", (int)pid,
			      "start_time", (json_int_t)start, "exe", exe, "credential_sha256",
			      hash_hex);
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	char *arg = strdup(name);
	if (!text || !arg ||
	    sdk_call(c, "trust", "POST", "/attest/register", text, strlen(text), NULL, 5000,
		     on_registered, arg) < 0) {
		sdk_warn("kernel %s: cannot register it with the trust kernel", name);
		free(arg);
	}
	free(text);
}
