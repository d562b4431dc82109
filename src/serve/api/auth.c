/* /auth: login, logout, who am I, and user management. Password hashing
 * and checking run on the worker pool; everything else on the loop. */
#include "serve/api/api.h"
#include "sdk/clock.h"

#include "sdk/log.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum hash_kind { HASH_LOGIN, HASH_CREATE, HASH_SET_PASSWORD };

/* One password job: filled on the loop, hashed or checked on a worker,
 * finished on the loop. Passwords are wiped before it is freed. */
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
	bool known, ok, check_current;
	int http_status;
	json_t *reply;
	struct event *delay;
	char peer_key[80], user_key[96];
};

static void job_free(struct hash_job *j)
{
	if (j->delay)
		event_free(j->delay);
	json_decref(j->reply);
	sodium_memzero(j, sizeof *j);
	free(j);
}

static void hash_work(void *arg)
{
	struct hash_job *j = arg;
	const grace_config *cfg = j->api->cfg;
	switch (j->kind) {
	case HASH_LOGIN:
		/* An unknown user costs the same as a wrong password: one Argon2id
		 * computation at the configured cost either way. */
		if (j->known) {
			j->ok = auth_verify(j->stored, j->password);
		} else {
			auth_hash(j->password, cfg->auth.argon2_ops, auth_mem_bytes(cfg), j->fresh);
			j->ok = false;
		}
		break;
	case HASH_SET_PASSWORD:
		if (j->check_current && !auth_verify(j->stored, j->current)) {
			j->ok = false;
			break;
		}
		/* fall through */
	case HASH_CREATE:
		j->ok = auth_hash(j->password, cfg->auth.argon2_ops, auth_mem_bytes(cfg), j->fresh) == 0;
		break;
	}
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

static void login_answer(struct hash_job *j)
{
	sdk_reply_json(j->req, j->http_status, j->reply);
	j->reply = NULL;
	job_free(j);
}

static void on_login_delay(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	login_answer(arg);
}

static void login_done(struct hash_job *j)
{
	api_ctx *api = j->api;
	uint64_t now = sdk_mono_ms();
	if (!j->ok) {
		uint64_t d1 = limiter_fail(api->auth->lim, j->user_key, now);
		uint64_t d2 = limiter_fail(api->auth->lim, j->peer_key, now);
		uint64_t delay = d1 > d2 ? d1 : d2;
		j->http_status = 401;
		j->reply = json_pack("{s:{s:s, s:s, s:s}}", "error", "code", "bad_credentials",
				     "message", "wrong user name or password", "request_id",
				     sdk_req_id(j->req));
		ob_audit(api->ob, j->name, "auth.login", "auth", "failed", sdk_req_peer(j->req), NULL);
		/* Each failure past the first few is answered later and later. */
		if (delay && (j->delay = evtimer_new(api->base, on_login_delay, j))) {
			struct timeval tv = { (time_t)(delay / 1000), (suseconds_t)(delay % 1000) * 1000 };
			evtimer_add(j->delay, &tv);
			return;
		}
		login_answer(j);
		return;
	}
	limiter_reset(api->auth->lim, j->user_key, now);
	limiter_reset(api->auth->lim, j->peer_key, now);
	char token[AUTH_TOKEN_MAX + 1];
	int64_t expires;
	if (auth_session_create(api->auth->db, j->name, sdk_wall_ms(), api->cfg->auth.session_max_s,
				token, &expires) < 0) {
		sdk_reply_error(j->req, 500, "storage", "cannot create a session");
		job_free(j);
		return;
	}
	char cookie[256];
	snprintf(cookie, sizeof cookie, "%s=%s; HttpOnly; SameSite=Strict; Path=/; Max-Age=%u",
		 AUTH_COOKIE, token, api->cfg->auth.session_max_s);
	sdk_req_add_header(j->req, "Set-Cookie", cookie);
	sdk_req_add_header(j->req, "Cache-Control", "no-store");
	ob_audit(api->ob, j->name, "auth.login", "auth", "ok", sdk_req_peer(j->req), NULL);
	sdk_reply_json(j->req, 200,
		       json_pack("{s:s, s:I, s:{s:s, s:s}, s:i}", "token", token, "expires_at",
				 (json_int_t)expires, "user", "name", j->name, "role",
				 auth_role_name(j->role), "idle_timeout_s",
				 (int)api->cfg->auth.session_idle_s));
	sodium_memzero(token, sizeof token);
	job_free(j);
}

static void create_done(struct hash_job *j)
{
	api_ctx *api = j->api;
	if (!j->ok) {
		sdk_reply_error(j->req, 503, "busy", "cannot hash the password now");
	} else {
		int rc = auth_user_add(api->auth->db, j->name, j->fresh, j->role, sdk_wall_ms());
		if (rc == -EEXIST)
			sdk_reply_error(j->req, 409, "exists", "user '%s' exists", j->name);
		else if (rc < 0)
			sdk_reply_error(j->req, 500, "storage", "cannot store the user");
		else
			sdk_reply_json(j->req, 201, json_pack("{s:s, s:s}", "name", j->name, "role",
							      auth_role_name(j->role)));
		if (rc == 0) api_user_data_purge(api, j->name); /* an earlier user's data, if any */
	}
	job_free(j);
}

static void set_password_done(struct hash_job *j)
{
	api_ctx *api = j->api;
	if (!j->ok) {
		sdk_reply_error(j->req, j->check_current ? 403 : 503, j->check_current ? "forbidden" : "busy",
				j->check_current ? "the current password is wrong"
						 : "cannot hash the password now");
	} else {
		int rc = auth_user_set_password(api->auth->db, j->name, j->fresh, sdk_wall_ms());
		auth_cache_clear(api->auth); /* its sessions are gone: at once */
		if (rc == -ENOENT)
			sdk_reply_error(j->req, 404, "not_found", "no user '%s'", j->name);
		else if (rc < 0)
			sdk_reply_error(j->req, 500, "storage", "cannot store the password");
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
	case HASH_LOGIN: login_done(j); break;
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

void api_auth_login(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	json_t *body = sdk_req_json(req, true);
	if (!body)
		return;
	struct hash_job *j = job_new(api, req, HASH_LOGIN);
	if (!j)
		return;
	if (read_string(req, body, "username", j->name, sizeof j->name, true) < 0 ||
	    read_string(req, body, "password", j->password, sizeof j->password, true) < 0) {
		job_free(j);
		return;
	}
	snprintf(j->user_key, sizeof j->user_key, "u:%s", j->name);
	snprintf(j->peer_key, sizeof j->peer_key, "a:%s", sdk_req_peer(req));
	uint64_t now = sdk_mono_ms();
	uint64_t b1 = limiter_blocked_ms(api->auth->lim, j->user_key, now);
	uint64_t b2 = limiter_blocked_ms(api->auth->lim, j->peer_key, now);
	uint64_t blocked = b1 > b2 ? b1 : b2;
	if (blocked) {
		char after[24];
		snprintf(after, sizeof after, "%llu", (unsigned long long)(blocked + 999) / 1000);
		sdk_req_add_header(req, "Retry-After", after);
		sdk_reply_error(req, 429, "too_many_attempts",
				"too many failed logins; try again in %s s", after);
		job_free(j);
		return;
	}
	j->known = auth_name_valid(j->name) &&
		   auth_user_get(api->auth->db, j->name, j->stored, &j->role) == 0;
	job_submit(j);
}

static char *session_token(sdk_req *req)
{
	const char *h = sdk_req_header(req, "Authorization");
	return h && !strncmp(h, "Bearer ", 7) ? (char *)h + 7 : NULL;
}

void api_auth_logout(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	const char *token = session_token(req);
	char cookie[AUTH_TOKEN_MAX + 2];
	if (!token) { /* the browser's cookie */
		const char *c = sdk_req_header(req, "Cookie");
		const char *p = c ? strstr(c, AUTH_COOKIE "=") : NULL;
		if (p) {
			p += strlen(AUTH_COOKIE "=");
			size_t n = strcspn(p, "; ");
			if (n < sizeof cookie) {
				memcpy(cookie, p, n);
				cookie[n] = '\0';
				token = cookie;
			}
		}
	}
	if (token)
		auth_session_delete(api->auth->db, token);
	auth_cache_clear(api->auth);
	sdk_req_add_header(req, "Set-Cookie",
			   AUTH_COOKIE "=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
	sdk_reply_json(req, 200, json_pack("{s:b}", "logged_out", 1));
}

void api_auth_me(sdk_req *req, void *ctx)
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
	if (auth_user_get(api->auth->db, j->name, NULL, NULL) == 0) {
		sdk_reply_error(req, 409, "exists", "user '%s' exists", j->name);
		job_free(j);
		return;
	}
	job_submit(j);
}

void api_auth_users_create(sdk_req *req, void *ctx) { create_user(ctx, req, AUTH_ROLE_NONE); }

void api_auth_register(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	if (!api->cfg->auth.self_registration) {
		sdk_reply_error(req, 403, "registration_closed",
				"self-registration is off; an admin creates users");
		return;
	}
	create_user(api, req, AUTH_ROLE_USER);
}

void api_auth_users_list(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	json_t *users = auth_user_list(api->auth->db);
	if (!users)
		sdk_reply_error(req, 500, "storage", "cannot read the users");
	else
		sdk_reply_json(req, 200, json_pack("{s:o}", "users", users));
}

void api_auth_users_delete(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	const char *name = sdk_req_param(req, "name");
	int role;
	if (!auth_name_valid(name) || auth_user_get(api->auth->db, name, NULL, &role) < 0) {
		sdk_reply_error(req, 404, "not_found", "no user '%s'", name);
		return;
	}
	if (role == AUTH_ROLE_ADMIN && auth_user_count(api->auth->db, AUTH_ROLE_ADMIN) <= 1) {
		sdk_reply_error(req, 409, "last_admin", "'%s' is the last admin", name);
		return;
	}
	auth_cache_clear(api->auth);
	if (auth_user_delete(api->auth->db, name) < 0) {
		sdk_reply_error(req, 500, "storage", "cannot delete the user");
		return;
	}
	api_user_data_purge(api, name); /* their tables, chats and documents go with them */
	sdk_reply_json(req, 200, json_pack("{s:s, s:b}", "name", name, "deleted", 1));
}

/* An admin sets anyone's password; a user may set their own, with the
 * current one. Every session of that user ends either way. */
void api_auth_users_password(sdk_req *req, void *ctx)
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
	if (!auth_name_valid(name) || auth_user_get(api->auth->db, name, j->stored, NULL) < 0) {
		sdk_reply_error(req, 404, "not_found", "no user '%s'", name);
		job_free(j);
		return;
	}
	j->check_current = role != AUTH_ROLE_ADMIN;
	job_submit(j);
}
