"""Several hosts (docs/trust.md "Nodes: several hosts"): the trust kernel,
on node a, trusts the main process of node b once node a's main process has
vouched for it (POST /attest/node, with node a's main process's own
attestation only). A vouched main is a main: it gets the `grace` identity,
users' requests through its gateway are believed, and it registers the
kernels configured on its node, whose processes then join without the /proc
checks (they run on another host); it never registers another node's
kernels. Each node's main process takes its node's X.509-SVID,
spiffe://DOMAIN/node/NAME, for the mutual TLS between nodes, and no other
node's. As in test_trust_attest.SupervisorRole the test plays the main
processes: `grace kernel trust` runs alone, handed the SHA-256 of the
test's own attestation for node a's main; node b's and c's mains are
attestations the test makes up and vouches for."""

import hashlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import (BUILTIN_KERNELS, GRACE_BIN, GraceTestCase,  # noqa: E402
                     PortReservation, http_request, scaled, wait_for)

# Ports of the offset's block that no kernel uses: the nodes' link
# addresses (nothing listens there in this test; they only have to parse).
NODE_PORTS = {"a": 8146, "b": 8147, "c": 8148}


def proc_identity(pid):
    with open("/proc/%d/stat" % pid) as f:
        stat = f.read()
    start = int(stat[stat.rfind(")") + 2:].split()[19])
    return start, os.readlink("/proc/%d/exe" % pid)


def sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


class TrustAlone(GraceTestCase):
    """`grace kernel trust` run alone on a configuration of the test's,
    handed the SHA-256 of the test's attestation as node a's main process."""

    nodes = ("a", "b", "c")

    def config(self):
        lines = ["[policy]", "authorizer = table", ""]
        for n in self.nodes:
            lines += ["[node.%s]" % n,
                      "address = 127.0.0.1:%d" % (NODE_PORTS[n] + self.res.offset), ""]
        # trust and state_machine on the first node (the default),
        # scheduler on node b.
        lines += ["[kernel.trust]", "port = 8112", "",
                  "[kernel.state_machine]", "port = %d" % BUILTIN_KERNELS["state_machine"][0], ""]
        if "b" in self.nodes:
            lines += ["[kernel.scheduler]", "port = %d" % BUILTIN_KERNELS["scheduler"][0],
                      "node = b", ""]
        return "\n".join(lines)

    def setUp(self):
        self.res = PortReservation()
        self.addCleanup(self.res.release)
        self.tmp = tempfile.mkdtemp(prefix="grace-bb-nodes-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.token = secrets.token_hex(32)
        token_file = os.path.join(self.tmp, "token")
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, self.token.encode())
        os.close(fd)
        self.main = secrets.token_hex(32)  # node a's main process's attestation
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("GRACE_", "NOTIFY_", "LISTEN_", "WATCHDOG_"))}
        env["GRACE_INTERNAL_TOKEN_FILE"] = token_file
        env["GRACE_MAIN_ATTESTATION_SHA256"] = sha256(self.main)
        self.port = 8112 + self.res.offset
        self.log = open(os.path.join(self.tmp, "trust.log"), "w+b")
        self.addCleanup(self.log.close)
        self.procs = []
        self.addCleanup(self.end_procs)
        self.cfg = os.path.join(self.tmp, "grace.ini")
        with open(self.cfg, "w") as f:
            f.write(self.config())
        self.trust = subprocess.Popen(
            [GRACE_BIN, "kernel", "trust", "--config", self.cfg, "--data-dir",
             os.path.join(self.tmp, "data"), "--port-offset", str(self.res.offset)],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, cwd=self.tmp, env=env)
        self.procs.append(self.trust)

        def answering():
            if self.trust.poll() is not None:
                self.log.seek(0)
                self.fail("the trust kernel exited with %s:\n%s"
                          % (self.trust.returncode, self.log.read().decode(errors="replace")))
            try:
                return http_request(self.port, "GET", "/health", timeout=scaled(5))[0] == 200
            except (ConnectionRefusedError, ConnectionResetError):
                return False
        wait_for(answering, scaled(15), message="trust kernel answering")

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

    def as_main(self, attestation=None):
        return {"X-Grace-Caller": "grace", "X-Grace-Attestation": attestation or self.main}

    def admin(self, attestation=None):
        """An admin's request as a gateway forwards it, with its main's proof."""
        return {"X-Grace-Caller": "gateway", "X-Grace-Attestation": attestation or self.main,
                "X-Grace-User": "root", "X-Grace-Role": "admin"}

    def vouch(self, node, attestation, expect=200, headers=None):
        st, _, out = self.call("POST", "/attest/node",
                               {"node": node, "main_sha256": sha256(attestation)},
                               self.as_main() if headers is None else headers)
        self.assertEqual(st, expect, out)
        return out

    def register(self, kernel, pid, cred, main=None, expect=201, identity=None):
        start, exe = identity or proc_identity(pid)
        st, _, out = self.call("POST", "/attest/register",
                               {"kernel": kernel, "pid": pid, "start_time": start, "exe": exe,
                                "credential_sha256": sha256(cred)},
                               self.as_main(main))
        self.assertEqual(st, expect, out)
        return out

    def join(self, kernel, cred, pid, expect):
        st, _, out = self.call("POST", "/attest/join", {"credential": cred, "pid": pid},
                               {"X-Grace-Caller": kernel})
        self.assertEqual(st, expect, out)
        return out

    def workloads(self):
        st, _, out = self.call("GET", "/workloads", headers=self.as_main())
        self.assertEqual(st, 200, out)
        return {w["name"]: w for w in out["workloads"]}

    def x509(self, headers, who=None, expect=200):
        st, _, out = self.call("POST", "/x509-svid", {"for": who} if who else {}, headers)
        self.assertEqual(st, expect, (who, headers.get("X-Grace-Caller"), out))
        return out


class Nodes(TrustAlone):
    def test_vouching_needs_this_nodes_main(self):
        b = secrets.token_hex(32)
        body = {"node": "b", "main_sha256": sha256(b)}
        # Not without node a's main process's own attestation: neither its
        # name on the token alone, nor a wrong attestation, nor a kernel, nor
        # an admin.
        for h in ({"X-Grace-Caller": "grace"},
                  self.as_main(secrets.token_hex(32)),
                  {"X-Grace-Caller": "state_machine", "X-Grace-Attestation": self.main},
                  self.admin()):
            st, _, out = self.call("POST", "/attest/node", body, h)
            self.assertEqual((st, out["error"]["code"]), (403, "forbidden"), (h, out))
        # A node that is not configured, the trust kernel's own, bad fields.
        st, _, out = self.call("POST", "/attest/node", dict(body, node="zz"), self.as_main())
        self.assertEqual((st, out["error"]["code"]), (404, "not_found"), out)
        st, _, out = self.call("POST", "/attest/node", dict(body, node="a"), self.as_main())
        self.assertEqual((st, out["error"]["code"]), (400, "invalid"), out)
        for bad in ({"node": "b"}, dict(body, main_sha256="A" * 64), dict(body, main_sha256="ab"),
                    dict(body, extra=1), dict(body, node=7)):
            st, _, out = self.call("POST", "/attest/node", bad, self.as_main())
            self.assertEqual((st, out["error"]["code"]), (400, "invalid"), (bad, out))
        # Node a's main is no other node's.
        st, _, out = self.call("POST", "/attest/node", dict(body, main_sha256=sha256(self.main)),
                               self.as_main())
        self.assertEqual((st, out["error"]["code"]), (409, "conflict"), out)
        # Accepted with it.
        out = self.vouch("b", b)
        self.assertEqual(out["node"], "b")
        self.assertGreater(out["vouched_at"], 0)
        # One process is one node's main; a vouched main vouches for nobody.
        st, _, out = self.call("POST", "/attest/node", dict(body, node="c"), self.as_main())
        self.assertEqual((st, out["error"]["code"]), (409, "conflict"), out)
        st, _, out = self.call("POST", "/attest/node",
                               {"node": "c", "main_sha256": sha256(secrets.token_hex(32))},
                               self.as_main(b))
        self.assertEqual((st, out["error"]["code"]), (403, "forbidden"), out)

    def test_a_vouched_main_is_a_main(self):
        b = secrets.token_hex(32)
        # Unknown yet: its attestation proves nothing.
        st, _, out = self.call("POST", "/jwt-svid", {"audience": "x"}, self.as_main(b))
        self.assertEqual((st, out["error"]["code"]), (403, "forbidden"), out)
        self.vouch("b", b)
        for caller in ("grace", "gateway"):
            st, _, out = self.call("POST", "/jwt-svid", {"audience": "x"},
                                   dict(self.as_main(b), **{"X-Grace-Caller": caller}))
            self.assertEqual(st, 200, out)
            self.assertEqual(out["svids"][0]["spiffe_id"], "spiffe://grace.local/grace")
        # Its gateway's users are believed.
        st, _, out = self.call("POST", "/jwt-svid", {"audience": "x", "for": "crypto"},
                               self.admin(b))
        self.assertEqual(st, 200, out)
        self.assertEqual(out["svids"][0]["spiffe_id"], "spiffe://grace.local/kernel/crypto")
        # A new hash for node b (its main restarted) replaces the old one.
        b2 = secrets.token_hex(32)
        self.vouch("b", b2)
        st, _, out = self.call("POST", "/jwt-svid", {"audience": "x"}, self.as_main(b))
        self.assertEqual((st, out["error"]["code"]), (403, "forbidden"), out)
        st, _, out = self.call("POST", "/jwt-svid", {"audience": "x"}, self.as_main(b2))
        self.assertEqual(st, 200, out)
        # Node a's main is as it was.
        st, _, out = self.call("POST", "/jwt-svid", {"audience": "x"}, self.as_main())
        self.assertEqual(st, 200, out)

    def test_registrations_by_node(self):
        b = secrets.token_hex(32)
        p = self.sleeper()
        cred = secrets.token_hex(32)
        # Not yet vouched for: not a main process.
        self.register("scheduler", p.pid, cred, main=b, expect=403)
        self.vouch("b", b)
        # Node b's main registers node b's kernels only; node a's main, node
        # a's only (a kernel configured nowhere is nobody's).
        out = self.register("state_machine", p.pid, secrets.token_hex(32), main=b, expect=403)
        self.assertIn("runs on node a", out["error"]["message"])
        out = self.register("scheduler", p.pid, secrets.token_hex(32), expect=403)
        self.assertIn("runs on node b", out["error"]["message"])
        out = self.register("crypto", p.pid, secrets.token_hex(32), expect=403)
        self.assertIn("not configured", out["error"]["message"])
        # Node b's process is on another host: its start time and executable
        # as node b saw them are not looked for in this host's /proc.
        remote = (12345, "/opt/grace/bin/grace")
        self.register("scheduler", p.pid, cred, main=b, identity=remote)
        out = self.join("scheduler", cred, os.getpid(), 403)
        self.assertIn("another process", out["error"]["message"])
        out = self.join("crypto", cred, p.pid, 403)
        self.assertIn("not kernel crypto", out["error"]["message"])
        first = self.join("scheduler", cred, p.pid, 200)
        self.assertEqual(first["spiffe_id"], "spiffe://grace.local/kernel/scheduler")
        # Again within a minute (its first answer lost): a new attestation
        # replacing the first, as for a local process.
        ok = self.join("scheduler", cred, p.pid, 200)
        self.assertNotEqual(ok["attestation"], first["attestation"])
        w = self.workloads()["scheduler"]
        self.assertEqual((w["node"], w["pid"], w["exe"]), ("b", p.pid, remote[1]), w)
        # Its SVIDs go to the holder of its attestation, whatever this
        # host's /proc shows for that pid.
        p.kill()
        p.wait()
        st, _, out = self.call("POST", "/jwt-svid", {"audience": "x"},
                               {"X-Grace-Caller": "scheduler",
                                "X-Grace-Attestation": ok["attestation"]})
        self.assertEqual(st, 200, out)
        st, _, out = self.call("POST", "/jwt-svid", {"audience": "x"},
                               {"X-Grace-Caller": "scheduler",
                                "X-Grace-Attestation": secrets.token_hex(32)})
        self.assertEqual(st, 403, out)

        # Node a's kernels keep every /proc check.
        q = self.sleeper()
        cred = secrets.token_hex(32)
        self.register("state_machine", q.pid, cred, identity=(12345, proc_identity(q.pid)[1]))
        out = self.join("state_machine", cred, q.pid, 403)
        self.assertIn("gone", out["error"]["message"])
        cred = secrets.token_hex(32)
        self.register("state_machine", q.pid, cred)
        self.join("state_machine", cred, q.pid, 200)
        self.assertEqual(self.workloads()["state_machine"]["node"], "a")

    def test_node_x509_svids(self):
        b = secrets.token_hex(32)
        # Not vouched for: nothing.
        self.x509(self.as_main(b), "node/b", 403)
        self.vouch("b", b)
        out = self.x509(self.as_main(b), "node/b")["svids"][0]
        self.assertEqual(out["spiffe_id"], "spiffe://grace.local/node/b")
        self.check_certificate(out, "spiffe://grace.local/node/b")
        # Each main process takes its own node's identity only.
        out = self.x509(self.as_main(b), "node/a", 403)
        self.assertIn("own node", out["error"]["message"])
        self.x509(self.as_main(b), "node/c", 403)
        self.x509(self.as_main(), "node/b", 403)
        out = self.x509(self.as_main(), "node/a")["svids"][0]
        self.assertEqual(out["spiffe_id"], "spiffe://grace.local/node/a")
        # Only the main process, as grace: not its gateway, not a kernel, not
        # a caller taking the name, not the name alone.
        self.x509(dict(self.as_main(b), **{"X-Grace-Caller": "gateway"}), "node/b", 403)
        self.x509({"X-Grace-Caller": "state_machine"}, "node/b", 403)
        self.x509({"X-Grace-Caller": "node/b"}, None, 403)
        self.x509({"X-Grace-Caller": "grace"}, "node/b", 403)
        # X.509 only.
        st, _, out = self.call("POST", "/jwt-svid", {"audience": "x", "for": "node/b"},
                               self.as_main(b))
        self.assertEqual(st, 403, out)
        st, _, out = self.call("POST", "/jwt-svid", {"audience": "x", "for": "node/b"},
                               self.admin())
        self.assertEqual((st, out["error"]["code"]), (400, "invalid"), out)
        # An admin through a gateway names any configured node.
        out = self.x509(self.admin(), "node/b")["svids"][0]
        self.assertEqual(out["spiffe_id"], "spiffe://grace.local/node/b")
        out = self.x509(self.admin(b), "node/c")["svids"][0]
        self.assertEqual(out["spiffe_id"], "spiffe://grace.local/node/c")
        out = self.x509(self.admin(), "node/zz", 400)
        self.assertEqual(out["error"]["code"], "invalid")
        # A replaced main takes it no longer.
        self.vouch("b", secrets.token_hex(32))
        self.x509(self.as_main(b), "node/b", 403)

    def check_certificate(self, svid, spiffe_id):
        """The URI SAN is the node's ID, and OpenSSL accepts the leaf for
        TLS clients and servers under the bundle's CA."""
        d = tempfile.mkdtemp(dir=self.tmp)
        cert, ca = os.path.join(d, "leaf.pem"), os.path.join(d, "ca.pem")
        with open(cert, "w") as f:
            f.write(svid["x509_svid"])
        with open(ca, "w") as f:
            f.write(svid["bundle"])
        text = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-ext",
                               "subjectAltName"], capture_output=True, text=True, check=True).stdout
        self.assertIn("URI:" + spiffe_id, text)
        self.assertEqual(text.count("URI:"), 1, text)
        for purpose in ("sslclient", "sslserver"):
            r = subprocess.run(["openssl", "verify", "-CAfile", ca, "-purpose", purpose, cert],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, (purpose, r.stdout, r.stderr))


class OneHost(TrustAlone):
    """No [node.*] section: nothing to vouch for, no node identity, and the
    workloads have no node."""

    nodes = ()

    def test_no_nodes(self):
        st, _, out = self.call("POST", "/attest/node",
                               {"node": "b", "main_sha256": sha256(secrets.token_hex(32))},
                               self.as_main())
        self.assertEqual((st, out["error"]["code"]), (404, "not_found"), out)
        self.x509(self.admin(), "node/b", 400)
        self.x509(self.as_main(), "node/b", 403)
        p = self.sleeper()
        cred = secrets.token_hex(32)
        self.register("scheduler", p.pid, cred)  # configured or not, as before
        self.join("scheduler", cred, p.pid, 200)
        self.assertIsNone(self.workloads()["scheduler"]["node"])


if __name__ == "__main__":
    unittest.main()
