#include "serve/auth/cookie.h"

#include "sdk/err.h"

#include <stdio.h>
#include <string.h>

static bool token_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

const char *auth_cookie_token(const char *header, char *buf, size_t len)
{
	static const char name[] = AUTH_COOKIE;
	const size_t name_len = sizeof name - 1;
	if (!header || len == 0)
		return NULL;
	/* RFC 6265: cookie-pair *( ";" SP cookie-pair ); be lenient about the
	 * spaces, strict about where a name starts and ends. */
	for (const char *p = header; *p;) {
		p += strspn(p, " \t");
		size_t pair = strcspn(p, ";");
		const char *eq = memchr(p, '=', pair);
		if (eq && (size_t)(eq - p) == name_len && !memcmp(p, name, name_len)) {
			const char *v = eq + 1;
			size_t n = (size_t)(p + pair - v);
			while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
				n--;
			if (n == 0 || n >= len)
				return NULL;
			for (size_t i = 0; i < n; i++)
				if (!token_char(v[i]))
					return NULL;
			memcpy(buf, v, n);
			buf[n] = '\0';
			return buf;
		}
		p += pair;
		if (*p == ';')
			p++;
	}
	return NULL;
}

const char *auth_presented_token(const char *authorization, const char *cookie, char *buf,
				 size_t len, bool *by_cookie)
{
	*by_cookie = false;
	if (authorization && !strncmp(authorization, "Bearer ", 7))
		return authorization + 7;
	const char *t = auth_cookie_token(cookie, buf, len);
	*by_cookie = t != NULL;
	return t;
}

int auth_cookie_set(char *out, size_t len, const char *token, unsigned max_age_s)
{
	int n = snprintf(out, len, "%s=%s; HttpOnly; SameSite=Strict; Path=/; Max-Age=%u",
			 AUTH_COOKIE, token, max_age_s);
	return n < 0 || (size_t)n >= len ? SDK_ETOOLARGE : 0;
}
