/* Unknown fields refused: json_keys.h. */
#include "sdk/json_keys.h"

int sdk_req_fields_only(sdk_req *req, json_t *obj, const char *const *allowed)
{
	const char *bad = sdk_json_unknown_key(obj, allowed);
	if (!bad)
		return 0;
	sdk_reply_error(req, 400, "invalid", "unknown field \"%.64s\"", bad);
	return -1;
}
