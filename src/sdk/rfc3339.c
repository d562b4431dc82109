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

const char *sdk_rfc3339_format_ms(int64_t ms, enum sdk_rfc3339_style style, char *buf,
				  size_t len)
{
	if (ms <= 0) {
		snprintf(buf, len, "0001-01-01T00:00:00Z");
		return buf;
	}
	time_t s = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&s, &tm);
	char base[32];
	strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
	int frac = (int)(ms % 1000);
	if (style == SDK_RFC3339_MILLIS) {
		snprintf(buf, len, "%s.%03dZ", base, frac);
		return buf;
	}
	if (!frac) {
		snprintf(buf, len, "%sZ", base);
		return buf;
	}
	char f[4];
	snprintf(f, sizeof f, "%03d", frac);
	for (int i = 2; i > 0 && f[i] == '0'; i--)
		f[i] = 0;
	snprintf(buf, len, "%s.%sZ", base, f);
	return buf;
}
