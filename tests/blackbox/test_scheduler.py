"""The scheduler kernel (8120) through `grace serve` and :8000's
/scheduler/* (issue 13): next fire times checked before saving (the
daylight-saving rules), bad input refused naming the field with nothing
stored, jobs that publish on the bus, call a kernel route and run
executor jobs as their creator, users scoped to their own bus jobs,
pause, manual trigger and resume, the missed-run policies and the
starting deadline after downtime, overlap forbid and replace, jitter, and
the policy kernel consulted each time a job fires."""

import os
import sys
import time
import unittest
import urllib.parse
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(__file__))
from harness import GraceServer, GraceTestCase, http_request, scaled  # noqa: E402

DEFAULT_SET = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "etc",
                           "policy", "default.cedar")

PW = "scheduler-password-1"
CONFIG = {"scheduler": {"late_tolerance_ms": 300}}


def ms(iso):
    return int(datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
               .timestamp() * 1000)


class Scheduler(GraceTestCase):
    @classmethod
    def setUpClass(cls):
        cls.g = GraceServer(config=CONFIG, kernels={"scheduler": {}, "message_bus": {},
                                                    "executor": {}, "policy": {}})
        try:
            cls.g.start()
            cls.g.create_user("uma", PW)
            cls.user_token = cls.g.login("uma", PW)
        except BaseException:
            cls.g.dump_log()
            cls.g.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.g.close()

    # -- helpers

    def admin(self, method, path, body=None, expect=None):
        st, _, out = self.g.http(method, path, body, timeout=scaled(20))
        if expect is not None:
            self.assertEqual(st, expect, "%s %s -> %s %r" % (method, path, st, out))
        return st, out

    def user(self, method, path, body=None, expect=None):
        st, _, out = http_request(self.g.api_port, method, path, body,
                                  {"Authorization": "Bearer " + self.user_token}, scaled(20))
        if expect is not None:
            self.assertEqual(st, expect, "%s %s -> %s %r" % (method, path, st, out))
        return st, out

    def create(self, body, who="admin"):
        call = self.admin if who == "admin" else self.user
        return call("POST", "/scheduler/jobs", body, expect=201)[1]

    def runs(self, job_id, who="admin"):
        call = self.admin if who == "admin" else self.user
        return call("GET", "/scheduler/jobs/%s/runs?limit=1000" % job_id, expect=200)[1]["runs"]

    def wait_runs(self, job_id, pred, timeout=None, message=None):
        return self.g.wait_for(lambda: (lambda r: r if pred(r) else None)(self.runs(job_id)),
                               timeout or scaled(15), interval=0.1,
                               message=message or "runs of %s" % job_id)

    def pause(self, job_id):
        self.admin("POST", "/scheduler/jobs/%s/pause" % job_id, {}, expect=200)

    # -- next fire times

    def test_next_fire_times_follow_the_dst_rules(self):
        q = urllib.parse.urlencode({"schedule": "30 2 * * *", "timezone": "Europe/Berlin",
                                    "after": ms("2024-03-30T12:00:00Z"), "count": 2})
        _, out = self.user("GET", "/scheduler/next?" + q, expect=200)
        self.assertTrue(out["fixed_hours"])
        # 02:30 does not exist on 31 March: once, as the gap ends.
        self.assertEqual([n["local"] for n in out["next"]],
                         ["2024-03-31T03:00:00+02:00", "2024-04-01T02:30:00+02:00"])
        self.assertEqual(out["next"][0]["utc"], "2024-03-31T01:00:00Z")
        q = urllib.parse.urlencode({"schedule": "0 * * * *", "timezone": "Europe/Berlin",
                                    "after": ms("2024-10-26T23:30:00Z"), "count": 3})
        _, out = self.user("GET", "/scheduler/next?" + q, expect=200)
        self.assertFalse(out["fixed_hours"])
        # Elapsed time: the hourly job runs every hour, 02:00 twice.
        self.assertEqual([n["local"] for n in out["next"]],
                         ["2024-10-27T02:00:00+02:00", "2024-10-27T02:00:00+01:00",
                          "2024-10-27T03:00:00+01:00"])
        q = urllib.parse.urlencode({"schedule": "30 2 * * *", "timezone": "Europe/Berlin",
                                    "after": ms("2024-10-26T12:00:00Z"), "count": 2})
        _, out = self.user("GET", "/scheduler/next?" + q, expect=200)
        # Repeated in autumn: once, at the first 02:30.
        self.assertEqual([n["local"] for n in out["next"]],
                         ["2024-10-27T02:30:00+02:00", "2024-10-28T02:30:00+01:00"])

    def test_bad_input_names_the_field_and_stores_nothing(self):
        bus = {"type": "bus", "subject": "ok.subject"}
        cases = [
            ({"name": "a", "schedule": "61 * * * *", "target": bus}, "schedule"),
            ({"name": "a", "schedule": "* * 30 2 *", "target": bus}, "schedule"),
            ({"name": "a", "schedule": "@every 0s", "target": bus}, "schedule"),
            ({"name": "a", "schedule": "@hourly", "timezone": "Mars/Olympus", "target": bus},
             "timezone"),
            ({"name": "a", "schedule": "@hourly", "timezone": "../../etc/passwd", "target": bus},
             "timezone"),
            ({"name": "", "schedule": "@hourly", "target": bus}, "name"),
            ({"name": "a", "schedule": "@hourly"}, "target"),
            ({"name": "a", "schedule": "@hourly", "target": {"type": "fax"}}, "target.type"),
            ({"name": "a", "schedule": "@hourly", "target": {"type": "workflow"}},
             "target.type"),
            ({"name": "a", "schedule": "@hourly", "target": {"type": "bus", "subject": "a b"}},
             "target.subject"),
            ({"name": "a", "schedule": "@hourly", "target": bus,
              "missed": {"policy": "sometimes"}}, "missed.policy"),
            ({"name": "a", "schedule": "@hourly", "target": bus,
              "missed": {"policy": "run_all", "max": 100000}}, "missed.max"),
            ({"name": "a", "schedule": "@hourly", "target": bus, "overlap": "maybe"}, "overlap"),
            ({"name": "a", "schedule": "@hourly", "target": bus, "jitter_s": -1}, "jitter_s"),
            ({"name": "a", "schedule": "@hourly", "target": bus, "starting_deadline_s": 0},
             "starting_deadline_s"),
            ({"name": "a", "schedule": "@hourly", "target": bus, "colour": "red"}, "colour"),
            ({"name": "a", "schedule": "@hourly",
              "target": {"type": "route", "kernel": "nosuch", "path": "/x"}}, "target.kernel"),
            ({"name": "a", "schedule": "@hourly",
              "target": {"type": "route", "kernel": "message_bus", "path": "stats"}},
             "target.path"),
            ({"name": "a", "schedule": "@hourly",
              "target": {"type": "executor", "job": {"argv": ["ls"]}}}, "target.job.argv[0]"),
            ({"name": "a", "schedule": "@hourly",
              "target": {"type": "executor", "job": {"argv": ["/bin/true"],
                                                     "limits": {"pids": 0}}}},
             "target.job.limits.pids"),
        ]
        _, before = self.admin("GET", "/scheduler/jobs?limit=1000", expect=200)
        for body, field in cases:
            st, out = self.admin("POST", "/scheduler/jobs", body)
            self.assertEqual(st, 400, "%r -> %s %r" % (body, st, out))
            self.assertEqual(out["error"]["field"], field, out)
            self.assertTrue(out["error"]["message"].startswith(field), out)
        st, out = self.admin("POST", "/scheduler/jobs", "not json")
        self.assertEqual(st, 400, out)
        _, after = self.admin("GET", "/scheduler/jobs?limit=1000", expect=200)
        self.assertEqual(len(after["jobs"]), len(before["jobs"]))
        q = urllib.parse.urlencode({"schedule": "* * L * *"})
        _, out = self.user("GET", "/scheduler/next?" + q, expect=400)
        self.assertEqual(out["error"]["field"], "schedule")

    # -- targets

    def test_bus_job_fires_every_second_as_its_creator(self):
        job = self.create({"name": "bus-every-second", "schedule": "* * * * * *",
                           "target": {"type": "bus", "subject": "sched.test.every",
                                      "payload": {"hello": "world"},
                                      "headers": {"x-mine": "1"}}})
        self.assertEqual(job["owner"], self.g.first_admin()[0])
        self.assertEqual(len(job["next"]), 5)
        runs = self.wait_runs(job["id"], lambda r: sum(x["state"] == "succeeded" for x in r) >= 3)
        self.pause(job["id"])
        ok = [r for r in runs if r["state"] == "succeeded"]
        slots = sorted(r["slot_ms"] for r in ok)
        self.assertEqual(len(set(slots)), len(slots))
        for r in ok:
            self.assertEqual(r["slot_ms"] % 1000, 0)
            self.assertEqual(r["trigger"], "schedule")
            self.assertEqual(r["detail"]["status"], 200, r)
        _, out = self.admin("GET", "/kernels/message_bus/groups/sched-every/poll?"
                            "subject=sched.test.every&max=100", expect=200)
        msgs = out["messages"]
        self.assertGreaterEqual(len(msgs), 3)
        keys = [m["key"] for m in msgs]
        self.assertEqual(len(set(keys)), len(keys))
        for m in msgs:
            self.assertEqual(m["payload"], {"hello": "world"})
            self.assertEqual(m["headers"]["x-grace-scheduler-job"], job["id"])
            self.assertEqual(m["headers"]["x-mine"], "1")
            self.assertIn(int(m["headers"]["x-grace-slot"]), slots + [max(slots) + 1000])

    def test_route_target(self):
        job = self.create({"name": "route-stats", "schedule": "* * * * * *",
                           "target": {"type": "route", "kernel": "message_bus",
                                      "method": "GET", "path": "/stats"}})
        runs = self.wait_runs(job["id"], lambda r: any(x["state"] == "succeeded" for x in r))
        self.pause(job["id"])
        r = next(x for x in runs if x["state"] == "succeeded")
        self.assertEqual(r["detail"]["status"], 200)
        self.assertIn("published", r["detail"]["body"])
        self.assertIsNotNone(r["duration_ms"])

    def test_executor_target_and_overlap(self):
        # forbid: a run still going makes the next slots skipped.
        job = self.create({"name": "exec-forbid", "schedule": "* * * * * *", "overlap": "forbid",
                           "target": {"type": "executor",
                                      "job": {"argv": ["/bin/sleep", "2.5"]}}})
        runs = self.wait_runs(job["id"], lambda r: any(x["state"] == "skipped" for x in r) and
                              any(x["state"] == "succeeded" for x in r), timeout=scaled(20))
        self.pause(job["id"])
        skipped = next(x for x in runs if x["state"] == "skipped")
        self.assertEqual(skipped["detail"]["reason"], "overlap: forbid, a run is still going")
        done = next(x for x in runs if x["state"] == "succeeded")
        self.assertTrue(done["target_ref"].startswith("x_"))
        self.assertEqual(done["detail"]["exit_code"], 0)
        _, xjob = self.admin("GET", "/executor/jobs/" + done["target_ref"], expect=200)
        self.assertEqual(xjob["idempotency_key"], "sched:%s:%d" % (job["id"], done["slot_ms"]))
        self.assertEqual(xjob["owner"], self.g.first_admin()[0])
        # replace: the newer run cancels the older one's executor job.
        job = self.create({"name": "exec-replace", "schedule": "* * * * * */2",
                           "overlap": "replace",
                           "target": {"type": "executor", "job": {"argv": ["/bin/sleep", "30"],
                                                                  "kill_grace_ms": 100}}})
        runs = self.wait_runs(job["id"], lambda r: any(x["state"] == "cancelled" for x in r),
                              timeout=scaled(20))
        self.pause(job["id"])
        old = next(x for x in runs if x["state"] == "cancelled")
        self.assertEqual(old["detail"]["reason"], "replaced by a newer run")

        def cancelled():
            _, x = self.admin("GET", "/executor/jobs/" + old["target_ref"])
            return x if x["state"] == "cancelled" else None
        self.g.wait_for(cancelled, scaled(10), message="the replaced executor job cancelled")

    # -- users

    def test_users_keep_their_own_bus_jobs(self):
        st, out = self.user("POST", "/scheduler/jobs", {
            "name": "mine", "schedule": "@hourly",
            "target": {"type": "route", "kernel": "message_bus", "path": "/retention"}})
        self.assertEqual(st, 403, out)
        self.assertEqual(out["error"]["field"], "target.type")
        st, out = self.user("POST", "/scheduler/jobs", {
            "name": "mine", "schedule": "@hourly",
            "target": {"type": "executor", "job": {"argv": ["/bin/true"]}}})
        self.assertEqual(st, 403, out)
        theirs = self.create({"name": "admins-own", "schedule": "@hourly",
                              "target": {"type": "bus", "subject": "a.b"}})
        mine = self.create({"name": "mine", "schedule": "* * * * * *",
                            "target": {"type": "bus", "subject": "grace.forged"}}, who="user")
        self.assertEqual(mine["owner"], "uma")
        self.assertEqual(mine["role"], "user")
        _, out = self.user("GET", "/scheduler/jobs", expect=200)
        self.assertEqual([j["id"] for j in out["jobs"]], [mine["id"]])
        self.user("GET", "/scheduler/jobs/" + theirs["id"], expect=404)
        self.user("POST", "/scheduler/jobs/%s/pause" % theirs["id"], {}, expect=404)
        self.user("DELETE", "/scheduler/jobs/" + theirs["id"], expect=404)
        _, out = self.admin("GET", "/scheduler/jobs?limit=1000", expect=200)
        self.assertIn(mine["id"], [j["id"] for j in out["jobs"]])
        # It acts as uma: the bus refuses her a grace.* subject.
        runs = None
        deadline = time.monotonic() + scaled(15)
        while time.monotonic() < deadline:
            _, out = self.user("GET", "/scheduler/jobs/%s/runs" % mine["id"], expect=200)
            runs = [r for r in out["runs"] if r["state"] in ("failed", "succeeded", "denied")]
            if runs:
                break
            time.sleep(0.1)
        self.user("POST", "/scheduler/jobs/%s/pause" % mine["id"], {}, expect=200)
        self.assertTrue(runs, "no run of the user's job")
        self.assertEqual(runs[0]["state"], "failed", runs[0])
        self.assertEqual(runs[0]["detail"]["status"], 403, runs[0])
        self.user("DELETE", "/scheduler/jobs/" + mine["id"], expect=200)

    # -- controls

    def test_pause_trigger_resume(self):
        job = self.create({"name": "controls", "schedule": "* * * * * *",
                           "target": {"type": "bus", "subject": "sched.controls"}})
        self.wait_runs(job["id"], lambda r: len(r) >= 1)
        _, out = self.admin("POST", "/scheduler/jobs/%s/pause" % job["id"], {}, expect=200)
        self.assertTrue(out["paused"])
        self.assertEqual(out["next"], [])
        time.sleep(0.5)  # lets a slot decided before the pause finish
        n = len(self.runs(job["id"]))
        _, out = self.admin("POST", "/scheduler/jobs/%s/trigger" % job["id"], {}, expect=202)
        runs = self.wait_runs(job["id"], lambda r: any(x["trigger"] == "manual" and
                                                       x["state"] == "succeeded" for x in r))
        manual = [x for x in runs if x["trigger"] == "manual"]
        self.assertEqual(len(manual), 1)
        self.assertIsNone(manual[0]["slot_ms"])
        self.assertEqual(manual[0]["id"], out["run"])
        # Paused: nothing but the manual run came, over more than two slots.
        time.sleep(2.2)
        self.assertEqual(len(self.runs(job["id"])), n + 1)
        _, out = self.admin("POST", "/scheduler/jobs/%s/resume" % job["id"], {}, expect=200)
        self.assertFalse(out["paused"])
        self.wait_runs(job["id"], lambda r: len(r) >= n + 3)
        self.pause(job["id"])
        self.admin("DELETE", "/scheduler/jobs/" + job["id"], expect=200)
        self.admin("GET", "/scheduler/jobs/" + job["id"], expect=404)

    def test_jitter_is_within_bounds(self):
        job = self.create({"name": "jittered", "schedule": "* * * * * *", "jitter_s": 1,
                           "target": {"type": "bus", "subject": "sched.jitter"}})
        runs = self.wait_runs(job["id"], lambda r: sum(x["state"] == "succeeded" for x in r) >= 4)
        self.pause(job["id"])
        offsets = [r["due_ms"] - r["slot_ms"] for r in runs if r["slot_ms"]]
        for o in offsets:
            self.assertTrue(0 <= o <= 1000, offsets)
        self.assertGreater(len(set(offsets)), 1, offsets)
        for r in runs:
            if r["started_ms"]:
                self.assertGreaterEqual(r["started_ms"], r["due_ms"])

    # -- policy

    def test_policy_decides_each_time_a_job_fires(self):
        job = self.create({"name": "policy-denied", "schedule": "* * * * * *",
                           "target": {"type": "bus", "subject": "deny.me"}})
        mine = self.create({"name": "policy-user", "schedule": "* * * * * *",
                            "target": {"type": "bus", "subject": "uma.ticks"}}, who="user")
        # The default set (installed by the policy kernel) lets both fire.
        self.wait_runs(job["id"], lambda r: any(x["state"] == "succeeded" for x in r))
        self.wait_runs(mine["id"], lambda r: any(x["state"] == "succeeded" for x in r))
        # The question is :8000's for the creator now: bus.write on
        # Route::"/bus/publish", the creator under Role::"ROLE", and a
        # context that names the scheduled run. The default set, with
        # users' bus.write taken out (its calls between kernels kept: the
        # scheduler's publish is itself a call decided by policy).
        with open(DEFAULT_SET) as f:
            default = f.read()
        base = default.replace('Action::"bus.read", Action::"bus.write",', 'Action::"bus.read",')
        self.assertNotEqual(base, default)
        policies = (base + '\n@id("no-deny-me") forbid(principal, action == Action::"bus.write",'
                    ' resource == Route::"/bus/publish")'
                    ' when { context has job_name && context.job_name == "policy-denied" };\n')
        try:
            self.admin("PUT", "/kernels/policy/policy-sets/default", {"policies": policies},
                       expect=200)
            runs = self.wait_runs(job["id"], lambda r: any(x["state"] == "denied" for x in r))
            denied = next(x for x in runs if x["state"] == "denied")
            self.assertEqual(denied["detail"]["policy"], "policy")
            self.assertIn("no-deny-me", denied["detail"]["reason"])
            # Never more than its creator may do then: uma is no admin.
            runs = self.wait_runs(mine["id"], lambda r: any(x["state"] == "denied" for x in r))
            denied = next(x for x in runs if x["state"] == "denied")
            self.assertEqual(denied["detail"]["reason"], "no policy permits it")
            # A permit for users' bus writes lets uma's job fire again.
            self.admin("PUT", "/kernels/policy/policy-sets/default",
                       {"policies": policies + '@id("users-bus") permit(principal in '
                        'Role::"user", action == Action::"bus.write", resource);'}, expect=200)
            last = max(r["id"] for r in self.runs(mine["id"]))
            self.wait_runs(mine["id"], lambda r: any(x["state"] == "succeeded" and x["id"] > last
                                                     for x in r))
        finally:
            # The default set back (a deleted set denies everything: fail closed).
            self.admin("PUT", "/kernels/policy/policy-sets/default", {"policies": default})
            self.pause(job["id"])
            self.user("DELETE", "/scheduler/jobs/" + mine["id"], expect=200)

    def test_a_deleted_users_jobs_go_with_the_user(self):
        self.g.create_user("vic", PW)
        vic = {"Authorization": "Bearer " + self.g.login("vic", PW)}
        st, _, job = self.g.http("POST", "/scheduler/jobs",
                                 {"name": "vics", "schedule": "* * * * * *",
                                  "target": {"type": "bus", "subject": "vic.ticks"}},
                                 headers=vic, timeout=scaled(20))
        self.assertEqual(st, 201, job)
        self.wait_runs(job["id"], lambda r: len(r) > 0)
        # Only admins and the main process remove someone's jobs.
        st, _, out = self.g.http("DELETE", "/scheduler/owners/uma", headers=vic)
        self.assertEqual(st, 403, out)
        self.admin("DELETE", "/auth/users/vic", expect=200)
        self.g.wait_for(lambda: self.admin("GET", "/scheduler/jobs/" + job["id"])[0] == 404,
                        scaled(15), message="vic's job outlived vic")
        # A new vic does not inherit it either.
        self.g.create_user("vic", PW)
        _, out = self.admin("GET", "/scheduler/jobs?limit=1000", expect=200)
        self.assertNotIn("vic", [j["owner"] for j in out["jobs"]])

    # -- after downtime

    def test_missed_run_policies_after_downtime(self):
        bus = {"type": "bus", "subject": "sched.missed"}
        jobs = {
            "skip": self.create({"name": "m-skip", "schedule": "* * * * * *", "target": bus}),
            "once": self.create({"name": "m-once", "schedule": "* * * * * *", "target": bus,
                                 "missed": {"policy": "run_once"}}),
            "all3": self.create({"name": "m-all3", "schedule": "* * * * * *", "target": bus,
                                 "missed": {"policy": "run_all", "max": 3}}),
            "deadline": self.create({"name": "m-deadline", "schedule": "* * * * * *",
                                     "target": bus, "starting_deadline_s": 2,
                                     "missed": {"policy": "run_all", "max": 100}}),
        }
        for j in jobs.values():
            self.wait_runs(j["id"], lambda r: len(r) >= 1)
        self.admin("POST", "/kernel-ports/scheduler/stop", {}, expect=202)
        self.g.wait_kernel("scheduler", lambda k: k["state"] == "stopped")
        stopped_at = time.time() * 1000
        time.sleep(5.5)
        self.admin("POST", "/kernel-ports/scheduler/start", {}, expect=202)
        self.g.wait_kernel("scheduler", lambda k: k["state"] == "ready")
        started_at = time.time() * 1000

        def after_downtime(job_id):
            runs = self.wait_runs(job_id, lambda r: any(x["created_ms"] >= started_at and
                                                        x["trigger"] == "schedule" and
                                                        x["state"] == "succeeded" for x in r))
            # The slots that came due while it was down, decided at its start:
            # run as a catch-up, or missed.
            return [r for r in runs if (r["slot_ms"] or 0) >= stopped_at + 1000 and
                    (r["trigger"] == "catchup" or r["state"] == "missed")]
        down = {k: after_downtime(j["id"]) for k, j in jobs.items()}
        for j in jobs.values():
            self.pause(j["id"])
        for name, runs in down.items():
            self.assertGreaterEqual(len(runs), 3, (name, runs))
        ran = {k: [r for r in v if r["trigger"] == "catchup"] for k, v in down.items()}
        missed = {k: [r for r in v if r["state"] == "missed"] for k, v in down.items()}
        self.assertEqual(ran["skip"], [])
        self.assertEqual(len(ran["once"]), 1, down["once"])
        self.assertEqual(len(ran["all3"]), 3, down["all3"])
        # run_once and run_all run the latest missed slots.
        newest = max(r["slot_ms"] for r in down["once"])
        self.assertEqual(ran["once"][0]["slot_ms"], newest)
        self.assertEqual(sorted(r["slot_ms"] for r in ran["all3"]),
                         sorted(r["slot_ms"] for r in down["all3"])[-3:])
        # The deadline: nothing more than 2 s late ran.
        for r in ran["deadline"]:
            self.assertLessEqual(r["created_ms"] - r["due_ms"], 2000 + 500, r)
        self.assertTrue(missed["deadline"], down["deadline"])
        for r in missed["skip"] + missed["once"] + missed["all3"]:
            self.assertIsNone(r["started_ms"])
        _, j = self.admin("GET", "/scheduler/jobs/" + jobs["skip"]["id"], expect=200)
        self.assertGreaterEqual(j["missed_total"], len(missed["skip"]))


if __name__ == "__main__":
    unittest.main()
