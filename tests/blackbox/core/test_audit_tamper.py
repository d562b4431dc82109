"""Tamper evidence of the audit trail, end to end: audit events are appended
to the immutable log; with `grace serve` stopped, one event's log entry is
rewritten in immutable_log.db (its guard trigger dropped first, as
docs/immutable-log.md says a tamperer must) and another event is rewritten
in the audit kernel's own audit.db. After a fresh start:

- GET /kernels/immutable_log/verify names the rewritten entry's index;
- a client checking the first event's proof independently (rfc6962.py) from
  the entry's bytes sees it no longer matches the proven leaf;
- the second event as the audit now serves it is not what the log holds:
  its canonical form does not verify, the log's entry (the original) does.
"""

import base64
import json
import os
import sqlite3
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
from harness import GraceServer, GraceTestCase, scaled  # noqa: E402
from rfc6962 import (canonical, leaf_hash, unhex, verify_inclusion,  # noqa: E402
                     verify_sth_signature)

AUDIT = "/kernels/audit"
ILOG = "/kernels/immutable_log"
KERNELS = {"message_bus": {}, "immutable_log": {}, "audit": {}, "librarian": {}, "trust": {}}


def without_index(ev):
    return {k: v for k, v in ev.items() if k != "log_index"}


class AuditTamper(GraceTestCase):
    def setUp(self):
        self.g = GraceServer(kernels=KERNELS)
        try:
            self.g.start()
        except BaseException:
            self.g.dump_log()
            self.g.close()
            raise
        self.addCleanup(self.g.close)

    def call(self, method, path, body=None, expect=200):
        st, _, out = self.g.http(method, path, body, timeout=scaled(10))
        self.assertEqual(st, expect, "%s %s -> %s %r" % (method, path, st, out))
        return out

    def proof(self, event_id):
        def ready():
            st, _, out = self.g.http("GET", "%s/events/%d/proof" % (AUDIT, event_id),
                                     timeout=scaled(10))
            if st == 409:
                return None
            self.assertEqual(st, 200, out)
            return out
        return self.g.wait_for(ready, scaled(15), message="event %d logged" % event_id)

    def entry(self, index):
        return base64.b64decode(self.call("GET", "%s/entries/%d" % (ILOG, index))["data_b64"])

    def proves(self, p, raw):
        """Whether the proof in `p` proves these entry bytes."""
        inc = p["inclusion"]
        return verify_inclusion(p["log_index"], inc["tree_size"], leaf_hash(raw),
                                [unhex(h) for h in inc["audit_path"]],
                                unhex(p["sth"]["root_hash"]))

    def test_edits_made_while_stopped_are_detected(self):
        g = self.g
        pk = base64.b64decode(self.call("GET", ILOG + "/key")["public_key"])
        events = [
            {"actor": "t-alice", "action": "login", "resource": "auth", "outcome": "ok"},
            {"actor": "t-mallory", "action": "funds.transfer", "resource": "account/42",
             "outcome": "ok", "details": {"amount": 1000, "to": "account/666"}},
            {"actor": "t-bob", "action": "login", "resource": "auth", "outcome": "ok"},
            {"actor": "t-eve", "action": "secrets.read", "resource": "vault/root",
             "outcome": "denied"},
        ]
        ids = self.call("POST", AUDIT + "/events", events, expect=201)["ids"]
        proofs = {i: self.proof(i) for i in ids}
        for i, p in proofs.items():
            raw = self.entry(p["log_index"])
            self.assertEqual(raw, canonical(without_index(p["event"])))
            self.assertTrue(self.proves(p, raw), p)
            self.assertTrue(verify_sth_signature(p["sth"], pk))
        self.assertTrue(self.call("GET", ILOG + "/verify")["ok"])
        victim, other = proofs[ids[1]], proofs[ids[3]]
        victim_index = victim["log_index"]

        g.stop()
        with sqlite3.connect(os.path.join(g.data_dir, "immutable_log.db")) as db:
            with self.assertRaises(sqlite3.DatabaseError):
                db.execute("UPDATE entries SET data = x'00' WHERE idx = ?", (victim_index,))
            db.execute("DROP TRIGGER IF EXISTS entries_no_update")
            raw = db.execute("SELECT data FROM entries WHERE idx = ?",
                             (victim_index,)).fetchone()[0]
            forged = bytes(raw).replace(b'"amount":1000', b'"amount":1')
            self.assertNotEqual(forged, bytes(raw))
            db.execute("UPDATE entries SET data = ? WHERE idx = ?", (forged, victim_index))
        with sqlite3.connect(os.path.join(g.data_dir, "audit.db")) as db:
            n = db.execute("UPDATE events SET outcome = 'allowed' WHERE id = ?",
                           (ids[3],)).rowcount
            self.assertEqual(n, 1)
        g.start()

        v = self.call("GET", ILOG + "/verify")
        self.assertFalse(v["ok"], v)
        self.assertEqual(v["first_bad_index"], victim_index, v)
        self.assertIn(str(victim_index), v["reason"])

        # The rewritten entry: what the log now holds is not what was proven.
        now = self.entry(victim_index)
        self.assertEqual(now, forged)
        self.assertFalse(self.proves(victim, now))
        p = self.proof(ids[1])
        self.assertNotEqual(leaf_hash(now), unhex(p["inclusion"]["leaf_hash"]))
        self.assertFalse(self.proves(p, now))

        # The audit's own copy rewritten: the log still holds the original.
        p = self.proof(ids[3])
        self.assertEqual(p["event"]["outcome"], "allowed")
        raw = self.entry(other["log_index"])
        self.assertEqual(json.loads(raw)["outcome"], "denied")
        self.assertTrue(self.proves(p, raw))
        self.assertFalse(self.proves(p, canonical(without_index(p["event"]))))

        # The restarted log put its guard back.
        with sqlite3.connect(os.path.join(g.data_dir, "immutable_log.db")) as db:
            with self.assertRaises(sqlite3.DatabaseError):
                db.execute("UPDATE entries SET data = x'00' WHERE idx = 0")


if __name__ == "__main__":
    unittest.main()
