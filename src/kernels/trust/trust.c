/* The trust kernel (8112): an identity for every kernel and for the main
 * process, anchored on SPIFFE. It issues JWT-SVIDs (EdDSA) and X.509-SVIDs
 * (P-256, the SPIFFE ID in the URI SAN) to the workload that asks, in the
 * shapes of the SPIFFE Workload API, rotates its signing keys with an
 * overlap, and serves the trust bundle in the SPIFFE bundle format (a JWKS).
 * See docs/trust.md. */
#include "kernels/registry.h"
#include "kernels/trust/attest.h"
#include "kernels/trust/evidence.h"
#include "kernels/trust/feed.h"
#include "kernels/trust/jwt.h"
#include "kernels/trust/spiffe.h"
#include "kernels/trust/store.h"
#include "kernels/trust/x509.h"
#include "sdk/json_keys.h"
#include "sdk/call.h"
#include "sdk/clock.h"
#include "sdk/log.h"
#include "sdk/svid.h"

#include <event2/event.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TR_TTL_MIN_S 10
#define TR_REFRESH_HINT_S 300
#define TR_BODY_MAX 16384

#define TR_TICK_MS 1000
#define TR_SCORES_LIMIT_MAX 10000

/* k->state. */
typedef struct tr_kernel {
	tr_store *store;
	tr_feed feed;
	struct event *tick; /* each second: the bus, the healthy periods */
	/* SHA-256 (hex) of the main process's attestation, given at spawn
	 * (SDK_MAIN_ATTEST_ENV), or, when no grace serve spawned this process,
	 * the one the main process joined with using its enrolled credential
	 * (kept in trust_workloads, so a restart keeps it); "" when neither. */
	char main_hash[2 * crypto_hash_sha256_BYTES + 1];
	bool main_spawned; /* main_hash came from the grace serve that spawned us */
} tr_kernel;

/* The node this trust kernel runs on ("" with no nodes configured): its
 * main process is the one that spawned it. */
static const char *own_node(const sdk_kernel *k)
{
	return k->kcfg->node;
}

/* The call carries this node's main process's attestation: it hashes to
 * what the supervisor gave this process at spawn (false when none was). */
static bool local_main_proved(sdk_kernel *k, sdk_req *req)
{
	const tr_kernel *t = k->state;
	const char *a = sdk_req_header(req, SDK_ATTESTATION_HEADER);
	if (!t->main_hash[0] || !a || strlen(a) != 2 * crypto_hash_sha256_BYTES)
		return false;
	unsigned char h[crypto_hash_sha256_BYTES];
	char hex[sizeof t->main_hash];
	crypto_hash_sha256(h, (const unsigned char *)a, strlen(a));
	sodium_bin2hex(hex, sizeof hex, h, sizeof h);
	return sodium_memcmp(hex, t->main_hash, sizeof hex - 1) == 0;
}

/* The call comes from a main process, proved, and from which node's (into
 * node, GRACE_NAME_MAX bytes): this node's, its attestation hashing to
 * what the supervisor gave this process at spawn, or another configured
 * node's, whose attestation this node's main vouched for (POST
 * /attest/node). A trust kernel that was given no hash (under systemd, no
 * grace serve spawned it) has only the internal token's word for this
 * node's main, as every kernel does. With no nodes configured only this
 * node's main is looked for. */
static bool main_of(sdk_kernel *k, sdk_req *req, char *node)
{
	const tr_kernel *t = k->state;
	snprintf(node, GRACE_NAME_MAX, "%s", own_node(k));
	if (local_main_proved(k, req))
		return true;
	sdk_err e;
	if (k->cfg->nodes.n &&
	    tr_node_of_main(k->db, sdk_req_header(req, SDK_ATTESTATION_HEADER), node, GRACE_NAME_MAX,
			    &e) == 0) {
		/* A node no longer configured, or this one's (moved here since),
		 * has no vouched main. */
		if (grace_config_node(k->cfg, node) && strcmp(node, own_node(k)))
			return true;
		snprintf(node, GRACE_NAME_MAX, "%s", own_node(k));
	}
	return !t->main_hash[0];
}

/* The call comes from a main process, this node's or a vouched one. */
static bool main_proved(sdk_kernel *k, sdk_req *req)
{
	char node[GRACE_NAME_MAX];
	return main_of(k, req, node);
}

/* The gateway, forwarding a user's request, proved to be a main
 * process's (a user's word reaches this kernel only so). */
static bool from_gateway_proved(sdk_kernel *k, sdk_req *req)
{
	const char *caller = sdk_req_header(req, SDK_CALLER_HEADER);
	return caller && !strcmp(caller, SDK_GATEWAY_CALLER) && main_proved(k, req);
}

static tr_store *store_of(void *ctx)
{
	return ((tr_kernel *)((sdk_kernel *)ctx)->state)->store;
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

/* The node a workload name "node/NAME" names (NAME), or NULL: kernel names
 * never hold '/'. */
static const char *node_named(const char *who)
{
	size_t pre = strlen(SDK_SVID_NODE_PREFIX);
	return strncmp(who, SDK_SVID_NODE_PREFIX, pre) ? NULL : who + pre;
}

/* A workload may take a name in "for" other than its own only as the
 * main process of a node taking that node's identity (X.509-SVIDs only:
 * the node link's mutual TLS), and only its own node's. Answers 403 and
 * returns NULL when refused; else the workload's name. */
static const char *own_or_node(sdk_req *req, const char *who, const char *want, bool x509,
			       const char *caller, const char *node)
{
	if (!want || !strcmp(want, who))
		return who;
	const char *n = node_named(want);
	if (n && x509 && caller && !strcmp(caller, "grace") && *node && !strcmp(n, node))
		return want;
	if (n && x509 && caller && !strcmp(caller, "grace"))
		sdk_reply_error(req, 403, "forbidden",
				"a main process takes its own node's identity only, not \"%.64s\"",
				want);
	else
		sdk_reply_error(req, 403, "forbidden",
				"a workload gets only its own identity, not \"%s\"", want);
	return NULL;
}

/* The SPIFFE ID of the workload an SVID is for. A kernel or the main
 * process asking for itself (no user; X-Grace-Caller, believed because the
 * runtime checked the internal token) gets its own, and only its own; the
 * main process of a node may also take its node's ("node/NAME", X.509
 * only). An admin through the gateway names the workload in "for" (a
 * kernel's name, "grace" for the main process, "node/NAME" for a node); a
 * user gets none. Answers and returns -1 when refused. */
static int subject_of(sdk_req *req, sdk_kernel *k, json_t *body, bool x509, char *id, size_t idlen)
{
	json_t *forv = json_object_get(body, "for");
	if (forv && !json_is_string(forv)) {
		sdk_reply_error(req, 400, "invalid", "for must be a kernel's name or \"grace\"");
		return -1;
	}
	const char *want = forv ? json_string_value(forv) : NULL;
	int role;
	const char *user = sdk_req_caller(req, k->token, &role);
	const char *caller = sdk_req_header(req, SDK_CALLER_HEADER);
	const char *who;
	/* The main process's names, and a user's word (which only the
	 * gateway forwards), need a main process's proof; which node's main
	 * it is decides which node's identity it may take. */
	bool gw = caller && !strcmp(caller, SDK_GATEWAY_CALLER);
	bool as_main = caller && (!strcmp(caller, "grace") || gw);
	char node[GRACE_NAME_MAX] = "";
	bool proved = (user || as_main) && main_of(k, req, node);
	if (user ? !(gw && proved) : as_main && !proved) {
		if (user)
			sdk_reply_error(req, 403, "forbidden",
					"an admin asks for an SVID through the Grace API only");
		else
			sdk_reply_error(req, 403, "forbidden",
					"the main process's identity needs its attestation (%s)",
					SDK_ATTESTATION_HEADER);
		return -1;
	}
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
		/* The main process's SVID speaks for its gateway too. */
		who = gw ? "grace" : caller;
		if (!who || !*who) {
			sdk_reply_error(req, 403, "forbidden", "the caller is not named (%s)",
					SDK_CALLER_HEADER);
			return -1;
		}
		/* A node's identity goes only to its main process, which
		 * names it in "for" (below), never to a caller of that name. */
		if (node_named(who)) {
			sdk_reply_error(req, 403, "forbidden", "\"%.64s\" is not a kernel of this Grace",
					who);
			return -1;
		}
		if (!(who = own_or_node(req, who, want, x509, caller, node)))
			return -1;
	}
	sdk_err e;
	int grace = !strcmp(who, "grace");
	const char *nodename = node_named(who);
	if (nodename && !x509) {
		sdk_reply_error(req, 400, "invalid",
				"a node's identity is an X.509-SVID only (POST /x509-svid)");
		return -1;
	}
	if (nodename ? !grace_config_node(k->cfg, nodename)
		     : !grace && !kernel_registry_find(who)) {
		sdk_reply_error(req, grace || user ? 400 : 403, user ? "invalid" : "forbidden",
				"\"%.64s\" is not a %s of this Grace", who, nodename ? "node" : "kernel");
		return -1;
	}
	/* A kernel that attested gets its identity only in its attested
	 * process (attest.h). */
	int rc = user || grace || nodename
			 ? 0
			 : tr_workload_check(k->db, who, sdk_req_header(req, SDK_ATTESTATION_HEADER),
					     own_node(k), &e);
	if (rc < 0) {
		if (rc == SDK_EDENIED)
			sdk_reply_error(req, 403, "forbidden", "%s", e.msg);
		else
			sdk_reply_status(req, rc, &e);
		return -1;
	}
	if (tr_workload_id(k->cfg->trust.domain, grace ? NULL : who, id, idlen, &e) < 0) {
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

/* An SVID went to the kernel asking for itself: its expiry, for
 * GET /workloads. */
static void svid_issued(sdk_req *req, sdk_kernel *k, int64_t expires_ms)
{
	int role;
	const char *who = sdk_req_header(req, SDK_CALLER_HEADER);
	if (!sdk_req_caller(req, k->token, &role) && who)
		tr_workload_svid(k->db, who, expires_ms);
}

/* ---- routes */

static void on_jwt_svid(sdk_req *req, void *ctx)
{
	static const char *const allowed[] = { "audience", "ttl_s", "for", NULL };
	json_t *body = body_of(req, allowed);
	char id[TR_SPIFFE_ID_MAX + 1];
	int ttl;
	const grace_trust *t = &((sdk_kernel *)ctx)->cfg->trust;
	if (!body || ttl_of(req, body, (int)t->jwt_ttl_default_s, (int)t->jwt_ttl_max_s, &ttl) < 0 ||
	    subject_of(req, ctx, body, false, id, sizeof id) < 0)
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
	svid_issued(req, ctx, exp * 1000);
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
	const grace_trust *t = &((sdk_kernel *)ctx)->cfg->trust;
	if (!body || ttl_of(req, body, (int)t->x509_ttl_default_s, (int)t->x509_ttl_max_s, &ttl) < 0 ||
	    subject_of(req, ctx, body, true, id, sizeof id) < 0)
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
	svid_issued(req, ctx, svid.expires_ms);
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
		int rc = tr_key_active(store_of(k), (enum tr_kind)kind, now, &active, e);
		if (rc < 0)
			return rc;
		tr_key_clear(&active);
	}
	return tr_keys_published(store_of(k), now, keys, n, seq, e);
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
	int rc = tr_key_rotate(store_of(k), strcmp(kind, "jwt") ? TR_X509 : TR_JWT, sdk_wall_ms(), &e);
	if (rc < 0) {
		reply_err(req, rc, &e);
		return;
	}
	on_bundle(req, ctx);
}

/* ---- attestation */

/* With nodes configured, a kernel's process is registered only by the
 * main process of the node the configuration puts it on (the one that
 * spawns it). Answers 403 and returns false otherwise. */
static bool registers_on(sdk_req *req, sdk_kernel *k, const char *name, const char *node)
{
	if (!k->cfg->nodes.n)
		return true;
	const grace_kernel_cfg *kc = grace_config_kernel(k->cfg, name);
	if (kc && !strcmp(kc->node, node))
		return true;
	if (kc)
		sdk_reply_error(req, 403, "forbidden",
				"kernel %s runs on node %s: only that node's main process registers it",
				name, kc->node);
	else
		sdk_reply_error(req, 403, "forbidden", "kernel %s is not configured on any node", name);
	return false;
}

/* POST /attest/register: a main process (no user, caller "grace": this
 * node's, or a vouched node's) registers a kernel process it spawned. */
static void on_attest_register(sdk_req *req, void *ctx)
{
	static const char *const allowed[] = { "kernel", "pid", "start_time", "exe",
					       "credential_sha256", NULL };
	sdk_kernel *k = ctx;
	int role;
	const char *caller = sdk_req_header(req, SDK_CALLER_HEADER);
	char node[GRACE_NAME_MAX];
	if (sdk_req_caller(req, k->token, &role) || !caller || strcmp(caller, "grace") ||
	    !main_of(k, req, node)) {
		sdk_reply_error(req, 403, "forbidden", "only the supervisor registers processes");
		return;
	}
	json_t *body = body_of(req, allowed);
	if (!body)
		return;
	const char *name = json_string_value(json_object_get(body, "kernel"));
	const char *exe = json_string_value(json_object_get(body, "exe"));
	const char *hash = json_string_value(json_object_get(body, "credential_sha256"));
	json_t *pid = json_object_get(body, "pid"), *start = json_object_get(body, "start_time");
	if (!name || !kernel_registry_find(name) || !exe || !*exe ||
	    strlen(exe) >= TR_EXE_MAX || !json_is_integer(pid) || json_integer_value(pid) <= 0 ||
	    json_integer_value(pid) > 0x7fffffff || !json_is_integer(start) ||
	    json_integer_value(start) < 0 || !hash) {
		sdk_reply_error(req, 400, "invalid",
				"kernel (a kernel's name), pid, start_time, exe and credential_sha256 "
				"are required");
		return;
	}
	if (!registers_on(req, k, name, node))
		return;
	tr_proc p = { .pid = (pid_t)json_integer_value(pid),
		      .start_time = json_integer_value(start) };
	snprintf(p.exe, sizeof p.exe, "%s", exe);
	sdk_err e;
	int rc = tr_join_register(k->db, name, node, &p, hash, sdk_wall_ms(), &e);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	sdk_reply_json(req, 201, json_pack("{s:s, s:i}", "kernel", name, "pid", (int)p.pid));
}

/* POST /attest/join: a kernel process presents its join credential, once;
 * or a process presents the long-lived credential enrolled for it (a
 * kernel, or the main process under systemd, which names the hash of the
 * attestation it already sends instead of being given one). */
static void on_attest_join(sdk_req *req, void *ctx)
{
	static const char *const allowed[] = { "credential", "pid", "attestation_sha256", NULL };
	sdk_kernel *k = ctx;
	tr_kernel *t = k->state;
	int role;
	const char *caller = sdk_req_header(req, SDK_CALLER_HEADER);
	bool main = caller && !strcmp(caller, TR_MAIN_WORKLOAD);
	if (sdk_req_caller(req, k->token, &role) || !caller ||
	    (!main && !kernel_registry_find(caller))) {
		sdk_reply_error(req, 403, "forbidden", "only a kernel joins, as itself");
		return;
	}
	/* The grace serve that spawned this process is its main process, for
	 * its whole life: no other joins as one. */
	if (main && t->main_spawned) {
		sdk_reply_error(req, 409, "conflict",
				"this trust kernel's main process is the one that spawned it");
		return;
	}
	json_t *body = body_of(req, allowed);
	if (!body)
		return;
	const char *cred = json_string_value(json_object_get(body, "credential"));
	const char *given = json_string_value(json_object_get(body, "attestation_sha256"));
	json_t *pid = json_object_get(body, "pid");
	if (!cred || !json_is_integer(pid) || json_integer_value(pid) <= 0 ||
	    json_integer_value(pid) > 0x7fffffff) {
		sdk_reply_error(req, 400, "invalid", "credential and pid are required");
		return;
	}
	if (main != (given != NULL)) {
		sdk_reply_error(req, 400, "invalid",
				"attestation_sha256 is the main process's, and it needs it");
		return;
	}
	char attestation[TR_JOIN_HEX + 1], id[TR_SPIFFE_ID_MAX + 1];
	sdk_err e;
	int64_t now = sdk_wall_ms();
	int rc = tr_join_accept(k->db, caller, cred, (pid_t)json_integer_value(pid), own_node(k),
				now, given, attestation, &e);
	if (rc == 0)
		rc = tr_workload_id(k->cfg->trust.domain, caller, id, sizeof id, &e);
	if (rc < 0) {
		if (rc == SDK_EDENIED)
			sdk_reply_error(req, 403, "forbidden", "%s", e.msg);
		else
			sdk_reply_status(req, rc, &e);
		return;
	}
	if (main) { /* the main process from now on, this process's restarts too */
		snprintf(t->main_hash, sizeof t->main_hash, "%s", given);
		sdk_info("trust: the main process attested with its enrolled credential (pid %d)",
			 (int)json_integer_value(pid));
		sdk_reply_json(req, 200, json_pack("{s:s, s:s, s:I, s:I}", "kernel", caller,
						   "spiffe_id", id, "pid", json_integer_value(pid),
						   "attested_at", (json_int_t)now));
		return;
	}
	sdk_info("trust: kernel %s attested (pid %d)", caller, (int)json_integer_value(pid));
	sdk_reply_json(req, 200, json_pack("{s:s, s:s, s:I, s:I, s:s}", "kernel", caller,
					   "spiffe_id", id, "pid", json_integer_value(pid),
					   "attested_at", (json_int_t)now, "attestation",
					   attestation));
	sodium_memzero(attestation, sizeof attestation);
}

/* POST /attest/node: this node's main process vouches for another node's
 * main process, after its node link authenticated that node over mutual
 * TLS: the holder of an attestation hashing to main_sha256 is node
 * `node`'s main from now on (a new hash replaces the old one), trusted as
 * a main process is (main_of), for the kernels of its node. Only with
 * this node's main process's own attestation: a trust kernel given none
 * (under systemd) has nobody who could vouch. */
static void on_attest_node(sdk_req *req, void *ctx)
{
	static const char *const allowed[] = { "node", "main_sha256", NULL };
	sdk_kernel *k = ctx;
	const tr_kernel *t = k->state;
	int role;
	const char *caller = sdk_req_header(req, SDK_CALLER_HEADER);
	if (!t->main_hash[0]) {
		sdk_reply_error(req, 403, "forbidden",
				"this trust kernel was given no main process's attestation: nobody "
				"can vouch for a node");
		return;
	}
	if (sdk_req_caller(req, k->token, &role) || !caller || strcmp(caller, "grace") ||
	    !local_main_proved(k, req)) {
		sdk_reply_error(req, 403, "forbidden",
				"only this node's main process, with its attestation, vouches for a "
				"node");
		return;
	}
	json_t *body = body_of(req, allowed);
	if (!body)
		return;
	const char *node = json_string_value(json_object_get(body, "node"));
	const char *hash = json_string_value(json_object_get(body, "main_sha256"));
	if (!node || !hash) {
		sdk_reply_error(req, 400, "invalid", "node and main_sha256 are required");
		return;
	}
	if (!grace_config_node(k->cfg, node)) {
		sdk_reply_error(req, 404, "not_found", "no node \"%.64s\" is configured", node);
		return;
	}
	if (!strcmp(node, own_node(k))) {
		sdk_reply_error(req, 400, "invalid",
				"node %s is this trust kernel's own: its main process is the one "
				"that spawned it", node);
		return;
	}
	/* This node's main is no other node's. */
	bool own = strlen(hash) == sizeof t->main_hash - 1 &&
		   !sodium_memcmp(hash, t->main_hash, sizeof t->main_hash - 1);
	sdk_err e;
	int64_t now = sdk_wall_ms();
	int rc = own ? sdk_fail(&e, SDK_ECONFLICT, "that is this node's main process's attestation")
		     : tr_node_vouch(k->db, node, hash, now, &e);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	sdk_info("trust: node %s's main process vouched for by this node's", node);
	sdk_reply_json(req, 200, json_pack("{s:s, s:I}", "node", node, "vouched_at", (json_int_t)now));
}

/* An admin's request, believed: the gateway's, with the main process's
 * proof (a trust kernel given no hash, under systemd, has the internal
 * token's word for it). Answers 403 and returns false otherwise. */
static bool admin_proved(sdk_kernel *k, sdk_req *req)
{
	int role = SDK_CALLER_NONE;
	const char *user = sdk_req_caller(req, k->token, &role);
	const tr_kernel *t = k->state;
	if (!user || role != SDK_CALLER_ADMIN || (t->main_hash[0] && !from_gateway_proved(k, req))) {
		sdk_reply_error(req, 403, "forbidden", "only an admin enrolls credentials");
		return false;
	}
	return true;
}

/* POST /attest/enroll: a long-lived join credential for a kernel that no
 * supervisor spawns (systemd's LoadCredential=, docs/trust.md). */
static void on_enroll(sdk_req *req, void *ctx)
{
	static const char *const allowed[] = { "kernel", "credential_sha256", NULL };
	sdk_kernel *k = ctx;
	if (!admin_proved(k, req))
		return;
	json_t *body = body_of(req, allowed);
	if (!body)
		return;
	const char *name = json_string_value(json_object_get(body, "kernel"));
	const char *hash = json_string_value(json_object_get(body, "credential_sha256"));
	if (!name || (!kernel_registry_find(name) && strcmp(name, TR_MAIN_WORKLOAD)) || !hash) {
		sdk_reply_error(req, 400, "invalid",
				"kernel (a kernel's name, or \"grace\" for the main process) and "
				"credential_sha256 are required");
		return;
	}
	sdk_err e;
	int64_t now = sdk_wall_ms();
	int rc = tr_enroll(k->db, name, hash, now, &e);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	sdk_info("trust: a join credential enrolled for kernel %s", name);
	sdk_reply_json(req, 201, json_pack("{s:s, s:I}", "kernel", name, "enrolled_at",
					   (json_int_t)now));
}

/* DELETE /attest/enroll/:kernel: that kernel's credential no longer joins. */
static void on_unenroll(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	if (!admin_proved(k, req))
		return;
	const char *name = sdk_req_param(req, "kernel");
	sdk_err e;
	int rc = tr_unenroll(k->db, name, &e);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	sdk_reply_json(req, 200, json_pack("{s:s, s:b}", "kernel", name, "removed", 1));
}

/* GET /workloads: which kernel process holds which identity (admins). */
static void on_workloads(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	int role;
	if (sdk_req_caller(req, k->token, &role) && role != SDK_CALLER_ADMIN) {
		sdk_reply_error(req, 403, "forbidden", "only an admin lists workloads");
		return;
	}
	json_t *out;
	sdk_err e;
	int rc = tr_workloads_json(k->db, &out, &e);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	sdk_reply_json(req, 200, out);
}

/* ---- trust scores */

/* Scores are read by admins, by the main process and kernels asking for
 * themselves (no user: the internal token was checked), and by a user
 * about themselves only (`self`, or NULL). Answers 403 and returns false
 * otherwise. */
static bool may_read_scores(sdk_req *req, sdk_kernel *k, const char *self)
{
	int role;
	const char *user = sdk_req_caller(req, k->token, &role);
	if (!user || role == SDK_CALLER_ADMIN || (self && !strcmp(user, self)))
		return true;
	sdk_reply_error(req, 403, "forbidden", "a user reads only their own trust score");
	return false;
}

static void reply_scores(sdk_req *req, sdk_kernel *k, const char *kind, const char *name,
			 size_t limit)
{
	json_t *out;
	sdk_err e;
	int rc = tr_scores_json(k->db, kind, name, sdk_wall_ms(),
				k->cfg->trust.score_half_life_s * 1000LL, limit, &out, &e);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	if (name) { /* one subject: the object itself */
		json_t *one = json_incref(json_array_get(json_object_get(out, "scores"), 0));
		json_decref(out);
		out = one;
	} else {
		json_object_set_new(out, "half_life_s",
				    json_integer(k->cfg->trust.score_half_life_s));
	}
	sdk_reply_json(req, 200, out);
}

static void on_scores(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	if (!may_read_scores(req, k, NULL))
		return;
	const char *kind = sdk_req_query(req, "kind");
	unsigned long long limit;
	if (kind && strcmp(kind, "kernel") && strcmp(kind, "user")) {
		sdk_reply_error(req, 400, "invalid", "kind must be \"kernel\" or \"user\"");
		return;
	}
	if (sdk_req_query_uint(req, "limit", 1, TR_SCORES_LIMIT_MAX, 1000, &limit) < 0)
		return;
	reply_scores(req, k, kind, NULL, (size_t)limit);
}

static void on_score_of(sdk_req *req, void *ctx, const char *kind)
{
	sdk_kernel *k = ctx;
	const char *name = sdk_req_param(req, "name");
	if (!may_read_scores(req, k, !strcmp(kind, "user") ? name : NULL))
		return;
	if (!tr_subject_valid(kind, name)) {
		sdk_reply_error(req, 400, "invalid", "a name is 1 to %d printable bytes",
				TR_SUBJECT_NAME_MAX);
		return;
	}
	reply_scores(req, k, kind, name, 1);
}

static void on_score_kernel(sdk_req *req, void *ctx)
{
	on_score_of(req, ctx, "kernel");
}

static void on_score_user(sdk_req *req, void *ctx)
{
	on_score_of(req, ctx, "user");
}

/* ---- life */

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	tr_feed_tick(&((tr_kernel *)arg)->feed);
}

static void tr_free(tr_kernel *t)
{
	if (!t)
		return;
	if (t->tick)
		event_free(t->tick);
	tr_store_close(t->store);
	free(t);
}

static int tr_init(sdk_kernel *k, sdk_err *err)
{
	if (sodium_init() < 0) {
		return sdk_fail(err, SDK_EIO, "libsodium failed to initialise");
	}
	sdk_err e;
	tr_store *s;
	tr_kernel *t = calloc(1, sizeof *t);
	if (!t) {
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	if (tr_store_open(k->db, k->cfg->data_dir, &s, &e) < 0) {
		sdk_fail(err, SDK_EIO, "%s", e.msg);
		free(t);
		return SDK_EIO;
	}
	t->store = s;
	if (tr_feed_init(&t->feed, k) < 0) {
		tr_free(t);
		return sdk_fail(err, SDK_EIO, "the trust feed's consumer group does not fit");
	}
	if (!(t->tick = event_new(k->base, -1, EV_PERSIST, on_tick, t))) {
		tr_free(t);
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	const grace_trust *c = &k->cfg->trust;
	tr_params p = { .jwt_rotate_ms = c->jwt_rotate_s * 1000LL,
			.x509_rotate_ms = c->x509_rotate_s * 1000LL,
			.jwt_ttl_max_s = (int)c->jwt_ttl_max_s,
			.x509_ttl_max_s = (int)c->x509_ttl_max_s };
	snprintf(p.domain, sizeof p.domain, "%s", c->domain);
	tr_store_set_params(s, &p);
	const char *mh = getenv(SDK_MAIN_ATTEST_ENV);
	if (mh && strlen(mh) == sizeof t->main_hash - 1 &&
	    strspn(mh, "0123456789abcdef") == sizeof t->main_hash - 1) {
		memcpy(t->main_hash, mh, sizeof t->main_hash);
		t->main_spawned = true;
	} else if (mh && *mh) {
		sdk_warn("%s is not a SHA-256 in hex: the main process is believed on the internal "
			 "token", SDK_MAIN_ATTEST_ENV);
	}
	unsetenv(SDK_MAIN_ATTEST_ENV);
	sdk_err me;
	if (!t->main_spawned && tr_main_enrolled_hash(k->db, t->main_hash, &me) < 0)
		t->main_hash[0] = '\0';
	struct timeval tv = sdk_ms_tv(TR_TICK_MS);
	event_add(t->tick, &tv);
	k->state = t;
	return 0;
}

static void tr_drain(sdk_kernel *k)
{
	tr_kernel *t = k->state;
	if (t)
		tr_feed_drain(&t->feed);
}

static void tr_close(sdk_kernel *k)
{
	tr_free(k->state);
	k->state = NULL;
}

/* Calls to these routes are not asked of the policy kernel: a process
 * attests (join, and its registration) and fetches its SVIDs and the
 * bundle here before its own calls carry an SVID, and the policy kernel
 * may require one (docs/trust.md), so asking it would wait on itself; and
 * a node's vouching and certificate keep up the link through which a
 * policy kernel on another node is reached at all.
 * Each route checks its caller itself (only the main process registers,
 * only a kernel joins as itself, each gets only its own identity) or
 * answers what is public. Every other route is asked as usual. */
static int tr_decide_call(sdk_kernel *k, const sdk_call_decision *d)
{
	(void)k;
	static const char *const own[] = { "POST /jwt-svid", "GET /bundle", "POST /attest/join",
					   "POST /attest/register", "POST /attest/node",
					   "POST /x509-svid" };
	for (size_t i = 0; !d->user && i < sizeof own / sizeof *own; i++)
		if (!strcmp(d->action, own[i]))
			return 1;
	return SDK_DECIDE_ASK_POLICY;
}

static const sdk_route tr_routes[] = {
	SDK_ROUTE("GET", "/bundle", on_bundle),
	SDK_ROUTE("POST", "/jwt-svid", on_jwt_svid),
	SDK_ROUTE("POST", "/jwt-svid/validate", on_validate),
	SDK_ROUTE("POST", "/x509-svid", on_x509_svid),
	SDK_ROUTE("POST", "/rotate", on_rotate),
	SDK_ROUTE("POST", "/attest/register", on_attest_register),
	SDK_ROUTE("POST", "/attest/join", on_attest_join),
	SDK_ROUTE("POST", "/attest/node", on_attest_node),
	SDK_ROUTE("POST", "/attest/enroll", on_enroll),
	SDK_ROUTE("DELETE", "/attest/enroll/:kernel", on_unenroll),
	SDK_ROUTE("GET", "/workloads", on_workloads),
	SDK_ROUTE("GET", "/scores", on_scores),
	SDK_ROUTE("GET", "/scores/kernel/:name", on_score_kernel),
	SDK_ROUTE("GET", "/scores/user/:name", on_score_user),
};

const sdk_kernel_def trust_kernel = {
	.name = "trust",
	.port = 8112, .tier = "governance",
	.summary = "SPIFFE identities: JWT- and X.509-SVIDs for every kernel, the trust bundle",
	.complete = true,
	/* Its tables as they are today: a change is a new step in
	 * tr_migrations and a new fixture directory (docs/upgrades.md). */
	.schema_version = TR_SCHEMA_VERSION,
	.migrations = tr_migrations,
	.n_migrations = TR_SCHEMA_VERSION,
	.routes = tr_routes,
	.n_routes = sizeof tr_routes / sizeof tr_routes[0],
	.init = tr_init,
	.drain = tr_drain,
	.close = tr_close,
	.decide_call = tr_decide_call,
};
