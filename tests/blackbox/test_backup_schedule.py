"""Scheduled backups (issue 21, item 3): [backup] schedule makes the same
archive as `grace backup` into a directory of its own, proves each one by a
restore into a temporary directory, records the outcome beside it, keeps
the newest `keep`, and fires on its own at the schedule's times."""

import json
import os
import secrets
import stat
import subprocess
import tempfile
import unittest

from harness import GRACE_BIN, GraceServer, GraceTestCase, scaled

KERNELS = {"message_bus": {}, "immutable_log": {}, "crypto": {}}


def tars(d):
    return sorted(n for n in os.listdir(d) if n.endswith(".tar"))


class Scheduled(GraceTestCase):
    def wait_idle(self, g, runs):
        def idle():
            st, _, body = g.http("GET", "/backup/schedule")
            self.assertEqual(st, 200, body)
            return body if not body["running"] and len(body["runs"]) >= runs else None
        return g.wait_for(idle, scaled(90), interval=0.2, message="the scheduled backup")

    def test_run_prove_record_and_keep(self):
        tmp = tempfile.mkdtemp(prefix="grace-bks-")
        key = os.path.join(tmp, "backup.key")
        with open(os.open(key, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(secrets.token_hex(32) + "\n")
        out = os.path.join(tmp, "archives")
        cfg = {"backup": {"schedule": "@every 1h", "dir": out, "key_file": key, "keep": 1}}
        with GraceServer(kernels=KERNELS, config=cfg) as g:
            st, _, body = g.http("POST", "/bus/publish", {"subject": "bk.s", "payload": "x"})
            self.assertIn(st, (200, 201, 202), body)
            st, _, body = g.http("POST", "/backup/schedule/run")
            self.assertEqual(st, 202, body)
            self.assertTrue(body["running"])
            st, _, again = g.http("POST", "/backup/schedule/run")
            self.assertEqual(st, 409, again)  # one at a time
            body = self.wait_idle(g, 1)
            run = body["runs"][0]
            self.assertEqual(run["outcome"], "ok", run)
            self.assertIs(run["verified"], True, run)
            self.assertEqual(run["trigger"], "api")
            self.assertGreater(run["files"], 3)
            self.assertEqual(stat.S_IMODE(os.stat(out).st_mode), 0o700)
            # The proof: grace restore's own report, every check passed.
            with open(os.path.join(out, run["archive"] + ".json")) as f:
                rec = json.load(f)
            checks = rec["restore"]["checks"]
            self.assertTrue(checks, rec)
            self.assertTrue(all(c.get("ok", c.get("passed", True)) for c in checks), checks)
            # keep = 1: the second run removes the first, and its record.
            first = run["archive"]
            st, _, body = g.http("POST", "/backup/schedule/run")
            self.assertEqual(st, 202, body)
            g.wait_for(lambda: tars(out) != [first] and not
                       g.http("GET", "/backup/schedule")[2]["running"], scaled(90))
            self.assertEqual(len(tars(out)), 1)
            self.assertNotIn(first, tars(out))
            self.assertFalse(os.path.exists(os.path.join(out, first + ".json")))
            # A key file others may read is refused; nothing is made.
            os.chmod(key, 0o644)
            before = tars(out)
            st, _, body = g.http("POST", "/backup/schedule/run")
            self.assertEqual(st, 202, body)
            g.wait_for(lambda: any(n.endswith(".failed.json") for n in os.listdir(out)) and not
                       g.http("GET", "/backup/schedule")[2]["running"], scaled(60))
            self.assertEqual(tars(out), before)
            failed = [r for r in g.http("GET", "/backup/schedule")[2]["runs"]
                      if r["outcome"] == "failed"]
            self.assertIn("chmod 600", failed[0]["reason"])
            g.wait_log("scheduled backup")

    def test_fires_on_its_own(self):
        tmp = tempfile.mkdtemp(prefix="grace-bks-")
        out = os.path.join(tmp, "archives")
        cfg = {"backup": {"schedule": "@every 2s", "dir": out, "no_secrets": 1, "verify": 0}}
        with GraceServer(kernels={"message_bus": {}, "immutable_log": {}}, config=cfg) as g:
            g.wait_for(lambda: os.path.isdir(out) and tars(out), scaled(20),
                       message="a backup at the schedule's time")
            body = self.wait_idle(g, 1)
            run = body["runs"][-1]
            self.assertEqual(run["trigger"], "schedule")
            self.assertEqual(run["outcome"], "ok", run)
            self.assertIsNone(run["verified"])
            self.assertIsNotNone(body["next_at_ms"])

    def test_not_configured_and_refused_configurations(self):
        with GraceServer(kernels={"message_bus": {}}) as g:
            st, hdrs, body = g.http("GET", "/backup/schedule")
            self.assertEqual(st, 404, body)
            self.assertIn("[backup] schedule", body["error"]["message"])
        tmp = tempfile.mkdtemp(prefix="grace-bks-")
        for section, want in (("schedule = @daily\nno_secrets = 1\n", "needs dir"),
                              ("schedule = @daily\ndir = %s/a\n" % tmp, "exactly one of"),
                              ("schedule = 61 * * * *\ndir = %s/a\nno_secrets = 1\n" % tmp,
                               "schedule"),
                              ("dir = relative\n", "absolute")):
            path = os.path.join(tmp, "grace.ini")
            with open(path, "w") as f:
                f.write("[grace]\ndata_dir = %s/data\napi_port = 1\n[kernel.message_bus]\n"
                        "[policy]\nauthorizer = table\n[backup]\n%s" % (tmp, section))
            r = subprocess.run([GRACE_BIN, "serve", "--config", path], capture_output=True,
                               text=True, timeout=scaled(20))
            self.assertNotEqual(r.returncode, 0, section)
            self.assertIn(want, r.stderr, section)


if __name__ == "__main__":
    unittest.main()
