#include "serve/supervisor/table.h"

#include <errno.h>
#include <stddef.h>

/* Groups of actions the cells share. */
#define NEW_PROCESS (SUP_A_BIND | SUP_A_START | SUP_A_ARM_READY)
#define OPERATOR_START (SUP_A_RESET_HISTORY | NEW_PROCESS)
#define TERMINATE (SUP_A_CANCEL_TIMER | SUP_A_CANCEL_WATCHDOG | SUP_A_TERM | SUP_A_ARM_STOP)
#define GONE (SUP_A_CANCEL_TIMER | SUP_A_CANCEL_WATCHDOG) /* the process is no more */
#define CLOSED (SUP_A_CLOSE_PORT | SUP_A_SB_DROP)          /* down for good */

/* A cell: the next state, the actions, and for operator events the answer. */
#define GO(st, acts) { .go = { SUP_##st, (acts) } }
#define NOTHING_TO_DO(st) { .go = { SUP_##st, 0 }, .result = -EALREADY }
#define IGNORE(st) GO(st, 0)

/* A run ended: the restart policy decides between these three. */
#define ASK_EXIT                                                                                \
	{                                                                                       \
		.ask = SUP_ASK_EXIT,                                                            \
		.now = { SUP_STARTING, GONE | SUP_A_COUNT_RESTART | NEW_PROCESS },              \
		.later = { SUP_RESTARTING,                                                      \
			   GONE | SUP_A_COUNT_RESTART | SUP_A_ARM_BACKOFF | SUP_A_SB_DROP },      \
		.give_up = { SUP_FAILED, GONE | CLOSED },                                       \
	}

/* A start could not fork: even "now" goes through the timer, so a fork that
 * keeps failing never recurses. */
#define ASK_SPAWN                                                                               \
	{                                                                                       \
		.ask = SUP_ASK_SPAWN,                                                           \
		.now = { SUP_RESTARTING,                                                        \
			 GONE | SUP_A_COUNT_RESTART | SUP_A_ARM_BACKOFF | SUP_A_SB_DROP },        \
		.later = { SUP_RESTARTING,                                                      \
			   GONE | SUP_A_COUNT_RESTART | SUP_A_ARM_BACKOFF | SUP_A_SB_DROP },      \
		.give_up = { SUP_FAILED, GONE | CLOSED },                                       \
	}

/* The three rows of a kernel with no process that an operator may start. */
#define DOWN_ROW(st, stop)                                                                      \
	[SUP_##st] = {                                                                          \
		[SUP_EV_START] = GO(STARTING, OPERATOR_START),                                  \
		[SUP_EV_STOP] = stop,                                                           \
		[SUP_EV_RESTART] = GO(STARTING, OPERATOR_START),                                \
		[SUP_EV_READY] = IGNORE(st),                                                    \
		[SUP_EV_PING] = IGNORE(st),                                                     \
		[SUP_EV_DRAINING] = IGNORE(st),                                                 \
		[SUP_EV_EXIT] = IGNORE(st),                                                     \
		[SUP_EV_TIMEOUT] = IGNORE(st),                                                  \
		[SUP_EV_WATCHDOG] = IGNORE(st),                                                 \
		[SUP_EV_BIND_FAILED] = GO(PORT_UNAVAILABLE, 0),                                 \
		[SUP_EV_SPAWN_FAILED] = ASK_SPAWN,                                              \
		[SUP_EV_BAD_COMMAND] = GO(FAILED, CLOSED),                                      \
	}

const sup_cell sup_table[SUP_STATE_COUNT][SUP_EVENT_COUNT] = {
	[SUP_STARTING] = {
		[SUP_EV_START] = NOTHING_TO_DO(STARTING),
		[SUP_EV_STOP] = GO(STOPPING, TERMINATE | SUP_A_SB_DROP),
		[SUP_EV_RESTART] = GO(STOP_THEN_START, TERMINATE),
		[SUP_EV_READY] = GO(READY, SUP_A_CANCEL_TIMER | SUP_A_ARM_WATCHDOG | SUP_A_SB_WANT),
		[SUP_EV_PING] = IGNORE(STARTING), /* the watchdog runs once ready */
		[SUP_EV_DRAINING] = IGNORE(STARTING),
		[SUP_EV_EXIT] = ASK_EXIT,
		[SUP_EV_TIMEOUT] = GO(STARTING, SUP_A_KILL_NOT_READY), /* its exit follows */
		[SUP_EV_WATCHDOG] = IGNORE(STARTING),
		[SUP_EV_BIND_FAILED] = GO(PORT_UNAVAILABLE, GONE | SUP_A_SB_DROP),
		[SUP_EV_SPAWN_FAILED] = ASK_SPAWN,
		[SUP_EV_BAD_COMMAND] = GO(FAILED, GONE | CLOSED),
	},
	[SUP_READY] = {
		[SUP_EV_START] = NOTHING_TO_DO(READY),
		[SUP_EV_STOP] = GO(STOPPING, TERMINATE | SUP_A_SB_DROP),
		[SUP_EV_RESTART] = GO(STOP_THEN_START, TERMINATE),
		[SUP_EV_READY] = IGNORE(READY),
		[SUP_EV_PING] = GO(READY, SUP_A_ARM_WATCHDOG),
		/* Stopping on its own: no hang detection while it drains. */
		[SUP_EV_DRAINING] = GO(READY, SUP_A_CANCEL_WATCHDOG),
		[SUP_EV_EXIT] = ASK_EXIT,
		[SUP_EV_TIMEOUT] = IGNORE(READY),
		[SUP_EV_WATCHDOG] = GO(READY, SUP_A_KILL_HUNG), /* its exit follows */
		[SUP_EV_BIND_FAILED] = GO(PORT_UNAVAILABLE, GONE | SUP_A_SB_DROP),
		[SUP_EV_SPAWN_FAILED] = ASK_SPAWN,
		[SUP_EV_BAD_COMMAND] = GO(FAILED, GONE | CLOSED),
	},
	[SUP_RESTARTING] = {
		[SUP_EV_START] = GO(STARTING, SUP_A_CANCEL_TIMER | OPERATOR_START),
		[SUP_EV_STOP] = GO(STOPPED, SUP_A_CANCEL_TIMER | CLOSED),
		[SUP_EV_RESTART] = GO(STARTING, SUP_A_CANCEL_TIMER | OPERATOR_START),
		[SUP_EV_READY] = IGNORE(RESTARTING),
		[SUP_EV_PING] = IGNORE(RESTARTING),
		[SUP_EV_DRAINING] = IGNORE(RESTARTING),
		[SUP_EV_EXIT] = IGNORE(RESTARTING),
		[SUP_EV_TIMEOUT] = GO(STARTING, NEW_PROCESS),
		[SUP_EV_WATCHDOG] = IGNORE(RESTARTING),
		[SUP_EV_BIND_FAILED] = GO(PORT_UNAVAILABLE, SUP_A_CANCEL_TIMER | SUP_A_SB_DROP),
		[SUP_EV_SPAWN_FAILED] = ASK_SPAWN,
		[SUP_EV_BAD_COMMAND] = GO(FAILED, SUP_A_CANCEL_TIMER | CLOSED),
	},
	[SUP_STOPPING] = {
		[SUP_EV_START] = GO(STOP_THEN_START, 0),
		[SUP_EV_STOP] = GO(STOPPING, 0),
		[SUP_EV_RESTART] = GO(STOP_THEN_START, 0),
		[SUP_EV_READY] = IGNORE(STOPPING),
		[SUP_EV_PING] = IGNORE(STOPPING),
		[SUP_EV_DRAINING] = IGNORE(STOPPING),
		[SUP_EV_EXIT] = GO(STOPPED, GONE | CLOSED),
		[SUP_EV_TIMEOUT] = GO(STOPPING, SUP_A_KILL_NOT_STOPPED),
		[SUP_EV_WATCHDOG] = IGNORE(STOPPING),
		/* Nothing is started from here, so nothing can fail to start. */
		[SUP_EV_BIND_FAILED] = IGNORE(STOPPING),
		[SUP_EV_SPAWN_FAILED] = IGNORE(STOPPING),
		[SUP_EV_BAD_COMMAND] = IGNORE(STOPPING),
	},
	DOWN_ROW(STOPPED, NOTHING_TO_DO(STOPPED)),
	DOWN_ROW(FAILED, NOTHING_TO_DO(FAILED)),
	DOWN_ROW(PORT_UNAVAILABLE, NOTHING_TO_DO(PORT_UNAVAILABLE)),
	[SUP_STOP_THEN_START] = {
		[SUP_EV_START] = GO(STOP_THEN_START, 0),
		[SUP_EV_STOP] = GO(STOPPING, SUP_A_SB_DROP),
		[SUP_EV_RESTART] = GO(STOP_THEN_START, 0),
		[SUP_EV_READY] = IGNORE(STOP_THEN_START),
		[SUP_EV_PING] = IGNORE(STOP_THEN_START),
		[SUP_EV_DRAINING] = IGNORE(STOP_THEN_START),
		[SUP_EV_EXIT] = GO(STARTING, GONE | OPERATOR_START),
		[SUP_EV_TIMEOUT] = GO(STOP_THEN_START, SUP_A_KILL_NOT_STOPPED),
		[SUP_EV_WATCHDOG] = IGNORE(STOP_THEN_START),
		[SUP_EV_BIND_FAILED] = GO(PORT_UNAVAILABLE, GONE | SUP_A_SB_DROP),
		[SUP_EV_SPAWN_FAILED] = ASK_SPAWN,
		[SUP_EV_BAD_COMMAND] = GO(FAILED, GONE | CLOSED),
	},
	[SUP_UNREACHABLE] = {
		[SUP_EV_START] = IGNORE(UNREACHABLE),
		[SUP_EV_STOP] = IGNORE(UNREACHABLE),
		[SUP_EV_RESTART] = IGNORE(UNREACHABLE),
		[SUP_EV_READY] = IGNORE(UNREACHABLE),
		[SUP_EV_PING] = IGNORE(UNREACHABLE),
		[SUP_EV_DRAINING] = IGNORE(UNREACHABLE),
		[SUP_EV_EXIT] = IGNORE(UNREACHABLE),
		[SUP_EV_TIMEOUT] = IGNORE(UNREACHABLE),
		[SUP_EV_WATCHDOG] = IGNORE(UNREACHABLE),
		[SUP_EV_BIND_FAILED] = IGNORE(UNREACHABLE),
		[SUP_EV_SPAWN_FAILED] = IGNORE(UNREACHABLE),
		[SUP_EV_BAD_COMMAND] = IGNORE(UNREACHABLE),
	},
};

sup_step_out sup_step(enum sup_state st, enum sup_event ev, const sup_step_in *in)
{
	const sup_cell *c = &sup_table[st][ev];
	sup_step_out o = { .result = c->result };
	sup_outcome oc = c->go;
	if (c->ask != SUP_ASK_NONE) {
		/* A start that could not fork ran for no time at all. */
		bool exit = c->ask == SUP_ASK_EXIT;
		o.asked = true;
		o.decision = sup_policy_judge(in->restart, in->history,
					      exit ? in->started_ms : in->now_ms, in->now_ms,
					      exit && in->permanent);
		oc = o.decision.verdict == SUP_RESTART_NOW     ? c->now
		     : o.decision.verdict == SUP_RESTART_AFTER ? c->later
							       : c->give_up;
		if (oc.actions & SUP_A_ARM_BACKOFF)
			o.delay_ms = o.decision.delay_ms;
	}
	o.next = (enum sup_state)oc.next;
	o.actions = oc.actions;
	if (o.actions & SUP_A_START) {
		/* A waiting standby is already exec'ed, linked and configured; a
		 * fresh process drops any standby that was only planned. */
		o.actions &= ~(uint32_t)SUP_A_START;
		o.actions |= in->standby_ready ? SUP_A_TAKEOVER : (SUP_A_SPAWN | SUP_A_SB_DROP);
	}
	return o;
}

#define SB(st, acts) { .go = { SUP_SB_##st, (acts) } }
/* A standby lost: another after a while, or none at the limit. */
#define SB_LOST(st, acts)                                                                       \
	{ .go = { SUP_SB_##st, (acts) | SUP_SBA_COUNT_FAIL },                                   \
	  .counted = true,                                                                      \
	  .at_limit = { SUP_SB_NONE, SUP_SBA_COUNT_FAIL | SUP_SBA_GIVE_UP } }

const sup_sb_cell sup_sb_table[SUP_SB_STATE_COUNT][SUP_SB_EVENT_COUNT] = {
	[SUP_SB_NONE] = {
		[SUP_SB_WANTED] = SB(ARMED, SUP_SBA_ARM | SUP_SBA_CLEAR_FAILS),
		[SUP_SB_UNWANTED] = SB(NONE, 0),
		[SUP_SB_TIMEOUT] = SB(NONE, 0),
		[SUP_SB_TAKEN] = SB(NONE, 0),
		[SUP_SB_EXIT] = SB(NONE, 0), /* a retired standby leaving */
		[SUP_SB_SPAWN_FAILED] = SB(NONE, 0),
	},
	[SUP_SB_ARMED] = {
		[SUP_SB_WANTED] = SB(ARMED, 0),
		[SUP_SB_UNWANTED] = SB(NONE, SUP_SBA_CANCEL_TIMER),
		[SUP_SB_TIMEOUT] = SB(WAITING, SUP_SBA_SPAWN),
		[SUP_SB_TAKEN] = SB(ARMED, 0), /* no process to take */
		[SUP_SB_EXIT] = SB(ARMED, 0),
		[SUP_SB_SPAWN_FAILED] = SB_LOST(ARMED, SUP_SBA_REARM),
	},
	[SUP_SB_WAITING] = {
		[SUP_SB_WANTED] = SB(WAITING, 0),
		[SUP_SB_UNWANTED] = SB(NONE, SUP_SBA_RETIRE),
		[SUP_SB_TIMEOUT] = SB(WAITING, 0),
		[SUP_SB_TAKEN] = SB(NONE, SUP_SBA_FORGET),
		/* Killed by someone, or it could not start: another, later. */
		[SUP_SB_EXIT] = SB_LOST(ARMED, SUP_SBA_REARM),
		[SUP_SB_SPAWN_FAILED] = SB(WAITING, 0),
	},
};

sup_sb_outcome sup_sb_step(enum sup_sb_state st, enum sup_sb_event ev, const sup_sb_in *in)
{
	const sup_sb_cell *c = &sup_sb_table[st][ev];
	if (ev == SUP_SB_WANTED && !in->enabled)
		return (sup_sb_outcome){ (uint8_t)st, 0 };
	if (c->counted && in->fails + 1 >= SUP_SB_FAILS_MAX)
		return c->at_limit;
	return c->go;
}

#define NAME_OF(table, i) ((size_t)(i) < sizeof table / sizeof *table ? table[i] : "unknown")

const char *sup_state_name(enum sup_state st)
{
	static const char *const names[] = {
		[SUP_STARTING] = "starting",  [SUP_READY] = "ready",
		[SUP_RESTARTING] = "restarting", [SUP_STOPPING] = "stopping",
		[SUP_STOPPED] = "stopped",    [SUP_FAILED] = "failed",
		[SUP_PORT_UNAVAILABLE] = "port_unavailable",
		[SUP_STOP_THEN_START] = "stopping", [SUP_UNREACHABLE] = "unreachable",
	};
	return NAME_OF(names, st);
}

const char *sup_state_key(enum sup_state st)
{
	static const char *const names[] = {
		[SUP_STARTING] = "starting",  [SUP_READY] = "ready",
		[SUP_RESTARTING] = "restarting", [SUP_STOPPING] = "stopping",
		[SUP_STOPPED] = "stopped",    [SUP_FAILED] = "failed",
		[SUP_PORT_UNAVAILABLE] = "port_unavailable",
		[SUP_STOP_THEN_START] = "stop_then_start", [SUP_UNREACHABLE] = "unreachable",
	};
	return NAME_OF(names, st);
}

const char *sup_event_name(enum sup_event ev)
{
	static const char *const names[] = {
		[SUP_EV_START] = "start",       [SUP_EV_STOP] = "stop",
		[SUP_EV_RESTART] = "restart",   [SUP_EV_READY] = "ready",
		[SUP_EV_PING] = "ping",         [SUP_EV_DRAINING] = "draining",
		[SUP_EV_EXIT] = "exit",         [SUP_EV_TIMEOUT] = "timeout",
		[SUP_EV_WATCHDOG] = "watchdog", [SUP_EV_BIND_FAILED] = "bind_failed",
		[SUP_EV_SPAWN_FAILED] = "spawn_failed", [SUP_EV_BAD_COMMAND] = "bad_command",
	};
	return NAME_OF(names, ev);
}

const char *sup_action_name(unsigned bit)
{
	static const char *const names[SUP_ACTION_COUNT] = {
		"cancel_timer", "cancel_watchdog", "term",         "kill_not_ready",
		"kill_not_stopped", "kill_hung",   "reset_history", "bind",
		"start",        "spawn",           "takeover",     "count_restart",
		"arm_ready",    "arm_stop",        "arm_backoff",  "arm_watchdog",
		"close_port",   "sb_want",         "sb_drop",
	};
	return NAME_OF(names, bit);
}

const char *sup_sb_state_name(enum sup_sb_state st)
{
	static const char *const names[] = { "none", "armed", "waiting" };
	return NAME_OF(names, st);
}

const char *sup_sb_event_name(enum sup_sb_event ev)
{
	static const char *const names[] = { "wanted", "unwanted",    "timeout",
					      "taken",  "exit",        "spawn_failed" };
	return NAME_OF(names, ev);
}

const char *sup_sb_action_name(unsigned bit)
{
	static const char *const names[SUP_SB_ACTION_COUNT] = {
		"arm",	  "rearm",	 "cancel_timer", "spawn",  "retire",
		"forget", "clear_fails", "count_fail",	 "give_up",
	};
	return NAME_OF(names, bit);
}
