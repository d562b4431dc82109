/* Proleptic Gregorian calendar arithmetic on day numbers (days since
 * 1970-01-01), after Howard Hinnant's public-domain algorithms: exact for
 * every year the scheduler accepts, no table, no libc time zone state. */
#ifndef GRACE_SCHEDULER_CIVIL_H
#define GRACE_SCHEDULER_CIVIL_H

#include "kernels/layer.h"

#include <stdbool.h>
#include <stdint.h>

#define CIVIL_DAY_S 86400

static inline int64_t civil_floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b != 0 && ((a < 0) != (b < 0)));
}

static inline int64_t civil_days(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = civil_floor_div(y, 400);
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static inline void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	z += 719468;
	int64_t era = civil_floor_div(z, 146097);
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* 0 = Sunday. */
static inline unsigned civil_weekday(int64_t days)
{
	return (unsigned)(days >= -4 ? (days + 4) % 7 : (days + 5) % 7 + 6);
}

static inline bool civil_leap(int64_t y)
{
	return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

static inline unsigned civil_month_days(int64_t y, unsigned m)
{
	static const unsigned char n[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	return m == 2 && civil_leap(y) ? 29 : n[m - 1];
}

#endif
