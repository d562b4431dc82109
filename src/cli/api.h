/* The CLI's calls to the running API: where it listens (the same
 * configuration grace serve reads, or --port), the session token, and one
 * mapping of every failure to its exit status and a message that names
 * what to do (table.h's enum cli_exit). */
#ifndef GRACE_CLI_API_H
#define GRACE_CLI_API_H

#include "serve/layer.h"

#include "cli/table.h"

#include <jansson.h>

struct cli_api {
	int port;
	unsigned timeout_ms;
	char token[96];
};

/* Fills `api` from the parsed options (the configuration when --port is
 * not given); `default_timeout_ms` when there is no --timeout. 0, or the
 * exit status of the error it printed. */
int cli_api_init(struct cli_api *api, const struct cli_args *a, unsigned default_timeout_ms);

/* One request, waited for. On the status `want`: 0, with the answer in
 * *ans (a new reference, or NULL when the body is not JSON). Otherwise the
 * exit status, after printing why on stderr (and *ans is NULL). */
int cli_api_call(const struct cli_api *api, const char *method, const char *path,
		 const char *payload, long want, json_t **ans);

/* The same, taking any HTTP answer: 0 with its status in *status and its
 * JSON in *ans (may be NULL), or the exit status when there was none. */
int cli_api_request(const struct cli_api *api, const char *method, const char *path,
		    const char *payload, long *status, json_t **ans);
/* Prints why the answer `status` is a failure; returns its exit status. */
int cli_api_report(const struct cli_api *api, const char *method, const char *path, long status,
		   json_t *ans);

/* A GET of plain text from a loopback port (a kernel's /metrics): the
 * body in a malloc'd string, or NULL. Prints nothing. */
char *cli_http_get_text(int port, const char *path, unsigned timeout_ms);

/* Helpers for printing answers. */
const char *cli_str(json_t *o, const char *key); /* "-" when absent */
void cli_print_json(json_t *j);
void cli_fmt_uptime(json_t *v, char *buf, size_t len);
void cli_fmt_int(json_t *v, char *buf, size_t len);

#endif
