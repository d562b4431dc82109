/* JWT-SVIDs with libsodium's Ed25519. The verifier accepts only what the
 * signer makes (alg EdDSA, a kid of ours): no "none", no algorithm
 * confusion. */
#include "kernels/trust/jwt.h"

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

static int bad(sdk_err *err, const char *why)
{
	return sdk_fail(err, TR_EBADTOKEN, "%s", why);
}

/* Decodes one base64url part of at most `max` bytes into a JSON object. */
static json_t *part_json(const char *s, size_t len)
{
	unsigned char buf[TR_JWT_MAX];
	size_t n;
	if (sodium_base642bin(buf, sizeof buf - 1, s, len, NULL, &n, NULL, B64URL) < 0)
		return NULL;
	return json_loadb((char *)buf, n, JSON_REJECT_DUPLICATES, NULL);
}

static int aud_has(json_t *aud, const char *want)
{
	if (json_is_string(aud))
		return !strcmp(json_string_value(aud), want);
	size_t i;
	json_t *v;
	json_array_foreach(aud, i, v)
		if (json_is_string(v) && !strcmp(json_string_value(v), want))
			return 1;
	return 0;
}

int tr_jwt_verify(const char *token, const tr_key *keys, size_t n, const char *audience,
		  int64_t now_ms, json_t **claims, sdk_err *err)
{
	*claims = NULL;
	size_t len = strlen(token);
	if (len > TR_JWT_MAX)
		return bad(err, "token too long");
	const char *d1 = strchr(token, '.');
	const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	if (!d1 || !d2 || strchr(d2 + 1, '.'))
		return bad(err, "not a compact JWS (three parts)");
	json_t *hdr = part_json(token, (size_t)(d1 - token));
	if (!json_is_object(hdr)) {
		json_decref(hdr);
		return bad(err, "the header is not base64url JSON");
	}
	const char *alg = json_string_value(json_object_get(hdr, "alg"));
	const char *kid = json_string_value(json_object_get(hdr, "kid"));
	const char *typ = json_string_value(json_object_get(hdr, "typ"));
	const tr_key *key = NULL;
	for (size_t i = 0; kid && i < n; i++)
		if (keys[i].kind == TR_JWT && !strcmp(keys[i].kid, kid))
			key = &keys[i];
	int rc = 0;
	if (!alg || strcmp(alg, "EdDSA"))
		rc = bad(err, "alg must be EdDSA");
	else if (typ && strcmp(typ, "JWT") && strcmp(typ, "JOSE"))
		rc = bad(err, "typ must be JWT or JOSE");
	else if (!key)
		rc = bad(err, "signed by a key not in the bundle");
	json_decref(hdr);
	if (rc)
		return rc;
	unsigned char sig[crypto_sign_BYTES + 1];
	size_t slen;
	if (sodium_base642bin(sig, sizeof sig, d2 + 1, strlen(d2 + 1), NULL, &slen, NULL, B64URL) <
		    0 ||
	    slen != crypto_sign_BYTES)
		return bad(err, "the signature is not base64url of 64 bytes");
	if (key->pub_len != crypto_sign_PUBLICKEYBYTES ||
	    crypto_sign_verify_detached(sig, (const unsigned char *)token, (size_t)(d2 - token),
					key->pub) != 0)
		return bad(err, "bad signature");
	json_t *cl = part_json(d1 + 1, (size_t)(d2 - d1 - 1));
	if (!json_is_object(cl)) {
		json_decref(cl);
		return bad(err, "the claims are not base64url JSON");
	}
	json_t *exp = json_object_get(cl, "exp");
	json_t *aud = json_object_get(cl, "aud");
	const char *sub = json_string_value(json_object_get(cl, "sub"));
	sdk_err e;
	if (!json_is_integer(exp))
		rc = bad(err, "exp is missing");
	else if (json_integer_value(exp) * 1000 <= now_ms)
		rc = bad(err, "expired");
	else if (!aud || !aud_has(aud, audience))
		rc = bad(err, "the audience is not among aud");
	else if (!sub || tr_spiffe_id_parse(sub, NULL, &e) < 0)
		rc = bad(err, "sub is not a SPIFFE ID");
	if (rc) {
		json_decref(cl);
		return rc;
	}
	*claims = cl;
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
