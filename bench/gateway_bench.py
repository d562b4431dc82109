#!/usr/bin/env python3
"""Grace benchmarks, part two: the gateway against the kernel direct and
against nginx, guardian detection time (crash and hang), and heal duration
per playbook.

Run through bench/run.sh (see bench/README.md), which runs grace_bench.py
first and this second. It reuses grace_bench.py's process handling, port
offset choice, private binary copy and report style: every process started
here (grace serve, nginx, perf) is stopped here, by pid, also when a phase
fails or the run is interrupted.
"""

import argparse
import hashlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import grace_bench as gb
from grace_bench import (HOST, PROCS, BenchError, Grace, KeepAlive, Report, log, ms, now,
                         parse_wrk, pid_alive, port_free, wrk_argv)

MY_PHASES = ["gateway", "guardian", "heal"]
# The playbooks timed by POST /network-healer/heal; reset_port is timed too,
# as the POST /kernel-ports/NAME/reset-port that undoes each rebind_port.
PLAYBOOKS = ["restart_component", "diagnose_network", "rebind_port", "clear_port"]
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Guardian settings of the kernel under test in section 6 (the issue's
# figures); the long watchdog leaves a hang to the guardian's probes.
GUARDIAN_CFG = {"health_interval_ms": 100, "health_timeout_ms": 200, "health_failures": 2,
                "watchdog_ms": 600000}
# Kernels this run sent SIGSTOP to: they get SIGCONT in any cleanup, so
# that SIGTERM can end them.
STOPPED = set()


def us(x):
    return f"{x * 1e6:.0f} us"


def ratio(x, y):
    return x / y if x and y else float("nan")


# --------------------------------------------------------------------------
# CPU time: /proc/PID/stat always, perf stat when the machine has counters

def cpu_ticks(pid):
    """utime + stime of a process (all its threads), in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        st = f.read()
    fields = st[st.rfind(")") + 2:].split()  # fields[0] is field 3 (state)
    return int(fields[11]) + int(fields[12])


def cpu_ticks_or_none(pid):
    """cpu_ticks, or None for a process gone (a kernel restarted meanwhile)."""
    try:
        return cpu_ticks(pid)
    except (OSError, IndexError, ValueError):
        return None


def children_of(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        pass
    kids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    st = f.read()
            except OSError:
                continue
            if int(st[st.rfind(")") + 2:].split()[1]) == pid:
                kids.append(int(d))
    return kids


def perf_check():
    """(usable, why not): perf stat counts instructions only where the CPU's
    counters are visible; in many VMs they are `<not supported>`."""
    if not shutil.which("perf"):
        return False, "perf not installed"
    try:
        r = subprocess.run(["perf", "stat", "-x,", "-e", "instructions", "true"],
                           capture_output=True, text=True, timeout=30,
                           stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"perf stat: {e}"
    for line in r.stderr.splitlines():
        f = line.split(",")
        if len(f) > 2 and f[2].startswith("instructions"):
            if f[0].strip().isdigit():
                return True, ""
            return False, f"`perf stat -e instructions true` says {f[0].strip()}"
    return False, f"perf stat failed: {r.stderr.strip()[:120]}"


class PerfStat:
    """perf stat -e task-clock,instructions -p PIDS for the time of one wrk."""

    def __init__(self, pids, path):
        self.path = path
        self.f = open(path, "wb")
        self.p = PROCS.spawn(["perf", "stat", "-x,", "-e", "task-clock,instructions", "-p",
                              ",".join(str(p) for p in pids)],
                             stdout=self.f, stderr=self.f)
        time.sleep(0.2)  # attached before the load starts

    def stop(self):
        PROCS.stop(self.p, signal.SIGINT, timeout=10)
        self.f.close()
        res = {}
        for line in open(self.path):
            f = line.strip().split(",")
            if len(f) > 2:
                try:
                    v = float(f[0])
                except ValueError:
                    continue
                if f[2].startswith("task-clock"):
                    res["task_clock_s"] = v / 1e3 if f[1] == "msec" else v
                elif f[2].startswith("instructions"):
                    res["instructions"] = v
        return res


# --------------------------------------------------------------------------
# nginx as the peer reverse proxy

NGINX_CONF = """\
# Written by bench/gateway_bench.py: a keep-alive reverse proxy in front of
# one Grace kernel, for comparison with the Grace gateway.
daemon off;
master_process on;
worker_processes {workers};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    upstream grace_{kernel} {{
        server 127.0.0.1:{upstream};
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        # /{kernel}/X -> the kernel's /X, as the gateway's /{kernel}/* route.
        location /{kernel}/ {{
            proxy_pass http://grace_{kernel}/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host 127.0.0.1:{upstream};
            proxy_set_header X-Request-Id $request_id;
            proxy_set_header X-Grace-Internal-Token "{token}";
        }}
        # What a kernel's /health is compared with: nginx answering alone.
        location = /ok {{
            default_type application/json;
            return 200 '{{"status":"ok"}}\n';
        }}
    }}
}}
"""

# h2o (Debian's h2o 2.2, built on the library the front-door issue named
# as a candidate): the same keep-alive reverse proxy, one thread.
H2O_CONF = """\
# Written by bench/gateway_bench.py.
user: {user}
num-threads: 1
pid-file: {dir}/h2o.pid
error-log: {dir}/error.log
proxy.timeout.keepalive: 60000
hosts:
  default:
    listen:
      host: 127.0.0.1
      port: {port}
    paths:
      "/{kernel}":
        proxy.reverse.url: "http://127.0.0.1:{upstream}/"
        proxy.header.set: "X-Grace-Internal-Token: {token}"
"""


class H2o:
    def __init__(self, tmp, port, kernel, upstream, token):
        import pwd
        self.dir = os.path.join(tmp, "h2o")
        os.makedirs(self.dir, exist_ok=True)
        self.port, self.kernel = port, kernel
        self.conf = os.path.join(self.dir, "h2o.conf")
        fd = os.open(self.conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:  # it holds the internal token
            f.write(H2O_CONF.format(user=pwd.getpwuid(os.getuid()).pw_name, dir=self.dir,
                                    kernel=kernel, upstream=upstream, port=port, token=token))
        self.proc = None

    def start(self):
        self.logf = open(os.path.join(self.dir, "stderr.log"), "wb")
        self.proc = PROCS.spawn([shutil.which("h2o"), "-c", self.conf], stdout=self.logf,
                                stderr=self.logf)
        deadline = now() + 10
        while True:
            if self.proc.poll() is not None:
                raise BenchError(f"h2o exited {self.proc.returncode}")
            try:
                st, _ = gb.get_json(self.port, f"/{self.kernel}/health", timeout=2)
                if st == 200:
                    return
            except (OSError, ValueError):
                pass
            if now() > deadline:
                raise BenchError(f"h2o on :{self.port} never answered")
            time.sleep(0.02)

    def pids(self):
        return [self.proc.pid] + children_of(self.proc.pid)

    def stop(self):
        if self.proc:
            PROCS.stop(self.proc, signal.SIGTERM, timeout=10)
            self.logf.close()
            self.proc = None


class Nginx:
    def __init__(self, tmp, port, kernel, upstream, workers, token):
        self.dir = os.path.join(tmp, "nginx")
        os.makedirs(self.dir, exist_ok=True)
        self.port, self.kernel, self.workers_n = port, kernel, workers
        self.conf = os.path.join(self.dir, "nginx.conf")
        fd = os.open(self.conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:  # it holds the internal token
            f.write(NGINX_CONF.format(workers=workers, dir=self.dir, kernel=kernel,
                                      upstream=upstream, port=port, token=token))
        self.proc, self.workers = None, []

    def start(self):
        exe = shutil.which("nginx") or "/usr/sbin/nginx"
        self.logf = open(os.path.join(self.dir, "stderr.log"), "wb")
        self.proc = PROCS.spawn([exe, "-p", self.dir + "/", "-c", self.conf, "-e",
                                 os.path.join(self.dir, "error.log")],
                                stdout=self.logf, stderr=self.logf)
        deadline = now() + 10
        while True:
            if self.proc.poll() is not None:
                raise BenchError(f"nginx exited {self.proc.returncode}: "
                                 f"{self.error_log()[-500:]}")
            try:
                st, _ = gb.get_json(self.port, f"/{self.kernel}/health", timeout=2)
                if st == 200:
                    break
            except (OSError, ValueError):
                pass
            if now() > deadline:
                raise BenchError(f"nginx on :{self.port} never answered: "
                                 f"{self.error_log()[-500:]}")
            time.sleep(0.02)
        self.workers = children_of(self.proc.pid)
        if len(self.workers) != self.workers_n:
            raise BenchError(f"nginx: expected {self.workers_n} workers, found {self.workers}")

    def error_log(self):
        try:
            return open(os.path.join(self.dir, "error.log")).read()
        except OSError:
            return ""

    def pids(self):
        return [self.proc.pid] + self.workers

    def stop(self):
        if not self.proc:
            return
        PROCS.stop(self.proc, signal.SIGTERM, timeout=10)  # fast shutdown; waits for workers
        self.logf.close()
        self.proc = None
        deadline = now() + 5
        alive = [p for p in self.workers if pid_alive(p)]
        while alive and now() < deadline:
            time.sleep(0.01)
            alive = [p for p in alive if pid_alive(p)]
        for pid in alive:  # by pid, and only if it still is an nginx
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if b"nginx" in f.read():
                        log(f"nginx worker {pid} outlived its master; SIGKILL")
                        os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def free_port_near(base, count=10):
    """A free loopback port in base..base+count-1, never 8000-8149."""
    for p in range(base, base + count):
        if not 8000 <= p <= 8149 and p < 65536 and port_free(p):
            return p
    raise BenchError(f"no free port in {base}-{base + count - 1}")


# --------------------------------------------------------------------------
# The API as the bench's operator sees it

class Api:
    """One keep-alive session to :8000+N with the admin's token."""

    def __init__(self, g, timeout=60.0):
        self.g = g
        self.c = KeepAlive(g.api_port, timeout, g.auth())

    def call(self, method, path, obj=None):
        body = json.dumps(obj).encode() if obj is not None else None
        for attempt in (0, 1):
            try:
                st, data = self.c.request(method, path, body)
                break
            except OSError:
                self.c.close()
                if attempt:
                    raise
        try:
            return st, json.loads(data) if data else None
        except ValueError:
            return st, {"raw": data[:200].decode(errors="replace")}

    def get(self, path):
        return self.call("GET", path)

    def post(self, path, obj):
        return self.call("POST", path, obj)

    def kernel(self, name):
        """This kernel's entry in GET /guardian/status."""
        st, j = self.get("/guardian/status")
        if st != 200:
            raise BenchError(f"/guardian/status: {st} {j}")
        for k in j["kernels"]:
            if k["name"] == name:
                return k
        raise BenchError(f"/guardian/status has no kernel {name}")

    def events(self, name, since_ms):
        st, j = self.get(f"/guardian/events?kernel={name}&since={int(since_ms)}&limit=200")
        if st != 200:
            raise BenchError(f"/guardian/events: {st} {j}")
        return j["events"]

    def close(self):
        self.c.close()


def wait_steady(api, name, settle_s, timeout=30.0):
    """Until the kernel is ready, its probes are passing and it has been so
    for settle_s (past stable_ms: a crash then restarts at once)."""
    deadline = now() + timeout
    while True:
        k = api.kernel(name)
        if (k["state"] == "ready" and k["pid"] and not k["healing"]
                and k["consecutive_failures"] == 0
                and time.time() * 1e3 - k["since_ms"] >= settle_s * 1e3):
            return k
        if now() > deadline:
            raise BenchError(f"{name} not steadily ready within {timeout} s: {k}")
        time.sleep(0.05)


# --------------------------------------------------------------------------
# 5. Gateway throughput and latency: gateway, direct, nginx

def one_wrk(a, url, headers, proxy_pids, kernel_pid, perf_ok, tmp, secs, others=(), tel_pid=None):
    """`others`: the rest of Grace's kernels (pids), whose CPU during the run
    is reported beside the proxy's: the telemetry kernel ingesting the
    spans Grace records of the gateway's requests is work nginx's run
    does not cause."""
    others = [p for p in others if p not in proxy_pids]
    pids = proxy_pids + [kernel_pid]
    before = {p: cpu_ticks(p) for p in pids}
    o_before = {p: cpu_ticks_or_none(p) for p in others}
    perf = PerfStat(proxy_pids, os.path.join(tmp, "perf.txt")) if perf_ok and proxy_pids else None
    t0 = now()
    try:
        out = subprocess.run(wrk_argv(a.wrk_threads, a.wrk_conns, secs, url, headers),
                             capture_output=True, text=True, timeout=secs + 30,
                             stdin=subprocess.DEVNULL)
    finally:
        perf_res = perf.stop() if perf else None
    wall = now() - t0
    after = {p: cpu_ticks(p) for p in pids}
    o_after = {p: cpu_ticks_or_none(p) for p in others}
    if out.returncode != 0:
        raise BenchError(f"wrk {url}: {out.stderr.strip()}")
    w = parse_wrk(out.stdout)
    w["wall"] = wall
    w["proxy_cpu"] = sum(after[p] - before[p] for p in proxy_pids) / CLK_TCK
    w["kernel_cpu"] = (after[kernel_pid] - before[kernel_pid]) / CLK_TCK
    d = {p: o_after[p] - o_before[p] for p in others
         if o_before[p] is not None and o_after[p] is not None}
    w["others_cpu"] = sum(d.values()) / CLK_TCK
    w["tel_cpu"] = d.get(tel_pid, 0) / CLK_TCK
    w["perf"] = perf_res
    return w


def syscalls_per_request(a, url, headers, pids, tmp, label):
    """strace -c -f on pids during a short, untimed wrk (-t1 -c8): system
    calls per request by name. None without strace."""
    if not shutil.which("strace") or a.strace_secs <= 0:
        return None
    out = os.path.join(tmp, f"strace-{label}.txt")
    argv = ["strace", "-c", "-f", "-o", out]
    for p in pids:
        argv += ["-p", str(p)]
    sp = PROCS.spawn(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)  # attached to every thread
        r = subprocess.run(wrk_argv(1, 8, a.strace_secs, url, headers), capture_output=True,
                           text=True, timeout=a.strace_secs + 30, stdin=subprocess.DEVNULL)
    finally:
        PROCS.stop(sp, signal.SIGINT, timeout=10)  # strace detaches and writes its table
    n = parse_wrk(r.stdout)["n"]
    calls = {}
    try:
        lines = open(out).read().splitlines()
    except OSError:
        return None
    for line in lines:
        f = line.split()
        if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
            calls[f[-1]] = int(f[3])
    if not n or not calls:
        return None
    return {"n": n, "total": sum(calls.values()) / n,
            "by_name": sorted(((c / n, k) for k, c in calls.items()), reverse=True)}


# --stalls: every request's latency (bench/reqlat.c), gateway and nginx
# alternating, so that the slow ones can be placed in time. A stall is
# STALL_MS or more with no answer completed at all: every connection
# waiting at once, a pause of the whole path rather than one slow request.
STALL_MS = 3.0


def stall_rounds(a, targets, tmp):
    exe = os.path.join(tmp, "reqlat")
    src = os.path.join(gb.HERE, "reqlat.c")
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        raise BenchError("--stalls needs a C compiler for bench/reqlat.c")
    subprocess.run([cc, "-O2", "-std=c17", "-o", exe, src], check=True)
    out = {"gateway": [], "nginx": []}
    for r in range(a.stalls):
        for label, url, hdrs, _ in targets:
            if label not in out:
                continue
            port = int(url.split(":")[2].split("/")[0])
            path = "/" + url.split("/", 3)[3]
            rec = os.path.join(tmp, f"reqlat-{label}-{r}.txt")
            argv = [exe, str(port), path, str(a.wrk_conns), str(a.wrk_secs), rec]
            argv += [f"{k}: {v}" for k, v in (hdrs or {}).items()]
            subprocess.run(argv, check=True, stderr=subprocess.DEVNULL)
            out[label].append(stall_figures(rec))
            log(f"gateway: stalls round {r + 1} {label}: p99 {out[label][-1]['p99']:.2f} ms, "
                f"{out[label][-1]['stalls']} stalls")
    return out


def stall_figures(path):
    rows = []
    with open(path) as f:
        for line in f:
            s, e, st = line.split()
            rows.append((int(s), int(e), int(st)))
    rows = rows[len(rows) // 10:]  # the first tenth: connections warming up
    lat = [(e - s) / 1e6 for s, e, _ in rows]
    n = len(lat)
    ends = sorted(e for _, e, _ in rows)
    gaps = [b - a for a, b in zip(ends, ends[1:]) if b - a >= STALL_MS * 1e6]
    secs = (ends[-1] - ends[0]) / 1e9
    return {"n": n, "rps": n / secs, "p50": gb.pct(lat, 50), "p99": gb.pct(lat, 99),
            "p999": gb.pct(lat, 99.9), "stalls": len(gaps),
            "stall_ms": sum(gaps) / 1e6 / secs, "non200": sum(1 for r in rows if r[2] != 200)}


def report_stalls(R, st):
    gw, nx = st["gateway"], st["nginx"]
    R(f"   every request's latency (bench/reqlat.c, {len(gw)} round(s) each, alternating; a stall"
      f" = {STALL_MS:.0f} ms or more with no answer at all):")
    for label, xs in (("gateway", gw), ("nginx", nx)):
        R(f"     {label:<8} p50 {med([x['p50'] for x in xs]):.2f} ms, p99 "
          f"{med([x['p99'] for x in xs]):.2f} ms, p99.9 {med([x['p999'] for x in xs]):.2f} ms,"
          f" {med([x['rps'] for x in xs]):.0f} req/s; stalls a second "
          f"{med([x['stalls'] / (x['n'] / x['rps']) for x in xs]):.1f}, "
          f"{med([x['stall_ms'] for x in xs]):.1f} ms a second stalled"
          f"{', non-200 ' + str(sum(x['non200'] for x in xs)) if any(x['non200'] for x in xs) else ''}")
    per = [g["p99"] / x["p99"] for g, x in zip(gw, nx)]
    R(f"     p99 gateway / nginx round by round: {' '.join(f'{v:.2f}' for v in per)};"
      f" median {med(per):.2f}")


def bench_gateway(a, R, kernels, cfg, tmp):
    name = a.kernel
    g = Grace(a.grace, cfg, os.path.join(tmp, "gateway-data"), a.offset, kernels,
              os.path.join(tmp, "gateway-grace.log"))
    g.start()
    nginx = h2o = None
    try:
        g.wait_ready()
        g.login()
        kport = g.kernel_ports[name]
        kpid = g.kernel_pids[name]
        nport = free_port_near(g.api_port + 190)
        with open(os.path.join(g.data_dir, "internal.token")) as f:
            itoken = f.read().strip()
        nginx = Nginx(tmp, nport, name, kport, a.nginx_workers, itoken)
        nginx.start()
        if shutil.which("h2o"):
            h2o = H2o(tmp, free_port_near(g.api_port + 180), name, kport, itoken)
            h2o.start()
        perf_ok, perf_why = perf_check()
        serve_pid = g.proc.pid
        targets = [
            ("direct", f"http://{HOST}:{kport}/health", None, []),
            ("gateway", f"http://{HOST}:{g.api_port}/{name}/health", g.auth(), [serve_pid]),
            ("nginx", f"http://{HOST}:{nport}/{name}/health", None, nginx.pids()),
        ]
        if h2o:
            targets.append(("h2o", f"http://{HOST}:{h2o.port}/{name}/health", None, h2o.pids()))
        # nginx answering by itself: the peer of a kernel's own /health.
        targets.append(("nginx-200", f"http://{HOST}:{nport}/ok", None, nginx.pids()))
        # Each answers 200 with the same kernel (same pid) before the clock starts.
        for label, url, hdrs, _ in targets:
            if label == "nginx-200":
                continue
            port = int(url.split(":")[2].split("/")[0])
            path = "/" + url.split("/", 3)[3]
            st, j = gb.get_json(port, path, headers=hdrs)
            if st != 200 or j.get("pid") != kpid:
                raise BenchError(f"{label} {url}: {st} {j}")
        log(f"gateway: warm-up {a.warmup_secs} s each, then {a.gw_rounds} round(s) of "
            f"{a.wrk_secs} s on direct, gateway, nginx")
        for label, url, hdrs, pp in targets:
            one_wrk(a, url, hdrs, pp, kpid, False, tmp, a.warmup_secs)
        res = {label: [] for label, _, _, _ in targets}
        others = [p for k, p in g.kernel_pids.items() if k != name and p]
        for r in range(a.gw_rounds):
            for label, url, hdrs, pp in targets:
                w = one_wrk(a, url, hdrs, pp, kpid, perf_ok, tmp, a.wrk_secs, others,
                            g.kernel_pids.get("telemetry"))
                res[label].append(w)
                log(f"gateway: round {r + 1} {label}: {w['rps'] or 0:.0f} req/s, "
                    f"p99 {ms(w.get('p99', float('nan')))}")
        stalls = stall_rounds(a, targets, tmp) if a.stalls else None
        # System calls per request: what each process asks of the OS kernel.
        sysc = {}
        for label, url, hdrs, pp in targets:
            sysc[label] = syscalls_per_request(a, url, hdrs, pp or [kpid], tmp, label)
        g.refresh_pids()
        if g.kernel_pids.get(name) != kpid:
            raise BenchError(f"{name} restarted during the gateway benchmark")
    finally:
        if nginx:
            nginx.stop()
        if h2o:
            h2o.stop()
        g.stop()

    R(f"5. Gateway throughput: GET /{name}/health (the kernel's /health) with wrk "
      f"-t{a.wrk_threads} -c{a.wrk_conns} -d{a.wrk_secs}s, {a.gw_rounds} round(s) after a "
      f"{a.warmup_secs} s warm-up each")
    R(f"   direct  = {name} kernel :{kport}/health; gateway = grace serve :{g.api_port}/{name}/health "
      f"(Bearer token checked per request)")
    R(f"   nginx   = nginx {nginx_version()} :{nport}, {a.nginx_workers} worker(s), upstream "
      f"keepalive 64, HTTP/1.1, Connection \"\"")
    R("   CPU/req = utime+stime from /proc/PID/stat over the run / requests; proxy = grace serve, "
      "or nginx master+workers")
    if h2o:
        R(f"   h2o     = {h2o_version()} :{h2o.port}, 1 thread, proxy.reverse.url, upstream keep-alive")
    R("   nginx-200 = the same nginx answering `return 200` itself (peer of a kernel's /health)")
    summary = {}
    for label in [t[0] for t in targets]:
        ws = res[label]
        for i, w in enumerate(ws):
            n = w["n"] or 0
            extra = ""
            if w["non2xx"]:
                extra += f", {w['non2xx']} non-2xx"
            if w["sockerr"]:
                extra += f", socket errors: {w['sockerr']}"
            proxy = (f"proxy {us(w['proxy_cpu'] / n):>7}/req"
                     if label not in ("direct", "nginx-200") and n else " " * 19)
            tag = label if a.gw_rounds == 1 else f"{label} #{i + 1}"
            R(f"     {tag:<11} {w['rps'] or 0:>8.0f} req/s   p50 {ms(w.get('p50', float('nan'))):>8}"
              f"  p99 {ms(w.get('p99', float('nan'))):>8}   {proxy}   kernel "
              f"{us(w['kernel_cpu'] / n) if n else '?':>6}/req   rest of Grace "
              f"{us(w['others_cpu'] / n) if n else '?':>6}/req{extra}")
            if w.get("perf"):
                p = w["perf"]
                R(f"     {'':<11} perf: task-clock {us(p.get('task_clock_s', 0) / n)}/req, "
                  f"{p.get('instructions', 0) / n:.0f} instructions/req")
        rps = statistics.median([w["rps"] or 0 for w in ws])
        p99 = statistics.median([w.get("p99", float("nan")) for w in ws])
        p50 = statistics.median([w.get("p50", float("nan")) for w in ws])
        cpu = statistics.median([w["proxy_cpu"] / w["n"] for w in ws if w["n"]] or [float("nan")])
        rest = statistics.median([w["others_cpu"] / w["n"] for w in ws if w["n"]] or [float("nan")])
        tel = statistics.median([w["tel_cpu"] / w["n"] for w in ws if w["n"]] or [float("nan")])
        summary[label] = {"rps": rps, "p50_ms": p50 * 1e3, "p99_ms": p99 * 1e3,
                          "proxy_cpu_us": cpu * 1e6, "others_us": rest * 1e6,
                          "tel_us": tel * 1e6}
    gw, d, nx = summary["gateway"], summary["direct"], summary["nginx"]
    if a.gw_rounds > 1:
        R(f"   medians over the rounds: direct {d['rps']:.0f}, gateway {gw['rps']:.0f}, nginx "
          f"{nx['rps']:.0f} req/s; p99 direct {d['p99_ms']:.1f}, gateway {gw['p99_ms']:.1f}, "
          f"nginx {nx['p99_ms']:.1f} ms")
        per = [ratio(res["gateway"][i]["rps"], res["nginx"][i]["rps"]) for i in range(a.gw_rounds)]
        R(f"   gateway / nginx round by round (run a few seconds apart): "
          f"{', '.join(f'{x:.2f}' for x in per)}")
        # p99 moves between runs of the same proxy by as much as the gap
        # being measured: each round's pair is the fairer comparison.
        p99s = [ratio(res["gateway"][i].get("p99", float("nan")),
                      res["nginx"][i].get("p99", float("nan"))) for i in range(a.gw_rounds)]
        R(f"   p99 gateway / nginx round by round: {', '.join(f'{x:.2f}' for x in p99s)}"
          f" (median {statistics.median(p99s):.2f})")
    R(f"   throughput gateway / direct: {ratio(gw['rps'], d['rps']):.2f}   gateway / nginx: "
      f"{ratio(gw['rps'], nx['rps']):.2f}   nginx / direct: {ratio(nx['rps'], d['rps']):.2f}")
    R(f"   p99 gateway / nginx: {ratio(gw['p99_ms'], nx['p99_ms']):.2f}   proxy CPU per request: "
      f"grace serve {gw['proxy_cpu_us']:.0f} us, nginx {nx['proxy_cpu_us']:.0f} us "
      f"(ratio {ratio(gw['proxy_cpu_us'], nx['proxy_cpu_us']):.2f})")
    R(f"   the rest of Grace (its other kernels) per request: during the gateway's runs "
      f"{gw['others_us']:.1f} us (telemetry {gw['tel_us']:.1f}), during nginx's "
      f"{nx['others_us']:.1f} us (telemetry {nx['tel_us']:.1f})")
    if "h2o" in summary:
        h = summary["h2o"]
        R(f"   gateway / h2o: throughput {ratio(gw['rps'], h['rps']):.2f}, p99 "
          f"{ratio(gw['p99_ms'], h['p99_ms']):.2f}, proxy CPU per request "
          f"{ratio(gw['proxy_cpu_us'], h['proxy_cpu_us']):.2f} (h2o {h['proxy_cpu_us']:.0f} us)")
    n2 = summary["nginx-200"]
    R(f"   a kernel's own /health against nginx's return 200: throughput "
      f"{ratio(d['rps'], n2['rps']):.2f}, p99 {ratio(d['p99_ms'], n2['p99_ms']):.2f}")
    if stalls:
        report_stalls(R, stalls)
    if not perf_ok:
        R(f"   perf: not used ({perf_why}); CPU from /proc only")
    if any(sysc.values()):
        R(f"   system calls per request (strace -c -f, untimed wrk -t1 -c8 -d{a.strace_secs}s; "
          f"direct = the kernel, else the proxy alone):")
        for label in [t[0] for t in targets]:
            sc = sysc.get(label)
            if sc:
                top = ", ".join(f"{k} {v:.1f}" for v, k in sc["by_name"] if v >= 0.05)
                R(f"     {label:<11} {sc['total']:>5.1f}   {top}")
        if sysc.get("gateway") and sysc.get("nginx"):
            summary["gateway"]["syscalls"] = sysc["gateway"]["total"]
            summary["nginx"]["syscalls"] = sysc["nginx"]["total"]
    R()
    a.summary["gateway"] = summary


def h2o_version():
    r = subprocess.run([shutil.which("h2o"), "--version"], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL)
    return (r.stdout.splitlines() or ["h2o"])[0]


def nginx_version():
    r = subprocess.run([shutil.which("nginx") or "/usr/sbin/nginx", "-v"], capture_output=True,
                       text=True, stdin=subprocess.DEVNULL)
    return r.stderr.strip().split("/")[-1] or "?"


# --------------------------------------------------------------------------
# 6. Guardian detection time

def first_event(events, pred):
    for e in events:
        if pred(e):
            return e
    return None


def guardian_crash(a, api, g, name, i):
    k = wait_steady(api, name, a.kill_spacing)
    old = k["pid"]
    wall0 = time.time()
    t0 = now()
    os.kill(old, signal.SIGKILL)
    t_left = t_back = None
    left_state = None
    deadline = t0 + 15
    while True:
        k = api.kernel(name)
        t = now()
        if t_left is None and (k["state"] != "ready" or k["pid"] != old):
            t_left, left_state = t - t0, k["state"]
        if k["state"] == "ready" and k["pid"] not in (None, old):
            t_back = t - t0
            break
        if t > deadline:
            raise BenchError(f"guardian crash {i}: {name} not ready again within 15 s: {k}")
        time.sleep(a.poll_interval)
    PROCS.track(k["pid"])
    evs = api.events(name, wall0 * 1e3 - 1)
    e_left = first_event(evs, lambda e: e["from"] == "ready")
    e_back = first_event(evs, lambda e: e["to"] == "ready" and e is not e_left)
    res = {"left": t_left, "back": t_back, "left_state": left_state,
           "ev_left": (e_left["ts_ms"] - wall0 * 1e3) / 1e3 if e_left else None,
           "ev_back": (e_back["ts_ms"] - wall0 * 1e3) / 1e3 if e_back else None,
           "path": " > ".join(["ready"] + [e["to"] for e in evs])}
    log(f"guardian: crash {i}: left ready after {ms(t_left)} ({left_state}), ready again "
        f"{ms(t_back)}; events {res['path']}")
    return res


def latest_incident(api, name, wall0):
    st, j = api.get(f"/network-healer/incidents?component={name}&limit=5")
    if st != 200:
        raise BenchError(f"/network-healer/incidents: {st} {j}")
    for inc in j["incidents"]:
        if inc.get("started_ms", 0) >= wall0 * 1e3 - 1 and inc.get("trigger") == "guardian":
            return inc
    return None


def guardian_hang(a, api, g, name, i):
    k = wait_steady(api, name, a.kill_spacing)
    old = k["pid"]
    wall0 = time.time()
    t0 = now()
    os.kill(old, signal.SIGSTOP)
    STOPPED.add(old)
    t_unh = t_healed = None
    missed = False
    deadline = t0 + 30
    try:
        while True:
            k = api.kernel(name)
            t = now()
            if t_unh is None:
                if k["state"] == "unhealthy":
                    t_unh = t - t0
                elif k["state"] not in ("ready", "degraded") or k["pid"] != old:
                    t_unh, missed = t - t0, True  # went past unhealthy between two polls
            if k["state"] == "ready" and k["pid"] not in (None, old):
                t_healed = t - t0
                break
            if t > deadline:
                raise BenchError(f"guardian hang {i}: {name} not healed within 30 s: {k}")
            time.sleep(a.poll_interval)
    finally:
        if not pid_alive(old):
            STOPPED.discard(old)
    PROCS.track(k["pid"])
    # The incident ends (verified) just after the kernel is ready again: its
    # last step is a /health probe. Until then it is stored as "running".
    inc = None
    deadline = now() + 10
    while now() < deadline:
        inc = latest_incident(api, name, wall0)
        if inc and inc.get("outcome") not in (None, "running"):
            break
        time.sleep(0.02)
    else:
        raise BenchError(f"guardian hang {i}: the automatic incident did not end: {inc}")
    evs = api.events(name, wall0 * 1e3 - 1)
    e_deg = first_event(evs, lambda e: e["to"] == "degraded")
    e_unh = first_event(evs, lambda e: e["to"] == "unhealthy")
    e_back = None
    for e in evs:
        if e["to"] == "ready":
            e_back = e
    rel = (lambda e: (e["ts_ms"] - wall0 * 1e3) / 1e3 if e else None)
    steps = {s["step"]: s.get("duration_ms") for s in (inc or {}).get("steps", [])}
    first_at = ((inc or {}).get("steps") or [{}])[0].get("at_ms")
    res = {"unhealthy": t_unh, "missed": missed, "healed": t_healed,
           "ev_degraded": rel(e_deg), "ev_unhealthy": rel(e_unh), "ev_ready": rel(e_back),
           "inc_ms": inc.get("duration_ms") if inc else None,
           "inc_outcome": inc.get("outcome") if inc else None,
           "inc_issue": inc.get("diagnosed_issue") if inc else None,
           "inc_playbook": inc.get("playbook") if inc else None,
           "inc_diag_ms": first_at, "inc_steps": steps,
           "path": " > ".join(["ready"] + [e["to"] for e in evs])}
    log(f"guardian: hang {i}: unhealthy after {ms(t_unh)}{' (missed by polling)' if missed else ''}"
        f", healed {ms(t_healed)}; incident {res['inc_playbook']} {res['inc_outcome']} in "
        f"{res['inc_ms'] or 0:.0f} ms; events {res['path']}")
    return res


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


def bench_guardian(a, R, kernels, tmp, src_ini):
    name = a.kernel
    cfg = os.path.join(tmp, "guardian.ini")
    # Every run measures the floor's detection and heal, one after the
    # other, 1.3 s apart: self_healing's ladder starts again at the bottom
    # after 1 s quiet, instead of escalating run after run to its last
    # step (stop, and page a person), which is what it is for otherwise.
    gb.write_bench_config(src_ini, cfg, 100, {name: GUARDIAN_CFG}, kernels,
                          section_extra={"self_healing": {"stable_ms": 1000}})
    g = Grace(a.grace, cfg, os.path.join(tmp, "guardian-data"), a.offset, kernels,
              os.path.join(tmp, "guardian-grace.log"))
    g.start()
    try:
        g.wait_ready()
        api = Api(g)
        st, conf = api.get("/guardian/config")
        kc = next(k for k in conf["kernels"] if k["name"] == name)
        for key, v in GUARDIAN_CFG.items():
            if kc.get(key) != v:
                raise BenchError(f"guardian config: {name} {key} = {kc.get(key)}, expected {v}")
        # Polling cost, for reading the polled figures.
        t0 = now()
        for _ in range(20):
            api.kernel(name)
        poll_cost = (now() - t0) / 20
        crashes, hangs = [], []
        for i in range(a.guardian_runs):
            crashes.append(guardian_crash(a, api, g, name, i + 1))
        for i in range(a.guardian_runs):
            hangs.append(guardian_hang(a, api, g, name, i + 1))
        k = api.kernel(name)
        api.close()
        g.refresh_pids()
    finally:
        for pid in list(STOPPED):
            if pid_alive(pid):
                os.kill(pid, signal.SIGCONT)
        g.stop()

    def row(label, xs, note=""):
        xs = [x for x in xs if x is not None]
        if not xs:
            R(f"     {label:<44} (no data){note}")
            return
        R(f"     {label:<44} median {ms(statistics.median(xs)):>9}   min {ms(min(xs)):>9}"
          f"   max {ms(max(xs)):>9}{note}")
    R(f"6. Guardian detection: {name} with health_interval_ms={GUARDIAN_CFG['health_interval_ms']},"
      f" health_timeout_ms={GUARDIAN_CFG['health_timeout_ms']}, health_failures="
      f"{GUARDIAN_CFG['health_failures']}, watchdog_ms={GUARDIAN_CFG['watchdog_ms']}; "
      f"{a.guardian_runs} runs each")
    R(f"   polled = GET /guardian/status every {a.poll_interval * 1e3:g} ms on one keep-alive "
      f"connection (one poll takes {ms(poll_cost)});")
    R("   event  = ts_ms of the guardian's own event (GET /guardian/events) minus the wall clock"
      " at the signal (1 ms resolution)")
    R(f"   crash (kill -9; {a.kill_spacing:g} s of steady ready before each):")
    row("kill -> state leaves ready (polled)", [c["left"] for c in crashes],
        f"   first state seen: {', '.join(sorted(set(c['left_state'] for c in crashes)))}")
    row("kill -> state leaves ready (event)", [c["ev_left"] for c in crashes])
    row("kill -> ready again, new pid (polled)", [c["back"] for c in crashes])
    row("kill -> ready again (event)", [c["ev_back"] for c in crashes])
    R(f"       states: {crashes[0]['path'] if crashes else '-'}")
    nmiss = sum(h["missed"] for h in hangs)
    R("   hang (kill -STOP; healed by the guardian through the healer, incident trigger "
      "\"guardian\"):")
    row("STOP -> degraded, first failed probe (event)", [h["ev_degraded"] for h in hangs])
    row("STOP -> unhealthy (event)", [h["ev_unhealthy"] for h in hangs])
    row("STOP -> unhealthy (polled)", [h["unhealthy"] for h in hangs],
        f"   ({nmiss} passed between polls)" if nmiss else "")
    row("STOP -> healed: ready, new pid (polled)", [h["healed"] for h in hangs])
    row("automatic incident duration_ms", [h["inc_ms"] / 1e3 if h["inc_ms"] is not None else None
                                           for h in hangs])
    row("  of which diagnosis (first step's at_ms)",
        [h["inc_diag_ms"] / 1e3 if h["inc_diag_ms"] is not None else None for h in hangs])
    for step in ("stop", "start", "verify"):
        row(f"  of which step {step}", [h["inc_steps"].get(step) / 1e3
                                       if h["inc_steps"].get(step) is not None else None
                                       for h in hangs])
    outcomes = {}
    for h in hangs:
        key = f"{h['inc_issue']} -> {h['inc_playbook']}: {h['inc_outcome']}"
        outcomes[key] = outcomes.get(key, 0) + 1
    R(f"       incidents: {', '.join(f'{v}x {k}' for k, v in outcomes.items())}")
    R(f"       states: {hangs[0]['path'] if hangs else '-'}")
    R(f"   afterwards: state={k['state']} restarts={k['restarts']} probes={k['probes']} "
      f"probe_failures={k['probe_failures']}")
    R()
    a.summary["guardian"] = {
        "crash_left_ms": med([c["left"] for c in crashes]) * 1e3,
        "crash_back_ms": med([c["back"] for c in crashes]) * 1e3,
        "hang_unhealthy_ms": med([h["ev_unhealthy"] for h in hangs]) * 1e3,
        "hang_healed_ms": med([h["healed"] for h in hangs]) * 1e3,
        "hang_incident_ms": med([h["inc_ms"] for h in hangs]),
    }


# --------------------------------------------------------------------------
# 7. Heal duration per playbook

def bench_heal(a, R, kernels, cfg, tmp):
    name = a.kernel
    g = Grace(a.grace, cfg, os.path.join(tmp, "heal-data"), a.offset, kernels,
              os.path.join(tmp, "heal-grace.log"))
    g.start()
    runs = {pb: [] for pb in PLAYBOOKS + ["reset_port"]}
    routed = []
    try:
        g.wait_ready()
        api = Api(g)

        def heal(label, path, body):
            wait_steady(api, name, 0.0)
            t0 = now()
            st, inc = api.post(path, body)
            rtt = now() - t0
            if st != 200 or inc.get("outcome") not in ("healed", "diagnosed"):
                raise BenchError(f"{label}: {st} {json.dumps(inc)[:600]}")
            steps = inc.get("steps") or [{}]
            r = {"ms": inc["duration_ms"], "rtt_ms": rtt * 1e3, "outcome": inc["outcome"],
                 "diag_ms": steps[0].get("at_ms"),
                 "steps": {s["step"]: s["duration_ms"] for s in inc.get("steps", [])},
                 "port": inc.get("port"), "issue": inc.get("diagnosed_issue")}
            runs[label].append(r)
            return r

        for pb in PLAYBOOKS:
            for i in range(a.heal_runs):
                r = heal(pb, "/network-healer/heal", {"component_name": name, "action": pb})
                log(f"heal: {pb} {i + 1}/{a.heal_runs}: {r['outcome']} in {r['ms']:.1f} ms "
                    f"(diagnosis {r['diag_ms'] or 0:.1f} ms)")
                if pb == "rebind_port":
                    # The gateway's route follows the kernel to its new port at once.
                    st, j = gb.get_json(g.api_port, f"/{name}/health", headers=g.auth())
                    st2, kp = api.get(f"/kernel-ports/{name}")
                    routed.append(st == 200 and j.get("pid") == kp.get("pid")
                                  and kp.get("port") == r["port"] != g.kernel_ports[name])
                    r2 = heal("reset_port", f"/kernel-ports/{name}/reset-port", {})
                    if r2["port"] != g.kernel_ports[name]:
                        raise BenchError(f"reset-port left {name} on {r2['port']}")
                    log(f"heal: reset_port {i + 1}/{a.heal_runs}: {r2['outcome']} in "
                        f"{r2['ms']:.1f} ms")
        st, stats = api.get("/network-healer/stats")
        if st != 200:
            raise BenchError(f"/network-healer/stats: {st} {stats}")
        api.close()
        g.refresh_pids()
    finally:
        g.stop()

    R(f"7. Heal duration per playbook: POST /network-healer/heal {{\"component_name\":\"{name}\","
      f" \"action\": A}} on a healthy kernel, {a.heal_runs} runs each")
    R(f"   (incident duration_ms, which includes the diagnosis that starts every heal; "
      f"rebind_port is undone each time by POST /kernel-ports/{name}/reset-port = reset_port)")
    R(f"     {'playbook':<18} {'median':>9} {'min':>9} {'max':>9}   {'diagnosis':>9}   "
      f"steps (median ms)")
    for pb in PLAYBOOKS + ["reset_port"]:
        rs = runs[pb]
        if not rs:
            continue
        d = [r["ms"] for r in rs]
        steps = {}
        for r in rs:
            for s, v in r["steps"].items():
                steps.setdefault(s, []).append(v)
        st_txt = ", ".join(f"{s} {statistics.median(v):.1f}" for s, v in steps.items())
        R(f"     {pb:<18} {statistics.median(d):>6.1f} ms {min(d):>6.1f} ms {max(d):>6.1f} ms"
          f"   {med([r['diag_ms'] for r in rs]):>6.1f} ms   {st_txt}")
    if routed:
        R(f"   after rebind_port, GET :{g.api_port}/{name}/health answered from the new port: "
          f"{sum(routed)} of {len(routed)}")
    R("   GET /network-healer/stats:")
    for pb, s in sorted(stats.get("playbooks", {}).items()):
        rate = s.get("success_rate")
        R(f"     {pb:<18} runs {s.get('runs'):>3}  healed {s.get('healed'):>3}  failed "
          f"{s.get('failed'):>2}  refused {s.get('refused'):>2}  other {s.get('other'):>2}  "
          f"success {'-' if rate is None else f'{rate:.0%}':>4}  median {s.get('median_ms', 0):.1f} ms")
    R()
    a.summary["heal"] = {pb: med([r["ms"] for r in runs[pb]]) for pb in runs}


# --------------------------------------------------------------------------
# Targets

def targets(a, R):
    s = a.summary
    R("8. Targets from issue 3 (measured in this run)")
    gw = s.get("gateway")
    if gw:
        r = ratio(gw["gateway"]["rps"], gw["nginx"]["rps"])
        R(f"   gateway throughput >= nginx's: gateway / nginx = {r:.2f} "
          f"({'met' if r >= 1.0 else 'not met'}); gateway / direct = "
          f"{ratio(gw['gateway']['rps'], gw['direct']['rps']):.2f}; p99 gateway "
          f"{gw['gateway']['p99_ms']:.1f} ms, nginx {gw['nginx']['p99_ms']:.1f} ms, direct "
          f"{gw['direct']['p99_ms']:.1f} ms")
        sc = ""
        if gw["gateway"].get("syscalls"):
            sc = (f"; system calls per request: grace serve {gw['gateway']['syscalls']:.1f}, "
                  f"nginx {gw['nginx']['syscalls']:.1f}")
        R(f"      proxy CPU per request: grace serve {gw['gateway']['proxy_cpu_us']:.0f} us, "
          f"nginx {gw['nginx']['proxy_cpu_us']:.0f} us{sc}")
    else:
        R("   gateway throughput: not run")
    cr = s.get("crash")
    if cr:
        ok = cr["median_ms"] < 5 and cr["refused"] == 0
        R(f"   crash -> answering again < 5 ms median (issue 10), no refused connection: median "
          f"{cr['median_ms']:.1f} ms over {cr['kills']} kills, {cr['refused']} refused "
          f"({'met' if ok else 'not met'}; section 2; lean sh-loop peer {cr['peer_median_ms']:.1f} ms"
          f" with {cr['peer_refused']} refused)")
    else:
        R("   crash -> answering again: section 2 not run in this run (BENCH_ONLY)")
    gd = s.get("guardian")
    if gd:
        R(f"   guardian: crash seen in {gd['crash_left_ms']:.1f} ms, ready again in "
          f"{gd['crash_back_ms']:.1f} ms; hang unhealthy in {gd['hang_unhealthy_ms']:.0f} ms, "
          f"healed in {gd['hang_healed_ms']:.0f} ms (medians)")
    R()


# --------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("build_dir")
    env = os.environ.get
    ap.add_argument("--port-offset", type=int,
                    default=int(env("BENCH_PORT_OFFSET")) if env("BENCH_PORT_OFFSET") else None)
    ap.add_argument("--only", default=env("BENCH_ONLY", ",".join(MY_PHASES)),
                    help="comma-separated subset of gateway,guardian,heal "
                    "(names of grace_bench.py's benchmarks are ignored)")
    ap.add_argument("--kernel", default="librarian", help="the kernel measured throughout")
    ap.add_argument("--wrk-threads", type=int, default=2)
    ap.add_argument("--wrk-conns", type=int, default=64)
    ap.add_argument("--wrk-secs", type=int, default=int(env("BENCH_WRK_SECS", "10")))
    ap.add_argument("--warmup-secs", type=int, default=2)
    ap.add_argument("--gw-rounds", type=int, default=int(env("BENCH_GW_ROUNDS", "3")),
                    help="rounds of direct, gateway, nginx (alternating)")
    ap.add_argument("--strace-secs", type=int, default=3,
                    help="length of the untimed wrk under strace -c (0: no syscall counts)")
    ap.add_argument("--nginx-workers", type=int, default=1,
                    help="1 = one event loop, like the gateway in grace serve")
    ap.add_argument("--guardian-runs", type=int, default=int(env("BENCH_GUARDIAN_RUNS", "5")))
    ap.add_argument("--heal-runs", type=int, default=int(env("BENCH_HEALS", "5")))
    ap.add_argument("--kill-spacing", type=float, default=1.3,
                    help="seconds of steady ready before each crash or hang (past stable_ms)")
    ap.add_argument("--poll-interval", type=float, default=0.001,
                    help="seconds between two GET /guardian/status polls")
    ap.add_argument("--stalls", type=int, default=0, metavar="ROUNDS",
                    help="after section 5's rounds, ROUNDS more of gateway and nginx with every "
                         "request's latency recorded (bench/reqlat.c): p99 round by round and "
                         "the pauses of the whole path")
    ap.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                    help="a setting of etc/grace.ini changed for this run (repeatable), "
                         "e.g. --set telemetry.self_trace=0 or --set kernel.telemetry.nice=19")
    ap.add_argument("--out", default=os.path.join(gb.HERE, "results-latest.txt"))
    ap.add_argument("--append", action="store_true",
                    help="append to --out (after grace_bench.py's report) instead of replacing it")
    ap.add_argument("--summary", dest="summary_file",
                    help="grace_bench.py's key figures (JSON), for the summary of targets")
    ap.add_argument("--keep-tmp", action="store_true")
    ap.add_argument("--snapshot", help="run this copy of BUILD_DIR/grace (run.sh makes one "
                    "copy for both scripts, so a rebuild between them changes nothing)")
    # run.sh passes its extra arguments to both scripts: each ignores the
    # options only grace_bench.py knows.
    a, rest = ap.parse_known_args()
    if rest:
        log(f"ignoring {' '.join(rest)} (not an option of {os.path.basename(__file__)})")
    a.summary = {}
    if a.summary_file and os.path.exists(a.summary_file) and os.path.getsize(a.summary_file):
        with open(a.summary_file) as f:
            a.summary.update(json.load(f))

    a.grace = os.path.abspath(os.path.join(a.build_dir, "grace"))
    if not os.access(a.grace, os.X_OK):
        raise BenchError(f"{a.grace}: not found; build first (ninja -C {a.build_dir})")
    src_ini = os.path.join(gb.REPO, "etc", "grace.ini")
    kernels = gb.read_kernels(src_ini, a.grace)
    if a.kernel not in dict(kernels):
        raise BenchError(f"{src_ini}: runs no kernel {a.kernel}")
    only = set(a.only.split(","))
    unknown = only - set(MY_PHASES) - set(gb.MY_PHASES) - {"restart"}  # restart_bench.py
    if unknown:
        raise BenchError(f"unknown benchmark(s) {sorted(unknown)}; "
                         f"choose from {','.join(gb.MY_PHASES + MY_PHASES)}")
    only &= set(MY_PHASES)
    if not only:
        return
    for tool in ["wrk"] + (["nginx"] if "gateway" in only else []):
        if not shutil.which(tool) and not os.access(f"/usr/sbin/{tool}", os.X_OK):
            raise BenchError(f"{tool} not found (scripts/bootstrap.sh --bench)")
    a.offset = gb.choose_offset([p for _, p in kernels], a.port_offset)

    tmp = tempfile.mkdtemp(prefix="grace-bench-gw-")
    a.grace_src = a.grace
    a.grace = os.path.join(tmp, "grace")  # a private copy, as in grace_bench.py
    shutil.copy2(a.snapshot or a.grace_src, a.grace)
    with open(a.grace, "rb") as f:
        a.grace_sha = hashlib.sha256(f.read()).hexdigest()[:12]
    cfg = os.path.join(tmp, "bench.ini")
    extra, kextra = {}, {}
    for kv in a.set or ():
        key, eq, value = kv.partition("=")
        section, _, name = key.rpartition(".")
        if not section or not name or not eq:
            raise SystemExit(f"--set {kv}: expected SECTION.KEY=VALUE")
        if section.startswith("kernel."):  # kernel.NAME.KEY: that kernel's section
            kextra.setdefault(section[len("kernel."):], {})[name] = value
        else:
            extra.setdefault(section, {})[name] = value
    gb.write_bench_config(src_ini, cfg, 100, kextra or None, kernels, section_extra=extra)
    R = Report()
    t_start = now()
    failed = False
    try:
        if a.append:
            R(f"gateway_bench.py: binary sha256 {a.grace_sha}, port offset {a.offset}, "
              f"load average {os.getloadavg()[0]:.2f} at start")
            R()
        else:
            gb.header(a, R)
        if a.set:
            R("   settings changed from etc/grace.ini for this run: " + ", ".join(a.set))
        if "gateway" in only:
            bench_gateway(a, R, kernels, cfg, tmp)
        if "guardian" in only:
            bench_guardian(a, R, kernels, tmp, src_ini)
        if "heal" in only:
            bench_heal(a, R, kernels, cfg, tmp)
        targets(a, R)
        R(f"gateway bench time {now() - t_start:.0f} s; load average {os.getloadavg()[0]:.2f}"
          f" at the end; temp dir {tmp}{' (kept)' if a.keep_tmp else ' (removed)'}")
    except BaseException as e:
        failed = True
        R(f"BENCH FAILED: {type(e).__name__}: {e}")
        raise
    finally:
        for pid in list(STOPPED):
            if pid_alive(pid):
                try:
                    os.kill(pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
        PROCS.stop_all()
        with open(a.out, "a" if a.append else "w") as f:
            f.write(R.text())
        if not a.keep_tmp and not failed:
            shutil.rmtree(tmp, ignore_errors=True)
        elif failed:
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
