/* Unit tests of the healer's side of learning (src/serve/healer/learn.c):
 * when it asks, what it sends (the features), which answers it takes and
 * which it falls back from at once (not ready, a call that cannot start,
 * no answer, an error, nonsense), that a cancelled ask never calls back,
 * and what a reward says. The supervisor lookup and the call path are
 * stand-ins here: the call is captured, and the test answers it. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "../../src/serve/healer/learn.c"

/* ---- stand-ins ---- */

static sup_kernel learner, patient;
static grace_kernel_cfg learner_cfg = { .name = "learning", .enabled = true };
static grace_kernel_cfg patient_cfg = { .name = "audit", .enabled = true };
static bool configured;
static int call_rc;
static char last_path[64], last_body[4096];
static sdk_call_cb last_cb;
static void *last_arg;
static int calls;

sup_kernel *sup_find(supervisor *s, const char *name)
{
	(void)s;
	return configured && !strcmp(name, "learning") ? &learner : NULL;
}

int sdk_call(sdk_caller *c, const char *kernel, const char *method, const char *target,
	     const char *body, size_t len, const char *const *headers, unsigned timeout_ms,
	     sdk_call_cb cb, void *arg)
{
	(void)c, (void)headers, (void)timeout_ms;
	assert_string_equal(kernel, "learning");
	assert_string_equal(method, "POST");
	if (call_rc < 0)
		return call_rc;
	calls++;
	snprintf(last_path, sizeof last_path, "%s", target);
	snprintf(last_body, sizeof last_body, "%.*s", (int)len, body);
	last_cb = cb;
	last_arg = arg;
	return 0;
}

void sdk_log(enum sdk_log_level level, const char *request_id, const char *fmt, ...)
{
	(void)level, (void)request_id, (void)fmt;
}

/* ---- the healer's callback ---- */

static char picked[64];
static json_t *recorded;
static int64_t picked_id;
static int answers;

static void on_pick(const char *pb, json_t *learning, int64_t id, void *arg)
{
	(void)arg;
	snprintf(picked, sizeof picked, "%s", pb);
	json_decref(recorded);
	recorded = json_incref(learning);
	picked_id = id;
	answers++;
}

static const char *const arms[] = { "restart_component", "reset_port" };

static int setup(void **state)
{
	(void)state;
	memset(&learner, 0, sizeof learner);
	memset(&patient, 0, sizeof patient);
	learner.cfg = &learner_cfg;
	learner.state = SUP_READY;
	patient.cfg = &patient_cfg;
	configured = true;
	call_rc = 0;
	calls = answers = 0;
	last_cb = NULL;
	picked[0] = 0;
	picked_id = -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	json_decref(recorded);
	recorded = NULL;
	return 0;
}

static hl_learn_ask *ask(hl_learn *l, json_t **fb)
{
	return hl_learn_order(l, &patient, "process_hung", arms, 2, on_pick, NULL, fb);
}

static const char *fallback_of(json_t *j)
{
	return json_string_value(json_object_get(j, "fallback"));
}

static void test_not_asked(void **state)
{
	(void)state;
	hl_learn *l = hl_learn_new(NULL, NULL);
	json_t *fb = NULL;
	/* Not configured: nothing asked, nothing recorded. */
	configured = false;
	assert_null(ask(l, &fb));
	assert_null(fb);
	configured = true;
	/* One playbook: nothing to order. */
	assert_null(hl_learn_order(l, &patient, "storage_failed", arms, 1, on_pick, NULL, &fb));
	assert_null(fb);
	/* Healing learning itself: not asked. */
	assert_null(hl_learn_order(l, &learner, "process_hung", arms, 2, on_pick, NULL, &fb));
	assert_null(fb);
	/* Not ready: the static order, said so, not asked. */
	learner.state = SUP_STOPPED;
	assert_null(ask(l, &fb));
	assert_string_equal(fallback_of(fb), "not_ready");
	assert_true(json_is_false(json_object_get(fb, "asked")));
	json_decref(fb);
	/* Disabled is not configured. */
	learner_cfg.enabled = false;
	assert_null(ask(l, &fb));
	assert_null(fb);
	learner_cfg.enabled = true;
	/* The call cannot start. */
	learner.state = SUP_READY;
	call_rc = -1;
	assert_null(ask(l, &fb));
	assert_string_equal(fallback_of(fb), "cannot_call");
	json_decref(fb);
	assert_int_equal(calls, 0);
	assert_int_equal(answers, 0);
	assert_int_equal(l->fallbacks[FB_NOT_READY], 1);
	assert_int_equal(l->fallbacks[FB_CANNOT_CALL], 1);
	hl_learn_free(l);
}

static void test_request_features(void **state)
{
	(void)state;
	hl_learn *l = hl_learn_new(NULL, NULL);
	/* Three starts in the last hour (two restarts), one long ago. */
	uint64_t now = (uint64_t)sdk_mono_ms();
	uint64_t starts[] = { now - 5 * HOUR_MS, now - 1000, now - 500, now - 10 };
	for (size_t i = 0; i < 4; i++)
		patient.history.starts_ms[patient.history.head++] = starts[i];
	patient.history.n = 4;
	snprintf(patient.last_exit, sizeof patient.last_exit, "signal 9 (Killed)");
	hl_learn_heal_ended(l, "audit", sdk_wall_ms() - 90000);
	json_t *fb = NULL;
	hl_learn_ask *a = ask(l, &fb);
	assert_non_null(a);
	assert_null(fb);
	assert_string_equal(last_path, "/decide");
	json_t *req = json_loads(last_body, 0, NULL);
	assert_non_null(req);
	assert_string_equal(json_string_value(json_object_get(req, "issue")), "process_hung");
	assert_string_equal(json_string_value(json_object_get(req, "kernel")), "audit");
	json_t *f = json_object_get(req, "features");
	assert_int_equal(json_integer_value(json_object_get(f, "restarts_last_hour")), 2);
	assert_string_equal(json_string_value(json_object_get(f, "last_exit")), "signal");
	json_int_t since = json_integer_value(json_object_get(f, "since_last_heal_s"));
	assert_true(since >= 89 && since <= 91);
	json_t *sent = json_object_get(req, "arms");
	assert_int_equal(json_array_size(sent), 2);
	assert_string_equal(json_string_value(json_array_get(sent, 0)), "restart_component");
	json_decref(req);
	last_cb(0, NULL, 0, 300, "timeout", last_arg);
	hl_learn_free(l);
}

static void test_exit_kinds(void **state)
{
	(void)state;
	assert_string_equal(exit_kind(""), "none");
	assert_string_equal(exit_kind("exit 0"), "clean");
	assert_string_equal(exit_kind("exit 111"), "error");
	assert_string_equal(exit_kind("signal 9 (Killed)"), "signal");
	assert_string_equal(exit_kind("watchdog timeout: signal 9 (Killed)"), "watchdog");
	assert_string_equal(exit_kind("cannot bind port 8133: Address in use"), "start_failed");
	assert_string_equal(exit_kind("status 4"), "other");
}

/* Answers the captured call with `status` and `body`. */
static void answer(int status, const char *body)
{
	sdk_call_cb cb = last_cb;
	last_cb = NULL;
	cb(status, body, body ? strlen(body) : 0, 2.5, status ? NULL : "timeout", last_arg);
}

static void test_answers(void **state)
{
	(void)state;
	hl_learn *l = hl_learn_new(NULL, NULL);
	json_t *fb = NULL;
	/* A good answer: its first playbook, and the decision to reward. */
	assert_non_null(ask(l, &fb));
	answer(200, "{\"decision_id\":7,\"order\":[\"reset_port\",\"restart_component\"],"
		    "\"probability\":0.4,\"policy\":\"thompson\",\"version\":2}");
	assert_string_equal(picked, "reset_port");
	assert_int_equal(picked_id, 7);
	assert_true(json_is_true(json_object_get(recorded, "asked")));
	assert_int_equal(json_integer_value(json_object_get(recorded, "decision_id")), 7);
	assert_null(fallback_of(recorded));
	/* Everything else: the static first, at once, with the reason. */
	static const struct {
		int status;
		const char *body, *why;
	} bad[] = {
		{ 0, NULL, "no_answer" },
		{ 503, "{\"error\":{}}", "refused" },
		{ 404, "{}", "refused" },
		{ 200, "not json", "nonsense" },
		{ 200, "{\"order\":[\"reset_port\",\"restart_component\"],\"probability\":0.4}",
		  "nonsense" },
		{ 200, "{\"decision_id\":0,\"order\":[\"reset_port\",\"restart_component\"],"
		       "\"probability\":0.4}", "nonsense" },
		{ 200, "{\"decision_id\":8,\"order\":[\"reset_port\"],\"probability\":0.4}",
		  "nonsense" },
		{ 200, "{\"decision_id\":8,\"order\":[\"reset_port\",\"reset_port\"],"
		       "\"probability\":0.4}", "nonsense" },
		{ 200, "{\"decision_id\":8,\"order\":[\"rm_rf\",\"restart_component\"],"
		       "\"probability\":0.4}", "nonsense" },
		{ 200, "{\"decision_id\":8,\"order\":[\"reset_port\",\"restart_component\"],"
		       "\"probability\":0}", "nonsense" },
		{ 200, "{\"decision_id\":8,\"order\":[\"reset_port\",\"restart_component\"],"
		       "\"probability\":1.5}", "nonsense" },
		{ 200, "{\"decision_id\":8,\"order\":[\"reset_port\",\"restart_component\"]}",
		  "nonsense" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		assert_non_null(ask(l, &fb));
		answer(bad[i].status, bad[i].body);
		assert_string_equal(picked, "restart_component");
		assert_int_equal(picked_id, 0);
		assert_string_equal(fallback_of(recorded), bad[i].why);
	}
	assert_int_equal(l->answers, 1);
	assert_int_equal(l->asks, 1 + sizeof bad / sizeof *bad);
	hl_learn_free(l);
}

static void test_cancel(void **state)
{
	(void)state;
	hl_learn *l = hl_learn_new(NULL, NULL);
	json_t *fb = NULL;
	/* Two incidents end while learning thinks: neither hears the answer. */
	hl_learn_ask *a = ask(l, &fb);
	sdk_call_cb cb_a = last_cb;
	void *arg_a = last_arg;
	hl_learn_ask *b = ask(l, &fb);
	assert_non_null(a);
	assert_non_null(b);
	hl_learn_cancel(a);
	hl_learn_cancel(b);
	hl_learn_cancel(b); /* twice: no harm */
	answer(200, "{\"decision_id\":7,\"order\":[\"reset_port\",\"restart_component\"],"
		    "\"probability\":0.4}"); /* b's answer frees b */
	assert_int_equal(answers, 0);
	cb_a(0, NULL, 0, 1, "timeout", arg_a); /* a's ends too */
	assert_int_equal(answers, 0);
	/* At shutdown the call path ends calls without calling back: the
	 * asks still out are the learner's to free (LSan checks it). */
	hl_learn_cancel(ask(l, &fb));
	hl_learn_free(l);
}

static void test_reward(void **state)
{
	(void)state;
	hl_learn *l = hl_learn_new(NULL, NULL);
	json_t *inc = json_pack("{s:I, s:s, s:f, s:s}", "id", (json_int_t)40, "outcome", "healed",
				"duration_ms", 812.5, "issue_type", "process_hung");
	hl_learn_reward(l, 7, "reset_port", inc);
	assert_string_equal(last_path, "/reward");
	json_t *r = json_loads(last_body, 0, NULL);
	assert_int_equal(json_integer_value(json_object_get(r, "decision_id")), 7);
	assert_string_equal(json_string_value(json_object_get(r, "arm")), "reset_port");
	assert_int_equal(json_integer_value(json_object_get(r, "reward")), 1);
	json_t *o = json_object_get(r, "outcome");
	assert_int_equal(json_integer_value(json_object_get(o, "incident_id")), 40);
	assert_string_equal(json_string_value(json_object_get(o, "outcome")), "healed");
	json_decref(r);
	last_cb(200, "{}", 2, 1, NULL, last_arg);
	json_object_set_new(inc, "outcome", json_string("failed"));
	hl_learn_reward(l, 8, "reset_port", inc);
	r = json_loads(last_body, 0, NULL);
	assert_int_equal(json_integer_value(json_object_get(r, "reward")), 0);
	json_decref(r);
	/* Nothing for an interrupted heal, or without a decision. */
	int before = calls;
	json_object_set_new(inc, "outcome", json_string("interrupted"));
	hl_learn_reward(l, 9, "reset_port", inc);
	json_object_set_new(inc, "outcome", json_string("healed"));
	hl_learn_reward(l, 0, "reset_port", inc);
	assert_int_equal(calls, before);
	/* An incident that asked nothing is told, when learning is ready. */
	hl_learn_incident(l, "audit", "storage_failed");
	assert_string_equal(last_path, "/incidents");
	learner.state = SUP_STOPPED;
	before = calls;
	hl_learn_incident(l, "audit", "storage_failed");
	assert_int_equal(calls, before);
	json_decref(inc);
	hl_learn_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_not_asked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_request_features, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exit_kinds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_answers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reward, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
