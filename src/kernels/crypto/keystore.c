/* The crypto kernel's key store (see keystore.h).
 *
 * A secret is sealed with XChaCha20-Poly1305 under the master key, with a
 * fresh random nonce, and with associated data naming the key, its type and
 * its version: a sealed secret copied onto another key's row, or another
 * version, does not open. A known value sealed the same way (meta
 * 'master_check') tells at start whether the master key on disk is the one
 * the database was sealed with. */
#include "sdk/err.h"
#include "keystore.h"

#include "sdk/db.h"
#include "sdk/rfc3339.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#define CRY_NONCE_BYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define CRY_SEALED_BYTES \
	(CRY_NONCE_BYTES + CRY_SECRET_BYTES + crypto_aead_xchacha20poly1305_ietf_ABYTES)
#define CRY_LABEL_MAX 128
#define CRY_CHECK_LABEL "master-check"

/* The tables at crypto_kernel's .schema_version (crypto.c): a change is a
 * new step there and a new fixture directory (docs/upgrades.md); the
 * runtime migrates before init, this runs on every open after it. */
static const char cry_schema[] =
	"CREATE TABLE IF NOT EXISTS keys ("
	"  name TEXT PRIMARY KEY,"
	"  type TEXT NOT NULL CHECK (type IN ('ed25519', 'x25519', 'symmetric')),"
	"  created_at INTEGER NOT NULL,"
	"  deletion_at INTEGER NULL" /* version 2: a pending deletion's due time */
	");"
	"CREATE TABLE IF NOT EXISTS key_versions ("
	"  name TEXT NOT NULL REFERENCES keys (name),"
	"  version INTEGER NOT NULL CHECK (version >= 1),"
	"  public_key BLOB NULL,"
	"  sealed BLOB NOT NULL,"
	"  created_at INTEGER NOT NULL,"
	"  PRIMARY KEY (name, version)"
	") WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS meta ("
	"  key TEXT PRIMARY KEY,"
	"  value BLOB NOT NULL"
	");"
	/* Destroyed keys: their names are never reused, and a use says when
	 * the key went. */
	"CREATE TABLE IF NOT EXISTS key_tombstones ("
	"  name TEXT PRIMARY KEY,"
	"  type TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL,"
	"  destroyed_at INTEGER NOT NULL"
	");"
	/* Audit events, written with the step they record, sent by a timer. */
	"CREATE TABLE IF NOT EXISTS audit_outbox ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  event TEXT NOT NULL"
	");";

/* Version 2 gave keys a pending deletion's due time; a new file gets it
 * in its CREATE TABLE. */
const sdk_mig_step cry_migrations[CRY_SCHEMA_VERSION] = {
	{ .what = "(stamp: an unversioned file has version 1's tables)" },
	{ .sql = "ALTER TABLE keys ADD COLUMN deletion_at INTEGER NULL",
	  .what = "(keys.deletion_at: a pending deletion's due time)" },
};

static int cry_tombstone(cry_store *s, const char *name, int64_t *destroyed_at, sdk_err *err);

struct cry_store {
	sqlite3 *db;
	unsigned char *master; /* sodium_malloc'd, read-only */
};

static const char *const cry_type_names[] = {
	[CRY_ED25519] = "ed25519",
	[CRY_X25519] = "x25519",
	[CRY_SYMMETRIC] = "symmetric",
};

static int cry_fail_sql(sqlite3 *db, sdk_err *err, const char *what)
{
	return sdk_db_fail(db, err, what);
}

const char *cry_type_name(enum cry_type t)
{
	return (unsigned)t < sizeof cry_type_names / sizeof cry_type_names[0] ? cry_type_names[t] :
										 "unknown";
}

int cry_type_parse(const char *s, enum cry_type *out)
{
	for (size_t i = 0; s && i < sizeof cry_type_names / sizeof cry_type_names[0]; i++) {
		if (!strcmp(s, cry_type_names[i])) {
			*out = (enum cry_type)i;
			return 0;
		}
	}
	return SDK_EINVAL;
}

/* Names appear in URLs (/keys/NAME), so they are kept to a safe alphabet. */
bool cry_name_valid(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (n == 0 || n > CRY_NAME_MAX || name[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* ---- sealing */

static size_t cry_key_label(char out[CRY_LABEL_MAX], const char *name, enum cry_type t,
			    unsigned version)
{
	/* The NULs around fields keep "a" + "b:c" distinct from "a:b" + "c". */
	int n = snprintf(out, CRY_LABEL_MAX, "grace-crypto/v1/key%c%s%c%s%c%u", 0, name, 0,
			 cry_type_name(t), 0, version);
	return n < 0 ? 0 : (size_t)n;
}

static void cry_seal(const cry_store *s, const char *label, size_t label_len,
		     const unsigned char secret[CRY_SECRET_BYTES],
		     unsigned char out[CRY_SEALED_BYTES])
{
	randombytes_buf(out, CRY_NONCE_BYTES);
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + CRY_NONCE_BYTES, NULL, secret,
						   CRY_SECRET_BYTES, (const unsigned char *)label,
						   label_len, NULL, out, s->master);
}

static int cry_unseal(const cry_store *s, const char *label, size_t label_len,
		      const unsigned char *sealed, size_t sealed_len,
		      unsigned char secret[CRY_SECRET_BYTES])
{
	if (sealed_len != CRY_SEALED_BYTES)
		return CRY_EAUTH;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(
		    secret, NULL, NULL, sealed + CRY_NONCE_BYTES, sealed_len - CRY_NONCE_BYTES,
		    (const unsigned char *)label, label_len, sealed, s->master) < 0) {
		sodium_memzero(secret, CRY_SECRET_BYTES);
		return CRY_EAUTH;
	}
	return 0;
}

/* ---- schema and master key */

int cry_store_schema(sqlite3 *db, sdk_err *err)
{
	if (sqlite3_exec(db, cry_schema, NULL, NULL, NULL) != SQLITE_OK)
		return cry_fail_sql(db, err, "creating the schema");
	return 0;
}

int cry_store_in_use(sqlite3 *db, bool *out, sdk_err *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "SELECT EXISTS (SELECT 1 FROM key_versions)"
			       " OR EXISTS (SELECT 1 FROM meta WHERE key = '" CRY_CHECK_LABEL "')",
			       -1, &st, NULL) != SQLITE_OK)
		return cry_fail_sql(db, err, "looking for sealed keys");
	int rc = sqlite3_step(st);
	*out = rc == SQLITE_ROW && sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : cry_fail_sql(db, err, "looking for sealed keys");
}

/* Checks the master key against the sealed check value, writing one when
 * the database has none yet. */
static int cry_master_check(cry_store *s, sdk_err *err)
{
	static const char label[] = "grace-crypto/v1/" CRY_CHECK_LABEL;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE key = '" CRY_CHECK_LABEL "'",
			       -1, &st, NULL) != SQLITE_OK)
		return cry_fail_sql(s->db, err, "reading the master check");
	int rc = sqlite3_step(st);
	unsigned char probe[CRY_SECRET_BYTES];
	if (rc == SQLITE_ROW) {
		int ok = cry_unseal(s, label, sizeof label - 1, sqlite3_column_blob(st, 0),
				    (size_t)sqlite3_column_bytes(st, 0), probe);
		sqlite3_finalize(st);
		sodium_memzero(probe, sizeof probe);
		if (ok)
			return sdk_fail(err, CRY_EAUTH,
					"the master key does not open this database's keys"
					" (crypto.master was replaced?)");
		return 0;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return cry_fail_sql(s->db, err, "reading the master check");
	unsigned char sealed[CRY_SEALED_BYTES];
	memset(probe, 0, sizeof probe);
	cry_seal(s, label, sizeof label - 1, probe, sealed);
	if (sqlite3_prepare_v2(s->db, "INSERT INTO meta (key, value) VALUES ('" CRY_CHECK_LABEL "', ?1)",
			       -1, &st, NULL) != SQLITE_OK)
		return cry_fail_sql(s->db, err, "writing the master check");
	sqlite3_bind_blob(st, 1, sealed, sizeof sealed, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : cry_fail_sql(s->db, err, "writing the master check");
}

int cry_store_open(sqlite3 *db, const unsigned char master[CRY_MASTER_BYTES], cry_store **out,
		   sdk_err *err)
{
	int rc = cry_store_schema(db, err);
	if (rc)
		return rc;
	cry_store *s = calloc(1, sizeof *s);
	if (!s)
		return sdk_fail(err, SDK_EIO, "out of memory");
	s->db = db;
	/* Guard pages around it, out of swap where the system allows. */
	s->master = sodium_malloc(CRY_MASTER_BYTES);
	if (!s->master) {
		free(s);
		return sdk_fail(err, SDK_EIO, "cannot allocate guarded memory for the master key");
	}
	memcpy(s->master, master, CRY_MASTER_BYTES);
	sodium_mprotect_readonly(s->master);
	/* A destroyed key's rows are overwritten, not only unlinked. */
	if (sqlite3_exec(db, "PRAGMA secure_delete = ON", NULL, NULL, NULL) != SQLITE_OK) {
		cry_store_close(s);
		return cry_fail_sql(db, err, "turning secure_delete on");
	}
	rc = cry_master_check(s, err);
	if (rc) {
		cry_store_close(s);
		return rc;
	}
	*out = s;
	return 0;
}

void cry_store_close(cry_store *s)
{
	if (!s)
		return;
	sodium_free(s->master); /* wipes it */
	free(s);
}

/* ---- keys */

static int cry_begin(cry_store *s, sdk_err *err)
{
	if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return cry_fail_sql(s->db, err, "starting a transaction");
	return 0;
}

static int cry_end(cry_store *s, int rc, sdk_err *err)
{
	if (rc == 0 && sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		rc = cry_fail_sql(s->db, err, "committing");
	if (rc)
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

static void cry_public_of(enum cry_type t, const unsigned char secret[CRY_SECRET_BYTES],
			  unsigned char pk[CRY_PUBLIC_BYTES])
{
	if (t == CRY_ED25519) {
		unsigned char sk[crypto_sign_SECRETKEYBYTES];
		crypto_sign_seed_keypair(pk, sk, secret);
		sodium_memzero(sk, sizeof sk);
	} else if (t == CRY_X25519) {
		crypto_scalarmult_base(pk, secret);
	}
}

/* Inserts one sealed version of `name`. */
static int cry_version_insert(cry_store *s, const char *name, enum cry_type t, unsigned version,
			      const unsigned char *import, int64_t now_ms, sdk_err *err)
{
	unsigned char secret[CRY_SECRET_BYTES], pk[CRY_PUBLIC_BYTES], sealed[CRY_SEALED_BYTES];
	if (import)
		memcpy(secret, import, sizeof secret);
	else
		randombytes_buf(secret, sizeof secret);
	cry_public_of(t, secret, pk);
	char label[CRY_LABEL_MAX];
	size_t label_len = cry_key_label(label, name, t, version);
	cry_seal(s, label, label_len, secret, sealed);
	sodium_memzero(secret, sizeof secret);

	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db,
			       "INSERT INTO key_versions (name, version, public_key, sealed,"
			       " created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
			       -1, &st, NULL) != SQLITE_OK)
		return cry_fail_sql(s->db, err, "storing a key version");
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, version);
	if (t != CRY_SYMMETRIC)
		sqlite3_bind_blob(st, 3, pk, sizeof pk, SQLITE_STATIC);
	sqlite3_bind_blob(st, 4, sealed, sizeof sealed, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, now_ms);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : cry_fail_sql(s->db, err, "storing a key version");
}

int cry_key_create(cry_store *s, const char *name, enum cry_type type,
		   const unsigned char *import, int64_t now_ms, json_t **out, sdk_err *err)
{
	if (!cry_name_valid(name))
		return sdk_fail(err, SDK_EINVAL,
				"a key name is 1 to %d letters, digits, '.', '_' or '-' and does"
				" not start with '.'",
				CRY_NAME_MAX);
	int rc = cry_begin(s, err);
	if (rc)
		return rc;
	/* A destroyed key's name stays its own: an old ciphertext or
	 * signature never meets a new key under the same name. */
	int64_t gone_at = 0;
	rc = cry_tombstone(s, name, &gone_at, err);
	if (rc > 0) {
		char when[40];
		rc = sdk_fail(err, CRY_EEXIST,
			      "a key named %s existed and was destroyed at %s; names are not reused",
			      name, sdk_rfc3339_format_ms(gone_at, SDK_RFC3339_MILLIS, when, sizeof when));
	}
	if (rc)
		return cry_end(s, rc, err);
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db, "INSERT INTO keys (name, type, created_at) VALUES (?1, ?2, ?3)",
			       -1, &st, NULL) != SQLITE_OK) {
		rc = cry_fail_sql(s->db, err, "creating a key");
	} else {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, cry_type_name(type), -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, now_ms);
		int step = sqlite3_step(st);
		if ((step & 0xff) == SQLITE_CONSTRAINT)
			rc = sdk_fail(err, CRY_EEXIST, "a key named %s already exists", name);
		else if (step != SQLITE_DONE)
			rc = cry_fail_sql(s->db, err, "creating a key");
		sqlite3_finalize(st);
	}
	if (!rc)
		rc = cry_version_insert(s, name, type, 1, import, now_ms, err);
	rc = cry_end(s, rc, err);
	return rc ? rc : cry_key_get(s, name, out, err);
}

/* The tombstone of a destroyed key: 1 with *destroyed_at, 0 when none. */
static int cry_tombstone(cry_store *s, const char *name, int64_t *destroyed_at, sdk_err *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db, "SELECT destroyed_at FROM key_tombstones WHERE name = ?1", -1,
			       &st, NULL) != SQLITE_OK)
		return cry_fail_sql(s->db, err, "reading a key");
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*destroyed_at = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return cry_fail_sql(s->db, err, "reading a key");
	return rc == SQLITE_ROW;
}

/* SDK_ENOTFOUND, or CRY_EGONE when the name is a destroyed key's. */
static int cry_missing(cry_store *s, const char *name, sdk_err *err)
{
	int64_t at = 0;
	int rc = cry_tombstone(s, name, &at, err);
	if (rc < 0)
		return rc;
	if (rc == 0)
		return sdk_fail(err, SDK_ENOTFOUND, "no key named %s", name);
	char when[40];
	return sdk_fail(err, CRY_EGONE, "key %s was deleted: destroyed at %s", name,
			sdk_rfc3339_format_ms(at, SDK_RFC3339_MILLIS, when, sizeof when));
}

/* The key whatever its state (a pending deletion included). */
static int cry_key_state(cry_store *s, const char *name, cry_key_info *out, sdk_err *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db,
			       "SELECT k.type, (SELECT max(version) FROM key_versions AS v"
			       " WHERE v.name = k.name), k.deletion_at FROM keys AS k WHERE k.name = ?1",
			       -1, &st, NULL) != SQLITE_OK)
		return cry_fail_sql(s->db, err, "reading a key");
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		sqlite3_finalize(st);
		return cry_missing(s, name, err);
	}
	if (rc != SQLITE_ROW) {
		rc = cry_fail_sql(s->db, err, "reading a key");
		sqlite3_finalize(st);
		return rc;
	}
	rc = cry_type_parse((const char *)sqlite3_column_text(st, 0), &out->type);
	sqlite3_int64 latest = sqlite3_column_int64(st, 1);
	out->deletion_at = sqlite3_column_int64(st, 2);
	sqlite3_finalize(st);
	if (rc || latest < 1 || latest > UINT32_MAX)
		return sdk_fail(err, SDK_ECORRUPT, "key %s is damaged in storage", name);
	out->latest = (unsigned)latest;
	return 0;
}

static int cry_pending_fail(const char *name, int64_t at, sdk_err *err)
{
	char when[40];
	return sdk_fail(err, CRY_EPENDING,
			"key %s is pending deletion (it is destroyed at %s) and cannot be used;"
			" cancel the deletion (POST /keys/%s/cancel-deletion) to use it again",
			name, sdk_rfc3339_format_ms(at, SDK_RFC3339_MILLIS, when, sizeof when),
			name);
}

int cry_key_info_get(cry_store *s, const char *name, cry_key_info *out, sdk_err *err)
{
	int rc = cry_key_state(s, name, out, err);
	if (!rc && out->deletion_at)
		return cry_pending_fail(name, out->deletion_at, err);
	return rc;
}

int cry_key_rotate(cry_store *s, const char *name, const unsigned char *import, int64_t now_ms,
		   json_t **out, sdk_err *err)
{
	int rc = cry_begin(s, err);
	if (rc)
		return rc;
	cry_key_info info;
	rc = cry_key_info_get(s, name, &info, err);
	if (!rc && info.latest == UINT32_MAX)
		rc = sdk_fail(err, SDK_EINVAL, "key %s has no versions left", name);
	if (!rc)
		rc = cry_version_insert(s, name, info.type, info.latest + 1, import, now_ms, err);
	rc = cry_end(s, rc, err);
	return rc ? rc : cry_key_get(s, name, out, err);
}

static json_t *cry_b64(const unsigned char *data, size_t len)
{
	char buf[sodium_base64_ENCODED_LEN(CRY_PUBLIC_BYTES, sodium_base64_VARIANT_ORIGINAL)];
	if (len > CRY_PUBLIC_BYTES)
		return json_null();
	sodium_bin2base64(buf, sizeof buf, data, len, sodium_base64_VARIANT_ORIGINAL);
	return json_string(buf);
}

/* "state" and, while a deletion is pending, "deletion_at" (ms). */
static void cry_state_set(json_t *key, int64_t deletion_at)
{
	json_object_set_new(key, "state",
			    json_string(deletion_at ? "pending_deletion" : "enabled"));
	if (deletion_at)
		json_object_set_new(key, "deletion_at", json_integer((json_int_t)deletion_at));
}

int cry_key_list(cry_store *s, json_t **out, sdk_err *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db,
			       "SELECT k.name, k.type, k.created_at, (SELECT max(version) FROM"
			       " key_versions AS v WHERE v.name = k.name), k.deletion_at FROM keys AS k"
			       " ORDER BY k.name",
			       -1, &st, NULL) != SQLITE_OK)
		return cry_fail_sql(s->db, err, "listing keys");
	json_t *keys = json_array();
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *k = json_pack("{s:s, s:s, s:I, s:I}", "name",
				      (const char *)sqlite3_column_text(st, 0), "type",
				      (const char *)sqlite3_column_text(st, 1), "latest_version",
				      (json_int_t)sqlite3_column_int64(st, 3), "created_at",
				      (json_int_t)sqlite3_column_int64(st, 2));
		cry_state_set(k, sqlite3_column_int64(st, 4));
		json_array_append_new(keys, k);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		json_decref(keys);
		return cry_fail_sql(s->db, err, "listing keys");
	}
	*out = json_pack("{s:o}", "keys", keys);
	return 0;
}

int cry_key_get(cry_store *s, const char *name, json_t **out, sdk_err *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db,
			       "SELECT k.type, k.created_at, v.version, v.public_key, v.created_at,"
			       " k.deletion_at FROM keys AS k JOIN key_versions AS v ON v.name = k.name"
			       " WHERE k.name = ?1 ORDER BY v.version",
			       -1, &st, NULL) != SQLITE_OK)
		return cry_fail_sql(s->db, err, "reading a key");
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	json_t *key = NULL, *versions = json_array();
	sqlite3_int64 latest = 0, deletion_at = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (!key)
			key = json_pack("{s:s, s:s, s:I}", "name", name, "type",
					(const char *)sqlite3_column_text(st, 0), "created_at",
					(json_int_t)sqlite3_column_int64(st, 1));
		deletion_at = sqlite3_column_int64(st, 5);
		latest = sqlite3_column_int64(st, 2);
		json_t *v = json_pack("{s:I, s:I}", "version", (json_int_t)latest, "created_at",
				      (json_int_t)sqlite3_column_int64(st, 4));
		if (sqlite3_column_type(st, 3) == SQLITE_BLOB)
			json_object_set_new(v, "public_key",
					    cry_b64(sqlite3_column_blob(st, 3),
						    (size_t)sqlite3_column_bytes(st, 3)));
		json_array_append_new(versions, v);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE || !key) {
		json_decref(key);
		json_decref(versions);
		if (rc != SQLITE_DONE)
			return cry_fail_sql(s->db, err, "reading a key");
		return cry_missing(s, name, err);
	}
	json_object_set_new(key, "latest_version", json_integer((json_int_t)latest));
	cry_state_set(key, deletion_at);
	json_object_set_new(key, "versions", versions);
	*out = key;
	return 0;
}

/* Reads column `col` ("public_key" or "sealed") of one version. */
static int cry_version_read(cry_store *s, const char *name, unsigned version, const char *sql,
			    unsigned char *out, size_t cap, size_t *len, sdk_err *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
		return cry_fail_sql(s->db, err, "reading a key version");
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, version);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		size_t n = (size_t)sqlite3_column_bytes(st, 0);
		*len = n <= cap ? n : 0;
		if (n <= cap && n)
			memcpy(out, sqlite3_column_blob(st, 0), n);
		rc = n <= cap ? 0 : sdk_fail(err, SDK_ECORRUPT, "key %s version %u is damaged", name,
					       version);
	} else if (rc == SQLITE_DONE) {
		rc = sdk_fail(err, SDK_ENOTFOUND, "key %s has no version %u", name, version);
	} else {
		rc = cry_fail_sql(s->db, err, "reading a key version");
	}
	sqlite3_finalize(st);
	return rc;
}

int cry_key_public(cry_store *s, const char *name, unsigned version,
		   unsigned char pk[CRY_PUBLIC_BYTES], sdk_err *err)
{
	size_t len = 0;
	int rc = cry_version_read(s, name, version,
				  "SELECT public_key FROM key_versions WHERE name = ?1 AND version = ?2",
				  pk, CRY_PUBLIC_BYTES, &len, err);
	if (!rc && len != CRY_PUBLIC_BYTES)
		rc = sdk_fail(err, SDK_EINVAL, "key %s has no public part", name);
	return rc;
}

int cry_key_secret(cry_store *s, const char *name, unsigned version,
		   unsigned char secret[CRY_SECRET_BYTES], sdk_err *err)
{
	cry_key_info info;
	int rc = cry_key_info_get(s, name, &info, err);
	if (rc)
		return rc;
	unsigned char sealed[CRY_SEALED_BYTES];
	size_t len = 0;
	rc = cry_version_read(s, name, version,
			      "SELECT sealed FROM key_versions WHERE name = ?1 AND version = ?2",
			      sealed, sizeof sealed, &len, err);
	if (rc)
		return rc;
	char label[CRY_LABEL_MAX];
	size_t label_len = cry_key_label(label, name, info.type, version);
	if (cry_unseal(s, label, label_len, sealed, len, secret))
		return sdk_fail(err, CRY_ESEALED,
				"the sealed secret of key %s version %u does not open: it was"
				" altered or moved",
				name, version);
	return 0;
}

/* ---- deletion */

/* Writes one audit event to the outbox (inside the caller's transaction). */
static int cry_audit(cry_store *s, const char *action, const char *name, const cry_actor *who,
		     int64_t now_ms, json_t *details /* stolen */, sdk_err *err)
{
	char resource[CRY_NAME_MAX + 16];
	snprintf(resource, sizeof resource, "crypto/keys/%s", name);
	const char *actor = who && who->user ? who->user
			    : who && who->caller ? who->caller
						 : "crypto";
	json_t *ev = json_pack("{s:s, s:s, s:s, s:s, s:I, s:o}", "actor", actor, "action", action,
			       "resource", resource, "outcome", "ok", "ts_ms", (json_int_t)now_ms,
			       "details", details ? details : json_object());
	if (ev && who && who->caller)
		json_object_set_new(json_object_get(ev, "details"), "caller",
				    json_string(who->caller));
	char *text = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
	json_decref(ev);
	if (!text)
		return sdk_fail(err, SDK_EIO, "out of memory");
	sqlite3_stmt *st;
	int rc = 0;
	if (sqlite3_prepare_v2(s->db, "INSERT INTO audit_outbox (event) VALUES (?1)", -1, &st,
			       NULL) != SQLITE_OK) {
		rc = cry_fail_sql(s->db, err, "recording an audit event");
	} else {
		sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = cry_fail_sql(s->db, err, "recording an audit event");
		sqlite3_finalize(st);
	}
	free(text);
	return rc;
}

static int cry_set_deletion(cry_store *s, const char *name, int64_t at, sdk_err *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db, "UPDATE keys SET deletion_at = ?2 WHERE name = ?1", -1, &st,
			       NULL) != SQLITE_OK)
		return cry_fail_sql(s->db, err, "changing a key's state");
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if (at)
		sqlite3_bind_int64(st, 2, at);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : cry_fail_sql(s->db, err, "changing a key's state");
}

int cry_key_schedule_deletion(cry_store *s, const char *name, unsigned window_s,
			      const cry_actor *who, int64_t now_ms, json_t **out, sdk_err *err)
{
	int rc = cry_begin(s, err);
	if (rc)
		return rc;
	cry_key_info info = { 0 };
	rc = cry_key_state(s, name, &info, err);
	if (!rc && info.deletion_at) {
		char when[40];
		rc = sdk_fail(err, CRY_EPENDING, "key %s is already pending deletion (destroyed at %s)",
			      name,
			      sdk_rfc3339_format_ms(info.deletion_at, SDK_RFC3339_MILLIS, when,
						    sizeof when));
	}
	int64_t at = now_ms + (int64_t)window_s * 1000;
	if (!rc)
		rc = cry_set_deletion(s, name, at, err);
	if (!rc)
		rc = cry_audit(s, "crypto.key.deletion_scheduled", name, who, now_ms,
			       json_pack("{s:s, s:I, s:I, s:I}", "type", cry_type_name(info.type),
					 "versions", (json_int_t)info.latest, "window_s",
					 (json_int_t)window_s, "deletion_at", (json_int_t)at),
			       err);
	rc = cry_end(s, rc, err);
	return rc ? rc : cry_key_get(s, name, out, err);
}

int cry_key_cancel_deletion(cry_store *s, const char *name, const cry_actor *who,
			    int64_t now_ms, json_t **out, sdk_err *err)
{
	int rc = cry_begin(s, err);
	if (rc)
		return rc;
	cry_key_info info = { 0 };
	rc = cry_key_state(s, name, &info, err);
	if (!rc && !info.deletion_at)
		rc = sdk_fail(err, SDK_ECONFLICT, "key %s has no pending deletion to cancel", name);
	if (!rc)
		rc = cry_set_deletion(s, name, 0, err);
	if (!rc)
		rc = cry_audit(s, "crypto.key.deletion_cancelled", name, who, now_ms,
			       json_pack("{s:s, s:I}", "type", cry_type_name(info.type),
					 "was_due", (json_int_t)info.deletion_at),
			       err);
	rc = cry_end(s, rc, err);
	return rc ? rc : cry_key_get(s, name, out, err);
}

/* Destroys one key whose deletion is due, in one transaction: its
 * versions and row go, its tombstone and audit event come. */
static int cry_destroy_one(cry_store *s, const char *name, int64_t now_ms, sdk_err *err)
{
	int rc = cry_begin(s, err);
	if (rc)
		return rc;
	cry_key_info info = { 0 };
	rc = cry_key_state(s, name, &info, err);
	if (!rc && (!info.deletion_at || info.deletion_at > now_ms)) { /* cancelled meanwhile */
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		return 0;
	}
	static const char *const steps[] = {
		("INSERT INTO key_tombstones (name, type, created_at, destroyed_at)"
		 " SELECT name, type, created_at, ?2 FROM keys WHERE name = ?1"),
		"DELETE FROM key_versions WHERE name = ?1",
		"DELETE FROM keys WHERE name = ?1",
	};
	for (size_t i = 0; !rc && i < sizeof steps / sizeof steps[0]; i++) {
		sqlite3_stmt *st;
		if (sqlite3_prepare_v2(s->db, steps[i], -1, &st, NULL) != SQLITE_OK) {
			rc = cry_fail_sql(s->db, err, "destroying a key");
			break;
		}
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		if (i == 0)
			sqlite3_bind_int64(st, 2, now_ms);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = cry_fail_sql(s->db, err, "destroying a key");
		sqlite3_finalize(st);
	}
	if (!rc)
		rc = cry_audit(s, "crypto.key.destroyed", name, NULL, now_ms,
			       json_pack("{s:s, s:I, s:I}", "type", cry_type_name(info.type),
					 "versions", (json_int_t)info.latest, "deletion_at",
					 (json_int_t)info.deletion_at),
			       err);
	rc = cry_end(s, rc, err);
	return rc ? rc : 1;
}

int cry_key_destroy_due(cry_store *s, int64_t now_ms, sdk_err *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db,
			       "SELECT name FROM keys WHERE deletion_at IS NOT NULL AND deletion_at <= ?1"
			       " ORDER BY deletion_at LIMIT 64",
			       -1, &st, NULL) != SQLITE_OK)
		return cry_fail_sql(s->db, err, "looking for keys due for destruction");
	sqlite3_bind_int64(st, 1, now_ms);
	json_t *names = json_array();
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(names, json_string((const char *)sqlite3_column_text(st, 0)));
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		json_decref(names);
		return cry_fail_sql(s->db, err, "looking for keys due for destruction");
	}
	int n = 0;
	size_t i;
	json_t *v;
	rc = 0;
	json_array_foreach(names, i, v) {
		rc = cry_destroy_one(s, json_string_value(v), now_ms, err);
		if (rc < 0)
			break;
		n += rc;
	}
	json_decref(names);
	/* The WAL still holds the pages as they were: copy the overwritten
	 * ones into the database and empty it. */
	if (n > 0)
		sqlite3_exec(s->db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
	return rc < 0 ? rc : n;
}

int cry_outbox(cry_store *s, unsigned limit, json_t **out, int64_t *upto, sdk_err *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db, "SELECT id, event FROM audit_outbox ORDER BY id LIMIT ?1", -1,
			       &st, NULL) != SQLITE_OK)
		return cry_fail_sql(s->db, err, "reading the audit outbox");
	sqlite3_bind_int64(st, 1, limit);
	json_t *list = json_array();
	int rc;
	*upto = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*upto = sqlite3_column_int64(st, 0);
		json_t *ev = json_loads((const char *)sqlite3_column_text(st, 1), 0, NULL);
		if (!json_is_object(ev)) { /* not what was written: skipped, not resent forever */
			json_decref(ev);
			continue;
		}
		char uid[40];
		snprintf(uid, sizeof uid, "crypto-%lld", (long long)*upto);
		json_object_set_new(ev, "uid", json_string(uid));
		json_array_append_new(list, ev);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		json_decref(list);
		return cry_fail_sql(s->db, err, "reading the audit outbox");
	}
	*out = list;
	return 0;
}

int cry_outbox_sent(cry_store *s, int64_t upto, sdk_err *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db, "DELETE FROM audit_outbox WHERE id <= ?1", -1, &st, NULL) !=
	    SQLITE_OK)
		return cry_fail_sql(s->db, err, "clearing the audit outbox");
	sqlite3_bind_int64(st, 1, upto);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : cry_fail_sql(s->db, err, "clearing the audit outbox");
}

int cry_pending_work(cry_store *s, int64_t *next_due, bool *outbox, sdk_err *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db,
			       "SELECT (SELECT min(deletion_at) FROM keys),"
			       " EXISTS (SELECT 1 FROM audit_outbox)",
			       -1, &st, NULL) != SQLITE_OK)
		return cry_fail_sql(s->db, err, "looking for pending deletions");
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*next_due = sqlite3_column_int64(st, 0);
		*outbox = sqlite3_column_int(st, 1) != 0;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : cry_fail_sql(s->db, err, "looking for pending deletions");
}
