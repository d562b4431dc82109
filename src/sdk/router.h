/* Routes as a table: {method, pattern, handler}. A pattern is a path whose
 * segments are literal, ":name" (one segment, captured) or a final "*"
 * (the rest of the path, captured as "*"). */
#ifndef GRACE_SDK_ROUTER_H
#define GRACE_SDK_ROUTER_H

#include <stddef.h>

#define SDK_ROUTE_PARAMS_MAX 8
#define SDK_PATH_MAX 2048     /* a captured value is shorter */
#define SDK_ROUTE_NAME_MAX 32 /* a parameter's name is shorter */

/* Captured values, copied NUL-terminated into one buffer (their total is
 * bounded by the path's length); names point into the route's pattern. */
typedef struct sdk_route_params {
	size_t n, used;
	struct {
		const char *name; /* after the ':' of the pattern, or "*" */
		size_t name_len;
		size_t value_at; /* offset into buf */
	} p[SDK_ROUTE_PARAMS_MAX];
	char buf[SDK_PATH_MAX + SDK_ROUTE_PARAMS_MAX];
} sdk_route_params;

typedef struct sdk_route_pattern {
	const char *method; /* "GET", "POST", ...; NULL matches any method */
	const char *path;
} sdk_route_pattern;

enum { SDK_ROUTE_NOT_FOUND = -1, SDK_ROUTE_BAD_METHOD = -2 };

/* Matches a decoded path against `n` patterns laid out `stride` bytes apart
 * (so a table of larger structs that begin with a pattern can be passed).
 * Returns the index of the first match and fills `params`; or
 * SDK_ROUTE_BAD_METHOD when only the method differs, else SDK_ROUTE_NOT_FOUND. */
int sdk_route_match(const void *table, size_t n, size_t stride, const char *method,
		    const char *path, sdk_route_params *params);

/* Writes the methods of every route whose pattern matches `path` (HEAD
 * with GET) as "GET, HEAD, POST" into out (for a 405's Allow). */
void sdk_route_allowed(const void *table, size_t n, size_t stride, const char *path, char *out,
		       size_t len);

/* The captured value of `name`, or NULL. */
const char *sdk_route_param(const sdk_route_params *params, const char *name);

#endif
