"""SIGTERM to grace serve: every kernel stops, grace exits 0 within a few
seconds, no process is left and every port can be bound again at once."""

import http.client
import os
import signal
import socket
import time
import unittest

from harness import (BUILTIN_KERNELS, GraceServer, GraceTestCase, all_ports, pid_alive,
                     port_bindable, proc_start_ticks, scaled, spare_kernels, wait_for)

OTHER, LOOPER, BACKOFF, BLOCKED = spare_kernels(4)


class Shutdown(GraceTestCase):
    def check_shutdown(self, g, sig, expect_states=None):
        h = g.health()
        pids = {}
        for name, k in h["kernels"].items():
            if k["pid"]:
                pids[k["pid"]] = proc_start_ticks(k["pid"])[1]
        serve_pid = g.proc.pid
        # Idle keep-alive connections, to the API and to a kernel, must not
        # hold the shutdown up.
        idle = []
        for port in (g.api_port, g.kernel_port("librarian")):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/health")
            c.getresponse().read()
            idle.append(c)
        try:
            t0 = time.monotonic()
            os.kill(serve_pid, sig)
            try:
                rc = g.proc.wait(scaled(5))
            except Exception:
                self.fail("grace serve still running %.0f s after signal %d" % (scaled(5), sig))
            elapsed = time.monotonic() - t0
        finally:
            for c in idle:
                c.close()
        self.assertEqual(rc, 0)
        left = [p for p, t in pids.items() if pid_alive(p, t)]
        self.assertEqual(left, [], "kernels left running after grace serve exited")
        busy = [p for p in all_ports(g.offset) if not port_bindable(p)]
        self.assertEqual(busy, [], "ports still bound after grace serve exited")
        g.stop()  # reaps; checks every pid the harness saw
        self.assertEqual(g.returncode, 0)
        return elapsed, pids

    def test_sigterm_all_kernels(self):
        with GraceServer() as g:
            self.assertEqual(len(g.health()["kernels"]), 20)
            elapsed, pids = self.check_shutdown(g, signal.SIGTERM)
            self.assertEqual(len(pids), 20)
            log = g.log()
            self.assertIn("signal 15: stopping every kernel", log)
            for name in BUILTIN_KERNELS:
                self.assertIn("kernel %s: stopping -> stopped" % name, log)

    def test_sigterm_with_kernels_in_every_state(self):
        """Stopped, failed, port_unavailable and restarting kernels do not
        hold the shutdown up either."""
        with GraceServer(kernels={
                "librarian": {},
                OTHER: {},
                # Every exit counts as a quick crash, however slowly a loaded
                # machine reaps it: it ends "failed".
                LOOPER: {"command": "/bin/false", "stable_ms": 60000},
                # Crashes every time but keeps backing off for long: it is
                # "restarting" when the signal comes.
                BACKOFF: {"command": "/bin/false", "backoff_initial_ms": 60000,
                           "backoff_max_ms": 60000},
                BLOCKED: {},
        }, autostart=False) as g:
            blocker = socket.socket()
            blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            blocker.bind(("127.0.0.1", g.kernel_port(BLOCKED)))
            blocker.listen(1)
            try:
                g.start(wait=False)
                g.wait_states({LOOPER: "failed", BACKOFF: "restarting",
                               BLOCKED: "port_unavailable"}, timeout=scaled(15))
                st, _, _ = g.http("POST", "/kernel-ports/%s/stop" % OTHER)
                self.assertEqual(st, 202)
                g.wait_kernel(OTHER, lambda k: k["state"] == "stopped")
                blocker.close()
                elapsed, pids = self.check_shutdown(g, signal.SIGTERM)
                self.assertEqual(len(pids), 1)  # only the librarian was running
                self.assertLess(elapsed, scaled(3))
            finally:
                blocker.close()

    def test_kernel_ignoring_sigterm_is_killed(self):
        """A kernel that ignores SIGTERM gets SIGKILL after its
        stop_timeout_ms; grace serve still exits 0, and its children go too."""
        stubborn = "sh -c 'trap \"\" TERM; sleep 60 & wait'"
        with GraceServer(kernels={"librarian": {},
                                  OTHER: {"command": stubborn, "stop_timeout_ms": 500}},
                         expect={OTHER: "starting"}) as g:
            kpid = g.kernel(OTHER)["pid"]
            elapsed, pids = self.check_shutdown(g, signal.SIGTERM)
            self.assertIn(kpid, pids)
            self.assertGreaterEqual(elapsed, 0.45)  # it really waited for the timeout
            self.assertIn("did not stop within 500 ms", g.log())

    def test_sigkill_of_serve_leaves_no_kernel(self):
        """Even grace serve dying without a chance to clean up takes its
        kernels with it (they die with their parent), freeing every port."""
        with GraceServer(kernels={"librarian": {}, OTHER: {}}) as g:
            h = g.health()
            pids = {k["pid"]: proc_start_ticks(k["pid"])[1] for k in h["kernels"].values()}
            os.kill(g.proc.pid, signal.SIGKILL)
            g.proc.wait(scaled(5))

            def kernels_left():
                return [p for p, t in pids.items() if pid_alive(p, t)]

            def ports_bound():
                return [p for p in all_ports(g.offset) if not port_bindable(p)]

            wait_for(lambda: not kernels_left(), scaled(2),
                     message=lambda: "kernels outliving grace serve: %s" % kernels_left())
            wait_for(lambda: not ports_bound(), scaled(2),
                     message=lambda: "ports still bound: %s" % ports_bound())
            g.stop()  # reaps; checks every pid the harness saw

    def test_sigint_too(self):
        with GraceServer(kernels={"librarian": {}, OTHER: {}}) as g:
            self.check_shutdown(g, signal.SIGINT)


if __name__ == "__main__":
    unittest.main()
