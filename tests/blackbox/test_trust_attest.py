"""Attestation at spawn (docs/trust.md): the supervisor hands each kernel
process a one-time join credential (GRACE_JOIN_CREDENTIAL, wiped by the
kernel's runtime at once) and registers (pid, start time, executable,
credential hash) with the trust kernel; the process presents it once and is
recorded in GET /trust/workloads, and from then on only that process gets
the kernel's SVIDs. A credential used twice, by another pid, by another
kernel, or after its process is gone (a restart) is refused: the test plays
the supervisor for those, with processes of its own. A kernel killed with
SIGKILL attests anew. (Under systemd the credential comes through
LoadCredential=; only the supervisor's path can be exercised here.)"""

import hashlib
import os
import re
import secrets
import signal
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import GraceServer, ServerClassCase, scaled  # noqa: E402


def proc_identity(pid):
    with open("/proc/%d/stat" % pid) as f:
        stat = f.read()
    start = int(stat[stat.rfind(")") + 2:].split()[19])
    return start, os.readlink("/proc/%d/exe" % pid)


class Attestation(ServerClassCase):
    @classmethod
    def make_server(cls):
        return GraceServer(kernels={"trust": {}, "state_machine": {}})

    def setUp(self):
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()

    def sleeper(self):
        p = subprocess.Popen(["sleep", "60"])
        self.procs.append(p)
        return p

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

    def register(self, kernel, pid, cred, caller="grace", expect=201):
        start, exe = proc_identity(pid)
        st, _, out = self.g.kernel_http(
            "trust", "POST", "/attest/register",
            {"kernel": kernel, "pid": pid, "start_time": start, "exe": exe,
             "credential_sha256": hashlib.sha256(cred.encode()).hexdigest()},
            {"X-Grace-Caller": caller})
        self.assertEqual(st, expect, out)
        return out

    def join(self, kernel, cred, pid, expect):
        st, _, out = self.g.kernel_http("trust", "POST", "/attest/join",
                                        {"credential": cred, "pid": pid},
                                        {"X-Grace-Caller": kernel})
        self.assertEqual(st, expect, out)
        return out

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

    def test_credential_once_by_its_process(self):
        p = self.sleeper()
        cred = secrets.token_hex(32)
        self.join("scheduler", cred, p.pid, 404)  # not registered yet
        self.register("scheduler", p.pid, cred)
        self.register("scheduler", p.pid, cred, expect=409)
        # Only the supervisor registers.
        self.register("scheduler", p.pid, secrets.token_hex(32), caller="state_machine", expect=403)
        # Another kernel presenting it, or another pid: refused, and it
        # stays good for its own process.
        out = self.join("crypto", cred, p.pid, 403)
        self.assertIn("not kernel crypto", out["error"]["message"])
        out = self.join("scheduler", cred, os.getpid(), 403)
        self.assertIn("another process", out["error"]["message"])
        ok = self.join("scheduler", cred, p.pid, 200)
        self.assertEqual(ok["spiffe_id"], "spiffe://grace.local/kernel/scheduler")
        self.assertEqual(len(ok["attestation"]), 64)
        # Used twice: refused.
        out = self.join("scheduler", cred, p.pid, 409)
        self.assertEqual(out["error"]["code"], "conflict")
        w = self.workloads()["scheduler"]
        self.assertEqual(w["pid"], p.pid)
        # Its SVIDs go to the holder of the attestation only.
        st, _, out = self.g.kernel_http("trust", "POST", "/jwt-svid", {"audience": "x"},
                                        {"X-Grace-Caller": "scheduler",
                                         "X-Grace-Attestation": ok["attestation"]})
        self.assertEqual(st, 200, out)
        self.assertIsNotNone(self.workloads()["scheduler"]["svid_expires_at"])
        # Its process gone (a restart): the attestation is worth nothing.
        p.kill()
        p.wait()
        st, _, out = self.g.kernel_http("trust", "POST", "/jwt-svid", {"audience": "x"},
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

    def test_kernel_restarted_attests_anew(self):
        before = self.attested("state_machine")
        os.kill(before["pid"], signal.SIGKILL)
        self.g.wait_kernel("state_machine", lambda k: k["state"] == "ready" and k["pid"] != before["pid"],
                           timeout=scaled(20))
        after = self.attested("state_machine")
        self.assertNotEqual(after["pid"], before["pid"])
        self.assertGreaterEqual(after["attested_at"], before["attested_at"])


if __name__ == "__main__":
    unittest.main()
