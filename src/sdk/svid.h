/* JWT-SVIDs in the runtime (docs/trust.md, "Calls between kernels"): the
 * caller's side keeps one SVID per callee, asked of the trust kernel on the
 * first call to that callee and renewed at half its life; the callee's side
 * keeps the trust bundle and verifies SVIDs locally (EdDSA, aud, exp, sub).
 * The pure pieces (renewal time, verification against a JWKS, SPIFFE IDs
 * of Grace's workloads) are unit-tested in tests/unit/test_svid.c. */
#ifndef GRACE_SDK_SVID_H
#define GRACE_SDK_SVID_H

#include "sdk/err.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct sdk_caller;

/* The caller's SVID for the callee, on every call to a kernel but the
 * trust kernel (calls to it carry the attestation instead). */
#define SDK_SVID_HEADER "X-Grace-SVID"
#define SDK_SVID_MAX 8192 /* the longest token kept or verified */
#define SDK_SPIFFE_ID_MAX 320 /* the IDs Grace makes: its domain and a kernel's name */
/* The main process proves itself to the trust kernel with a secret of its
 * own (random at each start, never written down) sent as its attestation;
 * the supervisor hands the trust kernel the secret's SHA-256, in hex, in
 * this environment variable at each spawn (docs/trust.md). */
#define SDK_MAIN_ATTEST_ENV "GRACE_MAIN_ATTESTATION_SHA256"

/* When to renew an SVID obtained at got_ms that expires at expires_ms: at
 * half its life, moved by up to a tenth of its life either way by `rnd`
 * (any 32-bit random number), so processes started together do not renew
 * together; never before got_ms nor later than 1 s before it expires. */
int64_t sdk_svid_renew_at(int64_t got_ms, int64_t expires_ms, uint32_t rnd);

/* A node's workload name is this prefix and the node's name: "node/b". A
 * node's identity (spiffe://DOMAIN/node/NAME) is held by that node's main
 * process, for the mutual TLS between nodes (docs/trust.md "Nodes"). */
#define SDK_SVID_NODE_PREFIX "node/"

/* The SPIFFE ID of Grace's workload `name` in `domain`: "grace" is the main
 * process (spiffe://DOMAIN/grace), "node/NAME" the node NAME
 * (spiffe://DOMAIN/node/NAME), anything else the kernel NAME
 * (spiffe://DOMAIN/kernel/NAME). -1 when it does not fit. */
int sdk_svid_id(const char *domain, const char *name, char *out, size_t len);

/* The workload name of a SPIFFE ID of `domain`, the inverse of the above
 * ("grace", "node/NAME" or a kernel's NAME, names of [a-z0-9_]): -1 when it
 * is no workload of that domain. */
int sdk_svid_name_of(const char *domain, const char *id, char *name, size_t len);

/* The Ed25519 public key named `kid` into pk; false when there is none. */
typedef bool (*sdk_svid_key_fn)(const char *kid, unsigned char pk[32], void *arg);
/* The one JWT-SVID check (the callee's runtime and the trust kernel's
 * /jwt-svid/validate both use it): a compact JWS, alg EdDSA, typ JWT or
 * JOSE, the key `find` gives for its kid, a good signature, exp after
 * now_ms, `audience` among aud, a sub. Its claims go to *claims (a new
 * reference). SDK_ENOTFOUND when kid names no key, SDK_EDENIED with the
 * reason otherwise. */
int sdk_svid_check(const char *token, sdk_svid_key_fn find, void *arg, const char *audience,
		   int64_t now_ms, json_t **claims, sdk_err *err);
/* Verifies `token` against the JWT authorities of `jwks` (a SPIFFE bundle:
 * {"keys":[{"kty":"OKP","crv":"Ed25519","x","kid","use":"jwt-svid"}]}):
 * alg EdDSA, the key named by kid, a good signature, exp after now_ms,
 * `audience` among aud, sub a string. On success the subject is copied to
 * sub. SDK_ENOTFOUND when kid names no key of the bundle (a newer key: the
 * bundle may be refetched), SDK_EDENIED with the reason otherwise. */
int sdk_svid_verify(const char *token, const json_t *jwks, const char *audience,
		    int64_t now_ms, char *sub, size_t sublen, sdk_err *err);

/* ---- the caller's side: SVIDs per callee (owned by an sdk_caller) */

typedef struct sdk_svids sdk_svids;
/* Called when a fetch for `callee` ends (got one or not). */
typedef void (*sdk_svids_cb)(const char *callee, void *arg);

/* `held`: the process is attesting (a restarted kernel's SVIDs are refused
 * until it has): calls wait (SDK_SVID_PENDING) until sdk_svids_release, or
 * 2 to 3 s at most. */
sdk_svids *sdk_svids_new(struct event_base *base, struct sdk_caller *c, const char *domain,
			 unsigned ttl_s, bool held, sdk_svids_cb cb, void *arg);
/* The attestation is over (done or not): fetches may start, those that
 * failed meanwhile (refused before it) at once. */
void sdk_svids_release(sdk_svids *s);
/* Only once c's calls are dropped (sdk_caller_free does it). */
void sdk_svids_free(sdk_svids *s);

enum { SDK_SVID_NONE, SDK_SVID_HAVE, SDK_SVID_PENDING };
/* The SVID for `callee` now (*tok, borrowed until the next call into s),
 * SDK_SVID_HAVE; SDK_SVID_PENDING while held or when the first one is
 * being fetched (cb says when that is over); SDK_SVID_NONE when there is none (the last fetch
 * failed: another is tried after a backoff). Starts the fetch as needed. */
int sdk_svids_get(sdk_svids *s, const char *callee, int64_t now_ms, const char **tok);

/* ---- the callee's side: the trust bundle */

typedef struct sdk_bundle sdk_bundle;
/* A verification that had to wait for the bundle may be tried again. */
typedef void (*sdk_bundle_cb)(void *arg);

sdk_bundle *sdk_bundle_new(struct sdk_caller *c);
/* Calls every waiter's cb (each then finds the bundle closing: SDK_EBUSY
 * with no wait) and frees. After sdk_caller_free(c): a fetch in flight
 * must have been dropped without calling back. */
void sdk_bundle_free(sdk_bundle *b);

/* Makes jwks (a JWKS object with "keys"; the reference is taken) the
 * bundle, as a good fetch does: what was verified with the one before is
 * verified again. Tests hand a bundle in this way. */
void sdk_bundle_take(sdk_bundle *b, json_t *jwks);

/* Verifies with the cached bundle, fetching it first when there is none,
 * when it is older than its refresh hint (in the background), or when kid
 * is unknown and the last fetch is at least 5 s old. 0 with the subject
 * in sub; SDK_EDENIED (the token is bad; reason in err); SDK_EBUSY with
 * *waiting true when cb(arg) will be called once a fetch ends (then call
 * again); SDK_EBUSY with *waiting false when no bundle can be had now.
 * A token that verified is remembered by its bytes (at most 64) and
 * taken as verified again, for the same audience, until its exp or until
 * the bundle is replaced. */
int sdk_bundle_verify(sdk_bundle *b, const char *token, const char *audience, int64_t now_ms,
		      char *sub, size_t sublen, sdk_err *err, sdk_bundle_cb cb, void *arg,
		      bool *waiting);

#endif
