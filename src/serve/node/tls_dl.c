/* libssl and libevent_openssl at run time (tls_dl.h says why). */
#include "serve/node/tls_dl.h"

#include "sdk/dl_table.h"

#include <stdbool.h>
#include <stdio.h>

static const char *const names[] = { "libevent_openssl-2.1.so.7" };

static const sdk_dl_sym syms[] = {
#define S(sym, member) SDK_DL_SYM(node_tls_dl, sym, member)
	S("TLS_method", tls_method),
	S("SSL_CTX_new", ctx_new),
	S("SSL_CTX_free", ctx_free),
	S("SSL_CTX_ctrl", ctx_ctrl),
	S("SSL_CTX_use_certificate_chain_file", ctx_use_chain_file),
	S("SSL_CTX_use_PrivateKey_file", ctx_use_key_file),
	S("SSL_CTX_check_private_key", ctx_check_key),
	S("SSL_CTX_load_verify_locations", ctx_load_verify),
	S("SSL_CTX_set_verify", ctx_set_verify),
	S("SSL_CTX_get0_certificate", ctx_get0_cert),
	S("SSL_new", ssl_new),
	S("SSL_free", ssl_free),
	S("SSL_get1_peer_certificate", get1_peer_cert),
	S("SSL_get_verify_result", get_verify_result),
	S("SSL_get_version", get_version),
	S("X509_free", x509_free),
	S("X509_get_ext_d2i", x509_get_ext_d2i),
	S("X509_get0_notAfter", x509_get0_not_after),
	S("ASN1_TIME_to_tm", asn1_time_to_tm),
	S("OPENSSL_sk_num", sk_num),
	S("OPENSSL_sk_value", sk_value),
	S("GENERAL_NAMES_free", general_names_free),
	S("ASN1_STRING_get0_data", asn1_string_get0_data),
	S("ASN1_STRING_length", asn1_string_length),
	S("ERR_get_error", err_get_error),
	S("ERR_error_string_n", err_error_string_n),
	S("bufferevent_openssl_socket_new", bev_ssl_socket_new),
	S("bufferevent_openssl_get_ssl", bev_ssl_get_ssl),
	S("bufferevent_openssl_set_allow_dirty_shutdown", bev_ssl_allow_dirty_shutdown),
	S("bufferevent_get_openssl_error", bev_ssl_get_error),
#undef S
};

static node_tls_dl table; /* for the life of the process: the loop's thread only */
static bool tried, loaded;
static sdk_err load_error;

const node_tls_dl *node_tls_dl_load(sdk_err *err)
{
	if (!tried) {
		tried = true;
		loaded = sdk_dl_table_open(&table.lib, names, sizeof names / sizeof *names, syms,
					   sizeof syms / sizeof *syms, &table, "libevent_openssl", &load_error) == 0;
	}
	if (!loaded) {
		sdk_fail(err, SDK_EIO, "%s", load_error.msg);
		return NULL;
	}
	return &table;
}
