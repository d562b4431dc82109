#include "cli/api.h"
#include "cli/cli.h"

#include "cli/secret.h"
#include "kernels/registry.h"
#include "sdk/call.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define AUTH_HEADER_MAX 128
#define CONNECT_TIMEOUT_MS 5000

int cli_config_load(const struct cli_args *a, grace_config *cfg)
{
	grace_config_overrides ov = { a->config, a->data_dir, a->port_offset };
	sdk_err err;
	if (grace_config_read(cfg, kernel_registry_all(), kernel_registry_count(), &ov, &err) < 0) {
		fprintf(stderr, "grace: %s\n", err.msg);
		return CLI_USAGE;
	}
	return 0;
}

int cli_api_init(struct cli_api *api, const struct cli_args *a, unsigned default_timeout_ms)
{
	memset(api, 0, sizeof *api);
	api->timeout_ms = a->timeout_ms ? a->timeout_ms : default_timeout_ms;
	if (a->port) {
		api->port = a->port;
	} else {
		static grace_config cfg; /* large */
		int rc = cli_config_load(a, &cfg);
		if (rc)
			return rc;
		api->port = cfg.api_port + cfg.port_offset;
		if (api->port <= 0 || api->port > 65535) {
			fprintf(stderr, "grace: the API's port %d is not a TCP port\n", api->port);
			return CLI_USAGE;
		}
	}
	cli_token_read(api->token, sizeof api->token);
	return 0;
}

/* Whether anything listens: a refused connection and a silent host are
 * different failures, and the HTTP client retries refusals until its
 * deadline, which would make both look like a timeout. */
static int probe(int port, unsigned timeout_ms)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, "grace: cannot make a socket: %s\n", strerror(errno));
		return CLI_FAILED;
	}
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int rc = connect(fd, (struct sockaddr *)&sin, sizeof sin);
	int err = rc == 0 ? 0 : errno;
	if (err == EINPROGRESS) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		int n = poll(&p, 1, (int)(timeout_ms < CONNECT_TIMEOUT_MS ? timeout_ms
									 : CONNECT_TIMEOUT_MS));
		socklen_t sl = sizeof err;
		if (n == 0)
			err = ETIMEDOUT;
		else if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) < 0)
			err = errno;
	}
	close(fd);
	if (err == 0)
		return 0;
	if (err == ETIMEDOUT) {
		fprintf(stderr, "grace: cannot reach the API on 127.0.0.1:%d: the connection timed out\n",
			port);
		return CLI_TIMEOUT;
	}
	fprintf(stderr,
		"grace: cannot reach the API on 127.0.0.1:%d: %s (is Grace running? start it with "
		"`systemctl start grace` or `grace serve`)\n",
		port, err == ECONNREFUSED ? "connection refused" : strerror(err));
	return CLI_REFUSED;
}

struct answer {
	long status;
	char *body;
	size_t len;
	char error[128];
};

static void on_answer(int status, const char *body, size_t len, double ms, const char *error,
		      void *arg)
{
	(void)ms;
	struct answer *a = arg;
	a->status = status;
	if (body && (a->body = malloc(len + 1))) {
		memcpy(a->body, body, len);
		a->body[len] = '\0';
		a->len = len;
	}
	if (error)
		snprintf(a->error, sizeof a->error, "%s", error);
}

/* One exchange on libevent's loop, not libcurl: every kernel is this same
 * binary, and libcurl's dependencies would cost each of them megabytes. */
static void exchange(int port, const char *method, const char *path, const char *payload,
		     const char *token, unsigned timeout_ms, struct answer *a)
{
	struct event_base *base = event_base_new();
	sdk_caller *client = base ? sdk_caller_new(base, "cli", NULL, NULL, NULL) : NULL;
	char auth[AUTH_HEADER_MAX];
	const char *headers[] = { "Authorization", auth, NULL };
	snprintf(auth, sizeof auth, "Bearer %s", token ? token : "");
	if (client && sdk_call_port(client, port, method, path, payload,
				    payload ? strlen(payload) : 0, token && *token ? headers : NULL,
				    timeout_ms, on_answer, a) == 0)
		event_base_dispatch(base);
	else
		snprintf(a->error, sizeof a->error, "cannot start a request");
	sdk_caller_free(client);
	if (base)
		event_base_free(base);
}

static int report(const struct cli_api *api, const char *method, const char *path, long st,
		  json_t *ans, const char *error)
{
	if (st == 0) {
		if (strstr(error, "in time")) {
			fprintf(stderr,
				"grace: the API on 127.0.0.1:%d did not answer %s %s within %.1f s "
				"(try a longer --timeout)\n",
				api->port, method, path, api->timeout_ms / 1000.0);
			return CLI_TIMEOUT;
		}
		fprintf(stderr, "grace: cannot reach the API on 127.0.0.1:%d: %s\n", api->port,
			error[0] ? error : "no answer");
		return CLI_REFUSED;
	}
	json_t *e = json_object_get(ans, "error");
	const char *code = cli_str(e, "code"), *msg = cli_str(e, "message");
	if (json_is_string(ans)) { /* Alertmanager's error: a bare string */
		code = "-";
		msg = json_string_value(ans);
	}
	if (st == 401) {
		fprintf(stderr,
			"grace: 401 %s: %s: not logged in, or the session expired; run `grace login "
			"USER` (or set GRACE_TOKEN)\n",
			code, msg);
		return CLI_UNAUTHORIZED;
	}
	if (st == 403) {
		fprintf(stderr, "grace: 403 %s: %s (log in as an admin: `grace login USER`)\n", code,
			msg);
		return CLI_FORBIDDEN;
	}
	fprintf(stderr, "grace: %ld %s: %s\n", st, code, msg);
	if (st == 404 && !strcmp(code, "unknown_kernel"))
		fprintf(stderr, "grace: `grace kernels` lists the kernels this Grace runs\n");
	return st == 404 || st == 400 ? CLI_USAGE : CLI_API_ERROR;
}

int cli_api_request(const struct cli_api *api, const char *method, const char *path,
		    const char *payload, long *status, json_t **ans)
{
	*ans = NULL;
	*status = 0;
	int rc = probe(api->port, api->timeout_ms);
	if (rc)
		return rc;
	struct answer a = { 0 };
	exchange(api->port, method, path, payload, api->token, api->timeout_ms, &a);
	/* Any JSON value: Alertmanager's API (the alerts kernel's) answers its
	 * errors as a bare string. */
	json_t *j = a.body ? json_loadb(a.body, a.len, JSON_DECODE_ANY, NULL) : NULL;
	free(a.body);
	if (a.status == 0) {
		json_decref(j);
		return report(api, method, path, 0, NULL, a.error);
	}
	*status = a.status;
	*ans = j;
	return 0;
}

int cli_api_report(const struct cli_api *api, const char *method, const char *path, long status,
		   json_t *ans)
{
	return report(api, method, path, status, ans, "");
}

int cli_api_call(const struct cli_api *api, const char *method, const char *path,
		 const char *payload, long want, json_t **ans)
{
	long st;
	int rc = cli_api_request(api, method, path, payload, &st, ans);
	if (rc || st == want)
		return rc;
	rc = report(api, method, path, st, *ans, "");
	json_decref(*ans);
	*ans = NULL;
	return rc;
}

char *cli_http_get_text(int port, const char *path, unsigned timeout_ms)
{
	struct answer a = { 0 };
	exchange(port, "GET", path, NULL, NULL, timeout_ms, &a);
	if (a.status != 200) {
		free(a.body);
		return NULL;
	}
	return a.body;
}

const char *cli_str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "-";
}

void cli_print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
	if (s)
		puts(s);
	free(s);
	fflush(stdout);
}

void cli_fmt_uptime(json_t *v, char *buf, size_t len)
{
	if (!json_is_number(v)) {
		snprintf(buf, len, "-");
		return;
	}
	double s = json_number_value(v);
	if (s < 120)
		snprintf(buf, len, "%.1fs", s);
	else if (s < 7200)
		snprintf(buf, len, "%.0fm", s / 60);
	else
		snprintf(buf, len, "%.1fh", s / 3600);
}

void cli_fmt_int(json_t *v, char *buf, size_t len)
{
	if (json_is_integer(v))
		snprintf(buf, len, "%lld", (long long)json_integer_value(v));
	else
		snprintf(buf, len, "-");
}
