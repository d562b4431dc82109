"""Workflow targets of the scheduler (issue 13: "start a workflow"), and who
may make which job decided by the policy kernel at creation as well as at
each fire (docs/scheduler.md): a user's job starts a run of the user's
stored definition as that user, once per slot, the run's id kept as the
scheduler run's target_ref and its end reflected (completed: succeeded;
faulted: failed); a definition the user does not own fails the run; a
policy that takes workflow.write from users refuses such a job at
creation (403) and denies an existing one when it fires; under the
default set a user still may not make executor or route jobs."""

import os
import random
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import GraceServer, GraceTestCase, ServerClassCase, scaled  # noqa: E402

USER, OTHER, PW = "swuma", "swvic", "sched-wf-password-1"
NO_WF = ('@id("no-user-workflows")\nforbid (principal in Role::"user", action == Action::"workflow.write",'
         ' resource);')


def doc(name, tasks):
    return {"document": {"dsl": "1.0.0", "namespace": "test", "name": name, "version": "1.0.0"},
            "do": tasks}


class SchedulerWorkflow(ServerClassCase):
    @classmethod
    def make_server(cls):
        return GraceServer(kernels={"scheduler": {}, "workflow": {}, "message_bus": {}, "policy": {}})

    @classmethod
    def prepare(cls):
        cls.g.create_user(USER, PW)
        cls.g.create_user(OTHER, PW)

    def setUp(self):
        self.g.set_test_policy(None)
        self.uma = {"Authorization": "Bearer " + self.g.login(USER, PW)}
        self.vic = {"Authorization": "Bearer " + self.g.login(OTHER, PW)}

    def tearDown(self):
        self.g.set_test_policy(None)

    def call(self, method, path, body=None, expect=200, headers=None):
        st, _, out = self.g.http(method, path, body, headers, timeout=scaled(20))
        self.assertEqual(st, expect, "%s %s -> %s %r" % (method, path, st, out))
        return out

    def store(self, name, tasks, headers):
        st, _, out = self.g.http("POST", "/workflow/definitions", doc(name, tasks), headers)
        self.assertIn(st, (200, 201), out)

    def job(self, name, target, headers, schedule="@yearly", expect=201):
        return self.call("POST", "/scheduler/jobs", {"name": name, "schedule": schedule,
                                                     "target": target}, expect, headers)

    def runs(self, jid, headers):
        return self.call("GET", "/scheduler/jobs/%s/runs" % jid, headers=headers)["runs"]

    def wait_runs(self, jid, headers, pred, what):
        def ok():
            r = self.runs(jid, headers)
            return r if pred(r) else None
        return self.g.wait_for(ok, scaled(20), message=what)

    def test_a_users_job_starts_their_workflow_once_per_slot(self):
        self.store("greet", [{"hello": {"set": {"greeting": "${ \"hello \" + .name }"}}}], self.uma)
        j = self.job("greeter", {"type": "workflow", "definition": "greet", "input": {"name": "Ada"}},
                     self.uma)
        self.assertEqual(j["target"]["type"], "workflow")
        self.call("POST", "/scheduler/jobs/%s/trigger" % j["id"], {}, 202, self.uma)
        runs = self.wait_runs(j["id"], self.uma, lambda r: r and r[0]["state"] == "succeeded",
                              "the scheduled workflow run's end")
        r = runs[0]
        self.assertEqual((r["detail"]["status"], r["detail"]["output"]), ("completed", {"greeting": "hello Ada"}))
        wf = self.call("GET", "/workflow/runs/" + r["target_ref"], headers=self.uma)
        self.assertEqual((wf["owner"], wf["status"], wf["input"]), (USER, "completed", {"name": "Ada"}))
        # every second: each slot starts exactly one run
        self.store("tick", [{"t": {"set": {"n": "${ .name }"}}}], self.uma)
        tick = self.job("ticker", {"type": "workflow", "definition": "tick", "input": {"name": "t"}},
                        self.uma, schedule="* * * * * *")
        self.wait_runs(tick["id"], self.uma,
                       lambda r: sum(1 for x in r if x["state"] == "succeeded") >= 3, "three slots")
        self.call("POST", "/scheduler/jobs/%s/pause" % tick["id"], {}, 200, self.uma)

        def settled():
            r = self.runs(tick["id"], self.uma)
            return r if all(x["state"] in ("succeeded", "failed") for x in r) else None
        sched_runs = self.g.wait_for(settled, scaled(20), message="the ticker's runs ended")
        refs = [x["target_ref"] for x in sched_runs]
        self.assertEqual(len(refs), len(set(refs)))
        self.assertEqual(len({x["slot_ms"] for x in sched_runs}), len(sched_runs))
        wf_runs = self.call("GET", "/workflow/runs?definition=tick&limit=1000", headers=self.uma)["runs"]
        started = {x["id"] for x in wf_runs}
        self.assertEqual(started, set(refs))

    def test_a_faulted_run_fails_and_anothers_definition_is_not_found(self):
        self.store("boom", [{"b": {"raise": {"error": {"type": "https://grace.test/boom",
                                                        "status": 500}}}}], self.uma)
        j = self.job("boomer", {"type": "workflow", "definition": "boom"}, self.uma)
        self.call("POST", "/scheduler/jobs/%s/trigger" % j["id"], {}, 202, self.uma)
        r = self.wait_runs(j["id"], self.uma, lambda r: r and r[0]["state"] == "failed", "failed")[0]
        self.assertEqual(r["detail"]["status"], "faulted", r)
        self.assertTrue(r["target_ref"])
        # vic's job names uma's definition: the workflow kernel answers 404 to vic
        j = self.job("not-mine", {"type": "workflow", "definition": "boom"}, self.vic)
        self.call("POST", "/scheduler/jobs/%s/trigger" % j["id"], {}, 202, self.vic)
        r = self.wait_runs(j["id"], self.vic, lambda r: r and r[0]["state"] == "failed", "failed")[0]
        self.assertEqual(r["detail"]["status"], 404, r)

    def test_the_workflow_kernel_answers_a_resent_start_with_the_first_run(self):
        self.store("keyed", [{"k": {"set": {"x": 1}}}], self.uma)
        # as the scheduler calls it (:8000 does not forward the header)

        def start(key):
            st, _, out = self.g.kernel_http("workflow", "POST", "/runs", {"definition": "keyed"}, {
                "X-Grace-User": USER, "X-Grace-Role": "user", "X-Grace-Caller": "scheduler",
                "Idempotency-Key": key})
            return st, out
        st, first = start("sched:j_test:1000")
        self.assertEqual(st, 201, first)
        st, again = start("sched:j_test:1000")
        self.assertEqual((st, again["id"]), (200, first["id"]), again)
        st, other = start("sched:j_test:2000")
        self.assertEqual(st, 201, other)
        self.assertNotEqual(other["id"], first["id"])
        runs = self.call("GET", "/workflow/runs?definition=keyed", headers=self.uma)["runs"]
        self.assertEqual(len(runs), 2)

    def test_bad_workflow_targets_name_the_field(self):
        for target, field in (({"type": "workflow"}, "target.definition"),
                              ({"type": "workflow", "definition": "a/b"}, "target.definition"),
                              ({"type": "workflow", "definition": "a", "version": 3}, "target.version"),
                              ({"type": "workflow", "definition": "a", "extra": 1}, "target.extra")):
            out = self.job("bad", target, self.uma, expect=400)
            self.assertEqual(out["error"]["field"], field, out)

    def test_policy_decides_at_creation_and_at_each_fire(self):
        self.store("greet2", [{"hello": {"set": {"x": 1}}}], self.uma)
        # the default set: route and executor jobs stay the admins'
        out = self.job("r", {"type": "route", "kernel": "message_bus", "path": "/retention"},
                       self.uma, expect=403)
        self.assertEqual((out["error"]["code"], out["error"]["field"]), ("forbidden", "target.type"))
        self.assertIn("no policy permits it", out["error"]["message"])
        self.job("r", {"type": "route", "kernel": "message_bus", "method": "GET",
                       "path": "/subjects"}, None)
        kept = self.job("kept", {"type": "workflow", "definition": "greet2"}, self.uma)
        self.g.set_test_policy(NO_WF)
        out = self.job("refused", {"type": "workflow", "definition": "greet2"}, self.uma, expect=403)
        self.assertIn("no-user-workflows", out["error"]["message"])
        self.call("POST", "/scheduler/jobs/%s/trigger" % kept["id"], {}, 202, self.uma)
        r = self.wait_runs(kept["id"], self.uma, lambda r: r and r[0]["state"] == "denied", "denied")[0]
        self.assertIn("no-user-workflows", r["detail"]["reason"])
        self.assertFalse(r["target_ref"])
        self.g.set_test_policy(None)
        self.call("POST", "/scheduler/jobs/%s/trigger" % kept["id"], {}, 202, self.uma)
        self.wait_runs(kept["id"], self.uma, lambda r: r[0]["state"] == "succeeded", "allowed again")


# Fewer under the sanitizers (GRACE_SANITIZED=1: each restart is slower).
KILLS = 4 if os.environ.get("GRACE_SANITIZED") == "1" else 10
RESTARTS = {"restart_burst": 1000, "restart_window_ms": 1000, "backoff_initial_ms": 10,
            "backoff_max_ms": 50}


class SchedulerWorkflowKill9(GraceTestCase):
    """A workflow job fires every second while the scheduler is killed with
    SIGKILL again and again: every slot started exactly one run (the
    slot's key is the start's Idempotency-Key), none twice, none lost."""

    def setUp(self):
        self.g = GraceServer(kernels={"scheduler": RESTARTS, "workflow": {}, "message_bus": {}})
        self.g.start()
        self.addCleanup(self.g.close)

    def call(self, method, path, body=None, expect=200):
        st, _, out = self.g.http(method, path, body, timeout=scaled(30))
        self.assertEqual(st, expect, "%s %s -> %s %r" % (method, path, st, out))
        return out

    def test_each_slot_starts_one_run_across_kills(self):
        self.call("POST", "/workflow/definitions", doc("k9", [{"a": {"set": {"ok": True}}}]), 201)
        job = self.call("POST", "/scheduler/jobs", {
            "name": "wf-once", "schedule": "* * * * * *", "missed": {"policy": "run_all", "max": 1000},
            "target": {"type": "workflow", "definition": "k9"}}, 201)
        rng = random.Random(os.getpid())
        for _ in range(KILLS):
            time.sleep(rng.choice([0.02, 0.1, 0.3, 0.6, 0.9]))
            k = self.g.wait_kernel("scheduler", lambda k: k["state"] == "ready", timeout=scaled(20))
            os.kill(k["pid"], signal.SIGKILL)
            self.g.wait_kernel("scheduler", lambda n: n["state"] == "ready" and n["pid"] != k["pid"],
                               timeout=scaled(20))
        time.sleep(1.5)
        self.call("POST", "/scheduler/jobs/%s/pause" % job["id"], {})

        def settled():
            r = self.call("GET", "/scheduler/jobs/%s/runs?limit=1000" % job["id"])["runs"]
            return r if all(x["state"] not in ("pending", "running") for x in r) else None
        runs = self.g.wait_for(settled, scaled(40), interval=0.2, message="open runs settled")
        slots = sorted(r["slot_ms"] for r in runs)
        self.assertEqual(len(slots), len(set(slots)), "a slot recorded twice")
        self.assertEqual(slots, list(range(slots[0], slots[-1] + 1000, 1000)), "a slot lost")
        self.assertEqual([r for r in runs if r["state"] != "succeeded"], [])
        refs = [r["target_ref"] for r in runs]
        started = [r["id"] for r in self.call("GET", "/workflow/runs?definition=k9&limit=1000")["runs"]]
        self.assertEqual(len(refs), len(set(refs)))
        self.assertEqual(sorted(started), sorted(refs), "a slot started two runs, or none")
        print("%d kills; %d slots, one run each" % (KILLS, len(slots)), file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
