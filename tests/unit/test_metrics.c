/* Unit tests for request metrics (src/sdk/metrics.c): observe requests,
 * render the Prometheus text format, and read the text back. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sdk/metrics.h"

static const char *const routes[] = { "/a", "/b/:id", "we\"ird\\ro\nute", "/idle" };
#define N_ROUTES (sizeof routes / sizeof routes[0])

struct fx {
	sdk_metrics *m;
	struct evbuffer *buf;
	char *text; /* the rendered text, NUL-terminated */
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	f->m = sdk_metrics_new(routes, N_ROUTES);
	f->buf = evbuffer_new();
	*state = f;
	return f->m && f->buf ? 0 : -1;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	sdk_metrics_free(f->m);
	if (f->buf)
		evbuffer_free(f->buf);
	free(f->text);
	free(f);
	return 0;
}

static const char *render(struct fx *f, const char *component)
{
	evbuffer_drain(f->buf, evbuffer_get_length(f->buf));
	sdk_metrics_render(f->m, component, 12.5, f->buf);
	size_t n = evbuffer_get_length(f->buf);
	free(f->text);
	f->text = malloc(n + 1);
	if (!f->text)
		abort(); /* (cmocka's failure path is not noreturn) */
	assert_int_equal(evbuffer_copyout(f->buf, f->text, n), (ssize_t)n);
	f->text[n] = '\0';
	return f->text;
}

/* The text has `line` as a whole line. */
static void expect_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	for (const char *p = text; (p = strstr(p, line)); p++)
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return;
	fail_msg("no line '%s' in:\n%s", line, text);
}

static void expect_no_substring(const char *text, const char *s)
{
	if (strstr(text, s)) {
		fputs(text, stderr);
		fail_msg("'%s' found in the text above", s);
	}
}

static int count_lines_with(const char *text, const char *prefix)
{
	int n = 0;
	size_t len = strlen(prefix);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
		if (!strncmp(p, prefix, len))
			n++;
	return n;
}

/* The value of the sample whose line starts with `series` + ' '; -1 if none. */
static double sample(const char *text, const char *series)
{
	size_t n = strlen(series);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
		if (!strncmp(p, series, n) && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	return -1;
}

/* Checks one route's histogram: buckets in order, cumulative, the last
 * "+Inf" equal to _count; returns _count. */
static unsigned long long check_histogram(const char *text, const char *comp, const char *route)
{
	char prefix[512];
	int plen = snprintf(prefix, sizeof prefix,
			    "grace_http_request_duration_seconds_bucket{kernel=\"%s\","
			    "route=\"%s\",le=\"",
			    comp, route);
	unsigned long long prev = 0, value = 0;
	double prev_le = -1;
	int buckets = 0, saw_inf = 0;
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p) {
		if (strncmp(p, prefix, (size_t)plen) != 0)
			continue;
		assert_false(saw_inf); /* +Inf is the last bucket */
		const char *le = p + plen;
		const char *close = strstr(le, "\"} ");
		assert_non_null(close);
		value = strtoull(close + 3, NULL, 10);
		assert_true(value >= prev);
		prev = value;
		buckets++;
		if (!strncmp(le, "+Inf\"", 5)) {
			saw_inf = 1;
		} else {
			double b = strtod(le, NULL);
			assert_true(b > prev_le);
			prev_le = b;
		}
	}
	assert_int_equal(buckets, 15);
	assert_true(saw_inf);
	char series[512];
	snprintf(series, sizeof series,
		 "grace_http_request_duration_seconds_count{kernel=\"%s\",route=\"%s\"}", comp,
		 route);
	assert_true(sample(text, series) >= 0);
	assert_int_equal((unsigned long long)sample(text, series), value);
	return value;
}

static void observe_some(sdk_metrics *m)
{
	sdk_metrics_observe(m, 0, "GET", 200, 0.0003);
	sdk_metrics_observe(m, 0, "GET", 200, 0.002);
	sdk_metrics_observe(m, 0, "GET", 404, 0.02);
	sdk_metrics_observe(m, 0, "POST", 201, 20.0); /* beyond the last bucket */
	sdk_metrics_observe(m, 1, "GET", 200, 0.5);
	sdk_metrics_observe(m, -1, "GET", 404, 0.001);   /* exactly on a bound */
	sdk_metrics_observe(m, 7, "DELETE", 404, 0.001); /* out of range: unmatched */
	sdk_metrics_observe(m, 2, "PUT", 500, 0.1);
}

static void test_counters(void **state)
{
	struct fx *f = *state;
	observe_some(f->m);
	const char *t = render(f, "librarian");
	expect_line(t, "# TYPE grace_http_requests_total counter");
	expect_line(t, "grace_http_requests_total{kernel=\"librarian\",route=\"/a\","
		       "method=\"GET\",status=\"200\"} 2");
	expect_line(t, "grace_http_requests_total{kernel=\"librarian\",route=\"/a\","
		       "method=\"GET\",status=\"404\"} 1");
	expect_line(t, "grace_http_requests_total{kernel=\"librarian\",route=\"/a\","
		       "method=\"POST\",status=\"201\"} 1");
	expect_line(t, "grace_http_requests_total{kernel=\"librarian\",route=\"/b/:id\","
		       "method=\"GET\",status=\"200\"} 1");
	expect_line(t, "grace_http_requests_total{kernel=\"librarian\",route=\"unmatched\","
		       "method=\"GET\",status=\"404\"} 1");
	expect_line(t, "grace_http_requests_total{kernel=\"librarian\",route=\"unmatched\","
		       "method=\"DELETE\",status=\"404\"} 1");
	/* One series per (route, method, status) seen, no more. */
	assert_int_equal(count_lines_with(t, "grace_http_requests_total{"), 7);
	/* A route with no requests has no series. */
	expect_no_substring(t, "route=\"/idle\"");

	/* Counting goes on from where it was. */
	for (int i = 0; i < 40; i++)
		sdk_metrics_observe(f->m, 1, "GET", 200, 0.01);
	t = render(f, "librarian");
	expect_line(t, "grace_http_requests_total{kernel=\"librarian\",route=\"/b/:id\","
		       "method=\"GET\",status=\"200\"} 41");
	assert_int_equal(count_lines_with(t, "grace_http_requests_total{"), 7);

	/* Many distinct series (the table grows). */
	for (int s = 100; s < 160; s++)
		sdk_metrics_observe(f->m, 3, "GET", s, 0.01);
	t = render(f, "librarian");
	assert_int_equal(count_lines_with(t, "grace_http_requests_total{"), 67);
	expect_line(t, "grace_http_requests_total{kernel=\"librarian\",route=\"/idle\","
		       "method=\"GET\",status=\"159\"} 1");
}

static void test_histogram(void **state)
{
	struct fx *f = *state;
	observe_some(f->m);
	const char *t = render(f, "k");
	expect_line(t, "# TYPE grace_http_request_duration_seconds histogram");

	assert_int_equal(check_histogram(t, "k", "/a"), 4);
	assert_int_equal(check_histogram(t, "k", "/b/:id"), 1);
	assert_int_equal(check_histogram(t, "k", "unmatched"), 2);
	assert_int_equal(check_histogram(t, "k", "we\\\"ird\\\\ro\\nute"), 1);

#define B(route, le) "grace_http_request_duration_seconds_bucket{kernel=\"k\",route=\"" \
	route "\",le=\"" le "\"}"
	/* /a: 0.0003, 0.002, 0.02 and 20 s. */
	assert_true(sample(t, B("/a", "0.0005")) == 1);
	assert_true(sample(t, B("/a", "0.001")) == 1);
	assert_true(sample(t, B("/a", "0.0025")) == 2);
	assert_true(sample(t, B("/a", "0.01")) == 2);
	assert_true(sample(t, B("/a", "0.025")) == 3);
	assert_true(sample(t, B("/a", "10")) == 3);
	assert_true(sample(t, B("/a", "+Inf")) == 4);
	/* A value equal to a bound is in that bucket (le is "less or equal"). */
	assert_true(sample(t, B("unmatched", "0.0005")) == 0);
	assert_true(sample(t, B("unmatched", "0.001")) == 2);
	assert_true(sample(t, B("/b/:id", "0.25")) == 0);
	assert_true(sample(t, B("/b/:id", "0.5")) == 1);
#undef B
	expect_line(t, "grace_http_request_duration_seconds_sum{kernel=\"k\",route=\"/a\"} "
		       "20.022300000");
	expect_line(t, "grace_http_request_duration_seconds_count{kernel=\"k\",route=\"/a\"} 4");
	/* No histogram for a route with no requests. */
	expect_no_substring(t, "route=\"/idle\"");
	/* The HELP and TYPE lines come once each. */
	assert_int_equal(count_lines_with(t, "# TYPE grace_http_request_duration_seconds "), 1);
	assert_int_equal(count_lines_with(t, "# TYPE grace_http_requests_total "), 1);
}

static void test_label_escaping(void **state)
{
	struct fx *f = *state;
	char out[64];
	sdk_metrics_escape("plain", out, sizeof out);
	assert_string_equal(out, "plain");
	sdk_metrics_escape("a\"b\\c\nd", out, sizeof out);
	assert_string_equal(out, "a\\\"b\\\\c\\nd");
	sdk_metrics_escape("", out, sizeof out);
	assert_string_equal(out, "");
	/* Truncation stays within len and never splits an escape. */
	memset(out, 'Z', sizeof out);
	sdk_metrics_escape("\"\"\"\"\"\"", out, 6);
	assert_true(strlen(out) < 6);
	assert_int_equal(strlen(out) % 2, 0);
	assert_int_equal(out[6], 'Z');

	sdk_metrics_observe(f->m, 2, "GET", 200, 0.001);
	const char *t = render(f, "comp\"x\\y\nz");
	expect_line(t, "grace_http_requests_total{kernel=\"comp\\\"x\\\\y\\nz\","
		       "route=\"we\\\"ird\\\\ro\\nute\",method=\"GET\",status=\"200\"} 1");
	/* No raw quote or newline leaks into a label. */
	expect_no_substring(t, "ird\\ro");
	expect_no_substring(t, "comp\"");
}

static void test_unmatched(void **state)
{
	struct fx *f = *state;
	sdk_metrics_observe(f->m, -1, "GET", 404, 0.001);
	sdk_metrics_observe(f->m, -5, "GET", 404, 0.001);
	sdk_metrics_observe(f->m, (int)N_ROUTES, "GET", 404, 0.001);
	sdk_metrics_observe(f->m, 1000, "POST", 405, 0.001);
	const char *t = render(f, "c");
	expect_line(t, "grace_http_requests_total{kernel=\"c\",route=\"unmatched\","
		       "method=\"GET\",status=\"404\"} 3");
	expect_line(t, "grace_http_requests_total{kernel=\"c\",route=\"unmatched\","
		       "method=\"POST\",status=\"405\"} 1");
	assert_int_equal(count_lines_with(t, "grace_http_requests_total{"), 2);
	assert_int_equal(check_histogram(t, "c", "unmatched"), 4);
	for (size_t i = 0; i < N_ROUTES; i++) {
		char s[128];
		snprintf(s, sizeof s, "route=\"%s\"", routes[i]);
		expect_no_substring(t, s);
	}
}

static void test_long_method(void **state)
{
	struct fx *f = *state;
	/* A method longer than the 7 bytes kept: the same method must still be
	 * one series, counted up, not a new series per request. */
	for (int i = 0; i < 3; i++)
		sdk_metrics_observe(f->m, 0, "PROPFIND", 207, 0.001);
	const char *t = render(f, "c");
	assert_int_equal(count_lines_with(t, "grace_http_requests_total{"), 1);
}

static void test_process_metrics(void **state)
{
	struct fx *f = *state;
	const char *t = render(f, "p");
	/* With no requests the request metrics are declared but empty. */
	assert_int_equal(count_lines_with(t, "grace_http_requests_total{"), 0);
	assert_int_equal(count_lines_with(t, "grace_http_request_duration_seconds_"), 0);
	assert_true(sample(t, "process_resident_memory_bytes{kernel=\"p\"}") > 0);
	assert_true(sample(t, "process_open_fds{kernel=\"p\"}") >= 3);
	assert_true(sample(t, "process_max_fds{kernel=\"p\"}") >= 3);
	assert_true(sample(t, "process_start_time_seconds{kernel=\"p\"}") > 1e9);
	expect_line(t, "grace_uptime_seconds{kernel=\"p\"} 12.500");
	expect_line(t, "# TYPE process_resident_memory_bytes gauge");
	/* CPU time (this test has burnt some) and the build, labelled alike. */
	expect_line(t, "# TYPE process_cpu_seconds_total counter");
	assert_true(sample(t, "process_cpu_seconds_total{kernel=\"p\"}") >= 0);
	expect_line(t, "grace_build_info{kernel=\"p\",version=\"" GRACE_VERSION "\"} 1");
	/* One label names the process everywhere: no other spelling is left. */
	assert_null(strstr(t, "component="));
	/* Every line is a comment or a sample; the text ends with a newline. */
	assert_int_equal(t[strlen(t) - 1], '\n');
	for (const char *p = t; *p; p = strchr(p, '\n') + 1)
		assert_true(*p == '#' || (*p >= 'a' && *p <= 'z'));
}

static int find_in_path(const char *prog)
{
	const char *path = getenv("PATH");
	if (!path)
		return 0;
	char *dup = strdup(path), *save = NULL;
	int found = 0;
	for (char *dir = strtok_r(dup, ":", &save); dir && !found;
	     dir = strtok_r(NULL, ":", &save)) {
		char full[4096];
		snprintf(full, sizeof full, "%s/%s", *dir ? dir : ".", prog);
		found = access(full, X_OK) == 0;
	}
	free(dup);
	return found;
}

static void test_promtool(void **state)
{
	struct fx *f = *state;
	if (!find_in_path("promtool"))
		fail_msg("this test needs promtool (Debian: prometheus; scripts/bootstrap.sh "
			 "--test installs it)");
	observe_some(f->m);
	sdk_metrics_observe(f->m, 3, "HEAD", 304, 3.0);
	const char *t = render(f, "grace \"main\"\n");
	FILE *p = popen("promtool check metrics", "w");
	assert_non_null(p);
	size_t n = strlen(t);
	assert_int_equal(fwrite(t, 1, n, p), n);
	int status = pclose(p);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) != 0)
		fail_msg("promtool check metrics exited %d on:\n%s", WEXITSTATUS(status), t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_counters),
		T(test_histogram),
		T(test_label_escaping),
		T(test_unmatched),
		T(test_long_method),
		T(test_process_metrics),
		T(test_promtool),
#undef T
	};
	return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
