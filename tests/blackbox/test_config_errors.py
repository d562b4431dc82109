"""A bad configuration stops grace at once: exit status 2 and exactly one
line on stderr naming the file (and line, where there is one) and the key."""

import os
import subprocess
import tempfile
import unittest

from harness import GRACE_BIN, GraceTestCase, PortReservation, all_ports, port_bindable, scaled

# (name, config text, line number of the culprit (or a tuple of acceptable
# ones: a section's header or its first key) or None, words the message must hold)
CASES = [
    ("unknown key in [grace]",
     "; comment\n[grace]\nlog_level = info\n\nbogus = 1\n", 5, ["bogus", "unknown key"]),
    ("unknown key in a kernel section",
     "[kernel.librarian]\nport = 8130\ncolour = blue\n", 3, ["colour"]),
    ("unknown key in [limits]",
     "[limits]\nmax_body_bytes = 2048\nmax_bodies = 3\n", 3, ["max_bodies"]),
    ("bad number",
     "[grace]\nlog_level = info\n[defaults]\nrestart_burst = abc\n", 4, ["restart_burst", "abc"]),
    ("number with a unit",
     "[defaults]\nstop_timeout_ms = 100ms\n", 2, ["stop_timeout_ms", "100ms"]),
    ("negative number",
     "[kernel.librarian]\nport = 8130\nwatchdog_ms = -5\n", 3, ["watchdog_ms", "-5"]),
    ("number past its maximum",
     "[defaults]\nrestart_burst = 99999999999999999999999\n", 2, ["restart_burst"]),
    ("number under its minimum",
     "[limits]\nmax_headers = 2\n", 2, ["max_headers", "2"]),
    ("niceness past 19",
     "[kernel.librarian]\nport = 8130\nnice = 20\n", 3, ["nice", "20"]),
    ("out-of-range port",
     "[kernel.librarian]\nport = 8200\n", 2, ["port", "8200"]),
    ("port below the kernel range",
     "[kernel.librarian]\ntier = agentic\nport = 8000\n", 3, ["port", "8000"]),
    ("duplicate port",
     "[kernel.librarian]\nport = 8130\n\n[kernel.alerts]\nport = 8130\n", None,
     ["port", "8130", "librarian", "alerts"]),
    # (A built-in kernel's section needs none: its definition has one.)
    ("kernel without a port",
     "[kernel.stub]\ntier = custom\ncommand = /bin/true\n", None, ["port", "stub"]),
    ("bad boolean",
     "[kernel.librarian]\nport = 8130\nenabled = maybe\n", 3, ["enabled", "maybe"]),
    ("bad log level",
     "[grace]\nlog_level = verbose\n", 2, ["log_level", "verbose"]),
    ("port offset too large",
     "[grace]\nport_offset = 60000\n", 2, ["port_offset", "60000"]),
    ("invalid kernel name",
     "[kernel.Bad-Name]\nport = 8130\n", (1, 2), ["Bad-Name"]),
    ("unknown section",
     "[grace]\nlog_level = info\n[bogus]\nx = 1\n", (3, 4), ["bogus"]),
    ("not an INI line",
     "[grace]\nlog_level = info\nthis is not a key value pair\n", 3, []),
]


class ConfigErrors(GraceTestCase):
    @classmethod
    def setUpClass(cls):
        # Should grace ever start on one of these, it must not land on ports
        # another test uses.
        cls.res = PortReservation()
        cls.tmp = tempfile.TemporaryDirectory(prefix="grace-bb-cfg-")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()
        cls.res.release()

    def run_grace(self, args, config_text=None, timeout=None):
        cfg = os.path.join(self.tmp.name, "grace.ini")
        if config_text is not None:
            with open(cfg, "w") as f:
                f.write(config_text)
        argv = [GRACE_BIN] + [a.replace("@CFG@", cfg) for a in args]
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, cwd=self.tmp.name,
                             env={k: v for k, v in os.environ.items()
                                  if not k.startswith(("GRACE_", "NOTIFY_", "LISTEN_"))})
        try:
            out, err = p.communicate(timeout=scaled(10) if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            p.terminate()
            try:
                p.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
            self.fail("grace %s kept running with this configuration:\n%s"
                      % (args[0], config_text))
        return cfg, p.returncode, out.decode(), err.decode()

    def serve_args(self):
        return ["serve", "--config", "@CFG@", "--data-dir", os.path.join(self.tmp.name, "data"),
                "--port-offset", str(self.res.offset)]

    def check_one_line(self, err):
        lines = err.splitlines()
        self.assertEqual(len(lines), 1, "stderr is not one line:\n%s" % err)
        return lines[0]

    def test_cases(self):
        for name, text, line, words in CASES:
            with self.subTest(name):
                cfg, rc, out, err = self.run_grace(self.serve_args(), text)
                self.assertEqual(rc, 2, "%s: exit %s\n%s" % (name, rc, err[-2000:]))
                msg = self.check_one_line(err)
                if isinstance(line, tuple):
                    self.assertTrue(any("%s:%d:" % (cfg, n) in msg for n in line),
                                    "%s: not at line %s: %s" % (name, line, msg))
                elif line is not None:
                    self.assertIn("%s:%d:" % (cfg, line), msg)
                else:
                    self.assertIn(cfg, msg)
                for w in words:
                    self.assertIn(w, msg)
                self.assertEqual(out, "")
        # Nothing was started by any of them.
        self.assertEqual([p for p in all_ports(self.res.offset) if not port_bindable(p)], [])

    def test_kernel_command_reads_the_same_file(self):
        text = "[grace]\nlog_level = info\nbogus = 1\n"
        cfg, rc, out, err = self.run_grace(
            ["kernel", "librarian", "--config", "@CFG@", "--port-offset", str(self.res.offset)],
            text)
        self.assertEqual(rc, 2)
        msg = self.check_one_line(err)
        self.assertIn("%s:3:" % cfg, msg)
        self.assertIn("bogus", msg)

    def test_missing_file_and_bad_flags(self):
        missing = os.path.join(self.tmp.name, "nope.ini")
        cfg, rc, out, err = self.run_grace(["serve", "--config", missing, "--port-offset",
                                            str(self.res.offset)])
        self.assertEqual(rc, 2)
        self.assertIn(missing, self.check_one_line(err))
        # A port offset that does not parse, or puts ports past 65535.
        for off in ("abc", "-1", "99999"):
            cfg, rc, out, err = self.run_grace(
                ["serve", "--config", "@CFG@", "--port-offset", off], "[grace]\nlog_level = info\n")
            self.assertEqual(rc, 2, off)
            self.assertIn(off, self.check_one_line(err))
        cfg, rc, out, err = self.run_grace(["serve", "--config", "@CFG@", "extra-arg"],
                                           "[grace]\nlog_level = info\n")
        self.assertEqual(rc, 2)
        cfg, rc, out, err = self.run_grace(["kernel", "no_such_kernel", "--config", "@CFG@"],
                                           "[grace]\nlog_level = info\n")
        self.assertEqual(rc, 2)
        self.assertIn("no_such_kernel", self.check_one_line(err))

    # An api_port equal to a kernel's port: see test_known_bugs.py (accepted).


if __name__ == "__main__":
    unittest.main()
