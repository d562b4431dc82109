#include "serve/backup/seal.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stdlib.h>
#include <string.h>

/* A key file: 32 bytes, or 64 hex digits with some white space. */
#define KEY_FILE_MAX 256

/* Subkey ids and context under the master key (crypto_kdf). */
#define KDF_CONTEXT "grbackup"
#define SUBKEY_SEAL 1
#define SUBKEY_MAC 2

json_t *bk_kdf_new(bool passphrase)
{
	if (!passphrase)
		return json_pack("{s:s}", "alg", "keyfile");
	unsigned char salt[crypto_pwhash_SALTBYTES];
	char hex[2 * sizeof salt + 1];
	randombytes_buf(salt, sizeof salt);
	sodium_bin2hex(hex, sizeof hex, salt, sizeof salt);
	/* libsodium's interactive costs (64 MiB, 2 passes): derived in the main
	 * process while it serves, and again by `grace restore`; the manifest
	 * keeps them, so a later Grace may raise them for new backups. */
	return json_pack("{s:s, s:s, s:I, s:I}", "alg", "argon2id13", "salt", hex, "opslimit",
			 (json_int_t)crypto_pwhash_OPSLIMIT_INTERACTIVE, "memlimit",
			 (json_int_t)crypto_pwhash_MEMLIMIT_INTERACTIVE);
}

void bk_keys_from_master(const unsigned char master[BK_KEY_BYTES], bk_keys *out)
{
	crypto_kdf_derive_from_key(out->seal, sizeof out->seal, SUBKEY_SEAL, KDF_CONTEXT, master);
	crypto_kdf_derive_from_key(out->mac, sizeof out->mac, SUBKEY_MAC, KDF_CONTEXT, master);
}

int bk_keys_from_passphrase(const char *pass, const json_t *kdf, bk_keys *out, sdk_err *e)
{
	const char *alg = json_string_value(json_object_get(kdf, "alg"));
	const char *salt_hex = json_string_value(json_object_get(kdf, "salt"));
	json_int_t ops = json_integer_value(json_object_get(kdf, "opslimit"));
	json_int_t mem = json_integer_value(json_object_get(kdf, "memlimit"));
	unsigned char salt[crypto_pwhash_SALTBYTES];
	size_t n = 0;
	if (!alg || strcmp(alg, "argon2id13") || !salt_hex ||
	    sodium_hex2bin(salt, sizeof salt, salt_hex, strlen(salt_hex), NULL, &n, NULL) ||
	    n != sizeof salt || ops < (json_int_t)crypto_pwhash_OPSLIMIT_MIN ||
	    ops > (json_int_t)crypto_pwhash_OPSLIMIT_SENSITIVE ||
	    mem < (json_int_t)crypto_pwhash_MEMLIMIT_MIN ||
	    mem > (json_int_t)crypto_pwhash_MEMLIMIT_SENSITIVE)
		return sdk_fail(e, SDK_EINVAL, "the manifest's key derivation is not one Grace makes");
	size_t pl = strlen(pass);
	if (pl < BK_PASSPHRASE_MIN || pl > BK_PASSPHRASE_MAX)
		return sdk_fail(e, SDK_EINVAL, "a passphrase has %d to %d characters",
				BK_PASSPHRASE_MIN, BK_PASSPHRASE_MAX);
	unsigned char master[BK_KEY_BYTES];
	if (crypto_pwhash(master, sizeof master, pass, pl, salt, (unsigned long long)ops,
			  (size_t)mem, crypto_pwhash_ALG_ARGON2ID13) != 0)
		return sdk_fail(e, SDK_EIO, "out of memory deriving the key from the passphrase");
	bk_keys_from_master(master, out);
	sodium_memzero(master, sizeof master);
	return 0;
}

int bk_master_parse(const unsigned char *in, size_t len, unsigned char master[BK_KEY_BYTES],
		    sdk_err *e)
{
	if (len == BK_KEY_BYTES) {
		memcpy(master, in, BK_KEY_BYTES);
		return 0;
	}
	while (len && (in[len - 1] == '\n' || in[len - 1] == '\r' || in[len - 1] == ' '))
		len--;
	while (len && (in[0] == ' ' || in[0] == '\n')) {
		in++;
		len--;
	}
	size_t n = 0;
	if (len != 2 * BK_KEY_BYTES ||
	    sodium_hex2bin(master, BK_KEY_BYTES, (const char *)in, len, NULL, &n, NULL) ||
	    n != BK_KEY_BYTES)
		return sdk_fail(e, SDK_EINVAL,
				"a backup key is 32 bytes, or 64 hex digits (openssl rand -hex 32)");
	return 0;
}

int bk_master_read(const char *path, bool private_only, unsigned char master[BK_KEY_BYTES],
		   sdk_err *e)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | (private_only ? O_NOFOLLOW : 0));
	if (fd < 0)
		return sdk_fail(e, SDK_EINVAL, "cannot read the key file");
	struct stat sb;
	if (private_only && (fstat(fd, &sb) < 0 || (sb.st_mode & 077))) {
		close(fd);
		return sdk_fail(e, SDK_EINVAL, "it may be read by others (mode %03o): chmod 600 it",
				(unsigned)(sb.st_mode & 0777));
	}
	unsigned char raw[KEY_FILE_MAX];
	size_t n = 0;
	for (;;) {
		ssize_t r = read(fd, raw + n, sizeof raw - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
		if (n == sizeof raw)
			break;
	}
	close(fd);
	int rc = bk_master_parse(raw, n, master, e);
	sodium_memzero(raw, sizeof raw);
	return rc;
}

int bk_seal(const bk_keys *k, const unsigned char *in, size_t len, unsigned char **out,
	    size_t *out_len, sdk_err *e)
{
	if (len > BK_SECRET_MAX)
		return sdk_fail(e, SDK_ETOOLARGE, "a secret file of %zu bytes is no key", len);
	size_t n = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + len +
		   crypto_aead_xchacha20poly1305_ietf_ABYTES;
	unsigned char *b = malloc(n);
	if (!b)
		return sdk_fail(e, SDK_EIO, "out of memory");
	randombytes_buf(b, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
	unsigned long long cl = 0;
	crypto_aead_xchacha20poly1305_ietf_encrypt(b + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
						   &cl, in, len, NULL, 0, NULL, b, k->seal);
	*out = b;
	*out_len = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + (size_t)cl;
	return 0;
}

int bk_open(const bk_keys *k, const unsigned char *in, size_t len, unsigned char **out,
	    size_t *out_len, sdk_err *e)
{
	size_t over = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES +
		      crypto_aead_xchacha20poly1305_ietf_ABYTES;
	if (len < over || len > BK_SECRET_MAX + over)
		return sdk_fail(e, SDK_ECORRUPT, "a sealed secret of %zu bytes cannot be one", len);
	unsigned char *b = malloc(len - over + 1);
	if (!b)
		return sdk_fail(e, SDK_EIO, "out of memory");
	unsigned long long ml = 0;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(
		    b, &ml, NULL, in + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
		    len - crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, NULL, 0, in, k->seal) != 0) {
		free(b);
		return sdk_fail(e, SDK_EDENIED, "a secret does not open with this key");
	}
	*out = b;
	*out_len = (size_t)ml;
	return 0;
}

void bk_mac(const bk_keys *k, const char *msg, size_t len, char hex[2 * crypto_auth_BYTES + 1])
{
	unsigned char tag[crypto_auth_BYTES];
	crypto_auth(tag, (const unsigned char *)msg, len, k->mac);
	sodium_bin2hex(hex, 2 * crypto_auth_BYTES + 1, tag, sizeof tag);
}

bool bk_mac_ok(const bk_keys *k, const char *msg, size_t len, const char *hex)
{
	unsigned char tag[crypto_auth_BYTES];
	size_t n = 0;
	if (!hex || sodium_hex2bin(tag, sizeof tag, hex, strlen(hex), NULL, &n, NULL) ||
	    n != sizeof tag)
		return false;
	return crypto_auth_verify(tag, (const unsigned char *)msg, len, k->mac) == 0;
}

void bk_keys_wipe(bk_keys *k) { sodium_memzero(k, sizeof *k); }
