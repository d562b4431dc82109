#!/usr/bin/env python3
"""Crash to answering again: kill -9 of `grace kernel librarian`, then the
first GET /health answered 200 by the new process, on a fresh connection.

Four supervisors restart the same kernel on the same data directory, in the
same run, in rounds whose order rotates (so drift in the machine's load hits
them alike):

  grace          `grace serve` with its standby (standby = 1, the default)
  grace-spawn    `grace serve` with standby = 0: fork, exec, link, start
  s6             s6-supervise, readiness through s6-notifyoncheck (without a
                 readiness notification s6 waits a second before each restart)
  runsv          runit's runsv

Under s6 and runsv the kernel binds its own port at each start, as those
supervisors hold no sockets; Grace holds it across the crash. A prober
thread opens a fresh connection every --probe-interval from just before each
kill until just after the answer and counts refusals, as does the measuring
loop. Standby cost (RSS, PSS, private memory, CPU to get to waiting) is
measured in the same run. Everything started here is stopped by pid.

Run: python3 bench/restart_bench.py BUILD_DIR [--rounds 5] [--kills 10]
(see bench/README.md). Needs s6 and runit: scripts/bootstrap.sh --bench.
"""

import argparse
import hashlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import grace_bench as gb
from grace_bench import (HOST, PROCS, REPO, BenchError, Grace, Report, clean_env, get_json,
                         health_once, log, now, pct, wait_ports_free)

KERNEL = "librarian"
SETUPS = ["grace", "grace-spawn", "s6", "runsv"]
LABELS = {
    "grace": "grace (standby takes over)",
    "grace-spawn": "grace, standby = 0 (fork+exec)",
    "s6": "s6-supervise + s6-notifyoncheck",
    "runsv": "runit runsv",
}


def tool(name):
    for d in os.environ.get("PATH", "").split(":") + ["/usr/bin", "/usr/sbin", "/sbin"]:
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    raise BenchError(f"{name} not found (scripts/bootstrap.sh --bench installs s6 and runit)")


def write_config(src, dst, standby, kernels):
    """etc/grace.ini with only the kernel under test enabled (a section per
    kernel, as the ini may list none) and `standby` in [defaults]."""
    others = {n: {"enabled": "false"} for n, _ in kernels if n != KERNEL}
    gb.write_bench_config(src, dst, 1000, kernel_extra=others, kernels=kernels)
    out, section = [], None
    for line in open(dst):
        if line.lstrip().startswith("["):
            section = line.strip()[1:-1]
            out.append(line)
            if section == "defaults":
                out.append(f"standby = {standby} ; restart_bench\n")
            continue
        if section == "defaults" and line.split("=", 1)[0].strip() == "standby":
            continue
        out.append(line)
    with open(dst, "w") as f:
        f.writelines(out)


def mem_of(pid):
    """(RSS, PSS, private) in KiB from /proc/PID/smaps_rollup."""
    d = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            p = line.split()
            if p and p[0].endswith(":") and len(p) >= 2 and p[1].isdigit():
                d[p[0][:-1]] = int(p[1])
    return d.get("Rss", 0), d.get("Pss", 0), d.get("Private_Clean", 0) + d.get("Private_Dirty", 0)


def cpu_ns(pid):
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0])


class Supervised:
    """One supervisor running the kernel: start(), pid(), standby(), stop()."""

    def __init__(self, kind, a, tmp):
        self.kind, self.a, self.tmp = kind, a, tmp
        self.port = a.kernel_port + a.offset
        self.proc = self.grace = None

    def start(self):
        a, tmp = self.a, self.tmp
        logf = open(os.path.join(tmp, f"{self.kind}.log"), "ab")
        if self.kind.startswith("grace"):
            cfg = a.cfg_standby if self.kind == "grace" else a.cfg_spawn
            self.grace = Grace(a.grace, cfg, a.data, a.offset, [(KERNEL, a.kernel_port)],
                               os.path.join(tmp, f"{self.kind}.log"))
            self.grace.start()
            self.grace.wait_ready()
            return
        svc = os.path.join(tmp, f"svc-{self.kind}")
        shutil.rmtree(svc, ignore_errors=True)
        os.makedirs(os.path.join(svc, "data"))
        kernel = (f"{a.grace} kernel {KERNEL} --config {a.cfg_spawn} --data-dir {a.data} "
                  f"--port-offset {a.offset}")
        if self.kind == "s6":
            # Readiness: s6-notifyoncheck polls ./data/check (a connect to the
            # port) and writes the line s6-supervise waits for to fd 3. Every
            # 20 ms: well before the next kill, and the checks (a bash each)
            # leave the kernel's start alone.
            with open(os.path.join(svc, "notification-fd"), "w") as f:
                f.write("3\n")
            check = os.path.join(svc, "data", "check")
            with open(check, "w") as f:
                f.write(f"#!/bin/bash\nexec 5<>/dev/tcp/{HOST}/{self.port}\n")
            os.chmod(check, 0o755)
            run = f"exec {tool('s6-notifyoncheck')} -s 5 -w 20 -n 500 {kernel}"
            argv = [tool("s6-supervise"), svc]
        else:
            run = f"exec {kernel}"
            argv = [tool("runsv"), svc]
        with open(os.path.join(svc, "run"), "w") as f:
            f.write(f"#!/bin/sh\nexec 2>&1\n{run}\n")
        os.chmod(os.path.join(svc, "run"), 0o755)
        self.proc = PROCS.spawn(argv, stdout=logf, stderr=logf, env=clean_env(), cwd=svc)
        deadline = now() + 15
        while True:
            try:
                st, h = health_once(self.port)
                if st == 200:
                    PROCS.track(h["pid"])
                    return
            except OSError:
                pass
            if now() > deadline or self.proc.poll() is not None:
                raise BenchError(f"{self.kind}: the kernel never answered")
            time.sleep(0.01)

    def standby(self):
        """The waiting standby's pid (grace only), or None."""
        if self.kind != "grace":
            return None
        st, h = get_json(self.grace.api_port, "/health")
        return h["kernels"][KERNEL].get("standby_pid")

    def stop(self):
        if self.grace:
            self.grace.stop()
            self.grace = None
        if self.proc:
            # Both stop the service and leave on SIGTERM; the kernel's pid
            # was tracked, and is checked to be gone.
            PROCS.stop(self.proc, signal.SIGTERM, timeout=15)
            PROCS.reap_extra()
            self.proc = None
        wait_ports_free([self.port])


def kill_series(a, sup, kills, label, rec):
    prober = gb.RefusedCounter(sup.port, a.probe_interval)
    prober.start()
    try:
        for i in range(kills):
            # Past stable_ms (and s6's and runsv's one second), and for Grace
            # past the standby's start (stable_ms after ready).
            time.sleep(a.kill_spacing)
            st, h = health_once(sup.port)
            if st != 200:
                raise BenchError(f"{label}: /health answered {st} before kill {i + 1}")
            old = h["pid"]
            standby = sup.standby()
            if standby:
                PROCS.track(standby)
            prober.armed.set()
            time.sleep(0.002)
            t0 = now()
            os.kill(old, signal.SIGKILL)
            deadline = t0 + 15.0
            while True:
                if now() > deadline:
                    raise BenchError(f"{label}: no answer within 15 s of kill {i + 1}")
                try:
                    st, h = health_once(sup.port, timeout=10.0)
                    if st == 200 and h.get("pid") != old:
                        t1 = now()
                        break
                except ConnectionRefusedError:
                    rec["refused_loop"] += 1
                    time.sleep(0.0002)
                except (OSError, ValueError):
                    rec["resets"] += 1
                    time.sleep(0.0002)
            time.sleep(0.02)
            prober.armed.clear()
            PROCS.track(h["pid"])
            rec["times"].append(t1 - t0)
            rec["takeovers"] += standby is not None and h["pid"] == standby
            log(f"{label}: kill {len(rec['times'])}: {(t1 - t0) * 1e3:.2f} ms")
    finally:
        prober.quit = True
        prober.armed.set()
        prober.join(5)
        rec["refused_probe"] += prober.refused
        rec["probes"] += prober.attempts


def standby_cost(a, R, tmp):
    """A grace serve with only the kernel: its standby against the kernel."""
    sup = Supervised("grace", a, tmp)
    sup.start()
    try:
        deadline = now() + 15
        while not sup.standby():
            if now() > deadline:
                raise BenchError("grace: no standby within 15 s")
            time.sleep(0.05)
        time.sleep(0.3)  # past its exec and configuration
        sb = sup.standby()
        PROCS.track(sb)
        st, h = health_once(sup.port)
        k = h["pid"]
        srss, spss, spriv = mem_of(sb)
        krss, kpss, kpriv = mem_of(k)
        R(f"   standby cost (same run): RSS {srss} KiB, PSS {spss} KiB, private {spriv} KiB"
          f" per standby (the kernel itself: RSS {krss}, PSS {kpss}, private {kpriv});"
          f" CPU to get to waiting {cpu_ns(sb) / 1e6:.1f} ms")
        return spss, spriv
    finally:
        sup.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build_dir")
    env = os.environ.get
    ap.add_argument("--rounds", type=int, default=int(env("BENCH_RESTART_ROUNDS", "5")))
    ap.add_argument("--kills", type=int, default=int(env("BENCH_RESTART_KILLS", "10")),
                    help="kills per supervisor per round")
    ap.add_argument("--kill-spacing", type=float, default=1.3)
    ap.add_argument("--probe-interval", type=float, default=0.0005)
    ap.add_argument("--port-offset", type=int,
                    default=int(env("BENCH_PORT_OFFSET")) if env("BENCH_PORT_OFFSET") else None)
    ap.add_argument("--setups", default=",".join(SETUPS), help="comma list from " + ",".join(SETUPS))
    ap.add_argument("--out", default=os.path.join(gb.HERE, "results-latest.txt"))
    ap.add_argument("--append", action="store_true",
                    help="append to --out (after the other scripts' reports) instead of replacing it")
    ap.add_argument("--snapshot", help="run this copy of BUILD_DIR/grace (from run.sh)")
    ap.add_argument("--keep-tmp", action="store_true")
    a, rest = ap.parse_known_args()
    if rest:
        log(f"ignoring {' '.join(rest)}")
    setups = [s for s in SETUPS if s in a.setups.split(",")]
    for t in (["s6-supervise", "s6-notifyoncheck"] if "s6" in setups else []) + \
             (["runsv"] if "runsv" in setups else []) + (["bash"] if "s6" in setups else []):
        tool(t)

    src = os.path.abspath(os.path.join(a.build_dir, "grace"))
    if not os.access(src, os.X_OK):
        raise BenchError(f"{src}: not built")
    ini = os.path.join(REPO, "etc", "grace.ini")
    kernels = gb.read_kernels(ini, src)
    a.kernel_port = dict(kernels)[KERNEL]
    a.offset = gb.choose_offset([p for _, p in kernels], a.port_offset)
    tmp = tempfile.mkdtemp(prefix="grace-bench-restart-")
    a.grace = os.path.join(tmp, "grace")
    shutil.copy2(a.snapshot or src, a.grace)
    with open(a.grace, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()[:12]
    a.cfg_standby = os.path.join(tmp, "standby.ini")
    a.cfg_spawn = os.path.join(tmp, "spawn.ini")
    write_config(ini, a.cfg_standby, 1, kernels)
    write_config(ini, a.cfg_spawn, 0, kernels)
    a.data = os.path.join(tmp, "data")

    R = Report()
    failed = False
    recs = {s: {"times": [], "refused_loop": 0, "refused_probe": 0, "resets": 0, "probes": 0,
                "takeovers": 0} for s in setups}
    try:
        rev = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True).stdout.strip()
        R(f"Restart benchmark  {time.strftime('%Y-%m-%d %H:%M:%S %Z')}  commit {rev},"
          f" binary sha256 {sha}, {os.cpu_count()} CPUs, load average"
          f" {os.getloadavg()[0]:.2f} at start")
        R(f"   kill -9 of `grace kernel {KERNEL}` -> first /health 200 from the new pid;"
          f" {a.rounds} rounds x {a.kills} kills per supervisor, {a.kill_spacing:g} s apart,"
          f" order rotated each round")
        cost = standby_cost(a, R, tmp) if "grace" in setups else None
        for r in range(a.rounds):
            order = setups[r % len(setups):] + setups[:r % len(setups)]
            for s in order:
                sup = Supervised(s, a, tmp)
                sup.start()
                try:
                    kill_series(a, sup, a.kills, f"round {r + 1} {s}", recs[s])
                finally:
                    sup.stop()
        R()
        R(f"   {'ms':<34} {'median':>8} {'p90':>8} {'p99':>8} {'max':>8}"
          f"   refused: measuring loop, prober (of its connects)")
        for s in setups:
            ts, rc = recs[s]["times"], recs[s]
            rc["refused"] = rc["refused_loop"] + rc["refused_probe"]
            R(f"   {LABELS[s]:<34} {statistics.median(ts) * 1e3:7.2f}  {pct(ts, 90) * 1e3:7.2f} "
              f" {pct(ts, 99) * 1e3:7.2f}  {max(ts) * 1e3:7.2f}   {rc['refused_loop']},"
              f" {rc['refused_probe']} (of {rc['probes']}); resets {rc['resets']}"
              + (f"; the standby took over {rc['takeovers']}/{len(ts)}" if s == "grace" else ""))
        if "grace" in setups:
            g = statistics.median(recs["grace"]["times"])
            ratios = [f"{statistics.median(recs[s]['times']) / g:.2f}x {s}"
                      for s in setups if s != "grace"]
            R(f"   others' median / grace's median: {', '.join(ratios)}")
            met = g * 1e3 < 5 and recs["grace"]["refused"] == 0
            R(f"   target (issue 10): median < 5 ms and 0 refused: grace {g * 1e3:.2f} ms,"
              f" {recs['grace']['refused']} refused -> {'met' if met else 'NOT met'}")
            if cost:
                R(f"   standby memory: {cost[0]} KiB PSS ({cost[1]} KiB private) per kernel")
        R(f"   load average {os.getloadavg()[0]:.2f} at the end")
    except BaseException as e:
        failed = True
        R(f"BENCH FAILED: {type(e).__name__}: {e}")
        raise
    finally:
        PROCS.stop_all()
        with open(a.out, "a" if a.append else "w") as f:
            f.write(("\n" if a.append else "") + R.text())
        if not a.keep_tmp and not failed:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"logs kept in {tmp}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, gb.on_term)
    try:
        main()
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt as e:
        print(f"bench: interrupted {e}", file=sys.stderr)
        sys.exit(130)
