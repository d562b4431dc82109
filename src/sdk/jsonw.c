#include "sdk/jsonw.h"

#include "sdk/utf8.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Eight bytes none of which is escaped: no control character, '"' or
 * '\\' (the usual test for a zero byte, exact for "any of the eight", on
 * x - 0x20.., x ^ '"' and x ^ '\\'), and, unless `utf8`, nothing past
 * ASCII (which then has to be decoded to be checked). */
static bool plain8(const unsigned char *p, bool utf8)
{
	const uint64_t ones = 0x0101010101010101u, high = 0x8080808080808080u;
	uint64_t x, q, b;
	memcpy(&x, p, 8);
	q = x ^ (ones * '"');
	b = x ^ (ones * '\\');
	uint64_t hit = ((x - ones * 0x20) & ~x) | ((q - ones) & ~q) | ((b - ones) & ~b);
	if (!utf8)
		hit |= x;
	return !(hit & high);
}

static void escape(sdk_buf *out, unsigned char c)
{
	static const char hex[] = "0123456789ABCDEF";
	switch (c) {
	case '"': sdk_buf_put(out, "\\\"", 2); break;
	case '\\': sdk_buf_put(out, "\\\\", 2); break;
	case '\b': sdk_buf_put(out, "\\b", 2); break;
	case '\f': sdk_buf_put(out, "\\f", 2); break;
	case '\n': sdk_buf_put(out, "\\n", 2); break;
	case '\r': sdk_buf_put(out, "\\r", 2); break;
	case '\t': sdk_buf_put(out, "\\t", 2); break;
	default: {
		char e[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
		sdk_buf_put(out, e, 6);
	}
	}
}

static void str_n(sdk_buf *out, const unsigned char *s, size_t n, bool utf8)
{
	sdk_buf_put(out, "\"", 1);
	size_t run = 0, i = 0;
	while (i < n) {
		if (n - i >= 8 && plain8(s + i, utf8)) {
			i += 8;
			continue;
		}
		unsigned char c = s[i];
		if (c >= 0x80) {
			size_t len = utf8 ? 1 : sdk_utf8_len(s + i, n - i);
			if (len) {
				i += len;
				continue;
			}
			/* Not UTF-8: what came before goes as it is. */
			sdk_buf_put(out, (const char *)s + run, i - run);
			sdk_buf_put(out, "\\ufffd", 6);
			run = ++i;
			continue;
		}
		if (c >= 0x20 && c != '"' && c != '\\') {
			i++;
			continue;
		}
		sdk_buf_put(out, (const char *)s + run, i - run);
		escape(out, c);
		run = ++i;
	}
	sdk_buf_put(out, (const char *)s + run, n - run);
	sdk_buf_put(out, "\"", 1);
}

void sdk_jsonw_str(sdk_buf *out, const char *s)
{
	str_n(out, (const unsigned char *)s, strlen(s), false);
}

void sdk_jsonw_utf8(sdk_buf *out, const char *s, size_t n)
{
	str_n(out, (const unsigned char *)s, n, true);
}

void sdk_jsonw_int(sdk_buf *out, int64_t v, int quoted)
{
	char buf[24], *e = buf + sizeof buf, *p = e;
	uint64_t u = v < 0 ? 0u - (uint64_t)v : (uint64_t)v;
	if (quoted)
		*--p = '"';
	do
		*--p = (char)('0' + u % 10);
	while (u /= 10);
	if (v < 0)
		*--p = '-';
	if (quoted)
		*--p = '"';
	sdk_buf_put(out, p, (size_t)(e - p));
}

/* A real as jansson writes it (its precision and shortest-form rules
 * differ between its versions): rare where this writer is used, so asked
 * of jansson itself, into a local buffer. */
static int real_text(sdk_buf *out, const json_t *v)
{
	char s[64];
	size_t n = json_dumpb(v, s, sizeof s, JSON_COMPACT | JSON_ENCODE_ANY);
	if (n == 0 || n > sizeof s)
		return -1;
	sdk_buf_put(out, s, n);
	return 0;
}

int sdk_jsonw_value(sdk_buf *out, const json_t *v)
{
	if (!v)
		return -1;
	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		const char *k;
		size_t klen;
		json_t *e;
		bool first = true;
		sdk_buf_put(out, "{", 1);
		json_object_keylen_foreach((json_t *)v, k, klen, e)
		{
			if (!first)
				sdk_buf_put(out, ",", 1);
			first = false;
			sdk_jsonw_utf8(out, k, klen);
			sdk_buf_put(out, ":", 1);
			if (sdk_jsonw_value(out, e) < 0)
				return -1;
		}
		sdk_buf_put(out, "}", 1);
		return 0;
	}
	case JSON_ARRAY: {
		sdk_buf_put(out, "[", 1);
		for (size_t i = 0; i < json_array_size(v); i++) {
			if (i)
				sdk_buf_put(out, ",", 1);
			if (sdk_jsonw_value(out, json_array_get(v, i)) < 0)
				return -1;
		}
		sdk_buf_put(out, "]", 1);
		return 0;
	}
	case JSON_STRING:
		sdk_jsonw_utf8(out, json_string_value(v), json_string_length(v));
		return 0;
	case JSON_INTEGER:
		sdk_jsonw_int(out, json_integer_value(v), 0);
		return 0;
	case JSON_REAL:
		return real_text(out, v);
	case JSON_TRUE:
		sdk_buf_put(out, "true", 4);
		return 0;
	case JSON_FALSE:
		sdk_buf_put(out, "false", 5);
		return 0;
	case JSON_NULL:
		sdk_buf_put(out, "null", 4);
		return 0;
	}
	return -1;
}
