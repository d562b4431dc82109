"""Differential test of the metrics kernel against Debian's Prometheus 2.42:
both scrape the same deterministic targets (targets.py: text format and
OpenMetrics, samples on a 5 s grid with their own timestamps, a counter
without timestamps, a series that comes and goes) every second for a
while; then the same PromQL queries, instant and range, go to both HTTP
APIs and must agree within float tolerance (2 % for the counter scraped
without timestamps, whose samples depend on when each scraper came).

The full run scrapes for 65 s and asks each query at three instants; with
GRACE_SANITIZED=1 (the sanitizer pass) it scrapes for 60 s and asks at
one: slower, never skipped. Ranges are at most 30 s (a subquery's with its
inner range), so the scrape stays about a minute. Every
window lies after both scrapers had their first scrape, so both hold the
same samples in it."""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, os.path.dirname(__file__))
from harness import (DEFAULT_SECTIONS, GraceServer, GraceTestCase, PortReservation,  # noqa: E402
                     http_request, port_bindable, render_ini, scaled)
from targets import GRID_S, FLAP_S, Target, grid_time  # noqa: E402

SANITIZED = os.environ.get("GRACE_SANITIZED") == "1"
SCRAPE_FOR_S = 60 if SANITIZED else 65
# The longest window a query looks back over (a subquery's range plus its
# inner range), full and shortened.
WINDOW_MAX_S = 30
SHORTER = [("[1m]", "[20s]"), ("[30s]", "[15s]"), ("[20s]", "[10s]"), ("[40s:5s]", "[20s:5s]"),
           ("[30s:5s]", "[15s:5s]")]


def adapt(q):
    """The query with its ranges shortened (a minute of scraping is enough)."""
    for a, b in SHORTER:
        q = q.replace(a, b)
    return q

# (query, kind, relative tolerance); kind: "i" instant, "r" range, "ir" both.
QUERIES = [
    ('diff_requests_total', "ir", 1e-9),
    ('diff_temperature', "ir", 1e-9),
    ('up{job=~"ext|om"}', "ir", 0),
    ('rate(diff_requests_total[30s])', "ir", 1e-9),
    ('irate(diff_requests_total{job="ext"}[20s])', "ir", 1e-9),
    ('increase(diff_requests_total[1m])', "i", 1e-9),
    ('delta(diff_temperature[30s])', "ir", 1e-9),
    ('deriv(diff_temperature[30s])', "ir", 1e-9),
    ('idelta(diff_temperature[20s])', "i", 1e-9),
    ('predict_linear(diff_temperature[30s], 60)', "i", 1e-9),
    ('resets(diff_requests_total[30s])', "i", 0),
    ('changes(diff_temperature[30s])', "ir", 0),
    ('avg_over_time(diff_temperature[30s])', "ir", 1e-9),
    ('min_over_time(diff_temperature[30s])', "i", 1e-9),
    ('max_over_time(diff_temperature[30s])', "i", 1e-9),
    ('sum_over_time(diff_temperature[30s])', "i", 1e-9),
    ('count_over_time(diff_temperature[30s])', "ir", 0),
    ('quantile_over_time(0.9, diff_temperature[30s])', "i", 1e-9),
    ('stddev_over_time(diff_temperature[30s])', "i", 1e-6),
    ('stdvar_over_time(diff_temperature[30s])', "i", 1e-6),
    ('last_over_time(diff_temperature[30s])', "i", 1e-9),
    ('present_over_time(diff_temperature[30s])', "i", 0),
    ('absent_over_time(nonexistent[30s])', "i", 0),
    ('holt_winters(diff_temperature[30s], 0.5, 0.5)', "i", 1e-9),
    ('sum by (code) (rate(diff_requests_total[30s]))', "ir", 1e-9),
    ('sum without (instance) (diff_requests_total)', "i", 1e-9),
    ('avg(diff_temperature) by (job)', "ir", 1e-9),
    ('min(diff_temperature)', "i", 1e-9),
    ('max by (room) (diff_temperature)', "i", 1e-9),
    ('count(diff_temperature) by (job)', "i", 0),
    ('stddev(diff_temperature)', "i", 1e-6),
    ('stdvar by (job) (diff_temperature)', "i", 1e-6),
    ('topk(2, diff_temperature{job="ext"})', "i", 1e-9),
    ('bottomk(1, diff_temperature) by (job)', "i", 1e-9),
    ('quantile(0.5, diff_temperature)', "ir", 1e-9),
    ('count_values("v", round(diff_temperature))', "i", 0),
    ('group by (job) (diff_temperature)', "i", 0),
    ('histogram_quantile(0.9, rate(diff_latency_seconds_bucket[30s]))', "ir", 1e-9),
    ('histogram_quantile(0.5, sum by (le) (rate(diff_latency_seconds_bucket[30s])))', "i", 1e-9),
    ('diff_requests_total{code="500"} / ignoring(code) diff_requests_total{code="200"}', "ir", 1e-9),
    ('diff_requests_total / on(job, instance) group_left sum by (job, instance) (diff_requests_total)', "i", 1e-9),
    ('diff_temperature > 22', "ir", 1e-9),
    ('diff_temperature > bool 22', "i", 0),
    ('diff_temperature{job="ext"} and diff_temperature{room="a"}', "i", 1e-9),
    ('diff_temperature{job="ext"} unless diff_temperature{room="a"}', "i", 1e-9),
    ('diff_temperature{room="a"} or diff_temperature{room="b"}', "i", 1e-9),
    ('absent(nonexistent{job="x"})', "i", 0),
    ('absent(diff_temperature)', "i", 0),
    ('label_replace(diff_temperature, "r", "room-$1", "room", "(.)")', "i", 1e-9),
    ('label_join(diff_temperature, "where", "/", "job", "room")', "i", 1e-9),
    ('clamp(diff_temperature, 19, 22)', "i", 1e-9),
    ('round(diff_temperature, 0.5)', "i", 1e-9),
    ('abs(diff_temperature - 22)', "i", 1e-9),
    ('sqrt(diff_temperature) + ln(diff_temperature) - exp(diff_temperature / 10)', "i", 1e-9),
    ('timestamp(diff_temperature)', "i", 0),
    ('time()', "ir", 0),
    ('vector(1)', "i", 0),
    ('scalar(sum(diff_temperature{job="ext"}))', "i", 1e-9),
    ('max_over_time(rate(diff_requests_total[20s])[40s:5s])', "i", 1e-9),
    ('avg_over_time(diff_temperature[30s:5s])', "ir", 1e-9),
    ('diff_temperature offset 10s', "ir", 1e-9),
    ('rate(diff_requests_total[30s] offset 10s)', "i", 1e-9),
    ('sort_desc(diff_temperature)', "i", 1e-9),
    ('diff_requests_total @ end()', "r", 1e-9),
    ('rate(diff_live_total[20s])', "i", 0.02),
]


def prom_query(port, path, params, timeout=30):
    st, _, body = http_request(port, "POST", path, urllib.parse.urlencode(params),
                               {"Content-Type": "application/x-www-form-urlencoded"}, timeout)
    return st, body


def normalise(data):
    """Prometheus's data as {labels: value or [(t, v)]} with floats."""
    kind = data["resultType"]
    if kind == "scalar":
        return {(): float(data["result"][1])}
    out = {}
    for r in data["result"]:
        key = tuple(sorted(r["metric"].items()))
        if kind == "vector":
            out[key] = float(r["value"][1])
        else:
            out[key] = [(round(t, 3), float(v)) for t, v in r["values"]]
    return out


def close_enough(a, b, tol):
    if math.isnan(a) and math.isnan(b):
        return True
    if a == b:
        return True
    if tol == 0:
        return False
    return abs(a - b) <= tol * max(abs(a), abs(b), 1e-12)


def compare(grace, prom, tol):
    """None when they agree, else why not."""
    if set(grace) != set(prom):
        return "series differ: only in Grace %s, only in Prometheus %s" % (
            sorted(set(grace) - set(prom))[:3], sorted(set(prom) - set(grace))[:3])
    for k, gv in grace.items():
        pv = prom[k]
        if isinstance(gv, list):
            if [t for t, _ in gv] != [t for t, _ in pv]:
                return "%s: timestamps differ: %s vs %s" % (k, gv[:4], pv[:4])
            for (t, a), (_, b) in zip(gv, pv):
                if not close_enough(a, b, tol):
                    return "%s at %s: Grace %r, Prometheus %r" % (k, t, a, b)
        elif not close_enough(gv, pv, tol):
            return "%s: Grace %r, Prometheus %r" % (k, gv, pv)
    return None


class Prometheus:
    def __init__(self, port, target_port, tmp):
        self.port = port
        self.dir = tempfile.mkdtemp(prefix="grace-prom-", dir=tmp)
        cfg = os.path.join(self.dir, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "scrape_configs:\n")
            for job, path in (("ext", "/metrics"), ("om", "/om")):
                f.write("  - job_name: %s\n    metrics_path: %s\n"
                        "    static_configs:\n      - targets: ['127.0.0.1:%d']\n"
                        % (job, path, target_port))
        self.log = open(os.path.join(self.dir, "prometheus.log"), "wb")
        self.proc = subprocess.Popen(
            ["prometheus", "--config.file=" + cfg, "--storage.tsdb.path=" + self.dir + "/data",
             "--web.listen-address=127.0.0.1:%d" % port, "--storage.tsdb.retention.time=1d"],
            stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL)

    def log_tail(self):
        self.log.flush()
        with open(os.path.join(self.dir, "prometheus.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")[-3000:]

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class MetricsDifferential(GraceTestCase):
    def test_same_answers_as_prometheus(self):
        if not shutil.which("prometheus"):
            self.fail("prometheus (Debian's package) is needed: run scripts/bootstrap.sh --test")
        res = PortReservation()
        target_port, prom_port = 8001 + res.offset, 8002 + res.offset
        for p in (target_port, prom_port):
            self.assertTrue(port_bindable(p), "port %d of our reservation is taken" % p)
        target = Target(target_port)
        tmp = tempfile.mkdtemp(prefix="grace-diff-")
        prom = None
        try:
            sections = {k: dict(v) for k, v in DEFAULT_SECTIONS.items()}
            sections["grace"]["library_root"] = "@LIBRARY@"
            sections["policy"] = {"authorizer": "table"}  # no policy kernel here: the role table
            text = render_ini(sections)
            text += "[kernel.metrics]\nport = 8141\ntier = services\n\n"
            text += "[metrics]\nscrape_interval_ms = 1000\nscrape_timeout_ms = 1000\n"
            text += "target = ext 127.0.0.1:%d /metrics\n" % target_port
            text += "target = om 127.0.0.1:%d /om\n" % target_port
            with GraceServer(text=text, reservation=res) as g:
                prom = Prometheus(prom_port, target_port, tmp)
                gport = g.kernel_port("metrics")
                token = g.token_headers()

                def grace(path, params):
                    st, _, body = http_request(
                        gport, "POST", path, urllib.parse.urlencode(params),
                        dict(token, **{"Content-Type": "application/x-www-form-urlencoded"}), 30)
                    return st, body

                def both_up():
                    if prom.proc.poll() is not None:
                        raise AssertionError("prometheus exited:\n" + prom.log_tail())
                    try:
                        a = grace("/api/v1/query", {"query": 'count(up{job=~"ext|om"} == 1)'})
                        b = prom_query(prom_port, "/api/v1/query",
                                       {"query": 'count(up{job=~"ext|om"} == 1)'})
                    except OSError:
                        return False
                    ok = lambda r: (r[0] == 200 and r[1]["data"]["result"] and
                                    r[1]["data"]["result"][0]["value"][1] == "2")
                    return ok(a) and ok(b)

                g.wait_for(both_up, scaled(60), interval=0.5,
                           message=lambda: "both scraping (prometheus log:\n%s)" % prom.log_tail())
                # From here on both hold every grid point.
                common = time.time()
                time.sleep(SCRAPE_FOR_S)
                # Instants on grid points at least 10 s old, whose windows
                # begin after `common`.
                end = grid_time(time.time()) - 10
                times = [end] if SANITIZED else [end, end - 7.5, end - 15]
                range_start = end - (10 if SANITIZED else 15)
                earliest = min(times + [range_start]) - WINDOW_MAX_S
                self.assertGreater(earliest, common, "scraped too briefly for the windows")
                failures, checked = [], 0
                for q, kind, tol in QUERIES:
                    q = adapt(q)
                    asks = []
                    if "i" in kind:
                        for t in times:
                            asks.append(("/api/v1/query", {"query": q, "time": "%.3f" % t}))
                    if "r" in kind:
                        asks.append(("/api/v1/query_range",
                                     {"query": q, "start": "%.3f" % range_start,
                                      "end": "%.3f" % end, "step": "5"}))
                    for path, params in asks:
                        sa, ga = grace(path, params)
                        sb, pb = prom_query(prom_port, path, params)
                        checked += 1
                        if sa != sb or (sa == 200) != (ga.get("status") == "success"):
                            failures.append("%s %s: Grace %s %r, Prometheus %s %r"
                                            % (path, params, sa, ga, sb, pb))
                            continue
                        if sa != 200:
                            if ga["errorType"] != pb["errorType"]:
                                failures.append("%s: error types %s vs %s" % (q, ga, pb))
                            continue
                        if ga["data"]["resultType"] != pb["data"]["resultType"]:
                            failures.append("%s: result types differ" % q)
                            continue
                        why = compare(normalise(ga["data"]), normalise(pb["data"]), tol)
                        if why:
                            failures.append("%s %s: %s" % (path, params, why))
                # Staleness, as both see it: the flapping series at the
                # middle of a window where it was there and of one where not.
                for t in range(int(end) - 3 * FLAP_S, int(end), 1):
                    if t % FLAP_S != 4 or t < common + FLAP_S:
                        continue
                    params = {"query": "diff_flap", "time": "%d" % t}
                    sa, ga = grace("/api/v1/query", params)
                    sb, pb = prom_query(prom_port, "/api/v1/query", params)
                    checked += 1
                    want = 1 if (t // FLAP_S) % 2 == 0 else 0
                    got = (len(ga["data"]["result"]), len(pb["data"]["result"]))
                    if got != (2 * want, 2 * want):
                        failures.append("diff_flap at %d: Grace %d series, Prometheus %d, want %d"
                                        % (t, got[0], got[1], 2 * want))
                print("\n%d comparisons, %d disagreements" % (checked, len(failures)))
                self.assertEqual(failures, [], "\n".join(failures[:20]))
                self.assertGreater(checked, len(QUERIES))
        finally:
            if prom:
                prom.close()
            target.close()
            res.release()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
