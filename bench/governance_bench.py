#!/usr/bin/env python3
"""Governance benchmark: approvals per second through :8000 (issue 12),
against a durable write of the same size through the same gateway in the
same run.

One `grace serve` (test harness: a temporary data directory, ports of its
own) with the governance kernel (rule "1 admin": each approval meets the
rule, so each one commits the vote, the state change, the intent and two
history rows in one transaction, then the main process runs the action)
and the message bus. N change requests are opened first (not timed); then
C clients on keep-alive connections approve them all, as a second admin,
and the same C clients publish N messages to /bus/publish (each an fsync'd
SQLite write behind the bus's group commit): the peer. Rounds alternate;
the report gives each figure's median and the ratio.

    python3 bench/governance_bench.py build [--n 2000] [--clients 4] [--rounds 3]

Every process started here is stopped here (the harness, by pid).
"""

import argparse
import http.client
import json
import os
import statistics
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "blackbox"))

PASSWORD = "correct horse battery staple 12"


def run_clients(port, token, jobs, clients):
    """Runs (method, path, body) jobs on `clients` keep-alive connections;
    returns (seconds, failures)."""
    chunks = [jobs[i::clients] for i in range(clients)]
    fails = [0] * clients
    start = threading.Barrier(clients + 1)

    def worker(i):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        h = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
        start.wait()
        for method, path, body in chunks[i]:
            c.request(method, path, body=json.dumps(body), headers=h)
            r = c.getresponse()
            r.read()
            if r.status >= 300:
                fails[i] += 1
        c.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, sum(fails)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build", nargs="?", default="build")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault("GRACE_BIN", os.path.abspath(os.path.join(args.build, "grace")))
    from harness import GraceServer  # after GRACE_BIN is set

    g = GraceServer(kernels={"governance": {}, "message_bus": {}},
                    config={"grace": {"log_level": "warn"},
                            "governance": {"default_rule": "1 admin", "poll_ms": 50}})
    try:
        g.start()
        g.create_user("bob", PASSWORD, "admin")
        ann, bob = g.login(), g.login("bob", PASSWORD)
        gov, bus = [], []
        for r in range(args.rounds):
            ids = []
            for i in range(args.n):
                st, _, out = g.http("POST", "/governance/requests",
                                    {"action": "key.delete", "params": {"name": "b%d-%d" % (r, i)}})
                if st != 201:
                    sys.exit("open: %s %r" % (st, out))
                ids.append(out["id"])
            secs, fails = run_clients(g.api_port, bob, [
                ("POST", "/governance/requests/%d/approve" % i, {}) for i in ids], args.clients)
            if fails:
                sys.exit("%d approvals failed" % fails)
            gov.append(args.n / secs)
            secs, fails = run_clients(g.api_port, ann, [
                ("POST", "/bus/publish", {"subject": "bench.gov", "payload": {"i": i}})
                for i in range(args.n)], args.clients)
            if fails:
                sys.exit("%d publishes failed" % fails)
            bus.append(args.n / secs)
            print("round %d: %.0f approvals/s, %.0f publishes/s" % (r + 1, gov[-1], bus[-1]),
                  file=sys.stderr)
        a, b = statistics.median(gov), statistics.median(bus)
        print("governance: %d approvals (each meeting its rule) by %d clients through :8000"
              % (args.n, args.clients))
        print("  approvals/s  %8.0f" % a)
        print("  bus publish/s %7.0f  (peer: a durable write through the same gateway)" % b)
        print("  ratio         %7.2f" % (a / b))
    finally:
        g.close()


if __name__ == "__main__":
    main()
