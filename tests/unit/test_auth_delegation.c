/* Unit tests for delegations (src/serve/auth/delegation.c): what one made
 * under a key checks under that key, as its user and its one scope, until
 * it expires; an altered one, one under another key, or a malformed one
 * is nothing. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "serve/auth/delegation.h"

static unsigned char key[AUTH_DELEG_KEY], other[AUTH_DELEG_KEY];

static int setup(void **state)
{
	(void)state;
	if (sodium_init() < 0)
		return -1;
	randombytes_buf(key, sizeof key);
	randombytes_buf(other, sizeof other);
	return 0;
}

static void test_round_trip(void **state)
{
	(void)state;
	char tok[AUTH_DELEG_MAX + 1];
	assert_int_equal(auth_deleg_mint(key, "alice", "memory:read", 2000, tok), 0);
	assert_true(auth_is_delegation(tok));
	auth_api_token t;
	assert_int_equal(auth_deleg_check(key, tok, 1999, &t), 0);
	assert_string_equal(t.owner, "alice");
	assert_string_equal(t.id, AUTH_DELEG_ID);
	assert_int_equal(t.n_scopes, 1);
	assert_string_equal(t.scopes, "memory:read");
	assert_true(auth_token_allows(&t, "memory.read"));
	assert_false(auth_token_allows(&t, "memory.write"));
	assert_false(auth_token_allows(&t, "memory.delete"));
	/* Expired at its expiry; another key's is nothing. */
	assert_int_equal(auth_deleg_check(key, tok, 2000, &t), -1);
	assert_int_equal(auth_deleg_check(other, tok, 1999, &t), -1);
}

static void test_altered(void **state)
{
	(void)state;
	char tok[AUTH_DELEG_MAX + 1], bad[AUTH_DELEG_MAX + 2];
	assert_int_equal(auth_deleg_mint(key, "alice", "memory:read", 2000, tok), 0);
	auth_api_token t;
	/* Every single character changed, in the payload or the MAC. */
	for (size_t i = strlen(AUTH_DELEG_PREFIX); tok[i]; i++) {
		memcpy(bad, tok, strlen(tok) + 1);
		bad[i] = bad[i] == 'A' ? 'B' : 'A';
		assert_int_equal(auth_deleg_check(key, bad, 1, &t), -1);
	}
	/* Another user's payload under the first MAC. */
	char bob[AUTH_DELEG_MAX + 1];
	assert_int_equal(auth_deleg_mint(key, "bobby", "memory:read", 2000, bob), 0);
	const char *dot = strchr(tok, '.'), *bdot = strchr(bob, '.');
	snprintf(bad, sizeof bad, "%.*s%s", (int)(bdot - bob), bob, dot);
	assert_int_equal(auth_deleg_check(key, bad, 1, &t), -1);
	/* Truncated, extended, malformed. */
	static const char *const junk[] = { "gdl_", "gdl_.", "gdl_x", "gdl_x.y", "grace_abc",
					    "", "gdl_AAAA.AAAA.AAAA" };
	for (size_t i = 0; i < sizeof junk / sizeof *junk; i++)
		assert_int_equal(auth_deleg_check(key, junk[i], 1, &t), -1);
	snprintf(bad, sizeof bad, "%s=", tok);
	assert_int_equal(auth_deleg_check(key, bad, 1, &t), -1);
	bad[strlen(tok) - 3] = '\0';
	assert_int_equal(auth_deleg_check(key, bad, 1, &t), -1);
}

static void test_fields_that_do_not_fit(void **state)
{
	(void)state;
	char tok[AUTH_DELEG_MAX + 1], long_name[AUTH_NAME_MAX + 2];
	memset(long_name, 'a', sizeof long_name - 1);
	long_name[sizeof long_name - 1] = '\0';
	assert_int_equal(auth_deleg_mint(key, long_name, "memory:read", 1, tok), -1);
	assert_int_equal(auth_deleg_mint(key, "a\nb", "memory:read", 1, tok), -1);
	assert_int_equal(auth_deleg_mint(key, "alice", "memory:read\nx", 1, tok), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_altered),
		cmocka_unit_test(test_fields_that_do_not_fit),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
