#!/usr/bin/env python3
"""Instructions per proxied request: Grace's gateway against nginx.

Both run under valgrind's callgrind, which counts the instructions a
process executes whatever else the machine is doing, so this ratio holds on
a loaded machine where CPU time and throughput do not. Each proxy is run
twice, without requests and with N requests of wrk, and the difference is
divided by N (start-up, the login and shutdown cancel out):

    grace serve (one kernel, crypto)  GET /kernels/crypto/health, a session token
    nginx, one process, keep-alive     GET /crypto/health, the kernel started alone

Usage: bench/proxy_instructions.py [--build build] [--secs 8] [--port-offset 20700]
Needs valgrind, wrk and nginx (scripts/bootstrap.sh --bench). Prints one
report; starts and stops everything it uses, by pid.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

HOST = "127.0.0.1"
PASSWORD = "bench password, long enough"

NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 1000000;
    upstream k {{ server 127.0.0.1:{upstream}; keepalive 64; keepalive_requests 1000000; }}
    server {{
        listen 127.0.0.1:{port};
        location /crypto/ {{
            proxy_pass http://k/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host 127.0.0.1:{upstream};
            proxy_set_header X-Request-Id $request_id;
        }}
    }}
}}
"""


def wait_http(url, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"no answer from {url} in {timeout:.0f} s")


def wrk(url, secs, headers=()):
    argv = ["wrk", "-t1", "-c8", f"-d{secs}s"]
    for h in headers:
        argv += ["-H", h]
    out = subprocess.run(argv + [url], capture_output=True, text=True, check=True).stdout
    m = re.search(r"(\d+) requests in", out)
    if not m:
        raise SystemExit("wrk printed no count:\n" + out)
    return int(m.group(1))


def collected(log):
    m = re.search(r"Collected : (\d+)", open(log).read())
    if not m:
        raise SystemExit(f"no callgrind total in {log}:\n" + open(log).read()[-2000:])
    return int(m.group(1))


def stop(proc, sig=signal.SIGTERM):
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def callgrind(argv, tmp, tag):
    log = os.path.join(tmp, tag + ".log")
    out = os.path.join(tmp, tag + ".cg")
    p = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"] + argv,
                         stdout=subprocess.DEVNULL, stderr=open(log, "w"), cwd=tmp)
    return p, log


def grace_runs(a, tmp):
    grace = os.path.abspath(os.path.join(a.build, "grace"))
    data = os.path.join(tmp, "data")
    ini = os.path.join(tmp, "grace.ini")
    with open(ini, "w") as f:
        f.write(f"[grace]\nport_offset = {a.port_offset}\ndata_dir = {data}\n"
                "[auth]\nargon2_mem_kib = 19456\n[kernel.crypto]\n")
    subprocess.run([grace, "user", "add", "admin", "--admin", "--config", ini],
                   input=PASSWORD + "\n", text=True, check=True, capture_output=True)
    port = 8000 + a.port_offset
    totals = []
    for secs in (0, a.secs):
        p, log = callgrind([grace, "serve", "--config", ini], tmp, f"grace{secs}")
        try:
            wait_http(f"http://{HOST}:{port}/health")
            time.sleep(2)  # the kernel ready and the guardian's first round done
            body = json.dumps({"username": "admin", "password": PASSWORD}).encode()
            tok = json.load(urllib.request.urlopen(
                urllib.request.Request(f"http://{HOST}:{port}/auth/login", body), timeout=60))
            n = 0
            if secs:
                n = wrk(f"http://{HOST}:{port}/kernels/crypto/health", secs,
                        ["Authorization: Bearer " + tok["token"]])
        finally:
            stop(p)
        totals.append((n, collected(log)))
    return totals


def nginx_runs(a, tmp):
    grace = os.path.abspath(os.path.join(a.build, "grace"))
    exe = shutil.which("nginx") or "/usr/sbin/nginx"
    kport = 8111 + a.port_offset + 1000  # crypto's port, in a range of its own
    port = 8000 + a.port_offset + 1000
    ndir = os.path.join(tmp, "nginx")
    os.makedirs(ndir)
    conf = os.path.join(ndir, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(dir=ndir, upstream=kport, port=port))
    k = subprocess.Popen([grace, "kernel", "crypto", "--port-offset", str(a.port_offset + 1000),
                          "--data-dir", os.path.join(tmp, "kdata")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp)
    totals = []
    try:
        wait_http(f"http://{HOST}:{kport}/health")
        for secs in (0, a.secs):
            p, log = callgrind([exe, "-c", conf, "-p", ndir], tmp, f"nginx{secs}")
            try:
                wait_http(f"http://{HOST}:{port}/crypto/health")
                n = wrk(f"http://{HOST}:{port}/crypto/health", secs) if secs else 0
                time.sleep(1)  # a SIGQUIT too soon after start can end valgrind first
            finally:
                stop(p, signal.SIGQUIT)
            totals.append((n, collected(log)))
    finally:
        stop(k)
    return totals


def per_request(totals):
    (_, base), (n, total) = totals
    return (total - base) / n, n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--secs", type=int, default=8)
    ap.add_argument("--port-offset", type=int, default=20700)
    a = ap.parse_args()
    for tool in ("valgrind", "wrk"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: scripts/bootstrap.sh --bench installs it")
    with tempfile.TemporaryDirectory(prefix="grace-instr-") as tmp:
        g, gn = per_request(grace_runs(a, tmp))
        x, xn = per_request(nginx_runs(a, tmp))
    print("Instructions per proxied request (callgrind, user space, wrk -t1 -c8):")
    print(f"  grace gateway  {g:9.0f}  ({gn} requests; session check, routing, request id)")
    print(f"  nginx proxy    {x:9.0f}  ({xn} requests; one process, keep-alive upstream)")
    print(f"  ratio grace / nginx = {g / x:.2f}")


if __name__ == "__main__":
    main()
