"""Immutable log (8101) through `grace serve` and the gateway at
/kernels/immutable_log/*: appends (single, batch, bytes), entries, signed
tree heads, inclusion and consistency proofs checked by an independent
RFC 6962 / RFC 9162 verifier (rfc6962.py, hashlib only, never the kernel's
code), /verify catching hand edits of the SQLite file made while the kernel
is stopped and while it runs, and bad input getting a clear 4xx."""

import base64
import hashlib
import os
import sqlite3
import sys
import unittest
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
from harness import GraceServer, GraceTestCase  # noqa: E402
from session import AdminApi  # noqa: E402

PREFIX = "/kernels/immutable_log"


# The independent RFC 6962 / RFC 9162 verifier (hashlib only, never the
# kernel's code) lives in rfc6962.py, shared with the audit tests.
from rfc6962 import (canonical, leaf_hash, mth, sth_message, unhex,  # noqa: E402
                     verify_consistency, verify_inclusion)


class LogCase(GraceTestCase):
    g = None
    leaves = []  # every entry's bytes, as this test appended them

    @classmethod
    def setUpClass(cls):
        cls.g = GraceServer(kernels={"immutable_log": {}})
        try:
            cls.g.start()
            cls.api = AdminApi(cls.g)
        except BaseException:
            cls.g.dump_log()
            cls.g.close()
            raise
        cls.leaves = []

    @classmethod
    def tearDownClass(cls):
        cls.g.close()

    def call(self, method, path, body=None, expect=200):
        st, _, out = self.api.http(method, PREFIX + path, body)
        self.assertEqual(st, expect, "%s %s -> %s %r" % (method, path, st, out))
        return out

    def error(self, method, path, body, status, code=None):
        out = self.call(method, path, body, expect=status)
        self.assertIsInstance(out, dict, out)
        self.assertIn("error", out)
        self.assertTrue(out["error"]["message"])
        if code:
            self.assertEqual(out["error"]["code"], code, out)
        return out

    def append(self, value=None, raw=None):
        body = {"data_b64": base64.b64encode(raw).decode()} if raw is not None else {"data": value}
        out = self.call("POST", "/entries", body, expect=201)
        self.leaves.append(raw if raw is not None else canonical(value))
        return out

    def db_path(self):
        return os.path.join(self.g.data_dir, "immutable_log.db")

    def verify(self):
        return self.call("GET", "/verify")


class ImmutableLog(LogCase):
    def test_01_appends_hash_per_rfc6962(self):
        empty = self.call("GET", "/sth")
        self.assertEqual(empty["tree_size"], 0)
        self.assertEqual(unhex(empty["root_hash"]), hashlib.sha256(b"").digest())

        values = [{"b": 2, "a": [1, "x"], "c": {"z": None, "y": True}}, "héllo ☃", 42, None,
                  [], {"nested": {"k": "v"}}]
        for i, v in enumerate(values):
            out = self.append(v)
            self.assertEqual(out["index"], i)
            self.assertEqual(out["tree_size"], i + 1)
            self.assertEqual(unhex(out["leaf_hash"]), leaf_hash(canonical(v)))
            self.assertEqual(unhex(out["root_hash"]), mth(self.leaves))
        for raw in (b"", b"\x00\xff binary \x01", os.urandom(300)):
            out = self.append(raw=raw)
            self.assertEqual(unhex(out["leaf_hash"]), leaf_hash(raw))
            self.assertEqual(unhex(out["root_hash"]), mth(self.leaves))

    def test_02_batch_is_all_or_nothing(self):
        before = self.call("GET", "/sth")["tree_size"]
        batch = [{"data": {"n": i}} for i in range(7)] + [{"data_b64": "AAEC"}]
        out = self.call("POST", "/entries", batch, expect=201)
        self.assertEqual([e["index"] for e in out["entries"]], list(range(before, before + 8)))
        self.leaves.extend(canonical({"n": i}) for i in range(7))
        self.leaves.append(b"\x00\x01\x02")
        for e, raw in zip(out["entries"], self.leaves[before:]):
            self.assertEqual(unhex(e["leaf_hash"]), leaf_hash(raw))
        self.assertEqual(out["tree_size"], len(self.leaves))
        self.assertEqual(unhex(out["root_hash"]), mth(self.leaves))
        # One bad item refuses the whole batch: nothing is appended.
        self.error("POST", "/entries", [{"data": 1}, {"data_b64": "not base64!"}], 400,
                   "bad_base64")
        self.error("POST", "/entries", [{"data": 1}, {"nope": 2}], 400)
        self.assertEqual(self.call("GET", "/sth")["tree_size"], len(self.leaves))

    def test_03_entries(self):
        n = len(self.leaves)
        page = self.call("GET", "/entries?start=0&end=%d" % n)
        self.assertEqual((page["start"], page["end"], page["tree_size"]), (0, n, n))
        self.assertEqual(len(page["entries"]), n)
        for i, e in enumerate(page["entries"]):
            self.assertEqual(e["index"], i)
            raw = base64.b64decode(e["data_b64"])
            self.assertEqual(raw, self.leaves[i])
            self.assertEqual(unhex(e["leaf_hash"]), leaf_hash(raw))
        self.assertEqual(page["entries"][0]["data"], {"a": [1, "x"], "b": 2,
                                                      "c": {"y": True, "z": None}})
        self.assertEqual(page["entries"][1]["data"], "héllo ☃")
        self.assertNotIn("data", page["entries"][7])  # appended as bytes
        one = self.call("GET", "/entries/2")
        self.assertEqual(one["data"], 42)
        self.assertIsInstance(one["timestamp"], int)
        # A bounded page that says where it ended; end past the tree is clamped.
        part = self.call("GET", "/entries?start=3&end=5")
        self.assertEqual([e["index"] for e in part["entries"]], [3, 4])
        tail = self.call("GET", "/entries?start=%d&end=%d" % (n - 1, n + 50))
        self.assertEqual((tail["end"], len(tail["entries"])), (n, 1))
        self.assertEqual(self.call("GET", "/entries?start=%d" % n)["entries"], [])

    def test_04_signed_tree_head(self):
        key = self.call("GET", "/key")
        self.assertEqual(key["algorithm"], "ed25519")
        pk = base64.b64decode(key["public_key"])
        self.assertEqual(len(pk), 32)
        self.assertEqual(key["key_id"], hashlib.sha256(pk).hexdigest())
        sth = self.call("GET", "/sth")
        self.assertEqual(sth["tree_size"], len(self.leaves))
        self.assertEqual(unhex(sth["root_hash"]), mth(self.leaves))
        self.assertEqual(len(base64.b64decode(sth["signature"])), 64)
        self.assertEqual(sth["key_id"], key["key_id"])
        # Asked again at the same size: the same signed head.
        self.assertEqual(self.call("GET", "/sth"), sth)
        # The serialization it signs (documented) is well formed; Python's
        # standard library has no Ed25519 to check the signature itself.
        self.assertEqual(len(sth_message(sth)), 50)

    def test_05_inclusion_proofs_verify_independently(self):
        n = len(self.leaves)
        for size in range(1, n + 1):
            root = mth(self.leaves[:size])
            for index in range(size):
                p = self.call("GET", "/proof/inclusion?index=%d&tree_size=%d" % (index, size))
                self.assertEqual((p["index"], p["tree_size"]), (index, size))
                self.assertEqual(unhex(p["root_hash"]), root)
                leaf = leaf_hash(self.leaves[index])
                self.assertEqual(unhex(p["leaf_hash"]), leaf)
                path = [unhex(h) for h in p["audit_path"]]
                self.assertTrue(verify_inclusion(index, size, leaf, path, root),
                                (index, size, p))
                # The same path must not prove another leaf or another root.
                self.assertFalse(verify_inclusion(index, size, leaf_hash(b"other"), path, root))
                if size > 1:
                    self.assertFalse(verify_inclusion(index, size, leaf, path,
                                                      mth(self.leaves[:size - 1])))
        # tree_size defaults to the current size.
        p = self.call("GET", "/proof/inclusion?index=0")
        self.assertEqual(p["tree_size"], n)

    def test_06_consistency_proofs_verify_independently(self):
        n = len(self.leaves)
        for second in range(1, n + 1):
            r2 = mth(self.leaves[:second])
            for first in range(1, second + 1):
                p = self.call("GET", "/proof/consistency?first=%d&second=%d" % (first, second))
                r1 = mth(self.leaves[:first])
                self.assertEqual(unhex(p["first_root_hash"]), r1)
                self.assertEqual(unhex(p["second_root_hash"]), r2)
                proof = [unhex(h) for h in p["consistency"]]
                self.assertTrue(verify_consistency(first, second, r1, r2, proof),
                                (first, second, p))
                if first < second:
                    self.assertFalse(verify_consistency(first, second, r1,
                                                        hashlib.sha256(b"x").digest(), proof))
        p = self.call("GET", "/proof/consistency?first=1")
        self.assertEqual(p["second"], n)

    def test_07_bad_input(self):
        n = len(self.leaves)
        self.error("GET", "/proof/inclusion?index=%d" % n, None, 400)
        self.error("GET", "/proof/inclusion?index=0&tree_size=%d" % (n + 1), None, 400)
        self.error("GET", "/proof/inclusion?index=-1", None, 400)
        self.error("GET", "/proof/inclusion", None, 400)
        self.error("GET", "/proof/inclusion?index=abc", None, 400)
        self.error("GET", "/proof/consistency?first=0&second=1", None, 400)
        self.error("GET", "/proof/consistency?first=3&second=2", None, 400)
        self.error("GET", "/proof/consistency?first=1&second=%d" % (n + 1), None, 400)
        self.error("GET", "/entries/%d" % n, None, 404)
        self.error("GET", "/entries/x1", None, 400)
        self.error("GET", "/entries?start=%d" % (n + 1), None, 400)
        self.error("GET", "/entries?start=3&end=1", None, 400)
        self.error("POST", "/entries", {"data_b64": "%%%"}, 400, "bad_base64")
        self.error("POST", "/entries", {"data_b64": "QUJD"[:3]}, 400, "bad_base64")
        self.error("POST", "/entries", {"data_b64": 12}, 400, "bad_base64")
        self.error("POST", "/entries", {"data": 1, "data_b64": "QUJD"}, 400)
        self.error("POST", "/entries", {}, 400)
        self.error("POST", "/entries", [], 400)
        self.error("POST", "/entries", "this is not json", 400)
        self.error("POST", "/entries", "42", 400)
        self.error("POST", "/entries", [{"data": i} for i in range(1001)], 400)
        # No route edits or deletes an entry.
        self.call("DELETE", "/entries/0", expect=405)
        self.call("PUT", "/entries/0", {"data": 1}, expect=405)
        self.assertEqual(self.call("GET", "/sth")["tree_size"], n)

    def test_08_verify_ok(self):
        v = self.verify()
        self.assertTrue(v["ok"], v)
        self.assertEqual(v["tree_size"], len(self.leaves))
        self.assertEqual(v["entries_checked"], len(self.leaves))
        self.assertEqual(unhex(v["root_hash"]), mth(self.leaves))
        self.assertGreaterEqual(v["tree_heads_checked"], 1)

    def test_09_tamper_while_running_is_detected(self):
        victim = 4
        with sqlite3.connect(self.db_path()) as db:
            # The schema refuses edits: a tamperer has to drop the guards first.
            with self.assertRaises(sqlite3.DatabaseError):
                db.execute("UPDATE entries SET data = x'00' WHERE idx = ?", (victim,))
            db.execute("DROP TRIGGER entries_no_update")
            db.execute("UPDATE entries SET data = ? WHERE idx = ?", (b"forged", victim))
        v = self.verify()
        self.assertFalse(v["ok"], v)
        self.assertEqual(v["first_bad_index"], victim, v)
        self.assertIn(str(victim), v["reason"])
        # Put the bytes back: verify agrees again.
        with sqlite3.connect(self.db_path()) as db:
            db.execute("UPDATE entries SET data = ? WHERE idx = ?", (self.leaves[victim], victim))
        self.assertTrue(self.verify()["ok"])

    def test_10_tamper_while_stopped_is_detected(self):
        st, _, body = self.api.http("POST", "/kernel-ports/immutable_log/stop")
        self.assertEqual(st, 202, body)
        self.api.wait_kernel("immutable_log", lambda k: k["state"] == "stopped")
        victim = 2
        with sqlite3.connect(self.db_path()) as db:
            db.execute("DROP TRIGGER IF EXISTS entries_no_update")
            db.execute("UPDATE entries SET data = ? WHERE idx = ?", (b'{"forged":1}', victim))
        st, _, body = self.api.http("POST", "/kernel-ports/immutable_log/start")
        self.assertEqual(st, 202, body)
        self.api.wait_kernel("immutable_log", lambda k: k["state"] == "ready")
        v = self.verify()
        self.assertFalse(v["ok"], v)
        self.assertEqual(v["first_bad_index"], victim, v)
        # The restarted kernel put its guard back.
        with sqlite3.connect(self.db_path()) as db:
            with self.assertRaises(sqlite3.DatabaseError):
                db.execute("UPDATE entries SET data = x'00' WHERE idx = 0")
            db.execute("DROP TRIGGER entries_no_update")
            db.execute("UPDATE entries SET data = ? WHERE idx = ?", (self.leaves[victim], victim))
        self.assertTrue(self.verify()["ok"])

    def test_11_subtree_tamper_is_detected(self):
        with sqlite3.connect(self.db_path()) as db:
            db.execute("DROP TRIGGER IF EXISTS nodes_no_update")
            old = db.execute("SELECT hash FROM nodes WHERE level = 2 AND idx = 1").fetchone()[0]
            db.execute("UPDATE nodes SET hash = ? WHERE level = 2 AND idx = 1", (b"\x07" * 32,))
        v = self.verify()
        self.assertFalse(v["ok"], v)
        self.assertEqual(v["first_bad_index"], 4, v)  # leaves [4, 8)
        # Proofs that use the damaged subtree no longer verify: clients notice too.
        n = len(self.leaves)
        p = self.call("GET", "/proof/inclusion?index=0&tree_size=%d" % n)
        self.assertFalse(verify_inclusion(0, n, leaf_hash(self.leaves[0]),
                                          [unhex(h) for h in p["audit_path"]], mth(self.leaves)))
        with sqlite3.connect(self.db_path()) as db:
            db.execute("UPDATE nodes SET hash = ? WHERE level = 2 AND idx = 1", (old,))
        self.assertTrue(self.verify()["ok"])

    def test_12_consistent_rewrite_is_caught_by_signed_heads(self):
        # A careful forger rewrites an entry and every hash above it, so the
        # tree is self-consistent: the tree heads already signed give it away.
        n = len(self.leaves)
        self.call("GET", "/sth")
        victim = 9
        forged = list(self.leaves)
        forged[victim] = b"rewritten history"
        with sqlite3.connect(self.db_path()) as db:
            for t in ("entries", "nodes"):
                db.execute("DROP TRIGGER IF EXISTS %s_no_update" % t)
            db.execute("UPDATE entries SET data = ? WHERE idx = ?", (forged[victim], victim))
            level = 0
            while (1 << level) <= n:
                i = victim >> level
                if (i + 1) << level <= n:
                    h = mth(forged[i << level:(i + 1) << level])
                    db.execute("UPDATE nodes SET hash = ? WHERE level = ? AND idx = ?",
                               (h, level, i))
                level += 1
        v = self.verify()
        self.assertFalse(v["ok"], v)
        self.assertIn("rewritten", v["reason"])
        self.assertIsNotNone(v["first_bad_index"])
        self.assertLessEqual(v["first_bad_index"], victim)

    def test_13_persists_across_restart(self):
        # Runs last: the log restarted still has every entry and the same key.
        g = self.g
        key = self.call("GET", "/key")
        size = self.call("GET", "/sth")["tree_size"]
        pid = self.api.kernel("immutable_log")["pid"]
        st, _, body = self.api.http("POST", "/kernel-ports/immutable_log/restart")
        self.assertEqual(st, 202, body)
        self.api.wait_kernel("immutable_log", lambda k: k["state"] == "ready" and k["pid"] != pid)
        self.assertEqual(self.call("GET", "/key"), key)
        self.assertEqual(self.call("GET", "/sth")["tree_size"], size)
        mode = os.stat(os.path.join(g.data_dir, "immutable_log.key")).st_mode & 0o777
        self.assertEqual(mode, 0o600)


class LargerTree(LogCase):
    """Proofs over a tree of a few hundred entries, at sampled sizes."""

    def test_proofs_at_scale(self):
        batch = [{"data": {"i": i}} for i in range(300)]
        self.call("POST", "/entries", batch, expect=201)
        self.leaves.extend(canonical({"i": i}) for i in range(300))
        n = len(self.leaves)
        for size in (1, 2, 3, 127, 128, 129, 255, 256, 257, 300):
            root = mth(self.leaves[:size])
            for index in sorted({0, size // 3, size // 2, size - 1}):
                p = self.call("GET", "/proof/inclusion?" +
                              urllib.parse.urlencode({"index": index, "tree_size": size}))
                self.assertTrue(verify_inclusion(index, size, leaf_hash(self.leaves[index]),
                                                 [unhex(h) for h in p["audit_path"]], root))
                self.assertLessEqual(len(p["audit_path"]), 9)
        for first, second in ((1, 300), (128, 300), (129, 257), (200, 300), (255, 256),
                              (7, 128), (300, 300)):
            p = self.call("GET", "/proof/consistency?first=%d&second=%d" % (first, second))
            self.assertTrue(verify_consistency(first, second, mth(self.leaves[:first]),
                                               mth(self.leaves[:second]),
                                               [unhex(h) for h in p["consistency"]]))
        v = self.verify()
        self.assertTrue(v["ok"], v)
        self.assertEqual(v["tree_size"], n)


if __name__ == "__main__":
    unittest.main()
