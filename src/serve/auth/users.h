/* Users and sessions, kept in the store (serve/store/store.h): the main
 * process's SQLite file, or PostgreSQL when [store] says so. Passwords
 * are stored only as Argon2id strings; session tokens only as hashes. The
 * hash functions block (by design) and run on the worker pool. */
#ifndef GRACE_AUTH_USERS_H
#define GRACE_AUTH_USERS_H

#include "serve/layer.h"

#include <jansson.h>
#include <sodium.h>
#include "sdk/err.h"

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "serve/store/store.h"

enum { AUTH_ROLE_NONE = 0, AUTH_ROLE_USER = 1, AUTH_ROLE_ADMIN = 2 };

#define AUTH_NAME_MAX 64
#define AUTH_PASSWORD_MIN 10
#define AUTH_PASSWORD_MAX 1024
#define AUTH_HASH_MAX crypto_pwhash_STRBYTES
#define AUTH_TOKEN_MAX 64 /* base64url of 32 bytes is 43 characters */

int auth_store_init(sqlite3 *db, sdk_err *err);

bool auth_name_valid(const char *name);
/* NULL when the password is acceptable, else why not. */
const char *auth_password_problem(const char *pw);
const char *auth_role_name(int role);
int auth_role_parse(const char *s); /* AUTH_ROLE_NONE when unknown */

/* Blocking (hundreds of ms by design): call from the worker pool or a CLI.
 * 0, or SDK_EIO when libsodium cannot hash (out of memory). */
int auth_hash(const char *pw, unsigned ops, size_t mem_bytes, char out[AUTH_HASH_MAX]);
bool auth_verify(const char *hash, const char *pw);

/* The users' store (grace.db, or PostgreSQL through store/pg_auth.c)
 * answers with sdk_err.h statuses: SDK_ENOTFOUND (no such user or
 * session), SDK_ECONFLICT (the user exists), SDK_EFULL (the disk is full)
 * or SDK_EIO (any other failure, the store unreachable included).
 *
 * 0, SDK_ENOTFOUND or SDK_EIO. `hash` (AUTH_HASH_MAX bytes) may be NULL. */
int auth_user_get(grace_store *store, const char *name, char *hash, int *role);
int auth_user_add(grace_store *store, const char *name, const char *hash, int role, int64_t now_ms);
int auth_user_delete(grace_store *store, const char *name);
/* Also ends every session of the user and lifts a lock on the account. */
int auth_user_set_password(grace_store *store, const char *name, const char *hash, int64_t now_ms);
/* 0, SDK_ENOTFOUND or SDK_EIO. Changed only through an approved change request
 * (docs/governance.md, action user.role). */
int auth_user_set_role(grace_store *store, const char *name, int role);
int auth_user_count(grace_store *store, int role); /* role NONE: all */
json_t *auth_user_list(grace_store *store);

/* A new session: `token` (AUTH_TOKEN_MAX + 1 bytes) goes to the client and
 * is stored only as its hash. */
int auth_session_create(grace_store *store, const char *user, int64_t now_ms, unsigned max_s,
			char *token, int64_t *expires_ms);
/* Checks a token against both expiries and refreshes its idle time. 0 with
 * the user's name and role, SDK_ENOTFOUND or SDK_EIO. */
int auth_session_check(grace_store *store, const char *token, int64_t now_ms, unsigned idle_s,
		       char user[AUTH_NAME_MAX + 1], int *role);
int auth_session_delete(grace_store *store, const char *token);
/* The stored form of a token. */
void auth_token_hash(const char *token, char hex[65]);

#endif
