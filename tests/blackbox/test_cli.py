"""The command line: `grace status|kernels|health-check|heal|diagnose|
restart|incidents` against a running grace serve (--port-offset, --config,
GRACE_TOKEN): human tables by default, JSON with --json, exit status 0 when
all is well and non-zero when a kernel is not ready or a heal failed."""

import json
import re
import unittest

from harness import GraceServer, GraceTestCase, spare_kernels
from healer_support import ForeignProcess, run_cli, stub_kernel_command

OTHER, SICK, BLOCKED = spare_kernels(3)

QUIET = {"health_interval_ms": 600000, "watchdog_ms": 60000}


def out_of(test, r, code):
    test.assertEqual(r.returncode, code, "exit %d, want %d\nstdout:\n%s\nstderr:\n%s"
                     % (r.returncode, code, r.stdout, r.stderr))
    return r.stdout


def table_rows(text, header_word="KERNEL"):
    """The rows under the header line starting with header_word, split on
    whitespace."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.split()[:1] == [header_word]:
            return [ln.split() for ln in lines[i + 1:] if ln.strip()]
    raise AssertionError("no table with %s in:\n%s" % (header_word, text))


class Cli(GraceTestCase):
    def test_healthy(self):
        with GraceServer(kernels={"librarian": {}, OTHER: {}}) as g:
            lib = g.kernel("librarian")

            out = out_of(self, run_cli(g, "status"), 0)
            self.assertRegex(out.splitlines()[0], r"^grace \S+: ok, 2 of 2 kernels ready$")
            rows = {r[0]: r for r in table_rows(out)}
            self.assertEqual(set(rows), {"librarian", OTHER})
            self.assertEqual(rows["librarian"][1:4],
                             ["ready", str(lib["port"]), str(lib["pid"])])
            self.assertIn("LAST EXIT", out)
            ans = json.loads(out_of(self, run_cli(g, "status", "--json"), 0))
            self.assertEqual(ans["status"], "ok")
            self.assertEqual(ans["kernels"]["librarian"]["pid"], lib["pid"])

            out = out_of(self, run_cli(g, "kernels"), 0)
            rows = {r[0]: r for r in table_rows(out)}
            self.assertEqual(rows["librarian"][1:3], [str(lib["port"]), "8130"])
            self.assertEqual(rows["librarian"][-1], "complete")
            self.assertEqual(rows[OTHER][-1], "placeholder")
            ans = json.loads(out_of(self, run_cli(g, "kernels", "--json"), 0))
            self.assertEqual({k["name"] for k in ans["kernels"]}, {"librarian", OTHER})
            self.assertEqual(ans["port_offset"], g.offset)

            out = out_of(self, run_cli(g, "health-check"), 0)
            rows = {r[0]: r for r in table_rows(out)}
            self.assertEqual(rows["librarian"][1:3], ["yes", "200"])
            self.assertIn("2 of 2 healthy", out)
            ans = json.loads(out_of(self, run_cli(g, "health-check", "--json"), 0))
            self.assertEqual((ans["status"], ans["healthy"]), ("ok", 2))

            out = out_of(self, run_cli(g, "diagnose", "librarian"), 0)
            self.assertEqual(out.splitlines()[0], "librarian: healthy")
            self.assertRegex(out, r"process\s+pid %d, (sleeping|running)" % lib["pid"])
            self.assertRegex(out, r"/health\s+200 in ")
            ans = json.loads(out_of(self, run_cli(g, "diagnose", "librarian", "--json"), 0))
            self.assertEqual(ans["diagnosis"]["issue_type"], "healthy")

            out = out_of(self, run_cli(g, "heal", "librarian", "--action", "restart_component"), 0)
            m = re.match(r"incident (\d+): healed on librarian \(api\), playbook "
                         r"restart_component, issue healthy, \d+ ms", out)
            self.assertTrue(m, out)
            for name in ("stop", "start", "verify"):
                self.assertRegex(out, r"\n  %s\s+ok\s+[\d.]+ ms  " % name)
            lib2 = g.kernel("librarian")
            self.assertNotEqual(lib2["pid"], lib["pid"])
            # Healthy, without an action: only diagnosed, and that is no failure.
            ans = json.loads(out_of(self, run_cli(g, "heal", "librarian", "--json"), 0))
            self.assertEqual((ans["outcome"], ans["playbook"]), ("diagnosed", "diagnose_network"))

            out = out_of(self, run_cli(g, "restart", "librarian"), 0)
            self.assertRegex(out, r"^librarian: (stopping|starting|ready) \(restart requested\)")
            g.wait_kernel("librarian", lambda k: k["state"] == "ready"
                          and k["pid"] not in (None, lib2["pid"]))
            ans = json.loads(out_of(self, run_cli(g, "restart", "librarian", "--json"), 0))
            self.assertEqual((ans["name"], ans["action"]), ("librarian", "restart"))
            g.wait_kernel("librarian", lambda k: k["state"] == "ready")

            out = out_of(self, run_cli(g, "incidents"), 0)
            rows = table_rows(out, "ID")
            # Two diagnoses, a restart_component, a heal that only diagnosed.
            self.assertEqual([r[0] for r in rows], ["4", "3", "2", "1"])
            self.assertEqual(rows[0][1:5], ["librarian", "api", "diagnose_network", "diagnosed"])
            self.assertEqual(rows[1][1:5], ["librarian", "api", "restart_component", "healed"])
            self.assertEqual(rows[3][1:5], ["librarian", "diagnose", "diagnose_network",
                                            "diagnosed"])
            self.assertRegex(rows[1][5], r"^\d+ms$")
            ans = json.loads(out_of(self, run_cli(g, "incidents", "--json", "--limit", "1"), 0))
            self.assertEqual([i["id"] for i in ans["incidents"]], [4])

    def test_unhealthy_and_failed_heals(self):
        kernels = {"librarian": {}, OTHER: {},
                   SICK: dict(QUIET, command=stub_kernel_command(500)), BLOCKED: {}}
        with GraceServer(kernels=kernels, expect={BLOCKED: "port_unavailable"},
                         autostart=False) as g:
            holder = ForeignProcess(g.kernel_port(BLOCKED))
            self.addCleanup(holder.stop)
            g.start()

            out = out_of(self, run_cli(g, "status"), 1)
            self.assertIn("degraded, 3 of 4 kernels ready", out)
            rows = {r[0]: r for r in table_rows(out)}
            self.assertEqual(rows[BLOCKED][1], "port_unavailable")
            ans = json.loads(out_of(self, run_cli(g, "status", "--json"), 1))
            self.assertEqual(ans["status"], "degraded")
            # The stand-in is "ready" but fails its health check.
            out = out_of(self, run_cli(g, "health-check"), 1)
            rows = {r[0]: r for r in table_rows(out)}
            self.assertEqual(rows[SICK][1:3], ["NO", "500"])
            self.assertEqual(rows["librarian"][1], "yes")

            out = out_of(self, run_cli(g, "diagnose", SICK), 1)
            self.assertEqual(out.splitlines()[0], "%s: process_hung" % SICK)
            out = out_of(self, run_cli(g, "heal", SICK), 1)
            self.assertRegex(out, r"^incident \d+: failed on %s" % SICK)
            self.assertRegex(out, r"\n  verify\s+failed")
            ans = json.loads(out_of(self, run_cli(g, "heal", SICK, "--json"), 1))
            self.assertEqual((ans["outcome"], ans["verification"]["status"]), ("failed", 500))

            # A foreign holder: refused (exit 1) unless forced.
            out = out_of(self, run_cli(g, "diagnose", BLOCKED), 1)
            self.assertIn("port_held_by_foreign_process", out)
            self.assertIn("held by foreign", out)
            out = out_of(self, run_cli(g, "heal", BLOCKED, "--action", "clear_port"), 1)
            self.assertRegex(out, r"^incident \d+: refused on %s" % BLOCKED)
            self.assertTrue(holder.alive())
            ans = json.loads(out_of(self, run_cli(g, "heal", BLOCKED, "--action", "clear_port",
                                                  "--force", "--json"), 0))
            self.assertEqual(ans["outcome"], "healed", ans)
            self.assertTrue(ans["forced"])
            self.assertFalse(holder.alive())

            # Stopped by an operator: status fails again.
            st, _, _ = g.http("POST", "/kernel-ports/%s/stop" % SICK)
            self.assertEqual(st, 202)
            g.wait_kernel(SICK, lambda k: k["state"] == "stopped")
            out = out_of(self, run_cli(g, "status"), 1)
            rows = {r[0]: r for r in table_rows(out)}
            self.assertEqual(rows[SICK][1], "stopped")
            self.assertEqual(rows[BLOCKED][1], "ready")

            out = out_of(self, run_cli(g, "incidents"), 0)
            outcomes = [r[4] for r in table_rows(out, "ID")]
            self.assertIn("failed", outcomes)
            self.assertIn("refused", outcomes)

    def test_usage_and_errors(self):
        with GraceServer(kernels={"librarian": {}}) as g:
            # Names are checked before anything is sent.
            r = run_cli(g, "heal")
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("usage", r.stderr)
            r = run_cli(g, "heal", "Lib!rarian")
            self.assertEqual(r.returncode, 2, r.stderr)
            r = run_cli(g, "status", "extra")
            self.assertEqual(r.returncode, 2, r.stderr)
            r = run_cli(g, "heal", "nope")
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("404", r.stderr)
            self.assertIn("unknown_kernel", r.stderr)
            r = run_cli(g, "heal", "librarian", "--action", "explode")
            self.assertEqual(r.returncode, 2, r.stderr)
            r = run_cli(g, "restart", "nope")
            self.assertEqual(r.returncode, 2, r.stderr)
            # (status reads /health, which needs no login.)
            out_of(self, run_cli(g, "status", token=False), 0)
            for args in (("kernels",), ("health-check",), ("heal", "librarian"),
                         ("diagnose", "librarian"), ("restart", "librarian"),
                         ("incidents",)):
                r = run_cli(g, *args, token=False)
                self.assertNotEqual(r.returncode, 0, args)
                self.assertIn("401", r.stderr)
                self.assertEqual(r.stdout, "")
            g.create_user("plain", "a long enough password")
            tok = g.login("plain", "a long enough password")
            r = run_cli(g, "heal", "librarian", token=tok)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("403", r.stderr)
            r = run_cli(g, "restart", "librarian", token=tok)
            self.assertIn("403", r.stderr)
            self.assertNotEqual(r.returncode, 0)
            out_of(self, run_cli(g, "status", token=tok), 0)
            pid = g.kernel("librarian")["pid"]
            g.stop()
            r = run_cli(g, "status")
            self.assertEqual(r.returncode, 3, r.stderr)
            self.assertIn("cannot reach the API on 127.0.0.1:%d" % g.api_port, r.stderr)
            self.assertNotEqual(pid, None)


if __name__ == "__main__":
    unittest.main()
