"""A kernel whose port someone else holds is port_unavailable, names the
holder, and does not hold the others back; it starts once the port is free.
An API port that is taken stops grace serve at once, leaving nothing behind."""

import os
import socket
import subprocess
import tempfile
import unittest

from harness import (GRACE_BIN, GraceServer, GraceTestCase, PortReservation, all_ports,
                     port_bindable, scaled, spare_kernels)

BLOCKED, OTHER = spare_kernels(2)


def listen(port, family=socket.AF_INET, addr="127.0.0.1"):
    s = socket.socket(family)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(8)
    return s


class PortUnavailable(GraceTestCase):
    def test_kernel_port_taken(self):
        with GraceServer(kernels={"librarian": {}, BLOCKED: {}, OTHER: {}},
                         expect={BLOCKED: "port_unavailable"}, autostart=False) as g:
            blocker = listen(g.kernel_port(BLOCKED))
            self.addCleanup(blocker.close)
            g.start()
            h = g.health()
            self.assertEqual(h["status"], "degraded")
            self.assertEqual((h["kernels_ready"], h["kernels_total"]), (2, 3))
            k = h["kernels"][BLOCKED]
            self.assertEqual(k["state"], "port_unavailable")
            self.assertIsNone(k["pid"])
            self.assertEqual(k["port"], g.kernel_port(BLOCKED))
            self.assertEqual(k["port_holder"]["pid"], os.getpid())
            self.assertIn("python", k["port_holder"]["cmdline"])
            self.assertIn(str(os.getpid()), k["last_exit"])
            for name in ("librarian", OTHER):
                self.assertEqual(h["kernels"][name]["state"], "ready")
                self.assertNotIn("port_holder", h["kernels"][name])
            # Our socket is still the one answering on that port.
            c = socket.create_connection(("127.0.0.1", g.kernel_port(BLOCKED)), timeout=5)
            conn, _ = blocker.accept()
            conn.close()
            c.close()

            st, _, hc = g.http("GET", "/kernel-ports/health-check", timeout=scaled(10))
            self.assertEqual(st, 200)
            self.assertEqual(hc["status"], "degraded")
            self.assertEqual((hc["healthy"], hc["total"]), (2, 3))
            self.assertFalse(hc["kernels"][BLOCKED]["ok"])
            self.assertEqual(hc["kernels"][BLOCKED]["state"], "port_unavailable")

            st, hdrs, body = g.http("GET", "/kernels/%s/health" % BLOCKED)
            self.assertEqual(st, 503)
            self.assertEqual(body["error"]["code"], "kernel_unavailable")
            self.assertIn("port_unavailable", body["error"]["message"])
            self.assertTrue(hdrs["Retry-After"])

            # Still held: an operator start cannot help yet.
            st, _, body = g.http("POST", "/kernel-ports/%s/start" % BLOCKED)
            self.assertEqual(st, 409, body)
            self.assertEqual(g.kernel(BLOCKED)["state"], "port_unavailable")

            # Freed: now it starts, on that very port.
            blocker.close()
            st, _, body = g.http("POST", "/kernel-ports/%s/start" % BLOCKED)
            self.assertEqual(st, 202, body)
            k = g.wait_kernel(BLOCKED, lambda k: k["state"] == "ready")
            self.assertNotIn("port_holder", k)
            st, _, body = g.kernel_http(BLOCKED, "GET", "/health")
            self.assertEqual((st, body["kernel"], body["pid"]), (200, BLOCKED, k["pid"]))
            self.assertEqual(g.health()["status"], "ok")

    def test_holder_on_a_wildcard_address(self):
        """A holder listening on every address (IPv4 or dual-stack IPv6)
        takes the loopback port too, and is found and named all the same."""
        for family, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
            with self.subTest(addr):
                with GraceServer(kernels={"librarian": {}, BLOCKED: {}},
                                 expect={BLOCKED: "port_unavailable"}, autostart=False) as g:
                    try:
                        blocker = listen(g.kernel_port(BLOCKED), family, addr)
                    except OSError as e:
                        self.fail("this test needs to listen on %s (IPv4 and IPv6 "
                                  "wildcards), which this machine refuses: %s" % (addr, e))
                    try:
                        g.start()
                        k = g.kernel(BLOCKED)
                        self.assertEqual(k["state"], "port_unavailable")
                        self.assertEqual(k["port_holder"]["pid"], os.getpid())
                    finally:
                        blocker.close()

    def test_api_port_taken(self):
        with PortReservation() as res, tempfile.TemporaryDirectory(prefix="grace-bb-") as d:
            blocker = listen(res.api_port)
            self.addCleanup(blocker.close)
            cfg = os.path.join(d, "grace.ini")
            with open(cfg, "w") as f:
                f.write("[grace]\nlibrary_root = %s\n" % d)
            p = subprocess.Popen([GRACE_BIN, "serve", "--config", cfg, "--data-dir",
                                  os.path.join(d, "data"), "--port-offset", str(res.offset)],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, cwd=d)
            try:
                out, err = p.communicate(timeout=scaled(10))
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
                self.fail("grace serve kept running with its API port taken")
            self.assertEqual(p.returncode, 1)
            self.assertIn(b"cannot listen on 127.0.0.1:%d" % res.api_port, err)
            # It gave up before starting any kernel.
            self.assertNotIn(b"starting", err)
            busy = [port for port in all_ports(res.offset)[1:] if not port_bindable(port)]
            self.assertEqual(busy, [])

if __name__ == "__main__":
    unittest.main()
