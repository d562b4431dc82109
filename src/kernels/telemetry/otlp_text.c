/* JSON text written straight into a growing buffer, byte for byte as
 * jansson's json_dumps(JSON_COMPACT) writes it: the stored span bodies were
 * written by json_dumps, and GET answers and tests compare those bytes.
 * Dumping a tree of jansson objects cost about 82,000 instructions a span
 * (its generic callback output, a hashtable walk and a malloc'd copy);
 * this writer costs a small fraction of that. */
#include "kernels/telemetry/otlp.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes a string can hold without an escape: not '"', '\\' or a control
 * character. jansson escapes nothing else without flags (non-ASCII stays
 * UTF-8, '/' stays '/'). */
static bool plain(unsigned char ch)
{
	return ch >= 0x20 && ch != '"' && ch != '\\';
}

void otlp_text_str(sdk_buf *b, const char *s, size_t n)
{
	otlp_put(b, "\"", 1);
	size_t run = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (plain(ch))
			continue;
		otlp_put(b, s + run, i - run);
		run = i + 1;
		char esc[8];
		const char *e = esc;
		switch (ch) {
		case '"': e = "\\\""; break;
		case '\\': e = "\\\\"; break;
		case '\b': e = "\\b"; break;
		case '\f': e = "\\f"; break;
		case '\n': e = "\\n"; break;
		case '\r': e = "\\r"; break;
		case '\t': e = "\\t"; break;
		default: snprintf(esc, sizeof esc, "\\u%04X", (unsigned)ch); break;
		}
		otlp_put(b, e, strlen(e));
	}
	otlp_put(b, s + run, n - run);
	otlp_put(b, "\"", 1);
}

void otlp_text_int(sdk_buf *b, int64_t v)
{
	char s[24];
	int n = snprintf(s, sizeof s, "%" PRId64, v);
	otlp_put(b, s, (size_t)n);
}

/* A real as jansson writes it (its precision and shortest-form rules
 * differ between builds): rare in a span, so asked of jansson itself. */
static int real_text(sdk_buf *b, const json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!s)
		return -1;
	sdk_buf_str(b, s);
	free(s);
	return 0;
}

int otlp_text_json(sdk_buf *b, const json_t *v)
{
	if (!v)
		return -1;
	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		const char *k;
		size_t klen;
		json_t *e;
		bool first = true;
		otlp_put(b, "{", 1);
		/* Insertion order, as json_dumps without JSON_SORT_KEYS. */
		json_object_keylen_foreach((json_t *)v, k, klen, e) {
			if (!first)
				otlp_put(b, ",", 1);
			first = false;
			otlp_text_str(b, k, klen);
			otlp_put(b, ":", 1);
			if (otlp_text_json(b, e) < 0)
				return -1;
		}
		otlp_put(b, "}", 1);
		return 0;
	}
	case JSON_ARRAY: {
		otlp_put(b, "[", 1);
		for (size_t i = 0; i < json_array_size(v); i++) {
			if (i)
				otlp_put(b, ",", 1);
			if (otlp_text_json(b, json_array_get(v, i)) < 0)
				return -1;
		}
		otlp_put(b, "]", 1);
		return 0;
	}
	case JSON_STRING:
		otlp_text_str(b, json_string_value(v), json_string_length(v));
		return 0;
	case JSON_INTEGER:
		otlp_text_int(b, json_integer_value(v));
		return 0;
	case JSON_REAL:
		return real_text(b, v);
	case JSON_TRUE:
		otlp_put(b, "true", 4);
		return 0;
	case JSON_FALSE:
		otlp_put(b, "false", 5);
		return 0;
	case JSON_NULL:
		otlp_put(b, "null", 4);
		return 0;
	}
	return -1;
}
