"""Memory tables (/memory) through `grace serve`, as real users with real
tokens: a user sees only their own tables (another's is a 404); a table an
admin shares read-only is readable and not writable by the named user;
injection-shaped names and filters are refused or treated as data;
declared columns are type-checked; full-text q; cursor pagination returns
every row exactly once; limits hold; garbage never gets a 5xx.

Users and tokens: when the shared harness offers `create_user` and `login`
(GraceServer creates an admin before start), those are used; otherwise this
module does the same itself: `grace user add` for an admin before start
(password on stdin), then POST /auth/users and POST /auth/login. Every
request here sends its own Authorization header (or none), so the harness's
default token does not matter."""

import json
import os
import random
import subprocess
import sys
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import GRACE_BIN, GraceServer, GraceTestCase, http_request, scaled  # noqa: E402

PASSWORD = "memory-test-password-1"
CONFIG = {"auth": {"argon2_mem_kib": 19456}}
KERNELS = {"learning": {}}  # one light kernel: this test is about the API process


def q(obj):
    return urllib.parse.quote(json.dumps(obj) if not isinstance(obj, str) else obj, safe="")


class Api:
    """One running server and the users of this test."""

    ADMIN = "memadmin"

    def __init__(self):
        native = hasattr(GraceServer, "create_user") and hasattr(GraceServer, "login")
        self.g = GraceServer(config=CONFIG, kernels=KERNELS, autostart=False)
        self.native = native
        if not native:
            p = subprocess.run([GRACE_BIN, "user", "add", self.ADMIN, "--admin", "--config",
                                self.g.config_path, "--data-dir", self.g.data_dir],
                               input=(PASSWORD + "\n").encode(), capture_output=True,
                               timeout=scaled(60))
            if p.returncode != 0:
                raise AssertionError("grace user add: %r" % p.stderr)
        self.g.start()
        self.tokens = {}
        if native:
            self.g.create_user(self.ADMIN, PASSWORD, role="admin")
        self.tokens[self.ADMIN] = self._login(self.ADMIN)

    def _login(self, name):
        if self.native:
            return self.g.login(name, PASSWORD)
        st, _, out = http_request(self.g.api_port, "POST", "/auth/login",
                                  {"username": name, "password": PASSWORD},
                                  timeout=scaled(20))
        if st != 200:
            raise AssertionError("login %s: %s %r" % (name, st, out))
        return out["token"]

    def user(self, name, role="user"):
        """A token for user `name`, created on first use."""
        if name not in self.tokens:
            if self.native:
                self.g.create_user(name, PASSWORD, role=role)
            else:
                st, out = self.call(self.ADMIN, "POST", "/auth/users",
                                       {"username": name, "password": PASSWORD, "role": role})
                if st != 201:
                    raise AssertionError("create %s: %s %r" % (name, st, out))
            self.tokens[name] = self._login(name)
        return self.tokens[name]

    def call(self, who, method, path, body=None, headers=None, timeout=20):
        """(status, body) as `who` (a user name, or None for no token).
        Every error must have the one error shape."""
        h = dict(headers or {})
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        if who is not None:
            h["Authorization"] = "Bearer " + (self.tokens.get(who) or self.user(who))
        st, hdrs, out = http_request(self.g.api_port, method, path, body, h, scaled(timeout))
        if st >= 400:
            assert isinstance(out, dict) and isinstance(out.get("error"), dict) and \
                out["error"].get("code") and "message" in out["error"], \
                "%s %s: %s without the error shape: %r" % (method, path, st, out)
        return st, out

    def ok(self, who, method, path, body=None, want=(200, 201)):
        st, out = self.call(who, method, path, body)
        if st not in want:
            raise AssertionError("%s %s as %s: %s %r" % (method, path, who, st, out))
        return out

    def close(self):
        self.g.close()


API = None


def setUpModule():
    global API
    API = Api()


def tearDownModule():
    if API:
        API.close()
        # Under ASan/UBSan, what the sanitizers say ends up in the log.
        bad = [line for line in API.g.log().splitlines()
               if "Sanitizer" in line or "runtime error:" in line]
        if bad or API.g.returncode not in (0, None):
            raise AssertionError("grace serve exited %s; sanitizer output: %s"
                                 % (API.g.returncode, "\n".join(bad[:40])))


class MemoryTest(GraceTestCase):
    def setUp(self):
        self.a = API

    def assertStatus(self, want, got, msg=""):
        st, out = got
        wants = want if isinstance(want, (tuple, set, list)) else (want,)
        self.assertIn(st, wants, "%s: %r" % (msg, out))
        return out

    def rows_all(self, who, table, params="", limit=7):
        """Every row through cursor pagination: (ids in page order, pages)."""
        ids, cursor, pages = [], None, 0
        while True:
            path = "/memory/tables/%s/rows?limit=%d%s" % (table, limit, params)
            if cursor:
                path += "&cursor=" + q(cursor)
            out = self.a.ok(who, "GET", path)
            self.assertLessEqual(len(out["rows"]), limit)
            ids += [r["id"] for r in out["rows"]]
            pages += 1
            cursor = out["next_cursor"]
            if not cursor:
                return ids, pages
            self.assertLess(pages, 10000)


class TestAccess(MemoryTest):
    def test_token_required(self):
        for m, p in (("GET", "/memory/tables"), ("POST", "/memory/tables"),
                     ("GET", "/memory/tables/x/rows"), ("DELETE", "/memory/tables/x")):
            st, _ = self.a.call(None, m, p, {"name": "x"} if m == "POST" else None)
            self.assertEqual(st, 401, "%s %s" % (m, p))

    def test_users_do_not_see_each_other(self):
        a = self.a
        a.ok("alice", "POST", "/memory/tables", {"name": "diary", "columns": [
            {"name": "entry", "type": "text"}, {"name": "mood", "type": "string"}]})
        ids = a.ok("alice", "POST", "/memory/tables/diary/rows",
                   [{"entry": "secret plans", "mood": "good"}, {"entry": "more", "mood": "bad"}])["ids"]
        listed = a.ok("bob", "GET", "/memory/tables")["tables"]
        self.assertNotIn(("alice", "diary"), [(t["owner"], t["name"]) for t in listed])
        rid = ids[0]
        for m, p, body in (
                ("GET", "/memory/tables/diary", None),
                ("GET", "/memory/tables/diary?owner=alice", None),
                ("GET", "/memory/tables/diary/rows", None),
                ("GET", "/memory/tables/diary/rows?owner=alice", None),
                ("GET", "/memory/tables/diary/rows?owner=alice&q=secret", None),
                ("GET", "/memory/tables/diary/rows/%d?owner=alice" % rid, None),
                ("GET", "/memory/tables/diary/rows/%d" % rid, None),
                ("POST", "/memory/tables/diary/rows?owner=alice", {"entry": "x"}),
                ("PATCH", "/memory/tables/diary/rows/%d?owner=alice" % rid, {"mood": "x"}),
                ("DELETE", "/memory/tables/diary/rows/%d?owner=alice" % rid, None),
                ("DELETE", "/memory/tables/diary?owner=alice", None)):
            st, out = a.call("bob", m, p, body)
            self.assertEqual(st, 404, "bob %s %s: %r" % (m, p, out))
        # Bob's own "diary" is a different table.
        a.ok("bob", "POST", "/memory/tables", {"name": "diary"})
        self.assertEqual(a.ok("bob", "GET", "/memory/tables/diary/rows")["count"], 0)
        # Alice's rows are untouched.
        self.assertEqual(a.ok("alice", "GET", "/memory/tables/diary")["rows"], 2)

    def test_share_read_only(self):
        a = self.a
        a.ok("carol", "POST", "/memory/tables", {"name": "recipes", "columns": [
            {"name": "title", "type": "text"}, {"name": "minutes", "type": "number"}]})
        rid = a.ok("carol", "POST", "/memory/tables/recipes/rows",
                   [{"title": "pancakes", "minutes": 20}, {"title": "soup", "minutes": 45}])["ids"][0]
        a.user("dave")
        a.user("erin")
        # Only an admin shares.
        st, _ = a.call("carol", "POST", "/memory/tables/recipes/shares",
                       {"owner": "carol", "users": ["dave"]})
        self.assertEqual(st, 403)
        self.assertStatus(400, a.call(a.ADMIN, "POST", "/memory/tables/recipes/shares",
                                      {"owner": "carol", "users": ["nobody_here"]}))
        self.assertStatus(404, a.call(a.ADMIN, "POST", "/memory/tables/nothing/shares",
                                      {"owner": "carol", "users": ["dave"]}))
        out = a.ok(a.ADMIN, "POST", "/memory/tables/recipes/shares",
                   {"owner": "carol", "users": ["dave"]})
        self.assertEqual(out["shared_with"], ["dave"])
        self.assertEqual(a.ok(a.ADMIN, "GET", "/memory/tables/recipes/shares?owner=carol")
                         ["shared_with"], ["dave"])
        self.assertEqual(a.ok("carol", "GET", "/memory/tables/recipes")["shared_with"], ["dave"])

        # Dave reads.
        listed = [t for t in a.ok("dave", "GET", "/memory/tables")["tables"]
                  if t["name"] == "recipes"]
        self.assertEqual(len(listed), 1)
        self.assertEqual(listed[0]["owner"], "carol")
        self.assertIs(listed[0]["shared"], True)
        rows = a.ok("dave", "GET", "/memory/tables/recipes/rows?owner=carol")
        self.assertEqual(rows["count"], 2)
        self.assertIs(rows["shared"], True)
        self.assertEqual(a.ok("dave", "GET", "/memory/tables/recipes/rows?owner=carol&q=soup")
                         ["count"], 1)
        self.assertEqual(a.ok("dave", "GET", "/memory/tables/recipes/rows/%d?owner=carol" % rid)
                         ["data"]["title"], "pancakes")
        self.assertEqual(a.ok("dave", "GET", "/memory/tables/recipes?owner=carol")["name"],
                         "recipes")
        # Dave does not write.
        for m, p, body in (
                ("POST", "/memory/tables/recipes/rows?owner=carol", {"title": "x"}),
                ("PATCH", "/memory/tables/recipes/rows/%d?owner=carol" % rid, {"minutes": 1}),
                ("DELETE", "/memory/tables/recipes/rows/%d?owner=carol" % rid, None),
                ("DELETE", "/memory/tables/recipes?owner=carol", None)):
            st, out = a.call("dave", m, p, body)
            self.assertEqual(st, 403, "dave %s %s: %r" % (m, p, out))
        # Without owner=carol, "recipes" is Dave's own name space: none there.
        self.assertStatus(404, a.call("dave", "GET", "/memory/tables/recipes/rows"))
        # Erin was not named.
        self.assertStatus(404, a.call("erin", "GET", "/memory/tables/recipes/rows?owner=carol"))
        # Nothing changed.
        self.assertEqual(a.ok("carol", "GET", "/memory/tables/recipes")["rows"], 2)
        # Unshared: a 404 again.
        out = a.ok(a.ADMIN, "DELETE", "/memory/tables/recipes/shares?owner=carol&users=dave")
        self.assertEqual(out["shared_with"], [])
        self.assertStatus(404, a.call("dave", "GET", "/memory/tables/recipes/rows?owner=carol"))
        self.assertStatus(403, a.call("carol", "DELETE",
                                      "/memory/tables/recipes/shares?owner=carol&users=dave"))


class TestInput(MemoryTest):
    @classmethod
    def setUpClass(cls):
        a = API
        a.ok("frank", "POST", "/memory/tables", {"name": "things", "columns": [
            {"name": "name", "type": "string"}, {"name": "n", "type": "number"},
            {"name": "ok", "type": "boolean"}, {"name": "meta", "type": "json"},
            {"name": "note", "type": "text"}]})
        a.ok("frank", "POST", "/memory/tables/things/rows", [
            {"name": "' OR 1=1 --", "n": 1, "ok": True, "note": "plain words"},
            {"name": "Robert'); DROP TABLE mem_tables;--", "n": 2, "ok": False,
             "meta": {"$where": "1"}},
            {"name": "normal", "n": 3, "note": "other words"}])

    def test_injection_names(self):
        a = self.a
        for name in ("x; DROP TABLE mem_tables", "a'--", "Robert'); DROP TABLE students;--",
                     "things\" OR 1=1", "../../etc", "mem_tables;", "UPPER", "1abc", "",
                     "a" * 65, "sqlite_master'"):
            self.assertStatus(400, a.call("frank", "POST", "/memory/tables", {"name": name}),
                              name)
            self.assertStatus((400, 404), a.call("frank", "GET", "/memory/tables/%s/rows" %
                                                 urllib.parse.quote(name, safe="")), name)
        self.assertStatus(400, a.call("frank", "POST", "/memory/tables", {
            "name": "cols", "columns": [{"name": "x; DROP TABLE t", "type": "string"}]}))
        self.assertStatus(400, a.call("frank", "POST", "/memory/tables", {
            "name": "cols", "columns": [{"name": "x", "type": "string); DROP TABLE t; --"}]}))
        self.assertEqual(a.ok("frank", "GET", "/memory/tables/things")["rows"], 3)

    def test_injection_filters(self):
        a = self.a
        base = "/memory/tables/things/rows?where="
        for where in ({"x; DROP TABLE mem_tables": 1}, {"name') OR 1=1 --": "a"},
                      {"a": {"$where": "sleep(1)"}}, {"n": {"$gt": 0}}, {"$or": [{"n": 1}]},
                      {"n": {"gt": "1 OR 1=1"}}, {"name": {"in": [{"$ne": 1}]}},
                      "' OR 1=1 --", "1; DROP TABLE mem_tables", "[1]", '{"n":1} --'):
            self.assertStatus(400, a.call("frank", "GET", base + q(where)), where)
        # Values are data: only the row that holds exactly that string.
        out = a.ok("frank", "GET", base + q({"name": "' OR 1=1 --"}))
        self.assertEqual(out["count"], 1)
        self.assertEqual(out["rows"][0]["data"]["n"], 1)
        out = a.ok("frank", "GET", base + q({"name": "x' OR '1'='1"}))
        self.assertEqual(out["count"], 0)
        out = a.ok("frank", "GET", base + q({"name": {"contains": "DROP TABLE"}}))
        self.assertEqual(out["count"], 1)
        out = a.ok("frank", "GET", base + q({"meta": {"exists": True}}))
        self.assertEqual(out["count"], 1)
        for order in ("n; DROP TABLE mem_tables", "n DESC", "(n)", "-meta", "nope"):
            self.assertStatus(400, a.call("frank", "GET", "/memory/tables/things/rows?order=" +
                                          q(order)), order)
        # q is text for FTS5: a bad one is a 400, never a 500; data otherwise.
        for text in ("'; DROP TABLE mem_tables; --", "\" OR 1=1", "a AND", "NEAR(", "*"):
            st, out = a.call("frank", "GET", "/memory/tables/things/rows?q=" + q(text))
            self.assertIn(st, (200, 400), "%s: %r" % (text, out))
        self.assertEqual(a.ok("frank", "GET", "/memory/tables/things")["rows"], 3)
        self.assertEqual(a.ok("frank", "GET", "/memory/tables/things/rows?q=words")["count"], 2)
        # A malformed query string is not "no filter".
        self.assertStatus(400, a.call("frank", "GET", "/memory/tables/things/rows?where=%zz"))

    def test_declared_types(self):
        a = self.a
        p = "/memory/tables/things/rows"
        for row in ({"n": "3"}, {"n": True}, {"ok": "yes"}, {"name": 5}, {"note": ["x"]},
                    {"unknown": 1}, [], "x", 5, None):
            self.assertStatus(400, a.call("frank", "POST", p, row), row)
        # All or nothing.
        self.assertStatus(400, a.call("frank", "POST", p, [{"n": 10}, {"n": "eleven"}]))
        self.assertStatus(400, a.call("frank", "POST", p, []))
        self.assertEqual(a.ok("frank", "GET", "/memory/tables/things")["rows"], 3)
        # Types in filters too.
        self.assertStatus(400, a.call("frank", "GET", p + "?where=" + q({"n": "3"})))
        self.assertStatus(400, a.call("frank", "GET", p + "?where=" + q({"ok": {"gt": 1}})))
        # Nulls are fine; PATCH is re-checked and merges.
        rid = a.ok("frank", "POST", p, {"name": None, "n": 7})["ids"][0]
        self.assertStatus(400, a.call("frank", "PATCH", "%s/%d" % (p, rid), {"n": "x"}))
        self.assertStatus(400, a.call("frank", "PATCH", "%s/%d" % (p, rid), {"bogus": 1}))
        out = a.ok("frank", "PATCH", "%s/%d" % (p, rid), {"ok": True, "name": None})
        self.assertEqual(out["data"], {"n": 7, "ok": True})
        a.ok("frank", "DELETE", "%s/%d" % (p, rid))
        self.assertStatus(404, a.call("frank", "GET", "%s/%d" % (p, rid)))
        # Undeclared: anything object-shaped.
        a.ok("frank", "POST", "/memory/tables", {"name": "loose"})
        a.ok("frank", "POST", "/memory/tables/loose/rows", [{"any": [1, {"x": None}]}, {"b": "c"}])

    def test_limits(self):
        a = self.a
        p = "/memory/tables/things/rows"
        for bad in ("?limit=0", "?limit=1001", "?limit=-1", "?limit=x",
                    "?where=" + q({"n": {"in": list(range(300))}}),
                    "?q=" + q("word " * 200), "?cursor=garbage", "?order=_rank"):
            self.assertStatus(400, a.call("frank", "GET", p + bad), bad)
        self.assertStatus(413, a.call("frank", "POST", p, [{"n": 1}] * 1001))
        self.assertStatus(413, a.call("frank", "POST", p, {"note": "x" * (64 * 1024)}))
        self.assertStatus(400, a.call("frank", "GET", p + "/abc"))
        self.assertStatus(400, a.call("frank", "GET", p + "/0"))
        self.assertStatus(404, a.call("frank", "GET", p + "/999999"))
        self.assertStatus(400, a.call("frank", "POST", "/memory/tables/loose/rows",
                                      json.loads("[" * 40 + "]" * 40)))
        self.assertStatus(400, a.call("frank", "POST", "/memory/tables/loose/rows",
                                      {"deep": json.loads("[" * 40 + "]" * 40)}))
        self.assertStatus(409, a.call("frank", "POST", "/memory/tables", {"name": "things"}))
        self.assertEqual(a.ok("frank", "GET", "/memory/tables/things")["rows"], 3)

    def test_full_text(self):
        a = self.a
        a.ok("gina", "POST", "/memory/tables", {"name": "kb", "columns": [
            {"name": "title", "type": "text"}, {"name": "body", "type": "text"},
            {"name": "lang", "type": "string"}]})
        a.ok("gina", "POST", "/memory/tables/kb/rows", [
            {"title": "Sourdough starter", "body": "Feed the starter with flour", "lang": "en"},
            {"title": "Bread crust", "body": "A hot oven makes the crust", "lang": "en"},
            {"title": "Pain au levain", "body": "levain et farine", "lang": "fr"},
            {"lang": "en"}])
        p = "/memory/tables/kb/rows"
        out = a.ok("gina", "GET", p + "?q=starter")
        self.assertEqual([r["data"]["title"] for r in out["rows"]], ["Sourdough starter"])
        self.assertEqual(out["order"], "_rank")
        self.assertEqual(a.ok("gina", "GET", p + "?q=" + q("crust OR levain"))["count"], 2)
        self.assertEqual(a.ok("gina", "GET", p + "?q=" + q('"hot oven"'))["count"], 1)
        self.assertEqual(a.ok("gina", "GET", p + "?q=oven&where=" + q({"lang": "fr"}))["count"], 0)
        self.assertEqual(a.ok("gina", "GET", p + "?q=bread&order=-_id")["count"], 1)
        self.assertStatus(400, a.call("gina", "GET", p + "?q=" + q('"unterminated')))
        self.assertStatus(400, a.call("gina", "GET", p + "?q=" + q("AND OR")))
        a.ok("gina", "POST", "/memory/tables", {"name": "notext"})
        self.assertStatus(400, a.call("gina", "GET", "/memory/tables/notext/rows?q=x"))
        # The index follows patches.
        rid = out["rows"][0]["id"] if out["rows"] else None
        rid = a.ok("gina", "GET", p + "?q=starter")["rows"][0]["id"]
        a.ok("gina", "PATCH", "%s/%d" % (p, rid), {"title": "Rye", "body": "caraway"})
        self.assertEqual(a.ok("gina", "GET", p + "?q=starter")["count"], 0)
        self.assertEqual(a.ok("gina", "GET", p + "?q=caraway")["count"], 1)


class TestPagination(MemoryTest):
    def test_every_row_once(self):
        a = self.a
        a.ok("hank", "POST", "/memory/tables", {"name": "scores", "columns": [
            {"name": "score", "type": "number"}, {"name": "who", "type": "string"},
            {"name": "text", "type": "text"}]})
        rng = random.Random(5)
        rows = []
        for i in range(250):
            r = {"who": "p%d" % (i % 13), "text": "row %d %s" % (i, rng.choice(["red", "blue"]))}
            if i % 17:
                r["score"] = rng.choice([1, 2, 2.5, 3, 3, 3, 10, -4])
            rows.append(r)
        ids = a.ok("hank", "POST", "/memory/tables/scores/rows", rows)["ids"]
        self.assertEqual(len(set(ids)), 250)
        for params, limit in (("", 7), ("&order=-_id", 13), ("&order=score", 7),
                              ("&order=-score", 9), ("&order=who", 11), ("&order=-who", 250),
                              ("&order=score", 1000)):
            got, pages = self.rows_all("hank", "scores", params, limit)
            self.assertEqual(sorted(got), sorted(ids), params)
            self.assertEqual(len(got), len(set(got)), params)
            if limit < 250:
                self.assertGreater(pages, 1)
        # With a filter and with q.
        want = [i for i, r in zip(ids, rows) if r.get("score", -100) >= 3]
        got, _ = self.rows_all("hank", "scores", "&order=-score&where=" + q({"score": {"gte": 3}}), 6)
        self.assertEqual(sorted(got), sorted(want))
        want = [i for i, r in zip(ids, rows) if "red" in r["text"]]
        got, _ = self.rows_all("hank", "scores", "&q=red", 8)
        self.assertEqual(sorted(got), sorted(want))
        got, _ = self.rows_all("hank", "scores", "&q=red&order=-_id", 8)
        self.assertEqual(got, sorted(want, reverse=True))
        # Rows come in order.
        out = a.ok("hank", "GET", "/memory/tables/scores/rows?order=-score&limit=1000")
        scores = [r["data"].get("score") for r in out["rows"]]
        present = [s for s in scores if s is not None]
        self.assertEqual(present, sorted(present, reverse=True))
        self.assertEqual(scores[len(present):], [None] * (len(scores) - len(present)))
        # A cursor from one order does not fit another.
        c = a.ok("hank", "GET", "/memory/tables/scores/rows?order=score&limit=2")["next_cursor"]
        self.assertStatus(400, a.call("hank", "GET", "/memory/tables/scores/rows?order=-score&cursor="
                                      + q(c)))


class TestFuzz(MemoryTest):
    def test_garbage(self):
        """Random paths, bodies and queries: 4xx or a success, never 5xx,
        and the server stays up."""
        a = self.a
        a.ok("ivan", "POST", "/memory/tables", {"name": "fz", "columns": [
            {"name": "a", "type": "string"}, {"name": "t", "type": "text"}]})
        a.ok("ivan", "POST", "/memory/tables/fz/rows", [{"a": "x", "t": "hello"}])
        rng = random.Random(1234)
        atoms = ["", "a", "fz", "x;", "'", "\"", "%00", "%ff", "..", "rows", "1", "-1",
                 "99999999999999999999", "tables", "shares", "*", "%2F", "\u00e9", "_id",
                 "{", "}", "[", "]", "$where", "NULL", "' OR 1=1 --"]
        ops = ["eq", "ne", "gt", "gte", "lt", "lte", "in", "contains", "exists", "$gt", "like"]
        values = [None, True, False, 0, -1, 1.5, 1e308, "", "x", "' OR 1=1", [], {}, [1, "a"],
                  {"$ne": 1}, "\u0000" if False else "nul", "x" * 2000]

        def rnd_json(depth=0):
            c = rng.random()
            if depth > 3 or c < 0.4:
                return rng.choice(values)
            if c < 0.7:
                return {rng.choice(["a", "t", "_id", "zz", "$x", ""] + ops):
                        rnd_json(depth + 1) for _ in range(rng.randint(0, 3))}
            return [rnd_json(depth + 1) for _ in range(rng.randint(0, 3))]

        fails = []
        for i in range(400):
            kind = rng.random()
            method = rng.choice(["GET", "POST", "PATCH", "DELETE", "PUT"])
            if kind < 0.3:
                path = "/memory/" + "/".join(urllib.parse.quote(rng.choice(atoms), safe="%*")
                                             for _ in range(rng.randint(0, 5)))
            else:
                path = "/memory/tables/fz/rows"
                if rng.random() < 0.3:
                    path += "/" + rng.choice(["1", "2", "abc", "0", "-5", "1e3"])
            params = []
            for name in rng.sample(["where", "order", "limit", "cursor", "q", "owner"],
                                   rng.randint(0, 3)):
                v = rnd_json() if name == "where" else rng.choice(atoms + ["-a", "a", "10"])
                params.append(name + "=" + q(v if isinstance(v, str) else json.dumps(v)))
            if params:
                path += "?" + "&".join(params)
            body = None
            if method in ("POST", "PATCH", "PUT"):
                r = rng.random()
                body = (rnd_json() if r < 0.6 else
                        bytes(rng.randrange(256) for _ in range(rng.randint(0, 200))) if r < 0.8
                        else ('{"a": "' + "x" * rng.randint(0, 100)).encode())
            if method == "DELETE" and "fz/rows/" not in path:
                method = "GET"  # keep the table for the next rounds
            try:
                st, out = a.call("ivan", method, path, body)
            except AssertionError as e:
                fails.append(str(e))
                continue
            if st >= 500:
                fails.append("%s %s %r: %s %r" % (method, path, body, st, out))
        self.assertEqual(fails, [])
        a.g.check_alive()
        self.assertEqual(a.ok("ivan", "GET", "/memory/tables/fz")["name"], "fz")


if __name__ == "__main__":
    unittest.main()
