#!/usr/bin/env python3
"""coding_agent benchmark: a patch applied and tested, the kernel against the same steps by hand.

    python3 bench/coding_agent_bench.py [--grace build/grace] [--samples 20] [--rounds 3]

One latency, two ways, on the same small repository (a function with a
bug and its test) in the same run:

  * coding_agent: POST /tasks to the kernel (its own port, with the
    internal token) with a unified diff and the test command, then GET
    /tasks/ID?wait_ms= until it ends: the repository checked, a worktree
    and branch made, the tests run before as an executor job (the executor
    stores, queues, contains and runs it as the jobs user), git apply
    --check and git apply, the diff, the tests run after, every step stored
    and sent to the audit trail. The task is deleted (worktree and branch)
    outside the timing.
  * by hand: the same steps from Python's subprocess: git worktree add -b,
    the test command, git apply --check, git apply, git diff, the test
    command again (no sandbox, no records). Its worktree is removed outside
    the timing.

Rounds alternate the ways; the report gives p50 and p90 of each and the
ratio of the medians (the kernel's overhead). Standard library only. grace
serve runs on a port offset clear of 8000-8149 and of the test suite's
offsets, and is stopped by pid.
"""

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import benchkit
from benchkit import HOST, TOKEN_HEADER, port_free, stop

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CA_PORT = 8132
OFFSETS = [24330, 24430, 24530, 24630]
GIT = "/usr/bin/git"
PY = "/usr/bin/python3"
CALC = "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n"
TESTS = ("from calc import add, mul\nassert add(2, 3) == 5, add(2, 3)\n"
         "assert mul(2, 3) == 6\nprint('ok')\n")
DIFF = ("--- a/calc.py\n+++ b/calc.py\n@@ -1,4 +1,4 @@\n def add(a, b):\n"
        "-    return a - b\n+    return a + b\n \n \n")
GIT_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@l",
           "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@l"}


def log(msg):
    print("[coding-agent-bench %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr,
          flush=True)


def git(*args, cwd=None):
    subprocess.run([GIT] + list(args), cwd=cwd, check=True, env=GIT_ENV,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_repo(ws):
    repo = os.path.join(ws, "calc")
    os.mkdir(repo)
    with open(os.path.join(repo, "calc.py"), "w") as f:
        f.write(CALC)
    with open(os.path.join(repo, "test_calc.py"), "w") as f:
        f.write(TESTS)
    git("init", "-q", "-b", "main", cwd=repo)
    git("add", "-A", cwd=repo)
    git("commit", "-qm", "calc", cwd=repo)
    return repo


def start_grace(tmp, grace, offset, ws):
    return benchkit.start_grace(
        tmp, grace, offset,
        "[grace]\nlog_level = warn\n\n[policy]\nauthorizer = table\n\n"
        "[executor]\nhistory_max = 100000\n"
        "queue_max = 1000\ndir_root = %s\n\n[coding_agent]\nworkspace_root = %s\n\n"
        "[kernel.executor]\n\n[kernel.coding_agent]\n\n[kernel.audit]\n\n"
        "[kernel.immutable_log]\n" % (ws, ws), CA_PORT + offset, "/tasks",
        "the coding_agent kernel")


class Kernel:
    def __init__(self, port, token):
        self.c = http.client.HTTPConnection(HOST, port, timeout=60)
        self.h = {TOKEN_HEADER: token, "Content-Type": "application/json"}

    def req(self, method, path, body=None):
        self.c.request(method, path, json.dumps(body) if body is not None else None,
                       headers=self.h)
        r = self.c.getresponse()
        return r.status, json.loads(r.read() or b"null")

    def one(self):
        t0 = time.perf_counter()
        st, t = self.req("POST", "/tasks", {"repo": "calc", "test_command": [PY, "test_calc.py"],
                                            "patch": DIFF})
        if st != 202:
            raise RuntimeError("POST /tasks: %d %s" % (st, t))
        while t["state"] not in ("done", "failed"):
            st, t = self.req("GET", "/tasks/%s?wait_ms=30000" % t["id"])
        dt = time.perf_counter() - t0
        if not t.get("resolved"):
            raise RuntimeError("the task did not resolve: %s" % t.get("error"))
        st, d = self.req("DELETE", "/tasks/" + t["id"])
        if st != 200:
            raise RuntimeError("DELETE: %d %s" % (st, d))
        return dt


def by_hand(repo, wt_root, n):
    wt = os.path.join(wt_root, "hand-%d" % n)
    branch = "bench/hand-%d" % n
    patch = os.path.join(wt_root, "hand.patch")
    with open(patch, "w") as f:
        f.write(DIFF)
    t0 = time.perf_counter()
    git("-C", repo, "worktree", "add", "--quiet", "-b", branch, wt, "HEAD")
    before = subprocess.run([PY, "test_calc.py"], cwd=wt, capture_output=True)
    git("-C", wt, "apply", "--check", patch)
    git("-C", wt, "apply", patch)
    subprocess.run([GIT, "-C", wt, "diff"], env=GIT_ENV, capture_output=True, check=True)
    after = subprocess.run([PY, "test_calc.py"], cwd=wt, capture_output=True)
    dt = time.perf_counter() - t0
    if before.returncode == 0 or after.returncode != 0:
        raise RuntimeError("by hand: before %d, after %d" % (before.returncode, after.returncode))
    git("-C", repo, "worktree", "remove", "--force", wt)
    git("-C", repo, "branch", "-D", branch)
    return dt


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--grace", default=os.path.join(REPO, "build", "grace"))
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    offset = next((o for o in OFFSETS if port_free(CA_PORT + o) and port_free(8000 + o)), None)
    if offset is None:
        sys.exit("no free port offset")
    tmp = tempfile.mkdtemp(prefix="grace-ca-bench-")
    ws = os.path.join(tmp, "ws")
    os.mkdir(ws)
    os.chmod(tmp, 0o755)
    os.chmod(ws, 0o755)
    repo = make_repo(ws)
    hand_root = os.path.join(ws, "hand")
    os.mkdir(hand_root)
    p = None
    try:
        log("starting grace serve (offset %d)" % offset)
        p, port, token = start_grace(tmp, args.grace, offset, ws)
        k = Kernel(port, token)
        k.one()  # warm up both ways
        by_hand(repo, hand_root, 0)
        kern, hand = [], []
        n = 1
        for r in range(args.rounds):
            log("round %d/%d" % (r + 1, args.rounds))
            for _ in range(args.samples):
                kern.append(k.one())
                hand.append(by_hand(repo, hand_root, n))
                n += 1
        mk, mh = statistics.median(kern), statistics.median(hand)
        print("coding_agent apply-and-test (%d samples each, interleaved)" % len(kern))
        print("  %-14s p50 %7.1f ms  p90 %7.1f ms" % ("coding_agent", mk * 1e3, pct(kern, 0.9) * 1e3))
        print("  %-14s p50 %7.1f ms  p90 %7.1f ms" % ("by hand", mh * 1e3, pct(hand, 0.9) * 1e3))
        print("  coding_agent / by hand (medians): %.2fx" % (mk / mh))
    finally:
        if p:
            stop(p)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
