/* Delegations: a user's read access to their own data, handed by the
 * gateway to a kernel that works for that user later and must read what
 * only the main process holds (the research kernel reads the user's memory
 * tables: docs/research.md). Not the user's session or token: a string
 * "gdl_" + base64url(payload) + "." + base64url(HMAC-SHA-256), under a key
 * made at random by each main process and never stored, whose payload
 * names the user, one scope ("memory:read") and an expiry. Presented as
 * `Authorization: Bearer gdl_...` it acts as an API token of that user
 * holding that one scope (auth/tokens.h): the role is the user's as it is
 * at each use, a user removed since has none, and a restart of the main
 * process ends every delegation it made. */
#ifndef GRACE_AUTH_DELEGATION_H
#define GRACE_AUTH_DELEGATION_H

#include "serve/layer.h"

#include "sdk/token.h"
#include "serve/auth/tokens.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTH_DELEG_PREFIX "gdl_"
#define AUTH_DELEG_MAX SDK_DELEGATION_MAX /* bytes of a delegation */
#define AUTH_DELEG_KEY 32   /* bytes of the key */
#define AUTH_DELEG_ID "delegation" /* its principal's id (ApiToken::"delegation") */

/* Whether `token` looks like a delegation (by its prefix). */
bool auth_is_delegation(const char *token);
/* A delegation for `user` with `scope` ("FAMILY:VERB") until expires_ms,
 * into out (AUTH_DELEG_MAX + 1 bytes): 0, or -1 when a field does not
 * fit. */
int auth_deleg_mint(const unsigned char key[AUTH_DELEG_KEY], const char *user, const char *scope,
		    int64_t expires_ms, char *out);
/* Checks `token` against `key` at now_ms: 0 with out->owner, out->id,
 * out->name and its one scope filled (role left to the caller, who reads
 * the user's role as it is now), or -1 when it is malformed, altered,
 * made under another key, or expired. */
int auth_deleg_check(const unsigned char key[AUTH_DELEG_KEY], const char *token, int64_t now_ms,
		     auth_api_token *out);

#endif
