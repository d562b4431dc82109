/* The crypto kernel's operations on named keys: sign and verify (Ed25519),
 * encrypt and decrypt (XChaCha20-Poly1305 for symmetric keys, sealed boxes
 * for X25519 keys), and hashes. No HTTP; errors as in keystore.h.
 *
 * New work uses a key's newest version; what older versions produced still
 * verifies and decrypts, because signatures name their version beside them
 * and ciphertexts carry it inside their token:
 *
 *     grace1.<scheme>.<version>.<payload, base64url without padding>
 *
 * scheme "xchacha20poly1305": payload = 24-byte nonce || ciphertext || tag,
 * the associated data being exactly the caller's `aad`;
 * scheme "sealedbox": payload = crypto_box_seal's output. */
#ifndef GRACE_CRYPTO_OPS_H
#define GRACE_CRYPTO_OPS_H

#include "kernels/layer.h"

#include "keystore.h"

#include <stdbool.h>
#include <stddef.h>

#define CRY_TOKEN_PREFIX "grace1"
#define CRY_SCHEME_AEAD "xchacha20poly1305"
#define CRY_SCHEME_SEALED "sealedbox"

/* With the newest version of an ed25519 key. */
int cry_sign(cry_store *s, const char *name, const unsigned char *data, size_t len,
	     unsigned char sig[crypto_sign_BYTES], unsigned *version, sdk_err *err);

/* `version` 0 tries every version, newest first. A signature that does not
 * verify is not an error: *valid is false and *matched 0. */
int cry_verify(cry_store *s, const char *name, const unsigned char *data, size_t len,
	       const unsigned char *sig, size_t sig_len, unsigned version, bool *valid,
	       unsigned *matched, sdk_err *err);

/* *token is a new string for free(). `aad` (may be NULL) is for symmetric
 * keys only. */
int cry_encrypt(cry_store *s, const char *name, const unsigned char *pt, size_t len,
		const unsigned char *aad, size_t aad_len, char **token, unsigned *version,
		sdk_err *err);

/* *pt is a new buffer for free() (wiped by the caller if it matters).
 * SDK_EINVAL for a malformed token or one for another kind of key,
 * CRY_EAUTH when it does not authenticate (wrong key, version or aad). */
int cry_decrypt(cry_store *s, const char *name, const char *token, const unsigned char *aad,
		size_t aad_len, unsigned char **pt, size_t *len, unsigned *version, sdk_err *err);

/* "sha256", "sha512" or "blake2b" (out_len 16..64, the others ignore it).
 * `out` holds 64 bytes; *n is the digest's length. */
int cry_hash(const char *algorithm, const unsigned char *data, size_t len, size_t out_len,
	     unsigned char out[64], size_t *n, sdk_err *err);

#endif
