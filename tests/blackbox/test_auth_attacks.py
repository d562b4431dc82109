"""Attacks on logins and cookie sessions (issue 8, findings 4, 5 and 6).

4. The per-account lockout must not be evictable (names that collided in
   the old hashed limiter table erased a locked account's counter), and
   every loopback address is one source.
5. Failed logins for unknown names from loopback must not lock every local
   client out: the source is slowed (a bounded delay), never refused, and
   only an account's own lock refuses its correct password.
6. A cross-site request carrying the session cookie changes nothing: state
   changes with the cookie need an allowed Origin and a JSON body.
"""

import http.client
import json
import threading
import time
import unittest

import harness
from harness import GraceServer, GraceTestCase, scaled

KERNELS = {"trust": {}}
QUICK_LOCK = {"auth": {"argon2_mem_kib": 19456, "login_failures_max": 3}}
TEN = {"auth": {"argon2_mem_kib": 19456, "login_failures_max": 10}}

# The source delay's cap (LOGIN_SOURCE_DELAY_MAX_MS) and what an answer may
# take on top of it (one Argon2id at the test's cost, a busy machine).
SOURCE_DELAY_MAX_S = 2.0
SLACK_S = 3.0


def request(port, method, path, body=None, headers=None, source="127.0.0.1", timeout=None):
    """One request from `source` (a loopback address to bind) to
    127.0.0.1:port: (status, headers, parsed body, seconds taken)."""
    hdrs = dict(headers or {})
    data = body
    if isinstance(body, (dict, list)):
        data = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    elif isinstance(body, str):
        data = body.encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, source_address=(source, 0),
                                      timeout=timeout or scaled(30))
    t0 = time.monotonic()
    try:
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        raw = resp.read()
        return (resp.status, resp.headers, harness.parse_body(resp.headers, raw),
                time.monotonic() - t0)
    finally:
        conn.close()


def login(g, name, password, source="127.0.0.1"):
    return request(g.api_port, "POST", "/auth/login",
                   {"username": name, "password": password}, source=source)


def fnv1a(s):
    h = 2166136261
    for c in s.encode():
        h = ((h ^ c) * 16777619) & 0xFFFFFFFF
    return h


def colliding_names(victim, n, slots=4096):
    """Names whose key shared the victim's slot in the old limiter (FNV-1a
    of "u:NAME" modulo its 4096 slots)."""
    want = fnv1a("u:" + victim) % slots
    out, i = [], 0
    while len(out) < n:
        name = "x%d" % i
        if fnv1a("u:" + name) % slots == want:
            out.append(name)
        i += 1
    return out


class LoginThrottling(GraceTestCase):
    def test_colliding_names_cannot_unlock_a_locked_account(self):
        with GraceServer(config=QUICK_LOCK, kernels=KERNELS) as g:
            g.create_user("dave", "dave-password-1")
            g.create_user("erin", "erin-password-1")
            for _ in range(3):
                self.assertEqual(login(g, "dave", "wrong-guess!", "127.0.0.2")[0], 401)
            st, hdrs, body, _ = login(g, "dave", "dave-password-1", "127.0.0.2")
            self.assertEqual((st, body["error"]["code"]), (429, "too_many_attempts"))
            self.assertGreater(int(hdrs["Retry-After"]), 0)

            # Twelve names that shared dave's slot, each failing once, each
            # from an address of its own (all of them loopback), at once.
            names = colliding_names("dave", 12)
            statuses = {}

            def fail(i, name):
                statuses[name] = login(g, name, "wrong-guess!", "127.0.0.%d" % (10 + i))[0]
            threads = [threading.Thread(target=fail, args=(i, n)) for i, n in enumerate(names)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual(set(statuses.values()), {401}, statuses)

            # dave stays locked, from any address, even with his password.
            st, hdrs, body, _ = login(g, "dave", "dave-password-1", "127.0.0.3")
            self.assertEqual(st, 429, body)
            self.assertIn("Retry-After", hdrs)
            # Another account is not touched by dave's lock.
            self.assertEqual(login(g, "erin", "erin-password-1", "127.0.0.3")[0], 200)

            # The lock is kept in grace.db: a restart does not lift it.
            g.stop()
            g.start()
            st, _, body, _ = login(g, "dave", "dave-password-1")
            self.assertEqual(st, 429, body)
            self.assertEqual(login(g, "erin", "erin-password-1")[0], 200)

    def test_every_loopback_address_is_one_source(self):
        with GraceServer(config=TEN, kernels=KERNELS) as g:
            # Failures from 127.0.0.1 for names that do not exist ...
            for i in range(8):
                self.assertEqual(login(g, "nobody%d" % i, "wrong-guess!", "127.0.0.1")[0], 401)
            # ... slow the next attempt from 127.0.0.2 just the same: it is
            # the same machine. (Its own address would have started afresh.)
            st, _, _, took = login(g, "nobody-else", "wrong-guess!", "127.0.0.2")
            self.assertEqual(st, 401)
            self.assertGreaterEqual(took, SOURCE_DELAY_MAX_S * 0.75)
            # Bounded: slowed, not refused.
            self.assertLess(took, SOURCE_DELAY_MAX_S + scaled(SLACK_S))


class LoginDenialOfService(GraceTestCase):
    def test_failures_for_unknown_names_do_not_lock_out_the_admin(self):
        with GraceServer(config=TEN, kernels=KERNELS) as g:
            admin, password = g.first_admin()
            for i in range(10):
                st, _, _, _ = login(g, "ghost%d" % i, "wrong-guess!")
                self.assertEqual(st, 401)
            # The admin's right password from the same machine works, late
            # by the source's delay at most.
            st, hdrs, body, took = login(g, admin, password)
            self.assertEqual(st, 200, body)
            self.assertLess(took, SOURCE_DELAY_MAX_S + scaled(SLACK_S))
            # And so does any other address on loopback.
            self.assertEqual(login(g, admin, password, "127.0.0.9")[0], 200)

    def test_a_locked_account_stays_locked_while_others_log_in(self):
        with GraceServer(config=QUICK_LOCK, kernels=KERNELS) as g:
            admin, password = g.first_admin()
            g.create_user("dave", "dave-password-1")
            for _ in range(3):
                self.assertEqual(login(g, "dave", "wrong-guess!")[0], 401)
            for _ in range(2):
                self.assertEqual(login(g, admin, password)[0], 200)
                st, hdrs, body, _ = login(g, "dave", "dave-password-1")
                self.assertEqual((st, body["error"]["code"]), (429, "too_many_attempts"))
                self.assertGreater(int(hdrs["Retry-After"]), 0)
            # An admin lifts the lock by setting a new password.
            st, _, _ = g.http("POST", "/auth/users/dave/password",
                              {"password": "dave-password-2"})
            self.assertEqual(st, 200)
            self.assertEqual(login(g, "dave", "dave-password-2")[0], 200)

    def test_a_current_password_check_is_no_way_around_the_lock(self):
        # With a session of dave's (stolen, say), guessing his password
        # through "change my password" counts like a login, and stops.
        with GraceServer(config=QUICK_LOCK, kernels=KERNELS) as g:
            g.create_user("dave", "dave-password-1")
            dave = {"Authorization": "Bearer " + g.login("dave", "dave-password-1")}
            change = {"password": "dave-password-2", "current_password": "wrong-guess!"}
            for _ in range(3):
                st, _, body = g.http("POST", "/auth/users/dave/password", change,
                                     headers=dave, timeout=scaled(30))
                self.assertEqual(st, 403, body)
            change["current_password"] = "dave-password-1"
            st, hdrs, body = g.http("POST", "/auth/users/dave/password", change, headers=dave)
            self.assertEqual((st, body["error"]["code"]), (429, "too_many_attempts"))
            self.assertIn("Retry-After", hdrs)
            self.assertEqual(login(g, "dave", "dave-password-1")[0], 429)

    def test_an_unknown_name_locks_like_an_account(self):
        # Otherwise 429 would tell which names exist.
        with GraceServer(config=QUICK_LOCK, kernels=KERNELS) as g:
            g.create_user("dave", "dave-password-1")
            for name in ("dave", "nobody"):
                for _ in range(3):
                    self.assertEqual(login(g, name, "wrong-guess!")[0], 401)
                st, hdrs, body, _ = login(g, name, "wrong-guess!")
                self.assertEqual((st, body["error"]["code"]), (429, "too_many_attempts"))
                self.assertIn("Retry-After", hdrs)


def cookie_of(headers):
    for k, v in headers.items():
        if k.lower() == "set-cookie" and v.startswith("grace_session="):
            return v.split(";")[0]
    raise AssertionError("no session cookie in %r" % (headers,))


class CrossSiteRequests(GraceTestCase):
    def setUp(self):
        self.g = GraceServer(config=TEN, kernels=KERNELS)
        self.g.__enter__()
        self.addCleanup(self.g.__exit__, None, None, None)
        self.admin, self.password = self.g.first_admin()
        st, hdrs, body, _ = login(self.g, self.admin, self.password)
        self.assertEqual(st, 200, body)
        self.cookie = cookie_of(hdrs)
        self.bearer = "Bearer " + body["token"]
        self.own = "http://127.0.0.1:%d" % self.g.api_port

    def cookie_call(self, method, path, body, **headers):
        headers = dict({"Cookie": self.cookie}, **headers)
        data = json.dumps(body) if body is not None else None
        return request(self.g.api_port, method, path, data, headers)

    def user_names(self):
        st, _, body, _ = request(self.g.api_port, "GET", "/auth/users",
                                 headers={"Authorization": self.bearer})
        self.assertEqual(st, 200)
        return {u["name"] for u in body["users"]}

    def test_cross_site_posts_with_the_cookie_change_nothing(self):
        g = self.g
        pid = g.kernel("trust")["pid"]
        attacks = [("POST", "/auth/users/%s/password" % self.admin,
                    {"password": "attacker-chose-this"}),
                   ("POST", "/auth/users",
                    {"username": "mallory", "password": "mallory-password", "role": "admin"}),
                   ("POST", "/kernel-ports/trust/stop", None),
                   ("DELETE", "/auth/users/%s" % self.admin, None)]
        evil = "http://localhost:9999"  # another port on this machine: same-site
        variants = [
            {"Content-Type": "text/plain", "Origin": evil},
            {"Content-Type": "text/plain", "Sec-Fetch-Site": "same-site"},
            {"Content-Type": "text/plain"},  # neither Origin nor Sec-Fetch-Site
            {"Content-Type": "application/json", "Origin": evil},
            {"Content-Type": "application/json", "Origin": "null"},
            {"Content-Type": "application/json", "Origin": "http://localhost"},  # port 80
            {"Content-Type": "text/plain", "Origin": self.own},  # right Origin, not JSON
            {"Content-Type": "application/x-www-form-urlencoded", "Origin": self.own},
        ]
        for method, path, body in attacks:
            for headers in variants:
                st, _, answer, _ = self.cookie_call(method, path, body, **headers)
                self.assertEqual(st, 403, (method, path, headers, answer))
                self.assertEqual(answer["error"]["code"], "csrf_rejected")
        # Nothing changed: the password, the users, the kernel.
        self.assertEqual(login(g, self.admin, self.password)[0], 200)
        self.assertNotIn("mallory", self.user_names())
        self.assertIn(self.admin, self.user_names())
        k = g.kernel("trust")
        self.assertEqual((k["state"], k["pid"]), ("ready", pid))
        # Reads with the cookie still work (a browser keeps the answer from
        # another origin's page).
        st, _, me, _ = self.cookie_call("GET", "/auth/me", None, Origin=evil)
        self.assertEqual((st, me["name"]), (200, self.admin))

    def test_same_origin_json_with_the_cookie_works(self):
        g = self.g
        js = {"Content-Type": "application/json; charset=utf-8", "Origin": self.own}
        st, _, body, _ = self.cookie_call(
            "POST", "/auth/users", {"username": "alice", "password": "alice-password-1"}, **js)
        self.assertEqual(st, 201, body)
        # Without an Origin, the browser's Sec-Fetch-Site says it is ours.
        st, _, body, _ = self.cookie_call(
            "POST", "/auth/users/alice/password", {"password": "alice-password-2"},
            **{"Content-Type": "application/json", "Sec-Fetch-Site": "same-origin"})
        self.assertEqual(st, 200, body)
        self.assertEqual(login(g, "alice", "alice-password-2")[0], 200)
        st, _, body, _ = self.cookie_call(
            "POST", "/kernel-ports/trust/stop", None,
            **{"Content-Type": "application/json", "Origin": "http://localhost:%d" % g.api_port})
        self.assertEqual(st, 202, body)
        g.wait_kernel("trust", lambda k: k["state"] == "stopped")
        st, _, body, _ = self.cookie_call("DELETE", "/auth/users/alice", None, **js)
        self.assertEqual(st, 200, body)
        self.assertNotIn("alice", self.user_names())
        st, hdrs, body, _ = self.cookie_call("POST", "/auth/logout", None, **js)
        self.assertEqual(st, 200, body)
        self.assertEqual(self.cookie_call("GET", "/auth/me", None)[0], 401)

    def test_bearer_requests_are_unchanged(self):
        g = self.g
        pid = g.kernel("trust")["pid"]
        st, _, body, _ = request(g.api_port, "POST", "/auth/users",
                                 json.dumps({"username": "bob", "password": "bob-password-1"}),
                                 {"Authorization": self.bearer, "Content-Type": "text/plain",
                                  "Origin": "http://localhost:9999"})
        self.assertEqual(st, 201, body)
        st, _, body, _ = request(g.api_port, "POST", "/kernel-ports/trust/restart", None,
                                 {"Authorization": self.bearer})
        self.assertEqual(st, 202, body)
        g.wait_kernel("trust", lambda k: k["state"] == "ready" and k["pid"] != pid)

    def test_cross_site_login_is_refused(self):
        g = self.g
        creds = json.dumps({"username": self.admin, "password": self.password})
        for headers in ({"Content-Type": "text/plain", "Origin": "http://localhost:9999"},
                        {"Content-Type": "text/plain", "Sec-Fetch-Site": "cross-site"},
                        {"Content-Type": "application/json", "Origin": "null"}):
            st, hdrs, body, _ = request(g.api_port, "POST", "/auth/login", creds, headers)
            self.assertEqual((st, body["error"]["code"]), (403, "csrf_rejected"), headers)
            self.assertNotIn("Set-Cookie", hdrs)
        # A page of our own, and a client that is no browser (curl -d sends
        # a form type and no Origin), log in as before.
        for headers in ({"Content-Type": "application/json", "Origin": self.own},
                        {"Content-Type": "application/x-www-form-urlencoded"}):
            st, _, body, _ = request(g.api_port, "POST", "/auth/login", creds, headers)
            self.assertEqual(st, 200, (headers, body))


if __name__ == "__main__":
    unittest.main()
