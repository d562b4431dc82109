"""restart_component: a kernel stopped with SIGSTOP (the watchdog and the
guardian's probes set far off, so only the healer acts) is diagnosed
process_hung and healed by a restart; a second heal of the same kernel
meanwhile is refused with 409. A kernel waiting out a restart backoff is
process_dead, and healed at once. (A kernel an operator stopped, diagnosed
port_not_listening: see test_healer_known_bugs.py.)"""

import os
import shutil
import tempfile
import threading
import time
import unittest

from harness import GraceServer, GraceTestCase, pid_alive, scaled, spare_kernels
from healer_support import (check_incident_shape, diagnose, guardian_kernel, heal, proc_state,
                            stop_process, stub_kernel_command)

OTHER = spare_kernels(1)[0]

HEALTH_TIMEOUT_MS = 500
QUIET = {"watchdog_ms": 600000, "health_interval_ms": 600000,
         "health_timeout_ms": HEALTH_TIMEOUT_MS}


class HealerHung(GraceTestCase):
    def test_sigstop_diagnosed_hung_and_restarted(self):
        with GraceServer(kernels={"librarian": dict(QUIET), OTHER: {}}) as g:
            st, _, doc = g.http("POST", "/librarian/documents",
                                {"title": "Before the hang", "body": "kept"})
            self.assertEqual(st, 201, doc)
            k = g.kernel("librarian")
            old_pid = k["pid"]
            other_pid = g.kernel(OTHER)["pid"]

            # Healthy first: the diagnosis says so and measures it.
            st, d = diagnose(g, "librarian")
            self.assertEqual(st, 200, d)
            diag = d["diagnosis"]
            self.assertEqual(diag["issue_type"], "healthy", diag)
            self.assertEqual(diag["process"]["pid"], old_pid)
            self.assertTrue(diag["process"]["alive"])
            self.assertIn(diag["process"]["state"], ("sleeping", "running"))
            self.assertGreater(diag["process"]["rss_bytes"], 0)
            self.assertGreater(diag["process"]["open_fds"], 0)
            self.assertGreater(diag["process"]["max_fds"], diag["process"]["open_fds"])
            self.assertEqual(diag["health"]["status"], 200)
            self.assertEqual(diag["health"]["answer"]["pid"], old_pid)
            self.assertIsInstance(diag["health"]["latency_ms"], (int, float))
            self.assertIsInstance(diag["connect_ms"], (int, float))
            self.assertEqual(diag["port_holder"]["kind"], "ours")
            self.assertTrue(diag["listening"])
            self.assertIn("length", diag["accept_queue"])

            stop_process(self, old_pid)
            g.wait_for(lambda: proc_state(old_pid) == "T", message="the kernel stopped")

            st, d = diagnose(g, "librarian")
            self.assertEqual(st, 200, d)
            check_incident_shape(self, d, "librarian")
            self.assertEqual(d["outcome"], "diagnosed")
            diag = d["diagnosis"]
            self.assertEqual(diag["issue_type"], "process_hung", diag)
            self.assertEqual(diag["process"]["state"], "stopped")
            self.assertEqual(diag["process"]["pid"], old_pid)
            self.assertTrue(diag["process"]["alive"])
            self.assertNotEqual(diag["health"]["status"], 200)
            self.assertTrue(diag["health"].get("error"), diag["health"])
            # The supervisor holds the listening socket: connecting still works.
            self.assertTrue(diag["listening"])
            self.assertIsInstance(diag["connect_ms"], (int, float))
            # The probe gave up after health_timeout_ms, not much later.
            self.assertLess(d["duration_ms"], HEALTH_TIMEOUT_MS + scaled(1500), d)
            # Diagnosing left it alone.
            self.assertEqual(proc_state(old_pid), "T")
            self.assertEqual(g.kernel("librarian")["pid"], old_pid)

            st, inc = heal(g, "librarian")
            self.assertEqual(st, 200, inc)
            check_incident_shape(self, inc, "librarian")
            self.assertEqual(inc["diagnosed_issue"], "process_hung")
            self.assertEqual(inc["playbook"], "restart_component")
            self.assertEqual(inc["outcome"], "healed", inc)
            self.assertEqual([s["step"] for s in inc["steps"]], ["stop", "start", "verify"])
            k = g.kernel("librarian")
            self.assertEqual(k["state"], "ready")
            self.assertNotEqual(k["pid"], old_pid)
            self.assertEqual(inc["verification"]["answer"]["pid"], k["pid"])
            self.assertEqual(inc["kernel_state"], "ready")
            g.wait_for(lambda: not pid_alive(old_pid), message="the hung kernel gone")
            st, _, body = g.kernel_http("librarian", "GET", "/health")
            self.assertEqual((st, body["pid"]), (200, k["pid"]))
            st, _, body = g.http("GET", "/librarian/documents/%d" % doc["id"])
            self.assertEqual((st, body["title"]), (200, "Before the hang"))
            # Not the watchdog's doing, and not counted as a crash.
            st, _, text = g.http("GET", "/metrics")
            self.assertIn('grace_kernel_watchdog_kills_total{kernel="librarian"} 0',
                          text.decode())
            self.assertEqual(g.kernel(OTHER)["pid"], other_pid)

            # The guardian saw it restarting, then ready again.
            gk = guardian_kernel(g, "librarian")
            self.assertEqual((gk["state"], gk["healing"]), ("ready", False))

    def test_heal_of_a_hung_kernel_is_not_run_twice(self):
        """A second heal while one runs for the same kernel: 409 naming it;
        a heal of another kernel meanwhile goes ahead."""
        slow = dict(QUIET, health_timeout_ms=2000)
        with GraceServer(kernels={"librarian": slow, OTHER: {}}) as g:
            pid = g.kernel("librarian")["pid"]
            stop_process(self, pid)
            g.wait_for(lambda: proc_state(pid) == "T")
            first = {}
            t = threading.Thread(target=lambda: first.update(r=heal(g, "librarian")))
            t.start()
            try:
                g.wait_for(lambda: guardian_kernel(g, "librarian")["healing"],
                           message="the heal running")
                t0 = time.monotonic()
                st, busy = heal(g, "librarian")
                self.assertEqual(st, 409, busy)
                self.assertEqual(busy["error"]["code"], "heal_in_progress")
                st, body = diagnose(g, "librarian")
                self.assertEqual(st, 409, body)
                # Other kernels are not held up by it.
                st, other = heal(g, OTHER, action="diagnose_network")
                self.assertEqual((st, other["outcome"]), (200, "diagnosed"), other)
                self.assertLess(time.monotonic() - t0, scaled(1.5))
            finally:
                t.join(scaled(30))
            st, inc = first["r"]
            self.assertEqual((st, inc["outcome"]), (200, "healed"), inc)
            # The 409 named the incident that was running.
            self.assertIn("incident %d " % inc["id"], busy["error"]["message"])
            self.assertFalse(guardian_kernel(g, "librarian")["healing"])
            self.assertNotEqual(g.kernel("librarian")["pid"], pid)

    def test_process_dead_during_backoff(self):
        """A kernel that crashed and waits out a long backoff: the supervisor
        still holds its port, no process runs: process_dead. The heal starts
        it now (the cause of the crash having gone meanwhile)."""
        d = tempfile.mkdtemp(prefix="grace-bb-flaky-")
        self.addCleanup(shutil.rmtree, d, True)
        flag = os.path.join(d, "crash")
        script = os.path.join(d, "flaky.sh")
        with open(script, "w") as f:
            f.write("test -e %s && exit 1\nexec %s\n" % (flag, stub_kernel_command(200)))
        open(flag, "w").close()
        flaky = dict(QUIET, command="/bin/sh " + script, backoff_initial_ms=600000,
                     backoff_max_ms=600000)
        with GraceServer(kernels={"librarian": {}, OTHER: flaky},
                         expect={OTHER: "restarting"}) as g:
            k = g.kernel(OTHER)
            self.assertEqual((k["state"], k["pid"]), ("restarting", None))
            self.assertIn("exit 1", k["last_exit"])
            st, d = diagnose(g, OTHER)
            self.assertEqual(st, 200, d)
            diag = d["diagnosis"]
            self.assertEqual(diag["issue_type"], "process_dead", diag)
            self.assertEqual(diag["supervisor_state"], "restarting")
            self.assertTrue(diag["listening"])
            self.assertEqual(diag["port_holder"]["kind"], "ours")
            self.assertFalse(diag["process"]["alive"])

            os.unlink(flag)
            t0 = time.monotonic()
            st, inc = heal(g, OTHER)
            self.assertEqual(st, 200, inc)
            check_incident_shape(self, inc, OTHER)
            self.assertEqual((inc["diagnosed_issue"], inc["playbook"], inc["outcome"]),
                             ("process_dead", "restart_component", "healed"), inc)
            # Not after the 10-minute backoff.
            self.assertLess(time.monotonic() - t0, scaled(10))
            k = g.kernel(OTHER)
            self.assertEqual(k["state"], "ready")
            st, _, body = g.http("GET", "/kernels/%s/health" % OTHER)
            self.assertEqual((st, body["pid"]), (200, k["pid"]))


if __name__ == "__main__":
    unittest.main()
