"""The executor kernel (8121) through `grace serve` and :8000's /executor/*
(issue 13): a job's argv, environment (an allow-list), stdin, own working
directory and user; exit codes and signals (124 for a timeout whichever
signal it took); and containment shown by its outcomes, on whatever this
machine offers (the job's record says which mechanism applied): the whole
tree dies on timeout and cancel, double-forked and setsid() daemons and
TERM-ignoring children included; a fork bomb stays under the process
limit; a memory hog, endless output, a CPU spinner and a descriptor
leak hit their limits; the seccomp filter refuses ptrace and mount; the
bubblewrap sandbox has no network and a read-only root. After each, no
process carrying the job's marker is left on the machine."""

import json
import os
import re
import socket
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from harness import GraceServer, GraceTestCase, http_request, scaled, wait_for  # noqa: E402

PY = "/usr/bin/python3"
PW = "executor-password-1"


def marked_pids(marker):
    """Processes on this machine whose environment carries `marker`."""
    needle = ("JOB_MARKER=" + marker).encode()
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/environ" % d, "rb") as f:
                if needle in f.read().split(b"\0"):
                    with open("/proc/%s/stat" % d) as s:
                        if s.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X"):
                            out.append(int(d))
        except OSError:
            pass
    return out


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


class ExecutorBase(GraceTestCase):
    CONFIG = {}
    # RLIMIT_NPROC (without cgroups) counts the jobs user's processes in all:
    # other jobs ending meanwhile let a few more in.
    PIDS_SLACK = 0

    @classmethod
    def setUpClass(cls):
        cls.g = GraceServer(config=cls.CONFIG, kernels={"executor": {}})
        try:
            cls.g.start()
        except BaseException:
            cls.g.dump_log()
            cls.g.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.g.close()

    def call(self, method, path, body=None, expect=None):
        st, _, out = self.g.http(method, "/executor" + path, body, timeout=scaled(40))
        if expect is not None:
            self.assertEqual(st, expect, "%s %s -> %s %r" % (method, path, st, out))
        return st, out

    def submit(self, job, expect=201):
        return self.call("POST", "/jobs", job, expect=expect)[1]

    def wait(self, job_id, timeout=30):
        deadline = time.monotonic() + scaled(timeout)
        while True:
            _, out = self.call("GET", "/jobs/%s?wait_ms=10000" % job_id, expect=200)
            if out["state"] not in ("queued", "running"):
                return out
            if time.monotonic() > deadline:
                raise AssertionError("job %s still %s" % (job_id, out["state"]))

    def run_job(self, job, timeout=30):
        return self.wait(self.submit(job)["id"], timeout)

    def output(self, job_id, stream="stdout"):
        st, _, out = self.g.http("GET", "/executor/jobs/%s/output?format=raw&stream=%s"
                                 % (job_id, stream), timeout=scaled(20))
        self.assertEqual(st, 200, out)
        return out if isinstance(out, bytes) else json.dumps(out).encode()

    def marker(self):
        m = uuid.uuid4().hex
        self.addCleanup(self.assert_no_marked, m)
        return m

    def assert_no_marked(self, marker):
        left = self.g.wait_for(lambda: not marked_pids(marker) or None, scaled(5),
                               message=lambda: "processes of the job left: %s"
                               % marked_pids(marker))
        self.assertTrue(left)


class Executor(ExecutorBase):
    def test_quick_jobs_back_to_back(self):
        # A quick job's pipes often end before its shim's report arrives:
        # the report then completes the run (this once read the freed run
        # and crashed the kernel within a few dozen jobs).
        before = self.g.kernel("executor")["pid"]
        for i in range(40):
            job = self.run_job({"argv": ["/bin/echo", "quick %d" % i]})
            self.assertEqual(job["state"], "succeeded", job)
            self.assertEqual(job["output"]["stdout_bytes"], len("quick %d\n" % i))
        self.assertEqual(self.g.kernel("executor")["pid"], before)

    def test_a_job_runs_as_its_own_user_in_its_own_directory(self):
        job = self.run_job({"argv": ["/bin/sh", "-c", "id -u; pwd; echo $HOME; echo err >&2"]})
        self.assertEqual(job["state"], "succeeded", job)
        self.assertEqual(job["exit_code"], 0)
        self.assertIsNone(job["signal"])
        out = self.output(job["id"]).decode().split("\n")
        c = job["containment"]
        self.assertEqual(int(out[0]), c["uid"])
        if os.geteuid() == 0:
            self.assertNotEqual(c["uid"], 0, "a job ran as root")
        self.assertEqual(out[1], job["workdir"])
        self.assertEqual(out[2], job["workdir"])
        # The directory is removed on the worker pool once the job ends (a
        # large tree must not stall the loop), so it may outlive the answer
        # by a moment; it must not outlive it for long.
        wait_for(lambda: not os.path.exists(job["workdir"]), scaled(5),
                 message="the job's directory stayed")
        self.assertEqual(self.output(job["id"], "stderr"), b"err\n")
        for key in ("tracking", "kill", "pids", "nofile", "seccomp", "user", "process_group",
                    "subreaper"):
            self.assertIn(key, c)
        self.assertEqual(job["output"]["stdout_bytes"], len("\n".join(out)))
        self.assertGreaterEqual(job["duration_ms"], 0)
        self.assertIn("cpu_user_ms", job["usage"])
        self.assertIn("max_rss_kb", job["usage"])

    def test_bad_input_names_the_field_and_stores_nothing(self):
        _, before = self.call("GET", "/jobs?limit=1000", expect=200)
        cases = [
            ({"argv": ["ls"]}, "argv[0]"),
            ({"argv": ["/no/such/program"]}, "argv[0]"),
            ({"argv": []}, "argv"),
            ({"argv": ["/bin/true"], "shell": "true"}, "argv"),
            ({"argv": ["/bin/true", 3]}, "argv[1]"),
            ({"argv": ["/bin/true"], "timeout_ms": 10}, "timeout_ms"),
            ({"argv": ["/bin/true"], "kill_grace_ms": -1}, "kill_grace_ms"),
            ({"argv": ["/bin/true"], "limits": {"memory_bytes": 1}}, "limits.memory_bytes"),
            ({"argv": ["/bin/true"], "limits": {"pids": 0}}, "limits.pids"),
            ({"argv": ["/bin/true"], "limits": {"cpu_s": 10 ** 9}}, "limits.cpu_s"),
            ({"argv": ["/bin/true"], "limits": {"swap": 1}}, "limits.swap"),
            ({"argv": ["/bin/true"], "env": {"LD_PRELOAD": "/x.so"}}, "env.LD_PRELOAD"),
            ({"argv": ["/bin/true"], "env": {"A-B": "1"}}, "env.A-B"),
            ({"argv": ["/bin/true"], "env": {"A": 1}}, "env.A"),
            ({"argv": ["/bin/true"], "priority": 10}, "priority"),
            ({"argv": ["/bin/true"], "sandbox": {"network": "yes"}}, "sandbox.network"),
            ({"argv": ["/bin/true"], "cwd": "/"}, "cwd"),
        ]
        for body, field in cases:
            st, out = self.call("POST", "/jobs", body)
            self.assertEqual(st, 400, "%r -> %s %r" % (body, st, out))
            self.assertEqual(out["error"]["field"], field, out)
            self.assertTrue(out["error"]["message"].startswith(field), out)
            st, out = self.call("POST", "/jobs/validate", body)
            self.assertEqual(st, 400, "%r -> %s %r" % (body, st, out))
        _, after = self.call("GET", "/jobs?limit=1000", expect=200)
        self.assertEqual(len(after["jobs"]), len(before["jobs"]))

    def test_environment_is_an_allow_list(self):
        job = self.run_job({"argv": ["/usr/bin/env"], "env": {"JOB_COLOUR": "blue"}})
        env = dict(line.split("=", 1) for line in self.output(job["id"]).decode().splitlines())
        self.assertEqual(env["JOB_COLOUR"], "blue")
        self.assertEqual(env["HOME"], job["workdir"])
        self.assertEqual(env["GRACE_JOB_ID"], job["id"])
        allowed = {"PATH", "LANG", "LANGUAGE", "HOME", "TMPDIR", "PWD", "USER", "LOGNAME",
                   "GRACE_JOB_ID", "JOB_COLOUR", "TZ"}
        extra = {k for k in env if k not in allowed and not k.startswith("LC_")}
        self.assertEqual(extra, set(), "variables from outside the allow-list")

    def test_stdin(self):
        job = self.run_job({"argv": ["/bin/cat"], "stdin": "line one\nline two\n"})
        self.assertEqual(self.output(job["id"]), b"line one\nline two\n")
        job = self.run_job({"argv": ["/bin/cat"]})
        self.assertEqual(self.output(job["id"]), b"")

    def test_exit_codes_and_signals(self):
        job = self.run_job({"shell": "exit 3"})
        self.assertEqual((job["state"], job["exit_code"], job["signal"]), ("failed", 3, None))
        job = self.run_job({"shell": "kill -USR1 $$"})
        self.assertEqual((job["state"], job["exit_code"], job["signal"]), ("failed", 138, 10))
        m = self.marker()
        t0 = time.monotonic()
        job = self.run_job({"argv": ["/bin/sleep", "30"], "timeout_ms": 500,
                            "env": {"JOB_MARKER": m}})
        self.assertLess(time.monotonic() - t0, scaled(10))
        self.assertEqual((job["state"], job["exit_code"], job["signal"], job["timed_out"]),
                         ("timed_out", 124, 15, True))
        # Ignoring SIGTERM: SIGKILL after the grace period, still 124.
        job = self.run_job({"shell": "trap '' TERM; while :; do sleep 0.1; done",
                            "timeout_ms": 500, "kill_grace_ms": 300, "env": {"JOB_MARKER": m}})
        self.assertEqual((job["state"], job["exit_code"], job["signal"]), ("timed_out", 124, 9))

    def test_the_whole_tree_dies_on_timeout(self):
        m = self.marker()
        script = ("setsid sh -c 'echo $$; exec sleep 1000' & "
                  "(sh -c 'echo $$; exec sleep 1000' &) ; "
                  "sh -c 'trap \"\" TERM; echo $$; exec sleep 1000' & "
                  "sleep 1000")
        job = self.submit({"shell": script, "timeout_ms": 1500, "kill_grace_ms": 300,
                           "env": {"JOB_MARKER": m}})

        def three():
            out = self.output(job["id"]).split()
            return out if len(out) == 3 else None
        pids = [int(p) for p in self.g.wait_for(three, scaled(10), interval=0.05)]
        self.assertTrue(all(alive(p) for p in pids))
        done = self.wait(job["id"])
        self.assertEqual((done["state"], done["exit_code"]), ("timed_out", 124))
        for p in pids:
            self.assertFalse(alive(p), "process %d outlived its job" % p)

    def test_what_the_main_process_leaves_is_killed(self):
        m = self.marker()
        job = self.run_job({"shell": "setsid sleep 1000 & echo $!; (sleep 1000 &); exit 0",
                            "env": {"JOB_MARKER": m}})
        self.assertEqual(job["state"], "succeeded", job)
        self.assertGreaterEqual(job["usage"]["stragglers_killed"], 2, job["usage"])
        self.assertFalse(alive(int(self.output(job["id"]))))

    def test_cancel(self):
        m = self.marker()
        job = self.submit({"shell": "echo up; sleep 1000", "env": {"JOB_MARKER": m}})
        self.g.wait_for(lambda: self.output(job["id"]) == b"up\n" or None, scaled(10))
        st, out = self.call("POST", "/jobs/%s/cancel" % job["id"], {}, expect=202)
        done = self.wait(job["id"])
        self.assertEqual(done["state"], "cancelled", done)
        self.assertTrue(done["cancelled"])
        self.call("POST", "/jobs/%s/cancel" % job["id"], {}, expect=409)
        self.call("POST", "/jobs/x_0000000000000000/cancel", {}, expect=404)

    def test_fork_bomb_stays_under_the_process_limit(self):
        m = self.marker()
        # Counts the children it manages to make, then waits for the timeout.
        prog = ("import os, time, sys\n"
                "n = 0\n"
                "try:\n"
                "    for _ in range(200):\n"
                "        if os.fork() == 0:\n"
                "            time.sleep(60); os._exit(0)\n"
                "        n += 1\n"
                "except OSError:\n"
                "    pass\n"
                "print(n, flush=True)\n"
                "time.sleep(60)\n")
        job = self.run_job({"argv": [PY, "-c", prog], "limits": {"pids": 20},
                            "timeout_ms": 3000, "kill_grace_ms": 200,
                            "env": {"JOB_MARKER": m}})
        made = int(self.output(job["id"]))
        self.assertGreater(made, 0)
        self.assertLess(made, 20 + self.PIDS_SLACK,
                        "the process limit did not bite (%s)" % job["containment"]["pids"])
        self.assertEqual(job["state"], "timed_out")
        # A real bomb: it ends with its timeout and leaves nothing.
        job = self.run_job({"shell": "b() { b | b & }; b; sleep 60", "limits": {"pids": 32},
                            "timeout_ms": 2000, "kill_grace_ms": 200,
                            "env": {"JOB_MARKER": m}}, timeout=60)
        self.assertIn(job["state"], ("timed_out", "failed"), job)
        if "pids_peak" in job["usage"]:
            self.assertLessEqual(job["usage"]["pids_peak"], 32)

    def test_memory_hog_is_stopped(self):
        m = self.marker()
        prog = ("blocks = []\n"
                "for i in range(1024):\n"
                "    blocks.append(bytearray(1 << 20))\n"
                "print('survived', flush=True)\n")
        job = self.run_job({"argv": [PY, "-c", prog], "limits": {"memory_bytes": 64 << 20},
                            "env": {"JOB_MARKER": m}})
        self.assertEqual(job["state"], "failed", job)
        self.assertNotIn(b"survived", self.output(job["id"]))
        self.assertIsNotNone(job["containment"]["memory"])
        if job["containment"]["memory"].startswith("cgroup"):
            self.assertTrue(job["oom_killed"], job)
            self.assertEqual(job["signal"], 9)
            self.assertLessEqual(job["usage"]["memory_peak_bytes"], 64 << 20)
        else:
            self.assertIn(b"MemoryError", self.output(job["id"], "stderr"))

    def test_endless_output_is_capped(self):
        m = self.marker()
        job = self.run_job({"argv": ["/usr/bin/yes", "grace"], "timeout_ms": 1000,
                            "limits": {"output_bytes": 65536}, "env": {"JOB_MARKER": m}})
        self.assertEqual(job["state"], "timed_out")
        o = job["output"]
        self.assertTrue(o["stdout_truncated"])
        self.assertEqual(o["stdout_stored"], 65536)
        self.assertGreater(o["stdout_bytes"], 65536)
        self.assertEqual(len(self.output(job["id"])), 65536)
        self.assertFalse(o["stderr_truncated"])

    def test_cpu_time_limit(self):
        m = self.marker()
        job = self.run_job({"argv": [PY, "-c", "while True: pass"], "limits": {"cpu_s": 1},
                            "timeout_ms": 30000, "env": {"JOB_MARKER": m}})
        self.assertEqual(job["state"], "failed", job)
        self.assertTrue(job["cpu_limit_hit"], job)
        self.assertLess(job["duration_ms"], scaled(20000))

    def test_open_files_limit(self):
        prog = ("import os\nn = 0\ntry:\n    while True:\n        os.open('/dev/null', os.O_RDONLY)\n"
                "        n += 1\nexcept OSError as e:\n    print(n, e.errno)\n")
        job = self.run_job({"argv": [PY, "-c", prog], "limits": {"nofile": 32}})
        n, errno = self.output(job["id"]).split()
        self.assertLess(int(n), 32)
        self.assertEqual(int(errno), 24)  # EMFILE

    def test_seccomp_refuses_dangerous_calls(self):
        prog = ("import ctypes, os\n"
                "libc = ctypes.CDLL(None, use_errno=True)\n"
                "r = libc.ptrace(0, 0, 0, 0)\n"
                "print('ptrace', r, ctypes.get_errno())\n"
                "r = libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)\n"
                "print('mount', r, ctypes.get_errno())\n"
                "r = libc.unshare(0x10000000)\n"
                "print('unshare', r, ctypes.get_errno())\n")
        job = self.run_job({"argv": [PY, "-c", prog]})
        self.assertIsNotNone(job["containment"]["seccomp"])
        got = {line.split()[0]: (int(line.split()[1]), int(line.split()[2]))
               for line in self.output(job["id"]).decode().splitlines()}
        self.assertEqual(got["ptrace"], (-1, 1), got)  # EPERM
        self.assertEqual(got["mount"], (-1, 1), got)
        self.assertEqual(got["unshare"], (-1, 1), got)
        # Without the filter ptrace(PTRACE_TRACEME) is allowed: the filter bit.
        job = self.run_job({"argv": [PY, "-c", prog], "seccomp": False})
        self.assertIsNone(job["containment"]["seccomp"])
        got = {line.split()[0]: int(line.split()[1])
               for line in self.output(job["id"]).decode().splitlines()}
        self.assertEqual(got["ptrace"], 0)

    def test_sandbox_has_no_network_and_a_read_only_root(self):
        if not os.path.exists("/usr/bin/bwrap"):
            self.fail("bubblewrap is needed for this test: scripts/bootstrap.sh installs it")
        port = self.g.api_port
        prog = ("import socket, os\n"
                "s = socket.socket()\n"
                "try:\n"
                "    s.connect(('127.0.0.1', %d)); print('net ok')\n"
                "except OSError as e:\n"
                "    print('net', e.errno)\n"
                "try:\n"
                "    open('/usr/grace-sandbox-test', 'w'); print('root writable')\n"
                "except OSError as e:\n"
                "    print('root', e.errno)\n"
                "open('here', 'w').write('x'); print('workdir ok')\n"
                "print('pid', os.getpid())\n" % port)
        job = self.run_job({"argv": [PY, "-c", prog], "sandbox": {}})
        self.assertEqual(job["state"], "succeeded", (job, self.output(job["id"], "stderr")))
        out = self.output(job["id"]).decode()
        self.assertEqual(job["containment"]["namespaces"]["tool"], "bubblewrap")
        self.assertRegex(out, r"net (101|111)\n")  # ENETUNREACH / ECONNREFUSED: no network
        self.assertIn("root 30\n", out)  # EROFS
        self.assertIn("workdir ok", out)
        self.assertFalse(os.path.exists("/usr/grace-sandbox-test"))
        self.assertIn("pid 2\n", out)  # its own pid namespace
        job = self.run_job({"argv": [PY, "-c", prog], "sandbox": {"network": True,
                                                                   "readonly_root": True}})
        self.assertIn("net ok", self.output(job["id"]).decode())

    def test_idempotency_key(self):
        body = {"argv": ["/bin/echo", "once"], "idempotency_key": "k-" + uuid.uuid4().hex}
        first = self.submit(body)
        again = self.submit(body, expect=200)
        self.assertEqual(again["id"], first["id"])
        self.assertTrue(again["duplicate"])
        st, out = self.call("POST", "/jobs", dict(body, argv=["/bin/echo", "other"]))
        self.assertEqual(st, 409, out)
        self.assertEqual(out["error"]["field"], "idempotency_key")

    def test_output_streams_live_over_sse_through_the_gateway(self):
        job = self.submit({"shell": "for i in 1 2 3; do echo line $i; sleep 0.4; done; "
                          "echo done >&2; exit 5"})
        s = socket.create_connection(("127.0.0.1", self.g.api_port), timeout=scaled(20))
        auth = self.g.auth_headers()["Authorization"]
        s.sendall(("GET /executor/jobs/%s/output HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   "Authorization: %s\r\nAccept: text/event-stream\r\n\r\n"
                   % (job["id"], auth)).encode())
        buf = b""
        first_line_at = None
        t0 = time.monotonic()
        # The gateway streams it chunked: the stream ends with the last chunk.
        while not buf.endswith(b"\r\n0\r\n\r\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
            if first_line_at is None and b"line 1" in buf:
                first_line_at = time.monotonic() - t0
        s.close()
        self.assertIn(b"200 OK", buf.split(b"\r\n", 1)[0])
        self.assertIn(b"text/event-stream", buf)
        events = re.findall(rb"event: (\w+)\ndata: (.*)\n", buf)
        text = "".join(json.loads(d)["text"] for e, d in events if e == b"stdout")
        self.assertEqual(text, "line 1\nline 2\nline 3\n")
        err = "".join(json.loads(d)["text"] for e, d in events if e == b"stderr")
        self.assertEqual(err, "done\n")
        end = json.loads([d for e, d in events if e == b"end"][0])
        self.assertEqual((end["state"], end["exit_code"]), ("failed", 5))
        # Live: the first line came long before the job's end (~1.2 s).
        self.assertIsNotNone(first_line_at)
        self.assertLess(first_line_at, end["duration_ms"] / 1000.0)
        # A finished job's stream replays what was stored.
        st, _, body = self.g.http("GET", "/executor/jobs/%s/output" % job["id"],
                                  timeout=scaled(20))
        self.assertEqual(st, 200)
        self.assertIn(b"line 3", body)
        self.assertIn(b"event: end", body)

    def test_users_may_not_run_jobs(self):
        self.g.create_user("ursula", PW)
        token = self.g.login("ursula", PW)
        st, _, out = http_request(self.g.api_port, "POST", "/executor/jobs",
                                  {"argv": ["/bin/true"]}, {"Authorization": "Bearer " + token})
        self.assertEqual(st, 403, out)
        # Straight to the kernel with a user's identity: refused too.
        st, _, out = self.g.kernel_http("executor", "POST", "/jobs", {"argv": ["/bin/true"]},
                                        headers={"X-Grace-User": "ursula",
                                                 "X-Grace-Role": "user"})
        self.assertEqual(st, 403, out)

    def test_containment_report(self):
        _, c = self.call("GET", "/containment", expect=200)
        for key in ("cgroup2", "cgroup1", "root", "jobs_user", "bubblewrap", "seccomp", "notes"):
            self.assertIn(key, c)
        job = self.run_job({"argv": ["/bin/true"], "limits": {"memory_bytes": 64 << 20}})
        mem = job["containment"]["memory"]
        want = ("cgroup2 memory.max" if c["cgroup2"]["memory"]
                else "cgroup1 memory.limit_in_bytes" if c["cgroup1"]["memory"]
                else "RLIMIT_AS (address space, per process)")
        self.assertEqual(mem, want)
        track = job["containment"]["tracking"]
        self.assertEqual(track, "cgroup2" if c["cgroup2"]["usable"]
                         else "cgroup1 pids group" if c["cgroup1"]["pids"]
                         else "process group and subreaper")


    def test_dir_is_for_kernels_under_dir_root(self):
        # "dir" (docs/executor.md): never from a user, and with [executor]
        # dir_root unset (here) from nobody; a relative path is refused by
        # name. The positive path: tests/blackbox/test_coding_agent.py.
        st, out = self.call("POST", "/jobs", {"argv": ["/bin/pwd"], "dir": "/tmp"}, expect=403)
        self.assertEqual(out["error"]["field"], "dir")
        st, _, out = self.g.kernel_http("executor", "POST", "/jobs",
                                        {"argv": ["/bin/pwd"], "dir": "/tmp"},
                                        headers={"X-Grace-Caller": "coding_agent"})
        self.assertEqual(st, 403, out)
        self.assertIn("dir_root", out["error"]["message"])
        st, out = self.call("POST", "/jobs", {"argv": ["/bin/pwd"], "dir": "tmp"}, expect=400)
        self.assertEqual(out["error"]["field"], "dir")


class ExecutorWithoutCgroups(Executor):
    """The same outcomes with cgroups turned off: rlimits, the process group
    and the subreaper only (a machine without cgroups, or none delegated)."""
    CONFIG = {"executor": {"cgroups": 0}}
    PIDS_SLACK = 20

    def test_containment_says_so(self):
        _, c = self.call("GET", "/containment", expect=200)
        self.assertFalse(c["cgroup2"]["usable"])
        self.assertFalse(c["cgroup1"]["memory"] or c["cgroup1"]["pids"])
        job = self.run_job({"argv": ["/bin/true"], "limits": {"memory_bytes": 64 << 20}})
        self.assertEqual(job["containment"]["tracking"], "process group and subreaper")
        self.assertEqual(job["containment"]["memory"], "RLIMIT_AS (address space, per process)")


class Queue(ExecutorBase):
    CONFIG = {"executor": {"concurrency": 1, "queue_max": 3}}

    def test_priorities_and_a_bounded_queue(self):
        first = self.submit({"argv": ["/bin/sleep", "1"]})
        low = self.submit({"argv": ["/bin/echo", "low"], "priority": 1})
        high = self.submit({"argv": ["/bin/echo", "high"], "priority": 9})
        queued = self.submit({"argv": ["/bin/echo", "low2"], "priority": 1})
        self.assertEqual(low["state"], "queued")
        st, out = self.call("POST", "/jobs", {"argv": ["/bin/true"]})
        self.assertEqual(st, 503, out)
        self.assertEqual(out["error"]["code"], "queue_full")
        # Cancelling a queued job: it never runs.
        _, c = self.call("POST", "/jobs/%s/cancel" % queued["id"], {}, expect=200)
        self.assertEqual(c["state"], "cancelled")
        self.assertIsNone(c["started_ms"])
        done = [self.wait(j["id"]) for j in (first, low, high)]
        self.assertTrue(all(d["state"] == "succeeded" for d in done), done)
        self.assertLess(done[2]["started_ms"], done[1]["started_ms"])  # high before low
        self.assertGreaterEqual(done[2]["started_ms"], done[0]["finished_ms"])
        _, stats = self.call("GET", "/stats", expect=200)
        self.assertEqual(stats["concurrency"], 1)
        self.assertGreaterEqual(stats["refused_full"], 1)


if __name__ == "__main__":
    unittest.main()
