"""Exactly once across kill -9 of the governance kernel (issue 12).

The last approval commits, in one transaction, the request's approval and
its intent (the action due, with its idempotency key). [governance]
run_delay_ms (a setting for tests) holds the intent back for a while after
that commit, which opens the window between "approved" and "run" wide
enough to hit deterministically: the test kills the kernel with SIGKILL
inside it, right after the approval's answer, and checks that nothing has
run yet. The supervisor restarts the kernel; the main process then finds
the intent, runs the action, and the result is attached. The action is a
key rotation, which is not idempotent (each run adds a version): the key
ends at version 2, not 1 (lost) nor 3 (twice).
"""

import os
import signal
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import GraceServer, GraceTestCase, scaled  # noqa: E402

PASSWORD = "correct horse battery staple 12"
DELAY_MS = 2500


class GovernanceKill9(GraceTestCase):
    def setUp(self):
        self.g = GraceServer(
            kernels={"governance": {"backoff_initial_ms": 10}, "crypto": {}},
            config={"governance": {"gate": "key.rotate", "default_rule": "1 admin",
                                   "run_delay_ms": DELAY_MS, "poll_ms": 50}})
        self.g.start()
        self.addCleanup(self.g.close)
        self.g.create_user("bob", PASSWORD, "admin")
        self.bob = {"Authorization": "Bearer " + self.g.login("bob", PASSWORD)}

    def call(self, method, path, body=None, headers=None, expect=200):
        st, _, out = self.g.http(method, path, body, headers=headers, timeout=scaled(30))
        self.assertEqual(st, expect, "%s %s -> %s %r" % (method, path, st, out))
        return out

    def version(self):
        return self.call("GET", "/kernels/crypto/keys/k9")["latest_version"]

    def test_kill9_between_last_approval_and_run(self):
        self.call("POST", "/kernels/crypto/keys", {"name": "k9", "type": "ed25519"}, expect=201)
        out = self.call("POST", "/kernels/crypto/keys/k9/rotate", {}, expect=202)
        rid = out["change_request"]["id"]
        self.assertEqual(self.version(), 1)
        before = self.g.kernel("governance")
        r = self.call("POST", "/governance/requests/%d/approve" % rid, {}, headers=self.bob)
        self.assertEqual(r["state"], "approved")
        os.kill(before["pid"], signal.SIGKILL)
        # Inside the window: the intent was not yet due, so nothing ran.
        self.assertEqual(self.version(), 1)
        self.g.wait_kernel("governance", lambda k: k["state"] == "ready" and
                           k["pid"] != before["pid"], timeout=scaled(20))

        def done():
            st, _, cur = self.g.http("GET", "/governance/requests/%d" % rid)
            return st == 200 and cur["state"] in ("done", "failed") and cur
        self.g.wait_for(done, timeout=scaled(30), message="the action never ran")
        r = done()
        self.assertEqual(r["state"], "done", r)
        self.assertTrue(r["result"]["ok"], r["result"])
        self.assertEqual(r["result"]["key"], "gov-%d-r1" % rid)
        self.assertEqual(r["result"]["result"]["status"], 200)
        # Exactly once: one rotation, one claim, one result.
        self.assertEqual(self.version(), 2)
        events = [h["event"] for h in r["history"]]
        self.assertEqual(events, ["open", "quorum", "claim", "succeed"])
        # And it stays once: the main process keeps asking; nothing is due.
        self.g.wait_for(lambda: self.g.kernel("governance")["state"] == "ready",
                        timeout=scaled(5))
        self.assertEqual(self.version(), 2)


if __name__ == "__main__":
    unittest.main()
