/* Unit tests of the decision client (src/sdk/pdp.c) against a fake policy
 * kernel served in this process (the SDK's own HTTP server, on a loopback
 * port): decisions cached and used while the versions stay, stale the
 * moment the watch hears they moved, one question asked once, a batch per
 * turn of the loop, the ready hook and a hung kernel failing closed, and
 * a restarted kernel (a new instance) forgetting everything. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sdk/clock.h"
#include "sdk/http.h"
#include "sdk/log.h"
#include "sdk/pdp.h"

/* The fake policy kernel. */
static struct fake {
	int port;
	int64_t pv, ev;
	char instance[16];
	bool hang;        /* answer nothing */
	unsigned batches; /* POST /authorize/batch answered */
	unsigned questions;
	size_t last_batch;
	sdk_req *waiting; /* a long poll held */
	sdk_req *hung[64]; /* requests left unanswered while hanging (answered at teardown) */
	size_t n_hung;
	int64_t wait_pv, wait_ev;
	struct event *wait_timer;
} fk;

static struct event_base *base;
static sdk_server *srv;
static sdk_caller *caller;
static sdk_pdp *pdp;
static bool kernel_ready = true;

static json_t *versions(void)
{
	return json_pack("{s:s, s:b, s:b, s:I, s:I, s:s}", "policy_set", "default", "exists", 1,
			 "deleted", 0, "policy_version", (json_int_t)fk.pv, "entities_version",
			 (json_int_t)fk.ev, "instance", fk.instance);
}

static void answer_wait(void)
{
	if (!fk.waiting)
		return;
	sdk_req *r = fk.waiting;
	fk.waiting = NULL;
	evtimer_del(fk.wait_timer);
	sdk_reply_json(r, 200, versions());
}

static void on_wait_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	answer_wait();
}

static void on_versions(sdk_req *req, void *ctx)
{
	(void)ctx;
	if (fk.hang) {
		if (fk.n_hung < sizeof fk.hung / sizeof *fk.hung)
			fk.hung[fk.n_hung++] = req; /* answered only at teardown */
		return;
	}
	const char *pv = sdk_req_query(req, "policy_version");
	const char *ev = sdk_req_query(req, "entities_version");
	if (pv && ev && atoll(pv) == fk.pv && atoll(ev) == fk.ev && !fk.waiting) {
		fk.waiting = req;
		struct timeval tv = sdk_ms_tv(PDP_WATCH_WAIT_MS);
		evtimer_add(fk.wait_timer, &tv);
		return;
	}
	sdk_reply_json(req, 200, versions());
}

/* Decides by the action's name: "yes..." allowed, anything else denied. */
static void on_batch(sdk_req *req, void *ctx)
{
	(void)ctx;
	if (fk.hang) {
		if (fk.n_hung < sizeof fk.hung / sizeof *fk.hung)
			fk.hung[fk.n_hung++] = req;
		return;
	}
	json_t *body = sdk_req_json(req, true);
	if (!body)
		return;
	json_t *results = json_array();
	size_t i;
	json_t *q;
	json_array_foreach (json_object_get(body, "requests"), i, q) {
		const char *a = json_string_value(json_object_get(json_object_get(q, "action"), "id"));
		json_array_append_new(results, json_pack("{s:s}", "decision",
							 a && !strncmp(a, "yes", 3) ? "allow" : "deny"));
		fk.questions++;
	}
	fk.batches++;
	fk.last_batch = json_array_size(results);
	sdk_reply_json(req, 200, json_pack("{s:o, s:s, s:I, s:I}", "results", results, "policy_set",
					   "default", "policy_version", (json_int_t)fk.pv,
					   "entities_version", (json_int_t)fk.ev));
}

static const sdk_route routes[] = {
	SDK_ROUTE("GET", "/versions", on_versions),
	SDK_ROUTE("POST", "/authorize/batch", on_batch),
};

static int resolve(const char *name, void *arg)
{
	(void)arg;
	return !strcmp(name, "policy") ? fk.port : -1;
}

static bool ready_hook(void *arg)
{
	(void)arg;
	return kernel_ready;
}

/* Runs the loop until `cond` or `ms` pass; returns cond's last value. */
static bool run_until(bool (*cond)(void), int64_t ms)
{
	int64_t end = sdk_mono_ms() + ms;
	while (!cond() && sdk_mono_ms() < end)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(200);
	return cond();
}

static bool is_live(void)
{
	return sdk_pdp_lookup(pdp, "probe", 5) != SDK_PDP_UNAVAILABLE && fk.waiting != NULL;
}

static int results[16], n_results;

static void on_answer(int result, const char *why, void *arg)
{
	(void)why;
	results[(intptr_t)arg] = result;
	n_results++;
}

static bool answered_1(void) { return n_results >= 1; }
static bool answered_3(void) { return n_results >= 3; }

static json_t *question(const char *action)
{
	return json_pack("{s:{s:s, s:s}, s:{s:s, s:s}, s:{s:s, s:s}, s:{}}", "principal", "type",
			 "User", "id", "u", "action", "type", "Action", "id", action, "resource", "type",
			 "Route", "id", "/", "context");
}

static void ask(const char *key, const char *action, intptr_t slot)
{
	results[slot] = -1;
	sdk_pdp_ask(pdp, key, strlen(key), question(action), NULL, on_answer, (void *)slot);
}

static int setup(void **state)
{
	(void)state;
	sdk_log_init("test", SDK_LOG_ERROR);
	memset(&fk, 0, sizeof fk);
	fk.pv = 3;
	fk.ev = 7;
	snprintf(fk.instance, sizeof fk.instance, "one");
	kernel_ready = true;
	n_results = 0;
	base = event_base_new();
	fk.wait_timer = evtimer_new(base, on_wait_timer, NULL);
	sdk_server_opts o = { .component = "fake-policy", .routes = routes, .n_routes = 2,
			      .limits = { .max_header_bytes = 16384, .max_headers = 100,
					  .max_body_bytes = 1 << 20, .timeout_ms = 30000,
					  .head_timeout_ms = 10000, .keepalive_ms = 75000,
					  .max_connections = 100, .max_connections_per_address = 100,
					  .drain_ms = 100 } };
	srv = sdk_server_new(base, &o);
	/* Any free loopback port. */
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(fd, 64), 0);
	getsockname(fd, (struct sockaddr *)&a, &len);
	fk.port = ntohs(a.sin_port);
	assert_int_equal(sdk_server_listen(srv, fd), 0);
	caller = sdk_caller_new(base, "test", NULL, resolve, NULL);
	sdk_pdp_opts po = { .base = base, .caller = caller, .policy_set = "default",
			    .timeout_ms = 300, .cache_entries = 64, .ready = ready_hook };
	pdp = sdk_pdp_new(&po);
	assert_non_null(pdp);
	/* The watch starts at the first look and holds a long poll. */
	assert_true(run_until(is_live, 2000));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	sdk_pdp_free(pdp);
	sdk_caller_free(caller);
	if (fk.waiting)
		sdk_reply_json(fk.waiting, 200, versions());
	fk.waiting = NULL;
	for (size_t i = 0; i < fk.n_hung; i++)
		sdk_reply_json(fk.hung[i], 503, NULL);
	fk.n_hung = 0;
	sdk_server_free(srv);
	event_free(fk.wait_timer);
	event_base_free(base);
	return 0;
}

static void test_cached_while_the_versions_stay(void **state)
{
	(void)state;
	assert_int_equal(sdk_pdp_lookup(pdp, "k1", 2), SDK_PDP_MISS);
	ask("k1", "yes.read", 0);
	assert_int_equal(n_results, 0); /* never from inside the ask */
	assert_true(run_until(answered_1, 2000));
	assert_int_equal(results[0], SDK_PDP_ALLOW);
	assert_int_equal(fk.batches, 1);
	for (int i = 0; i < 10; i++)
		assert_int_equal(sdk_pdp_lookup(pdp, "k1", 2), SDK_PDP_ALLOW);
	assert_int_equal(sdk_pdp_lookup(pdp, "k2", 2), SDK_PDP_MISS);
	assert_int_equal(fk.batches, 1); /* no round trip for a cached one */
	/* The policy moves: the watch hears it, and the decision is stale. */
	fk.pv++;
	answer_wait();
	assert_true(run_until(is_live, 2000));
	assert_int_equal(sdk_pdp_lookup(pdp, "k1", 2), SDK_PDP_MISS);
	/* The entity store moves: likewise. */
	n_results = 0;
	ask("k1", "no", 0);
	assert_true(run_until(answered_1, 2000));
	assert_int_equal(results[0], SDK_PDP_DENY);
	assert_int_equal(sdk_pdp_lookup(pdp, "k1", 2), SDK_PDP_DENY);
	fk.ev++;
	answer_wait();
	assert_true(run_until(is_live, 2000));
	assert_int_equal(sdk_pdp_lookup(pdp, "k1", 2), SDK_PDP_MISS);
}

static void test_one_batch_per_turn_and_one_question_once(void **state)
{
	(void)state;
	ask("a", "yes.a", 0);
	ask("b", "no.b", 1);
	ask("a", "yes.a", 2); /* the same question: asked once */
	assert_true(run_until(answered_3, 2000));
	assert_int_equal(fk.batches, 1);
	assert_int_equal(fk.last_batch, 2);
	assert_int_equal(fk.questions, 2);
	assert_int_equal(results[0], SDK_PDP_ALLOW);
	assert_int_equal(results[1], SDK_PDP_DENY);
	assert_int_equal(results[2], SDK_PDP_ALLOW);
}

static bool not_ready(void)
{
	return sdk_pdp_lookup(pdp, "a", 1) == SDK_PDP_UNAVAILABLE;
}

static void test_fail_closed(void **state)
{
	(void)state;
	ask("a", "yes.a", 0);
	assert_true(run_until(answered_1, 2000));
	assert_int_equal(sdk_pdp_lookup(pdp, "a", 1), SDK_PDP_ALLOW);
	/* Not ready (the supervisor says so): nothing, not even the cache. */
	kernel_ready = false;
	assert_int_equal(sdk_pdp_lookup(pdp, "a", 1), SDK_PDP_UNAVAILABLE);
	assert_false(sdk_pdp_ready(pdp));
	n_results = 0;
	ask("a", "yes.a", 0);
	assert_int_equal(n_results, 0);
	assert_true(run_until(answered_1, 2000));
	assert_int_equal(results[0], SDK_PDP_UNAVAILABLE);
	/* Back: the cache waits for the versions again. */
	kernel_ready = true;
	assert_int_equal(sdk_pdp_lookup(pdp, "a", 1), SDK_PDP_MISS);
	assert_true(run_until(is_live, 2000));
	/* Hung: the long poll goes unanswered past its grace. */
	n_results = 0;
	ask("a", "yes.a", 0);
	assert_true(run_until(answered_1, 2000));
	fk.hang = true;
	if (fk.waiting) /* the held poll is never answered */
		fk.hung[fk.n_hung++] = fk.waiting;
	fk.waiting = NULL;
	assert_true(run_until(not_ready, PDP_WATCH_WAIT_MS + PDP_WATCH_GRACE_MS + 1500));
	n_results = 0;
	ask("b", "yes.b", 0);
	assert_true(run_until(answered_1, 2000));
	assert_int_equal(results[0], SDK_PDP_UNAVAILABLE);
	/* It answers again: decisions come back, the old ones not trusted. */
	fk.hang = false;
	assert_true(run_until(is_live, 4000));
	assert_int_equal(sdk_pdp_lookup(pdp, "a", 1), SDK_PDP_MISS);
}

static void test_a_restart_forgets(void **state)
{
	(void)state;
	ask("a", "yes.a", 0);
	assert_true(run_until(answered_1, 2000));
	assert_int_equal(sdk_pdp_lookup(pdp, "a", 1), SDK_PDP_ALLOW);
	/* Same versions, another instance: a new policy kernel (a new file). */
	snprintf(fk.instance, sizeof fk.instance, "two");
	answer_wait();
	assert_true(run_until(is_live, 2000));
	assert_int_equal(sdk_pdp_lookup(pdp, "a", 1), SDK_PDP_MISS);
	/* And invalidating by hand does the same until the versions are read. */
	n_results = 0;
	ask("a", "yes.a", 0);
	assert_true(run_until(answered_1, 2000));
	assert_int_equal(sdk_pdp_lookup(pdp, "a", 1), SDK_PDP_ALLOW);
	sdk_pdp_invalidate(pdp);
	assert_int_equal(sdk_pdp_lookup(pdp, "a", 1), SDK_PDP_MISS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_cached_while_the_versions_stay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_batch_per_turn_and_one_question_once, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_fail_closed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_restart_forgets, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
