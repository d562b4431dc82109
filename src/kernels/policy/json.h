/* Cedar's JSON format for values: booleans, integers, strings, arrays as
 * sets, objects as records, and the escapes {"__entity": {"type", "id"}}
 * and {"__extn": {"fn", "arg"}} (or "args") for entity references and
 * extension values, with Cedar's rules for when an object is an escape and
 * when it is just a record. Floats and nulls are refused, as in Cedar. */
#ifndef GRACE_POLICY_JSON_H
#define GRACE_POLICY_JSON_H

#include "kernels/layer.h"

#include "kernels/policy/arena.h"
#include "kernels/policy/value.h"
#include "sdk/err.h"

#include <jansson.h>
#include <stdbool.h>

#define CEDAR_VALUE_DEPTH_MAX 64 /* nesting of sets and records in JSON */

/* Each returns 0, or -1 with the reason in err. */
int cedar_json_value(cedar_arena *a, json_t *j, cedar_value *out, sdk_err *err);
/* An object as a record (the context, attributes, tags). */
int cedar_json_record(cedar_arena *a, json_t *obj, cedar_value *out, sdk_err *err);
/* An entity uid: {"type", "id"}, {"__entity": {...}} or the string
 * `Type::"id"`. */
int cedar_json_uid(cedar_arena *a, json_t *j, const cedar_uid **out, sdk_err *err);
/* The same, objects only: Cedar's entity JSON has no string form. */
int cedar_json_uid_strict(cedar_arena *a, json_t *j, const cedar_uid **out, sdk_err *err);
/* A normalized entity type name: identifiers joined by `::`, none of them
 * reserved, no spaces. */
bool cedar_type_name_valid(const char *s, size_t n);

/* The JSON form of a value or uid (a new reference; NULL when out of memory). */
json_t *cedar_value_json(const cedar_value *v);
json_t *cedar_uid_json(const cedar_uid *u);

#endif
