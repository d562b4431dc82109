/* OpenSSL's libssl and libevent's TLS bufferevents, loaded at run time by
 * grace serve when nodes are configured (the same reason as
 * src/sdk/dl_table.h: one binary for every process, and only a main
 * process with [node.*] sections speaks TLS). One handle,
 * libevent_openssl, whose dependencies bring libssl and libcrypto; their
 * symbols are found through it. (Members are not named as the functions:
 * some of those are macros.) */
#ifndef GRACE_NODE_TLS_DL_H
#define GRACE_NODE_TLS_DL_H

#include "serve/layer.h"
#include "sdk/err.h"

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stddef.h>

typedef struct node_tls_dl {
	void *lib;
	/* contexts */
	const SSL_METHOD *(*tls_method)(void);
	SSL_CTX *(*ctx_new)(const SSL_METHOD *m);
	void (*ctx_free)(SSL_CTX *c);
	long (*ctx_ctrl)(SSL_CTX *c, int cmd, long larg, void *parg);
	int (*ctx_use_chain_file)(SSL_CTX *c, const char *file);
	int (*ctx_use_key_file)(SSL_CTX *c, const char *file, int type);
	int (*ctx_check_key)(const SSL_CTX *c);
	int (*ctx_load_verify)(SSL_CTX *c, const char *file, const char *dir);
	void (*ctx_set_verify)(SSL_CTX *c, int mode, SSL_verify_cb cb);
	X509 *(*ctx_get0_cert)(const SSL_CTX *c);
	/* connections */
	SSL *(*ssl_new)(SSL_CTX *c);
	void (*ssl_free)(SSL *s);
	X509 *(*get1_peer_cert)(const SSL *s);
	long (*get_verify_result)(const SSL *s);
	const char *(*get_version)(const SSL *s);
	/* certificates */
	void (*x509_free)(X509 *c);
	void *(*x509_get_ext_d2i)(const X509 *c, int nid, int *crit, int *idx);
	const ASN1_TIME *(*x509_get0_not_after)(const X509 *c);
	int (*asn1_time_to_tm)(const ASN1_TIME *s, struct tm *tm);
	int (*sk_num)(const OPENSSL_STACK *st);
	void *(*sk_value)(const OPENSSL_STACK *st, int i);
	void (*general_names_free)(GENERAL_NAMES *g);
	const unsigned char *(*asn1_string_get0_data)(const ASN1_STRING *s);
	int (*asn1_string_length)(const ASN1_STRING *s);
	unsigned long (*err_get_error)(void);
	void (*err_error_string_n)(unsigned long e, char *buf, size_t len);
	/* libevent's TLS bufferevents */
	struct bufferevent *(*bev_ssl_socket_new)(struct event_base *base, evutil_socket_t fd,
						  SSL *ssl, enum bufferevent_ssl_state state,
						  int options);
	SSL *(*bev_ssl_get_ssl)(struct bufferevent *bev);
	void (*bev_ssl_allow_dirty_shutdown)(struct bufferevent *bev, int allow);
	unsigned long (*bev_ssl_get_error)(struct bufferevent *bev);
} node_tls_dl;

/* The table, loaded at the first call; NULL with why in err when the
 * libraries are missing (Debian: libevent-openssl-2.1-7, libssl3). */
const node_tls_dl *node_tls_dl_load(sdk_err *err);

#endif
