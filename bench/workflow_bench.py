#!/usr/bin/python3
"""Workflow benchmark: steps per second of the workflow kernel, against the
same steps driven by a shell loop of curl calls, same machine, same run.

    python3 bench/workflow_bench.py [--steps 1000] [--width 200] [--rounds 2]

Each step is one HTTP call to a small loopback server (the test's
CountingServer, tests/blackbox/wf_helper.py): for the workflow, a `call`
task, which the kernel commits to its history (SQLite, WAL) before and
after the call, with an Idempotency-Key; for the peer, one `curl` process
per call from `sh`. Three runs:

  sequential  a `for` loop of --steps call tasks, one after the other,
              against `for i in $(seq N); do curl ...; done`
  fork        a `fork` of --width branches of one call each, against the
              same calls started by a shell loop in the background (`&`)
              and a `wait`
  pure        --steps `set` tasks (no I/O: the interpreter and its commits)

The workflow's time is from POST /runs to the run seen completed (polled
every 20 ms); the shell's is the loop's wall time. Each figure is the best
of --rounds. grace serve runs through the black-box harness (its own port
offset and data directory), with the workflow and message_bus kernels.
"""

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "blackbox"))
from harness import GraceServer  # noqa: E402
from wf_helper import CountingServer  # noqa: E402


def doc(name, tasks):
    return {"document": {"dsl": "1.0.0", "namespace": "bench", "name": name, "version": "1"},
            "do": tasks}


def run_once(g, name, timeout=600):
    t0 = time.perf_counter()
    st, _, r = g.http("POST", "/workflow/runs", {"definition": name, "input": {}})
    assert st == 201, r
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st, _, v = g.http("GET", "/workflow/runs/" + r["id"])
        if v["status"] != "running":
            assert v["status"] == "completed", v
            return time.perf_counter() - t0, v["events"]
        time.sleep(0.02)
    sys.exit("run %s did not finish" % r["id"])


def shell(script):
    t0 = time.perf_counter()
    subprocess.run(["sh", "-c", script], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--width", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    srv = CountingServer()
    url = srv.url("/echo")
    curl = "curl -s -o /dev/null -X POST -H 'Content-Type: application/json' -d '{\"i\":'$i'}' " + url
    g = GraceServer(kernels={"workflow": {}, "message_bus": {}})
    g.start()
    try:
        call = {"call": "http", "with": {"method": "post", "endpoint": url, "body": {"i": "${ $i }"}}}
        defs = {
            "seq": doc("seq", [{"loop": {"for": {"each": "i", "in": "${ [range(0; %d)] }" % a.steps},
                                         "do": [{"step": call}]}}]),
            "fork": doc("fork", [{"wide": {"fork": {"branches": [
                {"b%d" % i: {"call": "http", "with": {"method": "post", "endpoint": url,
                                                      "body": {"i": i}}}} for i in range(a.width)]}}}]),
            "pure": doc("pure", [{"loop": {"for": {"each": "i", "in": "${ [range(0; %d)] }" % a.steps},
                                           "do": [{"step": {"set": {"i": "${ $i }"}}}]}}]),
        }
        for d in defs.values():
            st, _, out = g.http("POST", "/workflow/definitions", d, timeout=120)
            assert st == 201, out
        best = {}
        for r in range(a.rounds):
            for name in defs:
                t, events = run_once(g, name)
                best[name] = min(best.get(name, (1e9, 0)), (t, events))
                print("round %d %s: %.3f s, %d events" % (r + 1, name, t, events), file=sys.stderr)
            t = shell("for i in $(seq %d); do %s; done" % (a.steps, curl))
            best["sh-seq"] = min(best.get("sh-seq", (1e9, 0)), (t, 0))
            t = shell("for i in $(seq %d); do %s & done; wait" % (a.width, curl))
            best["sh-fork"] = min(best.get("sh-fork", (1e9, 0)), (t, 0))
            print("round %d shell: seq %.3f s, fork %.3f s" % (r + 1, best["sh-seq"][0], best["sh-fork"][0]),
                  file=sys.stderr)
    finally:
        g.close()
        srv.close()
    n, w = a.steps, a.width
    ws, ss = n / best["seq"][0], n / best["sh-seq"][0]
    wf, sf = w / best["fork"][0], w / best["sh-fork"][0]
    print("workflow bench (best of %d; steps are HTTP calls to a loopback server)" % a.rounds)
    print("  sequential %5d calls: workflow %8.0f steps/s   shell+curl %8.0f steps/s   ratio %.2f"
          % (n, ws, ss, ws / ss))
    print("  fork       %5d wide : workflow %8.0f steps/s   shell+curl& %7.0f steps/s   ratio %.2f"
          % (w, wf, sf, wf / sf))
    print("  pure set   %5d steps: workflow %8.0f steps/s   (no I/O: interpreter and commits)"
          % (n, n / best["pure"][0]))


if __name__ == "__main__":
    main()
