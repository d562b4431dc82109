/* datetime and duration: milliseconds since the Unix epoch (UTC) and
 * milliseconds, in signed 64-bit integers. Unlike decimals, both compare
 * with `<` and friends (values of the same type only). */
#include "kernels/policy/ext.h"

#include <stdio.h>
#include <string.h>

#define DAY_MS 86400000LL

static bool digits(const char *s, size_t n, size_t at, size_t count, unsigned *out)
{
	if (at + count > n)
		return false;
	unsigned v = 0;
	for (size_t k = at; k < at + count; k++) {
		if (s[k] < '0' || s[k] > '9')
			return false;
		v = v * 10 + (unsigned)(s[k] - '0');
	}
	*out = v;
	return true;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static bool valid_date(unsigned y, unsigned m, unsigned d)
{
	static const unsigned mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	if (m < 1 || m > 12 || d < 1)
		return false;
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return d <= mdays[m - 1] + (m == 2 && leap);
}

int cedar_datetime_parse(const char *s, size_t n, int64_t *out, sdk_err *err)
{
	int shown = (int)(n > 60 ? 60 : n);
	unsigned y, mo, d, h = 0, mi = 0, sec = 0, ms = 0, oh = 0, om = 0;
	int sign = 0;
	if (!digits(s, n, 0, 4, &y) || n < 10 || s[4] != '-' || !digits(s, n, 5, 2, &mo) ||
	    s[7] != '-' || !digits(s, n, 8, 2, &d)) {
		return sdk_fail(err, SDK_EINVAL, "invalid date pattern in `%.*s`", shown, s);
	}
	size_t i = 10;
	if (i < n) {
		if (n < i + 9 || s[i] != 'T' || !digits(s, n, i + 1, 2, &h) || s[i + 3] != ':' ||
		    !digits(s, n, i + 4, 2, &mi) || s[i + 6] != ':' || !digits(s, n, i + 7, 2, &sec)) {
			return sdk_fail(err, SDK_EINVAL,
					"invalid hour/minute/second pattern in `%.*s`", shown, s);
		}
		i += 9;
		bool ok = true;
		if (i < n && s[i] == '.') {
			ok = digits(s, n, i + 1, 3, &ms);
			i += 4;
		}
		if (ok && i < n && s[i] == 'Z') {
			ok = i + 1 == n;
		} else if (ok && i < n && (s[i] == '+' || s[i] == '-')) {
			sign = s[i] == '+' ? 1 : -1;
			ok = digits(s, n, i + 1, 2, &oh) && digits(s, n, i + 3, 2, &om) && i + 5 == n;
		} else {
			ok = false;
		}
		if (!ok) {
			return sdk_fail(err, SDK_EINVAL,
					"invalid millisecond and/or offset pattern in `%.*s`",
					shown, s);
		}
	}
	if (!valid_date(y, mo, d)) {
		return sdk_fail(err, SDK_EINVAL, "invalid date: %.10s", s);
	}
	if (h > 23 || mi > 59 || sec > 59) {
		return sdk_fail(err, SDK_EINVAL, "invalid hour/minute/second in `%.*s`", shown, s);
	}
	if (sign && (oh >= 24 || om >= 60)) {
		return sdk_fail(err, SDK_EINVAL, "invalid offset range: %02u%02u", oh, om);
	}
	int64_t t = days_from_civil(y, mo, d) * DAY_MS + (int64_t)(h * 3600 + mi * 60 + sec) * 1000 + ms;
	t -= (int64_t)sign * (int64_t)(oh * 3600 + om * 60) * 1000;
	*out = t;
	return 0;
}

void cedar_datetime_format(int64_t ms, char *buf, size_t cap)
{
	int64_t days = ms / DAY_MS, rem = ms % DAY_MS;
	if (rem < 0)
		rem += DAY_MS, days--;
	/* civil_from_days */
	int64_t z = days + 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t y = (int64_t)yoe + era * 400;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	unsigned d = doy - (153 * mp + 2) / 5 + 1;
	unsigned m = mp < 10 ? mp + 3 : mp - 9;
	y += m <= 2;
	snprintf(buf, cap, "%04lld-%02u-%02uT%02u:%02u:%02u.%03uZ", (long long)y, m, d,
		 (unsigned)(rem / 3600000), (unsigned)(rem / 60000 % 60), (unsigned)(rem / 1000 % 60),
		 (unsigned)(rem % 1000));
}

int cedar_duration_parse(const char *s, size_t n, int64_t *out, sdk_err *err)
{
	int shown = (int)(n > 60 ? 60 : n);
	static const int64_t unit_ms[5] = { DAY_MS, 3600000, 60000, 1000, 1 };
	unsigned long long q[5] = { 0 };
	bool neg = n > 0 && s[0] == '-';
	size_t i = neg;
	int next_unit = 0;
	bool overflow = false;
	if (n == i)
		goto invalid;
	while (i < n) {
		size_t start = i;
		unsigned long long v = 0;
		while (i < n && s[i] >= '0' && s[i] <= '9') {
			if (__builtin_mul_overflow(v, 10ULL, &v) ||
			    __builtin_add_overflow(v, (unsigned long long)(s[i] - '0'), &v))
				overflow = true;
			i++;
		}
		if (i == start || i >= n)
			goto invalid;
		int unit;
		if (s[i] == 'd')
			unit = 0, i++;
		else if (s[i] == 'h')
			unit = 1, i++;
		else if (s[i] == 'm' && i + 1 < n && s[i + 1] == 's')
			unit = 4, i += 2;
		else if (s[i] == 'm')
			unit = 2, i++;
		else if (s[i] == 's')
			unit = 3, i++;
		else
			goto invalid;
		if (unit < next_unit)
			goto invalid;
		next_unit = unit + 1;
		q[unit] = v;
	}
	if (overflow)
		goto too_big;
	/* As Cedar: milliseconds first, then seconds up to days, each checked. */
	int64_t total;
	if (q[4] > (neg ? 9223372036854775808ULL : 9223372036854775807ULL))
		goto too_big;
	total = neg ? (int64_t)(0 - q[4]) : (int64_t)q[4];
	for (int u = 3; u >= 0; u--) {
		int64_t part;
		if (q[u] > 9223372036854775807ULL || __builtin_mul_overflow((int64_t)q[u], unit_ms[u], &part))
			goto too_big;
		if (neg ? __builtin_sub_overflow(total, part, &total)
			: __builtin_add_overflow(total, part, &total))
			goto too_big;
	}
	*out = total;
	return 0;
invalid:
	return sdk_fail(err, SDK_EINVAL, "invalid duration pattern in `%.*s`", shown, s);
too_big:
	return sdk_fail(err, SDK_EINVAL, "Duration overflows internal representation");
}

void cedar_duration_format(int64_t ms, char *buf, size_t cap)
{
	snprintf(buf, cap, "%lldms", (long long)ms);
}

static int want(const cedar_value *v, int kind, sdk_err *err)
{
	return v->kind == kind ? 0 : cedar_ext_type_error(v, kind, err);
}

static int make_datetime(cedar_arena *a, const cedar_value *args, cedar_value *out, sdk_err *err)
{
	(void)a;
	int64_t v;
	if (want(&args[0], CEDAR_STRING, err) < 0 ||
	    cedar_datetime_parse(args[0].s, args[0].n, &v, err) < 0)
		return -1;
	*out = (cedar_value){ .kind = CEDAR_DATETIME, .i = v };
	return 0;
}

static int make_duration(cedar_arena *a, const cedar_value *args, cedar_value *out, sdk_err *err)
{
	(void)a;
	int64_t v;
	if (want(&args[0], CEDAR_STRING, err) < 0 ||
	    cedar_duration_parse(args[0].s, args[0].n, &v, err) < 0)
		return -1;
	*out = (cedar_value){ .kind = CEDAR_DURATION, .i = v };
	return 0;
}

static int dt_offset(cedar_arena *a, const cedar_value *args, cedar_value *out, sdk_err *err)
{
	(void)a;
	int64_t v;
	if (want(&args[0], CEDAR_DATETIME, err) < 0 || want(&args[1], CEDAR_DURATION, err) < 0)
		return -1;
	if (__builtin_add_overflow(args[0].i, args[1].i, &v)) {
		return sdk_fail(err, SDK_EINVAL, "overflows when adding an offset");
	}
	*out = (cedar_value){ .kind = CEDAR_DATETIME, .i = v };
	return 0;
}

static int dt_duration_since(cedar_arena *a, const cedar_value *args, cedar_value *out,
			     sdk_err *err)
{
	(void)a;
	int64_t v;
	if (want(&args[0], CEDAR_DATETIME, err) < 0 || want(&args[1], CEDAR_DATETIME, err) < 0)
		return -1;
	if (__builtin_sub_overflow(args[0].i, args[1].i, &v)) {
		return sdk_fail(err, SDK_EINVAL,
				"overflows when computing the duration between two datetimes");
	}
	*out = (cedar_value){ .kind = CEDAR_DURATION, .i = v };
	return 0;
}

static int dt_to_date(cedar_arena *a, const cedar_value *args, cedar_value *out, sdk_err *err)
{
	(void)a;
	if (want(&args[0], CEDAR_DATETIME, err) < 0)
		return -1;
	int64_t e = args[0].i, rem = e % DAY_MS, v;
	if (rem < 0)
		rem += DAY_MS;
	if (__builtin_sub_overflow(e, rem, &v)) {
		return sdk_fail(err, SDK_EINVAL, "overflows when computing the date");
	}
	*out = (cedar_value){ .kind = CEDAR_DATETIME, .i = v };
	return 0;
}

static int dt_to_time(cedar_arena *a, const cedar_value *args, cedar_value *out, sdk_err *err)
{
	(void)a;
	if (want(&args[0], CEDAR_DATETIME, err) < 0)
		return -1;
	int64_t rem = args[0].i % DAY_MS;
	if (rem < 0)
		rem += DAY_MS;
	*out = (cedar_value){ .kind = CEDAR_DURATION, .i = rem };
	return 0;
}

#define DURATION_TO(fn, div)                                                                       \
	static int fn(cedar_arena *a, const cedar_value *args, cedar_value *out, sdk_err *err)     \
	{                                                                                          \
		(void)a;                                                                           \
		if (want(&args[0], CEDAR_DURATION, err) < 0)                                       \
			return -1;                                                                 \
		*out = cedar_long(args[0].i / (div));                                              \
		return 0;                                                                          \
	}

/* Each unit truncates the one below it toward zero, as Cedar chains them. */
DURATION_TO(dur_to_ms, 1)
DURATION_TO(dur_to_seconds, 1000)
DURATION_TO(dur_to_minutes, 60000)
DURATION_TO(dur_to_hours, 3600000)
DURATION_TO(dur_to_days, DAY_MS)

const cedar_ext_def cedar_ext_datetime[] = {
	{ "datetime", false, 1, make_datetime },
	{ "duration", false, 1, make_duration },
	{ "offset", true, 2, dt_offset },
	{ "durationSince", true, 2, dt_duration_since },
	{ "toDate", true, 1, dt_to_date },
	{ "toTime", true, 1, dt_to_time },
	{ "toMilliseconds", true, 1, dur_to_ms },
	{ "toSeconds", true, 1, dur_to_seconds },
	{ "toMinutes", true, 1, dur_to_minutes },
	{ "toHours", true, 1, dur_to_hours },
	{ "toDays", true, 1, dur_to_days },
	{ NULL, false, 0, NULL },
};
