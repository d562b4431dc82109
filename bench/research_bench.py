#!/usr/bin/env python3
"""The research kernel's time to an answer on a seeded incident, against
gathering the same evidence by hand with curl in the same run (issue 17).

Seeds the incident of tests/blackbox/test_research.py: the immutable log
killed three times while the audit trail writes, then asks "why did audit
stop appending?" and times, per round:

  research  POST /research/investigations, then GET ...?wait_ms= until done
            (no model: the rules' answer; every source, the proofs)
  by hand   the calls an operator makes for the same evidence, one curl
            each, in sequence: the audit events of the window, the log's
            tree head, the three PromQL queries, the inclusion proofs of
            three kill events, the self_healing and librarian searches

and reports the medians and the ratio research / by hand. Uses
tests/blackbox/harness.py to start `grace serve` (audit, immutable_log,
metrics, research, librarian) on a port offset of its own and stops it.

    python3 bench/research_bench.py [--rounds 10]
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from urllib.parse import quote

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "blackbox"))

from harness import GraceServer  # noqa: E402

KERNELS = {"audit": {}, "immutable_log": {}, "metrics": {}, "research": {}, "librarian": {}}
QUESTION = "why did audit stop appending?"


def seed(g):
    for i in range(3):
        old = g.kernel("immutable_log")["pid"]
        os.kill(old, signal.SIGKILL)
        g.http("POST", "/kernels/audit/events",
               {"actor": "bench", "action": "deploy", "resource": "svc/%d" % i, "outcome": "ok"})
        g.wait_kernel("immutable_log", lambda k: k["state"] == "ready" and k["pid"] != old,
                      timeout=30)
    time.sleep(2.5)  # a scrape after the kills, and the outbox's delivery


def by_research(g):
    t0 = time.monotonic()
    st, _, started = g.http("POST", "/research/investigations", {"question": QUESTION})
    assert st == 202, (st, started)
    while True:
        st, _, inv = g.http("GET", "/research/investigations/%d?wait_ms=10000" % started["id"],
                            timeout=20)
        assert st == 200, (st, inv)
        if inv["state"] == "done":
            return time.monotonic() - t0, inv


def curl(g, path):
    token = g.auth_headers()["Authorization"]
    out = subprocess.run(["curl", "-s", "-H", "Authorization: " + token,
                          "http://127.0.0.1:%d%s" % (g.api_port, path)],
                         capture_output=True, check=True, timeout=30).stdout
    try:
        return json.loads(out)
    except ValueError:
        return None


def by_hand(g):
    t0 = time.monotonic()
    now = int(time.time() * 1000)
    since = now - 900000
    ev = curl(g, "/kernels/audit/events?since=%d&until=%d&limit=1000" % (since, now))
    curl(g, "/kernels/immutable_log/sth")
    for q in ('min_over_time(grace_kernel_up{kernel=~"audit|immutable_log"}[900s])',
              'increase(grace_kernel_restarts_total{kernel=~"audit|immutable_log"}[900s])',
              'min_over_time(up{job="grace",instance=~"audit|immutable_log"}[900s])'):
        curl(g, "/prometheus/api/v1/query?query=" + quote(q))
    kills = [e["id"] for e in (ev or {}).get("events", [])
             if e["action"] == "kernel.state" and e["outcome"] != "ready"
             and "signal" in str((e.get("details") or {}).get("last_exit"))][:3]
    for i in kills:
        curl(g, "/kernels/audit/events/%d/proof" % i)
    curl(g, "/kernels/self_healing/incidents?kernel=audit")
    curl(g, "/librarian/search?query=" + quote(QUESTION))
    return time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    with GraceServer(kernels=KERNELS,
                     config={"metrics": {"scrape_interval_ms": 1000,
                                         "scrape_timeout_ms": 900}}) as g:
        seed(g)
        rs, hand = [], []
        top = None
        for _ in range(args.rounds):
            t, inv = by_research(g)
            rs.append(t)
            top = inv["hypotheses"][0]["title"] if inv["hypotheses"] else None
            hand.append(by_hand(g))
        r, h = statistics.median(rs), statistics.median(hand)
        print("rounds: %d; top hypothesis: %s" % (args.rounds, top))
        print("| path | median s | min s | max s |")
        print("|---|---|---|---|")
        print("| research (one investigation) | %.3f | %.3f | %.3f |" % (r, min(rs), max(rs)))
        print("| by hand (curl, in sequence) | %.3f | %.3f | %.3f |" % (h, min(hand), max(hand)))
        print("research / by hand: %.2f" % (r / h))


if __name__ == "__main__":
    main()
