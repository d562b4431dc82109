#include "sdk/jsonw.h"

#include "sdk/utf8.h"

#include <event2/buffer.h>
#include <stdint.h>
#include <string.h>

void sdk_jsonw_str(struct evbuffer *out, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s, *run = p;
	evbuffer_add(out, "\"", 1);
	while (*p) {
		size_t n = sdk_utf8_len(p, SIZE_MAX); /* NUL-terminated */
		if (n > 1) {
			p += n;
			continue;
		}
		unsigned char c = *p;
		if (n == 1 && c >= 0x20 && c != '"' && c != '\\') {
			p++;
			continue;
		}
		/* What came before goes as it is; this byte is escaped. */
		evbuffer_add(out, run, (size_t)(p - run));
		if (n == 0) {
			evbuffer_add(out, "\\ufffd", 6);
		} else if (c == '"' || c == '\\') {
			char e[2] = { '\\', (char)c };
			evbuffer_add(out, e, 2);
		} else {
			char e[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
			evbuffer_add(out, e, 6);
		}
		run = ++p;
	}
	evbuffer_add(out, run, (size_t)(p - run));
	evbuffer_add(out, "\"", 1);
}

void sdk_jsonw_raw(struct evbuffer *out, const char *s) { evbuffer_add(out, s, strlen(s)); }

void sdk_jsonw_int(struct evbuffer *out, int64_t v, int quoted)
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
	evbuffer_add(out, p, (size_t)(e - p));
}
