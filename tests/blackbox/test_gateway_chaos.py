"""Chaos through the gateway: steady GETs to /librarian/health on keep-alive
connections to :8000 while the librarian is killed with kill -9 again and
again: not one GET fails. POSTs in flight
meanwhile either succeed (201) or get a 502 that says why, and none is
applied twice."""

import collections
import http.client
import json
import os
import signal
import sys
import threading
import time
import unittest

from harness import GraceServer, GraceTestCase, scaled, spare_kernels

OTHER = spare_kernels(1)[0]

KILLS = 6
GET_THREADS = 3
POST_THREADS = 2


class Client:
    """One keep-alive connection to the API, reopened only if it breaks."""

    def __init__(self, g):
        self.g = g
        self.headers = dict(g.auth_headers())
        self.conn = None

    def request(self, method, path, body=None):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.g.api_port,
                                                   timeout=scaled(20))
        hdrs = dict(self.headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        try:
            self.conn.request(method, path, body=data, headers=hdrs)
            resp = self.conn.getresponse()
            raw = resp.read()
        except BaseException:
            self.close()
            raise
        if resp.getheader("Connection", "").lower() == "close":
            self.close()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw
        return resp.status, parsed

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class GatewayChaos(GraceTestCase):
    def test_kill9_under_gateway_load(self):
        kernels = {"librarian": {"restart_burst": 1000, "restart_window_ms": 60000,
                                 "stable_ms": 100},
                   OTHER: {}}
        with GraceServer(kernels=kernels) as g:
            stop = threading.Event()
            lock = threading.Lock()
            gets = {"ok": 0, "failed": []}
            posts = []  # (title, status, body)
            reconnects = collections.Counter()

            def getter(n):
                c = Client(g)
                while not stop.is_set():
                    try:
                        st, body = c.request("GET", "/librarian/health")
                    except (OSError, http.client.HTTPException) as e:
                        with lock:
                            gets["failed"].append(repr(e))
                        continue
                    with lock:
                        if st == 200 and isinstance(body, dict) and body.get("status") == "ok":
                            gets["ok"] += 1
                        else:
                            gets["failed"].append((st, body))
                    if c.conn is None:
                        reconnects[n] += 1
                c.close()

            def poster(n):
                c = Client(g)
                i = 0
                while not stop.is_set():
                    i += 1
                    title = "chaos %d %d" % (n, i)
                    try:
                        st, body = c.request("POST", "/librarian/documents",
                                             {"title": title, "body": "kill -9 meanwhile",
                                              "tags": ["chaos"]})
                    except (OSError, http.client.HTTPException) as e:
                        st, body = None, repr(e)
                    with lock:
                        posts.append((title, st, body))
                    time.sleep(0.005)
                c.close()

            threads = [threading.Thread(target=getter, args=(n,)) for n in range(GET_THREADS)]
            threads += [threading.Thread(target=poster, args=(n,)) for n in range(POST_THREADS)]
            for t in threads:
                t.start()
            killed = []
            try:
                for _ in range(KILLS):
                    time.sleep(0.25)
                    k = g.wait_kernel("librarian", lambda k: k["state"] == "ready",
                                      timeout=scaled(10))
                    with lock:
                        before = gets["ok"]
                    # Let some requests through to this process first.
                    g.wait_for(lambda: gets["ok"] > before + 5, timeout=scaled(10))
                    os.kill(k["pid"], signal.SIGKILL)
                    killed.append(k["pid"])
                    g.wait_kernel("librarian", lambda x: x["state"] == "ready"
                                  and x["pid"] not in (None, k["pid"]), timeout=scaled(10))
                time.sleep(0.3)
            finally:
                stop.set()
                for t in threads:
                    t.join(scaled(30))

            statuses = collections.Counter(st for _, st, _ in posts)
            print("chaos: %d kills, GETs ok %d failed %d, POSTs %r, reconnects %r"
                  % (len(killed), gets["ok"], len(gets["failed"]), dict(statuses),
                     dict(reconnects)), file=sys.stderr)
            self.assertEqual(len(killed), KILLS)
            # Not one GET may fail.
            self.assertEqual(gets["failed"], [])
            self.assertGreater(gets["ok"], 10 * KILLS)
            # Our client connections to :8000 outlived every kill.
            self.assertEqual(sum(reconnects.values()), 0, reconnects)

            bad = [(t, st, b) for t, st, b in posts if st not in (201, 502)]
            self.assertEqual(bad, [])
            self.assertGreater(statuses[201], 10)
            for _, st, body in posts:
                if st == 502:
                    self.assertEqual(body["error"]["code"], "upstream_failed", body)
                    self.assertIn("librarian", body["error"]["message"])

            k = g.kernel("librarian")
            self.assertEqual(k["state"], "ready")
            self.assertEqual(k["restarts"], KILLS)
            # Every document, by id: none is there twice.
            st, _, last = g.http("POST", "/librarian/documents",
                                 {"title": "after the chaos", "body": "last"})
            self.assertEqual(st, 201, last)
            titles = {}
            for doc_id in range(1, last["id"]):
                st, _, doc = g.http("GET", "/librarian/documents/%d" % doc_id)
                if st == 404:
                    continue
                self.assertEqual(st, 200, doc)
                titles.setdefault(doc["title"], []).append(doc_id)
            twice = {t: ids for t, ids in titles.items() if len(ids) > 1}
            self.assertEqual(twice, {}, "documents stored twice")
            for title, st, body in posts:
                if st == 201:
                    self.assertEqual(titles.get(title), [body["id"]], title)
            # The search index agrees.
            st, _, found = g.http("GET", "/librarian/search?query=chaos&tag=chaos&limit=1")
            self.assertEqual(st, 200, found)
            self.assertEqual(found["total"], sum(len(v) for t, v in titles.items()
                                                 if t.startswith("chaos ")))
            # The bystander never noticed.
            self.assertEqual(g.kernel(OTHER)["restarts"], 0)


if __name__ == "__main__":
    unittest.main()
