/* libcrypto (OpenSSL 3), loaded at run time by the trust kernel when it
 * first makes an X.509 certificate. Every kernel is this same `grace`
 * binary, and linking libcrypto cost each process about 400 KiB of private
 * memory (its relocations: measured with /proc/PID/smaps), in twenty
 * kernels, their standbys and the main process, for code only the trust
 * kernel runs. Grace compiles against OpenSSL's headers for the types and
 * constants; the functions it calls live in this table. (The members are
 * not named as the functions: some of those are macros.) */
#ifndef GRACE_TRUST_OSSL_DL_H
#define GRACE_TRUST_OSSL_DL_H

#include "kernels/layer.h"

#include "sdk/err.h"

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <time.h>

typedef struct tr_ossl {
	void *lib;
	/* keys */
	EVP_PKEY *(*pkey_q_keygen)(OSSL_LIB_CTX *ctx, const char *propq, const char *type, ...);
	void (*pkey_free)(EVP_PKEY *pk);
	int (*pkey_get_bn_param)(const EVP_PKEY *pk, const char *name, BIGNUM **bn);
	int (*i2d_private_key)(const EVP_PKEY *pk, unsigned char **pp);
	EVP_PKEY *(*d2i_auto_private_key)(EVP_PKEY **a, const unsigned char **pp, long len);
	const EVP_MD *(*sha256)(void);
	int (*pem_write_pkcs8)(BIO *b, const EVP_PKEY *x, const EVP_CIPHER *enc, const char *kstr,
			       int klen, pem_password_cb *cb, void *u);
	int (*rand_bytes)(unsigned char *buf, int num);
	/* numbers and times */
	BIGNUM *(*bn_bin2bn)(const unsigned char *s, int len, BIGNUM *ret);
	int (*bn_bn2binpad)(const BIGNUM *a, unsigned char *to, int tolen);
	void (*bn_free)(BIGNUM *a);
	ASN1_INTEGER *(*bn_to_asn1_integer)(const BIGNUM *bn, ASN1_INTEGER *ai);
	int (*asn1_time_to_tm)(const ASN1_TIME *s, struct tm *tm);
	/* certificates */
	X509 *(*x509_new)(void);
	void (*x509_free)(X509 *c);
	ASN1_INTEGER *(*x509_get_serial)(X509 *c);
	int (*x509_set_version)(X509 *c, long v);
	ASN1_TIME *(*x509_time_adj_ex)(ASN1_TIME *s, int day, long sec, time_t *t);
	ASN1_TIME *(*x509_getm_not_before)(const X509 *c);
	ASN1_TIME *(*x509_getm_not_after)(const X509 *c);
	const ASN1_TIME *(*x509_get0_not_after)(const X509 *c);
	int (*x509_cmp_time)(const ASN1_TIME *s, time_t *t);
	X509_NAME *(*x509_get_subject_name)(const X509 *c);
	int (*x509_name_add_entry_by_txt)(X509_NAME *n, const char *field, int type,
					  const unsigned char *bytes, int len, int loc, int set);
	int (*x509_set_issuer_name)(X509 *c, const X509_NAME *n);
	int (*x509_set_pubkey)(X509 *c, EVP_PKEY *pk);
	EVP_PKEY *(*x509_get0_pubkey)(const X509 *c);
	int (*x509_sign)(X509 *c, EVP_PKEY *pk, const EVP_MD *md);
	int (*x509_add_ext)(X509 *c, X509_EXTENSION *ex, int loc);
	void (*x509_extension_free)(X509_EXTENSION *ex);
	void (*x509v3_set_ctx)(X509V3_CTX *ctx, X509 *issuer, X509 *subject, X509_REQ *req,
			       X509_CRL *crl, int flags);
	X509_EXTENSION *(*x509v3_ext_conf_nid)(LHASH_OF(CONF_VALUE) *conf, X509V3_CTX *ctx,
					       int nid, const char *value);
	int (*i2d_x509)(const X509 *c, unsigned char **out);
	X509 *(*d2i_x509)(X509 **c, const unsigned char **in, long len);
	int (*pem_write_x509)(BIO *b, const X509 *c);
	/* memory */
	BIO *(*bio_new)(const BIO_METHOD *m);
	const BIO_METHOD *(*bio_s_mem)(void);
	long (*bio_ctrl)(BIO *b, int cmd, long larg, void *parg);
	int (*bio_free)(BIO *b);
	void (*crypto_free)(void *p, const char *file, int line);
	void (*crypto_clear_free)(void *p, size_t n, const char *file, int line);
} tr_ossl;

/* The table, loaded once per process from any thread; NULL with why in
 * err when libcrypto cannot be loaded (then no X.509-SVID can be made; the
 * rest of the trust kernel works). */
const tr_ossl *tr_ossl_load(sdk_err *err);

#endif
