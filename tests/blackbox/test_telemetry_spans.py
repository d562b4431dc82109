"""The hops of one request that Grace traces beyond the API, the forward
and the handler (issue 16): the SQLite statements a kernel's handler runs
(one span each, children of the handler's span, with the statement's text),
those it hands to its worker pool (the librarian's search; the memory
tables in the main process), and the gateway's retried forward (one span
per attempt, children of the forward's span, the failed one an error
naming why)."""

import os
import sys
import tempfile
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
from harness import GraceServer, GraceTestCase, scaled, spare_kernels  # noqa: E402
from healer_support import stub_kernel_command  # noqa: E402

STUB = spare_kernels(1, exclude=("telemetry", "audit", "immutable_log"))[0]
QUIET = {"health_interval_ms": 600000, "watchdog_ms": 60000}


def attrs(kvs):
    return {kv["key"]: list(kv["value"].values())[0] for kv in kvs}


class TracedHops(GraceTestCase):
    @classmethod
    def setUpClass(cls):
        cls.flag_dir = tempfile.mkdtemp(prefix="grace-tel-spans-")
        cls.die_flag = os.path.join(cls.flag_dir, "die")
        # The memory tables in SQLite whatever GRACE_TEST_STORE says: their
        # statements are what one test looks for.
        cls.g = GraceServer(config={"telemetry": {"sample_percent": 100, "sample_rate_max": 0},
                                    "store": {"engine": "sqlite"}},
                            kernels={"telemetry": {}, "audit": {}, "immutable_log": {},
                                     "librarian": {},
                                     STUB: dict(QUIET, command=stub_kernel_command(
                                         200, die_flag=cls.die_flag))})
        try:
            cls.g.start()
        except BaseException:
            cls.g.dump_log()
            cls.g.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.g.close()
        if os.path.exists(cls.die_flag):
            os.unlink(cls.die_flag)
        os.rmdir(cls.flag_dir)

    def tree(self, trace_id, pred, what):
        """The stored trace as {span_id: (span, parent span_id)} once pred
        holds of it."""
        found = {}

        def ready():
            st, _, body = self.g.http("GET", "/telemetry/traces/" + trace_id)
            if st != 200:
                return False
            found.clear()

            def walk(node, parent):
                found[node["spanId"]] = (node, parent)
                for c in node["children"]:
                    walk(c, node["spanId"])
            for r in body["roots"]:
                walk(r, None)
            return pred(found)
        self.g.wait_for(ready, scaled(20), message=what)
        return found

    def test_sqlite_spans_under_the_kernel_handler(self):
        tid = "5" * 31 + "a"
        ev = {"actor": "tess", "action": "traced.write", "resource": "r/1", "outcome": "ok"}
        st, _, body = self.g.http("POST", "/kernels/audit/events", ev,
                                  headers={"traceparent": "00-%s-%s-01" % (tid, "1" * 16)})
        self.assertEqual(st, 201, body)

        def whole(spans):
            names = [n["name"] for n, _ in spans.values()]
            return ("POST /events" in names and "forward audit" in names and
                    "POST /kernels/:name/*" in names and
                    any(x.startswith("sqlite INSERT") for x in names))
        spans = self.tree(tid, whole, "the audit write's trace with its SQLite spans")
        by_id = {i: n for i, (n, _) in spans.items()}
        handler = [n for n, _ in spans.values() if n["name"] == "POST /events"][0]
        forward = [n for n, _ in spans.values() if n["name"] == "forward audit"][0]
        self.assertEqual(handler["service"], "grace.audit")
        self.assertEqual(spans[handler["spanId"]][1], forward["spanId"])
        sqlite = [(n, p) for n, p in spans.values() if n["name"].startswith("sqlite ")]
        self.assertTrue(sqlite)
        for n, parent in sqlite:
            # Each statement is the handler's child, inside its time, with
            # its SQL, and not an error.
            self.assertEqual(parent, handler["spanId"], n["name"])
            self.assertEqual(n["service"], "grace.audit")
            self.assertEqual(n["kind"], 1)
            self.assertIn(n["name"].split(" ", 1)[1].upper(),
                          attrs(n["attributes"])["db.query.text"].upper())
            self.assertGreaterEqual(int(n["startTimeUnixNano"]),
                                    int(handler["startTimeUnixNano"]))
            self.assertLessEqual(int(n["endTimeUnixNano"]), int(handler["endTimeUnixNano"]))
            self.assertNotEqual(n["status"].get("code"), 2)
        inserts = [n for n, _ in sqlite if n["name"] == "sqlite INSERT"]
        self.assertTrue(any("traced.write" not in attrs(n["attributes"])["db.query.text"]
                            for n in inserts), "the SQL's text, with its parameters unbound")
        # One trace: the API's span is the root of everything.
        roots = [n for n, p in spans.values() if p is None]
        self.assertEqual([r["name"] for r in roots], ["POST /kernels/:name/*"])
        self.assertEqual(len(by_id), len(spans))

    def pool_statements(self, spans, handler, service):
        """The SQLite spans under `handler`, which its pool job ran: each
        the handler's child in its trace, with its text, inside the
        handler's time (the answer is sent from the job's done, after the
        work), and not an error. Not one after another: a search steps
        several statements at once (its ranking, then each row's)."""
        sqlite = sorted((n for n, p in spans.values()
                         if n["name"].startswith("sqlite ") and p == handler["spanId"]),
                        key=lambda n: int(n["startTimeUnixNano"]))
        self.assertTrue(sqlite)
        for n in sqlite:
            self.assertEqual(n["traceId"], handler["traceId"])
            self.assertEqual(n["service"], service)
            self.assertEqual(n["kind"], 1)
            a = attrs(n["attributes"])
            self.assertEqual(a["db.system.name"], "sqlite")
            self.assertIn(n["name"].split(" ", 1)[1].upper(), a["db.query.text"].upper())
            self.assertNotIn("grace.db.statements_dropped", a)
            self.assertNotEqual(n["status"].get("code"), 2, n)
            start, end = int(n["startTimeUnixNano"]), int(n["endTimeUnixNano"])
            self.assertLessEqual(start, end)
            self.assertGreaterEqual(start, int(handler["startTimeUnixNano"]))
            self.assertLessEqual(end, int(handler["endTimeUnixNano"]))
        return sqlite

    def test_librarian_search_statements_on_its_pool(self):
        # The search runs on the librarian's worker threads (its own
        # read-only connection); its statements are the handler's children.
        st, _, body = self.g.http("POST", "/librarian/documents",
                                  {"title": "Zeppelin log", "body": "The zeppelin rose at dawn."})
        self.assertEqual(st, 201, body)
        path = "/librarian/search?" + urllib.parse.urlencode({"query": "zeppelin"})
        self.g.wait_for(lambda: (self.g.http("GET", path)[2] or {}).get("total", 0) >= 1,
                        scaled(20), message="the document searchable")
        tid = "8" * 31 + "d"
        st, _, body = self.g.http("GET", path,
                                  headers={"traceparent": "00-%s-%s-01" % (tid, "5" * 16)})
        self.assertEqual(st, 200, body)
        self.assertGreaterEqual(body["total"], 1)

        def whole(spans):
            names = [n["name"] for n, _ in spans.values()]
            return "forward librarian" in names and any(
                n["name"] == "GET /search" and
                any(c["name"].startswith("sqlite SELECT") for c in n["children"])
                for n, _ in spans.values())
        spans = self.tree(tid, whole, "the search's trace with its pool's SQLite spans")
        handler = [n for n, _ in spans.values() if n["name"] == "GET /search"][0]
        self.assertEqual(handler["service"], "grace.librarian")
        forward = [n for n, _ in spans.values() if n["name"] == "forward librarian"][0]
        self.assertEqual(spans[handler["spanId"]][1], forward["spanId"])
        sqlite = self.pool_statements(spans, handler, "grace.librarian")
        self.assertTrue(any("documents" in attrs(n["attributes"])["db.query.text"]
                            or "ix_" in attrs(n["attributes"])["db.query.text"]
                            for n in sqlite), [n["name"] for n in sqlite])

    def test_memory_table_statements_on_the_main_process_pool(self):
        st, _, body = self.g.http("POST", "/memory/tables", {"name": "traced_notes", "columns": [
            {"name": "note", "type": "string"}]})
        self.assertEqual(st, 201, body)
        st, _, body = self.g.http("POST", "/memory/tables/traced_notes/rows",
                                  [{"note": "first"}, {"note": "second"}])
        self.assertEqual(st, 201, body)
        tid = "9" * 31 + "e"
        st, _, body = self.g.http("GET", "/memory/tables/traced_notes/rows",
                                  headers={"traceparent": "00-%s-%s-01" % (tid, "6" * 16)})
        self.assertEqual(st, 200, body)
        name = "GET /memory/tables/:table/rows"

        def whole(spans):
            return any(n["name"] == name and
                       any(c["name"].startswith("sqlite SELECT") for c in n["children"])
                       for n, _ in spans.values())
        spans = self.tree(tid, whole, "the rows query's trace with its pool's SQLite spans")
        api = [n for n, _ in spans.values() if n["name"] == name][0]
        self.assertEqual(api["service"], "grace")
        self.assertIsNone(spans[api["spanId"]][1])  # the caller's parent is not stored
        self.pool_statements(spans, api, "grace")

    def test_calls_from_a_continuation_stay_in_the_trace(self):
        # The audit kernel's proof route calls the immutable log for its
        # signed tree head and, from that call's callback (its handler has
        # returned), for the inclusion proof: both calls are the handler's
        # children.
        ev = {"actor": "tess", "action": "proof.me", "resource": "r/2", "outcome": "ok"}
        st, _, body = self.g.http("POST", "/kernels/audit/events", ev)
        self.assertEqual(st, 201, body)
        path = "/kernels/audit/events/%d/proof" % body["id"]
        self.g.wait_for(lambda: self.g.http("GET", path)[0] == 200, scaled(20),
                        message="the event in the immutable log")
        tid = "7" * 31 + "c"
        st, _, body = self.g.http("GET", path,
                                  headers={"traceparent": "00-%s-%s-01" % (tid, "4" * 16)})
        self.assertEqual(st, 200, body)

        def whole(spans):
            names = [n["name"] for n, _ in spans.values()]
            return ("GET /events/:id/proof" in names and "GET /sth" in names and
                    "GET /proof/inclusion" in names)
        spans = self.tree(tid, whole, "the proof's trace with both immutable_log calls")
        handler = [n for n, _ in spans.values() if n["name"] == "GET /events/:id/proof"][0]
        for name in ("GET /sth", "GET /proof/inclusion"):
            node, parent = [(n, p) for n, p in spans.values() if n["name"] == name][0]
            self.assertEqual(node["service"], "grace.immutable_log")
            self.assertEqual(parent, handler["spanId"], name)

    def test_retried_forward_has_a_span_per_attempt(self):
        # GET /die drops the request unanswered and the stub stops
        # accepting: the gateway tries again (a GET, closed unanswered) and
        # the restarted stub answers.
        open(self.die_flag, "w").close()
        tid = "6" * 31 + "b"
        st, _, body = self.g.http("GET", "/kernels/%s/die" % STUB, timeout=scaled(30),
                                  headers={"traceparent": "00-%s-%s-01" % (tid, "2" * 16)})
        self.assertEqual(st, 200, body)

        def attempts(spans):
            names = [n["name"] for n, _ in spans.values()]
            return "forward " + STUB in names and sum(x.startswith("attempt ") for x in names) >= 2
        spans = self.tree(tid, attempts, "the retried forward's attempt spans")
        forward = [n for n, _ in spans.values() if n["name"] == "forward " + STUB][0]
        tries = sorted(((n, p) for n, p in spans.values() if n["name"].startswith("attempt ")),
                       key=lambda np: int(np[0]["startTimeUnixNano"]))
        self.assertEqual([n["name"] for n, _ in tries][:2], ["attempt 1", "attempt 2"])
        for n, parent in tries:
            self.assertEqual(parent, forward["spanId"])
            self.assertEqual(n["kind"], 3)
        first, last = tries[0][0], tries[-1][0]
        self.assertEqual(first["status"].get("code"), 2)
        self.assertIn("error.type", attrs(first["attributes"]))
        self.assertEqual(attrs(last["attributes"])["http.response.status_code"], "200")
        self.assertNotEqual(last["status"].get("code"), 2)
        self.assertEqual(first["startTimeUnixNano"], forward["startTimeUnixNano"])
        self.assertLessEqual(int(first["endTimeUnixNano"]), int(last["startTimeUnixNano"]))


if __name__ == "__main__":
    unittest.main()
