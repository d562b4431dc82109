/* The node link's TLS context (tls.h). */
#include "serve/node/tls.h"

#include "sdk/svid.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

struct node_tls {
	const node_tls_dl *dl;
	char path[3][PATH_MAX]; /* certificate, key, bundle ("" for none) */
	char domain[256];
	SSL_CTX *ctx;    /* ours: one reference; connections hold their own */
	struct stat seen[3]; /* the files as last read */
	int64_t expires_ms;
};

node_tls *node_tls_new(const char *cert, const char *key, const char *bundle, const char *domain,
		       sdk_err *err)
{
	const node_tls_dl *dl = node_tls_dl_load(err);
	if (!dl)
		return NULL;
	node_tls *t = calloc(1, sizeof *t);
	if (!t) {
		sdk_fail(err, SDK_EIO, "out of memory");
		return NULL;
	}
	t->dl = dl;
	const char *paths[3] = { cert, key, bundle ? bundle : "" };
	for (int i = 0; i < 3; i++)
		if (snprintf(t->path[i], sizeof t->path[i], "%s", paths[i]) >= (int)sizeof t->path[i]) {
			sdk_fail(err, SDK_EINVAL, "a certificate path is too long");
			free(t);
			return NULL;
		}
	snprintf(t->domain, sizeof t->domain, "%s", domain);
	return t;
}

void node_tls_free(node_tls *t)
{
	if (!t)
		return;
	if (t->ctx)
		t->dl->ctx_free(t->ctx);
	free(t);
}

static void ssl_why(const node_tls_dl *dl, const char *what, sdk_err *err)
{
	char buf[200] = "";
	unsigned long e = dl->err_get_error();
	if (e)
		dl->err_error_string_n(e, buf, sizeof buf);
	while (dl->err_get_error())
		; /* the rest of the queue is about the same failure */
	sdk_fail(err, SDK_EINVAL, "%s%s%s", what, buf[0] ? ": " : "", buf);
}

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static int64_t not_after_ms(const node_tls_dl *dl, X509 *cert)
{
	struct tm tm;
	const ASN1_TIME *na = cert ? dl->x509_get0_not_after(cert) : NULL;
	if (!na || dl->asn1_time_to_tm(na, &tm) != 1)
		return 0;
	return (int64_t)timegm(&tm) * 1000;
}

int node_tls_reload(node_tls *t, bool force, sdk_err *err)
{
	struct stat now[3] = { 0 };
	char (*path)[PATH_MAX] = t->path;
	bool mutual = path[2][0] != '\0';
	bool changed = force || !t->ctx;
	for (int i = 0; i < (mutual ? 3 : 2); i++) {
		if (stat(path[i], &now[i]) < 0) {
			return sdk_fail(err, SDK_EIO, "%s: %s", path[i], strerror(errno));
		}
		if (!same_file(&now[i], &t->seen[i]))
			changed = true;
	}
	if (!changed)
		return 0;
	const node_tls_dl *dl = t->dl;
	SSL_CTX *ctx = dl->ctx_new(dl->tls_method());
	if (!ctx) {
		ssl_why(dl, "SSL_CTX_new", err);
		return -1;
	}
	/* TLS 1.3 only: both ends are Grace, and 1.3 has no renegotiation and
	 * no cipher suite worth choosing. */
	if (dl->ctx_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, TLS1_3_VERSION, NULL) != 1) {
		ssl_why(dl, "TLS 1.3", err);
		goto fail;
	}
	if (dl->ctx_use_chain_file(ctx, path[0]) != 1) {
		ssl_why(dl, path[0], err);
		goto fail;
	}
	if (dl->ctx_use_key_file(ctx, path[1], SSL_FILETYPE_PEM) != 1 || dl->ctx_check_key(ctx) != 1) {
		ssl_why(dl, path[1], err);
		goto fail;
	}
	if (mutual && dl->ctx_load_verify(ctx, path[2], NULL) != 1) {
		ssl_why(dl, path[2], err);
		goto fail;
	}
	/* The link: both ends show a certificate (the server asks the client
	 * for one and fails the handshake without it). The door: none asked. */
	dl->ctx_set_verify(ctx, mutual ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
				       : SSL_VERIFY_NONE,
			   NULL);
	if (t->ctx)
		dl->ctx_free(t->ctx); /* open connections keep their references */
	t->ctx = ctx;
	memcpy(t->seen, now, sizeof now);
	t->expires_ms = not_after_ms(dl, dl->ctx_get0_cert(ctx));
	return 1;
fail:
	dl->ctx_free(ctx);
	return -1;
}

SSL *node_tls_ssl(node_tls *t)
{
	return t->ctx ? t->dl->ssl_new(t->ctx) : NULL;
}

const node_tls_dl *node_tls_lib(const node_tls *t) { return t->dl; }

const char *node_tls_cert_path(const node_tls *t) { return t->path[0]; }

int64_t node_tls_expires_ms(const node_tls *t) { return t->ctx ? t->expires_ms : 0; }

int node_tls_node_of(const char *domain, const char *id, char *name, size_t len)
{
	char w[SDK_SPIFFE_ID_MAX];
	static const char prefix[] = SDK_SVID_NODE_PREFIX;
	if (sdk_svid_name_of(domain, id, w, sizeof w) < 0 || strncmp(w, prefix, sizeof prefix - 1))
		return -1;
	size_t n = strlen(w + sizeof prefix - 1);
	if (!n || n >= len)
		return -1;
	memcpy(name, w + sizeof prefix - 1, n + 1);
	return 0;
}

int node_tls_peer(const node_tls *t, SSL *ssl, char *name, size_t len, sdk_err *err)
{
	const node_tls_dl *dl = t->dl;
	if (dl->get_verify_result(ssl) != X509_V_OK) {
		return sdk_fail(err, SDK_EDENIED, "the peer's certificate did not verify");
	}
	X509 *cert = dl->get1_peer_cert(ssl);
	if (!cert) {
		return sdk_fail(err, SDK_EDENIED, "the peer showed no certificate");
	}
	GENERAL_NAMES *sans = dl->x509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	dl->x509_free(cert);
	int rc = -1, uris = 0;
	char id[320] = "";
	for (int i = 0; sans && i < dl->sk_num((const OPENSSL_STACK *)sans); i++) {
		const GENERAL_NAME *g = dl->sk_value((const OPENSSL_STACK *)sans, i);
		if (g->type != GEN_URI)
			continue;
		uris++;
		int n = dl->asn1_string_length(g->d.uniformResourceIdentifier);
		if (n > 0 && (size_t)n < sizeof id) {
			memcpy(id, dl->asn1_string_get0_data(g->d.uniformResourceIdentifier), (size_t)n);
			id[n] = '\0';
		}
	}
	if (sans)
		dl->general_names_free(sans);
	/* An X.509-SVID has exactly one URI SAN (the SPIFFE X509-SVID spec). */
	if (uris != 1 || (size_t)strlen(id) == 0)
		sdk_fail(err, SDK_EDENIED, "the peer's certificate has %d URI SANs, not one", uris);
	else if (node_tls_node_of(t->domain, id, name, len) < 0)
		sdk_fail(err, SDK_EDENIED, "the peer is %.200s, not a node of spiffe://%.40s", id,
			 t->domain);
	else
		rc = 0;
	return rc;
}
