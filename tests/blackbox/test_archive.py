"""Archival of the immutable log (issue 21 item 5) through `grace serve`
and the gateway at /kernels/immutable_log/*: 1,000 entries appended, the
first 600 exported to an archive file that is checked here by an
independent implementation (hashlib for RFC 6962 hashes and proofs,
`cryptography`'s Ed25519 for the tree head's signature, never the kernel's
code), then removed: their bytes are gone from the database's rows,
/verify passes, old and new inclusion proofs and a consistency proof from
a pre-archive head verify, appends continue, a DELETE in the sqlite3 shell
is still refused, a kill -9 inside the removal's transaction leaves
nothing half done, archiving a range twice is a 409, bad input a 400
naming the field, and every archival is an audit event."""

import base64
import hashlib
import json
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), 'core'))
from harness import GRACE_BIN, GraceServer, GraceTestCase, scaled  # noqa: E402
from rfc6962 import (canonical, leaf_hash, unhex,  # noqa: E402
                     verify_consistency, verify_inclusion)
from session import AdminApi  # noqa: E402

try:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
except ImportError:  # a missing oracle fails, naming its package
    Ed25519PublicKey = None

LOG = "/kernels/immutable_log"
# Below the guardian's 3 s watchdog, which would kill the kernel first.
STALL_MS = 2500 if os.environ.get("GRACE_SANITIZED") else 2000


def check_archive(path, public_key_b64):
    """Checks an archive file on its own; returns (header, entries, manifest)."""
    if Ed25519PublicKey is None:
        raise AssertionError("python3-cryptography is missing (scripts/bootstrap.sh --test)")
    with open(path, "rb") as f:
        raw = f.read()
    lines = raw.split(b"\n")
    assert lines[-1] == b"", "the archive does not end with a newline"
    lines = lines[:-1]
    header = json.loads(lines[0])
    manifest = json.loads(lines[-1])["manifest"]
    body_len = len(raw) - len(lines[-1]) - 1
    assert manifest["content_bytes"] == body_len, manifest
    assert manifest["content_sha256"] == hashlib.sha256(raw[:body_len]).hexdigest(), \
        "the manifest's SHA-256 does not cover the archive's contents"
    assert header["format"] == manifest["format"] == "grace-immutable-log-archive/1"
    head = header["tree_head"]
    assert head["public_key"] == public_key_b64, "the archive names another key"
    # RFC 6962 3.5 TreeHeadSignature: v1, tree_hash, timestamp, size, root.
    msg = (b"\x00\x01" + struct.pack(">QQ", head["timestamp"], head["tree_size"]) +
           unhex(head["root_hash"]))
    Ed25519PublicKey.from_public_bytes(base64.b64decode(head["public_key"])).verify(
        base64.b64decode(head["signature"]), msg)  # raises when bad
    entries = [json.loads(line) for line in lines[1:-1]]
    first, end = header["first"], header["end"]
    assert manifest["entries"] == len(entries) == end - first
    assert head["tree_size"] >= end
    root = unhex(head["root_hash"])
    for n, e in enumerate(entries):
        assert e["index"] == first + n
        data = base64.b64decode(e["data_b64"])
        assert unhex(e["leaf_hash"]) == leaf_hash(data), "leaf %d" % e["index"]
        assert verify_inclusion(e["index"], head["tree_size"], leaf_hash(data),
                                [unhex(h) for h in e["audit_path"]], root), \
            "the inclusion proof of entry %d does not verify" % e["index"]
    return header, entries, manifest


class Archive(GraceTestCase):
    @classmethod
    def setUpClass(cls):
        cls.g = GraceServer(kernels={"immutable_log": {}, "audit": {}},
                            env={"GRACE_TEST_ILOG_REMOVE_STALL": "800:%d" % STALL_MS})
        try:
            cls.g.start()
            cls.api = AdminApi(cls.g)
        except BaseException:
            cls.g.dump_log()
            cls.g.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.g.close()

    def call(self, method, path, body=None, expect=200, timeout=30.0):
        st, _, out = self.api.http(method, LOG + path, body, timeout=scaled(timeout))
        self.assertEqual(st, expect, "%s %s -> %s %r" % (method, path, st, out))
        return out

    def bad(self, body, field, status=400):
        out = self.call("POST", "/archive", body, expect=status)
        self.assertIn(field, out["error"]["message"], out)
        self.assertTrue(out["error"]["request_id"])
        return out

    def db(self):
        path = os.path.join(self.g.data_dir, "immutable_log.db")
        return sqlite3.connect("file:%s?mode=ro" % path, uri=True)

    def sqlite3_shell(self, sql):
        path = os.path.join(self.g.data_dir, "immutable_log.db")
        return subprocess.run(["sqlite3", path, sql], capture_output=True, text=True,
                              timeout=scaled(10))

    def head(self):
        return self.call("GET", "/sth")

    def test_1_log(self):
        # The audit trail appends its own events too: entries are known
        # by the indexes the appends answer.
        known = {}
        for b in range(4):
            batch = [{"data": {"n": b * 250 + i, "pad": "x" * (i % 7)}} for i in range(250)]
            out = self.call("POST", "/entries", batch, expect=201)
            for e, r in zip(batch, out["entries"]):
                known[r["index"]] = canonical(e["data"])
        pre = self.head()
        self.assertGreaterEqual(pre["tree_size"], 1000)
        key = self.call("GET", "/key")["public_key"]

        # Bad input: a 400 naming the field.
        self.bad({}, "before")
        self.bad({"before": "600"}, "before")
        self.bad({"before": 0}, "before")
        self.bad({"before": 5000}, "before")
        self.bad({"before": 10, "older_than_s": 5}, "before")
        self.bad({"before": 10, "remove": "yes"}, "remove")
        self.bad({"before": 10, "sha256": "ab"}, "sha256")
        self.bad({"before": 10, "colour": 1}, "colour")
        self.bad({"older_than_s": -1}, "older_than_s")

        # Export only: the file verifies on its own; nothing is removed.
        out = self.call("POST", "/archive", {"before": 600})
        self.assertFalse(out["removed"])
        self.assertEqual((out["first"], out["end"], out["entries"]), (0, 600, 600))
        path = os.path.join(self.g.data_dir, "archive", out["file"])
        with open(path, "rb") as f:
            raw = f.read()
        self.assertEqual(hashlib.sha256(raw).hexdigest(), out["sha256"])
        header, entries, _ = check_archive(path, key)
        self.assertGreaterEqual(header["tree_head"]["tree_size"], pre["tree_size"])
        for e in entries:
            if e["index"] in known:
                self.assertEqual(base64.b64decode(e["data_b64"]), known[e["index"]])
        self.assertGreater(len([e for e in entries if e["index"] in known]), 500)
        # Grace's own offline check agrees, and refuses an altered copy.
        r = subprocess.run([GRACE_BIN, "archive", "verify", path, "--json"],
                           capture_output=True, text=True, timeout=scaled(20))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["sha256"], out["sha256"])
        bad = os.path.join(self.g.tmp, "altered.jsonl")
        at = raw.index(b'"data_b64":"', len(raw) // 2) + 12  # an entry's first byte
        with open(bad, "wb") as f:
            f.write(raw[:at] + (b"f" if raw[at:at + 1] == b"e" else b"e") + raw[at + 1:])
        r = subprocess.run([GRACE_BIN, "archive", "verify", bad], capture_output=True,
                           text=True, timeout=scaled(20))
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("does NOT verify", r.stderr)
        st, _, fetched = self.api.http("GET", LOG + "/archives/" + out["file"])
        self.assertEqual(st, 200)
        self.assertEqual(fetched if isinstance(fetched, bytes) else None, raw)
        self.call("GET", "/archives/immutable_log.db", expect=400)
        self.call("GET", "/archives/..%2Fimmutable_log.db", expect=404)
        self.call("GET", "/entries/5")
        self.assertEqual(len(os.listdir(os.path.join(self.g.data_dir, "archive"))), 1)

        # The second step names the archive it removes by its SHA-256.
        self.bad({"before": 600, "remove": True, "sha256": "0" * 64}, "SHA-256", status=409)
        self.assertEqual(self.call("GET", "/entries/5")["index"], 5)
        out = self.call("POST", "/archive", {"before": 600, "remove": True,
                                             "sha256": out["sha256"]})
        self.assertTrue(out["removed"], out)
        sha = out["sha256"]
        listed = self.call("GET", "/archives")
        self.assertEqual(listed["archived_before"], 600)
        self.assertEqual(listed["archives"][0]["sha256"], sha)
        self.assertEqual(listed["archives"][0]["tree_size"], header["tree_head"]["tree_size"])
        self.assertEqual(hashlib.sha256(raw).hexdigest(), sha)
        record = self.call("GET", "/entries/%d" % out["record_index"])
        self.assertEqual(record["data"]["type"], "immutable_log.archive")
        self.assertEqual((record["data"]["end"], record["data"]["sha256"]), (600, sha))

        # Archived entries answer 410 naming the archive; later ones remain.
        gone = self.call("GET", "/entries/5", expect=410)
        self.assertIn(sha, gone["error"]["message"])
        self.call("GET", "/entries?start=0&end=10", expect=410)
        self.assertEqual(self.call("GET", "/entries/600")["index"], 600)
        page = self.call("GET", "/entries?start=600&end=610")
        self.assertEqual(len(page["entries"]), 10)

        # The bytes are gone from the rows (deleted a few hundred at a time
        # after the answer, so the log's loop is never held for the whole
        # range); every leaf hash is kept.
        def rows_left():
            with self.db() as c:
                return c.execute("SELECT count(*) FROM entries WHERE idx < 600").fetchone()[0]
        self.g.wait_for(lambda: rows_left() == 0, timeout=scaled(10),
                        message=lambda: "%d archived rows still in the table" % rows_left())
        with self.db() as c:
            self.assertEqual(c.execute("SELECT count(*) FROM nodes WHERE level = 0 AND"
                                       " idx < 600").fetchone()[0], 600)
            meta = dict(c.execute("SELECT key, value FROM meta"))
            self.assertEqual(bytes(meta["archived_before"]), b"600")
            self.assertEqual(bytes(meta["archive_sha256"]).decode(), sha)
            self.assertIn("archived_at", meta)
            self.assertEqual(c.execute("PRAGMA user_version").fetchone()[0], 2)

        v = self.call("GET", "/verify")
        self.assertTrue(v["ok"], v)
        self.assertEqual(v["archived_entries"], 600)
        self.assertGreater(v["tree_size"], pre["tree_size"])

        # Appends and proofs: old leaves, new leaves, pre- to post-archive.
        known[out["record_index"]] = canonical(record["data"])
        more = [{"data": {"after": i}} for i in range(20)]
        for e, r in zip(more, self.call("POST", "/entries", more, expect=201)["entries"]):
            known[r["index"]] = canonical(e["data"])
        post = self.head()
        size = post["tree_size"]
        root = unhex(post["root_hash"])
        old = [e["index"] for e in entries if e["index"] in known]
        new = sorted(i for i in known if i >= 600)
        for i in old[:3] + old[-2:] + new[:2] + new[-3:]:
            p = self.call("GET", "/proof/inclusion?index=%d&tree_size=%d" % (i, size))
            self.assertTrue(verify_inclusion(i, size, leaf_hash(known[i]),
                                             [unhex(h) for h in p["audit_path"]], root), i)
        first = pre["tree_size"]
        c = self.call("GET", "/proof/consistency?first=%d&second=%d" % (first, size))
        self.assertTrue(verify_consistency(first, size, unhex(pre["root_hash"]), root,
                                           [unhex(h) for h in c["consistency"]]))

        # Twice the same range (or a part of it): a clear 409.
        self.bad({"before": 600}, "already archived", status=409)
        self.bad({"before": 300, "remove": True}, "already archived", status=409)

        # A careless DELETE in the sqlite3 shell is still refused.
        for sql in ("DELETE FROM entries WHERE idx = 700", "DELETE FROM entries",
                    "DELETE FROM archives", "DELETE FROM nodes WHERE level = 0",
                    "UPDATE entries SET data = x'00' WHERE idx = 800"):
            r = self.sqlite3_shell(sql)
            self.assertNotEqual(r.returncode, 0, sql)
            self.assertIn("append-only", r.stderr, sql)

        # A kill -9 inside the removal's transaction: all or nothing.
        before = self.g.kernel("immutable_log")
        answers = []
        t = threading.Thread(target=lambda: answers.append(self.api.http(
            "POST", LOG + "/archive", {"before": 800, "remove": True},
            timeout=scaled(30))))
        t.start()
        name = "immutable_log-%020d-%020d.jsonl" % (600, 800)
        self.g.wait_for(lambda: os.path.exists(os.path.join(self.g.data_dir, "archive", name)),
                        timeout=scaled(20), message="the archive was never written")
        # The file is renamed into place just before the removal begins;
        # the removal's transaction then holds the write lock for STALL_MS
        # (an append's holds it a few ms): kill while it is held.
        def write_locked():
            c = sqlite3.connect(os.path.join(self.g.data_dir, "immutable_log.db"), timeout=0)
            try:
                c.execute("BEGIN IMMEDIATE")
                c.rollback()
                return False
            except sqlite3.OperationalError as e:
                return "locked" in str(e)
            finally:
                c.close()

        def held():
            return write_locked() and not threading.Event().wait(0.2) and write_locked()
        self.g.wait_for(held, timeout=scaled(20), message="the removal never held the lock")
        os.kill(before["pid"], signal.SIGKILL)
        t.join(scaled(30))
        self.assertFalse(answers and answers[0][0] == 200, answers)
        self.g.wait_kernel("immutable_log", lambda k: k["state"] == "ready" and
                           k["pid"] != before["pid"], timeout=scaled(30))
        self.assertEqual(self.call("GET", "/entries/600")["index"], 600)
        self.assertEqual(self.call("GET", "/archives")["archived_before"], 600)
        with self.db() as c:
            self.assertEqual(c.execute("SELECT count(*) FROM entries WHERE idx >= 600 AND"
                                       " idx < 800").fetchone()[0], 200)
        v = self.call("GET", "/verify")
        self.assertTrue(v["ok"], v)
        self.assertEqual(v["archived_entries"], 600)
        # ... and an archival of that range then goes through (to 810: the
        # hook stalls only removals ending at 800).
        out = self.call("POST", "/archive", {"before": 810, "remove": True})
        self.assertTrue(out["removed"])
        check_archive(os.path.join(self.g.data_dir, "archive", out["file"]), key)
        self.assertEqual(self.call("GET", "/verify")["archived_entries"], 810)
        self.assertEqual(len(self.call("GET", "/archives")["archives"]), 2)

        # Every archival is an audit event.
        def audited():
            st, _, ev = self.api.http("GET", "/kernels/audit/events?action="
                                      "immutable_log.archive.remove")
            return st == 200 and len(ev.get("events", [])) >= 2 and ev
        self.g.wait_for(audited, timeout=scaled(20), message="no audit event of the archival")


    def test_2_audit(self):
        aud = "/kernels/audit"
        evs = [{"actor": "alice", "action": "doc.read", "resource": "doc/%d" % i,
                "outcome": "success", "details": {"n": i, "ü": "ß"}} for i in range(40)]
        st, _, out = self.api.http("POST", aud + "/events", evs)
        self.assertEqual(st, 201, out)
        ids = out["ids"]

        def logged():
            st, _, page = self.api.http("GET", aud + "/events?actor=alice&limit=1000")
            return st == 200 and all(e["log_index"] is not None for e in page["events"]) \
                and len(page["events"]) == 40 and page
        self.g.wait_for(logged, timeout=scaled(20), message="events never reached the log")

        def bad(body, field, status=400):
            st, _, out = self.api.http("POST", aud + "/archive", body)
            self.assertEqual(st, status, out)
            self.assertIn(field, out["error"]["message"], out)
        bad({}, "before_id")
        bad({"before_id": "7"}, "before_id")
        bad({"before_id": 7, "remove": 1}, "remove")
        bad({"before_ms": 5, "older_than_s": 5}, "before_ms")
        bad({"before_id": 7, "colour": 1}, "colour")

        cut = ids[30]  # events below it: every earlier event, logged
        st, _, out = self.api.http("POST", aud + "/archive", {"before_id": cut, "remove": True},
                                   timeout=scaled(30))
        self.assertEqual(st, 200, out)
        self.assertTrue(out["removed"])
        self.assertEqual(out["last_id"], cut - 1)
        path = os.path.join(self.g.data_dir, "archive", out["file"])
        with open(path, "rb") as f:
            raw = f.read()
        self.assertEqual(hashlib.sha256(raw).hexdigest(), out["sha256"])

        # Independently: the manifest, the log's signature, and for every
        # event its leaf hash (of its canonical JSON) and inclusion proof.
        key = self.call("GET", "/key")["public_key"]
        lines = raw.split(b"\n")[:-1]
        header, manifest = json.loads(lines[0]), json.loads(lines[-1])["manifest"]
        body_len = len(raw) - len(lines[-1]) - 1
        self.assertEqual(manifest["content_sha256"], hashlib.sha256(raw[:body_len]).hexdigest())
        head = header["tree_head"]
        self.assertEqual(head["public_key"], key)
        msg = (b"\x00\x01" + struct.pack(">QQ", head["timestamp"], head["tree_size"]) +
               unhex(head["root_hash"]))
        Ed25519PublicKey.from_public_bytes(base64.b64decode(key)).verify(
            base64.b64decode(head["signature"]), msg)
        events = [json.loads(line) for line in lines[1:-1]]
        self.assertEqual(len(events), out["events"])
        self.assertEqual(manifest["events"], len(events))
        for e in events:
            leaf = leaf_hash(canonical(e["event"]))
            self.assertEqual(unhex(e["leaf_hash"]), leaf)
            self.assertTrue(verify_inclusion(e["log_index"], head["tree_size"], leaf,
                                             [unhex(h) for h in e["audit_path"]],
                                             unhex(head["root_hash"])), e["event"]["id"])
        self.assertIn(ids[0], [e["event"]["id"] for e in events])
        self.assertEqual(events[-1]["event"]["id"], cut - 1)

        # Gone locally; queries over the range say how much was archived.
        st, _, page = self.api.http("GET", aud + "/events?limit=1000")
        self.assertEqual(st, 200)
        self.assertGreaterEqual(page["events"][0]["id"], cut)
        self.assertEqual(page["archived"]["events"], out["events"])
        self.assertEqual(page["archived"]["last_id"], cut - 1)
        st, _, page = self.api.http("GET", aud + "/events?cursor=%d" % (cut - 1))
        self.assertNotIn("archived", page)
        st, _, gone = self.api.http("GET", aud + "/events/%d/proof" % ids[29])
        self.assertEqual(st, 410, gone)
        self.assertIn(out["sha256"], gone["error"]["message"])
        st, _, p = self.api.http("GET", aud + "/events/%d/proof" % ids[30])
        self.assertEqual(st, 200, p)

        # The same range again: nothing left to archive.
        bad({"before_id": cut, "remove": True}, "nothing to archive", status=409)

        def recorded():
            st, _, ev = self.api.http("GET", aud + "/events?action=audit.archive.remove")
            return st == 200 and len(ev["events"]) == 1 and ev
        self.g.wait_for(recorded, timeout=scaled(10), message="the archival is no audit event")


if __name__ == "__main__":
    unittest.main()
