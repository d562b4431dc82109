/* The audit trail's view of :8000 (docs/audit.md). Every request that may
 * change state is classified as it is answered: a security event (a
 * logged-in caller, or anything that was not refused) is journaled before
 * the answer leaves; noise (refused before any authentication) is only
 * counted per source, kind and window. And a state-changing request that
 * is about to run is refused (503) while its record could not be kept. */
#include "serve/api/api.h"
#include "serve/api/decide.h"

#include "serve/outbox/classify.h"

#include <stdio.h>
#include <string.h>

/* Called by the HTTP server before each answer is sent. */
void api_on_reply(sdk_req *req, int status, void *ctx)
{
	api_ctx *api = ctx;
	api_decide_on_reply(api, req, status);
	if (ob_refusing(api->ob))
		return;
	const char *method = sdk_req_method(req), *path = sdk_req_path(req);
	const char *user = sdk_req_user(req, NULL);
	switch (ob_classify_request(method, path, status, user != NULL)) {
	case OB_NONE:
		return;
	case OB_NOISE:
		ob_noise(api->ob, sdk_req_peer(req), method, status, path, sdk_req_id(req));
		return;
	case OB_SECURITY:
		break;
	}
	char clipped[OB_PATH_MAX + 1], action[OB_PATH_MAX + 16], outcome[16];
	ob_path_clip(path, OB_PATH_MAX, clipped);
	snprintf(action, sizeof action, "%s %s", method, clipped);
	snprintf(outcome, sizeof outcome, "%d", status);
	ob_audit(api->ob, user ? user : "anonymous", action, clipped, outcome, sdk_req_peer(req),
		 json_pack("{s:s}", "request_id", sdk_req_id(req)));
}

/* The API's authorizer, then the audit trail's say: a request refused by
 * the first is noise and needs no room in the journal. */
bool api_audit_authorize(sdk_req *req, const sdk_route *route, void *ctx)
{
	return api_authorize(req, route, ctx) && api_audit_admit(req, ctx);
}

bool api_audit_admit(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	const char *method = sdk_req_method(req);
	return !ob_changes_state(method) || ob_admit_always(method, sdk_req_path(req)) ||
	       ob_admit(api->ob, req);
}
