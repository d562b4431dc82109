"""Chat through the real `grace serve`: sessions and their owners, answers
without a model (retrieval from the librarian, cited, saying no model
answered), answers from a model server (our own OpenAI-compatible test
server, model_server.py), streaming as Server-Sent Events, the fallback when
the model hangs, fails or stops half-way, a librarian that is down, and bad
input."""

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from harness import GRACE_BIN, GraceServer, GraceTestCase, http_request, scaled

HERE = os.path.dirname(os.path.abspath(__file__))
ADMIN, ADMIN_PW = "chat_admin", "admin-password-for-chat-9"
ALICE, BOB = "alice", "bob"
USER_PW = "user-password-for-chat-9"
MODEL_TEXT = ("The envelope is patched with doped fabric [1]. "
              "Clean the tear, glue the patch, and let it cure overnight.")
MODEL_KEY = "sk-test-key-0123456789"
MODEL_TIMEOUT_MS = 1500
DOC = {"title": "Zeppelin maintenance",
       "body": "How to patch the envelope of an airship: clean the tear, glue a patch of "
               "doped fabric over it and let it cure overnight.",
       "tags": ["airships"]}
OTHER_DOC = {"title": "Bread", "body": "Flour, water, salt and a long rise overnight."}
QUESTION = "How do I patch the zeppelin envelope?"


# --------------------------------------------------------------------------
# Users and requests


def add_admin(g):
    """The first admin, written into the data directory before the start."""
    p = subprocess.run([GRACE_BIN, "user", "add", ADMIN, "--admin", "--config", g.config_path,
                        "--data-dir", g.data_dir], input=ADMIN_PW + "\n", text=True,
                       capture_output=True, env=g.env(), timeout=scaled(60))
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)


def call(g, token, method, path, body=None, headers=None, timeout=None):
    h = dict(headers or {})
    if token:
        h["Authorization"] = "Bearer " + token
    return http_request(g.api_port, method, path, body, h, timeout or scaled(20))


def login(g, name, password):
    st, _, body = call(g, None, "POST", "/auth/login", {"username": name, "password": password})
    assert st == 200, (st, body)
    return body["token"]


def create_user(g, admin_token, name, password):
    st, _, body = call(g, admin_token, "POST", "/auth/users",
                       {"username": name, "password": password, "role": "user"})
    assert st == 201, (st, body)
    return login(g, name, password)


def sse(g, token, path, body, timeout=None):
    """POSTs and reads a Server-Sent Events answer to its end: (status,
    headers, [(event, data)]) with data parsed as JSON."""
    conn = http.client.HTTPConnection("127.0.0.1", g.api_port, timeout=timeout or scaled(20))
    try:
        conn.request("POST", path, body=json.dumps(body),
                     headers={"Authorization": "Bearer " + token,
                              "Content-Type": "application/json"})
        resp = conn.getresponse()
        if resp.status != 200 or "text/event-stream" not in resp.getheader("Content-Type", ""):
            return resp.status, resp.headers, resp.read()
        events, name, data = [], None, []
        while True:
            line = resp.readline()
            if not line:
                break
            line = line.decode().rstrip("\r\n")
            if line == "":
                if data:
                    events.append((name or "message", json.loads("\n".join(data))))
                name, data = None, []
            elif line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
        return resp.status, resp.headers, events
    finally:
        conn.close()


def new_session(g, token, title=None):
    st, _, body = call(g, token, "POST", "/chat/sessions",
                       {"title": title} if title is not None else None)
    assert st == 201, (st, body)
    return body["id"]


def ask(g, token, sid, content, expect=200):
    st, _, body = call(g, token, "POST", "/chat/sessions/%d/messages" % sid,
                       {"content": content})
    assert st == expect, (st, body)
    return body


def start_server(model=None, env=None, sections=None):
    """`sections`: further config sections, {section: {key: value}}."""
    config = {"auth": {"argon2_mem_kib": 19456}}
    config.update(sections or {})
    if model:
        config["model"] = model
    g = GraceServer(kernels={"librarian": {}}, config=config, autostart=False, env=env)
    try:
        add_admin(g)
        g.start()
        admin = login(g, ADMIN, ADMIN_PW)
        tokens = {ADMIN: admin}
        for name in (ALICE, BOB):
            tokens[name] = create_user(g, admin, name, USER_PW)
        # Memory tables: alice's note matches the question, bob's must never show.
        for name, text in ((ALICE, "Hangar 7 keeps the zeppelin envelope patches in locker 4711."),
                           (BOB, "Bob's zeppelin envelope secret is 9999.")):
            st, _, body = call(g, tokens[name], "POST", "/memory/tables",
                               {"name": "notes", "columns": [{"name": "text", "type": "text"}]})
            assert st == 201, (st, body)
            st, _, body = call(g, tokens[name], "POST", "/memory/tables/notes/rows",
                               [{"text": text}, {"text": "Nothing about airships here."}])
            assert st in (200, 201), (st, body)
        doc_ids = []
        for d in (DOC, OTHER_DOC):
            st, _, body = call(g, tokens[ALICE], "POST", "/librarian/documents", d)
            assert st == 201, (st, body)
            doc_ids.append(body["id"])
    except BaseException:
        g.dump_log()
        g.close()
        raise
    return g, tokens, doc_ids


class ModelServer:
    """model_server.py on a loopback port the system picks (never 8000-8149)."""

    def __init__(self):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "model_server.py"), "--port", "0",
             "--text", MODEL_TEXT, "--chunks", "5", "--delay-ms", "30"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            self.stop()
            raise RuntimeError("model server did not start: %r %s"
                               % (line, self.proc.stderr.read()))
        self.port = int(line.split()[-1])
        assert not 8000 <= self.port <= 8149
        self.url = "http://127.0.0.1:%d/v1" % self.port

    def http(self, method, path, body=None):
        st, _, b = http_request(self.port, method, path, body, timeout=10)
        assert st == 200, (st, b)
        return b

    def control(self, **kw):
        self.http("POST", "/_control", kw)

    def requests(self):
        return self.http("GET", "/_requests")["requests"]

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            if f:
                f.close()


def check_error(test, status, body, want_status):
    test.assertEqual(status, want_status, body)
    test.assertIsInstance(body, dict, body)
    test.assertIsInstance(body.get("error", {}).get("code"), str, body)
    test.assertIsInstance(body["error"].get("message"), str, body)


# --------------------------------------------------------------------------


class ChatWithoutModel(GraceTestCase):
    @classmethod
    def setUpClass(cls):
        cls.g, cls.tok, cls.docs = start_server()

    @classmethod
    def tearDownClass(cls):
        cls.g.close()

    def test_answer_cites_the_library(self):
        a = self.tok[ALICE]
        sid = new_session(self.g, a)
        msg = ask(self.g, a, sid, QUESTION)
        self.assertEqual(msg["role"], "assistant")
        self.assertEqual(msg["session_id"], sid)
        self.assertFalse(msg["model_answered"])
        self.assertIsNone(msg["model"])
        self.assertIn("No model answered", msg["content"])
        self.assertIn("no model is configured", msg["content"])
        self.assertIn("[1] Zeppelin maintenance", msg["content"])
        self.assertIn("envelope of an airship", msg["content"])
        self.assertNotIn("<mark>", msg["content"])
        self.assertIn("No model answered", msg["notice"])
        cites = msg["citations"]
        self.assertGreaterEqual(len(cites), 1)
        self.assertEqual(cites[0]["n"], 1)
        self.assertEqual(cites[0]["id"], self.docs[0])
        self.assertEqual(cites[0]["title"], "Zeppelin maintenance")
        self.assertEqual(cites[0]["kind"], "document")
        # Bread has nothing to do with it.
        self.assertNotIn(self.docs[1], [c.get("id") for c in cites if c["kind"] == "document"])

        # Stored, with its citations; the question named the session.
        st, _, s = call(self.g, a, "GET", "/chat/sessions/%d" % sid)
        self.assertEqual(st, 200, s)
        self.assertEqual(s["title"], QUESTION.rstrip())
        self.assertEqual(s["message_count"], 2)
        self.assertFalse(s["busy"])
        self.assertEqual([m["role"] for m in s["messages"]], ["user", "assistant"])
        self.assertEqual(s["messages"][0]["content"], QUESTION)
        self.assertEqual(s["messages"][1]["id"], msg["id"])
        self.assertEqual(s["messages"][1]["content"], msg["content"])
        self.assertEqual(s["messages"][1]["citations"], msg["citations"])

    def test_memory_rows_are_sources(self):
        a = self.tok[ALICE]
        msg = ask(self.g, a, new_session(self.g, a), QUESTION)
        mem = [c for c in msg["citations"] if c["kind"] == "memory"]
        self.assertEqual(len(mem), 1, msg["citations"])
        self.assertEqual(mem[0]["table"], "notes")
        self.assertIn("4711", mem[0]["excerpt"])
        self.assertIsInstance(mem[0]["row_id"], int)
        self.assertNotIn("owner", mem[0])
        # Numbered after the library's passages, and cited in the answer.
        self.assertEqual(mem[0]["n"], len(msg["citations"]))
        self.assertIn("From your memory tables:", msg["content"])
        self.assertIn("[%d] memory table notes" % mem[0]["n"], msg["content"])
        self.assertNotIn("9999", json.dumps(msg))
        # Bob sees his own note, never alice's.
        b = self.tok[BOB]
        msg = ask(self.g, b, new_session(self.g, b), QUESTION)
        text = json.dumps(msg)
        self.assertIn("9999", text)
        self.assertNotIn("4711", text)

    def test_nothing_matches(self):
        a = self.tok[ALICE]
        sid = new_session(self.g, a, "empty")
        msg = ask(self.g, a, sid, "quasar telemetry xylophone")
        self.assertEqual(msg["citations"], [])
        self.assertIn("No model answered", msg["content"])
        self.assertIn("nothing in the library", msg["content"])

    def test_stream_without_model(self):
        a = self.tok[ALICE]
        sid = new_session(self.g, a)
        st, hdrs, events = sse(self.g, a, "/chat/sessions/%d/messages?stream=1" % sid,
                               {"content": QUESTION})
        self.assertEqual(st, 200, events)
        names = [e for e, _ in events]
        self.assertGreaterEqual(names.count("delta"), 2, events)
        self.assertEqual(names[-1], "done", events)
        self.assertEqual(set(names[:-1]), {"delta"})
        done = events[-1][1]
        self.assertTrue(done["done"])
        text = "".join(d["content"] for e, d in events if e == "delta")
        self.assertEqual(text, done["message"]["content"])
        self.assertIn("[1] Zeppelin maintenance", text)
        self.assertEqual(done["message"]["citations"][0]["id"], self.docs[0])
        st, _, s = call(self.g, a, "GET", "/chat/sessions/%d" % sid)
        self.assertEqual(s["messages"][-1]["content"], text)

    def test_sessions_belong_to_their_user(self):
        a, b, admin = self.tok[ALICE], self.tok[BOB], self.tok[ADMIN]
        sid = new_session(self.g, a, "alice's secrets")
        ask(self.g, a, sid, QUESTION)
        for tok in (b, admin):
            st, _, body = call(self.g, tok, "GET", "/chat/sessions/%d" % sid)
            check_error(self, st, body, 404)
            st, _, body = call(self.g, tok, "POST", "/chat/sessions/%d/messages" % sid,
                               {"content": "hello"})
            check_error(self, st, body, 404)
            st, _, body = call(self.g, tok, "DELETE", "/chat/sessions/%d" % sid)
            check_error(self, st, body, 404)
            st, _, body = call(self.g, tok, "GET", "/chat/sessions")
            self.assertEqual(st, 200, body)
            self.assertNotIn(sid, [s["id"] for s in body["sessions"]])
        st, _, body = call(self.g, a, "GET", "/chat/sessions")
        self.assertIn(sid, [s["id"] for s in body["sessions"]])
        # Still whole for its owner.
        st, _, body = call(self.g, a, "GET", "/chat/sessions/%d" % sid)
        self.assertEqual(st, 200, body)
        self.assertEqual(body["message_count"], 2)
        bsid = new_session(self.g, b)
        st, _, body = call(self.g, b, "GET", "/chat/sessions")
        self.assertEqual(body["sessions"][0]["id"], bsid)  # most recent first

    def test_delete(self):
        a = self.tok[ALICE]
        sid = new_session(self.g, a, "to go")
        ask(self.g, a, sid, QUESTION)
        st, _, body = call(self.g, a, "DELETE", "/chat/sessions/%d" % sid)
        self.assertEqual(st, 200, body)
        self.assertEqual(body, {"id": sid, "deleted": True})
        st, _, body = call(self.g, a, "GET", "/chat/sessions/%d" % sid)
        check_error(self, st, body, 404)
        st, _, body = call(self.g, a, "DELETE", "/chat/sessions/%d" % sid)
        check_error(self, st, body, 404)
        # A new session never reuses the id.
        self.assertGreater(new_session(self.g, a), sid)

    def test_bad_input(self):
        a = self.tok[ALICE]
        sid = new_session(self.g, a)
        path = "/chat/sessions/%d/messages" % sid
        st, hdrs, body = call(self.g, None, "GET", "/chat/sessions")
        check_error(self, st, body, 401)
        st, _, body = call(self.g, None, "POST", path, {"content": "hi"})
        check_error(self, st, body, 401)
        st, _, body = call(self.g, "not-a-token", "POST", "/chat/sessions", {})
        check_error(self, st, body, 401)
        cases = [
            ({}, 400),
            ({"content": 5}, 400),
            ({"content": None}, 400),
            ({"content": ["a"]}, 400),
            ({"content": ""}, 400),
            ({"content": " \n\t "}, 400),
            ({"content": "a\u0000b"}, 400),
            ({"content": "x" * 16385}, 413),
        ]
        for body_in, want in cases:
            st, _, body = call(self.g, a, "POST", path, body_in)
            check_error(self, st, body, want)
        for raw in ("{", "[1,2]", "\"text\"", ""):
            st, _, body = call(self.g, a, "POST", path, raw,
                               headers={"Content-Type": "application/json"})
            check_error(self, st, body, 400)
        # Exactly the limit is fine.
        ask(self.g, a, sid, "zeppelin " * (16384 // 9))
        for bad in ("abc", "0", "-1", "01", "1.5", "99999999999999999999", "999999"):
            st, _, body = call(self.g, a, "GET", "/chat/sessions/" + bad)
            check_error(self, st, body, 404)
            st, _, body = call(self.g, a, "POST", "/chat/sessions/%s/messages" % bad,
                               {"content": "hi"})
            check_error(self, st, body, 404)
        for title in (5, ["t"], "t" * 201, {"a": 1}):
            st, _, body = call(self.g, a, "POST", "/chat/sessions", {"title": title})
            check_error(self, st, body, 400)
        st, _, body = call(self.g, a, "POST", "/chat/sessions", "[]",
                           headers={"Content-Type": "application/json"})
        check_error(self, st, body, 400)
        st, _, body = call(self.g, a, "POST", path + "?stream=maybe", {"content": "hi"})
        check_error(self, st, body, 400)
        for q in ("0", "x", "100000"):
            st, _, body = call(self.g, a, "GET", "/chat/sessions?limit=" + q)
            check_error(self, st, body, 400)
        st, _, body = call(self.g, a, "PUT", "/chat/sessions/%d" % sid, {"title": "x"})
        check_error(self, st, body, 405)
        st, _, body = call(self.g, a, "GET", path)
        check_error(self, st, body, 405)
        # Injection-shaped text is only text.
        msg = ask(self.g, a, sid, "zeppelin\" OR 1=1; DROP TABLE messages; -- NEAR(* ^")
        self.assertEqual(msg["citations"][0]["id"], self.docs[0])
        st, _, s = call(self.g, a, "GET", "/chat/sessions/%d" % sid)
        self.assertEqual(st, 200, s)
        self.assertEqual(s["message_count"], 4)
        # A title may be given, or be null.
        st, _, body = call(self.g, a, "POST", "/chat/sessions", {"title": "Ünïcode ✓"})
        self.assertEqual((st, body["title"]), (201, "Ünïcode ✓"))
        st, _, body = call(self.g, a, "POST", "/chat/sessions", {"title": None})
        self.assertEqual((st, body["title"]), (201, None))

    def test_z_librarian_down(self):
        """Last in the class: it stops the librarian, then starts it again."""
        a, admin = self.tok[ALICE], self.tok[ADMIN]
        st, _, body = call(self.g, admin, "POST", "/kernel-ports/librarian/stop")
        self.assertIn(st, (200, 202), body)
        self.g.wait_for(lambda: call(self.g, admin, "GET", "/kernel-ports/librarian")[2]
                        .get("state") == "stopped", message="librarian stopped")
        sid = new_session(self.g, a)
        msg = ask(self.g, a, sid, QUESTION)
        # No passages; the memory tables still answer.
        self.assertEqual([c["kind"] for c in msg["citations"]], ["memory"])
        self.assertIn("The library could not be searched", msg["content"])
        self.assertIn("The library could not be searched", msg["notice"])
        st, _, body = call(self.g, admin, "POST", "/kernel-ports/librarian/start")
        self.assertIn(st, (200, 202), body)
        self.g.wait_for(lambda: call(self.g, admin, "GET", "/kernel-ports/librarian")[2]
                        .get("state") == "ready", message="librarian ready again")
        msg = ask(self.g, a, sid, QUESTION)
        self.assertEqual(msg["citations"][0]["id"], self.docs[0])
        self.assertNotIn("library could not be searched", msg["notice"])


class ChatWithModel(GraceTestCase):
    @classmethod
    def setUpClass(cls):
        cls.model = ModelServer()
        cls.keydir = tempfile.mkdtemp(prefix="grace-chat-key-")
        key_file = os.path.join(cls.keydir, "key")
        with open(key_file, "w") as f:
            f.write("  %s  \n" % MODEL_KEY)
        os.chmod(key_file, 0o600)
        try:
            # The file names a dead port; GRACE_MODEL_URL overrides it.
            cls.g, cls.tok, cls.docs = start_server(
                model={"base_url": "http://127.0.0.1:9/v1", "model": "test-model",
                       "key_file": key_file, "timeout_ms": MODEL_TIMEOUT_MS},
                env={"GRACE_MODEL_URL": cls.model.url})
        except BaseException:
            cls.model.stop()
            shutil.rmtree(cls.keydir, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.g.close()
        finally:
            cls.model.stop()
            shutil.rmtree(cls.keydir, ignore_errors=True)

    def setUp(self):
        self.model.control(mode="ok", text=MODEL_TEXT)
        self.model.http("POST", "/_reset")

    def test_answer_from_the_model(self):
        a = self.tok[ALICE]
        sid = new_session(self.g, a)
        msg = ask(self.g, a, sid, QUESTION)
        self.assertEqual(msg["content"], MODEL_TEXT)
        self.assertTrue(msg["model_answered"])
        self.assertEqual(msg["model"], "test-model")
        self.assertIsNone(msg["notice"])
        self.assertEqual(msg["citations"][0]["id"], self.docs[0])
        reqs = self.model.requests()
        self.assertEqual(len(reqs), 1)
        self.assertEqual(reqs[0]["authorization"], "Bearer " + MODEL_KEY)
        body = reqs[0]["body"]
        self.assertEqual(body["model"], "test-model")
        self.assertFalse(body["stream"])
        msgs = body["messages"]
        self.assertEqual(msgs[0]["role"], "system")
        self.assertIn("[1] Zeppelin maintenance", msgs[0]["content"])
        self.assertIn("memory table notes", msgs[0]["content"])
        self.assertIn("locker 4711", msgs[0]["content"])
        self.assertNotIn("9999", msgs[0]["content"])
        self.assertEqual(msgs[-1], {"role": "user", "content": QUESTION})
        self.assertEqual(len(msgs), 2)
        # The next question sees the turn before it.
        ask(self.g, a, sid, "And how long must it cure?")
        msgs = self.model.requests()[-1]["body"]["messages"]
        self.assertEqual([m["role"] for m in msgs], ["system", "user", "assistant", "user"])
        self.assertEqual(msgs[1]["content"], QUESTION)
        self.assertEqual(msgs[2]["content"], MODEL_TEXT)
        st, _, s = call(self.g, a, "GET", "/chat/sessions/%d" % sid)
        self.assertEqual(s["message_count"], 4)
        self.assertTrue(all(m["model_answered"] for m in s["messages"]
                            if m["role"] == "assistant"))
        st, _, s2 = call(self.g, a, "GET", "/chat/sessions/%d?limit=2" % sid)
        self.assertEqual(s2["messages"], s["messages"][2:])
        st, _, body = call(self.g, a, "GET", "/chat/sessions/%d?limit=0" % sid)
        check_error(self, st, body, 400)

    def test_stream_from_the_model(self):
        a = self.tok[ALICE]
        sid = new_session(self.g, a)
        st, hdrs, events = sse(self.g, a, "/chat/sessions/%d/messages?stream=1" % sid,
                               {"content": QUESTION})
        self.assertEqual(st, 200, events)
        self.assertEqual(hdrs.get("Transfer-Encoding"), "chunked")
        deltas = [d["content"] for e, d in events if e == "delta"]
        self.assertGreaterEqual(len(deltas), 3, events)
        self.assertEqual("".join(deltas), MODEL_TEXT)
        self.assertEqual(events[-1][0], "done")
        done = events[-1][1]
        self.assertTrue(done["done"])
        self.assertEqual(done["message"]["content"], MODEL_TEXT)
        self.assertTrue(done["message"]["model_answered"])
        self.assertEqual(done["message"]["citations"][0]["title"], "Zeppelin maintenance")
        self.assertTrue(self.model.requests()[-1]["body"]["stream"])

    def test_model_hangs_then_retrieval(self):
        self.model.control(mode="hang")
        a = self.tok[ALICE]
        sid = new_session(self.g, a)
        result = {}

        def slow_ask():
            t0 = time.monotonic()
            result["msg"] = ask(self.g, a, sid, QUESTION)
            result["elapsed"] = time.monotonic() - t0

        th = threading.Thread(target=slow_ask)
        th.start()
        try:
            # The loop is not blocked while the model hangs; the session is busy.
            time.sleep(0.3)
            t0 = time.monotonic()
            st, _, h = call(self.g, None, "GET", "/health")
            self.assertEqual(st, 200)
            self.assertLess(time.monotonic() - t0, scaled(0.5))
            st, _, body = call(self.g, a, "POST", "/chat/sessions/%d/messages" % sid,
                               {"content": "again"})
            check_error(self, st, body, 409)
            st, _, body = call(self.g, a, "DELETE", "/chat/sessions/%d" % sid)
            check_error(self, st, body, 409)
            st, _, s = call(self.g, a, "GET", "/chat/sessions/%d" % sid)
            self.assertTrue(s["busy"])
        finally:
            th.join(scaled(30))
        msg = result["msg"]
        self.assertGreaterEqual(result["elapsed"], MODEL_TIMEOUT_MS / 1000.0 - 0.35)
        self.assertLess(result["elapsed"], MODEL_TIMEOUT_MS / 1000.0 + scaled(2))
        self.assertFalse(msg["model_answered"])
        self.assertEqual(msg["model"], "test-model")
        self.assertIn("No model answered", msg["content"])
        self.assertIn("did not answer within %d ms" % MODEL_TIMEOUT_MS, msg["content"])
        self.assertIn("[1] Zeppelin maintenance", msg["content"])
        self.assertEqual(msg["citations"][0]["id"], self.docs[0])
        st, _, s = call(self.g, a, "GET", "/chat/sessions/%d" % sid)
        self.assertFalse(s["busy"])

    def test_model_hangs_while_streaming(self):
        self.model.control(mode="hang")
        a = self.tok[ALICE]
        sid = new_session(self.g, a)
        st, _, events = sse(self.g, a, "/chat/sessions/%d/messages?stream=1" % sid,
                            {"content": QUESTION})
        self.assertEqual(st, 200, events)
        self.assertEqual(events[-1][0], "done")
        msg = events[-1][1]["message"]
        self.assertFalse(msg["model_answered"])
        self.assertIn("did not answer within", msg["content"])
        self.assertEqual("".join(d["content"] for e, d in events if e == "delta"),
                         msg["content"])

    def test_model_fails(self):
        self.model.control(mode="fail")
        a = self.tok[ALICE]
        msg = ask(self.g, a, new_session(self.g, a), QUESTION)
        self.assertFalse(msg["model_answered"])
        self.assertIn("HTTP 500", msg["notice"])
        self.assertIn("failing on purpose", msg["notice"])
        self.assertIn("[1] Zeppelin maintenance", msg["content"])

    def test_model_stops_half_way(self):
        self.model.control(mode="stall")
        a = self.tok[ALICE]
        sid = new_session(self.g, a)
        st, _, events = sse(self.g, a, "/chat/sessions/%d/messages?stream=1" % sid,
                            {"content": QUESTION})
        msg = events[-1][1]["message"]
        self.assertFalse(msg["model_answered"])
        first = events[0][1]["content"]
        self.assertTrue(MODEL_TEXT.startswith(first), events)
        self.assertTrue(msg["content"].startswith(first + "\n\nNo model answered"), msg)
        self.assertIn("[1] Zeppelin maintenance", msg["content"])

    def test_client_goes_away_mid_stream(self):
        """The answer is still written and stored when the client leaves."""
        self.model.control(mode="ok", delay_ms=150)
        a = self.tok[ALICE]
        sid = new_session(self.g, a)
        conn = http.client.HTTPConnection("127.0.0.1", self.g.api_port, timeout=scaled(10))
        conn.request("POST", "/chat/sessions/%d/messages?stream=1" % sid,
                     body=json.dumps({"content": QUESTION}),
                     headers={"Authorization": "Bearer " + a,
                              "Content-Type": "application/json"})
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        resp.readline()
        conn.close()

        def stored():
            st, _, s = call(self.g, a, "GET", "/chat/sessions/%d" % sid)
            return s if s["message_count"] == 2 and not s["busy"] else None
        s = self.g.wait_for(stored, timeout=scaled(10), interval=0.05)
        self.assertEqual(s["messages"][-1]["content"], MODEL_TEXT)
        self.model.control(delay_ms=30)

    def test_many_at_once(self):
        """Answers are written side by side: a slow answer holds up no other."""
        self.model.control(delay_ms=60)
        a = self.tok[ALICE]
        sids = [new_session(self.g, a) for _ in range(8)]
        res = {}

        def run(i, sid):
            path = "/chat/sessions/%d/messages" % sid
            if i % 2:
                st, _, events = sse(self.g, a, path + "?stream=1", {"content": QUESTION})
                res[i] = (st, events[-1][1]["message"]["content"] if st == 200 else events)
            else:
                st, _, msg = call(self.g, a, "POST", path, {"content": QUESTION})
                res[i] = (st, msg["content"] if st == 200 else msg)

        ths = [threading.Thread(target=run, args=(i, sid)) for i, sid in enumerate(sids)]
        for t in ths:
            t.start()
        for t in ths:
            t.join(scaled(30))
        self.model.control(delay_ms=30)
        self.assertEqual(sorted(res), list(range(8)))
        for i, (st, content) in res.items():
            self.assertEqual((st, content), (200, MODEL_TEXT), i)
        # The model server saw several of them in flight at once.
        peak = self.model.http("GET", "/_requests")["max_active"]
        self.assertGreaterEqual(peak, 2)

    def test_metrics(self):
        st, _, body = call(self.g, None, "GET", "/metrics")
        self.assertEqual(st, 200)
        text = body.decode() if isinstance(body, bytes) else body
        self.assertIn('grace_chat_answers_total{by="model"}', text)
        self.assertIn("grace_chat_model_failures_total", text)


class ChatWhileStopping(GraceTestCase):
    """SIGTERM while answers wait on a model that hangs: they are answered
    from their sources at once, whole and streamed."""

    def test_stop_answers_waiting_turns(self):
        model = ModelServer()
        try:
            model.control(mode="hang")
            g, tok, docs = start_server(model={"base_url": model.url, "timeout_ms": 600000})
            try:
                a = tok[ALICE]
                res = {}

                def run(key, stream):
                    sid = new_session(g, a)
                    path = "/chat/sessions/%d/messages" % sid
                    try:
                        if stream:
                            res[key] = sse(g, a, path + "?stream=1", {"content": QUESTION})
                        else:
                            res[key] = call(g, a, "POST", path, {"content": QUESTION})
                    except Exception as e:  # reported by the asserts below
                        res[key] = (None, None, repr(e))

                ths = [threading.Thread(target=run, args=(k, k == "stream"))
                       for k in ("whole", "stream")]
                for t in ths:
                    t.start()
                g.wait_for(lambda: len(model.requests()) == 2, timeout=scaled(10),
                           message="both questions reach the model")
                t0 = time.monotonic()
                self.assertEqual(g.stop(), 0)
                for t in ths:
                    t.join(scaled(10))
                self.assertLess(time.monotonic() - t0, scaled(5))
                st, _, msg = res["whole"]
                self.assertEqual(st, 200, msg)
                self.assertIn("No model answered this (Grace is stopping)", msg["content"])
                self.assertEqual(msg["citations"][0]["id"], docs[0])
                st, _, events = res["stream"]
                self.assertEqual(st, 200, events)
                self.assertEqual(events[-1][0], "done", events)
                self.assertIn("Grace is stopping", events[-1][1]["message"]["content"])
            finally:
                g.close()
        finally:
            model.stop()


if __name__ == "__main__":
    unittest.main()
