/* Unit tests for request framing checks (src/sdk/framing.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sdk/framing.h"

#define MAX_HEADERS 100

static int setup_headers(void **state)
{
	struct evkeyvalq *h = calloc(1, sizeof *h);
	if (!h)
		return -1;
	h->tqh_first = NULL;
	h->tqh_last = &h->tqh_first;
	*state = h;
	return 0;
}

static int teardown_headers(void **state)
{
	struct evkeyvalq *h = *state;
	evhttp_clear_headers(h);
	free(h);
	return 0;
}

static void add(struct evkeyvalq *h, const char *k, const char *v)
{
	assert_int_equal(evhttp_add_header(h, k, v), 0);
}

static void test_no_body_headers_ok(void **state)
{
	struct evkeyvalq *h = *state;
	assert_null(sdk_framing_check(h, MAX_HEADERS));
	add(h, "Host", "localhost");
	add(h, "Accept", "*/*");
	assert_null(sdk_framing_check(h, MAX_HEADERS));
}

static void test_content_length_ok(void **state)
{
	struct evkeyvalq *h = *state;
	static const char *const ok[] = { "0", "1", "12345", "000", "999999999999999999" };
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		add(h, "Host", "x");
		add(h, "Content-Length", ok[i]);
		const char *why = sdk_framing_check(h, MAX_HEADERS);
		if (why)
			fail_msg("Content-Length '%s' rejected: %s", ok[i], why);
		evhttp_clear_headers(h);
	}
	/* The header name is matched without regard to case. */
	add(h, "content-LENGTH", "5");
	assert_null(sdk_framing_check(h, MAX_HEADERS));
}

static void test_chunked_ok(void **state)
{
	struct evkeyvalq *h = *state;
	static const char *const names[] = { "Transfer-Encoding", "transfer-encoding",
					     "TRANSFER-ENCODING" };
	static const char *const values[] = { "chunked", "Chunked", "CHUNKED", "cHuNkEd" };
	for (size_t i = 0; i < 3; i++) {
		for (size_t j = 0; j < 4; j++) {
			add(h, names[i], values[j]);
			const char *why = sdk_framing_check(h, MAX_HEADERS);
			if (why)
				fail_msg("%s: %s rejected: %s", names[i], values[j], why);
			evhttp_clear_headers(h);
		}
	}
}

static void test_cl_and_te_rejected(void **state)
{
	struct evkeyvalq *h = *state;
	add(h, "Content-Length", "10");
	add(h, "Transfer-Encoding", "chunked");
	const char *why = sdk_framing_check(h, MAX_HEADERS);
	assert_non_null(why);
	assert_string_equal(why, "both Content-Length and Transfer-Encoding");
	evhttp_clear_headers(h);

	/* In either order and in any case. */
	add(h, "transfer-encoding", "chunked");
	add(h, "content-length", "0");
	assert_non_null(sdk_framing_check(h, MAX_HEADERS));
}

static void test_two_content_lengths_rejected(void **state)
{
	struct evkeyvalq *h = *state;
	add(h, "Content-Length", "5");
	add(h, "Content-Length", "5"); /* even when they agree */
	const char *why = sdk_framing_check(h, MAX_HEADERS);
	assert_non_null(why);
	assert_string_equal(why, "more than one Content-Length");
	evhttp_clear_headers(h);

	add(h, "Content-Length", "5");
	add(h, "content-length", "6");
	assert_non_null(sdk_framing_check(h, MAX_HEADERS));
}

static void test_bad_content_length_rejected(void **state)
{
	struct evkeyvalq *h = *state;
	static const char *const bad[] = {
		"",    "abc", "12abc", "-1",   "+1",  "0x10", "1 2", "1.5",
		"1e3", " ",   "１",    "1,2",
		"1000000000000000000", /* 19 digits: too large to be a body length */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		add(h, "Content-Length", bad[i]);
		const char *why = sdk_framing_check(h, MAX_HEADERS);
		if (!why)
			fail_msg("Content-Length '%s' accepted", bad[i]);
		assert_string_equal(why, "Content-Length is not a number");
		evhttp_clear_headers(h);
	}
}

static void test_te_other_than_chunked_rejected(void **state)
{
	struct evkeyvalq *h = *state;
	static const char *const bad[] = { "gzip",    "chunked, gzip", "gzip, chunked",
					   "identity", "chunkedx",     "chunked;x=1",
					   "",         "deflate" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		add(h, "Transfer-Encoding", bad[i]);
		const char *why = sdk_framing_check(h, MAX_HEADERS);
		if (!why)
			fail_msg("Transfer-Encoding '%s' accepted", bad[i]);
		assert_string_equal(why, "Transfer-Encoding other than chunked");
		evhttp_clear_headers(h);
	}
	/* Two Transfer-Encoding fields, even if both say chunked. */
	add(h, "Transfer-Encoding", "chunked");
	add(h, "Transfer-Encoding", "chunked");
	assert_non_null(sdk_framing_check(h, MAX_HEADERS));
}

static void test_too_many_headers_rejected(void **state)
{
	struct evkeyvalq *h = *state;
	char name[32];
	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof name, "X-H%d", i);
		add(h, name, "v");
	}
	/* Exactly the limit is fine, one over is not. */
	assert_null(sdk_framing_check(h, 10));
	const char *why = sdk_framing_check(h, 9);
	assert_non_null(why);
	assert_string_equal(why, "too many header fields");
	assert_non_null(sdk_framing_check(h, 0));
	assert_null(sdk_framing_check(h, MAX_HEADERS));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup_headers, teardown_headers)
		T(test_no_body_headers_ok),
		T(test_content_length_ok),
		T(test_chunked_ok),
		T(test_cl_and_te_rejected),
		T(test_two_content_lengths_rejected),
		T(test_bad_content_length_rejected),
		T(test_te_other_than_chunked_rejected),
		T(test_too_many_headers_rejected),
#undef T
	};
	return cmocka_run_group_tests_name("framing", tests, NULL, NULL);
}
