/* Writing JSON text straight into a growable buffer (sdk/buf.h), for hot
 * paths where building a jansson tree and dumping it costs ten times the
 * text (the tracer's exports). The caller writes the structure; jsonw_str
 * quotes and escapes a string (RFC 8259), and a byte that is not part of
 * valid UTF-8 becomes U+FFFD, so the text is always valid JSON. A failed
 * allocation marks the buffer `oom` (sdk_buf's rule: check once at the
 * end). */
#ifndef GRACE_SDK_JSONW_H
#define GRACE_SDK_JSONW_H

#include "sdk/buf.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* `s` as a JSON string, quotes included. */
void sdk_jsonw_str(sdk_buf *out, const char *s);
/* Text that is JSON already (punctuation, keys known to need no escape).
 * Inline: the tracer writes some sixty literals a span, and inlined with a
 * literal the length is a constant and the copy a few moves (an export's
 * buffer is kept between exports, so it rarely has to grow). */
static inline void sdk_jsonw_raw(sdk_buf *out, const char *s)
{
	size_t n = strlen(s);
	if (!out->oom && out->len + n < out->cap) { /* room for the text and its NUL */
		memcpy(out->p + out->len, s, n + 1);
		out->len += n;
	} else {
		sdk_buf_add(out, s, n);
	}
}
/* A decimal number, bare (`quoted`: as a string, as OTLP/JSON writes 64-bit
 * integers). */
void sdk_jsonw_int(sdk_buf *out, int64_t v, int quoted);

#endif
