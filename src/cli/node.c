/* `grace node enroll NAME DIR`: a node's first X.509-SVID, asked of the
 * trust kernel through the API as an admin, written where the operator
 * copies it from (docs/deployment.md "Kernels on several hosts"). The
 * node renews it itself from then on (serve/node/nodes.h). */
#include "cli/api.h"
#include "cli/cli.h"
#include "sdk/keyfile.h"
#include "sdk/token.h"

#include <sodium.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TIMEOUT_MS 15000

static int write_one(const char *dir, const char *name, json_t *svid, const char *key)
{
	const char *text = json_string_value(json_object_get(svid, key));
	char path[PATH_MAX + 32];
	sdk_err err;
	snprintf(path, sizeof path, "%s/%s", dir, name);
	if (!text) {
		fprintf(stderr, "grace node enroll: the answer has no %s\n", key);
		return CLI_API_ERROR;
	}
	/* 0600 for all three: the key must be, and the rest is the node's own. */
	if (keyfile_replace(path, (const unsigned char *)text, strlen(text), &err) < 0) {
		fprintf(stderr, "grace node enroll: %s\n", err.msg);
		return CLI_FAILED;
	}
	return CLI_OK;
}

/* The nodes' shared internal token (serve/node/nodes.h), from this
 * node's data directory: a file only its owner reads, never sent over the
 * API. */
static int copy_token(const grace_config *cfg, const char *dir)
{
	char from[PATH_MAX + 64], to[PATH_MAX + 32];
	sdk_err err;
	unsigned char tok[SDK_TOKEN_LEN];
	snprintf(from, sizeof from, "%s/node/internal.token", cfg->data_dir);
	snprintf(to, sizeof to, "%s/internal.token", dir);
	int rc = keyfile_read(from, tok, sizeof tok, &err);
	if (rc == 0)
		rc = keyfile_replace(to, tok, sizeof tok, &err);
	sodium_memzero(tok, sizeof tok);
	if (rc < 0) {
		fprintf(stderr, "grace node enroll: the nodes' internal token: %s%s\n",
			rc == SDK_ENOTFOUND ? from : err.msg,
			rc == SDK_ENOTFOUND
				? ": missing (run this on the trust kernel's node, as the user "
				  "grace serve runs as, with its --config and --data-dir)"
				: "");
		return CLI_FAILED;
	}
	return CLI_OK;
}

int cli_node(const struct cli_args *a)
{
	const char *name = a->args[1], *dir = a->args[2];
	size_t nl = strlen(name);
	if (!nl || nl >= GRACE_NAME_MAX ||
	    strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") != nl) {
		fprintf(stderr, "grace node enroll: a node's name is lower-case letters, digits and "
				"'_', not '%s'\n", name);
		return CLI_USAGE;
	}
	grace_config cfg;
	int rc = cli_config_load(a, &cfg);
	if (rc)
		return rc;
	if (!grace_config_node(&cfg, name)) {
		fprintf(stderr, "grace node enroll: %s has no [node.%s] section\n",
			cfg.path[0] ? cfg.path : "the configuration", name);
		return CLI_USAGE;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "grace node enroll: %s: %s\n", dir, strerror(errno));
		return CLI_FAILED;
	}
	struct cli_api api;
	if ((rc = cli_api_init(&api, a, TIMEOUT_MS)))
		return rc;
	char body[128];
	snprintf(body, sizeof body, "{\"for\":\"node/%s\",\"ttl_s\":%u}", name,
		 cfg.trust.x509_ttl_max_s);
	json_t *ans;
	if ((rc = cli_api_call(&api, "POST", "/kernels/trust/x509-svid", body, 200, &ans)))
		return rc;
	json_t *svid = json_array_get(json_object_get(ans, "svids"), 0);
	if (!(rc = copy_token(&cfg, dir)) && !(rc = write_one(dir, "key.pem", svid, "x509_svid_key")) &&
	    !(rc = write_one(dir, "svid.pem", svid, "x509_svid")) &&
	    !(rc = write_one(dir, "bundle.pem", svid, "bundle"))) {
		if (a->json) {
			json_t *out = json_pack("{s:s, s:s, s:O}", "node", name, "dir", dir,
						"expires_at", json_object_get(svid, "expires_at"));
			cli_print_json(out);
			json_decref(out);
		} else
			printf("node %s: %s, valid until %lld ms; copy %s to its DATA_DIR/node\n",
			       name, cli_str(svid, "spiffe_id"),
			       (long long)json_integer_value(json_object_get(svid, "expires_at")), dir);
	}
	json_decref(ans);
	return rc;
}
