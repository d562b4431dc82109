"""Two `grace serve` processes (two port offsets, two data directories)
sharing one PostgreSQL ([store] engine = postgresql): what one host does to
users, sessions, API tokens and login failures the other sees at once, and
the schema is migrated once, under its advisory lock, even when both start
together; a schema newer than the binary is refused."""

import re
import threading
import unittest

from harness import GraceServer, GraceTestCase, http_request, scaled
from pg_server import PgServer
import harness

KERNELS = {"trust": {}}
PW = "shared-password-1"


def bearer(token):
    return {"Authorization": "Bearer " + token}


def maps(pid):
    with open("/proc/%d/maps" % pid) as f:
        return f.read()


def me(g, token):
    return http_request(g.api_port, "GET", "/auth/me", None, bearer(token), scaled(20))


class SharedStore(GraceTestCase):
    @classmethod
    def setUpClass(cls):
        cls.res = harness.PortReservation()
        cls.pg = PgServer(cls.res.offset)
        try:
            cls.pg.start()
        except BaseException:
            cls.pg.dump_log()
            cls.pg.stop()
            cls.res.release()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.pg.stop()
        cls.res.release()

    def store(self, db):
        return {"store": self.pg.store_section(db), "auth": {"login_failures_max": 3}}

    def test_two_hosts_serve_the_same_users(self):
        db = self.pg.create_database()
        a = GraceServer(config=self.store(db), kernels=KERNELS, autostart=False)
        b = GraceServer(config=self.store(db), kernels=KERNELS, autostart=False)
        with a, b:
            # Both start at once: one migrates and makes the first admin,
            # the other waits on the lock and finds both done.
            ta = threading.Thread(target=a.start)
            ta.start()
            b.start()
            ta.join()
            self.assertTrue(a.running and b.running)
            logs = a.log() + b.log()
            for step in ("0 -> 1", "1 -> 2"):
                self.assertEqual(len(re.findall(r"PostgreSQL schema %s" % step, logs)), 1, logs)
            admins = re.findall(r"created user '(\w+)' \(admin\) with password ([\w-]+)", logs)
            self.assertEqual(len(admins), 1, logs)
            admin, admin_pw = admins[0]
            self.assertEqual(self.pg.psql("SELECT version FROM grace_schema", db).strip(), "2")

            # A user made and logged in on A is served by B.
            ta_admin = a.login(admin, admin_pw)
            # libpq is loaded by the main process only (store/pq_dl.h): no
            # kernel process maps it.
            a.api_headers["Authorization"] = "Bearer " + ta_admin
            kpid = a.kernel("trust")["pid"]
            self.assertIn("libpq.so", maps(a.proc.pid))
            self.assertNotIn("libpq.so", maps(kpid))
            st, _, body = http_request(a.api_port, "POST", "/auth/users",
                                       {"username": "carol", "password": PW, "role": "user"},
                                       bearer(ta_admin), scaled(30))
            self.assertEqual(st, 201, body)
            tok = a.login("carol", PW)
            st, _, who = me(b, tok)
            self.assertEqual((st, who["name"], who["role"]), (200, "carol", "user"))
            # ... and B logs her in too; A accepts that session.
            tok_b = b.login("carol", PW)
            self.assertEqual(me(a, tok_b)[0], 200)
            # The list on B shows her; only hashes are stored.
            st, _, users = http_request(b.api_port, "GET", "/auth/users", None,
                                        bearer(ta_admin), scaled(20))
            self.assertEqual(st, 200, users)
            self.assertIn("carol", [u["name"] for u in users["users"]])
            rows = self.pg.psql("SELECT password_hash FROM users WHERE name = 'carol'", db)
            self.assertTrue(rows.startswith("$argon2id$"), rows)
            self.assertNotIn(tok, self.pg.psql("SELECT token_hash FROM sessions", db))

            # A logout on B ends the session on both, at once.
            self.assertEqual(me(a, tok)[0], 200)
            st, _, _ = http_request(b.api_port, "POST", "/auth/logout", None, bearer(tok),
                                    scaled(20))
            self.assertEqual(st, 200)
            self.assertEqual(me(a, tok)[0], 401)
            self.assertEqual(me(b, tok)[0], 401)
            self.assertEqual(me(a, tok_b)[0], 200)  # her other session lives on

            # An API token made on A works on B; revoked on B, refused on A.
            st, _, t = http_request(a.api_port, "POST", "/auth/tokens",
                                    {"name": "script", "scopes": ["auth:me"]},
                                    bearer(tok_b), scaled(20))
            self.assertEqual(st, 201, t)
            self.assertEqual(me(b, t["token"])[0], 200)
            st, _, _ = http_request(b.api_port, "DELETE", "/auth/tokens/" + t["id"], None,
                                    bearer(tok_b), scaled(20))
            self.assertEqual(st, 200)
            self.assertEqual(me(a, t["token"])[0], 401)

            # Failed logins count across hosts: three wrong passwords, spread
            # over both, lock the account on both.
            for g in (a, b, a):
                st, _, _ = http_request(g.api_port, "POST", "/auth/login",
                                        {"username": "carol", "password": "wrong-password"},
                                        None, scaled(30))
                self.assertIn(st, (401, 429))
            for g in (a, b):
                st, _, _ = http_request(g.api_port, "POST", "/auth/login",
                                        {"username": "carol", "password": PW}, None,
                                        scaled(30))
                self.assertEqual(st, 429)

            # Removing the user on A ends her sessions on B.
            st, _, _ = http_request(a.api_port, "DELETE", "/auth/users/carol", None,
                                    bearer(ta_admin), scaled(20))
            self.assertEqual(st, 200)
            self.assertEqual(me(b, tok_b)[0], 401)

    def test_a_newer_schema_is_refused(self):
        db = self.pg.create_database()
        self.pg.psql("CREATE TABLE grace_schema (store text PRIMARY KEY, version integer "
                     "NOT NULL, updated_ms bigint NOT NULL);"
                     "INSERT INTO grace_schema VALUES ('grace', 99, 0)", db)
        g = GraceServer(config=self.store(db), kernels=KERNELS, autostart=False)
        with g:
            g.start(wait=False)
            g.proc.wait(timeout=scaled(30))
            self.assertNotEqual(g.proc.returncode, 0)
            self.assertIn("at version 99, newer than this Grace knows (2)", g.log())
        # Nothing was touched.
        self.assertEqual(self.pg.psql("SELECT to_regclass('users') IS NULL", db).strip(), "t")

    def test_postgresql_down_then_back(self):
        db = self.pg.create_database()
        with GraceServer(config=self.store(db), kernels=KERNELS) as g:
            g.create_user("dan", PW)
            tok = g.login("dan", PW)
            self.assertEqual(me(g, tok)[0], 200)
            self.pg.pause()
            try:
                # Not known now: refused, but as unavailable (the client
                # keeps its token), and the process stays up.
                st, _, body = me(g, tok)
                self.assertEqual((st, body["error"]["code"]), (503, "store_unavailable"))
                st, _, _ = http_request(g.api_port, "POST", "/auth/login",
                                        {"username": "dan", "password": PW}, None,
                                        scaled(30))
                self.assertGreaterEqual(st, 500)
                self.assertEqual(g.http("GET", "/health", auth=False)[0], 200)
            finally:
                self.pg.resume()
            # Back: the same session is valid again (once the store's pause
            # between connection attempts, 1 s, has passed).
            g.wait_for(lambda: me(g, tok)[0] == 200, scaled(10),
                       message="the session valid again after PostgreSQL came back")
            self.assertTrue(g.running)

    def test_no_password_in_the_url(self):
        db = self.pg.create_database()
        cfg = self.store(db)
        cfg["store"]["postgresql_url"] += " password=x"
        g = GraceServer(config=cfg, kernels=KERNELS, autostart=False)
        with g:
            g.start(wait=False)
            g.proc.wait(timeout=scaled(30))
            self.assertNotEqual(g.proc.returncode, 0)
            self.assertIn("no password in it", g.log())


if __name__ == "__main__":
    unittest.main()
