"""A kernel's own children die with it: each kernel runs in its own process
group, and the supervisor kills the whole group when the kernel exits."""

import os
import signal
import tempfile
import time
import unittest

from harness import (GRACE_BIN, CpuContention, GraceServer, GraceTestCase, pid_alive,
                     proc_start_ticks, scaled,
                     spare_kernels)

STANDIN = """#!/bin/sh
# Stand-in for the librarian: leaves a grandchild behind, then becomes the
# real kernel (same pid, so LISTEN_PID and the notify credentials match).
sleep 300 &
echo $! >> "$2"
exec "$1" kernel librarian
"""


def read_pids(path):
    try:
        with open(path) as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


class Grandchild(GraceTestCase):
    def test_grandchild_dies_with_kernel(self):
        with tempfile.TemporaryDirectory(prefix="grace-bb-gc-") as d:
            script = os.path.join(d, "standin.sh")
            pidfile = os.path.join(d, "sleep.pids")
            with open(script, "w") as f:
                f.write(STANDIN)
            os.chmod(script, 0o755)
            command = "/bin/sh %s %s %s" % (script, GRACE_BIN, pidfile)
            kernels = {"librarian": {"command": command}, spare_kernels(1)[0]: {}}
            with GraceServer(kernels=kernels) as g:
                k = g.kernel("librarian")
                kpid = k["pid"]
                pids = g.wait_for(lambda: read_pids(pidfile), message="sleep pid written")
                self.assertEqual(len(pids), 1)
                sleep_pid = pids[0]
                g.track_pid(sleep_pid)
                ticks = proc_start_ticks(sleep_pid)[1]
                self.addCleanup(lambda: pid_alive(sleep_pid, ticks) and os.kill(sleep_pid, 9))
                self.assertTrue(pid_alive(sleep_pid, ticks))
                # The grandchild is in the kernel's process group, not ours.
                self.assertEqual(os.getpgid(kpid), kpid)
                self.assertEqual(os.getpgid(sleep_pid), kpid)
                self.assertNotEqual(os.getpgid(kpid), os.getpgid(0))
                # The stand-in really is the kernel now.
                st, _, body = g.kernel_http("librarian", "GET", "/health")
                self.assertEqual((st, body["pid"], body["kernel"]), (200, kpid, "librarian"))

                with CpuContention(g.proc.pid) as busy:
                    os.kill(kpid, signal.SIGKILL)
                    t0 = time.monotonic()
                    while pid_alive(sleep_pid, ticks) and time.monotonic() - t0 < scaled(5):
                        time.sleep(0.005)
                    gone_after = time.monotonic() - t0
                self.assertFalse(pid_alive(sleep_pid, ticks), "grandchild outlived its kernel")
                limit = scaled(1.0) * busy.factor()
                self.assertLess(gone_after, limit, "grandchild gone only %.2f s after the kernel"
                                % gone_after)

                k = g.wait_kernel("librarian",
                                  lambda k: k["state"] == "ready" and k["pid"] != kpid)
                self.assertEqual(k["restarts"], 1)
                st, _, body = g.kernel_http("librarian", "GET", "/health")
                self.assertEqual((st, body["pid"]), (200, k["pid"]))
                # The restarted stand-in left a new grandchild: stop() checks
                # that shutting down takes it too.
                pids = g.wait_for(lambda: len(read_pids(pidfile)) == 2 and read_pids(pidfile))
                g.track_pid(pids[1])
                self.assertTrue(pid_alive(pids[1]))
                g.stop()
                self.assertFalse(pid_alive(pids[1]))


if __name__ == "__main__":
    unittest.main()
