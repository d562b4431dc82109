"""OTLP metrics through the telemetry kernel into the metrics kernel (issue
16): the OpenTelemetry JS SDK's metrics exporters (JSON and protobuf,
cumulative, and JSON with delta temporality) send a counter, a gauge and a
histogram as a signed-in user through :8000; the metrics kernel's
/api/v1/query gives back the values sent, under the names and labels the
OpenTelemetry Collector's Prometheus exporters give them (unit and _total
suffixes, dots to underscores, service.name as job, service.instance.id as
instance, histograms as _bucket with le / _sum / _count). Hand-made
requests check summaries, non-monotonic and delta sums, partial success,
bad input and back-pressure when the metrics kernel is not there."""

import json
import os
import subprocess
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
from harness import GraceServer, GraceTestCase, http_request, scaled  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SEND = os.path.join(HERE, "js", "otlp_metrics_send.mjs")
PW = "telemetry-metrics-password-1"


def kv(key, value):
    if isinstance(value, str):
        return {"key": key, "value": {"stringValue": value}}
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    return {"key": key, "value": {"intValue": str(value)}}


def request(job, metrics, scope="hand"):
    return {"resourceMetrics": [{
        "resource": {"attributes": [kv("service.name", job), kv("service.instance.id", "h-1")]},
        "scopeMetrics": [{"scope": {"name": scope}, "metrics": metrics}]}]}


def point(t_ns, start_ns=0, attrs=None, **value):
    p = {"timeUnixNano": str(t_ns), "startTimeUnixNano": str(start_ns),
         "attributes": [kv(k, v) for k, v in (attrs or {}).items()]}
    p.update(value)
    return p


class TelemetryMetrics(GraceTestCase):
    @classmethod
    def setUpClass(cls):
        cls.g = GraceServer(kernels={"telemetry": {}, "metrics": {}})
        try:
            cls.g.start()
            cls.g.create_user("mia", PW)
            cls.user_token = cls.g.login("mia", PW)
            base = "http://127.0.0.1:%d/telemetry" % cls.g.api_port
            p = subprocess.run(["node", SEND, base, "json,proto,delta", cls.user_token],
                               capture_output=True, text=True, timeout=scaled(90))
            if p.returncode != 0:
                raise AssertionError("otlp_metrics_send.mjs: %s" % p.stderr)
            cls.sent = {o["mode"]: o for o in map(json.loads, p.stdout.strip().splitlines())}
        except BaseException:
            cls.g.dump_log()
            cls.g.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.g.close()

    def post(self, body, ctype="application/json"):
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        return http_request(self.g.api_port, "POST", "/telemetry/v1/metrics", data,
                            {"Content-Type": ctype,
                             "Authorization": "Bearer " + self.user_token}, scaled(20))

    def query(self, q):
        st, _, body = self.g.http("GET", "/prometheus/api/v1/query?query=" +
                                  urllib.parse.quote(q), timeout=scaled(20))
        self.assertEqual(st, 200, body)
        return {tuple(sorted((k, v) for k, v in r["metric"].items() if k != "__name__")) +
                (("__name__", r["metric"].get("__name__")),): float(r["value"][1])
                for r in body["data"]["result"]}

    def one(self, q):
        r = self.query(q)
        self.assertEqual(len(r), 1, "%s -> %r" % (q, r))
        return list(r.values())[0]

    def check_sdk(self, mode):
        out = self.sent[mode]
        self.assertEqual(out["results"], [{"code": 0, "error": None}] * 2, mode)
        job = out["job"]
        sel = '{job="%s",instance="i-1",http_route="/a",code="200",otel_scope_name="grace-bb"}' % job
        # A monotonic counter: _total; "{request}" is an annotation, no unit.
        self.assertEqual(self.one("bb_requests_total" + sel), 12.0)
        # A gauge in Cel: _celsius; the last value recorded.
        self.assertEqual(self.one("bb_temperature_celsius" + sel), 21.5)
        # A histogram in ms: cumulative buckets with le, _sum, _count.
        buckets = self.query("bb_latency_milliseconds_bucket" + sel)
        by_le = {dict(k)["le"]: v for k, v in buckets.items()}
        self.assertEqual(by_le, {"10": 1.0, "100": 2.0, "+Inf": 3.0})
        self.assertEqual(self.one("bb_latency_milliseconds_sum" + sel), 333.0)
        self.assertEqual(self.one("bb_latency_milliseconds_count" + sel), 3.0)
        # Every label as the Collector makes them, nothing more.
        labels = dict(list(self.query("bb_requests_total" + sel))[0])
        self.assertEqual(set(labels), {"__name__", "job", "instance", "http_route", "code",
                                       "otel_scope_name", "otel_scope_version"})
        self.assertEqual(labels["otel_scope_version"], "1.2.3")

    def test_sdk_json(self):
        self.check_sdk("json")

    def test_sdk_protobuf(self):
        self.check_sdk("proto")

    def test_sdk_delta_accumulated(self):
        # The delta exporter sent 5 then 7, 2 then 1 observations: the
        # totals are the cumulative ones.
        self.check_sdk("delta")

    def test_summary_and_sums(self):
        t = time.time_ns() - 10**9
        body = request("hand-sum", [
            {"name": "rpc.duration", "unit": "s", "summary": {"dataPoints": [point(
                t, count="4", sum=2.5, quantileValues=[{"quantile": 0.5, "value": 0.4},
                                                       {"quantile": 0.99, "value": 1.5}])]}},
            {"name": "queue.depth", "unit": "{item}", "sum": {
                "aggregationTemporality": 2, "isMonotonic": False,
                "dataPoints": [point(t, asInt="-3", attrs={"q": "a"})]}},
            {"name": "bytes.sent", "unit": "By", "sum": {
                "aggregationTemporality": 1, "isMonotonic": True,
                "dataPoints": [point(t - 2 * 10**6, t - 3 * 10**6, asInt=10)]}},
            {"name": "cpu.utilization", "unit": "1", "gauge": {
                "dataPoints": [point(t, asDouble=0.25)]}},
        ])
        st, _, ans = self.post(body)
        self.assertEqual((st, ans), (200, {}))
        # The next delta interval adds to the total; the same one again (a
        # retry) does not.
        nxt = request("hand-sum", [{"name": "bytes.sent", "unit": "By", "sum": {
            "aggregationTemporality": 1, "isMonotonic": True,
            "dataPoints": [point(t, t - 2 * 10**6, asInt=32)]}}])
        for _ in range(2):
            st, _, ans = self.post(nxt)
            self.assertEqual(st, 200, ans)
        sel = '{job="hand-sum",instance="h-1",otel_scope_name="hand"}'
        self.assertEqual(self.one('rpc_duration_seconds{quantile="0.5"}'), 0.4)
        self.assertEqual(self.one('rpc_duration_seconds{quantile="0.99"}'), 1.5)
        self.assertEqual(self.one("rpc_duration_seconds_sum" + sel), 2.5)
        self.assertEqual(self.one("rpc_duration_seconds_count" + sel), 4.0)
        self.assertEqual(self.one('queue_depth{job="hand-sum",q="a"}'), -3.0)
        # "bytes" is in the name already: no second unit suffix.
        self.assertEqual(self.one("bytes_sent_total" + sel), 42.0)
        self.assertEqual(self.one("cpu_utilization_ratio" + sel), 0.25)

    def test_partial_success_and_bad_input(self):
        t = time.time_ns()
        body = request("hand-partial", [
            {"name": "ok.gauge", "gauge": {"dataPoints": [point(t, asDouble=1)]}},
            {"name": "exp.hist", "exponentialHistogram": {
                "aggregationTemporality": 2, "dataPoints": [{"count": "1"}, {"count": "2"}]}},
            {"name": "bad.hist", "histogram": {"aggregationTemporality": 2, "dataPoints": [
                point(t, count="1", bucketCounts=["1"], explicitBounds=[1.0, 2.0])]}},
        ])
        st, _, ans = self.post(body)
        self.assertEqual(st, 200, ans)
        self.assertEqual(ans["partialSuccess"]["rejectedDataPoints"], "3")
        self.assertIn("exponential", ans["partialSuccess"]["errorMessage"])
        self.assertEqual(self.one('ok_gauge{job="hand-partial"}'), 1.0)
        # A body that is not OTLP: 400 INVALID_ARGUMENT, nothing stored.
        bad = request("hand-bad", [
            {"name": "never.stored", "gauge": {"dataPoints": [point(t, asDouble=1)]}},
            {"name": "broken", "gauge": {"dataPoints": [point(t, asInt="x")]}}])
        st, _, ans = self.post(bad)
        self.assertEqual((st, ans["code"]), (400, 3), ans)
        self.assertIn("asInt", ans["message"])
        self.assertEqual(self.query('never_stored{job="hand-bad"}'), {})
        st, _, ans = self.post(b"\xff\xff\xff", "application/x-protobuf")
        self.assertEqual(st, 400)
        self.assertEqual(self.query('{job="hand-bad"}'), {})


class TelemetryMetricsNoStore(GraceTestCase):
    """Without a metrics kernel to hand them to, OTLP metrics are answered
    503 with Retry-After (retryable in OTLP's sense), not dropped."""

    def test_unavailable_is_retryable(self):
        with GraceServer(kernels={"telemetry": {}}) as g:
            port = g.kernel_port("telemetry")
            body = request("alone", [{"name": "g", "gauge": {"dataPoints": [
                point(time.time_ns(), asDouble=1)]}}])
            st, hdrs, ans = http_request(port, "POST", "/v1/metrics", json.dumps(body).encode(),
                                         dict(g.token_headers(),
                                              **{"Content-Type": "application/json"}),
                                         scaled(20))
            self.assertEqual((st, ans["code"]), (503, 14), ans)
            self.assertEqual(hdrs.get("Retry-After"), "1")


if __name__ == "__main__":
    unittest.main()
