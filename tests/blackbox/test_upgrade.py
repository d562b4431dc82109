"""Upgrades (issue 21 item 4, docs/upgrades.md): this commit's binary
starts on every fixture data directory in tests/fixtures/datadir/ (one per
schema version, made by tests/fixtures/make_datadir.py with the Grace of
that version), migrates it, and everything the fixture script wrote is
still there; every database then carries this build's version and no copy
(.pre-vN) is left; the immutable log verifies. A database stamped with a
version above this build's is refused with a clear message, and the file
is left as it was: a kernel's makes that kernel fail (not restarted in a
loop), the main process's stops `grace serve` before anything starts."""

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import unittest

from harness import GRACE_BIN, KERNEL_DEFS, GraceServer, GraceTestCase, scaled
from healer_support import run_cli

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(os.path.dirname(HERE), "fixtures", "datadir")
# The main process's databases and their versions (src/serve/schema.c).
MAIN_VERSIONS = {"grace": 1, "chat": 1, "memory": 1}
# Stores outside the common runner (none: every store declares its version).
OWN_VERSIONS = set()
NEWER = 999


def current_version(name):
    if name in MAIN_VERSIONS:
        return MAIN_VERSIONS[name]
    return KERNEL_DEFS[name]["schema_version"]


def user_version(path):
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        return db.execute("PRAGMA user_version").fetchone()[0]
    finally:
        db.close()


def has_tables(path):
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        return db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
    finally:
        db.close()


def stamp(path, version):
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA user_version = %d" % version)
        db.commit()
    finally:
        db.close()


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def fixture_into(fixture, data_dir):
    shutil.copytree(fixture, data_dir, ignore=shutil.ignore_patterns("expected.json",
                                                                     "README*"))
    # As Grace keeps them (a checkout makes them 0644; keys must be 0600).
    os.chmod(data_dir, 0o700)
    for n in os.listdir(data_dir):
        os.chmod(os.path.join(data_dir, n), 0o600)
    with open(os.path.join(fixture, "expected.json")) as f:
        return json.load(f)


class Upgrade(GraceTestCase):
    def fixtures(self):
        names = sorted(n for n in os.listdir(FIXTURES) if n.startswith("v"))
        self.assertTrue(names, "no fixture data directory in " + FIXTURES)
        return [os.path.join(FIXTURES, n) for n in names]

    def test_every_fixture_migrates_and_loses_nothing(self):
        for fixture in self.fixtures():
            with self.subTest(fixture=os.path.basename(fixture)):
                self.check_fixture(fixture)

    def check_fixture(self, fixture):
        g = GraceServer(autostart=False)
        self.addCleanup(g.close)
        want = fixture_into(fixture, g.data_dir)
        # Older files with tables are migrated (and say so); an empty one
        # (a placeholder kernel's) is only stamped.
        older = {n[:-3] for n in os.listdir(g.data_dir) if n.endswith(".db")
                 and user_version(os.path.join(g.data_dir, n)) < current_version(n[:-3])
                 and has_tables(os.path.join(g.data_dir, n))}
        self.assertTrue(older, "the fixture holds databases older than this build")
        g.admin_user, g.admin_password = want["admin"]
        g.start()
        user = {"Authorization": "Bearer " + g.login(*want["user"])}
        for c in want["checks"]:
            st, _, out = g.http("GET", c["path"], headers=user if c["as"] == "user" else None,
                                timeout=scaled(30))
            self.assertEqual(st, 200, "%s: %s %r" % (c["what"], c["path"], out))
            text = json.dumps(out)
            for s in c["contains"]:
                self.assertIn(s, text, "%s: %s" % (c["what"], c["path"]))
        st, _, v = g.http("GET", "/kernels/immutable_log/verify", timeout=scaled(60))
        self.assertEqual((st, v.get("ok")), (200, True), v)
        # The librarian's block index (schema 3) was built from the
        # documents the fixture holds: its search answers from it.
        st, _, r = g.http("GET", "/librarian/search?query=kestrel", headers=user,
                          timeout=scaled(30))
        self.assertEqual(st, 200, r)
        self.assertEqual(r.get("plan"), "index", r)
        self.assertEqual([h["title"] for h in r["results"]], ["Fixture document"], r)
        log = g.log()
        g.stop()
        # Said in the log (a kernel killed by its ready timeout after its
        # COMMIT, on a crowded machine, migrates without its line: the
        # versions below are the proof for each file).
        self.assertRegex(log, r"schema migrated from version \d+ to \d+")
        for n in sorted(os.listdir(g.data_dir)):
            self.assertNotIn(".pre-v", n, "a copy made before a migration is left")
            if not n.endswith(".db") or n[:-3] in OWN_VERSIONS:
                continue
            self.assertEqual(user_version(os.path.join(g.data_dir, n)), current_version(n[:-3]),
                             n)
        # Each owner's usage (schema 5) counted from the documents, as the
        # triggers would have kept it.
        db = sqlite3.connect(os.path.join(g.data_dir, "librarian.db"))
        try:
            usage = db.execute("SELECT owner, docs, bytes FROM owner_usage WHERE docs > 0"
                               " ORDER BY owner").fetchall()
            counted = db.execute("SELECT owner, count(*), sum(size) FROM documents"
                                 " WHERE owner IS NOT NULL GROUP BY owner ORDER BY owner").fetchall()
            # Schema 6: the tails' table, the hash index on 8 bytes in
            # place of the whole hash's, and the owners' index by id.
            indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master"
                                                " WHERE type IN ('index', 'table')")}
            by_owner = db.execute("SELECT sql FROM sqlite_master"
                                  " WHERE name = 'documents_by_owner'").fetchone()[0]
        finally:
            db.close()
        self.assertEqual(usage, counted)
        self.assertIn("ix_tails", indexes)
        self.assertIn("documents_by_hash8", indexes)
        self.assertNotIn("documents_by_hash", indexes)
        self.assertIn("(owner, id, size)", by_owner)

    def test_a_kernel_database_from_a_newer_grace_is_refused(self):
        g = GraceServer(kernels={"message_bus": {}, "crypto": {}}, autostart=False)
        self.addCleanup(g.close)
        fixture_into(self.fixtures()[-1], g.data_dir)
        path = os.path.join(g.data_dir, "message_bus.db")
        stamp(path, NEWER)
        before = sha256(path)
        g.expect = {"message_bus": "failed"}
        g.start()
        h = g.health()
        self.assertEqual(h["kernels"]["message_bus"]["state"], "failed", h)
        self.assertEqual(h["kernels"]["crypto"]["state"], "ready", h)
        log = g.log()
        self.assertIn("%s has schema version %d, this Grace knows up to %d" %
                      (path, NEWER, current_version("message_bus")), log)
        self.assertIn("this data directory was written by a newer Grace; run that version "
                      "or restore a backup made for this one", log)
        self.assertIn("kernel message_bus: failed: the kernel reported a permanent error", log)
        # Given up on, not restarted in a loop.
        self.assertEqual(log.count("%s has schema version %d" % (path, NEWER)), 1, log)
        g.stop()
        self.assertEqual(sha256(path), before, "the refused file was changed")
        self.assertFalse(os.path.exists(path + "-wal"))
        self.assertFalse([n for n in os.listdir(g.data_dir) if ".pre-v" in n])

    def test_a_main_database_from_a_newer_grace_stops_grace_serve(self):
        g = GraceServer(kernels={"crypto": {}}, autostart=False)
        self.addCleanup(g.close)
        fixture_into(self.fixtures()[-1], g.data_dir)
        path = os.path.join(g.data_dir, "grace.db")
        stamp(path, NEWER)
        before = {n: sha256(os.path.join(g.data_dir, n)) for n in os.listdir(g.data_dir)}
        g.start(wait=False)
        g.proc.wait(scaled(30))
        self.assertEqual(g.proc.returncode, 1)
        log = g.log()
        self.assertIn("cannot start: %s has schema version %d, this Grace knows up to %d" %
                      (path, NEWER, MAIN_VERSIONS["grace"]), log)
        self.assertIn("written by a newer Grace", log)
        g.stop()
        after = {n: sha256(os.path.join(g.data_dir, n)) for n in before}
        self.assertEqual(after, before, "a file changed although grace serve refused")
        # Only grace serve's own start-up files are new: no -wal, no copy.
        new = set(os.listdir(g.data_dir)) - set(before)
        self.assertLessEqual(new, {"log", "internal.token"}, new)

    def test_restore_refuses_a_newer_database_and_reports_an_older_one(self):
        g = GraceServer(kernels={"message_bus": {}, "crypto": {}})
        self.addCleanup(g.close)
        g.start()
        g.login()
        pass_file = os.path.join(g.tmp, "pass")
        with open(pass_file, "w") as f:
            f.write("a backup passphrase, long enough\n")
        # An older message_bus.db (unversioned: version 0, the same tables
        # as its version 1) ...
        stamp(os.path.join(g.data_dir, "message_bus.db"), 0)
        older = os.path.join(g.tmp, "older.backup")
        r = run_cli(g, "backup", older, "--passphrase-file", pass_file)
        self.assertEqual(r.returncode, 0, r.stderr)
        # ... and a crypto.db from a newer Grace.
        stamp(os.path.join(g.data_dir, "message_bus.db"), current_version("message_bus"))
        stamp(os.path.join(g.data_dir, "crypto.db"), NEWER)
        newer = os.path.join(g.tmp, "newer.backup")
        r = run_cli(g, "backup", newer, "--passphrase-file", pass_file)
        self.assertEqual(r.returncode, 0, r.stderr)
        g.stop()

        def restore(archive, target):
            return subprocess.run([GRACE_BIN, "restore", archive, "--data-dir", target,
                                   "--passphrase-file", pass_file],
                                  capture_output=True, text=True, timeout=scaled(120))

        target = os.path.join(g.tmp, "restored-newer")
        r = restore(newer, target)
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn("crypto.db has schema version %d, this Grace knows up to %d"
                      % (NEWER, current_version("crypto")), r.stderr)
        self.assertIn("written by a newer Grace", r.stderr)
        self.assertFalse(os.path.exists(target) and os.listdir(target), "nothing written")
        self.assertEqual([n for n in os.listdir(g.tmp) if ".restore-" in n], [],
                         "no staging directory")

        target = os.path.join(g.tmp, "restored-older")
        r = restore(older, target)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("schema message_bus.db: version 0, older than this Grace's %d: migrated "
                      "when first opened" % current_version("message_bus"), r.stdout)
        # The bus kernel's start in the restore migrated it.
        self.assertEqual(user_version(os.path.join(target, "message_bus.db")),
                         current_version("message_bus"))
        self.assertFalse([n for n in os.listdir(target) if ".pre-v" in n])


if __name__ == "__main__":
    unittest.main()
