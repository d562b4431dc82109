"""Fairness and quotas of the memory tables (issue 8, finding 9).

One user's 64 concurrent filtered scans used to fill the memory service's
shared queue (64) so that every other user got 503. Now a user may have
jobs_per_user (8) requests queued or running; past that they get 429 with
Retry-After while everybody else still gets in. And per-user quotas
(tables, rows, bytes of rows) answer 403 quota_exceeded, naming the quota
and its limit, storing nothing of the refused request."""

import json
import os
import sys
import threading
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import GraceServer, GraceTestCase, ServerClassCase, http_request, scaled  # noqa: E402

PW = "fairness-password-1"
KERNELS = {"learning": {}}  # one light kernel: this is about the API process
HOG_ROWS = 100000  # ~75 MB: a filter on an unindexed key reads it all (~0.2 s)
SCANS = 64


def q(obj):
    return urllib.parse.quote(json.dumps(obj), safe="")


class Users:
    def __init__(self, g):
        self.g = g
        self.tokens = {}

    def add(self, name):
        self.g.create_user(name, PW)
        self.tokens[name] = self.g.login(name, PW)

    def call(self, who, method, path, body=None, timeout=60):
        h = {"Authorization": "Bearer " + self.tokens[who]}
        return http_request(self.g.api_port, method, path, body, h, scaled(timeout))

    def ok(self, who, method, path, body=None):
        st, _, out = self.call(who, method, path, body)
        assert st in (200, 201), (who, method, path, st, out)
        return out


class PerUserLimit(GraceTestCase):
    def test_one_users_scans_do_not_shut_others_out(self):
        with GraceServer(kernels=KERNELS) as g:
            u = Users(g)
            u.add("hog")
            u.add("victim")
            u.ok("hog", "POST", "/memory/tables", {"name": "big"})
            batch = [{"n": i, "note": "row %d " % i + "lorem ipsum " * 60} for i in range(500)]
            for _ in range(HOG_ROWS // 500):
                u.ok("hog", "POST", "/memory/tables/big/rows", batch)
            u.ok("victim", "POST", "/memory/tables", {"name": "mine"})
            u.ok("victim", "POST", "/memory/tables/mine/rows", [{"v": 1}, {"v": 2}])

            scan = "/memory/tables/big/rows?limit=5&where=" + q(
                {"note": {"contains": "no such words anywhere"}})
            hog, victim = [], []
            start = threading.Barrier(SCANS + 1)
            done = threading.Event()

            # 64 clients that each send a scan again as soon as one is answered.
            def scanner():
                start.wait()
                while not done.is_set():
                    try:
                        st, hdrs, out = u.call("hog", "GET", scan, timeout=120)
                        hog.append((st, hdrs.get("Retry-After"), out))
                    except OSError as e:
                        hog.append((None, None, repr(e)))
                        continue
                    if st == 429:
                        done.wait(0.02)  # not to spin the test machine's CPUs

            threads = [threading.Thread(target=scanner) for _ in range(SCANS)]
            for t in threads:
                t.start()
            start.wait()
            # While the queue is under that load, the other user is served.
            try:
                for i in range(10):
                    st, _, out = u.call("victim", "GET", "/memory/tables/mine/rows", timeout=60)
                    victim.append((st, out if st != 200 else out["count"]))
            finally:
                done.set()
                for t in threads:
                    t.join()
            self.assertEqual(victim, [(200, 2)] * 10)
            # The hog is limited (429), never refused for a full queue (503
            # busy). Only a scan slower than the store's 5 s statement limit
            # (a slow sanitizer build) may end in 503 timeout.
            other = [h for h in hog if h[0] not in (200, 429) and
                     not (h[0] == 503 and h[2]["error"]["code"] == "timeout")]
            self.assertEqual(other[:3], [])
            limited = [h for h in hog if h[0] == 429]
            self.assertGreater(len(limited), 0, "64 scans at once and none was limited")
            self.assertTrue([h for h in hog if h[0] in (200, 503)], "no scan of the hog ran")
            for st, retry, out in limited:
                self.assertTrue(retry and retry.isdigit(), retry)
                self.assertEqual(out["error"]["code"], "too_many_requests")


class Quotas(ServerClassCase):
    @classmethod
    def make_server(cls):
        return GraceServer(kernels=KERNELS, config={"memory": {
            "tables_per_user": 2, "rows_per_user": 10, "bytes_per_user": 2048}})

    @classmethod
    def prepare(cls):
        cls.u = Users(cls.g)
        cls.u.add("frank")
        cls.u.add("gina")

    def refused(self, who, method, path, body, quota):
        st, _, out = self.u.call(who, method, path, body)
        self.assertEqual(st, 403, out)
        self.assertEqual(out["error"]["code"], "quota_exceeded")
        self.assertIn(quota, out["error"]["message"])
        return out

    def test_quotas(self):
        u = self.u
        u.ok("frank", "POST", "/memory/tables", {"name": "a"})
        u.ok("frank", "POST", "/memory/tables", {"name": "b"})
        self.refused("frank", "POST", "/memory/tables", {"name": "c"}, "at most 2 tables")
        self.assertEqual(len(u.ok("frank", "GET", "/memory/tables")["tables"]), 2)

        # Rows across tables: 8 fit; a batch of 3 more does not, and none of it is kept.
        u.ok("frank", "POST", "/memory/tables/a/rows", [{"n": i} for i in range(5)])
        u.ok("frank", "POST", "/memory/tables/b/rows", [{"n": i} for i in range(3)])
        self.refused("frank", "POST", "/memory/tables/b/rows", [{"n": 8}, {"n": 9}, {"n": 10}],
                     "at most 10 rows per user")
        self.assertEqual(u.ok("frank", "GET", "/memory/tables/b/rows")["count"], 3)

        # Bytes: a batch that would pass 2048 bytes, all or nothing.
        self.refused("frank", "POST", "/memory/tables/b/rows",
                     [{"s": "x" * 500}, {"s": "y" * 1500}], "at most 2048 bytes")
        self.assertEqual(u.ok("frank", "GET", "/memory/tables/b/rows")["count"], 3)
        rid = u.ok("frank", "POST", "/memory/tables/b/rows", {"s": "small"})["ids"][0]
        self.refused("frank", "PATCH", "/memory/tables/b/rows/%d" % rid, {"s": "z" * 3000},
                     "at most 2048 bytes")
        self.assertEqual(u.ok("frank", "GET", "/memory/tables/b/rows/%d" % rid)["data"],
                         {"s": "small"})

        # Deleting frees quota; another user's quota is their own.
        u.ok("frank", "DELETE", "/memory/tables/a")
        u.ok("frank", "POST", "/memory/tables", {"name": "c"})
        u.ok("frank", "POST", "/memory/tables/c/rows", [{"n": i} for i in range(5)])
        u.ok("gina", "POST", "/memory/tables", {"name": "a"})
        u.ok("gina", "POST", "/memory/tables/a/rows", [{"n": i} for i in range(10)])


if __name__ == "__main__":
    unittest.main()
