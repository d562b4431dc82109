"""Calls between kernels carry the caller's JWT-SVID (docs/trust.md, "Calls
between kernels"). With [trust] require_svid = true: a call with a valid
SVID is accepted and decided by policy on the VERIFIED caller; a name in
X-Grace-Caller that the SVID does not back, a forged name with the internal
token and no SVID, and tampered, wrong-audience, wrong-key or expired SVIDs
are refused (and npm `jose` refuses the same tokens); the real kernels'
own calls (audit asking the policy kernel) carry theirs; a trust kernel
that is down breaks no call in hand; a kernel spawned while it is down is
registered once it is back."""

import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import GraceServer, GraceTestCase, ServerClassCase, scaled  # noqa: E402
from healer_support import guardian_kernel, incidents, stop_process  # noqa: E402
from test_trust import b64url_flip, jose  # noqa: E402

AUDIT_ID = "spiffe://grace.local/kernel/audit"
EVENT = {"actor": "k2k", "action": "test", "resource": "r", "outcome": "ok"}


class KernelCalls(ServerClassCase):
    @classmethod
    def make_server(cls):
        return GraceServer(kernels={"trust": {}, "policy": {}, "audit": {}, "immutable_log": {}},
                           config={"policy": {"authorizer": "kernel"},
                                   "trust": {"require_svid": "true"}})

    @classmethod
    def prepare(cls):
        # An SVID that expires soon, for the last test (the shortest TTL is 10 s).
        cls.short = cls.svid_of(cls.g, "crypto", AUDIT_ID, ttl_s=10)
        cls.short_exp = cls.short_expires
        cls.short_status = cls.g.kernel_http("audit", "POST", "/events", EVENT,
                                             {"X-Grace-Caller": "crypto",
                                              "X-Grace-SVID": cls.short})[0]

    @classmethod
    def svid_of(cls, g, who, audience, ttl_s=None):
        body = {"for": who, "audience": audience}
        if ttl_s:
            body["ttl_s"] = ttl_s
        st, _, out = g.http("POST", "/kernels/trust/jwt-svid", body)
        assert st == 200, (st, out)
        cls.short_expires = out["svids"][0]["expires_at"]
        return out["svids"][0]["svid"]

    def svid(self, who, audience=AUDIT_ID):
        return self.svid_of(self.g, who, audience)

    def event(self, caller, svid=None):
        headers = {"X-Grace-Caller": caller} if caller else {}
        if svid:
            headers["X-Grace-SVID"] = svid
        return self.g.kernel_http("audit", "POST", "/events", EVENT, headers, svid=False)

    def bundle(self):
        st, _, out = self.g.http("GET", "/kernels/trust/bundle")
        self.assertEqual(st, 200, out)
        return out

    def test_verified_caller_decided_by_policy(self):
        # crypto may POST /events to audit (calls.crypto.audit): with its SVID, accepted.
        st, _, out = self.event("crypto", self.svid("crypto"))
        self.assertEqual(st, 201, out)
        # scheduler may not: the decision is on the verified caller.
        st, _, out = self.event("scheduler", self.svid("scheduler"))
        self.assertEqual(st, 403, out)
        self.assertEqual(out["error"]["code"], "call_forbidden")
        self.assertIn("'scheduler'", out["error"]["message"])
        # scheduler's SVID does not make it crypto.
        st, _, out = self.event("crypto", self.svid("scheduler"))
        self.assertEqual(st, 401, out)
        self.assertEqual(out["error"]["code"], "caller_mismatch")
        # The audit kernel's own call to the policy kernel carried its SVID
        # (the policy kernel requires one too): it holds one now.
        st, _, out = self.g.http("GET", "/trust/workloads")
        self.assertEqual(st, 200, out)
        audit = [w for w in out["workloads"] if w["name"] == "audit"]
        self.assertTrue(audit and audit[0]["svid_expires_at"], out)

    def test_forged_name_without_svid_refused(self):
        # The internal token and a kernel's name are no longer enough.
        st, _, out = self.event("crypto")
        self.assertEqual(st, 401, out)
        self.assertEqual(out["error"]["code"], "svid_required")
        # Nor the main process's names, nor the token naming no caller: the
        # main process carries SVIDs of its own.
        for caller in ("grace", "gateway", None):
            st, _, out = self.event(caller)
            self.assertEqual((st, out["error"]["code"]), (401, "svid_required"), (caller, out))

    def test_main_process_carries_its_svid(self):
        # What the gateway forwards, and what the main process sends on its
        # own (a login's audit event, through the outbox), reach kernels
        # that take nothing without an SVID.
        st, _, out = self.g.http("GET", "/kernels/audit/events?limit=1")
        self.assertEqual(st, 200, out)
        self.g.create_user("k2kuser", "k2k user's long password")
        self.g.login("k2kuser", "k2k user's long password")

        def logged():
            st, _, out = self.g.http("GET", "/kernels/audit/events?actor=k2kuser&limit=50")
            self.assertEqual(st, 200, out)
            return any(e.get("action") == "auth.login" for e in out.get("events", []))
        self.g.wait_for(logged, timeout=scaled(20), message="the main process's audit event")

    def test_bad_svids_refused_by_us_and_jose(self):
        good = self.svid("crypto")
        kid = [k for k in self.bundle()["keys"] if k.get("use") == "jwt-svid"][0]["kid"]
        forged = jose(self.bundle(), [], forge={"kid": kid, "sub": "spiffe://grace.local/kernel/crypto",
                                               "aud": AUDIT_ID})["forged"]
        bad = {
            "tampered": b64url_flip(good, 1),
            "wrong audience": self.svid("crypto", "spiffe://grace.local/kernel/policy"),
            "wrong key": forged,
        }
        oracle = jose(self.bundle(), [{"token": good, "audience": AUDIT_ID}] +
                      [{"token": t, "audience": AUDIT_ID} for t in bad.values()])["results"]
        self.assertTrue(oracle[0]["ok"], oracle[0])
        for (why, tok), r in zip(bad.items(), oracle[1:]):
            self.assertFalse(r["ok"], (why, r))
            st, _, out = self.event("crypto", tok)
            self.assertEqual(st, 401, (why, out))
            self.assertEqual(out["error"]["code"], "invalid_svid", (why, out))

    def test_trust_down_then_back(self):
        in_hand = self.svid("crypto")
        st, _, out = self.event("crypto", in_hand)
        self.assertEqual(st, 201, out)
        st, _, out = self.g.http("POST", "/kernel-ports/trust/stop")
        self.assertEqual(st, 202, out)
        self.g.wait_kernel("trust", lambda k: k["state"] == "stopped")
        try:
            # Calls in hand keep working: the callee verifies locally with the
            # bundle it holds; the caller's SVIDs are cached.
            for _ in range(3):
                st, _, out = self.event("crypto", in_hand)
                self.assertEqual(st, 201, out)
            # A kernel process spawned while trust is down (the new audit
            # process, or with standbys its next standby): its
            # registration waits.
            before = self.g.kernel("audit")
            os.kill(before["pid"], signal.SIGKILL)
            self.g.wait_for(lambda: "kernel audit: the trust kernel does not answer its "
                            "registration" in self.g.log(), timeout=scaled(20),
                            message="a registration while trust is down")
            cur = self.g.wait_kernel(
                "audit", lambda k: k["state"] == "ready" and k["pid"] != before["pid"]
                and (not before["standby_pid"] or k["standby_pid"] not in
                     (None, before["standby_pid"])), timeout=scaled(20))
            late = cur["standby_pid"] if before["standby_pid"] else cur["pid"]
        finally:
            st, _, out = self.g.http("POST", "/kernel-ports/trust/start")
            self.assertEqual(st, 202, out)
        self.g.wait_kernel("trust", lambda k: k["state"] == "ready", timeout=scaled(20))
        # ... and is registered once trust is back.
        self.g.wait_for(lambda: "kernel audit: registered with the trust kernel after"
                        in self.g.log(), timeout=scaled(15), message="the registration retried")
        # It attests (a standby when it takes over).
        if before["standby_pid"]:
            os.kill(self.g.kernel("audit")["pid"], signal.SIGKILL)

        def attested():
            st, _, out = self.g.http("GET", "/trust/workloads")
            return st == 200 and any(w["name"] == "audit" and w["pid"] == late
                                     for w in out["workloads"])
        self.g.wait_for(attested, timeout=scaled(20), message="audit's late process attested")
        # The new process verifies SVIDs and carries its own again.
        self.g.wait_for(lambda: self.event("crypto", self.svid("crypto"))[0] == 201,
                        timeout=scaled(15), message="a call to the new audit process")

    def test_z_expired_svid_refused(self):
        # The 10 s SVID made at the start: valid then, refused once expired.
        self.assertEqual(self.short_status, 201)
        self.g.wait_for(lambda: time.time() > self.short_exp + 1, timeout=scaled(20),
                        interval=0.2)
        r = jose(self.bundle(), [{"token": self.short, "audience": AUDIT_ID}])["results"][0]
        self.assertFalse(r["ok"], r)
        self.assertEqual(r["error"], "ERR_JWT_EXPIRED")
        st, _, out = self.event("crypto", self.short)
        self.assertEqual(st, 401, out)
        self.assertEqual(out["error"]["code"], "invalid_svid")
        self.assertIn("expired", out["error"]["message"])


# Probes every 100 ms; the watchdog must not act first.
FAST = {"health_interval_ms": 100, "health_timeout_ms": 200, "watchdog_ms": 600000}


class TrustHealedFirst(GraceTestCase):
    def test_trust_healed_before_the_others(self):
        # state_machine turns unhealthy first (2 failed probes), while trust
        # is still degraded (4 needed): its heal waits for trust's.
        with GraceServer(kernels={"trust": dict(FAST, health_failures=4),
                                  "state_machine": dict(FAST, health_failures=2)}) as g:
            sm, tr = g.kernel("state_machine")["pid"], g.kernel("trust")["pid"]
            stop_process(self, sm)
            stop_process(self, tr)
            for name, old in (("trust", tr), ("state_machine", sm)):
                g.wait_kernel(name, lambda k, old=old: k["state"] == "ready" and k["pid"] != old,
                              timeout=scaled(20))
            g.wait_for(lambda: guardian_kernel(g, "state_machine")["state"] == "ready")
            g.wait_log("state_machine unhealthy after 2 failed probes: healed after the "
                       "trust kernel")
            incs = {}
            for i in incidents(g):
                incs.setdefault(i["component"], []).append(i)
            trust, other = incs["trust"][-1], incs["state_machine"][-1]
            self.assertGreaterEqual(other["started_ms"], trust["finished_ms"], (trust, other))


if __name__ == "__main__":
    unittest.main()
