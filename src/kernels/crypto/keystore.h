/* The crypto kernel's key store: named keys with versions, their secrets
 * sealed with the master key, in SQLite. No HTTP.
 *
 * Every call returns 0 or a negative sdk_status (sdk/err.h) with a reason
 * in `err` (which may be NULL): SDK_EINVAL (a bad name, type or import, a
 * key of the wrong type), SDK_ENOTFOUND, SDK_ECORRUPT (a row that cannot
 * be what the store wrote), SQLite's failures as sdk_status_of_sqlite maps
 * them (SDK_EFULL when the disk is full), or one of crypto's own below. No call hands out a secret except cry_key_secret,
 * whose callers wipe it with sodium_memzero as soon as they are done. */
#ifndef GRACE_CRYPTO_KEYSTORE_H
#define GRACE_CRYPTO_KEYSTORE_H

#include "kernels/layer.h"

#include "sdk/err.h"
#include "sdk/migrate.h"
#include <jansson.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

/* The store's schema version and its steps (sdk/migrate.h), declared in
 * crypto_kernel: a change is a new step and a new fixture directory. */
#define CRY_SCHEMA_VERSION 2
extern const sdk_mig_step cry_migrations[CRY_SCHEMA_VERSION];

/* Crypto's own failures, numbered from SDK_E_MODULE (crypto.c maps them). */
enum {
	CRY_EAUTH = SDK_E_MODULE,       /* a ciphertext did not authenticate, or the master key is wrong */
	CRY_ESEALED = SDK_E_MODULE - 1, /* a stored sealed secret does not open: altered or moved */
	CRY_EEXIST = SDK_E_MODULE - 2,  /* a key with that name exists */
	CRY_EPENDING = SDK_E_MODULE - 3, /* the key is pending deletion: unusable until cancelled */
	CRY_EGONE = SDK_E_MODULE - 4,    /* the key was destroyed (its tombstone remains) */
};

enum cry_type { CRY_ED25519, CRY_X25519, CRY_SYMMETRIC };

#define CRY_MASTER_BYTES crypto_aead_xchacha20poly1305_ietf_KEYBYTES
/* Every secret is 32 bytes: an Ed25519 seed, an X25519 secret key, or an
 * XChaCha20-Poly1305 key. */
#define CRY_SECRET_BYTES 32
#define CRY_PUBLIC_BYTES 32
#define CRY_NAME_MAX 64

typedef struct cry_store cry_store;

typedef struct cry_key_info {
	enum cry_type type;
	unsigned latest; /* newest version, from 1 */
	int64_t deletion_at; /* when a pending deletion destroys it; 0: none */
} cry_key_info;

/* Who asked for a step, for the audit trail (NULL fields: unknown). */
typedef struct cry_actor {
	const char *user;
	const char *caller; /* X-Grace-Caller */
} cry_actor;

/* Creates the schema if missing. */
int cry_store_schema(sqlite3 *db, sdk_err *err);
/* True when the database already holds secrets sealed by some master key. */
int cry_store_in_use(sqlite3 *db, bool *out, sdk_err *err);
/* Keeps a copy of `master` in guarded memory. Fails with CRY_EAUTH when the
 * database was sealed with another master key. `db` stays the caller's. */
int cry_store_open(sqlite3 *db, const unsigned char master[CRY_MASTER_BYTES], cry_store **out,
		   sdk_err *err);
void cry_store_close(cry_store *s);

const char *cry_type_name(enum cry_type t);
int cry_type_parse(const char *s, enum cry_type *out);
bool cry_name_valid(const char *name);

/* `import` (may be NULL: a fresh random secret) is CRY_SECRET_BYTES long.
 * On success *out is the key's public description (as cry_key_get). */
int cry_key_create(cry_store *s, const char *name, enum cry_type type,
		   const unsigned char *import, int64_t now_ms, json_t **out, sdk_err *err);
/* Adds version latest + 1 (from `import`, or random). */
int cry_key_rotate(cry_store *s, const char *name, const unsigned char *import, int64_t now_ms,
		   json_t **out, sdk_err *err);
/* {"keys":[{"name","type","latest_version","created_at"}]} */
int cry_key_list(cry_store *s, json_t **out, sdk_err *err);
/* {"name","type","latest_version","created_at",
 *  "versions":[{"version","created_at","public_key"?}]}; never a secret. */
int cry_key_get(cry_store *s, const char *name, json_t **out, sdk_err *err);

/* For use: CRY_EPENDING while a deletion is pending, CRY_EGONE once the
 * key was destroyed. */
int cry_key_info_get(cry_store *s, const char *name, cry_key_info *out, sdk_err *err);

/* Deletion (AWS KMS's ScheduleKeyDeletion and CancelKeyDeletion): the key
 * becomes unusable at once and is destroyed at now + window_s unless the
 * deletion is cancelled. CRY_EPENDING when already pending. Each step
 * writes its audit event to the outbox in the same transaction. */
int cry_key_schedule_deletion(cry_store *s, const char *name, unsigned window_s,
			      const cry_actor *who, int64_t now_ms, json_t **out, sdk_err *err);
/* SDK_ECONFLICT when no deletion is pending. */
int cry_key_cancel_deletion(cry_store *s, const char *name, const cry_actor *who,
			    int64_t now_ms, json_t **out, sdk_err *err);
/* Destroys every key whose deletion is due: its versions' rows are deleted
 * with secure_delete on and the WAL checkpointed and truncated, so the
 * sealed secrets leave the files; a tombstone keeps the name, type and
 * times (names are never reused). Returns how many were destroyed. */
int cry_key_destroy_due(cry_store *s, int64_t now_ms, sdk_err *err);

/* The audit events not yet sent, oldest first (at most `limit`): an array
 * of event objects; *upto is the last one's id. */
int cry_outbox(cry_store *s, unsigned limit, json_t **out, int64_t *upto, sdk_err *err);
int cry_outbox_sent(cry_store *s, int64_t upto, sdk_err *err);
/* What the timer has to do: *next_due the earliest pending deletion (0:
 * none), *outbox whether audit events wait to be sent. */
int cry_pending_work(cry_store *s, int64_t *next_due, bool *outbox, sdk_err *err);
int cry_key_public(cry_store *s, const char *name, unsigned version,
		   unsigned char pk[CRY_PUBLIC_BYTES], sdk_err *err);
/* The unsealed secret of one version. The caller wipes it. */
int cry_key_secret(cry_store *s, const char *name, unsigned version,
		   unsigned char secret[CRY_SECRET_BYTES], sdk_err *err);

#endif
