"""Chat streams honestly, through the real `grace serve` and model_server.py:
while a slow model thinks, a streamed answer carries an SSE comment every
[model] heartbeat_ms, so no idle proxy cuts it; a long wait on a whole
(not streamed) answer is not cut short by Grace's own timeouts; and a model
stream that ends without `data: [DONE]` or a finish_reason is a failed
answer: the library fallback after a `fallback` event, with its notice,
`model_answered: false`, and counted under reason="truncated_stream" in
/metrics."""

import http.client
import json
import re
import time
import unittest

from harness import GraceTestCase, scaled
from test_chat import (ALICE, MODEL_TEXT, QUESTION, ModelServer, call, new_session, sse,
                       start_server)

HEARTBEAT_MS = 200
# Longer than several heartbeats, shorter than the model's timeout.
THINK_MS = 1500
MODEL_TIMEOUT_MS = 20000
# Grace's own read/write timeout, shorter than the model thinks: a request
# waiting on its handler has no deadline of its own.
IO_TIMEOUT_MS = 1000
CUT_OFF = "the model's answer was cut off"


def sse_timed(g, token, path, body, timeout=None):
    """POSTs and reads a Server-Sent Events answer to its end, keeping
    comments: (status, [(kind, value, seconds since the request)]), where
    kind is "comment" (value: its text) or an event name (value: its data
    parsed as JSON)."""
    conn = http.client.HTTPConnection("127.0.0.1", g.api_port, timeout=timeout or scaled(30))
    try:
        t0 = time.monotonic()
        conn.request("POST", path, body=json.dumps(body),
                     headers={"Authorization": "Bearer " + token,
                              "Content-Type": "application/json"})
        resp = conn.getresponse()
        if resp.status != 200:
            return resp.status, resp.read()
        out, name, data = [], None, []
        while True:
            line = resp.readline()
            if not line:
                break
            line = line.decode().rstrip("\r\n")
            now = time.monotonic() - t0
            if line.startswith(":"):
                out.append(("comment", line[1:].strip(), now))
            elif line == "":
                if data:
                    out.append((name or "message", json.loads("\n".join(data)), now))
                name, data = None, []
            elif line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
        return resp.status, out
    finally:
        conn.close()


def metric(g, name, labels):
    """The value of one series on /metrics, or None when it is not there."""
    st, _, body = call(g, None, "GET", "/metrics")
    assert st == 200, (st, body)
    text = body.decode() if isinstance(body, bytes) else body
    m = re.search(r"^%s\{%s\} (\d+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    return int(m.group(1)) if m else None


class ChatStreaming(GraceTestCase):
    @classmethod
    def setUpClass(cls):
        cls.model = ModelServer()
        try:
            cls.g, cls.tok, cls.docs = start_server(
                model={"base_url": cls.model.url, "model": "test-model",
                       "timeout_ms": MODEL_TIMEOUT_MS, "heartbeat_ms": HEARTBEAT_MS},
                sections={"limits": {"timeout_ms": IO_TIMEOUT_MS}})
        except BaseException:
            cls.model.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.g.close()
        finally:
            cls.model.stop()

    def setUp(self):
        self.model.control(mode="ok", text=MODEL_TEXT, chunks=5, delay_ms=30, think_ms=0,
                           send_done=True, send_finish=True, framing="chunked")
        self.model.http("POST", "/_reset")

    def stream(self, sid):
        st, items = sse_timed(self.g, self.tok[ALICE],
                              "/chat/sessions/%d/messages?stream=1" % sid, {"content": QUESTION})
        self.assertEqual(st, 200, items)
        return items

    def stored(self, sid, msg_id):
        st, _, s = call(self.g, self.tok[ALICE], "GET", "/chat/sessions/%d" % sid)
        self.assertEqual(st, 200, s)
        self.assertFalse(s["busy"])
        return next(m for m in s["messages"] if m["id"] == msg_id)

    # -- heartbeats

    def test_heartbeat_while_the_model_thinks(self):
        # Thinks before its first token, and again between its two pieces.
        self.model.control(think_ms=THINK_MS, chunks=2, delay_ms=THINK_MS)
        sid = new_session(self.g, self.tok[ALICE])
        items = self.stream(sid)
        kinds = [k for k, _, _ in items]
        self.assertEqual(kinds[-1], "done", items)
        deltas = [i for i, k in enumerate(kinds) if k == "delta"]
        self.assertEqual(len(deltas), 2, items)
        # The model really kept it waiting: the first piece came after it thought.
        self.assertGreaterEqual(items[deltas[0]][2], THINK_MS / 1000.0 - 0.05, items)
        before = [v for k, v, _ in items[:deltas[0]] if k == "comment"]
        between = [v for k, v, _ in items[deltas[0]:deltas[1]] if k == "comment"]
        # About THINK_MS / HEARTBEAT_MS of each; a loaded machine may fire fewer.
        self.assertGreaterEqual(len(before), 2, items)
        self.assertGreaterEqual(len(between), 2, items)
        self.assertEqual(set(before + between), {"waiting"}, items)
        msg = items[-1][1]["message"]
        self.assertTrue(msg["model_answered"], msg)
        self.assertEqual(msg["content"], MODEL_TEXT)
        self.assertEqual("".join(v["content"] for k, v, _ in items if k == "delta"), MODEL_TEXT)
        # The stream ends with its answer, nothing after it.
        self.assertEqual(self.stored(sid, msg["id"])["content"], MODEL_TEXT)

    def test_quick_stream(self):
        items = self.stream(new_session(self.g, self.tok[ALICE]))
        self.assertEqual(items[-1][0], "done", items)
        self.assertTrue(items[-1][1]["message"]["model_answered"])

    def test_client_leaves_while_the_model_thinks(self):
        """The heartbeats stop with the client; the answer is still stored."""
        self.model.control(think_ms=THINK_MS)
        a = self.tok[ALICE]
        sid = new_session(self.g, a)
        conn = http.client.HTTPConnection("127.0.0.1", self.g.api_port, timeout=scaled(10))
        try:
            conn.request("POST", "/chat/sessions/%d/messages?stream=1" % sid,
                         body=json.dumps({"content": QUESTION}),
                         headers={"Authorization": "Bearer " + a,
                                  "Content-Type": "application/json"})
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.readline(), b": waiting\n")
        finally:
            conn.close()

        def stored():
            st, _, s = call(self.g, a, "GET", "/chat/sessions/%d" % sid)
            return s if s["message_count"] == 2 and not s["busy"] else None
        s = self.g.wait_for(stored, timeout=scaled(15), interval=0.05)
        self.assertEqual(s["messages"][-1]["content"], MODEL_TEXT)
        self.assertTrue(s["messages"][-1]["model_answered"])
        # Another stream on the same server is served as before.
        self.test_quick_stream()

    def test_whole_answer_waits_past_grace_timeouts(self):
        """A whole answer from a model thinking longer than Grace's own I/O
        timeout still comes: the request waits on its handler, not a clock."""
        self.model.control(think_ms=THINK_MS)
        a = self.tok[ALICE]
        sid = new_session(self.g, a)
        t0 = time.monotonic()
        st, _, msg = call(self.g, a, "POST", "/chat/sessions/%d/messages" % sid,
                          {"content": QUESTION}, timeout=scaled(30))
        self.assertEqual(st, 200, msg)
        self.assertGreaterEqual(time.monotonic() - t0, THINK_MS / 1000.0 - 0.05)
        self.assertTrue(msg["model_answered"], msg)
        self.assertEqual(msg["content"], MODEL_TEXT)

    # -- a stream cut off

    def check_cut_off(self, framing):
        self.model.control(send_done=False, send_finish=False, framing=framing)
        before = metric(self.g, "grace_chat_model_failures_total", 'reason="truncated_stream"')
        self.assertIsNotNone(before, "no truncated_stream series on /metrics")
        by_model = metric(self.g, "grace_chat_answers_total", 'by="model"')
        sid = new_session(self.g, self.tok[ALICE])
        items = self.stream(sid)
        kinds = [k for k, _, _ in items if k != "comment"]
        self.assertEqual(kinds[-1], "done", items)
        self.assertEqual(kinds.count("fallback"), 1, items)
        cut = kinds.index("fallback")
        events = [(k, v) for k, v, _ in items if k != "comment"]
        # What the model wrote, then the fallback event, then the answer
        # from the sources.
        model_part = "".join(v["content"] for k, v in events[:cut] if k == "delta")
        self.assertEqual(model_part, MODEL_TEXT)
        fb = events[cut][1]
        self.assertTrue(fb["partial"], fb)
        self.assertIn(CUT_OFF, fb["reason"])
        self.assertIn("[DONE]", fb["reason"])
        # A body that ended cleanly, or a transfer that broke.
        self.assertIn("broke off" if framing == "broken" else "stream ended", fb["reason"])
        msg = events[-1][1]["message"]
        self.assertFalse(msg["model_answered"], msg)
        self.assertEqual(msg["model"], "test-model")
        self.assertEqual(msg["notice"][:len("No model answered: " + CUT_OFF)],
                         "No model answered: " + CUT_OFF, msg)
        self.assertTrue(msg["content"].startswith(
            MODEL_TEXT + "\n\nNo model answered this (" + CUT_OFF), msg["content"])
        self.assertIn("[1] Zeppelin maintenance", msg["content"])
        self.assertEqual(msg["citations"][0]["id"], self.docs[0])
        self.assertEqual("".join(v["content"] for k, v in events if k == "delta"),
                         msg["content"])
        # Stored as it was sent.
        stored = self.stored(sid, msg["id"])
        self.assertFalse(stored["model_answered"])
        self.assertEqual(stored["notice"], msg["notice"])
        self.assertEqual(stored["content"], msg["content"])
        # Counted as a failure, not as the model's answer.
        self.assertEqual(metric(self.g, "grace_chat_model_failures_total",
                                'reason="truncated_stream"'), before + 1)
        self.assertEqual(metric(self.g, "grace_chat_answers_total", 'by="model"'), by_model)

    def test_stream_cut_off_chunked(self):
        """The chunked body ends cleanly, but the model never said it was done."""
        self.check_cut_off("chunked")

    def test_stream_cut_off_connection_closed(self):
        """A body framed by the connection's close, closed early."""
        self.check_cut_off("close")

    def test_stream_broken_off(self):
        """A chunked body whose connection closes before its last chunk."""
        self.check_cut_off("broken")

    def test_stream_end_needs_only_one_sign(self):
        """[DONE] alone, or a finish_reason alone, ends a stream whole, even
        when the connection breaks after it."""
        before = metric(self.g, "grace_chat_model_failures_total", 'reason="truncated_stream"')
        for done, finish, framing in ((True, False, "chunked"), (False, True, "chunked"),
                                      (True, False, "broken"), (False, True, "close")):
            self.model.control(send_done=done, send_finish=finish, framing=framing)
            st, _, events = sse(self.g, self.tok[ALICE],
                                "/chat/sessions/%d/messages?stream=1"
                                % new_session(self.g, self.tok[ALICE]), {"content": QUESTION})
            self.assertEqual(st, 200, events)
            self.assertNotIn("fallback", [e for e, _ in events])
            msg = events[-1][1]["message"]
            self.assertTrue(msg["model_answered"], (done, finish, framing, msg))
            self.assertEqual(msg["content"], MODEL_TEXT)
            self.assertIsNone(msg["notice"])
        self.assertEqual(metric(self.g, "grace_chat_model_failures_total",
                                'reason="truncated_stream"'), before)

    def test_cut_off_before_any_text(self):
        """A stream with no piece of the answer and no end: fallback, not partial."""
        self.model.control(text="", send_done=False, send_finish=False)
        items = self.stream(new_session(self.g, self.tok[ALICE]))
        events = [(k, v) for k, v, _ in items if k != "comment"]
        self.assertEqual(events[0][0], "fallback", events)
        self.assertFalse(events[0][1]["partial"])
        msg = events[-1][1]["message"]
        self.assertFalse(msg["model_answered"])
        self.assertTrue(msg["content"].startswith("No model answered this (" + CUT_OFF), msg)

    def test_failure_reasons_on_metrics(self):
        """Every failure label is on /metrics from the start, and a model
        error counts under its own."""
        for reason in ("timeout", "unreachable", "http_status", "bad_answer",
                       "truncated_stream"):
            self.assertIsNotNone(metric(self.g, "grace_chat_model_failures_total",
                                        'reason="%s"' % reason), reason)
        before = metric(self.g, "grace_chat_model_failures_total", 'reason="http_status"')
        self.model.control(mode="fail")
        st, _, events = sse(self.g, self.tok[ALICE], "/chat/sessions/%d/messages?stream=1"
                            % new_session(self.g, self.tok[ALICE]), {"content": QUESTION})
        self.assertEqual(st, 200, events)
        fb = [d for e, d in events if e == "fallback"]
        self.assertEqual(len(fb), 1, events)
        self.assertIn("HTTP 500", fb[0]["reason"])
        self.assertFalse(fb[0]["partial"])
        self.assertFalse(events[-1][1]["message"]["model_answered"])
        self.assertEqual(metric(self.g, "grace_chat_model_failures_total",
                                'reason="http_status"'), before + 1)


if __name__ == "__main__":
    unittest.main()
