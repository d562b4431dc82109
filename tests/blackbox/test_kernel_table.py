"""The one table of kernels: each kernel's name, port, tier and
completeness are written once, in its definition, and everything else is
derived from it: `grace kernels-list` (text and --json), the configuration
of etc/grace.ini (which lists no kernels), /kernel-ports and /health, and
the README's kernel table (scripts/kernel_table.py)."""

import configparser
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import harness
from harness import GRACE_BIN, KERNEL_DEFS, REPO, GraceServer, GraceTestCase, scaled

SCRIPT = os.path.join(REPO, "scripts", "kernel_table.py")
GRACE_INI = os.path.join(REPO, "etc", "grace.ini")
STATES = ("complete", "partial", "placeholder")


class KernelTable(GraceTestCase):
    def tmpdir(self):
        d = tempfile.mkdtemp(prefix="grace-bb-table-")
        self.addCleanup(shutil.rmtree, d, True)
        return d

    def test_definitions_are_whole(self):
        defs = list(KERNEL_DEFS.values())
        self.assertEqual(len(defs), 20)
        ports = [k["port"] for k in defs]
        self.assertEqual(ports, sorted(ports), "kernels-list is in port order")
        self.assertEqual(len(set(ports)), len(ports))
        for k in defs:
            self.assertTrue(8100 <= k["port"] <= 8149, k)
            self.assertRegex(k["tier"], r"^[a-z0-9_]+$", k)
            self.assertTrue(k["summary"], k)
            self.assertIn(k["state"], STATES, k)
            # The state says what complete and routes say.
            want = ("complete" if k["complete"] else "partial" if k["routes"] else
                    "placeholder")
            self.assertEqual(k["state"], want, k)

    def test_text_and_json_agree(self):
        out = subprocess.run([GRACE_BIN, "kernels-list"], capture_output=True, text=True,
                             check=True, timeout=30).stdout
        rows = [line.split(None, 4) for line in out.splitlines()]
        self.assertEqual([(r[0], int(r[1]), r[2], r[3], r[4]) for r in rows],
                         [(k["name"], k["port"], k["tier"], k["state"], k["summary"])
                          for k in KERNEL_DEFS.values()])
        p = subprocess.run([GRACE_BIN, "kernels-list", "--bogus"], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(p.returncode, 2)
        self.assertIn("usage", p.stderr)

    def test_readme_table_is_made_from_the_definitions(self):
        p = subprocess.run([sys.executable, SCRIPT, "--grace", GRACE_BIN, "--check"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        # And the check can fail: a README whose table lost a row.
        with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
            text = f.read()
        row = "| 8130 | librarian |"
        self.assertIn(row, text)
        broken = os.path.join(self.tmpdir(), "README.md")
        with open(broken, "w", encoding="utf-8") as f:
            f.write("\n".join(l for l in text.split("\n") if not l.startswith(row)))
        p = subprocess.run([sys.executable, SCRIPT, "--grace", GRACE_BIN, "--check", broken],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("+" + row, p.stdout)
        self.assertIn("kernel_table.py --write", p.stderr)

    def test_grace_ini_repeats_no_kernel(self):
        cp = configparser.ConfigParser(inline_comment_prefixes=(";", "#"), interpolation=None,
                                       strict=True)
        cp.read(GRACE_INI)
        self.assertEqual([s for s in cp.sections() if s.startswith("kernel.")], [])

    def test_grace_ini_runs_every_kernel_as_defined(self):
        """`make run`'s configuration: every kernel, on its definition's
        port and tier, in its order, complete as its definition says."""
        with open(GRACE_INI) as f:
            text = f.read()
        with GraceServer(text=text, start_timeout=scaled(60)) as g:
            st, _, body = g.http("GET", "/kernel-ports")
            self.assertEqual(st, 200, body)
            self.assertEqual(
                [(k["name"], k["configured_port"], k["port"], k["tier"], k["complete"],
                  k["state"]) for k in body["kernels"]],
                [(k["name"], k["port"], k["port"] + g.offset, k["tier"], k["complete"],
                  "ready") for k in KERNEL_DEFS.values()])
            for name, k in KERNEL_DEFS.items():
                st, _, h = g.kernel_http(name, "GET", "/health")
                self.assertEqual((st, h["kernel"], h["complete"]), (200, name, k["complete"]))
        self.assertEqual(harness.BUILTIN_KERNELS,
                         {n: (k["port"], k["tier"]) for n, k in KERNEL_DEFS.items()})


if __name__ == "__main__":
    unittest.main()
