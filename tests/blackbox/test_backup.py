"""Backup and restore (issue 21): `grace backup FILE` while Grace serves
under write load, `grace restore FILE` into an empty data directory, and a
Grace started on the restored directory holds every write acknowledged
before the backup began: bus messages, immutable-log entries, memory rows,
the librarian's documents (found again by search), users and their
sessions' passwords; the restored log verifies and every
audit event's log index exists in it. Tampered, truncated and wrongly keyed
archives are refused with nothing written."""

import json
import os
import subprocess
import threading
import time
import unittest
import urllib.parse

from harness import GRACE_BIN, GraceServer, GraceTestCase, scaled
from healer_support import run_cli

KERNELS = {"crypto": {}, "immutable_log": {}, "audit": {}, "message_bus": {}, "librarian": {}}
PASSPHRASE = "a backup passphrase, long enough"
USER, USER_PW = "ursula", "ursula's long password"


class Load:
    """Writers that record, for each write, when its acknowledgment came."""

    def __init__(self, g, user_token):
        self.g = g
        self.user = {"Authorization": "Bearer " + user_token}
        self.stop = threading.Event()
        self.bus = []   # (ack time, subject)
        self.log = []   # (ack time, index, data)
        self.rows = []  # (ack time, title)
        self.docs = []  # (ack time, id, title)
        self.errors = []
        self.threads = [threading.Thread(target=f, daemon=True)
                        for f in (self.publish, self.append, self.insert, self.ingest)]

    def run(self, f):
        try:
            f()
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.errors.append(repr(e))

    def publish(self):
        i = 0
        while not self.stop.is_set():
            st, _, out = self.g.http("POST", "/bus/publish",
                                     [{"subject": "load.bus", "payload": {"n": i}}],
                                     headers=self.user)
            if st == 200:
                self.bus.append((time.monotonic(), i))
            i += 1

    def append(self):
        i = 0
        while not self.stop.is_set():
            data = "entry %d" % i
            st, _, out = self.g.http("POST", "/kernels/immutable_log/entries", {"data": data})
            if st in (200, 201):
                self.log.append((time.monotonic(), out["index"], data))
            i += 1

    def insert(self):
        i = 0
        while not self.stop.is_set():
            st, _, out = self.g.http("POST", "/memory/tables/notes/rows",
                                     [{"title": "row %d" % i}], headers=self.user)
            if st in (200, 201):
                self.rows.append((time.monotonic(), "row %d" % i))
            i += 1

    def ingest(self):
        i = 0
        while not self.stop.is_set():
            title = "document %d" % i
            st, _, out = self.g.http("POST", "/librarian/documents",
                                     {"title": title, "body": "backupword%d about backups" % i},
                                     headers=self.user)
            if st in (200, 201):
                self.docs.append((time.monotonic(), out["id"], title))
            i += 1

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(scaled(30))


def restore(archive, data_dir, *extra, passphrase_file=None):
    argv = [GRACE_BIN, "restore", archive, "--data-dir", data_dir] + list(extra)
    if passphrase_file:
        argv += ["--passphrase-file", passphrase_file]
    return subprocess.run(argv, capture_output=True, text=True, timeout=scaled(120))


class Backup(GraceTestCase):
    def write_passphrase(self, g, text=PASSPHRASE, name="pass"):
        path = os.path.join(g.tmp, name)
        with open(path, "w") as f:
            f.write(text + "\n")
        return path

    def test_backup_under_load_restores_every_acknowledged_write(self):
        g = GraceServer(kernels=KERNELS)
        self.addCleanup(g.close)
        g.start()
        g.create_user(USER, USER_PW)
        tok = g.login(USER, USER_PW)
        st, _, out = g.http("POST", "/memory/tables",
                            {"name": "notes", "columns": [{"name": "title", "type": "text"}]},
                            headers={"Authorization": "Bearer " + tok})
        self.assertIn(st, (200, 201), out)
        pass_file = self.write_passphrase(g)
        archive = os.path.join(g.tmp, "grace.backup")

        load = Load(g, tok)
        load.start()
        g.wait_for(lambda: len(load.bus) > 20 and len(load.log) > 20 and len(load.rows) > 20
                   and len(load.docs) > 5,
                   timeout=scaled(30), message="writes under way")
        began = time.monotonic()
        r = run_cli(g, "backup", archive, "--passphrase-file", pass_file)
        time.sleep(0.2)  # writes go on after the backup too
        load.finish()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse(load.errors, load.errors)
        self.assertTrue(os.path.exists(archive))
        self.assertFalse(os.path.exists(archive + ".tmp"))
        self.assertEqual([n for n in os.listdir(g.data_dir) if n.startswith(".backup")], [],
                         "the backup's staging is removed")
        before = lambda seq: [x for x in seq if x[0] < began]  # noqa: E731
        acked_bus, acked_log, acked_rows = before(load.bus), before(load.log), before(load.rows)
        acked_docs = before(load.docs)
        self.assertTrue(acked_bus and acked_log and acked_rows and acked_docs)
        g.stop()

        g2 = GraceServer(kernels=KERNELS)
        self.addCleanup(g2.close)
        r = restore(archive, g2.data_dir, passphrase_file=pass_file)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("immutable_log tree head", r.stdout)
        g2.start()
        # Users and their passwords came back: the admin's, and the user's.
        g2.api_headers["Authorization"] = "Bearer " + g2.login(*g.first_admin())
        tok2 = g2.login(USER, USER_PW)
        user2 = {"Authorization": "Bearer " + tok2}
        # Every acknowledged memory row.
        titles, cursor = set(), None
        while True:
            path = "/memory/tables/notes/rows?limit=1000"
            if cursor:
                path += "&cursor=" + urllib.parse.quote(cursor)
            st, _, out = g2.http("GET", path, headers=user2)
            self.assertEqual(st, 200, out)
            titles |= {row["data"]["title"] for row in out["rows"]}
            cursor = out["next_cursor"]
            if not cursor:
                break
        missing = [t for _, t in acked_rows if t not in titles]
        self.assertEqual(missing, [], "acknowledged rows missing from the restore")
        # Every acknowledged document, its own and searchable: the index
        # came back with the rows.
        for _, doc_id, title in acked_docs:
            st, _, out = g2.http("GET", "/librarian/documents/%d" % doc_id, headers=user2)
            self.assertEqual((st, out.get("title")), (200, title), out)
        n = int(acked_docs[-1][2].split()[-1])
        st, _, out = g2.http("GET", "/librarian/search?query=backupword%d" % n, headers=user2)
        self.assertEqual(st, 200, out)
        self.assertEqual([r["id"] for r in out["results"]], [acked_docs[-1][1]], out)
        # Every acknowledged bus message (the subject's count covers them).
        st, _, out = g2.http("GET", "/bus/subjects?subject=load.bus", headers=user2)
        self.assertEqual(st, 200, out)
        self.assertGreaterEqual(out["subjects"][0]["count"], len(acked_bus))
        # Every acknowledged log entry, with its data.
        for _, index, data in acked_log:
            st, _, out = g2.http("GET", "/kernels/immutable_log/entries/%d" % index)
            self.assertEqual(st, 200, out)
            self.assertEqual(out.get("data"), data, out)
        st, _, sth = g2.http("GET", "/kernels/immutable_log/sth")
        self.assertEqual(st, 200, sth)
        # The audit trail's references all resolve in the log.
        st, _, events = g2.http("GET", "/kernels/audit/events?limit=1000")
        self.assertEqual(st, 200, events)
        indexes = [e["log_index"] for e in events["events"] if e.get("log_index") is not None]
        self.assertTrue(indexes, "some audit events reached the log before the backup")
        self.assertLess(max(indexes), sth["tree_size"])
        st, _, v = g2.http("GET", "/kernels/immutable_log/verify", timeout=scaled(60))
        self.assertEqual((st, v.get("ok")), (200, True), v)

    def test_bad_archives_are_refused_and_nothing_is_written(self):
        with GraceServer(kernels=KERNELS) as g:
            pass_file = self.write_passphrase(g)
            wrong = self.write_passphrase(g, "not the passphrase at all", "wrong")
            good = os.path.join(g.tmp, "good.backup")
            r = run_cli(g, "backup", good, "--passphrase-file", pass_file)
            self.assertEqual(r.returncode, 0, r.stderr)
            # A second backup does not replace the first without --force.
            r = run_cli(g, "backup", good, "--passphrase-file", pass_file)
            self.assertEqual(r.returncode, 2, r.stderr)
            # The API refuses a request without exactly one way to key it.
            st, _, out = g.http("POST", "/backup", {})
            self.assertEqual((st, out["error"]["code"]), (400, "invalid"), out)
            st, _, out = g.http("POST", "/backup", {"passphrase": "short"})
            self.assertEqual(st, 400, out)
            st, _, out = g.http("POST", "/backup", {"no_secrets": True},
                                auth=False)
            self.assertEqual(st, 401, out)

            with open(good, "rb") as f:
                blob = f.read()
            target = os.path.join(g.tmp, "restored")

            def refused(data, why, passphrase=pass_file):
                path = os.path.join(g.tmp, "bad.backup")
                with open(path, "wb") as f:
                    f.write(data)
                r = restore(path, target, passphrase_file=passphrase)
                self.assertEqual(r.returncode, 1, "%s: %s %s" % (why, r.stdout, r.stderr))
                self.assertIn("restore refused", r.stderr, why)
                self.assertFalse(os.path.exists(target), why + ": something was written")
                self.assertEqual([n for n in os.listdir(g.tmp) if ".restore-" in n], [], why)
                return r.stderr

            self.assertIn("wrong passphrase", refused(blob, "wrong passphrase", wrong))
            self.assertIn("truncated", refused(blob[: len(blob) // 2], "truncated"))
            flipped = bytearray(blob)
            at = flipped.find(b"SQLite format 3")
            flipped[at + 4000] ^= 1
            self.assertIn("differs from the manifest", refused(bytes(flipped), "one bit flipped"))
            # A changed manifest (a file's hash rewritten) fails its MAC.
            at = blob.find(b'"sha256": "') + len(b'"sha256": "')
            forged = bytearray(blob)
            forged[at] = ord("0") if forged[at] != ord("0") else ord("1")
            self.assertIn("manifest was changed", refused(bytes(forged), "forged manifest"))
            self.assertIn("not a Grace backup", refused(b"\0" * 10240, "not an archive"))

            # A non-empty target is refused; --force moves it aside.
            os.makedirs(target)
            with open(os.path.join(target, "keep"), "w") as f:
                f.write("x")
            r = restore(good, target, passphrase_file=pass_file)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn("not empty", r.stderr)
            r = restore(good, target, "--force", "--json", passphrase_file=pass_file)
            self.assertEqual(r.returncode, 0, r.stderr)
            report = json.loads(r.stdout)
            self.assertTrue(os.path.exists(os.path.join(report["replaced_moved_to"], "keep")))
            self.assertTrue(all(c["ok"] for c in report["checks"]), report)

    def test_without_secrets_the_keys_stay_out(self):
        with GraceServer(kernels=KERNELS) as g:
            archive = os.path.join(g.tmp, "nokeys.backup")
            r = run_cli(g, "backup", archive, "--no-secrets")
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(archive, "rb") as f:
                blob = f.read()
            for name in ("crypto.master", "immutable_log.key"):
                with open(os.path.join(g.data_dir, name), "rb") as f:
                    secret = f.read()
                self.assertNotIn(secret, blob, name + " is in the archive")
            target = os.path.join(g.tmp, "restored")
            r = restore(archive, target, "--json")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("--no-secrets", r.stderr)
            report = json.loads(r.stdout)
            skipped = {s["name"] for s in report["skipped"]}
            self.assertLessEqual({"crypto.master", "immutable_log.key"}, skipped)
            self.assertFalse(os.path.exists(os.path.join(target, "crypto.master")))


if __name__ == "__main__":
    unittest.main()
