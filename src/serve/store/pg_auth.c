#include "serve/store/pg_auth.h"

#include "sdk/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- one statement on a connection of the pool ---- */

/* Its result (the caller PQclears it), or NULL with *status. A
 * connection found broken (PostgreSQL restarted, a network cut) is opened
 * again and the statement tried once more: each of this file's single
 * statements may run twice (a lost answer to an INSERT reads as a
 * conflict at worst). */
static PGresult *query(store_pg *p, const char *sql, int n, const char *const *params,
		       int *status)
{
	sdk_err err = { { 0 } };
	PGresult *r = NULL;
	for (int attempt = 0; attempt < 2 && !r; attempt++) {
		PGconn *c = store_pg_acquire(p, &err);
		if (!c) {
			*status = SDK_EIO; /* logged by store_pg_acquire */
			return NULL;
		}
		r = store_pg_exec(c, sql, n, params, status, &err);
		bool broken = store_pq->PQstatus(c) != CONNECTION_OK;
		store_pg_release(p, c);
		if (!broken)
			break;
	}
	if (!r && *status != SDK_ECONFLICT)
		sdk_warn("store: %s", err.msg);
	return r;
}

/* 0 with the rows touched in *changed (may be NULL), or a negative sdk_status. */
static int run(store_pg *p, const char *sql, int n, const char *const *params, long *changed)
{
	int status;
	PGresult *r = query(p, sql, n, params, &status);
	if (!r)
		return status;
	if (changed)
		*changed = strtol(store_pq->PQcmdTuples(r), NULL, 10);
	store_pq->PQclear(r);
	return 0;
}

/* The statuses users.h answers with: exists, disk full, or any other
 * failure (SDK_EIO: the store is unreachable or failed). */
static int user_status(int status)
{
	return status == 0 || status == SDK_ECONFLICT || status == SDK_EFULL ? status : SDK_EIO;
}

static void copy(char *dst, size_t len, const PGresult *r, int row, int col)
{
	snprintf(dst, len, "%s", store_pq->PQgetvalue(r, row, col));
}

/* ---- users ---- */

int pg_auth_user_get(store_pg *p, const char *name, char *hash, int *role)
{
	int status;
	const char *a[] = { name };
	PGresult *r = query(p, "SELECT password_hash, role FROM users WHERE name = $1", 1, a,
			    &status);
	if (!r)
		return SDK_EIO;
	int rc = store_pq->PQntuples(r) ? 0 : SDK_ENOTFOUND;
	if (rc == 0) {
		if (hash)
			copy(hash, AUTH_HASH_MAX, r, 0, 0);
		if (role)
			*role = auth_role_parse(store_pq->PQgetvalue(r, 0, 1));
	}
	store_pq->PQclear(r);
	return rc;
}

int pg_auth_user_add(store_pg *p, const char *name, const char *hash, int role, int64_t now_ms)
{
	char now[21];
	const char *a[] = { name, hash, auth_role_name(role), store_pg_i64(now, now_ms) };
	return user_status(run(p,
			    "INSERT INTO users (name, password_hash, role, created_ms,"
			    " password_changed_ms) VALUES ($1, $2, $3, $4::bigint, $4::bigint)",
			    4, a, NULL));
}

int pg_auth_user_delete(store_pg *p, const char *name)
{
	long n = 0;
	const char *a[] = { name };
	int rc = user_status(run(p, "DELETE FROM users WHERE name = $1", 1, a, &n));
	return rc == 0 && n == 0 ? SDK_ENOTFOUND : rc;
}

int pg_auth_user_set_password(store_pg *p, const char *name, const char *hash, int64_t now_ms)
{
	sdk_err err = { { 0 } };
	PGconn *c = store_pg_acquire(p, &err); /* a failure is logged there */
	if (!c)
		return SDK_EIO;
	char now[21];
	const char *a[] = { hash, store_pg_i64(now, now_ms), name };
	const char *who[] = { name };
	long n = 0;
	/* One transaction: the new password, and with it every session the
	 * old one opened ends and a lock on the account lifts, on every host. */
	int rc = store_pg_run(c, "BEGIN", 0, NULL, NULL, &err);
	if (rc == 0)
		rc = store_pg_run(c,
				  "UPDATE users SET password_hash = $1, password_changed_ms = $2::bigint"
				  " WHERE name = $3",
				  3, a, &n, &err);
	if (rc == 0 && n == 0)
		rc = SDK_ENOTFOUND;
	if (rc == 0)
		rc = store_pg_run(c, "DELETE FROM login_failures WHERE username = $1", 1, who, NULL,
				  &err);
	if (rc == 0)
		rc = store_pg_run(c, "DELETE FROM sessions WHERE username = $1", 1, who, NULL, &err);
	if (rc == 0)
		rc = store_pg_run(c, "COMMIT", 0, NULL, NULL, &err);
	if (rc < 0 && rc != SDK_ENOTFOUND)
		sdk_warn("store: %s", err.msg);
	store_pg_release(p, c); /* rolls back what failed */
	return rc == SDK_ENOTFOUND ? SDK_ENOTFOUND : user_status(rc);
}

int pg_auth_user_set_role(store_pg *p, const char *name, int role)
{
	long n = 0;
	const char *a[] = { auth_role_name(role), name };
	int rc = user_status(run(p, "UPDATE users SET role = $1 WHERE name = $2", 2, a, &n));
	return rc == 0 && n == 0 ? SDK_ENOTFOUND : rc;
}

int pg_auth_user_count(store_pg *p, int role)
{
	int status;
	const char *a[] = { role == AUTH_ROLE_NONE ? NULL : auth_role_name(role) };
	PGresult *r = query(p, "SELECT count(*) FROM users WHERE $1::text IS NULL OR role = $1", 1,
			    a, &status);
	if (!r)
		return SDK_EIO;
	int n = (int)store_pg_get_i64(r, 0, 0);
	store_pq->PQclear(r);
	return n;
}

json_t *pg_auth_user_list(store_pg *p)
{
	int status;
	PGresult *r = query(p,
			    "SELECT name, role, created_ms, password_changed_ms FROM users"
			    " ORDER BY name COLLATE \"C\"",
			    0, NULL, &status);
	if (!r)
		return NULL;
	json_t *out = json_array();
	for (int i = 0; i < store_pq->PQntuples(r); i++)
		json_array_append_new(out, json_pack("{s:s, s:s, s:I, s:I}", "name",
						     store_pq->PQgetvalue(r, i, 0), "role", store_pq->PQgetvalue(r, i, 1),
						     "created_ms",
						     (json_int_t)store_pg_get_i64(r, i, 2),
						     "password_changed_ms",
						     (json_int_t)store_pg_get_i64(r, i, 3)));
	store_pq->PQclear(r);
	return out;
}

/* ---- sessions ---- */

int pg_auth_session_create(store_pg *p, const char *hex, const char *user, int64_t now_ms,
			   int64_t expires_ms)
{
	char now[21], exp[21];
	const char *a[] = { hex, user, store_pg_i64(now, now_ms), store_pg_i64(exp, expires_ms) };
	int rc = run(p,
		     "INSERT INTO sessions (token_hash, username, created_ms, last_ms, expires_ms)"
		     " VALUES ($1, $2, $3::bigint, $3::bigint, $4::bigint)",
		     4, a, NULL);
	/* Expired sessions are swept as new ones are made (on any host). */
	if (rc == 0)
		run(p, "DELETE FROM sessions WHERE expires_ms < $1::bigint", 1, a + 2, NULL);
	return user_status(rc);
}

int pg_auth_session_check(store_pg *p, const char *hex, int64_t now_ms, unsigned idle_s,
			  int64_t touch_every_ms, char user[AUTH_NAME_MAX + 1], int *role)
{
	int status;
	const char *a[] = { hex };
	PGresult *r = query(p,
			    "SELECT s.username, u.role, s.last_ms, s.expires_ms FROM sessions s"
			    " JOIN users u ON u.name = s.username WHERE s.token_hash = $1",
			    1, a, &status);
	if (!r)
		return SDK_EIO;
	int rc = SDK_ENOTFOUND;
	int64_t last = 0;
	if (store_pq->PQntuples(r)) {
		last = store_pg_get_i64(r, 0, 2);
		int64_t expires = store_pg_get_i64(r, 0, 3);
		if (now_ms < expires && now_ms - last < (int64_t)idle_s * 1000) {
			copy(user, AUTH_NAME_MAX + 1, r, 0, 0);
			*role = auth_role_parse(store_pq->PQgetvalue(r, 0, 1));
			rc = 0;
		}
	}
	store_pq->PQclear(r);
	if (rc == 0 && now_ms - last > touch_every_ms) {
		char now[21];
		const char *t[] = { store_pg_i64(now, now_ms), hex };
		/* GREATEST: another host may have touched it later already. */
		run(p, "UPDATE sessions SET last_ms = GREATEST(last_ms, $1::bigint)"
		       " WHERE token_hash = $2", 2, t, NULL);
	}
	return rc;
}

int pg_auth_session_delete(store_pg *p, const char *hex)
{
	const char *a[] = { hex };
	return user_status(run(p, "DELETE FROM sessions WHERE token_hash = $1", 1, a, NULL));
}

/* ---- API tokens ---- */

int pg_auth_token_count_live(store_pg *p, const char *owner, int64_t now_ms)
{
	int status;
	char now[21];
	const char *a[] = { owner, store_pg_i64(now, now_ms) };
	PGresult *r = query(p,
			    "SELECT count(*) FROM api_tokens WHERE owner = $1 AND revoked_ms IS NULL"
			    " AND (expires_ms IS NULL OR expires_ms > $2::bigint)",
			    2, a, &status);
	if (!r)
		return SDK_EIO;
	int n = (int)store_pg_get_i64(r, 0, 0);
	store_pq->PQclear(r);
	return n;
}

int pg_auth_token_insert(store_pg *p, const auth_api_token *t, const char *hex,
			 const char *scopes, int64_t now_ms, int64_t expires_ms)
{
	char now[21], exp[21];
	const char *a[] = { t->id,	 hex, t->owner, t->name, scopes, store_pg_i64(now, now_ms),
			    expires_ms > 0 ? store_pg_i64(exp, expires_ms) : NULL };
	int rc = run(p,
		     "INSERT INTO api_tokens (id, token_hash, owner, name, scopes, created_ms,"
		     " expires_ms) VALUES ($1, $2, $3, $4, $5, $6::bigint, $7::bigint)",
		     7, a, NULL);
	/* The foreign key: the owner went meanwhile. */
	return rc == SDK_ECONFLICT ? SDK_ENOTFOUND : rc;
}

int pg_auth_token_get(store_pg *p, const char *hex, auth_api_token *out, char *scopes,
		      size_t scopes_len, bool *revoked, int64_t *expires_ms, int64_t *last_used_ms)
{
	int status;
	const char *a[] = { hex };
	PGresult *r = query(p,
			    "SELECT t.id, t.name, t.owner, u.role, t.scopes, t.expires_ms,"
			    " t.last_used_ms, t.revoked_ms FROM api_tokens t"
			    " JOIN users u ON u.name = t.owner WHERE t.token_hash = $1",
			    1, a, &status);
	if (!r)
		return SDK_EIO;
	if (!store_pq->PQntuples(r)) {
		store_pq->PQclear(r);
		return SDK_ENOTFOUND;
	}
	memset(out, 0, sizeof *out);
	copy(out->id, sizeof out->id, r, 0, 0);
	copy(out->name, sizeof out->name, r, 0, 1);
	copy(out->owner, sizeof out->owner, r, 0, 2);
	out->role = auth_role_parse(store_pq->PQgetvalue(r, 0, 3));
	copy(scopes, scopes_len, r, 0, 4);
	*expires_ms = store_pq->PQgetisnull(r, 0, 5) ? 0 : store_pg_get_i64(r, 0, 5);
	*last_used_ms = store_pq->PQgetisnull(r, 0, 6) ? -1 : store_pg_get_i64(r, 0, 6);
	*revoked = !store_pq->PQgetisnull(r, 0, 7);
	store_pq->PQclear(r);
	return 0;
}

void pg_auth_token_touch(store_pg *p, const char *id, int64_t now_ms)
{
	char now[21];
	const char *a[] = { store_pg_i64(now, now_ms), id };
	run(p, "UPDATE api_tokens SET last_used_ms = GREATEST(COALESCE(last_used_ms, 0), $1::bigint)"
	       " WHERE id = $2", 2, a, NULL); /* a failed record is no refusal */
}

static json_t *int_or_null(const PGresult *r, int row, int col)
{
	return store_pq->PQgetisnull(r, row, col) ? json_null() : json_integer(store_pg_get_i64(r, row, col));
}

json_t *pg_auth_token_list(store_pg *p, const char *owner)
{
	int status;
	const char *a[] = { owner };
	PGresult *r = query(p,
			    "SELECT id, name, owner, scopes, created_ms, expires_ms, last_used_ms,"
			    " revoked_ms FROM api_tokens WHERE $1::text IS NULL OR owner = $1"
			    " ORDER BY created_ms DESC, id COLLATE \"C\"",
			    1, a, &status);
	if (!r)
		return NULL;
	json_t *arr = json_array();
	for (int i = 0; i < store_pq->PQntuples(r); i++) {
		json_t *scopes = json_loads(store_pq->PQgetvalue(r, i, 3), 0, NULL);
		json_array_append_new(
			arr, json_pack("{s:s, s:s, s:s, s:o, s:I, s:o, s:o, s:o}", "id",
				       store_pq->PQgetvalue(r, i, 0), "name", store_pq->PQgetvalue(r, i, 1), "user",
				       store_pq->PQgetvalue(r, i, 2), "scopes", scopes ? scopes : json_array(),
				       "created_ms", (json_int_t)store_pg_get_i64(r, i, 4),
				       "expires_ms", int_or_null(r, i, 5), "last_used_ms",
				       int_or_null(r, i, 6), "revoked_ms", int_or_null(r, i, 7)));
	}
	store_pq->PQclear(r);
	return arr;
}

int pg_auth_token_revoke(store_pg *p, const char *id, const char *owner, int64_t now_ms)
{
	char now[21];
	long n = 0;
	const char *a[] = { store_pg_i64(now, now_ms), id, owner };
	int rc = run(p,
		     "UPDATE api_tokens SET revoked_ms = $1::bigint WHERE id = $2"
		     " AND revoked_ms IS NULL AND ($3::text IS NULL OR owner = $3)",
		     3, a, &n);
	return rc == 0 && n == 0 ? SDK_ENOTFOUND : rc;
}

/* ---- login failures ---- */

static void count_of(const PGresult *r, limiter_count *out)
{
	int64_t n = store_pg_get_i64(r, 0, 0);
	out->failures = n < 0 ? 0 : n > 1000000 ? 1000000 : (unsigned)n;
	out->since_ms = store_pg_get_i64(r, 0, 1);
}

int pg_auth_lockout_get(store_pg *p, const char *user, limiter_count *out)
{
	*out = (limiter_count){ 0, 0 };
	int status;
	const char *a[] = { user };
	PGresult *r = query(p, "SELECT failures, since_ms FROM login_failures WHERE username = $1",
			    1, a, &status);
	if (!r)
		return status;
	if (store_pq->PQntuples(r))
		count_of(r, out);
	store_pq->PQclear(r);
	return 0;
}

int pg_auth_lockout_fail(store_pg *p, const char *user, int64_t now_ms, int64_t window_ms,
			 limiter_count *out)
{
	*out = (limiter_count){ 0, 0 };
	sdk_err err = { { 0 } };
	PGconn *c = store_pg_acquire(p, &err); /* a failure is logged there */
	if (!c)
		return SDK_EIO;
	/* Hosts count the same account at once: the row is made if missing,
	 * then locked while its count moves, so no failure is lost. */
	const char *a[] = { user };
	int status = store_pg_run(c, "BEGIN", 0, NULL, NULL, &err);
	if (status == 0)
		status = store_pg_run(c,
				      "INSERT INTO login_failures (username, failures, since_ms)"
				      " VALUES ($1, 0, 0) ON CONFLICT (username) DO NOTHING",
				      1, a, NULL, &err);
	PGresult *r = NULL;
	if (status == 0)
		r = store_pg_exec(c,
				  "SELECT failures, since_ms FROM login_failures WHERE username = $1"
				  " FOR UPDATE",
				  1, a, &status, &err);
	if (r) {
		if (store_pq->PQntuples(r))
			count_of(r, out);
		store_pq->PQclear(r);
		limiter_count_fail(out, now_ms, window_ms);
		char n[21], since[21];
		const char *b[] = { user, store_pg_i64(n, out->failures),
				    store_pg_i64(since, out->since_ms) };
		status = store_pg_run(c,
				      "UPDATE login_failures SET failures = $2::bigint,"
				      " since_ms = $3::bigint WHERE username = $1",
				      3, b, NULL, &err);
	}
	if (status == 0)
		status = store_pg_run(c, "COMMIT", 0, NULL, NULL, &err);
	store_pg_release(p, c);
	/* The foreign key: the user went while the password was being checked. */
	if (status == SDK_ECONFLICT)
		return SDK_ENOTFOUND;
	if (status < 0)
		sdk_warn("store: %s", err.msg);
	return status;
}

int pg_auth_lockout_clear(store_pg *p, const char *user)
{
	const char *a[] = { user };
	return run(p, "DELETE FROM login_failures WHERE username = $1", 1, a, NULL);
}
