"""The HTTP layer under every port (issue 10 item 2, issue 8 findings 1, 3,
15 and 16), through a real grace serve:

- every answer the HTTP layer gives before a route runs is JSON in Grace's
  error shape with X-Request-Id: malformed request line 400, head too large
  431, body too large 413, bad chunking 400, unknown method 501, HTTP/1.1
  without Host 400, 405 with Allow, a head that does not arrive 408, and
  CONNECT 501 with Content-Length and the connection closed;
- Host: two of them, a NUL inside, "Transfer-Encoding : chunked": 400; an
  absolute-form target's host is the one checked (421 for a foreign one);
- a body sent with PATCH, DELETE, GET or OPTIONS through the gateway never
  becomes a request of its own on the kernel's connection (smuggling);
- slow clients: a head dribbled a line at a time is cut at the head
  deadline with a 408; connections per address and in all are capped (the
  longest-idle keep-alive connection makes room), and the ones refused get
  a JSON 503; a process at its descriptor limit sheds connections without
  spinning, logs the condition once, and keeps answering.
"""

import json
import os
import resource
import socket
import threading
import time
import unittest

from harness import GraceServer, GraceTestCase, ServerClassCase, raw_request, scaled

FAST = {"auth": {"argon2_mem_kib": 19456}}
HEAD_TIMEOUT_MS = 1500
LIMITS = {"head_timeout_ms": HEAD_TIMEOUT_MS, "max_connections_per_address": 20,
          "max_connections": 48}


def connect(port, source="127.0.0.1", timeout=10.0):
    s = socket.socket()
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def read_response(s):
    """Reads one response (Content-Length framed) from s: (status, headers, body)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise AssertionError("closed before a response: %r" % buf)
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in
               (line.partition(":") for line in lines[1:])}
    n = int(headers.get("content-length", "0"))
    while len(body) < n:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body[:n]


def closed_by_peer(s, timeout):
    """True when the peer closes s within timeout (what it sends is drained)."""
    s.settimeout(timeout)
    try:
        while True:
            if not s.recv(65536):
                return True
    except socket.timeout:
        return False
    except ConnectionResetError:
        return True


class HttpLayer(ServerClassCase):
    @classmethod
    def make_server(cls):
        return GraceServer(config=dict(FAST, limits=LIMITS), kernels={"librarian": {}})

    def ports(self):
        return (("api", self.g.api_port), ("kernel", self.g.kernel_port("librarian")))

    def assert_json_error(self, r, status, code, label):
        self.assertEqual(r.status, status, "%s: %r" % (label, r))
        body = r.json()
        self.assertEqual(body["error"]["code"], code, label)
        rid = r.header("X-Request-Id")
        self.assertTrue(rid, label)
        self.assertEqual(body["error"]["request_id"], rid, label)
        self.assertEqual(r.header("Content-Type"), "application/json", label)
        self.assertEqual(int(r.header("Content-Length")), len(r.body), label)

    # -- every error is JSON

    def test_protocol_errors_are_json(self):
        big = b"x" * 20000
        cases = [
            ("request line", b"GARBAGE\r\n\r\n", 400, "bad_request"),
            ("head too large", b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Big: " + big
             + b"\r\n\r\n", 431, "headers_too_large"),
            ("body too large", b"POST /health HTTP/1.1\r\nHost: localhost\r\n"
             b"Content-Length: 99999999\r\n\r\n", 413, "body_too_large"),
            ("chunk size zz", b"POST /health HTTP/1.1\r\nHost: localhost\r\n"
             b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "bad_framing"),
            ("TRACE", b"TRACE /health HTTP/1.1\r\nHost: localhost\r\n\r\n", 501,
             "not_implemented"),
            ("no Host", b"GET /health HTTP/1.1\r\n\r\n", 400, "bad_host"),
            ("HTTP/2.0", b"GET /health HTTP/2.0\r\nHost: localhost\r\n\r\n", 400, "bad_request"),
        ]
        for where, port in self.ports():
            for label, data, status, code in cases:
                r = raw_request(port, data, timeout=scaled(5), read_all=True)
                self.assert_json_error(r, status, code, "%s %s" % (where, label))
                self.assertEqual((r.header("Connection") or "").lower(), "close")
            # 405 names what is allowed.
            headers = self.g.token_headers() if where == "kernel" else None
            st, hdrs, body = self.g.http("DELETE", "/health", port=port, headers=headers)
            self.assertEqual((st, body["error"]["code"]), (405, "method_not_allowed"), where)
            self.assertEqual(body["error"]["request_id"], hdrs["X-Request-Id"])
            self.assertEqual(hdrs["Allow"], "GET, HEAD")

    def test_a_head_that_does_not_arrive_is_a_408(self):
        for where, port in self.ports():
            s = connect(port)
            t0 = time.monotonic()
            s.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n")
            st, hdrs, body = read_response(s)
            took = time.monotonic() - t0
            self.assertEqual(st, 408, where)
            self.assertEqual(json.loads(body)["error"]["code"], "request_timeout")
            self.assertGreaterEqual(took, HEAD_TIMEOUT_MS / 1000 * 0.9, where)
            self.assertTrue(closed_by_peer(s, scaled(5)), where)
            s.close()

    def test_connect_is_refused_and_closed(self):
        for where, port in self.ports():
            s = connect(port)
            s.sendall(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
            st, hdrs, body = read_response(s)
            self.assertEqual(st, 501, where)
            self.assertEqual(int(hdrs["content-length"]), len(body))
            self.assertEqual(json.loads(body)["error"]["code"], "not_implemented")
            self.assertTrue(closed_by_peer(s, scaled(5)), where)
            s.close()

    # -- Host and framing checks (finding 15)

    def test_host_checks(self):
        api = self.g.api_port
        for label, data in (
                ("two Hosts", b"GET /health HTTP/1.1\r\nHost: localhost\r\nHost: localhost\r\n\r\n"),
                ("NUL in Host", b"GET /health HTTP/1.1\r\nHost: local\x00host\r\n\r\n"),
                ("space before colon", b"POST /health HTTP/1.1\r\nHost: localhost\r\n"
                 b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n")):
            r = raw_request(api, data, timeout=scaled(5), read_all=True)
            self.assertEqual(r.status, 400, "%s: %r" % (label, r))
            self.assertIn(r.json()["error"]["code"], ("bad_host", "bad_framing"), label)
        # The absolute form's host is the one that counts.
        r = raw_request(api, b"GET http://evil.example/health HTTP/1.1\r\nHost: localhost\r\n"
                        b"Connection: close\r\n\r\n", timeout=scaled(5))
        self.assert_json_error(r, 421, "host_not_allowed", "absolute form")
        r = raw_request(api, b"GET http://localhost/health HTTP/1.1\r\nHost: evil.example\r\n"
                        b"Connection: close\r\n\r\n", timeout=scaled(5))
        self.assertEqual(r.status, 200, r)

    # -- smuggling through the gateway (finding 1)

    def test_bodies_never_become_requests_on_the_kernel(self):
        g = self.g
        g.create_user("mallory", "mallory's long password")
        mallory = g.login("mallory", "mallory's long password")
        st, _, d1 = g.http("POST", "/librarian/documents", {"title": "one", "body": "alpha"})
        self.assertEqual(st, 201, d1)
        st, _, d2 = g.http("POST", "/librarian/documents", {"title": "two", "body": "beta"})
        self.assertEqual(st, 201, d2)
        smuggles = [b"GET /documents/999999 HTTP/1.1\r\nHost: x\r\n\r\n",
                    b"DELETE /documents/%d HTTP/1.1\r\nX-Pad: " % d2["id"]]
        stop = threading.Event()
        wrong = []

        def searcher():
            while not stop.is_set():
                st, _, out = g.http("GET", "/librarian/search?query=alpha")
                if st != 200 or "results" not in out:
                    wrong.append((st, out))

        threads = [threading.Thread(target=searcher) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            for _ in range(60):
                for method in ("PATCH", "DELETE", "GET", "OPTIONS"):
                    for body in smuggles:
                        req = (b"%s /librarian/documents/%d HTTP/1.1\r\nHost: localhost\r\n"
                               b"Authorization: Bearer %s\r\nContent-Length: %d\r\n"
                               b"Connection: close\r\n\r\n" % (method.encode(), d1["id"],
                                                               mallory.encode(), len(body))) + body
                        raw_request(g.api_port, req, timeout=scaled(5))
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.assertEqual(wrong, [])
        st, _, out = g.http("GET", "/librarian/documents/%d" % d2["id"])
        self.assertEqual(st, 200, "the smuggled DELETE ran: %r" % (out,))

    # -- large bodies: only where a route takes them, only from a principal

    def bulk_body(self, nbytes, tag):
        """NDJSON of distinct documents, about nbytes long."""
        line = '{"title":"%s %%d","body":"%s"}\n' % (tag, " ".join(["kestrel"] * 200))
        n = nbytes // len(line % 0) + 1
        return "".join(line % i for i in range(n)).encode(), n

    def head(self, path, length, headers=b"", chunked=False):
        framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % length
        return (b"POST %s HTTP/1.1\r\nHost: localhost\r\n%sContent-Type: application/x-ndjson"
                b"\r\n%s\r\n\r\n" % (path.encode(), headers, framing))

    def test_large_bodies_only_where_the_route_takes_them_and_from_a_principal(self):
        g = self.g
        auth = b"Authorization: %s\r\n" % g.auth_headers()["Authorization"].encode()
        token = b"".join(b"%s: %s\r\n" % (k.encode(), v.encode())
                         for k, v in g.token_headers().items())
        body, n = self.bulk_body(3 << 20, "large")
        # Past the 1 MiB every other route has, with a session: stored.
        st, _, out = g.http("POST", "/librarian/documents/_bulk", body,
                            headers={"Content-Type": "application/x-ndjson"}, timeout=scaled(60))
        self.assertEqual((st, out.get("created")), (200, n), out)
        # Chunked, through the admins' prefix: every line found again.
        chunked = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 65536]), body[i:i + 65536])
                           for i in range(0, len(body), 65536)) + b"0\r\n\r\n"
        r = raw_request(g.api_port, self.head("/kernels/librarian/documents/_bulk", 0, auth,
                                              chunked=True) + chunked, timeout=scaled(60))
        self.assertEqual((r.status, r.json().get("duplicates")), (200, n), r)
        # The kernel itself takes it from a caller with the internal token.
        r = raw_request(g.kernel_port("librarian"),
                        self.head("/documents/_bulk", len(body), token) + body,
                        timeout=scaled(60))
        self.assertEqual((r.status, r.json().get("duplicates")), (200, n), r)
        # Refused from the head alone, before a byte of the body is sent:
        # nobody, a session that is not valid, a route that takes 1 MiB, and
        # the kernel without its token.
        refused = [(g.api_port, "/librarian/documents/_bulk", b""),
                   (g.api_port, "/librarian/documents/_bulk",
                    b"Authorization: Bearer not-a-session\r\n"),
                   (g.api_port, "/librarian/documents", auth),
                   (g.api_port, "/kernels/librarian/documents", auth),
                   (g.kernel_port("librarian"), "/documents/_bulk", b"")]
        for port, path, headers in refused:
            r = raw_request(port, self.head(path, len(body), headers), timeout=scaled(5))
            self.assert_json_error(r, 413, "body_too_large", "%s %s" % (path, headers))
            self.assertIn("1048576", r.json()["error"]["message"])
        # Past the route's own 16 MiB: 413 from the head, or (chunked) as
        # the body passes it.
        over = (16 << 20) + 1
        r = raw_request(g.api_port, self.head("/librarian/documents/_bulk", over, auth),
                        timeout=scaled(5))
        self.assert_json_error(r, 413, "body_too_large", "over 16 MiB")
        self.assertIn("16777216", r.json()["error"]["message"])
        s = connect(g.api_port, timeout=scaled(30))
        try:
            s.sendall(self.head("/librarian/documents/_bulk", 0, auth, chunked=True))
            piece = b"%x\r\n%s\r\n" % (1 << 20, b"x" * (1 << 20))
            try:
                for _ in range(17):
                    s.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                pass  # refused as it passed the limit; the answer is read below
            st, hdrs, out = read_response(s)
            self.assertEqual((st, json.loads(out)["error"]["code"]), (413, "body_too_large"))
        finally:
            s.close()

    def test_large_bodies_held_at_once_are_bounded(self):
        """Four 16 MiB bodies on their way take the 64 MiB budget: a fifth
        is 503 with Retry-After before its body is sent, and is taken once
        one of the four goes."""
        g = self.g
        auth = b"Authorization: %s\r\n" % g.auth_headers()["Authorization"].encode()
        head = self.head("/librarian/documents/_bulk", 16 << 20, auth)
        held = []
        try:
            for _ in range(4):
                s = connect(g.api_port, timeout=scaled(10))
                s.sendall(head + b"x" * 1000)
                held.append(s)
            time.sleep(0.2)  # (each head read and its body begun)
            r = raw_request(g.api_port, head, timeout=scaled(5))
            self.assert_json_error(r, 503, "busy", "a fifth")
            self.assertEqual(r.header("Retry-After"), "1")
            held.pop().close()
            body, n = self.bulk_body(2 << 20, "after")

            def taken():
                r = raw_request(g.api_port, self.head("/librarian/documents/_bulk", len(body),
                                                      auth) + body, timeout=scaled(60))
                return r if r.status == 200 else None
            r = g.wait_for(taken, scaled(10), interval=0.1, message="room after one went")
            self.assertEqual(r.json().get("created"), n)
        finally:
            for s in held:
                s.close()

    # -- slow clients and caps (finding 3)

    def test_slow_heads_are_cut_at_the_deadline(self):
        socks = []
        stop = threading.Event()
        closed_after = {}

        def dribble(i, s):
            t0 = time.monotonic()
            try:
                s.sendall(b"GET /health HTTP/1.1\r\n")
                while not stop.is_set():
                    time.sleep(0.3)
                    s.sendall(b"X-Slow-%d: yes\r\n" % i)
            except OSError:
                pass
            closed_after[i] = time.monotonic() - t0

        for i in range(5):
            socks.append(connect(self.g.api_port, "127.0.0.%d" % (10 + i)))
        threads = [threading.Thread(target=dribble, args=(i, s)) for i, s in enumerate(socks)]
        for t in threads:
            t.start()
        # Meanwhile a normal client is served.
        st, _, _ = self.g.http("GET", "/health", auth=False)
        self.assertEqual(st, 200)
        for s in socks:
            self.assertTrue(closed_by_peer(s, scaled(HEAD_TIMEOUT_MS / 1000 + 4)))
        stop.set()
        for t in threads:
            t.join()
        for s in socks:
            s.close()

    def test_connections_per_address_are_capped(self):
        port = self.g.api_port
        held = []
        try:
            for _ in range(20):
                s = connect(port, "127.0.0.21")
                s.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
                self.assertEqual(read_response(s)[0], 200)
                held.append(s)
            s = connect(port, "127.0.0.21")
            st, hdrs, body = read_response(s)
            s.close()
            self.assertEqual(st, 503)
            self.assertEqual(json.loads(body)["error"]["code"], "too_many_connections")
            self.assertEqual(hdrs.get("retry-after"), "1")
            # Another address is not affected.
            s = connect(port, "127.0.0.22")
            s.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            self.assertEqual(read_response(s)[0], 200)
            s.close()
        finally:
            for s in held:
                s.close()

    def test_at_the_global_cap_the_longest_idle_connection_makes_room(self):
        port = self.g.api_port
        held = []
        try:
            # 48 idle keep-alive connections from three addresses: the cap.
            for n in range(48):
                s = connect(port, "127.0.0.%d" % (31 + n // 16))
                s.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
                self.assertEqual(read_response(s)[0], 200)
                held.append(s)
            s = connect(port, "127.0.0.40")
            s.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            self.assertEqual(read_response(s)[0], 200)
            s.close()
            # The oldest idle one was closed for it.
            self.assertTrue(closed_by_peer(held[0], scaled(2)))
        finally:
            for s in held:
                s.close()


class DescriptorLimit(GraceTestCase):
    """grace serve at a low RLIMIT_NOFILE: connections past what it can hold
    are shed with a JSON 503, logged once, without spinning."""

    def test_shedding_at_the_descriptor_limit(self):
        def low_limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (300, 300))
        g = GraceServer(config=FAST, kernels={"librarian": {}}, preexec_fn=low_limit)
        with g:
            held, shed = [], 0
            try:
                for n in range(400):
                    try:
                        s = connect(g.api_port, "127.0.%d.%d" % (1 + n // 200, 1 + n % 200),
                                    timeout=scaled(5))
                    except OSError:
                        continue
                    held.append(s)
                for s in held[-50:]:
                    s.settimeout(0.2)
                    try:
                        if s.recv(4096).startswith(b"HTTP/1.1 503"):
                            shed += 1
                    except (socket.timeout, ConnectionResetError):
                        pass
                self.assertGreater(shed, 0, "no connection was shed")
                with open("/proc/%d/stat" % g.proc.pid) as f:
                    f0 = f.read().split()
                time.sleep(2)
                with open("/proc/%d/stat" % g.proc.pid) as f:
                    f1 = f.read().split()
                cpu = (int(f1[13]) + int(f1[14]) - int(f0[13]) - int(f0[14])) / os.sysconf(
                    "SC_CLK_TCK")
                self.assertLess(cpu, 0.5, "the main process spins at its descriptor limit")
            finally:
                for s in held:
                    s.close()
            st, _, h = g.http("GET", "/health", auth=False)
            self.assertEqual(st, 200, h)
            self.assertEqual(h["kernels"]["librarian"]["restarts"], 0)
            shed_lines = [line for line in g.log().splitlines() if "shed" in line]
            self.assertLessEqual(len(shed_lines), 2, shed_lines)


if __name__ == "__main__":
    unittest.main()
