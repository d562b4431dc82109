/* The research kernel's secret redactor (pure): everything an
 * investigation gathers passes through it before it is stored or sent to
 * a model. It replaces with "[REDACTED]":
 *   - the credentials of an Authorization header ("Bearer X", "Basic X");
 *   - the value after a secret-sounding key (password, passwd, pwd,
 *     secret, token, api_key, apikey, access_key, private_key, credential,
 *     authorization, cookie, session) and "=", ":" or a JSON colon;
 *   - JSON Web Tokens (three base64url parts, the first "eyJ");
 *   - well-known key shapes (sk-..., ghp_..., github_pat_..., xoxb-...,
 *     AKIA...);
 *   - a run of 32 or more hex digits, or of 32 or more base64 characters
 *     mixing upper case, lower case and digits (a key's length).
 * It errs toward redacting: a trace id in free text is redacted too (the
 * evidence keeps its ids in its citation, which this does not touch).
 * Unit-tested in tests/unit/test_research.c. */
#ifndef GRACE_KERNELS_RESEARCH_REDACT_H
#define GRACE_KERNELS_RESEARCH_REDACT_H

#include "kernels/layer.h"

#include <jansson.h>
#include <stddef.h>

#define RS_REDACTED "[REDACTED]"

/* A new string (the caller frees it) with the secrets of `in` replaced;
 * *count (may be NULL) gets how many. NULL only when out of memory. */
char *rs_redact(const char *in, size_t *count);

/* Redacts every string of `v` in place, and the whole value of a key that
 * names a secret (an object's "password": {...} goes as "[REDACTED]").
 * Returns how many were redacted. */
size_t rs_redact_json(json_t *v);

#endif
