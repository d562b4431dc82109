"""Black-box test harness for Grace (standard library only).

Every test starts its own `grace serve` (or `grace kernel`) on a port offset
of its own, so the test files can run in parallel:

    with GraceServer(kernels={"librarian": {}}) as g:
        status, headers, body = g.http("GET", "/librarian/search?query=x")

Ports: 8000+N (API) and 8100..8149+N (kernels), N a multiple of 200 in
10000..24000, reserved by PortReservation with an exclusive flock on
/tmp/grace-test-offset-N.lock for as long as it lives, and only taken when
every one of those ports can be bound. Tests never touch 8000..8149.

GraceServer (see its docstring for the constructor):
  start()/stop()/close(), or `with`: stop() SIGTERMs grace serve (its pid
      only), waits 15 s, SIGKILLs as a last resort, then fails if any process
      it saw (kernels, or pids given to track_pid()) is left, or if a
      sanitizer report is in the log. A failing GraceTestCase prints the log.
  http(method, path, body, headers, port, timeout, auth): one request on a
      fresh connection -> (status, headers, JSON or bytes). To the API unless
      `port` says otherwise; API requests carry the first admin's session
      (the password is read from the log of the first start), unless
      auth=False or the caller sends its own Authorization.
  kernel_http(name, ...): straight to a kernel's port, with the internal
      token; raw(bytes, port): exact bytes on a socket -> RawResponse.
  kernel(name), wait_kernel(name, pred), health(), wait_states(expect),
      wait_for(pred), kernel_port(name), log(), token(), login(),
      create_user(), track_pid().
Module helpers: http_request, raw_request, wait_for, scaled (deadlines
stretched for sanitizer builds), CpuContention (stretches a time limit by
how busy the CPUs were), spare_kernels (placeholder kernels for bystanders
and stand-in slots), python_standin, port_bindable, pid_alive,
need_libsystemd, need_tool (a missing tool fails the test, naming the
package).
The kernels (BUILTIN_KERNELS, KERNEL_DEFS, kernels_list()) come from
`grace kernels-list --json`: the kernels' own definitions.
"""

import fcntl
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def _find_grace_bin():
    p = os.environ.get("GRACE_BIN", "build/grace")
    if not os.path.isabs(p) and not os.path.exists(p):
        alt = os.path.join(REPO, p)
        if os.path.exists(alt):
            p = alt
    return os.path.abspath(p)


GRACE_BIN = _find_grace_bin()


_BINARY = None


def binary_has(marker):
    """True when the grace binary holds this byte string (feature checks)."""
    global _BINARY
    if _BINARY is None:
        try:
            with open(GRACE_BIN, "rb") as f:
                _BINARY = f.read()
        except OSError:
            _BINARY = b""
    return marker in _BINARY


def _time_factor():
    """Deadlines are multiplied by this: sanitizer builds are slower."""
    env = os.environ.get("GRACE_TEST_TIME_FACTOR")
    if env:
        return float(env)
    if binary_has(b"__asan_init") or binary_has(b"__ubsan_handle"):
        return 4.0
    if binary_has(b"__tsan_init") or binary_has(b"__msan_init"):
        return 6.0
    return 1.0


TIME_FACTOR = _time_factor()


# Every build has logins on :8000: every API route but /health, /metrics
# and /auth/login wants a session token, and kernels want the internal
# token. (Always true: kept for tests that still import it. A build without
# logins would fail the tests that log in, not skip them.)
HAS_AUTH = True
PUBLIC_API_PATHS = ("/health", "/metrics", "/auth/login")


def scaled(seconds):
    """A deadline for something the spec does not time: generous under ASan."""
    return seconds * TIME_FACTOR


class CpuContention:
    """Samples how many *other* processes are runnable per CPU while a timed
    operation runs, so a time limit meant for an idle machine can be
    stretched by how busy the machine actually was: parallel test files,
    other work and sanitizers all compete for the same few CPUs. Our own
    process, `root` and its children are not counted: the work being timed
    is not contention. factor() = 1 + others runnable per CPU, or the
    one-minute load average per CPU at the end when that is higher: the
    sampler sees an instant every interval and missed bursts (it measured
    3.8 where kernels took 5 times their idle time), the load average
    counts every runnable task all along (our own too: it only ever
    loosens a limit)."""

    def __init__(self, root=None, interval=0.05):
        self.root = root  # a pid, or a callable returning one (or None)
        self.samples = []
        self.load = 0.0  # the load average per CPU at the end (__exit__)
        self._stop = threading.Event()
        self._interval = interval
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self, ncpu):
        me = os.getpid()
        root = self.root() if callable(self.root) else self.root
        running = 0
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            rest = data[data.rfind(b")") + 2:].split()
            pid = int(d)
            if rest[0] != b"R" or pid == me or pid == root:
                continue
            if root and int(rest[1]) == root:
                continue
            running += 1
        self.samples.append(running / ncpu)

    def _run(self):
        ncpu = os.cpu_count() or 1
        while not self._stop.is_set():
            try:
                self._sample(ncpu)
            except (OSError, ValueError, IndexError):
                pass
            self._stop.wait(self._interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        try:
            with open("/proc/loadavg") as f:
                self.load = float(f.read().split()[0]) / (os.cpu_count() or 1)
        except (OSError, ValueError, IndexError):
            self.load = 0.0

    def factor(self):
        sampled = sum(self.samples) / len(self.samples) if self.samples else 0.0
        return 1.0 + max(sampled, self.load)


def _kernel_defs():
    """The kernels this binary can run, from their definitions (`grace
    kernels-list --json`, in port order): the one table of kernels."""
    try:
        p = subprocess.run([GRACE_BIN, "kernels-list", "--json"], capture_output=True,
                           timeout=60)
    except OSError as e:
        raise RuntimeError("cannot run %s kernels-list --json: %s (build first, or set "
                           "GRACE_BIN)" % (GRACE_BIN, e)) from e
    if p.returncode != 0:
        raise RuntimeError("%s kernels-list --json exited %d: %s"
                           % (GRACE_BIN, p.returncode, p.stderr.decode(errors="replace")))
    return json.loads(p.stdout)["kernels"]


# {name: definition} in port order; each definition has name, port, tier,
# state (complete, partial or placeholder), complete, routes and summary.
KERNEL_DEFS = {k["name"]: k for k in _kernel_defs()}

# {name: (default port, tier)} in port order, as the configuration has them
# when the file lists no kernels.
BUILTIN_KERNELS = {n: (k["port"], k["tier"]) for n, k in KERNEL_DEFS.items()}


def kernels_list():
    """{name: complete?}: which kernels do everything their issue asks."""
    return {n: k["complete"] for n, k in KERNEL_DEFS.items()}


# Placeholder kernels make the quietest neighbours: no dependencies on other
# kernels, nothing but /health and /metrics. Preferred in this order.
# (Not the policy kernel: when it is configured it decides every request.
# Not the learning kernel: when it runs, the healer asks it which playbook
# to run, and a bystander must not change that.)
_SPARE_ORDER = ["alerts", "telemetry", "metrics", "research", "coding_agent",
                "self_healing", "executor", "workflow", "state_machine", "scheduler",
                "compliance", "trust", "governance"]


def spare_kernels(n, exclude=()):
    """n built-in kernel names to use as bystanders or stand-in slots:
    placeholders first (they need no other kernel), in a stable order."""
    kl = kernels_list()
    names = [k for k in _SPARE_ORDER if k not in exclude and k in kl]
    names.sort(key=lambda k: (kl[k], _SPARE_ORDER.index(k)))
    if len(names) < n:
        raise RuntimeError("not enough spare kernels")
    return names[:n]


API_PORT = 8000
KERNEL_PORT_MIN = 8100
KERNEL_PORT_MAX = 8149
# Ports 18000-32149: below the 600 under the ephemeral range, where
# `grace restore` runs its checks (src/cli/restore.c).
OFFSETS = list(range(10000, 24001, 200))

# Who decides the API's requests when a test's kernels do not include the
# policy kernel: "table" (the default; [policy] authorizer = table is
# written) or, with GRACE_TEST_AUTHORIZER=kernel, the policy kernel, added
# to the test's kernels. Tests that start every kernel, or name the policy
# kernel, always have it deciding.
AUTHORIZER = os.environ.get("GRACE_TEST_AUTHORIZER", "table")

# Small timeouts, so that every state change a test waits for is quick.
DEFAULT_SECTIONS = {
    "grace": {"log_level": "info"},
    "limits": {"timeout_ms": 10000, "drain_ms": 1000},
    "defaults": {
        "backoff_initial_ms": 50,
        "backoff_max_ms": 500,
        "stable_ms": 300,
        "watchdog_ms": 3000,
        "ready_timeout_ms": 10000,
        "stop_timeout_ms": 2000,
    },
}
# The cheapest password hashing allowed: logins stay quick under ASan.
DEFAULT_SECTIONS["auth"] = {"argon2_mem_kib": 19456, "argon2_ops": 2}
# The sanitizer pass of CI (GRACE_SANITIZED=1) runs without standbys unless
# a test asks for them (test_standby does): twenty more instrumented
# processes per server starve the kernels' watchdogs on 2 CPUs. The plain
# pass keeps the shipped default (on), so every crash test there is taken
# over by a standby.
if os.environ.get("GRACE_SANITIZED") == "1":
    DEFAULT_SECTIONS["defaults"]["standby"] = 0
# An instrumented kernel starting next to forty others on 2 CPUs can miss
# 3 s of watchdog pings without being hung (state_machine was killed so in
# test_all_kernels on a loaded machine): the default doubles under a
# sanitizer. The tests of
# hang detection set watchdog_ms themselves. So does the time to READY:
# the librarian, starting with the other nineteen under ASan beside three
# more ASan tests, was killed at 10 s before it had logged a line, and its
# second start was ready in 3.6 s (test_all_kernels, 2026-12-06; alone it
# passes in 5 s). test_watchdog sets ready_timeout_ms itself.
if TIME_FACTOR > 1:
    DEFAULT_SECTIONS["defaults"]["watchdog_ms"] = 6000
    DEFAULT_SECTIONS["defaults"]["ready_timeout_ms"] = 20000

# GRACE_TEST_STORE=postgresql: every GraceServer made from sections (not
# text=) whose config names no [store] gets a fresh database of its own on
# one throw-away PostgreSQL for this process (pg_server.py), started on
# first use and stopped at exit (test_store_postgresql.py runs the auth,
# memory and chat tests so).
STORE = os.environ.get("GRACE_TEST_STORE", "sqlite")
_PG = None


def shared_pg():
    """The process's throw-away PostgreSQL (started on first use)."""
    global _PG
    if _PG is None:
        import atexit
        from pg_server import PgServer
        res = PortReservation()
        pg = PgServer(res.offset)
        try:
            pg.start()
        except BaseException:
            pg.dump_log()
            pg.stop()
            res.release()
            raise
        _PG = (pg, res)

        def _stop():
            pg.stop()
            res.release()
        atexit.register(_stop)
        # A SIGTERM (meson's timeout) still runs _stop: no PostgreSQL is left.
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    return _PG[0]


# --------------------------------------------------------------------------
# Ports


def port_bindable(port, reuse=True):
    """True when 127.0.0.1:port can be bound and listened on right now.

    With reuse (the default) the probe sets SO_REUSEADDR, as grace does, so a
    connection lingering in TIME_WAIT does not count as the port being taken;
    a socket still listening on it does."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if reuse:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(1)
        return True
    except OSError:
        return False
    finally:
        s.close()


def all_ports(offset):
    return [API_PORT + offset] + list(range(KERNEL_PORT_MIN + offset, KERNEL_PORT_MAX + 1 + offset))


def listening_ports():
    """Ports with a TCP socket in LISTEN state on this host (IPv4 and IPv6)."""
    ports = set()
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(f) as fh:
                next(fh)
                for line in fh:
                    parts = line.split()
                    if len(parts) > 3 and parts[3] == "0A":
                        ports.add(int(parts[1].rsplit(":", 1)[1], 16))
        except OSError:
            pass
    return ports


class PortReservation:
    """An exclusive port offset, held until release()."""

    def __init__(self, timeout=120.0):
        self.offset = None
        self._fd = None
        self._acquire(timeout)

    def _acquire(self, timeout):
        rng = random.SystemRandom()
        deadline = time.monotonic() + timeout
        while True:
            offsets = OFFSETS[:]
            rng.shuffle(offsets)
            for n in offsets:
                path = "/tmp/grace-test-offset-%d.lock" % n
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    os.close(fd)
                    continue
                if all(port_bindable(p) for p in all_ports(n)):
                    self.offset = n
                    self._fd = fd
                    return
                os.close(fd)  # releases the lock
            if time.monotonic() > deadline:
                raise RuntimeError("no free port offset in 10000..24000")
            time.sleep(0.2)

    @property
    def api_port(self):
        return API_PORT + self.offset

    def port(self, configured):
        return configured + self.offset

    def release(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


# --------------------------------------------------------------------------
# Processes


def proc_start_ticks(pid):
    """(state, starttime) of a live pid from /proc, or None when gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:
        return None
    rest = data[data.rfind(")") + 2:].split()
    return rest[0], int(rest[19])


def pid_alive(pid, start_ticks=None):
    """True while `pid` names a running (not zombie) process; with
    start_ticks, only when it is still that same process."""
    st = proc_start_ticks(pid)
    if st is None or st[0] in ("Z", "X"):
        return False
    return start_ticks is None or st[1] == start_ticks


_SANITIZER = re.compile(r"ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error: |"
                        r"UndefinedBehaviorSanitizer")


def sanitizer_report(text):
    """The first sanitizer report in a log (and what follows it), or None."""
    m = _SANITIZER.search(text)
    if not m:
        return None
    start = text.rfind("\n", 0, m.start()) + 1
    return text[start:start + 4000]


def wait_for(predicate, timeout, interval=0.02, message=None):
    """Polls predicate() until it returns something truthy; returns it.
    Raises AssertionError (with the last value seen, and `message`, which
    may be a callable) at the deadline."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            if callable(message):
                message = message()
            raise AssertionError("%s (after %.1f s; last value: %r)"
                                 % (message or "condition not met", timeout, last))
        time.sleep(interval)


# --------------------------------------------------------------------------
# HTTP


def parse_body(headers, raw):
    ctype = headers.get("Content-Type", "") if headers is not None else ""
    if raw and ("json" in ctype or raw[:1] in (b"{", b"[")):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def http_request(port, method, path, body=None, headers=None, timeout=10.0):
    """One request on a fresh connection to 127.0.0.1:port.

    `body` may be a dict or list (sent as JSON), str or bytes. Returns
    (status, headers, body) where body is the parsed JSON when the answer is
    JSON, else bytes. Connection errors propagate."""
    hdrs = dict(headers or {})
    data = body
    if isinstance(body, (dict, list)):
        data = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    elif isinstance(body, str):
        data = body.encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, resp.headers, parse_body(resp.headers, raw)
    finally:
        conn.close()


class RawResponse:
    def __init__(self, status, reason, headers, body, raw):
        self.status = status  # None when the server sent no status line
        self.reason = reason
        self.headers = headers  # list of (name, value)
        self.body = body
        self.raw = raw

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "RawResponse(%r, %r)" % (self.status, self.raw[:300])


def _parse_raw(buf):
    """Parses the first response in buf: (RawResponse, complete?)."""
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return None, False
    lines = buf[:head_end].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    try:
        status = int(parts[1])
    except (IndexError, ValueError):
        return RawResponse(None, "", [], b"", buf), True
    reason = parts[2] if len(parts) > 2 else ""
    headers = []
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers.append((k.strip(), v.strip()))
    body = buf[head_end + 4:]
    r = RawResponse(status, reason, headers, body, buf)
    cl = r.header("Content-Length")
    if cl is not None:
        n = int(cl)
        if len(body) >= n:
            r.body = body[:n]
            return r, True
        return r, False
    return r, False  # read until close


def raw_request(port, data, timeout=10.0, read_all=False, shutdown_write=False):
    """Sends exact bytes to 127.0.0.1:port and reads one response (or, with
    read_all, everything until the server closes). Returns a RawResponse;
    status is None when the server closed or reset without answering."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    buf = b""
    try:
        s.sendall(data)
        if shutdown_write:
            s.shutdown(socket.SHUT_WR)
        while True:
            if not read_all:
                r, done = _parse_raw(buf)
                if done:
                    return r
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            buf += chunk
    finally:
        s.close()
    r, _ = _parse_raw(buf)
    if r is None:
        return RawResponse(None, "", [], b"", buf)
    return r


# --------------------------------------------------------------------------
# Config


def _ini_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def render_ini(sections):
    out = []
    for name, keys in sections.items():
        out.append("[%s]" % name)
        for k, v in keys.items():
            out.append("%s = %s" % (k, _ini_value(v)))
        out.append("")
    return "\n".join(out)


def kernel_sections(names=None, **overrides):
    """[kernel.NAME] sections for built-in kernels (all of them by default),
    with overrides[NAME] (a built-in kernel's port and tier come from its
    definition: its section only overrides)."""
    names = list(BUILTIN_KERNELS) if names is None else list(names)
    for n in overrides:
        if n not in names:
            names.append(n)
    return {n: dict(overrides.get(n, {})) for n in names}


# --------------------------------------------------------------------------
# Failure reporting: a failing test prints the logs of the servers involved.

_SERVERS = []  # every GraceServer created in this process


def _dump_servers(since):
    for s in list(_SERVERS):
        if s.running or (s.stopped_at is not None and s.stopped_at >= since):
            s.dump_log()


class GraceTestCase(unittest.TestCase):
    """TestCase that prints the log of every server that was running (or
    stopped) during a test that failed."""

    def run(self, result=None):
        if result is None:
            return super().run(result)
        before = len(result.failures) + len(result.errors)
        since = time.monotonic()
        try:
            return super().run(result)
        finally:
            if len(result.failures) + len(result.errors) > before:
                _dump_servers(since)


class ServerClassCase(GraceTestCase):
    """One grace serve for every test of a class: the class says how to
    make it (make_server, not started) and what to do once it runs
    (prepare); a start that fails dumps the log and cleans up."""
    g = None

    @classmethod
    def make_server(cls):
        raise NotImplementedError

    @classmethod
    def prepare(cls):
        pass

    @classmethod
    def setUpClass(cls):
        cls.g = cls.make_server()
        try:
            cls.g.start()
            cls.prepare()
        except BaseException:
            cls.g.dump_log()
            cls.g.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.g.close()


# --------------------------------------------------------------------------
# The server


class ServeExited(AssertionError):
    pass


class GraceServer:
    """One `grace serve` in a temporary directory of its own.

    config:  {section: {key: value}} merged over DEFAULT_SECTIONS.
    kernels: {name: {key: value}} written as [kernel.NAME] sections: only
             those kernels run (a built-in one's port and tier come from its
             definition unless given); None keeps every built-in kernel.
             Without "policy" among them, [policy] authorizer = table is
             written (see AUTHORIZER).
    text:    the whole config file instead (no defaults added); @TMP@,
             @LIBRARY@ and @GRACE_BIN@ in it are replaced.
    expect:  {name: state or set of states} for kernels that should not end
             up "ready"; start() waits until every enabled kernel is in its
             expected state.
    """

    def __init__(self, config=None, kernels=None, text=None, expect=None, autostart=True,
                 start_timeout=None, env=None, reservation=None, preexec_fn=None, wrapper=None):
        self.preexec_fn = preexec_fn  # runs in the child before exec (limits)
        # Run as `WRAPPER... grace serve ...`, a command that execs what
        # follows in place (`ip netns exec NS`: test_nodes_netns.py).
        self.wrapper = list(wrapper or [])
        self.tmp = tempfile.mkdtemp(prefix="grace-bb-")
        self.data_dir = os.path.join(self.tmp, "data")
        self.library = os.path.join(self.tmp, "library")
        os.makedirs(self.library)
        self.config_path = os.path.join(self.tmp, "grace.ini")
        self.log_path = os.path.join(self.tmp, "serve.log")
        self.expect = dict(expect or {})
        self.autostart = autostart
        self.start_timeout = start_timeout if start_timeout is not None else scaled(30)
        self.extra_env = dict(env or {})
        self.proc = None
        self.returncode = None
        self.stop_elapsed = None
        self.started_at = None
        self.started_wall = None
        self.stopped_at = None
        self._dumped = False
        self._log_text = None
        self._pids = {}  # pid -> starttime ticks: every process seen
        self.remote_kernels = set()  # kernels another node runs: their pids are not ours
        self._lock = threading.Lock()
        self.api_headers = {}  # added to every request to the API port
        self.store_db = None  # its PostgreSQL database (GRACE_TEST_STORE=postgresql)
        self.admin_user = None  # the admin grace serve made on its first start,
        self.admin_password = None  # learnt from its log
        self._own_res = reservation is None
        self.res = reservation or PortReservation()
        self.offset = self.res.offset
        self.api_port = API_PORT + self.offset

        if text is not None:
            self.config_text = (text.replace("@TMP@", self.tmp)
                                .replace("@LIBRARY@", self.library)
                                .replace("@GRACE_BIN@", GRACE_BIN))
            self.kernel_table = None
        else:
            sections = {k: dict(v) for k, v in DEFAULT_SECTIONS.items()}
            sections["grace"]["library_root"] = self.library
            for name, keys in (config or {}).items():
                sections.setdefault(name, {}).update(keys)
            if STORE == "postgresql" and "store" not in sections:
                pg = shared_pg()
                self.store_db = pg.create_database()
                sections["store"] = pg.store_section(self.store_db)
            self.kernel_table = {}
            if kernels is not None and "policy" not in kernels:
                if AUTHORIZER == "kernel":
                    kernels = dict(kernels, policy={})
                else:
                    # No policy kernel to decide: the built-in role table
                    # decides instead (docs/policy.md), unless the test says.
                    sections.setdefault("policy", {}).setdefault("authorizer", "table")
            if kernels is not None:
                for name, keys in kernels.items():
                    keys = dict(keys)
                    sections["kernel." + name] = dict(keys)
                    if "port" not in keys:
                        if name not in BUILTIN_KERNELS:
                            raise ValueError("kernel %s is not built in: give its port"
                                             % name)
                        keys["port"] = BUILTIN_KERNELS[name][0]
                    self.kernel_table[name] = keys
            else:
                for name, (port, tier) in BUILTIN_KERNELS.items():
                    self.kernel_table[name] = {"port": port, "tier": tier}
            self.config_text = render_ini(sections)
        with open(self.config_path, "w") as f:
            f.write(self.config_text)
        _SERVERS.append(self)

    # -- life

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def env(self):
        env = dict(os.environ)
        for k in ("GRACE_CONFIG", "GRACE_DATA_DIR", "GRACE_PORT_OFFSET", "GRACE_LIBRARY_ROOT",
                  "GRACE_LOG_LEVEL", "NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID",
                  "LISTEN_FDNAMES", "WATCHDOG_USEC", "WATCHDOG_PID"):
            env.pop(k, None)
        env["GRACE_BIN"] = GRACE_BIN
        env.update(self.extra_env)
        return env

    def start(self, wait=True):
        assert not self.running, "already running"
        self.api_headers.pop("Authorization", None)  # log in again when needed
        self.returncode = None
        self.stopped_at = None
        log = open(self.log_path, "ab")
        try:
            self.started_at = time.monotonic()
            self.started_wall = time.time()
            self.proc = subprocess.Popen(
                self.wrapper +
                [GRACE_BIN, "serve", "--config", self.config_path, "--data-dir", self.data_dir,
                 "--port-offset", str(self.offset)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.tmp, env=self.env(),
                preexec_fn=self.preexec_fn)
        finally:
            log.close()
        if wait:
            self.wait_states()
        return self

    def check_alive(self):
        if self.proc is not None and self.proc.poll() is not None:
            raise ServeExited("grace serve exited with status %s\n%s"
                              % (self.proc.returncode, self.log_tail()))

    def health(self):
        """GET /health on the API, or None when it does not answer."""
        try:
            st, _, body = self.http("GET", "/health", timeout=5)
        except OSError:
            return None
        return body if st == 200 and isinstance(body, dict) else None

    def expected_names(self):
        if self.kernel_table is None:
            return None
        return {n for n, k in self.kernel_table.items() if _ini_value(k.get("enabled", True)) in
                ("true", "yes", "1")}

    def states_ok(self, expect=None, health=None):
        """The /health answer when every enabled kernel is in its expected
        state (ready unless `expect` says otherwise), else None."""
        expect = self.expect if expect is None else expect
        h = health or self.health()
        if not h:
            return None
        names = self.expected_names()
        if names is not None and set(h["kernels"]) != names:
            return None
        for name, k in h["kernels"].items():
            want = expect.get(name, "ready")
            want = {want} if isinstance(want, str) else set(want)
            if k["state"] not in want:
                return None
        return h

    def wait_states(self, expect=None, timeout=None):
        timeout = self.start_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        last = None
        expect = self.expect if expect is None else expect
        while True:
            self.check_alive()
            last = self.health()
            h = self.states_ok(expect, last)
            if h:
                return h
            # failed and port_unavailable stay so: no point waiting on them.
            for name, k in (last or {}).get("kernels", {}).items():
                want = expect.get(name, "ready")
                want = {want} if isinstance(want, str) else set(want)
                if k["state"] in ("failed", "port_unavailable") and k["state"] not in want:
                    raise AssertionError("kernel %s is %s (last exit: %s); expected %s"
                                         % (name, k["state"], k["last_exit"], sorted(want)))
            if time.monotonic() >= deadline:
                states = ({n: k["state"] for n, k in last["kernels"].items()} if last else None)
                raise AssertionError("kernels not in the expected states after %.1f s: %r"
                                     % (timeout, states))
            time.sleep(0.02)

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        """Signals grace serve (its pid only) and waits for it; SIGKILL as a
        last resort. Then checks every process it started is gone. Returns
        the exit status."""
        if self.proc is None:
            return self.returncode
        problems = []
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                problems.append("grace serve did not exit within %.0f s of signal %d: killed"
                                % (timeout, sig))
        self.stop_elapsed = time.monotonic() - t0
        self.returncode = self.proc.returncode
        self.proc = None
        self.stopped_at = time.monotonic()
        report = sanitizer_report(self.log())
        if report:
            problems.append("sanitizer report in the log of grace serve or a kernel:\n"
                            + report)
        left = self.leftover_pids(timeout=scaled(3))
        if left:
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            problems.append("processes left after grace serve exited: %s" % left)
        if problems:
            raise AssertionError("; ".join(problems))
        return self.returncode

    def leftover_pids(self, timeout=0.0):
        """Tracked pids still alive after waiting up to `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                pids = dict(self._pids)
            left = sorted(p for p, t in pids.items() if pid_alive(p, t))
            if not left or time.monotonic() >= deadline:
                return left
            time.sleep(0.02)

    def close(self):
        err = None
        try:
            if self.proc is not None:
                self.stop()
        except AssertionError as e:
            err = e
        finally:
            if self._own_res:
                self.res.release()
            try:
                with open(self.log_path, "rb") as f:
                    self._log_text = f.read().decode("utf-8", "replace")
            except OSError:
                pass
            shutil.rmtree(self.tmp, ignore_errors=True)
        if err:
            raise err

    def __enter__(self):
        try:
            if self.autostart:
                self.start()
        except BaseException:
            self.dump_log()
            try:
                self.close()
            except AssertionError as e:
                print("cleanup: %s" % e, file=sys.stderr)
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            self.close()
        except AssertionError:
            self.dump_log()
            if exc_type is None:
                raise
        if exc_type is not None:
            self.dump_log()
        return False

    # -- logs

    def log(self):
        if self._log_text is not None:
            return self._log_text
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_log(self, pattern, regex=False, timeout=None):
        """Waits until the log holds `pattern` (a regular expression with
        regex=True) and returns the match. Every process's lines reach the
        file through one pipe and a copier thread (src/serve/logfile.h),
        so a line just written may not be in the file yet: on a loaded
        machine it can be a second behind. Works after a stop too."""
        def seen():
            text = self.log()
            return re.search(pattern, text) if regex else pattern in text
        return wait_for(seen, scaled(10) if timeout is None else timeout, 0.05,
                        message=lambda: "the log never said %r; its end:\n%s"
                        % (pattern, self.log_tail(40)))

    def log_tail(self, lines=150):
        return "\n".join(self.log().splitlines()[-lines:])

    def dump_log(self):
        if self._dumped:
            return
        self._dumped = True
        sys.stderr.write("\n===== grace serve log (offset %d, %s) =====\n%s\n"
                         "===== end of log =====\n"
                         % (self.offset, self.tmp, self.log_tail(300)))
        sys.stderr.flush()

    # -- pids

    def _is_ours(self, pid):
        """True when `pid` is grace serve or runs below it now, or names
        this server's temporary directory on its command line (a kernel a
        service manager runs for it: tests/blackbox/systemd_standin.py)."""
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                if self.tmp.encode() in f.read():
                    return True
        except OSError:
            return False
        root = self.proc.pid if self.proc is not None else None
        for _ in range(64):
            if root is None or pid <= 1:
                return False
            if pid == root:
                return True
            try:
                with open("/proc/%d/stat" % pid) as f:
                    data = f.read()
            except OSError:
                return False
            pid = int(data[data.rfind(")") + 2:].split()[1])
        return False

    def track_pid(self, pid, ours_only=False):
        """Remembers a process the server started: stop() checks it is gone
        (and kills it if not). ours_only: only if it is this server's now
        (_is_ours), for pids read from answers, which may name processes
        of the past (a fixture's audit events of kernel states) whose
        numbers another process holds now: never ours to check, let alone
        to kill."""
        if not isinstance(pid, int) or pid <= 0:
            return
        st = proc_start_ticks(pid)
        if st is None:
            return
        with self._lock:
            if self._pids.get(pid) == st[1]:
                return  # the same process, seen in an earlier answer
        if ours_only and not self._is_ours(pid):
            return
        with self._lock:
            self._pids.setdefault(pid, st[1])

    def _note(self, obj):
        """Tracks every kernel pid in an API or kernel answer."""
        if isinstance(obj, dict):
            pid = obj.get("pid")
            # A kernel on another node (test_nodes.py) is not ours to track.
            who = obj.get("kernel") or obj.get("name")
            remote = (obj.get("manager") == "node" or
                      (isinstance(who, str) and who in self.remote_kernels))
            if isinstance(pid, int) and ("state" in obj or "kernel" in obj) and not remote:
                self.track_pid(pid, ours_only=True)
            for v in obj.values():
                if isinstance(v, (dict, list)):
                    self._note(v)
        elif isinstance(obj, list):
            for v in obj:
                self._note(v)

    # -- helpers

    def kernel_port(self, name):
        if self.kernel_table and name in self.kernel_table:
            return int(self.kernel_table[name]["port"]) + self.offset
        return BUILTIN_KERNELS[name][0] + self.offset

    def store_rows(self, sql):
        """Rows of a query on the users' store: grace.db, or this server's
        PostgreSQL database under GRACE_TEST_STORE=postgresql (each row a
        tuple of strings there). The tables and columns read must have the
        same names in both (users, api_tokens, and sessions' token_hash)."""
        if self.store_db is not None:
            out = shared_pg().psql(sql.replace("\n", " "), self.store_db)
            return [tuple(line.split("|")) for line in out.splitlines() if line]
        import sqlite3
        db = sqlite3.connect(os.path.join(self.data_dir, "grace.db"))
        try:
            return list(db.execute(sql))
        finally:
            db.close()

    def token(self):
        """The internal token `grace serve` wrote for its kernels, or None
        (kernels want it on every route but /health and /metrics)."""
        try:
            with open(os.path.join(self.data_dir, "internal.token")) as f:
                return f.read().strip() or None
        except OSError:
            return None

    def token_headers(self):
        t = self.token()
        return {"X-Grace-Internal-Token": t} if t else {}

    def token_line(self):
        """The token as a raw header line (b"" when there is none)."""
        t = self.token()
        return b"X-Grace-Internal-Token: " + t.encode() + b"\r\n" if t else b""

    def first_admin(self):
        """(name, password) of the admin `grace serve` created on the first
        start of this data directory (printed once in its log), or None when
        it created none (users existed already)."""
        if self.admin_password is None:
            # The line is written before the API answers, and before the
            # line that says where it listens; but lines reach the file
            # through a pipe and a copier thread (wait_log), so the API can
            # answer before either is in the file: wait for the second.
            self.wait_for(lambda: self.health(), scaled(30), message="the API answering")
            self.wait_log(": API on ", timeout=scaled(30))
            m = re.search(r"created user '(\w+)' \(admin\) with password ([A-Za-z0-9_-]+)",
                          self.log())
            if m:
                self.admin_user, self.admin_password = m.group(1), m.group(2)
        return (self.admin_user, self.admin_password) if self.admin_password else None

    def login(self, name=None, password=None):
        """Returns a session token. With no arguments: the first admin's, which
        then goes with every later API request made through http(). With a
        name and password: that user's, and nothing else changes."""
        if name is None:
            admin = self.first_admin()
            if not admin:
                raise AssertionError("grace serve printed no first admin (users existed "
                                     "before its first start): log in explicitly")
            name, password = admin
            default = True
        else:
            default = False
        st, _, body = http_request(self.api_port, "POST", "/auth/login",
                                   {"username": name, "password": password}, timeout=scaled(30))
        if st != 200:
            raise AssertionError("login as %s: %s %r" % (name, st, body))
        if default:
            self.api_headers["Authorization"] = "Bearer " + body["token"]
        return body["token"]

    def create_user(self, name, password, role="user"):
        """Creates a user through POST /auth/users as the first admin."""
        st, _, body = self.http("POST", "/auth/users",
                                {"username": name, "password": password, "role": role},
                                timeout=scaled(30))
        if st != 201:
            raise AssertionError("create user %s: %s %r" % (name, st, body))
        return body

    def set_test_policy(self, extra=None):
        """The policy kernel's default set as it stands, with `extra` (Cedar
        text, or None for nothing) after a marker line, so that each call
        replaces only what the test added before. Returns the set's new
        version. (A deleted set would deny everything: tests put the
        default back this way rather than delete.)"""
        path, mark = "/kernels/policy/policy-sets/default", "\n// ---- test\n"
        st, _, cur = self.http("GET", path)
        if st != 200:
            raise AssertionError("policy set: %s %r" % (st, cur))
        base = cur["text"].split(mark)[0]
        st, _, out = self.http("PUT", path, {"policies": base + (mark + extra if extra else "")})
        if st != 200:
            raise AssertionError("policy set: %s %r" % (st, out))
        return out["version"]

    def auth_headers(self):
        """The first admin's session header for the API (logging in first if
        need be)."""
        if "Authorization" not in self.api_headers:
            self.login()
        return {k: v for k, v in self.api_headers.items() if k == "Authorization"}

    def auth_line(self):
        """The session as a raw header line."""
        return ("Authorization: %s\r\n" % self.auth_headers()["Authorization"]).encode()

    def http(self, method, path, body=None, headers=None, port=None, timeout=10.0, auth=True):
        """A request on a fresh connection; to the API unless `port` says
        otherwise. API requests carry the admin's session unless auth=False."""
        port = port or self.api_port
        if port == self.api_port:
            own = any(k.lower() == "authorization" for k in (headers or {}))
            if auth and not own and path.split("?")[0] not in PUBLIC_API_PATHS:
                self.auth_headers()
            base = dict(self.api_headers)
            if not auth:
                base.pop("Authorization", None)
            headers = dict(base, **(headers or {}))
        st, hdrs, parsed = http_request(port, method, path, body, headers, timeout)
        self._note(parsed)
        return st, hdrs, parsed

    def requires_svid(self):
        """Whether this server's kernels refuse calls without an SVID: by
        default where a trust kernel runs under grace serve (docs/trust.md),
        unless the configuration says."""
        if self.kernel_table is None or "trust" not in self.kernel_table:
            return False
        m = re.search(r"^\s*require_svid\s*=\s*(\w+)", self.config_text, re.M)
        return m is None or m.group(1).lower() in ("true", "yes", "1", "on")

    def svid_for(self, who, kernel):
        """A JWT-SVID of workload `who` (a kernel's name, or "grace") for
        `kernel`, asked of the trust kernel by the admin through the gateway
        and kept until a minute before it expires; None when none is had."""
        cache = self.__dict__.setdefault("_svids", {})
        key = (who, kernel)
        now = time.time()
        if key in cache and cache[key][1] - 60 > now:
            return cache[key][0]
        m = re.search(r"^\s*domain\s*=\s*(\S+)", self.config_text, re.M)
        aud = "spiffe://%s/kernel/%s" % (m.group(1) if m else "grace.local", kernel)
        try:
            st, _, out = self.http("POST", "/kernels/trust/jwt-svid",
                                   {"for": who, "audience": aud}, timeout=scaled(10))
        except OSError:
            return None
        if st != 200:
            return None
        svid = out["svids"][0]
        cache[key] = (svid["svid"], svid["expires_at"])
        return svid["svid"]

    def kernel_http(self, name, method, path, body=None, headers=None, timeout=10.0, svid=True):
        """A request straight to a kernel's port, with the internal token;
        where the kernels want SVIDs, with the SVID of the caller it names
        (X-Grace-Caller; "grace" when it names none), unless `svid` is
        False or it carries one already."""
        headers = dict(self.token_headers(), **(headers or {}))
        if svid and "X-Grace-SVID" not in headers and self.requires_svid() and name != "trust":
            caller = headers.setdefault("X-Grace-Caller", "grace")
            token = self.svid_for("grace" if caller == "gateway" else caller, name)
            if token:
                headers["X-Grace-SVID"] = token
        return self.http(method, path, body, headers, port=self.kernel_port(name),
                         timeout=timeout)

    def raw(self, data, port=None, **kw):
        return raw_request(port or self.api_port, data, **kw)

    def kernel(self, name):
        st, _, body = self.http("GET", "/kernel-ports/" + name)
        if st != 200:
            raise AssertionError("GET /kernel-ports/%s: %s %r" % (name, st, body))
        return body

    def wait_for(self, predicate, timeout=None, interval=0.02, message=None):
        """wait_for() that also fails at once if grace serve dies."""
        def p():
            self.check_alive()
            return predicate()
        return wait_for(p, scaled(10) if timeout is None else timeout, interval, message)

    def wait_kernel(self, name, pred, timeout=None, message=None):
        """Polls /kernel-ports/NAME until pred(kernel_json); returns the JSON."""
        def p():
            k = self.kernel(name)
            return k if pred(k) else None
        return self.wait_for(p, timeout, message=message or "kernel %s" % name)


# --------------------------------------------------------------------------
# Stand-ins

# A stand-in built on libsystemd (through ctypes): it takes its socket with
# sd_listen_fds(), says READY=1 with sd_notify(), pings only if
# sd_watchdog_enabled() asks it to, and answers every HTTP request with what
# it learned.
SD_STANDIN = r"""
import ctypes, json, os, socket, threading, time
sd = ctypes.CDLL("libsystemd.so.0")
env_wd_pid = os.environ.get("WATCHDOG_PID")
n = sd.sd_listen_fds(0)
usec = ctypes.c_uint64(0)
wd = sd.sd_watchdog_enabled(0, ctypes.byref(usec))
info = json.dumps({"listen_fds": n, "watchdog_enabled": wd, "watchdog_usec": usec.value,
                   "watchdog_pid": env_wd_pid, "pid": os.getpid()}).encode()

def serve():
    s = socket.socket(fileno=3)
    s.setblocking(True)
    while True:
        c, _ = s.accept()
        c.recv(65536)
        c.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                  % len(info) + info)
        c.close()

if n >= 1:
    threading.Thread(target=serve, daemon=True).start()
sd.sd_notify(0, b"READY=1")
while True:
    if wd > 0:
        time.sleep(usec.value / 2e6)
        sd.sd_notify(0, b"WATCHDOG=1")
    else:
        time.sleep(60)
"""


def python_standin(test, source, *args):
    """Writes `source` to a file of its own (removed by a cleanup of `test`)
    and returns the command line that runs it with this Python."""
    d = tempfile.mkdtemp(prefix="grace-bb-standin-")
    test.addCleanup(shutil.rmtree, d, True)
    path = os.path.join(d, "standin.py")
    with open(path, "w") as f:
        f.write(source)
    return " ".join([sys.executable, path] + [str(a) for a in args])


def need_libsystemd():
    """Fails the calling test, naming the package, unless libsystemd.so.0
    loads (scripts/bootstrap.sh --test installs libsystemd0)."""
    try:
        import ctypes
        ctypes.CDLL("libsystemd.so.0")
    except OSError as e:
        raise AssertionError("this test needs libsystemd.so.0 (Debian: libsystemd0; "
                             "scripts/bootstrap.sh --test installs it): %s" % e) from e


def need_tool(name, package):
    """The path of a program the test needs; fails the test, naming the
    Debian package (installed by scripts/bootstrap.sh --test), without it."""
    path = shutil.which(name)
    if not path:
        raise AssertionError("this test needs %s (Debian: %s; scripts/bootstrap.sh --test "
                             "installs it)" % (name, package))
    return path
