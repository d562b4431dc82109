"""The auth, memory and chat black-box tests, run once more against
PostgreSQL ([store] engine = postgresql): the same test classes, imported
(no test code is copied), with GRACE_TEST_STORE=postgresql so the harness
gives every server a fresh database on one throw-away PostgreSQL
(pg_server.py) for this run.

    python3 test_store_postgresql.py auth|auth_attacks|memory|chat|backup

Each group is its own meson test (test_store_postgresql_auth, ...), so
they spread over CI's parallel slots. Under GRACE_SANITIZED=1
each runs a smaller set (SANITIZED below), never nothing. At the end the
test checks that the servers really used PostgreSQL: every database made
has the schema and its users, and grace.db was not where they went; for
"memory", that the memory tables were in PostgreSQL too, and that two
servers with data directories of their own serve the same tables
(SharedMemoryTables). "backup" runs PostgreSQLBackup: `grace backup` takes
the database with pg_dump, `grace restore` puts it back with pg_restore
into a wiped database and checks it (docs/backup.md "PostgreSQL")."""

import io
import json
import os
import sqlite3
import subprocess
import sys
import tarfile
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
    "backup": [],  # PostgreSQLBackup, below
}
# The sanitizer pass: a part of each group ("module", "module.Class" or
# "module.Class.test"), never nothing.
SANITIZED = {
    "auth": ["test_auth.Auth.test_logout_and_password_change_kill_tokens",
             "test_auth.Auth.test_repeated_failed_logins_are_slowed_then_refused"],
    "auth_attacks": ["test_auth_attacks.LoginThrottling"],
    "memory": ["test_memory.TestAccess"],
    "chat": ["test_chat.ChatWithoutModel"],
    "backup": [],  # PostgreSQLBackup runs whole: one test
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


BACKUP_KEY = "6b" * 32  # test material: the backup's key file


class PostgreSQLBackup(unittest.TestCase):
    """With [store] engine = postgresql, `grace backup` holds the shared
    database as a pg_dump (hashed and listed in the manifest, the password
    nowhere in the archive), and `grace restore` puts it back into the
    configured database with pg_restore and checks it: every acknowledged
    user and memory row is back, and a grace serve on the restored data
    directory serves them. A tampered dump, a restore with no PostgreSQL
    configured and one into a non-empty database are refused before
    anything is written."""

    def restore(self, archive, data_dir, *extra):
        argv = [harness.GRACE_BIN, "restore", archive, "--data-dir", data_dir,
                "--key-file", self.key_file] + list(extra)
        env = dict(os.environ)
        env.pop("GRACE_CONFIG", None)
        return subprocess.run(argv, capture_output=True, text=True, env=env,
                              timeout=harness.scaled(180))

    def test_backup_and_restore_postgresql(self):
        from healer_support import run_cli
        pg = harness.shared_pg()
        config = {"auth": {"argon2_mem_kib": 19456}}
        kernels = {"learning": {}}
        g = harness.GraceServer(config=config, kernels=kernels, autostart=False)
        self.addCleanup(g.close)
        g.start()
        db = g.store_db
        self.key_file = os.path.join(g.tmp, "backup.key")
        with open(self.key_file, "w") as f:
            f.write(BACKUP_KEY + "\n")
        os.chmod(self.key_file, 0o600)
        g.login()
        g.create_user("alice", PASSWORD)
        tok = g.login("alice", PASSWORD)
        user = {"Authorization": "Bearer " + tok}
        st, _, out = g.http("POST", "/memory/tables", {"name": "notes", "columns": [
            {"name": "title", "type": "text"}]}, headers=user)
        self.assertIn(st, (200, 201), out)
        acked = {}
        for batch in range(5):
            rows = [{"title": "row %d.%d" % (batch, i)} for i in range(10)]
            st, _, out = g.http("POST", "/memory/tables/notes/rows", rows, headers=user)
            self.assertIn(st, (200, 201), out)
            acked.update(zip(out["ids"], (r["title"] for r in rows)))

        archive = os.path.join(g.tmp, "grace.backup")
        r = run_cli(g, "backup", archive, "--key-file", self.key_file)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(archive, "rb") as f:
            data = f.read()
        # The password is nowhere in the archive, in the manifest, or in the
        # commands the backup ran (the log says what it ran).
        self.assertNotIn(pg.password.encode(), data)
        with tarfile.open(archive) as tar:
            names = tar.getnames()
            manifest_text = tar.extractfile("manifest.json").read().decode()
            dump = tar.extractfile("postgresql/grace.dump").read()
        self.assertNotIn(pg.password, manifest_text)
        self.assertNotIn(pg.password, g.log())
        self.assertIn("postgresql/grace.dump", names)
        self.assertTrue(dump.startswith(b"PGDMP"), "custom format: %r" % dump[:8])
        manifest = json.loads(manifest_text)
        entry = [f for f in manifest["files"] if f["name"] == "postgresql/grace.dump"][0]
        self.assertEqual((entry["kind"], entry["size"]), ("pg_dump", len(dump)))
        info = manifest["postgresql"]
        self.assertEqual((info["database"], info["schema_version"]), (db, 2))
        tid = pg.psql("SELECT id FROM mem_tables WHERE owner = 'alice' AND name = 'notes'",
                      db).strip()
        self.assertEqual(info["tables"]["public.mem_rows_%s" % tid], len(acked))
        self.assertGreaterEqual(info["tables"]["public.users"], 2)
        users = pg.psql("SELECT name FROM users ORDER BY name", db).split()
        # Without keys the manifest is not authenticated: one whose count
        # was changed shows that the restore's row check can fail.
        plain = os.path.join(g.tmp, "plain.backup")
        r = run_cli(g, "backup", plain, "--no-secrets")
        self.assertEqual(r.returncode, 0, r.stderr)
        miscounted = os.path.join(g.tmp, "miscounted.backup")
        with tarfile.open(plain) as src, tarfile.open(miscounted, "w",
                                                      format=tarfile.PAX_FORMAT) as dst:
            for m in src.getmembers():
                body = src.extractfile(m).read()
                if m.name == "manifest.json":
                    man = json.loads(body)
                    man["postgresql"]["tables"]["public.mem_rows_%s" % tid] += 1
                    body = json.dumps(man).encode()
                    m.size = len(body)
                dst.addfile(m, io.BytesIO(body))
        g.stop()

        # A configuration whose [store] is that database, for the restores.
        store_cfg = os.path.join(g.tmp, "store.ini")
        with open(store_cfg, "w") as f:
            f.write("[store]\n" + "".join("%s = %s\n" % kv
                                           for kv in pg.store_section(db).items()))
        no_pg_cfg = os.path.join(g.tmp, "nopg.ini")
        with open(no_pg_cfg, "w") as f:
            f.write("[store]\nengine = sqlite\n")

        # Wiped: the database made again, empty.
        pg.psql('DROP DATABASE "%s"' % db)
        pg.psql('CREATE DATABASE "%s"' % db)
        tables_sql = ("SELECT count(*) FROM pg_tables WHERE schemaname NOT IN "
                      "('pg_catalog', 'information_schema')")

        # No PostgreSQL configured: refused, before anything is written.
        target = os.path.join(g.tmp, "restored")
        r = self.restore(archive, target, "--config", no_pg_cfg)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("names no PostgreSQL", r.stderr)
        self.assertFalse(os.path.exists(target) and os.listdir(target))
        # A tampered dump: refused by its hash, the database left empty.
        at = data.index(b"PGDMP") + len(dump) // 2
        bad = os.path.join(g.tmp, "tampered.backup")
        with open(bad, "wb") as f:
            f.write(data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:])
        r = self.restore(bad, target, "--config", store_cfg)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("postgresql/grace.dump differs from the manifest", r.stderr)
        self.assertEqual(pg.psql(tables_sql, db).strip(), "0")
        self.assertFalse(os.path.exists(target) and os.listdir(target))

        # --no-postgresql (the scheduled backups' proof): the files only,
        # the dump read whole by pg_restore --list, the database untouched.
        files_only = os.path.join(g.tmp, "files-only")
        r = self.restore(archive, files_only, "--no-postgresql", "--json")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        checks = {c["check"]: c for c in json.loads(r.stdout)["checks"]}
        self.assertTrue(checks["postgresql dump"]["ok"], checks)
        self.assertNotIn("postgresql pg_restore", checks)
        self.assertEqual(pg.psql(tables_sql, db).strip(), "0")

        # Restored, and checked by the restore itself.
        r = self.restore(archive, target, "--config", store_cfg, "--json")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        report = json.loads(r.stdout)
        checks = {c["check"]: c for c in report["checks"]}
        for name in ("postgresql pg_restore", "postgresql schema version", "postgresql rows"):
            self.assertTrue(checks[name]["ok"], checks)
        self.assertEqual(report["postgresql"]["tables"], info["tables"])
        self.assertNotIn(".postgresql.dump", os.listdir(target))
        self.assertEqual(pg.psql("SELECT name FROM users ORDER BY name", db).split(), users)
        # Into a database that is not empty: refused without --force; with
        # it, cleaned and restored again.
        again = os.path.join(g.tmp, "again")
        r = self.restore(archive, again, "--config", store_cfg)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("--force drops them first", r.stderr)
        # A count that differs from the manifest's: refused, naming it.
        r = subprocess.run([harness.GRACE_BIN, "restore", miscounted, "--data-dir", again,
                            "--config", store_cfg, "--force"], capture_output=True, text=True,
                           timeout=harness.scaled(180))
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("postgresql rows: table public.mem_rows_%s has %d rows, the manifest %d"
                      % (tid, len(acked), len(acked) + 1), r.stderr)
        self.assertFalse(os.path.exists(again) and os.listdir(again))
        r = self.restore(archive, again, "--config", store_cfg, "--force")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("postgresql clean", r.stdout)

        # A grace serve on the restored data directory and database serves
        # every acknowledged row to its owner.
        g2 = harness.GraceServer(config=dict(config, store=pg.store_section(db)),
                                 kernels=kernels, autostart=False)
        self.addCleanup(g2.close)
        if os.path.isdir(g2.data_dir):
            os.rmdir(g2.data_dir)  # empty: nothing started on it
        os.rename(target, g2.data_dir)
        g2.start()
        tok2 = g2.login("alice", PASSWORD)
        st, _, out = g2.http("GET", "/memory/tables/notes/rows?limit=1000",
                             headers={"Authorization": "Bearer " + tok2})
        self.assertEqual(st, 200, out)
        self.assertEqual({r["id"]: r["data"]["title"] for r in out["rows"]}, acked)


def main():
    group = sys.argv[1] if len(sys.argv) > 1 else None
    if group not in GROUPS:
        sys.stderr.write("usage: test_store_postgresql.py %s\n" % "|".join(GROUPS))
        return 2
    names = SANITIZED[group] if os.environ.get("GRACE_SANITIZED") == "1" else GROUPS[group]
    suite = suite_of(names)
    if group == "memory":
        suite.addTest(SharedMemoryTables("test_two_hosts_one_table"))
    if group == "backup":
        suite.addTest(PostgreSQLBackup("test_backup_and_restore_postgresql"))
    UsedPostgreSQL.group = group
    suite.addTest(UsedPostgreSQL("test_the_servers_used_postgresql"))
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
