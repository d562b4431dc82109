#ifndef GRACE_SDK_STR_H
#define GRACE_SDK_STR_H

#include <stddef.h>
#include <string.h>

/* Copies src into dst (size bytes with the NUL), cutting what does not fit,
 * like BSD's strlcpy; returns strlen(src), so `>= size` means it was cut.
 * For hot paths: snprintf(dst, size, "%s", src) costs ~550 instructions. */
static inline size_t sdk_strcpy(char *dst, size_t size, const char *src)
{
	size_t n = strlen(src);
	if (size) {
		size_t k = n < size ? n : size - 1;
		memcpy(dst, src, k);
		dst[k] = '\0';
	}
	return n;
}

#endif
