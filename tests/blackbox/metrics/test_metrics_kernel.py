"""The metrics kernel (8141) through `grace serve`: it scrapes the API,
every kernel and configured targets (text format and OpenMetrics), keeps
what it scraped across a restart, marks vanished series stale at once,
and answers the Prometheus HTTP API in Prometheus's shapes, with its
errors, through :8000/prometheus (users read, admins write) and on its own
port with the internal token. A second server proves the limits: a target
over its sample_limit is down with a clear error, and series past
max_series are refused with one."""

import json
import os
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, os.path.dirname(__file__))
from harness import (DEFAULT_SECTIONS, GraceServer, GraceTestCase, PortReservation,  # noqa: E402
                     render_ini, scaled, http_request)
from targets import Target  # noqa: E402

P = "/prometheus/api/v1"


def base_sections(extra_metrics):
    sections = {k: dict(v) for k, v in DEFAULT_SECTIONS.items()}
    sections["grace"]["library_root"] = "@LIBRARY@"
    sections["policy"] = {"authorizer": "table"}  # no policy kernel here: the role table
    sections["_metrics"] = extra_metrics
    return {k: v for k, v in sections.items() if k != "_metrics"}, extra_metrics


class MetricsKernel(GraceTestCase):
    @classmethod
    def setUpClass(cls):
        cls.res = PortReservation()
        cls.target = Target(8001 + cls.res.offset)
        sections, metrics = base_sections([("scrape_interval_ms", 1000),
                                           ("flush_interval_ms", 1000)])
        text = render_ini(sections)
        text += "[kernel.metrics]\nport = 8141\ntier = services\n\n"
        text += "[kernel.message_bus]\nport = 8100\ntier = core\n\n"
        text += "[metrics]\n" + "".join("%s = %s\n" % kv for kv in metrics)
        text += "target = ext 127.0.0.1:%d /metrics\n" % cls.target.port
        text += "target = om 127.0.0.1:%d /om\n" % cls.target.port
        cls.g = GraceServer(text=text, reservation=cls.res)
        try:
            cls.g.start()
            cls.g.login()
            cls.g.create_user("reader", "a long enough password")
            cls.user = cls.g.login("reader", "a long enough password")
            cls.g.wait_for(cls.all_up, scaled(20), interval=0.2,
                           message="every target up in the metrics kernel")
            # Ten seconds of history for the range queries.
            cls.g.wait_for(cls.history, scaled(30), interval=0.5,
                           message="10 s of scrapes of the API")
        except BaseException:
            cls.g.dump_log()
            cls.g.close()
            cls.target.close()
            cls.res.release()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.g.close()
        finally:
            cls.target.close()
            cls.res.release()

    @classmethod
    def all_up(cls):
        st, _, body = cls.g.http("GET", P + "/query?query=" + urllib.parse.quote("up == 1"))
        if st != 200:
            return None
        inst = {r["metric"]["instance"] for r in body["data"]["result"]}
        want = {"api", "metrics", "message_bus", "127.0.0.1:%d" % cls.target.port}
        return inst >= want

    @classmethod
    def history(cls):
        q = urllib.parse.quote('count_over_time(up{instance="api"}[12s])')
        st, _, body = cls.g.http("GET", P + "/query?query=" + q)
        r = body["data"]["result"] if st == 200 else []
        return r and float(r[0]["value"][1]) >= 11

    # -- helpers

    def query(self, expr, expect=200, **params):
        params["query"] = expr
        st, hdrs, body = self.g.http("GET", P + "/query?" + urllib.parse.urlencode(params))
        self.assertEqual(st, expect, "%s -> %s %r" % (expr, st, body))
        self.assertIn("application/json", hdrs["Content-Type"])
        return body

    def result(self, expr, **params):
        body = self.query(expr, **params)
        self.assertEqual(body["status"], "success", body)
        return body["data"]

    def api_error(self, st, body, http, etype):
        self.assertEqual(st, http, body)
        self.assertEqual(body["status"], "error", body)
        self.assertEqual(body["errorType"], etype, body)
        self.assertTrue(body["error"], body)

    # -- scraping

    def test_targets_and_own_series(self):
        st, _, body = self.g.http("GET", P + "/targets")
        self.assertEqual(st, 200, body)
        targets = body["data"]["activeTargets"]
        by = {t["labels"]["instance"]: t for t in targets if t["labels"]["job"] == "grace"}
        for name in ("api", "metrics", "message_bus"):
            self.assertEqual(by[name]["health"], "up", by[name])
            self.assertEqual(by[name]["labels"]["job"], "grace")
            self.assertEqual(by[name]["lastError"], "")
            self.assertTrue(by[name]["lastScrape"].endswith("Z"))
        ext = [t for t in targets if t["labels"]["job"] == "ext"][0]
        self.assertEqual(ext["labels"]["instance"], "127.0.0.1:%d" % self.target.port)
        self.assertEqual(ext["scrapeUrl"], "http://127.0.0.1:%d/metrics" % self.target.port)
        self.assertEqual(body["data"]["droppedTargets"], [])
        # Each kernel's series carry kernel=, and the scrape's own series exist.
        data = self.result('count by (kernel) (process_cpu_seconds_total)')
        kernels = {r["metric"]["kernel"] for r in data["result"]}
        self.assertTrue({"grace", "metrics", "message_bus"} <= kernels, kernels)
        for name in ("scrape_duration_seconds", "scrape_samples_scraped",
                     "scrape_samples_post_metric_relabeling", "scrape_series_added"):
            data = self.result('%s{instance="metrics"}' % name)
            self.assertEqual(len(data["result"]), 1, name)
        data = self.result('scrape_samples_scraped{instance="api"}')
        self.assertGreater(float(data["result"][0]["value"][1]), 50)

    def test_explicit_timestamps_and_openmetrics(self):
        """A sample's own timestamp wins; OpenMetrics' seconds become ms."""
        for job in ("ext", "om"):
            data = self.result('timestamp(diff_requests_total{code="200", job="%s"})' % job)
            self.assertEqual(len(data["result"]), 1, data)
            ts = float(data["result"][0]["value"][1])
            self.assertEqual(ts % 5, 0, "a grid timestamp, not the scrape's")
            v = self.result('diff_requests_total{code="200", job="%s"}' % job)["result"][0]
            self.assertEqual(float(v["value"][1]), 7 * ts)
        # OpenMetrics type lines reach /api/v1/metadata.
        st, _, body = self.g.http("GET", P + "/metadata?metric=diff_temperature")
        self.assertEqual(st, 200, body)
        self.assertEqual(body["data"]["diff_temperature"][0]["type"], "gauge")

    def test_staleness(self):
        """A series a scrape no longer has is gone at once, not 5 minutes later."""
        self.target.extra = ['stale_probe{n="1"} 1']
        self.g.wait_for(lambda: len(self.result("stale_probe")["result"]) == 2, scaled(10),
                        interval=0.2)
        self.target.extra = []
        self.g.wait_for(lambda: not self.result("stale_probe")["result"], scaled(10),
                        interval=0.2, message="the series marked stale")
        # Still there in the past (from both targets, text and OpenMetrics),
        # gone now: a range over both.
        data = self.result("count_over_time(stale_probe[1m])")
        self.assertEqual(sorted(r["metric"]["job"] for r in data["result"]), ["ext", "om"])

    def test_bus_counters_scraped(self):
        before = self.result('grace_bus_published_total{kernel="message_bus"}')["result"]
        n0 = float(before[0]["value"][1]) if before else 0
        for i in range(3):
            st, _, body = self.g.http("POST", "/bus/publish",
                                      {"subject": "test.metrics", "payload": {"i": i}})
            self.assertIn(st, (200, 201), body)
        self.g.wait_for(
            lambda: float((self.result('grace_bus_published_total{kernel="message_bus"}')["result"]
                           or [{"value": [0, "0"]}])[0]["value"][1]) >= n0 + 3,
            scaled(10), interval=0.2, message="the bus's published count scraped")

    # -- the API's shapes

    def test_result_types(self):
        d = self.result("1 + 1", time="1700000000.5")
        self.assertEqual(d["resultType"], "scalar")
        self.assertEqual(d["result"], [1700000000.5, "2"])
        d = self.result('"hello"', time="1700000000")
        self.assertEqual(d, {"resultType": "string", "result": [1700000000, "hello"]})
        d = self.result("vector(1) / 0", time="2023-11-14T22:13:20Z")
        self.assertEqual(d["resultType"], "vector")
        self.assertEqual(d["result"], [{"metric": {}, "value": [1700000000, "+Inf"]}])
        d = self.result('up{instance="api"}[10s]')
        self.assertEqual(d["resultType"], "matrix")
        self.assertGreaterEqual(len(d["result"][0]["values"]), 5)
        for t, v in d["result"][0]["values"]:
            self.assertIsInstance(t, (int, float))
            self.assertEqual(v, "1")

    def test_post_form_and_range(self):
        # Ten seconds back, or from the series' first sample when the
        # scrapes began later than that (a slow start, a sanitizer build):
        # a step before it has no value, and the count below would be one
        # short for the test's timing, not the engine's.
        first = self.result('up{instance="api"}[1h]')["result"][0]["values"][0][0]
        end_ms = int(time.time() * 1000)
        start_ms = max(end_ms - 10000, int(float(first) * 1000) + 1)
        steps = (end_ms - start_ms) // 2000 + 1  # in whole milliseconds, as sent
        form = urllib.parse.urlencode({"query": 'up{instance="api"}',
                                       "start": "%d.%03d" % divmod(start_ms, 1000),
                                       "end": "%d.%03d" % divmod(end_ms, 1000), "step": "2s"})
        st, _, body = self.g.http("POST", P + "/query_range", form,
                                  {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(st, 200, body)
        self.assertEqual(body["data"]["resultType"], "matrix")
        values = body["data"]["result"][0]["values"]
        self.assertEqual(len(values), steps)
        self.assertAlmostEqual(values[1][0] - values[0][0], 2, places=3)
        st, _, body = self.g.http("POST", P + "/query", "query=up%7Binstance%3D%22api%22%7D",
                                  {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(st, 200, body)
        self.assertEqual(body["data"]["result"][0]["metric"]["instance"], "api")

    def test_errors(self):
        st, _, b = self.g.http("GET", P + "/query?query=" + urllib.parse.quote("sum(up"))
        self.api_error(st, b, 400, "bad_data")
        self.assertIn("parse error", b["error"])
        self.assertIn('invalid parameter "query"', b["error"])
        st, _, b = self.g.http("GET", P + "/query?query=up&time=yesterday")
        self.api_error(st, b, 400, "bad_data")
        self.assertIn('"time"', b["error"])
        q = P + "/query_range?query=up&start=100&end=50&step=1"
        self.api_error(*self.g.http("GET", q)[::2], 400, "bad_data")
        q = P + "/query_range?query=up&start=0&end=100&step=0"
        st, _, b = self.g.http("GET", q)
        self.api_error(st, b, 400, "bad_data")
        self.assertIn("zero or negative", b["error"])
        q = P + "/query_range?query=up&start=0&end=100000&step=1"
        st, _, b = self.g.http("GET", q)
        self.api_error(st, b, 400, "bad_data")
        self.assertIn("11,000", b["error"])
        q = P + "/query_range?query=" + urllib.parse.quote("up[5m]") + "&start=0&end=10&step=1"
        st, _, b = self.g.http("GET", q)
        self.api_error(st, b, 400, "bad_data")
        self.assertIn("range vector", b["error"])
        # An evaluation error: 422 execution.
        st, _, b = self.g.http("GET", P + "/query?query=" + urllib.parse.quote(
            'label_replace(up, "instance", "x", "instance", ".*")'))
        self.api_error(st, b, 422, "execution")
        self.assertIn("same labelset", b["error"])
        st, _, b = self.g.http("GET", P + "/series")
        self.api_error(st, b, 400, "bad_data")
        st, _, b = self.g.http("GET", P + "/label/bad-name/values")
        self.api_error(st, b, 400, "bad_data")

    def test_series_labels_values(self):
        st, _, b = self.g.http("GET", P + "/series?" + urllib.parse.urlencode(
            [("match[]", 'up{instance="api"}'), ("match[]", "up{instance='metrics'}")]))
        self.assertEqual(st, 200, b)
        self.assertEqual(b["data"], [{"__name__": "up", "instance": "api", "job": "grace"},
                                     {"__name__": "up", "instance": "metrics", "job": "grace"}])
        st, _, b = self.g.http("GET", P + "/labels")
        self.assertEqual(st, 200, b)
        for name in ("__name__", "instance", "job", "kernel"):
            self.assertIn(name, b["data"])
        self.assertEqual(b["data"], sorted(b["data"]))
        st, _, b = self.g.http("GET", P + "/label/job/values")
        self.assertEqual(st, 200, b)
        self.assertEqual(b["data"], ["ext", "grace", "om"])
        st, _, b = self.g.http("GET", P + "/label/instance/values?match[]=up%7Bjob%3D%22grace%22%7D")
        self.assertEqual(b["data"], ["api", "message_bus", "metrics"])
        st, _, b = self.g.http("GET", P + "/status/buildinfo")
        self.assertEqual(st, 200, b)
        self.assertIn("version", b["data"])
        st, _, b = self.g.http("GET", P + "/status/tsdb")
        self.assertEqual(st, 200, b)
        self.assertGreater(b["data"]["headStats"]["numSeries"], 100)
        self.assertGreater(b["data"]["graceStorage"]["bytesPerSample"], 0)
        st, _, b = self.g.http("GET", P + "/query_exemplars?query=up")
        self.assertEqual((st, b["data"]), (200, []))

    def test_federate(self):
        st, hdrs, body = self.g.http("GET", "/prometheus/federate?match[]=" +
                                     urllib.parse.quote('up{job="grace"}'))
        self.assertEqual(st, 200, body)
        self.assertIn("text/plain", hdrs["Content-Type"])
        lines = body.decode().splitlines()
        self.assertEqual(lines[0], "# TYPE up untyped")
        samples = [l for l in lines if l.startswith("up{")]
        self.assertEqual(len(samples), 3, lines)
        for l in samples:
            _, value, ts = l.rsplit(" ", 2)
            self.assertEqual(value, "1")
            self.assertGreater(int(ts), 1e12)

    # -- access

    def test_access(self):
        # A user reads through the gateway with a bearer token.
        h = {"Authorization": "Bearer " + self.user}
        st, _, b = self.g.http("GET", P + "/query?query=up", headers=h)
        self.assertEqual((st, b["status"]), (200, "success"))
        # Writing is an admin's.
        st, _, b = self.g.http("POST", "/prometheus/write", {"series": []}, headers=h)
        self.assertEqual(st, 403, b)
        # Nobody reads without a session.
        st, _, b = self.g.http("GET", P + "/query?query=up", auth=False)
        self.assertEqual(st, 401, b)
        # The kernel's own port wants the internal token.
        port = self.g.kernel_port("metrics")
        st, _, b = self.g.http("GET", "/api/v1/query?query=up", port=port)
        self.assertEqual(st, 401, b)
        st, _, b = self.g.kernel_http("metrics", "GET", "/api/v1/query?query=up")
        self.assertEqual(st, 200, b)

    def test_write(self):
        t0 = int(time.time() * 1000) - 60000
        body = {"series": [{"labels": {"__name__": "imported", "src": "test"},
                            "samples": [[t0, 1], [t0 + 1000, 2.5], [t0 + 2000, "NaN"],
                                        [t0 + 3000, "stale"]]}]}
        st, _, b = self.g.http("POST", "/prometheus/write", body)
        self.assertEqual(st, 200, b)
        self.assertEqual(b["data"]["appended"], 4)
        d = self.result('imported[1h]')
        vals = d["result"][0]["values"]
        self.assertEqual([v for _, v in vals], ["1", "2.5", "NaN"])  # the marker is not a value
        # Out of order, refused, counted; the rest of the body is fine.
        st, _, b = self.g.http("POST", "/prometheus/write", {"series": [{
            "labels": {"__name__": "imported", "src": "test"}, "samples": [[t0, 9]]}]})
        self.assertEqual((st, b["data"]["out_of_order"]), (200, 1))
        for bad in ({"series": [{"labels": {"src": "x"}, "samples": [[1, 1]]}]},
                    {"series": [{"labels": {"__name__": "x", "bad-label": "y"}, "samples": []}]},
                    {"series": [{"labels": {"__name__": "x"}, "samples": [["soon", 1]]}]},
                    {"nothing": 1}):
            st, _, b = self.g.http("POST", "/prometheus/write", bad)
            self.api_error(st, b, 400, "bad_data")

    # -- durability

    def test_zz_restart_keeps_samples(self):
        """Runs last (zz): samples scraped before a restart are still there."""
        t = time.time()
        time.sleep(2.5)  # a flush (1 s) has run since these samples
        before = self.result('count_over_time(up{instance="api"}[2s])', time="%.3f" % t)
        n = float(before["result"][0]["value"][1])
        self.assertGreaterEqual(n, 1)
        st, _, b = self.g.http("POST", "/kernel-ports/metrics/restart")
        self.assertIn(st, (200, 202), b)
        self.g.wait_kernel("metrics", lambda k: k["state"] == "ready" and k["restarts"] >= 0)
        self.g.wait_for(lambda: self.query("up")["status"] == "success", scaled(10))
        after = self.result('count_over_time(up{instance="api"}[2s])', time="%.3f" % t)
        self.assertEqual(float(after["result"][0]["value"][1]), n)


class MetricsLimits(GraceTestCase):
    def test_sample_and_series_limits(self):
        with PortReservation() as res:
            target = Target(8001 + res.offset)
            try:
                sections, metrics = base_sections([("scrape_interval_ms", 1000),
                                                   ("max_series", 100), ("sample_limit", 50)])
                text = render_ini(sections)
                text += "[kernel.metrics]\nport = 8141\ntier = services\n\n"
                text += "[metrics]\n" + "".join("%s = %s\n" % kv for kv in metrics)
                text += "target = big 127.0.0.1:%d /big\n" % target.port
                with GraceServer(text=text, reservation=res) as g:
                    def big_target():
                        st, _, b = g.http("GET", P + "/targets")
                        for t in b["data"]["activeTargets"]:
                            if t["labels"]["job"] == "big" and t["health"] == "down":
                                return t
                        return None
                    t = g.wait_for(big_target, scaled(15), interval=0.2)
                    self.assertIn("sample limit exceeded (50)", t["lastError"])
                    st, _, b = g.http("GET", P + "/query?query=" +
                                      urllib.parse.quote('up{job="big"}'))
                    self.assertEqual(b["data"]["result"][0]["value"][1], "0")
                    # Past max_series: new series are refused with a clear error.
                    series = [{"labels": {"__name__": "many", "i": str(i)},
                               "samples": [[int(time.time() * 1000), i]]} for i in range(150)]
                    st, _, b = g.http("POST", "/prometheus/write", {"series": series})
                    self.assertEqual(st, 422, b)
                    self.assertEqual(b["errorType"], "execution")
                    self.assertIn("max_series (100)", b["error"])
                    st, _, m = g.http("GET", "/metrics", port=g.kernel_port("metrics"))
                    refused = [l for l in m.decode().splitlines()
                               if l.startswith("grace_tsdb_series_refused_total")]
                    self.assertGreater(float(refused[0].split()[-1]), 0)
            finally:
                target.close()


if __name__ == "__main__":
    unittest.main()
