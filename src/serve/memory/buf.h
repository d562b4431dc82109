/* A growable byte buffer for building SQL text and JSON answers. Once an
 * allocation fails the buffer stays marked `oom` and further appends do
 * nothing, so a caller checks once at the end. */
#ifndef GRACE_MEMORY_BUF_H
#define GRACE_MEMORY_BUF_H

#include "serve/layer.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct mem_buf {
	char *p; /* NUL-terminated while not oom; NULL until the first append */
	size_t len, cap;
	bool oom;
} mem_buf;

void mem_buf_add(mem_buf *b, const char *s, size_t n);
void mem_buf_str(mem_buf *b, const char *s);
void mem_buf_printf(mem_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Forgets the contents, keeps the memory. */
void mem_buf_reset(mem_buf *b);
void mem_buf_free(mem_buf *b);

#endif
