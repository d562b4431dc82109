#!/usr/bin/env python3
"""Grace benchmarks: cold start, crash recovery, memory, librarian search.

Run through bench/run.sh (see bench/README.md). Python 3 standard library
only; wrk for the throughput figures. Every process started here is stopped
here, by pid, also when a phase fails or the run is interrupted.
"""

import argparse
import configparser
import errno
import hashlib
import json
import os
import random
import re
import secrets
import selectors
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

# The free-port check and the clean environment are the small benches'
# (benchkit.py); restart_bench and gateway_bench take them from here.
from benchkit import HOST, clean_env, port_free  # noqa: E402,F401

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
API_PORT = 8000
KERNEL_PORT_MIN, KERNEL_PORT_MAX = 8100, 8149
# Offsets tried in turn when BENCH_PORT_OFFSET is not set. Every port stays
# below 32768 (the usual start of the ephemeral range) and clear of 8000-8149.
OFFSET_CANDIDATES = [21000 + 300 * i for i in range(10)]
# Every API route but /health, /metrics and /auth/login needs a session
# token. The bench creates this admin offline (`grace user add`) in each data
# dir before the first start, then logs in. The password is new each run.
ADMIN_USER = "admin"
ADMIN_PASSWORD = "bench-" + secrets.token_urlsafe(18)
# OWASP's floor and Grace's minimum: login then takes milliseconds.
ARGON2_MEM_KIB = 19456
INTERNAL_TOKEN_HEADER = "X-Grace-Internal-Token"


def now():
    return time.perf_counter()


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# --------------------------------------------------------------------------
# Processes: everything started is registered and stopped by pid.

class Procs:
    def __init__(self):
        self.popens = []      # subprocess.Popen we own (waitable)
        self.extra_pids = set()  # grandchildren we learnt about (kernels)

    def spawn(self, argv, **kw):
        kw.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.Popen(argv, **kw)
        self.popens.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=10.0):
        """Signals one Popen by pid, waits, escalates to SIGKILL."""
        if p.poll() is None:
            try:
                os.kill(p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"pid {p.pid} ignored signal {sig}; SIGKILL")
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(5)
        if p in self.popens:
            self.popens.remove(p)
        return p.returncode

    def track(self, pid):
        self.extra_pids.add(pid)

    def reap_extra(self, timeout=5.0):
        """Makes sure every grandchild we learnt of is gone (SIGTERM, then KILL)."""
        alive = [pid for pid in self.extra_pids if pid_alive(pid)]
        for pid in alive:
            signal_if_grace(pid, signal.SIGTERM)
        deadline = now() + timeout
        while alive and now() < deadline:
            alive = [pid for pid in alive if pid_alive(pid)]
            time.sleep(0.01)
        for pid in alive:
            log(f"pid {pid} still alive; SIGKILL")
            signal_if_grace(pid, signal.SIGKILL)
        self.extra_pids.clear()

    def stop_all(self):
        for p in list(self.popens):
            self.stop(p)
        self.reap_extra()


def pid_alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
    except OSError:
        return False
    return st[st.rfind(")") + 2] != "Z"


def signal_if_grace(pid, sig):
    """Signals pid only if it is still one of our grace processes."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read()
    except OSError:
        return
    if b"grace" in cmd:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


PROCS = Procs()


# --------------------------------------------------------------------------
# Configuration

def read_kernels(ini_path, grace):
    """[(name, port)] of the kernels `grace serve --config ini_path` runs:
    the ini's [kernel.NAME] sections when it has some, else every built-in
    kernel; a built-in kernel's port defaults to its definition's
    (`grace kernels-list --json`)."""
    out = subprocess.run([grace, "kernels-list", "--json"], capture_output=True, check=True,
                         timeout=30).stdout
    builtin = {k["name"]: k["port"] for k in json.loads(out)["kernels"]}
    cp = configparser.ConfigParser(inline_comment_prefixes=(";", "#"),
                                   interpolation=None)
    cp.read(ini_path)
    sections = [sec for sec in cp.sections() if sec.startswith("kernel.")]
    if not sections:
        return list(builtin.items())
    kernels = []
    for sec in sections:
        if cp[sec].get("enabled", "true").strip() in ("false", "no", "0"):
            continue
        name = sec[len("kernel."):]
        kernels.append((name, int(cp[sec].get("port", builtin.get(name, 0)))))
    return kernels


def write_bench_config(src, dst, restart_burst, kernel_extra=None, kernels=None,
                       section_extra=None):
    """etc/grace.ini with restart_burst raised, the log at info and
    [auth] argon2_mem_kib at its minimum (so login is fast). kernel_extra
    {NAME: {key: value}} adds or replaces keys in [kernel.NAME]; when src
    has no [kernel.NAME] sections (it runs every built-in kernel), one is
    written for each of `kernels` [(name, port)], so that all still run.
    section_extra {SECTION: {key: value}} does the same in sections src
    has (such as [self_healing])."""
    kernel_extra = {f"kernel.{n}": dict(kv) for n, kv in (kernel_extra or {}).items()}
    extra_sections = {n: dict(kv) for n, kv in (section_extra or {}).items()}
    if kernel_extra and not any(re.match(r"\s*\[kernel\.", l) for l in open(src)):
        if not kernels:
            raise BenchError(f"{src} lists no kernels: pass the kernels to keep running")
        with open(src) as f:
            src_text = f.read()
        src = dst + ".src"
        with open(src, "w") as f:
            f.write(src_text + "".join(f"\n[kernel.{n}]\n" for n, _ in kernels))
    kernel_extra.update(extra_sections)
    out, section, seen = [], None, set()

    def close_section():
        if section == "defaults" and "restart_burst" not in seen:
            out.append(f"restart_burst = {restart_burst}\n")
            seen.add("restart_burst")
        if section == "auth" and "argon2_mem_kib" not in seen:
            out.append(f"argon2_mem_kib = {ARGON2_MEM_KIB}\n")
            seen.add("argon2_mem_kib")
        for k, v in kernel_extra.pop(section, {}).items():
            out.append(f"{k} = {v} ; bench\n")

    for line in open(src):
        m = re.match(r"\s*\[([^\]]+)\]", line)
        if m:
            close_section()
            section = m.group(1)
        key = line.split("=", 1)[0].strip() if "=" in line else None
        if section == "defaults" and key == "restart_burst":
            line = f"restart_burst = {restart_burst} ; bench: kill -9 twenty times\n"
            seen.add(key)
        if section == "grace" and key == "log_level":
            line = "log_level = info\n"
        if section == "auth" and key == "argon2_mem_kib":
            line = f"argon2_mem_kib = {ARGON2_MEM_KIB} ; bench: fast login\n"
            seen.add(key)
        if key and key in kernel_extra.get(section, {}):
            continue  # replaced by close_section()
        out.append(line)
    close_section()
    if "restart_burst" not in seen:
        out.append(f"\n[defaults]\nrestart_burst = {restart_burst}\n")
    if "argon2_mem_kib" not in seen:
        out.append(f"\n[auth]\nargon2_mem_kib = {ARGON2_MEM_KIB} ; bench: fast login\n")
    if kernel_extra:
        raise BenchError(f"no sections {sorted(kernel_extra)} in {src}")
    with open(dst, "w") as f:
        f.writelines(out)


def choose_offset(kernel_ports, wanted):
    cands = [wanted] if wanted is not None else OFFSET_CANDIDATES
    for off in cands:
        ports = [API_PORT + off] + [p + off for p in kernel_ports]
        if max(ports) >= 32768 and wanted is None:
            continue
        if all(port_free(p) for p in ports):
            return off
        if wanted is not None:
            busy = [p for p in ports if not port_free(p)]
            raise BenchError(f"port offset {off}: ports {busy} are in use")
    raise BenchError("no free port offset among %s" % cands)


def wait_ports_free(ports, timeout=10.0):
    deadline = now() + timeout
    while now() < deadline:
        busy = [p for p in ports if not port_free(p)]
        if not busy:
            return
        time.sleep(0.02)
    raise BenchError(f"ports still bound after {timeout}s: {busy}")


# --------------------------------------------------------------------------
# HTTP on raw sockets

HEALTH_REQ = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def parse_head(buf):
    """Returns (status, headers dict, header length) once headers are in."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = buf[:end].split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    status = int(parts[1])
    headers = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(b":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, end + 4


class KeepAlive:
    """A minimal HTTP/1.1 keep-alive client (Content-Length bodies only,
    which is what libevent's evhttp sends)."""

    def __init__(self, port, timeout=60.0, headers=None):
        self.port, self.timeout = port, timeout
        self.sock, self.buf = None, b""
        self.extra = b"".join(b"%s: %s\r\n" % (k.encode(), v.encode())
                              for k, v in (headers or {}).items())

    def _connect(self):
        self.sock = socket.create_connection((HOST, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self):
        if self.sock:
            self.sock.close()
            self.sock = None

    def request(self, method, path, body=None, ctype=b"application/json"):
        if self.sock is None:
            self._connect()
        head = b"%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s" % (method.encode(), path.encode(),
                                                            self.extra)
        if body is not None:
            head += b"Content-Type: %s\r\nContent-Length: %d\r\n" % (ctype, len(body))
        self.sock.sendall(head + b"\r\n" + (body or b""))
        while True:
            h = parse_head(self.buf)
            if h:
                break
            chunk = self.sock.recv(65536)
            if not chunk:
                self.close()
                raise ConnectionError("connection closed before a response")
            self.buf += chunk
        status, headers, hlen = h
        clen = int(headers.get(b"content-length", b"0"))
        while len(self.buf) < hlen + clen:
            chunk = self.sock.recv(max(65536, hlen + clen - len(self.buf)))
            if not chunk:
                self.close()
                raise ConnectionError("connection closed mid-body")
            self.buf += chunk
        data = self.buf[hlen:hlen + clen]
        self.buf = self.buf[hlen + clen:]
        if headers.get(b"connection", b"").lower() == b"close":
            self.close()
        return status, data


def get_json(port, path, timeout=5.0, headers=None):
    c = KeepAlive(port, timeout, headers)
    try:
        st, data = c.request("GET", path)
    finally:
        c.close()
    return st, json.loads(data) if data else None


def post_json(port, path, obj, timeout=30.0, headers=None):
    c = KeepAlive(port, timeout, headers)
    try:
        st, data = c.request("POST", path, json.dumps(obj).encode())
    finally:
        c.close()
    return st, json.loads(data) if data else None


def health_once(port, timeout=5.0):
    """One /health on a fresh connection: (status, body dict)."""
    s = socket.create_connection((HOST, port), timeout)
    try:
        s.sendall(HEALTH_REQ)
        buf = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    finally:
        s.close()
    h = parse_head(buf)
    if not h:
        raise ConnectionError("no HTTP response")
    return h[0], json.loads(buf[h[2]:] or b"null")


def wait_all_health(ports, timeout, retry_s):
    """Polls every port at once on non-blocking sockets until each answered
    /health with 200. A refused or reset attempt is retried retry_s later on
    a fresh socket. Returns {port: perf_counter time of its first answer}."""
    sel = selectors.DefaultSelector()
    done, retry_at, attempts = {}, {}, 0
    deadline = now() + timeout

    def start(port):
        nonlocal attempts
        attempts += 1
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        err = s.connect_ex((HOST, port))
        if err in (0, errno.EINPROGRESS):
            sel.register(s, selectors.EVENT_WRITE, {"port": port, "st": "conn", "buf": b""})
        else:
            s.close()
            retry_at[port] = now() + retry_s

    for p in ports:
        start(p)
    try:
        while len(done) < len(ports):
            t = now()
            if t > deadline:
                missing = sorted(set(ports) - set(done))
                raise BenchError(f"ports {missing} did not answer /health within {timeout}s")
            for p, when in list(retry_at.items()):
                if when <= t:
                    del retry_at[p]
                    start(p)
            wait = min(retry_at.values(), default=t + 0.05) - now()
            for key, _ in sel.select(max(0.0, min(wait, 0.05))):
                s, d = key.fileobj, key.data
                port = d["port"]
                if d["st"] == "conn":
                    if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                        sel.unregister(s)
                        s.close()
                        retry_at[port] = now() + retry_s
                        continue
                    try:
                        s.send(HEALTH_REQ)
                    except OSError:
                        sel.unregister(s)
                        s.close()
                        retry_at[port] = now() + retry_s
                        continue
                    d["st"] = "read"
                    sel.modify(s, selectors.EVENT_READ, d)
                    continue
                try:
                    chunk = s.recv(65536)
                except OSError:
                    chunk = b""
                d["buf"] += chunk
                h = parse_head(d["buf"])
                if h and h[0] == 200:
                    done[port] = now()
                    sel.unregister(s)
                    s.close()
                elif not chunk or h:
                    sel.unregister(s)
                    s.close()
                    retry_at[port] = now() + retry_s
    finally:
        for key in list(sel.get_map().values()):
            key.fileobj.close()
        sel.close()
    return done, attempts


# --------------------------------------------------------------------------
# Grace instances

class Grace:
    def __init__(self, grace, config, data_dir, offset, kernels, log_path):
        self.grace, self.config, self.data_dir = grace, config, data_dir
        self.offset, self.kernels, self.log_path = offset, kernels, log_path
        self.api_port = API_PORT + offset
        self.kernel_ports = {n: p + offset for n, p in kernels}
        self.proc, self.t_exec, self.kernel_pids = None, None, {}
        self.token = None

    def add_admin(self):
        """`grace user add admin --admin`, offline, once per data dir (before
        the clock of any measurement starts)."""
        if os.path.exists(os.path.join(self.data_dir, "grace.db")):
            return
        r = subprocess.run([self.grace, "user", "add", ADMIN_USER, "--admin", "--config",
                            self.config, "--data-dir", self.data_dir],
                           input=ADMIN_PASSWORD + "\n", capture_output=True, text=True,
                           timeout=60, env=clean_env())
        if r.returncode != 0 and "exists" not in r.stderr:
            raise BenchError(f"grace user add: exit {r.returncode}: {r.stderr.strip()}")

    def start(self):
        self.add_admin()
        self.token = None
        self.logf = open(self.log_path, "wb")
        self.t_exec = now()
        self.proc = PROCS.spawn([self.grace, "serve", "--config", self.config,
                                 "--data-dir", self.data_dir, "--port-offset",
                                 str(self.offset)],
                                stdout=self.logf, stderr=self.logf, env=clean_env())

    def wait_ready(self, timeout=20.0, retry_s=0.001):
        ports = list(self.kernel_ports.values())
        done, attempts = wait_all_health(ports, timeout, retry_s)
        t_all = max(done.values())
        # The API too, then learn every kernel pid (to check they all stop).
        deadline = now() + timeout
        while True:
            try:
                st, h = get_json(self.api_port, "/health")
                if st == 200 and h.get("status") == "ok":
                    break
            except (OSError, ValueError):
                pass
            if now() > deadline or self.proc.poll() is not None:
                raise BenchError("grace serve: API /health never said ok")
            time.sleep(0.005)
        self.kernel_pids = {n: k["pid"] for n, k in h["kernels"].items() if k.get("pid")}
        for pid in self.kernel_pids.values():
            PROCS.track(pid)
        return t_all - self.t_exec, attempts

    def pids(self):
        return [self.proc.pid] + list(self.kernel_pids.values())

    def login(self):
        """POST /auth/login as the bench admin; keeps the session token."""
        st, j = post_json(self.api_port, "/auth/login",
                          {"username": ADMIN_USER, "password": ADMIN_PASSWORD})
        if st != 200 or not j or not j.get("token"):
            raise BenchError(f"login: {st} {j}")
        self.token = j["token"]
        return self.token

    def auth(self):
        """Headers for an API route that needs a session."""
        if self.token is None:
            self.login()
        return {"Authorization": f"Bearer {self.token}"}

    def internal(self, kernel):
        """Headers a kernel port wants for anything but /health and /metrics:
        the internal token of this start of grace serve and, where a trust
        kernel runs (kernels then want an SVID: docs/trust.md), the main
        process's SVID for `kernel`, asked for as the admin, as an operator
        would (README)."""
        with open(os.path.join(self.data_dir, "internal.token")) as f:
            h = {INTERNAL_TOKEN_HEADER: f.read().strip()}
        st, out = post_json(self.api_port, "/kernels/trust/jwt-svid",
                            {"for": "grace", "audience": f"spiffe://grace.local/kernel/{kernel}",
                             "ttl_s": 3600}, headers=self.auth())
        if st == 200:
            h.update({"X-Grace-Caller": "grace", "X-Grace-SVID": out["svids"][0]["svid"]})
        return h

    def refresh_pids(self):
        st, h = get_json(self.api_port, "/health")
        self.kernel_pids = {n: k["pid"] for n, k in h["kernels"].items() if k.get("pid")}
        for pid in self.kernel_pids.values():
            PROCS.track(pid)

    def stop(self):
        if self.proc:
            rc = PROCS.stop(self.proc, signal.SIGTERM, timeout=15)
            self.logf.close()
            PROCS.reap_extra()
            self.proc = None
            if rc not in (0, None):
                log(f"grace serve exited {rc}; see {self.log_path}")
        wait_ports_free([self.api_port] + list(self.kernel_ports.values()))

    def log_ready_ms(self):
        with open(self.log_path, "rb") as f:
            for line in f:
                try:
                    msg = json.loads(line).get("msg", "")
                except ValueError:
                    continue
                m = re.match(r"all kernels ready in ([0-9.]+) ms", msg)
                if m:
                    return float(m.group(1))
        return None


# --------------------------------------------------------------------------
# Statistics and formatting

def pct(xs, p):
    """Nearest-rank percentile."""
    s = sorted(xs)
    if not s:
        return float("nan")
    k = max(0, min(len(s) - 1, int(-(-p * len(s) // 100)) - 1))
    return s[k]


def ms(x):
    return f"{x * 1e3:.1f} ms"


def fmt_kib(kib):
    return f"{kib / 1024:.1f} MiB"


class Report:
    def __init__(self):
        self.lines = []

    def __call__(self, line=""):
        self.lines.append(line)
        print(line, flush=True)

    def text(self):
        return "\n".join(self.lines) + "\n"


# --------------------------------------------------------------------------
# 1. Cold start

def bench_cold_start(a, R, kernels, cfg, tmp):
    names = [n for n, _ in kernels]
    ports = [p + a.offset for _, p in kernels]
    data = os.path.join(tmp, "cold-data")
    peer_script = os.path.join(HERE, "peer_kernels.sh")

    def one_grace(i):
        g = Grace(a.grace, cfg, data, a.offset, kernels, os.path.join(tmp, f"cold-grace-{i}.log"))
        g.start()
        try:
            t, attempts = g.wait_ready(retry_s=a.poll_retry)
        finally:
            g.stop()
        return t, g.log_ready_ms()

    def one_peer(i):
        pidfile = os.path.join(tmp, "peer.pids")
        logf = open(os.path.join(tmp, f"cold-peer-{i}.log"), "wb")
        argv = ["sh", peer_script, a.grace, pidfile] + names + [
            "--", "--config", cfg, "--data-dir", data, "--port-offset", str(a.offset)]
        t0 = now()
        sh = PROCS.spawn(argv, stdout=logf, stderr=logf, env=clean_env())
        try:
            done, _ = wait_all_health(ports, 20.0, a.poll_retry)
            t = max(done.values()) - t0
        finally:
            # All answered, so every `&` has run; the pid file may lag by a line.
            deadline = now() + 5
            pids = []
            while now() < deadline:
                try:
                    pids = [int(x) for x in open(pidfile).read().split()]
                except (OSError, ValueError):
                    pids = []
                if len(pids) >= len(names) or sh.poll() is not None:
                    break
                time.sleep(0.005)
            for pid in pids:
                PROCS.track(pid)
                signal_if_grace(pid, signal.SIGTERM)
            PROCS.stop(sh, signal.SIGTERM, timeout=10)  # its `wait` returns
            PROCS.reap_extra()
            logf.close()
            wait_ports_free(ports)
        return t

    floor = exec_floor(a, tmp)
    log("cold start: warm-up (creates the databases, fills the page cache)")
    one_grace("warmup")
    one_peer("warmup")
    g_times, g_log, p_times = [], [], []
    for i in range(a.starts):
        t, lg = one_grace(i)
        g_times.append(t)
        if lg is not None:
            g_log.append(lg / 1e3)
        p_times.append(one_peer(i))
        log(f"cold start {i + 1}/{a.starts}: grace {ms(t)} (log {lg} ms), peer {ms(p_times[-1])}")

    def row(label, xs):
        R(f"   {label:<46} median {ms(statistics.median(xs)):>9}   min {ms(min(xs)):>9}"
          f"   max {ms(max(xs)):>9}")
    R(f"1. Cold start ({a.starts} starts each, alternating; warm data dir; "
      f"{len(kernels)} kernels; poll retry {a.poll_retry * 1e3:g} ms)")
    row(f"grace serve: exec -> all {len(kernels)} answer /health", g_times)
    if g_log:
        row('grace log: "all kernels ready in X ms"', g_log)
    row(f"peer: {len(kernels)} x `grace kernel NAME &` from sh", p_times)
    R(f"   ratio grace / peer: median {statistics.median(g_times) / statistics.median(p_times):.2f}x"
      f", min {min(g_times) / min(p_times):.2f}x")
    if floor:
        R(f"   exec floor: `grace version` {ms(floor[0])} mean, {ms(floor[1])} min (hyperfine -N,"
          f" {floor[2]} runs; exec + dynamic linking of {floor[3]} shared libraries)")
    R()


def exec_floor(a, tmp):
    """What one process of this binary costs to start and exit, measured by
    hyperfine: the floor under every kernel start. None without hyperfine."""
    if not shutil.which("hyperfine"):
        return None
    out = os.path.join(tmp, "hyperfine.json")
    r = subprocess.run(["hyperfine", "-N", "-w", "5", "-r", "50", "--export-json", out,
                        f"{a.grace} version"], capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        return None
    res = json.load(open(out))["results"][0]
    libs = subprocess.run(["ldd", a.grace], capture_output=True, text=True).stdout
    nlibs = sum(1 for ln in libs.splitlines() if "=>" in ln)
    return res["mean"], res["min"], len(res["times"]), nlibs


# --------------------------------------------------------------------------
# 2. Crash recovery

class RefusedCounter(threading.Thread):
    """Opens a fresh connection every interval while armed and counts the
    refused ones. Connections that succeed are closed at once with an RST
    (SO_LINGER 0), so thousands of probes leave no TIME_WAIT behind."""

    def __init__(self, port, interval):
        super().__init__(daemon=True)
        self.port, self.interval = port, interval
        self.armed = threading.Event()
        self.quit = False
        self.attempts = self.refused = self.other = 0

    def run(self):
        linger = struct.pack("ii", 1, 0)
        while not self.quit:
            if not self.armed.wait(0.05):
                continue
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            s.settimeout(2.0)
            try:
                s.connect((HOST, self.port))
            except ConnectionRefusedError:
                self.refused += 1
            except OSError:
                self.other += 1
            finally:
                self.attempts += 1
                s.close()
            time.sleep(self.interval)


def crash_series(a, port, kills, label):
    """kill -9 of whatever answers /health on port, `kills` times. Returns
    (recovery times, main-loop refused count, prober)."""
    prober = RefusedCounter(port, a.probe_interval)
    prober.start()
    times, refused_main, resets = [], 0, 0
    try:
        for i in range(kills):
            # Let the kernel run past stable_ms (1000 ms by default) so the
            # supervisor restarts it at once rather than backing off.
            time.sleep(a.kill_spacing)
            st, h = health_once(port)
            if st != 200:
                raise BenchError(f"{label}: /health answered {st} before kill {i + 1}")
            old = h["pid"]
            prober.armed.set()
            time.sleep(0.002)  # the prober is connecting before the kill
            t0 = now()
            os.kill(old, signal.SIGKILL)
            deadline = t0 + 15.0
            while True:
                if now() > deadline:
                    raise BenchError(f"{label}: no /health answer within 15 s of kill {i + 1}")
                try:
                    st, h = health_once(port, timeout=10.0)
                    if st == 200 and h.get("pid") != old:
                        t1 = now()
                        break
                except ConnectionRefusedError:
                    refused_main += 1
                    time.sleep(0.0002)
                except (OSError, ValueError):
                    resets += 1  # the old process accepting, then dying
                    time.sleep(0.0002)
            time.sleep(0.02)
            prober.armed.clear()
            PROCS.track(h["pid"])
            times.append(t1 - t0)
            log(f"{label}: kill {i + 1}/{kills}: {ms(t1 - t0)}")
    finally:
        prober.quit = True
        prober.armed.set()
        prober.join(5)
    return times, refused_main, resets, prober


def bench_crash(a, R, kernels, cfg, tmp):
    lib = dict(kernels)["librarian"] + a.offset
    data = os.path.join(tmp, "crash-data")
    g = Grace(a.grace, cfg, data, a.offset, kernels, os.path.join(tmp, "crash-grace.log"))
    g.start()
    try:
        g.wait_ready()
        g_times, g_ref, g_resets, g_probe = crash_series(a, lib, a.kills, "grace")
        g.refresh_pids()
        st, h = get_json(g.api_port, "/health")
        lib_state = h["kernels"]["librarian"]
    finally:
        g.stop()

    logf = open(os.path.join(tmp, "crash-lean.log"), "wb")
    sh = PROCS.spawn(["sh", os.path.join(HERE, "lean_supervisor.sh"), a.grace, "librarian",
                      "--config", cfg, "--data-dir", data, "--port-offset", str(a.offset)],
                     stdout=logf, stderr=logf, env=clean_env())
    try:
        deadline = now() + 10
        while True:
            try:
                st, h = health_once(lib)
                if st == 200:
                    PROCS.track(h["pid"])
                    break
            except OSError:
                pass
            if now() > deadline:
                raise BenchError("lean supervisor: librarian never answered")
            time.sleep(0.01)
        l_times, l_ref, l_resets, l_probe = crash_series(a, lib, a.kills, "lean")
    finally:
        PROCS.stop(sh, signal.SIGTERM)
        PROCS.reap_extra()
        logf.close()
        wait_ports_free([lib])

    def line(name, ts):
        return (f"   {name:<46} median {ms(statistics.median(ts)):>8}   p90 {ms(pct(ts, 90)):>8}"
                f"   max {ms(max(ts)):>8}")
    R(f"2. Crash recovery: kill -9 of the librarian x{a.kills}, {a.kill_spacing:g} s apart; "
      f"kill -> first /health 200 from a new pid, fresh connection per attempt")
    R(line("grace (supervisor holds the socket)", g_times))
    R(f"      refused: measuring loop {g_ref}, prober {g_probe.refused} of {g_probe.attempts}"
      f" connects ({g_probe.other} other errors); resets {g_resets};"
      f" supervisor: restarts={lib_state.get('restarts')} state={lib_state.get('state')}")
    R(line("peer: sh loop restarting `grace kernel`", l_times))
    R(f"      refused: measuring loop {l_ref}, prober {l_probe.refused} of {l_probe.attempts}"
      f" connects ({l_probe.other} other errors); resets {l_resets}")
    R(f"   ratio grace / peer: median {statistics.median(g_times) / statistics.median(l_times):.2f}x")
    R()
    a.summary["crash"] = {"kills": len(g_times), "median_ms": statistics.median(g_times) * 1e3,
                          "p90_ms": pct(g_times, 90) * 1e3,
                          "refused": g_ref + g_probe.refused, "probes": g_probe.attempts,
                          "peer_median_ms": statistics.median(l_times) * 1e3,
                          "peer_refused": l_ref + l_probe.refused}


# --------------------------------------------------------------------------
# 3. Memory

def proc_mem(pid):
    rss = pss = None
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def mem_snapshot(g):
    serve_rss, serve_pss = proc_mem(g.proc.pid)
    k = {n: proc_mem(pid) for n, pid in g.kernel_pids.items()}
    k_rss = sum(v[0] for v in k.values())
    pss_ok = serve_pss is not None and all(v[1] is not None for v in k.values())
    k_pss = sum(v[1] for v in k.values()) if pss_ok else None
    return {"serve_rss": serve_rss, "kernels_rss": k_rss, "n": len(k), "per": k,
            "total_rss": serve_rss + k_rss,
            "total_pss": serve_pss + k_pss if pss_ok else None}


def hammer(port, paths, per_path, threads, headers=None):
    """per_path GETs on each path through keep-alive connections."""
    jobs = [p for p in paths for _ in range(per_path)]
    errors = []

    def worker(chunk):
        c = KeepAlive(port, headers=headers)
        try:
            for p in chunk:
                st, _ = c.request("GET", p)
                if st != 200:
                    errors.append((p, st))
        except OSError as e:
            errors.append(("conn", str(e)))
        finally:
            c.close()
    ts = [threading.Thread(target=worker, args=(jobs[i::threads],)) for i in range(threads)]
    t0 = now()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return now() - t0, len(jobs), errors


def mem_lines(R, label, m):
    n = m["n"] + 1
    pss = f", PSS {fmt_kib(m['total_pss'])}" if m["total_pss"] is not None else ""
    R(f"   {label:<24} total RSS {fmt_kib(m['total_rss']):>9} ({n} processes, "
      f"avg {fmt_kib(m['total_rss'] / n)}){pss}")
    R(f"   {'':<24} grace serve {fmt_kib(m['serve_rss'])}, kernels avg "
      f"{fmt_kib(m['kernels_rss'] / max(1, m['n']))}")


def bench_memory(a, R, g):
    before = mem_snapshot(g)
    paths = [f"/kernels/{n}/health" for n in g.kernel_pids]
    dt, n, errors = hammer(g.api_port, paths, a.mem_requests, 4, g.auth())
    if errors:
        raise BenchError(f"memory: {len(errors)} failed requests, e.g. {errors[:3]}")
    # The same count straight to each kernel's own port.
    for name, port in g.kernel_ports.items():
        c = KeepAlive(port)
        try:
            for _ in range(a.mem_requests):
                st, _ = c.request("GET", "/health")
                if st != 200:
                    raise BenchError(f"memory: {name} /health {st}")
        finally:
            c.close()
    after = mem_snapshot(g)
    R("3. Memory (VmRSS from /proc/PID/status; PSS from smaps_rollup counts shared pages once)")
    mem_lines(R, "after start", before)
    mem_lines(R, f"after {a.mem_requests} req/kernel", after)
    R(f"   ({n} GETs through the gateway /kernels/NAME/health in {dt:.1f} s = "
      f"{n / dt:.0f} req/s with 4 keep-alive clients, then {a.mem_requests} direct "
      f"GET /health on each kernel port)")
    # The standbys (docs/supervisor.md), started stable_ms after each kernel
    # was ready: apart, so the totals above compare with earlier runs.
    st, h = get_json(g.api_port, "/health")
    sb = [k["standby_pid"] for k in h["kernels"].values() if k.get("standby_pid")]
    for pid in sb:
        PROCS.track(pid)
    sbm = [m for m in (proc_mem(pid) for pid in sb) if m[0] is not None]
    if sbm and all(m[1] is not None for m in sbm):
        R(f"   standbys (not in the totals): {len(sbm)} processes, RSS "
          f"{fmt_kib(sum(m[0] for m in sbm))}, PSS {fmt_kib(sum(m[1] for m in sbm))}"
          f" (standby = 0 goes without them)")
    R()
    return after


# --------------------------------------------------------------------------
# 4. Librarian search

def make_vocab(rng, n):
    cons, vows = "bcdfghklmnprstvz", "aeiou"
    seen, words = set(), []
    while len(words) < n:
        syl = rng.randint(2, 4)
        w = "".join(rng.choice(cons) + rng.choice(vows) for _ in range(syl))
        if rng.random() < 0.5:
            w += rng.choice(cons)
        if w not in seen:
            seen.add(w)
            words.append(w)
    return words


def make_docs(n_docs, vocab_size, seed):
    """Deterministic documents: Zipf-like (1/rank) words, 50-300 a body."""
    rng = random.Random(seed)
    vocab = make_vocab(rng, vocab_size)
    cum, acc = [], 0.0
    for r in range(1, vocab_size + 1):
        acc += 1.0 / r
        cum.append(acc)
    total = acc
    tags = [f"topic{i:02d}" for i in range(24)]
    choices = rng.choices
    bodies = []
    for i in range(n_docs):
        nw = rng.randint(50, 300)
        body = " ".join(choices(vocab, cum_weights=cum, k=nw))
        title = " ".join(choices(vocab, cum_weights=cum, k=rng.randint(3, 8)))
        dtags = rng.sample(tags, rng.randint(1, 3))
        bodies.append(json.dumps({"title": title, "body": body, "tags": dtags}).encode())
    return vocab, bodies, total


def load_docs(port, bodies, threads, headers=None):
    errors = []

    def worker(chunk):
        c = KeepAlive(port, headers=headers)
        try:
            for b in chunk:
                st, data = c.request("POST", "/librarian/documents", b)
                if st != 201:
                    errors.append((st, data[:200]))
                    if len(errors) > 20:
                        return
        except OSError as e:
            errors.append(("conn", str(e)))
        finally:
            c.close()
    ts = [threading.Thread(target=worker, args=(bodies[i::threads],)) for i in range(threads)]
    t0 = now()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return now() - t0, errors


def parse_wrk(out):
    res = {}
    m = re.search(r"Requests/sec:\s*([0-9.]+)", out)
    res["rps"] = float(m.group(1)) if m else None
    for p in ("50", "90", "99"):
        m = re.search(rf"^\s*{p}%\s+([0-9.]+)(us|ms|s)\s*$", out, re.M)
        if m:
            v = float(m.group(1)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[m.group(2)]
            res[f"p{p}"] = v
    m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    res["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: (.*)", out)
    res["sockerr"] = m.group(1).strip() if m else ""
    m = re.search(r"(\d+) requests in", out)
    res["n"] = int(m.group(1)) if m else None
    return res


def wrk_argv(threads, conns, secs, url, headers=None):
    argv = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{secs}s", "--latency"]
    for k, v in (headers or {}).items():
        argv += ["-H", f"{k}: {v}"]
    return argv + [url]


def run_wrk(a, url, headers=None):
    argv = wrk_argv(a.wrk_threads, a.wrk_conns, a.wrk_secs, url, headers)
    out = subprocess.run(argv, capture_output=True, text=True,
                         timeout=a.wrk_secs + 30, stdin=subprocess.DEVNULL)
    if out.returncode != 0:
        raise BenchError(f"wrk failed: {out.stderr.strip()}")
    return parse_wrk(out.stdout)


def ndjson_batches(bodies, max_bytes):
    """The JSON lines `bodies` as NDJSON request bodies of at most
    max_bytes each (a line longer than that goes alone)."""
    out, cur, n = [], [], 0
    for b in bodies:
        if cur and n + len(b) + 1 > max_bytes:
            out.append(b"\n".join(cur) + b"\n")
            cur, n = [], 0
        cur.append(b)
        n += len(b) + 1
    if cur:
        out.append(b"\n".join(cur) + b"\n")
    return out


def ndjson_requests(bodies, docs_per):
    """The JSON lines `bodies` as NDJSON request bodies of docs_per lines
    each (OpenSearch Benchmark's bulk_size), the last one shorter."""
    return [b"\n".join(bodies[i:i + docs_per]) + b"\n" for i in range(0, len(bodies), docs_per)]


def load_bulk(port, bodies, clients, docs_per, headers=None):
    """POST /librarian/documents/_bulk: NDJSON requests of docs_per
    documents, from `clients` connections, each sending the next request
    when its last is answered (as OpenSearch Benchmark's bulk operation)."""
    batches = ndjson_requests(bodies, docs_per)
    todo = list(reversed(batches))
    errors = []
    h = dict(headers or {})
    h["Content-Type"] = "application/x-ndjson"

    def worker():
        c = KeepAlive(port, headers=h)
        try:
            while len(errors) <= 20:
                try:
                    body = todo.pop()
                except IndexError:
                    return
                st, data = c.request("POST", "/librarian/documents/_bulk", body)
                j = json.loads(data) if st == 200 else {}
                if st != 200 or j.get("failed"):
                    errors.append((st, data[:300]))
        except OSError as e:
            errors.append(("conn", str(e)))
        finally:
            c.close()
    ts = [threading.Thread(target=worker) for _ in range(clients)]
    t0 = now()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return now() - t0, errors, len(batches), max(len(b) for b in batches)


def dir_bytes(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


# The peer, Xapian (python3-xapian), on the same documents in the same run:
# BM25 (k1 1.2, b 0.75, as the librarian), the title's words weighted 10 and
# the tags' 5 by wdf, as the librarian weights its fields. A document's data
# is what the librarian stores and returns of it (id, title, tags, source,
# owner, body) as JSON, for the same-answer variant (xapian_answer).
def xapian_index(path, bodies):
    import xapian
    db = xapian.WritableDatabase(path, xapian.DB_CREATE_OR_OVERWRITE)
    tg = xapian.TermGenerator()
    tg.set_stemmer(xapian.Stem("en"))
    tg.set_stemming_strategy(xapian.TermGenerator.STEM_ALL)
    t0 = now()
    for i, b in enumerate(bodies):
        d = json.loads(b)
        doc = xapian.Document()
        tg.set_document(doc)
        tg.index_text(d["title"], 10)
        tg.increase_termpos()
        tg.index_text(d["body"])
        tg.increase_termpos()
        tg.index_text(" ".join(d["tags"]), 5)
        doc.set_data(json.dumps({"id": i + 1, "title": d["title"], "tags": d["tags"],
                                 "source": d.get("source"), "owner": d.get("owner"),
                                 "body": d["body"]}, separators=(",", ":")))
        db.add_document(doc)
    db.commit()
    db.close()
    return now() - t0


def xapian_query(db, qp, enq, word):
    """The bare peer (issue 18's): the top 10's ids and the estimate only."""
    enq.set_query(qp.parse_query(word))
    m = enq.get_mset(0, 10, 10000)
    return m.get_matches_estimated()


# A snippet of about the librarian's 16 tokens: the corpus's words average
# 6.5 letters and a space (Xapian's length is in bytes of text).
XAPIAN_SNIPPET_BYTES = 120
# MSet.snippet's flags: "omega" is what omega's $snippet passes by default
# (SNIPPET_BACKGROUND_MODEL | SNIPPET_EXHAUSTIVE: the window is chosen also
# by the rarity of the words around the match, each looked up in the
# database); "plain" (0) chooses by the matches alone, nearer to the
# librarian's (FTS5's) snippet. --xapian-snippet sets it.
XAPIAN_SNIPPET = "omega"


def xapian_snippet_flags():
    import xapian
    if XAPIAN_SNIPPET == "plain":
        return 0
    return xapian.MSet.SNIPPET_BACKGROUND_MODEL | xapian.MSet.SNIPPET_EXHAUSTIVE


def xapian_answer(db, qp, enq, word):
    """The same answer as the librarian's: for each of the top 10 its stored
    data (id, title, tags, source, owner) and a highlighted snippet of its
    body (MSet.snippet, as Xapian's omega makes them), written as JSON."""
    enq.set_query(qp.parse_query(word))
    m = enq.get_mset(0, 10, 10000)
    stem = qp.stem  # the query's stemmer, as omega passes it
    flags = xapian_snippet_flags()
    results = []
    for hit in m:
        d = json.loads(hit.document.get_data())
        snip = m.snippet(d["body"], XAPIAN_SNIPPET_BYTES, stem, flags,
                         "<mark>", "</mark>", "\u2026").decode()
        results.append({"id": d["id"], "title": d["title"], "score": hit.weight,
                        "snippet": snip, "tags": d["tags"], "source": d["source"],
                        "owner": d["owner"]})
    est = m.get_matches_estimated()
    return json.dumps({"query": word, "total": min(est, 10000),
                       "total_relation": "eq" if est < 10000 else "gte",
                       "results": results}, separators=(",", ":"))


def xapian_open(path):
    import xapian
    db = xapian.Database(path)
    qp = xapian.QueryParser()
    qp.stem = xapian.Stem("en")
    qp.set_stemmer(qp.stem)
    qp.set_stemming_strategy(xapian.QueryParser.STEM_ALL)
    qp.set_default_op(xapian.Query.OP_AND)
    enq = xapian.Enquire(db)
    enq.set_weighting_scheme(xapian.BM25Weight(1.2, 0, 1, 0.75, 0.0))
    return db, qp, enq


def _xapian_worker(path, word, secs, q, full):
    db, qp, enq = xapian_open(path)
    query = xapian_answer if full else xapian_query
    n, end = 0, now() + secs
    while now() < end:
        query(db, qp, enq, word)
        n += 1
    q.put(n)


def xapian_throughput(path, word, clients, secs, full=False):
    """Queries a second of `clients` processes: xapian_query's, or with
    full, xapian_answer's."""
    import multiprocessing as mp
    q = mp.Queue()
    ps = [mp.Process(target=_xapian_worker, args=(path, word, secs, q, full))
          for _ in range(clients)]
    for p in ps:
        p.start()
    total = sum(q.get() for _ in ps)
    for p in ps:
        p.join()
    return total / secs


def bench_search(a, R, g):
    log(f"search: generating {a.docs} documents")
    t0 = now()
    vocab, bodies, _ = make_docs(a.docs, a.vocab, a.seed)
    gen_s = now() - t0
    nbytes = sum(len(b) for b in bodies)
    log(f"search: generated {nbytes / 1e6:.0f} MB in {gen_s:.1f} s; bulk loading through the API")
    # As OpenSearch Benchmark loads a corpus (its tracks' bulk_size and
    # bulk_indexing_clients): the librarian has one writer, and the
    # requests that queue behind it are committed together.
    dt, errors, nbatch, big = load_bulk(g.api_port, bodies, a.bulk_clients, a.bulk_docs, g.auth())
    if errors:
        raise BenchError(f"load: {len(errors)} failed bulk POSTs, e.g. {errors[:3]}")
    log(f"search: loaded in {dt:.1f} s; indexing the same into Xapian")
    xdir = os.path.join(g.data_dir, "xapian-peer")
    x_dt = xapian_index(xdir, bodies)
    x_bytes = dir_bytes(xdir)
    del bodies
    lib_pid = g.kernel_pids["librarian"]
    lib_rss, _ = proc_mem(lib_pid)
    db = os.path.join(g.data_dir, "librarian.db")
    # The size at rest: a second after its last write the librarian
    # checkpoints and truncates the WAL a load grew (docs/librarian.md);
    # what is left of it is counted too.
    st, _ = get_json(g.api_port, "/librarian/search?query=" + vocab[0], headers=g.auth())
    wal_of = lambda: os.path.getsize(db + "-wal") if os.path.exists(db + "-wal") else 0  # noqa: E731
    deadline = now() + 10
    while wal_of() > 4 << 20 and now() < deadline:
        time.sleep(0.1)
    wal_bytes = wal_of()
    db_bytes = os.path.getsize(db) + wal_bytes

    rng = random.Random(a.seed + 1)
    classes = [("common", 1, 20), ("medium", 200, 1000), ("rare", 3000, a.vocab)]
    per_class = max(1, a.queries // len(classes))
    qs = []
    for cls, lo, hi in classes:
        for _ in range(per_class):
            qs.append((cls, vocab[rng.randint(lo, hi) - 1]))
    rng.shuffle(qs)
    c = KeepAlive(g.api_port, headers=g.auth())
    for _, w in qs[:10]:
        c.request("GET", f"/librarian/search?query={w}&limit=10")
    lat = {cls: [] for cls, _, _ in classes}
    qms = {cls: [] for cls, _, _ in classes}
    totals = {cls: [] for cls, _, _ in classes}
    plans = set()
    for cls, w in qs:
        t0 = now()
        st, data = c.request("GET", f"/librarian/search?query={w}&limit=10")
        t1 = now()
        if st != 200:
            raise BenchError(f"search {w}: {st} {data[:200]!r}")
        j = json.loads(data)
        lat[cls].append(t1 - t0)
        qms[cls].append(j.get("query_ms", 0) / 1e3)
        totals[cls].append(j.get("total", 0))
        plans.add(j.get("plan"))
    c.close()
    # The peer, the same queries, one client, in process (no HTTP): bare
    # (xapian_query) and giving the same answer (xapian_answer).
    xdb, xqp, xenq = xapian_open(xdir)
    for _, w in qs[:10]:
        xapian_query(xdb, xqp, xenq, w)
        xapian_answer(xdb, xqp, xenq, w)
    xlat = {cls: [] for cls, _, _ in classes}
    alat = {cls: [] for cls, _, _ in classes}
    for cls, w in qs:
        t0 = now()
        xapian_query(xdb, xqp, xenq, w)
        t1 = now()
        xapian_answer(xdb, xqp, xenq, w)
        alat[cls].append(now() - t1)
        xlat[cls].append(t1 - t0)
    xdb.close()

    lib_port = g.kernel_ports["librarian"]
    words = [("medium", vocab[499]), ("common", vocab[4])]
    thr = []
    for cls, word in words:
        log(f"search: wrk on '{word}' ({cls}) through the API and directly; Xapian x{a.wrk_conns}")
        w_gw = run_wrk(a, f"http://{HOST}:{g.api_port}/librarian/search?query={word}&limit=10",
                       g.auth())
        w_dir = run_wrk(a, f"http://{HOST}:{lib_port}/search?query={word}&limit=10",
                        g.internal("librarian"))
        x_rps = xapian_throughput(xdir, word, a.wrk_conns, a.wrk_secs)
        a_rps = xapian_throughput(xdir, word, a.wrk_conns, a.wrk_secs, full=True)
        thr.append((cls, word, w_gw, w_dir, x_rps, a_rps))

    R(f"4. Librarian search ({a.docs} documents, {a.vocab}-word Zipf vocabulary, "
      f"50-300 words each, seed {a.seed}); peer: Xapian {xapian_version()} in the same run")
    R(f"   ingest: {a.docs} docs in {nbatch} POST /librarian/documents/_bulk (NDJSON,"
      f" {a.bulk_docs} documents, <= {big / 1e6:.1f} MB each) via the API, {a.bulk_clients}"
      f" client(s): {dt:.1f} s = {a.docs / dt:.0f} docs/s; "
      f"Xapian (in process, one writer): {a.docs / x_dt:.0f} docs/s; ratio {x_dt / dt:.2f}")
    R(f"   on disk: librarian {db_bytes / 2**20:.0f} MiB (db + wal, FTS5 and block index;"
      f" wal {wal_bytes / 2**20:.0f} MiB);"
      f" Xapian {x_bytes / 2**20:.0f} MiB; ratio {db_bytes / max(x_bytes, 1):.2f}"
      f"; librarian RSS {fmt_kib(lib_rss)}")
    R(f"   one client, {len(qs)} queries, top 10 (librarian: through the API, HTTP and JSON;"
      f" Xapian: in process; 'Xapian' the bare peer, top 10 ids and the estimate;"
      f" 'same answer' also each hit's stored data and a highlighted snippet"
      f" ({XAPIAN_SNIPPET} flags), as JSON),"
      f" plans {sorted(p for p in plans if p)}:")
    for cls, lo, hi in classes:
        xs, ys, zs = lat[cls], xlat[cls], alat[cls]
        what = f"ranks {lo}-{hi}, {statistics.mean(totals[cls]):.0f} hits avg"
        R(f"     {cls:<6} {what:<34} p50 {ms(pct(xs, 50)):>8} p99 {ms(pct(xs, 99)):>8}"
          f" (server p50 {ms(pct(qms[cls], 50))})  Xapian p50 {ms(pct(ys, 50)):>8}"
          f" p99 {ms(pct(ys, 99)):>8}  p50 ratio {pct(ys, 50) / pct(xs, 50):.2f}"
          f"  same answer p50 {ms(pct(zs, 50)):>8} p99 {ms(pct(zs, 99)):>8}"
          f"  p50 ratio {pct(zs, 50) / pct(xs, 50):.2f}")
    R(f"   {a.wrk_conns} clients (wrk -t{a.wrk_threads} -c{a.wrk_conns} -d{a.wrk_secs}s; Xapian:"
      f" {a.wrk_conns} processes, in process, bare and same answer):")
    for cls, word, w_gw, w_dir, x_rps, a_rps in thr:
        gw, di = w_gw['rps'] or 0, w_dir['rps'] or 0
        R(f"     {cls:<6} {word:<12} gateway {gw:>7.0f} req/s (p50 {ms(w_gw.get('p50', float('nan')))},"
          f" p99 {ms(w_gw.get('p99', float('nan')))})  direct {di:>7.0f} req/s"
          f"{', non-2xx ' + str(w_gw['non2xx'] + w_dir['non2xx']) if w_gw['non2xx'] + w_dir['non2xx'] else ''}")
        R(f"       Xapian bare {x_rps:>7.0f} q/s: ratio gateway {gw / x_rps:.2f}, direct {di / x_rps:.2f};"
          f"  Xapian same answer {a_rps:>7.0f} q/s: ratio gateway {gw / a_rps:.2f},"
          f" direct {di / a_rps:.2f}")
    R()


def xapian_version():
    import xapian
    return xapian.version_string()


# --------------------------------------------------------------------------

def header(a, R):
    try:
        rev = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--", "src"],
                               capture_output=True, text=True).stdout.strip()
    except OSError:
        rev, dirty = "?", ""
    ver = subprocess.run([a.grace, "version"], capture_output=True, text=True).stdout.strip()
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    R(f"Grace benchmarks  {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    R(f"   {ver}, commit {rev}{' (src modified)' if dirty else ''}, binary {a.grace_src}"
      f" (sha256 {a.grace_sha})")
    R(f"   {os.cpu_count()} CPUs ({cpu}), Linux {os.uname().release}, "
      f"Python {sys.version.split()[0]}, port offset {a.offset}, "
      f"load average {os.getloadavg()[0]:.2f} at start")
    R()


MY_PHASES = ["cold", "crash", "memory", "search"]
OTHER_PHASES = ["gateway", "guardian", "heal", "restart"]  # bench/gateway_bench.py, restart_bench.py


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("build_dir")
    env = os.environ.get
    ap.add_argument("--docs", type=int, default=int(env("BENCH_DOCS", "100000")))
    ap.add_argument("--starts", type=int, default=int(env("BENCH_STARTS", "10")))
    ap.add_argument("--kills", type=int, default=int(env("BENCH_KILLS", "20")))
    ap.add_argument("--queries", type=int, default=int(env("BENCH_QUERIES", "300")))
    ap.add_argument("--mem-requests", type=int, default=1000)
    ap.add_argument("--vocab", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--port-offset", type=int,
                    default=int(env("BENCH_PORT_OFFSET")) if env("BENCH_PORT_OFFSET") else None)
    ap.add_argument("--only", default=env("BENCH_ONLY", ",".join(MY_PHASES)),
                    help="comma-separated subset of cold,crash,memory,search "
                    "(names of gateway_bench.py's benchmarks are ignored)")
    ap.add_argument("--poll-retry", type=float, default=0.001,
                    help="seconds between attempts on a refused port (cold start)")
    ap.add_argument("--kill-spacing", type=float, default=1.3)
    ap.add_argument("--probe-interval", type=float, default=0.0005)
    ap.add_argument("--load-threads", type=int, default=4)
    # OpenSearch Benchmark's defaults for a track's bulk indexing (e.g.
    # geonames: bulk_size 5000, bulk_indexing_clients 8).
    ap.add_argument("--bulk-docs", type=int, default=5000,
                    help="documents a bulk request when loading the search corpus")
    ap.add_argument("--bulk-clients", type=int, default=8,
                    help="connections loading the search corpus at once")
    ap.add_argument("--wrk-threads", type=int, default=2)
    ap.add_argument("--wrk-conns", type=int, default=16)
    ap.add_argument("--wrk-secs", type=int, default=5)
    ap.add_argument("--xapian-snippet", choices=("omega", "plain"), default="omega",
                    help="the same-answer Xapian peer's MSet.snippet flags: omega's default"
                    " (background model, exhaustive) or none")
    ap.add_argument("--out", default=os.path.join(HERE, "results-latest.txt"))
    ap.add_argument("--keep-tmp", action="store_true")
    ap.add_argument("--snapshot", help="run this copy of BUILD_DIR/grace (run.sh makes one "
                    "copy for both scripts, so a rebuild between them changes nothing)")
    ap.add_argument("--summary", dest="summary_file", help="write the key figures as JSON to this file "
                    "(run.sh passes them on to gateway_bench.py's summary of targets)")
    # run.sh passes its extra arguments to both scripts: each ignores the
    # options only gateway_bench.py knows.
    a, rest = ap.parse_known_args()
    if rest:
        log(f"ignoring {' '.join(rest)} (not an option of {os.path.basename(__file__)})")
    a.summary = {}

    global XAPIAN_SNIPPET
    XAPIAN_SNIPPET = a.xapian_snippet
    a.grace = os.path.abspath(os.path.join(a.build_dir, "grace"))
    if not os.access(a.grace, os.X_OK):
        raise BenchError(f"{a.grace}: not found; build first (ninja -C {a.build_dir})")
    src_ini = os.path.join(REPO, "etc", "grace.ini")
    kernels = read_kernels(src_ini, a.grace)
    if not kernels or "librarian" not in dict(kernels):
        raise BenchError(f"{src_ini}: the kernels it runs do not include librarian")
    a.offset = choose_offset([p for _, p in kernels], a.port_offset)
    only = set(a.only.split(","))
    unknown = only - set(MY_PHASES) - set(OTHER_PHASES)
    if unknown:
        raise BenchError(f"unknown benchmark(s) {sorted(unknown)}; "
                         f"choose from {','.join(MY_PHASES + OTHER_PHASES)}")
    only &= set(MY_PHASES)

    tmp = tempfile.mkdtemp(prefix="grace-bench-")
    # Run a private copy: a rebuild during the run (ninja relinks in place)
    # must not swap the binary between two measurements.
    a.grace_src = a.grace
    a.grace = os.path.join(tmp, "grace")
    shutil.copy2(a.snapshot or a.grace_src, a.grace)
    with open(a.grace, "rb") as f:
        a.grace_sha = hashlib.sha256(f.read()).hexdigest()[:12]
    cfg = os.path.join(tmp, "bench.ini")
    write_bench_config(src_ini, cfg, 100)
    R = Report()
    t_start = now()
    failed = False
    try:
        header(a, R)
        if "cold" in only:
            bench_cold_start(a, R, kernels, cfg, tmp)
        if "crash" in only:
            bench_crash(a, R, kernels, cfg, tmp)
        if "memory" in only or "search" in only:
            g = Grace(a.grace, cfg, os.path.join(tmp, "search-data"), a.offset, kernels,
                      os.path.join(tmp, "search-grace.log"))
            g.start()
            try:
                g.wait_ready()
                if "memory" in only:
                    bench_memory(a, R, g)
                if "search" in only:
                    bench_search(a, R, g)
            finally:
                g.stop()
        R(f"total bench time {now() - t_start:.0f} s; load average {os.getloadavg()[0]:.2f}"
          f" at the end; temp dir {tmp}"
          f"{' (kept)' if a.keep_tmp else ' (removed)'}")
    except BaseException as e:  # report, clean up, fail
        failed = True
        R(f"BENCH FAILED: {type(e).__name__}: {e}")
        raise
    finally:
        PROCS.stop_all()
        with open(a.out, "w") as f:
            f.write(R.text())
        if a.summary_file:
            with open(a.summary_file, "w") as f:
                json.dump(a.summary, f)
        if not a.keep_tmp and not failed:
            shutil.rmtree(tmp, ignore_errors=True)
        elif failed:
            log(f"logs kept in {tmp}")


def on_term(sig, frame):
    raise KeyboardInterrupt(f"signal {sig}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_term)
    try:
        main()
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt as e:
        print(f"bench: interrupted {e}", file=sys.stderr)
        sys.exit(130)
