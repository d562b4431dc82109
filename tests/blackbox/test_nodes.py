"""Grace on two nodes (docs/deployment.md "Kernels on several hosts"), both on
this host's loopback: node a runs the trust kernel, the message bus and the
audit kernel; node b runs the immutable log. Each node's grace serve is a
process of its own with its own data directory and port offset; the link
between them is mutual TLS with X.509-SVIDs from the trust kernel (node a's
asked by its own grace serve, node b's enrolled by `grace node enroll`).

What must hold: every kernel is reached through either node's API and call
path; a kernel killed on b is restarted by b and seen so from a; an
operator's restart on a acts through b; a node that disappears makes its
kernels `unreachable` (not `failed`), the relay answers a JSON 503
`node_unreachable`, and nothing acknowledged before is lost; the link
refuses a peer without a certificate of the trust domain. The same story
across network namespaces is test_nodes_netns.py."""
import os
import signal
import socket
import ssl
import subprocess
import tempfile
import unittest

from harness import (GRACE_BIN, GraceServer, GraceTestCase, PortReservation, http_request,
                     scaled)

KERNELS_A = ("trust", "message_bus", "audit")
KERNELS_B = ("immutable_log",)


def node_config(res_a):
    link_a = res_a.api_port + 150  # inside node a's reservation, past its kernels
    link_b = res_a.api_port + 151
    config = {
        "node.a": {"address": "127.0.0.1:%d" % link_a},
        "node.b": {"address": "127.0.0.1:%d" % link_b},
        "grace": {"node_poll_ms": 300, "node_down_ms": 1500},
        # Certificates of 20 s, renewed at half their life: several
        # rotations within the test.
        "trust": {"x509_ttl_default_s": 20, "x509_ttl_max_s": 20},
    }
    kernels = {name: {"node": "a"} for name in KERNELS_A}
    kernels.update({name: {"node": "b"} for name in KERNELS_B})
    return config, kernels, link_a, link_b


class TwoNodes(GraceTestCase):
    @classmethod
    def setUpClass(cls):
        cls.res_a = PortReservation()
        cls.res_b = PortReservation()
        config, kernels, cls.link_a, cls.link_b = node_config(cls.res_a)
        remote_b = {n: "unreachable" for n in KERNELS_B}
        cls.a = GraceServer(config=config, kernels=kernels, env={"GRACE_NODE": "a"},
                            reservation=cls.res_a, expect=remote_b, autostart=False)
        cls.b = GraceServer(config=config, kernels=kernels, env={"GRACE_NODE": "b"},
                            reservation=cls.res_b, autostart=False,
                            expect={n: "unreachable" for n in KERNELS_A})
        cls.a.remote_kernels = set(KERNELS_B)
        cls.b.remote_kernels = set(KERNELS_A) | {"policy"}
        try:
            cls.a.start()
            cls.a.login()
            # Node a asks its own trust kernel for its certificate.
            cls.a.wait_for(lambda: cls.self_node(cls.a).get("certificate_expires_at"),
                           scaled(20), message="node a's certificate")
            cls.enroll_b()
            cls.b.start(wait=False)
            cls.a.wait_states(expect={}, timeout=scaled(40))
            cls.b.wait_states(expect={}, timeout=scaled(40))
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        # Both are closed whatever the first says; then its complaint.
        errors = []
        for s in (getattr(cls, "b", None), getattr(cls, "a", None)):
            if s:
                try:
                    s.close()
                except AssertionError as e:
                    errors.append(e)
        for r in (cls.res_a, cls.res_b):
            r.release()
        if errors:
            raise errors[0]

    @classmethod
    def self_node(cls, server):
        h = server.health() or {}
        for n in h.get("nodes", {}).get("nodes", []):
            if n.get("self"):
                return n
        return {}

    @classmethod
    def enroll_b(cls):
        token = cls.a.api_headers["Authorization"].split(" ", 1)[1]
        out = os.path.join(cls.b.data_dir, "node")
        os.makedirs(cls.b.data_dir, exist_ok=True)
        env = dict(os.environ, GRACE_TOKEN=token)
        p = subprocess.run([GRACE_BIN, "node", "enroll", "b", out, "--config",
                            cls.a.config_path, "--data-dir", cls.a.data_dir,
                            "--port-offset", str(cls.a.offset), "--json"],
                           env=env, capture_output=True, text=True, timeout=scaled(30))
        if p.returncode != 0:
            raise AssertionError("grace node enroll: %d %s %s" % (p.returncode, p.stdout,
                                                                 p.stderr))
        for f in ("svid.pem", "key.pem", "bundle.pem"):
            st = os.stat(os.path.join(out, f))
            assert st.st_mode & 0o077 == 0, "%s is readable by others" % f

    def peer(self, server, name):
        for n in (server.health() or {}).get("nodes", {}).get("nodes", []):
            if n["name"] == name:
                return n
        return {}

    # -- the kernels are reached wherever they run

    def test_each_node_reaches_the_others_kernels(self):
        # The pid node a reports is node b's process (once a read b's
        # latest: an earlier test restarted it).
        def same():
            ha, hb = self.a.health(), self.b.health()
            pa = ha["kernels"]["immutable_log"]
            return (ha, hb) if pa["state"] == "ready" and pa["pid"] == \
                hb["kernels"]["immutable_log"]["pid"] else None
        ha, hb = self.a.wait_for(same, scaled(10), message="the same pid on both nodes")
        self.assertEqual(ha["kernels"]["immutable_log"]["manager"], "node")
        self.assertEqual(ha["kernels"]["immutable_log"]["node"], "b")
        self.assertEqual(ha["kernels"]["trust"]["manager"], "grace")
        # Through node a's gateway to node b's kernel, and the other way.
        st, _, body = self.a.http("GET", "/kernels/immutable_log/health")
        self.assertEqual(st, 200, body)
        self.assertEqual(body["kernel"], "immutable_log")
        self.assertEqual(body["pid"], hb["kernels"]["immutable_log"]["pid"])
        st, _, body = http_request(self.b.api_port, "GET", "/health")
        self.assertEqual(st, 200)
        self.assertEqual(body["kernels"]["trust"]["state"], "ready")
        self.assertEqual(body["nodes"]["self"], "b")
        self.assertEqual(self.peer(self.b, "a")["state"], "up")

    def test_a_call_between_kernels_crosses_nodes(self):
        # The audit kernel (node a) appends every event to the immutable
        # log (node b) through its call path, carrying its SVID: the
        # trail's newest events have log indexes.
        self.a.http("GET", "/kernels/immutable_log/health")  # an event to record

        def indexed():
            st, _, body = self.a.http("GET", "/kernels/audit/events?limit=5")
            evs = body.get("events", []) if st == 200 and isinstance(body, dict) else []
            return [e for e in evs if e.get("log_index") is not None]
        self.a.wait_for(indexed, scaled(20), message="audit events with log indexes")

    def test_kernels_of_node_b_attested_through_node_a(self):
        st, _, body = self.a.http("GET", "/kernels/trust/workloads")
        self.assertEqual(st, 200, body)
        mine = {w["name"]: w for w in body["workloads"]}
        self.assertIn("immutable_log", mine, body)
        self.assertEqual(mine["immutable_log"].get("node"), "b")

    # -- failures

    def test_a_kernel_killed_on_b_is_restarted_there_and_seen_from_a(self):
        k = self.b.health()["kernels"]["immutable_log"]
        pid, restarts = k["pid"], k["restarts"]
        os.kill(pid, signal.SIGKILL)  # a process node b started for this test
        self.a.wait_for(lambda: (lambda x: x["state"] == "ready" and x["pid"] != pid and
                                 x["restarts"] > restarts)(
            self.a.health()["kernels"]["immutable_log"]), scaled(15),
            message="node a seeing the restarted kernel")

    def test_an_operator_restart_on_a_acts_through_b(self):
        pid = self.b.health()["kernels"]["immutable_log"]["pid"]
        st, _, body = self.a.http("POST", "/kernel-ports/immutable_log/restart")
        self.assertIn(st, (200, 202), body)
        self.b.wait_for(lambda: (lambda x: x["state"] == "ready" and x["pid"] != pid)(
            self.b.health()["kernels"]["immutable_log"]), scaled(15),
            message="node b restarting its kernel")

    def test_the_link_refuses_a_peer_without_a_certificate_of_the_domain(self):
        before = self.a.health()["nodes"]["link"]["refused"]
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", self.link_a), timeout=5) as raw:
            try:
                with ctx.wrap_socket(raw) as s:
                    s.sendall(b"GRACE-LINK/1 kernel trust\r\n")
                    got = s.recv(100)
            except (ssl.SSLError, ConnectionError, OSError):
                got = b""
        self.assertEqual(got, b"", "a client without a certificate was answered")
        self.a.wait_for(lambda: self.a.health()["nodes"]["link"]["refused"] > before, 5,
                        message="the refusal counted")
        # A plain HTTP client on the link port gets nothing it can use.
        with socket.create_connection(("127.0.0.1", self.link_a), timeout=5) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            s.settimeout(5)
            try:
                data = s.recv(100)
            except (socket.timeout, ConnectionError):
                data = b""
        self.assertNotIn(b"200 OK", data)

    def test_certificates_rotate_without_dropping_connections(self):
        import http.client
        port = self.a.health()["kernels"]["immutable_log"]["port"]  # a's relay
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/health")
        r = conn.getresponse()
        self.assertEqual(r.status, 200)
        r.read()
        first = {s: self.self_node(s)["certificate_expires_at"] for s in (self.a, self.b)}
        for s in (self.a, self.b):
            s.wait_for(lambda: self.self_node(s)["certificate_expires_at"] != first[s],
                       scaled(20), interval=0.2, message="a renewed certificate")
        # The connection made before the rotation still carries requests ...
        conn.request("GET", "/health")
        r = conn.getresponse()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.getheader("Connection", "keep-alive").lower() != "close", True)
        r.read()
        conn.close()
        # ... and new ones are made with the new certificates.
        st, _, body = self.a.http("GET", "/kernels/immutable_log/health")
        self.assertEqual(st, 200, body)

    def link_client(self, certfile, keyfile):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False  # the link checks SPIFFE IDs, not names
        ctx.load_verify_locations(os.path.join(self.b.data_dir, "node", "bundle.pem"))
        ctx.load_cert_chain(certfile, keyfile)
        raw = socket.create_connection(("127.0.0.1", self.link_a), timeout=5)
        return ctx.wrap_socket(raw)

    def as_node_b(self):
        d = os.path.join(self.b.data_dir, "node")
        return self.link_client(os.path.join(d, "svid.pem"), os.path.join(d, "key.pem"))

    def read_line(self, s):
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data

    def test_the_link_answers_a_peer_what_it_asks_and_nothing_more(self):
        # A kernel node a does not run, and one it has never heard of.
        for name, code in (("immutable_log", b"ERR unavailable"), ("nosuch", b"ERR not_found")):
            with self.as_node_b() as s:
                s.sendall(b"GRACE-LINK/1 kernel " + name.encode() + b"\n")
                self.assertTrue(self.read_line(s).startswith(code))
        # A control request that is not JSON, and an unknown op.
        with self.as_node_b() as s:
            s.sendall(b"GRACE-LINK/1 control\n{not json\n")
            self.assertIn(b'"code":"invalid"', self.read_line(s))
        with self.as_node_b() as s:
            s.sendall(b'GRACE-LINK/1 control\n{"op":"format_disk"}\n')
            self.assertIn(b"unknown op", self.read_line(s))
        # Node b may not act on a kernel node a does not run.
        with self.as_node_b() as s:
            s.sendall(b'GRACE-LINK/1 control\n{"op":"stop","kernel":"immutable_log"}\n')
            self.assertIn(b'"code":"not_found"', self.read_line(s))
        # A first line past its limit ends the connection without an answer.
        with self.as_node_b() as s:
            s.sendall(b"GRACE-LINK/1 kernel " + b"x" * 4096)
            self.assertEqual(self.read_line(s), b"")
        self.assertEqual(self.a.health()["kernels"]["trust"]["state"], "ready")

    def test_a_kernel_certificate_of_the_domain_is_no_node(self):
        # An X.509-SVID the trust kernel really issued, but to a kernel:
        # it chains to the bundle, and still opens no link.
        st, _, body = self.a.http("POST", "/kernels/trust/x509-svid", {"for": "audit"})
        self.assertEqual(st, 200, body)
        svid = body["svids"][0]
        d = tempfile.mkdtemp(prefix="grace-kcert-")
        cert, key = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
        with open(cert, "w") as f:
            f.write(svid["x509_svid"])
        with open(key, "w") as f:
            f.write(svid["x509_svid_key"])
        before = self.a.health()["nodes"]["link"]["refused"]
        try:
            with self.link_client(cert, key) as s:
                s.sendall(b"GRACE-LINK/1 kernel trust\n")
                got = self.read_line(s)
        except (ssl.SSLError, ConnectionError, OSError):
            got = b""
        self.assertEqual(got, b"")
        self.a.wait_for(lambda: self.a.health()["nodes"]["link"]["refused"] > before, 5,
                        message="the refusal counted")

    def test_zz_a_node_that_disappears_is_unreachable_and_comes_back(self):
        # Something acknowledged on node b before it goes.
        st, _, before = self.a.http("GET", "/kernels/immutable_log/entries?start=0&end=1")
        self.assertEqual(st, 200, before)
        size = before["tree_size"]
        self.b.stop(sig=signal.SIGKILL)
        h = self.a.wait_for(lambda: (lambda h: h if h["kernels"]["immutable_log"]["state"] ==
                                     "unreachable" else None)(self.a.health()), scaled(10),
                            message="node b's kernels unreachable")
        self.assertEqual(h["status"], "degraded")
        self.assertEqual(self.peer(self.a, "b")["state"], "unreachable")
        self.assertNotEqual(h["kernels"]["immutable_log"]["state"], "failed")
        # The relay answers in Grace's error shape, with a request id.
        st, hdrs, body = http_request(h["kernels"]["immutable_log"]["port"], "GET", "/health",
                                      timeout=scaled(10))
        self.assertEqual(st, 503, body)
        self.assertIn(body["error"]["code"], ("node_unreachable", "unavailable"))
        self.assertTrue(hdrs.get("X-Request-Id") or hdrs.get("x-request-id"))
        # The gateway says the same to a user, at once.
        st, _, body = self.a.http("GET", "/kernels/immutable_log/health")
        self.assertEqual((st, body["error"]["code"]), (503, "node_unreachable"), body)
        # And the command line.
        p = subprocess.run([GRACE_BIN, "status", "--config", self.a.config_path,
                            "--port-offset", str(self.a.offset)], capture_output=True,
                           text=True, timeout=scaled(30))
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)  # degraded
        self.assertRegex(p.stdout, r"immutable_log\s+unreachable")
        self.assertRegex(p.stdout, r"\nb\s+unreachable\s+127\.0\.0\.1:%d" % self.link_b)
        # Node b again: its kernels come back, and what it held is there.
        self.b.start(wait=False)
        self.a.wait_states(expect={}, timeout=scaled(40))
        st, _, after = self.a.http("GET", "/kernels/immutable_log/entries?start=0&end=1")
        self.assertEqual(st, 200, after)
        self.assertGreaterEqual(after["tree_size"], size)


if __name__ == "__main__":
    unittest.main()
