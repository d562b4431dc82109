/* The commands that ask the running API (api.h), and `user add`. */
#include "cli/cli.h"

#include "cli/api.h"
#include "cli/secret.h"
#include "sdk/clock.h"
#include "sdk/db.h"
#include "serve/auth/users.h"

#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TIMEOUT_MS 10000      /* most commands */
#define HEAL_TIMEOUT_MS 60000 /* a heal waits for stop, start and verify */
#define WAIT_POLL_MS 100
#define RECENT_EVENTS 10
#define EVENTS_WINDOW_MS (24LL * 3600 * 1000) /* "recent": the last day */
#define EVENTS_PAGE 1000                      /* GD_EVENTS_PAGE_MAX */
#define EVENTS_PAGES_MAX 50

#define str cli_str
#define print_json cli_print_json
#define fmt_int cli_fmt_int
#define fmt_uptime cli_fmt_uptime

struct cli {
	const struct cli_args *a;
	struct cli_api api;
	bool json;
	const char *name; /* the kernel or user argument */
};

/* Prints and frees. */
static void print_json_new(json_t *j)
{
	print_json(j);
	json_decref(j);
}

static int call_expect(const struct cli *c, const char *method, const char *path,
		       const char *payload, long want, json_t **ans)
{
	return cli_api_call(&c->api, method, path, payload, want, ans);
}

static void print_kernel_row(const char *name, json_t *k)
{
	char pid[16], up[16], port[16], restarts[16];
	fmt_int(json_object_get(k, "pid"), pid, sizeof pid);
	fmt_int(json_object_get(k, "port"), port, sizeof port);
	fmt_int(json_object_get(k, "restarts"), restarts, sizeof restarts);
	fmt_uptime(json_object_get(k, "uptime_s"), up, sizeof up);
	const char *last = str(k, "last_exit");
	printf("%-14s %-16s %6s %8s %8s %8s  %.60s\n", name, str(k, "state"), port, pid, up,
	       restarts, *last ? last : "-");
}

static void print_time(int64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	char buf[32];
	gmtime_r(&t, &tm);
	strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
	printf("%s.%03dZ", buf, (int)(ms % 1000));
}

/* The kernel's last RECENT_EVENTS guardian events into `out`, paging
 * through the record (oldest first, by time) from the last day on. */
static int recent_events(const struct cli *c, json_t *out)
{
	int64_t since = (int64_t)sdk_wall_ms() - EVENTS_WINDOW_MS;
	json_int_t last_id = 0;
	for (int page = 0; page < EVENTS_PAGES_MAX; page++) {
		char path[200];
		snprintf(path, sizeof path, "/guardian/events?kernel=%s&limit=%d&since=%lld", c->name,
			 EVENTS_PAGE, (long long)since);
		json_t *ans;
		int err = call_expect(c, "GET", path, NULL, 200, &ans);
		if (err)
			return err;
		json_t *events = json_object_get(ans, "events"), *e;
		size_t i, n = json_array_size(events);
		json_array_foreach(events, i, e) {
			json_int_t id = json_integer_value(json_object_get(e, "id"));
			if (id <= last_id)
				continue; /* seen on the page before (the same ms) */
			last_id = id;
			since = json_integer_value(json_object_get(e, "ts_ms"));
			json_array_append(out, e);
			if (json_array_size(out) > RECENT_EVENTS)
				json_array_remove(out, 0);
		}
		json_decref(ans);
		if (n < EVENTS_PAGE)
			break;
	}
	return 0;
}

/* `grace status KERNEL`: as `systemctl status UNIT` shows one unit. */
static int cmd_status_one(const struct cli *c)
{
	char path[160];
	snprintf(path, sizeof path, "/kernel-ports/%s", c->name);
	json_t *k;
	int err = call_expect(c, "GET", path, NULL, 200, &k);
	if (err)
		return err;
	json_t *recent = json_array();
	err = recent_events(c, recent);
	if (err) {
		json_decref(k);
		json_decref(recent);
		return err;
	}
	int rc = strcmp(str(k, "state"), "ready") ? CLI_FAILED : 0;
	if (c->json) {
		json_object_set_new(k, "recent_events", recent);
		print_json(k);
	} else {
		char pid[16], up[16], port[16], cport[16], restarts[16];
		fmt_int(json_object_get(k, "pid"), pid, sizeof pid);
		fmt_int(json_object_get(k, "port"), port, sizeof port);
		fmt_int(json_object_get(k, "configured_port"), cport, sizeof cport);
		fmt_int(json_object_get(k, "restarts"), restarts, sizeof restarts);
		fmt_uptime(json_object_get(k, "uptime_s"), up, sizeof up);
		const char *last = str(k, "last_exit");
		printf("%s %s - %s kernel\n", rc ? "x" : "*", str(k, "name"), str(k, "tier"));
		printf("     State: %s\n", str(k, "state"));
		printf("       PID: %s\n", pid);
		printf("    Uptime: %s\n", up);
		printf("      Port: %s (configured %s)\n", port, cport);
		printf("  Restarts: %s\n", restarts);
		printf(" Last exit: %s\n", *last ? last : "-");
		const char *cmd = str(k, "command");
		if (*cmd && strcmp(cmd, "-"))
			printf("   Command: %s\n", cmd);
		if (!strcmp(str(k, "manager"), "systemd")) /* as systemctl status names it */
			printf("      Unit: %s%s%s (run by systemd)\n", str(k, "unit"),
			       json_object_get(k, "socket_unit") ? ", " : "",
			       json_object_get(k, "socket_unit") ? str(k, "socket_unit") : "");
		printf("\nRecent events:\n");
		size_t i;
		json_t *e;
		json_array_foreach(recent, i, e) {
			printf("  ");
			print_time(json_integer_value(json_object_get(e, "ts_ms")));
			printf("  %s -> %s  %s\n", str(e, "from"), str(e, "to"), str(e, "reason"));
		}
		if (json_array_size(recent) == 0)
			printf("  (none)\n");
		json_decref(recent);
	}
	json_decref(k);
	return rc;
}

/* Several hosts: each node as this one sees it, and which kernels it runs. */
static void print_nodes(json_t *nodes)
{
	json_t *list = json_object_get(nodes, "nodes");
	if (!json_array_size(list))
		return;
	printf("\n%-14s %-12s %-22s %s\n", "NODE", "STATE", "ADDRESS", "LAST ERROR");
	size_t i;
	json_t *n;
	json_array_foreach(list, i, n) {
		const char *err = json_string_value(json_object_get(n, "last_error"));
		printf("%-14s %-12s %-22s %s%s\n", str(n, "name"), str(n, "state"), str(n, "address"),
		       json_is_true(json_object_get(n, "self")) ? "(this node) " : "",
		       err ? err : "");
	}
}

static int cmd_status(const struct cli *c)
{
	if (c->name)
		return cmd_status_one(c);
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
		json_object_foreach(json_object_get(ans, "kernels"), name, k)
			print_kernel_row(name, k);
		print_nodes(json_object_get(ans, "nodes"));
		if (strcmp(overall, "ok"))
			printf("\n`grace status KERNEL` shows one kernel in detail, `grace diagnose "
			       "KERNEL` what is wrong, `grace heal KERNEL` mends it.\n");
	}
	int rc = strcmp(overall, "ok") ? CLI_FAILED : 0;
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
	int rc = strcmp(str(ans, "status"), "ok") ? CLI_FAILED : 0;
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
	if (c->a->action)
		json_object_set_new(req, "action", json_string(c->a->action));
	if (c->a->force)
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
		rc = strcmp(str(json_object_get(ans, "diagnosis"), "issue_type"), "healthy") ? CLI_FAILED
											     : 0;
	else /* healed, or nothing needed healing */
		rc = !strcmp(outcome, "healed") ||
				     (!strcmp(outcome, "diagnosed") &&
				      !strcmp(str(ans, "issue_type"), "healthy"))
			     ? 0
			     : CLI_FAILED;
	if (rc && !c->json && !diagnose_only)
		fprintf(stderr, "grace: %s was not healed (%s); `grace diagnose %s` says why\n",
			c->name, outcome, c->name);
	json_decref(ans);
	return rc;
}

static bool state_is(json_t *k, const char *s) { return !strcmp(str(k, "state"), s); }

/* --wait: until the kernel is where the action leads, or it fails, or the
 * timeout. */
static int wait_for(const struct cli *c, const char *action, json_int_t old_pid)
{
	char path[160];
	snprintf(path, sizeof path, "/kernel-ports/%s", c->name);
	bool stop = !strcmp(action, "stop");
	uint64_t t0 = sdk_mono_ms();
	for (;;) {
		json_t *k;
		int err = call_expect(c, "GET", path, NULL, 200, &k);
		if (err)
			return err;
		json_int_t pid = json_integer_value(json_object_get(k, "pid"));
		bool done = stop ? state_is(k, "stopped")
				 : state_is(k, "ready") && (!old_pid || pid != old_pid);
		bool failed = !stop && (state_is(k, "failed") || state_is(k, "port_unavailable") ||
					state_is(k, "stopped"));
		if (done || failed) {
			if (c->json)
				print_json(k);
			else
				printf("%s: %s\n", c->name, str(k, "state"));
			json_decref(k);
			if (failed)
				fprintf(stderr, "grace: %s did not start; `grace status %s` says why\n",
					c->name, c->name);
			return failed ? CLI_FAILED : 0;
		}
		json_decref(k);
		if (sdk_mono_ms() - t0 > c->api.timeout_ms) {
			fprintf(stderr, "grace: %s is not %s after %.1f s (try a longer --timeout)\n",
				c->name, stop ? "stopped" : "ready", c->api.timeout_ms / 1000.0);
			return CLI_TIMEOUT;
		}
		usleep(WAIT_POLL_MS * 1000);
	}
}

/* start, stop, restart: as systemctl's, an action already done is no error. */
static int cmd_action(const struct cli *c, const char *action)
{
	char path[160];
	snprintf(path, sizeof path, "/kernel-ports/%s/%s", c->name, action);
	json_t *ans;
	long st;
	int err = cli_api_request(&c->api, "POST", path, NULL, &st, &ans);
	if (err)
		return err;
	int rc = 0;
	json_t *e = json_object_get(ans, "error");
	if (st == 409 && !strcmp(str(e, "code"), "no_change")) {
		if (c->json)
			print_json_new(json_pack("{s:s, s:s, s:b}", "name", c->name, "action", action,
					     "changed", 0));
		else
			printf("%s: %s\n", c->name, str(e, "message"));
	} else if (st != 202) {
		rc = cli_api_report(&c->api, "POST", path, st, ans);
	} else if (c->a->wait) {
		json_int_t pid = !strcmp(action, "restart")
					 ? json_integer_value(json_object_get(ans, "pid"))
					 : 0;
		rc = wait_for(c, action, pid);
	} else if (c->json) {
		print_json(ans);
	} else {
		printf("%s: %s (%s requested)\n", str(ans, "name"), str(ans, "state"), action);
	}
	json_decref(ans);
	return rc;
}

/* ---- reload */

static void print_names(const char *label, json_t *names)
{
	if (!json_array_size(names))
		return;
	printf("%s:", label);
	size_t i;
	json_t *n;
	json_array_foreach(names, i, n)
		printf(" %s", json_string_value(n));
	printf("\n");
}

static void print_reload(json_t *st)
{
	json_t *k = json_object_get(st, "kernels");
	print_names("restart", json_object_get(k, "restart"));
	print_names("stop", json_object_get(k, "stop"));
	print_names("start", json_object_get(k, "start"));
	if (json_is_true(json_object_get(st, "log_level")))
		printf("log_level: applied\n");
	size_t i;
	json_t *w;
	json_array_foreach(json_object_get(st, "at_next_start"), i, w)
		printf("at the next start of grace serve: %s\n", json_string_value(w));
	const char *state = str(st, "state");
	printf("reload: %s", state);
	if (!strcmp(state, "halted"))
		printf(": %s", str(st, "reason"));
	else if (!strcmp(state, "rolling") && json_is_string(json_object_get(st, "current")))
		printf(" (now: %s)", str(st, "current"));
	printf("\n");
}

static int cmd_reload(const struct cli *c)
{
	json_t *ans;
	int err = call_expect(c, "POST", "/reload", NULL, 200, &ans);
	if (err)
		return err;
	uint64_t t0 = sdk_mono_ms();
	while (c->a->wait && !strcmp(str(ans, "state"), "rolling")) {
		if (sdk_mono_ms() - t0 > c->api.timeout_ms) {
			fprintf(stderr, "grace: the reload is still rolling after %u s (grace status "
					"shows the kernels)\n",
				c->api.timeout_ms / 1000);
			json_decref(ans);
			return CLI_TIMEOUT;
		}
		usleep(WAIT_POLL_MS * 1000);
		json_decref(ans);
		if ((err = call_expect(c, "GET", "/reload", NULL, 200, &ans)))
			return err;
	}
	int rc = !strcmp(str(ans, "state"), "halted") ? CLI_FAILED : CLI_OK;
	if (c->json)
		print_json(ans);
	else
		print_reload(ans);
	json_decref(ans);
	return rc;
}

static int cmd_incidents(const struct cli *c)
{
	char path[128];
	snprintf(path, sizeof path, "/network-healer/incidents?limit=%u", c->a->limit);
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

/* ---- silences, through the alerts kernel's Alertmanager API */

static int cmd_silences(const struct cli *c)
{
	json_t *ans;
	int err = call_expect(c, "GET", "/alertmanager/api/v2/silences", NULL, 200, &ans);
	if (err)
		return err;
	if (c->json) {
		print_json_new(ans);
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
			size_t used = strlen(ms);
			snprintf(ms + used, sizeof ms - used, "%s%s%s%s\"%s\"", k ? "," : "",
				 str(m, "name"), eq ? "" : "!", re ? "=~" : "=", str(m, "value"));
		}
		printf("%-36s %-8s %-24s %-24s %-12s %s\n", str(s, "id"),
		       str(json_object_get(s, "status"), "state"), str(s, "endsAt"), ms,
		       str(s, "createdBy"), str(s, "comment"));
	}
	json_decref(ans);
	return 0;
}

static void iso_time(int64_t ms, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int cmd_silence_expire(const struct cli *c, const char *id)
{
	char path[160];
	snprintf(path, sizeof path, "/alertmanager/api/v2/silence/%s", id); /* parse.c checked id */
	json_t *ans;
	int err = call_expect(c, "DELETE", path, NULL, 200, &ans);
	if (err)
		return err;
	if (c->json)
		print_json_new(json_pack("{s:s, s:b}", "silenceID", id, "expired", 1));
	else
		printf("%s: expired\n", id);
	json_decref(ans);
	return 0;
}

/* `grace silence add MATCHER... --comment TEXT`: parse.c checked the
 * matchers, the comment and the duration. */
static int cmd_silence_add(const struct cli *c)
{
	const struct cli_args *a = c->a;
	json_t *matchers = json_array();
	for (int i = 1; i < a->n_args; i++) {
		struct cli_matcher m;
		if (cli_matcher_parse(a->args[i], &m) == 0)
			json_array_append_new(matchers, json_pack("{s:s, s:s, s:b, s:b}", "name", m.name,
								  "value", m.value, "isRegex",
								  m.is_regex, "isEqual", m.is_equal));
	}
	int64_t start = (int64_t)sdk_wall_ms();
	char st[40], en[40];
	iso_time(start, st, sizeof st);
	iso_time(start + a->duration_ms, en, sizeof en);
	const char *who = a->author ? a->author : getenv("USER");
	json_t *body = json_pack("{s:o, s:s, s:s, s:s, s:s}", "matchers", matchers, "startsAt", st,
				 "endsAt", en, "createdBy", who && *who ? who : "grace-cli",
				 "comment", a->comment);
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (!text) {
		fprintf(stderr, "grace: the silence is not valid UTF-8 (matchers, --comment, --author)\n");
		return CLI_USAGE;
	}
	json_t *ans;
	int err = call_expect(c, "POST", "/alertmanager/api/v2/silences", text, 200, &ans);
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
		return CLI_USAGE;
	}
	json_t *req = json_pack("{s:s, s:s}", "username", c->name, "password", pw);
	sodium_memzero(pw, sizeof pw);
	char *payload = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	json_t *ans;
	c->api.token[0] = '\0'; /* a login sends no old session */
	int err = call_expect(c, "POST", "/auth/login", payload, 200, &ans);
	if (payload) {
		sodium_memzero(payload, strlen(payload));
		free(payload);
	}
	if (err)
		return err;
	char path[4096];
	int rc = 0;
	const char *role = str(json_object_get(ans, "user"), "role");
	if (cli_token_write(str(ans, "token"), path, sizeof path) < 0) {
		fprintf(stderr, "grace: cannot save the token (is $HOME or $XDG_CONFIG_HOME set "
				"and writable?)\n");
		rc = CLI_FAILED;
	} else if (c->json) {
		print_json_new(json_pack("{s:s, s:s, s:s}", "user", c->name, "role", role, "token_file",
				     path));
	} else {
		printf("logged in as %s (%s); token saved in %s\n", c->name, role, path);
	}
	json_decref(ans);
	return rc;
}

static int cmd_logout(struct cli *c)
{
	json_t *ans = NULL;
	long st = 200;
	if (c->api.token[0]) {
		int err = cli_api_request(&c->api, "POST", "/auth/logout", NULL, &st, &ans);
		json_decref(ans);
		if (err)
			return err;
	}
	cli_token_forget();
	if (st != 200 && st != 401) {
		fprintf(stderr, "grace: the API answered %ld to the logout\n", st);
		return CLI_API_ERROR;
	}
	if (c->json)
		print_json_new(json_pack("{s:b}", "logged_out", 1));
	else
		printf("logged out\n");
	return 0;
}

/* `grace user add NAME [--admin]`: written straight into the data
 * directory's database, so the first admin can be made before any start. */
static int cmd_user_add(const struct cli_args *a)
{
	static grace_config cfg; /* large */
	int rc = cli_config_load(a, &cfg);
	if (rc)
		return rc;
	const char *name = a->args[1];
	bool admin = a->admin;
	if (!auth_name_valid(name)) {
		fprintf(stderr, "grace: a user name is 1 to 64 of a-z, 0-9, '_', '.', '-'\n");
		return CLI_USAGE;
	}
	char pw[AUTH_PASSWORD_MAX + 2];
	if (cli_password_read("new password: ", pw, sizeof pw) < 0) {
		fprintf(stderr, "grace: no password given\n");
		return CLI_USAGE;
	}
	const char *why = auth_password_problem(pw);
	if (why) {
		sodium_memzero(pw, sizeof pw);
		fprintf(stderr, "grace: %s\n", why);
		return CLI_USAGE;
	}
	char hash[AUTH_HASH_MAX];
	sqlite3 *db = NULL;
	grace_store *store = NULL; /* [store]: grace.db or PostgreSQL */
	sdk_err serr = { { 0 } };
	rc = CLI_FAILED;
	if (sodium_init() < 0 || (mkdir(cfg.data_dir, 0700) < 0 && errno != EEXIST)) {
		fprintf(stderr, "grace: cannot create %s\n", cfg.data_dir);
	} else if (sdk_db_open(cfg.data_dir, "grace", &db, &serr) < 0 ||
		   auth_store_init(db, &serr) < 0) {
		fprintf(stderr, "grace: %s\n", serr.msg);
	} else if (!(store = store_open(&cfg, db, &serr))) {
		fprintf(stderr, "grace: %s\n", serr.msg);
	} else if (auth_hash(pw, cfg.auth.argon2_ops, (size_t)cfg.auth.argon2_mem_kib * 1024,
			     hash) < 0) {
		fprintf(stderr, "grace: cannot hash the password\n");
	} else {
		int r = auth_user_add(store, name, hash, admin ? AUTH_ROLE_ADMIN : AUTH_ROLE_USER,
				      sdk_wall_ms());
		if (r == SDK_ECONFLICT) {
			fprintf(stderr, "grace: user '%s' exists\n", name);
			rc = CLI_USAGE;
		} else if (r < 0) {
			fprintf(stderr, "grace: cannot store the user\n");
		} else {
			if (a->json)
				print_json_new(json_pack("{s:s, s:s, s:s}", "user", name, "role",
							 admin ? "admin" : "user", "data_dir",
							 cfg.data_dir));
			else
				printf("user %s (%s) added to %s%s\n", name, admin ? "admin" : "user",
				       store_is_pg(store) ? "PostgreSQL" : cfg.data_dir,
				       store_is_pg(store) ? "" : "/grace.db");
			rc = 0;
		}
	}
	sodium_memzero(pw, sizeof pw);
	store_close(store);
	sqlite3_close(db);
	return rc;
}

static int cmd_version(const struct cli_args *a)
{
	if (a->json)
		print_json_new(json_pack("{s:s}", "version", GRACE_VERSION));
	else
		printf("grace %s\n", GRACE_VERSION);
	return 0;
}

static int api_command(const struct cli_args *a)
{
	enum cli_cmd_id id = a->cmd->id;
	struct cli c = { .a = a, .json = a->json, .name = a->n_args ? a->args[0] : NULL };
	unsigned timeout = id == CMD_HEAL || id == CMD_DIAGNOSE ? HEAL_TIMEOUT_MS
			   : a->wait				   ? 3 * TIMEOUT_MS
								   : TIMEOUT_MS;
	int rc = cli_api_init(&c.api, a, timeout);
	if (rc)
		return rc;
	switch (id) {
	case CMD_STATUS: return cmd_status(&c);
	case CMD_KERNELS: return cmd_kernels(&c);
	case CMD_HEALTH_CHECK: return cmd_health_check(&c);
	case CMD_START: return cmd_action(&c, "start");
	case CMD_STOP: return cmd_action(&c, "stop");
	case CMD_RESTART: return cmd_action(&c, "restart");
	case CMD_RELOAD: return cmd_reload(&c);
	case CMD_HEAL: return cmd_heal(&c, false);
	case CMD_DIAGNOSE: return cmd_heal(&c, true);
	case CMD_INCIDENTS: return cmd_incidents(&c);
	case CMD_SILENCES: return cmd_silences(&c);
	case CMD_SILENCE:
		return !strcmp(a->args[0], "expire") ? cmd_silence_expire(&c, a->args[1])
						     : cmd_silence_add(&c);
	case CMD_LOGIN: return cmd_login(&c);
	case CMD_LOGOUT: return cmd_logout(&c);
	default: return CLI_USAGE;
	}
}

int cli_dispatch(const struct cli_args *a)
{
	switch (a->cmd->id) {
	case CMD_KERNELS_LIST: return cli_kernels_list(a);
	case CMD_ROUTES: return cli_routes(a);
	case CMD_LOGS: return cli_logs(a);
	case CMD_TOP: return cli_top(a);
	case CMD_USER: return cmd_user_add(a);
	case CMD_POLICY: return cli_policy(a);
	case CMD_ARCHIVE: return cli_archive(a);
	case CMD_NODE: return cli_node(a);
	case CMD_APPROVALS:
	case CMD_APPROVE:
	case CMD_DENY: return cli_approvals(a);
	case CMD_VERSION: return cmd_version(a);
	case CMD_COMPLETION: return cli_completion(a->args[0]);
	case CMD_MAN: return cli_man();
	case CMD_HELP:
		if (a->n_args == 0)
			cli_help_list(stdout);
		else if (!strcmp(a->args[0], "exit-codes"))
			cli_help_exit_codes(stdout);
		else
			cli_help_command(stdout, cli_cmd_find(a->args[0]));
		return 0;
	case CMD_SERVE:
	case CMD_KERNEL:
	case CLI_N_CMDS: return CLI_USAGE; /* main.c's */
	default: return api_command(a);
	}
}
