#!/usr/bin/env python3
"""Authorization at :8000: the policy kernel deciding against the role
table, in the same run (issue 11: goal >= 0.9x).

Two `grace serve`s with the same kernels (policy, librarian), one with
[policy] authorizer = kernel (the default set deciding, decisions cached
by versions) and one with authorizer = table (each route's access level,
as before). Rounds alternate between them (kernel, table, kernel, ...) so
that a machine that gets busier affects both alike. wrk drives, per round:

  route    GET /auth/me                   a main-process route (decision + handler)
  gateway  GET /librarian/documents/1     through the gateway to a kernel
  miss     GET /memory/tables/tNNNNNN     a new resource each request: every
                                          decision a round trip to the policy
                                          kernel (informative; no peer has it)

and reports requests per second, p50/p99 and the ratio kernel / table
(the median of the rounds). Every process started here is stopped here,
by pid (grace_bench.py's process handling).

    python3 bench/authz_bench.py build [--rounds 3] [--wrk-secs 5]
"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile

import grace_bench as gb
from grace_bench import (PROCS, BenchError, Grace, Report, choose_offset, log,
                         parse_wrk, post_json, wrk_argv)

KERNELS = [("policy", 8113), ("librarian", 8130)]
MODES = ["kernel", "table"]
MISS_LUA = """
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", string.format("/memory/tables/t%07d-%d", counter, math.random(1, 1000000000)))
end
"""


def write_config(path, mode):
    lines = ["[grace]", "log_level = warn", "[auth]",
             f"argon2_mem_kib = {gb.ARGON2_MEM_KIB}", "[policy]", f"authorizer = {mode}",
             "[defaults]", "restart_burst = 100"]
    for name, port in KERNELS:
        lines += [f"[kernel.{name}]", f"port = {port}", "tier = bench"]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid):
    """utime + stime of a process, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        st = f.read()
    fields = st[st.rfind(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def wrk(a, g, path, script=None):
    """wrk against one route; also the main process's CPU per request (less
    sensitive than req/s to what else the machine runs)."""
    url = f"http://{gb.HOST}:{g.api_port}{path}"
    argv = wrk_argv(a.wrk_threads, a.wrk_conns, a.wrk_secs, url, g.auth())
    if script:
        argv[1:1] = ["-s", script]
    t0 = cpu_ticks(g.proc.pid)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=a.wrk_secs + 30,
                         stdin=subprocess.DEVNULL)
    ticks = cpu_ticks(g.proc.pid) - t0
    if out.returncode != 0:
        raise BenchError(f"wrk failed: {out.stderr.strip()}")
    res = parse_wrk(out.stdout)
    res["cpu_us"] = ticks / CLK_TCK * 1e6 / res["n"] if res.get("n") else float("nan")
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build_dir")
    env = os.environ.get
    ap.add_argument("--rounds", type=int, default=int(env("BENCH_AUTHZ_ROUNDS", "3")))
    ap.add_argument("--wrk-secs", type=int, default=int(env("BENCH_WRK_SECS", "5")))
    ap.add_argument("--wrk-threads", type=int, default=2)
    ap.add_argument("--wrk-conns", type=int, default=32)
    ap.add_argument("--port-offset", type=int,
                    default=int(env("BENCH_PORT_OFFSET")) if env("BENCH_PORT_OFFSET") else None)
    ap.add_argument("--out", default=None, help="also write the report to this file")
    a, rest = ap.parse_known_args()
    if rest:
        log(f"ignoring {' '.join(rest)}")
    src = os.path.abspath(os.path.join(a.build_dir, "grace"))
    if not os.access(src, os.X_OK):
        raise BenchError(f"{src}: not found; build first")
    if not shutil.which("wrk"):
        raise BenchError("wrk is needed (scripts/bootstrap.sh --bench)")
    tmp = tempfile.mkdtemp(prefix="grace-authz-bench-")
    grace = os.path.join(tmp, "grace")
    shutil.copy2(src, grace)  # a rebuild during the run changes nothing
    script = os.path.join(tmp, "miss.lua")
    with open(script, "w") as f:
        f.write(MISS_LUA)
    offset = choose_offset([p for _, p in KERNELS], a.port_offset)
    R = Report()
    R(f"authorization at :8000: the policy kernel (cached decisions) against the role table; "
      f"{a.rounds} rounds of {a.wrk_secs} s, wrk -t{a.wrk_threads} -c{a.wrk_conns}, "
      f"{os.cpu_count()} CPUs")
    results = {m: {"route": [], "gateway": [], "miss": []} for m in MODES}
    servers = {}
    try:
        for m in MODES:
            cfg = os.path.join(tmp, f"{m}.ini")
            write_config(cfg, m)
            servers[m] = Grace(grace, cfg, os.path.join(tmp, f"{m}-data"), offset, KERNELS,
                               os.path.join(tmp, f"{m}.log"))
        for r in range(a.rounds):
            for m in MODES:
                g = servers[m]
                g.start()
                try:
                    g.wait_ready()
                    st, doc = post_json(g.api_port, "/librarian/documents",
                                        {"title": "bench", "body": "a document to read"},
                                        headers=g.auth())
                    if st != 201:
                        raise BenchError(f"{m}: cannot make a document: {st} {doc}")
                    doc_path = f"/librarian/documents/{doc['id']}"
                    wrk(a, g, "/auth/me")  # warm: connections, caches
                    for name, path, lua in [("route", "/auth/me", None),
                                            ("gateway", doc_path, None),
                                            ("miss", "/memory/tables/x", script)]:
                        res = wrk(a, g, path, lua)
                        bad = res["non2xx"] if name != "miss" else 0
                        if bad or res["sockerr"]:
                            raise BenchError(f"{m} {name}: {bad} non-2xx, errors {res['sockerr']}")
                        results[m][name].append(res)
                        log(f"round {r + 1} {m:6} {name:7} {res['rps']:9.0f} req/s "
                            f"p50 {res['p50'] * 1e3:.2f} ms p99 {res['p99'] * 1e3:.2f} ms "
                            f"grace serve {res['cpu_us']:.1f} us CPU/request")
                finally:
                    g.stop()
        R("")
        R(f"{'':8} {'authorizer':10} {'req/s (median)':>15} {'p50':>9} {'p99':>9} "
          f"{'serve CPU/req':>14}")
        for name in ("route", "gateway", "miss"):
            for m in MODES:
                rs = results[m][name]
                R(f"{name:8} {m:10} {statistics.median(x['rps'] for x in rs):15.0f} "
                  f"{statistics.median(x['p50'] for x in rs) * 1e3:8.2f}ms "
                  f"{statistics.median(x['p99'] for x in rs) * 1e3:8.2f}ms "
                  f"{statistics.median(x['cpu_us'] for x in rs):11.1f} us")
        R("")
        for name, label in (("route", "GET /auth/me"), ("gateway", "GET /librarian/documents/N")):
            k = statistics.median(x["rps"] for x in results["kernel"][name])
            t = statistics.median(x["rps"] for x in results["table"][name])
            ratios = [x["rps"] / y["rps"] for x, y in zip(results["kernel"][name], results["table"][name])]
            R(f"ratio policy kernel / role table, {label}: {k / t:.2f}x "
              f"(per round: {', '.join(f'{x:.2f}' for x in ratios)}; goal >= 0.9x)")
            kc = statistics.median(x["cpu_us"] for x in results["kernel"][name])
            tc = statistics.median(x["cpu_us"] for x in results["table"][name])
            R(f"  grace serve's CPU per request, {label}: {kc:.1f} us with the policy kernel, "
              f"{tc:.1f} us with the role table ({tc / kc:.2f}x as many requests per CPU second)")
        miss = statistics.median(x["rps"] for x in results["kernel"]["miss"])
        R(f"uncached decisions (a new resource every request, each a round trip): {miss:.0f} req/s "
          f"with the policy kernel, {statistics.median(x['rps'] for x in results['table']['miss']):.0f} "
          f"with the role table (informative)")
    finally:
        PROCS.stop_all()
        if a.out:
            with open(a.out, "a") as f:
                f.write(R.text())
        shutil.rmtree(tmp, ignore_errors=True)


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
