/* API tokens: long-lived credentials for machines (Grafana, OpenTelemetry
 * exporters, webhooks, scripts), kept in the store's api_tokens table
 * (grace.db, or PostgreSQL: serve/store/store.h).
 *
 * - A token acts for its user (its owner), and only within its scopes: a
 *   scope "FAMILY:VERB" allows the action Action::"FAMILY.VERB" (so
 *   "metrics:read" allows metrics.read; docs/policy.md lists the actions).
 *   Its scopes are attributes of its principal, ApiToken::"ID", whose
 *   parent is its user: policies decide with them.
 * - The secret ("grace_" and 43 base64url characters, 256 random bits) is
 *   shown once, at creation; only its SHA-256 is stored (like session
 *   tokens: a hash of that much randomness cannot be reversed).
 * - Revocable (the row stays, marked, so the list shows it), optionally
 *   expiring, listed with its last use (written at most every
 *   AUTH_API_TOKEN_TOUCH_MS, so a busy token costs no write per request).
 * - A token dies with its user. */
#ifndef GRACE_AUTH_TOKENS_H
#define GRACE_AUTH_TOKENS_H

#include "serve/layer.h"

#include "serve/auth/users.h"

#include <jansson.h>
#include "sdk/err.h"

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#define AUTH_API_TOKEN_PREFIX "grace_"
#define AUTH_API_TOKEN_ID_MAX 20    /* "tok_" and 16 hex digits */
#define AUTH_API_TOKEN_NAME_MAX 64  /* what it is for: "grafana" */
#define AUTH_SCOPES_MAX 32          /* scopes of one token */
#define AUTH_SCOPE_MAX 64           /* bytes of one scope */
#define AUTH_SCOPES_TEXT_MAX (AUTH_SCOPES_MAX * (AUTH_SCOPE_MAX + 1))
#define AUTH_API_TOKENS_PER_USER 100 /* not revoked */
#define AUTH_API_TOKEN_TOUCH_MS 10000

typedef struct auth_api_token {
	char id[AUTH_API_TOKEN_ID_MAX + 1];
	char name[AUTH_API_TOKEN_NAME_MAX + 1];
	char owner[AUTH_NAME_MAX + 1];
	int role; /* the owner's, as it is now */
	/* The scopes, each followed by a NUL, in the order given. */
	char scopes[AUTH_SCOPES_TEXT_MAX];
	size_t n_scopes;
} auth_api_token;

int auth_tokens_init(sqlite3 *db, sdk_err *err);

/* Whether a presented credential is an API token (else a session token). */
bool auth_is_api_token(const char *presented);
/* "FAMILY:VERB": FAMILY of a-z, 0-9 and '-', VERB of a-z, 0-9, '_', '.'
 * and '-', each 1 to 31 bytes. */
bool auth_scope_valid(const char *scope);
/* Whether the token's scopes include the action "FAMILY.VERB". */
bool auth_token_allows(const auth_api_token *t, const char *action);

/* Creates a token for `owner` (who must exist): fills *out and `secret`
 * (AUTH_TOKEN_MAX + 1 bytes, shown once). `scopes` is a JSON array of
 * valid scopes (checked by the caller). expires_ms 0: never. 0, or
 * SDK_ENOTFOUND (no such user), SDK_EQUOTA (too many tokens) or another
 * negative sdk_status. */
int auth_token_create(grace_store *store, const char *owner, const char *name, json_t *scopes,
		      int64_t now_ms, int64_t expires_ms, auth_api_token *out, char *secret);
/* Checks a presented secret: 0 with *out, or SDK_ENOTFOUND (unknown,
 * revoked, expired, or its user gone), or SDK_EIO. Records its use. */
int auth_token_check(grace_store *store, const char *secret, int64_t now_ms, auth_api_token *out);
/* Every token of `owner` (NULL: everyone's), newest first: id, name,
 * user, scopes, created_ms, expires_ms, last_used_ms, revoked_ms. Never
 * the secret or its hash. NULL on a storage failure. */
json_t *auth_token_list(grace_store *store, const char *owner);
/* Revokes token `id` of `owner` (NULL: of anyone): 0, SDK_ENOTFOUND (none
 * such, or revoked already), or another negative sdk_status. */
int auth_token_revoke(grace_store *store, const char *id, const char *owner, int64_t now_ms);

#endif
