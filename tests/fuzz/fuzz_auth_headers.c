/* The request headers the main process's authentication reads
 * (src/serve/auth/cookie.c, csrf.c, hosts.c): Cookie, Authorization,
 * Content-Type, Origin and Sec-Fetch-Site, as the HTTP parser hands them
 * over (no CR, LF or NUL), checked against plain readings of RFC 6265 and
 * of csrf.h's rule.
 *
 * Input: a byte of flags (which of the five headers are present; the low
 * bits of the next byte size the cookie buffer), then one line each:
 * method, Cookie, Authorization, Content-Type, Origin, Sec-Fetch-Site.
 *
 * Properties (a failure aborts):
 *  - the session token taken from a Cookie header is the value of its
 *    first pair named exactly grace_session (spaces around the pair
 *    ignored), only when that value is non-empty base64url that fits the
 *    buffer, copied whole; nothing is read or written outside the header
 *    and the buffer (each exactly its size);
 *  - the Set-Cookie value made for a token, sent back as a Cookie header,
 *    gives the token again;
 *  - a presented token is the Authorization's after "Bearer ", else the
 *    cookie's, and says which;
 *  - Content-Type is JSON exactly for "application/json" in any case,
 *    with blanks around and any parameters; an Origin is allowed exactly
 *    when it is http:// or https:// and one of the API's host:port names,
 *    any case, nothing else in it;
 *  - a change made with the session cookie is allowed exactly when the
 *    method changes nothing, or the page is the API's own (an allowed
 *    Origin, or without one Sec-Fetch-Site: same-origin) and the body is
 *    JSON; a refusal is SDK_EDENIED with a reason; the anonymous rule
 *    (logging in) likewise. */
#include "serve/auth/cookie.h"
#include "serve/auth/csrf.h"
#include "serve/auth/hosts.h"

#include "fuzz.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

static const char *const origins_list[] = { "127.0.0.1:8000", "localhost:8000", "[::1]:8000" };

static bool b64url(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

/* RFC 6265 §5.4's cookie-string split at ";", each pair's name up to its
 * first "=", read with indexes (the code under test walks pointers). */
static bool ref_cookie(const char *h, size_t cap, char *out)
{
	size_t n = strlen(h), i = 0;
	while (i <= n) {
		size_t j = i;
		while (j < n && h[j] != ';')
			j++;
		size_t a = i;
		while (a < j && (h[a] == ' ' || h[a] == '\t'))
			a++;
		size_t eq = a;
		while (eq < j && h[eq] != '=')
			eq++;
		if (eq < j && eq - a == strlen(AUTH_COOKIE) && !strncmp(h + a, AUTH_COOKIE, eq - a)) {
			size_t v = eq + 1, e = j;
			while (e > v && (h[e - 1] == ' ' || h[e - 1] == '\t'))
				e--;
			if (e == v || e - v >= cap)
				return false;
			for (size_t k = v; k < e; k++)
				if (!b64url(h[k]))
					return false;
			memcpy(out, h + v, e - v);
			out[e - v] = '\0';
			return true;
		}
		i = j + 1;
	}
	return false;
}

static bool ref_json_type(const char *ct)
{
	if (!ct)
		return false;
	size_t i = 0, n = strlen(ct);
	while (i < n && (ct[i] == ' ' || ct[i] == '\t'))
		i++;
	static const char want[] = "application/json";
	for (size_t k = 0; k < sizeof want - 1; k++, i++)
		if (i >= n || (ct[i] >= 'A' && ct[i] <= 'Z' ? ct[i] + 32 : ct[i]) != want[k])
			return false;
	while (i < n && (ct[i] == ' ' || ct[i] == '\t'))
		i++;
	return i == n || ct[i] == ';';
}

static bool ref_origin(const char *o)
{
	const char *rest = NULL;
	if (!strncasecmp(o, "http://", 7))
		rest = o + 7;
	else if (!strncasecmp(o, "https://", 8))
		rest = o + 8;
	if (!rest)
		return false;
	for (size_t i = 0; i < sizeof origins_list / sizeof *origins_list; i++)
		if (!strcasecmp(rest, origins_list[i]))
			return true;
	return false;
}

static bool ref_safe(const char *m)
{
	return !strcmp(m, "GET") || !strcmp(m, "HEAD") || !strcmp(m, "OPTIONS");
}

static char *line(char **p, char *end)
{
	if (*p > end)
		return NULL;
	char *s = *p, *nl = memchr(s, '\n', (size_t)(end - s));
	if (!nl)
		nl = end;
	*nl = '\0';
	*p = nl + 1;
	return s;
}

/* A header's value in a buffer of exactly its size (NULL stays NULL). */
static char *exact(const char *s)
{
	return s ? fuzz_copy((const uint8_t *)s, strlen(s), 1) : NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2 || size > 16384)
		return 0;
	unsigned flags = data[0], cap = (data[1] & 63) + 1;
	char *buf = fuzz_copy(data + 2, size - 2, 1), *p = buf, *end = buf + size - 2;
	for (char *q = buf; q < end; q++)
		if (*q == '\r' || *q == '\0')
			*q = ' '; /* the parser refuses them in a field */
	char *f[6];
	for (int i = 0; i < 6; i++)
		f[i] = line(&p, end);
	const char *method = f[0] && *f[0] ? f[0] : "POST";
	char *cookie = flags & 1 ? exact(f[1] ? f[1] : "") : NULL;
	char *authz = flags & 2 ? exact(f[2] ? f[2] : "") : NULL;
	char *ctype = flags & 4 ? exact(f[3] ? f[3] : "") : NULL;
	char *origin = flags & 8 ? exact(f[4] ? f[4] : "") : NULL;
	char *site = flags & 16 ? exact(f[5] ? f[5] : "") : NULL;

	/* The cookie, into a buffer of exactly `cap` bytes. */
	char *tok = malloc(cap), want[64];
	FUZZ_CHECK(tok, "out of memory");
	const char *got = auth_cookie_token(cookie, tok, cap);
	bool has = cookie && ref_cookie(cookie, cap, want);
	FUZZ_CHECK((got != NULL) == has && (!got || (got == tok && !strcmp(got, want))),
		   "Cookie: %.200s: token %s, the reading %s", cookie ? cookie : "(none)",
		   got ? got : "(none)", has ? want : "(none)");
	if (got) {
		char set[256];
		FUZZ_CHECK(auth_cookie_set(set, sizeof set, got, 3600) == 0, "Set-Cookie too long");
		char *semi = strchr(set, ';');
		FUZZ_CHECK(semi, "Set-Cookie %s has no attributes", set);
		*semi = '\0';
		char back[64];
		FUZZ_CHECK(auth_cookie_token(set, back, sizeof back) && !strcmp(back, got),
			   "the Set-Cookie %s does not give %s back", set, got);
	}

	/* Bearer first, else the cookie. */
	char tok2[64];
	bool by_cookie;
	const char *pres = auth_presented_token(authz, cookie, tok2, cap < 64 ? cap : 64,
						&by_cookie);
	if (authz && !strncmp(authz, "Bearer ", 7))
		FUZZ_CHECK(pres == authz + 7 && !by_cookie, "the bearer token is not the one taken");
	else
		FUZZ_CHECK((pres != NULL) == has && by_cookie == has &&
				   (!pres || !strcmp(pres, want)),
			   "the presented token is not the cookie's");

	/* Content-Type and Origin. */
	FUZZ_CHECK(auth_content_type_json(ctype) == ref_json_type(ctype), "Content-Type: %.200s",
		   ctype ? ctype : "(none)");
	auth_hosts origins = { .n = 0 };
	for (size_t i = 0; i < sizeof origins_list / sizeof *origins_list; i++)
		snprintf(origins.names[origins.n++], AUTH_HOST_LEN, "%s", origins_list[i]);
	if (origin)
		FUZZ_CHECK(auth_origin_allowed(&origins, origin) == ref_origin(origin),
			   "Origin: %.200s", origin);

	/* The two rules. */
	auth_csrf_in in = { .method = method, .origin = origin, .fetch_site = site,
			    .content_type = ctype };
	bool own = origin ? ref_origin(origin) : site && !strcasecmp(site, "same-origin");
	bool may = ref_safe(method) || (own && ref_json_type(ctype));
	sdk_err err = { .msg = "" };
	int rc = auth_csrf_cookie(&origins, &in, &err);
	FUZZ_CHECK(may ? rc == 0 : rc == SDK_EDENIED && *err.msg, "cookie rule: %s %s, got %d %s",
		   method, may ? "allowed" : "refused", rc, err.msg);
	bool anon = ref_safe(method) ||
		    (origin ? ref_origin(origin)
			    : !site || !strcasecmp(site, "same-origin") || !strcasecmp(site, "none"));
	err.msg[0] = '\0';
	rc = auth_csrf_anonymous(&origins, &in, &err);
	FUZZ_CHECK(anon ? rc == 0 : rc == SDK_EDENIED && *err.msg, "anonymous rule: %s %s, got %d",
		   method, anon ? "allowed" : "refused", rc);

	free(tok);
	free(cookie);
	free(authz);
	free(ctype);
	free(origin);
	free(site);
	free(buf);
	return 0;
}
