/* /auth/tokens: API tokens for machines (auth/tokens.h says what they
 * are). Any user makes, lists and revokes their own; an admin also those
 * of anyone, and makes tokens for others. The secret is in the creation's
 * answer only. */
#include "serve/api/api.h"

#include "sdk/json_keys.h"
#include "sdk/clock.h"
#include "serve/auth/tokens.h"

#include <stdio.h>
#include <string.h>

#define EXPIRES_IN_MIN_S 60
#define EXPIRES_IN_MAX_S (10LL * 365 * 86400)

/* Reads the creation's body; answers 400 and returns -1 when it is bad. */
static int read_create(sdk_req *req, json_t *body, const char **name, json_t **scopes,
		       const char **user, long long *expires_in_s)
{
	static const char *const fields[] = { "name", "scopes", "user", "expires_in_s", NULL };
	if (sdk_req_fields_only(req, body, fields) < 0)
		return -1;
	json_t *n = json_object_get(body, "name");
	*name = json_string_value(n);
	if (!*name || !*name[0] || json_string_length(n) > AUTH_API_TOKEN_NAME_MAX ||
	    memchr(*name, '\0', json_string_length(n))) {
		sdk_reply_error(req, 400, "invalid", "name is a string of 1 to %d bytes (what the token is for)",
				AUTH_API_TOKEN_NAME_MAX);
		return -1;
	}
	*scopes = json_object_get(body, "scopes");
	if (!json_is_array(*scopes) || json_array_size(*scopes) == 0 ||
	    json_array_size(*scopes) > AUTH_SCOPES_MAX) {
		sdk_reply_error(req, 400, "invalid",
				"scopes is an array of 1 to %d scopes like \"metrics:read\"", AUTH_SCOPES_MAX);
		return -1;
	}
	size_t i;
	json_t *v;
	json_array_foreach (*scopes, i, v) {
		const char *s = json_string_value(v);
		if (!s || memchr(s, '\0', json_string_length(v)) || !auth_scope_valid(s)) {
			sdk_reply_error(req, 400, "invalid",
					"scopes[%zu] is not a scope: FAMILY:VERB, like metrics:read or "
					"telemetry:write",
					i);
			return -1;
		}
	}
	json_t *u = json_object_get(body, "user");
	*user = u ? json_string_value(u) : NULL;
	if (u && (!*user || !auth_name_valid(*user))) {
		sdk_reply_error(req, 400, "invalid", "user is a user's name");
		return -1;
	}
	json_t *e = json_object_get(body, "expires_in_s");
	*expires_in_s = 0;
	if (e && (!json_is_integer(e) || json_integer_value(e) < EXPIRES_IN_MIN_S ||
		  json_integer_value(e) > EXPIRES_IN_MAX_S)) {
		sdk_reply_error(req, 400, "invalid", "expires_in_s is an integer from %d to %lld",
				EXPIRES_IN_MIN_S, EXPIRES_IN_MAX_S);
		return -1;
	}
	if (e)
		*expires_in_s = json_integer_value(e);
	return 0;
}

static void api_tokens_create(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	int role;
	const char *me = sdk_req_user(req, &role);
	json_t *body = sdk_req_json(req, true);
	const char *name, *user;
	json_t *scopes;
	long long expires_in_s;
	if (!me || !body || read_create(req, body, &name, &scopes, &user, &expires_in_s) < 0)
		return;
	const char *owner = user ? user : me;
	if (strcmp(owner, me) && role != AUTH_ROLE_ADMIN) {
		sdk_reply_error(req, 403, "forbidden", "only an admin makes tokens for another user");
		return;
	}
	int64_t now = sdk_wall_ms();
	auth_api_token t;
	char secret[AUTH_TOKEN_MAX + 1];
	int rc = auth_token_create(api->auth->store, owner, name, scopes, now,
				   expires_in_s ? now + expires_in_s * 1000 : 0, &t, secret);
	if (rc == SDK_ENOTFOUND) {
		sdk_reply_error(req, 404, "not_found", "no user '%s'", owner);
		return;
	}
	if (rc == SDK_EQUOTA) {
		sdk_reply_error(req, 403, "quota_exceeded", "a user has at most %d live tokens",
				AUTH_API_TOKENS_PER_USER);
		return;
	}
	if (rc < 0) {
		sdk_reply_status(req, rc, &(sdk_err){ "cannot store the token" });
		return;
	}
	sdk_req_add_header(req, "Cache-Control", "no-store");
	sdk_reply_json(req, 201,
		       json_pack("{s:s, s:s, s:s, s:s, s:O, s:I, s:o}", "id", t.id, "token", secret,
				 "name", t.name, "user", t.owner, "scopes", scopes, "created_ms",
				 (json_int_t)now, "expires_ms",
				 expires_in_s ? json_integer(now + expires_in_s * 1000) : json_null()));
	sodium_memzero(secret, sizeof secret);
}

static void api_tokens_list(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	int role;
	const char *me = sdk_req_user(req, &role);
	const char *user = sdk_req_query(req, "user");
	if (user && !auth_name_valid(user)) {
		sdk_reply_error(req, 400, "invalid", "user is a user's name");
		return;
	}
	if (user && role != AUTH_ROLE_ADMIN && strcmp(user, me ? me : "")) {
		sdk_reply_error(req, 403, "forbidden", "only an admin lists another user's tokens");
		return;
	}
	/* An admin sees everyone's unless asking for one user's. */
	json_t *list = auth_token_list(api->auth->store,
				       user ? user : role == AUTH_ROLE_ADMIN ? NULL : me);
	if (!list)
		sdk_reply_error(req, 500, "storage_error", "cannot read the tokens");
	else
		sdk_reply_json(req, 200, json_pack("{s:o}", "tokens", list));
}

static void api_tokens_revoke(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	int role;
	const char *me = sdk_req_user(req, &role);
	const char *id = sdk_req_param(req, "id");
	int rc = auth_token_revoke(api->auth->store, id, role == AUTH_ROLE_ADMIN ? NULL : me,
				   sdk_wall_ms());
	if (rc == SDK_ENOTFOUND)
		sdk_reply_error(req, 404, "not_found", "no live token '%.32s' of yours", id);
	else if (rc < 0)
		sdk_reply_status(req, rc, &(sdk_err){ "cannot revoke the token" });
	else
		sdk_reply_json(req, 200, json_pack("{s:s, s:b}", "id", id, "revoked", 1));
}

/* API tokens: your own (an admin: anyone's) */
static const sdk_route routes[] = {
	API_USER("POST", "/auth/tokens", api_tokens_create),
	API_USER("GET", "/auth/tokens", api_tokens_list),
	API_USER("DELETE", "/auth/tokens/:id", api_tokens_revoke),
};
const api_family api_tokens_family = { "tokens", routes, sizeof routes / sizeof routes[0] };
