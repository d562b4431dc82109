/* Unit tests of the API token store (src/serve/auth/tokens.c): scopes,
 * creation with the secret shown once and only its hash stored, checks
 * (revoked, expired, a user gone), last use written at most every
 * AUTH_API_TOKEN_TOUCH_MS, listing, revocation by owner or anyone, and
 * the per-user bound. Times are numbers the test chooses. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "sdk/err.h"
#include "serve/auth/tokens.h"

#define T0 1700000000000LL

static sqlite3 *db;
static grace_store gs; /* the sqlite engine on db */

static int setup(void **state)
{
	(void)state;
	sdk_err err;
	assert_int_equal(sodium_init() >= 0, 1);
	assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
	gs = store_sqlite(db);
	sqlite3_exec(db, "PRAGMA foreign_keys=ON", NULL, NULL, NULL);
	assert_int_equal(auth_store_init(db, &err), 0);
	assert_int_equal(auth_tokens_init(db, &err), 0);
	assert_int_equal(auth_user_add(&gs, "bob", "x", AUTH_ROLE_USER, T0), 0);
	assert_int_equal(auth_user_add(&gs, "ann", "x", AUTH_ROLE_ADMIN, T0), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	sqlite3_close(db);
	return 0;
}

static json_t *scopes(const char *a, const char *b)
{
	return b ? json_pack("[s, s]", a, b) : json_pack("[s]", a);
}

static void test_scopes(void **state)
{
	(void)state;
	const char *good[] = { "metrics:read", "telemetry:write", "kernel-ports:read",
			       "auth:tokens.read", "a:b", "x-1:y_2.z-3" };
	const char *bad[] = { "metrics", ":read", "metrics:", "Metrics:read", "metrics:Read",
			      "me trics:read", "metrics:re:ad", "a_b:read",
			      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:read", "" };
	for (size_t i = 0; i < sizeof good / sizeof *good; i++)
		assert_true(auth_scope_valid(good[i]));
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		if (auth_scope_valid(bad[i]))
			fail_msg("accepted %s", bad[i]);
	auth_api_token t = { 0 };
	memcpy(t.scopes, "metrics:read\0auth:tokens.read\0", 31);
	t.n_scopes = 2;
	assert_true(auth_token_allows(&t, "metrics.read"));
	assert_true(auth_token_allows(&t, "auth.tokens.read"));
	assert_false(auth_token_allows(&t, "metrics.write"));
	assert_false(auth_token_allows(&t, "metric.read"));
	assert_false(auth_token_allows(&t, "metrics.readx"));
	assert_false(auth_token_allows(&t, "auth.tokens"));
	assert_false(auth_token_allows(&t, "metricsXread"));
}

static void test_create_check_revoke(void **state)
{
	(void)state;
	auth_api_token t, c;
	char secret[AUTH_TOKEN_MAX + 1];
	json_t *sc = scopes("metrics:read", "telemetry:write");
	assert_int_equal(auth_token_create(&gs, "bob", "grafana", sc, T0, 0, &t, secret), 0);
	json_decref(sc);
	assert_true(auth_is_api_token(secret));
	assert_int_equal(strlen(secret), 6 + 43);
	assert_int_equal(strncmp(t.id, "tok_", 4), 0);
	assert_int_equal(t.n_scopes, 2);
	assert_string_equal(t.scopes, "metrics:read");
	/* Only the hash is stored: no column holds the secret. */
	sqlite3_stmt *st;
	char like[80];
	snprintf(like, sizeof like, "%%%s%%", secret + 6);
	sqlite3_prepare_v2(db,
			   "SELECT count(*) FROM api_tokens WHERE id LIKE ?1 OR token_hash LIKE ?1"
			   " OR name LIKE ?1 OR scopes LIKE ?1",
			   -1, &st, NULL);
	sqlite3_bind_text(st, 1, like, -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 0);
	sqlite3_finalize(st);
	char hex[65];
	auth_token_hash(secret, hex);
	sqlite3_prepare_v2(db, "SELECT token_hash FROM api_tokens WHERE id = ?", -1, &st, NULL);
	sqlite3_bind_text(st, 1, t.id, -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), hex);
	sqlite3_finalize(st);

	/* Checked: the owner, the owner's role now, the scopes. */
	assert_int_equal(auth_token_check(&gs, secret, T0 + 5, &c), 0);
	assert_string_equal(c.id, t.id);
	assert_string_equal(c.owner, "bob");
	assert_int_equal(c.role, AUTH_ROLE_USER);
	assert_true(auth_token_allows(&c, "telemetry.write"));
	/* A wrong secret, a session token's shape, one character off. */
	assert_int_equal(auth_token_check(&gs, "grace_nope", T0, &c), SDK_ENOTFOUND);
	char other[AUTH_TOKEN_MAX + 1];
	memcpy(other, secret, sizeof other);
	other[10] = other[10] == 'A' ? 'B' : 'A';
	assert_int_equal(auth_token_check(&gs, other, T0, &c), SDK_ENOTFOUND);
	assert_int_equal(auth_token_check(&gs, secret + 6, T0, &c), SDK_ENOTFOUND);

	/* Revocation: not by another user; by its owner; then refused. */
	assert_int_equal(auth_token_revoke(&gs, t.id, "ann", T0 + 10), SDK_ENOTFOUND);
	assert_int_equal(auth_token_revoke(&gs, t.id, "bob", T0 + 10), 0);
	assert_int_equal(auth_token_revoke(&gs, t.id, NULL, T0 + 11), SDK_ENOTFOUND);
	assert_int_equal(auth_token_check(&gs, secret, T0 + 12, &c), SDK_ENOTFOUND);
	json_t *list = auth_token_list(&gs, "bob");
	assert_int_equal(json_array_size(list), 1);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(list, 0), "revoked_ms")),
			 T0 + 10);
	json_decref(list);
}

static void test_last_use(void **state)
{
	(void)state;
	auth_api_token t, c;
	char secret[AUTH_TOKEN_MAX + 1];
	json_t *sc = scopes("guardian:read", NULL);
	assert_int_equal(auth_token_create(&gs, "bob", "script", sc, T0, 0, &t, secret), 0);
	json_decref(sc);
	json_t *list = auth_token_list(&gs, NULL);
	json_t *row = json_array_get(list, 0);
	assert_true(json_is_null(json_object_get(row, "last_used_ms")));
	assert_false(json_object_get(row, "token") || json_object_get(row, "token_hash"));
	json_decref(list);
	/* The first use is written; the next within the interval are not. */
	int64_t uses[] = { T0 + 100, T0 + 200, T0 + 100 + AUTH_API_TOKEN_TOUCH_MS - 1,
			   T0 + 100 + AUTH_API_TOKEN_TOUCH_MS };
	int64_t want[] = { T0 + 100, T0 + 100, T0 + 100, T0 + 100 + AUTH_API_TOKEN_TOUCH_MS };
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(auth_token_check(&gs, secret, uses[i], &c), 0);
		list = auth_token_list(&gs, "bob");
		assert_int_equal(json_integer_value(json_object_get(json_array_get(list, 0), "last_used_ms")),
				 want[i]);
		json_decref(list);
	}
}

static void test_expiry_owner_and_bounds(void **state)
{
	(void)state;
	auth_api_token t, c;
	char secret[AUTH_TOKEN_MAX + 1];
	json_t *sc = scopes("metrics:read", NULL);
	/* Expiring. */
	assert_int_equal(auth_token_create(&gs, "bob", "short", sc, T0, T0 + 60000, &t, secret), 0);
	assert_int_equal(auth_token_check(&gs, secret, T0 + 59999, &c), 0);
	assert_int_equal(auth_token_check(&gs, secret, T0 + 60000, &c), SDK_ENOTFOUND);
	/* No such owner. */
	assert_int_equal(auth_token_create(&gs, "nobody", "x", sc, T0, 0, &t, secret), SDK_ENOTFOUND);
	/* An admin's token acts with the admin role; gone with its user. */
	assert_int_equal(auth_token_create(&gs, "ann", "ops", sc, T0, 0, &t, secret), 0);
	assert_int_equal(auth_token_check(&gs, secret, T0, &c), 0);
	assert_int_equal(c.role, AUTH_ROLE_ADMIN);
	assert_int_equal(auth_user_delete(&gs, "ann"), 0);
	assert_int_equal(auth_token_check(&gs, secret, T0, &c), SDK_ENOTFOUND);
	/* At most AUTH_API_TOKENS_PER_USER live ones (the expired one counts not). */
	for (int i = 1; i < AUTH_API_TOKENS_PER_USER; i++)
		assert_int_equal(auth_token_create(&gs, "bob", "n", sc, T0 + 70000, 0, &t, secret), 0);
	assert_int_equal(auth_token_create(&gs, "bob", "n", sc, T0 + 70000, 0, &t, secret), 0);
	assert_int_equal(auth_token_create(&gs, "bob", "n", sc, T0 + 70000, 0, &t, secret), SDK_EQUOTA);
	assert_int_equal(auth_token_revoke(&gs, t.id, "bob", T0 + 70001), 0);
	assert_int_equal(auth_token_create(&gs, "bob", "n", sc, T0 + 70002, 0, &t, secret), 0);
	json_decref(sc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scopes),
		cmocka_unit_test_setup_teardown(test_create_check_revoke, setup, teardown),
		cmocka_unit_test_setup_teardown(test_last_use, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expiry_owner_and_bounds, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
