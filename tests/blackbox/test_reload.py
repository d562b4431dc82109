"""grace reload (issue 19): the configuration file read again while Grace
serves, by POST /reload, SIGHUP and `grace reload --wait`. A kernel whose
settings changed is restarted (a new pid) and only that one; a kernel
disabled is stopped and one enabled started; what only a start applies is
listed and left as it is; a file that does not load changes nothing."""

import json
import os
import signal
import unittest

from harness import GraceServer, ServerClassCase, scaled
from healer_support import run_cli


class Reload(ServerClassCase):
    KERNELS = {"message_bus": {}, "librarian": {}, "crypto": {"enabled": 0}}

    @classmethod
    def make_server(cls):
        return GraceServer(kernels=cls.KERNELS)

    def pids(self):
        return {n: self.g.kernel(n).get("pid") for n in ("message_bus", "librarian")}

    def rewrite(self, change):
        """The config file with `change(text)` applied."""
        with open(self.g.config_path) as f:
            text = f.read()
        new = change(text)
        self.assertNotEqual(new, text, "the test's change changed nothing")
        with open(self.g.config_path, "w") as f:
            f.write(new)

    def wait_rollout(self):
        def done():
            st, _, body = self.g.http("GET", "/reload")
            self.assertEqual(st, 200, body)
            return body if body["state"] != "rolling" else None
        return self.g.wait_for(done, scaled(30), message="the reload's rollout")

    def test_1_nothing_changed(self):
        before = self.pids()
        st, _, body = self.g.http("POST", "/reload")
        self.assertEqual(st, 200, body)
        self.assertEqual(body["state"], "done", body)
        self.assertEqual(body["kernels"], {"restart": [], "stop": [], "start": []})
        self.assertEqual(body["at_next_start"], [])
        self.assertEqual(self.pids(), before)

    def test_2_one_kernel_restarted_the_others_untouched(self):
        before = self.pids()
        self.rewrite(lambda t: t.replace("[kernel.librarian]\n",
                                         "[kernel.librarian]\nhealth_interval_ms = 45000\n"))
        st, _, body = self.g.http("POST", "/reload")
        self.assertEqual(st, 200, body)
        self.assertEqual(body["kernels"]["restart"], ["librarian"], body)
        end = self.wait_rollout()
        self.assertEqual(end["state"], "done", end)
        self.assertEqual(end["done"], ["librarian"])
        after = self.pids()
        self.assertNotEqual(after["librarian"], before["librarian"])
        self.assertEqual(after["message_bus"], before["message_bus"])
        self.assertEqual(self.g.kernel("librarian")["state"], "ready")

    def test_3_main_process_settings_wait_for_a_start(self):
        before = self.pids()
        self.rewrite(lambda t: t.replace("[limits]\n", "[limits]\nmax_headers = 90\n", 1)
                     if "[limits]\n" in t else t + "\n[limits]\nmax_headers = 90\n")
        st, _, body = self.g.http("POST", "/reload")
        self.assertEqual(st, 200, body)
        self.assertIn("[limits] max_headers", body["at_next_start"])
        self.assertEqual(body["kernels"]["restart"], [])
        self.assertEqual(self.pids(), before)
        # Still listed at the next reload: it has not been applied.
        st, _, body = self.g.http("POST", "/reload")
        self.assertIn("[limits] max_headers", body["at_next_start"])
        self.g.wait_log("applied at the next start of grace serve")

    def test_4_a_bad_file_changes_nothing(self):
        before = self.pids()
        with open(self.g.config_path) as f:
            good = f.read()
        try:
            self.rewrite(lambda t: t.replace("[kernel.librarian]\n",
                                             "[kernel.librarian]\nwatchdog_ms = lots\n"))
            st, hdrs, body = self.g.http("POST", "/reload")
            self.assertEqual(st, 400, body)
            self.assertIn("watchdog_ms", body["error"]["message"])
            self.assertIn("nothing changed", body["error"]["message"])
            self.assertTrue(hdrs.get("X-Request-Id"))
            self.assertEqual(self.pids(), before)
            # Users may not reload.
            self.g.create_user("rl_user", "rl-user-password-1")
            tok = self.g.login("rl_user", "rl-user-password-1")
            st, _, body = self.g.http("POST", "/reload",
                                      headers={"Authorization": "Bearer " + tok})
            self.assertEqual(st, 403, body)
        finally:
            with open(self.g.config_path, "w") as f:
                f.write(good)

    def test_5_enable_and_disable_by_sighup(self):
        self.rewrite(lambda t: t.replace("[kernel.crypto]\nenabled = 0\n",
                                         "[kernel.crypto]\nenabled = 1\n"))
        os.kill(self.g.proc.pid, signal.SIGHUP)
        self.g.wait_kernel("crypto", lambda k: k["state"] == "ready", timeout=scaled(20))
        end = self.wait_rollout()
        self.assertEqual(end["by"], "SIGHUP")
        self.assertEqual(end["kernels"]["start"], ["crypto"])
        self.assertTrue(self.g.running)
        # And off again, by the command line, waiting for it.
        self.rewrite(lambda t: t.replace("[kernel.crypto]\nenabled = 1\n",
                                         "[kernel.crypto]\nenabled = 0\n"))
        r = run_cli(self.g, "reload", "--wait")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("stop: crypto", r.stdout)
        self.assertIn("reload: done", r.stdout)
        self.assertEqual(self.g.kernel("crypto")["state"], "stopped")
        r = run_cli(self.g, "reload", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["state"], "done")


if __name__ == "__main__":
    unittest.main()
