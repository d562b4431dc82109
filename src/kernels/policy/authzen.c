/* The AuthZEN Authorization API 1.0 (OpenID) over the Cedar engine:
 *
 *   subject  {"type": T, "id": I, "properties": {...}}  ->  principal T::"I"
 *   action   {"name": N, "properties": {...}}           ->  action Action::"N"
 *   resource {"type": T, "id": I, "properties": {...}}  ->  resource T::"I"
 *   context  {...}                                      ->  context
 *
 * The type is used as the Cedar entity type as it is (so it must be one:
 * "User", "NS::Doc"). Properties become attributes of that entity for this
 * decision, over what the entity store holds for it (its parents stay the
 * store's). Values are in Cedar's JSON format, so {"__entity": ...} and
 * {"__extn": ...} work there too. See docs/policy.md. */
#include "kernels/policy/policy.h"

#include "kernels/policy/json.h"

#include <stdio.h>
#include <string.h>

typedef struct az_part {
	const cedar_uid *uid;
	json_t *props; /* borrowed; NULL when none */
} az_part;

/* Reads a subject or resource ({type, id}) or an action ({name}). */
static int az_part_of(cedar_arena *a, json_t *obj, const char *what, bool action, az_part *out,
		      sdk_err *why)
{
	if (!json_is_object(obj)) {
		return sdk_fail(why, SDK_EINVAL, "%s is required (an object)", what);
	}
	json_t *type = action ? NULL : json_object_get(obj, "type");
	json_t *id = json_object_get(obj, action ? "name" : "id");
	if ((!action && !json_is_string(type)) || !json_is_string(id)) {
		sdk_fail(why, SDK_EINVAL,
			 action ? "%s needs a string \"name\""
				: "%s needs strings \"type\" and \"id\"",
			 what);
		return -1;
	}
	const char *t = action ? "Action" : json_string_value(type);
	size_t tlen = action ? 6 : json_string_length(type);
	if (!cedar_type_name_valid(t, tlen)) {
		sdk_fail(why, SDK_EINVAL,
			 "%s type \"%.60s\" is not a Cedar entity type name (like User or NS::Doc)",
			 what, t);
		return -1;
	}
	out->uid = cedar_uid_new(a, t, (uint32_t)tlen, json_string_value(id), (uint32_t)json_string_length(id));
	if (!out->uid) {
		return sdk_fail(why, SDK_EINVAL, "out of memory");
	}
	out->props = json_object_get(obj, "properties");
	if (out->props && json_is_null(out->props))
		out->props = NULL;
	if (out->props && !json_is_object(out->props)) {
		return sdk_fail(why, SDK_EINVAL, "%s properties must be an object", what);
	}
	return 0;
}

/* The entities this evaluation lays over the store: each part with
 * properties, its stored attributes overridden by them. */
static int az_view(pol_kernel *pk, az_part *parts, cedar_view *v, sdk_err *why)
{
	*v = (cedar_view){ .base = pk->store->ents };
	json_t *list = json_array();
	const cedar_uid *uids[3];
	json_t *ents[3];
	size_t count = 0;
	for (int i = 0; i < 3; i++) {
		if (!parts[i].props || !json_object_size(parts[i].props))
			continue;
		json_t *ent = NULL;
		for (size_t k = 0; k < count; k++)
			if (cedar_uid_eq(uids[k], parts[i].uid))
				ent = ents[k];
		if (!ent) {
			const cedar_entity *stored = pk->store->ents ? cedar_entities_get(pk->store->ents, parts[i].uid)
								     : NULL;
			json_t *attrs = stored ? json_deep_copy(json_object_get(stored->json, "attrs")) : NULL;
			json_t *parents = stored ? json_deep_copy(json_object_get(stored->json, "parents")) : NULL;
			ent = json_pack("{s:o, s:o, s:o}", "uid", cedar_uid_json(parts[i].uid), "attrs",
					attrs ? attrs : json_object(), "parents", parents ? parents : json_array());
			if (stored && json_object_get(stored->json, "tags"))
				json_object_set(ent, "tags", json_object_get(stored->json, "tags"));
			json_array_append_new(list, ent);
			uids[count] = parts[i].uid;
			ents[count++] = ent;
		}
		json_object_update(json_object_get(ent, "attrs"), parts[i].props);
	}
	int rc = 0;
	if (count) {
		cedar_entities *over;
		sdk_err inner;
		if (cedar_entities_parse(&pk->arena, list, false, false, &over, &inner) < 0 ||
		    (v->over = over, cedar_view_check(v, &pk->arena, &inner) < 0))
			rc = sdk_fail(why, SDK_EINVAL, "properties: %s", inner.msg);
	}
	json_decref(list);
	return rc;
}

static json_t *az_reason(const pol_set *set, const cedar_response *r)
{
	char msg[300];
	if (r->n_determining) {
		const char *id = set->ps->policies[r->determining[0]].id;
		snprintf(msg, sizeof msg, "%s by policy %s%s", r->allow ? "permitted" : "forbidden", id,
			 r->n_determining > 1 ? " and others" : "");
	} else {
		snprintf(msg, sizeof msg, "no policy permits this request");
	}
	return json_pack("{s:s}", "en", msg);
}

/* One evaluation: 0 with the AuthZEN answer in *out, or -1 with why (a
 * 400 for the whole request, or one evaluation's error in a batch). */
static int az_evaluate_one(pol_kernel *pk, const pol_set *set, json_t *subject, json_t *action,
			   json_t *resource, json_t *context, json_t **out, sdk_err *why);

/* The reason goes into JSON: it must be UTF-8 even when it quotes a cut. */
static int az_evaluate(pol_kernel *pk, const pol_set *set, json_t *subject, json_t *action,
		       json_t *resource, json_t *context, json_t **out, sdk_err *why)
{
	int rc = az_evaluate_one(pk, set, subject, action, resource, context, out, why);
	if (rc < 0)
		cedar_utf8_sanitize(why->msg);
	return rc;
}

static int az_evaluate_one(pol_kernel *pk, const pol_set *set, json_t *subject, json_t *action,
			   json_t *resource, json_t *context, json_t **out, sdk_err *why)
{
	az_part parts[3];
	if (az_part_of(&pk->arena, subject, "subject", false, &parts[0], why) < 0 ||
	    az_part_of(&pk->arena, action, "action", true, &parts[1], why) < 0 ||
	    az_part_of(&pk->arena, resource, "resource", false, &parts[2], why) < 0)
		return -1;
	cedar_view v;
	if (az_view(pk, parts, &v, why) < 0)
		return -1;
	cedar_request rq = { .principal = parts[0].uid, .action = parts[1].uid, .resource = parts[2].uid,
			     .context = { .kind = CEDAR_RECORD } };
	sdk_err inner;
	if (context && !json_is_null(context) &&
	    (!json_is_object(context) ||
	     cedar_json_record(&pk->arena, context, &rq.context, &inner) < 0))
		return sdk_fail(why, SDK_EINVAL, "context: %s",
				json_is_object(context) ? inner.msg : "must be an object");
	cedar_response r;
	if (pol_authorize(set, &rq, &v, &pk->arena, &r) < 0) {
		return sdk_fail(why, SDK_EINVAL, "out of memory deciding the request");
	}
	json_t *ctx = json_pack("{s:o, s:o, s:o}", "reason_admin", az_reason(set, &r), "policies",
				pol_policy_ids(set, r.determining, r.n_determining), "errors",
				pol_policy_errors(set, &r));
	pol_add_versions(ctx, pk, set);
	*out = json_pack("{s:b, s:o}", "decision", r.allow, "context", ctx);
	return 0;
}

void pol_on_evaluation(sdk_req *req, void *ctx)
{
	pol_kernel *pk = pol_of(ctx);
	json_t *body = pol_body_json(req, true);
	const pol_set *set = body ? pol_decision_set(req, pk, NULL) : NULL;
	if (set) {
		json_t *out;
		sdk_err why;
		if (az_evaluate(pk, set, json_object_get(body, "subject"),
				json_object_get(body, "action"), json_object_get(body, "resource"),
				json_object_get(body, "context"), &out, &why) < 0)
			sdk_reply_error(req, 400, "invalid", "%s", why.msg);
		else
			sdk_reply_json(req, 200, out);
	}
	json_decref(body);
	cedar_arena_reset(&pk->arena);
}

enum az_semantic { EXECUTE_ALL, DENY_ON_FIRST_DENY, PERMIT_ON_FIRST_PERMIT };

void pol_on_evaluations(sdk_req *req, void *ctx)
{
	pol_kernel *pk = pol_of(ctx);
	json_t *body = pol_body_json(req, true);
	const pol_set *set = body ? pol_decision_set(req, pk, NULL) : NULL;
	if (!set)
		goto out;
	json_t *evals = json_object_get(body, "evaluations");
	json_t *sub = json_object_get(body, "subject"), *act = json_object_get(body, "action");
	json_t *res = json_object_get(body, "resource"), *con = json_object_get(body, "context");
	sdk_err why;
	if (!evals) {
		/* No evaluations array: the single evaluation, as the spec asks. */
		json_t *one;
		if (az_evaluate(pk, set, sub, act, res, con, &one, &why) < 0)
			sdk_reply_error(req, 400, "invalid", "%s", why.msg);
		else
			sdk_reply_json(req, 200, one);
		goto out;
	}
	if (!json_is_array(evals) || json_array_size(evals) > POL_BATCH_MAX) {
		sdk_reply_error(req, 400, "invalid", "evaluations is an array of at most %d objects",
				POL_BATCH_MAX);
		goto out;
	}
	enum az_semantic sem = EXECUTE_ALL;
	json_t *opts = json_object_get(body, "options");
	json_t *s = json_is_object(opts) ? json_object_get(opts, "evaluations_semantic") : NULL;
	if (opts && !json_is_object(opts)) {
		sdk_reply_error(req, 400, "invalid", "options must be an object");
		goto out;
	}
	if (s) {
		const char *v = json_string_value(s);
		if (v && !strcmp(v, "execute_all"))
			sem = EXECUTE_ALL;
		else if (v && !strcmp(v, "deny_on_first_deny"))
			sem = DENY_ON_FIRST_DENY;
		else if (v && !strcmp(v, "permit_on_first_permit"))
			sem = PERMIT_ON_FIRST_PERMIT;
		else {
			sdk_reply_error(req, 400, "invalid", "options.evaluations_semantic is execute_all, "
							     "deny_on_first_deny or permit_on_first_permit");
			goto out;
		}
	}
	json_t *results = json_array();
	size_t i;
	json_t *e;
	json_array_foreach(evals, i, e) {
		json_t *one;
		bool decision = false;
		if (!json_is_object(e)) {
			one = json_pack("{s:b, s:{s:{s:i, s:s}}}", "decision", 0, "context", "error", "status", 400,
					"message", "each evaluation is an object");
		} else {
			json_t *es = json_object_get(e, "subject"), *ea = json_object_get(e, "action");
			json_t *er = json_object_get(e, "resource"), *ec = json_object_get(e, "context");
			if (az_evaluate(pk, set, es ? es : sub, ea ? ea : act, er ? er : res,
					ec ? ec : con, &one, &why) < 0)
				one = json_pack("{s:b, s:{s:{s:i, s:s}}}", "decision", 0, "context",
						"error", "status", 400, "message", why.msg);
			else
				decision = json_is_true(json_object_get(one, "decision"));
		}
		json_array_append_new(results, one);
		if ((sem == DENY_ON_FIRST_DENY && !decision) || (sem == PERMIT_ON_FIRST_PERMIT && decision))
			break;
	}
	sdk_reply_json(req, 200, json_pack("{s:o}", "evaluations", results));
out:
	json_decref(body);
	cedar_arena_reset(&pk->arena);
}

/* The PDP's identifier is where it was reached: http://HOST, plus the
 * X-Forwarded-Prefix a gateway in front says it serves this under. */
void pol_on_authzen_config(sdk_req *req, void *ctx)
{
	(void)ctx;
	const char *host = sdk_req_header(req, "Host");
	const char *prefix = sdk_req_header(req, "X-Forwarded-Prefix");
	const char *proto = sdk_req_header(req, "X-Forwarded-Proto");
	char base[512];
	snprintf(base, sizeof base, "%s://%s%s", proto && !strcmp(proto, "https") ? "https" : "http",
		 host && *host && !strpbrk(host, "/ \"\\") ? host : "localhost",
		 prefix && prefix[0] == '/' && !strpbrk(prefix, " \"\\?#") ? prefix : "");
	size_t n = strlen(base);
	while (n > 0 && base[n - 1] == '/')
		base[--n] = 0;
	char one[600], many[600];
	snprintf(one, sizeof one, "%s/access/v1/evaluation", base);
	snprintf(many, sizeof many, "%s/access/v1/evaluations", base);
	sdk_reply_json(req, 200, json_pack("{s:s, s:s, s:s}", "policy_decision_point", base,
					   "access_evaluation_endpoint", one, "access_evaluations_endpoint",
					   many));
}
