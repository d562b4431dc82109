"""`grace kernel NAME` on its own: it binds its own port (offset applied),
answers, and exits 0 on SIGTERM; socket-activated (systemd's LISTEN_FDS
protocol, as systemd-socket-activate or a .socket unit hand it a socket),
it serves on the socket it is handed, the connections that arrived before
it started included, and binds none of its own."""

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

from harness import (BUILTIN_KERNELS, GRACE_BIN, GraceTestCase, PortReservation, http_request,
                     listening_ports, pid_alive, port_bindable, sanitizer_report, scaled,
                     spare_kernels, wait_for)

OTHER, UNLISTED = spare_kernels(2)


class KernelAlone(GraceTestCase):
    def setUp(self):
        self.res = PortReservation()
        self.addCleanup(self.res.release)
        self.tmp = tempfile.mkdtemp(prefix="grace-bb-alone-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.library = os.path.join(self.tmp, "library")
        os.makedirs(self.library)
        self.data = os.path.join(self.tmp, "data")
        self.cfg = os.path.join(self.tmp, "grace.ini")
        with open(self.cfg, "w") as f:
            f.write("[grace]\nlibrary_root = %s\n\n[kernel.librarian]\nport = 8130\n\n"
                    "[kernel.%s]\nport = %d\n" % (self.library, OTHER, BUILTIN_KERNELS[OTHER][0]))
        # The token a kernel run alone reads from the file this names.
        self.token = secrets.token_hex(32)
        self.token_file = os.path.join(self.tmp, "token")
        fd = os.open(self.token_file, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, self.token.encode())
        os.close(fd)
        self.port = 8130 + self.res.offset
        self.log = open(os.path.join(self.tmp, "kernel.log"), "w+b")
        self.addCleanup(self.log.close)
        self.procs = []
        self.addCleanup(self.check_log)
        self.addCleanup(self.end_procs)

    def env(self):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("GRACE_", "NOTIFY_", "LISTEN_", "WATCHDOG_"))}
        env["GRACE_INTERNAL_TOKEN_FILE"] = self.token_file
        return env

    def spawn(self, argv):
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
                             cwd=self.tmp, env=self.env())
        self.procs.append(p)
        return p

    def end_procs(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    def check_log(self):
        report = sanitizer_report(self.log_text())
        self.assertIsNone(report, "sanitizer report in the kernel's log")

    def log_text(self):
        self.log.flush()
        with open(self.log.name, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def get(self, path, **kw):
        return http_request(self.port, "GET", path, timeout=scaled(10), **kw)

    def wait_answering(self, p):
        def answer():
            if p.poll() is not None:
                self.fail("the kernel exited with %s:\n%s" % (p.returncode, self.log_text()))
            try:
                return self.get("/health")
            except (ConnectionRefusedError, ConnectionResetError):
                return None
        return wait_for(answer, scaled(10), message="kernel answering on %d" % self.port)

    def terminate(self, p):
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(scaled(5))
        except subprocess.TimeoutExpired:
            self.fail("the kernel did not exit within %.0f s of SIGTERM" % scaled(5))
        return rc, time.monotonic() - t0

    def test_alone_binds_its_own_port(self):
        self.assertTrue(port_bindable(self.port))
        p = self.spawn([GRACE_BIN, "kernel", "librarian", "--config", self.cfg, "--data-dir",
                        self.data, "--port-offset", str(self.res.offset)])
        st, _, body = self.wait_answering(p)
        self.assertEqual(st, 200)
        self.assertEqual(body["kernel"], "librarian")
        self.assertEqual(body["pid"], p.pid)
        self.assertIn(self.port, listening_ports())
        # Its own routes, with the token; without it they are refused.
        tok = {"X-Grace-Internal-Token": self.token}
        st, _, body = http_request(self.port, "POST", "/documents",
                                   {"title": "Alone", "body": "a kernel on its own"},
                                   headers=tok)
        self.assertEqual(st, 201, body)
        st, _, body = http_request(self.port, "GET", "/search?query=alone", headers=tok)
        self.assertEqual((st, body["total"]), (200, 1))
        st, _, body = http_request(self.port, "GET", "/search?query=alone")
        self.assertEqual(st, 401, body)
        self.assertEqual(body["error"]["code"], "unauthorized")
        self.assertTrue(os.path.exists(os.path.join(self.data, "librarian.db")))
        # No other kernel was started: only its own port is bound.
        self.assertTrue(port_bindable(self.res.api_port))
        rc, dt = self.terminate(p)
        self.assertEqual(rc, 0, self.log_text())
        self.assertTrue(port_bindable(self.port))

    def test_name_after_options_and_refusals(self):
        p = self.spawn([GRACE_BIN, "kernel", "--config", self.cfg, "--data-dir", self.data,
                        "--port-offset", str(self.res.offset), "librarian_kernel"])
        st, _, body = self.wait_answering(p)
        self.assertEqual(body["kernel"], "librarian")
        rc, _ = self.terminate(p)
        self.assertEqual(rc, 0)
        # A kernel the configuration does not list: a permanent error (100).
        p = self.spawn([GRACE_BIN, "kernel", UNLISTED, "--config", self.cfg,
                        "--data-dir", self.data,
                        "--port-offset", str(self.res.offset)])
        self.assertEqual(p.wait(scaled(10)), 100)
        # Its port taken: it cannot start, and says so.
        blocker = socket.socket()
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind(("127.0.0.1", self.port))
        blocker.listen(1)
        try:
            p = self.spawn([GRACE_BIN, "kernel", "librarian", "--config", self.cfg,
                            "--data-dir", self.data, "--port-offset", str(self.res.offset)])
            rc = p.wait(scaled(10))
            self.assertNotEqual(rc, 0)
            self.assertIn("cannot listen on 127.0.0.1:%d" % self.port, self.log_text())
        finally:
            blocker.close()

    def spawn_activated(self, sock, listen_pid=None):
        """`grace kernel librarian` started as systemd's socket activation
        starts a service (systemd-socket-activate, a .socket unit): `sock`,
        made and listening before the kernel exists, is its fd 3, with
        LISTEN_FDS=1 and LISTEN_PID naming the process that must take it
        (its own pid unless listen_pid says otherwise). The exec wrapper
        keeps the pid, as systemd's does."""
        argv = [sys.executable, "-c", ACTIVATE, str(sock.fileno()),
                "" if listen_pid is None else str(listen_pid), GRACE_BIN, "kernel",
                "librarian", "--config", self.cfg, "--data-dir", self.data, "--port-offset",
                str(self.res.offset)]
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
                             cwd=self.tmp, env=self.env(), pass_fds=(sock.fileno(),))
        self.procs.append(p)
        return p

    def handed_socket(self):
        """A listening socket on a port of our reservation that no kernel
        of this configuration has: whoever answers there took it from us."""
        port = self.res.port(8149)
        s = socket.socket()
        self.addCleanup(s.close)
        s.bind(("127.0.0.1", port))
        s.listen(16)
        return s, port

    def test_socket_activation(self):
        sock, port = self.handed_socket()
        # A request that arrives before the kernel exists waits in the
        # socket's backlog, and is the first one answered.
        early = socket.create_connection(("127.0.0.1", port), timeout=scaled(10))
        self.addCleanup(early.close)
        early.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        p = self.spawn_activated(sock)
        raw = b""
        while True:
            chunk = early.recv(65536)
            if not chunk:
                break
            raw += chunk
        head, _, body = raw.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), (raw, self.log_text()))
        body = json.loads(body)
        self.assertEqual(body["kernel"], "librarian")
        self.assertEqual(body["pid"], p.pid)  # exec'd in place, the socket as fd 3
        # It serves on the socket it was handed, and bound none of its own.
        st, _, body = http_request(port, "POST", "/documents",
                                   {"title": "Activated", "body": "on a handed socket"},
                                   headers={"X-Grace-Internal-Token": self.token})
        self.assertEqual(st, 201, body)
        self.assertNotIn(self.port, listening_ports())
        self.assertNotIn("listening on 127.0.0.1:", self.log_text())
        self.assertNotIn("cannot listen", self.log_text())
        rc, _ = self.terminate(p)
        self.assertEqual(rc, 0, self.log_text())
        self.assertFalse(pid_alive(p.pid))
        self.assertTrue(port_bindable(self.port))

    def test_socket_for_another_process_is_not_taken(self):
        """LISTEN_FDS is for the process LISTEN_PID names (sd_listen_fds(3)):
        a kernel that is not that process binds its own port instead."""
        sock, port = self.handed_socket()
        p = self.spawn_activated(sock, listen_pid=os.getpid())
        st, _, body = self.wait_answering(p)
        self.assertEqual((st, body["kernel"], body["pid"]), (200, "librarian", p.pid))
        self.assertIn(self.port, listening_ports())
        self.assertIn("listening on 127.0.0.1:%d" % self.port, self.log_text())
        rc, _ = self.terminate(p)
        self.assertEqual(rc, 0, self.log_text())


# The exec wrapper of spawn_activated: argv is FD LISTEN_PID PROGRAM ARGS...
ACTIVATE = """
import os, sys
fd, listen_pid = int(sys.argv[1]), sys.argv[2]
if fd != 3:
    os.dup2(fd, 3)  # inheritable, as the protocol wants
    os.close(fd)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = listen_pid or str(os.getpid())
os.execv(sys.argv[3], sys.argv[3:])
"""


if __name__ == "__main__":
    unittest.main()
