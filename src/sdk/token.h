/* The internal token: created by `grace serve` at each start, kept in a
 * 0600 file in the data directory (never on a command line), and required
 * by every kernel route but /health and /metrics. The gateway adds it;
 * clients never see it. A kernel run alone reads the same file, or the
 * one $GRACE_INTERNAL_TOKEN_FILE names. */
#ifndef GRACE_SDK_TOKEN_H
#define GRACE_SDK_TOKEN_H

#include "sdk/config.h"

#include <stddef.h>

#define SDK_TOKEN_HEADER "X-Grace-Internal-Token"
/* The user a request came from, set by the gateway after authenticating it
 * (and stripped from anything a client sends); a kernel believes them only
 * beside a valid internal token. */
#define SDK_USER_HEADER "X-Grace-User"
#define SDK_ROLE_HEADER "X-Grace-Role" /* "admin" or "user" */
/* A delegation of the user's read access, from the gateway to a kernel
 * that reads for the user later what only the main process holds
 * (serve/auth/delegation.h): sent back as `Authorization: Bearer`. */
#define SDK_DELEGATION_HEADER "X-Grace-Delegation"
#define SDK_DELEGATION_MAX 512 /* bytes of one */
#define SDK_TOKEN_FILE "internal.token"
#define SDK_TOKEN_LEN 64 /* hex characters */

/* The token file's path: $GRACE_INTERNAL_TOKEN_FILE, else DATA_DIR/internal.token. */
int sdk_token_path(const grace_config *cfg, char *buf, size_t len);
/* Reads the token into `out` (SDK_TOKEN_LEN + 1 bytes). Refuses a file
 * others may read. 0, or a negative errno. */
int sdk_token_load(const grace_config *cfg, char *out);
/* Makes a new random token and writes it to the path (mode 0600, replaced
 * atomically). 0, or a negative errno. */
int sdk_token_create(const grace_config *cfg, char *out);
/* Writes `token` (SDK_TOKEN_LEN hex characters) to the path, as above:
 * for a token made elsewhere (nodes share one: serve/node/nodes.h). */
int sdk_token_write(const grace_config *cfg, const char *token);

#endif
