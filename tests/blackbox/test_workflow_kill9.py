"""Durable runs across kill -9 of the workflow kernel (issue 14): a long
run (a loop of waits and calls to a loopback server that counts each
Idempotency-Key) is killed with SIGKILL again and again while it runs; it
must go on from its last completed task each time and end with the same
output and the same completed tasks, in the same order, as the same run
left alone, with no task completed twice and every call's key completed
once (a call the kill interrupted is sent again with the same key, which
the server answers as a duplicate)."""

import os
import random
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import GraceServer, ServerClassCase, scaled  # noqa: E402
from wf_helper import CountingServer  # noqa: E402

P = "/workflow"
KILLS = 8
STEPS = 60
RESTARTS = {"restart_burst": 1000, "restart_window_ms": 1000, "backoff_initial_ms": 10,
            "backoff_max_ms": 50}


class WorkflowKill9(ServerClassCase):
    @classmethod
    def make_server(cls):
        cls.srv = CountingServer()
        return GraceServer(kernels={"workflow": RESTARTS, "message_bus": {}})

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.srv.close()

    def call(self, method, path, body=None, expect=200):
        st, _, out = self.g.http(method, P + path, body)
        self.assertEqual(st, expect, "%s %s -> %s %r" % (method, path, st, out))
        return out

    def run_status(self, rid):
        st, _, out = self.g.http("GET", P + "/runs/" + rid)
        return out.get("status") if st == 200 else None

    def finish(self, rid):
        def ended():
            st = self.run_status(rid)
            return st if st in ("completed", "faulted") else None
        return self.g.wait_for(ended, scaled(60), interval=0.1, message="run " + rid)

    def completed(self, rid):
        events, after = [], 0
        while True:
            out = self.call("GET", "/runs/%s/history?after=%d" % (rid, after))
            events += out["events"]
            if out["next"] is None:
                return events
            after = out["next"]

    def test_killed_run_matches_an_uninterrupted_one(self):
        s = self.srv
        self.call("POST", "/definitions", {
            "document": {"dsl": "1.0.0", "namespace": "test", "name": "long", "version": "1"},
            "do": [
                {"init": {"set": {"n": 0}, "export": {"as": "{keys: []}"}}},
                {"loop": {"for": {"each": "i", "in": "${ [range(0; %d)] }" % STEPS}, "do": [
                    {"pause": {"wait": {"milliseconds": 40}}},
                    {"hit": {"call": "http", "with": {"method": "post", "endpoint": s.url("/slow"),
                                                      "body": {"i": "${ $i }"}},
                             "output": {"as": "${ .key }"},
                             "export": {"as": "${ $context + {keys: ($context.keys + [.])} }"}}},
                    {"count": {"set": {"n": "${ $context.keys | length }"}}}]}},
                {"done": {"set": {"n": "${ .n }", "keys": "${ $context.keys }"}}}]}, 201)

        clean = self.call("POST", "/runs", {"definition": "long"}, 201)["id"]
        self.assertEqual(self.finish(clean), "completed")

        killed = self.call("POST", "/runs", {"definition": "long"}, 201)["id"]
        rng = random.Random(os.getpid())
        pids, mid_run = set(), 0
        while len(pids) < KILLS:
            time.sleep(rng.choice([0.05, 0.15, 0.3, 0.5]))
            k = self.g.wait_kernel("workflow", lambda k: k["state"] == "ready", timeout=scaled(20))
            if self.run_status(killed) != "running":
                break
            mid_run += 1
            pids.add(k["pid"])
            os.kill(k["pid"], signal.SIGKILL)
            self.g.wait_kernel("workflow", lambda n: n["state"] == "ready" and n["pid"] != k["pid"],
                               timeout=scaled(20))
        self.assertEqual(mid_run, KILLS, "the run ended before %d kills: make it longer" % KILLS)
        self.assertEqual(self.finish(killed), "completed")

        a = self.call("GET", "/runs/" + clean)
        b = self.call("GET", "/runs/" + killed)
        self.assertEqual(b["output"], a["output"])
        self.assertEqual(b["output"]["n"], STEPS)
        ha = [(e["pos"], e["output"]) for e in self.completed(clean) if e["type"] == "task.completed"]
        hb = [(e["pos"], e["output"]) for e in self.completed(killed) if e["type"] == "task.completed"]
        self.assertEqual(hb, ha)
        self.assertEqual(len(hb), len(set(p for p, _ in hb)), "a task completed twice")
        # every call of the killed run: one key each, each key completed once
        calls = [o for p, o in hb if p.endswith("/hit")]
        self.assertEqual(len(calls), STEPS)
        self.assertEqual(len(set(calls)), STEPS)
        sent = [k for k in s.keys("/slow") if k.startswith(killed + ":")]
        self.assertEqual(sorted(set(k.split(":", 1)[1] for k in sent)), sorted(calls))
        resent = len(sent) - len(set(sent))
        print("workflow kill9: %d kills mid-run, %d calls, %d sent again after a kill (same key)"
              % (mid_run, len(calls), resent), file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
