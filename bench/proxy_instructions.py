#!/usr/bin/env python3
"""Instructions per proxied request: Grace's gateway against nginx.

Both run under valgrind's callgrind, which counts the instructions a
process executes whatever else the machine is doing, so this ratio holds on
a loaded machine where CPU time and throughput do not. Each proxy is run
twice, idle and with N requests of wrk for as long, and the difference is
divided by N (start-up, the login, timers and shutdown cancel out):

    grace serve (one kernel, crypto,   GET /kernels/crypto/health, a session token
      and the policy kernel deciding)
    nginx, one process, keep-alive     GET /crypto/health, the kernel started alone

--all-kernels runs every built-in kernel behind grace serve, as
bench/gateway_bench.py does (Grace tracing itself too), and --kernel picks
the one proxied. --set SECTION.KEY=VALUE changes grace serve's
configuration (--set telemetry.sample_percent=0: nothing recorded).
--kernel-side also counts what the kernel itself spends on a /health, run
alone under callgrind and sent the headers the gateway forwards (its SVID,
the user, a traceparent), the same without the traceparent, or the three
nginx's configuration sends. GRACE_KEEP_CG=PREFIX keeps the callgrind
files (PREFIX.0 and PREFIX.8 for grace serve, PREFIX.kgw8 and so on for
the kernel's runs).

Usage: bench/proxy_instructions.py [--build build] [--secs 8] [--port-offset 20700]
       [--all-kernels] [--kernel crypto] [--kernel-side] [--set SECTION.KEY=VALUE]
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


def idle(secs):
    """The run without requests lasts as long as the one with them, so that
    what a process does by the clock (probes, timers) cancels out."""
    time.sleep(secs)
    return 0


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
                "[auth]\nargon2_mem_kib = 19456\n" +
                # one kernel besides the policy kernel, which the default
                # authorizer asks (its decisions cached)
                ("" if a.all_kernels else f"[kernel.{a.kernel}]\n[kernel.policy]\n"))
        sections = {}
        for kv in a.set or ():
            key, _, value = kv.partition("=")
            section, _, name = key.rpartition(".")
            if not section or not name or not _:
                raise SystemExit(f"--set {kv}: expected SECTION.KEY=VALUE")
            sections.setdefault(section, []).append(f"{name} = {value}")
        for section, lines in sections.items():
            f.write(f"[{section}]\n" + "\n".join(lines) + "\n")
    subprocess.run([grace, "user", "add", "admin", "--admin", "--config", ini],
                   input=PASSWORD + "\n", text=True, check=True, capture_output=True)
    port = 8000 + a.port_offset
    totals = []
    for secs in (0, a.secs):
        p, log = callgrind([grace, "serve", "--config", ini], tmp, f"grace{secs}")
        try:
            wait_http(f"http://{HOST}:{port}/health")
            # the kernel ready and the guardian's first round done (every
            # kernel and its standby: longer)
            time.sleep(15 if a.all_kernels else 2)
            body = json.dumps({"username": "admin", "password": PASSWORD}).encode()
            tok = json.load(urllib.request.urlopen(
                urllib.request.Request(f"http://{HOST}:{port}/auth/login", body), timeout=60))
            n = 0
            if secs:
                n = wrk(f"http://{HOST}:{port}/kernels/{a.kernel}/health", secs,
                        ["Authorization: Bearer " + tok["token"]])
            else:
                idle(a.secs)
        finally:
            stop(p)
        totals.append((n, collected(log)))
        if os.environ.get("GRACE_KEEP_CG"):
            shutil.copy(os.path.join(tmp, f"grace{secs}.cg"), os.environ["GRACE_KEEP_CG"] + f".{secs}")
    return totals


def nginx_runs(a, tmp):
    grace = os.path.abspath(os.path.join(a.build, "grace"))
    exe = shutil.which("nginx") or "/usr/sbin/nginx"
    kport = kernel_port(grace, a.kernel) + a.port_offset + 1000  # in a range of its own
    port = 8000 + a.port_offset + 1000
    ndir = os.path.join(tmp, "nginx")
    os.makedirs(ndir)
    conf = os.path.join(ndir, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(dir=ndir, upstream=kport, port=port))
    k = subprocess.Popen([grace, "kernel", a.kernel, "--port-offset", str(a.port_offset + 1000),
                          "--data-dir", os.path.join(tmp, "kdata")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp)
    totals = []
    try:
        wait_http(f"http://{HOST}:{kport}/health")
        for secs in (0, a.secs):
            p, log = callgrind([exe, "-c", conf, "-p", ndir], tmp, f"nginx{secs}")
            try:
                wait_http(f"http://{HOST}:{port}/crypto/health")
                n = wrk(f"http://{HOST}:{port}/crypto/health", secs) if secs else idle(a.secs)
                time.sleep(1)  # a SIGQUIT too soon after start can end valgrind first
            finally:
                stop(p, signal.SIGQUIT)
            totals.append((n, collected(log)))
    finally:
        stop(k)
    return totals


def kernel_port(grace, name):
    out = subprocess.run([grace, "kernels-list"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        f = line.split()
        if f and f[0] == name:
            return int(f[1])
    raise SystemExit(f"no kernel {name} in `grace kernels-list`")


# What reaches a kernel's /health: the gateway's forward (captured from a
# running grace serve; the SVID is a real one's length, the token the
# right length: /health checks neither) and nginx's three headers.
TOKEN = "ed45022a016e6875f0c62d395c41db8721b3022e092df30440f2dc9048a0cf08"
SVID = ("eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCIsImtpZCI6IjY2MDIwMmI5NmM0ZTM2Y2QifQ."
        "eyJzdWIiOiJzcGlmZmU6Ly9ncmFjZS5sb2NhbC9ncmFjZSIsImF1ZCI6WyJzcGlmZmU6Ly9ncmFjZS5sb2Nh"
        "bC9rZXJuZWwvbGlicmFyaWFuIl0sImV4cCI6MTc5NjQ5NDM1MSwiaWF0IjoxNzk2NDk0MDUxfQ."
        "Cy398Gyk-RVOtHh6SAVKuulvWFbA5P9BWTkG-iHYaCfsDP53XUnZJMefY09qkYgZwXRZpBqOrSrxr6A5jLceAw")
NGINX_HEADERS = ["X-Request-Id: 69e792100ebbe2f6000000000000000a",
                 "X-Grace-Internal-Token: " + TOKEN]
GATEWAY_HEADERS = NGINX_HEADERS + [
    "X-Grace-Caller: gateway", "X-Grace-SVID: " + SVID, "X-Grace-User: admin",
    "X-Grace-Role: admin", "traceparent: 00-7021b2c8cbba1e96d78a5c96c5cb9bb9-1ef6ec1a5643af3a-00"]


def kernel_runs(a, tmp, headers, tag):
    """The kernel alone under callgrind, its /health asked with `headers`."""
    grace = os.path.abspath(os.path.join(a.build, "grace"))
    off = a.port_offset + 2000
    port = kernel_port(grace, a.kernel) + off
    totals = []
    for secs in (0, a.secs):
        p, log = callgrind([grace, "kernel", a.kernel, "--port-offset", str(off), "--data-dir",
                            os.path.join(tmp, f"{tag}-data{secs}")], tmp, f"{tag}{secs}")
        try:
            wait_http(f"http://{HOST}:{port}/health")
            time.sleep(1)
            n = wrk(f"http://{HOST}:{port}/health", secs, headers) if secs else idle(a.secs)
        finally:
            stop(p)
        totals.append((n, collected(log)))
        if os.environ.get("GRACE_KEEP_CG"):
            shutil.copy(os.path.join(tmp, f"{tag}{secs}.cg"), os.environ["GRACE_KEEP_CG"] + f".{tag}{secs}")
    return totals


def per_request(totals):
    (_, base), (n, total) = totals
    return (total - base) / n, n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--secs", type=int, default=8)
    ap.add_argument("--port-offset", type=int, default=20700)
    ap.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                    help="a setting for grace serve's configuration (repeatable), "
                         "e.g. --set telemetry.sample_percent=0")
    ap.add_argument("--kernel", default="crypto", help="the kernel proxied")
    ap.add_argument("--all-kernels", action="store_true",
                    help="every built-in kernel behind grace serve, as gateway_bench.py runs it")
    ap.add_argument("--kernel-side", action="store_true",
                    help="also the kernel's own instructions a /health, with each proxy's headers")
    a = ap.parse_args()
    for tool in ("valgrind", "wrk"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: scripts/bootstrap.sh --bench installs it")
    with tempfile.TemporaryDirectory(prefix="grace-instr-") as tmp:
        g, gn = per_request(grace_runs(a, tmp))
        x, xn = per_request(nginx_runs(a, tmp))
        if a.kernel_side:
            kg, kgn = per_request(kernel_runs(a, tmp, GATEWAY_HEADERS, "kgw"))
            kx, kxn = per_request(kernel_runs(a, tmp, NGINX_HEADERS, "kngx"))
            kt, ktn = per_request(kernel_runs(a, tmp, GATEWAY_HEADERS[:-1], "kgwnotp"))
    print(f"Instructions per proxied request (callgrind, user space, wrk -t1 -c8), "
          f"GET /{a.kernel}/health, {'every kernel running' if a.all_kernels else 'one kernel'}:")
    print(f"  grace gateway  {g:9.0f}  ({gn} requests; session check, routing, request id)")
    print(f"  nginx proxy    {x:9.0f}  ({xn} requests; one process, keep-alive upstream)")
    print(f"  ratio grace / nginx = {g / x:.2f}")
    if a.kernel_side:
        print(f"The kernel ({a.kernel}, alone) a /health:")
        print(f"  with the gateway's headers  {kg:9.0f}  ({kgn} requests)")
        print(f"  with nginx's headers        {kx:9.0f}  ({kxn} requests)")
        print(f"  the gateway's, no traceparent {kt:7.0f}  ({ktn} requests)")


if __name__ == "__main__":
    main()
