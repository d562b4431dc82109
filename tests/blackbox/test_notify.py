"""grace serve under a service manager: it tells $NOTIFY_SOCKET READY=1 once
every kernel has settled (with a STATUS saying whether all are ready), pings
WATCHDOG=1 when $WATCHDOG_USEC asks for it, and says STOPPING=1 on SIGTERM.
Its own notify socket is what the kernels talk to, never ours."""

import os
import socket
import tempfile
import time
import unittest

from harness import GraceServer, GraceTestCase, scaled, spare_kernels

OTHER, LOOPER = spare_kernels(2)
WATCHDOG_USEC = 400000


class Notify(GraceTestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="grace-bb-notify-")
        self.addCleanup(self.dir.cleanup)
        self.path = os.path.join(self.dir.name, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(self.sock.close)
        self.sock.bind(self.path)
        self.sock.settimeout(0.05)
        self.messages = []  # (monotonic time, text)

    def drain(self, until=None, timeout=0.0):
        """Collects messages; returns the first one matching `until`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                data = self.sock.recv(4096)
                self.messages.append((time.monotonic(), data.decode()))
                if until and until(data.decode()):
                    return data.decode()
            except socket.timeout:
                if time.monotonic() >= deadline:
                    return None

    def env(self):
        return {"NOTIFY_SOCKET": self.path, "WATCHDOG_USEC": str(WATCHDOG_USEC),
                "WATCHDOG_PID": ""}

    def test_ready_watchdog_stopping(self):
        with GraceServer(kernels={"librarian": {}, OTHER: {}}, env=self.env(),
                         autostart=False) as g:
            g.start(wait=False)
            ready = self.drain(lambda m: "READY=1" in m, timeout=scaled(15))
            self.assertIsNotNone(ready, "no READY=1: %r" % self.messages)
            # READY=1 only once every kernel is up, and it says so.
            h = g.health()
            self.assertEqual(h["status"], "ok")
            self.assertIn("STATUS=all kernels ready", ready)
            # Pings at about half the interval the manager asked for.
            t0 = time.monotonic()
            self.drain(timeout=1.0)
            pings = [t for t, m in self.messages if "WATCHDOG=1" in m and t >= t0]
            self.assertGreaterEqual(len(pings), 3, self.messages)
            # The kernels' own READY and WATCHDOG went to grace, not to us:
            # one READY=1 in all.
            self.assertEqual(sum("READY=1" in m for _, m in self.messages), 1, self.messages)
            os.kill(g.proc.pid, 15)
            self.assertIsNotNone(self.drain(lambda m: "STOPPING=1" in m, timeout=scaled(5)),
                                 self.messages)
            self.assertEqual(g.proc.wait(scaled(10)), 0)
            g.stop()

    def test_ready_when_degraded(self):
        """A kernel that keeps failing must not hold READY=1 back."""
        with GraceServer(kernels={"librarian": {}, LOOPER: {"command": "/bin/false",
                                                           "restart_burst": 2,
                                                           "backoff_initial_ms": 20}},
                         env=self.env(), autostart=False) as g:
            g.start(wait=False)
            ready = self.drain(lambda m: "READY=1" in m, timeout=scaled(15))
            self.assertIsNotNone(ready, "no READY=1: %r" % self.messages)
            self.assertIn("STATUS=degraded", ready)
            h = g.health()
            self.assertEqual(h["kernels"][LOOPER]["state"], "failed")
            self.assertEqual(h["kernels"]["librarian"]["state"], "ready")


if __name__ == "__main__":
    unittest.main()
