/* `grace approvals [--all]`: the change requests (open ones by default),
 * each with what it still waits for. `grace approve ID` and `grace deny ID`
 * [--comment TEXT]: a vote as the logged-in user. All through the API on
 * :8000 (/governance), with the session of `grace login` or $GRACE_TOKEN. */
#include "cli/approvals.h"

#include "cli/oneshot.h"
#include "cli/secret.h"
#include "kernels/registry.h"
#include "sdk/config.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ANSWER_MAX (4u << 20)
#define CALL_TIMEOUT_S 30

bool cli_approvals_is_command(const char *cmd)
{
	return !strcmp(cmd, "approvals") || !strcmp(cmd, "approve") || !strcmp(cmd, "deny");
}

static void usage(FILE *f)
{
	fprintf(f, "usage: grace approvals [--all] [--json] [--port N] [--config F]\n"
		   "       grace approve ID [--comment TEXT] [--json] [--port N] [--config F]\n"
		   "       grace deny ID [--comment TEXT] [--json] [--port N] [--config F]\n"
		   "  change requests before gated actions (docs/governance.md)\n");
}

/* One request to the API; the answer's JSON in *out (new), its status
 * returned, or -1 (printed) when nothing answered. */
static int call(int port, const char *token, const char *method, const char *path,
		const char *body, json_t **out)
{
	char headers[256];
	snprintf(headers, sizeof headers,
		 "Content-Type: application/json\r\nAuthorization: Bearer %.120s\r\n", token);
	oneshot_buf ob = { malloc(ANSWER_MAX), 0, ANSWER_MAX };
	oneshot_answer a;
	*out = NULL;
	if (!ob.b) {
		fprintf(stderr, "grace: out of memory\n");
		return -1;
	}
	int rc = oneshot_request(port, method, path, headers, body, body ? strlen(body) : 0,
				 CALL_TIMEOUT_S, oneshot_to_buf, &ob, &a);
	if (rc < 0 && a.status == 0) {
		fprintf(stderr, "grace: cannot reach the API on 127.0.0.1:%d: %s\n", port, a.error);
		free(ob.b);
		return -1;
	}
	*out = json_loadb(ob.b, ob.len, 0, NULL);
	free(ob.b);
	return a.status;
}

/* Prints the API's JSON error; the exit status for it. */
static int report(int status, json_t *j)
{
	json_t *e = json_object_get(j, "error");
	const char *code = json_string_value(json_object_get(e, "code"));
	const char *msg = json_string_value(json_object_get(e, "message"));
	fprintf(stderr, "grace: %d %s: %s\n", status, code ? code : "error",
		msg ? msg : "the API answered without an error message");
	if (status == 401)
		fprintf(stderr, "grace: log in first: grace login NAME\n");
	return status == 400 ? CLI_APPROVALS_USAGE : CLI_APPROVALS_REFUSED;
}

static void print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);
	if (s)
		puts(s);
	free(s);
}

/* One line per request, then what it waits for, indented. */
static void print_request(const json_t *r)
{
	char *params = json_dumps(json_object_get(r, "params"), JSON_COMPACT);
	printf("#%lld  %-16s %-14s by %s  %s\n",
	       (long long)json_integer_value(json_object_get(r, "id")),
	       json_string_value(json_object_get(r, "action")),
	       json_string_value(json_object_get(r, "state")),
	       json_string_value(json_object_get(r, "requester")), params ? params : "");
	free(params);
	size_t i;
	json_t *w;
	json_array_foreach(json_object_get(r, "waiting_on"), i, w)
		printf("      waiting on: %s\n", json_string_value(w));
	json_t *res = json_object_get(r, "result");
	if (json_is_object(res))
		printf("      result: %s\n", json_is_true(json_object_get(res, "ok")) ? "ok" : "failed");
}

int cli_approvals_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "all", no_argument, NULL, 'a' },
		{ "comment", required_argument, NULL, 'm' },
		{ "json", no_argument, NULL, 'j' },
		{ "port", required_argument, NULL, 'u' },
		{ "config", required_argument, NULL, 'c' },
		{ "port-offset", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ 0, 0, 0, 0 },
	};
	const char *cmd = argv[1], *comment = NULL, *port_arg = NULL;
	bool all = false, as_json = false;
	grace_config_overrides ov = { 0 };
	int o;
	optind = 2;
	while ((o = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (o) {
		case 'a': all = true; break;
		case 'm': comment = optarg; break;
		case 'j': as_json = true; break;
		case 'u': port_arg = optarg; break;
		case 'c': ov.config_path = optarg; break;
		case 'p': ov.port_offset = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return CLI_APPROVALS_USAGE;
		}
	}
	bool list = !strcmp(cmd, "approvals");
	long long id = 0;
	if (list ? optind != argc || comment : optind != argc - 1 || all) {
		usage(stderr);
		return CLI_APPROVALS_USAGE;
	}
	if (!list) {
		char *end;
		id = strtoll(argv[optind], &end, 10);
		if (!*argv[optind] || *end || id <= 0) {
			fprintf(stderr, "grace: a request id is a positive integer\n");
			return CLI_APPROVALS_USAGE;
		}
	}
	int port;
	if (port_arg) {
		port = atoi(port_arg);
	} else {
		static grace_config cfg;
		char err[512];
		if (grace_config_load(&cfg, kernel_registry_all(), kernel_registry_count(), &ov, err,
				      sizeof err) < 0) {
			fprintf(stderr, "grace: %s\n", err);
			return CLI_APPROVALS_USAGE;
		}
		port = cfg.api_port + cfg.port_offset;
	}
	if (port <= 0 || port > 65535) {
		fprintf(stderr, "grace: --port must be a TCP port\n");
		return CLI_APPROVALS_USAGE;
	}
	char token[96];
	cli_token_read(token, sizeof token);
	if (!token[0]) {
		fprintf(stderr, "grace: log in first: grace login NAME\n");
		return CLI_APPROVALS_USAGE;
	}
	char path[128];
	char *body = NULL;
	if (list) {
		snprintf(path, sizeof path, "/governance/requests%s", all ? "?limit=500" : "?state=open&limit=500");
	} else {
		snprintf(path, sizeof path, "/governance/requests/%lld/%s", id,
			 !strcmp(cmd, "approve") ? "approve" : "deny");
		json_t *b = comment ? json_pack("{s:s}", "comment", comment) : json_object();
		body = b ? json_dumps(b, JSON_COMPACT) : NULL;
		json_decref(b);
	}
	json_t *j;
	int status = call(port, token, list ? "GET" : "POST", path, body ? body : NULL, &j);
	free(body);
	if (status < 0)
		return CLI_APPROVALS_UNREACHABLE;
	if (status != 200) {
		int rc = report(status, j);
		json_decref(j);
		return rc;
	}
	if (as_json) {
		print_json(j);
	} else if (list) {
		json_t *reqs = json_object_get(j, "requests");
		if (json_array_size(reqs) == 0)
			printf("no %schange requests\n", all ? "" : "open ");
		size_t i;
		json_t *r;
		json_array_foreach(reqs, i, r)
			print_request(r);
	} else {
		print_request(j);
	}
	json_decref(j);
	return 0;
}
