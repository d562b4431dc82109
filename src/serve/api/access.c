/* Who may call what on :8000. First who is calling: a session (the Bearer
 * token or the browser's cookie), an API token (Bearer grace_...), or
 * nobody. Then whether they may: by policy ([policy] authorizer = kernel,
 * decide.c), or by the role table, each route's access level, where the
 * level a route does not name is admin-only, so a route added without
 * thought fails closed. Public routes are never decided. A browser's
 * cookie authenticates a state change only from the API's own pages
 * (auth/csrf.h). */
#include "serve/api/api.h"
#include "serve/api/decide.h"
#include "sdk/clock.h"

#include <string.h>

static auth_csrf_in csrf_in(sdk_req *req)
{
	return (auth_csrf_in){ .method = sdk_req_method(req),
			       .origin = sdk_req_header(req, "Origin"),
			       .fetch_site = sdk_req_header(req, "Sec-Fetch-Site"),
			       .content_type = sdk_req_header(req, "Content-Type") };
}

static bool csrf_refused(sdk_req *req, int status, const sdk_err *err)
{
	if (status == 0)
		return false;
	sdk_reply_error(req, 403, "csrf_rejected", "%s", err->msg);
	return true;
}

/* For callers who are nobody (login, registration): no page of another
 * origin logs a browser in. */
bool api_csrf_anonymous_ok(api_ctx *api, sdk_req *req)
{
	sdk_err err = { "" };
	auth_csrf_in in = csrf_in(req);
	return !csrf_refused(req, auth_csrf_anonymous(&api->auth->origins, &in, &err), &err);
}

void api_reply_unauthenticated(sdk_req *req, bool presented)
{
	sdk_req_add_header(req, "WWW-Authenticate", "Bearer realm=\"grace\"");
	sdk_reply_error(req, 401, "unauthorized",
			presented ? "the token is not valid (expired, revoked or unknown)"
				  : "log in first: POST /auth/login");
}

/* The store could not say whether a credential is valid (PostgreSQL
 * unreachable): refused, but not as invalid, so the client keeps it. */
static void store_unavailable(sdk_req *req)
{
	sdk_reply_error(req, 503, "store_unavailable",
			"cannot check the credential now (the user store is unreachable); "
			"try again");
}

/* A delegation acts as an API token of its user holding its one scope,
 * with the user's role as it is now (auth/delegation.h): 0, SDK_ENOTFOUND
 * (not one this process made, expired, or its user gone) or SDK_EIO. */
static int delegation_check(api_ctx *api, const char *token, auth_api_token *out)
{
	if (auth_deleg_check(api->auth->deleg_key, token, sdk_wall_ms(), out) < 0)
		return SDK_ENOTFOUND;
	int rc = auth_user_get(api->auth->store, out->owner, NULL, &out->role);
	return rc == SDK_EIO ? SDK_EIO : rc < 0 ? SDK_ENOTFOUND : 0;
}

/* Who presents what, from the request's head alone: 1 with *who filled, 0
 * when nothing is presented, SDK_EIO when the store cannot say, or
 * another negative status for a session or API token that is not valid. */
static int principal_of(api_ctx *api, sdk_req *req, api_principal *who, bool *by_cookie)
{
	char cookie[AUTH_TOKEN_MAX + 1];
	const char *token = auth_presented_token(sdk_req_header(req, "Authorization"),
						 sdk_req_header(req, "Cookie"), cookie,
						 sizeof cookie, by_cookie);
	if (!token)
		return 0;
	if (!*by_cookie && (auth_is_delegation(token) || auth_is_api_token(token))) {
		int rc = auth_is_delegation(token) ? delegation_check(api, token, &who->token)
						   : auth_token_check(api->auth->store, token,
								      sdk_wall_ms(), &who->token);
		if (rc < 0)
			return rc == SDK_EIO ? SDK_EIO : SDK_ENOTFOUND;
		who->kind = API_PRINCIPAL_TOKEN;
		snprintf(who->user, sizeof who->user, "%s", who->token.owner);
		who->role = who->token.role;
		return 1;
	}
	int rc = auth_check(api->auth, token, sdk_wall_ms(), who->user, &who->role);
	if (rc < 0)
		return rc == SDK_EIO ? SDK_EIO : SDK_ENOTFOUND;
	who->kind = API_PRINCIPAL_USER;
	return 1;
}

/* principal_of, answering what is not a principal: 1 or 0 as it, or -1
 * after answering 401 (a session or API token that is not valid) or 503. */
static int authenticate(api_ctx *api, sdk_req *req, api_principal *who, bool *by_cookie)
{
	int rc = principal_of(api, req, who, by_cookie);
	if (rc == SDK_EIO)
		store_unavailable(req);
	else if (rc < 0)
		api_reply_unauthenticated(req, true);
	return rc < 0 ? -1 : rc;
}

/* sdk_server_opts.body_limit: a body past [limits] max_body_bytes goes
 * only to a route that takes more (a kernel's, behind its prefix:
 * gw_body_max), and only from a caller whose session or token is valid,
 * so nobody unauthenticated makes the server hold more. Whether it may
 * call the route is decided once the body is in, as for every request. */
size_t api_body_limit(sdk_req *req, const sdk_route *route, const char *method, const char *path,
		      void *ctx)
{
	api_ctx *api = ctx;
	size_t max = api->cfg->limits.max_body_bytes, lim = route ? route->max_body : 0;
	const api_prefix *pre = route ? api_prefix_of(route->pattern.path) : NULL;
	if (pre) { /* the path begins as the pattern does: its prefix, then "/" */
		char name[GRACE_NAME_MAX + 1];
		const char *rest;
		if (pre->kernel) {
			rest = path + strlen(pre->path);
		} else { /* "/kernels/:name": the name is the path's segment */
			const char *seg = path + strlen("/kernels/");
			rest = strchr(seg, '/');
			if (!rest || (size_t)(rest - seg) > GRACE_NAME_MAX)
				return max;
			memcpy(name, seg, (size_t)(rest - seg));
			name[rest - seg] = '\0';
		}
		sup_kernel *k = sup_find(api->sup, pre->kernel ? pre->kernel : name);
		if (k && *rest == '/')
			lim = gw_body_max(k, method, rest);
	}
	if (lim <= max)
		return max;
	api_principal who = { .kind = API_PRINCIPAL_ANONYMOUS, .role = AUTH_ROLE_NONE };
	bool by_cookie = false;
	return principal_of(api, req, &who, &by_cookie) == 1 ? lim : max;
}

/* The role table: a route's access level against the caller's role, and
 * an API token's scopes against the route's action. */
static bool table_allows(sdk_req *req, const sdk_route *route, const api_principal *who)
{
	unsigned access = route ? route->access : ACCESS_USER;
	bool ok = who->role == AUTH_ROLE_ADMIN ||
		  (access == ACCESS_USER && who->role == AUTH_ROLE_USER);
	if (!ok) {
		sdk_reply_error(req, 403, "forbidden", "%s %s needs the admin role",
				sdk_req_method(req), sdk_req_path(req));
		return false;
	}
	if (who->kind == API_PRINCIPAL_TOKEN) {
		char action[API_ACTION_MAX];
		api_route_action(route, sdk_req_method(req), action, sizeof action);
		if (!auth_token_allows(&who->token, action)) {
			sdk_reply_error(req, 403, "forbidden", "this API token's scopes do not allow %s",
					action);
			return false;
		}
	}
	return true;
}

bool api_authorize(sdk_req *req, const sdk_route *route, void *ctx)
{
	api_ctx *api = ctx;
	const char *host = sdk_req_host(req);
	/* Against DNS rebinding: a page on another name must not reach us. */
	if (host && !auth_host_allowed(api->auth, host)) {
		sdk_reply_error(req, 421, "host_not_allowed", "Host '%s' is not served here", host);
		return false;
	}
	bool by_policy = api->cfg->policy.authorizer == GRACE_AUTHORIZER_KERNEL;
	unsigned access = route ? route->access : ACCESS_USER;
	api_principal who = { .kind = API_PRINCIPAL_ANONYMOUS, .role = AUTH_ROLE_NONE };
	if (access == ACCESS_PUBLIC || (access == ACCESS_ANON && !by_policy))
		return api_csrf_anonymous_ok(api, req);
	if (access == ACCESS_ANON) /* open to anyone: decided as nobody */
		return api_decide(api, req, route, &who);
	bool by_cookie = false;
	int rc = authenticate(api, req, &who, &by_cookie);
	if (rc < 0)
		return false;
	if (rc == 0) {
		if (by_policy) /* nobody: the policy may still let them (a denial is a 401) */
			return api_decide(api, req, route, &who);
		api_reply_unauthenticated(req, false);
		return false;
	}
	sdk_req_set_user(req, who.user, who.role);
	sdk_err err = { "" };
	auth_csrf_in in = csrf_in(req);
	if (by_cookie && csrf_refused(req, auth_csrf_cookie(&api->auth->origins, &in, &err), &err))
		return false;
	if (!api_user_data_ready(api, req, who.user)) /* an earlier user's data is still going */
		return false;
	return by_policy ? api_decide(api, req, route, &who) : table_allows(req, route, &who);
}
