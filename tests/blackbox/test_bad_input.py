"""Hostile and malformed requests, sent both straight to the librarian's
port and through the API's /librarian prefix: every one gets a 4xx (JSON
where Grace itself answers), and nothing crashes."""

import socket
import time
import unittest

from harness import GraceServer, ServerClassCase, scaled, spare_kernels

API_MAX_BODY = 131072
KERNEL_MAX_BODY = 4096
MAX_HEADERS = 20


def headers_block(n):
    return b"".join(b"X-Filler-%d: v\r\n" % i for i in range(n))


class BadInput(ServerClassCase):
    @classmethod
    def make_server(cls):
        return GraceServer(
            config={"limits": {"max_body_bytes": API_MAX_BODY, "max_headers": MAX_HEADERS}},
            kernels={"librarian": {"max_body_bytes": KERNEL_MAX_BODY}, spare_kernels(1)[0]: {}})

    @classmethod
    def prepare(cls):
        h = cls.g.health()
        cls.serve_pid = h["pid"]
        cls.pids = {n: k["pid"] for n, k in h["kernels"].items()}

    def targets(self):
        """(label, port, prefix): the kernel itself, and the API's gateway."""
        return [("kernel", self.g.kernel_port("librarian"), b""),
                ("api", self.g.api_port, b"/librarian")]

    def tok(self, port):
        """The header line that lets a request past authorization: the
        internal token for a kernel (it refuses its own routes without), the
        admin's session for the API (none for builds without logins)."""
        return self.g.token_line() if port != self.g.api_port else self.g.auth_line()

    def tokh(self, port, headers=None):
        h = dict(headers or {})
        if port != self.g.api_port:
            h.update(self.g.token_headers())
        return h

    def assertJsonError(self, status, body, want_status, code=None, label=""):
        self.assertEqual(status, want_status, "%s: %r" % (label, body))
        self.assertIsInstance(body, dict, "%s: not JSON: %r" % (label, body))
        err = body["error"]
        self.assertIsInstance(err["message"], str)
        self.assertIsInstance(err["request_id"], str)
        self.assertTrue(err["request_id"])
        if code:
            self.assertEqual(err["code"], code, label)

    def post_docs(self, body, headers=None):
        out = []
        for label, port, prefix in self.targets():
            st, hdrs, parsed = self.g.http(
                "POST", prefix.decode() + "/documents", body,
                headers=self.tokh(port, headers or {"Content-Type": "application/json"}),
                port=port)
            out.append((label, st, hdrs, parsed))
        return out

    # -- JSON bodies

    def test_bad_json(self):
        for body in (b'{"title": ', b"{title: 1}", b"not json",
                     b'{"title":"a","body":"b"} trailing',
                     b'{"title":"a","body":"b",}'):
            for label, st, _, parsed in self.post_docs(body):
                self.assertJsonError(st, parsed, 400, "bad_json", "%s %r" % (label, body))

    def test_non_object_json(self):
        for body in (b"[1, 2]", b'"a string"', b"42", b"null", b"true"):
            for label, st, _, parsed in self.post_docs(body):
                self.assertJsonError(st, parsed, 400, "bad_json", "%s %r" % (label, body))

    def test_empty_body(self):
        for label, st, _, parsed in self.post_docs(b""):
            self.assertJsonError(st, parsed, 400, "bad_json", label)

    def test_invalid_utf8_and_nul(self):
        for body in (b'{"title":"\xff\xfe","body":"x"}', b'{"title":"ok","body":"\xc0\xaf"}',
                     b'{"title":"\xed\xa0\x80","body":"x"}', b'{"title":"a\\u0000b","body":"x"}',
                     b'{"title":"a","body":"x","title":"dup"}'):
            for label, st, _, parsed in self.post_docs(body):
                self.assertJsonError(st, parsed, 400, "bad_json", "%s %r" % (label, body))

    # -- sizes

    def test_body_over_kernel_limit_direct(self):
        port = self.g.kernel_port("librarian")
        body = b'{"title":"t","body":"' + b"x" * (KERNEL_MAX_BODY + 100) + b'"}'
        st, _, _ = self.g.http("POST", "/documents", body,
                               headers=self.tokh(port, {"Content-Type": "application/json"}),
                               port=port)
        self.assertEqual(st, 413)
        # Chunked, so the size is only known while reading.
        r = self.g.raw(b"POST /documents HTTP/1.1\r\nHost: 127.0.0.1\r\n" + self.tok(port)
                       + b"Transfer-Encoding: chunked\r\n\r\n"
                       + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n", port=port)
        self.assertEqual(r.status, 413)
        # A body just under the limit is taken.
        ok = b'{"title":"t","body":"' + b"x" * (KERNEL_MAX_BODY - 100) + b'"}'
        st, _, parsed = self.g.http("POST", "/documents", ok,
                                    headers=self.tokh(port, {"Content-Type": "application/json"}),
                                    port=port)
        self.assertEqual(st, 201, parsed)

    def test_body_over_api_limit(self):
        body = b" " * (API_MAX_BODY + 1000)
        st, _, _ = self.g.http("POST", "/librarian/documents", body,
                               headers={"Content-Type": "application/json"})
        self.assertEqual(st, 413)
        # A Content-Length past the limit is refused before any body arrives.
        r = self.g.raw(b"POST /librarian/documents HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       b"Content-Length: 99999999999\r\n\r\n{}")
        self.assertEqual(r.status, 413)

    # A body over the kernel's own limit but under the API's, sent through
    # the gateway: see test_known_bugs.py (502 instead of 413).

    # -- framing

    def test_content_length_and_transfer_encoding(self):
        for label, port, prefix in self.targets():
            # A second request hidden behind the ambiguous one must never be
            # answered: one response, then the connection is closed.
            r = self.g.raw(b"POST " + prefix + b"/documents HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"0\r\n\r\nGET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                           port=port, read_all=True)
            self.assertEqual(r.status, 400, label)
            self.assertEqual(r.raw.count(b"HTTP/1.1 "), 1, "%s: %r" % (label, r.raw))

    def test_two_content_lengths(self):
        for label, port, prefix in self.targets():
            for a, b in ((b"2", b"2"), (b"2", b"30")):
                r = self.g.raw(b"POST " + prefix + b"/documents HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               b"Content-Type: application/json\r\n"
                               b"Content-Length: " + a + b"\r\nContent-Length: " + b + b"\r\n\r\n"
                               b"{}GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                               port=port, read_all=True)
                self.assertEqual(r.status, 400, label)
                self.assertEqual(r.json()["error"]["code"], "bad_framing")
                self.assertEqual((r.header("Connection") or "").lower(), "close")
                self.assertEqual(r.raw.count(b"HTTP/1.1 "), 1, "%s: %r" % (label, r.raw))

    def test_transfer_encoding_not_chunked(self):
        for label, port, prefix in self.targets():
            for te in (b"gzip", b"gzip, chunked", b"identity"):
                r = self.g.raw(b"POST " + prefix + b"/documents HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               b"Transfer-Encoding: " + te + b"\r\n\r\n0\r\n\r\n", port=port)
                self.assertEqual(r.status, 400, "%s %r" % (label, te))
                self.assertEqual(r.json()["error"]["code"], "bad_framing")
            # Two Transfer-Encoding headers, and bad Content-Length values.
            for hdrs in (b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                         b"Content-Length: abc\r\n", b"Content-Length: -5\r\n",
                         b"Content-Length: 1 2\r\n"):
                r = self.g.raw(b"POST " + prefix + b"/documents HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               + hdrs
                               + b"\r\n0\r\n\r\n", port=port)
                self.assertEqual(r.status, 400, "%s %r" % (label, hdrs))
            # The control: a well-formed chunked body is accepted.
            doc = b'{"title":"chunked","body":"sent in chunks"}'
            r = self.g.raw(b"POST " + prefix + b"/documents HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           + self.tok(port)
                           + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                           + b"%x\r\n" % 10 + doc[:10] + b"\r\n"
                           + b"%x\r\n" % (len(doc) - 10) + doc[10:] + b"\r\n0\r\n\r\n", port=port)
            self.assertEqual(r.status, 201, "%s: %r" % (label, r))

    def test_too_many_headers(self):
        for label, port, prefix in self.targets():
            # Host plus 19 is exactly the limit: fine.
            r = self.g.raw(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           + headers_block(MAX_HEADERS - 1)
                           + b"\r\n", port=port)
            self.assertEqual(r.status, 200, label)
            r = self.g.raw(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           + headers_block(MAX_HEADERS)
                           + b"\r\n", port=port)
            self.assertEqual(r.status, 431, label)
            self.assertEqual(r.json()["error"]["code"], "bad_framing")
            r = self.g.raw(b"GET " + prefix + b"/search?query=x HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           + headers_block(200) + b"\r\n", port=port)
            self.assertEqual(r.status, 431, label)
            # Headers past max_header_bytes: libevent refuses them itself.
            r = self.g.raw(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 40000
                           + b"\r\n\r\n", port=port)
            self.assertIn(r.status, (400, 413, 431), label)

    # -- routing

    def test_unknown_route(self):
        for label, port, prefix in self.targets():
            for path in (b"/nope", prefix + b"/nope", prefix + b"/documents/1/extra", b"/%FF%FE"):
                st, _, body = self.g.http("GET", path.decode("latin-1"), port=port,
                                          headers=self.tokh(port))
                self.assertJsonError(st, body, 404, "not_found", "%s %r" % (label, path))
        # The API's own catch-all.
        st, _, body = self.g.http("GET", "/librarian")
        self.assertJsonError(st, body, 404, "not_found")
        st, _, body = self.g.http("GET", "/kernels/nope/health")
        self.assertJsonError(st, body, 404, "unknown_kernel")

    def test_wrong_method(self):
        k = self.g.kernel_port("librarian")
        cases = [(k, "DELETE", "/health"), (k, "PUT", "/documents"), (k, "POST", "/search"),
                 (k, "PATCH", "/documents/1"), (k, "OPTIONS", "/health"),
                 (None, "POST", "/health"), (None, "DELETE", "/kernel-ports"),
                 (None, "GET", "/kernel-ports/librarian/start"), (None, "PUT", "/metrics"),
                 (None, "PATCH", "/librarian/documents"), (None, "POST", "/librarian/search")]
        for port, method, path in cases:
            st, _, body = self.g.http(method, path, port=port,
                                      headers=self.tokh(port or self.g.api_port))
            self.assertJsonError(st, body, 405, "method_not_allowed", "%s %s" % (method, path))
        for label, port, _ in self.targets():
            r = self.g.raw(b"TRACE /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + self.tok(port)
                           + b"\r\n",
                           port=port)
            self.assertIn(r.status, (405, 501), label)

    def test_long_and_odd_paths(self):
        for label, port, prefix in self.targets():
            for path in (b"/" + b"a" * 3000, prefix + b"/" + b"a" * 3000,
                         prefix + b"/documents/" + b"9" * 2100, b"/" + b"a" * 15000,
                         b"/" + b"a" * 40000, prefix + b"/documents/1%00",
                         prefix + b"/" + b"%20" * 1500, b"/" + b"%" * 100,
                         prefix + b"/../../etc/passwd", b"/health/" + b"/" * 3000):
                r = self.g.raw(b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + self.tok(port)
                               + b"\r\n", port=port)
                self.assertIsNotNone(r.status, "%s %r: no answer" % (label, path[:60]))
                self.assertTrue(400 <= r.status < 500, "%s %r -> %s" % (label, path[:60], r.status))

    def test_garbage(self):
        for label, port, _ in self.targets():
            for data in (b"HELLO\r\n\r\n", b"GET /health HTTP/9.9\r\n\r\n", b"\x00\x01\x02\r\n\r\n",
                         b"GET /health HTTP/1.1\r\nNo colon here\r\n\r\n",
                         b"GET\r\n\r\n", b"\r\n\r\n\r\n\r\n"):
                r = self.g.raw(data, port=port)
                if r.status is not None:
                    self.assertTrue(400 <= r.status < 500, "%s %r -> %s" % (label, data, r.status))

    def test_slow_and_pipelined_and_truncated(self):
        for label, port, prefix in self.targets():
            # One byte at a time.
            s = socket.create_connection(("127.0.0.1", port), timeout=scaled(10))
            try:
                for b in b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n":
                    s.sendall(bytes([b]))
                    time.sleep(0.001)
                data = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            finally:
                s.close()
            self.assertTrue(data.startswith(b"HTTP/1.1 200"), "%s: %r" % (label, data[:100]))
            # Two requests in one write: two answers, in order.
            r = self.g.raw(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                           b"GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\n" + self.tok(port)
                           + b"Connection: close\r\n\r\n",
                           port=port, read_all=True)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.raw.count(b"HTTP/1.1 "), 2, label)
            self.assertIn(b"HTTP/1.1 404", r.raw)
            # A body cut short by the client going away.
            s = socket.create_connection(("127.0.0.1", port), timeout=scaled(10))
            s.sendall(b"POST " + prefix + b"/documents HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"Content-Length: 1000\r\n\r\n{\"title\":")
            s.close()

    def test_request_ids(self):
        for label, port, prefix in self.targets():
            good = "client-id_1.2:3"
            st, hdrs, body = self.g.http("GET", prefix.decode() + "/nope", port=port,
                                         headers=self.tokh(port, {"X-Request-Id": good}))
            self.assertEqual(hdrs["X-Request-Id"], good, label)
            self.assertEqual(body["error"]["request_id"], good, label)
            # Ids that would be unsafe in logs are replaced by fresh ones.
            for bad in ("has space", "a" * 65, "semi;colon", "quote\"", "\u00e9t\u00e9"):
                st, hdrs, body = self.g.http("GET", prefix.decode() + "/nope", port=port,
                                             headers=self.tokh(port, {"X-Request-Id": bad}))
                rid = hdrs["X-Request-Id"]
                self.assertNotEqual(rid, bad, label)
                self.assertRegex(rid, r"^[0-9a-f]{32}$", label)
                self.assertEqual(body["error"]["request_id"], rid, label)

    def test_zz_nothing_crashed(self):
        """Last (by name): after everything above, the same processes answer."""
        h = self.g.health()
        self.assertEqual(h["pid"], self.serve_pid)
        self.assertEqual(h["status"], "ok")
        for name, k in h["kernels"].items():
            self.assertEqual((k["pid"], k["restarts"], k["state"]),
                             (self.pids[name], 0, "ready"), name)
        st, _, body = self.g.kernel_http("librarian", "GET", "/health")
        self.assertEqual((st, body["pid"]), (200, self.pids["librarian"]))
        st, _, body = self.g.http("GET", "/librarian/search?query=chunks")
        self.assertEqual(st, 200, body)
        self.assertGreaterEqual(body["total"], 1)
        self.assertNotIn("AddressSanitizer", self.g.log())


if __name__ == "__main__":
    unittest.main()
