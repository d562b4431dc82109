/* Requests on :8000 decided by the policy kernel (decide.h says what is
 * asked). The hot path is a cache lookup keyed by who (with their role,
 * or a token's scopes: the entity data the decision reads), the action
 * and the resource, valid while the policy set's and the entity store's
 * versions stay the same (sdk/pdp.h). A miss waits for the policy kernel,
 * bounded by [policy] decision_timeout_ms; requests missing in the same
 * turn of the loop are asked in one batch.
 *
 * Fail closed: while the policy kernel is not ready (stopped, crashed,
 * starting, or not answering), every decided request is refused 503
 * policy_unavailable, cached decisions included. Only the break-glass set
 * (policy_map.c: /kernel-ports/policy/..., heal or diagnose the policy
 * kernel, /guardian/...) stays open, to admins logged in with a session,
 * so the policy kernel can be healed; each use is an audit event
 * (policy.break_glass). */
#include "serve/api/api.h"
#include "serve/api/decide.h"
#include "serve/api/trust_cache.h"

#include "sdk/clock.h"
#include "sdk/log.h"
#include "sdk/pdp.h"
#include "sdk/str.h"
#include "serve/outbox/classify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POLICY_KERNEL "policy"

static bool policy_ready(void *arg)
{
	api_ctx *api = arg;
	sup_kernel *k = sup_find(api->sup, POLICY_KERNEL);
	return k && k->state == SUP_READY;
}

static sdk_pdp *pdp_of(api_ctx *api)
{
	if (!api->pdp) {
		const grace_policy *pol = &api->cfg->policy;
		sdk_pdp_opts o = { .base = api->base,
				   .caller = gw_caller(api->gw),
				   .policy_set = pol->policy_set,
				   .timeout_ms = pol->decision_timeout_ms,
				   .cache_entries = pol->cache_entries,
				   .ready = policy_ready,
				   .ready_arg = api };
		api->pdp = sdk_pdp_new(&o);
		if (api->pdp && !api->trust)
			api->trust = tc_new(api->base, gw_caller(api->gw), api->cfg);
	}
	return api->pdp;
}

/* ---- what is asked */

/* The cache key: who, with everything the decision reads about them
 * (the entities this process sends), the action and the resource. Fields
 * are joined by US (0x1f), which no name, scope, action or path holds. */
static int key_of(const api_principal *who, const api_target *t, int trust, char *out,
		  size_t len)
{
	/* Joined, not printed: snprintf made the key a tenth of a proxied
	 * request's instructions. */
	const char *role = auth_role_name(who->role);
	size_t n;
	switch (who->kind) {
	case API_PRINCIPAL_USER:
		n = SDK_STRJOIN(out, len, "U\x1f", who->user, "\x1f", role);
		break;
	case API_PRINCIPAL_TOKEN:
		n = SDK_STRJOIN(out, len, "T\x1f", who->token.id, "\x1f", who->token.name, "\x1f",
				who->user, "\x1f", role, "\x1f");
		for (size_t i = 0, o = 0; n < len && i < who->token.n_scopes; i++) {
			const char *s = who->token.scopes + o;
			n += SDK_STRJOIN(out + n, len - n, s, ",");
			o += strlen(s) + 1;
		}
		break;
	default:
		n = sdk_strcpy(out, len, "A");
		break;
	}
	if (n >= len)
		return -1;
	/* A Kernel's trust is read by the decision: part of the key. */
	char num[12];
	size_t m = SDK_STRJOIN(out + n, len - n, "\x1f", t->action, "\x1f", t->rtype, "\x1f", t->rid,
			       "\x1f", sdk_int_text(trust, num));
	return n + m >= len ? -1 : (int)(n + m);
}

static json_t *uid(const char *type, const char *id)
{
	return json_pack("{s:s, s:s}", "type", type, "id", id);
}

static json_t *user_entity(const char *name, int role)
{
	const char *r = auth_role_name(role);
	return json_pack("{s:o, s:{s:s, s:s}, s:[o]}", "uid", uid("User", name), "attrs", "name", name,
			 "role", r, "parents", uid("Role", r));
}

static json_t *principal_uid(const api_principal *who)
{
	switch (who->kind) {
	case API_PRINCIPAL_USER: return uid("User", who->user);
	case API_PRINCIPAL_TOKEN: return uid("ApiToken", who->token.id);
	default: return uid("Anonymous", "anonymous");
	}
}

/* What the decision reads about the principal and the resource. */
static json_t *entities_of(const api_principal *who, const api_target *t, int trust)
{
	json_t *arr = json_array();
	if (who->kind == API_PRINCIPAL_ANONYMOUS) {
		json_array_append_new(arr, json_pack("{s:o, s:{}, s:[]}", "uid", principal_uid(who),
						     "attrs", "parents"));
	} else {
		json_array_append_new(arr, user_entity(who->user, who->role));
	}
	if (who->kind == API_PRINCIPAL_TOKEN) {
		/* A scope FAMILY:VERB is the action FAMILY.VERB. */
		json_t *scopes = json_array();
		const char *s = who->token.scopes;
		for (size_t i = 0; i < who->token.n_scopes; i++, s += strlen(s) + 1) {
			char action[AUTH_SCOPE_MAX + 1];
			size_t len = strnlen(s, AUTH_SCOPE_MAX);
			memcpy(action, s, len);
			action[len] = '\0';
			char *colon = strchr(action, ':');
			if (colon)
				*colon = '.';
			json_array_append_new(scopes, json_pack("{s:o}", "__entity", uid("Action", action)));
		}
		json_array_append_new(
			arr, json_pack("{s:o, s:{s:s, s:{s:o}, s:o}, s:[o]}", "uid", principal_uid(who),
				       "attrs", "name", who->token.name, "owner", "__entity",
				       uid("User", who->user), "scopes", scopes, "parents",
				       uid("User", who->user)));
	}
	if (t->owner[0])
		json_array_append_new(arr, json_pack("{s:o, s:{s:{s:o}}, s:[]}", "uid",
						     uid(t->rtype, t->rid), "attrs", "owner",
						     "__entity", uid("User", t->owner), "parents"));
	/* resource.trust: the kernel's trust score in percent, when known
	 * (docs/trust.md); absent otherwise, so policies ask `has` first. */
	if (trust >= 0 && !strcmp(t->rtype, "Kernel"))
		json_array_append_new(arr, json_pack("{s:o, s:{s:i}, s:[]}", "uid",
						     uid(t->rtype, t->rid), "attrs", "trust", trust,
						     "parents"));
	return arr;
}

/* ---- answers */

static void refuse(api_ctx *api, sdk_req *req, bool anonymous, const char *user,
		   const api_target *t)
{
	const char *action = t->action;
	if (anonymous) { /* nobody: the same answer as the role table's */
		api_reply_unauthenticated(req, false);
		return;
	}
	/* Evidence for the user's trust score (docs/trust.md). */
	ob_publish(api->ob, "grace.policy.denied",
		   json_pack("{s:s, s:s, s:s, s:s}", "user", user, "action", action, "resource_type",
			     t->rtype, "resource", t->rid));
	sdk_reply_error(req, 403, "forbidden", "%s %s (action %s) is not allowed by policy",
			sdk_req_method(req), sdk_req_path(req), action);
}

/* Break glass with a session only: an API token is scoped. */
static bool may_break_glass(api_ctx *api, sdk_req *req, const sdk_route *route,
			    const api_target *t, enum api_principal_kind kind, int role)
{
	return kind == API_PRINCIPAL_USER && role == AUTH_ROLE_ADMIN &&
	       api_break_glass(api, req, route, t);
}

/* The policy kernel cannot decide: the break-glass set stays open to an
 * admin's session, audited; everything else gets 503. */
static bool unavailable(api_ctx *api, sdk_req *req, bool glass_ok, const char *user,
			const char *why)
{
	if (glass_ok) {
		char clipped[OB_PATH_MAX + 1], resource[OB_PATH_MAX + 16];
		ob_path_clip(sdk_req_path(req), OB_PATH_MAX, clipped);
		snprintf(resource, sizeof resource, "%s %s", sdk_req_method(req), clipped);
		sdk_warn("break-glass: %s: %s (the policy kernel cannot decide: %s)", user, resource,
			 why);
		ob_audit(api->ob, user, "policy.break_glass", resource, "allowed", sdk_req_peer(req),
			 json_pack("{s:s, s:s}", "reason", why, "request_id", sdk_req_id(req)));
		return true;
	}
	sdk_req_add_header(req, "Retry-After", "1");
	sdk_reply_error(req, 503, "policy_unavailable",
			"requests are decided by the policy kernel, and %s; only the break-glass "
			"routes stay open, to admins (docs/policy.md)",
			why);
	return false;
}

/* A request waiting for its decision. */
struct wait {
	api_ctx *api;
	sdk_req *req;
	const sdk_route *route; /* the server's table outlives every request */
	enum api_principal_kind kind;
	int role;
	char user[AUTH_NAME_MAX + 1];
	api_target t;
};

static void on_decided(int result, const char *why, void *arg)
{
	struct wait *w = arg;
	api_ctx *api = w->api;
	sdk_req *req = w->req;
	bool go = false, anonymous = w->kind == API_PRINCIPAL_ANONYMOUS;
	if (result == SDK_PDP_ALLOW)
		go = !anonymous || api_csrf_anonymous_ok(api, req);
	else if (result == SDK_PDP_DENY)
		refuse(api, req, anonymous, w->user, &w->t);
	else /* shutting down (api->pdp gone): no break-glass then */
		go = unavailable(api, req,
				 api->pdp && may_break_glass(api, req, w->route, &w->t, w->kind, w->role),
				 w->user, why ? why : "it is not ready");
	free(w);
	if (go && api_audit_admit(req, api))
		sdk_req_resume(req);
}

bool api_decide(api_ctx *api, sdk_req *req, const sdk_route *route, const api_principal *who)
{
	api_target t;
	api_target_of(api, req, route, who, &t);
	bool anonymous = who->kind == API_PRINCIPAL_ANONYMOUS;
	sdk_pdp *pdp = pdp_of(api);
	if (!pdp)
		return unavailable(api, req, may_break_glass(api, req, route, &t, who->kind, who->role),
				   who->user, "there is no memory to ask it");
	int trust = !strcmp(t.rtype, "Kernel") ? tc_percent(api->trust, t.rid, sdk_wall_ms()) : -1;
	char key[PDP_KEY_MAX];
	int n = key_of(who, &t, trust, key, sizeof key);
	if (n < 0) {
		sdk_reply_error(req, 414, "uri_too_long", "the request is too long to be decided");
		return false;
	}
	switch (sdk_pdp_lookup(pdp, key, (size_t)n)) {
	case SDK_PDP_ALLOW: return !anonymous || api_csrf_anonymous_ok(api, req);
	case SDK_PDP_DENY: refuse(api, req, anonymous, who->user, &t); return false;
	case SDK_PDP_UNAVAILABLE:
		return unavailable(api, req, may_break_glass(api, req, route, &t, who->kind, who->role),
				   who->user, sdk_pdp_why(pdp));
	default: break;
	}
	struct wait *w = calloc(1, sizeof *w);
	json_t *q = json_pack("{s:o, s:o, s:o, s:{}}", "principal", principal_uid(who), "action",
			      uid("Action", t.action), "resource", uid(t.rtype, t.rid), "context");
	json_t *ents = entities_of(who, &t, trust);
	if (!w || !q || !ents) {
		free(w);
		json_decref(q);
		json_decref(ents);
		return unavailable(api, req, may_break_glass(api, req, route, &t, who->kind, who->role),
				   who->user, "there is no memory to ask it");
	}
	*w = (struct wait){ .api = api, .req = req, .route = route, .kind = who->kind,
			    .role = who->role, .t = t };
	snprintf(w->user, sizeof w->user, "%s", who->user);
	sdk_pdp_ask(pdp, key, (size_t)n, q, ents, on_decided, w);
	return false;
}

void api_decide_free(api_ctx *api)
{
	sdk_pdp *pdp = api->pdp;
	api->pdp = NULL; /* the waiters answered now see it gone */
	sdk_pdp_free(pdp);
	tc_free(api->trust);
	api->trust = NULL;
}

void api_decide_on_reply(api_ctx *api, sdk_req *req, int status)
{
	static const char prefix[] = "/kernels/" POLICY_KERNEL "/";
	static const char entities[] = "/kernels/" POLICY_KERNEL "/entities";
	const char *m = sdk_req_method(req), *path = sdk_req_path(req);
	/* The writes: PUT and DELETE, and POST /entities (other POSTs ask). */
	bool write = !strcmp(m, "PUT") || !strcmp(m, "DELETE") ||
		     (!strcmp(m, "POST") && !strncmp(path, entities, sizeof entities - 1));
	if (api->pdp && status < 300 && write && !strncmp(path, prefix, sizeof prefix - 1))
		sdk_pdp_invalidate(api->pdp);
}

void api_decide_metrics(api_ctx *api, struct evbuffer *out)
{
	if (api->pdp)
		sdk_pdp_metrics(api->pdp, out, "grace_policy");
}
