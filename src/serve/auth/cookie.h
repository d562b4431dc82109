/* The session cookie: the one parser of a Cookie header, and the
 * Set-Cookie values that go with it. */
#ifndef GRACE_AUTH_COOKIE_H
#define GRACE_AUTH_COOKIE_H

#include "serve/layer.h"

#include <stdbool.h>
#include <stddef.h>

#define AUTH_COOKIE "grace_session"
#define AUTH_COOKIE_CLEAR AUTH_COOKIE "=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"

/* The session token in a Cookie header ("a=1; grace_session=T; b=2"),
 * copied into `buf` (`len` bytes). The first pair named exactly
 * grace_session decides (browsers send the most specific first): NULL when
 * there is none, or when its value is empty, does not fit, or holds a
 * character no token has (tokens are base64url). */
const char *auth_cookie_token(const char *header, char *buf, size_t len);

/* The session token a request presents: its Authorization header's
 * "Bearer T", else the session cookie (copied into `buf`); *by_cookie says
 * which (a cookie is what a browser sends on its own: csrf.h). NULL when
 * there is none. Both headers may be NULL. */
const char *auth_presented_token(const char *authorization, const char *cookie, char *buf,
				 size_t len, bool *by_cookie);

/* The Set-Cookie value that hands `token` to a browser: 0, or SDK_ETOOLARGE
 * when `out` is too small. */
int auth_cookie_set(char *out, size_t len, const char *token, unsigned max_age_s);

#endif
