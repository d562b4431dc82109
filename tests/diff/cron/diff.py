"""Differential test of the scheduler's next fire times (issue 13).

Three parties compute the next fire times of generated cron expressions in
generated time zones after generated instants (many of them around the
zones' offset changes):

  - Grace's C code (cron_cli, built from src/kernels/scheduler/);
  - ref.py: an independent reference of the issue's rules over zoneinfo,
    plus a brute-force walk over UTC for short intervals;
  - python3-croniter 1.3.5 (Debian's; run with /usr/bin/python3).

Grace must agree with the reference on every case (and with the brute
force wherever it runs), and with zoneinfo on every zone's offsets and
changes. Grace and croniter may disagree only in the documented ways
(docs/scheduler.md, "Differences from croniter"), each counted:

  dst           a change of the zone's offset lies between the start and
                the disagreement: croniter carries the offset it started
                with across it (ORACLES.md); the reference decides;
  vixie_star    the day rule: Vixie cron takes a day field for '*' when
                its text starts with '*' (so "*/2" makes the other day
                field required too), croniter when its values cover the
                range (so "1-7" or "*/1,3" in day-of-week make day-of-month
                required); croniter's answers are those of its reading;
  croniter_skip croniter passes over an instant that matches its own
                reading of the fields (seen with 7 inside day-of-week lists
                and ranges, and around the 31st);
  croniter_wrong croniter answers an instant that does not match its own
                reading;
  croniter_dow7 croniter raises on a day-of-week 7 (or -sun) when a
                seconds field is present;
  croniter_or_raise croniter raises when one side of the day-of-month OR
                day-of-week rule alone never fires;
  refused       expressions croniter accepts and Vixie cron does not (L, W,
                #, ?, ranges that run backwards, steps past the range).

Anything else fails the test. Usage:

  /usr/bin/python3 tests/diff/cron/diff.py --cli build/tests/diff/cron/cron_cli \
      [--cases N] [--seed S] [-v]
"""

import argparse
import copy
import re
import os
import random
import subprocess
import sys
import time
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import ref  # noqa: E402

try:
    from zoneinfo import ZoneInfo, available_timezones
except ImportError:  # pragma: no cover
    sys.exit("zoneinfo (Python 3.9+) is needed: run this with /usr/bin/python3")
try:
    from croniter import croniter
except ImportError:
    sys.exit("python3-croniter is needed (Debian package; run with /usr/bin/python3): "
             "scripts/bootstrap.sh --test installs it")

UTC = timezone.utc
FIRES = 5

# Zones with something to teach: DST both ways and in both hemispheres,
# half-hour and 45-minute offsets and shifts, changes at midnight, a day
# skipped (Apia 2011), negative DST (Dublin), two-hour DST (Troll),
# Ramadan breaks (Casablanca), DST abolished (Sao Paulo, Tehran).
TRICKY = ["UTC", "Europe/Berlin", "Europe/London", "Europe/Dublin", "America/New_York",
          "America/Los_Angeles", "America/St_Johns", "America/Santiago", "America/Havana",
          "America/Sao_Paulo", "America/Asuncion", "America/Godthab", "America/Nuuk",
          "Australia/Sydney", "Australia/Lord_Howe", "Australia/Adelaide",
          "Pacific/Chatham", "Pacific/Apia", "Pacific/Auckland", "Pacific/Kiritimati",
          "Asia/Kolkata", "Asia/Kathmandu", "Asia/Tehran", "Asia/Beirut", "Asia/Gaza",
          "Asia/Jerusalem", "Africa/Casablanca", "Africa/Cairo", "Antarctica/Troll",
          "Europe/Moscow", "Asia/Tokyo", "America/Caracas", "Pacific/Norfolk",
          "America/Mexico_City", "Europe/Chisinau", "Asia/Amman", "Asia/Damascus"]

T_MIN = int(datetime(1971, 1, 1, tzinfo=UTC).timestamp())
T_MAX = int(datetime(2070, 1, 1, tzinfo=UTC).timestamp())


def zones_list(rng, n_random):
    have = available_timezones()
    base = [z for z in TRICKY if z in have]
    rest = sorted(z for z in have if not z.startswith(("posix", "right", "SystemV")) and
                  z not in base and "/" in z)
    return base + rng.sample(rest, min(n_random, len(rest)))


# ---- generation

def gen_value(rng, lo, hi, names):
    v = rng.randint(lo, hi)
    if names and rng.random() < 0.3:
        i = v - lo
        if i < len(names):
            n = names[i]
            return n.upper() if rng.random() < 0.2 else n
    return str(v)


def gen_item(rng, lo, hi, names=None):
    r = rng.random()
    if r < 0.45:
        return gen_value(rng, lo, hi, names)
    if r < 0.7:
        a = rng.randint(lo, hi)
        b = rng.randint(a, hi)
        s = "%s-%s" % (gen_value(rng, a, a, names), gen_value(rng, b, b, names))
        if rng.random() < 0.3:
            s += "/%d" % rng.randint(1, max(1, b - a + 1))
        return s
    if r < 0.9:
        return "*/%d" % rng.randint(1, (hi - lo + 1) // 2 + 1)
    return "%d/%d" % (rng.randint(lo, hi), rng.randint(1, hi - lo + 1))


def gen_field(rng, lo, hi, names=None, star=0.4):
    if rng.random() < star:
        return "*"
    n = 1 if rng.random() < 0.7 else rng.randint(2, 4)
    return ",".join(gen_item(rng, lo, hi, names) for _ in range(n))


def gen_expr(rng):
    r = rng.random()
    if r < 0.05:
        return rng.choice(list(ref.SHORTCUTS))
    minute = gen_field(rng, 0, 59, star=0.2)
    # Hours often fixed and early, where the changes of offset happen.
    if rng.random() < 0.45:
        hour = ",".join(str(h) for h in sorted(rng.sample(range(0, 5), rng.randint(1, 2))))
    else:
        hour = gen_field(rng, 0, 23, star=0.4)
    dom = gen_field(rng, 1, 31, star=0.65)
    month = gen_field(rng, 1, 12, ref.MONTHS, star=0.7)
    dow = gen_field(rng, 0, 7, ref.DAYS, star=0.7)
    fields = [minute, hour, dom, month, dow]
    if rng.random() < 0.12:
        fields.append(gen_field(rng, 0, 59, star=0.3))
    return " ".join(fields)


def gen_start(rng, zone):
    r = rng.random()
    if r < 0.45:
        return rng.randint(T_MIN, T_MAX)
    if r < 0.55:
        # Past the tables of fat TZif files (2037): the footer rule decides.
        return rng.randint(int(datetime(2037, 1, 1, tzinfo=UTC).timestamp()),
                           int(datetime(2300, 1, 1, tzinfo=UTC).timestamp()))
    # Shortly before a change of offset, if the zone has one that year.
    t = rng.randint(T_MIN, T_MAX)
    e = zone.next_change(t, t + 400 * ref.DAY)
    if e is None:
        return t
    return e - rng.randint(0, 6 * 3600)


BAD = ["", "* * * *", "* * * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * 32 * *",
       "* * * 13 *", "* * * * 8", "5-2 * * * *", "*/0 * * * *", "* * * * * 60", "L * * * *",
       "* * L * *", "* * * * 5L", "* * * * 1#2", "* * ? * *", "* * 15W * *", "a * * * *",
       "* * * foo *", "1,,2 * * * *", "1, * * * *", "@reboot", "@every", "@every 0s",
       "@every 5", "0 0 30 2 *", "0 0 31 4,6,9,11 *", "*/61 * * * *", "* * * jan-dec/13 *",
       "1-2-3 * * * *", "-1 * * * *", "* * * * sun-sat-mon", "0 0 31 2 * 0", "* * * * mon-sun"]


def croniter_accepts(expr):
    try:
        it = croniter(expr, datetime(2024, 1, 1, tzinfo=UTC))
        it.get_next(float)
        return True
    except Exception:  # croniter raises many kinds
        return False


# ---- parties

def run_cli(cli, lines):
    p = subprocess.run([cli], input="\n".join(lines) + "\n", capture_output=True, text=True,
                       timeout=600)
    if p.returncode != 0:
        sys.exit("cron_cli failed (%d): %s" % (p.returncode, p.stderr[-2000:]))
    out = p.stdout.splitlines()
    if len(out) != len(lines):
        sys.exit("cron_cli answered %d lines for %d requests" % (len(out), len(lines)))
    return out


def croniter_fires(expr, zone_name, after, n):
    zi = ZoneInfo(zone_name)
    it = croniter(expr, datetime.fromtimestamp(after, UTC).astimezone(zi))
    out = []
    for _ in range(n):
        out.append(int(it.get_next(float)))
    return out


def crosses_change(zone, a, b):
    return zone.next_change(a, b) is not None


def croniter_reading(cron, expr):
    """The schedule as croniter reads it (its expanded fields and its day
    rule), in the reference's terms. croniter takes a day field for '*'
    when its expanded values number as many as the field has, whatever its
    text ("1-7" in day-of-week, "*/1" in day-of-month; not "0-7" or "*/1"
    in day-of-week, whose 8 values keep 7); Vixie cron when its text
    starts with '*'."""
    exp = croniter(expr).expanded
    alt = copy.copy(cron)

    def values(i, lo, hi):
        return set(range(lo, hi + 1)) if exp[i][0] == "*" else {int(v) for v in exp[i]}
    alt.minute, alt.hour = values(0, 0, 59), values(1, 0, 23)
    alt.dom, alt.month = values(2, 1, 31), values(3, 1, 12)
    alt.dow = {v % 7 for v in values(4, 0, 6)}
    alt.second = values(5, 0, 59) if len(exp) == 6 else {0}
    alt.hours, alt.minutes, alt.secs = sorted(alt.hour), sorted(alt.minute), sorted(alt.second)
    alt.dom_star, alt.dow_star = exp[2][0] == "*", exp[4][0] == "*"
    return alt


def local_matches(cron, zone, u):
    dt = datetime.fromtimestamp(u, zone.zi)
    return cron.day_ok(dt.date()) and cron.time_ok(dt.hour, dt.minute, dt.second)


def chain(cron, zone, after, n):
    out, t = [], after
    for _ in range(n):
        t = ref.next_fire(cron, zone, t)
        if t is None:
            break
        out.append(t)
    return out


DOW7 = re.compile(r"(^|[,-])(7|sun)($|[,/-])", re.I)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", required=True)
    ap.add_argument("--cases", type=int, default=None)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("-v", action="store_true")
    args = ap.parse_args()
    sanitized = os.environ.get("GRACE_SANITIZED") == "1"
    n_cases = args.cases or (400 if sanitized else 4000)
    rng = random.Random(args.seed)
    t0 = time.monotonic()
    names = zones_list(rng, 40 if sanitized else 120)
    zones = {n: ref.Zone(ZoneInfo(n)) for n in names}
    failures = []
    counts = {"cases": 0, "fires": 0, "brute_checked": 0, "croniter_agree": 0, "dst": 0,
              "vixie_star": 0, "croniter_dow7": 0, "croniter_or_raise": 0,
              "croniter_skip": 0, "croniter_wrong": 0, "refused": 0, "zone_probes": 0, "never": 0}

    # 1. Zones: offsets, next and last changes against zoneinfo.
    zreq, zmeta = [], []
    for name in names:
        z = zones[name]
        for _ in range(4 if sanitized else 12):
            t = rng.randint(T_MIN, int(datetime(2200, 1, 1, tzinfo=UTC).timestamp()))
            if rng.random() < 0.5:
                e = z.next_change(t, t + 200 * ref.DAY)
                if e is not None:
                    t = e + rng.choice([-1, 0, 1, -3600, 3599])
            zreq.append("Z\t%s\t%d" % (name, t))
            zmeta.append((name, t))
    for (name, t), line in zip(zmeta, run_cli(args.cli, zreq)):
        z = zones[name]
        counts["zone_probes"] += 1
        parts = line.split()
        if parts[0] != "ok":
            failures.append("zone %s: %s" % (name, line))
            continue
        off = int(parts[1])
        if off != z.off(t):
            failures.append("zone %s at %d: offset %d, zoneinfo %d" % (name, t, off, z.off(t)))
            continue
        horizon = t + 120 * ref.DAY
        want = z.next_change(t, horizon)
        got = None if parts[2] == "none" else int(parts[2])
        if want is not None and got != want:
            failures.append("zone %s at %d: next change %s, zoneinfo %s" % (name, t, got, want))
        if want is None and got is not None and got <= horizon:
            failures.append("zone %s at %d: next change %s, zoneinfo none" % (name, t, got))
        lc = z.last_change(t, back=60 * ref.DAY)
        if lc is not None:
            if parts[3] == "none" or int(parts[3]) != lc[0] or int(parts[4]) != lc[1]:
                failures.append("zone %s at %d: last change %s/%s, zoneinfo %s"
                                % (name, t, parts[3], parts[4], lc))

    # 2. Bad expressions: refused, and what croniter makes of them.
    bad_lines = ["N\t%s\tUTC\t0\t1" % b for b in BAD if b]
    for b, line in zip([b for b in BAD if b], run_cli(args.cli, bad_lines)):
        if not line.startswith("error "):
            failures.append("accepted a bad expression %r: %s" % (b, line))
        elif croniter_accepts(b):
            counts["refused"] += 1
            if args.v:
                print("refused, croniter accepts: %r (%s)" % (b, line[6:]))

    # 3. Next fire times.
    cases = []
    while len(cases) < n_cases:
        name = rng.choice(names) if rng.random() < 0.5 else rng.choice(names[:len(TRICKY)])
        if name not in zones:
            continue
        expr = gen_expr(rng)
        try:
            cron = ref.Cron(expr)
        except ref.Invalid:
            continue
        if cron.next_civil(datetime(2000, 1, 1)) is None:
            continue  # never fires: covered by BAD
        cases.append((expr, name, gen_start(rng, zones[name]), cron))
    lines = ["N\t%s\t%s\t%d\t%d" % (e, n, t, FIRES) for e, n, t, _ in cases]
    for (expr, name, after, cron), line in zip(cases, run_cli(args.cli, lines)):
        counts["cases"] += 1
        z = zones[name]
        parts = line.split()
        if parts[0] != "ok":
            failures.append("%r in %s: refused: %s" % (expr, name, line))
            continue
        got = [int(x) for x in parts[1:]]
        want = []
        t = after
        for _ in range(FIRES):
            t = ref.next_fire(cron, z, t)
            if t is None:
                break
            want.append(t)
        if got != want:
            failures.append("%r in %s after %d: grace %s, reference %s"
                            % (expr, name, after, got, want))
            continue
        counts["fires"] += len(got)
        if not got:
            counts["never"] += 1
            continue
        step = 1 if cron.seconds else 60
        if (got[-1] - after) // step <= 6000:
            counts["brute_checked"] += 1
            brute = ref.brute_fires(cron, z, after, got[-1])
            if brute != got:
                failures.append("%r in %s after %d: grace %s, brute force %s"
                                % (expr, name, after, got, brute))
                continue
        if got[-1] > int(datetime(2099, 1, 1, tzinfo=UTC).timestamp()):
            continue  # croniter's arithmetic is not checked that far
        try:
            theirs = croniter_fires(expr, name, after, len(got))
        except Exception as e:  # noqa: BLE001
            fields = expr.split()
            if len(fields) == 6 and DOW7.search(fields[4]):
                counts["croniter_dow7"] += 1
                continue
            if not croniter_accepts(" ".join(fields[:4] + ["*"] + fields[5:])):
                counts["croniter_or_raise"] += 1
                continue
            failures.append("%r in %s after %d: croniter raised %r" % (expr, name, after, e))
            continue
        if theirs == got:
            counts["croniter_agree"] += 1
            continue
        k = next(i for i in range(len(got)) if got[i] != theirs[i])
        if crosses_change(z, after, max(got[k], theirs[k])):
            # croniter carries the offset it started with across a change.
            counts["dst"] += 1
            if args.v:
                print("dst: %r in %s after %d: grace %d, croniter %d"
                      % (expr, name, after, got[k], theirs[k]))
            continue
        alt = croniter_reading(cron, expr)
        alt_fires = chain(alt, z, after, len(got))
        if alt_fires == theirs:
            counts["vixie_star"] += 1
            continue
        k = next((i for i in range(len(theirs)) if i >= len(alt_fires) or
                  alt_fires[i] != theirs[i]), 0)
        if k < len(alt_fires) and alt_fires[k] < theirs[k] and local_matches(alt, z, alt_fires[k]):
            counts["croniter_skip"] += 1
            if args.v:
                print("croniter_skip: %r in %s after %d: %d matches croniter's own reading, "
                      "croniter gives %d" % (expr, name, after, alt_fires[k], theirs[k]))
        elif not local_matches(alt, z, theirs[k]):
            counts["croniter_wrong"] += 1
            if args.v:
                print("croniter_wrong: %r in %s after %d: croniter gives %d, which does not "
                      "match its own reading" % (expr, name, after, theirs[k]))
        else:
            failures.append("%r in %s after %d: grace %s, croniter %s (no change of offset "
                            "between)" % (expr, name, after, got, theirs))

    counts["seconds"] = round(time.monotonic() - t0, 1)
    print("cron_diff: %s" % " ".join("%s=%s" % kv for kv in counts.items()))
    for f in failures[:40]:
        print("FAIL " + f)
    if failures:
        print("%d failures" % len(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
