"""A webhook receiver for the alerts tests: an HTTP server on an ephemeral
port of 127.0.0.1 (never 8000-8149) that keeps every POST it receives and
answers with a status the test chooses (to prove retries)."""

import http.server
import json
import threading
import time


class Webhook:
    def __init__(self):
        self.lock = threading.Lock()
        self.received = []  # (path, headers dict, parsed JSON body)
        self.fail_next = 0  # answer 503 to this many requests first
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(n)
                with hook.lock:
                    failing = hook.fail_next > 0
                    if failing:
                        hook.fail_next -= 1
                    else:
                        hook.received.append((self.path, dict(self.headers), json.loads(raw)))
                self.send_response(503 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def bodies(self, path=None):
        with self.lock:
            return [b for p, _, b in self.received if path is None or p == path]

    def wait(self, pred, timeout, what):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            got = pred(self.bodies())
            if got:
                return got
            time.sleep(0.05)
        raise AssertionError("webhook: %s not received in %.0f s; got %s"
                             % (what, timeout, json.dumps(self.bodies())[:2000]))

    def close(self):
        self.server.shutdown()
        self.server.server_close()
