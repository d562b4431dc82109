/* The dashboard (docs/dashboard.md): a web interface at /, its files
 * compiled into the binary (web/, scripts/web_embed.py), served with a
 * strict Content-Security-Policy (scripts and styles from these files
 * only: no inline script, nothing from elsewhere). The page signs in with
 * the session cookie and calls the API like any client, under the same
 * rules (access.c): only the files and /dashboard/session, which says who
 * the cookie belongs to, are public. */
#include "serve/api/api.h"
#include "serve/api/dashboard.h"
#include "serve/api/dashboard_assets.h"
#include "sdk/clock.h"

#include <event2/buffer.h>
#include <sodium.h>
#include <string.h>
#include <strings.h>

/* No inline script or style, no other origin, no framing, no plugins. */
#define DASH_CSP                                                                               \
	"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "      \
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

static const dash_asset *asset_find(const char *name)
{
	for (size_t i = 0; i < dash_assets_count; i++)
		if (!strcmp(dash_assets[i].name, name))
			return &dash_assets[i];
	return NULL;
}

/* If-None-Match holds this ETag, or "*" (weak comparison, RFC 9110 13.1.2). */
static bool etag_matches(const char *inm, const char *etag)
{
	if (!inm)
		return false;
	size_t n = strlen(etag);
	for (const char *p = inm; (p = strstr(p, etag)); p += n)
		if (p[n] == '\0' || p[n] == ',' || p[n] == ' ' || p[n] == '\t')
			return true;
	inm += strspn(inm, " \t");
	return inm[0] == '*' && inm[1 + strspn(inm + 1, " \t")] == '\0';
}

static void serve_asset(sdk_req *req, const dash_asset *a)
{
	sdk_req_add_header(req, "ETag", a->etag);
	/* Revalidated each time (a 304 costs nothing): a new build's files
	 * are used at once, whatever their names. */
	sdk_req_add_header(req, "Cache-Control", "no-cache");
	sdk_req_add_header(req, "X-Content-Type-Options", "nosniff");
	sdk_req_add_header(req, "Referrer-Policy", "no-referrer");
	sdk_req_add_header(req, "Content-Security-Policy", DASH_CSP);
	sdk_req_add_header(req, "Cross-Origin-Opener-Policy", "same-origin");
	if (etag_matches(sdk_req_header(req, "If-None-Match"), a->etag)) {
		sdk_reply_raw(req, 304, NULL, NULL);
		return;
	}
	struct evbuffer *b = evbuffer_new();
	if (!b || evbuffer_add_reference(b, a->data, a->len, NULL, NULL) < 0) {
		if (b)
			evbuffer_free(b);
		sdk_reply_error(req, 503, "busy", "out of memory");
		return;
	}
	sdk_reply_raw(req, 200, a->content_type, b);
	evbuffer_free(b);
}

/* What an API client asking for JSON only gets at /: where things are. */
static bool wants_json_only(const char *accept)
{
	return accept && strcasestr(accept, "application/json") && !strcasestr(accept, "text/html");
}

static void on_root(sdk_req *req, void *ctx)
{
	(void)ctx;
	if (wants_json_only(sdk_req_header(req, "Accept"))) {
		sdk_reply_json(req, 200,
			       json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", "grace", "version",
					 GRACE_VERSION, "dashboard", "/", "health", "/health",
					 "openapi", "/openapi.json"));
		return;
	}
	const dash_asset *a = asset_find("index.html");
	if (!a)
		sdk_reply_error(req, 404, "not_found", "this build has no dashboard");
	else
		serve_asset(req, a);
}

static void on_ui_file(sdk_req *req, void *ctx)
{
	(void)ctx;
	const char *name = sdk_req_param(req, "name");
	const dash_asset *a = name && strcmp(name, "index.html") ? asset_find(name) : NULL;
	if (!a)
		sdk_reply_error(req, 404, "not_found", "no dashboard file '%s'", name ? name : "");
	else
		serve_asset(req, a);
}

/* Who the session cookie belongs to, answered 200 either way: the page
 * learns whether to show its sign-in form without a failed request. Only
 * the cookie counts here (a page cannot send anything else on its own). */
static void on_session(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	char buf[AUTH_TOKEN_MAX + 1], user[AUTH_NAME_MAX + 1];
	int role = AUTH_ROLE_NONE;
	const char *token = auth_cookie_token(sdk_req_header(req, "Cookie"), buf, sizeof buf);
	bool in = token && auth_check(api->auth, token, sdk_wall_ms(), user, &role) == 0;
	sodium_memzero(buf, sizeof buf);
	sdk_req_add_header(req, "Cache-Control", "no-store");
	sdk_reply_json(req, 200,
		       in ? json_pack("{s:b, s:{s:s, s:s}}", "signed_in", 1, "user", "name", user,
				      "role", auth_role_name(role))
			  : json_pack("{s:b, s:n}", "signed_in", 0, "user"));
}

/* The dashboard: its page, its files, its session and its live feed */
static const sdk_route routes[] = {
	API_PUBLIC("GET", "/", on_root),
	API_PUBLIC("GET", "/ui/:name", on_ui_file),
	API_PUBLIC("GET", "/dashboard/session", on_session),
	API_USER("GET", "/dashboard/events", api_dashboard_events),
};
const api_family api_dashboard_family = { "dashboard", routes, sizeof routes / sizeof routes[0] };
