#include "kernels/state_machine/authz.h"

#include "sdk/call.h"
#include "sdk/pdp.h"
#include "sdk/token.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sm_actor_of_req(sdk_req *req, const char *token, sm_actor *out)
{
	memset(out, 0, sizeof *out);
	int role;
	const char *user = sdk_req_caller(req, token, &role);
	const char *caller = sdk_req_header(req, SDK_CALLER_HEADER);
	if (user) {
		snprintf(out->type, sizeof out->type, "User");
		snprintf(out->name, sizeof out->name, "%s", user);
		snprintf(out->role, sizeof out->role, "%s", role == SDK_CALLER_ADMIN ? "admin" : "user");
	} else if (caller && *caller) {
		snprintf(out->type, sizeof out->type, "Kernel");
		snprintf(out->name, sizeof out->name, "%s", caller);
	}
}

void sm_actor_of_instance(const sm_instance *in, sm_actor *out)
{
	memset(out, 0, sizeof *out);
	if (!strcmp(in->owner_role, "admin") || !strcmp(in->owner_role, "user")) {
		snprintf(out->type, sizeof out->type, "User");
		snprintf(out->name, sizeof out->name, "%s", in->owner);
		snprintf(out->role, sizeof out->role, "%s", in->owner_role);
	} else if (in->owner_kernel[0]) {
		snprintf(out->type, sizeof out->type, "Kernel");
		snprintf(out->name, sizeof out->name, "%s", in->owner_kernel);
	}
}

void sm_actor_to_owner(const sm_actor *a, sm_instance *in)
{
	bool user = !strcmp(a->type, "User");
	snprintf(in->owner, sizeof in->owner, "%s", user ? a->name : "");
	snprintf(in->owner_role, sizeof in->owner_role, "%s", user ? a->role : "kernel");
	snprintf(in->owner_kernel, sizeof in->owner_kernel, "%s", user ? "" : a->name);
}

typedef struct ask {
	sm_authz_cb cb;
	void *arg;
} ask;

static void on_decided(int result, const char *why, void *arg)
{
	ask *a = arg;
	sm_authz_cb cb = a->cb;
	void *cb_arg = a->arg;
	free(a);
	if (result == SDK_PDP_ALLOW)
		cb(SM_AUTHZ_ALLOW, NULL, cb_arg);
	else if (result == SDK_PDP_DENY)
		cb(SM_AUTHZ_DENY, "no policy permits it", cb_arg);
	else
		cb(SM_AUTHZ_UNAVAILABLE, why ? why : "the policy kernel cannot decide now", cb_arg);
}

void sm_authz_send(sdk_kernel *k, const sm_actor *who, const sm_instance *in, const char *type,
		   const char *source, sm_authz_cb cb, void *arg)
{
	if (k->cfg->policy.authorizer != GRACE_AUTHORIZER_KERNEL || !who->type[0]) {
		cb(SM_AUTHZ_ALLOW, NULL, arg); /* the role table; the operator */
		return;
	}
	sdk_pdp *pdp = sdk_kernel_pdp(k);
	if (!pdp) {
		cb(SM_AUTHZ_UNAVAILABLE, "there is no memory to ask the policy kernel", arg);
		return;
	}
	/* The key: everything the question reads ("\x1f" is in no name). */
	char key[PDP_KEY_MAX];
	int n = snprintf(key, sizeof key, "sm\x1f%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%lld\x1f%s\x1f%s",
			 who->type, who->name, who->role, in->id, in->owner, in->owner_role,
			 in->owner_kernel, in->machine, (long long)in->machine_version, type, source);
	if (n < 0 || (size_t)n >= sizeof key) {
		cb(SM_AUTHZ_UNAVAILABLE, "the question is too long to ask", arg);
		return;
	}
	switch (sdk_pdp_lookup(pdp, key, (size_t)n)) {
	case SDK_PDP_ALLOW: cb(SM_AUTHZ_ALLOW, NULL, arg); return;
	case SDK_PDP_DENY: cb(SM_AUTHZ_DENY, "no policy permits it", arg); return;
	case SDK_PDP_UNAVAILABLE: cb(SM_AUTHZ_UNAVAILABLE, sdk_pdp_why(pdp), arg); return;
	default: break;
	}
	json_t *ents = json_array();
	if (!strcmp(who->type, "User"))
		json_array_append_new(ents, sdk_pdp_user_entity(who->name, who->role));
	json_array_append_new(ents, json_pack("{s:{s:s, s:s}, s:{s:s, s:s, s:s, s:s, s:I}, s:[]}",
					      "uid", "type", "StateMachineInstance", "id", in->id,
					      "attrs", "owner", in->owner, "owner_role",
					      in->owner_role, "owner_kernel", in->owner_kernel,
					      "machine", in->machine, "machine_version",
					      (json_int_t)in->machine_version, "parents"));
	json_t *q = json_pack("{s:{s:s, s:s}, s:{s:s, s:s}, s:{s:s, s:s}, s:{s:s, s:s, s:I, s:s}}",
			      "principal", "type", who->type, "id", who->name, "action", "type",
			      "Action", "id", SM_AUTHZ_ACTION, "resource", "type",
			      "StateMachineInstance", "id", in->id, "context", "event", type,
			      "machine", in->machine, "machine_version",
			      (json_int_t)in->machine_version, "source", source);
	ask *a = calloc(1, sizeof *a);
	if (!a || !q || !ents || json_array_size(ents) == 0) {
		free(a);
		json_decref(q);
		json_decref(ents);
		cb(SM_AUTHZ_UNAVAILABLE, "there is no memory to ask the policy kernel", arg);
		return;
	}
	a->cb = cb;
	a->arg = arg;
	sdk_pdp_ask(pdp, key, (size_t)n, q, ents, on_decided, a);
}
