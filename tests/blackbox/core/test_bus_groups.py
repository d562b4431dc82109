"""Message bus consumer groups through `grace serve`: poll and ack,
redelivery after the visibility timeout, long polls woken by publishes and
by redeliveries, competing consumers, dead letters after N deliveries."""

import http.client
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, os.path.dirname(__file__))
from harness import GraceServer, GraceTestCase, scaled  # noqa: E402
from test_bus import SSE, Bus  # noqa: E402


class BusGroups(GraceTestCase):
    @classmethod
    def setUpClass(cls):
        cls.g = GraceServer(kernels={"message_bus": {}})
        cls.g.__enter__()
        cls.bus = Bus(cls.g)

    @classmethod
    def tearDownClass(cls):
        cls.g.__exit__(None, None, None)

    def poll(self, group, query="", timeout=10.0):
        return self.bus.ok("GET", "/groups/%s/poll?%s" % (group, query), timeout=timeout)

    def ack(self, group, **body):
        return self.bus.ok("POST", "/groups/%s/ack" % group, body)

    def test_poll_ack_and_redelivery(self):
        self.bus.publish([{"subject": "pa.jobs", "payload": i} for i in range(5)])
        first = self.poll("pa", "subject=pa.jobs&max=3&visibility_ms=600")
        self.assertEqual(first["group"], "pa")
        msgs = first["messages"]
        self.assertEqual([m["payload"] for m in msgs], [0, 1, 2])
        self.assertTrue(all(m["deliveries"] == 1 for m in msgs))
        self.assertEqual(msgs[0]["receipt"], "%d-1" % msgs[0]["offset"])
        rest = self.poll("pa", "max=10")["messages"]
        self.assertEqual([m["payload"] for m in rest], [3, 4])
        # Nothing more now: everything is in flight.
        self.assertEqual(self.poll("pa")["messages"], [])
        t_delivered = time.monotonic()
        out = self.ack("pa", offsets=[msgs[0]["offset"], msgs[1]["offset"]],
                       receipts=[rest[0]["receipt"]])
        self.assertEqual(out, {"acked": 3, "not_found": [], "stale": []})
        # Acking again finds nothing in flight.
        out = self.ack("pa", offsets=[msgs[0]["offset"]], receipts=[rest[0]["receipt"]])
        self.assertEqual(out["acked"], 0)
        self.assertEqual(out["not_found"], [msgs[0]["offset"]])
        self.assertEqual(out["stale"], [rest[0]["receipt"]])
        info = self.bus.ok("GET", "/groups/pa")
        self.assertEqual(info["in_flight"], 2)
        self.assertEqual(info["visibility_ms"], 600)
        # The unacked two come back after the visibility timeout (each its
        # own: they were delivered by different polls), once.
        again = []

        def redelivered():
            again.extend(self.poll("pa")["messages"])
            return len(again) >= 2
        self.g.wait_for(redelivered, message="redelivery")
        self.assertGreaterEqual(time.monotonic() - t_delivered, 0.5)
        self.assertEqual(sorted(m["payload"] for m in again), [2, 4])
        self.assertTrue(all(m["deliveries"] == 2 for m in again))
        # A stale receipt (first delivery) no longer acks; the new one does.
        stale = "%d-1" % again[0]["offset"]
        self.assertEqual(self.ack("pa", receipts=[stale])["stale"], [stale])
        self.assertEqual(self.ack("pa", receipts=[m["receipt"] for m in again])["acked"], 2)
        self.assertEqual(self.bus.ok("GET", "/groups/pa")["in_flight"], 0)

    def test_long_poll_wakes_on_publish(self):
        self.poll("lp", "subject=lp.x")  # creates the group
        result = {}

        def waiter():
            t0 = time.monotonic()
            result["out"] = self.poll("lp", "wait_ms=8000", timeout=20)
            result["s"] = time.monotonic() - t0
        t = threading.Thread(target=waiter)
        t.start()
        self.g.wait_for(lambda: self.bus.ok("GET", "/stats")["waiting_polls"] == 1,
                        message="poll waiting")
        self.bus.publish({"subject": "lp.other", "payload": "not mine"})
        time.sleep(0.2)
        self.assertTrue(t.is_alive())
        self.bus.publish({"subject": "lp.x", "payload": "mine"})
        t.join(scaled(10))
        self.assertEqual([m["payload"] for m in result["out"]["messages"]], ["mine"])
        self.assertLess(result["s"], scaled(3))

    def test_long_poll_times_out_empty(self):
        t0 = time.monotonic()
        out = self.poll("lt", "subject=lt.x&wait_ms=400")
        dt = time.monotonic() - t0
        self.assertEqual(out["messages"], [])
        self.assertGreaterEqual(dt, 0.35)
        self.assertLess(dt, scaled(3))

    def test_long_poll_wakes_on_redelivery(self):
        self.bus.publish({"subject": "lr.x", "payload": 1})
        got = self.poll("lr", "subject=lr.x&visibility_ms=500")["messages"]
        self.assertEqual(len(got), 1)
        t0 = time.monotonic()
        out = self.poll("lr", "wait_ms=8000", timeout=20)["messages"]
        dt = time.monotonic() - t0
        self.assertEqual([(m["payload"], m["deliveries"]) for m in out], [(1, 2)])
        self.assertGreaterEqual(dt, 0.3)
        self.assertLess(dt, scaled(3))

    def test_long_poll_through_gateway(self):
        self.poll("gw", "subject=gw.x")
        result = {}

        def waiter():
            result["r"] = self.bus.gateway("GET", "/groups/gw/poll?wait_ms=5000")
        t = threading.Thread(target=waiter)
        t.start()
        self.g.wait_for(lambda: self.bus.ok("GET", "/stats")["waiting_polls"] >= 1,
                        message="poll waiting")
        st, _, out = self.bus.gateway("POST", "/publish", {"subject": "gw.x", "payload": "hi"})
        self.assertEqual(st, 200, out)
        t.join(scaled(10))
        st, _, out = result["r"]
        self.assertEqual(st, 200, out)
        self.assertEqual([m["payload"] for m in out["messages"]], ["hi"])

    def test_abandoned_long_poll_takes_nothing(self):
        self.poll("ab", "subject=ab.x")
        c = http.client.HTTPConnection("127.0.0.1", self.bus.port, timeout=scaled(10))
        c.request("GET", "/groups/ab/poll?wait_ms=20000", headers=self.bus.headers())
        self.g.wait_for(lambda: self.bus.ok("GET", "/stats")["waiting_polls"] == 1,
                        message="poll waiting")
        before = self.bus.ok("GET", "/stats")["polls_abandoned"]
        c.close()  # the client gives up (as an HTTP client timeout would)
        self.g.wait_for(lambda: self.bus.ok("GET", "/stats")["waiting_polls"] == 0,
                        message="abandoned poll dropped")
        self.assertEqual(self.bus.ok("GET", "/stats")["polls_abandoned"], before + 1)
        self.bus.publish({"subject": "ab.x", "payload": "for the living"})
        out = self.poll("ab")["messages"]
        self.assertEqual([(m["payload"], m["deliveries"]) for m in out], [("for the living", 1)])

    def test_competing_consumers(self):
        self.poll("cc", "subject=cc.x")
        results = []

        def waiter():
            results.append(self.poll("cc", "wait_ms=1500", timeout=20)["messages"])
        ts = [threading.Thread(target=waiter) for _ in range(3)]
        for t in ts:
            t.start()
        self.g.wait_for(lambda: self.bus.ok("GET", "/stats")["waiting_polls"] >= 3,
                        message="polls waiting")
        self.bus.publish({"subject": "cc.x", "payload": "once"})
        for t in ts:
            t.join(scaled(10))
        delivered = [m["payload"] for r in results for m in r]
        self.assertEqual(delivered, ["once"])

    def test_dead_letter_after_max_deliveries(self):
        self.bus.publish({"subject": "dl.jobs.a", "payload": {"n": 1}, "key": "k",
                          "headers": {"trace": "t1"}})
        dlq = SSE(self.bus, "subject=$dlq.dl.>")
        try:
            q = "subject=dl.jobs.>&visibility_ms=200&max_deliveries=2"
            seen = []
            deadline = time.monotonic() + scaled(10)
            dead = 0
            while dead == 0 and time.monotonic() < deadline:
                out = self.poll("dl", q + "&wait_ms=1000", timeout=20)
                seen += [m["deliveries"] for m in out["messages"]]
                dead = out["dead_lettered"]
                q = ""
            self.assertEqual(seen, [1, 2])
            self.assertEqual(dead, 1)
            ev = dlq.event()
        finally:
            dlq.close()
        d = ev["data"]
        self.assertEqual(d["subject"], "$dlq.dl.dl.jobs.a")
        self.assertEqual(d["payload"], {"n": 1})
        self.assertEqual(d["key"], "k")
        self.assertEqual(d["headers"]["trace"], "t1")
        self.assertEqual(d["headers"]["x-dlq-group"], "dl")
        self.assertEqual(d["headers"]["x-dlq-subject"], "dl.jobs.a")
        self.assertEqual(d["headers"]["x-dlq-deliveries"], "2")
        # It has left the group, and a group can consume the dead letters.
        self.assertEqual(self.bus.ok("GET", "/groups/dl")["in_flight"], 0)
        self.assertEqual(self.poll("dl", "wait_ms=300")["messages"], [])
        out = self.poll("dlq-reader", "subject=$dlq.dl.>")["messages"]
        self.assertEqual([m["payload"] for m in out], [{"n": 1}])
        self.assertIn("$dlq.dl.dl.jobs.a", self.bus.subjects("$dlq.>"))

    def test_group_settings_and_listing(self):
        self.poll("gs", "subject=gs.*&from=latest&visibility_ms=1234&max_deliveries=3")
        info = self.bus.ok("GET", "/groups/gs")
        self.assertEqual((info["subject"], info["visibility_ms"], info["max_deliveries"]),
                         ("gs.*", 1234, 3))
        # Another pattern for the same group is a conflict.
        st, _, out = self.bus.req("GET", "/groups/gs/poll?subject=gs.>")
        self.assertEqual(st, 409, out)
        names = [g["name"] for g in self.bus.ok("GET", "/groups")["groups"]]
        self.assertIn("gs", names)
        self.assertEqual(names, sorted(names))
        st, _, _ = self.bus.req("DELETE", "/groups/gs")
        self.assertEqual(st, 200)
        st, _, _ = self.bus.req("GET", "/groups/gs")
        self.assertEqual(st, 404)


if __name__ == "__main__":
    unittest.main()
