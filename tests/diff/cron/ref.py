"""A reference for the scheduler's next fire times, written apart from the
C code: its own reading of Vixie cron syntax, Python's zoneinfo (its own
TZif reader) for the time zones, and the daylight-saving rules of issue 13
(docs/scheduler.md) stated directly:

  - fixed-hour schedules (no '*' and no step in the hour field): a local
    time skipped by a change of offset fires once, at the instant the gap
    ends; a local time repeated fires once, at its first occurrence;
  - other schedules fire at every instant whose local time matches.

Two ways of finding the next fire: `next_fire` (walks the zone's offset
changes, found by probing zoneinfo and bisecting) and `brute_fire` (tries
every second, or minute, of UTC in an interval: slow, so only for short
intervals). The differential test uses both."""

import re
from datetime import datetime, timezone, timedelta

UTC = timezone.utc
DAY = 86400
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
SHORTCUTS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
             "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
             "@hourly": "0 * * * *"}
YEAR_MAX = 9999


class Invalid(Exception):
    pass


def _value(tok, lo, hi, names):
    if tok.isdigit():
        return int(tok)
    if names:
        low = tok.lower()
        if low in names:
            return names.index(low) + lo
    raise Invalid("bad value %r" % tok)


def _field(text, lo, hi, names=None):
    out = set()
    for item in text.split(","):
        if item == "":
            raise Invalid("empty item")
        m = re.fullmatch(r"([^/]+)(?:/(\d+))?", item)
        if not m:
            raise Invalid("bad item %r" % item)
        rng, step = m.group(1), m.group(2)
        if rng == "*":
            a, b = lo, hi
        elif "-" in rng:
            x, y = rng.split("-", 1)
            a, b = _value(x, lo, hi, names), _value(y, lo, hi, names)
        else:
            a = b = _value(rng, lo, hi, names)
            if step is not None:
                b = hi
        st = 1 if step is None else int(step)
        if st < 1 or st > hi - lo + 1:
            raise Invalid("bad step")
        if not (lo <= a <= hi and lo <= b <= hi) or b < a:
            raise Invalid("out of range")
        out.update(range(a, b + 1, st))
    return out


class Cron:
    def __init__(self, text):
        t = text.strip()
        if t.startswith("@"):
            if t not in SHORTCUTS:
                raise Invalid("unknown shortcut")
            t = SHORTCUTS[t]
        f = t.split()
        if len(f) not in (5, 6):
            raise Invalid("field count")
        self.minute = _field(f[0], 0, 59)
        self.hour = _field(f[1], 0, 23)
        self.dom = _field(f[2], 1, 31)
        self.month = _field(f[3], 1, 12, MONTHS)
        dow = _field(f[4], 0, 7, DAYS)
        self.dow = {d % 7 for d in dow}
        self.second = _field(f[5], 0, 59) if len(f) == 6 else {0}
        self.seconds = len(f) == 6
        self.dom_star = f[2].startswith("*")
        self.dow_star = f[4].startswith("*")
        self.fixed = "*" not in f[1] and "/" not in f[1]
        self.hours = sorted(self.hour)
        self.minutes = sorted(self.minute)
        self.secs = sorted(self.second)

    def day_ok(self, d):
        if d.month not in self.month:
            return False
        a = d.day in self.dom
        b = (d.isoweekday() % 7) in self.dow
        return (a and b) if (self.dom_star or self.dow_star) else (a or b)

    def time_ok(self, h, m, s):
        return h in self.hour and m in self.minute and s in self.second

    def next_civil(self, after, years=400):
        """The first civil datetime (naive) strictly after `after` that
        matches, or None within `years`."""
        t = after + timedelta(seconds=1)
        d = t.date()
        first = True
        stop = min(YEAR_MAX, d.year + years)
        while d.year <= stop:
            if self.day_ok(d):
                start = (t.hour, t.minute, t.second) if first else (0, 0, 0)
                for h in self.hours:
                    if h < start[0]:
                        continue
                    for m in self.minutes:
                        if (h, m) < start[:2]:
                            continue
                        for s in self.secs:
                            if (h, m, s) >= start:
                                return datetime(d.year, d.month, d.day, h, m, s)
            first = False
            if d.year == YEAR_MAX and d.month == 12 and d.day == 31:
                return None
            d = d + timedelta(days=1)
        return None


def civil_seconds(dt):
    return (dt - datetime(1970, 1, 1)).days * DAY + (dt - datetime(1970, 1, 1)).seconds


def civil_dt(sec):
    return datetime(1970, 1, 1) + timedelta(seconds=sec)


class Zone:
    """Offsets from zoneinfo, and their changes found by probing."""

    PROBE = 6 * 3600  # no offset holds for less than this (post-1900 tzdata)

    def __init__(self, zi):
        self.zi = zi

    def off(self, u):
        return int(datetime.fromtimestamp(u, self.zi).utcoffset().total_seconds())

    def _bisect(self, a, b):
        """off(a) != off(b), a < b: the first instant in (a, b] whose offset
        differs from off(a)."""
        oa = self.off(a)
        while b - a > 1:
            mid = (a + b) // 2
            if self.off(mid) == oa:
                a = mid
            else:
                b = mid
        return b

    def next_change(self, u, limit):
        """The first instant in (u, limit] whose offset differs from off(u)
        (probing every PROBE seconds), or None."""
        o = self.off(u)
        a = u
        while a < limit:
            b = min(a + self.PROBE, limit)
            if self.off(b) != o:
                return self._bisect(a, b)
            a = b
        return None

    def last_change(self, u, back=3 * DAY):
        """(instant the offset at u began, offset before) within `back`, or None."""
        o = self.off(u)
        b = u
        while b > u - back:
            a = b - self.PROBE
            if self.off(a) != o:
                e = self._bisect(a, b)
                return e, self.off(e - 1)
            b = a
        return None


def next_fire(cron, zone, after, horizon_years=400):
    """The first fire instant > after (Unix seconds) under the rules, or None."""
    limit = min(int(datetime(YEAR_MAX, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()),
                after + horizon_years * 366 * DAY)
    u = after  # searching instants > u ...
    at = after  # ... in the segment holding `at`
    o = zone.off(u)
    lc = zone.last_change(u)
    since, before = lc if lc else (None, None)
    while u < limit:
        lo = u + o
        if cron.fixed and since is not None and before > o:
            lo = max(lo, since + before - 1)
        m = cron.next_civil(civil_dt(lo))
        if m is None:
            return None
        m = civil_seconds(m)
        cand = m - o
        e = zone.next_change(at, min(cand, limit))
        if e is None:
            return cand if cand <= limit else None
        o2 = zone.off(e)
        if cron.fixed and o2 > o:
            g = cron.next_civil(civil_dt(e + o - 1))
            if g is not None and civil_seconds(g) < e + o2:
                return e
        since, before = e, o
        o = o2
        u = e - 1
        at = e
    return None


def brute_fires(cron, zone, after, until):
    """Every fire instant in (after, until], trying each second (or each
    minute, for schedules without seconds, as every offset since 1970 is
    whole minutes) of UTC and the rules as the issue states them."""
    step = 1 if cron.seconds else 60
    out = []
    u = after + 1
    if step == 60:
        u = (u + 59) // 60 * 60
    while u <= until:
        dt = datetime.fromtimestamp(u, zone.zi)
        if cron.day_ok(dt.date()) and cron.time_ok(dt.hour, dt.minute, dt.second):
            if not cron.fixed or dt.fold == 0:
                out.append(u)
        if cron.fixed:
            prev_off = zone.off(u - step)
            o = zone.off(u)
            if o > prev_off and zone.off(u - 1) != o:
                # A gap ends at u: local [u + prev_off, u + o) never happened.
                c = u + prev_off
                while c < u + o:
                    t = civil_dt(c)
                    if cron.day_ok(t.date()) and cron.time_ok(t.hour, t.minute, t.second):
                        if not out or out[-1] != u:
                            out.append(u)
                        break
                    c += step
        u += step
    return out
