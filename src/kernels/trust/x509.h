/* X.509-SVIDs (the SPIFFE X509-SVID specification) through OpenSSL: a
 * P-256 signing CA per rotation, leaf certificates with exactly one URI SAN
 * (the SPIFFE ID), and the CA as a JWK for the SPIFFE bundle. */
#ifndef GRACE_TRUST_X509_H
#define GRACE_TRUST_X509_H

#include "kernels/layer.h"

#include "kernels/trust/store.h"
#include "sdk/err.h"
#include <jansson.h>
#include <stdint.h>

/* Makes a self-signed CA for trust domain `td` valid from now (less a
 * minute of clock skew) for valid_ms: k->pub gets its DER certificate,
 * k->secret its PKCS#8 DER private key (sodium_malloc'd). */
int tr_x509_ca_new(const char *td, int64_t now_ms, int64_t valid_ms, tr_key *k, sdk_err *err);

typedef struct tr_x509_svid {
	char *cert_pem; /* malloc'd: the leaf (the chain is the leaf alone: the CA signs it) */
	char *key_pem;  /* malloc'd: its PKCS#8 private key; wipe before free */
	char *bundle_pem; /* malloc'd: the issuing CA */
	int64_t expires_ms;
} tr_x509_svid;

void tr_x509_svid_clear(tr_x509_svid *s);

/* Issues a leaf for `spiffe_id` signed by `ca` (with its secret), valid
 * ttl_s seconds but never past the CA. */
int tr_x509_issue(const tr_key *ca, const char *spiffe_id, int64_t now_ms, int ttl_s,
		  tr_x509_svid *out, sdk_err *err);

/* The CA as a SPIFFE bundle JWK: {"kty":"EC","crv":"P-256","x","y",
 * "use":"x509-svid","x5c":[DER base64]}. NULL when it cannot be read. */
json_t *tr_x509_jwk(const tr_key *ca);

#endif
