"""Operator actions on POST /kernel-ports/NAME/start|stop|restart."""

import socket
import unittest

from harness import GraceServer, GraceTestCase, scaled, spare_kernels

OTHER, DISABLED = spare_kernels(2)


def refused(port):
    s = socket.socket()
    s.settimeout(5)
    try:
        s.connect(("127.0.0.1", port))
        return False
    except ConnectionRefusedError:
        return True
    finally:
        s.close()


class OperatorActions(GraceTestCase):
    def test_stop_start_restart(self):
        with GraceServer(kernels={"librarian": {}, OTHER: {}, DISABLED: {"enabled": False}}) as g:
            port = g.kernel_port("librarian")
            other = g.kernel(OTHER)
            st, _, doc = g.http("POST", "/librarian/documents",
                                {"title": "Operator", "body": "kept across stop and start"})
            self.assertEqual(st, 201, doc)
            first = g.kernel("librarian")

            # stop
            st, _, body = g.http("POST", "/kernel-ports/librarian/stop")
            self.assertEqual(st, 202, body)
            self.assertEqual(body["action"], "stop")
            self.assertEqual(body["name"], "librarian")
            self.assertIn(body["state"], ("stopping", "stopped"))
            k = g.wait_kernel("librarian", lambda k: k["state"] == "stopped")
            self.assertIsNone(k["pid"])
            self.assertEqual(k["restarts"], 0)
            self.assertTrue(refused(port), "a stopped kernel's port still accepts connections")
            st, hdrs, body = g.http("GET", "/librarian/search?query=operator")
            self.assertEqual(st, 503)
            self.assertEqual(body["error"]["code"], "kernel_unavailable")
            self.assertIn("stopped", body["error"]["message"])
            self.assertTrue(hdrs["Retry-After"])
            st, _, body = g.http("GET", "/kernels/librarian/health")
            self.assertEqual(st, 503)
            h = g.health()
            self.assertEqual(h["status"], "degraded")
            self.assertEqual(h["kernels"]["librarian"]["state"], "stopped")
            st, _, hc = g.http("GET", "/kernel-ports/health-check")
            self.assertEqual((st, hc["status"], hc["healthy"], hc["total"]),
                             (200, "degraded", 1, 2))
            self.assertFalse(hc["kernels"]["librarian"]["ok"])
            self.assertEqual(hc["kernels"]["librarian"]["state"], "stopped")
            self.assertTrue(hc["kernels"][OTHER]["ok"])
            # Stopping again: nothing to do.
            st, _, body = g.http("POST", "/kernel-ports/librarian/stop")
            self.assertEqual(st, 409)
            self.assertEqual(body["error"]["code"], "no_change")

            # start
            st, _, body = g.http("POST", "/kernel-ports/librarian/start")
            self.assertEqual(st, 202, body)
            self.assertEqual(body["action"], "start")
            self.assertIn(body["state"], ("starting", "ready"))
            k = g.wait_kernel("librarian", lambda k: k["state"] == "ready")
            self.assertNotEqual(k["pid"], first["pid"])
            self.assertEqual(k["port"], port)
            self.assertEqual(k["restarts"], 0)  # an operator's start is not a crash
            st, _, body = g.http("GET", "/librarian/documents/%d" % doc["id"])
            self.assertEqual(st, 200, body)
            st, _, body = g.kernel_http("librarian", "GET", "/health")
            self.assertEqual((st, body["pid"]), (200, k["pid"]))
            st, _, body = g.http("POST", "/kernel-ports/librarian/start")
            self.assertEqual(st, 409)
            self.assertEqual(body["error"]["code"], "no_change")

            # restart, by the NAME_kernel spelling too
            st, _, body = g.http("POST", "/kernel-ports/librarian_kernel/restart")
            self.assertEqual(st, 202, body)
            self.assertEqual(body["action"], "restart")
            k2 = g.wait_kernel("librarian",
                               lambda x: x["state"] == "ready" and x["pid"] not in (None, k["pid"]))
            self.assertEqual(k2["restarts"], 0)
            st, _, body = g.http("GET", "/librarian/search?query=operator")
            self.assertEqual(st, 200, body)
            self.assertEqual(body["total"], 1)

            # restart of a stopped kernel starts it
            st, _, _ = g.http("POST", "/kernel-ports/librarian/stop")
            self.assertEqual(st, 202)
            g.wait_kernel("librarian", lambda k: k["state"] == "stopped")
            st, _, body = g.http("POST", "/kernel-ports/librarian/restart")
            self.assertEqual(st, 202, body)
            g.wait_kernel("librarian", lambda k: k["state"] == "ready")
            self.assertEqual(g.health()["status"], "ok")

            # The bystander never moved.
            o = g.kernel(OTHER)
            self.assertEqual((o["pid"], o["state"], o["restarts"]), (other["pid"], "ready", 0))

            # A disabled kernel is not started, not counted, and its port is free.
            d = g.kernel(DISABLED)
            self.assertEqual(d["state"], "stopped")
            self.assertIsNone(d["pid"])
            self.assertNotIn(DISABLED, g.health()["kernels"])
            self.assertTrue(refused(g.kernel_port(DISABLED)))

    def test_unknown_kernel_and_action(self):
        with GraceServer(kernels={"librarian": {}}) as g:
            for action in ("start", "stop", "restart"):
                st, _, body = g.http("POST", "/kernel-ports/no_such_kernel/%s" % action)
                self.assertEqual(st, 404, action)
                self.assertEqual(body["error"]["code"], "unknown_kernel")
            # A built-in name that this configuration does not list.
            st, _, body = g.http("POST", "/kernel-ports/%s/start" % OTHER)
            self.assertEqual(st, 404)
            st, _, body = g.http("POST", "/kernel-ports/librarian/explode")
            self.assertEqual(st, 404)
            self.assertEqual(body["error"]["code"], "unknown_action")
            st, _, body = g.http("GET", "/kernel-ports/librarian/stop")
            self.assertEqual(st, 405)
            # None of that touched the kernel.
            k = g.kernel("librarian")
            self.assertEqual((k["state"], k["restarts"]), ("ready", 0))

    def test_stop_during_backoff_and_start_again(self):
        looper = OTHER
        with GraceServer(kernels={"librarian": {},
                                  looper: {"command": "/bin/false", "backoff_initial_ms": 30000,
                                           "backoff_max_ms": 30000}},
                         expect={looper: "restarting"}) as g:
            st, _, body = g.http("POST", "/kernel-ports/%s/stop" % looper)
            self.assertEqual(st, 202, body)
            k = g.wait_kernel(looper, lambda k: k["state"] == "stopped")
            self.assertTrue(refused(g.kernel_port(looper)))
            # start skips the rest of the backoff: it runs (and fails) at once.
            st, _, body = g.http("POST", "/kernel-ports/%s/start" % looper)
            self.assertEqual(st, 202, body)
            k2 = g.wait_kernel(looper, lambda x: x["state"] == "restarting"
                               and x["restarts"] > k["restarts"], timeout=scaled(5))
            self.assertIn("exit 1", k2["last_exit"])


if __name__ == "__main__":
    unittest.main()
