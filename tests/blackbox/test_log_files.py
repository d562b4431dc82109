"""grace serve's log files (issue 19, `grace logs` outside systemd): the main
process's and every kernel's lines go to standard error and to
DATA_DIR/log/grace.log, rotated by size at the end of a line, the oldest
dropped past [grace] log_files; under systemd (JOURNAL_STREAM naming
standard error) no file is written."""

import json
import os
import stat
import unittest

from harness import GraceServer, GraceTestCase, scaled
from healer_support import run_cli


class LogFiles(GraceTestCase):
    def test_rotated_files_hold_every_process_and_whole_lines(self):
        with GraceServer(kernels={"message_bus": {}},
                         config={"grace": {"log_level": "debug", "log_file_bytes": 4096,
                                           "log_files": 2}}) as g:
            logdir = os.path.join(g.data_dir, "log")
            for i in range(60):  # debug: every request is a line
                g.http("GET", "/health")
                g.kernel_http("message_bus", "GET", "/health")
            g.wait_for(lambda: os.path.exists(os.path.join(logdir, "grace.log.2")),
                       scaled(10), message="two rotations")
            g.stop()
            names = sorted(os.listdir(logdir))
            self.assertEqual(names, ["grace.log", "grace.log.1", "grace.log.2"])
            self.assertEqual(stat.S_IMODE(os.stat(logdir).st_mode), 0o700)
            kernels = set()
            for n in names:
                path = os.path.join(logdir, n)
                self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600, n)
                with open(path, "rb") as f:
                    data = f.read()
                if n != "grace.log":
                    # Rotated at the end of a line, a little past the size.
                    self.assertTrue(data.endswith(b"\n"), n)
                    self.assertGreaterEqual(len(data), 4096, n)
                for line in data.decode().splitlines():
                    if line.startswith("{"):
                        kernels.add(json.loads(line)["kernel"])
            self.assertLessEqual({"grace", "message_bus"}, kernels)
            # The same lines still reached standard error.
            g.wait_log('"kernel":"message_bus"')
            # grace logs reads them, oldest first.
            r = run_cli(g, "logs", "message_bus", "--data-dir", g.data_dir, token=False)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("message_bus", r.stdout)

    def test_no_files_under_the_journal(self):
        # JOURNAL_STREAM names the file grace serve's standard error is
        # (the harness's serve.log), as systemd names the journal's socket.
        g = GraceServer(kernels={"message_bus": {}}, autostart=False)
        with open(g.log_path, "ab"):
            pass
        st = os.stat(g.log_path)
        g.extra_env["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
        with g:
            g.start()
            g.http("GET", "/health")
            g.stop()
            self.assertIn('"kernel":"message_bus"', g.log())
            self.assertFalse(os.path.exists(os.path.join(g.data_dir, "log")))

    def test_zero_bytes_means_no_files(self):
        with GraceServer(kernels={"message_bus": {}},
                         config={"grace": {"log_file_bytes": 0}}) as g:
            g.http("GET", "/health")
            self.assertFalse(os.path.exists(os.path.join(g.data_dir, "log")))


if __name__ == "__main__":
    unittest.main()
