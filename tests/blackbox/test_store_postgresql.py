"""The auth, memory and chat black-box tests, run once more against
PostgreSQL ([store] engine = postgresql): the same test classes, imported
(no test code is copied), with GRACE_TEST_STORE=postgresql so the harness
gives every server a fresh database on one throw-away PostgreSQL
(pg_server.py) for this run.

    python3 test_store_postgresql.py auth|auth_attacks|memory|chat

Each group is its own meson test (test_store_postgresql_auth, ...), so
they spread over CI's parallel slots. Under GRACE_SANITIZED=1
each runs a smaller set (SANITIZED below), never nothing. At the end the
test checks that the servers really used PostgreSQL: every database made
has the schema and its users, and grace.db was not where they went; for
"memory", that the memory tables were in PostgreSQL too, and that two
servers with data directories of their own serve the same tables
(SharedMemoryTables)."""

import json
import os
import sqlite3
import sys
import threading
import unittest
import urllib.parse

os.environ["GRACE_TEST_STORE"] = "postgresql"

import harness  # noqa: E402  (reads GRACE_TEST_STORE)

# What touches the store: users, sessions, tokens, lockout, memory. (The
# cross-site checks and chat's streaming run the same code whatever the
# store, and their SQLite runs cover them.)
GROUPS = {
    "auth": ["test_auth"],
    "auth_attacks": ["test_auth_attacks.LoginThrottling", "test_auth_attacks.LoginDenialOfService"],
    "memory": ["test_memory"],
    "chat": ["test_chat"],
}
# The sanitizer pass: a part of each group ("module", "module.Class" or
# "module.Class.test"), never nothing.
SANITIZED = {
    "auth": ["test_auth.Auth.test_logout_and_password_change_kill_tokens",
             "test_auth.Auth.test_repeated_failed_logins_are_slowed_then_refused"],
    "auth_attacks": ["test_auth_attacks.LoginThrottling"],
    "memory": ["test_memory.TestAccess"],
    "chat": ["test_chat.ChatWithoutModel"],
}


def suite_of(names):
    loader = unittest.defaultTestLoader
    return unittest.TestSuite(loader.loadTestsFromName(n) for n in names)


def check_postgresql_used(test, group=None):
    """Every server of the run had a database of its own, migrated, with
    its users in it (and, for the memory tests, their tables)."""
    pg = harness.shared_pg()
    dbs = [d for d in pg.psql("SELECT datname FROM pg_database WHERE datname LIKE "
                              "'grace\\_%' ORDER BY datname").split() if d]
    test.assertTrue(dbs, "no server of the run used PostgreSQL")
    with_users = with_tables = 0
    for db in dbs:
        version = pg.psql("SELECT version FROM grace_schema WHERE store = 'grace'", db).strip()
        test.assertIn(version, ("", "2"), db)  # "": a server that never started
        if version == "2" and int(pg.psql("SELECT count(*) FROM users", db)) > 0:
            with_users += 1
        if version == "2" and int(pg.psql("SELECT count(*) FROM mem_tables", db)) > 0:
            with_tables += 1
    test.assertGreater(with_users, 0, "no users in any database: %s" % dbs)
    if group == "memory":
        test.assertGreater(with_tables, 0, "no memory tables in any database: %s" % dbs)


class UsedPostgreSQL(unittest.TestCase):
    group = None

    def test_the_servers_used_postgresql(self):
        check_postgresql_used(self, self.group)


PASSWORD = "shared-tables-password-1"


class SharedMemoryTables(unittest.TestCase):
    """Two `grace serve`, each with a data directory of its own, on one
    PostgreSQL database (as two API hosts of one deployment): a memory
    table made through one is listed, read, searched, changed and deleted
    through the other, its rows are in PostgreSQL, in neither host's
    memory.db, and a quota holds across both hosts writing at once."""

    def call(self, g, token, method, path, body=None, want=(200, 201)):
        st, _, out = harness.http_request(g.api_port, method, path, body,
                                          {"Authorization": "Bearer " + token},
                                          timeout=harness.scaled(20))
        if want is not None:
            self.assertIn(st, want, "%s %s on %s: %r" % (method, path, g.api_port, out))
        return st, out

    def test_two_hosts_one_table(self):
        pg = harness.shared_pg()
        config = {"auth": {"argon2_mem_kib": 19456}, "memory": {"rows_per_user": 30}}
        kernels = {"learning": {}}
        a = harness.GraceServer(config=config, kernels=kernels, autostart=False)
        b = None
        try:
            a.start()  # migrates the database first
            b = harness.GraceServer(config=dict(config, store=pg.store_section(a.store_db)),
                                    kernels=kernels, autostart=False)
            b.start()
            a.login()  # the first admin, made by a's first start
            a.create_user("alice", PASSWORD)
            ta, tb = a.login("alice", PASSWORD), b.login("alice", PASSWORD)
            self.call(a, ta, "POST", "/memory/tables", {"name": "notes", "columns": [
                {"name": "title", "type": "text"}, {"name": "n", "type": "number"}]})
            _, out = self.call(a, ta, "POST", "/memory/tables/notes/rows", [
                {"title": "made on one host", "n": 1}, {"title": "read on another", "n": 2}])
            ids = out["ids"]
            # b sees a's table and rows, in order, by filter and by q.
            _, out = self.call(b, tb, "GET", "/memory/tables")
            self.assertEqual([(t["name"], t["rows"]) for t in out["tables"]], [("notes", 2)])
            _, out = self.call(b, tb, "GET", "/memory/tables/notes/rows?order=-n")
            self.assertEqual([r["id"] for r in out["rows"]], ids[::-1])
            _, out = self.call(b, tb, "GET", "/memory/tables/notes/rows?where=" +
                               urllib.parse.quote(json.dumps({"n": {"gte": 2}})))
            self.assertEqual([r["id"] for r in out["rows"]], ids[1:])
            _, out = self.call(b, tb, "GET", "/memory/tables/notes/rows?q=host")
            self.assertEqual([r["id"] for r in out["rows"]], ids[:1])
            # A write through b is read through a.
            self.call(b, tb, "PATCH", "/memory/tables/notes/rows/%d" % ids[0], {"n": 5})
            _, out = self.call(a, ta, "GET", "/memory/tables/notes/rows/%d" % ids[0])
            self.assertEqual(out["data"], {"title": "made on one host", "n": 5})
            # Both hosts at once against one quota (30 rows; 2 used): the
            # writes of one user are one at a time across hosts, so exactly
            # 7 batches of 4 fit and the others are refused whole.
            self.call(a, ta, "POST", "/memory/tables", {"name": "burst"})
            results = []

            def post(g, tok):
                results.append(self.call(g, tok, "POST", "/memory/tables/burst/rows",
                                         [{"i": i} for i in range(4)], want=None)[0])
            threads = [threading.Thread(target=post, args=(g, tok))
                       for g, tok in [(a, ta), (b, tb)] * 6]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            self.assertEqual(sorted(results), [201] * 7 + [403] * 5, results)
            _, out = self.call(b, tb, "GET", "/memory/tables/burst")
            self.assertEqual(out["rows"], 28)
            # One name per user across hosts.
            self.call(b, tb, "POST", "/memory/tables", {"name": "notes"}, want=(409,))
            # The rows are in PostgreSQL, in a relation of the table's own.
            tid = pg.psql("SELECT id FROM mem_tables WHERE owner = 'alice' AND name = 'notes'",
                          a.store_db).strip()
            self.assertEqual(pg.psql("SELECT count(*) FROM mem_rows_%s" % tid,
                                     a.store_db).strip(), "2")
            for g in (a, b):
                path = os.path.join(g.data_dir, "memory.db")
                if os.path.exists(path):
                    db = sqlite3.connect(path)
                    try:
                        n = db.execute("SELECT count(*) FROM sqlite_master WHERE name = "
                                       "'mem_tables'").fetchone()[0]
                        if n:
                            n = db.execute("SELECT count(*) FROM mem_tables").fetchone()[0]
                    finally:
                        db.close()
                    self.assertEqual(n, 0, path)
            # Deleted through b: gone for a, and its relation dropped.
            self.call(b, tb, "DELETE", "/memory/tables/notes")
            self.call(a, ta, "GET", "/memory/tables/notes", want=(404,))
            self.assertEqual(pg.psql("SELECT to_regclass('mem_rows_%s')" % tid,
                                     a.store_db).strip(), "")
        finally:
            if b:
                b.close()
            a.close()


def main():
    group = sys.argv[1] if len(sys.argv) > 1 else None
    if group not in GROUPS:
        sys.stderr.write("usage: test_store_postgresql.py %s\n" % "|".join(GROUPS))
        return 2
    names = SANITIZED[group] if os.environ.get("GRACE_SANITIZED") == "1" else GROUPS[group]
    suite = suite_of(names)
    if group == "memory":
        suite.addTest(SharedMemoryTables("test_two_hosts_one_table"))
    UsedPostgreSQL.group = group
    suite.addTest(UsedPostgreSQL("test_the_servers_used_postgresql"))
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
