"""The governance kernel (issue 12), the rules that need a server of their
own: every step is an audit event and a bus event; with the policy kernel
deciding, users reach /governance and the break-glass set that heals the
policy kernel is never gated; requests expire, also while the kernel is
down. (test_governance.py has the rest.)
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import GraceServer, GraceTestCase, scaled  # noqa: E402

PASSWORD = "correct horse battery staple 12"


class GovernanceEvents(GraceTestCase):
    def test_every_step_is_an_audit_event_and_a_bus_event(self):
        g = GraceServer(kernels={"governance": {}, "audit": {}, "immutable_log": {},
                                 "message_bus": {}},
                        config={"governance": {"default_rule": "1 admin", "poll_ms": 50}})
        g.start()
        self.addCleanup(g.close)
        g.create_user("bob", PASSWORD, "admin")
        bob = {"Authorization": "Bearer " + g.login("bob", PASSWORD)}
        st, _, r = g.http("POST", "/governance/requests",
                          {"action": "key.delete", "params": {"name": "k-ev"}})
        self.assertEqual(st, 201, r)
        rid = r["id"]
        st, _, r = g.http("POST", "/governance/requests/%d/approve" % rid, {}, headers=bob)
        self.assertEqual(st, 200, r)
        # No crypto kernel here: the action fails, which is a step too.
        g.wait_for(lambda: g.http("GET", "/governance/requests/%d" % rid)[2]["state"]
                   == "failed", timeout=scaled(20))
        steps = ["open", "quorum", "claim", "fail"]

        def audited():
            st, _, out = g.http("GET", "/kernels/audit/events?resource=governance/requests/%d"
                                % rid)
            return st == 200 and [e["action"] for e in out["events"]] == \
                ["governance." + s for s in steps] and out["events"]
        g.wait_for(audited, timeout=scaled(20), message="the audit trail lacks the steps")
        events = audited()
        self.assertEqual(events[0]["actor"], g.first_admin()[0])
        self.assertEqual(events[1]["actor"], "bob")

        def published():
            st, _, out = g.http("GET", "/kernels/message_bus/groups/gv/poll?"
                                "subject=governance.*&max=100")
            self.assertEqual(st, 200, out)
            for m in out["messages"]:  # a message not acked may come again
                if m["payload"]["request_id"] == rid:
                    got[m["payload"]["id"]] = m["subject"]
            return [got[k] for k in sorted(got)] == ["governance." + s for s in steps]
        got = {}
        g.wait_for(published, timeout=scaled(20), message="the bus lacks the steps")


class GovernanceWithPolicy(GraceTestCase):
    def test_policy_decides_and_healing_the_policy_kernel_is_never_gated(self):
        g = GraceServer(kernels={"governance": {}, "policy": {}, "crypto": {}},
                        config={"governance": {"gate": "kernel.stop port.clear_force",
                                               "poll_ms": 50}})
        g.start()
        self.addCleanup(g.close)
        g.create_user("uma", PASSWORD, "user")
        uma = {"Authorization": "Bearer " + g.login("uma", PASSWORD)}
        # The default policy lets a user open and read requests...
        st, _, r = g.http("POST", "/governance/requests",
                          {"action": "key.rotate", "params": {"name": "k"}}, headers=uma)
        self.assertEqual(st, 201, r)
        st, _, r = g.http("GET", "/governance/requests/%d" % r["id"], headers=uma)
        self.assertEqual(st, 200, r)
        # ... and the main process open a gated action's request.
        st, _, out = g.http("POST", "/kernel-ports/crypto/stop")
        self.assertEqual(st, 202, out)
        self.assertEqual(out["change_request"]["action"], "kernel.stop")
        # Stopping the policy kernel is break-glass: it runs at once.
        st, _, out = g.http("POST", "/kernel-ports/policy/stop")
        self.assertEqual(st, 202, out)
        self.assertEqual(out.get("action"), "stop", out)
        self.assertNotIn("change_request", out)
        g.wait_kernel("policy", lambda k: k["state"] == "stopped", timeout=scaled(10))


class GovernanceExpiry(GraceTestCase):
    def test_requests_expire_also_across_a_restart(self):
        g = GraceServer(kernels={"governance": {}},
                        config={"governance": {"expiry_s": 2, "default_rule": "1 admin"}})
        g.start()
        self.addCleanup(g.close)
        st, _, r = g.http("POST", "/governance/requests",
                          {"action": "bus.retention", "params": {"method": "POST"}})
        self.assertEqual(st, 201, r)
        st, _, r2 = g.http("POST", "/governance/requests",
                           {"action": "bus.retention", "params": {"method": "DELETE"}})
        self.assertEqual(r["state"], "open")
        self.assertLessEqual(r["expires_ms"] - r["created_ms"], 2000)
        # The kernel is down while the second one's time runs out.
        g.http("POST", "/kernel-ports/governance/stop")
        g.wait_kernel("governance", lambda k: k["state"] == "stopped", timeout=scaled(10))
        time.sleep(2.2)
        g.http("POST", "/kernel-ports/governance/start")
        g.wait_kernel("governance", lambda k: k["state"] == "ready", timeout=scaled(20))
        for rid in (r["id"], r2["id"]):
            g.wait_for(lambda: g.http("GET", "/governance/requests/%d" % rid)[2]["state"]
                       == "expired", timeout=scaled(10))
        g.create_user("bob", PASSWORD, "admin")
        bob = {"Authorization": "Bearer " + g.login("bob", PASSWORD)}
        st, _, out = g.http("POST", "/governance/requests/%d/approve" % r["id"], {},
                            headers=bob)
        self.assertEqual(st, 409, out)
        self.assertIn("expired", out["error"]["message"])


if __name__ == "__main__":
    unittest.main()
