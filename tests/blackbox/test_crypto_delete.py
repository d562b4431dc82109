"""Key deletion in the crypto kernel (issue 12's key.delete), as AWS KMS's
ScheduleKeyDeletion and CancelKeyDeletion do it:

  - DELETE /keys/NAME schedules the key's destruction after a window
    ([crypto] deletion_window_*); while pending, the key cannot be used at
    all (409 pending_deletion), and the deletion can be cancelled;
  - when the window ends the key is destroyed: its sealed secrets leave
    crypto.db and its WAL (secure_delete, checkpoint), a use says 410
    key_deleted, and the name is never reused;
  - every step is an audit event;
  - a pending deletion survives a restart;
  - under the strict profile the route answers 202 with a change request,
    another admin approves, and the request's result is the key pending
    deletion, then destroyed.
"""

import os
import sqlite3
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import GraceServer, GraceTestCase, scaled  # noqa: E402

P = "/kernels/crypto"
PASSWORD = "correct horse battery staple 12"
KERNELS = {"crypto": {}, "audit": {}, "immutable_log": {}}
CRYPTO = {"deletion_window_s": 3600, "deletion_window_min_s": 1,
          "deletion_window_max_s": 7200}


class Base(GraceTestCase):
    def call(self, method, path, body=None, expect=200, code=None, headers=None):
        st, hdrs, out = self.g.http(method, P + path, body, headers=headers, timeout=scaled(30))
        self.assertEqual(st, expect, "%s %s -> %s %r" % (method, path, st, out))
        if code:
            self.assertEqual(out["error"]["code"], code, out)
        return out

    def create(self, name, type_):
        return self.call("POST", "/keys", {"name": name, "type": type_}, expect=201)

    def wait_gone(self, name, timeout=20):
        def gone():
            st, _, _ = self.g.http("GET", P + "/keys/" + name, timeout=scaled(30))
            return st == 410
        self.g.wait_for(gone, timeout=scaled(timeout), message="key %s never destroyed" % name, interval=0.1)

    def audit_actions(self, name):
        st, _, out = self.g.http("GET", "/kernels/audit/events?resource=crypto/keys/" + name,
                                 timeout=scaled(30))
        self.assertEqual(st, 200, out)
        return [e["action"] for e in out["events"]]

    def wait_audit(self, name, actions):
        self.g.wait_for(lambda: set(actions) <= set(self.audit_actions(name)),
                        timeout=scaled(20), message="audit events %s of %s" % (actions, name), interval=0.1)


class Ungated(Base):
    @classmethod
    def setUpClass(cls):
        cls.g = GraceServer(kernels=KERNELS, config={"crypto": CRYPTO})
        cls.g.start()
        cls.g.login()

    @classmethod
    def tearDownClass(cls):
        cls.g.close()

    def test_pending_refuses_use_and_cancel_restores(self):
        self.create("pend", "symmetric")
        ct = self.call("POST", "/encrypt", {"key": "pend", "plaintext": "hello"})["ciphertext"]
        before = int(time.time() * 1000)
        k = self.call("DELETE", "/keys/pend", {"window_s": 600})
        self.assertEqual(k["state"], "pending_deletion")
        self.assertGreaterEqual(k["deletion_at"], before + 600 * 1000)
        self.assertLess(k["deletion_at"], before + 700 * 1000)
        listed = {x["name"]: x for x in self.call("GET", "/keys")["keys"]}
        self.assertEqual(listed["pend"]["state"], "pending_deletion")
        # Unusable while pending: new work and old ciphertexts alike.
        out = self.call("POST", "/encrypt", {"key": "pend", "plaintext": "x"}, expect=409,
                        code="pending_deletion")
        self.assertIn("cancel", out["error"]["message"])
        self.call("POST", "/decrypt", {"key": "pend", "ciphertext": ct}, expect=409,
                  code="pending_deletion")
        self.call("POST", "/keys/pend/rotate", expect=409, code="pending_deletion")
        self.call("DELETE", "/keys/pend", expect=409, code="pending_deletion")
        k = self.call("POST", "/keys/pend/cancel-deletion")
        self.assertEqual(k["state"], "enabled")
        self.assertNotIn("deletion_at", k)
        self.assertEqual(self.call("POST", "/decrypt", {"key": "pend", "ciphertext": ct})
                         ["plaintext"], "hello")
        self.call("POST", "/keys/pend/cancel-deletion", expect=409)
        self.wait_audit("pend", {"crypto.key.deletion_scheduled",
                                 "crypto.key.deletion_cancelled"})

    def test_bad_requests(self):
        self.create("badreq", "ed25519")
        self.call("DELETE", "/keys/badreq", {"window_s": 0}, expect=400, code="invalid")
        self.call("DELETE", "/keys/badreq", {"window_s": 7201}, expect=400, code="invalid")
        self.call("DELETE", "/keys/badreq", {"window_s": "60"}, expect=400, code="invalid")
        self.call("DELETE", "/keys/badreq", {"window": 60}, expect=400)
        self.call("DELETE", "/keys/nosuchkey", expect=404)
        self.call("POST", "/keys/nosuchkey/cancel-deletion", expect=404)
        # Nothing of that changed the key.
        self.assertEqual(self.call("GET", "/keys/badreq")["state"], "enabled")

    def test_destroyed_key_is_gone_from_the_files(self):
        self.create("doomed", "ed25519")
        sig = self.call("POST", "/sign", {"key": "doomed", "data": "m"})["signature"]
        db = os.path.join(self.g.data_dir, "crypto.db")
        con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
        try:
            sealed = con.execute("SELECT sealed FROM key_versions WHERE name = 'doomed'"
                                 ).fetchone()[0]
        finally:
            con.close()
        self.assertEqual(len(sealed), 72)
        k = self.call("DELETE", "/keys/doomed", {"window_s": 1})
        self.assertEqual(k["state"], "pending_deletion")
        self.wait_gone("doomed")
        out = self.call("POST", "/sign", {"key": "doomed", "data": "m"}, expect=410,
                        code="key_deleted")
        self.assertIn("destroyed at", out["error"]["message"])
        self.call("POST", "/verify", {"key": "doomed", "data": "m", "signature": sig},
                  expect=410, code="key_deleted")
        self.call("GET", "/keys/doomed", expect=410, code="key_deleted")
        self.call("DELETE", "/keys/doomed", expect=410, code="key_deleted")
        self.assertNotIn("doomed", [x["name"] for x in self.call("GET", "/keys")["keys"]])
        # The name is not reused.
        self.call("POST", "/keys", {"name": "doomed", "type": "ed25519"}, expect=409,
                  code="exists")
        # The sealed secret is in neither the database nor its WAL.
        for suffix in ("", "-wal"):
            path = db + suffix
            if os.path.exists(path):
                with open(path, "rb") as f:
                    self.assertNotIn(sealed, f.read(), path)
        self.wait_audit("doomed", {"crypto.key.deletion_scheduled", "crypto.key.destroyed"})


class Restart(Base):
    def test_pending_survives_a_restart(self):
        self.g = GraceServer(kernels={"crypto": {}}, config={"crypto": CRYPTO})
        try:
            self.g.start()
            self.g.login()
            self.create("kept", "symmetric")
            due = self.call("DELETE", "/keys/kept", {"window_s": 3600})["deletion_at"]
            self.g.stop()
            self.g.start()
            self.g.login()
            k = self.call("GET", "/keys/kept")
            self.assertEqual((k["state"], k["deletion_at"]), ("pending_deletion", due))
            self.call("POST", "/encrypt", {"key": "kept", "plaintext": "x"}, expect=409,
                      code="pending_deletion")
            self.assertEqual(self.call("POST", "/keys/kept/cancel-deletion")["state"],
                             "enabled")
            self.call("POST", "/encrypt", {"key": "kept", "plaintext": "x"})
        finally:
            self.g.close()


def strict_gate():
    """The gate of the strict profile etc/grace.ini ships (commented out)."""
    ini = os.path.join(os.path.dirname(__file__), "..", "..", "etc", "grace.ini")
    with open(ini) as f:
        for line in f:
            if line.startswith(";gate = "):
                return line[1:].split("=", 1)[1].split(";")[0].strip()
    raise AssertionError("etc/grace.ini ships no strict profile (;gate = ...)")


class Gated(Base):
    """The strict profile: key.delete waits for another admin. The policy
    kernel runs, so every call between processes is decided by the default
    policy (crypto's audit events among them)."""

    @classmethod
    def setUpClass(cls):
        cls.g = GraceServer(kernels=dict(KERNELS, governance={}, policy={}),
                            config={"crypto": CRYPTO,
                                    "governance": {"gate": strict_gate(),
                                                   "default_rule": "1 admin", "poll_ms": 50}})
        cls.g.start()
        for name in ("ann", "bob"):
            cls.g.create_user(name, PASSWORD, "admin")
        cls.tokens = {n: cls.g.login(n, PASSWORD) for n in ("ann", "bob")}
        cls.g.login()

    @classmethod
    def tearDownClass(cls):
        cls.g.close()

    def as_(self, who, method, path, body=None, expect=200):
        st, hdrs, out = self.g.http(method, path, body, timeout=scaled(30),
                                    headers={"Authorization": "Bearer " + self.tokens[who]})
        self.assertEqual(st, expect, "%s %s as %s -> %s %r" % (method, path, who, st, out))
        return out

    def test_gated_delete_needs_another_admin(self):
        self.create("gated", "ed25519")
        out = self.as_("ann", "DELETE", P + "/keys/gated", {"window_s": 1}, expect=202)
        self.assertEqual(out["status"], "pending_approval")
        rid = out["change_request"]["id"]
        self.assertEqual(out["change_request"]["action"], "key.delete")
        # Nothing happened yet: the key still signs.
        self.assertEqual(self.call("GET", "/keys/gated")["state"], "enabled")
        self.call("POST", "/sign", {"key": "gated", "data": "m"})
        # The requester's approval does not count.
        self.as_("ann", "POST", "/governance/requests/%d/approve" % rid, {}, expect=403)
        self.as_("bob", "POST", "/governance/requests/%d/approve" % rid, {})

        def done():
            r = self.as_("ann", "GET", "/governance/requests/%d" % rid)
            return r if r["state"] in ("done", "failed") else None
        r = self.g.wait_for(done, timeout=scaled(20), message="request %d never ran" % rid, interval=0.1)
        if not isinstance(r, dict):
            r = self.as_("ann", "GET", "/governance/requests/%d" % rid)
        self.assertEqual(r["state"], "done", r)
        result = r["result"]["result"]
        self.assertEqual(result["status"], 200, result)
        self.assertEqual(result["body"]["name"], "gated")
        self.assertEqual(result["body"]["state"], "pending_deletion")
        self.wait_gone("gated")
        self.call("POST", "/sign", {"key": "gated", "data": "m"}, expect=410, code="key_deleted")
        self.wait_audit("gated", {"crypto.key.deletion_scheduled", "crypto.key.destroyed"})

    def test_strict_profile_gates_a_policy_set_change(self):
        self.assertIn("policy.set", strict_gate().split())
        body = {"policies": "permit (principal, action, resource);"}
        out = self.as_("ann", "PUT", "/kernels/policy/policy-sets/probe", body, expect=202)
        cr = out["change_request"]
        self.assertEqual((cr["action"], cr["params"]),
                         ("policy.set", {"name": "probe", "method": "PUT", "body": body}))
        self.as_("ann", "POST", "/governance/requests/%d/withdraw" % cr["id"], {})
        self.as_("ann", "GET", "/kernels/policy/policy-sets/probe", expect=404)


if __name__ == "__main__":
    unittest.main()
