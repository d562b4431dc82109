"""The librarian's single writes never stall its event loop
(docs/librarian.md, "How a write runs"): POST /documents, DELETE
/documents/ID, an ingest's cancel and an owner's release run on the
writer's thread. While something else holds the database's write lock (a
bulk load, a merge, an ingest's chunk; here the test itself, from its own
connection to the file), those writes wait for it there, and the loop
goes on answering /health (what the guardian probes), reads and searches.
Once the lock is free the waiting writes complete. (Quotas, owners and
their errors, now answered from the writer, are test_librarian_owners'.)"""

import json
import os
import sqlite3
import threading
import time
import unittest

from harness import GraceServer, GraceTestCase, http_request, scaled

HOLD_S = 2.0  # under SQLite's 5 s busy timeout, whatever the build


def metric(port, name):
    st, _, text = http_request(port, "GET", "/metrics", timeout=scaled(10))
    assert st == 200, (st, text)
    text = text if isinstance(text, str) else text.decode()
    for line in text.splitlines():
        if line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("no %s in /metrics" % name)


def bulk_docs(tag, n):
    return "".join(json.dumps({"title": "%s %d" % (tag, i), "body": "zz%s words %d" % (tag, i)})
                   + "\n" for i in range(n))


class LibrarianWrites(GraceTestCase):
    def test_waiting_bulk_requests_are_written_together(self):
        # While the write lock is held from outside, a first bulk request
        # waits for it on the writer; three more of the same user queue
        # behind it. Once the lock goes, those three are written in one
        # transaction: each gets its own answer, everything is stored.
        with GraceServer(kernels={"librarian": {}}) as g:
            port = g.kernel("librarian")["port"]
            tx0 = metric(port, "grace_librarian_bulk_transactions_total")
            db = sqlite3.connect(os.path.join(g.data_dir, "librarian.db"),
                                 isolation_level=None, timeout=scaled(30))
            answers, threads = {}, []

            def send(tag, n):
                st, _, r = g.http("POST", "/librarian/documents/_bulk", bulk_docs(tag, n),
                                  headers={"Content-Type": "application/x-ndjson"},
                                  timeout=scaled(30))
                answers[tag] = (st, r)

            def start(tag, n, queued):
                t = threading.Thread(target=send, args=(tag, n))
                t.start()
                threads.append(t)
                # Under the 5 s busy timeout the first one waits in.
                g.wait_for(lambda: metric(port, "grace_librarian_bulk_queued") >= queued, 3.0,
                           message="%s not queued" % tag)
            try:
                db.execute("BEGIN IMMEDIATE")
                start("first", 5, 1)
                time.sleep(0.2)  # its job has begun: it waits for the lock
                for i, tag in enumerate(("second", "third", "fourth")):
                    start(tag, 10 + i, 2 + i)
            finally:
                db.execute("ROLLBACK") if db.in_transaction else None
                db.close()
            [t.join() for t in threads]
            for tag, n in (("first", 5), ("second", 10), ("third", 11), ("fourth", 12)):
                st, r = answers[tag]
                self.assertEqual((st, r["created"], r["failed"]), (200, n, 0), (tag, r))
                ids = [i["id"] for i in r["items"]]
                st, _, s = g.http("GET", "/librarian/search?query=zz%s&limit=50" % tag)
                self.assertEqual(sorted(h["id"] for h in s["results"]), sorted(ids), tag)
            self.assertEqual(metric(port, "grace_librarian_bulk_requests_total"), 4)
            # Four requests, two transactions: the first alone, the three
            # that waited behind it together (one, should the first have
            # found them waiting too).
            self.assertIn(metric(port, "grace_librarian_bulk_transactions_total") - tx0, (1, 2))


    def test_writes_wait_for_the_lock_off_the_loop(self):
        with GraceServer(kernels={"librarian": {}}) as g:
            st, _, r = g.http("POST", "/librarian/documents",
                              {"title": "First", "body": "zzfirst words", "tags": ["a"]})
            self.assertEqual(st, 201, r)
            first = r["id"]
            port = g.kernel("librarian")["port"]

            db = sqlite3.connect(os.path.join(g.data_dir, "librarian.db"),
                                 isolation_level=None, timeout=scaled(30))
            answers = {}

            def call(name, method, path, body=None):
                t0 = time.monotonic()
                st, _, r = g.http(method, path, body, timeout=scaled(30))
                answers[name] = (st, r, time.monotonic() - t0)

            try:
                db.execute("BEGIN IMMEDIATE")
                held = time.monotonic()
                ts = [threading.Thread(target=call, args=a) for a in (
                    ("put", "POST", "/librarian/documents",
                     {"title": "Second", "body": "zzsecond words"}),
                    ("delete", "DELETE", "/librarian/documents/%d" % first))]
                [t.start() for t in ts]
                # While the writes wait for the lock, the loop answers.
                slowest = 0.0
                while time.monotonic() - held < HOLD_S:
                    # /health on the kernel's own port, as the guardian
                    # probes it; a read and a search through the API.
                    for path in ("/health", "/librarian/documents/%d" % first,
                                 "/librarian/search?query=zzfirst"):
                        t0 = time.monotonic()
                        if path == "/health":
                            st, _, r = http_request(port, "GET", path, timeout=scaled(10))
                        else:
                            st, _, r = g.http("GET", path, timeout=scaled(10))
                        slowest = max(slowest, time.monotonic() - t0)
                        self.assertEqual(st, 200, (path, r))
                    time.sleep(0.05)
                self.assertEqual(answers, {}, "a write went through a held lock")
            finally:
                db.execute("ROLLBACK") if db.in_transaction else None
                db.close()
            [t.join() for t in ts]
            self.assertLess(slowest, scaled(0.5),
                            "the loop waited %.2f s while a write waited" % slowest)
            self.assertEqual(answers["put"][0], 201, answers)
            self.assertEqual(answers["delete"][:2], (200, {"id": first, "deleted": True}))
            # They waited for the lock, not for a timeout.
            self.assertGreater(min(a[2] for a in answers.values()), HOLD_S * 0.8)
            st, _, r = g.http("GET", "/librarian/search?query=zzsecond")
            self.assertEqual((st, [h["id"] for h in r["results"]]),
                             (200, [answers["put"][1]["id"]]))
            st, _, r = g.http("GET", "/librarian/search?query=zzfirst")
            self.assertEqual((st, r["total"]), (200, 0))
            # Errors still come back from the writer as before.
            st, _, r = g.http("DELETE", "/librarian/documents/%d" % first)
            self.assertEqual((st, r["error"]["code"]), (404, "not_found"), r)
            st, _, r = g.http("POST", "/librarian/documents", {"title": "x"})
            self.assertEqual(st, 400, r)


if __name__ == "__main__":
    unittest.main()
