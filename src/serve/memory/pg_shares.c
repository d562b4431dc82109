/* The PostgreSQL engine's shares (engine.h's steps): read-only grants of
 * one user's table to others. */
#include "serve/memory/pg_int.h"

#include <stdlib.h>
#include <string.h>

int mem_pg_shares_json(void *c, int64_t table_id, json_t **out, sdk_err *e)
{
	char id[21];
	const char *p[] = { store_pg_i64(id, table_id) };
	int rc;
	PGresult *r = mem_pg_exec(c, "read shares",
				  "SELECT username FROM mem_shares WHERE table_id = $1::bigint"
				  " ORDER BY username COLLATE \"C\"",
				  1, p, &rc, e);
	if (!r)
		return rc;
	json_t *a = json_array();
	for (int i = 0; a && i < store_pq->PQntuples(r); i++)
		if (json_array_append_new(a, json_string(mem_pg_val(r, i, 0))) < 0) {
			json_decref(a);
			a = NULL;
		}
	store_pq->PQclear(r);
	if (!a)
		return mem_oom(e);
	*out = a;
	return 0;
}

int mem_pg_share_set(void *c, int64_t table_id, const char *user, bool add, int64_t now_ms,
		     sdk_err *e)
{
	char id[21], now[21];
	const char *p[] = { store_pg_i64(id, table_id), user, store_pg_i64(now, now_ms) };
	return add ? mem_pg_run(c, "change shares",
				"INSERT INTO mem_shares (table_id, username, created_ms)"
				" VALUES ($1::bigint, $2, $3::bigint) ON CONFLICT DO NOTHING",
				3, p, e)
		   : mem_pg_run(c, "change shares",
				"DELETE FROM mem_shares WHERE table_id = $1::bigint AND username = $2",
				2, p, e);
}

int mem_pg_shares_count(void *c, int64_t table_id, int64_t *n, sdk_err *e)
{
	char id[21];
	const char *p[] = { store_pg_i64(id, table_id) };
	int rc;
	PGresult *r = mem_pg_exec(c, "count shares",
				  "SELECT count(*) FROM mem_shares WHERE table_id = $1::bigint", 1, p,
				  &rc, e);
	if (!r)
		return rc;
	*n = store_pg_get_i64(r, 0, 0);
	store_pq->PQclear(r);
	return 0;
}

int mem_pg_shares_drop_user(void *c, const char *user, sdk_err *e)
{
	const char *p[] = { user };
	return mem_pg_run(c, "delete shares", "DELETE FROM mem_shares WHERE username = $1", 1, p, e);
}
