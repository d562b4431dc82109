/* Unit tests of the scheduler's cron parser, time zones and next fire
 * times (src/kernels/scheduler/{cron,next,tz}.c). The expected instants
 * below were worked out by hand from the rules of docs/scheduler.md and
 * checked with tests/diff/cron/ref.py over Python's zoneinfo; the
 * differential test (tests/diff/cron) covers thousands more. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/scheduler/civil.h"
#include "kernels/scheduler/cron.h"
#include "kernels/scheduler/tz.h"

/* "2024-03-31T01:00:00Z" -> Unix seconds. */
static int64_t iso(const char *s)
{
	int y, mo, d, h, mi, se;
	assert_int_equal(sscanf(s, "%d-%d-%dT%d:%d:%dZ", &y, &mo, &d, &h, &mi, &se), 6);
	return civil_days(y, (unsigned)mo, (unsigned)d) * CIVIL_DAY_S + h * 3600 + mi * 60 + se;
}

static tz_zone *zone(const char *name)
{
	tz_zone *z = NULL;
	sdk_err e = { "" };
	if (tz_load(NULL, name, &z, &e) < 0)
		fail_msg("%s: %s", name, e.msg);
	return z;
}

struct fire_case {
	const char *expr, *zone, *after;
	const char *want[4];
};

static const struct fire_case fire_cases[] = {
	/* Fixed hours, spring: 02:30 does not exist; once, as the gap ends. */
	{ "30 2 * * *", "Europe/Berlin", "2024-03-30T12:00:00Z",
	  { "2024-03-31T01:00:00Z", "2024-04-01T00:30:00Z" } },
	/* Fixed hours, autumn: 02:30 happens twice; only the first. */
	{ "30 2 * * *", "Europe/Berlin", "2024-10-26T12:00:00Z",
	  { "2024-10-27T00:30:00Z", "2024-10-28T01:30:00Z" } },
	/* Elapsed time: an hourly job runs every hour, twice at 02:00. */
	{ "0 * * * *", "Europe/Berlin", "2024-10-26T23:30:00Z",
	  { "2024-10-27T00:00:00Z", "2024-10-27T01:00:00Z", "2024-10-27T02:00:00Z" } },
	{ "0 * * * *", "Europe/Berlin", "2024-03-31T00:30:00Z",
	  { "2024-03-31T01:00:00Z", "2024-03-31T02:00:00Z" } },
	/* Two skipped times in one gap fire once. */
	{ "*/30 2 * * *", "Europe/Berlin", "2024-03-30T12:00:00Z",
	  { "2024-03-31T01:00:00Z", "2024-04-01T00:00:00Z", "2024-04-01T00:30:00Z" } },
	{ "0 2 * * *", "America/New_York", "2024-03-09T12:00:00Z",
	  { "2024-03-10T07:00:00Z", "2024-03-11T06:00:00Z" } },
	{ "30 1 * * *", "America/New_York", "2024-11-02T12:00:00Z",
	  { "2024-11-03T05:30:00Z", "2024-11-04T06:30:00Z" } },
	/* Half-hour shifts. */
	{ "15 2 * * *", "Australia/Lord_Howe", "2024-10-05T00:00:00Z",
	  { "2024-10-05T15:30:00Z", "2024-10-06T15:15:00Z" } },
	{ "45 1 * * *", "Australia/Lord_Howe", "2024-04-06T00:00:00Z",
	  { "2024-04-06T14:45:00Z", "2024-04-07T15:15:00Z" } },
	/* Samoa skipped 2011-12-30 whole. */
	{ "0 12 * * *", "Pacific/Apia", "2011-12-29T00:00:00Z",
	  { "2011-12-29T22:00:00Z", "2011-12-30T10:00:00Z", "2011-12-30T22:00:00Z" } },
	{ "0 */12 * * *", "Pacific/Apia", "2011-12-29T00:00:00Z",
	  { "2011-12-29T10:00:00Z", "2011-12-29T22:00:00Z", "2011-12-30T10:00:00Z",
	    "2011-12-30T22:00:00Z" } },
	/* Chile changes at midnight: a daily midnight job runs at 01:00. */
	{ "0 0 * * *", "America/Santiago", "2024-09-07T00:00:00Z",
	  { "2024-09-07T04:00:00Z", "2024-09-08T04:00:00Z" } },
	/* Past the TZif table: the footer's POSIX rule. */
	{ "30 2 * * *", "Europe/Berlin", "2400-03-25T00:00:00Z",
	  { "2400-03-25T01:30:00Z", "2400-03-26T01:00:00Z" } },
	{ "30 2 * * *", "Europe/Berlin", "2400-10-28T00:00:00Z",
	  { "2400-10-28T00:30:00Z", "2400-10-29T00:30:00Z" } },
	/* Vixie's day rule: a field starting with '*' makes both required. */
	{ "0 0 */2 * 1", "UTC", "2024-01-01T00:00:00Z",
	  { "2024-01-15T00:00:00Z", "2024-01-29T00:00:00Z", "2024-02-05T00:00:00Z" } },
	{ "0 0 1 * 1", "UTC", "2024-01-01T00:00:00Z",
	  { "2024-01-08T00:00:00Z", "2024-01-15T00:00:00Z", "2024-01-22T00:00:00Z" } },
	{ "0 0 * * 7", "UTC", "2024-01-01T00:00:00Z", { "2024-01-07T00:00:00Z" } },
	{ "5/15 * * * *", "UTC", "2024-01-01T00:00:00Z",
	  { "2024-01-01T00:05:00Z", "2024-01-01T00:20:00Z", "2024-01-01T00:35:00Z",
	    "2024-01-01T00:50:00Z" } },
	/* The sixth field is the second. */
	{ "0 0 * * * */20", "UTC", "2024-01-01T00:00:00Z",
	  { "2024-01-01T00:00:20Z", "2024-01-01T00:00:40Z", "2024-01-02T00:00:00Z" } },
	{ "0 0 29 2 *", "UTC", "2024-03-01T00:00:00Z", { "2028-02-29T00:00:00Z" } },
	{ "0 9 * jan-mar mon-fri", "America/Los_Angeles", "2024-03-29T17:00:00Z",
	  { "2025-01-01T17:00:00Z", "2025-01-02T17:00:00Z" } },
	{ "@daily", "Asia/Kolkata", "2024-01-01T00:00:00Z",
	  { "2024-01-01T18:30:00Z", "2024-01-02T18:30:00Z" } },
};

static void test_fire_times(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof fire_cases / sizeof fire_cases[0]; i++) {
		const struct fire_case *c = &fire_cases[i];
		cron_expr e;
		sdk_err err = { "" };
		if (cron_parse(c->expr, &e, &err) < 0)
			fail_msg("%s: %s", c->expr, err.msg);
		tz_zone *z = zone(c->zone);
		int64_t t = iso(c->after);
		for (int k = 0; k < 4 && c->want[k]; k++) {
			int64_t next;
			assert_true(cron_next(&e, z, t, &next));
			if (next != iso(c->want[k]))
				fail_msg("%s in %s after %s: fire %d at %lld, want %s (%lld)", c->expr,
					 c->zone, c->after, k, (long long)next, c->want[k],
					 (long long)iso(c->want[k]));
			t = next;
		}
		tz_free(z);
	}
}

static void test_fixed_hour_flag(void **state)
{
	(void)state;
	static const struct {
		const char *expr;
		bool fixed;
	} cases[] = { { "30 2 * * *", true },  { "0 1-3 * * *", true }, { "0 2,14 * * *", true },
		      { "0 * * * *", false },  { "0 */2 * * *", false }, { "0 1-5/2 * * *", false },
		      { "0 3/4 * * *", false }, { "@daily", true },      { "@hourly", false } };
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		cron_expr e;
		assert_int_equal(cron_parse(cases[i].expr, &e, NULL), 0);
		if (e.fixed_hour != cases[i].fixed)
			fail_msg("%s: fixed_hour %d", cases[i].expr, e.fixed_hour);
	}
}

static void test_parse_errors_name_the_field(void **state)
{
	(void)state;
	static const struct {
		const char *expr, *says;
	} cases[] = {
		{ "61 * * * *", "minute field" },
		{ "* 24 * * *", "hour field" },
		{ "* * 0 * *", "day-of-month field" },
		{ "* * * 13 *", "month field" },
		{ "* * * * 8", "day-of-week field" },
		{ "* * * * * 60", "second field" },
		{ "5-2 * * * *", "runs backwards" },
		{ "*/0 * * * *", "step" },
		{ "* * L * *", "not Vixie cron" },
		{ "* * * * 1#2", "not Vixie cron" },
		{ "* * ? * *", "not Vixie cron" },
		{ "* * * *", "5 fields" },
		{ "* * * * * * *", "5 fields" },
		{ "0 0 30 2 *", "never fires" },
		{ "@reboot", "unknown shortcut" },
		{ "@every 0s", "at least 1s" },
		{ "@every 5", "unit" },
		{ "@every 400d", "366 days" },
		{ "", "1 to" },
		{ "1,,2 * * * *", "minute field" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		cron_expr e;
		sdk_err err = { "" };
		assert_int_equal(cron_parse(cases[i].expr, &e, &err), SDK_EINVAL);
		if (!strstr(err.msg, cases[i].says))
			fail_msg("%s: \"%s\" does not say \"%s\"", cases[i].expr, err.msg,
				 cases[i].says);
	}
}

static void test_names_and_sunday(void **state)
{
	(void)state;
	cron_expr a, b;
	assert_int_equal(cron_parse("0 0 * JAN-mar Mon-FRI", &a, NULL), 0);
	assert_int_equal(cron_parse("0 0 * 1-3 1-5", &b, NULL), 0);
	assert_int_equal(a.month, b.month);
	assert_int_equal(a.dow, b.dow);
	assert_int_equal(cron_parse("0 0 * * 5-7", &a, NULL), 0);
	assert_int_equal(a.dow, (1 << 5) | (1 << 6) | 1); /* 7 is Sunday */
	assert_int_equal(cron_parse("0 0 * * */2", &a, NULL), 0);
	assert_int_equal(a.dow, 1 | 4 | 16 | 64);
	assert_true(a.dow_star);
}

static void test_every(void **state)
{
	(void)state;
	cron_expr e;
	assert_int_equal(cron_parse("@every 1h30m", &e, NULL), 0);
	assert_int_equal(e.every_ms, 5400000);
	assert_int_equal(cron_parse("@every 1500ms", &e, NULL), 0);
	assert_int_equal(e.every_ms, 1500);
	/* Slots are anchor + k * every, k >= 1. */
	assert_int_equal(cron_every_next(1000, 5000, 0), 6000);
	assert_int_equal(cron_every_next(1000, 5000, 5000), 6000);
	assert_int_equal(cron_every_next(1000, 5000, 5999), 6000);
	assert_int_equal(cron_every_next(1000, 5000, 6000), 7000);
	int64_t t;
	assert_false(cron_next(&e, NULL, 0, &t)); /* not a calendar schedule */
}

static void test_zone_names(void **state)
{
	(void)state;
	assert_true(tz_name_valid("Europe/Berlin"));
	assert_true(tz_name_valid("Etc/GMT+5"));
	assert_true(tz_name_valid("America/Argentina/Buenos_Aires"));
	assert_false(tz_name_valid("../etc/passwd"));
	assert_false(tz_name_valid("/etc/passwd"));
	assert_false(tz_name_valid("Europe/../../etc"));
	assert_false(tz_name_valid("Europe//Berlin"));
	assert_false(tz_name_valid("Europe/.hidden"));
	assert_false(tz_name_valid(""));
	assert_false(tz_name_valid("Europe/Ber lin"));
	tz_zone *z = NULL;
	sdk_err e = { "" };
	assert_int_equal(tz_load(NULL, "../../etc/passwd", &z, &e), SDK_EINVAL);
	assert_int_equal(tz_load(NULL, "Mars/Olympus_Mons", &z, &e), SDK_ENOTFOUND);
	assert_non_null(strstr(e.msg, "unknown time zone"));
	assert_int_equal(tz_load(NULL, "zone.tab", &z, &e), SDK_ENOTFOUND); /* no TZif */
	assert_int_equal(tz_load(NULL, "right/UTC", &z, &e), SDK_ENOTFOUND); /* leap seconds */
}

static void test_zone_offsets(void **state)
{
	(void)state;
	tz_zone *z = zone("Europe/Berlin");
	int64_t spring = iso("2024-03-31T01:00:00Z"), autumn = iso("2024-10-27T01:00:00Z");
	assert_int_equal(tz_offset_at(z, spring - 1), 3600);
	assert_int_equal(tz_offset_at(z, spring), 7200);
	assert_int_equal(tz_next_change(z, iso("2024-01-01T00:00:00Z")), spring);
	assert_int_equal(tz_next_change(z, spring - 1), spring);
	assert_int_equal(tz_next_change(z, spring), autumn);
	int32_t before;
	assert_int_equal(tz_last_change(z, spring, &before), spring);
	assert_int_equal(before, 3600);
	assert_int_equal(tz_last_change(z, autumn - 1, &before), spring);
	/* Far past the table: the footer rule. */
	assert_int_equal(tz_offset_at(z, iso("2500-07-01T00:00:00Z")), 7200);
	assert_int_equal(tz_offset_at(z, iso("2500-01-01T00:00:00Z")), 3600);
	assert_int_equal(tz_next_change(z, iso("2500-01-01T00:00:00Z")), iso("2500-03-28T01:00:00Z"));
	tz_free(z);
	z = tz_fixed("UTC", 0);
	assert_int_equal(tz_offset_at(z, 0), 0);
	assert_true(tz_next_change(z, 0) == TZ_NEVER);
	tz_free(z);
	/* Southern hemisphere: summer time spans the new year. */
	z = zone("Australia/Sydney");
	assert_int_equal(tz_offset_at(z, iso("2300-01-01T00:00:00Z")), 11 * 3600);
	assert_int_equal(tz_offset_at(z, iso("2300-07-01T00:00:00Z")), 10 * 3600);
	tz_free(z);
}

static void test_civil(void **state)
{
	(void)state;
	int64_t y;
	unsigned m, d;
	for (int64_t day = -800000; day < 3000000; day += 997) {
		civil_from_days(day, &y, &m, &d);
		assert_int_equal(civil_days(y, m, d), day);
	}
	assert_int_equal(civil_weekday(0), 4); /* 1970-01-01 was a Thursday */
	assert_int_equal(civil_weekday(civil_days(2024, 1, 7)), 0);
	assert_int_equal(civil_weekday(-1), 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fire_times),
		cmocka_unit_test(test_fixed_hour_flag),
		cmocka_unit_test(test_parse_errors_name_the_field),
		cmocka_unit_test(test_names_and_sunday),
		cmocka_unit_test(test_every),
		cmocka_unit_test(test_zone_names),
		cmocka_unit_test(test_zone_offsets),
		cmocka_unit_test(test_civil),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
