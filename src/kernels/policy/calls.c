/* Calls to the policy kernel from other processes, decided here with the
 * engine itself (every other kernel asks this one; asking itself over
 * HTTP would wait on itself): principal Kernel::"CALLER", action
 * Action::"METHOD /route", resource Kernel::"policy", in the configured
 * policy set ([policy] policy_set), like every kernel's.
 *
 * The decision routes are open to every caller holding the internal token:
 * asking for a decision grants nothing, and a policy that refused them
 * would leave every kernel unable to decide anything (503s where the
 * policy meant 403s). Writes (policy sets, entities) are decided. */
#include "kernels/policy/policy.h"

#include "sdk/call.h"

#include <stdio.h>
#include <string.h>

static const char *const open_routes[] = {
	"POST /authorize", "POST /authorize/batch", "POST /access/v1/evaluation",
	"POST /access/v1/evaluations", "GET /.well-known/authzen-configuration", "GET /versions",
	"POST /validate",
};

int pol_decide_call(sdk_kernel *k, const sdk_call_decision *d)
{
	for (size_t i = 0; i < sizeof open_routes / sizeof *open_routes; i++)
		if (!strcmp(d->action, open_routes[i]))
			return 1;
	pol_kernel *pk = k->state;
	const pol_set *set = pk ? pol_store_set(pk->store, k->cfg->policy.policy_set) : NULL;
	if (!set || set->broken)
		return SDK_ENOTFOUND; /* no usable set: nothing can be decided (503) */
	json_t *principal = json_pack("{s:s, s:s}", "type", "Kernel", "id", d->caller);
	json_t *action = json_pack("{s:s, s:s}", "type", "Action", "id", d->action);
	json_t *resource = json_pack("{s:s, s:s}", "type", "Kernel", "id", k->def->name);
	json_t *context = d->user ? json_pack("{s:s, s:s}", "user", d->user, "role",
					      d->role ? d->role : "user")
				  : json_object();
	cedar_request rq;
	cedar_response r;
	cedar_view v = { .base = pk->store->ents };
	int rc = SDK_EIO;
	if (principal && action && resource && context &&
	    cedar_request_parse(&pk->arena, principal, action, resource, context, &rq, NULL) == 0 &&
	    pol_authorize(set, &rq, &v, &pk->arena, &r) == 0)
		rc = r.allow ? 1 : 0;
	json_decref(principal);
	json_decref(action);
	json_decref(resource);
	json_decref(context);
	cedar_arena_reset(&pk->arena);
	return rc;
}

void pol_actor_of(sdk_req *req, const sdk_kernel *k, char *out, size_t len)
{
	int role;
	const char *user = sdk_req_caller(req, k->token, &role);
	const char *caller = sdk_req_header(req, SDK_CALLER_HEADER);
	bool named = caller && *caller && strlen(caller) < 64 &&
		     strspn(caller, "abcdefghijklmnopqrstuvwxyz0123456789_.-") == strlen(caller);
	if (user)
		snprintf(out, len, "%s", user);
	else if (named)
		snprintf(out, len, "kernel:%s", caller);
	else
		snprintf(out, len, "operator");
}
