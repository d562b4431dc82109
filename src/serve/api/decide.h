/* Decisions on :8000 (docs/policy.md). Every request but the public ones
 * is decided: by the policy kernel ([policy] authorizer = kernel, the
 * default) or by the role table compiled into the routes (table).
 *
 *   principal  User::"NAME" (parent Role::"ROLE"), ApiToken::"ID" (parent
 *              its user), or Anonymous::"anonymous"
 *   action     Action::"FAMILY.VERB": the route's first path segment and
 *              read (GET, HEAD), write (POST, PUT, PATCH) or delete
 *              (DELETE), save a few routes named in policy_map.c
 *   resource   from the route's parameters: Kernel::"librarian",
 *              Table::"OWNER/NAME", Document::"42", Session::"7", ...;
 *              Route::"PATTERN" for the rest (and always for Anonymous)
 *
 * Decisions are cached (sdk/pdp.h); while the policy kernel is not ready
 * every decided request is refused 503 policy_unavailable, save the
 * break-glass set for admins (each use an audit event). */
#ifndef GRACE_API_DECIDE_H
#define GRACE_API_DECIDE_H

#include "serve/layer.h"

#include "serve/auth/tokens.h"
#include "sdk/http.h"

#include <stdbool.h>

struct api_ctx;
struct evbuffer;

enum api_principal_kind { API_PRINCIPAL_ANONYMOUS, API_PRINCIPAL_USER, API_PRINCIPAL_TOKEN };

typedef struct api_principal {
	enum api_principal_kind kind;
	char user[AUTH_NAME_MAX + 1]; /* the user, or the token's owner */
	int role;
	auth_api_token token; /* API_PRINCIPAL_TOKEN */
} api_principal;

#define API_ACTION_MAX 64
#define API_RESOURCE_ID_MAX (SDK_PATH_MAX + AUTH_NAME_MAX + 2)

typedef struct api_target {
	char action[API_ACTION_MAX];
	const char *rtype; /* the resource's entity type (static) */
	char rid[API_RESOURCE_ID_MAX];
	char owner[AUTH_NAME_MAX + 1]; /* a Table's owner, else "" */
} api_target;

/* policy_map.c: the action and resource of a request (route NULL: no
 * route matched). */
void api_target_of(struct api_ctx *api, sdk_req *req, const sdk_route *route,
		   const api_principal *who, api_target *out);
/* Whether a request is in the break-glass set (policy_map.c lists it),
 * open to admins while the policy kernel is not ready. Asked only then:
 * it may read the body. */
bool api_break_glass(struct api_ctx *api, sdk_req *req, const sdk_route *route,
		     const api_target *t);
/* The action of a route called with `method` (for `grace policy routes`). */
void api_route_action(const sdk_route *route, const char *method, char *out, size_t len);
/* The resource type of a route's requests, for `grace policy routes`. */
const char *api_route_resource(const sdk_route *route);
/* Whether a route is never decided (public: /health, /metrics, ...). */
bool api_route_public(const sdk_route *route);

/* access.c, for decide.c: the cross-origin check of a request from nobody
 * (false after answering 403), and the 401 of one. */
bool api_csrf_anonymous_ok(struct api_ctx *api, sdk_req *req);
void api_reply_unauthenticated(sdk_req *req, bool presented);

/* decide.c: decides a request by policy. True when it may run now; false
 * when it has been answered, or waits for its decision (then it is
 * answered or resumed later, past the audit hook's admission). */
bool api_decide(struct api_ctx *api, sdk_req *req, const sdk_route *route,
		const api_principal *who);
/* Answers every request waiting for a decision (503): before the server
 * is freed. */
void api_decide_free(struct api_ctx *api);
void api_decide_metrics(struct api_ctx *api, struct evbuffer *out);
/* As a request is answered: a change to the policy kernel made through
 * :8000 (/kernels/policy/...) makes the cached decisions wait for the
 * versions it wrote, before its answer leaves. */
void api_decide_on_reply(struct api_ctx *api, sdk_req *req, int status);

#endif
