/* Writing JSON text straight into a growable buffer (sdk/buf.h), byte for
 * byte as jansson's json_dumps(JSON_COMPACT) writes the same values, for
 * hot paths where building a jansson tree and dumping it costs ten times
 * the text: the tracer's exports, the telemetry kernel's stored spans, the
 * librarian's search answers. Stored and answered texts that jansson wrote
 * before stay the same bytes. A failed allocation marks the buffer `oom`
 * (sdk_buf's rule: check once at the end). */
#ifndef GRACE_SDK_JSONW_H
#define GRACE_SDK_JSONW_H

#include "sdk/buf.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A string, quotes included: '"', '\\' and control characters escaped as
 * jansson escapes them (\" \\ \b \f \n \r \t, else \u00XX), the rest as it
 * is. sdk_jsonw_str takes any NUL-terminated bytes, and a byte that is not
 * part of valid UTF-8 becomes U+FFFD (jansson would refuse the string), so
 * the text is always valid JSON; sdk_jsonw_utf8 takes n bytes the caller
 * knows to be UTF-8 (jansson's own strings, or text checked), NULs
 * included. */
void sdk_jsonw_str(sdk_buf *out, const char *s);
void sdk_jsonw_utf8(sdk_buf *out, const char *s, size_t n);
/* Text that is JSON already (punctuation, keys known to need no escape).
 * Inline: with a literal the length is a constant and the copy a few
 * moves. */
static inline void sdk_jsonw_raw(sdk_buf *out, const char *s) { sdk_buf_put(out, s, strlen(s)); }
/* A decimal number, bare (`quoted`: as a string, as OTLP/JSON writes 64-bit
 * integers). */
void sdk_jsonw_int(sdk_buf *out, int64_t v, int quoted);
/* A whole value, objects in insertion order (json_dumps without
 * JSON_SORT_KEYS). -1 when json_dumps would refuse it (a NULL, a real
 * that is not finite). */
int sdk_jsonw_value(sdk_buf *out, const json_t *v);

#endif
