#include "kernels/librarian/ndjson.h"

#include "kernels/librarian/store.h"

#include <stdbool.h>
#include <string.h>

static size_t skip_ws(const char *s, size_t n, size_t i)
{
	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	return i;
}

/* A string at s[i] == '"' with no escape and no control character, valid
 * UTF-8: its bytes [*at, *at + *len), and the index past its quote; 0 when
 * it is not plain. */
static size_t plain_string(const char *s, size_t n, size_t i, size_t *at, size_t *len)
{
	if (i >= n || s[i] != '"')
		return 0;
	const char *q = memchr(s + i + 1, '"', n - i - 1);
	if (!q)
		return 0;
	size_t from = i + 1, to = (size_t)(q - s);
	for (size_t k = from; k < to; k++)
		if ((unsigned char)s[k] < 0x20 || s[k] == '\\')
			return 0;
	if (!lib_utf8_valid((const unsigned char *)s + from, to - from))
		return 0;
	*at = from;
	*len = to - from;
	return to + 1;
}

static json_t *string_at(const char *s, size_t at, size_t len)
{
	return json_stringn_nocheck(s + at, len); /* checked above */
}

/* An array of plain strings at s[i] == '['; the index past it, 0 if not. */
static size_t plain_array(const char *s, size_t n, size_t i, json_t **out)
{
	json_t *a = json_array();
	if (!a)
		return 0;
	i = skip_ws(s, n, i + 1);
	if (i < n && s[i] == ']') {
		*out = a;
		return i + 1;
	}
	for (;;) {
		size_t at, len;
		i = plain_string(s, n, i, &at, &len);
		if (!i || json_array_append_new(a, string_at(s, at, len)))
			break;
		i = skip_ws(s, n, i);
		if (i < n && s[i] == ']') {
			*out = a;
			return i + 1;
		}
		if (i >= n || s[i] != ',')
			break;
		i = skip_ws(s, n, i + 1);
	}
	json_decref(a);
	return 0;
}

json_t *lib_ndjson_plain(const char *s, size_t n)
{
	size_t i = skip_ws(s, n, 0);
	if (i >= n || s[i] != '{')
		return NULL;
	json_t *o = json_object();
	if (!o)
		return NULL;
	i = skip_ws(s, n, i + 1);
	bool first = true;
	for (;;) {
		if (i < n && s[i] == '}' && first)
			break;
		size_t at, len;
		i = plain_string(s, n, i, &at, &len);
		/* A key must be a C string to be looked up: no NUL (plain strings
		 * have none), and not one already there. */
		char key[64];
		if (!i || len >= sizeof key)
			goto no;
		memcpy(key, s + at, len);
		key[len] = '\0';
		if (json_object_get(o, key))
			goto no;
		i = skip_ws(s, n, i);
		if (i >= n || s[i] != ':')
			goto no;
		i = skip_ws(s, n, i + 1);
		json_t *v = NULL;
		if (i < n && s[i] == '[') {
			i = plain_array(s, n, i, &v);
		} else {
			size_t vat, vlen;
			i = plain_string(s, n, i, &vat, &vlen);
			if (i)
				v = string_at(s, vat, vlen);
		}
		if (!i || !v || json_object_set_new_nocheck(o, key, v))
			goto no;
		first = false;
		i = skip_ws(s, n, i);
		if (i < n && s[i] == '}')
			break;
		if (i >= n || s[i] != ',')
			goto no;
		i = skip_ws(s, n, i + 1);
	}
	if (skip_ws(s, n, i + 1) != n)
		goto no;
	return o;
no:
	json_decref(o);
	return NULL;
}
