#include "serve/supervisor/supervisor.h"

#include "sdk/clock.h"
#include "sdk/log.h"
#include "sdk/svid.h"
#include "sdk/notify.h"
#include "sdk/standby.h"
#include "sdk/token.h"
#include "serve/supervisor/attest.h"
#include "serve/supervisor/spawn.h"
#include "serve/supervisor/unit.h"
#include "serve/supervisor/units.h"

#include <sodium.h>

#include <errno.h>
#include <event2/event.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NOTIFY_MSG_MAX 4096
#define EXIT_PERMANENT 100
/* State changes waiting for the observers: far more than one loop turn
 * can make (a few per kernel), so reaching it means a bug. */
#define NOTES_MAX 4096
/* Standbys told to leave, until they are reaped. */
#define RETIRING_MAX (2 * GRACE_KERNELS_MAX)
/* A standby that died unused is replaced no sooner than this (and after
 * SUP_SB_FAILS_MAX in a row, not until the kernel is ready again). */
#define STANDBY_RETRY_MS 1000
/* Standbys start at least this far apart, so twenty kernels ready together
 * do not get twenty exec's at once on top of their own work. */
#define STANDBY_SPACING_MS 200

struct supervisor {
	struct event_base *base;
	sup_opts opts;
	sup_kernel kernels[GRACE_KERNELS_MAX];
	size_t n;
	int notify_fd;
	char notify_path[108]; /* "@grace/<pid>/notify" */
	struct event *notify_ev, *sigchld_ev, *drain_ev;
	bool shutting_down;
	sup_change *notes; /* FIFO of changes not yet told, [head, len) */
	size_t notes_head, notes_len, notes_cap;
	pid_t retiring[RETIRING_MAX];
	size_t n_retiring;
	uint64_t sb_next_slot_ms; /* monotonic: the earliest the next standby may start */
	/* Kernels run by systemd: systemctl, and the periodic reading of their
	 * units (one `systemctl show` for all, gens as each kernel's unit_gen
	 * was when it was asked). */
	sup_units *units;
	struct event *unit_poll_ev;
	bool unit_polling, unit_poll_again;
	unsigned unit_poll_gen[GRACE_KERNELS_MAX];
};

/* ---- who runs a kernel: one row per manager ---- */

/* What differs between the ways a kernel can be run. grace serve forks
 * it: its process is our child (reaped here, killed at shutdown, counted
 * until it is gone), a standby can stand in for it and its socket can be
 * moved. systemd runs its unit: we ask systemctl and read the unit's
 * state; its process and lifetime are systemd's. (A kernel on another
 * node would be one more row.) */
typedef struct sup_manager {
	const char *name; /* as the configuration and the API say it */
	int (*start)(sup_kernel *k);
	int (*stop)(sup_kernel *k);
	int (*restart)(sup_kernel *k);
	bool our_child;  /* its pid is our child: reaped, signalled, waited for */
	bool standby;    /* may have a standby (`grace kernel NAME` only) */
	bool port_moves; /* sup_kernel_set_port may move its socket */
	bool unit;       /* its state comes from polling its systemd units */
	bool remote;     /* its state comes from its node's reports */
} sup_manager;

static const sup_manager *manager_of(const sup_kernel *k);

bool sup_kernel_has_standby(const sup_kernel *k)
{
	/* Only `grace kernel NAME` speaks the standby protocol. */
	return k->cfg->standby && !k->cfg->command[0] && manager_of(k)->standby;
}

bool sup_kernel_by_systemd(const sup_kernel *k)
{
	return manager_of(k)->unit;
}

bool sup_kernel_remote(const sup_kernel *k)
{
	return manager_of(k)->remote;
}

void sup_kernel_manager_json(const sup_kernel *k, json_t *o)
{
	const sup_manager *m = manager_of(k);
	json_object_set_new(o, "manager", json_string(m->name));
	if (k->cfg->node[0])
		json_object_set_new(o, "node", json_string(k->cfg->node));
	if (m->unit) {
		json_object_set_new(o, "unit", json_string(k->unit));
		if (k->socket_unit[0])
			json_object_set_new(o, "socket_unit", json_string(k->socket_unit));
	}
}

/* ---- notifications: queued in a transition, told from the loop ---- */

static void note(sup_kernel *k, enum sup_state from, enum sup_event cause)
{
	supervisor *s = k->sup;
	if (!s->opts.on_change)
		return;
	if (s->notes_len == s->notes_cap) {
		size_t cap = s->notes_cap ? s->notes_cap * 2 : 32;
		sup_change *n = cap <= NOTES_MAX ? realloc(s->notes, cap * sizeof *n) : NULL;
		if (!n) {
			sdk_error("kernel %s: %s -> %s not told to observers: queue full",
				  k->cfg->name, sup_state_key(from), sup_state_key(k->state));
			return;
		}
		s->notes = n;
		s->notes_cap = cap;
	}
	sup_change *c = &s->notes[s->notes_len++];
	*c = (sup_change){ .k = k, .from = from, .to = k->state, .cause = cause,
			   .pid = k->pid, .port = k->port, .at_ms = k->since_ms };
	memcpy(c->last_exit, k->last_exit, sizeof c->last_exit);
	event_active(s->drain_ev, EV_TIMEOUT, 0);
}

static void on_drain(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	supervisor *s = arg;
	/* An observer may act on a kernel: its changes join the queue's end. */
	while (s->notes_head < s->notes_len) {
		sup_change c = s->notes[s->notes_head++];
		s->opts.on_change(&c, s->opts.arg);
	}
	s->notes_head = s->notes_len = 0;
}

/* ---- small pieces the actions use ---- */

static void arm(struct event *ev, uint64_t ms)
{
	struct timeval tv = sdk_ms_tv(ms);
	evtimer_add(ev, &tv);
}

/* Signals the kernel's whole process group, so what it forked goes too. */
static void kill_group(sup_kernel *k, int sig)
{
	if (k->pid > 0 && kill(-k->pid, sig) < 0 && errno == ESRCH)
		kill(k->pid, sig);
}

static void kill_for(sup_kernel *k, const char *why)
{
	snprintf(k->kill_reason, sizeof k->kill_reason, "%s", why);
	sdk_warn("kernel %s: %s: killing pid %d", k->cfg->name, why, (int)k->pid);
	kill_group(k, SIGKILL);
}

/* How long a bind that failed may wait for our own forks to exec. */
#define EXEC_SETTLE_MS 1000

/* A child between its fork and its exec holds a copy of every descriptor
 * we have, the kernels' listening sockets too: close-on-exec closes them
 * only at the exec. A port we closed a moment ago (a stop, then a start)
 * can still be listening there. Waits until every exec in flight is done
 * (or failed: the pipe's end closes either way), at most `ms`. Returns
 * whether any was in flight. Only polls: the pipes' own events read them. */
static bool execs_settle(supervisor *s, int ms)
{
	struct pollfd pf[2 * GRACE_KERNELS_MAX];
	nfds_t n = 0;
	for (size_t i = 0; i < s->n; i++) {
		struct event *evs[] = { s->kernels[i].exec_ev, s->kernels[i].sb_exec_ev };
		for (size_t j = 0; j < 2; j++)
			if (evs[j])
				pf[n++] = (struct pollfd){ .fd = event_get_fd(evs[j]), .events = POLLIN };
	}
	if (!n)
		return false;
	int64_t deadline = sdk_mono_ms() + ms;
	for (nfds_t done = 0; done < n;) {
		int64_t left = deadline - sdk_mono_ms();
		if (left <= 0 || poll(pf, n, (int)left) <= 0)
			break;
		done = 0;
		for (nfds_t i = 0; i < n; i++)
			if (pf[i].fd < 0 || pf[i].revents) {
				pf[i].fd = -1; /* settled: poll ignores it from now on */
				done++;
			}
	}
	return true;
}

static int ensure_socket(sup_kernel *k)
{
	if (k->fd >= 0)
		return 0;
	int fd = sup_socket_bind(k->port, &k->holder);
	if (fd == -EADDRINUSE && execs_settle(k->sup, EXEC_SETTLE_MS))
		fd = sup_socket_bind(k->port, &k->holder);
	if (fd < 0) {
		if (fd == -EADDRINUSE)
			snprintf(k->last_exit, sizeof k->last_exit,
				 "port %d held by pid %d (%.120s)", k->port, (int)k->holder.pid,
				 k->holder.cmdline[0] ? k->holder.cmdline : "unknown");
		else
			snprintf(k->last_exit, sizeof k->last_exit, "cannot bind port %d: %s",
				 k->port, strerror(-fd));
		sdk_warn("kernel %s: %s", k->cfg->name, k->last_exit);
		return fd;
	}
	memset(&k->holder, 0, sizeof k->holder);
	k->fd = fd;
	return 0;
}

/* An exec result pipe's event (the kernel's or its standby's): its fd
 * closed, the event freed. */
static void exec_pipe_close(struct event **ev)
{
	if (!*ev)
		return;
	close(event_get_fd(*ev));
	event_free(*ev);
	*ev = NULL;
}

static void exec_watch_close(sup_kernel *k)
{
	exec_pipe_close(&k->exec_ev);
}

/* Takes in the exec result, if it is known: a failed exec names its reason
 * before the child's exit (127) is reported. */
static void exec_watch_read(sup_kernel *k)
{
	if (!k->exec_ev)
		return;
	int e = sup_spawn_exec_result(event_get_fd(k->exec_ev));
	if (e == -EAGAIN)
		return;
	if (e > 0)
		snprintf(k->kill_reason, sizeof k->kill_reason, "cannot run the command: %s",
			 strerror(e));
	else if (k->pid > 0 && k->sup->opts.on_spawned) /* exec'ed: /proc shows what runs */
		k->sup->opts.on_spawned(k, k->pid, k->join_hash, k->sup->opts.arg);
	exec_watch_close(k);
}

static void on_exec_result(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	exec_watch_read(arg);
}

/* The command line and environment of a kernel process. */
struct spawn_args {
	char cmdbuf[GRACE_COMMAND_MAX + 64];
	char *argv[SPAWN_ARGS_MAX];
	char e_notify[160], e_wd[48], e_kernel[64], e_cfg[PATH_MAX + 16], e_data[PATH_MAX + 16],
		e_off[48], e_lib[PATH_MAX + 24], e_names[64], e_tok[PATH_MAX + 32], e_main[112];
	char e_join[sizeof SUP_JOIN_ENV + SUP_JOIN_HEX + 1]; /* wiped after the spawn */
	const char *env[SPAWN_ENV_MAX];
};

/* -EINVAL when the command cannot be split. */
static int spawn_args_build(sup_kernel *k, struct spawn_args *a, bool standby)
{
	supervisor *s = k->sup;
	if (k->cfg->command[0]) {
		if (sup_split_command(k->cfg->command, a->cmdbuf, sizeof a->cmdbuf, a->argv,
				      SPAWN_ARGS_MAX) < 0)
			return -EINVAL;
	} else {
		a->argv[0] = (char *)s->opts.self_exe;
		a->argv[1] = "kernel";
		a->argv[2] = (char *)k->cfg->name;
		a->argv[3] = NULL;
	}
	char tok_path[PATH_MAX];
	sdk_token_path(s->opts.cfg, tok_path, sizeof tok_path);
	snprintf(a->e_tok, sizeof a->e_tok, "GRACE_INTERNAL_TOKEN_FILE=%s", tok_path);
	snprintf(a->e_notify, sizeof a->e_notify, "NOTIFY_SOCKET=%s", s->notify_path);
	/* sd_watchdog_enabled(3) wants WATCHDOG_PID to be the kernel's own pid
	 * (filled in by spawn) and no WATCHDOG_USEC at all when there is none. */
	if (k->cfg->watchdog_ms)
		snprintf(a->e_wd, sizeof a->e_wd, "WATCHDOG_USEC=%llu",
			 (unsigned long long)k->cfg->watchdog_ms * 1000ULL);
	else
		snprintf(a->e_wd, sizeof a->e_wd, "WATCHDOG_USEC");
	snprintf(a->e_kernel, sizeof a->e_kernel, "GRACE_KERNEL=%s", k->cfg->name);
	snprintf(a->e_cfg, sizeof a->e_cfg, "GRACE_CONFIG=%s", s->opts.cfg->path);
	snprintf(a->e_data, sizeof a->e_data, "GRACE_DATA_DIR=%s", s->opts.cfg->data_dir);
	snprintf(a->e_off, sizeof a->e_off, "GRACE_PORT_OFFSET=%d", s->opts.cfg->port_offset);
	snprintf(a->e_lib, sizeof a->e_lib, "GRACE_LIBRARY_ROOT=%s", s->opts.cfg->library_root);
	snprintf(a->e_names, sizeof a->e_names, "LISTEN_FDNAMES=%s", k->cfg->name);
	/* What the trust kernel checks the main process's attestation against
	 * (a hash: no secret); bare (removed) when there is none. */
	snprintf(a->e_main, sizeof a->e_main, "%s%s%s", SDK_MAIN_ATTEST_ENV,
		 s->opts.main_hash ? "=" : "", s->opts.main_hash ? s->opts.main_hash : "");
	/* A one-time join credential for this process (attest.h). */
	char cred[SUP_JOIN_HEX + 1];
	sup_join_make(cred, standby ? k->sb_join_hash : k->join_hash);
	snprintf(a->e_join, sizeof a->e_join, SUP_JOIN_ENV "=%s", cred);
	sodium_memzero(cred, sizeof cred);
	size_t n = 0;
	a->env[n++] = a->e_join;
	a->env[n++] = a->e_notify;
	a->env[n++] = a->e_wd;
	a->env[n++] = a->e_kernel;
	a->env[n++] = a->e_data;
	a->env[n++] = a->e_off;
	a->env[n++] = a->e_lib;
	a->env[n++] = "LISTEN_FDS=1";
	a->env[n++] = a->e_names;
	a->env[n++] = a->e_tok;
	a->env[n++] = a->e_main;
	a->env[n++] = s->opts.cfg->path[0] ? a->e_cfg : "GRACE_CONFIG=";
	a->env[n++] = standby ? SDK_STANDBY_ENV "=1" : SDK_STANDBY_ENV; /* bare: removed */
	/* A standby resolves every symbol while it waits, not on first call
	 * after a crash (ld.so(8)). */
	if (standby)
		a->env[n++] = "LD_BIND_NOW=1";
	a->env[n] = NULL;
	return 0;
}

/* A new run: `pid` serves the kernel from `now` on. */
static void run_begins(sup_kernel *k, pid_t pid, uint64_t now)
{
	k->started_mono_ms = now;
	k->started_ms = sdk_wall_ms();
	k->kill_reason[0] = '\0';
	k->pid = pid;
}

/* SUP_A_SPAWN. Returns the event to step instead when it fails. */
static int spawn_kernel(sup_kernel *k)
{
	struct spawn_args a;
	if (spawn_args_build(k, &a, false) < 0) {
		snprintf(k->last_exit, sizeof k->last_exit, "command cannot be parsed");
		return SUP_EV_BAD_COMMAND;
	}
	sup_spawn_opts o = { .argv = (const char *const *)a.argv,
			     .env = a.env,
			     .listen_fd = k->fd,
			     .watchdog_pid = k->cfg->watchdog_ms > 0,
			     .nice = (int)k->cfg->nice };
	/* The attempt counts as a start, for the burst limit, even if fork fails. */
	uint64_t now = (uint64_t)sdk_mono_ms();
	sup_history_add_start(&k->history, now);
	exec_watch_close(k);
	int exec_fd = -1;
	pid_t pid = sup_spawn(&o, &exec_fd);
	sodium_memzero(a.e_join, sizeof a.e_join); /* the child has its copy */
	if (pid < 0) {
		snprintf(k->last_exit, sizeof k->last_exit, "cannot run %s: %s", a.argv[0],
			 strerror((int)-pid));
		sdk_warn("kernel %s: %s", k->cfg->name, k->last_exit);
		return SUP_EV_SPAWN_FAILED;
	}
	run_begins(k, pid, now);
	/* Not waited for: the kernels' execs run in parallel. */
	k->exec_ev = event_new(k->sup->base, exec_fd, EV_READ, on_exec_result, k);
	if (k->exec_ev)
		event_add(k->exec_ev, NULL);
	else
		close(exec_fd);
	sdk_debug("kernel %s: spawned pid %d on port %d", k->cfg->name, (int)pid, k->port);
	return -1;
}

/* ---- the standby: its table's actions ---- */

static void retire(supervisor *s, pid_t pid)
{
	if (s->n_retiring < RETIRING_MAX) {
		s->retiring[s->n_retiring++] = pid;
		return;
	}
	/* Cannot happen (two per kernel at most); reaped as a stranger then. */
	kill(pid, SIGKILL);
}

static bool retiring_forget(supervisor *s, pid_t pid)
{
	for (size_t i = 0; i < s->n_retiring; i++)
		if (s->retiring[i] == pid) {
			s->retiring[i] = s->retiring[--s->n_retiring];
			return true;
		}
	return false;
}

static void on_sb_exec(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	exec_pipe_close(&((sup_kernel *)arg)->sb_exec_ev);
}

static int standby_spawn(sup_kernel *k)
{
	struct spawn_args a;
	if (spawn_args_build(k, &a, true) < 0)
		return -EINVAL;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	sup_spawn_opts o = { .argv = (const char *const *)a.argv,
			     .env = a.env,
			     .listen_fd = sv[1], /* its fd 3 until it is handed the port */
			     .watchdog_pid = k->cfg->watchdog_ms > 0,
			     .nice = (int)k->cfg->nice };
	int exec_fd = -1;
	pid_t pid = sup_spawn(&o, &exec_fd);
	sodium_memzero(a.e_join, sizeof a.e_join);
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		return (int)pid;
	}
	/* Its exec result is not waited for: a standby that cannot run exits,
	 * and that exit is all the table needs. The pipe is watched only to
	 * know when its copy of our descriptors is gone (execs_settle). */
	exec_pipe_close(&k->sb_exec_ev);
	k->sb_exec_ev = event_new(k->sup->base, exec_fd, EV_READ, on_sb_exec, k);
	if (k->sb_exec_ev)
		event_add(k->sb_exec_ev, NULL);
	else
		close(exec_fd);
	k->sb_pid = pid;
	k->sb_fd = sv[0];
	/* Registered now (only `grace kernel NAME` has standbys: /proc/PID/exe
	 * is this binary before and after its exec). */
	if (k->sup->opts.on_spawned)
		k->sup->opts.on_spawned(k, pid, k->sb_join_hash, k->sup->opts.arg);
	sdk_info("kernel %s: standby pid %d started", k->cfg->name, (int)pid);
	return 0;
}

/* The standby timer: `ms` from now, or the next free slot if later. */
static void sb_arm(sup_kernel *k, uint64_t ms)
{
	supervisor *s = k->sup;
	uint64_t now = (uint64_t)sdk_mono_ms(), at = now + ms;
	if (at < s->sb_next_slot_ms)
		at = s->sb_next_slot_ms;
	s->sb_next_slot_ms = at + STANDBY_SPACING_MS;
	arm(k->sb_timer, at - now);
}

/* Steps one event through the standby's table and performs the answer. */
static void sb_feed(sup_kernel *k, enum sup_sb_event ev)
{
	sup_sb_in in = { .enabled = sup_kernel_has_standby(k) && !k->sup->shutting_down,
			 .fails = k->sb_fails };
	sup_sb_outcome o = sup_sb_step(k->sb_state, ev, &in);
	int rc;
	if ((o.actions & SUP_SBA_SPAWN) && (rc = standby_spawn(k)) < 0) {
		/* Abandoned: the failure, from the same state. */
		sdk_warn("kernel %s: cannot start a standby: %s", k->cfg->name, strerror(-rc));
		ev = SUP_SB_SPAWN_FAILED;
		o = sup_sb_step(k->sb_state, ev, &in);
	}
	unsigned a = o.actions;
	if (a & SUP_SBA_CANCEL_TIMER)
		evtimer_del(k->sb_timer);
	if (a & SUP_SBA_ARM)
		sb_arm(k, k->cfg->restart.stable_ms);
	if (a & SUP_SBA_REARM)
		sb_arm(k, k->cfg->restart.stable_ms > STANDBY_RETRY_MS ? k->cfg->restart.stable_ms
									: STANDBY_RETRY_MS);
	if (a & (SUP_SBA_RETIRE | SUP_SBA_FORGET)) {
		/* Closing the channel is the word to leave; after a hand-over it
		 * has served already. */
		if (k->sb_fd >= 0)
			close(k->sb_fd);
		k->sb_fd = -1;
		if (a & SUP_SBA_RETIRE)
			retire(k->sup, k->sb_pid);
		k->sb_pid = 0;
	}
	if (a & SUP_SBA_CLEAR_FAILS)
		k->sb_fails = 0;
	if (a & SUP_SBA_COUNT_FAIL)
		k->sb_fails++;
	if (a & SUP_SBA_GIVE_UP)
		sdk_warn("kernel %s: %u standbys in a row lost: none until it is ready again",
			 k->cfg->name, k->sb_fails);
	if (o.next != k->sb_state)
		sdk_debug("kernel %s: standby %s -> %s (%s)", k->cfg->name,
			  sup_sb_state_name(k->sb_state), sup_sb_state_name((enum sup_sb_state)o.next),
			  sup_sb_event_name(ev));
	k->sb_state = (enum sup_sb_state)o.next;
}

/* SUP_A_TAKEOVER: the kernel's port to the waiting standby. The previous
 * process has been reaped: nothing else has the store open. */
static int takeover(sup_kernel *k)
{
	int rc = sdk_standby_hand_over(k->sb_fd, k->fd);
	if (rc < 0) {
		sdk_warn("kernel %s: standby pid %d cannot take over: %s", k->cfg->name,
			 (int)k->sb_pid, strerror(-rc));
		sb_feed(k, SUP_SB_UNWANTED);
		return rc;
	}
	exec_watch_close(k);
	uint64_t now = (uint64_t)sdk_mono_ms();
	sup_history_add_start(&k->history, now);
	run_begins(k, k->sb_pid, now);
	k->takeovers++;
	sdk_info("kernel %s: standby pid %d takes over port %d", k->cfg->name, (int)k->pid,
		 k->port);
	sb_feed(k, SUP_SB_TAKEN);
	return 0;
}

/* ---- the kernel's table: feed an event, perform, commit ---- */

/* Performs a step's actions in their bit order. Returns the event to step
 * instead when BIND or START failed (the transition is then abandoned),
 * else -1. */
static int perform(sup_kernel *k, const sup_step_out *o, int *bind_rc)
{
	uint32_t a = o->actions;
	char why[128];
	if (o->asked) {
		k->history.quick_crashes = o->decision.streak;
		if (o->decision.verdict == SUP_GIVE_UP)
			sdk_error("kernel %s: failed: %s (last: %s)", k->cfg->name, o->decision.why,
				  k->last_exit);
	}
	if (a & SUP_A_CANCEL_TIMER)
		evtimer_del(k->timer);
	if (a & SUP_A_CANCEL_WATCHDOG)
		evtimer_del(k->watchdog);
	if (a & SUP_A_TERM) {
		kill_group(k, SIGTERM);
		/* As systemd does: a stopped (SIGSTOP) process must run to act on it. */
		kill_group(k, SIGCONT);
	}
	if (a & SUP_A_KILL_NOT_READY) {
		snprintf(why, sizeof why, "not ready within %u ms", k->cfg->ready_timeout_ms);
		kill_for(k, why);
	}
	if (a & SUP_A_KILL_NOT_STOPPED) {
		snprintf(why, sizeof why, "did not stop within %u ms", k->cfg->stop_timeout_ms);
		kill_for(k, why);
	}
	if (a & SUP_A_KILL_HUNG) {
		k->watchdog_kills++;
		snprintf(why, sizeof why, "watchdog: no WATCHDOG=1 for %u ms", k->cfg->watchdog_ms);
		kill_for(k, why);
	}
	if (a & SUP_A_RESET_HISTORY)
		sup_history_reset(&k->history);
	if (a & SUP_A_BIND) {
		int rc = ensure_socket(k);
		if (rc < 0) {
			*bind_rc = rc;
			return SUP_EV_BIND_FAILED;
		}
	}
	if ((a & SUP_A_TAKEOVER) && takeover(k) < 0)
		a |= SUP_A_SPAWN; /* the standby is gone: a fresh process after all */
	if (a & SUP_A_SPAWN) {
		int fail = spawn_kernel(k);
		if (fail >= 0)
			return fail;
	}
	if (a & SUP_A_COUNT_RESTART)
		k->restarts++;
	if (a & SUP_A_ARM_READY)
		arm(k->timer, k->cfg->ready_timeout_ms);
	if (a & SUP_A_ARM_STOP)
		arm(k->timer, k->cfg->stop_timeout_ms);
	if (a & SUP_A_ARM_BACKOFF)
		arm(k->timer, o->delay_ms);
	if ((a & SUP_A_ARM_WATCHDOG) && k->cfg->watchdog_ms)
		arm(k->watchdog, k->cfg->watchdog_ms);
	if ((a & SUP_A_CLOSE_PORT) && k->fd >= 0) {
		/* Nobody will accept on it: let clients be refused at once rather
		 * than wait in a backlog forever. Starting again binds anew. */
		close(k->fd);
		k->fd = -1;
	}
	if (a & SUP_A_SB_WANT)
		sb_feed(k, SUP_SB_WANTED);
	if (a & SUP_A_SB_DROP)
		sb_feed(k, SUP_SB_UNWANTED);
	return -1;
}

static void commit(sup_kernel *k, enum sup_state next, enum sup_event cause)
{
	enum sup_state old = k->state;
	if (old == next)
		return;
	k->state = next;
	k->since_ms = sdk_wall_ms();
	sdk_info("kernel %s: %s -> %s (%s)", k->cfg->name, sup_state_key(old),
		 sup_state_key(next), sup_event_name(cause));
	note(k, old, cause);
}

/* Steps one event through the table and performs the answer. Returns what
 * an operator is told: 0, -EALREADY, or a failed bind's errno. */
static int feed(sup_kernel *k, enum sup_event ev, bool permanent)
{
	sup_step_in in = { .restart = &k->cfg->restart,
			   .history = &k->history,
			   .now_ms = (uint64_t)sdk_mono_ms(),
			   .started_ms = k->started_mono_ms,
			   .permanent = permanent,
			   .standby_ready = k->sb_state == SUP_SB_WAITING && k->sb_pid > 0 };
	sup_step_out o = sup_step(k->state, ev, &in);
	int bind_rc = 0;
	int fail = perform(k, &o, &bind_rc);
	if (fail < 0) {
		commit(k, o.next, ev);
		return o.result;
	}
	/* Abandoned: the failure, from the same state. Its cells start nothing,
	 * so this cannot fail again. */
	in.now_ms = (uint64_t)sdk_mono_ms();
	sup_step_out f = sup_step(k->state, (enum sup_event)fail, &in);
	perform(k, &f, &bind_rc);
	commit(k, f.next, (enum sup_event)fail);
	return fail == SUP_EV_BIND_FAILED ? bind_rc : o.result;
}

/* ---- what happens to the processes ---- */

static void describe_exit(sup_kernel *k, int status)
{
	char what[64];
	if (WIFEXITED(status))
		snprintf(what, sizeof what, "exit %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(what, sizeof what, "signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else
		snprintf(what, sizeof what, "status %d", status);
	char text[sizeof k->last_exit];
	if (k->kill_reason[0])
		snprintf(text, sizeof text, "%.120s: %s", k->kill_reason, what);
	else
		snprintf(text, sizeof text, "%s", what);
	memcpy(k->last_exit, text, sizeof text);
}

static void on_kernel_exit(sup_kernel *k, int status)
{
	exec_watch_read(k);
	exec_watch_close(k);
	k->pid = 0;
	describe_exit(k, status);
	bool asked_to = k->state == SUP_STOPPING || k->state == SUP_STOP_THEN_START;
	sdk_log(asked_to ? SDK_LOG_INFO : SDK_LOG_WARN, NULL, "kernel %s: exited: %s",
		k->cfg->name, k->last_exit);
	feed(k, SUP_EV_EXIT, WIFEXITED(status) && WEXITSTATUS(status) == EXIT_PERMANENT);
}

static void on_standby_exit(sup_kernel *k, int status)
{
	if (k->sb_fd >= 0)
		close(k->sb_fd);
	k->sb_fd = -1;
	k->sb_pid = 0;
	sdk_warn("kernel %s: standby exited unused: %s %d", k->cfg->name,
		 WIFSIGNALED(status) ? "signal" : "exit",
		 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	sb_feed(k, SUP_SB_EXIT);
}

static sup_kernel *kernel_by_pid(supervisor *s, pid_t pid)
{
	/* A unit's main process is systemd's child, never ours. */
	for (size_t i = 0; i < s->n; i++)
		if (s->kernels[i].pid == pid && manager_of(&s->kernels[i])->our_child)
			return &s->kernels[i];
	return NULL;
}

static sup_kernel *kernel_by_standby(supervisor *s, pid_t pid)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->kernels[i].sb_pid == pid)
			return &s->kernels[i];
	return NULL;
}

static void on_sigchld(evutil_socket_t sig, short what, void *arg)
{
	(void)sig, (void)what;
	supervisor *s = arg;
	for (;;) {
		siginfo_t info = { 0 };
		/* Peek first: while the exited kernel is a zombie its pid (and so its
		 * process group id) cannot be reused, so killing the group is safe. */
		if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) < 0 || info.si_pid == 0)
			break;
		pid_t pid = info.si_pid;
		if (sup_units_owns(s->units, pid)) {
			int status = 0;
			if (waitpid(pid, &status, WNOHANG) <= 0)
				break;
			sup_units_reaped(s->units, pid, status);
			continue;
		}
		sup_kernel *k = kernel_by_pid(s, pid);
		if (k)
			kill(-pid, SIGKILL);
		int status = 0;
		if (waitpid(pid, &status, WNOHANG) <= 0)
			break;
		sup_kernel *sk;
		if (k)
			on_kernel_exit(k, status);
		else if ((sk = kernel_by_standby(s, pid)))
			on_standby_exit(sk, status);
		else
			retiring_forget(s, pid);
	}
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	feed(arg, SUP_EV_TIMEOUT, false);
}

static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	feed(arg, SUP_EV_WATCHDOG, false);
}

static void on_standby_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	sb_feed(arg, SUP_SB_TIMEOUT);
}

static void on_notify_msg(sup_kernel *k, char *msg)
{
	char *save = NULL;
	for (char *line = strtok_r(msg, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (!strcmp(line, "READY=1"))
			feed(k, SUP_EV_READY, false);
		else if (!strcmp(line, "WATCHDOG=1"))
			feed(k, SUP_EV_PING, false);
		else if (!strcmp(line, "STOPPING=1"))
			feed(k, SUP_EV_DRAINING, false);
	}
}

static void on_notify(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	supervisor *s = arg;
	for (;;) {
		char buf[NOTIFY_MSG_MAX + 1];
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(sizeof(struct ucred))];
		} ctl;
		struct iovec iov = { buf, NOTIFY_MSG_MAX };
		struct msghdr mh = { .msg_iov = &iov,
				     .msg_iovlen = 1,
				     .msg_control = &ctl,
				     .msg_controllen = sizeof ctl };
		ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0)
			break;
		buf[n] = '\0';
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_CREDENTIALS)
			continue;
		struct ucred cred;
		memcpy(&cred, CMSG_DATA(c), sizeof cred);
		/* Only a kernel's own process speaks for it (a standby has no say). */
		sup_kernel *k = kernel_by_pid(s, cred.pid);
		if (k)
			on_notify_msg(k, buf);
	}
}

static int notify_socket_open(supervisor *s)
{
	snprintf(s->notify_path, sizeof s->notify_path, "@grace/%d/notify", (int)getpid());
	struct sockaddr_un sun;
	int alen = sdk_notify_addr(s->notify_path, &sun);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) < 0 ||
	    bind(fd, (struct sockaddr *)&sun, (socklen_t)alen) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	s->notify_fd = fd;
	return 0;
}

/* ---- kernels run by systemd ([kernel.NAME] manager = systemd) ----
 *
 * Their processes are systemd's: started, stopped and restarted with
 * systemctl, their state read every [systemd] poll_ms (and right after
 * each action) and told to observers as any kernel's change, so the
 * guardian probes them and the healer's playbooks act on them through
 * systemd. systemd restarts them (Restart=), watches them (WatchdogSec=)
 * and bounds their start (TimeoutStartSec=): none of this file's timers
 * or policies apply. */

#define UNIT_SHOW_DEADLINE_MS 5000
#define UNIT_ACTION_SLACK_MS 5000 /* beyond the kernel's own timeout */

static void unit_poll(supervisor *s);

/* A state read from elsewhere (a unit's, another node's), as the event
 * observers are told caused it. */
static enum sup_event reported_cause(enum sup_state next)
{
	return next == SUP_READY      ? SUP_EV_READY
	       : next == SUP_STOPPING ? SUP_EV_STOP
	       : next == SUP_STARTING || next == SUP_RESTARTING ? SUP_EV_START
								: SUP_EV_EXIT;
}

static void unit_poll_soon(supervisor *s)
{
	if (s->unit_polling)
		s->unit_poll_again = true;
	else
		unit_poll(s);
}

/* One reading of a kernel's units, unless an action began or ended since it
 * was asked for. */
static void unit_apply(sup_kernel *k, const sup_unit_status *st, const sup_unit_status *sock)
{
	k->socket_active = sock && !strcmp(sock->active, "active");
	enum sup_state next = sup_unit_state(st);
	pid_t pid = next == SUP_STOPPED || next == SUP_FAILED ? 0 : st->main_pid;
	char ended[sizeof k->last_exit];
	sup_unit_describe_exit(st, ended, sizeof ended);
	if (strcmp(st->load, "loaded"))
		snprintf(k->last_exit, sizeof k->last_exit, "unit %.128s: %.24s", st->id, st->load);
	else if (ended[0] && st->exec_start_mono_us)
		snprintf(k->last_exit, sizeof k->last_exit, "%s", ended);
	/* systemd restarted it between two readings: a new NRestarts, or
	 * another main process. Observers hear of the restart as of any. */
	bool restarted = k->unit_seen && (st->n_restarts > k->unit_nrestarts ||
					  (k->pid > 0 && pid > 0 && pid != k->pid));
	if (restarted) {
		k->restarts += st->n_restarts > k->unit_nrestarts ? st->n_restarts - k->unit_nrestarts
								  : 1;
		/* Seen only after the new process started: systemd no longer
		 * says how the old one ended (its journal does). */
		if (!ended[0] || !st->exec_start_mono_us)
			snprintf(k->last_exit, sizeof k->last_exit,
				 "restarted by systemd (NRestarts=%u); how it ended: journalctl -u %.100s",
				 st->n_restarts, st->id);
		if (k->state == SUP_READY && next == SUP_READY)
			commit(k, SUP_RESTARTING, SUP_EV_EXIT);
	}
	k->unit_nrestarts = st->n_restarts;
	if (pid != k->pid && pid > 0) {
		uint64_t now_us = (uint64_t)sdk_mono_ms() * 1000;
		k->started_mono_ms = st->exec_start_mono_us ? st->exec_start_mono_us / 1000
							    : now_us / 1000;
		k->started_ms = sdk_wall_ms() - (int64_t)((now_us / 1000) - k->started_mono_ms);
	}
	k->pid = pid;
	k->unit_seen = true;
	enum sup_event cause = reported_cause((enum sup_state)next);
	commit(k, next, cause);
}

static const sup_unit_status *unit_find(const sup_unit_status *st, int n, const char *id)
{
	for (int i = 0; id[0] && i < n; i++)
		if (!strcmp(st[i].id, id))
			return &st[i];
	return NULL;
}

static void on_unit_show(int status, const char *out, size_t len, void *arg)
{
	supervisor *s = arg;
	s->unit_polling = false;
	static sup_unit_status st[2 * GRACE_KERNELS_MAX]; /* the loop's only: too big for its stack */
	int n = status == 0 ? sup_unit_parse_show(out, len, st, 2 * GRACE_KERNELS_MAX) : -1;
	if (n < 0) {
		sdk_warn("systemd: cannot read the kernels' units (%s %d): %.200s",
			 status < 0 ? "cannot run systemctl:" : "systemctl show: status", status, out);
	} else {
		for (size_t i = 0; i < s->n; i++) {
			sup_kernel *k = &s->kernels[i];
			if (!manager_of(k)->unit || k->unit_busy ||
			    s->unit_poll_gen[i] != k->unit_gen)
				continue;
			const sup_unit_status *svc = unit_find(st, n, k->unit);
			if (svc)
				unit_apply(k, svc, unit_find(st, n, k->socket_unit));
		}
	}
	if (s->unit_poll_again) {
		s->unit_poll_again = false;
		unit_poll(s);
		return;
	}
	struct timeval tv = sdk_ms_tv(s->opts.cfg->systemd.poll_ms);
	evtimer_add(s->unit_poll_ev, &tv);
}

static void unit_poll(supervisor *s)
{
	const char *args[SUP_UNITS_ARGS_MAX];
	size_t n = 0;
	args[n++] = "show";
	args[n++] = "-p";
	args[n++] = SUP_UNIT_PROPS;
	args[n++] = "--";
	size_t first = n;
	for (size_t i = 0; i < s->n && n + 2 < SUP_UNITS_ARGS_MAX; i++) {
		sup_kernel *k = &s->kernels[i];
		if (!manager_of(k)->unit || !k->cfg->enabled)
			continue;
		s->unit_poll_gen[i] = k->unit_gen;
		args[n++] = k->unit;
		if (k->socket_unit[0])
			args[n++] = k->socket_unit;
	}
	args[n] = NULL;
	if (n == first || s->shutting_down)
		return;
	evtimer_del(s->unit_poll_ev);
	int rc = sup_units_run(s->units, args, UNIT_SHOW_DEADLINE_MS, on_unit_show, s);
	if (rc < 0) {
		sdk_warn("systemd: cannot run systemctl show: %s", strerror(-rc));
		struct timeval tv = sdk_ms_tv(s->opts.cfg->systemd.poll_ms);
		evtimer_add(s->unit_poll_ev, &tv);
		return;
	}
	s->unit_polling = true;
}

static void on_unit_poll(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	unit_poll(arg);
}

/* The end of one systemctl action on a kernel: its failure is the kernel's
 * last_exit (an operator reads it in the API and the healer's incident),
 * and a start that failed leaves the kernel failed. */
static void on_unit_action(int status, const char *out, size_t len, void *arg)
{
	(void)len;
	sup_kernel *k = arg;
	k->unit_busy = false;
	k->unit_gen++;
	if (status != 0) {
		char what[48];
		if (status < 0)
			snprintf(what, sizeof what, "cannot run: %s", strerror(-status));
		else if (WIFEXITED(status))
			snprintf(what, sizeof what, "exit %d", WEXITSTATUS(status));
		else
			snprintf(what, sizeof what, "killed (signal %d)", WTERMSIG(status));
		size_t line = strcspn(out, "\n");
		snprintf(k->last_exit, sizeof k->last_exit, "systemctl %s: %s%s%.*s",
			 k->state == SUP_STOPPING ? "stop" : "start", what, line ? ": " : "",
			 (int)(line > 120 ? 120 : line), out);
		sdk_warn("kernel %s: %s", k->cfg->name, k->last_exit);
		if (k->state == SUP_STARTING || k->state == SUP_STOP_THEN_START)
			commit(k, SUP_FAILED, SUP_EV_SPAWN_FAILED);
	}
	unit_poll_soon(k->sup);
}

/* `verb` the units of k in the order given; the state it shows meanwhile. */
static int unit_act(sup_kernel *k, const char *verb, bool with_socket, bool socket_first,
		    enum sup_state during, enum sup_event cause, unsigned timeout_ms)
{
	if (k->unit_busy)
		return -EBUSY;
	const char *args[5];
	size_t n = 0;
	args[n++] = verb;
	if (with_socket && socket_first && k->socket_unit[0])
		args[n++] = k->socket_unit;
	args[n++] = k->unit;
	if (with_socket && !socket_first && k->socket_unit[0])
		args[n++] = k->socket_unit;
	args[n] = NULL;
	int rc = sup_units_run(k->sup->units, args, timeout_ms + UNIT_ACTION_SLACK_MS,
			       on_unit_action, k);
	if (rc < 0) {
		snprintf(k->last_exit, sizeof k->last_exit, "cannot run systemctl %s: %s", verb,
			 strerror(-rc));
		return rc;
	}
	k->unit_busy = true;
	k->unit_gen++;
	k->kill_reason[0] = '\0';
	commit(k, during, cause);
	return 0;
}

static int unit_start(sup_kernel *k)
{
	if (k->state == SUP_READY || k->state == SUP_STARTING)
		return -EALREADY;
	/* The socket first: systemd's order for socket activation. */
	return unit_act(k, "start", true, true, SUP_STARTING, SUP_EV_START,
			k->cfg->ready_timeout_ms);
}

static int unit_stop(sup_kernel *k)
{
	if (k->state == SUP_STOPPED)
		return -EALREADY;
	/* The socket too, or the next connection would start it again. */
	return unit_act(k, "stop", true, false, SUP_STOPPING, SUP_EV_STOP,
			k->cfg->stop_timeout_ms);
}

static int unit_restart(sup_kernel *k)
{
	return unit_act(k, "restart", false, false, SUP_STOP_THEN_START, SUP_EV_RESTART,
			k->cfg->stop_timeout_ms + k->cfg->ready_timeout_ms);
}

/* Units' names from their patterns, and systemctl, when any kernel has them. */
static int units_open(supervisor *s)
{
	bool any = false;
	for (size_t i = 0; i < s->n; i++) {
		sup_kernel *k = &s->kernels[i];
		if (!manager_of(k)->unit)
			continue;
		any = true;
		if (sup_unit_name(k->cfg->unit, k->cfg->name, k->port, k->unit, sizeof k->unit) < 0 ||
		    sup_unit_name(k->cfg->socket_unit, k->cfg->name, k->port, k->socket_unit,
				  sizeof k->socket_unit) < 0) {
			sdk_error("kernel %s: its unit names are too long", k->cfg->name);
			return -1;
		}
	}
	if (!any)
		return 0;
	s->units = sup_units_new(s->base, s->opts.cfg->systemd.systemctl);
	s->unit_poll_ev = evtimer_new(s->base, on_unit_poll, s);
	if (!s->units || !s->unit_poll_ev) {
		sdk_error("systemd: [systemd] systemctl cannot be used: '%s'",
			  s->opts.cfg->systemd.systemctl);
		return -1;
	}
	return 0;
}

supervisor *sup_new(struct event_base *base, const sup_opts *opts)
{
	supervisor *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->base = base;
	s->opts = *opts;
	s->notify_fd = -1;
	if (notify_socket_open(s) < 0)
		goto fail;
	s->notify_ev = event_new(base, s->notify_fd, EV_READ | EV_PERSIST, on_notify, s);
	s->sigchld_ev = evsignal_new(base, SIGCHLD, on_sigchld, s);
	/* Observers run right after the callback that changed a state: first
	 * among what is ready when the loop has priorities (serve.c gives it
	 * two), in turn otherwise. */
	s->drain_ev = event_new(base, -1, 0, on_drain, s);
	if (!s->notify_ev || !s->sigchld_ev || !s->drain_ev)
		goto fail;
	event_priority_set(s->drain_ev, 0);
	event_add(s->notify_ev, NULL);
	evsignal_add(s->sigchld_ev, NULL);
	for (size_t i = 0; i < opts->cfg->n_kernels; i++) {
		sup_kernel *k = &s->kernels[s->n++];
		k->cfg = &opts->cfg->kernels[i];
		k->sup = s;
		k->fd = k->sb_fd = -1;
		k->state = SUP_STOPPED;
		k->sb_state = SUP_SB_NONE;
		k->since_ms = sdk_wall_ms();
		k->port = k->configured_port = grace_kernel_port(opts->cfg, k->cfg);
		/* Until its node first answers, nothing is known of it. */
		if (!grace_kernel_local(opts->cfg, k->cfg))
			k->state = SUP_UNREACHABLE;
		k->timer = evtimer_new(base, on_timer, k);
		k->watchdog = evtimer_new(base, on_watchdog, k);
		k->sb_timer = evtimer_new(base, on_standby_timer, k);
		if (!k->timer || !k->watchdog || !k->sb_timer)
			goto fail;
	}
	if (units_open(s) < 0)
		goto fail;
	return s;
fail:
	sup_free(s);
	return NULL;
}

static void kill_and_reap(pid_t pid, bool group)
{
	if (pid <= 0)
		return;
	if (!group || (kill(-pid, SIGKILL) < 0 && errno == ESRCH))
		kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

void sup_free(supervisor *s)
{
	if (!s)
		return;
	sup_units_free(s->units);
	if (s->unit_poll_ev)
		event_free(s->unit_poll_ev);
	for (size_t i = 0; i < s->n; i++) {
		sup_kernel *k = &s->kernels[i];
		if (manager_of(k)->our_child) /* a unit's is systemd's to kill */
			kill_and_reap(k->pid, true);
		kill_and_reap(k->sb_pid, false);
		if (k->fd >= 0)
			close(k->fd);
		if (k->sb_fd >= 0)
			close(k->sb_fd);
		struct event *evs[] = { k->timer, k->watchdog, k->sb_timer };
		for (size_t j = 0; j < sizeof evs / sizeof *evs; j++)
			if (evs[j])
				event_free(evs[j]);
		exec_watch_close(k);
		exec_pipe_close(&k->sb_exec_ev);
	}
	for (size_t i = 0; i < s->n_retiring; i++)
		kill_and_reap(s->retiring[i], false);
	struct event *evs[] = { s->notify_ev, s->sigchld_ev, s->drain_ev };
	for (size_t j = 0; j < sizeof evs / sizeof *evs; j++)
		if (evs[j])
			event_free(evs[j]);
	if (s->notify_fd >= 0)
		close(s->notify_fd);
	free(s->notes);
	free(s);
}

/* ---- kernels on other nodes ([kernel.NAME] node) ----
 *
 * Their node's supervisor runs them with everything in this file; here
 * they are what that node last said (serve/node/nodes.h polls it), and an
 * operator's action is sent there. */

static int remote_act(sup_kernel *k, const char *verb)
{
	supervisor *s = k->sup;
	return s->opts.remote_act ? s->opts.remote_act(k, verb, s->opts.remote_arg) : -ENOTSUP;
}

void sup_set_remote_act(supervisor *s, int (*fn)(sup_kernel *k, const char *verb, void *arg),
			void *arg)
{
	s->opts.remote_act = fn;
	s->opts.remote_arg = arg;
}

static int remote_start(sup_kernel *k)
{
	if (k->state == SUP_READY || k->state == SUP_STARTING)
		return -EALREADY;
	return remote_act(k, "start");
}

static int remote_stop(sup_kernel *k)
{
	if (k->state == SUP_STOPPED)
		return -EALREADY;
	return remote_act(k, "stop");
}

static int remote_restart(sup_kernel *k) { return remote_act(k, "restart"); }

int sup_kernel_remote_report(sup_kernel *k, const char *state, pid_t pid, unsigned restarts,
			     const char *last_exit)
{
	int next = -1;
	for (int st = 0; st < SUP_STATE_COUNT && next < 0; st++)
		if (!strcmp(state, sup_state_key((enum sup_state)st)))
			next = st;
	if (next < 0)
		return -1;
	if (last_exit)
		snprintf(k->last_exit, sizeof k->last_exit, "%s", last_exit);
	if (next != SUP_UNREACHABLE) {
		k->pid = pid;
		k->restarts = restarts;
	}
	enum sup_event cause = reported_cause((enum sup_state)next);
	commit(k, (enum sup_state)next, cause);
	return 0;
}

static int forked_start(sup_kernel *k) { return feed(k, SUP_EV_START, false); }
static int forked_stop(sup_kernel *k) { return feed(k, SUP_EV_STOP, false); }
static int forked_restart(sup_kernel *k) { return feed(k, SUP_EV_RESTART, false); }

static const sup_manager managers[] = {
	[GRACE_MANAGER_GRACE] = { .name = "grace", .start = forked_start, .stop = forked_stop,
				  .restart = forked_restart, .our_child = true, .standby = true,
				  .port_moves = true },
	[GRACE_MANAGER_SYSTEMD] = { .name = "systemd", .start = unit_start, .stop = unit_stop,
				    .restart = unit_restart, .unit = true },
};

static const sup_manager node_manager = { .name = "node", .start = remote_start,
					  .stop = remote_stop, .restart = remote_restart,
					  .remote = true };

static const sup_manager *manager_of(const sup_kernel *k)
{
	/* Whoever runs it on its own node, here it is that node's. */
	if (!grace_kernel_local(k->sup->opts.cfg, k->cfg))
		return &node_manager;
	int m = k->cfg->manager;
	/* The configuration admits only these two words. */
	return &managers[m >= 0 && (size_t)m < sizeof managers / sizeof *managers ? m : 0];
}

unsigned sup_kernel_lag_ms(const sup_kernel *k)
{
	/* A unit's state is read at the next poll, by a systemctl that may
	 * itself take a while on a busy machine: two intervals. */
	const grace_config *cfg = k->sup->opts.cfg;
	if (manager_of(k)->remote) /* its node's next reports, each a call away */
		return 2 * cfg->nodes.poll_ms + cfg->nodes.down_ms;
	return manager_of(k)->unit ? 2 * cfg->systemd.poll_ms : 0;
}

int sup_kernel_start(sup_kernel *k)
{
	if (k->sup->shutting_down)
		return -ESHUTDOWN;
	return manager_of(k)->start(k);
}

int sup_kernel_stop(sup_kernel *k)
{
	return manager_of(k)->stop(k);
}

int sup_kernel_restart(sup_kernel *k)
{
	if (k->sup->shutting_down)
		return -ESHUTDOWN;
	return manager_of(k)->restart(k);
}

int sup_kernel_set_port(sup_kernel *k, int port, int fd)
{
	if (!manager_of(k)->port_moves) {
		if (fd >= 0)
			close(fd);
		return -ENOTSUP;
	}
	if (k->pid > 0) {
		if (fd >= 0)
			close(fd);
		return -EBUSY;
	}
	if (k->fd >= 0)
		close(k->fd);
	k->fd = fd;
	k->port = port;
	return 0;
}

void sup_start_all(supervisor *s)
{
	for (size_t i = 0; i < s->n; i++) {
		sup_kernel *k = &s->kernels[i];
		/* A remote kernel is started by its own node. */
		if (k->cfg->enabled && !manager_of(k)->remote)
			sup_kernel_start(k);
	}
	if (s->units)
		unit_poll_soon(s);
}

void sup_shutdown(supervisor *s)
{
	s->shutting_down = true;
	for (size_t i = 0; i < s->n; i++) {
		sup_kernel *k = &s->kernels[i];
		/* A unit outlives grace serve: systemd owns its lifetime (PartOf=
		 * in the unit, if it should stop with grace.service). */
		if (!manager_of(k)->our_child)
			continue;
		feed(k, SUP_EV_STOP, false);
		sb_feed(k, SUP_SB_UNWANTED);
	}
	/* Standbys hold nothing: ended here and now, so the loop's end waits
	 * only on the kernels draining (and hears of it through their changes). */
	for (size_t i = 0; i < s->n_retiring; i++)
		kill(s->retiring[i], SIGKILL);
	for (size_t i = 0; i < s->n_retiring; i++)
		while (waitpid(s->retiring[i], NULL, 0) < 0 && errno == EINTR)
			;
	s->n_retiring = 0;
}

size_t sup_count(const supervisor *s) { return s->n; }

sup_kernel *sup_at(supervisor *s, size_t i) { return i < s->n ? &s->kernels[i] : NULL; }

sup_kernel *sup_find(supervisor *s, const char *name)
{
	int i = grace_config_kernel_index(s->opts.cfg, name);
	return i < 0 ? NULL : &s->kernels[i];
}

bool sup_all_settled(const supervisor *s)
{
	for (size_t i = 0; i < s->n; i++) {
		enum sup_state st = s->kernels[i].state;
		/* Another node's kernels settle on their node's time, not ours. */
		if ((st == SUP_STARTING || st == SUP_RESTARTING) && !manager_of(&s->kernels[i])->remote)
			return false;
	}
	return true;
}

bool sup_shutting_down(const supervisor *s) { return s->shutting_down; }

bool sup_all_ready(const supervisor *s)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->kernels[i].cfg->enabled && s->kernels[i].state != SUP_READY)
			return false;
	return true;
}

bool sup_all_down(const supervisor *s)
{
	for (size_t i = 0; i < s->n; i++)
		if ((s->kernels[i].pid > 0 && manager_of(&s->kernels[i])->our_child) ||
		    s->kernels[i].sb_pid > 0)
			return false;
	return s->n_retiring == 0;
}
