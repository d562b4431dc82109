#include "serve/auth/auth.h"
#include "sdk/str.h"
#include "sdk/clock.h"

#include "sdk/log.h"
#include "serve/auth/tokens.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FIRST_ADMIN "admin"

size_t auth_mem_bytes(const grace_config *cfg) { return (size_t)cfg->auth.argon2_mem_kib * 1024; }

bool auth_host_allowed(const auth_ctx *a, const char *host)
{
	return auth_hosts_has(&a->hosts, host);
}

static int first_admin(auth_ctx *a)
{
	int n = auth_user_count(a->store, AUTH_ROLE_NONE);
	if (n != 0)
		return n < 0 ? -1 : 0;
	unsigned char raw[18];
	randombytes_buf(raw, sizeof raw);
	char pw[32];
	sodium_bin2base64(pw, sizeof pw, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(raw, sizeof raw);
	char hash[AUTH_HASH_MAX];
	int rc = auth_hash(pw, a->cfg->auth.argon2_ops, auth_mem_bytes(a->cfg), hash);
	if (rc == 0)
		rc = auth_user_add(a->store, FIRST_ADMIN, hash, AUTH_ROLE_ADMIN, sdk_wall_ms());
	if (rc == SDK_ECONFLICT) {
		/* Another API process on the same PostgreSQL made it first. */
		sodium_memzero(pw, sizeof pw);
		return 0;
	}
	if (rc < 0) {
		sodium_memzero(pw, sizeof pw);
		return -1;
	}
	/* Shown once: only its hash is kept. */
	sdk_warn("first start: created user '%s' (admin) with password %s - shown only now; "
		 "change it with POST /auth/users/%s/password",
		 FIRST_ADMIN, pw, FIRST_ADMIN);
	sodium_memzero(pw, sizeof pw);
	return 0;
}

auth_ctx *auth_new(struct event_base *base, const grace_config *cfg, sqlite3 *db)
{
	sdk_err err = { "" };
	/* grace.db's tables are made with either engine: the CLI's offline
	 * commands and older files expect them. */
	if (sodium_init() < 0 || auth_store_init(db, &err) < 0 || auth_tokens_init(db, &err) < 0) {
		sdk_error("auth: cannot initialise: %s", err.msg);
		return NULL;
	}
	sdk_err serr = { { 0 } };
	grace_store *store = store_open(cfg, db, &serr);
	if (!store) {
		sdk_error("auth: cannot open the store: %s", serr.msg);
		return NULL;
	}
	auth_ctx *a = calloc(1, sizeof *a);
	if (!a) {
		store_close(store);
		return NULL;
	}
	a->cfg = cfg;
	a->base = base;
	a->db = db;
	a->store = store;
	a->cache_ttl_ms = store_is_pg(store) ? 0 : AUTH_CACHE_TTL_MS;
	randombytes_buf(a->cache_key, sizeof a->cache_key);
	randombytes_buf(a->deleg_key, sizeof a->deleg_key);
	auth_hosts_init(cfg, &a->hosts, &a->origins);
	int64_t window_ms = (int64_t)cfg->auth.login_window_s * 1000;
	a->pool = sdk_pool_new(base, cfg->auth.hash_threads, cfg->auth.hash_queue);
	a->sources = limiter_new(AUTH_SOURCES_MAX, window_ms);
	a->unknown_names = limiter_new(LOGIN_UNKNOWN_NAMES_MAX, window_ms);
	if (!a->pool || !a->sources || !a->unknown_names || first_admin(a) < 0) {
		sdk_error("auth: cannot start the hashing pool or create the first admin");
		auth_free(a);
		return NULL;
	}
	return a;
}

void auth_free(auth_ctx *a)
{
	if (!a)
		return;
	a->closing = true;
	sdk_pool_free(a->pool); /* finishes the checks under way ... */
	auth_login_close_all(a); /* ... so that every login can be answered */
	limiter_free(a->sources);
	limiter_free(a->unknown_names);
	store_close(a->store);
	free(a);
}

static struct auth_cached *cache_slot(auth_ctx *a, const unsigned char tag[16])
{
	unsigned h;
	memcpy(&h, tag, sizeof h); /* the tag is already uniform */
	return &a->cache[h % AUTH_CACHE_SLOTS];
}

int auth_check(auth_ctx *a, const char *token, int64_t now_ms, char user[AUTH_NAME_MAX + 1],
	       int *role)
{
	size_t len = strlen(token);
	if (len > AUTH_TOKEN_MAX)
		return SDK_ENOTFOUND;
	unsigned char tag[16];
	crypto_shorthash_siphashx24(tag, (const unsigned char *)token, len, a->cache_key);
	struct auth_cached *c = cache_slot(a, tag);
	/* Within the TTL the database would say the same: idle expiry is far
	 * longer, and every revocation in this process clears the cache. A
	 * zeroed slot never matches: checked_ms 0 is always out of the TTL. */
	if (c->checked_ms && !sodium_memcmp(c->tag, tag, sizeof tag) &&
	    now_ms - c->checked_ms < a->cache_ttl_ms) {
		sdk_strcpy(user, AUTH_NAME_MAX + 1, c->user);
		*role = c->role;
		return 0;
	}
	int rc = auth_session_check(a->store, token, now_ms, a->cfg->auth.session_idle_s, user, role);
	if (rc == 0) {
		memcpy(c->tag, tag, sizeof tag);
		sdk_strcpy(c->user, sizeof c->user, user);
		c->role = *role;
		c->checked_ms = now_ms > 0 ? now_ms : 1;
	}
	return rc;
}

void auth_cache_clear(auth_ctx *a) { memset(a->cache, 0, sizeof a->cache); }
