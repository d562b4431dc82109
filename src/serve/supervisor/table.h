/* The supervisor as a table, in the style of s6-supervise's
 * actions[state][event]: every state a kernel can be in, every event that
 * can happen to it, and for each pair the next state and what to do. The
 * table is data; sup_step() reads it, asks the restart policy where a cell
 * says so, and returns the answer. It does nothing itself: no process, no
 * timer, no clock (the time is an argument), so it is tested over every
 * pair with a fake clock. supervisor.c performs the actions.
 *
 * A second, smaller table runs each kernel's standby: a process already
 * exec'ed, linked and configured that waits to be handed the kernel's port
 * when the kernel dies (docs/supervisor.md). */
#ifndef GRACE_SUPERVISOR_TABLE_H
#define GRACE_SUPERVISOR_TABLE_H

#include "serve/layer.h"

#include "serve/supervisor/policy.h"

#include <stdbool.h>
#include <stdint.h>

/* Where a kernel is. The public name (API, logs, bus) of STOP_THEN_START is
 * "stopping": to a client it is a kernel stopping; sup_state_key() names
 * every state apart. */
enum sup_state {
	SUP_STARTING,         /* a process runs; READY=1 not received yet */
	SUP_READY,            /* a process runs and said READY=1 */
	SUP_RESTARTING,       /* no process; waiting out the backoff */
	SUP_STOPPING,         /* SIGTERM sent; stays down after the exit */
	SUP_STOPPED,          /* by an operator, or never started */
	SUP_FAILED,           /* gave up (burst limit, permanent error) */
	SUP_PORT_UNAVAILABLE, /* the port could not be bound */
	SUP_STOP_THEN_START,  /* SIGTERM sent; starts again after the exit */
	/* Runs on another node that does not answer (docs/deployment.md):
	 * entered and left only by that node's reports, never by an event
	 * here, so every event keeps it. */
	SUP_UNREACHABLE,
	SUP_STATE_COUNT
};

enum sup_event {
	SUP_EV_START,        /* operator start; every enabled kernel at launch */
	SUP_EV_STOP,         /* operator stop; grace serve shutting down */
	SUP_EV_RESTART,      /* operator restart */
	SUP_EV_READY,        /* READY=1 from the kernel's process */
	SUP_EV_PING,         /* WATCHDOG=1 from the kernel's process */
	SUP_EV_DRAINING,     /* STOPPING=1 from the kernel's process */
	SUP_EV_EXIT,         /* the kernel's process was reaped */
	SUP_EV_TIMEOUT,      /* the state's timer: ready, stop or backoff */
	SUP_EV_WATCHDOG,     /* no WATCHDOG=1 within watchdog_ms */
	SUP_EV_BIND_FAILED,  /* a BIND action could not bind the port */
	SUP_EV_SPAWN_FAILED, /* a START action could not fork */
	SUP_EV_BAD_COMMAND,  /* a START action found the command unusable */
	SUP_EVENT_COUNT
};

/* Actions, performed by supervisor.c in this order (the bit order). BIND
 * and START may fail: the transition is then abandoned and the failure
 * event is stepped from the same state instead. */
enum sup_action {
	SUP_A_CANCEL_TIMER = 1u << 0,    /* disarm the state timer */
	SUP_A_CANCEL_WATCHDOG = 1u << 1,
	SUP_A_TERM = 1u << 2,            /* SIGTERM and SIGCONT to the process group */
	SUP_A_KILL_NOT_READY = 1u << 3,  /* SIGKILL: no READY=1 within ready_timeout_ms */
	SUP_A_KILL_NOT_STOPPED = 1u << 4, /* SIGKILL: still alive after stop_timeout_ms */
	SUP_A_KILL_HUNG = 1u << 5,       /* SIGKILL: watchdog missed (counted) */
	SUP_A_RESET_HISTORY = 1u << 6,   /* an operator start forgets past crashes */
	SUP_A_BIND = 1u << 7,            /* bind the port unless held: may fail */
	SUP_A_START = 1u << 8,           /* in the table: a new process, either way below */
	SUP_A_SPAWN = 1u << 9,           /* fork and exec: may fail */
	SUP_A_TAKEOVER = 1u << 10,       /* hand the port to the waiting standby;
					  * one that died since: SPAWN instead */
	SUP_A_COUNT_RESTART = 1u << 11,  /* an automatic restart, for the API */
	SUP_A_ARM_READY = 1u << 12,      /* ready_timeout_ms */
	SUP_A_ARM_STOP = 1u << 13,       /* stop_timeout_ms */
	SUP_A_ARM_BACKOFF = 1u << 14,    /* the policy's delay */
	SUP_A_ARM_WATCHDOG = 1u << 15,   /* watchdog_ms, when set */
	SUP_A_CLOSE_PORT = 1u << 16,     /* nobody will accept: refuse clients at once */
	SUP_A_SB_WANT = 1u << 17,        /* standby table: SUP_SB_WANTED */
	SUP_A_SB_DROP = 1u << 18,        /* standby table: SUP_SB_UNWANTED */
};
#define SUP_ACTION_COUNT 19

/* What the restart policy is asked, in a cell that asks it. */
enum sup_ask {
	SUP_ASK_NONE,
	SUP_ASK_EXIT,  /* a run ended: restart now, after a backoff, or give up */
	SUP_ASK_SPAWN, /* a start failed: "now" also goes through the timer */
};

typedef struct sup_outcome {
	uint8_t next; /* enum sup_state */
	uint32_t actions;
} sup_outcome;

typedef struct sup_cell {
	sup_outcome go;    /* when the policy is not asked */
	int8_t result;     /* for operator events: 0, or -EALREADY for "nothing to do" */
	uint8_t ask;       /* enum sup_ask; then one of the three below */
	sup_outcome now, later, give_up;
} sup_cell;

extern const sup_cell sup_table[SUP_STATE_COUNT][SUP_EVENT_COUNT];

/* What sup_step needs besides the state and the event. */
typedef struct sup_step_in {
	const grace_restart *restart;
	const sup_history *history;
	uint64_t now_ms;      /* monotonic */
	uint64_t started_ms;  /* when the run that ended began (EXIT) */
	bool permanent;       /* EXIT: the kernel declared its error final (exit 100) */
	bool standby_ready;   /* a standby waits: START becomes TAKEOVER */
} sup_step_in;

typedef struct sup_step_out {
	enum sup_state next;
	uint32_t actions;   /* SUP_A_*, START resolved to SPAWN or TAKEOVER */
	int result;         /* 0 or -EALREADY */
	uint64_t delay_ms;  /* with SUP_A_ARM_BACKOFF */
	bool asked;         /* the policy was asked: `decision` holds its answer */
	sup_decision decision;
} sup_step_out;

/* The one transition function: pure. */
sup_step_out sup_step(enum sup_state st, enum sup_event ev, const sup_step_in *in);

/* ---- the standby of a kernel ---- */

enum sup_sb_state {
	SUP_SB_NONE,    /* no standby and none planned */
	SUP_SB_ARMED,   /* the kernel is up; a standby is spawned when the timer fires */
	SUP_SB_WAITING, /* a standby process waits for the port */
	SUP_SB_STATE_COUNT
};

enum sup_sb_event {
	SUP_SB_WANTED,       /* the kernel became ready (SUP_A_SB_WANT) */
	SUP_SB_UNWANTED,     /* the kernel is going down (SUP_A_SB_DROP) */
	SUP_SB_TIMEOUT,      /* the standby timer */
	SUP_SB_TAKEN,        /* the kernel's TAKEOVER handed it the port */
	SUP_SB_EXIT,         /* the standby process was reaped */
	SUP_SB_SPAWN_FAILED, /* an SB spawn could not fork */
	SUP_SB_EVENT_COUNT
};

enum sup_sb_action {
	SUP_SBA_ARM = 1u << 0,          /* timer: the kernel's stable_ms */
	SUP_SBA_REARM = 1u << 1,        /* timer: a retry, at least one second */
	SUP_SBA_CANCEL_TIMER = 1u << 2,
	SUP_SBA_SPAWN = 1u << 3,        /* start a standby process: may fail */
	SUP_SBA_RETIRE = 1u << 4,       /* tell the standby to leave (it exits 0) */
	SUP_SBA_FORGET = 1u << 5,       /* the process is the kernel's now */
	SUP_SBA_CLEAR_FAILS = 1u << 6,  /* the count of standbys lost in a row to 0 */
	SUP_SBA_COUNT_FAIL = 1u << 7,   /* one more lost (died unused, or no fork) */
	SUP_SBA_GIVE_UP = 1u << 8,      /* the limit: none until the kernel is ready again */
};
#define SUP_SB_ACTION_COUNT 9

/* Standbys lost in a row (died unused, or could not be forked) before the
 * kernel goes without one until it is ready again. */
#define SUP_SB_FAILS_MAX 3

typedef struct sup_sb_outcome {
	uint8_t next; /* enum sup_sb_state */
	uint16_t actions;
} sup_sb_outcome;

/* A cell: `go`, or for a lost standby (`counted`) `go` below the limit and
 * `at_limit` once SUP_SB_FAILS_MAX are lost in a row. */
typedef struct sup_sb_cell {
	sup_sb_outcome go;
	bool counted;
	sup_sb_outcome at_limit;
} sup_sb_cell;

extern const sup_sb_cell sup_sb_table[SUP_SB_STATE_COUNT][SUP_SB_EVENT_COUNT];

/* What sup_sb_step needs besides the state and the event. */
typedef struct sup_sb_in {
	bool enabled;   /* the kernel has a standby (standby = 1, no command) and
			 * grace serve is not shutting down: else `wanted` does nothing */
	unsigned fails; /* standbys lost in a row so far */
} sup_sb_in;

/* The standby's transition function: pure. */
sup_sb_outcome sup_sb_step(enum sup_sb_state st, enum sup_sb_event ev, const sup_sb_in *in);

/* ---- names ---- */

const char *sup_state_name(enum sup_state st); /* public: API, logs, bus */
const char *sup_state_key(enum sup_state st);  /* unique: the table, docs */
const char *sup_event_name(enum sup_event ev);
const char *sup_action_name(unsigned bit);     /* bit index 0..SUP_ACTION_COUNT-1 */
const char *sup_sb_state_name(enum sup_sb_state st);
const char *sup_sb_event_name(enum sup_sb_event ev);
const char *sup_sb_action_name(unsigned bit);

#endif
