/* Cron expressions as Vixie cron reads them, and their next fire times in
 * an IANA time zone under the daylight-saving rules of docs/scheduler.md.
 *
 * Syntax: five fields (minute hour day-of-month month day-of-week) with
 * numbers, names (jan-dec, sun-sat), ranges, steps (a-b/n, * /n, and a/n
 * as a-max/n) and lists; day-of-week 0-7 (0 and 7 are Sunday). An
 * optional sixth field at the end is the second (as croniter has it).
 * Shortcuts: @yearly @annually @monthly @weekly @daily @midnight @hourly,
 * and @every DURATION (ms s m h d units: "90s", "1h30m").
 *
 * Vixie's day rule: when the day-of-month or the day-of-week field starts
 * with '*', a day must match both; otherwise either.
 *
 * Daylight saving (and any other change of a zone's offset): when the
 * hour field names its hours (no '*', no step) the schedule is of fixed
 * hours: a local time skipped by a change fires once, at the instant the
 * gap ends, and a local time repeated fires once, at its first occurrence.
 * Otherwise the schedule follows elapsed time: every instant whose local
 * time matches fires (an hourly job runs every hour, twice in a repeated
 * hour, and nothing makes up a skipped local time). */
#ifndef GRACE_SCHEDULER_CRON_H
#define GRACE_SCHEDULER_CRON_H

#include "kernels/layer.h"

#include "kernels/scheduler/tz.h"
#include "sdk/err.h"

#include <stdbool.h>
#include <stdint.h>

#define CRON_TEXT_MAX 256
#define CRON_EVERY_MIN_MS 1000LL
#define CRON_EVERY_MAX_MS (366LL * 86400 * 1000)
#define CRON_YEAR_MAX 9999
/* The last instant the scheduler computes (9999-12-31T23:59:59Z). */
#define CRON_INSTANT_MAX 253402300799LL
/* A schedule that finds no day within this many years never fires (the
 * Gregorian calendar repeats every 400). */
#define CRON_SEARCH_YEARS 400

typedef struct cron_expr {
	uint64_t sec, min; /* bit n: second / minute n */
	uint32_t hour;     /* bit n: hour n */
	uint32_t dom;      /* bit n: day n of the month (1-31) */
	uint16_t month;    /* bit n: month n (1-12) */
	uint8_t dow;       /* bit n: weekday n, 0 = Sunday (7 is folded into 0) */
	bool dom_star, dow_star; /* the field starts with '*' (Vixie's day rule) */
	bool fixed_hour;   /* the hour field has no '*' and no step */
	bool has_seconds;  /* a sixth field was given */
	int64_t every_ms;  /* @every: > 0, and the fields above are unused */
} cron_expr;

/* Parses `text`. SDK_EINVAL with a reason naming the field on failure,
 * including a schedule that can never fire (February 30). */
int cron_parse(const char *text, cron_expr *out, sdk_err *err);

/* Whether day y-m-d (weekday wday, 0 = Sunday) is one of the schedule's. */
bool cron_day_matches(const cron_expr *e, int64_t y, unsigned m, unsigned d, unsigned wday);

/* The first local time strictly after `civil` (seconds since 1970-01-01
 * 00:00:00 on the local clock) that the fields match. False when there is
 * none before year CRON_YEAR_MAX ends or within CRON_SEARCH_YEARS. */
bool cron_next_civil(const cron_expr *e, int64_t civil, int64_t *out);

/* The first fire instant strictly after `after` (Unix seconds) in zone z,
 * under the daylight-saving rules above. False when there is none. */
bool cron_next(const cron_expr *e, const tz_zone *z, int64_t after, int64_t *out);

/* @every: the slots are anchor + k * every_ms for k >= 1; the first one
 * strictly after `after_ms`. */
int64_t cron_every_next(int64_t every_ms, int64_t anchor_ms, int64_t after_ms);

#endif
