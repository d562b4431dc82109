/* Authentication state of the main process: the hashing pool, the login
 * limiter, the host allow-list, and the main database. */
#ifndef GRACE_AUTH_AUTH_H
#define GRACE_AUTH_AUTH_H

#include "auth/limiter.h"
#include "auth/pool.h"
#include "auth/users.h"
#include "sdk/config.h"

#define AUTH_COOKIE "grace_session"
#define AUTH_HOSTS_MAX 16

typedef struct auth_ctx {
	const grace_config *cfg;
	sqlite3 *db;
	wpool *pool;
	limiter *lim;
	char dummy_hash[AUTH_HASH_MAX]; /* verified for unknown users: same cost */
	char hosts[AUTH_HOSTS_MAX][128];
	size_t n_hosts;
} auth_ctx;

/* Creates the tables, the pool and the allow-list; on the first start with
 * no user, creates "admin" with a random password written once to the log. */
auth_ctx *auth_new(struct event_base *base, const grace_config *cfg, sqlite3 *db);
void auth_free(auth_ctx *a);

size_t auth_mem_bytes(const grace_config *cfg);
bool auth_host_allowed(const auth_ctx *a, const char *host);

#endif
