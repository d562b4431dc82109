/* Users, sessions, API tokens and login failures in PostgreSQL: the same
 * contracts as the SQLite functions of serve/auth/ (users.h, tokens.h,
 * lockout.h), which call these when the store is PostgreSQL. Each takes a
 * connection from the pool for its few statements and gives it back. */
#ifndef GRACE_STORE_PG_AUTH_H
#define GRACE_STORE_PG_AUTH_H

#include "serve/layer.h"

#include "serve/auth/limiter.h"
#include "serve/auth/tokens.h"
#include "serve/store/pg.h"

int pg_auth_user_get(store_pg *p, const char *name, char *hash, int *role);
int pg_auth_user_add(store_pg *p, const char *name, const char *hash, int role, int64_t now_ms);
int pg_auth_user_delete(store_pg *p, const char *name);
int pg_auth_user_set_password(store_pg *p, const char *name, const char *hash, int64_t now_ms);
int pg_auth_user_set_role(store_pg *p, const char *name, int role);
int pg_auth_user_count(store_pg *p, int role);
json_t *pg_auth_user_list(store_pg *p);

int pg_auth_session_create(store_pg *p, const char *hex, const char *user, int64_t now_ms,
			   int64_t expires_ms);
int pg_auth_session_check(store_pg *p, const char *hex, int64_t now_ms, unsigned idle_s,
			  int64_t touch_every_ms, char user[AUTH_NAME_MAX + 1], int *role);
int pg_auth_session_delete(store_pg *p, const char *hex);

int pg_auth_token_count_live(store_pg *p, const char *owner, int64_t now_ms);
int pg_auth_token_insert(store_pg *p, const auth_api_token *t, const char *hex,
			 const char *scopes, int64_t now_ms, int64_t expires_ms);
/* 0 with the row read (scopes' JSON in `scopes`, AUTH_SCOPES_TEXT_MAX * 2
 * bytes), SDK_ENOTFOUND or SDK_EIO. */
int pg_auth_token_get(store_pg *p, const char *hex, auth_api_token *out, char *scopes,
		      size_t scopes_len, bool *revoked, int64_t *expires_ms, int64_t *last_used_ms);
void pg_auth_token_touch(store_pg *p, const char *id, int64_t now_ms);
json_t *pg_auth_token_list(store_pg *p, const char *owner);
int pg_auth_token_revoke(store_pg *p, const char *id, const char *owner, int64_t now_ms);

int pg_auth_lockout_get(store_pg *p, const char *user, limiter_count *out);
int pg_auth_lockout_fail(store_pg *p, const char *user, int64_t now_ms, int64_t window_ms,
			 limiter_count *out);
int pg_auth_lockout_clear(store_pg *p, const char *user);

#endif
