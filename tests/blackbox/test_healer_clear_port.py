"""clear_port: a kernel process left over from a killed grace serve holds
its port; the healer identifies it (pid, start time, command line), ends
it, and starts the kernel under the supervisor. A foreign program on
another kernel's port is never ended unless an operator forces it."""

import os
import unittest

from harness import GraceServer, GraceTestCase, pid_alive, port_bindable, scaled, spare_kernels
from healer_support import (ForeignProcess, check_incident_shape, diagnose, heal, kill_popen,
                            start_leftover_kernel, step)

FOREIGN_SLOT, OTHER = spare_kernels(2)


class HealerClearPort(GraceTestCase):
    def test_stale_kernel_cleared_foreign_refused_then_forced(self):
        with GraceServer(kernels={"librarian": {}, FOREIGN_SLOT: {}, OTHER: {}},
                         expect={"librarian": "port_unavailable",
                                 FOREIGN_SLOT: "port_unavailable"},
                         autostart=False) as g:
            lib_port = g.kernel_port("librarian")
            leftover = start_leftover_kernel(g, "librarian")
            self.addCleanup(kill_popen, leftover)
            g.wait_for(lambda: leftover.poll() is not None or not port_bindable(lib_port),
                       timeout=scaled(15), message="the leftover kernel listening")
            self.assertIsNone(leftover.poll(), "the leftover kernel exited")
            # It answers on its own, as a stale kernel would.
            st, _, body = g.http("GET", "/health", port=lib_port)
            self.assertEqual((st, body["pid"]), (200, leftover.pid))

            foreign = ForeignProcess(g.kernel_port(FOREIGN_SLOT))
            self.addCleanup(foreign.stop)

            g.start()
            k = g.kernel("librarian")
            self.assertEqual(k["state"], "port_unavailable")
            self.assertEqual(k["port_holder"]["pid"], leftover.pid)
            self.assertIn("kernel librarian", k["port_holder"]["cmdline"])
            self.assertEqual(g.kernel(FOREIGN_SLOT)["port_holder"]["pid"], foreign.pid)

            st, d = diagnose(g, "librarian")
            self.assertEqual(st, 200, d)
            check_incident_shape(self, d, "librarian")
            self.assertEqual((d["playbook"], d["outcome"]), ("diagnose_network", "diagnosed"))
            diag = d["diagnosis"]
            self.assertEqual(diag["issue_type"], "port_held_by_stale_kernel")
            self.assertTrue(diag["listening"])
            self.assertEqual(diag["port"], lib_port)
            self.assertEqual(diag["supervisor_state"], "port_unavailable")
            self.assertEqual(diag["port_holder"]["kind"], "stale_kernel")
            self.assertEqual(diag["port_holder"]["pid"], leftover.pid)
            self.assertFalse(diag["port_holder"]["ours"])
            self.assertIn("kernel librarian", diag["port_holder"]["cmdline"])
            self.assertIsInstance(diag["connect_ms"], (int, float))
            # Diagnosing changes nothing.
            self.assertIsNone(leftover.poll())
            self.assertEqual(g.kernel("librarian")["state"], "port_unavailable")

            # The foreign holder first: clear_port refuses to end it.
            st, inc = heal(g, FOREIGN_SLOT, action="clear_port")
            self.assertEqual(st, 200, inc)
            check_incident_shape(self, inc, FOREIGN_SLOT)
            self.assertEqual(inc["outcome"], "refused", inc)
            self.assertEqual(inc["diagnosed_issue"], "port_held_by_foreign_process")
            self.assertEqual(inc["diagnosis"]["port_holder"]["pid"], foreign.pid)
            self.assertEqual(step(inc, "clear_holder")["result"], "refused")
            self.assertIn("force", step(inc, "clear_holder")["detail"])
            self.assertNotIn("start", [s["step"] for s in inc["steps"]])
            self.assertFalse(inc.get("forced", False))
            self.assertIsNone(inc["verification"])
            self.assertTrue(foreign.alive(), "a foreign process was ended without force")
            self.assertEqual(g.kernel(FOREIGN_SLOT)["state"], "port_unavailable")

            # The stale kernel: heal without an action picks clear_port.
            st, inc = heal(g, "librarian")
            self.assertEqual(st, 200, inc)
            check_incident_shape(self, inc, "librarian")
            self.assertEqual(inc["outcome"], "healed", inc)
            self.assertEqual(inc["playbook"], "clear_port")
            self.assertIsNone(inc["requested_action"])
            self.assertEqual(inc["diagnosed_issue"], "port_held_by_stale_kernel")
            self.assertEqual([s["step"] for s in inc["steps"]], ["clear_holder", "start", "verify"])
            self.assertIn(str(leftover.pid), step(inc, "clear_holder")["detail"])
            self.assertFalse(inc.get("forced", False))
            leftover.wait(timeout=scaled(10))  # ended by the healer: only reaped here
            k = g.kernel("librarian")
            self.assertEqual((k["state"], k["port"]), ("ready", lib_port))
            self.assertNotEqual(k["pid"], leftover.pid)
            self.assertEqual(inc["verification"]["answer"]["pid"], k["pid"])
            st, _, body = g.kernel_http("librarian", "GET", "/health")
            self.assertEqual((st, body["pid"]), (200, k["pid"]))
            st, _, body = g.http("GET", "/librarian/health")
            self.assertEqual((st, body["pid"]), (200, k["pid"]))
            # Under the supervisor: a crash is restarted on the same port.
            os.kill(k["pid"], 9)
            k2 = g.wait_kernel("librarian", lambda x: x["state"] == "ready"
                               and x["pid"] not in (None, k["pid"]))
            self.assertEqual(k2["port"], lib_port)
            # The foreign holder is still there after all this.
            self.assertTrue(foreign.alive())

            # Forced: the operator takes responsibility, and the incident says so.
            st, inc = heal(g, FOREIGN_SLOT, action="clear_port", force=True)
            self.assertEqual(st, 200, inc)
            check_incident_shape(self, inc, FOREIGN_SLOT)
            self.assertTrue(inc["force"])
            self.assertTrue(inc.get("forced"), inc)
            self.assertIn("forced", step(inc, "clear_holder")["detail"])
            self.assertEqual(inc["outcome"], "healed", inc)
            self.assertFalse(foreign.alive(), "the forced holder is still running")
            k = g.kernel(FOREIGN_SLOT)
            self.assertEqual((k["state"], k["port"]), ("ready", g.kernel_port(FOREIGN_SLOT)))
            self.assertEqual(g.health()["status"], "ok")
            o = g.kernel(OTHER)
            self.assertEqual((o["state"], o["restarts"]), ("ready", 0))

    def test_clear_port_when_nothing_holds_it(self):
        """clear_port on a kernel that holds its own port ends nothing (not
        even itself) and verifies."""
        with GraceServer(kernels={"librarian": {}}) as g:
            k = g.kernel("librarian")
            st, inc = heal(g, "librarian", action="clear_port")
            self.assertEqual(st, 200, inc)
            check_incident_shape(self, inc, "librarian")
            self.assertEqual(inc["outcome"], "healed", inc)
            self.assertEqual(step(inc, "clear_holder")["result"], "ok")
            self.assertTrue(pid_alive(k["pid"]))
            self.assertEqual(g.kernel("librarian")["pid"], k["pid"])


if __name__ == "__main__":
    unittest.main()
