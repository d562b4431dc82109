/* `grace routes [--json]`: every route :8000 answers, as this binary
 * registers them. The API's families come as they are; a gateway prefix
 * that forwards every route of a kernel (/librarian/ and /kernels/:name/
 * followed by "*") is expanded into each route of each kernel it reaches
 * (the SDK's standard ones first), and a prefix route that forwards one
 * route ("/bus/publish")
 * names the kernel route it reaches. Nothing is asked of a running Grace:
 * this is what the OpenAPI document (GET /openapi.json) must describe, and
 * tests/blackbox/test_openapi.py compares the two. */
#include "cli/cli.h"

#include "kernels/registry.h"
#include "serve/api/api.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static const char *access_name(unsigned access)
{
	switch (access) {
	case ACCESS_PUBLIC: return "public";
	case ACCESS_ANON: return "public"; /* no session needed (decided by policy as Anonymous) */
	case ACCESS_USER: return "user";
	default: return "admin"; /* the router's default: fail closed */
	}
}

/* A router pattern as OpenAPI writes it: ":name" segments become "{name}",
 * a final "*" (the rest of the path) "{path}". False when it does not fit. */
static bool openapi_path(const char *pattern, char *out, size_t len)
{
	size_t o = 0;
	for (const char *p = pattern; *p;) {
		size_t seg = strcspn(p + 1, "/") + 1; /* "/x" up to the next "/" */
		int k;
		if (p[1] == ':')
			k = snprintf(out + o, len - o, "/{%.*s}", (int)(seg - 2), p + 2);
		else if (seg == 2 && p[1] == '*')
			k = snprintf(out + o, len - o, "/{path}");
		else
			k = snprintf(out + o, len - o, "%.*s", (int)seg, p);
		if (k < 0 || (size_t)k >= len - o)
			return false;
		o += (size_t)k;
		p += seg;
	}
	return true;
}

/* The prefix's path with its :name segment (if any) naming `kernel`. */
static bool prefix_for(const api_prefix *px, const char *kernel, char *out, size_t len)
{
	const char *param = strstr(px->path, "/:");
	int k = param ? snprintf(out, len, "%.*s/%s%s", (int)(param - px->path), px->path, kernel,
				 param + 1 + strcspn(param + 1, "/"))
		      : snprintf(out, len, "%s", px->path);
	return k >= 0 && (size_t)k < len;
}

static json_t *route_json(const char *method, const char *pattern, unsigned access,
			  const char *family)
{
	char path[SDK_PATH_MAX];
	if (!openapi_path(pattern, path, sizeof path))
		return NULL;
	return json_pack("{s:s, s:s, s:s, s:s, s:s}", "method", method ? method : "*", "path", path,
			 "pattern", pattern, "access", access_name(access), "family", family);
}

/* Adds what the kernel answers at `kpath`: its name, its path in OpenAPI
 * form, and whether one of its routes matches at all. */
static void add_kernel(json_t *r, const sdk_kernel_def *def, const char *method, const char *kpath)
{
	char path[SDK_PATH_MAX];
	size_t n_std;
	const sdk_route *std = sdk_kernel_standard_routes(&n_std);
	sdk_route_params params;
	bool known = (method && sdk_route_match(std, n_std, sizeof *std, method, kpath, &params) >= 0) ||
		     (method && def->n_routes &&
		      sdk_route_match(def->routes, def->n_routes, sizeof *def->routes, method, kpath,
				      &params) >= 0);
	json_object_set_new(r, "kernel", json_string(def->name));
	json_object_set_new(r, "kernel_path",
			    openapi_path(kpath, path, sizeof path) ? json_string(path) : json_null());
	json_object_set_new(r, "kernel_route", json_boolean(known));
}

/* Every route of `def` under the prefix path `under` (a concrete path). */
static void expand_kernel(json_t *out, const sdk_route *r, const char *family, const char *under,
			  const sdk_kernel_def *def)
{
	size_t n_std;
	const sdk_route *std = sdk_kernel_standard_routes(&n_std);
	for (size_t part = 0; part < 2; part++) {
		const sdk_route *table = part ? def->routes : std;
		size_t n = part ? def->n_routes : n_std;
		for (size_t i = 0; i < n; i++) {
			const char *m = table[i].pattern.method;
			if (r->pattern.method && m && strcmp(m, r->pattern.method))
				continue;
			char pattern[SDK_PATH_MAX];
			snprintf(pattern, sizeof pattern, "%s%s", under, table[i].pattern.path);
			json_t *j = route_json(m ? m : r->pattern.method, pattern, r->access, family);
			if (!j)
				continue;
			add_kernel(j, def, m, table[i].pattern.path);
			json_array_append_new(out, j);
		}
	}
}

/* One route of a family: itself, or what it forwards. */
static void add_route(json_t *out, const sdk_route *r, const char *family)
{
	const api_prefix *px = api_prefix_of(r->pattern.path);
	if (!px) {
		json_t *j = route_json(r->pattern.method, r->pattern.path, r->access, family);
		if (j)
			json_array_append_new(out, j);
		return;
	}
	const char *rest = r->pattern.path + strlen(px->path);
	bool every = !strcmp(rest, "/*");
	for (size_t i = 0; i < kernel_registry_count(); i++) {
		const sdk_kernel_def *def = kernel_registry_at(i);
		if (px->kernel && strcmp(px->kernel, def->name))
			continue;
		char under[SDK_PATH_MAX];
		if (!prefix_for(px, def->name, under, sizeof under))
			continue;
		if (every) {
			expand_kernel(out, r, family, under, def);
			continue;
		}
		char pattern[SDK_PATH_MAX];
		snprintf(pattern, sizeof pattern, "%s%s", under, rest);
		json_t *j = route_json(r->pattern.method, pattern, r->access, family);
		if (!j)
			continue;
		add_kernel(j, def, r->pattern.method, rest);
		json_array_append_new(out, j);
	}
}

/* Every route :8000 answers: a new array. */
static json_t *routes_json(void)
{
	json_t *out = json_array();
	for (size_t f = 0; out && f < api_family_count(); f++) {
		const api_family *fam = api_family_at(f);
		for (size_t i = 0; i < fam->n_routes; i++)
			add_route(out, &fam->routes[i], fam->name);
	}
	return out;
}

static void print_table(json_t *routes)
{
	size_t i;
	json_t *r;
	json_array_foreach(routes, i, r) {
		const char *kernel = json_string_value(json_object_get(r, "kernel"));
		printf("%-7s %-52s %-6s %-12s", json_string_value(json_object_get(r, "method")),
		       json_string_value(json_object_get(r, "path")),
		       json_string_value(json_object_get(r, "access")),
		       json_string_value(json_object_get(r, "family")));
		if (kernel)
			printf(" -> %s %s%s", kernel,
			       json_string_value(json_object_get(r, "kernel_path")),
			       json_is_true(json_object_get(r, "kernel_route")) ? "" : " (no such route)");
		putchar('\n');
	}
}

int cli_routes(const struct cli_args *a)
{
	bool as_json = a->json;
	json_t *routes = routes_json();
	if (!routes) {
		fprintf(stderr, "grace: out of memory\n");
		return 1;
	}
	if (as_json) {
		json_t *doc = json_pack("{s:o}", "routes", routes);
		char *s = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
		json_decref(doc);
		if (!s) {
			fprintf(stderr, "grace: out of memory\n");
			return 1;
		}
		puts(s);
		free(s);
		return 0;
	}
	print_table(routes);
	json_decref(routes);
	return 0;
}
