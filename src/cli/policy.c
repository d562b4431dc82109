/* `grace policy ...`: the operator's side of the policy (docs/policy.md).
 *
 *   grace policy reset    restores the built-in default policy set in the
 *                         data directory, offline: the way back in when a
 *                         policy locks every admin out. Recorded as an
 *                         audit event (policy.set.put by "grace policy
 *                         reset") that the policy kernel delivers at the
 *                         next start.
 *   grace policy default  prints the built-in default set
 *                         (etc/policy/default.cedar).
 *   grace policy routes   every route on :8000 with its access level in
 *                         the role table, its actions and its resource
 *                         type (--json for scripts and tests). */
#include "cli/cli.h"

#include "kernels/policy/policy.h"
#include "kernels/registry.h"
#include "sdk/clock.h"
#include "sdk/db.h"
#include "serve/api/api.h"
#include "serve/api/decide.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define RESET_ACTOR "grace policy reset"

static const char *access_name(unsigned access)
{
	switch (access) {
	case ACCESS_PUBLIC: return "public";
	case ACCESS_ANON: return "anyone";
	case ACCESS_USER: return "user";
	default: return "admin";
	}
}

static int cmd_routes(bool as_json)
{
	static const char *const any[] = { "GET", "POST", "PUT", "PATCH", "DELETE" };
	json_t *out = json_array();
	for (size_t f = 0; f < api_family_count(); f++) {
		const api_family *fam = api_family_at(f);
		for (size_t i = 0; i < fam->n_routes; i++) {
			const sdk_route *r = &fam->routes[i];
			json_t *actions = json_object();
			size_t n = r->pattern.method ? 1 : sizeof any / sizeof *any;
			for (size_t m = 0; m < n; m++) {
				const char *method = r->pattern.method ? r->pattern.method : any[m];
				char action[API_ACTION_MAX];
				api_route_action(r, method, action, sizeof action);
				json_object_set_new(actions, method, json_string(action));
			}
			json_array_append_new(
				out, json_pack("{s:s, s:o, s:s, s:s, s:b, s:o, s:s}", "family", fam->name,
					       "method", r->pattern.method ? json_string(r->pattern.method)
									   : json_null(),
					       "path", r->pattern.path, "access", access_name(r->access),
					       "decided", !api_route_public(r), "actions", actions,
					       "resource", api_route_resource(r)));
		}
	}
	if (as_json) {
		char *text = json_dumps(out, JSON_INDENT(1));
		printf("%s\n", text ? text : "[]");
		free(text);
	} else {
		printf("%-7s %-38s %-7s %-24s %s\n", "METHOD", "PATH", "ACCESS", "ACTION", "RESOURCE");
		size_t i;
		json_t *r;
		json_array_foreach (out, i, r) {
			const char *key;
			json_t *a;
			json_object_foreach (json_object_get(r, "actions"), key, a) {
				printf("%-7s %-38s %-7s %-24s %s\n", key,
				       json_string_value(json_object_get(r, "path")),
				       json_string_value(json_object_get(r, "access")),
				       json_is_true(json_object_get(r, "decided")) ? json_string_value(a)
										   : "(public)",
				       json_string_value(json_object_get(r, "resource")));
			}
		}
	}
	json_decref(out);
	return 0;
}

/* Whether something listens on 127.0.0.1:port (the policy kernel, run by
 * grace serve or alone, holds policy.db and would not see the change). */
static bool listening(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bool yes = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
	close(fd);
	return yes;
}

static int cmd_reset(const grace_config *cfg)
{
	const grace_kernel_cfg *k = grace_config_kernel(cfg, "policy");
	if (k && listening(grace_kernel_port(cfg, k))) {
		fprintf(stderr,
			"grace: the policy kernel is running (127.0.0.1:%d): stop grace serve first; "
			"`grace policy reset` works on the data directory, offline\n",
			grace_kernel_port(cfg, k));
		return CLI_FAILED;
	}
	if (mkdir(cfg->data_dir, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "grace: cannot create %s: %s\n", cfg->data_dir, strerror(errno));
		return CLI_FAILED;
	}
	sqlite3 *db = NULL;
	pol_store *store = NULL;
	sdk_err e = { "" };
	int rc = CLI_FAILED;
	const pol_set *set;
	bool created;
	cedar_parse_error perr;
	if (sdk_db_open(cfg->data_dir, "policy", &db, &e) < 0) {
		fprintf(stderr, "grace: %s\n", e.msg);
	} else if (pol_store_open(db, &store, &e) < 0) {
		fprintf(stderr, "grace: %s/policy.db: %s\n", cfg->data_dir, e.msg);
	} else {
		pol_store_actor(store, RESET_ACTOR);
		if (pol_store_put_builtin(store, POL_DEFAULT_SET, pol_default_text,
					  pol_default_text_len, -1, sdk_wall_ms(), &set, &created, &perr,
					  &e) < 0) {
			fprintf(stderr, "grace: cannot restore the default policy set: %s\n", e.msg);
		} else {
			printf("policy set \"%s\" restored to the built-in default: version %lld, %u "
			       "policies, in %s/policy.db; the audit trail records it at the next start\n",
			       POL_DEFAULT_SET, (long long)set->version, set->ps ? set->ps->n : 0,
			       cfg->data_dir);
			rc = 0;
		}
	}
	pol_store_close(store);
	sqlite3_close(db);
	return rc;
}

int cli_policy(const struct cli_args *a)
{
	const char *sub = a->args[0]; /* one of the table's words */
	if (!strcmp(sub, "routes"))
		return cmd_routes(a->json);
	if (!strcmp(sub, "default")) {
		fwrite(pol_default_text, 1, pol_default_text_len, stdout);
		return 0;
	}
	static grace_config cfg; /* large */
	int rc = cli_config_load(a, &cfg);
	return rc ? rc : cmd_reset(&cfg);
}
