"""Attestation at spawn (docs/trust.md): the supervisor hands each kernel
process a one-time join credential (GRACE_JOIN_CREDENTIAL, wiped by the
kernel's runtime at once) and registers (pid, start time, executable,
credential hash) with the trust kernel; the process presents it once and is
recorded in GET /trust/workloads, and from then on only that process gets
the kernel's SVIDs. A credential used twice, by another pid, by another
kernel, or after its process is gone (a restart) is refused: the test plays
the supervisor for those, with processes of its own, against a trust kernel
run alone that it hands the hash of its own main-process attestation (as
grace serve does at spawn): only the holder of that attestation registers
processes, not a kernel holding the internal token. A kernel killed with
SIGKILL attests anew. Under systemd, a kernel run alone attests with an
enrolled credential that LoadCredential= puts in $CREDENTIALS_DIRECTORY:
run here with that variable set as systemd sets it."""

import hashlib
import os
import re
import secrets
import signal
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import (BUILTIN_KERNELS, GRACE_BIN, GraceServer, GraceTestCase,  # noqa: E402
                     PortReservation, ServerClassCase, http_request, scaled, wait_for)


def proc_identity(pid):
    with open("/proc/%d/stat" % pid) as f:
        stat = f.read()
    start = int(stat[stat.rfind(")") + 2:].split()[19])
    return start, os.readlink("/proc/%d/exe" % pid)


class Attestation(ServerClassCase):
    @classmethod
    def make_server(cls):
        return GraceServer(kernels={"trust": {}, "state_machine": {}})

    def workloads(self):
        st, _, out = self.g.http("GET", "/trust/workloads")
        self.assertEqual(st, 200, out)
        return {w["name"]: w for w in out["workloads"]}

    def attested(self, name):
        pid = self.g.wait_kernel(name, lambda k: k["state"] == "ready" and k["pid"],
                                 timeout=scaled(20))["pid"]
        return self.g.wait_for(lambda: (self.workloads().get(name) or {}).get("pid") == pid
                               and self.workloads()[name], timeout=scaled(15),
                               message=lambda: (name, pid, self.workloads()))

    def test_spawned_kernels_attest(self):
        sm = self.attested("state_machine")
        trust = self.attested("trust")
        self.assertTrue(sm["exe"].endswith("grace"), sm)
        self.assertGreater(sm["attested_at"], 0)
        self.assertNotEqual(trust["pid"], sm["pid"])
        # The credential is gone from the kernel's environment.
        with open("/proc/%d/environ" % sm["pid"], "rb") as f:
            env = f.read()
        self.assertIsNone(re.search(rb"GRACE_JOIN_CREDENTIAL=[0-9a-f]{64}", env))

    def test_svids_only_for_the_attested_process(self):
        self.attested("state_machine")
        # The internal token and the name are no longer enough.
        st, _, out = self.g.kernel_http("trust", "POST", "/jwt-svid", {"audience": "x"},
                                        {"X-Grace-Caller": "state_machine"})
        self.assertEqual(st, 403, out)
        self.assertEqual(out["error"]["code"], "forbidden")
        self.assertIn("attested", out["error"]["message"])
        st, _, out = self.g.kernel_http("trust", "POST", "/jwt-svid", {"audience": "x"},
                                        {"X-Grace-Caller": "state_machine",
                                         "X-Grace-Attestation": "0" * 64})
        self.assertEqual(st, 403, out)
        # An admin naming the workload still may.
        st, _, out = self.g.http("POST", "/kernels/trust/jwt-svid",
                                 {"for": "state_machine", "audience": "x"})
        self.assertEqual(st, 200, out)

    def test_no_second_main_process(self):
        """A trust kernel spawned by grace serve has its main process for
        life: nobody joins as the main process with a credential, enrolled
        or not, and a kernel may not name an attestation of its own."""
        self.attested("trust")
        join = {"credential": secrets.token_hex(32), "pid": os.getpid(),
                "attestation_sha256": "cd" * 32}
        st, _, out = self.g.kernel_http("trust", "POST", "/attest/join", join,
                                        {"X-Grace-Caller": "grace"})
        self.assertEqual((st, out["error"]["code"]), (409, "conflict"), out)
        st, _, out = self.g.kernel_http("trust", "POST", "/attest/join", join,
                                        {"X-Grace-Caller": "state_machine"})
        self.assertEqual((st, out["error"]["code"]), (400, "invalid"), out)

    def test_kernel_restarted_attests_anew(self):
        before = self.attested("state_machine")
        os.kill(before["pid"], signal.SIGKILL)
        self.g.wait_kernel("state_machine", lambda k: k["state"] == "ready" and k["pid"] != before["pid"],
                           timeout=scaled(20))
        after = self.attested("state_machine")
        self.assertNotEqual(after["pid"], before["pid"])
        self.assertGreaterEqual(after["attested_at"], before["attested_at"])


class SupervisorRole(GraceTestCase):
    """The test is the main process: `grace kernel trust` run alone, handed
    the SHA-256 of the test's attestation in GRACE_MAIN_ATTESTATION_SHA256."""

    def setUp(self):
        self.res = PortReservation()
        self.addCleanup(self.res.release)
        self.tmp = tempfile.mkdtemp(prefix="grace-bb-attest-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.token = secrets.token_hex(32)
        token_file = os.path.join(self.tmp, "token")
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, self.token.encode())
        os.close(fd)
        self.main = secrets.token_hex(32)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("GRACE_", "NOTIFY_", "LISTEN_", "WATCHDOG_"))}
        env["GRACE_INTERNAL_TOKEN_FILE"] = token_file
        env["GRACE_MAIN_ATTESTATION_SHA256"] = hashlib.sha256(self.main.encode()).hexdigest()
        self.port = 8112 + self.res.offset
        self.log = open(os.path.join(self.tmp, "trust.log"), "w+b")
        self.addCleanup(self.log.close)
        self.procs = []
        self.addCleanup(self.end_procs)
        # Alone: its routes decided by the route table, no policy kernel.
        self.cfg = os.path.join(self.tmp, "grace.ini")
        with open(self.cfg, "w") as f:
            f.write("[policy]\nauthorizer = table\n\n[kernel.trust]\nport = 8112\n\n"
                    "[kernel.state_machine]\nport = %d\n" % BUILTIN_KERNELS["state_machine"][0])
        self.env = env
        self.trust = self.kernel_alone("trust", env)

        def answering():
            if self.trust.poll() is not None:
                self.fail("the trust kernel exited with %s" % self.trust.returncode)
            try:
                return http_request(self.port, "GET", "/health", timeout=scaled(5))[0] == 200
            except (ConnectionRefusedError, ConnectionResetError):
                return False
        wait_for(answering, scaled(15), message="trust kernel answering")

    def kernel_alone(self, name, env):
        p = subprocess.Popen(
            [GRACE_BIN, "kernel", name, "--config", self.cfg, "--data-dir",
             os.path.join(self.tmp, "data"), "--port-offset", str(self.res.offset)],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, cwd=self.tmp, env=env)
        self.procs.append(p)
        return p

    def end_procs(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()

    def sleeper(self):
        p = subprocess.Popen(["sleep", "60"])
        self.procs.append(p)
        return p

    def call(self, method, path, body=None, headers=None):
        h = {"X-Grace-Internal-Token": self.token}
        h.update(headers or {})
        return http_request(self.port, method, path, body, h, scaled(10))

    def as_main(self):
        return {"X-Grace-Caller": "grace", "X-Grace-Attestation": self.main}

    def workloads(self):
        st, _, out = self.call("GET", "/workloads", headers=self.as_main())
        self.assertEqual(st, 200, out)
        return {w["name"]: w for w in out["workloads"]}

    def register(self, kernel, pid, cred, caller="grace", attestation=True, expect=201):
        start, exe = proc_identity(pid)
        h = {"X-Grace-Caller": caller}
        if attestation:
            h["X-Grace-Attestation"] = self.main if attestation is True else attestation
        st, _, out = self.call("POST", "/attest/register",
                               {"kernel": kernel, "pid": pid, "start_time": start, "exe": exe,
                                "credential_sha256": hashlib.sha256(cred.encode()).hexdigest()},
                               h)
        self.assertEqual(st, expect, out)
        return out

    def join(self, kernel, cred, pid, expect):
        st, _, out = self.call("POST", "/attest/join", {"credential": cred, "pid": pid},
                               {"X-Grace-Caller": kernel})
        self.assertEqual(st, expect, out)
        return out

    def admin(self):
        """An admin's request as the gateway forwards it, with the proof."""
        return {"X-Grace-Caller": "gateway", "X-Grace-Attestation": self.main,
                "X-Grace-User": "root", "X-Grace-Role": "admin"}

    def test_enrolled_credential_under_systemd(self):
        """A kernel no supervisor spawns (a systemd unit) attests with the
        credential LoadCredential= puts in $CREDENTIALS_DIRECTORY/join,
        enrolled by an admin beforehand; the same file attests the unit's
        next process too, and nothing else."""
        cred = secrets.token_hex(32)
        digest = hashlib.sha256(cred.encode()).hexdigest()
        body = {"kernel": "state_machine", "credential_sha256": digest}
        # Only an admin through the gateway, with the main process's proof.
        for h in ({"X-Grace-Caller": "grace", "X-Grace-Attestation": self.main},
                  dict(self.admin(), **{"X-Grace-Attestation": secrets.token_hex(32)}),
                  dict(self.admin(), **{"X-Grace-Caller": "state_machine"})):
            st, _, out = self.call("POST", "/attest/enroll", body, h)
            self.assertEqual((st, out["error"]["code"]), (403, "forbidden"), (h, out))
        st, _, out = self.call("POST", "/attest/enroll", {"kernel": "nosuch",
                                                         "credential_sha256": digest},
                               self.admin())
        self.assertEqual(st, 400, out)
        st, _, out = self.call("POST", "/attest/enroll", body, self.admin())
        self.assertEqual(st, 201, out)
        # Another kernel may not take the same credential.
        st, _, out = self.call("POST", "/attest/enroll", dict(body, kernel="crypto"),
                               self.admin())
        self.assertEqual((st, out["error"]["code"]), (409, "conflict"), out)

        creds = os.path.join(self.tmp, "credentials")
        os.mkdir(creds, 0o700)
        fd = os.open(os.path.join(creds, "join"), os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, (cred + "\n").encode())  # as a file written by hand ends
        os.close(fd)
        env = dict(self.env, CREDENTIALS_DIRECTORY=creds)
        env.pop("GRACE_MAIN_ATTESTATION_SHA256")

        def attested_as(pid):
            w = self.workloads().get("state_machine")
            return w if w and w["pid"] == pid else None
        first = self.kernel_alone("state_machine", env)
        w1 = wait_for(lambda: attested_as(first.pid), scaled(20),
                      message="the unit's process attested")
        self.assertTrue(w1["exe"].endswith("grace"), w1)
        # Its next process (a restart of the unit): the same file attests it.
        first.kill()
        first.wait()
        second = self.kernel_alone("state_machine", env)
        wait_for(lambda: attested_as(second.pid), scaled(20),
                 message="the unit's next process attested")
        # Not as another kernel, not for a process that runs something else.
        out = self.join("crypto", cred, second.pid, 403)
        self.assertIn("not kernel crypto", out["error"]["message"])
        p = self.sleeper()
        out = self.join("state_machine", cred, p.pid, 403)
        self.assertIn("does not run", out["error"]["message"])
        # Removed: it no longer joins.
        st, _, out = self.call("DELETE", "/attest/enroll/state_machine", None, self.admin())
        self.assertEqual(st, 200, out)
        self.join("state_machine", cred, second.pid, 404)
        st, _, out = self.call("DELETE", "/attest/enroll/state_machine", None, self.admin())
        self.assertEqual(st, 404, out)

    def test_main_identity_needs_its_attestation(self):
        # The main process's SVID goes to the holder of its attestation
        # only; its names on the token alone get nothing.
        for caller in ("grace", "gateway"):
            st, _, out = self.call("POST", "/jwt-svid", {"audience": "x"},
                                   {"X-Grace-Caller": caller})
            self.assertEqual((st, out["error"]["code"]), (403, "forbidden"), out)
            st, _, out = self.call("POST", "/jwt-svid", {"audience": "x"},
                                   {"X-Grace-Caller": caller,
                                    "X-Grace-Attestation": secrets.token_hex(32)})
            self.assertEqual(st, 403, out)
            st, _, out = self.call("POST", "/jwt-svid", {"audience": "x"},
                                   dict(self.as_main(), **{"X-Grace-Caller": caller}))
            self.assertEqual(st, 200, out)
            self.assertEqual(out["svids"][0]["spiffe_id"], "spiffe://grace.local/grace")
        # A user's word is the gateway's, with the main process's proof:
        # an "admin" claimed by a kernel holding the token gets nobody's SVID.
        admin = {"X-Grace-User": "root", "X-Grace-Role": "admin"}
        for h in (dict(admin, **{"X-Grace-Caller": "state_machine"}),
                  dict(admin, **{"X-Grace-Caller": "gateway"}),
                  dict(admin, **{"X-Grace-Caller": "grace", "X-Grace-Attestation": self.main})):
            st, _, out = self.call("POST", "/jwt-svid", {"audience": "x", "for": "crypto"}, h)
            self.assertEqual((st, out["error"]["code"]), (403, "forbidden"), (h, out))
        st, _, out = self.call("POST", "/jwt-svid", {"audience": "x", "for": "crypto"},
                               dict(admin, **{"X-Grace-Caller": "gateway",
                                              "X-Grace-Attestation": self.main}))
        self.assertEqual(st, 200, out)
        self.assertEqual(out["svids"][0]["spiffe_id"], "spiffe://grace.local/kernel/crypto")

    def test_credential_once_by_its_process(self):
        p = self.sleeper()
        cred = secrets.token_hex(32)
        self.join("scheduler", cred, p.pid, 404)  # not registered yet
        self.register("scheduler", p.pid, cred)
        # The same registration again (its first answer lost): the same;
        # that credential for another kernel: a conflict.
        self.register("scheduler", p.pid, cred)
        self.register("crypto", p.pid, cred, expect=409)
        # Only the supervisor registers: not a kernel, nor the main
        # process's name on the internal token alone, nor a wrong attestation.
        self.register("scheduler", p.pid, secrets.token_hex(32), caller="state_machine", expect=403)
        self.register("scheduler", p.pid, secrets.token_hex(32), attestation=None, expect=403)
        self.register("scheduler", p.pid, secrets.token_hex(32),
                      attestation=secrets.token_hex(32), expect=403)
        # Another kernel presenting it, or another pid: refused, and it
        # stays good for its own process.
        out = self.join("crypto", cred, p.pid, 403)
        self.assertIn("not kernel crypto", out["error"]["message"])
        out = self.join("scheduler", cred, os.getpid(), 403)
        self.assertIn("another process", out["error"]["message"])
        ok = self.join("scheduler", cred, p.pid, 200)
        self.assertEqual(ok["spiffe_id"], "spiffe://grace.local/kernel/scheduler")
        self.assertEqual(len(ok["attestation"]), 64)
        # Presented again by the same live process soon after (its first
        # answer lost to a timeout): a new attestation, which replaces the
        # first; by another pid it stays refused.
        out = self.join("scheduler", cred, os.getpid(), 403)
        again = self.join("scheduler", cred, p.pid, 200)
        self.assertNotEqual(again["attestation"], ok["attestation"])
        st, _, out = self.call("POST", "/jwt-svid", {"audience": "x"},
                               {"X-Grace-Caller": "scheduler",
                                "X-Grace-Attestation": ok["attestation"]})
        self.assertEqual(st, 403, out)
        ok = again
        w = self.workloads()["scheduler"]
        self.assertEqual(w["pid"], p.pid)
        # Its SVIDs go to the holder of the attestation only.
        st, _, out = self.call("POST", "/jwt-svid", {"audience": "x"},
                                        {"X-Grace-Caller": "scheduler",
                                         "X-Grace-Attestation": ok["attestation"]})
        self.assertEqual(st, 200, out)
        self.assertIsNotNone(self.workloads()["scheduler"]["svid_expires_at"])
        # Its process gone (a restart): the attestation is worth nothing.
        p.kill()
        p.wait()
        st, _, out = self.call("POST", "/jwt-svid", {"audience": "x"},
                                        {"X-Grace-Caller": "scheduler",
                                         "X-Grace-Attestation": ok["attestation"]})
        self.assertEqual(st, 403, out)
        self.assertIn("gone", out["error"]["message"])

    def test_credential_after_restart_refused(self):
        p = self.sleeper()
        cred = secrets.token_hex(32)
        self.register("executor", p.pid, cred)
        p.kill()
        p.wait()
        out = self.join("executor", cred, p.pid, 403)
        self.assertIn("gone", out["error"]["message"])
        self.join("executor", "nothex", p.pid, 400)


if __name__ == "__main__":
    unittest.main()
