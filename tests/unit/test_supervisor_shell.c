/* Unit tests for the supervisor's shell (src/serve/supervisor/supervisor.c)
 * with real processes and a real event loop: observers hear of each state
 * change after the transition, from the loop, in order, with the change as
 * it was; never from inside a transition, even when they act on the kernel
 * themselves. The kernels are small shell or Python commands. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernels/registry.h"
#include "sdk/clock.h"
#include "sdk/log.h"
#include "serve/supervisor/supervisor.h"

#define CHANGES_MAX 32
#define WAIT_MS 30000 /* a bound for the loop, never an assertion */

/* A kernel that says READY=1 and then waits to be killed. */
#define READY_KERNEL                                                                            \
	"python3 -c \"import os,socket,time;a=os.environ['NOTIFY_SOCKET'];"                     \
	"s=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM);"                                   \
	"s.sendto(b'READY=1',chr(0)+a[1:] if a[0]=='@' else a);time.sleep(60)\""

struct fixture {
	char dir[64], ini[96];
	grace_config cfg;
	struct event_base *base;
	supervisor *sup;
	sup_change seen[CHANGES_MAX];
	enum sup_state state_then[CHANGES_MAX]; /* k->state when told */
	size_t n;
	int depth, max_depth;
	/* What the observer does, once, when told of this change. */
	enum sup_state act_on;
	int (*act)(sup_kernel *k);
	bool acted;
};

static void observer(const sup_change *c, void *arg)
{
	struct fixture *f = arg;
	f->depth++;
	if (f->depth > f->max_depth)
		f->max_depth = f->depth;
	if (f->n < CHANGES_MAX) {
		f->seen[f->n] = *c;
		f->state_then[f->n] = c->k->state;
		f->n++;
	}
	if (f->act && !f->acted && c->to == f->act_on) {
		f->acted = true;
		size_t before = f->n;
		f->act(c->k);
		/* The change the act made is queued, not told from in here. */
		assert_int_equal(f->n, before);
	}
	f->depth--;
}

/* A port free a moment ago, below the ephemeral range (config.c refuses an
 * offset that puts the API port in it) and in none of the black-box
 * harness's offsets (harness.py: 8000 + N and 8100-8149 + N for N in
 * 10000, 10200, ... 24000), nor the test PostgreSQL's 8150 + N or the NATS
 * cluster's 8170-8199 + N: 8160-8169 + N is nobody's. */
static int free_port(void)
{
	for (unsigned i = (unsigned)getpid();; i++) {
		int port = 8160 + 10000 + (int)(i % 71) * 200 + (int)(i / 71 % 10);
		int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct sockaddr_in a = { .sin_family = AF_INET,
					 .sin_port = htons((uint16_t)port),
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		assert_true(s >= 0);
		int ok = bind(s, (struct sockaddr *)&a, sizeof a) == 0;
		close(s);
		if (ok)
			return port;
	}
}

static int setup(void **state, const char *command)
{
	struct fixture *f = calloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/grace-supshell-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->ini, sizeof f->ini, "%s/grace.ini", f->dir);
	FILE *fp = fopen(f->ini, "w");
	assert_non_null(fp);
	/* The kernel's port is the one free a moment ago (offset from 8130). */
	fprintf(fp,
		"[grace]\ndata_dir = %s\nport_offset = %d\nlog_level = error\n"
		"[defaults]\nstable_ms = 200\nbackoff_initial_ms = 50\nstop_timeout_ms = 2000\n"
		/* Python may take seconds to start on a busy machine. */
		"ready_timeout_ms = 60000\n"
		"[kernel.librarian]\nport = 8130\ncommand = %s\n",
		f->dir, free_port() - 8130, command);
	fclose(fp);
	sdk_err err;
	grace_config_overrides ov = { .config_path = f->ini };
	int lrc = grace_config_read(&f->cfg, kernel_registry_all(), kernel_registry_count(), &ov,
				    &err);
	if (lrc < 0)
		fail_msg("%s", err.msg);
	sdk_log_init("test", SDK_LOG_ERROR);
	f->base = event_base_new();
	assert_int_equal(event_base_priority_init(f->base, 2), 0);
	sup_opts o = { .cfg = &f->cfg, .self_exe = "/bin/false", .on_change = observer, .arg = f };
	f->sup = sup_new(f->base, &o);
	assert_non_null(f->sup);
	*state = f;
	return 0;
}

static int setup_sleeper(void **state) { return setup(state, "sleep 60"); }
static int setup_ready(void **state) { return setup(state, READY_KERNEL); }

static int teardown(void **state)
{
	struct fixture *f = *state;
	sup_free(f->sup); /* kills and reaps what is left */
	event_base_free(f->base);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* Runs the loop until `n` changes were told (bounded by WAIT_MS). */
static void loop_until(struct fixture *f, size_t n)
{
	int64_t deadline = sdk_mono_ms() + WAIT_MS;
	while (f->n < n && sdk_mono_ms() < deadline)
		event_base_loop(f->base, EVLOOP_ONCE);
	if (f->n < n)
		fail_msg("%zu changes told, waited for %zu", f->n, n);
}

static void expect_change(struct fixture *f, size_t i, enum sup_state from, enum sup_state to,
			  enum sup_event cause)
{
	const sup_change *c = &f->seen[i];
	if (c->from != from || c->to != to || c->cause != cause)
		fail_msg("change %zu: %s -> %s (%s), want %s -> %s (%s)", i,
			 sup_state_key(c->from), sup_state_key(c->to), sup_event_name(c->cause),
			 sup_state_key(from), sup_state_key(to), sup_event_name(cause));
}

static void test_told_after_the_transition(void **state)
{
	struct fixture *f = *state;
	sup_kernel *k = sup_find(f->sup, "librarian");
	assert_int_equal(sup_kernel_start(k), 0);
	/* The transition is done; nobody has been told yet. */
	assert_int_equal(k->state, SUP_STARTING);
	assert_true(k->pid > 0);
	assert_int_equal(f->n, 0);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(f->n, 1);
	expect_change(f, 0, SUP_STOPPED, SUP_STARTING, SUP_EV_START);
	assert_int_equal(f->seen[0].pid, k->pid);
	assert_int_equal(f->seen[0].port, k->port);
}

static int stop(sup_kernel *k) { return sup_kernel_stop(k); }

/* An observer that stops the kernel (as the healer does): the stop's change
 * comes after, in order, and no observer ever runs inside another. */
static void test_observer_acts_in_order(void **state)
{
	struct fixture *f = *state;
	f->act_on = SUP_STARTING;
	f->act = stop;
	sup_kernel *k = sup_find(f->sup, "librarian");
	assert_int_equal(sup_kernel_start(k), 0);
	pid_t pid = k->pid;
	loop_until(f, 3); /* sleep dies of the SIGTERM */
	expect_change(f, 0, SUP_STOPPED, SUP_STARTING, SUP_EV_START);
	expect_change(f, 1, SUP_STARTING, SUP_STOPPING, SUP_EV_STOP);
	expect_change(f, 2, SUP_STOPPING, SUP_STOPPED, SUP_EV_EXIT);
	assert_int_equal(f->max_depth, 1);
	assert_int_equal(f->seen[1].pid, pid);
	assert_int_equal(f->seen[2].pid, 0);
	assert_string_equal(f->seen[2].last_exit, "signal 15 (Terminated)");
	assert_true(sup_all_down(f->sup));
	assert_int_equal(k->fd, -1); /* stopped: the port is closed */
	assert_int_equal(waitpid(pid, NULL, WNOHANG), -1); /* reaped already */
}

/* Several changes in one callback: each is told as it was, though the
 * kernel has moved on by the time it is told. */
static void test_each_change_as_it_was(void **state)
{
	struct fixture *f = *state;
	sup_kernel *k = sup_find(f->sup, "librarian");
	assert_int_equal(sup_kernel_start(k), 0);
	assert_int_equal(sup_kernel_stop(k), 0);
	assert_int_equal(sup_kernel_start(k), 0); /* a start after the exit */
	assert_int_equal(k->state, SUP_STOP_THEN_START);
	assert_int_equal(f->n, 0);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_true(f->n >= 3);
	expect_change(f, 0, SUP_STOPPED, SUP_STARTING, SUP_EV_START);
	expect_change(f, 1, SUP_STARTING, SUP_STOPPING, SUP_EV_STOP);
	expect_change(f, 2, SUP_STOPPING, SUP_STOP_THEN_START, SUP_EV_START);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(f->state_then[i], SUP_STOP_THEN_START);
	/* The old process exits; a new one starts on the same socket. */
	pid_t old = f->seen[0].pid;
	loop_until(f, 4);
	expect_change(f, 3, SUP_STOP_THEN_START, SUP_STARTING, SUP_EV_EXIT);
	assert_true(k->pid > 0 && k->pid != old);
	assert_true(k->fd >= 0);
}

static void nothing(evutil_socket_t fd, short what, void *arg) { (void)fd, (void)what, (void)arg; }

/* A ready kernel killed: one change, told with the exit that caused it. */
static void test_crash_told_with_its_exit(void **state)
{
	struct fixture *f = *state;
	sup_kernel *k = sup_find(f->sup, "librarian");
	assert_int_equal(sup_kernel_start(k), 0);
	loop_until(f, 2);
	expect_change(f, 1, SUP_STARTING, SUP_READY, SUP_EV_READY);
	/* Up past stable_ms (the loop's own timer, not a sleep). */
	struct event *t = evtimer_new(f->base, nothing, NULL);
	struct timeval tv = { 0, 300 * 1000 };
	evtimer_add(t, &tv);
	while (evtimer_pending(t, NULL))
		event_base_loop(f->base, EVLOOP_ONCE);
	event_free(t);
	pid_t old = k->pid;
	unsigned restarts = k->restarts;
	assert_int_equal(kill(old, SIGKILL), 0);
	loop_until(f, 3);
	expect_change(f, 2, SUP_READY, SUP_STARTING, SUP_EV_EXIT);
	assert_string_equal(f->seen[2].last_exit, "signal 9 (Killed)");
	assert_true(f->seen[2].pid > 0 && f->seen[2].pid != old); /* restarted at once */
	assert_int_equal(k->restarts, restarts + 1);
	assert_int_equal(k->sb_pid, 0); /* a command kernel has no standby */
	assert_false(sup_kernel_has_standby(k));
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_told_after_the_transition, setup_sleeper,
						teardown),
		cmocka_unit_test_setup_teardown(test_observer_acts_in_order, setup_sleeper, teardown),
		cmocka_unit_test_setup_teardown(test_each_change_as_it_was, setup_sleeper, teardown),
		cmocka_unit_test_setup_teardown(test_crash_told_with_its_exit, setup_ready, teardown),
	};
	return cmocka_run_group_tests_name("supervisor_shell", tests, NULL, NULL);
}
