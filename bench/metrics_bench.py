#!/usr/bin/env python3
"""Metrics and alerts benchmark: the metrics kernel against Debian's
Prometheus 2.42 loaded with the same data in the same run.

    python3 bench/metrics_bench.py [--series 10000] [--hours 24] [--step 60]
                                   [--queries 50] [--rules 1000]

  * ingest: samples/s into the metrics kernel (POST /write, JSON batches of
    about 30,000 samples, under the 1 MiB request limit, one connection,
    built before the clock starts) and into Prometheus (`promtool tsdb create-blocks-from openmetrics`, its
    own bulk loader, from a file written before the clock starts);
  * bytes per sample on disk: Grace's /api/v1/status/tsdb (graceStorage,
    after the flush) and Prometheus's blocks (the chunk files, and the
    whole block directories);
  * p50/p99 of a range query over the whole day (sum by (job) of rate over
    5 m, step 5 m, and one series' raw range) on both, same instants;
  * rule evaluation: --rules alerting rules in one group, evaluated once
    through the alerts kernel's POST /rules/evaluate (each rule a query to
    the metrics kernel), against `promtool test rules` on the same rules.

The report goes to stdout; progress to stderr."""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "blackbox"))


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def http_json(port, method, path, body=None, headers=None, timeout=600):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        raw = r.read()
        return r.status, json.loads(raw) if raw else None
    finally:
        conn.close()


def value(i, t):
    return float((i * 7 + t // 60) % 1000)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--grace", default=os.path.join(HERE, "..", "build", "grace"))
    ap.add_argument("--series", type=int, default=10000)
    ap.add_argument("--hours", type=float, default=24)
    ap.add_argument("--step", type=int, default=60, help="seconds between samples")
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--rules", type=int, default=1000)
    args = ap.parse_args()
    os.environ["GRACE_BIN"] = os.path.abspath(args.grace)
    from harness import GraceServer  # noqa: E402

    end = (int(time.time()) // 3600) * 3600 - 3600
    start = end - int(args.hours * 3600)
    ts = list(range(start, end, args.step))
    n_samples = len(ts) * args.series
    log("data: %d series x %d samples = %d samples" % (args.series, len(ts), n_samples))
    tmp = tempfile.mkdtemp(prefix="grace-mbench-")
    report = []
    g = None
    prom = None
    try:
        # -- Grace: ingest
        g = GraceServer(kernels={"metrics": {}, "alerts": {}},
                        config={"metrics": {"max_series": args.series + 10000,
                                            "flush_interval_ms": 2000}})
        g.start()
        g.login()
        port = g.kernel_port("metrics")
        hdr = dict(g.token_headers(), **{"Content-Type": "application/json"})
        per_batch = max(1, 30000 // len(ts))  # bodies under the 1 MiB request limit
        bodies = []
        for lo in range(0, args.series, per_batch):
            series = [{"labels": {"__name__": "bench_value", "job": "j%d" % (i % 10),
                                  "instance": "i%d" % i},
                       "samples": [[t * 1000, value(i, t)] for t in ts]}
                      for i in range(lo, min(args.series, lo + per_batch))]
            bodies.append(json.dumps({"series": series}).encode())
        log("grace: %d write batches built" % len(bodies))
        t0 = time.monotonic()
        for b in bodies:
            try:
                st, ans = http_json(port, "POST", "/write", b, hdr)
            except OSError as e:
                st, ans = 0, str(e)
            if st != 200:
                log(g.log_tail(40))
                raise SystemExit("grace /write: %s %s" % (st, ans))
        g_ingest = time.monotonic() - t0
        del bodies
        log("grace ingest: %.0f samples/s (%.1f s)" % (n_samples / g_ingest, g_ingest))
        time.sleep(3)  # a flush
        st, tsdb = http_json(port, "GET", "/api/v1/status/tsdb", headers=g.token_headers())
        gs = tsdb["data"]["graceStorage"]

        # -- Prometheus: the same samples through its bulk loader
        om = os.path.join(tmp, "data.om")
        with open(om, "w") as f:
            f.write("# TYPE bench_value gauge\n")
            for i in range(args.series):
                for t in ts:
                    f.write('bench_value{instance="i%d",job="j%d"} %s %d\n'
                            % (i, i % 10, repr(value(i, t)), t))
            f.write("# EOF\n")
        pdata = os.path.join(tmp, "prom")
        os.makedirs(pdata)
        t0 = time.monotonic()
        subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", om, pdata],
                       check=True, stdout=subprocess.DEVNULL)
        p_ingest = time.monotonic() - t0
        os.unlink(om)
        log("prometheus ingest: %.0f samples/s (%.1f s)" % (n_samples / p_ingest, p_ingest))
        chunk_bytes = block_bytes = 0
        for root, _, files in os.walk(pdata):
            for fn in files:
                sz = os.path.getsize(os.path.join(root, fn))
                block_bytes += sz
                if os.path.basename(root) == "chunks":
                    chunk_bytes += sz
        pport = free_port()
        prom = subprocess.Popen(["prometheus", "--config.file=/dev/null",
                                 "--storage.tsdb.path=" + pdata,
                                 "--storage.tsdb.retention.time=10y",
                                 "--web.listen-address=127.0.0.1:%d" % pport],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(600):
            try:
                if http_json(pport, "GET", "/-/ready")[0] == 200:
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.1)

        # -- range queries over the day, same instants on both
        queries = ["sum by (job) (rate(bench_value[5m]))", 'bench_value{instance="i1"}']
        lat = {}
        for q in queries:
            for name, p, h in (("grace", port, g.token_headers()), ("prometheus", pport, {})):
                qs = urllib.parse.urlencode({"query": q, "start": start + 300, "end": end,
                                             "step": 300})
                http_json(p, "GET", "/api/v1/query_range?" + qs, headers=h)  # warm
                xs = []
                for _ in range(args.queries):
                    t0 = time.monotonic()
                    st, ans = http_json(p, "GET", "/api/v1/query_range?" + qs, headers=h)
                    xs.append((time.monotonic() - t0) * 1000)
                    if st != 200:
                        raise SystemExit("%s query: %s %s" % (name, st, ans))
                xs.sort()
                lat[(q, name)] = (statistics.median(xs), xs[max(0, int(len(xs) * 0.99) - 1)])
                log("%s %s: p50 %.1f ms" % (name, q, lat[(q, name)][0]))

        # -- rule evaluation: N alerting rules, once, on the last instant
        rules = "groups:\n- name: bench\n  interval: 1h\n  rules:\n"
        for i in range(args.rules):
            rules += ("  - alert: A%d\n    expr: bench_value{instance=\"i%d\"} > 500\n"
                      % (i, i % args.series))
        st, _, ans = g.http("PUT", "/kernels/alerts/rules/files/bench.yml",
                         {"yaml": rules, "paused": True}, timeout=60)
        if st != 200:
            raise SystemExit("rule file: %s %s" % (st, ans))
        t0 = time.monotonic()
        st, _, ans = g.http("POST", "/kernels/alerts/rules/evaluate?time=%d" % ((end - 60) * 1000),
                         timeout=600)
        g_rules = time.monotonic() - t0
        if st != 200 or ans["failures"]:
            raise SystemExit("evaluate: %s %s" % (st, ans))
        rf = os.path.join(tmp, "rules.yml")
        with open(rf, "w") as f:
            f.write(rules)
        tf = os.path.join(tmp, "test.yml")
        with open(tf, "w") as f:
            f.write("rule_files: [rules.yml]\nevaluation_interval: 1m\ntests:\n"
                    "- interval: 1m\n  input_series:\n")
            for i in range(min(args.series, args.rules)):
                f.write("  - series: 'bench_value{instance=\"i%d\"}'\n    values: '%d'\n"
                        % (i, 600 if i % 2 else 100))
            f.write("  alert_rule_test: []\n")
        t0 = time.monotonic()
        subprocess.run(["promtool", "test", "rules", tf], check=True, cwd=tmp,
                       stdout=subprocess.DEVNULL)
        p_rules = time.monotonic() - t0

        rate_g, rate_p = n_samples / g_ingest, n_samples / p_ingest
        report.append("metrics bench: %d series x %d samples (%.0f h, step %d s) = %d samples"
                      % (args.series, len(ts), args.hours, args.step, n_samples))
        report.append("  ingest   grace /write       %10.0f samples/s  (%.1f s)" % (rate_g, g_ingest))
        report.append("  ingest   promtool backfill  %10.0f samples/s  (%.1f s)   grace/prometheus %.2f"
                      % (rate_p, p_ingest, rate_g / rate_p))
        report.append("  bytes/sample grace: chunks %.2f, whole store %.2f; prometheus: chunks %.2f, "
                      "blocks %.2f" % (gs["bytesPerSample"], gs.get("storeBytesPerSample", 0),
                                       chunk_bytes / n_samples, block_bytes / n_samples))
        for q in queries:
            a, b = lat[(q, "grace")], lat[(q, "prometheus")]
            report.append("  range query %-40s grace p50 %.1f p99 %.1f ms; prometheus p50 %.1f p99 %.1f ms;"
                          " p50 ratio %.2f" % (q, a[0], a[1], b[0], b[1], a[0] / b[0]))
        report.append("  %d rules evaluated once: grace %.2f s (through the metrics kernel); "
                      "promtool test rules (one evaluation, process included) %.2f s"
                      % (args.rules, g_rules, p_rules))
        print("\n".join(report))
    finally:
        if prom:
            prom.send_signal(signal.SIGTERM)
            prom.wait(timeout=30)
        if g:
            g.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
