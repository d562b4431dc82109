#include "sdk/router.h"

#include <string.h>

static int seg_len(const char *s)
{
	const char *e = strchr(s, '/');
	return e ? (int)(e - s) : (int)strlen(s);
}

static int add_param(sdk_route_params *params, const char *name, size_t nlen,
		     const char *value, size_t vlen)
{
	if (params->n == SDK_ROUTE_PARAMS_MAX || nlen >= sizeof params->p[0].name ||
	    vlen >= sizeof params->p[0].value)
		return -1;
	memcpy(params->p[params->n].name, name, nlen);
	params->p[params->n].name[nlen] = '\0';
	memcpy(params->p[params->n].value, value, vlen);
	params->p[params->n].value[vlen] = '\0';
	params->n++;
	return 0;
}

static int path_match(const char *pat, const char *path, sdk_route_params *params)
{
	params->n = 0;
	for (;;) {
		if (*pat == '\0')
			return *path == '\0';
		if (*pat != '/' || *path != '/')
			return 0;
		pat++, path++;
		if (pat[0] == '*' && pat[1] == '\0')
			return add_param(params, "*", 1, path, strlen(path)) == 0;
		int pl = seg_len(pat), sl = seg_len(path);
		if (pat[0] == ':') {
			if (sl == 0 || add_param(params, pat + 1, (size_t)pl - 1, path, (size_t)sl) < 0)
				return 0;
		} else if (pl != sl || memcmp(pat, path, (size_t)pl) != 0) {
			return 0;
		}
		pat += pl, path += sl;
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
		if (!path_match(r->path, path, &scratch))
			continue;
		if (r->method && strcmp(r->method, method) != 0) {
			rc = SDK_ROUTE_BAD_METHOD;
			continue;
		}
		*params = scratch;
		return (int)i;
	}
	return rc;
}

const char *sdk_route_param(const sdk_route_params *params, const char *name)
{
	for (size_t i = 0; i < params->n; i++)
		if (!strcmp(params->p[i].name, name))
			return params->p[i].value;
	return NULL;
}
