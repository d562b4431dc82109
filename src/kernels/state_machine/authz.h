/* Each event sent to an instance is decided by the policy kernel when it
 * happens (docs/state_machine.md "Authorization"): principal the sender
 * (User::"NAME" under its Role, or Kernel::"NAME" for a kernel acting on
 * its own account), action Action::"state_machine.send", resource
 * StateMachineInstance::"ID" with attributes owner, owner_role, machine,
 * machine_version; context {event, machine, machine_version, source}.
 * Delayed events ask as the instance's owner when they fire. */
#ifndef GRACE_SM_AUTHZ_H
#define GRACE_SM_AUTHZ_H

#include "kernels/layer.h"

#include "kernels/state_machine/store.h"
#include "sdk/http.h"
#include "sdk/kernel.h"

#define SM_AUTHZ_ACTION "state_machine.send"

/* Who an event acts as. */
typedef struct sm_actor {
	char type[8];                       /* "User", "Kernel"; "": the operator */
	char name[SDK_CALLER_NAME_MAX + 1];
	char role[8];                       /* a User's: "admin" or "user" */
} sm_actor;

/* The sender of a request: a user through the gateway or a kernel calling
 * for one, a kernel on its own account, or the operator (the internal
 * token and no caller name: not asked, as calls are not). */
void sm_actor_of_req(sdk_req *req, const char *token, sm_actor *out);
/* The owner of `in` (its delayed events act as it). */
void sm_actor_of_instance(const sm_instance *in, sm_actor *out);
/* The instance columns that say who owns it. */
void sm_actor_to_owner(const sm_actor *a, sm_instance *in);

enum { SM_AUTHZ_DENY = 0, SM_AUTHZ_ALLOW = 1, SM_AUTHZ_UNAVAILABLE = 3 };

/* `why`: the reason for a denial or unavailability (static or owned by the
 * caller of cb for the call only). Called exactly once, maybe before
 * sm_authz_send returns (a cached decision, no policy kernel). */
typedef void (*sm_authz_cb)(int result, const char *why, void *arg);

/* Decides `who` sending an event of `type` to `in` from `source` ("api",
 * "timer"). With [policy] authorizer = table: allowed (the owner rule
 * already applied). Fails closed: no policy client, no memory, no answer
 * are SM_AUTHZ_UNAVAILABLE. */
void sm_authz_send(sdk_kernel *k, const sm_actor *who, const sm_instance *in, const char *type,
		   const char *source, sm_authz_cb cb, void *arg);

#endif
