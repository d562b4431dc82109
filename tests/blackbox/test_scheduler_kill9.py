"""Exactly once per slot across kill -9 of the scheduler (issue 13): a job
fires every second while the scheduler is killed with SIGKILL again and
again, at random moments. Afterwards:

  - the executor job (idempotent: it carries the slot's key): every slot
    from the first to the last ran exactly once, none twice, none lost
    (the missed-run policy is run_all);
  - the bus job (not idempotent): no slot published twice, and a slot
    without its message is one recorded as interrupted (sent when the
    scheduler died: never resent, so at most once).
"""

import os
import random
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import GraceServer, GraceTestCase, scaled  # noqa: E402

# Fewer under the sanitizers (GRACE_SANITIZED=1: each restart is slower).
KILLS = 8 if os.environ.get("GRACE_SANITIZED") == "1" else 25
RESTARTS = {"restart_burst": 1000, "restart_window_ms": 1000, "backoff_initial_ms": 10,
            "backoff_max_ms": 50}


class SchedulerKill9(GraceTestCase):
    def setUp(self):
        # The executor's watchdog is long here: this test is about the
        # scheduler, and on a loaded machine under the sanitizers a 3 s
        # watchdog can restart the executor too (its jobs then end lost,
        # which test_executor_kill9 covers).
        self.g = GraceServer(kernels={"scheduler": RESTARTS,
                                      "executor": {"watchdog_ms": 30000},
                                      "message_bus": {}})
        self.g.start()
        self.addCleanup(self.g.close)

    def call(self, method, path, body=None, expect=200):
        st, _, out = self.g.http(method, path, body, timeout=scaled(30))
        self.assertEqual(st, expect, "%s %s -> %s %r" % (method, path, st, out))
        return out

    def all_runs(self, job_id):
        runs, cursor = [], 0
        while True:
            out = self.call("GET", "/scheduler/jobs/%s/runs?limit=1000&cursor=%d" % (job_id, cursor))
            runs += out["runs"]
            if not out["next_cursor"]:
                return runs
            cursor = out["next_cursor"]

    def all_exec_jobs(self):
        jobs, cursor = [], 0
        while True:
            out = self.call("GET", "/executor/jobs?limit=1000&cursor=%d" % cursor)
            jobs += out["jobs"]
            if not out["next_cursor"]:
                return jobs
            cursor = out["next_cursor"]

    def test_no_slot_twice_none_lost_across_kills(self):
        every = {"schedule": "* * * * * *", "missed": {"policy": "run_all", "max": 1000}}
        xjob = self.call("POST", "/scheduler/jobs", dict(every, name="exec-once", target={
            "type": "executor", "job": {"argv": ["/bin/true"]}}), expect=201)
        bjob = self.call("POST", "/scheduler/jobs", dict(every, name="bus-once", target={
            "type": "bus", "subject": "kill9.slots"}), expect=201)
        rng = random.Random(os.getpid())
        began = time.monotonic()
        pids = set()
        for _ in range(KILLS):
            time.sleep(rng.choice([0.02, 0.1, 0.3, 0.6, 0.9, 1.3]))
            k = self.g.kernel("scheduler")
            if k["state"] != "ready":
                self.g.wait_kernel("scheduler", lambda k: k["state"] == "ready",
                                   timeout=scaled(20))
                k = self.g.kernel("scheduler")
            pids.add(k["pid"])
            os.kill(k["pid"], signal.SIGKILL)
            self.g.wait_kernel("scheduler", lambda n: n["state"] == "ready" and
                               n["pid"] != k["pid"], timeout=scaled(20))
        time.sleep(2)
        for j in (xjob, bjob):
            self.call("POST", "/scheduler/jobs/%s/pause" % j["id"], {})
        elapsed = time.monotonic() - began
        self.assertEqual(len(pids), KILLS)

        def settled():
            runs = self.all_runs(xjob["id"]) + self.all_runs(bjob["id"])
            return all(r["state"] not in ("pending", "running") for r in runs) or None
        self.g.wait_for(settled, scaled(30), interval=0.2, message="open runs settled")

        # The executor job: each slot exactly once, no gap.
        runs = self.all_runs(xjob["id"])
        slots = sorted(r["slot_ms"] for r in runs if r["slot_ms"] is not None)
        self.assertEqual(len(slots), len(set(slots)), "a slot recorded twice")
        # Every second between creation and pause has its slot (the first
        # and the last may fall either side of the edges).
        self.assertGreaterEqual(len(slots), int(elapsed) - 2, "%.1f s ran" % elapsed)
        self.assertEqual(slots, list(range(slots[0], slots[-1] + 1000, 1000)),
                         "slots missing between %d and %d" % (slots[0], slots[-1]))
        bad = [r for r in runs if r["state"] != "succeeded"]
        self.assertEqual(bad, [], "runs that did not succeed")
        keys = {}
        for j in self.all_exec_jobs():
            if j["idempotency_key"] and j["idempotency_key"].startswith("sched:" + xjob["id"]):
                keys[j["idempotency_key"]] = keys.get(j["idempotency_key"], 0) + 1
        self.assertEqual(sorted(keys), sorted("sched:%s:%d" % (xjob["id"], s) for s in slots))
        self.assertEqual(set(keys.values()), {1})

        # The bus job: at most once; a slot without its message was interrupted.
        runs = self.all_runs(bjob["id"])
        slots = sorted(r["slot_ms"] for r in runs if r["slot_ms"] is not None)
        self.assertEqual(len(slots), len(set(slots)))
        self.assertEqual(slots, list(range(slots[0], slots[-1] + 1000, 1000)))
        out = self.call("GET", "/kernels/message_bus/groups/k9/poll?subject=kill9.slots&max=1000")
        sent = [int(m["headers"]["x-grace-slot"]) for m in out["messages"]]
        self.assertEqual(len(sent), len(set(sent)), "a slot published twice")
        by_slot = {r["slot_ms"]: r for r in runs}
        for s in slots:
            if s not in sent:
                self.assertEqual(by_slot[s]["state"], "interrupted", by_slot[s])
        for s in sent:
            self.assertIn(by_slot[s]["state"], ("succeeded", "interrupted"), by_slot[s])
        print("%d kills; %d slots each; bus runs interrupted: %d, of them published: %d"
              % (KILLS, len(slots), sum(r["state"] == "interrupted" for r in runs),
                 sum(by_slot[s]["state"] == "interrupted" for s in sent)), file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
