/* The next fire instant of a cron schedule in a time zone.
 *
 * The zone's timeline is a run of segments, each of one UTC offset; within
 * a segment the local clock is UTC plus that offset, so the first local
 * match after a local time maps straight back to an instant. Walking the
 * segments in order gives every matching instant (elapsed-time schedules).
 * Fixed-hour schedules add two rules at a change of offset (cron.h):
 *
 *   - forward (a gap: local times [E+off, E+off2) never happen): if a match
 *     falls in the gap, fire once at E, the instant the gap ends;
 *   - backward (local times [E+off2, E+off) happen twice): in the later
 *     segment, skip matches before E+off, which were fired the first time.
 *
 * The first local match is searched once and reused while it still lies
 * ahead, so a schedule of rare days costs one search, not one per change. */
#include "kernels/scheduler/cron.h"

#define SEGMENTS_MAX 20000 /* changes crossed in one search: ~2 a year for 9999 years */

bool cron_next(const cron_expr *e, const tz_zone *z, int64_t after, int64_t *out)
{
	if (e->every_ms || after >= CRON_INSTANT_MAX)
		return false;
	int64_t t = after; /* searching instants > t ... */
	int64_t at = after; /* ... in the segment holding `at` */
	int32_t off = tz_offset_at(z, t), prev_off = off;
	int64_t since = tz_last_change(z, t, &prev_off);
	int64_t m = 0, m_lo = 0; /* m: the first local match after m_lo */
	bool have = false;
	for (int i = 0; i < SEGMENTS_MAX; i++) {
		int64_t end = tz_next_change(z, at);
		int64_t lo = t + off;
		if (e->fixed_hour && since != INT64_MIN && prev_off > off && lo < since + prev_off - 1)
			lo = since + prev_off - 1; /* the repeated local times came before */
		if (!have || lo < m_lo || m <= lo) {
			if (!cron_next_civil(e, lo, &m))
				return false;
			m_lo = lo;
			have = true;
		}
		if (end == TZ_NEVER || m - off < end) {
			*out = m - off;
			return *out <= CRON_INSTANT_MAX;
		}
		int32_t off2 = tz_offset_at(z, end);
		/* Here m >= end + off: it is in the gap when below end + off2. */
		if (e->fixed_hour && off2 > off && m < end + off2) {
			*out = end;
			return true;
		}
		since = end;
		prev_off = off;
		off = off2;
		t = end - 1;
		at = end;
	}
	return false;
}
