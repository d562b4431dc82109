#include "serve/healer/healer.h"
#include "sdk/clock.h"

#include "serve/healer/advise.h"
#include "serve/healer/incidents.h"
#include "serve/healer/learn.h"
#include "serve/healer/ports.h"
#include "sdk/db.h"
#include "sdk/log.h"
#include "sdk/proc.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define STEP_SLACK_MS 2000     /* beyond a kernel's own stop/ready timeout */
#define CLEAR_POLL_MS 20
#define CLEAR_TERM_MS 3000     /* SIGTERM, then SIGKILL after this */
#define CLEAR_KILL_MS 1000
#define PLAYBOOK_STEPS_MAX 6

enum hl_step {
	STEP_DIAGNOSE,
	STEP_STOP,
	STEP_CLEAR_HOLDER,
	STEP_START,
	STEP_PICK_PORT,
	STEP_CONFIGURED_PORT,
	STEP_VERIFY,
	STEP_REPORT_STORAGE,
	STEP_CONFIRM,
	STEP_QUARANTINE,
};

static const char *const step_names[] = {
	"diagnose", "stop",	      "clear_holder", "start",	    "pick_port",
	"configured_port", "verify", "report_storage", "confirm", "quarantine",
};

#define STORAGE_ADVICE                                                                        \
	"restarting cannot repair a database file, so nothing was restarted. Restore the file " \
	"from a backup while the kernel is stopped, or heal with "                             \
	"{\"action\":\"quarantine_store\",\"force\":true}: the file is moved aside (kept, "    \
	"timestamped) and the kernel starts on an empty store"

/* Playbooks as data: a name, what it is for, its steps in order, and what
 * a run that gets through them all is called (NULL: "healed", which also
 * needs /health to answer 200 at the end: every such playbook verifies). */
static const struct playbook {
	const char *name;
	const char *description;
	enum hl_step steps[PLAYBOOK_STEPS_MAX];
	size_t n;
	const char *outcome;
} playbooks[] = {
	{ "restart_component", "graceful stop (SIGTERM, SIGKILL after stop_timeout_ms), start, "
			       "wait until ready, verify /health",
	  { STEP_STOP, STEP_START, STEP_VERIFY }, 3, NULL },
	{ "clear_port", "end a stale Grace kernel holding the port (identified by pid, start "
			"time and command line; a foreign process only when forced), bind, start, "
			"verify /health",
	  { STEP_CLEAR_HOLDER, STEP_START, STEP_VERIFY }, 3, NULL },
	{ "diagnose_network", "findings only: nothing is changed", { STEP_DIAGNOSE }, 1,
	  "diagnosed" },
	{ "rebind_port", "stop, bind a free port in the kernel's tier range (else 8100-8149), "
			 "start there, switch the gateway's route, verify /health; the port is "
			 "kept until reset-port",
	  { STEP_STOP, STEP_PICK_PORT, STEP_START, STEP_VERIFY }, 4, NULL },
	{ "reset_port", "stop, return to the configured port, start, verify /health",
	  { STEP_STOP, STEP_CONFIGURED_PORT, STEP_START, STEP_VERIFY }, 4, NULL },
	{ "report_storage", "the kernel's database is damaged, deleted or replaced: record which "
			    "file and why, change nothing (a restart cannot repair a file); the "
			    "incident ends needs_operator",
	  { STEP_REPORT_STORAGE }, 1, "needs_operator" },
	{ "quarantine_store", "only with force: stop, move DATA_DIR/NAME.db (and its -wal, -shm) "
			      "aside as NAME.corrupt-TIME.db, start on an empty store, verify "
			      "/health",
	  { STEP_CONFIRM, STEP_STOP, STEP_QUARANTINE, STEP_START, STEP_VERIFY }, 5, NULL },
};
#define N_PLAYBOOKS (sizeof playbooks / sizeof *playbooks)

/* The self_healing kernel's last step (advise.h): stop the kernel and
 * leave it to a person. Not offered for a request: only on its advice. */
static const struct playbook stop_playbook = {
	"stop_component", "stop the kernel and leave it stopped: self_healing's ladder ran out "
			  "and a person has been paged",
	{ STEP_STOP }, 1, "stopped"
};

/* The playbooks that fit each diagnosed issue, the static order: the first
 * is the one chosen when nobody else decides. Where more than one fits, the
 * learning kernel is asked for the order (learn.h; docs/learning.md says
 * why each alternative is sound). quarantine_store is never automatic. */
#define ISSUE_PLAYBOOKS_MAX 2
static const char *const playbooks_for_issue[HL_ISSUE_COUNT][ISSUE_PLAYBOOKS_MAX] = {
	[HL_HEALTHY] = { "diagnose_network" },
	[HL_PORT_NOT_LISTENING] = { "restart_component", "rebind_port" },
	[HL_PROCESS_DEAD] = { "restart_component", "reset_port" },
	[HL_PROCESS_HUNG] = { "restart_component", "reset_port" },
	[HL_PORT_HELD_BY_STALE_KERNEL] = { "clear_port", "rebind_port" },
	[HL_PORT_HELD_BY_FOREIGN_PROCESS] = { "rebind_port" },
	[HL_SLOW_RESPONSE] = { "diagnose_network" },
	[HL_STORAGE_FAILED] = { "report_storage" },
};

static size_t playbooks_fit(int issue)
{
	size_t n = 0;
	while (n < ISSUE_PLAYBOOKS_MAX && playbooks_for_issue[issue][n])
		n++;
	return n;
}

enum wait_for { WAIT_NONE, WAIT_STOPPED, WAIT_READY, WAIT_HOLDER_GONE, WAIT_PROBE };

struct incident {
	healer *h;
	sup_kernel *k;
	int64_t id;
	hl_request req;
	char action[32], trigger[32];
	const struct playbook *pb;
	size_t step;
	json_t *json, *steps, *verification;
	/* The holder found by the diagnosis: the only process clear_port may end. */
	enum hl_holder_kind holder_kind;
	pid_t holder_pid;
	uint64_t holder_start;
	char holder_cmdline[256];
	char storage_error[256]; /* what the kernel's /health said, when its storage failed */
	enum wait_for wait;
	hl_diag *diag; /* the diagnosis while it runs */
	struct event *timer;
	struct timespec t0, step_t0, clear_t0;
	bool sent_kill, refused, failed, probe_pending;
	hl_done_cb cb;
	void *arg;
	hl_learn_ask *ask;   /* while the learning kernel is asked for the order */
	int64_t decision_id; /* the learning kernel's, to report the outcome to */
	hl_advise_ask *advice; /* while the self_healing kernel is asked */
	int64_t advice_id;     /* its advice, to report the outcome to */
	int issue;             /* the issue acted on, once diagnosed */
	struct incident *next;
};

struct healer {
	struct event_base *base;
	supervisor *sup;
	gateway *gw;
	guardian *gd;
	sqlite3 *db;
	struct incident *running;
	hl_learn *learn;
	hl_advise *advise;
	hl_done_cb observer;
	void *observer_arg;
};

void hl_set_observer(healer *h, hl_done_cb cb, void *arg)
{
	h->observer = cb;
	h->observer_arg = arg;
}

static const struct playbook *playbook_find(const char *name)
{
	for (size_t i = 0; i < N_PLAYBOOKS; i++)
		if (!strcmp(playbooks[i].name, name))
			return &playbooks[i];
	return NULL;
}

bool hl_playbook_known(const char *name) { return playbook_find(name) != NULL; }

sqlite3 *hl_db(healer *h) { return h->db; }

hl_learn *hl_learner(healer *h) { return h ? h->learn : NULL; }

hl_advise *hl_adviser(healer *h) { return h ? h->advise : NULL; }

json_t *hl_playbooks_json(void)
{
	json_t *list = json_array();
	for (size_t i = 0; i < N_PLAYBOOKS; i++) {
		json_t *steps = json_array();
		for (size_t s = 0; s < playbooks[i].n; s++)
			json_array_append_new(steps, json_string(step_names[playbooks[i].steps[s]]));
		json_t *issues = json_array(), *fits = json_array();
		for (int is = 0; is < HL_ISSUE_COUNT; is++)
			for (size_t f = 0; f < playbooks_fit(is); f++)
				if (!strcmp(playbooks_for_issue[is][f], playbooks[i].name))
					json_array_append_new(f ? fits : issues,
							      json_string(hl_issue_name(is)));
		json_array_append_new(list, json_pack("{s:s, s:s, s:o, s:o, s:o}", "name",
						      playbooks[i].name, "description",
						      playbooks[i].description, "steps", steps,
						      "chosen_for", issues, "alternative_for", fits));
	}
	return json_pack("{s:o}", "playbooks", list);
}

static void run_step(struct incident *inc);

/* When a kernel this heal left unhealthy is healed again (guardian.h):
 * a heal held for a cooldown or the budget, once the advice says it could
 * act; one that failed, after the guardian's backoff; never by itself when
 * it was healed, or when a person decides now (the ladder stopped it, or
 * its stop waits for an approval). */
static unsigned retry_after(const struct incident *inc, const char *outcome)
{
	if (!strcmp(outcome, "healed") || !strcmp(outcome, "diagnosed") ||
	    !strcmp(outcome, "stopped"))
		return 0;
	if (strcmp(outcome, "held"))
		return GD_RETRY_BACKOFF;
	json_t *sh = json_object_get(inc->json, "self_healing");
	const char *reason = json_string_value(json_object_get(sh, "reason"));
	json_int_t ms = json_integer_value(json_object_get(sh, "retry_after_ms"));
	if (!reason || (strcmp(reason, "cooldown") && strcmp(reason, "budget")))
		return 0;
	return ms < 500 ? 500 : ms > GD_REHEAL_MAX_MS ? GD_REHEAL_MAX_MS : (unsigned)ms;
}

static void incident_finish(struct incident *inc, const char *outcome)
{
	healer *h = inc->h;
	evtimer_del(inc->timer);
	hl_learn_cancel(inc->ask);
	hl_advise_cancel(inc->advice);
	json_object_set_new(inc->json, "outcome", json_string(outcome));
	json_object_set_new(inc->json, "duration_ms", json_real(sdk_ms_since(&inc->t0)));
	json_object_set_new(inc->json, "finished_ms", json_integer(sdk_wall_ms()));
	json_object_set(inc->json, "verification",
			inc->verification ? inc->verification : json_null());
	json_object_set_new(inc->json, "kernel_state", json_string(sup_state_name(inc->k->state)));
	json_object_set_new(inc->json, "port", json_integer(inc->k->port));
	if (inc->id > 0)
		hl_incident_end(h->db, inc->id, inc->json);
	sdk_log(!strcmp(outcome, "healed") || !strcmp(outcome, "diagnosed") ? SDK_LOG_INFO
									       : SDK_LOG_WARN,
		NULL, "healer: incident %lld on %s: %s (%s) in %.0f ms", (long long)inc->id,
		inc->k->cfg->name, outcome, inc->pb ? inc->pb->name : "-", sdk_ms_since(&inc->t0));
	for (struct incident **p = &h->running; *p; p = &(*p)->next)
		if (*p == inc) {
			*p = inc->next;
			break;
		}
	hl_learn_reward(h->learn, inc->decision_id, inc->pb ? inc->pb->name : "", inc->json);
	hl_advise_outcome(h->advise, inc->advice_id, inc->json);
	if (inc->pb && !inc->pb->outcome) /* a playbook that repairs, not a diagnosis */
		hl_learn_heal_ended(h->learn, inc->k->cfg->name, sdk_wall_ms());
	if (inc->cb)
		inc->cb(inc->json, inc->arg);
	if (h->observer)
		h->observer(inc->json, h->observer_arg);
	gd_heal_done(h->gd, inc->k, retry_after(inc, outcome));
	event_free(inc->timer);
	json_decref(inc->json);
	json_decref(inc->verification);
	free(inc);
}

/* Records the current step's result and moves on (or ends the run). */
static void step_done(struct incident *inc, bool ok, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void step_done(struct incident *inc, bool ok, const char *fmt, ...)
{
	char detail[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);
	evtimer_del(inc->timer);
	inc->wait = WAIT_NONE;
	json_array_append_new(inc->steps,
			      json_pack("{s:s, s:f, s:f, s:s, s:s}", "step",
					step_names[inc->pb->steps[inc->step]], "at_ms",
					sdk_ms_since(&inc->t0) - sdk_ms_since(&inc->step_t0), "duration_ms",
					sdk_ms_since(&inc->step_t0), "result",
					inc->refused ? "refused" : ok ? "ok" : "failed", "detail", detail));
	if (!ok) {
		incident_finish(inc, inc->refused		   ? "refused"
				     : sup_shutting_down(inc->h->sup) ? "interrupted"
								     : "failed");
		return;
	}
	if (++inc->step == inc->pb->n) {
		incident_finish(inc, inc->pb->outcome ? inc->pb->outcome : "healed");
		return;
	}
	run_step(inc);
}

/* How long a step waits for the state it asked for. */
static unsigned stop_wait_ms(const sup_kernel *k)
{
	return k->cfg->stop_timeout_ms + STEP_SLACK_MS + sup_kernel_lag_ms(k);
}

static unsigned ready_wait_ms(const sup_kernel *k)
{
	return k->cfg->ready_timeout_ms + STEP_SLACK_MS + sup_kernel_lag_ms(k);
}

static void wait_with_timeout(struct incident *inc, enum wait_for w, unsigned ms)
{
	inc->wait = w;
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
	evtimer_add(inc->timer, &tv);
}

static void step_stop(struct incident *inc)
{
	sup_kernel *k = inc->k;
	if (k->pid <= 0 && k->state != SUP_STOPPING) {
		if (k->state == SUP_RESTARTING)
			sup_kernel_stop(k); /* cancels the pending restart */
		step_done(inc, true, "no process to stop (%s)", sup_state_name(k->state));
		return;
	}
	sup_kernel_stop(k);
	if (k->state == SUP_STOPPED) {
		step_done(inc, true, "stopped");
		return;
	}
	wait_with_timeout(inc, WAIT_STOPPED, stop_wait_ms(k));
}

static void step_start(struct incident *inc)
{
	sup_kernel *k = inc->k;
	int rc = sup_kernel_start(k);
	if (rc == -EALREADY && k->state == SUP_READY) {
		step_done(inc, true, "already running as pid %d", (int)k->pid);
		return;
	}
	if (rc < 0 && rc != -EALREADY) {
		step_done(inc, false, "cannot start on port %d: %s", k->port,
			  k->last_exit[0] ? k->last_exit : strerror(-rc));
		return;
	}
	wait_with_timeout(inc, WAIT_READY, ready_wait_ms(k));
}

static bool holder_unchanged(const struct incident *inc)
{
	uint64_t start = 0;
	char cmd[256];
	return proc_stat(inc->holder_pid, NULL, &start) == 0 && start == inc->holder_start &&
	       proc_cmdline(inc->holder_pid, cmd, sizeof cmd) == 0 &&
	       !strcmp(cmd, inc->holder_cmdline);
}

static void step_clear_holder(struct incident *inc)
{
	if (inc->holder_kind == HL_HOLDER_NONE || inc->holder_kind == HL_HOLDER_OURS) {
		step_done(inc, true, "nothing but Grace holds port %d", inc->k->port);
		return;
	}
	if (inc->holder_pid <= 0) {
		step_done(inc, false, "port %d is held by a process that cannot be identified",
			  inc->k->port);
		return;
	}
	if (inc->holder_kind == HL_HOLDER_FOREIGN && !inc->req.force) {
		inc->refused = true;
		step_done(inc, false,
			  "port %d is held by pid %d (%s), which is not a Grace kernel: refusing to "
			  "end it (an operator may set \"force\")",
			  inc->k->port, (int)inc->holder_pid, inc->holder_cmdline);
		return;
	}
	/* The pid alone could have been reused since the diagnosis. */
	if (!holder_unchanged(inc)) {
		step_done(inc, true, "pid %d no longer holds the port (it exited or is another "
				     "process now): nothing ended",
			  (int)inc->holder_pid);
		return;
	}
	if (inc->holder_kind == HL_HOLDER_FOREIGN)
		json_object_set_new(inc->json, "forced", json_true());
	kill(inc->holder_pid, SIGTERM);
	kill(inc->holder_pid, SIGCONT);
	clock_gettime(CLOCK_MONOTONIC, &inc->clear_t0);
	wait_with_timeout(inc, WAIT_HOLDER_GONE, CLEAR_POLL_MS);
}

/* Whether anything still listens on the kernel's port: a dying process
 * loses its command line before it closes its sockets. */
static bool port_still_held(const struct incident *inc)
{
	proc_listen_info li;
	return proc_listen_info_get(inc->k->port, &li) == 0;
}

static void clear_holder_poll(struct incident *inc)
{
	if (!holder_unchanged(inc) && !port_still_held(inc)) {
		step_done(inc, true, "ended %s pid %d (%s) with %s", inc->holder_kind == HL_HOLDER_FOREIGN
									? "foreign (forced)"
									: "stale Grace kernel",
			  (int)inc->holder_pid, inc->holder_cmdline, inc->sent_kill ? "SIGKILL" : "SIGTERM");
		return;
	}
	/* A zombie its parent has yet to reap holds no port any more. */
	char st = 0;
	if (proc_stat(inc->holder_pid, &st, NULL) == 0 && st == 'Z' && !port_still_held(inc)) {
		step_done(inc, true, "ended pid %d (%s) with %s", (int)inc->holder_pid,
			  inc->holder_cmdline, inc->sent_kill ? "SIGKILL" : "SIGTERM");
		return;
	}
	double ms = sdk_ms_since(&inc->clear_t0);
	if (!inc->sent_kill && ms > CLEAR_TERM_MS) {
		inc->sent_kill = true;
		if (holder_unchanged(inc))
			kill(inc->holder_pid, SIGKILL);
	} else if (ms > CLEAR_TERM_MS + CLEAR_KILL_MS) {
		step_done(inc, false, "pid %d survived SIGKILL", (int)inc->holder_pid);
		return;
	}
	wait_with_timeout(inc, WAIT_HOLDER_GONE, CLEAR_POLL_MS);
}

/* A unit's port is its socket unit's (or its ExecStart's): moving it means
 * another unit, an operator's decision, not a playbook's. Refused before
 * the first step, so nothing is stopped for a move that cannot happen. */
/* Whether a playbook moves the kernel's port (rebind_port, reset_port). */
static bool moves_port(const struct playbook *pb)
{
	for (size_t i = 0; pb && i < pb->n; i++)
		if (pb->steps[i] == STEP_PICK_PORT || pb->steps[i] == STEP_CONFIGURED_PORT)
			return true;
	return false;
}

static bool refuse_port_move(struct incident *inc)
{
	if (!sup_kernel_by_systemd(inc->k) || !moves_port(inc->pb))
		return false;
	inc->refused = true;
	step_done(inc, false,
		  "kernel %s is run by systemd: its port is its unit's (%s); %s moves "
		  "ports, so nothing was done",
		  inc->k->cfg->name, inc->k->socket_unit[0] ? inc->k->socket_unit : inc->k->unit,
		  inc->pb->name);
	return true;
}

static void step_pick_port(struct incident *inc)
{
	sup_kernel *k = inc->k;
	supervisor *sup = inc->h->sup;
	int offset = k->configured_port - k->cfg->port;
	int tier_lo = k->cfg->port / 10 * 10;
	int ranges[2][2] = { { tier_lo, tier_lo + 9 }, { GRACE_KERNEL_PORT_MIN, GRACE_KERNEL_PORT_MAX } };
	int old = k->port;
	for (int r = 0; r < 2; r++) {
		for (int p = ranges[r][0]; p <= ranges[r][1]; p++) {
			bool taken = false;
			for (size_t i = 0; i < sup_count(sup) && !taken; i++) {
				const sup_kernel *o = sup_at(sup, i);
				/* Another kernel's configured or current port is not free. */
				taken = o->cfg->port == p || o->port == p + offset ||
					(o == k && p + offset == old);
			}
			if (taken)
				continue;
			int fd = sup_socket_bind(p + offset, NULL);
			if (fd < 0)
				continue;
			sup_kernel_set_port(k, p + offset, fd);
			hl_ports_store(inc->h->db, k->cfg->name, p);
			json_object_set_new(inc->json, "new_port", json_integer(p + offset));
			step_done(inc, true, "bound port %d (was %d); the gateway routes there now",
				  p + offset, old);
			return;
		}
	}
	step_done(inc, false, "no free port in %d-%d or %d-%d", ranges[0][0] + offset,
		  ranges[0][1] + offset, ranges[1][0] + offset, ranges[1][1] + offset);
}

static void step_configured_port(struct incident *inc)
{
	sup_kernel *k = inc->k;
	int old = k->port;
	if (sup_kernel_set_port(k, k->configured_port, -1) < 0) {
		step_done(inc, false, "the kernel is still running as pid %d", (int)k->pid);
		return;
	}
	hl_ports_store(inc->h->db, k->cfg->name, 0);
	json_object_set_new(inc->json, "new_port", json_integer(k->port));
	step_done(inc, true, "back to the configured port %d (was %d)", k->port, old);
}

static void on_verify(int status, const char *body, size_t len, double latency_ms,
		      const char *error, void *arg)
{
	struct incident *inc = arg;
	inc->probe_pending = false;
	json_t *answer = body ? json_loadb(body, len, 0, NULL) : NULL;
	json_t *st = json_object_get(answer, "status");
	bool ok = status == 200 && (!json_is_string(st) || !strcmp(json_string_value(st), "ok"));
	inc->verification = json_pack("{s:b, s:i, s:f, s:o, s:s*}", "ok", ok, "status", status,
				      "latency_ms", latency_ms, "answer",
				      answer ? answer : json_null(), "error", error);
	if (ok)
		step_done(inc, true, "/health answered 200 in %.1f ms", latency_ms);
	else if (status)
		step_done(inc, false, "/health answered %d%s", status,
			  status == 200 ? " but its status is not \"ok\"" : "");
	else
		step_done(inc, false, "/health did not answer: %s", error ? error : "no answer");
}

static void step_verify(struct incident *inc)
{
	sup_kernel *k = inc->k;
	if (k->pid <= 0) {
		inc->verification = json_pack("{s:b, s:s}", "ok", 0, "error", "no process");
		step_done(inc, false, "no process to verify (%s)", sup_state_name(k->state));
		return;
	}
	inc->probe_pending = true;
	if (gw_probe(inc->h->gw, k->port, "/health", k->cfg->health_timeout_ms, on_verify, inc) < 0) {
		inc->probe_pending = false;
		step_done(inc, false, "cannot probe /health");
	}
}

/* DATA_DIR/NAME.db: the data directory is where grace.db is (sdk_db_open
 * puts every database there). Derived, never taken from a kernel's answer:
 * quarantine moves files. */
static int storage_path(const struct incident *inc, char *out, size_t len, char *dir,
			size_t dirlen)
{
	if (sdk_db_dir(inc->h->db, dir, dirlen) < 0)
		return -1;
	return snprintf(out, len, "%s/%s.db", dir, inc->k->cfg->name) < (int)len ? 0 : -1;
}

static void step_report_storage(struct incident *inc)
{
	char path[PATH_MAX], dir[PATH_MAX];
	if (storage_path(inc, path, sizeof path, dir, sizeof dir) < 0)
		snprintf(path, sizeof path, "%s.db", inc->k->cfg->name);
	const char *why = inc->storage_error[0] ? inc->storage_error
						: "the kernel's /health did not say why";
	json_object_set_new(inc->json, "storage",
			    json_pack("{s:s, s:s, s:s}", "file", path, "error", why, "advice",
				      STORAGE_ADVICE));
	step_done(inc, true, "%s: %s; %s", path, why, STORAGE_ADVICE);
}

static void step_confirm(struct incident *inc)
{
	if (!inc->req.force) {
		inc->refused = true;
		step_done(inc, false,
			  "quarantine_store moves %s's database aside and starts it on an empty "
			  "store: set \"force\": true to do it",
			  inc->k->cfg->name);
		return;
	}
	step_done(inc, true, "forced by the operator");
}

/* Moves DATA_DIR/NAME.db, -wal and -shm to NAME.corrupt-TIME.db(-wal,-shm):
 * SQLite can still open the copy with its WAL, for forensics. Never over
 * an existing file. */
static void step_quarantine(struct incident *inc)
{
	char path[PATH_MAX], dir[PATH_MAX];
	if (storage_path(inc, path, sizeof path, dir, sizeof dir) < 0) {
		step_done(inc, false, "cannot tell where %s's database is", inc->k->cfg->name);
		return;
	}
	int64_t now = sdk_wall_ms();
	time_t secs = (time_t)(now / 1000);
	struct tm tm;
	char stamp[32];
	gmtime_r(&secs, &tm);
	strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%S", &tm);
	static const char *const suffixes[] = { "", "-wal", "-shm" };
	json_t *moved = json_array();
	char first[PATH_MAX] = "";
	for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
		char from[PATH_MAX], to[PATH_MAX];
		snprintf(from, sizeof from, "%s%s", path, suffixes[i]);
		if (snprintf(to, sizeof to, "%s/%s.corrupt-%s.%03dZ.db%s", dir, inc->k->cfg->name,
			     stamp, (int)(now % 1000), suffixes[i]) >= (int)sizeof to) {
			json_decref(moved);
			step_done(inc, false, "path too long");
			return;
		}
		if (access(from, F_OK) < 0)
			continue;
		if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) < 0) {
			int e = errno;
			json_object_set_new(inc->json, "quarantined", moved);
			step_done(inc, false, "cannot move %s to %s: %s", from, to, strerror(e));
			return;
		}
		if (!first[0])
			snprintf(first, sizeof first, "%s", to);
		json_array_append_new(moved, json_pack("{s:s, s:s}", "from", from, "to", to));
	}
	json_object_set_new(inc->json, "quarantined", moved);
	if (!first[0])
		step_done(inc, true, "no %s to move: the kernel starts on an empty store", path);
	else
		step_done(inc, true, "moved %s aside as %s (kept); the kernel starts on an empty "
				     "store",
			  path, first);
}

static void run_step(struct incident *inc)
{
	clock_gettime(CLOCK_MONOTONIC, &inc->step_t0);
	switch (inc->pb->steps[inc->step]) {
	case STEP_DIAGNOSE: step_done(inc, true, "findings recorded in diagnosis"); break;
	case STEP_STOP: step_stop(inc); break;
	case STEP_CLEAR_HOLDER: step_clear_holder(inc); break;
	case STEP_START: step_start(inc); break;
	case STEP_PICK_PORT: step_pick_port(inc); break;
	case STEP_CONFIGURED_PORT: step_configured_port(inc); break;
	case STEP_VERIFY: step_verify(inc); break;
	case STEP_REPORT_STORAGE: step_report_storage(inc); break;
	case STEP_CONFIRM: step_confirm(inc); break;
	case STEP_QUARANTINE: step_quarantine(inc); break;
	}
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct incident *inc = arg;
	switch (inc->wait) {
	case WAIT_HOLDER_GONE: clear_holder_poll(inc); break;
	case WAIT_STOPPED:
		step_done(inc, false, "still %s after %u ms", sup_state_name(inc->k->state),
			  stop_wait_ms(inc->k));
		break;
	case WAIT_READY:
		step_done(inc, false, "not ready after %u ms (%s; last exit: %s)",
			  ready_wait_ms(inc->k), sup_state_name(inc->k->state),
			  inc->k->last_exit);
		break;
	default: break;
	}
}

void hl_on_sup_change(healer *h, sup_kernel *k, enum sup_state old)
{
	(void)old;
	for (struct incident *inc = h->running; inc; inc = inc->next) {
		if (inc->k != k)
			continue;
		if (inc->wait == WAIT_STOPPED &&
		    (k->state == SUP_STOPPED || k->state == SUP_FAILED)) {
			step_done(inc, true, "stopped (%s)", k->last_exit);
		} else if (inc->wait == WAIT_READY) {
			if (k->state == SUP_READY)
				step_done(inc, true, "ready as pid %d on port %d", (int)k->pid, k->port);
			else if (k->state == SUP_FAILED || k->state == SUP_PORT_UNAVAILABLE ||
				 k->state == SUP_STOPPED)
				step_done(inc, false, "%s: %s", sup_state_name(k->state), k->last_exit);
		}
		return;
	}
}

/* Runs the playbook `pb` (a known name); `learning` (borrowed, may be
 * NULL) is what the learning kernel said, for the incident. */
static void start_playbook(struct incident *inc, const char *pb, json_t *learning)
{
	inc->pb = playbook_find(pb);
	json_object_set_new(inc->json, "playbook", json_string(pb));
	if (learning)
		json_object_set(inc->json, "learning", learning);
	if (!refuse_port_move(inc))
		run_step(inc);
}

static void on_learned(const char *pb, json_t *learning, int64_t decision_id, void *arg)
{
	struct incident *inc = arg;
	inc->ask = NULL;
	inc->decision_id = decision_id;
	start_playbook(inc, pb, learning);
}

/* The playbooks that fit an issue, in the static order. A kernel run by
 * systemd is offered no alternative that moves its port (it would be
 * refused). */
static size_t issue_fits(const struct incident *inc, int issue, const char **fit)
{
	size_t n = 0;
	for (size_t i = 0; i < playbooks_fit(issue); i++)
		if (i == 0 || !sup_kernel_by_systemd(inc->k) ||
		    !moves_port(playbook_find(playbooks_for_issue[issue][i])))
			fit[n++] = playbooks_for_issue[issue][i];
	return n;
}

static void heal_on_own_choice(struct incident *inc, int issue);

static void on_advised(enum hl_advice what, const char *playbook, json_t *record,
		       int64_t advice_id, void *arg)
{
	struct incident *inc = arg;
	inc->advice = NULL;
	inc->advice_id = advice_id;
	json_object_set(inc->json, "self_healing", record);
	switch (what) {
	case HL_ADVICE_NONE: heal_on_own_choice(inc, inc->issue); break;
	case HL_ADVICE_HEAL: start_playbook(inc, playbook, json_object_get(record, "learning")); break;
	case HL_ADVICE_HOLD: incident_finish(inc, "held"); break;
	case HL_ADVICE_STOP:
		inc->pb = &stop_playbook;
		json_object_set_new(inc->json, "playbook", json_string(stop_playbook.name));
		run_step(inc);
		break;
	}
}

static void on_diagnosed(hl_findings *f, void *arg)
{
	struct incident *inc = arg;
	json_object_set(inc->json, "diagnosis", f->json);
	inc->holder_kind = f->holder_kind;
	inc->holder_pid = f->holder_pid;
	inc->holder_start = f->holder_start_ticks;
	snprintf(inc->holder_cmdline, sizeof inc->holder_cmdline, "%s", f->holder_cmdline);
	snprintf(inc->storage_error, sizeof inc->storage_error, "%s", f->storage_error);
	int issue = inc->req.issue >= 0 ? inc->req.issue : (int)f->issue;
	json_object_set_new(inc->json, "diagnosed_issue", json_string(hl_issue_name(f->issue)));
	json_object_set_new(inc->json, "issue_type", json_string(hl_issue_name(issue)));
	if (inc->action[0]) {
		start_playbook(inc, inc->action, NULL);
		return;
	}
	inc->issue = issue;
	/* A repair the healer would choose itself: the self_healing kernel
	 * says which step of its ladder, or to hold, or to stop (advise.h);
	 * without it, as before. */
	const char *fit[ISSUE_PLAYBOOKS_MAX];
	size_t n = issue_fits(inc, issue, fit);
	json_t *fallback = NULL;
	if (issue != HL_HEALTHY && issue != HL_SLOW_RESPONSE && issue != HL_STORAGE_FAILED) {
		inc->advice = hl_advise_ask_for(inc->h->advise, inc->k, inc->id, hl_issue_name(issue),
						fit, n, on_advised, inc, &fallback);
		if (inc->advice) {
			json_decref(fallback);
			return;
		}
		if (fallback)
			json_object_set_new(inc->json, "self_healing", fallback);
	}
	heal_on_own_choice(inc, issue);
}

/* More than one playbook fits: the learning kernel orders them, or the
 * static order stands at once (learn.h). */
static void heal_on_own_choice(struct incident *inc, int issue)
{
	const char *fit[ISSUE_PLAYBOOKS_MAX];
	size_t n = issue_fits(inc, issue, fit);
	json_t *fallback = NULL;
	inc->ask = hl_learn_order(inc->h->learn, inc->k, hl_issue_name(issue), fit, n, on_learned,
				  inc, &fallback);
	if (inc->ask) {
		json_decref(fallback);
		return;
	}
	if (issue != HL_HEALTHY && issue != HL_SLOW_RESPONSE)
		hl_learn_incident(inc->h->learn, inc->k->cfg->name, hl_issue_name(issue));
	start_playbook(inc, fit[0], fallback);
	json_decref(fallback);
}

int hl_heal(healer *h, sup_kernel *k, const hl_request *req, hl_done_cb cb, void *arg,
	    int64_t *running_id)
{
	for (struct incident *r = h->running; r; r = r->next) {
		if (r->k == k) {
			if (running_id)
				*running_id = r->id;
			return -EBUSY;
		}
	}
	if (req->action && !playbook_find(req->action))
		return -EINVAL;
	struct incident *inc = calloc(1, sizeof *inc);
	if (!inc)
		return -ENOMEM;
	inc->h = h;
	inc->k = k;
	inc->req = *req;
	snprintf(inc->action, sizeof inc->action, "%s", req->action ? req->action : "");
	snprintf(inc->trigger, sizeof inc->trigger, "%s", req->trigger ? req->trigger : "api");
	inc->req.action = NULL;
	inc->req.trigger = inc->trigger;
	inc->cb = cb;
	inc->arg = arg;
	inc->timer = evtimer_new(h->base, on_timer, inc);
	if (!inc->timer) {
		free(inc);
		return -ENOMEM;
	}
	clock_gettime(CLOCK_MONOTONIC, &inc->t0);
	int64_t started = sdk_wall_ms();
	inc->id = hl_incident_begin(h->db, started, k->cfg->name, inc->trigger);
	inc->steps = json_array();
	inc->json = json_pack("{s:I, s:s, s:s, s:I, s:b, s:o, s:o}", "id", (json_int_t)inc->id,
			      "component", k->cfg->name, "trigger", inc->trigger, "started_ms",
			      (json_int_t)started, "force", req->force, "requested_action",
			      req->action ? json_string(req->action) : json_null(), "steps",
			      inc->steps);
	inc->next = h->running;
	h->running = inc;
	gd_heal_started(h->gd, k);
	if (hl_diagnose(h->base, h->gw, k, on_diagnosed, inc, &inc->diag) < 0) {
		inc->pb = &playbooks[0];
		incident_finish(inc, "failed");
	}
	return 0;
}

healer *hl_new(struct event_base *base, supervisor *sup, gateway *gw, guardian *gd, sqlite3 *db)
{
	sdk_err err;
	if (hl_incidents_init(db, &err) < 0 || hl_ports_init(db, &err) < 0) {
		sdk_error("healer: %s", err.msg);
		return NULL;
	}
	healer *h = calloc(1, sizeof *h);
	if (h)
		*h = (healer){ .base = base, .sup = sup, .gw = gw, .gd = gd, .db = db,
			       .learn = hl_learn_new(gw_caller(gw), sup),
			       .advise = hl_advise_new(gw_caller(gw), sup) };
	if (h && (!h->learn || !h->advise)) {
		hl_learn_free(h->learn);
		hl_advise_free(h->advise);
		free(h);
		return NULL;
	}
	return h;
}

void hl_free(healer *h)
{
	if (!h)
		return;
	while (h->running) {
		hl_diag_discard(h->running->diag);
		if (!h->running->pb)
			h->running->pb = &playbooks[0];
		incident_finish(h->running, "interrupted");
	}
	hl_learn_free(h->learn);
	hl_advise_free(h->advise);
	free(h);
}
