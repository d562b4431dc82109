"""Every kernel that another kernel calls is moved, and the calls follow it
(issue 9, item 1): with all twenty kernels running, each callee is moved
with the healer's rebind_port (some of them back with reset_port), the
callers keep running (their pids do not change), and one real call of each
caller -> callee pair below is made through the public API after the move,
its effect checked. The pairs and how each is proven:

Moves, first round (callers before their callees, metrics stays put):
scheduler, compliance, workflow, governance, coding_agent, research,
self_healing, state_machine, executor, crypto, trust, policy, alerts,
audit, immutable_log, learning, librarian, telemetry, message_bus.

- metrics -> every other kernel: a scrape of each (GET /metrics by name)
  after its move, target "up" at its new address (/api/v1/targets);
- scheduler -> policy: each fire asks POST /authorize and fails closed, so
  a fire that is not `denied` reached the policy kernel;
- scheduler -> executor, -> workflow, -> message_bus: an executor, a
  workflow and a bus target fire and succeed (the job's exit code, the
  workflow run's output, the message on the bus);
- workflow -> executor, -> message_bus, -> any kernel: a run's `run` task
  (an executor job), its `emit` task (a message polled from the bus) and a
  `call` to grace://KERNEL/health of every kernel moved after it, each
  answering with the callee's new pid;
- state_machine -> policy, -> message_bus: an event sent to a new
  instance is decided by the policy kernel (sdk/pdp.h, fails closed) and
  its transition's emitted event is polled from the bus;
- compliance -> immutable_log, -> crypto, -> trust, -> message_bus,
  -> alerts: a scan whose log_verify, key_age and kernel_identity controls
  pass, whose record gets its log index, whose failing control reaches the
  bus (grace.compliance.changed) and the alerts kernel (a firing alert);
- compliance -> governance: a waiver opens a change request;
- governance, crypto, policy -> audit: the request's governance.open, a
  key's crypto.key.deletion_scheduled and a policy set's policy.set.put
  reach the audit trail;
- audit -> immutable_log: each of those events has its log index;
- metrics -> alerts: /kernels/metrics/api/v1/rules is the alerts kernel's
  answer, forwarded by the metrics kernel;
- workflow -> telemetry (the SDK's tracer, the same in every kernel): the
  workflow kernel's spans of a sampled run arrive;
- main process -> trust: kernels restarted after the trust kernel moved
  were attested to it (the kernel_identity control checks their rows);
- main process -> policy: the requests above that :8000 had not decided
  before (the waiver, the key's deletion) were decided by the moved policy
  kernel (it fails closed: 503 policy_unavailable otherwise);
- main process (gateway) -> every kernel: GET /kernels/NAME/health through
  :8000 answers with the kernel's new pid.

Second round: scheduler, policy, message_bus and audit back with
reset_port, metrics moved with rebind_port:

- alerts -> metrics: a rule evaluated now reads the metrics kernel
  (POST /rules/evaluate, no failure, the alert firing);
- telemetry -> metrics: OTLP metrics sent to the telemetry kernel are
  answered once written to the metrics kernel, and queried back;
- immutable_log -> audit: an archival's immutable_log.archive.export
  event reaches the audit trail;
- workflow -> scheduler: a run's call to grace://scheduler/health;
- scheduler -> policy, -> message_bus: a bus target fires and succeeds
  (scheduler moved first, so it follows the other two);
- the gateway -> each of the five.

Last, no kernel's pid changed since its own move: no caller was restarted.
test_calls_follow_moves.py covers audit -> immutable_log over three moves
and the main process's outbox, bus and chat calls. Not driven here (their
callees are proven through the callers above, over the same sdk_call):
coding_agent -> executor and audit, research -> its sources, self_healing
-> alerts, governance, learning, metrics and audit, executor -> policy
(sdk/pdp.h, cached), trust, alerts and self_healing -> message_bus
(consumer groups), every kernel -> trust (SVIDs, renewed at half their
life, longer than this test); of the main process's: govern -> governance
and compliance, user_data -> librarian and scheduler, the healer ->
learning and self_healing, a backup -> immutable_log (the gateway reaches
each of those kernels after its move).
"""

import datetime
import json
import os
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
from harness import BUILTIN_KERNELS, GraceServer, ServerClassCase, scaled  # noqa: E402
from healer_support import heal  # noqa: E402

# Callers before their callees: a caller moved after its callee would read
# the new port at its own start, which proves nothing.
FIRST = ["scheduler", "compliance", "workflow", "governance", "coding_agent", "research",
         "self_healing", "state_machine", "executor", "crypto", "trust", "policy", "alerts",
         "audit", "immutable_log", "learning", "librarian", "telemetry", "message_bus"]
SECOND = [("scheduler", "reset_port"), ("policy", "reset_port"),
          ("message_bus", "reset_port"), ("audit", "reset_port"), ("metrics", "rebind_port")]
PROFILE = "moves"


def now_ms():
    return int(time.time() * 1000)


def rfc3339_ms(text):
    """Prometheus's "2026-12-05T09:33:17.4Z" as unix ms."""
    return int(datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def rule_file(alert, expr):
    return "groups:\n- name: %s\n  rules:\n  - alert: %s\n    expr: %s\n" % (alert, alert, expr)


class CallsFollowEveryMove(ServerClassCase):
    @classmethod
    def make_server(cls):
        # Every built-in kernel; a scrape each second, no scheduled scans.
        return GraceServer(config={"compliance": {"scan_interval_s": 0},
                                   "metrics": {"scrape_interval_ms": 1000}})

    def call(self, method, path, body=None, expect=200):
        st, _, out = self.g.http(method, path, body, timeout=scaled(20))
        self.assertEqual(st, expect, "%s %s -> %s %r" % (method, path, st, out))
        return out

    def ports_file(self):
        with open(os.path.join(self.g.data_dir, "ports.json")) as f:
            return json.load(f)["kernels"]

    def kernel_ready(self, name):
        """/kernel-ports/NAME once it says ready. :8000 answers 503 while
        the policy kernel it asks is coming back from its own move (a
        window, longer on a loaded machine): waited out here, so a call
        that never follows still fails, at the deadline."""
        def ready():
            st, _, k = self.g.http("GET", "/kernel-ports/" + name, timeout=scaled(10))
            if st == 503:
                return None
            self.assertEqual(st, 200, k)
            return k if k["state"] == "ready" else None
        return self.g.wait_for(ready, scaled(20), interval=0.05,
                               message="%s ready, said by :8000" % name)

    def move(self, name, action):
        before = self.kernel_ready(name)
        st, inc = heal(self.g, name, action=action)
        self.assertEqual(st, 200, inc)
        self.assertEqual(inc["outcome"], "healed", inc)
        after = self.kernel_ready(name)
        if action == "rebind_port":
            self.assertNotEqual(after["port"], before["port"])
        else:
            self.assertEqual(after["port"], BUILTIN_KERNELS[name][0] + self.g.offset)
        self.g.wait_for(lambda: self.ports_file()[name]["port"] == after["port"],
                        scaled(5), message="ports.json names %s's new port" % name)
        self.pids[name] = after["pid"]
        self.ports[name] = after["port"]
        return after

    # ---- the calls, each checked by its effect

    def fire(self, job):
        """Triggers a scheduler job; its run, once over."""
        n = self.call("POST", "/scheduler/jobs/%s/trigger" % job["id"], {}, 202)["run"]

        def over():
            runs = self.call("GET", "/scheduler/jobs/%s/runs" % job["id"])["runs"]
            r = next((r for r in runs if r["id"] == n), None)
            return r if r and r["state"] not in ("pending", "running") else None
        return self.g.wait_for(over, scaled(20), interval=0.05,
                               message="run %d of %s" % (n, job["name"]))

    def polled(self, group, subject, pred):
        """Waits for a message on `subject` (from the earliest) matching pred."""
        def seen():
            out = self.call("GET", "/kernels/message_bus/groups/%s/poll?subject=%s&max=100"
                            "&wait_ms=0&from=earliest" % (group, subject))
            return next((m for m in out["messages"] if pred(m)), None)
        return self.g.wait_for(seen, scaled(10), interval=0.1,
                               message="%s on the bus" % subject)

    def bus_job_fires(self, n):
        """Fires the bus job of round n; its message is on the bus."""
        r = self.fire(self.jobs["bus%d" % n])
        self.assertEqual(r["state"], "succeeded", r)  # not denied: policy answered
        self.assertEqual(r["detail"]["status"], 200, r)
        self.polled("moves-%d" % n, "moves.tick", lambda m: m["payload"] == {"round": n})

    def workflow_run(self, kernels):
        """A run as the admin: a call to each kernel's /health, an executor
        job and an event on the bus; returns the run, whose context maps
        each kernel to the pid that answered."""
        name = "moves-%d" % len(self.runs)
        tasks = [{"k_" + k: {"call": "http", "with": {"method": "get",
                                                      "endpoint": "grace://%s/health" % k,
                                                      "output": "content"},
                             "export": {"as": "$context + {\"%s\": .pid}" % k}}}
                 for k in kernels]
        tasks.append({"job": {"run": {"shell": {"command": "echo moved"}, "return": "stdout"},
                              "export": {"as": "$context + {\"job\": .}"}}})
        tasks.append({"tell": {"emit": {"event": {"with": {"source": "moves",
                                                            "type": "moves.wf." + name}}}}})
        doc = {"document": {"dsl": "1.0.0", "namespace": "moves", "name": name,
                            "version": "1.0.0"}, "do": tasks}
        self.assertIn(self.g.http("POST", "/workflow/definitions", doc,
                                  timeout=scaled(20))[0], (200, 201))
        # Sampled (flag 01): the kernels record their spans of it
        # (docs/telemetry.md: 1% of the rest are).
        st, _, run = self.g.http("POST", "/workflow/runs", {"definition": name},
                                 headers={"traceparent": "00-%s-%s-01"
                                          % (os.urandom(16).hex(), os.urandom(8).hex())},
                                 timeout=scaled(20))
        self.assertEqual(st, 201, run)
        self.runs.append(run["id"])

        def done():
            r = self.call("GET", "/workflow/runs/%s" % run["id"])
            return r if r["status"] not in ("pending", "running") else None
        r = self.g.wait_for(done, scaled(30), interval=0.05, message="workflow run " + name)
        self.assertEqual(r["status"], "completed", r)
        self.assertEqual(r["context"]["job"], "moved\n", r)  # workflow -> executor
        self.polled("moves-wf-%d" % len(self.runs), "moves.wf." + name,
                    lambda m: True)  # workflow -> message_bus
        return r

    def put_rules(self, name, text):
        st, _, body = self.g.http("PUT", "/kernels/alerts/rules/files/" + name, text,
                                  headers={"Content-Type": "application/yaml"},
                                  timeout=scaled(20))
        self.assertIn(st, (200, 201), body)

    def gateway_reaches(self, names):
        for name in names:
            h = self.call("GET", "/kernels/%s/health" % name)
            self.assertEqual(h["pid"], self.pids[name], name)

    def pids_unchanged(self):
        for name in BUILTIN_KERNELS:
            k = self.kernel_ready(name)
            self.assertEqual((k["state"], k["pid"]), ("ready", self.pids[name]),
                             "%s was restarted by another kernel's move" % name)

    # ---- the test

    @classmethod
    def prepare(cls):
        g = cls.g
        cls.pids = {n: g.kernel(n)["pid"] for n in BUILTIN_KERNELS}
        cls.ports = {}
        cls.runs = []

        def made(method, path, body, ok=(200, 201)):
            st, _, out = g.http(method, path, body, timeout=scaled(20))
            if st not in ok:
                raise AssertionError("%s %s -> %s %r" % (method, path, st, out))
            return out
        made("POST", "/kernels/crypto/keys", {"name": "moves-key", "type": "ed25519"})
        made("POST", "/kernels/crypto/keys", {"name": "moves-doomed", "type": "ed25519"})
        made("PUT", "/compliance/profiles/" + PROFILE, {"title": "calls follow moves", "controls": [
            {"id": "log", "title": "the log verifies", "check": {"kind": "log_verify"}},
            {"id": "keys", "title": "keys are young", "check": {"kind": "key_age",
                                                                  "max_age_days": 36500}},
            {"id": "ident", "title": "kernels have identities",
             "check": {"kind": "kernel_identity"}},
            # Fails on purpose: a failing control goes to the bus and to alerts.
            {"id": "idle", "title": "sessions idle one second",
             "check": {"kind": "config", "key": "auth.session_idle_s", "max": 1}}]})
        made("POST", "/state-machine/machines", {"name": "moves", "machine": {
            "id": "moves", "initial": "idle", "states": {
                "idle": {"on": {"GO": {"target": "gone", "actions": [
                    {"type": "emit", "event": {"type": "moves.went"}}]}}},
                "gone": {}}}})
        made("POST", "/workflow/definitions",
             {"document": {"dsl": "1.0.0", "namespace": "moves", "name": "greet",
                           "version": "1.0.0"},
              "do": [{"hello": {"set": {"greeting": "${ \"hello \" + .name }"}}}]})
        cls.jobs = {
            "bus%d" % n: made("POST", "/scheduler/jobs", {
                "name": "moves-bus-%d" % n, "schedule": "@yearly",
                "target": {"type": "bus", "subject": "moves.tick", "payload": {"round": n}}})
            for n in (1, 2)
        }
        cls.jobs.update({
            "executor": made("POST", "/scheduler/jobs", {
                "name": "moves-exec", "schedule": "@yearly",
                "target": {"type": "executor", "job": {"argv": ["/bin/sh", "-c", "exit 3"]}}}),
            "workflow": made("POST", "/scheduler/jobs", {
                "name": "moves-wf", "schedule": "@yearly",
                "target": {"type": "workflow", "definition": "greet",
                           "input": {"name": "Ada"}}}),
        })

    def test_calls_follow_every_move(self):
        g = self.g
        # ---- first round: every kernel but metrics, callers first
        t_moved = {}
        for name in FIRST:
            self.move(name, "rebind_port")
            t_moved[name] = now_ms()
        t1 = now_ms()

        # metrics -> every other kernel: scraped (by name) after its move.
        def scraped():
            t = self.call("GET", "/kernels/metrics/api/v1/targets")["data"]["activeTargets"]
            by = {x["labels"]["instance"]: x for x in t}
            late = [n for n in FIRST if by[n]["health"] != "up" or
                    rfc3339_ms(by[n]["lastScrape"]) <= t_moved[n]]
            return None if late else by
        by = self.g.wait_for(scraped, scaled(20), interval=0.2,
                             message="metrics scraped every moved kernel after its move")
        for n in FIRST:  # and says where it scrapes it now
            self.assertEqual(by[n]["scrapeUrl"], "http://127.0.0.1:%d/metrics" % self.ports[n],
                             by[n])

        # scheduler -> policy (each fire) and -> message_bus, executor, workflow.
        self.bus_job_fires(1)
        r = self.fire(self.jobs["executor"])
        self.assertEqual((r["state"], r["detail"]["exit_code"]), ("failed", 3), r)
        self.assertTrue(r["target_ref"], r)  # the executor's job id
        r = self.fire(self.jobs["workflow"])
        self.assertEqual(r["state"], "succeeded", r)
        self.assertEqual(r["detail"]["output"], {"greeting": "hello Ada"}, r)

        # workflow -> every kernel moved after it, the executor and the bus.
        after_wf = FIRST[FIRST.index("workflow") + 1:]
        run = self.workflow_run(after_wf)
        for name in after_wf:
            self.assertEqual(run["context"][name], self.pids[name], name)

        # state_machine -> policy (each event is decided: fail closed) and
        # -> message_bus (the transition's emitted event).
        inst = "moves-%d" % os.getpid()
        self.call("POST", "/state-machine/instances", {"machine": "moves", "id": inst}, 201)
        out = self.call("POST", "/state-machine/instances/%s/events" % inst,
                        {"event": {"type": "GO"}})
        self.assertEqual(out["value"], "gone", out)
        self.polled("moves-sm", "grace.state_machine.emitted",
                    lambda m: inst in json.dumps(m) and "moves.went" in json.dumps(m))

        # compliance -> immutable_log, crypto, trust, message_bus, alerts.
        scan = self.call("POST", "/compliance/scans", {"profile": PROFILE}, 201)
        res = {x["control_id"]: x["result"] for x in scan["results"]}
        self.assertEqual(res, {"log": "pass", "keys": "pass", "ident": "pass", "idle": "fail"},
                         scan)
        self.assertIsInstance(scan["log_index"], int, scan)
        entry = self.call("GET", "/kernels/immutable_log/entries/%d" % scan["log_index"])
        self.assertIn(scan["uuid"], json.dumps(entry))
        self.polled("moves-cmp", "grace.compliance.changed",
                    lambda m: m["payload"].get("profile") == PROFILE and
                    m["payload"].get("scan_id") == scan["id"])

        def alerted():
            out = self.call("GET", "/kernels/alerts/api/v2/alerts")
            return next((a for a in out if a["labels"].get("alertname") ==
                         "GraceComplianceControl" and a["labels"].get("profile") == PROFILE
                         and a["labels"].get("control") == "idle"), None)
        self.g.wait_for(alerted, scaled(10), interval=0.1, message="the failing control alerted")

        # compliance -> governance; governance, crypto and policy -> audit;
        # audit -> immutable_log (each event with its log index).
        out = self.call("POST", "/compliance/waivers", {"control_id": "idle", "reason": "moves",
                                                        "expires_in_s": 3600}, 202)
        cr = out["change_request"]["id"]
        self.call("DELETE", "/kernels/crypto/keys/moves-doomed")
        version = g.set_test_policy('@id("moves")\nforbid (principal == User::"moves-nobody", '
                                    'action, resource);')
        wanted = {
            "governance": lambda e: e["action"] == "governance.open" and
            e["details"].get("request_id") == cr,
            "crypto": lambda e: e["action"] == "crypto.key.deletion_scheduled" and
            e["resource"] == "crypto/keys/moves-doomed",
            "policy": lambda e: e["action"] == "policy.set.put" and
            e["details"].get("version") == version,
        }

        def logged():
            evs = self.call("GET", "/kernels/audit/events?limit=1000&since=%d" % t1)["events"]
            missing = [k for k, pred in wanted.items()
                       if not any(pred(e) and e.get("log_index") is not None for e in evs)]
            return None if missing else evs
        self.g.wait_for(logged, scaled(20), interval=0.1,
                        message="governance's, crypto's and policy's events in the audit "
                        "trail, each with its log index")

        # metrics -> alerts: the rules API is the alerts kernel's, forwarded.
        self.put_rules("moves-1.yml", rule_file("MovesFirst", "vector(1)"))
        groups = self.call("GET", "/kernels/metrics/api/v1/rules")["data"]["groups"]
        self.assertIn("moves-1.yml", [x["file"] for x in groups])

        # every kernel -> telemetry: the workflow kernel's spans of the run.
        def spans():
            out = self.call("GET", "/telemetry/traces?service=grace.workflow&since=%d&limit=10"
                            % t1)
            return out["spans"] or None
        self.g.wait_for(spans, scaled(20), interval=0.2, message="the workflow's spans")

        # main process (gateway) -> every kernel.
        self.gateway_reaches(FIRST)
        self.pids_unchanged()

        # ---- second round: three back where they were, metrics moved
        for name, action in SECOND:
            self.move(name, action)

        # alerts -> metrics: a new rule, evaluated now, reads the moved store
        # (the metrics kernel's scrape of itself).
        self.put_rules("moves-2.yml", rule_file("MovesMetricsUp", 'up{instance="metrics"} == 1'))
        out = self.call("POST", "/kernels/alerts/rules/evaluate?file=moves-2.yml", {})
        self.assertEqual(out["failures"], 0, out)

        def firing():
            out = self.call("GET", "/kernels/metrics/api/v1/alerts")["data"]["alerts"]
            return next((a for a in out if a["labels"]["alertname"] == "MovesMetricsUp"), None)
        a = self.g.wait_for(firing, scaled(10), interval=0.1, message="MovesMetricsUp")
        self.assertEqual(a["value"], "1", a)

        # telemetry -> metrics: OTLP metrics in, answered once written.
        t = now_ms()
        self.call("POST", "/telemetry/v1/metrics", {"resourceMetrics": [{
            "resource": {"attributes": [{"key": "service.name",
                                         "value": {"stringValue": "moves"}}]},
            "scopeMetrics": [{"metrics": [{"name": "moves.follow", "gauge": {"dataPoints": [
                {"timeUnixNano": str(t * 1000000), "asInt": "7"}]}}]}]}]})
        q = self.call("GET", "/prometheus/api/v1/query?" + urllib.parse.urlencode(
            {"query": 'moves_follow{job="moves"}', "time": "%.3f" % (t / 1000)}))["data"]["result"]
        self.assertEqual([x["value"][1] for x in q], ["7"], q)

        # immutable_log -> audit: an archival's event (the log stayed put,
        # the audit kernel went back).
        t2 = now_ms()
        arch = self.call("POST", "/kernels/immutable_log/archive", {"before": 2})

        def archived():
            evs = self.call("GET", "/kernels/audit/events?limit=1000&since=%d" % t2)["events"]
            return next((e for e in evs if e["action"] == "immutable_log.archive.export" and
                         e["resource"] == arch["file"]), None)
        self.g.wait_for(archived, scaled(20), interval=0.1,
                        message="the archival's event in the audit trail")

        # workflow -> scheduler; scheduler -> policy and message_bus.
        run = self.workflow_run([n for n, _ in SECOND])
        for name, _ in SECOND:
            self.assertEqual(run["context"][name], self.pids[name], name)
        self.bus_job_fires(2)
        self.gateway_reaches([n for n, _ in SECOND])
        self.pids_unchanged()


if __name__ == "__main__":
    unittest.main()
