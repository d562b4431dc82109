#include "sdk/rfc3339.h"

#include <stdio.h>
#include <time.h>

bool sdk_rfc3339_parse_ms(const char *s, int64_t *ms)
{
	if (!s)
		return false;
	struct tm tm = { 0 };
	const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!p)
		return false;
	int64_t frac = 0;
	if (*p == '.') {
		p++;
		int d = 0;
		while (*p >= '0' && *p <= '9') {
			if (d < 3)
				frac = frac * 10 + (*p - '0');
			d++;
			p++;
		}
		for (; d < 3; d++)
			frac *= 10;
	}
	int64_t off = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int hh, mm;
		if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2)
			return false;
		off = (hh * 3600 + mm * 60) * (*p == '+' ? 1 : -1);
		p += 6;
	} else {
		return false;
	}
	if (*p)
		return false;
	*ms = ((int64_t)timegm(&tm) - off) * 1000 + frac;
	return true;
}
