/* Writing JSON text straight into an evbuffer, for hot paths where
 * building a jansson tree and dumping it costs ten times the text (the
 * tracer's exports). The caller writes the structure; jsonw_str quotes and
 * escapes a string (RFC 8259), and a byte that is not part of valid UTF-8
 * becomes U+FFFD, so the text is always valid JSON. */
#ifndef GRACE_SDK_JSONW_H
#define GRACE_SDK_JSONW_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;

/* `s` as a JSON string, quotes included. */
void sdk_jsonw_str(struct evbuffer *out, const char *s);
/* Text that is JSON already (punctuation, keys known to need no escape). */
void sdk_jsonw_raw(struct evbuffer *out, const char *s);
/* A decimal number, bare (`quoted`: as a string, as OTLP/JSON writes 64-bit
 * integers). */
void sdk_jsonw_int(struct evbuffer *out, int64_t v, int quoted);

#endif
