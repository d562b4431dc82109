"""The executor killed with kill -9 in the middle of a job (issue 13): the
job's whole tree dies with it (its shim sees the executor go and kills
it: a setsid() daemon, a double-forked child and a TERM-ignoring child
included), the restarted executor marks the job lost and removes its
directory, and a job that was queued at the time runs after the restart.
Repeated, so the kill lands at different moments of a job's life."""

import os
import signal
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from harness import GraceServer, GraceTestCase, scaled  # noqa: E402
from test_executor import alive, marked_pids  # noqa: E402

RESTARTS = {"restart_burst": 100, "restart_window_ms": 1000}


class ExecutorKill9(GraceTestCase):
    def setUp(self):
        self.g = GraceServer(config={"executor": {"concurrency": 1}},
                             kernels={"executor": RESTARTS})
        self.g.start()
        self.addCleanup(self.g.close)

    def call(self, method, path, body=None, expect=200):
        st, _, out = self.g.http(method, "/executor" + path, body, timeout=scaled(30))
        self.assertEqual(st, expect, "%s %s -> %s %r" % (method, path, st, out))
        return out

    def output(self, job_id):
        st, _, out = self.g.http("GET", "/executor/jobs/%s/output?format=raw" % job_id,
                                 timeout=scaled(20))
        return out if st == 200 and isinstance(out, bytes) else b""

    def kill_executor(self):
        k = self.g.kernel("executor")
        os.kill(k["pid"], signal.SIGKILL)
        self.g.wait_kernel("executor", lambda n: n["state"] == "ready" and n["pid"] != k["pid"],
                           timeout=scaled(20))

    def test_kill9_mid_job(self):
        for round_ in range(3):
            marker = uuid.uuid4().hex
            script = ("setsid sh -c 'echo $$; exec sleep 1000' & "
                      "(sh -c 'echo $$; exec sleep 1000' &) ; "
                      "sh -c 'trap \"\" TERM; echo $$; exec sleep 1000' & "
                      "echo main $$; sleep 1000")
            job = self.call("POST", "/jobs", {"shell": script, "env": {"JOB_MARKER": marker}},
                            expect=201)
            queued = self.call("POST", "/jobs", {"argv": ["/bin/echo", "after"]}, expect=201)
            self.assertEqual(queued["state"], "queued")

            def started():
                words = self.output(job["id"]).split()
                return words if len(words) >= 5 else None
            words = self.g.wait_for(started, scaled(10), interval=0.05)
            pids = [int(w) for w in words if w.isdigit()]
            self.assertEqual(len(pids), 4)
            self.assertTrue(all(alive(p) for p in pids))
            time.sleep(0.1 * round_)
            self.kill_executor()
            self.g.wait_for(lambda: not marked_pids(marker) or None, scaled(10),
                            message=lambda: "the job's processes outlived the executor: %s"
                            % marked_pids(marker))
            for p in pids:
                self.assertFalse(alive(p), "process %d outlived the executor" % p)
            out = self.call("GET", "/jobs/" + job["id"])
            self.assertEqual(out["state"], "lost", out)
            self.assertIn("killed", out["error"])
            self.assertFalse(os.path.exists(out["workdir"]), "its directory stayed")
            after = self.call("GET", "/jobs/%s?wait_ms=20000" % queued["id"])
            self.assertEqual(after["state"], "succeeded", after)
            self.assertEqual(self.output(queued["id"]), b"after\n")
        stats = self.call("GET", "/stats")
        self.assertGreaterEqual(stats["lost"], 1)


if __name__ == "__main__":
    unittest.main()
