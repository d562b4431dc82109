"""The built-in default policy set across an upgrade of Grace.

A newer Grace brings a changed built-in set (new routes, new calls between
kernels). The policy kernel replaces the stored "default" with it only
while that set is still exactly what an earlier Grace wrote; a set an
operator changed is kept, with a warning when the built-in moved on under
it. An earlier Grace is played by rewriting, with Grace stopped, the
stored built-in version's text into an older one (a user permitted one
action less), and, for a store from before the built-in mark, removing
the mark."""

import os
import sqlite3
import subprocess
import unittest

from harness import GRACE_BIN, GraceServer, GraceTestCase, scaled

SET = "/kernels/policy/policy-sets/default"
KERNELS = {"policy": {}, "audit": {}, "immutable_log": {}}
DROPPED = 'Action::"guardian.read",'
UPGRADE_ACTOR = "policy (upgrade: the built-in default set of this version)"


def builtin_text():
    return subprocess.run([GRACE_BIN, "policy", "default"], capture_output=True, text=True,
                          check=True, timeout=30).stdout


def older_builtin():
    text = builtin_text()
    assert DROPPED in text, "the built-in set no longer lets users read the guardian"
    return text.replace(DROPPED, "", 1)


def rewrite(g, version, text, drop_mark=False):
    """With Grace stopped: version `version` of "default" holds `text`."""
    db = sqlite3.connect(os.path.join(g.data_dir, "policy.db"))
    try:
        with db:
            n = db.execute("UPDATE policy_versions SET text = ? WHERE name = 'default'"
                           " AND version = ?", (text, version)).rowcount
            assert n == 1, "no version %d of the default set" % version
            if drop_mark:
                db.execute("DELETE FROM meta WHERE key LIKE 'builtin_version:%'")
    finally:
        db.close()


def mark(g):
    db = sqlite3.connect(os.path.join(g.data_dir, "policy.db"))
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'builtin_version:default'").fetchone()
        return row[0] if row else None
    finally:
        db.close()


class Upgrade(GraceTestCase):
    def current(self, g):
        st, _, cur = g.http("GET", SET)
        self.assertEqual(st, 200, cur)
        return cur

    def restart(self, g):
        g.stop()
        g.start()
        g.login()

    def upgrade_events(self, g):
        st, _, out = g.http("GET", "/kernels/audit/events?action=policy.set.put")
        self.assertEqual(st, 200, out)
        return [e for e in out["events"] if e["actor"] == UPGRADE_ACTOR]

    def check_upgraded(self, g, version, marked):
        cur = self.current(g)
        self.assertEqual((cur["version"], cur["text"]), (version, builtin_text()))
        self.assertEqual(mark(g), marked)
        self.assertIn("upgraded to this version's as version %d" % version, g.log())
        g.wait_for(lambda: self.upgrade_events(g), scaled(15),
                   message="the upgrade in the audit trail")
        # What the older set denied, the upgraded one allows.
        g.create_user("viewer", "viewer password 1")
        token = g.login("viewer", "viewer password 1")
        st, _, out = g.http("GET", "/guardian/status",
                            headers={"Authorization": "Bearer " + token})
        self.assertEqual(st, 200, out)

    def test_an_unchanged_builtin_set_is_upgraded(self):
        with GraceServer(kernels=KERNELS) as g:
            self.assertEqual(self.current(g)["version"], 1)
            self.assertEqual(mark(g), 1)
            g.stop()
            rewrite(g, 1, older_builtin())
            g.start()
            g.login()
            self.check_upgraded(g, 2, 2)
            # Upgraded once: a restart writes nothing more.
            self.restart(g)
            self.assertEqual(self.current(g)["version"], 2)

    def test_a_store_from_before_the_mark(self):
        with GraceServer(kernels=KERNELS) as g:
            g.stop()
            rewrite(g, 1, older_builtin(), drop_mark=True)
            self.assertIsNone(mark(g))
            g.start()
            g.login()
            self.check_upgraded(g, 2, 2)

    def test_a_set_the_operator_changed_is_kept(self):
        with GraceServer(kernels=KERNELS) as g:
            mine = builtin_text() + '\n@id("mine")\nforbid (principal, action, resource)' \
                                    ' when { principal has name && principal.name == "mallory" };\n'
            st, _, out = g.http("PUT", SET, {"policies": mine})
            self.assertEqual(st, 200, out)
            self.assertEqual(out["version"], 2)
            # The built-in is what this Grace wrote: kept, no warning.
            self.restart(g)
            self.assertEqual((self.current(g)["version"], self.current(g)["text"]), (2, mine))
            self.assertNotIn("was changed since Grace wrote", g.log())
            # The built-in moved on under the operator's set: kept, and said.
            g.stop()
            rewrite(g, 1, older_builtin())
            g.start()
            g.login()
            cur = self.current(g)
            self.assertEqual((cur["version"], cur["text"]), (2, mine))
            self.assertIn('policy set \\"default\\" (version 2) was changed since Grace wrote',
                          g.log())
            self.assertEqual(mark(g), 1)

    def test_reset_marks_the_builtin_set(self):
        with GraceServer(kernels=KERNELS) as g:
            st, _, out = g.http("PUT", SET, {"policies": builtin_text() + "\n// mine\n"})
            self.assertEqual(st, 200, out)
            g.stop()
            p = subprocess.run([GRACE_BIN, "policy", "reset", "--config", g.config_path,
                                "--data-dir", g.data_dir, "--port-offset", str(g.offset)],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(mark(g), 3)
            # So the next Grace may upgrade it.
            rewrite(g, 3, older_builtin())
            g.start()
            g.login()
            self.check_upgraded(g, 4, 4)


if __name__ == "__main__":
    unittest.main()
