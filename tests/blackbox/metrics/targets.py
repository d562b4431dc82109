"""Deterministic scrape targets for the metrics tests (standard library
only): an HTTP server on 127.0.0.1 whose answers are functions of time, so
that two scrapers scraping it at different moments store the same samples.

Paths:
  /metrics  text format 0.0.4: counters and gauges with explicit
            timestamps on a grid of GRID_S seconds (every scrape within a
            grid step sees the same sample), a counter without timestamps
            growing RATE per second, a `flap` series present only in even
            FLAP_S windows, and whatever `extra` holds.
  /om       the same in OpenMetrics.
  /big      N series (N from the query string, default 60).
"""

import http.server
import math
import socketserver
import threading
import time

GRID_S = 5
FLAP_S = 10
RATE = 10.0


def grid_time(now=None):
    now = time.time() if now is None else now
    return int(now // GRID_S) * GRID_S


def exposition(openmetrics=False, extra=None, now=None):
    now = time.time() if now is None else now
    t = grid_time(now)
    lines = []
    ts = (lambda s: " %.3f" % s) if openmetrics else (lambda s: " %d" % int(s * 1000))
    lines.append("# TYPE diff_requests counter")
    for code, k in (("200", 7), ("500", 1)):
        # Counters on the grid: value = k * t (so rates are exactly k).
        name = "diff_requests_total" if not openmetrics else "diff_requests_total"
        lines.append('%s{code="%s"} %d%s' % (name, code, k * t, ts(t)))
    lines.append("# TYPE diff_temperature gauge")
    for room, phase in (("a", 0.0), ("b", 1.3), ("c", 2.1)):
        v = 20 + 5 * math.sin(t / 60.0 + phase)
        lines.append('diff_temperature{room="%s"} %r%s' % (room, v, ts(t)))
    lines.append("# TYPE diff_latency_seconds histogram")
    cum = 0
    for le, k in (("0.1", 3), ("0.5", 5), ("1", 1), ("+Inf", 1)):
        cum += k
        lines.append('diff_latency_seconds_bucket{le="%s"} %d%s' % (le, cum * t, ts(t)))
    lines.append('diff_latency_seconds_count %d%s' % (cum * t, ts(t)))
    lines.append("# TYPE diff_live_total counter")
    lines.append("diff_live_total %r" % (RATE * now))
    if int(now // FLAP_S) % 2 == 0:
        lines.append("diff_flap 1")
    for line in (extra or []):
        lines.append(line)
    if openmetrics:
        lines.append("# EOF")
    return "\n".join(lines) + "\n"


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        srv = self.server
        path, _, query = self.path.partition("?")
        srv.hits[path] = srv.hits.get(path, 0) + 1
        if path == "/metrics":
            body, ctype = exposition(False, srv.extra), "text/plain; version=0.0.4"
        elif path == "/om":
            body = exposition(True, srv.extra)
            ctype = "application/openmetrics-text; version=1.0.0; charset=utf-8"
        elif path == "/big":
            n = int(query.split("=")[1]) if query.startswith("n=") else 60
            body = "".join('big_series{i="%d"} %d\n' % (i, i) for i in range(n))
            ctype = "text/plain; version=0.0.4"
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class Target:
    """A target server on 127.0.0.1:port, in a thread of this process."""

    def __init__(self, port):
        self.port = port
        self.srv = _Server(("127.0.0.1", port), _Handler)
        self.srv.extra = []
        self.srv.hits = {}
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    @property
    def extra(self):
        return self.srv.extra

    @extra.setter
    def extra(self, lines):
        self.srv.extra = list(lines)

    def hits(self, path):
        return self.srv.hits.get(path, 0)

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()
