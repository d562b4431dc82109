"""Watchdog: a kernel that stops pinging (SIGSTOP) is SIGKILLed and
restarted; one that keeps pinging is left alone."""

import os
import signal
import time
import unittest

from harness import (SD_STANDIN, CpuContention, GraceServer, GraceTestCase, need_libsystemd,
                     pid_alive, proc_start_ticks, python_standin, scaled, spare_kernels)

OTHER, SLOT = spare_kernels(2)

# A stand-in kernel in Python: READY=1 over $NOTIFY_SOCKET, then WATCHDOG=1
# every `ping` seconds (never, when ping is 0), and otherwise nothing.
STANDIN = r"""
import os, socket, sys, time
addr = os.environ["NOTIFY_SOCKET"]
if addr.startswith("@"):
    addr = "\0" + addr[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(b"READY=1", addr)
ping = float(sys.argv[1])
while True:
    time.sleep(ping or 60)
    if ping:
        s.sendto(b"WATCHDOG=1", addr)
"""

WATCHDOG_MS = 500


class Watchdog(GraceTestCase):
    def test_hung_kernel_is_killed_and_restarted(self):
        with GraceServer(kernels={"librarian": {"watchdog_ms": WATCHDOG_MS, "stable_ms": 200},
                                  OTHER: {}}) as g:
            k = g.kernel("librarian")
            old_pid = k["pid"]
            # A healthy kernel pings in time: after three watchdog periods it
            # is still the same process.
            time.sleep(3 * WATCHDOG_MS / 1000.0)
            k = g.kernel("librarian")
            self.assertEqual((k["pid"], k["restarts"], k["state"]), (old_pid, 0, "ready"))

            ticks = proc_start_ticks(old_pid)[1]

            def cleanup():
                if pid_alive(old_pid, ticks):
                    os.kill(old_pid, signal.SIGCONT)
                    os.kill(old_pid, signal.SIGKILL)
            self.addCleanup(cleanup)

            with CpuContention(g.proc.pid) as busy:
                os.kill(old_pid, signal.SIGSTOP)
                t0 = time.monotonic()
                k = g.wait_kernel("librarian",
                                  lambda k: (k["pid"] not in (None, old_pid)
                                             and k["state"] == "ready"),
                                  timeout=scaled(10))
                elapsed = time.monotonic() - t0
            # The spec: replaced within about 2 s (of an idle machine).
            limit = scaled(2.0) * busy.factor()
            self.assertLess(elapsed, limit, "hung kernel replaced only after %.2f s (limit %.2f s)"
                            % (elapsed, limit))
            self.assertIn("watchdog", k["last_exit"])
            self.assertIn("signal 9", k["last_exit"])
            self.assertEqual(k["restarts"], 1)
            self.assertFalse(pid_alive(old_pid, ticks), "the hung kernel is still there")
            st, _, body = g.kernel_http("librarian", "GET", "/health")
            self.assertEqual(st, 200)
            self.assertEqual(body["pid"], k["pid"])
            st, _, text = g.http("GET", "/metrics")
            self.assertIn('grace_kernel_watchdog_kills_total{kernel="librarian"} 1', text.decode())
            self.assertIn('grace_kernel_watchdog_kills_total{kernel="%s"} 0' % OTHER, text.decode())
            self.assertEqual(g.kernel(OTHER)["restarts"], 0)


    def test_hung_kernel_with_watchdog_off(self):
        """watchdog_ms = 0 disables hang detection: a stopped kernel is left
        alone, and the health check reports it (within health_timeout_ms)
        without holding up the answer for the others."""
        with GraceServer(config={"defaults": {"watchdog_ms": 300}},
                         kernels={"librarian": {"watchdog_ms": 0, "health_timeout_ms": 300},
                                  OTHER: {}}) as g:
            k = g.kernel("librarian")
            pid = k["pid"]
            ticks = proc_start_ticks(pid)[1]

            def cleanup():
                if pid_alive(pid, ticks):
                    os.kill(pid, signal.SIGCONT)
            self.addCleanup(cleanup)
            os.kill(pid, signal.SIGSTOP)
            t0 = time.monotonic()
            st, _, hc = g.http("GET", "/kernel-ports/health-check", timeout=scaled(10))
            took = time.monotonic() - t0
            self.assertEqual(st, 200)
            self.assertLess(took, scaled(2.0))
            self.assertEqual(hc["status"], "degraded")
            r = hc["kernels"]["librarian"]
            self.assertFalse(r["ok"])
            self.assertEqual(r["status"], 0)
            self.assertIn("error", r)
            self.assertTrue(hc["kernels"][OTHER]["ok"])
            # Well past the [defaults] watchdog it opted out of: still there.
            time.sleep(1.0)
            k = g.kernel("librarian")
            self.assertEqual((k["pid"], k["restarts"]), (pid, 0))
            os.kill(pid, signal.SIGCONT)
            st, _, hc = g.http("GET", "/kernel-ports/health-check", timeout=scaled(10))
            self.assertEqual((st, hc["status"]), (200, "ok"))

    def test_libsystemd_standin_gets_its_socket(self):
        """A stand-in written against libsystemd finds its listening socket
        with sd_listen_fds() and is ready with sd_notify()."""
        need_libsystemd()
        with GraceServer(kernels={"librarian": {},
                                  SLOT: {"command": python_standin(self, SD_STANDIN)}}) as g:
            st, _, body = g.kernel_http(SLOT, "GET", "/")
            self.assertEqual(st, 200, body)
            self.assertEqual(body["listen_fds"], 1)
            self.assertEqual(body["pid"], g.kernel(SLOT)["pid"])

    # Whether such a stand-in is asked for watchdog pings: see
    # test_known_bugs.py (WATCHDOG_PID is set to "").

    def test_standin_speaks_the_protocol(self):
        """Any program that sends READY=1 and WATCHDOG=1 is a kernel to the
        supervisor; one that stops pinging is killed."""
        with GraceServer(kernels={
                SLOT: {"command": python_standin(self, STANDIN, 0.1), "watchdog_ms": WATCHDOG_MS},
                OTHER: {"command": python_standin(self, STANDIN, 0), "watchdog_ms": WATCHDOG_MS,
                        "stable_ms": 100, "restart_burst": 50}},
                expect={OTHER: {"starting", "ready", "restarting"}}) as g:
            pinger = g.kernel(SLOT)
            self.assertEqual(pinger["state"], "ready")
            # The silent one is killed every watchdog period and restarted.
            k = g.wait_kernel(OTHER, lambda k: k["restarts"] >= 2, timeout=scaled(10))
            self.assertIn("watchdog", k["last_exit"])
            # ... while the one that pings stays the same process.
            p2 = g.kernel(SLOT)
            self.assertEqual((p2["pid"], p2["state"], p2["restarts"]),
                             (pinger["pid"], "ready", 0))

    def test_ready_timeout(self):
        """A kernel that never says READY=1 is killed after ready_timeout_ms,
        and counts towards the burst like a crash."""
        with GraceServer(kernels={
                "librarian": {},
                SLOT: {"command": "sleep 60", "ready_timeout_ms": 300, "restart_burst": 3,
                       "backoff_initial_ms": 20, "stable_ms": 10000}},
                expect={SLOT: "failed"}) as g:
            k = g.kernel(SLOT)
            self.assertEqual(k["state"], "failed")
            self.assertEqual(k["restarts"], 2)
            self.assertIn("not ready within 300 ms", k["last_exit"])
            self.assertIn("signal 9", k["last_exit"])
            self.assertGreaterEqual(time.monotonic() - g.started_at, 0.9)


if __name__ == "__main__":
    unittest.main()
