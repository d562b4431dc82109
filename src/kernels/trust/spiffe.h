/* SPIFFE IDs (the SPIFFE-ID specification, section 2): parsing and
 * validation, and the IDs Grace gives its workloads. Pure: no I/O. */
#ifndef GRACE_TRUST_SPIFFE_H
#define GRACE_TRUST_SPIFFE_H

#include "kernels/layer.h"

#include "sdk/err.h"
#include <stddef.h>

#define TR_SPIFFE_ID_MAX 2048 /* the specification's limit on a whole ID */
#define TR_TRUST_DOMAIN_MAX 255
#define TR_TRUST_DOMAIN "grace.local"

typedef struct tr_spiffe_id {
	char trust_domain[TR_TRUST_DOMAIN_MAX + 1];
	char path[TR_SPIFFE_ID_MAX + 1]; /* "" or "/seg/seg..." */
} tr_spiffe_id;

/* True when `td` is a valid trust domain name: 1 to 255 characters of
 * [a-z0-9.-_] (lower case only). */
int tr_trust_domain_valid(const char *td);
/* Parses "spiffe://TD/PATH" strictly as the specification says: scheme
 * "spiffe" in lower case, a trust domain of [a-z0-9.-_], no user info,
 * port, query or fragment, path segments of [a-zA-Z0-9.-_], none empty,
 * "." or "..", no trailing "/", at most 2048 bytes. 0 or SDK_EINVAL with
 * the reason in err. */
int tr_spiffe_id_parse(const char *s, tr_spiffe_id *out, sdk_err *err);
/* A workload's ID: a kernel "spiffe://TD/kernel/NAME", a node ("node/NAME")
 * "spiffe://TD/node/NAME", the main process (name NULL)
 * "spiffe://TD/grace". Returns 0 or SDK_EINVAL for a name that is not a
 * kernel or node name ([a-z0-9_], 1 to 32). */
int tr_workload_id(const char *td, const char *name, char *out, size_t outlen, sdk_err *err);

#endif
