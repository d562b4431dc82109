/* The crypto kernel's operations (see ops.h). Every unsealed secret lives on
 * the stack of one call and is wiped before it returns. */
#include "sdk/err.h"
#include "ops.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CRY_NONCE_BYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define CRY_TAG_BYTES crypto_aead_xchacha20poly1305_ietf_ABYTES
#define CRY_B64URL sodium_base64_VARIANT_URLSAFE_NO_PADDING

/* The key, which must be of type `want`. */
static int cry_key_of_type(cry_store *s, const char *name, enum cry_type want, const char *what,
			   cry_key_info *info, sdk_err *err)
{
	int rc = cry_key_info_get(s, name, info, err);
	if (rc)
		return rc;
	if (info->type != want)
		return sdk_fail(err, SDK_EINVAL, "key %s is a %s key; %s needs a %s key", name,
				    cry_type_name(info->type), what, cry_type_name(want));
	return 0;
}

int cry_sign(cry_store *s, const char *name, const unsigned char *data, size_t len,
	     unsigned char sig[crypto_sign_BYTES], unsigned *version, sdk_err *err)
{
	cry_key_info info;
	int rc = cry_key_of_type(s, name, CRY_ED25519, "signing", &info, err);
	if (rc)
		return rc;
	unsigned char seed[CRY_SECRET_BYTES];
	rc = cry_key_secret(s, name, info.latest, seed, err);
	if (rc)
		return rc;
	unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
	crypto_sign_seed_keypair(pk, sk, seed);
	sodium_memzero(seed, sizeof seed);
	crypto_sign_detached(sig, NULL, data, len, sk);
	sodium_memzero(sk, sizeof sk);
	*version = info.latest;
	return 0;
}

static int cry_verify_one(cry_store *s, const char *name, unsigned version,
			  const unsigned char *data, size_t len, const unsigned char *sig,
			  bool *valid, sdk_err *err)
{
	unsigned char pk[CRY_PUBLIC_BYTES];
	int rc = cry_key_public(s, name, version, pk, err);
	if (rc)
		return rc;
	*valid = crypto_sign_verify_detached(sig, data, len, pk) == 0;
	return 0;
}

int cry_verify(cry_store *s, const char *name, const unsigned char *data, size_t len,
	       const unsigned char *sig, size_t sig_len, unsigned version, bool *valid,
	       unsigned *matched, sdk_err *err)
{
	cry_key_info info;
	int rc = cry_key_of_type(s, name, CRY_ED25519, "verifying", &info, err);
	if (rc)
		return rc;
	if (sig_len != crypto_sign_BYTES)
		return sdk_fail(err, SDK_EINVAL, "an Ed25519 signature is %u bytes, not %zu",
				    crypto_sign_BYTES, sig_len);
	*valid = false;
	*matched = 0;
	unsigned hi = version ? version : info.latest, lo = version ? version : 1;
	for (unsigned v = hi; v >= lo && v > 0; v--) {
		rc = cry_verify_one(s, name, v, data, len, sig, valid, err);
		if (rc)
			return rc;
		if (*valid) {
			*matched = v;
			return 0;
		}
	}
	return 0;
}

/* ---- tokens */

static char *cry_token_make(const char *scheme, unsigned version, const unsigned char *payload,
			    size_t len)
{
	char head[64];
	int h = snprintf(head, sizeof head, CRY_TOKEN_PREFIX ".%s.%u.", scheme, version);
	size_t b64 = sodium_base64_ENCODED_LEN(len, CRY_B64URL);
	char *tok = malloc((size_t)h + b64);
	if (!tok)
		return NULL;
	memcpy(tok, head, (size_t)h);
	sodium_bin2base64(tok + h, b64, payload, len, CRY_B64URL);
	return tok;
}

typedef struct cry_token {
	char scheme[24];
	unsigned version;
	unsigned char *payload; /* malloc'd */
	size_t len;
} cry_token;

static int cry_token_parse(const char *tok, cry_token *out, sdk_err *err)
{
	static const char bad[] = "the ciphertext is not a token from this kernel"
				  " (" CRY_TOKEN_PREFIX ".SCHEME.VERSION.PAYLOAD)";
	memset(out, 0, sizeof *out);
	size_t plen = strlen(CRY_TOKEN_PREFIX);
	if (strncmp(tok, CRY_TOKEN_PREFIX ".", plen + 1))
		return sdk_fail(err, SDK_EINVAL, "%s", bad);
	const char *scheme = tok + plen + 1;
	const char *dot = strchr(scheme, '.');
	if (!dot || dot == scheme || (size_t)(dot - scheme) >= sizeof out->scheme)
		return sdk_fail(err, SDK_EINVAL, "%s", bad);
	memcpy(out->scheme, scheme, (size_t)(dot - scheme));
	const char *ver = dot + 1;
	char *end;
	errno = 0;
	unsigned long v = *ver >= '1' && *ver <= '9' ? strtoul(ver, &end, 10) : 0;
	if (!v || errno || *end != '.' || v > UINT32_MAX)
		return sdk_fail(err, SDK_EINVAL, "%s", bad);
	out->version = (unsigned)v;
	const char *b64 = end + 1;
	size_t blen = strlen(b64);
	out->payload = malloc(blen / 4 * 3 + 3);
	if (!out->payload)
		return sdk_fail(err, SDK_EIO, "out of memory");
	if (sodium_base642bin(out->payload, blen / 4 * 3 + 3, b64, blen, NULL, &out->len, NULL,
			      CRY_B64URL) < 0) {
		free(out->payload);
		out->payload = NULL;
		return sdk_fail(err, SDK_EINVAL, "%s", bad);
	}
	return 0;
}

/* ---- encrypt / decrypt */

static int cry_encrypt_aead(cry_store *s, const char *name, unsigned version,
			    const unsigned char *pt, size_t len, const unsigned char *aad,
			    size_t aad_len, char **token, sdk_err *err)
{
	unsigned char key[CRY_SECRET_BYTES];
	int rc = cry_key_secret(s, name, version, key, err);
	if (rc)
		return rc;
	size_t n = CRY_NONCE_BYTES + len + CRY_TAG_BYTES;
	unsigned char *payload = malloc(n);
	if (!payload) {
		sodium_memzero(key, sizeof key);
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	/* 192-bit random nonces: collisions are not a concern at any volume. */
	randombytes_buf(payload, CRY_NONCE_BYTES);
	crypto_aead_xchacha20poly1305_ietf_encrypt(payload + CRY_NONCE_BYTES, NULL, pt, len, aad,
						   aad_len, NULL, payload, key);
	sodium_memzero(key, sizeof key);
	*token = cry_token_make(CRY_SCHEME_AEAD, version, payload, n);
	free(payload);
	return *token ? 0 : sdk_fail(err, SDK_EIO, "out of memory");
}

static int cry_encrypt_sealed(cry_store *s, const char *name, unsigned version,
			      const unsigned char *pt, size_t len, char **token, sdk_err *err)
{
	unsigned char pk[CRY_PUBLIC_BYTES];
	int rc = cry_key_public(s, name, version, pk, err);
	if (rc)
		return rc;
	size_t n = crypto_box_SEALBYTES + len;
	unsigned char *payload = malloc(n);
	if (!payload)
		return sdk_fail(err, SDK_EIO, "out of memory");
	crypto_box_seal(payload, pt, len, pk);
	*token = cry_token_make(CRY_SCHEME_SEALED, version, payload, n);
	free(payload);
	return *token ? 0 : sdk_fail(err, SDK_EIO, "out of memory");
}

int cry_encrypt(cry_store *s, const char *name, const unsigned char *pt, size_t len,
		const unsigned char *aad, size_t aad_len, char **token, unsigned *version,
		sdk_err *err)
{
	cry_key_info info;
	int rc = cry_key_info_get(s, name, &info, err);
	if (rc)
		return rc;
	switch (info.type) {
	case CRY_SYMMETRIC:
		rc = cry_encrypt_aead(s, name, info.latest, pt, len, aad, aad_len, token, err);
		break;
	case CRY_X25519:
		if (aad)
			return sdk_fail(err, SDK_EINVAL,
					    "key %s is an x25519 key: sealed boxes take no"
					    " associated data",
					    name);
		rc = cry_encrypt_sealed(s, name, info.latest, pt, len, token, err);
		break;
	default:
		return sdk_fail(err, SDK_EINVAL,
				    "key %s is an ed25519 key; encryption needs a symmetric or"
				    " x25519 key",
				    name);
	}
	if (!rc)
		*version = info.latest;
	return rc;
}

static int cry_decrypt_aead(cry_store *s, const char *name, const cry_token *t,
			    const unsigned char *aad, size_t aad_len, unsigned char *pt,
			    size_t *len, sdk_err *err)
{
	if (t->len < CRY_NONCE_BYTES + CRY_TAG_BYTES)
		return sdk_fail(err, SDK_EINVAL, "the ciphertext is too short");
	unsigned char key[CRY_SECRET_BYTES];
	int rc = cry_key_secret(s, name, t->version, key, err);
	if (rc)
		return rc;
	unsigned long long n = 0;
	rc = crypto_aead_xchacha20poly1305_ietf_decrypt(pt, &n, NULL, t->payload + CRY_NONCE_BYTES,
							t->len - CRY_NONCE_BYTES, aad, aad_len,
							t->payload, key);
	sodium_memzero(key, sizeof key);
	*len = (size_t)n;
	return rc ? CRY_EAUTH : 0;
}

static int cry_decrypt_sealed(cry_store *s, const char *name, const cry_token *t,
			      unsigned char *pt, size_t *len, sdk_err *err)
{
	if (t->len < crypto_box_SEALBYTES)
		return sdk_fail(err, SDK_EINVAL, "the ciphertext is too short");
	unsigned char sk[CRY_SECRET_BYTES], pk[CRY_PUBLIC_BYTES];
	int rc = cry_key_secret(s, name, t->version, sk, err);
	if (rc)
		return rc;
	crypto_scalarmult_base(pk, sk);
	rc = crypto_box_seal_open(pt, t->payload, t->len, pk, sk);
	sodium_memzero(sk, sizeof sk);
	*len = t->len - crypto_box_SEALBYTES;
	return rc ? CRY_EAUTH : 0;
}

int cry_decrypt(cry_store *s, const char *name, const char *token, const unsigned char *aad,
		size_t aad_len, unsigned char **pt, size_t *len, unsigned *version, sdk_err *err)
{
	cry_key_info info;
	int rc = cry_key_info_get(s, name, &info, err);
	if (rc)
		return rc;
	const char *want = info.type == CRY_SYMMETRIC ? CRY_SCHEME_AEAD :
			   info.type == CRY_X25519    ? CRY_SCHEME_SEALED :
							NULL;
	if (!want)
		return sdk_fail(err, SDK_EINVAL,
				    "key %s is an ed25519 key; decryption needs a symmetric or"
				    " x25519 key",
				    name);
	if (info.type == CRY_X25519 && aad)
		return sdk_fail(err, SDK_EINVAL,
				    "key %s is an x25519 key: sealed boxes take no associated data",
				    name);
	cry_token t;
	rc = cry_token_parse(token, &t, err);
	if (rc)
		return rc;
	if (strcmp(t.scheme, want)) {
		free(t.payload);
		return sdk_fail(err, SDK_EINVAL, "the ciphertext is for a %s key, and %s is a %s key",
				    !strcmp(t.scheme, CRY_SCHEME_AEAD) ? "symmetric" :
				    !strcmp(t.scheme, CRY_SCHEME_SEALED) ? "x25519" : "unknown",
				    name, cry_type_name(info.type));
	}
	unsigned char *out = malloc(t.len ? t.len : 1);
	if (!out) {
		free(t.payload);
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	if (info.type == CRY_SYMMETRIC)
		rc = cry_decrypt_aead(s, name, &t, aad, aad_len, out, len, err);
	else
		rc = cry_decrypt_sealed(s, name, &t, out, len, err);
	free(t.payload);
	if (rc == CRY_EAUTH)
		sdk_fail(err, CRY_EAUTH,
			     "the ciphertext does not decrypt with key %s version %u (altered,"
			     " another key, or other associated data)",
			     name, t.version);
	if (rc) {
		sodium_memzero(out, t.len ? t.len : 1);
		free(out);
		return rc;
	}
	*pt = out;
	*version = t.version;
	return 0;
}

/* ---- hashes */

int cry_hash(const char *algorithm, const unsigned char *data, size_t len, size_t out_len,
	     unsigned char out[64], size_t *n, sdk_err *err)
{
	if (!strcmp(algorithm, "sha256")) {
		crypto_hash_sha256(out, data, len);
		*n = crypto_hash_sha256_BYTES;
	} else if (!strcmp(algorithm, "sha512")) {
		crypto_hash_sha512(out, data, len);
		*n = crypto_hash_sha512_BYTES;
	} else if (!strcmp(algorithm, "blake2b")) {
		if (out_len < crypto_generichash_BYTES_MIN || out_len > crypto_generichash_BYTES_MAX)
			return sdk_fail(err, SDK_EINVAL, "blake2b digests are %u to %u bytes",
					    crypto_generichash_BYTES_MIN,
					    crypto_generichash_BYTES_MAX);
		crypto_generichash(out, out_len, data, len, NULL, 0);
		*n = out_len;
	} else {
		return sdk_fail(err, SDK_EINVAL,
				    "unknown algorithm %s (sha256, sha512 or blake2b)", algorithm);
	}
	return 0;
}
