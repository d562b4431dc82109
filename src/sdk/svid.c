/* JWT-SVIDs in the runtime: renewal, verification, the cache per callee
 * and the trust bundle (svid.h). */
#include "sdk/svid.h"

#include "sdk/call.h"
#include "sdk/clock.h"
#include "sdk/log.h"

#include <event2/event.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define B64URL sodium_base64_VARIANT_URLSAFE_NO_PADDING
#define SVIDS_MAX 64          /* callees one process keeps SVIDs for */
#define SVID_FETCH_MS 2000    /* a fetch's deadline: a first call waits at most this */
#define SVID_RETRY_MIN_MS 500 /* after a failed fetch, then doubling */
#define SVID_RETRY_MAX_MS 30000
#define SVIDS_TICK_MS 1000    /* renewals and retries are looked for this often */
#define SVIDS_HOLD_MS 2000    /* calls wait at most this long for the attestation */
#define BUNDLE_FETCH_MS 2000
#define BUNDLE_REFRESH_MS 300000 /* without a hint in the bundle */
#define BUNDLE_KID_REFETCH_MS 5000 /* an unknown kid refetches at most this often */
#define BUNDLE_RETRY_MS 1000   /* no bundle: at most one fetch this often */
#define BUNDLE_WAITERS_MAX 1024

/* ---- pure pieces */

int64_t sdk_svid_renew_at(int64_t got_ms, int64_t expires_ms, uint32_t rnd)
{
	int64_t life = expires_ms - got_ms;
	if (life <= 0)
		return got_ms;
	int64_t tenth = life / 10;
	int64_t at = got_ms + life / 2 - tenth + (tenth ? (int64_t)(rnd % (uint64_t)(2 * tenth + 1)) : 0);
	if (at > expires_ms - 1000)
		at = expires_ms - 1000;
	return at < got_ms ? got_ms : at;
}

int sdk_svid_id(const char *domain, const char *name, char *out, size_t len)
{
	int n;
	if (!strcmp(name, "grace"))
		n = snprintf(out, len, "spiffe://%s/grace", domain);
	else if (!strncmp(name, SDK_SVID_NODE_PREFIX, strlen(SDK_SVID_NODE_PREFIX)))
		n = snprintf(out, len, "spiffe://%s/%s", domain, name); /* spiffe://D/node/NAME */
	else
		n = snprintf(out, len, "spiffe://%s/kernel/%s", domain, name);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* The name of [a-z0-9_]+ after `prefix` at p, or NULL. */
static const char *name_after(const char *p, const char *prefix)
{
	size_t pre = strlen(prefix);
	if (strncmp(p, prefix, pre))
		return NULL;
	p += pre;
	size_t n = strlen(p);
	return n && strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789_") == n ? p : NULL;
}

int sdk_svid_name_of(const char *domain, const char *id, char *name, size_t len)
{
	size_t d = strlen(domain);
	if (strncmp(id, "spiffe://", 9) || strncmp(id + 9, domain, d) || id[9 + d] != '/')
		return -1;
	const char *p = id + 9 + d + 1;
	if (!strcmp(p, "grace")) {
		snprintf(name, len, "grace");
		return len > 5 ? 0 : -1;
	}
	/* .../node/NAME is the workload "node/NAME" (kernel names never hold
	 * '/', so the two cannot be mistaken), .../kernel/NAME is "NAME". */
	const char *from = name_after(p, SDK_SVID_NODE_PREFIX) ? p : name_after(p, "kernel/");
	size_t n = from ? strlen(from) : 0;
	if (!from || n >= len)
		return -1;
	memcpy(name, from, n + 1);
	return 0;
}

static json_t *part_json(const char *s, size_t len)
{
	unsigned char buf[SDK_SVID_MAX];
	size_t n;
	if (sodium_base642bin(buf, sizeof buf - 1, s, len, NULL, &n, NULL, B64URL) < 0)
		return NULL;
	return json_loadb((char *)buf, n, JSON_REJECT_DUPLICATES, NULL);
}

static bool aud_has(const json_t *aud, const char *want)
{
	if (json_is_string(aud))
		return !strcmp(json_string_value(aud), want);
	size_t i;
	json_t *v;
	json_array_foreach(aud, i, v)
		if (json_is_string(v) && !strcmp(json_string_value(v), want))
			return true;
	return false;
}

/* The Ed25519 public key of kid in jwks; false when none. */
static bool jwks_key(const json_t *jwks, const char *kid, unsigned char pk[crypto_sign_PUBLICKEYBYTES])
{
	size_t i;
	json_t *k;
	json_array_foreach(json_object_get(jwks, "keys"), i, k) {
		const char *id = json_string_value(json_object_get(k, "kid"));
		const char *use = json_string_value(json_object_get(k, "use"));
		const char *kty = json_string_value(json_object_get(k, "kty"));
		const char *crv = json_string_value(json_object_get(k, "crv"));
		const char *x = json_string_value(json_object_get(k, "x"));
		size_t n;
		if (!id || strcmp(id, kid) || !kty || strcmp(kty, "OKP") || !crv ||
		    strcmp(crv, "Ed25519") || (use && strcmp(use, "jwt-svid")) || !x)
			continue;
		if (sodium_base642bin(pk, crypto_sign_PUBLICKEYBYTES, x, strlen(x), NULL, &n, NULL,
				      B64URL) == 0 &&
		    n == crypto_sign_PUBLICKEYBYTES)
			return true;
	}
	return false;
}

int sdk_svid_check(const char *token, sdk_svid_key_fn find, void *arg, const char *audience,
		   int64_t now_ms, json_t **claims, sdk_err *err)
{
	*claims = NULL;
	if (sodium_init() < 0)
		return sdk_fail(err, SDK_EIO, "libsodium failed to initialise");
	size_t len = strlen(token);
	if (len > SDK_SVID_MAX)
		return sdk_fail(err, SDK_EDENIED, "the SVID is too long");
	const char *d1 = strchr(token, '.');
	const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	if (!d1 || !d2 || strchr(d2 + 1, '.'))
		return sdk_fail(err, SDK_EDENIED, "the SVID is not a compact JWS (three parts)");
	json_t *hdr = part_json(token, (size_t)(d1 - token));
	const char *alg = json_string_value(json_object_get(hdr, "alg"));
	const char *kid = json_string_value(json_object_get(hdr, "kid"));
	const char *typ = json_string_value(json_object_get(hdr, "typ"));
	unsigned char pk[crypto_sign_PUBLICKEYBYTES];
	int rc = 0;
	if (!json_is_object(hdr))
		rc = sdk_fail(err, SDK_EDENIED, "the SVID's header is not base64url JSON");
	else if (!alg || strcmp(alg, "EdDSA"))
		rc = sdk_fail(err, SDK_EDENIED, "the SVID's alg must be EdDSA");
	else if (typ && strcmp(typ, "JWT") && strcmp(typ, "JOSE"))
		rc = sdk_fail(err, SDK_EDENIED, "the SVID's typ must be JWT or JOSE");
	else if (!kid)
		rc = sdk_fail(err, SDK_EDENIED, "the SVID names no key (kid)");
	else if (!find(kid, pk, arg))
		rc = sdk_fail(err, SDK_ENOTFOUND, "the SVID is signed by a key not in the bundle");
	json_decref(hdr);
	if (rc)
		return rc;
	unsigned char sig[crypto_sign_BYTES + 1];
	size_t slen;
	if (sodium_base642bin(sig, sizeof sig, d2 + 1, strlen(d2 + 1), NULL, &slen, NULL, B64URL) <
		    0 ||
	    slen != crypto_sign_BYTES ||
	    crypto_sign_verify_detached(sig, (const unsigned char *)token, (size_t)(d2 - token), pk))
		return sdk_fail(err, SDK_EDENIED, "the SVID's signature is bad");
	json_t *cl = part_json(d1 + 1, (size_t)(d2 - d1 - 1));
	json_t *exp = json_object_get(cl, "exp");
	json_t *aud = json_object_get(cl, "aud");
	const char *s = json_string_value(json_object_get(cl, "sub"));
	if (!json_is_object(cl))
		rc = sdk_fail(err, SDK_EDENIED, "the SVID's claims are not base64url JSON");
	else if (!json_is_integer(exp))
		rc = sdk_fail(err, SDK_EDENIED, "the SVID has no exp");
	else if (json_integer_value(exp) <= now_ms / 1000)
		rc = sdk_fail(err, SDK_EDENIED, "the SVID has expired");
	else if (!aud || !aud_has(aud, audience))
		rc = sdk_fail(err, SDK_EDENIED, "the SVID is not for this audience (aud)");
	else if (!s || !*s)
		rc = sdk_fail(err, SDK_EDENIED, "the SVID has no usable sub");
	if (rc) {
		json_decref(cl);
		return rc;
	}
	*claims = cl;
	return 0;
}

static bool jwks_find(const char *kid, unsigned char pk[crypto_sign_PUBLICKEYBYTES], void *arg)
{
	return jwks_key(arg, kid, pk);
}

/* sdk_svid_verify, and the token's exp (seconds) in *exp_s. */
static int verify_exp(const char *token, const json_t *jwks, const char *audience,
		      int64_t now_ms, char *sub, size_t sublen, int64_t *exp_s, sdk_err *err)
{
	json_t *cl;
	int rc = sdk_svid_check(token, jwks_find, (void *)jwks, audience, now_ms, &cl, err);
	if (rc)
		return rc;
	const char *s = json_string_value(json_object_get(cl, "sub"));
	*exp_s = json_integer_value(json_object_get(cl, "exp"));
	if (strlen(s) >= sublen)
		rc = sdk_fail(err, SDK_EDENIED, "the SVID has no usable sub");
	else
		snprintf(sub, sublen, "%s", s);
	json_decref(cl);
	return rc;
}

int sdk_svid_verify(const char *token, const json_t *jwks, const char *audience,
		    int64_t now_ms, char *sub, size_t sublen, sdk_err *err)
{
	int64_t exp_s;
	return verify_exp(token, jwks, audience, now_ms, sub, sublen, &exp_s, err);
}

/* ---- the caller's side */

struct svid_entry {
	struct sdk_svids *s; /* the arg of its fetch: no state of its own to free */
	char callee[64];
	char *token;         /* malloc'd, or NULL */
	int64_t expires_ms;  /* wall clock */
	int64_t renew_ms;    /* wall clock */
	int64_t retry_ms;    /* after a failure: no fetch before this */
	unsigned backoff_ms;
	bool fetching;
};

struct sdk_svids {
	struct sdk_caller *c;
	char domain[256];
	unsigned ttl_s;
	sdk_svids_cb cb;
	void *arg;
	struct event *tick;
	bool held;            /* the process attests: no fetch yet */
	int64_t held_until;   /* mono: then calls go on without waiting for it */
	struct svid_entry e[SVIDS_MAX];
	size_t n;
};

static void fetch(sdk_svids *s, size_t i, int64_t now_ms);

static void fetch_failed(sdk_svids *s, struct svid_entry *e, int64_t now_ms, const char *why)
{
	e->backoff_ms = e->backoff_ms ? e->backoff_ms * 2 : SVID_RETRY_MIN_MS;
	if (e->backoff_ms > SVID_RETRY_MAX_MS)
		e->backoff_ms = SVID_RETRY_MAX_MS;
	e->retry_ms = now_ms + e->backoff_ms;
	sdk_debug("no SVID for calls to %s (%s): %s, again in %u ms", e->callee, why,
		  e->token ? "the one in hand is kept until it expires" : "calls go without one",
		  e->backoff_ms);
	(void)s;
}

static void on_fetched(int status, const char *body, size_t len, double ms, const char *error,
		       void *arg)
{
	(void)ms;
	struct svid_entry *e = arg;
	sdk_svids *s = e->s;
	e->fetching = false;
	int64_t now = sdk_wall_ms();
	json_t *j = status == 200 ? json_loadb(body, len, 0, NULL) : NULL;
	json_t *one = json_array_get(json_object_get(j, "svids"), 0);
	const char *tok = json_string_value(json_object_get(one, "svid"));
	json_t *exp = json_object_get(one, "expires_at");
	if (tok && strlen(tok) <= SDK_SVID_MAX && json_is_integer(exp) &&
	    json_integer_value(exp) * 1000 > now) {
		char *copy = strdup(tok);
		if (copy) {
			free(e->token);
			e->token = copy;
			e->expires_ms = json_integer_value(exp) * 1000;
			e->renew_ms = sdk_svid_renew_at(now, e->expires_ms, randombytes_random());
			e->backoff_ms = 0;
			e->retry_ms = 0;
		} else {
			fetch_failed(s, e, now, "out of memory");
		}
	} else {
		char why[200];
		snprintf(why, sizeof why, "%d %s%.*s", status, error ? error : "",
			 status ? (int)(len > 120 ? 120 : len) : 0, body ? body : "");
		fetch_failed(s, e, now, why);
	}
	json_decref(j);
	if (s->cb)
		s->cb(e->callee, s->arg);
}

static void fetch(sdk_svids *s, size_t i, int64_t now_ms)
{
	struct svid_entry *e = &s->e[i];
	char aud[SDK_SPIFFE_ID_MAX], body[SDK_SPIFFE_ID_MAX + 64];
	if (sdk_svid_id(s->domain, e->callee, aud, sizeof aud) < 0) {
		fetch_failed(s, e, now_ms, "no SPIFFE ID");
		return;
	}
	snprintf(body, sizeof body, "{\"audience\":\"%s\",\"ttl_s\":%u}", aud, s->ttl_s);
	e->fetching = true;
	if (sdk_call(s->c, "trust", "POST", "/jwt-svid", body, strlen(body), NULL, SVID_FETCH_MS,
		     on_fetched, e) < 0) {
		e->fetching = false;
		fetch_failed(s, e, now_ms, "the call could not start");
	}
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	sdk_svids *s = arg;
	int64_t now = sdk_wall_ms();
	if (s->held && sdk_mono_ms() >= s->held_until)
		sdk_svids_release(s);
	for (size_t i = 0; i < s->n; i++) {
		struct svid_entry *e = &s->e[i];
		if (e->token && now >= e->expires_ms) {
			free(e->token);
			e->token = NULL;
		}
		/* Renewed at half its life; a failure keeps the one in hand. */
		if (!e->fetching && e->token && now >= e->renew_ms && now >= e->retry_ms)
			fetch(s, i, now);
	}
}

void sdk_svids_release(sdk_svids *s)
{
	bool was = s->held;
	s->held = false;
	/* Fetches refused before the attestation may succeed now: no backoff. */
	for (size_t i = 0; i < s->n; i++) {
		s->e[i].retry_ms = 0;
		s->e[i].backoff_ms = 0;
	}
	/* The calls held meanwhile wait for their fetch now (or go). */
	for (size_t i = 0; was && i < s->n && s->cb; i++)
		s->cb(s->e[i].callee, s->arg);
}

sdk_svids *sdk_svids_new(struct event_base *base, struct sdk_caller *c, const char *domain,
			 unsigned ttl_s, bool held, sdk_svids_cb cb, void *arg)
{
	if (sodium_init() < 0)
		return NULL;
	sdk_svids *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->c = c;
	snprintf(s->domain, sizeof s->domain, "%s", domain);
	s->ttl_s = ttl_s;
	s->cb = cb;
	s->arg = arg;
	s->held = held;
	s->held_until = sdk_mono_ms() + SVIDS_HOLD_MS;
	s->tick = event_new(base, -1, EV_PERSIST, on_tick, s);
	struct timeval tv = sdk_ms_tv(SVIDS_TICK_MS);
	if (!s->tick || event_add(s->tick, &tv) < 0) {
		if (s->tick)
			event_free(s->tick);
		free(s);
		return NULL;
	}
	return s;
}

void sdk_svids_free(sdk_svids *s)
{
	if (!s)
		return;
	event_free(s->tick);
	for (size_t i = 0; i < s->n; i++)
		free(s->e[i].token);
	free(s);
}

int sdk_svids_get(sdk_svids *s, const char *callee, int64_t now_ms, const char **tok)
{
	*tok = NULL;
	size_t i = 0;
	while (i < s->n && strcmp(s->e[i].callee, callee))
		i++;
	if (i == s->n) {
		if (s->n == SVIDS_MAX || strlen(callee) >= sizeof s->e[0].callee)
			return SDK_SVID_NONE;
		memset(&s->e[i], 0, sizeof s->e[i]);
		s->e[i].s = s;
		snprintf(s->e[i].callee, sizeof s->e[i].callee, "%s", callee);
		s->n++;
	}
	struct svid_entry *e = &s->e[i];
	if (s->held)
		return SDK_SVID_PENDING;
	if (e->token && now_ms < e->expires_ms) {
		*tok = e->token;
		return SDK_SVID_HAVE;
	}
	if (!e->fetching && now_ms >= e->retry_ms)
		fetch(s, i, now_ms);
	return e->fetching ? SDK_SVID_PENDING : SDK_SVID_NONE;
}

/* ---- the callee's side */

struct bundle_waiter {
	sdk_bundle_cb cb;
	void *arg;
	struct bundle_waiter *next;
};

/* A token verified with the bundle of generation gen, for audience.
 * Verifying an SVID (Ed25519, about 60 us here, and two JSON parses) was
 * most of what a kernel spent on a call that carries one, which every
 * call from the gateway does; the same caller sends the same token until
 * it renews it. So a token that verified is remembered, by its exact
 * bytes, and taken as verified again while it has not expired and the
 * bundle has not been replaced since (a key removed from the bundle ends
 * it). Only successes are kept. */
struct verified {
	char *token; /* owned; NULL: a free slot */
	char aud[SDK_SPIFFE_ID_MAX];
	char sub[SDK_SPIFFE_ID_MAX];
	int64_t exp_s;
	uint64_t gen;
};

#define VERIFIED_MAX 64 /* tokens remembered: one slot each, by a keyed hash */

struct sdk_bundle {
	struct sdk_caller *c;
	json_t *jwks;         /* NULL until the first fetch */
	uint64_t gen;         /* jwks replaced this many times */
	unsigned char hkey[crypto_shorthash_KEYBYTES]; /* the slots' hash key, random */
	struct verified done[VERIFIED_MAX];
	int64_t fetched_ms;   /* the last fetch's end, good or not (mono) */
	int64_t got_ms;       /* the last good one (mono) */
	int64_t refresh_ms;   /* its hint */
	bool fetching;
	bool closing;
	size_t n_waiters;
	struct bundle_waiter *waiters;
};

static void wake(sdk_bundle *b)
{
	struct bundle_waiter *w = b->waiters;
	b->waiters = NULL;
	b->n_waiters = 0;
	while (w) {
		struct bundle_waiter *next = w->next;
		w->cb(w->arg);
		free(w);
		w = next;
	}
}

void sdk_bundle_take(sdk_bundle *b, json_t *jwks)
{
	json_decref(b->jwks);
	b->jwks = jwks;
	b->gen++; /* what was verified with the old one is checked again */
	b->got_ms = b->fetched_ms = sdk_mono_ms();
	json_t *hint = json_object_get(jwks, "spiffe_refresh_hint");
	b->refresh_ms = json_is_integer(hint) && json_integer_value(hint) > 0 &&
				json_integer_value(hint) < 86400
			? json_integer_value(hint) * 1000
			: BUNDLE_REFRESH_MS;
}

static void on_bundle(int status, const char *body, size_t len, double ms, const char *error,
		      void *arg)
{
	(void)ms;
	sdk_bundle *b = arg;
	b->fetching = false;
	b->fetched_ms = sdk_mono_ms();
	json_t *j = status == 200 ? json_loadb(body, len, 0, NULL) : NULL;
	if (json_is_array(json_object_get(j, "keys"))) {
		sdk_bundle_take(b, j);
	} else {
		json_decref(j);
		sdk_debug("the trust bundle could not be fetched (%d %s): %s", status,
			  error ? error : "", b->jwks ? "the one in hand is kept" : "none yet");
	}
	wake(b);
}

static void bundle_fetch(sdk_bundle *b)
{
	b->fetching = true;
	if (sdk_call(b->c, "trust", "GET", "/bundle", NULL, 0, NULL, BUNDLE_FETCH_MS, on_bundle,
		     b) < 0) {
		b->fetching = false;
		b->fetched_ms = sdk_mono_ms();
	}
}

sdk_bundle *sdk_bundle_new(struct sdk_caller *c)
{
	sdk_bundle *b = calloc(1, sizeof *b);
	if (b) {
		b->c = c;
		b->fetched_ms = INT64_MIN / 2;
		crypto_shorthash_keygen(b->hkey);
	}
	return b;
}

void sdk_bundle_free(sdk_bundle *b)
{
	if (!b)
		return;
	b->closing = true;
	wake(b);
	json_decref(b->jwks);
	for (size_t i = 0; i < VERIFIED_MAX; i++)
		free(b->done[i].token);
	free(b);
}

static int wait_for(sdk_bundle *b, sdk_bundle_cb cb, void *arg, bool *waiting, sdk_err *err)
{
	struct bundle_waiter *w = b->n_waiters < BUNDLE_WAITERS_MAX ? malloc(sizeof *w) : NULL;
	if (!w)
		return sdk_fail(err, SDK_EBUSY, "too many calls wait for the trust bundle");
	*w = (struct bundle_waiter){ cb, arg, b->waiters };
	b->waiters = w;
	b->n_waiters++;
	*waiting = true;
	return sdk_fail(err, SDK_EBUSY, "waiting for the trust bundle");
}

static struct verified *verified_slot(sdk_bundle *b, const char *token)
{
	unsigned char h[crypto_shorthash_BYTES];
	crypto_shorthash(h, (const unsigned char *)token, strlen(token), b->hkey);
	uint64_t x;
	memcpy(&x, h, sizeof x);
	return &b->done[x % VERIFIED_MAX];
}

/* Remembers a token that verified, in its slot (the one there goes). An
 * audience or subject too long for the slot is not remembered. */
static void verified_keep(struct verified *v, uint64_t gen, const char *token,
			  const char *audience, const char *sub, int64_t exp_s)
{
	if (strlen(audience) >= sizeof v->aud || strlen(sub) >= sizeof v->sub)
		return;
	char *t = strdup(token);
	if (!t)
		return;
	free(v->token);
	v->token = t;
	v->gen = gen;
	v->exp_s = exp_s;
	memcpy(v->aud, audience, strlen(audience) + 1);
	memcpy(v->sub, sub, strlen(sub) + 1);
}

int sdk_bundle_verify(sdk_bundle *b, const char *token, const char *audience, int64_t now_ms,
		      char *sub, size_t sublen, sdk_err *err, sdk_bundle_cb cb, void *arg,
		      bool *waiting)
{
	*waiting = false;
	if (b->closing)
		return sdk_fail(err, SDK_EBUSY, "the kernel is stopping");
	int64_t mono = sdk_mono_ms();
	if (!b->jwks) {
		if (b->fetching)
			return wait_for(b, cb, arg, waiting, err);
		if (mono - b->fetched_ms < BUNDLE_RETRY_MS)
			return sdk_fail(err, SDK_EBUSY, "the trust bundle cannot be fetched now");
		bundle_fetch(b);
		return b->fetching ? wait_for(b, cb, arg, waiting, err)
				   : sdk_fail(err, SDK_EBUSY, "the trust bundle cannot be fetched");
	}
	if (!b->fetching && mono - b->got_ms >= b->refresh_ms &&
	    mono - b->fetched_ms >= BUNDLE_RETRY_MS)
		bundle_fetch(b); /* in the background: the one in hand serves meanwhile */
	struct verified *v = verified_slot(b, token);
	if (v->token && v->gen == b->gen && v->exp_s > now_ms / 1000 && !strcmp(v->token, token) &&
	    !strcmp(v->aud, audience) && strlen(v->sub) < sublen) {
		memcpy(sub, v->sub, strlen(v->sub) + 1);
		return 0;
	}
	int64_t exp_s = 0;
	int rc = verify_exp(token, b->jwks, audience, now_ms, sub, sublen, &exp_s, err);
	if (rc == 0)
		verified_keep(v, b->gen, token, audience, sub, exp_s);
	if (rc != SDK_ENOTFOUND)
		return rc;
	/* A key newer than our bundle (a rotation): fetch again, not too often. */
	if (b->fetching)
		return wait_for(b, cb, arg, waiting, err);
	if (mono - b->fetched_ms >= BUNDLE_KID_REFETCH_MS) {
		bundle_fetch(b);
		if (b->fetching)
			return wait_for(b, cb, arg, waiting, err);
	}
	return sdk_fail(err, SDK_EDENIED, "the SVID is signed by a key not in the trust bundle");
}
