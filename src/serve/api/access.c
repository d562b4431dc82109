/* Who may call what on :8000. Every route in the table carries an access
 * level, and the level a route does not name is admin-only: a route added
 * without thought fails closed. */
#include "serve/api/api.h"
#include "sdk/clock.h"

#include <string.h>
#include <time.h>

/* The session token: "Authorization: Bearer T", else the browser's cookie. */
static const char *presented_token(sdk_req *req, char *buf, size_t len)
{
	const char *h = sdk_req_header(req, "Authorization");
	if (h && !strncmp(h, "Bearer ", 7))
		return h + 7;
	const char *c = sdk_req_header(req, "Cookie");
	if (!c)
		return NULL;
	static const char name[] = AUTH_COOKIE "=";
	for (const char *p = c; (p = strstr(p, name)); p++) {
		if (p != c && p[-1] != ' ' && p[-1] != ';')
			continue;
		p += sizeof name - 1;
		size_t n = strcspn(p, "; ");
		if (n == 0 || n >= len)
			return NULL;
		memcpy(buf, p, n);
		buf[n] = '\0';
		return buf;
	}
	return NULL;
}

bool api_authorize(sdk_req *req, const sdk_route *route, void *ctx)
{
	api_ctx *api = ctx;
	const char *host = sdk_req_header(req, "Host");
	/* Against DNS rebinding: a page on another name must not reach us. */
	if (host && !auth_host_allowed(api->auth, host)) {
		sdk_reply_error(req, 421, "host_not_allowed", "Host '%s' is not served here", host);
		return false;
	}
	unsigned access = route ? route->access : ACCESS_USER;
	if (access == ACCESS_PUBLIC)
		return true;
	char cookie[AUTH_TOKEN_MAX + 1];
	const char *token = presented_token(req, cookie, sizeof cookie);
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
