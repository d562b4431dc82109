"""Helpers for the guardian, network healer, gateway and CLI tests
(test_healer*.py, test_guardian*.py, test_gateway*.py, test_cli*.py).

Run as a program, this file is also a stand-in kernel:

    python3 healer_support.py stub-kernel STATUS [DELAY_MS [DIE_FLAG]]

It speaks the kernel protocols the README describes (HTTP on fd 3 when
LISTEN_FDS=1 and LISTEN_PID is its pid, READY=1 and WATCHDOG=1 as datagrams
to $NOTIFY_SOCKET, an abstract socket when it starts with '@', stops on
SIGTERM) and answers every GET /health with STATUS, after DELAY_MS: a
kernel that comes up "ready" but is not healthy (or is slow), for checking
that a heal's verification is real. It also answers /echo (the request as
it arrived: method, path, query, headers, body), /sleep?ms=N, /seen (how
many requests each path got) and /die?ms=N (when the file DIE_FLAG exists:
it removes it, stops accepting, drops that request after N ms and every
later one on the connections it still has without an answer, and exits
0.5 s later: a crashing kernel in slow motion), for looking at the gateway
from behind.
"""

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

# --------------------------------------------------------------------------
# The stand-in kernel (only the standard library: it runs before harness is
# imported, and must not import it).


def _notify_address():
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return None
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    return addr


def run_stub_kernel(health_status, delay_ms=0, die_flag=None):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    if os.environ.get("LISTEN_FDS") != "1" or os.environ.get("LISTEN_PID") != str(os.getpid()):
        sys.stderr.write("stub kernel: no socket passed (LISTEN_FDS/LISTEN_PID)\n")
        return 100  # permanent error: do not restart

    lock = threading.Lock()
    seen = {}  # requests per path
    dying = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self, status, obj):
            body = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the gateway gave up waiting (a timeout test)

        def _handle(self):
            path, _, query = self.path.partition("?")
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
            with lock:
                seen[path] = seen.get(path, 0) + 1
            if dying.is_set() or (path == "/die" and die_flag and os.path.exists(die_flag)):
                # Dying: no more accepting, every request on a connection it
                # still has is dropped unanswered, and it exits soon.
                if not dying.is_set():
                    os.unlink(die_flag)
                    dying.set()
                    # Let go of the listening socket at once (grace serve
                    # keeps it, and its backlog, for the next process).
                    idle = socket.socket()
                    os.dup2(idle.fileno(), server.socket.fileno())
                    idle.close()
                    threading.Thread(target=server.shutdown, daemon=True).start()
                    # /die?ms=N: hold this request N ms before dropping it.
                    time.sleep(int(query.partition("ms=")[2] or 0) / 1000.0)
                self.close_connection = True
                return
            if path == "/health":
                if delay_ms:
                    time.sleep(delay_ms / 1000.0)
                self._answer(health_status, {"status": "ok" if health_status == 200 else "failing",
                                             "kernel": "stub", "pid": os.getpid()})
            elif path == "/echo":
                # What the gateway sent, as the kernel saw it.
                self._answer(200, {"method": self.command, "path": path, "query": query,
                                   "headers": [[k, v] for k, v in self.headers.items()],
                                   "body": body.decode("latin-1"), "pid": os.getpid()})
            elif path == "/sleep":
                time.sleep(int(query.partition("ms=")[2] or 0) / 1000.0)
                self._answer(200, {"slept": True})
            elif path == "/die":
                self._answer(200, {"died": False, "pid": os.getpid()})
            elif path == "/seen":
                with lock:
                    self._answer(200, dict(seen))
            else:
                self._answer(404, {"error": {"code": "not_found", "message": self.path}})

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
    server.socket.close()
    server.socket = socket.socket(fileno=3)
    server.socket.setblocking(True)
    server.daemon_threads = True

    addr = _notify_address()
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) if addr else None

    def send(msg):
        if notify:
            try:
                notify.sendto(msg, addr)
            except OSError:
                pass

    usec = int(os.environ.get("WATCHDOG_USEC", "0") or 0)

    def pinger():
        while True:
            time.sleep(usec / 2e6)
            send(b"WATCHDOG=1")

    if usec > 0:
        threading.Thread(target=pinger, daemon=True).start()

    def on_term(sig, frame):
        os._exit(0)

    signal.signal(signal.SIGTERM, on_term)
    send(b"READY=1")
    server.serve_forever()
    time.sleep(0.5)  # stopped accepting (GET /die): linger a little, then exit
    os._exit(1)


def stub_kernel_command(health_status=500, delay_ms=0, die_flag=None):
    """The `command =` line that runs the stand-in kernel: /health answers
    health_status after delay_ms; GET /die makes it die (once: only while
    the file die_flag exists, which it removes)."""
    cmd = "%s %s stub-kernel %d %d" % (sys.executable, os.path.abspath(__file__), health_status,
                                       delay_ms)
    return cmd + (" " + die_flag if die_flag else "")


if __name__ == "__main__":
    if len(sys.argv) in (3, 4, 5) and sys.argv[1] == "stub-kernel":
        sys.exit(run_stub_kernel(*[int(a) for a in sys.argv[2:4]] + sys.argv[4:]))
    sys.stderr.write("usage: healer_support.py stub-kernel STATUS [DELAY_MS [DIE_FLAG]]\n")
    sys.exit(2)


# --------------------------------------------------------------------------
# Test helpers

from harness import GRACE_BIN, pid_alive, proc_start_ticks, scaled  # noqa: E402

# A heal waits for stop, start and verify: generous, and longer under ASan.
HEAL_TIMEOUT = scaled(30)

PLAYBOOKS = {"restart_component", "clear_port", "diagnose_network", "rebind_port", "reset_port",
             "report_storage", "quarantine_store"}
ISSUES = {"port_not_listening", "process_dead", "process_hung", "port_held_by_stale_kernel",
          "port_held_by_foreign_process", "slow_response", "healthy", "storage_failed"}
OUTCOMES = {"healed", "failed", "refused", "diagnosed", "interrupted", "needs_operator"}


def listen_here(port):
    """A foreign listener in this very process (SO_REUSEADDR), as an
    operator's stray program would hold a port."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(16)
    return s


# Binds and listens, says so, then becomes `sleep` holding the socket: a
# small foreign program (its exit frees the port at once; a big one frees it
# only after its memory is torn down, see test_healer_known_bugs.py).
_LISTENER = r"""
import os, socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(16)
s.set_inheritable(True)
sys.stdout.write("listening\n")
sys.stdout.flush()
os.execvp("sleep", ["sleep", "3600"])
"""


class ForeignProcess:
    """A child process of the test that listens on a port and does nothing
    else: a foreign holder the healer may end when forced (never the test
    runner itself). stop() ends it by its pid and reaps it."""

    def __init__(self, port):
        self.port = port
        self.proc = subprocess.Popen([sys.executable, "-c", _LISTENER, str(port)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        self.pid = self.proc.pid
        ready, _, _ = select.select([self.proc.stdout], [], [], scaled(20))
        line = self.proc.stdout.readline() if ready else b""
        if line.strip() != b"listening":
            self.stop()
            raise AssertionError("the foreign listener on port %d did not start" % port)
        self.ticks = proc_start_ticks(self.pid)[1]

    def alive(self):
        """Running and not a zombie (a process the healer ended stays a zombie
        until we reap it)."""
        return self.proc.poll() is None and pid_alive(self.pid, self.ticks)

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except OSError:
                pass
        self.proc.wait()
        self.proc.stdout.close()


def start_leftover_kernel(g, name):
    """`grace kernel NAME` with the server's config, data dir and offset, as
    a killed `grace serve` would leave one behind: it binds its port itself.
    Returns the Popen (the caller must stop it by pid)."""
    log = open(os.path.join(g.tmp, "leftover-%s.log" % name), "ab")
    try:
        p = subprocess.Popen([GRACE_BIN, "kernel", name, "--config", g.config_path,
                              "--data-dir", g.data_dir, "--port-offset", str(g.offset)],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=g.tmp,
                             env=g.env())
    finally:
        log.close()
    return p


def kill_popen(p):
    """Ends a process we started (by its pid) and reaps it."""
    if p.poll() is None:
        try:
            os.kill(p.pid, signal.SIGCONT)
            os.kill(p.pid, signal.SIGKILL)
        except OSError:
            pass
    p.wait()


def resume_and_kill(pid, ticks):
    """Cleanup for a kernel the test stopped with SIGSTOP: if that very
    process is still there, SIGCONT and SIGKILL it."""
    if pid_alive(pid, ticks):
        for sig in (signal.SIGCONT, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except OSError:
                pass


def stop_process(test, pid):
    """SIGSTOPs a kernel, with a cleanup that resumes and kills it should
    the test leave it behind."""
    ticks = proc_start_ticks(pid)[1]
    test.addCleanup(resume_and_kill, pid, ticks)
    os.kill(pid, signal.SIGSTOP)
    return ticks


def proc_state(pid):
    st = proc_start_ticks(pid)
    return st[0] if st else None


def heal(g, name, timeout=None, **fields):
    """POST /network-healer/heal -> (status, incident or error)."""
    body = {"component_name": name}
    body.update(fields)
    st, _, ans = g.http("POST", "/network-healer/heal", body, timeout=timeout or HEAL_TIMEOUT)
    return st, ans


def diagnose(g, name, timeout=None):
    st, _, ans = g.http("POST", "/network-healer/diagnose", {"component_name": name},
                        timeout=timeout or HEAL_TIMEOUT)
    return st, ans


def get_json(g, path, timeout=10.0):
    st, _, body = g.http("GET", path, timeout=timeout)
    if st != 200 or not isinstance(body, dict):
        raise AssertionError("GET %s: %s %r" % (path, st, body))
    return body


def guardian_kernel(g, name):
    for k in get_json(g, "/guardian/status")["kernels"]:
        if k["name"] == name:
            return k
    raise AssertionError("%s not in /guardian/status" % name)


def incidents(g, **query):
    q = "&".join("%s=%s" % kv for kv in query.items())
    return get_json(g, "/network-healer/incidents" + ("?" + q if q else ""))["incidents"]


def check_incident_shape(test, inc, component):
    """What every incident must carry, whatever its outcome."""
    test.assertIsInstance(inc, dict, inc)
    test.assertIsInstance(inc.get("id"), int, inc)
    test.assertGreater(inc["id"], 0)
    test.assertEqual(inc["component"], component)
    test.assertIn(inc["outcome"], OUTCOMES, inc)
    test.assertIn(inc["playbook"], PLAYBOOKS, inc)
    test.assertIn(inc["issue_type"], ISSUES, inc)
    test.assertIn(inc["diagnosed_issue"], ISSUES, inc)
    test.assertIsInstance(inc["duration_ms"], (int, float))
    test.assertGreaterEqual(inc["duration_ms"], 0)
    test.assertIsInstance(inc["started_ms"], int)
    test.assertIsInstance(inc["steps"], list)
    test.assertTrue(inc["steps"], inc)
    last_end = 0.0
    for s in inc["steps"]:
        for key in ("step", "at_ms", "duration_ms", "result", "detail"):
            test.assertIn(key, s, s)
        test.assertIn(s["result"], ("ok", "failed", "refused"), s)
        test.assertGreaterEqual(s["duration_ms"], 0, s)
        # Steps run one after the other.
        test.assertGreaterEqual(s["at_ms"] + 0.5, last_end, inc["steps"])
        last_end = s["at_ms"] + s["duration_ms"]
    test.assertLessEqual(last_end, inc["duration_ms"] + 0.5, inc)
    d = inc["diagnosis"]
    test.assertEqual(d["component"], component)
    test.assertIn(d["issue_type"], ISSUES)
    test.assertEqual(d["issue_type"], inc["diagnosed_issue"])
    for key in ("process", "health", "port", "listening", "port_holder", "connect_ms",
                "supervisor_state"):
        test.assertIn(key, d, d)
    if inc["outcome"] == "healed":
        v = inc["verification"]
        test.assertTrue(v["ok"], inc)
        test.assertEqual(v["status"], 200, v)
        test.assertEqual(inc["steps"][-1]["step"], "verify")
        test.assertEqual(inc["steps"][-1]["result"], "ok")
        test.assertTrue(all(s["result"] == "ok" for s in inc["steps"]), inc["steps"])


def near(obj, like, tol=1e-3):
    """obj with each float that is within tol of the float at the same place
    in `like` replaced by like's: an incident read back from storage may
    differ from the heal's answer in the last digits of its timings. (Both
    rounded to 3 places did not do: 11.6715 less a hair and plus a hair
    round apart, and CI saw it.) Compare near(a, b) with b."""
    if isinstance(obj, float) and isinstance(like, (int, float)) and abs(obj - like) <= tol:
        return like
    if isinstance(obj, dict) and isinstance(like, dict):
        return {k: near(v, like.get(k), tol) for k, v in obj.items()}
    if isinstance(obj, list) and isinstance(like, list):
        return [near(v, like[i] if i < len(like) else None, tol) for i, v in enumerate(obj)]
    return obj


def step(inc, name):
    for s in inc["steps"]:
        if s["step"] == name:
            return s
    raise AssertionError("no step %s in %r" % (name, [s["step"] for s in inc["steps"]]))


# --------------------------------------------------------------------------
# The command line


def run_cli(g, *args, token=True, timeout=None):
    """`grace ARGS --port-offset N --config CFG` with GRACE_TOKEN set to the
    admin's session (or `token` when it is a string; none when False).
    Returns the CompletedProcess (stdout/stderr as text)."""
    env = g.env()
    env.pop("GRACE_TOKEN", None)
    env["HOME"] = g.tmp  # never a token file of the machine's user
    env.pop("XDG_CONFIG_HOME", None)
    if token is True:
        env["GRACE_TOKEN"] = g.auth_headers()["Authorization"].split(" ", 1)[1]
    elif isinstance(token, str):
        env["GRACE_TOKEN"] = token
    argv = [GRACE_BIN] + list(args) + ["--port-offset", str(g.offset), "--config", g.config_path]
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=g.tmp,
                          timeout=timeout or scaled(90))
