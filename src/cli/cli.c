#include "cli/cli.h"
#include "sdk/clock.h"

#include "serve/auth/users.h"
#include "cli/secret.h"
#include "kernels/registry.h"
#include "sdk/call.h"
#include "sdk/db.h"

#include <event2/event.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define CLI_TIMEOUT_S 60 /* a heal waits for stop, start and verify */
#define EXIT_UNHEALTHY 1
#define EXIT_USAGE 2
#define EXIT_UNREACHABLE 3

#define AUTH_HEADER_MAX 128

struct cli {
	int port;
	char token[96];
	bool json;
	const char *action;
	bool force;
	const char *name;
	unsigned limit;
	/* silence add */
	const char *duration, *comment, *author;
	char **args; /* the positional arguments after the subcommand */
	int n_args;
};

struct answer {
	long status;
	json_t *json;
	char error[128];
};

static void on_answer(int status, const char *body, size_t len, double ms, const char *error,
		      void *arg)
{
	(void)ms;
	struct answer *a = arg;
	a->status = status;
	if (body)
		a->json = json_loadb(body, len, JSON_DECODE_ANY, NULL); /* a string: Alertmanager's errors */
	if (error)
		snprintf(a->error, sizeof a->error, "%s", error);
}

/* One request to the API, waited for. Returns the HTTP status (0 when
 * unreachable) and the parsed answer in *out (a new reference, NULL when
 * not JSON). libevent's client, not libcurl: every kernel is this same
 * binary, and libcurl's dependencies would cost each of them megabytes. */
static long api_call(const struct cli *c, const char *method, const char *path,
		     const char *payload, json_t **out)
{
	*out = NULL;
	struct answer a = { 0 };
	struct event_base *base = event_base_new();
	sdk_caller *client = base ? sdk_caller_new(base, "cli", NULL, NULL, NULL) : NULL;
	char auth[AUTH_HEADER_MAX];
	const char *headers[] = { "Authorization", auth, NULL };
	snprintf(auth, sizeof auth, "Bearer %s", c->token);
	if (client &&
	    sdk_call_port(client, c->port, method, path, payload, payload ? strlen(payload) : 0,
			  c->token[0] ? headers : NULL, CLI_TIMEOUT_S * 1000, on_answer, &a) == 0)
		event_base_dispatch(base);
	else
		snprintf(a.error, sizeof a.error, "cannot start a request");
	sdk_caller_free(client);
	if (base)
		event_base_free(base);
	if (a.status == 0)
		fprintf(stderr, "grace: cannot reach the API on 127.0.0.1:%d: %s\n", c->port, a.error);
	*out = a.json;
	return a.status;
}

static const char *str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "-";
}

static void print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
	if (s)
		puts(s);
	free(s);
}

/* Prints an API error; returns the exit status for it. */
static int report_error(long status, json_t *ans)
{
	if (status == 0)
		return EXIT_UNREACHABLE;
	json_t *e = json_object_get(ans, "error");
	if (json_is_string(ans)) /* Alertmanager's API answers its errors so */
		fprintf(stderr, "grace: %ld: %s\n", status, json_string_value(ans));
	else
		fprintf(stderr, "grace: %ld %s: %s\n", status, str(e, "code"), str(e, "message"));
	return status == 404 || status == 400 ? EXIT_USAGE : EXIT_UNHEALTHY;
}

/* api_call expecting status `want`: 0 with *ans set, or the exit status
 * for the error it has printed (and *ans is NULL). */
static int call_expect(const struct cli *c, const char *method, const char *path,
		       const char *payload, long want, json_t **ans)
{
	long st = api_call(c, method, path, payload, ans);
	if (st == want)
		return 0;
	int rc = report_error(st, *ans);
	json_decref(*ans);
	*ans = NULL;
	return rc;
}

static void fmt_uptime(json_t *v, char *buf, size_t len)
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

static void fmt_int(json_t *v, char *buf, size_t len)
{
	if (json_is_integer(v))
		snprintf(buf, len, "%lld", (long long)json_integer_value(v));
	else
		snprintf(buf, len, "-");
}

static int cmd_status(const struct cli *c)
{
	json_t *ans;
	int err = call_expect(c, "GET", "/health", NULL, 200, &ans);
	if (err)
		return err;
	const char *overall = str(ans, "status");
	if (c->json) {
		print_json(ans);
	} else {
		printf("grace %s: %s, %lld of %lld kernels ready\n\n", str(ans, "version"), overall,
		       (long long)json_integer_value(json_object_get(ans, "kernels_ready")),
		       (long long)json_integer_value(json_object_get(ans, "kernels_total")));
		printf("%-14s %-16s %6s %8s %8s %8s  %s\n", "KERNEL", "STATE", "PORT", "PID", "UPTIME",
		       "RESTARTS", "LAST EXIT");
		const char *name;
		json_t *k;
		json_object_foreach(json_object_get(ans, "kernels"), name, k) {
			char pid[16], up[16], port[16], restarts[16];
			fmt_int(json_object_get(k, "pid"), pid, sizeof pid);
			fmt_int(json_object_get(k, "port"), port, sizeof port);
			fmt_int(json_object_get(k, "restarts"), restarts, sizeof restarts);
			fmt_uptime(json_object_get(k, "uptime_s"), up, sizeof up);
			const char *last = str(k, "last_exit");
			printf("%-14s %-16s %6s %8s %8s %8s  %.60s\n", name, str(k, "state"), port, pid,
			       up, restarts, *last ? last : "-");
		}
	}
	int rc = strcmp(overall, "ok") ? EXIT_UNHEALTHY : 0;
	json_decref(ans);
	return rc;
}

static int cmd_kernels(const struct cli *c)
{
	json_t *ans;
	int err = call_expect(c, "GET", "/kernel-ports", NULL, 200, &ans);
	if (err)
		return err;
	if (c->json) {
		print_json(ans);
	} else {
		printf("%-14s %6s %6s %-11s %-16s %8s  %s\n", "KERNEL", "PORT", "CONFIG", "TIER", "STATE",
		       "PID", "IMPLEMENTED");
		size_t i;
		json_t *k;
		json_array_foreach(json_object_get(ans, "kernels"), i, k) {
			char pid[16], port[16], cport[16];
			fmt_int(json_object_get(k, "pid"), pid, sizeof pid);
			fmt_int(json_object_get(k, "port"), port, sizeof port);
			fmt_int(json_object_get(k, "configured_port"), cport, sizeof cport);
			printf("%-14s %6s %6s %-11s %-16s %8s  %s\n", str(k, "name"), port, cport,
			       str(k, "tier"), str(k, "state"), pid,
			       json_is_true(json_object_get(k, "complete")) ? "complete" : "placeholder");
		}
	}
	json_decref(ans);
	return 0;
}

static int cmd_health_check(const struct cli *c)
{
	json_t *ans;
	int err = call_expect(c, "GET", "/kernel-ports/health-check", NULL, 200, &ans);
	if (err)
		return err;
	if (c->json) {
		print_json(ans);
	} else {
		printf("%-14s %-4s %6s %10s  %s\n", "KERNEL", "OK", "STATUS", "LATENCY", "ERROR");
		const char *name;
		json_t *k;
		json_object_foreach(json_object_get(ans, "kernels"), name, k) {
			json_t *lat = json_object_get(k, "latency_ms");
			char latency[24] = "-";
			if (json_is_number(lat))
				snprintf(latency, sizeof latency, "%.2fms", json_number_value(lat));
			printf("%-14s %-4s %6lld %10s  %s\n", name,
			       json_is_true(json_object_get(k, "ok")) ? "yes" : "NO",
			       (long long)json_integer_value(json_object_get(k, "status")), latency,
			       json_is_string(json_object_get(k, "error")) ? str(k, "error") : "");
		}
		printf("\n%lld of %lld healthy\n",
		       (long long)json_integer_value(json_object_get(ans, "healthy")),
		       (long long)json_integer_value(json_object_get(ans, "total")));
	}
	int rc = strcmp(str(ans, "status"), "ok") ? EXIT_UNHEALTHY : 0;
	json_decref(ans);
	return rc;
}

static void print_incident(json_t *inc)
{
	printf("incident %lld: %s on %s (%s), playbook %s, issue %s, %.0f ms\n",
	       (long long)json_integer_value(json_object_get(inc, "id")), str(inc, "outcome"),
	       str(inc, "component"), str(inc, "trigger"), str(inc, "playbook"),
	       str(inc, "issue_type"), json_number_value(json_object_get(inc, "duration_ms")));
	size_t i;
	json_t *s;
	json_array_foreach(json_object_get(inc, "steps"), i, s)
		printf("  %-16s %-8s %8.1f ms  %s\n", str(s, "step"), str(s, "result"),
		       json_number_value(json_object_get(s, "duration_ms")), str(s, "detail"));
}

static void print_diagnosis(json_t *d)
{
	json_t *p = json_object_get(d, "process"), *h = json_object_get(d, "health"),
	       *holder = json_object_get(d, "port_holder");
	char pid[16], rss[32] = "-", fds[32] = "-";
	fmt_int(json_object_get(p, "pid"), pid, sizeof pid);
	if (json_is_integer(json_object_get(p, "rss_bytes")))
		snprintf(rss, sizeof rss, "%.1f MiB",
			 (double)json_integer_value(json_object_get(p, "rss_bytes")) / 1048576.0);
	if (json_is_integer(json_object_get(p, "open_fds")))
		snprintf(fds, sizeof fds, "%lld of %lld",
			 (long long)json_integer_value(json_object_get(p, "open_fds")),
			 (long long)json_integer_value(json_object_get(p, "max_fds")));
	printf("%s: %s\n", str(d, "component"), str(d, "issue_type"));
	printf("  supervisor   %s\n", str(d, "supervisor_state"));
	printf("  process      pid %s, %s, rss %s, fds %s\n", pid, str(p, "state"), rss, fds);
	printf("  port         %lld, %s, held by %s%s%s\n",
	       (long long)json_integer_value(json_object_get(d, "port")),
	       json_is_true(json_object_get(d, "listening")) ? "listening" : "not listening",
	       json_is_object(holder) ? str(holder, "kind") : "nobody",
	       json_is_object(holder) && *str(holder, "cmdline") ? ": " : "",
	       json_is_object(holder) ? str(holder, "cmdline") : "");
	json_t *cm = json_object_get(d, "connect_ms"), *hl = json_object_get(h, "latency_ms");
	printf("  connect      %s%.2f ms\n", json_is_number(cm) ? "" : "(failed) ",
	       json_is_number(cm) ? json_number_value(cm) : 0.0);
	printf("  /health      %lld in %.2f ms%s%s\n",
	       (long long)json_integer_value(json_object_get(h, "status")),
	       json_is_number(hl) ? json_number_value(hl) : 0.0,
	       json_is_string(json_object_get(h, "error")) ? ": " : "",
	       json_is_string(json_object_get(h, "error")) ? str(h, "error") : "");
}

static int cmd_heal(const struct cli *c, bool diagnose_only)
{
	json_t *req = json_pack("{s:s}", "component_name", c->name);
	if (c->action)
		json_object_set_new(req, "action", json_string(c->action));
	if (c->force)
		json_object_set_new(req, "force", json_true());
	char *payload = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	json_t *ans;
	int err = call_expect(c, "POST",
			      diagnose_only ? "/network-healer/diagnose" : "/network-healer/heal",
			      payload, 200, &ans);
	free(payload);
	if (err)
		return err;
	const char *outcome = str(ans, "outcome");
	if (c->json)
		print_json(ans);
	else if (diagnose_only)
		print_diagnosis(json_object_get(ans, "diagnosis"));
	else
		print_incident(ans);
	int rc;
	if (diagnose_only)
		rc = strcmp(str(json_object_get(ans, "diagnosis"), "issue_type"), "healthy") ? 1 : 0;
	else
		rc = strcmp(outcome, "healed") && strcmp(outcome, "diagnosed") ? EXIT_UNHEALTHY : 0;
	json_decref(ans);
	return rc;
}

static int cmd_restart(const struct cli *c)
{
	char path[128];
	snprintf(path, sizeof path, "/kernel-ports/%s/restart", c->name);
	json_t *ans;
	int err = call_expect(c, "POST", path, NULL, 202, &ans);
	if (err)
		return err;
	if (c->json)
		print_json(ans);
	else
		printf("%s: %s (restart requested)\n", str(ans, "name"), str(ans, "state"));
	json_decref(ans);
	return 0;
}

static int cmd_incidents(const struct cli *c)
{
	char path[128];
	snprintf(path, sizeof path, "/network-healer/incidents?limit=%u", c->limit);
	json_t *ans;
	int err = call_expect(c, "GET", path, NULL, 200, &ans);
	if (err)
		return err;
	if (c->json) {
		print_json(ans);
	} else {
		printf("%6s %-14s %-10s %-18s %-11s %10s\n", "ID", "KERNEL", "TRIGGER", "PLAYBOOK",
		       "OUTCOME", "DURATION");
		size_t i;
		json_t *inc;
		json_array_foreach(json_object_get(ans, "incidents"), i, inc)
			printf("%6lld %-14s %-10s %-18s %-11s %8.0fms\n",
			       (long long)json_integer_value(json_object_get(inc, "id")),
			       str(inc, "component"), str(inc, "trigger"), str(inc, "playbook"),
			       str(inc, "outcome"), json_number_value(json_object_get(inc, "duration_ms")));
	}
	json_decref(ans);
	return 0;
}

/* ---- silences, through the Alertmanager API under /alertmanager */

static int cmd_silences(const struct cli *c)
{
	json_t *ans;
	int err = call_expect(c, "GET", "/alertmanager/api/v2/silences", NULL, 200, &ans);
	if (err)
		return err;
	if (c->json) {
		print_json(ans);
		json_decref(ans);
		return 0;
	}
	printf("%-36s %-8s %-24s %-24s %-12s %s\n", "ID", "STATE", "ENDS", "MATCHERS", "BY",
	       "COMMENT");
	size_t i;
	json_t *s;
	json_array_foreach(ans, i, s) {
		char ms[256] = "";
		size_t k;
		json_t *m;
		json_array_foreach(json_object_get(s, "matchers"), k, m) {
			bool eq = !json_is_false(json_object_get(m, "isEqual"));
			bool re = json_is_true(json_object_get(m, "isRegex"));
			snprintf(ms + strlen(ms), sizeof ms - strlen(ms), "%s%s%s%s\"%s\"", k ? "," : "",
				 str(m, "name"), eq ? "" : "!", re ? "=~" : "=", str(m, "value"));
		}
		printf("%-36s %-8s %-24s %-24s %-12s %s\n", str(s, "id"),
		       str(json_object_get(s, "status"), "state"), str(s, "endsAt"), ms,
		       str(s, "createdBy"), str(s, "comment"));
	}
	json_decref(ans);
	return 0;
}

/* name=value, name!=value, name=~re, name!~re (quotes around the value
 * optional): a matcher of the API, or NULL. */
static json_t *matcher_arg(const char *a)
{
	const char *op = strpbrk(a, "=!");
	if (!op || op == a)
		return NULL;
	bool eq = op[0] == '=', re;
	const char *v;
	if (op[0] == '!' && op[1] == '=') {
		re = false;
		v = op + 2;
	} else if (op[0] == '!' && op[1] == '~') {
		re = true;
		v = op + 2;
	} else if (op[0] == '=' && op[1] == '~') {
		re = true;
		v = op + 2;
	} else if (op[0] == '=') {
		re = false;
		v = op + 1;
	} else {
		return NULL;
	}
	char name[256], value[1024];
	size_t nl = (size_t)(op - a), vl = strlen(v);
	if (nl >= sizeof name || vl >= sizeof value)
		return NULL;
	memcpy(name, a, nl);
	name[nl] = '\0';
	if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"') {
		v++;
		vl -= 2;
	}
	memcpy(value, v, vl);
	value[vl] = '\0';
	return json_pack("{s:s, s:s, s:b, s:b}", "name", name, "value", value, "isRegex", re,
			 "isEqual", eq);
}

/* A duration: NUMBER then s, m, h or d. */
static long long duration_ms(const char *d)
{
	char *end;
	double v = strtod(d, &end);
	long long unit = !strcmp(end, "s") ? 1000 : !strcmp(end, "m") ? 60000
						 : !strcmp(end, "h") ? 3600000
						 : !strcmp(end, "d") ? 86400000 : 0;
	return v > 0 && unit ? (long long)(v * (double)unit) : -1;
}

static int cmd_silence(const struct cli *c)
{
	if (c->n_args >= 1 && !strcmp(c->args[0], "expire") && c->n_args == 2) {
		char path[160];
		if (strlen(c->args[1]) > 64 || strpbrk(c->args[1], "/?#%")) {
			fprintf(stderr, "grace: '%s' is not a silence id\n", c->args[1]);
			return EXIT_USAGE;
		}
		snprintf(path, sizeof path, "/alertmanager/api/v2/silence/%s", c->args[1]);
		json_t *ans;
		int err = call_expect(c, "DELETE", path, NULL, 200, &ans);
		if (err)
			return err;
		if (!c->json)
			printf("%s: expired\n", c->args[1]);
		else
			print_json(ans);
		json_decref(ans);
		return 0;
	}
	if (c->n_args < 2 || strcmp(c->args[0], "add") || !c->comment) {
		fprintf(stderr, "grace: usage: grace silence add MATCHER... --comment TEXT "
				"[--duration 2h] [--author NAME]\n"
				"       grace silence expire ID\n"
				"  a matcher: name=value, name!=value, name=~regex, name!~regex\n");
		return EXIT_USAGE;
	}
	long long ms = duration_ms(c->duration ? c->duration : "2h");
	if (ms <= 0) {
		fprintf(stderr, "grace: --duration: a number then s, m, h or d (e.g. 90m)\n");
		return EXIT_USAGE;
	}
	json_t *matchers = json_array();
	for (int i = 1; i < c->n_args; i++) {
		json_t *m = matcher_arg(c->args[i]);
		if (!m) {
			fprintf(stderr, "grace: '%s' is not a matcher (name=value, name!=value, "
					"name=~regex, name!~regex)\n", c->args[i]);
			json_decref(matchers);
			return EXIT_USAGE;
		}
		json_array_append_new(matchers, m);
	}
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	long long start = (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
	char st[40], en[40];
	time_t s1 = (time_t)(start / 1000), s2 = (time_t)((start + ms) / 1000);
	struct tm t1, t2;
	gmtime_r(&s1, &t1);
	gmtime_r(&s2, &t2);
	strftime(st, sizeof st, "%Y-%m-%dT%H:%M:%SZ", &t1);
	strftime(en, sizeof en, "%Y-%m-%dT%H:%M:%SZ", &t2);
	const char *who = c->author ? c->author : getenv("USER");
	json_t *body = json_pack("{s:o, s:s, s:s, s:s, s:s}", "matchers", matchers, "startsAt", st,
				 "endsAt", en, "createdBy", who && *who ? who : "grace-cli",
				 "comment", c->comment);
	char *text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	json_t *ans;
	int err = text ? call_expect(c, "POST", "/alertmanager/api/v2/silences", text, 200, &ans)
		       : EXIT_USAGE;
	free(text);
	if (err)
		return err;
	if (c->json)
		print_json(ans);
	else
		printf("%s\n", str(ans, "silenceID"));
	json_decref(ans);
	return 0;
}

static int cmd_login(struct cli *c)
{
	char pw[AUTH_PASSWORD_MAX + 2];
	if (cli_password_read("password: ", pw, sizeof pw) < 0) {
		fprintf(stderr, "grace: no password given\n");
		return EXIT_USAGE;
	}
	json_t *req = json_pack("{s:s, s:s}", "username", c->name, "password", pw);
	sodium_memzero(pw, sizeof pw);
	char *payload = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	json_t *ans;
	int err = call_expect(c, "POST", "/auth/login", payload, 200, &ans);
	if (payload) {
		sodium_memzero(payload, strlen(payload));
		free(payload);
	}
	if (err)
		return err;
	char path[4096];
	int rc = 0;
	if (cli_token_write(str(ans, "token"), path, sizeof path) < 0) {
		fprintf(stderr, "grace: cannot save the token\n");
		rc = EXIT_UNHEALTHY;
	} else {
		printf("logged in as %s (%s); token saved in %s\n", c->name,
		       str(json_object_get(ans, "user"), "role"), path);
	}
	json_decref(ans);
	return rc;
}

static int cmd_logout(struct cli *c)
{
	json_t *ans;
	long st = c->token[0] ? api_call(c, "POST", "/auth/logout", NULL, &ans) : 200;
	if (c->token[0])
		json_decref(ans);
	cli_token_forget();
	return st == 200 || st == 401 ? 0 : EXIT_UNHEALTHY;
}

/* `grace user add NAME [--admin]`: written straight into the data
 * directory's database, so the first admin can be made before any start. */
static int cmd_user_add(const grace_config *cfg, const char *name, bool admin)
{
	if (!auth_name_valid(name)) {
		fprintf(stderr, "grace: a user name is 1 to 64 of a-z, 0-9, '_', '.', '-'\n");
		return EXIT_USAGE;
	}
	char pw[AUTH_PASSWORD_MAX + 2];
	if (cli_password_read("new password: ", pw, sizeof pw) < 0) {
		fprintf(stderr, "grace: no password given\n");
		return EXIT_USAGE;
	}
	const char *why = auth_password_problem(pw);
	if (why) {
		sodium_memzero(pw, sizeof pw);
		fprintf(stderr, "grace: %s\n", why);
		return EXIT_USAGE;
	}
	char hash[AUTH_HASH_MAX], err[256];
	sqlite3 *db = NULL;
	int rc = EXIT_UNHEALTHY;
	if (sodium_init() < 0 || (mkdir(cfg->data_dir, 0700) < 0 && errno != EEXIST)) {
		fprintf(stderr, "grace: cannot create %s\n", cfg->data_dir);
	} else if (sdk_db_open(cfg->data_dir, "grace", &db, err, sizeof err) < 0 ||
		   auth_store_init(db, err, sizeof err) < 0) {
		fprintf(stderr, "grace: %s\n", err);
	} else if (auth_hash(pw, cfg->auth.argon2_ops, (size_t)cfg->auth.argon2_mem_kib * 1024,
			     hash) < 0) {
		fprintf(stderr, "grace: cannot hash the password\n");
	} else {
		int r = auth_user_add(db, name, hash, admin ? AUTH_ROLE_ADMIN : AUTH_ROLE_USER,
				      sdk_wall_ms());
		if (r == -EEXIST)
			fprintf(stderr, "grace: user '%s' exists\n", name);
		else if (r < 0)
			fprintf(stderr, "grace: cannot store the user\n");
		else {
			printf("user %s (%s) added to %s/grace.db\n", name, admin ? "admin" : "user",
			       cfg->data_dir);
			rc = 0;
		}
	}
	sodium_memzero(pw, sizeof pw);
	sqlite3_close(db);
	return rc;
}

int cli_user_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "admin", no_argument, NULL, 'a' },
		{ "config", required_argument, NULL, 'c' },
		{ "data-dir", required_argument, NULL, 'd' },
		{ 0, 0, 0, 0 },
	};
	grace_config_overrides ov = { 0 };
	bool admin = false;
	int o;
	optind = 3;
	while ((o = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (o) {
		case 'a': admin = true; break;
		case 'c': ov.config_path = optarg; break;
		case 'd': ov.data_dir = optarg; break;
		default: return EXIT_USAGE;
		}
	}
	if (argc < 3 || strcmp(argv[2], "add") || optind != argc - 1) {
		fprintf(stderr, "grace: usage: grace user add NAME [--admin] [--data-dir DIR]\n");
		return EXIT_USAGE;
	}
	static grace_config cfg;
	char err[512];
	if (grace_config_load(&cfg, kernel_registry_all(), kernel_registry_count(), &ov, err,
			      sizeof err) < 0) {
		fprintf(stderr, "grace: %s\n", err);
		return EXIT_USAGE;
	}
	return cmd_user_add(&cfg, argv[optind], admin);
}

static const char *const commands[] = { "status",   "kernels",   "health-check", "heal",
					"diagnose", "restart",   "incidents",    "login",
					"logout",   "silences",  "silence" };

bool cli_is_command(const char *cmd)
{
	for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
		if (!strcmp(cmd, commands[i]))
			return true;
	return false;
}

int cli_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "action", required_argument, NULL, 'a' },
		{ "force", no_argument, NULL, 'f' },
		{ "port", required_argument, NULL, 'u' },
		{ "limit", required_argument, NULL, 'l' },
		{ "config", required_argument, NULL, 'c' },
		{ "port-offset", required_argument, NULL, 'p' },
		{ "data-dir", required_argument, NULL, 'd' },
		{ "duration", required_argument, NULL, 'D' },
		{ "comment", required_argument, NULL, 'C' },
		{ "author", required_argument, NULL, 'A' },
		{ 0, 0, 0, 0 },
	};
	const char *cmd = argv[1];
	struct cli c = { .limit = 20 };
	grace_config_overrides ov = { 0 };
	const char *api_port = NULL;
	int o;
	optind = 2;
	while ((o = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (o) {
		case 'j': c.json = true; break;
		case 'a': c.action = optarg; break;
		case 'f': c.force = true; break;
		case 'u': api_port = optarg; break;
		case 'l': c.limit = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'c': ov.config_path = optarg; break;
		case 'p': ov.port_offset = optarg; break;
		case 'd': ov.data_dir = optarg; break;
		case 'D': c.duration = optarg; break;
		case 'C': c.comment = optarg; break;
		case 'A': c.author = optarg; break;
		default: return EXIT_USAGE;
		}
	}
	bool needs_name = !strcmp(cmd, "heal") || !strcmp(cmd, "diagnose") ||
			  !strcmp(cmd, "restart") || !strcmp(cmd, "login");
	if (needs_name) {
		if (optind != argc - 1) {
			fprintf(stderr, "grace: usage: grace %s NAME%s [--json]\n", cmd,
				!strcmp(cmd, "heal") ? " [--action PLAYBOOK] [--force]" : "");
			return EXIT_USAGE;
		}
		c.name = argv[optind];
		for (const char *p = c.name; *p; p++)
			if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_')) {
				fprintf(stderr, "grace: '%s' is not a kernel name\n", c.name);
				return EXIT_USAGE;
			}
	} else if (!strcmp(cmd, "silence")) {
		c.args = argv + optind;
		c.n_args = argc - optind;
	} else if (optind != argc) {
		fprintf(stderr, "grace: %s takes no arguments\n", cmd);
		return EXIT_USAGE;
	}
	if (c.limit == 0 || c.limit > 500)
		c.limit = 20;
	if (api_port) {
		c.port = atoi(api_port);
	} else {
		static grace_config cfg;
		char err[512];
		if (grace_config_load(&cfg, kernel_registry_all(), kernel_registry_count(), &ov,
				      err, sizeof err) < 0) {
			fprintf(stderr, "grace: %s\n", err);
			return EXIT_USAGE;
		}
		c.port = cfg.api_port + cfg.port_offset;
	}
	if (c.port <= 0 || c.port > 65535) {
		fprintf(stderr, "grace: --port must be a TCP port\n");
		return EXIT_USAGE;
	}
	cli_token_read(c.token, sizeof c.token);
	int rc;
	if (!strcmp(cmd, "status"))
		rc = cmd_status(&c);
	else if (!strcmp(cmd, "kernels"))
		rc = cmd_kernels(&c);
	else if (!strcmp(cmd, "health-check"))
		rc = cmd_health_check(&c);
	else if (!strcmp(cmd, "heal"))
		rc = cmd_heal(&c, false);
	else if (!strcmp(cmd, "diagnose"))
		rc = cmd_heal(&c, true);
	else if (!strcmp(cmd, "restart"))
		rc = cmd_restart(&c);
	else if (!strcmp(cmd, "login"))
		rc = cmd_login(&c);
	else if (!strcmp(cmd, "logout"))
		rc = cmd_logout(&c);
	else if (!strcmp(cmd, "silences"))
		rc = cmd_silences(&c);
	else if (!strcmp(cmd, "silence"))
		rc = cmd_silence(&c);
	else
		rc = cmd_incidents(&c);
	return rc;
}
