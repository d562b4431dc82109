"""The operator's command line as a whole (issue 19): every command answers
--help (exit 0) from the one command table, as do `grace help COMMAND`, the
man page and the shell completions; the exit statuses tell refused from
timed out from not logged in from forbidden from degraded from usage; the
messages name the command to run; --json everywhere; start, stop, restart
(--wait), status KERNEL, logs, top."""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

from harness import GRACE_BIN, GraceServer, GraceTestCase, scaled, spare_kernels
from healer_support import run_cli

EXIT = {"ok": 0, "failed": 1, "usage": 2, "refused": 3, "timeout": 4, "unauthorized": 5,
        "forbidden": 6, "api_error": 7}


def grace(*args, env=None, timeout=None, input=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("GRACE_")}
    e.update(env or {})
    return subprocess.run([GRACE_BIN] + list(args), capture_output=True, text=True, env=e,
                          timeout=timeout or scaled(30), input=input)


def commands():
    """The command names `grace help` lists."""
    out = grace("help")
    rows = out.stdout.split("commands:\n", 1)[1].split("\n\n", 1)[0]
    # A synopsis too long for its column puts the summary on the next,
    # indented line: that line names no command.
    return [line.split()[0] for line in rows.splitlines() if not line.startswith("   ")]


def on_terminal(args, env):
    """grace ARGS with a pseudo-terminal as its stdout: what it wrote."""
    import pty
    master, slave = pty.openpty()
    e = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR",)}
    e.update(env)
    p = subprocess.Popen([GRACE_BIN] + args, stdout=slave, stderr=subprocess.DEVNULL,
                         stdin=subprocess.DEVNULL, env=e)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO once the child closed its end
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    p.wait(timeout=scaled(10))
    return out.decode()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Offline(GraceTestCase):
    """What needs no running Grace."""

    def test_help_for_every_command(self):
        names = commands()
        for want in ("serve", "kernel", "status", "start", "stop", "restart", "logs", "top",
                     "heal", "login", "completion", "version", "help"):
            self.assertIn(want, names)
        for name in names:
            r = grace(name, "--help")
            self.assertEqual(r.returncode, 0, (name, r.stderr))
            self.assertEqual(r.stderr, "")
            self.assertTrue(r.stdout.startswith("usage: grace %s" % name), r.stdout)
            self.assertIn("\noptions:\n  -h, --help", r.stdout)
            self.assertRegex(r.stdout, r"\nexamples?:\n  ")
            self.assertEqual(grace(name, "-h").stdout, r.stdout)
            h = grace("help", name)
            self.assertEqual((h.returncode, h.stdout), (0, r.stdout), name)
        # The global help, and its mistakes.
        for args in (("help",), ("--help",), ("-h",)):
            r = grace(*args)
            self.assertEqual(r.returncode, 0)
            self.assertIn("commands:", r.stdout)
        r = grace()
        self.assertEqual(r.returncode, EXIT["usage"])
        r = grace("frobnicate")
        self.assertEqual(r.returncode, EXIT["usage"])
        self.assertIn("unknown command 'frobnicate' (see grace help)", r.stderr)
        r = grace("status", "--frob")
        self.assertEqual(r.returncode, EXIT["usage"])
        self.assertIn("unknown option '--frob' (see grace status --help)", r.stderr)
        r = grace("help", "nope")
        self.assertEqual(r.returncode, EXIT["usage"])
        r = grace("help", "exit-codes")
        self.assertEqual(r.returncode, 0)
        for code in range(8):
            self.assertRegex(r.stdout, r"\n  %d  " % code)
        self.assertIn("grace login", r.stdout)

    def test_json_where_no_server_is_needed(self):
        v = json.loads(grace("version", "--json").stdout)
        self.assertRegex(v["version"], r"^\d+\.\d+\.\d+")
        self.assertEqual(grace("--version").stdout, "grace %s\n" % v["version"])
        k = json.loads(grace("kernels-list", "--json").stdout)
        self.assertIn("librarian", [x["name"] for x in k["kernels"]])
        r = json.loads(grace("routes", "--json").stdout)
        self.assertTrue(r["routes"])

    def test_man_page_from_the_table(self):
        page = grace("man")
        self.assertEqual(page.returncode, 0)
        for name in commands():
            self.assertIn('.SS "grace %s' % name, page.stdout)
        self.assertIn('.SH "EXIT STATUS"', page.stdout)
        with tempfile.NamedTemporaryFile("w", suffix=".1") as f:
            f.write(page.stdout)
            f.flush()
            r = subprocess.run(["man", "--warnings", "-l", f.name], capture_output=True,
                               text=True, env=dict(os.environ, MANPAGER="cat", MANWIDTH="80"))
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertIn("grace - run and operate the Grace service platform", r.stdout)
        self.assertIn("EXIT STATUS", r.stdout)

    def test_completions(self):
        script = grace("completion", "bash").stdout
        def complete(*words):
            prog = ('source /dev/stdin; COMP_WORDS=(%s); COMP_CWORD=%d; _grace; '
                    'printf "%%s\\n" "${COMPREPLY[@]}"' % (" ".join(words), len(words) - 1))
            r = subprocess.run(["bash", "-c", prog], input=script, capture_output=True,
                               text=True, timeout=scaled(10))
            self.assertEqual(r.stderr, "")
            return r.stdout.split()
        self.assertEqual(sorted(complete("grace", "st")), ["start", "status", "stop"])
        self.assertEqual(complete("grace", "status", "libr"), ["librarian"])
        self.assertIn("--follow", complete("grace", "logs", "--f"))
        self.assertEqual(complete("grace", "completion", "z"), ["zsh"])
        self.assertEqual(complete("grace", "logs", "--level", "w"), ["warn"])
        zsh = grace("completion", "zsh").stdout
        self.assertTrue(zsh.startswith("#compdef grace"))
        self.assertIn("'top:", zsh)
        fish = grace("completion", "fish").stdout
        self.assertIn("complete -c grace -n __fish_use_subcommand -a restart", fish)
        r = grace("completion", "tcsh")
        self.assertEqual(r.returncode, EXIT["usage"])

    def test_refused_and_timeout_differ(self):
        port = free_port()
        t0 = time.monotonic()
        r = grace("status", "--port", str(port))
        self.assertEqual(r.returncode, EXIT["refused"], r.stderr)
        self.assertIn("cannot reach the API on 127.0.0.1:%d: connection refused" % port, r.stderr)
        self.assertIn("systemctl start grace", r.stderr)
        self.assertLess(time.monotonic() - t0, scaled(5))
        # A listener that never answers: connected, then nothing.
        s = socket.socket()
        self.addCleanup(s.close)
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        t0 = time.monotonic()
        r = grace("status", "--port", str(s.getsockname()[1]), "--timeout", "0.5")
        self.assertEqual(r.returncode, EXIT["timeout"], r.stderr)
        self.assertIn("did not answer GET /health within 0.5 s", r.stderr)
        self.assertLess(time.monotonic() - t0, scaled(5))

    def test_api_error_has_its_own_status(self):
        """An error answer that is none of the above: exit 7, its code and message."""
        import http.server
        import threading

        class Busy(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = b'{"error":{"code":"busy","message":"try later","request_id":"r1"}}'
                self.send_response(503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        srv = http.server.HTTPServer(("127.0.0.1", 0), Busy)
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        self.addCleanup(t.join)
        self.addCleanup(srv.server_close)
        self.addCleanup(srv.shutdown)
        r = grace("status", "--port", str(srv.server_address[1]))
        self.assertEqual(r.returncode, EXIT["api_error"], r.stderr)
        self.assertEqual(r.stderr, "grace: 503 busy: try later\n")
        self.assertEqual(r.stdout, "")

    def test_logs_from_files(self):
        tmp = tempfile.mkdtemp(prefix="grace-bb-logs-")
        self.addCleanup(shutil.rmtree, tmp, True)
        line = lambda t, lvl, k, msg: json.dumps(
            {"time": "2026-01-31T12:%s.000Z" % t, "level": lvl, "kernel": k, "msg": msg,
             "pid": 7})
        os.makedirs(os.path.join(tmp, "log"))
        with open(os.path.join(tmp, "log", "grace.log.1"), "w") as f:
            f.write(line("00:00", "info", "grace", "oldest") + "\n")
        with open(os.path.join(tmp, "log", "grace.log"), "w") as f:
            f.write(line("01:00", "warn", "librarian", "newer") + "\nnot json\n" +
                    line("02:00", "error", "grace", "newest") + "\n")
        env = {"GRACE_CONFIG": "/dev/null"}
        r = grace("logs", "--data-dir", tmp, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.splitlines(), [
            "2026-01-31 12:00:00.000 info  grace[7]: oldest",
            "2026-01-31 12:01:00.000 warn  librarian[7]: newer",
            "not json",
            "2026-01-31 12:02:00.000 error grace[7]: newest"])
        r = grace("logs", "grace", "--level", "warn", "--data-dir", tmp, env=env)
        self.assertEqual(r.stdout.splitlines(), ["2026-01-31 12:02:00.000 error grace[7]: newest"])
        r = grace("logs", "--since", "2026-01-31 12:01", "--json", "--data-dir", tmp, env=env)
        self.assertEqual([json.loads(x)["msg"] for x in r.stdout.splitlines()],
                         ["newer", "newest"])
        # NO_COLOR or not, a pipe gets no colour.
        self.assertNotIn("\033[", r.stdout)
        # -f: what is appended shows up.
        path = os.path.join(tmp, "follow.log")
        open(path, "w").close()
        p = subprocess.Popen([GRACE_BIN, "logs", "-f", "--file", path], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            with open(path, "a") as f:
                f.write(line("03:00", "info", "audit", "appended") + "\n")
            got = p.stdout.readline()
            self.assertEqual(got, "2026-01-31 12:03:00.000 info  audit[7]: appended\n")
        finally:
            p.terminate()
            self.assertEqual(p.wait(timeout=scaled(10)), 0)
            p.stdout.close()
            p.stderr.close()
        # Colours on a terminal only, and never with NO_COLOR.
        for no_color, want in ((None, True), ("1", False)):
            env = {"NO_COLOR": no_color} if no_color else {}
            out = on_terminal(["logs", "--file", os.path.join(tmp, "log", "grace.log")], env)
            self.assertEqual("\033[33mwarn" in out, want, out)
            self.assertEqual("\033[1;31merror" in out, want, out)
            self.assertIn("librarian[7]: newer", out)
        r = grace("logs", "--file", os.path.join(tmp, "missing.log"))
        self.assertEqual(r.returncode, EXIT["failed"])
        self.assertIn("cannot read", r.stderr)

    def test_logs_from_the_journal(self):
        """Under systemd the lines are in the journal of grace.service:
        `grace logs` runs journalctl (a stand-in here, which records how
        it was asked: no systemd on this machine) and filters and formats
        what it prints as it does the files'."""
        tmp = tempfile.mkdtemp(prefix="grace-bb-journal-")
        self.addCleanup(shutil.rmtree, tmp, True)
        bindir = os.path.join(tmp, "bin")
        os.makedirs(bindir)
        lines = [json.dumps({"time": "2026-01-31T12:0%d:00.000Z" % i, "level": lvl,
                             "kernel": k, "msg": m, "pid": 9})
                 for i, (lvl, k, m) in enumerate((("info", "grace", "started"),
                                                   ("warn", "librarian", "slow disk"),
                                                   ("error", "librarian", "gone")))]
        stub = os.path.join(bindir, "journalctl")
        with open(stub, "w") as f:
            f.write("#!/bin/sh\nprintf '%%s\\n' \"$@\" > %s/args\n"
                    "[ -e %s/fail ] && { echo 'No journal files were opened' >&2; exit 1; }\n"
                    "cat <<'EOF'\n%s\nEOF\n" % (tmp, tmp, "\n".join(lines)))
        os.chmod(stub, 0o755)
        env = {"GRACE_CONFIG": "/dev/null", "PATH": bindir + ":" + os.environ["PATH"]}
        # Without --journal, no log files and systemd not the init: said so.
        r = grace("logs", "--data-dir", tmp, env=env)
        self.assertEqual(r.returncode, EXIT["failed"], r.stdout)
        self.assertIn("no logs found", r.stderr)
        r = grace("logs", "librarian", "--journal", "--level", "warn", "--since",
                  "2026-01-31 12:00", env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.splitlines(), [
            "2026-01-31 12:01:00.000 warn  librarian[9]: slow disk",
            "2026-01-31 12:02:00.000 error librarian[9]: gone"])
        with open(os.path.join(tmp, "args")) as f:
            args = f.read().split()
        self.assertEqual(args[args.index("-u") + 1], "grace.service", args)
        self.assertEqual(args[args.index("--since") + 1], "@1769860800", args)
        self.assertNotIn("-f", args)
        # A journal this user may not read: the exit says failed, and why.
        open(os.path.join(tmp, "fail"), "w").close()
        r = grace("logs", "--journal", env=env)
        self.assertEqual(r.returncode, EXIT["failed"])
        self.assertIn("journalctl failed", r.stderr)


class Live(GraceTestCase):
    """Against a running Grace."""

    def test_operating_a_running_grace(self):
        with GraceServer(kernels={"librarian": {}}) as g:
            lib = g.kernel("librarian")
            # Not logged in: its own exit status, and the command that mends it.
            r = run_cli(g, "kernels", token=False)
            self.assertEqual(r.returncode, EXIT["unauthorized"], r.stderr)
            self.assertIn("401", r.stderr)
            self.assertIn("run `grace login USER`", r.stderr)
            g.create_user("plain", "a long enough password")
            tok = g.login("plain", "a long enough password")
            r = run_cli(g, "stop", "librarian", token=tok)
            self.assertEqual(r.returncode, EXIT["forbidden"], r.stderr)
            self.assertIn("403", r.stderr)
            r = run_cli(g, "stop", "nope")
            self.assertEqual(r.returncode, EXIT["usage"], r.stderr)
            self.assertIn("unknown_kernel", r.stderr)

            # stop, again (no error: already stopped), status degraded, start.
            r = run_cli(g, "stop", "librarian", "--wait")
            self.assertEqual((r.returncode, r.stdout), (0, "librarian: stopped\n"), r.stderr)
            r = run_cli(g, "stop", "librarian")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("already stopped", r.stdout)
            r = run_cli(g, "status")
            self.assertEqual(r.returncode, EXIT["failed"])
            self.assertIn("grace status KERNEL", r.stdout)
            r = run_cli(g, "status", "librarian")
            self.assertEqual(r.returncode, EXIT["failed"])
            self.assertIn("State: stopped", r.stdout)
            r = run_cli(g, "start", "librarian", "--wait", "--json")
            self.assertEqual(r.returncode, 0, r.stderr)
            started = json.loads(r.stdout)
            self.assertEqual(started["state"], "ready")
            self.assertNotEqual(started["pid"], lib["pid"])
            r = run_cli(g, "restart", "librarian", "--wait", "--json")
            self.assertEqual(r.returncode, 0, r.stderr)
            restarted = json.loads(r.stdout)
            self.assertEqual(restarted["state"], "ready")
            self.assertNotEqual(restarted["pid"], started["pid"])

            # One kernel in detail, as systemctl status shows a unit.
            r = run_cli(g, "status", "librarian")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertRegex(r.stdout, r"^\* librarian - \S+ kernel\n")
            self.assertIn("State: ready", r.stdout)
            self.assertIn("PID: %d" % restarted["pid"], r.stdout)
            self.assertRegex(r.stdout, r"Restarts: \d+")
            self.assertIn("Recent events:\n", r.stdout)
            self.assertRegex(r.stdout, r"\n  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z  \S+ -> ")
            d = json.loads(run_cli(g, "status", "librarian", "--json").stdout)
            self.assertEqual(d["pid"], restarted["pid"])
            self.assertTrue(d["recent_events"])
            self.assertLessEqual(len(d["recent_events"]), 10)

            # --json on login and logout too.
            env_home = g.tmp
            r = subprocess.run([GRACE_BIN, "login", "plain", "--json", "--port-offset",
                                str(g.offset), "--config", g.config_path],
                               input="a long enough password\n", capture_output=True,
                               text=True, env=dict(g.env(), HOME=env_home), timeout=scaled(30))
            self.assertEqual(r.returncode, 0, r.stderr)
            ans = json.loads(r.stdout)
            self.assertEqual((ans["user"], ans["role"]), ("plain", "user"))
            self.assertNotIn("token\":", r.stdout.replace("token_file", ""))
            r = subprocess.run([GRACE_BIN, "logout", "--json", "--port-offset", str(g.offset),
                                "--config", g.config_path], capture_output=True, text=True,
                               env=dict(g.env(), HOME=env_home), timeout=scaled(30))
            self.assertEqual((r.returncode, json.loads(r.stdout)), (0, {"logged_out": True}))

            # top: frames with rates from the second on.
            r = run_cli(g, "top", "--iterations", "2", "--interval", "0.3", "--json")
            self.assertEqual(r.returncode, 0, r.stderr)
            frames = [json.loads(x) for x in r.stdout.splitlines()]
            self.assertEqual(len(frames), 2)
            names = [p["name"] for p in frames[1]["processes"]]
            self.assertEqual(names, ["grace", "librarian"])
            self.assertIsNone(frames[0]["processes"][0]["requests_per_s"])
            self.assertGreater(frames[1]["processes"][0]["requests_per_s"], 0)
            self.assertIsInstance(frames[1]["processes"][1]["requests_per_s"], float)
            r = run_cli(g, "top", "--iterations", "1")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertRegex(r.stdout, r"\nPROCESS\s+STATE\s+PID\s+UPTIME\s+RESTARTS\s+REQ/S")
            self.assertRegex(r.stdout, r"\nlibrarian\s+ready\s+%d\s" % restarted["pid"])

            # logs of this very server (its stderr file).
            r = run_cli(g, "logs", "grace", "--file", g.log_path, "--json")
            self.assertEqual(r.returncode, 0, r.stderr)
            lines = [json.loads(x) for x in r.stdout.splitlines()]
            self.assertTrue(lines)
            self.assertEqual({x["kernel"] for x in lines}, {"grace"})

            # The healthy heal: exit 0, as its help says.
            r = run_cli(g, "heal", "librarian")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("grace heal", run_cli(g, "heal", "--help").stdout)
            self.assertIn("nothing needed healing", run_cli(g, "heal", "--help").stdout)


class SystemdStatus(GraceTestCase):
    """Under systemd, STATUS= stays current: the ready count and the names
    of the kernels that are not ready (systemctl status shows it)."""

    def test_status_follows_the_kernels(self):
        tmp = tempfile.mkdtemp(prefix="grace-bb-status-")
        self.addCleanup(shutil.rmtree, tmp, True)
        path = os.path.join(tmp, "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        sock.bind(path)
        sock.settimeout(0.05)
        seen = []

        def until(pred, timeout):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    m = sock.recv(4096).decode()
                except socket.timeout:
                    continue
                seen.append(m)
                if pred(m):
                    return m
            raise AssertionError("no such notification: %r" % seen)

        other = spare_kernels(1)[0]
        with GraceServer(kernels={"librarian": {}, other: {}}, autostart=False,
                         env={"NOTIFY_SOCKET": path}) as g:
            g.start(wait=False)
            m = until(lambda m: "READY=1" in m, scaled(15))
            self.assertIn("STATUS=all kernels ready (2 of 2)", m)
            g.wait_states()
            self.assertEqual(run_cli(g, "stop", other, "--wait").returncode, 0)
            until(lambda m: m == "STATUS=degraded: 1 of 2 kernels ready; not ready: %s" % other,
                  scaled(10))
            self.assertEqual(run_cli(g, "start", other, "--wait").returncode, 0)
            until(lambda m: m == "STATUS=all kernels ready (2 of 2)", scaled(10))
            # Told when it changes, not at every event.
            self.assertEqual(len(seen), len(set(seen)), seen)


if __name__ == "__main__":
    unittest.main()
