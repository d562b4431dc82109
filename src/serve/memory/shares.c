/* The memory store's shares: read-only grants of one user's table to
 * others, made by an admin. */
#include "serve/memory/store_int.h"

#include <stdlib.h>
#include <string.h>

int mem_shares_json(mem_conn *c, int64_t table_id, json_t **out, sdk_err *e)
{
	sqlite3_stmt *st;
	int rc = mem_prep(c, "SELECT user FROM mem_shares WHERE table_id = ? ORDER BY user", &st, e);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, table_id);
	json_t *a = json_array();
	int step = SQLITE_DONE;
	while (a && (step = sqlite3_step(st)) == SQLITE_ROW)
		if (json_array_append_new(a, json_string((const char *)sqlite3_column_text(st, 0))) < 0)
			break;
	if (!a || step == SQLITE_ROW)
		rc = mem_oom(e);
	else if (step != SQLITE_DONE)
		rc = mem_db_fail(c->db, e, "read shares");
	sqlite3_finalize(st);
	if (rc < 0)
		json_decref(a);
	else
		*out = a;
	return rc;
}

int mem_shares_drop_user(mem_conn *c, const char *user, sdk_err *e)
{
	sqlite3_stmt *st;
	int rc = mem_prep(c, "DELETE FROM mem_shares WHERE user = ?", &st, e);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = mem_db_fail(c->db, e, "delete shares");
	sqlite3_finalize(st);
	return rc;
}

static int shares_answer(mem_conn *c, const mem_tinfo *t, json_t **out, sdk_err *e)
{
	json_t *sh;
	int rc = mem_shares_json(c, t->id, &sh, e);
	if (rc < 0)
		return rc;
	*out = json_pack("{s:s, s:s, s:o}", "owner", t->owner, "table", t->name, "shared_with", sh);
	return *out ? 0 : mem_oom(e);
}

static int shares_count(mem_conn *c, int64_t table_id, int64_t *n, sdk_err *e)
{
	sqlite3_stmt *st;
	int rc = mem_prep(c, "SELECT count(*) FROM mem_shares WHERE table_id = ?", &st, e);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, table_id);
	if (sqlite3_step(st) == SQLITE_ROW)
		*n = sqlite3_column_int64(st, 0);
	else
		rc = mem_db_fail(c->db, e, "count shares");
	sqlite3_finalize(st);
	return rc;
}

/* The users in `users` (an array of strings, checked by the caller). */
static int shares_change(mem_conn *c, const mem_tinfo *t, json_t *users, bool add,
			 int64_t now_ms, sdk_err *e)
{
	sqlite3_stmt *st;
	int rc = mem_prep(c,
			  add ? "INSERT OR IGNORE INTO mem_shares (table_id, user, created_ms)"
				" VALUES (?, ?, ?)"
			      : "DELETE FROM mem_shares WHERE table_id = ? AND user = ?",
			  &st, e);
	if (rc < 0)
		return rc;
	size_t i;
	json_t *u;
	json_array_foreach(users, i, u) {
		if (!json_is_string(u) || !strcmp(json_string_value(u), t->owner)) {
			rc = sdk_fail(e, SDK_EINVAL, "users[%zu]: a user other than the owner", i);
			break;
		}
		sqlite3_bind_int64(st, 1, t->id);
		sqlite3_bind_text(st, 2, json_string_value(u), -1, SQLITE_STATIC);
		if (add)
			sqlite3_bind_int64(st, 3, now_ms);
		if (sqlite3_step(st) != SQLITE_DONE) {
			rc = mem_db_fail(c->db, e, "change shares");
			break;
		}
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	if (rc < 0 || !add)
		return rc;
	int64_t n = 0;
	if ((rc = shares_count(c, t->id, &n, e)) < 0)
		return rc;
	if (n > MEM_SHARES_MAX)
		return sdk_fail(e, SDK_EQUOTA, "a table is shared with at most %d users",
				MEM_SHARES_MAX);
	return 0;
}

/* op: 1 add, 0 list, -1 remove. */
static int shares_op(mem_store *s, const char *owner, const char *name, json_t *users, int op,
		     int64_t now_ms, json_t **out, sdk_err *e)
{
	mem_conn c;
	mem_conn_get(s, &c);
	mem_tinfo *t = malloc(sizeof *t);
	json_t *o = NULL;
	/* As the owner: the admin acts on the owner's behalf. */
	int rc = !t ? mem_oom(e) : mem_begin(&c, op != 0, e);
	if (rc == 0)
		rc = mem_resolve(&c, owner, NULL, name, op != 0, t, e);
	if (rc == 0 && op != 0)
		rc = shares_change(&c, t, users, op > 0, now_ms, e);
	if (rc == 0)
		rc = shares_answer(&c, t, &o, e);
	if (rc == 0 && op != 0)
		rc = mem_commit(&c, e);
	if (rc == 0)
		*out = o;
	else
		json_decref(o);
	mem_rollback(&c);
	mem_conn_put(&c);
	free(t);
	return rc;
}

int mem_shares_add(mem_store *s, const char *owner, const char *name, json_t *users,
		   int64_t now_ms, json_t **out, sdk_err *e)
{
	return shares_op(s, owner, name, users, 1, now_ms, out, e);
}

int mem_shares_list(mem_store *s, const char *owner, const char *name, json_t **out,
		    sdk_err *e)
{
	return shares_op(s, owner, name, NULL, 0, 0, out, e);
}

int mem_shares_remove(mem_store *s, const char *owner, const char *name, json_t *users,
		      json_t **out, sdk_err *e)
{
	return shares_op(s, owner, name, users, -1, 0, out, e);
}
