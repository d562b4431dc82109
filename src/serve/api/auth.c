/* /auth: login, logout, who am I, and user management: the HTTP side.
 * The login flow itself (limits, the check on the worker pool, the
 * session) is auth/login.c's; hashing a new password runs on the same
 * pool from here. */
#include "serve/api/api.h"
#include "serve/govern/govern.h"
#include "sdk/clock.h"

#include "sdk/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum hash_kind { HASH_CREATE, HASH_SET_PASSWORD };

/* One password job: filled on the loop, hashed on a worker, finished on
 * the loop. Passwords are wiped before it is freed. */
struct hash_job {
	api_ctx *api;
	sdk_req *req;
	enum hash_kind kind;
	char name[AUTH_NAME_MAX + 1];
	char password[AUTH_PASSWORD_MAX + 1];
	char current[AUTH_PASSWORD_MAX + 1]; /* for a user changing their own */
	char stored[AUTH_HASH_MAX];          /* the hash to check against */
	char fresh[AUTH_HASH_MAX];           /* the new hash */
	int role;
	bool ok, check_current, wrong_current;
};

static void job_free(struct hash_job *j)
{
	sodium_memzero(j, sizeof *j);
	free(j);
}

static void hash_work(void *arg)
{
	struct hash_job *j = arg;
	const grace_config *cfg = j->api->cfg;
	switch (j->kind) {
	case HASH_SET_PASSWORD:
		if (j->check_current && !auth_verify(j->stored, j->current)) {
			j->wrong_current = true;
			j->ok = false;
			break;
		}
		/* fall through */
	case HASH_CREATE:
		j->ok = auth_hash(j->password, cfg->auth.argon2_ops, auth_mem_bytes(cfg), j->fresh) == 0;
		break;
	}
}

/* 429 for an account locked for `ms` more (auth/login.h). */
static void reply_locked(sdk_req *req, int64_t ms)
{
	char after[24];
	snprintf(after, sizeof after, "%lld", (long long)(ms + 999) / 1000);
	sdk_req_add_header(req, "Retry-After", after);
	sdk_reply_error(req, 429, "too_many_attempts",
			"too many failed logins for this account; try again in %s s", after);
}

/* Reads a string member into `out`; answers 400 and returns -1 when bad. */
static int read_string(sdk_req *req, json_t *body, const char *key, char *out, size_t len,
		       bool required)
{
	json_t *v = json_object_get(body, key);
	if (!v && !required) {
		out[0] = '\0';
		return 0;
	}
	if (!json_is_string(v) || json_string_length(v) >= len || json_string_length(v) == 0 ||
	    memchr(json_string_value(v), '\0', json_string_length(v))) {
		sdk_reply_error(req, 400, "invalid", "%s is a required string (at most %zu bytes)",
				key, len - 1);
		return -1;
	}
	memcpy(out, json_string_value(v), json_string_length(v) + 1);
	return 0;
}

/* A user created, answered once an earlier user's data of the name, if
 * any, is gone from this process (user_data.h). */
struct created {
	sdk_req *req;
	char name[AUTH_NAME_MAX + 1];
	int role;
};

static void reply_created(sdk_req *req, const char *name, int role)
{
	sdk_reply_json(req, 201, json_pack("{s:s, s:s}", "name", name, "role", auth_role_name(role)));
}

static void created_answer(void *arg)
{
	struct created *c = arg;
	reply_created(c->req, c->name, c->role);
	free(c);
}

static void created_after_purge(api_ctx *api, sdk_req *req, const char *name, int role)
{
	struct created *c = malloc(sizeof *c);
	if (!c) { /* answered now; the purge's gates still hold */
		api_user_data_purge(api, name);
		reply_created(req, name, role);
		return;
	}
	c->req = req;
	snprintf(c->name, sizeof c->name, "%s", name);
	c->role = role;
	api_user_data_purge_wait(api, name, created_answer, c);
}

static void create_done(struct hash_job *j)
{
	api_ctx *api = j->api;
	if (!j->ok) {
		sdk_reply_error(j->req, 503, "busy", "cannot hash the password now");
	} else {
		int rc = auth_user_add(api->auth->store, j->name, j->fresh, j->role, sdk_wall_ms());
		if (rc == SDK_ECONFLICT)
			sdk_reply_error(j->req, 409, "exists", "user '%s' exists", j->name);
		else if (rc < 0)
			sdk_reply_status(j->req, rc == SDK_EFULL ? SDK_EFULL : SDK_EIO,
					 &(sdk_err){ "cannot store the user" });
		else
			created_after_purge(api, j->req, j->name, j->role);
	}
	job_free(j);
}

static void set_password_done(struct hash_job *j)
{
	api_ctx *api = j->api;
	if (j->wrong_current) {
		auth_account_failed(api->auth, j->name);
		sdk_reply_error(j->req, 403, "forbidden", "the current password is wrong");
	} else if (!j->ok) {
		sdk_reply_error(j->req, 503, "busy", "cannot hash the password now");
	} else {
		int rc = auth_user_set_password(api->auth->store, j->name, j->fresh, sdk_wall_ms());
		auth_cache_clear(api->auth); /* its sessions are gone: at once */
		if (rc == SDK_ENOTFOUND)
			sdk_reply_error(j->req, 404, "not_found", "no user '%s'", j->name);
		else if (rc < 0)
			sdk_reply_status(j->req, rc == SDK_EFULL ? SDK_EFULL : SDK_EIO,
					 &(sdk_err){ "cannot store the password" });
		else
			sdk_reply_json(j->req, 200,
				       json_pack("{s:s, s:b}", "name", j->name, "sessions_revoked", 1));
	}
	job_free(j);
}

static void hash_done(void *arg)
{
	struct hash_job *j = arg;
	switch (j->kind) {
	case HASH_CREATE: create_done(j); break;
	case HASH_SET_PASSWORD: set_password_done(j); break;
	}
}

static struct hash_job *job_new(api_ctx *api, sdk_req *req, enum hash_kind kind)
{
	struct hash_job *j = calloc(1, sizeof *j);
	if (!j) {
		sdk_reply_error(req, 503, "busy", "out of memory");
		return NULL;
	}
	j->api = api;
	j->req = req;
	j->kind = kind;
	return j;
}

static void job_submit(struct hash_job *j)
{
	if (sdk_pool_submit(j->api->auth->pool, hash_work, hash_done, j) < 0) {
		sdk_req_add_header(j->req, "Retry-After", "1");
		sdk_reply_error(j->req, 503, "busy", "too many password operations waiting");
		job_free(j);
	}
}

/* The HTTP side of one login: what auth_login_start answers to. */
struct login_call {
	api_ctx *api;
	sdk_req *req;
};

static void login_answer(const auth_login_result *r, void *arg)
{
	struct login_call *c = arg;
	api_ctx *api = c->api;
	sdk_req *req = c->req;
	free(c);
	if (r->status == SDK_EDENIED) {
		ob_audit(api->ob, r->name, "auth.login", "auth", "failed", sdk_req_peer(req), NULL);
		ob_publish(api->ob, "grace.auth.login",
			   json_pack("{s:s, s:s}", "user", r->name, "outcome", "failed"));
		sdk_reply_error(req, 401, "bad_credentials", "wrong user name or password");
		return;
	}
	if (r->status == AUTH_ELOCKED) {
		reply_locked(req, r->retry_after_ms);
		return;
	}
	if (r->status < 0) {
		sdk_reply_status(req, r->status, &r->err);
		return;
	}
	char cookie[256];
	if (auth_cookie_set(cookie, sizeof cookie, r->token, api->cfg->auth.session_max_s) == 0)
		sdk_req_add_header(req, "Set-Cookie", cookie);
	sdk_req_add_header(req, "Cache-Control", "no-store");
	ob_audit(api->ob, r->name, "auth.login", "auth", "ok", sdk_req_peer(req), NULL);
	ob_publish(api->ob, "grace.auth.login",
		   json_pack("{s:s, s:s}", "user", r->name, "outcome", "ok"));
	sdk_reply_json(req, 200,
		       json_pack("{s:s, s:I, s:{s:s, s:s}, s:i}", "token", r->token, "expires_at",
				 (json_int_t)r->expires_ms, "user", "name", r->name, "role",
				 auth_role_name(r->role), "idle_timeout_s",
				 (int)api->cfg->auth.session_idle_s));
	sodium_memzero(cookie, sizeof cookie);
}

static void api_auth_login(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	json_t *body = sdk_req_json(req, true);
	if (!body)
		return;
	char name[AUTH_NAME_MAX + 1], password[AUTH_PASSWORD_MAX + 1];
	if (read_string(req, body, "username", name, sizeof name, true) < 0 ||
	    read_string(req, body, "password", password, sizeof password, true) < 0)
		goto out;
	struct login_call *c = malloc(sizeof *c);
	if (!c) {
		sdk_reply_error(req, 503, "busy", "out of memory");
		goto out;
	}
	*c = (struct login_call){ api, req };
	auth_login_start(api->auth, name, password, sdk_req_peer(req), login_answer, c);
out:
	sodium_memzero(password, sizeof password);
}

static void api_auth_logout(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	char buf[AUTH_TOKEN_MAX + 1];
	bool by_cookie;
	const char *token = auth_presented_token(sdk_req_header(req, "Authorization"),
						 sdk_req_header(req, "Cookie"), buf, sizeof buf,
						 &by_cookie);
	if (token)
		auth_session_delete(api->auth->store, token);
	auth_cache_clear(api->auth);
	sdk_req_add_header(req, "Set-Cookie", AUTH_COOKIE_CLEAR);
	sdk_reply_json(req, 200, json_pack("{s:b}", "logged_out", 1));
}

static void api_auth_me(sdk_req *req, void *ctx)
{
	(void)ctx;
	int role;
	const char *user = sdk_req_user(req, &role);
	sdk_reply_json(req, 200, json_pack("{s:s, s:s}", "name", user ? user : "", "role",
					   auth_role_name(role)));
}

static void create_user(api_ctx *api, sdk_req *req, int forced_role)
{
	json_t *body = sdk_req_json(req, true);
	if (!body)
		return;
	struct hash_job *j = job_new(api, req, HASH_CREATE);
	if (!j)
		return;
	char role[16];
	if (read_string(req, body, "username", j->name, sizeof j->name, true) < 0 ||
	    read_string(req, body, "password", j->password, sizeof j->password, true) < 0 ||
	    read_string(req, body, "role", role, sizeof role, false) < 0) {
		job_free(j);
		return;
	}
	const char *why = auth_password_problem(j->password);
	j->role = forced_role ? forced_role : role[0] ? auth_role_parse(role) : AUTH_ROLE_USER;
	if (!auth_name_valid(j->name))
		why = "a user name is 1 to 64 of a-z, 0-9, '_', '.', '-'";
	else if (j->role == AUTH_ROLE_NONE)
		why = "role is 'user' or 'admin'";
	if (why) {
		sdk_reply_error(req, 400, "invalid", "%s", why);
		job_free(j);
		return;
	}
	if (auth_user_get(api->auth->store, j->name, NULL, NULL) == 0) {
		sdk_reply_error(req, 409, "exists", "user '%s' exists", j->name);
		job_free(j);
		return;
	}
	job_submit(j);
}

static void api_auth_users_create(sdk_req *req, void *ctx) { create_user(ctx, req, AUTH_ROLE_NONE); }

static void api_auth_register(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	if (!api->cfg->auth.self_registration) {
		sdk_reply_error(req, 403, "registration_closed",
				"self-registration is off; an admin creates users");
		return;
	}
	create_user(api, req, AUTH_ROLE_USER);
}

static void api_auth_users_list(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	json_t *users = auth_user_list(api->auth->store);
	if (!users)
		sdk_reply_error(req, 500, "storage", "cannot read the users");
	else
		sdk_reply_json(req, 200, json_pack("{s:o}", "users", users));
}

static void api_auth_users_delete(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	const char *name = sdk_req_param(req, "name");
	int role;
	if (!auth_name_valid(name) || auth_user_get(api->auth->store, name, NULL, &role) < 0) {
		sdk_reply_error(req, 404, "not_found", "no user '%s'", name);
		return;
	}
	if (role == AUTH_ROLE_ADMIN && auth_user_count(api->auth->store, AUTH_ROLE_ADMIN) <= 1) {
		sdk_reply_error(req, 409, "last_admin", "'%s' is the last admin", name);
		return;
	}
	if (gv_gate(api, req, "user.delete", json_pack("{s:s}", "name", name)))
		return;
	auth_cache_clear(api->auth);
	if (auth_user_delete(api->auth->store, name) < 0) {
		sdk_reply_error(req, 500, "storage", "cannot delete the user");
		return;
	}
	api_user_data_purge(api, name); /* their tables, chats and documents go with them */
	sdk_reply_json(req, 200, json_pack("{s:s, s:b}", "name", name, "deleted", 1));
}

/* An admin sets anyone's password; a user may set their own, with the
 * current one. Every session of that user ends either way. */
static void api_auth_users_password(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	int role;
	const char *me = sdk_req_user(req, &role);
	const char *name = sdk_req_param(req, "name");
	bool self = me && !strcmp(me, name);
	if (role != AUTH_ROLE_ADMIN && !self) {
		sdk_reply_error(req, 403, "forbidden", "only an admin sets another user's password");
		return;
	}
	json_t *body = sdk_req_json(req, true);
	if (!body)
		return;
	struct hash_job *j = job_new(api, req, HASH_SET_PASSWORD);
	if (!j)
		return;
	snprintf(j->name, sizeof j->name, "%s", name);
	if (read_string(req, body, "password", j->password, sizeof j->password, true) < 0 ||
	    read_string(req, body, "current_password", j->current, sizeof j->current,
			role != AUTH_ROLE_ADMIN) < 0) {
		job_free(j);
		return;
	}
	const char *why = auth_password_problem(j->password);
	if (why) {
		sdk_reply_error(req, 400, "invalid", "%s", why);
		job_free(j);
		return;
	}
	if (!auth_name_valid(name) || auth_user_get(api->auth->store, name, j->stored, NULL) < 0) {
		sdk_reply_error(req, 404, "not_found", "no user '%s'", name);
		job_free(j);
		return;
	}
	j->check_current = role != AUTH_ROLE_ADMIN;
	/* The current password is checked like a login's: not while locked. */
	int64_t locked = j->check_current ? auth_account_locked_ms(api->auth, name) : 0;
	if (locked != 0) {
		if (locked < 0)
			sdk_reply_status(req, (int)locked, NULL);
		else
			reply_locked(req, locked);
		job_free(j);
		return;
	}
	job_submit(j);
}

/* Logging in, sessions and users */
static const sdk_route routes[] = {
	API_PUBLIC("POST", "/auth/login", api_auth_login),
	API_ANON("POST", "/auth/register", api_auth_register),
	API_USER("POST", "/auth/logout", api_auth_logout),
	API_USER("GET", "/auth/me", api_auth_me),
	API_ADMIN("POST", "/auth/users", api_auth_users_create),
	API_ADMIN("GET", "/auth/users", api_auth_users_list),
	API_ADMIN("DELETE", "/auth/users/:name", api_auth_users_delete),
	API_USER("POST", "/auth/users/:name/password", api_auth_users_password), /* self or admin */
};
const api_family api_auth_family = { "auth", routes, sizeof routes / sizeof routes[0] };
