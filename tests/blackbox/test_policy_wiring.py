"""The API at :8000 decided by the policy kernel, beyond the route walk
(test_policy_routes.py) and failing closed (test_policy_failclosed.py):

- decisions are cached, and a change to the policy set, to the entity
  store or to a user's role takes effect at once;
- calls between kernels are decided by the callee with the policy: the
  calls the code makes keep working, another is refused (403
  call_forbidden) until a policy allows it;
- API tokens: scoped, hashed at rest, listed with their last use,
  revocable, gone with their user, their scopes policy attributes (and the
  role table honours the scopes too);
- `grace policy reset` restores the default set offline after a policy
  locked every admin out, and is an audit event at the next start."""

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import GRACE_BIN, GraceServer, GraceTestCase, scaled  # noqa: E402

BOB, BOB_PW = "bob", "bob-password-12"
CAROL, CAROL_PW = "carol", "carol-password-1"
SET = "/kernels/policy/policy-sets/default"


def bearer(token):
    return {"Authorization": "Bearer " + token}


def metric(g, name):
    st, _, body = g.http("GET", "/metrics", auth=False)
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


class Versions(GraceTestCase):
    """Cached decisions, and changes that take effect at once."""

    @classmethod
    def setUpClass(cls):
        cls.g = GraceServer(kernels={"policy": {}, "librarian": {}})
        try:
            cls.g.start()
            cls.g.create_user(BOB, BOB_PW)
        except BaseException:
            cls.g.dump_log()
            cls.g.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.g.close()

    def bob_status(self, path="/guardian/status"):
        return self.g.http("GET", path, headers=bearer(self.g.login(BOB, BOB_PW)))[0]

    def test_unchanged_decisions_cost_no_round_trip(self):
        token = bearer(self.g.login(BOB, BOB_PW))
        self.assertEqual(self.g.http("GET", "/guardian/status", headers=token)[0], 200)
        hits, batches = metric(self.g, 'grace_policy_decisions_total{source="cache"}'), \
            metric(self.g, "grace_policy_batches_total")
        for _ in range(20):
            self.assertEqual(self.g.http("GET", "/guardian/status", headers=token)[0], 200)
        self.assertGreaterEqual(metric(self.g, 'grace_policy_decisions_total{source="cache"}'),
                                hits + 20)
        self.assertEqual(metric(self.g, "grace_policy_batches_total"), batches)

    def test_a_policy_change_takes_effect_at_once(self):
        self.g.set_test_policy(None)
        self.assertEqual(self.bob_status(), 200)
        self.assertEqual(self.bob_status(), 200)  # cached now
        self.g.set_test_policy('@id("no-bob")\nforbid (principal == User::"bob", action, resource);')
        self.assertEqual(self.bob_status(), 403)  # no wait: the very next request
        self.assertEqual(self.g.http("GET", "/guardian/status")[0], 200)  # admin: not bob
        self.g.set_test_policy(None)
        self.assertEqual(self.bob_status(), 200)

    def test_an_entity_change_takes_effect_at_once(self):
        # A policy that reads the entity store.
        self.g.set_test_policy('@id("lockdown")\nforbid (principal in Role::"user", action, resource)\n'
                         '  when { Flag::"lockdown".on };')
        flag = lambda on: [{"uid": {"type": "Flag", "id": "lockdown"}, "attrs": {"on": on}, "parents": []}]
        # Through :8000.
        self.assertEqual(self.g.http("POST", "/kernels/policy/entities", flag(False))[0], 200)
        self.assertEqual(self.bob_status(), 200)
        self.assertEqual(self.g.http("POST", "/kernels/policy/entities", flag(True))[0], 200)
        self.assertEqual(self.bob_status(), 403)
        self.assertEqual(self.g.http("POST", "/kernels/policy/entities", flag(False))[0], 200)
        self.assertEqual(self.bob_status(), 200)
        # Straight to the policy kernel's port: the version watch brings it.
        st, _, _ = self.g.kernel_http("policy", "POST", "/entities", flag(True))
        self.assertEqual(st, 200)
        self.g.wait_for(lambda: self.bob_status() == 403, scaled(3), message="the watch")
        self.g.kernel_http("policy", "POST", "/entities", flag(False))
        self.g.wait_for(lambda: self.bob_status() == 200, scaled(3), message="the watch")
        self.g.set_test_policy(None)

    def test_a_role_change_takes_effect_at_once(self):
        self.g.create_user("dora", "dora-password-1")
        dora = bearer(self.g.login("dora", "dora-password-1"))
        self.assertEqual(self.g.http("GET", "/auth/users", headers=dora)[0], 403)
        self.assertEqual(self.g.http("GET", "/auth/users", headers=dora)[0], 403)  # cached
        self.assertEqual(self.g.http("DELETE", "/auth/users/dora")[0], 200)
        self.g.create_user("dora", "dora-password-1", role="admin")
        dora = bearer(self.g.login("dora", "dora-password-1"))
        self.assertEqual(self.g.http("GET", "/auth/users", headers=dora)[0], 200)


class KernelCalls(GraceTestCase):
    """Calls between kernels, decided by the callee."""

    @classmethod
    def setUpClass(cls):
        cls.g = GraceServer(kernels={"policy": {}, "librarian": {}, "audit": {},
                                     "immutable_log": {}, "message_bus": {}})
        try:
            cls.g.start()
        except BaseException:
            cls.g.dump_log()
            cls.g.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.g.close()

    def events(self, query):
        st, _, out = self.g.http("GET", "/kernels/audit/events?" + query)
        return out.get("events", []) if st == 200 else []

    def call(self, kernel, method, path, caller, body=None):
        headers = {"X-Grace-Caller": caller} if caller is not None else {}
        return self.g.kernel_http(kernel, method, path, body, headers=headers)

    def test_the_calls_the_code_makes_keep_working(self):
        g = self.g
        g.create_user(BOB, BOB_PW)
        bob = bearer(g.login(BOB, BOB_PW))  # grace -> audit: the login event
        st, _, doc = g.http("POST", "/librarian/documents", {"title": "t", "body": "words here"},
                            headers=bob)
        self.assertEqual(st, 201, doc)
        st, _, out = g.http("PUT", "/kernels/policy/policy-sets/scratch",
                            {"policies": "permit(principal, action, resource);"})
        self.assertEqual(st, 201, out)
        # policy -> audit: its change; grace -> audit: the login.
        g.wait_for(lambda: [e for e in self.events("action=policy.set.put")
                            if e["resource"] == "policy-set/scratch" and e["actor"] == g.first_admin()[0]],
                   scaled(15), message="the policy kernel's change in the audit trail")
        g.wait_for(lambda: self.events("action=auth.login&actor=bob"), scaled(15),
                   message="the login in the audit trail")
        # audit -> immutable_log: appended (a log index), and proven.
        g.wait_for(lambda: all(e["log_index"] is not None for e in self.events("limit=1000")),
                   scaled(15), message="every event in the immutable log")
        ev = self.events("action=auth.login&actor=bob")[0]
        st, _, proof = g.http("GET", "/kernels/audit/events/%d/proof" % ev["id"])
        self.assertEqual(st, 200, proof)
        # grace -> message_bus: kernel state changes published.
        st, _, subjects = g.http("GET", "/bus/subjects")
        self.assertEqual(st, 200, subjects)
        self.assertIn("grace.kernel.", json.dumps(subjects))
        # grace -> librarian: a deleted user's documents are released.
        self.assertEqual(g.http("DELETE", "/auth/users/bob")[0], 200)
        g.wait_for(lambda: g.http("GET", "/librarian/documents/%d" % doc["id"])[2].get("owner", 1) is None,
                   scaled(15), message="bob's document released")

    def test_a_call_the_policy_does_not_allow_is_refused(self):
        entry = {"data": "aGVsbG8="}
        st, _, out = self.call("immutable_log", "POST", "/entries", "librarian", entry)
        self.assertEqual((st, out["error"]["code"]), (403, "call_forbidden"), out)
        self.assertIn("librarian", out["error"]["message"])
        self.assertIn("POST /entries", out["error"]["message"])
        self.assertEqual(self.call("immutable_log", "GET", "/sth", "audit")[0], 200)
        self.assertEqual(self.call("immutable_log", "GET", "/verify", "audit")[0], 403)
        self.assertEqual(self.call("audit", "GET", "/events", "grace")[0], 403)
        self.assertEqual(self.call("librarian", "GET", "/search?query=x", "grace")[0], 200)
        self.assertEqual(self.call("librarian", "POST", "/documents", "grace",
                                   {"title": "t", "body": "b"})[0], 403)
        st, _, out = self.call("librarian", "GET", "/search?query=x", "Not A Name")
        self.assertEqual((st, out["error"]["code"]), (403, "call_forbidden"))
        # The operator (the token, no caller name) is not decided.
        self.assertEqual(self.call("immutable_log", "GET", "/verify", None)[0], 200)
        # The policy kernel decides calls to itself; asking is open to all.
        self.assertEqual(self.call("policy", "PUT", "/policy-sets/x", "librarian",
                                   {"policies": ""})[0], 403)
        self.assertEqual(self.call("policy", "POST", "/authorize", "librarian",
                                   {"principal": 'User::"a"', "action": 'Action::"a"',
                                    "resource": 'Doc::"a"'})[0], 200)
        # A policy that allows it: the callee learns of it and lets it through.
        st, _, cur = self.g.http("GET", SET)
        text = cur["text"]
        allow = ('\n@id("librarian-verifies")\npermit (principal == Kernel::"librarian",'
                 ' action == Action::"GET /verify", resource == Kernel::"immutable_log");\n')
        self.assertEqual(self.g.http("PUT", SET, {"policies": text + allow})[0], 200)
        self.g.wait_for(lambda: self.call("immutable_log", "GET", "/verify", "librarian")[0] == 200,
                        scaled(5), message="the callee learns of the new policy")
        self.assertEqual(self.g.http("PUT", SET, {"policies": text})[0], 200)
        self.g.wait_for(lambda: self.call("immutable_log", "GET", "/verify", "librarian")[0] == 403,
                        scaled(5), message="and of its removal")


class Tokens(GraceTestCase):
    """API tokens, with the policy kernel deciding and with the role table."""

    def run_tokens(self, g):
        g.create_user(BOB, BOB_PW)
        g.create_user(CAROL, CAROL_PW)
        bob = bearer(g.login(BOB, BOB_PW))
        carol = bearer(g.login(CAROL, CAROL_PW))
        st, hdrs, made = g.http("POST", "/auth/tokens",
                                {"name": "grafana", "scopes": ["guardian:read", "librarian:read"]},
                                headers=bob)
        self.assertEqual(st, 201, made)
        self.assertEqual(hdrs.get("Cache-Control"), "no-store")
        secret = made["token"]
        self.assertTrue(secret.startswith("grace_") and len(secret) > 40, made)
        self.assertEqual((made["user"], made["name"], made["scopes"]),
                         (BOB, "grafana", ["guardian:read", "librarian:read"]))
        tok = bearer(secret)
        # Within its scopes, as bob; nothing else.
        self.assertEqual(g.http("GET", "/guardian/status", headers=tok)[0], 200)
        self.assertEqual(g.http("GET", "/librarian/search?query=x", headers=tok)[0], 200)
        for method, path, body in [("GET", "/memory/tables", None),
                                   ("POST", "/librarian/documents", {"title": "t", "body": "b"}),
                                   ("GET", "/auth/tokens", None), ("GET", "/auth/me", None)]:
            st, _, out = g.http(method, path, body, headers=tok)
            self.assertEqual((st, out["error"]["code"]), (403, "forbidden"), (path, out))
        # A token names no cookie-borne session: sent as a cookie it is nobody's.
        st, _, _ = g.http("GET", "/guardian/status", headers={"Cookie": "grace_session=" + secret},
                          auth=False)
        self.assertEqual(st, 401)
        # Listed with its last use, never with its secret.
        st, _, out = g.http("GET", "/auth/tokens", headers=bob)
        self.assertEqual(st, 200, out)
        [t] = out["tokens"]
        self.assertEqual((t["id"], t["name"], t["user"], t["revoked_ms"]), (made["id"], "grafana", BOB, None))
        self.assertIsNotNone(t["last_used_ms"])
        self.assertGreaterEqual(t["last_used_ms"], made["created_ms"])
        self.assertNotIn(secret, json.dumps(out))
        self.assertNotIn(secret[6:], json.dumps(out))
        # Hashed at rest.
        db = sqlite3.connect(os.path.join(g.data_dir, "grace.db"))
        try:
            rows = db.execute("SELECT * FROM api_tokens").fetchall()
            (stored,) = db.execute("SELECT token_hash FROM api_tokens WHERE id = ?",
                                   (made["id"],)).fetchone()
        finally:
            db.close()
        self.assertNotIn(secret[6:], json.dumps(rows))
        self.assertEqual(stored, hashlib.sha256(secret.encode()).hexdigest())
        # For another user: an admin only.
        st, _, out = g.http("POST", "/auth/tokens", {"name": "x", "scopes": ["guardian:read"],
                                                     "user": CAROL}, headers=bob)
        self.assertEqual((st, out["error"]["code"]), (403, "forbidden"))
        st, _, for_carol = g.http("POST", "/auth/tokens", {"name": "otel", "scopes": ["telemetry:write"],
                                                           "user": CAROL})
        self.assertEqual((st, for_carol["user"]), (201, CAROL), for_carol)
        st, _, mine = g.http("GET", "/auth/tokens", headers=carol)
        self.assertEqual([t["id"] for t in mine["tokens"]], [for_carol["id"]])
        st, _, every = g.http("GET", "/auth/tokens")
        self.assertEqual({t["id"] for t in every["tokens"]}, {made["id"], for_carol["id"]})
        # Bad input changes nothing.
        for body in [{"name": "x", "scopes": []}, {"name": "x", "scopes": ["read"]},
                     {"name": "x", "scopes": ["Metrics:read"]}, {"name": "", "scopes": ["a:b"]},
                     {"name": "x", "scopes": ["a:b"], "colour": 1},
                     {"name": "x", "scopes": ["a:b"], "expires_in_s": 1}]:
            st, _, out = g.http("POST", "/auth/tokens", body, headers=bob)
            self.assertEqual((st, out["error"]["code"]), (400, "invalid"), body)
        self.assertEqual(len(g.http("GET", "/auth/tokens")[2]["tokens"]), 2)
        # Revoked: by its owner (another user cannot even see it).
        self.assertEqual(g.http("DELETE", "/auth/tokens/" + made["id"], headers=carol)[0], 404)
        st, _, out = g.http("DELETE", "/auth/tokens/" + made["id"], headers=bob)
        self.assertEqual((st, out["revoked"]), (200, True), out)
        st, _, out = g.http("GET", "/guardian/status", headers=tok)
        self.assertEqual((st, out["error"]["code"]), (401, "unauthorized"))
        self.assertIsNotNone(g.http("GET", "/auth/tokens", headers=bob)[2]["tokens"][0]["revoked_ms"])
        self.assertEqual(g.http("DELETE", "/auth/tokens/" + made["id"], headers=bob)[0], 404)
        # Gone with its user.
        st, _, again = g.http("POST", "/auth/tokens", {"name": "g2", "scopes": ["guardian:read"]},
                              headers=bob)
        self.assertEqual(g.http("GET", "/guardian/status", headers=bearer(again["token"]))[0], 200)
        self.assertEqual(g.http("DELETE", "/auth/users/" + BOB)[0], 200)
        self.assertEqual(g.http("GET", "/guardian/status", headers=bearer(again["token"]))[0], 401)
        return for_carol

    def test_tokens_with_the_policy_kernel(self):
        with GraceServer(kernels={"policy": {}, "librarian": {}}) as g:
            self.run_tokens(g)
            # Scopes are attributes of the token's principal: a policy reads them.
            st, _, t = g.http("POST", "/auth/tokens", {"name": "both",
                                                       "scopes": ["guardian:read", "librarian:read"]})
            st, _, u = g.http("POST", "/auth/tokens", {"name": "one", "scopes": ["guardian:read"]})
            self.assertEqual(g.http("GET", "/guardian/status", headers=bearer(t["token"]))[0], 200)
            st, _, cur = g.http("GET", SET)
            rule = ('\n@id("no-library-tokens")\nforbid (principal is ApiToken, action, resource)\n'
                    '  when { principal.scopes.contains(Action::"librarian.read") };\n')
            self.assertEqual(g.http("PUT", SET, {"policies": cur["text"] + rule})[0], 200)
            self.assertEqual(g.http("GET", "/guardian/status", headers=bearer(t["token"]))[0], 403)
            self.assertEqual(g.http("GET", "/guardian/status", headers=bearer(u["token"]))[0], 200)

    def test_tokens_with_the_role_table(self):
        with GraceServer(kernels={"librarian": {}}, config={"policy": {"authorizer": "table"}}) as g:
            self.run_tokens(g)


class Reset(GraceTestCase):
    """A policy that locks every admin out, and `grace policy reset`."""

    def reset(self, g):
        return subprocess.run([GRACE_BIN, "policy", "reset", "--config", g.config_path,
                               "--data-dir", g.data_dir, "--port-offset", str(g.offset)],
                              capture_output=True, text=True, timeout=60)

    def test_reset_restores_the_default_set_offline(self):
        with GraceServer(kernels={"policy": {}, "audit": {}, "immutable_log": {}}) as g:
            self.assertEqual(g.http("GET", "/auth/me")[0], 200)
            st, _, out = g.http("DELETE", SET)
            self.assertEqual(st, 200, out)
            # Locked out: a deleted set denies everything, the repair included.
            self.assertEqual(g.http("GET", "/auth/me")[0], 403)
            st, _, out = g.http("PUT", SET, {"policies": "permit(principal, action, resource);"})
            self.assertEqual(st, 403, out)
            # Not while the policy kernel runs.
            p = self.reset(g)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn("running", p.stderr)
            g.stop()
            p = self.reset(g)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("restored", p.stdout)
            g.start()
            g.login()
            self.assertEqual(g.http("GET", "/auth/me")[0], 200)
            default = subprocess.run([GRACE_BIN, "policy", "default"], capture_output=True,
                                     text=True, check=True, timeout=30).stdout
            st, _, cur = g.http("GET", SET)
            self.assertEqual((st, cur["text"]), (200, default))
            # An audit event, delivered at this start.
            g.wait_for(lambda: [e for e in g.http("GET", "/kernels/audit/events?action=policy.set.put")[2]
                                .get("events", []) if e["actor"] == "grace policy reset"],
                       scaled(15), message="the reset in the audit trail")
            deleted = g.http("GET", "/kernels/audit/events?action=policy.set.delete")[2]["events"]
            self.assertEqual([e["actor"] for e in deleted], [g.first_admin()[0]])


if __name__ == "__main__":
    unittest.main()
