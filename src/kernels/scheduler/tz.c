#include "kernels/scheduler/tz.h"

#include "kernels/scheduler/civil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A date of a POSIX TZ rule: Jn (1-365, February 29 never counted), n
 * (0-365, counted) or Mm.w.d (day d of week w of month m, w = 5: last). */
typedef struct tz_date {
	char kind; /* 'J', 'N', 'M' */
	int n, m, w, d;
} tz_date;

typedef struct tz_rule {
	bool present; /* the file's footer holds a rule */
	bool has_dst;
	int32_t std_off, dst_off; /* seconds east of UTC */
	tz_date start, end;
	int32_t start_time, end_time; /* seconds after local midnight; may be < 0 or > 24 h */
} tz_rule;

struct tz_zone {
	char name[TZ_NAME_MAX + 1];
	size_t n;     /* table transitions, each a change of offset */
	int64_t *at;  /* owned */
	int32_t *off; /* owned: the offset from at[i] on */
	int32_t off0; /* before the first transition (time type 0) */
	tz_rule rule; /* after the last transition */
};

typedef struct tz_event {
	int64_t at;
	int32_t off;
} tz_event;

bool tz_name_valid(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > TZ_NAME_MAX || name[0] == '/')
		return false;
	const char *seg = name;
	for (const char *p = name;; p++) {
		if (*p == '/' || *p == '\0') {
			size_t len = (size_t)(p - seg);
			if (len == 0 || seg[0] == '.')
				return false; /* empty, ".", "..", hidden files */
			if (*p == '\0')
				return true;
			seg = p + 1;
			continue;
		}
		char c = *p;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '+' || c == '-' || c == '.'))
			return false;
	}
}

/* ---- the POSIX TZ string of a TZif footer (RFC 8536 section 3.3) */

typedef struct tz_cursor {
	const char *p, *end;
} tz_cursor;

static bool cur_eat(tz_cursor *c, char ch)
{
	if (c->p < c->end && *c->p == ch) {
		c->p++;
		return true;
	}
	return false;
}

static int cur_num(tz_cursor *c, int max)
{
	int v = 0, digits = 0;
	while (c->p < c->end && *c->p >= '0' && *c->p <= '9' && digits < 4) {
		v = v * 10 + (*c->p++ - '0');
		digits++;
	}
	return digits == 0 || v > max ? -1 : v;
}

/* A zone abbreviation: three or more letters, or <...> of [A-Za-z0-9+-]. */
static bool parse_abbr(tz_cursor *c)
{
	const char *start = c->p;
	if (cur_eat(c, '<')) {
		while (c->p < c->end && *c->p != '>')
			c->p++;
		return cur_eat(c, '>') && c->p - start >= 5;
	}
	while (c->p < c->end && ((*c->p >= 'a' && *c->p <= 'z') || (*c->p >= 'A' && *c->p <= 'Z')))
		c->p++;
	return c->p - start >= 3;
}

/* [+-]hh[:mm[:ss]] in seconds; hours up to max_h (24, or 167 for rule times). */
static bool parse_hms(tz_cursor *c, int max_h, int32_t *out)
{
	int sign = 1;
	if (cur_eat(c, '-'))
		sign = -1;
	else
		cur_eat(c, '+');
	int h = cur_num(c, max_h), m = 0, s = 0;
	if (h < 0)
		return false;
	if (cur_eat(c, ':')) {
		if ((m = cur_num(c, 59)) < 0)
			return false;
		if (cur_eat(c, ':') && (s = cur_num(c, 59)) < 0)
			return false;
	}
	*out = sign * (h * 3600 + m * 60 + s);
	return true;
}

static bool parse_date(tz_cursor *c, tz_date *d)
{
	if (cur_eat(c, 'J')) {
		d->kind = 'J';
		d->n = cur_num(c, 365);
		return d->n >= 1;
	}
	if (cur_eat(c, 'M')) {
		d->kind = 'M';
		d->m = cur_num(c, 12);
		if (d->m < 1 || !cur_eat(c, '.'))
			return false;
		d->w = cur_num(c, 5);
		if (d->w < 1 || !cur_eat(c, '.'))
			return false;
		d->d = cur_num(c, 6);
		return d->d >= 0;
	}
	d->kind = 'N';
	d->n = cur_num(c, 365);
	return d->n >= 0;
}

static bool parse_rule(const char *s, size_t len, tz_rule *r)
{
	tz_cursor c = { s, s + len };
	int32_t posix;
	if (!parse_abbr(&c) || !parse_hms(&c, 24, &posix))
		return false;
	*r = (tz_rule){ .present = true, .std_off = -posix };
	if (c.p == c.end)
		return true;
	if (!parse_abbr(&c))
		return false;
	r->has_dst = true;
	r->dst_off = r->std_off + 3600;
	if (c.p < c.end && *c.p != ',') {
		if (!parse_hms(&c, 24, &posix))
			return false;
		r->dst_off = -posix;
	}
	/* A rule is required in a TZif footer with DST (RFC 8536 3.3.1). */
	if (!cur_eat(&c, ',') || !parse_date(&c, &r->start))
		return false;
	r->start_time = r->end_time = 7200;
	if (cur_eat(&c, '/') && !parse_hms(&c, 167, &r->start_time))
		return false;
	if (!cur_eat(&c, ',') || !parse_date(&c, &r->end))
		return false;
	if (cur_eat(&c, '/') && !parse_hms(&c, 167, &r->end_time))
		return false;
	return c.p == c.end;
}

/* The day number of a rule date in year y. */
static int64_t rule_day(const tz_date *d, int64_t y)
{
	int64_t jan1 = civil_days(y, 1, 1);
	if (d->kind == 'J')
		return jan1 + d->n - 1 + (civil_leap(y) && d->n >= 60);
	if (d->kind == 'N')
		return jan1 + d->n;
	int64_t first = civil_days(y, (unsigned)d->m, 1);
	unsigned wd = civil_weekday(first);
	int64_t day = first + (d->d - (int)wd + 7) % 7 + 7 * (d->w - 1);
	while (day >= first + civil_month_days(y, (unsigned)d->m))
		day -= 7;
	return day;
}

static int64_t year_of(int64_t t)
{
	int64_t y;
	unsigned m, d;
	civil_from_days(civil_floor_div(t, CIVIL_DAY_S), &y, &m, &d);
	return y;
}

/* The rule's changes in years y0..y1 after instant `after`, in order; at
 * one instant only the last counts (a permanent-DST rule ends and starts
 * again at once). Returns how many (at most 2 per year). */
static size_t rule_events(const tz_rule *r, int64_t y0, int64_t y1, int64_t after, tz_event *ev,
			  size_t cap)
{
	size_t n = 0;
	for (int64_t y = y0; y <= y1 && n + 2 <= cap; y++) {
		int64_t s = rule_day(&r->start, y) * CIVIL_DAY_S + r->start_time - r->std_off;
		int64_t e = rule_day(&r->end, y) * CIVIL_DAY_S + r->end_time - r->dst_off;
		/* The end first at a tie: it is the start that holds after it. */
		tz_event pair[2] = { { e, r->std_off }, { s, r->dst_off } };
		for (int i = 0; i < 2; i++) {
			if (pair[i].at <= after)
				continue;
			size_t j = n++;
			while (j > 0 && ev[j - 1].at > pair[i].at) {
				ev[j] = ev[j - 1];
				j--;
			}
			ev[j] = pair[i];
		}
	}
	size_t w = 0;
	for (size_t i = 0; i < n; i++) {
		if (i + 1 < n && ev[i + 1].at == ev[i].at)
			continue;
		ev[w++] = ev[i];
	}
	return w;
}

#define RULE_EVENTS_MAX 16

/* ---- the zone */

static int64_t table_end(const tz_zone *z)
{
	return z->n ? z->at[z->n - 1] : INT64_MIN;
}

static bool rule_applies(const tz_zone *z, int64_t t)
{
	return z->rule.present && (z->n == 0 || t >= z->at[z->n - 1]);
}

/* The number of table transitions at or before t. */
static size_t table_count_le(const tz_zone *z, int64_t t)
{
	size_t lo = 0, hi = z->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (z->at[mid] <= t)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int32_t table_offset(const tz_zone *z, int64_t t)
{
	size_t k = table_count_le(z, t);
	return k ? z->off[k - 1] : z->off0;
}

int32_t tz_offset_at(const tz_zone *z, int64_t t)
{
	if (!rule_applies(z, t))
		return table_offset(z, t);
	if (!z->rule.has_dst)
		return z->rule.std_off;
	tz_event ev[RULE_EVENTS_MAX];
	int64_t y = year_of(t);
	size_t n = rule_events(&z->rule, y - 2, y + 1, table_end(z), ev, RULE_EVENTS_MAX);
	int32_t off = z->n ? z->off[z->n - 1] : z->rule.std_off;
	for (size_t i = 0; i < n && ev[i].at <= t; i++)
		off = ev[i].off;
	return off;
}

int64_t tz_next_change(const tz_zone *z, int64_t t)
{
	if (!rule_applies(z, t)) {
		size_t k = table_count_le(z, t);
		if (k < z->n)
			return z->at[k]; /* every table transition changes the offset */
		return TZ_NEVER;
	}
	if (!z->rule.has_dst)
		return TZ_NEVER;
	int32_t cur = tz_offset_at(z, t);
	tz_event ev[RULE_EVENTS_MAX];
	for (int64_t y = year_of(t) - 1, last = y + 6; y <= last; y += 2) {
		size_t n = rule_events(&z->rule, y, y + 1, t, ev, RULE_EVENTS_MAX);
		for (size_t i = 0; i < n; i++)
			if (ev[i].off != cur)
				return ev[i].at;
	}
	return TZ_NEVER; /* standard and daylight time have the same offset */
}

int64_t tz_last_change(const tz_zone *z, int64_t t, int32_t *before)
{
	if (rule_applies(z, t) && z->rule.has_dst) {
		tz_event ev[RULE_EVENTS_MAX];
		int64_t y = year_of(t);
		size_t n = rule_events(&z->rule, y - 2, y + 1, table_end(z), ev, RULE_EVENTS_MAX);
		bool known = z->n > 0;
		int32_t off = known ? z->off[z->n - 1] : 0;
		int64_t since = INT64_MIN;
		int32_t prev = 0;
		for (size_t i = 0; i < n && ev[i].at <= t; i++) {
			if (known && ev[i].off != off) {
				since = ev[i].at;
				prev = off;
			}
			off = ev[i].off;
			known = true;
		}
		if (since != INT64_MIN) {
			*before = prev;
			return since;
		}
		/* The offset has held since the table's last transition. */
	}
	size_t k = table_count_le(z, t);
	if (k == 0) {
		*before = z->off0;
		return INT64_MIN;
	}
	*before = k >= 2 ? z->off[k - 2] : z->off0;
	return z->at[k - 1];
}

const char *tz_name(const tz_zone *z)
{
	return z->name;
}

void tz_free(tz_zone *z)
{
	if (!z)
		return;
	free(z->at);
	free(z->off);
	free(z);
}

tz_zone *tz_fixed(const char *name, int32_t utoff)
{
	tz_zone *z = calloc(1, sizeof *z);
	if (!z)
		return NULL;
	snprintf(z->name, sizeof z->name, "%s", name);
	z->off0 = utoff;
	return z;
}

/* ---- TZif */

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
	return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

typedef struct tzif_head {
	uint32_t isut, isstd, leap, time, type, chars;
} tzif_head;

#define TZIF_HEAD 44
#define TZIF_COUNT_MAX 100000u /* far above any real zone */

static bool read_head(const unsigned char *p, size_t len, tzif_head *h)
{
	if (len < TZIF_HEAD || memcmp(p, "TZif", 4))
		return false;
	*h = (tzif_head){ be32(p + 20), be32(p + 24), be32(p + 28),
			  be32(p + 32), be32(p + 36), be32(p + 40) };
	return h->type >= 1 && h->type <= 256 && h->time <= TZIF_COUNT_MAX &&
	       h->leap <= TZIF_COUNT_MAX && h->chars <= TZIF_COUNT_MAX &&
	       h->isut <= h->type && h->isstd <= h->type;
}

static size_t block_len(const tzif_head *h, size_t tsize)
{
	return (size_t)h->time * (tsize + 1) + (size_t)h->type * 6 + h->chars +
	       (size_t)h->leap * (tsize + 4) + h->isstd + h->isut;
}

int tz_parse(const unsigned char *buf, size_t len, const char *name, tz_zone **out,
	     sdk_err *err)
{
	tzif_head h;
	if (!read_head(buf, len, &h))
		return sdk_fail(err, SDK_ENOTFOUND, "time zone %s: not a TZif file", name);
	char version = (char)buf[4];
	size_t tsize = 4;
	const unsigned char *p = buf + TZIF_HEAD, *end = buf + len;
	size_t v1 = block_len(&h, 4);
	if ((size_t)(end - p) < v1)
		return sdk_fail(err, SDK_ENOTFOUND, "time zone %s: truncated TZif file", name);
	if (version >= '2') {
		/* The 64-bit block that follows the 32-bit one, then the footer. */
		p += v1;
		if (!read_head(p, (size_t)(end - p), &h))
			return sdk_fail(err, SDK_ENOTFOUND, "time zone %s: bad TZif v2 header", name);
		p += TZIF_HEAD;
		tsize = 8;
		if ((size_t)(end - p) < block_len(&h, 8))
			return sdk_fail(err, SDK_ENOTFOUND, "time zone %s: truncated TZif file", name);
	}
	if (h.leap)
		return sdk_fail(err, SDK_ENOTFOUND,
				"time zone %s counts leap seconds (a right/ zone): not supported", name);
	const unsigned char *times = p, *idx = p + (size_t)h.time * tsize;
	const unsigned char *types = idx + h.time;
	tz_zone *z = calloc(1, sizeof *z);
	if (!z)
		return sdk_fail(err, SDK_EIO, "out of memory");
	snprintf(z->name, sizeof z->name, "%s", name);
	z->at = malloc(sizeof *z->at * (h.time + 1));
	z->off = malloc(sizeof *z->off * (h.time + 1));
	if (!z->at || !z->off) {
		tz_free(z);
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	z->off0 = (int32_t)be32(types);
	int32_t last = z->off0;
	int64_t prev_at = INT64_MIN;
	for (uint32_t i = 0; i < h.time; i++) {
		int64_t at = tsize == 8 ? be64(times + i * 8) : (int32_t)be32(times + i * 4);
		unsigned ti = idx[i];
		if (ti >= h.type || at <= prev_at) {
			tz_free(z);
			return sdk_fail(err, SDK_ENOTFOUND, "time zone %s: bad transition %u", name, i);
		}
		prev_at = at;
		int32_t off = (int32_t)be32(types + ti * 6);
		if (off < -25 * 3600 || off > 26 * 3600) {
			tz_free(z);
			return sdk_fail(err, SDK_ENOTFOUND, "time zone %s: offset out of range", name);
		}
		if (off == last)
			continue; /* a change of name or DST flag only */
		z->at[z->n] = at;
		z->off[z->n++] = off;
		last = off;
	}
	if (tsize == 8) {
		const unsigned char *f = p + block_len(&h, 8);
		if (f < end && *f == '\n') {
			const unsigned char *nl = memchr(f + 1, '\n', (size_t)(end - f - 1));
			if (!nl) {
				tz_free(z);
				return sdk_fail(err, SDK_ENOTFOUND, "time zone %s: bad footer", name);
			}
			size_t flen = (size_t)(nl - f - 1);
			if (flen && !parse_rule((const char *)f + 1, flen, &z->rule)) {
				tz_free(z);
				return sdk_fail(err, SDK_ENOTFOUND,
						"time zone %s: footer rule \"%.*s\" does not parse", name,
						(int)(flen > 60 ? 60 : flen), (const char *)f + 1);
			}
		}
	}
	*out = z;
	return 0;
}

int tz_load(const char *dir, const char *name, tz_zone **out, sdk_err *err)
{
	if (!tz_name_valid(name))
		return sdk_fail(err, SDK_EINVAL,
				"time zone \"%.64s\" is not an IANA zone name (like Europe/Berlin)",
				name);
	if (!dir)
		dir = getenv("TZDIR");
	if (!dir || !*dir)
		dir = TZ_DEFAULT_DIR;
	char path[1024];
	if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
		return sdk_fail(err, SDK_EINVAL, "time zone name too long");
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return sdk_fail(err, errno == ENOENT || errno == ENOTDIR ? SDK_ENOTFOUND : SDK_EIO,
				"unknown time zone \"%s\" (%s)", name, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)TZ_FILE_MAX) {
		close(fd);
		return sdk_fail(err, SDK_ENOTFOUND, "unknown time zone \"%s\"", name);
	}
	size_t len = (size_t)st.st_size;
	unsigned char *buf = malloc(len ? len : 1);
	if (!buf) {
		close(fd);
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	size_t got = 0;
	while (got < len) {
		ssize_t r = read(fd, buf + got, len - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	int rc = got == len ? tz_parse(buf, len, name, out, err)
			    : sdk_fail(err, SDK_EIO, "time zone %s: short read", name);
	free(buf);
	if (rc == SDK_ENOTFOUND && err) {
		/* Files beside the zones (zone.tab, tzdata.zi) are no zones. */
		sdk_err why = *err;
		sdk_fail(err, SDK_ENOTFOUND, "unknown time zone \"%s\" (%.150s)", name, why.msg);
	}
	return rc;
}
