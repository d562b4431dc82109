/* W3C Trace Context (https://www.w3.org/TR/trace-context/): the
 * `traceparent` and `tracestate` headers parsed by the specification's
 * rules, and written. Pure functions: tests/unit/test_tracecontext.c runs
 * them on the specification's valid and invalid cases. */
#ifndef GRACE_SDK_TRACECONTEXT_H
#define GRACE_SDK_TRACECONTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SDK_TRACEPARENT_LEN 55 /* "00-" 32 hex "-" 16 hex "-" 2 hex */
#define SDK_TRACESTATE_MAX 512 /* what we keep and pass on */
#define SDK_TRACE_FLAG_SAMPLED 0x01

typedef struct sdk_trace_ctx {
	uint8_t trace_id[16];
	uint8_t span_id[8]; /* the parent's, in a traceparent read; one's own when written */
	uint8_t flags;
} sdk_trace_ctx;

/* Parses a traceparent value: 0, or -1 when it is invalid (the receiver
 * then starts a new trace). Version 00 is exactly 55 characters; a future
 * version (01..fe) is read as version 00 and may go on after a '-'; version
 * ff, upper-case hex, an all-zero trace id or parent id are invalid.
 * Leading and trailing spaces and tabs (OWS) are allowed. */
int sdk_traceparent_parse(const char *value, sdk_trace_ctx *out);
/* Writes "00-TRACEID-SPANID-FLAGS" into out (SDK_TRACEPARENT_LEN + 1). */
void sdk_traceparent_format(const sdk_trace_ctx *c, char *out);
/* Checks a tracestate value (list members key=value, at most 32, keys
 * unique, OWS and empty members allowed) and writes it normalized into
 * out: the members joined by ','. 0 when valid ("" for an empty one), -1
 * when invalid: the whole tracestate is then discarded. */
int sdk_tracestate_parse(const char *value, char *out, size_t len);
/* Fresh random ids (never all zero). */
void sdk_trace_random(uint8_t *out, size_t n);
bool sdk_trace_id_valid(const uint8_t *id, size_t n);

#endif
