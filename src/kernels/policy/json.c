#include "kernels/policy/json.h"

#include "kernels/policy/cedar.h"
#include "kernels/policy/ext.h"
#include "kernels/policy/lexer.h"

#include <stdio.h>
#include <string.h>

static int fail(sdk_err *err, const char *msg, const char *key)
{
	if (key)
		return sdk_fail(err, SDK_EINVAL, "%s (at `%.60s`)", msg, key);
	return sdk_fail(err, SDK_EINVAL, "%s", msg);
}

bool cedar_type_name_valid(const char *s, size_t n)
{
	size_t i = 0;
	if (n == 0)
		return false;
	for (;;) {
		size_t start = i;
		if (i >= n || !(s[i] == '_' || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')))
			return false;
		while (i < n && (s[i] == '_' || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
				 (s[i] >= '0' && s[i] <= '9')))
			i++;
		if (cedar_ident_reserved(s + start, (uint32_t)(i - start), true))
			return false;
		if (i == n)
			return true;
		if (i + 2 > n || s[i] != ':' || s[i + 1] != ':')
			return false;
		i += 2;
	}
}

static int make_uid(cedar_arena *a, json_t *type, json_t *id, const cedar_uid **out, sdk_err *err)
{
	const char *t = json_string_value(type);
	size_t tlen = json_string_length(type);
	if (!cedar_type_name_valid(t, tlen)) {
		return sdk_fail(err, SDK_EINVAL, "`%.80s` is not a valid entity type name", t);
	}
	if (tlen > UINT32_MAX / 2 || json_string_length(id) > UINT32_MAX / 2)
		return fail(err, "entity uid too long", NULL);
	cedar_uid *u = cedar_uid_new(a, t, (uint32_t)tlen, json_string_value(id),
				     (uint32_t)json_string_length(id));
	if (!u)
		return fail(err, "out of memory", NULL);
	*out = u;
	return 0;
}

/* `Type::"id"`, the way a policy writes an entity. */
static int uid_from_text(cedar_arena *a, const char *s, size_t n, const cedar_uid **out,
			 sdk_err *err)
{
	cedar_lexer lx;
	cedar_token t;
	if (n > UINT32_MAX / 2)
		return fail(err, "entity uid too long", NULL);
	cedar_lex_init(&lx, s, (uint32_t)n);
	cedar_lex_next(&lx, &t);
	uint32_t type_start = t.start, type_end = t.start;
	for (;;) {
		if (t.kind != TK_IDENT)
			goto bad;
		type_end = t.start + t.len;
		cedar_lex_next(&lx, &t);
		if (t.kind != TK_COLON2)
			goto bad;
		cedar_lex_next(&lx, &t);
		if (t.kind == TK_STRING)
			break;
	}
	cedar_token str = t;
	cedar_lex_next(&lx, &t);
	if (t.kind != TK_EOF)
		goto bad;
	char *type = cedar_arena_strndup(a, s + type_start, type_end - type_start);
	char *id = cedar_arena_alloc(a, str.len);
	if (!type || !id)
		return fail(err, "out of memory", NULL);
	/* The type as written may hold spaces or comments; only a normalized
	 * one is a name. */
	if (!cedar_type_name_valid(type, type_end - type_start))
		goto bad;
	int idlen = cedar_unescape(s + str.start + 1, str.len - 2, id);
	if (idlen < 0)
		goto bad;
	cedar_uid *u = cedar_uid_new(a, type, type_end - type_start, id, (uint32_t)idlen);
	if (!u)
		return fail(err, "out of memory", NULL);
	*out = u;
	return 0;
bad:
	sdk_fail(err, SDK_EINVAL, "`%.80s` is not an entity uid like User::\"alice\"", s);
	return -1;
}

static int uid_of(cedar_arena *a, json_t *j, bool text_ok, const cedar_uid **out, sdk_err *err)
{
	if (json_is_string(j) && text_ok)
		return uid_from_text(a, json_string_value(j), json_string_length(j), out, err);
	if (!json_is_object(j))
		return fail(err, "an entity uid must be an object {\"type\": ..., \"id\": ...}",
			    NULL);
	json_t *inner = json_object_get(j, "__entity");
	if (inner && json_object_size(j) == 1)
		j = inner;
	if (!json_is_object(j))
		return fail(err, "an entity uid must be an object {\"type\": ..., \"id\": ...}",
			    NULL);
	json_t *type = json_object_get(j, "type"), *id = json_object_get(j, "id");
	if (!json_is_string(type) || !json_is_string(id))
		return fail(err, "an entity uid needs string fields \"type\" and \"id\"", NULL);
	return make_uid(a, type, id, out, err);
}

int cedar_json_uid(cedar_arena *a, json_t *j, const cedar_uid **out, sdk_err *err)
{
	int rc = uid_of(a, j, true, out, err);
	if (rc < 0 && err)
		cedar_utf8_sanitize(err->msg);
	return rc;
}

static int value_of(cedar_arena *a, json_t *j, int depth, cedar_value *out, sdk_err *err);

static int record_of(cedar_arena *a, json_t *obj, int depth, cedar_value *out, sdk_err *err)
{
	size_t n = json_object_size(obj);
	if (n > CEDAR_SET_MAX)
		return fail(err, "a record has too many attributes", NULL);
	cedar_attr *attrs = cedar_arena_alloc(a, sizeof *attrs * (n ? n : 1));
	if (!attrs)
		return fail(err, "out of memory", NULL);
	const char *key;
	json_t *v;
	uint32_t i = 0;
	/* Keys may hold NULs in JSON; jansson's key length API covers them. */
	void *iter = json_object_iter(obj);
	while (iter) {
		key = json_object_iter_key(iter);
		size_t klen = json_object_iter_key_len(iter);
		v = json_object_iter_value(iter);
		char *k = cedar_arena_strndup(a, key, klen);
		if (!k)
			return fail(err, "out of memory", NULL);
		attrs[i].key = k;
		attrs[i].key_len = (uint32_t)klen;
		if (value_of(a, v, depth + 1, &attrs[i].val, err) < 0)
			return -1;
		i++;
		iter = json_object_iter_next(obj, iter);
	}
	const cedar_attr *dup;
	if (cedar_record_of(attrs, i, out, &dup) < 0)
		return fail(err, "duplicate key in record", dup->key);
	return 0;
}

/* {"__extn": {"fn": F, "arg": A}} or {"fn": F, "args": [...]}: F applied
 * to the arguments now, as Cedar does when it reads the JSON. Returns 1
 * when the object is not such an escape (it is then a record). */
static int extn_of(cedar_arena *a, json_t *inner, int depth, cedar_value *out, sdk_err *err)
{
	json_t *fn = json_object_get(inner, "fn");
	if (!json_is_object(inner) || json_object_size(inner) < 2 || !json_is_string(fn))
		return 1;
	json_t *arg = json_object_get(inner, "arg"), *args = json_object_get(inner, "args");
	if (!arg && !json_is_array(args))
		return 1;
	const char *name = json_string_value(fn);
	size_t nlen = json_string_length(fn);
	if (!cedar_type_name_valid(name, nlen))
		return fail(err, "not a valid extension function name", name);
	const cedar_ext_def *f = cedar_ext_find(name, nlen);
	if (!f)
		return fail(err, "no such extension function", name);
	cedar_value vals[8];
	unsigned n = 0;
	if (arg) {
		if (value_of(a, arg, depth + 1, &vals[0], err) < 0)
			return -1;
		n = 1;
	} else {
		size_t i;
		json_t *x;
		if (json_array_size(args) > 8)
			return fail(err, "wrong number of arguments to an extension function",
				    name);
		json_array_foreach(args, i, x) {
			if (value_of(a, x, depth + 1, &vals[n], err) < 0)
				return -1;
			n++;
		}
	}
	if (cedar_ext_call(f, a, vals, n, out, err) < 0)
		return -1;
	return 0;
}

static int value_of(cedar_arena *a, json_t *j, int depth, cedar_value *out, sdk_err *err)
{
	if (depth > CEDAR_VALUE_DEPTH_MAX)
		return fail(err, "value nested too deeply", NULL);
	switch (json_typeof(j)) {
	case JSON_TRUE: *out = cedar_bool(true); return 0;
	case JSON_FALSE: *out = cedar_bool(false); return 0;
	case JSON_INTEGER: *out = cedar_long(json_integer_value(j)); return 0;
	case JSON_REAL:
		return fail(err, "numbers must be integers: Cedar has no floats", NULL);
	case JSON_NULL:
		return fail(err, "JSON nulls are not allowed in Cedar", NULL);
	case JSON_STRING: {
		size_t n = json_string_length(j);
		if (n > UINT32_MAX / 2)
			return fail(err, "string too long", NULL);
		char *s = cedar_arena_strndup(a, json_string_value(j), n);
		if (!s)
			return fail(err, "out of memory", NULL);
		*out = cedar_string(s, (uint32_t)n);
		return 0;
	}
	case JSON_ARRAY: {
		size_t n = json_array_size(j);
		if (n > CEDAR_SET_MAX)
			return fail(err, "a set has too many elements", NULL);
		cedar_value *items = cedar_arena_alloc(a, sizeof *items * (n ? n : 1));
		if (!items)
			return fail(err, "out of memory", NULL);
		for (size_t i = 0; i < n; i++)
			if (value_of(a, json_array_get(j, i), depth + 1, &items[i], err) < 0)
				return -1;
		*out = cedar_set_of(items, (uint32_t)n);
		return 0;
	}
	case JSON_OBJECT: break;
	}
	if (json_object_size(j) == 1) {
		json_t *v;
		if ((v = json_object_get(j, "__extn"))) {
			int r = extn_of(a, v, depth, out, err);
			if (r <= 0)
				return r;
		} else if ((v = json_object_get(j, "__expr")) && json_is_string(v)) {
			return fail(err, "the `__expr` escape is no longer supported", NULL);
		} else if ((v = json_object_get(j, "__entity")) && json_is_object(v) &&
			   json_object_size(v) >= 2 && json_is_string(json_object_get(v, "type")) &&
			   json_is_string(json_object_get(v, "id"))) {
			const cedar_uid *u;
			if (make_uid(a, json_object_get(v, "type"), json_object_get(v, "id"), &u,
				     err) < 0)
				return -1;
			*out = cedar_uid_value(u);
			return 0;
		}
	}
	return record_of(a, j, depth, out, err);
}

int cedar_json_value(cedar_arena *a, json_t *j, cedar_value *out, sdk_err *err)
{
	int rc = value_of(a, j, 0, out, err);
	if (rc < 0 && err)
		cedar_utf8_sanitize(err->msg);
	return rc;
}

int cedar_json_record(cedar_arena *a, json_t *obj, cedar_value *out, sdk_err *err)
{
	if (!json_is_object(obj))
		return fail(err, "expected a JSON object", NULL);
	int rc = record_of(a, obj, 0, out, err);
	if (rc < 0 && err)
		cedar_utf8_sanitize(err->msg);
	return rc;
}

int cedar_json_uid_strict(cedar_arena *a, json_t *j, const cedar_uid **out, sdk_err *err)
{
	int rc = uid_of(a, j, false, out, err);
	if (rc < 0 && err)
		cedar_utf8_sanitize(err->msg);
	return rc;
}

json_t *cedar_uid_json(const cedar_uid *u)
{
	return json_pack("{s:s%, s:s%}", "type", u->type, (size_t)u->type_len, "id", u->id,
			 (size_t)u->id_len);
}

json_t *cedar_value_json(const cedar_value *v)
{
	char buf[64];
	switch (v->kind) {
	case CEDAR_BOOL: return json_boolean(v->b);
	case CEDAR_LONG: return json_integer(v->i);
	case CEDAR_STRING: return json_stringn(v->s, v->n);
	case CEDAR_ENTITY: return json_pack("{s:o}", "__entity", cedar_uid_json(v->uid));
	case CEDAR_SET: {
		json_t *arr = json_array();
		for (uint32_t i = 0; arr && i < v->n; i++)
			json_array_append_new(arr, cedar_value_json(&v->items[i]));
		return arr;
	}
	case CEDAR_RECORD: {
		json_t *obj = json_object();
		for (uint32_t i = 0; obj && i < v->n; i++)
			json_object_setn_new(obj, v->attrs[i].key, v->attrs[i].key_len,
					     cedar_value_json(&v->attrs[i].val));
		return obj;
	}
	case CEDAR_DECIMAL:
		cedar_decimal_format(v->i, buf, sizeof buf);
		return json_pack("{s:{s:s, s:s}}", "__extn", "fn", "decimal", "arg", buf);
	case CEDAR_IP:
		cedar_ip_format(v->ip, buf, sizeof buf);
		return json_pack("{s:{s:s, s:s}}", "__extn", "fn", "ip", "arg", buf);
	case CEDAR_DATETIME:
		cedar_datetime_format(v->i, buf, sizeof buf);
		return json_pack("{s:{s:s, s:s}}", "__extn", "fn", "datetime", "arg", buf);
	case CEDAR_DURATION:
		cedar_duration_format(v->i, buf, sizeof buf);
		return json_pack("{s:{s:s, s:s}}", "__extn", "fn", "duration", "arg", buf);
	}
	return NULL;
}
