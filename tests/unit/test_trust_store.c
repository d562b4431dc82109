/* Unit tests of the trust kernel's key store (src/kernels/trust/store.c)
 * with a driven clock: keys made on first use, rotated when their period
 * ends, kept in the bundle for the overlap and dropped after it; the
 * master key a 0600 file; a replaced master key refused. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/trust/jwt.h"
#include "kernels/trust/store.h"
#include "kernels/trust/x509.h"

static const int64_t T0 = 1700000000000;

typedef struct {
	char dir[64];
	sqlite3 *db;
	tr_store *s;
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/grace-trust-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	char path[128];
	snprintf(path, sizeof path, "%s/trust.db", f->dir);
	assert_int_equal(sqlite3_open(path, &f->db), SQLITE_OK);
	sdk_err e;
	assert_int_equal(tr_store_open(f->db, f->dir, &f->s, &e), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	tr_store_close(f->s);
	sqlite3_close(f->db);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static size_t count(fixture *f, int64_t now, enum tr_kind kind, int64_t *seq)
{
	tr_key *keys;
	size_t n, c = 0;
	sdk_err e;
	assert_int_equal(tr_keys_published(f->s, now, &keys, &n, seq, &e), 0);
	for (size_t i = 0; i < n; i++) {
		c += keys[i].kind == kind;
		tr_key_clear(&keys[i]);
	}
	free(keys);
	return c;
}

static void test_rotation_overlap(void **state)
{
	fixture *f = *state;
	tr_key k1, k2, k3;
	sdk_err e;
	int64_t seq0, seq1;
	assert_int_equal(tr_key_active(f->s, TR_JWT, T0, &k1, &e), 0);
	assert_int_equal(count(f, T0, TR_JWT, &seq0), 1);
	/* before the period ends: the same key */
	assert_int_equal(tr_key_active(f->s, TR_JWT, T0 + TR_JWT_ROTATE_MS - 1, &k2, &e), 0);
	assert_string_equal(k1.kid, k2.kid);
	tr_key_clear(&k2);
	/* at its end: a new key, the old one still published */
	int64_t t1 = T0 + TR_JWT_ROTATE_MS;
	assert_int_equal(tr_key_active(f->s, TR_JWT, t1, &k3, &e), 0);
	assert_string_not_equal(k1.kid, k3.kid);
	assert_int_equal(count(f, t1, TR_JWT, &seq1), 2);
	assert_true(seq1 > seq0);
	/* a token signed by the old key just before still verifies during the overlap */
	json_t *aud = json_pack("[s]", "a");
	char *tok;
	int64_t exp;
	assert_int_equal(tr_jwt_sign(&k1, "spiffe://grace.local/kernel/x", aud, t1 - 1000,
				     TR_JWT_TTL_MAX_S, &tok, &exp, &e), 0);
	json_decref(aud);
	tr_key *keys;
	size_t n;
	json_t *cl;
	int64_t now = t1 + TR_JWT_TTL_MAX_S * 1000LL - 2000;
	assert_int_equal(tr_keys_published(f->s, now, &keys, &n, &seq1, &e), 0);
	assert_int_equal(tr_jwt_verify(tok, keys, n, "a", now, &cl, &e), 0);
	json_decref(cl);
	for (size_t i = 0; i < n; i++)
		tr_key_clear(&keys[i]);
	free(keys);
	free(tok);
	/* after the overlap: only the new key */
	assert_int_equal(count(f, t1 + TR_JWT_TTL_MAX_S * 1000LL, TR_JWT, &seq1), 1);
	tr_key_clear(&k1);
	tr_key_clear(&k3);
}

static void test_x509_rotate(void **state)
{
	fixture *f = *state;
	tr_key ca;
	sdk_err e;
	int64_t seq;
	assert_int_equal(tr_key_active(f->s, TR_X509, T0, &ca, &e), 0);
	tr_x509_svid svid;
	assert_int_equal(tr_x509_issue(&ca, "spiffe://grace.local/kernel/x", T0, 600, &svid, &e), 0);
	assert_int_equal(svid.expires_ms, T0 + 600000);
	assert_non_null(strstr(svid.cert_pem, "BEGIN CERTIFICATE"));
	assert_non_null(strstr(svid.key_pem, "BEGIN PRIVATE KEY"));
	tr_x509_svid_clear(&svid);
	/* never past the CA's own end */
	int64_t late = T0 + TR_X509_ROTATE_MS + TR_X509_TTL_MAX_S * 1000LL;
	assert_int_equal(tr_x509_issue(&ca, "spiffe://grace.local/kernel/x", late,
				       TR_X509_TTL_MAX_S, &svid, &e), 0);
	assert_true(svid.expires_ms <= T0 + TR_X509_ROTATE_MS + TR_X509_TTL_MAX_S * 1000LL + 3600000);
	assert_true(svid.expires_ms < late + TR_X509_TTL_MAX_S * 1000LL);
	tr_x509_svid_clear(&svid);
	json_t *jwk = tr_x509_jwk(&ca);
	assert_string_equal(json_string_value(json_object_get(jwk, "use")), "x509-svid");
	assert_int_equal(strlen(json_string_value(json_object_get(jwk, "x"))), 43);
	json_decref(jwk);
	tr_key_clear(&ca);
	assert_int_equal(tr_key_rotate(f->s, TR_X509, T0 + 1, &e), 0);
	assert_int_equal(count(f, T0 + 2, TR_X509, &seq), 2);
}

static void test_master_file(void **state)
{
	fixture *f = *state;
	tr_key k;
	sdk_err e;
	assert_int_equal(tr_key_active(f->s, TR_JWT, T0, &k, &e), 0);
	tr_key_clear(&k);
	char path[128];
	snprintf(path, sizeof path, "%s/trust.master", f->dir);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_size, 32);
	/* a replaced master key does not open the sealed keys */
	unlink(path);
	tr_store *s2;
	assert_int_equal(tr_store_open(f->db, f->dir, &s2, &e), SDK_EIO); /* missing: refused */
	FILE *fp = fopen(path, "w");
	fwrite("0123456789abcdef0123456789abcdef", 1, 32, fp);
	fclose(fp);
	chmod(path, 0600);
	assert_int_equal(tr_store_open(f->db, f->dir, &s2, &e), SDK_ECORRUPT);
	assert_non_null(strstr(e.msg, "trust.master"));
	/* a loose mode is refused */
	chmod(path, 0644);
	assert_int_equal(tr_store_open(f->db, f->dir, &s2, &e), SDK_EIO);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_rotation_overlap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_x509_rotate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_master_file, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
