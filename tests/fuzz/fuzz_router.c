/* What the server does with a request's target before a handler runs:
 * path decoding and the query checks of src/sdk/http.c (included, to reach
 * its statics), and route matching in src/sdk/router.c.
 *
 * Input: lines "METHOD", "TARGET", then optional "METHOD PATTERN" routes
 * (method "*": any); without routes, Grace's own API table is used.
 *
 * Properties (a failure aborts):
 *  - a decoded path holds no NUL, is no longer than the raw path, and is
 *    the raw path when it has no '%'; percent-encoding it again and
 *    decoding gives it back;
 *  - a query sdk_req_query_ok accepts has only well-formed escapes and
 *    name=value pairs, and its parse gives one pair per non-empty pair
 *    (up to SDK_QUERY_MAX), each with a non-empty name;
 *  - sdk_route_match agrees with a plain reference matcher (split both at
 *    '/', compare segment by segment): the same route, or the same "wrong
 *    method" or "no route"; the captured values are the path's own
 *    segments (a ":name" one segment, non-empty and without '/'; "*" the
 *    rest), so the pattern with its values put back is the path itself;
 *    params are written only on a match;
 *  - sdk_route_allowed lists each method of the routes that match the
 *    path (HEAD with GET) once, and no other. */
#include "../../src/sdk/http.c"

#include "fuzz.h"

#include <stdbool.h>
#include <string.h>

#define ROUTES_MAX 16
#define LINE_MAX_ 4096

static const sdk_route_pattern grace_routes[] = {
	{ "GET", "/health" },
	{ "GET", "/metrics" },
	{ "POST", "/auth/login" },
	{ "POST", "/auth/users" },
	{ "GET", "/auth/users" },
	{ "DELETE", "/auth/users/:name" },
	{ "POST", "/auth/users/:name/password" },
	{ "GET", "/kernel-ports" },
	{ "GET", "/kernel-ports/health-check" },
	{ "GET", "/kernel-ports/:name" },
	{ "POST", "/kernel-ports/:name/:action" },
	{ "GET", "/chat/sessions/:id" },
	{ "POST", "/chat/sessions/:id/messages" },
	{ "POST", "/memory/tables" },
	{ "GET", "/memory/tables/:table" },
	{ "POST", "/memory/tables/:table/rows" },
	{ "GET", "/memory/tables/:table/rows" },
	{ "GET", "/memory/tables/:table/rows/:id" },
	{ "PATCH", "/memory/tables/:table/rows/:id" },
	{ "DELETE", "/memory/tables/:table/rows/:id" },
	{ "GET", "/" },
	{ NULL, "/kernels/:name/*" },
};

struct cap {
	const char *name;
	size_t name_len;
	const char *value; /* into the path */
	size_t len;
};

/* The reference: both split at '/', compared segment by segment. The
 * limits are the router's: names under SDK_ROUTE_NAME_MAX bytes, at most
 * SDK_ROUTE_PARAMS_MAX captures. */
static bool ref_match(const char *pat, const char *path, struct cap *caps, size_t *n_caps)
{
	*n_caps = 0;
	if (pat[0] != '/' || path[0] != '/')
		return false;
	const char *p = pat + 1, *s = path + 1;
	for (;;) {
		size_t pl = strcspn(p, "/");
		bool last = p[pl] == '\0';
		if (last && pl == 1 && p[0] == '*') {
			if (*n_caps == SDK_ROUTE_PARAMS_MAX)
				return false;
			caps[(*n_caps)++] = (struct cap){ "*", 1, s, strlen(s) };
			return true;
		}
		size_t sl = strcspn(s, "/");
		if (pl && p[0] == ':') {
			if (sl == 0 || pl - 1 >= SDK_ROUTE_NAME_MAX || *n_caps == SDK_ROUTE_PARAMS_MAX)
				return false;
			caps[(*n_caps)++] = (struct cap){ p + 1, pl - 1, s, sl };
		} else if (pl != sl || memcmp(p, s, pl)) {
			return false;
		}
		bool s_last = s[sl] == '\0';
		if (last || s_last)
			return last && s_last;
		p += pl + 1;
		s += sl + 1;
	}
}

static bool all_tchar(const char *s)
{
	for (const char *c = s; *c; c++)
		if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      strchr("!#$%&'*+-.^_`|~", *c)))
			return false;
	return *s != '\0';
}

static bool listed(const char *allow, const char *m)
{
	size_t ml = strlen(m);
	for (const char *p = allow; (p = strstr(p, m)); p += ml)
		if ((p == allow || p[-1] == ' ') && (p[ml] == ',' || p[ml] == '\0'))
			return true;
	return false;
}

static size_t times_listed(const char *allow, const char *m)
{
	size_t n = 0, ml = strlen(m);
	for (const char *p = allow; (p = strstr(p, m)); p += ml)
		n += (p == allow || p[-1] == ' ') && (p[ml] == ',' || p[ml] == '\0');
	return n;
}

static void check_route(const sdk_route_pattern *routes, size_t n, const char *method,
			const char *path)
{
	static sdk_route_params params;
	static struct cap caps[SDK_ROUTE_PARAMS_MAX], got[SDK_ROUTE_PARAMS_MAX];
	size_t n_caps = 0, n_got = 0;
	int want = SDK_ROUTE_NOT_FOUND;
	for (size_t i = 0; i < n; i++) {
		if (!ref_match(routes[i].path, path, caps, &n_caps))
			continue;
		if (routes[i].method && strcmp(routes[i].method, method)) {
			want = SDK_ROUTE_BAD_METHOD;
			continue;
		}
		want = (int)i;
		memcpy(got, caps, sizeof caps);
		n_got = n_caps;
		break;
	}
	memset(&params, 0xa5, sizeof params);
	int rc = sdk_route_match(routes, n, sizeof *routes, method, path, &params);
	FUZZ_CHECK(rc == want, "%s %s: route %d, the reference says %d", method, path, rc, want);
	if (rc < 0) {
		unsigned char *b = (unsigned char *)&params;
		for (size_t i = 0; i < sizeof params; i++)
			FUZZ_CHECK(b[i] == 0xa5, "params written on a miss (byte %zu)", i);
	} else {
		FUZZ_CHECK(params.n == n_got, "%zu params, the reference has %zu", params.n, n_got);
		for (size_t i = 0; i < n_got; i++) {
			const char *v = params.buf + params.p[i].value_at;
			FUZZ_CHECK(params.p[i].name_len == got[i].name_len &&
					   !memcmp(params.p[i].name, got[i].name, got[i].name_len),
				   "param %zu's name", i);
			FUZZ_CHECK(strlen(v) == got[i].len && !memcmp(v, got[i].value, got[i].len),
				   "param %zu: '%s', the path has '%.*s'", i, v, (int)got[i].len,
				   got[i].value);
			FUZZ_CHECK(got[i].name[0] == '*' || (got[i].len && !memchr(v, '/', got[i].len)),
				   "param %zu: '%s' is not one segment", i, v);
			/* The first value of a name is the one handlers get. */
			char name[SDK_ROUTE_NAME_MAX + 1];
			memcpy(name, got[i].name, got[i].name_len);
			name[got[i].name_len] = '\0';
			const char *first = sdk_route_param(&params, name);
			FUZZ_CHECK(first && (first == v || first < v), "sdk_route_param(%s)", name);
		}
		/* Put back into the pattern, the values give the path. */
		char rebuilt[2 * SDK_PATH_MAX + 64];
		size_t o = 0, k = 0;
		for (const char *p = routes[rc].path; *p;) {
			size_t pl = strcspn(p + 1, "/") + 1; /* "/seg" */
			bool cap = (p[1] == ':') || (p[1] == '*' && pl == 2 && !p[2]);
			memcpy(rebuilt + o, "/", 1);
			o += 1;
			if (cap) {
				const char *v = params.buf + params.p[k++].value_at;
				memcpy(rebuilt + o, v, strlen(v));
				o += strlen(v);
			} else {
				memcpy(rebuilt + o, p + 1, pl - 1);
				o += pl - 1;
			}
			p += pl;
		}
		rebuilt[o] = '\0';
		FUZZ_CHECK(!strcmp(rebuilt, path), "pattern %s with its values is '%s', not '%s'",
			   routes[rc].path, rebuilt, path);
	}

	char allow[128];
	sdk_route_allowed(routes, n, sizeof *routes, path, allow, sizeof allow);
	FUZZ_CHECK(strlen(allow) < sizeof allow, "Allow overflows");
	for (size_t i = 0; i < n; i++) {
		const char *m = routes[i].method;
		if (m && ref_match(routes[i].path, path, caps, &n_caps))
			FUZZ_CHECK(listed(allow, m) || strlen(allow) + strlen(m) + 3 > sizeof allow,
				   "Allow '%s' lacks %s", allow, m);
	}
	/* Every method listed is that of a matching route, listed once. */
	for (const char *p = allow; *p;) {
		size_t l = strcspn(p, ",");
		char m[128];
		memcpy(m, p, l);
		m[l] = '\0';
		bool known = false;
		for (size_t i = 0; i < n && !known; i++)
			known = routes[i].method && ref_match(routes[i].path, path, caps, &n_caps) &&
				(!strcmp(routes[i].method, m) ||
				 (!strcmp(m, "HEAD") && !strcmp(routes[i].method, "GET")));
		FUZZ_CHECK(known, "Allow '%s' lists %s", allow, m);
		FUZZ_CHECK(times_listed(allow, m) == 1, "Allow '%s' lists %s twice", allow, m);
		p += l;
		if (*p)
			p += 2; /* ", " */
	}
}

static int hexv(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
					    : c >= 'A' && c <= 'F' ? c - 'A' + 10
								   : -1;
}

static void check_path(const char *t, size_t n, char *path)
{
	int rc = path_decode(t, n, path);
	if (rc < 0) {
		/* Refused: a malformed escape or an encoded NUL is in it. */
		bool bad = false;
		for (size_t i = 0; i < n; i++)
			if (t[i] == '%' && (i + 2 >= n || hexv(t[i + 1]) < 0 || hexv(t[i + 2]) < 0 ||
					    (hexv(t[i + 1]) == 0 && hexv(t[i + 2]) == 0))) {
				bad = true;
				break;
			} else if (t[i] == '%') {
				i += 2;
			}
		FUZZ_CHECK(bad, "'%.*s' refused", (int)n, t);
		return;
	}
	size_t pl = strlen(path);
	FUZZ_CHECK(pl <= n, "decoded longer than the raw path");
	FUZZ_CHECK(memchr(t, '%', n) || (pl == n && !memcmp(t, path, n)), "changed without a %%");
	/* Encode every byte, decode again. */
	char *enc = malloc(3 * pl + 1), *dec = malloc(pl + 1);
	if (!enc || !dec)
		abort();
	for (size_t i = 0; i < pl; i++)
		sprintf(enc + 3 * i, "%%%02X", (unsigned char)path[i]);
	FUZZ_CHECK(path_decode(enc, 3 * pl, dec) == 0 && !strcmp(dec, path), "re-decoding differs");
	free(enc);
	free(dec);
}

static sdk_req req;

static void check_query(const char *target)
{
	memset(&req, 0, offsetof(sdk_req, h));
	req.h.target = target;
	const char *q = sdk_req_query_string(&req);
	bool ok = sdk_req_query_ok(&req);
	(void)sdk_req_query(&req, "x"); /* parses */
	size_t pairs = 0;
	if (q)
		for (const char *p = q; *p;) {
			size_t l = strcspn(p, "&");
			const char *eq = memchr(p, '=', l);
			if (ok) {
				FUZZ_CHECK(l == 0 || (eq && eq > p), "pair '%.*s' accepted", (int)l, p);
				for (size_t i = 0; i < l; i++)
					if (p[i] == '%')
						FUZZ_CHECK(i + 2 < l && hexv(p[i + 1]) >= 0 &&
								   hexv(p[i + 2]) >= 0,
							   "escape in '%.*s' accepted", (int)l, p);
			}
			/* A pair whose name decodes to "" is dropped. */
			pairs += l > 0 && !(eq == p);
			p += l;
			if (*p)
				p++;
		}
	for (size_t i = 0; i < req.n_query; i++)
		FUZZ_CHECK(req.query[i].name[0], "an empty name parsed");
	if (ok)
		FUZZ_CHECK(req.n_query == (pairs < SDK_QUERY_MAX ? pairs : SDK_QUERY_MAX),
			   "%zu pairs parsed of %zu", req.n_query, pairs);
	free(req.query_copy);
	req.query_copy = NULL;
}

/* The next line of [*p, end): NUL-terminated in place. */
static char *line(char **p, char *end)
{
	if (*p >= end)
		return NULL;
	char *s = *p, *nl = memchr(s, '\n', (size_t)(end - s));
	if (!nl)
		nl = end;
	*nl = '\0';
	*p = nl + 1;
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 3 * SDK_PATH_MAX)
		return 0;
	char *buf = fuzz_copy(data, size, 1), *p = buf, *end = buf + size;
	char *method = line(&p, end), *target = line(&p, end);
	if (!method || !target || strlen(method) >= 8 || target[0] != '/') {
		free(buf);
		return 0;
	}
	static sdk_route_pattern routes[ROUTES_MAX];
	size_t n = 0;
	for (char *l; n < ROUTES_MAX && (l = line(&p, end));) {
		char *sp = strchr(l, ' ');
		if (!sp)
			continue;
		*sp = '\0';
		if (strcmp(l, "*") && !all_tchar(l))
			continue; /* route methods are tokens */
		routes[n++] = (sdk_route_pattern){ strcmp(l, "*") ? l : NULL, sp + 1 };
	}

	/* As req_dispatch does. */
	const char *q = strchr(target, '?');
	size_t tn = q ? (size_t)(q - target) : strlen(target);
	if (tn < SDK_PATH_MAX) {
		char *path = malloc(tn + 1);
		if (!path)
			abort();
		check_path(target, tn, path);
		if (path_decode(target, tn, path) == 0) {
			if (n)
				check_route(routes, n, method, path);
			else
				check_route(grace_routes, sizeof grace_routes / sizeof *grace_routes,
					    method, path);
		}
		free(path);
	}
	check_query(target);
	free(buf);
	return 0;
}
