/* HTTP/1.1 message heads and chunked bodies, parsed strictly (RFC 9112).
 * Pure: no I/O, no allocation; the server, the upstream client, the unit
 * tests and the fuzzers all use these same functions, so the bytes the
 * gateway accepts are framed exactly as the kernels will frame them.
 *
 * Strictness, because ambiguity in framing is how request smuggling
 * starts: whitespace before a field's colon, obsolete line folding, control
 * characters in a value, a bare CR, more than one Content-Length, both
 * Content-Length and Transfer-Encoding, any transfer coding but a single
 * "chunked", and (HTTP/1.1) a missing or repeated Host are all refused. A
 * bare LF ends a head line as CRLF does (RFC 9112 §2.2 allows it); chunked
 * framing lines must end in CRLF. */
#ifndef GRACE_SDK_HTTP_PARSE_H
#define GRACE_SDK_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SDK_HTTP_FIELDS_MAX 128 /* a hard ceiling; the configured max_headers is lower */

enum sdk_http_body {
	SDK_HTTP_BODY_NONE,    /* no body */
	SDK_HTTP_BODY_LENGTH,  /* content_length bytes */
	SDK_HTTP_BODY_CHUNKED, /* chunked transfer coding */
	SDK_HTTP_BODY_CLOSE,   /* (responses only) until the connection closes */
};

typedef struct sdk_http_field {
	const char *name, *value; /* NUL-terminated in place */
	size_t name_len, value_len;
} sdk_http_field;

typedef struct sdk_http_head {
	/* Requests: method and target (origin-form path and query; for the
	 * absolute form, the path part, with its authority in `host`). */
	const char *method, *target;
	/* Responses: status and reason. */
	int status;
	const char *reason;
	int minor; /* HTTP/1.minor */
	sdk_http_field fields[SDK_HTTP_FIELDS_MAX];
	size_t n_fields;
	/* Derived framing and connection handling. */
	enum sdk_http_body body;
	uint64_t content_length;
	bool keep_alive;      /* the peer allows another message on this connection */
	bool expect_continue; /* "Expect: 100-continue" */
	bool absolute_form;   /* the target named its authority */
	const char *host;     /* Host, or the absolute-form authority; NULL if none */
} sdk_http_head;

/* Where a head ends in buf[0..len): the length through its blank line, or 0
 * when it has not ended yet. `*scan` (start at 0) remembers how far the
 * search got, so a head arriving a byte at a time is scanned once. */
size_t sdk_http_head_end(const char *buf, size_t len, size_t *scan);

/* Parses a complete request head of `len` bytes in place (it writes NULs
 * into buf). Returns 0, or the HTTP status to refuse it with (400, 414,
 * 417, 431) and a reason in *why. `max_fields` bounds the fields. */
int sdk_http_parse_request(char *buf, size_t len, unsigned max_fields, sdk_http_head *h,
			   const char **why);

/* Parses a complete response head in place. `to_head` says the request was
 * HEAD (then no body follows whatever the fields say). Returns 0, or -1
 * with a reason in *why. */
int sdk_http_parse_response(char *buf, size_t len, unsigned max_fields, bool to_head,
			    sdk_http_head *h, const char **why);

/* The value of the first field named `name` (case-insensitive), or NULL. */
const char *sdk_http_field_get(const sdk_http_head *h, const char *name);

/* Whether a comma-separated field value lists `token` (case-insensitive). */
bool sdk_http_list_has(const char *value, const char *token);

/* An incremental decoder of the chunked transfer coding. */
typedef struct sdk_chunked {
	int state;
	uint64_t left;      /* bytes of the current chunk still to come */
	unsigned digits;    /* hex digits of the current size */
	size_t line_bytes;  /* extension or trailer bytes so far */
} sdk_chunked;

enum { SDK_CHUNKED_MORE = 0, SDK_CHUNKED_DONE = 1, SDK_CHUNKED_BAD = -1 };

/* Consumes from in[0..len). Sets *consumed, and *data and *data_len to the body
 * bytes found (a span of `in`; at most one chunk's worth per call, so call
 * again while it consumes). Returns SDK_CHUNKED_DONE once the last chunk
 * and its trailer section are read (trailers are discarded), MORE when it
 * needs more input, BAD (reason in *why) on malformed framing. */
int sdk_chunked_step(sdk_chunked *c, const char *in, size_t len, size_t *consumed,
		     const char **data, size_t *data_len, const char **why);

#endif
