"""Who may run executor jobs is decided by the policy kernel (issue 13:
"Running jobs is admin-only unless policy says otherwise";
docs/executor.md "Who may run jobs"): under the default set a user is
refused (at :8000 and by the kernel itself), an admin runs jobs; a policy
that permits a named user lets that user run jobs, see them and cancel
them, while another user sees none of them; a policy that opens the route
but not executor.run is refused by the kernel; with the policy kernel
stopped the kernel refuses with 503 (fail closed)."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import GraceServer, ServerClassCase, scaled  # noqa: E402

DAVE, FRANK, PW = "exdave", "exfrank", "executor-password-1"

ROUTES_FOR = ('@id("route-%s")\npermit (principal == User::"%s", action in '
              '[Action::"executor.read", Action::"executor.write"], resource);')
RUN_FOR = ('@id("run-%s")\npermit (principal == User::"%s", action == Action::"executor.run", '
           'resource == Kernel::"executor");')


class ExecutorPolicy(ServerClassCase):
    @classmethod
    def make_server(cls):
        return GraceServer(kernels={"executor": {}, "policy": {}, "scheduler": {}})

    @classmethod
    def prepare(cls):
        cls.g.create_user(DAVE, PW)
        cls.g.create_user(FRANK, PW)

    def setUp(self):
        self.g.set_test_policy(None)
        self.dave = {"Authorization": "Bearer " + self.g.login(DAVE, PW)}
        self.frank = {"Authorization": "Bearer " + self.g.login(FRANK, PW)}

    def tearDown(self):
        self.g.set_test_policy(None)

    def submit(self, headers=None, argv=("/bin/echo", "hi")):
        return self.g.http("POST", "/executor/jobs", {"argv": list(argv)}, headers)

    def wait_end(self, job_id, headers):
        """The job once ended (the executor's long poll holds at most 30 s)."""
        def ended():
            st, _, j = self.g.http("GET", "/executor/jobs/%s?wait_ms=5000" % job_id, headers=headers,
                                   timeout=20)
            self.assertEqual(st, 200, j)
            return j if j["state"] not in ("queued", "running") else None
        return self.g.wait_for(ended, scaled(20), message="job %s ended" % job_id)

    def as_user_on_kernel(self, name, method, path, body=None):
        return self.g.kernel_http("executor", method, path, body,
                                  headers={"X-Grace-User": name, "X-Grace-Role": "user",
                                           "X-Grace-Caller": "gateway"})

    def test_default_set_admins_only(self):
        self.assertEqual(self.submit(self.dave)[0], 403)  # :8000 refuses the route
        st, _, out = self.as_user_on_kernel(DAVE, "POST", "/jobs", {"argv": ["/bin/true"]})
        self.assertEqual((st, out["error"]["code"]), (403, "forbidden"), out)
        self.assertIn("policy does not let user", out["error"]["message"])
        st, _, out = self.submit()
        self.assertEqual(st, 201, out)

    def test_a_policy_lets_a_named_user_run_jobs(self):
        self.g.set_test_policy(ROUTES_FOR % ("d", DAVE) + "\n" + RUN_FOR % ("d", DAVE) + "\n" +
                         ROUTES_FOR % ("f", FRANK))
        st, _, job = None, None, None

        def submitted():
            nonlocal st, job
            st, _, job = self.submit(self.dave)
            return st == 201
        self.g.wait_for(submitted, scaled(5), message="dave's job accepted")
        self.assertEqual(job["owner"], DAVE)
        done = self.wait_end(job["id"], self.dave)
        self.assertEqual((done["state"], done["exit_code"]), ("succeeded", 0), done)
        st, _, lst = self.g.http("GET", "/executor/jobs", headers=self.dave)
        self.assertIn(job["id"], [j["id"] for j in lst["jobs"]])
        # frank reaches the routes but not executor.run: the kernel refuses,
        # and he sees none of dave's jobs
        st, _, out = self.submit(self.frank)
        self.assertEqual((st, out["error"]["code"]), (403, "forbidden"), out)
        self.assertIn(FRANK, out["error"]["message"])
        self.assertEqual(self.g.http("GET", "/executor/jobs/" + job["id"], headers=self.frank)[0], 404)
        st, _, lst = self.g.http("GET", "/executor/jobs", headers=self.frank)
        self.assertEqual((st, lst["jobs"]), (200, []))
        # dave cancels his own long job
        st, _, long_job = self.submit(self.dave, ("/bin/sleep", "30"))
        self.assertEqual(st, 201, long_job)
        st, _, out = self.g.http("POST", "/executor/jobs/%s/cancel" % long_job["id"], {}, self.dave)
        self.assertIn(st, (200, 202), out)
        end = self.wait_end(long_job["id"], self.dave)
        self.assertEqual(end["state"], "cancelled", end)
        # the permission removed: refused again at once
        self.g.set_test_policy(ROUTES_FOR % ("d", DAVE))
        self.g.wait_for(lambda: self.submit(self.dave)[0] == 403, scaled(5), message="dave refused again")

    def test_a_scheduled_job_the_executor_refuses_is_a_403(self):
        # frank reaches the executor's routes, so the scheduler's own
        # question at creation (executor.write) lets his job through to the
        # executor's check of it, which refuses (no executor.run): that is
        # a refusal, not an outage (it was answered 503 with Retry-After).
        self.g.set_test_policy(ROUTES_FOR % ("f", FRANK))
        st, _, out = self.g.http("POST", "/scheduler/jobs", {
            "name": "franks", "schedule": "@yearly",
            "target": {"type": "executor", "job": {"argv": ["/bin/true"]}}}, self.frank)
        self.assertEqual((st, out["error"]["code"]), (403, "forbidden"), out)
        self.assertEqual(out["error"]["field"], "target.type")
        self.assertIn(FRANK, out["error"]["message"])
        st, _, lst = self.g.http("GET", "/scheduler/jobs", headers=self.frank)
        self.assertEqual((st, lst["jobs"]), (200, []), "nothing was stored")

    def test_fail_closed_without_the_policy_kernel(self):
        st, _, out = self.g.http("POST", "/kernel-ports/policy/stop")
        self.assertIn(st, (200, 202), out)
        try:
            self.g.wait_kernel("policy", lambda k: k["state"] != "ready", timeout=scaled(15))
            self.g.wait_for(lambda: self.as_user_on_kernel(DAVE, "POST", "/jobs",
                                                           {"argv": ["/bin/true"]})[0] == 503,
                            scaled(10), message="503 from the executor")
            st, _, out = self.as_user_on_kernel(DAVE, "POST", "/jobs", {"argv": ["/bin/true"]})
            self.assertEqual(out["error"]["code"], "policy_unavailable")
        finally:
            self.g.http("POST", "/kernel-ports/policy/start")
            self.g.wait_kernel("policy", lambda k: k["state"] == "ready", timeout=scaled(30))


if __name__ == "__main__":
    unittest.main()
