/* Who may call what on :8000. Every route in the table carries an access
 * level, and the level a route does not name is admin-only: a route added
 * without thought fails closed. A browser's cookie authenticates a state
 * change only from the API's own pages (auth/csrf.h). */
#include "serve/api/api.h"
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

bool api_authorize(sdk_req *req, const sdk_route *route, void *ctx)
{
	api_ctx *api = ctx;
	const char *host = sdk_req_host(req);
	/* Against DNS rebinding: a page on another name must not reach us. */
	if (host && !auth_host_allowed(api->auth, host)) {
		sdk_reply_error(req, 421, "host_not_allowed", "Host '%s' is not served here", host);
		return false;
	}
	unsigned access = route ? route->access : ACCESS_USER;
	sdk_err err = { "" };
	auth_csrf_in in = csrf_in(req);
	if (access == ACCESS_PUBLIC) /* login: no page of another origin logs a browser in */
		return !csrf_refused(req, auth_csrf_anonymous(&api->auth->origins, &in, &err), &err);
	char cookie[AUTH_TOKEN_MAX + 1];
	bool by_cookie;
	const char *token = auth_presented_token(sdk_req_header(req, "Authorization"),
						 sdk_req_header(req, "Cookie"), cookie,
						 sizeof cookie, &by_cookie);
	char user[AUTH_NAME_MAX + 1];
	int role = AUTH_ROLE_NONE;
	if (!token || auth_check(api->auth, token, sdk_wall_ms(), user, &role) < 0) {
		sdk_req_add_header(req, "WWW-Authenticate", "Bearer realm=\"grace\"");
		sdk_reply_error(req, 401, "unauthorized",
				token ? "the token is not valid (expired, revoked or unknown)"
				      : "log in first: POST /auth/login");
		return false;
	}
	sdk_req_set_user(req, user, role);
	if (by_cookie && csrf_refused(req, auth_csrf_cookie(&api->auth->origins, &in, &err), &err))
		return false;
	if (!api_user_data_ready(api, req, user)) /* an earlier user's data is still going */
		return false;
	if (access == ACCESS_USER && (role == AUTH_ROLE_USER || role == AUTH_ROLE_ADMIN))
		return true;
	if (role == AUTH_ROLE_ADMIN)
		return true;
	sdk_reply_error(req, 403, "forbidden", "%s %s needs the admin role", sdk_req_method(req),
			sdk_req_path(req));
	return false;
}
