#!/usr/bin/env python3
"""Immutable log benchmark: appends per second and the time to verify a
large log, against `grace kernel immutable_log` run alone.

    python3 bench/log_bench.py [--grace build/grace] [--entries 1000000] [--budget 900]

Measures, on loopback, one keep-alive connection, one request in flight
(a closed loop from this one Python process):

  * appends/s with one entry per POST /entries (--single, default 3000);
    request bodies are built before the clock starts, so the figures are
    the server's (and the HTTP round trip's), not the client's JSON;
  * appends/s with batches of 100 and of 1000 entries per POST
    (--batch-entries each, default 100,000);
  * the time of GET /verify on --entries entries (default one million),
    built with batches of 1000, and the build's own append rate. The build
    is bounded: it stops when --budget seconds of the whole run are spent
    (keeping --verify-reserve for the verify itself) and the report says
    how many entries were verified.

Reference, same run, same process: SQLite alone (Python's sqlite3) doing the
same inserts on a file of its own, with the kernel's schema and pragmas (WAL,
synchronous=NORMAL, one transaction per request, same batch sizes): the
entry row and the Merkle rows (the leaf hash and the hash of every subtree
an entry completes, computed with hashlib), so about 2n node rows for n
entries, as docs/immutable-log.md describes. A second reference writes the
entry rows only. The ratio grace / SQLite is what the kernel (HTTP, JSON,
canonical form, hashing in C, the stored tree) costs over the bare inserts.

Each entry is a JSON value about the size of an audit event (~170 bytes in
canonical form). The kernel runs with its own config and data directory in
a temporary directory, removed afterwards (--keep-tmp keeps it), on a port
clear of 8000-8149 and of the test suite's; it is stopped by its pid.
Standard library only. Progress goes to stderr, the report to stdout.
"""

import argparse
import hashlib
import http.client
import json
import os
import secrets
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

from benchkit import HOST, TOKEN_HEADER, port_free

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
LOG_PORT = 8101
# 8101+N below 32768 and clear of the test suite (multiples of 200 up to
# 24000) and of bus_bench.py (24300-24650, on 8000+N and 8100+N).
OFFSETS = [24320, 24420, 24520, 24620]


def log(msg):
    print("[log-bench %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def event(i):
    """An audit-event-sized JSON value."""
    return {"id": i, "ts_ms": 1795000000000 + i, "actor": "user%d" % (i % 97),
            "action": "document.update", "resource": "doc/%d" % (i % 10007),
            "outcome": "ok", "details": {"request_id": "%032x" % i}, "source_ip": "10.0.0.1"}


def canonical(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# --------------------------------------------------------------------------
# The kernel

class Kernel:
    def __init__(self, grace, tmp):
        self.tmp = tmp
        self.data = os.path.join(tmp, "data")
        os.makedirs(self.data, mode=0o700)
        self.token = secrets.token_hex(32)
        fd = os.open(os.path.join(self.data, "internal.token"),
                     os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, self.token.encode())
        os.close(fd)
        self.offset = next((n for n in OFFSETS if port_free(LOG_PORT + n)), None)
        if self.offset is None:
            raise RuntimeError("no free port among %s" % [LOG_PORT + n for n in OFFSETS])
        self.port = LOG_PORT + self.offset
        ini = os.path.join(tmp, "grace.ini")
        with open(ini, "w") as f:
            f.write("[grace]\nlog_level = warn\n\n[kernel.immutable_log]\nport = %d\n"
                    "tier = core\n" % LOG_PORT)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("GRACE_", "LISTEN_", "NOTIFY_", "WATCHDOG_"))}
        self.logf = open(os.path.join(tmp, "kernel.log"), "ab")
        self.proc = subprocess.Popen([grace, "kernel", "immutable_log", "--config", ini,
                                      "--data-dir", self.data, "--port-offset",
                                      str(self.offset)],
                                     stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=self.logf, cwd=tmp, env=env)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("the kernel exited (%s); see %s/kernel.log"
                                   % (self.proc.returncode, tmp))
            try:
                c = http.client.HTTPConnection(HOST, self.port, timeout=2)
                c.request("GET", "/sth", headers={TOKEN_HEADER: self.token})
                if c.getresponse().status == 200:
                    c.close()
                    break
                c.close()
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the kernel did not answer on %d" % self.port)
            time.sleep(0.05)
        self.conn = None

    def request(self, method, path, body=None, timeout=60):
        if self.conn is None:
            self.conn = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        self.conn.timeout = timeout
        if self.conn.sock is not None:
            self.conn.sock.settimeout(timeout)
        hdrs = {TOKEN_HEADER: self.token}
        if body is not None:
            hdrs["Content-Type"] = "application/json"
        self.conn.request(method, path, body=body, headers=hdrs)
        r = self.conn.getresponse()
        data = r.read()
        if r.status not in (200, 201):
            raise RuntimeError("%s %s: %d %r" % (method, path, r.status, data[:300]))
        return json.loads(data)

    def rss_kib(self):
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            return None

    def cpu_s(self):
        """utime + stime of the kernel so far, in seconds."""
        with open("/proc/%d/stat" % self.proc.pid) as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")

    def db_bytes(self):
        n = 0
        for suffix in ("", "-wal"):
            try:
                n += os.path.getsize(os.path.join(self.data, "immutable_log.db" + suffix))
            except OSError:
                pass
        return n

    def stop(self):
        if self.conn is not None:
            self.conn.close()
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.logf.close()


def request_bodies(first, count, batch):
    """The POST /entries bodies for entries first..first+count, `batch` per
    request (1: the single form), built before any clock starts."""
    out = []
    for i in range(first, first + count, batch):
        n = min(batch, first + count - i)
        if batch == 1:
            out.append((n, json.dumps({"data": event(i)}).encode()))
        else:
            out.append((n, json.dumps([{"data": event(j)} for j in range(i, i + n)]).encode()))
    return out


def grace_appends(k, first, bodies):
    """Sends the bodies one request at a time; returns the elapsed seconds."""
    t0 = time.perf_counter()
    size = first
    for n, body in bodies:
        out = k.request("POST", "/entries", body)
        size += n
        if out["tree_size"] != size:
            raise RuntimeError("tree size %d after appending up to %d" % (out["tree_size"], size))
    return time.perf_counter() - t0


# --------------------------------------------------------------------------
# The SQLite reference: the same rows in one Python process.

class SqliteRef:
    SCHEMA = """
    CREATE TABLE entries (idx INTEGER PRIMARY KEY CHECK (idx >= 0), data BLOB NOT NULL,
      kind TEXT NOT NULL CHECK (kind IN ('bytes', 'json')), created_at INTEGER NOT NULL);
    CREATE TABLE nodes (level INTEGER NOT NULL CHECK (level BETWEEN 0 AND 63),
      idx INTEGER NOT NULL CHECK (idx >= 0), hash BLOB NOT NULL CHECK (length(hash) = 32),
      PRIMARY KEY (level, idx)) WITHOUT ROWID;
    """

    def __init__(self, path, merkle):
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(self.SCHEMA)
        self.merkle = merkle
        self.size = 0
        self.edge = []  # (level, hash) of the right edge, lowest last

    def append(self, first, datas):
        rows, nodes = [], []
        now = int(time.time() * 1000)
        for i, data in enumerate(datas, first):
            rows.append((i, data, "json", now))
            if self.merkle:
                h = hashlib.sha256(b"\x00" + data).digest()
                nodes.append((0, i, h))
                level, idx = 0, i
                # Each completed subtree: fold the right edge as the size grows.
                while self.edge and self.edge[-1][0] == level:
                    _, left = self.edge.pop()
                    h = hashlib.sha256(b"\x01" + left + h).digest()
                    level += 1
                    idx >>= 1
                    nodes.append((level, idx, h))
                self.edge.append((level, h))
        self.db.execute("BEGIN IMMEDIATE")
        self.db.executemany("INSERT INTO entries (idx, data, kind, created_at) "
                            "VALUES (?, ?, ?, ?)", rows)
        if nodes:
            self.db.executemany("INSERT INTO nodes (level, idx, hash) VALUES (?, ?, ?)", nodes)
        self.db.execute("COMMIT")
        self.size += len(datas)

    def close(self):
        self.db.close()


def sqlite_appends(path, merkle, datas, batch):
    """Inserts the entries' canonical bytes (built before the clock starts),
    `batch` per transaction; returns the elapsed seconds."""
    ref = SqliteRef(path, merkle)
    t0 = time.perf_counter()
    for i in range(0, len(datas), batch):
        ref.append(i, datas[i:i + batch])
    dt = time.perf_counter() - t0
    ref.close()
    return dt


# --------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--grace", default=os.path.join(REPO, "build", "grace"))
    ap.add_argument("--single", type=int, default=3000, help="single appends timed")
    ap.add_argument("--batch-entries", type=int, default=100000,
                    help="entries appended per batch size (100 and 1000)")
    ap.add_argument("--entries", type=int, default=1000000,
                    help="log size for the verify (built with batches of 1000)")
    ap.add_argument("--budget", type=float, default=900,
                    help="seconds for the whole run; the build stops early to keep it")
    ap.add_argument("--verify-reserve", type=float, default=120,
                    help="seconds of the budget kept for the verify")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of each append measure")
    ap.add_argument("--keep-tmp", action="store_true")
    args = ap.parse_args()
    t_start = time.monotonic()
    grace = os.path.abspath(args.grace)
    if not os.access(grace, os.X_OK):
        sys.exit("log-bench: %s is not built" % grace)
    tmp = tempfile.mkdtemp(prefix="grace-bench-log-")
    snap = os.path.join(tmp, "grace")
    shutil.copy2(grace, snap)  # a rebuild during the run changes nothing
    with open(snap, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()[:16]
    k = None
    ok = False
    report = []
    try:
        k = Kernel(snap, tmp)
        log("kernel pid %d on port %d, data in %s" % (k.proc.pid, k.port, k.data))
        size = 0
        results = {}
        # Rounds alternate grace and SQLite so drift in the machine's load hits both.
        for rnd in range(args.rounds):
            for label, count, batch in (("single", args.single, 1),
                                        ("batch100", args.batch_entries, 100),
                                        ("batch1000", args.batch_entries, 1000)):
                bodies = request_bodies(size, count, batch)
                cpu = k.cpu_s()
                dt = grace_appends(k, size, bodies)
                cpu = k.cpu_s() - cpu
                datas = [canonical(event(i)) for i in range(size, size + count)]
                size += count
                r = results.setdefault(label, {"grace": [], "sqlite": [], "sqlite_rows": [],
                                               "cpu_us": [], "busy": []})
                r["grace"].append(count / dt)
                r["cpu_us"].append(cpu / count * 1e6)
                r["busy"].append(cpu / dt)
                for key, merkle in (("sqlite", True), ("sqlite_rows", False)):
                    path = os.path.join(tmp, "ref-%s-%d-%s.db" % (label, rnd, key))
                    r[key].append(count / sqlite_appends(path, merkle, datas, batch))
                    for suffix in ("", "-wal", "-shm"):
                        try:
                            os.unlink(path + suffix)
                        except OSError:
                            pass
                log("round %d %-9s grace %8.0f/s  sqlite+merkle %8.0f/s  sqlite rows %8.0f/s"
                    % (rnd + 1, label, r["grace"][-1], r["sqlite"][-1], r["sqlite_rows"][-1]))

        # Build up to --entries with batches of 1000, within the budget.
        target = max(args.entries, size)
        build_deadline = t_start + args.budget - args.verify_reserve
        build_from, build_s = size, 0.0
        last_log = time.monotonic()
        while size < target and time.monotonic() < build_deadline:
            n = min(1000 * 20, target - size)
            bodies = request_bodies(size, n, 1000)
            t1 = time.perf_counter()
            grace_appends(k, size, bodies)
            build_s += time.perf_counter() - t1
            size += n
            if time.monotonic() - last_log > 10:
                last_log = time.monotonic()
                log("built %d of %d entries" % (size, target))
        build_rate = (size - build_from) / build_s if size > build_from else None
        if size < target:
            log("budget spent: verifying %d entries instead of %d" % (size, target))
        rss_before = k.rss_kib()
        t0 = time.perf_counter()
        v = k.request("GET", "/verify", timeout=max(60, args.verify_reserve * 4))
        verify_wall = time.perf_counter() - t0
        rss_after = k.rss_kib()
        if not v.get("ok") or v.get("entries_checked") != size:
            raise RuntimeError("verify: %r" % v)
        sth = k.request("GET", "/sth")
        t0 = time.perf_counter()
        for i in range(0, 200):
            k.request("GET", "/proof/inclusion?index=%d&tree_size=%d"
                      % ((i * 7919) % size, size))
        proof_ms = (time.perf_counter() - t0) / 200 * 1e3

        def med(xs):
            return statistics.median(xs)
        load = os.getloadavg()
        report.append("== immutable log: appends and verify (bench/log_bench.py) ==")
        report.append("binary %s sha256 %s..., %d CPUs, load %.2f %.2f %.2f, %s"
                      % (grace, sha, os.cpu_count() or 0, *load,
                         time.strftime("%Y-%m-%d %H:%M")))
        report.append("one keep-alive connection, one request in flight; medians of %d rounds"
                      % args.rounds)
        report.append("%-22s %12s %16s %14s %10s %10s %14s" % (
            "appends", "grace /s", "sqlite+merkle /s", "sqlite rows /s", "g/s+m", "g/rows",
            "kernel CPU/entry"))
        for label, name in (("single", "1 per request"), ("batch100", "batches of 100"),
                            ("batch1000", "batches of 1000")):
            r = results[label]
            g, s, s2 = med(r["grace"]), med(r["sqlite"]), med(r["sqlite_rows"])
            report.append("%-22s %12.0f %16.0f %14.0f %9.2fx %9.2fx %11.1f us"
                          % (name, g, s, s2, g / s, g / s2, med(r["cpu_us"])))
            report.append("%-22s rounds grace: %s; kernel busy %.0f%% of the time"
                          % ("", ", ".join("%.0f" % x for x in r["grace"]),
                             100 * med(r["busy"])))
        if build_rate:
            report.append("build from %d to %d entries: %.1f s, %.0f appends/s in batches "
                          "of 1000" % (build_from, size, build_s, build_rate))
        report.append("GET /verify on %d entries%s: %.2f s (the kernel's elapsed_ms %.0f), "
                      "%.0f entries/s, %d tree heads checked"
                      % (size, "" if size >= args.entries else
                         " (budget: %d asked)" % args.entries, verify_wall,
                         v["elapsed_ms"], size / verify_wall, v["tree_heads_checked"]))
        if size < 1000000:
            report.append("  extrapolated to 1,000,000 entries: %.1f s"
                          % (verify_wall * 1000000 / size))
        report.append("inclusion proof at %d entries: %.2f ms per request (200, sequential)"
                      % (size, proof_ms))
        report.append("kernel RSS %s KiB before verify, %s KiB after; database %.0f MB "
                      "(%.0f bytes per entry); tree size %d"
                      % (rss_before, rss_after, k.db_bytes() / 1e6, k.db_bytes() / size,
                         sth["tree_size"]))
        report.append("reference: Python sqlite3, same schema and pragmas (WAL, "
                      "synchronous=NORMAL), one transaction per request; 'sqlite+merkle' also "
                      "writes the leaf and subtree hash rows (hashlib), 'sqlite rows' the entry "
                      "rows only")
        report.append("run took %.0f s" % (time.monotonic() - t_start))
        print("\n".join(report))
        ok = True
    finally:
        if k is not None:
            k.stop()
        if ok and not args.keep_tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log("kept %s" % tmp)


if __name__ == "__main__":
    main()
