/* kernel-table: the kernel registry as JSON, for the build. The OpenAPI
 * document (scripts/openapi_build.py) describes every kernel this binary
 * can run under /kernels/NAME; this program tells it which kernels those
 * are, from the registry itself, so a kernel added there is described
 * without a list kept anywhere else. Linked with the kernels only, never
 * with the main process (whose API embeds the document this feeds). */
#include "kernels/registry.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

static json_t *routes_json(const sdk_route *r, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < n; i++)
		json_array_append_new(a, json_pack("{s:s?, s:s}", "method", r[i].pattern.method,
						   "path", r[i].pattern.path));
	return a;
}

int main(void)
{
	size_t n_std;
	const sdk_route *std = sdk_kernel_standard_routes(&n_std);
	json_t *kernels = json_array();
	for (size_t i = 0; kernels && i < kernel_registry_count(); i++) {
		const sdk_kernel_def *d = kernel_registry_at(i);
		json_array_append_new(kernels, json_pack("{s:s, s:s, s:b, s:o}", "name", d->name,
							 "summary", d->summary ? d->summary : "",
							 "complete", d->complete, "routes",
							 routes_json(d->routes, d->n_routes)));
	}
	json_t *doc = json_pack("{s:o, s:o}", "standard_routes", routes_json(std, n_std), "kernels",
				kernels);
	char *s = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
	json_decref(doc);
	if (!s) {
		fprintf(stderr, "kernel-table: out of memory\n");
		return 1;
	}
	puts(s);
	free(s);
	return 0;
}
