/* The supervisor inside `grace serve`: holds every kernel's listening socket,
 * spawns the kernels, reaps them the moment they exit, restarts them by the
 * policy in policy.h, and kills the ones whose watchdog pings stop. What it
 * does in each state on each event is the table in table.h; this is the
 * shell that feeds it events and performs its actions. Observers hear of
 * state changes from the event loop, after the transition, in order. */
#ifndef GRACE_SUPERVISOR_SUPERVISOR_H
#define GRACE_SUPERVISOR_SUPERVISOR_H

#include "serve/layer.h"

#include "sdk/config.h"
#include "serve/supervisor/policy.h"
#include "serve/supervisor/sockets.h"
#include "serve/supervisor/table.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct event_base;
struct event;

typedef struct supervisor supervisor;

typedef struct sup_kernel {
	const grace_kernel_cfg *cfg;
	supervisor *sup;
	enum sup_state state;
	int64_t since_ms; /* wall clock, of the last state change */
	int port;         /* offset applied; rebind_port may move it */
	int configured_port; /* cfg->port with the offset applied */
	int fd;           /* our listening socket, -1 when not bound */
	pid_t pid;        /* 0 when no process */
	uint64_t started_mono_ms;
	int64_t started_ms; /* wall clock */
	unsigned restarts;  /* automatic restarts since grace serve started */
	unsigned watchdog_kills;
	unsigned takeovers; /* starts that were a standby taking over */
	char last_exit[192];
	char kill_reason[128]; /* why we killed it, reported with the exit */
	sup_port_holder holder; /* when port_unavailable */
	sup_history history;
	struct event *timer;    /* backoff, ready timeout or stop timeout */
	struct event *watchdog; /* hang deadline while ready */
	struct event *exec_ev;  /* the exec result pipe of the newest spawn */
	/* The standby: its own table (table.h), its process and its channel. */
	enum sup_sb_state sb_state;
	pid_t sb_pid;          /* 0 when no standby process */
	int sb_fd;             /* our end of its channel, -1 when none */
	struct event *sb_exec_ev; /* its exec result pipe, until the exec (or its death) */
	unsigned sb_fails;     /* standbys lost in a row (died unused, or no fork) */
	struct event *sb_timer;
	/* Run by systemd (cfg->manager): its units' names, what the last
	 * reading of them said, and whether a systemctl action is in flight
	 * (unit_gen counts actions, so a reading taken before one ended is
	 * not applied after it). */
	char unit[GRACE_UNIT_MAX], socket_unit[GRACE_UNIT_MAX];
	bool unit_busy, unit_seen, socket_active;
	unsigned unit_gen, unit_nrestarts;
	/* SHA-256 of the join credential handed to the process and to the
	 * standby (serve/supervisor/attest.h); "" when none. */
	char join_hash[65], sb_join_hash[65];
} sup_kernel;

/* One state change, as it was when it happened. */
typedef struct sup_change {
	sup_kernel *k;
	enum sup_state from, to;
	enum sup_event cause;
	pid_t pid; /* 0 when no process */
	int port;
	int64_t at_ms; /* wall clock */
	char last_exit[192];
} sup_change;

/* Called from the event loop after a transition has completed, once per
 * state change and in the order they happened; never from inside one.
 * `c` lives for the call only. The observer may call sup_kernel_*. */
typedef void (*sup_change_cb)(const sup_change *c, void *arg);

typedef struct sup_opts {
	const grace_config *cfg;
	const char *self_exe; /* runs `self_exe kernel NAME` when no command is set */
	sup_change_cb on_change;
	void *arg;
	/* A process was spawned (its exec done, or a standby forked) holding
	 * the join credential whose SHA-256 is `hash_hex`; NULL: none. */
	void (*on_spawned)(sup_kernel *k, pid_t pid, const char *hash_hex, void *arg);
	/* SHA-256 (hex) of the main process's attestation, handed to every
	 * kernel at spawn for the trust kernel (SDK_MAIN_ATTEST_ENV); NULL:
	 * none. Borrowed: must outlive the supervisor. */
	const char *main_hash;
	/* Kernels on other nodes (grace_kernel_local false): an operator's
	 * start, stop or restart (`verb`) goes to the node that runs it, in
	 * the background; 0 when sent, or a negative errno (EHOSTUNREACH). */
	int (*remote_act)(sup_kernel *k, const char *verb, void *arg);
	void *remote_arg;
} sup_opts;

supervisor *sup_new(struct event_base *base, const sup_opts *opts);
/* Kills whatever is still running (SIGKILL) and closes every socket. */
void sup_free(supervisor *s);

/* Binds every enabled kernel's port and spawns it. */
void sup_start_all(supervisor *s);
/* SIGTERM to every kernel, SIGKILL after its stop timeout. */
void sup_shutdown(supervisor *s);

size_t sup_count(const supervisor *s);
sup_kernel *sup_at(supervisor *s, size_t i);
sup_kernel *sup_find(supervisor *s, const char *name); /* NAME or NAME_kernel */

/* Operator actions: 0, or -EALREADY when there is nothing to do, or a
 * negative errno (EADDRINUSE when the port is still held by another). */
int sup_kernel_start(sup_kernel *k);
int sup_kernel_stop(sup_kernel *k);
int sup_kernel_restart(sup_kernel *k);

/* Moves a kernel with no process to another port: takes ownership of
 * `fd` (a socket bound to `port`, or -1 to bind lazily at the next start)
 * and closes the old socket. -EBUSY while a process runs; -ENOTSUP for a
 * kernel run by systemd (its port is its socket unit's). */
int sup_kernel_set_port(sup_kernel *k, int port, int fd);

bool sup_all_settled(const supervisor *s); /* no kernel starting or restarting */
bool sup_shutting_down(const supervisor *s);
bool sup_all_ready(const supervisor *s);
bool sup_all_down(const supervisor *s); /* no process left, standbys included */

/* A standby is started for kernels run as `grace kernel NAME` (no command)
 * with standby = 1 in their configuration. */
bool sup_kernel_has_standby(const sup_kernel *k);

/* Run by systemd ([kernel.NAME] manager = systemd): started, stopped and
 * restarted through its units, never forked or signalled by grace serve. */
bool sup_kernel_by_systemd(const sup_kernel *k);
/* How late grace serve may hear of this kernel's state changing, in ms:
 * at once (0) for its own children (SIGCHLD, the notify socket), up to
 * the unit poll's interval and more for systemd's. Whoever waits for a
 * state adds it to the kernel's own timeouts. */
unsigned sup_kernel_lag_ms(const sup_kernel *k);
/* Sets "manager" (grace or systemd) on `o`, and for systemd "unit" and
 * "socket_unit" (when it has one): what the API says of every kernel. */
struct json_t;
void sup_kernel_manager_json(const sup_kernel *k, struct json_t *o);

/* Runs on another node: its state is that node's report (below), its
 * actions go there (sup_opts.remote_act), and nothing here signals it. */
bool sup_kernel_remote(const sup_kernel *k);
/* Sets opts.remote_act and remote_arg after sup_new (the nodes need the
 * supervisor first). */
void sup_set_remote_act(supervisor *s, int (*fn)(sup_kernel *k, const char *verb, void *arg),
			void *arg);
/* A report of a kernel on another node: `state` as sup_state_key names
 * it ("unreachable" when its node does not answer), with that node's pid,
 * restart count and last exit. Observers hear of it as of any change.
 * -1 when `state` names no state. */
int sup_kernel_remote_report(sup_kernel *k, const char *state, pid_t pid, unsigned restarts,
			     const char *last_exit);

/* An sdk_resolve_fn (arg: the supervisor): kernel NAME's port now, or
 * SDK_ENOTFOUND, or SDK_EBUSY when it is stopped, failed or off its port.
 * (resolve.c) */
int sup_resolve(const char *name, void *arg);

#endif
