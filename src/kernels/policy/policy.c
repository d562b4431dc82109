/* The policy kernel (8113): Cedar policy sets, versioned; the entity store;
 * decisions, Cedar-shaped (/authorize) and AuthZEN-shaped (authzen.c).
 * Every decision answers with the policy set's version and the entity
 * store's version, the key a caller's decision cache needs. See
 * docs/policy.md. */
#include "kernels/policy/policy.h"

#include "kernels/policy/json.h"
#include "kernels/registry.h"
#include "sdk/json_keys.h"
#include "sdk/clock.h"
#include "sdk/log.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <sys/random.h>
#include <stdlib.h>
#include <string.h>

pol_kernel *pol_of(void *ctx)
{
	return ((sdk_kernel *)ctx)->state;
}

/* A change was written: whoever watches the versions learns it now, and
 * its audit event goes out. */
static void changed(pol_kernel *pk)
{
	pol_watch_notify(pk);
	pol_audit_kick(pk);
}

/* Names who the coming change is by, for its audit event. */
static void actor_set(pol_kernel *pk, sdk_req *req)
{
	char actor[POL_ACTOR_MAX + 1];
	pol_actor_of(req, pk->k, actor, sizeof actor);
	pol_store_actor(pk->store, actor);
}

/* Answers a failure of this kernel's store in Grace's convention. */
static void reply_status(sdk_req *req, int status, const sdk_err *e)
{
	sdk_reply_status(req, status == POL_ESYNTAX ? SDK_EINVAL : status, e);
}

json_t *pol_body_json(sdk_req *req, bool want_object)
{
	struct evbuffer *b = sdk_req_body(req);
	size_t len = evbuffer_get_length(b);
	if (len == 0) {
		sdk_reply_error(req, 400, "bad_json", "a JSON body is required");
		return NULL;
	}
	const char *text = (const char *)evbuffer_pullup(b, -1);
	json_error_t e;
	json_t *j = text ? json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &e) : NULL;
	if (!j) {
		sdk_reply_error(req, 400, "bad_json", "invalid JSON at line %d column %d: %s", e.line,
				e.column, e.text);
		return NULL;
	}
	if (want_object && !json_is_object(j)) {
		json_decref(j);
		sdk_reply_error(req, 400, "bad_json", "the body must be a JSON object");
		return NULL;
	}
	return j;
}

/* An optional integer query parameter or body field: -1 when absent. */
static int expected_version(sdk_req *req, json_t *body, int64_t *out)
{
	*out = -1;
	json_t *v = body ? json_object_get(body, "expected_version") : NULL;
	if (v) {
		if (!json_is_integer(v) || json_integer_value(v) < 0) {
			sdk_reply_error(req, 400, "invalid", "expected_version is an integer from 0");
			return -1;
		}
		*out = json_integer_value(v);
		return 0;
	}
	if (!sdk_req_query(req, "expected_version"))
		return 0;
	unsigned long long n;
	if (sdk_req_query_uint(req, "expected_version", 0, 1ULL << 62, 0, &n) < 0)
		return -1;
	*out = (int64_t)n;
	return 0;
}

void pol_add_versions(json_t *obj, const pol_kernel *pk, const pol_set *set)
{
	json_object_set_new(obj, "policy_set", json_string(set->name));
	json_object_set_new(obj, "policy_version", json_integer(set->version));
	json_object_set_new(obj, "entities_version", json_integer(pk->store->ents_version));
}

json_t *pol_policy_ids(const pol_set *set, const uint32_t *idx, uint32_t n)
{
	json_t *arr = json_array();
	for (uint32_t i = 0; i < n; i++)
		json_array_append_new(arr, json_string(set->ps->policies[idx[i]].id));
	return arr;
}

json_t *pol_policy_errors(const pol_set *set, const cedar_response *r)
{
	json_t *arr = json_array();
	for (uint32_t i = 0; i < r->n_errors; i++)
		json_array_append_new(arr, json_pack("{s:s, s:s}", "policy",
						     set->ps->policies[r->errors[i].policy].id, "message",
						     r->errors[i].msg));
	return arr;
}

int pol_authorize(const pol_set *set, const cedar_request *rq, const cedar_view *v,
		  cedar_arena *a, cedar_response *out)
{
	static const cedar_policy_set none = { 0 };
	return cedar_authorize(set->ps ? set->ps : &none, rq, v, a, out);
}

const pol_set *pol_decision_set(sdk_req *req, pol_kernel *pk, json_t *body)
{
	const char *name = sdk_req_query(req, "policy_set");
	json_t *field = body ? json_object_get(body, "policy_set") : NULL;
	if (!name && field) {
		if (!json_is_string(field)) {
			sdk_reply_error(req, 400, "invalid", "policy_set is a string");
			return NULL;
		}
		name = json_string_value(field);
	}
	if (!name)
		name = POL_DEFAULT_SET;
	const pol_set *set = pol_store_set(pk->store, name);
	if (!set) {
		sdk_reply_error(req, 404, "not_found", "no policy set named \"%.64s\"", name);
		return NULL;
	}
	if (set->broken) {
		sdk_reply_error(req, 500, "policy_set_broken", "policy set \"%s\": %s", set->name, set->broken);
		return NULL;
	}
	return set;
}

/* ---- policy sets */

static json_t *policies_json(const cedar_policy_set *ps)
{
	json_t *arr = json_array();
	for (uint32_t i = 0; ps && i < ps->n; i++) {
		const cedar_policy *p = &ps->policies[i];
		json_t *ann = json_object();
		for (uint32_t k = 0; k < p->n_annotations; k++)
			json_object_setn_new(ann, p->annotations[k].key, p->annotations[k].key_len,
					     json_stringn(p->annotations[k].value, p->annotations[k].value_len));
		json_array_append_new(arr, json_pack("{s:s, s:s, s:i, s:i, s:o}", "id", p->id, "effect",
						     p->forbid ? "forbid" : "permit", "line", (int)p->line,
						     "column", (int)p->column, "annotations", ann));
	}
	return arr;
}

static json_t *set_json(const pol_kernel *pk, const pol_set *set, bool with_text)
{
	json_t *o = json_pack("{s:s, s:I, s:I, s:b}", "name", set->name, "version",
			      (json_int_t)set->version, "updated_ms", (json_int_t)set->updated_ms, "deleted",
			      !set->ps && !set->broken);
	if (set->broken)
		json_object_set_new(o, "broken", json_string(set->broken));
	if (set->ps) {
		json_object_set_new(o, "policies", policies_json(set->ps));
		if (with_text)
			json_object_set_new(o, "text", json_stringn(set->ps->text, set->ps->text_len));
	}
	json_object_set_new(o, "entities_version", json_integer(pk->store->ents_version));
	return o;
}

static void reply_syntax_error(sdk_req *req, const cedar_parse_error *perr)
{
	char msg[400];
	snprintf(msg, sizeof msg, "line %u, column %u: %s", perr->line, perr->column, perr->msg);
	sdk_reply_json(req, 400, json_pack("{s:{s:s, s:s, s:s, s:i, s:i}}", "error", "code", "syntax_error",
					   "message", msg, "request_id", sdk_req_id(req), "line",
					   (int)perr->line, "column", (int)perr->column));
}

static void on_sets_list(sdk_req *req, void *ctx)
{
	pol_kernel *pk = pol_of(ctx);
	json_t *arr = json_array();
	for (size_t i = 0; i < pk->store->n; i++)
		json_array_append_new(arr, set_json(pk, &pk->store->sets[i], false));
	sdk_reply_json(req, 200, json_pack("{s:o}", "policy_sets", arr));
}

static void on_set_get(sdk_req *req, void *ctx)
{
	pol_kernel *pk = pol_of(ctx);
	const pol_set *set = pol_store_set(pk->store, sdk_req_param(req, "name"));
	if (!set) {
		sdk_reply_error(req, 404, "not_found", "no policy set named \"%.64s\"", sdk_req_param(req, "name"));
		return;
	}
	if (!set->ps && !set->broken) {
		sdk_reply_error(req, 404, "not_found", "policy set \"%s\" was deleted at version %lld",
				set->name, (long long)set->version);
		return;
	}
	sdk_reply_json(req, 200, set_json(pk, set, true));
}

/* The policy text of a PUT or /validate: a JSON {"policies": TEXT} body,
 * or the text itself with Content-Type text/plain. *body (may stay NULL)
 * is the caller's to drop. */
static int policy_text(sdk_req *req, json_t **body, const char **text, size_t *len)
{
	static const char *const fields[] = { "policies", "expected_version", NULL };
	const char *ct = sdk_req_header(req, "Content-Type");
	*body = NULL;
	if (ct && !strncasecmp(ct, "text/plain", 10)) {
		struct evbuffer *b = sdk_req_body(req);
		*len = evbuffer_get_length(b);
		*text = *len ? (const char *)evbuffer_pullup(b, -1) : "";
		return *text ? 0 : -1;
	}
	*body = pol_body_json(req, true);
	if (!*body || sdk_req_fields_only(req, *body, fields) < 0)
		return -1;
	json_t *p = json_object_get(*body, "policies");
	if (!json_is_string(p)) {
		sdk_reply_error(req, 400, "invalid", "policies (the Cedar text, a string) is required");
		return -1;
	}
	*text = json_string_value(p);
	*len = json_string_length(p);
	return 0;
}

static void on_set_put(sdk_req *req, void *ctx)
{
	pol_kernel *pk = pol_of(ctx);
	json_t *body;
	const char *text;
	size_t len;
	int64_t expected;
	if (policy_text(req, &body, &text, &len) < 0 || expected_version(req, body, &expected) < 0) {
		json_decref(body);
		return;
	}
	const pol_set *set;
	bool created;
	cedar_parse_error perr;
	sdk_err e;
	actor_set(pk, req);
	int rc = pol_store_put(pk->store, sdk_req_param(req, "name"), text, len, expected, sdk_wall_ms(),
			       &set, &created, &perr, &e);
	json_decref(body);
	if (rc == POL_ESYNTAX) {
		reply_syntax_error(req, &perr);
	} else if (rc < 0) {
		reply_status(req, rc, &e);
	} else {
		changed(pk);
		sdk_reply_json(req, created ? 201 : 200, set_json(pk, set, false));
	}
}

static void on_set_delete(sdk_req *req, void *ctx)
{
	pol_kernel *pk = pol_of(ctx);
	int64_t expected;
	if (expected_version(req, NULL, &expected) < 0)
		return;
	const pol_set *set;
	sdk_err e;
	actor_set(pk, req);
	int rc = pol_store_delete(pk->store, sdk_req_param(req, "name"), expected, sdk_wall_ms(), &set, &e);
	if (rc < 0) {
		reply_status(req, rc, &e);
	} else {
		changed(pk);
		sdk_reply_json(req, 200, set_json(pk, set, false));
	}
}

static void on_versions(sdk_req *req, void *ctx)
{
	pol_kernel *pk = pol_of(ctx);
	json_t *arr;
	sdk_err e;
	const char *name = sdk_req_param(req, "name");
	int rc = pol_store_versions(pk->store, name, &arr, &e);
	if (rc < 0)
		reply_status(req, rc, &e);
	else
		sdk_reply_json(req, 200, json_pack("{s:s, s:o}", "name", name, "versions", arr));
}

static void on_version(sdk_req *req, void *ctx)
{
	pol_kernel *pk = pol_of(ctx);
	const char *v = sdk_req_param(req, "version");
	char *end;
	long long n = strtoll(v, &end, 10);
	if (!*v || *end || n < 1) {
		sdk_reply_error(req, 400, "invalid", "a version is an integer from 1");
		return;
	}
	json_t *out;
	sdk_err e;
	int rc = pol_store_version(pk->store, sdk_req_param(req, "name"), n, &out, &e);
	if (rc < 0)
		reply_status(req, rc, &e);
	else
		sdk_reply_json(req, 200, out);
}

static void on_validate(sdk_req *req, void *ctx)
{
	(void)ctx;
	json_t *body;
	const char *text;
	size_t len;
	if (policy_text(req, &body, &text, &len) < 0) {
		json_decref(body);
		return;
	}
	cedar_policy_set *ps;
	cedar_parse_error perr;
	int rc = cedar_parse(text, len, &ps, &perr);
	json_decref(body);
	if (rc < 0) {
		reply_syntax_error(req, &perr);
		return;
	}
	sdk_reply_json(req, 200, json_pack("{s:b, s:o}", "valid", 1, "policies", policies_json(ps)));
	cedar_policy_set_free(ps);
}

/* ---- entities */

static void on_entities_list(sdk_req *req, void *ctx)
{
	pol_kernel *pk = pol_of(ctx);
	unsigned long long limit, offset;
	if (sdk_req_query_uint(req, "limit", 1, CEDAR_ENTITIES_MAX, 1000, &limit) < 0 ||
	    sdk_req_query_uint(req, "offset", 0, CEDAR_ENTITIES_MAX, 0, &offset) < 0)
		return;
	const char *type = sdk_req_query(req, "type"), *id = sdk_req_query(req, "id");
	json_t *arr = json_array();
	size_t matched = 0;
	const cedar_entities *es = pk->store->ents;
	for (uint32_t i = 0; es && i < es->n; i++) {
		const cedar_uid *u = es->list[i]->uid;
		if (type && !cedar_bytes_eq(u->type, u->type_len, type, (uint32_t)strlen(type)))
			continue;
		if (id && !cedar_bytes_eq(u->id, u->id_len, id, (uint32_t)strlen(id)))
			continue;
		if (matched >= offset && json_array_size(arr) < limit)
			json_array_append(arr, es->list[i]->json);
		matched++;
	}
	sdk_reply_json(req, 200, json_pack("{s:I, s:I, s:I, s:o}", "version",
					   (json_int_t)pk->store->ents_version, "updated_ms",
					   (json_int_t)pk->store->ents_updated_ms, "total", (json_int_t)matched,
					   "entities", arr));
}

static void entities_write(sdk_req *req, void *ctx, bool replace)
{
	static const char *const fields[] = { "entities", "expected_version", NULL };
	pol_kernel *pk = pol_of(ctx);
	json_t *body = pol_body_json(req, false);
	if (!body)
		return;
	json_t *arr = body;
	if (json_is_object(body)) {
		if (sdk_req_fields_only(req, body, fields) < 0) {
			json_decref(body);
			return;
		}
		arr = json_object_get(body, "entities");
	}
	int64_t expected;
	if (!json_is_array(arr)) {
		json_decref(body);
		sdk_reply_error(req, 400, "invalid", "send an array of entities, or {\"entities\": [...]}");
		return;
	}
	if (expected_version(req, json_is_object(body) ? body : NULL, &expected) < 0) {
		json_decref(body);
		return;
	}
	sdk_err e;
	actor_set(pk, req);
	int rc = pol_store_put_entities(pk->store, arr, replace, expected, sdk_wall_ms(), &e);
	size_t n = json_array_size(arr);
	json_decref(body);
	if (rc < 0) {
		reply_status(req, rc, &e);
		return;
	}
	changed(pk);
	sdk_reply_json(req, 200, json_pack("{s:I, s:I, s:I}", "version",
					   (json_int_t)pk->store->ents_version, "written", (json_int_t)n,
					   "total", (json_int_t)pk->store->ents->n));
}

static void on_entities_replace(sdk_req *req, void *ctx)
{
	entities_write(req, ctx, true);
}

static void on_entities_upsert(sdk_req *req, void *ctx)
{
	entities_write(req, ctx, false);
}

static const cedar_entity *entity_at(pol_kernel *pk, sdk_req *req)
{
	const char *type = sdk_req_param(req, "type"), *id = sdk_req_param(req, "*");
	if (!type || !id)
		return NULL;
	cedar_uid key = { .type = type, .type_len = (uint32_t)strlen(type), .id = id,
			  .id_len = (uint32_t)strlen(id) };
	key.hash = cedar_uid_hash(key.type, key.type_len, key.id, key.id_len);
	return pk->store->ents ? cedar_entities_get(pk->store->ents, &key) : NULL;
}

static void on_entity_get(sdk_req *req, void *ctx)
{
	pol_kernel *pk = pol_of(ctx);
	const cedar_entity *e = entity_at(pk, req);
	if (!e) {
		sdk_reply_error(req, 404, "not_found", "no such entity");
		return;
	}
	sdk_reply_json(req, 200, json_pack("{s:I, s:O}", "version", (json_int_t)pk->store->ents_version,
					   "entity", e->json));
}

static void on_entity_delete(sdk_req *req, void *ctx)
{
	pol_kernel *pk = pol_of(ctx);
	int64_t expected;
	if (expected_version(req, NULL, &expected) < 0)
		return;
	const char *type = sdk_req_param(req, "type"), *id = sdk_req_param(req, "*");
	sdk_err e;
	actor_set(pk, req);
	int rc = pol_store_delete_entity(pk->store, type, id, strlen(id), expected, sdk_wall_ms(), &e);
	if (rc < 0) {
		reply_status(req, rc, &e);
	} else {
		changed(pk);
		sdk_reply_json(req, 200, json_pack("{s:I}", "version", (json_int_t)pk->store->ents_version));
	}
}

/* ---- decisions, Cedar-shaped */

/* The request's own entities, laid over the store: answers 400 and
 * returns -1 when they are bad or make a cycle with the store's. */
static int request_view(sdk_req *req, pol_kernel *pk, json_t *ents, cedar_view *v)
{
	sdk_err why;
	*v = (cedar_view){ .base = pk->store->ents };
	if (!ents || json_is_null(ents))
		return 0;
	cedar_entities *over;
	if (cedar_entities_parse(&pk->arena, ents, false, false, &over, &why) < 0 ||
	    (v->over = over, cedar_view_check(v, &pk->arena, &why) < 0)) {
		sdk_reply_error(req, 400, "invalid_entities", "entities: %s", why.msg);
		return -1;
	}
	return 0;
}

static json_t *decision_json(const pol_set *set, const cedar_response *r)
{
	return json_pack("{s:s, s:{s:o, s:o}}", "decision", r->allow ? "allow" : "deny", "diagnostics",
			 "reason", pol_policy_ids(set, r->determining, r->n_determining), "errors",
			 pol_policy_errors(set, r));
}

static void on_authorize(sdk_req *req, void *ctx)
{
	static const char *const fields[] = { "principal", "action", "resource", "context",
					      "entities", "policy_set", NULL };
	pol_kernel *pk = pol_of(ctx);
	json_t *body = pol_body_json(req, true);
	if (!body || sdk_req_fields_only(req, body, fields) < 0)
		goto out;
	const pol_set *set = pol_decision_set(req, pk, body);
	cedar_view v;
	if (!set || request_view(req, pk, json_object_get(body, "entities"), &v) < 0)
		goto out;
	cedar_request rq;
	sdk_err why;
	if (cedar_request_parse(&pk->arena, json_object_get(body, "principal"),
				json_object_get(body, "action"), json_object_get(body, "resource"),
				json_object_get(body, "context"), &rq, &why) < 0) {
		sdk_reply_error(req, 400, "invalid", "%s", why.msg);
		goto out;
	}
	cedar_response r;
	if (pol_authorize(set, &rq, &v, &pk->arena, &r) < 0) {
		sdk_reply_error(req, 503, "busy", "out of memory deciding the request");
		goto out;
	}
	json_t *o = decision_json(set, &r);
	pol_add_versions(o, pk, set);
	sdk_reply_json(req, 200, o);
out:
	json_decref(body);
	cedar_arena_reset(&pk->arena);
}

static void on_authorize_batch(sdk_req *req, void *ctx)
{
	static const char *const fields[] = { "requests", "entities", "policy_set", NULL };
	static const char *const rq_fields[] = { "principal", "action", "resource", "context", NULL };
	pol_kernel *pk = pol_of(ctx);
	json_t *body = pol_body_json(req, true);
	if (!body || sdk_req_fields_only(req, body, fields) < 0)
		goto out;
	json_t *reqs = json_object_get(body, "requests");
	if (!json_is_array(reqs) || json_array_size(reqs) > POL_BATCH_MAX) {
		sdk_reply_error(req, 400, "invalid", "requests is an array of at most %d requests",
				POL_BATCH_MAX);
		goto out;
	}
	const pol_set *set = pol_decision_set(req, pk, body);
	cedar_view v;
	if (!set || request_view(req, pk, json_object_get(body, "entities"), &v) < 0)
		goto out;
	json_t *results = json_array();
	size_t i;
	json_t *one;
	json_array_foreach(reqs, i, one) {
		cedar_request rq;
		cedar_response r;
		sdk_err why = {
			"each request is an object of principal, action, resource and context"
		};
		const char *key;
		json_t *val;
		bool ok = json_is_object(one);
		json_object_foreach(ok ? one : NULL, key, val) {
			size_t k = 0;
			while (rq_fields[k] && strcmp(rq_fields[k], key))
				k++;
			if (!rq_fields[k]) {
				sdk_fail(&why, SDK_EINVAL, "unknown field \"%.60s\"", key);
				ok = false;
			}
		}
		if (ok && cedar_request_parse(&pk->arena, json_object_get(one, "principal"),
					      json_object_get(one, "action"),
					      json_object_get(one, "resource"),
					      json_object_get(one, "context"), &rq, &why) < 0)
			ok = false;
		if (!ok) {
			cedar_utf8_sanitize(why.msg);
			json_array_append_new(results,
					      json_pack("{s:{s:i, s:s}}", "error", "status", 400,
							"message", why.msg));
			continue;
		}
		if (pol_authorize(set, &rq, &v, &pk->arena, &r) < 0) {
			json_decref(results);
			sdk_reply_error(req, 503, "busy", "out of memory deciding the requests");
			goto out;
		}
		json_array_append_new(results, decision_json(set, &r));
	}
	json_t *o = json_pack("{s:o}", "results", results);
	pol_add_versions(o, pk, set);
	sdk_reply_json(req, 200, o);
out:
	json_decref(body);
	cedar_arena_reset(&pk->arena);
}

/* ---- life */

/* Whether version `version` of the default set is this Grace's built-in
 * text: 1 yes, 0 no (or it is a deletion), negative on a store error. */
static int is_builtin_text(pol_kernel *pk, int64_t version, sdk_err *e)
{
	json_t *v = NULL;
	int rc = pol_store_version(pk->store, POL_DEFAULT_SET, version, &v, e);
	if (rc == SDK_ENOTFOUND)
		return 0;
	if (rc < 0)
		return rc;
	const json_t *text = json_object_get(v, "text"); /* null: a deletion */
	bool same = json_is_string(text) && json_string_length(text) == pol_default_text_len &&
		    !memcmp(json_string_value(text), pol_default_text, pol_default_text_len);
	json_decref(v);
	return same;
}

/* A set as Grace ships it changes between versions (a new route, a new
 * call between kernels). As dpkg treats a configuration file: the stored
 * "default" is replaced by this Grace's built-in text only when it is
 * still exactly what an earlier Grace wrote (its newest version is the
 * one marked built-in); a set an operator changed is kept, and when the
 * built-in text moved on under it, that is logged at every start for
 * them to merge (or `grace policy reset`). A store from before the mark
 * counts version 1 as built-in: only the first start writes it. */
static int upgrade_default(pol_kernel *pk, const pol_set *cur, sdk_err *e)
{
	if (!cur->ps)
		return 0; /* deleted (the operator's choice) or broken (reported) */
	int64_t builtin = 0;
	int rc = pol_store_builtin_version(pk->store, POL_DEFAULT_SET, &builtin, e);
	if (rc < 0)
		return rc;
	if (!builtin)
		builtin = 1;
	if ((rc = is_builtin_text(pk, builtin, e)) != 0)
		return rc < 0 ? rc : 0; /* the built-in text has not changed since */
	if (cur->version != builtin) {
		sdk_warn("policy set \"%s\" (version %lld) was changed since Grace wrote its "
			 "built-in set (version %lld), and this Grace's built-in set differs from "
			 "that one: kept as it is; routes and kernel calls new in this version are "
			 "denied until it allows them (compare with `grace policy default`, or "
			 "`grace policy reset`)",
			 POL_DEFAULT_SET, (long long)cur->version, (long long)builtin);
		return 0;
	}
	const pol_set *set;
	bool created;
	cedar_parse_error perr;
	pol_store_actor(pk->store, "policy (upgrade: the built-in default set of this version)");
	rc = pol_store_put_builtin(pk->store, POL_DEFAULT_SET, pol_default_text,
				   pol_default_text_len, cur->version, sdk_wall_ms(), &set, &created,
				   &perr, e);
	if (rc == POL_ESYNTAX)
		return sdk_fail(e, SDK_EINVAL,
				"the built-in default policy set does not parse: %u:%u: %s", perr.line,
				perr.column, perr.msg);
	if (rc == 0)
		sdk_info("policy set \"%s\": version %lld was an earlier Grace's built-in set, "
			 "unchanged since: upgraded to this version's as version %lld",
			 POL_DEFAULT_SET, (long long)cur->version, (long long)set->version);
	return rc;
}

/* The first start (or a store that never had one): the built-in default
 * set, so that :8000 has something to decide by. A deleted "default" is
 * not replaced: deleting it is an operator's choice (everything is then
 * denied; `grace policy reset` restores it). */
static int install_default(pol_kernel *pk, sdk_err *e)
{
	const pol_set *cur = pol_store_set(pk->store, POL_DEFAULT_SET);
	if (cur)
		return upgrade_default(pk, cur, e);
	const pol_set *set;
	bool created;
	cedar_parse_error perr;
	pol_store_actor(pk->store, "policy (first start: the built-in default set)");
	int rc = pol_store_put_builtin(pk->store, POL_DEFAULT_SET, pol_default_text,
				       pol_default_text_len, 0, sdk_wall_ms(), &set, &created, &perr, e);
	if (rc == POL_ESYNTAX)
		sdk_fail(e, SDK_EINVAL, "the built-in default policy set does not parse: %u:%u: %s",
			 perr.line, perr.column, perr.msg);
	return rc;
}

static int pol_init(sdk_kernel *k, sdk_err *err)
{
	pol_kernel *pk = calloc(1, sizeof *pk);
	if (!pk) {
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	pk->k = k;
	unsigned char raw[8] = { 0 };
	if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
		snprintf((char *)raw, sizeof raw, "%07d", (int)k->pid);
	for (size_t i = 0; i < sizeof raw; i++)
		snprintf(pk->instance + 2 * i, 3, "%02x", raw[i]);
	cedar_arena_init(&pk->arena, POL_REQUEST_ARENA);
	sdk_err e;
	if (pol_store_open(k->db, &pk->store, &e) < 0 || install_default(pk, &e) < 0) {
		sdk_fail(err, SDK_EIO, "%s", e.msg);
		pol_store_close(pk->store);
		cedar_arena_free(&pk->arena);
		free(pk);
		return SDK_EIO;
	}
	k->state = pk;
	pol_audit_kick(pk); /* what an earlier run, or `grace policy reset`, left */
	return 0;
}

static void pol_drain(sdk_kernel *k)
{
	if (k->state)
		pol_watch_drain(k->state);
}

static void pol_close(sdk_kernel *k)
{
	pol_kernel *pk = k->state;
	if (!pk)
		return;
	pol_watch_drain(pk);
	pol_audit_stop(pk);
	pol_store_close(pk->store);
	cedar_arena_free(&pk->arena);
	free(pk);
	k->state = NULL;
}

static const sdk_route pol_routes[] = {
	SDK_ROUTE("GET", "/policy-sets", on_sets_list),
	SDK_ROUTE("GET", "/policy-sets/:name", on_set_get),
	SDK_ROUTE("PUT", "/policy-sets/:name", on_set_put),
	SDK_ROUTE("DELETE", "/policy-sets/:name", on_set_delete),
	SDK_ROUTE("GET", "/policy-sets/:name/versions", on_versions),
	SDK_ROUTE("GET", "/policy-sets/:name/versions/:version", on_version),
	SDK_ROUTE("POST", "/validate", on_validate),
	SDK_ROUTE("GET", "/entities", on_entities_list),
	SDK_ROUTE("PUT", "/entities", on_entities_replace),
	SDK_ROUTE("POST", "/entities", on_entities_upsert),
	SDK_ROUTE("GET", "/entities/:type/*", on_entity_get),
	SDK_ROUTE("DELETE", "/entities/:type/*", on_entity_delete),
	SDK_ROUTE("POST", "/authorize", on_authorize),
	SDK_ROUTE("POST", "/authorize/batch", on_authorize_batch),
	SDK_ROUTE("POST", "/access/v1/evaluation", pol_on_evaluation),
	SDK_ROUTE("POST", "/access/v1/evaluations", pol_on_evaluations),
	SDK_ROUTE("GET", "/.well-known/authzen-configuration", pol_on_authzen_config),
	SDK_ROUTE("GET", "/versions", pol_on_versions),
};

const sdk_kernel_def policy_kernel = {
	.name = "policy",
	.port = 8113, .tier = "governance",
	.summary = "Cedar policies, versioned; entities; AuthZEN; decides every request and call",
	.complete = true,
	.long_poll_max_ms = POL_WATCH_MAX_MS,
	/* Its tables as they are today: a change is a new step in
	 * .migrations and a new fixture directory (docs/upgrades.md). */
	.schema_version = 1,
	.routes = pol_routes,
	.n_routes = sizeof pol_routes / sizeof pol_routes[0],
	.init = pol_init,
	.drain = pol_drain,
	.close = pol_close,
	.decide_call = pol_decide_call,
};
