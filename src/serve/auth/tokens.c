#include "serve/auth/tokens.h"

#include "sdk/db.h"
#include "sdk/err.h"
#include "serve/store/pg_auth.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define SCOPE_PART_MAX 31

int auth_tokens_init(sqlite3 *db, sdk_err *err)
{
	return sdk_db_exec(db,
			   "CREATE TABLE IF NOT EXISTS api_tokens ("
			   " id TEXT PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE,"
			   " owner TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,"
			   " name TEXT NOT NULL, scopes TEXT NOT NULL,"
			   " created_ms INTEGER NOT NULL, expires_ms INTEGER,"
			   " last_used_ms INTEGER, revoked_ms INTEGER);"
			   "CREATE INDEX IF NOT EXISTS api_tokens_owner ON api_tokens(owner);",
			   err);
}

bool auth_is_api_token(const char *presented)
{
	return !strncmp(presented, AUTH_API_TOKEN_PREFIX, sizeof AUTH_API_TOKEN_PREFIX - 1);
}

static bool part_valid(const char *s, size_t n, const char *extra)
{
	if (n == 0 || n > SCOPE_PART_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
		      strchr(extra, s[i])))
			return false;
	return true;
}

bool auth_scope_valid(const char *scope)
{
	const char *colon = strchr(scope, ':');
	return colon && strlen(scope) <= AUTH_SCOPE_MAX &&
	       part_valid(scope, (size_t)(colon - scope), "-") &&
	       part_valid(colon + 1, strlen(colon + 1), "-_.");
}

bool auth_token_allows(const auth_api_token *t, const char *action)
{
	const char *s = t->scopes;
	for (size_t i = 0; i < t->n_scopes; i++, s += strlen(s) + 1) {
		const char *colon = strchr(s, ':');
		size_t fam = (size_t)(colon - s);
		if (!strncmp(s, action, fam) && action[fam] == '.' && !strcmp(colon + 1, action + fam + 1))
			return true;
	}
	return false;
}

static int step_done(sqlite3 *db, sqlite3_stmt *st, sdk_err *err, const char *what)
{
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : sdk_fail(err, sdk_status_of_sqlite(rc), "%s: %s", what, sqlite3_errmsg(db));
}

/* Reads a stored scopes array into t. */
static void scopes_load(auth_api_token *t, const char *json)
{
	json_t *arr = json_loads(json ? json : "[]", 0, NULL);
	size_t i, o = 0;
	json_t *v;
	t->n_scopes = 0;
	json_array_foreach (arr, i, v) {
		const char *s = json_string_value(v);
		size_t n = s ? strlen(s) : 0;
		if (!s || !auth_scope_valid(s) || t->n_scopes == AUTH_SCOPES_MAX ||
		    o + n + 1 > sizeof t->scopes)
			continue; /* never more than was allowed at creation */
		memcpy(t->scopes + o, s, n + 1);
		o += n + 1;
		t->n_scopes++;
	}
	json_decref(arr);
}

/* The owner's live tokens: a count, or SDK_EIO. */
static int count_live(sqlite3 *db, const char *owner, int64_t now_ms)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "SELECT count(*) FROM api_tokens WHERE owner = ? AND revoked_ms IS NULL"
			       " AND (expires_ms IS NULL OR expires_ms > ?)",
			       -1, &st, NULL) != SQLITE_OK)
		return SDK_EIO;
	sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now_ms);
	int live = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
	sqlite3_finalize(st);
	return live < 0 ? SDK_EIO : live;
}

int auth_token_create(grace_store *store, const char *owner, const char *name, json_t *scopes,
		      int64_t now_ms, int64_t expires_ms, auth_api_token *out, char *secret)
{
	int role;
	if (auth_user_get(store, owner, NULL, &role) < 0)
		return SDK_ENOTFOUND;
	sqlite3 *db = store->db;
	sqlite3_stmt *st;
	int live = store_is_pg(store) ? pg_auth_token_count_live(store->pg, owner, now_ms)
				      : count_live(db, owner, now_ms);
	if (live < 0)
		return live;
	if (live >= AUTH_API_TOKENS_PER_USER)
		return SDK_EQUOTA;

	unsigned char raw[32], rid[8];
	randombytes_buf(raw, sizeof raw);
	randombytes_buf(rid, sizeof rid);
	memcpy(secret, AUTH_API_TOKEN_PREFIX, sizeof AUTH_API_TOKEN_PREFIX - 1);
	sodium_bin2base64(secret + sizeof AUTH_API_TOKEN_PREFIX - 1,
			  AUTH_TOKEN_MAX + 1 - (sizeof AUTH_API_TOKEN_PREFIX - 1), raw, sizeof raw,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(raw, sizeof raw);
	memset(out, 0, sizeof *out);
	memcpy(out->id, "tok_", 4);
	sodium_bin2hex(out->id + 4, sizeof out->id - 4, rid, sizeof rid);
	snprintf(out->name, sizeof out->name, "%s", name);
	snprintf(out->owner, sizeof out->owner, "%s", owner);
	out->role = role;
	char *text = json_dumps(scopes, JSON_COMPACT);
	if (!text)
		return SDK_EIO;
	scopes_load(out, text);
	char hex[65];
	auth_token_hash(secret, hex);
	if (store_is_pg(store)) {
		int rc = pg_auth_token_insert(store->pg, out, hex, text, now_ms, expires_ms);
		free(text);
		if (rc < 0)
			sodium_memzero(secret, AUTH_TOKEN_MAX + 1);
		return rc;
	}
	if (sqlite3_prepare_v2(db,
			       "INSERT INTO api_tokens (id, token_hash, owner, name, scopes, created_ms,"
			       " expires_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
			       -1, &st, NULL) != SQLITE_OK) {
		free(text);
		return SDK_EIO;
	}
	sqlite3_bind_text(st, 1, out->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, hex, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, owner, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, text, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, now_ms);
	if (expires_ms > 0)
		sqlite3_bind_int64(st, 7, expires_ms);
	else
		sqlite3_bind_null(st, 7);
	int rc = step_done(db, st, NULL, "storing the token");
	free(text);
	if (rc < 0)
		sodium_memzero(secret, AUTH_TOKEN_MAX + 1);
	return rc;
}

/* auth_token_check in PostgreSQL: the same decisions on the row read. */
static int token_check_pg(store_pg *p, const char *hex, int64_t now_ms, auth_api_token *out)
{
	char scopes[AUTH_SCOPES_TEXT_MAX * 2];
	bool revoked;
	int64_t expires, last;
	int rc = pg_auth_token_get(p, hex, out, scopes, sizeof scopes, &revoked, &expires, &last);
	if (rc < 0)
		return rc;
	scopes_load(out, scopes);
	if (revoked || (expires > 0 && expires <= now_ms))
		return SDK_ENOTFOUND;
	if (last < 0 || now_ms - last >= AUTH_API_TOKEN_TOUCH_MS)
		pg_auth_token_touch(p, out->id, now_ms);
	return 0;
}

int auth_token_check(grace_store *store, const char *secret, int64_t now_ms, auth_api_token *out)
{
	if (strlen(secret) > AUTH_TOKEN_MAX || !auth_is_api_token(secret))
		return SDK_ENOTFOUND;
	char hex[65];
	auth_token_hash(secret, hex);
	if (store_is_pg(store))
		return token_check_pg(store->pg, hex, now_ms, out);
	sqlite3 *db = store->db;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "SELECT t.id, t.name, t.owner, u.role, t.scopes, t.expires_ms,"
			       " t.last_used_ms, t.revoked_ms FROM api_tokens t"
			       " JOIN users u ON u.name = t.owner WHERE t.token_hash = ?",
			       -1, &st, NULL) != SQLITE_OK)
		return SDK_EIO;
	sqlite3_bind_text(st, 1, hex, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(st);
		return rc == SQLITE_DONE ? SDK_ENOTFOUND : SDK_EIO;
	}
	bool revoked = sqlite3_column_type(st, 7) != SQLITE_NULL;
	bool expired = sqlite3_column_type(st, 5) != SQLITE_NULL &&
		       sqlite3_column_int64(st, 5) <= now_ms;
	bool touch = sqlite3_column_type(st, 6) == SQLITE_NULL ||
		     now_ms - sqlite3_column_int64(st, 6) >= AUTH_API_TOKEN_TOUCH_MS;
	memset(out, 0, sizeof *out);
	snprintf(out->id, sizeof out->id, "%s", (const char *)sqlite3_column_text(st, 0));
	snprintf(out->name, sizeof out->name, "%s", (const char *)sqlite3_column_text(st, 1));
	snprintf(out->owner, sizeof out->owner, "%s", (const char *)sqlite3_column_text(st, 2));
	out->role = auth_role_parse((const char *)sqlite3_column_text(st, 3));
	scopes_load(out, (const char *)sqlite3_column_text(st, 4));
	sqlite3_finalize(st);
	if (revoked || expired)
		return SDK_ENOTFOUND;
	if (touch && sqlite3_prepare_v2(db, "UPDATE api_tokens SET last_used_ms = ? WHERE id = ?",
					-1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, now_ms);
		sqlite3_bind_text(st, 2, out->id, -1, SQLITE_STATIC);
		step_done(db, st, NULL, "recording the token's use"); /* a failed record is no refusal */
	}
	return 0;
}

static json_t *int_or_null(sqlite3_stmt *st, int col)
{
	return sqlite3_column_type(st, col) == SQLITE_NULL ? json_null()
							    : json_integer(sqlite3_column_int64(st, col));
}

json_t *auth_token_list(grace_store *store, const char *owner)
{
	if (store_is_pg(store))
		return pg_auth_token_list(store->pg, owner);
	sqlite3 *db = store->db;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "SELECT id, name, owner, scopes, created_ms, expires_ms, last_used_ms,"
			       " revoked_ms FROM api_tokens WHERE ?1 IS NULL OR owner = ?1"
			       " ORDER BY created_ms DESC, id",
			       -1, &st, NULL) != SQLITE_OK)
		return NULL;
	if (owner)
		sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
	json_t *arr = json_array();
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *scopes = json_loads((const char *)sqlite3_column_text(st, 3), 0, NULL);
		json_array_append_new(
			arr, json_pack("{s:s, s:s, s:s, s:o, s:I, s:o, s:o, s:o}", "id",
				       (const char *)sqlite3_column_text(st, 0), "name",
				       (const char *)sqlite3_column_text(st, 1), "user",
				       (const char *)sqlite3_column_text(st, 2), "scopes",
				       scopes ? scopes : json_array(), "created_ms",
				       (json_int_t)sqlite3_column_int64(st, 4), "expires_ms",
				       int_or_null(st, 5), "last_used_ms", int_or_null(st, 6),
				       "revoked_ms", int_or_null(st, 7)));
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		json_decref(arr);
		return NULL;
	}
	return arr;
}

int auth_token_revoke(grace_store *store, const char *id, const char *owner, int64_t now_ms)
{
	if (store_is_pg(store))
		return pg_auth_token_revoke(store->pg, id, owner, now_ms);
	sqlite3 *db = store->db;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "UPDATE api_tokens SET revoked_ms = ?1 WHERE id = ?2 AND revoked_ms IS NULL"
			       " AND (?3 IS NULL OR owner = ?3)",
			       -1, &st, NULL) != SQLITE_OK)
		return SDK_EIO;
	sqlite3_bind_int64(st, 1, now_ms);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	if (owner)
		sqlite3_bind_text(st, 3, owner, -1, SQLITE_STATIC);
	int rc = step_done(db, st, NULL, "revoking the token");
	if (rc == 0 && sqlite3_changes(db) == 0)
		return SDK_ENOTFOUND;
	return rc;
}
