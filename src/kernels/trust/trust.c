/* The trust kernel (8112): an identity for every kernel and for the main
 * process, anchored on SPIFFE. It issues JWT-SVIDs (EdDSA) and X.509-SVIDs
 * (P-256, the SPIFFE ID in the URI SAN) to the workload that asks, in the
 * shapes of the SPIFFE Workload API, rotates its signing keys with an
 * overlap, and serves the trust bundle in the SPIFFE bundle format (a JWKS).
 * See docs/trust.md. */
#include "kernels/registry.h"
#include "kernels/trust/jwt.h"
#include "kernels/trust/spiffe.h"
#include "kernels/trust/store.h"
#include "kernels/trust/x509.h"
#include "sdk/json_keys.h"
#include "sdk/call.h"
#include "sdk/clock.h"
#include "sdk/log.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TR_JWT_TTL_DEFAULT_S 300
#define TR_X509_TTL_DEFAULT_S 3600
#define TR_TTL_MIN_S 10
#define TR_REFRESH_HINT_S 300
#define TR_BODY_MAX 16384

static tr_store *store_of(void *ctx)
{
	return ((sdk_kernel *)ctx)->state;
}

static void reply_err(sdk_req *req, int rc, const sdk_err *e)
{
	if (rc == TR_EBADTOKEN)
		sdk_reply_error(req, 400, "invalid_token", "%s", e->msg);
	else
		sdk_reply_status(req, rc, e);
}

/* The body as a JSON object (an empty body is {}); answers and returns NULL
 * when bad. Borrowed from the request. */
static json_t *body_of(sdk_req *req, const char *const *allowed)
{
	if (sdk_req_body_len(req) > TR_BODY_MAX) {
		sdk_reply_error(req, 413, "too_large", "the body is over %d bytes", TR_BODY_MAX);
		return NULL;
	}
	static json_t *empty;
	json_t *body;
	if (sdk_req_body_len(req) == 0) {
		if (!empty)
			empty = json_object();
		body = empty;
	} else if (!(body = sdk_req_json(req, true))) {
		return NULL;
	}
	return sdk_req_fields_only(req, body, allowed) < 0 ? NULL : body;
}

/* "ttl_s": absent (def), or an integer in [TR_TTL_MIN_S, max]. */
static int ttl_of(sdk_req *req, json_t *body, int def, int max, int *out)
{
	json_t *v = json_object_get(body, "ttl_s");
	if (!v) {
		*out = def;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < TR_TTL_MIN_S ||
	    json_integer_value(v) > max) {
		sdk_reply_error(req, 400, "invalid", "ttl_s must be an integer from %d to %d",
				TR_TTL_MIN_S, max);
		return -1;
	}
	*out = (int)json_integer_value(v);
	return 0;
}

/* The SPIFFE ID of the workload an SVID is for. A kernel or the main
 * process asking for itself (no user; X-Grace-Caller, believed because the
 * runtime checked the internal token) gets its own, and only its own. An
 * admin through the gateway names the workload in "for" (a kernel's name,
 * or "grace" for the main process); a user gets none. Answers and returns
 * -1 when refused. */
static int subject_of(sdk_req *req, sdk_kernel *k, json_t *body, char *id, size_t idlen)
{
	json_t *forv = json_object_get(body, "for");
	if (forv && !json_is_string(forv)) {
		sdk_reply_error(req, 400, "invalid", "for must be a kernel's name or \"grace\"");
		return -1;
	}
	const char *want = forv ? json_string_value(forv) : NULL;
	int role;
	const char *user = sdk_req_caller(req, k->token, &role);
	const char *who;
	if (user) {
		if (role != SDK_CALLER_ADMIN) {
			sdk_reply_error(req, 403, "forbidden", "only an admin may ask for an SVID");
			return -1;
		}
		if (!want) {
			sdk_reply_error(req, 400, "invalid",
					"for (a kernel's name, or \"grace\") is required");
			return -1;
		}
		who = want;
	} else {
		who = sdk_req_header(req, SDK_CALLER_HEADER);
		if (!who || !*who) {
			sdk_reply_error(req, 403, "forbidden", "the caller is not named (%s)",
					SDK_CALLER_HEADER);
			return -1;
		}
		if (want && strcmp(want, who)) {
			sdk_reply_error(req, 403, "forbidden",
					"a workload gets only its own identity, not \"%s\"", want);
			return -1;
		}
	}
	sdk_err e;
	int grace = !strcmp(who, "grace");
	if (!grace && !kernel_registry_find(who)) {
		sdk_reply_error(req, grace || user ? 400 : 403, user ? "invalid" : "forbidden",
				"\"%.64s\" is not a kernel of this Grace", who);
		return -1;
	}
	if (tr_workload_id(TR_TRUST_DOMAIN, grace ? NULL : who, id, idlen, &e) < 0) {
		sdk_reply_status(req, SDK_EINVAL, &e);
		return -1;
	}
	return 0;
}

/* "audience": a string or a non-empty array of strings. New reference,
 * always an array; NULL after answering 400. */
static json_t *audience_of(sdk_req *req, json_t *body)
{
	json_t *v = json_object_get(body, "audience");
	json_t *arr = json_is_string(v) ? json_pack("[O]", v) : json_is_array(v) ? json_incref(v) : NULL;
	size_t n = arr ? json_array_size(arr) : 0, i;
	int ok = n >= 1 && n <= TR_AUDIENCE_MAX;
	json_t *a;
	json_array_foreach(arr, i, a)
		ok = ok && json_is_string(a) && json_string_length(a) >= 1 &&
		     json_string_length(a) <= TR_AUDIENCE_LEN_MAX;
	if (!ok) {
		json_decref(arr);
		sdk_reply_error(req, 400, "invalid",
				"audience must be a string or 1 to %d strings of 1 to %d bytes",
				TR_AUDIENCE_MAX, TR_AUDIENCE_LEN_MAX);
		return NULL;
	}
	return arr;
}

/* ---- routes */

static void on_jwt_svid(sdk_req *req, void *ctx)
{
	static const char *const allowed[] = { "audience", "ttl_s", "for", NULL };
	json_t *body = body_of(req, allowed);
	char id[TR_SPIFFE_ID_MAX + 1];
	int ttl;
	if (!body || ttl_of(req, body, TR_JWT_TTL_DEFAULT_S, TR_JWT_TTL_MAX_S, &ttl) < 0 ||
	    subject_of(req, ctx, body, id, sizeof id) < 0)
		return;
	json_t *aud = audience_of(req, body);
	if (!aud)
		return;
	tr_key key;
	sdk_err e;
	char *tok = NULL;
	int64_t exp = 0;
	int rc = tr_key_active(store_of(ctx), TR_JWT, sdk_wall_ms(), &key, &e);
	if (rc == 0) {
		rc = tr_jwt_sign(&key, id, aud, sdk_wall_ms(), ttl, &tok, &exp, &e);
		tr_key_clear(&key);
	}
	json_decref(aud);
	if (rc < 0) {
		reply_err(req, rc, &e);
		return;
	}
	sdk_reply_json(req, 200, json_pack("{s:[{s:s, s:s, s:I}]}", "svids", "spiffe_id", id,
					   "svid", tok, "expires_at", (json_int_t)exp));
	free(tok);
}

static void on_x509_svid(sdk_req *req, void *ctx)
{
	static const char *const allowed[] = { "ttl_s", "for", NULL };
	json_t *body = body_of(req, allowed);
	char id[TR_SPIFFE_ID_MAX + 1];
	int ttl;
	if (!body || ttl_of(req, body, TR_X509_TTL_DEFAULT_S, TR_X509_TTL_MAX_S, &ttl) < 0 ||
	    subject_of(req, ctx, body, id, sizeof id) < 0)
		return;
	tr_key ca;
	sdk_err e;
	tr_x509_svid svid;
	int rc = tr_key_active(store_of(ctx), TR_X509, sdk_wall_ms(), &ca, &e);
	if (rc == 0) {
		rc = tr_x509_issue(&ca, id, sdk_wall_ms(), ttl, &svid, &e);
		tr_key_clear(&ca);
	}
	if (rc < 0) {
		reply_err(req, rc, &e);
		return;
	}
	sdk_reply_json(req, 200, json_pack("{s:[{s:s, s:s, s:s, s:s, s:I}]}", "svids", "spiffe_id",
					   id, "x509_svid", svid.cert_pem, "x509_svid_key",
					   svid.key_pem, "bundle", svid.bundle_pem, "expires_at",
					   (json_int_t)(svid.expires_ms / 1000)));
	tr_x509_svid_clear(&svid);
}

static void free_keys(tr_key *keys, size_t n)
{
	for (size_t i = 0; i < n; i++)
		tr_key_clear(&keys[i]);
	free(keys);
}

/* Every published key, making the active ones first if none exist yet
 * (so a fresh bundle is never empty). */
static int published(sdk_kernel *k, tr_key **keys, size_t *n, int64_t *seq, sdk_err *e)
{
	int64_t now = sdk_wall_ms();
	tr_key active;
	for (int kind = TR_JWT; kind <= TR_X509; kind++) {
		int rc = tr_key_active(k->state, (enum tr_kind)kind, now, &active, e);
		if (rc < 0)
			return rc;
		tr_key_clear(&active);
	}
	return tr_keys_published(k->state, now, keys, n, seq, e);
}

static void on_bundle(sdk_req *req, void *ctx)
{
	tr_key *keys;
	size_t n;
	int64_t seq;
	sdk_err e;
	int rc = published(ctx, &keys, &n, &seq, &e);
	if (rc < 0) {
		reply_err(req, rc, &e);
		return;
	}
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++) {
		json_t *jwk = keys[i].kind == TR_JWT ? tr_jwt_jwk(&keys[i]) : tr_x509_jwk(&keys[i]);
		if (jwk)
			json_array_append_new(arr, jwk);
	}
	free_keys(keys, n);
	sdk_reply_json(req, 200, json_pack("{s:o, s:I, s:i}", "keys", arr, "spiffe_sequence",
					   (json_int_t)seq, "spiffe_refresh_hint",
					   TR_REFRESH_HINT_S));
}

static void on_validate(sdk_req *req, void *ctx)
{
	static const char *const allowed[] = { "svid", "audience", NULL };
	json_t *body = body_of(req, allowed);
	if (!body)
		return;
	json_t *svid = json_object_get(body, "svid");
	json_t *aud = json_object_get(body, "audience");
	if (!json_is_string(svid) || !json_is_string(aud) || json_string_length(aud) == 0 ||
	    json_string_length(aud) > TR_AUDIENCE_LEN_MAX) {
		sdk_reply_error(req, 400, "invalid",
				"svid (a string) and audience (1 to %d bytes) are required",
				TR_AUDIENCE_LEN_MAX);
		return;
	}
	tr_key *keys;
	size_t n;
	int64_t seq;
	sdk_err e;
	json_t *claims = NULL;
	int rc = published(ctx, &keys, &n, &seq, &e);
	if (rc == 0) {
		rc = tr_jwt_verify(json_string_value(svid), keys, n, json_string_value(aud),
				   sdk_wall_ms(), &claims, &e);
		free_keys(keys, n);
	}
	if (rc < 0) {
		reply_err(req, rc, &e);
		return;
	}
	sdk_reply_json(req, 200, json_pack("{s:O, s:o}", "spiffe_id", json_object_get(claims, "sub"),
					   "claims", claims));
}

static void on_rotate(sdk_req *req, void *ctx)
{
	static const char *const allowed[] = { "kind", NULL };
	sdk_kernel *k = ctx;
	json_t *body = body_of(req, allowed);
	if (!body)
		return;
	int role;
	if (!sdk_req_caller(req, k->token, &role) || role != SDK_CALLER_ADMIN) {
		sdk_reply_error(req, 403, "forbidden", "only an admin rotates keys");
		return;
	}
	const char *kind = json_string_value(json_object_get(body, "kind"));
	if (!kind || (strcmp(kind, "jwt") && strcmp(kind, "x509"))) {
		sdk_reply_error(req, 400, "invalid", "kind must be \"jwt\" or \"x509\"");
		return;
	}
	sdk_err e;
	int rc = tr_key_rotate(k->state, strcmp(kind, "jwt") ? TR_X509 : TR_JWT, sdk_wall_ms(), &e);
	if (rc < 0) {
		reply_err(req, rc, &e);
		return;
	}
	on_bundle(req, ctx);
}

/* ---- life */

static int tr_init(sdk_kernel *k, char *err, size_t errlen)
{
	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium failed to initialise");
		return -1;
	}
	sdk_err e;
	tr_store *s;
	if (tr_store_open(k->db, k->cfg->data_dir, &s, &e) < 0) {
		snprintf(err, errlen, "%s", e.msg);
		return -1;
	}
	k->state = s;
	return 0;
}

static void tr_close(sdk_kernel *k)
{
	tr_store_close(k->state);
	k->state = NULL;
}

static const sdk_route tr_routes[] = {
	SDK_ROUTE("GET", "/bundle", on_bundle),
	SDK_ROUTE("POST", "/jwt-svid", on_jwt_svid),
	SDK_ROUTE("POST", "/jwt-svid/validate", on_validate),
	SDK_ROUTE("POST", "/x509-svid", on_x509_svid),
	SDK_ROUTE("POST", "/rotate", on_rotate),
};

const sdk_kernel_def trust_kernel = {
	.name = "trust",
	.port = 8112, .tier = "governance",
	.summary = "SPIFFE identities: JWT- and X.509-SVIDs for every kernel, the trust bundle",
	.complete = false,
	/* Its tables as they are today: a change is a new step in
	 * .migrations and a new fixture directory (docs/upgrades.md). */
	.schema_version = 1,
	.routes = tr_routes,
	.n_routes = sizeof tr_routes / sizeof tr_routes[0],
	.init = tr_init,
	.close = tr_close,
};
