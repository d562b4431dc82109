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
has the schema and its users, and grace.db was not where they went."""

import os
import sys
import unittest

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


def check_postgresql_used(test):
    """Every server of the run had a database of its own, migrated, with
    its users in it."""
    pg = harness.shared_pg()
    dbs = [d for d in pg.psql("SELECT datname FROM pg_database WHERE datname LIKE "
                              "'grace\\_%' ORDER BY datname").split() if d]
    test.assertTrue(dbs, "no server of the run used PostgreSQL")
    with_users = 0
    for db in dbs:
        version = pg.psql("SELECT version FROM grace_schema WHERE store = 'grace'", db).strip()
        test.assertIn(version, ("", "1"), db)  # "": a server that never started
        if version == "1" and int(pg.psql("SELECT count(*) FROM users", db)) > 0:
            with_users += 1
    test.assertGreater(with_users, 0, "no users in any database: %s" % dbs)


class UsedPostgreSQL(unittest.TestCase):
    def test_the_servers_used_postgresql(self):
        check_postgresql_used(self)


def main():
    group = sys.argv[1] if len(sys.argv) > 1 else None
    if group not in GROUPS:
        sys.stderr.write("usage: test_store_postgresql.py %s\n" % "|".join(GROUPS))
        return 2
    names = SANITIZED[group] if os.environ.get("GRACE_SANITIZED") == "1" else GROUPS[group]
    suite = suite_of(names)
    suite.addTest(UsedPostgreSQL("test_the_servers_used_postgresql"))
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
