/* Unit tests for the restart policy (src/supervisor/policy.c), driven by a
 * fake clock: every time is a number the test chooses. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "serve/supervisor/policy.h"

/* The shipped defaults (etc/grace.ini [defaults]). */
static const grace_restart defaults = {
	.burst_max = 5,
	.burst_window_ms = 10000,
	.backoff_initial_ms = 100,
	.backoff_max_ms = 5000,
	.stable_ms = 1000,
};

struct fake {
	sup_history h;
	uint64_t now; /* the fake clock, in ms */
};

static int setup_fake(void **state)
{
	static struct fake f;
	memset(&f, 0xA5, sizeof f); /* sup_history_reset must clear it all */
	sup_history_reset(&f.h);
	f.now = 1000000; /* far from 0, so "now - window" does not wrap */
	*state = &f;
	return 0;
}

/* Starts a run now, lets it live `up_ms`, and asks what to do about its end. */
static sup_decision run(struct fake *f, const grace_restart *r, uint64_t up_ms, bool permanent)
{
	uint64_t started = f->now;
	sup_history_add_start(&f->h, started);
	f->now += up_ms;
	return sup_policy_decide(r, &f->h, started, f->now, permanent);
}

static void test_reset(void **state)
{
	struct fake *f = *state;
	assert_int_equal(f->h.n, 0);
	assert_int_equal(f->h.head, 0);
	assert_int_equal(f->h.quick_crashes, 0);
	for (unsigned i = 0; i < SUP_HISTORY_MAX; i++)
		assert_int_equal(f->h.starts_ms[i], 0);
	assert_int_equal(sup_history_starts_within(&f->h, f->now, UINT64_MAX), 0);
}

static void test_stable_run_restarts_now(void **state)
{
	struct fake *f = *state;
	/* Two quick crashes build a streak ... */
	sup_decision d = run(f, &defaults, 10, false);
	assert_int_equal(d.verdict, SUP_RESTART_AFTER);
	f->now += d.delay_ms;
	d = run(f, &defaults, 999, false); /* one ms short of stable */
	assert_int_equal(d.verdict, SUP_RESTART_AFTER);
	assert_int_equal(d.delay_ms, 200);
	assert_int_equal(f->h.quick_crashes, 2);
	f->now += d.delay_ms;

	/* ... which a run of stable_ms ends. */
	d = run(f, &defaults, 1000, false);
	assert_int_equal(d.verdict, SUP_RESTART_NOW);
	assert_int_equal(d.delay_ms, 0);
	assert_non_null(d.why);
	assert_int_equal(f->h.quick_crashes, 0);

	/* So the next quick crash starts the backoff over. */
	d = run(f, &defaults, 5, false);
	assert_int_equal(d.verdict, SUP_RESTART_AFTER);
	assert_int_equal(d.delay_ms, 100);
	assert_int_equal(f->h.quick_crashes, 1);

	/* A long run is stable too. */
	f->now += d.delay_ms;
	d = run(f, &defaults, 3600000, false);
	assert_int_equal(d.verdict, SUP_RESTART_NOW);
	assert_int_equal(f->h.quick_crashes, 0);
}

static void test_backoff_doubles_to_cap(void **state)
{
	struct fake *f = *state;
	grace_restart r = defaults;
	r.burst_max = 1000;    /* capped at SUP_HISTORY_MAX - 1 ... */
	r.burst_window_ms = 1; /* ... but only starts in the same ms count */
	static const uint64_t want[] = { 100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000 };
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		sup_decision d = run(f, &r, 50, false);
		assert_int_equal(d.verdict, SUP_RESTART_AFTER);
		assert_int_equal(d.delay_ms, want[i]);
		assert_int_equal(f->h.quick_crashes, i + 1);
		assert_non_null(d.why);
		f->now += d.delay_ms;
	}
	/* A long streak stays at the cap (and does not overflow). */
	for (int i = 0; i < 200; i++) {
		sup_decision d = run(f, &r, 1, false);
		assert_int_equal(d.verdict, SUP_RESTART_AFTER);
		assert_int_equal(d.delay_ms, 5000);
		f->now += d.delay_ms;
	}
	assert_int_equal(f->h.quick_crashes, 209);
}

static void test_backoff_cap_below_initial(void **state)
{
	struct fake *f = *state;
	grace_restart r = defaults;
	r.backoff_initial_ms = 3000;
	r.backoff_max_ms = 2000;
	sup_decision d = run(f, &r, 1, false);
	assert_int_equal(d.verdict, SUP_RESTART_AFTER);
	assert_int_equal(d.delay_ms, 2000);

	/* A cap of 0 means no delay at all. */
	r.backoff_max_ms = 0;
	f->now += 5000;
	d = run(f, &r, 1, false);
	assert_int_equal(d.verdict, SUP_RESTART_NOW);
	assert_int_equal(d.delay_ms, 0);
}

static void test_backoff_zero_restarts_now(void **state)
{
	struct fake *f = *state;
	grace_restart r = defaults;
	r.backoff_initial_ms = 0;
	for (unsigned i = 1; i <= 3; i++) {
		sup_decision d = run(f, &r, 10, false);
		assert_int_equal(d.verdict, SUP_RESTART_NOW);
		assert_int_equal(d.delay_ms, 0);
		assert_int_equal(f->h.quick_crashes, i); /* still a streak */
		f->now += 5000;                          /* out of each other's window */
	}
}

static void test_burst_gives_up(void **state)
{
	struct fake *f = *state;
	grace_restart r = defaults; /* 5 starts within 10 s */
	sup_decision d;
	for (int i = 1; i <= 4; i++) {
		d = run(f, &r, 10, false);
		assert_int_not_equal(d.verdict, SUP_GIVE_UP);
		f->now += d.delay_ms; /* 100 + 200 + 400 + 800, all within 10 s */
	}
	d = run(f, &r, 10, false); /* the fifth start within the window */
	assert_int_equal(d.verdict, SUP_GIVE_UP);
	assert_int_equal(d.delay_ms, 0);
	assert_non_null(d.why);
	assert_non_null(strstr(d.why, "burst"));

	/* Stable runs count toward the burst too. */
	sup_history_reset(&f->h);
	f->now += 100000;
	r.burst_max = 3;
	r.burst_window_ms = 60000;
	r.stable_ms = 10;
	assert_int_equal(run(f, &r, 1000, false).verdict, SUP_RESTART_NOW);
	assert_int_equal(run(f, &r, 1000, false).verdict, SUP_RESTART_NOW);
	assert_int_equal(run(f, &r, 1000, false).verdict, SUP_GIVE_UP);
}

static void test_old_starts_do_not_count(void **state)
{
	struct fake *f = *state;
	grace_restart r = defaults;
	r.burst_max = 3;
	r.burst_window_ms = 1000;
	/* Two starts, then a quiet spell longer than the window. */
	sup_history_add_start(&f->h, f->now);
	sup_history_add_start(&f->h, f->now + 10);
	f->now += 10 + 1000;
	/* The window is (now - 1000, now]: a start exactly 1000 ms ago is out. */
	assert_int_equal(sup_history_starts_within(&f->h, f->now, 1000), 0);
	assert_int_equal(sup_history_starts_within(&f->h, f->now, 1001), 1);
	assert_int_equal(sup_history_starts_within(&f->h, f->now, 1011), 2);
	assert_int_equal(sup_history_starts_within(&f->h, f->now - 1, 1000), 1);

	/* So two more quick starts do not reach a burst of 3 ... */
	sup_decision d = run(f, &r, 1, false);
	assert_int_not_equal(d.verdict, SUP_GIVE_UP);
	d = run(f, &r, 1, false);
	assert_int_not_equal(d.verdict, SUP_GIVE_UP);
	/* ... but a third one within the window does. */
	d = run(f, &r, 1, false);
	assert_int_equal(d.verdict, SUP_GIVE_UP);
}

static void test_permanent_gives_up(void **state)
{
	struct fake *f = *state;
	/* Whatever the history and however long it ran. */
	sup_decision d = run(f, &defaults, 10, true);
	assert_int_equal(d.verdict, SUP_GIVE_UP);
	assert_int_equal(d.delay_ms, 0);
	assert_non_null(d.why);
	assert_non_null(strstr(d.why, "permanent"));
	d = run(f, &defaults, 1000000, true);
	assert_int_equal(d.verdict, SUP_GIVE_UP);
	d = run(f, &defaults, 1000000, false);
	assert_int_equal(d.verdict, SUP_RESTART_NOW);
}

static void test_history_ring_wraps(void **state)
{
	struct fake *f = *state;
	/* Ten old starts at t0 .. t0+9, then SUP_HISTORY_MAX new ones 1 s apart
	 * from t1: the old ones must have been overwritten. */
	uint64_t t0 = f->now, t1 = t0 + 1000000;
	for (unsigned i = 0; i < 10; i++)
		sup_history_add_start(&f->h, t0 + i);
	assert_int_equal(f->h.n, 10);
	for (unsigned i = 0; i < SUP_HISTORY_MAX; i++)
		sup_history_add_start(&f->h, t1 + 1000 * (uint64_t)i);
	assert_int_equal(f->h.n, SUP_HISTORY_MAX);
	assert_int_equal(f->h.head, 10);

	uint64_t last = t1 + 1000 * (uint64_t)(SUP_HISTORY_MAX - 1);
	assert_int_equal(sup_history_starts_within(&f->h, last, UINT64_MAX), SUP_HISTORY_MAX);
	assert_int_equal(sup_history_starts_within(&f->h, last, 1), 1);
	assert_int_equal(sup_history_starts_within(&f->h, last, 1000), 1);
	assert_int_equal(sup_history_starts_within(&f->h, last, 1001), 2);
	assert_int_equal(sup_history_starts_within(&f->h, last, 10 * 1000 + 1), 11);
	/* A window reaching back to t0 finds only what the ring still holds. */
	assert_int_equal(sup_history_starts_within(&f->h, last, last - t0 + 1), SUP_HISTORY_MAX);

	/* Wrapping many times over keeps the newest SUP_HISTORY_MAX. */
	for (unsigned i = 0; i < 3 * SUP_HISTORY_MAX + 5; i++)
		sup_history_add_start(&f->h, last + 1 + i);
	uint64_t newest = last + 3 * SUP_HISTORY_MAX + 5;
	assert_int_equal(f->h.n, SUP_HISTORY_MAX);
	assert_int_equal(sup_history_starts_within(&f->h, newest, 5), 5);
	assert_int_equal(sup_history_starts_within(&f->h, newest, UINT64_MAX), SUP_HISTORY_MAX);
	assert_int_equal(sup_history_starts_within(&f->h, newest, SUP_HISTORY_MAX - 1),
			 SUP_HISTORY_MAX - 1);
}

static void test_burst_up_to_config_max(void **state)
{
	struct fake *f = *state;
	grace_restart r = defaults;
	r.burst_max = 1000; /* the largest restart_burst the config takes */
	r.burst_window_ms = 3600000;
	r.backoff_initial_ms = 0;
	for (unsigned i = 1; i < r.burst_max; i++) {
		sup_decision d = run(f, &r, 1, false);
		if (d.verdict == SUP_GIVE_UP)
			fail_msg("gave up after %u starts", i);
	}
	assert_int_equal(run(f, &r, 1, false).verdict, SUP_GIVE_UP); /* start 1000 */
}

/* judge answers what decide would, and leaves the history alone. */
static void test_judge_is_pure(void **state)
{
	struct fake *f = *state;
	for (int i = 0; i < 3; i++)
		sup_history_add_start(&f->h, f->now - 100 * (uint64_t)i);
	f->h.quick_crashes = 2;
	sup_history before = f->h;
	sup_decision j = sup_policy_judge(&defaults, &f->h, f->now - 10, f->now, false);
	assert_memory_equal(&before, &f->h, sizeof before);
	assert_int_equal(j.verdict, SUP_RESTART_AFTER);
	assert_int_equal(j.delay_ms, 400);
	assert_int_equal(j.streak, 3);
	sup_decision d = sup_policy_decide(&defaults, &f->h, f->now - 10, f->now, false);
	assert_int_equal(d.verdict, j.verdict);
	assert_int_equal(d.delay_ms, j.delay_ms);
	assert_int_equal(f->h.quick_crashes, 3);
	/* A stable run ends the streak; giving up keeps it. */
	assert_int_equal(sup_policy_judge(&defaults, &f->h, f->now - 5000, f->now, false).streak, 0);
	assert_int_equal(sup_policy_judge(&defaults, &f->h, f->now - 10, f->now, true).streak, 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup(f, setup_fake)
		T(test_reset),
		T(test_stable_run_restarts_now),
		T(test_backoff_doubles_to_cap),
		T(test_backoff_cap_below_initial),
		T(test_backoff_zero_restarts_now),
		T(test_burst_gives_up),
		T(test_old_starts_do_not_count),
		T(test_permanent_gives_up),
		T(test_history_ring_wraps),
		T(test_burst_up_to_config_max),
		T(test_judge_is_pure),
#undef T
	};
	return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
