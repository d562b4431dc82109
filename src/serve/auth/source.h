/* Where a login comes from, as the limiter counts it: one key per machine
 * an attacker would have to own, not per address it can pick. Every
 * loopback address (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104) is the one
 * source "loopback", since any local process can bind any of them; an IPv4
 * address is itself; an IPv6 address is its /64, the block one host gets. */
#ifndef GRACE_AUTH_SOURCE_H
#define GRACE_AUTH_SOURCE_H

#include "serve/layer.h"

#include "serve/auth/limiter.h"

#include <stddef.h>

#define AUTH_SOURCE_KEY_MAX 64
#define AUTH_SOURCES_MAX 4096 /* sources with a running count of failures */
/* The wait before each attempt, by the source's failures in the window. */
#define AUTH_SOURCE_FREE_FAILURES 3
#define AUTH_SOURCE_DELAY_BASE_MS 250 /* then 500, 1000 ... */
#define AUTH_SOURCE_DELAY_MAX_MS 2000 /* slowed, never refused */

/* Writes the source key of `peer` (an address as text) into `out`. A peer
 * that is no address (a Unix socket: "") is one source of its own kind. */
void auth_source_key(const char *peer, char out[AUTH_SOURCE_KEY_MAX]);
/* How long an attempt from `key` waits before its password is checked:
 * the longest delay for a source the full table cannot count. */
int64_t auth_source_delay_ms(const limiter *sources, const char *key, int64_t now_ms);

#endif
