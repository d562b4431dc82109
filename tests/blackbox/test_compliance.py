"""The compliance kernel (8114) through `grace serve`, with the kernels it
asks (immutable_log, crypto, trust), the bus and the alerts kernel.

- The default profile scans: every control has a result, each evidence's
  SHA-256 is the hash of what it says was read.
- A key file at 0644 in the data directory fails its control and passes
  after chmod 600; the change is a bus event and an alert.
- A waiver is a change request in the governance kernel: POST /waivers
  answers 202, the waiver exists only once another admin approves (the
  approver recorded is theirs, as governance reports), then turns that
  fail into waived; once it expires the control fails again. The
  requester's own approval does not count, a denied request makes no
  waiver, and the executor's route cannot be called to skip approval.
- Every scan is appended to the immutable log: the entry at the index the
  scan cites holds exactly the scan's record, and the report cites it.
- The OSCAL 1.0.4 report validates with npm ajv against our schema of what
  we emit (and a broken one does not: the check can fail).
- Bad input (bad profile JSON, an unknown check kind, bad waivers) is a 400
  naming the field and changes nothing.
- The schedule's next scan survives a restart of the kernel; a short
  interval scans by itself."""

import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import GraceServer, ServerClassCase, http_request, scaled  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CAROL_PASSWORD = "correct horse battery staple 12"
VALIDATE = os.path.join(HERE, "js", "oscal_validate.mjs")
SCHEMA = os.path.join(HERE, "..", "schemas", "oscal-assessment-results-subset.json")
DEFAULT = os.path.join(HERE, "..", "..", "etc", "compliance", "default.json")


def ajv(docs):
    node = shutil.which("node")
    if not node:
        raise AssertionError("node is needed: run scripts/bootstrap.sh --test")
    r = subprocess.run([node, VALIDATE, SCHEMA], input=json.dumps(docs), capture_output=True,
                       text=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError("oscal_validate.mjs failed:\n" + r.stderr)
    return json.loads(r.stdout)["results"]


class Compliance(ServerClassCase):
    @classmethod
    def make_server(cls):
        return GraceServer(kernels={"compliance": {}, "immutable_log": {}, "crypto": {},
                                    "trust": {}, "message_bus": {}, "alerts": {},
                                    "governance": {"standby": 0}},
                           config={"compliance": {"scan_interval_s": 0},
                                   "governance": {"poll_ms": 50}})

    @classmethod
    def prepare(cls):
        cls.g.create_user("carol", CAROL_PASSWORD, "admin")
        cls.carol = {"Authorization": "Bearer " + cls.g.login("carol", CAROL_PASSWORD)}

    def as_carol(self, method, path, body=None, expect=None):
        st, _, out = self.g.http(method, path, body, headers=self.carol, timeout=scaled(30))
        if expect is not None:
            self.assertEqual(st, expect, "%s %s as carol -> %s %r" % (method, path, st, out))
        return out

    def request_waiver(self, body):
        """POST /waivers: 202 and the change request's id."""
        st, hdrs, out = self.g.http("POST", "/compliance/waivers", body, timeout=scaled(30))
        self.assertEqual(st, 202, out)
        self.assertEqual(out["status"], "pending_approval")
        cr = out["change_request"]
        self.assertEqual((cr["action"], cr["state"], cr["requester"]),
                         ("compliance.waiver", "open", self.g.first_admin()[0]))
        self.assertEqual(hdrs.get("Location") or hdrs.get("location"),
                         "/governance/requests/%d" % cr["id"])
        return cr["id"]

    def request_state(self, rid, states):
        last = {}

        def done():
            last["r"] = self.api("GET", "/governance/requests/%d" % rid, expect=200)
            return last["r"]["state"] in states
        self.g.wait_for(done, timeout=scaled(20), interval=0.05,
                        message="request %d never reached %s" % (rid, states))
        return last["r"]

    def waiver_of(self, rid):
        listed = self.api("GET", "/compliance/waivers", expect=200)["waivers"]
        return next((w for w in listed if w["change_request"] == rid), None)

    def waive(self, body):
        """A waiver requested by the first admin and approved by carol."""
        rid = self.request_waiver(body)
        self.as_carol("POST", "/governance/requests/%d/approve" % rid, {}, expect=200)
        r = self.request_state(rid, ("done", "failed"))
        self.assertEqual(r["state"], "done", r)
        self.assertEqual(r["result"]["result"]["status"], 201, r["result"])
        return self.waiver_of(rid)

    def api(self, method, path, body=None, expect=None):
        st, _, out = self.g.http(method, path, body, timeout=scaled(30))
        if expect is not None:
            self.assertEqual(st, expect, "%s %s -> %s %r" % (method, path, st, out))
        return out

    def scan(self, profile=None):
        return self.api("POST", "/compliance/scans", {"profile": profile} if profile else {},
                        expect=201)

    def result(self, scan, control):
        return next(r for r in scan["results"] if r["control_id"] == control)

    def bad(self, method, path, body, field):
        out = self.api(method, path, body, expect=400)
        self.assertEqual(out["error"]["code"], "invalid", out)
        self.assertIn(field, out["error"]["message"])
        self.assertTrue(out["error"]["request_id"])
        return out

    def test_default_profile_scan(self):
        with open(DEFAULT) as f:
            shipped = json.load(f)
        prof = self.api("GET", "/compliance/profiles/default", expect=200)
        self.assertEqual(prof, shipped)
        s = self.scan()
        self.assertEqual([r["control_id"] for r in s["results"]],
                         [c["id"] for c in shipped["controls"]])
        for r in s["results"]:
            self.assertIn(r["result"], ("pass", "fail", "not_applicable", "error", "info",
                                        "waived"), r)
            self.assertTrue(r["evidence"], r)
            for e in r["evidence"]:
                self.assertFalse(e["truncated"])
                self.assertEqual(e["sha256"], hashlib.sha256(e["data"].encode()).hexdigest())
        # What this Grace is: its data directory and secrets closed, its
        # listeners on loopback, the log intact, an admin on record.
        for cid in ("data-dir-mode", "keys-mode", "master-keys-mode", "token-mode",
                    "databases-mode", "argon2-cost", "host-allowlist", "listeners-loopback",
                    "log-verify", "kernel-identity"):
            self.assertEqual(self.result(s, cid)["result"], "pass", self.result(s, cid))
        ident = self.result(s, "kernel-identity")
        self.assertEqual([e["read"] for e in ident["evidence"]],
                         ["trust GET /bundle", "trust GET /workloads"])
        # Every kernel of this Grace, each as the live process attested.
        names = sorted(w["name"] for w in
                       json.loads(ident["evidence"][1]["data"])["workloads"])
        self.assertEqual(names, sorted(self.g.expected_names()))
        self.assertIn("each of the %d kernels" % len(names), ident["message"])
        # No token kept as evidence: a JWT is base64url '{"...' twice,
        # joined by a dot. ("eyJ" alone turned up by chance inside the
        # base64 of the bundle's certificates and failed a run.)
        self.assertIsNone(re.search(r"eyJ[A-Za-z0-9_-]*\.eyJ", json.dumps(s)))
        admins = self.result(s, "admin-users")
        self.assertEqual(admins["result"], "info")
        self.assertIn(self.g.first_admin()[0] + "\n", admins["evidence"][0]["data"])
        self.assertIn("tcp port %d loopback" % self.g.api_port,
                      self.result(s, "listeners-loopback")["evidence"][0]["data"])
        text = self.g.http("GET", "/compliance/scans/%d/summary" % s["id"])[2]
        text = text.decode() if isinstance(text, bytes) else text
        self.assertIn("immutable log index %d" % s["log_index"], text)
        self.assertIn("INFO", text)

    def test_a_kernel_without_its_identity_fails_the_control(self):
        """A kernel whose attested process is gone fails the control, naming
        it; a restart attests it anew. (Only the main process registers
        processes with the trust kernel now, so the test cannot attest one
        of its own: with the trust kernel stopped, it points the victim's
        attestation at a process of its own that has ended, in trust.db,
        then starts the trust kernel again.)"""
        g = self.g
        victim = "governance"  # no standby there (see make_server)
        g.wait_for(lambda: any(w["name"] == victim for w in
                               self.api("GET", "/trust/workloads", expect=200)["workloads"]),
                   timeout=scaled(20), message="the victim attested")
        p = subprocess.Popen(["sleep", "60"])
        old = p.pid
        with open("/proc/%d/stat" % old) as f:
            stat = f.read()
        start = int(stat[stat.rfind(")") + 2:].split()[19])
        p.kill()
        p.wait()
        st, _, body = g.http("POST", "/kernel-ports/trust/stop")
        self.assertEqual(st, 202, body)
        g.wait_kernel("trust", lambda k: k["state"] == "stopped", timeout=scaled(20))
        db = sqlite3.connect(os.path.join(g.data_dir, "trust.db"))
        try:
            n = db.execute("UPDATE trust_workloads SET pid = ?, start_time = ? WHERE kernel = ?",
                           (old, start, victim)).rowcount
            db.commit()
        finally:
            db.close()
        self.assertEqual(n, 1)
        st, _, body = g.http("POST", "/kernel-ports/trust/start")
        self.assertEqual(st, 202, body)
        g.wait_kernel("trust", lambda k: k["state"] == "ready", timeout=scaled(20))
        r = self.result(self.scan(), "kernel-identity")
        self.assertEqual(r["result"], "fail", r)
        self.assertIn("%s: its attested process (pid %d) is gone" % (victim, old), r["message"])
        running = g.kernel(victim)["pid"]
        st, _, body = g.http("POST", "/kernel-ports/%s/restart" % victim)
        self.assertIn(st, (200, 202), body)
        new = g.wait_kernel(victim, lambda k: k["state"] == "ready"
                            and k["pid"] not in (old, running), timeout=scaled(20))["pid"]

        def attested(name, pid):
            ws = self.api("GET", "/trust/workloads", expect=200)["workloads"]
            return any(w["name"] == name and w["pid"] == pid for w in ws)
        g.wait_for(lambda: attested(victim, new), timeout=scaled(20),
                   message="the restarted kernel attested")
        # The trust kernel's own new process too: its registration waited
        # for it to start (the supervisor sends it the moment it is ready).
        g.wait_for(lambda: attested("trust", g.kernel("trust")["pid"]), timeout=scaled(20),
                   message="the restarted trust kernel attested")
        r = self.result(self.scan(), "kernel-identity")
        self.assertEqual(r["result"], "pass", r)

    def test_key_rotation(self):
        self.api("POST", "/kernels/crypto/keys", {"name": "cmp-test", "type": "ed25519"},
                 expect=201)
        s = self.scan()
        r = self.result(s, "key-rotation")
        self.assertEqual(r["result"], "pass", r)
        self.assertIn("cmp-test version=1", r["evidence"][0]["data"])
        # A rotation period of a day still passes a key made now; the
        # profile's period is what is read.
        prof = {"title": "keys", "controls": [
            {"id": "rot", "title": "rotated", "check": {"kind": "key_age", "max_age_days": 1}}]}
        self.api("PUT", "/compliance/profiles/rot", prof, expect=200)
        self.assertEqual(self.result(self.scan("rot"), "rot")["result"], "pass")

    def test_file_mode_fail_then_pass_and_events(self):
        prof = {"title": "secrets", "controls": [
            {"id": "test-keys", "title": "test keys are 0600",
             "check": {"kind": "file_mode", "path": "*.testkey", "max_mode": "0600"}}]}
        self.api("PUT", "/compliance/profiles/secrets", prof, expect=200)
        self.assertEqual(self.result(self.scan("secrets"), "test-keys")["result"],
                         "not_applicable")
        path = os.path.join(self.g.data_dir, "leak.testkey")
        with open(path, "w") as f:
            f.write("x")
        os.chmod(path, 0o644)
        s = self.scan("secrets")
        failed_id = s["id"]
        r = self.result(s, "test-keys")
        self.assertEqual(r["result"], "fail", r)
        self.assertIn("leak.testkey mode=0644", r["evidence"][0]["data"])
        # The change reached the alerts kernel, in Alertmanager's format.
        def mine():
            alerts = self.api("GET", "/alertmanager/api/v2/alerts", expect=200)
            return [a for a in alerts if a["labels"].get("control") == "test-keys"]
        self.g.wait_for(mine, timeout=scaled(10), message="the alert in the alerts kernel")
        mine = mine()
        self.assertEqual(mine[0]["labels"]["alertname"], "GraceComplianceControl")
        os.chmod(path, 0o600)
        s = self.scan("secrets")
        self.assertEqual(self.result(s, "test-keys")["result"], "pass")
        # Both changes are bus events, in order (published as the scan is
        # answered: the second may land a moment after its answer).
        seen = []

        def both():
            out = self.api("GET", "/kernels/message_bus/groups/cmp-test/poll?"
                           "subject=grace.compliance.changed&max=100", expect=200)
            for m in out["messages"]:
                p = m["payload"]
                ev = (p["previous"], p["result"], p["scan_id"])
                if p["profile"] == "secrets" and ev not in seen:
                    seen.append(ev)
            return len(seen) >= 2
        self.g.wait_for(both, timeout=scaled(10), message="both changes on the bus")
        self.assertEqual(seen, [("not_applicable", "fail", failed_id), ("fail", "pass", s["id"])])
        os.unlink(path)

    def test_waiver_and_expiry(self):
        prof = {"title": "waived", "controls": [
            {"id": "w-keys", "title": "waiver test keys are 0600",
             "check": {"kind": "file_mode", "path": "*.wkey", "max_mode": "0600"}}]}
        self.api("PUT", "/compliance/profiles/waived", prof, expect=200)
        path = os.path.join(self.g.data_dir, "open.wkey")
        with open(path, "w") as f:
            f.write("x")
        os.chmod(path, 0o640)
        self.assertEqual(self.result(self.scan("waived"), "w-keys")["result"], "fail")
        me = self.g.first_admin()[0]
        # The approver is not the requester's to name.
        self.bad("POST", "/compliance/waivers", {"control_id": "w-keys", "reason": "r",
                                                  "approver": "carol", "expires_in_s": 60},
                 "approver")
        rid = self.request_waiver({"control_id": "w-keys", "reason": "rotating the file",
                                   "expires_in_s": int(scaled(4))})
        # Nothing is waived while the request waits.
        self.assertIsNone(self.waiver_of(rid))
        self.assertEqual(self.result(self.scan("waived"), "w-keys")["result"], "fail")
        # The requester may not approve their own waiver.
        out = self.api("POST", "/governance/requests/%d/approve" % rid, {}, expect=403)
        self.assertIn("own", out["error"]["message"])
        self.assertEqual(self.api("GET", "/governance/requests/%d" % rid, expect=200)["state"],
                         "open")
        self.as_carol("POST", "/governance/requests/%d/approve" % rid, {"comment": "ok"},
                      expect=200)
        r = self.request_state(rid, ("done", "failed"))
        self.assertEqual(r["state"], "done", r)
        w = self.waiver_of(rid)
        self.assertIsNotNone(w, r)
        self.assertEqual(r["result"]["result"]["body"]["id"], w["id"])
        self.assertEqual((w["control_id"], w["approver"], w["requested_by"]),
                         ("w-keys", "carol", me))
        self.assertEqual([(a["user"], a["comment"]) for a in w["approvals"]], [("carol", "ok")])
        r = self.result(self.scan("waived"), "w-keys")
        self.assertEqual((r["result"], r["raw_result"], r["waiver"]), ("waived", "fail", w["id"]))
        # Once the waiver's time has passed, the control fails again.
        wait = w["expires_ms"] / 1000.0 - time.time()
        if wait > 0:
            time.sleep(wait + 0.05)
        r = self.result(self.scan("waived"), "w-keys")
        self.assertEqual(r["result"], "fail", r)
        self.assertNotIn("waiver", r)
        listed = self.api("GET", "/compliance/waivers", expect=200)["waivers"]
        self.assertTrue(next(x for x in listed if x["id"] == w["id"])["expired"])
        self.api("DELETE", "/compliance/waivers/%d" % w["id"], expect=200)
        self.api("DELETE", "/compliance/waivers/%d" % w["id"], expect=404)
        os.unlink(path)

    def test_log_and_report(self):
        s = self.scan()
        self.assertIsInstance(s["log_index"], int)
        entry = self.api("GET", "/kernels/immutable_log/entries/%d" % s["log_index"], expect=200)
        self.assertEqual(entry["data"], json.loads(s["log_record"]))
        self.assertEqual(entry["data"]["scan_uuid"], s["uuid"])
        self.assertEqual([(r["control_id"], r["result"]) for r in entry["data"]["results"]],
                         [(r["control_id"], r["result"]) for r in s["results"]])
        self.assertEqual(entry["leaf_hash"], s["leaf_hash"])
        verify = self.api("GET", "/kernels/immutable_log/verify", expect=200)
        self.assertTrue(verify["ok"], verify)
        rep = self.api("GET", "/compliance/scans/%d/report" % s["id"], expect=200)
        ar = rep["assessment-results"]
        props = {p["name"]: p["value"] for p in ar["results"][0]["props"]}
        self.assertEqual(props["immutable-log-index"], str(s["log_index"]))
        self.assertEqual(props["immutable-log-leaf-hash"], s["leaf_hash"])
        self.assertEqual(ar["metadata"]["oscal-version"], "1.0.4")
        obs = ar["results"][0]["observations"]
        self.assertEqual(len(obs), len(s["results"]))
        # The same scan gives the same report.
        self.assertEqual(self.api("GET", "/compliance/scans/%d/report" % s["id"]), rep)
        broken = json.loads(json.dumps(rep))
        del broken["assessment-results"]["metadata"]["oscal-version"]
        broken2 = json.loads(json.dumps(rep))
        broken2["assessment-results"]["results"][0]["uuid"] = "not-a-uuid"
        broken3 = json.loads(json.dumps(rep))
        broken3["assessment-results"]["results"][0]["observations"][0]["method"] = ["TEST"]
        v = ajv([rep, broken, broken2, broken3])
        self.assertTrue(v[0]["valid"], v[0]["errors"])
        self.assertEqual([x["valid"] for x in v[1:]], [False, False, False], v)

    def test_oscal_with_waived_and_failed(self):
        prof = {"title": "mixed", "version": "2", "controls": [
            {"id": "m-fail", "title": "fails", "check": {"kind": "config",
                                                          "key": "auth.session_max_s",
                                                          "max": 60}},
            {"id": "m-waived", "title": "waived", "check": {"kind": "config",
                                                             "key": "auth.session_idle_s",
                                                             "max": 60}},
            {"id": "m-na", "title": "nothing", "check": {"kind": "file_mode",
                                                          "path": "none.*", "max_mode": "600"}}]}
        self.api("PUT", "/compliance/profiles/mixed", prof, expect=200)
        self.waive({"control_id": "m-waived", "reason": "r", "expires_in_s": 3600})
        s = self.scan("mixed")
        self.assertEqual([r["result"] for r in s["results"]], ["fail", "waived", "not_applicable"])
        rep = self.api("GET", "/compliance/scans/%d/report" % s["id"], expect=200)
        res = rep["assessment-results"]["results"][0]
        states = {f["target"]["target-id"]: f["target"]["status"] for f in res["findings"]}
        self.assertEqual(states["m-fail"], {"state": "not-satisfied", "reason": "fail"})
        self.assertEqual(states["m-waived"]["state"], "not-satisfied")
        self.assertNotIn("m-na", states)
        self.assertEqual(rep["assessment-results"]["metadata"]["version"], "2")
        v = ajv([rep])
        self.assertTrue(v[0]["valid"], v[0]["errors"])

    def test_bad_input_changes_nothing(self):
        before = self.api("GET", "/compliance/profiles/default", expect=200)
        # Not JSON at all.
        st, _, out = self.g.http("PUT", "/compliance/profiles/newp", b"{not json")
        self.assertEqual(st, 400, out)
        good = {"id": "ok", "title": "ok", "check": {"kind": "admin_users"}}
        self.bad("PUT", "/compliance/profiles/default",
                 {"title": "t", "controls": [good, {"id": "x", "title": "x",
                                                     "check": {"kind": "nope"}}]},
                 "controls[1].check.kind")
        self.bad("PUT", "/compliance/profiles/newp",
                 {"title": "t", "controls": [{"id": "x", "title": "x",
                                              "check": {"kind": "file_mode", "path": "../etc",
                                                        "max_mode": "0600"}}]},
                 "controls[0].check.path")
        self.bad("PUT", "/compliance/profiles/newp",
                 {"title": "t", "controls": [{"id": "x", "title": "x",
                                              "check": {"kind": "config", "key": "auth.nope",
                                                        "min": 1}}]},
                 "controls[0].check.key")
        self.bad("PUT", "/compliance/profiles/newp",
                 {"title": "t", "controls": [good, dict(good)]}, "controls[1].id")
        self.bad("PUT", "/compliance/profiles/newp", {"title": "t", "controls": []}, "controls")
        self.bad("PUT", "/compliance/profiles/newp", {"title": "t", "controls": [good],
                                                      "extra": 1}, "extra")
        self.bad("PUT", "/compliance/profiles/newp",
                 {"title": "t", "controls": [{"id": "x", "title": "x",
                                              "check": {"kind": "key_age"}}]},
                 "controls[0].check.max_age_days")
        self.assertEqual(self.api("GET", "/compliance/profiles/default", expect=200), before)
        self.api("GET", "/compliance/profiles/newp", expect=404)
        self.bad("POST", "/compliance/scans", {"profile": 7}, "profile")
        self.api("POST", "/compliance/scans", {"profile": "missing"}, expect=404)
        waivers = self.api("GET", "/compliance/waivers", expect=200)
        requests = self.api("GET", "/governance/requests?limit=500", expect=200)
        self.bad("POST", "/compliance/waivers", {"control_id": "x", "reason": "r"},
                 "expires_at")
        self.bad("POST", "/compliance/waivers", {"control_id": "x", "reason": "r",
                                                  "expires_in_s": -5},
                 "expires_in_s")
        self.bad("POST", "/compliance/waivers", {"control_id": "x", "reason": "r",
                                                  "expires_at": "2001-01-01T00:00:00Z"},
                 "expires_at")
        self.bad("POST", "/compliance/waivers", {"control_id": "x", "reason": "r",
                                                  "expires_in_s": 400 * 86400}, "expires_at")
        self.bad("POST", "/compliance/waivers", {"reason": "r", "expires_in_s": 5},
                 "control_id")
        self.bad("POST", "/compliance/waivers", {"control_id": "x", "reason": "r",
                                                  "expires_in_s": 5, "extra": 1}, "extra")
        self.assertEqual(self.api("GET", "/compliance/waivers", expect=200), waivers)
        # No change request was opened for any of them.
        self.assertEqual(self.api("GET", "/governance/requests?limit=500", expect=200),
                         requests)
        self.bad("PUT", "/compliance/schedule", {"interval_s": -1}, "interval_s")
        self.api("DELETE", "/compliance/profiles/default", expect=409)
        self.api("GET", "/compliance/scans/abc", expect=400)
        self.api("GET", "/compliance/scans/999999", expect=404)

    def test_denied_waiver_is_no_waiver(self):
        rid = self.request_waiver({"control_id": "denied-one", "reason": "r",
                                   "expires_in_s": 3600})
        self.as_carol("POST", "/governance/requests/%d/deny" % rid, {}, expect=200)
        self.assertEqual(self.request_state(rid, ("denied",))["state"], "denied")
        # Denied is final: no approval can follow, and no waiver exists.
        self.as_carol("POST", "/governance/requests/%d/approve" % rid, {}, expect=409)
        self.assertIsNone(self.waiver_of(rid))

    def test_approval_cannot_be_skipped(self):
        rid = self.request_waiver({"control_id": "skip-me", "reason": "r",
                                   "expires_in_s": 3600})
        waivers = self.api("GET", "/compliance/waivers", expect=200)
        # An admin through :8000, by its prefix or /kernels/compliance: 403.
        for path in ("/compliance/waivers/approved", "/kernels/compliance/waivers/approved"):
            out = self.api("POST", path, {"request_id": rid}, expect=403)
            self.assertEqual(out["error"]["code"], "forbidden", out)
        # Even the executor's own call finds the request not approved.
        st, _, out = self.g.kernel_http("compliance", "POST", "/waivers/approved",
                                        {"request_id": rid}, {"X-Grace-Caller": "grace"},
                                        timeout=scaled(10))
        self.assertEqual((st, out["error"]["code"]), (409, "not_approved"), out)
        # A kernel claiming to be the main process but naming a user: 403.
        st, _, out = self.g.kernel_http("compliance", "POST", "/waivers/approved",
                                        {"request_id": rid},
                                        {"X-Grace-Caller": "grace", "X-Grace-User": "mallory",
                                         "X-Grace-Role": "admin"}, timeout=scaled(10))
        self.assertEqual(st, 403, out)
        self.assertEqual(self.api("GET", "/compliance/waivers", expect=200), waivers)
        self.api("POST", "/governance/requests/%d/withdraw" % rid, {}, expect=200)

    def test_users_are_refused(self):
        self.g.create_user("cmpuser", "a-long-password-1")
        tok = self.g.login("cmpuser", "a-long-password-1")
        st, _, _ = http_request(self.g.api_port, "GET", "/compliance/scans", None,
                                {"Authorization": "Bearer " + tok}, scaled(10))
        self.assertEqual(st, 403)


class Schedule(ServerClassCase):
    @classmethod
    def make_server(cls):
        return GraceServer(kernels={"compliance": {}, "immutable_log": {}},
                           config={"compliance": {"scan_interval_s": 3600}})

    def api(self, method, path, body=None, expect=None):
        st, _, out = self.g.http(method, path, body, timeout=scaled(30))
        if expect is not None:
            self.assertEqual(st, expect, "%s %s -> %s %r" % (method, path, st, out))
        return out

    def test_scan_reaches_the_log_once_it_is_back(self):
        st, _, out = self.g.http("POST", "/kernel-ports/immutable_log/stop")
        self.assertIn(st, (200, 202), out)
        self.g.wait_kernel("immutable_log", lambda k: k["state"] == "stopped")
        try:
            s = self.api("POST", "/compliance/scans", {}, expect=201)
            self.assertIsNone(s["log_index"])
            r = next(x for x in s["results"] if x["control_id"] == "log-verify")
            self.assertEqual(r["result"], "error", r)
        finally:
            st, _, out = self.g.http("POST", "/kernel-ports/immutable_log/start")
            self.assertIn(st, (200, 202), out)
        self.g.wait_for(lambda: isinstance(self.api("GET", "/compliance/scans/%d" % s["id"])
                                           ["log_index"], int),
                        timeout=scaled(30), message="the scan appended once the log is back")
        got = self.api("GET", "/compliance/scans/%d" % s["id"])
        entry = self.api("GET", "/kernels/immutable_log/entries/%d" % got["log_index"],
                         expect=200)
        self.assertEqual(entry["data"], json.loads(got["log_record"]))

    def test_next_scan_survives_restart_and_short_interval_scans(self):
        sch = self.api("GET", "/compliance/schedule", expect=200)
        self.assertEqual(sch["interval_s"], 3600)
        nxt = sch["next_ms"]
        self.assertGreater(nxt, time.time() * 1000 + 3500 * 1000)
        st, _, out = self.g.http("POST", "/kernel-ports/compliance/restart")
        self.assertIn(st, (200, 202), out)
        self.g.wait_for(lambda: self.g.http("GET", "/compliance/schedule")[0] == 200,
                        timeout=scaled(20), message="compliance back after restart")
        self.assertEqual(self.api("GET", "/compliance/schedule", expect=200)["next_ms"], nxt)
        self.api("PUT", "/compliance/schedule", {"interval_s": 1}, expect=200)

        def scheduled():
            scans = self.api("GET", "/compliance/scans", expect=200)["scans"]
            return [s for s in scans if s["trigger"] == "schedule"]
        self.g.wait_for(lambda: len(scheduled()) >= 2, timeout=scaled(20),
                        message="two scheduled scans")
        self.api("PUT", "/compliance/schedule", {"interval_s": 0}, expect=200)
        self.assertIsNone(self.api("GET", "/compliance/schedule", expect=200)["next_ms"])
        s = scheduled()[0]
        self.assertEqual(s["profile"], "default")
        self.g.wait_for(lambda: isinstance(self.api("GET", "/compliance/scans/%d" % s["id"])
                                           ["log_index"], int),
                        timeout=scaled(20), message="the scheduled scan in the log")


if __name__ == "__main__":
    unittest.main()
