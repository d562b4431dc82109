"""The alerts kernel (8142) through `grace serve`, beside the metrics kernel
it queries: a rule file in Prometheus's format is loaded (and a bad one
refused in Prometheus's error shape), its alerting rule goes pending then
firing, with templated annotations, and its ALERTS series is written back
to the metrics kernel; a recording rule's series appears there too. The
notifier delivers Alertmanager's webhook payload (version 4) once, groups
by the configured labels, retries a receiver that failed, sends the
resolved notification once, keeps a firing alert from repeating before its
interval, mutes an inhibited alert and a silenced one; silences are
created, listed and expired through the Alertmanager API (a silence with
no matcher is refused), and both silences and the notification log survive
a restart of the kernel, so nothing already delivered is sent again."""

import json
import os
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, os.path.dirname(__file__))
from harness import GraceServer, GraceTestCase, scaled  # noqa: E402
from healer_support import run_cli  # noqa: E402
from webhook import Webhook  # noqa: E402

A = "/alertmanager/api/v2"
K = "/kernels/alerts"

RULES = """
groups:
  - name: test
    interval: 1h
    rules:
      - record: job:test_value:sum
        expr: sum by (job) (test_value)
      - alert: ValueHigh
        expr: test_value > 10
        for: 2s
        labels:
          severity: critical
        annotations:
          summary: "{{ $labels.job }} is at {{ $value }}"
      - alert: ValueWarm
        expr: test_value > 5
        labels:
          severity: warning
"""

NOTIFIER = """
route:
  receiver: nobody
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
  routes:
    - matchers: [alertname=~"Value.*"]
      receiver: hook
receivers:
  - name: nobody
  - name: hook
    webhook_configs:
      - url: http://127.0.0.1:%d/hook
        send_resolved: true
    grace_bus_configs:
      - subject: test.alerts
inhibit_rules:
  - source_matchers: [severity="critical"]
    target_matchers: [severity="warning"]
    equal: [job]
"""


class AlertsKernel(GraceTestCase):
    @classmethod
    def setUpClass(cls):
        cls.hook = Webhook()
        cls.g = GraceServer(kernels={"metrics": {}, "alerts": {}, "message_bus": {}})
        try:
            cls.g.start()
            st, _, body = cls.g.http("PUT", K + "/notifier/config", NOTIFIER % cls.hook.port,
                                     headers={"Content-Type": "application/yaml"})
            if st != 200:
                raise AssertionError("notifier config: %s %s" % (st, body))
        except BaseException:
            cls.g.dump_log()
            cls.g.close()
            cls.hook.close()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.g.close()
        finally:
            cls.hook.close()

    # -- helpers

    def write(self, job, value, t_ms):
        st, _, body = self.g.http("POST", "/kernels/metrics/write", {"series": [
            {"labels": {"__name__": "test_value", "job": job}, "samples": [[t_ms, value]]}]})
        self.assertEqual(st, 200, body)

    def evaluate(self, t_ms, file="test.yml"):
        body = self.evaluate_file("?file=%s&time=%d" % (file, t_ms))
        if body["failures"]:
            _, _, rules = self.g.http("GET", K + "/api/v1/rules")
            errors = [(r["name"], r["lastError"]) for gr in rules["data"]["groups"]
                      for r in gr["rules"] if r["health"] == "err"]
            self.fail("%d rules failed: %s" % (body["failures"], errors))

    def evaluate_file(self, qs):
        """POST /rules/evaluate; a 409 (the group's own evaluation is
        running, as the API says) is asked again."""
        end = time.monotonic() + scaled(20)
        while True:
            st, _, body = self.g.http("POST", K + "/rules/evaluate" + qs, timeout=scaled(30))
            if st != 409 or time.monotonic() > end:
                break
            time.sleep(0.05)
        self.assertEqual(st, 200, body)
        return body

    def query(self, expr, t_ms):
        q = urllib.parse.urlencode({"query": expr, "time": "%.3f" % (t_ms / 1000)})
        st, _, body = self.g.http("GET", "/prometheus/api/v1/query?" + q)
        self.assertEqual(st, 200, body)
        return body["data"]["result"]

    def prom_alerts(self):
        # Through the Prometheus API's prefix: the metrics kernel forwards.
        st, _, body = self.g.http("GET", "/prometheus/api/v1/alerts")
        self.assertEqual(st, 200, body)
        self.assertEqual(body["status"], "success")
        # The test's rules only (Grace's default rules may be pending on
        # this machine's own state, a disk filling up for instance).
        return {(a["labels"]["alertname"], a["labels"]["job"]): a for a in body["data"]["alerts"]
                if a["labels"]["alertname"] in ("ValueHigh", "ValueWarm")}

    # -- tests

    def test_1_bad_rule_file_refused(self):
        st, _, body = self.g.http("PUT", K + "/rules/files/bad.yml",
                                  "groups:\n  - name: x\n    rules:\n      - alert: A\n",
                                  headers={"Content-Type": "application/yaml"})
        self.assertEqual(st, 400, body)
        self.assertEqual(body["status"], "error")
        self.assertEqual(body["errorType"], "bad_data")
        self.assertIn("expr", body["error"])
        st, _, body = self.g.http("PUT", K + "/rules/files/bad.yml", "groups: [",
                                  headers={"Content-Type": "application/yaml"})
        self.assertEqual(st, 400, body)
        self.assertIn("line", body["error"])
        st, _, body = self.g.http("GET", K + "/rules/files/bad.yml")
        self.assertEqual(st, 404, body)

    def test_2_silences_api(self):
        now = time.time()
        iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(t))  # noqa: E731
        st, _, body = self.g.http("POST", A + "/silences", {
            "matchers": [], "startsAt": iso(now), "endsAt": iso(now + 3600),
            "createdBy": "t", "comment": "c"})
        self.assertEqual(st, 400, body)
        self.assertIn("matcher", body)
        st, _, body = self.g.http("POST", A + "/silences", {
            "matchers": [{"name": "job", "value": "", "isRegex": False, "isEqual": True}],
            "startsAt": iso(now), "endsAt": iso(now + 3600), "createdBy": "t", "comment": "c"})
        self.assertEqual(st, 400, body)
        self.assertIn("empty string", body)
        st, _, body = self.g.http("POST", A + "/silences", {
            "matchers": [{"name": "job", "value": "other", "isRegex": False, "isEqual": True}],
            "startsAt": iso(now), "endsAt": iso(now + 3600), "createdBy": "tester",
            "comment": "maintenance"})
        self.assertEqual(st, 200, body)
        sid = body["silenceID"]
        st, _, body = self.g.http("GET", A + "/silence/" + sid)
        self.assertEqual(st, 200, body)
        self.assertEqual(body["status"]["state"], "active")
        self.assertEqual(body["createdBy"], "tester")
        st, _, body = self.g.http("GET", A + "/silences")
        self.assertIn(sid, [s["id"] for s in body])
        st, _, body = self.g.http("DELETE", A + "/silence/" + sid)
        self.assertEqual(st, 200, body)
        st, _, body = self.g.http("GET", A + "/silence/" + sid)
        self.assertEqual(body["status"]["state"], "expired")
        st, _, body = self.g.http("GET", A + "/silence/nope")
        self.assertEqual(st, 404, body)

    def test_3_rules_alerts_and_notifications(self):
        t0 = int(time.time() * 1000) - 30000  # every evaluation at a past instant
        # Paused: only the test's evaluations run, at the instants it names.
        st, _, body = self.g.http("PUT", K + "/rules/files/test.yml",
                                  {"yaml": RULES, "paused": True})
        self.assertEqual(st, 200, body)
        self.assertTrue(body["paused"])
        # "a" is high (critical and warning: the warning is inhibited);
        # "b" is warm only; "c" is silenced.
        iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(t / 1000))  # noqa
        st, _, body = self.g.http("POST", A + "/silences", {
            "matchers": [{"name": "job", "value": "c", "isRegex": False, "isEqual": True}],
            "startsAt": iso(t0), "endsAt": iso(t0 + 3600_000), "createdBy": "t", "comment": "c"})
        self.assertEqual(st, 200, body)
        for job, v in (("a", 20), ("b", 7), ("c", 30)):
            self.write(job, v, t0)
        self.evaluate(t0)
        al = self.prom_alerts()
        self.assertEqual(al[("ValueHigh", "a")]["state"], "pending")
        self.assertEqual(al[("ValueWarm", "b")]["state"], "firing")
        self.assertEqual(al[("ValueHigh", "a")]["annotations"]["summary"], "a is at 20")
        # The recording rule's series and ALERTS are in the metrics kernel.
        rec = {r["metric"]["job"]: r["value"][1] for r in self.query("job:test_value:sum", t0)}
        self.assertEqual(rec, {"a": "20", "b": "7", "c": "30"})
        pend = self.query('ALERTS{alertname="ValueHigh",alertstate="pending"}', t0)
        self.assertEqual(sorted(r["metric"]["job"] for r in pend), ["a", "c"])

        # ValueWarm fires at once: one notification for its group, with b
        # (a's warning is inhibited by a's critical only once that fires,
        # so a's warning is in this first one; c is silenced).
        first = self.hook.wait(lambda bs: [b for b in bs if b["groupLabels"] == {"alertname": "ValueWarm"}],
                               scaled(10), "the ValueWarm group")[0]
        self.assertEqual(first["version"], "4")
        self.assertEqual(first["status"], "firing")
        self.assertEqual(first["receiver"], "hook")
        self.assertEqual(first["groupKey"], '{}/{alertname=~"Value.*"}:{alertname="ValueWarm"}')
        self.assertEqual(first["commonLabels"]["alertname"], "ValueWarm")
        self.assertEqual(sorted(a["labels"]["job"] for a in first["alerts"]), ["a", "b"])
        for a in first["alerts"]:
            self.assertEqual(set(a), {"status", "labels", "annotations", "startsAt", "endsAt",
                                      "generatorURL", "fingerprint"})
            self.assertEqual(a["status"], "firing")
            self.assertEqual(a["endsAt"], "0001-01-01T00:00:00Z")
        self.assertEqual(set(first), {"receiver", "status", "alerts", "groupLabels",
                                      "commonLabels", "commonAnnotations", "externalURL",
                                      "version", "groupKey", "truncatedAlerts"})

        # The same notification on the bus subject, as the payload.
        def on_bus():
            st, _, body = self.g.http("GET", "/bus/groups/t/poll?subject=test.alerts"
                                      "&from=earliest&max=10")
            return st == 200 and body["messages"]
        msgs = self.g.wait_for(on_bus, scaled(10), interval=0.1, message="the bus notification")
        self.assertEqual(msgs[0]["payload"]["groupKey"], first["groupKey"])
        self.assertEqual(msgs[0]["payload"]["alerts"], first["alerts"])

        # 3 s later ValueHigh fires; its notification holds a only (c is
        # silenced); the receiver fails twice first and is retried.
        self.hook.fail_next = 2
        t1 = t0 + 3000
        for job, v in (("a", 20), ("b", 7), ("c", 30)):
            self.write(job, v, t1)
        self.evaluate(t1)
        self.assertEqual(self.prom_alerts()[("ValueHigh", "a")]["state"], "firing")
        high = self.hook.wait(lambda bs: [b for b in bs if b["groupLabels"] == {"alertname": "ValueHigh"}],
                              scaled(15), "the ValueHigh group after two failures")
        self.assertEqual(len(high), 1)
        self.assertEqual([a["labels"]["job"] for a in high[0]["alerts"]], ["a"])
        self.assertEqual(high[0]["alerts"][0]["annotations"]["summary"], "a is at 20")
        st, _, body = self.g.http("GET", A + "/alerts?filter=" + urllib.parse.quote('job="c"'))
        self.assertEqual(st, 200, body)
        self.assertEqual(body[0]["status"]["state"], "suppressed")
        self.assertEqual(len(body[0]["status"]["silencedBy"]), 1)
        st, _, body = self.g.http("GET", A + "/alerts?filter=" + urllib.parse.quote('alertname="ValueWarm"') +
                                  "&filter=" + urllib.parse.quote('job="a"'))
        self.assertEqual(len(body), 1)
        self.assertEqual(body[0]["status"]["state"], "suppressed")
        self.assertEqual(len(body[0]["status"]["inhibitedBy"]), 1)

        # The kernel restarts: silences, the notifier's alerts and its
        # notification log stay, so nothing is notified again. ValueHigh's
        # `for` (under Prometheus's 10 min grace period) is not restored:
        # it goes pending, then fires again, as in Prometheus; the
        # notifier still holds it firing meanwhile, as Alertmanager would.
        n_before = len(self.hook.bodies())
        self.restart_alerts()
        st, _, body = self.g.http("GET", A + "/silences")
        self.assertIn("c", [m["value"] for s in body for m in s["matchers"]])
        st, _, body = self.g.http("GET", A + "/alerts?filter=" + urllib.parse.quote('job="a"'))
        self.assertEqual(sorted(a["labels"]["alertname"] for a in body), ["ValueHigh", "ValueWarm"])
        t2 = t1 + 3000
        for t in (t2, t2 + 2500):
            for job, v in (("a", 20), ("b", 7), ("c", 30)):
                self.write(job, v, t)
            self.evaluate(t)
            if t == t2:
                self.assertEqual(self.prom_alerts()[("ValueHigh", "a")]["state"], "pending")
        self.assertEqual(self.prom_alerts()[("ValueHigh", "a")]["state"], "firing")
        time.sleep(scaled(2.5))  # two group intervals: nothing new must come
        self.assertEqual(len(self.hook.bodies()), n_before,
                         "notified again after a restart: %s" % self.hook.bodies()[n_before:])

        # Everything resolves: one resolved notification per group, once.
        t3 = t2 + 5000
        for job in ("a", "b", "c"):
            self.write(job, 0, t3)
        self.evaluate(t3)
        self.assertEqual(self.prom_alerts(), {})
        resolved = self.hook.wait(
            lambda bs: len([b for b in bs if b["status"] == "resolved"]) >= 2 and bs,
            scaled(10), "two resolved notifications")
        time.sleep(scaled(2.5))
        res = [b for b in self.hook.bodies() if b["status"] == "resolved"]
        self.assertEqual(sorted(b["groupLabels"]["alertname"] for b in res),
                         ["ValueHigh", "ValueWarm"], resolved)
        for b in res:
            for a in b["alerts"]:
                self.assertEqual(a["status"], "resolved")
                self.assertNotEqual(a["endsAt"], "0001-01-01T00:00:00Z")
        gone = self.query('ALERTS{alertname="ValueHigh"}', t3)
        self.assertEqual(gone, [])

    def test_4_silences_from_the_cli(self):
        r = run_cli(self.g, "silence", "add", "job=cli", 'severity=~"crit.*"',
                    "--comment", "from the CLI", "--duration", "30m", "--author", "ops")
        self.assertEqual(r.returncode, 0, r.stderr)
        sid = r.stdout.strip()
        st, _, body = self.g.http("GET", A + "/silence/" + sid)
        self.assertEqual(st, 200, body)
        self.assertEqual(body["createdBy"], "ops")
        self.assertEqual(sorted((m["name"], m["value"], m["isRegex"]) for m in body["matchers"]),
                         [("job", "cli", False), ("severity", "crit.*", True)])
        r = run_cli(self.g, "silences")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(sid, r.stdout)
        self.assertIn("from the CLI", r.stdout)
        r = run_cli(self.g, "silence", "expire", sid)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = run_cli(self.g, "silences", "--json")
        state = {s["id"]: s["status"]["state"] for s in json.loads(r.stdout)}
        self.assertEqual(state[sid], "expired")
        r = run_cli(self.g, "silence", "add", "job", "--comment", "x")
        self.assertEqual(r.returncode, 2)
        self.assertIn("not a matcher", r.stderr)
        r = run_cli(self.g, "silence", "expire", "no-such-silence")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("not found", r.stderr)

    def test_5_grace_alerts_on_itself(self):
        # The default rule set is loaded, read-only, and healthy.
        st, _, body = self.g.http("GET", K + "/rules/files")
        files = {f["name"]: f for f in body["files"]}
        self.assertTrue(files["grace-default.yml"]["from_config"])
        st, _, body = self.g.http("PUT", K + "/rules/files/grace-default.yml", "groups: []\n",
                                  headers={"Content-Type": "application/yaml"})
        self.assertEqual(st, 409, body)
        body = self.evaluate_file("?file=grace-default.yml")
        self.assertEqual(body["failures"], 0, body)
        st, _, body = self.g.http("GET", "/prometheus/api/v1/rules?type=alert")
        self.assertEqual(st, 200, body)
        rules = {r["name"]: r for gr in body["data"]["groups"] if gr["file"] == "grace-default.yml"
                 for r in gr["rules"]}
        self.assertEqual(set(rules), {"GraceKernelDown", "GraceKernelFlapping", "GraceTargetDown",
                                      "GraceHealFailing", "GraceAuditEventsDropped",
                                      "GraceLogVerifyFailing", "GraceDiskFilling",
                                      "GraceDiskFullSoon"})
        self.assertTrue(all(r["health"] == "ok" for r in rules.values()), rules)
        # A heal incident (the guardian's path to the healer) becomes an alert.
        st, _, body = self.g.http("POST", "/network-healer/heal",
                                  {"component_name": "metrics", "issue_type": "slow_response"},
                                  timeout=scaled(60))
        self.assertIn(st, (200, 409, 422, 500, 502, 503), body)

        def incident():
            st, _, body = self.g.http("GET", A + "/alerts?filter=" +
                                      urllib.parse.quote('alertname="GraceHealIncident"'))
            return st == 200 and [a for a in body if a["labels"]["kernel"] == "metrics"]
        got = self.g.wait_for(incident, scaled(30), interval=0.2,
                              message="the heal incident as an alert")
        self.assertIn("metrics", got[0]["annotations"]["summary"])

    def restart_alerts(self):
        st, _, body = self.g.http("POST", "/kernel-ports/alerts/restart")
        self.assertIn(st, (200, 202), body)
        self.g.wait_for(lambda: self.g.http("GET", A + "/status")[0] == 200, scaled(20),
                        message="the alerts kernel back")

if __name__ == "__main__":
    unittest.main()
