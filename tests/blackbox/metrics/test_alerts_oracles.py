"""The alerts kernel against its oracles.

Alertmanager: Debian's prometheus-alertmanager 0.25 runs beside Grace with
the same routing (group_by, group_wait, group_interval, send_resolved) and
a webhook receiver of its own. Grace's notifier has one receiver with two
integrations: a webhook, and the real Alertmanager (alertmanager_configs:
Grace's alerts are posted to its /api/v2/alerts as Prometheus posts them).
Alerts sent to Grace fire, then resolve; the webhook payloads of both must
be the same (version 4: receiver, status, groupKey, groupLabels,
commonLabels, commonAnnotations, truncatedAlerts, and each alert's status,
labels, annotations, startsAt, endsAt, generatorURL, fingerprint), group
for group; only externalURL differs. So Alertmanager receives Grace's
alerts, groups them as configured, and Grace's own notifications are what
Alertmanager would have sent.

promtool: a rule file and input series (promtool's `values` notation) are
loaded into Grace (samples written to the metrics kernel at past instants,
the rules evaluated at each minute); the firing alerts Grace reports at
each instant become the `alert_rule_test` expectations of a promtool test
file, and `promtool test rules` (Debian's Prometheus 2.42) must pass it:
the same rules on the same series give the same alerts, labels and
templated annotations at the same times."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, os.path.dirname(__file__))
from harness import GraceServer, GraceTestCase, http_request, scaled  # noqa: E402
from webhook import Webhook  # noqa: E402

K = "/kernels/alerts"
ROUTE = """route:
  receiver: hook
  group_by: [alertname, job]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
"""


def need(tool):
    exe = shutil.which(tool)
    if not exe:
        raise AssertionError("%s is needed (Debian's prometheus / prometheus-alertmanager): "
                             "run scripts/bootstrap.sh --test" % tool)
    return exe


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def iso(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + ".%03dZ" % (ms % 1000)


class Oracles(GraceTestCase):
    @classmethod
    def setUpClass(cls):
        cls.g = GraceServer(kernels={"metrics": {}, "alerts": {}})
        try:
            cls.g.start()
        except BaseException:
            cls.g.dump_log()
            cls.g.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.g.close()

    def put_notifier(self, yaml):
        st, _, body = self.g.http("PUT", K + "/notifier/config", yaml,
                                  headers={"Content-Type": "application/yaml"})
        self.assertEqual(st, 200, body)

    # -- Alertmanager

    def start_alertmanager(self, hook_port, tmp):
        port = free_port()
        cfg = os.path.join(tmp, "am.yml")
        # Alertmanager's own group_wait longer than Grace's: an alert
        # older than group_wait makes it flush the moment the first alert
        # of a POST is in, racing the insertion of the rest (Alertmanager's
        # dispatcher goroutine against its API handler: under load it sent
        # a group of one). Recent alerts and a longer wait make it take the
        # whole POST Grace sends at its flush, every time.
        with open(cfg, "w") as f:
            f.write(ROUTE.replace("group_wait: 1s", "group_wait: 3s") +
                    "receivers:\n  - name: hook\n    webhook_configs:\n"
                    "      - url: http://127.0.0.1:%d/hook\n        send_resolved: true\n"
                    % hook_port)
        with open(os.path.join(tmp, "am.log"), "w") as errf:
            proc = subprocess.Popen([need("prometheus-alertmanager"), "--config.file=" + cfg,
                                     "--storage.path=" + os.path.join(tmp, "am"),
                                     "--web.listen-address=127.0.0.1:%d" % port,
                                     "--cluster.listen-address=", "--log.level=warn"],
                                    stdout=subprocess.DEVNULL, stderr=errf)
        self.g.track_pid(proc.pid)
        end = time.monotonic() + scaled(20)
        while time.monotonic() < end:
            try:
                if http_request(port, "GET", "/-/ready")[0] == 200:
                    return proc, port
            except OSError:
                pass
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        proc.kill()
        proc.wait()
        with open(os.path.join(tmp, "am.log")) as f:
            raise AssertionError("alertmanager did not start:\n" + f.read())

    @staticmethod
    def comparable(payload):
        p = dict(payload)
        p.pop("externalURL")
        p["alerts"] = sorted(p["alerts"], key=lambda a: a["fingerprint"])
        return p

    def test_alertmanager_receives_and_groups_the_same(self):
        self.maxDiff = None  # a differing field is shown, not cut
        tmp = tempfile.mkdtemp(prefix="grace-am-")
        grace_hook, am_hook = Webhook(), Webhook()
        proc = None
        try:
            proc, am_port = self.start_alertmanager(am_hook.port, tmp)
            self.put_notifier(ROUTE + "receivers:\n  - name: hook\n    webhook_configs:\n"
                              "      - url: http://127.0.0.1:%d/hook\n        send_resolved: true\n"
                              "    alertmanager_configs:\n"
                              "      - url: http://127.0.0.1:%d/\n"
                              % (grace_hook.port, am_port))
            # A fraction with a trailing zero: Go's webhook JSON writes
            # ".49Z", API v2 ".490Z"; every run checks both styles. In the
            # past: a resolving endsAt still ahead would lose to the earlier
            # hour-long one (Alert.Merge), in Grace as in Alertmanager.
            now = (int(time.time()) - 1) * 1000 + 490
            alerts = [{"labels": {"alertname": "DiskFull", "job": job, "instance": inst,
                                  "severity": "critical"},
                       "annotations": {"summary": "%s on %s" % (job, inst)},
                       "startsAt": iso(now), "endsAt": iso(now + 3600_000),
                       "generatorURL": "http://prom.example/graph"}
                      for job, inst in (("db", "db1"), ("db", "db2"), ("web", "web1"))]
            st, _, body = self.g.http("POST", "/alertmanager/api/v2/alerts", alerts)
            self.assertEqual(st, 200, body)
            groups = 2  # (DiskFull, db) and (DiskFull, web)

            def firing(hook):
                return lambda bs: len([b for b in bs if b["status"] == "firing"]) >= groups and bs
            grace_hook.wait(firing(grace_hook), scaled(15), "Grace's two firing groups")
            am_hook.wait(firing(am_hook), scaled(15), "Alertmanager's two firing groups")

            # All resolved: each says so once.
            for a in alerts:
                a["endsAt"] = iso(now)
            st, _, body = self.g.http("POST", "/alertmanager/api/v2/alerts", alerts)
            self.assertEqual(st, 200, body)

            def resolved(bs):
                return len([b for b in bs if b["status"] == "resolved"]) >= groups and bs
            grace_hook.wait(resolved, scaled(15), "Grace's two resolved groups")
            am_hook.wait(resolved, scaled(15), "Alertmanager's two resolved groups")
            time.sleep(scaled(4.5))  # two group intervals: nothing more comes

            gb = sorted((self.comparable(b) for b in grace_hook.bodies()),
                        key=lambda p: (p["groupKey"], p["status"] == "resolved"))
            ab = sorted((self.comparable(b) for b in am_hook.bodies()),
                        key=lambda p: (p["groupKey"], p["status"] == "resolved"))
            self.assertEqual(len(gb), 2 * groups, json.dumps(gb, indent=1))
            self.assertEqual(gb, ab)
            self.assertEqual(grace_hook.bodies()[0]["version"], "4")
        finally:
            if proc:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=20)
            grace_hook.close()
            am_hook.close()
            shutil.rmtree(tmp, ignore_errors=True)

    # -- promtool test rules

    RULES = """groups:
  - name: oracle
    interval: 1m
    rules:
      - record: job:req:rate2m
        expr: sum by (job) (rate(req_total[2m]))
      - alert: HighRate
        expr: job:req:rate2m > 0.5
        for: 2m
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.job }} at {{ $value | humanize }} req/s"
          raw: "{{ $value }}"
      - alert: Down
        expr: up == 0
        for: 1m
        keep_firing_for: 2m
        labels:
          severity: "{{ $labels.job }}-down"
        annotations:
          description: "{{ $labels.instance }} of {{ $labels.job }} down"
      - alert: Absent
        expr: absent(missing_series)
"""
    # promtool's notation: start+incrementxN; _ is a missing sample.
    SERIES = [
        ('req_total{job="api",instance="a"}', "0+30x5 150+90x8 870+6x10"),
        ('req_total{job="api",instance="b"}', "0+10x24"),
        ('req_total{job="db",instance="c"}', "0+120x12 _x3 1560+120x8"),
        ('up{job="api",instance="a"}', "1x4 0x5 1x15"),
        ('up{job="db",instance="c"}', "1 1 0 0 0 0 0 0 0 0 0 0 1x12"),
    ]
    STEPS = 24  # minutes

    @staticmethod
    def expand(notation):
        """promtool's values notation -> a value (or None) per minute."""
        out = []
        for part in notation.split():
            if part.startswith("_"):  # _xN: N missing (not N+1)
                out += [None] * (int(part[2:]) if "x" in part else 1)
                continue
            if "x" in part:
                head, n = part.split("x")
                n = int(n)
                if "+" in head[1:] or "-" in head[1:]:
                    i = max(head.rfind("+"), head.rfind("-"))
                    start, inc = float(head[:i]), float(head[i:])
                else:
                    start, inc = float(head), 0.0
                out += [start + inc * k for k in range(n + 1)]
            else:
                out.append(float(part))
        return out

    def test_promtool_agrees_on_the_alerts(self):
        # Minute 0 is an hour ago, aligned to the minute.
        base = (int(time.time()) // 60) * 60 * 1000 - 3600_000
        series = []
        for sel, notation in self.SERIES:
            name, rest = sel.split("{")
            labels = {"__name__": name}
            for kv in rest.rstrip("}").split(","):
                k, v = kv.split("=")
                labels[k] = v.strip('"')
            vals = self.expand(notation)
            series.append({"labels": labels, "samples": [[base + i * 60000, v]
                                                         for i, v in enumerate(vals)
                                                         if v is not None]})
        st, _, body = self.g.http("POST", "/kernels/metrics/write", {"series": series})
        self.assertEqual(st, 200, body)
        st, _, body = self.g.http("PUT", K + "/rules/files/oracle.yml",
                                  {"yaml": self.RULES, "paused": True})
        self.assertEqual(st, 200, body)
        tests = []
        seen = set()
        for i in range(self.STEPS + 1):
            t = base + i * 60000
            st, _, body = self.g.http("POST", K + "/rules/evaluate?file=oracle.yml&time=%d" % t,
                                      timeout=scaled(30))
            self.assertEqual(st, 200, body)
            self.assertEqual(body["failures"], 0, body)
            st, _, body = self.g.http("GET", K + "/api/v1/rules?type=alert")
            by_name = {n: [] for n in ("HighRate", "Down", "Absent")}
            for gr in body["data"]["groups"]:
                for r in gr["rules"]:
                    for a in r["alerts"]:
                        if a["state"] == "firing":
                            labels = {k: v for k, v in a["labels"].items() if k != "alertname"}
                            by_name[r["name"]].append({"exp_labels": labels,
                                                       "exp_annotations": a["annotations"]})
                            seen.add(r["name"])
            for name, exp in by_name.items():
                tests.append({"eval_time": "%dm" % i, "alertname": name, "exp_alerts": exp})
        # The corpus is worth something only if every rule fired somewhere.
        self.assertEqual(seen, {"HighRate", "Down", "Absent"})
        tmp = tempfile.mkdtemp(prefix="grace-promtool-")
        try:
            with open(os.path.join(tmp, "rules.yml"), "w") as f:
                f.write(self.RULES)
            doc = {"rule_files": ["rules.yml"], "evaluation_interval": "1m",
                   "tests": [{"interval": "1m",
                              "input_series": [{"series": s, "values": v} for s, v in self.SERIES],
                              "alert_rule_test": tests}]}
            with open(os.path.join(tmp, "test.yml"), "w") as f:
                json.dump(doc, f)  # JSON is YAML
            r = subprocess.run([need("promtool"), "test", "rules", "test.yml"], cwd=tmp,
                               capture_output=True, text=True, timeout=scaled(60))
            self.assertEqual(r.returncode, 0, "promtool disagrees:\n" + r.stdout + r.stderr)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
