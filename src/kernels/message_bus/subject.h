/* Subjects and subscription patterns of the message bus, NATS style.
 *
 * A subject is one or more tokens joined by '.': "grace.kernel.librarian.state".
 * A token is 1 or more bytes of printable ASCII other than '.', '*', '>',
 * '"' and '\' (the last two so that a subject never needs escaping in JSON
 * or in an SSE line). A pattern is a subject whose tokens may also be "*"
 * (exactly one token) or, as the last token only, ">" (one or more tokens).
 * A partial wildcard such as "ab*" is refused rather than read as a literal.
 *
 * Subjects whose first token starts with '$' belong to the bus itself (the
 * dead-letter subjects "$dlq.GROUP.SUBJECT"). Clients cannot publish to
 * them, and a wildcard in the first position of a pattern does not match
 * them (MQTT's rule for '$' topics): ">" means "every client subject", so a
 * group consuming ">" never consumes its own dead letters. A pattern that
 * names "$dlq" literally does match them.
 *
 * Pure functions, no allocation: unit-tested on their own. */
#ifndef GRACE_MESSAGE_BUS_SUBJECT_H
#define GRACE_MESSAGE_BUS_SUBJECT_H

#include "kernels/layer.h"

#include <stdbool.h>
#include <stddef.h>

#define BUS_SUBJECT_MAX 255u /* bytes, for subjects and patterns */
#define BUS_TOKEN_MAX 64u    /* bytes, for a group name (a single token) */

/* Each returns NULL when the input is valid, else a static reason fit for
 * an error message. NULL input is invalid. */
const char *bus_subject_check(const char *subject);
const char *bus_pattern_check(const char *pattern);
/* One token, at most BUS_TOKEN_MAX bytes: a consumer group's name. */
const char *bus_token_check(const char *token);

/* True when the subject's first token starts with '$'. */
bool bus_subject_reserved(const char *subject);
/* True when a (valid) pattern has no wildcard: it names one subject. */
bool bus_pattern_literal(const char *pattern);
/* Whether a valid subject matches a valid pattern. */
bool bus_pattern_match(const char *pattern, const char *subject);

#endif
