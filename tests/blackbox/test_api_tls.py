"""The API's TLS door ([grace] tls_address; docs/deployment.md "The API for
other hosts"): the whole API over TLS 1.3 with the certificate from files,
read again when they change without dropping a connection; errors in
Grace's JSON shape with X-Request-Id, as on :8000; nothing but TLS on its
port; a configuration naming no certificate refused at start."""
import http.client
import os
import socket
import ssl
import subprocess
import tempfile

from harness import GRACE_BIN, GraceServer, GraceTestCase, PortReservation, scaled


def make_cert(dirname, cn):
    """A self-signed P-256 certificate and key, written in place atomically."""
    cert, key = os.path.join(dirname, "cert.pem"), os.path.join(dirname, "key.pem")
    tmpc, tmpk = cert + ".new", key + ".new"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", tmpk, "-out", tmpc,
                    "-days", "1", "-subj", "/CN=" + cn, "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    os.chmod(tmpk, 0o600)
    os.rename(tmpk, key)
    os.rename(tmpc, cert)
    return cert, key


def client_ctx(cafile):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile)
    return ctx


class TlsDoor(GraceTestCase):
    @classmethod
    def setUpClass(cls):
        cls.res = PortReservation()
        cls.certs = tempfile.mkdtemp(prefix="grace-tls-")
        cls.cert, cls.key = make_cert(cls.certs, "first")
        cls.port = cls.res.api_port + 152  # inside the reservation, past the kernels
        cls.g = GraceServer(config={"grace": {"tls_address": "127.0.0.1:%d" % cls.port,
                                              "tls_cert_file": cls.cert,
                                              "tls_key_file": cls.key}},
                            kernels={"message_bus": {}}, reservation=cls.res)
        cls.g.start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.g.close()
        finally:
            cls.res.release()

    def https(self, method, path, body=None, headers=None, cafile=None):
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=10,
                                           context=client_ctx(cafile or self.cert))
        try:
            conn.request(method, path, body, headers or {})
            r = conn.getresponse()
            return r.status, dict(r.getheaders()), r.read(), conn.sock.version()
        finally:
            conn.close()

    def test_health_and_errors_over_tls_1_3(self):
        st, hdrs, body, version = self.https("GET", "/health")
        self.assertEqual(st, 200, body)
        self.assertEqual(version, "TLSv1.3")
        self.assertTrue(hdrs.get("X-Request-Id"))
        st, hdrs, body, _ = self.https("GET", "/no/such/route")
        self.assertIn(st, (401, 404))  # anonymous: refused before routing
        err = __import__("json").loads(body)["error"]
        self.assertEqual(err["request_id"], hdrs["X-Request-Id"])

    def test_a_login_over_tls_serves_the_session(self):
        name, password = self.g.first_admin()
        import json
        st, _, body, _ = self.https("POST", "/auth/login",
                                    json.dumps({"username": name, "password": password}),
                                    {"Content-Type": "application/json"})
        self.assertEqual(st, 200, body)
        token = json.loads(body)["token"]
        st, _, body, _ = self.https("GET", "/kernel-ports",
                                    headers={"Authorization": "Bearer " + token})
        self.assertEqual(st, 200, body)
        self.assertIn("message_bus", body.decode())

    def test_nothing_but_tls_on_its_port(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            try:
                data = s.recv(200)
            except (socket.timeout, ConnectionError):
                data = b""
        self.assertNotIn(b"HTTP/1.1 200", data)

    def test_zz_a_new_certificate_is_used_without_dropping_a_connection(self):
        old = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=10,
                                          context=client_ctx(self.cert))
        old.request("GET", "/health")
        r = old.getresponse()
        r.read()
        self.assertEqual(r.status, 200)
        first = old.sock.getpeercert(binary_form=True)
        with open(self.cert) as f:
            first_pem = f.read()
        make_cert(self.certs, "second")

        def new_cert_served():
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as raw:
                with ctx.wrap_socket(raw) as s:
                    return s.getpeercert(binary_form=True) != first
        self.g.wait_for(new_cert_served, scaled(10), interval=0.2,
                        message="the new certificate served")
        # The connection made before still carries requests.
        old.request("GET", "/health")
        r = old.getresponse()
        r.read()
        self.assertEqual(r.status, 200)
        old.close()
        # New clients trusting the new certificate get through; the old one
        # no longer verifies.
        st, _, _, _ = self.https("GET", "/health")
        self.assertEqual(st, 200)
        old_ca = os.path.join(self.certs, "old.pem")
        with open(old_ca, "w") as f:
            f.write(first_pem)
        with self.assertRaises(ssl.SSLError):
            self.https("GET", "/health", cafile=old_ca)
        h = self.g.health()
        self.assertGreater(h["tls"]["connections"], 0)


class TlsDoorConfig(GraceTestCase):
    def test_an_address_without_a_certificate_is_refused(self):
        with tempfile.TemporaryDirectory() as d:
            ini = os.path.join(d, "grace.ini")
            with open(ini, "w") as f:
                f.write("[grace]\ntls_address = 127.0.0.1:1\n")
            p = subprocess.run([GRACE_BIN, "serve", "--config", ini, "--data-dir",
                                os.path.join(d, "data")], capture_output=True, text=True,
                               timeout=30)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("tls_address needs tls_cert_file", p.stderr)


if __name__ == "__main__":
    import unittest
    unittest.main()
