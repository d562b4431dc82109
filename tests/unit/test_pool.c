/* Unit tests for the worker pool (src/sdk/pool.c) on a real event loop:
 * jobs run on workers and finish on the loop, the queue bound, the
 * per-caller limit (one caller at its limit, the others still get in),
 * and what happens to queued jobs when the pool is freed. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <event2/event.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sdk/pool.h"

/* Work that waits until the test opens the gate: jobs stay "running". */
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static bool gate_open;

static void gate_set(bool open)
{
	pthread_mutex_lock(&gate_mu);
	gate_open = open;
	pthread_cond_broadcast(&gate_cv);
	pthread_mutex_unlock(&gate_mu);
}

struct job {
	int ran, done;
	pthread_t worker;
	int order; /* when it ran, from 1 */
};

static int ran_so_far; /* only the pool's one worker writes it in test_turns */

static pthread_t loop_thread;

static void work(void *arg)
{
	struct job *j = arg;
	pthread_mutex_lock(&gate_mu);
	while (!gate_open)
		pthread_cond_wait(&gate_cv, &gate_mu);
	pthread_mutex_unlock(&gate_mu);
	j->worker = pthread_self();
	j->ran++;
	j->order = __atomic_add_fetch(&ran_so_far, 1, __ATOMIC_SEQ_CST);
}

static void done(void *arg)
{
	struct job *j = arg;
	assert_true(pthread_equal(pthread_self(), loop_thread));
	j->done++;
}

static void run_until_done(struct event_base *base, struct job *jobs, size_t n)
{
	for (int spins = 0; spins < 5000; spins++) {
		size_t finished = 0;
		for (size_t i = 0; i < n; i++)
			finished += jobs[i].done == 1;
		if (finished == n)
			return;
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	fail_msg("jobs did not finish");
}

static int setup(void **state)
{
	(void)state;
	loop_thread = pthread_self();
	gate_set(false);
	return 0;
}

static void test_runs_off_the_loop(void **state)
{
	(void)state;
	struct event_base *base = event_base_new();
	sdk_pool *p = sdk_pool_new(base, 2, 16);
	assert_non_null(p);
	struct job jobs[5] = { 0 };
	for (size_t i = 0; i < 5; i++)
		assert_int_equal(sdk_pool_submit(p, work, done, &jobs[i]), 0);
	assert_int_equal(sdk_pool_pending(p), 5);
	gate_set(true);
	run_until_done(base, jobs, 5);
	for (size_t i = 0; i < 5; i++) {
		assert_int_equal(jobs[i].ran, 1);
		assert_false(pthread_equal(jobs[i].worker, loop_thread));
	}
	assert_int_equal(sdk_pool_pending(p), 0);
	sdk_pool_free(p);
	event_base_free(base);
}

static void test_queue_bound(void **state)
{
	(void)state;
	struct event_base *base = event_base_new();
	sdk_pool *p = sdk_pool_new(base, 1, 3);
	struct job jobs[4] = { 0 };
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(sdk_pool_submit(p, work, done, &jobs[i]), 0);
	assert_int_equal(sdk_pool_submit(p, work, done, &jobs[3]), SDK_EBUSY);
	gate_set(true);
	run_until_done(base, jobs, 3);
	assert_int_equal(jobs[3].ran + jobs[3].done, 0);
	/* Room again once they finished. */
	assert_int_equal(sdk_pool_submit(p, work, done, &jobs[3]), 0);
	run_until_done(base, jobs, 4);
	sdk_pool_free(p);
	event_base_free(base);
}

static void test_caller_limit(void **state)
{
	(void)state;
	struct event_base *base = event_base_new();
	sdk_pool *p = sdk_pool_new(base, 2, 10);
	sdk_pool_set_caller_max(p, 3);
	struct job a[4] = { 0 }, b[3] = { 0 }, anon[3] = { 0 };
	/* alice fills her share and is refused past it ... */
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(sdk_pool_submit_as(p, "alice", work, done, &a[i]), 0);
	assert_int_equal(sdk_pool_submit_as(p, "alice", work, done, &a[3]), SDK_POOL_ECALLER);
	assert_int_equal(sdk_pool_caller_pending(p, "alice"), 3);
	/* ... while bob and jobs of no caller still get in. */
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(sdk_pool_submit_as(p, "bob", work, done, &b[i]), 0);
	assert_int_equal(sdk_pool_caller_pending(p, "bob"), 3);
	assert_int_equal(sdk_pool_caller_pending(p, "carol"), 0);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(sdk_pool_submit(p, work, done, &anon[i]), 0);
	/* The queue bound still holds for everybody. */
	struct job extra = { 0 };
	assert_int_equal(sdk_pool_submit_as(p, "carol", work, done, &extra), 0);
	assert_int_equal(sdk_pool_pending(p), 10);
	assert_int_equal(sdk_pool_submit_as(p, "dave", work, done, &a[3]), SDK_EBUSY);
	assert_int_equal(sdk_pool_caller_pending(p, "dave"), 0);
	gate_set(true);
	run_until_done(base, a, 3);
	run_until_done(base, b, 3);
	run_until_done(base, anon, 3);
	run_until_done(base, &extra, 1);
	assert_int_equal(sdk_pool_caller_pending(p, "alice"), 0);
	assert_int_equal(sdk_pool_caller_pending(p, "bob"), 0);
	/* Her jobs done, alice gets in again. */
	assert_int_equal(sdk_pool_submit_as(p, "alice", work, done, &a[3]), 0);
	run_until_done(base, a, 4);
	sdk_pool_free(p);
	event_base_free(base);
}

/* Names are told apart by their first SDK_POOL_CALLER_MAX bytes. */
static void test_long_caller_names(void **state)
{
	(void)state;
	struct event_base *base = event_base_new();
	sdk_pool *p = sdk_pool_new(base, 1, 10);
	sdk_pool_set_caller_max(p, 1);
	char one[200], two[200];
	memset(one, 'x', sizeof one - 1);
	one[sizeof one - 1] = '\0';
	memcpy(two, one, sizeof two);
	two[150] = 'y'; /* differs only past the bytes that count */
	struct job j[3] = { 0 };
	assert_int_equal(sdk_pool_submit_as(p, one, work, done, &j[0]), 0);
	assert_int_equal(sdk_pool_submit_as(p, two, work, done, &j[1]), SDK_POOL_ECALLER);
	two[10] = 'y';
	assert_int_equal(sdk_pool_submit_as(p, two, work, done, &j[1]), 0);
	gate_set(true);
	run_until_done(base, j, 2);
	sdk_pool_free(p);
	event_base_free(base);
}

/* One worker, alice's burst queued before bob's one job: bob's runs as soon
 * as the worker is free, not after all of alice's; alice's keep their order. */
static void test_turns(void **state)
{
	(void)state;
	struct event_base *base = event_base_new();
	sdk_pool *p = sdk_pool_new(base, 1, 16);
	struct job a[4] = { 0 }, b[2] = { 0 };
	ran_so_far = 0;
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(sdk_pool_submit_as(p, "alice", work, done, &a[i]), 0);
	assert_int_equal(sdk_pool_submit_as(p, "bob", work, done, &b[0]), 0);
	assert_int_equal(sdk_pool_submit_as(p, "bob", work, done, &b[1]), 0);
	gate_set(true);
	run_until_done(base, a, 4);
	run_until_done(base, b, 2);
	/* a[0] first (it came first), then they alternate while both have some. */
	assert_int_equal(a[0].order, 1);
	assert_int_equal(b[0].order, 2);
	assert_int_equal(a[1].order, 3);
	assert_int_equal(b[1].order, 4);
	for (size_t i = 1; i < 4; i++)
		assert_true(a[i].order > a[i - 1].order);
	assert_true(b[1].order > b[0].order);
	sdk_pool_free(p);
	event_base_free(base);
}

static void *open_gate_later(void *arg)
{
	(void)arg;
	struct timespec ts = { 0, 50 * 1000000 };
	nanosleep(&ts, NULL);
	gate_set(true);
	return NULL;
}

/* Freeing the pool waits for the running job and calls done for the queued
 * ones, which then never run. */
static void test_free_answers_queued(void **state)
{
	(void)state;
	struct event_base *base = event_base_new();
	sdk_pool *p = sdk_pool_new(base, 1, 10);
	sdk_pool_set_caller_max(p, 5);
	struct job jobs[4] = { 0 };
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(sdk_pool_submit_as(p, "alice", work, done, &jobs[i]), 0);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, open_gate_later, NULL), 0);
	sdk_pool_free(p); /* the one worker is held in jobs[0] (or has not started) */
	pthread_join(t, NULL);
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(jobs[i].done, 1);
	assert_true(jobs[0].ran <= 1);
	for (size_t i = 1; i < 4; i++)
		assert_int_equal(jobs[i].ran, 0);
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_runs_off_the_loop, setup),
		cmocka_unit_test_setup(test_queue_bound, setup),
		cmocka_unit_test_setup(test_caller_limit, setup),
		cmocka_unit_test_setup(test_long_caller_names, setup),
		cmocka_unit_test_setup(test_turns, setup),
		cmocka_unit_test_setup(test_free_answers_queued, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
