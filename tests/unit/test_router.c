/* Unit tests for the route table matcher (src/sdk/router.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "sdk/router.h"

#define N(t) (sizeof(t) / sizeof((t)[0]))

/* sdk_route_params is ~16 KiB: keep it off the test's stack. */
static int setup_params(void **state)
{
	*state = calloc(1, sizeof(sdk_route_params));
	return *state ? 0 : -1;
}

static int teardown_params(void **state)
{
	free(*state);
	return 0;
}

static int match(const sdk_route_pattern *t, size_t n, const char *method, const char *path,
		 sdk_route_params *p)
{
	return sdk_route_match(t, n, sizeof *t, method, path, p);
}

static void test_literal(void **state)
{
	sdk_route_params *p = *state;
	static const sdk_route_pattern t[] = {
		{ "GET", "/" },
		{ "GET", "/health" },
		{ "GET", "/kernels/list" },
	};
	assert_int_equal(match(t, N(t), "GET", "/", p), 0);
	assert_int_equal(p->n, 0);
	assert_int_equal(match(t, N(t), "GET", "/health", p), 1);
	assert_int_equal(p->n, 0);
	assert_int_equal(match(t, N(t), "GET", "/kernels/list", p), 2);
	/* Prefixes and extensions of a literal are different paths. */
	assert_int_equal(match(t, N(t), "GET", "/heal", p), SDK_ROUTE_NOT_FOUND);
	assert_int_equal(match(t, N(t), "GET", "/healthz", p), SDK_ROUTE_NOT_FOUND);
	assert_int_equal(match(t, N(t), "GET", "/health/x", p), SDK_ROUTE_NOT_FOUND);
	assert_int_equal(match(t, N(t), "GET", "/kernels", p), SDK_ROUTE_NOT_FOUND);
	assert_int_equal(match(t, N(t), "GET", "/Health", p), SDK_ROUTE_NOT_FOUND);
	assert_int_equal(match(t, N(t), "GET", "", p), SDK_ROUTE_NOT_FOUND);
	assert_int_equal(match(t, N(t), "GET", "health", p), SDK_ROUTE_NOT_FOUND);
	assert_int_equal(match(t, 0, "GET", "/", p), SDK_ROUTE_NOT_FOUND);
}

static void test_params(void **state)
{
	sdk_route_params *p = *state;
	static const sdk_route_pattern t[] = {
		{ "GET", "/kernels/:name" },
		{ "GET", "/kernels/:name/logs/:n" },
	};
	assert_int_equal(match(t, N(t), "GET", "/kernels/librarian", p), 0);
	assert_int_equal(p->n, 1);
	assert_string_equal(sdk_route_param(p, "name"), "librarian");
	assert_null(sdk_route_param(p, "n"));
	assert_null(sdk_route_param(p, "nam"));

	assert_int_equal(match(t, N(t), "GET", "/kernels/crypto/logs/42", p), 1);
	assert_int_equal(p->n, 2);
	assert_int_equal(p->p[0].name_len, 4);
	assert_memory_equal(p->p[0].name, "name", 4);
	assert_string_equal(p->buf + p->p[0].value_at, "crypto");
	assert_string_equal(sdk_route_param(p, "name"), "crypto");
	assert_string_equal(sdk_route_param(p, "n"), "42");

	/* A parameter is one non-empty segment. */
	assert_int_equal(match(t, N(t), "GET", "/kernels/", p), SDK_ROUTE_NOT_FOUND);
	assert_int_equal(match(t, N(t), "GET", "/kernels", p), SDK_ROUTE_NOT_FOUND);
	assert_int_equal(match(t, N(t), "GET", "/kernels//logs/1", p), SDK_ROUTE_NOT_FOUND);
	assert_int_equal(match(t, N(t), "GET", "/kernels/a/b", p), SDK_ROUTE_NOT_FOUND);
	assert_int_equal(match(t, N(t), "GET", "/kernels/a/logs/", p), SDK_ROUTE_NOT_FOUND);
}

static void test_star(void **state)
{
	sdk_route_params *p = *state;
	static const sdk_route_pattern t[] = {
		{ "GET", "/static/*" },
		{ "GET", "/k/:name/*" },
	};
	assert_int_equal(match(t, N(t), "GET", "/static/css/site.css", p), 0);
	assert_int_equal(p->n, 1);
	assert_string_equal(sdk_route_param(p, "*"), "css/site.css");

	assert_int_equal(match(t, N(t), "GET", "/static/a", p), 0);
	assert_string_equal(sdk_route_param(p, "*"), "a");

	/* The rest may be empty ... */
	assert_int_equal(match(t, N(t), "GET", "/static/", p), 0);
	assert_int_equal(p->n, 1);
	assert_string_equal(sdk_route_param(p, "*"), "");
	/* ... and keeps slashes as they are. */
	assert_int_equal(match(t, N(t), "GET", "/static//x/", p), 0);
	assert_string_equal(sdk_route_param(p, "*"), "/x/");

	/* Without the slash before it, there is no rest to capture. */
	assert_int_equal(match(t, N(t), "GET", "/static", p), SDK_ROUTE_NOT_FOUND);
	assert_int_equal(match(t, N(t), "GET", "/staticx/y", p), SDK_ROUTE_NOT_FOUND);

	assert_int_equal(match(t, N(t), "GET", "/k/librarian/docs/a.md", p), 1);
	assert_int_equal(p->n, 2);
	assert_string_equal(sdk_route_param(p, "name"), "librarian");
	assert_string_equal(sdk_route_param(p, "*"), "docs/a.md");
	assert_int_equal(match(t, N(t), "GET", "/k/librarian/", p), 1);
	assert_string_equal(sdk_route_param(p, "*"), "");
}

static void test_star_only_when_final(void **state)
{
	sdk_route_params *p = *state;
	/* A '*' that is not the last segment is a literal segment. */
	static const sdk_route_pattern t[] = { { "GET", "/a/*/b" } };
	assert_int_equal(match(t, N(t), "GET", "/a/*/b", p), 0);
	assert_int_equal(p->n, 0);
	assert_int_equal(match(t, N(t), "GET", "/a/x/b", p), SDK_ROUTE_NOT_FOUND);
}

static void test_method(void **state)
{
	sdk_route_params *p = *state;
	static const sdk_route_pattern t[] = {
		{ "GET", "/items/:id" },
		{ "POST", "/items" },
	};
	p->n = 77; /* a sentinel: nothing is written unless a route matches */
	assert_int_equal(match(t, N(t), "DELETE", "/items/3", p), SDK_ROUTE_BAD_METHOD);
	assert_int_equal(p->n, 77);
	assert_int_equal(match(t, N(t), "GET", "/items", p), SDK_ROUTE_BAD_METHOD);
	assert_int_equal(p->n, 77);
	/* Methods are compared exactly. */
	assert_int_equal(match(t, N(t), "get", "/items/3", p), SDK_ROUTE_BAD_METHOD);
	/* A path no route has is not found, whatever the method. */
	assert_int_equal(match(t, N(t), "DELETE", "/nothing", p), SDK_ROUTE_NOT_FOUND);
	assert_int_equal(match(t, N(t), "GET", "/nothing", p), SDK_ROUTE_NOT_FOUND);
	assert_int_equal(p->n, 77);

	assert_int_equal(match(t, N(t), "GET", "/items/3", p), 0);
	assert_string_equal(sdk_route_param(p, "id"), "3");
	assert_int_equal(match(t, N(t), "POST", "/items", p), 1);
	assert_int_equal(p->n, 0);
}

/* The methods a path allows, for a 405's Allow: HEAD goes with GET. */
static void test_allowed(void **state)
{
	(void)state;
	static const sdk_route_pattern t[] = {
		{ "GET", "/items/:id" },
		{ "DELETE", "/items/:id" },
		{ "POST", "/items" },
		{ NULL, "/any/*" },
		{ "PATCH", "/items/:id" },
	};
	char allow[64];
	sdk_route_allowed(t, N(t), sizeof *t, "/items/3", allow, sizeof allow);
	assert_string_equal(allow, "GET, HEAD, DELETE, PATCH");
	sdk_route_allowed(t, N(t), sizeof *t, "/items", allow, sizeof allow);
	assert_string_equal(allow, "POST");
	sdk_route_allowed(t, N(t), sizeof *t, "/nothing", allow, sizeof allow);
	assert_string_equal(allow, "");
	/* A buffer too small keeps whole names only. */
	char small[12];
	sdk_route_allowed(t, N(t), sizeof *t, "/items/3", small, sizeof small);
	assert_string_equal(small, "GET, HEAD");
}

static void test_null_method_matches_any(void **state)
{
	sdk_route_params *p = *state;
	static const sdk_route_pattern t[] = {
		{ "GET", "/x" },
		{ NULL, "/any/:v" },
	};
	static const char *const methods[] = { "GET", "POST", "PUT", "DELETE", "PATCH", "X" };
	for (size_t i = 0; i < N(methods); i++) {
		assert_int_equal(match(t, N(t), methods[i], "/any/1", p), 1);
		assert_string_equal(sdk_route_param(p, "v"), "1");
	}
	assert_int_equal(match(t, N(t), "POST", "/x", p), SDK_ROUTE_BAD_METHOD);
}

static void test_first_match_wins(void **state)
{
	sdk_route_params *p = *state;
	static const sdk_route_pattern t[] = {
		{ "GET", "/users/me" },
		{ "GET", "/users/:id" },
		{ NULL, "/users/:other" },
		{ "GET", "/*" },
	};
	assert_int_equal(match(t, N(t), "GET", "/users/me", p), 0);
	assert_int_equal(p->n, 0);
	assert_int_equal(match(t, N(t), "GET", "/users/7", p), 1);
	assert_string_equal(sdk_route_param(p, "id"), "7");
	assert_null(sdk_route_param(p, "other"));
	/* A method mismatch on an earlier route does not stop a later match, and
	 * the params are those of the route that matched. */
	assert_int_equal(match(t, N(t), "POST", "/users/me", p), 2);
	assert_int_equal(p->n, 1);
	assert_string_equal(sdk_route_param(p, "other"), "me");
	assert_int_equal(match(t, N(t), "GET", "/zzz", p), 3);
	assert_string_equal(sdk_route_param(p, "*"), "zzz");
	assert_int_equal(match(t, N(t), "POST", "/zzz", p), SDK_ROUTE_BAD_METHOD);
}

static void test_stride(void **state)
{
	sdk_route_params *p = *state;
	/* A larger table whose entries begin with a pattern. */
	static const struct {
		sdk_route_pattern pat;
		int handler;
		char pad[40];
	} t[] = {
		{ { "GET", "/a" }, 10, "" },
		{ { "GET", "/b/:x" }, 11, "" },
		{ { "PUT", "/c" }, 12, "" },
	};
	assert_int_equal(sdk_route_match(t, N(t), sizeof t[0], "GET", "/b/q", p), 1);
	assert_int_equal(t[1].handler, 11);
	assert_string_equal(sdk_route_param(p, "x"), "q");
	assert_int_equal(sdk_route_match(t, N(t), sizeof t[0], "PUT", "/c", p), 2);
	assert_int_equal(sdk_route_match(t, N(t), sizeof t[0], "GET", "/c", p),
			 SDK_ROUTE_BAD_METHOD);
	/* Only n entries are looked at. */
	assert_int_equal(sdk_route_match(t, 2, sizeof t[0], "PUT", "/c", p), SDK_ROUTE_NOT_FOUND);
}

static void test_trailing_slash(void **state)
{
	sdk_route_params *p = *state;
	static const sdk_route_pattern t[] = {
		{ "GET", "/a" },
		{ "GET", "/b/" },
		{ "GET", "/p/:id" },
	};
	/* A trailing slash is significant, on either side. */
	assert_int_equal(match(t, N(t), "GET", "/a", p), 0);
	assert_int_equal(match(t, N(t), "GET", "/a/", p), SDK_ROUTE_NOT_FOUND);
	assert_int_equal(match(t, N(t), "GET", "/b/", p), 1);
	assert_int_equal(match(t, N(t), "GET", "/b", p), SDK_ROUTE_NOT_FOUND);
	assert_int_equal(match(t, N(t), "GET", "/p/1", p), 2);
	assert_int_equal(match(t, N(t), "GET", "/p/1/", p), SDK_ROUTE_NOT_FOUND);
	assert_int_equal(match(t, N(t), "GET", "//a", p), SDK_ROUTE_NOT_FOUND);
}

static void test_too_long(void **state)
{
	sdk_route_params *p = *state;
	static const sdk_route_pattern t[] = {
		{ "GET", "/v/:value" },
		{ "GET", "/s/*" },
	};
	char *path = malloc(SDK_PATH_MAX + 16);
	assert_non_null(path);

	/* The longest value a parameter holds: SDK_PATH_MAX - 1 bytes. */
	memcpy(path, "/v/", 3);
	memset(path + 3, 'a', SDK_PATH_MAX - 1);
	path[3 + SDK_PATH_MAX - 1] = '\0';
	assert_int_equal(match(t, N(t), "GET", path, p), 0);
	assert_int_equal(strlen(sdk_route_param(p, "value")), SDK_PATH_MAX - 1);
	/* One more and the route does not match. */
	memset(path + 3, 'a', SDK_PATH_MAX);
	path[3 + SDK_PATH_MAX] = '\0';
	assert_int_equal(match(t, N(t), "GET", path, p), SDK_ROUTE_NOT_FOUND);

	/* The same for a trailing '*'. */
	memcpy(path, "/s/", 3);
	memset(path + 3, 'b', SDK_PATH_MAX - 1);
	path[3 + SDK_PATH_MAX - 1] = '\0';
	assert_int_equal(match(t, N(t), "GET", path, p), 1);
	assert_int_equal(strlen(sdk_route_param(p, "*")), SDK_PATH_MAX - 1);
	memset(path + 3, 'b', SDK_PATH_MAX);
	path[3 + SDK_PATH_MAX] = '\0';
	assert_int_equal(match(t, N(t), "GET", path, p), SDK_ROUTE_NOT_FOUND);
	free(path);

	/* A parameter name holds at most 31 bytes. */
	static const sdk_route_pattern names[] = {
		{ "GET", "/n/:abcdefghijklmnopqrstuvwxyz012345" }, /* 32 bytes */
		{ "GET", "/n/:abcdefghijklmnopqrstuvwxyz01234/x" }, /* 31 bytes */
	};
	assert_int_equal(strlen(names[0].path), 4 + 32);
	assert_int_equal(match(names, N(names), "GET", "/n/v", p), SDK_ROUTE_NOT_FOUND);
	assert_int_equal(match(names, N(names), "GET", "/n/v/x", p), 1);
	assert_string_equal(sdk_route_param(p, "abcdefghijklmnopqrstuvwxyz01234"), "v");
}

static void test_param_count_limit(void **state)
{
	sdk_route_params *p = *state;
	assert_int_equal(SDK_ROUTE_PARAMS_MAX, 8);
	static const sdk_route_pattern eight[] = { { "GET", "/:a/:b/:c/:d/:e/:f/:g/:h" } };
	static const sdk_route_pattern nine[] = { { "GET", "/:a/:b/:c/:d/:e/:f/:g/:h/:i" } };
	static const sdk_route_pattern eight_star[] = { { "GET", "/:a/:b/:c/:d/:e/:f/:g/:h/*" } };

	assert_int_equal(match(eight, 1, "GET", "/1/2/3/4/5/6/7/8", p), 0);
	assert_int_equal(p->n, 8);
	assert_string_equal(sdk_route_param(p, "a"), "1");
	assert_string_equal(sdk_route_param(p, "h"), "8");
	assert_int_equal(match(nine, 1, "GET", "/1/2/3/4/5/6/7/8/9", p), SDK_ROUTE_NOT_FOUND);
	assert_int_equal(match(eight_star, 1, "GET", "/1/2/3/4/5/6/7/8/9", p),
			 SDK_ROUTE_NOT_FOUND);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup_params, teardown_params)
		T(test_literal),
		T(test_params),
		T(test_star),
		T(test_star_only_when_final),
		T(test_method),
		T(test_allowed),
		T(test_null_method_matches_any),
		T(test_first_match_wins),
		T(test_stride),
		T(test_trailing_slash),
		T(test_too_long),
		T(test_param_count_limit),
#undef T
	};
	return cmocka_run_group_tests_name("router", tests, NULL, NULL);
}
