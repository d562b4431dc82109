"""Trust scores (docs/trust.md): a decaying Beta reputation per kernel and
per user from what the main process publishes on the bus, and
`resource.trust` for policy. A kernel killed with SIGKILL a few times sees
its score fall, and rise again with time (a short half-life here); a Cedar
policy forbidding reads of a low-trust kernel takes effect and lifts once
it has recovered. Failed and good logins and policy denials count for a
user, who may read their own score and no one else's. [trust] domain
names the identities."""

import os
import signal
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import GraceServer, ServerClassCase, scaled  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VICTIM = "state_machine"
LOW = 50  # the policy's threshold, in percent

LOW_TRUST_POLICY = """
@id("low-trust-kernels")
forbid (principal, action == Action::"kernels.read", resource is Kernel)
when { resource has trust && resource.trust < %d };
""" % LOW


class TrustScores(ServerClassCase):
    @classmethod
    def make_server(cls):
        return GraceServer(
            # Crashes come faster than the restart burst limit allows.
            kernels={"trust": {}, "message_bus": {}, "policy": {},
                     VICTIM: {"restart_burst": 100}},
            config={"trust": {"domain": "example.org", "score_half_life_s": 4,
                              "score_period_s": 2, "score_refresh_ms": 200}})

    @classmethod
    def prepare(cls):
        with open(os.path.join(ROOT, "etc", "policy", "default.cedar")) as f:
            text = f.read()
        st, _, out = cls.g.http("PUT", "/kernels/policy/policy-sets/default",
                                {"policies": text + LOW_TRUST_POLICY})
        if st not in (200, 201):
            raise AssertionError("policy set: %s %r" % (st, out))

    def score(self, kind, name, headers=None):
        st, _, out = self.g.http("GET", "/trust/scores/%s/%s" % (kind, name), headers=headers)
        return out if st == 200 else None

    def percent(self, name):
        s = self.score("kernel", name)
        return s["percent"] if s else None

    def test_kernel_score_falls_with_crashes_and_policy_reads_it(self):
        g = self.g
        # Up and healthy: good periods lift it above the prior.
        g.wait_for(lambda: (self.percent(VICTIM) or 0) > 60, timeout=scaled(20),
                   message=lambda: self.score("kernel", VICTIM))
        g.wait_for(lambda: g.http("GET", "/kernels/%s/health" % VICTIM)[0] == 200,
                   timeout=scaled(5))
        # Crash it with SIGKILL until its trust is low (each one a crash),
        # each new process as soon as it is ready (a crash while starting,
        # restarted at once, is starting -> starting: no change to publish),
        # before a healthy period (2 s) can count.
        kills, pid = 0, None
        while (self.percent(VICTIM) or 100) >= 35:
            self.assertLess(kills, 12, self.score("kernel", VICTIM))
            old = pid
            def ready_pid(old=old):
                k = g.kernel(VICTIM)
                return k["state"] == "ready" and k["pid"] != old and k["pid"]
            pid = g.wait_for(ready_pid, timeout=scaled(20), interval=0.01)
            os.kill(pid, signal.SIGKILL)
            kills += 1
            g.wait_for(lambda: (self.score("kernel", VICTIM) or {}).get("evidence", {})
                       .get("crash", {}).get("count", 0) >= kills, timeout=scaled(10),
                       message=lambda: self.score("kernel", VICTIM))
        s = self.score("kernel", VICTIM)
        self.assertGreaterEqual(s["evidence"]["crash"]["count"], 2, s)
        self.assertFalse(s["evidence"]["crash"]["good"])
        self.assertTrue(s["evidence"]["healthy_period"]["good"])
        self.assertLess(s["score"], 0.35)
        self.assertEqual(s["percent"], round(s["score"] * 100))
        # The policy reads resource.trust: the low-trust kernel is out of
        # reach, with policy's own 403.
        st, _, out = g.wait_for(
            lambda: (lambda r: r if r[0] == 403 else None)(
                g.http("GET", "/kernels/%s/health" % VICTIM)),
            timeout=scaled(5), message="no 403 on a low-trust kernel")
        self.assertEqual(out["error"]["code"], "forbidden")
        self.assertIn("kernels.read", out["error"]["message"])
        # The same score the policy read is on the kernel's tile (the
        # dashboard and /kernel-ports show it, 0..1).
        g.wait_for(lambda: (g.kernel(VICTIM).get("trust_score", 1.0)) < 0.35,
                   timeout=scaled(15), message=lambda: g.kernel(VICTIM))
        # Time heals: the crashes fade, good periods count, the score
        # rises again and the policy lets reads through.
        g.wait_for(lambda: (self.percent(VICTIM) or 0) > 60, timeout=scaled(40),
                   message=lambda: self.score("kernel", VICTIM))
        g.wait_for(lambda: g.http("GET", "/kernels/%s/health" % VICTIM)[0] == 200,
                   timeout=scaled(5), message="reads still refused after recovery")

    def test_scores_listing(self):
        g = self.g
        g.wait_for(lambda: self.score("kernel", "message_bus"), timeout=scaled(10))
        st, _, out = g.http("GET", "/trust/scores?kind=kernel")
        self.assertEqual(st, 200, out)
        self.assertEqual(out["half_life_s"], 4)
        names = [s["name"] for s in out["scores"]]
        self.assertEqual(names, sorted(names))
        self.assertIn("message_bus", names)
        self.assertTrue(all(s["kind"] == "kernel" for s in out["scores"]))
        self.assertTrue(all(0 <= s["percent"] <= 100 for s in out["scores"]))
        st, _, out = g.http("GET", "/trust/scores?kind=robot")
        self.assertEqual((st, out["error"]["code"]), (400, "invalid"))
        st, _, out = g.http("GET", "/trust/scores/kernel/nobody_here")
        self.assertEqual((st, out["error"]["code"]), (404, "not_found"))

    def test_user_scores(self):
        g = self.g
        g.create_user("tina", "tina-password-1")
        g.create_user("omar", "omar-password-1")
        for _ in range(3):
            st, _, _ = g.http("POST", "/auth/login",
                              {"username": "tina", "password": "wrong-password"}, auth=False)
            self.assertEqual(st, 401)
        token = g.login("tina", "tina-password-1")
        tina = {"Authorization": "Bearer " + token}
        # An admin route: refused by policy, which counts against her.
        st, _, _ = g.http("GET", "/trust/scores", headers=tina)
        self.assertEqual(st, 403)

        def evidence():
            s = self.score("user", "tina")
            ev = (s or {}).get("evidence", {})
            ok = (ev.get("login_failed", {}).get("count", 0) >= 3 and
                  ev.get("login_ok", {}).get("count", 0) >= 1 and
                  ev.get("policy_denied", {}).get("count", 0) >= 1)
            return s if ok else None
        s = g.wait_for(evidence, timeout=scaled(10), message=lambda: self.score("user", "tina"))
        self.assertLess(s["percent"], 50, s)  # more bad than good
        self.assertTrue(s["evidence"]["login_ok"]["good"])
        self.assertFalse(s["evidence"]["login_failed"]["good"])
        # Her own score she may read; another's not.
        st, _, own = g.http("GET", "/trust/scores/user/tina", headers=tina)
        self.assertEqual(st, 200, own)
        self.assertEqual(own["name"], "tina")
        st, _, out = g.http("GET", "/trust/scores/user/omar", headers=tina)
        self.assertEqual(st, 403, out)
        self.assertEqual(out["error"]["code"], "forbidden")
        st, _, out = g.http("GET", "/trust/scores/kernel/%s" % VICTIM, headers=tina)
        self.assertEqual(st, 403, out)

    def test_configured_trust_domain(self):
        st, _, out = self.g.http("POST", "/kernels/trust/jwt-svid",
                                 {"for": "message_bus", "audience": "x"})
        self.assertEqual(st, 200, out)
        self.assertEqual(out["svids"][0]["spiffe_id"],
                         "spiffe://example.org/kernel/message_bus")


if __name__ == "__main__":
    unittest.main()
