/* The kernels' side of a role change (owner_roles.h says what and why). */
#include "sdk/owner_roles.h"

#include "sdk/call.h"
#include "sdk/db.h"
#include "sdk/kernel.h"
#include "sdk/log.h"
#include "sdk/svid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char or_schema[] = "CREATE TABLE IF NOT EXISTS owner_roles ("
				" owner TEXT PRIMARY KEY,"
				" version INTEGER NOT NULL) WITHOUT ROWID;";

bool sdk_owner_roles_wait_at_start(void)
{
	/* grace serve hands every kernel it spawns the hash of its attestation. */
	const char *main_hash = getenv(SDK_MAIN_ATTEST_ENV);
	return main_hash && *main_hash;
}

static bool name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > SDK_OWNER_NAME_MAX)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' || *p == '.'))
			return false;
	return true;
}

static void invalid(sdk_req *req, const char *field, const char *msg)
{
	sdk_reply_json(req, 400,
		       json_pack("{s:{s:s, s:s, s:s, s:s}}", "error", "code", "invalid", "message",
				 msg, "request_id", sdk_req_id(req), "field", field));
}

const json_t *sdk_owner_roles_take(sdk_req *req, const char *token, bool *complete)
{
	int role;
	const char *user = sdk_req_caller(req, token, &role);
	const char *caller = sdk_req_header(req, SDK_CALLER_HEADER);
	if (user || !caller || strcmp(caller, "grace") != 0) {
		sdk_reply_error(req, 403, "forbidden",
				"only the main process tells a kernel that a user's role changed");
		return NULL;
	}
	json_t *body = sdk_req_json(req, true);
	if (!body)
		return NULL;
	json_t *roles = json_object_get(body, "roles");
	if (!json_is_array(roles)) {
		invalid(req, "roles", "roles is an array of {owner, role, version}");
		return NULL;
	}
	if (json_array_size(roles) > SDK_OWNER_ROLES_MAX) {
		invalid(req, "roles", "at most 500 entries in one request");
		return NULL;
	}
	json_t *c = json_object_get(body, "complete");
	if (c && !json_is_boolean(c)) {
		invalid(req, "complete", "complete is true or false");
		return NULL;
	}
	*complete = !json_is_false(c);
	size_t i;
	json_t *e;
	json_array_foreach(roles, i, e) {
		const char *owner = json_string_value(json_object_get(e, "owner"));
		const char *r = json_string_value(json_object_get(e, "role"));
		json_t *v = json_object_get(e, "version");
		if (!json_is_object(e) || !name_ok(owner)) {
			invalid(req, "roles.owner", "owner is a user name");
			return NULL;
		}
		if (!r || (strcmp(r, "user") && strcmp(r, "admin"))) {
			invalid(req, "roles.role", "role is 'user' or 'admin'");
			return NULL;
		}
		if (!json_is_integer(v) || json_integer_value(v) < 1) {
			invalid(req, "roles.version", "version is a positive integer");
			return NULL;
		}
	}
	return roles;
}

static int stored_version(sqlite3 *db, const char *owner, int64_t *out, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db, "SELECT version FROM owner_roles WHERE owner = ?1", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
	int step = sqlite3_step(st);
	*out = step == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	return step == SQLITE_ROW || step == SQLITE_DONE ? 0 : sdk_db_fail(db, err, "owner_roles");
}

static int run_one(sqlite3 *db, const char *sql, const char *role, const char *owner,
		   int64_t *items, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db, sql, &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, role, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
	int step = sqlite3_step(st);
	sqlite3_finalize(st);
	if (step != SQLITE_DONE)
		return sdk_db_fail(db, err, "owner roles");
	*items += sqlite3_changes(db);
	return 0;
}

static int store_version(sqlite3 *db, const char *owner, int64_t version, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
				"INSERT INTO owner_roles (owner, version) VALUES (?1, ?2)"
				" ON CONFLICT (owner) DO UPDATE SET version = excluded.version",
				&st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, version);
	int step = sqlite3_step(st);
	sqlite3_finalize(st);
	return step == SQLITE_DONE ? 0 : sdk_db_fail(db, err, "owner_roles");
}

int sdk_owner_roles_apply(sqlite3 *db, const json_t *roles, const char *const *updates,
			  size_t n_updates, json_t **applied, int64_t *items, sdk_err *err)
{
	sdk_err why;
	*items = 0;
	*applied = NULL;
	if (sdk_db_exec(db, or_schema, &why) < 0 || sdk_db_exec(db, "BEGIN IMMEDIATE", &why) < 0)
		return sdk_fail(err, SDK_EIO, "owner roles: %s", why.msg);
	json_t *done = json_array();
	int rc = done ? 0 : sdk_fail(err, SDK_EIO, "out of memory");
	size_t i;
	json_t *e;
	json_array_foreach(roles, i, e) {
		if (rc < 0)
			break;
		const char *owner = json_string_value(json_object_get(e, "owner"));
		const char *role = json_string_value(json_object_get(e, "role"));
		int64_t version = json_integer_value(json_object_get(e, "version")), have;
		if ((rc = stored_version(db, owner, &have, err)) < 0 || version <= have)
			continue; /* an older notice, retried late: the newer one stands */
		for (size_t u = 0; u < n_updates && rc == 0; u++)
			rc = run_one(db, updates[u], role, owner, items, err);
		if (rc == 0)
			rc = store_version(db, owner, version, err);
		if (rc == 0)
			json_array_append_new(done, json_pack("{s:s, s:s}", "owner", owner, "role", role));
	}
	if (rc == 0 && sdk_db_exec(db, "COMMIT", &why) < 0)
		rc = sdk_fail(err, SDK_EIO, "owner roles: %s", why.msg);
	if (rc < 0) {
		sdk_db_exec(db, "ROLLBACK", NULL);
		json_decref(done);
		*items = 0;
		return rc;
	}
	*applied = done;
	return 0;
}

int sdk_owner_roles_serve(sdk_req *req, sdk_kernel *k, const char *update, const char *what,
			  bool *synced, void (*each)(void *arg, const char *owner, const char *role),
			  void *arg)
{
	bool complete = true;
	const json_t *roles = sdk_owner_roles_take(req, k->token, &complete);
	if (!roles)
		return -1;
	json_t *applied;
	int64_t items;
	sdk_err e;
	int rc = sdk_owner_roles_apply(k->db, roles, &update, 1, &applied, &items, &e);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return -1;
	}
	size_t i;
	json_t *a;
	json_array_foreach(applied, i, a) {
		if (each)
			each(arg, json_string_value(json_object_get(a, "owner")),
			     json_string_value(json_object_get(a, "role")));
	}
	if (json_array_size(applied))
		sdk_info("%s: %zu owners' roles changed (%lld %s)", k->def->name,
			 json_array_size(applied), (long long)items, what);
	bool first = !*synced && complete;
	*synced |= complete;
	sdk_reply_json(req, 200,
		       json_pack("{s:o, s:I}", "applied", applied, "items", (json_int_t)items));
	return first ? 1 : 0;
}
