/* What a request on :8000 is, for the policy: its action and its resource,
 * as data. docs/policy.md lists them; etc/policy/default.cedar grants
 * them; `grace policy routes` prints them for every route. */
#include "serve/api/api.h"
#include "serve/api/decide.h"
#include "sdk/str.h"

#include <event2/buffer.h>
#include <string.h>

/* Routes named otherwise than FAMILY.VERB, where one family mixes what
 * users and admins may do. A name ending in '.' is a family of its own:
 * the verb follows it. */
static const struct {
	const char *method, *pattern, *action;
} named[] = {
	{ "POST", "/auth/register", "auth.register" },
	{ "POST", "/auth/logout", "auth.logout" },
	{ "GET", "/auth/me", "auth.me" },
	{ "POST", "/auth/users/:name/password", "auth.password" },
	{ NULL, "/auth/tokens", "auth.tokens." },
	{ NULL, "/auth/tokens/:id", "auth.tokens." },
	{ NULL, "/memory/tables/:table/shares", "memory.shares." },
	/* Prometheus's queries by form are reads (users); its POST /write is
	 * a write (admins). */
	{ "POST", "/prometheus/api/v1/query", "prometheus.read" },
	{ "POST", "/prometheus/api/v1/query_range", "prometheus.read" },
	{ "POST", "/prometheus/api/v1/series", "prometheus.read" },
	{ "POST", "/prometheus/api/v1/labels", "prometheus.read" },
	{ "POST", "/prometheus/api/v1/query_exemplars", "prometheus.read" },
	/* A user reads their own trust score (the trust kernel checks it is
	 * theirs); every other trust route is an admin's trust.read. */
	{ "GET", "/trust/scores/user/:name", "trust.read_own" },
};

/* The resource of a route with this parameter, by family. `owned`: the
 * caller's own (a table is named by its owner and its name). */
static const struct {
	const char *family, *param, *type;
	bool owned;
} resources[] = {
	{ "auth", "name", "User", false },	   { "auth", "id", "ApiToken", false },
	{ "kernel-ports", "name", "Kernel", false }, { "kernels", "name", "Kernel", false },
	{ "memory", "table", "Table", true },	   { "chat", "id", "Session", false },
	{ "network-healer", "id", "Incident", false }, { "bus", "group", "Group", false },
};

#define UNKNOWN_ROUTE_ACTION "api.unknown_route"
#define FAMILY_MAX 48

static const char *verb_of(const char *method)
{
	if (!strcmp(method, "GET") || !strcmp(method, "HEAD") || !strcmp(method, "OPTIONS"))
		return "read";
	return !strcmp(method, "DELETE") ? "delete" : "write";
}

/* The first segment of a pattern: "/memory/tables/:table" -> "memory". */
static void family_of(const char *pattern, char *out, size_t len)
{
	const char *p = pattern[0] == '/' ? pattern + 1 : pattern;
	size_t n = strcspn(p, "/");
	if (!n) {
		sdk_strcpy(out, len, "root");
		return;
	}
	if (len) {
		n = n < len ? n : len - 1;
		memcpy(out, p, n);
		out[n] = '\0';
	}
}

void api_route_action(const sdk_route *route, const char *method, char *out, size_t len)
{
	if (!route) {
		sdk_strcpy(out, len, UNKNOWN_ROUTE_ACTION);
		return;
	}
	const char *verb = verb_of(method);
	for (size_t i = 0; i < sizeof named / sizeof *named; i++) {
		if (strcmp(named[i].pattern, route->pattern.path) ||
		    (named[i].method && strcmp(named[i].method, route->pattern.method ? route->pattern.method : method)))
			continue;
		size_t n = strlen(named[i].action);
		if (named[i].action[n - 1] == '.')
			SDK_STRJOIN(out, len, named[i].action, verb);
		else
			sdk_strcpy(out, len, named[i].action);
		return;
	}
	/* Joined, not printed: every request through :8000 is named here. */
	char family[FAMILY_MAX];
	family_of(route->pattern.path, family, sizeof family);
	SDK_STRJOIN(out, len, family, ".", verb);
}

static bool has_param(const char *pattern, const char *param)
{
	size_t n = strlen(param);
	for (const char *p = strchr(pattern, ':'); p; p = strchr(p + 1, ':'))
		if (!strncmp(p + 1, param, n) && (p[1 + n] == '/' || p[1 + n] == '\0'))
			return true;
	return false;
}

const char *api_route_resource(const sdk_route *route)
{
	if (!route)
		return "Route";
	char family[FAMILY_MAX];
	family_of(route->pattern.path, family, sizeof family);
	if (!strcmp(family, "librarian"))
		return "Document|Kernel";
	for (size_t i = 0; i < sizeof resources / sizeof *resources; i++)
		if (!strcmp(resources[i].family, family) && has_param(route->pattern.path, resources[i].param))
			return resources[i].type;
	return "Route";
}

bool api_route_public(const sdk_route *route)
{
	return route && route->access == ACCESS_PUBLIC;
}

/* A kernel's name as configured ("librarian_kernel" is "librarian"). */
static const char *kernel_name(api_ctx *api, const char *given)
{
	const grace_kernel_cfg *k = grace_config_kernel(api->cfg, given);
	return k ? k->name : given;
}

/* Whether a heal or a diagnosis names the policy kernel in its body
 * ({"component_name": "policy"}): read here, never answered here. */
static bool heals_policy(api_ctx *api, sdk_req *req)
{
	struct evbuffer *b = sdk_req_body(req);
	size_t n = evbuffer_get_length(b);
	const char *text = n ? (const char *)evbuffer_pullup(b, -1) : NULL;
	json_t *j = text ? json_loadb(text, n, 0, NULL) : NULL;
	const char *c = json_string_value(json_object_get(j, "component_name"));
	bool yes = c && !strcmp(kernel_name(api, c), "policy");
	json_decref(j);
	return yes;
}

/* The break-glass set (docs/policy.md): what heals the policy kernel. */
bool api_break_glass(api_ctx *api, sdk_req *req, const sdk_route *route, const api_target *t)
{
	if (!route)
		return false;
	char family[FAMILY_MAX];
	family_of(route->pattern.path, family, sizeof family);
	if (!strcmp(family, "guardian"))
		return true;
	if (!strcmp(family, "kernel-ports"))
		return !strcmp(t->rtype, "Kernel") && !strcmp(t->rid, "policy");
	if (!strcmp(family, "network-healer") && !strcmp(sdk_req_method(req), "POST")) {
		const char *path = sdk_req_path(req);
		return (!strcmp(path, "/network-healer/heal") || !strcmp(path, "/network-healer/diagnose")) &&
		       heals_policy(api, req);
	}
	return false;
}

void api_target_of(api_ctx *api, sdk_req *req, const sdk_route *route, const api_principal *who,
		   api_target *out)
{
	out->owner[0] = '\0';
	api_route_action(route, sdk_req_method(req), out->action, sizeof out->action);
	out->rtype = "Route";
	sdk_strcpy(out->rid, sizeof out->rid, route ? route->pattern.path : "");
	/* Anonymous callers get the route only, so that varying a path cannot
	 * fill the cache with their questions. */
	if (!route || who->kind == API_PRINCIPAL_ANONYMOUS)
		return;
	char family[FAMILY_MAX];
	family_of(route->pattern.path, family, sizeof family);
	if (!strcmp(family, "librarian")) {
		const char *rest = sdk_req_param(req, "*");
		const char *doc = rest && !strncmp(rest, "documents/", 10) ? rest + 10 : NULL;
		if (doc && *doc && !strchr(doc, '/')) {
			out->rtype = "Document";
			sdk_strcpy(out->rid, sizeof out->rid, doc);
		} else {
			out->rtype = "Kernel";
			sdk_strcpy(out->rid, sizeof out->rid, "librarian");
		}
	}
	for (size_t i = 0; i < sizeof resources / sizeof *resources; i++) {
		const char *v;
		if (strcmp(resources[i].family, family) || !(v = sdk_req_param(req, resources[i].param)))
			continue;
		out->rtype = resources[i].type;
		if (!strcmp(out->rtype, "Kernel"))
			v = kernel_name(api, v);
		if (resources[i].owned) {
			sdk_strcpy(out->owner, sizeof out->owner, who->user);
			SDK_STRJOIN(out->rid, sizeof out->rid, who->user, "/", v);
		} else {
			sdk_strcpy(out->rid, sizeof out->rid, v);
		}
		break;
	}
}
