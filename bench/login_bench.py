#!/usr/bin/env python3
"""Login throughput of grace serve with its cap on concurrent Argon2id hashes.

Starts its own `grace serve` (only the librarian kernel) on a free port
offset in a temporary directory, creates users offline with `grace user
add`, then logs in from several client threads at once and reports logins/s
and latency, with the default Argon2id cost (64 MiB, 2 passes) and with
OWASP's floor (19 MiB, 2 passes), for 1 and 2 hashing threads. The figure
to compare against is the cost of one hash on this machine (measured here
with the same binary through a single client), so the ratio says how well
the pool uses the cores. Standard library only; every process it starts is
stopped by pid.

    python3 bench/login_bench.py [--build build] [--clients 16] [--logins 96]
"""

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

PASSWORD = "bench-password-0123"
OFFSETS = [23300 + 150 * i for i in range(8)]


def free_offset():
    for off in OFFSETS:
        ports = [8000 + off, 8130 + off]
        ok = True
        for p in ports:
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return off
    raise SystemExit("no free port offset")


def post(port, path, body, timeout=60):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("POST", path, body=json.dumps(body))
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def run(grace, mem_kib, threads, clients, logins, users):
    tmp = tempfile.mkdtemp(prefix="grace-login-bench-")
    off = free_offset()
    cfg = os.path.join(tmp, "grace.ini")
    with open(cfg, "w") as f:
        f.write("[grace]\nlog_level = warn\n[policy]\nauthorizer = table\n[auth]\n"
                f"argon2_mem_kib = {mem_kib}\nhash_threads = {threads}\nhash_queue = 4096\n"
                "login_failures_max = 1000\n[kernel.librarian]\nport = 8130\n")
    data = os.path.join(tmp, "data")
    env = dict(os.environ, GRACE_LOG_LEVEL="warn")
    for u in range(users):
        subprocess.run([grace, "user", "add", f"u{u}", "--config", cfg, "--data-dir", data],
                       input=PASSWORD + "\n", text=True, check=True, env=env,
                       stdout=subprocess.DEVNULL)
    log = open(os.path.join(tmp, "serve.log"), "wb")
    p = subprocess.Popen([grace, "serve", "--config", cfg, "--data-dir", data,
                          "--port-offset", str(off)], stdout=log, stderr=log, env=env)
    port = 8000 + off
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                c.request("GET", "/health")
                if json.loads(c.getresponse().read()).get("status") == "ok":
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        # One login alone: the cost of one hash end to end.
        t0 = time.perf_counter()
        st, _ = post(port, "/auth/login", {"username": "u0", "password": PASSWORD})
        single = time.perf_counter() - t0
        assert st == 200, st
        lat, errors = [], []
        lock = threading.Lock()
        per = logins // clients

        def worker(i):
            for n in range(per):
                t = time.perf_counter()
                st, body = post(port, "/auth/login",
                                {"username": f"u{(i * per + n) % users}", "password": PASSWORD})
                dt = time.perf_counter() - t
                with lock:
                    (lat if st == 200 else errors).append(dt if st == 200 else st)

        ts = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
        t0 = time.perf_counter()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        wall = time.perf_counter() - t0
        lat.sort()
        return {
            "single_ms": single * 1e3,
            "rate": len(lat) / wall,
            "p50_ms": statistics.median(lat) * 1e3 if lat else 0,
            "p99_ms": lat[int(len(lat) * 0.99) - 1] * 1e3 if lat else 0,
            "ok": len(lat),
            "errors": errors[:5],
            "nerr": len(errors),
        }
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--logins", type=int, default=96)
    ap.add_argument("--users", type=int, default=8)
    a = ap.parse_args()
    grace = os.path.abspath(os.path.join(a.build, "grace"))
    print(f"login throughput: {a.clients} clients, {a.logins} logins, {os.cpu_count()} cores")
    for mem in (65536, 19456):
        for threads in (1, 2):
            r = run(grace, mem, threads, a.clients, a.logins, a.users)
            ideal = threads * 1000.0 / r["single_ms"]
            print(f"  argon2id m={mem // 1024:>2} MiB t=2, {threads} hash thread(s): "
                  f"{r['rate']:6.1f} logins/s (one alone {r['single_ms']:.0f} ms; "
                  f"pool efficiency {r['rate'] / ideal:.2f} of {threads} x 1/single), "
                  f"p50 {r['p50_ms']:.0f} ms p99 {r['p99_ms']:.0f} ms, errors {r['nerr']} {r['errors']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
