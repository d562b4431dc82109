#!/usr/bin/env python3
"""Executor benchmark: job start to first output, Grace against its peers, same run.

    python3 bench/executor_bench.py [--grace build/grace] [--samples 200] [--rounds 3]

One latency, three (or four) ways, each from the moment the client asks
until it has read the job's first byte of output ("hi\\n" from /bin/echo):

  * executor: POST /jobs to the executor kernel (its own port, with the
    internal token, as the scheduler calls it), then GET /jobs/ID/output
    (SSE) on a second keep-alive connection until `event: stdout`. This
    is the whole path: the spec checked, the job stored in SQLite, queued,
    its cgroups made, the shim forked, the limits and the seccomp filter
    applied, the program exec'd as the jobs user, its output read, stored
    and pushed to the subscriber.
  * executor+bwrap: the same job with "sandbox": true (bubblewrap's
    namespaces), when bwrap is installed.
  * bare: /bin/sh -c 'exec /bin/echo hi' from Python's subprocess, until
    the pipe has the byte: a bare fork/exec from a shell, nothing else.
  * systemd-run: systemd-run --scope --quiet --collect /bin/echo hi, where
    systemd is the init (it needs a running systemd: PID 1 and
    /run/systemd/system); otherwise the report says why it is missing.

Rounds alternate the ways so drift on the machine hits all alike; the
report gives p50 and p90 of each, and the ratios of the medians against
the executor. Standard library only. grace serve runs on a port offset
clear of 8000-8149 and of the test suite's offsets, and is stopped by pid.
"""

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import benchkit
from benchkit import HOST, TOKEN_HEADER, port_free, stop

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
EXEC_PORT = 8121
# 8121+N stays below 32768 (the ephemeral range); clear of the test suite's
# offsets (multiples of 200 up to 24000) and bus_bench.py's.
OFFSETS = [24310, 24410, 24510, 24610]
ECHO = "/bin/echo"


def log(msg):
    print("[executor-bench %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr,
          flush=True)


def start_grace(tmp, grace, offset):
    return benchkit.start_grace(
        tmp, grace, offset,
        "[grace]\nlog_level = warn\n\n[policy]\nauthorizer = table\n\n"
        "[executor]\nhistory_max = 100000\n"
        "queue_max = 1000\n\n[kernel.executor]\n", EXEC_PORT + offset, "/stats",
        "the executor kernel")


class Executor:
    """Two keep-alive connections: one submits, one reads the output stream."""

    def __init__(self, port, token):
        self.port, self.token = port, token
        self.submit = http.client.HTTPConnection(HOST, port, timeout=30)
        self.stream = socket.create_connection((HOST, port), timeout=30)

    def close(self):
        self.submit.close()
        self.stream.close()

    def containment(self):
        self.submit.request("GET", "/containment", headers={TOKEN_HEADER: self.token})
        return json.loads(self.submit.getresponse().read())

    def one(self, sandbox):
        body = {"argv": [ECHO, "hi"], "timeout_ms": 10000}
        if sandbox:
            body["sandbox"] = True
        text = json.dumps(body)
        t0 = time.perf_counter()
        self.submit.request("POST", "/jobs", text, headers={
            TOKEN_HEADER: self.token, "Content-Type": "application/json"})
        r = self.submit.getresponse()
        job = json.loads(r.read())
        if r.status != 201:
            raise RuntimeError("POST /jobs: %d %s" % (r.status, job))
        self.stream.sendall(("GET /jobs/%s/output HTTP/1.1\r\nHost: x\r\n%s: %s\r\n\r\n"
                             % (job["id"], TOKEN_HEADER, self.token)).encode())
        buf = b""
        while b"event: stdout" not in buf:
            chunk = self.stream.recv(65536)
            if not chunk:
                raise RuntimeError("the output stream closed early")
            buf += chunk
        dt = time.perf_counter() - t0
        # Read the rest of this response (to its last chunk) so the
        # connection is ready for the next job.
        while not buf.endswith(b"0\r\n\r\n"):
            chunk = self.stream.recv(65536)
            if not chunk:
                raise RuntimeError("the output stream closed early")
            buf += chunk
        if b'"state":"succeeded"' not in buf:
            raise RuntimeError("the job did not succeed: %r" % buf[buf.find(b"event: end"):][:700])
        return dt


def first_byte(argv):
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    b = p.stdout.read(1)
    dt = time.perf_counter() - t0
    p.stdout.read()
    p.wait()
    if b != b"h" or p.returncode != 0:
        raise RuntimeError("%s: exit %s, first byte %r" % (argv[0], p.returncode, b))
    return dt


def systemd_run_why_not():
    exe = shutil.which("systemd-run")
    if not exe:
        return None, "systemd-run is not installed"
    if not os.path.isdir("/run/systemd/system"):
        return None, "systemd is not the init here (no /run/systemd/system), so " \
                     "systemd-run --scope cannot run"
    argv = [exe, "--scope", "--quiet", "--collect", ECHO, "hi"]
    r = subprocess.run(argv, capture_output=True, timeout=30)
    if r.returncode != 0:
        return None, "systemd-run --scope failed: %s" % r.stderr.decode(errors="replace").strip()
    return argv, None


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--grace", default=os.path.join(REPO, "build", "grace"))
    ap.add_argument("--samples", type=int, default=200, help="per way, in all rounds")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--port-offset", type=int, default=None)
    a = ap.parse_args()
    grace = os.path.abspath(a.grace)
    if not os.access(grace, os.X_OK):
        sys.exit("no grace binary at %s (ninja -C build)" % grace)
    offset = a.port_offset
    if offset is None:
        offset = next((o for o in OFFSETS if port_free(8000 + o) and port_free(EXEC_PORT + o)),
                      None)
        if offset is None:
            sys.exit("no free port offset in %s" % OFFSETS)
    sd_argv, sd_why = systemd_run_why_not()
    tmp = tempfile.mkdtemp(prefix="grace-executor-bench-")
    p = None
    ok = False
    try:
        log("grace serve (executor only) on offset %d, in %s" % (offset, tmp))
        p, port, token = start_grace(tmp, grace, offset)
        ex = Executor(port, token)
        host = ex.containment()
        ways = {"executor": lambda: ex.one(False),
                "bare sh -c exec": lambda: first_byte(["/bin/sh", "-c", "exec %s hi" % ECHO])}
        if host.get("bubblewrap"):
            ways["executor+bwrap"] = lambda: ex.one(True)
        if sd_argv:
            ways["systemd-run --scope"] = lambda: first_byte(sd_argv)
        for f in ways.values():  # warm-up: page cache, SQLite, pools
            for _ in range(5):
                f()
        times = {k: [] for k in ways}
        per_round = max(1, a.samples // a.rounds)
        for rnd in range(a.rounds):
            log("round %d of %d" % (rnd + 1, a.rounds))
            for _ in range(per_round):
                for k, f in ways.items():  # interleaved: drift hits every way alike
                    times[k].append(f())
        ex.close()
        med = {k: statistics.median(v) for k, v in times.items()}
        lines = ["executor job start to first output: %d samples per way, %d rounds, "
                 "interleaved" % (per_round * a.rounds, a.rounds),
                 "containment here: cgroup2 %s (memory %s, pids %s), cgroup1 memory %s "
                 "pids %s, jobs user %s, seccomp %s, bubblewrap %s" % (
                     host["cgroup2"]["usable"], host["cgroup2"]["memory"],
                     host["cgroup2"]["pids"], host["cgroup1"]["memory"],
                     host["cgroup1"]["pids"], host["jobs_user"], host["seccomp"],
                     host.get("bubblewrap") or "none"),
                 "%-22s %10s %10s %22s" % ("way", "p50 ms", "p90 ms", "executor p50 / this p50")]
        for k, v in times.items():
            lines.append("%-22s %10.2f %10.2f %21.1fx" % (k, med[k] * 1e3, pct(v, 90) * 1e3,
                                                          med["executor"] / med[k]))
        if not sd_argv:
            lines.append("systemd-run --scope: not measured: %s" % sd_why)
        print("\n".join(lines))
        ok = True
    except KeyboardInterrupt:
        log("interrupted")
    finally:
        if p is not None:
            stop(p)
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log("kept " + tmp)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
