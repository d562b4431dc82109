"""A heal is "healed" only when the kernel answers /health at the end: a
stand-in kernel (healer_support.py run as a program) that comes up ready but
answers /health with 500 makes every heal fail, with the 500 in the
verification; the same stand-in answering 200 heals. A slow /health is
diagnosed slow_response and only diagnosed."""

import unittest

from harness import GraceServer, GraceTestCase, spare_kernels
from healer_support import (check_incident_shape, diagnose, get_json, heal, step,
                            stub_kernel_command)

SICK, WELL, SLOW = spare_kernels(3)

QUIET = {"health_interval_ms": 600000, "watchdog_ms": 60000}


class HealerVerify(GraceTestCase):
    def test_verification_is_real(self):
        kernels = {
            "librarian": {},
            SICK: dict(QUIET, command=stub_kernel_command(500)),
            WELL: dict(QUIET, command=stub_kernel_command(200)),
        }
        with GraceServer(kernels=kernels) as g:
            sick = g.kernel(SICK)
            self.assertEqual(sick["state"], "ready")  # READY=1 says nothing about /health
            st, _, body = g.http("GET", "/kernels/%s/health" % SICK)
            self.assertEqual((st, body["status"]), (500, "failing"))

            st, d = diagnose(g, SICK)
            self.assertEqual(st, 200, d)
            self.assertEqual(d["diagnosis"]["issue_type"], "process_hung", d["diagnosis"])
            self.assertEqual(d["diagnosis"]["health"]["status"], 500)
            self.assertEqual(d["diagnosis"]["health"]["answer"]["status"], "failing")

            st, inc = heal(g, SICK)
            self.assertEqual(st, 200, inc)
            check_incident_shape(self, inc, SICK)
            self.assertEqual(inc["playbook"], "restart_component")
            self.assertEqual(inc["outcome"], "failed", inc)
            v = inc["verification"]
            self.assertFalse(v["ok"], v)
            self.assertEqual(v["status"], 500, v)
            self.assertEqual(v["answer"]["status"], "failing")
            # The verification came from the new process, not the old one.
            k = g.kernel(SICK)
            self.assertNotEqual(k["pid"], sick["pid"])
            self.assertEqual(v["answer"]["pid"], k["pid"])
            self.assertEqual(step(inc, "start")["result"], "ok")
            self.assertEqual(step(inc, "verify")["result"], "failed")
            self.assertEqual(inc["steps"][-1]["step"], "verify")

            # Asking for the playbook by name changes nothing about that.
            st, inc2 = heal(g, SICK, action="restart_component")
            self.assertEqual(st, 200, inc2)
            self.assertEqual((inc2["outcome"], inc2["verification"]["status"]), ("failed", 500))
            st, inc3 = heal(g, SICK, action="rebind_port")
            self.assertEqual(st, 200, inc3)
            self.assertEqual((inc3["outcome"], inc3["verification"]["status"]), ("failed", 500))

            # The same program answering 200: healed. (The stand-in works.)
            well = g.kernel(WELL)
            st, inc = heal(g, WELL, action="restart_component")
            self.assertEqual(st, 200, inc)
            check_incident_shape(self, inc, WELL)
            self.assertEqual(inc["outcome"], "healed", inc)
            self.assertEqual(inc["verification"]["status"], 200)
            self.assertNotEqual(g.kernel(WELL)["pid"], well["pid"])

            # Recorded as such.
            stored = get_json(g, "/network-healer/incidents/%d" % inc2["id"])
            self.assertEqual((stored["outcome"], stored["verification"]["status"]), ("failed", 500))
            stats = get_json(g, "/network-healer/stats")["playbooks"]
            rc = stats["restart_component"]
            self.assertEqual((rc["runs"], rc["healed"], rc["failed"]), (3, 1, 2), rc)
            self.assertAlmostEqual(rc["success_rate"], 1 / 3, places=6)
            rb = stats["rebind_port"]
            self.assertEqual((rb["runs"], rb["healed"], rb["failed"]), (1, 0, 1), rb)
            self.assertEqual(rb["success_rate"], 0)

    def test_slow_health_is_only_diagnosed(self):
        # /health answers 200 after 2.3 s; slow means over half the 4 s timeout.
        kernels = {"librarian": {},
                   SLOW: dict(QUIET, health_timeout_ms=4000,
                              command=stub_kernel_command(200, 2300))}
        with GraceServer(kernels=kernels) as g:
            pid = g.kernel(SLOW)["pid"]
            st, inc = heal(g, SLOW)
            self.assertEqual(st, 200, inc)
            check_incident_shape(self, inc, SLOW)
            self.assertEqual(inc["diagnosed_issue"], "slow_response", inc["diagnosis"])
            self.assertEqual(inc["diagnosis"]["slow_threshold_ms"], 2000)
            self.assertGreaterEqual(inc["diagnosis"]["health"]["latency_ms"], 2300)
            self.assertEqual((inc["playbook"], inc["outcome"]), ("diagnose_network", "diagnosed"))
            self.assertEqual(g.kernel(SLOW)["pid"], pid)  # nothing was changed


if __name__ == "__main__":
    unittest.main()
