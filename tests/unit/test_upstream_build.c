/* The upstream client's request head (src/sdk/upstream.c): a header that
 * could split the request refuses it before anything is sent. */
#include "sdk/upstream.h"

#include <event2/event.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

static int dropped;

static void on_head(sdk_ureq *u, const sdk_http_head *h, void *arg) { (void)u, (void)h, (void)arg; }
static void on_body(sdk_ureq *u, struct evbuffer *d, bool last, void *arg)
{
	(void)u, (void)d, (void)last, (void)arg;
}
static void on_error(sdk_ureq *u, int err, const char *why, void *arg)
{
	(void)u, (void)err, (void)why, (void)arg;
}
static void on_drop(void *arg) { (void)arg, dropped++; }
static const sdk_ureq_cbs cbs = { on_head, on_body, on_error, on_drop };

static int no_kernel(const char *name, void *arg) { (void)name, (void)arg; return -1; }

/* Whether a GET with these header pairs starts. */
static bool starts(const char *const *headers)
{
	struct event_base *base = event_base_new();
	sdk_upstream *up = sdk_upstream_new(base, no_kernel, NULL, 4, 16);
	assert_non_null(up);
	/* Port 1 on loopback: nothing listens; the request never gets far. */
	sdk_ureq_opts o = { .port = 1, .method = "GET", .target = "/health", .headers = headers };
	dropped = 0;
	bool ok = sdk_upstream_request(up, &o, &cbs, NULL) != NULL;
	sdk_upstream_free(up);
	assert_int_equal(dropped, ok ? 1 : 0);
	event_base_free(base);
	return ok;
}

static void test_good_headers_start(void **state)
{
	(void)state;
	const char *none[] = { NULL };
	assert_true(starts(none));
	const char *h[] = { "X-Request-Id", "abc", "traceparent",
			    "00-7021b2c8cbba1e96d78a5c96c5cb9bb9-1ef6ec1a5643af3a-00",
			    "X-Tabbed", "a\tb", "X-Utf8", "caf\xc3\xa9", "X-Empty", "", NULL };
	assert_true(starts(h));
}

static void test_splitting_headers_refused(void **state)
{
	(void)state;
	static const char *const bad[][3] = {
		{ "X-A", "v\r\nInjected: 1", NULL },
		{ "X-A", "v\nInjected: 1", NULL },
		{ "X-A", "v\r", NULL },
		{ "X-A: 1\r\nX-B", "v", NULL },
		{ "X-A:", "v", NULL },
		{ "X-A\n", "v", NULL },
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		if (starts(bad[i]))
			fail_msg("started with header %zu: '%s: %s'", i, bad[i][0], bad[i][1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_headers_start),
		cmocka_unit_test(test_splitting_headers_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
