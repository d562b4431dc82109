"""Message bus (8100) through `grace serve`: publish, subjects, Server-Sent
Events subscriptions with wildcards and Last-Event-ID resume, retention, and
bad input getting a clear 4xx.

Most requests go straight to the kernel's port with the internal token (an
SSE stream cannot go through the gateway, which answers only once the
kernel's answer is complete); a few go through /kernels/message_bus/* (an
admin route: the harness logs in as the first-start admin) to show the
gateway path. The helpers here (Bus, SSE) are shared by the other
test_bus*.py files."""

import http.client
import json
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
from harness import GraceServer, GraceTestCase, http_request, scaled  # noqa: E402

TOKEN_HEADER = "X-Grace-Internal-Token"


class Bus:
    """The bus kernel of a running GraceServer, called on its own port."""

    def __init__(self, g):
        self.g = g
        self.port = g.kernel_port("message_bus")
        self.token = g.token()

    def headers(self, extra=None):
        h = {TOKEN_HEADER: self.token}
        h.update(extra or {})
        return h

    def req(self, method, path, body=None, headers=None, timeout=10.0):
        return http_request(self.port, method, path, body, self.headers(headers),
                            scaled(timeout))

    def ok(self, method, path, body=None, timeout=10.0):
        st, _, out = self.req(method, path, body, timeout=timeout)
        if st != 200:
            raise AssertionError("%s %s: %s %r" % (method, path, st, out))
        return out

    def publish(self, msgs):
        return self.ok("POST", "/publish", msgs)

    def api(self, method, path, body=None, timeout=10.0):
        """A call to the API on :8000 (the harness logs in as the admin)."""
        return self.g.http(method, path, body, timeout=scaled(timeout))

    def gateway(self, method, path, body=None, timeout=10.0):
        return self.api(method, "/kernels/message_bus" + path, body, timeout)

    def pid(self):
        """The bus kernel's pid, from its own /health (no token needed)."""
        st, _, out = http_request(self.port, "GET", "/health", timeout=scaled(10))
        if st != 200:
            raise AssertionError("bus /health: %s %r" % (st, out))
        self.g.track_pid(out["pid"])
        return out["pid"]

    def subjects(self, pattern=None):
        q = "?subject=" + pattern if pattern else ""
        return {s["subject"]: s for s in self.ok("GET", "/subjects" + q)["subjects"]}


class SSE:
    """One GET /subscribe stream, read an event at a time."""

    def __init__(self, bus, query, last_event_id=None, timeout=10.0):
        self.conn = http.client.HTTPConnection("127.0.0.1", bus.port, timeout=scaled(timeout))
        extra = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            extra["Last-Event-ID"] = str(last_event_id)
        self.conn.request("GET", "/subscribe?" + query, headers=bus.headers(extra))
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.content_type = self.resp.getheader("Content-Type")
        self.comments = []

    def event(self):
        """The next event with data: {"id", "event", "data" (parsed)}."""
        ev = {}
        while True:
            line = self.resp.readline()
            if not line:
                raise EOFError("stream ended")
            line = line.decode().rstrip("\n")
            if line == "":
                if "data" in ev:
                    return ev
                ev = {}
                continue
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            field, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
            ev[field] = json.loads(value) if field == "data" else value

    def take(self, n):
        return [self.event() for _ in range(n)]

    def close(self):
        self.conn.close()


def payloads(events):
    return [e["data"]["payload"] for e in events]


class BusBasics(GraceTestCase):
    @classmethod
    def setUpClass(cls):
        cls.g = GraceServer(kernels={"message_bus": {}})
        cls.g.__enter__()
        cls.bus = Bus(cls.g)

    @classmethod
    def tearDownClass(cls):
        cls.g.__exit__(None, None, None)

    def test_publish_single_and_batch(self):
        one = self.bus.publish({"subject": "pub.a", "payload": {"n": 1}})
        self.assertEqual(one["subject"], "pub.a")
        self.assertIsInstance(one["offset"], int)
        self.assertGreater(one["timestamp"], 1_600_000_000_000)
        batch = self.bus.publish([
            {"subject": "pub.a", "payload": [1, 2]},
            {"subject": "pub.b", "payload": "text", "key": "k1", "headers": {"h": "v"}},
            {"subject": "pub.a", "payload": None},
        ])
        self.assertEqual([m["subject"] for m in batch], ["pub.a", "pub.b", "pub.a"])
        offsets = [one["offset"]] + [m["offset"] for m in batch]
        self.assertEqual(offsets, sorted(offsets))
        self.assertEqual(len(set(offsets)), 4)
        subjects = self.bus.subjects("pub.*")
        self.assertEqual(set(subjects), {"pub.a", "pub.b"})
        self.assertEqual(subjects["pub.a"]["count"], 3)
        self.assertEqual(subjects["pub.a"]["first_offset"], one["offset"])
        self.assertEqual(subjects["pub.a"]["last_offset"], batch[2]["offset"])
        self.assertEqual(subjects["pub.b"]["count"], 1)
        # Everything comes back as stored.
        s = SSE(self.bus, "subject=pub.b&from=%d" % one["offset"])
        try:
            ev = s.event()
        finally:
            s.close()
        self.assertEqual(ev["data"]["payload"], "text")
        self.assertEqual(ev["data"]["key"], "k1")
        self.assertEqual(ev["data"]["headers"], {"h": "v"})

    def test_gateway_and_token(self):
        st, _, out = self.bus.gateway("POST", "/publish", {"subject": "gw.x", "payload": 7})
        self.assertEqual(st, 200, out)
        st, _, out = self.bus.gateway("GET", "/subjects?subject=gw.>")
        self.assertEqual(st, 200, out)
        self.assertEqual(out["subjects"][0]["count"], 1)
        # Straight to the port without the token: refused.
        st, _, _ = http_request(self.bus.port, "POST", "/publish",
                                {"subject": "gw.x", "payload": 1})
        self.assertEqual(st, 401)

    def test_subscribe_wildcards(self):
        subs = {p: SSE(self.bus, "subject=" + p) for p in ("ww.*.x", "ww.>", "ww.a.x", "*.a.x")}
        try:
            subjects = ["ww.a.x", "ww.b.x", "ww.a.y", "ww.a.x.z", "ww", "oo.a.x", "ww.q"]
            for i, s in enumerate(subjects):
                self.bus.publish({"subject": s, "payload": i})
            # One batch too: it is pushed from memory the same way.
            self.bus.publish([{"subject": s, "payload": 10 + i} for i, s in enumerate(subjects)])
            self.bus.publish({"subject": "ww.z.x", "payload": "end"})
            self.bus.publish({"subject": "zz.a.x", "payload": "end"})
            want = {
                "ww.*.x": [0, 1, 10, 11, "end"],
                "ww.>": [0, 1, 2, 3, 6, 10, 11, 12, 13, 16, "end"],
                "ww.a.x": [0, 10],
                "*.a.x": [0, 5, 10, 15, "end"],
            }
            for p, w in want.items():
                got = payloads(subs[p].take(len(w)))
                self.assertEqual(got, w, p)
            # Offsets arrive in order and ids match them.
            s = SSE(self.bus, "subject=ww.>&from=earliest")
            try:
                evs = s.take(10)
            finally:
                s.close()
            ids = [int(e["id"]) for e in evs]
            self.assertEqual(ids, sorted(ids))
            self.assertEqual(ids, [e["data"]["offset"] for e in evs])
            self.assertTrue(all(e["event"] == "message" for e in evs))
        finally:
            for s in subs.values():
                s.close()

    def test_sse_resume_with_last_event_id(self):
        first = self.bus.publish([{"subject": "rs.x", "payload": i} for i in range(5)])
        s = SSE(self.bus, "subject=rs.>&from=%d" % first[0]["offset"])
        try:
            got = s.take(2)
        finally:
            s.close()
        self.assertEqual(payloads(got), [0, 1])
        last = got[-1]["id"]
        # The header wins over from=latest: resume just after the last id.
        s = SSE(self.bus, "subject=rs.>&from=latest", last_event_id=last)
        try:
            self.assertEqual(payloads(s.take(3)), [2, 3, 4])
            self.bus.publish({"subject": "rs.y", "payload": 5})
            self.assertEqual(payloads(s.take(1)), [5])
        finally:
            s.close()
        # from=latest: only what comes after.
        s = SSE(self.bus, "subject=rs.>")
        try:
            self.bus.publish({"subject": "rs.z", "payload": 6})
            self.assertEqual(payloads(s.take(1)), [6])
        finally:
            s.close()

    def test_long_replay_then_live(self):
        n = 3000
        for i in range(0, n, 500):
            self.bus.publish([{"subject": "rp.x", "payload": j} for j in range(i, i + 500)])
        s = SSE(self.bus, "subject=rp.x&from=earliest")
        try:
            got = payloads(s.take(n))
            self.assertEqual(got, list(range(n)))
            self.bus.publish({"subject": "rp.x", "payload": "live"})
            self.assertEqual(payloads(s.take(1)), ["live"])
        finally:
            s.close()

    def test_heartbeat_and_disconnect(self):
        s = SSE(self.bus, "subject=hb.x&heartbeat_ms=200")
        try:
            t0 = time.monotonic()
            while "heartbeat" not in s.comments:
                line = s.resp.readline().decode().strip()
                if line.startswith(":"):
                    s.comments.append(line[1:].strip())
            self.assertLess(time.monotonic() - t0, scaled(3))
            before = self.bus.ok("GET", "/stats")["subscribers"]
            self.assertGreaterEqual(before, 1)
        finally:
            s.close()
        # The bus notices the client has gone and lets go of it.
        self.g.wait_for(lambda: self.bus.ok("GET", "/stats")["subscribers"] < before,
                        message="subscriber released")

    def test_retention_count_and_age(self):
        for sub, n in (("rt.a", 20), ("rt.b", 5)):
            self.bus.publish([{"subject": sub, "payload": i} for i in range(n)])
        last_a = self.bus.subjects("rt.a")["rt.a"]["last_offset"]
        st, _, rule = self.bus.req("POST", "/retention", {"pattern": "rt.*", "max_count": 3})
        self.assertEqual(st, 200, rule)
        self.assertEqual(rule, {"pattern": "rt.*", "max_count": 3, "max_age_ms": None})

        def trimmed():
            s = self.bus.subjects("rt.*")
            return s if s["rt.a"]["count"] == 3 and s["rt.b"]["count"] == 3 else None
        s = self.g.wait_for(trimmed, message="retention by count")
        self.assertEqual(s["rt.a"]["first_offset"], last_a - 2)
        # The newest three are what a replay finds.
        sse = SSE(self.bus, "subject=rt.a&from=earliest")
        try:
            self.assertEqual(payloads(sse.take(3)), [17, 18, 19])
        finally:
            sse.close()

        self.bus.publish([{"subject": "rt.old.x", "payload": i} for i in range(4)])
        st, _, _ = self.bus.req("POST", "/retention", {"pattern": "rt.old.>", "max_age_ms": 300})
        self.assertEqual(st, 200)
        self.g.wait_for(lambda: "rt.old.x" not in self.bus.subjects("rt.>"),
                        message="retention by age")
        rules = self.bus.ok("GET", "/retention")["rules"]
        self.assertEqual({r["pattern"] for r in rules}, {"rt.*", "rt.old.>"})
        st, _, _ = self.bus.req("DELETE", "/retention?pattern=rt.*")
        self.assertEqual(st, 200)
        st, _, _ = self.bus.req("DELETE", "/retention?pattern=rt.*")
        self.assertEqual(st, 404)
        # Offsets keep growing after deletions.
        nxt = self.bus.publish({"subject": "rt.a", "payload": "new"})
        self.assertGreater(nxt["offset"], last_a)

    def mine(self):
        """Subjects other than the main process's own events (grace.>)."""
        return {k: v for k, v in self.bus.subjects().items() if not k.startswith("grace.")}

    def test_bad_input(self):
        before = self.mine()
        bad_publish = [
            {"subject": "a.*", "payload": 1},
            {"subject": "a.>", "payload": 1},
            {"subject": "a..b", "payload": 1},
            {"subject": ".a", "payload": 1},
            {"subject": "a b", "payload": 1},
            {"subject": "", "payload": 1},
            {"subject": "x" * 256, "payload": 1},
            {"subject": "$dlq.g.a", "payload": 1},
            {"subject": 5, "payload": 1},
            {"subject": "ok.subject"},
            {"subject": "ok.subject", "payload": 1, "extra": 2},
            {"subject": "ok.subject", "payload": 1, "headers": {"h": 1}},
            {"subject": "ok.subject", "payload": 1, "headers": ["h"]},
            {"subject": "ok.subject", "payload": 1, "key": 7},
            [],
            [{"subject": "ok.subject", "payload": 1}, {"subject": "bad*", "payload": 2}],
            "a string",
        ]
        for body in bad_publish:
            st, _, out = self.bus.req("POST", "/publish", body)
            self.assertEqual(st, 400, (body, out))
            self.assertIn("error", out)
        for raw in (b"{not json", b"", b"[1,"):
            st, _, out = self.bus.req("POST", "/publish", raw,
                                      headers={"Content-Type": "application/json"})
            self.assertEqual(st, 400, (raw, out))
        # Nothing of a refused request was stored, not even its good part.
        self.assertEqual(self.mine(), before)

        bad_get = [
            "/subscribe",
            "/subscribe?subject=a.>.b",
            "/subscribe?subject=a*",
            "/subscribe?subject=a&from=abc",
            "/subscribe?subject=a&from=-1",
            "/subscribe?subject=a&heartbeat_ms=1",
            "/subjects?subject=a..b",
            "/groups/a.b/poll?subject=x",
            "/groups/g/poll?subject=x&max=0",
            "/groups/g/poll?subject=x&max=100000",
            "/groups/g/poll?subject=x&wait_ms=999999",
            "/groups/g/poll?subject=x&visibility_ms=1",
            "/groups/g/poll?subject=x.>.y",
            "/groups/g/poll?subject=x&from=soon",
        ]
        for path in bad_get:
            st, _, out = self.bus.req("GET", path)
            self.assertEqual(st, 400, (path, out))
        st, _, _ = self.bus.req("GET", "/subscribe?subject=a",
                                headers={"Last-Event-ID": "not-a-number"})
        self.assertEqual(st, 400)
        st, _, _ = self.bus.req("GET", "/groups/never-polled")
        self.assertEqual(st, 404)
        st, _, _ = self.bus.req("GET", "/groups/never-polled/poll")
        self.assertEqual(st, 404)
        st, _, _ = self.bus.req("POST", "/groups/never-polled/ack", {"offsets": [1]})
        self.assertEqual(st, 404)
        for body in ({}, {"offsets": []}, {"offsets": ["x"]}, {"offsets": [0]},
                     {"receipts": ["12"]}, {"receipts": ["a-1"]}, {"offsets": 3}, [1]):
            st, _, out = self.bus.req("POST", "/groups/g/ack", body)
            self.assertEqual(st, 400, (body, out))
        for body in ({"pattern": "a..b", "max_count": 1}, {"pattern": "a"},
                     {"pattern": "a", "max_count": -1}, {"pattern": "a", "max_age_ms": 0},
                     {"pattern": "a", "max_count": "3"}, {"max_count": 3}):
            st, _, out = self.bus.req("POST", "/retention", body)
            self.assertEqual(st, 400, (body, out))
        st, _, _ = self.bus.req("DELETE", "/retention?pattern=a.>.b")
        self.assertEqual(st, 400)
        st, _, _ = self.bus.req("PUT", "/publish", {"subject": "a", "payload": 1})
        self.assertEqual(st, 405)
        # And the kernel is still fine.
        self.assertEqual(self.bus.ok("GET", "/stats")["commit_failures"], 0)
        st, _, _ = self.bus.gateway("GET", "/health")
        self.assertEqual(st, 200)


class BusIdleStream(GraceTestCase):
    def test_stream_outlives_the_read_timeout(self):
        # The client of a stream never writes again: the server's read
        # timeout (1 s here) must not end the stream, only heartbeats matter.
        with GraceServer(kernels={"message_bus": {}},
                         config={"limits": {"timeout_ms": 1000}}) as g:
            bus = Bus(g)
            s = SSE(bus, "subject=idle.x&heartbeat_ms=60000")
            try:
                time.sleep(2.5)
                bus.publish({"subject": "idle.x", "payload": "still here"})
                self.assertEqual(s.event()["data"]["payload"], "still here")
            finally:
                s.close()


class BusDrain(GraceTestCase):
    def test_sigterm_ends_streams_and_long_polls(self):
        with GraceServer(kernels={"message_bus": {}}) as g:
            bus = Bus(g)
            bus.pid()
            bus.ok("GET", "/groups/dr/poll?subject=dr.x")
            s = SSE(bus, "subject=dr.>")
            result = {}

            def waiter():
                t0 = time.monotonic()
                result["r"] = bus.req("GET", "/groups/dr/poll?wait_ms=30000", timeout=40)
                result["s"] = time.monotonic() - t0
            t = threading.Thread(target=waiter)
            t.start()
            g.wait_for(lambda: bus.ok("GET", "/stats")["waiting_polls"] == 1,
                       message="poll waiting")
            t0 = time.monotonic()
            g.stop()
            t.join(scaled(10))
            st, _, out = result["r"]
            self.assertEqual((st, out["messages"]), (200, []))
            self.assertLess(result["s"], scaled(10))
            # The stream ends cleanly (its last chunk), not by a reset.
            with self.assertRaises(EOFError):
                s.event()
            s.close()
            self.assertEqual(g.returncode, 0)
            self.assertLess(time.monotonic() - t0, scaled(5))


if __name__ == "__main__":
    unittest.main()
