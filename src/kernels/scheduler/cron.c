#include "kernels/scheduler/cron.h"

#include "kernels/scheduler/civil.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---- parsing */

typedef struct cron_field {
	const char *name;
	int lo, hi; /* the values the field accepts */
	const char *const *names; /* 3-letter names for lo, lo+1, ... or NULL */
} cron_field;

static const char *const month_names[] = { "jan", "feb", "mar", "apr", "may", "jun",
					   "jul", "aug", "sep", "oct", "nov", "dec", NULL };
static const char *const dow_names[] = { "sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL };

enum { F_MIN, F_HOUR, F_DOM, F_MONTH, F_DOW, F_SEC };
static const cron_field fields[] = {
	[F_MIN] = { "minute", 0, 59, NULL },
	[F_HOUR] = { "hour", 0, 23, NULL },
	[F_DOM] = { "day-of-month", 1, 31, NULL },
	[F_MONTH] = { "month", 1, 12, month_names },
	[F_DOW] = { "day-of-week", 0, 7, dow_names },
	[F_SEC] = { "second", 0, 59, NULL },
};

static const struct {
	const char *name, *expr;
} shortcuts[] = {
	{ "@yearly", "0 0 1 1 *" },  { "@annually", "0 0 1 1 *" }, { "@monthly", "0 0 1 * *" },
	{ "@weekly", "0 0 * * 0" },  { "@daily", "0 0 * * *" },	  { "@midnight", "0 0 * * *" },
	{ "@hourly", "0 * * * *" },
};

/* A number or a name of field f at *p; advances *p. -1 when neither. */
static int read_value(const cron_field *f, const char **p, const char *end)
{
	const char *s = *p;
	if (s < end && isdigit((unsigned char)*s)) {
		long v = 0;
		while (s < end && isdigit((unsigned char)*s) && v < 100000)
			v = v * 10 + (*s++ - '0');
		*p = s;
		return (int)v;
	}
	if (f->names && end - s >= 3) {
		for (int i = 0; f->names[i]; i++)
			if (!strncasecmp(s, f->names[i], 3) &&
			    (end - s == 3 || !isalpha((unsigned char)s[3]))) {
				*p = s + 3;
				return f->lo + i;
			}
	}
	return -1;
}

/* One field's text [s, end) into a bit set. */
static int parse_field(const cron_field *f, const char *s, const char *end, uint64_t *bits,
		       sdk_err *err)
{
	*bits = 0;
	int len = (int)(end - s);
	const char *p = s;
	for (;;) {
		int lo, hi, step = 1;
		bool star = false;
		const char *item = p;
		if (p < end && *p == '*') {
			p++;
			lo = f->lo;
			hi = f->hi;
			star = true;
		} else {
			lo = read_value(f, &p, end);
			if (lo < 0)
				goto bad_char;
			hi = lo;
			if (p < end && *p == '-') {
				p++;
				hi = read_value(f, &p, end);
				if (hi < 0)
					goto bad_char;
			}
		}
		if (p < end && *p == '/') {
			p++;
			const char *q = p;
			while (p < end && isdigit((unsigned char)*p) && p - q < 6)
				p++;
			if (p == q)
				return sdk_fail(err, SDK_EINVAL, "%s field \"%.*s\": a step is a number",
						f->name, len, s);
			step = 0;
			for (const char *r = q; r < p; r++)
				step = step * 10 + (*r - '0');
			if (step < 1 || step > f->hi - f->lo + 1)
				return sdk_fail(err, SDK_EINVAL,
						"%s field \"%.*s\": the step must be 1 to %d", f->name,
						len, s, f->hi - f->lo + 1);
			if (!star && hi == lo && item[0] != '*' &&
			    !memchr(item, '-', (size_t)(p - item)))
				hi = f->hi; /* a/n is a-max/n, as cronie and croniter read it */
		}
		if (lo < f->lo || lo > f->hi || hi < f->lo || hi > f->hi)
			return sdk_fail(err, SDK_EINVAL, "%s field \"%.*s\": values are %d to %d",
					f->name, len, s, f->lo, f->hi);
		if (hi < lo)
			return sdk_fail(err, SDK_EINVAL,
					"%s field \"%.*s\": the range %d-%d runs backwards", f->name,
					len, s, lo, hi);
		for (int v = lo; v <= hi; v += step)
			*bits |= 1ULL << v;
		if (p == end)
			return 0;
		if (*p != ',')
			goto bad_char;
		p++;
		if (p == end)
			return sdk_fail(err, SDK_EINVAL, "%s field \"%.*s\" ends with ','", f->name,
					len, s);
	}
bad_char:
	if (p < end && strchr("LW#?", *p))
		return sdk_fail(err, SDK_EINVAL,
				"%s field \"%.*s\": '%c' is not Vixie cron syntax (no L, W, # or ?)",
				f->name, len, s, *p);
	return sdk_fail(err, SDK_EINVAL, "%s field \"%.*s\": expected a number%s, '*', '-', "
			"'/' or ','", f->name, len, s, f->names ? " or a name" : "");
}

/* "1h30m", "90s", "500ms", "2d" into milliseconds. */
static int parse_duration(const char *s, int64_t *out, sdk_err *err)
{
	int64_t total = 0;
	const char *p = s;
	if (!*p)
		return sdk_fail(err, SDK_EINVAL, "@every needs a duration, like 90s or 1h30m");
	while (*p) {
		if (!isdigit((unsigned char)*p))
			return sdk_fail(err, SDK_EINVAL,
					"@every \"%.40s\": a duration is numbers with units ms, s, "
					"m, h, d (like 1h30m)", s);
		int64_t n = 0;
		while (isdigit((unsigned char)*p)) {
			if (n > CRON_EVERY_MAX_MS)
				return sdk_fail(err, SDK_EINVAL, "@every \"%.40s\": at most 366 days", s);
			n = n * 10 + (*p++ - '0');
		}
		int64_t unit;
		if (!strncmp(p, "ms", 2)) {
			unit = 1;
			p += 2;
		} else if (*p == 's') {
			unit = 1000;
			p++;
		} else if (*p == 'm') {
			unit = 60000;
			p++;
		} else if (*p == 'h') {
			unit = 3600000;
			p++;
		} else if (*p == 'd') {
			unit = 86400000;
			p++;
		} else {
			return sdk_fail(err, SDK_EINVAL,
					"@every \"%.40s\": each number needs a unit (ms, s, m, h, d)", s);
		}
		if (n > CRON_EVERY_MAX_MS / unit)
			return sdk_fail(err, SDK_EINVAL, "@every \"%.40s\": at most 366 days", s);
		total += n * unit;
		if (total > CRON_EVERY_MAX_MS)
			return sdk_fail(err, SDK_EINVAL, "@every \"%.40s\": at most 366 days", s);
	}
	if (total < CRON_EVERY_MIN_MS)
		return sdk_fail(err, SDK_EINVAL, "@every \"%.40s\": at least 1s", s);
	*out = total;
	return 0;
}

static int parse_fields(const char *text, cron_expr *e, sdk_err *err)
{
	const char *start[6], *stop[6];
	int n = 0;
	const char *p = text;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		if (n == 6)
			return sdk_fail(err, SDK_EINVAL,
					"a schedule has 5 fields (minute hour day-of-month month "
					"day-of-week) and an optional sixth, the second");
		start[n] = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
		stop[n++] = p;
	}
	if (n < 5)
		return sdk_fail(err, SDK_EINVAL,
				"a schedule has 5 fields (minute hour day-of-month month day-of-week) "
				"and an optional sixth, the second; got %d", n);
	uint64_t bits[6] = { 0, 0, 0, 0, 0, 1 };
	for (int i = 0; i < n; i++) {
		int rc = parse_field(&fields[i], start[i], stop[i], &bits[i], err);
		if (rc < 0)
			return rc;
	}
	e->min = bits[F_MIN];
	e->hour = (uint32_t)bits[F_HOUR];
	e->dom = (uint32_t)bits[F_DOM];
	e->month = (uint16_t)bits[F_MONTH];
	e->dow = (uint8_t)((bits[F_DOW] & 0x7f) | (bits[F_DOW] >> 7 & 1));
	e->sec = bits[F_SEC];
	e->has_seconds = n == 6;
	e->dom_star = *start[F_DOM] == '*';
	e->dow_star = *start[F_DOW] == '*';
	e->fixed_hour = !memchr(start[F_HOUR], '*', (size_t)(stop[F_HOUR] - start[F_HOUR])) &&
			!memchr(start[F_HOUR], '/', (size_t)(stop[F_HOUR] - start[F_HOUR]));
	return 0;
}

int cron_parse(const char *text, cron_expr *out, sdk_err *err)
{
	cron_expr e = { 0 };
	size_t len = strlen(text);
	if (len == 0 || len > CRON_TEXT_MAX)
		return sdk_fail(err, SDK_EINVAL, "a schedule is 1 to %d characters", CRON_TEXT_MAX);
	while (*text == ' ' || *text == '\t')
		text++;
	if (*text == '@') {
		if (!strncmp(text, "@every", 6) && (text[6] == ' ' || text[6] == '\t')) {
			const char *d = text + 6;
			while (*d == ' ' || *d == '\t')
				d++;
			char dur[64];
			size_t dl = strcspn(d, " \t");
			const char *rest = d + dl;
			while (*rest == ' ' || *rest == '\t')
				rest++;
			if (dl >= sizeof dur || *rest)
				return sdk_fail(err, SDK_EINVAL, "@every takes one duration, like 1h30m");
			memcpy(dur, d, dl);
			dur[dl] = '\0';
			int rc = parse_duration(dur, &e.every_ms, err);
			if (rc < 0)
				return rc;
			*out = e;
			return 0;
		}
		size_t nl = strcspn(text, " \t");
		const char *rest = text + nl;
		while (*rest == ' ' || *rest == '\t')
			rest++;
		for (size_t i = 0; i < sizeof shortcuts / sizeof shortcuts[0]; i++)
			if (strlen(shortcuts[i].name) == nl && !strncmp(text, shortcuts[i].name, nl) &&
			    !*rest) {
				int rc = parse_fields(shortcuts[i].expr, &e, err);
				if (rc == 0)
					*out = e;
				return rc;
			}
		return sdk_fail(err, SDK_EINVAL,
				"unknown shortcut \"%.*s\": @yearly, @annually, @monthly, @weekly, "
				"@daily, @midnight, @hourly or @every DURATION", (int)(nl > 32 ? 32 : nl),
				text);
	}
	int rc = parse_fields(text, &e, err);
	if (rc < 0)
		return rc;
	/* From 2000-01-01: the calendar repeats every 400 years. */
	int64_t probe;
	if (!cron_next_civil(&e, civil_days(2000, 1, 1) * CIVIL_DAY_S - 1, &probe))
		return sdk_fail(err, SDK_EINVAL,
				"the schedule never fires: no day matches its day-of-month, month and "
				"day-of-week fields");
	*out = e;
	return 0;
}

/* ---- matching */

bool cron_day_matches(const cron_expr *e, int64_t y, unsigned m, unsigned d, unsigned wday)
{
	(void)y;
	if (!(e->month >> m & 1))
		return false;
	bool dom = e->dom >> d & 1, dow = e->dow >> wday & 1;
	return e->dom_star || e->dow_star ? dom && dow : dom || dow;
}

/* The lowest set bit of `bits` at or above `from`; -1 when none. */
static int next_bit(uint64_t bits, int from)
{
	if (from > 63)
		return -1;
	uint64_t b = bits >> from << from;
	return b ? __builtin_ctzll(b) : -1;
}

/* The first time of day (seconds) at or after `tod` whose hour, minute and
 * second match; -1 when none is left in the day. */
static int time_from(const cron_expr *e, int tod)
{
	int h = tod / 3600, mi = tod / 60 % 60, s = tod % 60;
	while (h < 24) {
		int nh = next_bit(e->hour, h);
		if (nh < 0)
			return -1;
		if (nh != h) {
			h = nh;
			mi = s = 0;
		}
		int nm = next_bit(e->min, mi);
		if (nm < 0) {
			h++;
			mi = s = 0;
			continue;
		}
		if (nm != mi) {
			mi = nm;
			s = 0;
		}
		int ns = next_bit(e->sec, s);
		if (ns < 0) {
			if (++mi > 59) {
				h++;
				mi = 0;
			}
			s = 0;
			continue;
		}
		return h * 3600 + mi * 60 + ns;
	}
	return -1;
}

bool cron_next_civil(const cron_expr *e, int64_t civil, int64_t *out)
{
	if (e->every_ms)
		return false;
	int64_t t = civil + 1;
	int64_t day = civil_floor_div(t, CIVIL_DAY_S);
	int tod = (int)(t - day * CIVIL_DAY_S);
	int64_t y;
	unsigned m, d;
	civil_from_days(day, &y, &m, &d);
	int64_t y_stop = y + CRON_SEARCH_YEARS;
	if (y_stop > CRON_YEAR_MAX)
		y_stop = CRON_YEAR_MAX;
	for (;;) {
		if (y > y_stop)
			return false;
		if (!(e->month >> m & 1)) {
			int nm = next_bit(e->month, (int)m + 1);
			if (nm < 0 || nm > 12) {
				y++;
				nm = next_bit(e->month, 1);
			}
			m = (unsigned)nm;
			d = 1;
			tod = 0;
			continue;
		}
		if (d > civil_month_days(y, m)) {
			if (++m > 12) {
				m = 1;
				y++;
			}
			d = 1;
			tod = 0;
			continue;
		}
		int64_t days = civil_days(y, m, d);
		if (cron_day_matches(e, y, m, d, civil_weekday(days))) {
			int s = time_from(e, tod);
			if (s >= 0) {
				*out = days * CIVIL_DAY_S + s;
				return true;
			}
		}
		d++;
		tod = 0;
	}
}

int64_t cron_every_next(int64_t every_ms, int64_t anchor_ms, int64_t after_ms)
{
	int64_t k = after_ms < anchor_ms ? 1 : (after_ms - anchor_ms) / every_ms + 1;
	return anchor_ms + k * every_ms;
}
