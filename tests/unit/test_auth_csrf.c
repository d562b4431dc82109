/* Unit tests for the session cookie's one parser (src/serve/auth/cookie.c),
 * the host and origin allow-lists (hosts.c) and the cross-site request
 * policy (csrf.c). Issue 8, finding 6; issue 9's "cookie-token parse twice
 * with different boundary checks". */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "serve/auth/cookie.h"
#include "serve/auth/csrf.h"
#include "serve/auth/hosts.h"

/* -- the cookie ------------------------------------------------------ */

static void test_cookie_token(void **state)
{
	(void)state;
	static const struct {
		const char *header, *token; /* token NULL: none */
	} cases[] = {
		{ "grace_session=abc", "abc" },
		{ "a=1; grace_session=abc; b=2", "abc" },
		{ "a=1;grace_session=abc", "abc" },
		{ "a=1;  \tgrace_session=abc  ", "abc" },
		{ "grace_session=A-z_09", "A-z_09" },
		/* Only a pair named exactly grace_session. */
		{ "xgrace_session=abc", NULL },
		{ "a=xgrace_session=abc", NULL },
		{ "my_grace_session=abc; other=1", NULL },
		{ "grace_sessionx=abc", NULL },
		{ "grace_session", NULL },
		{ "a=grace_session=abc", NULL },
		{ "x=1; xgrace_session=evil; grace_session=good", "good" },
		/* The first such pair decides. */
		{ "grace_session=first; grace_session=second", "first" },
		{ "grace_session=; grace_session=second", NULL },
		/* Values no token has. */
		{ "grace_session=\"abc\"", NULL },
		{ "grace_session=a b", NULL },
		{ "grace_session=a,b", NULL },
		{ "grace_session=a%20b", NULL },
		{ "", NULL },
		{ ";;;", NULL },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		char buf[65];
		const char *t = auth_cookie_token(cases[i].header, buf, sizeof buf);
		if (!cases[i].token != !t || (t && strcmp(t, cases[i].token)))
			fail_msg("'%s': got %s, want %s", cases[i].header, t ? t : "(none)",
				 cases[i].token ? cases[i].token : "(none)");
	}
	assert_null(auth_cookie_token(NULL, (char[8]){ 0 }, 8));
}

static void test_cookie_token_length(void **state)
{
	(void)state;
	char header[200], buf[44]; /* a 43-character token and its NUL */
	snprintf(header, sizeof header, "grace_session=%043d", 7);
	assert_non_null(auth_cookie_token(header, buf, sizeof buf));
	assert_int_equal(strlen(buf), 43);
	snprintf(header, sizeof header, "grace_session=%044d", 7);
	assert_null(auth_cookie_token(header, buf, sizeof buf));
}

static void test_presented_token(void **state)
{
	(void)state;
	char buf[65];
	bool by_cookie = true;
	const char *t = auth_presented_token("Bearer tok", "grace_session=c", buf, sizeof buf,
					     &by_cookie);
	assert_string_equal(t, "tok");
	assert_false(by_cookie);
	t = auth_presented_token(NULL, "grace_session=c", buf, sizeof buf, &by_cookie);
	assert_string_equal(t, "c");
	assert_true(by_cookie);
	t = auth_presented_token("Basic xyz", "grace_session=c", buf, sizeof buf, &by_cookie);
	assert_string_equal(t, "c");
	assert_true(by_cookie);
	assert_null(auth_presented_token(NULL, NULL, buf, sizeof buf, &by_cookie));
	assert_false(by_cookie);
	assert_null(auth_presented_token(NULL, "other=1", buf, sizeof buf, &by_cookie));
	assert_false(by_cookie);
}

static void test_cookie_set(void **state)
{
	(void)state;
	char out[128];
	assert_int_equal(auth_cookie_set(out, sizeof out, "tok", 60), 0);
	assert_string_equal(out, "grace_session=tok; HttpOnly; SameSite=Strict; Path=/; Max-Age=60");
	assert_true(auth_cookie_set(out, 10, "tok", 60) < 0);
}

/* -- allow-lists ----------------------------------------------------- */

static grace_config config(const char *allowed)
{
	grace_config cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.api_port = 8000;
	cfg.port_offset = 200;
	snprintf(cfg.auth.allowed_hosts, sizeof cfg.auth.allowed_hosts, "%s", allowed);
	return cfg;
}

static void test_hosts_default(void **state)
{
	(void)state;
	grace_config cfg = config("");
	auth_hosts hosts, origins;
	auth_hosts_init(&cfg, &hosts, &origins);
	for (const char *const *h = (const char *const[]){ "127.0.0.1", "localhost", "[::1]",
							    "127.0.0.1:8200", "LOCALHOST:8200",
							    "[::1]:8200", NULL };
	     *h; h++)
		assert_true(auth_hosts_has(&hosts, *h));
	assert_false(auth_hosts_has(&hosts, "localhost:8000"));
	assert_false(auth_hosts_has(&hosts, "evil.example"));
	/* Origins name the API's port: http://localhost is port 80's. */
	assert_true(auth_hosts_has(&origins, "localhost:8200"));
	assert_false(auth_hosts_has(&origins, "localhost"));
	assert_false(auth_hosts_has(&origins, "127.0.0.1"));
}

static void test_hosts_configured(void **state)
{
	(void)state;
	grace_config cfg = config("grace.example, 10.0.0.5:8443");
	auth_hosts hosts, origins;
	auth_hosts_init(&cfg, &hosts, &origins);
	assert_true(auth_hosts_has(&hosts, "grace.example"));
	assert_true(auth_hosts_has(&origins, "grace.example"));
	assert_true(auth_hosts_has(&origins, "10.0.0.5:8443"));
	assert_false(auth_hosts_has(&hosts, "localhost"));
	assert_false(auth_hosts_has(&origins, "localhost:8200"));
}

/* -- the policy ------------------------------------------------------ */

static void test_content_type(void **state)
{
	(void)state;
	assert_true(auth_content_type_json("application/json"));
	assert_true(auth_content_type_json("Application/JSON"));
	assert_true(auth_content_type_json("application/json; charset=utf-8"));
	assert_true(auth_content_type_json("application/json ;charset=utf-8"));
	assert_false(auth_content_type_json(NULL));
	assert_false(auth_content_type_json(""));
	assert_false(auth_content_type_json("text/plain"));
	assert_false(auth_content_type_json("text/plain; a=application/json"));
	assert_false(auth_content_type_json("application/jsonx"));
	assert_false(auth_content_type_json("application/json-seq"));
	assert_false(auth_content_type_json("application/x-www-form-urlencoded"));
	assert_false(auth_content_type_json("multipart/form-data; boundary=x"));
}

static void test_origin(void **state)
{
	(void)state;
	grace_config cfg = config("");
	auth_hosts hosts, origins;
	auth_hosts_init(&cfg, &hosts, &origins);
	assert_true(auth_origin_allowed(&origins, "http://127.0.0.1:8200"));
	assert_true(auth_origin_allowed(&origins, "http://localhost:8200"));
	assert_true(auth_origin_allowed(&origins, "http://[::1]:8200"));
	assert_true(auth_origin_allowed(&origins, "HTTP://LOCALHOST:8200"));
	assert_false(auth_origin_allowed(&origins, "http://localhost:9999")); /* same site */
	assert_false(auth_origin_allowed(&origins, "http://localhost"));
	assert_false(auth_origin_allowed(&origins, "http://localhost:8200/"));
	assert_false(auth_origin_allowed(&origins, "http://user@localhost:8200"));
	assert_false(auth_origin_allowed(&origins, "null"));
	assert_false(auth_origin_allowed(&origins, "file://localhost:8200"));
	assert_false(auth_origin_allowed(&origins, "localhost:8200"));
	assert_false(auth_origin_allowed(&origins, "http://localhost:8200.evil.example"));
	assert_false(auth_origin_allowed(&origins, ""));
}

static void test_csrf_cookie(void **state)
{
	(void)state;
	grace_config cfg = config("");
	auth_hosts hosts, origins;
	auth_hosts_init(&cfg, &hosts, &origins);
	const char *own = "http://127.0.0.1:8200", *evil = "http://localhost:9999";
	static const char json[] = "application/json", text[] = "text/plain";
	static const struct {
		const char *method, *origin, *site, *type;
		int want;
	} cases[] = {
		/* Reads are never refused. */
		{ "GET", "http://localhost:9999", "cross-site", NULL, 0 },
		{ "HEAD", NULL, NULL, NULL, 0 },
		{ "OPTIONS", "null", NULL, NULL, 0 },
		/* Changes: the API's own page, with JSON. */
		{ "POST", "OWN", NULL, json, 0 },
		{ "DELETE", "OWN", NULL, json, 0 },
		{ "PATCH", NULL, "same-origin", json, 0 },
		{ "PUT", NULL, "Same-Origin", "application/json; charset=utf-8", 0 },
		/* ... and nothing else. */
		{ "POST", "EVIL", NULL, text, SDK_EDENIED },
		{ "POST", "EVIL", NULL, json, SDK_EDENIED },
		{ "POST", "EVIL", "same-origin", json, SDK_EDENIED }, /* Origin wins */
		{ "POST", "null", NULL, json, SDK_EDENIED },
		{ "POST", NULL, NULL, json, SDK_EDENIED },
		{ "POST", NULL, "same-site", json, SDK_EDENIED },
		{ "POST", NULL, "cross-site", json, SDK_EDENIED },
		{ "POST", NULL, "none", json, SDK_EDENIED },
		{ "POST", "OWN", NULL, text, SDK_EDENIED },
		{ "POST", "OWN", NULL, NULL, SDK_EDENIED },
		{ "DELETE", "OWN", NULL, NULL, SDK_EDENIED },
		{ "POST", NULL, "same-origin", "application/x-www-form-urlencoded", SDK_EDENIED },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		const char *origin = cases[i].origin;
		if (origin && !strcmp(origin, "OWN"))
			origin = own;
		else if (origin && !strcmp(origin, "EVIL"))
			origin = evil;
		auth_csrf_in in = { cases[i].method, origin, cases[i].site, cases[i].type };
		sdk_err err = { "" };
		int got = auth_csrf_cookie(&origins, &in, &err);
		if (got != cases[i].want)
			fail_msg("case %zu (%s, %s, %s, %s): %d, want %d", i, cases[i].method,
				 origin ? origin : "-", cases[i].site ? cases[i].site : "-",
				 cases[i].type ? cases[i].type : "-", got, cases[i].want);
		if (got < 0 && !err.msg[0])
			fail_msg("case %zu refused without a reason", i);
	}
}

static void test_csrf_anonymous(void **state)
{
	(void)state;
	grace_config cfg = config("");
	auth_hosts hosts, origins;
	auth_hosts_init(&cfg, &hosts, &origins);
	sdk_err err;
	/* Not a browser (curl -d, the CLI): as before. */
	auth_csrf_in in = { "POST", NULL, NULL, "application/x-www-form-urlencoded" };
	assert_int_equal(auth_csrf_anonymous(&origins, &in, &err), 0);
	in = (auth_csrf_in){ "POST", "http://localhost:8200", NULL, "application/json" };
	assert_int_equal(auth_csrf_anonymous(&origins, &in, &err), 0);
	in = (auth_csrf_in){ "POST", NULL, "same-origin", "text/plain" };
	assert_int_equal(auth_csrf_anonymous(&origins, &in, &err), 0);
	in = (auth_csrf_in){ "POST", NULL, "none", NULL };
	assert_int_equal(auth_csrf_anonymous(&origins, &in, &err), 0);
	/* A page of another origin. */
	in = (auth_csrf_in){ "POST", "http://localhost:9999", NULL, "text/plain" };
	assert_int_equal(auth_csrf_anonymous(&origins, &in, &err), SDK_EDENIED);
	in = (auth_csrf_in){ "POST", "null", NULL, "application/json" };
	assert_int_equal(auth_csrf_anonymous(&origins, &in, &err), SDK_EDENIED);
	in = (auth_csrf_in){ "POST", NULL, "cross-site", "text/plain" };
	assert_int_equal(auth_csrf_anonymous(&origins, &in, &err), SDK_EDENIED);
	in = (auth_csrf_in){ "POST", NULL, "same-site", "text/plain" };
	assert_int_equal(auth_csrf_anonymous(&origins, &in, &err), SDK_EDENIED);
	in = (auth_csrf_in){ "GET", "http://localhost:9999", "cross-site", NULL };
	assert_int_equal(auth_csrf_anonymous(&origins, &in, &err), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cookie_token),
		cmocka_unit_test(test_cookie_token_length),
		cmocka_unit_test(test_presented_token),
		cmocka_unit_test(test_cookie_set),
		cmocka_unit_test(test_hosts_default),
		cmocka_unit_test(test_hosts_configured),
		cmocka_unit_test(test_content_type),
		cmocka_unit_test(test_origin),
		cmocka_unit_test(test_csrf_cookie),
		cmocka_unit_test(test_csrf_anonymous),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
