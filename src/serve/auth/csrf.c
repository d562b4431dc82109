#include "serve/auth/csrf.h"

#include <string.h>
#include <strings.h>

bool auth_method_safe(const char *method)
{
	return !strcmp(method, "GET") || !strcmp(method, "HEAD") || !strcmp(method, "OPTIONS");
}

bool auth_content_type_json(const char *ct)
{
	static const char json[] = "application/json";
	if (!ct)
		return false;
	ct += strspn(ct, " \t");
	if (strncasecmp(ct, json, sizeof json - 1))
		return false;
	ct += sizeof json - 1;
	ct += strspn(ct, " \t");
	return *ct == '\0' || *ct == ';';
}

bool auth_origin_allowed(const auth_hosts *origins, const char *origin)
{
	const char *host;
	if (!strncasecmp(origin, "http://", 7))
		host = origin + 7;
	else if (!strncasecmp(origin, "https://", 8))
		host = origin + 8;
	else
		return false; /* "null", another scheme, garbage */
	if (!*host || strlen(host) >= AUTH_HOST_LEN || strpbrk(host, "/?#@ \t"))
		return false;
	return auth_hosts_has(origins, host);
}

static bool fetch_site_is(const char *v, const char *want)
{
	return v && !strcasecmp(v, want);
}

int auth_csrf_cookie(const auth_hosts *origins, const auth_csrf_in *in, sdk_err *err)
{
	if (auth_method_safe(in->method))
		return 0;
	if (in->origin) {
		if (!auth_origin_allowed(origins, in->origin))
			return sdk_fail(err, SDK_EDENIED,
					"a request from another origin (%.80s) may not use the session "
					"cookie to change anything",
					in->origin);
	} else if (!fetch_site_is(in->fetch_site, "same-origin")) {
		return sdk_fail(err, SDK_EDENIED,
				"a change made with the session cookie needs an Origin header naming "
				"this API (or Sec-Fetch-Site: same-origin)");
	}
	if (!auth_content_type_json(in->content_type))
		return sdk_fail(err, SDK_EDENIED,
				"a change made with the session cookie needs Content-Type: "
				"application/json");
	return 0;
}

int auth_csrf_anonymous(const auth_hosts *origins, const auth_csrf_in *in, sdk_err *err)
{
	if (auth_method_safe(in->method))
		return 0;
	if (in->origin) {
		if (!auth_origin_allowed(origins, in->origin))
			return sdk_fail(err, SDK_EDENIED, "a page of another origin (%.80s) may not log in",
					in->origin);
		return 0;
	}
	if (in->fetch_site && !fetch_site_is(in->fetch_site, "same-origin") &&
	    !fetch_site_is(in->fetch_site, "none"))
		return sdk_fail(err, SDK_EDENIED, "a page of another origin (Sec-Fetch-Site: %.20s) "
						  "may not log in", in->fetch_site);
	return 0;
}
