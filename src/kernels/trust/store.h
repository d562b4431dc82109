/* The trust kernel's signing keys: for each kind (JWT-SVIDs: Ed25519; X.509-
 * SVIDs: a P-256 CA) an active key and the superseded ones still published
 * during their overlap. Secrets are sealed (XChaCha20-Poly1305) in SQLite
 * under DATA_DIR/trust.master, a 0600 file made at first start (so the
 * backup seals it with the other secrets). No HTTP.
 *
 * Calls return 0 or a negative sdk_status with the reason in err. */
#ifndef GRACE_TRUST_STORE_H
#define GRACE_TRUST_STORE_H

#include "kernels/layer.h"

#include "sdk/err.h"
#include "sdk/migrate.h"
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#define TR_MASTER_FILE "trust.master"

/* trust.db's schema version and the steps from each older one (sdk/migrate.h).
 * A change is a new step here and a new fixture directory (docs/upgrades.md). */
#define TR_SCHEMA_VERSION 2
extern const sdk_mig_step tr_migrations[TR_SCHEMA_VERSION];
#define TR_KID_MAX 32

enum tr_kind { TR_JWT = 0, TR_X509 = 1 };

/* How long a key signs before it is replaced, and how long a replaced key
 * stays in the bundle: at least the longest SVID it may have signed. */
#define TR_JWT_ROTATE_MS (24LL * 3600 * 1000)
#define TR_JWT_TTL_MAX_S 3600
#define TR_X509_ROTATE_MS (7LL * 24 * 3600 * 1000)
#define TR_X509_TTL_MAX_S (24 * 3600)

typedef struct tr_store tr_store;

/* What [trust] configures for the keys (sdk/config.h grace_trust); the
 * defaults are the macros above and TR_TRUST_DOMAIN. */
typedef struct tr_params {
	char domain[256];        /* the trust domain the CA names */
	int64_t jwt_rotate_ms;   /* a JWT key signs this long */
	int64_t x509_rotate_ms;  /* the CA signs this long */
	int jwt_ttl_max_s;       /* the longest JWT-SVID: a retired key's overlap */
	int x509_ttl_max_s;      /* the longest X.509-SVID: a retired CA's overlap */
} tr_params;

typedef struct tr_key {
	char kid[TR_KID_MAX + 1];
	enum tr_kind kind;
	int64_t created_ms;
	int64_t retire_ms; /* 0 while active; else when it leaves the bundle */
	unsigned char *pub; /* malloc'd: Ed25519 public key, or the CA's DER certificate */
	size_t pub_len;
	unsigned char *secret; /* sodium_malloc'd or NULL: the Ed25519 seed, or a PKCS#8 DER key */
	size_t secret_len;
} tr_key;

void tr_key_clear(tr_key *k); /* frees and wipes */

/* Creates the schema, reads or makes the master key. */
int tr_store_open(sqlite3 *db, const char *data_dir, tr_store **out, sdk_err *err);
void tr_store_close(tr_store *s);
/* Replaces the defaults the store was opened with. */
void tr_store_set_params(tr_store *s, const tr_params *p);
const tr_params *tr_store_params(const tr_store *s);

/* The key that signs now, with its secret, made (or rotated, when older
 * than its kind's period) on the way. */
int tr_key_active(tr_store *s, enum tr_kind kind, int64_t now_ms, tr_key *out, sdk_err *err);
/* Replaces the active key of `kind` now; the old one stays published for
 * the overlap. */
int tr_key_rotate(tr_store *s, enum tr_kind kind, int64_t now_ms, sdk_err *err);
/* Every published key (active and in overlap) of both kinds, without
 * secrets, oldest first; keys past their overlap are deleted. The caller
 * frees with tr_key_clear each and free(*keys). *seq: a number that grows
 * with every rotation (spiffe_sequence). */
int tr_keys_published(tr_store *s, int64_t now_ms, tr_key **keys, size_t *n, int64_t *seq,
		      sdk_err *err);

#endif
