/* X.509-SVIDs with OpenSSL. P-256 because every TLS stack verifies it and
 * the SPIFFE libraries expect it; the leaf's key is made here and handed
 * over once, as the SPIFFE Workload API's X509SVIDResponse does. */
#include "kernels/trust/x509.h"

#include "kernels/trust/jwt.h"
#include "kernels/trust/spiffe.h"

#include "kernels/trust/ossl_dl.h"

#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static int ossl_fail(sdk_err *err, const char *what)
{
	return sdk_fail(err, SDK_EIO, "%s failed (OpenSSL)", what);
}

void tr_x509_svid_clear(tr_x509_svid *s)
{
	free(s->cert_pem);
	if (s->key_pem) {
		sodium_memzero(s->key_pem, strlen(s->key_pem));
		free(s->key_pem);
	}
	free(s->bundle_pem);
	memset(s, 0, sizeof *s);
}

static int add_ext(const tr_ossl *O, X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	O->x509v3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	X509_EXTENSION *ex = O->x509v3_ext_conf_nid(NULL, &ctx, nid, value);
	if (!ex)
		return -1;
	int ok = O->x509_add_ext(cert, ex, -1);
	O->x509_extension_free(ex);
	return ok ? 0 : -1;
}

static int set_basics(const tr_ossl *O, X509 *c, int64_t from_ms, int64_t to_ms, const char *org)
{
	unsigned char serial[16];
	if (O->rand_bytes(serial, sizeof serial) != 1)
		return -1;
	serial[0] &= 0x7f; /* positive */
	BIGNUM *bn = O->bn_bin2bn(serial, sizeof serial, NULL);
	int ok = bn && O->bn_to_asn1_integer(bn, O->x509_get_serial(c)) != NULL;
	O->bn_free(bn);
	ok = ok && O->x509_set_version(c, 2) && O->x509_time_adj_ex(O->x509_getm_not_before(c), 0, 0,
							       &(time_t){ (time_t)(from_ms / 1000) }) &&
	     O->x509_time_adj_ex(O->x509_getm_not_after(c), 0, 0, &(time_t){ (time_t)(to_ms / 1000) });
	X509_NAME *n = O->x509_get_subject_name(c);
	ok = ok && O->x509_name_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *)org,
					      -1, -1, 0);
	return ok ? 0 : -1;
}

static char *pem_of_cert(const tr_ossl *O, X509 *c)
{
	BIO *b = O->bio_new(O->bio_s_mem());
	char *out = NULL;
	if (b && O->pem_write_x509(b, c)) {
		char *data;
		long len = O->bio_ctrl(b, BIO_CTRL_INFO, 0, &data);
		out = malloc((size_t)len + 1);
		if (out) {
			memcpy(out, data, (size_t)len);
			out[len] = '\0';
		}
	}
	O->bio_free(b);
	return out;
}

int tr_x509_ca_new(const char *td, int64_t now_ms, int64_t valid_ms, tr_key *k, sdk_err *err)
{
	const tr_ossl *O = tr_ossl_load(err);
	if (!O)
		return SDK_EIO;
	EVP_PKEY *pkey = O->pkey_q_keygen(NULL, NULL, "EC", "P-256");
	X509 *c = O->x509_new();
	int rc = 0;
	char san[300];
	snprintf(san, sizeof san, "URI:spiffe://%s", td);
	if (!pkey || !c || set_basics(O, c, now_ms - 60000, now_ms + valid_ms, "Grace") < 0 ||
	    !O->x509_name_add_entry_by_txt(O->x509_get_subject_name(c), "CN", MBSTRING_ASC,
					(const unsigned char *)"Grace trust CA", -1, -1, 0) ||
	    !O->x509_set_issuer_name(c, O->x509_get_subject_name(c)) || !O->x509_set_pubkey(c, pkey) ||
	    add_ext(O, c, c, NID_basic_constraints, "critical,CA:TRUE") < 0 ||
	    add_ext(O, c, c, NID_key_usage, "critical,keyCertSign,cRLSign") < 0 ||
	    add_ext(O, c, c, NID_subject_key_identifier, "hash") < 0 ||
	    add_ext(O, c, c, NID_subject_alt_name, san) < 0 || !O->x509_sign(c, pkey, O->sha256())) {
		rc = ossl_fail(err, "making the CA certificate");
		goto out;
	}
	unsigned char *der = NULL;
	int dlen = O->i2d_x509(c, &der);
	unsigned char *kder = NULL;
	int klen = O->i2d_private_key(pkey, &kder);
	if (dlen <= 0 || klen <= 0) {
		O->crypto_free(der, __FILE__, __LINE__);
		O->crypto_clear_free(kder, klen > 0 ? (size_t)klen : 0, __FILE__, __LINE__);
		rc = ossl_fail(err, "encoding the CA");
		goto out;
	}
	k->pub = malloc((size_t)dlen);
	k->secret = sodium_malloc((size_t)klen);
	if (k->pub && k->secret) {
		memcpy(k->pub, der, (size_t)dlen);
		memcpy(k->secret, kder, (size_t)klen);
		k->pub_len = (size_t)dlen;
		k->secret_len = (size_t)klen;
	} else {
		rc = sdk_fail(err, SDK_EIO, "out of memory");
	}
	O->crypto_free(der, __FILE__, __LINE__);
	O->crypto_clear_free(kder, (size_t)klen, __FILE__, __LINE__);
out:
	O->x509_free(c);
	O->pkey_free(pkey);
	return rc;
}

static X509 *cert_of(const tr_ossl *O, const tr_key *k)
{
	const unsigned char *p = k->pub;
	return O->d2i_x509(NULL, &p, (long)k->pub_len);
}

int tr_x509_issue(const tr_key *ca, const char *spiffe_id, int64_t now_ms, int ttl_s,
		  tr_x509_svid *out, sdk_err *err)
{
	memset(out, 0, sizeof *out);
	const tr_ossl *O = tr_ossl_load(err);
	if (!O)
		return SDK_EIO;
	const unsigned char *p = ca->secret;
	EVP_PKEY *cakey = ca->secret ? O->d2i_auto_private_key(NULL, &p, (long)ca->secret_len) : NULL;
	X509 *cacert = cert_of(O, ca);
	EVP_PKEY *pkey = O->pkey_q_keygen(NULL, NULL, "EC", "P-256");
	X509 *c = O->x509_new();
	BIO *kb = O->bio_new(O->bio_s_mem());
	int rc = 0;
	if (!cakey || !cacert || !pkey || !c || !kb) {
		rc = ossl_fail(err, "loading the CA");
		goto out;
	}
	int64_t until = now_ms + (int64_t)ttl_s * 1000;
	const ASN1_TIME *ca_end = O->x509_get0_not_after(cacert);
	time_t until_t = (time_t)(until / 1000);
	if (O->x509_cmp_time(ca_end, &until_t) < 0) {
		/* never past the CA: its own end */
		struct tm tm;
		if (O->asn1_time_to_tm(ca_end, &tm) == 1)
			until = (int64_t)timegm(&tm) * 1000;
	}
	char san[TR_SPIFFE_ID_MAX + 8];
	snprintf(san, sizeof san, "URI:%s", spiffe_id);
	if (set_basics(O, c, now_ms - 60000, until, "Grace") < 0 ||
	    !O->x509_set_issuer_name(c, O->x509_get_subject_name(cacert)) || !O->x509_set_pubkey(c, pkey) ||
	    add_ext(O, c, cacert, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
	    add_ext(O, c, cacert, NID_key_usage, "critical,digitalSignature,keyAgreement") < 0 ||
	    add_ext(O, c, cacert, NID_ext_key_usage, "serverAuth,clientAuth") < 0 ||
	    add_ext(O, c, cacert, NID_authority_key_identifier, "keyid:always") < 0 ||
	    add_ext(O, c, cacert, NID_subject_alt_name, san) < 0 || !O->x509_sign(c, cakey, O->sha256()) ||
	    !O->pem_write_pkcs8(kb, pkey, NULL, NULL, 0, NULL, NULL)) {
		rc = ossl_fail(err, "issuing the certificate");
		goto out;
	}
	char *data;
	long len = O->bio_ctrl(kb, BIO_CTRL_INFO, 0, &data);
	out->key_pem = malloc((size_t)len + 1);
	out->cert_pem = pem_of_cert(O, c);
	out->bundle_pem = pem_of_cert(O, cacert);
	if (!out->key_pem || !out->cert_pem || !out->bundle_pem) {
		tr_x509_svid_clear(out);
		rc = sdk_fail(err, SDK_EIO, "out of memory");
		goto out;
	}
	memcpy(out->key_pem, data, (size_t)len);
	out->key_pem[len] = '\0';
	out->expires_ms = until / 1000 * 1000;
out:
	if (kb) {
		O->bio_ctrl(kb, BIO_CTRL_SET_CLOSE, BIO_CLOSE, NULL);
		O->bio_free(kb);
	}
	O->x509_free(c);
	O->x509_free(cacert);
	O->pkey_free(pkey);
	O->pkey_free(cakey);
	return rc;
}

static json_t *coord(const tr_ossl *O, EVP_PKEY *pk, const char *name)
{
	BIGNUM *bn = NULL;
	unsigned char buf[32];
	json_t *j = NULL;
	if (O->pkey_get_bn_param(pk, name, &bn) == 1 && O->bn_bn2binpad(bn, buf, sizeof buf) == 32)
		j = tr_b64url_json(buf, sizeof buf);
	O->bn_free(bn);
	return j;
}

json_t *tr_x509_jwk(const tr_key *ca)
{
	const tr_ossl *O = tr_ossl_load(&(sdk_err){ "" });
	if (!O)
		return NULL;
	X509 *c = cert_of(O, ca);
	EVP_PKEY *pk = c ? O->x509_get0_pubkey(c) : NULL;
	json_t *x = pk ? coord(O, pk, OSSL_PKEY_PARAM_EC_PUB_X) : NULL;
	json_t *y = pk ? coord(O, pk, OSSL_PKEY_PARAM_EC_PUB_Y) : NULL;
	size_t cap = sodium_base64_ENCODED_LEN(ca->pub_len, sodium_base64_VARIANT_ORIGINAL);
	char *b64 = malloc(cap);
	json_t *jwk = NULL;
	if (x && y && b64) {
		sodium_bin2base64(b64, cap, ca->pub, ca->pub_len, sodium_base64_VARIANT_ORIGINAL);
		jwk = json_pack("{s:s, s:s, s:O, s:O, s:s, s:[s]}", "kty", "EC", "crv", "P-256", "x",
				x, "y", y, "use", "x509-svid", "x5c", b64);
	}
	json_decref(x);
	json_decref(y);
	free(b64);
	O->x509_free(c);
	return jwk;
}
