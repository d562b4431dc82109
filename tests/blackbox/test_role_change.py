"""A user's role change reaches the kernels that act later as that user
(docs/users.md "A role change reaches the kernels"): an admin's scheduled
job, workflow run waiting on a timer and state machine with a delayed
event each do something only an admin may do; the admin is demoted
through governance's user.role request while the scheduler is stopped;
the next firing of each acts as a user and is denied; the scheduler,
started again, has not lost the notice (it acts for no one until the main
process has told it). And a deleted user's workflow runs and state-machine
instances go with the user: a new user of the name inherits none."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import GraceServer, ServerClassCase, scaled  # noqa: E402

PW = "role-change-password-1"
WAIT_MS = 6000  # the run's timer and the delayed event: past the demotion

ROUTE_JOB = {"name": "ada-route", "schedule": "* * * * * *",
             "target": {"type": "route", "kernel": "message_bus", "method": "GET",
                        "path": "/stats"}}
# Waits, then publishes under grace. (the bus refuses that to users).
WF = {"document": {"dsl": "1.0.0", "namespace": "test", "name": "ada-wf", "version": "1.0.0"},
      "do": [{"hold": {"wait": {"milliseconds": WAIT_MS}}},
             {"e": {"emit": {"event": {"with": {"type": "grace.ada.secret", "data": 1}}}}}]}
LAMP = {"id": "lamp", "initial": "off",
        "states": {"off": {"on": {"ARM": "armed"}},
                   "armed": {"after": {str(WAIT_MS): "on"}},
                   "on": {}}}
# Delayed events are for admins here (the test's policy).
TIMERS_FOR_ADMINS = ('@id("timers-for-admins")\n'
                     'forbid (principal in Role::"user", action == Action::"state_machine.send",'
                     ' resource) when { context.source == "timer" };')
WAITER = {"document": {"dsl": "1.0.0", "namespace": "test", "name": "wes-wf",
                       "version": "1.0.0"},
          "do": [{"hold": {"wait": {"seconds": 600}}}]}


class RoleChange(ServerClassCase):
    @classmethod
    def make_server(cls):
        return GraceServer(
            kernels={"governance": {}, "scheduler": {}, "workflow": {}, "state_machine": {},
                     "message_bus": {}, "policy": {}},
            config={"governance": {"default_rule": "1 admin", "poll_ms": 50,
                                   "expiry_s": 3600}})

    @classmethod
    def prepare(cls):
        for name in ("ada", "bea"):
            cls.g.create_user(name, PW, "admin")

    tokens = {}

    def as_(self, who, method, path, body=None, expect=None):
        if who and who not in self.tokens:
            self.tokens[who] = self.g.login(who, PW)
        h = {"Authorization": "Bearer " + self.tokens[who]} if who else None
        st, _, out = self.g.http(method, path, body, headers=h, timeout=scaled(30))
        if expect is not None:
            self.assertEqual(st, expect, "%s %s as %s -> %s %r" % (method, path, who, st, out))
        return out

    def runs(self, job_id):
        return self.as_(None, "GET", "/scheduler/jobs/%s/runs?limit=1000" % job_id,
                        expect=200)["runs"]

    def test_a_demoted_admins_items_act_as_a_user(self):
        self.g.set_test_policy(TIMERS_FOR_ADMINS)
        self.addCleanup(self.g.set_test_policy, None)
        job = self.as_("ada", "POST", "/scheduler/jobs", ROUTE_JOB, expect=201)
        self.addCleanup(self.as_, None, "DELETE", "/scheduler/jobs/" + job["id"])
        self.g.wait_for(lambda: any(r["state"] == "succeeded" for r in self.runs(job["id"])),
                        scaled(15), message="the admin's route job fires")
        self.as_("ada", "POST", "/workflow/definitions", WF, expect=201)
        run = self.as_("ada", "POST", "/workflow/runs", {"definition": "ada-wf", "input": {}},
                       expect=201)
        st, _, _ = self.g.http("POST", "/state-machine/machines", {"name": "lamp", "machine": LAMP})
        self.assertIn(st, (201, 403))
        inst = self.as_("ada", "POST", "/state-machine/instances", {"machine": "lamp"},
                        expect=201)
        self.as_("ada", "POST", "/state-machine/instances/%s/events" % inst["id"],
                 {"event": {"type": "ARM"}}, expect=200)

        # The scheduler stops; the demotion happens while it is down.
        self.as_(None, "POST", "/kernel-ports/scheduler/stop", {}, expect=202)
        self.g.wait_kernel("scheduler", lambda k: k["state"] == "stopped")
        stopped_ms = time.time() * 1000
        rid = self.as_("bea", "POST", "/governance/requests",
                       {"action": "user.role", "params": {"name": "ada", "role": "user"}},
                       expect=201)["id"]
        self.as_(None, "POST", "/governance/requests/%d/approve" % rid, {}, expect=200)

        def done():
            r = self.as_(None, "GET", "/governance/requests/%d" % rid, expect=200)
            return r if r["state"] in ("done", "failed") else None
        r = self.g.wait_for(done, scaled(30), message="the role change ran")
        self.assertEqual(r["state"], "done", r)
        result = r["result"]["result"]
        self.assertEqual((result["role"], result["was"]), ("user", "admin"), result)
        # The stopped kernel is named as still to be told (those that were
        # up are too if they took longer than the answer's 5 s: a slow CI).
        self.assertIn("scheduler", result["kernels_pending"], result)
        self.assertLessEqual(set(result["kernels_pending"]),
                             {"scheduler", "workflow", "state_machine"}, result)

        # The workflow run's timer ends after the change: its emit is a user's.
        def finished():
            r = self.as_(None, "GET", "/workflow/runs/" + run["id"], expect=200)
            return r if r["status"] in ("completed", "faulted", "cancelled") else None
        f = self.g.wait_for(finished, scaled(30), message="the run ended")
        self.assertEqual(f["status"], "faulted", f)
        self.assertEqual(f["error"]["status"], 403, f)

        # The delayed event fires as a user: denied, recorded, the state unchanged.
        def denial():
            h = self.as_(None, "GET", "/state-machine/instances/%s/history" % inst["id"],
                         expect=200)["transitions"]
            return h if h[-1]["source"] == "timer" else None
        h = self.g.wait_for(denial, scaled(30), message="the delayed event fired")
        self.assertIn("policy", h[-1].get("denied", ""), h[-1])
        got = self.as_(None, "GET", "/state-machine/instances/" + inst["id"], expect=200)
        self.assertEqual(got["value"], "armed")

        # The scheduler starts again: the notice was kept, and no run of the
        # job acts as an admin any more.
        self.as_(None, "POST", "/kernel-ports/scheduler/start", {}, expect=202)
        self.g.wait_kernel("scheduler", lambda k: k["state"] == "ready")
        got = self.g.wait_for(
            lambda: (lambda j: j if j["role"] == "user" else None)(
                self.as_(None, "GET", "/scheduler/jobs/" + job["id"], expect=200)),
            scaled(15), message="the job's role changed")
        self.assertEqual(got["owner"], "ada")
        runs = self.g.wait_for(
            lambda: (lambda rs: rs if any(r["state"] == "denied" and r["created_ms"] >= stopped_ms
                                          for r in rs) else None)(self.runs(job["id"])),
            scaled(15), message="a run denied after the demotion")
        late = [r for r in runs if r["created_ms"] >= stopped_ms]
        self.assertNotIn("succeeded", [r["state"] for r in late], late)

    def test_a_new_user_of_a_name_inherits_no_runs_or_instances(self):
        self.g.create_user("wes", PW)
        self.as_("wes", "POST", "/workflow/definitions", WAITER, expect=201)
        run = self.as_("wes", "POST", "/workflow/runs", {"definition": "wes-wf", "input": {}},
                       expect=201)
        st, _, _ = self.g.http("POST", "/state-machine/machines", {"name": "lamp", "machine": LAMP})
        self.assertIn(st, (201, 403))
        inst = self.as_("wes", "POST", "/state-machine/instances", {"machine": "lamp"},
                        expect=201)
        self.as_(None, "DELETE", "/auth/users/wes", expect=200)
        self.tokens.pop("wes")  # its sessions went with it
        self.g.wait_for(lambda: self.g.http("GET", "/workflow/runs/" + run["id"])[0] == 404,
                        scaled(15), message="wes's run outlived wes")
        self.g.wait_for(lambda: self.g.http("GET", "/state-machine/instances/" + inst["id"])[0]
                        == 404, scaled(15), message="wes's instance outlived wes")
        self.g.create_user("wes", PW)
        self.assertEqual(self.as_("wes", "GET", "/workflow/runs", expect=200)["runs"], [])
        self.assertEqual(self.as_("wes", "GET", "/state-machine/instances",
                                  expect=200)["instances"], [])
        # Only the main process removes a user's runs and instances.
        for path in ("/workflow/owners/ada", "/state-machine/owners/ada"):
            st, _, out = self.g.http("DELETE", path)
            self.assertEqual(st, 403, (path, out))
        # Nor does anyone but the main process set roles, an admin included.
        for path in ("/scheduler/owner-roles", "/workflow/owner-roles",
                     "/state-machine/owner-roles"):
            st, _, out = self.g.http("PUT", path, {"roles": [{"owner": "bea", "role": "admin",
                                                              "version": 1 << 40}]})
            self.assertEqual(st, 403, (path, out))


if __name__ == "__main__":
    unittest.main()
