/* Regular expressions as PromQL and relabelling use them: RE2 syntax,
 * anchored at both ends, through PCRE2 (whose syntax is a superset of
 * what RE2 accepts for the cases label matchers use: classes, \d \w \s,
 * (?i), non-greedy repeats, alternation). Compiled patterns are
 * immutable and may be shared by threads; matching allocates per call. */
#ifndef GRACE_METRICS_RX_H
#define GRACE_METRICS_RX_H

#include "kernels/layer.h"
#include "sdk/err.h"

#include <stdbool.h>
#include <stddef.h>

#define RX_PATTERN_MAX 4096
#define RX_GROUPS_MAX 10 /* $0..$9 in replacements */

typedef struct rx rx;

/* NULL on a bad pattern (SDK_EINVAL) or out of memory (SDK_EIO), with the
 * reason in why. */
rx *rx_compile(const char *pattern, sdk_err *why);
void rx_free(rx *r);
/* Whether the whole of s matches. */
bool rx_match(const rx *r, const char *s);
/* Matches the whole of s; on a match writes `repl` with $1, ${1}, $name
 * expanded (Go's Regexp.Expand) into out and returns true. */
bool rx_expand(const rx *r, const char *s, const char *repl, char *out, size_t outlen);
/* True when the pattern is a plain string (no metacharacters): callers
 * may compare instead. *lit receives it. */
bool rx_literal(const char *pattern);

#endif
