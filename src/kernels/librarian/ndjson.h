/* A bulk line parsed without jansson's lexer when it is plain: one JSON
 * object whose keys and values are strings, or arrays of strings, with no
 * escapes and no control characters. Such a line is most of a bulk load
 * and jansson's lexer was a fifth of its CPU (docs/librarian.md).
 *
 * The result is the json_t jansson would have made of the same line
 * (JSON_REJECT_DUPLICATES); anything else (an escape, a number, a
 * duplicate key, invalid UTF-8, a syntax error) answers NULL and the
 * caller parses the line with jansson, which also words the error. */
#ifndef GRACE_LIBRARIAN_NDJSON_H
#define GRACE_LIBRARIAN_NDJSON_H

#include "kernels/layer.h"

#include <jansson.h>
#include <stddef.h>

/* A new reference, or NULL: not plain (or out of memory), use jansson. */
json_t *lib_ndjson_plain(const char *s, size_t n);

#endif
