"""The librarian through the API's /librarian prefix: documents, ranked
search with snippets, tags, delete, malformed queries, ingest inside and
outside the library root, and persistence across kernel and serve restarts."""

import http.client
import os
import signal
import threading
import unittest
import urllib.parse

from harness import GraceServer, ServerClassCase, scaled, spare_kernels

DOCS = [
    # Title hits weigh more than body hits (bm25 weights 10 / 1 / 5).
    {"title": "Zeppelin maintenance", "body": "How to patch the envelope of an airship.",
     "tags": ["airships", "howto"], "source": "manual://zeppelin"},
    {"title": "Hangar notes",
     "body": "The zeppelin came back late; the crew checked the gas cells.",
     "tags": ["airships"]},
    {"title": "Bread", "body": "Flour, water, salt and a long rise overnight.", "tags": ["food"]},
]


def q(**params):
    return "/librarian/search?" + urllib.parse.urlencode(params)


class Librarian(ServerClassCase):
    @classmethod
    def make_server(cls):
        return GraceServer(kernels={"librarian": {}, spare_kernels(1)[0]: {}})

    @classmethod
    def prepare(cls):
        cls.ids = []
        for d in DOCS:
            st, _, body = cls.g.http("POST", "/librarian/documents", d)
            assert st == 201, (st, body)
            cls.ids.append(body["id"])

    def search(self, expect=200, **params):
        st, _, body = self.g.http("GET", q(**params))
        self.assertEqual(st, expect, body)
        return body

    def new_doc(self, **fields):
        st, _, body = self.g.http("POST", "/librarian/documents", fields)
        self.assertEqual(st, 201, body)
        return body["id"]

    def test_01_ids(self):
        self.assertEqual(len(set(self.ids)), 3)
        self.assertEqual(self.ids, sorted(self.ids))
        for i in self.ids:
            self.assertIsInstance(i, int)
            self.assertGreater(i, 0)

    def test_02_search_ranked_with_snippets(self):
        r = self.search(query="zeppelin")
        self.assertEqual(r["query"], "zeppelin")
        self.assertEqual(r["total"], 2)
        self.assertIsInstance(r["query_ms"], (int, float))
        got = [hit["id"] for hit in r["results"]]
        # The title hit ranks first.
        self.assertEqual(got, [self.ids[0], self.ids[1]])
        self.assertGreater(r["results"][0]["score"], r["results"][1]["score"])
        first, second = r["results"]
        self.assertEqual(first["title"], "Zeppelin maintenance")
        self.assertEqual(first["tags"], ["airships", "howto"])
        self.assertEqual(first["source"], "manual://zeppelin")
        self.assertIsNone(second["source"])
        self.assertIn("<mark>zeppelin</mark>", second["snippet"])
        # The snippet is cut from the body: a title-only hit shows its body.
        self.assertNotIn("<mark>", first["snippet"])
        self.assertIn("envelope", first["snippet"])
        # Porter stemming: "envelopes" finds "envelope".
        r = self.search(query="envelopes")
        self.assertEqual([h["id"] for h in r["results"]], [self.ids[0]])
        # limit cuts the page, not the total.
        r = self.search(query="zeppelin", limit=1)
        self.assertEqual(r["total"], 2)
        self.assertEqual(len(r["results"]), 1)
        self.assertEqual(r["results"][0]["id"], self.ids[0])
        # "q" is accepted for "query"; no hit is an empty page.
        r = self.search(q="flour")
        self.assertEqual([h["id"] for h in r["results"]], [self.ids[2]])
        r = self.search(query="nonexistentword")
        self.assertEqual((r["total"], r["results"]), (0, []))

    def test_03_tag_filter(self):
        r = self.search(query="zeppelin", tag="howto")
        self.assertEqual(r["total"], 1)
        self.assertEqual([h["id"] for h in r["results"]], [self.ids[0]])
        r = self.search(query="zeppelin", tag="airships")
        self.assertEqual(r["total"], 2)
        r = self.search(query="zeppelin", tag="food")
        self.assertEqual((r["total"], r["results"]), (0, []))

    def test_04_get(self):
        st, _, d = self.g.http("GET", "/librarian/documents/%d" % self.ids[0])
        self.assertEqual(st, 200)
        self.assertEqual(d["id"], self.ids[0])
        for key in ("title", "body", "tags", "source"):
            self.assertEqual(d[key], DOCS[0][key])
        self.assertIsInstance(d["created_at"], int)
        st, _, body = self.g.http("GET", "/librarian/documents/999999")
        self.assertEqual(st, 404)
        self.assertEqual(body["error"]["code"], "not_found")
        for bad in ("abc", "0", "-1", "1x"):
            st, _, body = self.g.http("GET", "/librarian/documents/" + bad)
            self.assertEqual(st, 400, bad)
            self.assertEqual(body["error"]["code"], "bad_id")

    def test_05_delete(self):
        i = self.new_doc(title="Quokka", body="A small wallaby from Rottnest.")
        self.assertEqual(self.search(query="quokka")["total"], 1)
        st, _, body = self.g.http("DELETE", "/librarian/documents/%d" % i)
        self.assertEqual(st, 200)
        self.assertEqual(body, {"id": i, "deleted": True})
        st, _, _ = self.g.http("GET", "/librarian/documents/%d" % i)
        self.assertEqual(st, 404)
        st, _, body = self.g.http("DELETE", "/librarian/documents/%d" % i)
        self.assertEqual(st, 404)
        self.assertEqual(self.search(query="quokka")["total"], 0)
        # A deleted id is never handed out again.
        j = self.new_doc(title="Quokka again", body="Back.")
        self.assertGreater(j, i)

    def test_06_malformed_queries_are_400(self):
        for bad in ('"unterminated', "AND", "zeppelin AND", "(zeppelin", "nosuchcolumn:x",
                    "NEAR(", "*", "zeppelin OR OR"):
            st, _, body = self.g.http("GET", q(query=bad))
            self.assertEqual(st, 400, "%r -> %s %r" % (bad, st, body))
            self.assertIn("error", body, bad)
            self.assertEqual(body["error"]["code"], "invalid", bad)
        # Still working afterwards.
        self.assertEqual(self.search(query="zeppelin")["total"], 2)

    def test_07_bad_search_parameters(self):
        for path in ("/librarian/search", "/librarian/search?query=", "/librarian/search?tag=x",
                     q(query="   "), q(query="zeppelin", limit=0), q(query="zeppelin", limit=101),
                     q(query="zeppelin", limit="ten"), q(query="zeppelin", limit=-1),
                     q(query="zeppelin", tag=""), q(query="x" * 1100)):
            st, _, body = self.g.http("GET", path)
            self.assertEqual(st, 400, "%s -> %s %r" % (path[:80], st, body))
            self.assertIn(body["error"]["code"], ("invalid", "bad_query"), path)
            self.assertIsInstance(body["error"]["message"], str)

    def test_08_bad_documents(self):
        for doc in ({"body": "no title"}, {"title": "no body"}, {"title": "", "body": "x"},
                    {"title": 5, "body": "x"}, {"title": "t", "body": "x", "tags": "notalist"},
                    {"title": "t", "body": "x", "tags": [1]},
                    {"title": "t", "body": "x", "tags": [""]},
                    {"title": "t", "body": "x", "tags": ["t%d" % i for i in range(33)]},
                    {"title": "t", "body": "x", "source": 3},
                    {"title": "x" * 1025, "body": "x"}):
            st, _, body = self.g.http("POST", "/librarian/documents", doc)
            self.assertEqual(st, 400, "%r -> %s %r" % (str(doc)[:80], st, body))
            self.assertEqual(body["error"]["code"], "invalid")
        # The same source twice is refused, not duplicated.
        st, _, body = self.g.http("POST", "/librarian/documents",
                                  {"title": "t", "body": "x", "source": "manual://zeppelin"})
        self.assertEqual(st, 400, body)
        # Duplicate tags are stored once.
        i = self.new_doc(title="Dup tags", body="x", tags=["a", "a", "b"])
        st, _, d = self.g.http("GET", "/librarian/documents/%d" % i)
        self.assertEqual(d["tags"], ["a", "b"])

    def test_09_ingest(self):
        lib = self.g.library
        notes = os.path.join(lib, "notes")
        os.makedirs(os.path.join(notes, "sub"))
        files = {
            "a.md": "# Marmoset handbook\n\nMarmosets are small monkeys.\n",
            "b.txt": "\n\nCapybara field notes\nCapybaras like water.\n",
            "sub/c.MD": "## Okapi\nThe okapi is related to the giraffe.\n",
            "empty.md": "",
            "binary.txt": b"caf\xe9 latin-1 is not UTF-8\n",
            "huge.txt": b"elephant " * (600 * 1024),  # past the 4 MiB a file may have
            "image.png": b"\x89PNG\r\n",
            "README": "no extension: not ingested\n",
        }
        for name, content in files.items():
            mode = "wb" if isinstance(content, bytes) else "w"
            with open(os.path.join(notes, name), mode) as f:
                f.write(content)
        os.symlink("/etc/hostname", os.path.join(notes, "link.txt"))  # never followed
        st, _, r = self.g.http("POST", "/librarian/ingest", {"path": notes})
        self.assertEqual(st, 200, r)
        self.assertEqual(r["ingested"], 3, r)
        self.assertEqual(r["skipped"], 3, r)  # empty.md, binary.txt and huge.txt
        sources = sorted(d["source"] for d in r["documents"])
        real = os.path.realpath(notes)
        self.assertEqual(sources, sorted(os.path.join(real, n)
                                         for n in ("a.md", "b.txt", "sub/c.MD")))
        by_source = {d["source"]: d["id"] for d in r["documents"]}

        s = self.search(query="marmoset")
        self.assertEqual(s["total"], 1)
        hit = s["results"][0]
        self.assertEqual(hit["title"], "Marmoset handbook")
        self.assertEqual(hit["tags"], ["ingested", "md"])
        self.assertEqual(hit["source"], os.path.join(real, "a.md"))
        s = self.search(query="capybara", tag="txt")
        self.assertEqual(s["total"], 1)
        self.assertEqual(s["results"][0]["title"], "Capybara field notes")
        self.assertEqual(self.search(query="okapi")["total"], 1)
        self.assertEqual(self.search(query="elephant")["total"], 0)

        # Again, after an edit: updated in place, same ids, no duplicates.
        with open(os.path.join(notes, "a.md"), "w") as f:
            f.write("# Marmoset handbook, second edition\nTamarins too.\n")
        st, _, r2 = self.g.http("POST", "/librarian/ingest", {"path": notes})
        self.assertEqual(st, 200, r2)
        self.assertEqual({d["source"]: d["id"] for d in r2["documents"]}, by_source)
        s = self.search(query="marmoset")
        self.assertEqual(s["total"], 1)
        self.assertEqual(s["results"][0]["title"], "Marmoset handbook, second edition")
        self.assertEqual(self.search(query="tamarins")["total"], 1)

        # One file on its own.
        st, _, r3 = self.g.http("POST", "/librarian/ingest",
                                {"path": os.path.join(notes, "b.txt")})
        self.assertEqual(st, 200, r3)
        self.assertEqual(r3["ingested"], 1)

    def test_10_ingest_outside_root_is_403(self):
        os.makedirs(os.path.join(self.g.library, "x"), exist_ok=True)
        os.symlink("/etc", os.path.join(self.g.library, "etc-link"))
        outside = os.path.join(self.g.tmp, "outside")
        os.makedirs(outside)
        with open(os.path.join(outside, "secret.md"), "w") as f:
            f.write("# Secret\n")
        for path in ("/etc", "/etc/hostname", os.path.join(self.g.library, "etc-link"),
                     os.path.join(self.g.library, "x", "..", ".."), outside,
                     self.g.library + "-sibling", "/nonexistent/path"):
            st, _, body = self.g.http("POST", "/librarian/ingest", {"path": path})
            self.assertEqual(st, 403, "%s -> %s %r" % (path, st, body))
            self.assertEqual(body["error"]["code"], "forbidden")
        self.assertEqual(self.search(query="secret")["total"], 0)
        for body in ({}, {"path": ""}, {"path": 5}):
            st, _, b = self.g.http("POST", "/librarian/ingest", body)
            self.assertEqual(st, 400, (body, b))

    def test_11_errors_carry_the_request_id(self):
        st, hdrs, body = self.g.http("GET", "/librarian/documents/999999",
                                     headers={"X-Request-Id": "bb-test-42"})
        self.assertEqual(st, 404)
        self.assertEqual(hdrs["X-Request-Id"], "bb-test-42")
        self.assertEqual(body["error"]["request_id"], "bb-test-42")

    def test_11b_gateway_passes_queries_and_connections_through(self):
        # Percent-encoded UTF-8 in the query string reaches the kernel intact;
        # unicode61 folds the diacritics.
        i = self.new_doc(title="Café crème", body="Une naïve façade, près de Zoë.")
        for word in ("café", "cafe", "naïve", "ZOË", "facade"):
            r = self.search(query=word)
            self.assertIn(i, [h["id"] for h in r["results"]], word)
            self.assertEqual(r["query"], word)
        # Several requests, HEAD among them, on one keep-alive connection.
        c = http.client.HTTPConnection("127.0.0.1", self.g.api_port, timeout=scaled(10))
        try:
            for method, want in (("GET", 200), ("HEAD", 200), ("GET", 200), ("DELETE", 200),
                                 ("GET", 404), ("DELETE", 404)):
                c.request(method, "/librarian/documents/%d" % i, headers=self.g.auth_headers())
                resp = c.getresponse()
                body = resp.read()
                self.assertEqual(resp.status, want, method)
                if method == "HEAD":
                    self.assertEqual(body, b"")
        finally:
            c.close()
        # Many at once: more than the gateway's pool of connections.
        results = []

        def one():
            try:
                st, _, b = self.g.http("GET", q(query="zeppelin"), timeout=scaled(30))
                results.append(st if st != 200 else b["total"])
            except OSError as e:
                results.append(repr(e))
        threads = [threading.Thread(target=one) for _ in range(100)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(results, [2] * 100)

    def test_11c_concurrent_writes_and_kill9(self):
        ids, errors = [], []

        def put(i):
            try:
                st, _, b = self.g.http("POST", "/librarian/documents",
                                       {"title": "Parallel %d" % i, "body": "wombat burrow %d" % i},
                                       timeout=scaled(30))
                (ids if st == 201 else errors).append(b["id"] if st == 201 else (st, b))
            except OSError as e:
                errors.append(repr(e))
        threads = [threading.Thread(target=put, args=(i,)) for i in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(len(set(ids)), 40)
        # A write answered 201 survives a kill -9 right after it.
        last = self.new_doc(title="Last words", body="wombat written just before the kill")
        pid = self.g.kernel("librarian")["pid"]
        os.kill(pid, signal.SIGKILL)
        self.g.wait_kernel("librarian", lambda k: k["state"] == "ready" and k["pid"] != pid)
        st, _, d = self.g.http("GET", "/librarian/documents/%d" % last)
        self.assertEqual((st, d["title"]), (200, "Last words"))
        self.assertEqual(self.search(query="wombat", limit=100)["total"], 41)

    def test_12_restart_keeps_documents(self):
        g = self.g
        old = g.kernel("librarian")["pid"]
        st, _, body = g.http("POST", "/kernel-ports/librarian/restart")
        self.assertEqual(st, 202, body)
        self.assertEqual(body["action"], "restart")
        g.wait_kernel("librarian", lambda k: k["state"] == "ready" and k["pid"] != old)
        st, _, d = g.http("GET", "/librarian/documents/%d" % self.ids[1])
        self.assertEqual(st, 200)
        self.assertEqual(d["title"], DOCS[1]["title"])
        self.assertEqual(self.search(query="zeppelin")["total"], 2)

    def test_13_serve_restart_keeps_documents(self):
        g = self.g
        before = self.search(query="zeppelin OR marmoset OR flour", limit=100)
        g.stop()
        self.assertEqual(g.returncode, 0)
        g.start()
        after = self.search(query="zeppelin OR marmoset OR flour", limit=100)
        self.assertEqual(after["total"], before["total"])
        self.assertEqual([h["id"] for h in after["results"]],
                         [h["id"] for h in before["results"]])
        for i, d in zip(self.ids, DOCS):
            st, _, got = g.http("GET", "/librarian/documents/%d" % i)
            self.assertEqual(st, 200)
            self.assertEqual(got["title"], d["title"])
        # And it still takes new documents, with ids past the old ones.
        j = self.new_doc(title="After restart", body="zeppelin again")
        self.assertGreater(j, max(self.ids))
        self.assertEqual(self.search(query="zeppelin")["total"], 3)


if __name__ == "__main__":
    unittest.main()
