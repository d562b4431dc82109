/* One strict UTF-8 decoder step (RFC 3629: no overlong forms, no
 * surrogates, nothing past U+10FFFF), for whoever checks text byte by byte:
 * the JSON writer (sdk/jsonw.c) and the librarian's validation. */
#ifndef GRACE_SDK_UTF8_H
#define GRACE_SDK_UTF8_H

#include <stddef.h>

/* The length (1..4) of the valid UTF-8 sequence at s, of which `avail`
 * bytes may be read (a NUL ends a C string early: it is no continuation
 * byte), or 0 when none starts there. NUL itself is a sequence of 1. */
static inline size_t sdk_utf8_len(const unsigned char *s, size_t avail)
{
	unsigned char c = s[0];
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return avail >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		unsigned char lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
		return avail >= 3 && s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80 ? 3 : 0;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		unsigned char lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
		return avail >= 4 && s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80 &&
			       (s[3] & 0xc0) == 0x80
			       ? 4
			       : 0;
	}
	return 0;
}

#endif
