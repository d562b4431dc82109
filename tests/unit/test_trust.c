/* Unit tests of the trust kernel's pure pieces: SPIFFE ID parsing and
 * validation (the cases of the SPIFFE-ID specification, section 2, and of
 * go-spiffe's spiffeid tests) and JWT-SVID signing and verification
 * (src/kernels/trust/{spiffe,jwt}.c). */
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

static void test_spiffe_valid(void **st)
{
	(void)st;
	static const char *const ok[] = {
		"spiffe://grace.local",
		"spiffe://grace.local/kernel/audit",
		"spiffe://example.org/a/B/c-d_e.f",
		"spiffe://a-b_c.9/x",
		"spiffe://td/..a/a..",
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		tr_spiffe_id id;
		sdk_err e;
		assert_int_equal(tr_spiffe_id_parse(ok[i], &id, &e), 0);
	}
	tr_spiffe_id id;
	sdk_err e;
	assert_int_equal(tr_spiffe_id_parse("spiffe://grace.local/kernel/audit", &id, &e), 0);
	assert_string_equal(id.trust_domain, "grace.local");
	assert_string_equal(id.path, "/kernel/audit");
}

static void test_spiffe_invalid(void **st)
{
	(void)st;
	static const char *const bad[] = {
		"",
		"spiffe://",
		"spiffe:///path",
		"SPIFFE://grace.local/x",
		"https://grace.local/x",
		"spiffe://Grace.local/x",    /* upper case trust domain */
		"spiffe://grace.local/",     /* trailing slash */
		"spiffe://grace.local/a/",   /* trailing slash */
		"spiffe://grace.local//a",   /* empty segment */
		"spiffe://grace.local/./a",  /* dot segment */
		"spiffe://grace.local/a/..", /* dot-dot segment */
		"spiffe://grace.local:8080/a",
		"spiffe://user@grace.local/a",
		"spiffe://grace.local/a?x=1",
		"spiffe://grace.local/a#f",
		"spiffe://grace.local/a%20b",
		"spiffe://grace.local/a b",
		"spiffe://grace local/a",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		sdk_err e;
		if (tr_spiffe_id_parse(bad[i], NULL, &e) != SDK_EINVAL)
			fail_msg("accepted \"%s\"", bad[i]);
	}
}

static void test_spiffe_lengths(void **st)
{
	(void)st;
	char buf[TR_SPIFFE_ID_MAX + 64];
	sdk_err e;
	/* a 255-byte trust domain is the longest */
	memset(buf, 0, sizeof buf);
	strcpy(buf, "spiffe://");
	memset(buf + 9, 'a', 255);
	assert_int_equal(tr_spiffe_id_parse(buf, NULL, &e), 0);
	buf[9 + 255] = 'a';
	assert_int_equal(tr_spiffe_id_parse(buf, NULL, &e), SDK_EINVAL);
	/* 2048 bytes in all is the longest */
	strcpy(buf, "spiffe://td/");
	size_t n = strlen(buf);
	memset(buf + n, 'p', TR_SPIFFE_ID_MAX - n);
	buf[TR_SPIFFE_ID_MAX] = '\0';
	assert_int_equal(tr_spiffe_id_parse(buf, NULL, &e), 0);
	buf[TR_SPIFFE_ID_MAX] = 'p';
	buf[TR_SPIFFE_ID_MAX + 1] = '\0';
	assert_int_equal(tr_spiffe_id_parse(buf, NULL, &e), SDK_EINVAL);
}

static void test_workload_id(void **st)
{
	(void)st;
	char id[TR_SPIFFE_ID_MAX + 1];
	sdk_err e;
	assert_int_equal(tr_workload_id("grace.local", "audit", id, sizeof id, &e), 0);
	assert_string_equal(id, "spiffe://grace.local/kernel/audit");
	assert_int_equal(tr_workload_id("grace.local", NULL, id, sizeof id, &e), 0);
	assert_string_equal(id, "spiffe://grace.local/grace");
	assert_int_equal(tr_workload_id("grace.local", "../x", id, sizeof id, &e), SDK_EINVAL);
	assert_int_equal(tr_workload_id("grace.local", "", id, sizeof id, &e), SDK_EINVAL);
	assert_int_equal(tr_workload_id("Grace", "a", id, sizeof id, &e), SDK_EINVAL);
}

/* A JWT key with its secret, in caller memory (not tr_key_clear'd). */
typedef struct {
	tr_key k;
	unsigned char pk[crypto_sign_PUBLICKEYBYTES];
	unsigned char seed[crypto_sign_SEEDBYTES];
} test_key;

static void key_make(test_key *t, const char *kid)
{
	unsigned char sk[crypto_sign_SECRETKEYBYTES];
	memset(t, 0, sizeof *t);
	randombytes_buf(t->seed, sizeof t->seed);
	crypto_sign_seed_keypair(t->pk, sk, t->seed);
	snprintf(t->k.kid, sizeof t->k.kid, "%s", kid);
	t->k.kind = TR_JWT;
	t->k.pub = t->pk;
	t->k.pub_len = sizeof t->pk;
	t->k.secret = t->seed;
	t->k.secret_len = sizeof t->seed;
}

static char *sign(const tr_key *k, const char *aud, int64_t now_ms, int ttl)
{
	json_t *a = json_pack("[s]", aud);
	char *tok = NULL;
	int64_t exp;
	sdk_err e;
	assert_int_equal(tr_jwt_sign(k, "spiffe://grace.local/kernel/audit", a, now_ms, ttl, &tok,
				     &exp, &e), 0);
	assert_int_equal(exp, now_ms / 1000 + ttl);
	json_decref(a);
	return tok;
}

static void test_jwt_roundtrip(void **st)
{
	(void)st;
	test_key a, b;
	key_make(&a, "aaaa");
	key_make(&b, "bbbb");
	tr_key both[2] = { a.k, b.k };
	int64_t now = 1700000000000;
	char *tok = sign(&a.k, "svc", now, 300);
	json_t *cl;
	sdk_err e;
	assert_int_equal(tr_jwt_verify(tok, both, 2, "svc", now + 1000, &cl, &e), 0);
	assert_string_equal(json_string_value(json_object_get(cl, "sub")),
			    "spiffe://grace.local/kernel/audit");
	json_decref(cl);
	/* wrong audience, expired, key not in the bundle */
	assert_int_equal(tr_jwt_verify(tok, both, 2, "other", now, &cl, &e), TR_EBADTOKEN);
	assert_int_equal(tr_jwt_verify(tok, both, 2, "svc", now + 300000, &cl, &e), TR_EBADTOKEN);
	assert_int_equal(tr_jwt_verify(tok, &b.k, 1, "svc", now, &cl, &e), TR_EBADTOKEN);
	/* a key of the same kid but other bytes: the signature fails */
	test_key c;
	key_make(&c, "aaaa");
	assert_int_equal(tr_jwt_verify(tok, &c.k, 1, "svc", now, &cl, &e), TR_EBADTOKEN);
	assert_non_null(strstr(e.msg, "signature"));
	/* one flipped character in the claims */
	size_t d = strcspn(tok, ".") + 3;
	tok[d] = tok[d] == 'A' ? 'B' : 'A';
	assert_int_equal(tr_jwt_verify(tok, both, 2, "svc", now, &cl, &e), TR_EBADTOKEN);
	free(tok);
	/* alg none, two parts, garbage */
	assert_int_equal(tr_jwt_verify("eyJhbGciOiJub25lIn0.e30.", both, 2, "svc", now, &cl, &e),
			 TR_EBADTOKEN);
	assert_int_equal(tr_jwt_verify("a.b", both, 2, "svc", now, &cl, &e), TR_EBADTOKEN);
	assert_int_equal(tr_jwt_verify("...", both, 2, "svc", now, &cl, &e), TR_EBADTOKEN);
}

static void test_jwk(void **st)
{
	(void)st;
	test_key a;
	key_make(&a, "kid1");
	json_t *j = tr_jwt_jwk(&a.k);
	assert_string_equal(json_string_value(json_object_get(j, "kty")), "OKP");
	assert_string_equal(json_string_value(json_object_get(j, "crv")), "Ed25519");
	assert_string_equal(json_string_value(json_object_get(j, "use")), "jwt-svid");
	assert_string_equal(json_string_value(json_object_get(j, "kid")), "kid1");
	assert_int_equal(strlen(json_string_value(json_object_get(j, "x"))), 43);
	json_decref(j);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spiffe_valid),   cmocka_unit_test(test_spiffe_invalid),
		cmocka_unit_test(test_spiffe_lengths), cmocka_unit_test(test_workload_id),
		cmocka_unit_test(test_jwt_roundtrip),  cmocka_unit_test(test_jwk),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
