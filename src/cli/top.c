/* `grace top`: a refreshing view of Grace and its kernels: state, pid,
 * uptime, restarts (GET /health) and requests per second and mean latency
 * between two refreshes (each process's own /metrics counters). */
#include "cli/cli.h"

#include "cli/api.h"
#include "sdk/clock.h"

#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define TOP_TIMEOUT_MS 5000
#define METRICS_TIMEOUT_MS 1000
#define TOP_ROWS_MAX 64 /* kernels, and Grace itself */

struct counters {
	char name[64];
	bool seen;
	double requests, seconds_sum, seconds_count;
};

struct sample {
	uint64_t at_ms;
	size_t n;
	struct counters c[TOP_ROWS_MAX];
};

/* Sums a metric's values over its series, leaving out the scrapes of
 * /metrics itself (every refresh would count as a request). */
static double metric_sum(const char *text, const char *metric)
{
	double total = 0;
	size_t mlen = strlen(metric);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (strncmp(p, metric, mlen) || p[mlen] != '{')
			continue;
		const char *end = strchr(p, '\n');
		const char *close = strchr(p, '}');
		if (!close || (end && close > end))
			continue;
		if (memmem(p, (size_t)(close - p), "route=\"/metrics\"", 16))
			continue;
		total += strtod(close + 1, NULL);
	}
	return total;
}

static void read_counters(struct counters *c, const char *name, int port)
{
	snprintf(c->name, sizeof c->name, "%s", name);
	char *text = port > 0 ? cli_http_get_text(port, "/metrics", METRICS_TIMEOUT_MS) : NULL;
	c->seen = text != NULL;
	if (text) {
		c->requests = metric_sum(text, "grace_http_requests_total");
		c->seconds_sum = metric_sum(text, "grace_http_request_duration_seconds_sum");
		c->seconds_count = metric_sum(text, "grace_http_request_duration_seconds_count");
	}
	free(text);
}

static const struct counters *find(const struct sample *s, const char *name)
{
	for (size_t i = 0; s && i < s->n; i++)
		if (!strcmp(s->c[i].name, name))
			return &s->c[i];
	return NULL;
}

/* Requests per second and mean latency (ms) since `before`; false when
 * there is no earlier sample to compare with. */
static bool rates(const struct counters *now, const struct counters *before, double dt_s,
		  double *rps, double *lat_ms, bool *have_lat)
{
	if (!now || !before || !now->seen || !before->seen || dt_s <= 0 ||
	    now->requests < before->requests)
		return false;
	*rps = (now->requests - before->requests) / dt_s;
	double dc = now->seconds_count - before->seconds_count;
	*have_lat = dc > 0;
	*lat_ms = dc > 0 ? (now->seconds_sum - before->seconds_sum) / dc * 1000.0 : 0;
	return true;
}

static json_t *row_json(const char *name, json_t *k, const struct counters *now,
			const struct counters *before, double dt_s)
{
	json_t *o = json_pack("{s:s, s:s, s:O?, s:O?, s:O?}", "name", name, "state",
			      k ? cli_str(k, "state") : "running", "pid",
			      k ? json_object_get(k, "pid") : json_null(), "uptime_s",
			      k ? json_object_get(k, "uptime_s") : json_null(), "restarts",
			      k ? json_object_get(k, "restarts") : NULL);
	double rps, lat;
	bool have_lat;
	bool ok = rates(now, before, dt_s, &rps, &lat, &have_lat);
	json_object_set_new(o, "requests_per_s", ok ? json_real(rps) : json_null());
	json_object_set_new(o, "latency_ms", ok && have_lat ? json_real(lat) : json_null());
	return o;
}

/* One refresh: a JSON frame, and the counters for the next one. */
static int frame(const struct cli_api *api, const struct sample *prev, struct sample *cur,
		 json_t **out)
{
	json_t *h;
	int rc = cli_api_call(api, "GET", "/health", NULL, 200, &h);
	if (rc)
		return rc;
	cur->at_ms = sdk_mono_ms();
	cur->n = 0;
	double dt = prev ? (double)(cur->at_ms - prev->at_ms) / 1000.0 : 0;
	json_t *rows = json_array();
	read_counters(&cur->c[cur->n++], "grace", api->port);
	json_t *self = json_pack("{s:s, s:O?, s:O?, s:i}", "name", "grace", "state",
				 json_object_get(h, "status"), "pid", json_object_get(h, "pid"),
				 "restarts", 0);
	json_object_set_new(self, "uptime_s", json_deep_copy(json_object_get(h, "uptime_s")));
	json_t *r0 = row_json("grace", NULL, &cur->c[0], find(prev, "grace"), dt);
	json_object_update_missing(self, r0);
	json_decref(r0);
	json_array_append_new(rows, self);
	const char *name;
	json_t *k;
	json_object_foreach(json_object_get(h, "kernels"), name, k) {
		if (cur->n == TOP_ROWS_MAX)
			break;
		struct counters *c = &cur->c[cur->n++];
		read_counters(c, name,
			      json_is_integer(json_object_get(k, "pid"))
				      ? (int)json_integer_value(json_object_get(k, "port"))
				      : 0);
		json_array_append_new(rows, row_json(name, k, c, find(prev, name), dt));
	}
	*out = json_pack("{s:I, s:O?, s:O?, s:O?, s:O?, s:o}", "time_ms", (json_int_t)sdk_wall_ms(),
			 "status", json_object_get(h, "status"), "version",
			 json_object_get(h, "version"), "kernels_ready",
			 json_object_get(h, "kernels_ready"), "kernels_total",
			 json_object_get(h, "kernels_total"), "processes", rows);
	json_decref(h);
	return 0;
}

static void print_frame(json_t *f, bool colour)
{
	time_t now = time(NULL);
	struct tm tm;
	char clock[16];
	gmtime_r(&now, &tm);
	strftime(clock, sizeof clock, "%H:%M:%S", &tm);
	printf("grace %s: %s, %lld of %lld kernels ready, %s UTC\n\n", cli_str(f, "version"),
	       cli_str(f, "status"), (long long)json_integer_value(json_object_get(f, "kernels_ready")),
	       (long long)json_integer_value(json_object_get(f, "kernels_total")), clock);
	printf("%-14s %-16s %8s %8s %8s %9s %10s\n", "PROCESS", "STATE", "PID", "UPTIME",
	       "RESTARTS", "REQ/S", "LATENCY");
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(f, "processes"), i, r) {
		char pid[16], up[16], restarts[16], rps[24] = "-", lat[24] = "-";
		cli_fmt_int(json_object_get(r, "pid"), pid, sizeof pid);
		cli_fmt_uptime(json_object_get(r, "uptime_s"), up, sizeof up);
		cli_fmt_int(json_object_get(r, "restarts"), restarts, sizeof restarts);
		if (json_is_number(json_object_get(r, "requests_per_s")))
			snprintf(rps, sizeof rps, "%.1f",
				 json_number_value(json_object_get(r, "requests_per_s")));
		if (json_is_number(json_object_get(r, "latency_ms")))
			snprintf(lat, sizeof lat, "%.2fms",
				 json_number_value(json_object_get(r, "latency_ms")));
		const char *state = cli_str(r, "state");
		bool bad = strcmp(state, "ready") && strcmp(state, "ok");
		printf("%-14s %s%-16s%s %8s %8s %8s %9s %10s\n", cli_str(r, "name"),
		       colour && bad ? "\033[1;31m" : "", state, colour && bad ? "\033[0m" : "", pid,
		       up, restarts, rps, lat);
	}
}

static volatile sig_atomic_t top_stop;
static void on_signal(int sig)
{
	(void)sig;
	top_stop = 1;
}

/* Waits `ms`, or less when q is typed (terminal) or a signal comes. */
static void pause_ms(unsigned ms, bool tty)
{
	struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
	uint64_t end = sdk_mono_ms() + ms;
	while (!top_stop) {
		uint64_t now = sdk_mono_ms();
		if (now >= end)
			return;
		int n = poll(tty ? &p : NULL, tty ? 1 : 0, (int)(end - now));
		if (n > 0) {
			char ch;
			if (read(STDIN_FILENO, &ch, 1) == 1 && (ch == 'q' || ch == 'Q'))
				top_stop = 1;
		}
	}
}

int cli_top(const struct cli_args *a)
{
	struct cli_api api;
	int rc = cli_api_init(&api, a, TOP_TIMEOUT_MS);
	if (rc)
		return rc;
	bool tty = isatty(STDOUT_FILENO) && isatty(STDIN_FILENO) && !a->json;
	const char *nc = getenv("NO_COLOR");
	bool colour = tty && !(nc && *nc);
	struct termios old;
	bool raw = tty && tcgetattr(STDIN_FILENO, &old) == 0;
	if (raw) {
		struct termios t = old;
		t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
		tcsetattr(STDIN_FILENO, TCSANOW, &t);
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	static struct sample samples[2]; /* the last two */
	struct sample *prev = NULL;
	for (unsigned i = 0; !top_stop && (!a->iterations || i < a->iterations); i++) {
		struct sample *cur = &samples[i % 2];
		json_t *f = NULL;
		rc = frame(&api, prev, cur, &f);
		if (rc)
			break;
		if (a->json) {
			char *s = json_dumps(f, JSON_COMPACT | JSON_REAL_PRECISION(6));
			if (s)
				puts(s);
			free(s);
		} else {
			if (tty)
				fputs("\033[H\033[2J", stdout);
			else if (i)
				putchar('\n');
			print_frame(f, colour);
			if (tty)
				printf("\nrefreshing every %.1f s; q quits\n", a->interval_ms / 1000.0);
		}
		fflush(stdout);
		json_decref(f);
		prev = cur;
		if (!a->iterations || i + 1 < a->iterations)
			pause_ms(a->interval_ms, raw);
	}
	if (raw)
		tcsetattr(STDIN_FILENO, TCSANOW, &old);
	return rc;
}
