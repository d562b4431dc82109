#include "serve/memory/columns.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const type_names[] = {
	[MEM_T_ANY] = "any",	     [MEM_T_STRING] = "string", [MEM_T_NUMBER] = "number",
	[MEM_T_BOOLEAN] = "boolean", [MEM_T_JSON] = "json",	[MEM_T_TEXT] = "text",
};

static bool is_lower(char c) { return c >= 'a' && c <= 'z'; }
static bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool mem_table_name_valid(const char *s)
{
	if (!s || !is_lower(s[0]))
		return false;
	size_t n = 1;
	for (; s[n]; n++)
		if (n >= MEM_NAME_MAX || !(is_lower(s[n]) || is_digit(s[n]) || s[n] == '_'))
			return false;
	return true;
}

bool mem_column_name_valid(const char *s)
{
	if (!s || !(is_lower(s[0]) || is_upper(s[0])))
		return false;
	size_t n = 1;
	for (; s[n]; n++)
		if (n >= MEM_NAME_MAX ||
		    !(is_lower(s[n]) || is_upper(s[n]) || is_digit(s[n]) || s[n] == '_'))
			return false;
	return true;
}

const char *mem_type_name(enum mem_type t)
{
	return (unsigned)t < sizeof type_names / sizeof *type_names ? type_names[t] : "any";
}

enum mem_type mem_type_parse(const char *s)
{
	for (size_t i = MEM_T_STRING; i < sizeof type_names / sizeof *type_names; i++)
		if (s && !strcmp(s, type_names[i]))
			return (enum mem_type)i;
	return MEM_T_ANY;
}

/* Indexed unless the declaration says otherwise: strings and numbers. A
 * boolean splits the rows in two, so an index on it rarely helps a query
 * and slows every insert; it can still be asked for. */
static bool indexed_by_default(enum mem_type t)
{
	return t == MEM_T_STRING || t == MEM_T_NUMBER;
}

/* A name from the input, shortened and made printable for an error message. */
static const char *shown(const char *s, char out[40])
{
	size_t i = 0;
	for (; i < 32 && s[i]; i++)
		out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	if (s[i])
		out[i++] = '.', out[i++] = '.', out[i++] = '.';
	out[i] = '\0';
	return out;
}

int mem_columns_parse(json_t *spec, mem_columns *out, sdk_err *err)
{
	memset(out, 0, sizeof *out);
	if (!spec || json_is_null(spec))
		return 0;
	if (!json_is_array(spec)) {
		sdk_fail(err, SDK_EINVAL, "columns is an array of {\"name\", \"type\"}");
		return -1;
	}
	if (json_array_size(spec) > MEM_COLUMNS_MAX) {
		return sdk_fail(err, SDK_EINVAL, "at most %d columns", MEM_COLUMNS_MAX);
	}
	size_t i, n_indexed = 0;
	json_t *c;
	char tmp[40];
	json_array_foreach(spec, i, c) {
		const char *key;
		json_t *v;
		if (!json_is_object(c)) {
			return sdk_fail(err, SDK_EINVAL, "columns[%zu] is not an object", i);
		}
		json_object_foreach(c, key, v) {
			if (strcmp(key, "name") && strcmp(key, "type") && strcmp(key, "required") &&
			    strcmp(key, "index")) {
				return sdk_fail(err, SDK_EINVAL, "columns[%zu]: unknown key '%s'",
						i, shown(key, tmp));
			}
		}
		const char *name = json_string_value(json_object_get(c, "name"));
		if (!name || !mem_column_name_valid(name)) {
			return sdk_fail(err, SDK_EINVAL,
					"columns[%zu].name must be 1 to %d of A-Z, a-z, 0-9, '_', "
					"starting with a letter",
					i, MEM_NAME_MAX);
		}
		if (mem_columns_find(out, name)) {
			return sdk_fail(err, SDK_EINVAL, "column '%s' is declared twice", name);
		}
		const char *type = json_string_value(json_object_get(c, "type"));
		enum mem_type t = mem_type_parse(type);
		if (t == MEM_T_ANY) {
			return sdk_fail(
				err, SDK_EINVAL,
				"columns[%zu].type is one of string, number, boolean, json, text",
				i);
		}
		json_t *req = json_object_get(c, "required"), *ix = json_object_get(c, "index");
		if ((req && !json_is_boolean(req)) || (ix && !json_is_boolean(ix))) {
			return sdk_fail(err, SDK_EINVAL,
					"columns[%zu]: required and index are booleans", i);
		}
		bool want_index = ix ? json_is_true(ix) : indexed_by_default(t);
		if (ix && json_is_true(ix) && t == MEM_T_JSON) {
			return sdk_fail(err, SDK_EINVAL,
					"column '%s': a json column cannot be indexed", name);
		}
		if (want_index && n_indexed >= MEM_INDEXED_MAX) {
			if (ix) {
				return sdk_fail(err, SDK_EINVAL, "at most %d indexed columns",
						MEM_INDEXED_MAX);
			}
			want_index = false; /* a default past the cap: not indexed */
		}
		mem_column *col = &out->c[out->n++];
		snprintf(col->name, sizeof col->name, "%s", name);
		col->type = t;
		col->required = req && json_is_true(req);
		col->indexed = want_index;
		n_indexed += want_index;
	}
	return 0;
}

json_t *mem_columns_json(const mem_columns *cols)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < cols->n; i++) {
		const mem_column *c = &cols->c[i];
		if (json_array_append_new(a, json_pack("{s:s, s:s, s:b, s:b}", "name", c->name,
						       "type", mem_type_name(c->type), "required",
						       c->required, "index", c->indexed)) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

const mem_column *mem_columns_find(const mem_columns *cols, const char *name)
{
	for (size_t i = 0; i < cols->n; i++)
		if (!strcmp(cols->c[i].name, name))
			return &cols->c[i];
	return NULL;
}

bool mem_columns_has_text(const mem_columns *cols)
{
	for (size_t i = 0; i < cols->n; i++)
		if (cols->c[i].type == MEM_T_TEXT)
			return true;
	return false;
}

static bool type_ok(enum mem_type t, json_t *v)
{
	switch (t) {
	case MEM_T_STRING:
	case MEM_T_TEXT: return json_is_string(v);
	case MEM_T_NUMBER: return json_is_number(v);
	case MEM_T_BOOLEAN: return json_is_boolean(v);
	case MEM_T_JSON:
	case MEM_T_ANY: return true;
	}
	return false;
}

/* Depth of nested containers, counting `v` itself; stops past `limit`. */
static int depth(json_t *v, int limit)
{
	if (limit < 0 || !(json_is_object(v) || json_is_array(v)))
		return 0;
	int deepest = 0;
	if (json_is_object(v)) {
		const char *k;
		json_t *m;
		json_object_foreach(v, k, m) {
			int d = depth(m, limit - 1);
			if (d > deepest)
				deepest = d;
			if (deepest >= limit)
				break;
		}
	} else {
		size_t i;
		json_t *m;
		json_array_foreach(v, i, m) {
			int d = depth(m, limit - 1);
			if (d > deepest)
				deepest = d;
			if (deepest >= limit)
				break;
		}
	}
	return deepest + 1;
}

int mem_row_check(const mem_columns *cols, json_t *row, sdk_err *err)
{
	char tmp[40];
	if (!json_is_object(row)) {
		return sdk_fail(err, SDK_EINVAL, "a row is a JSON object");
	}
	if (depth(row, MEM_ROW_DEPTH_MAX) > MEM_ROW_DEPTH_MAX) {
		return sdk_fail(err, SDK_EINVAL, "a row nests at most %d levels deep",
				MEM_ROW_DEPTH_MAX);
	}
	if (cols->n == 0)
		return 0;
	const char *key;
	json_t *v;
	json_object_foreach(row, key, v) {
		const mem_column *c = mem_columns_find(cols, key);
		if (!c) {
			return sdk_fail(err, SDK_EINVAL, "unknown column '%s'", shown(key, tmp));
		}
		if (!json_is_null(v) && !type_ok(c->type, v)) {
			return sdk_fail(err, SDK_EINVAL, "column '%s' is of type %s", c->name,
					mem_type_name(c->type));
		}
	}
	for (size_t i = 0; i < cols->n; i++) {
		if (!cols->c[i].required)
			continue;
		json_t *m = json_object_get(row, cols->c[i].name);
		if (!m || json_is_null(m)) {
			return sdk_fail(err, SDK_EINVAL, "column '%s' is required",
					cols->c[i].name);
		}
	}
	return 0;
}

char *mem_row_encode(const mem_columns *cols, json_t *row, size_t *len, bool *too_large,
		     sdk_err *err)
{
	*too_large = false;
	if (mem_row_check(cols, row, err) < 0)
		return NULL;
	char *text = json_dumps(row, JSON_COMPACT);
	if (!text) {
		sdk_fail(err, SDK_EINVAL, "cannot encode the row");
		return NULL;
	}
	*len = strlen(text);
	if (*len > MEM_ROW_BYTES_MAX) {
		sdk_fail(err, SDK_EINVAL, "a row is at most %d bytes of JSON (this one is %zu)",
			 MEM_ROW_BYTES_MAX, *len);
		*too_large = true;
		free(text);
		return NULL;
	}
	return text;
}
