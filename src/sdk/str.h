#ifndef GRACE_SDK_STR_H
#define GRACE_SDK_STR_H

#include <stdarg.h>
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

/* Joins the strings before the NULL that ends the list into dst, cut to
 * fit as sdk_strcpy cuts one; returns the length the whole would have
 * (`>= size` means it was cut). Through SDK_STRJOIN, which adds the NULL.
 * For hot paths, where snprintf's "%s%s" costs hundreds of instructions. */
static inline size_t sdk_strjoin(char *dst, size_t size, ...)
{
	va_list ap;
	size_t n = 0;
	va_start(ap, size);
	for (const char *s; (s = va_arg(ap, const char *));) {
		size_t k = strlen(s);
		if (n < size)
			memcpy(dst + n, s, k < size - n ? k : size - n - 1);
		n += k;
	}
	va_end(ap);
	if (size)
		dst[n < size ? n : size - 1] = '\0';
	return n;
}
#define SDK_STRJOIN(dst, size, ...) sdk_strjoin((dst), (size), __VA_ARGS__, (const char *)NULL)

/* v in decimal at the end of buf, which must hold 12 bytes; returns where
 * it starts. snprintf("%d") costs a few hundred instructions. */
static inline const char *sdk_int_text(int v, char buf[static 12])
{
	char *p = buf + 11;
	unsigned u = v < 0 ? 0u - (unsigned)v : (unsigned)v;
	*p = '\0';
	do
		*--p = (char)('0' + u % 10);
	while (u /= 10);
	if (v < 0)
		*--p = '-';
	return p;
}

#endif
