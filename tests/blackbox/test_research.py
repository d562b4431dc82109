"""The research kernel through the real `grace serve` (docs/research.md): a
seeded incident (the immutable log killed three times while the audit trail
appends to it, a secret planted in an audit event), the question "why did
audit stop appending", and the investigation's answer: the top hypothesis
and its cited evidence, with an inclusion proof; the model's synthesis
from our fake OpenAI-compatible server (model_server.py), its citations
checked, and every way the model fails (HTTP 500, a stream cut off, a
stall past the timeout, an answer citing nothing or an invented id)
degrading to the rules' answer, counted in /metrics; the secret never
reaching the model server nor the stored answer; budgets; incidents
unavailable (no self_healing kernel) reported as such; admin-only routes
and bad input."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import unittest

from harness import GraceServer, GraceTestCase, http_request, scaled

HERE = os.path.dirname(os.path.abspath(__file__))
SECRETS = ("Hunter2-planted-secret", "tok-planted-0123456789")
KERNELS = {"audit": {}, "immutable_log": {}, "metrics": {}, "research": {}}
MODEL_TIMEOUT_MS = 1500


class ModelServer:
    """model_server.py on a loopback port the system picks (never 8000-8149)."""

    def __init__(self):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "model_server.py"), "--port", "0",
             "--text", "unused", "--chunks", "3", "--delay-ms", "5"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            self.stop()
            raise RuntimeError("model server did not start: %r" % line)
        self.port = int(line.split()[-1])
        assert not 8000 <= self.port <= 8149
        self.url = "http://127.0.0.1:%d/v1" % self.port

    def http(self, method, path, body=None):
        st, _, b = http_request(self.port, method, path, body, timeout=10)
        assert st == 200, (st, b)
        return b

    def control(self, **kw):
        base = {"mode": "ok", "send_done": True, "send_finish": True, "framing": "chunked",
                "think_ms": 0}
        base.update(kw)
        self.http("POST", "/_control", base)

    def requests(self):
        return self.http("GET", "/_requests")["requests"]

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            if f:
                f.close()


def metric(text, name, **labels):
    if isinstance(text, bytes):
        text = text.decode()
    want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name + "{"):
            got = line[len(name) + 1:line.index("}")]
            if ",".join(sorted(got.split(","))) == want:
                return float(line.rsplit(" ", 1)[1])
    return None


class Research(GraceTestCase):
    @classmethod
    def setUpClass(cls):
        cls.model = ModelServer()
        try:
            cls.g = GraceServer(kernels=KERNELS, config={
                "metrics": {"scrape_interval_ms": 1000, "scrape_timeout_ms": 900},
                "model": {"base_url": cls.model.url, "model": "test-model",
                          "timeout_ms": MODEL_TIMEOUT_MS},
                "research": {"call_timeout_ms": 2000, "steps_max": 50},
            }, autostart=False)
            cls.g.start()
            cls.seed()
        except BaseException:
            if getattr(cls, "g", None):
                cls.g.dump_log()
                cls.g.close()
            cls.model.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.g.close()
        cls.model.stop()

    @classmethod
    def seed(cls):
        g = cls.g
        # A failed append with a secret in it, as an operator might log it.
        st, _, body = g.http("POST", "/kernels/audit/events", {
            "actor": "ops", "action": "audit.append", "resource": "kernel/audit",
            "outcome": "failed",
            "details": {"note": "retried with password=%s" % SECRETS[0],
                        "header": "Authorization: Bearer %s" % SECRETS[1]}})
        assert st == 201, (st, body)
        # Let the metrics kernel see everything up once.
        g.wait_for(lambda: cls.promql('grace_kernel_up{kernel="immutable_log"} == 1'),
                   timeout=scaled(20), message="a scrape of grace_kernel_up")
        # Kill the immutable log three times; the audit trail keeps writing.
        for i in range(3):
            old = g.kernel("immutable_log")["pid"]
            os.kill(old, signal.SIGKILL)
            st, _, body = g.http("POST", "/kernels/audit/events", {
                "actor": "ops", "action": "deploy", "resource": "service/web%d" % i,
                "outcome": "ok"})
            assert st == 201, (st, body)
            g.wait_kernel("immutable_log",
                          lambda k: k["state"] == "ready" and k["pid"] not in (0, old),
                          timeout=scaled(20))
        # The supervisor's state changes reach the audit trail (through the outbox).
        def downs():
            st, _, body = g.http("GET", "/kernels/audit/events?action=kernel.state"
                                 "&resource=kernel/immutable_log&limit=1000")
            assert st == 200, (st, body)
            return [e for e in body["events"] if "signal 9" in
                    str((e.get("details") or {}).get("last_exit"))
                    and e["outcome"] != "ready"]
        cls.down_events = g.wait_for(lambda: len(downs()) >= 3 and downs(), timeout=scaled(20),
                                     message="three kernel.state events of the log's kills")
        # A scrape after the kills, so the restarts are in the metrics.
        g.wait_for(lambda: cls.promql('grace_kernel_restarts_total{kernel="immutable_log"} >= 3'),
                   timeout=scaled(20), message="a scrape of the restarts")

    @classmethod
    def promql(cls, q):
        from urllib.parse import quote
        st, _, body = cls.g.http("GET", "/kernels/metrics/api/v1/query?query=" + quote(q))
        return st == 200 and body["data"]["result"]

    def investigate(self, question, **kw):
        body = dict(kw, question=question)
        st, _, started = self.g.http("POST", "/research/investigations", body)
        self.assertEqual(st, 202, started)
        self.assertEqual(started["state"], "running")
        inv = None
        deadline = time.monotonic() + scaled(30)
        while time.monotonic() < deadline:
            st, _, inv = self.g.http("GET", "/research/investigations/%d?wait_ms=10000"
                                     % started["id"], timeout=scaled(20))
            self.assertEqual(st, 200, inv)
            if inv["state"] == "done":
                return inv
        self.fail("investigation %d did not end: %r" % (started["id"], inv))

    def evidence(self, inv):
        return {e["id"]: e for e in inv["evidence"]}

    def no_secret(self, what, text):
        for s in SECRETS:
            self.assertNotIn(s, text, what)

    def research_metrics(self):
        st, _, text = self.g.http("GET", "/kernels/research/metrics")
        self.assertEqual(st, 200)
        return text if isinstance(text, str) else text.decode()

    # ------------------------------------------------------------------

    def test_why_audit_stopped_appending(self):
        text = "The immutable log was killed three times [E1][E2]. Audit depends on it [E1]."
        self.model.control(text=text)
        self.model.http("POST", "/_reset")
        inv = self.investigate("Why did audit stop appending in the last 10 minutes?")
        ev = self.evidence(inv)
        self.assertEqual(inv["kernel"], "audit")
        self.assertEqual(inv["time_from"], "question (since)")
        self.assertLessEqual(inv["steps"], inv["budget"]["steps"])
        self.assertGreater(inv["steps"], 0)
        # The top hypothesis: the immutable log was down, and audit depends on it.
        top = inv["hypotheses"][0]
        self.assertEqual((top["id"], top["rule"], top["kernel"]),
                         ("H1", "dependency_down", "immutable_log"), inv["hypotheses"])
        cited = [ev[i] for i in top["evidence"]]
        self.assertTrue(all(i in ev for i in top["evidence"]))
        # ... resting on the supervisor's state changes in the audit trail:
        # each the audit event id of one of the kills, signal 9.
        down_ids = {e["id"] for e in self.down_events}
        from_audit = [e for e in cited if e["source"] == "audit"
                      and e["citation"].get("audit_event") in down_ids]
        self.assertGreaterEqual(len(from_audit), 3, cited)
        for e in from_audit:
            self.assertEqual(e["kernel"], "immutable_log")
            self.assertIn("signal 9", e["summary"])
            self.assertIn("down", e["signals"])
        # ... with inclusion proofs of the cited events from the immutable log.
        proofs = [e["citation"]["log_proof"] for e in from_audit if "log_proof" in e["citation"]]
        self.assertTrue(proofs, from_audit)
        whole = [p for p in proofs if isinstance(p, dict)]
        self.assertTrue(whole, proofs)
        for p in whole:
            self.assertIsInstance(p["audit_path"], list)
            self.assertRegex(p["root_hash"], "^[0-9a-f]{64}$")
        # ... and the log's own entries of them, holding those very events.
        entries = [e["citation"]["log_entry"] for e in from_audit if "log_entry" in e["citation"]]
        self.assertTrue(entries, from_audit)
        for en in entries:
            self.assertTrue(en["holds_event"], en)
            self.assertRegex(en["leaf_hash"], "^[0-9a-f]{64}$")
        self.assertEqual(inv["sources"]["immutable_log"]["status"], "ok", inv["sources"])
        # ... and on the restarts the metrics kernel counted (PromQL cited).
        prom = [e for e in cited if e["source"] == "metrics"]
        self.assertTrue(prom, cited)
        self.assertIn("grace_kernel_restarts_total", " ".join(e["citation"]["promql"] for e in prom))
        # Sources: incidents (no self_healing kernel here) unavailable, not a failure;
        # memory read (the admin has no tables).
        self.assertEqual(inv["sources"]["audit"]["status"], "ok", inv["sources"])
        self.assertEqual(inv["sources"]["metrics"], {"status": "ok", "calls": 4}, inv["sources"])
        self.assertEqual(inv["sources"]["incidents"]["status"], "unavailable", inv["sources"])
        self.assertEqual(inv["sources"]["memory"]["status"], "ok", inv["sources"])
        # The model wrote the synthesis, every claim citing gathered evidence.
        ans = inv["answer"]
        self.assertEqual((ans["by"], ans["model_answered"]), ("model", True), ans)
        self.assertEqual(ans["text"], text)
        self.assertEqual(ans["dropped_claims"], 0)
        for c in ans["claims"]:
            self.assertTrue(c["cites"] and all(i in ev for i in c["cites"]), c)
        # The model saw the evidence and the question, and no secret.
        reqs = self.model.requests()
        self.assertEqual(len(reqs), 1)
        sent = json.dumps(reqs[0]["body"])
        self.assertIn("[E1]", sent)
        self.assertIn("audit stop appending", sent)
        self.no_secret("the model's request", sent)
        # The planted event was gathered, redacted: in the answer, and stored.
        planted = [e for e in inv["evidence"] if "audit.append" in e["summary"]]
        self.assertTrue(planted, inv["evidence"])
        self.assertIn("[REDACTED]", planted[0]["summary"])
        self.assertGreaterEqual(inv["redactions"], 2)
        self.no_secret("the answer", json.dumps(inv))
        st, _, stored = self.g.http("GET", "/research/investigations/%d" % inv["id"])
        self.assertEqual(st, 200)
        self.no_secret("the stored investigation", json.dumps(stored))
        self.assertEqual(stored["hypotheses"], inv["hypotheses"])
        # Listed, newest first, with its top hypothesis.
        st, _, lst = self.g.http("GET", "/research/investigations?limit=100")
        self.assertEqual(st, 200, lst)
        row = [r for r in lst["investigations"] if r["id"] == inv["id"]][0]
        self.assertEqual(row["state"], "done")
        self.assertEqual(row["top"], top["title"])
        self.no_secret("the list", json.dumps(lst))

    def check_fallback(self, reason, **control):
        text = self.research_metrics()
        before = metric(text, "grace_research_model_failures_total", kernel="research",
                        reason=reason)
        self.assertIsNotNone(before, text)
        self.model.control(**control)
        inv = self.investigate("why did audit stop appending?")
        ans = inv["answer"]
        self.assertEqual((ans["by"], ans["model_answered"], ans["reason"]),
                         ("rules", False, reason), ans)
        self.assertIn("No model wrote this answer", ans["notice"])
        # The rules' answer: the ranked hypotheses with their evidence ids.
        self.assertIn("1. " + inv["hypotheses"][0]["title"], ans["text"])
        self.assertIn("[%s]" % inv["hypotheses"][0]["evidence"][0], ans["text"])
        after = metric(self.research_metrics(), "grace_research_model_failures_total",
                       kernel="research", reason=reason)
        self.assertEqual(after, before + 1)
        return inv

    def test_model_fails_http(self):
        self.check_fallback("http_status", mode="fail")

    def test_model_stream_cut_off(self):
        self.check_fallback("truncated_stream", text="The log was down [E1].",
                            send_done=False, send_finish=False)

    def test_model_too_slow(self):
        self.check_fallback("timeout", mode="stall", text="The log was down [E1] and more.")

    def test_model_cites_nothing(self):
        inv = self.check_fallback("uncited", text="Audit is fine. Nothing happened.")
        self.assertEqual(inv["answer"]["dropped_claims"], 2)

    def test_model_invents_evidence(self):
        self.check_fallback("uncited", text="The disk was full [E999].")

    def test_model_claim_dropped(self):
        # One claim cites gathered evidence, one an invented id: the second goes.
        # The model thinks a while first (slow, within its timeout).
        self.model.control(text="The log was down [E1]. The disk was full [E999].",
                           think_ms=300)
        inv = self.investigate("why did audit stop appending?")
        ans = inv["answer"]
        self.assertEqual(ans["by"], "model", ans)
        self.assertEqual(ans["text"], "The log was down [E1].")
        self.assertEqual(ans["dropped_claims"], 1)
        self.assertIn("dropped", ans["notice"])

    def test_budget(self):
        self.model.control(text="The log was down [E1].")
        inv = self.investigate("why did audit stop appending?", budget={"steps": 2})
        self.assertEqual(inv["steps"], 2)
        self.assertTrue(inv["budget_exhausted"])
        self.assertIn("budget", [s["status"] for s in inv["sources"].values()], inv["sources"])
        # An explicit window and kernel win over the question's.
        # (RFC 3339 or unix ms), and a secret in the question is redacted.
        now = int(time.time() * 1000)
        since = now - 600000
        rfc = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(since // 1000)) + ".%03dZ" % (
            since % 1000)
        inv = self.investigate("what happened at 03:00? password=%s" % SECRETS[0],
                               kernel="immutable_log", since=rfc, until=now + 1000,
                               budget={"steps": 40})
        self.assertEqual(inv["kernel"], "immutable_log")
        self.assertEqual((inv["since_ms"], inv["until_ms"]), (since, now + 1000))
        self.assertEqual(inv["time_from"], "request")
        self.assertEqual(inv["question"], "what happened at 03:00? password=[REDACTED]")
        self.assertFalse(inv["budget_exhausted"])
        self.assertNotEqual(inv["hypotheses"][0]["rule"], "dependency_down")

    def test_bad_input_and_access(self):
        g = self.g
        for body, word in (({}, "question"), ({"question": ""}, "question"),
                           ({"question": "x" * 2001}, "question"),
                           ({"question": "q", "kernel": "nope"}, "kernel"),
                           ({"question": "q", "since": "yesterday"}, "since"),
                           ({"question": "q", "budget": {"steps": 0}}, "steps"),
                           ({"question": "q", "budget": {"steps": 51}}, "steps"),
                           ({"question": "q", "budget": {"time_ms": 5}}, "time_ms"),
                           ({"question": "q", "budget": {"tokens": 5}}, "tokens"),
                           ({"question": "q", "since": 2000, "until": 1000}, "until"),
                           ({"question": "q", "colour": "red"}, "colour")):
            st, _, err = g.http("POST", "/research/investigations", body)
            self.assertEqual(st, 400, (body, err))
            self.assertIn(word, err["error"]["message"], body)
        st, _, err = g.http("POST", "/research/investigations", "not json")
        self.assertEqual(st, 400, err)
        for path, want in (("/research/investigations/abc", 400),
                           ("/research/investigations/999999", 404),
                           ("/research/investigations/1?wait_ms=999999", 400),
                           ("/research/investigations?limit=0", 400)):
            st, _, err = g.http("GET", path)
            self.assertEqual(st, want, (path, err))
            self.assertIn("error", err)
        # Admins only: a user is refused, nobody is asked to log in.
        g.create_user("rs_user", "user-password-for-research-1")
        st, _, body = http_request(g.api_port, "POST", "/auth/login",
                                   {"username": "rs_user",
                                    "password": "user-password-for-research-1"})
        self.assertEqual(st, 200, body)
        h = {"Authorization": "Bearer " + body["token"]}
        for method, path in (("POST", "/research/investigations"),
                             ("GET", "/research/investigations"),
                             ("GET", "/research/investigations/1")):
            st, _, _ = http_request(g.api_port, method, path, {"question": "q"}, h)
            self.assertEqual(st, 403, path)
            st, _, _ = http_request(g.api_port, method, path, {"question": "q"})
            self.assertEqual(st, 401, path)


class ResearchStops(GraceTestCase):
    def test_long_poll_answered_at_stop_then_interrupted(self):
        # A model that thinks longer than the test: the investigation is
        # still synthesizing when grace serve is told to stop.
        model = ModelServer()
        try:
            model.control(text="The log was down [E1].", think_ms=20000)
            g = GraceServer(kernels={"audit": {}, "immutable_log": {}, "research": {}},
                            config={"model": {"base_url": model.url, "timeout_ms": 30000}},
                            autostart=False)
            with g:
                g.start()
                st, _, started = g.http("POST", "/research/investigations",
                                        {"question": "why did audit stop appending?",
                                         "budget": {"time_ms": 60000}})
                self.assertEqual(st, 202, started)
                path = "/research/investigations/%d" % started["id"]
                g.wait_for(lambda: g.http("GET", path)[2].get("phase") == "synthesizing",
                           timeout=scaled(20), message="the investigation asking the model")
                got = {}

                def poll():
                    try:
                        got["answer"] = g.http("GET", path + "?wait_ms=60000", timeout=scaled(60))
                    except OSError as e:
                        got["answer"] = e
                t = threading.Thread(target=poll)
                t.start()
                g.wait_for(lambda: metric(g.http("GET", "/kernels/research/metrics")[2],
                                          "grace_research_long_polls", kernel="research") == 1,
                           timeout=scaled(20), message="the long poll held")
                g.stop()
                t.join(scaled(60))
                st, _, body = got["answer"]
                # The drain answered the held poll with the state as it was.
                self.assertEqual(st, 200, body)
                self.assertEqual((body["state"], body["answer"]), ("running", None))
                # A new run marks it interrupted: nobody will finish it.
                g.start()
                st, _, body = g.http("GET", path)
                self.assertEqual(st, 200, body)
                self.assertEqual(body["state"], "interrupted")
        finally:
            model.stop()


class ResearchWithoutModel(GraceTestCase):
    def test_answer_is_the_ranked_evidence(self):
        with GraceServer(kernels={"audit": {}, "immutable_log": {}, "research": {}}) as g:
            st, _, body = g.http("POST", "/kernels/audit/events", {
                "actor": "ops", "action": "audit.append", "resource": "kernel/audit",
                "outcome": "failed", "details": {"api_key": SECRETS[1]}})
            self.assertEqual(st, 201, body)
            old = g.kernel("immutable_log")["pid"]
            os.kill(old, signal.SIGKILL)
            g.wait_kernel("immutable_log", lambda k: k["state"] == "ready" and k["pid"] != old,
                          timeout=scaled(20))
            def killed():
                st, _, body = g.http("GET", "/kernels/audit/events?action=kernel.state"
                                     "&resource=kernel/immutable_log")
                return st == 200 and any("signal 9" in str((e["details"] or {}).get("last_exit"))
                                         for e in body["events"])
            g.wait_for(killed, timeout=scaled(20), message="the kill in the audit trail")
            st, _, started = g.http("POST", "/research/investigations",
                                    {"question": "why did the immutable log restart?"})
            self.assertEqual(st, 202, started)
            inv = g.wait_for(lambda: (lambda r: r[2]["state"] == "done" and r[2])(
                g.http("GET", "/research/investigations/%d?wait_ms=5000" % started["id"],
                       timeout=scaled(15))), timeout=scaled(30))
            ans = inv["answer"]
            self.assertEqual((ans["by"], ans["model_answered"]), ("rules", False), ans)
            self.assertEqual(ans["notice"], "No model wrote this answer: no model is configured.")
            self.assertNotIn("reason", ans)
            self.assertEqual(inv["kernel"], "immutable_log")
            self.assertEqual(inv["sources"]["metrics"]["status"], "unavailable", inv["sources"])
            self.assertIn(inv["hypotheses"][0]["rule"], ("killed", "down", "crash_loop"),
                          inv["hypotheses"])
            self.assertNotIn(SECRETS[1], json.dumps(inv))



class ResearchWithMemory(GraceTestCase):
    """The memory tables as evidence (issue 17): read as the asking user,
    by the delegation the gateway hands the research kernel with the
    user's request; another user's tables, which that user did not share,
    stay out; a call to the kernel that does not come through :8000 has
    no delegation and reads no one's tables."""

    def table(self, g, headers, name, text):
        st, _, out = g.http("POST", "/memory/tables",
                            {"name": name, "columns": [{"name": "text", "type": "text"}]},
                            headers=headers)
        self.assertEqual(st, 201, out)
        st, _, out = g.http("POST", "/memory/tables/%s/rows" % name, {"text": text},
                            headers=headers)
        self.assertEqual(st, 201, out)
        return out["ids"][0]

    def test_the_asking_users_tables_are_cited(self):
        with GraceServer(kernels={"audit": {}, "immutable_log": {}, "research": {}}) as g:
            row = self.table(g, None, "notes",
                             "zebra outage: the audit trail stopped appending when the disk filled")
            self.table(g, None, "plain_nothing", "nothing about that here")
            g.create_user("bob", "bob's long password")
            bob = {"Authorization": "Bearer " + g.login("bob", "bob's long password")}
            self.table(g, bob, "diary", "zebra outage: bob's private notes")
            st, _, started = g.http("POST", "/research/investigations",
                                    {"question": "what caused the zebra outage?"})
            self.assertEqual(st, 202, started)
            inv = g.wait_for(lambda: (lambda r: r[2]["state"] == "done" and r[2])(
                g.http("GET", "/research/investigations/%d?wait_ms=5000" % started["id"],
                       timeout=scaled(15))), timeout=scaled(30))
            self.assertEqual(inv["sources"]["memory"]["status"], "ok", inv["sources"])
            mem = [e for e in inv["evidence"] if e["source"] == "memory"]
            self.assertEqual([(e["citation"]["table"], e["citation"]["row"]) for e in mem],
                             [("notes", row)], mem)
            self.assertEqual(mem[0]["citation"]["owner"], g.admin_user)
            self.assertIn("disk filled", mem[0]["summary"])
            self.assertNotIn("private", json.dumps(inv))
            # Not through the API: no delegation, no one's tables.
            st, _, direct = g.kernel_http("research", "POST", "/investigations",
                                          {"question": "what caused the zebra outage?"},
                                          {"X-Grace-User": g.admin_user, "X-Grace-Role": "admin"})
            self.assertEqual(st, 202, direct)
            inv = g.wait_for(lambda: (lambda r: r[2]["state"] == "done" and r[2])(
                g.kernel_http("research", "GET", "/investigations/%d?wait_ms=5000" % direct["id"],
                              timeout=scaled(15))), timeout=scaled(30))
            self.assertEqual(inv["sources"]["memory"]["status"], "skipped", inv["sources"])
            self.assertFalse([e for e in inv["evidence"] if e["source"] == "memory"])
            # A delegation that the main process did not make is nothing.
            for forged in ("gdl_" + "A" * 40 + "." + "B" * 43, "gdl_", "gdl_x.y"):
                st, _, out = g.http("GET", "/memory/tables",
                                    headers={"Authorization": "Bearer " + forged})
                self.assertEqual((st, out["error"]["code"]), (401, "unauthorized"), out)


class ResearchWithIncidents(GraceTestCase):
    """self_healing's incidents as evidence: a real incident, made by
    killing a kernel, comes back cited by its id."""

    def test_a_self_healing_incident_is_cited(self):
        kernels = {"audit": {}, "immutable_log": {}, "message_bus": {}, "self_healing": {},
                   "research": {}}
        with GraceServer(kernels=kernels) as g:
            old = g.kernel("immutable_log")["pid"]
            os.kill(old, signal.SIGKILL)
            g.wait_kernel("immutable_log", lambda k: k["state"] == "ready" and k["pid"] != old,
                          timeout=scaled(20))

            def incident():
                st, _, body = g.http("GET", "/kernels/self_healing/incidents?kernel=immutable_log")
                return st == 200 and body["incidents"] and body["incidents"][0]
            inc = g.wait_for(incident, timeout=scaled(30), message="self_healing's incident")
            st, _, started = g.http("POST", "/research/investigations",
                                    {"question": "why did the immutable log restart?"})
            self.assertEqual(st, 202, started)
            inv = g.wait_for(lambda: (lambda r: r[2]["state"] == "done" and r[2])(
                g.http("GET", "/research/investigations/%d?wait_ms=5000" % started["id"],
                       timeout=scaled(15))), timeout=scaled(30))
            self.assertEqual(inv["sources"]["incidents"]["status"], "ok", inv["sources"])
            cited = [e for e in inv["evidence"] if e["source"] == "incidents"]
            self.assertIn(inc["id"], [e["citation"]["incident"] for e in cited], cited)
            self.assertTrue(all(e["kernel"] == "immutable_log" for e in cited), cited)
            # ... and a hypothesis rests on it.
            ids = {e["id"] for e in cited}
            self.assertTrue(any(ids & set(h["evidence"]) for h in inv["hypotheses"]),
                            inv["hypotheses"])


if __name__ == "__main__":
    unittest.main()
