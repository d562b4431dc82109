#include "cli/cli.h"

#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLI_TIMEOUT_S 60 /* a heal waits for stop, start and verify */
#define EXIT_UNHEALTHY 1
#define EXIT_USAGE 2
#define EXIT_UNREACHABLE 3

struct cli {
	char base[128];
	bool json;
	const char *action;
	bool force;
	const char *name;
	unsigned limit;
};

struct body {
	char *data;
	size_t len;
};

static size_t on_data(char *ptr, size_t size, size_t n, void *arg)
{
	struct body *b = arg;
	size_t add = size * n;
	char *d = realloc(b->data, b->len + add + 1);
	if (!d)
		return 0;
	memcpy(d + b->len, ptr, add);
	b->len += add;
	d[b->len] = '\0';
	b->data = d;
	return add;
}

/* One request to the API. Returns the HTTP status (0 when unreachable) and
 * the parsed answer in *out (a new reference, NULL when not JSON). */
static long api_call(const struct cli *c, const char *method, const char *path,
		     const char *payload, json_t **out)
{
	*out = NULL;
	CURL *h = curl_easy_init();
	if (!h)
		return 0;
	char url[512];
	snprintf(url, sizeof url, "%s%s", c->base, path);
	struct body b = { 0 };
	struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)CLI_TIMEOUT_S);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	if (payload)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload);
	long status = 0;
	CURLcode rc = curl_easy_perform(h);
	if (rc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	else
		fprintf(stderr, "grace: cannot reach the API at %s: %s\n", c->base,
			curl_easy_strerror(rc));
	if (b.data)
		*out = json_loadb(b.data, b.len, 0, NULL);
	free(b.data);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	return status;
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
	fprintf(stderr, "grace: %ld %s: %s\n", status, str(e, "code"), str(e, "message"));
	return status == 404 || status == 400 ? EXIT_USAGE : EXIT_UNHEALTHY;
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
	long st = api_call(c, "GET", "/health", NULL, &ans);
	if (st != 200) {
		int rc = report_error(st, ans);
		json_decref(ans);
		return rc;
	}
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
	long st = api_call(c, "GET", "/kernel-ports", NULL, &ans);
	if (st != 200) {
		int rc = report_error(st, ans);
		json_decref(ans);
		return rc;
	}
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
	long st = api_call(c, "GET", "/kernel-ports/health-check", NULL, &ans);
	if (st != 200) {
		int rc = report_error(st, ans);
		json_decref(ans);
		return rc;
	}
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
	long st = api_call(c, "POST",
			   diagnose_only ? "/network-healer/diagnose" : "/network-healer/heal",
			   payload, &ans);
	free(payload);
	if (st != 200) {
		int rc = report_error(st, ans);
		json_decref(ans);
		return rc;
	}
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
	long st = api_call(c, "POST", path, NULL, &ans);
	if (st != 202) {
		int rc = report_error(st, ans);
		json_decref(ans);
		return rc;
	}
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
	long st = api_call(c, "GET", path, NULL, &ans);
	if (st != 200) {
		int rc = report_error(st, ans);
		json_decref(ans);
		return rc;
	}
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

static const char *const commands[] = { "status",  "kernels", "health-check", "heal",
					"diagnose", "restart", "incidents" };

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
		{ "api", required_argument, NULL, 'u' },
		{ "limit", required_argument, NULL, 'l' },
		{ "config", required_argument, NULL, 'c' },
		{ "port-offset", required_argument, NULL, 'p' },
		{ "data-dir", required_argument, NULL, 'd' },
		{ 0, 0, 0, 0 },
	};
	const char *cmd = argv[1];
	struct cli c = { .limit = 20 };
	grace_config_overrides ov = { 0 };
	const char *api = NULL;
	int o;
	optind = 2;
	while ((o = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (o) {
		case 'j': c.json = true; break;
		case 'a': c.action = optarg; break;
		case 'f': c.force = true; break;
		case 'u': api = optarg; break;
		case 'l': c.limit = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'c': ov.config_path = optarg; break;
		case 'p': ov.port_offset = optarg; break;
		case 'd': ov.data_dir = optarg; break;
		default: return EXIT_USAGE;
		}
	}
	bool needs_name = !strcmp(cmd, "heal") || !strcmp(cmd, "diagnose") || !strcmp(cmd, "restart");
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
	} else if (optind != argc) {
		fprintf(stderr, "grace: %s takes no arguments\n", cmd);
		return EXIT_USAGE;
	}
	if (c.limit == 0 || c.limit > 500)
		c.limit = 20;
	if (api) {
		snprintf(c.base, sizeof c.base, "%s", api);
	} else {
		static grace_config cfg;
		char err[512];
		if (grace_config_load(&cfg, &ov, err, sizeof err) < 0) {
			fprintf(stderr, "grace: %s\n", err);
			return EXIT_USAGE;
		}
		snprintf(c.base, sizeof c.base, "http://127.0.0.1:%d", cfg.api_port + cfg.port_offset);
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
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
	else
		rc = cmd_incidents(&c);
	curl_global_cleanup();
	return rc;
}
