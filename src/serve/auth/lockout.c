#include "serve/auth/lockout.h"

#include "sdk/err.h"
#include "serve/store/pg_auth.h"

static int finish(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : sdk_status_of_sqlite(rc);
}

int auth_lockout_get(grace_store *store, const char *user, limiter_count *out)
{
	if (store_is_pg(store))
		return pg_auth_lockout_get(store->pg, user, out);
	sqlite3 *db = store->db;
	*out = (limiter_count){ 0, 0 };
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db,
				    "SELECT failures, since_ms FROM login_failures WHERE user = ?",
				    -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sdk_status_of_sqlite(rc);
	sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		sqlite3_int64 n = sqlite3_column_int64(st, 0);
		out->failures = n < 0 ? 0 : n > 1000000 ? 1000000 : (unsigned)n;
		out->since_ms = sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : sdk_status_of_sqlite(rc);
}

int auth_lockout_fail(grace_store *store, const char *user, int64_t now_ms, int64_t window_ms,
		      limiter_count *out)
{
	if (store_is_pg(store))
		return pg_auth_lockout_fail(store->pg, user, now_ms, window_ms, out);
	sqlite3 *db = store->db;
	int rc = auth_lockout_get(store, user, out);
	if (rc < 0)
		return rc;
	limiter_count_fail(out, now_ms, window_ms);
	sqlite3_stmt *st;
	rc = sqlite3_prepare_v2(db,
				"INSERT INTO login_failures (user, failures, since_ms) VALUES (?, ?, ?)"
				" ON CONFLICT (user) DO UPDATE SET failures = excluded.failures,"
				" since_ms = excluded.since_ms",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		return sdk_status_of_sqlite(rc);
	sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, out->failures);
	sqlite3_bind_int64(st, 3, out->since_ms);
	rc = finish(st);
	/* The foreign key: the user went while the password was being checked. */
	return rc == SDK_ECONFLICT ? SDK_ENOTFOUND : rc;
}

int auth_lockout_clear(grace_store *store, const char *user)
{
	if (store_is_pg(store))
		return pg_auth_lockout_clear(store->pg, user);
	sqlite3 *db = store->db;
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db, "DELETE FROM login_failures WHERE user = ?", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sdk_status_of_sqlite(rc);
	sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
	return finish(st);
}
