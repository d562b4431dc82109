/* The trust kernel's keys in SQLite, their secrets sealed under the master
 * key with the key id as associated data (a sealed secret moved to another
 * row does not open). */
#include "kernels/trust/store.h"

#include "kernels/trust/spiffe.h"
#include "kernels/trust/x509.h"
#include "sdk/keyfile.h"
#include "sdk/log.h"

#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TR_MASTER_BYTES crypto_aead_xchacha20poly1305_ietf_KEYBYTES
#define NONCE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define ABYTES crypto_aead_xchacha20poly1305_ietf_ABYTES
#define TR_SECRET_MAX 512

struct tr_store {
	sqlite3 *db;
	unsigned char *master; /* sodium_malloc'd, read-only */
	tr_params p;
};

static int sql_fail(sqlite3 *db, sdk_err *err, const char *what)
{
	return sdk_fail(err, sdk_status_of_sqlite(sqlite3_extended_errcode(db)), "%s: %s", what,
			sqlite3_errmsg(db));
}

void tr_key_clear(tr_key *k)
{
	free(k->pub);
	if (k->secret)
		sodium_free(k->secret);
	memset(k, 0, sizeof *k);
}

static const char *kind_name(enum tr_kind k)
{
	return k == TR_JWT ? "jwt" : "x509";
}

static int64_t overlap_ms(const tr_store *s, enum tr_kind k)
{
	return (k == TR_JWT ? s->p.jwt_ttl_max_s : s->p.x509_ttl_max_s) * 1000LL;
}

static int key_row(tr_store *s, sqlite3_stmt *st, tr_key *out, int with_secret, sdk_err *err);

/* The attestation tables' columns as version 1 made them (a file of
 * version 1 may lack the tables: they were added to it later). */
#define TR_JOINS_V1                                                                   \
	" hash TEXT PRIMARY KEY, kernel TEXT NOT NULL, pid INTEGER NOT NULL,"         \
	" start_time INTEGER NOT NULL, exe TEXT NOT NULL,"                            \
	" registered_ms INTEGER NOT NULL, used_ms INTEGER NOT NULL DEFAULT 0"
#define TR_WORKLOADS_V1                                                               \
	" kernel TEXT PRIMARY KEY, pid INTEGER NOT NULL, start_time INTEGER NOT NULL," \
	" exe TEXT NOT NULL, attested_ms INTEGER NOT NULL,"                           \
	" attestation_sha256 TEXT NOT NULL, svid_expires_ms INTEGER NOT NULL DEFAULT 0"
#define TR_NODE_COL " node TEXT NOT NULL DEFAULT ''"

/* Version 2: registrations and workloads know their node (the registering
 * main process's; '' with no nodes configured). The tables are made as
 * version 1 had them when missing, so the columns can be added either way;
 * a new file gets them in its CREATE TABLE. trust_node_mains is additive
 * (the base schema makes it). */
const sdk_mig_step tr_migrations[TR_SCHEMA_VERSION] = {
	{ .what = "(stamp: an unversioned file has version 1's tables)" },
	{ .sql = "CREATE TABLE IF NOT EXISTS trust_joins (" TR_JOINS_V1 ");"
		 "CREATE TABLE IF NOT EXISTS trust_workloads (" TR_WORKLOADS_V1 ");"
		 "ALTER TABLE trust_joins ADD COLUMN" TR_NODE_COL ";"
		 "ALTER TABLE trust_workloads ADD COLUMN" TR_NODE_COL ";",
	  .what = "(trust_joins.node, trust_workloads.node: the node a registration came from)" },
};

/* ---- master key */

static int master_load(tr_store *s, const char *data_dir, sdk_err *err)
{
	char path[PATH_MAX];
	sdk_err why;
	if (snprintf(path, sizeof path, "%s/%s", data_dir, TR_MASTER_FILE) >= (int)sizeof path)
		return sdk_fail(err, SDK_EINVAL, "master key path too long");
	unsigned char m[TR_MASTER_BYTES];
	int rc = keyfile_read(path, m, sizeof m, &why);
	if (rc == SDK_ENOTFOUND) {
		sqlite3_stmt *st;
		int any = 0;
		if (sqlite3_prepare_v2(s->db, "SELECT 1 FROM trust_keys LIMIT 1", -1, &st, NULL))
			return sql_fail(s->db, err, "reading keys");
		any = sqlite3_step(st) == SQLITE_ROW;
		sqlite3_finalize(st);
		if (any)
			return sdk_fail(err, SDK_EIO,
					"%s is missing but the database holds keys sealed with it;"
					" restore it", path);
		crypto_aead_xchacha20poly1305_ietf_keygen(m);
		rc = keyfile_create(path, m, sizeof m, &why);
		if (rc == 0)
			sdk_info("created the master key %s", path);
	}
	if (rc < 0) {
		sodium_memzero(m, sizeof m);
		return sdk_fail(err, SDK_EIO, "%s", why.msg);
	}
	memcpy(s->master, m, sizeof m);
	sodium_memzero(m, sizeof m);
	sodium_mprotect_readonly(s->master);
	return 0;
}

/* Opens the newest sealed key, if any: a master key that is not the one
 * the keys were sealed with stops the kernel at start instead of failing
 * every request later. */
static int master_check(tr_store *s, sdk_err *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db,
			       "SELECT kid, kind, created_ms, retire_ms, pub, sealed FROM trust_keys"
			       " ORDER BY seq DESC LIMIT 1", -1, &st, NULL))
		return sql_fail(s->db, err, "reading keys");
	int rc = 0, step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		tr_key k;
		rc = key_row(s, st, &k, 1, err);
		if (rc == 0)
			tr_key_clear(&k);
	} else if (step != SQLITE_DONE) {
		rc = sql_fail(s->db, err, "reading keys");
	}
	sqlite3_finalize(st);
	return rc;
}

int tr_store_open(sqlite3 *db, const char *data_dir, tr_store **out, sdk_err *err)
{
	char *msg = NULL;
	if (sqlite3_exec(db,
			 "CREATE TABLE IF NOT EXISTS trust_keys ("
			 " seq INTEGER PRIMARY KEY AUTOINCREMENT, kid TEXT NOT NULL UNIQUE,"
			 " kind TEXT NOT NULL CHECK (kind IN ('jwt','x509')),"
			 " created_ms INTEGER NOT NULL, retire_ms INTEGER NOT NULL DEFAULT 0,"
			 " pub BLOB NOT NULL, sealed BLOB NOT NULL);"
			 /* Trust scores (evidence.c): additive tables only. */
			 "CREATE TABLE IF NOT EXISTS trust_scores ("
			 " kind TEXT NOT NULL CHECK (kind IN ('kernel','user')), name TEXT NOT NULL,"
			 " alpha REAL NOT NULL, beta REAL NOT NULL, at_ms INTEGER NOT NULL,"
			 " PRIMARY KEY (kind, name));"
			 "CREATE TABLE IF NOT EXISTS trust_evidence ("
			 " kind TEXT NOT NULL, name TEXT NOT NULL, outcome TEXT NOT NULL,"
			 " good INTEGER NOT NULL, count INTEGER NOT NULL, last_ms INTEGER NOT NULL,"
			 " PRIMARY KEY (kind, name, outcome));"
			 "CREATE TABLE IF NOT EXISTS trust_live ("
			 " name TEXT PRIMARY KEY, ready INTEGER NOT NULL, since_ms INTEGER NOT NULL,"
			 " good_ms INTEGER NOT NULL);"
			 /* Attestation (attest.c); the node columns came with
			  * version 2 (tr_migrations). */
			 "CREATE TABLE IF NOT EXISTS trust_joins (" TR_JOINS_V1 "," TR_NODE_COL ");"
			 "CREATE TABLE IF NOT EXISTS trust_workloads (" TR_WORKLOADS_V1 "," TR_NODE_COL
			 ");"
			 /* The main processes of other nodes, vouched for by this
			  * node's (docs/trust.md "Nodes"), one per node. */
			 "CREATE TABLE IF NOT EXISTS trust_node_mains ("
			 " node TEXT PRIMARY KEY, main_sha256 TEXT NOT NULL UNIQUE,"
			 " vouched_ms INTEGER NOT NULL);"
			 /* Long-lived join credentials of kernels no supervisor
			  * spawns (systemd's LoadCredential=), one per kernel. */
			 "CREATE TABLE IF NOT EXISTS trust_enrolled ("
			 " kernel TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE,"
			 " enrolled_ms INTEGER NOT NULL, last_pid INTEGER, last_used_ms INTEGER)",
			 NULL, NULL, &msg)) {
		int rc = sdk_fail(err, sdk_status_of_sqlite(sqlite3_extended_errcode(db)),
				  "creating the schema: %s", msg ? msg : "?");
		sqlite3_free(msg);
		return rc;
	}
	tr_store *s = calloc(1, sizeof *s);
	if (!s)
		return sdk_fail(err, SDK_EIO, "out of memory");
	s->db = db;
	s->p = (tr_params){ .domain = TR_TRUST_DOMAIN,
			    .jwt_rotate_ms = TR_JWT_ROTATE_MS,
			    .x509_rotate_ms = TR_X509_ROTATE_MS,
			    .jwt_ttl_max_s = TR_JWT_TTL_MAX_S,
			    .x509_ttl_max_s = TR_X509_TTL_MAX_S };
	s->master = sodium_malloc(TR_MASTER_BYTES);
	if (!s->master) {
		free(s);
		return sdk_fail(err, SDK_EIO, "cannot allocate guarded memory");
	}
	int rc = master_load(s, data_dir, err);
	if (rc == 0)
		rc = master_check(s, err);
	if (rc < 0) {
		tr_store_close(s);
		return rc;
	}
	*out = s;
	return 0;
}

void tr_store_close(tr_store *s)
{
	if (!s)
		return;
	sodium_free(s->master);
	free(s);
}

void tr_store_set_params(tr_store *s, const tr_params *p)
{
	s->p = *p;
}

const tr_params *tr_store_params(const tr_store *s)
{
	return &s->p;
}

/* ---- keys */

static int key_insert(tr_store *s, enum tr_kind kind, int64_t now_ms, sdk_err *err)
{
	tr_key k = { .kind = kind, .created_ms = now_ms };
	unsigned char rnd[8];
	randombytes_buf(rnd, sizeof rnd);
	sodium_bin2hex(k.kid, sizeof k.kid, rnd, sizeof rnd);
	int rc;
	if (kind == TR_JWT) {
		k.pub = malloc(crypto_sign_PUBLICKEYBYTES);
		k.secret = sodium_malloc(crypto_sign_SEEDBYTES);
		if (!k.pub || !k.secret) {
			tr_key_clear(&k);
			return sdk_fail(err, SDK_EIO, "out of memory");
		}
		unsigned char sk[crypto_sign_SECRETKEYBYTES];
		randombytes_buf(k.secret, crypto_sign_SEEDBYTES);
		crypto_sign_seed_keypair(k.pub, sk, k.secret);
		sodium_memzero(sk, sizeof sk);
		k.pub_len = crypto_sign_PUBLICKEYBYTES;
		k.secret_len = crypto_sign_SEEDBYTES;
	} else {
		int64_t valid = s->p.x509_rotate_ms + overlap_ms(s, kind) + 3600 * 1000LL;
		rc = tr_x509_ca_new(s->p.domain, now_ms, valid, &k, err);
		if (rc < 0) {
			tr_key_clear(&k);
			return rc;
		}
	}
	size_t sealed_len = NONCE + k.secret_len + ABYTES;
	unsigned char *sealed = malloc(sealed_len);
	if (!sealed) {
		tr_key_clear(&k);
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	randombytes_buf(sealed, NONCE);
	crypto_aead_xchacha20poly1305_ietf_encrypt(sealed + NONCE, NULL, k.secret, k.secret_len,
						   (unsigned char *)k.kid, strlen(k.kid), NULL,
						   sealed, s->master);
	sqlite3_stmt *st;
	rc = 0;
	if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL))
		rc = sql_fail(s->db, err, "starting a rotation");
	if (!rc) {
		if (sqlite3_prepare_v2(s->db,
				       "UPDATE trust_keys SET retire_ms = ? WHERE kind = ?"
				       " AND retire_ms = 0", -1, &st, NULL))
			rc = sql_fail(s->db, err, "retiring the old key");
		else {
			sqlite3_bind_int64(st, 1, now_ms + overlap_ms(s, kind));
			sqlite3_bind_text(st, 2, kind_name(kind), -1, SQLITE_STATIC);
			if (sqlite3_step(st) != SQLITE_DONE)
				rc = sql_fail(s->db, err, "retiring the old key");
			sqlite3_finalize(st);
		}
	}
	if (!rc) {
		if (sqlite3_prepare_v2(s->db,
				       "INSERT INTO trust_keys(kid, kind, created_ms, pub, sealed)"
				       " VALUES (?, ?, ?, ?, ?)", -1, &st, NULL))
			rc = sql_fail(s->db, err, "storing a key");
		else {
			sqlite3_bind_text(st, 1, k.kid, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 2, kind_name(kind), -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 3, now_ms);
			sqlite3_bind_blob(st, 4, k.pub, (int)k.pub_len, SQLITE_STATIC);
			sqlite3_bind_blob(st, 5, sealed, (int)sealed_len, SQLITE_STATIC);
			if (sqlite3_step(st) != SQLITE_DONE)
				rc = sql_fail(s->db, err, "storing a key");
			sqlite3_finalize(st);
		}
	}
	if (!rc && sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL))
		rc = sql_fail(s->db, err, "committing a rotation");
	if (rc)
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	else
		sdk_info("trust: new %s signing key %s", kind_name(kind), k.kid);
	free(sealed);
	tr_key_clear(&k);
	return rc;
}

int tr_key_rotate(tr_store *s, enum tr_kind kind, int64_t now_ms, sdk_err *err)
{
	return key_insert(s, kind, now_ms, err);
}

static int key_row(tr_store *s, sqlite3_stmt *st, tr_key *out, int with_secret, sdk_err *err)
{
	memset(out, 0, sizeof *out);
	const char *kid = (const char *)sqlite3_column_text(st, 0);
	const char *kind = (const char *)sqlite3_column_text(st, 1);
	int plen = sqlite3_column_bytes(st, 4);
	const void *pub = sqlite3_column_blob(st, 4);
	if (!kid || strlen(kid) > TR_KID_MAX || !kind || !pub || plen <= 0)
		return sdk_fail(err, SDK_ECORRUPT, "a key row is damaged");
	snprintf(out->kid, sizeof out->kid, "%s", kid);
	out->kind = strcmp(kind, "jwt") ? TR_X509 : TR_JWT;
	out->created_ms = sqlite3_column_int64(st, 2);
	out->retire_ms = sqlite3_column_int64(st, 3);
	out->pub = malloc((size_t)plen);
	if (!out->pub)
		return sdk_fail(err, SDK_EIO, "out of memory");
	memcpy(out->pub, pub, (size_t)plen);
	out->pub_len = (size_t)plen;
	if (!with_secret)
		return 0;
	int slen = sqlite3_column_bytes(st, 5);
	const unsigned char *sealed = sqlite3_column_blob(st, 5);
	if (!sealed || slen < (int)(NONCE + ABYTES + 1) || slen > (int)(NONCE + ABYTES + TR_SECRET_MAX)) {
		tr_key_clear(out);
		return sdk_fail(err, SDK_ECORRUPT, "key %s: sealed secret damaged", kid);
	}
	out->secret_len = (size_t)slen - NONCE - ABYTES;
	out->secret = sodium_malloc(out->secret_len);
	if (!out->secret ||
	    crypto_aead_xchacha20poly1305_ietf_decrypt(
		    out->secret, NULL, NULL, sealed + NONCE, (size_t)slen - NONCE, (unsigned char *)kid,
		    strlen(kid), sealed, s->master) < 0) {
		tr_key_clear(out);
		return sdk_fail(err, SDK_ECORRUPT,
				"key %s does not open with trust.master (replaced?)", kid);
	}
	return 0;
}

#define KEY_COLS "kid, kind, created_ms, retire_ms, pub, sealed"

int tr_key_active(tr_store *s, enum tr_kind kind, int64_t now_ms, tr_key *out, sdk_err *err)
{
	int64_t period = kind == TR_JWT ? s->p.jwt_rotate_ms : s->p.x509_rotate_ms;
	for (int attempt = 0; attempt < 2; attempt++) {
		sqlite3_stmt *st;
		if (sqlite3_prepare_v2(s->db,
				       "SELECT " KEY_COLS " FROM trust_keys WHERE kind = ?"
				       " AND retire_ms = 0 ORDER BY seq DESC LIMIT 1", -1, &st, NULL))
			return sql_fail(s->db, err, "reading the active key");
		sqlite3_bind_text(st, 1, kind_name(kind), -1, SQLITE_STATIC);
		int step = sqlite3_step(st), rc = 1;
		if (step == SQLITE_ROW && now_ms - sqlite3_column_int64(st, 2) < period)
			rc = key_row(s, st, out, 1, err);
		else if (step != SQLITE_ROW && step != SQLITE_DONE)
			rc = sql_fail(s->db, err, "reading the active key");
		sqlite3_finalize(st);
		if (rc <= 0)
			return rc;
		rc = key_insert(s, kind, now_ms, err); /* none yet, or due for rotation */
		if (rc < 0)
			return rc;
	}
	return sdk_fail(err, SDK_EIO, "no active key after making one");
}

int tr_keys_published(tr_store *s, int64_t now_ms, tr_key **keys, size_t *n, int64_t *seq,
		      sdk_err *err)
{
	sqlite3_stmt *st;
	*keys = NULL;
	*n = 0;
	if (sqlite3_prepare_v2(s->db, "DELETE FROM trust_keys WHERE retire_ms != 0 AND retire_ms <= ?",
			       -1, &st, NULL))
		return sql_fail(s->db, err, "dropping retired keys");
	sqlite3_bind_int64(st, 1, now_ms);
	int step = sqlite3_step(st);
	sqlite3_finalize(st);
	if (step != SQLITE_DONE)
		return sql_fail(s->db, err, "dropping retired keys");
	if (sqlite3_prepare_v2(s->db, "SELECT seq FROM sqlite_sequence WHERE name = 'trust_keys'",
			       -1, &st, NULL))
		return sql_fail(s->db, err, "reading the sequence");
	*seq = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	if (sqlite3_prepare_v2(s->db, "SELECT " KEY_COLS " FROM trust_keys ORDER BY seq", -1, &st,
			       NULL))
		return sql_fail(s->db, err, "reading keys");
	size_t cap = 0;
	int rc = 0;
	while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? cap * 2 : 4;
			tr_key *more = realloc(*keys, cap * sizeof **keys);
			if (!more) {
				rc = sdk_fail(err, SDK_EIO, "out of memory");
				break;
			}
			*keys = more;
		}
		rc = key_row(s, st, &(*keys)[*n], 0, err);
		if (!rc)
			(*n)++;
	}
	if (!rc && step != SQLITE_DONE)
		rc = sql_fail(s->db, err, "reading keys");
	sqlite3_finalize(st);
	if (rc < 0) {
		for (size_t i = 0; i < *n; i++)
			tr_key_clear(&(*keys)[i]);
		free(*keys);
		*keys = NULL;
		*n = 0;
	}
	return rc;
}
