"""Audit trail (8115) through `grace serve` and the gateway at
/kernels/audit/* (admin): POST /events (one event or a batch) and its
validation, GET /events with every filter and cursor pagination (each event
exactly once), GET /events/export (JSON Lines, all of them, in order), and
GET /events/ID/proof: 409 until the event is in the immutable log, then an
inclusion proof checked by the independent verifier of rfc6962.py against
the signed tree head it comes with, from the log entry's own bytes, and the
head's Ed25519 signature over its RFC 6962 serialization checked with the
log's /key.

Requests through the gateway are themselves state-changing API requests, so
the main process records them too (actor: the admin): every test here
queries by an actor or a time range of its own."""

import base64
import hashlib
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
from harness import http_request, scaled  # noqa: E402
from audit_support import AUDIT, ILOG, ServerCase, now_ms, qs  # noqa: E402
from rfc6962 import (canonical, leaf_hash, mth, sth_message, unhex,  # noqa: E402
                     verify_inclusion, verify_sth_signature)

EVENT_KEYS = {"id", "ts_ms", "actor", "action", "resource", "outcome", "details", "source_ip",
              "log_index"}


def without_index(ev):
    return {k: v for k, v in ev.items() if k != "log_index"}


class AuditCase(ServerCase):
    def audit(self, method, path, body=None, expect=200):
        return self.call(method, AUDIT + path, body, expect)

    def error(self, method, path, body, status=400, code=None):
        out = self.audit(method, path, body, expect=status)
        self.assertIsInstance(out, dict, out)
        self.assertTrue(out["error"]["message"], out)
        if code:
            self.assertEqual(out["error"]["code"], code, out)
        return out

    def post(self, events, expect=201):
        return self.audit("POST", "/events", events, expect)

    def page(self, **q):
        return self.audit("GET", "/events" + qs(**q))

    def export(self, **q):
        st, hdrs, body = self.g.http("GET", AUDIT + "/events/export" + qs(**q),
                                     timeout=scaled(30))
        self.assertEqual(st, 200, body)
        self.assertIn("application/x-ndjson", hdrs.get("Content-Type", ""))
        self.assertIsInstance(body, bytes)
        if not body:
            return []
        self.assertTrue(body.endswith(b"\n"), body[-200:])
        return [json.loads(line) for line in body[:-1].split(b"\n")]

    def proof(self, event_id, timeout=None):
        """The proof of an event, waiting while it is not in the log yet."""
        def ready():
            st, hdrs, out = self.g.http("GET", "%s/events/%d/proof" % (AUDIT, event_id),
                                        timeout=scaled(10))
            if st == 409:
                return None
            self.assertEqual(st, 200, out)
            return out
        return self.g.wait_for(ready, timeout or scaled(15),
                               message="event %d in the immutable log" % event_id)

    def entry_bytes(self, index):
        e = self.call("GET", "%s/entries/%d" % (ILOG, index))
        self.assertEqual(e["index"], index)
        return base64.b64decode(e["data_b64"])

    def check_proof(self, p, public_key):
        """Checks one /events/ID/proof answer independently; returns the log
        entry's bytes."""
        ev, sth, inc = p["event"], p["sth"], p["inclusion"]
        index = p["log_index"]
        self.assertIsInstance(index, int)
        self.assertEqual(ev["log_index"], index)
        self.assertEqual(inc["index"], index)
        self.assertEqual(inc["tree_size"], sth["tree_size"])
        self.assertEqual(inc["root_hash"], sth["root_hash"])
        self.assertLess(index, sth["tree_size"])
        self.assertEqual(sth["algorithm"], "ed25519")
        # The leaf from the entry's own bytes, not from what the audit says.
        raw = self.entry_bytes(index)
        leaf = leaf_hash(raw)
        self.assertEqual(leaf, unhex(inc["leaf_hash"]))
        path = [unhex(h) for h in inc["audit_path"]]
        root = unhex(sth["root_hash"])
        self.assertTrue(verify_inclusion(index, sth["tree_size"], leaf, path, root), p)
        self.assertFalse(verify_inclusion(index, sth["tree_size"], leaf_hash(raw + b" "), path,
                                          root))
        # The entry is the event as the audit stored it, in canonical form.
        self.assertEqual(json.loads(raw), without_index(ev))
        self.assertEqual(raw, canonical(without_index(ev)))
        # The head is signed over its documented serialization by the log's key.
        self.assertEqual(len(sth_message(sth)), 50)
        self.assertEqual(len(base64.b64decode(sth["signature"])), 64)
        self.assertEqual(sth["key_id"], hashlib.sha256(public_key).hexdigest())
        self.assertTrue(verify_sth_signature(sth, public_key), sth)
        forged = dict(sth, tree_size=sth["tree_size"] + 1)
        self.assertFalse(verify_sth_signature(forged, public_key))
        return raw


class AuditRoutes(AuditCase):
    def test_01_post_one_event(self):
        t0 = now_ms()
        out = self.post({"actor": "u-single", "action": "document.delete", "resource": "doc/7",
                         "outcome": "success", "details": {"reason": "cleanup", "n": 3},
                         "source_ip": "10.1.2.3"})
        t1 = now_ms()
        self.assertEqual(set(out), {"id"}, out)
        self.assertIsInstance(out["id"], int)
        evs = self.page(actor="u-single")["events"]
        self.assertEqual(len(evs), 1, evs)
        ev = evs[0]
        self.assertEqual(set(ev), EVENT_KEYS, ev)
        self.assertEqual(ev["id"], out["id"])
        self.assertEqual((ev["actor"], ev["action"], ev["resource"], ev["outcome"]),
                         ("u-single", "document.delete", "doc/7", "success"))
        self.assertEqual(ev["details"], {"reason": "cleanup", "n": 3})
        self.assertEqual(ev["source_ip"], "10.1.2.3")
        self.assertTrue(t0 - 1000 <= ev["ts_ms"] <= t1 + 1000, (t0, ev["ts_ms"], t1))
        self.assertTrue(ev["log_index"] is None or isinstance(ev["log_index"], int))

        # Optional fields left out; a timestamp of the caller's kept; text kept as is.
        out = self.post({"actor": "u-zoë ☃", "action": "a", "resource": "r", "outcome": "o",
                         "ts_ms": 1234567890123})
        ev = self.page(actor="u-zoë ☃")["events"]
        self.assertEqual(len(ev), 1, ev)
        self.assertEqual(ev[0]["id"], out["id"])
        self.assertEqual(ev[0]["ts_ms"], 1234567890123)
        self.assertIsNone(ev[0]["details"])
        self.assertIsNone(ev[0]["source_ip"])
        # details may be any JSON value.
        for d in (["x", 1], "text", 7, True):
            out = self.post({"actor": "u-details", "action": "a", "resource": "r",
                             "outcome": "o", "details": d})
            got = [e for e in self.page(actor="u-details")["events"] if e["id"] == out["id"]]
            self.assertEqual(got[0]["details"], d)

    def test_02_post_a_batch(self):
        batch = [{"actor": "u-batch", "action": "step.%d" % i, "resource": "job/1",
                  "outcome": "ok", "details": {"i": i}} for i in range(5)]
        out = self.post(batch)
        self.assertEqual(set(out), {"ids"}, out)
        ids = out["ids"]
        self.assertEqual(len(ids), 5)
        self.assertEqual(ids, sorted(set(ids)))
        evs = self.page(actor="u-batch")["events"]
        self.assertEqual([e["id"] for e in evs], ids)
        self.assertEqual([e["action"] for e in evs], ["step.%d" % i for i in range(5)])
        self.assertEqual([e["details"] for e in evs], [{"i": i} for i in range(5)])
        # An array of one answers with "ids"; the largest batch is 1000.
        one = self.post([{"actor": "u-batch1", "action": "a", "resource": "r", "outcome": "o"}])
        self.assertEqual(len(one["ids"]), 1)
        big = self.post([{"actor": "u-batch1000", "action": "a", "resource": "r/%d" % i,
                          "outcome": "o"} for i in range(1000)])
        self.assertEqual(len(big["ids"]), 1000)
        self.assertEqual(len(self.events(actor="u-batch1000", limit=1000)), 1000)

    def test_03_bad_events_are_refused(self):
        good = {"actor": "u-bad", "action": "a", "resource": "r", "outcome": "o"}
        bad = []
        for key in ("actor", "action", "resource", "outcome"):
            bad.append({k: v for k, v in good.items() if k != key})
            for v in ("", 5, None, ["x"], {"x": 1}):
                bad.append(dict(good, **{key: v}))
        bad += [
            dict(good, actor="x" * 257), dict(good, outcome="x" * 257),
            dict(good, action="x" * 2049), dict(good, resource="x" * 2049),
            dict(good, source_ip="1" * 65), dict(good, source_ip=5),
            dict(good, ts_ms=0), dict(good, ts_ms=-1), dict(good, ts_ms="1700000000000"),
            dict(good, ts_ms=1.5),
            dict(good, details={"blob": "x" * 65536}),
        ]
        for ev in bad:
            self.error("POST", "/events", ev, 400, "invalid")
            # The same event in a batch: the whole batch is refused, naming it.
            out = self.error("POST", "/events", [good, good, ev], 400, "invalid")
            self.assertIn("event 2", out["error"]["message"])
        for body in ([], [1, 2], [good, "x"]):
            self.error("POST", "/events", body, 400, "invalid")
        self.error("POST", "/events", [good] * 1001, 400, "invalid")
        for text in ('"a string"', "42", "null", "true", "{not json", "",
                     '{"actor": "a", "actor": "b"}'):
            st, _, out = self.g.http("POST", AUDIT + "/events", text,
                                     headers={"Content-Type": "application/json"},
                                     timeout=scaled(10))
            self.assertEqual(st, 400, out)
        self.assertEqual(self.page(actor="u-bad")["events"], [])
        # The limits themselves are allowed.
        at_limit = [dict(good, actor="u-bound", action="x" * 2048, resource="y" * 2048,
                         outcome="z" * 256, source_ip="2" * 64,
                         details={"blob": "x" * 65000})]
        self.post(at_limit)
        self.post(dict(good, actor="b" * 256))
        self.assertEqual(len(self.page(actor="u-bound")["events"]), 1)
        self.assertEqual(len(self.page(actor="b" * 256)["events"]), 1)

    def test_04_filters(self):
        base = 1600000000000
        batch = [{"actor": "f-%s" % ("alice", "bob", "carol")[i % 3],
                  "action": "read" if i % 2 else "write",
                  "resource": "f/doc/%d" % (i % 4), "outcome": "ok", "ts_ms": base + i * 1000,
                  "details": {"i": i}} for i in range(12)]
        ids = self.post(batch)["ids"]

        def which(**q):
            return [e["details"]["i"] for e in self.events(**q)]
        self.assertEqual(which(actor="f-alice"), [0, 3, 6, 9])
        self.assertEqual(which(actor="f-bob", action="read"), [1, 7])
        self.assertEqual(which(resource="f/doc/2"), [2, 6, 10])
        self.assertEqual(which(resource="f/doc/2", action="write", actor="f-carol"), [2])
        # since is inclusive, until exclusive; both are unix ms.
        self.assertEqual(which(since=base + 3000, until=base + 7000), [3, 4, 5, 6])
        self.assertEqual(which(actor="f-alice", since=base + 3000), [3, 6, 9])
        self.assertEqual(which(actor="f-alice", until=base + 6000), [0, 3])
        self.assertEqual(which(actor="f-alice", since=base + 3001, until=base + 9001), [6, 9])
        self.assertEqual(which(actor="nobody-at-all"), [])
        self.assertEqual(which(since=base + 12000, until=base + 13000), [])
        # Results are in id order; the cursor is an id.
        self.assertEqual([e["id"] for e in self.events(actor="f-bob")],
                         [ids[i] for i in (1, 4, 7, 10)])
        self.assertEqual(which(actor="f-bob", cursor=ids[4]), [7, 10])
        for q in ("since=abc", "until=-1", "limit=0", "limit=1001", "limit=x", "cursor=-5",
                  "since=1.5"):
            self.error("GET", "/events?" + q, None, 400)
        self.assertEqual(len(self.page(limit=1000)["events"]),
                         min(1000, len(self.export())))

    def test_05_cursor_pagination_returns_each_event_once(self):
        ids = self.post([{"actor": "p-walker", "action": "step", "resource": "r/%d" % i,
                          "outcome": "ok"} for i in range(37)])["ids"]
        got, cursor, pages = [], None, 0
        while True:
            q = {"actor": "p-walker", "limit": 5}
            if cursor is not None:
                q["cursor"] = cursor
            p = self.page(**q)
            pages += 1
            self.assertLessEqual(len(p["events"]), 5)
            got.extend(e["id"] for e in p["events"])
            if p["next_cursor"] is None:
                break
            self.assertEqual(p["next_cursor"], p["events"][-1]["id"])
            cursor = p["next_cursor"]
            if pages == 2:
                # Events added while paging come at the end, once.
                ids += self.post([{"actor": "p-walker", "action": "late", "resource": "r",
                                   "outcome": "ok"} for _ in range(3)])["ids"]
        self.assertEqual(got, ids)
        self.assertLessEqual(pages, 9)
        # The whole trail, page by page, is every event once, in id order.
        paged = [e["id"] for e in self.events(limit=7)]
        self.assertEqual(paged, sorted(set(paged)))
        exported = [e["id"] for e in self.export()]
        self.assertEqual(paged, exported[:len(paged)])

    def test_06_export_streams_every_event_in_order(self):
        # Past the export's chunk of 500 rows, twice.
        ids = self.post([{"actor": "x-bulk", "action": "a", "resource": "r/%d" % i,
                          "outcome": "ok", "details": {"i": i}} for i in range(1000)])["ids"]
        ids += self.post([{"actor": "x-bulk", "action": "b", "resource": "r/%d" % i,
                           "outcome": "ok", "details": {"i": i}} for i in range(234)])["ids"]
        lines = self.export(actor="x-bulk")
        self.assertEqual([e["id"] for e in lines], ids)
        self.assertEqual([e["details"]["i"] for e in lines], list(range(1000)) + list(range(234)))
        for e in lines:
            self.assertEqual(set(e), EVENT_KEYS)
        # Everything: the same events as the paged query, in the same order.
        everything = self.export()
        ids_all = [e["id"] for e in everything]
        self.assertEqual(ids_all, sorted(set(ids_all)))
        paged = self.events(limit=1000)  # later: a few more (this test's own requests)
        self.assertEqual([without_index(e) for e in paged[:len(everything)]],
                         [without_index(e) for e in everything])
        # Filters as for GET /events.
        base = 1600000000000
        self.assertEqual([e["id"] for e in self.export(since=base + 3000, until=base + 7000)],
                         [e["id"] for e in self.events(since=base + 3000, until=base + 7000)])
        self.assertEqual(self.export(actor="nobody-at-all"), [])
        self.error("GET", "/events/export?since=abc", None, 400)
        # Straight from the kernel (chunked, as it is streamed), the same lines.
        st, hdrs, body = self.g.kernel_http("audit", "GET", "/events/export?actor=x-bulk",
                                            timeout=scaled(30))
        self.assertEqual(st, 200)
        self.assertEqual(hdrs.get("Transfer-Encoding"), "chunked")
        self.assertEqual([json.loads(x)["id"] for x in body.splitlines()], ids)

    def test_07_proof_bad_ids(self):
        for bad in ("abc", "0", "-3", "1x", "99999999999999999999999"):
            self.error("GET", "/events/%s/proof" % bad, None, 400)
        self.error("GET", "/events/987654321/proof", None, 404, "not_found")

    def test_08_proof_409_until_appended_then_verifies(self):
        key = self.call("GET", ILOG + "/key")
        pk = base64.b64decode(key["public_key"])
        self.assertEqual(len(pk), 32)
        self.assertEqual(key["key_id"], hashlib.sha256(pk).hexdigest())

        # With the log stopped nothing can be appended: the proof waits.
        self.call("POST", "/kernel-ports/immutable_log/stop", expect=202)
        self.g.wait_kernel("immutable_log", lambda k: k["state"] == "stopped")
        try:
            out = self.post({"actor": "proof-me", "action": "funds.transfer",
                             "resource": "account/42", "outcome": "ok",
                             "details": {"amount": 1000, "to": "account/7"}})
            st, hdrs, body = self.g.http("GET", "%s/events/%d/proof" % (AUDIT, out["id"]),
                                         timeout=scaled(10))
            self.assertEqual(st, 409, body)
            self.assertEqual(body["error"]["code"], "not_logged_yet")
            self.assertTrue(hdrs.get("Retry-After"))
            self.assertIsNone(self.page(actor="proof-me")["events"][0]["log_index"])
        finally:
            self.call("POST", "/kernel-ports/immutable_log/start", expect=202)
        self.g.wait_kernel("immutable_log", lambda k: k["state"] == "ready")

        p = self.proof(out["id"])
        self.assertEqual(p["event"]["id"], out["id"])
        self.assertEqual(p["event"]["details"], {"amount": 1000, "to": "account/7"})
        raw = self.check_proof(p, pk)
        self.assertIn(b'"actor":"proof-me"', raw)
        self.assertEqual(self.page(actor="proof-me")["events"][0]["log_index"], p["log_index"])
        # The signed root is the root of the log's entries, recomputed here.
        size = p["sth"]["tree_size"]
        leaves, start = [], 0
        while start < size:
            pg = self.call("GET", ILOG + "/entries" + qs(start=start, end=size))
            leaves.extend(base64.b64decode(e["data_b64"]) for e in pg["entries"])
            start = pg["end"]
        self.assertEqual(mth(leaves[:size]), unhex(p["sth"]["root_hash"]))

    def test_09_every_event_gets_a_verifiable_proof(self):
        key = self.call("GET", ILOG + "/key")
        pk = base64.b64decode(key["public_key"])
        ids = self.post([{"actor": "proof-batch", "action": "a", "resource": "r/%d" % i,
                          "outcome": "ok", "details": {"i": i}} for i in range(4)])["ids"]
        for i in ids:
            self.check_proof(self.proof(i), pk)
        # An event the main process sent (a kernel state change) too.
        ev = self.page(actor="grace", action="kernel.state", limit=1)["events"][0]
        self.check_proof(self.proof(ev["id"]), pk)
        # Eventually every event is in the log, in id order, each at an index
        # of its own, and each log entry is that event.
        def all_logged():
            evs = self.events(limit=1000)
            return evs if all(e["log_index"] is not None for e in evs) else None
        evs = self.g.wait_for(all_logged, scaled(20), message="every event in the log")
        idx = [e["log_index"] for e in evs]
        self.assertEqual(idx, sorted(set(idx)), "log indexes follow the ids")
        for e in evs[::97] + evs[-3:]:
            self.assertEqual(json.loads(self.entry_bytes(e["log_index"])), without_index(e))
        v = self.call("GET", ILOG + "/verify")
        self.assertTrue(v["ok"], v)


if __name__ == "__main__":
    unittest.main()
