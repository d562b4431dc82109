/* `grace archive verify FILE`: checks an archive of the immutable log with
 * nothing but the file (the kernel's archive_check.c), so an archive moved
 * off the host can be checked where it is kept. Exit 0 when it verifies,
 * 1 when it does not, 2 when the file cannot be read. */
#include "cli/cli.h"

#include "kernels/immutable_log/archive.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

int cli_archive(const struct cli_args *a)
{
	const char *path = a->args[1]; /* args[0] is "verify", the table's one word */
	if (sodium_init() < 0) {
		fprintf(stderr, "grace archive: libsodium failed to initialise\n");
		return CLI_FAILED;
	}
	json_t *r = NULL;
	sdk_err e;
	if (ilog_archive_check(path, &r, &e) < 0) {
		fprintf(stderr, "grace archive: %s\n", e.msg);
		return CLI_USAGE;
	}
	bool ok = json_is_true(json_object_get(r, "ok"));
	if (a->json) {
		json_dumpf(r, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
		fputc('\n', stdout);
	} else if (ok) {
		printf("%s: verifies\n  entries [%lld, %lld) against the signed tree head of size"
		       " %lld\n  root_hash %s\n  key_id    %s (compare with the log's GET /key)\n"
		       "  sha256    %s (compare with the log's GET /archives)\n",
		       path, (long long)json_integer_value(json_object_get(r, "first")),
		       (long long)json_integer_value(json_object_get(r, "end")),
		       (long long)json_integer_value(json_object_get(r, "tree_size")),
		       json_string_value(json_object_get(r, "root_hash")),
		       json_string_value(json_object_get(r, "key_id")),
		       json_string_value(json_object_get(r, "sha256")));
	} else {
		fprintf(stderr, "%s: does NOT verify: %s\n", path,
			json_string_value(json_object_get(r, "reason")));
	}
	json_decref(r);
	return ok ? CLI_OK : CLI_FAILED;
}
