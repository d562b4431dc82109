/* Authentication state of the main process: the hashing pool, the login
 * limits, the host and origin allow-lists, and the main database. */
#ifndef GRACE_AUTH_AUTH_H
#define GRACE_AUTH_AUTH_H

#include "serve/layer.h"

#include "sdk/config.h"
#include "sdk/pool.h"
#include "serve/auth/cookie.h"
#include "serve/auth/csrf.h"
#include "serve/auth/delegation.h"
#include "serve/auth/hosts.h"
#include "serve/auth/limiter.h"
#include "serve/auth/login.h"
#include "serve/auth/source.h"
#include "serve/auth/users.h"
#include "serve/store/store.h"

#define AUTH_CACHE_SLOTS 256
#define AUTH_CACHE_TTL_MS 10000

struct event_base;
struct auth_login; /* login.c: a login under way */

/* A checked session, so a request need not read SQLite: entries are
 * dropped at logout and whenever a password or user changes. Not used
 * with PostgreSQL: a logout on another host could not clear it. */
struct auth_cached {
	/* SipHash-128 of the token under auth_ctx.cache_key: a cache needs a
	 * tag no one can collide without the key, not SHA-256 (4k instructions
	 * a request); the database keeps the SHA-256. */
	unsigned char tag[16];
	char user[AUTH_NAME_MAX + 1];
	int role;
	int64_t checked_ms;
};

typedef struct auth_ctx {
	const grace_config *cfg;
	struct event_base *base;
	sqlite3 *db;
	grace_store *store; /* owned: users, sessions, tokens, lockout (grace.db or PostgreSQL) */
	int64_t cache_ttl_ms; /* 0 with PostgreSQL: another host may end a session */
	sdk_pool *pool;
	limiter *sources;        /* failures per source, monotonic ms (source.h) */
	limiter *unknown_names;  /* failures per name that is no account, monotonic ms */
	struct auth_login *logins; /* waiting on a timer: answered at auth_free */
	bool closing;              /* in auth_free: logins answer without waiting */
	auth_hosts hosts;   /* what Host may say */
	auth_hosts origins; /* what Origin may name */
	unsigned char cache_key[16]; /* random per process */
	unsigned char deleg_key[AUTH_DELEG_KEY]; /* random per process (delegation.h) */
	struct auth_cached cache[AUTH_CACHE_SLOTS];
} auth_ctx;

/* Opens the store ([store]: grace.db's tables, or PostgreSQL, connected
 * and migrated), the pool and the allow-list; on the first start with no
 * user, creates "admin" with a random password written once to the log. */
auth_ctx *auth_new(struct event_base *base, const grace_config *cfg, sqlite3 *db);
/* Answers the logins still under way, then frees: call before the server
 * is freed. */
void auth_free(auth_ctx *a);

size_t auth_mem_bytes(const grace_config *cfg);
bool auth_host_allowed(const auth_ctx *a, const char *host);

/* auth_session_check with a cache in front: 0 with the user, SDK_ENOTFOUND
 * (no such session, or expired) or SDK_EIO (the store failed). */
int auth_check(auth_ctx *a, const char *token, int64_t now_ms, char user[AUTH_NAME_MAX + 1],
	       int *role);
/* After a logout, a password change or a user's removal. */
void auth_cache_clear(auth_ctx *a);

#endif
