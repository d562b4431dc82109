#include "sdk/jsonw.h"

#include "sdk/utf8.h"

#include <stdint.h>

/* 1 for a byte written as it is without looking further: printable
 * ASCII but the quote and the backslash. One load a byte in the loop. */
static const uint8_t plain[256] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

void sdk_jsonw_str(sdk_buf *out, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s, *run = p;
	sdk_buf_add(out, "\"", 1);
	for (;;) {
		/* Printable ASCII, the common case, is skipped without decoding. */
		while (plain[*p])
			p++;
		if (!*p)
			break;
		size_t n = sdk_utf8_len(p, SIZE_MAX); /* NUL-terminated */
		if (n > 1) {
			p += n;
			continue;
		}
		unsigned char c = *p;
		/* What came before goes as it is; this byte is escaped. */
		sdk_buf_add(out, (const char *)run, (size_t)(p - run));
		if (n == 0) {
			sdk_buf_add(out, "\\ufffd", 6);
		} else if (c == '"' || c == '\\') {
			char e[2] = { '\\', (char)c };
			sdk_buf_add(out, e, 2);
		} else {
			char e[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
			sdk_buf_add(out, e, 6);
		}
		run = ++p;
	}
	sdk_buf_add(out, (const char *)run, (size_t)(p - run));
	sdk_buf_add(out, "\"", 1);
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
	sdk_buf_add(out, p, (size_t)(e - p));
}
