/* Unit tests for what the audit trail makes of a request
 * (src/serve/outbox/classify.c): its class, the noise kinds, the requests
 * always admitted, and the clipped form of a path. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "serve/outbox/classify.h"

static void test_reads_are_not_recorded(void **state)
{
	(void)state;
	const char *reads[] = { "GET", "HEAD", "OPTIONS" };
	for (size_t i = 0; i < 3; i++) {
		assert_false(ob_changes_state(reads[i]));
		assert_int_equal(ob_classify_request(reads[i], "/x", 401, false), OB_NONE);
		assert_int_equal(ob_classify_request(reads[i], "/x", 200, true), OB_NONE);
	}
	assert_true(ob_changes_state("POST"));
	assert_true(ob_changes_state("PATCH"));
	assert_true(ob_changes_state("OTHER"));
}

static void test_logged_in_callers_are_security(void **state)
{
	(void)state;
	int statuses[] = { 200, 201, 202, 400, 403, 404, 405, 409, 500, 502, 503 };
	for (size_t i = 0; i < sizeof statuses / sizeof *statuses; i++) {
		assert_int_equal(ob_classify_request("POST", "/auth/users", statuses[i], true),
				 OB_SECURITY);
		assert_int_equal(ob_classify_request("DELETE", "/kernels/crypto/keys/k", statuses[i],
						     true),
				 OB_SECURITY);
	}
	/* Even a login made with a session is the caller's. */
	assert_int_equal(ob_classify_request("POST", "/auth/login", 200, true), OB_SECURITY);
}

static void test_anonymous_refusals_are_noise(void **state)
{
	(void)state;
	int statuses[] = { 400, 401, 404, 405, 413, 421, 429, 503 };
	for (size_t i = 0; i < sizeof statuses / sizeof *statuses; i++) {
		assert_int_equal(ob_classify_request("POST", "/x", statuses[i], false), OB_NOISE);
		assert_int_equal(ob_classify_request("PUT", "/kernel-ports/a/stop", statuses[i], false),
				 OB_NOISE);
	}
	/* A login refused before it checked anything is noise too. */
	assert_int_equal(ob_classify_request("POST", "/auth/login", 400, false), OB_NOISE);
	assert_int_equal(ob_classify_request("POST", "/auth/login", 429, false), OB_NOISE);
	assert_int_equal(ob_classify_request("POST", "/auth/login", 503, false), OB_NOISE);
}

static void test_logins_record_themselves(void **state)
{
	(void)state;
	assert_int_equal(ob_classify_request("POST", "/auth/login", 200, false), OB_NONE);
	assert_int_equal(ob_classify_request("POST", "/auth/login", 401, false), OB_NONE);
	assert_true(ob_is_failed_login("auth.login", "failed"));
	assert_false(ob_is_failed_login("auth.login", "ok"));
	assert_false(ob_is_failed_login("POST /auth/login", "failed"));
	assert_false(ob_is_failed_login(NULL, "failed"));
}

static void test_anonymous_success_is_security(void **state)
{
	(void)state;
	/* Self-registration acts without a session: it is kept. */
	assert_int_equal(ob_classify_request("POST", "/auth/register", 201, false), OB_SECURITY);
	assert_int_equal(ob_classify_request("POST", "/anything", 204, false), OB_SECURITY);
	assert_int_equal(ob_classify_request("POST", "/auth/register", 403, false), OB_NOISE);
}

static void test_noise_kinds_are_few(void **state)
{
	(void)state;
	char k[OB_KIND_MAX];
	ob_noise_kind("POST", 401, k);
	assert_string_equal(k, "POST 401");
	ob_noise_kind("PATCH", 405, k);
	assert_string_equal(k, "PATCH 405");
	ob_noise_kind("BREW", 400, k);
	assert_string_equal(k, "OTHER 400");
	ob_noise_kind("POST", 123456, k);
	assert_string_equal(k, "POST 0");
	ob_noise_kind("OPTIONS", 999, k);
	assert_true(strlen(k) < OB_KIND_MAX);
}

static void test_admitted_always(void **state)
{
	(void)state;
	assert_true(ob_admit_always("POST", "/auth/login"));
	assert_true(ob_admit_always("POST", "/kernel-ports/audit/start"));
	assert_true(ob_admit_always("POST", "/kernel-ports/audit_kernel/restart"));
	assert_false(ob_admit_always("POST", "/kernel-ports/audit/stop"));
	assert_false(ob_admit_always("POST", "/kernel-ports/trust/start"));
	assert_false(ob_admit_always("GET", "/auth/login"));
	assert_false(ob_admit_always("POST", "/auth/login/"));
	assert_false(ob_admit_always("POST", "/auth/users"));
}

static void assert_valid_utf8(const char *s)
{
	json_t *j = json_string(s);
	assert_non_null(j);
	json_decref(j);
}

static void test_clip_short_paths_unchanged(void **state)
{
	(void)state;
	char out[OB_PATH_MAX + 1];
	assert_string_equal(ob_path_clip("/auth/users", OB_PATH_MAX, out), "/auth/users");
	assert_string_equal(ob_path_clip("", OB_PATH_MAX, out), "");
	assert_string_equal(ob_path_clip(NULL, OB_PATH_MAX, out), "");
	assert_string_equal(ob_path_clip("/caf\xc3\xa9/\xe2\x82\xac", OB_PATH_MAX, out),
			    "/caf\xc3\xa9/\xe2\x82\xac");
}

static void test_clip_escapes_what_is_not_utf8(void **state)
{
	(void)state;
	char out[OB_PATH_MAX + 1];
	assert_string_equal(ob_path_clip("/x\xffy", OB_PATH_MAX, out), "/x%FFy");
	assert_string_equal(ob_path_clip("/a\nb\x7f", OB_PATH_MAX, out), "/a%0Ab%7F");
	/* Overlong, surrogate, past U+10FFFF, truncated sequences. */
	assert_string_equal(ob_path_clip("\xc0\xaf", OB_PATH_MAX, out), "%C0%AF");
	assert_string_equal(ob_path_clip("\xed\xa0\x80", OB_PATH_MAX, out), "%ED%A0%80");
	assert_string_equal(ob_path_clip("\xf4\x90\x80\x80", OB_PATH_MAX, out), "%F4%90%80%80");
	assert_string_equal(ob_path_clip("/\xe2\x82", OB_PATH_MAX, out), "/%E2%82");
	assert_string_equal(ob_path_clip("\xf0\x9f\x98\x80", OB_PATH_MAX, out), "\xf0\x9f\x98\x80");
	assert_valid_utf8(out);
}

static void test_clip_long_paths_with_marker(void **state)
{
	(void)state;
	char path[2048], out[OB_PATH_MAX + 1];
	memset(path, 'a', 2047);
	path[0] = '/';
	path[2047] = '\0';
	ob_path_clip(path, OB_PATH_MAX, out);
	assert_true(strlen(out) <= OB_PATH_MAX);
	const char *m = strstr(out, "...[+");
	assert_non_null(m);
	size_t kept = (size_t)(m - out);
	char want[64];
	snprintf(want, sizeof want, "...[+%zu bytes]", 2047 - kept);
	assert_string_equal(m, want);
	assert_int_equal(strncmp(out, path, kept), 0);

	/* Exactly max fits whole; one more byte is cut. */
	path[OB_PATH_MAX] = '\0';
	assert_string_equal(ob_path_clip(path, OB_PATH_MAX, out), path);
	path[OB_PATH_MAX] = 'a';
	path[OB_PATH_MAX + 1] = '\0';
	assert_non_null(strstr(ob_path_clip(path, OB_PATH_MAX, out), "...[+"));
}

static void test_clip_never_splits_a_character(void **state)
{
	(void)state;
	/* Three-byte characters and escapes across every cut position. */
	char path[1600], out[OB_SAMPLE_MAX + 1];
	for (size_t shift = 0; shift < 4; shift++) {
		size_t n = 0;
		for (size_t i = 0; i < shift; i++)
			path[n++] = 'x';
		while (n + 4 < sizeof path) {
			memcpy(path + n, "\xe2\x82\xac\x01", 4);
			n += 4;
		}
		path[n] = '\0';
		ob_path_clip(path, OB_SAMPLE_MAX, out);
		assert_true(strlen(out) <= OB_SAMPLE_MAX);
		assert_non_null(strstr(out, " bytes]"));
		assert_valid_utf8(out);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reads_are_not_recorded),
		cmocka_unit_test(test_logged_in_callers_are_security),
		cmocka_unit_test(test_anonymous_refusals_are_noise),
		cmocka_unit_test(test_logins_record_themselves),
		cmocka_unit_test(test_anonymous_success_is_security),
		cmocka_unit_test(test_noise_kinds_are_few),
		cmocka_unit_test(test_admitted_always),
		cmocka_unit_test(test_clip_short_paths_unchanged),
		cmocka_unit_test(test_clip_escapes_what_is_not_utf8),
		cmocka_unit_test(test_clip_long_paths_with_marker),
		cmocka_unit_test(test_clip_never_splits_a_character),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
