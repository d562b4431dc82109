"""The librarian's pending documents (docs/librarian.md, "The block index"):
a document written by POST /librarian/documents goes into the index's
pending table and is merged into the blocks later by the writer (past 1024
documents, or after a second without writes). These tests look at the
librarian's file to know which state a document is in, and check:

- read-your-writes: a document posted is found by the next search, with
  tag: filters and the exact total, while it is still pending;
- the block index ranks pending and merged documents exactly as FTS5's
  bm25() does (a quoted word goes to FTS5): the same ids, the same scores,
  before and after the merge;
- a pending document deleted disappears, one replaced (bulk, by source)
  changes;
- past 1024 pending the writer merges while writes go on;
- kill -9 of the librarian between the write and the merge: the
  acknowledged documents are found after the restart, from the pending
  table, and the merge completes later."""

import json
import os
import random
import signal
import sqlite3
import threading
import unittest
import urllib.parse

from harness import GraceServer, GraceTestCase, scaled


def search(g, query, **params):
    params["query"] = query
    st, _, r = g.http("GET", "/librarian/search?" + urllib.parse.urlencode(params),
                      timeout=scaled(10))
    assert st == 200, (query, st, r)
    return r


def pending(g):
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(g.data_dir, "librarian.db"),
                         uri=True, timeout=scaled(30))
    try:
        return db.execute("SELECT count(*) FROM ix_pending").fetchone()[0]
    finally:
        db.close()


def post(g, doc):
    st, _, r = g.http("POST", "/librarian/documents", doc, timeout=scaled(30))
    assert st == 201, (st, r)
    return r["id"]


VOCAB = ["pa%sno" % c for c in "bdfgklmnprstvz"] + ["ko%sri" % c for c in "bdfgklmnprstvz"]


def corpus(seed, n):
    rng = random.Random(seed)
    weights = [1.0 / (r + 1) for r in range(len(VOCAB))]
    return [{"title": " ".join(rng.choices(VOCAB, weights, k=rng.randint(1, 4))),
             "body": " ".join(rng.choices(VOCAB, weights, k=rng.randint(5, 40))),
             "tags": rng.sample(["red", "green", "blue"], rng.randint(0, 2))}
            for _ in range(n)]


def agree_with_fts5(case, g, words):
    """Each word and pair: the block index (plan index) against FTS5 (a
    quoted word is a phrase: plan fts5), top 20, ids and scores."""
    seen = {}
    queries = [(w,) for w in words] + [(a, b) for a, b in zip(words, words[1:])]
    for ws in queries:
        for tag in (None, "red"):
            extra = {"tag": tag} if tag else {}
            a = search(g, " ".join(ws), limit=20, **extra)
            b = search(g, " ".join('"%s"' % w for w in ws), limit=20, **extra)
            case.assertEqual((a["plan"], b["plan"]), ("index", "fts5"))
            case.assertEqual(a["total"], b["total"], ws)
            case.assertEqual([h["id"] for h in a["results"]], [h["id"] for h in b["results"]], ws)
            for x, y in zip(a["results"], b["results"]):
                case.assertAlmostEqual(x["score"], y["score"], delta=1e-9 * abs(y["score"]))
            seen[(ws, tag)] = [(h["id"], h["score"]) for h in a["results"]], a["total"]
    return seen


class LibrarianPending(GraceTestCase):
    def test_pending_documents(self):
        with GraceServer(kernels={"librarian": {}}) as g:
            # Some documents merged (bulk goes straight into the blocks)...
            docs = corpus(7, 120)
            st, _, r = g.http("POST", "/librarian/documents/_bulk",
                              "".join(json.dumps(d) + "\n" for d in docs[:80]),
                              headers={"Content-Type": "application/x-ndjson"},
                              timeout=scaled(60))
            self.assertEqual((st, r["created"]), (200, 80), r)
            # ... and some pending, each found by the very next search.
            saw_pending = 0
            for i, d in enumerate(docs[80:]):
                d = dict(d, body=d["body"] + " zzone%d" % i, tags=d["tags"] + ["t%d" % (i % 3)])
                did = post(g, d)
                saw_pending += pending(g) > 0
                r = search(g, "zzone%d" % i)
                self.assertEqual((r["total"], [h["id"] for h in r["results"]]), (1, [did]))
                r = search(g, "zzone%d" % i, tag="t%d" % (i % 3))
                self.assertEqual(r["total"], 1)
                r = search(g, "zzone%d" % i, tag="t%d" % ((i + 1) % 3))
                self.assertEqual(r["total"], 0)
                self.assertEqual(search(g, "zzone%d tag:t%d" % (i, i % 3))["total"], 1)
            # The merge waits for a second without writes: the writes above
            # came faster, so most checks ran with pending documents.
            self.assertGreater(saw_pending, 20)
            total = search(g, VOCAB[0])["total"]
            self.assertEqual(total, sum(VOCAB[0] in (d["title"] + " " + d["body"]).split()
                                        for d in docs))
            self.assertEqual(search(g, "zzone1 OR zzone2 OR zzone3")["total"], 3)

            # Deleted while pending: gone from every plan.
            gone = post(g, {"title": "Ephemeral", "body": "zzgone paxno", "tags": ["red"]})
            self.assertEqual(search(g, "zzgone")["total"], 1)
            st, _, _ = g.http("DELETE", "/librarian/documents/%d" % gone)
            self.assertEqual(st, 200)
            self.assertEqual(search(g, "zzgone")["total"], 0)
            self.assertEqual(search(g, '"zzgone"')["total"], 0)
            # Replaced while pending (bulk, by source): the new text only.
            src = post(g, {"title": "Versioned", "body": "zzold words", "source": "note://v"})
            self.assertEqual(search(g, "zzold")["total"], 1)
            st, _, r = g.http("POST", "/librarian/documents/_bulk",
                              json.dumps({"title": "Versioned", "body": "zznew words",
                                          "source": "note://v"}) + "\n",
                              headers={"Content-Type": "application/x-ndjson"})
            self.assertEqual((st, r["updated"]), (200, 1), r)
            self.assertEqual(search(g, "zzold")["total"], 0)
            r = search(g, "zznew")
            self.assertEqual((r["total"], r["results"][0]["id"]), (1, src))

            # Pending now (the writes above came within the idle second). The
            # searches below may outlast that second on a slow build, and the
            # merge may start among them: the rankings must agree all the same.
            self.assertGreater(pending(g), 0)
            before = agree_with_fts5(self, g, VOCAB[:6] + VOCAB[14:17])
            # The merge: everything in the blocks, the rankings unchanged.
            g.wait_for(lambda: pending(g) == 0, timeout=scaled(30), message="the merge")
            self.assertEqual(agree_with_fts5(self, g, VOCAB[:6] + VOCAB[14:17]), before)
            for i in range(40):
                self.assertEqual(search(g, "zzone%d" % i)["total"], 1)

    def test_merge_past_the_threshold_while_writes_go_on(self):
        # Writes never pause for the idle second here: the pending count
        # falls while they go on only through the merge at 1024 pending.
        with GraceServer(kernels={"librarian": {}}) as g:
            docs = corpus(11, 1700)

            def put(chunk):
                for d in chunk:
                    post(g, d)
            ts = [threading.Thread(target=put, args=(docs[i::4],)) for i in range(4)]
            [t.start() for t in ts]
            seen, fell = 0, False
            while any(t.is_alive() for t in ts):
                n = pending(g)
                fell = fell or n < seen
                seen = max(seen, n)
            [t.join() for t in ts]
            self.assertTrue(fell, "no merge while writes went on (at most %d pending)" % seen)
            self.assertLessEqual(seen, 1024 + 600)
            self.assertEqual(search(g, VOCAB[0])["total"],
                             sum(VOCAB[0] in (d["title"] + " " + d["body"]).split() for d in docs))

    def test_kill9_between_write_and_merge(self):
        with GraceServer(kernels={"librarian": {}}) as g:
            docs = corpus(9, 60)
            ids = []
            lock = threading.Lock()

            def put(chunk):
                for d in chunk:
                    i = post(g, dict(d, body=d["body"] + " zzkill"))
                    with lock:
                        ids.append(i)
            ts = [threading.Thread(target=put, args=(docs[i::4],)) for i in range(4)]
            [t.start() for t in ts]
            [t.join() for t in ts]
            pid = g.kernel("librarian")["pid"]
            # Inside the idle second: acknowledged, not merged.
            at_kill = pending(g)
            os.kill(pid, signal.SIGKILL)
            self.assertGreater(at_kill, 0)
            g.wait_kernel("librarian", lambda k: k.get("pid") not in (None, pid)
                          and k.get("state") == "ready", timeout=scaled(30))
            r = search(g, "zzkill", limit=100)
            self.assertEqual((r["total"], sorted(h["id"] for h in r["results"])),
                             (60, sorted(ids)))
            tagged = sum("blue" in d["tags"] for d in docs)
            self.assertEqual(search(g, "zzkill", tag="blue")["total"], tagged)
            g.wait_for(lambda: pending(g) == 0, timeout=scaled(30), message="the merge")
            r2 = search(g, "zzkill", limit=100)
            self.assertEqual([(h["id"], h["score"]) for h in r2["results"]],
                             [(h["id"], h["score"]) for h in r["results"]])
            print("pending at the kill: %d of 60" % at_kill)


if __name__ == "__main__":
    unittest.main()
