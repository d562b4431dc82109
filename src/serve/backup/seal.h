/* A backup's keys: the operator's passphrase (Argon2id, its salt and costs
 * kept in the manifest) or a 32-byte key file gives a master key; from it
 * one subkey seals the secret files (XChaCha20-Poly1305) and one
 * authenticates the manifest (HMAC-SHA-512-256), so a changed manifest, a
 * changed file or a wrong passphrase are all refused before anything is
 * written. */
#ifndef GRACE_BACKUP_SEAL_H
#define GRACE_BACKUP_SEAL_H

#include "serve/layer.h"

#include "sdk/err.h"

#include <jansson.h>
#include <sodium.h>
#include <stdbool.h>
#include <stddef.h>

#define BK_KEY_BYTES 32
#define BK_PASSPHRASE_MIN 12
#define BK_PASSPHRASE_MAX 1024
/* A secret file (a key) is small; anything larger is not a key. */
#define BK_SECRET_MAX (1024 * 1024)

typedef struct bk_keys {
	unsigned char seal[BK_KEY_BYTES];
	unsigned char mac[crypto_auth_KEYBYTES];
} bk_keys;

/* A new "kdf" object for the manifest: {"alg":"argon2id13","salt":HEX,
 * "opslimit":N,"memlimit":N} with a fresh salt, or {"alg":"keyfile"}. */
json_t *bk_kdf_new(bool passphrase);
/* The keys from a passphrase under the manifest's kdf object. */
int bk_keys_from_passphrase(const char *pass, const json_t *kdf, bk_keys *out, sdk_err *e);
/* The keys from a 32-byte master key. */
void bk_keys_from_master(const unsigned char master[BK_KEY_BYTES], bk_keys *out);
/* A key given as 64 hex digits (a key file's text, surrounding whitespace
 * allowed), or exactly 32 raw bytes. */
int bk_master_parse(const unsigned char *in, size_t len, unsigned char master[BK_KEY_BYTES],
		    sdk_err *e);

/* A key file's key, as bk_master_parse reads it. private_only (a key read
 * by grace serve itself, from grace.ini) also refuses a file others may
 * read, and a symbolic link. */
int bk_master_read(const char *path, bool private_only, unsigned char master[BK_KEY_BYTES],
		   sdk_err *e);

/* Seals `len` bytes: *out is malloc'd (owned by the caller). */
int bk_seal(const bk_keys *k, const unsigned char *in, size_t len, unsigned char **out,
	    size_t *out_len, sdk_err *e);
/* Opens what bk_seal made: SDK_EDENIED when the key is wrong or the bytes
 * were changed. *out is malloc'd (owned by the caller). */
int bk_open(const bk_keys *k, const unsigned char *in, size_t len, unsigned char **out,
	    size_t *out_len, sdk_err *e);

/* The manifest's MAC, 64 hex digits and a NUL. */
void bk_mac(const bk_keys *k, const char *msg, size_t len, char hex[2 * crypto_auth_BYTES + 1]);
bool bk_mac_ok(const bk_keys *k, const char *msg, size_t len, const char *hex);

void bk_keys_wipe(bk_keys *k);

#endif
