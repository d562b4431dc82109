"""Fail closed: with the policy kernel stopped, crashed (kill -9) or hung
(SIGSTOP), every request :8000 decides is refused 503 policy_unavailable,
cached decisions included; the public routes still answer; the
break-glass set (/kernel-ports/policy/..., a heal or diagnosis of the
policy kernel, /guardian/...) stays open to admins with a session, and to
nobody else; each use of it is an audit event; and once the policy kernel
is back, decisions come back with it."""

import os
import signal
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import GraceServer, GraceTestCase, scaled  # noqa: E402

BOB, BOB_PW = "bob", "bob-password-12"
# The policy kernel: no watchdog (so SIGSTOP leaves it hung), and a crash
# always counts as quick, so it stays down for the backoff after kill -9.
POLICY = {"watchdog_ms": 0, "stable_ms": 600000, "backoff_initial_ms": 4000,
          "backoff_max_ms": 4000, "restart_burst": 50}
KERNELS = {"policy": POLICY, "librarian": {}, "audit": {}, "immutable_log": {}}


class FailClosed(GraceTestCase):
    @classmethod
    def setUpClass(cls):
        cls.g = GraceServer(kernels=KERNELS)
        try:
            cls.g.start()
            cls.g.create_user(BOB, BOB_PW)
            cls.bob = {"Authorization": "Bearer " + cls.g.login(BOB, BOB_PW)}
            st, _, out = cls.g.http("POST", "/auth/tokens",
                                    {"name": "ops", "scopes": ["guardian:read", "kernel-ports:read"]})
            assert st == 201, out
            cls.admin_token = {"Authorization": "Bearer " + out["token"]}
        except BaseException:
            cls.g.dump_log()
            cls.g.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.g.close()

    def policy_pid(self):
        st, _, k = self.g.http("GET", "/kernel-ports/policy")  # break-glass when it is down
        self.assertEqual(st, 200, k)
        return k["pid"], k["state"]

    def decided_ok(self):
        """Decisions are back: a user's route and an admin's answer 200."""
        st, _, _ = self.g.http("GET", "/memory/tables", headers=self.bob)
        st2, _, _ = self.g.http("GET", "/kernel-ports/librarian")
        return st == 200 and st2 == 200

    def warm(self):
        """Decisions cached before the policy kernel goes away."""
        self.g.wait_for(self.decided_ok, scaled(15), message="decisions back")
        for _ in range(2):
            self.assertEqual(self.g.http("GET", "/memory/tables", headers=self.bob)[0], 200)
            self.assertEqual(self.g.http("GET", "/auth/me")[0], 200)
            self.assertEqual(self.g.http("GET", "/guardian/status", headers=self.bob)[0], 200)

    def assert_unavailable(self, st, hdrs, out, what):
        self.assertEqual(st, 503, "%s: %r" % (what, out))
        self.assertEqual(out["error"]["code"], "policy_unavailable", what)
        self.assertIn("policy kernel", out["error"]["message"])
        self.assertTrue(out["error"]["request_id"])
        self.assertEqual(hdrs.get("Retry-After"), "1", what)

    def check_refused(self):
        """Everything decided is refused; public routes and break-glass stay."""
        g = self.g
        for what, method, path, body, headers, auth in [
                ("user, cached", "GET", "/memory/tables", None, self.bob, True),
                ("user, break-glass route", "GET", "/guardian/status", None, self.bob, True),
                ("admin, cached", "GET", "/auth/me", None, None, True),
                ("admin, not break-glass", "GET", "/kernel-ports/librarian", None, None, True),
                ("admin, another kernel's heal", "POST", "/network-healer/diagnose",
                 {"component_name": "librarian"}, None, True),
                ("admin's API token, break-glass route", "GET", "/guardian/status", None,
                 self.admin_token, True),
                ("admin, the gateway", "GET", "/librarian/search?query=x", None, None, True),
                ("nobody", "GET", "/memory/tables", None, None, False)]:
            st, hdrs, out = g.http(method, path, body, headers=headers, auth=auth)
            self.assert_unavailable(st, hdrs, out, what)
        # Public routes.
        self.assertEqual(g.http("GET", "/health", auth=False)[0], 200)
        self.assertEqual(g.http("GET", "/metrics", auth=False)[0], 200)
        self.assertEqual(g.http("POST", "/auth/login", {"username": BOB, "password": BOB_PW},
                                auth=False)[0], 200)
        # The break-glass set, for an admin's session.
        st, _, out = g.http("GET", "/guardian/status")
        self.assertEqual(st, 200, out)
        st, _, out = g.http("GET", "/guardian/events?kernel=policy")
        self.assertEqual(st, 200, out)
        st, _, out = g.http("GET", "/kernel-ports/policy")
        self.assertEqual((st, out["name"]), (200, "policy"), out)
        st, _, out = g.http("POST", "/network-healer/diagnose", {"component_name": "policy_kernel"},
                            timeout=scaled(30))
        self.assertEqual(st, 200, out)
        return 4  # break-glass uses in this call

    def break_glass_events(self):
        st, _, out = self.g.http("GET", "/kernels/audit/events?action=policy.break_glass&limit=1000")
        return out.get("events", []) if st == 200 else []

    def test_1_stopped(self):
        self.warm()
        st, _, out = self.g.http("POST", "/kernel-ports/policy/stop")
        self.assertEqual(st, 202, out)
        self.g.wait_for(lambda: self.policy_pid()[1] == "stopped", message="policy stopped")
        uses = self.check_refused()
        # An admin heals it through the break-glass set.
        st, _, out = self.g.http("POST", "/kernel-ports/policy/start")
        self.assertEqual(st, 202, out)
        uses += 1
        self.g.wait_for(self.decided_ok, scaled(15), message="decisions back after a start")
        self.__class__.uses = getattr(self.__class__, "uses", 0) + uses

    def test_2_killed(self):
        self.warm()
        pid, _ = self.policy_pid()
        os.kill(pid, signal.SIGKILL)
        self.g.wait_for(lambda: self.policy_pid()[1] != "ready", message="policy down")
        uses = self.check_refused()
        # Still down: what was checked was checked while it was.
        self.assertNotEqual(self.policy_pid()[1], "ready")
        uses += 1
        self.g.wait_for(self.decided_ok, scaled(20), message="decisions back after a restart")
        self.assertNotEqual(self.policy_pid()[0], pid)
        self.__class__.uses = getattr(self.__class__, "uses", 0) + uses

    def test_3_hung(self):
        self.warm()
        pid, _ = self.policy_pid()
        os.kill(pid, signal.SIGSTOP)
        try:
            # Noticed within the watch's period: its long poll goes unanswered.
            self.g.wait_for(lambda: self.g.http("GET", "/memory/tables", headers=self.bob)[0] == 503,
                            scaled(10), message="a hung policy kernel noticed")
            uses = self.check_refused()
            self.assertEqual(self.policy_pid(), (pid, "ready"))  # the supervisor sees nothing amiss
            uses += 1
        finally:
            os.kill(pid, signal.SIGCONT)
        self.g.wait_for(self.decided_ok, scaled(15), message="decisions back after SIGCONT")
        self.__class__.uses = getattr(self.__class__, "uses", 0) + uses

    def test_4_break_glass_is_audited(self):
        uses = getattr(self.__class__, "uses", 0)
        self.assertGreaterEqual(uses, 10)
        # Journaled while the policy kernel was away, delivered once it is back.
        self.g.wait_for(lambda: len(self.break_glass_events()) >= uses, scaled(20),
                        message="%d break-glass events in the audit trail" % uses)
        events = self.break_glass_events()
        self.assertTrue(all(e["actor"] == self.g.first_admin()[0] for e in events), events)
        self.assertTrue(all(e["outcome"] == "allowed" for e in events), events)
        resources = {e["resource"] for e in events}
        for r in ("GET /guardian/status", "GET /kernel-ports/policy", "POST /kernel-ports/policy/start",
                  "POST /network-healer/diagnose"):
            self.assertIn(r, resources)
        self.assertTrue(all(e["details"]["reason"] for e in events))


if __name__ == "__main__":
    unittest.main()
