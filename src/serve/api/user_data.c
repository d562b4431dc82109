/* The purge of a user's data (user_data.h says what and why). Everything
 * here runs on the loop; the slow parts run elsewhere: the memory purge on
 * the memory service's workers, the chat purge in small transactions one
 * loop turn apart, the librarian's on the librarian. */
#include "serve/api/api.h"

#include "sdk/call.h"
#include "sdk/token.h"
#include "sdk/clock.h"
#include "sdk/db.h"
#include "sdk/log.h"
#include "serve/chat/store.h"
#include "serve/memory/service.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The gateway tells kernels the caller's role with SDK_CALLER_*, from the
 * role auth gave the request. */
_Static_assert((int)AUTH_ROLE_ADMIN == (int)SDK_CALLER_ADMIN && (int)AUTH_ROLE_USER == (int)SDK_CALLER_USER,
	       "auth roles and kernel caller roles must agree");

#define UD_RETRY_MS 2000          /* a failed part is tried again after this */
#define UD_CHAT_MESSAGES_STEP 500 /* chat messages deleted per loop turn */
#define UD_LIBRARY_TIMEOUT_MS 10000
#define UD_KERNEL_TIMEOUT_MS 10000
#define UD_ACTOR "grace"          /* who the librarian is told acts */
#define UD_WAIT_MS 5000           /* the longest a new user's creation waits */

enum {
	PART_MEMORY = 1,
	PART_CHAT = 2,
	PART_LIBRARY = 4,
	PART_SCHEDULER = 8,
	PART_WORKFLOW = 16,
	PART_STATE_MACHINE = 32,
	PART_ALL = 63
};
/* The parts kept in this process: done in milliseconds unless the disk is
 * in trouble, so a new user's creation always waits for them. */
enum { PART_LOCAL = PART_MEMORY | PART_CHAT };

static const struct {
	unsigned part;
	const char *name;
} part_names[] = { { PART_MEMORY, "memory" }, { PART_CHAT, "chat" }, { PART_LIBRARY, "librarian" },
		    { PART_SCHEDULER, "scheduler" }, { PART_WORKFLOW, "workflow" },
		    { PART_STATE_MACHINE, "state_machine" } };

/* The routes that show data of each part: refused to a user of the name
 * until the part is done. Chat reads memory rows, so it waits for both. */
static const struct {
	unsigned parts;
	const char *prefix;
} gates[] = {
	{ PART_MEMORY, "/memory" },
	{ PART_MEMORY | PART_CHAT, "/chat" },
	{ PART_LIBRARY, "/librarian" },
	{ PART_LIBRARY, "/kernels/librarian" },
	{ PART_LIBRARY, "/kernels/librarian_kernel" },
	{ PART_SCHEDULER, "/scheduler" },
	{ PART_SCHEDULER, "/kernels/scheduler" },
	{ PART_WORKFLOW, "/workflow" },
	{ PART_WORKFLOW, "/kernels/workflow" },
	{ PART_STATE_MACHINE, "/state-machine" },
	{ PART_STATE_MACHINE, "/kernels/state_machine" },
};

static const char ud_schema[] = "CREATE TABLE IF NOT EXISTS user_purges ("
				" name TEXT PRIMARY KEY,"
				" since_ms INTEGER NOT NULL,"
				" todo INTEGER NOT NULL) WITHOUT ROWID;";

struct pending {
	user_data *u;
	char name[AUTH_NAME_MAX + 1];
	unsigned todo;    /* parts not done yet (running ones included) */
	unsigned running; /* parts in flight */
	unsigned again;   /* asked for again while running: run once more */
	int64_t since_ms;
	struct event *chat_step;
	struct pending *next;
};

/* One api_user_data_purge_wait: told once, then freed. */
struct waiter {
	user_data *u;
	char name[AUTH_NAME_MAX + 1];
	struct event *timer;
	user_data_ready_cb ready;
	void *arg;
	struct waiter *next;
};

struct user_data {
	api_ctx *api;
	sqlite3 *db; /* DATA_DIR/grace.db, a connection of our own */
	sdk_caller *caller; /* to the librarian, by name */
	struct event *retry;
	struct pending *list;
	struct waiter *waiters;
};

static const char *part_name(unsigned part)
{
	for (size_t i = 0; i < sizeof part_names / sizeof *part_names; i++)
		if (part_names[i].part == part)
			return part_names[i].name;
	return "?";
}

static struct pending *find(const user_data *u, const char *name)
{
	for (struct pending *p = u->list; p; p = p->next)
		if (!strcmp(p->name, name))
			return p;
	return NULL;
}

/* Unlinks and frees `w`, then tells its owner. */
static void waiter_end(struct waiter *w)
{
	user_data *u = w->u;
	for (struct waiter **pp = &u->waiters; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	user_data_ready_cb ready = w->ready;
	void *arg = w->arg;
	if (w->timer)
		event_free(w->timer);
	free(w);
	ready(arg);
}

static void on_waiter_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct waiter *w = arg;
	sdk_warn("user data: the purge of '%s' takes longer than %d ms; its routes wait for it",
		 w->name, UD_WAIT_MS);
	waiter_end(w);
}

/* Whether a waiter for `p` is answered: nothing local is left, and no
 * kernel's part is in flight. A kernel's part that failed (the kernel
 * down or not ready yet) is retried in the background and holds nobody:
 * its routes refuse the user meanwhile. One in flight normally ends in
 * milliseconds, and waiting for it spares a user created and served at
 * once a 503 from a purge that had nothing to remove. */
static bool waiter_done(const struct pending *p)
{
	return !p || (!(p->todo & PART_LOCAL) && !(p->running & p->todo));
}

/* Tells every waiter whose name waiter_done. A ready callback may add or
 * end waiters: the scan starts over after each. */
static void waiters_poke(user_data *u)
{
	for (bool again = true; again;) {
		again = false;
		for (struct waiter *w = u->waiters; w; w = w->next) {
			if (waiter_done(find(u, w->name))) {
				waiter_end(w);
				again = true;
				break;
			}
		}
	}
}

/* The journal: a failure to write it is logged, and the purge goes on. */
static void journal_write(user_data *u, const struct pending *p)
{
	sqlite3_stmt *st = NULL;
	const char *sql = p->todo ? "INSERT INTO user_purges (name, since_ms, todo) VALUES (?1, ?2, ?3)"
				    " ON CONFLICT (name) DO UPDATE SET todo = excluded.todo"
				  : "DELETE FROM user_purges WHERE name = ?1";
	if (sqlite3_prepare_v2(u->db, sql, -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, p->name, -1, SQLITE_STATIC);
		if (p->todo) {
			sqlite3_bind_int64(st, 2, p->since_ms);
			sqlite3_bind_int(st, 3, (int)p->todo);
		}
		if (sqlite3_step(st) == SQLITE_DONE) {
			sqlite3_finalize(st);
			return;
		}
	}
	sdk_warn("user data: cannot write the purge journal for '%s': %s", p->name,
		 sqlite3_errmsg(u->db));
	sqlite3_finalize(st);
}

static void pending_free(user_data *u, struct pending *p)
{
	for (struct pending **pp = &u->list; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	if (p->chat_step)
		event_free(p->chat_step);
	free(p);
	waiters_poke(u);
}

static void run(struct pending *p);

static void retry_later(user_data *u)
{
	if (evtimer_pending(u->retry, NULL))
		return;
	struct timeval tv = { UD_RETRY_MS / 1000, (UD_RETRY_MS % 1000) * 1000 };
	evtimer_add(u->retry, &tv);
}

/* A part ended: done (status 0) or to be tried again. */
static void part_end(struct pending *p, unsigned part, int status, const char *why)
{
	user_data *u = p->u;
	p->running &= ~part;
	if (status == 0 && !(p->again & part)) {
		p->todo &= ~part;
		journal_write(u, p);
	}
	p->again &= ~part;
	if (status != 0) {
		sdk_warn("user data: purging '%s': %s: %s; trying again", p->name, part_name(part),
			 why ? why : "failed");
		retry_later(u);
	} else if (p->todo & part) {
		run(p); /* asked for again meanwhile; it may end the purge and free p */
		return;
	}
	if (p->todo == 0 && p->running == 0) {
		sdk_info("user data: everything kept under '%s' is purged", p->name);
		char resource[AUTH_NAME_MAX + 8];
		snprintf(resource, sizeof resource, "user/%s", p->name);
		ob_audit(u->api->ob, UD_ACTOR, "user.data_purged", resource, "ok", NULL, NULL);
		pending_free(u, p); /* (tells its waiters) */
	} else if (waiter_done(p)) {
		waiters_poke(u); /* p lives on: a part failed, and is retried */
	}
}

static void on_memory_purged(int status, const sdk_err *e, void *arg)
{
	part_end(arg, PART_MEMORY, status, e ? e->msg : NULL);
}

static void memory_run(struct pending *p)
{
	mem_service *ms = api_memory_service(p->u->api->mem);
	if (!ms) {
		part_end(p, PART_MEMORY, SDK_EIO, "the memory store is not open");
		return;
	}
	mem_service_purge(ms, p->name, on_memory_purged, p);
}

/* One small transaction per loop turn, until nothing is left. */
static void on_chat_step(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct pending *p = arg;
	sdk_err e = { "" };
	int rc = chat_store_purge_owner(chat_db(p->u->api->chat), p->name, UD_CHAT_MESSAGES_STEP,
					&e);
	if (rc == 1) {
		struct timeval now = { 0, 0 };
		evtimer_add(p->chat_step, &now);
		return;
	}
	part_end(p, PART_CHAT, rc < 0 ? rc : 0, e.msg);
}

static void chat_run(struct pending *p)
{
	if (!p->u->api->chat) { /* no chat, no chat.db: nothing to remove */
		part_end(p, PART_CHAT, 0, NULL);
		return;
	}
	if (!p->chat_step && !(p->chat_step = evtimer_new(p->u->api->base, on_chat_step, p))) {
		part_end(p, PART_CHAT, SDK_EIO, "out of memory");
		return;
	}
	struct timeval now = { 0, 0 };
	evtimer_add(p->chat_step, &now);
}

static void on_library_done(int status, const char *body, size_t len, double latency_ms,
			    const char *error, void *arg)
{
	(void)latency_ms;
	char why[160] = "";
	if (status == 0)
		snprintf(why, sizeof why, "no answer from the librarian: %s", error ? error : "");
	else if (status != 200)
		snprintf(why, sizeof why, "the librarian answered %d: %.*s", status,
			 (int)(len < 100 ? len : 100), body ? body : "");
	part_end(arg, PART_LIBRARY, status == 200 ? 0 : SDK_EIO, why);
}

static void library_run(struct pending *p)
{
	user_data *u = p->u;
	sup_kernel *k = sup_find(u->api->sup, "librarian");
	if (!k) { /* no librarian here: no documents to release */
		part_end(p, PART_LIBRARY, 0, NULL);
		return;
	}
	if (k->state != SUP_READY) {
		part_end(p, PART_LIBRARY, SDK_EBUSY, "the librarian is not ready");
		return;
	}
	char path[AUTH_NAME_MAX + 16];
	snprintf(path, sizeof path, "/owners/%s", p->name); /* a valid name needs no encoding */
	static const char *const headers[] = { SDK_USER_HEADER, UD_ACTOR, SDK_ROLE_HEADER, "admin",
					       NULL };
	if (sdk_call(u->caller, "librarian", "DELETE", path, NULL, 0, headers,
		     UD_LIBRARY_TIMEOUT_MS, on_library_done, p) < 0)
		part_end(p, PART_LIBRARY, SDK_EIO, "cannot call the librarian");
}

/* The kernels whose items act later as their owner: the user's are
 * deleted (a scheduler job, a workflow run, a state machine instance
 * never acts for anyone but its creator, nor for a new user who takes the
 * name), by `DELETE /owners/NAME` as the main process. */
static void kernel_done(struct pending *p, unsigned part, int status, const char *body,
			size_t len, const char *error)
{
	char why[160] = "";
	if (status == 0)
		snprintf(why, sizeof why, "no answer from the %s kernel: %s", part_name(part),
			 error ? error : "");
	else if (status != 200)
		snprintf(why, sizeof why, "the %s kernel answered %d: %.*s", part_name(part), status,
			 (int)(len < 100 ? len : 100), body ? body : "");
	part_end(p, part, status == 200 ? 0 : SDK_EIO, why);
}

static void on_scheduler_done(int status, const char *body, size_t len, double latency_ms,
			      const char *error, void *arg)
{
	(void)latency_ms;
	kernel_done(arg, PART_SCHEDULER, status, body, len, error);
}

static void on_workflow_done(int status, const char *body, size_t len, double latency_ms,
			     const char *error, void *arg)
{
	(void)latency_ms;
	kernel_done(arg, PART_WORKFLOW, status, body, len, error);
}

static void on_state_machine_done(int status, const char *body, size_t len, double latency_ms,
				  const char *error, void *arg)
{
	(void)latency_ms;
	kernel_done(arg, PART_STATE_MACHINE, status, body, len, error);
}

static void kernel_run(struct pending *p, unsigned part, sdk_call_cb done)
{
	user_data *u = p->u;
	const char *kernel = part_name(part);
	sup_kernel *k = sup_find(u->api->sup, kernel);
	if (!k) { /* no such kernel here: nothing of the user's in it */
		part_end(p, part, 0, NULL);
		return;
	}
	if (k->state != SUP_READY) {
		part_end(p, part, SDK_EBUSY, "the kernel is not ready");
		return;
	}
	char path[AUTH_NAME_MAX + 16];
	snprintf(path, sizeof path, "/owners/%s", p->name); /* a valid name needs no encoding */
	if (sdk_call(u->caller, kernel, "DELETE", path, NULL, 0, NULL, UD_KERNEL_TIMEOUT_MS, done,
		     p) < 0)
		part_end(p, part, SDK_EIO, "cannot call the kernel");
}

static void scheduler_run(struct pending *p) { kernel_run(p, PART_SCHEDULER, on_scheduler_done); }
static void workflow_run(struct pending *p) { kernel_run(p, PART_WORKFLOW, on_workflow_done); }
static void state_machine_run(struct pending *p)
{
	kernel_run(p, PART_STATE_MACHINE, on_state_machine_done);
}

/* Starts every part that is to do and not running. A runner may end its
 * part at once, and the last one the whole purge (freeing `p`): nothing
 * touches `p` after the last start. */
static void run(struct pending *p)
{
	static void (*const runners[])(struct pending *) = { memory_run,    chat_run,
							      library_run,   scheduler_run,
							      workflow_run,  state_machine_run };
	static const unsigned parts[] = { PART_MEMORY,    PART_CHAT,     PART_LIBRARY,
					  PART_SCHEDULER, PART_WORKFLOW, PART_STATE_MACHINE };
	unsigned start = p->todo & ~p->running;
	p->running |= start;
	for (size_t i = 0; i < sizeof parts / sizeof *parts; i++) {
		if (!(start & parts[i]))
			continue;
		start &= ~parts[i];
		bool last = start == 0;
		runners[i](p);
		if (last)
			return;
	}
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	user_data *u = arg;
	/* Collect first: a run may free its entry. */
	size_t n = 0;
	for (struct pending *p = u->list; p; p = p->next)
		n++;
	char(*names)[AUTH_NAME_MAX + 1] = calloc(n ? n : 1, sizeof *names);
	if (!names) {
		retry_later(u);
		return;
	}
	size_t i = 0;
	for (struct pending *p = u->list; p; p = p->next)
		snprintf(names[i++], sizeof names[0], "%s", p->name);
	for (i = 0; i < n; i++) {
		struct pending *p = find(u, names[i]);
		if (p && (p->todo & ~p->running))
			run(p);
	}
	free(names);
}

/* Starts (or restarts) the purge of `name`; `todo` its parts. */
static void purge(user_data *u, const char *name, unsigned todo, int64_t since_ms)
{
	struct pending *p = find(u, name);
	if (!p) {
		p = calloc(1, sizeof *p);
		if (!p) {
			sdk_error("user data: out of memory: '%s' is not purged now", name);
			return;
		}
		p->u = u;
		snprintf(p->name, sizeof p->name, "%s", name);
		p->since_ms = since_ms;
		p->next = u->list;
		u->list = p;
	}
	p->again |= p->running & todo;
	p->todo |= todo;
	journal_write(u, p);
	run(p);
}

void api_user_data_purge(api_ctx *api, const char *name)
{
	if (!api->ud || !auth_name_valid(name)) {
		sdk_error("user data: cannot purge '%s': the purge service is not running", name);
		return;
	}
	purge(api->ud, name, PART_ALL, sdk_wall_ms());
}

void api_user_data_purge_wait(api_ctx *api, const char *name, user_data_ready_cb ready,
			      void *arg)
{
	user_data *u = api->ud;
	struct waiter *w = u ? calloc(1, sizeof *w) : NULL;
	if (w)
		w->timer = evtimer_new(api->base, on_waiter_timeout, w);
	if (!w || !w->timer) {
		free(w);
		api_user_data_purge(api, name);
		ready(arg);
		return;
	}
	w->u = u;
	snprintf(w->name, sizeof w->name, "%s", name);
	w->ready = ready;
	w->arg = arg;
	w->next = u->waiters;
	u->waiters = w;
	struct timeval tv = { UD_WAIT_MS / 1000, (UD_WAIT_MS % 1000) * 1000 };
	evtimer_add(w->timer, &tv);
	api_user_data_purge(api, name); /* may end at once, and tell w */
	waiters_poke(u);                /* (or had nothing to start) */
}

bool api_user_data_ready(api_ctx *api, sdk_req *req, const char *user)
{
	const struct pending *p = api->ud && user ? find(api->ud, user) : NULL;
	if (!p)
		return true;
	const char *path = sdk_req_path(req);
	for (size_t i = 0; i < sizeof gates / sizeof *gates; i++) {
		size_t n = strlen(gates[i].prefix);
		if (!(p->todo & gates[i].parts) || strncmp(path, gates[i].prefix, n) ||
		    (path[n] && path[n] != '/'))
			continue;
		sdk_err e;
		sdk_fail(&e, SDK_EBUSY,
			 "the data of an earlier user named '%s' is still being removed; try again "
			 "shortly",
			 user);
		sdk_reply_status(req, SDK_EBUSY, &e);
		return false;
	}
	return true;
}

/* The journal's purges, resumed at start. */
static int resume(user_data *u)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(u->db, "SELECT name, since_ms, todo FROM user_purges", -1, &st,
			       NULL) != SQLITE_OK)
		return -1;
	struct {
		char name[AUTH_NAME_MAX + 1];
		int64_t since;
		unsigned todo;
	} *rows = NULL;
	size_t n = 0, cap = 0;
	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		if (!name || !auth_name_valid(name))
			continue;
		if (n == cap) {
			void *more = realloc(rows, (cap = cap ? cap * 2 : 8) * sizeof *rows);
			if (!more)
				break;
			rows = more;
		}
		snprintf(rows[n].name, sizeof rows[n].name, "%s", name);
		rows[n].since = sqlite3_column_int64(st, 1);
		rows[n].todo = (unsigned)sqlite3_column_int(st, 2) & PART_ALL;
		n++;
	}
	sqlite3_finalize(st);
	for (size_t i = 0; i < n; i++) {
		sdk_info("user data: resuming the purge of '%s'", rows[i].name);
		purge(u, rows[i].name, rows[i].todo ? rows[i].todo : PART_ALL, rows[i].since);
	}
	free(rows);
	return step == SQLITE_DONE || step == SQLITE_ROW ? 0 : -1;
}

user_data *user_data_new(api_ctx *api, const char *token)
{
	user_data *u = calloc(1, sizeof *u);
	sdk_err err;
	if (!u)
		return NULL;
	u->api = api;
	if (sdk_db_open(api->cfg->data_dir, "grace", &u->db, &err) < 0 ||
	    sdk_db_exec(u->db, ud_schema, &err) < 0) {
		sdk_error("user data: cannot open the purge journal: %s", err.msg);
		user_data_free(u);
		return NULL;
	}
	u->caller = sdk_caller_new(api->base, "grace", token, sup_resolve, api->sup);
	u->retry = evtimer_new(api->base, on_retry, u);
	if (!u->caller || !u->retry) {
		sdk_error("user data: out of memory");
		user_data_free(u);
		return NULL;
	}
	api->ud = u; /* the purges resumed below may end at once and look for it */
	if (resume(u) < 0)
		sdk_warn("user data: cannot read the purge journal: %s", sqlite3_errmsg(u->db));
	return u;
}

void user_data_free(user_data *u)
{
	if (!u)
		return;
	while (u->waiters)
		waiter_end(u->waiters); /* answered now: the server is freed after us */
	while (u->list)
		pending_free(u, u->list);
	sdk_caller_free(u->caller);
	if (u->retry)
		event_free(u->retry);
	if (u->db)
		sqlite3_close(u->db);
	if (u->api && u->api->ud == u)
		u->api->ud = NULL;
	free(u);
}
