/* Unit tests of the self_healing kernel's pure pieces
 * (src/kernels/self_healing/{correlate,ladder,hints}.c): deduplication,
 * flapping, dependency folding and resolution of incidents; the ladder's
 * climb, cooldowns and reset; the global budget; root-cause hints. Every
 * clock is a number passed in. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "kernels/self_healing/correlate.h"
#include "kernels/self_healing/hints.h"
#include "kernels/self_healing/ladder.h"
#include "kernels/self_healing/postmortem.h"
#include <stdlib.h>

#define S 1000

static sh_corr C;

static void corr_setup(unsigned threshold)
{
	sh_corr_cfg cfg = { .flap_window_ms = 60 * S, .flap_threshold = threshold,
			    .stable_ms = 10 * S };
	sdk_err err = { "" };
	assert_int_equal(sh_deps_parse("audit:immutable_log, governance:audit", &cfg, &err), 0);
	sh_corr_init(&C, &cfg, 1);
}

static sh_corr_result ev(const char *k, enum sh_ev_kind kind, int64_t now)
{
	sh_corr_result r;
	sh_event e = { .kernel = k, .kind = kind, .ts_ms = now };
	assert_int_equal(sh_corr_apply(&C, &e, now, &r), 0);
	return r;
}

/* One open incident per kernel and family: a table of events and where
 * each must go (the incident id, 0 for none) and whether it opened one. */
static void test_dedup_table(void **state)
{
	(void)state;
	corr_setup(3);
	static const struct {
		const char *kernel;
		enum sh_ev_kind kind;
		int64_t at;
		int64_t inc;
		bool opened;
	} rows[] = {
		{ "librarian", SH_EV_UP, 0, 0, false },		   /* good: never opens */
		{ "librarian", SH_EV_CRASH, 1 * S, 1, true },	   /* opens 1 */
		{ "librarian", SH_EV_UP, 2 * S, 1, false },	   /* attaches */
		{ "librarian", SH_EV_PROBE_BAD, 3 * S, 1, false }, /* same family */
		{ "librarian", SH_EV_STORAGE, 4 * S, 2, true },	   /* another family */
		{ "librarian", SH_EV_ALERT, 5 * S, 1, false },	   /* joins what is open */
		{ "scheduler", SH_EV_HEAL_FAILED, 6 * S, 3, true },/* another kernel */
		{ "librarian", SH_EV_HEAL_FAILED, 7 * S, 1, false },
	};
	for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
		sh_corr_result r = ev(rows[i].kernel, rows[i].kind, rows[i].at);
		assert_int_equal(r.inc ? r.inc->id : 0, rows[i].inc);
		assert_int_equal(r.opened, rows[i].opened);
		assert_false(r.folded);
	}
	assert_int_equal(C.n_open, 3);
	sh_incident *a = sh_corr_find(&C, "librarian", SH_FAM_AVAILABILITY);
	assert_non_null(a);
	assert_int_equal(a->events, 5); /* crash, up, probe_bad, alert, heal_failed */
}

static void test_flapping(void **state)
{
	(void)state;
	corr_setup(3);
	/* Two crashes in the window: not yet; the third makes it flap. */
	assert_false(ev("librarian", SH_EV_CRASH, 0).became_flapping);
	ev("librarian", SH_EV_UP, 1 * S);
	assert_false(ev("librarian", SH_EV_CRASH, 2 * S).became_flapping);
	ev("librarian", SH_EV_UP, 3 * S);
	sh_corr_result r = ev("librarian", SH_EV_CRASH, 4 * S);
	assert_true(r.became_flapping);
	assert_true(r.inc->flapping);
	assert_int_equal(r.inc->crashes, 3);
	assert_false(ev("librarian", SH_EV_CRASH, 5 * S).became_flapping); /* once */
	assert_int_equal(sh_corr_crashes_in_window(&C, "librarian", 5 * S), 4);
	/* Crashes further apart than the window never flap. */
	corr_setup(3);
	for (int i = 0; i < 5; i++) {
		sh_corr_result q = ev("scheduler", SH_EV_CRASH, i * 61 * S);
		assert_false(q.inc->flapping);
		ev("scheduler", SH_EV_UP, i * 61 * S + 1);
	}
}

static void test_dependency_folding(void **state)
{
	(void)state;
	corr_setup(3);
	/* The log crashes, then audit fails while it is down: one incident,
	 * the log its cause. */
	sh_corr_result log = ev("immutable_log", SH_EV_CRASH, 0);
	assert_true(log.opened);
	sh_corr_result aud = ev("audit", SH_EV_HEAL_FAILED, 1 * S);
	assert_false(aud.opened);
	assert_true(aud.folded);
	assert_int_equal(aud.inc->id, log.inc->id);
	assert_string_equal(aud.inc->kernel, "immutable_log");
	assert_int_equal(aud.inc->n_kernels, 2);
	assert_string_equal(aud.inc->kernels[1], "audit");
	/* Transitively only through open incidents: governance depends on
	 * audit, which is in the log's incident. */
	assert_int_equal(ev("audit", SH_EV_CRASH, 2 * S).inc->id, log.inc->id);
	sh_corr_result gov = ev("governance", SH_EV_PROBE_BAD, 3 * S);
	assert_true(gov.folded);
	assert_int_equal(gov.inc->id, log.inc->id);
	/* A kernel with no dependency down opens its own. */
	assert_true(ev("librarian", SH_EV_CRASH, 3 * S).opened);
	/* Late: audit fails first, then the log it depends on. The log's new
	 * incident absorbs audit's (one incident, the log its cause), and
	 * audit's is no longer open. */
	corr_setup(3);
	int64_t a2 = ev("audit", SH_EV_CRASH, 0).inc->id;
	ev("audit", SH_EV_CRASH, 500);
	sh_corr_result l2 = ev("immutable_log", SH_EV_CRASH, 1 * S);
	assert_true(l2.opened);
	assert_int_not_equal(a2, l2.inc->id);
	assert_int_equal(l2.n_merged, 1);
	assert_int_equal(l2.merged[0], a2);
	assert_string_equal(l2.inc->kernel, "immutable_log");
	assert_int_equal(l2.inc->n_kernels, 2);
	assert_string_equal(l2.inc->kernels[1], "audit");
	assert_int_equal(l2.inc->events, 3);
	assert_int_equal(l2.inc->crashes, 3);
	assert_int_equal(l2.inc->opened_at, 0); /* from audit's first symptom */
	assert_int_equal(sh_corr_find(&C, "audit", SH_FAM_AVAILABILITY)->id, l2.inc->id);
	assert_int_equal(C.n_open, 1);
	/* A dependent that has been up and quiet for stable_ms is not merged. */
	corr_setup(3);
	ev("audit", SH_EV_CRASH, 0);
	ev("audit", SH_EV_UP, 1 * S);
	sh_corr_result l3 = ev("immutable_log", SH_EV_CRASH, 12 * S);
	assert_true(l3.opened);
	assert_int_equal(l3.n_merged, 0);
	assert_int_equal(C.n_open, 2);
	/* A dependency that has been up and quiet for stable_ms explains nothing. */
	corr_setup(3);
	ev("immutable_log", SH_EV_CRASH, 0);
	ev("immutable_log", SH_EV_UP, 1 * S);
	assert_true(ev("audit", SH_EV_CRASH, 12 * S).opened);
}

static void test_resolution(void **state)
{
	(void)state;
	corr_setup(3);
	sh_incident out[4];
	ev("immutable_log", SH_EV_CRASH, 0);
	ev("audit", SH_EV_CRASH, 1 * S);
	ev("immutable_log", SH_EV_UP, 2 * S);
	/* audit still down: open. */
	assert_int_equal(sh_corr_tick(&C, 20 * S, out, 4), 0);
	ev("audit", SH_EV_UP, 21 * S);
	/* up, but not stable_ms since audit's last bad event (at 1 s)?  It
	 * is: 20 s ago. Everything up and quiet: resolved. */
	assert_int_equal(sh_corr_tick(&C, 21 * S, out, 4), 1);
	assert_int_equal(out[0].resolved_at, 21 * S);
	assert_int_equal(C.n_open, 0);
	/* A recent bad event holds it open. */
	ev("librarian", SH_EV_CRASH, 30 * S);
	ev("librarian", SH_EV_UP, 31 * S);
	assert_int_equal(sh_corr_tick(&C, 35 * S, out, 4), 0);
	assert_int_equal(sh_corr_tick(&C, 40 * S, out, 4), 1);
	/* After resolution the next failure opens a new incident. */
	sh_corr_result r = ev("librarian", SH_EV_CRASH, 41 * S);
	assert_true(r.opened);
	assert_int_equal(r.inc->id, 3);
	/* A heal asked for (or failed) of a kernel that is up holds it open
	 * only for stable_ms; a stop for a person holds it open until it is
	 * up again. */
	ev("librarian", SH_EV_UP, 42 * S);
	assert_int_equal(ev("librarian", SH_EV_HEAL_ASKED, 43 * S).inc->id, 3);
	ev("librarian", SH_EV_HEAL_FAILED, 44 * S);
	assert_int_equal(sh_corr_tick(&C, 53 * S, out, 4), 0);
	assert_int_equal(sh_corr_tick(&C, 54 * S, out, 4), 1);
	ev("scheduler", SH_EV_HEAL_ASKED, 60 * S);
	ev("scheduler", SH_EV_STOPPED, 61 * S);
	assert_int_equal(sh_corr_tick(&C, 200 * S, out, 4), 0);
	ev("scheduler", SH_EV_UP, 201 * S);
	assert_int_equal(sh_corr_tick(&C, 201 * S, out, 4), 1);
}

static void test_bad_input(void **state)
{
	(void)state;
	corr_setup(3);
	sh_corr_result r;
	sh_event e = { .kernel = NULL, .kind = SH_EV_CRASH };
	assert_int_equal(sh_corr_apply(&C, &e, 0, &r), -1);
	e.kernel = "";
	assert_int_equal(sh_corr_apply(&C, &e, 0, &r), -1);
	e.kernel = "x";
	e.kind = SH_EV_COUNT;
	assert_int_equal(sh_corr_apply(&C, &e, 0, &r), -1);
	sh_corr_cfg cfg;
	sdk_err err = { "" };
	assert_int_equal(sh_deps_parse("audit", &cfg, &err), -1);
	assert_int_equal(sh_deps_parse("audit:", &cfg, &err), -1);
	assert_int_equal(sh_deps_parse(":x", &cfg, &err), -1);
	assert_int_equal(sh_deps_parse("", &cfg, &err), 0);
	assert_int_equal(cfg.n_deps, 0);
}

/* ---- the ladder and the budget */

static bool known(const char *pb)
{
	return !strcmp(pb, "restart_component") || !strcmp(pb, "reset_port") ||
	       !strcmp(pb, "rebind_port");
}

static void test_ladder_parse(void **state)
{
	(void)state;
	sh_ladder l;
	sdk_err err = { "" };
	assert_int_equal(sh_ladder_parse("restart_component:0,reset_port:5000,rebind_port:10000,"
					 "stop:30000",
					 known, &l, &err),
			 0);
	assert_int_equal(l.n, 4);
	assert_string_equal(l.steps[3].playbook, "stop");
	assert_int_equal(l.steps[2].cooldown_ms, 10000);
	static const char *const bad[] = { "", "restart_component", "restart_component:x",
					   "restart_component:-1", "nope:0", "stop:0,reset_port:0",
					   "restart_component:99999999999" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		assert_int_equal(sh_ladder_parse(bad[i], known, &l, &err), -1);
}

/* A kernel that keeps failing: a table of asks (at time t) and the
 * verdict and step each must get. Cooldowns 0, 5 s, 10 s, 30 s; stable 60 s. */
static void test_ladder_climb(void **state)
{
	(void)state;
	sh_ladder l;
	sdk_err err = { "" };
	assert_int_equal(sh_ladder_parse("restart_component:0,reset_port:5000,rebind_port:10000,"
					 "stop:30000",
					 known, &l, &err),
			 0);
	sh_budget b;
	sh_budget_init(&b, 100, 0);
	sh_kstate ks = { .name = "librarian", .step = -1 };
	static const struct {
		int64_t at;
		enum sh_verdict v;
		int step;
		int64_t retry;
	} rows[] = {
		{ 0, SH_ACT, 0, 0 },			    /* restart */
		{ 1 * S, SH_HOLD_COOLDOWN, 1, 4 * S },	    /* reset_port's 5 s not passed */
		{ 5 * S, SH_ACT, 1, 0 },		    /* reset_port */
		{ 6 * S, SH_HOLD_COOLDOWN, 2, 9 * S },
		{ 15 * S, SH_ACT, 2, 0 },		    /* rebind */
		{ 45 * S, SH_ACT, 3, 0 },		    /* stop */
		{ 50 * S, SH_HOLD_STOPPED, 3, -1 },	    /* a person decides */
		{ 200 * S, SH_ACT, 0, 0 },		    /* stable: the backoff reset */
	};
	for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
		sh_advice a;
		sh_ladder_advise(&l, &ks, &b, 60 * S, rows[i].at, &a);
		assert_int_equal(a.verdict, rows[i].v);
		assert_int_equal(a.step, rows[i].step);
		assert_int_equal(a.retry_after_ms, rows[i].retry);
	}
	assert_int_equal(b.spent, 5);
	assert_int_equal(ks.actions, 5);
	assert_int_equal(ks.holds, 3);
	/* A slow heal: the cooldown counts from its end, once reported. */
	sh_kstate k2 = { .name = "audit", .step = -1 };
	sh_advice a;
	sh_ladder_advise(&l, &k2, &b, 60 * S, 300 * S, &a);
	assert_int_equal(a.verdict, SH_ACT);
	sh_ladder_done(&k2, 304 * S); /* it took 4 s */
	sh_ladder_advise(&l, &k2, &b, 60 * S, 306 * S, &a);
	assert_int_equal(a.verdict, SH_HOLD_COOLDOWN);
	assert_int_equal(a.retry_after_ms, 3 * S);
	sh_ladder_advise(&l, &k2, &b, 60 * S, 309 * S, &a);
	assert_int_equal((int)a.verdict, (int)SH_ACT);
	assert_int_equal(a.step, 1);
}

static void test_budget(void **state)
{
	(void)state;
	sh_ladder l;
	sdk_err err = { "" };
	assert_int_equal(sh_ladder_parse("restart_component:0", known, &l, &err), 0);
	sh_budget b;
	sh_budget_init(&b, 3, 0); /* 3 an hour: one every 20 minutes */
	sh_kstate ks[5];
	for (int i = 0; i < 5; i++)
		ks[i] = (sh_kstate){ .step = -1 };
	sh_advice a;
	/* Shared by all kernels: three act, the fourth is held. */
	for (int i = 0; i < 3; i++) {
		sh_ladder_advise(&l, &ks[i], &b, 60 * S, 0, &a);
		assert_int_equal(a.verdict, SH_ACT);
	}
	sh_ladder_advise(&l, &ks[3], &b, 60 * S, 0, &a);
	assert_int_equal(a.verdict, SH_HOLD_BUDGET);
	assert_int_equal(a.retry_after_ms, 1200 * S);
	assert_int_equal(b.refused, 1);
	/* A held ask does not climb: ks[3] still starts at the bottom. */
	assert_int_equal(ks[3].step, -1);
	/* Refilled evenly: one token after 20 minutes, not before. */
	sh_ladder_advise(&l, &ks[4], &b, 60 * S, 1199 * S, &a);
	assert_int_equal(a.verdict, SH_HOLD_BUDGET);
	sh_ladder_advise(&l, &ks[4], &b, 1200 * S, 1200 * S, &a);
	assert_int_equal(a.verdict, SH_ACT);
	/* Never more than the capacity. */
	int64_t next;
	assert_true(sh_budget_tokens(&b, 100 * 3600 * S, &next) <= 3.0);
	assert_int_equal(next, 0);
	/* A zero budget holds everything. */
	sh_budget_init(&b, 0, 0);
	sh_kstate z = { .step = -1 };
	sh_ladder_advise(&l, &z, &b, 60 * S, 0, &a);
	assert_int_equal(a.verdict, SH_HOLD_BUDGET);
}

/* ---- root-cause hints */

static const char *kinds_of(json_t *a, char *buf, size_t n)
{
	buf[0] = 0;
	size_t i;
	json_t *h;
	json_array_foreach(a, i, h) {
		size_t l = strlen(buf);
		snprintf(buf + l, n - l, "%s%s", l ? "," : "",
			 json_string_value(json_object_get(h, "kind")));
	}
	return buf;
}

static void test_hints(void **state)
{
	(void)state;
	static const struct {
		sh_facts f;
		const char *kinds;
	} rows[] = {
		{ { .last_exit = "exit 1", .disk_total = -1 }, "exit_code" },
		{ { .last_exit = "signal 9 (Killed)", .disk_total = -1 }, "signal" },
		{ { .last_exit = "signal 9 (Killed)", .oom_kills = 1, .disk_total = -1 },
		  "signal,oom_kill" },
		{ { .last_exit = "watchdog: no WATCHDOG=1 for 3000 ms; signal 6 (Aborted)",
		    .disk_total = -1 },
		  "watchdog_timeout,signal" },
		{ { .holder_kind = "foreign", .holder_pid = 42, .holder_cmdline = "nc -l",
		    .disk_total = -1 },
		  "port_held" },
		{ { .holder_kind = "ours", .disk_total = -1 }, "" },
		{ { .storage_error = "file is not a database", .disk_total = -1 }, "database_corrupt" },
		{ { .disk_free = 10ll << 20, .disk_total = 100ll << 30 }, "disk_full" },
		{ { .disk_free = 50ll << 30, .disk_total = 100ll << 30 }, "" },
		{ { .issue_type = "process_hung", .disk_total = -1 }, "probe_timeout" },
		{ { .last_exit = "", .disk_total = -1 }, "" },
	};
	for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
		json_t *a = json_array();
		char buf[256];
		sh_hints_classify(&rows[i].f, a);
		assert_string_equal(kinds_of(a, buf, sizeof buf), rows[i].kinds);
		json_decref(a);
	}
	json_t *a = json_array();
	sh_facts f = { .last_exit = "signal 9 (Killed)", .disk_total = -1 };
	sh_hints_classify(&f, a);
	assert_string_equal(json_string_value(json_object_get(json_array_get(a, 0), "name")),
			    "SIGKILL");
	json_decref(a);
}

/* ---- postmortems */

static void test_postmortem(void **state)
{
	(void)state;
	json_t *inc = json_loads(
		"{\"id\":7,\"kernel\":\"immutable_log\",\"family\":\"availability\","
		"\"state\":\"resolved\",\"opened_at\":1000,\"updated_at\":9000,"
		"\"resolved_at\":9000,\"title\":\"immutable_log: the process keeps ending\","
		"\"cause\":{\"kernel\":\"immutable_log\",\"hints\":[{\"kind\":\"signal\","
		"\"detail\":\"ended by signal 9 (SIGKILL)\"}]},\"kernels\":[\"immutable_log\","
		"\"audit\"],\"events\":3,\"crashes\":2,\"flapping\":false,"
		"\"event_list\":[{\"ts_ms\":3000,\"kernel\":\"audit\",\"kind\":\"crash\"},"
		"{\"ts_ms\":1000,\"kernel\":\"immutable_log\",\"kind\":\"crash\"}],"
		"\"actions\":[{\"at_ms\":2000,\"kernel\":\"immutable_log\",\"step\":0,"
		"\"playbook\":\"restart_component\",\"verdict\":\"act\",\"outcome\":\"healed\","
		"\"verified\":true},{\"at_ms\":2500,\"kernel\":\"immutable_log\",\"step\":1,"
		"\"playbook\":\"reset_port\",\"verdict\":\"act\",\"outcome\":\"failed\","
		"\"verified\":false}]}",
		0, NULL);
	assert_non_null(inc);
	json_t *audit = json_loads("[{\"id\":40,\"ts_ms\":1500,\"action\":\"kernel.state\","
				   "\"resource\":\"kernel/immutable_log\",\"outcome\":\"starting\","
				   "\"log_index\":12,\"sth\":{\"tree_size\":13},\"inclusion\":[]}]",
				   0, NULL);
	json_t *pm = sh_postmortem_build(inc, audit, NULL);
	assert_int_equal(json_integer_value(json_object_get(pm, "verified_heals")), 1);
	json_t *tl = json_object_get(pm, "timeline");
	assert_int_equal(json_array_size(tl), 5); /* 2 events, 2 actions, 1 audit event */
	for (size_t i = 1; i < json_array_size(tl); i++)
		assert_true(json_integer_value(json_object_get(json_array_get(tl, i - 1), "ts_ms")) <=
			    json_integer_value(json_object_get(json_array_get(tl, i), "ts_ms")));
	json_t *proof = json_object_get(json_array_get(tl, 1), "proof");
	assert_int_equal(json_integer_value(json_object_get(proof, "log_index")), 12);
	assert_non_null(json_object_get(proof, "inclusion"));
	assert_null(json_object_get(json_object_get(pm, "incident"), "event_list"));
	char *md = sh_postmortem_markdown(pm);
	assert_non_null(md);
	assert_non_null(strstr(md, "# Postmortem: incident 7"));
	assert_non_null(strstr(md, "| restart_component | act | healed | yes |"));
	assert_non_null(strstr(md, "| reset_port | act | failed | no |"));
	assert_non_null(strstr(md, "log index 12 (proved)"));
	assert_non_null(strstr(md, "**signal**: ended by signal 9 (SIGKILL)"));
	free(md);
	json_decref(pm);
	/* Without the audit trail: said so, made from the rest. */
	pm = sh_postmortem_build(inc, NULL, "the audit kernel answered 503");
	assert_false(json_is_true(json_object_get(json_object_get(pm, "audit"), "available")));
	assert_int_equal(json_array_size(json_object_get(pm, "timeline")), 4);
	md = sh_postmortem_markdown(pm);
	assert_non_null(strstr(md, "The audit trail could not be read: the audit kernel answered 503."));
	free(md);
	json_decref(pm);
	json_decref(audit);
	json_decref(inc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dedup_table),	  cmocka_unit_test(test_flapping),
		cmocka_unit_test(test_dependency_folding), cmocka_unit_test(test_resolution),
		cmocka_unit_test(test_bad_input),	  cmocka_unit_test(test_ladder_parse),
		cmocka_unit_test(test_ladder_climb),	  cmocka_unit_test(test_budget),
		cmocka_unit_test(test_hints),		  cmocka_unit_test(test_postmortem),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
