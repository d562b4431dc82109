"""Who owns a librarian document, and what that allows (issue 8, findings 17
and 9).

A document belongs to the user who created or ingested it. Everyone reads
and searches every document (the library is shared: chat cites it);
deleting one, or ingesting its file again, is for its owner or an admin.
The kernel learns the caller from X-Grace-User / X-Grace-Role, which only
the gateway sets (with the internal token): a client's own headers of those
names change nothing. Per-user quotas (documents and bytes) answer 403
quota_exceeded and store nothing; per-ingest limits 413, concurrent
ingests of one user 429."""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import GraceServer, ServerClassCase, http_request, scaled  # noqa: E402

PW = "owners-password-1"
CONFIG = {"librarian": {"documents_per_user": 4, "document_bytes_per_user": 4096,
                        "ingest_files_max": 20, "ingest_bytes_max": 100000}}


class Owners(ServerClassCase):
    @classmethod
    def make_server(cls):
        return GraceServer(config=CONFIG, kernels={"librarian": {}})

    @classmethod
    def prepare(cls):
        cls.tokens = {}
        for name in ("alice", "bob", "quinn"):
            cls.g.create_user(name, PW)
            cls.tokens[name] = cls.g.login(name, PW)

    def call(self, who, method, path, body=None, headers=None):
        h = dict(headers or {})
        if who:
            h["Authorization"] = "Bearer " + self.tokens[who]
        st, _, out = http_request(self.g.api_port, method, path, body, h, scaled(20))
        return st, out

    def admin(self, method, path, body=None):
        st, _, out = self.g.http(method, path, body, timeout=scaled(20))
        return st, out

    def new_doc(self, who, title, body="some text"):
        st, out = self.call(who, "POST", "/librarian/documents", {"title": title, "body": body})
        self.assertEqual(st, 201, out)
        return out["id"]

    def test_bulk_line_replacing_anothers_document_is_refused(self):
        # A bulk line with a source replaces the stored document of that
        # source: changing it, as ingesting its file again is, so its
        # owner's or an admin's to do. Bob's line is refused on its own
        # (403 for that line, the others stored) and alice's text stays.
        h = {"Content-Type": "application/x-ndjson"}

        def bulk(who, *lines):  # who None: the first admin
            body = "".join(json.dumps(line) + "\n" for line in lines)
            if who is None:
                st, _, out = self.g.http("POST", "/librarian/documents/_bulk", body, h,
                                         timeout=scaled(20))
                return st, out
            return self.call(who, "POST", "/librarian/documents/_bulk", body, headers=h)
        mine = {"title": "zzzbulkowned", "body": "alice wrote this", "source": "s://zzzowned"}
        st, r = bulk("alice", mine)
        self.assertEqual((st, r["created"]), (200, 1), r)
        doc = r["items"][0]["id"]
        st, r = bulk("bob", dict(mine, body="bob wrote over it"),
                     {"title": "zzzbulkbob", "body": "bob's own"})
        self.assertEqual((st, r["created"], r["updated"], r["failed"]), (200, 1, 0, 1), r)
        self.assertEqual(r["items"][0], {"line": 1, "status": 403, "error": {
            "code": "forbidden", "message": "the document of this source belongs to another user"}})
        st, d = self.call("bob", "GET", "/librarian/documents/%d" % doc)
        self.assertEqual((d["body"], d["owner"]), ("alice wrote this", "alice"), d)
        # Its owner and an admin may: the owner stays.
        st, r = bulk("alice", dict(mine, body="alice again"))
        self.assertEqual((st, r["updated"], r["items"][0]["id"]), (200, 1, doc), r)
        st, r = bulk(None, dict(mine, body="an admin's fix"))
        self.assertEqual((st, r["updated"], r["items"][0]["id"]), (200, 1, doc), r)
        st, d = self.call("alice", "GET", "/librarian/documents/%d" % doc)
        self.assertEqual((d["body"], d["owner"]), ("an admin's fix", "alice"), d)
        # A document of nobody (an internal load): only an admin changes it.
        nobody = {"title": "zzzbulknobody", "body": "internal", "source": "s://zzznobody"}
        st, _, r = self.g.kernel_http("librarian", "POST", "/documents/_bulk",
                                      json.dumps(nobody) + "\n", h, timeout=scaled(20))
        self.assertEqual((st, r["created"]), (200, 1), r)
        st, r = bulk("bob", dict(nobody, body="bob again"))
        self.assertEqual((r["failed"], r["items"][0]["error"]["message"]),
                         (1, "the document of this source has no owner: only an admin may change it"),
                         r)
        st, r = bulk(None, dict(nobody, body="admin again"))
        self.assertEqual(r["updated"], 1, r)

    def test_owner_user_admin(self):
        a = self.new_doc("alice", "Alice's notes")
        b = self.new_doc("bob", "Bob's notes")
        # Everyone reads and searches; the owner is shown.
        st, d = self.call("bob", "GET", "/librarian/documents/%d" % a)
        self.assertEqual((st, d["owner"]), (200, "alice"))
        st, s = self.call("bob", "GET", "/librarian/search?query=notes")
        self.assertEqual({h["id"]: h["owner"] for h in s["results"]}.get(a), "alice")
        # Another user may not delete it ...
        st, out = self.call("bob", "DELETE", "/librarian/documents/%d" % a)
        self.assertEqual((st, out["error"]["code"]), (403, "forbidden"), out)
        self.assertIn("alice", out["error"]["message"])
        # ... not even by claiming to be alice, or an admin, in headers of his own.
        st, out = self.call("bob", "DELETE", "/librarian/documents/%d" % a,
                            headers={"X-Grace-User": "alice", "X-Grace-Role": "admin"})
        self.assertEqual(st, 403, out)
        self.assertEqual(self.call("bob", "GET", "/librarian/documents/%d" % a)[0], 200)
        # The owner may; an admin may delete anyone's.
        st, out = self.call("alice", "DELETE", "/librarian/documents/%d" % a)
        self.assertEqual((st, out), (200, {"id": a, "deleted": True}))
        st, out = self.admin("DELETE", "/librarian/documents/%d" % b)
        self.assertEqual(st, 200, out)
        self.assertEqual(self.call("bob", "GET", "/librarian/documents/%d" % b)[0], 404)

    def test_kernel_trusts_the_headers_only_with_the_token(self):
        g = self.g
        a = self.new_doc("alice", "Alice's second")
        port = g.kernel_port("librarian")
        spoof = {"X-Grace-User": "alice", "X-Grace-Role": "admin"}
        # Without the internal token: nothing at all.
        st, _, out = http_request(port, "DELETE", "/documents/%d" % a, None, spoof, scaled(10))
        self.assertEqual(st, 401, out)
        st, _, out = http_request(port, "DELETE", "/documents/%d" % a,
                                  None, dict(spoof, **{"X-Grace-Internal-Token": "0" * 64}),
                                  scaled(10))
        self.assertEqual(st, 401, out)
        # With the token but no caller (Grace itself, an operator): it may
        # create (the document has no owner) but not delete: fail closed.
        st, _, out = g.kernel_http("librarian", "DELETE", "/documents/%d" % a)
        self.assertEqual(st, 403, out)
        st, _, out = g.kernel_http("librarian", "POST", "/documents",
                                   {"title": "Nobody's", "body": "x"})
        self.assertEqual(st, 201, out)
        st, _, d = g.kernel_http("librarian", "GET", "/documents/%d" % out["id"])
        self.assertIsNone(d["owner"])
        # A document of nobody: only an admin changes it.
        st, err = self.call("alice", "DELETE", "/librarian/documents/%d" % out["id"])
        self.assertEqual(st, 403, err)
        self.assertEqual(self.admin("DELETE", "/librarian/documents/%d" % out["id"])[0], 200)
        # Releasing a user's documents is for an admin (the user purge).
        st, out = self.call("alice", "DELETE", "/librarian/owners/alice")
        self.assertEqual(st, 403, out)

    def test_reingest_of_anothers_file_fails_for_that_file(self):
        g = self.g
        d = os.path.join(g.library, "shared")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "a.md"), "w") as f:
            f.write("# Shared handbook\nkestrels\n")
        st, r = self.call("quinn", "POST", "/librarian/ingest", {"path": d})
        self.assertEqual(st, 200, r)
        self.assertEqual(r["ingested"], 1)
        doc = r["documents"][0]["id"]
        with open(os.path.join(d, "a.md"), "w") as f:
            f.write("# Defaced by bob\n")
        st, r = self.call("bob", "POST", "/librarian/ingest", {"path": d})
        self.assertEqual(st, 200, r)
        self.assertEqual((r["ingested"], r["failed"]), (0, 1), r)
        self.assertEqual(r["job"]["errors"][0]["state"], "failed")
        self.assertIn("another user", r["job"]["errors"][0]["reason"])
        st, got = self.call("quinn", "GET", "/librarian/documents/%d" % doc)
        self.assertEqual(got["title"], "Shared handbook")
        # Quinn does not see bob's ingest; bob and an admin do.
        jid = r["job"]["id"]
        self.assertEqual(self.call("quinn", "GET", "/librarian/ingest/jobs/%d" % jid)[0], 404)
        self.assertEqual(self.call("bob", "GET", "/librarian/ingest/jobs/%d" % jid)[0], 200)
        self.assertEqual(self.admin("GET", "/librarian/ingest/jobs/%d" % jid)[0], 200)
        mine = [j["id"] for j in self.call("quinn", "GET", "/librarian/ingest/jobs")[1]["jobs"]]
        self.assertNotIn(jid, mine)
        # The owner ingests it again: updated in place, same id.
        st, r = self.call("quinn", "POST", "/librarian/ingest", {"path": d})
        self.assertEqual((st, r["ingested"], r["documents"][0]["id"]), (200, 1, doc), r)

    def test_quotas_and_limits(self):
        g = self.g
        # Four documents fit; the fifth is refused, naming the quota.
        ids = [self.new_doc("quinn", "zzzquota %d" % i) for i in range(2)]
        # (quinn may own one from the re-ingest test: count what fits)
        n = 2
        while True:
            st, out = self.call("quinn", "POST", "/librarian/documents",
                                {"title": "zzzquota %d" % n, "body": "x"})
            if st != 201:
                break
            ids.append(out["id"])
            n += 1
            self.assertLess(n, 10, "the documents quota never came")
        self.assertEqual((st, out["error"]["code"]), (403, "quota_exceeded"), out)
        self.assertIn("at most 4 documents per user", out["error"]["message"])
        st, s = self.call("quinn", "GET", "/librarian/search?query=zzzquota&limit=100")
        self.assertEqual(s["total"], len(ids))
        for i in ids:
            self.assertEqual(self.call("quinn", "DELETE", "/librarian/documents/%d" % i)[0], 200)
        # Bytes: a body past 4096 bytes is refused, nothing stored.
        st, out = self.call("alice", "POST", "/librarian/documents",
                            {"title": "big zzzbytes", "body": "y" * 5000})
        self.assertEqual((st, out["error"]["code"]), (403, "quota_exceeded"), out)
        self.assertIn("4096 bytes", out["error"]["message"])
        # An ingest that would pass the quota is refused whole: 403, nothing stored.
        d = os.path.join(g.library, "toomuch")
        os.makedirs(d, exist_ok=True)
        for i in range(3):
            with open(os.path.join(d, "f%d.txt" % i), "w") as f:
                f.write("zzzingestquota %d\n" % i + "w" * 2000)
        st, out = self.call("alice", "POST", "/librarian/ingest", {"path": d})
        self.assertEqual((st, out["error"]["code"]), (403, "quota_exceeded"), out)
        st, s = self.call("alice", "GET", "/librarian/search?query=zzzingestquota")
        self.assertEqual(s["total"], 0)
        # Per-ingest limits: files and bytes (413).
        many = os.path.join(g.library, "many")
        os.makedirs(many, exist_ok=True)
        for i in range(21):
            with open(os.path.join(many, "m%02d.md" % i), "w") as f:
                f.write("# m\n")
        st, out = self.admin("POST", "/librarian/ingest", {"path": many})
        self.assertEqual((st, out["error"]["code"]), (413, "too_large"), out)
        self.assertIn("20 files", out["error"]["message"])
        heavy = os.path.join(g.library, "heavy")
        os.makedirs(heavy, exist_ok=True)
        for i in range(2):
            with open(os.path.join(heavy, "h%d.txt" % i), "w") as f:
                f.write("h" * 60000)
        st, out = self.admin("POST", "/librarian/ingest", {"path": heavy})
        self.assertEqual((st, out["error"]["code"]), (413, "too_large"), out)
        # A refused ingest is recorded as failed, with why.
        st, lst = self.admin("GET", "/librarian/ingest/jobs?limit=1")
        self.assertEqual(lst["jobs"][0]["state"], "failed")
        self.assertIn("bytes", lst["jobs"][0]["error"])


if __name__ == "__main__":
    unittest.main()
