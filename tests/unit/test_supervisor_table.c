/* Unit tests for the supervisor's table (src/serve/supervisor/table.c):
 * every (state, event) pair against what the supervisor must do, written
 * here event by event from docs/supervisor.md (not copied from the table);
 * properties every cell must have; the standby's table, cell by cell; and
 * sequences driven by a fake clock through a model of the shell. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "serve/supervisor/table.h"

/* The shipped defaults (etc/grace.ini [defaults]). */
static const grace_restart defaults = {
	.burst_max = 5,
	.burst_window_ms = 10000,
	.backoff_initial_ms = 100,
	.backoff_max_ms = 5000,
	.stable_ms = 1000,
};

#define NOW0 1000000 /* far from 0, so "now - window" does not wrap */

#define A(x) SUP_A_##x
#define GONE (A(CANCEL_TIMER) | A(CANCEL_WATCHDOG))
#define TERMINATE (GONE | A(TERM) | A(ARM_STOP))
/* A new process when no standby waits, and when one does. */
#define FRESH (A(BIND) | A(SPAWN) | A(SB_DROP) | A(ARM_READY))
#define TAKEN (A(BIND) | A(TAKEOVER) | A(ARM_READY))

static const enum sup_state all_states[] = {
	SUP_STARTING, SUP_READY,  SUP_RESTARTING,       SUP_STOPPING,
	SUP_STOPPED,  SUP_FAILED, SUP_PORT_UNAVAILABLE, SUP_STOP_THEN_START,
	SUP_UNREACHABLE,
};

static bool is_down(enum sup_state st)
{
	return st == SUP_STOPPED || st == SUP_FAILED || st == SUP_PORT_UNAVAILABLE;
}

/* ---- what each cell must do ---- */

enum kind { FIXED, POLICY_EXIT, POLICY_SPAWN };

struct expect {
	enum kind kind;
	enum sup_state next; /* FIXED */
	uint32_t actions;    /* FIXED, with no standby waiting */
	int result;
};

static struct expect fixed(enum sup_state next, uint32_t actions)
{
	return (struct expect){ FIXED, next, actions, 0 };
}

static struct expect nothing_to_do(enum sup_state st)
{
	return (struct expect){ FIXED, st, 0, -EALREADY };
}

static struct expect ignored(enum sup_state st) { return fixed(st, 0); }

static struct expect policy(enum kind k) { return (struct expect){ k, 0, 0, 0 }; }

/* Written by event, from what an operator and a kernel may expect. */
static struct expect expect_of(enum sup_state st, enum sup_event ev)
{
	bool has_process = st == SUP_STARTING || st == SUP_READY || st == SUP_STOPPING ||
			   st == SUP_STOP_THEN_START;
	/* A kernel on a node that does not answer: only that node's next
	 * report moves it, never an event here. */
	if (st == SUP_UNREACHABLE)
		return ignored(st);
	switch (ev) {
	case SUP_EV_START:
	case SUP_EV_RESTART:
		if (st == SUP_STARTING || st == SUP_READY)
			return ev == SUP_EV_START ? nothing_to_do(st)
						  : fixed(SUP_STOP_THEN_START, TERMINATE);
		if (st == SUP_STOPPING || st == SUP_STOP_THEN_START)
			return fixed(SUP_STOP_THEN_START, 0); /* starts once it has exited */
		if (st == SUP_RESTARTING) /* the backoff is cut short */
			return fixed(SUP_STARTING, A(CANCEL_TIMER) | A(RESET_HISTORY) | FRESH);
		return fixed(SUP_STARTING, A(RESET_HISTORY) | FRESH);
	case SUP_EV_STOP:
		if (st == SUP_STARTING || st == SUP_READY)
			return fixed(SUP_STOPPING, TERMINATE | A(SB_DROP));
		if (st == SUP_STOPPING)
			return fixed(SUP_STOPPING, 0);
		if (st == SUP_STOP_THEN_START) /* the pending start is dropped */
			return fixed(SUP_STOPPING, A(SB_DROP));
		if (st == SUP_RESTARTING)
			return fixed(SUP_STOPPED, A(CANCEL_TIMER) | A(CLOSE_PORT) | A(SB_DROP));
		return nothing_to_do(st);
	case SUP_EV_READY:
		return st == SUP_STARTING
			       ? fixed(SUP_READY, A(CANCEL_TIMER) | A(ARM_WATCHDOG) | A(SB_WANT))
			       : ignored(st);
	case SUP_EV_PING:
		return st == SUP_READY ? fixed(SUP_READY, A(ARM_WATCHDOG)) : ignored(st);
	case SUP_EV_DRAINING:
		return st == SUP_READY ? fixed(SUP_READY, A(CANCEL_WATCHDOG)) : ignored(st);
	case SUP_EV_EXIT:
		if (st == SUP_STARTING || st == SUP_READY)
			return policy(POLICY_EXIT);
		if (st == SUP_STOPPING)
			return fixed(SUP_STOPPED, GONE | A(CLOSE_PORT) | A(SB_DROP));
		if (st == SUP_STOP_THEN_START)
			return fixed(SUP_STARTING, GONE | A(RESET_HISTORY) | FRESH);
		return ignored(st); /* no process to exit */
	case SUP_EV_TIMEOUT:
		if (st == SUP_STARTING)
			return fixed(SUP_STARTING, A(KILL_NOT_READY));
		if (st == SUP_STOPPING || st == SUP_STOP_THEN_START)
			return fixed(st, A(KILL_NOT_STOPPED));
		if (st == SUP_RESTARTING) /* the backoff is over; the history stays */
			return fixed(SUP_STARTING, FRESH);
		return ignored(st);
	case SUP_EV_WATCHDOG:
		return st == SUP_READY ? fixed(SUP_READY, A(KILL_HUNG)) : ignored(st);
	case SUP_EV_BIND_FAILED:
		if (st == SUP_STOPPING)
			return ignored(st); /* nothing is started from there */
		if (has_process)
			return fixed(SUP_PORT_UNAVAILABLE, GONE | A(SB_DROP));
		if (st == SUP_RESTARTING)
			return fixed(SUP_PORT_UNAVAILABLE, A(CANCEL_TIMER) | A(SB_DROP));
		return fixed(SUP_PORT_UNAVAILABLE, 0);
	case SUP_EV_SPAWN_FAILED:
		return st == SUP_STOPPING ? ignored(st) : policy(POLICY_SPAWN);
	case SUP_EV_BAD_COMMAND:
		if (st == SUP_STOPPING)
			return ignored(st);
		if (has_process)
			return fixed(SUP_FAILED, GONE | A(CLOSE_PORT) | A(SB_DROP));
		if (st == SUP_RESTARTING)
			return fixed(SUP_FAILED, A(CANCEL_TIMER) | A(CLOSE_PORT) | A(SB_DROP));
		return fixed(SUP_FAILED, A(CLOSE_PORT) | A(SB_DROP));
	case SUP_EVENT_COUNT:
		break;
	}
	fail_msg("no expectation for %s/%s", sup_state_key(st), sup_event_name(ev));
	return ignored(st);
}

/* With a standby waiting, a fresh process is the standby taking over. */
static uint32_t with_standby(uint32_t actions)
{
	if (!(actions & A(SPAWN)))
		return actions;
	return (actions & ~(uint32_t)(A(SPAWN) | A(SB_DROP))) | A(TAKEOVER);
}

/* Inputs that make the policy answer now, later or give up. */
enum verdict_in { IN_NOW, IN_LATER, IN_GIVE_UP };

static grace_restart rules;

static sup_step_in input(sup_history *h, enum verdict_in v, enum kind kind, bool standby)
{
	rules = defaults;
	sup_history_reset(h);
	sup_step_in in = { .restart = &rules, .history = h, .now_ms = NOW0,
			   .started_ms = NOW0 - 60000, .standby_ready = standby };
	switch (v) {
	case IN_NOW:
		/* A stable run; a start that failed is "now" only without backoff. */
		if (kind == POLICY_SPAWN)
			rules.backoff_initial_ms = 0;
		sup_history_add_start(h, in.started_ms);
		break;
	case IN_LATER:
		sup_history_add_start(h, NOW0 - 10);
		in.started_ms = NOW0 - 10;
		break;
	case IN_GIVE_UP:
		for (unsigned i = 0; i < defaults.burst_max; i++)
			sup_history_add_start(h, NOW0 - 10 * i);
		in.started_ms = NOW0 - 10;
		break;
	}
	return in;
}

static void check_cell(enum sup_state st, enum sup_event ev, bool standby)
{
	struct expect e = expect_of(st, ev);
	const char *where_st = sup_state_key(st), *where_ev = sup_event_name(ev);
	sup_history h;
	if (e.kind == FIXED) {
		sup_step_in in = input(&h, IN_NOW, FIXED, standby);
		sup_step_out o = sup_step(st, ev, &in);
		uint32_t want = standby ? with_standby(e.actions) : e.actions;
		if (o.next != e.next || o.actions != want || o.result != e.result || o.asked)
			fail_msg("%s/%s (standby %d): got %s 0x%x %d asked %d, want %s 0x%x %d",
				 where_st, where_ev, standby, sup_state_key(o.next), o.actions,
				 o.result, o.asked, sup_state_key(e.next), want, e.result);
		return;
	}
	for (int v = IN_NOW; v <= IN_GIVE_UP; v++) {
		sup_step_in in = input(&h, (enum verdict_in)v, e.kind, standby);
		sup_step_out o = sup_step(st, ev, &in);
		if (!o.asked)
			fail_msg("%s/%s: the policy was not asked", where_st, where_ev);
		enum sup_state next;
		uint32_t want;
		uint64_t delay = 0;
		if (v == IN_GIVE_UP) {
			next = SUP_FAILED;
			want = GONE | A(CLOSE_PORT) | A(SB_DROP);
		} else if (v == IN_NOW && e.kind == POLICY_EXIT) {
			next = SUP_STARTING;
			want = GONE | A(COUNT_RESTART) | (standby ? TAKEN : FRESH);
		} else {
			next = SUP_RESTARTING;
			want = GONE | A(COUNT_RESTART) | A(ARM_BACKOFF) | A(SB_DROP);
			delay = v == IN_NOW ? 0 : defaults.backoff_initial_ms;
		}
		if (o.next != next || o.actions != want || o.delay_ms != delay || o.result != 0)
			fail_msg("%s/%s verdict %d: got %s 0x%x delay %llu, want %s 0x%x delay %llu",
				 where_st, where_ev, v, sup_state_key(o.next), o.actions,
				 (unsigned long long)o.delay_ms, sup_state_key(next), want,
				 (unsigned long long)delay);
	}
}

static void test_every_cell(void **state)
{
	(void)state;
	assert_int_equal(sizeof all_states / sizeof *all_states, SUP_STATE_COUNT);
	unsigned cells = 0;
	for (size_t i = 0; i < SUP_STATE_COUNT; i++)
		for (int ev = 0; ev < SUP_EVENT_COUNT; ev++) {
			check_cell(all_states[i], (enum sup_event)ev, false);
			check_cell(all_states[i], (enum sup_event)ev, true);
			cells++;
		}
	assert_int_equal(cells, 9 * 12);
}

/* ---- properties of every cell ---- */

static void test_properties(void **state)
{
	(void)state;
	/* Performed in bit order: the port before the process, the process
	 * before the timers that watch it. */
	assert_true(A(CANCEL_TIMER) < A(TERM) && A(TERM) < A(RESET_HISTORY));
	assert_true(A(RESET_HISTORY) < A(BIND) && A(BIND) < A(SPAWN) && A(BIND) < A(TAKEOVER));
	assert_true(A(SPAWN) < A(COUNT_RESTART) && A(TAKEOVER) < A(COUNT_RESTART));
	assert_true(A(COUNT_RESTART) < A(ARM_READY) && A(ARM_WATCHDOG) < A(CLOSE_PORT));

	for (int s = 0; s < SUP_STATE_COUNT; s++) {
		for (int e = 0; e < SUP_EVENT_COUNT; e++) {
			enum sup_state st = (enum sup_state)s;
			const sup_cell *c = &sup_table[st][e];
			const sup_outcome outs[] = { c->go, c->now, c->later, c->give_up };
			for (size_t i = c->ask ? 1 : 0; i < (c->ask ? 4u : 1u); i++) {
				sup_outcome o = outs[i];
				enum sup_state next = (enum sup_state)o.next;
				const char *w = sup_event_name((enum sup_event)e);
				/* Unresolved in the table: SPAWN and TAKEOVER come from sup_step. */
				if (o.actions & (A(SPAWN) | A(TAKEOVER)))
					fail_msg("%s/%s names SPAWN or TAKEOVER", sup_state_key(st), w);
				if (o.actions & A(START)) {
					if ((o.actions & (A(BIND) | A(ARM_READY))) != (A(BIND) | A(ARM_READY)))
						fail_msg("%s/%s starts without bind or ready timer",
							 sup_state_key(st), w);
					if (next != SUP_STARTING)
						fail_msg("%s/%s starts into %s", sup_state_key(st), w,
							 sup_state_key(next));
				}
				/* Into starting from elsewhere: always with a new process. */
				if (next == SUP_STARTING && st != SUP_STARTING && !(o.actions & A(START)))
					fail_msg("%s/%s: starting without a process", sup_state_key(st), w);
				/* Into stopped or failed: the port is closed, the standby dropped. */
				if ((next == SUP_STOPPED || next == SUP_FAILED) && next != st &&
				    (o.actions & (A(CLOSE_PORT) | A(SB_DROP))) != (A(CLOSE_PORT) | A(SB_DROP)))
					fail_msg("%s/%s: down without closing", sup_state_key(st), w);
				/* Never a kill and a start at once. */
				uint32_t kills = A(TERM) | A(KILL_NOT_READY) | A(KILL_NOT_STOPPED) |
						 A(KILL_HUNG);
				if ((o.actions & kills) && (o.actions & A(START)))
					fail_msg("%s/%s kills and starts", sup_state_key(st), w);
				/* A failure's cell starts nothing, so it cannot fail again. */
				if ((e == SUP_EV_BIND_FAILED || e == SUP_EV_SPAWN_FAILED ||
				     e == SUP_EV_BAD_COMMAND) &&
				    (o.actions & (A(BIND) | A(START))))
					fail_msg("%s/%s can fail again", sup_state_key(st), w);
				/* The backoff timer only with a verdict to give its delay. */
				if ((o.actions & A(ARM_BACKOFF)) && !c->ask)
					fail_msg("%s/%s: backoff without the policy", sup_state_key(st), w);
			}
			/* Only operator events answer anything but 0. */
			if (c->result && e != SUP_EV_START && e != SUP_EV_STOP && e != SUP_EV_RESTART)
				fail_msg("%s/%s answers %d", sup_state_key(st),
					 sup_event_name((enum sup_event)e), c->result);
		}
	}
}

/* Every state is reached from "stopped", and "stopped" from every state
 * (an operator's stop, then the process's exit); but "unreachable", which
 * only a peer node's silence enters and its next report leaves (the
 * supervisor's node manager, not this table). */
static void test_reachability(void **state)
{
	(void)state;
	bool seen[SUP_STATE_COUNT] = { [SUP_STOPPED] = true };
	for (int round = 0; round < SUP_STATE_COUNT; round++)
		for (int s = 0; s < SUP_STATE_COUNT; s++) {
			if (!seen[s])
				continue;
			for (int e = 0; e < SUP_EVENT_COUNT; e++) {
				const sup_cell *c = &sup_table[s][e];
				seen[c->go.next] = true;
				if (c->ask)
					seen[c->now.next] = seen[c->later.next] =
						seen[c->give_up.next] = true;
			}
		}
	for (int s = 0; s < SUP_STATE_COUNT; s++)
		if (!seen[s] && s != SUP_UNREACHABLE)
			fail_msg("%s is never reached", sup_state_key((enum sup_state)s));
	assert_false(seen[SUP_UNREACHABLE]);

	for (int s = 0; s < SUP_STATE_COUNT; s++) {
		if (s == SUP_UNREACHABLE)
			continue;
		enum sup_state st = sup_table[s][SUP_EV_STOP].go.next;
		if (st == SUP_STOPPING)
			st = sup_table[st][SUP_EV_EXIT].go.next;
		if (!is_down(st))
			fail_msg("stop from %s ends in %s", sup_state_key((enum sup_state)s),
				 sup_state_key(st));
	}
}

static void test_names(void **state)
{
	(void)state;
	/* Public names: what the API, the logs and the bus have always said. */
	assert_string_equal(sup_state_name(SUP_STOP_THEN_START), "stopping");
	assert_string_equal(sup_state_name(SUP_PORT_UNAVAILABLE), "port_unavailable");
	assert_string_equal(sup_state_name(SUP_STATE_COUNT), "unknown");
	/* Keys: one per state, apart. */
	for (int a = 0; a < SUP_STATE_COUNT; a++)
		for (int b = a + 1; b < SUP_STATE_COUNT; b++)
			assert_string_not_equal(sup_state_key((enum sup_state)a),
						sup_state_key((enum sup_state)b));
	for (unsigned i = 0; i < SUP_ACTION_COUNT; i++)
		assert_string_not_equal(sup_action_name(i), "unknown");
	assert_string_equal(sup_action_name(SUP_ACTION_COUNT), "unknown");
	for (int e = 0; e < SUP_EVENT_COUNT; e++)
		assert_string_not_equal(sup_event_name((enum sup_event)e), "unknown");
	assert_int_equal(1u << (SUP_ACTION_COUNT - 1), A(SB_DROP));
	for (unsigned i = 0; i < SUP_SB_ACTION_COUNT; i++)
		assert_string_not_equal(sup_sb_action_name(i), "unknown");
}

/* ---- the standby's table, every cell ---- */

static void test_standby_cells(void **state)
{
	(void)state;
	static const struct {
		enum sup_sb_state st;
		enum sup_sb_event ev;
		enum sup_sb_state next;
		unsigned actions;
	} want[] = {
		/* Planned when the kernel is ready; spawned when the timer fires. */
		{ SUP_SB_NONE, SUP_SB_WANTED, SUP_SB_ARMED, SUP_SBA_ARM | SUP_SBA_CLEAR_FAILS },
		{ SUP_SB_ARMED, SUP_SB_WANTED, SUP_SB_ARMED, 0 },
		{ SUP_SB_WAITING, SUP_SB_WANTED, SUP_SB_WAITING, 0 },
		{ SUP_SB_NONE, SUP_SB_TIMEOUT, SUP_SB_NONE, 0 },
		{ SUP_SB_ARMED, SUP_SB_TIMEOUT, SUP_SB_WAITING, SUP_SBA_SPAWN },
		{ SUP_SB_WAITING, SUP_SB_TIMEOUT, SUP_SB_WAITING, 0 },
		/* Dropped when the kernel goes down: a waiting one is told to leave. */
		{ SUP_SB_NONE, SUP_SB_UNWANTED, SUP_SB_NONE, 0 },
		{ SUP_SB_ARMED, SUP_SB_UNWANTED, SUP_SB_NONE, SUP_SBA_CANCEL_TIMER },
		{ SUP_SB_WAITING, SUP_SB_UNWANTED, SUP_SB_NONE, SUP_SBA_RETIRE },
		/* Taken: the process is the kernel's now. */
		{ SUP_SB_WAITING, SUP_SB_TAKEN, SUP_SB_NONE, SUP_SBA_FORGET },
		{ SUP_SB_NONE, SUP_SB_TAKEN, SUP_SB_NONE, 0 },
		{ SUP_SB_ARMED, SUP_SB_TAKEN, SUP_SB_ARMED, 0 },
		/* A waiting standby that dies is replaced later; others' exits are
		 * the retired leaving. */
		{ SUP_SB_WAITING, SUP_SB_EXIT, SUP_SB_ARMED, SUP_SBA_REARM | SUP_SBA_COUNT_FAIL },
		{ SUP_SB_NONE, SUP_SB_EXIT, SUP_SB_NONE, 0 },
		{ SUP_SB_ARMED, SUP_SB_EXIT, SUP_SB_ARMED, 0 },
		/* A spawn that cannot fork is tried again later. */
		{ SUP_SB_ARMED, SUP_SB_SPAWN_FAILED, SUP_SB_ARMED, SUP_SBA_REARM | SUP_SBA_COUNT_FAIL },
		{ SUP_SB_NONE, SUP_SB_SPAWN_FAILED, SUP_SB_NONE, 0 },
		{ SUP_SB_WAITING, SUP_SB_SPAWN_FAILED, SUP_SB_WAITING, 0 },
	};
	bool covered[SUP_SB_STATE_COUNT][SUP_SB_EVENT_COUNT] = { { false } };
	const sup_sb_in in = { .enabled = true, .fails = 0 };
	for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
		sup_sb_outcome c = sup_sb_step(want[i].st, want[i].ev, &in);
		if (c.next != want[i].next || c.actions != want[i].actions)
			fail_msg("standby %s/%s: got %s 0x%x, want %s 0x%x",
				 sup_sb_state_name(want[i].st), sup_sb_event_name(want[i].ev),
				 sup_sb_state_name((enum sup_sb_state)c.next), c.actions,
				 sup_sb_state_name(want[i].next), want[i].actions);
		covered[want[i].st][want[i].ev] = true;
	}
	for (int s = 0; s < SUP_SB_STATE_COUNT; s++)
		for (int e = 0; e < SUP_SB_EVENT_COUNT; e++)
			if (!covered[s][e])
				fail_msg("standby %s/%s has no expectation",
					 sup_sb_state_name((enum sup_sb_state)s),
					 sup_sb_event_name((enum sup_sb_event)e));
}

/* A kernel without a standby (standby = 0, a command, shutting down) never
 * plans one; everything else is as when it has one. */
static void test_standby_disabled(void **state)
{
	(void)state;
	const sup_sb_in off = { .enabled = false }, on = { .enabled = true };
	for (int s = 0; s < SUP_SB_STATE_COUNT; s++)
		for (int e = 0; e < SUP_SB_EVENT_COUNT; e++) {
			sup_sb_outcome a = sup_sb_step((enum sup_sb_state)s, (enum sup_sb_event)e, &off);
			sup_sb_outcome b = sup_sb_step((enum sup_sb_state)s, (enum sup_sb_event)e, &on);
			if (e == SUP_SB_WANTED) {
				assert_int_equal(a.next, s);
				assert_int_equal(a.actions, 0);
			} else {
				assert_int_equal(a.next, b.next);
				assert_int_equal(a.actions, b.actions);
			}
		}
}

/* Standbys lost in a row: replaced until the limit, then none (and the
 * count kept) until the kernel is ready again, which clears it. */
static void test_standby_limit(void **state)
{
	(void)state;
	const struct {
		enum sup_sb_state st;
		enum sup_sb_event ev;
	} lost[] = { { SUP_SB_WAITING, SUP_SB_EXIT }, { SUP_SB_ARMED, SUP_SB_SPAWN_FAILED } };
	for (size_t i = 0; i < sizeof lost / sizeof *lost; i++) {
		for (unsigned f = 0; f < SUP_SB_FAILS_MAX + 2; f++) {
			sup_sb_in in = { .enabled = true, .fails = f };
			sup_sb_outcome o = sup_sb_step(lost[i].st, lost[i].ev, &in);
			assert_true(o.actions & SUP_SBA_COUNT_FAIL);
			if (f + 1 < SUP_SB_FAILS_MAX) {
				assert_int_equal(o.next, SUP_SB_ARMED);
				assert_int_equal(o.actions, SUP_SBA_REARM | SUP_SBA_COUNT_FAIL);
			} else {
				assert_int_equal(o.next, SUP_SB_NONE);
				assert_int_equal(o.actions, SUP_SBA_COUNT_FAIL | SUP_SBA_GIVE_UP);
			}
		}
	}
	/* No other cell is counted or depends on the count. */
	for (int s = 0; s < SUP_SB_STATE_COUNT; s++)
		for (int e = 0; e < SUP_SB_EVENT_COUNT; e++) {
			bool counted = (s == SUP_SB_WAITING && e == SUP_SB_EXIT) ||
				       (s == SUP_SB_ARMED && e == SUP_SB_SPAWN_FAILED);
			assert_int_equal(sup_sb_table[s][e].counted, counted);
			sup_sb_in zero = { .enabled = true, .fails = 0 };
			sup_sb_in many = { .enabled = true, .fails = 100 };
			if (!counted) {
				sup_sb_outcome a = sup_sb_step((enum sup_sb_state)s,
							       (enum sup_sb_event)e, &zero);
				sup_sb_outcome b = sup_sb_step((enum sup_sb_state)s,
							       (enum sup_sb_event)e, &many);
				assert_int_equal(a.next, b.next);
				assert_int_equal(a.actions, b.actions);
			}
		}
	/* Ready again: the count starts over. */
	sup_sb_in in = { .enabled = true, .fails = SUP_SB_FAILS_MAX };
	sup_sb_outcome o = sup_sb_step(SUP_SB_NONE, SUP_SB_WANTED, &in);
	assert_int_equal(o.next, SUP_SB_ARMED);
	assert_true(o.actions & SUP_SBA_CLEAR_FAILS);
}

/* ---- sequences: a model of the shell, with a fake clock ---- */

#define NEVER UINT64_MAX

struct sim {
	grace_restart r;
	enum sup_state st;
	enum sup_sb_state sb;
	sup_history h;
	uint64_t now, started;
	bool process, port, bind_fails, fork_fails;
	uint64_t timer_at, watchdog_at, sb_timer_at;
	unsigned restarts, spawns, takeovers, terms, kills, hung, closes, sb_spawns, sb_retired;
	unsigned sb_fails;
	int last_result;
};

static void sim_init(struct sim *m, const grace_restart *r)
{
	memset(m, 0, sizeof *m);
	m->r = *r;
	m->st = SUP_STOPPED;
	m->now = NOW0;
	m->timer_at = m->watchdog_at = m->sb_timer_at = NEVER;
	sup_history_reset(&m->h);
}

static void sim_sb(struct sim *m, enum sup_sb_event ev)
{
	sup_sb_in in = { .enabled = true, .fails = m->sb_fails };
	sup_sb_outcome c = sup_sb_step(m->sb, ev, &in);
	if (c.actions & SUP_SBA_CLEAR_FAILS)
		m->sb_fails = 0;
	if (c.actions & SUP_SBA_COUNT_FAIL)
		m->sb_fails++;
	if (c.actions & SUP_SBA_CANCEL_TIMER)
		m->sb_timer_at = NEVER;
	if (c.actions & SUP_SBA_ARM)
		m->sb_timer_at = m->now + m->r.stable_ms;
	if (c.actions & SUP_SBA_REARM)
		m->sb_timer_at = m->now + 1000;
	if (c.actions & SUP_SBA_SPAWN)
		m->sb_spawns++;
	if (c.actions & SUP_SBA_RETIRE)
		m->sb_retired++;
	m->sb = (enum sup_sb_state)c.next;
}

/* Mirrors supervisor.c's perform: returns the failure event, or -1. */
static int sim_perform(struct sim *m, const sup_step_out *o)
{
	uint32_t a = o->actions;
	if (o->asked)
		m->h.quick_crashes = o->decision.streak;
	if (a & A(CANCEL_TIMER))
		m->timer_at = NEVER;
	if (a & A(CANCEL_WATCHDOG))
		m->watchdog_at = NEVER;
	m->terms += !!(a & A(TERM));
	m->kills += !!(a & (A(KILL_NOT_READY) | A(KILL_NOT_STOPPED) | A(KILL_HUNG)));
	m->hung += !!(a & A(KILL_HUNG));
	if (a & A(RESET_HISTORY))
		sup_history_reset(&m->h);
	if (a & A(BIND)) {
		if (m->bind_fails && !m->port)
			return SUP_EV_BIND_FAILED;
		m->port = true;
	}
	if (a & (A(SPAWN) | A(TAKEOVER))) {
		assert_false(m->process); /* never two at once */
		if ((a & A(SPAWN)) && m->fork_fails) {
			sup_history_add_start(&m->h, m->now);
			return SUP_EV_SPAWN_FAILED;
		}
		sup_history_add_start(&m->h, m->now);
		m->started = m->now;
		m->process = true;
		if (a & A(TAKEOVER)) {
			m->takeovers++;
			sim_sb(m, SUP_SB_TAKEN);
		} else {
			m->spawns++;
		}
	}
	m->restarts += !!(a & A(COUNT_RESTART));
	if (a & A(ARM_READY))
		m->timer_at = m->now + 5000;
	if (a & A(ARM_STOP))
		m->timer_at = m->now + 3000;
	if (a & A(ARM_BACKOFF))
		m->timer_at = m->now + o->delay_ms;
	if (a & A(ARM_WATCHDOG))
		m->watchdog_at = m->now + 3000;
	if (a & A(CLOSE_PORT)) {
		m->closes += m->port;
		m->port = false;
	}
	if (a & A(SB_WANT))
		sim_sb(m, SUP_SB_WANTED);
	if (a & A(SB_DROP))
		sim_sb(m, SUP_SB_UNWANTED);
	return -1;
}

static enum sup_state sim_feed(struct sim *m, enum sup_event ev, bool permanent)
{
	if (ev == SUP_EV_EXIT) {
		assert_true(m->process);
		m->process = false;
	}
	sup_step_in in = { .restart = &m->r, .history = &m->h, .now_ms = m->now,
			   .started_ms = m->started, .permanent = permanent,
			   .standby_ready = m->sb == SUP_SB_WAITING };
	sup_step_out o = sup_step(m->st, ev, &in);
	m->last_result = o.result;
	int fail = sim_perform(m, &o);
	if (fail >= 0) {
		o = sup_step(m->st, (enum sup_event)fail, &in);
		assert_int_equal(sim_perform(m, &o), -1);
	}
	m->st = o.next;
	return m->st;
}

/* Moves the clock to the next timer that fires by `until`, and fires it. */
static bool sim_tick(struct sim *m, uint64_t until)
{
	uint64_t t = m->timer_at;
	int which = 0;
	if (m->watchdog_at < t)
		t = m->watchdog_at, which = 1;
	if (m->sb_timer_at < t)
		t = m->sb_timer_at, which = 2;
	if (t > until) {
		m->now = until;
		return false;
	}
	m->now = t;
	if (which == 0) {
		m->timer_at = NEVER;
		sim_feed(m, SUP_EV_TIMEOUT, false);
	} else if (which == 1) {
		m->watchdog_at = NEVER;
		sim_feed(m, SUP_EV_WATCHDOG, false);
	} else {
		m->sb_timer_at = NEVER;
		sim_sb(m, SUP_SB_TIMEOUT);
	}
	return true;
}

static void sim_advance(struct sim *m, uint64_t ms)
{
	uint64_t until = m->now + ms;
	while (sim_tick(m, until))
		;
}

/* Started and ready, then up for `up_ms` with watchdog pings. */
static void sim_run(struct sim *m, uint64_t up_ms)
{
	if (m->st != SUP_STARTING)
		assert_int_equal(sim_feed(m, SUP_EV_START, false), SUP_STARTING);
	m->now += 5;
	assert_int_equal(sim_feed(m, SUP_EV_READY, false), SUP_READY);
	for (uint64_t t = 0; t < up_ms; t += 1000) {
		sim_advance(m, up_ms - t < 1000 ? up_ms - t : 1000);
		if (m->st == SUP_READY)
			sim_feed(m, SUP_EV_PING, false);
	}
}

static void test_seq_crash_loop_backs_off_then_fails(void **state)
{
	(void)state;
	struct sim m;
	sim_init(&m, &defaults);
	sim_run(&m, 2000);
	/* Quick crashes: 100, 200, 400 ms of backoff, each waited out ... */
	static const uint64_t delays[] = { 100, 200, 400 };
	uint64_t first = m.now;
	for (size_t i = 0; i < 3; i++) {
		m.now += 20;
		assert_int_equal(sim_feed(&m, SUP_EV_EXIT, false), i ? SUP_RESTARTING
								     : SUP_STARTING);
		if (i == 0) {
			/* The first crash came after a stable run: restarted at once. */
			m.now += 20;
			assert_int_equal(sim_feed(&m, SUP_EV_EXIT, false), SUP_RESTARTING);
		}
		assert_int_equal(m.timer_at - m.now, delays[i]);
		assert_true(m.port); /* the port stays held through the backoff */
		sim_advance(&m, delays[i] - 1);
		assert_int_equal(m.st, SUP_RESTARTING);
		sim_advance(&m, 1);
		assert_int_equal(m.st, SUP_STARTING);
	}
	/* ... until the fifth start within 10 s: failed, port closed. */
	m.now += 20;
	assert_int_equal(sim_feed(&m, SUP_EV_EXIT, false), SUP_FAILED);
	assert_true(m.now - first < defaults.burst_window_ms);
	assert_false(m.port);
	assert_int_equal(m.closes, 1);
	assert_int_equal(m.timer_at, NEVER);
	assert_int_equal(m.restarts, 4);
	assert_int_equal(m.spawns, 4); /* and the standby's takeover: five starts */
	assert_int_equal(m.takeovers, 1);
	/* An operator's start forgets the history: a fresh allowance. */
	assert_int_equal(sim_feed(&m, SUP_EV_START, false), SUP_STARTING);
	assert_int_equal(m.h.n, 1);
	assert_int_equal(m.h.quick_crashes, 0);
}

static void test_seq_stable_crash_uses_the_standby(void **state)
{
	(void)state;
	struct sim m;
	sim_init(&m, &defaults);
	sim_run(&m, 500);
	assert_int_equal(m.sb, SUP_SB_ARMED); /* planned at ready ... */
	assert_int_equal(m.sb_spawns, 0);
	sim_advance(&m, 600);
	assert_int_equal(m.sb, SUP_SB_WAITING); /* ... started after stable_ms */
	assert_int_equal(m.sb_spawns, 1);
	m.now += 10;
	assert_int_equal(sim_feed(&m, SUP_EV_EXIT, false), SUP_STARTING);
	assert_int_equal(m.takeovers, 1);
	assert_int_equal(m.spawns, 1); /* the first start only */
	assert_int_equal(m.sb, SUP_SB_NONE);
	assert_int_equal(m.restarts, 1);
	assert_int_equal(m.h.n, 2);
	/* Ready again: another standby is planned. */
	m.now += 3;
	assert_int_equal(sim_feed(&m, SUP_EV_READY, false), SUP_READY);
	assert_int_equal(m.sb, SUP_SB_ARMED);
	/* A quick crash before it is spawned: a fresh process after the
	 * backoff, and the plan dropped. */
	m.now += 50;
	assert_int_equal(sim_feed(&m, SUP_EV_EXIT, false), SUP_RESTARTING);
	assert_int_equal(m.sb, SUP_SB_NONE);
	assert_int_equal(m.sb_timer_at, NEVER);
	sim_advance(&m, 100);
	assert_int_equal(m.st, SUP_STARTING);
	assert_int_equal(m.spawns, 2);
	assert_int_equal(m.takeovers, 1);
}

static void test_seq_watchdog_kills_a_hung_kernel(void **state)
{
	(void)state;
	struct sim m;
	sim_init(&m, &defaults);
	sim_run(&m, 5000);
	assert_int_equal(m.hung, 0); /* pinged all along */
	sim_advance(&m, 2999);
	assert_int_equal(m.kills, 0);
	sim_advance(&m, 1); /* no ping for watchdog_ms */
	assert_int_equal(m.hung, 1);
	assert_int_equal(m.kills, 1);
	assert_int_equal(m.st, SUP_READY); /* until its exit is reaped */
	m.now += 2;
	/* Up for 8 s: a stable run, so straight to the standby. */
	assert_int_equal(sim_feed(&m, SUP_EV_EXIT, false), SUP_STARTING);
	assert_int_equal(m.takeovers, 1);
	assert_int_equal(m.watchdog_at, NEVER);
}

static void test_seq_stop_during_start(void **state)
{
	(void)state;
	struct sim m;
	sim_init(&m, &defaults);
	assert_int_equal(sim_feed(&m, SUP_EV_START, false), SUP_STARTING);
	m.now += 3;
	assert_int_equal(sim_feed(&m, SUP_EV_STOP, false), SUP_STOPPING);
	assert_int_equal(m.last_result, 0);
	assert_int_equal(m.terms, 1);
	assert_int_equal(m.timer_at - m.now, 3000); /* the stop timeout replaced ready's */
	/* Its READY=1 arrives late: it stays stopping. */
	assert_int_equal(sim_feed(&m, SUP_EV_READY, false), SUP_STOPPING);
	assert_int_equal(m.sb, SUP_SB_NONE);
	assert_int_equal(sim_feed(&m, SUP_EV_STOP, false), SUP_STOPPING); /* again: fine */
	assert_int_equal(m.terms, 1);
	/* It does not stop in time: killed. */
	sim_advance(&m, 3000);
	assert_int_equal(m.kills, 1);
	assert_int_equal(sim_feed(&m, SUP_EV_EXIT, false), SUP_STOPPED);
	assert_false(m.port);
	assert_int_equal(m.restarts, 0);
	assert_int_equal(sim_feed(&m, SUP_EV_STOP, false), SUP_STOPPED);
	assert_int_equal(m.last_result, -EALREADY);
}

static void test_seq_restart_while_stopping(void **state)
{
	(void)state;
	struct sim m;
	sim_init(&m, &defaults);
	sim_run(&m, 2000);
	assert_int_equal(m.sb, SUP_SB_WAITING);
	assert_int_equal(sim_feed(&m, SUP_EV_STOP, false), SUP_STOPPING);
	assert_int_equal(m.sb, SUP_SB_NONE); /* not needed by a stopped kernel */
	assert_int_equal(m.sb_retired, 1);
	assert_int_equal(sim_feed(&m, SUP_EV_RESTART, false), SUP_STOP_THEN_START);
	assert_int_equal(m.last_result, 0);
	assert_int_equal(m.terms, 1); /* SIGTERM once */
	assert_int_equal(sim_feed(&m, SUP_EV_START, false), SUP_STOP_THEN_START);
	m.now += 40;
	assert_int_equal(sim_feed(&m, SUP_EV_EXIT, false), SUP_STARTING);
	assert_true(m.port); /* held across the restart */
	assert_int_equal(m.h.n, 1); /* an operator's restart: a fresh history */
	assert_int_equal(m.restarts, 0);
	assert_int_equal(m.spawns, 2);

	/* Restart of a ready kernel, then a stop before it exits: stays down. */
	sim_run(&m, 2000);
	assert_int_equal(sim_feed(&m, SUP_EV_RESTART, false), SUP_STOP_THEN_START);
	assert_int_equal(m.sb, SUP_SB_WAITING); /* kept: the restart will use it */
	assert_int_equal(sim_feed(&m, SUP_EV_STOP, false), SUP_STOPPING);
	assert_int_equal(m.sb, SUP_SB_NONE);
	assert_int_equal(sim_feed(&m, SUP_EV_EXIT, false), SUP_STOPPED);

	/* Restart with the standby waiting: it takes over. */
	sim_run(&m, 2000);
	assert_int_equal(sim_feed(&m, SUP_EV_RESTART, false), SUP_STOP_THEN_START);
	assert_int_equal(sim_feed(&m, SUP_EV_EXIT, false), SUP_STARTING);
	assert_int_equal(m.takeovers, 1);
}

static void test_seq_ready_timeout(void **state)
{
	(void)state;
	struct sim m;
	sim_init(&m, &defaults);
	assert_int_equal(sim_feed(&m, SUP_EV_START, false), SUP_STARTING);
	sim_advance(&m, 4999);
	assert_int_equal(m.kills, 0);
	sim_advance(&m, 1);
	assert_int_equal(m.kills, 1);
	m.now += 1;
	/* Up 5 s without being ready is a stable run: restarted at once. */
	assert_int_equal(sim_feed(&m, SUP_EV_EXIT, false), SUP_STARTING);
	assert_int_equal(m.restarts, 1);
}

static void test_seq_permanent_error_fails_at_once(void **state)
{
	(void)state;
	struct sim m;
	sim_init(&m, &defaults);
	sim_run(&m, 5000);
	assert_int_equal(sim_feed(&m, SUP_EV_EXIT, true), SUP_FAILED);
	assert_int_equal(m.restarts, 0);
	assert_false(m.port);
	assert_int_equal(m.sb, SUP_SB_NONE);
	assert_int_equal(m.takeovers, 0);
}

static void test_seq_fork_failure(void **state)
{
	(void)state;
	struct sim m;
	sim_init(&m, &defaults);
	m.fork_fails = true;
	assert_int_equal(sim_feed(&m, SUP_EV_START, false), SUP_RESTARTING);
	assert_int_equal(m.last_result, 0);
	assert_int_equal(m.timer_at - m.now, 100);
	sim_advance(&m, 100);
	assert_int_equal(m.st, SUP_RESTARTING);
	assert_int_equal(m.timer_at - m.now, 200);
	m.fork_fails = false;
	sim_advance(&m, 200);
	assert_int_equal(m.st, SUP_STARTING);
	assert_int_equal(m.restarts, 2);

	/* With no backoff, "now" still goes through the timer: no recursion. */
	grace_restart r = defaults;
	r.backoff_initial_ms = 0;
	sim_init(&m, &r);
	m.fork_fails = true;
	assert_int_equal(sim_feed(&m, SUP_EV_START, false), SUP_RESTARTING);
	assert_int_equal(m.timer_at, m.now);
	for (int i = 0; i < 10 && m.st != SUP_FAILED; i++)
		sim_advance(&m, 0);
	assert_int_equal(m.st, SUP_FAILED); /* the burst limit, counted per attempt */
	assert_int_equal(m.h.n, 5);
}

static void test_seq_bind_failure(void **state)
{
	(void)state;
	struct sim m;
	sim_init(&m, &defaults);
	m.bind_fails = true;
	assert_int_equal(sim_feed(&m, SUP_EV_START, false), SUP_PORT_UNAVAILABLE);
	assert_int_equal(m.spawns, 0);
	assert_int_equal(m.h.n, 0); /* no start was made */
	m.bind_fails = false;
	assert_int_equal(sim_feed(&m, SUP_EV_RESTART, false), SUP_STARTING);
	assert_true(m.port);
}

static void test_seq_shutdown_from_every_state(void **state)
{
	(void)state;
	/* Each state reached, then stop (as grace serve's shutdown does), then
	 * the exit of whatever process there was: down, no process, no timer. */
	for (int s = 0; s < SUP_STATE_COUNT; s++) {
		struct sim m;
		sim_init(&m, &defaults);
		switch ((enum sup_state)s) {
		case SUP_STARTING: sim_feed(&m, SUP_EV_START, false); break;
		case SUP_READY: sim_run(&m, 2000); break;
		case SUP_RESTARTING:
			sim_run(&m, 10);
			sim_feed(&m, SUP_EV_EXIT, false);
			break;
		case SUP_STOPPING:
			sim_run(&m, 10);
			sim_feed(&m, SUP_EV_STOP, false);
			break;
		case SUP_STOPPED: break;
		case SUP_FAILED:
			sim_run(&m, 10);
			sim_feed(&m, SUP_EV_EXIT, true);
			break;
		case SUP_PORT_UNAVAILABLE:
			m.bind_fails = true;
			sim_feed(&m, SUP_EV_START, false);
			break;
		case SUP_STOP_THEN_START:
			sim_run(&m, 10);
			sim_feed(&m, SUP_EV_RESTART, false);
			break;
		case SUP_UNREACHABLE: continue; /* another node's kernel: never shut down here */
		case SUP_STATE_COUNT: break;
		}
		assert_int_equal(m.st, s);
		sim_feed(&m, SUP_EV_STOP, false);
		if (m.process)
			sim_feed(&m, SUP_EV_EXIT, false);
		if (!is_down(m.st))
			fail_msg("shutdown from %s ends in %s", sup_state_key((enum sup_state)s),
				 sup_state_key(m.st));
		assert_false(m.process);
		assert_int_equal(m.timer_at, NEVER);
		assert_int_equal(m.watchdog_at, NEVER);
		assert_int_equal(m.sb, SUP_SB_NONE);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_cell),
		cmocka_unit_test(test_properties),
		cmocka_unit_test(test_reachability),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_standby_cells),
		cmocka_unit_test(test_standby_disabled),
		cmocka_unit_test(test_standby_limit),
		cmocka_unit_test(test_seq_crash_loop_backs_off_then_fails),
		cmocka_unit_test(test_seq_stable_crash_uses_the_standby),
		cmocka_unit_test(test_seq_watchdog_kills_a_hung_kernel),
		cmocka_unit_test(test_seq_stop_during_start),
		cmocka_unit_test(test_seq_restart_while_stopping),
		cmocka_unit_test(test_seq_ready_timeout),
		cmocka_unit_test(test_seq_permanent_error_fails_at_once),
		cmocka_unit_test(test_seq_fork_failure),
		cmocka_unit_test(test_seq_bind_failure),
		cmocka_unit_test(test_seq_shutdown_from_every_state),
	};
	return cmocka_run_group_tests_name("supervisor_table", tests, NULL, NULL);
}
