#include "sdk/router.h"

#include <stdio.h>
#include <string.h>

static int seg_len(const char *s)
{
	const char *e = strchr(s, '/');
	return e ? (int)(e - s) : (int)strlen(s);
}

static int add_param(sdk_route_params *params, const char *name, size_t nlen,
		     const char *value, size_t vlen)
{
	if (params->n == SDK_ROUTE_PARAMS_MAX || nlen >= SDK_ROUTE_NAME_MAX ||
	    vlen >= SDK_PATH_MAX || params->used + vlen + 1 > sizeof params->buf)
		return -1;
	params->p[params->n].name = name;
	params->p[params->n].name_len = nlen;
	params->p[params->n].value_at = params->used;
	memcpy(params->buf + params->used, value, vlen);
	params->buf[params->used + vlen] = '\0';
	params->used += vlen + 1;
	params->n++;
	return 0;
}

/* Whether pattern `pat` may match `path` at all, by their first segment's
 * first byte: skips most of a long table without a call. path[1] is read
 * only when path[0] is '/' (an empty path has no second byte). */
static inline int may_match(const char *pat, const char *path)
{
	return pat[0] != '/' || path[0] != '/' || pat[1] == ':' || pat[1] == '*' ||
	       pat[1] == path[1];
}

static int path_match(const char *pat, const char *path, sdk_route_params *params)
{
	params->n = params->used = 0;
	for (;;) {
		if (*pat == '\0')
			return *path == '\0';
		if (*pat != '/' || *path != '/')
			return 0;
		pat++, path++;
		if (pat[0] == '*' && pat[1] == '\0')
			return add_param(params, "*", 1, path, strlen(path)) == 0;
		if (pat[0] == ':') {
			int pl = seg_len(pat), sl = seg_len(path);
			if (sl == 0 || add_param(params, pat + 1, (size_t)pl - 1, path, (size_t)sl) < 0)
				return 0;
			pat += pl, path += sl;
			continue;
		}
		/* A literal segment, compared as it is walked: most routes of a
		 * table differ at the first byte, so no segment lengths first. */
		while (*pat && *pat != '/' && *pat == *path)
			pat++, path++;
		if ((*pat && *pat != '/') || (*path && *path != '/'))
			return 0;
	}
}

int sdk_route_match(const void *table, size_t n, size_t stride, const char *method,
		    const char *path, sdk_route_params *params)
{
	int rc = SDK_ROUTE_NOT_FOUND;
	sdk_route_params scratch;
	for (size_t i = 0; i < n; i++) {
		const sdk_route_pattern *r =
			(const sdk_route_pattern *)((const char *)table + i * stride);
		if (!may_match(r->path, path) || !path_match(r->path, path, &scratch))
			continue;
		if (r->method && strcmp(r->method, method) != 0) {
			rc = SDK_ROUTE_BAD_METHOD;
			continue;
		}
		/* Only a match writes `params`, and only what it holds. */
		params->n = scratch.n;
		params->used = scratch.used;
		memcpy(params->p, scratch.p, scratch.n * sizeof *scratch.p);
		memcpy(params->buf, scratch.buf, scratch.used);
		return (int)i;
	}
	return rc;
}

static void allow_add(char *out, size_t len, const char *m)
{
	size_t ml = strlen(m), ol = strlen(out);
	for (const char *p = out; (p = strstr(p, m)); p += ml)
		if ((p == out || p[-1] == ' ') && (p[ml] == ',' || p[ml] == '\0'))
			return; /* listed already */
	if (ol + ml + 3 > len)
		return;
	snprintf(out + ol, len - ol, "%s%s", ol ? ", " : "", m);
}

void sdk_route_allowed(const void *table, size_t n, size_t stride, const char *path, char *out,
		       size_t len)
{
	sdk_route_params scratch;
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		const sdk_route_pattern *r =
			(const sdk_route_pattern *)((const char *)table + i * stride);
		if (!r->method || !may_match(r->path, path) || !path_match(r->path, path, &scratch))
			continue;
		allow_add(out, len, r->method);
		if (!strcmp(r->method, "GET"))
			allow_add(out, len, "HEAD");
	}
}

const char *sdk_route_param(const sdk_route_params *params, const char *name)
{
	size_t nl = strlen(name);
	for (size_t i = 0; i < params->n; i++)
		if (params->p[i].name_len == nl && !memcmp(params->p[i].name, name, nl))
			return params->buf + params->p[i].value_at;
	return NULL;
}
