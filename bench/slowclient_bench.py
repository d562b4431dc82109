#!/usr/bin/env python3
"""Many clients and slow clients (issue 10, item 5): a normal client's
latency through :8000 on a quiet server, then with 5,000 idle keep-alive
connections and 500 slowloris clients (one header byte every 5 s) held
open meanwhile. The ratio of the two is the figure: what the crowd costs
the client that behaves.

    python3 bench/slowclient_bench.py BUILD_DIR [--idle 5000] [--slow 500]

The crowd comes from several loopback source addresses (127.0.0.2 ...), so
the per-address cap (max_connections_per_address, 2048 by default) is not
what is measured; the global cap (max_connections) stays at its default.
A slowloris client cut by the head deadline (408 after head_timeout_ms)
reconnects at once, as a real one does; the report counts those. Every
process started here is stopped here, by pid (grace_bench.PROCS).
"""

import argparse
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from grace_bench import PROCS, BenchError, Grace, log, parse_wrk, wrk_argv  # noqa: E402

CONFIG = """\
[grace]
log_level = warn
[policy]
authorizer = table
[auth]
argon2_mem_kib = 19456
[kernel.librarian]
port = 8130
"""


def crowd_addresses(n, per_address):
    """127.0.0.2, 127.0.0.3, ...: enough for n connections at per_address each."""
    return ["127.0.0.%d" % (2 + i) for i in range((n + per_address - 1) // per_address)]


class Crowd:
    """Idle keep-alive connections and slowloris clients, held open."""

    def __init__(self, port, idle, slow, per_address=1500):
        self.port = port
        self.idle_n, self.slow_n = idle, slow
        self.addrs = crowd_addresses(idle + slow, per_address)
        self.idle, self.slow = [], []
        self.reconnects = 0
        self.refused = 0
        self.stop = threading.Event()
        self.thread = None

    def _connect(self, i):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.addrs[i % len(self.addrs)], 0))
        s.settimeout(10)
        s.connect(("127.0.0.1", self.port))
        return s

    def open(self):
        for i in range(self.idle_n):
            s = self._connect(i)
            # One request, then idle: a keep-alive connection, not a slow head.
            s.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            buf = b""
            while b"\r\n\r\n" not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    raise BenchError("an idle client's first request was refused")
                buf += chunk
            if not buf.startswith(b"HTTP/1.1 200"):
                raise BenchError("idle client: %r" % buf[:80])
            s.setblocking(False)
            self.idle.append(s)
        for i in range(self.slow_n):
            s = self._connect(self.idle_n + i)
            s.setblocking(False)
            self.slow.append([s, 0])
        self.thread = threading.Thread(target=self._dribble, daemon=True)
        self.thread.start()

    def _dribble(self):
        head = b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 4096
        while not self.stop.wait(5.0):
            for i, entry in enumerate(self.slow):
                s, pos = entry
                try:
                    s.send(head[pos % len(head):pos % len(head) + 1])
                    entry[1] = pos + 1
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    # Cut at the head deadline (408): come back, as a slow client does.
                    s.close()
                    self.reconnects += 1
                    try:
                        ns = self._connect(self.idle_n + i)
                        ns.setblocking(False)
                        self.slow[i] = [ns, 0]
                    except OSError:
                        self.refused += 1

    def alive_idle(self):
        n = 0
        for s in self.idle:
            try:
                if s.recv(1) == b"":
                    continue  # closed by the server
            except BlockingIOError:
                n += 1
            except OSError:
                pass
        return n

    def close(self):
        self.stop.set()
        if self.thread:
            self.thread.join(10)
        for s in self.idle:
            s.close()
        for s, _ in self.slow:
            s.close()


def measure(url, headers, secs, conns):
    out = subprocess.run(wrk_argv(2, conns, secs, url, headers), capture_output=True, text=True,
                         timeout=secs + 60)
    if out.returncode != 0:
        raise BenchError("wrk: " + out.stderr.strip())
    return parse_wrk(out.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("build_dir")
    ap.add_argument("--idle", type=int, default=5000)
    ap.add_argument("--slow", type=int, default=500)
    ap.add_argument("--secs", type=int, default=15)
    ap.add_argument("--conns", type=int, default=8, help="the normal client's connections")
    ap.add_argument("--port-offset", type=int, default=21600)
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = a.idle + a.slow + 1000
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, need), hard))
    if not shutil.which("wrk"):
        raise BenchError("wrk not found (scripts/bootstrap.sh --bench)")
    tmp = tempfile.mkdtemp(prefix="grace-bench-slow-")
    cfg = os.path.join(tmp, "grace.ini")
    with open(cfg, "w") as f:
        f.write(CONFIG)
    g = Grace(os.path.join(a.build_dir, "grace"), cfg, os.path.join(tmp, "data"), a.port_offset,
              [("librarian", 8130)], os.path.join(tmp, "serve.log"))
    crowd = None
    try:
        g.start()
        g.wait_ready()
        url = "http://127.0.0.1:%d/librarian/health" % g.api_port
        hdrs = g.auth()
        measure(url, hdrs, 2, a.conns)  # warm-up
        quiet = measure(url, hdrs, a.secs, a.conns)
        log("quiet: %.0f req/s, p50 %.2f ms, p99 %.2f ms" % (quiet["rps"], quiet["p50"] * 1e3,
                                                              quiet["p99"] * 1e3))
        crowd = Crowd(g.api_port, a.idle, a.slow)
        t0 = time.monotonic()
        crowd.open()
        log("crowd of %d idle and %d slow clients open in %.1f s" % (a.idle, a.slow,
                                                                     time.monotonic() - t0))
        busy = measure(url, hdrs, a.secs, a.conns)
        alive = crowd.alive_idle()
        with open("/proc/%d/status" % g.proc.pid) as f:
            rss = [line for line in f if line.startswith("VmRSS")][0].split()[1]
        print("Slow clients (issue 10 item 5): a normal client (wrk -t2 -c%d -d%ds) on "
              "GET /librarian/health through :8000" % (a.conns, a.secs))
        print("   quiet server:          %7.0f req/s   p50 %6.2f ms   p99 %6.2f ms" %
              (quiet["rps"], quiet["p50"] * 1e3, quiet["p99"] * 1e3))
        print("   with %d idle + %d slowloris: %7.0f req/s   p50 %6.2f ms   p99 %6.2f ms" %
              (a.idle, a.slow, busy["rps"], busy["p50"] * 1e3, busy["p99"] * 1e3))
        print("   ratios crowd / quiet: throughput %.2f, p50 %.2f, p99 %.2f" %
              (busy["rps"] / quiet["rps"], busy["p50"] / quiet["p50"], busy["p99"] / quiet["p99"]))
        print("   idle connections still open at the end: %d of %d; slowloris cut by the head "
              "deadline and back: %d (refused on reconnect: %d); grace serve RSS %s KiB" %
              (alive, a.idle, crowd.reconnects, crowd.refused, rss))
        if busy["non2xx"] or busy["sockerr"]:
            print("   normal client errors: non-2xx %s, socket errors %s" % (busy["non2xx"],
                                                                         busy["sockerr"]))
    finally:
        if crowd:
            crowd.close()
        g.stop()
        PROCS.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        print("bench: %s" % e, file=sys.stderr)
        sys.exit(1)
