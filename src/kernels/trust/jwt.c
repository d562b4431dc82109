/* JWT-SVIDs with libsodium's Ed25519. The verifier accepts only what the
 * signer makes (alg EdDSA, a kid of ours): no "none", no algorithm
 * confusion. */
#include "kernels/trust/jwt.h"

#include "sdk/svid.h"

#include "kernels/trust/spiffe.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define B64URL sodium_base64_VARIANT_URLSAFE_NO_PADDING

json_t *tr_b64url_json(const unsigned char *data, size_t len)
{
	size_t cap = sodium_base64_ENCODED_LEN(len, B64URL);
	char *buf = malloc(cap);
	if (!buf)
		return NULL;
	sodium_bin2base64(buf, cap, data, len, B64URL);
	json_t *j = json_string(buf);
	free(buf);
	return j;
}

/* Appends base64url(data) to out at *pos (out has room: the caller sized it). */
static void b64_append(char *out, size_t *pos, size_t cap, const unsigned char *data, size_t len)
{
	sodium_bin2base64(out + *pos, cap - *pos, data, len, B64URL);
	*pos += strlen(out + *pos);
}

int tr_jwt_sign(const tr_key *key, const char *sub, json_t *aud, int64_t now_ms, int ttl_s,
		char **out, int64_t *exp_s, sdk_err *err)
{
	if (key->kind != TR_JWT || !key->secret || key->secret_len != crypto_sign_SEEDBYTES)
		return sdk_fail(err, SDK_EINVAL, "not a JWT signing key");
	int64_t iat = now_ms / 1000, exp = iat + ttl_s;
	json_t *hdr = json_pack("{s:s, s:s, s:s}", "alg", "EdDSA", "typ", "JWT", "kid", key->kid);
	json_t *cl = json_pack("{s:s, s:O, s:I, s:I}", "sub", sub, "aud", aud, "exp",
			       (json_int_t)exp, "iat", (json_int_t)iat);
	char *h = hdr ? json_dumps(hdr, JSON_COMPACT) : NULL;
	char *c = cl ? json_dumps(cl, JSON_COMPACT) : NULL;
	json_decref(hdr);
	json_decref(cl);
	if (!h || !c) {
		free(h);
		free(c);
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	size_t cap = sodium_base64_ENCODED_LEN(strlen(h), B64URL) +
		     sodium_base64_ENCODED_LEN(strlen(c), B64URL) +
		     sodium_base64_ENCODED_LEN(crypto_sign_BYTES, B64URL) + 4;
	char *tok = malloc(cap);
	if (!tok) {
		free(h);
		free(c);
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	size_t pos = 0;
	b64_append(tok, &pos, cap, (unsigned char *)h, strlen(h));
	tok[pos++] = '.';
	b64_append(tok, &pos, cap, (unsigned char *)c, strlen(c));
	free(h);
	free(c);
	unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
	unsigned char sig[crypto_sign_BYTES];
	crypto_sign_seed_keypair(pk, sk, key->secret);
	crypto_sign_detached(sig, NULL, (unsigned char *)tok, pos, sk);
	sodium_memzero(sk, sizeof sk);
	tok[pos++] = '.';
	b64_append(tok, &pos, cap, sig, sizeof sig);
	*out = tok;
	*exp_s = exp;
	return 0;
}

struct keyset {
	const tr_key *keys;
	size_t n;
};

static bool key_of(const char *kid, unsigned char pk[crypto_sign_PUBLICKEYBYTES], void *arg)
{
	const struct keyset *ks = arg;
	for (size_t i = 0; i < ks->n; i++)
		if (ks->keys[i].kind == TR_JWT && !strcmp(ks->keys[i].kid, kid) &&
		    ks->keys[i].pub_len == crypto_sign_PUBLICKEYBYTES) {
			memcpy(pk, ks->keys[i].pub, crypto_sign_PUBLICKEYBYTES);
			return true;
		}
	return false;
}

int tr_jwt_verify(const char *token, const tr_key *keys, size_t n, const char *audience,
		  int64_t now_ms, json_t **claims, sdk_err *err)
{
	struct keyset ks = { keys, n };
	int rc = sdk_svid_check(token, key_of, &ks, audience, now_ms, claims, err);
	if (rc == SDK_EIO)
		return rc;
	if (rc) {
		char why[sizeof err->msg];
		snprintf(why, sizeof why, "%s", err->msg); /* sdk_fail writes err->msg */
		return sdk_fail(err, TR_EBADTOKEN, "%s", why);
	}
	sdk_err e;
	if (tr_spiffe_id_parse(json_string_value(json_object_get(*claims, "sub")), NULL, &e) < 0) {
		json_decref(*claims);
		*claims = NULL;
		return sdk_fail(err, TR_EBADTOKEN, "sub is not a SPIFFE ID");
	}
	return 0;
}

json_t *tr_jwt_jwk(const tr_key *key)
{
	json_t *x = tr_b64url_json(key->pub, key->pub_len);
	if (!x)
		return NULL;
	return json_pack("{s:s, s:s, s:o, s:s, s:s}", "kty", "OKP", "crv", "Ed25519", "x", x,
			 "kid", key->kid, "use", "jwt-svid");
}
