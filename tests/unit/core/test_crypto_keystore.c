/* Unit tests for the crypto kernel's key store, operations and key files:
 * secrets sealed at rest and bound to their key and version, the master key
 * check, rotation, the RFC 8032 Ed25519 vector, the draft XChaCha20-Poly1305
 * vector through the token format, sealed boxes, the RFC hash vectors, and
 * 0600 key files. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sdk/keyfile.h"
#include "kernels/crypto/ops.h"

struct fx {
	sqlite3 *db;
	cry_store *s;
	unsigned char master[CRY_MASTER_BYTES];
	sdk_err err;
	char dir[64];
};

static void unhex(const char *hex, unsigned char *out, size_t want)
{
	size_t len;
	assert_int_equal(sodium_hex2bin(out, want, hex, strlen(hex), NULL, &len, NULL), 0);
	assert_int_equal(len, want);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	assert_non_null(f);
	assert_int_equal(sqlite3_open(":memory:", &f->db), SQLITE_OK);
	sqlite3_extended_result_codes(f->db, 1);
	randombytes_buf(f->master, sizeof f->master);
	assert_int_equal(cry_store_open(f->db, f->master, &f->s, &f->err), 0);
	snprintf(f->dir, sizeof f->dir, "/tmp/grace-crypto-test-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	cry_store_close(f->s);
	assert_int_equal(sqlite3_close(f->db), SQLITE_OK);
	char p[PATH_MAX + 16];
	snprintf(p, sizeof p, "%s/key", f->dir);
	unlink(p);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void create(struct fx *f, const char *name, enum cry_type t, const unsigned char *import)
{
	json_t *out;
	assert_int_equal(cry_key_create(f->s, name, t, import, 1000, &out, &f->err), 0);
	json_decref(out);
}

/* The sealed blob of one version, straight from the table. */
static size_t sealed_of(struct fx *f, const char *name, int version, unsigned char *out,
			size_t cap)
{
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(f->db, "SELECT sealed FROM key_versions"
						   " WHERE name = ?1 AND version = ?2", -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, version);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	size_t n = (size_t)sqlite3_column_bytes(st, 0);
	assert_true(n <= cap);
	memcpy(out, sqlite3_column_blob(st, 0), n);
	sqlite3_finalize(st);
	return n;
}

static void set_sealed(struct fx *f, const char *name, int version, const unsigned char *blob,
		       size_t n)
{
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(f->db, "UPDATE key_versions SET sealed = ?3"
						   " WHERE name = ?1 AND version = ?2", -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, version);
	sqlite3_bind_blob(st, 3, blob, (int)n, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
}

static const char rfc8032_seed[] =
	"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
static const char rfc8032_pk[] =
	"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
static const char rfc8032_sig[] =
	"e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e3970"
	"1cf9b46bd25bf5f0595bbe24655141438e7a100b";

/* ---- sealing */

static void test_secrets_are_sealed(void **state)
{
	struct fx *f = *state;
	unsigned char seed[32];
	unhex(rfc8032_seed, seed, sizeof seed);
	create(f, "signer", CRY_ED25519, seed);
	unsigned char blob[128];
	size_t n = sealed_of(f, "signer", 1, blob, sizeof blob);
	assert_int_equal(n, 24 + 32 + 16);
	assert_null(memmem(blob, n, seed, sizeof seed));
	unsigned char got[CRY_SECRET_BYTES];
	assert_int_equal(cry_key_secret(f->s, "signer", 1, got, &f->err), 0);
	assert_memory_equal(got, seed, sizeof seed);
	/* Two sealings of the same secret differ (fresh nonces). */
	create(f, "twin", CRY_ED25519, seed);
	unsigned char blob2[128];
	sealed_of(f, "twin", 1, blob2, sizeof blob2);
	assert_memory_not_equal(blob, blob2, n);
}

static void test_sealed_secret_is_bound_to_its_row(void **state)
{
	struct fx *f = *state;
	create(f, "a", CRY_SYMMETRIC, NULL);
	create(f, "b", CRY_SYMMETRIC, NULL);
	json_t *out;
	assert_int_equal(cry_key_rotate(f->s, "a", NULL, 2000, &out, &f->err), 0);
	json_decref(out);
	unsigned char a1[128], a2[128], b1[128], key[CRY_SECRET_BYTES];
	size_t n = sealed_of(f, "a", 1, a1, sizeof a1);
	sealed_of(f, "a", 2, a2, sizeof a2);
	sealed_of(f, "b", 1, b1, sizeof b1);
	/* a's secret copied onto b does not open as b's. */
	set_sealed(f, "b", 1, a1, n);
	assert_int_equal(cry_key_secret(f->s, "b", 1, key, &f->err), CRY_ESEALED);
	/* Nor does version 1 opened as version 2. */
	set_sealed(f, "a", 2, a1, n);
	assert_int_equal(cry_key_secret(f->s, "a", 2, key, &f->err), CRY_ESEALED);
	/* A flipped bit does not open. */
	set_sealed(f, "a", 2, a2, n);
	assert_int_equal(cry_key_secret(f->s, "a", 2, key, &f->err), 0);
	a2[30] ^= 1;
	set_sealed(f, "a", 2, a2, n);
	assert_int_equal(cry_key_secret(f->s, "a", 2, key, &f->err), CRY_ESEALED);
	set_sealed(f, "a", 2, a2, n - 1);
	assert_int_equal(cry_key_secret(f->s, "a", 2, key, &f->err), CRY_ESEALED);
	assert_int_equal(cry_key_secret(f->s, "a", 1, key, &f->err), 0);
}

static void test_master_key_check(void **state)
{
	struct fx *f = *state;
	create(f, "k", CRY_X25519, NULL);
	bool in_use = false;
	assert_int_equal(cry_store_in_use(f->db, &in_use, &f->err), 0);
	assert_true(in_use);
	unsigned char other[CRY_MASTER_BYTES];
	randombytes_buf(other, sizeof other);
	cry_store *s2 = NULL;
	assert_int_equal(cry_store_open(f->db, other, &s2, &f->err), CRY_EAUTH);
	assert_null(s2);
	assert_int_equal(cry_store_open(f->db, f->master, &s2, &f->err), 0);
	unsigned char key[CRY_SECRET_BYTES];
	assert_int_equal(cry_key_secret(s2, "k", 1, key, &f->err), 0);
	cry_store_close(s2);

	sqlite3 *fresh;
	assert_int_equal(sqlite3_open(":memory:", &fresh), SQLITE_OK);
	assert_int_equal(cry_store_schema(fresh, &f->err), 0);
	assert_int_equal(cry_store_in_use(fresh, &in_use, &f->err), 0);
	assert_false(in_use);
	sqlite3_close(fresh);
}

/* ---- keys */

static void test_keys_create_list_get_rotate(void **state)
{
	struct fx *f = *state;
	unsigned char seed[32], pk[32];
	unhex(rfc8032_seed, seed, sizeof seed);
	unhex(rfc8032_pk, pk, sizeof pk);
	json_t *out;
	assert_int_equal(cry_key_create(f->s, "ed", CRY_ED25519, seed, 1, &out, &f->err), 0);
	char b64[64];
	sodium_bin2base64(b64, sizeof b64, pk, sizeof pk, sodium_base64_VARIANT_ORIGINAL);
	json_t *v1 = json_array_get(json_object_get(out, "versions"), 0);
	assert_string_equal(json_string_value(json_object_get(v1, "public_key")), b64);
	/* Only public parts: no field carries the seed. */
	char *text = json_dumps(out, 0);
	char seed_b64[64];
	sodium_bin2base64(seed_b64, sizeof seed_b64, seed, sizeof seed, sodium_base64_VARIANT_ORIGINAL);
	assert_null(strstr(text, seed_b64));
	free(text);
	json_decref(out);

	assert_int_equal(cry_key_create(f->s, "ed", CRY_SYMMETRIC, NULL, 1, &out, &f->err),
			 CRY_EEXIST);
	assert_int_equal(cry_key_create(f->s, "bad/name", CRY_SYMMETRIC, NULL, 1, &out, &f->err),
			 SDK_EINVAL);
	assert_int_equal(cry_key_create(f->s, ".hidden", CRY_SYMMETRIC, NULL, 1, &out, &f->err),
			 SDK_EINVAL);
	create(f, "sym", CRY_SYMMETRIC, NULL);

	assert_int_equal(cry_key_rotate(f->s, "sym", NULL, 2, &out, &f->err), 0);
	assert_int_equal(json_integer_value(json_object_get(out, "latest_version")), 2);
	assert_int_equal(json_array_size(json_object_get(out, "versions")), 2);
	assert_null(json_object_get(json_array_get(json_object_get(out, "versions"), 0),
				    "public_key"));
	json_decref(out);
	assert_int_equal(cry_key_rotate(f->s, "nope", NULL, 2, &out, &f->err), SDK_ENOTFOUND);

	assert_int_equal(cry_key_list(f->s, &out, &f->err), 0);
	json_t *keys = json_object_get(out, "keys");
	assert_int_equal(json_array_size(keys), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(keys, 0), "name")), "ed");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(keys, 1),
							     "latest_version")), 2);
	json_decref(out);
	assert_int_equal(cry_key_get(f->s, "nope", &out, &f->err), SDK_ENOTFOUND);
}

static void test_names_and_types(void **state)
{
	(void)state;
	assert_true(cry_name_valid("a"));
	assert_true(cry_name_valid("svc.audit-log_v2"));
	assert_false(cry_name_valid(""));
	assert_false(cry_name_valid(".x"));
	assert_false(cry_name_valid("a b"));
	assert_false(cry_name_valid("a/b"));
	char longname[CRY_NAME_MAX + 2];
	memset(longname, 'x', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	assert_false(cry_name_valid(longname));
	longname[CRY_NAME_MAX] = '\0';
	assert_true(cry_name_valid(longname));
	enum cry_type t;
	assert_int_equal(cry_type_parse("x25519", &t), 0);
	assert_int_equal(t, CRY_X25519);
	assert_int_equal(cry_type_parse("rsa", &t), SDK_EINVAL);
	assert_string_equal(cry_type_name(CRY_SYMMETRIC), "symmetric");
}

/* ---- operations */

static void test_sign_rfc8032_and_rotation(void **state)
{
	struct fx *f = *state;
	unsigned char seed[32], want[64], sig[64];
	unhex(rfc8032_seed, seed, sizeof seed);
	unhex(rfc8032_sig, want, sizeof want);
	create(f, "ed", CRY_ED25519, seed);
	unsigned version;
	assert_int_equal(cry_sign(f->s, "ed", (const unsigned char *)"", 0, sig, &version, &f->err), 0);
	assert_int_equal(version, 1);
	assert_memory_equal(sig, want, sizeof want);

	bool valid;
	unsigned matched;
	assert_int_equal(cry_verify(f->s, "ed", (const unsigned char *)"", 0, sig, 64, 0, &valid,
				    &matched, &f->err), 0);
	assert_true(valid);
	assert_int_equal(matched, 1);

	json_t *out;
	assert_int_equal(cry_key_rotate(f->s, "ed", NULL, 2, &out, &f->err), 0);
	json_decref(out);
	unsigned char sig2[64];
	assert_int_equal(cry_sign(f->s, "ed", (const unsigned char *)"", 0, sig2, &version, &f->err),
			 0);
	assert_int_equal(version, 2);
	assert_memory_not_equal(sig, sig2, 64);
	assert_int_equal(cry_verify(f->s, "ed", (const unsigned char *)"", 0, sig, 64, 0, &valid,
				    &matched, &f->err), 0);
	assert_true(valid);
	assert_int_equal(matched, 1);
	assert_int_equal(cry_verify(f->s, "ed", (const unsigned char *)"", 0, sig, 64, 2, &valid,
				    &matched, &f->err), 0);
	assert_false(valid);
	assert_int_equal(cry_verify(f->s, "ed", (const unsigned char *)"x", 1, sig2, 64, 0, &valid,
				    &matched, &f->err), 0);
	assert_false(valid);
	assert_int_equal(matched, 0);
	assert_int_equal(cry_verify(f->s, "ed", (const unsigned char *)"", 0, sig, 63, 0, &valid,
				    &matched, &f->err), SDK_EINVAL);
	assert_int_equal(cry_verify(f->s, "ed", (const unsigned char *)"", 0, sig, 64, 3, &valid,
				    &matched, &f->err), SDK_ENOTFOUND);
	create(f, "sym", CRY_SYMMETRIC, NULL);
	assert_int_equal(cry_sign(f->s, "sym", (const unsigned char *)"", 0, sig, &version, &f->err),
			 SDK_EINVAL);
	assert_int_equal(cry_sign(f->s, "nope", (const unsigned char *)"", 0, sig, &version, &f->err),
			 SDK_ENOTFOUND);
}

static void test_aead_draft_vector_through_a_token(void **state)
{
	struct fx *f = *state;
	unsigned char key[32], payload[24 + 114 + 16], aad[12];
	for (int i = 0; i < 32; i++)
		key[i] = (unsigned char)(0x80 + i);
	for (int i = 0; i < 24; i++)
		payload[i] = (unsigned char)(0x40 + i);
	unhex("bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb"
	      "731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452"
	      "2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9"
	      "21f9664c97637da9768812f615c68b13b52ec0875924c1c7987947deafd8780acf49",
	      payload + 24, 114 + 16);
	unhex("50515253c0c1c2c3c4c5c6c7", aad, sizeof aad);
	create(f, "draft", CRY_SYMMETRIC, key);
	char token[512] = "grace1.xchacha20poly1305.1.";
	size_t h = strlen(token);
	sodium_bin2base64(token + h, sizeof token - h, payload, sizeof payload,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	unsigned char *pt;
	size_t len;
	unsigned version;
	assert_int_equal(cry_decrypt(f->s, "draft", token, aad, sizeof aad, &pt, &len, &version,
				     &f->err), 0);
	static const char want[] = "Ladies and Gentlemen of the class of '99: If I could offer you"
				   " only one tip for the future, sunscreen would be it.";
	assert_int_equal(len, sizeof want - 1);
	assert_memory_equal(pt, want, len);
	free(pt);
	assert_int_equal(cry_decrypt(f->s, "draft", token, NULL, 0, &pt, &len, &version, &f->err),
			 CRY_EAUTH);
}

static void test_encrypt_decrypt(void **state)
{
	struct fx *f = *state;
	create(f, "sym", CRY_SYMMETRIC, NULL);
	create(f, "box", CRY_X25519, NULL);
	create(f, "ed", CRY_ED25519, NULL);
	const unsigned char msg[] = "meet at noon";
	char *tok, *tok_box;
	unsigned version;
	assert_int_equal(cry_encrypt(f->s, "sym", msg, sizeof msg, (const unsigned char *)"ad", 2,
				     &tok, &version, &f->err), 0);
	assert_int_equal(strncmp(tok, "grace1.xchacha20poly1305.1.", 27), 0);
	assert_int_equal(cry_encrypt(f->s, "box", msg, sizeof msg, NULL, 0, &tok_box, &version,
				     &f->err), 0);
	assert_int_equal(strncmp(tok_box, "grace1.sealedbox.1.", 19), 0);
	char *unused;
	assert_int_equal(cry_encrypt(f->s, "box", msg, 1, (const unsigned char *)"", 0, &unused,
				     &version, &f->err), SDK_EINVAL);
	assert_int_equal(cry_encrypt(f->s, "ed", msg, 1, NULL, 0, &unused, &version, &f->err),
			 SDK_EINVAL);

	json_t *out;
	assert_int_equal(cry_key_rotate(f->s, "sym", NULL, 2, &out, &f->err), 0);
	json_decref(out);
	assert_int_equal(cry_key_rotate(f->s, "box", NULL, 2, &out, &f->err), 0);
	json_decref(out);

	unsigned char *pt;
	size_t len;
	assert_int_equal(cry_decrypt(f->s, "sym", tok, (const unsigned char *)"ad", 2, &pt, &len,
				     &version, &f->err), 0);
	assert_int_equal(version, 1);
	assert_int_equal(len, sizeof msg);
	assert_memory_equal(pt, msg, len);
	free(pt);
	assert_int_equal(cry_decrypt(f->s, "box", tok_box, NULL, 0, &pt, &len, &version, &f->err), 0);
	assert_memory_equal(pt, msg, len);
	free(pt);
	assert_int_equal(cry_decrypt(f->s, "sym", tok, (const unsigned char *)"AD", 2, &pt, &len,
				     &version, &f->err), CRY_EAUTH);
	assert_int_equal(cry_decrypt(f->s, "sym", tok_box, NULL, 0, &pt, &len, &version, &f->err),
			 SDK_EINVAL);
	assert_int_equal(cry_decrypt(f->s, "box", tok, NULL, 0, &pt, &len, &version, &f->err),
			 SDK_EINVAL);

	static const char *const malformed[] = {
		"", "grace1", "grace1.xchacha20poly1305", "grace1.xchacha20poly1305.1",
		"grace2.xchacha20poly1305.1.AAAA", "grace1.xchacha20poly1305.0.AAAA",
		"grace1.xchacha20poly1305.01.AAAA", "grace1.xchacha20poly1305.x.AAAA",
		"grace1.xchacha20poly1305.1.A+/=", "grace1.xchacha20poly1305.1.AAAA",
		"grace1.xchacha20poly1305.99999999999.AAAA",
	};
	for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++)
		assert_int_equal(cry_decrypt(f->s, "sym", malformed[i], NULL, 0, &pt, &len, &version,
					     &f->err), SDK_EINVAL);
	/* A version the key does not have. */
	char other[512];
	snprintf(other, sizeof other, "grace1.xchacha20poly1305.7.%s", tok + 27);
	assert_int_equal(cry_decrypt(f->s, "sym", other, NULL, 0, &pt, &len, &version, &f->err),
			 SDK_ENOTFOUND);
	free(tok);
	free(tok_box);
}

static void hash_is(const char *alg, const char *data, size_t out_len, const char *hex)
{
	unsigned char out[64];
	size_t n;
	sdk_err e;
	assert_int_equal(cry_hash(alg, (const unsigned char *)data, strlen(data), out_len, out, &n,
				  &e), 0);
	char got[129];
	sodium_bin2hex(got, sizeof got, out, n);
	assert_string_equal(got, hex);
}

static void test_hashes(void **state)
{
	(void)state;
	hash_is("sha256", "abc", 0,
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	hash_is("sha512", "abc", 0,
		"ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
		"2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f");
	/* RFC 7693 appendix A: BLAKE2b-512("abc"). */
	hash_is("blake2b", "abc", 64,
		"ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1"
		"7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923");
	unsigned char out[64];
	size_t n;
	sdk_err e;
	assert_int_equal(cry_hash("md5", (const unsigned char *)"", 0, 0, out, &n, &e), SDK_EINVAL);
	assert_int_equal(cry_hash("blake2b", (const unsigned char *)"", 0, 15, out, &n, &e),
			 SDK_EINVAL);
	assert_int_equal(cry_hash("blake2b", (const unsigned char *)"", 0, 65, out, &n, &e),
			 SDK_EINVAL);
}

/* ---- key files */

static void test_keyfile(void **state)
{
	struct fx *f = *state;
	char path[PATH_MAX + 16];
	sdk_err err;
	snprintf(path, sizeof path, "%s/key", f->dir);
	unsigned char secret[32], got[32];
	randombytes_buf(secret, sizeof secret);
	assert_int_equal(keyfile_read(path, got, sizeof got, &err), SDK_ENOTFOUND);
	mode_t old = umask(0);
	assert_int_equal(keyfile_create(path, secret, sizeof secret, &err), 0);
	umask(old);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(keyfile_read(path, got, sizeof got, &err), 0);
	assert_memory_equal(got, secret, sizeof got);
	/* Never replaced. */
	assert_int_equal(keyfile_create(path, got, sizeof got, &err), SDK_EIO);
	/* Loose modes and wrong sizes are refused. */
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(keyfile_read(path, got, sizeof got, &err), SDK_EIO);
	assert_non_null(strstr(err.msg, "0600"));
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(keyfile_read(path, got, 16, &err), SDK_EIO);
	assert_int_equal(keyfile_read(f->dir, got, sizeof got, &err), SDK_EIO);
}

/* Deletion under a fake clock: pending refuses every use, cancel restores,
 * destruction comes exactly at the window's end and leaves a tombstone,
 * and each step is one audit event in the outbox. */
static void test_deletion(void **state)
{
	struct fx *f = *state;
	json_t *out = NULL;
	const cry_actor ann = { .user = "ann", .caller = "gateway" };
	assert_int_equal(cry_key_create(f->s, "k", CRY_ED25519, NULL, 1000, &out, &f->err), 0);
	json_decref(out);
	assert_int_equal(cry_key_schedule_deletion(f->s, "k", 60, &ann, 2000, &out, &f->err), 0);
	assert_string_equal(json_string_value(json_object_get(out, "state")), "pending_deletion");
	assert_int_equal(json_integer_value(json_object_get(out, "deletion_at")), 62000);
	json_decref(out);
	unsigned char sig[crypto_sign_BYTES];
	unsigned v;
	assert_int_equal(cry_sign(f->s, "k", (const unsigned char *)"m", 1, sig, &v, &f->err),
			 CRY_EPENDING);
	assert_int_equal(cry_key_rotate(f->s, "k", NULL, 3000, &out, &f->err), CRY_EPENDING);
	assert_int_equal(cry_key_schedule_deletion(f->s, "k", 60, &ann, 3000, &out, &f->err),
			 CRY_EPENDING);
	/* Cancel, then schedule again. */
	assert_int_equal(cry_key_cancel_deletion(f->s, "k", &ann, 4000, &out, &f->err), 0);
	assert_string_equal(json_string_value(json_object_get(out, "state")), "enabled");
	assert_null(json_object_get(out, "deletion_at"));
	json_decref(out);
	assert_int_equal(cry_key_cancel_deletion(f->s, "k", &ann, 4000, &out, &f->err),
			 SDK_ECONFLICT);
	assert_int_equal(cry_sign(f->s, "k", (const unsigned char *)"m", 1, sig, &v, &f->err), 0);
	assert_int_equal(cry_key_schedule_deletion(f->s, "k", 10, &ann, 5000, &out, &f->err), 0);
	json_decref(out);
	/* Not a millisecond early. */
	assert_int_equal(cry_key_destroy_due(f->s, 14999, &f->err), 0);
	assert_int_equal(cry_key_destroy_due(f->s, 15000, &f->err), 1);
	assert_int_equal(cry_key_destroy_due(f->s, 16000, &f->err), 0);
	cry_key_info info;
	assert_int_equal(cry_key_info_get(f->s, "k", &info, &f->err), CRY_EGONE);
	assert_int_equal(cry_key_get(f->s, "k", &out, &f->err), CRY_EGONE);
	assert_int_equal(cry_key_cancel_deletion(f->s, "k", &ann, 17000, &out, &f->err), CRY_EGONE);
	assert_int_equal(cry_key_create(f->s, "k", CRY_SYMMETRIC, NULL, 18000, &out, &f->err),
			 CRY_EEXIST);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(f->db, "SELECT count(*) FROM key_versions", -1, &st,
					    NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 0);
	sqlite3_finalize(st);
	/* scheduled, cancelled, scheduled, destroyed: in order, then sent. */
	int64_t upto;
	assert_int_equal(cry_outbox(f->s, 100, &out, &upto, &f->err), 0);
	static const char *const want[] = { "crypto.key.deletion_scheduled",
					    "crypto.key.deletion_cancelled",
					    "crypto.key.deletion_scheduled", "crypto.key.destroyed" };
	assert_int_equal(json_array_size(out), 4);
	for (size_t i = 0; i < 4; i++)
		assert_string_equal(json_string_value(json_object_get(json_array_get(out, i), "action")),
				    want[i]);
	assert_string_equal(json_string_value(json_object_get(json_array_get(out, 0), "actor")),
			    "ann");
	assert_string_equal(json_string_value(json_object_get(json_array_get(out, 3), "actor")),
			    "crypto");
	json_decref(out);
	assert_int_equal(cry_outbox_sent(f->s, upto, &f->err), 0);
	assert_int_equal(cry_outbox(f->s, 100, &out, &upto, &f->err), 0);
	assert_int_equal(json_array_size(out), 0);
	json_decref(out);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_secrets_are_sealed),
		T(test_sealed_secret_is_bound_to_its_row),
		T(test_master_key_check),
		T(test_keys_create_list_get_rotate),
		cmocka_unit_test(test_names_and_types),
		T(test_sign_rfc8032_and_rotation),
		T(test_aead_draft_vector_through_a_token),
		T(test_encrypt_decrypt),
		cmocka_unit_test(test_hashes),
		T(test_keyfile),
		T(test_deletion),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
