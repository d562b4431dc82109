/* Role notices to the kernels (user_roles.h says what and why). Everything
 * runs on the loop: the journal's statements touch a few rows. */
#include "serve/api/api.h"
#include "serve/api/user_roles.h"

#include "sdk/call.h"
#include "sdk/db.h"
#include "sdk/log.h"
#include "sdk/owner_roles.h"
#include "serve/auth/users.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UR_RETRY_MS 2000    /* a kernel not told yet is tried again after this */
#define UR_CALL_TIMEOUT_MS 10000
#define UR_WAIT_MS 5000     /* the longest a governance action waits for the kernels */

/* The kernels that keep things acting later as their owner; a bit each. */
static const char *const ur_kernels[] = { "scheduler", "workflow", "state_machine" };
#define UR_N (sizeof ur_kernels / sizeof *ur_kernels)
#define UR_ALL ((1u << UR_N) - 1)

static const char ur_schema[] = "CREATE TABLE IF NOT EXISTS user_role_notices ("
				" name TEXT PRIMARY KEY,"
				" version INTEGER NOT NULL,"
				" todo INTEGER NOT NULL) WITHOUT ROWID;";

typedef struct ur_part {
	user_roles *r;
	unsigned bit;
	bool synced;  /* told everything pending since it last became ready */
	bool running; /* a call in flight */
	bool again;   /* something changed meanwhile: send once more */
	unsigned gen, sent_gen; /* the kernel's starts seen; the one the call went to */
	bool sent_full;         /* the call carried a full page: more may follow */
	json_t *sent; /* [[name, version], ...] of the call in flight */
} ur_part;

typedef struct ur_waiter {
	user_roles *r;
	char name[AUTH_NAME_MAX + 1];
	struct event *timer;
	user_roles_ready_cb ready;
	void *arg;
	struct ur_waiter *next;
} ur_waiter;

struct user_roles {
	api_ctx *api;
	sqlite3 *db;
	sdk_caller *caller; /* "grace": the kernels by name */
	struct event *retry;
	ur_part parts[UR_N];
	ur_waiter *waiters;
};

static void send_part(ur_part *p);

static void retry_later(user_roles *r)
{
	if (evtimer_pending(r->retry, NULL))
		return;
	struct timeval tv = { UR_RETRY_MS / 1000, (UR_RETRY_MS % 1000) * 1000 };
	evtimer_add(r->retry, &tv);
}

/* The kernels (bits) that have not acknowledged the notice of `name`. */
static unsigned todo_of(user_roles *r, const char *name)
{
	sqlite3_stmt *st;
	unsigned todo = UR_ALL; /* unreadable: not known to be done */
	if (sqlite3_prepare_v2(r->db, "SELECT todo FROM user_role_notices WHERE name = ?1", -1, &st,
			       NULL) != SQLITE_OK)
		return todo;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW)
		todo = (unsigned)sqlite3_column_int(st, 0) & UR_ALL;
	else if (step == SQLITE_DONE)
		todo = 0;
	sqlite3_finalize(st);
	return todo;
}

static bool any_todo(user_roles *r, unsigned bit)
{
	sqlite3_stmt *st;
	bool any = true;
	if (sqlite3_prepare_v2(r->db, "SELECT 1 FROM user_role_notices WHERE todo & ?1 LIMIT 1", -1,
			       &st, NULL) != SQLITE_OK)
		return any;
	sqlite3_bind_int(st, 1, (int)bit);
	any = sqlite3_step(st) != SQLITE_DONE;
	sqlite3_finalize(st);
	return any;
}

static json_t *pending_names(unsigned todo)
{
	json_t *a = json_array();
	for (size_t i = 0; i < UR_N; i++)
		if (todo & (1u << i))
			json_array_append_new(a, json_string(ur_kernels[i]));
	return a;
}

/* Unlinks and frees `w`, then tells its owner. */
static void waiter_end(ur_waiter *w, json_t *pending)
{
	user_roles *r = w->r;
	for (ur_waiter **pp = &r->waiters; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	user_roles_ready_cb ready = w->ready;
	void *arg = w->arg;
	if (w->timer)
		event_free(w->timer);
	free(w);
	ready(arg, pending);
}

/* Tells every waiter whose notice every kernel has acknowledged. A ready
 * callback may add or end waiters: the scan starts over after each. */
static void waiters_poke(user_roles *r)
{
	for (bool again = true; again;) {
		again = false;
		for (ur_waiter *w = r->waiters; w; w = w->next)
			if (todo_of(r, w->name) == 0) {
				waiter_end(w, NULL);
				again = true;
				break;
			}
	}
}

static void on_waiter_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	ur_waiter *w = arg;
	unsigned todo = todo_of(w->r, w->name);
	sdk_warn("user roles: the new role of '%s' is not acknowledged yet by every kernel; "
		 "they are told again until they do, and act for no one at their next start "
		 "until then", w->name);
	waiter_end(w, pending_names(todo));
}

/* Strikes `bit` out of the notices a kernel acknowledged, unless a newer
 * change came meanwhile (its version differs: it is still to send). */
static void acknowledged(user_roles *r, unsigned bit, const json_t *sent)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(r->db,
			       "UPDATE user_role_notices SET todo = todo & ~?1"
			       " WHERE name = ?2 AND version = ?3",
			       -1, &st, NULL) != SQLITE_OK) {
		sdk_warn("user roles: cannot update the journal: %s", sqlite3_errmsg(r->db));
		return;
	}
	size_t i;
	json_t *e;
	json_array_foreach(sent, i, e) {
		sqlite3_reset(st);
		sqlite3_bind_int(st, 1, (int)bit);
		sqlite3_bind_text(st, 2, json_string_value(json_array_get(e, 0)), -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 3, json_integer_value(json_array_get(e, 1)));
		if (sqlite3_step(st) != SQLITE_DONE)
			sdk_warn("user roles: cannot update the journal: %s", sqlite3_errmsg(r->db));
	}
	sqlite3_finalize(st);
}

static void on_sent(int status, const char *body, size_t len, double ms, const char *error,
		    void *arg)
{
	(void)ms;
	ur_part *p = arg;
	user_roles *r = p->r;
	const char *kernel = ur_kernels[p - r->parts];
	p->running = false;
	json_t *sent = p->sent;
	p->sent = NULL;
	if (status != 200) {
		sdk_warn("user roles: the %s kernel was not told of role changes (%d %.*s%s); trying "
			 "again", kernel, status, (int)(len < 100 ? len : 100), body ? body : "",
			 error ? error : "");
		json_decref(sent);
		retry_later(r);
		return;
	}
	acknowledged(r, p->bit, sent);
	bool full = p->sent_full;
	json_decref(sent);
	/* Not when the kernel started again meanwhile: the new one waits. */
	if (p->sent_gen == p->gen && !full)
		p->synced = true;
	waiters_poke(r);
	if (p->again || full) { /* a change came while this was in flight, or more to send */
		p->again = false;
		send_part(p);
	}
}

/* Sends `p`'s kernel every notice it has not acknowledged (at most
 * SDK_OWNER_ROLES_MAX; the rest follow), with each user's role as the
 * user store says now. */
static void send_part(ur_part *p)
{
	user_roles *r = p->r;
	const char *kernel = ur_kernels[p - r->parts];
	if (p->running) {
		p->again = true;
		return;
	}
	sup_kernel *k = sup_find(r->api->sup, kernel);
	if (!k) { /* not configured: nothing of it acts */
		sqlite3_stmt *st;
		if (sqlite3_prepare_v2(r->db, "UPDATE user_role_notices SET todo = todo & ~?1", -1, &st,
				       NULL) == SQLITE_OK) {
			sqlite3_bind_int(st, 1, (int)p->bit);
			sqlite3_step(st);
		}
		sqlite3_finalize(st);
		p->synced = true;
		waiters_poke(r);
		return;
	}
	bool pending = any_todo(r, p->bit);
	if (p->synced && !pending)
		return;
	if (k->state != SUP_READY) { /* told when it becomes ready (on_change) */
		if (pending)
			retry_later(r);
		return;
	}
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(r->db,
			       "SELECT name, version FROM user_role_notices WHERE todo & ?1"
			       " ORDER BY version LIMIT ?2",
			       -1, &st, NULL) != SQLITE_OK) {
		sdk_warn("user roles: cannot read the journal: %s", sqlite3_errmsg(r->db));
		retry_later(r);
		return;
	}
	sqlite3_bind_int(st, 1, (int)p->bit);
	sqlite3_bind_int(st, 2, SDK_OWNER_ROLES_MAX);
	json_t *roles = json_array(), *sent = json_array();
	size_t rows = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		rows++;
		const char *name = (const char *)sqlite3_column_text(st, 0);
		int64_t version = sqlite3_column_int64(st, 1);
		int role;
		if (!name || !auth_name_valid(name))
			continue;
		/* A user gone (or unreadable) gets the least: their items are
		 * being purged, and must not act as an admin meanwhile. */
		const char *rn = auth_user_get(r->api->auth->store, name, NULL, &role) == 0
					 ? auth_role_name(role)
					 : "user";
		json_array_append_new(roles, json_pack("{s:s, s:s, s:I}", "owner", name, "role", rn,
						       "version", (json_int_t)version));
		json_array_append_new(sent, json_pack("[s, I]", name, (json_int_t)version));
	}
	sqlite3_finalize(st);
	/* A full page: more may follow, and the kernel is not synced before. */
	json_t *body = json_pack("{s:o, s:b}", "roles", roles, "complete", rows < SDK_OWNER_ROLES_MAX);
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	p->running = true;
	p->sent = sent;
	p->sent_gen = p->gen;
	p->sent_full = rows >= SDK_OWNER_ROLES_MAX;
	if (!text || sdk_call(r->caller, kernel, "PUT", SDK_OWNER_ROLES_PATH, text, strlen(text),
			      NULL, UR_CALL_TIMEOUT_MS, on_sent, p) < 0) {
		p->running = false;
		p->sent = NULL;
		json_decref(sent);
		sdk_warn("user roles: cannot call the %s kernel; trying again", kernel);
		retry_later(r);
	}
	free(text);
}

static void send_all(user_roles *r)
{
	for (size_t i = 0; i < UR_N; i++)
		send_part(&r->parts[i]);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	send_all(arg);
}

int api_user_role_begin(api_ctx *api, const char *name)
{
	user_roles *r = api->ur;
	sqlite3_stmt *st = NULL;
	/* The versions only grow: a row stays when every kernel is told. */
	if (r && auth_name_valid(name) &&
	    sqlite3_prepare_v2(r->db,
			       "INSERT INTO user_role_notices (name, version, todo) VALUES (?1,"
			       " (SELECT COALESCE(MAX(version), 0) + 1 FROM user_role_notices), ?2)"
			       " ON CONFLICT (name) DO UPDATE SET version = excluded.version,"
			       " todo = excluded.todo",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, (int)UR_ALL);
		if (sqlite3_step(st) == SQLITE_DONE) {
			sqlite3_finalize(st);
			return 0;
		}
	}
	sdk_error("user roles: cannot journal the role change of '%s': %s", name,
		  r ? sqlite3_errmsg(r->db) : "the service is not running");
	sqlite3_finalize(st);
	return -1;
}

void api_user_role_wait(api_ctx *api, const char *name, user_roles_ready_cb ready, void *arg)
{
	user_roles *r = api->ur;
	ur_waiter *w = r ? calloc(1, sizeof *w) : NULL;
	if (w)
		w->timer = evtimer_new(api->base, on_waiter_timeout, w);
	if (!w || !w->timer) {
		free(w);
		if (r)
			send_all(r);
		ready(arg, pending_names(r ? todo_of(r, name) : UR_ALL));
		return;
	}
	w->r = r;
	snprintf(w->name, sizeof w->name, "%s", name);
	w->ready = ready;
	w->arg = arg;
	w->next = r->waiters;
	r->waiters = w;
	struct timeval tv = { UR_WAIT_MS / 1000, (UR_WAIT_MS % 1000) * 1000 };
	evtimer_add(w->timer, &tv);
	send_all(r);      /* may be acknowledged at once (no such kernel) */
	waiters_poke(r);
}

void api_user_roles_on_change(api_ctx *api, const sup_change *c)
{
	user_roles *r = api->ur;
	if (!r || c->to != SUP_READY)
		return;
	for (size_t i = 0; i < UR_N; i++)
		if (!strcmp(c->k->cfg->name, ur_kernels[i])) {
			/* A new process waits for us; an old one is told again, harmlessly. */
			r->parts[i].synced = false;
			r->parts[i].gen++;
			send_part(&r->parts[i]);
		}
}

user_roles *user_roles_new(api_ctx *api, const char *token)
{
	user_roles *r = calloc(1, sizeof *r);
	sdk_err err;
	if (!r)
		return NULL;
	r->api = api;
	if (sdk_db_open(api->cfg->data_dir, "grace", &r->db, &err) < 0 ||
	    sdk_db_exec(r->db, ur_schema, &err) < 0) {
		sdk_error("user roles: cannot open the journal: %s", err.msg);
		user_roles_free(r);
		return NULL;
	}
	r->caller = sdk_caller_new(api->base, "grace", token, sup_resolve, api->sup);
	r->retry = evtimer_new(api->base, on_retry, r);
	if (!r->caller || !r->retry) {
		sdk_error("user roles: out of memory");
		user_roles_free(r);
		return NULL;
	}
	for (size_t i = 0; i < UR_N; i++)
		r->parts[i] = (ur_part){ .r = r, .bit = 1u << i };
	api->ur = r;
	send_all(r); /* the kernels are not ready yet: each is told when it is */
	return r;
}

void user_roles_free(user_roles *r)
{
	if (!r)
		return;
	while (r->waiters)
		waiter_end(r->waiters, NULL); /* answered now: the journal keeps the rest */
	sdk_caller_free(r->caller);      /* its calls end without calling back */
	for (size_t i = 0; i < UR_N; i++)
		json_decref(r->parts[i].sent);
	if (r->retry)
		event_free(r->retry);
	if (r->db)
		sqlite3_close(r->db);
	if (r->api && r->api->ur == r)
		r->api->ur = NULL;
	free(r);
}
