/* Cross-site request forgery. A browser adds the session cookie to any
 * request a page sends to the API, whatever site the page is on, and
 * SameSite=Strict does not help: a page on another localhost port is the
 * same site. So a request the cookie authenticates may change state only
 * when the browser says the page is the API's own (Origin, or without it
 * Sec-Fetch-Site: same-origin) and its body is JSON (a cross-site page
 * cannot send that type without a CORS preflight, which Grace never
 * grants). Bearer tokens are not sent by browsers on their own: those
 * requests are not concerned. */
#ifndef GRACE_AUTH_CSRF_H
#define GRACE_AUTH_CSRF_H

#include "serve/layer.h"

#include "serve/auth/hosts.h"
#include "sdk/err.h"

#include <stdbool.h>

typedef struct auth_csrf_in {
	const char *method;
	const char *origin;       /* the Origin header, or NULL */
	const char *fetch_site;   /* Sec-Fetch-Site, or NULL */
	const char *content_type; /* or NULL */
} auth_csrf_in;

/* GET, HEAD and OPTIONS: they change nothing. */
bool auth_method_safe(const char *method);
/* "application/json", any case, parameters allowed. */
bool auth_content_type_json(const char *content_type);
/* "http[s]://HOST[:PORT]" with HOST[:PORT] in `origins`. */
bool auth_origin_allowed(const auth_hosts *origins, const char *origin);

/* For a request the session cookie authenticates: 0, or SDK_EDENIED with
 * the reason in `err`. */
int auth_csrf_cookie(const auth_hosts *origins, const auth_csrf_in *in, sdk_err *err);
/* For a request without credentials to a route that hands out a session
 * (login CSRF would log the victim's browser in as the attacker): refused
 * only when the browser says the page is another origin's, so clients
 * that are not browsers (curl, the CLI) log in as before. */
int auth_csrf_anonymous(const auth_hosts *origins, const auth_csrf_in *in, sdk_err *err);

#endif
