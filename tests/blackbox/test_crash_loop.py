"""Restart policy: a kernel that keeps crashing backs off and is marked
failed after restart_burst starts, without disturbing the others; exit 100
means failed at once; an operator start tries again."""

import os
import socket
import tempfile
import time
import unittest

from harness import GraceServer, GraceTestCase, scaled, spare_kernels

# A bystander, and two slots for stand-ins (any kernel name will do for those).
OTHER, LOOPER, PERMANENT = spare_kernels(3)

BURST = 5
BACKOFF_INITIAL_MS = 50
# The backoff delays the policy must wait between the 5 starts: 50+100+200+400.
MIN_BACKOFF_TOTAL_S = sum(BACKOFF_INITIAL_MS * 2 ** i for i in range(BURST - 1)) / 1000.0


def refused(port):
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", port))
        return False
    except ConnectionRefusedError:
        return True
    finally:
        s.close()


class CrashLoop(GraceTestCase):
    @classmethod
    def setUpClass(cls):
        cls.g = GraceServer(
            kernels={
                "librarian": {},
                OTHER: {},
                # Stand-ins: the sections must use real kernel names.
                LOOPER: {"command": "/bin/false", "restart_burst": BURST,
                          "restart_window_ms": 10000,
                          "backoff_initial_ms": BACKOFF_INITIAL_MS,
                          "backoff_max_ms": 1000, "stable_ms": 1000},
                PERMANENT: {"command": "sh -c 'exit 100'", "backoff_initial_ms": 50},
            },
            autostart=False)
        g = cls.g
        try:
            g.start(wait=False)
            # The healthy kernels come up while trust is still looping.
            h = g.wait_for(lambda: g.states_ok({LOOPER: {"starting", "restarting", "failed"},
                                                PERMANENT: {"starting", "failed"}}),
                           message="the healthy kernels ready")
            cls.pids_early = {n: h["kernels"][n]["pid"] for n in ("librarian", OTHER)}
            cls.health = g.wait_for(lambda: g.states_ok({LOOPER: "failed", PERMANENT: "failed"}),
                                    timeout=scaled(15), message="the stand-ins failed")
            cls.failed_after = time.monotonic() - g.started_at
        except BaseException:
            g.dump_log()
            g.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.g.close()

    def test_1_crash_loop_fails_after_burst(self):
        k = self.health["kernels"][LOOPER]
        self.assertEqual(k["state"], "failed")
        self.assertIsNone(k["pid"])
        # 5 starts: the first and 4 automatic restarts.
        self.assertEqual(k["restarts"], BURST - 1, k)
        self.assertIn("exit 1", k["last_exit"])
        # Backoff really was applied between the quick crashes, and the whole
        # loop still ended within a few seconds.
        self.assertGreaterEqual(self.failed_after, MIN_BACKOFF_TOTAL_S * 0.9)
        self.assertLess(self.failed_after, scaled(5))
        # Nobody will accept on a failed kernel's port: refused at once.
        self.assertTrue(refused(self.g.kernel_port(LOOPER)))
        self.g.wait_log("restart burst limit reached")

    def test_2_others_undisturbed(self):
        h = self.g.health()
        self.assertEqual(h["status"], "degraded")
        self.assertEqual(h["kernels_ready"], 2)
        self.assertEqual(h["kernels_total"], 4)
        for name in ("librarian", OTHER):
            k = h["kernels"][name]
            self.assertEqual(k["state"], "ready")
            self.assertEqual(k["pid"], self.pids_early[name])
            self.assertEqual(k["restarts"], 0)
            st, _, body = self.g.kernel_http(name, "GET", "/health")
            self.assertEqual((st, body["pid"]), (200, self.pids_early[name]))
        st, _, body = self.g.http("GET", "/kernels/%s/health" % LOOPER)
        self.assertEqual(st, 503)
        self.assertEqual(body["error"]["code"], "kernel_unavailable")
        self.assertIn("failed", body["error"]["message"])

    def test_3_exit_100_fails_at_once(self):
        k = self.health["kernels"][PERMANENT]
        self.assertEqual(k["state"], "failed")
        self.assertEqual(k["restarts"], 0, k)
        self.assertIn("exit 100", k["last_exit"])
        self.assertIsNone(k["pid"])
        # Failed right away, not after a backoff sequence: well before trust.
        failed_at = k["since_ms"] / 1000.0 - self.g.started_wall
        self.assertLess(failed_at, scaled(3.0))
        self.assertLess(k["since_ms"], self.health["kernels"][LOOPER]["since_ms"])
        self.g.wait_log("permanent")

    def test_4_operator_start_tries_again(self):
        g = self.g
        before = g.kernel(LOOPER)
        self.assertEqual(before["state"], "failed")
        # Nothing to stop in a failed kernel.
        st, _, body = g.http("POST", "/kernel-ports/%s/stop" % LOOPER)
        self.assertEqual(st, 409)
        self.assertEqual(body["error"]["code"], "no_change")
        st, _, body = g.http("POST", "/kernel-ports/%s/start" % LOOPER)
        self.assertEqual(st, 202, body)
        self.assertEqual(body["action"], "start")
        self.assertIn(body["state"], ("starting", "restarting"))
        # /bin/false still: a fresh burst, and failed again.
        k = g.wait_kernel(LOOPER, lambda k: k["state"] == "failed", timeout=scaled(15))
        self.assertEqual(k["restarts"], before["restarts"] + BURST - 1)
        st, _, body = g.http("POST", "/kernel-ports/%s/start" % PERMANENT)
        self.assertEqual(st, 202, body)
        k = g.wait_kernel(PERMANENT, lambda k: k["state"] == "failed")
        self.assertEqual(k["restarts"], 0)
        # The healthy kernels were never touched.
        for name in ("librarian", OTHER):
            k = g.kernel(name)
            self.assertEqual((k["state"], k["pid"], k["restarts"]),
                             ("ready", self.pids_early[name], 0))



class Backoff(GraceTestCase):
    def test_backoff_doubles_up_to_its_maximum(self):
        """The delays between the starts of a kernel that crashes at once:
        backoff_initial_ms, doubled each time, capped at backoff_max_ms."""
        with tempfile.TemporaryDirectory(prefix="grace-bb-backoff-") as d:
            stamps = os.path.join(d, "starts")
            command = "sh -c 'date +%%s%%N >> %s; exit 1'" % stamps
            burst, initial, cap = 7, 50, 200
            with GraceServer(kernels={"librarian": {},
                                      LOOPER: {"command": command, "restart_burst": burst,
                                               "restart_window_ms": 60000,
                                               "backoff_initial_ms": initial,
                                               "backoff_max_ms": cap, "stable_ms": 10000}},
                             expect={LOOPER: "failed"}, start_timeout=scaled(20)) as g:
                with open(stamps) as f:
                    starts = [int(x) / 1e9 for x in f.read().split()]
                k = g.kernel(LOOPER)
        self.assertEqual(len(starts), burst)
        self.assertEqual(k["restarts"], burst - 1)
        gaps = [b - a for a, b in zip(starts, starts[1:])]
        want = [min(initial * 2 ** i, cap) / 1000.0 for i in range(burst - 1)]
        for i, (gap, w) in enumerate(zip(gaps, want)):
            # Never sooner than the backoff; later only by the time a start takes.
            self.assertGreaterEqual(gap, w * 0.95, "gap %d: %.3f s < %.3f s; gaps %r"
                                    % (i, gap, w, gaps))
            self.assertLess(gap, w + scaled(0.5), "gap %d: %.3f s, want %.3f s; gaps %r"
                            % (i, gap, w, gaps))


if __name__ == "__main__":
    unittest.main()
