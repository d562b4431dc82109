"""A small HTTP server for the workflow tests and bench: it answers calls
of workflow runs on loopback and counts each Idempotency-Key, so a test can
tell a call made twice. Paths: /echo answers {"got": body, "key": the key
without its run id}; /flaky/N fails (503) the first N requests of each run; /gate fails (500) until opened;
/slow answers as /echo after 60 ms."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class CountingServer:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []          # (path, key) in arrival order
        self.headers = []           # the headers of each request
        self.flaky = {}             # key without attempt -> failures so far
        self.gate_open = False
        self.answers = {}           # key -> the first answer given
        self.duplicates = 0         # requests with a key already answered
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                self.handle_any()

            def do_POST(self):
                self.handle_any()

            def handle_any(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                key = self.headers.get("Idempotency-Key") or ""
                path = self.path.split("?")[0]
                with outer.lock:
                    outer.requests.append((path, key))
                    outer.headers.append(dict(self.headers))
                    status = 200
                    if path.startswith("/flaky/"):
                        base = key.split(":", 1)[0] + path  # the run and the path
                        seen = outer.flaky.get(base, 0)
                        outer.flaky[base] = seen + 1
                        if seen < int(path.split("/")[2]):
                            status = 503
                    elif path == "/gate" and not outer.gate_open:
                        status = 500
                if path == "/slow":
                    time.sleep(0.06)
                tail = key.split(":", 1)[1] if ":" in key else key
                out = json.dumps({"got": body, "key": tail, "path": path}).encode()
                with outer.lock:
                    # a callee that drops duplicates: a key seen before gets its first answer
                    if key and status == 200:
                        if key in outer.answers:
                            out = outer.answers[key]
                            outer.duplicates += 1
                        else:
                            outer.answers[key] = out
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        class Server(ThreadingHTTPServer):
            request_queue_size = 1024  # a wide fork connects all at once

        self.httpd = Server(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def keys(self, path=None):
        with self.lock:
            return [k for p, k in self.requests if path is None or p == path]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
