/* Job output is bytes; SSE events carry JSON text: where to cut a chunk
 * so no character is split, and the text with what is not UTF-8 shown as
 * U+FFFD. */
#ifndef GRACE_EXECUTOR_UTF8_H
#define GRACE_EXECUTOR_UTF8_H

#include "kernels/layer.h"

#include <jansson.h>
#include <stddef.h>

/* How many bytes of [p, p+n) end on a character boundary (a cut there
 * splits no UTF-8 sequence). */
size_t exe_utf8_complete(const char *p, size_t n);
/* A JSON string of [p, p+n) with invalid bytes (and NUL) replaced. */
json_t *exe_utf8_json(const char *p, size_t n);

#endif
