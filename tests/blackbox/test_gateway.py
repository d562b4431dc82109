"""The gateway on :8000: /kernels/NAME/* and /librarian/* to the kernels.
A stopped or failed kernel is a 503 at once, with its state and
Retry-After; the client's X-Request-Id comes back and reaches the kernel;
the upstream request is rebuilt from parsed fields (seen from behind, by a
stand-in kernel that echoes what it got); a kernel that does not answer in
time is a 504."""

import json
import time
import unittest

from harness import GraceServer, GraceTestCase, scaled, spare_kernels
from healer_support import get_json, stub_kernel_command

STUB, DEAD = spare_kernels(2)

QUIET = {"health_interval_ms": 600000, "watchdog_ms": 60000}


def log_lines(g):
    out = []
    for line in g.log().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


class Gateway(GraceTestCase):
    def test_stopped_and_failed_kernels_answer_503_at_once(self):
        kernels = {"librarian": {},
                   DEAD: {"command": "/bin/false", "restart_burst": 1}}
        with GraceServer(kernels=kernels, expect={DEAD: "failed"}) as g:
            st, _, body = g.http("GET", "/librarian/health")
            self.assertEqual(st, 200)
            st, _, body = g.http("POST", "/kernel-ports/librarian/stop")
            self.assertEqual(st, 202, body)
            g.wait_kernel("librarian", lambda k: k["state"] == "stopped")
            for method, path, payload in (("GET", "/librarian/search?query=x", None),
                                          ("POST", "/librarian/documents",
                                           {"title": "t", "body": "b"}),
                                          ("GET", "/kernels/librarian/health", None),
                                          ("DELETE", "/kernels/librarian/documents/1", None)):
                t0 = time.monotonic()
                st, hdrs, body = g.http(method, path, payload)
                elapsed = time.monotonic() - t0
                self.assertEqual(st, 503, (method, path, body))
                self.assertEqual(body["error"]["code"], "kernel_unavailable")
                self.assertIn("librarian", body["error"]["message"])
                self.assertIn("stopped", body["error"]["message"])
                self.assertTrue(hdrs["Retry-After"].isdigit(), hdrs["Retry-After"])
                self.assertLess(elapsed, scaled(0.5), (method, path))
            # Failed (restarted too often): the same, with that state.
            st, hdrs, body = g.http("GET", "/kernels/%s/health" % DEAD)
            self.assertEqual(st, 503, body)
            self.assertIn("failed", body["error"]["message"])
            self.assertTrue(hdrs["Retry-After"])
            # Started again: answered again, on the same port.
            st, _, body = g.http("POST", "/kernel-ports/librarian/start")
            self.assertEqual(st, 202, body)
            k = g.wait_kernel("librarian", lambda k: k["state"] == "ready")
            st, _, body = g.http("GET", "/librarian/health")
            self.assertEqual((st, body["pid"]), (200, k["pid"]))

    def test_routes_and_request_ids(self):
        with GraceServer(config={"grace": {"log_level": "debug"}},
                         kernels={"librarian": {}}) as g:
            # Unknown kernel, unknown route below a kernel, not a prefix.
            st, _, body = g.http("GET", "/kernels/nope/x")
            self.assertEqual(st, 404, body)
            self.assertEqual(body["error"]["code"], "unknown_kernel")
            st, _, body = g.http("GET", "/kernels/librarian/no/such/route")
            self.assertEqual(st, 404, body)  # the kernel's own answer
            self.assertNotEqual(body["error"]["code"], "unknown_kernel")
            st, _, body = g.http("GET", "/librarianx/health")
            self.assertEqual(st, 404, body)
            # The same kernel by both routes, and by the NAME_kernel spelling.
            pid = g.kernel("librarian")["pid"]
            for path in ("/librarian/health", "/kernels/librarian/health",
                         "/kernels/librarian_kernel/health"):
                st, _, body = g.http("GET", path)
                self.assertEqual((st, body["pid"]), (200, pid), path)

            # The client's X-Request-Id comes back, and is in both logs.
            rid = "hs-gw-%d" % int(time.time() * 1000)
            st, hdrs, doc = g.http("POST", "/librarian/documents",
                                   {"title": "Request ids", "body": "both sides"},
                                   headers={"X-Request-Id": rid})
            self.assertEqual(st, 201, doc)
            self.assertEqual(hdrs["X-Request-Id"], rid)
            for path in ("/kernels/nope/x", "/kernel-ports", "/librarian/search?query=ids"):
                st, hdrs, body = g.http("GET", path, headers={"X-Request-Id": rid + "-2"})
                self.assertEqual(hdrs["X-Request-Id"], rid + "-2", path)
            self.assertEqual(body["total"], 1)
            st, hdrs, body = g.http("GET", "/kernels/nope/x", headers={"X-Request-Id": rid + "-3"})
            self.assertEqual(body["error"]["request_id"], rid + "-3")

            def logged():
                kernels = {line.get("kernel") for line in log_lines(g)
                           if line.get("request_id") == rid}
                return kernels if {"grace", "librarian"} <= kernels else None
            g.wait_for(logged, timeout=scaled(5), message="request id %s in both logs" % rid)

            # Without one (or with one unfit for a log), one is made up.
            st, hdrs, _ = g.http("GET", "/librarian/health")
            self.assertRegex(hdrs["X-Request-Id"], r"^[0-9a-f]{32}$")
            st, hdrs, _ = g.http("GET", "/librarian/health",
                                 headers={"X-Request-Id": "bad id\"{}"})
            self.assertEqual(st, 200)
            self.assertRegex(hdrs["X-Request-Id"], r"^[0-9a-f]{32}$")

    def test_upstream_request_is_rebuilt(self):
        kernels = {"librarian": {}, STUB: dict(QUIET, command=stub_kernel_command(200))}
        with GraceServer(kernels=kernels) as g:
            port = g.kernel_port(STUB)
            rid = "hs-echo-1"
            st, hdrs, echo = g.http(
                "POST", "/kernels/%s/echo?a=1&b=two" % STUB, '{"x": 1}',
                headers={"Content-Type": "application/json", "Accept": "application/json",
                         "X-Request-Id": rid, "Cookie": "grace_session=abc",
                         "X-Grace-Internal-Token": "forged", "X-Custom": "dropped",
                         "Connection": "keep-alive", "Host": "localhost"})
            self.assertEqual(st, 200, echo)
            self.assertEqual(hdrs["X-Request-Id"], rid)
            self.assertEqual((echo["method"], echo["path"], echo["query"]),
                             ("POST", "/echo", "a=1&b=two"))
            self.assertEqual(echo["body"], '{"x": 1}')
            got = {}
            for k, v in echo["headers"]:
                got.setdefault(k.lower(), []).append(v)
            self.assertEqual(got["x-request-id"], [rid])
            self.assertEqual(got["host"], ["127.0.0.1:%d" % port])
            self.assertEqual(got["content-type"], ["application/json"])
            self.assertEqual(got["accept"], ["application/json"])
            self.assertEqual(got["content-length"], ["8"])
            # The gateway's own token, never the client's; no client secrets.
            if g.token():
                self.assertEqual(got["x-grace-internal-token"], [g.token()])
            self.assertNotIn("forged", str(echo["headers"]))
            for h in ("authorization", "cookie", "x-custom"):
                self.assertNotIn(h, got)

            # A chunked body arrives whole, with a length.
            auth = g.auth_line()
            raw = (b"POST /kernels/%s/echo HTTP/1.1\r\nHost: localhost\r\n" % STUB.encode() + auth
                   + b"Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"
                     b"Connection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
            r = g.raw(raw)
            self.assertEqual(r.status, 200, r)
            echo = r.json()
            names = {k.lower(): v for k, v in echo["headers"]}
            self.assertEqual(echo["body"], "hello world")
            self.assertEqual(names.get("content-length"), "11")
            self.assertNotIn("transfer-encoding", names)

            # Percent-encoding: routed on the decoded path, re-encoded upstream.
            st, _, echo = g.http("GET", "/kernels/%s/ec%%68o" % STUB)
            self.assertEqual((st, echo["path"]), (200, "/echo"))

            # Answers pass through with their status.
            st, _, body = g.http("GET", "/kernels/%s/nothing-here" % STUB)
            self.assertEqual(st, 404, body)

    def test_slow_kernel_is_a_504(self):
        kernels = {"librarian": {}, STUB: dict(QUIET, command=stub_kernel_command(200))}
        with GraceServer(kernels=kernels) as g:
            t0 = time.monotonic()
            st, _, body = g.http("POST", "/kernels/%s/sleep?ms=13000" % STUB, "",
                                 timeout=scaled(40))
            elapsed = time.monotonic() - t0
            self.assertEqual(st, 504, body)
            self.assertEqual(body["error"]["code"], "upstream_timeout")
            self.assertIn(STUB, body["error"]["message"])
            # The per-attempt timeout is 10 s; a POST is never sent twice.
            self.assertGreater(elapsed, 9.5)
            self.assertLess(elapsed, 12.5)
            seen = get_json(g, "/kernels/%s/seen" % STUB)
            self.assertEqual(seen.get("/sleep"), 1, seen)
            # Meanwhile the kernel itself answers other requests.
            st, _, body = g.http("GET", "/kernels/%s/health" % STUB)
            self.assertEqual(st, 200)


if __name__ == "__main__":
    unittest.main()
