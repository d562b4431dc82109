#include "kernels/executor/utf8.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* The length of the sequence a lead byte starts; 0 for a byte that
 * cannot start one. */
static size_t seq_len(unsigned char c)
{
	return c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3
	       : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
}

size_t exe_utf8_complete(const char *p, size_t n)
{
	/* Look back at most 3 bytes for a lead byte whose sequence runs past n. */
	for (size_t back = 1; back <= 3 && back <= n; back++) {
		unsigned char c = (unsigned char)p[n - back];
		if ((c & 0xc0) == 0x80)
			continue; /* a continuation byte */
		size_t need = seq_len(c);
		return need > back ? n - back : n;
	}
	return n;
}

static bool valid_seq(const unsigned char *p, size_t avail, size_t *len)
{
	size_t n = seq_len(p[0]);
	if (!n || n > avail)
		return false;
	for (size_t i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return false;
	/* Overlong forms, surrogates, past U+10FFFF. */
	if (n == 3 && ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0)))
		return false;
	if (n == 4 && ((p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90)))
		return false;
	*len = n;
	return true;
}

json_t *exe_utf8_json(const char *p, size_t n)
{
	char *out = malloc(n * 3 + 1);
	if (!out)
		return NULL;
	size_t w = 0;
	for (size_t i = 0; i < n;) {
		size_t len;
		const unsigned char *u = (const unsigned char *)p + i;
		if (u[0] && valid_seq(u, n - i, &len)) {
			memcpy(out + w, u, len);
			w += len;
			i += len;
		} else if (u[0] == 0) {
			out[w++] = ' '; /* NUL: jansson strings may hold it, clients choke on it */
			i++;
		} else {
			memcpy(out + w, "\xef\xbf\xbd", 3);
			w += 3;
			i++;
		}
	}
	json_t *s = json_stringn(out, w);
	free(out);
	return s;
}

