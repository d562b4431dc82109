"""The dashboard (issue 16, docs/dashboard.md).

Over HTTP: / is the page (compiled in) with a strict Content-Security-Policy,
its files have their types and ETags (304 on a match), an API client asking
for JSON only gets a JSON index, /dashboard/session says who the cookie
belongs to (200 either way), the live feed needs a session and starts with
a snapshot of every kernel.

In a real browser (headless Chromium driven by playwright-core,
js/dashboard.mjs): signs in with the cookie session, sees the kernels as
tiles over the live feed, kills a kernel's process from here (by the pid the
page shows, checked against the API's) and sees its tile go red and then
green with a new pid without a reload, restarts it with the admin's button,
visits every page on a wide and a narrow window, signs out, and fails on any
console error, page error or failed request. Screenshots of each page are
written under the server's temporary directory (GRACE_DASHBOARD_SHOTS=DIR
copies them there too). Under GRACE_SANITIZED=1 the browser part is
reduced to signing in, the kernels page and the console check: never
skipped.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import unittest

from harness import GraceServer, GraceTestCase, need_tool, scaled

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "js", "dashboard.mjs")
SANITIZED = os.environ.get("GRACE_SANITIZED") == "1"
VICTIM = "governance"  # a placeholder kernel: cheap to kill and restart


def open_feed(port, token):
    """A socket on GET /dashboard/events, read up to its snapshot -> (socket, bytes)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=scaled(10))
    s.sendall(("GET /dashboard/events HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
               "Accept: text/event-stream\r\nAuthorization: Bearer %s\r\n\r\n"
               % (port, token)).encode())
    data = b""
    while not re.search(rb"event: snapshot\ndata: [^\n]*\n\n", data):
        chunk = s.recv(65536)
        if not chunk:
            s.close()
            raise AssertionError("the feed closed: %r" % data)
        data += chunk
    return s, data


def kernels():
    if SANITIZED:
        return {VICTIM: {}}
    return {VICTIM: {}, "metrics": {}, "alerts": {}, "audit": {},
            "immutable_log": {}, "message_bus": {}, "telemetry": {}}


class Dashboard(GraceTestCase):
    @classmethod
    def setUpClass(cls):
        # Samples each second: the charts have lines within the test.
        config = {} if SANITIZED else {"metrics": {"scrape_interval_ms": 1000,
                                                   "scrape_timeout_ms": 900},
                                       "telemetry": {"sample_percent": 100, "sample_rate_max": 0}}
        cls.g = GraceServer(kernels=kernels(), config=config)
        try:
            cls.g.start()
        except BaseException:
            cls.g.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.g.close()

    def get(self, path, headers=None, auth=False):
        return self.g.http("GET", path, headers=headers or {}, auth=auth)

    def test_page_and_files(self):
        st, h, body = self.get("/", {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
        self.assertEqual(st, 200)
        self.assertEqual(h["Content-Type"], "text/html; charset=utf-8")
        csp = h["Content-Security-Policy"]
        self.assertIn("script-src 'self'", csp)
        self.assertIn("default-src 'none'", csp)
        self.assertNotIn("unsafe-inline", csp)
        self.assertEqual(h["X-Content-Type-Options"], "nosniff")
        html = body.decode()
        # No inline script or style, and nothing from another origin.
        self.assertNotRegex(html, r"<script(?![^>]*\bsrc=)")
        self.assertNotIn("<style", html)
        self.assertNotIn("style=", html)
        self.assertNotRegex(html, r"(src|href)=\"(https?:)?//")
        for name, ctype in (("app.js", "text/javascript; charset=utf-8"),
                            ("charts.js", "text/javascript; charset=utf-8"),
                            ("style.css", "text/css; charset=utf-8"),
                            ("favicon.svg", "image/svg+xml")):
            st, h, body = self.get("/ui/" + name)
            self.assertEqual(st, 200, name)
            self.assertEqual(h["Content-Type"], ctype)
            self.assertEqual(h["Cache-Control"], "no-cache")
            with open(os.path.join(os.path.dirname(os.path.dirname(HERE)), "web", name), "rb") as f:
                self.assertEqual(body if isinstance(body, bytes) else json.dumps(body).encode(),
                                 f.read(), "%s is served as built" % name)
            etag = h["ETag"]
            self.assertRegex(etag, r'^"[0-9a-f]{32}"$')
            st, h2, body = self.get("/ui/" + name, {"If-None-Match": etag})
            self.assertEqual(st, 304)
            self.assertEqual(body, b"")
            st, _, _ = self.get("/ui/" + name, {"If-None-Match": '"0000"'})
            self.assertEqual(st, 200)
        for bad in ("/ui/nope.js", "/ui/index.html", "/ui/..%2fmeson.build"):
            st, _, body = self.get(bad, auth=True)
            self.assertEqual(st, 404, bad)
            self.assertIn("error", body)
        # HEAD: the headers only.
        st, h, body = self.g.http("HEAD", "/ui/app.js", auth=False)
        self.assertEqual((st, body), (200, b""))

    def test_json_index_for_api_clients(self):
        st, h, body = self.get("/", {"Accept": "application/json"})
        self.assertEqual(st, 200)
        self.assertEqual(body["name"], "grace")
        self.assertEqual(body["health"], "/health")

    def test_session(self):
        st, h, body = self.get("/dashboard/session")
        self.assertEqual((st, body), (200, {"signed_in": False, "user": None}))
        self.assertEqual(h["Cache-Control"], "no-store")
        st, _, body = self.get("/dashboard/session", {"Cookie": "grace_session=notatoken"})
        self.assertEqual(body["signed_in"], False)
        token = self.g.login()
        st, _, body = self.get("/dashboard/session", {"Cookie": "grace_session=" + token})
        self.assertEqual(body, {"signed_in": True, "user": {"name": self.g.first_admin()[0],
                                                            "role": "admin"}})
        # A bearer token is not a browser's session: only the cookie counts.
        st, _, body = self.get("/dashboard/session", {"Authorization": "Bearer " + token})
        self.assertEqual(body["signed_in"], False)

    def test_feed_needs_a_session_and_starts_with_a_snapshot(self):
        st, _, body = self.get("/dashboard/events", {"Accept": "text/event-stream"})
        self.assertEqual(st, 401)
        st, h, body = self.g.http("HEAD", "/dashboard/events",
                                  headers={"Accept": "text/event-stream"})
        self.assertEqual((st, body), (200, b""))
        self.assertTrue(h["Content-Type"].startswith("text/event-stream"))
        token = self.g.login()
        # A feed never ends: only a client that asks for one gets it.
        st, _, body = self.get("/dashboard/events", auth=True)
        self.assertEqual((st, body["error"]["code"]), (406, "not_acceptable"))
        s, data = open_feed(self.g.api_port, token)
        s.close()
        head, _, rest = data.partition(b"\r\n\r\n")
        self.assertIn(b"200", head.split(b"\r\n")[0])
        self.assertIn(b"content-type: text/event-stream", head.lower())
        m = re.search(rb"event: snapshot\r?\ndata: (.*)\n", rest)
        self.assertTrue(m, rest)
        # Chunked: the data line is whole within one chunk.
        snap = json.loads(m.group(1))
        names = {k["name"] for k in snap["kernels"]}
        self.assertIn(VICTIM, names)
        k = next(k for k in snap["kernels"] if k["name"] == VICTIM)
        self.assertEqual(k["pid"], self.g.kernel(VICTIM)["pid"])
        for key in ("state", "health", "uptime_s", "restarts", "port"):
            self.assertIn(key, k)

    def test_feeds_end_when_grace_stops(self):
        with GraceServer(kernels={VICTIM: {}}) as g:
            token = g.login()
            socks = []
            for _ in range(3):
                socks.append(open_feed(g.api_port, token)[0])
            t0 = time.monotonic()
            g.stop()
            # Each feed was ended (its last chunk, then the close), not cut
            # by the drain's deadline.
            for s in socks:
                data = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                self.assertTrue(data.endswith(b"0\r\n\r\n"), data[-200:])
                s.close()
            self.assertLess(time.monotonic() - t0, scaled(10))

    def test_browser(self):
        need_tool("node", "nodejs")
        chromium = need_tool("chromium", "chromium")
        admin, password = self.g.first_admin()
        shots = os.path.join(self.g.tmp, "screenshots")
        os.makedirs(shots)
        trace_id = "d" * 31 + "e"
        if not SANITIZED:
            self.g.create_user("viewer", "viewer-password-1")
            # A real trace for the trace view: one request through the
            # gateway to a kernel that reads SQLite, stored whole.
            st, _, _ = self.g.http("GET", "/bus/subjects",
                                   headers={"traceparent": "00-%s-%s-01" % (trace_id, "3" * 16)})
            self.assertEqual(st, 200)

            def stored():
                st, _, body = self.g.http("GET", "/telemetry/traces/" + trace_id)
                names = [] if st != 200 else json.dumps(body)
                return st == 200 and "forward message_bus" in names and "GET /subjects" in names
            self.g.wait_for(stored, scaled(20), message="the trace for the trace view")
        env = dict(os.environ, CHROMIUM=chromium, DASH_TRACE_ID=trace_id, DASH_USER="viewer", DASH_USER_PW="viewer-password-1", DASH_RECOVER_MS=str(int(scaled(10) * 1000)),
                   DASH_STEP_MS=str(int(scaled(10) * 1000)))
        t0 = time.monotonic()
        proc = subprocess.Popen(["node", SCRIPT, "http://127.0.0.1:%d" % self.g.api_port, admin,
                                 password, shots, "reduced" if SANITIZED else "full", VICTIM],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)
        # A bound on the whole run: the browser and node go with it.
        timer = threading.Timer(scaled(60), proc.kill)
        timer.start()
        result, failure, killed = None, None, None
        try:
            for line in proc.stdout:
                msg = json.loads(line)
                if "kill" in msg:
                    pid = msg["kill"]
                    # The pid the page shows is the one the API reports.
                    self.assertEqual(pid, self.g.kernel(VICTIM)["pid"])
                    os.kill(pid, signal.SIGKILL)
                    killed = pid
                    proc.stdin.write("killed\n")
                    proc.stdin.flush()
                elif "result" in msg:
                    result = msg["result"]
                elif "failure" in msg:
                    failure = msg
            proc.wait(scaled(10))
        finally:
            timer.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            err = proc.stderr.read()
            for f in (proc.stdin, proc.stdout, proc.stderr):
                f.close()
        elapsed = time.monotonic() - t0
        copy = os.environ.get("GRACE_DASHBOARD_SHOTS")
        if copy:
            os.makedirs(copy, exist_ok=True)
            for f in os.listdir(shots):
                shutil.copy(os.path.join(shots, f), copy)
        self.assertIsNone(failure, "the browser test failed: %s\nstderr: %s" % (failure, err[-2000:]))
        self.assertIsNotNone(result, "no result (exit %s): %s" % (proc.returncode, err[-2000:]))
        self.assertEqual(proc.returncode, 0)
        print("dashboard: %.1f s in the browser, %s" % (elapsed, json.dumps(result["timings"])))
        want = ["signin", "kernels"]
        if not SANITIZED:
            self.assertIsNotNone(killed)
            want += ["kernels-recovering", "kernels-narrow", "incidents", "alerts", "metrics",
                     "traces", "trace", "audit"]
            self.assertGreaterEqual(result["timings"]["trace_rows"], 3)
            # Red then green within the bound, and the kernel runs again
            # under a new pid.
            self.assertLess(result["timings"]["green_ms"], scaled(10) * 1000)
            self.g.wait_kernel(VICTIM, lambda k: k["state"] == "ready" and k["pid"] != killed)
        for name in want:
            path = os.path.join(shots, name + ".png")
            self.assertTrue(os.path.getsize(path) > 1000, path)
            with open(path, "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")


if __name__ == "__main__":
    unittest.main()
