/* Bodies with a field the route does not know are refused, not half read:
 * a misspelt "aad" must not silently encrypt without associated data. One
 * check for every route and parser that takes a JSON object. */
#ifndef GRACE_SDK_JSON_KEYS_H
#define GRACE_SDK_JSON_KEYS_H

#include "sdk/http.h"

#include <jansson.h>
#include <string.h>

/* The first key of obj that is not in allowed (NULL-ended), or NULL when
 * every key is allowed (or obj is not an object). Points into obj. Inline:
 * the pure parsers that use it are unit-tested without the SDK. */
static inline const char *sdk_json_unknown_key(json_t *obj, const char *const *allowed)
{
	const char *key;
	json_t *v;
	json_object_foreach (obj, key, v) {
		size_t i = 0;
		while (allowed[i] && strcmp(allowed[i], key))
			i++;
		if (!allowed[i])
			return key;
	}
	return NULL;
}

/* At the HTTP edge: 0 when every key of obj is allowed, else answers 400
 * invalid naming the field ("unknown field \"KEY\"") and returns -1. */
int sdk_req_fields_only(sdk_req *req, json_t *obj, const char *const *allowed);

#endif
