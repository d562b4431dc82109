/* Unit tests of the runtime's SVID pieces (src/sdk/svid.c): verification of
 * JWT-SVIDs against a SPIFFE bundle (tokens made by the trust kernel's own
 * signer, src/kernels/trust/jwt.c), renewal timing, Grace's SPIFFE IDs
 * (kernels, the main process and nodes),
 * and the supervisor's registration backoff. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/trust/jwt.h"
#include "kernels/trust/spiffe.h"
#include "sdk/svid.h"
#include "serve/supervisor/attest.h"

#define AUD "spiffe://grace.local/kernel/audit"
#define SUB "spiffe://grace.local/kernel/scheduler"
#define NOW 1764160000000LL

static unsigned char seed[32], pub[32];

static tr_key make_key(const char *kid, unsigned char *s, unsigned char *p)
{
	tr_key k = { .kind = TR_JWT, .pub = p, .pub_len = 32, .secret = s, .secret_len = 32 };
	snprintf(k.kid, sizeof k.kid, "%s", kid);
	return k;
}

static json_t *jwks_of(const tr_key *k)
{
	return json_pack("{s:[o]}", "keys", tr_jwt_jwk(k));
}

static char *sign(const tr_key *k, const char *aud, int64_t now_ms, int ttl_s)
{
	char *tok = NULL;
	int64_t exp;
	sdk_err e;
	json_t *a = json_pack("[s]", aud);
	assert_int_equal(tr_jwt_sign(k, SUB, a, now_ms, ttl_s, &tok, &exp, &e), 0);
	json_decref(a);
	return tok;
}

static int setup(void **st)
{
	(void)st;
	if (sodium_init() < 0)
		return -1;
	unsigned char sk[crypto_sign_SECRETKEYBYTES];
	randombytes_buf(seed, sizeof seed);
	crypto_sign_seed_keypair(pub, sk, seed);
	return 0;
}

static void test_verify_ok(void **st)
{
	(void)st;
	tr_key k = make_key("k1", seed, pub);
	json_t *jwks = jwks_of(&k);
	char *tok = sign(&k, AUD, NOW, 300);
	char sub[SDK_SPIFFE_ID_MAX];
	sdk_err e;
	assert_int_equal(sdk_svid_verify(tok, jwks, AUD, NOW + 1000, sub, sizeof sub, &e), 0);
	assert_string_equal(sub, SUB);
	free(tok);
	json_decref(jwks);
}

static void test_verify_refusals(void **st)
{
	(void)st;
	tr_key k = make_key("k1", seed, pub);
	json_t *jwks = jwks_of(&k);
	char sub[SDK_SPIFFE_ID_MAX];
	sdk_err e;
	/* expired: exp is NOW/1000 + 10 */
	char *tok = sign(&k, AUD, NOW, 10);
	assert_int_equal(sdk_svid_verify(tok, jwks, AUD, NOW + 10000, sub, sizeof sub, &e),
			 SDK_EDENIED);
	assert_non_null(strstr(e.msg, "expired"));
	/* another audience */
	assert_int_equal(sdk_svid_verify(tok, jwks, "spiffe://grace.local/kernel/policy", NOW,
					 sub, sizeof sub, &e),
			 SDK_EDENIED);
	assert_non_null(strstr(e.msg, "aud"));
	/* tampered claims: one character of the payload changed */
	char *d1 = strchr(tok, '.');
	d1[5] = d1[5] == 'A' ? 'B' : 'A';
	assert_int_equal(sdk_svid_verify(tok, jwks, AUD, NOW, sub, sizeof sub, &e), SDK_EDENIED);
	free(tok);
	/* another key under the bundle's kid: a bad signature */
	unsigned char s2[32], p2[32], sk2[crypto_sign_SECRETKEYBYTES];
	randombytes_buf(s2, sizeof s2);
	crypto_sign_seed_keypair(p2, sk2, s2);
	tr_key other = make_key("k1", s2, p2);
	tok = sign(&other, AUD, NOW, 300);
	assert_int_equal(sdk_svid_verify(tok, jwks, AUD, NOW, sub, sizeof sub, &e), SDK_EDENIED);
	assert_non_null(strstr(e.msg, "signature"));
	free(tok);
	/* a kid the bundle does not have: the caller may refetch it */
	tr_key unknown = make_key("k2", s2, p2);
	tok = sign(&unknown, AUD, NOW, 300);
	assert_int_equal(sdk_svid_verify(tok, jwks, AUD, NOW, sub, sizeof sub, &e), SDK_ENOTFOUND);
	free(tok);
	/* alg none, no signature */
	assert_int_equal(sdk_svid_verify("eyJhbGciOiJub25lIiwia2lkIjoiazEifQ.e30.", jwks, AUD, NOW,
					 sub, sizeof sub, &e),
			 SDK_EDENIED);
	assert_int_equal(sdk_svid_verify("not a token", jwks, AUD, NOW, sub, sizeof sub, &e),
			 SDK_EDENIED);
	json_decref(jwks);
}

/* sdk_bundle_verify remembers a token that verified, but never past what
 * verifying it again would say: another audience, its exp, a changed
 * byte, a bundle replaced since. */
static void test_bundle_remembers_only_what_holds(void **st)
{
	(void)st;
	tr_key k = make_key("k1", seed, pub);
	sdk_bundle *b = sdk_bundle_new(NULL); /* never fetches: the bundle is handed in */
	assert_non_null(b);
	sdk_bundle_take(b, jwks_of(&k));
	char *tok = sign(&k, AUD, NOW, 10); /* exp NOW/1000 + 10 */
	char sub[SDK_SPIFFE_ID_MAX];
	sdk_err e;
	bool waiting;
	for (int i = 0; i < 3; i++) { /* verified, then remembered */
		memset(sub, 0, sizeof sub);
		assert_int_equal(sdk_bundle_verify(b, tok, AUD, NOW + 1000, sub, sizeof sub, &e, NULL,
						   NULL, &waiting), 0);
		assert_string_equal(sub, SUB);
	}
	assert_int_equal(sdk_bundle_verify(b, tok, "spiffe://grace.local/kernel/policy", NOW, sub,
					   sizeof sub, &e, NULL, NULL, &waiting), SDK_EDENIED);
	assert_non_null(strstr(e.msg, "aud"));
	assert_int_equal(sdk_bundle_verify(b, tok, AUD, NOW + 10000, sub, sizeof sub, &e, NULL, NULL,
					   &waiting), SDK_EDENIED);
	assert_non_null(strstr(e.msg, "expired"));
	/* a sub too long for the caller's buffer is not written */
	char small[8];
	assert_int_equal(sdk_bundle_verify(b, tok, AUD, NOW, small, sizeof small, &e, NULL, NULL,
					   &waiting), SDK_EDENIED);
	char *bad = strdup(tok);
	char *sig = strrchr(bad, '.') + 2;
	*sig = *sig == 'A' ? 'B' : 'A';
	assert_int_equal(sdk_bundle_verify(b, bad, AUD, NOW, sub, sizeof sub, &e, NULL, NULL,
					   &waiting), SDK_EDENIED);
	/* k1 is another key in the new bundle: the token no longer verifies */
	unsigned char s2[32], p2[32], sk2[crypto_sign_SECRETKEYBYTES];
	randombytes_buf(s2, sizeof s2);
	crypto_sign_seed_keypair(p2, sk2, s2);
	tr_key other = make_key("k1", s2, p2);
	sdk_bundle_take(b, jwks_of(&other));
	assert_int_equal(sdk_bundle_verify(b, tok, AUD, NOW, sub, sizeof sub, &e, NULL, NULL,
					   &waiting), SDK_EDENIED);
	assert_non_null(strstr(e.msg, "signature"));
	sdk_bundle_take(b, jwks_of(&k));
	assert_int_equal(sdk_bundle_verify(b, tok, AUD, NOW, sub, sizeof sub, &e, NULL, NULL,
					   &waiting), 0);
	free(bad);
	free(tok);
	sdk_bundle_free(b);
}

static void test_renew_at(void **st)
{
	(void)st;
	int64_t got = NOW, exp = NOW + 300000;
	/* Half its life, moved by at most a tenth of it either way. */
	assert_int_equal(sdk_svid_renew_at(got, exp, 0), got + 120000);
	assert_int_equal(sdk_svid_renew_at(got, exp, 60000), got + 180000);
	for (uint32_t r = 0; r < 1000000; r += 7919) {
		int64_t at = sdk_svid_renew_at(got, exp, r * 2654435761u);
		assert_true(at >= got + 120000 && at <= got + 180000);
	}
	/* Never later than a second before it expires, never before it came. */
	assert_true(sdk_svid_renew_at(got, got + 1500, 0xffffffffu) <= got + 500);
	assert_int_equal(sdk_svid_renew_at(got, got - 5, 7), got);
}

static void test_ids(void **st)
{
	(void)st;
	char id[SDK_SPIFFE_ID_MAX], name[64];
	assert_int_equal(sdk_svid_id("grace.local", "message_bus", id, sizeof id), 0);
	assert_string_equal(id, "spiffe://grace.local/kernel/message_bus");
	assert_int_equal(sdk_svid_name_of("grace.local", id, name, sizeof name), 0);
	assert_string_equal(name, "message_bus");
	assert_int_equal(sdk_svid_id("grace.local", "grace", id, sizeof id), 0);
	assert_string_equal(id, "spiffe://grace.local/grace");
	assert_int_equal(sdk_svid_name_of("grace.local", id, name, sizeof name), 0);
	assert_string_equal(name, "grace");
	static const char *const bad[] = { "spiffe://other.org/kernel/audit",
					   "spiffe://grace.local.evil/kernel/audit",
					   "spiffe://grace.local/kernel/",
					   "spiffe://grace.local/kernel/a/b",
					   "spiffe://grace.local/gracex",
					   "spiffe://grace.local/kernel/Audit",
					   "https://grace.local/kernel/audit" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		assert_int_equal(sdk_svid_name_of("grace.local", bad[i], name, sizeof name), -1);
	assert_int_equal(sdk_svid_id("grace.local", "audit", id, 10), -1);
}

/* A node's identity: the workload "node/NAME", spiffe://DOMAIN/node/NAME,
 * both ways; never mistaken for a kernel's. */
static void test_node_ids(void **st)
{
	(void)st;
	char id[SDK_SPIFFE_ID_MAX], name[64];
	assert_int_equal(sdk_svid_id("grace.local", "node/b", id, sizeof id), 0);
	assert_string_equal(id, "spiffe://grace.local/node/b");
	assert_int_equal(sdk_svid_name_of("grace.local", id, name, sizeof name), 0);
	assert_string_equal(name, "node/b");
	assert_int_equal(sdk_svid_name_of("grace.local", "spiffe://grace.local/node/eu_west2", name,
					  sizeof name),
			 0);
	assert_string_equal(name, "node/eu_west2");
	static const char *const bad[] = { "spiffe://grace.local/node/",
					   "spiffe://grace.local/node",
					   "spiffe://grace.local/node/b/c",
					   "spiffe://grace.local/node/B",
					   "spiffe://grace.local/nodes/b",
					   "spiffe://grace.local/kernel/node/b",
					   "spiffe://other.org/node/b" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		assert_int_equal(sdk_svid_name_of("grace.local", bad[i], name, sizeof name), -1);
	/* "node/b" does not fit in 6 bytes with its terminator. */
	assert_int_equal(sdk_svid_name_of("grace.local", "spiffe://grace.local/node/b", name, 6), -1);
	assert_int_equal(sdk_svid_id("grace.local", "node/b", id, 20), -1);
	/* The trust kernel's own formatting agrees and checks the name. */
	sdk_err e;
	char tid[TR_SPIFFE_ID_MAX + 1];
	assert_int_equal(tr_workload_id("grace.local", "node/b", tid, sizeof tid, &e), 0);
	assert_string_equal(tid, "spiffe://grace.local/node/b");
	assert_int_equal(tr_workload_id("grace.local", "node/", tid, sizeof tid, &e), SDK_EINVAL);
	assert_int_equal(tr_workload_id("grace.local", "node/../a", tid, sizeof tid, &e), SDK_EINVAL);
	assert_int_equal(tr_workload_id("grace.local", "node/b/c", tid, sizeof tid, &e), SDK_EINVAL);
	assert_int_equal(tr_workload_id("grace.local", "audit", tid, sizeof tid, &e), 0);
	assert_string_equal(tid, "spiffe://grace.local/kernel/audit");
}

static void test_register_backoff(void **st)
{
	(void)st;
	unsigned ms = 0;
	unsigned want[] = { 250, 500, 1000, 2000, 4000, 5000, 5000 };
	for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
		ms = sup_attest_backoff_ms(ms);
		assert_int_equal(ms, want[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verify_ok),
		cmocka_unit_test(test_verify_refusals),
		cmocka_unit_test(test_bundle_remembers_only_what_holds),
		cmocka_unit_test(test_renew_at),
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_node_ids),
		cmocka_unit_test(test_register_backoff),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
