/* `grace approvals [--all]`: the change requests (the open ones unless
 * --all), each with what it still waits for. `grace approve ID` and
 * `grace deny ID` [--comment TEXT]: a vote as the logged-in user. All
 * through the API on :8000 (/governance; docs/governance.md). */
#include "cli/api.h"
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TIMEOUT_MS 10000

/* One line per request, then what it waits for, indented. */
static void print_request(json_t *r)
{
	char *params = json_dumps(json_object_get(r, "params"), JSON_COMPACT);
	printf("#%lld  %-16s %-14s by %s  %s\n",
	       (long long)json_integer_value(json_object_get(r, "id")), cli_str(r, "action"),
	       cli_str(r, "state"), cli_str(r, "requester"), params ? params : "");
	free(params);
	size_t i;
	json_t *w;
	json_array_foreach(json_object_get(r, "waiting_on"), i, w)
		printf("      waiting on: %s\n", json_string_value(w));
	json_t *res = json_object_get(r, "result");
	if (json_is_object(res))
		printf("      result: %s\n", json_is_true(json_object_get(res, "ok")) ? "ok" : "failed");
}

static int list(const struct cli_api *api, const struct cli_args *a)
{
	json_t *ans;
	int rc = cli_api_call(api, "GET",
			      a->all ? "/governance/requests?limit=500"
				     : "/governance/requests?state=open&limit=500",
			      NULL, 200, &ans);
	if (rc)
		return rc;
	if (a->json) {
		cli_print_json(ans);
	} else {
		json_t *reqs = json_object_get(ans, "requests");
		if (json_array_size(reqs) == 0)
			printf("no %schange requests\n", a->all ? "" : "open ");
		size_t i;
		json_t *r;
		json_array_foreach(reqs, i, r)
			print_request(r);
	}
	json_decref(ans);
	return CLI_OK;
}

static int vote(const struct cli_api *api, const struct cli_args *a, const char *verb)
{
	const char *s = a->args[0];
	char *end;
	long long id = strtoll(s, &end, 10);
	if (!*s || *end || id <= 0) {
		fprintf(stderr, "grace %s: a request id is a positive integer, not '%s'\n", verb, s);
		return CLI_USAGE;
	}
	char path[96];
	snprintf(path, sizeof path, "/governance/requests/%lld/%s", id, verb);
	json_t *b = a->comment ? json_pack("{s:s}", "comment", a->comment) : json_object();
	char *payload = b ? json_dumps(b, JSON_COMPACT) : NULL;
	json_decref(b);
	json_t *ans;
	long st;
	int rc = cli_api_request(api, "POST", path, payload ? payload : "{}", &st, &ans);
	free(payload);
	if (rc)
		return rc;
	if (st == 403) { /* the rule's say, not a missing admin role: its reason as it is */
		fprintf(stderr, "grace: 403 forbidden: %s\n",
			cli_str(json_object_get(ans, "error"), "message"));
		json_decref(ans);
		return CLI_FORBIDDEN;
	}
	if (st != 200) {
		rc = cli_api_report(api, "POST", path, st, ans);
		json_decref(ans);
		return rc;
	}
	if (a->json)
		cli_print_json(ans);
	else
		print_request(ans);
	json_decref(ans);
	return CLI_OK;
}

int cli_approvals(const struct cli_args *a)
{
	struct cli_api api;
	int rc = cli_api_init(&api, a, TIMEOUT_MS);
	if (rc)
		return rc;
	switch (a->cmd->id) {
	case CMD_APPROVE: return vote(&api, a, "approve");
	case CMD_DENY: return vote(&api, a, "deny");
	default: return list(&api, a);
	}
}
