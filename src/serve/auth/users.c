#include "serve/auth/users.h"

#include "sdk/db.h"
#include "serve/auth/lockout.h"
#include "serve/store/pg_auth.h"

#include <stdio.h>
#include <string.h>

/* Idle time is written back at most this often: not on every request. */
#define TOUCH_EVERY_MS 30000

int auth_store_init(sqlite3 *db, sdk_err *err)
{
	return sdk_db_exec(db,
			   "CREATE TABLE IF NOT EXISTS users ("
			   " name TEXT PRIMARY KEY, password_hash TEXT NOT NULL,"
			   " role TEXT NOT NULL CHECK (role IN ('user', 'admin')),"
			   " created_ms INTEGER NOT NULL, password_changed_ms INTEGER NOT NULL);"
			   "CREATE TABLE IF NOT EXISTS sessions ("
			   " token_hash TEXT PRIMARY KEY,"
			   " user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,"
			   " created_ms INTEGER NOT NULL, last_ms INTEGER NOT NULL,"
			   " expires_ms INTEGER NOT NULL);"
			   "CREATE INDEX IF NOT EXISTS sessions_user ON sessions(user);"
			   /* lockout.h: failed logins of an account, gone with it */
			   "CREATE TABLE IF NOT EXISTS login_failures ("
			   " user TEXT PRIMARY KEY REFERENCES users(name) ON DELETE CASCADE,"
			   " failures INTEGER NOT NULL, since_ms INTEGER NOT NULL);",
			   err);
}

bool auth_name_valid(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > AUTH_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		      c == '-'))
			return false;
	}
	return true;
}

const char *auth_password_problem(const char *pw)
{
	size_t n = strlen(pw);
	if (n < AUTH_PASSWORD_MIN)
		return "a password has at least 10 characters";
	if (n > AUTH_PASSWORD_MAX)
		return "a password has at most 1024 characters";
	return NULL;
}

const char *auth_role_name(int role)
{
	return role == AUTH_ROLE_ADMIN ? "admin" : role == AUTH_ROLE_USER ? "user" : "none";
}

int auth_role_parse(const char *s)
{
	if (!strcmp(s, "admin"))
		return AUTH_ROLE_ADMIN;
	if (!strcmp(s, "user"))
		return AUTH_ROLE_USER;
	return AUTH_ROLE_NONE;
}

int auth_hash(const char *pw, unsigned ops, size_t mem_bytes, char out[AUTH_HASH_MAX])
{
	return crypto_pwhash_str_alg(out, pw, strlen(pw), ops, mem_bytes,
				     crypto_pwhash_ALG_ARGON2ID13) == 0
		       ? 0
		       : SDK_EIO;
}

bool auth_verify(const char *hash, const char *pw)
{
	return crypto_pwhash_str_verify(hash, pw, strlen(pw)) == 0;
}

void auth_token_hash(const char *token, char hex[65])
{
	unsigned char h[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(h, (const unsigned char *)token, strlen(token));
	sodium_bin2hex(hex, 65, h, sizeof h);
}

static int step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE		  ? 0
	       : rc == SQLITE_CONSTRAINT	  ? SDK_ECONFLICT
	       : (rc & 0xff) == SQLITE_FULL ? SDK_EFULL /* answered 507 (docs/errors.md) */
					  : SDK_EIO;
}

int auth_user_get(grace_store *store, const char *name, char *hash, int *role)
{
	if (store_is_pg(store))
		return pg_auth_user_get(store->pg, name, hash, role);
	sqlite3 *db = store->db;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "SELECT password_hash, role FROM users WHERE name = ?", -1, &st,
			       NULL) != SQLITE_OK)
		return SDK_EIO;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (hash)
			snprintf(hash, AUTH_HASH_MAX, "%s", (const char *)sqlite3_column_text(st, 0));
		if (role)
			*role = auth_role_parse((const char *)sqlite3_column_text(st, 1));
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? SDK_ENOTFOUND : SDK_EIO;
}

int auth_user_add(grace_store *store, const char *name, const char *hash, int role, int64_t now_ms)
{
	if (store_is_pg(store))
		return pg_auth_user_add(store->pg, name, hash, role, now_ms);
	sqlite3 *db = store->db;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "INSERT INTO users (name, password_hash, role, created_ms,"
			       " password_changed_ms) VALUES (?1, ?2, ?3, ?4, ?4)",
			       -1, &st, NULL) != SQLITE_OK)
		return SDK_EIO;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, auth_role_name(role), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, now_ms);
	return step_done(st);
}

int auth_user_delete(grace_store *store, const char *name)
{
	if (store_is_pg(store))
		return pg_auth_user_delete(store->pg, name);
	sqlite3 *db = store->db;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "DELETE FROM users WHERE name = ?", -1, &st, NULL) != SQLITE_OK)
		return SDK_EIO;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int rc = step_done(st);
	return rc == 0 && sqlite3_changes(db) == 0 ? SDK_ENOTFOUND : rc;
}

int auth_user_set_password(grace_store *store, const char *name, const char *hash, int64_t now_ms)
{
	if (store_is_pg(store))
		return pg_auth_user_set_password(store->pg, name, hash, now_ms);
	sqlite3 *db = store->db;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "UPDATE users SET password_hash = ?, password_changed_ms = ?"
			       " WHERE name = ?",
			       -1, &st, NULL) != SQLITE_OK)
		return SDK_EIO;
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now_ms);
	sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
	int rc = step_done(st);
	if (rc == 0 && sqlite3_changes(db) == 0)
		return SDK_ENOTFOUND;
	if (rc < 0)
		return rc;
	/* A changed password ends every session that the old one opened, and
	 * lifts a lock on the account (how an admin unlocks one). */
	if (auth_lockout_clear(store, name) < 0 ||
	    sqlite3_prepare_v2(db, "DELETE FROM sessions WHERE user = ?", -1, &st, NULL) !=
		    SQLITE_OK)
		return SDK_EIO;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	return step_done(st);
}

int auth_user_set_role(grace_store *store, const char *name, int role)
{
	if (store_is_pg(store))
		return pg_auth_user_set_role(store->pg, name, role);
	sqlite3 *db = store->db;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "UPDATE users SET role = ? WHERE name = ?", -1, &st, NULL) !=
	    SQLITE_OK)
		return SDK_EIO;
	sqlite3_bind_text(st, 1, auth_role_name(role), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	int rc = step_done(st);
	return rc == 0 && sqlite3_changes(db) == 0 ? SDK_ENOTFOUND : rc;
}

int auth_user_count(grace_store *store, int role)
{
	if (store_is_pg(store))
		return pg_auth_user_count(store->pg, role);
	sqlite3 *db = store->db;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "SELECT count(*) FROM users WHERE ?1 IS NULL OR role = ?1", -1,
			       &st, NULL) != SQLITE_OK)
		return SDK_EIO;
	if (role != AUTH_ROLE_NONE)
		sqlite3_bind_text(st, 1, auth_role_name(role), -1, SQLITE_STATIC);
	int n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : SDK_EIO;
	sqlite3_finalize(st);
	return n;
}

json_t *auth_user_list(grace_store *store)
{
	if (store_is_pg(store))
		return pg_auth_user_list(store->pg);
	sqlite3 *db = store->db;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "SELECT name, role, created_ms, password_changed_ms FROM users"
			       " ORDER BY name",
			       -1, &st, NULL) != SQLITE_OK)
		return NULL;
	json_t *out = json_array();
	while (sqlite3_step(st) == SQLITE_ROW)
		json_array_append_new(out, json_pack("{s:s, s:s, s:I, s:I}", "name",
						     (const char *)sqlite3_column_text(st, 0), "role",
						     (const char *)sqlite3_column_text(st, 1),
						     "created_ms",
						     (json_int_t)sqlite3_column_int64(st, 2),
						     "password_changed_ms",
						     (json_int_t)sqlite3_column_int64(st, 3)));
	sqlite3_finalize(st);
	return out;
}

int auth_session_create(grace_store *store, const char *user, int64_t now_ms, unsigned max_s,
			char *token, int64_t *expires_ms)
{
	unsigned char raw[32];
	randombytes_buf(raw, sizeof raw);
	sodium_bin2base64(token, AUTH_TOKEN_MAX + 1, raw, sizeof raw,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(raw, sizeof raw);
	char hex[65];
	auth_token_hash(token, hex);
	*expires_ms = now_ms + (int64_t)max_s * 1000;
	if (store_is_pg(store))
		return pg_auth_session_create(store->pg, hex, user, now_ms, *expires_ms);
	sqlite3 *db = store->db;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "INSERT INTO sessions (token_hash, user, created_ms, last_ms, expires_ms)"
			       " VALUES (?1, ?2, ?3, ?3, ?4)",
			       -1, &st, NULL) != SQLITE_OK)
		return SDK_EIO;
	sqlite3_bind_text(st, 1, hex, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, user, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now_ms);
	sqlite3_bind_int64(st, 4, *expires_ms);
	int rc = step_done(st);
	/* Expired sessions are swept as new ones are made. */
	if (rc == 0) {
		char sql[96];
		snprintf(sql, sizeof sql, "DELETE FROM sessions WHERE expires_ms < %lld",
			 (long long)now_ms);
		sqlite3_exec(db, sql, NULL, NULL, NULL);
	}
	return rc;
}

int auth_session_check(grace_store *store, const char *token, int64_t now_ms, unsigned idle_s,
		       char user[AUTH_NAME_MAX + 1], int *role)
{
	if (strlen(token) > AUTH_TOKEN_MAX)
		return SDK_ENOTFOUND;
	char hex[65];
	auth_token_hash(token, hex);
	if (store_is_pg(store))
		return pg_auth_session_check(store->pg, hex, now_ms, idle_s, TOUCH_EVERY_MS, user,
					     role);
	sqlite3 *db = store->db;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "SELECT s.user, u.role, s.last_ms, s.expires_ms FROM sessions s"
			       " JOIN users u ON u.name = s.user WHERE s.token_hash = ?",
			       -1, &st, NULL) != SQLITE_OK)
		return SDK_EIO;
	sqlite3_bind_text(st, 1, hex, -1, SQLITE_STATIC);
	int rc = SDK_ENOTFOUND;
	int64_t last = 0;
	if (sqlite3_step(st) == SQLITE_ROW) {
		last = sqlite3_column_int64(st, 2);
		int64_t expires = sqlite3_column_int64(st, 3);
		if (now_ms < expires && now_ms - last < (int64_t)idle_s * 1000) {
			snprintf(user, AUTH_NAME_MAX + 1, "%s", (const char *)sqlite3_column_text(st, 0));
			*role = auth_role_parse((const char *)sqlite3_column_text(st, 1));
			rc = 0;
		}
	}
	sqlite3_finalize(st);
	if (rc == 0 && now_ms - last > TOUCH_EVERY_MS &&
	    sqlite3_prepare_v2(db, "UPDATE sessions SET last_ms = ? WHERE token_hash = ?", -1, &st,
			       NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, now_ms);
		sqlite3_bind_text(st, 2, hex, -1, SQLITE_STATIC);
		step_done(st);
	}
	return rc;
}

int auth_session_delete(grace_store *store, const char *token)
{
	char hex[65];
	auth_token_hash(token, hex);
	if (store_is_pg(store))
		return pg_auth_session_delete(store->pg, hex);
	sqlite3 *db = store->db;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "DELETE FROM sessions WHERE token_hash = ?", -1, &st, NULL) !=
	    SQLITE_OK)
		return SDK_EIO;
	sqlite3_bind_text(st, 1, hex, -1, SQLITE_STATIC);
	return step_done(st);
}
