/* libcrypto at run time (ossl_dl.h says why). */
#include "kernels/trust/ossl_dl.h"

#include "sdk/dl_table.h"

#include <pthread.h>
#include <stdbool.h>

static const char *const names[] = { "libcrypto.so.3" };

static const sdk_dl_sym syms[] = {
#define S(sym, member) SDK_DL_SYM(tr_ossl, sym, member)
	S("EVP_PKEY_Q_keygen", pkey_q_keygen),
	S("EVP_PKEY_free", pkey_free),
	S("EVP_PKEY_get_bn_param", pkey_get_bn_param),
	S("i2d_PrivateKey", i2d_private_key),
	S("d2i_AutoPrivateKey", d2i_auto_private_key),
	S("EVP_sha256", sha256),
	S("PEM_write_bio_PKCS8PrivateKey", pem_write_pkcs8),
	S("RAND_bytes", rand_bytes),
	S("BN_bin2bn", bn_bin2bn),
	S("BN_bn2binpad", bn_bn2binpad),
	S("BN_free", bn_free),
	S("BN_to_ASN1_INTEGER", bn_to_asn1_integer),
	S("ASN1_TIME_to_tm", asn1_time_to_tm),
	S("X509_new", x509_new),
	S("X509_free", x509_free),
	S("X509_get_serialNumber", x509_get_serial),
	S("X509_set_version", x509_set_version),
	S("X509_time_adj_ex", x509_time_adj_ex),
	S("X509_getm_notBefore", x509_getm_not_before),
	S("X509_getm_notAfter", x509_getm_not_after),
	S("X509_get0_notAfter", x509_get0_not_after),
	S("X509_cmp_time", x509_cmp_time),
	S("X509_get_subject_name", x509_get_subject_name),
	S("X509_NAME_add_entry_by_txt", x509_name_add_entry_by_txt),
	S("X509_set_issuer_name", x509_set_issuer_name),
	S("X509_set_pubkey", x509_set_pubkey),
	S("X509_get0_pubkey", x509_get0_pubkey),
	S("X509_sign", x509_sign),
	S("X509_add_ext", x509_add_ext),
	S("X509_EXTENSION_free", x509_extension_free),
	S("X509V3_set_ctx", x509v3_set_ctx),
	S("X509V3_EXT_conf_nid", x509v3_ext_conf_nid),
	S("i2d_X509", i2d_x509),
	S("d2i_X509", d2i_x509),
	S("PEM_write_bio_X509", pem_write_x509),
	S("BIO_new", bio_new),
	S("BIO_s_mem", bio_s_mem),
	S("BIO_ctrl", bio_ctrl),
	S("BIO_free", bio_free),
	S("CRYPTO_free", crypto_free),
	S("CRYPTO_clear_free", crypto_clear_free),
#undef S
};

static tr_ossl table; /* for the life of the process */
static bool loaded;
static sdk_err load_error;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void)
{
	loaded = sdk_dl_table_open(&table.lib, names, sizeof names / sizeof *names, syms,
				   sizeof syms / sizeof *syms, &table, "libcrypto", &load_error) == 0;
}

const tr_ossl *tr_ossl_load(sdk_err *err)
{
	pthread_once(&once, load);
	if (!loaded) {
		sdk_fail(err, SDK_EIO, "%s", load_error.msg);
		return NULL;
	}
	return &table;
}
