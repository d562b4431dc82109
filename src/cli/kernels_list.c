/* `grace kernels-list [--json]`: every kernel this binary can run, as its
 * definition says (kernels/registry.h). The one source the harness, the
 * README's kernel table (scripts/kernel_table.py) and operators read. */
#include "cli/cli.h"
#include "kernels/registry.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* complete: everything its issue asks works; partial: routes of its own,
 * not all yet; placeholder: only the SDK's /health and /metrics. */
static const char *kernel_state(const sdk_kernel_def *d)
{
	return d->complete ? "complete" : d->n_routes ? "partial" : "placeholder";
}

static json_t *kernels_json(void)
{
	json_t *list = json_array();
	for (size_t i = 0; list && i < kernel_registry_count(); i++) {
		const sdk_kernel_def *d = kernel_registry_at(i);
		json_t *o = json_pack("{s:s, s:i, s:s, s:s, s:b, s:i, s:s, s:i}", "name", d->name,
				      "port", d->port, "tier", d->tier, "state", kernel_state(d),
				      "complete", d->complete, "routes", (int)d->n_routes, "summary",
				      d->summary, "schema_version", d->schema_version);
		if (!o || json_array_append_new(list, o) < 0) {
			json_decref(list);
			return NULL;
		}
	}
	return list ? json_pack("{s:o}", "kernels", list) : NULL;
}

int cli_kernels_list(const struct cli_args *a)
{
	if (a->json) {
		json_t *o = kernels_json();
		char *text = o ? json_dumps(o, JSON_INDENT(1) | JSON_PRESERVE_ORDER) : NULL;
		json_decref(o);
		if (!text) {
			fprintf(stderr, "grace: out of memory\n");
			return 1;
		}
		puts(text);
		free(text);
		return 0;
	}
	for (size_t i = 0; i < kernel_registry_count(); i++) {
		const sdk_kernel_def *d = kernel_registry_at(i);
		printf("%-14s %-5d %-11s %-12s %s\n", d->name, d->port, d->tier, kernel_state(d),
		       d->summary);
	}
	return 0;
}
