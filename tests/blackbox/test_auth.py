"""Authentication and authorization on :8000, and no way around them
through the kernel ports (issue 5's checks)."""

import os
import time
import unittest

import harness
from harness import GraceServer, GraceTestCase, http_request

FAST_HASH = {"auth": {"argon2_mem_kib": 19456, "login_failures_max": 10}}
KERNELS = {"librarian": {}, "trust": {}}


def bearer(token):
    return {"Authorization": "Bearer " + token}


class Auth(GraceTestCase):
    def test_routes_need_a_token_and_roles_are_enforced(self):
        with GraceServer(config=FAST_HASH, kernels=KERNELS) as g:
            # Public: health, metrics, login. Everything else: 401 without a token.
            self.assertEqual(g.http("GET", "/health", auth=False)[0], 200)
            self.assertEqual(g.http("GET", "/metrics", auth=False)[0], 200)
            for method, path in (("GET", "/kernel-ports"), ("GET", "/auth/me"),
                                 ("GET", "/librarian/search?query=x"),
                                 ("POST", "/kernel-ports/trust/restart"),
                                 ("GET", "/memory/tables"), ("GET", "/chat/sessions"),
                                 ("GET", "/no/such/route")):
                st, hdrs, body = g.http(method, path, auth=False)
                self.assertEqual(st, 401, "%s %s without a token: %s" % (method, path, st))
                self.assertEqual(body["error"]["code"], "unauthorized")
            st, _, _ = g.http("GET", "/auth/me", headers=bearer("not-a-real-token"))
            self.assertEqual(st, 401)

            g.create_user("alice", "alice-password-1")
            alice = g.login("alice", "alice-password-1")
            st, _, me = g.http("GET", "/auth/me", headers=bearer(alice))
            self.assertEqual((st, me["name"], me["role"]), (200, "alice", "user"))
            # A user calling admin routes: 403, and nothing happened.
            pid = g.kernel("trust")["pid"]
            for method, path, body in (("POST", "/kernel-ports/trust/restart", None),
                                       ("POST", "/network-healer/heal",
                                        {"component_name": "trust"}),
                                       ("GET", "/auth/users", None),
                                       ("POST", "/auth/users",
                                        {"username": "mallory", "password": "x" * 12}),
                                       ("GET", "/kernels/trust/health", None)):
                st, _, _ = g.http(method, path, body, headers=bearer(alice))
                self.assertEqual(st, 403, "%s %s as a user: %s" % (method, path, st))
            self.assertEqual(g.kernel("trust")["pid"], pid)
            # What a user may do, a user can.
            self.assertEqual(g.http("GET", "/kernel-ports", headers=bearer(alice))[0], 200)
            self.assertEqual(g.http("GET", "/librarian/search?query=x",
                                    headers=bearer(alice))[0], 200)

    def test_logout_and_password_change_kill_tokens(self):
        with GraceServer(config=FAST_HASH, kernels=KERNELS) as g:
            g.create_user("bob", "bob-password-12")
            t1 = g.login("bob", "bob-password-12")
            t2 = g.login("bob", "bob-password-12")
            self.assertEqual(g.http("GET", "/auth/me", headers=bearer(t1))[0], 200)
            self.assertEqual(g.http("POST", "/auth/logout", headers=bearer(t1))[0], 200)
            self.assertEqual(g.http("GET", "/auth/me", headers=bearer(t1))[0], 401)
            self.assertEqual(g.http("GET", "/auth/me", headers=bearer(t2))[0], 200)
            # A changed password ends every session of that user at once.
            st, _, _ = g.http("POST", "/auth/users/bob/password",
                              {"password": "bob-password-new"})
            self.assertEqual(st, 200)
            self.assertEqual(g.http("GET", "/auth/me", headers=bearer(t2))[0], 401)
            self.assertEqual(http_request(g.api_port, "POST", "/auth/login",
                                          {"username": "bob",
                                           "password": "bob-password-12"})[0], 401)
            g.login("bob", "bob-password-new")
            # A user changes their own password only with the current one.
            t3 = g.login("bob", "bob-password-new")
            st, _, _ = g.http("POST", "/auth/users/bob/password",
                              {"password": "bob-password-3rd"}, headers=bearer(t3))
            self.assertEqual(st, 400)
            st, _, _ = g.http("POST", "/auth/users/bob/password",
                              {"password": "bob-password-3rd",
                               "current_password": "wrong-password"}, headers=bearer(t3))
            self.assertEqual(st, 403)

    def test_passwords_are_argon2id_and_the_token_is_not_stored(self):
        with GraceServer(config=FAST_HASH, kernels=KERNELS) as g:
            g.create_user("carol", "carol-password-1")
            token = g.login("carol", "carol-password-1")
            # grace.db, or PostgreSQL under GRACE_TEST_STORE=postgresql
            hashes = dict(g.store_rows("SELECT name, password_hash FROM users"))
            stored = [r[0] for r in g.store_rows("SELECT token_hash FROM sessions")]
            self.assertIn("carol", hashes)  # read where the store is
            for name, h in hashes.items():
                self.assertTrue(h.startswith("$argon2id$"), (name, h))
                m = int(h.split("m=")[1].split(",")[0])
                self.assertGreaterEqual(m, 19456, "below OWASP's 19 MiB: %s" % h)
            self.assertNotIn("carol-password-1", str(hashes))
            self.assertNotIn(token, stored)

    def test_repeated_failed_logins_are_slowed_then_refused(self):
        with GraceServer(config=FAST_HASH, kernels=KERNELS) as g:
            g.create_user("dave", "dave-password-1")
            times, statuses = [], []
            for _ in range(11):
                t0 = time.monotonic()
                st, hdrs, _ = http_request(g.api_port, "POST", "/auth/login",
                                           {"username": "dave", "password": "wrong-guess!"},
                                           timeout=harness.scaled(30))
                times.append(time.monotonic() - t0)
                statuses.append(st)
            self.assertEqual(statuses[:10], [401] * 10)
            # The 11th is refused outright, with a Retry-After.
            self.assertEqual(statuses[10], 429)
            # Failures past the first few were answered later and later.
            self.assertGreater(times[9], times[0] + 1.0, times)
            # Even the right password waits out the block.
            st, hdrs, _ = http_request(g.api_port, "POST", "/auth/login",
                                       {"username": "dave", "password": "dave-password-1"})
            self.assertEqual(st, 429)
            self.assertIn("retry-after", {k.lower() for k in hdrs})

    def test_kernel_ports_refuse_callers_without_the_internal_token(self):
        with GraceServer(config=FAST_HASH, kernels=KERNELS) as g:
            port = g.kernel_port("librarian")
            # Standard endpoints stay open for probes and scrapers.
            self.assertEqual(http_request(port, "GET", "/health")[0], 200)
            self.assertEqual(http_request(port, "GET", "/metrics")[0], 200)
            for method, path, body in (("GET", "/search?query=x", None),
                                       ("POST", "/documents", {"title": "t", "body": "b"}),
                                       ("GET", "/documents/1", None)):
                st, _, b = http_request(port, method, path, body)
                self.assertEqual(st, 401, "%s %s on the kernel port: %s" % (method, path, st))
                st, _, b = http_request(port, method, path, body,
                                        {"X-Grace-Internal-Token": "0" * 64})
                self.assertEqual(st, 401)
            # The token file is the kernels' only: mode 0600.
            mode = os.stat(os.path.join(g.data_dir, "internal.token")).st_mode & 0o777
            self.assertEqual(mode, 0o600)
            # With it (the gateway's way) the same route works.
            self.assertEqual(g.kernel_http("librarian", "GET", "/search?query=x")[0], 200)

    def test_host_header_allow_list(self):
        with GraceServer(config=FAST_HASH, kernels=KERNELS) as g:
            for host in ("evil.example", "127.0.0.1.nip.io:%d" % g.api_port):
                st, _, body = g.http("GET", "/health", headers={"Host": host}, auth=False)
                self.assertEqual(st, 421, host)
            for host in ("127.0.0.1:%d" % g.api_port, "localhost:%d" % g.api_port,
                         "localhost"):
                st, _, _ = g.http("GET", "/health", headers={"Host": host}, auth=False)
                self.assertEqual(st, 200, host)

    def test_self_registration_is_off_unless_configured(self):
        with GraceServer(config=FAST_HASH, kernels=KERNELS) as g:
            st, _, _ = g.http("POST", "/auth/register",
                              {"username": "eve", "password": "eve-password-1"}, auth=False)
            self.assertEqual(st, 403)
        cfg = {"auth": dict(FAST_HASH["auth"], self_registration="true")}
        with GraceServer(config=cfg, kernels=KERNELS) as g:
            st, _, body = g.http("POST", "/auth/register",
                                 {"username": "eve", "password": "eve-password-1"}, auth=False)
            self.assertEqual((st, body["role"]), (201, "user"))
            # Registration never makes an admin.
            st, _, _ = g.http("POST", "/auth/register",
                              {"username": "eve2", "password": "eve-password-1",
                               "role": "admin"}, auth=False)
            self.assertEqual(st, 201)
            t = g.login("eve2", "eve-password-1")
            self.assertEqual(g.http("GET", "/auth/me", headers=bearer(t))[2]["role"], "user")


if __name__ == "__main__":
    unittest.main()
