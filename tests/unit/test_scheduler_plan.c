/* Unit tests of the scheduler's slot planner (src/kernels/scheduler/plan.c:
 * the missed-run policies, the starting deadline, jitter, the walk bound)
 * and of the job spec checker (spec.c), with the time passed in. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "kernels/scheduler/plan.h"
#include "kernels/scheduler/spec.h"

static cron_expr every_second;
static sch_schedule per_second = { .cron = &every_second, .anchor_ms = 0 };

static int setup(void **state)
{
	(void)state;
	return cron_parse("@every 1s", &every_second, NULL);
}

static sch_plan plan(sch_missed missed, unsigned max, int64_t deadline, int64_t next,
		     int64_t now)
{
	sch_plan_in in = { .schedule = &per_second, .job_id = "j_test", .missed = missed,
			   .missed_max = max, .deadline_ms = deadline, .tolerance_ms = 500,
			   .next_slot_ms = next, .now_ms = now };
	sch_plan p;
	assert_int_equal(sch_plan_due(&in, &p), 0);
	return p;
}

/* "RRCMM..." from oldest: R on time, C catch-up, M missed. */
static void assert_shape(const sch_plan *p, const char *want)
{
	char got[64] = "";
	for (size_t i = 0; i < p->n && i < sizeof got - 1; i++)
		got[i] = !p->slots[i].run ? 'M'
			 : p->slots[i].trigger == SCH_TRIGGER_CATCHUP ? 'C'
								     : 'R';
	if (strcmp(got, want))
		fail_msg("plan %s, want %s", got, want);
}

static void test_on_time(void **state)
{
	(void)state;
	sch_plan p = plan(SCH_MISSED_SKIP, 1, -1, 10000, 10100);
	assert_shape(&p, "R");
	assert_int_equal(p.slots[0].slot_ms, 10000);
	assert_int_equal(p.next_slot_ms, 11000);
	sch_plan_free(&p);
	p = plan(SCH_MISSED_SKIP, 1, -1, 10000, 9999); /* not due yet */
	assert_int_equal(p.n, 0);
	assert_int_equal(p.next_slot_ms, 10000);
	sch_plan_free(&p);
}

static void test_missed_policies(void **state)
{
	(void)state;
	/* Down from before 10000 until 15300: slots 10000..15000 came due. */
	sch_plan p = plan(SCH_MISSED_SKIP, 1, -1, 10000, 15300);
	assert_shape(&p, "MMMMMR");
	assert_int_equal(p.next_slot_ms, 16000);
	sch_plan_free(&p);
	p = plan(SCH_MISSED_RUN_ONCE, 1, -1, 10000, 15300);
	assert_shape(&p, "MMMMCR"); /* the latest missed one */
	sch_plan_free(&p);
	p = plan(SCH_MISSED_RUN_ALL, 3, -1, 10000, 15300);
	assert_shape(&p, "MMCCCR");
	sch_plan_free(&p);
	p = plan(SCH_MISSED_RUN_ALL, 100, -1, 10000, 15300);
	assert_shape(&p, "CCCCCR");
	sch_plan_free(&p);
	/* The starting deadline: nothing later than 2.5 s runs. */
	p = plan(SCH_MISSED_RUN_ALL, 100, 2500, 10000, 15300);
	assert_shape(&p, "MMMCCR");
	sch_plan_free(&p);
	p = plan(SCH_MISSED_RUN_ALL, 100, 200, 10000, 15300);
	assert_shape(&p, "MMMMMM"); /* even on time, 300 ms is past a 200 ms deadline */
	sch_plan_free(&p);
}

static void test_walk_bound(void **state)
{
	(void)state;
	int64_t now = (int64_t)(SCH_WALK_MAX + 5000) * 1000;
	sch_plan p = plan(SCH_MISSED_RUN_ONCE, 1, -1, 1000, now);
	assert_int_equal(p.n, SCH_WALK_MAX);
	assert_true(p.missed_unwalked >= 1);
	assert_true(p.next_slot_ms > now);
	assert_true(p.next_slot_ms <= now + 1000);
	sch_plan_free(&p);
}

static void test_jitter(void **state)
{
	(void)state;
	int64_t a = sch_jitter("j_1", 60000, 30000), b = sch_jitter("j_1", 60000, 30000);
	assert_int_equal(a, b); /* the same after a restart */
	bool varied = false;
	for (int64_t s = 0; s < 100; s++) {
		int64_t j = sch_jitter("j_1", s * 1000, 999);
		assert_true(j >= 0 && j <= 999);
		varied |= j != a % 1000;
	}
	assert_true(varied);
	assert_int_equal(sch_jitter("j_1", 5, 0), 0);
	/* A jittered slot is due at slot + jitter, not before. */
	sch_plan_in in = { .schedule = &per_second, .job_id = "j_1", .jitter_ms = 900,
			   .tolerance_ms = 500, .next_slot_ms = 10000, .now_ms = 10000 };
	sch_plan p;
	assert_int_equal(sch_plan_due(&in, &p), 0);
	int64_t due = 10000 + sch_jitter("j_1", 10000, 900);
	assert_int_equal(p.n, due <= 10000 ? 1 : 0);
	sch_plan_free(&p);
}

static void test_cron_slots(void **state)
{
	(void)state;
	cron_expr e;
	assert_int_equal(cron_parse("30 2 * * *", &e, NULL), 0);
	tz_zone *z;
	assert_int_equal(tz_load(NULL, "Europe/Berlin", &z, NULL), 0);
	sch_schedule s = { .cron = &e, .zone = z };
	/* 2024-03-30T12:00Z -> 2024-03-31T01:00Z (03:00 local, the gap's end). */
	assert_int_equal(sch_next_slot(&s, 1711800000000LL), 1711846800000LL);
	assert_int_equal(sch_next_slot(&s, 1711846800000LL - 1), 1711846800000LL);
	assert_int_equal(sch_next_slot(&s, 1711846800000LL), 1711931400000LL);
	tz_free(z);
	cron_expr ev;
	assert_int_equal(cron_parse("@every 90s", &ev, NULL), 0);
	sch_schedule every = { .cron = &ev, .anchor_ms = 1000 };
	assert_int_equal(sch_next_slot(&every, 0), 91000);
	assert_int_equal(sch_next_slot(&every, 91000), 181000);
}

static int spec(const char *json, sch_role role, char *field, sdk_err *e, sch_spec *out)
{
	json_t *j = json_loads(json, 0, NULL);
	assert_non_null(j);
	int rc = sch_spec_parse(j, role, NULL, out, field, e);
	json_decref(j);
	return rc;
}

static void test_spec(void **state)
{
	(void)state;
	char field[SCH_FIELD_MAX];
	sdk_err e;
	sch_spec s;
	assert_int_equal(spec("{\"name\":\"n\",\"schedule\":\"@hourly\",\"target\":{\"type\":\"bus\","
			      "\"subject\":\"a.b\"}}", SCH_ROLE_USER, field, &e, &s), 0);
	assert_string_equal(s.timezone, "UTC");
	assert_int_equal(s.missed, SCH_MISSED_SKIP);
	assert_int_equal(s.overlap, SCH_OVERLAP_ALLOW);
	assert_int_equal(s.deadline_ms, -1);
	assert_false(s.idempotent);
	assert_true(json_is_null(json_object_get(s.target, "payload")));
	sch_spec_free(&s);
	/* A user may schedule bus targets only. */
	assert_int_equal(spec("{\"name\":\"n\",\"schedule\":\"@hourly\",\"target\":{\"type\":\"route\","
			      "\"kernel\":\"audit\",\"path\":\"/events\"}}", SCH_ROLE_USER, field, &e, &s),
			 SDK_EDENIED);
	assert_string_equal(field, "target.type");
	assert_int_equal(spec("{\"name\":\"n\",\"schedule\":\"@hourly\",\"target\":{\"type\":\"route\","
			      "\"kernel\":\"audit\",\"path\":\"/events\"}}", SCH_ROLE_ADMIN, field, &e, &s),
			 0);
	assert_string_equal(json_string_value(json_object_get(s.target, "method")), "POST");
	assert_int_equal(json_integer_value(json_object_get(s.target, "timeout_ms")),
			 SCH_CALL_TIMEOUT_DEFAULT_MS);
	sch_spec_free(&s);
	assert_int_equal(spec("{\"name\":\"n\",\"schedule\":\"@hourly\",\"target\":{\"type\":\"executor\","
			      "\"job\":{\"argv\":[\"/bin/true\"]}}}", SCH_ROLE_ADMIN, field, &e, &s), 0);
	assert_true(s.idempotent);
	sch_spec_free(&s);
	static const struct {
		const char *json, *field;
	} bad[] = {
		{ "{\"name\":\"n\",\"schedule\":\"@hourly\",\"target\":{\"type\":\"bus\",\"subject\":\"a\"},"
		  "\"missed\":{\"policy\":\"skip\",\"max\":3}}", "missed.max" },
		{ "{\"name\":\"n\",\"schedule\":\"@hourly\",\"target\":{\"type\":\"bus\",\"subject\":\"$x\"}}",
		  "target.subject" },
		{ "{\"name\":\"n\",\"schedule\":\"@hourly\",\"target\":{\"type\":\"bus\",\"subject\":\"a\","
		  "\"extra\":1}}", "target.extra" },
		{ "{\"name\":\"n\",\"schedule\":\"@hourly\",\"target\":{\"type\":\"route\",\"kernel\":"
		  "\"scheduler\",\"path\":\"/jobs\"}}", "target.kernel" },
		{ "{\"name\":\"n\",\"schedule\":\"@hourly\",\"target\":{\"type\":\"route\",\"kernel\":"
		  "\"audit\",\"path\":\"/x\",\"method\":\"TRACE\"}}", "target.method" },
		{ "{\"name\":\"n\",\"schedule\":\"@hourly\",\"timezone\":5,\"target\":{\"type\":\"bus\","
		  "\"subject\":\"a\"}}", "timezone" },
		{ "{\"name\":\"n\",\"schedule\":\"@hourly\",\"paused\":\"yes\",\"target\":{\"type\":\"bus\","
		  "\"subject\":\"a\"}}", "paused" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		e.msg[0] = '\0';
		assert_int_equal(spec(bad[i].json, SCH_ROLE_ADMIN, field, &e, &s), SDK_EINVAL);
		if (strcmp(field, bad[i].field))
			fail_msg("%s: field %s (%s), want %s", bad[i].json, field, e.msg, bad[i].field);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_on_time),
		cmocka_unit_test(test_missed_policies),
		cmocka_unit_test(test_walk_bound),
		cmocka_unit_test(test_jitter),
		cmocka_unit_test(test_cron_slots),
		cmocka_unit_test(test_spec),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
