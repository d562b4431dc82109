"""The governance kernel (issue 12): change requests before dangerous
actions. Each rule of the issue against a real grace serve:

  - a quorum of distinct users holding a role, the requester never
    counting, and GET saying which approvals are missing;
  - a change voids the approvals given so far;
  - any approver may veto (deny);
  - a role changes only through an approved request;
  - break-glass runs at once and opens a mandatory review;
  - a gated :8000 route answers 202 with the change request, and the action
    runs once approved, with its result attached;
  - users may not break the glass or reach the intents;
  - the CLI: grace approvals, approve, deny.
(test_governance_more.py: events, the policy kernel deciding, expiry.)
"""

import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import GRACE_BIN, GraceServer, GraceTestCase, scaled  # noqa: E402

PASSWORD = "correct horse battery staple 12"


class Governance(GraceTestCase):
    @classmethod
    def setUpClass(cls):
        cls.g = GraceServer(
            kernels={"governance": {}, "crypto": {}, "message_bus": {}},
            config={"governance": {
                "gate": "kernel.stop user.delete key.rotate port.clear_force bus.retention",
                "default_rule": "2 admin",
                "rule.user.delete": "all_of(1 admin, any_of(2 user, 1 admin))",
                "expiry_s": 3600,
                "poll_ms": 50,
            }})
        cls.g.start()
        for name, role in (("ann", "admin"), ("bob", "admin"), ("cid", "admin"),
                           ("uma", "user"), ("ula", "user"), ("uno", "user")):
            cls.g.create_user(name, PASSWORD, role)
        cls.tokens = {n: cls.g.login(n, PASSWORD)
                      for n in ("ann", "bob", "cid", "uma", "ula", "uno")}

    @classmethod
    def tearDownClass(cls):
        cls.g.close()

    def as_(self, who, method, path, body=None, headers=None, expect=None):
        h = {"Authorization": "Bearer " + self.tokens[who]}
        h.update(headers or {})
        st, hdrs, out = self.g.http(method, path, body, headers=h, timeout=scaled(30))
        if expect is not None:
            self.assertEqual(st, expect, "%s %s as %s -> %s %r" % (method, path, who, st, out))
        return st, hdrs, out

    def open_req(self, who, action, params, **kw):
        body = dict({"action": action, "params": params}, **kw)
        return self.as_(who, "POST", "/governance/requests", body, expect=201)[2]

    def wait_state(self, rid, states, timeout=20):
        states = set(states) if not isinstance(states, str) else {states}
        last = {}

        def done():
            last["r"] = self.as_("ann", "GET", "/governance/requests/%d" % rid, expect=200)[2]
            return last["r"]["state"] in states
        self.g.wait_for(done, timeout=scaled(timeout),
                        message="request %d never reached %s" % (rid, states))
        return last["r"]

    def test_quorum_of_distinct_admins_requester_never_counts(self):
        r = self.open_req("ann", "key.rotate", {"name": "nokey-quorum"})
        rid = r["id"]
        self.assertEqual(r["state"], "open")
        self.assertEqual(r["waiting_on"], ["2 more approvals from role admin"])
        # The requester's own approval is refused and never counts.
        st, _, out = self.as_("ann", "POST", "/governance/requests/%d/approve" % rid, {})
        self.assertEqual(st, 403, out)
        # A user holds no role of "2 admin": refused.
        self.as_("uma", "POST", "/governance/requests/%d/approve" % rid, {}, expect=403)
        r = self.as_("bob", "POST", "/governance/requests/%d/approve" % rid, {}, expect=200)[2]
        self.assertEqual(r["state"], "open")
        self.assertEqual(r["waiting_on"], ["1 more approval from role admin"])
        self.assertEqual(r["evaluation"]["rule"]["approvers"], ["bob"])
        # The same user twice is one approval: refused as a second vote.
        self.as_("bob", "POST", "/governance/requests/%d/approve" % rid, {}, expect=409)
        r = self.as_("cid", "POST", "/governance/requests/%d/approve" % rid,
                     {"comment": "ok"}, expect=200)[2]
        self.assertIn(r["state"], ("approved", "running", "failed", "done"))
        self.assertEqual(sorted(a["user"] for a in r["approvals"]), ["bob", "cid"])
        # Once decided, no more votes.
        self.as_("bob", "POST", "/governance/requests/%d/deny" % rid, {}, expect=409)
        # The key does not exist: the action ran and failed, result attached.
        r = self.wait_state(rid, "failed")
        self.assertEqual(r["result"]["result"]["status"], 404, r["result"])

    def test_any_of_all_of_with_users(self):
        self.g.create_user("victim1", PASSWORD, "user")
        r = self.open_req("ann", "user.delete", {"name": "victim1"})
        rid = r["id"]
        self.assertEqual(r["waiting_on"], ["1 more approval from role admin",
                                           "one of: 2 more approvals from role user | "
                                           "1 more approval from role admin"])
        r = self.as_("uma", "POST", "/governance/requests/%d/approve" % rid, {}, expect=200)[2]
        self.assertEqual(r["state"], "open")
        r = self.as_("ula", "POST", "/governance/requests/%d/approve" % rid, {}, expect=200)[2]
        self.assertEqual(r["waiting_on"], ["1 more approval from role admin"])
        r = self.as_("bob", "POST", "/governance/requests/%d/approve" % rid, {}, expect=200)[2]
        self.assertNotEqual(r["state"], "open")
        r = self.wait_state(rid, "done")
        self.assertEqual(r["result"]["result"], {"name": "victim1", "deleted": True})
        st, _, _ = self.g.http("GET", "/auth/users")
        users = [u["name"] for u in self.g.http("GET", "/auth/users")[2]["users"]]
        self.assertNotIn("victim1", users)

    def test_a_role_changes_through_an_approved_request(self):
        self.g.create_user("rolly", PASSWORD, "user")
        rid = self.open_req("uma", "user.role", {"name": "rolly", "role": "admin"})["id"]
        for who in ("bob", "cid"):
            self.as_(who, "POST", "/governance/requests/%d/approve" % rid, {}, expect=200)
        r = self.wait_state(rid, "done")
        # No kernel here keeps things that act later as rolly: none to tell.
        self.assertEqual(r["result"]["result"], {"name": "rolly", "role": "admin", "was": "user",
                                                 "kernels_pending": []})
        users = {u["name"]: u["role"] for u in self.g.http("GET", "/auth/users")[2]["users"]}
        self.assertEqual(users["rolly"], "admin")

    def test_change_voids_approvals(self):
        r = self.open_req("uma", "key.rotate", {"name": "k-change"})
        rid = r["id"]
        self.as_("bob", "POST", "/governance/requests/%d/approve" % rid, {}, expect=200)
        # Only the requester (or an admin) changes it.
        self.as_("ula", "PATCH", "/governance/requests/%d" % rid,
                 {"params": {"name": "other"}}, expect=403)
        r = self.as_("uma", "PATCH", "/governance/requests/%d" % rid,
                     {"params": {"name": "k-change-2"}}, expect=200)[2]
        self.assertEqual(r["revision"], 2)
        self.assertEqual(r["approvals"], [])
        self.assertEqual(r["waiting_on"], ["2 more approvals from role admin"])
        # bob approves again on the new revision: one of two.
        r = self.as_("bob", "POST", "/governance/requests/%d/approve" % rid, {}, expect=200)[2]
        self.assertEqual(r["state"], "open")
        self.assertEqual(r["waiting_on"], ["1 more approval from role admin"])
        events = [h["event"] for h in r["history"]]
        self.assertEqual(events, ["open", "approve", "change", "approve"])
        # Withdrawn by its requester: closed.
        r = self.as_("uma", "POST", "/governance/requests/%d/withdraw" % rid, {}, expect=200)[2]
        self.assertEqual(r["state"], "withdrawn")

    def test_veto(self):
        r = self.open_req("ann", "key.rotate", {"name": "k-veto"})
        rid = r["id"]
        self.as_("bob", "POST", "/governance/requests/%d/approve" % rid, {}, expect=200)
        r = self.as_("cid", "POST", "/governance/requests/%d/veto" % rid,
                     {"comment": "not now"}, expect=200)[2]
        self.assertEqual(r["state"], "denied")
        self.assertEqual([v["user"] for v in r["vetoes"]], ["cid"])
        # A later approval cannot revive it.
        self.as_("cid", "POST", "/governance/requests/%d/approve" % rid, {}, expect=409)
        self.assertEqual(self.wait_state(rid, "denied")["result"], None)

    def test_break_glass_runs_at_once_and_needs_review(self):
        st, _, out = self.as_("ann", "POST", "/kernels/crypto/keys",
                              {"name": "k-glass", "type": "ed25519"})
        self.assertIn(st, (200, 201), out)
        # Users may not break the glass.
        st, _, out = self.as_("uma", "POST", "/governance/requests",
                              {"action": "key.rotate", "params": {"name": "k-glass"},
                               "break_glass": True, "reason": "x"})
        self.assertEqual(st, 403, out)
        # Through the gated route, with the header: 202 and it runs at once.
        st, hdrs, out = self.as_("ann", "POST", "/kernels/crypto/keys/k-glass/rotate", {},
                                 headers={"X-Grace-Break-Glass": "incident 42"})
        self.assertEqual(st, 202, out)
        self.assertEqual(out["status"], "break_glass")
        rid = out["change_request"]["id"]
        r = self.wait_state(rid, "review_pending")
        self.assertEqual(r["result"]["ok"], True, r["result"])
        self.assertEqual(r["reason"], "incident 42")
        key = self.as_("ann", "GET", "/kernels/crypto/keys/k-glass", expect=200)[2]
        self.assertEqual(key["latest_version"], 2, key)
        # The review: never by the requester.
        self.as_("ann", "POST", "/governance/requests/%d/review" % rid, {}, expect=403)
        r = self.as_("bob", "POST", "/governance/requests/%d/review" % rid,
                     {"comment": "fine"}, expect=200)[2]
        self.assertEqual(r["state"], "reviewed")
        self.assertEqual(r["review"]["by"], "bob")

    def test_gated_route_answers_202_and_runs_once_approved(self):
        st, _, out = self.as_("ann", "POST", "/kernel-ports/crypto/stop")
        self.assertEqual(st, 202, out)
        self.assertEqual(out["status"], "pending_approval")
        rid = out["change_request"]["id"]
        self.assertEqual(out["change_request"]["params"], {"kernel": "crypto"})
        self.assertEqual(self.g.kernel("crypto")["state"], "ready")
        self.as_("bob", "POST", "/governance/requests/%d/approve" % rid, {}, expect=200)
        self.assertEqual(self.g.kernel("crypto")["state"], "ready")
        self.as_("cid", "POST", "/governance/requests/%d/approve" % rid, {}, expect=200)
        r = self.wait_state(rid, "done")
        self.assertTrue(r["result"]["ok"])
        self.assertEqual(r["result"]["result"]["name"], "crypto")
        self.g.wait_kernel("crypto", lambda k: k["state"] == "stopped", timeout=scaled(10))
        events = [h["event"] for h in r["history"]]
        self.assertEqual(events, ["open", "approve", "quorum", "claim", "succeed"])
        # Not gated: starting it again runs at once.
        self.as_("ann", "POST", "/kernel-ports/crypto/start", expect=202)
        self.g.wait_kernel("crypto", lambda k: k["state"] == "ready", timeout=scaled(20))

    def test_each_gated_route_answers_202_and_runs_nothing(self):
        self.g.create_user("victim2", PASSWORD, "user")
        cases = [
            ("DELETE", "/auth/users/victim2", None, "user.delete", {"name": "victim2"}),
            ("POST", "/network-healer/heal",
             {"component_name": "crypto", "action": "clear_port", "force": True},
             "port.clear_force", {"kernel": "crypto"}),
            ("POST", "/kernels/message_bus/retention", {"subject": "a.b", "max_messages": 5},
             "bus.retention", {"method": "POST",
                               "body": {"subject": "a.b", "max_messages": 5}}),
        ]
        for method, path, body, action, params in cases:
            st, hdrs, out = self.as_("ann", method, path, body)
            self.assertEqual(st, 202, "%s %s: %r" % (method, path, out))
            cr = out["change_request"]
            self.assertEqual((cr["action"], cr["params"], cr["state"], cr["requester"]),
                             (action, params, "open", "ann"))
            self.assertEqual(hdrs.get("Location") or hdrs.get("location"),
                             "/governance/requests/%d" % cr["id"])
            self.as_("ann", "POST", "/governance/requests/%d/withdraw" % cr["id"], {},
                     expect=200)
        users = [u["name"] for u in self.g.http("GET", "/auth/users")[2]["users"]]
        self.assertIn("victim2", users)
        st, _, out = self.g.http("GET", "/kernels/message_bus/retention")
        self.assertNotIn("a.b", str(out))
        # Reading is never gated.
        self.as_("ann", "GET", "/kernels/message_bus/retention", expect=200)

    def cli(self, who, *args):
        env = dict(os.environ, GRACE_TOKEN=self.tokens[who])
        p = subprocess.run([GRACE_BIN] + list(args) + ["--port", str(self.g.api_port)],
                           env=env, capture_output=True, text=True, timeout=scaled(30))
        return p.returncode, p.stdout, p.stderr

    def test_cli_approvals_approve_deny(self):
        rid = self.open_req("ann", "key.rotate", {"name": "k-cli"})["id"]
        rc, out, err = self.cli("bob", "approvals")
        self.assertEqual(rc, 0, err)
        self.assertIn("#%d  key.rotate" % rid, out)
        self.assertIn("waiting on: 2 more approvals from role admin", out)
        rc, out, err = self.cli("bob", "approve", str(rid), "--comment", "lgtm")
        self.assertEqual(rc, 0, err)
        self.assertIn("waiting on: 1 more approval from role admin", out)
        # The requester's approval is refused: exit 6 (forbidden), the API's reason.
        rc, out, err = self.cli("ann", "approve", str(rid))
        self.assertEqual(rc, 6)
        self.assertIn("403 forbidden: the requester cannot approve", err)
        rc, out, err = self.cli("cid", "deny", str(rid), "--json")
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out)["state"], "denied")
        rc, out, err = self.cli("cid", "approvals")
        self.assertNotIn("#%d " % rid, out)
        rc, out, err = self.cli("cid", "approvals", "--all")
        self.assertIn("#%d  key.rotate" % rid, out)
        self.assertEqual(self.cli("cid", "approve", "x")[0], 2)

    def test_intents_are_the_main_process_only(self):
        st, _, out = self.g.kernel_http("governance", "GET", "/intents")
        self.assertEqual(st, 403, out)
        self.as_("uma", "GET", "/kernels/governance/intents", expect=403)

    def test_bad_input(self):
        self.as_("ann", "POST", "/governance/requests", {"action": "rm.rf", "params": {}},
                 expect=400)
        self.as_("ann", "POST", "/governance/requests",
                 {"action": "key.rotate", "params": {"nam": "x"}}, expect=400)
        self.as_("ann", "POST", "/governance/requests",
                 {"action": "key.rotate", "params": {"name": "x" * 300}}, expect=400)
        self.as_("ann", "POST", "/governance/requests",
                 {"action": "key.rotate", "params": {"name": "x", "pad": "y" * 20000}},
                 expect=413)
        self.as_("ann", "GET", "/governance/requests/abc", expect=400)
        self.as_("ann", "GET", "/governance/requests/999999", expect=404)
        actions = self.as_("uma", "GET", "/governance/actions", expect=200)[2]["actions"]
        gated = {a["name"] for a in actions if a["gated"]}
        # compliance.waiver is gated always, whatever [governance] gate says.
        self.assertEqual(gated, {"kernel.stop", "user.delete", "key.rotate", "port.clear_force",
                                 "bus.retention", "compliance.waiver"})


if __name__ == "__main__":
    unittest.main()
