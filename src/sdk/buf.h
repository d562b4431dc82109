/* A growable byte buffer, for text built piece by piece (SQL, JSON,
 * rewritten documents). Once an allocation fails the buffer stays marked
 * `oom` and further appends do nothing, so a caller checks once at the
 * end. The caller owns `p`: sdk_buf_free, or take it and free it. */
#ifndef GRACE_SDK_BUF_H
#define GRACE_SDK_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

typedef struct sdk_buf {
	char *p; /* NUL-terminated while not oom; NULL until the first append */
	size_t len, cap;
	bool oom;
} sdk_buf;

void sdk_buf_add(sdk_buf *b, const char *s, size_t n);
void sdk_buf_str(sdk_buf *b, const char *s);
void sdk_buf_printf(sdk_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* sdk_buf_add, inline while there is room: for writers that append a few
 * bytes at a time (JSON text, where the call cost thousands of
 * instructions a span or a search hit). */
static inline void sdk_buf_put(sdk_buf *b, const char *s, size_t n)
{
	if (!b->oom && b->len + n < b->cap) { /* room for the bytes and the NUL */
		memcpy(b->p + b->len, s, n);
		b->len += n;
		b->p[b->len] = '\0';
		return;
	}
	sdk_buf_add(b, s, n);
}
/* Room for element n of an array of `size`-byte elements with *cap
 * allocated: `arr` itself while n < *cap, else the array grown by doubling
 * (`first` elements the first time), *cap updated. NULL when memory runs
 * out (or the size would overflow): `arr` and *cap are then as they were.
 * The caller stores the result: v = sdk_grow(v, &cap, n, sizeof *v, 64). */
void *sdk_grow(void *arr, size_t *cap, size_t n, size_t size, size_t first);
/* Back to its first `len` bytes (a piece written and then given up). */
void sdk_buf_truncate(sdk_buf *b, size_t len);
/* Forgets the contents, keeps the memory. */
void sdk_buf_reset(sdk_buf *b);
void sdk_buf_free(sdk_buf *b);

#endif
