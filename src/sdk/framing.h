/* Request framing rules applied before a request reaches any handler:
 * ambiguity in how a body is delimited is how request smuggling starts. */
#ifndef GRACE_SDK_FRAMING_H
#define GRACE_SDK_FRAMING_H

#include <stddef.h>

struct evkeyvalq;

/* Returns NULL when the headers frame the body unambiguously, else a short
 * reason: Content-Length together with Transfer-Encoding, more than one
 * Content-Length, a Content-Length that is not a decimal number, a
 * Transfer-Encoding other than "chunked", or more than max_headers headers. */
const char *sdk_framing_check(const struct evkeyvalq *headers, unsigned max_headers);

#endif
