#!/usr/bin/python3
"""Scheduler benchmark: next-fire computation, Grace against croniter, same run.

    /usr/bin/python3 bench/scheduler_bench.py [--cli build/tests/diff/cron/cron_cli]
                                              [--fires 20000] [--rounds 3]

For each expression and time zone below, both compute the same number of
successive fire times from the same start (2024-01-01T00:00:00Z): Grace in
C (src/kernels/scheduler, driven by the test-only cron_cli, timed inside
the process, so process start-up is not counted) and python3-croniter 1.3.5
(Debian; in this Python, so run it with /usr/bin/python3). The report gives
fires per second for each and the ratio; each figure is the best of
--rounds. croniter's figures include the Python interpreter: the ratio is
what a Python scheduler built on it would see against Grace's.

It also measures the one time-zone question the scheduler asks (the UTC
offset at an instant) three ways: Grace's TZif reader (tz_offset_at),
glibc's localtime_r in one zone, and localtime_r with TZ switched between
two zones at every call (what using libc for jobs in many zones needs:
setenv + tzset, under a lock in a threaded program).

Standard library and croniter only; nothing is started but cron_cli.
"""

import argparse
import os
import subprocess
import sys
import time
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
START = int(datetime(2024, 1, 1, tzinfo=timezone.utc).timestamp())

CASES = [
    ("*/5 * * * *", "UTC"),
    ("*/5 * * * *", "Europe/Berlin"),
    ("30 2 * * *", "Europe/Berlin"),
    ("0 9 * * mon-fri", "America/New_York"),
    ("0 0 1 * *", "Australia/Lord_Howe"),
    ("15,45 8-18 * * 1-5", "Asia/Kolkata"),
    ("* * * * * */10", "Europe/London"),
    ("0 0 29 2 *", "UTC"),
]


def grace(cli, expr, zone, fires):
    p = subprocess.run([cli], input="T\t%s\t%s\t%d\t%d\n" % (expr, zone, START, fires),
                       capture_output=True, text=True, check=True)
    parts = p.stdout.split()
    if parts[0] != "ok":
        sys.exit("cron_cli: %s" % p.stdout)
    return int(parts[1]), int(parts[2]) / 1e9


def croniter_time(expr, zone, fires):
    from croniter import croniter
    from zoneinfo import ZoneInfo
    it = croniter(expr, datetime.fromtimestamp(START, ZoneInfo(zone)))
    t0 = time.perf_counter()
    last = 0
    for _ in range(fires):
        last = it.get_next(float)
    return int(last), time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", default=os.path.join(REPO, "build/tests/diff/cron/cron_cli"))
    ap.add_argument("--fires", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    try:
        import croniter  # noqa: F401
    except ImportError:
        sys.exit("python3-croniter is needed: run this with /usr/bin/python3 "
                 "(scripts/bootstrap.sh --test installs it)")
    if not os.access(args.cli, os.X_OK):
        sys.exit("%s not found: build first (ninja -C build)" % args.cli)
    print("next fire times: %d successive fires from 2024-01-01, best of %d rounds"
          % (args.fires, args.rounds))
    print("%-22s %-20s %14s %14s %8s" % ("expression", "zone", "grace fires/s",
                                         "croniter/s", "ratio"))
    ratios = []
    for expr, zone in CASES:
        # Yearly-ish schedules reach year 9999 quickly: fewer fires.
        n = args.fires if "29 2" not in expr else min(args.fires, 1500)
        g = min(grace(args.cli, expr, zone, n)[1] for _ in range(args.rounds))
        c = min(croniter_time(expr, zone, n)[1] for _ in range(args.rounds))
        ratios.append(c / g)
        print("%-22s %-20s %14.0f %14.0f %7.0fx" % (expr, zone, n / g, n / c, c / g))
    ratios.sort()
    print("median ratio (croniter time / Grace time): %.0fx" % ratios[len(ratios) // 2])
    p = subprocess.run([args.cli], input="L\tEurope/Berlin\tAmerica/New_York\t500000\n",
                       capture_output=True, text=True, check=True)
    ours, glibc, switched = (float(x) for x in p.stdout.split()[1:4])
    print("UTC offset at an instant (random instants 1970-2100), ns per call:")
    print("  Grace tz_offset_at %.0f, glibc localtime_r (one zone) %.0f, "
          "localtime_r with TZ switched each call %.0f" % (ours, glibc, switched))


if __name__ == "__main__":
    main()
