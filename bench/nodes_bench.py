#!/usr/bin/env python3
"""Grace on two hosts: the gateway's throughput to a kernel on another node
against a local one, in the same run (issue 20's bench).

Two network namespaces joined by a veth pair (as tests/blackbox/
test_nodes_netns.py makes them), one `grace serve` node in each: the
message bus on node a, the immutable log on node b. From inside node a's
namespace wrk asks, with an admin's session, for

  local:   /kernels/message_bus/health   (a's gateway -> a's kernel)
  remote:  /kernels/immutable_log/health (a's gateway -> relay -> mutual TLS
                                           over the veth -> b's kernel)

and, without the gateway, the relay against the kernel's own port:

  relay:   a's relay port for the immutable log (-> TLS -> b's kernel)
  direct:  b's kernel port, from inside b (plain loopback)

Each kernel's GET /health is the same SDK route, so the difference is the
hop. Needs root (ip netns) and wrk. Every process started here is stopped
here, by pid (the test harness's GraceServer), and the namespaces are
deleted at the end.

    sudo python3 bench/nodes_bench.py [--seconds 10] [--conns 32] [--rounds 3]
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "blackbox"))

import test_nodes_netns as tn  # noqa: E402  (the namespaces and the two nodes)


def wrk(ns, url, seconds, conns, headers):
    argv = ["ip", "netns", "exec", ns, "wrk", "-t2", "-c%d" % conns, "-d%ds" % seconds,
            "--latency", url]
    for h in headers:
        argv[6:6] = ["-H", h]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {}
    for p in ("50%", "99%"):
        m = re.search(r"\s%s\s+([\d.]+)(us|ms|s)" % re.escape(p), out)
        v = float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
        lat[p] = v
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, lat, int(non2xx.group(1)) if non2xx else 0


class Bench(tn.TwoHosts):
    """The test's set-up and tear-down, and one measurement instead of its story."""
    args = None

    def test_the_whole_story(self):
        a = self.args
        token = self.a.api_headers["Authorization"]
        auth = ["Authorization: " + token]
        api = "http://127.0.0.1:%d" % self.a.api_port
        relay_port = self.on_a(lambda: self.a.health()["kernels"]["immutable_log"]["port"])
        kport = self.on_b(lambda: self.b.health()["kernels"]["immutable_log"]["port"])
        self.on_a(self.a.wait_for, lambda: self.a.http(
            "GET", "/kernels/immutable_log/health")[0] == 200, 20, 0.1, "remote health")
        cases = [
            ("local (gateway -> a's kernel)", self.ns[0], api + "/kernels/message_bus/health",
             auth),
            ("remote (gateway -> relay -> TLS -> b's kernel)", self.ns[0],
             api + "/kernels/immutable_log/health", auth),
            ("relay alone (a's relay -> TLS -> b's kernel)", self.ns[0],
             "http://127.0.0.1:%d/health" % relay_port, []),
            ("direct (b's kernel, inside b)", self.ns[1], "http://127.0.0.1:%d/health" % kport,
             []),
        ]
        results = {c[0]: [] for c in cases}
        for r in range(a.rounds):
            for name, ns, url, hdrs in cases:
                rps, lat, bad = wrk(ns, url, a.seconds, a.conns, hdrs)
                if bad:
                    raise AssertionError("%s: %d answers not 2xx" % (name, bad))
                results[name].append((rps, lat["50%"], lat["99%"]))
                print("round %d  %-48s %9.0f req/s  p50 %6.2f ms  p99 %6.2f ms" %
                      (r + 1, name, rps, lat["50%"], lat["99%"]), flush=True)
        med = {n: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v),
                   statistics.median(x[2] for x in v)) for n, v in results.items()}
        print("\nmedians of %d rounds, %d s each, %d connections, wrk in node a's namespace:"
              % (a.rounds, a.seconds, a.conns))
        for n, (rps, p50, p99) in med.items():
            print("  %-48s %9.0f req/s  p50 %6.2f ms  p99 %6.2f ms" % (n, rps, p50, p99))
        names = [c[0] for c in cases]
        print("  remote / local throughput: %.2f" % (med[names[1]][0] / med[names[0]][0]))
        print("  relay / direct throughput: %.2f" % (med[names[2]][0] / med[names[3]][0]))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--conns", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    if not shutil.which("wrk"):
        sys.exit("nodes_bench: wrk is not installed (scripts/bootstrap.sh --bench)")
    reason = tn.netns_reason()
    if reason:
        sys.exit("nodes_bench: " + reason)
    Bench.args = a
    import unittest
    suite = unittest.TestLoader().loadTestsFromTestCase(Bench)
    res = unittest.TextTestRunner(verbosity=0).run(suite)
    sys.exit(0 if res.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
