/* JWT-SVIDs (the SPIFFE JWT-SVID specification): compact JWS signed with
 * EdDSA (Ed25519, RFC 8037), claims sub (the SPIFFE ID), aud, exp, iat.
 * Pure: keys come in, tokens go out; time is passed in. */
#ifndef GRACE_TRUST_JWT_H
#define GRACE_TRUST_JWT_H

#include "kernels/layer.h"

#include "kernels/trust/store.h"
#include "sdk/err.h"
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define TR_JWT_MAX 8192 /* the longest token verified */
#define TR_AUDIENCE_MAX 16 /* audiences in one token */
#define TR_AUDIENCE_LEN_MAX 256

/* Errors of verification, numbered from SDK_E_MODULE. */
enum { TR_EBADTOKEN = SDK_E_MODULE };

/* base64url without padding (RFC 7515), as a JSON string; NULL on ENOMEM. */
json_t *tr_b64url_json(const unsigned char *data, size_t len);

/* Signs a JWT-SVID for `sub` with `key` (a TR_JWT key with its secret)
 * for the audiences `aud` (a non-empty array of strings). *out is
 * malloc'd; *exp_s the expiry in seconds since the epoch. */
int tr_jwt_sign(const tr_key *key, const char *sub, json_t *aud, int64_t now_ms, int ttl_s,
		char **out, int64_t *exp_s, sdk_err *err);

/* Verifies `token` against the JWT keys among `keys` (by kid): alg EdDSA,
 * a good signature, exp after now, `audience` among aud, sub a valid
 * SPIFFE ID. On success *claims is the claims object (the caller's).
 * TR_EBADTOKEN with the reason otherwise. */
int tr_jwt_verify(const char *token, const tr_key *keys, size_t n, const char *audience,
		  int64_t now_ms, json_t **claims, sdk_err *err);

/* The public key as a SPIFFE bundle JWK: {"kty":"OKP","crv":"Ed25519",
 * "x","kid","use":"jwt-svid"}. */
json_t *tr_jwt_jwk(const tr_key *key);

#endif
