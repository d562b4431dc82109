#include "sdk/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool grow(sdk_buf *b, size_t extra)
{
	if (b->oom)
		return false;
	if (b->len + extra + 1 <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + extra + 1) {
		if (cap > ((size_t)-1) / 2) {
			b->oom = true;
			return false;
		}
		cap *= 2;
	}
	char *p = realloc(b->p, cap);
	if (!p) {
		b->oom = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

void sdk_buf_add(sdk_buf *b, const char *s, size_t n)
{
	if (!grow(b, n))
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void sdk_buf_str(sdk_buf *b, const char *s) { sdk_buf_add(b, s, strlen(s)); }

void *sdk_grow(void *arr, size_t *cap, size_t n, size_t size, size_t first)
{
	if (n < *cap)
		return arr;
	size_t c = *cap ? *cap : first;
	while (c <= n && c <= ((size_t)-1) / 2)
		c *= 2;
	if (c <= n || c > ((size_t)-1) / size)
		return NULL;
	void *p = realloc(arr, c * size);
	if (!p)
		return NULL;
	*cap = c;
	return p;
}

void sdk_buf_truncate(sdk_buf *b, size_t len)
{
	if (b->p && len <= b->len) {
		b->len = len;
		b->p[len] = '\0';
	}
}

void sdk_buf_printf(sdk_buf *b, const char *fmt, ...)
{
	char small[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof small, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->oom = true;
		return;
	}
	if ((size_t)n < sizeof small) {
		sdk_buf_add(b, small, (size_t)n);
		return;
	}
	if (!grow(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void sdk_buf_reset(sdk_buf *b)
{
	b->len = 0;
	if (b->p)
		b->p[0] = '\0';
}

void sdk_buf_free(sdk_buf *b)
{
	free(b->p);
	*b = (sdk_buf){ 0 };
}
