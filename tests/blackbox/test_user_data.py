"""A deleted user's data goes with them (issue 8, finding 7).

Delete alice, create a new alice (by an admin, or through /auth/register):
she sees none of the old tables, rows, shares or chat sessions, and the old
alice's librarian documents are kept but no longer hers. The same when a
crash came between the deletion and its purge (the user row gone, the data
still there: creating the user purges it, and answers once what the main
process keeps is gone), and a purge the journal lists is finished at the
next start."""

import os
import signal
import sqlite3
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import GraceServer, ServerClassCase, http_request, scaled, wait_for  # noqa: E402

PW = "user-data-password-1"
CONFIG = {"auth": {"self_registration": "true"}}


class Client:
    def __init__(self, g):
        self.g = g
        self.tokens = {}

    def login(self, name):
        self.tokens[name] = self.g.login(name, PW)

    def create(self, name, role="user"):
        self.g.create_user(name, PW, role=role)
        self.login(name)

    def call(self, who, method, path, body=None):
        h = {"Authorization": "Bearer " + self.tokens[who]} if who else {}
        st, hdrs, out = http_request(self.g.api_port, method, path, body, h, scaled(20))
        return st, out

    def admin(self, method, path, body=None):
        st, _, out = self.g.http(method, path, body, timeout=scaled(20))
        return st, out

    def settled(self, who, method, path, body=None, want=200):
        """The answer once the purge of an earlier user of this name is
        done: 503 with Retry-After until then (never the old data)."""
        deadline = time.monotonic() + scaled(20)
        while True:
            st, out = self.call(who, method, path, body)
            if st != 503 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert st == want, (method, path, st, out)
        return out


def make_data(c, name):
    """Tables, rows, a chat session with a message and a document of `name`.
    Returns (session id, document id)."""
    c.settled(name, "POST", "/memory/tables", {"name": "diary", "columns": [
        {"name": "entry", "type": "text"}]}, want=201)
    c.settled(name, "POST", "/memory/tables/diary/rows",
              [{"entry": "secret plans of %s" % name}, {"entry": "more"}], want=201)
    c.settled(name, "POST", "/memory/tables", {"name": "notes"}, want=201)
    sid = c.settled(name, "POST", "/chat/sessions", {"title": "private chat"}, want=201)["id"]
    c.settled(name, "POST", "/chat/sessions/%d/messages" % sid,
              {"content": "What are my secret plans?"}, want=200)
    doc = c.settled(name, "POST", "/librarian/documents",
                    {"title": "Notes of %s" % name, "body": "kestrel sightings"}, want=201)["id"]
    return sid, doc


def assert_clean(t, c, name, sid, doc):
    """The new `name` inherits nothing of the old one."""
    tables = c.settled(name, "GET", "/memory/tables")["tables"]
    t.assertEqual(tables, [], "the new %s sees old tables or shares" % name)
    c.settled(name, "GET", "/memory/tables/diary", want=404)
    c.settled(name, "GET", "/memory/tables/diary/rows", want=404)
    c.settled(name, "GET", "/memory/tables/recipes/rows?owner=bob", want=404)
    t.assertEqual(c.settled(name, "GET", "/chat/sessions")["sessions"], [])
    c.settled(name, "GET", "/chat/sessions/%d" % sid, want=404)
    # The document stays (the library is shared), owned by nobody now.
    d = c.settled(name, "GET", "/librarian/documents/%d" % doc)
    t.assertIsNone(d["owner"])
    st, out = c.call(name, "DELETE", "/librarian/documents/%d" % doc)
    t.assertEqual(st, 403, out)
    # The same name can have a table of that name again, empty.
    c.settled(name, "POST", "/memory/tables", {"name": "diary"}, want=201)
    t.assertEqual(c.settled(name, "GET", "/memory/tables/diary/rows")["count"], 0)


class UserData(ServerClassCase):
    @classmethod
    def make_server(cls):
        # The librarian's watchdog and probes are far apart, so that a
        # stopped librarian stays stopped (not restarted by the watchdog or
        # healed after a probe) for test_a_hung_kernel_holds_a_creation_5_s_at_most.
        return GraceServer(config=CONFIG, kernels={"librarian": {
            "watchdog_ms": 60000, "health_interval_ms": 600000}})

    @classmethod
    def prepare(cls):
        cls.c = Client(cls.g)
        cls.c.create("bob")
        cls.c.settled("bob", "POST", "/memory/tables", {"name": "recipes"}, want=201)
        cls.c.settled("bob", "POST", "/memory/tables/recipes/rows", {"t": "soup"}, want=201)

    def share_both_ways(self, name):
        c = self.c
        st, out = c.admin("POST", "/memory/tables/diary/shares", {"owner": name, "users": ["bob"]})
        self.assertEqual(st, 200, out)
        st, out = c.admin("POST", "/memory/tables/recipes/shares",
                          {"owner": "bob", "users": [name]})
        self.assertEqual(st, 200, out)
        self.assertIn((name, "diary"), [(t["owner"], t["name"]) for t in
                                        c.settled("bob", "GET", "/memory/tables")["tables"]])
        self.assertIn(("bob", "recipes"), [(t["owner"], t["name"]) for t in
                                           c.settled(name, "GET", "/memory/tables")["tables"]])

    def test_delete_then_create_by_admin(self):
        c = self.c
        c.create("alice")
        sid, doc = make_data(c, "alice")
        self.share_both_ways("alice")
        # Owners' rights while alice exists: bob may not delete her document.
        st, out = c.call("bob", "DELETE", "/librarian/documents/%d" % doc)
        self.assertEqual((st, out["error"]["code"]), (403, "forbidden"), out)
        st, out = c.admin("DELETE", "/auth/users/alice")
        self.assertEqual(st, 200, out)
        # Bob no longer sees her table shared with him.
        wait_for(lambda: ("alice", "diary") not in
                 [(t["owner"], t["name"]) for t in
                  c.settled("bob", "GET", "/memory/tables")["tables"]],
                 scaled(10), message="alice's share still listed for bob")
        c.create("alice")
        assert_clean(self, c, "alice", sid, doc)
        # Bob's own table and its share to others are his still.
        self.assertEqual(c.settled("bob", "GET", "/memory/tables/recipes/rows")["count"], 1)

    def test_delete_then_register(self):
        c = self.c
        st, out = c.call(None, "POST", "/auth/register", {"username": "carol", "password": PW})
        self.assertEqual(st, 201, out)
        c.login("carol")
        sid, doc = make_data(c, "carol")
        self.share_both_ways("carol")
        st, out = c.admin("DELETE", "/auth/users/carol")
        self.assertEqual(st, 200, out)
        st, out = c.call(None, "POST", "/auth/register", {"username": "carol", "password": PW})
        self.assertEqual(st, 201, out)
        c.login("carol")
        assert_clean(self, c, "carol", sid, doc)

    def test_crash_between_delete_and_purge(self):
        """The user row gone but the purge never run (a crash right after
        the deletion): creating a user of that name purges first."""
        g, c = self.g, self.c
        c.create("dave")
        sid, doc = make_data(c, "dave")
        self.share_both_ways("dave")
        g.stop()
        db = sqlite3.connect(os.path.join(g.data_dir, "grace.db"))
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("DELETE FROM users WHERE name = 'dave'")
        db.commit()
        db.close()
        g.start()
        # The old data is still there: bob still sees dave's share.
        self.assertIn(("dave", "diary"), [(t["owner"], t["name"]) for t in
                                          c.settled("bob", "GET", "/memory/tables")["tables"]])
        c.create("dave")
        # The creation was answered once nothing of the old dave was left in
        # the main process and every kernel had been asked: his memory, chat
        # and library answer at once, never 503.
        for path, key in (("/memory/tables", "tables"), ("/chat/sessions", "sessions")):
            st, out = c.call("dave", "GET", path)
            self.assertEqual((st, out.get(key)), (200, []), out)
        st, out = c.call("dave", "GET", "/librarian/documents/%d" % doc)
        self.assertEqual(st, 200, out)
        self.assertIsNone(out["owner"])
        assert_clean(self, c, "dave", sid, doc)
        self.assertNotIn(("dave", "diary"), [(t["owner"], t["name"]) for t in
                                             c.settled("bob", "GET", "/memory/tables")["tables"]])

    def test_a_hung_kernel_holds_a_creation_5_s_at_most(self):
        """The librarian stopped: the new user is answered after the 5 s
        bound, not the call's 10 s timeout, uses memory at once, and gets
        503 with Retry-After from the library until its part is done."""
        g, c = self.g, self.c
        pid = g.kernel("librarian")["pid"]
        os.kill(pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            c.create("frank")
            took = time.monotonic() - t0
            st, out = c.call("frank", "GET", "/memory/tables")
            self.assertEqual((st, out.get("tables")), (200, []), out)
            st, hdrs, out = http_request(g.api_port, "GET", "/librarian/search?q=kestrel",
                                         headers={"Authorization": "Bearer " + c.tokens["frank"]},
                                         timeout=scaled(20))
        finally:
            os.kill(pid, signal.SIGCONT)
        self.assertGreaterEqual(took, 4.5)
        self.assertLess(took, scaled(8))
        self.assertEqual(st, 503, out)
        self.assertEqual(out["error"]["code"], "busy", out)
        self.assertTrue(hdrs.get("Retry-After"), hdrs)
        c.settled("frank", "GET", "/librarian/search?q=kestrel")

    def test_journal_resumed_at_start(self):
        """A purge in the journal (a crash after it was written) is done at
        the next start, and the user of that name waits for it."""
        g, c = self.g, self.c
        c.create("erin")
        make_data(c, "erin")
        g.stop()
        db = sqlite3.connect(os.path.join(g.data_dir, "grace.db"))
        db.execute("INSERT INTO user_purges (name, since_ms, todo) VALUES ('erin', 1, 7)")
        db.commit()
        db.close()
        g.start()
        c.login("erin")
        self.assertEqual(c.settled("erin", "GET", "/memory/tables")["tables"], [])
        self.assertEqual(c.settled("erin", "GET", "/chat/sessions")["sessions"], [])

        def journal_empty():
            db = sqlite3.connect(os.path.join(g.data_dir, "grace.db"))
            try:
                return db.execute("SELECT count(*) FROM user_purges").fetchone()[0] == 0
            finally:
                db.close()
        wait_for(journal_empty, scaled(20), message="the purge journal was not emptied")


if __name__ == "__main__":
    unittest.main()
