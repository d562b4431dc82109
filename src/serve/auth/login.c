/* A login's steps, each on the loop but the password check:
 *
 *   start: is the account locked? (429 at once) -> the source's wait
 *   -> check the password on the worker pool
 *   -> locked meanwhile? (429) -> right: a session / wrong: count the
 *      failure, hold the answer back by the account's delay -> answer. */
#include "serve/auth/login.h"

#include "sdk/clock.h"
#include "sdk/log.h"
#include "serve/auth/auth.h"
#include "serve/auth/lockout.h"
#include "serve/auth/source.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

/* One login: owned by the flow from auth_login_start until its callback
 * has run; the password is wiped when it is freed. */
struct auth_login {
	auth_ctx *a;
	auth_login_cb cb;
	void *arg;
	struct auth_login *prev, *next; /* in a->logins while its timer runs */
	struct event *timer;
	void (*after)(struct auth_login *j); /* what the timer leads to */
	int held_status;                     /* the answer a held-back failure gives */
	bool known, ran, ok;
	int role;
	char name[AUTH_NAME_MAX + 1];
	char password[AUTH_PASSWORD_MAX + 1];
	char stored[AUTH_HASH_MAX];  /* the account's hash */
	char scratch[AUTH_HASH_MAX]; /* the hash made for a name that is no account */
	char source[AUTH_SOURCE_KEY_MAX];
};

static int64_t window_ms(const auth_ctx *a) { return (int64_t)a->cfg->auth.login_window_s * 1000; }

static void finish(struct auth_login *j, int status, int64_t retry_after_ms, const char *token,
		   int64_t expires_ms)
{
	auth_login_result r = { .status = status,
				.retry_after_ms = retry_after_ms,
				.name = j->name,
				.role = j->role,
				.token = token,
				.expires_ms = expires_ms };
	if (status == SDK_EBUSY)
		sdk_fail(&r.err, status, "too many password checks waiting; try again");
	else if (status < 0 && status != SDK_EDENIED && status != AUTH_ELOCKED)
		sdk_fail(&r.err, status, "cannot read or write the login state");
	j->cb(&r, j->arg);
	if (j->timer)
		event_free(j->timer);
	sodium_memzero(j, sizeof *j);
	free(j);
}

/* The account's lock, 0 when there is none, or a negative sdk_status. A
 * name that is no account has its count in memory; one the full table
 * cannot count is never locked (and touches nothing). */
static int64_t locked_ms(struct auth_login *j)
{
	auth_ctx *a = j->a;
	limiter_count c;
	if (j->known) {
		int rc = auth_lockout_get(a->store, j->name, &c);
		if (rc < 0)
			return rc;
		return limiter_count_locked_ms(&c, sdk_wall_ms(), window_ms(a),
					       a->cfg->auth.login_failures_max);
	}
	int64_t now = sdk_mono_ms();
	if (limiter_get(a->unknown_names, j->name, now, &c) < 0)
		return 0;
	return limiter_count_locked_ms(&c, now, window_ms(a), a->cfg->auth.login_failures_max);
}

/* Counts a failure against the account and the source: the account's
 * count now (zero when it could not be counted). */
static unsigned count_failure(struct auth_login *j)
{
	auth_ctx *a = j->a;
	limiter_count c = { 0, 0 }, src;
	if (j->known) {
		int rc = auth_lockout_fail(a->store, j->name, sdk_wall_ms(), window_ms(a), &c);
		if (rc < 0 && rc != SDK_ENOTFOUND)
			sdk_warn("auth: cannot count a failed login of '%s' (status %d)", j->name, rc);
	} else {
		limiter_fail(a->unknown_names, j->name, sdk_mono_ms(), &c);
	}
	limiter_fail(a->sources, j->source, sdk_mono_ms(), &src);
	return c.failures;
}

static void unlink_login(struct auth_login *j)
{
	if (j->prev)
		j->prev->next = j->next;
	else if (j->a->logins == j)
		j->a->logins = j->next;
	if (j->next)
		j->next->prev = j->prev;
	j->prev = j->next = NULL;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct auth_login *j = arg;
	unlink_login(j);
	j->after(j);
}

/* Runs `after` in `ms`, or now when no timer can be made. */
static void wait_then(struct auth_login *j, int64_t ms, void (*after)(struct auth_login *))
{
	auth_ctx *a = j->a;
	j->after = after;
	if (!j->timer)
		j->timer = evtimer_new(a->base, on_timer, j);
	if (!j->timer) {
		after(j);
		return;
	}
	j->next = a->logins;
	if (a->logins)
		a->logins->prev = j;
	a->logins = j;
	struct timeval tv = sdk_ms_tv((uint64_t)ms);
	evtimer_add(j->timer, &tv);
}

static void answer_held(struct auth_login *j) { finish(j, j->held_status, 0, NULL, 0); }

static void check_work(void *arg)
{
	struct auth_login *j = arg;
	const grace_config *cfg = j->a->cfg;
	j->ran = true;
	/* A name that is no account costs the same as a wrong password: one
	 * Argon2id computation at the configured cost either way. */
	if (j->known) {
		j->ok = auth_verify(j->stored, j->password);
	} else {
		auth_hash(j->password, cfg->auth.argon2_ops, auth_mem_bytes(cfg), j->scratch);
		j->ok = false;
	}
}

static void check_done(void *arg)
{
	struct auth_login *j = arg;
	auth_ctx *a = j->a;
	if (!j->ran) { /* the pool stopped first */
		finish(j, SDK_EBUSY, 0, NULL, 0);
		return;
	}
	/* Failures that finished meanwhile may have locked the account: then
	 * this answer, right or wrong, says only that. */
	int64_t locked = locked_ms(j);
	if (locked != 0) {
		finish(j, locked < 0 ? (int)locked : AUTH_ELOCKED, locked < 0 ? 0 : locked, NULL, 0);
		return;
	}
	if (!j->ok) {
		unsigned failures = count_failure(j);
		int64_t delay = limiter_delay_ms(failures, LOGIN_FREE_FAILURES, LOGIN_DELAY_BASE_MS,
						 LOGIN_DELAY_MAX_MS);
		j->held_status = SDK_EDENIED;
		if (delay > 0 && !a->closing)
			wait_then(j, delay, answer_held);
		else
			answer_held(j);
		return;
	}
	auth_lockout_clear(a->store, j->name); /* a stale count at worst, were it to fail */
	char token[AUTH_TOKEN_MAX + 1];
	int64_t expires;
	int rc = auth_session_create(a->store, j->name, sdk_wall_ms(), a->cfg->auth.session_max_s,
				     token, &expires);
	finish(j, rc == SDK_EFULL ? SDK_EFULL : rc < 0 ? SDK_EIO : 0, 0, rc < 0 ? NULL : token, expires);
	sodium_memzero(token, sizeof token);
}

static void submit(struct auth_login *j)
{
	if (j->a->closing || sdk_pool_submit(j->a->pool, check_work, check_done, j) < 0)
		finish(j, SDK_EBUSY, 0, NULL, 0);
}

void auth_login_start(auth_ctx *a, const char *name, const char *password, const char *peer,
		      auth_login_cb cb, void *arg)
{
	struct auth_login *j = calloc(1, sizeof *j);
	if (!j) {
		auth_login_result r = { .status = SDK_EBUSY, .name = name };
		sdk_fail(&r.err, SDK_EBUSY, "out of memory");
		cb(&r, arg);
		return;
	}
	j->a = a;
	j->cb = cb;
	j->arg = arg;
	j->held_status = SDK_EBUSY;
	if (strlen(name) > AUTH_NAME_MAX || strlen(password) > AUTH_PASSWORD_MAX) {
		finish(j, SDK_EDENIED, 0, NULL, 0); /* no account has such a name or password */
		return;
	}
	strcpy(j->name, name);
	strcpy(j->password, password);
	auth_source_key(peer, j->source);
	int rc = auth_name_valid(name) ? auth_user_get(a->store, name, j->stored, &j->role)
				       : SDK_ENOTFOUND;
	if (rc < 0 && rc != SDK_ENOTFOUND) {
		finish(j, SDK_EIO, 0, NULL, 0);
		return;
	}
	j->known = rc == 0;
	int64_t locked = locked_ms(j);
	if (locked != 0) {
		finish(j, locked < 0 ? (int)locked : AUTH_ELOCKED, locked < 0 ? 0 : locked, NULL, 0);
		return;
	}
	int64_t delay = auth_source_delay_ms(a->sources, j->source, sdk_mono_ms());
	if (delay > 0)
		wait_then(j, delay, submit);
	else
		submit(j);
}

int64_t auth_account_locked_ms(auth_ctx *a, const char *name)
{
	limiter_count c;
	int rc = auth_lockout_get(a->store, name, &c);
	if (rc < 0)
		return rc;
	return limiter_count_locked_ms(&c, sdk_wall_ms(), window_ms(a),
				       a->cfg->auth.login_failures_max);
}

void auth_account_failed(auth_ctx *a, const char *name)
{
	limiter_count c;
	int rc = auth_lockout_fail(a->store, name, sdk_wall_ms(), window_ms(a), &c);
	if (rc < 0 && rc != SDK_ENOTFOUND)
		sdk_warn("auth: cannot count a wrong password of '%s' (status %d)", name, rc);
}

void auth_login_close_all(auth_ctx *a)
{
	while (a->logins) {
		struct auth_login *j = a->logins;
		unlink_login(j);
		event_del(j->timer);
		/* A failure held back is answered now; a login still waiting for
		 * its turn was never checked. */
		finish(j, j->held_status, 0, NULL, 0);
	}
}
